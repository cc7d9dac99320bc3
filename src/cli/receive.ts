/** The receive loop every `recv`/`listen` command shares: count, overall timeout, printing. */
import type { Receiver } from '../core/channel.js';
import { isIpcError } from '../core/errors.js';

export interface ReceiveLoopOptions<T> {
  /** Stop after this many messages (default: until the channel ends). */
  count?: number | undefined;
  /** Overall deadline in ms for the messages asked for; past it, ERR_IPCKIT_TIMEOUT (exit 124). */
  timeout?: number | undefined;
  print(message: T): Promise<void>;
}

/** Receives and prints until `count` messages, the end of the channel, or the deadline. */
export async function receiveLoop<T>(receiver: Receiver<T>, options: ReceiveLoopOptions<T>): Promise<number> {
  const deadline = options.timeout === undefined ? undefined : Date.now() + options.timeout;
  let n = 0;
  while (options.count === undefined || n < options.count) {
    let message: T;
    try {
      message = await receiver.receive(deadline === undefined ? undefined : { timeout: Math.max(0, deadline - Date.now()) });
    } catch (e) {
      if (isIpcError(e, 'ERR_IPCKIT_CLOSED')) break;
      throw e;
    }
    await options.print(message);
    n++;
  }
  return n;
}
