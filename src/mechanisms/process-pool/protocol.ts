/**
 * What the pool and its worker processes say to each other, in one place.
 *
 * - Jobs go parent -> workers over a work queue (at least once): each item is
 *   v8-serialized `[seq, ticket, fn, flags, arg]`. An argument whose item would not fit a
 *   queue slot travels in a file of the pool's folder in /dev/shm (flag FILE_ARG) that the
 *   parent removes once the job has settled.
 * - Everything else goes workers -> parent over one ring with many producers: each
 *   message is v8-serialized `[kind, seq, worker, payload]`. A result too large for the
 *   ring travels in a file the worker writes and the parent reads and removes.
 * - Tickets: one 32-bit word per job in the queue, in a small shared segment. The parent
 *   stores the job's seq there while it wants the job and 0 once it has settled (done,
 *   timed out, aborted); a worker runs a job only while its ticket still holds its seq, so
 *   a job delivered again after it settled (its worker died after sending the result) or
 *   a job cancelled while it waited is acknowledged and dropped, not run.
 *
 * The v8 serializer (the structured codec) keeps Buffers and typed arrays as bytes: no
 * JSON on the way, whatever the size.
 */
import { deserialize, serialize } from 'node:v8';

/** Job flags. */
export const REPORT_START = 1; // the job has a timeout or a signal: say when it starts, and on which worker
export const FILE_ARG = 2; // the argument is in the file `a-<seq>` of the pool's folder

/** Message kinds, workers -> parent. */
export const READY = 0; // payload: the module's exported function names
export const FATAL = 1; // payload: ErrorRecord (the module failed to load)
export const START = 2; // a REPORT_START job starts on this worker
export const OK = 3; // payload: the result
export const OK_FILE = 4; // payload: the file name (in the pool's folder) holding the serialized result
export const THREW = 5; // payload: ErrorRecord
export const GAVE_UP = 6; // payload: the number of attempts whose worker died
export const WAKE = 7; // the parent's own message to its receive loop

export type JobItem = [seq: number, ticket: number, fn: string, flags: number, arg: unknown];
export type Message = [kind: number, seq: number, worker: number, payload: unknown];

/** An error as it crosses the process boundary. */
export interface ErrorRecord {
  name: string;
  message: string;
  stack?: string | undefined;
  code?: unknown;
}

/** The worker's configuration, passed in its environment as JSON. */
export interface WorkerConfig {
  module: string; // a file: URL
  queue: string;
  ring: string;
  tickets: string;
  ticketCount: number;
  folder: string;
  worker: number;
  maxAttempts: number;
}

export const CONFIG_ENV = 'IPCKIT_POOL_WORKER';
/** A worker's exit status after it sent FATAL (the module failed to load). */
export const EXIT_FATAL = 78;

export const encode = (value: unknown): Buffer => serialize(value);
export const decode = <T>(bytes: Uint8Array): T => deserialize(bytes) as T;

export function errorRecord(e: unknown): ErrorRecord {
  if (e instanceof Error) {
    const record: ErrorRecord = { name: e.name, message: e.message, stack: e.stack };
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') record.code = code;
    return record;
  }
  return { name: 'Error', message: `a non-Error value was thrown: ${String(e)}` };
}

/** The worker's error, rebuilt in the parent: same name, message, stack and code. */
export function rebuildError(r: ErrorRecord): Error {
  const e = new Error(String(r.message));
  e.name = String(r.name);
  if (typeof r.stack === 'string') e.stack = r.stack;
  if (r.code !== undefined) (e as Error & { code?: unknown }).code = r.code;
  return e;
}

export const argFile = (folder: string, seq: number): string => `${folder}/a-${seq}`;
export const resultFileName = (seq: number, worker: number): string => `r-${seq}-${worker}`;
