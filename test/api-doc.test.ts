/**
 * docs/api.md names every export of the package and nothing else: the values it lists are
 * what `import * from 'ipckit'` gives at run time, and its types are the type exports of
 * src/index.ts. An export added without a line in the page, or a page line for something
 * removed, fails here.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import * as api from '../src/index.js';
import { repoRoot } from './helpers.js';

function listed(kind: 'values' | 'types'): string[] {
  const page = readFileSync(join(repoRoot, 'docs', 'api.md'), 'utf8');
  const names: string[] = [];
  for (const m of page.matchAll(new RegExp(`^- ${kind}: (.+)$`, 'gm'))) for (const n of m[1]!.matchAll(/`([\w$]+)`/g)) names.push(n[1]!);
  return names;
}

/** The names src/index.ts exports, split into values and types. */
function exported(): { values: string[]; types: string[] } {
  const source = readFileSync(join(repoRoot, 'src', 'index.ts'), 'utf8');
  const values: string[] = [];
  const types: string[] = [];
  for (const m of source.matchAll(/export\s+(type\s+)?\{([^}]*)\}\s*from/g)) {
    for (const raw of m[2]!.split(',')) {
      const entry = raw.trim();
      if (!entry) continue;
      const name = entry.replace(/^type\s+/, '').split(/\s+as\s+/).pop()!.trim();
      (m[1] || entry.startsWith('type ') ? types : values).push(name);
    }
  }
  return { values, types };
}

const sorted = (a: string[]): string[] => [...new Set(a)].sort();

it('docs/api.md lists exactly the values the package exports', () => {
  assert.deepEqual(sorted(listed('values')), sorted(Object.keys(api)));
});

it('docs/api.md lists exactly the types src/index.ts exports', () => {
  assert.deepEqual(sorted(listed('types')), sorted(exported().types));
  // and the source's value exports are what the module really gives
  assert.deepEqual(sorted(exported().values), sorted(Object.keys(api)));
});

it('each name is listed once', () => {
  const all = [...listed('values'), ...listed('types')];
  assert.deepEqual(all.filter((n, i) => all.indexOf(n) !== i), []);
});
