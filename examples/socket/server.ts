/**
 * A JSON request/response server on a Unix socket.
 *   node server.js [ADDRESS] [--once]
 * ADDRESS defaults to unix:ipckit-example (in your runtime folder, mode 0600). Each client
 * is told its own pid, which the kernel gave us (SO_PEERCRED).
 */
import { listen } from 'ipckit';

const address = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : 'unix:ipckit-example';
const once = process.argv.includes('--once');

await using server = await listen(address, { codec: 'json' });
console.log(`listening on ${server.address}`);
for await (const conn of server) {
  for await (const request of conn) {
    await conn.send({ echo: request, yourPid: conn.peer?.pid });
  }
  await conn.close();
  if (once) break;
}
