/*
 * Shared by the C reference programs: timing, percentiles, the one-line JSON result.
 * Every program takes: lat|thr SIZE MAX_MSGS MAX_SECONDS, forks one child, and prints
 *   lat: {"p50_us":..,"p99_us":..,"n":..}        (per round trip, after the warm-up)
 *   thr: {"msgs_per_sec":..,"mb_per_sec":..,"n":..}  (one message per write/send call;
 *        the byte streams add "sender_cpu_us": CPU the sending process used per message)
 * With IPCKIT_BENCH_WARM set (by the bench), both add "warmup_s" and "steady" (lat_meter,
 * rate_meter below).
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

/*
 * Round-trip samples with the warm-up every figure of the bench gets (bench/stats.ts,
 * Steady): with IPCKIT_BENCH_WARM="WINDOW_S,TOLERANCE,CAP_S" (bench/harness.ts runC sets it
 * from the run's budget), windows of WINDOW_S seconds until the median round trip of two
 * successive windows agrees within TOLERANCE, or CAP_S seconds have passed; then the
 * measured part (MAX_SECONDS or MAX_MSGS, whichever ends first). A cross-CPU wake-up round
 * trip speeds up or slows down over its first ~0.1 s on some VMs, so a fixed number of
 * dropped samples left a short run measuring the ramp. Without the variable (a run by
 * hand), the first samples are dropped instead (print_latency).
 */
typedef struct {
  bench_args a;
  uint64_t *samples;
  long n;
  int timed, warming, have_last, steady;
  double window_s, tolerance, cap_s, last, warm_s;
  uint64_t start, window_start, measure_end;
  uint64_t *window;
  long window_n, window_max;
} lat_meter;

static lat_meter lat_meter_start(bench_args a) {
  lat_meter m;
  memset(&m, 0, sizeof m);
  m.a = a;
  m.samples = malloc(sizeof(uint64_t) * (size_t)(a.max_msgs > 0 ? a.max_msgs : 1));
  if (!m.samples) die("malloc");
  const char *w = getenv("IPCKIT_BENCH_WARM");
  if (w && sscanf(w, "%lf,%lf,%lf", &m.window_s, &m.tolerance, &m.cap_s) == 3 && m.window_s > 0) {
    m.timed = m.warming = 1;
    m.window_max = 1L << 20; /* a window's median is taken over its first 1M round trips */
    m.window = malloc(sizeof(uint64_t) * (size_t)m.window_max);
    if (!m.window) die("malloc");
  }
  m.start = m.window_start = now_ns();
  m.measure_end = m.start + (uint64_t)(a.max_seconds * 1e9);
  return m;
}

static double median_of(uint64_t *v, long n) {
  qsort(v, (size_t)n, sizeof *v, cmp_u64);
  return n ? (double)v[n / 2] : 0;
}

/* Records one round trip (ns); 1 when the figure has all it needs. */
static int lat_meter_add(lat_meter *m, uint64_t ns) {
  uint64_t t = now_ns();
  if (m->warming) {
    if (m->window_n < m->window_max) m->window[m->window_n++] = ns;
    if ((t - m->window_start) / 1e9 < m->window_s) return 0;
    double v = median_of(m->window, m->window_n), elapsed = (t - m->start) / 1e9;
    m->window_n = 0;
    m->window_start = t;
    double big = v > m->last ? v : m->last, diff = v > m->last ? v - m->last : m->last - v;
    int agree = m->have_last && diff <= m->tolerance * big;
    m->last = v;
    m->have_last = 1;
    if (agree || elapsed >= m->cap_s) {
      m->steady = agree;
      m->warming = 0;
      m->warm_s = elapsed;
      m->measure_end = t + (uint64_t)(m->a.max_seconds * 1e9);
    }
    return 0;
  }
  m->samples[m->n++] = ns;
  return m->n >= m->a.max_msgs || t > m->measure_end;
}

static void lat_meter_print(lat_meter *m) {
  if (!m->timed) {
    print_latency(m->samples, m->n);
    return;
  }
  qsort(m->samples, (size_t)m->n, sizeof *m->samples, cmp_u64);
  double p50 = m->n ? m->samples[m->n / 2] / 1000.0 : 0, p99 = m->n ? m->samples[(long)(m->n * 0.99)] / 1000.0 : 0;
  printf("{\"p50_us\":%.3f,\"p99_us\":%.3f,\"n\":%ld,\"warmup_s\":%.3f,\"steady\":%d}\n", p50, p99, m->n, m->warm_s, m->steady);
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

/*
 * A one-way run's clock, with the same warm-up (IPCKIT_BENCH_WARM; without it, measured from
 * the first message): the sender calls rate_meter_tick(&m, sent) every 256 messages; windows
 * of the send rate until two agree, then the measured part. After the receiver's
 * acknowledgement, rate_meter_print reports the measured part's messages over its time
 * (bench/harness.ts RateMeter does the same for ours).
 */
typedef struct {
  bench_args a;
  int warming, steady, have_last;
  double window_s, tolerance, cap_s, last, warm_s, cpu0;
  uint64_t start, window_start, measure_start;
  long window_count, measure_count;
} rate_meter;

static rate_meter rate_meter_start(bench_args a) {
  rate_meter m;
  memset(&m, 0, sizeof m);
  m.a = a;
  const char *w = getenv("IPCKIT_BENCH_WARM");
  if (w && sscanf(w, "%lf,%lf,%lf", &m.window_s, &m.tolerance, &m.cap_s) == 3 && m.window_s > 0) m.warming = 1;
  m.start = m.window_start = m.measure_start = now_ns();
  m.cpu0 = cpu_us();
  return m;
}

/* `sent`: messages sent so far. 1 when the sender should stop. */
static int rate_meter_tick(rate_meter *m, long sent) {
  uint64_t t = now_ns();
  if (m->warming) {
    double dt = (t - m->window_start) / 1e9;
    if (dt < m->window_s) return 0;
    double v = (sent - m->window_count) / dt, elapsed = (t - m->start) / 1e9;
    double big = v > m->last ? v : m->last, diff = v > m->last ? v - m->last : m->last - v;
    int agree = m->have_last && diff <= m->tolerance * big;
    m->last = v;
    m->have_last = 1;
    m->window_start = t;
    m->window_count = sent;
    if (agree || elapsed >= m->cap_s) {
      m->steady = agree;
      m->warming = 0;
      m->warm_s = elapsed;
      m->measure_start = t;
      m->measure_count = sent;
      m->cpu0 = cpu_us();
    }
    return 0;
  }
  return sent - m->measure_count >= m->a.max_msgs || (t - m->measure_start) / 1e9 >= m->a.max_seconds;
}

/* After the receiver acknowledged all `sent` messages at `end`; `with_cpu`: add the sender's CPU per message. */
static void rate_meter_print(rate_meter *m, long sent, uint64_t end, int with_cpu) {
  long msgs = sent - m->measure_count;
  double secs = (end - m->measure_start) / 1e9, rate = secs > 0 ? msgs / secs : 0;
  printf("{\"msgs_per_sec\":%.0f,\"mb_per_sec\":%.1f,\"n\":%ld", rate, rate * m->a.size / 1e6, msgs);
  if (with_cpu) printf(",\"sender_cpu_us\":%.3f", msgs ? (cpu_us() - m->cpu0) / msgs : 0);
  if (getenv("IPCKIT_BENCH_WARM")) printf(",\"warmup_s\":%.3f,\"steady\":%d", m->warm_s, m->steady);
  printf("}\n");
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
