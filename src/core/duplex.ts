/**
 * A Channel made of one Sender and one Receiver, one each way: two rings (openRingChannel).
 * spawnProcess's channel is the same pairing plus batch frames (src/mechanisms/process/channel.ts).
 */
import { receiverIterator, type Channel, type Receiver, type Sender, type WaitOptions } from './channel.js';

export class DuplexChannel<T, S extends Sender<T> = Sender<T>, R extends Receiver<T> = Receiver<T>> implements Channel<T> {
  constructor(
    readonly sender: S,
    readonly receiver: R,
  ) {}
  send(message: T, options?: WaitOptions): Promise<void> {
    return this.sender.send(message, options);
  }
  trySend(message: T): boolean {
    return this.sender.trySend ? this.sender.trySend(message) : false;
  }
  receive(options?: WaitOptions): Promise<T> {
    return this.receiver.receive(options);
  }
  tryReceive(): T | undefined {
    return this.receiver.tryReceive?.();
  }
  /** Closes both (the sender writes what it accepted first); rejects if either failed. */
  close(): Promise<void> {
    return closeBoth(this.sender, this.receiver);
  }
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return receiverIterator(this.receiver);
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Closes a sender and a receiver together (the sender writes what it accepted first); rejects if either failed. */
export async function closeBoth(sender: Sender<unknown>, receiver: Receiver<unknown>): Promise<void> {
  const [a, b] = await Promise.allSettled([sender.close(), receiver.close()]);
  if (a.status === 'rejected') throw a.reason;
  if (b.status === 'rejected') throw b.reason;
}
