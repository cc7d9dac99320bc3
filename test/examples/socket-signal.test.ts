/** The socket and signal examples run as a user would run them: two processes each. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { repoRoot, run, within } from '../helpers.js';

const example = (dir: string, name: string): string => join(repoRoot, 'dist', 'examples', dir, `${name}.js`);
const node = (dir: string, name: string, args: string[] = []): ReturnType<typeof run> => run(process.execPath, [example(dir, name), ...args]);

function firstLine(child: ReturnType<typeof run>['child']): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const on = (d: Buffer): void => {
      buf += d.toString();
      if (buf.includes('\n')) {
        child.stdout!.off('data', on);
        resolve(buf.split('\n')[0]!);
      }
    };
    child.stdout!.on('data', on);
  });
}

it('examples/socket: server and client', async () => {
  const address = `unix:ipckit-test-example-${process.pid}`;
  const server = node('socket', 'server', [address, '--once']);
  assert.match(await within(firstLine(server.child), 10_000), /^listening on unix:\//);
  const client = await node('socket', 'client', [address]).done;
  assert.equal(client.code, 0, client.stderr);
  const lines = client.stdout.trim().split('\n').map((l) => JSON.parse(l) as { echo: { n: number }; yourPid: number });
  assert.deepEqual(lines.map((l) => l.echo.n), [1, 2, 3]);
  assert.ok(lines.every((l) => Number.isInteger(l.yourPid)));
  assert.equal((await server.done).code, 0);
});

it('examples/socket: sealed memory passed as a descriptor', async () => {
  const address = `unix-seqpacket:ipckit-test-example-mem-${process.pid}`;
  const owner = node('socket', 'memory-owner', [address]);
  await within(firstLine(owner.child), 10_000);
  const reader = await node('socket', 'memory-reader', [address]).done;
  assert.equal(reader.code, 0, reader.stderr);
  assert.equal(reader.stdout.trim(), 'here is a page: 4096 bytes, starting "hello from the owner"');
  const r = await owner.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /the reader says: wrote into it\nthe page now reads: hello from the owner \(and the reader\)/);
});

it('examples/signal: worker and boss', async () => {
  const worker = node('signal', 'worker', ['3']);
  const pid = (await within(firstLine(worker.child), 10_000)).split(' ')[1]!;
  const bossRun = node('signal', 'boss', [pid, '3']);
  const boss = await bossRun.done;
  assert.equal(boss.code, 0, boss.stderr);
  const r = await worker.done;
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n').slice(1), [0, 1, 2].map((j) => `job ${j} from pid ${bossRun.child.pid}`));
});
