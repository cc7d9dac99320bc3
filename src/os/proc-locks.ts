/**
 * The file locks the kernel holds, as /proc/locks lists them: classic record locks
 * (POSIX, with the holder's pid), open-file-description locks (OFDLCK, pid -1: the kernel
 * does not say whose) and flock(2) locks (FLOCK, the pid of the process that took it).
 */
import { readFileSync, statSync } from 'node:fs';

export interface KernelLock {
  kind: 'posix' | 'ofd' | 'flock' | 'lease' | 'other';
  shared: boolean;
  /** undefined for OFD locks (the kernel shows -1). */
  pid: number | undefined;
  start: number;
  /** Bytes locked, or undefined for "to the end of the file". */
  length: number | undefined;
  /** A process waiting for this lock (the `->` lines), not holding it. */
  waiting: boolean;
}

const KINDS: Record<string, KernelLock['kind']> = { POSIX: 'posix', OFDLCK: 'ofd', FLOCK: 'flock', LEASE: 'lease' };

/** `fe:00` (hex major:minor, as /proc/locks writes a device) of a stat's dev. */
function deviceText(dev: number): string {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}`;
}

/** The locks on the file at `path` (followed if a symlink), holders first. */
export function locksOn(path: string): KernelLock[] {
  const st = statSync(path);
  const id = `${deviceText(st.dev)}:${st.ino}`;
  let text: string;
  try {
    text = readFileSync('/proc/locks', 'utf8');
  } catch {
    return [];
  }
  const out: KernelLock[] = [];
  for (const line of text.split('\n')) {
    // "3: POSIX  ADVISORY  WRITE 26818 fe:00:2146397 5 14", waiters: "3: -> POSIX ..."
    const m = /^\d+:\s+(->\s+)?(\S+)\s+\S+\s+(\S+)\s+(-?\d+)\s+(\S+)\s+(\d+)\s+(\S+)/.exec(line);
    if (!m || m[5] !== id) continue;
    const start = Number(m[6]);
    out.push({
      kind: KINDS[m[2]!] ?? 'other',
      shared: m[3] === 'READ',
      pid: m[4] === '-1' ? undefined : Number(m[4]),
      start,
      length: m[7] === 'EOF' ? undefined : Number(m[7]) - start + 1,
      waiting: m[1] !== undefined,
    });
  }
  return out.sort((a, b) => Number(a.waiting) - Number(b.waiting));
}
