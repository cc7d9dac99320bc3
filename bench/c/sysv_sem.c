/*
 * C reference: System V semaphores, ping-pong. The parent gives semaphore 0 (ping), the
 * child takes it and gives semaphore 1 (pong), the parent takes that: one round trip. A
 * third semaphore tells the child to stop. The set is made by the caller (bench/sysv.ts,
 * which removes it afterwards) and passed as its identifier:
 *   sysv_sem lat SIZE MAX_MSGS MAX_SECONDS ID [cpus=P,C]   (SIZE is ignored: no payload; cpus=P,C: bench_place)
 */
#include "harness.h"
#include <sys/ipc.h>
#include <sys/sem.h>

static void op(int id, unsigned short num, short delta) {
  struct sembuf b = {num, delta, 0};
  while (semop(id, &b, 1) != 0) {
    if (errno != EINTR) die("semop");
  }
}

int main(int argc, char **argv) {
  bench_args a = parse_args(argc, argv);
  if (!a.lat || argc < 6) {
    fprintf(stderr, "usage: %s lat SIZE MAX_MSGS MAX_SECONDS ID [cpus=P,C] (a semaphore carries no payload)\n", argv[0]);
    return 2;
  }
  int id = atoi(argv[5]);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  bench_place(a.place, pid == 0);
  if (pid == 0) {
    for (;;) {
      op(id, 0, -1);
      struct sembuf stop = {2, -1, IPC_NOWAIT};
      if (semop(id, &stop, 1) == 0) break;
      op(id, 1, 1);
    }
    _exit(0);
  }
  lat_meter meter = lat_meter_start(a);
  long n = 0;
  for (;;) {
    uint64_t t0 = now_ns();
    op(id, 0, 1);
    op(id, 1, -1);
    uint64_t t1 = now_ns();
    n++;
    if (lat_meter_add(&meter, t0, t1)) break;
  }
  op(id, 2, 1);
  op(id, 0, 1);
  waitpid(pid, NULL, 0);
  lat_meter_print(&meter);
  return 0;
}
