import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { native } from '../src/os/native.js';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { droppedSignals, isSignalHandled, onSignal, sendSignal, signalName, signalNumber, signalReceiver, waitForSignal, watchProcess, type SignalInfo } from '../src/mechanisms/signal/signal.js';
import { fixturesDir, rejectsWith, run, runFixture, sleep, throwsWith, within } from './helpers.js';

const RTMIN = native.signalConstants.SIGRTMIN;

/** Resolves when `child` prints a line matching `re`. */
function line(child: ReturnType<typeof runFixture>['child'], re: RegExp): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const on = (d: Buffer): void => {
      buf += d.toString();
      const m = buf.split('\n').find((l) => re.test(l));
      if (m !== undefined) {
        child.stdout!.off('data', on);
        resolve(m);
      }
    };
    child.stdout!.on('data', on);
  });
}

describe('signal names', () => {
  it('reads signals as users write them', () => {
    assert.equal(signalNumber('SIGUSR2'), 12);
    assert.equal(signalNumber('USR2'), 12);
    assert.equal(signalNumber('usr2'), 12);
    assert.equal(signalNumber(12), 12);
    assert.equal(signalNumber('12'), 12);
    assert.equal(signalNumber('SIGRTMIN'), RTMIN);
    assert.equal(signalNumber('SIGRTMIN+3'), RTMIN + 3);
    assert.equal(signalNumber('RTMAX-1'), native.signalConstants.SIGRTMAX - 1);
    assert.equal(signalName(RTMIN + 3), 'SIGRTMIN+3');
    assert.equal(signalName(15), 'SIGTERM');
    throwsWith(() => signalNumber('SIGNOPE'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => signalNumber('SIGRTMIN+99'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => signalNumber(999), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });
});

describe('sending and receiving', () => {
  it('reports the sender pid, uid and value of a sigqueue from another process', async () => {
    const waiting = waitForSignal('SIGRTMIN+1', { timeout: 10_000 });
    const child = runFixture('signal-child', ['send', String(process.pid), 'SIGRTMIN+1', '1', 'queue']);
    const info = await waiting;
    assert.equal(info.signal, 'SIGRTMIN+1');
    assert.equal(info.pid, child.child.pid);
    assert.equal(info.uid, process.getuid!());
    assert.equal(info.value, 0);
    assert.equal(info.code, 'sigqueue');
    await child.done;
  });

  it('real-time signals queue in order, as many as sent', async () => {
    const rx = signalReceiver('SIGRTMIN+2');
    const n = 2000;
    const child = runFixture('signal-child', ['send', String(process.pid), 'SIGRTMIN+2', String(n), 'queue']);
    const values: number[] = [];
    for (let i = 0; i < n; i++) values.push((await within(rx.receive(), 10_000)).value!);
    assert.deepEqual(values, Array.from({ length: n }, (_, i) => i));
    assert.equal((await child.done).code, 0);
    await rx.close();
  });

  it('a blocked event loop loses no real-time signal: past the pipe\'s 32768 records they wait in the kernel, in order', async (t) => {
    // spawnSync blocks this thread's event loop while the sender runs: every delivery meets
    // the handler with nobody reading the pipe. Before, the 7232 past its room were dropped.
    const rx = signalReceiver('SIGRTMIN+6', { capacity: 100_000 });
    const n = 40_000;
    const droppedBefore = droppedSignals();
    const r = spawnSync(process.execPath, [join(fixturesDir, 'signal-child.js'), 'send', String(process.pid), 'SIGRTMIN+6', String(n), 'queue', 'patient'], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), `sent ${n}`);
    assert.equal(isSignalHandled('SIGRTMIN+6'), true);
    const values: number[] = [];
    for (let i = 0; i < n; i++) values.push((await within(rx.receive(), 10_000)).value!);
    t.diagnostic(`sent ${n} while the loop was blocked, received ${values.length}`);
    assert.deepEqual(values, Array.from({ length: n }, (_, i) => i));
    assert.equal(droppedSignals() - droppedBefore, 0);
    assert.equal(rx.dropped, 0);
    await rx.close();
    // Nothing is left blocked: the next one arrives as usual.
    const next = waitForSignal('SIGRTMIN+6', { timeout: 5000 });
    sendSignal(process.pid, 'SIGRTMIN+6', { value: 9 });
    assert.equal((await next).value, 9);
  });

  it('unsubscribing while deliveries wait in the kernel for a full pipe leaves none for the default action', async () => {
    const r = await runFixture('signal-child', ['blocked-close', 'SIGRTMIN+7', '40000']).done;
    assert.equal(r.signal, null, `the child died of ${r.signal}`);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['sent 40000', 'blocked false pending false', 'alive']);
  });

  it('standard signals may merge: counted, never promised', async (t) => {
    const rx = signalReceiver('SIGUSR2');
    const n = 2000;
    const child = runFixture('signal-child', ['send', String(process.pid), 'SIGUSR2', String(n)]);
    assert.equal((await child.done).code, 0);
    let got = 0;
    await within(rx.receive(), 10_000);
    got++;
    await sleep(200);
    while (rx.tryReceive() !== undefined) got++;
    t.diagnostic(`SIGUSR2: sent ${n}, received ${got} (standard signals do not queue)`);
    assert.ok(got >= 1 && got <= n, `received ${got} of ${n}`);
    await rx.close();
  });

  it('kill without a value reports code "kill" and no value', async () => {
    const waiting = waitForSignal('SIGUSR2', { timeout: 5000 });
    sendSignal(process.pid, 'USR2');
    const info = await waiting;
    assert.equal(info.code, 'kill');
    assert.equal(info.value, undefined);
    assert.equal(info.pid, process.pid);
  });

  it('waitForSignal takes timeout and AbortSignal, and leaves nothing installed', async () => {
    const started = Date.now();
    await rejectsWith(waitForSignal('SIGRTMIN+4', { timeout: 80 }), 'ERR_IPCKIT_TIMEOUT');
    assert.ok(Date.now() - started >= 75);
    const ac = new AbortController();
    const p = waitForSignal('SIGRTMIN+4', { signal: ac.signal });
    assert.equal(isSignalHandled('SIGRTMIN+4'), true);
    ac.abort(new Error('enough'));
    await rejectsWith(p, 'ERR_IPCKIT_ABORTED');
    assert.equal(isSignalHandled('SIGRTMIN+4'), false);
  });

  it('onSignal calls every subscriber; close() puts the old disposition back', async () => {
    const seen: string[] = [];
    const a = onSignal('SIGRTMIN+5', (i) => seen.push(`a${i.value}`));
    const b = onSignal('SIGRTMIN+5', (i) => seen.push(`b${i.value}`));
    sendSignal(process.pid, 'SIGRTMIN+5', { value: 7 });
    await within((async () => { while (seen.length < 2) await sleep(5); })(), 5000);
    assert.deepEqual(seen.sort(), ['a7', 'b7']);
    a.close();
    b.close();
    assert.equal(isSignalHandled('SIGRTMIN+5'), false);
  });

  it("Node's process.on listeners keep working next to ours, whichever came first", async () => {
    let node = 0;
    const nodeListener = (): void => void node++;
    const rx = signalReceiver('SIGUSR2');
    process.on('SIGUSR2', nodeListener);
    assert.equal(isSignalHandled('SIGUSR2'), true, 'ours is back on top after Node installed its handler');
    sendSignal(process.pid, 'SIGUSR2');
    await within(rx.receive(), 5000);
    await within((async () => { while (node < 1) await sleep(5); })(), 5000, 'the process.on listener');
    process.off('SIGUSR2', nodeListener);
    assert.equal(isSignalHandled('SIGUSR2'), true, 'ours survives Node removing its handler');
    sendSignal(process.pid, 'SIGUSR2'); // the default action would end this process
    const info: SignalInfo = await within(rx.receive(), 5000);
    assert.equal(info.signal, 'SIGUSR2');
    await rx.close();
  });

  it('waitForSignal sees no delivery from before the call, even one whose record was still unread', async () => {
    const seen: number[] = [];
    const other = onSignal('SIGRTMIN+8', (i) => void seen.push(i.value!));
    const sub = onSignal('SIGRTMIN+7', () => {});
    // Both delivered at once (to this thread); their records wait in the pipe, unread.
    sendSignal(process.pid, 'SIGRTMIN+8', { value: 8 });
    sendSignal(process.pid, 'SIGRTMIN+7', { value: 1 });
    sub.close();
    try {
      const waiting = waitForSignal('SIGRTMIN+7', { timeout: 5000 });
      let early: SignalInfo | undefined;
      waiting.then((i) => void (early = i), () => {});
      await sleep(100);
      assert.deepEqual(seen, [8], "the other signal's subscriber still gets its delivery");
      assert.equal(early, undefined, 'the wait took the delivery from before the call');
      sendSignal(process.pid, 'SIGRTMIN+7', { value: 2 });
      assert.equal((await waiting).value, 2);
    } finally {
      other.close();
    }
  });

  it('a signal receiver queues deliveries from the moment it exists', async () => {
    const rx = signalReceiver(['SIGRTMIN+6', 'SIGUSR2']);
    sendSignal(process.pid, 'SIGRTMIN+6', { value: 1 });
    sendSignal(process.pid, 'SIGRTMIN+6', { value: 2 });
    await sleep(50);
    const got = [await rx.receive({ timeout: 1000 }), await rx.receive({ timeout: 1000 })];
    assert.deepEqual(got.map((g) => g.value), [1, 2]);
    const it = rx[Symbol.asyncIterator]();
    const closing = rx.close();
    assert.deepEqual(await it.next(), { value: undefined, done: true });
    await closing;
  });
});

describe('installing and removing handlers', () => {
  it('a handler removed at once leaves no request to block it queued for the old disposition (the default action would end the process)', async () => {
    // Installing asks every other thread to block the signal by queueing it to them; one of those
    // still queued when the default action is back kills the process. Each child installs and at
    // once removes a handler for every real-time signal: about one in ten used to end it.
    // Node reports a death by a real-time signal as exit code 0 (it has no name for the
    // signal), so the proof that a child survived is the line it prints last.
    const runs = await Promise.all([0, 1, 2, 3].map(() => runFixture('signal-child', ['churn', '1']).done));
    for (const r of runs) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^\{"pending":/, 'the child ran to its end (a signal it asked a thread to block did not kill it)');
    }
  });

  it("SIGTERM and SIGINT, which Node itself catches (to restore the terminal, then die), are delivered to us and the process goes on", async () => {
    // Node's own handler for these is one-shot (SA_RESETHAND) and ends in raise(): run from
    // ours, with ours still installed, it raised the signal again, forever.
    for (const signal of ['SIGTERM', 'SIGINT']) {
      const w = runFixture('signal-child', ['wait', signal], { timeoutMs: 15_000 });
      await within(line(w.child, /ready/), 10_000);
      sendSignal(w.child.pid!, signal);
      const r = await within(w.done, 10_000, `the child to report ${signal} and exit`);
      assert.equal(r.code, 0, r.stderr);
      const info = JSON.parse(r.stdout.trim().split('\n').pop()!) as SignalInfo;
      assert.deepEqual([info.signal, info.pid], [signal, process.pid]);
    }
  });

  it('installing again asks no thread that blocks the signal already: no request is left queued, none piles up', async () => {
    // A request queued to a thread that blocks the signal stays queued for the life of the
    // process, counted against the user's RLIMIT_SIGPENDING (shared by all their processes):
    // a waitForSignal loop used to leave one per thread per turn.
    const r = await runFixture('signal-child', ['churn', '3']).done;
    assert.equal(r.code, 0, r.stderr);
    const { pending } = JSON.parse(r.stdout) as { pending: Array<{ tid: string; signal: number }> };
    assert.deepEqual(pending, [], 'real-time signals left queued on threads');
  });
});

describe('what cannot work is refused clearly', () => {
  it('SIGKILL/SIGSTOP are INVALID_ARGUMENT; SIGUSR1, fault and Node-owned signals UNSUPPORTED', () => {
    throwsWith(() => onSignal('SIGKILL', () => {}), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => onSignal('STOP', () => {}), 'ERR_IPCKIT_INVALID_ARGUMENT');
    for (const s of ['SIGUSR1', 'SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL', 'SIGPIPE', 'SIGCHLD', 'SIGPROF', 33]) {
      throwsWith(() => onSignal(s, () => {}), 'ERR_IPCKIT_UNSUPPORTED');
    }
    throwsWith(() => signalReceiver('SIGUSR1'), 'ERR_IPCKIT_UNSUPPORTED');
    assert.throws(() => void waitForSignal('SIGKILL'), (e: { code?: string }) => e.code === 'ERR_IPCKIT_INVALID_ARGUMENT');
  });

  it('listening from a worker thread is UNSUPPORTED', async () => {
    const r = await runFixture('signal-child', ['worker', 'SIGUSR2']).done;
    assert.equal(r.stdout.trim(), 'ERR_IPCKIT_UNSUPPORTED', r.stderr);
  });

  it('sending to no such process is NOT_FOUND; bad arguments are INVALID_ARGUMENT', () => {
    throwsWith(() => sendSignal(2 ** 22 + 12345, 'SIGUSR2'), 'ERR_IPCKIT_NOT_FOUND');
    throwsWith(() => sendSignal(0, 'SIGUSR2'), 'ERR_IPCKIT_INVALID_ARGUMENT');
    throwsWith(() => sendSignal(process.pid, 'SIGUSR2', { value: 2 ** 40 }), 'ERR_IPCKIT_INVALID_ARGUMENT');
  });

  it('onSignal does not keep the process alive; waitForSignal does', async () => {
    const idle = await runFixture('signal-child', ['idle', 'SIGUSR2'], { timeoutMs: 10_000 }).done;
    assert.equal(idle.code, 0);
    assert.match(idle.stdout, /subscribed/);
    const w = runFixture('signal-child', ['wait', 'SIGRTMIN+3']);
    await within(line(w.child, /ready/), 10_000);
    await sleep(100);
    assert.equal(w.child.exitCode, null, 'still waiting');
    sendSignal(w.child.pid!, 'SIGRTMIN+3', { value: 99 });
    const r = await w.done;
    const info = JSON.parse(r.stdout.trim().split('\n').pop()!) as SignalInfo;
    assert.equal(info.value, 99);
    assert.equal(info.pid, process.pid);
  });
});

describe('watchProcess', () => {
  it('settles when the process exits, through its pidfd', async () => {
    const child = run('sleep', ['30']);
    const watching = watchProcess(child.child.pid!);
    await sleep(50);
    child.child.kill('SIGKILL');
    await within(watching, 5000);
    await child.done;
    await rejectsWith(watchProcess(child.child.pid!), 'ERR_IPCKIT_NOT_FOUND');
  });

  it('a watch opened before the exit follows that process, not its pid (no reuse race)', async () => {
    // The pidfd names the process itself: after it has exited and been reaped (its pid free
    // for reuse), the watch opened on it still settles; nothing looks the pid up again.
    const child = run('sleep', ['30']);
    let settled = false;
    const watching = watchProcess(child.child.pid!).then(() => void (settled = true));
    child.child.kill('SIGKILL');
    await child.done; // reaped by Node: the pid may now be reused
    await within(watching, 5000);
    assert.equal(settled, true);
  });

  it('takes timeout and AbortSignal', async () => {
    await rejectsWith(watchProcess(process.pid, { timeout: 50 }), 'ERR_IPCKIT_TIMEOUT');
    await rejectsWith(watchProcess(process.pid, { signal: AbortSignal.abort() }), 'ERR_IPCKIT_ABORTED');
  });
});
