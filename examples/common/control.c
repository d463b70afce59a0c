/* SPDX-License-Identifier: MIT */
/* The control socket: a Unix socket, mode 0600, served by a thread of its
   own; obspamctl is its client, and it works the same against
   obspam-policyd and obspam-milter.

   Protocol. A client connects, sends one request line and reads the
   answer until the daemon closes the connection. Only the daemon's own
   user and root may talk to it (the socket's mode, and the peer's
   credentials are checked).

   Request: one line of at most 4096 bytes ending with LF (a CR before it
   is ignored), words separated by single spaces. It must arrive within 5
   seconds of connecting.

     ping
     status KIND NAME            KIND: subscription, domain or mailbox
     report FROM TO              Unix times: the clock hours that overlap
                                 [FROM, TO)
     history KIND FROM TO NAME   KIND: subscription, domain, mailbox or
                                 script; NAME is the rest of the line (a
                                 script path may hold spaces)
     list KIND [parent=NAME] [active] [after=NAME] [limit=N]
                                 the objects of KIND in name order:
                                 under a parent, active only (mail in
                                 the day window or a refusal in the
                                 last hour), after a name, at most N
                                 (0 or none: all)
     top FROM TO [kind=KIND] [limit=N]
                                 the N (0 or none: all) objects (KIND
                                 also script) that sent most in the
                                 clock hours that overlap [FROM, TO)
     blocked                     every object that cannot send now
     overview                    what a panel's home page shows
     reset KIND NAME             empties an object's windows
     set-limit KIND NAME WHICH VALUE
                                 KIND also plan; WHICH subscription,
                                 domain, mailbox or max-recipients;
                                 VALUE as the configuration writes it
                                 (20/m,100/h); see obspamd_set_limit
     reload [force]              reloads the configuration file; force
                                 loads one that declares nothing, or
                                 drops more objects than
                                 --reload-max-drop allows
     save                        writes the state file now

   Answer: lines ending with LF. The first is "ok" or "error MESSAGE" (an
   error is the whole answer). After "ok" come records, one per line,
   fields separated by TAB, and a last line "end", so that a client can
   tell a complete answer from a broken connection. The answer is UTF-8:
   names keep their characters (jörg@example.com); no field holds a TAB
   or a control character, and a byte that is not part of valid UTF-8 is
   sent as '?' (the library already shows a control character in a
   script path as '?'). Times are Unix seconds, 0 for none; a limit of -1
   is unlimited.

     ping     name NAME / version LIBRARY-VERSION / pid PID / uptime SECONDS
     status   kind KIND / name NAME / sending 0|1 / limit N / count N /
              refused N / refused_total N / last_refused TIME /
              exceeded N / exceeded_total N / disabled 0|1 /
              blocked_kind KIND|- / blocked_by NAME (empty when
              blocked_kind is -), with limit_by N: the limit of
              blocked_by in the window it is full in (-1 when none) /
              limit_minute N / count_minute N / limit_day N / count_day N
              (limit and count are the hour's) / max_recipients N (-1
              unlimited) / window_by minute|hour|day|- (the window of
              limit_by: of those blocked_by is full in, the longest) /
              forwarded N / list_deliveries N (the current clock
              hour's forwards, part of its sent, and mailing-list
              deliveries, exempt or charged; from 1.4)
              (one "KEY<TAB>VALUE" line each, in this order)
     report   from FROM / to TO, then one line per row, in the library's
              order (refusals first, then scripts by messages sent):
              row KIND SENT REFUSED FIRST_REFUSED LAST_REFUSED EXCEEDED
                  LIMIT WINDOW UID SUBSCRIPTION FORWARDED LIST_DELIVERIES
                  NAME
              EXCEEDED: attempts over the object's own limit; WINDOW: the
              window of the last of them (minute, hour, day,
              max-recipients for the cap on recipients per message,
              scripts when scripts may not send, "-" when none); LIMIT:
              the object's limit in that window now (the hour's when
              none, the cap for max-recipients), -1 unlimited, "-" for a
              script or an object the configuration no longer has; UID
              and SUBSCRIPTION: a script's (of its last message), -1 and
              empty when unknown or not a script; FORWARDED: of SENT, the
              forwards; LIST_DELIVERIES: the mailing-list deliveries
              through the object, exempt or charged (both from 1.4)
     history  one line per clock hour with activity, oldest first:
              hour HOUR_START SENT REFUSED
              then, for an object that has one, its hourly limit now:
              limit N
              then the first hour the retention keeps (an hour before
              it is not kept, not one without mail) and the retention:
              kept HOUR_START HOURS
     list     one line per object, then, when more follow, the name the
              next page starts after:
              row KIND NAME SENDING SENT REFUSED EXCEEDED LIMIT COUNT
                  BLOCKED_KIND BLOCKED_BY LAST_RESET
              next NAME
              SENT: charged in the day window; REFUSED, EXCEEDED: in the
              last 60 minutes; LIMIT, COUNT: the hour's; BLOCKED_KIND "-"
              and BLOCKED_BY empty while it can send; LAST_RESET: the
              time of the last reset, 0 for none
     top      from FROM / to TO, then the rows, most sent first:
              row KIND SENT REFUSED EXCEEDED LIMIT COUNT SENDING UID
                  SUBSCRIPTION NAME
              SENT, REFUSED, EXCEEDED: in the period; LIMIT, COUNT,
              SENDING: the hour's now, "-" for a script (or an object no
              longer configured); UID and SUBSCRIPTION as in report
     blocked  one line per object that cannot send, subscriptions, then
              domains, then mailboxes, each in name order:
              row KIND NAME BLOCKED_KIND BLOCKED_BY WINDOW LIMIT
              WINDOW and LIMIT: the window the blocking object is full
              in and its limit there ("-" and -1 when unknown)
     overview enabled 0|1 / not_sending_subscriptions N /
              not_sending_domains N / not_sending_mailboxes N /
              refused_hour N (the last 60 minutes) / refused_day N (the
              clock hours from day_from, the current one and the 23
              before it) / day_from TIME / now TIME, then the five
              mailboxes and scripts that sent most in those hours, as
              top's rows (a refusal is counted once: on its
              subscription)
     reset, set-limit, reload, save
              message TEXT
              reset and set-limit are logged with the client's uid.

   For example:

     $ printf 'status mailbox info@example.com\n' | nc -U control.sock
     ok
     kind	mailbox
     name	info@example.com
     sending	0
     limit	20
     count	20
     refused	3
     refused_total	12
     last_refused	1714567496
     exceeded	3
     exceeded_total	12
     disabled	0
     blocked_kind	mailbox
     blocked_by	info@example.com
     limit_by	20
     limit_minute	-1
     count_minute	0
     limit_day	1000
     count_day	312
     max_recipients	50
     window_by	hour
     forwarded	0
     list_deliveries	0
     end

   Errors: "error unknown command 'x': expected ...", "error bad kind
   'plan': expected ...", "error usage: status KIND NAME", "error request
   is longer than 4096 bytes", "error reload failed: obspam.conf:12:
   ...", and the library's message for an unknown object ("error
   stats_get: no mailbox 'nobody@example.com'"). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "internal.h"
#include "log.h"
#include "refusal.h"
#include "service.h"
#include "sockets.h"
#include "util.h"

#define REQUEST_MAX 4096
#define READ_TIMEOUT_MS 5000
#define WRITE_TIMEOUT_MS 10000

static struct {
  obspamd_service *s;
  int fd, wake[2];
  pthread_t thread;
  int running;
  char path[108];
  dev_t dev;
  ino_t ino;
  int64_t started;
} ctl = {.fd = -1, .wake = {-1, -1}};

/* ---- the answer ---------------------------------------------------------- */

typedef struct answer {
  char *buf;
  size_t len, size;
  int failed; /* out of memory */
} answer;

static void add(answer *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add(answer *a, const char *fmt, ...) {
  va_list ap;
  int n;

  if (a->failed)
    return;
  for (;;) {
    va_start(ap, fmt);
    n = vsnprintf(a->buf ? a->buf + a->len : NULL,
                  a->buf ? a->size - a->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      a->failed = 1;
      return;
    }
    if (a->buf != NULL && a->len + (size_t)n < a->size) {
      a->len += (size_t)n;
      return;
    }
    {
      size_t size = a->size ? a->size * 2 : 4096;
      char *b;
      while (size < a->len + (size_t)n + 1)
        size *= 2;
      b = realloc(a->buf, size);
      if (b == NULL) {
        a->failed = 1;
        return;
      }
      a->buf = b;
      a->size = size;
    }
  }
}

/* An answer that is just an error replaces whatever was built. */
static void error(answer *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void error(answer *a, const char *fmt, ...) {
  char msg[1024], clean[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  obspamd__clean(clean, sizeof(clean), msg, OBSPAMD__CLEAN_UTF8);
  a->len = 0;
  add(a, "error %s\n", clean);
}

/* The engine's message for a failed call, when it is the one of this call
   (it names the function); otherwise, since another thread failed
   meanwhile, the code's description. */
static void engine_error(answer *a, const char *fn, int rc) {
  const char *msg = obspam_engine_errmsg(ctl.s->engine);
  size_t len = strlen(fn);

  if (strncmp(msg, fn, len) == 0 && msg[len] == ':')
    error(a, "%s", msg);
  else
    error(a, "%s: %s", fn, obspam_strerror(rc));
}

/* ---- commands ------------------------------------------------------------ */

static int parse_time(const char *word, int64_t *out) {
  char *end;
  long long v;

  if (word == NULL || *word < '0' || *word > '9')
    return -1;
  errno = 0;
  v = strtoll(word, &end, 10);
  if (errno != 0 || *end != '\0')
    return -1;
  *out = v;
  return 0;
}

static void lower(char *s) {
  for (; *s; s++)
    if (*s >= 'A' && *s <= 'Z')
      *s = (char)(*s - 'A' + 'a');
}

/* The name as the answer carries it. */
static const char *clean_name(char *buf, size_t size, const char *name) {
  obspamd__clean(buf, size, name,
                 OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8);
  return buf;
}

static void cmd_ping(answer *a) {
  char name[128];

  obspamd__clean(name, sizeof(name), ctl.s->name ? ctl.s->name : "obspamd", 1);
  add(a, "ok\nname\t%s\nversion\t%s\npid\t%ld\nuptime\t%" PRId64 "\nend\n",
      name, obspam_version_string(), (long)getpid(),
      (int64_t)time(NULL) - ctl.started);
}

static int status_kind(answer *a, const char *word, int script_too) {
  int kind = obspamd_kind_parse(word);

  if (kind == OBSPAM_SUBSCRIPTION || kind == OBSPAM_DOMAIN ||
      kind == OBSPAM_MAILBOX || (script_too && kind == OBSPAM_SCRIPT))
    return kind;
  error(a, "bad kind '%.64s': expected subscription, domain%s mailbox%s", word,
        script_too ? "," : " or", script_too ? " or script" : "");
  return -1;
}

/* Of the windows s would not fit one more recipient in, the longest
   (the one that keeps its mail out longest, as a rule), with its limit;
   "-" and -1 when none. */
static const char *full_window(const obspam_stats *s, int64_t *limit) {
  if (s->limit_day >= 0 && s->count_day + 1 > s->limit_day) {
    *limit = s->limit_day;
    return "day";
  }
  if (s->limit >= 0 && s->count + 1 > s->limit) {
    *limit = s->limit;
    return "hour";
  }
  if (s->limit_minute >= 0 && s->count_minute + 1 > s->limit_minute) {
    *limit = s->limit_minute;
    return "minute";
  }
  *limit = -1;
  return "-";
}

/* The effective cap on recipients of an object, -1 when unlimited or
   unknown. */
static int64_t cap_of(int kind, const char *name) {
  int64_t cap = -1;

  if (obspam_effective_max_recipients(ctl.s->engine, kind, name, &cap) !=
      OBSPAM_OK)
    return -1;
  return cap;
}

static void cmd_status(answer *a, char *args) {
  const int flags = OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8;
  obspam_stats st = OBSPAM_STATS_INIT, by = OBSPAM_STATS_INIT;
  char *name, clean[OBSPAM_NAME_MAX + 1], blocked[OBSPAM_NAME_MAX + 1] = "";
  const char *blocked_kind = "-", *window_by = "-";
  int64_t limit_by = -1;
  int kind, rc;

  name = args ? strchr(args, ' ') : NULL;
  if (name == NULL || name[1] == '\0') {
    error(a, "usage: status KIND NAME");
    return;
  }
  *name++ = '\0';
  if ((kind = status_kind(a, args, 0)) < 0)
    return;
  rc = obspam_stats_get(ctl.s->engine, kind, name, 0, &st);
  if (rc != OBSPAM_OK) {
    engine_error(a, "stats_get", rc);
    return;
  }
  obspamd__clean(clean, sizeof(clean), name, flags);
  lower(clean);
  if (st.blocked_kind >= 0 && st.blocked_by[0] != '\0') {
    /* The limit that blocks, for "not sending: subscription acme is at its
       limit of 1000 per day". An object removed in between has none. */
    st.blocked_by[sizeof(st.blocked_by) - 1] = '\0';
    blocked_kind = obspamd_kind_name(st.blocked_kind);
    obspamd__clean(blocked, sizeof(blocked), st.blocked_by, flags);
    if (st.blocked_kind == kind && strcmp(blocked, clean) == 0)
      window_by = full_window(&st, &limit_by);
    else if (obspam_stats_get(ctl.s->engine, st.blocked_kind, st.blocked_by, 0,
                              &by) == OBSPAM_OK)
      window_by = full_window(&by, &limit_by);
  }
  add(a,
      "ok\nkind\t%s\nname\t%s\nsending\t%d\nlimit\t%" PRId64 "\ncount\t%" PRId64
      "\nrefused\t%" PRId64 "\nrefused_total\t%" PRId64
      "\nlast_refused\t%" PRId64 "\nexceeded\t%" PRId64
      "\nexceeded_total\t%" PRId64
      "\ndisabled\t%d\nblocked_kind\t%s\nblocked_by\t%s\nlimit_by\t%" PRId64
      "\nlimit_minute\t%" PRId64 "\ncount_minute\t%" PRId64
      "\nlimit_day\t%" PRId64 "\ncount_day\t%" PRId64
      "\nmax_recipients\t%" PRId64 "\nwindow_by\t%s\nforwarded\t%" PRId64
      "\nlist_deliveries\t%" PRId64 "\nlast_reset\t%" PRId64 "\nend\n",
      obspamd_kind_name(kind), clean, st.sending ? 1 : 0, st.limit, st.count,
      st.refused, st.refused_total, st.last_refused, st.exceeded,
      st.exceeded_total, st.disabled ? 1 : 0, blocked_kind, blocked, limit_by,
      st.limit_minute < 0 ? -1 : st.limit_minute, st.count_minute,
      st.limit_day < 0 ? -1 : st.limit_day, st.count_day, cap_of(kind, name),
      window_by, st.forwarded, st.list_deliveries, st.last_reset);
}

/* The rows of a report, kept until it ends: the limit of each object is
   read from the engine, which its callback must not call. */
typedef struct report_rows {
  obspam_report_row *rows;
  char **names, **subs; /* subs: a script's subscription, or NULL */
  size_t n, size;
  int failed;
} report_rows;

static void report_rows_free(report_rows *rr) {
  size_t i;

  for (i = 0; i < rr->n; i++) {
    free(rr->names[i]);
    free(rr->subs[i]);
  }
  free(rr->names);
  free(rr->subs);
  free(rr->rows);
}

static void report_row(const obspam_report_row *r, void *ud) {
  report_rows *rr = ud;

  if (rr->failed)
    return;
  if (rr->n == rr->size) {
    size_t size = rr->size ? rr->size * 2 : 64;
    obspam_report_row *rows = realloc(rr->rows, size * sizeof(*rows));
    char **names;
    if (rows == NULL) {
      rr->failed = 1;
      return;
    }
    rr->rows = rows;
    names = realloc(rr->names, size * sizeof(*names));
    if (names == NULL) {
      rr->failed = 1;
      return;
    }
    rr->names = names;
    names = realloc(rr->subs, size * sizeof(*names));
    if (names == NULL) {
      rr->failed = 1;
      return;
    }
    rr->subs = names;
    rr->size = size;
  }
  rr->names[rr->n] = strdup(r->name);
  if (rr->names[rr->n] == NULL) {
    rr->failed = 1;
    return;
  }
  /* A library older than 1.3 passes a shorter row, without the
     subscription and uid of a script. */
  rr->subs[rr->n] = NULL;
  if (r->struct_size >= sizeof(*r) && r->subscription != NULL &&
      (rr->subs[rr->n] = strdup(r->subscription)) == NULL) {
    free(rr->names[rr->n]);
    rr->failed = 1;
    return;
  }
  /* A library older than 1.3 passes a shorter row, without exceeded:
     only what it passed is read. */
  {
    obspam_report_row init = OBSPAM_REPORT_ROW_INIT;
    rr->rows[rr->n] = init;
  }
  memcpy(&rr->rows[rr->n], r,
         r->struct_size < sizeof(*r) ? r->struct_size : sizeof(*r));
  rr->rows[rr->n].struct_size = sizeof(*r);
  rr->n++;
}

/* Whether the scripts of the subscription name may not send now, as a
   check (which changes nothing) of a one-recipient message of one of the
   script rows of rr that it owns tells; 0 when it has none. */
static int scripts_forbidden(const report_rows *rr, const char *name) {
  size_t i;

  for (i = 0; i < rr->n; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    if (rr->rows[i].kind != OBSPAM_SCRIPT || rr->rows[i].uid < 0 ||
        rr->subs[i] == NULL || strcmp(rr->subs[i], name) != 0)
      continue;
    m.flags = OBSPAM_MSG_SCRIPT;
    m.uid = rr->rows[i].uid;
    return obspam_check(ctl.s->engine, &m, &v) == OBSPAM_OK &&
           v.action == OBSPAM_REFUSE && v.kind == OBSPAM_SUBSCRIPTION &&
           strcmp(v.object, name) == 0 &&
           obspamd_refusal_reason(&v, &m) == OBSPAMD_REASON_SCRIPTS;
  }
  return 0;
}

/* The window of a report row's last attempt over its own limit, by name:
   "minute", "hour", "day"; with none (0), "max-recipients" or "scripts"
   for an object that went over, and "-" for one that never did. The row
   does not tell the last two apart: only a subscription goes over its
   own limit for forbidden scripts, and it is "scripts" when it has no
   cap, or when its scripts may not send now (a subscription's cap is
   most often the server's default, which forbidden scripts do not
   change). */
static const char *row_window(const obspam_report_row *r, const char *name,
                              const report_rows *rr) {
  if (r->window == OBSPAM_WINDOW_MINUTE)
    return "minute";
  if (r->window == OBSPAM_WINDOW_HOUR)
    return "hour";
  if (r->window == OBSPAM_WINDOW_DAY)
    return "day";
  if (r->exceeded <= 0 || r->kind == OBSPAM_SCRIPT)
    return "-";
  return r->kind != OBSPAM_SUBSCRIPTION ||
                 (cap_of(r->kind, name) >= 0 && !scripts_forbidden(rr, name))
             ? "max-recipients"
             : "scripts";
}

/* The start of the answer of report or top (cmd), which rc and rr end
   when the engine failed or memory ran out. Returns whether the rows
   follow. */
static int rows_header(answer *a, const char *cmd, int rc,
                       const report_rows *rr, int64_t from_t, int64_t to_t) {
  if (rc != OBSPAM_OK)
    engine_error(a, cmd, rc);
  else if (rr->failed)
    a->failed = 1;
  else
    add(a, "ok\nfrom\t%" PRId64 "\nto\t%" PRId64 "\n", from_t, to_t);
  return rc == OBSPAM_OK && !rr->failed;
}

static void cmd_report(answer *a, char *args) {
  char *to = args ? strchr(args, ' ') : NULL;
  report_rows rr = {NULL, NULL, NULL, 0, 0, 0};
  int64_t from_t, to_t;
  size_t i;
  int rc;

  if (to == NULL || strchr(to + 1, ' ') != NULL) {
    error(a, "usage: report FROM TO (Unix times)");
    return;
  }
  *to++ = '\0';
  if (parse_time(args, &from_t) != 0 || parse_time(to, &to_t) != 0) {
    error(a, "bad time '%.64s': expected Unix seconds",
          parse_time(args, &from_t) != 0 ? args : to);
    return;
  }
  rc = obspam_report(ctl.s->engine, from_t, to_t, report_row, &rr);
  if (rows_header(a, "report", rc, &rr, from_t, to_t)) {
    for (i = 0; i < rr.n; i++) {
      const obspam_report_row *r = &rr.rows[i];
      const char *window = row_window(r, rr.names[i], &rr);
      obspam_stats st = OBSPAM_STATS_INIT;
      char name[1100], limit[24] = "-", sub[OBSPAM_NAME_MAX + 1];
      if (r->kind != OBSPAM_SCRIPT &&
          obspam_stats_get(ctl.s->engine, r->kind, rr.names[i], 0, &st) ==
              OBSPAM_OK) {
        int64_t l = strcmp(window, "minute") == 0 ? st.limit_minute
                    : strcmp(window, "day") == 0  ? st.limit_day
                    : strcmp(window, "max-recipients") == 0
                        ? cap_of(r->kind, rr.names[i])
                        : st.limit;
        snprintf(limit, sizeof(limit), "%" PRId64, l < 0 ? -1 : l);
      }
      obspamd__clean(name, sizeof(name), rr.names[i], OBSPAMD__CLEAN_UTF8);
      if (r->kind == OBSPAM_SCRIPT && rr.subs[i] != NULL)
        clean_name(sub, sizeof(sub), rr.subs[i]);
      else
        sub[0] = '\0';
      add(a,
          "row\t%s\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64
          "\t%" PRId64 "\t%s\t%s\t%" PRId64 "\t%s\t%" PRId64 "\t%" PRId64
          "\t%s\n",
          obspamd_kind_name(r->kind), r->sent, r->refused, r->first_refused,
          r->last_refused, r->exceeded, limit, window,
          r->kind == OBSPAM_SCRIPT ? r->uid : -1, sub, r->forwarded,
          r->list_deliveries, name);
    }
    add(a, "end\n");
  }
  report_rows_free(&rr);
}

static void history_hour(int64_t hour, int64_t sent, int64_t refused,
                         void *ud) {
  add(ud, "hour\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\n", hour, sent, refused);
}

static void cmd_history(answer *a, char *args) {
  char *words[3], *rest = args, *name;
  int64_t from_t, to_t, retention;
  int i, kind, rc;

  for (i = 0; i < 3; i++) {
    char *sp = rest ? strchr(rest, ' ') : NULL;
    if (sp == NULL) {
      error(a, "usage: history KIND FROM TO NAME");
      return;
    }
    words[i] = rest;
    *sp = '\0';
    rest = sp + 1;
  }
  name = rest;
  if (*name == '\0') {
    error(a, "usage: history KIND FROM TO NAME");
    return;
  }
  if ((kind = status_kind(a, words[0], 1)) < 0)
    return;
  for (i = 1; i < 3; i++)
    if (parse_time(words[i], i == 1 ? &from_t : &to_t) != 0) {
      error(a, "bad time '%.64s': expected Unix seconds", words[i]);
      return;
    }
  add(a, "ok\n");
  rc = obspam_history(ctl.s->engine, kind, name, from_t, to_t, history_hour, a);
  if (rc != OBSPAM_OK) {
    engine_error(a, "history", rc);
    return;
  }
  /* The hourly limit, which a chart of the hours draws as a line. */
  if (kind != OBSPAM_SCRIPT) {
    int64_t limit;

    if (obspam_effective_limit(ctl.s->engine, kind, name, &limit) ==
            OBSPAM_OK &&
        limit >= 0)
      add(a, "limit\t%" PRId64 "\n", limit);
  }
  /* The library keeps the hours of the retention up to the hour of now
     (store.h, obspam__hour_cutoff): the client tells an hour before those
     from one without mail. */
  if (obspam_get_option(ctl.s->engine, OBSPAM_OPT_RETENTION_HOURS,
                        &retention) == OBSPAM_OK) {
    int64_t now = (int64_t)time(NULL);

    add(a, "kept\t%" PRId64 "\t%" PRId64 "\n",
        now - now % 3600 - (retention - 1) * 3600, retention);
  }
  add(a, "end\n");
}

/* ---- panels: list, top, blocked, overview, reset, set-limit ----------- */

/* Objects as obspam_enumerate gives them, kept so that the engine is not
   called from its callback and is held for one page at a time. */
typedef struct object_rows {
  struct object_row {
    int kind;
    char *name;
    obspam_stats st;
  } * rows;
  size_t n, size;
  int failed;
  int sending_too; /* keep objects that send (0: only those that do not) */
} object_rows;

static int object_row(int kind, const char *name, const obspam_stats *st,
                      void *ud) {
  object_rows *o = ud;
  struct object_row *r;

  if (o->failed)
    return 1;
  if (o->n == o->size) {
    size_t size = o->size ? o->size * 2 : 256;
    struct object_row *rows = realloc(o->rows, size * sizeof(*rows));
    if (rows == NULL) {
      o->failed = 1;
      return 1;
    }
    o->rows = rows;
    o->size = size;
  }
  r = &o->rows[o->n];
  r->name = strdup(name);
  if (r->name == NULL) {
    o->failed = 1;
    return 1;
  }
  r->kind = kind;
  memset(&r->st, 0, sizeof(r->st));
  memcpy(&r->st, st,
         st->struct_size < sizeof(r->st) ? st->struct_size : sizeof(r->st));
  r->st.blocked_by[sizeof(r->st.blocked_by) - 1] = '\0';
  o->n++;
  return 0;
}

static void object_rows_free(object_rows *o) {
  size_t i;

  for (i = 0; i < o->n; i++)
    free(o->rows[i].name);
  free(o->rows);
}

/* Pages through the objects of a kind, a thousand per call, so that
   decisions never wait for a whole listing; at most max of them (0: all),
   keeping only those that do not send unless o->sending_too. Returns the
   library's code. */
#define PAGE 1000
static int enumerate(object_rows *o, int kind, const char *parent,
                     uint32_t flags, const char *after, size_t max) {
  char last[OBSPAM_NAME_MAX + 1] = "";
  int rc;

  if (after != NULL)
    snprintf(last, sizeof(last), "%s", after);
  for (;;) {
    size_t before = o->n, want = PAGE, i, kept;
    if (o->sending_too && max > 0 && max - o->n < want)
      want = max - o->n;
    rc = obspam_enumerate(ctl.s->engine, kind, parent, flags, last, want, 0,
                          object_row, o);
    if (rc != OBSPAM_OK || o->failed)
      return rc;
    if (o->n == before)
      return OBSPAM_OK;
    snprintf(last, sizeof(last), "%s", o->rows[o->n - 1].name);
    if (!o->sending_too) {
      for (i = kept = before; i < o->n; i++) {
        if (o->rows[i].st.sending)
          free(o->rows[i].name);
        else
          o->rows[kept++] = o->rows[i];
      }
      o->n = kept;
    }
    if (o->n - before < want && o->sending_too)
      return OBSPAM_OK;
    if (max > 0 && o->n >= max)
      return OBSPAM_OK;
  }
}

/* "KEY=VALUE" words of a request into the values asked for; a word
   without '=' is a flag. Returns 0, or -1 after answering the error. */
static int options(answer *a, char *args, const char *usage,
                   const char *const *keys, char **values, int nkeys) {
  char *word, *save = NULL;
  int k;

  for (k = 0; k < nkeys; k++)
    values[k] = NULL;
  for (word = args ? strtok_r(args, " ", &save) : NULL; word != NULL;
       word = strtok_r(NULL, " ", &save)) {
    char *eq = strchr(word, '=');
    size_t len = eq ? (size_t)(eq - word) : strlen(word);
    /* A flag is written "active!" in keys, so that it takes no value. */
    for (k = 0; k < nkeys; k++) {
      size_t kl = strlen(keys[k]);
      int flag = keys[k][kl - 1] == '!';
      if ((flag ? kl - 1 : kl) == len && strncmp(word, keys[k], len) == 0 &&
          (eq == NULL) == flag)
        break;
    }
    if (k == nkeys || values[k] != NULL || (eq != NULL && eq[1] == '\0')) {
      char clean[80];
      obspamd__clean(clean, sizeof(clean), word, OBSPAMD__CLEAN_UTF8);
      error(a, "bad option '%.64s': usage: %s", clean, usage);
      return -1;
    }
    values[k] = eq ? eq + 1 : word;
  }
  return 0;
}

static int parse_count(answer *a, const char *word, size_t *out) {
  int64_t v;

  if (parse_time(word, &v) != 0 || v > 100000000) {
    error(a, "bad limit '%.64s': expected a count, 0..100000000", word);
    return -1;
  }
  *out = (size_t)v;
  return 0;
}

static void cmd_list(answer *a, char *args) {
  static const char *const keys[] = {"parent", "active!", "after", "limit"};
  static const char usage[] =
      "list KIND [parent=NAME] [active] [after=NAME] [limit=N]";
  object_rows o = {NULL, 0, 0, 0, 1};
  char *values[4], *rest = args ? strchr(args, ' ') : NULL;
  size_t max = 0, i;
  int kind, rc;

  if (args == NULL || *args == '\0') {
    error(a, "usage: %s", usage);
    return;
  }
  if (rest != NULL)
    *rest++ = '\0';
  if ((kind = status_kind(a, args, 0)) < 0 ||
      options(a, rest, usage, keys, values, 4) != 0 ||
      (values[3] != NULL && parse_count(a, values[3], &max) != 0))
    return;
  /* The library orders the lower-case names. */
  if (values[2] != NULL)
    lower(values[2]);
  /* One more than asked: whether there is a next page. */
  rc = enumerate(&o, kind, values[0], values[1] ? OBSPAM_ENUM_ACTIVE : 0,
                 values[2], max ? max + 1 : 0);
  if (rc != OBSPAM_OK) {
    engine_error(a, "enumerate", rc);
  } else if (o.failed) {
    a->failed = 1;
  } else {
    char name[OBSPAM_NAME_MAX + 1], by[OBSPAM_NAME_MAX + 1];
    size_t shown = max && o.n > max ? max : o.n;
    add(a, "ok\n");
    for (i = 0; i < shown; i++) {
      const obspam_stats *st = &o.rows[i].st;
      add(a,
          "row\t%s\t%s\t%d\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64
          "\t%" PRId64 "\t%s\t%s\t%" PRId64 "\n",
          obspamd_kind_name(kind),
          clean_name(name, sizeof(name), o.rows[i].name), st->sending ? 1 : 0,
          st->count_day, st->refused, st->exceeded,
          st->limit < 0 ? -1 : st->limit, st->count,
          st->blocked_kind >= 0 ? obspamd_kind_name(st->blocked_kind) : "-",
          st->blocked_kind >= 0 ? clean_name(by, sizeof(by), st->blocked_by)
                                : "",
          st->last_reset);
    }
    if (shown < o.n)
      add(a, "next\t%s\n",
          clean_name(name, sizeof(name), o.rows[shown - 1].name));
    add(a, "end\n");
  }
  object_rows_free(&o);
}

/* Rows of obspam_top, with each object's live hour and state. */
static void add_top_rows(answer *a, const report_rows *rr, size_t n) {
  size_t i;

  for (i = 0; i < rr->n && i < n; i++) {
    const obspam_report_row *r = &rr->rows[i];
    obspam_stats st = OBSPAM_STATS_INIT;
    char name[1100], sub[OBSPAM_NAME_MAX + 1] = "", live[64] = "-\t-\t-";
    if (r->kind != OBSPAM_SCRIPT &&
        obspam_stats_get(ctl.s->engine, r->kind, rr->names[i], 0, &st) ==
            OBSPAM_OK)
      snprintf(live, sizeof(live), "%" PRId64 "\t%" PRId64 "\t%d",
               st.limit < 0 ? -1 : st.limit, st.count, st.sending ? 1 : 0);
    if (r->kind == OBSPAM_SCRIPT && rr->subs[i] != NULL)
      clean_name(sub, sizeof(sub), rr->subs[i]);
    obspamd__clean(name, sizeof(name), rr->names[i], OBSPAMD__CLEAN_UTF8);
    add(a,
        "row\t%s\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%s\t%" PRId64
        "\t%s\t%s\n",
        obspamd_kind_name(r->kind), r->sent, r->refused, r->exceeded, live,
        r->kind == OBSPAM_SCRIPT ? r->uid : -1, sub, name);
  }
}

static void cmd_top(answer *a, char *args) {
  static const char *const keys[] = {"kind", "limit"};
  static const char usage[] = "top FROM TO [kind=KIND] [limit=N]";
  report_rows rr = {NULL, NULL, NULL, 0, 0, 0};
  char *values[2], *to = args ? strchr(args, ' ') : NULL, *rest;
  int64_t from_t, to_t;
  size_t max = 0;
  int kind = -1, rc;

  if (to == NULL) {
    error(a, "usage: %s", usage);
    return;
  }
  *to++ = '\0';
  rest = strchr(to, ' ');
  if (rest != NULL)
    *rest++ = '\0';
  if (parse_time(args, &from_t) != 0 || parse_time(to, &to_t) != 0) {
    error(a, "bad time '%.64s': expected Unix seconds",
          parse_time(args, &from_t) != 0 ? args : to);
    return;
  }
  if (options(a, rest, usage, keys, values, 2) != 0 ||
      (values[0] != NULL && (kind = status_kind(a, values[0], 1)) < 0) ||
      (values[1] != NULL && parse_count(a, values[1], &max) != 0))
    return;
  rc = obspam_top(ctl.s->engine, kind, from_t, to_t, max, report_row, &rr);
  if (rows_header(a, "top", rc, &rr, from_t, to_t)) {
    add_top_rows(a, &rr, rr.n);
    add(a, "end\n");
  }
  report_rows_free(&rr);
}

/* The objects that do not send now, subscriptions first, then domains,
   then mailboxes, each kind in name order. */
static int not_sending(object_rows *o) {
  static const int kinds[] = {OBSPAM_SUBSCRIPTION, OBSPAM_DOMAIN,
                              OBSPAM_MAILBOX};
  size_t k;
  int rc = OBSPAM_OK;

  o->sending_too = 0;
  for (k = 0; k < 3 && rc == OBSPAM_OK && !o->failed; k++)
    rc = enumerate(o, kinds[k], NULL, 0, NULL, 0);
  return rc;
}

static void cmd_blocked(answer *a) {
  object_rows o = {NULL, 0, 0, 0, 0};
  size_t i;
  int rc = not_sending(&o);

  if (rc != OBSPAM_OK) {
    engine_error(a, "enumerate", rc);
  } else if (o.failed) {
    a->failed = 1;
  } else {
    add(a, "ok\n");
    for (i = 0; i < o.n; i++) {
      const obspam_stats *st = &o.rows[i].st;
      obspam_stats by = OBSPAM_STATS_INIT;
      const char *window = "-";
      char name[OBSPAM_NAME_MAX + 1], bname[OBSPAM_NAME_MAX + 1] = "";
      int64_t limit = -1;
      if (st->blocked_kind < 0) {
        add(a, "row\t%s\t%s\t-\t\t-\t-1\n", obspamd_kind_name(o.rows[i].kind),
            clean_name(name, sizeof(name), o.rows[i].name));
        continue;
      }
      if (st->blocked_kind == o.rows[i].kind &&
          strcmp(st->blocked_by, o.rows[i].name) == 0)
        window = full_window(st, &limit);
      else if (obspam_stats_get(ctl.s->engine, st->blocked_kind, st->blocked_by,
                                0, &by) == OBSPAM_OK)
        window = full_window(&by, &limit);
      add(a, "row\t%s\t%s\t%s\t%s\t%s\t%" PRId64 "\n",
          obspamd_kind_name(o.rows[i].kind),
          clean_name(name, sizeof(name), o.rows[i].name),
          obspamd_kind_name(st->blocked_kind),
          clean_name(bname, sizeof(bname), st->blocked_by), window, limit);
    }
    add(a, "end\n");
  }
  object_rows_free(&o);
}

/* The senders of a home page: mailboxes and scripts (the objects that
   send; domains and subscriptions add them up), most sent first, then
   most refused, ties by kind and name, as obspam_top orders. */
static int top_senders(report_rows *rr, int64_t from, int64_t to, size_t n) {
  report_rows scripts = {NULL, NULL, NULL, 0, 0, 0};
  size_t i = 0, j = 0, k;
  report_rows out = {NULL, NULL, NULL, 0, 0, 0};
  int rc =
      obspam_top(ctl.s->engine, OBSPAM_MAILBOX, from, to, n, report_row, rr);

  if (rc == OBSPAM_OK)
    rc = obspam_top(ctl.s->engine, OBSPAM_SCRIPT, from, to, n, report_row,
                    &scripts);
  if (rc != OBSPAM_OK || rr->failed || scripts.failed) {
    rr->failed |= scripts.failed;
    report_rows_free(&scripts);
    return rc;
  }
  /* Merge the two sorted lists: mailboxes come before scripts on a tie. */
  for (k = 0; k < n && (i < rr->n || j < scripts.n); k++) {
    const obspam_report_row *m = i < rr->n ? &rr->rows[i] : NULL,
                            *s = j < scripts.n ? &scripts.rows[j] : NULL;
    int take_script =
        m == NULL ||
        (s != NULL && (s->sent > m->sent ||
                       (s->sent == m->sent && s->refused > m->refused)));
    report_rows *from_rows = take_script ? &scripts : rr;
    size_t *at = take_script ? &j : &i;
    obspam_report_row row = from_rows->rows[*at];
    row.name = from_rows->names[*at];
    row.subscription = from_rows->subs[*at];
    report_row(&row, &out);
    (*at)++;
  }
  report_rows_free(&scripts);
  report_rows_free(rr);
  *rr = out;
  return OBSPAM_OK;
}

static void cmd_overview(answer *a) {
  object_rows o = {NULL, 0, 0, 0, 0}, subs = {NULL, 0, 0, 0, 1};
  report_rows day = {NULL, NULL, NULL, 0, 0, 0},
              top = {NULL, NULL, NULL, 0, 0, 0};
  int64_t now = (int64_t)time(NULL), enabled = 1, refused_hour = 0,
          refused_day = 0, day_from = now - now % 3600 - 23 * 3600;
  size_t i, blocked[3] = {0, 0, 0};
  int rc;

  obspam_get_option(ctl.s->engine, OBSPAM_OPT_ENABLED, &enabled);
  rc = not_sending(&o);
  if (rc == OBSPAM_OK)
    rc = enumerate(&subs, OBSPAM_SUBSCRIPTION, NULL, OBSPAM_ENUM_ACTIVE, NULL,
                   0);
  if (rc == OBSPAM_OK)
    rc = obspam_top(ctl.s->engine, OBSPAM_SUBSCRIPTION, day_from, now + 1, 0,
                    report_row, &day);
  if (rc == OBSPAM_OK)
    rc = top_senders(&top, day_from, now + 1, 5);
  if (rc != OBSPAM_OK) {
    engine_error(a, "overview", rc);
  } else if (o.failed || subs.failed || day.failed || top.failed) {
    a->failed = 1;
  } else {
    /* Every refusal is recorded on the subscription it was charged to,
       once: the subscriptions' refusals are the server's. */
    for (i = 0; i < subs.n; i++)
      refused_hour += subs.rows[i].st.refused;
    for (i = 0; i < day.n; i++)
      refused_day += day.rows[i].refused;
    for (i = 0; i < o.n; i++)
      blocked[o.rows[i].kind - OBSPAM_SUBSCRIPTION]++;
    add(a,
        "ok\nenabled\t%d\nnot_sending_subscriptions\t%zu\n"
        "not_sending_domains\t%zu\nnot_sending_mailboxes\t%zu\n"
        "refused_hour\t%" PRId64 "\nrefused_day\t%" PRId64
        "\nday_from\t%" PRId64 "\nnow\t%" PRId64 "\n",
        enabled ? 1 : 0, blocked[0], blocked[1], blocked[2], refused_hour,
        refused_day, day_from, now);
    add_top_rows(a, &top, 5);
    add(a, "end\n");
  }
  object_rows_free(&o);
  object_rows_free(&subs);
  report_rows_free(&day);
  report_rows_free(&top);
}

static void cmd_reset(answer *a, char *args, long uid) {
  char *name = args ? strchr(args, ' ') : NULL, clean[OBSPAM_NAME_MAX + 1];
  int kind, rc;

  if (name == NULL || name[1] == '\0' || strchr(name + 1, ' ') != NULL) {
    error(a, "usage: reset KIND NAME");
    return;
  }
  *name++ = '\0';
  if ((kind = status_kind(a, args, 0)) < 0)
    return;
  rc = obspam_reset(ctl.s->engine, kind, name, 0);
  if (rc != OBSPAM_OK) {
    engine_error(a, "reset", rc);
    return;
  }
  clean_name(clean, sizeof(clean), name);
  lower(clean);
  obspamd_log(LOG_NOTICE, "reset kind=%s object=%s uid=%ld",
              obspamd_kind_name(kind), clean, uid);
  add(a, "ok\nmessage\t%s %s: counters reset\nend\n", obspamd_kind_name(kind),
      clean);
}

static void cmd_set_limit(answer *a, char *args, long uid) {
  char *words[4], *rest = args, msg[700], clean[700];
  int i, kind, rc;

  for (i = 0; i < 4; i++) {
    char *sp = rest ? strchr(rest, ' ') : NULL;
    if (rest == NULL || *rest == '\0' || (i < 3) != (sp != NULL)) {
      error(a, "usage: set-limit KIND NAME WHICH VALUE");
      return;
    }
    words[i] = rest;
    if (sp != NULL)
      *sp = '\0';
    rest = sp ? sp + 1 : NULL;
  }
  kind = obspamd_kind_parse(words[0]);
  if (kind != OBSPAM_PLAN && kind != OBSPAM_SUBSCRIPTION &&
      kind != OBSPAM_DOMAIN && kind != OBSPAM_MAILBOX) {
    error(a, "bad kind '%.64s': expected plan, subscription, domain or mailbox",
          words[0]);
    return;
  }
  rc = obspamd_set_limit(ctl.s, kind, words[1], words[2], words[3], uid, msg,
                         sizeof(msg));
  if (rc != OBSPAM_OK) {
    error(a, "%s", msg);
    return;
  }
  obspamd__clean(clean, sizeof(clean), msg, OBSPAMD__CLEAN_UTF8);
  add(a, "ok\nmessage\t%s\nend\n", clean);
}

static void cmd_reload_save(answer *a, int save, int force) {
  char msg[700], clean[700];
  int rc = save ? obspamd_save(ctl.s, msg, sizeof(msg))
                : obspamd_reload_force(ctl.s, force, msg, sizeof(msg));

  if (rc != OBSPAM_OK) {
    error(a, "%s failed: %s", save ? "save" : "reload", msg);
    return;
  }
  obspamd__clean(clean, sizeof(clean), msg, OBSPAMD__CLEAN_UTF8);
  add(a, "ok\nmessage\t%s\nend\n", clean);
}

#define COMMANDS                                                               \
  "ping, status, report, history, list, top, blocked, overview, reset, "       \
  "set-limit, reload or save"

static void dispatch(answer *a, char *line, long uid) {
  char *args = strchr(line, ' ');

  if (args != NULL)
    *args++ = '\0';
  if (*line == '\0') {
    error(a, "empty request: expected a command (" COMMANDS ")");
  } else if (strcmp(line, "ping") == 0 && args == NULL) {
    cmd_ping(a);
  } else if (strcmp(line, "status") == 0) {
    cmd_status(a, args);
  } else if (strcmp(line, "report") == 0) {
    cmd_report(a, args);
  } else if (strcmp(line, "history") == 0) {
    cmd_history(a, args);
  } else if (strcmp(line, "list") == 0) {
    cmd_list(a, args);
  } else if (strcmp(line, "top") == 0) {
    cmd_top(a, args);
  } else if (strcmp(line, "blocked") == 0 || strcmp(line, "overview") == 0) {
    if (args != NULL)
      error(a, "usage: %s (no arguments)", line);
    else if (line[0] == 'b')
      cmd_blocked(a);
    else
      cmd_overview(a);
  } else if (strcmp(line, "reset") == 0) {
    cmd_reset(a, args, uid);
  } else if (strcmp(line, "set-limit") == 0) {
    cmd_set_limit(a, args, uid);
  } else if (strcmp(line, "reload") == 0) {
    if (args != NULL && strcmp(args, "force") != 0)
      error(a, "usage: reload [force]");
    else
      cmd_reload_save(a, 0, args != NULL);
  } else if (strcmp(line, "save") == 0) {
    if (args != NULL)
      error(a, "usage: save (no arguments)");
    else
      cmd_reload_save(a, 1, 0);
  } else if (strcmp(line, "ping") == 0) {
    error(a, "usage: ping (no arguments)");
  } else {
    char clean[80];
    obspamd__clean(clean, sizeof(clean), line, 0);
    error(a, "unknown command '%.64s': expected " COMMANDS, clean);
  }
}

/* ---- serving a connection ------------------------------------------------ */

/* Reads the request line. Returns its length, -1 when the client went
   away or was too slow, -2 when the line is too long. */
static int read_line(int fd, char *buf) {
  int64_t deadline = obspamd_now_ms() + READ_TIMEOUT_MS;
  size_t len = 0;

  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    int64_t left = deadline - obspamd_now_ms();
    char *eol;
    ssize_t n;
    if (left <= 0 || poll(&p, 1, (int)left) == 0)
      return -1;
    n = recv(fd, buf + len, REQUEST_MAX - len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      continue;
    if (n <= 0)
      return -1;
    buf[len + (size_t)n] = '\0';
    eol = memchr(buf + len, '\n', (size_t)n);
    len += (size_t)n;
    if (eol != NULL) {
      *eol = '\0';
      len = (size_t)(eol - buf);
      if (len > 0 && buf[len - 1] == '\r')
        buf[--len] = '\0';
      return (int)len;
    }
    if (len == REQUEST_MAX)
      return -2;
  }
}

static void write_all(int fd, const char *buf, size_t len) {
  int64_t deadline = obspamd_now_ms() + WRITE_TIMEOUT_MS;
  size_t off = 0;

  while (off < len) {
    struct pollfd p = {fd, POLLOUT, 0};
    int64_t left = deadline - obspamd_now_ms();
    ssize_t n;
    if (left <= 0 || poll(&p, 1, (int)left) == 0) {
      obspamd_log(LOG_WARNING, "control: a client did not read its answer "
                               "within 10 s: dropped");
      return;
    }
    n = send(fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      continue;
    if (n <= 0)
      return;
    off += (size_t)n;
  }
}

/* Closing a socket with unread input makes the kernel reset the
   connection, and the client may lose the answer (a request that was too
   long): what is already there is read and dropped first. */
static void drain(int fd) {
  char buf[4096];
  int i;

  shutdown(fd, SHUT_WR);
  for (i = 0; i < 16; i++)
    if (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
      break;
}

static void serve(int fd) {
  char line[REQUEST_MAX + 1];
  answer a = {NULL, 0, 0, 0};
  struct ucred cred;
  socklen_t len = sizeof(cred);
  int n;

  /* Who asks decides what may be asked: a client whose credentials
     cannot be read is refused, as a user who may not ask is. */
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    obspamd_log(LOG_WARNING,
                "control: refused a client whose credentials cannot be "
                "read: %s",
                strerror(errno));
    error(&a, "permission denied");
  } else if (cred.uid != 0 && cred.uid != geteuid()) {
    obspamd_log(LOG_WARNING, "control: refused a client of uid %ld",
                (long)cred.uid);
    error(&a, "permission denied");
  } else {
    n = read_line(fd, line);
    if (n == -1) {
      obspamd_log(LOG_DEBUG, "control: a client sent no request line");
      return;
    }
    if (n == -2)
      error(&a, "request is longer than %d bytes", REQUEST_MAX);
    else
      dispatch(&a, line, (long)cred.uid);
  }
  if (a.failed) {
    a.failed = 0;
    a.len = 0;
    free(a.buf);
    a.buf = NULL;
    a.size = 0;
    error(&a, "out of memory");
  }
  if (a.buf != NULL)
    write_all(fd, a.buf, a.len);
  free(a.buf);
  drain(fd);
}

static void *control_thread(void *arg) {
  (void)arg;
  for (;;) {
    struct pollfd p[2] = {{ctl.wake[0], POLLIN, 0}, {ctl.fd, POLLIN, 0}};
    int fd;
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      obspamd_log(LOG_ERR, "control: poll: %s", strerror(errno));
      break;
    }
    if (p[0].revents)
      break;
    if (!p[1].revents)
      continue;
    fd = accept4(ctl.fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
          errno == ENOBUFS) {
        obspamd_log(LOG_WARNING, "control: accept: %s", strerror(errno));
        poll(NULL, 0, 1000);
      }
      continue;
    }
    /* One client at a time: requests are short, and a client that does
       not send its line within 5 s is dropped. */
    serve(fd);
    close(fd);
  }
  return NULL;
}

int obspamd_control_start(obspamd_service *s, const char *spec) {
  char err[512];
  obspamd_spec sp;
  struct stat st;
  int rc;

  if (ctl.running) {
    obspamd_log(LOG_ERR, "control: the control socket is already running");
    return -1;
  }
  if (obspamd_spec_parse(spec, &sp, err, sizeof(err)) != 0) {
    obspamd_log(LOG_ERR, "control: %s", err);
    return -1;
  }
  if (sp.family != AF_UNIX) {
    obspamd_log(LOG_ERR,
                "control: bad socket address '%.200s': the control socket "
                "must be unix:PATH",
                spec);
    return -1;
  }
  ctl.fd = obspamd_listen(spec, 0600, err, sizeof(err));
  if (ctl.fd < 0) {
    obspamd_log(LOG_ERR, "control: %s", err);
    return -1;
  }
  /* The accepted sockets are blocking; the listening one is polled. */
  if (pipe2(ctl.wake, O_CLOEXEC) != 0) {
    obspamd_log(LOG_ERR, "control: pipe: %s", strerror(errno));
    goto fail;
  }
  snprintf(ctl.path, sizeof(ctl.path), "%s", sp.path);
  if (stat(ctl.path, &st) == 0) {
    ctl.dev = st.st_dev;
    ctl.ino = st.st_ino;
  }
  ctl.s = s;
  ctl.started = (int64_t)time(NULL);
  rc = obspamd__thread_create(&ctl.thread, control_thread, NULL);
  if (rc != 0) {
    obspamd_log(LOG_ERR, "control: cannot start the thread: %s", strerror(rc));
    close(ctl.wake[0]);
    close(ctl.wake[1]);
    ctl.wake[0] = ctl.wake[1] = -1;
    goto fail;
  }
  ctl.running = 1;
  obspamd__service_control(s, ctl.path);
  obspamd_log(LOG_INFO, "control listening on unix:%s", ctl.path);
  return 0;

fail:
  close(ctl.fd);
  unlink(sp.path);
  ctl.fd = -1;
  return -1;
}

void obspamd_control_stop(void) {
  struct stat st;

  if (!ctl.running)
    return;
  obspamd__thread_stop(ctl.thread, ctl.wake);
  obspamd__service_control(ctl.s, NULL);
  /* Only our own socket file: a daemon started since may have replaced
     it. */
  if (stat(ctl.path, &st) == 0 && st.st_dev == ctl.dev && st.st_ino == ctl.ino)
    unlink(ctl.path);
  obspamd__close_fds(&ctl.fd, ctl.wake);
  ctl.running = 0;
}
