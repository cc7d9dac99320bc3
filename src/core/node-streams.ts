/**
 * Adapters between ipckit channels and Node streams, for code that wants `pipe()` or
 * `pipeline()`: a Receiver as a Readable (one chunk per message), a Sender as a Writable
 * (one message per chunk). Backpressure carries through both ways.
 */
import { Readable, Writable } from 'node:stream';
import type { Receiver, Sender } from './channel.js';
import { invalidArgument, isIpcError } from './errors.js';
import { describe } from './validate.js';

/** Throws unless `value` has the methods the adapter calls. */
function checkEndpoint(name: string, value: unknown, methods: readonly string[]): void {
  const o = value as Record<string, unknown> | null | undefined;
  if (o === null || typeof o !== 'object' || methods.some((m) => typeof o[m] !== 'function')) {
    throw invalidArgument(`${name} must be an ipckit ${name} (with ${methods.map((m) => `${m}()`).join(' and ')}), got ${describe(value)}`);
  }
}

export function toReadable(receiver: Receiver<Uint8Array>): Readable {
  checkEndpoint('receiver', receiver, ['receive', 'close']);
  return new Readable({
    read() {
      receiver.receive().then(
        (chunk) => this.push(chunk),
        (e: unknown) => {
          if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) this.push(null);
          else this.destroy(e as Error);
        },
      );
    },
    destroy(error, callback) {
      receiver.close().then(
        () => callback(error),
        (e: unknown) => callback((error ?? e) as Error),
      );
    },
  });
}

export function toWritable(sender: Sender<Uint8Array>): Writable {
  checkEndpoint('sender', sender, ['send', 'close']);
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      sender.send(chunk).then(() => callback(), callback);
    },
    final(callback) {
      sender.close().then(() => callback(), callback);
    },
    destroy(error, callback) {
      sender.close().then(
        () => callback(error),
        (e: unknown) => callback((error ?? e) as Error),
      );
    },
  });
}
