/**
 * The reliability campaign's other two parts, short: the hostile-peer campaign
 * (scripts/hostile.ts) and the leak cycles (scripts/leak-cycles.ts). Each must run every
 * target, count what it tried, and end with status 0 (no exception that is not an
 * IpcError, no crash, no hang; no object, descriptor or thread left). The full runs and
 * their figures are in docs/reliability.md.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { repoRoot, run, scratchPath, within } from './helpers.js';

it('hostile peers: every target tried, no crash, no hang, every answer an IpcError', { timeout: 240_000 }, async () => {
  const out = scratchPath('hostile.json');
  const r = run(process.execPath, [join(repoRoot, 'dist/scripts/hostile.js'), '--seconds', '1', '--rounds', '1', '--inputs', '60', '--seed', '7', '--json', out], { timeoutMs: 200_000 });
  const done = await within(r.done, 220_000, 'the hostile campaign');
  assert.equal(done.code, 0, `${done.stdout}\n${done.stderr.slice(-3000)}`);
  const report = JSON.parse(readFileSync(out, 'utf8')) as { targets: Array<{ target: string; inputs: number; operations: number; notIpcError: number; crashes: number; hangs: number; servesAfter?: boolean }> };
  assert.equal(report.targets.length, 12);
  for (const t of report.targets) {
    assert.ok(t.inputs > 0, `${t.target}: inputs were tried`);
    assert.ok(t.operations > 0, `${t.target}: ipckit answered`);
    assert.deepEqual([t.notIpcError, t.crashes, t.hangs], [0, 0, 0], t.target);
    if (t.servesAfter !== undefined) assert.equal(t.servesAfter, true, `${t.target}: an honest peer is served afterwards`);
  }
  assert.match(done.stdout, /^\| target \| inputs tried/m);
});

it('leak cycles: every kind opened, used and closed; nothing left behind', { timeout: 240_000 }, async () => {
  const out = scratchPath('leaks.json');
  const r = run(process.execPath, [join(repoRoot, 'dist/scripts/leak-cycles.js'), '--cycles', '40', '--json', out], { timeoutMs: 200_000 });
  const done = await within(r.done, 220_000, 'the leak cycles');
  assert.equal(done.code, 0, `${done.stdout}\n${done.stderr.slice(-3000)}`);
  const report = JSON.parse(readFileSync(out, 'utf8')) as { results: Array<{ kind: string; cycles: number; samples: unknown[]; objectsLeft: string[]; fdGrowth: number; threadGrowth: number; error?: string }> };
  assert.equal(report.results.length, 19);
  for (const k of report.results) {
    assert.equal(k.error, undefined, k.kind);
    assert.equal(k.samples.length, 20, `${k.kind}: sampled through the run`);
    assert.deepEqual(k.objectsLeft, [], k.kind);
  }
});
