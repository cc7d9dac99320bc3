/**
 * POSIX message queues (mq_overview(7)): named, bounded queues of whole messages with a
 * priority, kept by the kernel until unlinked, that C and Python peers open by the same
 * name (`/jobs`).
 *
 * - `createMessageQueue(name, { maxMessages, maxMessageBytes, mode, group })`: exclusive
 *   (O_EXCL), mode exactly 0600 unless asked (set with fchmod, so no umask widens it).
 * - `openMessageQueue(name, 'read' | 'write' | 'both')`: checks the queue's owner and
 *   permission bits with fstat before using it (permissions.ts); a queue someone else
 *   made, or one wider than allowed, is ERR_IPCKIT_PERMISSION unless the caller opts in.
 *   'read' gives a MessageQueueReceiver, 'write' a MessageQueueSender, 'both' a MessageQueue
 *   (both): roles are composed, not stubbed.
 * - Waiting: on Linux an mqd_t is a file descriptor, opened here with O_NONBLOCK and
 *   watched by the event loop (FdPoll: readable = a message is waiting, writable = there
 *   is room). No thread waits, so any number of pending receives cost nothing.
 * - `send` resolves once the message is in the kernel's queue (nothing is buffered in
 *   this process): another process can receive it even if we exit right after.
 *   When the queue is full, `send` waits (backpressure) with `timeout` and `signal`.
 * - Order: the kernel delivers the highest priority first, FIFO within a priority.
 * - A queue has no end of stream: closing a sender does not end a receiver.
 * - Limits: a message above the queue's maxMessageBytes is ERR_IPCKIT_FRAME_TOO_LARGE before
 *   any system call; a queue over the kernel's limits is ERR_IPCKIT_LIMIT naming the
 *   limit, its value and the file or rlimit to raise (see `messageQueueLimits()`).
 */
import { constants as osConstants } from 'node:os';
import { batchError, batchPromise } from '../../core/batch.js';
import { DEFAULT_MAX_PENDING_BYTES, pendingLimitError, RESOLVED, WaitQueue, receiverIterator, type Channel, type Receiver, type Sender, type WaitOptions } from '../../core/channel.js';
import { decodeWith, encodeWith, resolveCodec, type Codec, type CodecOption, type MessageOf } from '../../core/codec.js';
import { abortedError, closedError, errnoError, errnoOf, IpcError, isIpcError, sys } from '../../core/errors.js';
import { checkWaitToOpen, openWhenThere, type WaitToOpenOptions } from '../../core/open.js';
import { readRlimit, sysctlNumber } from '../../os/limits.js';
import { native } from '../../os/native.js';
import { checkOwner, createMode, validateOwnerCheck, type CreateModeOptions, type OwnerCheckOptions } from '../../os/permissions.js';
import { posixPerm, type PosixIpcPerm } from '../../os/ipc-perm.js';
import { FdPoll } from '../../os/fd-stream.js';
import { spinBeforeWait } from '../../os/turn.js';
import { SpinBudget, spinOption } from '../../os/spin.js';
import * as validate from '../../core/validate.js';

const { EAGAIN, EBADF, EEXIST, EINVAL, EMFILE, ENOSPC, ENOMEM, ENOENT } = osConstants.errno;
const O_RDONLY = 0;
const O_WRONLY = 1;
const O_RDWR = 2;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_NONBLOCK = 0o4000;
const TWO_POW_32 = 4294967296;

/** Linux's hard ceilings (ipc/mqueue.c HARD_MSGMAX, HARD_MSGSIZEMAX), whatever the sysctls say. */
const HARD_MSGMAX = 65536;
const HARD_MSGSIZEMAX = 16 * 1024 * 1024;

/** How a handle uses the queue: it 'read's, 'write's, or 'both' (a Channel). */
export type MessageQueueDirection = 'read' | 'write' | 'both';

/** The kernel's message-queue limits that apply to this process, read now. */
export interface MessageQueueLimits {
  /** Most messages a queue may hold (/proc/sys/fs/mqueue/msg_max). */
  msgMax: number;
  /** Largest maxMessageBytes a queue may have (/proc/sys/fs/mqueue/msgsize_max). */
  msgsizeMax: number;
  /** Most queues in this IPC namespace (/proc/sys/fs/mqueue/queues_max). */
  queuesMax: number;
  /** Defaults when a queue is created without attributes (msg_default, msgsize_default). */
  msgDefault: number;
  msgsizeDefault: number;
  /** RLIMIT_MSGQUEUE (soft, hard) in bytes: all queues of this user together; Infinity when unlimited. */
  rlimitMsgqueue: { soft: number; hard: number };
}

export function messageQueueLimits(): MessageQueueLimits {
  return {
    msgMax: sysctlNumber('fs.mqueue.msg_max', 10),
    msgsizeMax: sysctlNumber('fs.mqueue.msgsize_max', 8192),
    queuesMax: sysctlNumber('fs.mqueue.queues_max', 256),
    msgDefault: sysctlNumber('fs.mqueue.msg_default', 10),
    msgsizeDefault: sysctlNumber('fs.mqueue.msgsize_default', 8192),
    rlimitMsgqueue: readRlimit('RLIMIT_MSGQUEUE'),
  };
}

/**
 * Bytes a queue counts against RLIMIT_MSGQUEUE, as Linux accounts it on 64-bit machines:
 * its messages plus a 48-byte header and a 48-byte tree node per message slot.
 */
export function messageQueueBytes(maxMessages: number, maxMessageBytes: number): number {
  validate.integer('maxMessages', maxMessages, 1, HARD_MSGMAX);
  validate.integer('maxMessageBytes', maxMessageBytes, 1, HARD_MSGSIZEMAX);
  return maxMessages * (maxMessageBytes + 48) + Math.min(maxMessages, 32768) * 48;
}

/** What `attributes()` reports (mq_getattr). */
export interface MessageQueueAttributes {
  maxMessages: number;
  maxMessageBytes: number;
  /** Messages waiting in the queue now. */
  currentMessages: number;
}

export interface MessageQueueOptions<C extends CodecOption | undefined = undefined> {
  codec?: C;
  /** Remove the name when this handle closes (default false). */
  unlinkOnClose?: boolean;
  /** Bytes of sends waiting for room this handle holds at most (default 64 MiB); past it `send` rejects with ERR_IPCKIT_LIMIT. */
  maxPendingBytes?: number;
  /**
   * How long a receive that finds the queue empty retries `mq_receive` on the event loop
   * before it waits for the poll, in µs (default 20 where the process may use more than one
   * CPU, else 0; adaptive, as a pipe's: os/spin.ts), and a send that finds it full retries
   * `mq_send`. Never longer than its timeout.
   */
  spinMicros?: number;
}

export interface CreateMessageQueueOptions<C extends CodecOption | undefined = undefined> extends CreateModeOptions, MessageQueueOptions<C> {
  /** Most messages the queue holds (default: /proc/sys/fs/mqueue/msg_default, 10). */
  maxMessages?: number;
  /** Largest message in bytes (default: /proc/sys/fs/mqueue/msgsize_default, 8192). */
  maxMessageBytes?: number;
}

export interface OpenMessageQueueOptions<C extends CodecOption | undefined = undefined> extends OwnerCheckOptions, MessageQueueOptions<C>, WaitToOpenOptions {}

export interface SendOptions extends WaitOptions {
  /** 0 .. MQ_PRIO_MAX - 1 (32767 on Linux; 0..31 is what every POSIX system allows). Higher is received first. Default 0. */
  priority?: number;
}

export interface ReceivedMessage<T> {
  message: T;
  priority: number;
}

function accessFlags(direction: MessageQueueDirection): number {
  return direction === 'read' ? O_RDONLY : direction === 'write' ? O_WRONLY : O_RDWR;
}

function positiveAttr(name: string, value: unknown, hard: number): number | undefined {
  return validate.optionalInteger(name, value, 1, hard);
}

/** Whether this process can open one more descriptor now (a dup of stdin, stdout or stderr, closed at once). */
function haveFreeDescriptor(): boolean {
  for (const fd of [0, 1, 2]) {
    try {
      native.close(native.dupCloexec(fd));
      return true;
    } catch (e) {
      if (errnoOf(e) === EMFILE) return false;
      // EBADF: that one is closed; try the next.
    }
  }
  return true;
}

/** The IpcError for a failed mq_open, naming the limit when one was hit. */
function mapOpenFailure(errno: number, name: string, creating: { maxMessages: number; maxMessageBytes: number } | undefined): IpcError {
  const base = errnoError(errno, 'mq_open', `${creating ? 'create' : 'open'} message queue ${name}`, { path: name });
  if (errno === EEXIST) return new IpcError('ERR_IPCKIT_EXISTS', `message queue ${name} already exists (open it with openMessageQueue, or remove it first)`, { cause: base, path: name, errno, syscall: 'mq_open', systemCode: 'EEXIST' });
  if (errno === ENOENT) return new IpcError('ERR_IPCKIT_NOT_FOUND', `no message queue ${name}`, { cause: base, path: name, errno, syscall: 'mq_open', systemCode: 'ENOENT' });
  if (!creating) return base;
  const limits = messageQueueLimits();
  const fields = { cause: base, path: name, errno, syscall: 'mq_open', systemCode: base.systemCode! };
  if (errno === EINVAL) {
    if (creating.maxMessages > limits.msgMax) {
      return new IpcError('ERR_IPCKIT_LIMIT', `maxMessages ${creating.maxMessages} is above the kernel limit msg_max = ${limits.msgMax}; raise /proc/sys/fs/mqueue/msg_max (root: sysctl fs.mqueue.msg_max=${creating.maxMessages}) or ask for fewer`, {
        ...fields,
        details: { limit: 'fs.mqueue.msg_max', value: limits.msgMax, requested: creating.maxMessages, file: '/proc/sys/fs/mqueue/msg_max' },
      });
    }
    if (creating.maxMessageBytes > limits.msgsizeMax) {
      return new IpcError('ERR_IPCKIT_LIMIT', `maxMessageBytes ${creating.maxMessageBytes} is above the kernel limit msgsize_max = ${limits.msgsizeMax}; raise /proc/sys/fs/mqueue/msgsize_max (root: sysctl fs.mqueue.msgsize_max=${creating.maxMessageBytes}) or ask for less`, {
        ...fields,
        details: { limit: 'fs.mqueue.msgsize_max', value: limits.msgsizeMax, requested: creating.maxMessageBytes, file: '/proc/sys/fs/mqueue/msgsize_max' },
      });
    }
    return base;
  }
  if (errno === ENOSPC) {
    return new IpcError('ERR_IPCKIT_LIMIT', `too many message queues: this IPC namespace allows queues_max = ${limits.queuesMax}; remove unused queues or raise /proc/sys/fs/mqueue/queues_max`, {
      ...fields,
      details: { limit: 'fs.mqueue.queues_max', value: limits.queuesMax, file: '/proc/sys/fs/mqueue/queues_max' },
    });
  }
  if (errno === EMFILE) {
    // mq_open says EMFILE both when this process has no free descriptor and when the
    // queue would pass RLIMIT_MSGQUEUE. Asking for a descriptor tells which, and needs
    // none (reading /proc to find out would need one, and fail the same way).
    if (!haveFreeDescriptor()) return errnoError(errno, 'mq_open', `create message queue ${name}`, { path: name });
    const bytes = messageQueueBytes(creating.maxMessages, creating.maxMessageBytes);
    const rl = limits.rlimitMsgqueue;
    return new IpcError(
      'ERR_IPCKIT_LIMIT',
      `the queue needs about ${bytes} bytes of RLIMIT_MSGQUEUE, which allows ${rl.soft} bytes for all message queues of this user together (hard limit ${rl.hard}); remove unused queues, ask for a smaller queue, or raise the limit (ulimit -q, setrlimit(RLIMIT_MSGQUEUE); above the hard limit needs CAP_SYS_RESOURCE)`,
      { ...fields, details: { limit: 'RLIMIT_MSGQUEUE', value: rl.soft, hard: rl.hard, requestedBytes: bytes } },
    );
  }
  if (errno === ENOMEM) {
    return new IpcError('ERR_IPCKIT_LIMIT', `not enough kernel memory for a queue of ${creating.maxMessages} x ${creating.maxMessageBytes} bytes`, { ...fields, details: { limit: 'memory' } });
  }
  return base;
}


/** The open queue shared by the receiving and the sending side of one handle. */
class QueueCore {
  readonly poll: FdPoll;
  closed = false;
  readonly onClose: Array<() => void> = [];

  constructor(
    readonly name: string,
    readonly fd: number,
    readonly maxMessages: number,
    readonly maxMessageBytes: number,
    readonly unlinkOnClose: boolean,
    /** Bytes of sends waiting for room this handle holds at most. */
    readonly maxPendingBytes: number,
    /** How long an empty receive retries before it waits (MessageQueueOptions.spinMicros). */
    readonly spinMicros: number,
  ) {
    this.poll = new FdPoll(fd, true); // it closes the fd
  }

  error(errno: number, syscall: string, what: string): IpcError {
    if (errno === EBADF || this.closed) return closedError(`message queue ${this.name}`);
    return errnoError(errno, syscall, `${what} on message queue ${this.name}`, { path: this.name });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.onClose) f();
    this.poll.close(); // and the fd with it
    if (this.unlinkOnClose) unlinkMessageQueue(this.name);
  }
}

interface RawMessage {
  bytes: Buffer;
  priority: number;
}

/** What a waiting receive wants: one message, or a batch of up to `max` (0: one). */
interface ReceiveWant {
  withPriority: boolean;
  max: number;
}

/** How many messages one receiveMany call takes at most (the meta array's size). */
const BATCH_MAX = 1024;
const BATCH_BYTES = 64 * 1024;

class ReceivingSide<T> {
  #core: QueueCore;
  #codec: Codec<T>;
  #scratch: Buffer;
  #batchBuffer: Buffer | undefined;
  #meta: Uint32Array | undefined;
  /** Messages taken from the kernel but not yet delivered (after a decode failure in a batch). */
  #pending: RawMessage[] = [];
  #waiters = new WaitQueue<unknown, ReceiveWant>('receive', undefined, () => {
    if (this.#waiters.length === 0) this.#stopPolling();
  });
  #polling = false;
  #spinner: SpinBudget;
  #onReadable = (): void => {
    // Polling stops as soon as nobody waits. While the queue is in our epoll set, each of
    // the peer's mq_send calls runs our epoll's wake-up callback (the kernel wakes a queue's
    // pollers on every send and receive), and a busy sender that shares those locks with us
    // ran at 0.6x C's rate. libuv takes the fd out of epoll lazily, at its next event, so
    // a stop costs no system call now, and the next wait re-adds it: one epoll_ctl pair per
    // wait that reached the poll, not a callback per message.
    if (this.#waiters.length > 0) this.#deliver();
    if (this.#waiters.length === 0) this.#stopPolling();
  };

  constructor(core: QueueCore, codec: Codec<T>) {
    this.#core = core;
    this.#codec = codec;
    this.#scratch = Buffer.allocUnsafeSlow(Math.max(1, core.maxMessageBytes));
    this.#spinner = new SpinBudget(core.spinMicros);
    core.onClose.push(() => {
      this.#pending = [];
      this.#waiters.rejectAll(() => closedError(`message queue ${core.name}`));
      this.#polling = false;
    });
  }

  /** One message (max 0) or a batch of 1..max messages; waits for the first. */
  receive(options: WaitOptions | undefined, withPriority: boolean, max = 0): Promise<unknown> {
    validate.waitOptions(options);
    if (this.#core.closed) return Promise.reject(closedError(`message queue ${this.#core.name}`));
    if (options?.signal?.aborted) return Promise.reject(abortedError('receive', options.signal));
    if (this.#waiters.length === 0) {
      const want = { withPriority, max };
      try {
        let ready = this.#takeNow(want);
        // Empty: retry for a few µs before the poll (spinMicros), once what this thread
        // has batched is written (the peer may be waiting for it): os/turn.ts.
        if (ready === NOTHING) spinBeforeWait(this.#spinner, () => (ready = this.#takeNow(want)) !== NOTHING, options);
        if (ready !== NOTHING) return Promise.resolve(ready);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const p = this.#waiters.enqueue(options, { withPriority, max });
    this.#startPolling();
    return p;
  }

  tryReceive(withPriority: boolean): unknown {
    if (this.#core.closed) throw closedError(`message queue ${this.#core.name}`);
    if (this.#waiters.length > 0) return undefined;
    const ready = this.#takeNow({ withPriority, max: 0 });
    return ready === NOTHING ? undefined : ready;
  }

  /** What `want` asks for, if something is ready now; NOTHING otherwise. Throws a decode error for its message. */
  #takeNow(want: ReceiveWant): unknown {
    if (want.max === 0) {
      const raw = this.#take();
      return raw === undefined ? NOTHING : this.#shape(raw, want.withPriority);
    }
    const out: unknown[] = [];
    this.#collect(out, want.max, want.withPriority);
    return out.length === 0 ? NOTHING : out;
  }

  /**
   * Takes what is ready now into `out`: held-back messages first, then native batches.
   * A message that fails to decode ends the batch; it is thrown if it came first, else
   * held back (with those after it) for the next receive.
   */
  #collect(out: unknown[], max: number, withPriority: boolean): void {
    const start = out.length;
    while (this.#pending.length > 0 && out.length < max) {
      const raw = this.#pending[0]!;
      try {
        out.push(this.#shape(raw, withPriority));
      } catch (e) {
        if (out.length === start) {
          this.#pending.shift();
          throw e;
        }
        return;
      }
      this.#pending.shift();
    }
    while (out.length < max) {
      const n = this.#takeBatch(max - out.length);
      if (n <= 0) return;
      const meta = this.#meta!;
      // Each message gets its own Buffer (as a single receive does): views of one shared
      // block would let a transfer of one message's buffer detach the others of its batch.
      const batch = this.#batchBuffer!;
      let at = 0; // messages are packed one after another in the batch buffer
      for (let i = 0; i < n; i++) {
        const len = meta[2 * i]!;
        const bytes = Buffer.allocUnsafe(len);
        batch.copy(bytes, 0, at, at + len);
        at += len;
        try {
          const message = decodeWith(this.#codec, bytes);
          out.push(withPriority ? { message, priority: meta[2 * i + 1]! } : message);
        } catch (e) {
          // Hold back this message (it is delivered as its error) and the rest of the batch.
          const held: RawMessage[] = [{ bytes, priority: meta[2 * i + 1]! }];
          for (let j = i + 1, a = at; j < n; j++) {
            const l = meta[2 * j]!;
            const rest = Buffer.allocUnsafe(l);
            batch.copy(rest, 0, a, a + l);
            held.push({ bytes: rest, priority: meta[2 * j + 1]! });
            a += l;
          }
          this.#pending.push(...held);
          if (out.length === start) {
            this.#pending.shift();
            throw e;
          }
          return;
        }
      }
      if (n < BATCH_MAX) return;
    }
  }

  #shape(raw: RawMessage, withPriority: boolean): unknown {
    const message = decodeWith(this.#codec, raw.bytes);
    return withPriority ? { message, priority: raw.priority } : message;
  }

  /** One message now, or undefined when the queue is empty. */
  #take(): RawMessage | undefined {
    if (this.#pending.length > 0) return this.#pending.shift();
    const r = native.mqReceive(this.#core.fd, this.#scratch);
    if (r >= 0) {
      const length = r % TWO_POW_32;
      const bytes = Buffer.allocUnsafe(length);
      this.#scratch.copy(bytes, 0, 0, length);
      return { bytes, priority: (r - length) / TWO_POW_32 };
    }
    if (r === -EAGAIN) return undefined;
    throw this.#core.error(-r, 'mq_receive', 'receive');
  }

  /** Up to `max` messages into the batch buffer with one native call; how many (0: none). */
  #takeBatch(max: number): number {
    const size = this.#core.maxMessageBytes;
    if (!this.#batchBuffer) {
      this.#batchBuffer = Buffer.allocUnsafeSlow(Math.max(BATCH_BYTES, size));
      this.#meta = new Uint32Array(BATCH_MAX * 2);
    }
    const n = native.mqReceiveMany(this.#core.fd, this.#batchBuffer, size, Math.min(max, BATCH_MAX), this.#meta!);
    if (n === -EAGAIN) return 0;
    if (n < 0) throw this.#core.error(-n, 'mq_receive', 'receive');
    return n;
  }

  #deliver(): void {
    while (this.#waiters.length > 0) {
      const want = this.#waiters.peek()!;
      let ready: unknown;
      try {
        ready = this.#takeNow(want);
      } catch (e) {
        this.#waiters.rejectNext(e); // that message is consumed: it was undecodable
        if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) this.#waiters.rejectAll(e);
        continue;
      }
      if (ready === NOTHING) break;
      this.#waiters.resolveNext(ready);
    }
  }

  #startPolling(): void {
    if (this.#polling || this.#core.closed) return;
    this.#polling = true;
    this.#core.poll.want('read', this.#onReadable);
  }

  #stopPolling(): void {
    if (!this.#polling) return;
    this.#polling = false;
    if (!this.#core.closed) this.#core.poll.unwant('read');
  }
}

/** "Nothing ready" (undefined could be a decoded message). */
const NOTHING: unique symbol = Symbol('nothing');

interface SendJob {
  payloads: Uint8Array[];
  /** Bytes of all its payloads (fixed: what the job counts against maxPendingBytes). */
  bytes: number;
  /** Index of the next payload to send. */
  next: number;
  priority: number;
}

class SendingSide<T> {
  #core: QueueCore;
  #codec: Codec<T>;
  #waiters = new WaitQueue<void, SendJob>('send', (job) => job.bytes, () => {
    if (this.#waiters.length === 0) this.#stopPolling();
    else this.#flush(); // the cancelled one may have been first: the next may fit now
  });
  #polling = false;
  #spinner: SpinBudget;
  #onWritable = (): void => {
    // As for receiving: stop polling as soon as nobody waits for room (each of the peer's
    // mq_receive calls would run our epoll's callback meanwhile).
    if (this.#waiters.length > 0) this.#flush();
    if (this.#waiters.length === 0) this.#stopPolling();
  };

  constructor(core: QueueCore, codec: Codec<T>) {
    this.#core = core;
    this.#codec = codec;
    this.#spinner = new SpinBudget(core.spinMicros);
    core.onClose.push(() => {
      this.#waiters.rejectAll(() => closedError(`message queue ${core.name}`));
      this.#polling = false;
    });
  }

  #encode(message: T): Uint8Array {
    const payload = encodeWith(this.#codec, message);
    if (payload.length > this.#core.maxMessageBytes) {
      throw new IpcError('ERR_IPCKIT_FRAME_TOO_LARGE', `message to send is ${payload.length} bytes, more than the queue's maxMessageBytes (${this.#core.maxMessageBytes})`, {
        path: this.#core.name,
        details: { length: payload.length, maxMessageBytes: this.#core.maxMessageBytes },
      });
    }
    return payload;
  }

  send(message: T, options: SendOptions | undefined): Promise<void> {
    const priority = sendOptions(options);
    const payload = this.#encode(message);
    if (this.#core.closed) return Promise.reject(closedError(`message queue ${this.#core.name}`));
    if (options?.signal?.aborted) return Promise.reject(abortedError('send', options.signal));
    if (this.#waiters.length === 0) {
      const fd = this.#core.fd;
      let r = native.mqSend(fd, payload, priority);
      // Full: retry for a few µs before the poll (spinMicros), under the rules every spin
      // keeps (os/turn.ts). A queue holds 10 messages by default, so a fast sender finds it
      // full every 10 messages; a receiver on another CPU makes room within a µs or two, far
      // sooner than the poll's wake-up.
      if (r === -EAGAIN) spinBeforeWait(this.#spinner, () => (r = native.mqSend(fd, payload, priority)) !== -EAGAIN, options);
      if (r === 0) return RESOLVED;
      if (r !== -EAGAIN) return Promise.reject(this.#core.error(-r, 'mq_send', 'send'));
    }
    if (this.#waiters.weight + payload.length > this.#core.maxPendingBytes) return Promise.reject(pendingLimitError(`message queue ${this.#core.name}`, this.#waiters.weight, payload.length, this.#core.maxPendingBytes));
    const p = this.#waiters.enqueue(options, { payloads: [payload], bytes: payload.length, next: 0, priority });
    this.#startPolling();
    return p;
  }

  trySend(message: T, options: { priority?: number } | undefined): boolean {
    const priority = validatePriority(validate.object<{ priority: number }>('options', options).priority);
    const payload = this.#encode(message);
    if (this.#core.closed) throw closedError(`message queue ${this.#core.name}`);
    if (this.#waiters.length > 0) return false;
    const r = native.mqSend(this.#core.fd, payload, priority);
    if (r === 0) return true;
    if (r === -EAGAIN) return false;
    throw this.#core.error(-r, 'mq_send', 'send');
  }

  sendMany(messages: Iterable<T>, options: SendOptions | undefined): Promise<void> {
    const priority = sendOptions(options);
    const payloads: Uint8Array[] = [];
    for (const m of validate.iterable<T>('messages', messages)) payloads.push(this.#encode(m));
    if (this.#core.closed) return Promise.reject(batchError(closedError(`message queue ${this.#core.name}`), 0, payloads.length));
    if (options?.signal?.aborted) return Promise.reject(batchError(abortedError('send', options.signal), 0, payloads.length));
    if (payloads.length === 0) return RESOLVED;
    let next = 0;
    if (this.#waiters.length === 0) {
      // What fits now; each time the queue is full, a spin as send's, while the rules allow.
      const fd = this.#core.fd;
      let r = 0;
      const room = (): boolean => (r = native.mqSendMany(fd, payloads, next, priority)) !== -EAGAIN;
      while (room() || spinBeforeWait(this.#spinner, room, options)) {
        if (r < 0) return Promise.reject(batchError(this.#core.error(-r, 'mq_send', 'send'), next, payloads.length));
        next += r;
        if (next === payloads.length) return RESOLVED;
      }
    }
    const bytes = payloads.reduce((n, p) => n + p.length, 0);
    if (this.#waiters.weight + bytes > this.#core.maxPendingBytes) return Promise.reject(batchError(pendingLimitError(`message queue ${this.#core.name}`, this.#waiters.weight, bytes, this.#core.maxPendingBytes), next, payloads.length));
    const job: SendJob = { payloads, bytes, next, priority };
    // Say how far a batch got before its wait ended: those messages are in the queue.
    const p = batchPromise(this.#waiters.enqueue(options, job), payloads.length, () => job.next);
    this.#startPolling();
    return p;
  }

  /** Sends waiting jobs in order while the queue has room. */
  #flush(): void {
    for (;;) {
      const job = this.#waiters.peek();
      if (job === undefined) break;
      let r: number; // how many were sent, or -errno
      if (job.payloads.length - job.next === 1) {
        r = native.mqSend(this.#core.fd, job.payloads[job.next]!, job.priority);
        if (r === 0) r = 1;
      } else {
        r = native.mqSendMany(this.#core.fd, job.payloads, job.next, job.priority);
      }
      if (r === -EAGAIN) break;
      if (r < 0) {
        const e = this.#core.error(-r, 'mq_send', 'send');
        if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) this.#waiters.rejectAll(e);
        else this.#waiters.rejectNext(e);
        continue;
      }
      job.next += r;
      if (job.next < job.payloads.length) break;
      this.#waiters.resolveNext(undefined);
    }
  }

  #startPolling(): void {
    if (this.#polling || this.#core.closed) return;
    this.#polling = true;
    this.#core.poll.want('write', this.#onWritable);
  }

  #stopPolling(): void {
    if (!this.#polling) return;
    this.#polling = false;
    if (!this.#core.closed) this.#core.poll.unwant('write');
  }
}

function validatePriority(value: unknown): number {
  if (value === undefined) return 0;
  return validate.integer('priority', value, 0, native.MQ_PRIO_MAX - 1);
}

/** Checks a send's options whole (priority, timeout, signal); returns the priority. */
function sendOptions(options: SendOptions | undefined): number {
  validate.object('options', options);
  validate.waitOptions(options);
  return validatePriority(options?.priority);
}

/** What every handle has: the name, attributes, close and unlink. */
abstract class MessageQueueHandle {
  protected readonly core: QueueCore;

  constructor(core: QueueCore) {
    this.core = core;
  }

  /** The queue's name as C and Python peers use it (`/jobs`). */
  get name(): string {
    return this.core.name;
  }

  /** Largest message this queue carries, in bytes. */
  get maxMessageBytes(): number {
    return this.core.maxMessageBytes;
  }

  /** Most messages the queue holds. */
  get maxMessages(): number {
    return this.core.maxMessages;
  }

  get closed(): boolean {
    return this.core.closed;
  }

  /** mq_getattr: the queue's size limits and how many messages wait in it now. */
  attributes(): MessageQueueAttributes {
    if (this.core.closed) throw closedError(`message queue ${this.core.name}`);
    const a = sys(`read the attributes of message queue ${this.core.name}`, () => native.mqGetattr(this.core.fd), { path: this.core.name });
    return { maxMessages: a.maxMessages, maxMessageBytes: a.maxMessageBytes, currentMessages: a.currentMessages };
  }

  /** Owner and permission bits of the queue (fstat). */
  owner(): { uid: number; gid: number; mode: number } {
    const p = this.perm();
    return { uid: p.uid, gid: p.gid, mode: p.mode };
  }

  /** The permission record every IPC object reports (fstat): no key, creator or sequence number, which POSIX objects do not have. */
  perm(): PosixIpcPerm {
    if (this.core.closed) throw closedError(`message queue ${this.core.name}`);
    const st = sys(`fstat message queue ${this.core.name}`, () => native.fstat(this.core.fd), { path: this.core.name });
    return posixPerm('mqueue', this.core.name, st);
  }

  /** Removes the name (processes that have it open keep using it). Idempotent: false if it was gone. */
  unlink(): boolean {
    return unlinkMessageQueue(this.core.name);
  }

  /** Releases this handle: pending waits reject with ERR_IPCKIT_CLOSED. Idempotent. The queue itself stays (see unlink). */
  async close(): Promise<void> {
    this.core.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.core.close();
  }
}

/** A handle that receives (opened 'read'). */
export class MessageQueueReceiver<T = Uint8Array> extends MessageQueueHandle implements Receiver<T> {
  readonly #rx: ReceivingSide<T>;

  /** @internal */
  constructor(core: QueueCore, codec: Codec<T>) {
    super(core);
    this.#rx = new ReceivingSide(core, codec);
  }

  /** The next message (highest priority first); waits for one. */
  receive(options?: WaitOptions): Promise<T> {
    return this.#rx.receive(options, false) as Promise<T>;
  }

  /** The next message with its priority. */
  receiveWithPriority(options?: WaitOptions): Promise<ReceivedMessage<T>> {
    return this.#rx.receive(options, true) as Promise<ReceivedMessage<T>>;
  }

  /** The next message if one is waiting now, else undefined. */
  tryReceive(): T | undefined {
    return this.#rx.tryReceive(false) as T | undefined;
  }

  tryReceiveWithPriority(): ReceivedMessage<T> | undefined {
    return this.#rx.tryReceive(true) as ReceivedMessage<T> | undefined;
  }

  /** Waits for at least one message, then returns every one waiting now, up to `max` (one native call for the batch). */
  receiveMany(max?: number, options?: WaitOptions): Promise<T[]> {
    return this.#rx.receive(options, false, validate.batchMax('max', max, BATCH_MAX)) as Promise<T[]>;
  }

  receiveManyWithPriority(max?: number, options?: WaitOptions): Promise<Array<ReceivedMessage<T>>> {
    return this.#rx.receive(options, true, validate.batchMax('max', max, BATCH_MAX)) as Promise<Array<ReceivedMessage<T>>>;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return receiverIterator(this);
  }
}

/** A handle that sends (opened 'write'). */
export class MessageQueueSender<T = Uint8Array> extends MessageQueueHandle implements Sender<T> {
  readonly #tx: SendingSide<T>;

  /** @internal */
  constructor(core: QueueCore, codec: Codec<T>) {
    super(core);
    this.#tx = new SendingSide(core, codec);
  }

  /** Resolves once the message is in the queue; waits while it is full. */
  send(message: T, options?: SendOptions): Promise<void> {
    return this.#tx.send(message, options);
  }

  /** Puts the message in the queue and returns true, or returns false when it is full. */
  trySend(message: T, options?: { priority?: number }): boolean {
    return this.#tx.trySend(message, options);
  }

  /**
   * Sends every message in order, all with one priority, with one native call per
   * batch of what fits. On timeout or abort the error's `details.sent` says how many
   * went in.
   */
  sendMany(messages: Iterable<T>, options?: SendOptions): Promise<void> {
    return this.#tx.sendMany(messages, options);
  }
}

/**
 * A handle that sends and receives (opened 'both'): a Channel. It is a receiving handle
 * with the sending side added, so the receive methods are written once.
 */
export class MessageQueue<T = Uint8Array> extends MessageQueueReceiver<T> implements Channel<T> {
  readonly #tx: SendingSide<T>;

  /** @internal */
  constructor(core: QueueCore, codec: Codec<T>) {
    super(core, codec);
    this.#tx = new SendingSide(core, codec);
  }

  send(message: T, options?: SendOptions): Promise<void> {
    return this.#tx.send(message, options);
  }

  trySend(message: T, options?: { priority?: number }): boolean {
    return this.#tx.trySend(message, options);
  }

  sendMany(messages: Iterable<T>, options?: SendOptions): Promise<void> {
    return this.#tx.sendMany(messages, options);
  }
}

function makeHandle<T>(direction: MessageQueueDirection, core: QueueCore, codec: Codec<T>): MessageQueueReceiver<T> | MessageQueueSender<T> | MessageQueue<T> {
  if (direction === 'read') return new MessageQueueReceiver(core, codec);
  if (direction === 'write') return new MessageQueueSender(core, codec);
  return new MessageQueue(core, codec);
}

/** Opens (or creates) with mq_open, mapping failures to codes; the fd is O_NONBLOCK. */
function mqOpen(name: string, flags: number, mode: number, attrs: { maxMessages: number; maxMessageBytes: number } | undefined): number {
  try {
    return native.mqOpen(name, flags | O_NONBLOCK, mode, attrs?.maxMessages ?? 0, attrs?.maxMessageBytes ?? 0);
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === undefined) throw e;
    throw mapOpenFailure(errno, name, attrs);
  }
}

/**
 * Creates a queue (exclusively: an existing name is ERR_IPCKIT_EXISTS) and opens it.
 * Its mode is exactly `mode` (default 0o600), whatever the umask.
 */
export function createMessageQueue<C extends CodecOption | undefined = undefined>(name: string, options: CreateMessageQueueOptions<C> = {}): MessageQueue<MessageOf<C>> {
  const qname = validate.posixName(name);
  validate.object('options', options);
  const { mode, group } = createMode(options);
  // The kernel's defaults, read only when an attribute is not given (each is a /proc read).
  const maxMessages = positiveAttr('maxMessages', options.maxMessages, HARD_MSGMAX) ?? sysctlNumber('fs.mqueue.msg_default', 10);
  const maxMessageBytes = positiveAttr('maxMessageBytes', options.maxMessageBytes, HARD_MSGSIZEMAX) ?? sysctlNumber('fs.mqueue.msgsize_default', 8192);
  const codec = resolveCodec(options.codec) as Codec<MessageOf<C>>;
  validate.optionalBoolean('unlinkOnClose', options.unlinkOnClose);
  validate.optionalInteger('maxPendingBytes', options.maxPendingBytes, 0);
  spinOption(options.spinMicros);
  // Owner-only until the exact mode is set through the fd: never wider, even for a moment.
  const fd = mqOpen(qname, O_RDWR | O_CREAT | O_EXCL, mode & 0o700, { maxMessages, maxMessageBytes });
  let core: QueueCore | undefined;
  try {
    if (group !== undefined) sys(`set the group of message queue ${qname}`, () => native.fchown(fd, -1, group), { path: qname });
    sys(`set the mode of message queue ${qname}`, () => native.fchmod(fd, mode), { path: qname });
    const a = sys(`read the attributes of message queue ${qname}`, () => native.mqGetattr(fd), { path: qname });
    core = new QueueCore(qname, fd, a.maxMessages, a.maxMessageBytes, options.unlinkOnClose === true, options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES, spinOption(options.spinMicros));
    return new MessageQueue(core, codec);
  } catch (e) {
    if (core) core.poll.close(); // it owns the fd now
    else native.close(fd);
    try {
      native.mqUnlink(qname);
    } catch {
      /* it was ours; nothing more to do */
    }
    throw e;
  }
}

type HandleFor<D extends MessageQueueDirection, T> = D extends 'read' ? MessageQueueReceiver<T> : D extends 'write' ? MessageQueueSender<T> : MessageQueue<T>;

/**
 * Opens an existing queue to read, write, or both (the default: a Channel). Its owner and
 * mode are checked (fstat) before it is used: ERR_IPCKIT_PERMISSION if another user made
 * it or it is wider than allowed, unless `{ anyOwner: true }` or `{ owner, mode }` say that
 * is expected. With `{ wait: true }` it waits for the name to exist (within `timeout`).
 */
export function openMessageQueue<C extends CodecOption | undefined = undefined>(name: string, options?: OpenMessageQueueOptions<C>): Promise<MessageQueue<MessageOf<C>>>;
export function openMessageQueue<C extends CodecOption | undefined = undefined, D extends MessageQueueDirection = 'both'>(name: string, direction: D, options?: OpenMessageQueueOptions<C>): Promise<HandleFor<D, MessageOf<C>>>;
export function openMessageQueue<C extends CodecOption | undefined = undefined>(
  name: string,
  directionOrOptions?: MessageQueueDirection | OpenMessageQueueOptions<C>,
  maybeOptions?: OpenMessageQueueOptions<C>,
): Promise<MessageQueue<MessageOf<C>> | MessageQueueReceiver<MessageOf<C>> | MessageQueueSender<MessageOf<C>>> {
  const { qname, options, open } = checkOpen<C>(name, directionOrOptions, maybeOptions);
  return openWhenThere(`open message queue ${qname}`, options, open);
}

/** openMessageQueue for workers and scripts: the handle itself, at once (it never waits for the name). */
export function openMessageQueueSync<C extends CodecOption | undefined = undefined>(name: string, options?: OpenMessageQueueOptions<C>): MessageQueue<MessageOf<C>>;
export function openMessageQueueSync<C extends CodecOption | undefined = undefined, D extends MessageQueueDirection = 'both'>(name: string, direction: D, options?: OpenMessageQueueOptions<C>): HandleFor<D, MessageOf<C>>;
export function openMessageQueueSync<C extends CodecOption | undefined = undefined>(
  name: string,
  directionOrOptions?: MessageQueueDirection | OpenMessageQueueOptions<C>,
  maybeOptions?: OpenMessageQueueOptions<C>,
): MessageQueue<MessageOf<C>> | MessageQueueReceiver<MessageOf<C>> | MessageQueueSender<MessageOf<C>> {
  return checkOpen<C>(name, directionOrOptions, maybeOptions).open();
}

/** Checks an open's arguments (they throw at once) and returns the open itself. */
function checkOpen<C extends CodecOption | undefined>(
  name: string,
  directionOrOptions: MessageQueueDirection | OpenMessageQueueOptions<C> | undefined,
  maybeOptions: OpenMessageQueueOptions<C> | undefined,
): { qname: string; options: OpenMessageQueueOptions<C>; open: () => MessageQueue<MessageOf<C>> | MessageQueueReceiver<MessageOf<C>> | MessageQueueSender<MessageOf<C>> } {
  const qname = validate.posixName(name);
  const direction = typeof directionOrOptions === 'string' || directionOrOptions === null || typeof directionOrOptions !== 'object' ? validate.oneOf('direction', directionOrOptions ?? 'both', ['read', 'write', 'both'] as const) : 'both';
  const options = validate.object<OpenMessageQueueOptions<C>>('options', typeof directionOrOptions === 'object' && directionOrOptions !== null ? directionOrOptions : maybeOptions) as OpenMessageQueueOptions<C>;
  validateOwnerCheck(options);
  checkWaitToOpen(options);
  const codec = resolveCodec(options.codec) as Codec<MessageOf<C>>;
  validate.optionalBoolean('unlinkOnClose', options.unlinkOnClose);
  validate.optionalInteger('maxPendingBytes', options.maxPendingBytes, 0);
  spinOption(options.spinMicros);
  const open = (): MessageQueue<MessageOf<C>> | MessageQueueReceiver<MessageOf<C>> | MessageQueueSender<MessageOf<C>> => {
    const fd = mqOpen(qname, accessFlags(direction), 0, undefined);
    let core: QueueCore | undefined;
    try {
      const st = sys(`fstat message queue ${qname}`, () => native.fstat(fd), { path: qname });
      checkOwner(st, `message queue ${qname}`, options);
      const a = sys(`read the attributes of message queue ${qname}`, () => native.mqGetattr(fd), { path: qname });
      core = new QueueCore(qname, fd, a.maxMessages, a.maxMessageBytes, options.unlinkOnClose === true, options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES, spinOption(options.spinMicros));
      return makeHandle(direction, core, codec);
    } catch (e) {
      if (core) core.poll.close(); // it owns the fd now
      else native.close(fd);
      throw e;
    }
  };
  return { qname, options, open };
}

/** Removes a queue's name. Idempotent: false if there was none. */
export function unlinkMessageQueue(name: string): boolean {
  const qname = validate.posixName(name);
  try {
    native.mqUnlink(qname);
    return true;
  } catch (e) {
    if (errnoOf(e) === ENOENT) return false;
    return sys(`remove message queue ${qname}`, () => {
      throw e;
    }, { path: qname });
  }
}

