/** `ipckit doctor [--json]`: the kernel features, limits and hazards that make IPC fail here. */
import { diagnose, type Finding } from '../ops/doctor.js';
import { FLAGS, type Group } from './command.js';
import { write } from './output.js';

/** Findings whose value and use are bytes, shown in binary units. */
const BYTES = new Set(['/dev/shm', 'RLIMIT_MSGQUEUE', 'RLIMIT_MEMLOCK', 'kernel.shmmax', 'fs.mqueue.msgsize_max', 'kernel.msgmax', 'kernel.msgmnb', 'fs.pipe-max-size']);

export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

function shown(f: Finding, x: number | string | undefined): string {
  if (x === undefined) return '-';
  return typeof x === 'number' && BYTES.has(f.id) ? humanBytes(x) : String(x);
}

function section(title: string, findings: Finding[], withUse: boolean): string[] {
  const rows = findings.map((f) => [f.status, f.id, shown(f, f.value), ...(withUse ? [shown(f, f.use)] : []), f.detail]);
  const widths = rows[0]!.slice(0, -1).map((_, i) => Math.max(...rows.map((r) => r[i]!.length), i === 2 ? 5 : 0));
  const lines = [title];
  if (withUse) lines.push(`  ${''.padEnd(widths[0]!)}  ${''.padEnd(widths[1]!)}  ${'value'.padEnd(widths[2]!)}  in use`);
  findings.forEach((f, i) => {
    const r = rows[i]!;
    lines.push(`  ${r.slice(0, -1).map((c, j) => c.padEnd(widths[j]!)).join('  ')}  ${r[r.length - 1]}`);
    if (f.fix && f.status !== 'ok') lines.push(`  ${''.padEnd(widths[0]!)}  fix: ${f.fix}`);
  });
  return lines;
}

export const group: Group = {
  name: 'doctor',
  summary: 'Check this host: kernel features, every limit that bounds IPC, and hazards, each with its fix.',
  single: true,
  commands: [
    {
      verb: 'doctor',
      args: '',
      summary: 'check the kernel features ipckit uses, every limit that bounds IPC (value, use, how to raise it) and known hazards',
      details: 'Exits 0 when nothing is wrong, 1 when something is (each problem is shown with its fix).\nNothing is changed.',
      flags: { json: FLAGS.json },
      examples: ['ipckit doctor', 'ipckit doctor --json | jq \'.limits[] | select(.status != "ok")\''],
      async run({ flags }) {
        const d = await diagnose();
        if (flags.json) await write(`${JSON.stringify(d, null, 2)}\n`);
        else {
          const lines = [
            `ipckit doctor: Linux ${d.kernel}, Node ${d.node}, uid ${d.uid}`,
            '',
            ...section('Kernel features', d.features, false),
            '',
            ...section('Limits', d.limits, true),
            '',
            ...section('Hazards', d.hazards, false),
            '',
            d.problems === 0 ? `no problems${d.warnings ? `, ${d.warnings} warning${d.warnings === 1 ? '' : 's'}` : ''}` : `${d.problems} problem${d.problems === 1 ? '' : 's'}${d.warnings ? `, ${d.warnings} warning${d.warnings === 1 ? '' : 's'}` : ''}`,
          ];
          await write(`${lines.join('\n')}\n`);
        }
        return d.problems === 0 ? 0 : 1;
      },
    },
  ],
};
