/**
 * A FIFO writer that dies inside a frame (docs/fifo.md). Alone, its half frame ends the
 * stream with ERR_IPCKIT_BAD_FRAME and is never delivered. While another writer has the
 * FIFO open, the kernel's byte stream keeps no writer boundaries: the other writer's bytes
 * continue the half frame, and the reader gets a message of the announced length made of
 * both (what the soak met, docs/reliability.md). Writers that may die use { atomic: true }.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createFifo, openFifo, unlinkFifo } from '../../src/mechanisms/fifo/fifo.js';
import { checkFdLeaks, rejectsWith, runPython, scratchPath, within } from '../helpers.js';

checkFdLeaks();

/** A writer (python3) that writes the header of a 100-byte frame and 50 bytes of it, then exits. */
const halfFrame = (path: string) =>
  runPython(`import os,sys,struct\nfd=os.open(sys.argv[1],os.O_WRONLY)\nos.write(fd,struct.pack('<I',100)+b'x'*50)\nos._exit(0)`, [path]);

it('a lone writer that dies inside a frame: ERR_IPCKIT_BAD_FRAME, the half frame never delivered', async () => {
  const path = createFifo(scratchPath('dead-writer'));
  try {
    const reading = openFifo(path, 'read');
    const dead = halfFrame(path);
    const r = await reading;
    try {
      assert.equal((await dead.done).code, 0);
      await within(rejectsWith(r.receive({ timeout: 10_000 }), 'ERR_IPCKIT_BAD_FRAME'), 15_000, 'the end of the stream');
    } finally {
      await r.close();
    }
  } finally {
    unlinkFifo(path);
  }
});

it('a writer that dies inside a frame while another has the FIFO open: the other continues the half frame', async () => {
  const path = createFifo(scratchPath('glued'));
  try {
    const reading = openFifo(path, 'read');
    const w = await openFifo(path, 'write', { timeout: 10_000 });
    const r = await reading;
    try {
      assert.equal((await halfFrame(path).done).code, 0);
      for (let i = 0; i < 10; i++) await w.send(Buffer.from('hello'));
      await w.flush();
      const m = Buffer.from(await r.receive({ timeout: 10_000 }));
      assert.equal(m.length, 100, 'a message of the length the dead writer announced');
      assert.ok(m.subarray(0, 50).equals(Buffer.alloc(50, 'x')), "the dead writer's 50 bytes");
      assert.ok(m.subarray(50, 59).equals(Buffer.from([5, 0, 0, 0, ...Buffer.from('hello')])), "then the other writer's first frame, header and all");
    } finally {
      await w.close();
      await r.close();
    }
  } finally {
    unlinkFifo(path);
  }
});
