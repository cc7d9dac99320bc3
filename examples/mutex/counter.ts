/**
 * Counter: adds 1 to a number kept in a file, 200 times, each read-modify-write under
 * the cross-process mutex. Run two at once and nothing is lost:
 *
 *   node main.js
 *
 * If a holder died in the middle (kill -9), the next lock() says ownerDied: the file may
 * then hold a half-written number, so we repair it before markConsistent().
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { openMutex } from 'ipckit';

const [name = '/ipckit-example-counter', file = 'counter.txt'] = process.argv.slice(2);
await using mutex = await openMutex(name);

for (let i = 0; i < 200; i++) {
  await mutex.withLock(({ ownerDied }) => {
    let n = Number(readFileSync(file, 'utf8'));
    if (ownerDied) {
      if (!Number.isInteger(n)) n = 0; // repair whatever the dead holder left
      mutex.markConsistent();
    }
    writeFileSync(file, String(n + 1));
  });
}
