/**
 * Bench: spawnProcess against child_process.fork + process.send, in the same run, with
 * interleaved rounds (send, ours, ours with spinning off, send, ...) so that the load of
 * the machine falls on every side alike; each figure is the median over rounds of the
 * round's p50 (RTT) or rate (one-way), with the spread (min..max) in the note.
 *
 * - Both sides carry the same JSON object, `{ s, d, echo }`, `d` a string of the size,
 *   with the default codec of each ('json' for both: fork's default serialization).
 * - RTT: the parent sends, the child echoes; pinned parent CPU 0 / child CPU 1 as every
 *   Node and C round trip in `ipckit bench` (bench/placement.ts).
 * - One-way: the parent sends as fast as the channel lets it (process.send: waits for the
 *   callback when send returns false; ours: sendMany of 256 messages at a time, the way to
 *   send many, and in a full run also trySend per message, then send when full); the child
 *   counts and acknowledges the last; rate = messages / (first send .. acknowledgement),
 *   over one blast that starts with nothing in flight, after a warm-up of blasts until two
 *   successive ones agree (budget.warm).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { spawnProcess, type SpawnedProcess } from '../src/mechanisms/process/process.js';
import { parentChannel } from '../src/mechanisms/process/parent.js';
import { decodeWith, encodeBorrowed, jsonCodec, ownBytes } from '../src/core/codec.js';
import { BATCH_MESSAGES, batchingCodec, encodeBatches } from '../src/mechanisms/process/batches.js';
import { fullLengthBudget, closeAll, endChild, Kept, now, RttMeter, sizesOf, startAll, throughputFigure, type BenchContext, type Figure, type Scenario, type Target } from './harness.js';
import type { ReportFigure } from './report.js';
import { pinnedPair } from './placement.js';
import { Steady } from './stats.js';

const childScript = fileURLToPath(new URL('./child.js', import.meta.url));

const SEND = 'fork + process.send';
const OURS = 'spawnProcess';
const OURS_NOSPIN = 'spawnProcess, spinMicros 0';
/** One-way only: the default side sending with sendMany (batch frames of 256 messages, src/mechanisms/process/batches.ts). */
const OURS_MANY = `spawnProcess, sendMany of ${BATCH_MESSAGES}`;
/** One-way only: the same transport carrying 64-B buffers (codec 'bytes'), to show what the transport carries without JSON. */
const OURS_BYTES = "spawnProcess, codec 'bytes'";
const RTT_SIZES = [64, 1024];

interface Side {
  variant: string;
  pid: number;
  /** One round trip of `m`. */
  roundTrip(m: unknown): Promise<void>;
  /**
   * Sends `count` messages one way as fast as the channel takes them (`many`: with sendMany,
   * BATCH_MESSAGES at a time); resolves with the count the child acknowledged.
   */
  blast(count: number, deadline: bigint, m: (s: number) => unknown, many?: boolean): Promise<{ sent: number; acked: number }>;
  /** The one-way message with sequence number `s` and a payload of `size` bytes. */
  oneWay(size: number): (s: number) => unknown;
  close(): Promise<void>;
}

function forkSide(): Promise<Side> {
  const child: ChildProcess = fork(childScript, ['process', 'forkPeer', '{}'], { serialization: 'json', stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const once = (): Promise<any> => new Promise((r) => child.once('message', r));
  return once().then(() => ({
    variant: SEND,
    pid: child.pid!,
    async roundTrip(m) {
      const reply = once();
      child.send(m as object);
      await reply;
    },
    async blast(count, deadline, m) {
      let n = 0;
      for (; n < count; n++) {
        if (!child.send(m(n) as object)) await new Promise<void>((r) => child.send({ s: -2 }, () => r()));
        if ((n & 255) === 255 && now() > deadline) {
          n++;
          break;
        }
      }
      const ack = once();
      child.send({ s: -1 });
      return { sent: n, acked: ((await ack) as { n: number }).n };
    },
    oneWay: jsonOneWay,
    close: () => endChild(child, () => (child.connected ? child.disconnect() : child.kill())),
  }));
}

/** Both JSON sides carry the same object: `{ s, d }`, `d` a string of the size. */
function jsonOneWay(size: number): (s: number) => unknown {
  const d = 'x'.repeat(size);
  return (s) => ({ s, d });
}

async function oursSide(variant: string, options: { spinMicros?: number; codec?: 'bytes' } = {}): Promise<Side> {
  const peer = options.codec === 'bytes' ? 'spawnBytesPeer' : 'spawnPeer';
  const p: SpawnedProcess<any> = spawnProcess(childScript, { args: ['process', peer, '{}'], stdout: 'ignore', ...options });
  await p.receive(); // ready
  const bytes = options.codec === 'bytes';
  return {
    variant,
    pid: p.pid,
    async roundTrip(m) {
      await p.send(m);
      await p.receive();
    },
    async blast(count, deadline, m, many) {
      let n = 0;
      if (many) {
        const batch: unknown[] = [];
        while (n < count) {
          batch.length = 0; // sendMany encodes before it returns: the array may be reused
          const k = Math.min(BATCH_MESSAGES, count - n);
          for (let i = 0; i < k; i++) batch.push(m(n + i));
          await p.sendMany(batch);
          n += k;
          if (now() > deadline) break;
        }
      }
      for (; n < count && !many; n++) {
        const msg = m(n);
        if (!p.trySend(msg)) await p.send(msg);
        if ((n & 255) === 255 && now() > deadline) {
          n++;
          break;
        }
      }
      if (!bytes) {
        await p.send({ s: -1 });
        return { sent: n, acked: ((await p.receive()) as { n: number }).n };
      }
      await p.send(new Uint8Array(1)); // the end: a 1-byte message; the child answers with its count (u32)
      const ack = (await p.receive()) as Uint8Array;
      return { sent: n, acked: Buffer.from(ack.buffer, ack.byteOffset, ack.byteLength).readUInt32LE(0) };
    },
    oneWay: bytes
      ? (size) => {
          // One buffer, its first 4 bytes the sequence number: send copies it into the ring before it resolves.
          const b = Buffer.alloc(size, 120);
          return (s) => (b.writeUInt32LE(s, 0), b);
        }
      : jsonOneWay,
    async close() {
      await p.close();
    },
  };
}

async function rttRound(ctx: BenchContext, side: Side, size: number): Promise<ReturnType<RttMeter['result']>> {
  const d = 'x'.repeat(size);
  // The one measuring clock of every RTT figure: warm until steady, then the measured part
  // (process.send's as long as a full run's, as the Node baselines': harness.ts fullLengthBudget).
  const meter = new RttMeter(side.variant === SEND ? fullLengthBudget(ctx.budget) : ctx.budget);
  await pinnedPair(ctx, side.pid, async () => {
    for (let i = 0; ; i++) {
      const t0 = now();
      await side.roundTrip({ s: i, d, echo: true });
      if (meter.add(Number(now() - t0))) break;
    }
  });
  return meter.result();
}

async function thrRound(ctx: BenchContext, sender: OneWaySender, size: number): Promise<{ rate: number; warmup: { seconds: number; steady: boolean } }> {
  const { side, variant, many } = sender;
  const m = side.oneWay(size);
  // process.send's blast as long as a full run's (0.133 s, not 0.1), as its round trip
  // (rttRound): alternated quick runs of this case, 8 rounds each, put it at 0.34-0.42M msg/s
  // in 4 of 32 rounds with the 0.1-s blast, against 0.49-0.57M in all 32 with the longer one.
  const budget = variant === SEND ? fullLengthBudget(ctx.budget) : ctx.budget;
  // Warm-up until steady, as every one-way figure (bench/stats.ts Steady): blasts of one
  // window each, until two successive ones agree. A fresh child's rate ramps for ~0.5 s with
  // neighbours that agree on the way, so a run's first round may measure part of it; the
  // children are kept for the next rounds (harness.ts Kept), and a figure is the rounds' median.
  const steady = new Steady(budget.warm);
  const warmStart = now();
  for (;;) {
    const t0 = now();
    const warm = await side.blast(budget.thrMessages, t0 + BigInt(Math.round(budget.warm.windowSeconds * 1e9)), m, many);
    if (warm.sent !== warm.acked) throw new Error(`${variant}: the child counted ${warm.acked} of ${warm.sent} messages (warm-up)`);
    const t1 = now();
    if (steady.window(warm.sent / (Number(t1 - t0) / 1e9), Number(t1 - warmStart) / 1e9)) break;
  }
  const warmup = { seconds: +(Number(now() - warmStart) / 1e9).toFixed(3), steady: steady.steady };
  // Measured: one blast that starts with nothing in flight and ends when the child has
  // acknowledged the last message, so no backlog is counted or left out.
  const start = now();
  const seconds0 = Math.max(0.1, budget.thrSeconds / 3);
  const { sent, acked } = await side.blast(Math.floor(budget.thrMessages / 3), start + BigInt(Math.round(seconds0 * 1e9)), m, many);
  const seconds = Number(now() - start) / 1e9;
  if (sent !== acked) throw new Error(`${variant}: the child counted ${acked} of ${sent} messages`);
  return { rate: sent / seconds, warmup };
}

/** A one-way row: a side, and whether it sends with sendMany. */
interface OneWaySender {
  variant: string;
  side: Side;
  many: boolean;
}

/**
 * What the 'json' codec alone costs per message of the one-way case, on this CPU, now, done
 * as the ring does it: the encode (JSON.stringify + UTF-8 into the reused buffer) and the
 * decode (UTF-8 + JSON.parse), each timed over `ms` of calls. One side can carry at most
 * 1/max of them per second whatever the transport: the ceiling a missed one-way target is
 * measured against.
 */
function jsonCostUs(size: number, ms = 80): JsonCost {
  const d = 'x'.repeat(size);
  const time = (f: (i: number) => void): number => {
    // Warm for half as long (optimized code) before timing: counted in calls, the batch
    // frames' warm-up alone took 1.8 s, and this runs when a quick run reports its miss.
    const warmUntil = now() + BigInt((ms / 2) * 1e6);
    for (let i = 0; now() < warmUntil; ) for (let k = 0; k < 100; k++) f(i++);
    let n = 0;
    const start = now();
    const until = start + BigInt(ms * 1e6);
    while (now() < until) for (let k = 0; k < 1000; k++) f(n++);
    return Number(now() - start) / 1e3 / n;
  };
  let sink = 0;
  const encodeUs = time((i) => (sink += encodeBorrowed(jsonCodec, { s: i, d }).length));
  const bytes = ownBytes(encodeBorrowed(jsonCodec, { s: 123_456, d }));
  const decodeUs = time(() => (sink += (decodeWith(jsonCodec, bytes) as { s: number }).s));
  // A batch frame of BATCH_MESSAGES messages, as sendMany makes it and the child reads it, per message.
  const batch = Array.from({ length: BATCH_MESSAGES }, (_, i) => ({ s: i, d }));
  const wire = batchingCodec(jsonCodec);
  const batchEncodeUs = time(() => (sink += encodeBatches(jsonCodec, batch, 1 << 20, { borrowLast: true }).length)) / BATCH_MESSAGES;
  const frame = encodeBatches(jsonCodec, batch, 1 << 20)[0]!.bytes;
  const batchDecodeUs = time(() => (sink += (wire.decode(frame) as { items: unknown[] }).items.length)) / BATCH_MESSAGES;
  if (sink < 0) throw new Error('unreachable');
  return { encodeUs, decodeUs, batchEncodeUs, batchDecodeUs };
}

interface JsonCost {
  /** Per message, one at a time. */
  encodeUs: number;
  decodeUs: number;
  /** Per message, in batch frames of BATCH_MESSAGES. */
  batchEncodeUs: number;
  batchDecodeUs: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

// A miss is printed with what was measured around it (the cause, not an excuse), from the
// run's figures (medians over every round of the run).
const figureOf = (figures: ReportFigure[], variant: string, metric: 'rtt' | 'throughput', size: number): ReportFigure | undefined =>
  figures.find((f) => f.mechanism === 'process' && f.variant === variant && f.metric === metric && f.size === size && !f.notMeasured);
const spread = (f: ReportFigure, scale: number, unit: string): string => `${(f.value / scale).toFixed(2)}${unit} (rounds ${(f.min / scale).toFixed(2)}..${(f.max / scale).toFixed(2)})`;
const vsSendText = (f: ReportFigure | undefined): string => (f?.vsSend ? `${f.vsSend.ratio.toFixed(1)}x process.send's (rounds ${f.vsSend.min.toFixed(1)}..${f.vsSend.max.toFixed(1)})` : 'not compared');

const rttCause = (variant: string, size: number) => (figures: ReportFigure[]): string => {
  const ours = figureOf(figures, variant, 'rtt', size);
  const send = figureOf(figures, SEND, 'rtt', size);
  if (!ours || !send) return 'not measured in this run';
  return `measured under load: ${variant} p50 ${spread(ours, 1, ' us')} against process.send ${spread(send, 1, ' us')}; a round trip whose two sides sleep costs two cross-CPU futex wake-ups, and with 5 jobs on 2 CPUs the spinning side is often descheduled while it spins`;
};

// What JSON alone costs here: timed once, and only when a one-way target missed (about 0.5 s of calls).
let jsonCostOnce: JsonCost | undefined;

function oneWayCause(figures: ReportFigure[]): string {
  const ours = figureOf(figures, OURS_MANY, 'throughput', 64);
  const send = figureOf(figures, SEND, 'throughput', 64);
  if (!ours || !send) return 'not measured in this run';
  const one = figureOf(figures, OURS, 'throughput', 64);
  const bytes = figureOf(figures, OURS_BYTES, 'throughput', 64);
  const cost = (jsonCostOnce ??= jsonCostUs(64));
  const ceiling = (enc: number, dec: number): string => `${(1 / Math.max(enc, dec)).toFixed(2)}M msg/s, ${(1 / Math.max(enc, dec) / (send.value / 1e6)).toFixed(1)}x process.send's rate`;
  return [
    `measured: ${spread(ours, 1e6, 'M msg/s')} against process.send ${spread(send, 1e6, 'M msg/s')}, ${vsSendText(ours)}.`,
    `JSON alone, timed now on this message, per message: in batch frames of ${BATCH_MESSAGES} encode ${cost.batchEncodeUs.toFixed(2)} us and decode ${cost.batchDecodeUs.toFixed(2)} us, so no channel that sends it as JSON passes ${ceiling(cost.batchEncodeUs, cost.batchDecodeUs)} here (one message at a time: encode ${cost.encodeUs.toFixed(2)} us, decode ${cost.decodeUs.toFixed(2)} us, ${ceiling(cost.encodeUs, cost.decodeUs)}${one ? `; send() per message carried ${spread(one, 1e6, 'M msg/s')}, ${vsSendText(one)}` : ''}).`,
    bytes
      ? `The same transport with codec 'bytes' (64-B buffers) carried ${spread(bytes, 1e6, 'M msg/s')} in the same rounds, ${vsSendText(bytes)}: the transport has the rate, JSON does not`
      : "A full run also measures the transport with codec 'bytes' (64-B buffers): it has the rate (17-27x process.send's on the machines of docs/process.md), JSON does not",
  ].join(' ');
}

const targets: Target[] = [
  ...RTT_SIZES.map((size): Target => ({ mechanism: 'process', variant: OURS, metric: 'rtt', size, maxRatio: 0.5, compareTo: { variant: SEND }, text: `spawnProcess round trip at ${size} B: at most half of fork + process.send's (issue 12)`, ifMissed: rttCause(OURS, size) })),
  ...RTT_SIZES.map((size): Target => ({ mechanism: 'process', variant: OURS_NOSPIN, metric: 'rtt', size, maxRatio: 1, compareTo: { variant: SEND }, text: `spawnProcess with spinning off, round trip at ${size} B: no worse than fork + process.send (issue 12)`, ifMissed: rttCause(OURS_NOSPIN, size) })),
  { mechanism: 'process', variant: OURS_MANY, metric: 'throughput', size: 64, maxRatio: 0.1, compareTo: { variant: SEND }, text: `spawnProcess one-way at 64 B (sendMany of ${BATCH_MESSAGES}): at least 10x fork + process.send's; shown: process.send's rate / ours, at most 0.1 (issue 12)`, ifMissed: oneWayCause },
];

/** The case's children, kept from its first round to the end of the run (harness.ts Kept); every side alike, process.send's child too. */
const kept = new Kept<Side[]>(closeAll);

export const scenarios: Scenario[] = [
  {
    name: 'process',
    title: 'spawnProcess against fork + process.send (interleaved rounds)',
    targets,
    async run(ctx) {
      // Interleaved rounds of its own (A B C A B C ...); a quick run's 3 outer rounds interleave too.
      const rounds = ctx.quick ? 1 : 5;
      const sizes = sizesOf(ctx, RTT_SIZES); // --quick: 64 B only, as every case
      // The children start side by side (each waits until its child is up; none is measured yet).
      // The bytes side is a full run's only: a quick run would pass its minute with it.
      const all = await kept.get(() => startAll([forkSide(), oursSide(OURS), oursSide(OURS_NOSPIN, { spinMicros: 0 }), ...(ctx.quick ? [] : [oursSide(OURS_BYTES, { codec: 'bytes' })])], (s) => s.close()));
      const sides = all.slice(0, 3);
      const bytesSide = all[3];
      const oneWay = (side: Side, variant = side.variant, many = false): OneWaySender => ({ variant, side, many });
      // Quick: process.send and sendMany (the target). Full: also send() per message, and the bytes codec.
      const oneWaySenders = [oneWay(sides[0]!), oneWay(sides[1]!, OURS_MANY, true), ...(bytesSide ? [oneWay(sides[1]!), oneWay(bytesSide)] : [])];
      const rtt = new Map<string, Array<{ p50Us: number; p99Us: number; n: number; warmup: { seconds: number; steady: boolean } }>>();
      const thr = new Map<string, Array<{ rate: number; warmup: { seconds: number; steady: boolean } }>>();
      try {
        for (let r = 0; r < rounds; r++) {
          for (const size of sizes) {
            for (const side of sides) {
              ctx.progress(`process: round ${r + 1}/${rounds}, ${side.variant} RTT ${size} B`);
              const key = `${side.variant}|${size}`;
              rtt.set(key, [...(rtt.get(key) ?? []), await rttRound(ctx, side, size)]);
            }
          }
          for (const sender of oneWaySenders) {
            ctx.progress(`process: round ${r + 1}/${rounds}, ${sender.variant} one-way 64 B`);
            thr.set(sender.variant, [...(thr.get(sender.variant) ?? []), await thrRound(ctx, sender, 64)]);
          }
        }
      } catch (e) {
        await kept.close(); // the next round starts children of its own
        throw e;
      }
      const out: Figure[] = [];
      for (const side of all) {
        const role = side.variant === SEND ? 'node' : 'ipckit';
        for (const size of sizes) {
          const rs = rtt.get(`${side.variant}|${size}`);
          if (!rs) continue; // the bytes side measures one-way only
          const p50s = rs.map((x) => x.p50Us);
          out.push({
            mechanism: 'process', variant: side.variant, role, metric: 'rtt', size,
            n: rs.reduce((a, x) => a + x.n, 0), p50Us: median(p50s), p99Us: median(rs.map((x) => x.p99Us)),
            warmup: { seconds: median(rs.map((x) => x.warmup.seconds)), steady: rs.every((x) => x.warmup.steady) },
            note: `median of ${rounds} rounds' p50, spread ${Math.min(...p50s).toFixed(1)}..${Math.max(...p50s).toFixed(1)} us`,
          });
        }
      }
      for (const { variant } of oneWaySenders) {
        const perRound = thr.get(variant)!;
        const rates = perRound.map((x) => x.rate);
        const warmup = { seconds: median(perRound.map((x) => x.warmup.seconds)), steady: perRound.every((x) => x.warmup.steady) };
        const f = throughputFigure({ mechanism: 'process', variant, role: variant === SEND ? 'node' : 'ipckit', size: 64 }, 1, 1 / median(rates), warmup);
        f.n = rates.length;
        f.note = `median of ${rounds} rounds, spread ${(Math.min(...rates) / 1e6).toFixed(2)}..${(Math.max(...rates) / 1e6).toFixed(2)}M msg/s`;
        out.push(f);
      }
      return out;
    },
    close: () => kept.close(),
  },
];

export const children = {
  async forkPeer(): Promise<void> {
    let n = 0;
    process.on('message', (m: { s: number; d?: string; echo?: boolean }) => {
      if (m.echo) process.send!(m);
      else if (m.s === -1) {
        process.send!({ n });
        n = 0;
      } else if (m.s >= 0) n++;
    });
    process.on('disconnect', () => process.exit(0));
    process.send!('ready');
  },
  async spawnPeer(): Promise<void> {
    const ch = parentChannel();
    await ch.send('ready');
    let n = 0;
    for (;;) {
      let m: { s: number; d?: string; echo?: boolean };
      try {
        m = (ch.tryReceive?.() ?? (await ch.receive())) as typeof m;
      } catch {
        break; // the parent closed
      }
      if (m.echo) {
        if (!ch.trySend?.(m)) await ch.send(m);
      } else if (m.s === -1) {
        await ch.send({ n });
        n = 0;
      } else if (m.s >= 0) n++;
    }
    process.exit(0);
  },
  /** codec 'bytes', one-way only: counts messages; a 1-byte message ends a run and is answered with the count (u32). */
  async spawnBytesPeer(): Promise<void> {
    const ch = parentChannel({ codec: 'bytes' });
    await ch.send(new Uint8Array(0)); // ready
    const ack = new Uint8Array(4);
    let n = 0;
    for (;;) {
      let m: Uint8Array;
      try {
        m = ch.tryReceive?.() ?? (await ch.receive());
      } catch {
        break; // the parent closed
      }
      if (m.length !== 1) {
        n++;
        continue;
      }
      new DataView(ack.buffer).setUint32(0, n, true);
      await ch.send(ack);
      n = 0;
    }
    process.exit(0);
  },
};
