/**
 * Ring channel, producer side: creates a ring and streams 100,000 JSON messages into it.
 * The ring is bounded: when the consumer falls behind, send() waits (backpressure).
 *
 *   node producer.js [/name]      and in another terminal:   node consumer.js [/name]
 */
import { createRing } from 'ipckit';

const name = process.argv[2] ?? '/ipckit-example-ring';
const ring = createRing(name, { capacity: 256 * 1024 }); // exclusive, mode 0600
const tx = await ring.sender({ codec: 'json' });
ring.close(); // the sender keeps the mapping
console.log(`created ${name}; start the consumer now`);
try {
  for (let n = 0; n < 100_000; n++) await tx.send({ n, at: Date.now() });
} finally {
  await tx.close(); // the consumer sees the end after the last message
  ring.unlink(); // attached endpoints keep working; the name goes
}
console.log('sent 100000 messages');
