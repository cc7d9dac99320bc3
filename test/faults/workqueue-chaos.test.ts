/**
 * The work queue under chaos: two producers and three consumers in their own processes,
 * killed (SIGKILL) at random moments and at random fault points and started again, for a
 * few seconds. Afterwards: every item whose put resolved was done; every second delivery is
 * accounted for by a consumer that died with the job in hand; the queue is empty and whole.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { openSharedMemory, unlinkSharedMemory } from '../../src/mechanisms/shm/shm.js';
import { createWorkQueue } from '../../src/mechanisms/workqueue/workqueue.js';
import { checkFdLeaks, jsonLines, runFixture, runPython, sleep, uniqueName, within } from '../helpers.js';

const names: string[] = [];
after(() => {
  // Raw removal: the hostile test wrecks its queue's header on purpose (unlinkWorkQueue would refuse it).
  for (const n of names) unlinkSharedMemory(n);
});
checkFdLeaks();

const CONSUMER_POINTS = ['after-take', 'before-done'];
const PRODUCER_POINTS = ['before-claim', 'after-claim', 'mid-copy', 'before-publish', 'before-wake'];

interface Proc {
  kind: 'producer' | 'consumer';
  lines: ReturnType<typeof jsonLines>;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(): void;
  exited: boolean;
}

it('producers and consumers SIGKILLed at any step: nothing lost, duplicates only from dead consumers', { timeout: 110_000 }, async () => {
  const name = uniqueName('chaos');
  names.push(name);
  const q = createWorkQueue(name, { capacityJobs: 64, maxMessageBytes: 64, codec: 'json', maxParticipants: 64 });
  let seed = 12345;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const procs: Proc[] = [];
  let producerId = 0;
  const start = (kind: 'producer' | 'consumer'): Proc => {
    // One in three starts with a fault point armed, at a random step of a random operation.
    const armed = random(3) === 0;
    const points = kind === 'producer' ? PRODUCER_POINTS : CONSUMER_POINTS;
    const fault = armed ? `workqueue:${points[random(points.length)]}:${1 + random(40)}` : undefined;
    const args = kind === 'producer' ? ['produce', name, String(++producerId), '400', String(random(2))] : ['consume', name, String(random(2))];
    const r = runFixture('workqueue-peer', args, { timeoutMs: 100_000, env: { ...process.env, ...(fault ? { IPCKIT_FAULT: fault } : {}) } });
    const p: Proc = { kind, lines: jsonLines(r), done: r.done, kill: () => r.child.kill('SIGKILL'), exited: false };
    void r.done.then(() => (p.exited = true));
    procs.push(p);
    return p;
  };
  let live: Proc[] = [start('producer'), start('producer'), start('consumer'), start('consumer'), start('consumer')];
  let kills = 0;
  const chaosEnd = Date.now() + 6000;
  while (Date.now() < chaosEnd) {
    await sleep(50 + random(250));
    const victim = live[random(live.length)]!;
    if (!victim.exited && random(2) === 0) {
      victim.kill();
      kills++;
    }
    await sleep(5);
    // Replace whoever is gone (killed, fault point, or a producer that finished).
    live = live.map((p) => (p.exited ? start(p.kind) : p));
  }
  // Calm: let producers finish, keep consumers running, then join.
  const producers = live.filter((p) => p.kind === 'producer');
  for (const p of producers) await within(p.done, 60_000, 'a producer');
  for (let i = 0; i < 3; i++) live.push(start('consumer'));
  await within(q.join(), 60_000, 'join');
  q.shutdown();
  await within(Promise.all(procs.map((p) => p.done)), 60_000, 'everyone exits');

  const resolved = new Set<string>();
  for (const p of procs.filter((x) => x.kind === 'producer')) for (const l of p.lines.all) if ('put' in l) resolved.add(`${l.id}`);
  const takes = procs.filter((x) => x.kind === 'consumer').flatMap((p) => p.lines.all.filter((l) => 'took' in l));
  const doneIds = new Set(procs.flatMap((p) => p.lines.all.filter((l) => 'done' in l).map((l) => `${l.done}`)));
  const taken = new Set(takes.map((l) => `${l.took}`));
  const lost = [...resolved].filter((id) => !taken.has(id));
  const redeliveries = takes.filter((l) => l.deliveries > 1).length;
  const consumerDeaths = procs.filter((p) => p.kind === 'consumer').length - 6; // every consumer beyond the 3 + 3 that ended cleanly died
  const stats = q.info();
  console.log(
    `chaos: ${procs.length} processes, ${kills} kills by the test, ${resolved.size} puts resolved, ${takes.length} takes, ${doneIds.size} done, ${redeliveries} redelivered, stats ${JSON.stringify(stats)}`,
  );
  assert.deepEqual(lost, [], 'every item whose put resolved was taken');
  assert.ok(redeliveries <= consumerDeaths, `${redeliveries} redeliveries, ${consumerDeaths} consumers died`);
  assert.equal(stats.ready + stats.inFlight + stats.writing, 0, 'the queue is empty and no slot is stuck');
  assert.equal(stats.free, 64);
  await q.close();
});

it('a process writing random words into the slots and header: consumers end with a clear error or go on, never crash or hang', { timeout: 60_000 }, async () => {
  const name = uniqueName('hostile');
  names.push(name);
  await using q = createWorkQueue(name, { capacityJobs: 64, maxMessageBytes: 64, codec: 'json' });
  const consumer = runFixture('workqueue-peer', ['consume', name], { timeoutMs: 30_000 });
  const lines = jsonLines(consumer);
  await lines.next();
  const hostile = runPython(
    `import mmap,os,random,sys,time\nfd=os.open('/dev/shm'+sys.argv[1],os.O_RDWR)\nsize=os.fstat(fd).st_size\nm=mmap.mmap(fd,size)\nrng=random.Random(7)\nend=time.time()+2\nn=0\nwhile time.time()<end:\n  off=rng.randrange(0,size-4)&~3\n  m[off:off+4]=rng.choice([0,1,2,3,0xffffffff,rng.getrandbits(32)]).to_bytes(4,'little')\n  n+=1\nprint(n)`,
    [name],
    { timeoutMs: 20_000 },
  );
  let puts = 0;
  let putError: string | undefined;
  const putting = (async () => {
    for (let i = 0; i < 1_000_000 && !putError; i++) {
      try {
        await q.put({ p: 0, n: i }, { timeout: 200 });
        puts++;
      } catch (e) {
        putError = (e as { code?: string }).code;
      }
    }
  })();
  assert.equal((await hostile.done).code, 0);
  await sleep(300);
  try {
    q.shutdown();
  } catch (e) {
    // Our handle saw the corruption and is failed for good; shut down by hand, as an operator would.
    assert.equal((e as { code?: string }).code, 'ERR_IPCKIT_CORRUPT');
    using raw = await openSharedMemory(name);
    raw.store(101, 1); // the shutdown word (docs/workqueue.md)
    raw.add(48, 1);
    raw.notify(48);
  }
  await putting;
  const c = await within(consumer.done, 20_000, 'the consumer');
  assert.equal(c.code, 0, `the consumer crashed: ${c.signal} ${c.stderr}`);
  const last = lines.all[lines.all.length - 1];
  assert.ok(last.end === true || ['ERR_IPCKIT_CORRUPT', 'ERR_IPCKIT_BAD_FRAME'].includes(last.error), `ended with ${JSON.stringify(last)}`);
  assert.ok(putError === undefined || ['ERR_IPCKIT_CORRUPT', 'ERR_IPCKIT_TIMEOUT', 'ERR_IPCKIT_CLOSED'].includes(putError), `put ended with ${putError}`);
  console.log(`hostile writer on a work queue: ${puts} puts, the consumer ended with ${JSON.stringify(last)}, the producer with ${putError ?? 'no error'}`);
});
