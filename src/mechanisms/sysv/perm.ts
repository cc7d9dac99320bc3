/**
 * The permission side of every System V object: its `ipc_perm` as the shared IpcPerm record
 * (os/ipc-perm.ts), the owner check on open, and the options create and open share.
 *
 * - Create is exclusive (IPC_CREAT | IPC_EXCL) with mode 0600 unless asked. System V
 *   ignores the umask: the mode given is the mode set.
 * - Open checks the object (IPC_STAT) before using it: its owner and its creator must be us
 *   (or `owner`), and its permission bits within `mode` (default 0600), else
 *   ERR_IPCKIT_PERMISSION: someone else may have made the key first, and the creator keeps
 *   an owner's rights even after handing the object to us. `{ anyOwner: true }` accepts any
 *   owner and mode.
 */
import { invalidArgument } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import type { SysvIpcPerm } from '../../os/ipc-perm.js';
import type { NativeIpcPerm } from '../../os/native.js';
import { checkOwner, TRUST_OWNER, createMode, type CreateModeOptions } from '../../os/permissions.js';
import type { WaitOptions } from '../../core/channel.js';
import type { SysvKind } from './keys.js';

export type { CreateModeOptions };

export interface SysvOwnerOptions {
  /** Accept an object of any owner and any mode (made for us by someone else on purpose). */
  anyOwner?: boolean;
  /** The uid that must own and have created it (default: our effective uid). */
  owner?: number;
  /** Widest permission bits accepted (default 0o600). */
  mode?: number;
}

export interface SysvOpenOptions extends SysvOwnerOptions, WaitOptions {
  /** Wait for the key to appear (its creator may not have run yet); `timeout` and `signal` bound the wait. */
  wait?: boolean;
}

/** The IpcPerm record of a System V object from its IPC_STAT. */
export function sysvPerm(kind: SysvKind, id: number, p: NativeIpcPerm): SysvIpcPerm {
  return { family: 'sysv', kind, key: p.key, id, uid: p.uid, gid: p.gid, cuid: p.cuid, cgid: p.cgid, mode: p.mode & 0o777, seq: p.seq };
}

/** Throws ERR_IPCKIT_PERMISSION unless the object is ours (owner and creator) and within `mode`. */
export function checkSysvOwner(p: NativeIpcPerm, what: string, options: SysvOwnerOptions): void {
  checkOwner({ uid: p.uid, cuid: p.cuid, mode: p.mode & 0o777 }, what, { ...(options.mode !== undefined ? { mode: options.mode } : {}), ...(options.owner !== undefined ? { owner: options.owner } : {}), anyOwner: options.anyOwner === true }, TRUST_OWNER);
}

/** The owner options, checked (synchronously, before anything is done). */
export function ownerOptions(o: Partial<SysvOpenOptions>): SysvOwnerOptions {
  return {
    ...(o.anyOwner !== undefined ? { anyOwner: flag('anyOwner', o.anyOwner) } : {}),
    ...(o.owner !== undefined ? { owner: validate.integer('owner', o.owner, 0, 2 ** 32 - 2) } : {}),
    ...(o.mode !== undefined ? { mode: validate.mode('mode', o.mode, 0o600) } : {}),
  };
}

/** The open options, checked: the owner options, wait, timeout and signal. */
export function openOptions(o: Partial<SysvOpenOptions>): SysvOpenOptions {
  if (o.wait !== undefined) flag('wait', o.wait);
  validate.timeout(o.timeout);
  validate.abortSignal(o.signal);
  return { ...ownerOptions(o), ...(o.wait ? { wait: true } : {}), ...(o.timeout !== undefined ? { timeout: o.timeout } : {}), ...(o.signal !== undefined ? { signal: o.signal } : {}) };
}

export { createMode };

/** The new owner and group of setOwner, checked. */
export function ownerArgument(value: unknown): { uid: number | undefined; gid: number | undefined } {
  const o = validate.object<{ uid: number; gid: number }>('owner', value);
  const uid = validate.optionalInteger('uid', o.uid, 0, 2 ** 32 - 2);
  const gid = validate.optionalInteger('gid', o.gid, 0, 2 ** 32 - 2);
  if (uid === undefined && gid === undefined) throw invalidArgument(`setOwner needs { uid }, { gid } or both, got ${validate.describe(value)}`);
  return { uid, gid };
}

/** A boolean option, checked (validate.boolean). */
export const flag = validate.boolean;
