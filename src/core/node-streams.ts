/**
 * Adapters between ipckit channels and Node streams, for code that wants `pipe()` or
 * `pipeline()`: a Receiver as a Readable (one chunk per message), a Sender as a Writable
 * (one message per chunk). Backpressure carries through both ways.
 */
import { Readable, Writable } from 'node:stream';
import type { Receiver, Sender } from './channel.js';
import { isIpcError } from './errors.js';

export function toReadable(receiver: Receiver<Uint8Array>): Readable {
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
