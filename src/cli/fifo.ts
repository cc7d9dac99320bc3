/** `ipckit fifo create|send|recv|rm`. */
import { createFifo, openFifo, unlinkFifo } from '../fifo.js';
import { framingOption, framingOptions, intOption, messagesFrom, modeOption, parse, printMessage, requirePositional, UsageError, type CliGroup } from './common.js';
import { receiveLoop } from './receive.js';

export const group: CliGroup = {
  usage: `fifo create PATH [--mode 600]            create a FIFO (exclusive; owner-only unless --mode)
fifo send PATH [MESSAGE...] [--framing F] [--timeout MS]
                                          send each MESSAGE (none: one message per stdin line); waits up to MS for a reader
fifo recv PATH [--count N] [--timeout MS] [--framing F] [--json] [--keep-open]
                                          print messages, one per line, until the writers are gone (or N arrived)
fifo rm PATH                              remove a FIFO (refuses anything that is not one)
  --framing length|lines|raw (default length)`,
  async run(argv) {
    const [verb, ...rest] = argv;
    switch (verb) {
      case 'create': {
        const { values, positionals } = parse(rest, { mode: { type: 'string' } });
        const path = createFifo(requirePositional(positionals, 0, 'PATH'), { mode: modeOption(values.mode) ?? 0o600 });
        process.stdout.write(`${path}\n`);
        return 0;
      }
      case 'send': {
        const { values, positionals } = parse(rest, { ...framingOptions, timeout: { type: 'string' } });
        const path = requirePositional(positionals, 0, 'PATH');
        const timeout = intOption('timeout', values.timeout);
        const writer = await openFifo(path, 'w', { framing: framingOption(values.framing), ...(timeout !== undefined ? { timeout } : {}) });
        try {
          for await (const m of messagesFrom(positionals.slice(1))) await writer.send(m);
        } finally {
          await writer.close();
        }
        return 0;
      }
      case 'recv': {
        const { values, positionals } = parse(rest, { ...framingOptions, count: { type: 'string' }, timeout: { type: 'string' }, 'keep-open': { type: 'boolean' } });
        const path = requirePositional(positionals, 0, 'PATH');
        const reader = await openFifo(path, 'r', { framing: framingOption(values.framing), keepOpen: values['keep-open'] === true });
        try {
          await receiveLoop(reader, {
            count: intOption('count', values.count, 1),
            timeout: intOption('timeout', values.timeout),
            print: (m) => printMessage(m, values.json === true),
          });
        } finally {
          await reader.close();
        }
        return 0;
      }
      case 'rm': {
        const { positionals } = parse(rest, {});
        unlinkFifo(requirePositional(positionals, 0, 'PATH'));
        return 0;
      }
      default:
        throw new UsageError(`unknown fifo command ${JSON.stringify(verb ?? '')}: use create, send, recv or rm`);
    }
  },
};
