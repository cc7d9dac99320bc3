/* C reference: Unix datagram sockets, one sendto/send and one recv per message, blocking.
 * PATH mode (ipckit's client/server topology): the child's socket is bound to PATH and
 * unconnected (it answers with sendto to the sender's address); the parent's is bound
 * (autobind) and connected to it. The kernel then queues at most net.unix.max_dgram_qlen
 * (10) datagrams for the server. "--pair" mode: a socketpair, which that limit skips. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "harness.h"
#include <sys/socket.h>
#include <sys/un.h>

int main(int argc, char **argv) {
  bench_args a = parse_args(argc, argv);
  if (argc < 6) { fprintf(stderr, "usage: %s lat|thr SIZE MSGS SECS PATH|--pair [cpus=P,C]\n", argv[0]); return 2; }
  int pair = strcmp(argv[5], "--pair") == 0;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int buf = (int)a.size * 4 + 65536; /* four messages and 64 KiB more: at 64 KiB, above the default */
  int sfd, fd, sv[2];
  if (pair) {
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) die("socketpair");
    sfd = sv[0];
    fd = sv[1];
    raise_sndbuf(fd, buf);
  } else {
    strncpy(sa.sun_path, argv[5], sizeof sa.sun_path - 1);
    unlink(argv[5]);
    sfd = socket(AF_UNIX, SOCK_DGRAM, 0);
    if (sfd < 0 || bind(sfd, (struct sockaddr *)&sa, sizeof sa)) die("bind");
  }
  raise_sndbuf(sfd, buf);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  bench_place(a.place, pid == 0);
  char *msg = malloc(a.size);
  if (pid == 0) {
    struct sockaddr_un from;
    socklen_t flen;
    long n = 0;
    delivery_clock clock = delivery_clock_start();
    for (;;) {
      flen = sizeof from;
      ssize_t r = recvfrom(sfd, msg, a.size, 0, (struct sockaddr *)&from, &flen);
      if (r < 0) { if (errno == EINTR) continue; die("recvfrom"); }
      uint64_t s = get_seq(msg);
      if (s == LAST_SEQ) {
        delivery_ack got = delivery_reading(&clock, n);
        if (!a.lat) sendto(sfd, &got, sizeof got, 0, (struct sockaddr *)&from, flen);
        break;
      }
      if (a.lat) { if (sendto(sfd, msg, (size_t)r, 0, (struct sockaddr *)&from, flen) < 0) die("sendto"); }
      else {
        if (s != (uint64_t)n && !delivery_mark(&clock, s, n)) { fprintf(stderr, "bad seq\n"); exit(1); }
        n++;
      }
    }
    _exit(0);
  }
  if (!pair) {
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un any = {.sun_family = AF_UNIX};
    raise_sndbuf(fd, buf);
    if (fd < 0 || bind(fd, (struct sockaddr *)&any, sizeof(sa_family_t)) || connect(fd, (struct sockaddr *)&sa, sizeof sa)) die("connect");
  }
  memset(msg, 'x', a.size);
  if (a.lat) {
    lat_meter meter = lat_meter_start(a);
    long n = 0;
    for (;;) {
      uint64_t t0 = now_ns();
      put_seq(msg, (uint64_t)n);
      if (send(fd, msg, a.size, 0) < 0) die("send");
      if (recv(fd, msg, a.size, 0) < 0) die("recv");
      if (get_seq(msg) != (uint64_t)n) { fprintf(stderr, "bad echo\n"); exit(1); }
      uint64_t t1 = now_ns();
      n++;
      if (lat_meter_add(&meter, t0, t1)) break;
    }
    put_seq(msg, LAST_SEQ);
    send(fd, msg, a.size, 0);
    lat_meter_print(&meter);
  } else {
    rate_meter meter = rate_meter_start(a);
    long n = 0;
    for (;; n++) {
      rate_meter_stamp(&meter, msg, n);
      while (send(fd, msg, a.size, 0) < 0) if (errno != EINTR) die("send");
      if ((n & 255) == 0 && rate_meter_tick(&meter, n + 1)) { n++; break; }
    }
    put_seq(msg, LAST_SEQ);
    send(fd, msg, a.size, 0);
    delivery_ack got;
    if (recv(fd, &got, sizeof got, 0) < (ssize_t)sizeof got) die("recv ack");
    uint64_t end = now_ns();
    if (got.count != n) { fprintf(stderr, "lost: sent %ld got %ld\n", n, got.count); exit(1); }
    rate_meter_print(&meter, n, end, &got, 0);
  }
  waitpid(pid, NULL, 0);
  if (!pair) unlink(argv[5]);
  return 0;
}
