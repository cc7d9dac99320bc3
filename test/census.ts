/**
 * What ipckit tests may leave behind, counted: named objects whose name contains
 * `ipckit-test` in /dev/shm (shared memory, `sem.` semaphores), in the mqueue
 * filesystem (when mounted), System V objects of the run (by key, or recorded), and
 * anything in the test runtime folder. The test runner takes a census before and after
 * the suite and fails on any difference.
 *
 * System V objects have keys, not names: every key a test uses is in its run's range,
 * `(sysvKeyTag(mark) << 16) | n` (uniqueKey() in helpers.ts hands them out), and an object
 * that no key finds (IPC_PRIVATE) is recorded by the test that made it (trackSysv) in the
 * file IPCKIT_TEST_SYSV_LOG names. Either kind still there at the end is a leak.
 */
import { appendFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { readSysvTable, type SysvTable } from '../src/os/sysvipc.js';

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

/** The upper 16 bits of this run's System V keys: a hash of the run's mark (never 0). */
export function sysvKeyTag(mark: string = TEST_MARK): number {
  let h = 0x811c9dc5;
  for (const c of Buffer.from(mark)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return ((h >>> 16) ^ (h & 0xffff)) || 1;
}

const ID_COLUMN: Record<SysvTable, string> = { msg: 'msqid', sem: 'semid', shm: 'shmid' };

/** Where tests record the System V objects no key finds (IPC_PRIVATE), one `kind id` a line. */
export const SYSV_LOG: string | undefined = process.env.IPCKIT_TEST_SYSV_LOG;

/** Records an object a test made that no key finds, so that the census can see it (no-op outside the runner). */
export function trackSysv(kind: SysvTable, id: number): void {
  if (SYSV_LOG) appendFileSync(SYSV_LOG, `${kind} ${id}\n`);
}

/** The run's System V objects that exist now: `sysv msg key 0x... id N`. */
export function sysvCensus(mark: string = TEST_MARK, log: string | undefined = SYSV_LOG): string[] {
  const tag = sysvKeyTag(mark);
  const recorded = new Set<string>();
  if (log && existsSync(log)) for (const line of readFileSync(log, 'utf8').split('\n')) if (line) recorded.add(line);
  const out: string[] = [];
  for (const kind of ['msg', 'sem', 'shm'] as const) {
    for (const row of readSysvTable(kind)) {
      const key = (row.key ?? 0) >>> 0;
      const id = row[ID_COLUMN[kind]]!;
      if ((key !== 0 && key >>> 16 === tag) || recorded.has(`${kind} ${id}`)) out.push(`sysv ${kind} key 0x${key.toString(16).padStart(8, '0')} id ${id}`);
    }
  }
  return out;
}

export function census(runtimeDir?: string, mark: string = TEST_MARK, log: string | undefined = SYSV_LOG): string[] {
  const mq = mqueueMount();
  const out = [
    ...list('/dev/shm', (n) => n.includes(mark)),
    ...(mq ? list(mq, (n) => n.includes(mark)) : []),
    ...sysvCensus(mark, log),
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
