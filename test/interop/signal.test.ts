/** Peers we did not write: python3 (ctypes sigqueue, signal.sigwaitinfo), sh's kill, and the CLI. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { native } from '../../src/os/native.js';
import { sendSignal, signalReceiver, waitForSignal } from '../../src/mechanisms/signal/signal.js';
import { lineFrom, run, runCli, runPython, sleep, within } from '../helpers.js';

const RTMIN = native.signalConstants.SIGRTMIN;

describe('signals with python3 and sh', () => {
  it('python sends sigqueue through ctypes: we see its pid, uid and value', async () => {
    const waiting = waitForSignal('SIGRTMIN+1', { timeout: 10_000 });
    const py = runPython(
      `import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class sigval(ctypes.Union): _fields_ = [('sival_int', ctypes.c_int), ('sival_ptr', ctypes.c_void_p)]
if libc.sigqueue(int(sys.argv[1]), int(sys.argv[2]), sigval(sival_int=4242)) != 0: raise OSError(ctypes.get_errno(), 'sigqueue')
print(os.getpid(), flush=True)`,
      [String(process.pid), String(RTMIN + 1)],
    );
    const info = await waiting;
    const r = await py.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(info.pid, Number(r.stdout.trim()));
    assert.equal(info.value, 4242);
    assert.equal(info.code, 'sigqueue');
    assert.equal(info.uid, process.getuid!());
  });

  it('python receives with signal.sigwaitinfo: our pid, and our value via ctypes', async () => {
    const py = runPython(
      `import signal, ctypes, sys, os
rt = signal.SIGRTMIN + 2
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2, rt})
print('ready', flush=True)
info = signal.sigwaitinfo({signal.SIGUSR2})
print('usr2', info.si_pid, info.si_code, flush=True)
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(128)
mask = ctypes.create_string_buffer(128)
libc.sigemptyset(mask); libc.sigaddset(mask, rt)
if libc.sigwaitinfo(mask, buf) != rt: raise OSError(ctypes.get_errno(), 'sigwaitinfo')
import struct
signo, errno_, code, _pad, pid, uid, value = struct.unpack_from('<iiiiIIi', buf.raw)
print('rt', pid, code, value, flush=True)`,
    );
    await within(lineFrom(py.child.stdout!, /ready/), 10_000, 'python ready');
    sendSignal(py.child.pid!, 'SIGUSR2');
    sendSignal(py.child.pid!, 'SIGRTMIN+2', { value: -77 });
    const r = await py.done;
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines[1], `usr2 ${process.pid} 0`); // SI_USER: kill(2)
    assert.equal(lines[2], `rt ${process.pid} -1 -77`); // SI_QUEUE with our value
  });

  it('`kill -s USR2` from sh reaches onSignal with the shell as sender', async () => {
    const rx = signalReceiver('USR2');
    const sh = run('sh', ['-c', `kill -s USR2 ${process.pid}; echo $$`]);
    const info = await within(rx.receive(), 10_000);
    const r = await sh.done;
    assert.equal(info.pid, Number(r.stdout.trim()));
    assert.equal(info.code, 'kill');
    await rx.close();
  });
});

describe('ipckit signal CLI', () => {
  it('signal wait prints each delivery; signal send delivers with a value', async () => {
    const waiter = runCli(['signal', 'wait', 'SIGRTMIN+3', 'USR2', '--count', '2', '--json', '--timeout', '10000']);
    const ready = await within(lineFrom(waiter.child.stderr!, /waiting for/), 10_000);
    assert.match(ready, /SIGRTMIN\+3, SIGUSR2/);
    const send = await runCli(['signal', 'send', String(waiter.child.pid), 'RTMIN+3', '--value', '5']).done;
    assert.equal(send.code, 0, send.stderr);
    await sleep(50);
    sendSignal(waiter.child.pid!, 'SIGUSR2');
    const r = await waiter.done;
    assert.equal(r.code, 0, r.stderr);
    const [a, b] = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { signal: string; value?: number; pid: number });
    assert.equal(a!.signal, 'SIGRTMIN+3');
    assert.equal(a!.value, 5);
    assert.equal(b!.signal, 'SIGUSR2');
    assert.equal(b!.pid, process.pid);
  });

  it('exit codes: 124 on timeout, 1 on a refused signal, 2 on usage', async () => {
    assert.equal((await runCli(['signal', 'wait', 'USR2', '--timeout', '50']).done).code, 124);
    const refused = await runCli(['signal', 'wait', 'SIGKILL']).done;
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /ERR_IPCKIT_INVALID_ARGUMENT/);
    assert.equal((await runCli(['signal', 'send', 'x', 'USR2']).done).code, 2);
    const gone = await runCli(['signal', 'send', String(2 ** 22 + 999), 'USR2']).done;
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /ERR_IPCKIT_NOT_FOUND/);
  });
});
