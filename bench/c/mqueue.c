/*
 * C reference: POSIX message queues, one queue per direction, mq_msgsize = SIZE,
 * mq_maxmsg = fs.mqueue.msg_max up to 256 (or what fits in RLIMIT_MSGQUEUE), as the
 * ipckit side of the bench chooses, one blocking mq_send / mq_receive
 * per message. The queues are created before fork and unlinked at once (the open
 * descriptors keep them), so nothing is left behind even if the run is killed.
 *   mqueue lat|thr SIZE MAX_MSGS MAX_SECONDS [cpus=P,C]   (cpus=P,C: bench_place)
 */
#include "harness.h"
#include <fcntl.h>
#include <mqueue.h>
#include <sys/resource.h>

static mqd_t make_queue(const char *tag, long maxmsg, long size) {
  char name[64];
  snprintf(name, sizeof name, "/ipckit-bench-c-%d-%s", (int)getpid(), tag);
  struct mq_attr attr = {0};
  attr.mq_maxmsg = maxmsg;
  attr.mq_msgsize = size;
  mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
  if (q == (mqd_t)-1) die("mq_open");
  mq_unlink(name);
  return q;
}

static void send_msg(mqd_t q, const char *buf, size_t n) {
  while (mq_send(q, buf, n, 0) != 0) {
    if (errno != EINTR) die("mq_send");
  }
}

static ssize_t recv_msg(mqd_t q, char *buf, size_t cap) {
  for (;;) {
    ssize_t n = mq_receive(q, buf, cap, NULL);
    if (n >= 0) return n;
    if (errno != EINTR) die("mq_receive");
  }
}

int main(int argc, char **argv) {
  bench_args a = parse_args(argc, argv);
  /* thr: the acknowledgement, a delivery_ack, goes back as one message of at most SIZE bytes */
  if (!a.lat && a.size < sizeof(delivery_ack)) { fprintf(stderr, "thr needs SIZE >= %zu\n", sizeof(delivery_ack)); return 2; }
  /* Two queues must fit in RLIMIT_MSGQUEUE (about maxmsg * (size + 96) bytes each). */
  struct rlimit rl;
  long maxmsg = 10;
  FILE *f = fopen("/proc/sys/fs/mqueue/msg_max", "r");
  if (f) {
    long v;
    if (fscanf(f, "%ld", &v) == 1 && v > 0) maxmsg = v < 256 ? v : 256;
    fclose(f);
  }
  if (getrlimit(RLIMIT_MSGQUEUE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    /* As bench/mqueue.ts: halve (not below 10) until two queues fit (messageQueueBytes). */
    while (maxmsg > 10 && 2 * (maxmsg * (long)(a.size + 96)) > (long)rl.rlim_cur) maxmsg /= 2;
    long fit = (long)(rl.rlim_cur / 2 / (a.size + 96));
    if (fit < maxmsg) maxmsg = fit < 1 ? 1 : fit;
  }
  mqd_t to_child = make_queue("a", maxmsg, (long)a.size);
  mqd_t to_parent = make_queue("b", maxmsg, (long)a.size);
  char *buf = malloc(a.size);
  memset(buf, 'x', a.size);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  bench_place(a.place, pid == 0);
  if (pid == 0) {
    long n = 0;
    delivery_clock clock = delivery_clock_start();
    for (;;) {
      ssize_t got = recv_msg(to_child, buf, a.size);
      if ((size_t)got != a.size) { fprintf(stderr, "short message\n"); exit(1); }
      uint64_t s = get_seq(buf);
      if (s == LAST_SEQ) break;
      if (a.lat) send_msg(to_parent, buf, a.size);
      else if (s != (uint64_t)n && !delivery_mark(&clock, s, n)) { fprintf(stderr, "bad seq %llu != %ld\n", (unsigned long long)s, n); exit(1); }
      n++;
    }
    if (!a.lat) {
      delivery_ack ack = delivery_reading(&clock, n);
      send_msg(to_parent, (char *)&ack, sizeof ack);
    }
    _exit(0);
  }
  if (a.lat) {
    lat_meter meter = lat_meter_start(a);
    long n = 0;
    for (;;) {
      uint64_t t0 = now_ns();
      put_seq(buf, (uint64_t)n);
      send_msg(to_child, buf, a.size);
      recv_msg(to_parent, buf, a.size);
      if (get_seq(buf) != (uint64_t)n) { fprintf(stderr, "bad echo seq\n"); exit(1); }
      uint64_t t1 = now_ns();
      n++;
      if (lat_meter_add(&meter, t0, t1)) break;
    }
    put_seq(buf, LAST_SEQ);
    send_msg(to_child, buf, a.size);
    lat_meter_print(&meter);
  } else {
    rate_meter meter = rate_meter_start(a);
    long n = 0;
    for (;; n++) {
      rate_meter_stamp(&meter, buf, n);
      send_msg(to_child, buf, a.size);
      if ((n & 255) == 0 && rate_meter_tick(&meter, n + 1)) { n++; break; }
    }
    put_seq(buf, LAST_SEQ);
    send_msg(to_child, buf, a.size);
    delivery_ack got = {.count = -1};
    char *ack = malloc(a.size);
    if (recv_msg(to_parent, ack, a.size) < (ssize_t)sizeof got) { fprintf(stderr, "short ack\n"); exit(1); }
    memcpy(&got, ack, sizeof got);
    uint64_t end = now_ns();
    if (got.count != n) { fprintf(stderr, "lost messages: sent %ld, got %ld\n", n, got.count); exit(1); }
    rate_meter_print(&meter, n, end, &got, 0);
  }
  waitpid(pid, NULL, 0);
  return 0;
}
