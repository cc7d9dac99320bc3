/**
 * Every runnable snippet of the docs and the README (each ```ts or ```js block; API
 * listings are fenced ```ts signatures and are not programs) type-checks under `strict`
 * against the package's own types, and parses on the Node.js that runs the tests (CI:
 * the oldest we support, Node 20), so a snippet cannot use syntax such as `using` that
 * Node 20 does not have. A block with several files is split at lines `// name.ts`.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import ts from 'typescript';
import { repoRoot, run } from './helpers.js';

interface Snippet {
  /** Where it is: docs/shm.md, block 2, file b.ts. */
  where: string;
  file: string;
  code: string;
  /** A ```js block: checked as JavaScript (its calls and names against our types), not as strict TypeScript. */
  js: boolean;
}

function snippets(): Snippet[] {
  const pages = [...readdirSync(join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`), 'README.md'];
  const out: Snippet[] = [];
  for (const page of pages) {
    const markdown = readFileSync(join(repoRoot, page), 'utf8');
    let block = 0;
    for (const m of markdown.matchAll(/^```(ts|js)\n([\s\S]*?)^```/gm)) {
      block++;
      const parts = m[2]!.split(/^(?=\/\/ [\w./-]+\.(?:ts|js|mjs)\b)/m).filter((p) => p.trim() !== '');
      parts.forEach((code, part) => {
        const named = /^\/\/ ([\w./-]+)\.(?:ts|js|mjs)\b/.exec(code)?.[1];
        const js = m[1] === 'js';
        const file = `${page.replace(/[/.]/g, '_')}_${block}_${part}.${js ? 'mjs' : 'ts'}`;
        out.push({ where: `${page}, block ${block}${named ? `, ${named}` : ''}`, file, code, js });
      });
    }
  }
  return out;
}

// Inside the package, so that `import ... from 'ipckit'` resolves to it (self-reference).
const dir = join(repoRoot, 'dist', 'doc-snippets');
after(() => rmSync(dir, { recursive: true, force: true }));

describe('docs snippets', () => {
  const all = snippets();

  it('there are snippets to check (one or more per mechanism page)', () => {
    assert.ok(all.length >= 25, `found ${all.length}`);
  });

  /** The diagnostics of compiling these snippets with `options`. */
  function check(snippets: Snippet[], options: ts.CompilerOptions): string[] {
    // `export {}` makes each file a module of its own, as each would be on disk.
    for (const s of snippets) writeFileSync(join(dir, s.file), `${s.code}\nexport {};\n`);
    const program = ts.createProgram(snippets.map((s) => join(dir, s.file)), {
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      target: ts.ScriptTarget.ES2022,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
      ...options,
    });
    const where = new Map(snippets.map((s) => [join(dir, s.file), s.where]));
    return ts.getPreEmitDiagnostics(program).map((d) => {
      const at = d.file ? `${where.get(d.file.fileName) ?? d.file.fileName}, line ${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ` : '';
      return at + ts.flattenDiagnosticMessageText(d.messageText, '\n');
    });
  }

  it('every TypeScript snippet type-checks under strict against the package types', () => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    assert.deepEqual(check(all.filter((s) => !s.js), { strict: true }), []);
  });

  it('every JavaScript snippet checks against the package types (checkJs: names, calls, arity)', () => {
    mkdirSync(dir, { recursive: true });
    assert.deepEqual(check(all.filter((s) => s.js), { allowJs: true, checkJs: true }), []);
  });

  it('no snippet uses `using` or `await using` (a SyntaxError on Node 20)', () => {
    const offenders = all.filter((s) => /^\s*(await\s+)?using\s+[\w$]+\s*=/m.test(s.code)).map((s) => s.where);
    assert.deepEqual(offenders, []);
  });

  it(`every snippet, as JavaScript, parses on this Node.js (${process.version})`, async () => {
    mkdirSync(dir, { recursive: true });
    const failures: string[] = [];
    for (const s of all) {
      // ESNext keeps the syntax as written: nothing is lowered for an older runtime.
      const js = ts.transpileModule(s.code, { compilerOptions: { target: ts.ScriptTarget.ESNext, module: ts.ModuleKind.ESNext } }).outputText;
      const path = join(dir, s.file.replace(/\.(ts|mjs)$/, '.check.mjs'));
      writeFileSync(path, js);
      const r = await run(process.execPath, ['--check', path]).done;
      if (r.code !== 0) failures.push(`${s.where}: ${r.stderr.split('\n').find((l) => /Error/.test(l)) ?? r.stderr}`);
    }
    assert.deepEqual(failures, []);
  });
});
