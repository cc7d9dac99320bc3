/** The ring channel in one process: the Channel promises (both memory paths), views, batches, limits. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRing, openRing, unlinkRing } from '../src/ring.js';
import { channelConformance } from './conformance/channel.js';
import { checkFdLeaks, rejectsWith, uniqueName, within } from './helpers.js';

checkFdLeaks();

for (const external of [true, false]) {
  channelConformance(`ring (${external ? 'SharedArrayBuffer' : 'copying path'})`, {
    senderCloseEndsReceiver: true,
    backpressure: true,
    async make(o) {
      const name = uniqueName('ring');
      const ring = createRing(name, { capacity: 4 * 1024 * 1024, external, ...(o.maxMessageSize ? { maxMessageSize: o.maxMessageSize } : {}) });
      const receiver = ring.receiver({ codec: o.receiverCodec });
      const sender = ring.sender({ codec: o.senderCodec });
      ring.close();
      return {
        sender,
        receiver,
        cleanup: async () => {
          await sender.close();
          await receiver.close();
          unlinkRing(name);
        },
      };
    },
  });
}
