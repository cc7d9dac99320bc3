/**
 * Receives the sealed page from memory-owner.js, checks its seals, writes into it.
 *   node memory-reader.js [ADDRESS]
 */
import { connect, openSealedMemory } from 'ipckit';

const address = process.argv[2] ?? 'unix-seqpacket:ipckit-example-memory';
await using ch = await connect(address, { codec: 'utf8', timeout: 5000 });
const { handle, message } = await ch.receiveHandle({ timeout: 5000 });
using page = openSealedMemory(handle); // refuses memory that a peer could shrink under us
console.log(`${message}: ${page.size} bytes, starting "${Buffer.from(page.bytes.subarray(0, 20)).toString()}"`);
page.bytes.set(Buffer.from(' (and the reader)'), 20);
await ch.send('wrote into it');
