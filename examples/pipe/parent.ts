/**
 * Anonymous pipes, parent side: start a child with two real pipes, jobs going in at its
 * fd 3 and results coming back at its fd 4, as JSON messages.
 *
 *   node dist/examples/pipe/parent.js
 */
import { fileURLToPath } from 'node:url';
import { spawnWithPipes } from 'ipckit';

const childScript = fileURLToPath(new URL('./child.js', import.meta.url));
const child = spawnWithPipes([process.execPath, childScript], {
  pipes: { 3: 'write', 4: 'read' },
  codec: 'json',
});
const jobs = child.sender(3);
const results = child.receiver(4);

for (const n of [1, 2, 3, 12]) await jobs.send({ n });
await jobs.close(); // the child's loop ends when this pipe does

for await (const result of results) console.log('result', result);
console.log('child', await child.close()); // { exitCode: 0, signal: null }
