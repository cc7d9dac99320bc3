/*
 * cpu_distance A B: how far apart CPUs A and B are right now, as the round trip of one cache
 * line between two threads pinned to them. On a VM the host may move its virtual CPUs
 * between close cores (a shared cache: ~50-60 ns on a 2-vCPU AMD EPYC VM) and distant ones
 * (~330-380 ns there), and every figure whose two sides run on the two CPUs moves with it
 * (bench/distance.ts). Spinning only: no system call, no sleep, so the kernel's wake-up
 * path is not part of it.
 *
 * Prints {"rtt_ns":..,"min_ns":..,"max_ns":..}: the median, smallest and largest of BATCHES
 * batches of ROUNDS round trips each, after one batch of warm-up. Gives up (exit 3) when
 * they take more than a second (50 us a round trip, 130 times the slowest seen): the
 * other thread hardly ran, its CPU taken by something else (or both threads on one CPU).
 */
/* harness.h for now_ns, die and cmp_u64; the rest of it is for the reference programs. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "harness.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

enum { BATCHES = 9, ROUNDS = 2000 };

/* One cache line, alone: the ping (odd values) and the pong (even values). */
static struct {
  _Alignas(64) _Atomic uint64_t word;
  char pad[64 - sizeof(uint64_t)];
} line;
static int peer_cpu;

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

static void *pong(void *arg) {
  (void)arg;
  pin(peer_cpu);
  for (uint64_t i = 0; i < (uint64_t)(BATCHES + 1) * ROUNDS; i++) {
    while (atomic_load_explicit(&line.word, memory_order_acquire) != 2 * i + 1) {
    }
    atomic_store_explicit(&line.word, 2 * i + 2, memory_order_release);
  }
  return NULL;
}

static void give_up(int sig) {
  (void)sig;
  static const char msg[] = "cpu_distance: the round trips took more than 1 s: the other CPU is taken\n";
  if (write(2, msg, sizeof msg - 1) < 0) _exit(3);
  _exit(3);
}

int main(int argc, char **argv) {
  char *end_a, *end_b;
  long a = argc == 3 ? strtol(argv[1], &end_a, 10) : -1;
  long b = argc == 3 ? strtol(argv[2], &end_b, 10) : -1;
  if (argc != 3 || a < 0 || b < 0 || *end_a || *end_b || end_a == argv[1] || end_b == argv[2] || a >= CPU_SETSIZE || b >= CPU_SETSIZE) {
    fprintf(stderr, "usage: cpu_distance CPU_A CPU_B (two CPU numbers)\n");
    return 2;
  }
  pin((int)a);
  peer_cpu = (int)b;
  signal(SIGALRM, give_up);
  alarm(1);
  pthread_t t;
  int err = pthread_create(&t, NULL, pong, NULL);
  if (err != 0) {
    errno = err; /* pthread_create returns its error, die() prints errno's */
    die("pthread_create");
  }
  uint64_t ns[BATCHES];
  uint64_t i = 0;
  for (int batch = -1; batch < BATCHES; batch++) {
    uint64_t t0 = now_ns();
    for (int r = 0; r < ROUNDS; r++, i++) {
      atomic_store_explicit(&line.word, 2 * i + 1, memory_order_release);
      while (atomic_load_explicit(&line.word, memory_order_acquire) != 2 * i + 2) {
      }
    }
    if (batch >= 0) ns[batch] = (now_ns() - t0) / ROUNDS;
  }
  pthread_join(t, NULL);
  alarm(0);
  qsort(ns, BATCHES, sizeof ns[0], cmp_u64);
  printf("{\"rtt_ns\":%llu,\"min_ns\":%llu,\"max_ns\":%llu}\n", (unsigned long long)ns[BATCHES / 2], (unsigned long long)ns[0], (unsigned long long)ns[BATCHES - 1]);
  return 0;
}
