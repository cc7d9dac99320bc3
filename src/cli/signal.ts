/** `ipckit signal send|wait`. */
import { sendSignal, signalNumber, signalReceiver } from '../mechanisms/signal/signal.js';
import { isIpcError } from '../core/errors.js';
import { intOption, parse, requirePositional, UsageError, write, type CliGroup } from './common.js';

export const group: CliGroup = {
  usage: `signal send PID SIGNAL [--value N]        kill(2) PID with SIGNAL, or sigqueue(3) it with the int value N
signal wait SIGNAL... [--count N] [--timeout MS] [--json]
                                          print each delivery (sender pid, uid, value) until N arrived
  SIGNAL: SIGUSR2, USR2, SIGRTMIN+3, RTMAX-1 or a number`,
  async run(argv) {
    const [verb, ...rest] = argv;
    switch (verb) {
      case 'send': {
        const { values, positionals } = parse(rest, { value: { type: 'string' } });
        const pidText = requirePositional(positionals, 0, 'PID');
        if (!/^\d+$/.test(pidText)) throw new UsageError(`PID must be a positive integer, got ${JSON.stringify(pidText)}`);
        const signal = requirePositional(positionals, 1, 'SIGNAL');
        if (positionals.length > 2) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[2])}`);
        let value: number | undefined;
        if (values.value !== undefined) {
          if (!/^-?\d+$/.test(values.value)) throw new UsageError(`--value must be an integer, got ${JSON.stringify(values.value)}`);
          value = Number(values.value);
        }
        sendSignal(Number(pidText), /^\d+$/.test(signal) ? Number(signal) : signal, value === undefined ? {} : { value });
        return 0;
      }
      case 'wait': {
        const { values, positionals } = parse(rest, { count: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' } });
        if (positionals.length === 0) throw new UsageError('missing SIGNAL');
        const signals = positionals.map((s) => (/^\d+$/.test(s) ? Number(s) : s));
        signals.forEach((s) => signalNumber(s));
        const count = intOption('count', values.count, 1) ?? 1;
        const timeout = intOption('timeout', values.timeout);
        const receiver = signalReceiver(signals);
        // Ready: the handler is installed; a script may send now (and may read our pid here).
        process.stderr.write(`waiting for ${receiver.signals.join(', ')} (pid ${process.pid})\n`);
        const deadline = timeout === undefined ? undefined : Date.now() + timeout;
        try {
          for (let n = 0; n < count; n++) {
            const left = deadline === undefined ? undefined : Math.max(0, deadline - Date.now());
            const info = await receiver.receive(left === undefined ? undefined : { timeout: left });
            if (values.json) await write(`${JSON.stringify(info)}\n`);
            else await write(`${info.signal} from pid ${info.pid} (uid ${info.uid})${info.value !== undefined ? ` value ${info.value}` : ''}\n`);
          }
        } catch (e) {
          if (!isIpcError(e, 'ERR_IPCKIT_CLOSED')) throw e;
        } finally {
          await receiver.close();
        }
        return 0;
      }
      default:
        throw new UsageError(`unknown signal command ${JSON.stringify(verb ?? '')}: use send or wait`);
    }
  },
};
