/** `ipckit popen [--framing F] [--json] -- CMD ARGS...`: run a program, print its messages, exit with its status. */
import { constants as osConstants } from 'node:os';
import { popen } from '../popen.js';
import { framingOption, framingOptions, parse, printMessage, UsageError, type CliGroup } from './common.js';
import { receiveLoop } from './receive.js';

export const group: CliGroup = {
  usage: `popen [--framing F] [--json] -- CMD [ARGS...]
                                          run CMD (no shell), print each message it writes to stdout,
                                          exit with its status (128+N when killed by signal N)`,
  async run(argv) {
    const dash = argv.indexOf('--');
    const own = dash === -1 ? argv : argv.slice(0, dash);
    const command = dash === -1 ? [] : argv.slice(dash + 1);
    const { values, positionals } = parse(own, framingOptions);
    if (positionals.length > 0 || command.length === 0) throw new UsageError('give the command after --, e.g. ipckit popen --framing lines -- ls -l');
    const reader = popen(command, 'r', { framing: framingOption(values.framing) });
    try {
      await receiveLoop(reader, { print: (m) => printMessage(m, values.json === true) });
    } finally {
      const exit = await reader.close();
      if (exit.signal) process.exitCode = 128 + (osConstants.signals[exit.signal] ?? 0);
      else process.exitCode = exit.exitCode ?? 1;
    }
    return process.exitCode as number;
  },
};
