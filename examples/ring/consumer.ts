/**
 * Ring channel, consumer side: reads until the producer closes, checks the order, and
 * reports the rate.
 */
import { openRing } from 'ipckit';

const name = process.argv[2] ?? '/ipckit-example-ring';
const ring = await openRing(name); // waits for a creator still making it
const rx = await ring.receiver({ codec: 'json' });
ring.close();
let expected = 0;
const started = performance.now();
for await (const msg of rx) {
  const { n } = msg as { n: number };
  if (n !== expected) throw new Error(`message ${n} arrived, expected ${expected}`);
  expected++;
}
const seconds = (performance.now() - started) / 1000;
console.log(`received ${expected} messages in order, ${Math.round(expected / seconds).toLocaleString('en-US')} msg/s`);
await rx.close();
