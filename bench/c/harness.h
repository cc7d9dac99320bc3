/*
 * Shared by the C reference programs: timing, percentiles, the one-line JSON result.
 * Every program takes: lat|thr SIZE MAX_MSGS MAX_SECONDS, forks one child, and prints
 *   lat: {"p50_us":..,"p99_us":..,"n":..}        (per round trip, warm-up dropped)
 *   thr: {"msgs_per_sec":..,"mb_per_sec":..,"n":..}  (one message per write/send call;
 *        the byte streams add "sender_cpu_us": CPU the sending process used per message)
 * Messages carry a sequence number in their first 8 bytes, checked by the receiver.
 */
#ifndef IPCKIT_BENCH_HARNESS_H
#define IPCKIT_BENCH_HARNESS_H
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "%s: %s\n", what, strerror(errno));
  exit(1);
}

typedef struct {
  int lat;         /* 1 for lat, 0 for thr */
  size_t size;
  long max_msgs;
  double max_seconds;
} bench_args;

static bench_args parse_args(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: %s lat|thr SIZE MAX_MSGS MAX_SECONDS\n", argv[0]);
    exit(2);
  }
  bench_args a;
  a.lat = strcmp(argv[1], "lat") == 0;
  a.size = (size_t)atol(argv[2]);
  a.max_msgs = atol(argv[3]);
  a.max_seconds = atof(argv[4]);
  if (a.size < 8) a.size = 8;
  return a;
}

static int cmp_u64(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return a < b ? -1 : a > b;
}

/* Prints p50/p99 of n round-trip samples (ns), dropping the warm-up. */
static void print_latency(uint64_t *samples, long n) {
  long warm = n / 20 < 1000 ? n / 20 : 1000;
  samples += warm;
  n -= warm;
  qsort(samples, (size_t)n, sizeof *samples, cmp_u64);
  double p50 = n ? samples[n / 2] / 1000.0 : 0, p99 = n ? samples[(long)(n * 0.99)] / 1000.0 : 0;
  printf("{\"p50_us\":%.3f,\"p99_us\":%.3f,\"n\":%ld}\n", p50, p99, n);
}

static inline void print_throughput(long msgs, uint64_t ns, size_t size) {
  double secs = ns / 1e9, rate = msgs / secs;
  printf("{\"msgs_per_sec\":%.0f,\"mb_per_sec\":%.1f,\"n\":%ld}\n", rate, rate * size / 1e6, msgs);
}

/* CPU time (user + system) this process has used, in microseconds (its children not counted). */
static inline double cpu_us(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

/* print_throughput, plus the sender's CPU per message (`cpu`: cpu_us() spent sending). */
static inline void print_throughput_cpu(long msgs, uint64_t ns, size_t size, double cpu) {
  double secs = ns / 1e9, rate = msgs / secs;
  printf("{\"msgs_per_sec\":%.0f,\"mb_per_sec\":%.1f,\"n\":%ld,\"sender_cpu_us\":%.3f}\n", rate, rate * size / 1e6, msgs, msgs ? cpu / msgs : 0);
}

static inline void put_seq(char *buf, uint64_t seq) { memcpy(buf, &seq, 8); }
static inline uint64_t get_seq(const char *buf) {
  uint64_t s;
  memcpy(&s, buf, 8);
  return s;
}

/* Reads exactly n bytes from a blocking fd (stream mechanisms); 0 at EOF. */
static int read_full(int fd, char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r == 0) return 0;
    if (r < 0) {
      if (errno == EINTR) continue;
      die("read");
    }
    got += (size_t)r;
  }
  return 1;
}

static void write_full(int fd, const char *buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = write(fd, buf + done, n - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    done += (size_t)w;
  }
}

#define LAST_SEQ UINT64_MAX

/*
 * Every program forks its peer with this: the child dies with its parent, so a reference
 * killed for overrunning its time limit (bench/harness.ts runC) leaves no spinning orphan.
 */
static inline pid_t bench_fork(void) {
  pid_t pid = (fork)();
  if (pid == 0) prctl(PR_SET_PDEATHSIG, SIGKILL);
  return pid;
}
#define fork() bench_fork()

#include <sched.h>

/*
 * Optional placement, from an argument "cpus=P,C": after fork, the parent pins itself to
 * CPU P and the child to CPU C. Without it the scheduler places them. Pinning the two to
 * different CPUs gives the usual scheduler-placed figure without its bimodality (a small C
 * pair is sometimes put on one CPU, where a round trip costs 2 us instead of 45-60 us).
 */
/* The "cpus=P,C" argument among the optional ones (argv[5...]), or NULL. */
static const char *find_place(int argc, char **argv) {
  for (int i = 5; i < argc; i++)
    if (strncmp(argv[i], "cpus=", 5) == 0) return argv[i];
  return NULL;
}

static void bench_place(const char *spec, int is_child) {
  int parent_cpu, child_cpu;
  if (!spec || sscanf(spec, "cpus=%d,%d", &parent_cpu, &child_cpu) != 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(is_child ? child_cpu : parent_cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

#endif
