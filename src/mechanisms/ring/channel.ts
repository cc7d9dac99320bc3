/**
 * A duplex link over two rings: messages go out on one and come in on the other.
 */
import { DuplexChannel } from '../../core/duplex.js';
import { resolveCodec, type CodecOption, type MessageOf } from '../../core/codec.js';
import * as validate from '../../core/validate.js';
import { ringSpinOption } from './core.js';
import { openRing, openRingSync, type OpenRingOptions, type Ring } from './ring.js';
import type { RingReceiver } from './receiver.js';
import { maxPendingOption, type RingEndpointOptions, type RingSender } from './sender.js';

/** A Channel over two rings: messages go out on one and come in on the other. */
export class RingChannel<T> extends DuplexChannel<T, RingSender<T>, RingReceiver<T>> {}

export type RingChannelOptions<C extends CodecOption | undefined = undefined> = OpenRingOptions & Omit<RingEndpointOptions<C>, 'timeout' | 'signal'>;

/** Splits the options of a channel into those of the two opens and those of the endpoints (checked at once). */
function split<C extends CodecOption | undefined>(options: RingChannelOptions<C>): { open: OpenRingOptions; endpoint: RingEndpointOptions<C> } {
  validate.object('options', options);
  const { codec, spinMicros, maxPendingBytes, ...open } = options;
  const endpoint: RingEndpointOptions<C> = {};
  resolveCodec(codec); // bad endpoint options throw now, not after the opens
  ringSpinOption(spinMicros);
  maxPendingOption(maxPendingBytes);
  if (maxPendingBytes !== undefined) endpoint.maxPendingBytes = maxPendingBytes;
  if (codec !== undefined) endpoint.codec = codec;
  if (spinMicros !== undefined) endpoint.spinMicros = spinMicros;
  if (open.timeout !== undefined) endpoint.timeout = open.timeout;
  if (open.signal !== undefined) endpoint.signal = open.signal;
  return { open, endpoint };
}

/** The names of the two rings of a channel, from this side: the peer swaps them. */
export interface RingPair {
  /** The ring we send on (the peer's receive). */
  send: string;
  /** The ring we receive on (the peer's send). */
  receive: string;
}

function ringNames(rings: RingPair): RingPair {
  const r = validate.object<{ send: unknown; receive: unknown }>('rings', rings);
  return { send: validate.posixName(r.send as string), receive: validate.posixName(r.receive as string) };
}

/**
 * Opens a duplex Channel over two existing rings, by name: we send on `rings.send` and
 * receive on `rings.receive` (the peer opens the same two names the other way round).
 * `timeout` and `signal` bound each open and each attach.
 */
export function openRingChannel<C extends CodecOption | undefined = undefined>(rings: RingPair, options: RingChannelOptions<C> = {}): Promise<RingChannel<MessageOf<C>>> {
  const { send: sendRing, receive: receiveRing } = ringNames(rings);
  const { open, endpoint } = split(options);
  const outOpen = openRing(sendRing, open); // validates the rest at once
  return (async () => {
    let sender: RingSender<MessageOf<C>>;
    const out: Ring = await outOpen;
    try {
      sender = await out.sender(endpoint);
    } finally {
      out.close();
    }
    try {
      const inn = await openRing(receiveRing, open);
      try {
        return new RingChannel(sender, await inn.receiver(endpoint));
      } finally {
        inn.close();
      }
    } catch (e) {
      await sender.close();
      throw e;
    }
  })();
}

/** openRingChannel for workers and scripts: the waits block this thread. */
export function openRingChannelSync<C extends CodecOption | undefined = undefined>(rings: RingPair, options: RingChannelOptions<C> = {}): RingChannel<MessageOf<C>> {
  const { send: sendRing, receive: receiveRing } = ringNames(rings);
  const { open, endpoint } = split(options);
  const out = openRingSync(sendRing, open);
  let sender: RingSender<MessageOf<C>>;
  try {
    sender = out.senderSync(endpoint);
  } finally {
    out.close();
  }
  try {
    const inn = openRingSync(receiveRing, open);
    try {
      return new RingChannel(sender, inn.receiverSync(endpoint));
    } finally {
      inn.close();
    }
  } catch (e) {
    void sender.close();
    throw e;
  }
}
