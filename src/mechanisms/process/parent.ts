/**
 * The child's side of spawnProcess: `parentChannel()` opens the channel the parent made
 * (handoff.ts says how it is found) and returns it; later calls return the same one.
 */
import { resolveCodec, type CodecOption, type MessageOf } from '../../core/codec.js';
import { invalidArgument, IpcError } from '../../core/errors.js';
import * as validate from '../../core/validate.js';
import { openInheritedPipe } from '../pipe/pipe.js';
import { openRingChannelSync } from '../ring/channel.js';
import { unlinkRing } from '../ring/ring.js';
import { batchingCodec } from './batches.js';
import { ProcessChannel } from './channel.js';
import { decodeHandoff, HANDOFF_ENV, type Handoff } from './handoff.js';

export interface ParentChannelOptions<C extends CodecOption | undefined = undefined> {
  /** The codec: by default the one the parent named; required when the parent passed a Codec object. */
  codec?: C;
  /** How long to wait for the parent's rings (ms, default 2000). */
  timeout?: number;
}

let handoff: Handoff | undefined;
let opened: ProcessChannel<unknown> | undefined;

/** True in a process started by spawnProcess (before and after parentChannel()). */
export function hasParentChannel(): boolean {
  return opened !== undefined || handoff !== undefined || process.env[HANDOFF_ENV] !== undefined;
}

/**
 * In a child started by spawnProcess: the duplex Channel to the parent. Opened on the
 * first call (synchronously: the parent made everything before it started us); later calls
 * return the same channel. Not a spawnProcess child: ERR_IPCKIT_NOT_FOUND.
 */
export function parentChannel<C extends CodecOption | undefined = undefined>(options: ParentChannelOptions<C> = {}): ProcessChannel<C extends undefined ? unknown : MessageOf<C>> {
  validate.object('options', options);
  if (options.codec !== undefined) resolveCodec(options.codec);
  const timeout = validate.timeout(options.timeout);
  type M = C extends undefined ? unknown : MessageOf<C>;
  if (opened) return opened as ProcessChannel<M>;
  if (!handoff) {
    const text = process.env[HANDOFF_ENV];
    if (text === undefined) throw new IpcError('ERR_IPCKIT_NOT_FOUND', `this process has no parent channel: it was not started by spawnProcess() (${HANDOFF_ENV} is not set)`);
    handoff = decodeHandoff(text);
    delete process.env[HANDOFF_ENV]; // our own children must not take it for theirs
  }
  const h = handoff;
  if (options.codec === undefined && h.codec === 'custom') {
    throw invalidArgument('the parent uses a Codec object of its own: pass the same codec, parentChannel({ codec })');
  }
  const userCodec = resolveCodec((options.codec ?? h.codec) as CodecOption);
  const codec = batchingCodec(userCodec); // reads batch frames whatever the parent's version
  const batches = h.batches === true; // and sends them only to a parent that reads them
  if (h.transport === 'ring') {
    const spin = h.spinMicros === null ? Infinity : h.spinMicros;
    const channel = openRingChannelSync({ send: h.send, receive: h.receive }, { codec, ...(spin !== undefined ? { spinMicros: spin } : {}), ...(timeout !== undefined ? { timeout } : {}) });
    // Both attached: the names have done their job.
    for (const n of [h.send, h.receive]) {
      try {
        unlinkRing(n);
      } catch {
        /* the parent removes them too */
      }
    }
    opened = new ProcessChannel<unknown>(channel.sender, channel.receiver, userCodec, { batches, borrowFrames: true });
  } else {
    const max = h.maxMessageBytes !== undefined ? { maxMessageBytes: h.maxMessageBytes } : {};
    const receiver = openInheritedPipe(h.readFd, 'read', { codec, ...max });
    const sender = openInheritedPipe(h.writeFd, 'write', { codec, ...max });
    opened = new ProcessChannel<unknown>(sender, receiver, userCodec, { batches });
  }
  return opened as ProcessChannel<M>;
}
