/**
 * Named pipes, reader side: creates a FIFO (owner-only, exclusive) at PATH and prints
 * every message until the writers are gone, then removes it. Any unrelated process that
 * knows PATH can write: `node dist/examples/fifo/writer.js PATH hello`, or the CLI
 * `ipckit fifo send PATH hello`.
 *
 *   node dist/examples/fifo/reader.js /tmp/jobs.fifo
 */
import { createFifo, openFifo } from 'ipckit';

const path = createFifo(process.argv[2]); // no argument: a fresh path in the private runtime folder
const reader = await openFifo(path, 'read', { codec: 'utf8', unlinkOnClose: true });
console.log(`listening on ${path}`);
for await (const message of reader) console.log('got', message);
await reader.close(); // the last writer closed: the stream ended; this removes the FIFO
console.log('done');
