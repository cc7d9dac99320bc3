#!/usr/bin/env node
/**
 * `ipckit <mechanism> <verb> [args] [--options]`. Each mechanism's commands live in
 * cli/<mechanism>.ts; aliases map short names to them.
 */
import { readFileSync } from 'node:fs';
import { report, UsageError, type CliGroup } from './common.js';

const GROUPS: Record<string, () => Promise<CliGroup>> = {
  fifo: async () => (await import('./fifo.js')).group,
  popen: async () => (await import('./popen.js')).group,
  mqueue: async () => (await import('./mqueue.js')).group,
  semaphore: async () => (await import('./semaphore.js')).group,
  mutex: async () => (await import('./mutex.js')).group,
  shm: async () => (await import('./shm.js')).group,
  ring: async () => (await import('./ring.js')).group,
  socket: async () => (await import('./socket.js')).group,
  signal: async () => (await import('./signal.js')).group,
  bench: async () => (await import('./bench.js')).group,
};

const ALIASES: Record<string, string> = { mq: 'mqueue', sem: 'semaphore', sock: 'socket' };

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function help(): Promise<void> {
  const lines = ['usage: ipckit <mechanism> <verb> [args] [--options]', ''];
  for (const [name, load] of Object.entries(GROUPS)) {
    const group = await load();
    if (group.usage) lines.push(group.usage.trimEnd(), '');
  }
  lines.push(`aliases: ${Object.entries(ALIASES).map(([a, b]) => `${a} = ${b}`).join(', ')}`);
  lines.push('exit codes: 0 done, 1 failed (the message names the error code), 2 usage, 124 timed out');
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === 'help' || first === '--help' || first === '-h') {
    await help();
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const name = ALIASES[first] ?? first;
  const load = GROUPS[name];
  if (!load) throw new UsageError(`unknown command ${JSON.stringify(first)}`);
  return (await load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.exitCode = report(e);
  },
);
