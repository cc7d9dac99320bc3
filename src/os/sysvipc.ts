/**
 * The System V IPC objects of this IPC namespace as the kernel lists them in
 * /proc/sysvipc/{msg,sem,shm}: one row per object, every column a number (the key too).
 */
import { readFileSync } from 'node:fs';

export type SysvTable = 'msg' | 'sem' | 'shm';

/** The rows of /proc/sysvipc/<table>, by column name (`key`, `shmid`, `perms`, `size`, `nattch`, ...). */
export function readSysvTable(table: SysvTable): Array<Record<string, number>> {
  let text: string;
  try {
    text = readFileSync(`/proc/sysvipc/${table}`, 'utf8');
  } catch {
    return [];
  }
  const [header, ...lines] = text.split('\n').filter((l) => l.trim() !== '');
  if (header === undefined) return [];
  const columns = header.trim().split(/\s+/);
  return lines.map((line) => {
    const cells = line.trim().split(/\s+/);
    const row: Record<string, number> = {};
    // `perms` is octal in the file; everything else decimal.
    columns.forEach((c, i) => (row[c] = c === 'perms' ? parseInt(cells[i] ?? '0', 8) : Number(cells[i])));
    return row;
  });
}
