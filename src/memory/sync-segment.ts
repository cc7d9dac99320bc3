/**
 * The small named shared-memory objects (shm_open) that the cross-process mutex and the
 * bounded pool keep their state in. Internal: mutex.ts and pool.ts define the layouts.
 *
 * - Create: shm_open(O_CREAT | O_EXCL), owner-only until the exact mode (and group) are
 *   set through the fd, then sized, mapped and initialized; the magic word is written
 *   last, so an opener never uses a half-made object.
 * - Open: the object must be a regular file, ours (or allowed: permissions.ts), at least
 *   as large as the layout needs; then the opener waits briefly for the magic word. A
 *   creator that died before finishing leaves an object that stays uninitialized: that
 *   is ERR_IPCKIT_CORRUPT after `initTimeout`.
 * - Everything read from the segment is untrusted: each layout checks its header.
 */
import { constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { errnoOf, IpcError, sys, toIpcError } from '../core/errors.js';
import { native, type NativeStat, type NativeSyncSegment } from '../os/native.js';
import { checkOwner, createMode, type CreateModeOptions, type OwnerCheckOptions } from '../os/permissions.js';

const { O_RDWR, O_CREAT, O_EXCL, S_IFMT, S_IFREG } = fsConstants;
const { EEXIST, ENOENT } = osConstants.errno;

export interface Segment {
  readonly name: string;
  readonly size: number;
  readonly map: NativeSyncSegment;
  readonly stat: NativeStat;
  /** Set by the owner: called on the event loop when a watch fires. */
  onWake: () => void;
}


function mapFd(name: string, fd: number, size: number, stat: NativeStat): Segment {
  const segment: Segment = {
    name,
    size,
    stat,
    onWake: () => {},
    map: undefined as unknown as NativeSyncSegment,
  };
  (segment as { map: NativeSyncSegment }).map = sys(`map ${name}`, () => new native.SyncSegment(fd, size, () => segment.onWake()), { path: name });
  return segment;
}

/**
 * Creates `name` exclusively, `size` bytes, runs `init` on the mapping, then stores
 * `magic` (u32 at offset 0) to publish it. `kind` names the object in messages.
 */
export function createSegment(kind: string, name: string, size: number, options: CreateModeOptions, init: (map: NativeSyncSegment) => void, magic: number): Segment {
  const { mode, group } = createMode(options);
  let fd: number;
  try {
    fd = native.syncShmOpen(name, O_RDWR | O_CREAT | O_EXCL, mode & 0o700);
  } catch (e) {
    if (errnoOf(e) === EEXIST) throw new IpcError('ERR_IPCKIT_EXISTS', `${kind} ${name} already exists (open it, or remove it first)`, { cause: e, path: name, errno: EEXIST, syscall: 'shm_open', systemCode: 'EEXIST' });
    throw toIpcError(e, `create ${kind} ${name}`, { path: name });
  }
  try {
    if (group !== undefined) sys(`set the group of ${kind} ${name}`, () => native.fchown(fd, -1, group), { path: name });
    sys(`set the mode of ${kind} ${name}`, () => native.fchmod(fd, mode), { path: name });
    sys(`size ${kind} ${name}`, () => native.syncFtruncate(fd, size), { path: name });
    const stat = sys(`fstat ${kind} ${name}`, () => native.fstat(fd), { path: name });
    const segment = mapFd(name, fd, size, stat);
    try {
      init(segment.map);
      segment.map.store32(0, magic);
    } catch (e) {
      segment.map.close();
      throw e;
    }
    return segment;
  } catch (e) {
    try {
      native.syncShmUnlink(name);
    } catch {
      /* it was ours; nothing more to do */
    }
    throw e;
  } finally {
    native.close(fd);
  }
}

export interface OpenSegmentOptions extends OwnerCheckOptions {
  /** How long to wait for a creator to finish initializing (ms, default 1000). */
  initTimeout?: number;
}

/**
 * Opens an existing `name`: checks type, owner, mode and size (at least `minSize`),
 * maps `sizeOf(fileSize)` bytes and waits for `magic` at offset 0.
 */
export async function openSegment(kind: string, name: string, minSize: number, sizeOf: (fileSize: number, map: NativeSyncSegment | undefined) => number, magic: number, options: OpenSegmentOptions): Promise<Segment> {
  let fd: number;
  try {
    fd = native.syncShmOpen(name, O_RDWR, 0);
  } catch (e) {
    if (errnoOf(e) === ENOENT) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `no ${kind} ${name}`, { cause: e, path: name, errno: ENOENT, syscall: 'shm_open', systemCode: 'ENOENT' });
    throw toIpcError(e, `open ${kind} ${name}`, { path: name });
  }
  let segment: Segment | undefined;
  try {
    const stat = sys(`fstat ${kind} ${name}`, () => native.fstat(fd), { path: name });
    if ((stat.mode & S_IFMT) !== S_IFREG) throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `${name} is not a shared-memory object`, { path: name });
    checkOwner(stat, `${kind} ${name}`, options);
    const deadline = Date.now() + (options.initTimeout ?? 1000);
    // A creator sizes the object before it writes the header: wait for both.
    for (;;) {
      const st = sys(`fstat ${kind} ${name}`, () => native.fstat(fd), { path: name });
      if (st.size >= minSize) {
        if (!segment) segment = mapFd(name, fd, minSize, stat);
        if (segment.map.load32(0) === magic) break;
      }
      if (Date.now() >= deadline) {
        throw new IpcError('ERR_IPCKIT_CORRUPT', `${kind} ${name} was never initialized (size ${st.size}${st.size >= minSize ? `, magic 0x${segment!.map.load32(0).toString(16)}` : ''}): its creator may have died while making it; remove it and create it again`, {
          path: name,
          details: { size: st.size },
        });
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    // The layout may be larger than the header (the pool's slots): remap at full size.
    const st = sys(`fstat ${kind} ${name}`, () => native.fstat(fd), { path: name });
    const full = sizeOf(st.size, segment.map);
    if (full !== segment.size) {
      segment.map.close();
      segment = mapFd(name, fd, full, stat);
    }
    return segment;
  } catch (e) {
    segment?.map.close();
    throw e;
  } finally {
    native.close(fd);
  }
}

/** Removes a segment's name. Idempotent: false if there was none. */
export function unlinkSegment(kind: string, name: string): boolean {
  try {
    native.syncShmUnlink(name);
    return true;
  } catch (e) {
    if (errnoOf(e) === ENOENT) return false;
    throw toIpcError(e, `remove ${kind} ${name}`, { path: name });
  }
}

export function corrupt(kind: string, name: string, what: string): IpcError {
  return new IpcError('ERR_IPCKIT_CORRUPT', `${kind} ${name} is corrupt: ${what}`, { path: name });
}

