/**
 * What every bench scenario shares: the figure and target types, the run budget
 * (quick or full), latency statistics, starting the Node child side of a scenario, and
 * compiling and running the C reference programs of bench/c/.
 *
 * Method (the same for every mechanism, and the same as the reference measurements):
 * - Warm-up: every loop runs until its rate is steady (RttMeter / RateMeter below, with
 *   bench/stats.ts Steady), then measures; the run repeats every case in rounds (bench/run.ts).
 * - RTT: the parent sends a message, the child echoes it; each round trip is timed in the
 *   parent; p50 and p99 of the measured part are reported.
 * - One-way throughput: the parent sends as fast as the mechanism lets it; the child
 *   receives and checks every message's sequence number and acknowledges the last one;
 *   msgs/s = the messages it read from the measured part's first to the end marker, over
 *   that time by its clock (DeliveryClock below), where the receiver keeps one; else
 *   messages sent after the warm-up / (end of warm-up .. acknowledgement).
 * - Every figure is measured between two real processes, in the same run as its baselines.
 */
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { sleepSync } from '../src/memory/waits.js';
import { affinity, restoreAffinity } from './placement.js';
import { median, Steady, type SteadyOptions } from './stats.js';
import type { ReportFigure } from './report.js';

export type Metric = 'rtt' | 'throughput';
/** Whose figure: ours, the C limit, or what a Node user has today. */
export type Role = 'ipckit' | 'c' | 'node';

export interface Figure {
  mechanism: string;
  /** e.g. 'ipckit', 'ipckit (event loop)', 'C pipe(2)', 'process.send' */
  variant: string;
  role: Role;
  metric: Metric;
  /** Message size in bytes (0 when there is no payload). */
  size: number;
  /** Round trips or messages measured. */
  n: number;
  p50Us?: number;
  p99Us?: number;
  msgsPerSec?: number;
  mbPerSec?: number;
  /** One-way, where measured: CPU time (user + system) the sending process used per message, µs. */
  senderCpuUs?: number;
  /** The process pool: the pool's process's minor page faults per job (senderCpuUs is its CPU). */
  senderPageFaults?: number;
  /** One-way, where measured: the receiving process's CPU per message (µs) and minor page faults per message. */
  receiverCpuUs?: number;
  receiverPageFaults?: number;
  note?: string;
  /** Set when this figure could not be measured on this machine: exactly why (no value fields then). */
  notMeasured?: string;
  /** The warm-up before the measured part: its length, and whether the rate settled (false: the cap ended it). */
  warmup?: { seconds: number; steady: boolean };
  /**
   * One-way: whose clock timed the rate. 'receiver': the messages the receiver read from the
   * first measured one to the end, over that time (DeliveryClock); absent: the sender's, from
   * the first measured send to the receiver's acknowledgement of the last.
   */
  timing?: 'receiver';
  /** Set by the run: the CPU distance probes (ns) just before and just after this figure's case (bench/distance.ts). */
  cpuRoundTripNs?: [number | null, number | null];
  /** The same probe, taken by the case process just before and just after the figure's measurement, the farther of the two (harness.ts farther); null: one failed. */
  cpuProbeNs?: number | null;
}

/**
 * The variant of a stream bench's 64 KiB round trip with the zero-copy receive on both
 * sides (receiveInto into a buffer each side reuses: bench/streams.ts).
 */
export const RECEIVE_INTO_VARIANT = 'ipckit, receiveInto';

/**
 * The round-trip targets of a byte-stream or socket mechanism (issue 14): at most 1.3x its C
 * reference at every size (at 64 KiB with the zero-copy receive, receiveInto: with
 * receive() each 64 KiB message is new memory, and that is the cost docs/bench.md
 * explains), and at 64 B and 1 KiB never slower than `process.send` (and, for stream
 * sockets, than Node's own `net` with a length prefix) measured in the same run.
 */
export function streamRttTargets(mechanism: string, cVariant: string, label: string, options: { net?: boolean } = {}): Target[] {
  const out: Target[] = [];
  for (const size of SIZES) {
    if (size >= 65536) {
      out.push({ mechanism, variant: RECEIVE_INTO_VARIANT, metric: 'rtt', size, maxRatio: 1.3, compareTo: { variant: cVariant }, text: `${label} RTT at ${size} B with receiveInto <= 1.3x C (issue 14)` });
      continue;
    }
    out.push({ mechanism, metric: 'rtt', size, maxRatio: 1.3, compareTo: { variant: cVariant }, text: `${label} RTT at ${size} B <= 1.3x C (issue 14)` });
    out.push({ mechanism, metric: 'rtt', size, maxRatio: 1, compareTo: { mechanism: 'node', variant: 'process.send' }, text: `${label} RTT at ${size} B <= process.send's (issue 14)` });
    if (options.net) out.push({ mechanism, metric: 'rtt', size, maxRatio: 1, compareTo: { mechanism: NET_BASELINE, variant: NET_VARIANT }, text: `${label} RTT at ${size} B <= Node net's with a length prefix (issue 14)` });
  }
  return out;
}

/** Node's `net` over a Unix socket with a u32 length prefix (bench/socket.ts measures it). */
export const NET_BASELINE = 'node net (Unix, length prefix)';
export const NET_VARIANT = 'net + u32 framing';

/**
 * A target from an issue. `compareTo` names the variant of the same mechanism (or of
 * another) whose figure the ratio is taken against: RTT ours / theirs (p50), one-way
 * theirs / ours.
 */
export interface Target {
  mechanism: string;
  variant?: string;
  metric: Metric;
  size?: number;
  minMsgsPerSec?: number;
  minMBPerSec?: number;
  maxP50Us?: number;
  maxRatio?: number;
  compareTo?: { mechanism?: string; variant: string };
  text: string;
  /**
   * The cause we measured for missing it, printed under a MISSED line (a finding, not an
   * excuse); a function builds it from the run's figures (all cases, medians over rounds).
   */
  ifMissed?: string | ((figures: ReportFigure[]) => string);
}

export interface Scenario {
  /** The name `--only` matches (the mechanism's name). */
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<Figure[]>;
  targets?: Target[];
  /**
   * Ends what the case keeps from one round to the next (Kept, KeptPeers: its Node peers,
   * docs/bench.md Rounds): called once, after the last round, or when the bench stops early.
   */
  close?(): Promise<void>;
}

export interface Budget {
  /** Max round trips in the measured part of an RTT figure (after warm-up). */
  rttMessages: number;
  /** Max seconds of the measured part of an RTT figure. */
  rttSeconds: number;
  /** Max messages in the measured part of a throughput figure. */
  thrMessages: number;
  /** Max seconds of the measured part of a throughput figure. */
  thrSeconds: number;
  /** Warm-up before the measured part: until two successive windows agree (bench/stats.ts Steady). */
  warm: SteadyOptions;
  /** Rounds: every case runs this many times, its references interleaved with it (bench/run.ts). */
  rounds: number;
  /**
   * Whether the stream, queue (POSIX ones while they fit in RLIMIT_MSGQUEUE: bench/mqueue.ts
   * keepsQueues) and Node baseline peers, and the children withChild serves, are kept from
   * round to round (KeptPeers, bench/streams.ts startedTogether says why): in a quick run. A full run's
   * longer warm-up waits out a fresh peer's ramp, and keeping the peers of all its sizes
   * would hold about 75 idle Node processes, 5.1 GB resident (measured on a 2-vCPU VM).
   */
  keepPeers: boolean;
  /**
   * The shortest warm-up of a one-way rate (RateMeter) that is a kept peer's first figure
   * (KeptPeers.measure): a new Node process handles its first messages slowly until V8 has
   * optimized its loop, and its rate can hold still on the way (a POSIX queue's new sink:
   * 0.06-0.17M msg/s for 40-180 ms, then 0.72-0.95M, in 20-ms windows, 13 runs on a 2-vCPU
   * VM), so two agreeing windows there are not yet the steady rate. A quick run's 20-ms
   * windows took such stretches for steady (the queue's one-way at 0.15-0.35M against
   * 1.11-1.25M in full runs). Round trips keep their rule (the socket case's excepted:
   * freshPeerRtt): a quick run's were not found on such a plateau, and with the floor on
   * them all quick runs took 58.4-60.6 s (57.3-59.2 s without, three runs each). A full
   * run's peers are new every round and its 50-ms windows at 3% have not taken the plateau
   * (its rounds agree), so it adds nothing.
   */
  freshPeerWarmSeconds: number;
  /**
   * Round trips too warm up for at least freshPeerWarmSeconds on a kept peer's first figure
   * (`freshPeerRtt`, the socket case): on a 2-vCPU Intel VM a new socket peer's round trip
   * still ran slow after two agreeing windows, and round 1 of a quick run read ours over
   * Unix stream, datagram, seqpacket and TCP sockets 1.20x-1.79x the full run's (medians over
   * 12 quick runs, sequential, each against the same full run; ours over pipes, FIFOs,
   * queues, semaphores, the mutex, the ring and signals 0.95x-1.09x, the ring's blocking
   * forms 1.19x), later rounds 1.00x-1.07x.
   */
  freshPeerRtt?: boolean;
}

/**
 * --quick: three rounds of a short measured part after a warm-up that waits for a steady
 * rate (the quick figures agree with the full run's: docs/bench.md says how closely).
 */
export const QUICK: Budget = { rttMessages: 20_000, rttSeconds: 0.08, thrMessages: 5_000_000, thrSeconds: 0.08, warm: { tolerance: 0.05, windowSeconds: 0.02, capSeconds: 0.4 }, rounds: 3, keepPeers: true, freshPeerWarmSeconds: 0.25 };
export const FULL: Budget = { rttMessages: 200_000, rttSeconds: 0.4, thrMessages: 50_000_000, thrSeconds: 0.4, warm: { tolerance: 0.03, windowSeconds: 0.05, capSeconds: 1.5 }, rounds: 5, keepPeers: false, freshPeerWarmSeconds: 0 };

export const SIZES = [64, 1024, 65536];

/**
 * A budget whose measured parts last as long as a full run's (0.4 s, or the message limit),
 * in a quick run too, for the figures whose rate or p50 over quick's 80 ms depended on where
 * in a stretch it fell (docs/bench.md, Limits):
 * - the Node baselines' round trips (`process.send`, stdio framing; the process case's
 *   `process.send` too): they come in stretches of tens to hundreds of ms at about 70 us and
 *   at 90-140 us (p50 per 20-ms window of process.send, pinned 0|1, a 2-vCPU VM); quick runs
 *   put process.send at 90-98 us and stdio framing at 83-95 us against 73 and 64 us in the
 *   full run, and at 70-74 and 68-69 us measured for 0.4 s;
 * - `process.send`'s one-way rate: over 80 ms, 0.25-0.34M msg/s in 6 of 18 quick rounds
 *   against 0.46-0.54M in every full one; over 0.4 s, 0.49-0.59M in 12 quick rounds
 *   interleaved with 12 at 80 ms (stdio framing's agreed at 80 ms); the process case's
 *   `process.send` blast too (bench/process.ts thrRound);
 * - the spinning ring's one-way rate: on 2 CPUs one stall of its spinning threads (other
 *   threads taking a CPU) showed in an 80-ms part (bench/shm.ts ringFigures).
 */
export function fullLengthBudget(budget: Budget): Budget {
  const [rttMessages, rttSeconds] = [Math.max(budget.rttMessages, FULL.rttMessages), Math.max(budget.rttSeconds, FULL.rttSeconds)];
  return { ...budget, rttMessages, rttSeconds, thrMessages: Math.max(budget.thrMessages, FULL.thrMessages), thrSeconds: Math.max(budget.thrSeconds, FULL.thrSeconds) };
}

/** The sizes a case measures: all of `all`, or with --quick the first (smallest) only. */
export function sizesOf(ctx: BenchContext, all: number[] = SIZES): number[] {
  return ctx.quick ? all.slice(0, 1) : all;
}

export const packageRoot = fileURLToPath(new URL('../..', import.meta.url));
const childScript = fileURLToPath(new URL('./child.js', import.meta.url));

export interface BenchContext {
  quick: boolean;
  /** This round (1-based) and the number of rounds. */
  round: number;
  rounds: number;
  budget: Budget;
  /** Path of the compiled C reference program `bench/c/<name>.c`, or null (no compiler: noted). */
  cProgram(name: string, libs?: string[]): string | null;
  /** Records a remark printed under the table (a skipped figure, a kernel limit). */
  note(text: string): void;
  /**
   * Begins a part of the case: updates the progress line (shown on a terminal only) and, in
   * a case process, probes the CPUs' distance for the part's figures (recentProbe: a probe
   * under 20 ms old, such as the last meter's, is reused), so call it where nothing is
   * being measured.
   */
  progress(text: string): void;
}

/** p50/p99 of measured samples (ns), nothing dropped. */
export function percentiles(samplesNs: number[]): { p50Us: number; p99Us: number; n: number } {
  const s = [...samplesNs].sort((a, b) => a - b);
  if (s.length === 0) return { p50Us: NaN, p99Us: NaN, n: 0 };
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))]! / 1000;
  return { p50Us: at(0.5), p99Us: at(0.99), n: s.length };
}

/**
 * Whether the measurement running now is a kept peer's first (KeptPeers.measure sets it
 * around it; measurements run one at a time, as the probes that place them do), until its
 * first figure is complete: a Node baseline's one-way rate follows its round trips on the
 * same, by then warm, peer (a meter's result() clears it).
 */
let freshPeer = false;

/** A warm-up on a kept peer's first figure: the budget's, at least freshPeerWarmSeconds long. */
function freshPeerWarmOf(budget: Budget): SteadyOptions {
  return freshPeer && budget.freshPeerWarmSeconds > 0 ? { ...budget.warm, minSeconds: budget.freshPeerWarmSeconds } : budget.warm;
}

/** `budget` whose round trips, too, warm up for freshPeerWarmSeconds on a fresh peer (Budget.freshPeerRtt). */
export function freshPeerRtt(budget: Budget): Budget {
  return { ...budget, freshPeerRtt: true };
}

/**
 * One RTT figure's samples: a warm-up until the median round trip of two successive
 * windows agrees (budget.warm), then the measured part (budget.rttSeconds or
 * budget.rttMessages, whichever ends first). Every RTT loop uses it:
 *   const meter = new RttMeter(budget);
 *   for (let i = 0; ; i++) { const t0 = now(); ...; if (meter.add(Number(now() - t0))) break; }
 *   return meter.result();
 */
export class RttMeter {
  readonly #budget: Budget;
  readonly #steady: Steady;
  readonly #start = now();
  readonly #probe = probedBy({ cpuProbeNs: lastProbe });
  #windowStart = this.#start;
  #window: number[] = [];
  #measureStart = 0n;
  #warmupSeconds = 0;
  readonly samples: number[] = [];

  constructor(budget: Budget) {
    this.#budget = budget;
    this.#steady = new Steady(budget.freshPeerRtt ? freshPeerWarmOf(budget) : budget.warm);
  }

  /**
   * Records one round trip (ns); true when the figure has all it needs. The warm-up and the
   * measured part run the same code (RateMeter.tick says why): the measured part's start is
   * noted at every window's end, and whether it is complete is asked on every call.
   */
  add(ns: number): boolean {
    const t = now();
    const measuring = this.#steady.done;
    const samples = this.samples; // both read on every call: no load first run as the measured part begins
    const window = this.#window;
    (measuring ? samples : window).push(ns);
    if (!measuring && Number(t - this.#windowStart) / 1e9 >= this.#budget.warm.windowSeconds) {
      this.#steady.window(median(this.#window), Number(t - this.#start) / 1e9);
      this.#measureStart = t;
      this.#warmupSeconds = Number(t - this.#start) / 1e9;
      this.#window = [];
      this.#windowStart = t;
    }
    const complete = samples.length >= this.#budget.rttMessages || Number(t - this.#measureStart) / 1e9 >= this.#budget.rttSeconds;
    return measuring && complete;
  }

  /**
   * The figure's samples; in a case process it probes the CPUs' distance (placedAfter), so
   * call it once the round trips are over. Where the peer is still busy (exiting), pass
   * `{ probe: false }` and call placedAfter on the result once it is gone.
   */
  result({ probe = true } = {}): { p50Us: number; p99Us: number; n: number; warmup: { seconds: number; steady: boolean }; cpuProbeNs?: number | null } {
    freshPeer = false; // the peer has had a figure
    const r = { ...percentiles(this.samples), warmup: { seconds: this.#steady.done ? +this.#warmupSeconds.toFixed(3) : 0, steady: this.#steady.steady }, ...this.#probe };
    return probe ? placedAfter(r) : r;
  }
}

/**
 * One throughput figure's clock: the sender calls `tick(sent)` every few messages; the
 * warm-up lasts until the send rate of two successive windows agrees, then the measured
 * part runs for budget.thrSeconds (or budget.thrMessages). `result(sent)` after the
 * receiver's acknowledgement gives the measured part's messages and seconds, timed by the
 * receiver when it reported a DeliveryClock's reading (`delivered`).
 */
export class RateMeter {
  readonly #budget: Budget;
  readonly #steady: Steady;
  readonly #start = now();
  #windowStart = this.#start;
  #windowCount = 0;
  #measureStart = 0n;
  #measureCount = 0;
  readonly #startCpu = process.cpuUsage();
  #measureCpu = this.#startCpu;
  #warmupSeconds = 0;
  readonly #probe = probedBy({ cpuProbeNs: lastProbe });

  constructor(budget: Budget) {
    this.#budget = budget;
    this.#steady = new Steady(freshPeerWarmOf(budget));
  }

  /**
   * `sent`: messages sent so far. True when the sender should stop.
   *
   * The warm-up and the measured part run the same code: the measured part's start is noted
   * at every window's end (the last one noted is where it starts), and whether it is over
   * is asked on every tick. Code first run when the measured part began deoptimized the
   * sender's loop there, which V8 had optimized with this method inlined ("Insufficient
   * type feedback", --log-deopt), and the measured part ran slow until it was optimized
   * again: a POSIX queue's one-way in round 1 of a quick run, 1.01-1.16M msg/s against
   * 1.23-1.38M in rounds 2 and 3 (8 runs of the case alone; once 0.35M in a quick run of
   * every case).
   */
  tick(sent: number): boolean {
    const t = now();
    const measuring = this.#steady.done;
    if (!measuring) {
      const dt = Number(t - this.#windowStart) / 1e9;
      if (dt >= this.#budget.warm.windowSeconds) {
        this.#steady.window((sent - this.#windowCount) / dt, Number(t - this.#start) / 1e9);
        this.#measureStart = t;
        this.#measureCount = sent;
        this.#measureCpu = process.cpuUsage();
        this.#warmupSeconds = Number(t - this.#start) / 1e9;
        this.#windowStart = t;
        this.#windowCount = sent;
      }
    }
    const over = sent - this.#measureCount >= this.#budget.thrMessages || Number(t - this.#measureStart) / 1e9 >= this.#budget.thrSeconds;
    return measuring && over;
  }

  /** Whether the warm-up is over. */
  get measuring(): boolean {
    return this.#steady.done;
  }

  /**
   * The sequence number to send message `n` with: clockSeq(n) on the first message of each
   * warm-up window and of the measured part (where the receiver's DeliveryClock starts
   * again), else `n`. Marking the warm-up too runs the receiver's loop through the same
   * branches as the measured part: when the measured part's mark was the first one, V8
   * deoptimized a new sink's loop there (sinkRun: "insufficient type feedback") and the
   * measured part ran slow until it was optimized again (a POSIX queue's one-way, round 1
   * of a quick run: 0.18-0.41M msg/s measured after warm-up windows of 1.3M).
   */
  seq(n: number): number {
    return n === this.#windowCount ? clockSeq(n) : n;
  }

  /**
   * After the receiver acknowledged `sent` messages: the measured part, with `cpuUs`, the CPU
   * time (user + system, all threads) this process used in it: the sender's, where the sender
   * keeps the meter. In a case process it probes the CPUs' distance (placedAfter); where the
   * peer is still busy (a receiver that stops measuring before the sender stops sending, a
   * peer exiting), pass `{ probe: false }` and call placedAfter on the result once it is idle.
   */
  result(sent: number, delivered?: Delivered, { probe = true } = {}): { messages: number; seconds: number; cpuUs: number; warmup: { seconds: number; steady: boolean }; timing?: 'receiver'; cpuProbeNs?: number | null } {
    freshPeer = false; // the peer has had a figure
    const end = now();
    const from = this.#steady.done ? this.#measureStart : this.#start;
    const count = this.#steady.done ? this.#measureCount : 0;
    const cpu = process.cpuUsage(this.#steady.done ? this.#measureCpu : this.#startCpu);
    const measured = { messages: sent - count, cpuUs: cpu.user + cpu.system, warmup: { seconds: this.#steady.done ? +this.#warmupSeconds.toFixed(3) : 0, steady: this.#steady.steady }, ...this.#probe };
    // The receiver read exactly the measured part: its clock, which the sender's backlog does not bend.
    const placed = probe ? placedAfter(measured) : measured;
    if (delivered && this.#steady.done && delivered.messages === measured.messages && delivered.seconds > 0) return { ...placed, seconds: delivered.seconds, timing: 'receiver' };
    return { ...placed, seconds: Number(end - from) / 1e9 };
  }
}

/**
 * Why one-way rates are timed by the receiver: a sender's clock that runs from its first
 * measured send to the acknowledgement of its last also counts the time the receiver spends
 * on the backlog that was already queued when the measured part began, while not counting
 * those messages. The backlog is whatever the channel holds: a few milliseconds for most,
 * but a loopback TCP connection's buffers grow to tens of megabytes (net.ipv4.tcp_rmem):
 * measured on a 2-vCPU VM, 26-77 ms of draining after 80 ms of sending, a rate 0.6x-0.8x
 * the one the receiver saw, and the shorter the run, the lower (why --quick disagreed with
 * the full run). So the sender marks the first message of the measured part (clockSeq;
 * and of each warm-up window: RateMeter.seq says why), the receiver notes when it reads the
 * last mark and when it reads the end marker (DeliveryClock), and
 * the rate is the messages it read in between over that time, backlog neither counted nor
 * waited for. The C references do the same (bench/c/harness.h delivery_clock), marking the
 * measured part's first message only (their code is compiled ahead: nothing to warm).
 */
export interface Delivered {
  /** Messages the receiver read from the marked one (included) to the end marker. */
  messages: number;
  seconds: number;
}

/**
 * The sequence number a mark (RateMeter.seq) carries instead of `n`: negative,
 * so a receiver's usual `s !== expected` test is the only one on its path per message and
 * DeliveryClock.mark sorts it out there; below the bench's own markers (-1 the end, -2 and
 * -3 the starts of some cases), so it is never one of them.
 */
export function clockSeq(n: number): number {
  return -16 - n;
}

/** Receiver: times the measured part between its first message (the last clockSeq) and the end marker. */
export class DeliveryClock {
  #startCount = -1;
  #start = 0n;

  /**
   * A message whose sequence number `s` was not `count`, the expected one: true if it is a
   * mark (RateMeter.seq), where the clock starts again: the last one starts the measured part.
   */
  mark(s: number, count: number): boolean {
    if (s !== clockSeq(count)) return false;
    this.#startCount = count;
    this.#start = now();
    return true;
  }

  /** At the end marker, `count` messages read in all: what the receiver saw of the measured part (undefined: no mark came). */
  reading(count: number): Delivered | undefined {
    return this.#startCount < 0 ? undefined : { messages: count - this.#startCount, seconds: Number(now() - this.#start) / 1e9 };
  }
}

export function throughputFigure(base: Omit<Figure, 'n' | 'msgsPerSec' | 'mbPerSec' | 'metric'>, messages: number, seconds: number, warmup?: Figure['warmup']): Figure {
  const msgsPerSec = messages / seconds;
  return { ...base, metric: 'throughput', n: messages, msgsPerSec, mbPerSec: (msgsPerSec * base.size) / 1e6, ...(warmup ? { warmup } : {}) };
}

/**
 * throughputFigure of a RateMeter result kept by the sending process, with its CPU per
 * message and, where the receiver reported them (bench/streams.ts), the receiver's costs.
 */
export function senderFigure(base: Omit<Figure, 'n' | 'msgsPerSec' | 'mbPerSec' | 'metric'>, r: ReturnType<RateMeter['result']> & { receiver?: { cpuUs: number; pageFaults: number } }): Figure {
  return {
    ...throughputFigure(base, r.messages, r.seconds, r.warmup),
    ...probedBy(r),
    ...(r.timing ? { timing: r.timing } : {}),
    ...(r.messages > 0 ? { senderCpuUs: r.cpuUs / r.messages } : {}),
    ...(r.receiver ? { receiverCpuUs: r.receiver.cpuUs, receiverPageFaults: r.receiver.pageFaults } : {}),
  };
}

export const now = (): bigint => process.hrtime.bigint();

/**
 * In a case process, each figure is placed by the CPU distance (bench/distance.ts) probed
 * just before and just after its measurement (`cpuProbeNs`, the farther of the two, null if
 * either failed): the probes around a case are up to a minute apart, and the host moves the
 * CPUs within a case too, often while they are busy, so a probe before a measurement alone
 * misses the moves during it (C's seqpacket one-way ran at 0.19M msg/s, the far placement's
 * rate, behind probes that read close before it and far after; docs/bench.md, Limits).
 * Probes are taken where nothing is measured: as the case begins a part (ctx.progress), as a
 * meter ends (RttMeter.result, RateMeter.result), around each C reference (runC), around
 * each measured part of a process pool (bench/process-pool.ts: its own loop). A meter
 * takes the last probe as its "before" when it starts. Undefined outside a case process.
 */
let lastProbe: number | null | undefined;
/** When lastProbe was taken. */
let lastProbeAt = 0n;
/** How to probe: set by the case process (harness.ts cannot import distance.ts, which imports it). */
let probe: (() => number | null) | undefined;

/** Sets how to probe (undefined: not at all, as outside a case process). */
export function probeFiguresWith(how: (() => number | null) | undefined): void {
  probe = how;
  lastProbe = undefined;
}

/** Probes now (call it only where nothing is measured): the distance, null if the probe failed, undefined outside a case process. */
export function probeNow(): number | null | undefined {
  if (!probe) return undefined;
  lastProbe = probe();
  lastProbeAt = now();
  return lastProbe;
}

/**
 * The last probe if it was taken within the last 20 ms (nothing ran in between that could
 * have moved the CPUs for long), else a new one: a part that begins as the last one's meter
 * ends, or a C reference right after it, needs no probe of its own (each costs 3-7 ms).
 */
export function recentProbe(): number | null | undefined {
  return probe && lastProbe !== undefined && Number(now() - lastProbeAt) < 20e6 ? lastProbe : probeNow();
}

/** A measurement's placement from the probes before and after it: the farther (a move during it counts as far), null if either failed. */
export function farther(before: number | null | undefined, after: number | null | undefined): number | null | undefined {
  if (before === undefined || after === undefined) return before ?? after;
  return before === null || after === null ? null : Math.max(before, after);
}

/** `r` with its placement completed by a probe now (`r` carries the probe from before its measurement). */
export function placedAfter<T extends { cpuProbeNs?: number | null }>(r: T): T {
  const cpuProbeNs = farther(r.cpuProbeNs, probeNow());
  return cpuProbeNs === undefined ? r : { ...r, cpuProbeNs };
}

/** The probe a meter's result carries (RttMeter, RateMeter), for the figure built from it. */
export function probedBy(r: { cpuProbeNs?: number | null }): Pick<Figure, 'cpuProbeNs'> {
  return r.cpuProbeNs === undefined ? {} : { cpuProbeNs: r.cpuProbeNs };
}

/**
 * What the names of the objects a case makes carry (benchPrefix): the run's pid (`ipckit
 * bench`'s: bench/run.ts passes it on), so a name says which run made it, then the case
 * process's, so two case processes never pick the same name.
 */
export function benchTag(): string {
  const run = process.env.IPCKIT_BENCH_RUN;
  return run && run !== String(process.pid) ? caseTag(Number(run), process.pid) : String(process.pid);
}

/**
 * The environment of a module's case process (bench/run.ts): the run's, the run's pid
 * (benchTag), and what the module asks for in its `caseEnv` export (glibc reads its tunables
 * when a process starts, so they cannot be set later). What those replaced is kept in
 * IPCKIT_BENCH_RUN_ENV, for runEnv.
 */
export function caseProcessEnv(runPid: number, caseEnv: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { IPCKIT_BENCH_RUN_ENV: _inherited, ...base } = process.env; // never a parent's
  const replaced = Object.fromEntries(Object.keys(caseEnv).map((k) => [k, base[k] ?? null]));
  return { ...base, ...caseEnv, IPCKIT_BENCH_RUN: String(runPid), ...(Object.keys(caseEnv).length ? { IPCKIT_BENCH_RUN_ENV: JSON.stringify(replaced) } : {}) };
}

/**
 * In a case process: the environment as the run had it, before its module's caseEnv: for the
 * processes a case starts as a user's program would start them (the pools' workers).
 */
export function runEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  const replaced = JSON.parse(env.IPCKIT_BENCH_RUN_ENV ?? '{}') as Record<string, string | null>;
  delete env.IPCKIT_BENCH_RUN_ENV;
  for (const [k, v] of Object.entries(replaced)) {
    if (v === null) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** The tag of case process `pid` of run `run` (benchTag). */
export const caseTag = (run: number, pid: number): string => `${run}-${pid}`;

/** How every name a case makes begins: `ipckit-bench-<tag>-` (this process's tag by default). */
export const benchPrefix = (tag: string = benchTag()): string => `ipckit-bench-${tag}-`;

/**
 * Removes what a case process that died had named: its tag is in every name (benchPrefix),
 * and a dead process's names are nobody else's. POSIX queues (/dev/mqueue), shared memory and
 * named semaphores (/dev/shm, `sem.` before a semaphore's name), socket files and folders
 * (the temporary folder). System V objects have no name to go by: madeSysv.
 */
export function removeNamedBy(tag: string): void {
  const prefix = benchPrefix(tag);
  for (const dir of ['/dev/mqueue', '/dev/shm', tmpdir()]) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue; // no mqueue file system here
    }
    for (const name of names) {
      if (!name.startsWith(prefix) && !name.startsWith(`sem.${prefix}`)) continue;
      rmSync(join(dir, name), { recursive: true, force: true });
    }
  }
}

/** A System V object a case process made: it has no name that carries the process's tag. */
export interface SysvMade {
  kind: 'msg' | 'sem';
  id: number;
}

/**
 * In a case process: tells the run that this process made `object`, so that the run removes
 * it if this process exits without doing so (killed, crashed: run.ts removeSysvMade).
 * Returns `object`.
 */
export function madeSysv<T extends { id: number }>(kind: SysvMade['kind'], object: T): T {
  sendToRun({ type: 'made', kind, id: object.id });
  return object;
}

/**
 * In a case process: a message to the run (bench/case-process.ts FromCase). A send while the
 * channel closes reports to its callback, not as an 'error' event: dropped, as the run is gone.
 */
export function sendToRun(message: object): void {
  if (process.connected) process.send?.(message, () => {});
}

/**
 * Waits for peers started side by side (their processes start in parallel, and before any
 * is measured); if one fails to start, ends those that did (`end`) and rethrows its error.
 */
export async function startAll<P>(starting: Array<Promise<P>>, end: (peer: P) => Promise<unknown>): Promise<P[]> {
  const started = await Promise.allSettled(starting);
  const peers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (!failed) return peers;
  for (const p of peers) await end(p).catch(() => {});
  throw failed.reason;
}

/**
 * What a case starts in its first round and keeps to the end of the run (its children, its
 * pools), ended by the case's Scenario.close(): a fresh Node child runs slower until its
 * code is optimized (a spawnProcess child's one-way rate ramps for ~0.5 s), longer than a
 * quick round's warm-up can wait, and a user's long-lived child is past that. A start that
 * fails is not kept: the next round tries again; a round that fails closes what was kept.
 */
export class Kept<T> {
  #value: Promise<T> | undefined;

  constructor(readonly end: (value: T) => Promise<unknown>) {}

  /** Whether something is kept (from an earlier round). */
  get kept(): boolean {
    return this.#value !== undefined;
  }

  /** What was kept, or what `start` makes (the first time, or after a close). */
  get(start: () => Promise<T>): Promise<T> {
    if (!this.#value) {
      const value = start();
      this.#value = value;
      value.catch(() => {
        if (this.#value === value) this.#value = undefined;
      });
    }
    return this.#value;
  }

  async close(): Promise<void> {
    const value = this.#value;
    this.#value = undefined;
    const v = await value?.catch(() => undefined);
    if (v !== undefined) await this.end(v).catch(() => {});
  }
}

/** A peer a case keeps from round to round (KeptPeers). */
export interface KeptPeer {
  /** Its child process: the peer is used again only while that process runs. */
  readonly pid: number;
  /**
   * Settles when that process exits: a measurement on a channel with no end of stream (a
   * queue, a datagram socket, Node's IPC) would otherwise wait for it for ever; `use` and
   * startedTogether fail the measurement instead (whilePeerRuns).
   */
  readonly exited?: Promise<unknown>;
  /** Ends it: its child, its channel and what it made. */
  end(): Promise<void>;
  /**
   * Removes at once what would outlive the bench if it exited without end() (a second
   * Ctrl-C quits at once): a System V queue, a socket file.
   */
  abandon?(): void;
}

/** A peer process as whilePeerRuns watches it: a KeptPeer, a BenchChild. */
export type PeerProcess = Pick<KeptPeer, 'pid' | 'exited'>;

/**
 * `measuring`, failed as soon as a peer's process exits (KeptPeer.exited, BenchChild.exited):
 * on a channel with no end of stream (a queue, a datagram socket, Node's IPC, a semaphore, a
 * work queue) a measurement would wait for a dead peer for ever. Whoever made the channel
 * then closes it, which ends the wait the measurement was left in (a lost race leaves it
 * waiting until then).
 */
export function whilePeerRuns<R>(peers: PeerProcess | readonly PeerProcess[], measuring: Promise<R>): Promise<R> {
  const watched = (Array.isArray(peers) ? peers : [peers]) as readonly PeerProcess[];
  const deaths = watched.flatMap((peer) => (peer.exited ? [peer.exited.then(() => Promise.reject(new Error(`the peer (process ${peer.pid}) exited during the measurement`)))] : []));
  if (!deaths.length) return measuring;
  for (const d of deaths) d.catch(() => {}); // the measurement usually ends first
  return Promise.race([measuring, ...deaths]);
}

/** Whether process `pid` runs (one we may not signal runs too). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Kept, one per key: the peers a case keeps from its first round to the end of the run, one
 * for each size and kind of figure (bench/streams.ts startedTogether). A kept peer whose
 * child died between rounds is ended and started again; `use` ends a peer whose measurement
 * failed (the next round starts a new one); `close` ends them all (Scenario.close).
 */
export class KeptPeers<T extends KeptPeer> {
  readonly #kept = new Map<string, Kept<T>>();
  /** The peers started and not ended: what an exit without close() abandons. */
  readonly #live = new Set<T>();
  /** The peers that have had a measurement (KeptPeers.measure). */
  readonly #measured = new WeakSet<T>();
  #exitHook = false;

  async get(key: string, start: () => Promise<T>): Promise<T> {
    const old = this.#kept.get(key);
    if (old?.kept) {
      const peer = await old.get(start);
      if (isRunning(peer.pid)) return peer;
      await this.drop(key);
    }
    const kept = new Kept<T>((p) => {
      this.#live.delete(p);
      return p.end();
    });
    this.#kept.set(key, kept);
    const peer = await kept.get(start);
    this.#live.add(peer);
    if (peer.abandon && !this.#exitHook) {
      this.#exitHook = true;
      process.once('exit', () => {
        for (const p of this.#live) {
          try {
            p.abandon?.();
          } catch {
            // gone already
          }
        }
      });
    }
    return peer;
  }

  /**
   * Measures `body` with the peer kept under `key` (started if there is none); a failure ends
   * that peer, and so does the end of the body unless `keep` (Budget.keepPeers).
   */
  async use<R>(key: string, start: () => Promise<T>, body: (peer: T) => Promise<R>, keep: boolean): Promise<R> {
    const peer = await this.get(key, start);
    let kept = false;
    try {
      const r = await this.measure(peer, () => body(peer));
      kept = keep;
      return r;
    } finally {
      if (!kept) await this.drop(key);
    }
  }

  /**
   * Runs one measurement on `peer` (whilePeerRuns), its one-way rates warmed up for at
   * least Budget.freshPeerWarmSeconds when it is the peer's first.
   */
  async measure<R>(peer: T, body: () => Promise<R>): Promise<R> {
    const fresh = !this.#measured.has(peer);
    this.#measured.add(peer);
    // Nested (the work queue's two consumers): the figure is a fresh peer's if either is.
    const outer = freshPeer;
    freshPeer = outer || fresh;
    try {
      return await whilePeerRuns(peer, body());
    } finally {
      freshPeer = outer;
    }
  }

  async drop(key: string): Promise<void> {
    const k = this.#kept.get(key);
    this.#kept.delete(key);
    await k?.close();
  }

  async close(): Promise<void> {
    for (const key of [...this.#kept.keys()]) await this.drop(key);
  }
}

/** Closes every peer, one after the other; a failure does not stop the others. */
export async function closeAll(peers: Array<{ close(): Promise<unknown> }>): Promise<void> {
  for (const p of peers) await p.close().catch(() => {});
}

// stamp and seqOf run once per message of every figure: a DataView per call took 31% of a
// Unix stream sink's CPU (a CPU profile, 2026-12-05), the bench measuring itself. They copy
// the 8 bytes through one f64 instead, little-endian as the DataView wrote them (other
// fields of the bench's messages, the acknowledgements' counts, are written that way too).
const seqValue = new Float64Array(1);
const seqBytes = new Uint8Array(seqValue.buffer);
const byteAt = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? [0, 1, 2, 3, 4, 5, 6, 7] : [7, 6, 5, 4, 3, 2, 1, 0];

/** A message of `size` bytes whose first 8 bytes hold `seq` (an f64, little-endian). */
export function stamp(buf: Uint8Array, seq: number): Uint8Array {
  if (buf.length >= 8) {
    seqValue[0] = seq;
    for (let i = 0; i < 8; i++) buf[i] = seqBytes[byteAt[i]!]!;
  }
  return buf;
}

export function seqOf(buf: Uint8Array): number {
  if (buf.length < 8) return -1;
  for (let i = 0; i < 8; i++) seqBytes[byteAt[i]!] = buf[i]!;
  return seqValue[0]!;
}

export interface BenchChild {
  child: ChildProcess;
  /** Its pid (whilePeerRuns names it). */
  pid: number;
  /** The next JSON line the child prints on stdout. */
  nextLine(): Promise<any>;
  /** Waits for the child to exit; kills it if it has not within `ms`. */
  finish(ms?: number): Promise<void>;
  /** Settles when the child has exited. */
  exited: Promise<void>;
  /**
   * Orders one more run of its role with `args` from a child started with `{ serves: true }`
   * (child.ts reads the orders from its stdin); `finish` closes its stdin first, its end
   * of the orders.
   */
  order(args: unknown): void;
}

/**
 * Starts the child side of a scenario: `node dist/bench/child.js <module> <role> <json>`;
 * the child talks back in JSON lines on stdout. `stdio` entries from index 3 are passed on.
 * `serves`: instead of running its role once with `args`, it runs it once per order
 * (BenchChild.order), read from its stdin, and says `{"served":true}` after each; between
 * two it waits in epoll, with no timer (withChild).
 */
export function startChild(module: string, role: string, args: unknown, extraStdio: Array<number | 'ignore' | 'pipe'> = [], { serves = false } = {}): BenchChild {
  const child = spawn(process.execPath, [childScript, module, role, JSON.stringify(args ?? {}), ...(serves ? ['serve'] : [])], {
    stdio: [serves ? 'pipe' : 'ignore', 'pipe', 'inherit', ...extraStdio] as StdioOptions,
  });
  child.stdin?.on('error', () => {}); // a child gone fails the measurement waiting on it, not the bench
  const rl = createInterface({ input: child.stdout! });
  const lines: string[] = [];
  const waiting: Array<{ resolve: (v: any) => void; reject: (e: Error) => void }> = [];
  rl.on('line', (line) => {
    const w = waiting.shift();
    if (w) w.resolve(JSON.parse(line));
    else lines.push(line);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => {
    for (const w of waiting.splice(0)) w.reject(new Error(`bench child ${module}/${role} exited before answering`));
  });
  return {
    child,
    pid: child.pid!,
    nextLine: () =>
      new Promise((resolve, reject) => {
        const l = lines.shift();
        if (l !== undefined) resolve(JSON.parse(l));
        else if (child.exitCode !== null || child.signalCode !== null) reject(new Error(`bench child ${module}/${role} has exited`));
        else waiting.push({ resolve, reject });
      }),
    finish: (ms) => endChild(child, () => child.stdin?.end(), ms),
    exited,
    order: (value) => {
      if (!child.stdin) throw new Error(`bench child ${module}/${role} was started without { serves: true }`);
      child.stdin.write(`${JSON.stringify(value ?? {})}\n`);
    },
  };
}

/** A child kept to run its role once per order (startChild's `serves`), for withChild. */
export interface ServingChild extends KeptPeer {
  readonly child: BenchChild;
  /** The CPUs it started with (placement.ts affinity), given back after each measurement. */
  readonly cpus: string | undefined;
}

/**
 * Runs `body` with a child of `module` running `role` with `args`, as a new child would:
 * `body` reads its lines (ready, results) and ends what it runs by the role's own protocol.
 * In a full run (`keep` false) the child is new, and ended after `body`. In a quick run
 * (Budget.keepPeers, docs/bench.md Rounds) it is the one kept under `key` in `kept`: it
 * runs its role again for each measurement, its code optimized by the earlier ones, and no
 * Node process starts in the measurement's round (about 0.1 s each on a 2-vCPU VM); after
 * `body` it says it has served and waits, idle, for the next. A failure ends it
 * (KeptPeers.use); the next round starts another.
 * A measurement may pin the child (placement.ts pin, pinnedPair); it gets the CPUs it
 * started with back after each one, as a new child would have them: an endpoint's spin
 * default follows the CPUs its process may use when it is made (os/spin.ts spinOption), and
 * kept pinned, a semaphore echo made its next endpoints never spin (round trips 2.3 us
 * instead of 0.5, by hand on a 2-vCPU VM).
 */
export async function withChild<R>(kept: KeptPeers<ServingChild>, key: string, keep: boolean, module: string, role: string, args: unknown, body: (child: BenchChild) => Promise<R>): Promise<R> {
  // A failed measurement kills its child at once: it may be waiting on what its parent made,
  // which is closed only once this returns (the parent makes and removes every name).
  const orKill = async (child: BenchChild): Promise<R> => {
    try {
      return await body(child);
    } catch (e) {
      child.child.kill('SIGKILL');
      throw e;
    }
  };
  if (!keep) {
    // Not KeptPeers.use(…, false): its whilePeerRuns would fail a measurement whose child,
    // run once, exits as its role ends, while `body` is still finishing.
    const child = startChild(module, role, args);
    try {
      return await orKill(child);
    } finally {
      await child.finish(SERVED_MS);
    }
  }
  const start = async (): Promise<ServingChild> => {
    const child = startChild(module, role, null, [], { serves: true });
    return { child, pid: child.pid, exited: child.exited, cpus: affinity(child.pid), end: () => child.finish(SERVED_MS) };
  };
  return kept.use(key, start, async ({ child, cpus }) => {
    child.order(args);
    const r = await orKill(child);
    // A role that does not end after its stop would leave the case waiting for ever.
    await withinMs(child.nextLine(), SERVED_MS, () => new Error(`bench child ${module}/${role} (process ${child.pid}) did not end its run within ${SERVED_MS / 1000} s`));
    restoreAffinity(child.pid, cpus);
    return r;
  }, true);
}

/** How long a child has to end its run once its measurement is over (told to stop, or its channel closed). */
const SERVED_MS = 10_000;

/** `p`, or `timeout()`'s error once `ms` have passed. */
async function withinMs<T>(p: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(timeout()), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Ends a child the bench started: asks it (`ask`: close its input, disconnect, a signal),
 * then waits for it to exit, and kills it if it has not within `ms`. At once if it has exited.
 */
export async function endChild(child: ChildProcess, ask: () => void, ms = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  ask();
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited;
  clearTimeout(timer);
}

/** In a child: prints one JSON line for the parent. */
export function tell(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

// --- C reference programs ---

const cDir = join(packageRoot, 'bench', 'c');
const cBuildDir = join(packageRoot, 'build', 'bench-c');
let ccChecked: boolean | undefined;

export function haveCc(): boolean {
  if (ccChecked === undefined) ccChecked = spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0;
  return ccChecked;
}

/** Compiles bench/c/<name>.c unless the binary is newer than it and every bench/c/*.h; null without a compiler. */
export function compileC(name: string, libs: string[] = []): string | null {
  if (!haveCc()) return null;
  const src = join(cDir, `${name}.c`);
  const bin = join(cBuildDir, name);
  const headers = readdirSync(cDir).filter((f) => f.endsWith('.h')).map((f) => join(cDir, f));
  mkdirSync(cBuildDir, { recursive: true });
  const fresh = existsSync(bin) && statSync(bin).mtimeMs >= Math.max(...[src, ...headers].map((f) => statSync(f).mtimeMs));
  if (!fresh) {
    const r = spawnSync('cc', ['-O2', '-Wall', '-o', bin, src, ...libs, '-lrt', '-lpthread'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cc failed for bench/c/${name}.c:\n${r.stderr}`);
  }
  return bin;
}

export interface CResult {
  p50_us?: number;
  p99_us?: number;
  n?: number;
  msgs_per_sec?: number;
  mb_per_sec?: number;
  sender_cpu_us?: number;
  /** 'receiver': the rate was timed by the receiver (harness.h rate_meter_print, DeliveryClock here). */
  timing?: string;
  /** The warm-up's length and whether it reached a steady rate (harness.h lat_meter, rate_meter). */
  warmup_s?: number;
  steady?: number;
  note?: string;
  /** Why there is no result (set by runC, not by the program). */
  notMeasured?: string;
  /** The CPUs' placement around the run (set by runC: harness.ts farther). */
  cpuProbeNs?: number | null;
}

/**
 * How long a C reference may run before it is taken as stalled: 20 times its budget (at
 * least 10 s), so a loaded or slower machine gets proportionally more, and a stalled one
 * (the C futex ring's one-way run stalls now and then: a lost wake-up) costs a --quick run
 * seconds, not minutes.
 */
export function cTimeLimitSeconds(budget: Budget, mode: 'lat' | 'thr'): number {
  const secs = mode === 'lat' ? budget.rttSeconds : budget.thrSeconds;
  return Math.max(10, Math.ceil(20 * (secs + budget.warm.capSeconds)));
}

/**
 * How long a C reference's round trip waits, idle, after the probe of the CPUs that places
 * it. A blocking round trip started right after a probe ran faster for its first 40-80 ms
 * (in 20-ms windows: 28, 23-24, then 37-40 us). C's Unix stream pair,
 * quick warm-up and 80-ms part, 7 runs of each, interleaved (2-vCPU VM, Linux 6.18): right
 * after a probe 24.1-39.9 us; after a probe and 10 ms idle 37.9-51.2; after a C pipe blasting
 * one way for 0.1 s 40.1-49.2; after 0.1 s idle 38.6-41.4. A probe spins both CPUs without a
 * system call; what in the host makes the wake-ups after it faster was not found. A quick
 * run's two agreeing 20-ms windows ended inside that stretch, and quick runs put C's blocking
 * round trips at 0.84x-0.97x the full run's (C's Unix stream outside 25% in 4 of 10). Five C
 * references (pipe, FIFO, Unix stream, TCP, signal), each after a probe, 5 rounds
 * interleaved: with this idle time, medians within 4% of a full run's warm-up and 0.4-s part;
 * without, 0.5-6% below, single rounds down to 0.75x. Warming up for at least 0.1 s instead
 * did as well, at three times the cost. 20 ms: twice the idle time that sufficed.
 */
export const C_RTT_IDLE_AFTER_PROBE_SECONDS = 0.02;

/**
 * Runs a C reference program: `<bin> lat|thr SIZE MAX_MSGS MAX_SECONDS [extra...]`, which
 * prints one JSON line. A program that fails or overruns its time limit is killed and its
 * result says exactly why (`notMeasured`), rather than failing the whole case: the figure
 * then prints NOT MEASURED with that cause. (Its forked child dies with it: harness.h sets
 * PR_SET_PDEATHSIG.) Round trips and one-way runs warm up as ours do, until two successive
 * windows agree (IPCKIT_BENCH_WARM; harness.h warm_up, lat_meter, rate_meter); a round trip
 * starts C_RTT_IDLE_AFTER_PROBE_SECONDS after its probe.
 */
export function runC(bin: string, mode: 'lat' | 'thr', size: number, budget: Budget, extra: string[] = []): CResult {
  const before = recentProbe(); // its figure's placement: nothing of ours is measured now
  if (mode === 'lat') sleepSync(C_RTT_IDLE_AFTER_PROBE_SECONDS * 1000); // a case process between two measurements: nothing else runs
  const [msgs, secs] = mode === 'lat' ? [budget.rttMessages, budget.rttSeconds] : [budget.thrMessages, budget.thrSeconds];
  const limit = cTimeLimitSeconds(budget, mode);
  const what = `C reference ${bin.split('/').pop()} ${[mode, size, ...extra].join(' ')}`;
  // The C side warms up as ours does (harness.h warm_up): until two windows agree, or the cap.
  const warm = `${budget.warm.windowSeconds},${budget.warm.tolerance},${budget.warm.capSeconds}`;
  const r = runCJson<CResult>(what, bin, [mode, String(size), String(msgs), String(secs), ...extra], { limitSeconds: limit, killed: `(it measures for ${secs} s) and was killed: it stalled`, env: { ...process.env, IPCKIT_BENCH_WARM: warm } });
  return placedAfter({ ...('result' in r ? r.result : { notMeasured: r.why }), ...probedBy({ cpuProbeNs: before }) });
}

/**
 * Runs a C program of bench/c and reads the JSON line it prints last: its result, or why
 * there is none (`what` names it): killed at `limitSeconds` (`killed` says how the reason
 * goes on), failed (with its stderr), or printed no JSON.
 */
export function runCJson<T>(what: string, bin: string, args: string[], options: { limitSeconds: number; killed?: string; env?: NodeJS.ProcessEnv }): { result: T } | { why: string } {
  // IPCKIT_BENCH_PARENT: the reference dies with this process (harness.h die_with_parent).
  const env = { ...(options.env ?? process.env), IPCKIT_BENCH_PARENT: String(process.pid) };
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: options.limitSeconds * 1000, killSignal: 'SIGKILL', env });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') {
    return { why: `${what}: did not finish within its time limit of ${options.limitSeconds} s ${options.killed ?? 'and was killed'}${r.stderr ? ` (stderr: ${r.stderr.trim().slice(0, 200)})` : ''}` };
  }
  if (r.status !== 0) return { why: `${what}: failed (${r.status ?? r.signal ?? r.error?.message})${r.stderr ? `: ${r.stderr.trim().slice(0, 300)}` : ''}` };
  const line = r.stdout.trim().split('\n').pop() ?? '{}';
  try {
    return { result: JSON.parse(line) as T };
  } catch {
    return { why: `${what}: printed no result (${line.slice(0, 100)})` };
  }
}

/** A Figure from a C program's result. */
export function cFigure(mechanism: string, variant: string, metric: Metric, size: number, r: CResult): Figure {
  if (r.notMeasured) return { mechanism, variant, role: 'c', metric, size, n: 0, notMeasured: r.notMeasured };
  const warmup = r.warmup_s !== undefined ? { warmup: { seconds: r.warmup_s, steady: r.steady === 1 } } : {};
  if (metric === 'rtt') return { mechanism, variant, role: 'c', metric, size, n: r.n ?? 0, p50Us: r.p50_us!, p99Us: r.p99_us!, ...warmup, ...(r.note ? { note: r.note } : {}), ...probedBy(r) };
  return { mechanism, variant, role: 'c', metric, size, n: r.n ?? 0, msgsPerSec: r.msgs_per_sec!, mbPerSec: r.mb_per_sec ?? (r.msgs_per_sec! * size) / 1e6, ...(r.sender_cpu_us !== undefined ? { senderCpuUs: r.sender_cpu_us } : {}), ...(r.timing === 'receiver' ? { timing: 'receiver' as const } : {}), ...warmup, ...(r.note ? { note: r.note } : {}), ...probedBy(r) };
}

/** Runs the C program for every size and both metrics (skips with a note when there is no compiler). */
export function cFigures(ctx: BenchContext, program: string, mechanism: string, variant: string, sizes: number[], libs: string[] = [], extra: string[] = []): Figure[] {
  const bin = ctx.cProgram(program, libs);
  if (!bin) return [];
  const out: Figure[] = [];
  for (const size of sizes) {
    ctx.progress(`${mechanism}: ${variant} ${size} B`);
    out.push(cFigure(mechanism, variant, 'rtt', size, runC(bin, 'lat', size, ctx.budget, extra)));
    out.push(cFigure(mechanism, variant, 'throughput', size, runC(bin, 'thr', size, ctx.budget, extra)));
  }
  return out;
}
