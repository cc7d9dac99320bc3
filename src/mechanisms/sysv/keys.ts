/**
 * How System V objects are named: a key (a 32-bit number, often made by ftok from a path and
 * a project id), or, once made, the identifier the kernel gave it (what `ipcs` shows).
 *
 * - `ftok(path, projectId)` is libc's own ftok, so the key is exactly the one a C or Python
 *   peer computes from the same file.
 * - `IPC_PRIVATE` (0) makes an object no key finds: share its identifier instead.
 * - A target is a key (`0x5e0001`, a number), or `{ id }`. The CLI also takes `id:N` and
 *   `PATH:PROJ` (parseSysvTarget).
 * - Opening finds the object now, or, with `{ wait: true }`, waits for its key to appear
 *   (every 1 ms, doubling to 50 ms: the kernel has nothing to wait on), with timeout and
 *   signal.
 */
import { constants as osConstants } from 'node:os';
import { cancellableWait, type WaitOptions } from '../../core/channel.js';
import { errnoOf, IpcError, toIpcError } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import { native } from '../../os/native.js';

const { ENOENT, EINVAL, EIDRM, EACCES } = osConstants.errno;

/** The key of an object no key finds (shared by identifier, or inherited). */
export const IPC_PRIVATE = 0;

export type SysvKind = 'msg' | 'sem' | 'shm';

/** A key (a number, 0..0xffffffff), or an identifier the kernel gave. */
export type SysvTarget = number | { key: number } | { id: number };

const KIND_NAMES: Record<SysvKind, string> = { msg: 'System V message queue', sem: 'System V semaphore set', shm: 'System V shared memory segment' };

export function kindName(kind: SysvKind): string {
  return KIND_NAMES[kind];
}

/** `0x005e0001`, as ipcs prints keys. */
export function keyHex(key: number): string {
  return `0x${(key >>> 0).toString(16).padStart(8, '0')}`;
}

/** A key: an integer 0..0xffffffff (a negative C key_t is taken as its unsigned value). */
export function validateKey(name: string, value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value) && value < 0 && value >= -(2 ** 31)) return value >>> 0;
  return validate.integer(name, value, 0, 0xffffffff);
}

/** The target as { key } or { id }, checked. */
export function validateTarget(value: unknown): { key: number } | { id: number } {
  if (typeof value === 'number') return { key: validateKey('key', value) };
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const o = value as { key?: unknown; id?: unknown };
    if (o.key !== undefined && o.id === undefined) return { key: validateKey('key', o.key) };
    if (o.id !== undefined && o.key === undefined) return { id: validate.integer('id', o.id, 0, 2 ** 31 - 1) };
  }
  throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `the object must be a key (a number like 0x5e0001), { key } or { id }, got ${validate.describe(value)}`);
}

/** "System V message queue key 0x005e0001" / "... id 3". */
export function describeTarget(kind: SysvKind, target: { key: number } | { id: number }): string {
  return 'key' in target ? `${kindName(kind)} key ${keyHex(target.key)}` : `${kindName(kind)} id ${target.id}`;
}

/** libc's ftok: the key a C or Python peer makes from the same existing file and project id (1..255). */
export function ftok(path: string, projectId: number): number {
  validate.string('path', path);
  validate.integer('projectId', projectId, 1, 255);
  try {
    return native.ftok(path, projectId);
  } catch (e) {
    if (errnoOf(e) === ENOENT) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `ftok needs an existing file: no ${path}`, { path, errno: ENOENT, syscall: 'ftok', systemCode: 'ENOENT' });
    throw toIpcError(e, `ftok ${path}`, { path });
  }
}

/**
 * A key as the command line writes it: `0x5e0001` or a decimal number; `id:N` for an
 * identifier from ipcs; `PATH:PROJ` for ftok(PATH, PROJ) (PROJ a number 1..255 or one
 * character, as ftok's callers often pass 'A').
 */
export function parseSysvTarget(text: string): { key: number } | { id: number } {
  validate.string('key', text);
  const id = /^id:(\d+)$/.exec(text);
  if (id) return { id: validate.integer('id', Number(id[1]), 0, 2 ** 31 - 1) };
  if (/^0x[0-9a-f]{1,8}$/i.test(text)) return { key: parseInt(text.slice(2), 16) };
  if (/^\d+$/.test(text)) return { key: validateKey('key', Number(text)) };
  const at = text.lastIndexOf(':');
  if (at > 0) {
    const proj = text.slice(at + 1);
    const projectId = /^\d+$/.test(proj) ? Number(proj) : [...proj].length === 1 ? proj.codePointAt(0)! : NaN;
    if (Number.isInteger(projectId) && projectId >= 1 && projectId <= 255) return { key: ftok(text.slice(0, at), projectId) };
  }
  throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `a System V key is 0x5e0001 or a decimal number, id:N (an identifier from ipcs) or PATH:PROJ (ftok of an existing file, PROJ 1..255 or one character), got ${JSON.stringify(text)}`);
}

/** Errors that mean "the object is gone" from a call on its identifier. */
export function isGone(errno: number): boolean {
  return errno === EIDRM || errno === EINVAL;
}

/**
 * The identifier of an existing object: by key with `get(key)` (xxxget(key, 0)), or an
 * identifier checked with `stat(id)`. ERR_IPCKIT_NOT_FOUND when there is none.
 */
export function findSysv(kind: SysvKind, target: { key: number } | { id: number }, get: (key: number) => number, stat: (id: number) => unknown): number {
  const what = describeTarget(kind, target);
  if ('key' in target) {
    if (target.key === IPC_PRIVATE) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `no key finds an IPC_PRIVATE ${kindName(kind)}: open it by its identifier ({ id })`);
    try {
      return get(target.key);
    } catch (e) {
      if (errnoOf(e) === ENOENT) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `no ${what}`, { errno: ENOENT, syscall: `${kind}get`, systemCode: 'ENOENT' });
      throw toIpcError(e, `find ${what}`);
    }
  }
  try {
    stat(target.id);
  } catch (e) {
    const errno = errnoOf(e);
    if (errno !== undefined && isGone(errno)) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `no ${what}`, { errno, syscall: `${kind}ctl(IPC_STAT)`, systemCode: errno === EIDRM ? 'EIDRM' : 'EINVAL' });
    if (errno === EACCES) throw new IpcError('ERR_IPCKIT_PERMISSION', `${what} cannot be read by uid ${process.geteuid?.()}: its mode lets us no access`, { errno, syscall: `${kind}ctl(IPC_STAT)`, systemCode: 'EACCES' });
    throw toIpcError(e, `find ${what}`);
  }
  return target.id;
}

/** findSysv, waiting for the key to appear (see above), then `accept(id)` (false: not yet, keep waiting). */
export function waitForSysv(kind: SysvKind, target: { key: number } | { id: number }, get: (key: number) => number, stat: (id: number) => unknown, options: WaitOptions, accept: (id: number) => boolean = () => true): Promise<number> {
  const what = `wait for ${describeTarget(kind, target)}`;
  return cancellableWait<number>(what, options, (resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let delay = 1;
    const attempt = (): void => {
      timer = undefined;
      try {
        const id = findSysv(kind, target, get, stat);
        if (accept(id)) {
          resolve(id);
          return;
        }
      } catch (e) {
        // An identifier never comes back once gone: only a key is worth waiting for.
        if (!(e instanceof IpcError && e.code === 'ERR_IPCKIT_NOT_FOUND') || 'id' in target) {
          reject(e);
          return;
        }
      }
      timer = setTimeout(attempt, delay);
      delay = Math.min(delay * 2, 50);
    };
    attempt();
    return () => {
      if (timer !== undefined) clearTimeout(timer);
    };
  });
}
