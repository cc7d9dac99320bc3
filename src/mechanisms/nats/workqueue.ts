/**
 * The work queue (src/core/work-queue.ts) over NATS JetStream, across hosts:
 * `openNatsWorkQueue('nats://host:4222/jobs')`.
 *
 * Layout on the server (made on first open, shared by every handle after):
 * - stream NAME, subject `ipckit.workqueue.NAME`, work-queue retention (a job is removed
 *   once acknowledged), file storage (it survives a server restart), optionally bounded
 *   (`capacity`, discard new: a put to a full queue waits);
 * - durable pull consumer `workers` with explicit acks and `ackWait`: a job taken and not
 *   acknowledged is delivered again when its holder closes, or `ackWait` after its holder
 *   died or hung (a live holder restarts the wait with "in progress" beats);
 * - stream NAME-dead, subject `ipckit.workqueue.NAME.dead`: a job taken `maxDeliveries`
 *   times without an acknowledgement is published there (deduplicated by the job's id),
 *   then acknowledged in the work queue, by whichever consumer takes it once more.
 *
 * The consumer's settings that every handle must agree on (`maxDeliveries`) are kept in
 * the consumer's description, so a handle opened later follows the queue, not its options.
 */
import { cancellableWait, receiverIterator, WaitQueue, type WaitOptions } from '../../core/channel.js';
import { decodeWith, encodeWith, resolveCodec, type Codec, type CodecOption, type MessageOf } from '../../core/codec.js';
import { closedError, invalidArgument, IpcError, isIpcError } from '../../core/errors.js';
import type { Job, WorkQueueContract, WorkQueueStats } from '../../core/work-queue.js';
import * as validate from '../../core/validate.js';
import type { Consumer, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { natsError, NatsClient, parseNatsUrl, type NatsConnectOptions } from './connection.js';

export interface NatsWorkQueueOptions<C extends CodecOption | undefined = undefined> extends NatsConnectOptions {
  codec?: C;
  /** Milliseconds a taken job may stay unacknowledged before it is delivered again (default 30000). Set when the queue is made. */
  ackWait?: number;
  /** Deliveries without an acknowledgement after which a job goes to the dead-letter subject (default 5). Set when the queue is made. */
  maxDeliveries?: number;
  /** Most jobs held (ready plus in flight); a put waits while it is full. Default: unbounded (the server's storage limits). Set when the queue is made. */
  capacity?: number;
  /** Copies of the stream in a cluster (1, 3 or 5; default 1). Set when the queue is made. */
  replicas?: number;
  /** Make the stream and consumer if they do not exist (default true); false: ERR_IPCKIT_NOT_FOUND. */
  create?: boolean;
}

/** A job as this handle holds it: the message to acknowledge, plus the Job the user sees. */
interface Taken<T> {
  job: Job<T>;
  msg: JsMsg;
}

const CONSUMER = 'workers';
/** How long one pull request waits on the server (the client's minimum is 1 s). */
const PULL_EXPIRES_MS = 5000;
/** Acknowledged ids remembered to ignore a redelivery of a job whose acknowledgement got lost. */
const ACKED_MEMORY = 65536;
const NAME_RE = /^[A-Za-z0-9_-]{1,200}$/;
/** JetStream's acknowledgement payload. */
const ACK = new TextEncoder().encode('+ACK');

export function workQueueSubjects(name: string): { stream: string; subject: string; deadStream: string; deadSubject: string } {
  return { stream: name, subject: `ipckit.workqueue.${name}`, deadStream: `${name}-dead`, deadSubject: `ipckit.workqueue.${name}.dead` };
}

const nanos = (ms: number): number => ms * 1_000_000;

/** The JetStream modules, imported on first use only. */
let jetstreamModule: Promise<typeof import('@nats-io/jetstream')> | undefined;
function loadJetStream(): Promise<typeof import('@nats-io/jetstream')> {
  jetstreamModule ??= import('@nats-io/jetstream').catch((e: unknown) => {
    jetstreamModule = undefined;
    throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `the JetStream client (@nats-io/jetstream) could not be loaded: ${(e as Error).message}`, { cause: e });
  });
  return jetstreamModule;
}

interface Setup {
  js: JetStreamClient;
  jsm: JetStreamManager;
  consumer: Consumer;
  maxDeliveries: number;
  /** The consumer's ackWait, as the server has it (a queue made earlier keeps its own). */
  ackWaitMs: number;
}

const isFull = (e: unknown): boolean => /maximum (messages|bytes) exceeded|maximum messages per subject exceeded/i.test((e as Error)?.message ?? '');
const isMissing = (e: unknown): boolean => /not found/i.test((e as Error)?.message ?? '') || [10059, 10014].includes((e as { code?: number })?.code ?? 0);
/** Failures worth trying again with the same message id: the server did not answer or the connection was down. */
const isTransient = (e: unknown): boolean => {
  const name = (e as Error)?.name ?? '';
  const message = (e as Error)?.message ?? '';
  return name === 'TimeoutError' || name === 'RequestError' || /timeout|timed out|disconnect|no responders|503/i.test(message);
};

export class NatsWorkQueue<T = Uint8Array> implements WorkQueueContract<T> {
  readonly name: string;
  readonly url: string;
  readonly client: NatsClient;
  readonly #codec: Codec<T>;
  readonly #names: ReturnType<typeof workQueueSubjects>;
  readonly #setup: Promise<Setup>;
  readonly #ownsClient: boolean;
  #closed: IpcError | undefined;
  #closing: Promise<void> | undefined;

  /** Fetched from the server and not handed out yet, oldest first. */
  #fetched: JsMsg[] = [];
  readonly #takers: WaitQueue<Array<Job<T>>, number>;
  #pulling = false;
  #pull: ConsumerMessages | undefined;
  #dispatchScheduled = false;
  /** Jobs handed out and not yet acknowledged or retried, by id. */
  readonly #inHand = new Map<number, Taken<T>>();
  /** Ids acknowledged through this handle (recent ones): a redelivery of one is acknowledged again, never handed out. */
  readonly #acked = new Set<number>();
  /** Acknowledgements sent and not yet confirmed by the server. */
  readonly #acking = new Set<Promise<void>>();
  #ackFailure: IpcError | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(client: NatsClient, name: string, codec: Codec<T>, options: { ackWait: number; maxDeliveries: number; capacity: number | undefined; replicas: number; create: boolean }, ownsClient: boolean) {
    this.client = client;
    this.name = name;
    this.url = `${client.url}/${name}`;
    this.#codec = codec;
    this.#names = workQueueSubjects(name);
    this.#ownsClient = ownsClient;
    this.#takers = new WaitQueue(`taking a job from ${this.url}`);
    this.#setup = this.#makeSetup(options);
    this.#setup.catch(() => {}); // reported by each call
  }

  async #makeSetup(o: { ackWait: number; maxDeliveries: number; capacity: number | undefined; replicas: number; create: boolean }): Promise<Setup> {
    const nc = await this.client.connection();
    const { jetstream, jetstreamManager, AckPolicy, DiscardPolicy, RetentionPolicy, StorageType } = await loadJetStream();
    const what = `opening work queue ${this.url}`;
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(nc);
    } catch (e) {
      const err = natsError(e, what);
      if (/jetstream not enabled|JetStream not enabled|no responders/i.test((e as Error)?.message ?? '')) {
        throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `${what}: the server has no JetStream (start it with nats-server -js -sd DIR)`, { cause: e });
      }
      throw err;
    }
    const n = this.#names;
    const ensureStream = async (config: Parameters<JetStreamManager['streams']['add']>[0], check?: (existing: { retention: string }) => void): Promise<void> => {
      try {
        const info = await jsm.streams.info(config.name!);
        check?.(info.config as { retention: string });
        return;
      } catch (e) {
        if (isIpcError(e)) throw e;
        if (!isMissing(e)) throw natsError(e, what);
      }
      if (!o.create) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `${what}: there is no stream ${config.name} (open with { create: true } to make it)`);
      try {
        await jsm.streams.add(config);
      } catch (e) {
        // Another process made it first: fine if it is there now.
        try {
          const info = await jsm.streams.info(config.name!);
          check?.(info.config as { retention: string });
        } catch {
          throw natsError(e, `${what}: making stream ${config.name}`);
        }
      }
    };
    await ensureStream(
      {
        name: n.stream,
        subjects: [n.subject],
        retention: RetentionPolicy.Workqueue,
        storage: StorageType.File,
        num_replicas: o.replicas,
        ...(o.capacity !== undefined ? { max_msgs: o.capacity, discard: DiscardPolicy.New } : {}),
      },
      (existing) => {
        if (existing.retention !== RetentionPolicy.Workqueue) {
          throw invalidArgument(`${what}: stream ${n.stream} exists but is not a work queue (its retention is ${existing.retention})`);
        }
      },
    );
    await ensureStream({ name: n.deadStream, subjects: [n.deadSubject], retention: RetentionPolicy.Limits, storage: StorageType.File, num_replicas: o.replicas });
    let maxDeliveries = o.maxDeliveries;
    let ackWaitMs = o.ackWait;
    const description = (m: number): string => `ipckit work queue consumer; maxDeliveries=${m}`;
    const readShared = (config: { description?: string; ack_wait?: number }): void => {
      const m = /maxDeliveries=(\d+)/.exec(config.description ?? '');
      if (m) maxDeliveries = Number(m[1]);
      if (typeof config.ack_wait === 'number' && config.ack_wait > 0) ackWaitMs = Math.max(1, Math.round(config.ack_wait / 1e6));
    };
    try {
      readShared((await jsm.consumers.info(n.stream, CONSUMER)).config);
    } catch (e) {
      if (!isMissing(e)) throw natsError(e, what);
      try {
        await jsm.consumers.add(n.stream, {
          durable_name: CONSUMER,
          description: description(o.maxDeliveries),
          ack_policy: AckPolicy.Explicit,
          ack_wait: nanos(o.ackWait),
          // Dead letters are ours (see the header): the server delivers without limit.
          max_deliver: -1,
          max_ack_pending: 20000,
          num_replicas: o.replicas,
        });
      } catch (e2) {
        try {
          readShared((await jsm.consumers.info(n.stream, CONSUMER)).config);
        } catch {
          throw natsError(e2, `${what}: making consumer ${CONSUMER}`);
        }
      }
    }
    const js = jetstream(nc);
    const consumer = await js.consumers.get(n.stream, CONSUMER);
    this.#startHeartbeat(ackWaitMs);
    return { js, jsm, consumer, maxDeliveries, ackWaitMs };
  }

  /**
   * While this handle lives, the jobs handed out through it are not delivered again: every
   * third of ackWait each gets an "in progress" (`working()`), which restarts its ackWait on
   * the server. So a job goes to another consumer when its holder closes, dies or hangs (its
   * event loop stops, and with it these beats), not because it was slow, as with the
   * shared-memory work queue. Without them a consumer slowed by load (the soak: 5 s of
   * ackWait at load 25) had its jobs handed to a second consumer while it still worked on
   * them. Jobs fetched and not handed out (a take that timed out meanwhile) get no beats:
   * nobody here holds them, so ackWait gives them back.
   */
  #startHeartbeat(ackWaitMs: number): void {
    if (this.#heartbeat !== undefined || this.#closed) return;
    this.#heartbeat = setInterval(() => {
      if (this.client.closedError) {
        // Closed for good: nothing to beat through, and no beat may pile up for it.
        clearInterval(this.#heartbeat);
        return;
      }
      for (const t of this.#inHand.values()) t.msg.working();
    }, Math.max(1, Math.floor(ackWaitMs / 3)));
    this.#heartbeat.unref(); // never what keeps the process alive
  }

  /** Resolves once connected and the stream and consumer exist. */
  ready(options?: WaitOptions): Promise<void> {
    if (options !== undefined) checkWait(options);
    return this.#wait('opening', options, this.#setup).then(() => undefined);
  }

  /** Runs `p` under `options`' timeout and signal (what it does goes on; we stop waiting). */
  #wait<R>(what: string, options: WaitOptions | undefined, p: Promise<R>): Promise<R> {
    if (options === undefined) return p;
    return cancellableWait<R>(`${what} ${this.url}`, options, (resolve, reject) => {
      p.then(resolve, reject);
    });
  }

  #encode(item: T): Uint8Array {
    const bytes = encodeWith(this.#codec, item);
    const max = this.client.maxPayload;
    if (max !== undefined && bytes.length > max) {
      throw new IpcError('ERR_IPCKIT_FRAME_TOO_LARGE', `a job of ${bytes.length} bytes is larger than the server's max_payload (${max} bytes)`, { details: { length: bytes.length, maxMessageBytes: max } });
    }
    return bytes;
  }

  /**
   * Stores one job and resolves with its id (the stream sequence). A full queue makes it
   * wait (retrying); a lost answer is retried with the same message id, which the server
   * deduplicates, so a job is never stored twice. `timeout` and `signal` end the waits for
   * room and for the connection (nothing stored); once a publish is out, its answer is
   * awaited, so a resolved id is always a stored job and a rejected put stored nothing.
   */
  async #putOne(bytes: Uint8Array, msgID: string, deadline: number | undefined, signal: AbortSignal | undefined): Promise<number> {
    const what = `putting a job on ${this.url}`;
    let pause = 5;
    let lastError: unknown;
    for (;;) {
      if (this.#closed) throw this.#closed;
      const left = deadline === undefined ? undefined : deadline - performance.now();
      if (left !== undefined && left <= 0) {
        throw new IpcError('ERR_IPCKIT_TIMEOUT', `${what} timed out${lastError ? `: ${isFull(lastError) ? 'the queue is full' : (lastError as Error).message}` : ''}`, { cause: lastError });
      }
      if (signal?.aborted) throw new IpcError('ERR_IPCKIT_ABORTED', `${what} was aborted`, { cause: signal.reason });
      const setup = await this.#wait('putting a job on', waitOptions(left, signal), this.#setup);
      if (bytes.length > (this.client.maxPayload ?? Infinity)) this.#encodeCheckLate(bytes);
      try {
        const ack = await setup.js.publish(this.#names.subject, bytes, { msgID, timeout: 5000 });
        return ack.seq;
      } catch (e) {
        lastError = e;
        if (!isFull(e) && !isTransient(e)) throw natsError(e, what);
      }
      await this.#wait('putting a job on', waitOptions(deadline === undefined ? undefined : deadline - performance.now(), signal), sleep(pause)).catch((e: unknown) => {
        if (isIpcError(e, 'ERR_IPCKIT_TIMEOUT')) return; // the loop reports it with the cause
        throw e;
      });
      pause = Math.min(200, pause * 2);
    }
  }

  #encodeCheckLate(bytes: Uint8Array): never {
    throw new IpcError('ERR_IPCKIT_FRAME_TOO_LARGE', `a job of ${bytes.length} bytes is larger than the server's max_payload (${this.client.maxPayload} bytes)`, { details: { length: bytes.length, maxMessageBytes: this.client.maxPayload } });
  }

  put(item: T, options?: WaitOptions): Promise<number> {
    const bytes = this.#encode(item);
    const { deadline, signal } = checkWait(options);
    if (this.#closed) return Promise.reject(this.#closed);
    return this.#putOne(bytes, newMessageId(), deadline, signal);
  }

  /** Puts in order, up to 256 at a time in flight; on failure `details.ids` holds the ids of those stored. */
  putMany(items: Iterable<T>, options?: WaitOptions): Promise<number[]> {
    if (items === null || typeof items !== 'object' || typeof (items as Iterable<T>)[Symbol.iterator] !== 'function') {
      throw invalidArgument(`items must be an iterable, got ${validate.describe(items)}`);
    }
    const all = [...items].map((i) => this.#encode(i));
    const { deadline, signal } = checkWait(options);
    if (this.#closed) return Promise.reject(this.#closed);
    return (async () => {
      const ids: Array<number | undefined> = new Array(all.length);
      let failure: unknown;
      const WINDOW = 256;
      for (let start = 0; start < all.length && failure === undefined; start += WINDOW) {
        const batch = all.slice(start, start + WINDOW);
        const results = await Promise.allSettled(batch.map((b) => this.#putOne(b, newMessageId(), deadline, signal)));
        results.forEach((r, i) => {
          if (r.status === 'fulfilled') ids[start + i] = r.value;
          else failure ??= r.reason;
        });
      }
      if (failure !== undefined) {
        const stored = ids.filter((x): x is number => x !== undefined);
        throw (isIpcError(failure) ? failure : natsError(failure, `putting jobs on ${this.url}`)).amend({ details: { ids: stored } });
      }
      return ids as number[];
    })();
  }

  take(options?: WaitOptions): Promise<Job<T>> {
    return this.takeMany(1, options).then((jobs) => jobs[0]!);
  }

  /** Up to `max` jobs: waits for one, then takes what came with it. */
  takeMany(max: number, options?: WaitOptions): Promise<Array<Job<T>>> {
    validate.integer('max', max, 1, 10000);
    if (options !== undefined) checkWait(options);
    if (this.#closed) return Promise.reject(this.#closed);
    const now = this.#handOut(max);
    if (now.length > 0) return Promise.resolve(now);
    const p = this.#takers.enqueue(options, max);
    void this.#pullLoop();
    return p;
  }

  /** Jobs from the fetched messages, up to `max` (dead letters and already-acknowledged ones are dealt with here). */
  #handOut(max: number): Array<Job<T>> {
    const out: Array<Job<T>> = [];
    while (out.length < max && this.#fetched.length > 0) {
      const job = this.#open(this.#fetched.shift()!);
      if (job) out.push(job);
    }
    return out;
  }

  #open(msg: JsMsg): Job<T> | undefined {
    const id = msg.seq;
    if (this.#acked.has(id)) {
      // Our acknowledgement was lost on the way: this job is done; say so again.
      this.#track(msg, id);
      return undefined;
    }
    const held = this.#inHand.get(id);
    if (held) {
      // Delivered again while this handle still holds it: its ackWait passed with no beat
      // reaching the server (the process was stopped, or too loaded to run the timer). It
      // stays one job in hand, not two: the holder's ack goes to the newest delivery, which
      // is the one the server waits for (an ack of the first copy and then of the second
      // failed with ERR_IPCKIT_INVALID_ARGUMENT, and both copies were worked on).
      held.msg = msg;
      msg.working();
      return undefined;
    }
    const deliveries = msg.info.deliveryCount;
    if (deliveries > this.#maxDeliveries) {
      void this.#deadLetter(msg);
      return undefined;
    }
    let data: T;
    try {
      data = decodeWith(this.#codec, msg.data);
    } catch {
      // A job no consumer can read: it goes to the dead letters at once, not round and round.
      void this.#deadLetter(msg);
      return undefined;
    }
    const job: Job<T> = { id, data, deliveries, redelivered: deliveries > 1 };
    this.#inHand.set(id, { job, msg });
    return job;
  }

  #maxDeliveries = Infinity;

  /** Publishes the job to the dead-letter subject (deduplicated by its id), then acknowledges it here. */
  async #deadLetter(msg: JsMsg): Promise<void> {
    try {
      const setup = await this.#setup;
      await setup.js.publish(this.#names.deadSubject, msg.data, { msgID: `${this.name}:${msg.seq}`, timeout: 5000 });
      this.#track(msg, msg.seq);
    } catch {
      // Not moved: it stays unacknowledged and comes back after ackWait, to be moved then.
    }
  }

  /** Sends an acknowledgement and keeps its confirmation for flushAcks()/close(). */
  #track(msg: JsMsg, id: number): void {
    this.#acked.add(id);
    if (this.#acked.size > ACKED_MEMORY) this.#acked.delete(this.#acked.values().next().value!);
    const p: Promise<void> = this.#confirmAck(msg, id).finally(() => this.#acking.delete(p));
    this.#acking.add(p);
  }

  async #confirmAck(msg: JsMsg, id: number): Promise<void> {
    // An acknowledgement the server did not confirm is sent again (it acknowledges by
    // stream sequence, whichever delivery the ack subject names) until it is confirmed or
    // the handle gives up. Our own request, not the client's ackAck(): that one sends once
    // per message and answers `false` without sending when asked again.
    for (let attempt = 0; ; attempt++) {
      try {
        const nc = await this.client.connection();
        await nc.request((msg as JsMsg & { readonly reply: string }).reply, ACK, { timeout: 5000 });
        return;
      } catch (e) {
        if (this.client.closedError || attempt >= 20) {
          this.#ackFailure ??= natsError(e, `acknowledging job ${id} on ${this.url}`).amend({ note: 'the job will be delivered again', details: { id } });
          return;
        }
      }
      await sleep(Math.min(1000, 50 * 2 ** attempt));
    }
  }

  /** One pull request at a time while someone waits to take; messages go to #fetched, then to the takers. */
  async #pullLoop(): Promise<void> {
    if (this.#pulling) return;
    this.#pulling = true;
    let pause = 50;
    try {
      while (this.#takers.length > 0 && !this.#closed) {
        let setup: Setup;
        try {
          setup = await this.#setup;
        } catch (e) {
          this.#takers.rejectAll(e);
          return;
        }
        this.#maxDeliveries = setup.maxDeliveries;
        const want = Math.max(1, this.#takers.peek() ?? 1);
        try {
          this.#pull = await setup.consumer.fetch({ max_messages: want, expires: PULL_EXPIRES_MS });
          for await (const msg of this.#pull) {
            this.#fetched.push(msg);
            this.#scheduleDispatch();
          }
          pause = 50;
        } catch (e) {
          if (this.#closed) return;
          if (this.client.closedError) {
            this.#takers.rejectAll(this.client.closedError);
            return;
          }
          // The server restarted, or the connection is down: try again shortly.
          await sleep(pause);
          pause = Math.min(1000, pause * 2);
        } finally {
          this.#pull = undefined;
        }
        this.#dispatch();
      }
    } finally {
      this.#pulling = false;
    }
  }

  /** Hands fetched messages out once per turn of the event loop, so that a batch goes together. */
  #scheduleDispatch(): void {
    if (this.#dispatchScheduled) return;
    this.#dispatchScheduled = true;
    setImmediate(() => {
      this.#dispatchScheduled = false;
      this.#dispatch();
    });
  }

  #dispatch(): void {
    while (this.#fetched.length > 0) {
      const max = this.#takers.peek();
      if (max === undefined) return;
      const jobs = this.#handOut(max);
      if (jobs.length === 0) continue;
      // peek() and take() run in one turn: the taker cannot have gone in between.
      const w = this.#takers.take()!;
      w.resolve(jobs);
    }
  }

  /** The job is handled: the server removes it and never delivers it again. */
  ack(job: Job<T> | ReadonlyArray<Job<T>>): void {
    const jobs = Array.isArray(job) ? (job as ReadonlyArray<Job<T>>) : [job as Job<T>];
    const taken = jobs.map((j) => this.#inHandOf(j, 'ack'));
    for (const t of taken) {
      this.#inHand.delete(t.job.id);
      this.#track(t.msg, t.job.id);
    }
  }

  /** Hands the job back: it is delivered again after `delay` ms (default at once). */
  retry(job: Job<T>, options?: { delay?: number }): void {
    const t = this.#inHandOf(job, 'retry');
    const delay = validate.optionalInteger('delay', validate.object<{ delay?: number }>('options', options).delay, 0, 2 ** 31 - 1);
    this.#inHand.delete(t.job.id);
    t.msg.nak(delay);
  }

  #inHandOf(job: Job<T>, verb: string): Taken<T> {
    if (job === null || typeof job !== 'object' || typeof (job as Job<T>).id !== 'number') throw invalidArgument(`${verb} takes a job from take(), got ${validate.describe(job)}`);
    const t = this.#inHand.get(job.id);
    if (!t) throw invalidArgument(`job ${job.id} is not in progress on this handle of ${this.url} (acknowledged or retried already?)`);
    return t;
  }

  /** Resolves once every acknowledgement sent so far is confirmed by the server (rejects if one could not be). */
  flushAcks(options?: WaitOptions): Promise<void> {
    if (options !== undefined) checkWait(options);
    return this.#wait('acknowledging jobs on', options, Promise.all([...this.#acking])).then(() => {
      if (this.#ackFailure) throw this.#ackFailure;
    });
  }

  /** Resolves once no job put before this call is left in the queue (acknowledged, or moved to the dead letters). */
  join(options?: WaitOptions): Promise<void> {
    if (options !== undefined) checkWait(options);
    if (this.#closed) return Promise.reject(this.#closed);
    let stop = false;
    const poll = async (): Promise<void> => {
      const { jsm } = await this.#setup;
      let target: number | undefined;
      for (let pause = 10; !stop; pause = Math.min(100, pause * 2)) {
        if (this.#closed) throw this.#closed;
        const s = (await jsm.streams.info(this.#names.stream)).state;
        target ??= s.last_seq;
        if (s.messages === 0 || s.first_seq > target) return;
        await sleep(pause);
      }
    };
    return cancellableWait<void>(`joining ${this.url}`, options, (resolve, reject) => {
      poll().then(resolve, (e: unknown) => reject(natsError(e, `joining ${this.url}`)));
      return () => {
        stop = true;
      };
    });
  }

  async stats(): Promise<WorkQueueStats> {
    if (this.#closed) throw this.#closed;
    const { jsm } = await this.#setup;
    try {
      const [stream, consumer, dead] = await Promise.all([jsm.streams.info(this.#names.stream), jsm.consumers.info(this.#names.stream, CONSUMER), jsm.streams.info(this.#names.deadStream)]);
      const deadLettered = dead.state.last_seq;
      const maxMsgs = stream.config.max_msgs;
      return {
        ready: consumer.num_pending,
        inFlight: consumer.num_ack_pending,
        capacity: maxMsgs !== undefined && maxMsgs > 0 ? maxMsgs : undefined,
        put: stream.state.last_seq,
        done: Math.max(0, stream.state.last_seq - stream.state.messages - deadLettered),
        redelivered: consumer.num_redelivered,
        deadLettered,
      };
    } catch (e) {
      throw natsError(e, `reading the stats of ${this.url}`);
    }
  }

  /** The jobs moved to the dead-letter subject, oldest first (reads the dead-letter stream; does not remove). */
  deadLetters(max = 100): Promise<Array<{ seq: number; data: T }>> {
    validate.integer('max', max, 1);
    return this.#readDeadLetters(max);
  }

  async #readDeadLetters(max: number): Promise<Array<{ seq: number; data: T }>> {
    const { jsm } = await this.#setup;
    const out: Array<{ seq: number; data: T }> = [];
    const info = await jsm.streams.info(this.#names.deadStream);
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && out.length < max; seq++) {
      try {
        const m = await jsm.streams.getMessage(this.#names.deadStream, { seq });
        if (m) out.push({ seq, data: decodeWith(this.#codec, m.data) });
      } catch {
        /* deleted */
      }
    }
    return out;
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /** Jobs this handle took and has not acknowledged or retried. */
  get inFlight(): number {
    return this.#inHand.size;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Job<T>> {
    return receiverIterator({ receive: (o?: WaitOptions) => this.take(o) });
  }

  /**
   * Stops taking, hands back what this handle took and did not acknowledge (delivered
   * again at once), waits for the acknowledgements sent, and closes the connection if it
   * is this handle's own. Rejects if an acknowledgement could not be confirmed.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = closedError(`work queue ${this.url}`);
      clearInterval(this.#heartbeat);
      this.#takers.rejectAll(this.#closed);
      await this.#pull?.close().catch(() => {});
      for (const m of this.#fetched.splice(0)) m.nak();
      for (const t of this.#inHand.values()) t.msg.nak();
      this.#inHand.clear();
      await Promise.all([...this.#acking]);
      let failure: unknown = this.#ackFailure;
      if (this.#ownsClient) {
        try {
          await this.client.close();
        } catch (e) {
          failure ??= e;
        }
      } else if (this.client.current) {
        await this.client.flush().catch(() => {});
      }
      if (failure !== undefined) throw failure;
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

let idCounter = 0;
const idPrefix = `${process.pid.toString(36)}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
/** A message id unique to this put, for the server's deduplication of a retried publish. */
function newMessageId(): string {
  return `${idPrefix}-${(++idCounter).toString(36)}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function waitOptions(left: number | undefined, signal: AbortSignal | undefined): WaitOptions | undefined {
  if (left === undefined && signal === undefined) return undefined;
  return { ...(left !== undefined ? { timeout: Math.max(0, left) } : {}), ...(signal ? { signal } : {}) };
}

function checkWait(options: WaitOptions | undefined): { deadline: number | undefined; signal: AbortSignal | undefined } {
  const o = validate.object<WaitOptions>('options', options);
  const ms = validate.timeout(o.timeout);
  const signal = validate.abortSignal(o.signal);
  return { deadline: ms === undefined ? undefined : performance.now() + ms, signal };
}

/**
 * Opens (and makes, the first time) the work queue `NAME` at `nats://host:port/NAME`
 * (several servers separated by commas). Returns at once: bad arguments throw
 * synchronously, and the connection and the stream are made in the background (`ready()`
 * waits for them; every call waits for them too).
 */
export function openNatsWorkQueue<C extends CodecOption | undefined = undefined>(url: string, options?: NatsWorkQueueOptions<C>): NatsWorkQueue<MessageOf<C>> {
  const address = parseNatsUrl(url, { what: 'url', name: 'required' });
  if (!NAME_RE.test(address.name!)) throw invalidArgument(`the work queue's name must be 1 to 200 letters, digits, - or _ (a JetStream stream name), got ${JSON.stringify(address.name)}`);
  const o = validate.object<NatsWorkQueueOptions<C>>('options', options);
  const { codec, ackWait, maxDeliveries, capacity, replicas, create, ...connect } = o;
  const queueOptions = {
    ackWait: validate.integer('ackWait', ackWait ?? 30_000, 1, 2 ** 31 - 1),
    maxDeliveries: validate.integer('maxDeliveries', maxDeliveries ?? 5, 1, 1_000_000),
    capacity: validate.optionalInteger('capacity', capacity, 1),
    replicas: validate.integer('replicas', replicas ?? 1, 1, 5),
    create: create ?? true,
  };
  if (typeof queueOptions.create !== 'boolean') throw invalidArgument(`create must be a boolean, got ${validate.describe(create)}`);
  const resolved = resolveCodec(codec as C);
  const client = new NatsClient(address, connect);
  return new NatsWorkQueue(client, address.name!, resolved, queueOptions, true);
}

/** The same over a connection you already have (closing the queue leaves the connection open). */
export function natsWorkQueue<C extends CodecOption | undefined = undefined>(client: NatsClient, name: string, options?: Omit<NatsWorkQueueOptions<C>, keyof NatsConnectOptions>): NatsWorkQueue<MessageOf<C>> {
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw invalidArgument(`the work queue's name must be 1 to 200 letters, digits, - or _ (a JetStream stream name), got ${validate.describe(name)}`);
  const o = validate.object<NatsWorkQueueOptions<C>>('options', options);
  return new NatsWorkQueue(client, name, resolveCodec(o.codec as C), {
    ackWait: validate.integer('ackWait', o.ackWait ?? 30_000, 1, 2 ** 31 - 1),
    maxDeliveries: validate.integer('maxDeliveries', o.maxDeliveries ?? 5, 1, 1_000_000),
    capacity: validate.optionalInteger('capacity', o.capacity, 1),
    replicas: validate.integer('replicas', o.replicas ?? 1, 1, 5),
    create: o.create ?? true,
  }, false);
}
