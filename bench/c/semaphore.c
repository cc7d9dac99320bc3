/*
 * C reference: POSIX named semaphores, ping-pong. The parent posts `ping`, the child
 * waits on it and posts `pong`, the parent waits on `pong`: one round trip. Named
 * semaphores (sem_open, O_EXCL) unlinked at once; the mappings are inherited by fork.
 *   semaphore lat SIZE MAX_MSGS MAX_SECONDS [cpus=P,C]   (SIZE is ignored: no payload; cpus=P,C: bench_place)
 */
#include "harness.h"
#include <fcntl.h>
#include <semaphore.h>
#include <sys/mman.h>

static sem_t *make_sem(const char *tag) {
  char name[64];
  snprintf(name, sizeof name, "/ipckit-bench-c-%d-%s", (int)getpid(), tag);
  sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
  if (s == SEM_FAILED) die("sem_open");
  sem_unlink(name);
  return s;
}

static void wait_sem(sem_t *s) {
  while (sem_wait(s) != 0) {
    if (errno != EINTR) die("sem_wait");
  }
}

int main(int argc, char **argv) {
  bench_args a = parse_args(argc, argv);
  if (!a.lat) {
    fprintf(stderr, "semaphore: only lat (a semaphore carries no payload)\n");
    return 2;
  }
  sem_t *ping = make_sem("ping"), *pong = make_sem("pong");
  volatile int *stop = mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (stop == MAP_FAILED) die("mmap");
  *stop = 0;
  pid_t pid = fork();
  if (pid < 0) die("fork");
  bench_place(a.place, pid == 0);
  if (pid == 0) {
    for (;;) {
      wait_sem(ping);
      if (__atomic_load_n(stop, __ATOMIC_ACQUIRE)) break;
      sem_post(pong);
    }
    _exit(0);
  }
  lat_meter meter = lat_meter_start(a);
  long n = 0;
  for (;;) {
    uint64_t t0 = now_ns();
    sem_post(ping);
    wait_sem(pong);
    uint64_t t1 = now_ns();
    n++;
    if (lat_meter_add(&meter, t0, t1)) break;
  }
  __atomic_store_n(stop, 1, __ATOMIC_RELEASE);
  sem_post(ping);
  waitpid(pid, NULL, 0);
  lat_meter_print(&meter);
  return 0;
}
