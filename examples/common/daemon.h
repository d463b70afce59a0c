/* SPDX-License-Identifier: MIT */
/* What obspam-policyd and obspam-milter share: logging, the service around
   the engine (configuration, state file, reloads, saves, notices and the
   mail they send), the text of a refusal, and the metrics. The control
   socket (control.h) and the metrics endpoint (metrics.h) build on it.

   Everything here is thread-safe: the milter calls it from libmilter's
   threads, the policy server from its event loop and the control thread.
   The threads started here (control, metrics, housekeeping, mail) block
   every signal, so that a daemon's signals reach its own threads only. */
#ifndef OBSPAMD_DAEMON_H
#define OBSPAMD_DAEMON_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#include "obspam.h"

/* ---- logging ------------------------------------------------------------- */

/* Where log lines go (--log):
   - stderr: "2024-05-01T12:34:56Z obspam-policyd[812]: warning: reload
     failed: ..." (UTC), for a daemon run by hand in the foreground;
   - syslog: datagrams to /dev/log with facility mail and the line's own
     priority, "<20>May  1 12:34:56 obspam-policyd[812]: warning: ...",
     as syslog(3) writes them (a detached daemon);
   - journal: stderr again, one line each with the "<N>" priority prefix
     that journald reads and no timestamp or name of its own, which the
     journal adds (under systemd; SyslogFacility=mail in the unit).
   One line per event, in a form an admin can grep:
     refuse kind=mailbox object=info@example.com limit=20 count=20
     unit=recipients retry=420 queue_id=4FgH2x1Kz9 ...
   Control characters in a message are written as '?', so that an event
   is always one line, and so is each byte that is not part of valid
   UTF-8: names keep their letters (jörg@example.com), and a line is
   always valid UTF-8. Before obspamd_log_open, logs go to stderr under
   the name "obspamd". The values 0 and 1 keep their old meaning of
   obspamd_log_open's second argument (foreground or not). */
enum {
  OBSPAMD_LOG_AUTO = -1,
  OBSPAMD_LOG_SYSLOG = 0,
  OBSPAMD_LOG_STDERR = 1,
  OBSPAMD_LOG_JOURNAL = 2
};
void obspamd_log_open(const char *ident, int mode);
/* The mode for --log (OBSPAMD_LOG_AUTO when not given): as asked, or
   in the foreground journal when stderr is the stream systemd named in
   JOURNAL_STREAM, else stderr; syslog for a daemon that detaches. */
int obspamd_log_mode(int asked, int foreground);
/* In syslog mode, also copy each line to stderr (on: 1), so that whoever
   started a daemon that detaches sees why it failed to start. */
void obspamd_log_echo(int on);
void obspamd_log(int priority, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* LOG_DEBUG lines are dropped unless verbose is set (default 0). */
void obspamd_log_verbose(int verbose);

/* ---- sockets ------------------------------------------------------------- */

/* Opens a listening socket, non-blocking and close-on-exec, for
   "unix:PATH" (a stale socket file is removed; mode is applied with chmod
   when mode >= 0) or "inet:HOST:PORT" / "inet:[IPV6]:PORT". Returns the
   descriptor, or -1 with a reason in err. */
int obspamd_listen(const char *spec, int mode, char *err, size_t err_size);
/* Connects to the same kind of spec (used by obspamctl and tests); a
   blocking socket, or -1 with a reason in err. */
int obspamd_connect(const char *spec, char *err, size_t err_size);

/* A parsed spec. For inet, host is without brackets and family is
   AF_INET6 for a bracketed host, AF_UNSPEC otherwise (a name or an IPv4
   address, resolved when used). */
typedef struct obspamd_spec {
  int family; /* AF_UNIX, AF_INET6 or AF_UNSPEC */
  char path[108];
  char host[256];
  char port[8]; /* decimal, 0..65535 */
} obspamd_spec;

/* Parses "unix:PATH", "inet:HOST:PORT" or "inet:[IPV6]:PORT". Returns 0,
   or -1 with a one-line reason in err, e.g. "bad socket address
   'inet:::1:25': write an IPv6 address in brackets, as inet:[::1]:PORT". */
int obspamd_spec_parse(const char *spec, obspamd_spec *out, char *err,
                       size_t err_size);
/* The spec of the address a socket is bound to ("inet:127.0.0.1:40123",
   "inet:[::1]:40123", "unix:/run/obspam/control.sock"): how a daemon that
   listened on port 0 tells which port it got. Returns 0 or -1. */
int obspamd_socket_name(int fd, char *buf, size_t size);

/* The control socket obspamctl asks when it is given none (a path). */
#define OBSPAMD_CONTROL_DEFAULT "/run/obspam/control.sock"
/* ---- who may connect ----------------------------------------------------- */

/* On a shared host every customer's scripts run as a local user, and a
   local user who can ask the daemon can spend any mailbox's limit. So
   unix: listeners answer root, the "postfix" user (when it exists), the
   daemon's own user and the users named with --allow-user, checked by the
   peer's credentials (SO_PEERCRED); TCP listeners answer anyone who can
   reach them and are only opened when asked for. */

/* The users allowed besides root, postfix and the daemon's own: uids
   from --allow-user (o->allow). Call before the first check. */
void obspamd_peers_allow(const long *uids, int n);
/* Whether the peer of an accepted unix: connection may ask: 1 yes, 0 no
   (the caller closes it without a byte). A refused user is logged once
   per episode, which ends after a minute without a refusal of it:
     peer refused uid=1001 user=web1 on unix:/var/spool/postfix/private/...
   where names the listener. Any other socket (TCP) is 1. Thread-safe. */
int obspamd_peer_allowed(int fd, const char *where);
/* The text of the warning a daemon logs at start for a TCP listener. */
void obspamd_warn_tcp(const char *spec);
/* Gives the socket file path the group "postfix" (when that group
   exists), so that with a mode of 0660 Postfix may connect and other
   users may not, and the owner uid (the --user the daemon becomes, which
   must reach its own socket; -1: unchanged). Returns 0, or -1 with a
   reason in err. */
int obspamd_socket_group(const char *path, long owner, char *err,
                         size_t err_size);

/* Sockets handed over by systemd (socket activation, sd_listen_fds(3)):
   stores at most max descriptors, made non-blocking and close-on-exec,
   and returns their number (0 when none were passed). The LISTEN_*
   variables are removed, so that the programs the daemon runs do not
   take the sockets for theirs. */
int obspamd_inherited_sockets(int *fds, int max);

/* ---- least privilege ------------------------------------------------------
 */

/* --user USER[:GROUP]: after the sockets are bound and the files opened,
   the daemon becomes USER (its group, or GROUP, and USER's other groups),
   having first emptied its capability bounding set, so that nothing it
   runs later can regain root. The directory of state_path (NULL: none)
   must then be writable: the state is saved by renaming a new file into
   it. Run as USER already, it only checks that directory. Returns 0, or
   -1 after logging why ("cannot start: ..."). */
int obspamd_become(const char *spec, const char *state_path);

/* ---- starting ------------------------------------------------------------ */

/* The command-line options both daemons take, parsed the same way. */
#define OBSPAMD_MAX_ALLOW 32
typedef struct obspamd_options {
  const char *config, *state, *control, *metrics, *admin, *notify_command;
  int save_interval, socket_mode, foreground, check_config;
  int journal_fsync;   /* --journal-fsync */
  int reload_max_drop; /* percent, 1..100; 0: the default */
  const char *user;    /* --user USER[:GROUP], NULL: stay who we are */
  long user_uid;       /* USER's uid, -1 without --user */
  int log;             /* --log: an OBSPAMD_LOG_* value; AUTO when not given */
  int refusal_log_interval; /* seconds; OBSPAMD_REFUSAL_LOG_INTERVAL */
  int nallow;               /* --allow-user: the uids, resolved when parsed */
  long allow[OBSPAMD_MAX_ALLOW];
} obspamd_options;

/* getopt_long values of those options; a daemon's own start at
   OBSPAMD_OPT_OWN. */
enum {
  OBSPAMD_OPT_CONFIG = 256,
  OBSPAMD_OPT_STATE,
  OBSPAMD_OPT_SAVE_INTERVAL,
  OBSPAMD_OPT_CONTROL,
  OBSPAMD_OPT_METRICS,
  OBSPAMD_OPT_ADMIN,
  OBSPAMD_OPT_NOTIFY,
  OBSPAMD_OPT_MODE,
  OBSPAMD_OPT_FOREGROUND,
  OBSPAMD_OPT_CHECK,
  OBSPAMD_OPT_RELOAD_MAX_DROP,
  OBSPAMD_OPT_USER,
  OBSPAMD_OPT_ALLOW_USER,
  OBSPAMD_OPT_LOG,
  OBSPAMD_OPT_JOURNAL_FSYNC,
  OBSPAMD_OPT_REFUSAL_LOG_INTERVAL,
  OBSPAMD_OPT_OWN
};

/* The getopt_long entries of those options, for a daemon's table. */
/* clang-format off */
#define OBSPAMD_LONGOPTS                                                       \
  {"config", required_argument, NULL, OBSPAMD_OPT_CONFIG},                     \
  {"state", required_argument, NULL, OBSPAMD_OPT_STATE},                       \
  {"save-interval", required_argument, NULL, OBSPAMD_OPT_SAVE_INTERVAL},       \
  {"control", required_argument, NULL, OBSPAMD_OPT_CONTROL},                   \
  {"metrics", required_argument, NULL, OBSPAMD_OPT_METRICS},                   \
  {"admin", required_argument, NULL, OBSPAMD_OPT_ADMIN},                       \
  {"notify-command", required_argument, NULL, OBSPAMD_OPT_NOTIFY},             \
  {"socket-mode", required_argument, NULL, OBSPAMD_OPT_MODE},                  \
  {"foreground", no_argument, NULL, OBSPAMD_OPT_FOREGROUND},                   \
  {"check-config", no_argument, NULL, OBSPAMD_OPT_CHECK},                      \
  {"reload-max-drop", required_argument, NULL, OBSPAMD_OPT_RELOAD_MAX_DROP}, \
  {"user", required_argument, NULL, OBSPAMD_OPT_USER},                         \
  {"allow-user", required_argument, NULL, OBSPAMD_OPT_ALLOW_USER},             \
  {"log", required_argument, NULL, OBSPAMD_OPT_LOG},                           \
  {"journal-fsync", no_argument, NULL, OBSPAMD_OPT_JOURNAL_FSYNC},             \
  {"refusal-log-interval", required_argument, NULL,                            \
   OBSPAMD_OPT_REFUSAL_LOG_INTERVAL}
/* clang-format on */

/* A whole number in [min, max] (base 10, or 8 for a mode), or -1 after
   saying on stderr why it is not. */
long obspamd_number(const char *program, const char *opt, const char *s,
                    long min, long max, int base);
/* Checks a socket address given to option opt (obspamd_spec_parse):
   returns 0, or -1 after saying what is wrong on stderr, e.g.
   "obspam-policyd: --listen: bad socket address 'inet:127.0.0.1': no
   port: expected inet:HOST:PORT or inet:[IPV6]:PORT". */
int obspamd_spec_check(const char *program, const char *opt, const char *spec);
/* Sets the defaults of the shared options (o->log is OBSPAMD_LOG_AUTO,
   o->refusal_log_interval OBSPAMD_REFUSAL_LOG_INTERVAL). */
void obspamd_options_init(obspamd_options *o);
/* Takes what getopt_long returned that the daemon does not handle itself:
   one of the shared options (an OBSPAMD_OPT_* value, its value in optarg)
   into o. Returns 0, or -1 after saying on stderr what is wrong with the
   value, or that the option is unknown or lacks (or has) a value. */
int obspamd_option(const char *program, int opt, char **argv,
                   obspamd_options *o);
/* After getopt_long: refuses arguments left over and a missing --config.
   Returns 0, or -1 after saying why on stderr. */
int obspamd_options_done(const char *program, int argc, char **argv,
                         const obspamd_options *o);

/* The help lines of the options every daemon takes beside its own. */
#define OBSPAMD_USAGE_PRIVILEGE                                                \
  "  --user USER[:GROUP]    become USER once the sockets are open and the\n"   \
  "                         files read (the state directory must be\n"         \
  "                         writable by USER)\n"                               \
  "  --allow-user USER      USER may connect to a unix: socket too, besides\n" \
  "                         root, postfix and the daemon's own user (may\n"    \
  "                         be repeated)\n"                                    \
  "  --log WHERE            stderr, syslog (facility mail) or journal\n"       \
  "                         (default: journal under systemd, else stderr\n"    \
  "                         in the foreground and syslog detached)\n"          \
  "  --journal-fsync        with --state: wait for the disk after each\n"      \
  "                         write of the journal of decisions (a power\n"      \
  "                         loss then loses none; slower)\n"

/* The help lines of --refusal-log-interval. */
#define OBSPAMD_USAGE_REFUSAL_LOG                                              \
  "  --refusal-log-interval SECS\n"                                            \
  "                         log the first refusal of an object at once,\n"     \
  "                         then a count of its refusals every SECS\n"         \
  "                         (default 10; 0: every refusal, whole)\n"

/* spec with the path after prefix made absolute (a detached daemon runs in
   "/" and reloads its files from there); a spec that does not start with
   prefix is copied as it is; "" as prefix takes spec as a path. NULL when
   out of memory. */
char *obspamd_absolute(const char *prefix, const char *spec);
/* Detaches before anything else starts (threads are created in the final
   process): the starter waits until the daemon calls obspamd_detached
   (exit 0) or dies (exit 1), so that start errors reach its terminal and
   its exit status. Returns the descriptor to hand to obspamd_detached. */
int obspamd_detach(const char *program);
/* The daemon is up: lets its starter go and drops the terminal. */
void obspamd_detached(int ready_fd);

/* ---- metrics ------------------------------------------------------------- */

/* Upper bounds of the request latency histogram, in microseconds. */
#define OBSPAMD_LATENCY_BUCKETS 12
extern const double obspamd_latency_bounds_us[OBSPAMD_LATENCY_BUCKETS];

/* Counters updated with __atomic builtins (relaxed) from any thread. */
typedef struct obspamd_metrics {
  uint64_t decisions[4];    /* by OBSPAM_ACCEPT .. OBSPAM_UNKNOWN */
  uint64_t refusals[6];     /* by kind of the refusing object */
  int64_t connections_open; /* policy or SMTP connections now */
  uint64_t connections_total;
  uint64_t requests_bad; /* malformed or over-long requests */
  uint64_t latency[OBSPAMD_LATENCY_BUCKETS + 1]; /* last one: +Inf */
  uint64_t latency_count;
  uint64_t latency_sum_us;
  uint64_t reloads_ok, reloads_failed;
  uint64_t saves_ok, saves_failed;
  uint64_t notices;
  int64_t last_save; /* Unix time of the last good save, 0 = none */
  /* Notification mails: handed to the command and accepted by it, failed
     (the command failed or timed out), dropped (queue full, or still
     queued at exit). */
  uint64_t mails_sent, mails_failed, mails_dropped;
} obspamd_metrics;

/* Counts one decision: its action, the refusing level, and the time the
   request took (from reading it to answering). */
void obspamd_metrics_decision(obspamd_metrics *m, const obspam_verdict *v,
                              double latency_us);
/* A connection accepted (open and total + 1) or closed (open - 1). */
void obspamd_metrics_connection_open(obspamd_metrics *m);
void obspamd_metrics_connection_close(obspamd_metrics *m);
/* A malformed or over-long request. */
void obspamd_metrics_bad_request(obspamd_metrics *m);

/* ---- the service -----------------------------------------------------------
 */

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

/* The SMTP reply for a refusal, without the leading status code, e.g.
   "4.7.1 mailbox info@example.com has sent to 20 recipients in the last
   60 minutes, its limit is 20 recipients per hour; try again in 7
   minutes". unit is the engine's OBSPAM_OPT_COUNT_UNIT (0 recipients, 1
   messages): the figures are said in that unit. reject selects 5.7.1; *code
   gets 451 or 550. A permanent refusal (reject, or a message that never
   fits) carries no retry hint. The text is printable ASCII (a byte outside
   it in a name is written '?'), at most OBSPAMD_REFUSAL_MAX bytes so that
   "550 " + text + CRLF fits the 512 bytes of an SMTP reply line, and never
   longer than size - 1. It may hold '%': libmilter's smfi_setreply needs
   it doubled. */
#define OBSPAMD_REFUSAL_MAX 500
void obspamd_refusal_text(const obspam_verdict *v, int reject, int unit,
                          int *code, char *buf, size_t size);
/* The same, knowing the message: a script refused at its subscription with
   no time to wait (and a limit other than 0) was refused because scripts
   may not send ("scripts of subscription acme may not send mail"), which
   the verdict alone cannot tell from a message with more recipients than
   the limit. m may be NULL. */
void obspamd_refusal_text_msg(const obspam_verdict *v, const obspam_message *m,
                              int reject, int unit, int *code, char *buf,
                              size_t size);
/* Logs one refusal: "refuse kind=mailbox object=... limit= count= unit=
   retry= queue_id= sasl= sender= client= recipients=" (+ " uid= script="
   for a script). unit is "recipients" or "messages", as the engine counts;
   queue_id is the MTA's queue ID of the message (NULL or "" when it has
   none yet). limit=unlimited, retry=never, a missing value is "-"; names
   keep their UTF-8, and blanks, control characters and bytes that are not
   UTF-8 are written '?'.

   Lines are coalesced per refusing object (kind and name): the first
   refusal of an object is logged whole at once and opens an interval
   (obspamd_refusal_log_interval); the refusals in it are only counted,
   and their count is logged as one line when it ends:
     refuse kind=mailbox object=info@example.com more=4180 seconds=10
     first_queue_id=4FgH2x1Kz9
   more: the refusals counted in the interval (in the first one, those
   after the refusal logged whole); seconds: its length; first_queue_id: the
   queue ID of the first of them ("-" when it had none). The line is written by
   obspamd_tick, or by the next refusal of the object if it comes first, and
   counts exactly the refusals whose time falls in the interval. Intervals with
   refusals follow each other back to back; one without ends the episode, and
   the object's next refusal is logged whole again. 3072 objects are counted at
   once; while that many are, the refusals of others are counted together as
   "refuse kind=- object=- more=...", the first of each interval logged
   whole. obspamd_service_stop logs what was counted (seconds: of the
   interval under way, rounded up). */
void obspamd_log_refusal(const obspam_verdict *v, const obspam_message *m,
                         int unit, const char *queue_id);
/* A refusal as a policy server answers it, in one call: logs it as
   obspamd_log_refusal does and writes its SMTP text into buf as
   obspamd_refusal_text_msg does, and returns the text's length. The
   text is kept beside the count of the object's refusals and copied
   again while its words stay the same (the count, limit and window, the
   minutes to wait, the action, the unit): in a flood, a refusal costs one
   lookup and a copy. Thread-safe. */
size_t obspamd_refusal(const obspam_verdict *v, const obspam_message *m,
                       int reject, int unit, const char *queue_id, int *code,
                       char *buf, size_t size);
/* The interval of those lines in seconds (--refusal-log-interval); 0
   logs every refusal whole. Default OBSPAMD_REFUSAL_LOG_INTERVAL. */
#define OBSPAMD_REFUSAL_LOG_INTERVAL 10
void obspamd_refusal_log_interval(int seconds);

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

/* Whether the engine's action option says reject (1) or defer (0). */
int obspamd_reject(obspamd_service *s);
/* The engine's count unit: 0 recipients, 1 messages. */
int obspamd_unit(obspamd_service *s);

/* ---- small helpers ------------------------------------------------------- */

/* "subscription", "domain", "mailbox", "script", "plan", "server"; "?" for
   another value. */
const char *obspamd_kind_name(int kind);
/* The kind named so, or -1. */
int obspamd_kind_parse(const char *name);
/* The length of the valid UTF-8 character that starts at s (1 to 4), or
   0 when the byte at s does not start one (a stray continuation byte, an
   overlong form, a surrogate, a code point above U+10FFFF, a sequence cut
   short). s must not be at its terminating NUL. */
int obspamd_utf8_char(const char *s);
/* "2024-05-01T12:34:56Z" (UTC) into buf (at least 21 bytes); "-" for 0. */
char *obspamd_iso_time(int64_t t, char *buf, size_t size);
/* The monotonic clock, which the daemons and obspamctl measure deadlines,
   idle times and durations by: in milliseconds, and in microseconds for
   the latencies the metrics report. */
int64_t obspamd_now_ms(void);
double obspamd_now_us(void);

#endif
