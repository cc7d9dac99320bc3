/** What the ls and gc tests share: peers that say when they are ready, and clean-up of everything a prefix names. */
import { readdirSync, rmSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { listObjects, type IpcObject } from '../../src/index.js';
import { join } from 'node:path';
import { fixturesDir, run, runFixture, sleep, type Run } from '../helpers.js';

/** Resolves once the process printed `marker` on stdout (rejects if it exits first). */
export function untilPrinted(child: ChildProcess, marker: string, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer): void => {
      text += d.toString();
      if (text.includes(marker)) {
        child.stdout!.off('data', onData);
        child.off('exit', onExit);
        resolve(text);
      }
    };
    const onExit = (code: number | null): void => reject(new Error(`${what} exited (${code}) before printing ${marker}: ${text}`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

/** Starts test/fixtures/ops-peer.js and waits for its {"ready":true}. */
export async function peer(args: string[], env: Record<string, string> = {}, prefixArgv: string[] = []): Promise<Run> {
  const r = prefixArgv.length ? runFixtureAs(prefixArgv, args, env) : runFixture('ops-peer', args, { env: { ...process.env, ...env }, timeoutMs: 120_000 });
  await untilPrinted(r.child, '"ready":true', `ops-peer ${args.join(' ')}`);
  return r;
}

function runFixtureAs(prefixArgv: string[], args: string[], env: Record<string, string>): Run {
  return run(prefixArgv[0]!, [...prefixArgv.slice(1), process.execPath, join(fixturesDir, 'ops-peer.js'), ...args], { env: { ...process.env, ...env }, timeoutMs: 120_000 });
}

/** SIGKILLs the process and waits until it is gone (reaped). */
export async function kill(r: Run): Promise<void> {
  if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await r.done;
}

/** The objects whose names start with `prefix`, by name. */
export async function named(prefix: string): Promise<Map<string, IpcObject>> {
  return new Map((await listObjects({ prefix })).map((o) => [o.name!, o]));
}

/** Removes every /dev/shm entry whose name starts with `prefix` (the tests' own names only). */
export function removeShm(prefix: string): void {
  for (const e of readdirSync('/dev/shm')) if (e.startsWith(prefix) || e.startsWith(`sem.${prefix}`)) rmSync(`/dev/shm/${e}`, { force: true });
}

/** Waits until `check` holds (the machine is loaded: no time is asserted, only that it comes). */
export async function eventually(check: () => Promise<boolean> | boolean, what: string, ms = 30_000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

export const IPCKIT_MADE = new Set(['ring', 'workqueue', 'mutex', 'pool', 'ipckit (being made)']);
