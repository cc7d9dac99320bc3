/**
 * Shared memory, reader side: opens the segment, reads the greeting, and follows the
 * counter with wait (the event loop stays free while it waits).
 */
import { openSharedMemory } from 'ipckit';

const name = process.argv[2] ?? '/ipckit-example-shm';
using segment = await openSharedMemory(name); // refuses a segment that is not ours, or wider than 0600
console.log(`greeting: ${segment.read(64, 64).toString().replace(/\0+$/, '')}`);
let seen = segment.load(0);
while (seen < 5) {
  await segment.wait(0, seen, { timeout: 10_000 }); // wakes on notify, or at once if it changed
  seen = segment.load(0);
  console.log(`counter is ${seen}`);
}
segment.store(1, 5);
segment.notify(1);
