/* SPDX-License-Identifier: MIT */
/* The daemons' shared start-up and stop (start.h). */
#include "start.h"
#include "access.h"
#include "log.h"
#include "options.h"
#include "refusal.h"
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "control.h"
#include "log.h"
#include "metrics.h"
#include "options.h"
#include "refusal.h"
#include "service.h"

void obspamd_open_stdio(void) {
  int fd;

  do
    fd = open("/dev/null", O_RDWR);
  while (fd >= 0 && fd <= STDERR_FILENO);
  if (fd > STDERR_FILENO)
    close(fd);
}

int obspamd_start_init(obspamd_start *st, const char *program, int parsed,
                       const obspamd_options *o, const char **specs, int n) {
  int i, ok;

  if (parsed != 0)
    return parsed > 0 ? 0 : 2;
  if (o->check_config)
    return obspamd_check_config(program, o->config);
  memset(st, 0, sizeof(*st));
  st->program = program;
  st->o = o;
  st->ready_fd = -1;
  st->signals = -1;
  st->config = obspamd_absolute("", o->config);
  st->state = o->state != NULL ? obspamd_absolute("", o->state) : NULL;
  st->control =
      o->control != NULL ? obspamd_absolute("unix:", o->control) : NULL;
  ok = st->config != NULL && (o->state == NULL || st->state != NULL) &&
       (o->control == NULL || st->control != NULL) && n <= OBSPAMD_START_SPECS;
  for (i = 0; ok && i < n; i++) {
    /* libmilter's "local:" is "unix:" by another name. */
    const char *prefix =
        strncmp(specs[i], "local:", 6) == 0 ? "local:" : "unix:";

    st->specs[i] = obspamd_absolute(prefix, specs[i]);
    ok = st->specs[i] != NULL;
    if (ok)
      specs[i] = st->specs[i];
  }
  if (!ok) {
    fprintf(stderr, "%s: out of memory\n", program);
    return 1;
  }
  return OBSPAMD_START_GO_ON;
}

static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  int saved = errno;
  unsigned char b = (unsigned char)sig;

  if (write(signal_pipe[1], &b, 1) < 0) {
    /* The pipe is full: enough signals are pending already. */
  }
  errno = saved;
}

long obspamd_signal_post(unsigned char b) {
  return (long)write(signal_pipe[1], &b, 1);
}

static int open_signals(int flags) {
  struct sigaction sa;

  if (pipe2(signal_pipe, O_CLOEXEC) != 0)
    return -1;
  fcntl(signal_pipe[1], F_SETFL, O_NONBLOCK);
  if (flags & OBSPAMD_SIGNALS_NONBLOCK)
    fcntl(signal_pipe[0], F_SETFL, O_NONBLOCK);
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  if (flags & OBSPAMD_SIGNALS_NODEFER)
    sa.sa_flags |= SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGHUP, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) ||
      sigaction(SIGINT, &sa, NULL) != 0)
    return -1;
  /* A client that closes before reading its answer must not kill us. */
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

int obspamd_start_process(obspamd_start *st, int flags) {
  const obspamd_options *o = st->o;

  /* Detached before anything else starts: the threads are created in
     the final process. */
  if (!o->foreground)
    st->ready_fd = obspamd_detach(st->program);
  obspamd_log_open(st->program, obspamd_log_mode(o->log, o->foreground));
  /* A detached daemon logs to syslog from the start, and until it is up
     its lines also go to the terminal that started it, so that whoever
     started it sees why it failed. */
  if (st->ready_fd >= 0)
    obspamd_log_echo(1);
  obspamd_peers_allow(o->allow, o->nallow);
  if (open_signals(flags) != 0) {
    obspamd_log(LOG_ERR, "signals: %s", strerror(errno));
    return -1;
  }
  st->signals = signal_pipe[0];
  return 0;
}

int obspamd_start_service(obspamd_start *st, obspamd_service *svc) {
  const obspamd_options *o = st->o;

  svc->name = st->program;
  svc->config_path = st->config;
  svc->state_path = st->state;
  svc->admin = o->admin;
  svc->notify_command = o->notify_command;
  svc->save_interval = o->save_interval;
  svc->journal_fsync = o->journal_fsync;
  svc->reload_max_drop = o->reload_max_drop;
  obspamd_refusal_log_interval(o->refusal_log_interval);
  return obspamd_service_start(svc) != 0 ? -1 : 0; /* the reason is logged */
}

/* st->threads */
enum { STARTED_CONTROL = 1, STARTED_METRICS = 2 };

int obspamd_start_threads(obspamd_start *st, obspamd_service *svc) {
  const obspamd_options *o = st->o;

  if (st->control != NULL) {
    if (obspamd_control_start(svc, st->control) != 0)
      return -1;
    st->threads |= STARTED_CONTROL;
  }
  if (o->metrics != NULL) {
    if (obspamd_metrics_start(svc, o->metrics) != 0)
      return -1;
    st->threads |= STARTED_METRICS;
  }
  if (o->user != NULL && obspamd_become(o->user, st->state) != 0)
    return -1;
  /* Saves and notices on a thread of their own: a save never holds up
     the daemon's loop, nor waits in it for a reload that holds the
     service's lock. */
  return obspamd_housekeeping_start(svc) != 0 ? -1 : 0;
}

void obspamd_start_ready(obspamd_start *st) {
  st->up = 1;
  obspamd_log_echo(0); /* syslog only from now on */
  if (st->ready_fd >= 0) {
    obspamd_detached(st->ready_fd);
    st->ready_fd = -1;
  }
}

void obspamd_start_stop(obspamd_start *st, obspamd_service *svc) {
  obspamd_housekeeping_stop(svc);
  if (st->threads & STARTED_METRICS)
    obspamd_metrics_stop();
  if (st->threads & STARTED_CONTROL)
    obspamd_control_stop();
  st->threads = 0;
}

int obspamd_start_end(obspamd_start *st, obspamd_service *svc, int rc) {
  int i;

  obspamd_start_stop(st, svc);
  if (!st->up)
    svc->state_path = NULL;
  if (obspamd_service_stop(svc) != OBSPAM_OK)
    rc = 1;
  if (rc == 0)
    obspamd_log(LOG_INFO, "stopped");
  free(st->config);
  free(st->state);
  free(st->control);
  for (i = 0; i < OBSPAMD_START_SPECS; i++)
    free(st->specs[i]);
  return rc;
}
