/**
 * SlotSet (src/core/slot-set.ts) against a model, a JavaScript Set: random sequences of
 * add, delete and take over a few items, in any order and repeated, must leave both with
 * the same members and agree on every answer. IPCKIT_PROPERTY_RUNS and IPCKIT_PROPERTY_SEED
 * as in the other property tests.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { SlotSet, slotFor } from '../../src/core/slot-set.js';

const runs = Number(process.env.IPCKIT_PROPERTY_RUNS ?? 300);
const seed = process.env.IPCKIT_PROPERTY_SEED !== undefined ? Number(process.env.IPCKIT_PROPERTY_SEED) : undefined;
const params = { numRuns: runs, ...(seed !== undefined ? { seed } : {}) };

type Op = { op: 'add' | 'delete'; item: number } | { op: 'take' };

it('SlotSet agrees with a Set over any sequence of add, delete and take', () => {
  const op = fc.oneof(
    fc.record({ op: fc.constantFrom('add' as const, 'delete' as const), item: fc.nat({ max: 7 }) }),
    fc.constant({ op: 'take' as const }),
  );
  fc.assert(
    fc.property(fc.array(op as fc.Arbitrary<Op>, { maxLength: 60 }), (ops) => {
      const slots = Array.from({ length: 8 }, (_, i) => slotFor(i));
      const set = new SlotSet<number>();
      const model = new Set<number>();
      for (const o of ops) {
        if (o.op === 'add') {
          set.add(slots[o.item]!);
          model.add(o.item);
        } else if (o.op === 'delete') {
          assert.equal(set.delete(slots[o.item]!), model.delete(o.item));
        } else {
          assert.deepEqual(set.take().sort(), [...model].sort());
          model.clear();
        }
        assert.equal(set.size, model.size);
        for (let i = 0; i < 8; i++) assert.equal(set.has(slots[i]!), model.has(i), `item ${i} after ${JSON.stringify(o)}`);
      }
    }),
    params,
  );
});

it('deleting an item twice, or from a set it is not in, changes nothing', () => {
  const a = new SlotSet<string>();
  const b = new SlotSet<string>();
  const x = slotFor('x');
  const y = slotFor('y');
  a.add(x);
  a.add(y);
  assert.equal(b.has(x), false);
  assert.equal(b.delete(x), false);
  assert.equal(a.size, 2);
  assert.equal(a.delete(x), true);
  assert.equal(a.delete(x), false);
  assert.deepEqual(a.take(), ['y']);
  assert.equal(a.size, 0);
  assert.equal(y.index, -1);
});
