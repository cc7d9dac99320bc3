/**
 * Many short-lived endpoints, opened, used and closed by code that never lets the event
 * loop turn (an async loop whose every await is already settled). Nothing of a closed
 * endpoint may stay reachable until the loop turns: a writer's scheduled flush (a
 * setImmediate) once held every closed writer and its batch, so 100,000 pipes grew the
 * heap by 108 MB and RSS by 278 MB (scripts/leak-cycles.ts). Measured in a child with
 * --expose-gc: the heap after a full GC, before and after 20,000 pipes.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { repoRoot, run } from '../helpers.js';

it('20,000 pipes opened and closed without turning the event loop: nothing of them is retained', async () => {
  const script = `
    import(process.argv[1]).then(async ({ createPipe }) => {
      const message = Buffer.from('hello');
      const cycle = async () => {
        const { reader, writer } = createPipe();
        await writer.send(message);
        // tryReceive: a receive() answered without waiting lets the loop turn every
        // millisecond (src/os/turn.ts), and this test needs a loop that never turns.
        const got = reader.tryReceive();
        if (got === undefined || Buffer.compare(Buffer.from(got), message) !== 0) throw new Error('wrong or missing message');
        await writer.close();
        await reader.close();
      };
      for (let i = 0; i < 500; i++) await cycle(); // warm: code, pools
      gc();
      const before = process.memoryUsage().heapUsed;
      let turns = 0;
      setImmediate(() => turns++);
      for (let i = 0; i < 20000; i++) await cycle();
      gc();
      const after = process.memoryUsage().heapUsed;
      console.log(JSON.stringify({ growthMB: (after - before) / 1048576, loopTurned: turns > 0 }));
    });
  `;
  const r = await run(process.execPath, ['--expose-gc', '-e', script, join(repoRoot, 'dist', 'src', 'index.js')], { timeoutMs: 60_000 }).done;
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { growthMB: number; loopTurned: boolean };
  assert.equal(out.loopTurned, false, 'the loop turned: the test no longer tests what it says');
  // 20,000 retained writers are about 20 MB; what a full GC cannot free must stay near zero.
  assert.ok(out.growthMB < 3, `the heap grew by ${out.growthMB.toFixed(1)} MB over 20,000 closed pipes`);
});
