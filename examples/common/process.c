/* Starting a daemon: absolute paths, and detaching from the terminal with
   the starter waiting for the daemon to be ready. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"

char *obspamd_absolute(const char *prefix, const char *spec) {
  char cwd[PATH_MAX], *out;
  const char *path = spec + strlen(prefix);
  size_t n;

  if (strncmp(spec, prefix, strlen(prefix)) != 0 || path[0] == '/' ||
      getcwd(cwd, sizeof(cwd)) == NULL)
    return strdup(spec);
  n = strlen(prefix) + strlen(cwd) + strlen(path) + 2;
  out = malloc(n);
  if (out != NULL)
    snprintf(out, n, "%s%s/%s", prefix, cwd, path);
  return out;
}

int obspamd_detach(const char *program) {
  int p[2];
  pid_t pid;

  if (pipe(p) != 0) {
    fprintf(stderr, "%s: pipe: %s\n", program, strerror(errno));
    exit(1);
  }
  pid = fork();
  if (pid < 0) {
    fprintf(stderr, "%s: fork: %s\n", program, strerror(errno));
    exit(1);
  }
  if (pid > 0) {
    char b;
    ssize_t n;

    close(p[1]);
    waitpid(pid, NULL, 0);
    do
      n = read(p[0], &b, 1);
    while (n < 0 && errno == EINTR);
    _exit(n == 1 ? 0 : 1);
  }
  close(p[0]);
  setsid();
  pid = fork();
  if (pid < 0) {
    fprintf(stderr, "%s: fork: %s\n", program, strerror(errno));
    _exit(1);
  }
  if (pid > 0)
    _exit(0);
  fcntl(p[1], F_SETFD, FD_CLOEXEC);
  return p[1];
}

void obspamd_detached(int ready_fd) {
  int null = open("/dev/null", O_RDWR);

  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO)
      close(null);
  }
  if (chdir("/") != 0) {
    /* "/" always exists; nothing to do. */
  }
  if (write(ready_fd, "", 1) != 1) {
    /* The starter is gone; the daemon runs on. */
  }
  close(ready_fd);
}
