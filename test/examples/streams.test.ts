/** The pipe, popen and FIFO examples (examples/<mechanism>/), run as a user would run them. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkFdLeaks, repoRoot, run, scratchPath, within } from '../helpers.js';

checkFdLeaks();

const example = (mechanism: string, file: string): string => join(repoRoot, 'dist', 'examples', mechanism, `${file}.js`);

describe('examples', () => {
  it('pipe: parent.js sends jobs to child.js over fd 3 and reads results on fd 4', async () => {
    const r = await run(process.execPath, [example('pipe', 'parent')]).done;
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 5);
    for (const [i, n] of [1, 2, 3, 12].entries()) assert.match(lines[i]!, new RegExp(`^result \\{ n: ${n}, square: ${n * n}, by: \\d+ \\}$`));
    assert.equal(lines[4], 'child { exitCode: 0, signal: null }');
  });

  it('popen: parent.js reads a worker, then feeds sort -r', async () => {
    const r = await run(process.execPath, [example('popen', 'parent')]).done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'worker says { step: 1, of: 3 }',
      'worker says { step: 2, of: 3 }',
      'worker says { step: 3, of: 3 }',
      'worker { exitCode: 0, signal: null }',
      'pear',
      'fig',
      'apple; rm -rf ~',
      'sort { exitCode: 0, signal: null }',
    ]);
  });

  it('fifo: reader.js creates the FIFO, writer.js (another process) sends, the reader removes it', async () => {
    const path = scratchPath('example.fifo');
    const reader = run(process.execPath, [example('fifo', 'reader'), path]);
    // The reader prints its first line once the FIFO exists and is open.
    const lines: string[] = [];
    reader.child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    await within(
      (async () => {
        while (!lines[0]?.startsWith('listening')) await new Promise((r) => setTimeout(r, 10));
      })(),
      10_000,
      'the reader',
    );
    const w = await run(process.execPath, [example('fifo', 'writer'), path, 'one', 'two words', 'three']).done;
    assert.equal(w.code, 0, w.stderr);
    const r = await reader.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [`listening on ${path}`, 'got one', 'got two words', 'got three', 'done']);
    assert.equal(existsSync(path), false, 'the reader removes the FIFO');
  });
});
