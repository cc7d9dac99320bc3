/**
 * Where the two processes of a round-trip figure run. On this kind of VM a blocking
 * ping-pong is bimodal: when the scheduler puts both processes on one CPU a hand-over is
 * a context switch (a few us); on two CPUs it is a cross-CPU wake-up (~20 us each way).
 * C and Node do not land the same way in every run, so a scheduler-placed ratio can
 * compare a one-CPU figure with a two-CPU one. The message queue, semaphore and mutex
 * benches therefore also measure both sides pinned to two CPUs (parent 0, child 1), a
 * like-for-like comparison, besides the scheduler-placed figure a user gets.
 *
 * Pinning uses taskset(1) (util-linux) for the Node processes and sched_setaffinity in
 * the C references (bench/c/pin.h); without taskset or with one CPU the pinned figures
 * are skipped with a note.
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import type { BenchContext } from './harness.js';

export interface Placement {
  /** Appended to the mechanism name of the figures ('' when scheduler-placed). */
  suffix: string;
  /** For the C references: "P,C", or undefined. */
  cArg: string | undefined;
  parentCpu: number | undefined;
  childCpu: number | undefined;
}

export const SCHEDULER: Placement = { suffix: '', cArg: undefined, parentCpu: undefined, childCpu: undefined };
export const CROSS: Placement = { suffix: ', pinned 0|1', cArg: '0,1', parentCpu: 0, childCpu: 1 };

let tasksetChecked: boolean | undefined;
function haveTaskset(): boolean {
  if (tasksetChecked === undefined) tasksetChecked = spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0;
  return tasksetChecked;
}

/** The placements this machine can do; notes why the pinned one is skipped otherwise. */
export function placements(ctx: BenchContext, mechanism: string): Placement[] {
  if (cpus().length < 2) {
    ctx.note(`${mechanism}: one CPU: pinned-to-two-CPUs figures skipped`);
    return [SCHEDULER];
  }
  if (!haveTaskset()) {
    ctx.note(`${mechanism}: no taskset (util-linux): pinned-to-two-CPUs figures skipped`);
    return [SCHEDULER];
  }
  return [SCHEDULER, CROSS];
}

function affinity(pid: number): string | undefined {
  const r = spawnSync('taskset', ['-p', String(pid)], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split(':').pop()?.trim() : undefined;
}

/** Pins every thread of `pid` to `cpu`. */
export function pin(pid: number, cpu: number | undefined): void {
  if (cpu === undefined) return;
  const r = spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`taskset could not pin process ${pid} to CPU ${cpu}`);
}

/** Runs `body` with this process pinned as `placement` says, then restores its mask. */
export async function withPlacement<R>(placement: Placement, body: () => Promise<R>): Promise<R> {
  if (placement.parentCpu === undefined) return body();
  const mask = affinity(process.pid);
  pin(process.pid, placement.parentCpu);
  try {
    return await body();
  } finally {
    if (mask) spawnSync('taskset', ['-a', '-p', mask, String(process.pid)], { stdio: 'ignore' });
  }
}
