/**
^ * What docs/pipe.md, docs/popen.md and docs/fifo.md show is true: the five-line Python
 * and C readers of the default framing read our frames, and each page (the System V ones
 * too) has the same headings.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createPipe } from '../../src/mechanisms/pipe/pipe.js';
import { checkFdLeaks, compileC, repoRoot, run } from '../helpers.js';

checkFdLeaks();

const HEADINGS = ['What it is', 'Guarantees', 'Limits', 'System calls', 'API', 'Errors', 'Example'];
const page = (name: string): string => readFileSync(join(repoRoot, 'docs', `${name}.md`), 'utf8');

function codeBlock(markdown: string, language: string): string {
  const block = new RegExp('```' + language + '\\n([\\s\\S]*?)```').exec(markdown)?.[1];
  assert.ok(block, `a \`\`\`${language} block`);
  return block;
}

/** Our frames of `messages`, as the bytes a peer reads. */
async function framed(messages: string[]): Promise<Buffer> {
  const { reader, writer } = createPipe({ codec: 'utf8' });
  for (const m of messages) await writer.send(m);
  await writer.close();
  const raw = await import('../../src/os/native.js');
  const buf = Buffer.alloc(1 << 20);
  let n = 0;
  for (;;) {
    const got = raw.native.read(reader.fd, buf, n, buf.length - n);
    if (got <= 0) break;
    n += got;
  }
  await reader.close();
  return buf.subarray(0, n);
}

const MESSAGES = ['first', '', 'ünïcødé', 'x'.repeat(5000)];

describe('docs', () => {
  for (const name of ['pipe', 'popen', 'fifo', 'sysv-msg', 'sysv-sem', 'sysv-shm', 'process', 'pool']) {
    it(`docs/${name}.md has the common headings, in order`, () => {
      const headings = [...page(name).matchAll(/^## (.+)$/gm)].map((m) => m[1]);
      assert.deepEqual(headings, HEADINGS);
    });
  }

  it("the Python reader in docs/pipe.md reads ipckit's frames", async () => {
    const code = codeBlock(page('pipe'), 'python');
    assert.equal(code.trim().split('\n').length, 5);
    const r = await run('python3', ['-c', code], { input: await framed(MESSAGES) }).done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, MESSAGES.map((m) => `${m}\n`).join(''));
  });

  it("the C reader in docs/pipe.md reads ipckit's frames", async () => {
    const code = codeBlock(page('pipe'), 'c');
    assert.ok(code.trim().split('\n').length <= 7);
    const bin = compileC('docs-reader', code);
    const r = await run(bin, [], { input: await framed(MESSAGES) }).done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, MESSAGES.map((m) => `${m}\n`).join(''));
  });
});
