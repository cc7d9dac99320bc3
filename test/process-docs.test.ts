/**
 * What docs/process.md shows runs, as plain .mjs files on this Node: the before/after of
 * fork + process.send (both sides), and the Example (a spawned worker, request/reply and a
 * shared value). Each snippet is taken from the page as it is.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { repoRoot, run } from './helpers.js';

const page = readFileSync(join(repoRoot, 'docs', 'process.md'), 'utf8');
const blocks = [...page.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);
// Inside the package, so that `import ... from 'ipckit'` resolves to it (self-reference).
const base = join(repoRoot, 'dist', `process-doc-${process.pid}`);
after(() => rmSync(base, { recursive: true, force: true }));

/** Writes the files of a block (split at lines `// name.mjs`) into a fresh folder. */
function files(dir: string, ...texts: string[]): void {
  mkdirSync(dir, { recursive: true });
  for (const text of texts) {
    const parts = text.split(/^(?=\/\/ [\w-]+\.mjs$)/m).filter((p) => p.trim() !== '');
    for (const p of parts) writeFileSync(join(dir, /^\/\/ ([\w-]+\.mjs)$/m.exec(p)![1]!), p);
  }
}

it('the before and after of fork + process.send both print the square', async () => {
  const [before, afterBlock] = blocks;
  for (const [tag, text] of [['before', before!], ['after', afterBlock!]] as const) {
    const dir = join(base, tag);
    files(dir, text);
    assert.deepEqual(readdirSync(dir).sort(), ['parent.mjs', 'square.mjs']);
    const r = await run(process.execPath, ['parent.mjs'], { cwd: dir, timeoutMs: 60_000 }).done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^49\n/, tag);
  }
});

it('the Example runs and prints what the page says', async () => {
  const dir = join(base, 'example');
  files(dir, blocks[2]!, blocks[3]!);
  const r = await run(process.execPath, ['parent.mjs'], { cwd: dir, timeoutMs: 60_000 }).done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '1 4 9 16 4\nRangeError not a number\n{ exitCode: 0, signal: null }\n');
  assert.deepEqual(readdirSync('/dev/shm').filter((n) => n.startsWith('squares-') || n.startsWith('ipckit-proc-')), []);
});
