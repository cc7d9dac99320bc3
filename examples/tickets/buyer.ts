/**
 * Buyer: buys tickets from the office file until none are left, one at a time, each sale a
 * read-modify-write of the file under a lock shared by every buyer:
 *
 *   node buyer.js office.json [file|mutex]
 *
 * The file stays whole even if a buyer is killed while it holds the lock: each sale is
 * written to a temporary file, flushed, and renamed over the office file, and a rename is
 * atomic: a reader sees the old file or the new one, never half of one. The lock is on a
 * separate file (office.json.lock), because the rename replaces the office file's inode and
 * a lock on the old inode would protect nothing.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { openFileLock, openMutex } from 'ipckit';

export interface Office {
  total: number;
  left: number;
  /** Every ticket sold, with the pid of its buyer. */
  sales: Array<{ ticket: number; buyer: number }>;
}

const [file = 'office.json', how = 'file'] = process.argv.slice(2);

/** One sale: false when the tickets are gone. Runs under the lock. */
function buyOne(): boolean {
  const office = JSON.parse(readFileSync(file, 'utf8')) as Office;
  if (office.left === 0) return false;
  office.sales.push({ ticket: office.total - office.left + 1, buyer: process.pid });
  office.left--;
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  writeSync(fd, JSON.stringify(office));
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, file);
  return true;
}

let bought = 0;
if (how === 'mutex') {
  // The robust mutex: a holder that died is reported to the next one (ownerDied). The file
  // is whole anyway (the rename), so the next holder just marks the mutex consistent.
  await using mutex = await openMutex(`/${file.replace(/[^\w.-]/g, '_')}`);
  for (;;) {
    const sold = await mutex.withLock(({ ownerDied }) => {
      if (ownerDied) mutex.markConsistent();
      return buyOne();
    });
    if (!sold) break;
    bought++;
  }
} else {
  // A file lock: the kernel drops a dead holder's lock.
  await using lock = await openFileLock(`${file}.lock`, { create: true });
  for (;;) {
    const held = await lock.lock();
    let sold: boolean;
    try {
      sold = buyOne();
    } finally {
      held.release();
    }
    if (!sold) break;
    bought++;
  }
}
console.log(`buyer ${process.pid} bought ${bought}`);
