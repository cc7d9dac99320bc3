/**
 * The ring's layout (docs/ring.md, version 2), after the common header of every ipckit
 * object (src/memory/header.ts). Word indexes are in 32-bit units from the start; each
 * cursor has a cache line of its own.
 *
 *   byte    0  the common header ('IPKR'); its participant table: byte 512, 1 + P rows
 *   byte   64  tail (producers' cursor), claim lock (many producers)
 *   byte  128  head (the consumer's cursor)
 *   byte  192  data signal (the consumer sleeps on it), consumer-sleeping flag
 *   byte  256  space signal (producers sleep on it), producer-sleeping flag
 *   byte  320  capacity, flags (bit 0: many producers), max message, data offset (4096),
 *              producers ever attached
 *   byte  512  participant table: row 0 the consumer, rows 1..P the producers
 *   byte 4096  the data region: `capacity` bytes of 8-byte aligned records
 *              [commit word][length][payload], never wrapping (padding fills the end)
 */
import type { Memory } from '../../memory/memory.js';

export const VERSION = 2;
export const W_TAIL = 16;
export const W_CLAIM_LOCK = 17;
export const W_HEAD = 32;
export const W_DATA_SIGNAL = 48;
export const W_CONSUMER_SLEEPING = 49;
export const W_SPACE_SIGNAL = 64;
export const W_PRODUCER_SLEEPING = 65;
export const W_CAPACITY = 80;
export const W_FLAGS = 81;
export const W_MAX_MESSAGE = 82;
export const W_DATA_OFFSET = 83;
export const W_PRODUCERS_EVER = 84;
export const TABLE_OFFSET = 512;
export const DATA_OFFSET = 4096;
/** Row 0 of the participant table is the consumer; producers are rows 1 .. P. */
export const CONSUMER_ROW = 0;
export const MAX_PRODUCERS = 64;
export const FLAG_MANY = 1;

export const REC_MESSAGE = 1;
export const REC_PADDING = 2;
/** A claimed record of a many-producer ring: REC_CLAIMED | row << 8 | (epoch & 0xffff) << 16. */
export const REC_CLAIMED = 3;
export const RECORD_HEADER = 8;
export const MIN_CAPACITY = 4096;
export const MAX_CAPACITY = 2 ** 30;

export interface RingGeometry {
  capacity: number;
  maxMessageSize: number;
  many: boolean;
  /** Producer rows (1 for a one-producer ring). */
  producers: number;
}

/** The creator's part: geometry and the empty cursors. */
export function writeGeometry(mem: Memory, g: RingGeometry): void {
  mem.store(W_CAPACITY, g.capacity);
  mem.store(W_FLAGS, g.many ? FLAG_MANY : 0);
  mem.store(W_MAX_MESSAGE, g.maxMessageSize);
  mem.store(W_DATA_OFFSET, DATA_OFFSET);
}

/**
 * Reads the geometry of an opened ring (untrusted: each word read once and checked
 * against the others and the segment's size). `corrupt` makes the error.
 */
export function readGeometry(mem: Memory, segmentSize: number, tableOffset: number, tableRows: number, corrupt: (what: string) => Error): RingGeometry {
  const capacity = mem.load(W_CAPACITY) >>> 0;
  const flags = mem.load(W_FLAGS) >>> 0;
  const maxMessage = mem.load(W_MAX_MESSAGE) >>> 0;
  const dataOffset = mem.load(W_DATA_OFFSET) >>> 0;
  if (dataOffset !== DATA_OFFSET) throw corrupt(`data offset ${dataOffset}`);
  if (capacity < MIN_CAPACITY || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0) throw corrupt(`capacity ${capacity} is not a power of two from 4096 to 2^30`);
  if (segmentSize < DATA_OFFSET + capacity) throw corrupt(`the segment has ${segmentSize} bytes, fewer than its header and capacity (${DATA_OFFSET + capacity})`);
  if ((flags & ~FLAG_MANY) !== 0) throw corrupt(`unknown flags 0x${flags.toString(16)}`);
  if (maxMessage < 1 || maxMessage > capacity - RECORD_HEADER) throw corrupt(`max message size ${maxMessage} for capacity ${capacity}`);
  const many = (flags & FLAG_MANY) !== 0;
  const producers = tableRows - 1;
  if (tableOffset !== TABLE_OFFSET || producers < 1 || producers > MAX_PRODUCERS || (!many && producers !== 1)) throw corrupt(`participant table of ${tableRows} rows at ${tableOffset}`);
  return { capacity, maxMessageSize: maxMessage, many, producers };
}
