/** `ipckit signal send|wait`: signals with a value, and who sent them. */
import { sendSignal, signalNumber, signalReceiver } from '../mechanisms/signal/signal.js';
import { FLAGS, parseInteger, type Group } from './command.js';
import { write } from './output.js';
import { receiveLoop } from './receive.js';

const signalArg = (s: string): string | number => (/^\d+$/.test(s) ? Number(s) : s);

export const group: Group = {
  name: 'signal',
  summary: 'Signals (kill, sigqueue): an event sent to a process, optionally with an integer value.',
  notes: 'SIGNAL: SIGUSR2, USR2, SIGRTMIN+3, RTMAX-1 or a number.',
  commands: [
    {
      verb: 'send',
      args: 'PID SIGNAL',
      summary: 'kill(2) PID with SIGNAL, or sigqueue(3) it with --value',
      flags: { value: { kind: 'string', value: 'N', help: 'an integer the receiver gets with the signal (sigqueue)' } },
      examples: ['ipckit signal send 4242 SIGUSR2 --value 7'],
      async run({ args, flags }) {
        const pid = parseInteger('PID', args[0]!, 1, 2 ** 31 - 1);
        const value = flags.value === undefined ? undefined : parseInteger('--value', flags.value as string, -(2 ** 31), 2 ** 31 - 1);
        sendSignal(pid, signalArg(args[1]!), value === undefined ? {} : { value });
        return 0;
      },
    },
    {
      verb: 'wait',
      args: 'SIGNAL [SIGNAL...]',
      summary: 'print each delivery (signal, sender pid and uid, value) until --count arrived (default 1)',
      details: 'Says "waiting for SIGNAL (pid N)" on stderr once the handler is installed, so a script may send then.',
      flags: { count: { ...FLAGS.count, help: 'stop after N deliveries (default 1)' }, timeout: FLAGS.timeout, json: FLAGS.json },
      examples: ['ipckit signal wait SIGUSR2 --count 2 --json'],
      async run({ args, flags }) {
        const signals = args.map(signalArg);
        signals.forEach((s) => signalNumber(s));
        const receiver = signalReceiver(signals);
        // Ready: the handler is installed; a script may send now (and may read our pid here).
        process.stderr.write(`waiting for ${receiver.signals.join(', ')} (pid ${process.pid})\n`);
        try {
          return await receiveLoop(receiver, {
            what: `signals to pid ${process.pid}`,
            count: (flags.count as number | undefined) ?? 1,
            timeout: flags.timeout as number | undefined,
            quiet: true,
            print: (info) => write(flags.json ? `${JSON.stringify(info)}\n` : `${info.signal} from pid ${info.pid} (uid ${info.uid})${info.value !== undefined ? ` value ${info.value}` : ''}\n`),
          });
        } finally {
          await receiver.close();
        }
      },
    },
  ],
};
