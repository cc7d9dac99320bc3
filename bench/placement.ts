/**
 * Where the two processes of a round-trip figure run. On this kind of VM a blocking
 * ping-pong is bimodal: two sleeping processes on two CPUs pay a cross-CPU wake-up
 * (~45-60 us a round trip), and when the scheduler happens to put both on one CPU a
 * hand-over is a context switch (2-12 us). C and Node pairs do not land the same way in
 * every run, so a ratio of two scheduler-placed figures is a coin toss. Round trips are
 * therefore measured with the parent on CPU 0 and the child on CPU 1, ours and C alike
 * (taskset for ours; the C references pin themselves), a like-for-like comparison.
 *
 * Two helpers exist, for two kinds of scenario:
 * - `placements` / `withPlacement` / `pin` (message queue, semaphore, mutex): measure the
 *   scheduler-placed figure a user gets *and* the pinned one, named with a suffix (a full
 *   run; --quick measures the pinned one); the C references' one-way runs are pinned
 *   (`cPlacement`).
 * - `pinning` / `cPlacement` / `pinnedPair` (pipe, FIFO, popen): measure round trips
 *   pinned only. One-way figures of ours are not pinned: two busy processes get two CPUs
 *   anyway, and pinning a Node process would also pin the threads that collect its garbage.
 * Every C reference takes the same argument to pin itself, `cpus=P,C` (`cArgs`; bench_place
 * in bench/c/harness.h).
 * The two CPUs are the first two this process may use (`PAIR`: 0 and 1 unless the run was
 * started inside `taskset -c 2,3` or a cpuset); it never pins outside them, and puts its
 * own threads back on the CPUs they had. Given fewer than two CPUs or no taskset, figures
 * are scheduler-placed and a note says so.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { BenchContext } from './harness.js';

export interface Placement {
  /** Appended to the mechanism name of the figures ('' when scheduler-placed). */
  suffix: string;
  /** The C references' arguments for it: ["cpus=P,C"] (bench_place in bench/c/harness.h), or none. */
  cArgs: string[];
  parentCpu: number | undefined;
  childCpu: number | undefined;
}

/** CPU numbers from a list as the kernel writes it ("0-3,8,10-11"), in order. */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) continue;
    for (let c = Number(m[1]), last = Number(m[2] ?? m[1]); c <= last; c++) out.push(c);
  }
  return out;
}

/** The online CPUs (every one os.cpus() lists where /sys does not say). */
function onlineCpus(): number[] {
  try {
    const found = parseCpuList(readFileSync('/sys/devices/system/cpu/online', 'utf8'));
    if (found.length) return found;
  } catch {
    // no /sys
  }
  return cpus().map((_, i) => i);
}

/**
 * The CPUs this process may use as it starts: its Cpus_allowed_list, which may name offline
 * CPUs (a mask of possible ones), among the online ones; every online CPU where /proc does not say.
 */
function allowedCpus(): number[] {
  const online = onlineCpus();
  try {
    const list = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    const found = list ? parseCpuList(list).filter((c) => online.includes(c)) : [];
    if (found.length) return found;
  } catch {
    // no /proc: every online CPU
  }
  return online;
}

/** The CPUs the bench may use: those it was started with (`taskset -c 2,3 ipckit bench` gives it two). */
export const ALLOWED_CPUS: readonly number[] = allowedCpus();

/**
 * The CPUs of a pinned round trip, the parent's and the child's (bench/distance.ts probes
 * between them): the first two of ALLOWED_CPUS; undefined with fewer.
 */
export const PAIR: readonly [number, number] | undefined = ALLOWED_CPUS.length >= 2 ? [ALLOWED_CPUS[0]!, ALLOWED_CPUS[1]!] : undefined;
export const PARENT_CPU = PAIR?.[0] ?? ALLOWED_CPUS[0] ?? 0;
export const CHILD_CPU = PAIR?.[1] ?? PARENT_CPU;

/** Why round trips cannot be pinned apart here (fewer than two CPUs to use), or undefined. */
export function onePlacementWhy(): string | undefined {
  if (PAIR) return undefined;
  return cpus().length < 2 ? 'one CPU' : `this process may use one CPU (CPU ${PARENT_CPU}) of the machine's ${cpus().length}`;
}

export const SCHEDULER: Placement = { suffix: '', cArgs: [], parentCpu: undefined, childCpu: undefined };
export const CROSS: Placement = { suffix: `, pinned ${PARENT_CPU}|${CHILD_CPU}`, cArgs: [`cpus=${PARENT_CPU},${CHILD_CPU}`], parentCpu: PARENT_CPU, childCpu: CHILD_CPU };

let tasksetChecked: boolean | undefined;
/** Whether taskset (util-linux) runs here. */
export function haveTaskset(): boolean {
  if (tasksetChecked === undefined) tasksetChecked = spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0;
  return tasksetChecked;
}

/** The placements this machine can do; notes why the pinned one is skipped otherwise. */
export function placements(ctx: BenchContext, mechanism: string): Placement[] {
  const one = onePlacementWhy();
  if (one) {
    ctx.note(`${mechanism}: ${one}: pinned-to-two-CPUs figures skipped`);
    return [SCHEDULER];
  }
  if (!haveTaskset()) {
    ctx.note(`${mechanism}: no taskset (util-linux): pinned-to-two-CPUs figures skipped`);
    return [SCHEDULER];
  }
  // --quick measures the pinned placement only (the one the round trips of every other mechanism use).
  return ctx.quick ? [CROSS] : [SCHEDULER, CROSS];
}

/** A hex CPU mask as /proc shows it ("00000000,00000003"), plainly, as taskset takes it ("3"). */
const plainMask = (mask: string): string => mask.replace(/,/g, '').replace(/^0+(?=.)/, '').toLowerCase();

/** The CPUs thread `tid` of `pid` may run on, as a plain hex mask (undefined once it is gone). */
function threadMask(pid: number, tid: number | string): string | undefined {
  try {
    const mask = /Cpus_allowed:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))?.[1];
    return mask === undefined ? undefined : plainMask(mask);
  } catch {
    return undefined;
  }
}

/** The CPUs `pid` may run on (its main thread's), as a hex mask for restoreAffinity: read from /proc, no process started. */
export function affinity(pid: number): string | undefined {
  return threadMask(pid, pid);
}

/** Whether every thread of `pid` may run on exactly the CPUs of `mask`. */
function hasAffinity(pid: number, mask: string): boolean {
  try {
    const want = plainMask(mask);
    return readdirSync(`/proc/${pid}/task`).every((tid) => threadMask(pid, tid) === want);
  } catch {
    return false; // no listing: taskset decides
  }
}

/** Gives every thread of `pid` the CPUs `mask` (from affinity) back; starts no taskset where nothing pinned it. */
export function restoreAffinity(pid: number, mask: string | undefined): void {
  if (mask && !hasAffinity(pid, mask)) spawnSync('taskset', ['-a', '-p', mask, String(pid)], { stdio: 'ignore' });
}

/**
 * Pins every thread of `pid` to `cpu`. A child is pinned once it is up and has made its
 * endpoints: each endpoint's spin default comes from the CPUs its process
 * may use when it is made (os/spin.ts spinOption), so a child pinned as it starts takes
 * itself for a one-CPU process and never spins, which is not what the placement is for (the
 * pipe's round trip measured 53 µs that way, 3 µs pinned after it was up).
 */
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
    restoreAffinity(process.pid, mask);
  }
}

let checked: boolean | undefined;
let notedInRound: number | undefined;

/**
 * Whether figures are pinned here (two CPUs and taskset); notes which once a round (the run
 * prints the last round's notes, each once), not before each round trip.
 */
export function pinning(ctx: BenchContext): boolean {
  if (checked === undefined) {
    checked = PAIR !== undefined && spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' }).status === 0;
  }
  if (notedInRound === ctx.round) return checked;
  notedInRound = ctx.round;
  ctx.note(
    checked
      ? `round trips over pipes, FIFOs, sockets and signals, ours, C and the Node baselines, run with the parent on CPU ${PARENT_CPU} and the child on CPU ${CHILD_CPU} (the C one-way figures too, the message queues included; message queue, semaphore and mutex round trips show both placements in a full run): placed by the scheduler, a pair (C or Node) sometimes shares one CPU, where a round trip costs 2-12 us instead of 45-60 us`
      : `round trips are placed by the scheduler (${onePlacementWhy() ?? 'no taskset'}): they may be bimodal`,
  );
  return checked;
}

/**
 * Where the C references run: pinned apart wherever round trips are (`pinning`), one-way runs
 * too, else placed by the scheduler. The queue cases' C one-way runs were placed by the
 * scheduler until 2026-12-06, and two blocking C processes often shared one CPU (a wake-up
 * puts the receiver on its waker's CPU): on a 2-vCPU AMD EPYC VM the POSIX queue's C one-way
 * at 64 B read 0.32-1.05M msg/s within bench runs, and alone (6 interleaved pairs of 0.4-s
 * runs) 0.81-0.93M placed by the scheduler against 1.09-1.42M pinned apart. Ours stay placed
 * by the scheduler (see the top of this file).
 */
export function cPlacement(ctx: BenchContext): Placement {
  return pinning(ctx) ? CROSS : SCHEDULER;
}

/**
 * Pins our main thread to PARENT_CPU and the main thread of `childPid` to CHILD_CPU while
 * `body` runs (a round trip); then ours gets back the CPUs it had.
 */
export async function pinnedPair<T>(ctx: BenchContext, childPid: number, body: () => Promise<T>): Promise<T> {
  if (!pinning(ctx)) return body();
  const mask = affinity(process.pid);
  taskset(['-c', String(CHILD_CPU)], childPid);
  taskset(['-c', String(PARENT_CPU)], process.pid);
  try {
    return await body();
  } finally {
    taskset(mask ? [mask] : ['-c', ALLOWED_CPUS.join(',')], process.pid); // without /proc, the CPUs it started with
  }
}

/** Sets the CPUs of the main thread of `pid` (its tid is its pid): `['-c', list]` or `[hexMask]`. */
function taskset(cpus: string[], pid: number): void {
  const r = spawnSync('taskset', ['-p', ...cpus, String(pid)], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`taskset -p ${cpus.join(' ')} ${pid} failed`);
}
