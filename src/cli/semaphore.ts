/** `ipckit semaphore create|post|wait|value|rm` (alias `sem`): POSIX named semaphores. */
import { createSemaphore, openSemaphore, SEM_VALUE_MAX, unlinkSemaphore } from '../mechanisms/semaphore/semaphore.js';
import { FLAGS, OWNER_FLAGS, type Group } from './command.js';
import { ownerCheck } from './mqueue.js';
import { printResult, withWaitingNote } from './output.js';
import { removeNamed } from './remove.js';

export const group: Group = {
  name: 'semaphore',
  aliases: ['sem'],
  summary: 'POSIX named semaphores (sem_*): counters of permits shared by name, as C and Python see them.',
  commands: [
    {
      verb: 'create',
      args: 'NAME',
      summary: 'create a semaphore (exclusive; owner-only unless --mode)',
      flags: { value: { kind: 'int', value: 'N', min: 0, max: SEM_VALUE_MAX, help: 'permits it starts with (default 0)' }, mode: FLAGS.createMode },
      examples: ['ipckit semaphore create /slots --value 4'],
      async run({ args, flags }) {
        const s = createSemaphore(args[0]!, { value: (flags.value as number | undefined) ?? 0, mode: (flags.mode as number | undefined) ?? 0o600 });
        await s.close();
        await printResult(false, undefined, s.name);
        return 0;
      },
    },
    {
      verb: 'post',
      args: 'NAME',
      summary: 'add permits (default 1)',
      flags: { count: { kind: 'int', value: 'N', min: 1, max: SEM_VALUE_MAX, help: 'how many permits to add (default 1)' }, ...OWNER_FLAGS },
      examples: ['ipckit semaphore post /slots --count 2'],
      async run({ args, flags }) {
        const s = await openSemaphore(args[0]!, ownerCheck(flags));
        try {
          for (let i = (flags.count as number | undefined) ?? 1; i > 0; i--) s.post();
        } finally {
          await s.close();
        }
        return 0;
      },
    },
    {
      verb: 'wait',
      args: 'NAME',
      summary: 'take a permit, waiting for one (exit 124 on --timeout)',
      flags: { timeout: FLAGS.timeout, quiet: FLAGS.quiet, ...OWNER_FLAGS },
      examples: ['ipckit semaphore wait /slots --timeout 5000'],
      async run({ args, flags }) {
        const name = args[0]!;
        const s = await openSemaphore(name, ownerCheck(flags));
        try {
          const timeout = flags.timeout as number | undefined;
          await withWaitingNote(`waiting for a permit of semaphore ${name}…`, flags.quiet === true, () => s.wait(timeout !== undefined ? { timeout } : undefined));
        } finally {
          await s.close();
        }
        return 0;
      },
    },
    {
      verb: 'value',
      args: 'NAME',
      summary: 'print the current value',
      flags: { json: FLAGS.json },
      examples: ['ipckit semaphore value /slots'],
      async run({ args, flags }) {
        // Reading the value changes nothing: any owner is fine.
        const s = await openSemaphore(args[0]!, { anyOwner: true });
        try {
          const value = s.value();
          await printResult(flags.json === true, { name: s.name, value }, String(value));
        } finally {
          await s.close();
        }
        return 0;
      },
    },
    {
      verb: 'rm',
      args: 'NAME',
      summary: 'remove the semaphore\'s name',
      flags: { force: FLAGS.force },
      examples: ['ipckit semaphore rm /slots'],
      async run({ args, flags }) {
        return removeNamed('semaphore', args[0]!, flags.force === true, unlinkSemaphore);
      },
    },
  ],
};
