/* SPDX-License-Identifier: MIT */
/* Starting a daemon: absolute paths, and detaching from the terminal with
   the starter waiting for the daemon to be ready. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "obspam.h"
#include "options.h"
#include "refusal.h"
#include "sockets.h"

long obspamd_number(const char *program, const char *opt, const char *s,
                    long min, long max, int base) {
  char *end;
  long v;

  errno = 0;
  v = strtol(s, &end, base);
  if (s[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
    fprintf(stderr, "%s: %s: bad value '%s': expected %s %ld..%ld\n", program,
            opt, s, base == 8 ? "an octal mode" : "a number", min, max);
    return -1;
  }
  return v;
}

int obspamd_spec_check(const char *program, const char *opt, const char *spec) {
  obspamd_spec sp;
  char err[400];

  if (obspamd_spec_parse(spec, &sp, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: %s: %s\n", program, opt, err);
    return -1;
  }
  return 0;
}

/* --user USER[:GROUP]: both must exist now, so that --check-config and a
   start that fails late (after the sockets are open) say so at once. */
static int user_option(const char *program, const char *arg,
                       obspamd_options *o) {
  const char *colon = strchr(arg, ':');
  struct passwd *pw;
  char name[256];

  snprintf(name, sizeof(name), "%.*s",
           (int)(colon != NULL ? colon - arg : (ptrdiff_t)strlen(arg)), arg);
  if (name[0] == '\0' || (colon != NULL && colon[1] == '\0')) {
    fprintf(stderr, "%s: --user: bad value '%s': expected USER or USER:GROUP\n",
            program, arg);
    return -1;
  }
  if ((pw = getpwnam(name)) == NULL) {
    fprintf(stderr, "%s: --user: no such user '%s'\n", program, name);
    return -1;
  }
  o->user_uid = (long)pw->pw_uid;
  if (colon != NULL && getgrnam(colon + 1) == NULL) {
    fprintf(stderr, "%s: --user: no such group '%s'\n", program, colon + 1);
    return -1;
  }
  o->user = arg;
  return 1;
}

/* --allow-user USER: a name, or a uid for a user without one. */
static int allow_option(const char *program, const char *arg,
                        obspamd_options *o) {
  struct passwd *pw = getpwnam(arg);
  char *end;
  long uid;

  if (pw != NULL) {
    uid = (long)pw->pw_uid;
  } else {
    errno = 0;
    uid = strtol(arg, &end, 10);
    if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 ||
        uid > 4294967294L) {
      fprintf(stderr, "%s: --allow-user: no such user '%s'\n", program, arg);
      return -1;
    }
  }
  if (o->nallow == OBSPAMD_MAX_ALLOW) {
    fprintf(stderr, "%s: --allow-user: at most %d users\n", program,
            OBSPAMD_MAX_ALLOW);
    return -1;
  }
  o->allow[o->nallow++] = uid;
  return 1;
}

static void options_init(obspamd_options *o) {
  memset(o, 0, sizeof(*o));
  o->save_interval = OBSPAMD_SAVE_INTERVAL;
  o->socket_mode = OBSPAMD_SOCKET_MODE;
  o->log = OBSPAMD_LOG_AUTO;
  o->user_uid = -1;
  o->refusal_log_interval = OBSPAMD_REFUSAL_LOG_INTERVAL;
}

int obspamd_spec_option(const char *program, const char *opt, const char *spec,
                        int forms) {
  static const char *const expected[] = {
      [OBSPAMD_SPEC_UNIX] = "unix:PATH",
      [OBSPAMD_SPEC_INET] = "inet:HOST:PORT",
      [OBSPAMD_SPEC_UNIX | OBSPAMD_SPEC_INET] = "unix:PATH or inet:HOST:PORT"};

  if (!((forms & OBSPAMD_SPEC_UNIX) && strncmp(spec, "unix:", 5) == 0) &&
      !((forms & OBSPAMD_SPEC_INET) && strncmp(spec, "inet:", 5) == 0)) {
    fprintf(stderr, "%s: %s: bad value '%s': expected %s\n", program, opt, spec,
            expected[forms]);
    return -1;
  }
  return obspamd_spec_check(program, opt, spec);
}

/* The shared options that take a number, and the field each sets. */
static const struct {
  int opt;
  const char *name;
  long min, max;
  int base;
  size_t field; /* of an int in obspamd_options */
} numbers[] = {
    {OBSPAMD_OPT_SAVE_INTERVAL, "--save-interval", 0, 86400, 10,
     offsetof(obspamd_options, save_interval)},
    {OBSPAMD_OPT_MODE, "--socket-mode", 0, 0777, 8,
     offsetof(obspamd_options, socket_mode)},
    {OBSPAMD_OPT_RELOAD_MAX_DROP, "--reload-max-drop", 1, 100, 10,
     offsetof(obspamd_options, reload_max_drop)},
    {OBSPAMD_OPT_REFUSAL_LOG_INTERVAL, "--refusal-log-interval", 0, 3600, 10,
     offsetof(obspamd_options, refusal_log_interval)},
};

/* One of the shared options: 1, 0 when opt is none of them, -1. */
static int shared_option(const char *program, int opt, const char *arg,
                         obspamd_options *o) {
  size_t i;
  long v;

  for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
    if (numbers[i].opt == opt) {
      v = obspamd_number(program, numbers[i].name, arg, numbers[i].min,
                         numbers[i].max, numbers[i].base);
      if (v < 0)
        return -1;
      *(int *)(void *)((char *)o + numbers[i].field) = (int)v;
      return 1;
    }
  switch (opt) {
  case OBSPAMD_OPT_CONFIG:
    o->config = arg;
    return 1;
  case OBSPAMD_OPT_STATE:
    o->state = arg;
    return 1;
  case OBSPAMD_OPT_CONTROL:
    if (obspamd_spec_option(program, "--control", arg, OBSPAMD_SPEC_UNIX) != 0)
      return -1;
    o->control = arg;
    return 1;
  case OBSPAMD_OPT_METRICS:
    if (obspamd_spec_option(program, "--metrics", arg, OBSPAMD_SPEC_INET) != 0)
      return -1;
    o->metrics = arg;
    return 1;
  case OBSPAMD_OPT_ADMIN:
    /* Empty means none, so that a service file can always pass it. */
    if (arg[0] != '\0' && strchr(arg, '@') == NULL) {
      fprintf(stderr, "%s: --admin: bad value '%s': expected an address\n",
              program, arg);
      return -1;
    }
    o->admin = arg[0] != '\0' ? arg : NULL;
    return 1;
  case OBSPAMD_OPT_NOTIFY:
    o->notify_command = arg[0] != '\0' ? arg : NULL;
    return 1;
  case OBSPAMD_OPT_FOREGROUND:
    o->foreground = 1;
    return 1;
  case OBSPAMD_OPT_CHECK:
    o->check_config = 1;
    return 1;
  case OBSPAMD_OPT_JOURNAL_FSYNC:
    o->journal_fsync = 1;
    return 1;
  case OBSPAMD_OPT_USER:
    return user_option(program, arg, o);
  case OBSPAMD_OPT_ALLOW_USER:
    return allow_option(program, arg, o);
  case OBSPAMD_OPT_LOG:
    if (strcmp(arg, "stderr") == 0)
      o->log = OBSPAMD_LOG_STDERR;
    else if (strcmp(arg, "syslog") == 0)
      o->log = OBSPAMD_LOG_SYSLOG;
    else if (strcmp(arg, "journal") == 0)
      o->log = OBSPAMD_LOG_JOURNAL;
    else {
      fprintf(stderr,
              "%s: --log: bad value '%s': expected stderr, syslog or "
              "journal\n",
              program, arg);
      return -1;
    }
    return 1;
  default:
    return 0;
  }
}

/* What getopt_long returned that is no daemon's own option: one of the
   shared options into o, or an option that is unknown or lacks (or has)
   a value. Returns 0, or -1 after saying on stderr what is wrong. */
static int option(const char *program, int opt, char **argv,
                  obspamd_options *o) {
  int rc = shared_option(program, opt, optarg, o);

  if (rc != 0)
    return rc > 0 ? 0 : -1;
  if (optopt != 0)
    fprintf(stderr, "%s: option '%s' %s\n", program, argv[optind - 1],
            strchr(argv[optind - 1], '=') != NULL ? "takes no value"
                                                  : "needs a value");
  else
    fprintf(stderr, "%s: unknown option '%s'\n", program, argv[optind - 1]);
  fprintf(stderr, "Try '%s --help'.\n", program);
  return -1;
}

/* After getopt_long: refuses arguments left over and a missing --config.
   Returns 0, or -1 after saying why on stderr. */
static int options_done(const char *program, int argc, char **argv,
                        const obspamd_options *o) {
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument '%s'\nTry '%s --help'.\n", program,
            argv[optind], program);
    return -1;
  }
  if (o->config == NULL) {
    fprintf(stderr, "%s: --config FILE is required\nTry '%s --help'.\n",
            program, program);
    return -1;
  }
  return 0;
}

/* The getopt_long entries of the shared options. */
static const struct option shared_longopts[] = {OBSPAMD_LONGOPTS};

/* The most options a daemon takes of its own. */
#define OWN_MAX 16

int obspamd_options_parse(const char *program, int argc, char **argv,
                          const struct option *longopts, size_t n,
                          obspamd_own_option *take, void *own,
                          void (*usage)(FILE *f), obspamd_options *o) {
  enum { NSHARED = sizeof(shared_longopts) / sizeof(shared_longopts[0]) };
  /* The shared options, the daemon's and the end. */
  struct option all[NSHARED + OWN_MAX + 1];
  int c;

  if (n > OWN_MAX) {
    fprintf(stderr, "%s: more than %d options of its own\n", program, OWN_MAX);
    return -1;
  }
  memcpy(all, shared_longopts, sizeof(shared_longopts));
  memcpy(all + NSHARED, longopts, n * sizeof(*longopts));
  all[NSHARED + n] = (struct option){NULL, 0, NULL, 0};
  options_init(o);
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", all, NULL)) != -1) {
    if (c == OBSPAMD_OPT_VERSION) {
      printf("%s (libobspam %s)\n", program, obspam_version_string());
      return 1;
    }
    if (c == OBSPAMD_OPT_HELP) {
      usage(stdout);
      return 1;
    }
    if ((c >= OBSPAMD_OPT_OWN ? take(own, c, optarg)
                              : option(program, c, argv, o)) != 0)
      return -1;
  }
  return options_done(program, argc, argv, o);
}

int obspamd_option_append(const char *program, const char *opt, const char *arg,
                          const char **list, int *n, int max,
                          const char *what) {
  if (*n == max) {
    fprintf(stderr, "%s: %s: at most %d %s\n", program, opt, max, what);
    return -1;
  }
  list[(*n)++] = arg;
  return 0;
}

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
