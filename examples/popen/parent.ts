/**
 * popen, like C's popen/pclose: read a program's output as messages, feed another
 * program's input, and get each one's exit status from close().
 *
 *   node dist/examples/popen/parent.js
 */
import { fileURLToPath } from 'node:url';
import { popen } from 'ipckit';

// 1. A node worker that writes length-framed JSON messages to its stdout.
const worker = fileURLToPath(new URL('./worker.js', import.meta.url));
const progress = popen([process.execPath, worker, '3'], 'read', { codec: 'json' });
for await (const message of progress) console.log('worker says', message);
console.log('worker', await progress.close()); // { exitCode: 0, signal: null }

// 2. A program that knows nothing of ipckit: lines in, its own output on our stdout.
//    The arguments go to the program as they are: no shell ever sees them.
const sort = popen(['sort', '-r'], 'write', { framing: 'lines', codec: 'utf8' });
for (const word of ['pear', 'apple; rm -rf ~', 'fig']) await sort.send(word);
console.log('sort', await sort.close()); // flushes, closes sort's stdin, waits: { exitCode: 0, signal: null }
