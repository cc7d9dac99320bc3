/**
 * The one permission record every IPC object reports, System V and POSIX alike, so that one
 * table can show both families: `perm()` on every handle, and inside `stat()` of the System
 * V objects.
 *
 * A System V object keeps a `struct ipc_perm` (key, owner, creator, mode, sequence number).
 * A POSIX object (message queue, named semaphore, shared memory segment, FIFO, socket file)
 * is a file: the kernel keeps its owner, group and mode, and nothing else, so the record of a
 * POSIX object has no key, identifier, creator or sequence number.
 */
import type { NativeStat } from './native.js';

export interface SysvIpcPerm {
  family: 'sysv';
  /** msg: message queue, sem: semaphore set, shm: shared memory segment. */
  kind: 'msg' | 'sem' | 'shm';
  /** The key it was made with (0, IPC_PRIVATE, for a private one or one already removed); unsigned. */
  key: number;
  /** The identifier `ipcs` shows. */
  id: number;
  /** Owner and group: who the permission bits' owner and group classes are. */
  uid: number;
  gid: number;
  /** Creator: keeps an owner's rights (IPC_SET, IPC_RMID) whoever the owner is now. */
  cuid: number;
  cgid: number;
  /** Permission bits (0o777 at most). */
  mode: number;
  /** The slot's sequence number (part of the identifier). */
  seq: number;
}

export interface PosixIpcPerm {
  family: 'posix';
  kind: 'mqueue' | 'semaphore' | 'shm' | 'file' | 'fifo' | 'socket';
  /** The POSIX name (`/jobs`) or the path. */
  name: string;
  uid: number;
  gid: number;
  /** Permission bits (0o777 at most). */
  mode: number;
  /** None for POSIX objects: the kernel keeps no key, identifier, creator or sequence number for a file. */
  key?: undefined;
  id?: undefined;
  cuid?: undefined;
  cgid?: undefined;
  seq?: undefined;
}

/** The permission record of any IPC object: `family` tells which fields it has. */
export type IpcPerm = SysvIpcPerm | PosixIpcPerm;

/** The record of a POSIX object from its fstat (or lstat). */
export function posixPerm(kind: PosixIpcPerm['kind'], name: string, st: Pick<NativeStat, 'uid' | 'gid' | 'mode'>): PosixIpcPerm {
  return { family: 'posix', kind, name, uid: st.uid, gid: st.gid, mode: st.mode & 0o777 };
}
