/** The shared memory, ring and work queue examples (examples/shm, ring, workqueue), run as a user would. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { jsonLines, repoRoot, run, uniqueName } from './helpers.js';

const example = (dir: string, file: string): string => join(repoRoot, 'dist', 'examples', dir, `${file}.js`);
const node = (dir: string, file: string, args: string[]): ReturnType<typeof run> => run(process.execPath, [example(dir, file), ...args], { timeoutMs: 90_000 });

it('shm: the writer bumps a counter, the reader follows it with wait', async () => {
  const name = uniqueName('ex-shm');
  const writer = node('shm', 'writer', [name]);
  assert.match((await jsonLines(writer).next()).text, /created/);
  const reader = await node('shm', 'reader', [name]).done;
  assert.equal(reader.code, 0, reader.stderr);
  assert.match(reader.stdout, /greeting: hello from process \d+/);
  assert.match(reader.stdout, /counter is 5/);
  const w = await writer.done;
  assert.equal(w.code, 0, w.stderr);
  assert.match(w.stdout, /the reader saw every update/);
  assert.equal(existsSync(`/dev/shm${name}`), false);
});

it('ring: 100,000 messages in order from the producer to the consumer', async () => {
  const name = uniqueName('ex-ring');
  const producer = node('ring', 'producer', [name]);
  assert.match((await jsonLines(producer).next()).text, /created/);
  const consumer = await node('ring', 'consumer', [name]).done;
  assert.equal(consumer.code, 0, consumer.stderr);
  assert.match(consumer.stdout, /received 100000 messages in order/);
  assert.equal((await producer.done).code, 0);
  assert.equal(existsSync(`/dev/shm${name}`), false);
});

it('workqueue: 100,000 jobs, one producer, four consumers, one of them killed on the way', async () => {
  const name = uniqueName('ex-jobs');
  const r = await node('workqueue', 'producer', [name, '--kill-one']).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /killed one consumer, started another/);
  // join() resolved and the slots say nothing waits or is in progress: every job was taken
  // and acknowledged. The done statistic is counted just after an ack frees its slot, so a
  // consumer SIGKILLed between the two leaves it one short (docs/workqueue.md, Limits): seen
  // once in a CI run (99,999, redelivered 0). One consumer is killed here: one short at most.
  const m = /done ([\d,]+) \/ 100,000, in flight 0, waiting 0, redelivered \d+; [\d,]+ jobs\/s/.exec(r.stdout);
  assert.ok(m && ['100,000', '99,999'].includes(m[1]!), r.stdout);
  assert.equal(existsSync(`/dev/shm${name}`), false);
});
