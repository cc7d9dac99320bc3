/**
 * Worker: takes one of the pool's permits (waiting while two others hold them), works,
 * gives it back (`using` releases it even if the work throws), then posts "done".
 */
import { openBoundedPool, openSemaphore } from 'ipckit';

const [prefix = '/ipckit-example', id = '?'] = process.argv.slice(2);
await using pool = await openBoundedPool(`${prefix}-pool`);
await using done = await openSemaphore(`${prefix}-done`);
{
  using permit = await pool.acquire({ timeout: 30_000 });
  const holders = pool.holders().length;
  console.log(`worker ${id}: got permit ${permit.slot} (${holders} of ${pool.permits} in use)`);
  await new Promise((r) => setTimeout(r, 100)); // the scarce work
}
done.post();
