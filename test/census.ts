/**
 * What ipckit tests may leave behind, counted: named objects whose name contains
 * `ipckit-test` in /dev/shm (shared memory, `sem.` semaphores), in the mqueue
 * filesystem (when mounted), and anything in the test runtime folder. The test runner
 * takes a census before and after the suite and fails on any difference.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/**
 * The mark in every name a test makes: `ipckit-test`, plus the run's own tag when the
 * runner sets IPCKIT_TEST_MARK, so that two suites running at once on one host (two
 * checkouts) do not count each other's objects.
 */
export const TEST_MARK: string = process.env.IPCKIT_TEST_MARK ?? 'ipckit-test';

function list(dir: string, filter: (name: string) => boolean): string[] {
  try {
    return readdirSync(dir)
      .filter(filter)
      .map((n) => `${dir}/${n}`);
  } catch {
    return [];
  }
}

/** Where the mqueue filesystem is mounted, if it is. */
export function mqueueMount(): string | undefined {
  try {
    for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
      const [, mountPoint, type] = line.split(' ');
      if (type === 'mqueue' && mountPoint) return mountPoint;
    }
  } catch {
    /* no /proc */
  }
  return undefined;
}

export function census(runtimeDir?: string, mark: string = TEST_MARK): string[] {
  const mq = mqueueMount();
  const out = [
    ...list('/dev/shm', (n) => n.includes(mark)),
    ...(mq ? list(mq, (n) => n.includes(mark)) : []),
  ];
  if (runtimeDir && existsSync(runtimeDir)) out.push(...list(runtimeDir, () => true));
  return out.sort();
}

/** Live processes whose parent is `pid` (zombies included, marked). */
export function childrenOf(pid: number): string[] {
  const out: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const afterComm = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const state = afterComm[0];
      const ppid = Number(afterComm[1]);
      if (ppid !== pid) continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim();
      out.push(`${entry}${state === 'Z' ? ' (zombie)' : ''} ${cmd}`);
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}
