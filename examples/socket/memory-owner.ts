/**
 * Shares memory with a peer it does not trust: a sealed memfd (its size can never change,
 * and it has no name in /dev/shm), passed as a descriptor over a seqpacket socket.
 *   node memory-owner.js [ADDRESS]
 */
import { createSealedMemory, listen } from 'ipckit';

const address = process.argv[2] ?? 'unix-seqpacket:ipckit-example-memory';
await using server = await listen(address, { codec: 'utf8' });
console.log(`listening on ${server.address}`);
using memory = createSealedMemory(4096);
memory.bytes.set(Buffer.from('hello from the owner'));
await using conn = await server.accept();
await conn.sendHandle(memory, 'here is a page');
console.log(`the reader says: ${await conn.receive({ timeout: 5000 })}`);
console.log(`the page now reads: ${Buffer.from(memory.bytes.subarray(0, 40)).toString().replace(/\0.*$/s, '')}`);
