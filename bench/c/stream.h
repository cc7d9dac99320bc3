/*
 * The ping-pong and one-way loops shared by the byte-stream references (pipe, FIFO, Unix
 * stream socket, TCP): one write() per message; the reader reads each message whole, or in
 * the one-way test (TCP) every message that has arrived.
 * The caller forks and hands each side its fds.
 */
#ifndef IPCKIT_BENCH_STREAM_H
#define IPCKIT_BENCH_STREAM_H
#include "harness.h"

/* Parent side of the round-trip test: returns after printing the figure. */
static void stream_lat_parent(bench_args a, int out, int in) {
  char *buf = malloc(a.size);
  memset(buf, 'x', a.size);
  lat_meter meter = lat_meter_start(a);
  long n = 0;
  for (;;) {
    uint64_t t0 = now_ns();
    put_seq(buf, (uint64_t)n);
    write_full(out, buf, a.size);
    if (!read_full(in, buf, a.size)) die("echo ended");
    if (get_seq(buf) != (uint64_t)n) { fprintf(stderr, "bad echo seq\n"); exit(1); }
    uint64_t t1 = now_ns();
    n++;
    if (lat_meter_add(&meter, t0, t1)) break;
  }
  put_seq(buf, LAST_SEQ);
  write_full(out, buf, a.size);
  lat_meter_print(&meter);
}

static void stream_lat_child(bench_args a, int in, int out) {
  char *buf = malloc(a.size);
  for (;;) {
    if (!read_full(in, buf, a.size)) break;
    if (get_seq(buf) == LAST_SEQ) break;
    write_full(out, buf, a.size);
  }
}

static void stream_thr_parent(bench_args a, int out, int ack) {
  char *buf = malloc(a.size);
  memset(buf, 'x', a.size);
  rate_meter meter = rate_meter_start(a);
  long n = 0;
  for (;; n++) {
    rate_meter_stamp(&meter, buf, n);
    write_full(out, buf, a.size);
    if ((n & 255) == 0 && rate_meter_tick(&meter, n + 1)) { n++; break; }
  }
  put_seq(buf, LAST_SEQ);
  write_full(out, buf, a.size);
  delivery_ack got;
  if (!read_full(ack, (char *)&got, sizeof got)) die("no ack");
  uint64_t end = now_ns();
  if (got.count != n) { fprintf(stderr, "lost messages: sent %ld, got %ld\n", n, got.count); exit(1); }
  rate_meter_print(&meter, n, end, &got, 1);
}

/*
 * Receiver of the one-way test. One read() takes at most `read_max` bytes: a.size reads each
 * message whole, one read per message; more lets a read take every message that has arrived
 * (the TCP reference, tcp.c says why), a message cut at the end of a read being completed by
 * the next.
 */
static void stream_thr_child(bench_args a, int in, int ack, size_t read_max) {
  size_t cap = read_max > a.size ? read_max : a.size;
  char *buf = malloc(cap);
  size_t have = 0; /* bytes in buf */
  size_t at = 0;   /* where the next message starts in buf */
  delivery_clock clock = delivery_clock_start();
  long n = 0;
  for (;;) {
    if (have - at < a.size) {
      memmove(buf, buf + at, have - at); /* the start of a message cut by the last read */
      have -= at;
      at = 0;
      while (have < a.size) {
        ssize_t r = read(in, buf + have, cap - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) die("stream ended early");
        have += (size_t)r;
      }
    }
    uint64_t s = get_seq(buf + at);
    at += a.size;
    if (s == LAST_SEQ) break;
    if (s != (uint64_t)n && !delivery_mark(&clock, s, n)) { fprintf(stderr, "bad seq %llu != %ld\n", (unsigned long long)s, n); exit(1); }
    n++;
  }
  delivery_ack got = delivery_reading(&clock, n);
  write_full(ack, (char *)&got, sizeof got);
}

#endif
