/*
 * C reference: a System V message queue, one queue for both directions as System V
 * programs use it: the parent sends type 1, the child answers type 2. One blocking msgsnd /
 * msgrcv per message. The queue is made by the caller (bench/sysv.ts, which removes it
 * afterwards, even if this program is killed) and passed as its identifier:
 *   sysv_msg lat|thr SIZE MAX_MSGS MAX_SECONDS ID [cpus=P,C]   (cpus=P,C: bench_place)
 */
#include "harness.h"
#include <sys/ipc.h>
#include <sys/msg.h>

struct msg {
  long type;
  char text[];
};

static void send_msg(int id, struct msg *m, long type, size_t n) {
  m->type = type;
  while (msgsnd(id, m, n, 0) != 0) {
    if (errno != EINTR) die("msgsnd");
  }
}

static ssize_t recv_msg(int id, struct msg *m, long type, size_t cap) {
  for (;;) {
    ssize_t n = msgrcv(id, m, cap, type, 0);
    if (n >= 0) return n;
    if (errno != EINTR) die("msgrcv");
  }
}

int main(int argc, char **argv) {
  bench_args a = parse_args(argc, argv);
  /* thr: the acknowledgement, a delivery_ack, goes back as one message of at most SIZE bytes */
  if (!a.lat && a.size < sizeof(delivery_ack)) { fprintf(stderr, "thr needs SIZE >= %zu\n", sizeof(delivery_ack)); return 2; }
  if (argc < 6) {
    fprintf(stderr, "usage: %s lat|thr SIZE MAX_MSGS MAX_SECONDS ID [cpus=P,C]\n", argv[0]);
    return 2;
  }
  int id = atoi(argv[5]);
  struct msg *m = malloc(sizeof(long) + a.size);
  memset(m->text, 'x', a.size);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  bench_place(a.place, pid == 0);
  if (pid == 0) {
    long n = 0;
    delivery_clock clock = delivery_clock_start();
    for (;;) {
      ssize_t got = recv_msg(id, m, 1, a.size);
      if ((size_t)got != a.size) { fprintf(stderr, "short message\n"); exit(1); }
      uint64_t s = get_seq(m->text);
      if (s == LAST_SEQ) break;
      if (a.lat) send_msg(id, m, 2, a.size);
      else if (s != (uint64_t)n && !delivery_mark(&clock, s, n)) { fprintf(stderr, "bad seq %llu != %ld\n", (unsigned long long)s, n); exit(1); }
      n++;
    }
    if (!a.lat) {
      delivery_ack ack = delivery_reading(&clock, n);
      memcpy(m->text, &ack, sizeof ack);
      send_msg(id, m, 2, sizeof ack);
    }
    _exit(0);
  }
  if (a.lat) {
    lat_meter meter = lat_meter_start(a);
    long n = 0;
    for (;;) {
      uint64_t t0 = now_ns();
      put_seq(m->text, (uint64_t)n);
      send_msg(id, m, 1, a.size);
      recv_msg(id, m, 2, a.size);
      if (get_seq(m->text) != (uint64_t)n) { fprintf(stderr, "bad echo seq\n"); exit(1); }
      uint64_t t1 = now_ns();
      n++;
      if (lat_meter_add(&meter, t0, t1)) break;
    }
    put_seq(m->text, LAST_SEQ);
    send_msg(id, m, 1, a.size);
    lat_meter_print(&meter);
  } else {
    rate_meter meter = rate_meter_start(a);
    long n = 0;
    for (;; n++) {
      rate_meter_stamp(&meter, m->text, n);
      send_msg(id, m, 1, a.size);
      if ((n & 255) == 0 && rate_meter_tick(&meter, n + 1)) { n++; break; }
    }
    put_seq(m->text, LAST_SEQ);
    send_msg(id, m, 1, a.size);
    delivery_ack got = {.count = -1};
    if (recv_msg(id, m, 2, a.size) < (ssize_t)sizeof got) { fprintf(stderr, "short ack\n"); exit(1); }
    memcpy(&got, m->text, sizeof got);
    uint64_t end = now_ns();
    if (got.count != n) { fprintf(stderr, "lost messages: sent %ld, got %ld\n", n, got.count); exit(1); }
    rate_meter_print(&meter, n, end, &got, 0);
  }
  waitpid(pid, NULL, 0);
  return 0;
}
