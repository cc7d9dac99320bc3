/**
 * What the `ipckit` command prints: messages (raw lines or JSON lines), notes on stderr,
 * and errors in the user's terms (flags, not API options), with the exit codes:
 * 0 done, 1 failed (the message names the error code), 2 usage, 124 timed out.
 */
import { createInterface } from 'node:readline';
import { isIpcError, remedyText } from '../core/errors.js';
import { UsageError } from './command.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The payload as JSON-friendly fields: `{ data, encoding }`. */
export function payloadFields(payload: Uint8Array): { data: string; encoding: 'utf8' | 'base64' } {
  try {
    return { data: utf8.decode(payload), encoding: 'utf8' };
  } catch {
    return { data: Buffer.from(payload.buffer, payload.byteOffset, payload.length).toString('base64'), encoding: 'base64' };
  }
}

/** Prints one received message: its bytes and a newline, or one JSON line with `extra` fields. */
export function printMessage(payload: Uint8Array, json: boolean, extra: Record<string, unknown> = {}): Promise<void> {
  const chunk = json ? `${JSON.stringify({ ...payloadFields(payload), length: payload.length, ...extra })}\n` : Buffer.concat([payload, Buffer.from('\n')]);
  return write(chunk);
}

/** Prints a JSON object (with --json) or the text. */
export function printResult(json: boolean, object: unknown, text: string): Promise<void> {
  return write(json ? `${JSON.stringify(object)}\n` : text.endsWith('\n') ? text : `${text}\n`);
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
export async function* messagesFrom(args: string[]): AsyncGenerator<Uint8Array> {
  if (args.length > 0) {
    for (const m of args) yield Buffer.from(m, 'utf8');
    return;
  }
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) yield Buffer.from(line, 'utf8');
}

/**
 * One deadline for a whole command: what is left of `timeoutMs` (--timeout) each time it
 * is asked, as a wait option (`{}` when there is no --timeout).
 */
export function timeLeft(timeoutMs: number | undefined): () => { timeout?: number } {
  if (timeoutMs === undefined) return () => ({});
  const deadline = performance.now() + timeoutMs;
  return () => ({ timeout: Math.max(0, deadline - performance.now()) });
}

/**
 * Sends the command line's messages (or stdin's lines) in order with `send`, each within
 * what `left` says is left of --timeout, then runs `finish` (a flush); says `waiting` on
 * stderr if one of them waits for a second (nothing with --quiet). Closing is the caller's.
 */
export async function sendEach(
  messages: string[],
  how: { left: () => { timeout?: number }; waiting: string; quiet: boolean },
  send: (message: Uint8Array, left: { timeout?: number }) => Promise<unknown>,
  finish?: (left: { timeout?: number }) => Promise<unknown>,
): Promise<void> {
  const { left } = how;
  const note = waitingNote(how.waiting, how.quiet);
  try {
    for await (const m of messagesFrom(messages)) {
      await send(m, left());
      note.progress();
    }
    if (finish) await finish(left());
  } finally {
    note.done();
  }
}

/** A status line on stderr when it is a terminal; nothing when piped. */
export function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
}
export function progressDone(): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
}

/** A note on stderr. */
export function note(text: string): void {
  process.stderr.write(`ipckit: ${text}\n`);
}

/** How long a command waits for a peer before it says so. */
const NOTE_AFTER_MS = 1000;

/**
 * Says `text` on stderr once, if the wait it names lasts a second (and again after each
 * `progress()`, should the wait start over for long); nothing with `quiet`.
 */
export function waitingNote(text: string, quiet: boolean): { progress(): void; done(): void } {
  let timer: NodeJS.Timeout | undefined;
  let said = false;
  const arm = (): void => {
    if (quiet || said) return;
    timer = setTimeout(() => {
      said = true;
      note(text);
    }, NOTE_AFTER_MS);
    timer.unref();
  };
  arm();
  return {
    progress() {
      clearTimeout(timer);
      arm();
    },
    done() {
      clearTimeout(timer);
    },
  };
}

/** Runs `wait` with a note if it lasts a second: `waiting for a reader on /x…`. */
export async function withWaitingNote<R>(text: string, quiet: boolean, wait: () => Promise<R>): Promise<R> {
  const n = waitingNote(text, quiet);
  try {
    return await wait();
  } finally {
    n.done();
  }
}

// --- Errors in the user's terms -----------------------------------------------------------

/** How an API option that would fix a failure is typed on the command line. */
const FLAG_FOR: Record<string, (value: unknown) => string> = {
  anyOwner: () => '--any-owner',
  owner: (v) => `--owner ${v ?? 'UID'}`,
  mode: (v) => `--mode ${typeof v === 'number' ? v.toString(8) : 'BITS'}`,
};

const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** `{ anyOwner: true }` -> `--any-owner`; `{ producers: 'many' }` -> `--producers many`. */
export function flagsFor(option: Readonly<Record<string, unknown>>): string {
  return Object.entries(option)
    .map(([k, v]) => FLAG_FOR[k]?.(v) ?? `--${kebab(k)}${v === true ? '' : ` ${v === undefined ? k.toUpperCase() : String(v)}`}`)
    .join(' ');
}

/** Exit code for an error, and its message printed to stderr in the CLI's terms. */
export function report(error: unknown): number {
  // Our reader closed the pipe: stop quietly, with the status of a process killed by SIGPIPE.
  if ((error as NodeJS.ErrnoException)?.code === 'EPIPE' && error === stdoutError) return 141;
  if (error instanceof UsageError) {
    process.stderr.write(`ipckit: ${error.message}\n(run \`${error.helpFor ?? 'ipckit'} --help\` for usage)\n`);
    return 2;
  }
  if (isIpcError(error)) {
    const remedy = error.remedy ? `; ${remedyText(error.remedy, flagsFor)}` : '';
    process.stderr.write(`ipckit: ${error.reason}${remedy} (${error.code})\n`);
    return error.code === 'ERR_IPCKIT_TIMEOUT' ? 124 : 1;
  }
  process.stderr.write(`ipckit: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
  return 1;
}
