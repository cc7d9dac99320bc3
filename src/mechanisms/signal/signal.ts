/**
 * Signals as an IPC mechanism, with what Node's process.on() cannot give: the sender's
 * pid and uid, a value (sigqueue), and real-time signals.
 *
 * - `sendSignal(pid, signal, { value })`: kill(2), or sigqueue(3) when a value is given.
 * - `onSignal(signal, handler)`, `waitForSignal(signal, { timeout, signal })` and
 *   `signalReceiver(signals)` report `{ signal, number, pid, uid, value, code }`. A native
 *   SA_SIGINFO handler (native/signal.cc) writes each siginfo into a pipe that the event
 *   loop watches; nothing runs JavaScript inside the handler.
 * - Real-time signals (SIGRTMIN+n) queue in the kernel in order, as many as sent, up to
 *   RLIMIT_SIGPENDING (then sigqueue fails: ERR_IPCKIT_LIMIT). Standard signals (SIGUSR2,
 *   SIGTERM, ...) do not queue: several sent before the first is delivered arrive as one.
 *   Count on "at least one", never on a number.
 * - Node's own process.on() listeners for the same signal keep working: our handler
 *   chains to libuv's. When Node installs or removes its handler (the first listener is
 *   added, the last removed), ipckit puts its own back at once, chaining again.
 * - Refused: SIGKILL and SIGSTOP (cannot be caught), SIGUSR1 (Node's debugger), fault
 *   signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS), the signals Node,
 *   libuv and V8 use (SIGPIPE, SIGCHLD, SIGPROF, and 32/33 of NPTL), and any listener in a
 *   worker thread (process-wide handlers belong to the main thread).
 * - `watchProcess(pid)` (from liveness.ts): settles when a process exits, through a pidfd.
 */
import { constants as osConstants } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { cancellableWait, WaitQueue, receiverIterator, type Receiver, type WaitOptions } from '../../core/channel.js';
import { closedError, errnoError, errnoOf, invalidArgument, IpcError } from '../../core/errors.js';
import { native, type FdWatcher } from '../../os/native.js';
import * as validate from '../../core/validate.js';
import { SpinBudget, spinOption } from '../../os/spin.js';
import { spinBeforeWait } from '../../os/turn.js';

export { watchProcess, isProcessAlive, processStartTime } from '../../os/liveness.js';

const S = native.signalConstants;
const SIG = osConstants.signals as Record<string, number>;
const E = osConstants.errno;

/** A signal as users write it: 'SIGUSR2', 'USR2', 'SIGRTMIN+3', 'RTMAX-1', or its number. */
export type SignalLike = string | number;

export interface SignalInfo {
  /** Name: 'SIGUSR2', 'SIGRTMIN+3'. */
  signal: string;
  number: number;
  /** Sender's pid (0 when the kernel sent it). */
  pid: number;
  /** Sender's real uid. */
  uid: number;
  /** The value passed to sigqueue (undefined for kill). */
  value: number | undefined;
  /** How it was sent: kill(2), sigqueue(3), tgkill/tkill, or by the kernel. */
  code: 'kill' | 'sigqueue' | 'tkill' | 'kernel' | 'other';
}

const NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(SIG)) if (!NAMES.has(n) && name !== 'SIGIOT' && name !== 'SIGPOLL' && name !== 'SIGUNUSED') NAMES.set(n, name);

/** The canonical name of a signal number: 'SIGUSR2', 'SIGRTMIN+3'. */
export function signalName(n: number): string {
  validate.integer('signal', n, 0, S.SIGRTMAX);
  if (n >= S.SIGRTMIN && n <= S.SIGRTMAX) return n === S.SIGRTMIN ? 'SIGRTMIN' : `SIGRTMIN+${n - S.SIGRTMIN}`;
  return NAMES.get(n) ?? `SIG${n}`;
}

/** The number of a signal written as a user would: 'SIGUSR2', 'usr2', 'SIGRTMIN+3', 'RTMAX-2', 12. */
export function signalNumber(signal: SignalLike): number {
  if (typeof signal === 'number') return validate.integer('signal', signal, 0, S.SIGRTMAX);
  const text = validate.string('signal', signal).trim().toUpperCase();
  if (/^\d+$/.test(text)) return validate.integer('signal', Number(text), 0, S.SIGRTMAX);
  const name = text.startsWith('SIG') ? text : `SIG${text}`;
  const rt = /^SIGRT(MIN|MAX)(?:([+-])(\d+))?$/.exec(name);
  if (rt) {
    const base = rt[1] === 'MIN' ? S.SIGRTMIN : S.SIGRTMAX;
    const n = base + (rt[2] === '-' ? -1 : 1) * Number(rt[3] ?? 0);
    if (n < S.SIGRTMIN || n > S.SIGRTMAX) throw invalidArgument(`${signal} is outside the real-time signals SIGRTMIN (${S.SIGRTMIN}) .. SIGRTMAX (${S.SIGRTMAX})`);
    return n;
  }
  const n = SIG[name];
  if (n === undefined) throw invalidArgument(`unknown signal ${validate.describe(signal)}: use a name like "SIGUSR2", "USR2", "SIGRTMIN+3", or a number`);
  return n;
}

const UNCATCHABLE = new Set([SIG.SIGKILL, SIG.SIGSTOP]);
const REFUSED: Record<number, string> = {
  [SIG.SIGUSR1!]: 'SIGUSR1 starts Node\'s debugger (inspector): use SIGUSR2 or a real-time signal',
  [SIG.SIGSEGV!]: 'SIGSEGV is a fault signal: after it, running JavaScript is not safe',
  [SIG.SIGBUS!]: 'SIGBUS is a fault signal: after it, running JavaScript is not safe',
  [SIG.SIGFPE!]: 'SIGFPE is a fault signal: after it, running JavaScript is not safe',
  [SIG.SIGILL!]: 'SIGILL is a fault signal: after it, running JavaScript is not safe',
  [SIG.SIGTRAP!]: 'SIGTRAP belongs to debuggers',
  [SIG.SIGABRT!]: 'SIGABRT is raised by abort(): the process is going down',
  [SIG.SIGSYS!]: 'SIGSYS is a fault signal (a bad system call)',
  [SIG.SIGPIPE!]: 'SIGPIPE is ignored by Node on purpose (writes report EPIPE instead)',
  [SIG.SIGCHLD!]: 'SIGCHLD is how libuv learns that child processes exited',
  [SIG.SIGPROF!]: 'SIGPROF drives V8\'s CPU profiler',
};

/** Throws unless ipckit can own a handler for `n`. */
function checkCatchable(n: number, signal: SignalLike): void {
  if (n === 0) throw invalidArgument('signal 0 is not a signal (kill(pid, 0) only checks that a process exists)');
  if (UNCATCHABLE.has(n)) throw invalidArgument(`${signalName(n)} cannot be caught, blocked or ignored: no handler can see it`);
  const why = REFUSED[n];
  if (why) throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `ipckit does not handle ${signalName(n)}: ${why}`);
  if (n > SIG.SIGSYS! && n < S.SIGRTMIN) throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `signal ${n} is reserved by the C library's threads (NPTL); use SIGRTMIN..SIGRTMAX`);
  if (!isMainThread) throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `signal handlers are process-wide and belong to the main thread: listen for ${validate.describe(signal)} there and pass the news to this worker`);
}

// --- sending ---

export interface SendSignalOptions {
  /** An int32 carried to an SA_SIGINFO receiver (sigqueue(3)); without it, kill(2) is used. */
  value?: number;
}

/**
 * Sends `signal` to process `pid` (a positive pid: process groups are not addressed
 * here). With `value`, uses sigqueue: real-time signals then queue (up to the receiver's
 * RLIMIT_SIGPENDING; beyond, ERR_IPCKIT_LIMIT). ERR_IPCKIT_NOT_FOUND: no such process;
 * ERR_IPCKIT_PERMISSION: not allowed to signal it.
 */
export function sendSignal(pid: number, signal: SignalLike, options: SendSignalOptions = {}): void {
  validate.integer('pid', pid, 1, 2 ** 31 - 1);
  const n = signalNumber(signal);
  validate.object('options', options);
  const value = options.value === undefined ? undefined : validate.integer('value', options.value, -(2 ** 31), 2 ** 31 - 1);
  try {
    if (value === undefined) native.kill(pid, n);
    else native.sigqueue(pid, n, value);
  } catch (e) {
    const errno = errnoOf(e) ?? 0;
    const syscall = value === undefined ? 'kill' : 'sigqueue';
    const what = `send ${signalName(n)} to process ${pid}`;
    if (errno === E.EAGAIN) {
      throw new IpcError('ERR_IPCKIT_LIMIT', `${what}: the receiver's queue of pending signals is full (RLIMIT_SIGPENDING, \`ulimit -i\`)`, {
        cause: e,
        errno,
        syscall,
        systemCode: 'EAGAIN',
        details: { limit: 'RLIMIT_SIGPENDING' },
      });
    }
    if (errno === E.ESRCH) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `${what}: no such process`, { cause: e, errno, syscall, systemCode: 'ESRCH' });
    throw errnoError(errno, syscall, what);
  }
}

// --- receiving: one dispatcher for the process ---

interface Listener {
  handler: (info: SignalInfo) => void;
  /** Keeps the process alive while registered (waits and receivers do; onSignal does not). */
  keepAlive: boolean;
}

const listeners = new Map<number, Set<Listener>>();
let watcher: FdWatcher | null = null;
let pipeFd = -1;
let keepAliveCount = 0;
let hooksInstalled = false;
let dropped = 0;
const records = Buffer.alloc(S.RECORD_SIZE * 1024);
/** Records read ahead of the watcher (see discardStaleRecords), dispatched before the pipe's. */
let backlog: Buffer | null = null;

function codeOf(c: number): SignalInfo['code'] {
  if (c === S.SI_USER) return 'kill';
  if (c === S.SI_QUEUE) return 'sigqueue';
  if (c === S.SI_TKILL) return 'tkill';
  return c > 0 ? 'kernel' : 'other';
}

function readRecords(): void {
  if (backlog !== null) {
    const early = backlog;
    backlog = null;
    dispatch(early, early.length);
  }
  for (;;) {
    const n = native.read(pipeFd, records, 0, records.length);
    if (n <= 0) break;
    dispatch(records, n);
    if (n < records.length) break;
  }
  // The pipe has room again: signals held in the kernel while it was full come now.
  native.releaseHeldSignals();
  dropped += native.takeDroppedSignals();
}

/** Calls the listeners of each record in `buf[0..n)`. */
function dispatch(buf: Buffer, n: number): void {
  for (let off = 0; off + S.RECORD_SIZE <= n; off += S.RECORD_SIZE) {
    const number = buf.readInt32LE(off);
    const code = buf.readInt32LE(off + 4);
    const info: SignalInfo = {
      signal: signalName(number),
      number,
      pid: buf.readInt32LE(off + 8),
      uid: buf.readUInt32LE(off + 12),
      value: code === S.SI_QUEUE ? buf.readInt32LE(off + 16) : undefined,
      code: codeOf(code),
    };
    const set = listeners.get(number);
    if (!set) continue;
    for (const l of [...set]) {
      try {
        l.handler(info);
      } catch (e) {
        // A throwing handler must not stop the others: report it like an event listener would.
        process.nextTick(() => {
          throw e;
        });
      }
    }
  }
}

/**
 * Before a handler is installed afresh for `n`: records of `n` still unread were written
 * for subscribers that have gone (none is written while no handler is installed), and must
 * not reach the new one (it sees deliveries after its call). Reads the pipe now, drops
 * those, and keeps the others, in order, for the next dispatch.
 */
function discardStaleRecords(n: number): void {
  if (pipeFd < 0) return;
  const kept: Buffer[] = [];
  const keep = (buf: Buffer, len: number): void => {
    for (let off = 0; off + S.RECORD_SIZE <= len; off += S.RECORD_SIZE) {
      if (buf.readInt32LE(off) !== n) kept.push(Buffer.from(buf.subarray(off, off + S.RECORD_SIZE)));
    }
  };
  if (backlog !== null) keep(backlog, backlog.length);
  for (;;) {
    const got = native.read(pipeFd, records, 0, records.length);
    if (got <= 0) break;
    keep(records, got);
    if (got < records.length) break;
  }
  native.releaseHeldSignals();
  backlog = kept.length === 0 ? null : Buffer.concat(kept);
  if (backlog !== null) setImmediate(() => backlog !== null && readRecords());
}

function updateWatcher(): void {
  const any = [...listeners.values()].some((s) => s.size > 0);
  if (!any) {
    watcher?.stop();
    return;
  }
  if (!watcher) {
    pipeFd = native.signalPipe();
    watcher = new native.FdWatcher(pipeFd, () => readRecords());
  }
  watcher.start(1);
  watcher.setLoopRef(keepAliveCount > 0);
}

/** Keeps our handler installed when Node adds or removes its own (process.on/off). */
function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const reinstall = (event: string | symbol): void => {
    if (typeof event !== 'string' || !event.startsWith('SIG')) return;
    const n = SIG[event];
    if (n !== undefined && (listeners.get(n)?.size ?? 0) > 0) native.installSignal(n);
  };
  // Node's own newListener/removeListener hooks were registered at startup, so they have
  // already (un)installed libuv's handler when ours run, in the same synchronous call.
  process.on('newListener', reinstall);
  process.on('removeListener', reinstall);
}

function addListener(n: number, listener: Listener): void {
  let set = listeners.get(n);
  if (!set) listeners.set(n, (set = new Set()));
  if (set.size === 0) {
    installHooks();
    discardStaleRecords(n);
    native.installSignal(n);
  }
  set.add(listener);
  if (listener.keepAlive) keepAliveCount++;
  updateWatcher();
}

function removeListener(n: number, listener: Listener): void {
  const set = listeners.get(n);
  if (!set || !set.delete(listener)) return;
  if (listener.keepAlive) keepAliveCount--;
  if (set.size === 0) native.uninstallSignal(n);
  updateWatcher();
}

/**
 * Deliveries lost since the process started: JavaScript had not read 32768 records (its
 * event loop was blocked) and the kernel's queue of pending signals was full as well.
 */
export function droppedSignals(): number {
  if (pipeFd >= 0) dropped += native.takeDroppedSignals();
  return dropped;
}

/** Whether ipckit's handler is the one installed for `signal` now (diagnostics, tests). */
export function isSignalHandled(signal: SignalLike): boolean {
  return native.signalHandlerIsOurs(signalNumber(signal));
}

/** A registration of `onSignal`; `close()` (or `using`) removes it. */
export interface SignalSubscription extends Disposable {
  readonly signal: string;
  close(): void;
}

export interface OnSignalOptions {
  /** Keep the process alive while subscribed (default false, like process.on). */
  keepAlive?: boolean;
}

/**
 * Calls `handler` for every delivery of `signal`, on the event loop, with its sender and
 * value. Installing it replaces the signal's default action (a SIGTERM no longer ends the
 * process) until the last subscription closes.
 */
export function onSignal(signal: SignalLike, handler: (info: SignalInfo) => void, options: OnSignalOptions = {}): SignalSubscription {
  const n = signalNumber(signal);
  validate.func('handler', handler);
  validate.object('options', options);
  const keepAlive = validate.optionalBoolean('keepAlive', options.keepAlive) ?? false;
  checkCatchable(n, signal);
  const listener: Listener = { handler, keepAlive };
  addListener(n, listener);
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    removeListener(n, listener);
  };
  return { signal: signalName(n), close, [Symbol.dispose]: close };
}

/**
 * Waits for the next delivery of `signal` (one that arrives after this call), keeping
 * the process alive meanwhile. Takes `timeout` and `signal` (an AbortSignal) like every wait.
 */
export function waitForSignal(signal: SignalLike, options?: WaitOptions): Promise<SignalInfo> {
  const n = signalNumber(signal);
  validate.waitOptions(options);
  checkCatchable(n, signal);
  return cancellableWait<SignalInfo>(`wait for ${signalName(n)}`, options, (resolve) => {
    const listener: Listener = {
      keepAlive: true,
      handler: (info) => {
        removeListener(n, listener);
        resolve(info);
      },
    };
    addListener(n, listener);
    return () => removeListener(n, listener);
  });
}

export interface SignalReceiverOptions {
  /** Deliveries kept until received (default 65536); beyond, they are counted in `dropped`. */
  capacity?: number;
  /**
   * How long a receive that finds nothing reads the handler's pipe again on the event loop
   * before it waits for the poll, in µs (default 20 where the process may use more than one
   * CPU, else 0; adaptive, as a pipe's: os/spin.ts). Never longer than its timeout. A sender
   * on another CPU whose signal comes within it saves this side a wake-up.
   */
  spinMicros?: number;
}

/**
 * A Receiver of the deliveries of one or more signals, queued from the moment it is
 * created: nothing sent after this call is missed (within `capacity`). Keeps the process
 * alive while a receive is pending.
 */
export class SignalReceiver implements Receiver<SignalInfo> {
  readonly signals: string[];
  #numbers: number[];
  #listener: Listener;
  #queue: SignalInfo[] = [];
  #head = 0;
  #waiters = new WaitQueue<SignalInfo>('receive signal', undefined, () => this.#updateKeepAlive());
  #capacity: number;
  #closed = false;
  #waitingListener: Listener | null = null;
  readonly #spinner: SpinBudget;
  /** One retry of a spinning receive: reads the pipe (dispatching to every listener, as the loop would). */
  #spinFound = (): boolean => {
    readRecords();
    return this.#head < this.#queue.length || this.#closed;
  };
  /** Deliveries dropped because the queue was full. */
  dropped = 0;

  constructor(signals: SignalLike | SignalLike[], options: SignalReceiverOptions = {}) {
    const list = Array.isArray(signals) ? signals : [signals];
    if (list.length === 0) throw invalidArgument('signals must name at least one signal, got an empty array');
    const numbers = list.map((s) => signalNumber(s));
    validate.object('options', options);
    this.#capacity = validate.optionalInteger('capacity', options.capacity, 1) ?? 65536;
    this.#spinner = new SpinBudget(spinOption(options.spinMicros));
    numbers.forEach((n, i) => checkCatchable(n, list[i]!));
    this.#numbers = [...new Set(numbers)];
    this.signals = this.#numbers.map(signalName);
    this.#listener = { keepAlive: false, handler: (info) => this.#push(info) };
    for (const n of this.#numbers) addListener(n, this.#listener);
  }

  receive(options?: WaitOptions): Promise<SignalInfo> {
    validate.waitOptions(options); // before the fast path: a bad option throws even when a delivery is queued
    if (this.#head < this.#queue.length) return Promise.resolve(this.#shift());
    if (this.#closed) return Promise.reject(closedError('signal receiver'));
    // Nothing yet: read the pipe again for a few µs before the poll (spinMicros), once what
    // this thread has batched is written (the peer may be waiting for it to answer).
    if (this.#waiters.length === 0 && spinBeforeWait(this.#spinner, this.#spinFound, options)) {
      if (this.#head < this.#queue.length) return Promise.resolve(this.#shift());
      return Promise.reject(closedError('signal receiver')); // a listener closed it meanwhile
    }
    const p = this.#waiters.enqueue(options, undefined);
    this.#updateKeepAlive();
    return p;
  }

  tryReceive(): SignalInfo | undefined {
    if (this.#head < this.#queue.length) return this.#shift();
    if (this.#closed) throw closedError('signal receiver');
    return undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<SignalInfo> {
    return receiverIterator(this);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const n of this.#numbers) removeListener(n, this.#listener);
    this.#waiters.rejectAll(() => closedError('signal receiver'));
    this.#updateKeepAlive();
    this.#queue = [];
    this.#head = 0;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #push(info: SignalInfo): void {
    if (this.#waiters.resolveNext(info)) {
      this.#updateKeepAlive();
      return;
    }
    if (this.#queue.length - this.#head >= this.#capacity) {
      this.dropped++;
      return;
    }
    this.#queue.push(info);
  }

  #shift(): SignalInfo {
    const v = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as unknown as SignalInfo;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    }
    return v;
  }

  /** While a receive waits, a keep-alive listener on the first signal keeps the loop referenced. */
  #updateKeepAlive(): void {
    const want = !this.#closed && this.#waiters.length > 0;
    if (want && !this.#waitingListener) {
      this.#waitingListener = { keepAlive: true, handler: () => {} };
      addListener(this.#numbers[0]!, this.#waitingListener);
    } else if (!want && this.#waitingListener) {
      removeListener(this.#numbers[0]!, this.#waitingListener);
      this.#waitingListener = null;
    }
  }
}

/** A Receiver of `signals`' deliveries, queued from now on. */
export function signalReceiver(signals: SignalLike | SignalLike[], options?: SignalReceiverOptions): SignalReceiver {
  return new SignalReceiver(signals, options);
}
