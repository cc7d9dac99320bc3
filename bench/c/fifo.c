/* C reference: two FIFOs made with mkfifo in a temp folder, opened by path after fork.
   Optional 5th argument cpus=P,C: see bench_place. */
#include "stream.h" /* first: it defines _GNU_SOURCE */
#include <fcntl.h>
#include <sys/stat.h>

int main(int argc, char **argv) {
  bench_args a = parse_args(argc, argv);
  char dir[] = "/tmp/ipcbench-fifo-XXXXXX", down[64], up[64];
  if (!mkdtemp(dir)) die("mkdtemp");
  snprintf(down, sizeof down, "%s/down", dir);
  snprintf(up, sizeof up, "%s/up", dir);
  if (mkfifo(down, 0600) || mkfifo(up, 0600)) die("mkfifo");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  bench_place(a.place, pid == 0);
  if (pid == 0) {
    int in = open(down, O_RDONLY), out = open(up, O_WRONLY);
    if (in < 0 || out < 0) die("open");
    if (a.lat) stream_lat_child(a, in, out);
    else stream_thr_child(a, in, out, a.size);
    _exit(0);
  }
  int out = open(down, O_WRONLY), in = open(up, O_RDONLY);
  if (in < 0 || out < 0) die("open");
  if (a.lat) stream_lat_parent(a, out, in);
  else stream_thr_parent(a, out, in);
  close(out);
  waitpid(pid, NULL, 0);
  unlink(down);
  unlink(up);
  rmdir(dir);
  return 0;
}
