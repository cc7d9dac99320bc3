/*
 * Optional CPU placement for the ping-pong references (mqueue.c, semaphore.c, mutex.c):
 * an extra argument "P,C" pins the parent to CPU P and the child to CPU C, so that a run
 * can be compared with a Node run placed the same way. Without it the scheduler places
 * both (what a user gets).
 */
#ifndef IPCKIT_BENCH_PIN_H
#define IPCKIT_BENCH_PIN_H
#include <sched.h>
#include <stdlib.h>

/* Pins the calling process to the `which`-th (0 parent, 1 child) CPU of "P,C"; no-op for NULL. */
static void pin_to(const char *cpus, int which) {
  if (cpus == NULL || *cpus == '\0') return;
  const char *at = cpus;
  if (which == 1) {
    const char *comma = strchr(cpus, ',');
    if (comma == NULL) return;
    at = comma + 1;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(atoi(at), &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

#endif
