/**
 * The kernel's System V limits (sysctls of the IPC namespace), read when an error needs
 * them, and the ERR_IPCKIT_LIMIT that names the one hit, its value and the sysctl that
 * raises it (as the POSIX message queue does for fs.mqueue.msg_max).
 */
import { IpcError, type IpcErrorCode, type IpcErrorOptions } from '../../core/errors.js';
import { readSysctl, sysctlNumber } from '../../os/limits.js';

export interface SysvLimits {
  /** Largest message, bytes (kernel.msgmax). */
  msgmax: number;
  /** Default byte capacity of a new queue; above it, setting msg_qbytes needs CAP_SYS_RESOURCE (kernel.msgmnb). */
  msgmnb: number;
  /** Most message queues (kernel.msgmni). */
  msgmni: number;
  /** kernel.sem: most semaphores in one set (SEMMSL), in all sets (SEMMNS), operations in one semop (SEMOPM), sets (SEMMNI). */
  semmsl: number;
  semmns: number;
  semopm: number;
  semmni: number;
  /** Largest semaphore value (SEMVMX, fixed: 32767). */
  semvmx: number;
  /** Largest segment, bytes (kernel.shmmax). */
  shmmax: number;
  /** Pages all segments may take together (kernel.shmall). */
  shmall: number;
  /** Most segments (kernel.shmmni). */
  shmmni: number;
}

/** kernel.msgmax now: the largest message, and a queue handle's default maxMessageBytes (one read, where sysvLimits makes ten). */
export function sysvMsgmax(): number {
  return sysctlNumber('kernel.msgmax', 8192);
}

/** The limits that apply now in this IPC namespace (the kernel's defaults where unreadable). */
export function sysvLimits(): SysvLimits {
  const sem = (readSysctl('kernel.sem') ?? '').split(/\s+/).map(Number);
  const at = (i: number, fallback: number): number => (Number.isFinite(sem[i]) && sem.length === 4 ? sem[i]! : fallback);
  return {
    msgmax: sysctlNumber('kernel.msgmax', 8192),
    msgmnb: sysctlNumber('kernel.msgmnb', 16384),
    msgmni: sysctlNumber('kernel.msgmni', 32000),
    semmsl: at(0, 32000),
    semmns: at(1, 1024000000),
    semopm: at(2, 500),
    semmni: at(3, 32000),
    semvmx: 32767,
    shmmax: sysctlNumber('kernel.shmmax', 2 ** 53),
    shmall: sysctlNumber('kernel.shmall', 2 ** 53),
    shmmni: sysctlNumber('kernel.shmmni', 4096),
  };
}

/** How each limit is raised, for the message. */
const RAISE: Record<string, string> = {
  'kernel.msgmax': 'raise it (root: sysctl -w kernel.msgmax=N)',
  'kernel.msgmnb': 'raise it (root: sysctl -w kernel.msgmnb=N), or give the process CAP_SYS_RESOURCE',
  'kernel.msgmni': 'remove unused queues (ipcs -q, ipcrm) or raise it (root: sysctl -w kernel.msgmni=N)',
  'kernel.sem SEMMSL': 'raise the first field of kernel.sem (root: sysctl -w kernel.sem="SEMMSL SEMMNS SEMOPM SEMMNI")',
  'kernel.sem SEMMNS': 'remove unused sets (ipcs -s, ipcrm) or raise the second field of kernel.sem',
  'kernel.sem SEMOPM': 'split the operations, or raise the third field of kernel.sem',
  'kernel.sem SEMMNI': 'remove unused sets (ipcs -s, ipcrm) or raise the fourth field of kernel.sem',
  SEMVMX: 'it is fixed in the kernel: keep values at most 32767',
  'kernel.shmmax': 'raise it (root: sysctl -w kernel.shmmax=N)',
  'kernel.shmall': 'remove unused segments (ipcs -m, ipcrm) or raise it (root: sysctl -w kernel.shmall=PAGES)',
  'kernel.shmmni': 'remove unused segments (ipcs -m, ipcrm) or raise it (root: sysctl -w kernel.shmmni=N)',
};

/**
 * The error for a limit hit: "<what> <how it went over> <limit> = <value>; <how to raise it>",
 * with `details.limit` (the sysctl, or SEMVMX) and `details.value`.
 */
export function limitError(limit: keyof typeof RAISE | string, value: number, reason: string, options: IpcErrorOptions & { code?: IpcErrorCode } = {}): IpcError {
  const { code = 'ERR_IPCKIT_LIMIT', details, ...rest } = options;
  return new IpcError(code, `${reason} ${limit} = ${value}; ${RAISE[limit] ?? 'raise it'}`, { ...rest, details: { limit, value, ...details } });
}
