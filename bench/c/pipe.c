/* C reference: pipe(2), one pipe per direction, one write() per message, default pipe size.
   Optional 5th argument cpus=P,C: see bench_place. */
#include "stream.h"

int main(int argc, char **argv) {
  bench_args a = parse_args(argc, argv);
  int to_child[2], to_parent[2];
  if (pipe(to_child) || pipe(to_parent)) die("pipe");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  bench_place(a.place, pid == 0);
  if (pid == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    if (a.lat) stream_lat_child(a, to_child[0], to_parent[1]);
    else stream_thr_child(a, to_child[0], to_parent[1], a.size);
    _exit(0);
  }
  close(to_child[0]);
  close(to_parent[1]);
  if (a.lat) stream_lat_parent(a, to_child[1], to_parent[0]);
  else stream_thr_parent(a, to_child[1], to_parent[0]);
  close(to_child[1]);
  waitpid(pid, NULL, 0);
  return 0;
}
