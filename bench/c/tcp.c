/* C reference: TCP over 127.0.0.1 with TCP_NODELAY on both ends, one write() per message. */
#include "stream.h"
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

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
    else stream_thr_child(a, fd, fd);
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
