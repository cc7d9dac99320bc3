/**
 * Is a process still alive, and the same process? The mechanisms that record a peer or an
 * owner (ring, work queue, pool, mutex) keep its pid *and* its start time, because pids are
 * reused: a record whose pid is alive but whose start time differs belongs to a dead
 * process. `watchProcess` waits for an exit through a pidfd, polled by the event loop: no
 * thread, no signal, no pid-reuse race.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { cancellableWait, type WaitOptions } from '../core/channel.js';
import { invalidArgument, IpcError, toIpcError } from '../core/errors.js';
import { native } from './native.js';
import { FdPoll } from './fd-stream.js';
import * as validate from '../core/validate.js';

/**
 * Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), or
 * undefined when there is no such process (or /proc does not show it: see isProcessAlive).
 */
export function processStartTime(pid: number): number | undefined {
  validate.integer('pid', pid, 1, 2 ** 31 - 1);
  const fields = procStat(pid);
  return fields === undefined ? undefined : startTimeOf(fields);
}

/**
 * The fields of /proc/<pid>/stat (a thread id works too) from field 3, the state, on: index
 * i is field i + 3. Undefined when there is no such process.
 */
export function procStat(pid: number): string[] | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** Field 22 of a process's stat fields (procStat); undefined for a process that has exited. */
function startTimeOf(fields: string[]): number | undefined {
  const state = fields[0];
  if (state === 'Z' || state === 'X') return undefined; // exited, not yet reaped
  const start = Number(fields[19]);
  return Number.isFinite(start) ? start : undefined;
}

/** Our own start time, computed once. */
export const selfStartTime: number = processStartTime(process.pid) ?? 0;

/**
 * This JS thread (main thread or worker): its thread id and its start time, in clock
 * ticks since boot. What the attach lock and the participant table of an ipckit object
 * record, so that a worker thread that was terminated, like a process that died, stops
 * looking alive (the main thread's id is the pid, its start time the process's).
 */
export const selfThreadId: number = native.gettid();
export const selfThreadStartTime: number = (selfThreadId === process.pid ? selfStartTime : startTimeOf(procStat(selfThreadId) ?? [])) ?? 0;

/**
 * True if `pid` runs and, when `startTime` is given, is the process that started then.
 * Any number is a fair question: one that is no pid (0, negative, fractional, too large)
 * is simply not alive, so values read from shared memory (untrusted) need no check first.
 * Anything but a number is a bad argument.
 */
export function isProcessAlive(pid: number, startTime?: number): boolean {
  if (typeof pid !== 'number') throw invalidArgument(`pid must be a number, got ${validate.describe(pid)}`);
  if (startTime !== undefined && typeof startTime !== 'number') throw invalidArgument(`startTime must be a number (clock ticks since boot), got ${validate.describe(startTime)}`);
  if (!Number.isInteger(pid) || pid <= 0 || pid > 2 ** 31 - 1) return false;
  const fields = procStat(pid);
  if (fields === undefined) return existsUnseen(pid);
  const st = startTimeOf(fields);
  if (st === undefined) return false;
  return startTime === undefined || startTime === st;
}

/**
 * True if thread `tid` runs and its start time, modulo 2^32, is `startLow32` (the attach
 * lock keeps only those bits). /proc/<tid>/stat describes any thread, not only a
 * process's main thread.
 */
export function isThreadAliveLow32(tid: number, startLow32: number): boolean {
  if (!Number.isInteger(tid) || tid <= 0) return false;
  const fields = procStat(tid);
  if (fields === undefined) return existsUnseen(tid);
  const st = startTimeOf(fields);
  return st !== undefined && st % 2 ** 32 === startLow32;
}

/**
 * /proc may not show a process that exists: mounted with hidepid, it hides other users'
 * processes. kill(pid, 0) still tells (EPERM: it exists and is not ours). Its start time
 * cannot be checked then, so it counts as alive: calling a live process dead would let
 * others take what it holds.
 */
function existsUnseen(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Settles when process `pid` exits (zombie or reaped). Uses pidfd_open, so a pid reused by
 * a new process after the exit cannot be confused with it. Rejects ERR_IPCKIT_NOT_FOUND if
 * no such process exists now; takes `timeout` and `signal` like every wait.
 */
export function watchProcess(pid: number, options?: WaitOptions): Promise<void> {
  validate.integer('pid', pid, 1, 2 ** 31 - 1);
  return cancellableWait<void>(`watch process ${pid}`, options, (resolve, reject) => {
    let fd: number;
    try {
      fd = native.pidfdOpen(pid);
    } catch (e) {
      const err = toIpcError(e, `watch process ${pid}`);
      if (err.systemCode === 'ESRCH') {
        reject(new IpcError('ERR_IPCKIT_NOT_FOUND', `no process ${pid} to watch`, { cause: err }));
        return;
      }
      if (err.systemCode === 'ENOSYS') {
        reject(new IpcError('ERR_IPCKIT_UNSUPPORTED', 'pidfd_open needs Linux 5.3 or later', { cause: err }));
        return;
      }
      reject(err);
      return;
    }
    const poll = new FdPoll(fd, true);
    const release = (): void => poll.close(); // and the pidfd with it
    // A pidfd becomes readable when the process exits.
    poll.want('read', () => {
      release();
      resolve();
    });
    return release;
  });
}



/**
 * Whether this process runs in a PID namespace other than the host's: then processes
 * outside it are not seen (or seen under other pids), and liveness checks across the
 * boundary are wrong. The host's namespace has a fixed inode (PROC_PID_INIT_INO); NSpid
 * alone would not tell inside a container that has a /proc of its own. Undefined when
 * /proc cannot tell.
 */
export function inOwnPidNamespace(): boolean | undefined {
  try {
    return readlinkSync('/proc/self/ns/pid') !== `pid:[${0xeffffffc}]`;
  } catch {
    return undefined;
  }
}
