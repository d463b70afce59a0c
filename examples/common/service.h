/* SPDX-License-Identifier: MIT */
/* The service around the engine: configuration, state file and its
   journal, reloads, saves, notices and the housekeeping thread
   (daemon.c). The threads started here (control, metrics, housekeeping,
   mail) block every signal, so that a daemon's signals reach its own
   threads only.
   Thread-safe: the milter calls it from libmilter's threads, the policy
   server from its event loop and the control thread. */
#ifndef OBSPAMD_SERVICE_H
#define OBSPAMD_SERVICE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "obspam.h"

struct obspamd_private;

enum obspamd_local_action {
  OBSPAMD_LOCAL_NONE = 0,
  OBSPAMD_LOCAL_HOLD = 1,  /* kept in the MTA's hold queue */
  OBSPAMD_LOCAL_BOUNCE = 2 /* returned to the sender */
};

typedef struct obspamd_service {
  /* Set by the daemon before obspamd_service_start. */
  const char *name;           /* "obspam-policyd", for logs and mail */
  const char *config_path;    /* required */
  const char *state_path;     /* NULL: counters are not kept on disk */
  const char *admin;          /* NULL: no mail at all (see obspamd_flush) */
  const char *notify_command; /* e.g. "/usr/sbin/sendmail -t"; NULL: none */
  /* What becomes of a refused local submission, for the notice mails:
     OBSPAMD_LOCAL_NONE (the daemon sees none: the policy server), or what
     the milter does with it. */
  int local_action;
  int save_interval; /* seconds; 0: only at exit */
  /* With a state file, the decisions since the last save are kept in its
     journal (STATE.journal, obspam_journal_open); with journal_fsync set
     each obspamd_journal_flush waits for the disk. */
  int journal_fsync;
  /* Filled in by obspamd_service_start. */
  obspam_engine *engine;
  obspamd_metrics metrics;
  pthread_mutex_t lock; /* serialises reload and save */
  /* Optional, set before obspamd_service_start; zero means the default. */
  const char *mail_from; /* From: of the mails; default obspam@HOSTNAME */
  int notify_timeout;    /* seconds the notify command may run; 30 */
  int flush_interval;    /* seconds between flushes by obspamd_tick; 10 */
  /* The share of the running configuration's objects (plans,
     subscriptions, domains, mailboxes), in percent, that a reload may
     drop; OBSPAMD_RELOAD_MAX_DROP. */
  int reload_max_drop;
  /* Private to the service. */
  struct obspamd_private *priv;
} obspamd_service;

/* Creates the engine, loads the configuration (an error is returned and
   logged: the daemon must not start on a bad file), then the state file
   when there is one (a missing file is normal on a first start; a corrupt
   or newer one is logged, renamed aside to PATH.bad-YYYYmmddHHMMSS (UTC),
   and the daemon starts from zero; one that cannot be read, or a state
   directory that does not exist, is an error), and registers the notice
   callback. Logs "cannot start: WHY" on error and returns the library's
   code (OBSPAM_ESYNTAX, OBSPAM_EIO, ...); nothing is left to stop. */
int obspamd_service_start(obspamd_service *s);
/* Saves the state (when a path is set) and frees the engine. Mails still
   queued get notify_timeout seconds in all to go out. Returns OBSPAM_OK,
   or the library's code when that last save failed (it is logged): the
   daemon then exits with a failure, since what was counted since the
   last good save is lost. */
int obspamd_service_stop(obspamd_service *s);
/* Reloads the configuration; on error logs it and keeps the running one.
   Returns the library's code; *msg (optional) gets the engine's message.

   A file that looks like a mistake is refused (OBSPAM_EINVAL) unless
   force is set, since loading it would lift the limits it no longer
   holds and forget their counters: one that declares nothing (empty, or
   only comments), or one that drops more than reload_max_drop percent of
   the objects the running configuration declares. The file is read once:
   what is checked is what is loaded. */
#define OBSPAMD_RELOAD_MAX_DROP 50
int obspamd_reload(obspamd_service *s, char *msg, size_t msg_size);
int obspamd_reload_force(obspamd_service *s, int force, char *msg,
                         size_t msg_size);
/* Changes one limit of an object live (obspamctl set-limit), without
   writing the configuration file: kind OBSPAM_PLAN, SUBSCRIPTION, DOMAIN
   or MAILBOX; which "subscription", "domain", "mailbox" (the limits
   obspam_set_limit takes for that kind) or "max-recipients"; value as the
   configuration writes it ("20/m,100/h,unlimited/d", a bare count being
   the hour; for max-recipients a count, unlimited or inherit). Only the
   windows value names change. The change is logged with uid (the
   client's), and set again after every reload that leaves the object's
   line of the configuration file as it was; a reload that changes that
   line drops it. Both are logged. Returns the library's code (an unknown
   object: OBSPAM_ENOTFOUND; a bad which or value: OBSPAM_EINVAL, nothing
   changed), with what was done or why not in msg. */
int obspamd_set_limit(obspamd_service *s, int kind, const char *name,
                      const char *which, const char *value, long uid,
                      char *msg, size_t msg_size);
/* --check-config for PROGRAM: loads path into a new engine and prints
   "PATH: configuration OK", or the library's error on stderr; a file
   that declares nothing is valid but gets a warning instead of "OK".
   Returns the exit status (0 or 1). The options were checked when they
   were parsed. */
int obspamd_check_config(const char *program, const char *path);
/* Writes the decisions made since the last call to the journal of the
   state file (obspam_journal_flush), before their answers leave: the
   policy server once per round of its loop, the milter before it answers
   a message. A failure is logged once until a flush succeeds again. */
int obspamd_journal_flush(obspamd_service *s);
/* Saves the state file; logs and counts the outcome. Without a state
   path: OBSPAM_EINVAL, "no state file is configured". */
int obspamd_save(obspamd_service *s, char *msg, size_t msg_size);
/* Emits the notices of ended periods: a log line each and, when both
   notify_command and admin are set, one mail to the admin and one to the
   subscription's contact (when it has one). The mails are queued and sent
   by a thread of their own, so that neither this call nor a decision in
   notify-immediate mode waits for the command. now: 0 = the clock. */
void obspamd_flush(obspamd_service *s, int64_t now);

/* The periodic work: saves the state every save_interval seconds and
   flushes notices every flush_interval seconds. Cheap when nothing is due;
   an event loop calls it about once a second. now: 0 = the clock. */
void obspamd_tick(obspamd_service *s, int64_t now);
/* Or a thread that calls obspamd_tick every second, for a daemon without
   an event loop of its own (the milter). Start after obspamd_service_start;
   stop before obspamd_service_stop. Returns 0, or -1 after logging why. */
int obspamd_housekeeping_start(obspamd_service *s);
void obspamd_housekeeping_stop(obspamd_service *s);

/* After a decision that failed with rc: when rc is OBSPAM_EUNAVAIL (the
   shared store does not answer, and store-fallback is defer), counts it
   and returns 1, and the caller defers the request without logging it.
   The first of an episode of the store logs it at once ("store: the
   shared store does not answer; deciding without it (deferring mail)
   until it does (episode 3)"), and the line that says it answers again
   gives the count ("...; 45892 requests were deferred (episode 3)"): an
   outage costs two lines, not one per request. Any other rc: 0, and the
   caller logs it. Thread-safe. */
int obspamd_store_deferred(obspamd_service *s, int rc);
/* Around every decision that may reach the shared store, or a group of
   them: obspamd_store_enter before the first is asked, its ticket to
   obspamd_store_leave once every result is handled (after
   obspamd_store_deferred). The recovery line waits for the decisions
   begun before the store answered again, so that its counts are the
   metric's exactly. Thread-safe; two atomic operations each. */
unsigned obspamd_store_enter(obspamd_service *s);
void obspamd_store_leave(obspamd_service *s, unsigned ticket);

/* The cap on the recipients of one message (max-recipients) that applies
   to the mail a verdict accepted: the effective cap of the object it
   names, the lowest charged one (a mailbox, declared or implicit; a
   script's domain or subscription). -1 (unlimited) for any other verdict,
   or an object that is gone. For the adapters that enforce the cap at
   RCPT, before the message is decided; the decision itself refuses a
   complete message over the cap whole. */
int64_t obspamd_recipients_cap(obspam_engine *e, const obspam_verdict *v);

/* What the configuration in place may declare: OBSPAMD_MARK_FORWARDS
   for `forward` lines, OBSPAMD_MARK_LISTS for `list` lines. A bit is
   clear only when the file was read and has no such line, so that an
   adapter can skip obspam_forward_lookup or obspam_mailing_list_match,
   which can only answer "none" then; both are set when the file was read
   by the library itself, and a bit is set while a reload that may add
   such lines is under way. Only the configuration file declares them.
   Thread-safe, without a lock. */
#define OBSPAMD_MARK_FORWARDS 1
#define OBSPAMD_MARK_LISTS 2
int obspamd_marks(obspamd_service *s);
/* Whether the engine's action option says reject (1) or defer (0). */
int obspamd_reject(obspamd_service *s);
/* The engine's count unit: 0 recipients, 1 messages. */
int obspamd_unit(obspamd_service *s);

#endif
