/**
 * The ownership model every named object shares (FIFOs, sockets, shm, mqueues,
 * semaphores, mutexes):
 *
 * - Create exclusively (O_EXCL) with mode 0600 unless asked; the mode is then set exactly
 *   with fchmod, so a umask can neither widen nor narrow it.
 * - Cross-user sharing is explicit: `{ mode: 0o660, group: gid }` on create.
 * - Opening an existing object checks it with fstat: it must belong to us (or to
 *   `owner`), and its permission bits must be within `mode` (default 0600), else
 *   ERR_IPCKIT_PERMISSION: someone else may have squatted the name. `anyOwner: true`
 *   skips both checks for objects another user made for us on purpose.
 */
import { constants as fsConstants } from 'node:fs';
import { IpcError, type Remedy } from '../core/errors.js';
import type { NativeStat } from './native.js';
import * as validate from '../core/validate.js';

export interface CreateModeOptions {
  /** Permission bits of the new object (default 0o600). */
  mode?: number;
  /** Group to give the object (gid), for sharing with that group via `mode`. */
  group?: number;
}

export interface OwnerCheckOptions {
  /** Widest permission bits accepted on an existing object (default 0o600). */
  mode?: number;
  /** uid that must own the object (default: our effective uid). */
  owner?: number;
  /** Accept any owner and any mode (the object was made by someone else for us). */
  anyOwner?: boolean;
}

export const DEFAULT_MODE = 0o600;

export function createMode(options: CreateModeOptions): { mode: number; group: number | undefined } {
  return {
    mode: validate.mode('mode', options.mode, DEFAULT_MODE),
    group: validate.optionalInteger('group', options.group, 0, 2 ** 32 - 2),
  };
}

const octal = (bits: number): string => (bits & 0o7777).toString(8).padStart(4, '0');

/** The remedy of an object that belongs to someone else: trust it, or name its owner. */
export const TRUST_OWNER: Remedy = { options: [{ anyOwner: true }, { owner: undefined }], when: 'if that is expected' };

/**
 * Checks the owner-check options (`mode`, `owner`, `anyOwner`) before anything is
 * opened, so that a bad one throws at once rather than after a system call.
 */
export function validateOwnerCheck(options: OwnerCheckOptions): void {
  validate.mode('mode', options.mode, DEFAULT_MODE);
  validate.optionalInteger('owner', options.owner, 0, 2 ** 32 - 2);
  validate.optionalBoolean('anyOwner', options.anyOwner);
}

/**
 * Throws ERR_IPCKIT_PERMISSION if an existing object is not ours or is wider than allowed.
 * `cuid`: the creator of a System V object, who keeps the owner's rights (IPC_SET,
 * IPC_RMID, the owner's permission bits) after giving it to another uid, so it must be ours
 * too. `remedy`: the options to name, in the caller's API.
 */
export function checkOwner(st: Pick<NativeStat, 'uid' | 'mode'> & { cuid?: number }, what: string, options: OwnerCheckOptions = {}, remedy: Remedy = TRUST_OWNER): void {
  validateOwnerCheck(options);
  if (options.anyOwner === true) return;
  const allowed = options.mode ?? DEFAULT_MODE;
  const owner = options.owner ?? process.geteuid?.() ?? 0;
  if (st.uid !== owner) {
    throw new IpcError('ERR_IPCKIT_PERMISSION', `${what} belongs to uid ${st.uid} (mode ${octal(st.mode)}), not uid ${owner}; refusing it`, {
      details: { uid: st.uid, mode: st.mode & 0o7777, expectedUid: owner, ...(st.cuid !== undefined ? { cuid: st.cuid } : {}) },
      remedy,
    });
  }
  if (st.cuid !== undefined && st.cuid !== owner) {
    throw new IpcError('ERR_IPCKIT_PERMISSION', `${what} was created by uid ${st.cuid}, who keeps an owner's rights over it, and given to uid ${st.uid}; refusing it`, {
      details: { uid: st.uid, cuid: st.cuid, mode: st.mode & 0o7777, expectedUid: owner },
      remedy,
    });
  }
  const bits = st.mode & 0o777;
  if ((bits & ~allowed) !== 0) {
    throw new IpcError('ERR_IPCKIT_PERMISSION', `${what} (owner uid ${st.uid}) has mode ${octal(bits)}, wider than the allowed ${octal(allowed)}; refusing it`, {
      details: { uid: st.uid, mode: bits, allowedMode: allowed },
      remedy: { options: [{ mode: bits }], when: 'to accept that mode' },
    });
  }
}

/** What kind of file `st_mode` describes, for messages: "a regular file", "a symlink", ... */
export function fileTypeName(mode: number): string {
  switch (mode & fsConstants.S_IFMT) {
    case fsConstants.S_IFREG:
      return 'a regular file';
    case fsConstants.S_IFDIR:
      return 'a directory';
    case fsConstants.S_IFIFO:
      return 'a FIFO';
    case fsConstants.S_IFSOCK:
      return 'a socket';
    case fsConstants.S_IFCHR:
      return 'a character device';
    case fsConstants.S_IFBLK:
      return 'a block device';
    case fsConstants.S_IFLNK:
      return 'a symlink';
    default:
      return 'of an unknown type';
  }
}
