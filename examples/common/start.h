/* SPDX-License-Identifier: MIT */
/* The start-up and the stop that obspam-policyd and obspam-milter share,
   in their order: --check-config, absolute paths, detaching and the log,
   the signal pipe, the service, then (after the daemon opened its own
   sockets) the control socket, the metrics endpoint, the change of user
   and the housekeeping thread; at the end the same in reverse, and the
   last save. A daemon's main calls these around what is its own. */
#ifndef OBSPAMD_START_H
#define OBSPAMD_START_H

#include "options.h"
#include "service.h"

/* Daemon-specific socket specs that obspamd_start_init makes absolute. */
#define OBSPAMD_START_SPECS 16

typedef struct obspamd_start {
  const char *program;
  const obspamd_options *o;
  char *config, *state, *control;   /* absolute; state, control: NULL if not
                                       given */
  char *specs[OBSPAMD_START_SPECS]; /* the daemon's own, absolute */
  int ready_fd;                     /* obspamd_detach's, until ready */
  int signals;                      /* the read end of the signal pipe */
  int threads;                      /* what obspamd_start_threads started */
  int up;                           /* obspamd_start_ready was called */
} obspamd_start;

/* Returned by obspamd_start_init when the daemon goes on starting. */
#define OBSPAMD_START_GO_ON (-1)

/* Opens descriptors 0, 1 and 2 on /dev/null when they are closed:
   otherwise a socket could get one of them, and a line meant for stderr
   would go to a client. Called first in main. */
void obspamd_open_stdio(void);

/* parsed is what the daemon's option parser returned: 0 (go on), 1
   (--help or --version was answered: exit status 0) or -1 (a usage
   error, said on stderr: exit status 2). With --check-config: loads the
   configuration, reports and returns the exit status. Otherwise makes the
   configuration, state and control paths absolute (a detached daemon runs in
   "/" and reloads its files from there), and each of the n specs of the
   daemon's own sockets too (a unix: or local: one; others are kept as they
   are), replacing specs[i] with the absolute copy that st owns. Returns
   OBSPAMD_START_GO_ON, or 1 after saying "out of memory" on stderr. */
int obspamd_start_init(obspamd_start *st, const char *program, int parsed,
                       const obspamd_options *o, const char **specs, int n);

/* How the signal pipe is read. */
enum {
  OBSPAMD_SIGNALS_NONBLOCK = 1, /* its read end too: an event loop reads it */
  OBSPAMD_SIGNALS_NODEFER = 2   /* SA_NODEFER: the handler may nest */
};

/* Detaches unless --foreground (start errors still reach the starter's
   terminal until obspamd_start_ready), opens the log, sets the peers that
   may connect to a unix: socket, and turns SIGHUP, SIGTERM and SIGINT into
   bytes (the signal's number) on a pipe whose read end is st->signals
   (SIGPIPE is ignored). A self-pipe rather than signalfd: signalfd needs
   the signals blocked, and a blocked mask is inherited by every program
   the daemon runs (the notify command), which would then ignore SIGTERM.
   flags: OBSPAMD_SIGNALS_*. Returns 0, or -1 after logging why. */
int obspamd_start_process(obspamd_start *st, int flags);

/* Writes b to the signal pipe as a signal would (from another thread, to
   wake the one that reads it). Returns write(2)'s result. */
long obspamd_signal_post(unsigned char b);

/* Fills svc from the options (the daemon set what is its own before, such
   as local_action) and starts it. Returns 0, or -1 after logging why. */
int obspamd_start_service(obspamd_start *st, obspamd_service *svc);

/* Once the daemon's own sockets are open: the control socket, the metrics
   endpoint, then --user (everything is open and read: root is no longer
   needed; a reload reads the configuration, and a save writes the state
   directory, as that user), then the housekeeping thread (periodic saves
   and notices). Returns 0, or -1 after logging why; obspamd_start_stop
   undoes what was started either way. */
int obspamd_start_threads(obspamd_start *st, obspamd_service *svc);

/* The daemon is up: the start-up lines no longer go to the starter's
   terminal, which is let go. */
void obspamd_start_ready(obspamd_start *st);

/* Stops what obspamd_start_threads started. */
void obspamd_start_stop(obspamd_start *st, obspamd_service *svc);

/* Stops the service, which saves the state: but only for a daemon that
   came up, since one that did not start must not write the state file
   (another instance may be running on it, the usual cause of "address in
   use"). A failed last save is a failed stop. Logs "stopped" on success,
   frees the paths, and returns the exit status: rc, or 1. */
int obspamd_start_end(obspamd_start *st, obspamd_service *svc, int rc);

#endif
