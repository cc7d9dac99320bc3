/* C reference: Unix stream socket at a path (listen/accept in the child, connect in the
 * parent), one write() per message, blocking. Extra arg: the socket path.
 * seqpacket.c builds this same program with UNIX_SOCKET_TYPE = SOCK_SEQPACKET. */
#include "stream.h"
#include <sys/socket.h>
#include <sys/un.h>

#ifndef UNIX_SOCKET_TYPE
#define UNIX_SOCKET_TYPE SOCK_STREAM
#endif

int main(int argc, char **argv) {
  bench_args a = parse_args(argc, argv);
  if (argc < 6) { fprintf(stderr, "usage: %s lat|thr SIZE MSGS SECS PATH [cpus=P,C]\n", argv[0]); return 2; }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strncpy(sa.sun_path, argv[5], sizeof sa.sun_path - 1);
  unlink(argv[5]);
  int lfd = socket(AF_UNIX, UNIX_SOCKET_TYPE, 0);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 1)) die("listen");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  bench_place(a.place, pid == 0);
  if (pid == 0) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0) die("accept");
    if (a.lat) stream_lat_child(a, fd, fd);
    else stream_thr_child(a, fd, fd, a.size);
    _exit(0);
  }
  close(lfd);
  int fd = socket(AF_UNIX, UNIX_SOCKET_TYPE, 0);
  if (fd < 0) die("socket");
  if (UNIX_SOCKET_TYPE == SOCK_SEQPACKET) {
    /* A seqpacket message must fit the send buffer whole. */
    raise_sndbuf(fd, (int)a.size * 2 + 4096);
  }
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) die("connect");
  if (a.lat) stream_lat_parent(a, fd, fd);
  else stream_thr_parent(a, fd, fd);
  close(fd);
  waitpid(pid, NULL, 0);
  unlink(argv[5]);
  return 0;
}
