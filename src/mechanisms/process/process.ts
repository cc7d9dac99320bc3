/**
 * A faster fork: `spawnProcess(module)` starts a Node child running `module` and gives the
 * parent a typed duplex Channel to it; the child takes its end with `parentChannel()`
 * (parent.ts). It replaces `child_process.fork` + `process.send` + `on('message')`.
 *
 * - Transport: a pair of rings (one each way) in shared memory, or, with
 *   `{ transport: 'pipe' }` and automatically where shared memory cannot be made, a pair
 *   of real pipes at fds 3 and 4 of the child. How the child finds them: handoff.ts.
 * - The child dies with us: it is started through the `ipckit-exec` helper (src/os/child.ts),
 *   which sets PR_SET_PDEATHSIG (SIGKILL) and execs Node in place, so its pid is the
 *   child's. It is always reaped (libuv reaps its own children).
 * - Its exit (code, signal) rejects pending requests with ERR_IPCKIT_PEER_GONE carrying
 *   `details.exitCode` / `details.signal`; a receive on a channel the child never opened
 *   rejects the same way instead of waiting forever.
 * - `request()` is the request/reply helper of src/core/request.ts over this channel (the
 *   child answers with `serve(parentChannel(), handler)`).
 */
import { existsSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import { receiverIterator, RESOLVED, type Channel, type WaitOptions } from '../../core/channel.js';
import { resolveCodec, type CodecOption, type MessageOf } from '../../core/codec.js';
import { invalidArgument, IpcError, isIpcError } from '../../core/errors.js';
import { createRequester, type Requester } from '../../core/request.js';
import * as validate from '../../core/validate.js';
import { describeExit, exitWithin, killSignal, startChild, type ChildExit } from '../../os/child.js';
import { spawnWithPipes } from '../pipe/pipe.js';
import { ringSpinOption } from '../ring/core.js';
import { createRing, unlinkRing, type Ring } from '../ring/ring.js';
import { batchingCodec } from './batches.js';
import { ProcessChannel } from './channel.js';
import { encodeHandoff, HANDOFF_ENV } from './handoff.js';

export interface SpawnProcessOptions<C extends CodecOption | undefined = undefined> {
  /** Arguments after the module (`process.argv.slice(2)` in the child). */
  args?: string[];
  /** The child's environment (default: ours). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Node options before the module (default: ours, `process.execArgv`, as fork does, less `-e`/`-p` and their code). */
  execArgv?: string[];
  /** Message codec (default 'json', as `process.send`); the child's parentChannel() uses the same name. */
  codec?: C;
  /** 'auto' (default): rings, or pipes where shared memory cannot be made; 'ring'; 'pipe'. */
  transport?: 'auto' | 'ring' | 'pipe';
  /** Bytes of each ring (a power of two, default 1 MiB); pipes keep the kernel's size. */
  capacityBytes?: number;
  /** Largest message (rings: default capacityBytes / 2; pipes: 16 MiB). */
  maxMessageBytes?: number;
  /** Spin before sleeping (µs) on both sides of a ring (default 20 on machines with more than one CPU; 0: never spin). */
  spinMicros?: number;
  /** The child's stdout and stderr: inherited (default) or ignored. Its stdin is ignored. */
  stdout?: 'inherit' | 'ignore';
  stderr?: 'inherit' | 'ignore';
}

export interface ProcessCloseOptions {
  /** How long to wait for the child to exit after its channel closed before SIGKILL (ms, default 5000). */
  timeout?: number;
}

const TRANSPORTS = ['auto', 'ring', 'pipe'] as const;

/** The module as an absolute path: a path (relative to cwd) or a file: URL; it must exist. */
function modulePath(module: unknown, cwd: string): string {
  let p: string;
  if (module instanceof URL) {
    if (module.protocol !== 'file:') throw invalidArgument(`module must be a path or a file: URL, got ${module.href}`);
    p = fileURLToPath(module);
  } else if (typeof module === 'string' && module.startsWith('file:')) {
    p = fileURLToPath(module);
  } else {
    p = resolvePath(cwd, validate.string('module', module));
  }
  if (!existsSync(p) || !statSync(p).isFile()) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `cannot start ${p}: no such module file`, { path: p });
  return p;
}

/**
 * Our Node options for the child, as fork passes them, less those that would make it run
 * something else than the module (`-e`, `-p` with their code, `--input-type`, `-i`, `-c`).
 */
function inheritedExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-e' || a === '--eval' || a === '-p' || a === '--print' || a === '-pe') {
      i++; // and its code
      continue;
    }
    if (/^--(eval|print|input-type)=/.test(a) || a === '--input-type' || a === '-i' || a === '--interactive' || a === '-c' || a === '--check') {
      if (a === '--input-type') i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

function stringArray(name: string, value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw invalidArgument(`${name} must be an array of strings, got ${validate.describe(value)}`);
  return value.map((a, i) => validate.string(`${name}[${i}]`, a, { nonEmpty: false }));
}

/** A running child and the Channel to it. */
export class SpawnedProcess<T = unknown> implements Channel<T> {
  readonly pid: number;
  /** Settles with the exit status once the child has exited and been reaped. */
  readonly exited: Promise<ChildExit>;
  /** What carries the messages: 'ring' or 'pipe'. */
  readonly transport: 'ring' | 'pipe';
  readonly #channel: ProcessChannel<T>;
  readonly #kill: (signal: NodeJS.Signals | number) => boolean;
  #exit: ChildExit | undefined;
  /** Set when the child exited without ever opening its end: our waits end with it. */
  #neverOpened: IpcError | undefined;
  #requester: Requester<unknown, unknown> | undefined;
  #closing: Promise<ChildExit> | undefined;

  /** @internal */
  constructor(pid: number, exited: Promise<ChildExit>, kill: (signal: NodeJS.Signals | number) => boolean, channel: ProcessChannel<T>, transport: 'ring' | 'pipe', opened: () => boolean) {
    this.pid = pid;
    this.exited = exited;
    this.#kill = kill;
    this.#channel = channel;
    this.transport = transport;
    exited.then((exit) => {
      this.#exit = exit;
      if (!opened()) {
        this.#neverOpened = this.#goneError(new IpcError('ERR_IPCKIT_PEER_GONE', `child ${pid} exited before it opened its channel (did it call parentChannel()?)`));
        void channel.close().catch(() => {});
      }
      // Replies already sent still arrive first; the requester fails by itself when the
      // channel ends, this only bounds the wait (a ring notices a dead peer within a slice).
      if (this.#requester && this.#requester.pending > 0) {
        const t = setTimeout(() => this.#requester?.fail(this.#goneError(new IpcError('ERR_IPCKIT_PEER_GONE', `child ${pid} ${describeExit(exit)} with requests pending`))), this.#neverOpened ? 0 : 1000);
        t.unref();
      }
    }, () => {});
  }

  /** The exit status once known, else null. */
  get exitStatus(): ChildExit | null {
    return this.#exit ?? null;
  }

  send(message: T, options?: WaitOptions): Promise<void> {
    if (this.#neverOpened) {
      validate.waitOptions(options);
      return Promise.reject(this.#neverOpened);
    }
    return this.#withExitIfGone(this.#channel.send(message, options));
  }
  trySend(message: T): boolean {
    if (this.#neverOpened) throw this.#neverOpened;
    return this.#channel.trySend(message);
  }
  /**
   * Sends every message in order, in fewer frames: with a JSON codec, runs of messages go as
   * batch frames of up to 256 (one JSON.stringify and one JSON.parse per frame; the child
   * receives them one by one as usual). Every message is encoded first: a bad one throws
   * and nothing is sent. If it fails part-way, `details.sent` says how many went.
   */
  sendMany(messages: Iterable<T>, options?: WaitOptions): Promise<void> {
    if (this.#neverOpened) {
      validate.waitOptions(options);
      validate.iterable('messages', messages);
      return Promise.reject(this.#neverOpened);
    }
    return this.#withExitIfGone(this.#channel.sendMany(messages, options));
  }
  receive(options?: WaitOptions): Promise<T> {
    if (this.#neverOpened) {
      validate.waitOptions(options);
      return Promise.reject(this.#neverOpened);
    }
    const p = this.#channel.receive(options);
    return this.transport === 'ring' ? p.then(undefined, (e: unknown) => Promise.reject(this.#neverOpened && isIpcError(e, 'ERR_IPCKIT_CLOSED') ? this.#neverOpened : e)) : p;
  }
  tryReceive(): T | undefined {
    return this.#channel.tryReceive();
  }
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return receiverIterator(this);
  }

  /**
   * Sends a request and resolves with the child's reply (the child answers with
   * `serve(parentChannel(), handler)`); see src/core/request.ts. The child's exit rejects
   * it with ERR_IPCKIT_PEER_GONE. While requests are pending, do not `receive` yourself.
   */
  request<R = unknown>(message: unknown, options?: WaitOptions): Promise<R> {
    this.#requester ??= createRequester(this.#channel, { peerGone: (e) => this.#withExit(e) });
    if (this.#neverOpened) {
      validate.waitOptions(options);
      return Promise.reject(this.#neverOpened);
    }
    return this.#requester.request(message as never, options) as Promise<R>;
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    return this.#kill(killSignal(signal));
  }

  /**
   * Closes our end (what was sent is delivered first; the child's receive then ends with
   * ERR_IPCKIT_CLOSED) and waits for the child to exit, up to `timeout` (default 5 s),
   * then kills it (SIGKILL). Resolves with its exit status. Idempotent.
   */
  close(options: ProcessCloseOptions = {}): Promise<ChildExit> {
    validate.object('options', options);
    const ms = validate.timeout(options.timeout) ?? 5000;
    this.#closing ??= (async () => {
      this.#requester?.close();
      await this.#channel.close().catch(() => {});
      if ((await exitWithin(this.exited, ms)) === undefined) this.#kill('SIGKILL');
      return this.exited;
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #goneError(e: IpcError): IpcError {
    const exit = this.#exit;
    return exit ? e.amend({ details: { pid: this.pid, exitCode: exit.exitCode, signal: exit.signal } }) : e;
  }

  /** A send that fails because the child is gone fails with its exit status, as requests do (pipes add it themselves). */
  #withExitIfGone(sending: Promise<void>): Promise<void> {
    if (sending === RESOLVED || this.transport === 'pipe') return sending;
    return sending.catch(async (e: unknown) => {
      throw isIpcError(e, 'ERR_IPCKIT_PEER_GONE') ? await this.#withExit(e) : e;
    });
  }

  /** A peer-gone error with the child's exit status, once known (briefly waited for). */
  async #withExit(e: IpcError): Promise<IpcError> {
    const exit = this.#exit ?? (await exitWithin(this.exited, 500));
    if (!exit) return e.amend({ details: { pid: this.pid } });
    return e.amend({ note: `child ${this.pid} ${describeExit(exit)}`, details: { pid: this.pid, exitCode: exit.exitCode, signal: exit.signal } });
  }
}

/**
 * Starts a Node child running `module` (a path or a file: URL) with a typed duplex
 * Channel to it. Never waits: messages sent before the child opens its end wait in the
 * channel. Bad options throw at once; a module file that does not exist is
 * ERR_IPCKIT_NOT_FOUND.
 */
export function spawnProcess<C extends CodecOption | undefined = 'json'>(module: string | URL, options: SpawnProcessOptions<C> = {}): SpawnedProcess<C extends undefined ? unknown : MessageOf<C>> {
  validate.object('options', options);
  const cwd = validate.optionalString('cwd', options.cwd) ?? process.cwd();
  const path = modulePath(module, cwd);
  const args = stringArray('args', options.args) ?? [];
  const execArgv = stringArray('execArgv', options.execArgv) ?? inheritedExecArgv();
  if (options.env !== undefined) {
    for (const [k, v] of Object.entries(validate.object<Record<string, unknown>>('env', options.env))) {
      if (v !== undefined && typeof v !== 'string') throw invalidArgument(`env.${k} must be a string, got ${validate.describe(v)}`);
    }
  }
  const codecOption = (options.codec ?? 'json') as CodecOption;
  const codec = resolveCodec(codecOption);
  const codecName = typeof codecOption === 'string' ? codecOption : 'custom';
  const transport = validate.optionalOneOf('transport', options.transport, TRANSPORTS) ?? 'auto';
  const spin = options.spinMicros === undefined ? undefined : ringSpinOption(options.spinMicros);
  validate.optionalInteger('capacityBytes', options.capacityBytes, 1);
  validate.optionalInteger('maxMessageBytes', options.maxMessageBytes, 1);
  const stdout = validate.optionalOneOf('stdout', options.stdout, ['inherit', 'ignore'] as const) ?? 'inherit';
  const stderr = validate.optionalOneOf('stderr', options.stderr, ['inherit', 'ignore'] as const) ?? 'inherit';
  const argv = [process.execPath, ...execArgv, path, ...args];
  const env = { ...(options.env ?? process.env) };
  type M = C extends undefined ? unknown : MessageOf<C>;

  if (transport !== 'pipe') {
    const base = `/ipckit-proc-${process.pid}-${randomBytes(6).toString('hex')}`;
    const down = `${base}-down`; // we send, the child receives
    const up = `${base}-up`; // the child sends, we receive
    const rings: Ring[] = [];
    const unlinkBoth = (): void => {
      for (const n of [down, up]) {
        try {
          unlinkRing(n);
        } catch {
          /* gone, or not ours to judge: the child unlinks them too */
        }
      }
    };
    let made = false;
    try {
      const ringOptions = {
        ...(options.capacityBytes !== undefined ? { capacityBytes: options.capacityBytes } : {}),
        ...(options.maxMessageBytes !== undefined ? { maxMessageBytes: options.maxMessageBytes } : {}),
      };
      rings.push(createRing(down, ringOptions));
      rings.push(createRing(up, ringOptions));
      made = true;
    } catch (e) {
      for (const r of rings) r.close();
      unlinkBoth();
      // Bad ring options are the caller's; anything else means no shared memory here.
      if (transport === 'ring' || isIpcError(e, 'ERR_IPCKIT_INVALID_ARGUMENT')) throw e;
    }
    if (made) {
      const [downRing, upRing] = rings as [Ring, Ring];
      const endpoint = { codec: batchingCodec(codec), ...(spin !== undefined ? { spinMicros: spin } : {}) };
      let channel: ProcessChannel<M> | undefined;
      try {
        const sender = downRing.senderSync(endpoint);
        try {
          channel = new ProcessChannel<M>(sender as never, upRing.receiverSync(endpoint) as never, codec as never, { borrowFrames: true });
        } catch (e) {
          void sender.close().catch(() => {});
          throw e;
        }
        env[HANDOFF_ENV] = encodeHandoff({ v: 1, transport: 'ring', send: up, receive: down, codec: codecName, batches: true, ...(spin !== undefined ? { spinMicros: spin === Infinity ? null : spin } : {}) });
        const started = startChild(argv, ['ignore', stdout, stderr], { cwd, env });
        // The child has opened its end once it attached to both rings: from then on, its
        // death is seen by the rings themselves.
        const opened = (): boolean => {
          try {
            return downRing.info().consumer.state !== 'none' && upRing.info().producersEver > 0;
          } catch {
            return true;
          }
        };
        const proc = new SpawnedProcess<M>(started.pid, started.exited, started.kill, channel, 'ring', opened);
        const cleanup = (): void => {
          unlinkBoth();
          for (const r of rings) r.close();
        };
        started.exited.then(cleanup, cleanup);
        return proc;
      } catch (e) {
        void channel?.close().catch(() => {});
        for (const r of rings) r.close();
        unlinkBoth();
        throw e;
      }
    }
  }

  env[HANDOFF_ENV] = encodeHandoff({ v: 1, transport: 'pipe', readFd: 3, writeFd: 4, codec: codecName, batches: true, ...(options.maxMessageBytes !== undefined ? { maxMessageBytes: options.maxMessageBytes } : {}) });
  const piped = spawnWithPipes<CodecOption>(argv, {
    pipes: { 3: 'write', 4: 'read' },
    codec: batchingCodec(codec),
    cwd,
    env,
    stdin: 'ignore',
    stdout,
    stderr,
    ...(options.maxMessageBytes !== undefined ? { maxMessageBytes: options.maxMessageBytes } : {}),
  });
  const channel = new ProcessChannel<M>(piped.sender<M>(3), piped.receiver<M>(4), codec as never);
  return new SpawnedProcess<M>(piped.pid, piped.exited, (s) => piped.kill(s), channel, 'pipe', () => true);
}
