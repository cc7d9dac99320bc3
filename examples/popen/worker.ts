/**
 * popen, the program side: its stdout is the pipe the parent reads. It writes a few
 * length-framed JSON messages there, then exits with status 0.
 */
import { openInheritedPipe } from 'ipckit';

const steps = Number(process.argv[2] ?? 3);
const out = openInheritedPipe(1, 'write', { codec: 'json' });
for (let step = 1; step <= steps; step++) await out.send({ step, of: steps });
await out.close();
