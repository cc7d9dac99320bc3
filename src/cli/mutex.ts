/** `ipckit mutex create|run|info|rm`: the robust cross-process mutex, e.g. to serialize scripts. */
import { constants as osConstants } from 'node:os';
import { startChild } from '../os/child.js';
import { createMutex, openMutex, unlinkMutex } from '../mechanisms/mutex/mutex.js';
import { intOption, modeOption, parse, requirePositional, UsageError, write, type CliGroup } from './common.js';

export const group: CliGroup = {
  usage: `mutex create NAME [--mode 600]           create a robust cross-process mutex (exclusive; owner-only unless --mode)
mutex run NAME [--timeout MS] [--any-owner] -- COMMAND [ARGS...]
                                          run COMMAND holding the lock (like flock(1)); exit with its status.
                                          COMMAND is killed if ipckit dies (the lock is no longer held for it).
                                          If the last holder died, says so on stderr and runs COMMAND anyway
mutex info NAME [--json]                  free, locked, owner-died or unrecoverable (looked at without locking)
mutex rm NAME                             remove the mutex's name`,
  async run(argv) {
    const [verb, ...rest] = argv;
    switch (verb) {
      case 'create': {
        const { values, positionals } = parse(rest, { mode: { type: 'string' } });
        const m = createMutex(requirePositional(positionals, 0, 'NAME'), { mode: modeOption(values.mode) ?? 0o600 });
        await m.close();
        process.stdout.write(`${m.name}\n`);
        return 0;
      }
      case 'run': {
        const { values, positionals } = parse(rest, { timeout: { type: 'string' }, 'any-owner': { type: 'boolean' } });
        const name = requirePositional(positionals, 0, 'NAME');
        const command = positionals.slice(1);
        if (command.length === 0) throw new UsageError('missing COMMAND (put it after --)');
        const timeout = intOption('timeout', values.timeout);
        const m = await openMutex(name, { mode: 0o777, trustAnyOwner: values['any-owner'] === true });
        try {
          const r = await m.lock(timeout !== undefined ? { timeout } : undefined);
          if (r.ownerDied) {
            // A command run under the lock is its own repair: mark it consistent.
            process.stderr.write(`ipckit: the previous holder of mutex ${name} died while holding it; running the command anyway\n`);
            m.markConsistent();
          }
          // The command dies with us: the lock is held for it only as long as we live (the
          // next holder then hears ownerDied), so it must not run on unprotected.
          let started;
          try {
            started = startChild(command, 'inherit', { dieWithParent: true });
          } catch (e) {
            process.stderr.write(`ipckit: cannot run ${command[0]}: ${(e as Error).message}\n`);
            return 127;
          }
          const exit = await started.exited.catch(() => ({ exitCode: 127, signal: null }));
          m.unlock();
          return exit.exitCode ?? 128 + (exit.signal ? (osConstants.signals[exit.signal] ?? 0) : 0);
        } finally {
          await m.close();
        }
      }
      case 'info': {
        const { values, positionals } = parse(rest, { json: { type: 'boolean' } });
        // A look without locking: any owner is fine.
        const m = await openMutex(requirePositional(positionals, 0, 'NAME'), { trustAnyOwner: true });
        let state: string;
        try {
          state = m.state();
        } finally {
          await m.close();
        }
        if (values.json) await write(`${JSON.stringify({ name: m.name, state })}\n`);
        else await write(`${m.name}: ${state}\n`);
        return 0;
      }
      case 'rm': {
        const { positionals } = parse(rest, {});
        unlinkMutex(requirePositional(positionals, 0, 'NAME'));
        return 0;
      }
      default:
        throw new UsageError(`unknown mutex command ${JSON.stringify(verb ?? '')}: use create, run, info or rm`);
    }
  },
};
