/* SPDX-License-Identifier: MIT */
/* Helpers of the unit tests of obspamd_common (tests/daemons/common_*.c):
   a private temporary directory, files, and the log lines a test wrote. */
#ifndef OBSPAMD_COMMON_TEST_H
#define OBSPAMD_COMMON_TEST_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "util.h"

/* A new directory under /tmp for one test (each Criterion test runs in a
   process of its own), removed when the process exits: a failing
   assertion shows what the test saw (the log included). */
static char test_dir[128];

static inline void remove_test_dir(void) {
  char cmd[200];

  if (test_dir[0] == '\0')
    return;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", test_dir);
}

static inline const char *make_test_dir(void) {
  snprintf(test_dir, sizeof(test_dir), "/tmp/obspamd-test.XXXXXX");
  cr_assert_not_null(mkdtemp(test_dir), "mkdtemp: %s", strerror(errno));
  atexit(remove_test_dir);
  return test_dir;
}

/* A refusal of object (of kind) at its limit with count counted and
   retry_after retry, naming window: what the texts and the log lines of a
   refusal are made from. */
static inline obspam_verdict refused_verdict(int kind, const char *object,
                                             int64_t limit, int64_t count,
                                             int64_t retry, int window) {
  /* OBSPAM_VERDICT_INIT with the refusal's fields. */
  obspam_verdict v = {.struct_size = sizeof(obspam_verdict),
                      .action = OBSPAM_REFUSE,
                      .kind = kind,
                      .limit = limit,
                      .count = count,
                      .retry_after = retry,
                      .window = window};

  snprintf(v.object, sizeof(v.object), "%s", object);
  return v;
}

static inline char *path_in(const char *name) {
  static char buf[8][512];
  static int next;
  char *p = buf[next++ % 8];
  snprintf(p, 512, "%s/%s", test_dir, name);
  return p;
}

/* How many times what stands in text. */
static inline int count_in(const char *text, const char *what) {
  int n = 0;

  while ((text = strstr(text, what)) != NULL) {
    n++;
    text++;
  }
  return n;
}

static inline void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s: %s", path, strerror(errno));
  fputs(text, f);
  cr_assert_eq(fclose(f), 0);
}

/* The whole file, malloc'ed, or NULL when it cannot be read. */
static inline char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  char *buf;
  long n;

  if (f == NULL)
    return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  cr_assert_not_null(buf);
  buf[fread(buf, 1, (size_t)n, f)] = '\0';
  fclose(f);
  return buf;
}

/* Logging: the process's stderr goes to a file, whose lines are read back
   without their "TIME NAME[PID]: " prefix. */
static char log_path[512];

static inline void capture_log(void) {
  int fd;

  snprintf(log_path, sizeof(log_path), "%s/log", test_dir);
  fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  cr_assert_geq(fd, 0);
  cr_assert_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
  close(fd);
  obspamd_log_open("test", 1);
}

/* A new test directory (make_test_dir) whose file "log" gets the log. */
static inline void log_in_test_dir(void) {
  make_test_dir();
  capture_log();
}

/* The log so far, prefixes removed, one event per line. */
static inline char *logged(void) {
  char *raw = read_file(log_path), *out, *line, *next;
  size_t len = 0;

  cr_assert_not_null(raw);
  out = malloc(strlen(raw) + 1);
  cr_assert_not_null(out);
  for (line = raw; *line; line = next) {
    char *rest = strstr(line, "]: ");
    next = strchr(line, '\n');
    next = next ? next + 1 : line + strlen(line);
    if (rest == NULL || rest > next)
      rest = line;
    else
      rest += 3;
    memcpy(out + len, rest, (size_t)(next - rest));
    len += (size_t)(next - rest);
  }
  out[len] = '\0';
  free(raw);
  return out;
}

/* Whether the log holds this line (whole, without prefix). */
static inline int logged_line(const char *line) {
  char *log = logged(), *p = log;
  size_t n = strlen(line);
  int found = 0;

  while (p != NULL && *p) {
    if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0')) {
      found = 1;
      break;
    }
    p = strchr(p, '\n');
    if (p)
      p++;
  }
  free(log);
  return found;
}

/* Whether the log holds this text anywhere. */
static inline int logged_text(const char *text) {
  char *log = logged();
  int found = strstr(log, text) != NULL;
  free(log);
  return found;
}

#ifdef OBSPAMD_TEST_PEERCRED_FAULT
#include <sys/socket.h>

/* The suites that check what a daemon does when it cannot tell who its
   peer is are linked with -Wl,--wrap=getsockopt: while peercred_fault
   holds an errno, getsockopt(SO_PEERCRED) fails with it, in every thread
   (the control socket serves from one of its own). */
static int peercred_fault;

int __real_getsockopt(int fd, int level, int name, void *value, socklen_t *len);
int __wrap_getsockopt(int fd, int level, int name, void *value, socklen_t *len);
int __wrap_getsockopt(int fd, int level, int name, void *value,
                      socklen_t *len) {
  int fault = __atomic_load_n(&peercred_fault, __ATOMIC_SEQ_CST);

  if (fault != 0 && level == SOL_SOCKET && name == SO_PEERCRED) {
    errno = fault;
    return -1;
  }
  return __real_getsockopt(fd, level, name, value, len);
}

static inline void peercred_fail(int err) {
  __atomic_store_n(&peercred_fault, err, __ATOMIC_SEQ_CST);
}
#endif

/* Waits up to ms milliseconds for cond to hold. */
#define WAIT_FOR(cond, ms)                                                     \
  do {                                                                         \
    int64_t until_ = obspamd_now_ms() + (ms);                                  \
    while (!(cond) && obspamd_now_ms() < until_)                               \
      usleep(10000);                                                           \
  } while (0)

#endif
