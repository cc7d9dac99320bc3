/** `ipckit popen [--framing F] [--json] [--timeout MS] -- CMD ARGS...`: run a program, print its messages, exit with its status. */
import { constants as osConstants } from 'node:os';
import { popen } from '../mechanisms/popen/popen.js';
import { framingOption, framingOptions, intOption, parse, UsageError, type CliGroup } from './common.js';
import { printer } from './fifo.js';
import { receiveLoop } from './receive.js';

export const group: CliGroup = {
  usage: `popen [--framing F] [--json] [--timeout MS] -- CMD [ARGS...]
                                          run CMD (argv, no shell; our stdin is its stdin), print each message
                                          it writes to stdout; exit with its status (128+N if killed by signal N);
                                          past MS the command is killed and ipckit exits 124`,
  async run(argv) {
    const dash = argv.indexOf('--');
    const own = dash === -1 ? argv : argv.slice(0, dash);
    const command = dash === -1 ? [] : argv.slice(dash + 1);
    const { values, positionals } = parse(own, { ...framingOptions, timeout: { type: 'string' } });
    if (positionals.length > 0 || command.length === 0) throw new UsageError('give the command after --, e.g. ipckit popen --framing lines -- ls -l');
    const framing = framingOption(values.framing);
    const timeout = intOption('timeout', values.timeout);
    const reader = popen(command, 'r', { framing, stdin: 'inherit' });
    let failure: unknown;
    try {
      await receiveLoop(reader, { timeout, print: printer(framing, values.json === true) });
    } catch (e) {
      // Bad output or our deadline: stop the command, then report what went wrong.
      failure = e;
      reader.kill('SIGTERM');
    }
    let exit = await reader.close(failure === undefined ? undefined : { timeout: 2000 }).catch(() => undefined);
    if (exit === undefined) {
      reader.kill('SIGKILL');
      exit = await reader.exited;
    }
    if (failure !== undefined) throw failure;
    if (exit.signal) return 128 + (osConstants.signals[exit.signal] ?? 0);
    return exit.exitCode ?? 1;
  },
};
