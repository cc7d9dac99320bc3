/**
 * popen: a program started as a child, its stdout ('r') or stdin ('w') as our Receiver or
 * Sender, like C's popen/pclose.
 *
 * - `command` is an argv array and runs without a shell: `;`, `$(...)`, backticks, quotes,
 *   newlines and `--` in arguments reach the child verbatim. A shell string runs only with
 *   `{ shell: true }` (`/bin/sh -c`), which is unsafe with untrusted input: the shell
 *   interprets it. A shell command runs in a process group of its own (see child.ts), so
 *   what it starts also dies with us and gets the signals of `kill()`.
 * - `close()` closes our end (a writer flushes first) and resolves with
 *   `{ exitCode, signal }` like pclose; it takes `timeout`/`signal` for a child that does
 *   not exit. The child is always reaped (Node reaps its children), and is killed with
 *   SIGKILL if we die (see child.ts for the worker-thread caveat).
 * - A child that exits while we write makes `send` reject once with ERR_IPCKIT_PEER_GONE,
 *   with the exit status in `details` (`exitCode`, `signal`); `close()` then resolves with
 *   that status instead of reporting the same loss again.
 * - `framing` is `length` by default, like every ipckit stream; use `lines` or `raw` for
 *   programs that know nothing of ipckit. `.stream()` gives a Node stream instead.
 */
import { Readable, Writable } from 'node:stream';
import { killSignal, startChild, validateArgv, validateChildOptions, waitForExit, type ChildExit, type ChildOptions } from '../../os/child.js';
import type { WaitOptions } from '../../core/channel.js';
import type { CodecOption, MessageOf } from '../../core/codec.js';
import { invalidArgument, sys } from '../../core/errors.js';
import { native } from '../../os/native.js';
import { ChildPipeWriter, PipeReader, PipeWriter, setPipeCapacity, withExitStatus, type PipeOptions } from '../pipe/pipe.js';
import { validateStreamOptions } from '../../os/fd-stream.js';
import { toReadable, toWritable } from '../../core/node-streams.js';
import * as validate from '../../core/validate.js';

export interface PopenOptions<C extends CodecOption | undefined = undefined> extends ChildOptions, PipeOptions<C> {
  /** Run `command` (a string) with /bin/sh -c. Unsafe with untrusted input. */
  shell?: boolean;
  /** 'r' mode: the child's stdin (default 'ignore': /dev/null). */
  stdin?: 'inherit' | 'ignore';
  /** 'w' mode: the child's stdout (default 'inherit': ours). */
  stdout?: 'inherit' | 'ignore';
}

interface ChildHandle {
  pid: number;
  exited: Promise<ChildExit>;
  kill(signal?: NodeJS.Signals | number): boolean;
}

/** popen(..., 'r'): the child's stdout. */
export class PopenReader<T> extends PipeReader<T, ChildExit> {
  readonly pid: number;
  /** Settles with the exit status once the child has exited (and been reaped). */
  readonly exited: Promise<ChildExit>;
  readonly #child: ChildHandle;

  /** @internal */
  constructor(fd: number, options: PipeOptions<CodecOption | undefined>, child: ChildHandle) {
    super(fd, options, { truncatedEnd: (e) => withExitStatus(e, child.exited) });
    this.pid = child.pid;
    this.exited = child.exited;
    this.#child = child;
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    return this.#child.kill(killSignal(signal));
  }

  /**
   * Closes our end (a child still writing gets EPIPE/SIGPIPE) and waits for the child to
   * exit, like pclose. `timeout`/`signal` bound that wait; the child is then left running
   * (use `kill()`).
   */
  override close(options?: WaitOptions): Promise<ChildExit> {
    validate.waitOptions(options);
    return super.close().then(() => waitForExit(this.exited, `wait for ${this.pid} to exit`, options));
  }

  /** A Node Readable of the messages (as Buffers); destroying it closes this reader. */
  stream(): Readable {
    return toReadable(this as unknown as PipeReader<Uint8Array>);
  }
}

/** popen(..., 'w'): the child's stdin. */
export class PopenWriter<T> extends ChildPipeWriter<T, ChildExit> {
  readonly pid: number;
  /** Settles with the exit status once the child has exited (and been reaped). */
  readonly exited: Promise<ChildExit>;
  readonly #child: ChildHandle;

  /** @internal */
  constructor(fd: number, options: PipeOptions<CodecOption | undefined>, child: ChildHandle) {
    super(fd, options, child.exited);
    this.pid = child.pid;
    this.exited = child.exited;
    this.#child = child;
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    return this.#child.kill(killSignal(signal));
  }

  /**
   * Flushes, closes the child's stdin and waits for it to exit, like pclose. Rejects only
   * if accepted messages were lost and no `send` reported it (the error then carries the
   * exit status). `timeout`/`signal` bound the whole wait; the child is then left running.
   */
  override close(options?: WaitOptions): Promise<ChildExit> {
    const started = Date.now();
    // super.close checks the options (and throws) before anything is closed.
    return super.close(options).then(() => {
      const rest = options?.timeout === undefined ? options : { ...options, timeout: Math.max(0, options.timeout - (Date.now() - started)) };
      return waitForExit(this.exited, `wait for ${this.pid} to exit`, rest);
    });
  }

  /** A Node Writable whose chunks are sent as messages; ending it closes this writer. */
  stream(): Writable {
    return toWritable(this as unknown as PipeWriter<Uint8Array>);
  }
}

/**
 * Starts `command` with its stdout ('r') or stdin ('w') connected to a pipe of ours.
 * `command` is an argv array (no shell), or a string with `{ shell: true }`.
 */
export function popen<C extends CodecOption | undefined = undefined>(command: string[] | string, mode: 'r', options?: PopenOptions<C>): PopenReader<MessageOf<C>>;
export function popen<C extends CodecOption | undefined = undefined>(command: string[] | string, mode: 'w', options?: PopenOptions<C>): PopenWriter<MessageOf<C>>;
export function popen<C extends CodecOption | undefined = undefined>(
  command: string[] | string,
  mode: 'r' | 'w',
  options: PopenOptions<C> = {},
): PopenReader<MessageOf<C>> | PopenWriter<MessageOf<C>> {
  validate.oneOf('mode', mode, ['r', 'w'] as const);
  validate.object('options', options);
  validate.optionalBoolean('shell', options.shell);
  let argv: string[];
  if (typeof command === 'string') {
    if (options.shell !== true) {
      throw invalidArgument('command is a string: pass an argv array (no shell), or { shell: true } to run it with /bin/sh -c (unsafe with untrusted input)');
    }
    argv = ['/bin/sh', '-c', validate.string('command', command)];
  } else {
    if (options.shell === true) throw invalidArgument('{ shell: true } takes the command as one string, not an argv array');
    argv = validateArgv(command);
  }
  const { shell, cwd, env, dieWithParent, processGroup, stderr, stdin, stdout, capacity, ...streamOptions } = options;
  validateChildOptions(options);
  validate.optionalOneOf('stdin', stdin, ['inherit', 'ignore'] as const);
  validate.optionalOneOf('stdout', stdout, ['inherit', 'ignore'] as const);
  // Check the stream options (all of them, as the reader/writer will) before starting anything.
  validateStreamOptions(streamOptions);
  if (capacity !== undefined) validate.integer('capacity', capacity, 1, 2 ** 31 - 1);
  const [r, w] = sys('create pipe', () => native.pipe());
  const [mine, theirs] = mode === 'r' ? [r, w] : [w, r];
  let started;
  try {
    native.setNonBlocking(mine, true);
    if (capacity !== undefined) setPipeCapacity(mine, capacity);
    const stdio = mode === 'r' ? [stdin ?? 'ignore', theirs, stderr ?? 'inherit'] : [theirs, stdout ?? 'inherit', stderr ?? 'inherit'];
    started = startChild(argv, stdio, {
      ...(cwd !== undefined ? { cwd } : {}),
      ...(env !== undefined ? { env } : {}),
      ...(dieWithParent !== undefined ? { dieWithParent } : {}),
      processGroup: processGroup ?? shell === true,
    });
  } catch (e) {
    native.close(mine);
    native.close(theirs);
    throw e;
  }
  native.close(theirs);
  const child: ChildHandle = { pid: started.pid, exited: started.exited, kill: started.kill };
  return mode === 'r' ? new PopenReader<MessageOf<C>>(mine, streamOptions, child) : new PopenWriter<MessageOf<C>>(mine, streamOptions, child);
}
