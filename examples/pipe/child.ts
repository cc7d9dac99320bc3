/**
 * Anonymous pipes, child side: the pipe ends the parent put at fds 3 and 4. Any program
 * can use them (sh: `read line <&3`, python: `os.fdopen(3, 'rb')`); this one uses ipckit.
 */
import { openInheritedPipe } from 'ipckit';

const jobs = openInheritedPipe(3, 'read', { codec: 'json' });
const results = openInheritedPipe(4, 'write', { codec: 'json' });

for await (const job of jobs) {
  const { n } = job as { n: number };
  await results.send({ n, square: n * n, by: process.pid });
}
await results.close(); // flushes, then the parent's loop ends
