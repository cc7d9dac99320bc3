/**
 * Where the C reference programs of the byte streams run: with two or more CPUs, parent
 * and child are pinned to CPUs 0 and 1 (bench_place in bench/c/harness.h). Placed by the
 * scheduler, a small C pair sometimes lands on one CPU, where a round trip costs about
 * 2 us instead of the 45-60 us of a cross-CPU wake-up, and a ratio against it then says
 * nothing about us. Two Node processes (several threads each) are placed on two CPUs
 * nearly always; the pinned C figure is the scheduler-placed one without the bimodality.
 */
import { cpus } from 'node:os';
import type { BenchContext } from './harness.js';

let noted = false;

export function cPlacement(ctx: BenchContext): string[] {
  if (cpus().length < 2) return [];
  if (!noted) ctx.note('C stream references (pipe, FIFO) run with parent and child pinned to CPUs 0 and 1: the placement two Node processes get; a C pair placed by the scheduler sometimes shares one CPU (RTT ~2 us), which no Node process pair does');
  noted = true;
  return ['cpus=0,1'];
}
