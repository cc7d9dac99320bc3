/**
 * A set for this thread's long-lived lists that items join and leave all the time (writers
 * with a batch waiting for the end of the turn, descriptors not yet registered for
 * collection). Each item brings its own `Slot`, made once, which remembers where the item
 * is; adding and removing then only write array elements.
 *
 * Why not a `Set`: a Set that lives long is in V8's old space, and V8 makes it a new hash
 * table, in the old space too, whenever it grows or shrinks. An add and a delete on a
 * small one left about 120 bytes of old-space garbage that only a full collection frees.
 * Measured on the list of writers with a batch waiting (one add and one delete per message
 * batch): all of a datagram socket pair's 120 bytes of old space per cycle, 12 MB over
 * 100,000 pairs between full collections. The list of descriptors not yet registered is a
 * SlotSet for the same reason, with no figure of its own (pipes: 0.2-12 bytes a cycle
 * before, 0.2-0.7 after).
 *
 * An item's Slot belongs to one set at a time. `take` does not keep the order of adding
 * (a delete moves the last item into the gap).
 */

/** An item's place in a SlotSet: made once per item and reused each time the item joins. */
export interface Slot<T> {
  readonly value: T;
  /** Where the item is in its set's array; -1 while it is in none. */
  index: number;
}

export function slotFor<T>(value: T): Slot<T> {
  return { value, index: -1 };
}

export class SlotSet<T> {
  readonly #slots: Array<Slot<T>> = [];

  get size(): number {
    return this.#slots.length;
  }

  has(slot: Slot<T>): boolean {
    return slot.index >= 0 && this.#slots[slot.index] === slot;
  }

  add(slot: Slot<T>): void {
    if (this.has(slot)) return;
    slot.index = this.#slots.length;
    this.#slots.push(slot);
  }

  /** True if the item was in the set. The last item takes its place (order is not kept). */
  delete(slot: Slot<T>): boolean {
    if (!this.has(slot)) return false;
    const last = this.#slots.pop()!;
    if (last !== slot) {
      this.#slots[slot.index] = last;
      last.index = slot.index;
    }
    slot.index = -1;
    return true;
  }

  /** Empties the set and returns what was in it. */
  take(): T[] {
    const values = this.#slots.map((s) => {
      s.index = -1;
      return s.value;
    });
    this.#slots.length = 0;
    return values;
  }
}
