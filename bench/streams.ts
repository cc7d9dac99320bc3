/**
 * Measurement loops shared by the byte-stream mechanisms (pipe, FIFO, popen, stream
 * sockets): the parent's round-trip and one-way loops and the child's echo and sink.
 * The last message of a one-way run carries seq -1; the sink acknowledges with the count,
 * then its CPU time (µs) and minor page faults over the run, then the measured part as its
 * clock saw it (messages, seconds: bench/harness.ts DeliveryClock), f64 each, little-endian.
 */
import { RESOLVED, type Receiver, type ReceiverInto, type Sender } from '../src/core/channel.js';
import { isIpcError } from '../src/core/errors.js';
import { DeliveryClock, now, RateMeter, RECEIVE_INTO_VARIANT, RttMeter, seqOf, stamp, startAll, type Budget, type Delivered } from './harness.js';

export { RECEIVE_INTO_VARIANT };

export interface BatchReceiver<T> extends Receiver<T> {
  receiveMany?(max?: number): Promise<T[]>;
}

/**
 * What a stream bench measures at `size`: round trips ('echo'), one-way ('sink') and, at
 * 64 KiB, round trips with the zero-copy receive on both sides ('echoInto': receiveInto
 * into a buffer each side reuses), reported as the variant RECEIVE_INTO_VARIANT.
 */
export type StreamCase = 'echo' | 'echoInto' | 'sink';
export function streamCases(size: number): StreamCase[] {
  return size >= 65536 ? ['echo', 'echoInto', 'sink'] : ['echo', 'sink'];
}

/**
 * Starts the peers of every case of one size at once (their processes start side by side,
 * and none starts while another case is measured), then measures case by case, each with
 * its own fresh peer; every peer is ended, even when a start or a measurement fails.
 * Starting them one by one cost a quick run about 0.1 s per case.
 */
export async function startedTogether<P extends { done(): Promise<void> }>(cases: StreamCase[], start: (c: StreamCase) => Promise<P>, measure: (c: StreamCase, peer: P) => Promise<void>): Promise<void> {
  const peers = await startAll(cases.map(start), (p) => p.done());
  let i = 0;
  try {
    for (; i < cases.length; i++) {
      try {
        await measure(cases[i]!, peers[i]!);
      } finally {
        await peers[i]!.done();
      }
    }
  } finally {
    for (let j = i + 1; j < peers.length; j++) await peers[j]!.done().catch(() => {});
  }
}

/** The echo side's buffer for receiveInto: larger than any message the benches send. */
const ECHO_INTO_BYTES = 1024 * 1024;

/** Parent: timed round trips of `size` bytes through an echoing child (`into`: receiveInto, no allocation per message). */
export async function rttLoop(tx: Sender<Uint8Array>, rx: Receiver<Uint8Array> & Partial<ReceiverInto>, size: number, budget: Budget, into = false): Promise<ReturnType<RttMeter['result']>> {
  const buf = new Uint8Array(Math.max(size, 8)).fill(120);
  const back = new Uint8Array(buf.length);
  const meter = new RttMeter(budget);
  for (let i = 0; ; i++) {
    const t0 = now();
    stamp(buf, i);
    await tx.send(buf);
    const echo = into ? back.subarray(0, await rx.receiveInto!(back)) : await rx.receive();
    const t1 = now();
    if (seqOf(echo) !== i) throw new Error(`echo out of order: ${seqOf(echo)} != ${i}`);
    if (meter.add(Number(t1 - t0))) break;
  }
  return meter.result();
}

/** Parent: sends as fast as the channel accepts for the budget, then the end marker; waits for the ack. */
export async function throughputLoop(tx: Sender<Uint8Array>, ack: Receiver<Uint8Array>, size: number, budget: Budget): Promise<ReturnType<RateMeter['result']> & { receiver?: ReceiverCost }> {
  const buf = new Uint8Array(Math.max(size, 8)).fill(120);
  const meter = new RateMeter(budget);
  let n = 0;
  for (;; n++) {
    stamp(buf, meter.seq(n));
    const p = tx.send(buf);
    if (p !== RESOLVED) await p;
    if ((n & 63) === 63 && meter.tick(n + 1)) {
      n++;
      break;
    }
  }
  stamp(buf, -1);
  await tx.send(buf);
  const reply = await ack.receive();
  const got = seqOf(reply);
  if (got !== n) throw new Error(`the receiver counted ${got} messages, ${n} were sent`);
  return { ...meter.result(n, deliveredOf(reply)), ...receiverCost(reply, n) };
}

/**
 * A sink's CPU time and minor page faults from its construction on, and the acknowledgement
 * that carries them after the count (f64 each, little-endian: what receiverCost reads).
 */
export class SinkCosts {
  readonly #cpu = process.cpuUsage();
  readonly #faults = process.resourceUsage().minorPageFault;

  ack(count: number, delivered?: Delivered): Uint8Array {
    const cpu = process.cpuUsage(this.#cpu);
    const out = new Uint8Array(delivered ? 40 : 24);
    const v = new DataView(out.buffer);
    v.setFloat64(0, count, true);
    v.setFloat64(8, cpu.user + cpu.system, true);
    v.setFloat64(16, process.resourceUsage().minorPageFault - this.#faults, true);
    if (delivered) {
      v.setFloat64(24, delivered.messages, true);
      v.setFloat64(32, delivered.seconds, true);
    }
    return out;
  }
}

/** The measured part as the sink's clock saw it, from its acknowledgement (SinkCosts.ack), if it carries it. */
export function deliveredOf(ack: Uint8Array): Delivered | undefined {
  if (ack.length < 40) return undefined;
  const v = new DataView(ack.buffer, ack.byteOffset, ack.length);
  return { messages: v.getFloat64(24, true), seconds: v.getFloat64(32, true) };
}

/** What receiving cost the sink per message, over its counting run (warm-up included). */
export interface ReceiverCost {
  cpuUs: number;
  pageFaults: number;
}

export function receiverCost(ack: Uint8Array, messages: number): { receiver?: ReceiverCost } {
  if (ack.length < 24 || messages === 0) return {};
  const v = new DataView(ack.buffer, ack.byteOffset, ack.length);
  return { receiver: { cpuUs: v.getFloat64(8, true) / messages, pageFaults: v.getFloat64(16, true) / messages } };
}

/** Child: echoes every message until the end marker or the end of the channel (`into`: with receiveInto). */
export async function echoLoop(rx: Receiver<Uint8Array> & Partial<ReceiverInto>, tx: Sender<Uint8Array>, into = false): Promise<void> {
  if (into) {
    const buf = new Uint8Array(ECHO_INTO_BYTES);
    for (;;) {
      let n: number;
      try {
        n = await rx.receiveInto!(buf);
      } catch (e) {
        if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) return;
        throw e;
      }
      const m = buf.subarray(0, n);
      if (seqOf(m) === -1) return;
      await tx.send(m);
    }
  }
  for await (const m of rx) {
    if (seqOf(m) === -1) break;
    await tx.send(m);
  }
}

/** Child: receives and checks sequence numbers until the end marker, then acks the count. */
export async function sinkLoop(rx: BatchReceiver<Uint8Array>, tx: Sender<Uint8Array>): Promise<void> {
  let expected = 0;
  let costs: SinkCosts | undefined; // from the first message: a sink may wait while other cases run
  const clock = new DeliveryClock();
  for (;;) {
    const batch = rx.receiveMany ? await rx.receiveMany() : [await rx.receive()];
    costs ??= new SinkCosts();
    for (const m of batch) {
      const s = seqOf(m);
      if (s === -1) {
        const ackMsg = costs.ack(expected, clock.reading(expected));
        await tx.send(ackMsg);
        if ('flush' in tx && typeof (tx as { flush?: unknown }).flush === 'function') await (tx as unknown as { flush(): Promise<void> }).flush();
        return;
      }
      if (s !== expected && !clock.mark(s, expected)) throw new Error(`sequence ${s} arrived, expected ${expected}`);
      expected++;
    }
  }
}
