/**
 * Starting child programs for pipe.ts and popen.ts: argv only (no shell unless asked),
 * the program resolved on PATH before anything starts (so a missing program is
 * ERR_IPCKIT_NOT_FOUND, not a late exit 127), always reaped (Node's libuv reaps its own
 * children), and killed when we die: the child is started through the small
 * `ipckit-exec` helper, which sets PR_SET_PDEATHSIG and then execs the program in place.
 *
 * Linux's parent-death signal follows the *thread* that started the child: a child
 * started from a worker_thread is killed when that worker ends.
 *
 * Only the started process is covered, not what it starts itself, unless `processGroup`
 * is set (the default for shell commands): then the helper stays as a small supervisor
 * leading a process group, forwards signals to the whole group and kills the whole group
 * when we die, for as long as the command runs (it exits with the command: what the
 * command leaves running in the background is not covered after that).
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, isAbsolute, join, resolve as resolvePath } from 'node:path';
import { cancellableWait, type WaitOptions } from '../core/channel.js';
import { IpcError, invalidArgument } from '../core/errors.js';
import { execHelperPath, native } from './native.js';
import * as validate from '../core/validate.js';

export interface ChildExit {
  /** Exit status, or null when a signal ended the child. */
  exitCode: number | null;
  /** The signal that ended the child, or null. */
  signal: NodeJS.Signals | null;
}

export interface ChildOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the child (SIGKILL) when this process, or the thread that started it, dies. Default true. */
  dieWithParent?: boolean;
  /**
   * Run the command in a process group of its own, under a supervisor that forwards
   * signals to the group and kills the whole group when we die, so that what the command
   * starts dies too. Default: true for shell commands (`{ shell: true }`), else false.
   * Needs dieWithParent.
   */
  processGroup?: boolean;
  /** Where the child's stderr goes: inherited by default. */
  stderr?: 'inherit' | 'ignore';
}

/** Finds `program` the way execvp would, returning an absolute path. */
export function resolveProgram(program: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  const isExecutableFile = (p: string): boolean => {
    try {
      accessSync(p, fsConstants.X_OK);
      return statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (program.includes('/')) {
    const p = isAbsolute(program) ? program : resolvePath(cwd, program);
    if (isExecutableFile(p)) return p;
    throw new IpcError('ERR_IPCKIT_NOT_FOUND', `cannot run ${JSON.stringify(program)}: no executable file at ${p}`, { path: p });
  }
  for (const dir of (env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, program);
    if (isExecutableFile(p)) return p;
  }
  throw new IpcError('ERR_IPCKIT_NOT_FOUND', `cannot run ${JSON.stringify(program)}: not found on PATH`, { path: program });
}

export function validateArgv(command: unknown, name = 'command'): string[] {
  if (!Array.isArray(command) || command.length === 0) {
    throw invalidArgument(`${name} must be a non-empty array of strings (program and arguments), got ${validate.describe(command)}`);
  }
  return command.map((a, i) => validate.string(`${name}[${i}]`, a, { nonEmpty: i === 0 }));
}

/**
 * Checks the ChildOptions fields of `options` (other fields are the caller's), so that a
 * bad one is refused before any pipe is made or any process started.
 */
export function validateChildOptions(options: ChildOptions): void {
  validate.optionalString('cwd', options.cwd);
  if (options.env !== undefined) {
    const env = validate.object<Record<string, unknown>>('env', options.env);
    for (const [k, v] of Object.entries(env)) {
      if (v !== undefined && typeof v !== 'string') throw invalidArgument(`env.${k} must be a string, got ${validate.describe(v)}`);
    }
  }
  validate.optionalBoolean('dieWithParent', options.dieWithParent);
  validate.optionalBoolean('processGroup', options.processGroup);
  validate.optionalOneOf('stderr', options.stderr, ['inherit', 'ignore'] as const);
}

/** A signal for kill(): a name Node knows ('SIGTERM') or a number from 0 to SIGRTMAX. */
export function killSignal(signal: unknown): NodeJS.Signals | number {
  if (typeof signal === 'number') return validate.integer('signal', signal, 0, native.signalConstants.SIGRTMAX);
  if (typeof signal !== 'string' || !Object.hasOwn(osConstants.signals, signal)) {
    throw invalidArgument(`signal must be a signal name like "SIGTERM" or a number, got ${validate.describe(signal)}`);
  }
  return signal as NodeJS.Signals;
}

export interface StartedChild {
  child: ChildProcess;
  pid: number;
  /** Settles when the child has exited and been reaped. */
  exited: Promise<ChildExit>;
  /** Sends a signal: to the whole group for SIGKILL in processGroup mode (the supervisor forwards the others). */
  kill(signal?: NodeJS.Signals | number): boolean;
}

/**
 * Starts argv[0] with `stdio` (index = fd in the child). Integers in `stdio` are fds of
 * ours that the child gets at that index; the caller closes its copies afterwards.
 */
export function startChild(argv: string[], stdio: StdioOptions, options: ChildOptions = {}): StartedChild {
  const env = options.env ?? process.env;
  const program = resolveProgram(argv[0]!, env, options.cwd ?? process.cwd());
  const dieWithParent = options.dieWithParent ?? true;
  if (dieWithParent && !existsSync(execHelperPath)) {
    throw new IpcError('ERR_IPCKIT_UNSUPPORTED', `the die-with-parent helper is missing at ${execHelperPath} (it ships in prebuilds/ next to the addon, and a build from source makes it in build/Release); pass { dieWithParent: false } to start children without it`, {
      path: execHelperPath,
    });
  }
  const group = dieWithParent && options.processGroup === true;
  const helperArgs = [...(group ? ['--group'] : []), String(process.pid), program, ...argv];
  const [file, args] = dieWithParent ? [execHelperPath, helperArgs] : [program, argv.slice(1)];
  let child: ChildProcess;
  try {
    child = spawn(file, args, {
      stdio,
      env,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
      ...(dieWithParent ? {} : { argv0: argv[0]! }),
    });
  } catch (e) {
    throw new IpcError('ERR_IPCKIT_SYSCALL', `cannot start ${argv[0]}: ${(e as Error).message}`, { cause: e });
  }
  const exited = new Promise<ChildExit>((resolve, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) => {
      // 'error' without a pid: spawn itself failed. After a start, 'exit' follows.
      if (child.pid === undefined) reject(new IpcError('ERR_IPCKIT_SYSCALL', `cannot start ${argv[0]}: ${e.message}`, { cause: e }));
    });
    child.once('exit', (exitCode, signal) => resolve({ exitCode, signal }));
  });
  exited.catch(() => {});
  if (child.pid === undefined) {
    // spawn failed (its 'error' event, already handled above, comes on the next tick).
    throw new IpcError('ERR_IPCKIT_SYSCALL', `cannot start ${argv[0]}: the system refused to create the process`, { path: program });
  }
  const pid = child.pid;
  const kill = (signal: NodeJS.Signals | number = 'SIGTERM'): boolean => {
    if (group && (signal === 'SIGKILL' || signal === 9) && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-pid, 'SIGKILL');
        return true;
      } catch {
        return false;
      }
    }
    return child.kill(signal);
  };
  return { child, pid, exited, kill };
}

/** "exit code 3" / "signal SIGKILL", for messages. */
export function describeExit(exit: ChildExit): string {
  return exit.signal ? `killed by ${exit.signal}` : `exited with code ${exit.exitCode}`;
}

/**
 * Waits for a child's exit with a timeout and an AbortSignal (ERR_IPCKIT_TIMEOUT /
 * ERR_IPCKIT_ABORTED: the child is left running, not killed).
 */
export function waitForExit(exited: Promise<ChildExit>, what: string, options?: WaitOptions): Promise<ChildExit> {
  validate.waitOptions(options);
  if (options?.timeout === undefined && options?.signal === undefined) return exited;
  return cancellableWait<ChildExit>(what, options, (resolve, reject) => {
    exited.then(resolve, reject);
  });
}

/** Resolves with the exit if it comes within `ms`, else undefined. */
export function exitWithin(exited: Promise<ChildExit>, ms: number): Promise<ChildExit | undefined> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(undefined), ms);
    exited.then(
      (e) => {
        clearTimeout(t);
        resolve(e);
      },
      () => {
        clearTimeout(t);
        resolve(undefined);
      },
    );
  });
}
