/** `ipckit mutex create|run|info|rm`: the robust cross-process mutex, e.g. to serialize scripts. */
import { createMutex, openMutex, unlinkMutex } from '../mechanisms/mutex/mutex.js';
import { runWhileHeld } from './run-held.js';
import { FLAGS, OWNER_FLAGS, type Group } from './command.js';
import { ownerCheck } from './mqueue.js';
import { note, printResult, withWaitingNote } from './output.js';
import { removeNamed } from './remove.js';

export const group: Group = {
  name: 'mutex',
  summary: 'The robust cross-process mutex: a lock whose holder\'s death is reported to the next holder.',
  commands: [
    {
      verb: 'create',
      args: 'NAME',
      summary: 'create a mutex (exclusive; owner-only unless --mode; persistent: ipckit gc keeps it)',
      flags: { mode: FLAGS.createMode },
      examples: ['ipckit mutex create /deploy'],
      async run({ args, flags }) {
        const m = createMutex(args[0]!, { mode: (flags.mode as number | undefined) ?? 0o600, persistent: true }); // outlives this command: ipckit gc keeps it
        await m.close();
        await printResult(false, undefined, m.name);
        return 0;
      },
    },
    {
      verb: 'run',
      args: 'NAME',
      takesCommand: true,
      summary: 'run COMMAND holding the lock (like flock(1)) and exit with its status',
      details: 'COMMAND is killed if ipckit dies (the lock is no longer held for it). If the last holder died\nholding the lock, says so on stderr and runs COMMAND anyway.',
      flags: { timeout: FLAGS.timeout, quiet: FLAGS.quiet, ...OWNER_FLAGS },
      examples: ['ipckit mutex run /deploy --timeout 60000 -- ./deploy.sh'],
      async run({ args, flags, rest: command }) {
        const name = args[0]!;
        const timeout = flags.timeout as number | undefined;
        const m = await openMutex(name, ownerCheck(flags));
        try {
          const r = await withWaitingNote(`waiting for mutex ${name}…`, flags.quiet === true, () => m.lock(timeout !== undefined ? { timeout } : undefined));
          if (r.ownerDied) {
            // A command run under the lock is its own repair: mark it consistent.
            note(`the previous holder of mutex ${name} died while holding it; running the command anyway`);
            m.markConsistent();
          }
          // If we die holding it, the next holder hears ownerDied.
          const status = await runWhileHeld(command);
          m.unlock();
          return status;
        } finally {
          await m.close();
        }
      },
    },
    {
      verb: 'info',
      args: 'NAME',
      summary: 'free, locked, owner-died or unrecoverable (looked at without locking)',
      flags: { json: FLAGS.json },
      examples: ['ipckit mutex info /deploy --json'],
      async run({ args, flags }) {
        // A look without locking: any owner is fine.
        const m = await openMutex(args[0]!, { anyOwner: true });
        let state: string;
        try {
          state = m.state();
        } finally {
          await m.close();
        }
        await printResult(flags.json === true, { name: m.name, state }, `${m.name}: ${state}`);
        return 0;
      },
    },
    {
      verb: 'rm',
      args: 'NAME',
      summary: 'remove the mutex\'s name (refuses any other kind of object)',
      flags: { force: FLAGS.force },
      examples: ['ipckit mutex rm /deploy'],
      async run({ args, flags }) {
        return removeNamed('mutex', args[0]!, flags.force === true, unlinkMutex);
      },
    },
  ],
};
