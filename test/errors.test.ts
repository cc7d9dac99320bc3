/** Every error code is documented, and no code is used that is not in the registry. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { ERROR_CODES, errnoError, errnoOf, IpcError, isIpcError, toIpcError } from '../src/core/errors.js';
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

it('an IpcError made by another loaded copy of the package is an IpcError here', async () => {
  // A query string makes Node load the module a second time: a separate class, as with
  // two copies of ipckit in one dependency tree.
  const other = (await import(`${new URL('../src/core/errors.js', import.meta.url).href}?second-copy`)) as typeof import('../src/core/errors.js');
  assert.notEqual(other.IpcError, IpcError);
  const foreign = new other.IpcError('ERR_IPCKIT_TIMEOUT', 'receive timed out after 5 ms');
  assert.ok(isIpcError(foreign));
  assert.ok(isIpcError(foreign, 'ERR_IPCKIT_TIMEOUT'));
  assert.ok(!isIpcError(foreign, 'ERR_IPCKIT_CLOSED'));
  assert.ok((foreign as unknown) instanceof IpcError);
  assert.ok(other.isIpcError(new IpcError('ERR_IPCKIT_CLOSED', 'x is closed')));
  // Look-alikes are not IpcErrors.
  assert.ok(!isIpcError(Object.assign(new Error('x (ERR_IPCKIT_TIMEOUT)'), { code: 'ERR_IPCKIT_TIMEOUT' })));
  assert.ok(!isIpcError(null));
  assert.ok(!isIpcError('ERR_IPCKIT_TIMEOUT'));
});

it('the reason is kept apart from the code, and amend re-tells an error without string surgery', () => {
  const e = errnoError(32, 'write', 'send');
  assert.equal(e.reason, 'send: write failed with EPIPE');
  assert.equal(e.message, 'send: write failed with EPIPE (ERR_IPCKIT_PEER_GONE)');
  const more = e.amend({ note: '3 accepted messages were not delivered', details: { lostMessages: 3 } });
  assert.equal(more.message, 'send: write failed with EPIPE; 3 accepted messages were not delivered (ERR_IPCKIT_PEER_GONE)');
  assert.equal(more.code, 'ERR_IPCKIT_PEER_GONE');
  assert.equal(more.errno, 32);
  assert.equal(more.syscall, 'write');
  assert.equal(more.systemCode, 'EPIPE');
  assert.deepEqual(more.details, { lostMessages: 3 });
  assert.equal(more.cause, e);
  const recoded = new IpcError('ERR_IPCKIT_BAD_FRAME', 'stream ended inside a frame').amend({ code: 'ERR_IPCKIT_PEER_GONE', note: 'the child was killed by SIGKILL' });
  assert.equal(recoded.message, 'stream ended inside a frame; the child was killed by SIGKILL (ERR_IPCKIT_PEER_GONE)');
});

it('toIpcError turns a native errno error into an IpcError with its errno and syscall, and passes IpcErrors through', () => {
  const nativeError = Object.assign(new Error('shm_open: No such file or directory'), { errno: 2, syscall: 'shm_open' });
  const e = toIpcError(nativeError, 'open ring /x', { path: '/x' });
  assert.equal(e.code, 'ERR_IPCKIT_NOT_FOUND');
  assert.equal(e.message, 'open ring /x: shm_open failed with ENOENT (ERR_IPCKIT_NOT_FOUND)');
  assert.equal(e.path, '/x');
  assert.equal(errnoOf(nativeError), 2);
  assert.equal(errnoOf(new Error('x')), undefined);
  assert.equal(toIpcError(e, 'again'), e);
  const bug = toIpcError(new TypeError('boom'), 'close');
  assert.equal(bug.code, 'ERR_IPCKIT_SYSCALL');
  assert.ok(bug.cause instanceof TypeError);
});
