/**
 * The crash matrix (scripts/crash-matrix.ts) on a few cells, once each: the victim dies at
 * the fault point, the survivor loses nothing whose send resolved, gets nothing torn, and
 * can use the object again; the script leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { repoRoot, run, scratchPath, within } from './helpers.js';

interface Matrix {
  cells: Array<{ mechanism: string; point: string; runs: Array<{ killed: boolean; lost: number; torn: number; duplicated: number; usable: boolean }> }>;
}

for (const only of ['ring:mid-copy', 'workqueue:before-done', 'create:before-publish']) {
  it(`crash matrix: ${only}`, { timeout: 180_000 }, async () => {
    const json = scratchPath('matrix.json');
    const r = run(process.execPath, [join(repoRoot, 'dist/scripts/crash-matrix.js'), '--runs', '2', '--only', only, '--json', json], { timeoutMs: 170_000 });
    const done = await within(r.done, 175_000, 'the crash matrix');
    try {
      assert.equal(done.code, 0, done.stdout + done.stderr);
      const m = JSON.parse(readFileSync(json, 'utf8')) as Matrix;
      assert.ok(m.cells.length > 0);
      for (const c of m.cells) {
        for (const x of c.runs) {
          assert.ok(x.killed, `${c.mechanism} ${c.point}: the victim died there`);
          assert.equal(x.lost, 0);
          assert.equal(x.torn, 0);
          assert.ok(x.usable, `${c.mechanism} ${c.point}: usable afterwards`);
        }
      }
      assert.match(done.stdout, /\| mechanism \| fault point \|/);
      assert.deepEqual(readdirSync('/dev/shm').filter((n) => n.includes(`ipckit-crash-${r.child.pid}-`)), [], 'nothing left in /dev/shm');
    } finally {
      rmSync(json, { force: true });
    }
  });
}
