/** examples/nats: a producer and two workers through a real nats-server, as a user would run them. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot, run } from '../helpers.js';
import { startNatsServer } from '../nats-server.js';

describe('examples', () => {
  it('nats: producer.js puts jobs on a JetStream work queue, two worker.js processes answer on a subject', async () => {
    const server = await startNatsServer();
    try {
      const r = await run(process.execPath, [join(repoRoot, 'dist', 'examples', 'nats', 'producer.js'), server.url, '500'], { timeoutMs: 60_000 }).done;
      assert.equal(r.code, 0, r.stderr);
      const sum = Array.from({ length: 500 }, (_, n) => n * n).reduce((a, b) => a + b, 0);
      assert.match(r.stdout, new RegExp(`^500 jobs done by [12] workers in [\\d.]+ s; sum of squares ${sum}\\n$`));
    } finally {
      await server.stop();
    }
  });
});
