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

#include "access.h"
#include "filter.h"
#include "log.h"
#include "obspam.h"
#include "options.h"
#include "service.h"
#include "start.h"
#include "submission.h"

#define PROGRAM "obspam-milter"
/* Inside Debian's chrooted Postfix (/var/spool/postfix), as opendkim's:
   smtpd_milters = unix:/obspam-milter/milter.sock */
#define DEFAULT_SOCKET "unix:/var/spool/postfix/obspam-milter/milter.sock"
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
      "                         group postfix)\n" OBSPAMD_USAGE_STATE
      "  --vhost-pattern PAT    where a script's path names its virtual host,\n"
      "                         e.g. /var/www/vhosts/%%d/ (may be repeated)\n"
      "  --local-action ACTION  a refused local submission: hold (default;\n"
      "                         Postfix's hold queue) or bounce (returned to\n"
      "                         its sender)\n" OBSPAMD_USAGE_PRIVILEGE
      "  --foreground           do not detach\n"
      "  --verbose              log every decision\n" OBSPAMD_USAGE_RELOAD
          OBSPAMD_USAGE_REFUSAL_LOG OBSPAMD_USAGE_END(PROGRAM),
      OBSPAMD_SOCKET_MODE);
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

enum { OPT_SOCKET = OBSPAMD_OPT_OWN, OPT_PATTERN, OPT_LOCAL, OPT_VERBOSE };

/* The milter's own options (obspamd_own_option). */
static int own_option(void *own, int opt, const char *arg) {
  options *o = own;
  char err[160];

  switch (opt) {
  case OPT_SOCKET:
    if (check_socket(arg) != 0)
      return -1;
    o->socket = arg;
    return 0;
  case OPT_PATTERN:
    if (sub_pattern_check(arg, err, sizeof(err)) != 0) {
      fprintf(stderr, PROGRAM ": --vhost-pattern: bad value '%s': %s\n", arg,
              err);
      return -1;
    }
    return obspamd_option_append(PROGRAM, "--vhost-pattern", arg, o->patterns,
                                 &o->npatterns, MILTER_MAX_PATTERNS,
                                 "patterns");
  case OPT_LOCAL:
    if (strcmp(arg, "hold") == 0)
      o->local_action = LOCAL_HOLD;
    else if (strcmp(arg, "bounce") == 0)
      o->local_action = LOCAL_BOUNCE;
    else {
      fprintf(stderr,
              PROGRAM ": --local-action: bad value '%s': expected hold or "
                      "bounce\n",
              arg);
      return -1;
    }
    return 0;
  default: /* OPT_VERBOSE */
    o->verbose = 1;
    return 0;
  }
}

static const struct option own_longopts[] = {
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"vhost-pattern", required_argument, NULL, OPT_PATTERN},
    {"local-action", required_argument, NULL, OPT_LOCAL},
    {"verbose", no_argument, NULL, OPT_VERBOSE}};

/* Returns 0, 1 (--help or --version: exit 0) or -1 (a usage error). */
static int parse_options(int argc, char **argv, options *o) {
  *o = (options){.socket = DEFAULT_SOCKET, .local_action = LOCAL_HOLD};
  return obspamd_options_parse(PROGRAM, argc, argv, own_longopts,
                               sizeof(own_longopts) / sizeof(own_longopts[0]),
                               own_option, o, usage, &o->c);
}

/* ---- signals and the libmilter thread ------------------------------------
 */

/* Bytes on the signal pipe (start.h): a signal's number, or MILTER_ENDED
   when smfi_main returned. */
#define MILTER_ENDED 0
static int signal_fd = -1; /* its read end */

static void daemon_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGHUP);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGINT);
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
  while (obspamd_signal_post(b) < 0 && errno == EAGAIN) {
    /* The pipe is full of signals: the main thread is reading it. */
    usleep(1000);
  }
  return NULL;
}

/* ---- who may connect ------------------------------------------------------
 */

/* The path of a unix: (or local:) socket spec; NULL for inet: ones. */
static const char *unix_path(const char *spec) {
  if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0)
    return strchr(spec, ':') + 1;
  return NULL;
}

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

/* Opens the socket libmilter listens on, with its mode and group. */
static int open_socket(const options *o, const char *spec) {
  char err[400];

  milter_cfg.local_action = o->local_action;
  milter_cfg.verbose = o->verbose;
  memcpy(milter_cfg.patterns, o->patterns, sizeof(o->patterns));
  milter_cfg.npatterns = o->npatterns;
  if (smfi_setconn((char *)spec) != MI_SUCCESS ||
      smfi_register(*milter_description()) != MI_SUCCESS) {
    obspamd_log(LOG_ERR, "cannot start: libmilter refused the filter or the "
                         "socket spec (see syslog)");
    return -1;
  }
  errno = 0;
  if (smfi_opensocket(1) != MI_SUCCESS) {
    obspamd_log(LOG_ERR, "cannot start: cannot listen on %s%s%s", spec,
                errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
    return -1;
  }
  if (unix_path(spec) == NULL) {
    obspamd_warn_tcp(spec);
    return 0;
  }
  peer_socket = spec;
  if (chmod(unix_path(spec), (mode_t)o->c.socket_mode) != 0) {
    obspamd_log(LOG_ERR, "cannot start: chmod %s: %s", unix_path(spec),
                strerror(errno));
    return -1;
  }
  if (obspamd_socket_group(unix_path(spec), o->c.user_uid, err, sizeof(err)) !=
      0) {
    obspamd_log(LOG_ERR, "cannot start: %s", err);
    return -1;
  }
  return 0;
}

/* Handles the signals until one stops the daemon or libmilter stops by
   itself. Returns the exit status. */
static int serve(obspamd_service *svc) {
  for (;;) {
    unsigned char b;
    ssize_t n = read(signal_fd, &b, 1);

    if (n < 0 && errno == EINTR)
      continue;
    if (n != 1) {
      obspamd_log(LOG_ERR, "signal pipe: %s", strerror(errno));
      return -1;
    }
    if (b == SIGHUP) {
      char msg[512];

      obspamd_reload(svc, msg, sizeof(msg));
    } else if (b == MILTER_ENDED) {
      /* libmilter stopped by itself: its signal thread took a signal, or
         its listener failed. Either way the daemon stops and saves. */
      obspamd_log(milter_status == MI_SUCCESS ? LOG_INFO : LOG_ERR,
                  "libmilter stopped%s",
                  milter_status == MI_SUCCESS ? "" : " on an error");
      return -2;
    } else {
      obspamd_log(LOG_INFO, "stopping on signal %d", b);
      return b;
    }
  }
}

/* Stops libmilter, unless it stopped by itself (stop_sig -2), and waits
   for its thread. */
static void stop_milter(pthread_t tid, int stop_sig, const char *spec) {
  if (stop_sig != -2) {
    pthread_t stopper;
    int waited;

    if (pthread_create(&stopper, NULL, stop_thread, NULL) == 0)
      pthread_detach(stopper);
    else
      smfi_stop();
    for (waited = 0; waited < 10000; waited += 50) {
      struct pollfd pfd = {signal_fd, POLLIN, 0};
      unsigned char b = 1;

      wake_listener(spec);
      if (poll(&pfd, 1, 50) == 1 && read(signal_fd, &b, 1) == 1 &&
          b == MILTER_ENDED)
        break;
    }
  }
  pthread_join(tid, NULL);
}

/* smfi_main does not wait for the sessions it started: they run on until
   the MTA ends them, and they use the engine. Freeing the engine under a
   running session would crash it: when they outlast DRAIN_MS, the state
   is saved and the process ends at once. */
static void drain(obspamd_start *st, obspamd_service *svc, const char *spec,
                  int rc) {
  long left = milter_wait_idle(DRAIN_MS);
  char msg[512];

  if (left == 0)
    return;
  obspamd_log(LOG_WARNING,
              "%ld MTA connection(s) still open after %d s: saving and "
              "exiting without waiting for them",
              left, DRAIN_MS / 1000);
  obspamd_start_stop(st, svc);
  if (unix_path(spec) != NULL)
    unlink(unix_path(spec));
  if (svc->state_path != NULL &&
      obspamd_save(svc, msg, sizeof(msg)) != OBSPAM_OK)
    rc = 1;
  _exit(rc);
}

int main(int argc, char **argv) {
  static obspamd_service svc;
  obspamd_start st;
  options o;
  const char *spec[1];
  int rc, stop_sig;
  sigset_t set;
  pthread_t tid;

  obspamd_open_stdio();
  rc = parse_options(argc, argv, &o);
  spec[0] = o.socket;
  rc = obspamd_start_init(&st, PROGRAM, rc, &o.c, spec, 1);
  if (rc != OBSPAMD_START_GO_ON)
    return rc;
  /* Every thread started from here on, libmilter's included, inherits a
     mask that blocks the daemon's signals; the main thread unblocks them
     once all are started. */
  daemon_signals(&set);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  /* SA_NODEFER: the main thread keeps wanting the signal even while it
     runs the handler of another, which leaves libmilter's sigwait() fewer
     chances still (see the top of this file). */
  if (obspamd_start_process(&st, OBSPAMD_SIGNALS_NODEFER) != 0)
    return 1;
  signal_fd = st.signals;
  obspamd_log_verbose(o.verbose);
  svc.local_action =
      o.local_action == LOCAL_HOLD ? OBSPAMD_LOCAL_HOLD : OBSPAMD_LOCAL_BOUNCE;
  if (obspamd_start_service(&st, &svc) != 0)
    return 1;
  milter_cfg.svc = &svc;

  rc = 1;
  if (open_socket(&o, spec[0]) == 0 && obspamd_start_threads(&st, &svc) == 0) {
    if (pthread_create(&tid, NULL, milter_thread, NULL) != 0) {
      obspamd_log(LOG_ERR, "cannot start: no thread for libmilter");
    } else {
      obspamd_log(LOG_INFO,
                  "ready: listening on %s (libobspam %s, config %s, refused "
                  "local submissions: %s)",
                  spec[0], obspam_version_string(), st.config,
                  o.local_action == LOCAL_HOLD ? "hold" : "bounce");
      obspamd_start_ready(&st);
      pthread_sigmask(SIG_UNBLOCK, &set, NULL);
      stop_sig = serve(&svc);
      pthread_sigmask(SIG_BLOCK, &set, NULL);
      stop_milter(tid, stop_sig, spec[0]);
      rc = stop_sig > 0 || (stop_sig == -2 && milter_status == MI_SUCCESS) ? 0
                                                                           : 1;
      drain(&st, &svc, spec[0], rc);
    }
  }
  if (unix_path(spec[0]) != NULL)
    unlink(unix_path(spec[0]));
  return obspamd_start_end(&st, &svc, rc);
}
