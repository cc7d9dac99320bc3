/** `ipckit semaphore create|post|wait|value|rm` (alias `sem`). */
import { createSemaphore, openSemaphore, SEM_VALUE_MAX, unlinkSemaphore } from '../mechanisms/semaphore/semaphore.js';
import { intOption, modeOption, parse, requirePositional, UsageError, write, type CliGroup } from './common.js';

export const group: CliGroup = {
  usage: `semaphore create NAME [--value N] [--mode 600]
                                          create a POSIX named semaphore (exclusive; owner-only unless --mode)
semaphore post NAME [--count N] [--any-owner]
                                          add N permits (default 1)
semaphore wait NAME [--timeout MS] [--any-owner]
                                          take a permit, waiting for one (exit 124 on timeout)
semaphore value NAME                      print the current value
semaphore rm NAME                         remove the semaphore's name`,
  async run(argv) {
    const [verb, ...rest] = argv;
    switch (verb) {
      case 'create': {
        const { values, positionals } = parse(rest, { value: { type: 'string' }, mode: { type: 'string' } });
        const name = requirePositional(positionals, 0, 'NAME');
        const value = intOption('value', values.value) ?? 0;
        if (value > SEM_VALUE_MAX) throw new UsageError(`--value must be at most ${SEM_VALUE_MAX}, got ${value}`);
        const s = createSemaphore(name, { value, mode: modeOption(values.mode) ?? 0o600 });
        await s.close();
        process.stdout.write(`${s.name}\n`);
        return 0;
      }
      case 'post': {
        const { values, positionals } = parse(rest, { count: { type: 'string' }, 'any-owner': { type: 'boolean' } });
        const s = openSemaphore(requirePositional(positionals, 0, 'NAME'), { mode: 0o777, trustAnyOwner: values['any-owner'] === true });
        try {
          for (let i = intOption('count', values.count, 1) ?? 1; i > 0; i--) s.post();
        } finally {
          await s.close();
        }
        return 0;
      }
      case 'wait': {
        const { values, positionals } = parse(rest, { timeout: { type: 'string' }, 'any-owner': { type: 'boolean' } });
        const timeout = intOption('timeout', values.timeout);
        const s = openSemaphore(requirePositional(positionals, 0, 'NAME'), { mode: 0o777, trustAnyOwner: values['any-owner'] === true });
        try {
          await s.wait(timeout !== undefined ? { timeout } : undefined);
        } finally {
          await s.close();
        }
        return 0;
      }
      case 'value': {
        const { positionals } = parse(rest, {});
        // Reading the value changes nothing: any owner is fine.
        const s = openSemaphore(requirePositional(positionals, 0, 'NAME'), { trustAnyOwner: true });
        try {
          await write(`${s.value()}\n`);
        } finally {
          await s.close();
        }
        return 0;
      }
      case 'rm': {
        const { positionals } = parse(rest, {});
        unlinkSemaphore(requirePositional(positionals, 0, 'NAME'));
        return 0;
      }
      default:
        throw new UsageError(`unknown semaphore command ${JSON.stringify(verb ?? '')}: use create, post, wait, value or rm`);
    }
  },
};
