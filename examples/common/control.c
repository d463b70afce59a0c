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
              limit_by: of those blocked_by is full in, the longest)
              (one "KEY<TAB>VALUE" line each, in this order)
     report   from FROM / to TO, then one line per row, in the library's
              order (refusals first, then scripts by messages sent):
              row KIND SENT REFUSED FIRST_REFUSED LAST_REFUSED EXCEEDED
                  LIMIT WINDOW NAME
              EXCEEDED: attempts over the object's own limit; WINDOW: the
              window of the last of them (minute, hour, day,
              max-recipients for the cap on recipients per message,
              scripts when scripts may not send, "-" when none); LIMIT:
              the object's limit in that window now (the hour's when
              none, the cap for max-recipients), -1 unlimited, "-" for a
              script or an object the configuration no longer has
     history  one line per clock hour with activity, oldest first:
              hour HOUR_START SENT REFUSED
              then, for an object that has one, its hourly limit now:
              limit N
     reload, save
              message TEXT

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
      "\nmax_recipients\t%" PRId64 "\nwindow_by\t%s\nend\n",
      obspamd_kind_name(kind), clean, st.sending ? 1 : 0, st.limit, st.count,
      st.refused, st.refused_total, st.last_refused, st.exceeded,
      st.exceeded_total, st.disabled ? 1 : 0, blocked_kind, blocked, limit_by,
      st.limit_minute < 0 ? -1 : st.limit_minute, st.count_minute,
      st.limit_day < 0 ? -1 : st.limit_day, st.count_day, cap_of(kind, name),
      window_by);
}

/* The rows of a report, kept until it ends: the limit of each object is
   read from the engine, which its callback must not call. */
typedef struct report_rows {
  obspam_report_row *rows;
  char **names;
  size_t n, size;
  int failed;
} report_rows;

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
    rr->size = size;
  }
  rr->names[rr->n] = strdup(r->name);
  if (rr->names[rr->n] == NULL) {
    rr->failed = 1;
    return;
  }
  /* A library older than 1.3 passes a shorter row, without exceeded:
     only what it passed is read. */
  memset(&rr->rows[rr->n], 0, sizeof(*r));
  memcpy(&rr->rows[rr->n], r,
         r->struct_size < sizeof(*r) ? r->struct_size : sizeof(*r));
  rr->n++;
}

/* The window of a report row's last attempt over its own limit, by name:
   "minute", "hour", "day"; with none (0), "max-recipients" or "scripts"
   for an object that went over, told apart by whether it has a cap (the
   row does not say), and "-" for one that never did. */
static const char *row_window(const obspam_report_row *r, const char *name) {
  if (r->window == OBSPAM_WINDOW_MINUTE)
    return "minute";
  if (r->window == OBSPAM_WINDOW_HOUR)
    return "hour";
  if (r->window == OBSPAM_WINDOW_DAY)
    return "day";
  if (r->exceeded <= 0 || r->kind == OBSPAM_SCRIPT)
    return "-";
  return r->kind != OBSPAM_SUBSCRIPTION || cap_of(r->kind, name) >= 0
             ? "max-recipients"
             : "scripts";
}

static void cmd_report(answer *a, char *args) {
  char *to = args ? strchr(args, ' ') : NULL;
  report_rows rr = {NULL, NULL, 0, 0, 0};
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
  if (rc != OBSPAM_OK) {
    engine_error(a, "report", rc);
  } else if (rr.failed) {
    a->failed = 1;
  } else {
    add(a, "ok\nfrom\t%" PRId64 "\nto\t%" PRId64 "\n", from_t, to_t);
    for (i = 0; i < rr.n; i++) {
      const obspam_report_row *r = &rr.rows[i];
      const char *window = row_window(r, rr.names[i]);
      obspam_stats st = OBSPAM_STATS_INIT;
      char name[1100], limit[24] = "-";
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
      add(a,
          "row\t%s\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\t%" PRId64
          "\t%" PRId64 "\t%s\t%s\t%s\n",
          obspamd_kind_name(r->kind), r->sent, r->refused, r->first_refused,
          r->last_refused, r->exceeded, limit, window, name);
    }
    add(a, "end\n");
  }
  for (i = 0; i < rr.n; i++)
    free(rr.names[i]);
  free(rr.names);
  free(rr.rows);
}

static void history_hour(int64_t hour, int64_t sent, int64_t refused,
                         void *ud) {
  add(ud, "hour\t%" PRId64 "\t%" PRId64 "\t%" PRId64 "\n", hour, sent, refused);
}

static void cmd_history(answer *a, char *args) {
  char *words[3], *rest = args, *name;
  int64_t from_t, to_t;
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
  add(a, "end\n");
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

static void dispatch(answer *a, char *line) {
  char *args = strchr(line, ' ');

  if (args != NULL)
    *args++ = '\0';
  if (*line == '\0') {
    error(a, "empty request: expected a command (ping, status, report, "
             "history, reload or save)");
  } else if (strcmp(line, "ping") == 0 && args == NULL) {
    cmd_ping(a);
  } else if (strcmp(line, "status") == 0) {
    cmd_status(a, args);
  } else if (strcmp(line, "report") == 0) {
    cmd_report(a, args);
  } else if (strcmp(line, "history") == 0) {
    cmd_history(a, args);
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
    error(a,
          "unknown command '%.64s': expected ping, status, report, history, "
          "reload or save",
          clean);
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

  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
      cred.uid != 0 && cred.uid != geteuid()) {
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
      dispatch(&a, line);
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
  while (write(ctl.wake[1], "x", 1) < 0 && errno == EINTR)
    ;
  pthread_join(ctl.thread, NULL);
  obspamd__service_control(ctl.s, NULL);
  /* Only our own socket file: a daemon started since may have replaced
     it. */
  if (stat(ctl.path, &st) == 0 && st.st_dev == ctl.dev && st.st_ino == ctl.ino)
    unlink(ctl.path);
  close(ctl.fd);
  close(ctl.wake[0]);
  close(ctl.wake[1]);
  ctl.fd = ctl.wake[0] = ctl.wake[1] = -1;
  ctl.running = 0;
}
