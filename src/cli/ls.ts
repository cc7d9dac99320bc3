/** `ipckit ls [PATH...]`: every IPC object of this host the caller can see, who holds it, and whether it is abandoned. */
import { readFileSync } from 'node:fs';
import { INVENTORY_KINDS, listObjectsDetailed, type InventoryKind, type IpcObject, type ListOptions } from '../ops/inventory.js';
import { UsageError, type Group } from './command.js';
import { humanBytes } from './doctor.js';
import { note, write } from './output.js';

/** uid -> user name, from /etc/passwd (numbers when it cannot be read). */
function users(): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , uid] = line.split(':');
      if (name && uid !== undefined && /^\d+$/.test(uid)) out.set(Number(uid), name);
    }
  } catch {
    /* numbers only */
  }
  return out;
}

/** `--owner 1000` or `--owner alice`. */
function ownerUid(text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  for (const [uid, name] of users()) if (name === text) return uid;
  throw new UsageError(`--owner ${JSON.stringify(text)}: no such user (give a uid or a user name)`, 'ipckit ls');
}

function displayName(o: IpcObject): string {
  return o.name ?? `key 0x${(o.key ?? 0).toString(16).padStart(8, '0')} id ${o.id}`;
}

function madeBy(o: IpcObject): string {
  return `${o.madeBy}${o.layoutVersion !== undefined && !o.madeBy.startsWith('ipckit') ? ` v${o.layoutVersion}` : ''}${o.persistent ? ' (persistent)' : ''}`;
}

/** Messages or bytes held now, and rates since the last frame (watch). */
function load(o: IpcObject, before: IpcObject | undefined, seconds: number): string {
  const parts: string[] = [];
  if (o.messages !== undefined) parts.push(`${o.messages} msg`);
  if (o.bytesInUse !== undefined && o.kind !== 'mqueue' && o.kind !== 'sysv-msg') parts.push(`${humanBytes(o.bytesInUse)} used`);
  else if (o.bytesInUse !== undefined && o.messages === undefined) parts.push(`${humanBytes(o.bytesInUse)} queued`);
  if (before && seconds > 0) {
    const put = o.counters?.put;
    const was = before.counters?.put;
    if (put !== undefined && was !== undefined) parts.push(`${(((put - was) >>> 0) / seconds).toFixed(1)} put/s`);
    else if (o.messages !== undefined && before.messages !== undefined && o.messages !== before.messages) parts.push(`${((o.messages - before.messages) / seconds).toFixed(1)} msg/s`);
    if (o.bytesInUse !== undefined && before.bytesInUse !== undefined && o.bytesInUse !== before.bytesInUse) parts.push(`${(o.bytesInUse - before.bytesInUse) >= 0 ? '+' : '-'}${humanBytes(Math.abs(o.bytesInUse - before.bytesInUse) / seconds)}/s`);
  }
  return parts.join(', ') || '-';
}

function table(objects: IpcObject[], previous: Map<string, IpcObject> | undefined, seconds: number): string {
  const names = users();
  const head = ['KIND', 'NAME', 'OWNER', 'MODE', 'SIZE', 'IN USE', 'MADE BY', 'STATE', 'HOLDERS'];
  const rows = objects.map((o) => [
    o.kind,
    displayName(o),
    o.perm ? names.get(o.perm.uid) ?? String(o.perm.uid) : '-',
    o.perm ? o.perm.mode.toString(8).padStart(3, '0') : '-',
    o.size === undefined ? '-' : o.kind === 'sysv-sem' ? `${o.size} sem` : humanBytes(o.size),
    load(o, previous?.get(o.ref), seconds),
    madeBy(o),
    o.state,
    o.holders.length ? o.holders.map((h) => h.pid).join(',') : o.sysv?.nattch ? `${o.sysv.nattch} attached` : '-',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  const out = [line(head)];
  objects.forEach((o, i) => {
    out.push(line(rows[i]!));
    if (o.state !== 'live' && o.madeBy !== 'foreign') out.push(`  ${o.state === 'abandoned' ? '' : '? '}${o.reason}`);
  });
  if (objects.length === 0) out.push('(no IPC objects)');
  return `${out.join('\n')}\n`;
}

function optionsOf(args: string[], flags: Record<string, unknown>): ListOptions {
  const options: ListOptions = { paths: args };
  if (flags.kind !== undefined) options.kind = flags.kind as InventoryKind[];
  if (flags.owner !== undefined) options.owner = ownerUid(flags.owner as string);
  if (flags.abandoned === true) options.abandoned = true;
  return options;
}

async function watch(options: ListOptions, seconds: number): Promise<number> {
  const tty = process.stdout.isTTY === true;
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const onSigint = (): void => stop();
  process.on('SIGINT', onSigint);
  let previous: Map<string, IpcObject> | undefined;
  let last = performance.now();
  try {
    for (;;) {
      const { objects, notes } = await listObjectsDetailed(options);
      const now = performance.now();
      const frame = `ipckit ls: ${new Date().toISOString()}, every ${seconds} s (Ctrl-C stops)\n\n${table(objects, previous, (now - last) / 1000)}${notes.map((n) => `note: ${n}\n`).join('')}`;
      await write(tty ? `\x1b[H\x1b[2J${frame}` : `${frame}\n`);
      previous = new Map(objects.map((o) => [o.ref, o]));
      last = now;
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<'tick'>((resolve) => (timer = setTimeout(() => resolve('tick'), seconds * 1000)));
      const why = await Promise.race([tick, stopped.then(() => 'stop' as const)]);
      clearTimeout(timer);
      if (why === 'stop') return 0;
    }
  } finally {
    process.off('SIGINT', onSigint);
  }
}

export const group: Group = {
  name: 'ls',
  summary: 'List every IPC object on this host: kind, owner, size, what ipckit made it as, who holds it, live or abandoned.',
  single: true,
  commands: [
    {
      verb: 'ls',
      args: '[PATH...]',
      summary: 'list every IPC object this user can see: POSIX shared memory, semaphores and queues, System V objects, FIFOs and Unix sockets',
      details: [
        'FIFOs and socket files are looked for in ipckit\'s runtime folder and in each PATH (a file, or a folder\'s entries).',
        'STATE: live (held or in use), abandoned (made by ipckit; its creator and every participant are dead and nobody',
        'has it open or mapped: `ipckit gc` removes it), unknown (the reason is shown under the row).',
        'What could not be looked at (other users\' processes, an unmounted mqueue filesystem) is said after the table.',
      ].join('\n'),
      flags: {
        json: { kind: 'boolean', help: 'one JSON array of objects (notes on stderr)' },
        kind: { kind: 'string', value: 'KIND', multiple: true, choices: INVENTORY_KINDS, help: `only this kind (again for more): ${INVENTORY_KINDS.join(', ')}` },
        owner: { kind: 'string', value: 'USER', help: 'only objects owned by this user (name or uid)' },
        abandoned: { kind: 'boolean', help: 'only abandoned objects (what `ipckit gc` would remove, persistent ones aside)' },
        watch: { kind: 'int', value: 'SECONDS', min: 1, max: 3600, bare: '2', help: 'redraw every SECONDS (default 2) with messages, bytes in use and rates, until Ctrl-C' },
      },
      examples: ['ipckit ls', 'ipckit ls --abandoned --json', 'ipckit ls --kind shm --kind mqueue --watch 1', 'ipckit ls /run/myapp'],
      async run({ args, flags }) {
        const options = optionsOf(args, flags);
        if (flags.watch !== undefined) {
          if (flags.json) throw new UsageError('--watch draws a table: it does not go with --json', 'ipckit ls');
          return watch(options, flags.watch as number);
        }
        const { objects, notes } = await listObjectsDetailed(options);
        if (flags.json) {
          await write(`${JSON.stringify(objects, null, 2)}\n`);
          for (const n of notes) note(n);
        } else await write(`${table(objects, undefined, 0)}${notes.map((n) => `note: ${n}\n`).join('')}`);
        return 0;
      },
    },
  ],
};
