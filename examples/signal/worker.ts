/**
 * Waits for jobs announced by real-time signals: the signal's value is the job number, and
 * the sender's pid comes with it. Prints its pid first, then one line per job.
 *   node worker.js [COUNT]
 */
import { signalReceiver } from 'ipckit';

const count = Number(process.argv[2] ?? 3);
await using jobs = signalReceiver('SIGRTMIN+1'); // queued from here on: nothing sent after this is missed
console.log(`pid ${process.pid}`);
let n = 0;
for await (const s of jobs) {
  console.log(`job ${s.value} from pid ${s.pid}`);
  if (++n === count) break;
}
