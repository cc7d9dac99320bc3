/**
 * The command line as a user meets it: help for every group and command, one flag for one
 * idea, errors in flags, `rm` of a missing name, and one way every `recv` ends.
 */
import assert from 'node:assert/strict';
import { chownSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { createFifo, createMessageQueue, createRing, unlinkFifo, unlinkMessageQueue, unlinkRing } from '../../src/index.js';
import { isRoot, runCli, scratchPath, uniqueName } from '../helpers.js';

const GROUPS = ['popen', 'fifo', 'mqueue', 'semaphore', 'mutex', 'pool', 'lock', 'signal', 'shm', 'ring', 'socket', 'workqueue', 'sysv', 'doctor', 'bench'];

/** The words its help lists under `commands:` (empty for a single-command group). */
async function wordsOf(words: string[]): Promise<string[]> {
  const r = await runCli([...words, '--help']).done;
  assert.equal(r.code, 0, r.stderr);
  if (!r.stdout.includes('commands:')) return [];
  const block = r.stdout.split('commands:\n')[1]!.split('\n\n')[0]!;
  return block
    .split('\n')
    .map((l) => /^ {2}(\w[\w-]*)/.exec(l)?.[1])
    .filter((v): v is string => v !== undefined);
}

/** Every command of a group, as the words after `ipckit` (`['sysv', 'msg', 'send']`), read from the helps; inner groups (`sysv msg`) too. */
async function commandsOf(group: string): Promise<string[][]> {
  const out: string[][] = [];
  const walk = async (words: string[]): Promise<void> => {
    for (const word of await wordsOf(words)) {
      const path = [...words, word];
      out.push(path);
      if ((await runCli([...path, '--help']).done).stdout.startsWith(`usage: ipckit ${path.join(' ')} <command>`)) await walk(path);
    }
  };
  await walk([group]);
  return out;
}

describe('help', () => {
  it('ipckit <group> --help, ipckit help <group> and ipckit <group> <verb> --help print only that part, with an example', async () => {
    for (const group of GROUPS) {
      const a = await runCli([group, '--help']).done;
      const b = await runCli(['help', group]).done;
      assert.equal(a.code, 0, `${group}: ${a.stderr}`);
      assert.equal(a.stdout, b.stdout, `${group}: --help and help agree`);
      assert.match(a.stdout, new RegExp(`usage: ipckit ${group}`));
      assert.match(a.stdout, /example/);
      for (const other of GROUPS.filter((g) => g !== group && !['popen', 'bench'].includes(g))) {
        assert.doesNotMatch(a.stdout, new RegExp(`ipckit ${other} `), `${group}'s help shows only ${group}`);
      }
      for (const path of await commandsOf(group)) {
        const c = await runCli([...path, '--help']).done;
        const h = await runCli([...path, '-h']).done;
        const d = await runCli(['help', ...path]).done;
        assert.equal(c.code, 0, `${path.join(' ')}: ${c.stderr}`);
        assert.equal(c.stdout, h.stdout);
        assert.equal(c.stdout, d.stdout);
        assert.match(c.stdout, new RegExp(`^usage: ipckit ${path.join(' ')}`));
        assert.match(c.stdout, /\nexamples?:\n {2}.*ipckit /, `${path.join(' ')} has an example`);
        assert.doesNotMatch(c.stdout, /parseArgs|'--/, 'no parseArgs text');
      }
    }
  });

  it('an unknown command or flag is a usage error (exit 2) that points at the right help', async () => {
    const r = await runCli(['ring', 'frobnicate']).done;
    assert.equal(r.code, 2);
    assert.match(r.stderr, /use create, send, recv, info or rm/);
    assert.match(r.stderr, /ipckit ring --help/);
    const f = await runCli(['mqueue', 'send', '/x', '--prio', '3']).done;
    assert.equal(f.code, 2);
    assert.match(f.stderr, /unknown flag --prio/);
    assert.match(f.stderr, /ipckit mqueue send --help/);
    const v = await runCli(['mqueue', 'send', '/x', '--timeout']).done;
    assert.equal(v.code, 2);
    assert.match(v.stderr, /--timeout needs a value \(--timeout MS\)/);
  });
});

describe('one flag for one idea', () => {
  it('owner trust is --any-owner / --owner, sizes are --max-message with K/M/G, everywhere', async () => {
    const seen = new Map<string, string[]>();
    for (const group of GROUPS) {
      for (const path of await commandsOf(group)) {
        const help = (await runCli([...path, '--help']).done).stdout;
        for (const m of help.matchAll(/^ {2}(?:-\w, )?(--[\w-]+)/gm)) seen.set(m[1]!, [...(seen.get(m[1]!) ?? []), path.join(' ')]);
      }
    }
    for (const banned of ['--trust-any-owner', '--message-size', '--max-message-size']) assert.equal(seen.get(banned), undefined, `${banned} is used by ${seen.get(banned)}`);
    assert.ok(seen.get('--any-owner')!.length >= 5);
    // A size with a suffix works where the message queue took only plain integers.
    const name = uniqueName('size');
    const r = await runCli(['mqueue', 'create', name, '--max-message', '1K', '--max-messages', '4']).done;
    try {
      assert.equal(r.code, 0, r.stderr);
      const info = JSON.parse((await runCli(['mqueue', 'info', name, '--json']).done).stdout);
      assert.equal(info.maxMessageBytes, 1024);
      assert.equal(info.mode, 0o600);
    } finally {
      unlinkMessageQueue(name);
    }
  });

  it('errors speak flags, not API options', async () => {
    // A FIFO wider than the default is refused, and the way out is said as a flag.
    const path = scratchPath('wide.fifo');
    createFifo(path, { mode: 0o644 });
    try {
      const r = await runCli(['fifo', 'recv', path, '--timeout', '100']).done;
      assert.equal(r.code, 1);
      assert.match(r.stderr, /has mode 0644, wider than the allowed 0600; refusing it; pass --mode 644 to accept that mode \(ERR_IPCKIT_PERMISSION\)/);
      assert.doesNotMatch(r.stderr, /\{ ?mode|anyOwner|anyOwner/);
      if (isRoot) {
        // Another user's object: the owner and mode found, and the flags that accept it.
        chownSync(path, 65534, 65534);
        const o = await runCli(['fifo', 'recv', path, '--mode', '644', '--timeout', '100']).done;
        assert.equal(o.code, 1);
        assert.match(o.stderr, /belongs to uid 65534 \(mode 0644\), not uid 0; refusing it; pass --any-owner or --owner UID if that is expected \(ERR_IPCKIT_PERMISSION\)/);
      }
    } finally {
      unlinkFifo(path);
    }
  });
});

describe('rm', () => {
  it('a name that does not exist is exit 1 with ERR_IPCKIT_NOT_FOUND, and --force makes it quiet', async () => {
    for (const [group, name] of [
      ['mqueue', uniqueName('none')],
      ['semaphore', uniqueName('none')],
      ['ring', uniqueName('none')],
      ['mutex', uniqueName('none')],
      ['pool', uniqueName('none')],
      ['workqueue', uniqueName('none')],
      ['shm', uniqueName('none')],
      ['fifo', scratchPath('none.fifo')],
    ] as const) {
      const r = await runCli([group, 'rm', name]).done;
      assert.equal(r.code, 1, `${group} rm`);
      assert.match(r.stderr, /ERR_IPCKIT_NOT_FOUND/);
      assert.match(r.stderr, new RegExp(`no .* named ${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*--force`));
      const f = await runCli([group, 'rm', name, '--force']).done;
      assert.equal(f.code, 0, `${group} rm --force: ${f.stderr}`);
      assert.equal(f.stderr, '');
    }
  });
});

describe('every recv ends the same way', () => {
  const rings: string[] = [];
  after(() => rings.forEach((n) => unlinkRing(n)));

  it('--count waits for the count, and exits 124 with what it got when --timeout passes first', async () => {
    const n = uniqueName('count');
    rings.push(n);
    createRing(n, { capacityBytes: 4096 }).close();
    assert.equal((await runCli(['ring', 'send', n, 'a', 'b']).done).code, 0);
    const r = await runCli(['ring', 'recv', n, '--count', '5', '--timeout', '500']).done;
    assert.equal(r.stdout, 'a\nb\n');
    assert.equal(r.code, 124);
    assert.match(r.stderr, /timed out after 500 ms \(--timeout\) waiting on ring .*, 2 of 5 messages received \(ERR_IPCKIT_TIMEOUT\)/);
  });

  it('a ring recv --count keeps waiting after earlier producers closed: a message sent later arrives', async () => {
    const n = uniqueName('late');
    rings.push(n);
    createRing(n, { capacityBytes: 4096 }).close();
    assert.equal((await runCli(['ring', 'send', n, 'early']).done).code, 0);
    assert.equal((await runCli(['ring', 'recv', n, '--count', '1']).done).stdout, 'early\n');
    const waiting = runCli(['ring', 'recv', n, '--count', '1', '--timeout', '5000']);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await runCli(['ring', 'send', n, 'late']).done).code, 0);
    const r = await waiting.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'late\n');
  });

  it('--drain prints what is there and exits 0; an empty queue drains to nothing', async () => {
    const name = uniqueName('drain');
    const q = createMessageQueue(name, { maxMessages: 4, maxMessageBytes: 64 });
    try {
      await q.send(new TextEncoder().encode('one'));
      await q.send(new TextEncoder().encode('two'));
      const r = await runCli(['mqueue', 'recv', name, '--drain']).done;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'one\ntwo\n');
      const empty = await runCli(['mqueue', 'recv', name, '--drain']).done;
      assert.equal(empty.code, 0);
      assert.equal(empty.stdout, '');
      // Without --count a queue never ends: the timeout is reported as what it was.
      await q.send(new TextEncoder().encode('three'));
      const timed = await runCli(['mqueue', 'recv', name, '--timeout', '300']).done;
      assert.equal(timed.stdout, 'three\n');
      assert.equal(timed.code, 124);
      assert.match(timed.stderr, /timed out after 300 ms \(--timeout\) waiting on queue .*, 1 message received/);
    } finally {
      await q.close();
      unlinkMessageQueue(name);
    }
  });

  it('a command that waits for a peer says so once after a second, and not with --quiet', async () => {
    const path = scratchPath('lonely.fifo');
    createFifo(path);
    try {
      const r = await runCli(['fifo', 'send', path, 'x', '--timeout', '1600']).done;
      assert.equal(r.code, 124);
      assert.equal(r.stderr.match(/ipckit: waiting for a reader on/g)?.length, 1, r.stderr);
      const q = await runCli(['fifo', 'send', path, 'x', '--timeout', '1600', '--quiet']).done;
      assert.equal(q.code, 124);
      assert.doesNotMatch(q.stderr, /ipckit: waiting for/);
    } finally {
      unlinkFifo(path);
    }
  });
});

