/*
 * ipckit-exec PARENT_PID PATH ARGV0 [ARGS...]
 * ipckit-exec --group PARENT_PID PATH ARGV0 [ARGS...]
 *
 * Started by ipckit in place of a child program, so that the child dies with its parent.
 *
 * Plain form: asks the kernel to SIGKILL us when our parent dies (PR_SET_PDEATHSIG
 * survives execve), closes the race where the parent died before the prctl, then becomes
 * PATH with execv, argv = ARGV0 ARGS... (same pid, so the parent's reaping and exit status
 * are those of the program). Only that process is covered: children it starts itself are
 * its own business.
 *
 * --group (used for shell commands, whose work runs in the shell's children): we stay as a
 * small supervisor and lead a new process group (pgid = our pid) in which PATH runs.
 * Signals sent to us (TERM, INT, HUP, QUIT, USR1, USR2) are forwarded to the whole group;
 * when our parent dies the whole group gets SIGKILL; when PATH exits we exit the same way
 * (same code, or the same signal), so the parent sees the program's status. To SIGKILL
 * everything at once, kill the group: kill(-pid, SIGKILL).
 *
 * PATH is resolved by the caller: no shell, no PATH search here. Exit 127 with a message
 * on stderr if exec fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
#define NFORWARDED (sizeof forwarded / sizeof forwarded[0])

static int parent_gone_signal(void) { return SIGRTMIN + 2; }

static void die_with_parent(pid_t expected_parent, int sig) {
  if (prctl(PR_SET_PDEATHSIG, sig) != 0) {
    fprintf(stderr, "ipckit-exec: prctl(PR_SET_PDEATHSIG): %s\n", strerror(errno));
    _exit(127);
  }
  /* The parent may have died between fork and prctl: then we were reparented. */
  if (getppid() != expected_parent) {
    if (sig == SIGKILL) raise(SIGKILL);
    else kill(getpid(), sig);
  }
}

static void exec_or_die(char **argv) {
  execv(argv[0], argv + 1);
  fprintf(stderr, "ipckit-exec: cannot execute %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

static void forward(int sig, siginfo_t *info, void *context) {
  (void)context;
  /* Our own kill(0, sig) reaches us too: only signals from others are forwarded. */
  if (info->si_pid == getpid()) return;
  kill(0, sig);
}

static void parent_gone(int sig) {
  (void)sig;
  kill(0, SIGKILL);
  _exit(128 + SIGKILL);
}

static int supervise(pid_t expected_parent, char **argv) {
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  setpgid(0, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = forward;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  for (size_t i = 0; i < NFORWARDED; i++) sigaction(forwarded[i], &sa, NULL);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = parent_gone;
  sigfillset(&sa.sa_mask);
  sigaction(parent_gone_signal(), &sa, NULL);
  die_with_parent(expected_parent, parent_gone_signal());

  pid_t supervisor = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "ipckit-exec: fork: %s\n", strerror(errno));
    return 127;
  }
  if (pid == 0) {
    /* If the supervisor is SIGKILLed itself, the program goes too. */
    die_with_parent(supervisor, SIGKILL);
    for (size_t i = 0; i < NFORWARDED; i++) signal(forwarded[i], SIG_DFL);
    signal(parent_gone_signal(), SIG_DFL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    exec_or_die(argv);
  }
  sigprocmask(SIG_SETMASK, &old, NULL);

  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 127;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  /* Die of the same signal, without a core file of our own. */
  int sig = WTERMSIG(status);
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  sigprocmask(SIG_UNBLOCK, &one, NULL);
  raise(sig);
  return 128 + sig;
}

int main(int argc, char **argv) {
  int grouped = argc > 1 && strcmp(argv[1], "--group") == 0;
  if (grouped) {
    argv++;
    argc--;
  }
  if (argc < 4) {
    fprintf(stderr, "usage: ipckit-exec [--group] PARENT_PID PATH ARGV0 [ARGS...]\n");
    return 127;
  }
  pid_t expected_parent = (pid_t)strtol(argv[1], NULL, 10);
  /* argv + 2 = PATH ARGV0 ARGS... (exec_or_die takes PATH then the program's argv). */
  if (grouped) return supervise(expected_parent, argv + 2);
  die_with_parent(expected_parent, SIGKILL);
  exec_or_die(argv + 2);
  return 127;
}
