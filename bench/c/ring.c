/*
 * C reference: the ipckit ring layout (docs/ring.md), single producer, between a parent
 * and a forked child over a MAP_SHARED mapping. The sender copies each message into the
 * ring, the receiver copies it out, as ours do.
 *   ring lat|thr SIZE MAX_MSGS MAX_SECONDS spin|futex
 * spin: both sides busy-wait (pause) with no system call at all.
 * futex: a side with nothing to do raises its sleeper flag and sleeps in FUTEX_WAIT; the
 *        other side wakes it only when it sees the flag (no spinning before sleeping, like
 *        the reference measurements' futex ring).
 */
#include "harness.h"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>

enum {
  HEADER_BYTES = 4096, /* where the data region starts (W_DATA_OFFSET) */
  /* the common header of an ipckit object (docs/design.md section 6) */
  W_MAGIC = 0, W_VERSION = 1, W_HEADER_BYTES = 2, W_TABLE_OFFSET = 10, W_TABLE_ROWS = 11,
  /* the ring (docs/ring.md) */
  W_TAIL = 16, W_HEAD = 32,
  W_DATA_SIGNAL = 48, W_CONSUMER_SLEEPING = 49,
  W_SPACE_SIGNAL = 64, W_PRODUCER_SLEEPING = 65,
  W_CAPACITY = 80, W_FLAGS = 81, W_MAX_MESSAGE = 82, W_DATA_OFFSET = 83,
  REC_MESSAGE = 1, REC_PADDING = 2,
};

typedef struct {
  uint8_t *base;
  uint32_t cap, mask;
  uint32_t tail, head_cache; /* producer's private state */
  uint32_t pos, tail_cache;  /* consumer's private state */
} ring_t;

static int use_futex;

static inline uint32_t *word(ring_t *r, int i) { return (uint32_t *)r->base + i; }
static inline uint32_t load_acq(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void store_rel(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline void cpu_relax(void) { __builtin_ia32_pause(); }

static void futex_wait(uint32_t *p, uint32_t v) { syscall(SYS_futex, p, FUTEX_WAIT, v, NULL, NULL, 0); }
static void futex_wake(uint32_t *p) { syscall(SYS_futex, p, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0); }

/* The side that made progress wakes the other only if it raised its flag. */
static void wake_if_sleeping(ring_t *r, int flag, int signal) {
  if (!use_futex || !load_acq(word(r, flag))) return;
  uint32_t one = 1;
  if (__atomic_compare_exchange_n(word(r, flag), &one, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    __atomic_fetch_add(word(r, signal), 1, __ATOMIC_SEQ_CST);
    futex_wake(word(r, signal));
  }
}

/* Waits until ready(r) is true: spins, or raises the flag and sleeps on the signal. */
static void wait_for(ring_t *r, int (*ready)(ring_t *, uint32_t), uint32_t arg, int flag, int signal) {
  while (!ready(r, arg)) {
    if (!use_futex) {
      cpu_relax();
      continue;
    }
    /* The signal is read BEFORE the flag is raised. The other way round, a waker that saw
     * this flag still raised from an earlier wait that ended without sleeping (ready on the
     * re-check) could clear the new flag and bump the signal before we read it: we would
     * then sleep on the bumped value with the flag down, and no later message wakes us
     * (measured: 1 one-way run in 3 stalled, producer waiting for room, consumer for data). */
    uint32_t seq = __atomic_load_n(word(r, signal), __ATOMIC_SEQ_CST);
    __atomic_store_n(word(r, flag), 1, __ATOMIC_SEQ_CST);
    if (ready(r, arg)) break;
    futex_wait(word(r, signal), seq);
  }
}

static int has_room(ring_t *r, uint32_t n) {
  if (r->cap - (r->tail - r->head_cache) >= n) return 1;
  r->head_cache = load_acq(word(r, W_HEAD));
  return r->cap - (r->tail - r->head_cache) >= n;
}

static int has_data(ring_t *r, uint32_t unused) {
  (void)unused;
  if (r->pos != r->tail_cache) return 1;
  r->tail_cache = load_acq(word(r, W_TAIL));
  return r->pos != r->tail_cache;
}

static void ring_init(ring_t *r, uint8_t *base, uint32_t cap) {
  memset(r, 0, sizeof *r);
  r->base = base;
  r->cap = cap;
  r->mask = cap - 1;
  *word(r, W_VERSION) = 2;
  *word(r, W_HEADER_BYTES) = 64;
  *word(r, W_TABLE_OFFSET) = 512; /* row 0 the consumer, row 1 the producer */
  *word(r, W_TABLE_ROWS) = 2;
  *word(r, W_CAPACITY) = cap;
  *word(r, W_MAX_MESSAGE) = cap / 2;
  *word(r, W_DATA_OFFSET) = HEADER_BYTES;
  store_rel(word(r, W_MAGIC), 0x524b5049);
}

static void ring_send(ring_t *r, const char *buf, uint32_t len) {
  uint32_t size = 8 + ((len + 7) & ~7u);
  uint32_t off = r->tail & r->mask, contiguous = r->cap - off;
  if (size > contiguous) {
    wait_for(r, has_room, contiguous, W_PRODUCER_SLEEPING, W_SPACE_SIGNAL);
    uint32_t *h = (uint32_t *)(r->base + HEADER_BYTES + off);
    h[1] = contiguous - 8;
    h[0] = REC_PADDING;
    r->tail += contiguous;
    off = 0;
  }
  wait_for(r, has_room, size, W_PRODUCER_SLEEPING, W_SPACE_SIGNAL);
  uint32_t *h = (uint32_t *)(r->base + HEADER_BYTES + off);
  h[1] = len;
  memcpy(h + 2, buf, len);
  h[0] = REC_MESSAGE;
  r->tail += size;
  store_rel(word(r, W_TAIL), r->tail);
  wake_if_sleeping(r, W_CONSUMER_SLEEPING, W_DATA_SIGNAL);
}

/* Receives one message into buf; returns its length. */
static uint32_t ring_recv(ring_t *r, char *buf) {
  for (;;) {
    wait_for(r, has_data, 0, W_CONSUMER_SLEEPING, W_DATA_SIGNAL);
    uint32_t *h = (uint32_t *)(r->base + HEADER_BYTES + (r->pos & r->mask));
    uint32_t kind = h[0], len = h[1], size = 8 + ((len + 7) & ~7u);
    r->pos += size;
    if (kind == REC_PADDING) continue;
    memcpy(buf, h + 2, len);
    store_rel(word(r, W_HEAD), r->pos);
    wake_if_sleeping(r, W_PRODUCER_SLEEPING, W_SPACE_SIGNAL);
    return len;
  }
}

int main(int argc, char **argv) {
  bench_args a = parse_args(argc, argv);
  use_futex = argc > 5 && strcmp(argv[5], "futex") == 0;
  uint32_t cap = 1u << 20;
  while (cap < 16 * a.size) cap <<= 1;
  size_t bytes = 2 * (HEADER_BYTES + (size_t)cap);
  uint8_t *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  ring_t to_child, to_parent;
  ring_init(&to_child, mem, cap);
  ring_init(&to_parent, mem + HEADER_BYTES + cap, cap);
  char *buf = malloc(a.size);
  memset(buf, 'x', a.size);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  bench_place(a.place, pid == 0);
  if (pid == 0) {
    if (a.lat) {
      for (;;) {
        uint32_t n = ring_recv(&to_child, buf);
        if (get_seq(buf) == LAST_SEQ) break;
        ring_send(&to_parent, buf, n);
      }
    } else {
      long n = 0;
      for (;;) {
        ring_recv(&to_child, buf);
        uint64_t s = get_seq(buf);
        if (s == LAST_SEQ) break;
        if (s != (uint64_t)n) { fprintf(stderr, "bad seq %llu != %ld\n", (unsigned long long)s, n); exit(1); }
        n++;
      }
      ring_send(&to_parent, (char *)&n, sizeof n);
    }
    _exit(0);
  }
  if (a.lat) {
    lat_meter meter = lat_meter_start(a);
    long n = 0;
    for (;;) {
      uint64_t t0 = now_ns();
      put_seq(buf, (uint64_t)n);
      ring_send(&to_child, buf, (uint32_t)a.size);
      ring_recv(&to_parent, buf);
      if (get_seq(buf) != (uint64_t)n) { fprintf(stderr, "bad echo seq\n"); exit(1); }
      uint64_t t1 = now_ns();
      n++;
      if (lat_meter_add(&meter, t0, t1)) break;
    }
    put_seq(buf, LAST_SEQ);
    ring_send(&to_child, buf, (uint32_t)a.size);
    lat_meter_print(&meter);
  } else {
    rate_meter meter = rate_meter_start(a);
    long n = 0;
    for (;; n++) {
      put_seq(buf, (uint64_t)n);
      ring_send(&to_child, buf, (uint32_t)a.size);
      if ((n & 255) == 0 && rate_meter_tick(&meter, n + 1)) { n++; break; }
    }
    put_seq(buf, LAST_SEQ);
    ring_send(&to_child, buf, (uint32_t)a.size);
    long got = 0;
    ring_recv(&to_parent, (char *)&got);
    uint64_t end = now_ns();
    if (got != n) { fprintf(stderr, "lost messages: sent %ld, got %ld\n", n, got); exit(1); }
    rate_meter_print(&meter, n, end, NULL, 0); /* timed by the sender, as bench/ring.ts: a ring holds a millisecond or two */
  }
  waitpid(pid, NULL, 0);
  return 0;
}

/* harness.h helpers this program does not need (keeps -Wall quiet). */
static inline void unused_helpers(void) { (void)read_full; (void)write_full; }
