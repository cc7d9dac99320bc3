/**
 * The common header: the first 64 bytes of every ipckit object (the ring, the work queue,
 * the mutex and the pool), words little-endian u32 (design.md section 6):
 *
 *   word 0      magic: 'I' 'P' 'K' and the kind's letter, R ring, Q work queue, M mutex,
 *               P pool, V shared value or array. Lower case while the creator is still making the object, upper
 *               case once it is ready: the creator stores the upper-case magic last.
 *   word 1      layout version of that kind
 *   word 2      header bytes: 64, where the kind's own layout starts
 *   word 3      flags: bit 0 persistent (made to outlive its creator)
 *   words 4-6   creator: pid, start time low, high (clock ticks since boot)
 *   word 7      reserved (0)
 *   words 8-9   the attach lock, one u64: 0 free, else the holder thread's id (low half)
 *               and that thread's start time modulo 2^32 (high half); attach-lock.ts
 *   word 10     participant table: byte offset (0: none); participants.ts
 *   word 11     participant table: rows
 *   words 12-15 reserved (0)
 */
import { IpcError } from '../core/errors.js';
import { isProcessAlive, selfStartTime } from '../os/liveness.js';
import type { Memory } from './memory.js';

export const HEADER_BYTES = 64;
export const H_MAGIC = 0;
export const H_VERSION = 1;
export const H_HEADER_BYTES = 2;
export const H_FLAGS = 3;
export const H_CREATOR_PID = 4;
export const H_CREATOR_START_LO = 5;
export const H_CREATOR_START_HI = 6;
/** The attach lock: a u64 at words 8 and 9 (byte 32). */
export const H_ATTACH_LOCK = 8;
export const H_TABLE_OFFSET = 10;
export const H_TABLE_ROWS = 11;

export const FLAG_PERSISTENT = 1;

export type ObjectKind = 'ring' | 'workqueue' | 'mutex' | 'pool' | 'value';

const LETTERS: Record<ObjectKind, string> = { ring: 'R', workqueue: 'Q', mutex: 'M', pool: 'P', value: 'V' };
const NAMES: Record<string, string> = { R: 'ring', Q: 'work queue', M: 'mutex', P: 'pool', V: 'shared value' };

/** The kind as messages name it: 'ring', 'work queue', 'mutex', 'pool', 'shared value'. */
export function kindName(kind: ObjectKind): string {
  return NAMES[LETTERS[kind]]!;
}

const IPK = 0x4b5049; // 'I' 'P' 'K' in the low three bytes (little-endian)

/** The magic word of `kind`: upper-case letter when ready, lower-case while being made. */
export function magicOf(kind: ObjectKind, ready: boolean): number {
  const letter = LETTERS[kind].charCodeAt(0) | (ready ? 0 : 0x20);
  return (IPK | (letter << 24)) >>> 0;
}

export type MagicReading =
  | { what: 'empty' } // 0: nothing written yet
  | { what: 'ours'; ready: boolean }
  | { what: 'other'; name: string; ready: boolean } // another kind of ipckit object
  | { what: 'foreign' };

/** What a magic word says, for an opener of `kind`. */
export function readMagic(magic: number, kind: ObjectKind): MagicReading {
  const m = magic >>> 0;
  if (m === 0) return { what: 'empty' };
  if ((m & 0xffffff) !== IPK) return { what: 'foreign' };
  const code = m >>> 24;
  const upper = String.fromCharCode(code & ~0x20);
  const ready = (code & 0x20) === 0;
  if (upper === LETTERS[kind]) return { what: 'ours', ready };
  const name = NAMES[upper];
  return name === undefined ? { what: 'foreign' } : { what: 'other', name, ready };
}

/**
 * What a magic word says with no kind in mind (ipckit ls and gc): an ipckit kind and whether
 * it is ready, 'ipckit' for the IPK mark with a letter this ipckit does not know, 'empty'
 * for 0, or 'foreign'.
 */
export function decodeMagic(magic: number): { kind: ObjectKind; ready: boolean } | 'ipckit' | 'empty' | 'foreign' {
  const m = magic >>> 0;
  if (m === 0) return 'empty';
  if ((m & 0xffffff) !== IPK) return 'foreign';
  const code = m >>> 24;
  const upper = String.fromCharCode(code & ~0x20);
  const kind = (Object.keys(LETTERS) as ObjectKind[]).find((k) => LETTERS[k] === upper);
  return kind === undefined ? 'ipckit' : { kind, ready: (code & 0x20) === 0 };
}

/** The error for an object that is not `kind`: another ipckit kind, or not an ipckit object at all. */
export function wrongKind(name: string, kind: ObjectKind, reading: MagicReading | { what: 'small'; size: number } | { what: 'not-a-file'; type: string }): IpcError {
  const want = kindName(kind);
  let reason: string;
  if (reading.what === 'other') reason = `${name} is a ${reading.name}, not a ${want}`;
  else if (reading.what === 'small') reason = `${name} is not an ipckit ${want} (foreign object: ${reading.size} bytes, too small for the ${HEADER_BYTES}-byte header)`;
  else if (reading.what === 'not-a-file') reason = `${name} is not an ipckit ${want} (foreign object: ${reading.type})`;
  else if (reading.what === 'empty') reason = `${name} is not an ipckit ${want} (foreign object: its header is empty, or its creator died before writing it; if you are sure, remove it with unlinkSharedMemory)`;
  else reason = `${name} is not an ipckit ${want} (foreign object)`;
  return new IpcError('ERR_IPCKIT_WRONG_KIND', reason, { path: name, details: { expected: kind, ...(reading.what === 'other' ? { found: reading.name } : {}) } });
}

/** The creator's part of the header, written first (with the lower-case magic). */
export function writeHeader(mem: Memory, kind: ObjectKind, version: number, options: { persistent: boolean; tableOffset?: number; tableRows?: number }): void {
  mem.store(H_VERSION, version);
  mem.store(H_HEADER_BYTES, HEADER_BYTES);
  mem.store(H_FLAGS, options.persistent ? FLAG_PERSISTENT : 0);
  mem.store(H_CREATOR_PID, process.pid);
  mem.store(H_CREATOR_START_LO, selfStartTime % 2 ** 32 | 0);
  mem.store(H_CREATOR_START_HI, Math.floor(selfStartTime / 2 ** 32) | 0);
  mem.store(H_TABLE_OFFSET, options.tableOffset ?? 0);
  mem.store(H_TABLE_ROWS, options.tableRows ?? 0);
  mem.store(H_MAGIC, magicOf(kind, false));
}

/** The creator's last store: the object is ready. Wakes openers waiting for it. */
export function publish(mem: Memory, kind: ObjectKind): void {
  mem.store(H_MAGIC, magicOf(kind, true));
  mem.wake(H_MAGIC, -1);
}

export interface Creator {
  pid: number;
  startTime: number;
  alive: boolean;
}

/** Who made the object, as its header says (pid 0: not written yet). */
export function creatorOf(mem: Memory): Creator {
  const pid = mem.load(H_CREATOR_PID) >>> 0;
  const startTime = (mem.load(H_CREATOR_START_HI) >>> 0) * 2 ** 32 + (mem.load(H_CREATOR_START_LO) >>> 0);
  return { pid, startTime, alive: pid !== 0 && isProcessAlive(pid, startTime || undefined) };
}

/**
 * Checks the common fields of a ready header (untrusted: each read once): the layout
 * version, the header size and the flags. Returns the flags.
 */
export function checkHeader(mem: Memory, name: string, kind: ObjectKind, version: number): { persistent: boolean } {
  const corrupt = (what: string): IpcError => new IpcError('ERR_IPCKIT_CORRUPT', `${kindName(kind)} ${name} is corrupt: ${what}`, { path: name });
  const v = mem.load(H_VERSION) >>> 0;
  if (v !== version) throw corrupt(`layout version ${v}, this ipckit reads version ${version}`);
  const headerBytes = mem.load(H_HEADER_BYTES) >>> 0;
  if (headerBytes !== HEADER_BYTES) throw corrupt(`header size ${headerBytes}, expected ${HEADER_BYTES}`);
  const flags = mem.load(H_FLAGS) >>> 0;
  if ((flags & ~FLAG_PERSISTENT) !== 0) throw corrupt(`unknown flags 0x${flags.toString(16)}`);
  return { persistent: (flags & FLAG_PERSISTENT) !== 0 };
}
