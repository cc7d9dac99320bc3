/**
 * Measurement loops shared by the byte-stream mechanisms (pipe, FIFO, popen, stream
 * sockets): the parent's round-trip and one-way loops and the child's echo and sink.
 * The last message of a one-way run carries seq -1; the sink acknowledges with the count,
 * then its CPU time (µs) and minor page faults over the run, then the measured part as its
 * clock saw it (messages, seconds: bench/harness.ts DeliveryClock), f64 each, little-endian.
 */
import { RESOLVED, type Receiver, type ReceiverInto, type Sender } from '../src/core/channel.js';
import { isIpcError } from '../src/core/errors.js';
import { DeliveryClock, now, RateMeter, RECEIVE_INTO_VARIANT, RttMeter, seqOf, stamp, type Budget, type Delivered, type KeptPeer, type KeptPeers } from './harness.js';

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
 * its own peer. Starting them one by one cost a quick run about 0.1 s per case.
 *
 * In a quick run (`keep`: Budget.keepPeers) the peers are kept (`kept`, under `key` and the
 * case) from the first round to the end of the run, as the process case keeps its children
 * (harness.ts Kept); in a full run they end after the round. A fresh pair's rates
 * ramp for tenths of a second (a Node child's code is optimized as it runs; a datagram
 * round trip fell from 218 to ~20 us over its first 0.2 s), so a quick round's warm-up,
 * which ends when two 20-ms windows agree, often ended on a plateau of the ramp, and a
 * user's long-lived channel is past it. An echo peer answers every round's round trips; a
 * sink peer counts one run after another (sinkRuns). A start or a measurement that fails
 * ends every peer of that size, and a peer whose child died is started again (KeptPeers):
 * the next round starts new ones.
 */
export async function startedTogether<P extends KeptPeer>(cases: StreamCase[], start: (c: StreamCase) => Promise<P>, measure: (c: StreamCase, peer: P) => Promise<void>, kept: KeptPeers<P>, key: string, keep: boolean): Promise<void> {
  const keyOf = (c: StreamCase): string => `${key}:${c}`;
  const dropAll = async (): Promise<void> => {
    for (const c of cases) await kept.drop(keyOf(c));
  };
  const started = await Promise.allSettled(cases.map((c) => kept.get(keyOf(c), () => start(c))));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await dropAll();
    throw failed.reason;
  }
  let keeping = false;
  try {
    for (let i = 0; i < cases.length; i++) {
      const peer = (started[i] as PromiseFulfilledResult<P>).value;
      await kept.measure(peer, () => measure(cases[i]!, peer));
    }
    keeping = keep;
  } finally {
    if (!keeping) await dropAll();
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

/**
 * What a kept sink peer (startedTogether) is sent instead of a run's first message when the
 * bench ends it: a datagram has no end of stream to end it with (below the end marker -1,
 * -2 and -3, the starts some cases send, above clockSeq's values).
 */
export const SINK_STOP = -4;

/**
 * What ends a kept peer whose channel has no end of stream (a datagram socket, a message
 * queue): an echo stops at seq -1, a sink between its runs at SINK_STOP.
 */
export function stopMessage(size: number, role: 'echo' | 'sink'): Uint8Array {
  return stamp(new Uint8Array(Math.max(size, 8)), role === 'echo' ? -1 : SINK_STOP);
}

/** Child: receives and checks sequence numbers until the end marker, then acks the count. */
export async function sinkLoop(rx: BatchReceiver<Uint8Array>, tx: Sender<Uint8Array>): Promise<void> {
  if (!(await sinkRun(rx, tx, false))) throw new Error('the sink was told to stop before its run');
}

/**
 * Child: sinkLoop run after run, for a peer the bench keeps from round to round
 * (startedTogether), until the channel ends or a run starts with SINK_STOP.
 */
export async function sinkRuns(rx: BatchReceiver<Uint8Array>, tx: Sender<Uint8Array>): Promise<void> {
  while (await sinkRun(rx, tx, true));
}

/** One run of a sink: true when it was acknowledged, false when it ended before its first message (`mayEnd`). */
async function sinkRun(rx: BatchReceiver<Uint8Array>, tx: Sender<Uint8Array>, mayEnd: boolean): Promise<boolean> {
  let expected = 0;
  let costs: SinkCosts | undefined; // from the first message: a sink may wait while other cases run
  const clock = new DeliveryClock();
  for (;;) {
    let batch: Uint8Array[];
    try {
      batch = rx.receiveMany ? await rx.receiveMany() : [await rx.receive()];
    } catch (e) {
      if (mayEnd && !costs && isIpcError(e, 'ERR_IPCKIT_CLOSED')) return false;
      throw e;
    }
    if (!costs && batch.length && seqOf(batch[0]!) === SINK_STOP) return false;
    costs ??= new SinkCosts();
    for (const m of batch) {
      const s = seqOf(m);
      if (s === -1) {
        const ackMsg = costs.ack(expected, clock.reading(expected));
        await tx.send(ackMsg);
        if ('flush' in tx && typeof (tx as { flush?: unknown }).flush === 'function') await (tx as unknown as { flush(): Promise<void> }).flush();
        return true;
      }
      if (s !== expected && !clock.mark(s, expected)) throw new Error(`sequence ${s} arrived, expected ${expected}`);
      expected++;
    }
  }
}
