/** Every error code is documented, and no code is used that is not in the registry. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { ERROR_CODES, errnoError, IpcError } from '../src/core/errors.js';
import { checkFdLeaks, repoRoot } from './helpers.js';

checkFdLeaks();

const registry = Object.keys(ERROR_CODES);

it('the registry is alphabetical', () => {
  assert.deepEqual(registry, [...registry].sort());
});

it('docs/errors.md documents every code, and only those', () => {
  const doc = readFileSync(join(repoRoot, 'docs', 'errors.md'), 'utf8');
  const headings = [...doc.matchAll(/^### (ERR_IPCKIT_[A-Z_]+)$/gm)].map((m) => m[1]);
  assert.deepEqual(headings, registry);
});

it('no source file uses a code outside the registry', () => {
  const used = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) for (const m of readFileSync(p, 'utf8').matchAll(/ERR_IPCKIT_[A-Z_]+/g)) used.add(m[0]);
    }
  };
  walk(join(repoRoot, 'src'));
  const unknown = [...used].filter((c) => !registry.includes(c));
  assert.deepEqual(unknown, [], `codes used but not registered: ${unknown.join(', ')}`);
});

it('errno maps to codes by meaning and keeps the system fields', () => {
  const e = errnoError(13, 'open', 'open FIFO /x');
  assert.ok(e instanceof IpcError);
  assert.equal(e.code, 'ERR_IPCKIT_PERMISSION');
  assert.equal(e.errno, 13);
  assert.equal(e.syscall, 'open');
  assert.equal(e.systemCode, 'EACCES');
  assert.equal(errnoError(17, 'mkfifo').code, 'ERR_IPCKIT_EXISTS');
  assert.equal(errnoError(32, 'write').code, 'ERR_IPCKIT_PEER_GONE');
  assert.equal(errnoError(90, 'mq_send').code, 'ERR_IPCKIT_FRAME_TOO_LARGE');
  assert.equal(errnoError(130, 'pthread_mutex_lock').code, 'ERR_IPCKIT_OWNER_DIED');
  assert.equal(errnoError(71, 'x').code, 'ERR_IPCKIT_SYSCALL');
});
