/**
 * Shared memory, writer side: creates a segment, puts a greeting in it, then bumps a
 * counter five times with Atomics and wakes the reader with a cross-process notify.
 *
 *   node writer.js [/name]      then, in another terminal:   node reader.js [/name]
 */
import { createSharedMemory } from 'ipckit';

const name = process.argv[2] ?? '/ipckit-example-shm';
using segment = createSharedMemory(name, 4096); // exclusive, mode 0600
try {
  segment.write(Buffer.from(`hello from process ${process.pid}`), 64);
  const words = new Int32Array(segment.buffer); // a real SharedArrayBuffer over the pages
  console.log(`created ${name}; start the reader now`);
  for (let i = 1; i <= 5; i++) {
    await new Promise((r) => setTimeout(r, 200));
    Atomics.store(words, 0, i);
    segment.notify(0); // a futex wake: reaches a waiter in another process (Atomics.notify would not)
  }
  // Wait (without blocking the event loop) until the reader says it saw all five.
  while (Atomics.load(words, 1) !== 5) await segment.wait(1, Atomics.load(words, 1), { timeout: 10_000 });
  console.log('the reader saw every update');
} finally {
  segment.unlink();
}
