/**
 * `ipckit gc` as a library: removes the ipckit objects (ring, work queue, mutex, pool) that
 * can be proved abandoned, and foreign objects only when named one by one.
 *
 * An object is removed only when `listObjects` calls it abandoned (inventory.ts: creator
 * and every participant dead by pid and start time, nobody has it open or mapped, every
 * process that could have it was looked at), it is not persistent, and the caller may
 * remove it (its owner, or root). Immediately before removing, all of it is checked again
 * (header read anew, every process looked at anew); then the name is moved aside (an
 * atomic rename in /dev/shm) and checked a third time: a process that opened the object
 * between the second check and the rename is seen now, and the name is put back (a link
 * that never replaces). Only then is it unlinked.
 */
import { linkSync, lstatSync, renameSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { invalidArgument } from '../core/errors.js';
import * as validate from '../core/validate.js';
import { removeSysvMessageQueue } from '../mechanisms/sysv/msg.js';
import { removeSysvSemaphoreSet } from '../mechanisms/sysv/sem.js';
import { removeSysvSharedMemory } from '../mechanisms/sysv/shm.js';
import { unlinkMessageQueue } from '../mechanisms/mqueue/mqueue.js';
import { blindSpot, fileKey, listObjectsDetailed, readFirstBytes, readHeader, scanHolders, type HolderScan, type IpcObject } from './inventory.js';

export interface GcOptions {
  /** List what would go and why, remove nothing. */
  dryRun?: boolean;
  /** Foreign objects to remove, each named by its ref (`shm:/x`, `sysv-msg:5`) or its name (`/x`): still only when nobody holds it. */
  foreign?: string[];
  /** More FIFOs and socket files to look at (as listObjects' `paths`): files, or folders' entries. */
  paths?: string[];
  /** Only objects whose name starts with this (as listObjects' `prefix`): keeps a caller to its own objects. */
  prefix?: string;
}

export interface GcResult {
  /** The ref of the object (`shm:/name`, ...), or the name as given for a foreign name that matched nothing. */
  name: string;
  madeBy?: string;
  action: 'removed' | 'kept' | 'failed' | 'would-remove';
  reason: string;
}

const IPCKIT_KINDS = new Set(['ring', 'workqueue', 'mutex', 'pool', 'value', 'ipckit (being made)']);

const euid = (): number => process.geteuid?.() ?? 0;

/** Only the owner or root may remove a name from the sticky /dev/shm (and a System V object). */
function mayRemove(o: IpcObject): string | undefined {
  if (euid() === 0 || o.perm === undefined || o.perm.uid === euid() || o.perm.cuid === euid()) return undefined;
  return `it belongs to uid ${o.perm.uid}: only its owner or root may remove it`;
}

/** Checks a /dev/shm object again from scratch: undefined when it is still abandoned, else why not. */
function stillAbandoned(o: IpcObject, scan: HolderScan): string | undefined {
  const path = o.path!;
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return 'it is gone already';
  }
  const first = readFirstBytes(path);
  if ('error' in first) return `its header cannot be read now (${first.error})`;
  const h = readHeader(first.bytes, first.size);
  if (h.madeBy !== o.madeBy) return `it changed: it is ${h.madeBy} now`;
  if (h.persistent) return 'it is persistent';
  if (!h.decidable) return h.problem ?? 'its header cannot be decided';
  const alive = (h.participants ?? []).filter((p) => p.alive);
  if (alive.length > 0) return `${alive.map((p) => `${p.role} ${p.pid}`).join(', ')} alive now`;
  const held = [...(scan.files.get(fileKey(st.dev, st.ino))?.keys() ?? [])];
  if (held.length > 0) return `opened or mapped now by process${held.length === 1 ? '' : 'es'} ${held.join(', ')}`;
  return blindSpot(scan, { uid: st.uid, gid: st.gid, mode: st.mode & 0o777 });
}

/** Removes one abandoned ipckit object of /dev/shm, checking it twice more on the way (see the top of this file). */
async function removeAbandoned(o: IpcObject): Promise<GcResult> {
  const result = (action: GcResult['action'], reason: string): GcResult => ({ name: o.ref, madeBy: o.madeBy, action, reason });
  const path = o.path!;
  // Second check: everything anew, just before the removal.
  const why = stillAbandoned(o, await scanHolders());
  if (why) return result('kept', `checked again before removing: ${why}`);
  const aside = `/dev/shm/.ipckit-gc-${randomBytes(6).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return result('kept', 'it is gone already');
    return result('failed', `cannot move it aside to remove it (${code})`);
  }
  // Third check: anyone who opened it before the rename holds it now.
  const late = stillAbandoned({ ...o, path: aside }, await scanHolders());
  if (late === 'it is gone already') return result('kept', 'removed meanwhile by another process');
  if (late) {
    try {
      linkSync(aside, path); // never replaces a new object of that name
      unlinkSync(aside);
      return result('kept', `checked a last time: ${late}`);
    } catch (e) {
      return result('failed', `${late}, but its name could not be put back (${(e as NodeJS.ErrnoException).code}): it is at ${aside}`);
    }
  }
  try {
    unlinkSync(aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return result('failed', `cannot remove it (${(e as NodeJS.ErrnoException).code}): it is at ${aside}`);
  }
  return result('removed', o.reason);
}

/** Why a foreign object named explicitly must stay (in use, or not ours), or undefined. */
function foreignVerdict(o: IpcObject): string | undefined {
  if (o.kind === 'abstract-socket') return 'an abstract socket has no name to remove: it goes when its owner closes it';
  if (o.holders.length > 0 || (o.sysv?.nattch ?? 0) > 0) return `in use: ${o.reason}`;
  return mayRemove(o);
}

/** Removes a foreign object named explicitly, that foreignVerdict let go. */
function removeForeign(o: IpcObject): GcResult {
  const result = (action: GcResult['action'], reason: string): GcResult => ({ name: o.ref, madeBy: o.madeBy, action, reason });
  try {
    switch (o.kind) {
      case 'sysv-msg':
        removeSysvMessageQueue({ id: o.id! });
        break;
      case 'sysv-sem':
        removeSysvSemaphoreSet({ id: o.id! });
        break;
      case 'sysv-shm':
        removeSysvSharedMemory({ id: o.id! });
        break;
      case 'mqueue':
        unlinkMessageQueue(o.name!);
        break;
      default:
        unlinkSync(o.path!);
    }
  } catch (e) {
    return result('failed', `cannot remove it: ${(e as Error).message}`);
  }
  return result('removed', 'named with --foreign, and nobody held it');
}

/** Does a `--foreign` name designate this object? */
function matches(o: IpcObject, name: string): boolean {
  return o.ref === name || o.name === name || (o.name !== undefined && `/${name}` === o.name);
}

/**
 * `ipckit gc`: removes the ipckit objects that can be proved abandoned (never a live one,
 * never a persistent one), and the foreign objects named in `foreign` that nobody holds.
 * One result per ipckit object looked at and per foreign name.
 */
export function collectGarbage(options: GcOptions = {}): Promise<GcResult[]> {
  // Bad options throw here, synchronously, as every entry point's do.
  validate.object('options', options);
  const dryRun = validate.optionalBoolean('dryRun', options.dryRun) ?? false;
  if (options.foreign !== undefined && (!Array.isArray(options.foreign) || options.foreign.some((f) => typeof f !== 'string' || f === ''))) throw invalidArgument('foreign must be an array of object names');
  if (options.prefix !== undefined && typeof options.prefix !== 'string') throw invalidArgument('prefix must be a string');
  const foreign = options.foreign ?? [];
  if (options.paths !== undefined && (!Array.isArray(options.paths) || options.paths.some((p) => typeof p !== 'string'))) throw invalidArgument('paths must be an array of paths');
  return collect(options, dryRun, foreign);
}

async function collect(options: GcOptions, dryRun: boolean, foreign: string[]): Promise<GcResult[]> {
  const { objects } = await listObjectsDetailed({ ...(options.prefix !== undefined ? { prefix: options.prefix } : {}), ...(options.paths ? { paths: options.paths } : {}) });
  const results: GcResult[] = [];
  for (const o of objects) {
    // ipckit's objects, and those whose header we may not read (they may be ipckit's: say why they stay).
    if (o.kind !== 'shm' || (!IPCKIT_KINDS.has(o.madeBy) && !o.madeBy.startsWith('ipckit') && o.madeBy !== 'unknown')) continue;
    const kept = (reason: string): void => void results.push({ name: o.ref, madeBy: o.madeBy, action: 'kept', reason });
    if (o.persistent) kept('persistent: made to outlive its creator');
    else if (o.state !== 'abandoned') kept(`${o.state}: ${o.reason}`);
    else {
      const notOurs = mayRemove(o);
      if (notOurs) kept(notOurs);
      else if (dryRun) results.push({ name: o.ref, madeBy: o.madeBy, action: 'would-remove', reason: o.reason });
      else results.push(await removeAbandoned(o));
    }
  }
  for (const name of foreign) {
    const found = objects.filter((o) => matches(o, name));
    if (found.length === 0) results.push({ name, action: 'failed', reason: 'no such object (or it is hidden from us)' });
    else if (found.length > 1) results.push({ name, action: 'failed', reason: `names ${found.length} objects (${found.map((o) => o.ref).join(', ')}): give the ref` });
    else {
      const o = found[0]!;
      const stay = o.madeBy !== 'foreign' ? 'made by ipckit: removed only when abandoned' : foreignVerdict(o);
      if (stay) results.push({ name: o.ref, madeBy: o.madeBy, action: 'kept', reason: stay });
      else if (dryRun) results.push({ name: o.ref, madeBy: o.madeBy, action: 'would-remove', reason: 'named with --foreign, and nobody holds it' });
      else results.push(removeForeign(o));
    }
  }
  return results;
}
