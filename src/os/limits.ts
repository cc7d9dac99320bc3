/**
 * Reading the kernel's limits: sysctls under /proc/sys and this process's rlimits. The
 * mechanisms use them to name the limit an error hit; `ipckit doctor` lists them all.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

/**
 * Where sysctls are read: /proc files report size 0, so readFileSync gave each read a fresh
 * 64 KiB buffer, and a queue's create read several (RSS +25 MB over 100,000 System V
 * queues made and closed, scripts/leak-cycles.ts). The values we read are a few bytes.
 */
const sysctlBuffer = Buffer.allocUnsafe(4096);

/** A sysctl by its dotted name (`fs.mqueue.msg_max`) as text, or undefined when unreadable. */
export function readSysctl(name: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(`/proc/sys/${name.replace(/\./g, '/')}`, 'r');
  } catch {
    return undefined;
  }
  try {
    let n = 0;
    for (;;) {
      const got = readSync(fd, sysctlBuffer, n, sysctlBuffer.length - n, null);
      if (got === 0) return sysctlBuffer.toString('utf8', 0, n).trim();
      n += got;
      // Longer than any sysctl we read: the rest as readFileSync reads it.
      if (n === sysctlBuffer.length) return (sysctlBuffer.toString('utf8') + readFileSync(fd, 'utf8')).trim();
    }
  } catch {
    return undefined;
  } finally {
    try {
      closeSync(fd);
    } catch {
      /* Linux releases the descriptor even when close reports an error */
    }
  }
}

/** A numeric sysctl, or `fallback` when it cannot be read. */
export function sysctlNumber(name: string, fallback: number): number {
  const text = readSysctl(name);
  const n = Number(text);
  return text === undefined || text === '' || !Number.isFinite(n) ? fallback : n;
}

export interface Rlimit {
  soft: number;
  hard: number;
}

/** Names of the rlimits as /proc/self/limits lists them. */
export const RLIMITS = {
  RLIMIT_NOFILE: 'Max open files',
  RLIMIT_MSGQUEUE: 'Max msgqueue size',
  RLIMIT_MEMLOCK: 'Max locked memory',
  RLIMIT_SIGPENDING: 'Max pending signals',
} as const;

/** An rlimit of this process (Infinity when unlimited, or when /proc cannot tell). */
export function readRlimit(which: keyof typeof RLIMITS): Rlimit {
  const name = RLIMITS[which];
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(name));
    const [soft, hard] = (line?.slice(name.length).trim().split(/\s+/) ?? []).map((v) => (v === 'unlimited' ? Infinity : Number(v)));
    return { soft: soft ?? Infinity, hard: hard ?? Infinity };
  } catch {
    return { soft: Infinity, hard: Infinity };
  }
}
