/**
 * A storm of signals while other ipckit calls wait: no EINTR reaches the user, results
 * are right, timeouts stay accurate, and every real-time signal sent arrives.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { connect, listen, socketPair } from '../../src/mechanisms/socket/socket.js';
import { onSignal, signalReceiver, waitForSignal } from '../../src/mechanisms/signal/signal.js';
import { native } from '../../src/os/native.js';
import { compileC, rejectsWith, run, scratchDir, scratchPath, within } from '../helpers.js';

scratchDir();

const STORM = `
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  pid_t pid = atoi(argv[1]);
  int rt = atoi(argv[2]);
  double secs = atof(argv[3]);
  struct timespec start, now, pause = {0, 50000};
  clock_gettime(CLOCK_MONOTONIC, &start);
  long usr2 = 0, queued = 0, full = 0, winch = 0;
  for (int i = 0;; i++) {
    if (kill(pid, SIGUSR2) == 0) usr2++;
    if (kill(pid, SIGWINCH) == 0) winch++;
    union sigval v; v.sival_int = (int)queued;
    if (sigqueue(pid, rt, v) == 0) queued++; else full++;
    nanosleep(&pause, NULL);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 > secs) break;
  }
  printf("%ld %ld %ld %ld\\n", usr2, queued, full, winch);
  return 0;
}
`;

it('a signal storm during blocked waits: no EINTR, right results, accurate timeouts, every real-time signal', async (t) => {
  const storm = compileC('storm', STORM);
  const rt = native.signalConstants.SIGRTMIN + 2;
  let usr2 = 0;
  const sub = onSignal('SIGUSR2', () => void usr2++);
  const rtRx = signalReceiver('SIGRTMIN+2');
  const values: number[] = [];
  const draining = (async () => {
    for await (const s of rtRx) values.push(s.value!);
  })();

  const server = await listen(`unix:${scratchPath('storm')}`, { codec: 'json' });
  const accepting = server.accept();
  const client = await connect(server.address, { codec: 'json' });
  const peer = await accepting;
  const [idleA, idleB] = socketPair('unix-seqpacket');

  const sender = run(storm, [String(process.pid), String(rt), '1.5']);
  const timed = async (what: string, ms: number, p: () => Promise<unknown>): Promise<number> => {
    const started = performance.now();
    await rejectsWith(p(), 'ERR_IPCKIT_TIMEOUT');
    const took = performance.now() - started;
    t.diagnostic(`${what}: timeout ${ms} ms took ${took.toFixed(1)} ms`);
    return took;
  };
  const [roundTrips, tookReceive, tookSignal, tookConnect] = await Promise.all([
    (async () => {
      let n = 0;
      const deadline = Date.now() + 1200;
      while (Date.now() < deadline) {
        const payload = { n, blob: 'x'.repeat(n % 3000) };
        await client.send(payload);
        assert.deepEqual(await peer.receive(), payload);
        await peer.send({ ack: n });
        assert.deepEqual(await client.receive(), { ack: n });
        n++;
      }
      return n;
    })(),
    timed('idle receive', 300, () => idleB.receive({ timeout: 300 })),
    timed('waitForSignal', 300, () => waitForSignal('SIGRTMIN+9', { timeout: 300 })),
    timed('reconnecting connect', 400, () => connect(`unix:${scratchPath('nobody')}`, { reconnect: { minDelay: 5, maxDelay: 20 }, timeout: 400 })),
  ]);
  const r = await sender.done;
  assert.equal(r.code, 0, r.stderr);
  const [sentUsr2, sentRt, rtFull] = r.stdout.trim().split(' ').map(Number) as [number, number, number];
  await within((async () => {
    while (values.length < sentRt) await new Promise((res) => setTimeout(res, 10));
  })(), 10_000, `all ${sentRt} real-time signals`);
  t.diagnostic(`${roundTrips} round trips during the storm; SIGUSR2 sent ${sentUsr2}, seen ${usr2}; SIGRTMIN+2 sent ${sentRt} (${rtFull} refused: queue full), received ${values.length}`);

  assert.ok(roundTrips > 50, `only ${roundTrips} round trips`);
  for (const took of [tookReceive, tookSignal]) assert.ok(took >= 295 && took < 300 * 1.5 + 100, `a 300 ms timeout took ${took} ms`);
  assert.ok(tookConnect >= 395 && tookConnect < 400 * 1.5 + 100, `a 400 ms connect timeout took ${tookConnect} ms`);
  assert.deepEqual(values, Array.from({ length: sentRt }, (_, i) => i), 'every real-time signal, in order');
  assert.ok(usr2 >= 1 && usr2 <= sentUsr2);

  sub.close();
  await rtRx.close();
  await draining;
  for (const c of [client, peer, idleA, idleB]) await c.close();
  await server.close();
});
