/**
 * `ipckit gc` (collectGarbage): over several rounds of ipckit peers SIGKILLed at random
 * moments, next to a live peer and objects of peers we did not write, it removes exactly
 * the abandoned ipckit objects; never a live, foreign or persistent one; a process that
 * keeps opening an object while gc runs keeps it; as user nobody it touches only what it
 * may. Every call here passes `prefix`, so that gc never looks at other tests' objects.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { collectGarbage, listObjects, unlinkRing, type GcResult } from '../../src/index.js';
import { AS_NOBODY, isRoot, repoRoot, run, runCli, runFixture, runPython, scratchDir, sleep, uniqueName } from '../helpers.js';
import { IPCKIT_MADE, kill, named, peer, removeShm, untilPrinted } from './common.js';

const PREFIX = uniqueName('gc').slice(1);
after(() => removeShm(PREFIX));

const exists = (name: string): boolean => existsSync(`/dev/shm/${name.slice(1)}`);
const byName = (results: GcResult[]): Map<string, GcResult> => new Map(results.map((r) => [r.name.replace(/^shm:/, ''), r]));

describe('ipckit gc', () => {
  it('over several rounds removes exactly the abandoned ipckit objects: never a live, foreign or persistent one', async () => {
    const livePrefix = `${PREFIX}-live`;
    const live = await peer(['busy', livePrefix]);
    const py = runPython(
      ['import sys', 'from multiprocessing import shared_memory, resource_tracker', 'm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=4096)', 'resource_tracker.unregister(m._name, "shared_memory")', 'm.close()'].join('\n'),
      [`${PREFIX}-python`],
    );
    assert.equal((await py.done).code, 0);
    try {
      const rounds = 4;
      for (let round = 0; round < rounds; round++) {
        const p = `${PREFIX}-r${round}`;
        // Killed at a random moment: before it is ready (inside a create, maybe) or while it works.
        const r = runFixture('ops-peer', ['busy', p], { timeoutMs: 60_000 });
        if (round % 2 === 1) await untilPrinted(r.child, '"ready":true', 'ops-peer busy').catch(() => {});
        await sleep(Math.random() * 300);
        await kill(r);

        const before = await named(PREFIX);
        const abandoned = [...before.values()].filter((o) => o.name!.startsWith(`/${p}-`) && IPCKIT_MADE.has(o.madeBy) && !o.persistent);
        for (const o of abandoned) assert.equal(o.state, 'abandoned', `${o.name}: ${o.reason}`);
        const dry = byName(await collectGarbage({ prefix: PREFIX, dryRun: true }));
        for (const o of abandoned) assert.equal(dry.get(o.name!)?.action, 'would-remove', o.name);
        // (The live peer makes and removes its churn objects all the time: they come and go by themselves.)
        for (const n of before.keys()) if (!n.startsWith(`/${livePrefix}-churn`)) assert.ok(exists(n), `a dry run removes nothing: ${n}`);

        const results = await collectGarbage({ prefix: PREFIX });
        const got = byName(results);
        const removed = results.filter((x) => x.action === 'removed').map((x) => x.name.replace(/^shm:/, '')).sort();
        assert.deepEqual(removed, abandoned.map((o) => o.name!).sort(), `round ${round}: exactly the abandoned ones`);
        assert.ok(results.every((x) => x.action !== 'failed'), JSON.stringify(results));
        for (const name of removed) assert.equal(exists(name), false, `${name} is gone`);
        // The live peer's objects, the persistent ring and python's segment stay.
        for (const kind of ['ring', 'wq', 'mutex', 'pool', 'persist']) {
          assert.ok(exists(`/${livePrefix}-${kind}`), `live ${kind} kept`);
          assert.equal(got.get(`/${livePrefix}-${kind}`)?.action, 'kept');
        }
        if (before.has(`/${p}-persist`)) {
          assert.ok(exists(`/${p}-persist`));
          assert.match(got.get(`/${p}-persist`)!.reason, /persistent/);
        }
        assert.ok(exists(`/${PREFIX}-python`));
        assert.equal(got.has(`/${PREFIX}-python`), false, 'foreign objects are not even considered');
        // Whatever of this round is left: persistent, or foreign (killed before its header was written).
        for (const o of (await named(`${p}-`)).values()) assert.ok(o.persistent || o.madeBy === 'foreign', `${o.name} left: ${o.madeBy} ${o.state} ${o.reason}`);
        // A second pass finds nothing more to remove.
        assert.equal((await collectGarbage({ prefix: PREFIX })).filter((x) => x.action === 'removed').length, 0);
      }
    } finally {
      await kill(live);
      removeShm(PREFIX);
    }
  });

  it('a process that keeps opening an object while gc runs keeps it; once it is gone, gc removes it', async () => {
    const ring = `/${PREFIX}-race`;
    const creator = await peer(['create', 'ring', ring]);
    await kill(creator);
    assert.equal((await named(ring.slice(1))).get(ring)!.state, 'abandoned');
    const churn = runFixture('ops-peer', ['churn', ring, '4000'], { timeoutMs: 60_000 });
    try {
      await untilPrinted(churn.child, '"ready":true', 'ops-peer churn');
      let rounds = 0;
      while (churn.child.exitCode === null && churn.child.signalCode === null) {
        const r = byName(await collectGarbage({ prefix: ring.slice(1) })).get(ring);
        if (churn.child.exitCode !== null) break; // it ended during this pass: gc may rightly remove it
        if (r?.action === 'removed') {
          // Only right if the churn had closed its last handle (its exit may not have reached
          // us yet): had gc removed the ring under it, its next open would fail and it would
          // exit 1 without printing its count.
          const end = await churn.done;
          assert.equal(end.code, 0, `gc removed the ring while it was in use: ${end.stdout}${end.stderr}`);
          assert.match(end.stdout, /"opens":\d+/);
          break;
        }
        assert.equal(r?.action, 'kept', JSON.stringify(r));
        assert.ok(exists(ring));
        rounds++;
      }
      const end = await churn.done;
      assert.equal(end.code, 0, end.stdout + end.stderr);
      assert.match(end.stdout, /"opens":\d+/);
      assert.ok(rounds > 0, 'gc ran while the object was opened and closed');
      const last = byName(await collectGarbage({ prefix: ring.slice(1) })).get(ring);
      if (exists(ring) || last) assert.equal(last?.action, 'removed', JSON.stringify(last));
      assert.equal(exists(ring), false);
    } finally {
      await kill(churn);
      removeShm(ring.slice(1));
    }
  });

  it('foreign objects go only when named, and only when nobody holds them; the CLI exits 1 for what could not go', async () => {
    const idle = `${PREFIX}-f-idle`;
    const py = runPython(
      ['import sys', 'from multiprocessing import shared_memory, resource_tracker', 'm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=4096)', 'resource_tracker.unregister(m._name, "shared_memory")', 'm.close()'].join('\n'),
      [idle],
    );
    assert.equal((await py.done).code, 0);
    const fifo = join(scratchDir(), `${PREFIX}-f-fifo`);
    assert.equal((await run('mkfifo', [fifo]).done).code, 0);
    const holder = run('sh', ['-c', 'exec 3<>"$1"; echo ready; exec sleep 120', 'sh', fifo], { timeoutMs: 120_000 });
    await untilPrinted(holder.child, 'ready', 'sh');
    // The CLI's create verbs make persistent objects: gc keeps them after the CLI exited.
    const cliRing = `/${PREFIX}-cli`;
    assert.equal((await runCli(['ring', 'create', cliRing]).done).code, 0);
    try {
      const plain = await runCli(['gc', '--prefix', PREFIX, '--json']).done;
      assert.equal(plain.code, 0, plain.stderr);
      const r0 = byName(JSON.parse(plain.stdout) as GcResult[]);
      assert.equal(r0.get(cliRing)?.action, 'kept');
      assert.match(r0.get(cliRing)!.reason, /persistent/);
      assert.ok(exists(`/${idle}`));

      const dry = await runCli(['gc', '--prefix', PREFIX, '--dry-run', '--foreign', `/${idle}`]).done;
      assert.equal(dry.code, 0, dry.stderr);
      assert.match(dry.stdout, new RegExp(`would-remove\\s+shm:/${idle}`));
      assert.ok(exists(`/${idle}`));

      const dir = scratchDir();
      const r1 = byName(await collectGarbage({ prefix: PREFIX, paths: [dir], foreign: [`/${idle}`, `fifo:${fifo}`, cliRing] }));
      assert.equal(r1.get(`/${idle}`)?.action, 'removed');
      assert.equal(exists(`/${idle}`), false);
      assert.equal(r1.get(`fifo:${fifo}`)?.action, 'kept', 'sh holds the FIFO open');
      assert.match(r1.get(`fifo:${fifo}`)!.reason, /in use/);
      assert.ok(existsSync(fifo));
      assert.equal(r1.get(cliRing)?.action, 'kept', 'ipckit objects are never removed as foreign');
      await kill(holder);
      const viaCli = await runCli(['gc', dir, '--prefix', PREFIX, '--foreign', fifo]).done;
      assert.equal(viaCli.code, 0, viaCli.stdout + viaCli.stderr);
      assert.match(viaCli.stdout, /removed\s+fifo:/);
      assert.equal(existsSync(fifo), false);

      const missing = await runCli(['gc', '--prefix', PREFIX, '--foreign', '/no-such-object-here']).done;
      assert.equal(missing.code, 1);
      assert.match(missing.stdout, /failed\s+\/no-such-object-here\s+-: no such object/);
    } finally {
      await kill(holder);
      unlinkRing(cliRing);
      removeShm(PREFIX);
    }
  });

  it('as user nobody: sees and removes only what it may', { skip: !isRoot && 'needs root to switch to nobody' }, async () => {
    const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
    const asNobody = (args: string[]) => run(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), process.execPath, cli, ...args], { timeoutMs: 60_000 }).done;
    const rootPrivate = `/${PREFIX}-n-root600`;
    const rootOpen = `/${PREFIX}-n-root644`;
    const theirs = `/${PREFIX}-n-nobody`;
    const a = await peer(['create', 'ring', rootPrivate]);
    const b = await peer(['create', 'ring', rootOpen], { MODE: '644' });
    const c = await peer(['create', 'ring', theirs], {}, AS_NOBODY);
    await kill(a);
    await kill(b);
    await kill(c);
    try {
      const ls = await asNobody(['ls', '--json', '--kind', 'shm']);
      assert.equal(ls.code, 0, ls.stderr);
      const seen = new Map((JSON.parse(ls.stdout) as Array<{ name: string; madeBy: string; state: string; reason: string; perm: { uid: number } }>).map((o) => [o.name, o]));
      assert.equal(seen.get(rootPrivate)?.madeBy, 'unknown', 'a 0600 segment of root cannot be read by nobody');
      assert.equal(seen.get(rootPrivate)?.state, 'unknown');
      assert.match(seen.get(rootPrivate)!.reason, /EACCES/);
      assert.equal(seen.get(rootOpen)?.state, 'abandoned');
      assert.equal(seen.get(theirs)?.state, 'abandoned', seen.get(theirs)?.reason);
      assert.equal(seen.get(theirs)?.perm.uid, 65534);

      const gc = await asNobody(['gc', '--prefix', `${PREFIX}-n-`, '--json']);
      assert.equal(gc.code, 0, gc.stderr + gc.stdout);
      const r = byName(JSON.parse(gc.stdout) as GcResult[]);
      assert.equal(r.get(theirs)?.action, 'removed');
      assert.equal(r.get(rootOpen)?.action, 'kept');
      assert.match(r.get(rootOpen)!.reason, /only its owner or root/);
      assert.equal(r.get(rootPrivate)?.action, 'kept');
      assert.match(r.get(rootPrivate)!.reason, /cannot be read \(EACCES\)/);
      assert.equal(exists(theirs), false);
      assert.ok(exists(rootPrivate) && exists(rootOpen), "root's objects are untouched");
      // Root's gc removes the rest.
      const rest = byName(await collectGarbage({ prefix: `${PREFIX}-n-` }));
      assert.equal(rest.get(rootPrivate)?.action, 'removed');
      assert.equal(rest.get(rootOpen)?.action, 'removed');
      assert.equal((await listObjects({ prefix: `${PREFIX}-n-` })).length, 0);
    } finally {
      removeShm(PREFIX);
    }
  });
  it('proves nothing where processes are hidden: /proc with hidepid, or a PID namespace of its own', { skip: !isRoot && 'needs root for unshare' }, async () => {
    const cli = join(repoRoot, 'dist', 'src', 'cli', 'main.js');
    const theirs = `/${PREFIX}-h-nobody`;
    const c = await peer(['create', 'ring', theirs], {}, AS_NOBODY);
    await kill(c);
    try {
      assert.equal((await named(theirs.slice(1))).get(theirs)?.state, 'abandoned');
      const dir = scratchDir();
      const node = JSON.stringify(process.execPath);
      const script = `
        mount -t proc -o hidepid=2 proc /proc
        ${node} ${JSON.stringify(cli)} gc --prefix ${theirs.slice(1)} --json > ns-gc.json
        ${AS_NOBODY.join(' ')} ${node} ${JSON.stringify(cli)} ls --json --kind shm > hidden-ls.json
        ${AS_NOBODY.join(' ')} ${node} ${JSON.stringify(cli)} gc --prefix ${theirs.slice(1)} --json > hidden-gc.json
      `;
      const r = await run('unshare', ['-mp', '--fork', 'sh', '-c', script], { cwd: dir }).done;
      assert.equal(r.code, 0, r.stderr);
      const read = (f: string): unknown => JSON.parse(readFileSync(join(dir, f), 'utf8'));
      const nsGc = byName(read('ns-gc.json') as GcResult[]).get(theirs)!;
      assert.equal(nsGc.action, 'kept');
      assert.match(nsGc.reason, /PID namespace of its own/);
      const ls = (read('hidden-ls.json') as Array<{ name: string; state: string; reason: string }>).find((o) => o.name === theirs)!;
      assert.equal(ls.state, 'unknown');
      assert.match(ls.reason, /hidepid/);
      assert.equal(byName(read('hidden-gc.json') as GcResult[]).get(theirs)?.action, 'kept');
      assert.ok(exists(theirs));
      assert.equal(byName(await collectGarbage({ prefix: theirs.slice(1) })).get(theirs)?.action, 'removed', 'seen from here, it is abandoned');
    } finally {
      removeShm(PREFIX);
    }
  });
});
