/*
 * ipckit-exec PARENT_PID PATH ARGV0 [ARGS...]
 *
 * Started by ipckit in place of a child program: it asks the kernel to SIGKILL it when
 * its parent dies (PR_SET_PDEATHSIG survives execve), closes the race where the parent
 * died before the prctl, then becomes PATH with execv, argv = ARGV0 ARGS... (same pid, so
 * the parent's reaping and exit status are those of the program). PATH is resolved by
 * the caller: no shell, no PATH search here. Exit 127 with a message on stderr if exec
 * fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: ipckit-exec PARENT_PID PATH ARGV0 [ARGS...]\n");
    return 127;
  }
  pid_t expected_parent = (pid_t)strtol(argv[1], NULL, 10);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    fprintf(stderr, "ipckit-exec: prctl(PR_SET_PDEATHSIG): %s\n", strerror(errno));
    return 127;
  }
  /* The parent may have died between fork and prctl: then we were reparented. */
  if (getppid() != expected_parent) raise(SIGKILL);
  execv(argv[2], argv + 3);
  fprintf(stderr, "ipckit-exec: cannot execute %s: %s\n", argv[2], strerror(errno));
  return 127;
}
