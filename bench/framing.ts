/**
 * The framing the Node baselines use, as a Node user writes it by hand over a stream: a u32
 * little-endian length, then the payload. Both stream baselines (stdio, bench/node.ts; `net`
 * over a Unix socket, bench/socket.ts) frame with `frame`, split with `FrameSplitter`, and
 * their children answer with `BaselinePeer`.
 */
import { DeliveryClock } from './harness.js';
import { SinkCosts } from './streams.js';

/** One frame: the length, then a copy of the payload. */
export function frame(payload: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(4 + payload.length);
  b.writeUInt32LE(payload.length, 0);
  b.set(payload, 4);
  return b;
}

/** Splits a stream's chunks into frames' payloads. */
export class FrameSplitter {
  #pending: Buffer = Buffer.alloc(0);

  /** The payloads `chunk` completes, in order: views of the chunks, valid until the next push. */
  *push(chunk: Buffer): Generator<Buffer> {
    const pending = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    let off = 0;
    while (pending.length - off >= 4) {
      const len = pending.readUInt32LE(off);
      if (pending.length - off - 4 < len) break;
      yield pending.subarray(off + 4, off + 4 + len);
      off += 4 + len;
    }
    this.#pending = pending.subarray(off);
  }
}

/**
 * A baseline child's side, as bench/streams.ts's sink: it echoes every payload (round
 * trips) until one that starts with -3, then counts (one way) until -1, answered with the
 * count and its costs (SinkCosts, DeliveryClock), and echoes again: the child is kept for the
 * next round. `take` returns the frame to write back, or undefined.
 */
export class BaselinePeer {
  #costs: SinkCosts | undefined; // set while counting
  #clock = new DeliveryClock();
  #n = 0;

  take(payload: Buffer): Buffer | undefined {
    const s = payload.readDoubleLE(0);
    if (s === -3) {
      this.#costs = new SinkCosts();
      return undefined;
    }
    if (!this.#costs) return frame(payload);
    if (s === -1) {
      const ack = frame(this.#costs.ack(this.#n, this.#clock.reading(this.#n)));
      this.#costs = undefined;
      this.#clock = new DeliveryClock();
      this.#n = 0;
      return ack;
    }
    if (s !== this.#n) this.#clock.mark(s, this.#n);
    this.#n++;
    return undefined;
  }
}
