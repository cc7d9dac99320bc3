/*
 * C reference: TCP over 127.0.0.1 with TCP_NODELAY on both ends, one write() per message.
 *
 * One way, the receiver reads every message that has arrived (up to 64 KiB a read). Reading
 * one 64 B message per read, this reference had two steady states: the receiver keeping up,
 * each write a segment of its own that wakes it (0.21-0.25M msg/s, the sender's CPU 4.4 us a
 * message), or the receiver behind, the sender's writes joined into fewer, larger segments
 * (0.53-0.73M and 1.4-1.9 us by hand, up to 1.01M in the bench's rounds): a 30 ms pause of
 * the receiver's CPU put it behind for the rest of a 0.4 s run, one read per message too slow
 * to catch up. Which one a round measured was chance (docs/bench.md, Limits). Reading what
 * has arrived, it catches up.
 */
#include "stream.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define TCP_READ_MAX 65536

int main(int argc, char **argv) {
  bench_args a = parse_args(argc, argv);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof sa;
  int one = 1;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 1) || getsockname(lfd, (struct sockaddr *)&sa, &len)) die("listen");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  bench_place(a.place, pid == 0);
  if (pid == 0) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) die("accept");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (a.lat) stream_lat_child(a, fd, fd);
    else stream_thr_child(a, fd, fd, TCP_READ_MAX);
    _exit(0);
  }
  close(lfd);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) die("connect");
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (a.lat) stream_lat_parent(a, fd, fd);
  else stream_thr_parent(a, fd, fd);
  close(fd);
  waitpid(pid, NULL, 0);
  return 0;
}
