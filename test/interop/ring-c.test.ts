/**
 * A C peer that knows nothing of ipckit but docs/ring.md: compiled here, it attaches to a
 * ring as the receiver and reads what a Node producer sent (sleeping on the futex when it
 * has caught up), and, the other way round, produces for a Node receiver.
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { createRing, unlinkRing } from '../../src/mechanisms/ring/ring.js';
import { checkMessage, makeMessage, sizeFor } from '../fixtures/checked-message.js';
import { checkFdLeaks, compileC, run, scratchDir, uniqueName, within } from '../helpers.js';

const rings: string[] = [];
after(() => {
  for (const n of rings) unlinkRing(n);
});
checkFdLeaks();
scratchDir(); // at the top level: the compiled peer lives as long as this file's tests

/** The C peer, written from docs/ring.md alone. */
const C_PEER = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum {
  /* the common header (docs/design.md section 6) */
  W_MAGIC = 0, W_VERSION = 1, W_HEADER_BYTES = 2, W_ATTACH_LOCK = 8 /* u64 */, W_TABLE_OFFSET = 10, W_TABLE_ROWS = 11,
  /* the ring (docs/ring.md) */
  W_TAIL = 16, W_HEAD = 32,
  W_DATA_SIGNAL = 48, W_CONSUMER_SLEEPING = 49, W_SPACE_SIGNAL = 64, W_PRODUCER_SLEEPING = 65,
  W_CAPACITY = 80, W_FLAGS = 81, W_MAX_MESSAGE = 82, W_DATA_OFFSET = 83, W_PRODUCERS_EVER = 84,
  /* participant rows: row 0 the consumer, rows 1.. the producers */
  ROW_WORDS = 8, P_PID = 0, P_STATE = 1, P_START_LO = 2, P_START_HI = 3, P_EPOCH = 4, P_TID = 5,
  REC_MESSAGE = 1, REC_PADDING = 2, ATTACHED = 1, CLOSED = 2,
};

static uint32_t *w;   /* the segment as 32-bit words */
static uint8_t *data; /* the data region */
static uint32_t cap, mask, max_message, rows, table;
static uint64_t me;   /* our attach-lock value: thread id | start time (mod 2^32) << 32 */

static uint32_t ld(int i) { return __atomic_load_n(&w[i], __ATOMIC_SEQ_CST); }
static void st(int i, uint32_t v) { __atomic_store_n(&w[i], v, __ATOMIC_SEQ_CST); }
static int cas(int i, uint32_t expect, uint32_t v) { return __atomic_compare_exchange_n(&w[i], &expect, v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); }
static void fail(const char *what) { fprintf(stderr, "c peer: %s\n", what); exit(3); }

static void futex_wait(int i, uint32_t seen) {
  struct timespec ts = {0, 50 * 1000000}; /* bounded: re-check every 50 ms */
  syscall(SYS_futex, &w[i], FUTEX_WAIT, seen, &ts, NULL, 0);
}
static void futex_wake(int i) { syscall(SYS_futex, &w[i], FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0); }
/* The side that made progress wakes the other one only if it raised its sleeper flag. */
static void wake_if_sleeping(int flag, int signal) {
  if (ld(flag) && cas(flag, 1, 0)) {
    __atomic_fetch_add(&w[signal], 1, __ATOMIC_SEQ_CST);
    futex_wake(signal);
  }
}
static uint64_t start_time(void) { /* field 22 of /proc/self/stat: clock ticks since boot */
  char buf[1024];
  FILE *f = fopen("/proc/self/stat", "r");
  if (!f || !fgets(buf, sizeof buf, f)) fail("/proc/self/stat");
  fclose(f);
  char *p = strrchr(buf, ')') + 2;
  for (int field = 3; field < 22; field++) p = strchr(p, ' ') + 1;
  return strtoull(p, NULL, 10);
}
static uint64_t *lock_word(void) { return (uint64_t *)&w[W_ATTACH_LOCK]; }
static void lock_attach(void) {
  for (;;) {
    uint64_t expect = 0;
    if (__atomic_compare_exchange_n(lock_word(), &expect, me, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return;
    usleep(100);
  }
}
static void unlock_attach(void) {
  uint64_t expect = me;
  if (__atomic_compare_exchange_n(lock_word(), &expect, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) futex_wake(W_ATTACH_LOCK);
}
static int row_word(uint32_t row, int field) { return (int)(table / 4 + row * ROW_WORDS + field); }
/* Takes a participant row: our pid and thread (the main one: 0), our start time, a new epoch. */
static void claim_row(uint32_t row) {
  uint64_t start = start_time();
  __atomic_fetch_add(&w[row_word(row, P_EPOCH)], 1, __ATOMIC_SEQ_CST);
  st(row_word(row, P_PID), (uint32_t)getpid());
  st(row_word(row, P_TID), 0);
  st(row_word(row, P_START_LO), (uint32_t)start);
  st(row_word(row, P_START_HI), (uint32_t)(start >> 32));
  st(row_word(row, P_STATE), ATTACHED);
}
static int row_live(uint32_t row) {
  uint32_t pid = ld(row_word(row, P_PID));
  return ld(row_word(row, P_STATE)) == ATTACHED && pid != 0 && kill((pid_t)pid, 0) == 0;
}

static void map(const char *name) {
  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0) fail("shm_open");
  struct stat sb;
  fstat(fd, &sb);
  if (sb.st_size < 4096) fail("segment too small");
  w = mmap(NULL, sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (w == MAP_FAILED) fail("mmap");
  if (ld(W_MAGIC) != 0x524b5049 || ld(W_VERSION) != 2 || ld(W_HEADER_BYTES) != 64) fail("not a version-2 ring");
  cap = ld(W_CAPACITY);
  mask = cap - 1;
  max_message = ld(W_MAX_MESSAGE);
  uint32_t data_offset = ld(W_DATA_OFFSET);
  table = ld(W_TABLE_OFFSET);
  rows = ld(W_TABLE_ROWS);
  if (cap < 4096 || (cap & mask) || data_offset != 4096 || data_offset + (uint64_t)cap > (uint64_t)sb.st_size) fail("bad geometry");
  if (table != 512 || rows < 2 || rows > 65) fail("bad participant table");
  data = (uint8_t *)w + data_offset;
  me = (uint64_t)(uint32_t)syscall(SYS_gettid) | ((start_time() & 0xffffffffu) << 32);
}

static uint32_t fnv(uint32_t h, const uint8_t *p, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x01000193u;
  return h;
}

/* The producers are done: some attached once, none is attached now. */
static int producers_done(void) {
  if (ld(W_PRODUCERS_EVER) == 0) return 0;
  for (uint32_t r = 1; r < rows; r++) if (ld(row_word(r, P_STATE)) == ATTACHED) return 0;
  return 1;
}

static int consume(void) {
  lock_attach();
  if (row_live(0)) fail("the ring has a live receiver");
  claim_row(0);
  st(W_CONSUMER_SLEEPING, 0);
  uint32_t pos = ld(W_HEAD);
  unlock_attach();
  uint32_t count = 0, hash = 0x811c9dc5u, sleeps = 0;
  uint64_t bytes = 0;
  for (;;) {
    uint32_t tail = ld(W_TAIL);
    if (tail - pos > cap || (tail & 7)) fail("corrupt cursors");
    if (pos == tail) {
      if (producers_done()) break;
      st(W_CONSUMER_SLEEPING, 1);
      uint32_t seen = ld(W_DATA_SIGNAL);
      if (ld(W_TAIL) != pos) continue;
      futex_wait(W_DATA_SIGNAL, seen);
      sleeps++;
      continue;
    }
    uint32_t off = pos & mask;
    uint32_t kind = __atomic_load_n((uint32_t *)(data + off), __ATOMIC_SEQ_CST);
    uint32_t len = ((uint32_t *)(data + off))[1];
    if (len > cap - 8 - off) fail("record past the end");
    uint32_t size = 8 + ((len + 7) & ~7u);
    if (size > tail - pos) fail("record past the tail");
    if (kind == REC_MESSAGE) {
      if (len > max_message) fail("message too large");
      uint8_t lenbytes[4] = {len & 255, (len >> 8) & 255, (len >> 16) & 255, len >> 24};
      hash = fnv(fnv(hash, lenbytes, 4), data + off + 8, len);
      bytes += len;
      count++;
    } else if (kind != REC_PADDING) {
      fail("unexpected record type"); /* a claim (3) only appears in many-producer rings */
    }
    pos += size;
    st(W_HEAD, pos);
    wake_if_sleeping(W_PRODUCER_SLEEPING, W_SPACE_SIGNAL);
  }
  st(row_word(0, P_STATE), CLOSED); /* our own row: no lock needed */
  printf("{\"count\":%u,\"bytes\":%llu,\"hash\":%u,\"sleeps\":%u}\n", count, (unsigned long long)bytes, hash, sleeps);
  return 0;
}

static int produce(uint32_t n) {
  lock_attach();
  if (row_live(1)) fail("the ring has a live producer");
  claim_row(1);
  __atomic_fetch_add(&w[W_PRODUCERS_EVER], 1, __ATOMIC_SEQ_CST);
  uint32_t tail = ld(W_TAIL);
  unlock_attach();
  uint8_t buf[4096];
  for (uint32_t i = 0; i < n; i++) {
    uint32_t len = 1 + (i * 7919u) % 3000u;
    for (uint32_t k = 0; k < len; k++) buf[k] = (uint8_t)(i + k);
    memcpy(buf, &i, 4);
    uint32_t size = 8 + ((len + 7) & ~7u);
    for (int placed = 0; !placed;) {
      uint32_t off = tail & mask, contiguous = cap - off;
      uint32_t need = size > contiguous ? contiguous + size : size;
      uint32_t head = ld(W_HEAD);
      if (cap - (tail - head) < need) {
        st(W_PRODUCER_SLEEPING, 1);
        uint32_t seen = ld(W_SPACE_SIGNAL);
        if (cap - (tail - ld(W_HEAD)) < need) futex_wait(W_SPACE_SIGNAL, seen);
        continue;
      }
      if (size > contiguous) { /* a record never wraps: pad to the end */
        uint32_t *pad = (uint32_t *)(data + off);
        pad[1] = contiguous - 8;
        pad[0] = REC_PADDING;
        tail += contiguous;
        off = 0;
      }
      uint32_t *rec = (uint32_t *)(data + off);
      rec[1] = len;
      memcpy(rec + 2, buf, len);
      rec[0] = REC_MESSAGE;
      tail += size;
      st(W_TAIL, tail); /* publish */
      wake_if_sleeping(W_CONSUMER_SLEEPING, W_DATA_SIGNAL);
      placed = 1;
    }
  }
  st(row_word(1, P_STATE), CLOSED);
  __atomic_fetch_add(&w[W_DATA_SIGNAL], 1, __ATOMIC_SEQ_CST);
  futex_wake(W_DATA_SIGNAL);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) fail("usage: consume|produce NAME [N]");
  map(argv[2]);
  return strcmp(argv[1], "consume") == 0 ? consume() : produce((uint32_t)atoi(argv[3]));
}
`;

let bin: string | undefined;
const peer = (): string => (bin ??= compileC('ring_peer', C_PEER, ['-lrt']));

function fnv(h: number, bytes: Uint8Array): number {
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

it('a C receiver reads what a Node producer sent, through wrap-around and futex sleeps', async () => {
  const n = uniqueName('cring');
  rings.push(n);
  using ring = createRing(n, { capacity: 16 * 1024, maxMessageSize: 8192 });
  const c = run(peer(), ['consume', n], { timeoutMs: 60_000 });
  const tx = await ring.sender();
  let hash = 0x811c9dc5;
  let bytes = 0;
  const count = 20_000;
  for (let seq = 0; seq < count; seq++) {
    const m = makeMessage(5, seq, sizeFor(seq, 8192));
    const len = new Uint8Array([m.length & 255, (m.length >>> 8) & 255, (m.length >>> 16) & 255, m.length >>> 24]);
    hash = fnv(fnv(hash, len), m);
    bytes += m.length;
    await tx.send(m, { timeout: 20_000 });
    // Now and then let the C side catch up and fall asleep on the futex.
    if (seq % 2000 === 1999) await new Promise((r) => setTimeout(r, 30));
  }
  await tx.close();
  const r = await within(c.done, 30_000, 'the C receiver');
  assert.equal(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout);
  assert.deepEqual({ count: got.count, bytes: got.bytes, hash: got.hash }, { count, bytes, hash });
  assert.ok(got.sleeps > 0, 'the C receiver slept on the futex and was woken by Node');
  assert.equal(ring.info().consumer.state, 'closed');
});

it('a Node receiver reads what a C producer sent', async () => {
  const n = uniqueName('cring');
  rings.push(n);
  using ring = createRing(n, { capacity: 8192, maxMessageSize: 4000 });
  const rx = await ring.receiver();
  const count = 5000;
  const c = run(peer(), ['produce', n, String(count)], { timeoutMs: 60_000 });
  try {
    for (let i = 0; i < count; i++) {
      const m = await within(rx.receive({ timeout: 20_000 }), 25_000);
      const len = 1 + ((i * 7919) % 3000);
      assert.equal(m.length, len);
      const expected = (k: number): number => (k < 4 ? (i >>> (8 * k)) & 0xff : (i + k) & 0xff);
      for (let k = 0; k < len; k++) if (m[k] !== expected(k)) assert.fail(`message ${i} differs at byte ${k}`);
    }
    const end = await rx.receive({ timeout: 10_000 }).then(() => 'more', (e: { code?: string }) => e.code);
    assert.equal(end, 'ERR_IPCKIT_CLOSED', 'the C producer closed its slot: the channel ended');
    assert.equal((await c.done).code, 0);
  } finally {
    await rx.close();
  }
  void checkMessage;
});
