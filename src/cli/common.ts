/**
 * Shared pieces of the `ipckit` command: argument parsing, message output, exit codes.
 *
 * Exit codes: 0 done, 1 failed (the message names the error code), 2 usage, 124 timed out.
 * Output: one message per line; `--json` prints one JSON object per line with the payload
 * as `utf8` when it is valid UTF-8, else `base64`.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { createInterface } from 'node:readline';
import { IpcError, isIpcError } from '../core/errors.js';
import { FRAMINGS, type Framing } from '../core/framing.js';

export class UsageError extends Error {}

export interface CliGroup {
  /** One line per verb, shown by `ipckit help`. */
  usage: string;
  run(argv: string[]): Promise<number>;
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** util.parseArgs, strict, with our usage errors. */
export function parse<O extends Options>(argv: string[], options: O): { values: ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true; args: string[] }>>['values']; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: r.values, positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export function requirePositional(positionals: string[], index: number, name: string): string {
  const v = positionals[index];
  if (v === undefined) throw new UsageError(`missing ${name}`);
  return v;
}

export function intOption(name: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** `--mode 600` (octal, as chmod takes it). */
export function modeOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^0?[0-7]{3}$/.test(value)) throw new UsageError(`--mode must be octal permission bits like 600 or 0660, got ${JSON.stringify(value)}`);
  return parseInt(value, 8);
}

export function framingOption(value: string | undefined): Framing {
  if (value === undefined) return 'length';
  if (!(FRAMINGS as readonly string[]).includes(value)) throw new UsageError(`--framing must be one of ${FRAMINGS.join(', ')}, got ${JSON.stringify(value)}`);
  return value as Framing;
}

export const framingOptions = {
  framing: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies Options;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The payload as JSON-friendly fields: `{ data, encoding }`. */
export function payloadFields(payload: Uint8Array): { data: string; encoding: 'utf8' | 'base64' } {
  try {
    return { data: utf8.decode(payload), encoding: 'utf8' };
  } catch {
    return { data: Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('base64'), encoding: 'base64' };
  }
}

/** Prints one received message: raw bytes and a newline, or one JSON line with `extra` fields. */
export function printMessage(payload: Uint8Array, json: boolean, extra: Record<string, unknown> = {}): Promise<void> {
  const chunk = json ? `${JSON.stringify({ ...payloadFields(payload), length: payload.length, ...extra })}\n` : Buffer.concat([payload, Buffer.from('\n')]);
  return write(chunk);
}

// EPIPE when whoever reads our output is gone (`ipckit ... | head -1`): the next write()
// rejects with it and report() ends the command quietly, instead of an unhandled 'error'.
let stdoutError: Error | undefined;
process.stdout.on('error', (e: Error) => {
  stdoutError = e;
});

/** Writes to stdout, waiting for it to drain (a slow pipe must not make us buffer everything). */
export function write(chunk: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stdoutError) {
      reject(stdoutError);
      return;
    }
    const ok = process.stdout.write(chunk, (e) => {
      if (e) reject(e);
    });
    if (ok) resolve();
    else process.stdout.once('drain', resolve);
  });
}

/** Messages from the command line, or one per stdin line when none were given. */
export async function* messagesFrom(positionals: string[]): AsyncGenerator<Uint8Array> {
  if (positionals.length > 0) {
    for (const m of positionals) yield Buffer.from(m, 'utf8');
    return;
  }
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) yield Buffer.from(line, 'utf8');
}

/** A status line on stderr when it is a terminal; nothing when piped. */
export function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
}
export function progressDone(): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
}

/** Exit code for an error, and its message printed to stderr. */
export function report(error: unknown): number {
  // Our reader closed the pipe: stop quietly, with the status of a process killed by SIGPIPE.
  if ((error as NodeJS.ErrnoException)?.code === 'EPIPE' && error === stdoutError) return 141;
  if (error instanceof UsageError) {
    process.stderr.write(`ipckit: ${error.message}\n(run \`ipckit help\` for usage)\n`);
    return 2;
  }
  if (isIpcError(error)) {
    process.stderr.write(`ipckit: ${error.message}\n`);
    return error.code === 'ERR_IPCKIT_TIMEOUT' ? 124 : 1;
  }
  process.stderr.write(`ipckit: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
  return 1;
}

export { IpcError };
