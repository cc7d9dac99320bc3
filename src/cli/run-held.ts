/**
 * What `ipckit lock|mutex|pool run` do once they hold what they waited for: run COMMAND
 * and answer its exit status as a shell would (127 when it cannot start, 128 + the signal
 * that killed it). The command dies with us: what we hold is held for it only as long as
 * we live, so it must not run on unprotected.
 */
import { constants as osConstants } from 'node:os';
import { startChild } from '../os/child.js';
import { note } from './output.js';

export async function runWhileHeld(command: string[]): Promise<number> {
  let started;
  try {
    started = startChild(command, 'inherit', { dieWithParent: true });
  } catch (e) {
    note(`cannot run ${command[0]}: ${(e as Error).message}`);
    return 127;
  }
  const exit = await started.exited.catch(() => ({ exitCode: 127, signal: null }));
  return exit.exitCode ?? 128 + (exit.signal ? (osConstants.signals[exit.signal as keyof typeof osConstants.signals] ?? 0) : 0);
}
