/*
 * cpu_distance A B: how far apart CPUs A and B are right now, as the round trip of one cache
 * line between two threads pinned to them. On a VM the host may move its virtual CPUs
 * between close cores (a shared cache: ~50-60 ns on a 2-vCPU AMD EPYC VM) and distant ones
 * (~330-380 ns there), and every figure whose two sides run on the two CPUs moves with it
 * (bench/distance.ts). Spinning only: no system call, no sleep, so the kernel's wake-up
 * path is not part of it.
 *
 * Prints {"rtt_ns":..,"min_ns":..,"max_ns":..}: the median, smallest and largest of BATCHES
 * batches of ROUNDS round trips each, after one batch of warm-up. Gives up (exit 3) after
 * one second: the other thread never ran, i.e. its CPU is taken by something else.
 */
/* harness.h for now_ns, die and cmp_u64; the rest of it is for the reference programs. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "harness.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

enum { BATCHES = 9, ROUNDS = 2000 };

/* One cache line, alone: the ping (odd values) and the pong (even values). */
static _Alignas(64) _Atomic uint64_t line;
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
    while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 1) {
    }
    atomic_store_explicit(&line, 2 * i + 2, memory_order_release);
  }
  return NULL;
}

static void give_up(int sig) {
  (void)sig;
  static const char msg[] = "cpu_distance: the other CPU's thread did not answer within 1 s\n";
  if (write(2, msg, sizeof msg - 1) < 0) _exit(3);
  _exit(3);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: cpu_distance CPU_A CPU_B\n");
    return 2;
  }
  pin(atoi(argv[1]));
  peer_cpu = atoi(argv[2]);
  signal(SIGALRM, give_up);
  alarm(1);
  pthread_t t;
  if (pthread_create(&t, NULL, pong, NULL) != 0) die("pthread_create");
  uint64_t ns[BATCHES];
  uint64_t i = 0;
  for (int b = -1; b < BATCHES; b++) {
    uint64_t t0 = now_ns();
    for (int r = 0; r < ROUNDS; r++, i++) {
      atomic_store_explicit(&line, 2 * i + 1, memory_order_release);
      while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 2) {
      }
    }
    if (b >= 0) ns[b] = (now_ns() - t0) / ROUNDS;
  }
  pthread_join(t, NULL);
  qsort(ns, BATCHES, sizeof ns[0], cmp_u64);
  printf("{\"rtt_ns\":%llu,\"min_ns\":%llu,\"max_ns\":%llu}\n", (unsigned long long)ns[BATCHES / 2], (unsigned long long)ns[0], (unsigned long long)ns[BATCHES - 1]);
  return 0;
}
