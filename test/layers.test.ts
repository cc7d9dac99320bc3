/**
 * docs/design.md section 1: a layer of src/ imports only from the layers above it (core,
 * os, memory, mechanisms, ops, cli), and only cli/bench.ts loads the benchmark. Every
 * relative import of every file under src/ is checked, type-only imports included (they
 * show the same dependency to a reader).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { it } from 'node:test';
import { repoRoot } from './helpers.js';

const SRC = join(repoRoot, 'src');
const ORDER = ['core', 'os', 'memory', 'mechanisms', 'ops', 'cli'];

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The layer of a path under the repository: its first folder below src/ (index.ts: the public surface, last). */
function layerOf(path: string): { rank: number; name: string } | undefined {
  const rel = relative(SRC, path);
  if (rel.startsWith('..')) return undefined;
  const top = rel.split(sep)[0]!;
  if (top === 'index.ts') return { rank: ORDER.length, name: 'index.ts' };
  return { rank: ORDER.indexOf(top), name: top };
}

function importsOf(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of source.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"](\.[^'"]+)['"]/g)) found.push(m[1]!);
  for (const m of source.matchAll(/(?:^|\n)\s*import\s*['"](\.[^'"]+)['"]/g)) found.push(m[1]!); // side-effect imports
  for (const m of source.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) found.push(m[1]!);
  return found;
}

it('every file under src/ imports only from its own layer or the layers above it', () => {
  const all = files(SRC);
  assert.ok(all.length > 50, `found ${all.length} files under src/`);
  const wrong: string[] = [];
  let checked = 0;
  for (const file of all) {
    const from = layerOf(file)!;
    assert.ok(from.rank >= 0, `${relative(repoRoot, file)} is in no layer of design.md`);
    for (const spec of importsOf(file)) {
      checked++;
      const target = resolve(dirname(file), spec);
      const to = layerOf(target);
      if (to === undefined) {
        // Outside src/: only the bench command group may reach the benchmark (loaded for `ipckit bench` alone).
        if (relative(SRC, file) !== join('cli', 'bench.ts') || !relative(repoRoot, target).startsWith(`bench${sep}`)) {
          wrong.push(`${relative(repoRoot, file)} imports ${spec} (outside src/)`);
        }
        continue;
      }
      if (to.rank > from.rank) wrong.push(`${relative(repoRoot, file)} (${from.name}) imports ${spec} (${to.name}, a layer below)`);
    }
  }
  assert.ok(checked > 300, `checked ${checked} imports`);
  assert.deepEqual(wrong, [], `imports against the layering of docs/design.md:\n  ${wrong.join('\n  ')}`);
});
