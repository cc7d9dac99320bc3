/** `ipckit fifo create|send|recv|rm`: named pipes from the shell. */
import type { Framing } from '../core/framing.js';
import { FRAMINGS } from '../core/framing.js';
import { createFifo, openFifo, unlinkFifo } from '../mechanisms/fifo/fifo.js';
import { FLAGS, RECEIVE_FLAGS, type Flag, type Group } from './command.js';
import { messagesFrom, printMessage, printResult, timeLeft, waitingNote, withWaitingNote, write } from './output.js';
import { receiveLoop } from './receive.js';
import { removeNamed } from './remove.js';

export const FRAMING_FLAG: Flag = { kind: 'string', value: 'F', choices: FRAMINGS, help: 'length (ipckit frames, the default), lines (text lines) or raw (bytes as they come)' };

/** Messages to send: the arguments, else stdin (one message per line; raw: the bytes as they come). */
async function* outgoing(args: string[], framing: Framing): AsyncGenerator<Uint8Array> {
  if (args.length === 0 && framing === 'raw') {
    for await (const chunk of process.stdin) yield chunk as Buffer;
    return;
  }
  yield* messagesFrom(args);
}

/** Prints a received message: a line (raw: the bytes as they are), or a JSON line with --json. */
export function printer(framing: Framing, json: boolean): (m: Uint8Array) => Promise<void> {
  if (framing === 'raw' && !json) return (m) => write(m);
  return (m) => printMessage(m, json);
}

export const group: Group = {
  name: 'fifo',
  summary: 'Named pipes (mkfifo): a byte stream between unrelated processes, carrying messages.',
  commands: [
    {
      verb: 'create',
      args: 'PATH',
      summary: 'create a FIFO (exclusive; owner-only unless --mode)',
      flags: { mode: FLAGS.createMode, json: FLAGS.json },
      examples: ['ipckit fifo create /tmp/jobs.fifo --mode 660'],
      async run({ args, flags }) {
        const path = createFifo(args[0], { mode: (flags.mode as number | undefined) ?? 0o600 });
        await printResult(flags.json === true, { path }, path);
        return 0;
      },
    },
    {
      verb: 'send',
      args: 'PATH [MESSAGE...]',
      summary: 'send each MESSAGE (none: one per stdin line; raw: stdin as is); waits for a reader',
      flags: { framing: FRAMING_FLAG, timeout: FLAGS.timeout, mode: FLAGS.acceptMode, json: FLAGS.json, quiet: FLAGS.quiet },
      examples: ['ipckit fifo send /tmp/jobs.fifo "hello" "world"', 'ls | ipckit fifo send /tmp/jobs.fifo --framing lines'],
      async run({ args, flags }) {
        const [path, ...messages] = args as [string, ...string[]];
        const framing = (flags.framing as Framing | undefined) ?? 'length';
        const left = timeLeft(flags.timeout as number | undefined);
        const mode = flags.mode as number | undefined;
        const writer = await withWaitingNote(`waiting for a reader on ${path}…`, flags.quiet === true, () =>
          openFifo(path, 'write', { framing, ...(mode !== undefined ? { mode } : {}), ...left() }),
        );
        let sent = 0;
        const stalled = waitingNote(`waiting for the reader of ${path} to take more…`, flags.quiet === true);
        try {
          for await (const m of outgoing(messages, framing)) {
            await writer.send(m, left());
            stalled.progress();
            sent++;
          }
        } finally {
          stalled.done();
          await writer.close(left());
        }
        if (flags.json) await write(`${JSON.stringify({ path, sent })}\n`);
        return 0;
      },
    },
    {
      verb: 'recv',
      args: 'PATH',
      summary: 'print messages, one per line, until the writers are gone (or --count arrived)',
      details: 'With --keep-open the FIFO stays open across writers: recv ends only at --count, --timeout or --drain.',
      flags: { ...RECEIVE_FLAGS, framing: FRAMING_FLAG, 'keep-open': { kind: 'boolean', help: 'stay open when the last writer closes, for the next one' }, mode: FLAGS.acceptMode },
      examples: ['ipckit fifo recv /tmp/jobs.fifo --count 2 --json'],
      async run({ args, flags }) {
        const path = args[0]!;
        const framing = (flags.framing as Framing | undefined) ?? 'length';
        const mode = flags.mode as number | undefined;
        const left = timeLeft(flags.timeout as number | undefined);
        const reader = await openFifo(path, 'read', { framing, keepOpen: flags['keep-open'] === true, ...(mode !== undefined ? { mode } : {}) });
        try {
          return await receiveLoop(reader, {
            what: `FIFO ${path}`,
            peer: 'a writer',
            count: flags.count as number | undefined,
            ...left(),
            drain: flags.drain === true,
            quiet: flags.quiet === true,
            print: printer(framing, flags.json === true),
          });
        } finally {
          await reader.close();
        }
      },
    },
    {
      verb: 'rm',
      args: 'PATH',
      summary: 'remove a FIFO (refuses anything that is not one)',
      flags: { force: FLAGS.force },
      examples: ['ipckit fifo rm /tmp/jobs.fifo'],
      async run({ args, flags }) {
        return removeNamed('FIFO', args[0]!, flags.force === true, unlinkFifo);
      },
    },
  ],
};
