/**
 * Argument validators for the public boundary. Each throws ERR_IPCKIT_INVALID_ARGUMENT
 * at once, synchronously, with a message saying what was expected and what was given.
 */
import { invalidArgument } from './errors.js';

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value instanceof Uint8Array) return `${value.constructor.name}(${value.length})`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value === 'object' ? `an object (${value.constructor?.name ?? 'Object'})` : typeof value;
}

export function integer(name: string, value: unknown, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidArgument(`${name} must be an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

export function optionalInteger(name: string, value: unknown, min: number, max?: number): number | undefined {
  return value === undefined ? undefined : integer(name, value, min, max);
}

export function string(name: string, value: unknown, { nonEmpty = true } = {}): string {
  if (typeof value !== 'string' || (nonEmpty && value.length === 0)) {
    throw invalidArgument(`${name} must be a ${nonEmpty ? 'non-empty ' : ''}string, got ${describe(value)}`);
  }
  if (value.includes('\0')) throw invalidArgument(`${name} must not contain a NUL character`);
  return value;
}

export function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidArgument(`${name} must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describe(value)}`);
  }
  return value as T;
}

export function bytes(name: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalidArgument(`${name} must be a Uint8Array, got ${describe(value)}`);
  return value;
}

/** An options object (undefined stands for none); arrays and functions are not options. */
export function object<T extends object>(name: string, value: unknown): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalidArgument(`${name} must be an object, got ${describe(value)}`);
  return value as Partial<T>;
}

/** Permission bits: an integer 0..0o777 (set-id and sticky bits are refused). */
export function mode(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0o777) {
    throw invalidArgument(`${name} must be permission bits from 0 to 0o777, got ${describe(value)}`);
  }
  return value;
}

export function boolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidArgument(`${name} must be true or false, got ${describe(value)}`);
  return value;
}

export function optionalBoolean(name: string, value: unknown): boolean | undefined {
  return value === undefined ? undefined : boolean(name, value);
}

export function optionalString(name: string, value: unknown, options?: { nonEmpty?: boolean }): string | undefined {
  return value === undefined ? undefined : string(name, value, options);
}

export function optionalOneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T | undefined {
  return value === undefined ? undefined : oneOf(name, value, allowed);
}

export function func<F extends (...args: never[]) => unknown>(name: string, value: unknown): F {
  if (typeof value !== 'function') throw invalidArgument(`${name} must be a function, got ${describe(value)}`);
  return value as F;
}

/** Something `for...of` can walk (an array, a Set, a generator). */
export function iterable<T>(name: string, value: unknown): Iterable<T> {
  if (value === null || (typeof value !== 'object' && typeof value !== 'string') || typeof (value as Iterable<T>)[Symbol.iterator] !== 'function') {
    throw invalidArgument(`${name} must be an iterable (an array, for one), got ${describe(value)}`);
  }
  return value as Iterable<T>;
}

/** How many messages a batch takes at most: an integer from 1, or Infinity for "every one ready". */
export function batchMax(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === Infinity) return value;
  return integer(name, value, 1);
}

/** The longest timeout a timer can hold (setTimeout fires at once for anything longer). */
export const MAX_TIMEOUT = 2 ** 31 - 1;

/** A timeout in milliseconds: a number from 0 to MAX_TIMEOUT (about 24.8 days), or undefined for none. */
export function timeout(value: unknown, name = 'timeout'): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !(value >= 0 && value <= MAX_TIMEOUT)) {
    throw invalidArgument(`${name} must be a number of milliseconds from 0 to ${MAX_TIMEOUT}, got ${describe(value)}`);
  }
  return value;
}

export function abortSignal(value: unknown, name = 'signal'): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw invalidArgument(`${name} must be an AbortSignal, got ${describe(value)}`);
  return value;
}

/**
 * The options of a wait, checked whole: undefined, or an object whose `timeout` (ms) and
 * `signal` (AbortSignal) are valid. Every public method that waits calls this first,
 * before any fast path, so a bad option throws whether or not the call had to wait.
 */
export function waitOptions<O extends { timeout?: number; signal?: AbortSignal }>(value: O | undefined, name = 'options'): O | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object') throw invalidArgument(`${name} must be an object like { timeout, signal }, got ${describe(value)}`);
  timeout(value.timeout);
  abortSignal(value.signal);
  return value;
}

/**
 * A POSIX IPC name (shm, mq, sem) as a C or Python peer passes it: `/jobs`. A name
 * without the leading slash gets one. No inner slash, not empty, at most NAME_MAX (255)
 * bytes including the slash (sem_open uses 4 of them for its `sem.` prefix, so
 * semaphores allow 251).
 */
export function posixName(value: unknown, maxBytes = 255): string {
  if (typeof value !== 'string') throw invalidArgument(`name must be a string like "/jobs", got ${describe(value)}`);
  const name = value.startsWith('/') ? value : `/${value}`;
  const rest = name.slice(1);
  if (rest.length === 0) throw invalidArgument('name must not be empty: give a name like "/jobs"');
  if (rest.includes('/')) throw invalidArgument(`name must not contain "/" after the leading one, got ${describe(value)}`);
  if (rest === '.' || rest === '..') throw invalidArgument(`name must not be "." or "..", got ${describe(value)}`);
  if (rest.includes('\0')) throw invalidArgument('name must not contain a NUL character');
  if (Buffer.byteLength(name) > maxBytes) throw invalidArgument(`name must be at most ${maxBytes} bytes, got ${Buffer.byteLength(name)}`);
  return name;
}
