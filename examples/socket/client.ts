/**
 * The client of server.js: sends three requests and prints the answers.
 *   node client.js [ADDRESS]
 */
import { connect } from 'ipckit';

const address = process.argv[2] ?? 'unix:ipckit-example';
await using ch = await connect(address, { codec: 'json', timeout: 5000 });
for (const n of [1, 2, 3]) {
  await ch.send({ n });
  console.log(JSON.stringify(await ch.receive({ timeout: 5000 })));
}
