/**
 * One error class for everything ipckit reports: `IpcError`, with a stable `code`.
 * Callers and tests branch on `code`, never on the message text. Every code is listed
 * once in `ERROR_CODES` (alphabetical) and documented in docs/errors.md; a test fails
 * when the two disagree.
 */
import { getSystemErrorName } from 'node:util';

/** Every code ipckit uses, with a one-line meaning (docs/errors.md says more). */
export const ERROR_CODES = {
  ERR_IPCKIT_ABORTED: 'the wait was ended by its AbortSignal; `cause` is the signal\'s reason',
  ERR_IPCKIT_BAD_FRAME: 'bytes from the peer are not a valid message: a stream ended inside a frame, or a payload failed to decode',
  ERR_IPCKIT_CLOSED: 'the channel or object was closed, or the other side finished cleanly',
  ERR_IPCKIT_CORRUPT: 'a shared structure (ring, queue, mutex segment) holds values that break its invariants',
  ERR_IPCKIT_EXISTS: 'an object with that name or path already exists',
  ERR_IPCKIT_FRAME_TOO_LARGE: 'a message is larger than the limit (maxMessageBytes, a queue\'s maxMessageBytes)',
  ERR_IPCKIT_INVALID_ARGUMENT: 'an argument is of the wrong type, out of range, or names the wrong kind of object',
  ERR_IPCKIT_LIMIT: 'a kernel or process limit was reached; the message names the limit and how to raise it',
  ERR_IPCKIT_NOT_FOUND: 'no object with that name or path exists',
  ERR_IPCKIT_OWNER_DIED: 'the owner of a lock died while holding it, or the lock was left unrecoverable',
  ERR_IPCKIT_PEER_GONE: 'the process on the other side exited or closed its end while we were using it',
  ERR_IPCKIT_PERMISSION: 'the kernel refused access, or the object belongs to someone else or is wider than asked',
  ERR_IPCKIT_SLOW_CONSUMER: 'a receiver fell behind a source that cannot wait (core NATS) and messages were dropped; `details.dropped` says how many',
  ERR_IPCKIT_SYSCALL: 'a system call failed with an errno that has no more specific code (see `systemCode`)',
  ERR_IPCKIT_TIMEOUT: 'the wait took longer than its `timeout`',
  ERR_IPCKIT_UNSUPPORTED: 'this kernel, runtime or thread cannot do what was asked',
  ERR_IPCKIT_WRONG_KIND: 'the object exists but is another kind of ipckit object; the message names what it is',
} as const;

export type IpcErrorCode = keyof typeof ERROR_CODES;

export interface IpcErrorOptions {
  cause?: unknown;
  /** errno number of the failed system call, when there was one. */
  errno?: number;
  /** Name of the failed system call, e.g. `mq_open`. */
  syscall?: string;
  /** errno name, e.g. `EACCES`. */
  systemCode?: string;
  /** Path or name of the object concerned. */
  path?: string;
  /** Anything else worth knowing (exit status of a peer, a limit's value). */
  details?: Record<string, unknown>;
  /** What the caller can pass to get past this failure (see Remedy). */
  remedy?: Remedy;
}

/**
 * Options that would change the outcome, kept as data so that each caller can say them in
 * its own terms: the API as `{ anyOwner: true }`, the CLI as `--any-owner`.
 */
export interface Remedy {
  /** Each entry is one way out. A value of `undefined` means "with a value of your choosing": `{ owner }`. */
  options: ReadonlyArray<Readonly<Record<string, unknown>>>;
  /** Said after the options: `if that is expected`. */
  when?: string;
}

/** `{ anyOwner: true }`, `{ owner }`, `{ mode: 0o644 }`: an option as a caller writes it. */
function apiOption(option: Readonly<Record<string, unknown>>): string {
  const fields = Object.entries(option).map(([k, v]) => (v === undefined ? k : `${k}: ${typeof v === 'string' ? `'${v}'` : typeof v === 'number' && k === 'mode' ? `0o${v.toString(8)}` : String(v)}`));
  return `{ ${fields.join(', ')} }`;
}

/** The remedy in words, with `say` naming each option (the API's way by default). */
export function remedyText(remedy: Remedy, say: (option: Readonly<Record<string, unknown>>) => string = apiOption): string {
  return `pass ${remedy.options.map(say).join(' or ')}${remedy.when ? ` ${remedy.when}` : ''}`;
}

/** Marks IpcErrors made by any copy of ipckit loaded in this process (see isIpcError). */
const BRAND = Symbol.for('ipckit.IpcError');

export class IpcError extends Error {
  override readonly name = 'IpcError';
  readonly code: IpcErrorCode;
  /** What went wrong, in words, without the remedy or the code (`message` is `${reason}; ${remedy} (${code})`). */
  readonly reason: string;
  declare readonly errno?: number;
  declare readonly syscall?: string;
  declare readonly systemCode?: string;
  declare readonly path?: string;
  declare readonly details?: Record<string, unknown>;
  /** Options that would get past this failure; `message` says them in the API's terms. */
  declare readonly remedy?: Remedy;

  constructor(code: IpcErrorCode, reason: string, options: IpcErrorOptions = {}) {
    checkCode(code);
    if (typeof reason !== 'string') throw invalidArgument(`reason must be a string, got ${typeof reason}`);
    if (options === null || typeof options !== 'object') throw invalidArgument(`options must be an object, got ${options === null ? 'null' : typeof options}`);
    super(`${reason}${options.remedy ? `; ${remedyText(options.remedy)}` : ''} (${code})`, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.reason = reason;
    if (options.remedy !== undefined) this.remedy = options.remedy;
    if (options.errno !== undefined) this.errno = options.errno;
    if (options.syscall !== undefined) this.syscall = options.syscall;
    if (options.systemCode !== undefined) this.systemCode = options.systemCode;
    if (options.path !== undefined) this.path = options.path;
    if (options.details !== undefined) this.details = options.details;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /**
   * The same failure told with more: `note` is appended to the reason, `details` merged,
   * `code` replaced if given; errno, syscall and path are kept, and the cause is this
   * error's cause (or this error).
   */
  amend(more: { note?: string; details?: Record<string, unknown>; code?: IpcErrorCode }): IpcError {
    if (more === null || typeof more !== 'object') throw invalidArgument(`amend takes { note, details, code }, got ${more === null ? 'null' : typeof more}`);
    if (more.note !== undefined && typeof more.note !== 'string') throw invalidArgument(`note must be a string, got ${typeof more.note}`);
    if (more.details !== undefined && (more.details === null || typeof more.details !== 'object')) throw invalidArgument(`details must be an object, got ${more.details === null ? 'null' : typeof more.details}`);
    if (more.code !== undefined) checkCode(more.code);
    return retold(this, more.code ?? this.code, more.note === undefined ? this.reason : `${this.reason}; ${more.note}`, more.details);
  }

  /** `instanceof IpcError` holds for an IpcError of another copy of the package too. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/**
 * `e` told again with `reason` in place of its own and `details` merged into its own: the
 * one copy of what an amended error keeps (errno, syscall, path, remedy; the cause is `e`'s
 * cause, or `e`). amend() appends to the reason; src/core/batch.ts restates a count in it.
 */
export function retold(e: IpcError, code: IpcErrorCode, reason: string, details: Record<string, unknown> | undefined): IpcError {
  return new IpcError(code, reason, {
    cause: e.cause ?? e,
    ...(e.errno !== undefined ? { errno: e.errno } : {}),
    ...(e.syscall !== undefined ? { syscall: e.syscall } : {}),
    ...(e.systemCode !== undefined ? { systemCode: e.systemCode } : {}),
    ...(e.path !== undefined ? { path: e.path } : {}),
    ...(e.remedy !== undefined ? { remedy: e.remedy } : {}),
    ...(e.details !== undefined || details !== undefined ? { details: { ...e.details, ...details } } : {}),
  });
}

/** Throws unless `code` is in the registry (this file cannot use validate.ts, which imports it). */
function checkCode(code: unknown): void {
  if (typeof code !== 'string' || !Object.hasOwn(ERROR_CODES, code)) {
    throw invalidArgument(`code must be one of the ERR_IPCKIT_* codes of ERROR_CODES, got ${typeof code === 'string' ? JSON.stringify(code) : typeof code}`);
  }
}

/** errno name -> code, by meaning. Anything not listed is ERR_IPCKIT_SYSCALL. */
const ERRNO_CODES: Readonly<Record<string, IpcErrorCode>> = {
  EACCES: 'ERR_IPCKIT_PERMISSION',
  EPERM: 'ERR_IPCKIT_PERMISSION',
  EROFS: 'ERR_IPCKIT_PERMISSION',
  EEXIST: 'ERR_IPCKIT_EXISTS',
  EADDRINUSE: 'ERR_IPCKIT_EXISTS',
  ENOENT: 'ERR_IPCKIT_NOT_FOUND',
  ENXIO: 'ERR_IPCKIT_NOT_FOUND',
  ESRCH: 'ERR_IPCKIT_NOT_FOUND',
  EPIPE: 'ERR_IPCKIT_PEER_GONE',
  ECONNRESET: 'ERR_IPCKIT_PEER_GONE',
  ECONNREFUSED: 'ERR_IPCKIT_PEER_GONE',
  ENOTCONN: 'ERR_IPCKIT_PEER_GONE',
  ETIMEDOUT: 'ERR_IPCKIT_TIMEOUT',
  EINVAL: 'ERR_IPCKIT_INVALID_ARGUMENT',
  ENAMETOOLONG: 'ERR_IPCKIT_INVALID_ARGUMENT',
  ENOTDIR: 'ERR_IPCKIT_INVALID_ARGUMENT',
  EISDIR: 'ERR_IPCKIT_INVALID_ARGUMENT',
  ELOOP: 'ERR_IPCKIT_PERMISSION',
  EMFILE: 'ERR_IPCKIT_LIMIT',
  ENFILE: 'ERR_IPCKIT_LIMIT',
  ENOSPC: 'ERR_IPCKIT_LIMIT',
  ENOMEM: 'ERR_IPCKIT_LIMIT',
  ENOBUFS: 'ERR_IPCKIT_LIMIT',
  EMSGSIZE: 'ERR_IPCKIT_FRAME_TOO_LARGE',
  EOWNERDEAD: 'ERR_IPCKIT_OWNER_DIED',
  ENOTRECOVERABLE: 'ERR_IPCKIT_OWNER_DIED',
  ENOSYS: 'ERR_IPCKIT_UNSUPPORTED',
  EOPNOTSUPP: 'ERR_IPCKIT_UNSUPPORTED',
  EAFNOSUPPORT: 'ERR_IPCKIT_UNSUPPORTED',
  EPROTONOSUPPORT: 'ERR_IPCKIT_UNSUPPORTED',
  EBADF: 'ERR_IPCKIT_CLOSED',
};

/** Linux errno names that libuv does not know (x86-64 and arm64 share these numbers). */
const EXTRA_ERRNO_NAMES: Readonly<Record<number, string>> = { 130: 'EOWNERDEAD', 131: 'ENOTRECOVERABLE', 42: 'ENOMSG', 95: 'EOPNOTSUPP' };

/** Name of an errno number (`13` -> `EACCES`). */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  const extra = EXTRA_ERRNO_NAMES[n];
  if (extra) return extra;
  try {
    const name = getSystemErrorName(-n);
    return name.startsWith('Unknown') ? `E${n}` : name;
  } catch {
    return `E${n}`;
  }
}

/** The IpcError for a failed system call. `what` says what we were doing, for the message. */
export function errnoError(errno: number, syscall: string, what?: string, options: IpcErrorOptions = {}): IpcError {
  const n = Math.abs(errno);
  const name = errnoName(n);
  const code = ERRNO_CODES[name] ?? 'ERR_IPCKIT_SYSCALL';
  const subject = what ? `${what}: ` : '';
  const limit = LIMIT_ERRNOS[name];
  if (limit !== undefined && options.details?.limit === undefined) {
    return new IpcError(code, `${subject}${syscall} failed with ${name}: ${limit.says}`, { ...options, errno: n, syscall, systemCode: name, details: { ...options.details, limit: limit.limit } });
  }
  return new IpcError(code, `${subject}${syscall} failed with ${name}`, { ...options, errno: n, syscall, systemCode: name });
}

/** The limits that the descriptor errnos mean, named in the message (a bare EMFILE says little). */
const LIMIT_ERRNOS: Readonly<Record<string, { limit: string; says: string }>> = {
  EMFILE: { limit: 'RLIMIT_NOFILE', says: 'this process has no free descriptor (it reached RLIMIT_NOFILE): close some, or raise it (ulimit -n)' },
  ENFILE: { limit: 'fs.file-max', says: 'the system has no free file (it reached fs.file-max): close some, or raise it (sysctl fs.file-max)' },
};

/** True for the errors the native addon throws (an Error with numeric `errno` and a `syscall`). */
function isNativeErrno(e: unknown): e is Error & { errno: number; syscall: string } {
  return e instanceof Error && typeof (e as { errno?: unknown }).errno === 'number' && typeof (e as { syscall?: unknown }).syscall === 'string';
}

/** The errno a native call failed with, or undefined for anything else. */
export function errnoOf(e: unknown): number | undefined {
  const n = (e as { errno?: unknown } | null | undefined)?.errno;
  return typeof n === 'number' ? n : undefined;
}

/**
 * The one way a native failure becomes an IpcError: an errno error keeps its errno and
 * syscall (and gets a code by meaning); an IpcError passes through; anything else (a bug)
 * becomes ERR_IPCKIT_SYSCALL with the original as its cause. `what` says what we were doing.
 */
export function toIpcError(e: unknown, what: string, options: IpcErrorOptions = {}): IpcError {
  if (e instanceof IpcError) return e;
  if (isNativeErrno(e)) return errnoError(e.errno, e.syscall, what, options);
  return new IpcError('ERR_IPCKIT_SYSCALL', `${what}: ${e instanceof Error ? e.message : String(e)}`, { ...options, cause: e });
}

/**
 * Runs a native call and converts its errno error into an IpcError. Anything else
 * (a bug) is rethrown untouched.
 */
export function sys<R>(what: string, fn: () => R, options: IpcErrorOptions = {}): R {
  try {
    return fn();
  } catch (e) {
    if (!(e instanceof IpcError) && isNativeErrno(e)) throw errnoError(e.errno, e.syscall, what, options);
    throw e;
  }
}

export function invalidArgument(message: string): IpcError {
  return new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', message);
}

export function closedError(what: string): IpcError {
  return new IpcError('ERR_IPCKIT_CLOSED', `${what} is closed`);
}

export function timeoutError(what: string, ms: number): IpcError {
  return new IpcError('ERR_IPCKIT_TIMEOUT', `${what} timed out after ${Math.round(ms)} ms`, { details: { timeout: ms } });
}

export function abortedError(what: string, signal: AbortSignal): IpcError {
  return new IpcError('ERR_IPCKIT_ABORTED', `${what} was aborted`, { cause: signal.reason });
}

/**
 * True for an IpcError (of any copy of ipckit loaded in the process), with `code` if given.
 * With a code, a false answer still allows an IpcError of another code (the type says so).
 */
export function isIpcError(e: unknown): e is IpcError;
export function isIpcError<C extends IpcErrorCode>(e: unknown, code: C): e is IpcError & { readonly code: C };
export function isIpcError(e: unknown, code?: IpcErrorCode): boolean {
  if (code !== undefined) checkCode(code);
  return e instanceof IpcError && (code === undefined || e.code === code);
}
