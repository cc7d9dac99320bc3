/**
 * Creating, opening and removing ipckit objects (the ring, the work queue, the mutex, the
 * pool): the one opening discipline of design.md section 6.
 *
 * - create…: never waits and stays synchronous. Exclusive, exact mode, sized and reserved;
 *   the common header is written with the lower-case magic (the object's kind is known
 *   from then on), the kind initialises its layout, and the upper-case magic, stored
 *   last, publishes it (and wakes openers waiting for it).
 * - open…: a Promise, or a …Sync form for workers and scripts. The object is opened and
 *   checked (regular file, owner, mode), mapped, and then the opener waits for the
 *   creator's magic word, with `timeout` and `signal`, on the event loop (or blocking, in
 *   slices, for …Sync): never more than a few system calls on the loop at a time. A
 *   creator that died before publishing is ERR_IPCKIT_CORRUPT at once; one still at it
 *   when the time is up, ERR_IPCKIT_TIMEOUT.
 * - unlink…: removes the name only if the object is the kind the caller named.
 * - A magic word of another ipckit kind is ERR_IPCKIT_WRONG_KIND ("… is a work queue, not
 *   a ring"), never CORRUPT; so is an object that is not an ipckit object at all.
 */
import { constants as osConstants } from 'node:os';
import { errnoError, errnoOf, IpcError, isIpcError, sys, toIpcError } from '../core/errors.js';
import { fault, FAULTS } from '../os/faults.js';
import { native } from '../os/native.js';
import type { CreateModeOptions, OwnerCheckOptions } from '../os/permissions.js';
import * as validate from '../core/validate.js';
import { checkHeader, creatorOf, HEADER_BYTES, H_MAGIC, kindName, publish, readMagic, wrongKind, writeHeader, type ObjectKind } from './header.js';
import { createShm, openShm, ownerOptions, resolveExternal, Segment, shmPath, unlinkShm, type MappingOptions } from './segment.js';
import { untilReady, untilReadySync, type Attempt, type UntilOptions } from './waits.js';

const { ENOENT } = osConstants.errno;

/** How long an open waits for a creator and for the attach lock, unless told (ms). */
export const DEFAULT_OPEN_TIMEOUT = 2000;

/** What every handle of a named object may do when it closes. */
export interface UnlinkOnCloseOptions {
  /**
   * Remove the name when this handle closes, if it still names this object (processes that
   * have it open keep it until they close). Default false.
   */
  unlinkOnClose?: boolean;
}

export interface CreateObjectOptions extends CreateModeOptions, MappingOptions, UnlinkOnCloseOptions {
  /** Made to outlive its creator: `ipckit gc` never removes it (header flag bit 0). Default false. */
  persistent?: boolean;
}

export function unlinkOnCloseOption(value: unknown): boolean {
  return validate.optionalBoolean('unlinkOnClose', value) ?? false;
}

export interface OpenObjectOptions extends OwnerCheckOptions, MappingOptions, UnlinkOnCloseOptions {
  /**
   * How long to wait for the object to exist (with `wait`), for a creator still making it,
   * and for the attach lock (ms, default 2000).
   */
  timeout?: number;
  signal?: AbortSignal;
  /** Wait for the name to exist instead of ERR_IPCKIT_NOT_FOUND at once (within `timeout`). */
  wait?: boolean;
}

/** The open options, checked before anything else (they throw synchronously). */
export interface OpenPlan {
  deadline: number;
  /** Wait for the name to exist. */
  wait: boolean;
  signal: AbortSignal | undefined;
  external: boolean;
  owner: OwnerCheckOptions;
  unlinkOnClose: boolean;
}

export function planOpen(options: OpenObjectOptions): OpenPlan {
  const ms = validate.timeout(options.timeout) ?? DEFAULT_OPEN_TIMEOUT;
  const signal = validate.abortSignal(options.signal);
  const owner = ownerOptions(options);
  const wait = validate.optionalBoolean('wait', options.wait) ?? false;
  const unlinkOnClose = unlinkOnCloseOption(options.unlinkOnClose);
  return { deadline: performance.now() + ms, wait, signal, external: resolveExternal(options.external), owner, unlinkOnClose };
}

export function persistentOption(value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new IpcError('ERR_IPCKIT_INVALID_ARGUMENT', `persistent must be a boolean, got ${validate.describe(value)}`);
  return value;
}

/** The layout a kind gives its object. */
export interface ObjectLayout {
  kind: ObjectKind;
  version: number;
  size: number;
  /** The participant table, if the kind has one. */
  tableOffset?: number;
  tableRows?: number;
}

/**
 * Creates the object (synchronously, never waiting): `init` writes the kind's layout
 * between the header and the publication. On any failure the name is removed.
 */
export function createObject(name: string, layout: ObjectLayout, options: CreateObjectOptions, init: (segment: Segment) => void): Segment {
  const persistent = persistentOption(options.persistent);
  const shmOptions: Parameters<typeof createShm>[2] = { reserve: true };
  if (options.mode !== undefined) shmOptions.mode = options.mode;
  if (options.group !== undefined) shmOptions.group = options.group;
  if (options.external !== undefined) shmOptions.external = options.external;
  const segment = createShm(name, layout.size, shmOptions, `${kindName(layout.kind)} ${name}`);
  try {
    const header: Parameters<typeof writeHeader>[3] = { persistent };
    if (layout.tableOffset !== undefined) header.tableOffset = layout.tableOffset;
    if (layout.tableRows !== undefined) header.tableRows = layout.tableRows;
    writeHeader(segment.mem, layout.kind, layout.version, header);
    init(segment);
    if (FAULTS) fault('create:before-publish');
    publish(segment.mem, layout.kind);
    return segment;
  } catch (e) {
    segment.close();
    unlinkShm(name, `${kindName(layout.kind)} ${name}`);
    throw e;
  }
}

/** Until a name appears, `wait` tries again after this many ms, doubling to NAME_POLL_MAX. */
const NAME_POLL_FIRST = 2;
const NAME_POLL_MAX = 100;

/** One open in progress: the descriptor (once the name exists) until it is mapped, then the segment. */
class Opening {
  #fd = -1;
  #segment: Segment | undefined;
  #nextPoll = NAME_POLL_FIRST;
  readonly what: string;

  constructor(
    readonly name: string,
    readonly kind: ObjectKind,
    readonly version: number,
    readonly plan: OpenPlan,
  ) {
    this.what = `${kindName(kind)} ${name}`;
    if (!plan.wait) this.#fd = openShm(name, false, plan.owner, this.what).fd;
  }

  /** Opens the name once it exists, maps the object once its creator has sized it, then waits for the ready magic word. */
  attempt(deep: boolean): Attempt<Segment> {
    if (this.#fd < 0) {
      try {
        this.#fd = openShm(this.name, false, this.plan.owner, this.what).fd;
      } catch (e) {
        if (!isIpcError(e, 'ERR_IPCKIT_NOT_FOUND')) throw e;
        const wait = this.#nextPoll;
        this.#nextPoll = Math.min(wait * 2, NAME_POLL_MAX);
        return { retryAfter: wait };
      }
    }
    if (this.#segment === undefined) {
      const st = sys(`fstat ${this.what}`, () => native.fstat(this.#fd), { path: this.name });
      if (st.size === 0) return { retryAfter: 2 }; // the creator has not sized it yet
      if (st.size < HEADER_BYTES) throw wrongKind(this.name, this.kind, { what: 'small', size: st.size });
      this.#segment = new Segment(this.name, shmPath(this.name), this.#fd, st.size, false, this.plan.external, st);
    }
    const mem = this.#segment.mem;
    const magic = mem.load(H_MAGIC);
    const r = readMagic(magic, this.kind);
    if (r.what === 'ours' && r.ready) {
      checkHeader(mem, this.name, this.kind, this.version);
      return { done: this.#segment };
    }
    if (r.what === 'other' || r.what === 'foreign') throw wrongKind(this.name, this.kind, r);
    if (deep && r.what === 'ours') {
      const creator = creatorOf(mem);
      if (creator.pid !== 0 && !creator.alive) throw this.#neverMade(`its creator, process ${creator.pid}, died while making it`);
    }
    return { sleepOn: { mapping: this.#segment.mapping, byteOffset: H_MAGIC * 4, seq: magic } };
  }

  /** When the time is up: no such object yet, a creator still at it (TIMEOUT), or an object nobody will finish (CORRUPT). */
  timedOut(ms: number): IpcError {
    if (this.#fd < 0) return new IpcError('ERR_IPCKIT_TIMEOUT', `no ${this.what} appeared within ${Math.round(ms)} ms`, { path: this.name, details: { timeout: Math.round(ms) } });
    if (this.#segment !== undefined) {
      const creator = creatorOf(this.#segment.mem);
      if (creator.alive) {
        return new IpcError('ERR_IPCKIT_TIMEOUT', `${this.what} is still being made by process ${creator.pid}, and was not ready within ${Math.round(ms)} ms`, { path: this.name, details: { creator: creator.pid } });
      }
    }
    return this.#neverMade(this.#segment === undefined ? 'its size is 0' : 'its header was never written');
  }

  #neverMade(why: string): IpcError {
    return new IpcError('ERR_IPCKIT_CORRUPT', `${this.what} was never initialized (${why}): its creator may have died while making it; remove it and create it again`, { path: this.name });
  }

  /** After a failure: whatever is open is closed. */
  abandon(): void {
    if (this.#segment !== undefined) this.#segment.close();
    else if (this.#fd >= 0) native.close(this.#fd);
  }
}

function untilOptions(opening: Opening, plan: OpenPlan): UntilOptions {
  const started = performance.now();
  return { deadline: plan.deadline, signal: plan.signal, onTimeout: () => opening.timedOut(performance.now() - started) };
}

/**
 * Opens an ipckit object and waits (on the event loop) for its creator to publish it.
 * Call planOpen first, synchronously, so bad options throw before any await.
 */
export async function openObject(name: string, kind: ObjectKind, version: number, plan: OpenPlan): Promise<Segment> {
  const opening = new Opening(name, kind, version, plan);
  try {
    return await untilReady(`open ${opening.what}`, (deep) => opening.attempt(deep), untilOptions(opening, plan));
  } catch (e) {
    opening.abandon();
    throw e;
  }
}

/** openObject for workers and scripts: the wait blocks this thread (in slices). */
export function openObjectSync(name: string, kind: ObjectKind, version: number, plan: OpenPlan): Segment {
  const opening = new Opening(name, kind, version, plan);
  try {
    return untilReadySync((deep) => opening.attempt(deep), untilOptions(opening, plan));
  } catch (e) {
    opening.abandon();
    throw e;
  }
}

/**
 * Removes the name of an ipckit object of `kind`, after checking through a read-only
 * descriptor that it is one: anything else is ERR_IPCKIT_WRONG_KIND and stays. False if
 * there was no such name.
 */
export function unlinkObject(name: string, kind: ObjectKind): boolean {
  const what = `${kindName(kind)} ${name}`;
  let fd: number;
  try {
    fd = native.shmOpen(name, 0 /* O_RDONLY; shm_open adds O_NOFOLLOW */, 0);
  } catch (e) {
    if (errnoOf(e) === ENOENT) return false;
    throw toIpcError(e, `remove ${what}`, { path: name });
  }
  try {
    const st = sys(`fstat ${what}`, () => native.fstat(fd), { path: name });
    if ((st.mode & 0o170000) !== 0o100000) throw wrongKind(name, kind, { what: 'not-a-file', type: 'not a regular file' });
    if (st.size < HEADER_BYTES) throw wrongKind(name, kind, { what: 'small', size: st.size });
    const word = new Uint8Array(4);
    const n = native.read(fd, word, 0, 4);
    if (n < 0) throw errnoError(-n, 'read', `read the header of ${what}`, { path: name });
    const r = readMagic(n === 4 ? Buffer.from(word).readUInt32LE(0) : 0, kind);
    if (r.what !== 'ours') throw wrongKind(name, kind, r);
  } finally {
    native.close(fd);
  }
  return unlinkShm(name, what);
}

/** Builds what stands on an opened or created segment; if that fails, the segment is closed (and the error passes on). */
export function adopt<R>(segment: Segment, make: (segment: Segment) => R): R {
  try {
    return make(segment);
  } catch (e) {
    segment.close();
    throw e;
  }
}

/** adopt() for a making that waits (the attach lock, on the event loop). */
export async function adoptAsync<R>(segment: Segment, make: (segment: Segment) => Promise<R>): Promise<R> {
  try {
    return await make(segment);
  } catch (e) {
    segment.close();
    throw e;
  }
}
