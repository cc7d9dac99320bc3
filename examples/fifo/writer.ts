/**
 * Named pipes, writer side: opens the FIFO at PATH (waiting up to 5 s for a reader) and
 * sends each other argument as one message.
 *
 *   node dist/examples/fifo/writer.js /tmp/jobs.fifo one two three
 */
import { openFifo } from 'ipckit';

const [path, ...messages] = process.argv.slice(2);
if (!path) throw new Error('usage: writer.js PATH [MESSAGE...]');
const writer = await openFifo(path, 'write', { codec: 'utf8', timeout: 5000 });
for (const message of messages) await writer.send(message);
await writer.close();
