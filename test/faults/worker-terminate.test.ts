/**
 * worker.terminate() while the worker is inside native calls. A call that fails because
 * its environment is being torn down cannot throw into JavaScript; node-addon-api must
 * swallow it (NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS) rather than rethrow in C++, which
 * is std::terminate: the whole process, not just the worker, would abort.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { run } from '../helpers.js';

const CHILD = `
const { Worker } = require('node:worker_threads');
const nativeUrl = process.argv[1];
(async () => {
  for (let i = 0; i < 60; i++) {
    const w = new Worker(
      "const { parentPort, workerData } = require('node:worker_threads');" +
      "import(workerData).then(({ native }) => { parentPort.postMessage('go'); for (;;) { native.getStatusFlags(0); native.fstat(0); } });",
      { eval: true, workerData: nativeUrl });
    await new Promise((r) => w.once('message', r));
    await new Promise((r) => setTimeout(r, i % 4));
    await w.terminate();
  }
  console.log('survived');
})();`;

describe('workers terminated inside native calls', () => {
  it('60 workers terminated while calling into the addon: the process survives', async () => {
    // In a child process: an abort must fail this test, not take the runner down.
    const r = await run(process.execPath, ['-e', CHILD, new URL('../../src/os/native.js', import.meta.url).href], { timeoutMs: 60_000 }).done;
    assert.equal(r.signal, null, `the process died of ${r.signal}: ${r.stderr.slice(-300)}`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /survived/);
  });
});
