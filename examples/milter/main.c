/* SPDX-License-Identifier: MIT */
/* obspam-milter: outbound spam limits inside the MTA, through libmilter,
   for SMTP mail (smtpd_milters) and for mail that local scripts submit
   with sendmail(1) (non_smtpd_milters), which a policy server never sees.

   Threads: libmilter runs smfi_main in a thread of its own here and a
   thread per MTA connection (filter.c); examples/common runs the control
   socket, the metrics endpoint, the housekeeping (periodic saves and
   notices) and the notice mails in theirs. The main thread handles the
   signals.

   Signals need care because libmilter has its own signal thread: smfi_main
   blocks SIGHUP, SIGTERM and SIGINT and starts a thread that sigwait()s
   for them and stops the filter on each, SIGHUP included (libmilter's
   signal.c). SIGHUP must reload instead. So the main thread is the one
   thread that never blocks these signals, and handles them with a handler
   that writes to a pipe; every other thread is started with them blocked.
   Linux hands a signal sent to the process to its main thread whenever
   that thread can take it ("if the main thread wants the signal, it gets
   first crack", kernel/signal.c), so libmilter's sigwait() only ever gets
   one that arrives in the microseconds while another is being delivered
   to the main thread; then it stops the filter, and smfi_main returning
   unasked is handled as a stop (the state is saved). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

#include "control.h"
#include "daemon.h"
#include "filter.h"
#include "metrics.h"
#include "obspam.h"
#include "submission.h"

#define PROGRAM "obspam-milter"
#define DEFAULT_SAVE_INTERVAL 60
/* Inside Debian's chrooted Postfix (/var/spool/postfix), as opendkim's:
   smtpd_milters = unix:/obspam-milter/milter.sock */
#define DEFAULT_SOCKET "unix:/var/spool/postfix/obspam-milter/milter.sock"
#define DEFAULT_SOCKET_MODE 0660
/* How long a stop waits for the MTA's open sessions to end. */
#define DRAIN_MS 10000

/* ---- options ------------------------------------------------------------ */

typedef struct options {
  obspamd_options c; /* the options both daemons take */
  const char *socket;
  const char *patterns[MILTER_MAX_PATTERNS];
  int npatterns;
  int local_action;
  int verbose;
} options;

static void usage(FILE *f) {
  fprintf(
      f,
      "Usage: " PROGRAM " --config FILE [options]\n"
      "\n"
      "A mail filter (milter) for Postfix or Sendmail that limits outgoing\n"
      "mail per mailbox, domain and subscription with libobspam, for SMTP\n"
      "mail and for mail that local scripts submit with sendmail.\n"
      "\n"
      "Options:\n"
      "  --config FILE          the limits (obspam.conf); required\n"
      "  --socket SPEC          where the MTA connects, in libmilter's form:\n"
      "                         unix:PATH, inet:PORT@HOST or "
      "inet6:PORT@HOST\n"
      "                         (default " DEFAULT_SOCKET ")\n"
      "  --socket-mode MODE     octal mode of a unix: socket (default "
      "%04o,\n"
      "                         group postfix)\n"
      "  --state FILE           keep the counters in FILE: loaded at start,\n"
      "                         saved periodically and at exit\n"
      "  --save-interval SECS   seconds between saves (default %d; 0: only\n"
      "                         at exit)\n"
      "  --control unix:PATH    the control socket for obspamctl\n"
      "  --metrics inet:HOST:PORT\n"
      "                         serve Prometheus metrics at /metrics\n"
      "  --admin EMAIL          mail notices to this address too\n"
      "  --notify-command CMD   how to send mail, e.g. \"/usr/sbin/sendmail "
      "-t\"\n"
      "  --vhost-pattern PAT    where a script's path names its virtual host,\n"
      "                         e.g. /var/www/vhosts/%%d/ (may be repeated)\n"
      "  --local-action ACTION  a refused local submission: hold (default;\n"
      "                         Postfix's hold queue) or bounce (returned to\n"
      "                         its sender)\n" OBSPAMD_USAGE_PRIVILEGE
      "  --foreground           do not detach\n"
      "  --verbose              log every decision\n"
      "  --reload-max-drop PCT  refuse a reload that drops more than PCT%%\n"
      "                         of the objects (default %d; obspamctl\n"
      "                         reload --force "
      "overrides)\n" OBSPAMD_USAGE_REFUSAL_LOG
      "  --check-config         load the configuration, report, and exit\n"
      "  --version              print the version and exit\n"
      "  --help                 print this help and exit\n"
      "\n"
      "Signals: SIGHUP reloads the configuration (a bad or suspicious file\n"
      "is logged and the running one kept); SIGTERM and SIGINT save the\n"
      "state and exit. See obspam-milter(8).\n",
      DEFAULT_SOCKET_MODE, DEFAULT_SAVE_INTERVAL, OBSPAMD_RELOAD_MAX_DROP);
}

/* Checks a libmilter socket spec, so that a typo is reported here rather
   than in syslog by libmilter. */
static int check_socket(const char *spec) {
  const char *at, *p, *q, *end;

  if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
    p = strchr(spec, ':') + 1;
    if (p[0] == '\0')
      goto bad;
    return 0;
  }
  if (strncmp(spec, "inet:", 5) == 0 || strncmp(spec, "inet6:", 6) == 0) {
    p = strchr(spec, ':') + 1;
    at = strchr(p, '@');
    end = at != NULL ? at : p + strlen(p);
    if (p == end || (at != NULL && at[1] == '\0'))
      goto bad;
    for (q = p; q < end; q++)
      if (*q < '0' || *q > '9')
        goto bad;
    if (end - p > 5 || strtol(p, NULL, 10) > 65535) {
      fprintf(stderr,
              PROGRAM ": --socket: bad value '%s': bad port '%.*s': expected "
                      "a number 0..65535\n",
              spec, (int)(end - p), p);
      return -1;
    }
    return 0;
  }
bad:
  fprintf(stderr,
          PROGRAM ": --socket: bad value '%s': expected unix:PATH, "
                  "inet:PORT@HOST or inet6:PORT@HOST (libmilter's form; "
                  "Postfix writes inet:HOST:PORT, the milter does not)\n",
          spec);
  return -1;
}

/* Returns 0, 1 (--help or --version: exit 0) or -1 (a usage error). */
static int parse_options(int argc, char **argv, options *o) {
  enum {
    OPT_SOCKET = OBSPAMD_OPT_OWN,
    OPT_PATTERN,
    OPT_LOCAL,
    OPT_VERBOSE,
    OPT_VERSION,
    OPT_HELP
  };
  static const struct option longopts[] = {
      OBSPAMD_LONGOPTS,
      {"socket", required_argument, NULL, OPT_SOCKET},
      {"vhost-pattern", required_argument, NULL, OPT_PATTERN},
      {"local-action", required_argument, NULL, OPT_LOCAL},
      {"verbose", no_argument, NULL, OPT_VERBOSE},
      {"version", no_argument, NULL, OPT_VERSION},
      {"help", no_argument, NULL, OPT_HELP},
      {NULL, 0, NULL, 0}};
  char err[160];
  int c;

  memset(o, 0, sizeof(*o));
  obspamd_options_init(&o->c);
  o->socket = DEFAULT_SOCKET;
  o->c.save_interval = DEFAULT_SAVE_INTERVAL;
  o->c.socket_mode = DEFAULT_SOCKET_MODE;
  o->local_action = LOCAL_HOLD;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
    case OPT_SOCKET:
      if (check_socket(optarg) != 0)
        return -1;
      o->socket = optarg;
      break;
    case OPT_PATTERN:
      if (sub_pattern_check(optarg, err, sizeof(err)) != 0) {
        fprintf(stderr, PROGRAM ": --vhost-pattern: bad value '%s': %s\n",
                optarg, err);
        return -1;
      }
      if (o->npatterns == MILTER_MAX_PATTERNS) {
        fprintf(stderr, PROGRAM ": --vhost-pattern: at most %d patterns\n",
                MILTER_MAX_PATTERNS);
        return -1;
      }
      o->patterns[o->npatterns++] = optarg;
      break;
    case OPT_LOCAL:
      if (strcmp(optarg, "hold") == 0)
        o->local_action = LOCAL_HOLD;
      else if (strcmp(optarg, "bounce") == 0)
        o->local_action = LOCAL_BOUNCE;
      else {
        fprintf(stderr,
                PROGRAM ": --local-action: bad value '%s': expected hold or "
                        "bounce\n",
                optarg);
        return -1;
      }
      break;
    case OPT_VERBOSE:
      o->verbose = 1;
      break;
    case OPT_VERSION:
      printf(PROGRAM " (libobspam %s)\n", obspam_version_string());
      return 1;
    case OPT_HELP:
      usage(stdout);
      return 1;
    default:
      if (obspamd_option(PROGRAM, c, argv, &o->c) != 0)
        return -1;
      break;
    }
  }
  if (obspamd_options_done(PROGRAM, argc, argv, &o->c) != 0)
    return -1;
  return 0;
}

/* ---- signals and the libmilter thread ------------------------------------
 */

/* Bytes on the pipe: a signal's number, or MILTER_ENDED when smfi_main
   returned. */
#define MILTER_ENDED 0
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  int saved = errno;
  unsigned char b = (unsigned char)sig;

  if (write(signal_pipe[1], &b, 1) < 0) {
    /* The pipe is full: enough is pending already. */
  }
  errno = saved;
}

static void daemon_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGHUP);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
}

static int setup_signals(void) {
  struct sigaction sa;

  if (pipe(signal_pipe) != 0)
    return -1;
  fcntl(signal_pipe[0], F_SETFD, FD_CLOEXEC);
  fcntl(signal_pipe[1], F_SETFD, FD_CLOEXEC);
  fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  /* SA_NODEFER: the main thread keeps wanting the signal even while it
     runs the handler of another, which leaves libmilter's sigwait() fewer
     chances still (see the top of this file). */
  sa.sa_flags = SA_RESTART | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGHUP, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) ||
      sigaction(SIGINT, &sa, NULL) != 0)
    return -1;
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

static int milter_status = MI_SUCCESS;

/* libmilter's listener holds a lock while it sleeps in select() for up to
   5 seconds, and smfi_stop needs that lock: a stop would take 5 seconds.
   So smfi_stop runs in a thread of its own while the main thread connects
   to the listening socket now and then, which wakes the listener; the
   connection ends at once. Best effort: the listener wakes by itself at
   its timeout anyway. */
static void wake_listener(const char *spec) {
  struct sockaddr_storage ss;
  socklen_t len = 0;
  const char *at;
  int fd;

  memset(&ss, 0, sizeof(ss));
  if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    const char *path = strchr(spec, ':') + 1;

    if (strlen(path) >= sizeof(un->sun_path))
      return;
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, path);
    len = sizeof(*un);
  } else {
    int v6 = strncmp(spec, "inet6:", 6) == 0;
    long port = strtol(strchr(spec, ':') + 1, NULL, 10);
    char host[256] = "";

    at = strchr(spec, '@');
    if (at != NULL)
      snprintf(host, sizeof(host), "%s", at + 1);
    if (v6) {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons((uint16_t)port);
      if (host[0] == '\0' || inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
        in6->sin6_addr = in6addr_loopback;
      len = sizeof(*in6);
    } else {
      struct sockaddr_in *in = (struct sockaddr_in *)&ss;

      in->sin_family = AF_INET;
      in->sin_port = htons((uint16_t)port);
      /* A host name or "0.0.0.0": the loopback address reaches it. */
      if (host[0] == '\0' || inet_pton(AF_INET, host, &in->sin_addr) != 1 ||
          in->sin_addr.s_addr == htonl(INADDR_ANY))
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(*in);
    }
  }
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return;
  if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
    /* EINPROGRESS: the SYN is out, which is all it takes. */
  }
  close(fd);
}

static void *stop_thread(void *arg) {
  (void)arg;
  smfi_stop();
  return NULL;
}

static void *milter_thread(void *arg) {
  unsigned char b = MILTER_ENDED;

  (void)arg;
  milter_status = smfi_main();
  while (write(signal_pipe[1], &b, 1) < 0 && errno == EAGAIN) {
    /* The pipe is full of signals: the main thread is reading it. */
    usleep(1000);
  }
  return NULL;
}

/* ---- who may connect ------------------------------------------------------
 */

/* The socket libmilter listens on, for log lines; NULL: not a unix: one,
   whose peers are not checked. */
static const char *peer_socket;

/* libmilter accepts the MTA's connections itself and offers no hook
   before a connection's first command, so the peer check takes the place
   of accept(2): libmilter calls it through the dynamic linker, which finds
   a program's own definition before libc's. Its only caller is
   libmilter's listener (the daemon's own code calls accept4). A refused
   peer is closed and the next connection waited for: an error returned
   here would make the listener sleep a second per failure and give up
   after 16 of them, which would let any local user stop the filter. The
   wait is what libmilter's own accept does, and a stop wakes it
   (wake_listener, as root). */
int accept(int fd, struct sockaddr *addr, socklen_t *len) {
  socklen_t size = len != NULL ? *len : 0;

  for (;;) {
    int c = accept4(fd, addr, len, 0);

    if (c < 0 || peer_socket == NULL || obspamd_peer_allowed(c, peer_socket))
      return c;
    close(c);
    if (len != NULL)
      *len = size;
  }
}

/* ---- main ----------------------------------------------------------------
 */

int main(int argc, char **argv) {
  static obspamd_service svc;
  options o;
  char *config = NULL, *state = NULL, *control = NULL, *socket_spec = NULL;
  const char *unix_path = NULL;
  int ready_fd = -1, rc = 1, stop_sig = 0, i;
  sigset_t set;
  pthread_t tid;
  long left = 0;

  switch (parse_options(argc, argv, &o)) {
  case 1:
    return 0;
  case -1:
    return 2;
  }
  if (o.c.check_config)
    return obspamd_check_config(PROGRAM, o.c.config);

  config = obspamd_absolute("", o.c.config);
  state = o.c.state != NULL ? obspamd_absolute("", o.c.state) : NULL;
  control = o.c.control != NULL ? obspamd_absolute("unix:", o.c.control) : NULL;
  socket_spec = strncmp(o.socket, "local:", 6) == 0
                    ? obspamd_absolute("local:", o.socket)
                    : obspamd_absolute("unix:", o.socket);
  if (config == NULL || socket_spec == NULL ||
      (o.c.state != NULL && state == NULL) ||
      (o.c.control != NULL && control == NULL)) {
    fprintf(stderr, PROGRAM ": out of memory\n");
    return 1;
  }
  if (strncmp(socket_spec, "unix:", 5) == 0 ||
      strncmp(socket_spec, "local:", 6) == 0)
    unix_path = strchr(socket_spec, ':') + 1;

  if (!o.c.foreground)
    ready_fd = obspamd_detach(PROGRAM);
  /* Until the daemon is up, errors also go to the terminal that started
     it. */
  obspamd_log_open(PROGRAM, obspamd_log_mode(o.c.log, o.c.foreground));
  obspamd_log_echo(1);
  obspamd_log_verbose(o.verbose);
  obspamd_peers_allow(o.c.allow, o.c.nallow);

  /* Every thread started from here on, libmilter's included, inherits a
     mask that blocks the daemon's signals; the main thread unblocks them
     once all are started. */
  daemon_signals(&set);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  if (setup_signals() != 0) {
    obspamd_log(LOG_ERR, "signals: %s", strerror(errno));
    return 1;
  }

  svc.name = PROGRAM;
  svc.config_path = config;
  svc.state_path = state;
  svc.admin = o.c.admin;
  svc.notify_command = o.c.notify_command;
  svc.save_interval = o.c.save_interval;
  svc.journal_fsync = o.c.journal_fsync;
  svc.local_action =
      o.local_action == LOCAL_HOLD ? OBSPAMD_LOCAL_HOLD : OBSPAMD_LOCAL_BOUNCE;
  svc.reload_max_drop = o.c.reload_max_drop;
  obspamd_refusal_log_interval(o.c.refusal_log_interval);
  if (obspamd_service_start(&svc) != 0)
    return 1; /* the reason is logged */

  milter_cfg.svc = &svc;
  milter_cfg.local_action = o.local_action;
  milter_cfg.verbose = o.verbose;
  for (i = 0; i < o.npatterns; i++)
    milter_cfg.patterns[i] = o.patterns[i];
  milter_cfg.npatterns = o.npatterns;

  if (smfi_setconn(socket_spec) != MI_SUCCESS ||
      smfi_register(*milter_description()) != MI_SUCCESS) {
    obspamd_log(LOG_ERR, "cannot start: libmilter refused the filter or the "
                         "socket spec (see syslog)");
    goto out_service;
  }
  errno = 0;
  if (smfi_opensocket(1) != MI_SUCCESS) {
    obspamd_log(LOG_ERR, "cannot start: cannot listen on %s%s%s", socket_spec,
                errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
    goto out_service;
  }
  if (unix_path != NULL) {
    char err[400];

    if (chmod(unix_path, (mode_t)o.c.socket_mode) != 0) {
      obspamd_log(LOG_ERR, "cannot start: chmod %s: %s", unix_path,
                  strerror(errno));
      goto out_socket;
    }
    if (obspamd_socket_group(unix_path, o.c.user_uid, err, sizeof(err)) != 0) {
      obspamd_log(LOG_ERR, "cannot start: %s", err);
      goto out_socket;
    }
    peer_socket = socket_spec;
  } else {
    obspamd_warn_tcp(socket_spec);
  }
  if (control != NULL && obspamd_control_start(&svc, control) != 0)
    goto out_socket;
  if (o.c.metrics != NULL && obspamd_metrics_start(&svc, o.c.metrics) != 0)
    goto out_control;
  /* Everything is open and read: root is no longer needed. A reload reads
     the configuration, and a save writes the state directory, as that
     user. */
  if (o.c.user != NULL && obspamd_become(o.c.user, state) != 0)
    goto out_metrics;
  if (obspamd_housekeeping_start(&svc) != 0)
    goto out_metrics;
  if (pthread_create(&tid, NULL, milter_thread, NULL) != 0) {
    obspamd_log(LOG_ERR, "cannot start: no thread for libmilter");
    goto out_housekeeping;
  }

  obspamd_log_echo(0);
  obspamd_log(LOG_INFO,
              "ready: listening on %s (libobspam %s, config %s, refused "
              "local submissions: %s)",
              socket_spec, obspam_version_string(), config,
              o.local_action == LOCAL_HOLD ? "hold" : "bounce");
  if (ready_fd >= 0) {
    obspamd_detached(ready_fd);
    ready_fd = -1;
  }
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);

  while (stop_sig == 0) {
    unsigned char b;
    ssize_t n = read(signal_pipe[0], &b, 1);

    if (n < 0 && errno == EINTR)
      continue;
    if (n != 1) {
      obspamd_log(LOG_ERR, "signal pipe: %s", strerror(errno));
      stop_sig = -1;
      break;
    }
    if (b == SIGHUP) {
      char msg[512];

      obspamd_reload(&svc, msg, sizeof(msg));
    } else if (b == MILTER_ENDED) {
      /* libmilter stopped by itself: its signal thread took a signal, or
         its listener failed. Either way the daemon stops and saves. */
      obspamd_log(milter_status == MI_SUCCESS ? LOG_INFO : LOG_ERR,
                  "libmilter stopped%s",
                  milter_status == MI_SUCCESS ? "" : " on an error");
      stop_sig = -2;
    } else {
      obspamd_log(LOG_INFO, "stopping on signal %d", b);
      stop_sig = b;
    }
  }
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  if (stop_sig != -2) {
    pthread_t stopper;
    int waited;

    if (pthread_create(&stopper, NULL, stop_thread, NULL) == 0)
      pthread_detach(stopper);
    else
      smfi_stop();
    for (waited = 0; waited < 10000; waited += 50) {
      struct pollfd pfd = {signal_pipe[0], POLLIN, 0};
      unsigned char b = 1;

      wake_listener(socket_spec);
      if (poll(&pfd, 1, 50) == 1 && read(signal_pipe[0], &b, 1) == 1 &&
          b == MILTER_ENDED)
        break;
    }
  }
  pthread_join(tid, NULL);
  rc = stop_sig > 0 || (stop_sig == -2 && milter_status == MI_SUCCESS) ? 0 : 1;

  /* smfi_main does not wait for the sessions it started: they run on
     until the MTA ends them, and they use the engine. */
  left = milter_wait_idle(DRAIN_MS);

out_housekeeping:
  obspamd_housekeeping_stop(&svc);
out_metrics:
  if (o.c.metrics != NULL)
    obspamd_metrics_stop();
out_control:
  if (control != NULL)
    obspamd_control_stop();
out_socket:
  if (unix_path != NULL)
    unlink(unix_path);
out_service:
  if (left > 0) {
    /* Freeing the engine under a running session would crash it: save
       and leave, the process ends now anyway. */
    obspamd_log(LOG_WARNING,
                "%ld MTA connection(s) still open after %d s: saving and "
                "exiting without waiting for them",
                left, DRAIN_MS / 1000);
    if (state != NULL) {
      char msg[512];

      if (obspamd_save(&svc, msg, sizeof(msg)) != OBSPAM_OK)
        rc = 1;
    }
    _exit(rc);
  }
  /* Saves the state; a failed last save is a failed stop. */
  if (obspamd_service_stop(&svc) != OBSPAM_OK)
    rc = 1;
  if (rc == 0)
    obspamd_log(LOG_INFO, "stopped");
  free(config);
  free(state);
  free(control);
  free(socket_spec);
  return rc;
}
