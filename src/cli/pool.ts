/**
 * `ipckit pool create|run|info|rm`: the bounded pool (at most N holders at once across
 * processes; a dead holder's permit comes back), e.g. to cap how many scripts run at once.
 */
import { createBoundedPool, openBoundedPool, unlinkBoundedPool } from '../mechanisms/pool/pool.js';
import { runWhileHeld } from './run-held.js';
import { FLAGS, OWNER_FLAGS, UsageError, type Group } from './command.js';
import { ownerCheck } from './mqueue.js';
import { printResult, withWaitingNote } from './output.js';
import { removeNamed } from './remove.js';

export const group: Group = {
  name: 'pool',
  summary: 'The bounded pool: at most N holders at once across processes; a dead holder\'s permit comes back.',
  commands: [
    {
      verb: 'create',
      args: 'NAME',
      summary: 'create a pool of --permits permits, all free (exclusive; owner-only unless --mode); it outlives this command',
      flags: {
        permits: { kind: 'int', value: 'N', min: 1, max: 65536, help: 'how many holders at once (required)' },
        mode: FLAGS.createMode,
      },
      examples: ['ipckit pool create /encoders --permits 2'],
      async run({ args, flags }) {
        if (flags.permits === undefined) throw new UsageError('--permits N is required: how many holders at once', 'ipckit pool create');
        const pool = createBoundedPool(args[0]!, { permits: flags.permits as number, persistent: true, mode: (flags.mode as number | undefined) ?? 0o600 });
        await pool.close();
        await printResult(false, undefined, pool.name);
        return 0;
      },
    },
    {
      verb: 'run',
      args: 'NAME',
      takesCommand: true,
      summary: 'run COMMAND holding a permit and exit with its status (at most N such commands at once)',
      details: 'COMMAND is killed if ipckit dies: its permit then comes back to the pool for the next waiter.',
      flags: { timeout: FLAGS.timeout, quiet: FLAGS.quiet, ...OWNER_FLAGS },
      examples: ['ipckit pool run /encoders --timeout 60000 -- ffmpeg -i in.mov out.mp4'],
      async run({ args, flags, rest: command }) {
        const name = args[0]!;
        const timeout = flags.timeout as number | undefined;
        const pool = await openBoundedPool(name, ownerCheck(flags));
        try {
          const permit = await withWaitingNote(`waiting for a permit of pool ${name}…`, flags.quiet === true, () => pool.acquire(timeout !== undefined ? { timeout } : undefined));
          try {
            return await runWhileHeld(command);
          } finally {
            permit.release();
          }
        } finally {
          await pool.close();
        }
      },
    },
    {
      verb: 'info',
      args: 'NAME',
      summary: 'permits, how many are free, and who holds the others (alive or dead)',
      flags: { json: FLAGS.json },
      examples: ['ipckit pool info /encoders --json'],
      async run({ args, flags }) {
        // A look without taking anything: any owner is fine.
        const pool = await openBoundedPool(args[0]!, { anyOwner: true });
        try {
          const info = { name: pool.name, permits: pool.permits, available: pool.available(), holders: pool.holders() };
          await printResult(
            flags.json === true,
            info,
            [
              `${info.name}: ${info.available} of ${info.permits} permits free`,
              ...info.holders.map((h) => `  permit ${h.slot}: pid ${h.pid}${h.tid ? ` thread ${h.tid}` : ''}${h.alive ? '' : ' (dead: comes back at the next acquire)'}`),
            ].join('\n'),
          );
        } finally {
          await pool.close();
        }
        return 0;
      },
    },
    {
      verb: 'rm',
      args: 'NAME',
      summary: "remove the pool's name (refuses any other kind of object)",
      flags: { force: FLAGS.force },
      examples: ['ipckit pool rm /encoders'],
      async run({ args, flags }) {
        return removeNamed('pool', args[0]!, flags.force === true, unlinkBoundedPool);
      },
    },
  ],
};
