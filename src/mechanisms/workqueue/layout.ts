/**
 * The work queue's layout (docs/workqueue.md, version 2), after the common header of
 * every ipckit object (src/memory/header.ts). Word indexes are in 32-bit units; each
 * group of hot words has a cache line of its own.
 *
 *   byte    0  the common header ('IPKQ'); its participant table: byte 1024, P rows
 *   byte   64  put hint (where producers look for a free slot first)
 *   byte  128  get hint (where consumers look for a ready item first)
 *   byte  192  items signal (consumers sleep on it), getters-sleeping flag
 *   byte  256  space signal (producers sleep on it), putters-sleeping flag
 *   byte  320  done signal (join() sleeps on it), joiners-sleeping flag
 *   byte  384  capacity, slot bytes, max message, slots offset, next token, shutdown
 *   byte  448  statistics (wrapping u32): items put, tasks done, deliveries again
 *   byte 1024  participant table (32-byte rows)
 *   slots      at `slots offset` (a multiple of 4096): `capacity` slots of `slot bytes`:
 *              a 32-byte header (state, length, id low, id high, deliveries) and the item
 */
import type { Memory } from '../../memory/memory.js';

export const VERSION = 2;
export const W_PUT_HINT = 16;
export const W_GET_HINT = 32;
export const W_ITEMS_SIGNAL = 48;
export const W_GETTERS_SLEEPING = 49;
export const W_SPACE_SIGNAL = 64;
export const W_PUTTERS_SLEEPING = 65;
export const W_DONE_SIGNAL = 80;
export const W_JOINERS_SLEEPING = 81;
export const W_CAPACITY = 96;
export const W_SLOT_BYTES = 97;
export const W_MAX_MESSAGE = 98;
export const W_SLOTS_OFFSET = 99;
export const W_NEXT_TOKEN = 100;
export const W_SHUTDOWN = 101;
export const W_PUT_TOTAL = 112;
export const W_DONE_TOTAL = 113;
export const W_REDELIVERED_TOTAL = 114;
export const TABLE_OFFSET = 1024;
export const MAX_PARTICIPANTS = 4096;

export const SLOT_HEADER = 32;
export const S_STATE = 0;
export const S_LENGTH = 1;
export const S_ID_LO = 2;
export const S_ID_HI = 3;
export const S_DELIVERIES = 4;
// Slot state word: kind (4 bits) | owner participant row (12 bits) << 4 | owner epoch (16 bits) << 16
export const FREE = 0;
export const WRITING = 1;
export const READY = 2;
export const TAKEN = 3;

export interface QueueGeometry {
  capacity: number;
  slotBytes: number;
  maxMessageSize: number;
  slotsOffset: number;
  participants: number;
}

/** The geometry of a new queue, from what the creator asked for. */
export function plan(capacity: number, maxMessageSize: number, participants: number): QueueGeometry & { size: number } {
  const slotBytes = Math.ceil((SLOT_HEADER + maxMessageSize) / 64) * 64;
  const slotsOffset = Math.ceil((TABLE_OFFSET + participants * 32) / 4096) * 4096;
  return { capacity, slotBytes, maxMessageSize, slotsOffset, participants, size: slotsOffset + capacity * slotBytes };
}

export function writeGeometry(mem: Memory, g: QueueGeometry): void {
  mem.store(W_CAPACITY, g.capacity);
  mem.store(W_SLOT_BYTES, g.slotBytes);
  mem.store(W_MAX_MESSAGE, g.maxMessageSize);
  mem.store(W_SLOTS_OFFSET, g.slotsOffset);
}

/** The geometry of an opened queue (untrusted: each word read once, checked against the others and the size). */
export function readGeometry(mem: Memory, segmentSize: number, tableOffset: number, tableRows: number, corrupt: (what: string) => Error): QueueGeometry {
  const capacity = mem.load(W_CAPACITY) >>> 0;
  const slotBytes = mem.load(W_SLOT_BYTES) >>> 0;
  const max = mem.load(W_MAX_MESSAGE) >>> 0;
  const slotsOffset = mem.load(W_SLOTS_OFFSET) >>> 0;
  if (tableOffset !== TABLE_OFFSET || tableRows < 1 || tableRows > MAX_PARTICIPANTS || TABLE_OFFSET + tableRows * 32 > slotsOffset) throw corrupt(`participant table of ${tableRows} rows at ${tableOffset}`);
  if (slotsOffset % 64 !== 0 || slotBytes % 64 !== 0 || slotBytes < SLOT_HEADER + 8) throw corrupt(`slot geometry ${slotsOffset}/${slotBytes}`);
  if (capacity < 1 || max < 1 || max > slotBytes - SLOT_HEADER) throw corrupt(`capacity ${capacity}, max message ${max}`);
  if (slotsOffset + capacity * slotBytes > segmentSize) throw corrupt(`${capacity} slots of ${slotBytes} bytes do not fit in ${segmentSize} bytes`);
  return { capacity, slotBytes, maxMessageSize: max, slotsOffset, participants: tableRows };
}
