/**
 * Announces jobs to worker.js with sigqueue: the value is the job number. Real-time signals
 * queue, so all of them arrive, in order.
 *   node boss.js WORKER_PID [COUNT]
 */
import { sendSignal } from 'ipckit';

const pid = Number(process.argv[2]);
const count = Number(process.argv[3] ?? 3);
for (let job = 0; job < count; job++) sendSignal(pid, 'SIGRTMIN+1', { value: job });
console.log(`sent ${count} jobs to ${pid}`);
