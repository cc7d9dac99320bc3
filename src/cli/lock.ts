/** `ipckit lock PATH [flags] -- COMMAND` (like flock(1)) and `ipckit lock info PATH`. */
import { openFileLock, type LockRange } from '../mechanisms/lock/file-lock.js';
import { runWhileHeld } from './run-held.js';
import { locksOn } from '../os/proc-locks.js';
import { FLAGS, parseSize, UsageError, type Group } from './command.js';
import { printResult, withWaitingNote } from './output.js';

/** `START:LENGTH` with sizes like 4K; LENGTH 0 is to the end of the file. */
function parseRange(text: string): LockRange {
  const m = /^([^:]+):([^:]+)$/.exec(text);
  if (!m) throw new UsageError(`--range must be START:LENGTH, like 0:4K or 100:0 (0: to the end), got ${JSON.stringify(text)}`, 'ipckit lock');
  return { start: parseSize('--range START', m[1]!, 0), length: parseSize('--range LENGTH', m[2]!, 0) };
}

export const group: Group = {
  name: 'lock',
  summary: 'File locks (open-file-description locks, or flock): run a command holding one, or see who holds them.',
  defaultVerb: 'run',
  commands: [
    {
      verb: 'run',
      args: 'PATH',
      takesCommand: true,
      summary: 'run COMMAND holding a lock on PATH (like flock(1)) and exit with its status',
      details:
        'The lock is an OFD lock (seen by fcntl/lockf users: Python, SQLite, C), or a flock(2) lock with --flock\n' +
        '(seen by flock(1) users). COMMAND is killed if ipckit dies: the lock is not held for it any more.\n' +
        'Exit 124 if --timeout passes before the lock is free.',
      flags: {
        shared: { kind: 'boolean', help: 'a shared (read) lock; default exclusive' },
        range: { kind: 'string', value: 'START:LENGTH', help: 'lock these bytes only, e.g. 0:4K (LENGTH 0: to the end; OFD locks only)' },
        flock: { kind: 'boolean', help: 'a whole-file flock(2) lock, as flock(1) takes' },
        create: { kind: 'boolean', help: 'create PATH (mode 600) if it does not exist' },
        timeout: FLAGS.timeout,
        quiet: FLAGS.quiet,
      },
      examples: ['ipckit lock /var/lock/backup.lock --create --timeout 60000 -- ./backup.sh', 'ipckit lock data.db --range 0:100 --shared -- ./report.sh'],
      async run({ args, flags, rest: command }) {
        const path = args[0]!;
        const range = typeof flags.range === 'string' ? parseRange(flags.range) : undefined;
        if (range && flags.flock) throw new UsageError('--range needs an OFD lock: flock locks the whole file', 'ipckit lock');
        const lock = await openFileLock(path, { kind: flags.flock ? 'flock' : 'ofd', create: flags.create === true });
        try {
          const timeout = flags.timeout as number | undefined;
          const held = await withWaitingNote(`waiting for the lock on ${path}…`, flags.quiet === true, () =>
            lock.lock({ shared: flags.shared === true, ...(range ? { range } : {}), ...(timeout !== undefined ? { timeout } : {}) }),
          );
          const status = await runWhileHeld(command);
          held.release();
          return status;
        } finally {
          await lock.close();
        }
      },
    },
    {
      verb: 'info',
      args: 'PATH',
      summary: 'the locks the kernel holds on PATH (from /proc/locks): kind, shared or exclusive, range, holder pid',
      details: 'OFD locks show no pid: the kernel does not record which process holds one.',
      flags: { json: FLAGS.json },
      examples: ['ipckit lock info /var/lock/backup.lock --json'],
      async run({ args, flags }) {
        const locks = locksOn(args[0]!);
        await printResult(
          flags.json === true,
          locks,
          locks.length === 0
            ? `${args[0]}: no locks`
            : locks
                .map((l) => `${l.waiting ? 'waiting ' : ''}${l.kind.padEnd(5)} ${l.shared ? 'shared   ' : 'exclusive'} bytes ${l.start}${l.length === undefined ? '-end' : `+${l.length}`}  ${l.pid === undefined ? 'pid unknown (OFD lock)' : `pid ${l.pid}`}`)
                .join('\n'),
        );
        return 0;
      },
    },
  ],
};
