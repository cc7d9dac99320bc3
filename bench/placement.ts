/**
 * Where the two processes of a byte-stream figure run. A round trip between two sleeping
 * processes costs ~45-60 us when they sit on two CPUs (a cross-CPU wake-up on this kind of
 * VM) and 2-12 us when the scheduler happens to put both on one CPU; it does that now and
 * then for the C pairs and for our Node pairs alike, so a ratio of two scheduler-placed
 * figures is a coin toss. With two or more CPUs, both sides of every round trip (ours
 * and the C reference) therefore run pinned: parent on CPU 0, child on CPU 1 (`taskset` on
 * the main threads for ours, bench_place in bench/c/harness.h for C). That is the usual
 * placed figure, without the bimodality. One-way figures of ours are not pinned: two busy
 * processes get two CPUs anyway, and pinning a Node process would also pin the threads
 * that collect its garbage (the C programs have no such threads; they stay pinned).
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import type { BenchContext } from './harness.js';

const PARENT_CPU = 0;
const CHILD_CPU = 1;

let checked: boolean | undefined;
let noted = false;

/** Whether figures are pinned here (two CPUs and taskset). */
export function pinning(ctx: BenchContext): boolean {
  if (checked === undefined) {
    checked = cpus().length >= 2 && spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' }).status === 0;
  }
  if (!noted) {
    noted = true;
    ctx.note(
      checked
        ? 'round trips over pipes and FIFOs, ours and C, run with the parent on CPU 0 and the child on CPU 1 (C one-way figures too): placed by the scheduler, a pair (C or Node) sometimes shares one CPU, where a round trip costs 2-12 us instead of 45-60 us'
        : 'round trips are placed by the scheduler (one CPU, or no taskset): they may be bimodal',
    );
  }
  return checked;
}

/** The extra argument that makes a C reference pin itself (bench_place), or none. */
export function cPlacement(ctx: BenchContext): string[] {
  return pinning(ctx) ? [`cpus=${PARENT_CPU},${CHILD_CPU}`] : [];
}

/** Pins the main thread of `pid` (its tid is its pid) to `cpu`. */
function taskset(cpu: string, pid: number): void {
  const r = spawnSync('taskset', ['-p', '-c', cpu, String(pid)], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`taskset -p -c ${cpu} ${pid} failed`);
}

/**
 * Pins our main thread to CPU 0 and the main thread of `childPid` to CPU 1 while `body`
 * runs (a round trip); then ours may use every CPU again.
 */
export async function pinnedPair<T>(ctx: BenchContext, childPid: number, body: () => Promise<T>): Promise<T> {
  if (!pinning(ctx)) return body();
  taskset(String(CHILD_CPU), childPid);
  taskset(String(PARENT_CPU), process.pid);
  try {
    return await body();
  } finally {
    taskset(`0-${cpus().length - 1}`, process.pid);
  }
}
