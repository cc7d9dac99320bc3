/*
 * Shared by the C reference programs: timing, percentiles, the one-line JSON result.
 * Every program takes: lat|thr SIZE MAX_MSGS MAX_SECONDS [its own arguments] [cpus=P,C]
 * (find_place, bench_place below), forks one child, and prints
 *   lat: {"p50_us":..,"p99_us":..,"n":..}        (per round trip, after the warm-up)
 *   thr: {"msgs_per_sec":..,"mb_per_sec":..,"n":..}  (one message per write/send call;
 *        "timing":"receiver" when the receiver's clock timed it (delivery_clock below);
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
#include <sys/socket.h>
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
  const char *place; /* "cpus=P,C" among the optional arguments, or NULL (find_place) */
} bench_args;

/*
 * The caller gets SIGKILL when its parent dies. Returns 0 if its parent is no longer
 * `parent` (it died before the prctl and we were reparented): the caller must exit at once.
 */
static int die_with(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  return getppid() == parent;
}

/*
 * A reference dies with the bench process that started it (bench/harness.ts runCJson, which
 * gives its pid in IPCKIT_BENCH_PARENT): killed, that process could not end it, and it would
 * run to its own end beside the next round's measurements.
 */
static void die_with_parent(void) {
  const char *parent = getenv("IPCKIT_BENCH_PARENT");
  if (!parent) return; /* run by hand */
  if (!die_with((pid_t)atol(parent))) {
    fprintf(stderr, "the bench process that ran this reference (%s) is gone\n", parent);
    exit(3);
  }
}

static const char *find_place(int argc, char **argv);

static bench_args parse_args(int argc, char **argv) {
  die_with_parent();
  if (argc < 5) {
    fprintf(stderr, "usage: %s lat|thr SIZE MAX_MSGS MAX_SECONDS [...] [cpus=P,C]\n", argv[0]);
    exit(2);
  }
  bench_args a;
  a.place = find_place(argc, argv); /* before fork: a placement it refuses is refused once */
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
 * The warm-up every figure of the bench gets (bench/stats.ts, Steady), shared by lat_meter and
 * rate_meter: with IPCKIT_BENCH_WARM="WINDOW_S,TOLERANCE,CAP_S" (bench/harness.ts runC sets it
 * from the run's budget), windows of WINDOW_S seconds until the values of two successive
 * windows agree within TOLERANCE, or CAP_S seconds have passed. A cross-CPU wake-up round
 * trip speeds up or slows down over its first ~0.1 s on some VMs, so a fixed number of
 * dropped samples left a short run measuring the ramp. Without the variable (a run by hand)
 * there is no warm-up: a round trip drops its first samples (print_latency), a one-way run
 * counts from its first message.
 */
typedef struct {
  int timed, warming, have_last, steady;
  double window_s, tolerance, cap_s, last, warm_s;
  uint64_t start, window_start;
} warm_up;

static warm_up warm_up_start(void) {
  warm_up w;
  memset(&w, 0, sizeof w);
  const char *env = getenv("IPCKIT_BENCH_WARM");
  if (env && sscanf(env, "%lf,%lf,%lf", &w.window_s, &w.tolerance, &w.cap_s) == 3 && w.window_s > 0) w.timed = w.warming = 1;
  w.start = w.window_start = now_ns();
  return w;
}

/* A window ended at `t` with `value`: 1 when the warm-up is over (steady, or at its cap). */
static int warm_up_window(warm_up *w, double value, uint64_t t) {
  double elapsed = (t - w->start) / 1e9;
  double big = value > w->last ? value : w->last, diff = value > w->last ? value - w->last : w->last - value;
  int agree = w->have_last && diff <= w->tolerance * big;
  w->last = value;
  w->have_last = 1;
  w->window_start = t;
  if (!agree && elapsed < w->cap_s) return 0;
  w->steady = agree;
  w->warming = 0;
  w->warm_s = elapsed;
  return 1;
}

static void warm_up_print(const warm_up *w) {
  if (w->timed) printf(",\"warmup_s\":%.3f,\"steady\":%d", w->warm_s, w->steady);
}

/*
 * Round-trip samples: the warm-up (warm_up), then the measured part (MAX_SECONDS or MAX_MSGS,
 * whichever ends first). A window's value is its median round trip.
 */
typedef struct {
  bench_args a;
  warm_up w;
  uint64_t *samples, *window;
  long n, window_n, window_max;
  uint64_t measure_end;
} lat_meter;

static lat_meter lat_meter_start(bench_args a) {
  lat_meter m;
  memset(&m, 0, sizeof m);
  m.a = a;
  m.samples = malloc(sizeof(uint64_t) * (size_t)(a.max_msgs > 0 ? a.max_msgs : 1));
  if (!m.samples) die("malloc");
  m.w = warm_up_start();
  if (m.w.timed) {
    m.window_max = 1L << 20; /* a window's median is taken over its first 1M round trips */
    m.window = malloc(sizeof(uint64_t) * (size_t)m.window_max);
    if (!m.window) die("malloc");
  }
  m.measure_end = m.w.start + (uint64_t)(a.max_seconds * 1e9);
  return m;
}

/* Records one round trip, from t0 to t1 (now_ns); 1 when the figure has all it needs. */
static int lat_meter_add(lat_meter *m, uint64_t t0, uint64_t t1) {
  uint64_t ns = t1 - t0, t = t1; /* t1 is now: no second clock read between round trips */
  if (m->w.warming) {
    if (m->window_n < m->window_max) m->window[m->window_n++] = ns;
    if ((t - m->w.window_start) / 1e9 < m->w.window_s) return 0;
    qsort(m->window, (size_t)m->window_n, sizeof *m->window, cmp_u64);
    double median = (double)m->window[m->window_n / 2];
    m->window_n = 0;
    t = now_ns(); /* the sort is the warm-up's, not the next window's or the measured part's */
    if (warm_up_window(&m->w, median, t)) m->measure_end = t + (uint64_t)(m->a.max_seconds * 1e9);
    return 0;
  }
  m->samples[m->n++] = ns;
  return m->n >= m->a.max_msgs || t > m->measure_end;
}

/* p50/p99 of the measured part (with no warm-up: print_latency, which drops the first samples). */
static void lat_meter_print(lat_meter *m) {
  if (!m->w.timed) {
    print_latency(m->samples, m->n);
    return;
  }
  qsort(m->samples, (size_t)m->n, sizeof *m->samples, cmp_u64);
  double p50 = m->n ? m->samples[m->n / 2] / 1000.0 : 0, p99 = m->n ? m->samples[(long)(m->n * 0.99)] / 1000.0 : 0;
  printf("{\"p50_us\":%.3f,\"p99_us\":%.3f,\"n\":%ld", p50, p99, m->n);
  warm_up_print(&m->w);
  printf("}\n");
}

/* CPU time (user + system) this process has used, in microseconds (its children not counted). */
static inline double cpu_us(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

/*
 * A one-way run's clock: the warm-up (warm_up; a window's value is its send rate), then the
 * measured part. The sender calls rate_meter_tick(&m, sent) every 256 messages; after the
 * receiver's acknowledgement, rate_meter_print reports the measured part's messages over the
 * receiver's time for them (delivery_clock below) or, without it, over the sender's time
 * up to the acknowledgement (bench/harness.ts RateMeter does the same for ours).
 */
typedef struct {
  bench_args a;
  warm_up w;
  double cpu0;
  uint64_t measure_start;
  long window_count, measure_count;
} rate_meter;

static inline rate_meter rate_meter_start(bench_args a) {
  rate_meter m;
  memset(&m, 0, sizeof m);
  m.a = a;
  m.w = warm_up_start();
  m.measure_start = m.w.start;
  m.cpu0 = cpu_us();
  return m;
}

/* `sent`: messages sent so far. 1 when the sender should stop. */
static inline int rate_meter_tick(rate_meter *m, long sent) {
  uint64_t t = now_ns();
  if (m->w.warming) {
    double dt = (t - m->w.window_start) / 1e9;
    if (dt < m->w.window_s) return 0;
    double rate = (sent - m->window_count) / dt;
    m->window_count = sent;
    if (warm_up_window(&m->w, rate, t)) {
      m->measure_start = t;
      m->measure_count = sent;
      m->cpu0 = cpu_us();
    }
    return 0;
  }
  return sent - m->measure_count >= m->a.max_msgs || (t - m->measure_start) / 1e9 >= m->a.max_seconds;
}

static inline void put_seq(char *buf, uint64_t seq) { memcpy(buf, &seq, 8); }
static inline uint64_t get_seq(const char *buf) {
  uint64_t s;
  memcpy(&s, buf, 8);
  return s;
}

/*
 * Delivered-rate timing, as ours (bench/harness.ts DeliveryClock says why: a sender's clock
 * that runs until the acknowledgement also counts the draining of a backlog it does not
 * count, tens of milliseconds in a loopback TCP connection's buffers). The sender writes
 * each message's sequence number with rate_meter_stamp, which gives the measured part's
 * first message CLOCK_MARK | n; the receiver, whose sequence check fails on it, calls
 * delivery_mark, and at the end marker acknowledges with delivery_reading: its count and
 * the measured part as its clock saw it.
 */
#define CLOCK_MARK (1ULL << 62)

typedef struct {
  long count;     /* messages the receiver counted in all */
  long delivered; /* of them, from the marked one to the end (-1: no mark came) */
  uint64_t ns;    /* the receiver's time from the marked message to the end marker */
} delivery_ack;

typedef struct {
  long start_count;
  uint64_t start;
} delivery_clock;

static inline delivery_clock delivery_clock_start(void) { return (delivery_clock){.start_count = -1}; }

/* A sequence number `s` that was not `count`, the expected one: 1 if it marks the measured part's first message (the clock starts). */
static inline int delivery_mark(delivery_clock *c, uint64_t s, long count) {
  if (s != (CLOCK_MARK | (uint64_t)count) || c->start_count >= 0) return 0;
  c->start_count = count;
  c->start = now_ns();
  return 1;
}

static inline delivery_ack delivery_reading(const delivery_clock *c, long count) {
  if (c->start_count < 0) return (delivery_ack){.count = count, .delivered = -1, .ns = 0};
  return (delivery_ack){.count = count, .delivered = count - c->start_count, .ns = now_ns() - c->start};
}

/* Writes message `n`'s sequence number into `buf`, marked on the measured part's first message. */
static inline void rate_meter_stamp(const rate_meter *m, char *buf, long n) {
  put_seq(buf, (uint64_t)n | (!m->w.warming && n == m->measure_count ? CLOCK_MARK : 0));
}

/*
 * After the receiver acknowledged all `sent` messages (`ack`) at `end`: the measured part's
 * rate, by the receiver's clock when it timed exactly the measured part; `with_cpu`: add the
 * sender's CPU per message.
 */
static inline void rate_meter_print(rate_meter *m, long sent, uint64_t end, const delivery_ack *ack, int with_cpu) {
  long msgs = sent - m->measure_count;
  int by_receiver = ack && !m->w.warming && ack->delivered == msgs && ack->ns > 0;
  double secs = by_receiver ? ack->ns / 1e9 : (end - m->measure_start) / 1e9, rate = secs > 0 ? msgs / secs : 0;
  printf("{\"msgs_per_sec\":%.0f,\"mb_per_sec\":%.1f,\"n\":%ld", rate, rate * m->a.size / 1e6, msgs);
  if (by_receiver) printf(",\"timing\":\"receiver\"");
  if (with_cpu) printf(",\"sender_cpu_us\":%.3f", msgs ? (cpu_us() - m->cpu0) / msgs : 0);
  warm_up_print(&m->w);
  printf("}\n");
}

/* Reads exactly n bytes from a blocking fd (stream mechanisms); 0 at EOF. */
static inline int read_full(int fd, char *buf, size_t n) {
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

/* Asks for a send buffer of `want` bytes (the kernel doubles what is asked, and getsockopt
 * reports the doubled size), unless the buffer is already that large: never lowers it, as
 * ipckit's sockets never do. Set to 2 x 64 B + 4 KiB outright, the seqpacket reference's
 * buffer held about 10 small messages (the default, 208 KiB here, holds hundreds), and its
 * one-way rate settled at 0.19M or 0.5-0.7M msg/s by chance: the sender blocked every few. */
static inline void raise_sndbuf(int fd, int want) {
  int have = 0;
  socklen_t len = sizeof have;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len) == 0 && have >= 2 * want) return;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
}

static inline void write_full(int fd, const char *buf, size_t n) {
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
  pid_t parent = getpid();
  pid_t pid = (fork)();
  if (pid == 0 && !die_with(parent)) _exit(1);
  return pid;
}
#define fork() bench_fork()

#include <sched.h>

/*
 * The "cpus=P,C" argument among the optional ones (argv[5...]), or NULL. A bare "P,C" (what
 * the queue, semaphore and mutex references took before 2026-12-06) is refused, not run
 * unpinned.
 */
static const char *find_place(int argc, char **argv) {
  for (int i = 5; i < argc; i++) {
    int p, c, end = 0;
    if (strncmp(argv[i], "cpus=", 5) == 0) return argv[i];
    if (sscanf(argv[i], "%d,%d%n", &p, &c, &end) == 2 && argv[i][end] == '\0') {
      fprintf(stderr, "%s: CPUs are given as cpus=%s\n", argv[0], argv[i]);
      exit(2);
    }
  }
  return NULL;
}

/*
 * Optional placement, from an argument "cpus=P,C": after fork, the parent pins itself to
 * CPU P and the child to CPU C. Without it the scheduler places them, and a blocking pair
 * sometimes shares one CPU: a round trip then costs 2 us instead of 45-60 us, and a queue's
 * one-way rate falls (bench/placement.ts cPlacement). Every reference takes it
 * (bench/placement.ts Placement.cArgs).
 */
static void bench_place(const char *spec, int is_child) {
  int parent_cpu, child_cpu;
  if (!spec || sscanf(spec, "cpus=%d,%d", &parent_cpu, &child_cpu) != 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(is_child ? child_cpu : parent_cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

#endif
