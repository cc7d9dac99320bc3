#!/usr/bin/env node
/**
 * `ipckit <group> <command> [args] [flags]`. Each group's commands are declared in
 * cli/<group>.ts (see command.ts); help is printed from those declarations.
 */
import { readFileSync } from 'node:fs';
import { helpFor, runGroup, UsageError, type Group } from './command.js';
import { report } from './output.js';

/** Groups, in the order `ipckit help` lists them; each is loaded only when used. */
const GROUPS: Record<string, () => Promise<Group>> = {
  popen: async () => (await import('./popen.js')).group,
  fifo: async () => (await import('./fifo.js')).group,
  mqueue: async () => (await import('./mqueue.js')).group,
  semaphore: async () => (await import('./semaphore.js')).group,
  mutex: async () => (await import('./mutex.js')).group,
  pool: async () => (await import('./pool.js')).group,
  lock: async () => (await import('./lock.js')).group,
  sysv: async () => (await import('./sysv.js')).group,
  signal: async () => (await import('./signal.js')).group,
  shm: async () => (await import('./shm.js')).group,
  ring: async () => (await import('./ring.js')).group,
  socket: async () => (await import('./socket.js')).group,
  workqueue: async () => (await import('./workqueue.js')).group,
  nats: async () => (await import('./nats.js')).group,
  doctor: async () => (await import('./doctor.js')).group,
  ls: async () => (await import('./ls.js')).group,
  gc: async () => (await import('./gc.js')).group,
  bench: async () => (await import('./bench.js')).group,
};

const ALIASES: Record<string, string> = { mq: 'mqueue', sem: 'semaphore', sock: 'socket', wq: 'workqueue' };

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function overview(): Promise<string> {
  const lines = ['usage: ipckit <group> <command> [args] [flags]', '', 'groups:'];
  for (const [name, load] of Object.entries(GROUPS)) {
    const group = await load();
    lines.push(`  ${name.padEnd(10)}  ${group.summary}`);
  }
  lines.push(
    '',
    `aliases: ${Object.entries(ALIASES).map(([a, b]) => `${a} = ${b}`).join(', ')}`,
    'exit codes: 0 done, 1 failed (the message names the error code), 2 usage, 124 timed out',
    '',
    'run `ipckit help <group>` or `ipckit <group> --help` for a group\'s commands,',
    'and `ipckit <group> <command> --help` for one command\'s flags and an example',
  );
  return `${lines.join('\n')}\n`;
}

async function loadGroup(word: string): Promise<Group> {
  const load = GROUPS[ALIASES[word] ?? word];
  if (!load) throw new UsageError(`unknown group ${JSON.stringify(word)}: use ${Object.keys(GROUPS).join(', ')}`);
  return load();
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    process.stderr.write(await overview());
    return 2;
  }
  if (first === 'help' || first === '--help' || first === '-h') {
    if (rest[0] === undefined) {
      process.stdout.write(await overview());
      return 0;
    }
    process.stdout.write(helpFor(await loadGroup(rest[0]), rest.slice(1)));
    return 0;
  }
  if (first === '--version' || first === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  return runGroup(await loadGroup(first), rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.exitCode = report(e);
  },
);
