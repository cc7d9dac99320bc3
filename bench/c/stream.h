/*
 * The ping-pong and one-way loops shared by the byte-stream references (pipe, FIFO, Unix
 * stream socket, TCP): one write() per message, the reader reads each message whole.
 * The caller forks and hands each side its fds.
 */
#ifndef IPCKIT_BENCH_STREAM_H
#define IPCKIT_BENCH_STREAM_H
#include "harness.h"

/* Parent side of the round-trip test: returns after printing the figure. */
static void stream_lat_parent(bench_args a, int out, int in) {
  char *buf = malloc(a.size);
  memset(buf, 'x', a.size);
  uint64_t *samples = malloc(sizeof(uint64_t) * (size_t)a.max_msgs);
  uint64_t deadline = now_ns() + (uint64_t)(a.max_seconds * 1e9);
  long n = 0;
  while (n < a.max_msgs) {
    uint64_t t0 = now_ns();
    put_seq(buf, (uint64_t)n);
    write_full(out, buf, a.size);
    if (!read_full(in, buf, a.size)) die("echo ended");
    if (get_seq(buf) != (uint64_t)n) { fprintf(stderr, "bad echo seq\n"); exit(1); }
    uint64_t t1 = now_ns();
    samples[n++] = t1 - t0;
    if (t1 > deadline) break;
  }
  put_seq(buf, LAST_SEQ);
  write_full(out, buf, a.size);
  print_latency(samples, n);
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
  double cpu0 = cpu_us();
  uint64_t start = now_ns(), deadline = start + (uint64_t)(a.max_seconds * 1e9);
  long n = 0;
  for (; n < a.max_msgs; n++) {
    put_seq(buf, (uint64_t)n);
    write_full(out, buf, a.size);
    if ((n & 255) == 0 && now_ns() > deadline) { n++; break; }
  }
  put_seq(buf, LAST_SEQ);
  write_full(out, buf, a.size);
  long got;
  if (!read_full(ack, (char *)&got, sizeof got)) die("no ack");
  uint64_t end = now_ns();
  if (got != n) { fprintf(stderr, "lost messages: sent %ld, got %ld\n", n, got); exit(1); }
  print_throughput_cpu(n, end - start, a.size, cpu_us() - cpu0);
}

static void stream_thr_child(bench_args a, int in, int ack) {
  char *buf = malloc(a.size);
  long n = 0;
  for (;;) {
    if (!read_full(in, buf, a.size)) die("stream ended early");
    uint64_t s = get_seq(buf);
    if (s == LAST_SEQ) break;
    if (s != (uint64_t)n) { fprintf(stderr, "bad seq %llu != %ld\n", (unsigned long long)s, n); exit(1); }
    n++;
  }
  write_full(ack, (char *)&n, sizeof n);
}

#endif
