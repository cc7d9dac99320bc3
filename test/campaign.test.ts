/**
 * The reliability campaign's other two parts, short: the hostile-peer campaign
 * (scripts/hostile.ts) and the leak cycles (scripts/leak-cycles.ts). Each must run every
 * target, count what it tried, and end with status 0 (no exception that is not an
 * IpcError, no crash, no hang; no object, descriptor or thread left). The full runs and
 * their figures are in docs/reliability.md.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { repoRoot, run, scratchPath, within } from './helpers.js';

interface HostileReport {
  targets: Array<{ target: string; inputs: number; operations: number; notIpcError: number; crashes: number; hangs: number; servesAfter?: boolean }>;
}
async function hostile(only: string, out: string): Promise<{ code: number | null; stdout: string; stderr: string; report: HostileReport }> {
  const r = run(process.execPath, [join(repoRoot, 'dist/scripts/hostile.js'), '--seconds', '1', '--rounds', '1', '--inputs', '60', '--seed', '7', '--only', only, '--json', out], { timeoutMs: 200_000 });
  const done = await within(r.done, 220_000, 'the hostile campaign');
  // No report means the campaign itself failed: show why, not a missing file.
  assert.ok(existsSync(out), `the campaign wrote no report (status ${done.code}):\n${done.stdout}\n${done.stderr.slice(-3000)}`);
  return { ...done, report: JSON.parse(readFileSync(out, 'utf8')) as HostileReport };
}
function checkTargets(report: HostileReport, count: number): void {
  assert.equal(report.targets.length, count);
  for (const t of report.targets) {
    assert.ok(t.inputs > 0, `${t.target}: inputs were tried`);
    assert.ok(t.operations > 0, `${t.target}: ipckit answered`);
    assert.deepEqual([t.notIpcError, t.crashes, t.hangs], [0, 0, 0], t.target);
    if (t.servesAfter !== undefined) assert.equal(t.servesAfter, true, `${t.target}: an honest peer is served afterwards`);
  }
}

it('hostile peers: every target tried, no crash, no hang, every answer an IpcError', { timeout: 240_000 }, async () => {
  const r = await hostile('ring,workqueue,pool,unix,seqpacket,tcp,dgram,popen,queues', scratchPath('hostile.json'));
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr.slice(-3000)}`);
  checkTargets(r.report, 10);
  assert.match(r.stdout, /^\| target \| inputs tried/m);
});

// The mutex and the shared value (its lock) once crashed here: glibc's unlock followed
// robust-list links a scribbling peer had overwritten (now native/robust_mutex.h; the
// deterministic test is test/faults/mutex-overwritten.test.ts).
it('hostile peers: the mutex and the shared value (its lock) survive scribbles', { timeout: 240_000 }, async () => {
  const r = await hostile('mutex,value', scratchPath('hostile-mutex.json'));
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr.slice(-3000)}`);
  checkTargets(r.report, 2);
});

it('leak cycles: every kind opened, used and closed; nothing left behind', { timeout: 240_000 }, async () => {
  const out = scratchPath('leaks.json');
  const r = run(process.execPath, [join(repoRoot, 'dist/scripts/leak-cycles.js'), '--cycles', '40', '--json', out], { timeoutMs: 200_000 });
  const done = await within(r.done, 220_000, 'the leak cycles');
  assert.equal(done.code, 0, `${done.stdout}\n${done.stderr.slice(-3000)}`);
  const report = JSON.parse(readFileSync(out, 'utf8')) as { results: Array<{ kind: string; cycles: number; samples: unknown[]; objectsLeft: string[]; fdGrowth: number; threadGrowth: number; error?: string }> };
  assert.equal(report.results.length, 20); // 19 kinds and the control (no ipckit)
  assert.equal(report.results[0]!.kind, 'control');
  for (const k of report.results) {
    assert.equal(k.error, undefined, k.kind);
    assert.equal(k.samples.length, 20, `${k.kind}: sampled through the run`);
    assert.deepEqual(k.objectsLeft, [], k.kind);
  }
});
