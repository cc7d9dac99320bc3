/**
 * Bench: popen, one-way in both directions, against the C pipe(2) reference (popen is a
 * pipe to a child's stdin or from its stdout, so the pipe figure is the limit).
 *
 * - 'w' (child's stdin): after a warm-up larger than the pipe (so the child is up and
 *   reading), we send for the budget, then an end marker carrying the count; the child
 *   checks every sequence number and exits 0 only if all arrived. Timed by the child: from
 *   the measured part's first message (marked, harness.ts DeliveryClock) to the end marker,
 *   a reading it leaves in a file we read after close(). Timed until close() had the exit
 *   status (pclose), as before 2026-12-06, the figure counted the draining of our 1 MiB
 *   buffer and the child's exit, 11-13 ms: 15% of a quick run's 80 ms, 3% of a full run's
 *   0.4 s (quick figures 0.70x-0.91x the full run's, in 15 quick runs).
 * - 'r' (child's stdout): the child sends for the budget; we check every sequence number.
 *   Time runs from its first message to its end marker.
 *
 * No round trip: popen is one pipe, one direction (a round trip is the pipe scenario).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESOLVED } from '../src/core/channel.js';
import { openInheritedPipe } from '../src/mechanisms/pipe/pipe.js';
import { popen, type PopenReader, type PopenWriter } from '../src/mechanisms/popen/popen.js';
import { cPlacement } from './placement.js';
import { benchPrefix, cFigure, clockSeq, DeliveryClock, now, placedAfter, probedBy, RateMeter, runC, senderFigure, seqOf, sizesOf, stamp, throughputFigure, type BenchContext, type Budget, type Delivered, type Figure, type Scenario } from './harness.js';

const childScript = fileURLToPath(new URL('./child.js', import.meta.url));
const CAPACITY = 1024 * 1024;
const START = -2;
const END = -1;

/** The end marker: seq END, then the number of messages sent before it. */
function endMarker(buf: Uint8Array, count: number): Uint8Array {
  stamp(buf, END);
  new DataView(buf.buffer, buf.byteOffset, buf.length).setFloat64(8, count, true);
  return buf;
}
const countOf = (buf: Uint8Array): number => new DataView(buf.buffer, buf.byteOffset, buf.length).getFloat64(8, true);

async function toChild(size: number, budget: Budget): ReturnType<typeof sendAll> {
  const readingFile = join(tmpdir(), `${benchPrefix()}popen-reading-${size}`); // the child's DeliveryClock
  rmSync(readingFile, { force: true });
  const w = popen([process.execPath, childScript, 'popen', 'sink', JSON.stringify({ readingFile })], 'write', { capacityBytes: CAPACITY, stdout: 'ignore' });
  try {
    return await sendAll(w, size, budget, readingFile);
  } finally {
    rmSync(readingFile, { force: true });
  }
}

async function sendAll(w: PopenWriter<Uint8Array>, size: number, budget: Budget, readingFile: string): Promise<ReturnType<RateMeter['result']>> {
  const buf = new Uint8Array(Math.max(size, 16)).fill(120);
  // Warm-up: more than the pipe and our buffer hold, so the clock starts once the child
  // is up and reading (its start-up is not part of the figure).
  const warm = Math.ceil((CAPACITY + 512 * 1024) / (buf.length + 4));
  let n = 0;
  for (; n < warm; n++) await w.send(stamp(buf, n));
  // Then the steady-rate warm-up and the measured part (RateMeter counts from here).
  const first = n;
  const meter = new RateMeter(budget);
  for (;; n++) {
    // The meter counts from `first`, the child from 0: a mark (RateMeter.seq) in the child's numbering.
    stamp(buf, meter.seq(n - first) < 0 ? clockSeq(n) : n);
    const p = w.send(buf);
    if (p !== RESOLVED) await p;
    if ((n & 63) === 63 && meter.tick(n + 1 - first)) {
      n++;
      break;
    }
  }
  await w.send(endMarker(buf, n));
  const exit = await w.close();
  if (exit.exitCode !== 0) throw new Error(`the popen child found lost or reordered messages, or no marked one (${JSON.stringify(exit)})`);
  const delivered = JSON.parse(readFileSync(readingFile, 'utf8')) as Delivered;
  const measured = meter.result(n - first, delivered);
  // The sender's clock would count the child's exit (11-13 ms): no figure rather than that one.
  if (measured.timing !== 'receiver') throw new Error(`the popen child timed ${delivered.messages} messages, the measured part had ${measured.messages}`);
  return measured;
}

async function fromChild(size: number, budget: Budget): Promise<ReturnType<RateMeter['result']>> {
  // The child sends for longer than our warm-up cap and measured part together, or until
  // told (SIGUSR2) that we have our figure; we measure on the receiving side.
  const seconds = budget.warm.capSeconds + budget.thrSeconds + 0.25;
  const r = popen([process.execPath, childScript, 'popen', 'source', JSON.stringify({ size, seconds, max: Number.MAX_SAFE_INTEGER })], 'read', {
    capacityBytes: CAPACITY,
  });
  return receiveAll(r, budget);
}

async function receiveAll(r: PopenReader<Uint8Array>, budget: Budget): Promise<ReturnType<RateMeter['result']>> {
  const first = await r.receive();
  if (seqOf(first) !== START) throw new Error('the popen child did not start with its start marker');
  const meter = new RateMeter(budget);
  let measured: ReturnType<RateMeter['result']> | undefined;
  let expected = 0;
  for (;;) {
    for (const m of await r.receiveMany()) {
      const s = seqOf(m);
      if (s === END) {
        measured ??= meter.result(expected, undefined, { probe: false });
        if (countOf(m) !== expected) throw new Error(`the popen child sent ${countOf(m)} messages, ${expected} arrived`);
        const exit = await r.close();
        if (exit.exitCode !== 0) throw new Error(`the popen child failed: ${JSON.stringify(exit)}`);
        return placedAfter(measured); // the child has ended: nothing busy now
      }
      if (s !== expected) throw new Error(`sequence ${s} arrived, expected ${expected}`);
      expected++;
    }
    if (measured === undefined && meter.tick(expected)) {
      measured = meter.result(expected, undefined, { probe: false }); // the child is still sending
      // Done measuring: the child stops at its next turn of the event loop (when the pipe is
      // full). kill() does nothing once the child has ended (it may have met its deadline).
      r.kill('SIGUSR2');
    }
  }
}

export const scenarios: Scenario[] = [
  {
    name: 'popen',
    title: 'popen',
    async run(ctx: BenchContext) {
      const out: Figure[] = [];
      for (const size of sizesOf(ctx)) {
        ctx.progress(`popen: one-way to the child's stdin ${size} B`);
        const w = await toChild(size, ctx.budget);
        out.push(senderFigure({ mechanism: 'popen', variant: "ipckit, to child's stdin (w)", role: 'ipckit', size }, w));
        ctx.progress(`popen: one-way from the child's stdout ${size} B`);
        const r = await fromChild(size, ctx.budget);
        // Timed where it is read (receiveAll keeps the meter): the receiver's clock.
        out.push({ ...throughputFigure({ mechanism: 'popen', variant: "ipckit, from child's stdout (r)", role: 'ipckit', size, ...probedBy(r) }, r.messages, r.seconds, r.warmup), timing: 'receiver' });
      }
      const bin = ctx.cProgram('pipe');
      if (bin) {
        const cArgs = cPlacement(ctx).cArgs;
        for (const size of sizesOf(ctx)) {
          ctx.progress(`popen: C pipe(2) reference ${size} B`);
          out.push(cFigure('popen', 'C pipe(2)', 'throughput', size, runC(bin, 'thr', size, ctx.budget, cArgs)));
        }
      }
      ctx.note("popen 'w' figures are timed by the child, from the measured part's first message to the end marker; popen has no RTT figure (one pipe, one direction)");
      return out;
    },
  },
];

export const children = {
  /**
   * Reads stdin until the end marker; exits 0 only if every message arrived, in order, after
   * writing what its clock saw of the measured part (DeliveryClock) to the file `readingFile`.
   */
  async sink(args: { readingFile: string }): Promise<void> {
    const rx = openInheritedPipe(0, 'read');
    const clock = new DeliveryClock();
    let expected = 0;
    for (;;) {
      for (const m of await rx.receiveMany()) {
        const s = seqOf(m);
        if (s === END) {
          const delivered = clock.reading(expected);
          await rx.close();
          if (countOf(m) !== expected || !delivered) {
            process.exitCode = 1;
            return;
          }
          writeFileSync(args.readingFile, JSON.stringify(delivered), { mode: 0o600, flag: 'wx' });
          process.exitCode = 0;
          return;
        }
        if (s !== expected && !clock.mark(s, expected)) {
          process.exitCode = 1;
          return;
        }
        expected++;
      }
    }
  },
  /** Writes a start marker, then numbered messages for `seconds`, then the end marker with the count. */
  async source(args: { size: number; seconds: number; max: number }): Promise<void> {
    // Before the start marker: the parent's SIGUSR2 (it has its figure) ends the run early
    // (not SIGUSR1: Node starts its inspector on that one).
    let stop = false;
    process.on('SIGUSR2', () => {
      stop = true;
    });
    const tx = openInheritedPipe(1, 'write');
    const buf = new Uint8Array(Math.max(args.size, 16)).fill(120);
    await tx.send(stamp(buf, START));
    await tx.flush();
    const deadline = now() + BigInt(Math.round(args.seconds * 1e9));
    let n = 0;
    for (; n < args.max; n++) {
      stamp(buf, n);
      const p = tx.send(buf);
      if (p !== RESOLVED) await p;
      if (stop || ((n & 1023) === 1023 && now() > deadline)) {
        n++;
        break;
      }
    }
    await tx.send(endMarker(buf, n));
    await tx.close();
  },
};
