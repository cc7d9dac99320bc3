import { native } from '../src/native.js';
import { PipeReader, PipeWriter } from '../src/pipe.js';
import { channelConformance } from './conformance/channel.js';
import { checkFdLeaks } from './helpers.js';

checkFdLeaks();

channelConformance('pipe', {
  senderCloseEndsReceiver: true,
  backpressure: true,
  async make(o) {
    const [r, w] = native.pipe();
    native.setNonBlocking(r, true);
    native.setNonBlocking(w, true);
    const receiver = new PipeReader(r, { codec: o.receiverCodec, maxMessageSize: o.maxMessageSize });
    const sender = new PipeWriter(w, { codec: o.senderCodec, maxMessageSize: o.maxMessageSize });
    return {
      sender,
      receiver,
      cleanup: async () => {
        await sender.close({ timeout: 1000 }).catch(() => {});
        await receiver.close();
      },
    };
  },
});
