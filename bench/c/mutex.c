/*
 * C reference: robust process-shared pthread mutexes, ping-pong by handing locks over.
 * Three mutexes relay the turn: the parent holds two, the child one and waits for a
 * third; each side unlocks the one the other waits for, then locks the one the other
 * holds. One round trip = the parent's unlock(i % 3) + lock((i + 2) % 3), during which
 * the child does lock(i % 3) + unlock((i + 2) % 3): two lock hand-overs, one each way.
 *   mutex lat SIZE MAX_MSGS MAX_SECONDS [cpus=P,C]   (SIZE is ignored; cpus=P,C: bench_place)
 */
#include "harness.h"
#include <pthread.h>
#include <sys/mman.h>

struct shared {
  pthread_mutex_t m[3];
  int stop;
};

static void lock(pthread_mutex_t *m) {
  int err = pthread_mutex_lock(m);
  if (err != 0 && err != EOWNERDEAD) { errno = err; die("pthread_mutex_lock"); }
}

static void unlock(pthread_mutex_t *m) {
  int err = pthread_mutex_unlock(m);
  if (err != 0) { errno = err; die("pthread_mutex_unlock"); }
}

int main(int argc, char **argv) {
  bench_args a = parse_args(argc, argv);
  if (!a.lat) {
    fprintf(stderr, "mutex: only lat\n");
    return 2;
  }
  struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s == MAP_FAILED) die("mmap");
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  for (int i = 0; i < 3; i++) pthread_mutex_init(&s->m[i], &attr);
  int ready[2];
  if (pipe(ready) != 0) die("pipe");
  lock(&s->m[0]);
  lock(&s->m[1]);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  bench_place(a.place, pid == 0);
  if (pid == 0) {
    lock(&s->m[2]);
    if (write(ready[1], "r", 1) != 1) die("write");
    for (long j = 0;; j++) {
      lock(&s->m[j % 3]);
      if (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) break;
      unlock(&s->m[(j + 2) % 3]);
    }
    _exit(0);
  }
  char c;
  if (read(ready[0], &c, 1) != 1) die("read");
  lat_meter meter = lat_meter_start(a);
  long n = 0;
  for (;;) {
    uint64_t t0 = now_ns();
    unlock(&s->m[n % 3]);
    lock(&s->m[(n + 2) % 3]);
    uint64_t t1 = now_ns();
    n++;
    if (lat_meter_add(&meter, t0, t1)) break;
  }
  /* The parent holds (n % 3) and ((n + 1) % 3); the child waits for n % 3. */
  __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
  unlock(&s->m[n % 3]);
  unlock(&s->m[(n + 1) % 3]);
  waitpid(pid, NULL, 0);
  lat_meter_print(&meter);
  return 0;
}
