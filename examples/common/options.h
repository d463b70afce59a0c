/* SPDX-License-Identifier: MIT */
/* The command line both daemons share, their help lines, absolute paths
   and detaching (process.c). */
#ifndef OBSPAMD_OPTIONS_H
#define OBSPAMD_OPTIONS_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

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

/* getopt_long values of those options (and of --version and --help,
   which every daemon takes too); a daemon's own start at
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
  OBSPAMD_OPT_VERSION,
  OBSPAMD_OPT_HELP,
  OBSPAMD_OPT_OWN
};

/* The getopt_long entries of the shared options. */
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
   OBSPAMD_OPT_REFUSAL_LOG_INTERVAL},                                          \
  {"version", no_argument, NULL, OBSPAMD_OPT_VERSION},                         \
  {"help", no_argument, NULL, OBSPAMD_OPT_HELP}
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
/* The forms of socket address an option takes. */
enum { OBSPAMD_SPEC_UNIX = 1, OBSPAMD_SPEC_INET = 2 };
/* Checks that spec has one of forms (OBSPAMD_SPEC_* bits), then that it
   is a good address (obspamd_spec_check): returns 0, or -1 after saying
   what is wrong on stderr, e.g. "obspam-policyd: --control: bad value
   'inet:1.2.3.4:5': expected unix:PATH". */
int obspamd_spec_option(const char *program, const char *opt, const char *spec,
                        int forms);
/* Takes one of a daemon's own options into own: the value getopt_long
   returned for it and its argument (NULL for a flag). Returns 0, or -1
   after saying on stderr what is wrong with the value. */
typedef int obspamd_own_option(void *own, int opt, const char *arg);
/* Parses the command line: the shared options into o, from their
   defaults (o->save_interval OBSPAMD_SAVE_INTERVAL, o->socket_mode
   OBSPAMD_SOCKET_MODE, o->log OBSPAMD_LOG_AUTO, o->refusal_log_interval
   OBSPAMD_REFUSAL_LOG_INTERVAL, the rest none), --version and --help, and
   the daemon's n own options (longopts, values from OBSPAMD_OPT_OWN on)
   into own through take; then refuses arguments left over and a missing
   --config. Returns 0, 1 (--help or --version was printed: exit 0) or -1
   (a usage error, said on stderr). */
int obspamd_options_parse(const char *program, int argc, char **argv,
                          const struct option *longopts, size_t n,
                          obspamd_own_option *take, void *own,
                          void (*usage)(FILE *f), obspamd_options *o);
/* Adds arg, a value of option opt, which may be repeated, to the n values
   of list, which holds max of them (what they are: e.g. "listeners").
   Returns 0, or -1 after saying on stderr that there are too many. */
int obspamd_option_append(const char *program, const char *opt, const char *arg,
                          const char **list, int *n, int max, const char *what);

/* The defaults of --save-interval (seconds) and --socket-mode. */
#define OBSPAMD_SAVE_INTERVAL 60
#define OBSPAMD_SOCKET_MODE 0660

#define OBSPAMD_STR_(x) #x
#define OBSPAMD_STR(x) OBSPAMD_STR_(x)

/* The help lines of the options that keep and show the state, and of
   --reload-max-drop (its default from service.h). */
/* clang-format off */
#define OBSPAMD_USAGE_STATE                                                    \
  "  --state FILE           keep the counters in FILE: loaded at start,\n"     \
  "                         saved periodically and at exit\n"                  \
  "  --save-interval SECS   seconds between saves (default "                   \
  OBSPAMD_STR(OBSPAMD_SAVE_INTERVAL) "; 0: only\n"                             \
  "                         at exit)\n"                                        \
  "  --control unix:PATH    the control socket for obspamctl\n"                \
  "  --metrics inet:HOST:PORT\n"                                               \
  "                         serve Prometheus metrics at /metrics\n"            \
  "  --admin EMAIL          mail notices to this address too\n"                \
  "  --notify-command CMD   how to send mail, e.g. \"/usr/sbin/sendmail -t\"\n"
#define OBSPAMD_USAGE_RELOAD                                                   \
  "  --reload-max-drop PCT  refuse a reload that drops more than PCT%%\n"      \
  "                         of the objects (default "                          \
  OBSPAMD_STR(OBSPAMD_RELOAD_MAX_DROP) "; obspamctl\n"                         \
  "                         reload --force overrides)\n"
/* clang-format on */

/* The last lines of a daemon's help, which ends with the man page of
   program. */
#define OBSPAMD_USAGE_END(program)                                             \
  "  --check-config         load the configuration, report, and exit\n"        \
  "  --version              print the version and exit\n"                      \
  "  --help                 print this help and exit\n"                        \
  "\n"                                                                         \
  "Signals: SIGHUP reloads the configuration (a bad or suspicious file\n"      \
  "is logged and the running one kept); SIGTERM and SIGINT save the\n"         \
  "state and exit. See " program "(8).\n"

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

#endif
