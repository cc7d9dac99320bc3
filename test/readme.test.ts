/**
 * README's ten-line, two-process example is true: its code is taken from README.md as it
 * is, type-checked against the package's types, and run as two processes.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import ts from 'typescript';
import { checkFdLeaks, repoRoot, run } from './helpers.js';

checkFdLeaks();

/** The parent and child files of the README example (one ```ts block, split at `// child.ts`). */
function readmeExample(): { parent: string; child: string } {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('// parent.ts'));
  assert.ok(block, 'README has a ```ts block with // parent.ts and // child.ts');
  const at = block.indexOf('// child.ts');
  assert.ok(at > 0, 'the block has a // child.ts part');
  return { parent: block.slice(0, at), child: block.slice(at) };
}

// Inside the package, so that `import ... from 'ipckit'` resolves to it (self-reference).
const dir = join(repoRoot, 'dist', 'readme-example');

it("README's example type-checks and runs: the child prints the parent's message, the parent its exit status", async () => {
  const { parent, child } = readmeExample();
  const codeLines = (parent + child).split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('//'));
  assert.ok(codeLines.length <= 10, `the example has ${codeLines.length} lines of code`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(join(dir, 'parent.ts'), parent);
    writeFileSync(join(dir, 'child.ts'), child);
    const program = ts.createProgram([join(dir, 'parent.ts'), join(dir, 'child.ts')], {
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
    });
    const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    assert.deepEqual(problems, []);
    // As JavaScript: the example has no type annotations, so the same text runs as is.
    writeFileSync(join(dir, 'parent.js'), parent);
    writeFileSync(join(dir, 'child.js'), child);
    const r = await run(process.execPath, ['parent.js'], { cwd: dir }).done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '{ job: 42 }\n{ exitCode: 0, signal: null }\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
