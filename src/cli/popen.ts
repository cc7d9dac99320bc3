/** `ipckit popen [flags] -- CMD ARGS...`: run a program, print its messages, exit with its status. */
import { constants as osConstants } from 'node:os';
import { IpcError } from '../core/errors.js';
import type { Framing } from '../core/framing.js';
import { popen } from '../mechanisms/popen/popen.js';
import { FLAGS, type Group } from './command.js';
import { FRAMING_FLAG, printer } from './fifo.js';
import { receiveLoop } from './receive.js';

export const group: Group = {
  name: 'popen',
  summary: 'Run a program as a child and read its stdout as messages.',
  single: true,
  commands: [
    {
      verb: 'popen',
      args: '',
      takesCommand: true,
      summary: 'run CMD (argv, no shell; our stdin is its stdin) and print each message it writes to stdout',
      details: 'Exits with the command\'s status (128+N if it was killed by signal N). Past --timeout the command\nis killed and ipckit exits 124.',
      flags: { framing: FRAMING_FLAG, json: FLAGS.json, timeout: FLAGS.timeout },
      examples: ['ipckit popen --framing lines -- ls -l /tmp'],
      async run({ flags, rest }) {
        const framing = (flags.framing as Framing | undefined) ?? 'length';
        const timeout = flags.timeout as number | undefined;
        const reader = popen(rest, 'read', { framing, stdin: 'inherit' });
        const deadline = timeout === undefined ? undefined : performance.now() + timeout;
        let failure: unknown;
        try {
          // Until the command's output ends; --timeout here is a deadline for the command.
          await receiveLoop(reader, { what: `the output of ${rest[0]}`, quiet: true, ...(timeout !== undefined ? { timeout } : {}), print: printer(framing, flags.json === true) });
          if (deadline !== undefined && performance.now() >= deadline) failure = new IpcError('ERR_IPCKIT_TIMEOUT', `${rest[0]} still ran after ${timeout} ms (--timeout); it was killed`, { details: { timeout } });
        } catch (e) {
          failure = e;
        }
        // Bad output or our deadline: stop the command, then report what went wrong.
        if (failure !== undefined) reader.kill('SIGTERM');
        let exit = await reader.close(failure === undefined ? undefined : { timeout: 2000 }).catch(() => undefined);
        if (exit === undefined) {
          reader.kill('SIGKILL');
          exit = await reader.exited;
        }
        if (failure !== undefined) throw failure;
        if (exit.signal) return 128 + (osConstants.signals[exit.signal] ?? 0);
        return exit.exitCode ?? 1;
      },
    },
  ],
};
