/** `ipckit fifo create|send|recv|rm`. */
import { createFifo, openFifo, unlinkFifo } from '../mechanisms/fifo/fifo.js';
import type { Framing } from '../core/framing.js';
import { framingOption, framingOptions, intOption, messagesFrom, modeOption, parse, printMessage, requirePositional, UsageError, write, type CliGroup } from './common.js';
import { receiveLoop } from './receive.js';

/** What is left of a deadline, as a `timeout` option. */
function remaining(deadline: number | undefined): { timeout?: number } {
  return deadline === undefined ? {} : { timeout: Math.max(0, deadline - Date.now()) };
}

/** Messages to send: the arguments, else stdin (one message per line; raw: the bytes as they come). */
async function* outgoing(positionals: string[], framing: Framing): AsyncGenerator<Uint8Array> {
  if (positionals.length === 0 && framing === 'raw') {
    for await (const chunk of process.stdin) yield chunk as Buffer;
    return;
  }
  yield* messagesFrom(positionals);
}

/** Prints a received message: a line (raw: the bytes as they are), or a JSON line with --json. */
export function printer(framing: Framing, json: boolean): (m: Uint8Array) => Promise<void> {
  if (framing === 'raw' && !json) return (m) => write(m);
  return (m) => printMessage(m, json);
}

export const group: CliGroup = {
  usage: `fifo create PATH [--mode 600] [--json]   create a FIFO (exclusive; owner-only unless --mode)
fifo send PATH [MESSAGE...] [--framing F] [--timeout MS] [--json] [--mode 600]
                                          send each MESSAGE (none: one message per stdin line; raw: stdin as is);
                                          waits for a reader; MS bounds the whole command
fifo recv PATH [--count N] [--timeout MS] [--framing F] [--json] [--keep-open] [--mode 600]
                                          print messages, one per line, until the writers are gone (or N arrived);
                                          --json: one {"data","encoding","length"} object per line
                                          --mode: the widest mode accepted on an existing FIFO (default 600:
                                          one made by mkfifo under umask 022 is 644; accept it with --mode 644)
fifo rm PATH                              remove a FIFO (refuses anything that is not one)
  --framing length|lines|raw (default length)`,
  async run(argv) {
    const [verb, ...rest] = argv;
    switch (verb) {
      case 'create': {
        const { values, positionals } = parse(rest, { mode: { type: 'string' }, json: { type: 'boolean' } });
        const path = createFifo(requirePositional(positionals, 0, 'PATH'), { mode: modeOption(values.mode) ?? 0o600 });
        await write(values.json ? `${JSON.stringify({ path })}\n` : `${path}\n`);
        return 0;
      }
      case 'send': {
        const { values, positionals } = parse(rest, { ...framingOptions, timeout: { type: 'string' }, mode: { type: 'string' } });
        const path = requirePositional(positionals, 0, 'PATH');
        const framing = framingOption(values.framing);
        const timeout = intOption('timeout', values.timeout);
        const mode = modeOption(values.mode);
        const deadline = timeout === undefined ? undefined : Date.now() + timeout;
        const writer = await openFifo(path, 'w', { framing, ...(mode !== undefined ? { mode } : {}), ...remaining(deadline) });
        let sent = 0;
        try {
          for await (const m of outgoing(positionals.slice(1), framing)) {
            await writer.send(m, remaining(deadline));
            sent++;
          }
        } finally {
          await writer.close(remaining(deadline));
        }
        if (values.json) await write(`${JSON.stringify({ path, sent })}\n`);
        return 0;
      }
      case 'recv': {
        const { values, positionals } = parse(rest, { ...framingOptions, count: { type: 'string' }, timeout: { type: 'string' }, 'keep-open': { type: 'boolean' }, mode: { type: 'string' } });
        const path = requirePositional(positionals, 0, 'PATH');
        const framing = framingOption(values.framing);
        const count = intOption('count', values.count, 1);
        const timeout = intOption('timeout', values.timeout);
        const mode = modeOption(values.mode);
        const reader = await openFifo(path, 'r', { framing, keepOpen: values['keep-open'] === true, ...(mode !== undefined ? { mode } : {}) });
        try {
          await receiveLoop(reader, { count, timeout, print: printer(framing, values.json === true) });
        } finally {
          await reader.close();
        }
        return 0;
      }
      case 'rm': {
        const { positionals } = parse(rest, {});
        const path = requirePositional(positionals, 0, 'PATH');
        unlinkFifo(path);
        return 0;
      }
      default:
        throw new UsageError(`unknown fifo command ${JSON.stringify(verb ?? '')}: use create, send, recv or rm`);
    }
  },
};
