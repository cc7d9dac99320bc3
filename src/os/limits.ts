/**
 * Reading the kernel's limits: sysctls under /proc/sys and this process's rlimits. The
 * mechanisms use them to name the limit an error hit; `ipckit doctor` lists them all.
 */
import { readFileSync } from 'node:fs';

/** A sysctl by its dotted name (`fs.mqueue.msg_max`) as text, or undefined when unreadable. */
export function readSysctl(name: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${name.replace(/\./g, '/')}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** A numeric sysctl, or `fallback` when it cannot be read. */
export function sysctlNumber(name: string, fallback: number): number {
  const n = Number(readSysctl(name));
  return readSysctl(name) === undefined || !Number.isFinite(n) ? fallback : n;
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
