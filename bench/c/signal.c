/* C reference: signal ping-pong, sigqueue(SIGRTMIN+1) with the sequence number as value,
 * received with sigwaitinfo (the signal blocked in both processes). Size is ignored. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "harness.h"

int main(int argc, char **argv) {
  bench_args a = parse_args(argc, argv);
  int sig = SIGRTMIN + 1;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_BLOCK, &set, NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) die("fork");
  bench_place(a.place, pid == 0);
  siginfo_t si;
  if (pid == 0) {
    for (;;) {
      if (sigwaitinfo(&set, &si) < 0) { if (errno == EINTR) continue; die("sigwaitinfo"); }
      if (si.si_value.sival_int < 0) break;
      if (sigqueue(parent, sig, si.si_value) < 0) die("sigqueue");
    }
    _exit(0);
  }
  lat_meter meter = lat_meter_start(a);
  long n = 0;
  union sigval v;
  for (;;) {
    uint64_t t0 = now_ns();
    v.sival_int = (int)n;
    if (sigqueue(pid, sig, v) < 0) die("sigqueue");
    while (sigwaitinfo(&set, &si) < 0) if (errno != EINTR) die("sigwaitinfo");
    if (si.si_value.sival_int != (int)n) { fprintf(stderr, "bad value\n"); exit(1); }
    uint64_t t1 = now_ns();
    n++;
    if (lat_meter_add(&meter, t0, t1)) break;
  }
  v.sival_int = -1;
  sigqueue(pid, sig, v);
  waitpid(pid, NULL, 0);
  lat_meter_print(&meter);
  return 0;
}
