/**
 * Launcher: at most 2 of 4 worker processes may use a scarce resource at once. The
 * BoundedPool enforces it (and would take back the permit of a worker that crashed);
 * a plain semaphore counts the workers that finished.
 *
 *   node launcher.js
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createBoundedPool, createSemaphore, unlinkBoundedPool, unlinkSemaphore } from 'ipckit';

const prefix = process.argv[2] ?? '/ipckit-example';
await using pool = createBoundedPool(`${prefix}-pool`, { permits: 2 });
await using done = createSemaphore(`${prefix}-done`, { value: 0 });

const worker = fileURLToPath(new URL('./worker.js', import.meta.url));
for (let i = 1; i <= 4; i++) spawn(process.execPath, [worker, prefix, String(i)], { stdio: 'inherit' });

for (let i = 0; i < 4; i++) await done.wait({ timeout: 30_000 }); // one post per finished worker
console.log(`launcher: all 4 workers done; permits free again: ${pool.available()} of ${pool.permits}`);
unlinkBoundedPool(`${prefix}-pool`);
unlinkSemaphore(`${prefix}-done`);
