/* SPDX-License-Identifier: MIT */
/* obspamctl: the command-line client of the control socket of
   obspam-policyd and obspam-milter (protocol: examples/common/control.c).
   It prints what the daemon answers as text a person reads (aligned
   tables), as JSON (--json) or, for a day's history, as an SVG chart.

   Exit status: 0 done, 1 the daemon answered with an error (or an answer
   that cannot be read), 2 bad usage, 3 the daemon cannot be reached (no
   socket, refused, connection broken, no answer in time). Under --json an
   error is a JSON document on standard output too: {"error": MESSAGE,
   "exit_status": N}. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "obspam.h"
#include "sockets.h"
#include "util.h"

#define DEFAULT_CONTROL "unix:" OBSPAMD_CONTROL_DEFAULT
#define EXIT_DAEMON 1
#define EXIT_USAGE 2
#define EXIT_CONNECT 3

static const char *progname = "obspamctl";

static void usage_text(FILE *f) {
  fputs(
      "Usage: obspamctl [--control unix:PATH] [--json] [--tz ZONE] COMMAND "
      "[ARGS]\n"
      "\n"
      "Asks obspam-policyd or obspam-milter through its control socket.\n"
      "\n"
      "Commands:\n"
      "  status KIND NAME      live status of a subscription, domain or "
      "mailbox\n"
      "  report [--since DURATION]\n"
      "                        objects refused in the last DURATION (24h), "
      "then\n"
      "                        scripts by messages sent; DURATION is N "
      "followed\n"
      "                        by s, m, h or d (90m, 24h, 7d)\n"
      "  history KIND NAME [--day YYYY-MM-DD] [--svg FILE]\n"
      "                        sent and refused per hour of a day (default "
      "today);\n"
      "                        KIND may also be script, NAME its path;\n"
      "                        --svg writes a bar chart (FILE - : standard "
      "output)\n"
      "  list KIND [--parent NAME] [--active] [--after NAME] [--limit N]\n"
      "                        the subscriptions, domains or mailboxes in "
      "name\n"
      "                        order, under a parent, only those active, "
      "from\n"
      "                        after a name, at most N, with their status\n"
      "  top [--kind KIND] [--since DURATION] [--limit N]\n"
      "                        the N (10) objects and scripts that sent most "
      "in\n"
      "                        the last DURATION (24h)\n"
      "  blocked               every object that cannot send now, and what "
      "blocks it\n"
      "  overview              protection on or off, objects not sending, "
      "refusals\n"
      "                        of the last hour and day, the top five "
      "senders\n"
      "  reset KIND NAME       empty an object's counters (after a password "
      "change)\n"
      "  set-limit KIND NAME WHICH VALUE\n"
      "                        change a limit live (WHICH: subscription, "
      "domain,\n"
      "                        mailbox or max-recipients; VALUE as in the\n"
      "                        configuration: 20/m,100/h), until the file "
      "changes\n"
      "                        that object\n"
      "  reload [--force]      reload the configuration file; --force loads "
      "one\n"
      "                        that declares nothing, or drops more objects "
      "than\n"
      "                        the daemon's --reload-max-drop allows\n"
      "  save                  write the state file now\n"
      "  ping                  is the daemon there, and which one\n"
      "\n"
      "Options:\n"
      "  --control SPEC   the daemon's control socket, unix:PATH (default:\n"
      "                   $OBSPAM_CONTROL, else " DEFAULT_CONTROL ")\n"
      "  --json           print JSON instead of text\n"
      "  --tz ZONE        show times in ZONE (Europe/Berlin; default $TZ, "
      "else UTC)\n"
      "  --timeout SECONDS  how long to wait for the answer (default 60)\n"
      "  --help, --version\n"
      "\n"
      "Exit status: 0 done, 1 the daemon answered with an error, 2 bad usage,\n"
      "3 the daemon cannot be reached.\n",
      f);
}

/* Whether errors are JSON documents on standard output (--json), for the
   programs that read the output: they get one document whatever happens. */
static int json_errors;

static void json_string(const char *s);

/* Ends the program with status: the message on standard error, and under
   --json also as {"error": ..., "exit_status": ...} on standard output.
   hint is a line added to the text (or NULL). */
static void fail(int status, const char *hint, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0), noreturn));

static void fail(int status, const char *hint, const char *fmt, va_list ap) {
  char msg[1024];

  vsnprintf(msg, sizeof(msg), fmt, ap);
  fprintf(stderr, "%s: %s\n", progname, msg);
  if (hint != NULL)
    fprintf(stderr, "%s\n", hint);
  if (json_errors) {
    fputs("{\"error\": ", stdout);
    json_string(msg);
    printf(", \"exit_status\": %d}\n", status);
    fflush(stdout);
  }
  exit(status);
}

static void die_usage(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void die_usage(const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  fail(EXIT_USAGE, "Try 'obspamctl --help'.", fmt, ap);
}

static void die(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void die(int status, const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  fail(status, NULL, fmt, ap);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL)
    die(EXIT_DAEMON, "out of memory");
  return p;
}

/* ---- talking to the daemon ----------------------------------------------- */

/* An answer: its lines, the first being "ok", the last "end". Each line
   is split into fields at TABs. */
typedef struct rec {
  char **f;
  size_t n;
} rec;

typedef struct answer {
  char *data;
  rec *recs; /* the records between "ok" and "end" */
  size_t nrecs;
} answer;

static int timeout_s = 60;
/* The one answer a run gets, freed before the exit. */
static answer last_answer;

static void split_fields(char *line, rec *r) {
  size_t n = 1, i;
  char *p;

  for (p = line; *p; p++)
    if (*p == '\t')
      n++;
  r->f = xmalloc(n * sizeof(char *));
  r->n = n;
  r->f[0] = line;
  for (i = 1, p = line; *p; p++)
    if (*p == '\t') {
      *p = '\0';
      r->f[i++] = p + 1;
    }
}

/* Sends one request and reads the whole answer. An "error" answer ends the
   program with status 1 and the daemon's message. */
static void ask(const char *spec, const char *request, answer *a) {
  char err[512], *line, *next;
  size_t len = 0, size = 65536, nlines = 0;
  int fd = obspamd_connect(spec, err, sizeof(err));
  int64_t deadline;
  ssize_t n;
  int send_errno = 0;

  if (fd < 0)
    die(EXIT_CONNECT, "%s", err);
  /* A daemon that refuses a client (permission denied) answers and
     closes without reading the request, so the request may find the
     connection closed: the answer waiting to be read says why, and it
     is read before the failed send is reported. */
  if (send(fd, request, strlen(request), MSG_NOSIGNAL) < 0 ||
      send(fd, "\n", 1, MSG_NOSIGNAL) < 0)
    send_errno = errno;
  deadline = obspamd_now_ms() + (int64_t)timeout_s * 1000;
  a->data = xmalloc(size);
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    int64_t now_ms = obspamd_now_ms();

    if (now_ms >= deadline || poll(&p, 1, (int)(deadline - now_ms)) == 0)
      die(EXIT_CONNECT, "no answer from %s within %d s", spec, timeout_s);
    if (len + 1 >= size) {
      size *= 2;
      a->data = realloc(a->data, size);
      if (a->data == NULL)
        die(EXIT_DAEMON, "out of memory");
    }
    n = recv(fd, a->data + len, size - len - 1, 0);
    if (n < 0 && errno == EINTR)
      continue;
    /* The daemon closed with our request unread: a reset after its
       answer ends the answer. */
    if (n < 0 && (errno == ECONNRESET || errno == EPIPE) &&
        (len > 0 || send_errno != 0))
      break;
    if (n < 0)
      die(EXIT_CONNECT, "cannot read from %s: %s", spec, strerror(errno));
    if (n == 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  a->data[len] = '\0';
  if (send_errno != 0 && strncmp(a->data, "error ", 6) != 0)
    die(EXIT_CONNECT, "cannot send to %s: %s", spec, strerror(send_errno));

  if (strncmp(a->data, "error ", 6) == 0) {
    a->data[strcspn(a->data, "\n")] = '\0';
    die(EXIT_DAEMON, "%s", a->data + 6);
  }
  if (len == 0)
    die(EXIT_CONNECT, "%s closed the connection without an answer", spec);
  if (strncmp(a->data, "ok\n", 3) != 0 || len < 7 ||
      strcmp(a->data + len - 5, "\nend\n") != 0)
    die(EXIT_DAEMON,
        "%s sent an answer that is not complete or not one of "
        "the control protocol",
        spec);
  for (line = a->data; *line; line++)
    if (*line == '\n')
      nlines++;
  a->recs = xmalloc(nlines * sizeof(rec));
  a->nrecs = 0;
  line = a->data + 3;
  for (; (next = strchr(line, '\n')) != NULL; line = next + 1) {
    *next = '\0';
    if (strcmp(line, "end") == 0 && next[1] == '\0')
      break;
    split_fields(line, &a->recs[a->nrecs++]);
  }
  last_answer = *a;
}

static void answer_free(answer *a) {
  size_t i;

  for (i = 0; i < a->nrecs; i++)
    free(a->recs[i].f);
  free(a->recs);
  free(a->data);
}

/* The value of "KEY<TAB>VALUE" in an answer, or NULL. */
static const char *value(const answer *a, const char *key) {
  size_t i;

  for (i = 0; i < a->nrecs; i++)
    if (a->recs[i].n == 2 && strcmp(a->recs[i].f[0], key) == 0)
      return a->recs[i].f[1];
  return NULL;
}

static int64_t number(const char *s) {
  char *end;
  long long v;

  if (s == NULL)
    die(EXIT_DAEMON, "the answer lacks a field");
  errno = 0;
  v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0')
    die(EXIT_DAEMON, "the answer holds '%s' where a number belongs", s);
  return v;
}

/* ---- output helpers ------------------------------------------------------ */

/* Writes s as UTF-8, each byte that does not belong to a valid sequence
   as U+FFFD, so that JSON and SVG stay valid whatever bytes a name holds.
   esc decides how the other characters are written. */
static void put_utf8(FILE *f, const char *s, void (*esc)(FILE *, int)) {
  while (*s) {
    int n = (unsigned char)*s < 0x80 ? 1 : obspamd_utf8_char(s);
    if (n == 0) {
      fputs("\xef\xbf\xbd", f);
      s++;
    } else if (n == 1) {
      esc(f, (unsigned char)*s++);
    } else {
      fwrite(s, 1, (size_t)n, f);
      s += n;
    }
  }
}

static void json_char(FILE *f, int c) {
  if (c == '"' || c == '\\')
    fprintf(f, "\\%c", c);
  else if (c == '\n')
    fputs("\\n", f);
  else if (c == '\t')
    fputs("\\t", f);
  else if (c < 0x20 || c == 0x7f)
    fprintf(f, "\\u%04x", c);
  else
    fputc(c, f);
}

static void json_string(const char *s) {
  putchar('"');
  put_utf8(stdout, s, json_char);
  putchar('"');
}

static void xml_char(FILE *f, int c) {
  /* The five characters XML escapes, and their entities. */
  static const char special[] = "&<>\"'";
  static const char *const entity[] = {"&amp;", "&lt;", "&gt;", "&quot;",
                                       "&apos;"};
  const char *at = c != '\0' ? strchr(special, c) : NULL;

  if (at != NULL)
    fputs(entity[at - special], f);
  else /* XML 1.0 allows no control character but TAB, LF and CR. */
    fputc(c < 0x20 && c != '\t' && c != '\n' && c != '\r' ? '?' : c, f);
}

/* Text for a terminal: a control character would move its cursor. */
static void plain_char(FILE *f, int c) {
  fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
}

/* An object in JSON, {"kind": K, "name": N, left open for more keys. */
static void json_who(const char *kind, const char *name) {
  printf("{\"kind\": ");
  json_string(kind);
  printf(", \"name\": ");
  json_string(name);
}

/* A text field of an answer in JSON: null for "-", which means none. */
static void json_field(const char *s) {
  if (strcmp(s, "-") == 0)
    printf("null");
  else
    json_string(s);
}

/* A time for JSON: "2024-05-01T12:34:56Z", or null for 0. */
static void json_time(int64_t t) {
  char buf[32];

  if (t == 0)
    fputs("null", stdout);
  else
    printf("\"%s\"", obspamd_iso_time(t, buf, sizeof(buf)));
}

/* The time zone of the times a person reads (--tz, else $TZ, else UTC),
   as it was given: tables show its abbreviation, JSON names it. */
static const char *zone = "UTC";

/* Opens the JSON document of the report or top senders from from to to:
   the span and the time zone, up to the value of "rows". */
static void json_span(int64_t from, int64_t to) {
  printf("{\n  \"from\": ");
  json_time(from);
  printf(",\n  \"to\": ");
  json_time(to);
  printf(",\n  \"timezone\": ");
  json_string(zone);
  printf(",\n  \"rows\": ");
}

/* Whether a time zone can be used: a name of the time zone database
   (Europe/Berlin, found under $TZDIR or /usr/share/zoneinfo), a file, or
   a POSIX TZ string (CET-1CEST,M3.5.0,M10.5.0/3). The C library takes
   any other word silently for UTC, which would show wrong times. */
static int zone_ok(const char *z) {
  const char *dir = getenv("TZDIR");
  char path[4096];
  size_t i = 0;

  if (*z == ':')
    z++;
  if (*z == '\0' || strstr(z, "..") != NULL)
    return 0;
  if (z[0] == '/')
    return access(z, R_OK) == 0;
  snprintf(path, sizeof(path), "%s/%s",
           dir && *dir ? dir : "/usr/share/zoneinfo", z);
  if (access(path, R_OK) == 0)
    return 1;
  /* std offset [dst [offset] [,rule]]: a name of 3 letters or more (or
     <+0530>), then the offset, which begins with a sign or a digit. */
  if (z[0] == '<') {
    const char *end = strchr(z, '>');
    if (end == NULL || end - z < 4)
      return 0;
    i = (size_t)(end - z) + 1;
  } else {
    while ((z[i] >= 'A' && z[i] <= 'Z') || (z[i] >= 'a' && z[i] <= 'z'))
      i++;
    if (i < 3)
      return 0;
  }
  if (z[i] == '+' || z[i] == '-')
    i++;
  return z[i] >= '0' && z[i] <= '9';
}

/* --tz or $TZ: the zone of every time shown; UTC when neither is set
   (not the system's zone, so that output does not depend on the host). */
static void zone_set(const char *asked) {
  const char *env = getenv("TZ");

  if (asked == NULL && env != NULL && *env != '\0')
    asked = env;
  if (asked == NULL) {
    setenv("TZ", "UTC0", 1);
    zone = "UTC";
  } else if (!zone_ok(asked)) {
    die_usage("unknown time zone '%s'%s: expected a name of the time zone "
              "database (Europe/Berlin) or a POSIX TZ string "
              "(CET-1CEST,M3.5.0,M10.5.0/3)",
              asked, asked == env ? " (TZ)" : "");
  } else {
    setenv("TZ", asked, 1);
    zone = asked;
  }
  tzset();
}

static void local_tm(int64_t t, struct tm *tm) {
  time_t tt = (time_t)t;

  localtime_r(&tt, tm);
}

/* A time for a table, in the zone: "2024-05-01 12:34:56", or "-" for 0. */
static char *table_time(int64_t t, char *buf, size_t size) {
  struct tm tm;

  if (t == 0) {
    snprintf(buf, size, "-");
    return buf;
  }
  local_tm(t, &tm);
  strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

/* The abbreviation of the zone at t: "UTC", "CEST", "IST". */
static const char *zone_abbr(int64_t t, char *buf, size_t size) {
  struct tm tm;

  local_tm(t, &tm);
  strftime(buf, size, "%Z", &tm);
  return buf;
}

/* Display width: bytes that do not start a UTF-8 sequence take no column. */
static int width(const char *s) {
  int w = 0;

  for (; *s; s++)
    if (((unsigned char)*s & 0xc0) != 0x80)
      w++;
  return w;
}

/* Widens a column of w columns to n. */
static void widen(int *w, int n) {
  if (n > *w)
    *w = n;
}

/* Prints s left-aligned in w columns. */
static void cell(const char *s, int w) {
  int pad = w - width(s);

  put_utf8(stdout, s, plain_char);
  while (pad-- > 0)
    putchar(' ');
}

/* ---- commands ------------------------------------------------------------ */

static int kind_for(const char *word, int script_too) {
  int kind = obspamd_kind_parse(word);

  if (kind == OBSPAM_SUBSCRIPTION || kind == OBSPAM_DOMAIN ||
      kind == OBSPAM_MAILBOX || (script_too && kind == OBSPAM_SCRIPT))
    return kind;
  die_usage("bad kind '%s': expected subscription, domain%s mailbox%s", word,
            script_too ? "," : " or", script_too ? " or script" : "");
}

/* A limit for JSON: a number, or null for unlimited (-1) or unknown. */
static void json_limit(int64_t limit) {
  if (limit < 0)
    printf("null");
  else
    printf("%" PRId64, limit);
}

/* The three windows of a status, shortest first, with their words. */
static const char *const window_names[3] = {"minute", "hour", "day"};
static const char *const window_in[3] = {
    "in the last minute", "in the last 60 minutes", "in the last 24 hours"};

/* "{"minute": 20, "hour": 100, "day": null}" */
static void json_windows(const int64_t *v, int nulls) {
  int w;

  printf("{");
  for (w = 0; w < 3; w++) {
    printf("%s\"%s\": ", w ? ", " : "", window_names[w]);
    if (nulls)
      json_limit(v[w]);
    else
      printf("%" PRId64, v[w]);
  }
  printf("}");
}

/* Whether the window w (0 the minute, 1 the hour, 2 the day) of an object
   last reset at reset (0: never) began before that reset at now: a reset
   empties the windows it falls in (the day's from it on), so what the
   window holds is what was sent since the reset, not in the whole window.
   Each window starts at its oldest bucket: 5 seconds, a minute, an hour.
   status and list say it by this rule. */
static int since_reset(int64_t reset, int64_t now, int w) {
  return reset > 0 && reset >= (w == 0   ? now - now % 5 - 55
                                : w == 1 ? now - now % 60 - 59 * 60
                                         : now - now % 3600 - 23 * 3600);
}

static void cmd_status(const char *spec, int json, const char *kind,
                       const char *name) {
  char req[2048], when[32], abbr[64];
  answer a;
  int64_t limit, count, refused, refused_total, last, exceeded, limit_by;
  int64_t limits[3], counts[3], cap, forwarded, lists, reset, now;
  const char *blocked_kind, *blocked_by, *window_by;
  int sending, disabled, w, since[3];

  kind_for(kind, 0);
  snprintf(req, sizeof(req), "status %s %s", kind, name);
  ask(spec, req, &a);
  sending = (int)number(value(&a, "sending"));
  limit = number(value(&a, "limit"));
  count = number(value(&a, "count"));
  refused = number(value(&a, "refused"));
  refused_total = number(value(&a, "refused_total"));
  last = number(value(&a, "last_refused"));
  exceeded = number(value(&a, "exceeded"));
  disabled = (int)number(value(&a, "disabled"));
  limit_by = number(value(&a, "limit_by"));
  blocked_kind = value(&a, "blocked_kind");
  blocked_by = value(&a, "blocked_by");
  window_by = value(&a, "window_by");
  limits[0] = number(value(&a, "limit_minute"));
  counts[0] = number(value(&a, "count_minute"));
  limits[1] = limit;
  counts[1] = count;
  limits[2] = number(value(&a, "limit_day"));
  counts[2] = number(value(&a, "count_day"));
  cap = number(value(&a, "max_recipients"));
  /* A daemon older than 1.4 does not count them apart: none. */
  forwarded =
      value(&a, "forwarded") != NULL ? number(value(&a, "forwarded")) : 0;
  lists = value(&a, "list_deliveries") != NULL
              ? number(value(&a, "list_deliveries"))
              : 0;
  /* A daemon older than 1.4.5 does not say: none. */
  reset = value(&a, "last_reset") != NULL ? number(value(&a, "last_reset")) : 0;
  if (blocked_kind == NULL || blocked_by == NULL || window_by == NULL)
    die(EXIT_DAEMON, "the answer lacks a field");
  if (strcmp(blocked_kind, "-") == 0)
    blocked_kind = NULL;
  if (json) {
    printf("{\n  \"kind\": ");
    json_string(value(&a, "kind"));
    printf(",\n  \"name\": ");
    json_string(value(&a, "name"));
    printf(",\n  \"sending\": %s,\n  \"limit\": ", sending ? "true" : "false");
    json_limit(limit);
    printf(",\n  \"count\": %" PRId64 ",\n  \"refused\": %" PRId64
           ",\n  \"refused_total\": %" PRId64 ",\n  \"last_refused\": ",
           count, refused, refused_total);
    json_time(last);
    printf(",\n  \"exceeded\": %" PRId64 ",\n  \"disabled\": %s,\n"
           "  \"blocked_by\": ",
           exceeded, disabled ? "true" : "false");
    if (blocked_kind == NULL) {
      printf("null");
    } else {
      json_who(blocked_kind, blocked_by);
      printf(", \"window\": ");
      json_field(window_by);
      printf(", \"limit\": ");
      json_limit(limit_by);
      printf("}");
    }
    printf(",\n  \"limits\": ");
    json_windows(limits, 1);
    printf(",\n  \"counts\": ");
    json_windows(counts, 0);
    printf(",\n  \"max_recipients\": ");
    json_limit(cap);
    printf(",\n  \"forwarded\": %" PRId64 ",\n  \"list_deliveries\": %" PRId64
           ",\n  \"last_reset\": ",
           forwarded, lists);
    json_time(reset);
    printf("\n}\n");
    return;
  }
  printf("%s ", value(&a, "kind"));
  put_utf8(stdout, value(&a, "name"), plain_char);
  /* What blocks is named, even when it is an ancestor: a mailbox under
     its own limit sends nothing while its subscription is at its own. */
  if (disabled) {
    printf(": protection is disabled\n");
  } else if (sending) {
    printf(": sending\n");
  } else if (blocked_kind == NULL) {
    printf(": not sending (at its limit)\n");
  } else {
    printf(": not sending: %s ", blocked_kind);
    put_utf8(stdout, blocked_by, plain_char);
    if (limit_by < 0 || strcmp(window_by, "-") == 0)
      printf(" is at its limit\n");
    else
      printf(" is at its limit of %" PRId64 " per %s\n", limit_by, window_by);
  }
  /* The hour always; the minute and the day when they have a limit. */
  for (w = 0; w < 3; w++) {
    if (w == 1 && limit < 0)
      printf("  limit          unlimited\n");
    else if (w == 1 || limits[w] >= 0)
      printf("  limit          %" PRId64 " per %s\n", limits[w],
             window_names[w]);
  }
  if (cap >= 0)
    printf("  max recipients %" PRId64 " per message\n", cap);
  now = (int64_t)time(NULL);
  for (w = 0; w < 3; w++)
    since[w] = since_reset(reset, now, w);
  for (w = 0; w < 3; w++)
    if (w == 1 || limits[w] >= 0)
      printf("  sent           %" PRId64 " %s%s%s\n", counts[w],
             since[w] ? "since the reset (" : "", window_in[w],
             since[w] ? ")" : "");
  /* Forwards (part of sent) and mailing-list deliveries, when there are
     any: the clock hour's, as the library keeps them. */
  if (forwarded > 0)
    printf("  forwarded      %" PRId64 " in this clock hour\n", forwarded);
  if (lists > 0)
    printf("  mailing lists  %" PRId64 " in this clock hour\n", lists);
  printf("  refused        %" PRId64 " %s\n", refused,
         since[1] ? "since the reset (in the last 60 minutes)"
                  : "in the last 60 minutes");
  printf("  over its limit %" PRId64 " %s\n", exceeded,
         since[1] ? "since the reset (in the last 60 minutes)"
                  : "in the last 60 minutes");
  printf("  refused total  %" PRId64 " within the retention period\n",
         refused_total);
  if (last == 0)
    printf("  last refusal   never\n");
  else
    printf("  last refusal   %s %s\n", table_time(last, when, sizeof(when)),
           zone_abbr(last, abbr, sizeof(abbr)));
  if (reset > 0)
    printf("  last reset     %s %s\n", table_time(reset, when, sizeof(when)),
           zone_abbr(reset, abbr, sizeof(abbr)));
}

/* "24h", "90m", "7d", "3600s" -> seconds. */
static int64_t parse_duration(const char *s) {
  char *end;
  long long v;
  int64_t unit;

  errno = 0;
  v = strtoll(s, &end, 10);
  if (s[0] < '0' || s[0] > '9' || errno != 0 || end[0] == '\0' ||
      end[1] != '\0')
    v = -1;
  switch (v >= 0 ? end[0] : 0) {
  case 's':
    unit = 1;
    break;
  case 'm':
    unit = 60;
    break;
  case 'h':
    unit = 3600;
    break;
  case 'd':
    unit = 86400;
    break;
  default:
    unit = 0;
  }
  if (unit == 0 || v <= 0 || v > 100LL * 366 * 86400 / unit)
    die_usage("bad duration '%s': expected a number and a unit s, m, h or d "
              "(90m, 24h, 7d), at most 100 years",
              s);
  return (int64_t)v * unit;
}

/* Report rows: row KIND SENT REFUSED FIRST LAST EXCEEDED LIMIT WINDOW
   UID SUBSCRIPTION FORWARDED LISTS NAME (a daemon older than 1.4 sends
   no FORWARDED and LISTS, one older than 1.3 no UID and SUBSCRIPTION
   either: report_rows adds them). */
enum {
  R_KIND = 1,
  R_SENT,
  R_REFUSED,
  R_FIRST,
  R_LAST,
  R_EXCEEDED,
  R_LIMIT,
  R_WINDOW,
  R_UID,
  R_SUB,
  R_FORWARDED,
  R_LISTS,
  R_NAME,
  R_FIELDS
};

/* Checks the rows of a report answer, and gives those of an older daemon
   an unknown uid and no subscription (before 1.3), no forwards and no
   list deliveries (before 1.4). */
static void report_rows(answer *a) {
  size_t i;

  for (i = 0; i < a->nrecs; i++) {
    rec *r = &a->recs[i];
    if (strcmp(r->f[0], "row") != 0)
      continue;
    if (r->n == R_FIELDS - 2 || r->n == R_FIELDS - 4) {
      size_t kept = r->n == R_FIELDS - 2 ? R_FORWARDED : R_UID;
      char **f = xmalloc(R_FIELDS * sizeof(char *));
      memcpy(f, r->f, kept * sizeof(char *));
      f[R_UID] = kept == R_UID ? (char *)"-1" : r->f[R_UID];
      f[R_SUB] = kept == R_UID ? (char *)"" : r->f[R_SUB];
      f[R_FORWARDED] = f[R_LISTS] = (char *)"0";
      f[R_NAME] = r->f[kept];
      free(r->f);
      r->f = f;
      r->n = R_FIELDS;
    }
    if (r->n != R_FIELDS)
      die(EXIT_DAEMON, "the answer holds a row of %zu fields", r->n);
  }
}

/* A script's uid and subscription for JSON: a number or null, a string
   or null. */
static void json_owner(const char *uid, const char *sub) {
  int64_t u = number(uid);

  printf(", \"uid\": ");
  if (u < 0)
    printf("null");
  else
    printf("%" PRId64, u);
  printf(", \"subscription\": ");
  if (*sub == '\0')
    printf("null");
  else
    json_string(sub);
}

/* A row's limit: "-" (a script, or an object no longer configured), -1
   unlimited, or a count. */
static int64_t row_limit(const rec *r) {
  return strcmp(r->f[R_LIMIT], "-") == 0 ? -2 : number(r->f[R_LIMIT]);
}

static void cmd_report(const char *spec, int json, const char *since) {
  int64_t now = (int64_t)time(NULL), from, to;
  char req[128], t1[32], t2[32], num[32];
  answer a;
  size_t i;
  int wk = 4, wn = 4, ws = 4, wr = 7, wo = 4, wl = 5, ww = 6, any = 0,
      scripts = 0, refused_scripts = 0, wf = 9, wls = 5, marks = 0;

  from = now - parse_duration(since ? since : "24h");
  /* TO just after now: the hour in progress is part of the report. */
  to = now + 1;
  snprintf(req, sizeof(req), "report %" PRId64 " %" PRId64, from, to);
  ask(spec, req, &a);
  report_rows(&a);

  if (json) {
    json_span(from, to);
    putchar('[');
    for (i = 0; i < a.nrecs; i++) {
      rec *r = &a.recs[i];
      if (strcmp(r->f[0], "row") != 0)
        continue;
      printf("%s\n    ", any++ ? "," : "");
      json_who(r->f[R_KIND], r->f[R_NAME]);
      printf(", \"sent\": %" PRId64 ", \"refused\": %" PRId64
             ", \"first_refused\": ",
             number(r->f[R_SENT]), number(r->f[R_REFUSED]));
      json_time(number(r->f[R_FIRST]));
      printf(", \"last_refused\": ");
      json_time(number(r->f[R_LAST]));
      printf(", \"exceeded\": %" PRId64 ", \"limit\": ",
             number(r->f[R_EXCEEDED]));
      json_limit(row_limit(r));
      printf(", \"window\": ");
      json_field(r->f[R_WINDOW]);
      json_owner(r->f[R_UID], r->f[R_SUB]);
      printf(", \"forwarded\": %" PRId64 ", \"list_deliveries\": %" PRId64 "}",
             number(r->f[R_FORWARDED]), number(r->f[R_LISTS]));
    }
    printf("%s]\n}\n", any ? "\n  " : "");
    return;
  }

  /* The report covers whole clock hours. */
  {
    int64_t end = to % 3600 ? to - to % 3600 + 3600 : to;
    printf("Report for the clock hours from %.16s to %.16s %s\n\n",
           table_time(from - from % 3600, t1, sizeof(t1)),
           table_time(end, t2, sizeof(t2)), zone_abbr(end, num, sizeof(num)));
  }
  for (i = 0; i < a.nrecs; i++) {
    rec *r = &a.recs[i];
    int script;
    if (strcmp(r->f[0], "row") != 0)
      continue;
    script = strcmp(r->f[R_KIND], "script") == 0;
    if (number(r->f[R_REFUSED]) > 0) {
      widen(&wk, width(r->f[R_KIND]));
      widen(&wn, width(r->f[R_NAME]));
      widen(&ws, (int)strlen(r->f[R_SENT]));
      widen(&wr, (int)strlen(r->f[R_REFUSED]));
      widen(&wo, (int)strlen(r->f[R_EXCEEDED]));
      widen(&wl, (int)strlen(r->f[R_LIMIT]));
      if (row_limit(r) == -1 && wl < 9)
        wl = 9;
      widen(&ww, (int)strlen(r->f[R_WINDOW]));
      widen(&wf, (int)strlen(r->f[R_FORWARDED]));
      widen(&wls, (int)strlen(r->f[R_LISTS]));
      marks |= number(r->f[R_FORWARDED]) > 0 || number(r->f[R_LISTS]) > 0;
      refused_scripts += script;
      any++;
    } else {
      scripts++;
    }
  }
  if (any == 0) {
    printf("No refusals.\n");
  } else {
    /* OVER: attempts over the object's own limit; the rest of its
       refusals came from another object's limit (a parent's). WINDOW:
       that of the last of them, whose limit LIMIT is. */
    printf("Refused:\n");
    cell("KIND", wk);
    printf("  ");
    cell("NAME", wn);
    /* With a script among them, the uid and subscription behind each
       script (an object's row has none: "-"). */
    int wu = 3;
    for (i = 0; i < a.nrecs; i++)
      if (strcmp(a.recs[i].f[0], "row") == 0 &&
          number(a.recs[i].f[R_REFUSED]) > 0 &&
          (int)strlen(a.recs[i].f[R_UID]) > wu)
        wu = (int)strlen(a.recs[i].f[R_UID]);
    /* FORWARDED (of SENT) and LISTS (mailing-list deliveries, exempt
       or charged) only when some row has any. */
    printf("  %*s", ws, "SENT");
    if (marks)
      printf("  %*s  %*s", wf, "FORWARDED", wls, "LISTS");
    printf("  %*s  %*s  %*s  %-*s  %-19s  %s", wr, "REFUSED", wo, "OVER", wl,
           "LIMIT", ww, "WINDOW", "FIRST REFUSAL", "LAST REFUSAL");
    if (refused_scripts)
      printf("         %*s  SUBSCRIPTION", wu, "UID");
    putchar('\n');
    for (i = 0; i < a.nrecs; i++) {
      rec *r = &a.recs[i];
      int64_t limit;
      if (strcmp(r->f[0], "row") != 0 || number(r->f[R_REFUSED]) == 0)
        continue;
      limit = row_limit(r);
      if (limit >= 0)
        snprintf(num, sizeof(num), "%" PRId64, limit);
      else
        snprintf(num, sizeof(num), "%s", limit == -1 ? "unlimited" : "-");
      cell(r->f[R_KIND], wk);
      printf("  ");
      cell(r->f[R_NAME], wn);
      printf("  %*" PRId64, ws, number(r->f[R_SENT]));
      if (marks)
        printf("  %*" PRId64 "  %*" PRId64, wf, number(r->f[R_FORWARDED]), wls,
               number(r->f[R_LISTS]));
      printf("  %*" PRId64 "  %*" PRId64 "  %*s  %-*s  %-19s  ", wr,
             number(r->f[R_REFUSED]), wo, number(r->f[R_EXCEEDED]), wl, num, ww,
             r->f[R_WINDOW], table_time(number(r->f[R_FIRST]), t1, sizeof(t1)));
      table_time(number(r->f[R_LAST]), t2, sizeof(t2));
      if (!refused_scripts) {
        printf("%s\n", t2);
        continue;
      }
      printf("%-19s  %*s  ", t2, wu,
             number(r->f[R_UID]) < 0 ? "-" : r->f[R_UID]);
      put_utf8(stdout, *r->f[R_SUB] ? r->f[R_SUB] : "-", plain_char);
      putchar('\n');
    }
  }
  printf("\n");
  /* "other" only when scripts were listed among the refused above. */
  if (scripts == 0) {
    printf(refused_scripts ? "No other script sent mail.\n"
                           : "No script sent mail.\n");
    return;
  }
  wn = 4;
  ws = 4;
  wo = 3; /* the uid */
  for (i = 0; i < a.nrecs; i++) {
    rec *r = &a.recs[i];
    if (strcmp(r->f[0], "row") != 0 || number(r->f[R_REFUSED]) > 0)
      continue;
    widen(&wn, width(r->f[R_NAME]));
    widen(&ws, (int)strlen(r->f[R_SENT]));
    widen(&wo, (int)strlen(r->f[R_UID]));
  }
  /* The uid and subscription behind each script: "-" for a uid no
     subscription owns, or one the adapter did not know. */
  printf("Scripts by messages sent:\n");
  cell("NAME", wn);
  printf("  %*s  %*s  SUBSCRIPTION\n", ws, "SENT", wo, "UID");
  for (i = 0; i < a.nrecs; i++) {
    rec *r = &a.recs[i];
    if (strcmp(r->f[0], "row") != 0 || number(r->f[R_REFUSED]) > 0)
      continue;
    cell(r->f[R_NAME], wn);
    printf("  %*" PRId64 "  %*s  ", ws, number(r->f[R_SENT]), wo,
           number(r->f[R_UID]) < 0 ? "-" : r->f[R_UID]);
    put_utf8(stdout, *r->f[R_SUB] ? r->f[R_SUB] : "-", plain_char);
    putchar('\n');
  }
}

/* "2024-05-01" -> its midnight in the zone, or -1; *next gets the next
   day's (a day of 23 or 25 hours when the clocks change). */
static int64_t parse_day(const char *s, int64_t *next) {
  struct tm tm;
  int y, m, d, n = 0;
  time_t t;
  char check[40];

  if (sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 ||
      s[10] != '\0')
    return -1;
  memset(&tm, 0, sizeof(tm));
  tm.tm_year = y - 1900;
  tm.tm_mon = m - 1;
  tm.tm_mday = d;
  tm.tm_isdst = -1;
  t = mktime(&tm);
  if (t == (time_t)-1)
    return -1;
  /* 2024-02-30 would be normalised to March: refuse it. */
  snprintf(check, sizeof(check), "%04d-%02d-%02d", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday);
  if (strcmp(check, s) != 0)
    return -1;
  memset(&tm, 0, sizeof(tm));
  tm.tm_year = y - 1900;
  tm.tm_mon = m - 1;
  tm.tm_mday = d + 1;
  tm.tm_isdst = -1;
  *next = (int64_t)mktime(&tm);
  return (int64_t)t;
}

/* The smallest of 1, 2, 5, 10, 20, 50, ... that splits max into at most 5
   steps. */
static int64_t nice_step(int64_t max) {
  int64_t base = 1;

  for (;;) {
    if ((max + base - 1) / base <= 5)
      return base;
    if ((max + 2 * base - 1) / (2 * base) <= 5)
      return 2 * base;
    if ((max + 5 * base - 1) / (5 * base) <= 5)
      return 5 * base;
    base *= 10;
  }
}

/* The hours of a day in the zone: n clock hours (24; 23 or 25 when the
   clocks change), each starting at start[i] (Unix time), labelled by its
   local time ("05:00"; "05:30" in a zone half an hour off); those
   before start[kept] are older than the retention: not kept, which is not
   without mail. */
typedef struct day_hours {
  int n, kept;
  int64_t start[25];
  char label[25][8];
} day_hours;

/* An SVG 1.1 bar chart: the hours of the day, a bar for sent and one for
   refused in each (class "sent" / "refused", one of each per hour kept,
   zero-height when nothing; none for an hour older than the retention),
   the hourly limit as a dashed line across them (class "limit", when
   there is one: limit >= 0), axes, labels and a legend. */
static void write_svg(FILE *f, const char *kind, const char *name,
                      const char *day, const day_hours *dh, const int64_t *sent,
                      const int64_t *refused, int64_t limit) {
  const int left = 70, top = 70, group = 32, bar = 12, plot_h = 280;
  const int plot_w = dh->n * group, width_px = left + plot_w + 30;
  const int height_px = top + plot_h + 70;
  int64_t max = 1, step, ymax, v;
  int i;

  for (i = 0; i < dh->n; i++) {
    if (sent[i] > max)
      max = sent[i];
    if (refused[i] > max)
      max = refused[i];
  }
  /* The limit is on the scale, so that its line is seen. */
  if (limit > max)
    max = limit;
  step = nice_step(max);
  ymax = (max + step - 1) / step * step;

  fprintf(f,
          "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
          "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
          "font-family=\"DejaVu Sans, Verdana, sans-serif\" "
          "font-size=\"12\">\n",
          width_px, height_px, width_px, height_px);
  fprintf(f, "<title>%s ", kind);
  put_utf8(f, name, xml_char);
  fprintf(f, ": sent and refused per hour on %s (", day);
  put_utf8(f, zone, xml_char);
  fprintf(f, ")</title>\n");
  fprintf(f,
          "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" "
          "fill=\"#ffffff\"/>\n",
          width_px, height_px);
  fprintf(f,
          "<text x=\"%d\" y=\"28\" font-size=\"16\" "
          "font-weight=\"bold\">%s ",
          left, kind);
  put_utf8(f, name, xml_char);
  fprintf(f,
          "</text>\n<text x=\"%d\" y=\"48\" fill=\"#444444\">sent and "
          "refused per hour on %s (",
          left, day);
  put_utf8(f, zone, xml_char);
  fprintf(f, ")</text>\n");

  /* Legend, top right. */
  fprintf(f,
          "<g class=\"legend\">\n"
          "<rect x=\"%d\" y=\"18\" width=\"12\" height=\"12\" "
          "fill=\"#4e79a7\"/>\n"
          "<text x=\"%d\" y=\"29\">sent</text>\n"
          "<rect x=\"%d\" y=\"18\" width=\"12\" height=\"12\" "
          "fill=\"#e15759\"/>\n"
          "<text x=\"%d\" y=\"29\">refused</text>\n"
          "</g>\n",
          left + plot_w - 150, left + plot_w - 134, left + plot_w - 80,
          left + plot_w - 64);

  /* Horizontal grid lines and the y axis labels. */
  fprintf(f, "<g class=\"y-axis\" stroke-width=\"1\">\n");
  for (v = 0; v <= ymax; v += step) {
    double y = top + plot_h - (double)v * plot_h / (double)ymax;
    fprintf(f,
            "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
            "stroke=\"%s\"/>\n"
            "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%" PRId64
            "</text>\n",
            left, y, left + plot_w, y, v == 0 ? "#000000" : "#dddddd", left - 6,
            y + 4, v);
  }
  fprintf(f,
          "<text x=\"18\" y=\"%d\" text-anchor=\"middle\" "
          "transform=\"rotate(-90 18 %d)\">messages</text>\n</g>\n",
          top + plot_h / 2, top + plot_h / 2);
  fprintf(f,
          "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000000\"/>"
          "\n",
          left, top, left, top + plot_h);

  /* The bars. */
  fprintf(f, "<g class=\"bars\">\n");
  for (i = dh->kept; i < dh->n; i++) {
    int x = left + i * group + (group - 2 * bar - 2) / 2;
    const char *end = dh->label[i + 1 < dh->n ? i + 1 : 0];
    double hs = (double)sent[i] * plot_h / (double)ymax;
    double hr = (double)refused[i] * plot_h / (double)ymax;
    fprintf(f,
            "<rect class=\"sent\" x=\"%d\" y=\"%.1f\" width=\"%d\" "
            "height=\"%.1f\" fill=\"#4e79a7\"><title>%s-%s sent "
            "%" PRId64 "</title></rect>\n",
            x, top + plot_h - hs, bar, hs, dh->label[i], end, sent[i]);
    fprintf(f,
            "<rect class=\"refused\" x=\"%d\" y=\"%.1f\" width=\"%d\" "
            "height=\"%.1f\" fill=\"#e15759\"><title>%s-%s refused "
            "%" PRId64 "</title></rect>\n",
            x + bar + 2, top + plot_h - hr, bar, hr, dh->label[i], end,
            refused[i]);
  }
  fprintf(f, "</g>\n");

  if (limit >= 0) {
    double y = top + plot_h - (double)limit * plot_h / (double)ymax;
    fprintf(f,
            "<g class=\"limit\">\n"
            "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
            "stroke=\"#f28e2b\" stroke-width=\"2\" "
            "stroke-dasharray=\"6 4\"><title>limit %" PRId64
            " per hour</title></line>\n"
            "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" "
            "fill=\"#f28e2b\">limit %" PRId64 " per hour</text>\n</g>\n",
            left, y, left + plot_w, y, limit, left + plot_w, y - 4, limit);
  }

  /* The x axis: the hours, and its title. */
  fprintf(f, "<g class=\"x-axis\" text-anchor=\"middle\">\n");
  /* An hour that starts on the hour is labelled "05", another "05:30". */
  for (i = 0; i < dh->n; i++)
    fprintf(f, "<text x=\"%d\" y=\"%d\">%.*s</text>\n",
            left + i * group + group / 2, top + plot_h + 18,
            strcmp(dh->label[i] + 3, "00") == 0 ? 2 : 5, dh->label[i]);
  fprintf(f, "<text x=\"%d\" y=\"%d\">hour of %s (", left + plot_w / 2,
          top + plot_h + 44, day);
  put_utf8(f, zone, xml_char);
  fprintf(f, ")</text>\n</g>\n");
  fprintf(f, "</svg>\n");
}

static void cmd_history(const char *spec, int json, const char *kind,
                        const char *name, const char *day, const char *svg) {
  char req[2048], today[40];
  int64_t from, next, sent[25] = {0}, refused[25] = {0}, tsent = 0, tref = 0;
  int64_t limit = -1, first, kept = INT64_MIN, retention = 0;
  day_hours dh;
  answer a;
  size_t i;
  int h;

  kind_for(kind, 1);
  if (day == NULL) {
    struct tm tm;
    local_tm((int64_t)time(NULL), &tm);
    snprintf(today, sizeof(today), "%04d-%02d-%02d", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday);
    day = today;
  }
  from = parse_day(day, &next);
  if (from < 0 || next <= from)
    die_usage("bad day '%s': expected YYYY-MM-DD", day);
  /* A day to come has no hours to show, not hours without mail. */
  if (from > (int64_t)time(NULL))
    die(EXIT_USAGE, "%s has not begun yet (in %s)", day, zone);
  /* The library keeps clock hours of UTC: those that start on the day.
     In a zone a whole number of hours off they are the day's hours; in
     one half an hour off they start at :30. */
  first = (from + 3599) / 3600 * 3600;
  dh.n = (int)((next - first + 3599) / 3600);
  if (dh.n < 1 || dh.n > 25)
    die_usage("bad day '%s': expected YYYY-MM-DD", day);
  for (h = 0; h < dh.n; h++) {
    struct tm tm;
    dh.start[h] = first + (int64_t)h * 3600;
    local_tm(dh.start[h], &tm);
    snprintf(dh.label[h], sizeof(dh.label[h]), "%02d:%02d", tm.tm_hour,
             tm.tm_min);
  }
  snprintf(req, sizeof(req), "history %s %" PRId64 " %" PRId64 " %s", kind,
           first, first + (int64_t)dh.n * 3600, name);
  ask(spec, req, &a);
  for (i = 0; i < a.nrecs; i++) {
    rec *r = &a.recs[i];
    int64_t hour;
    if (strcmp(r->f[0], "limit") == 0 && r->n == 2) {
      limit = number(r->f[1]);
      continue;
    }
    if (strcmp(r->f[0], "kept") == 0 && r->n == 3) {
      kept = number(r->f[1]);
      retention = number(r->f[2]);
      continue;
    }
    if (strcmp(r->f[0], "hour") != 0 || r->n != 4)
      die(EXIT_DAEMON, "the answer holds a line that is not an hour");
    hour = number(r->f[1]);
    if (hour < first || hour >= first + (int64_t)dh.n * 3600)
      continue;
    h = (int)((hour - first) / 3600);
    sent[h] += number(r->f[2]);
    refused[h] += number(r->f[3]);
  }
  /* The hours the retention no longer keeps are not hours without mail:
     a day of them only is an error, the others are shown as not kept. */
  for (dh.kept = 0; dh.kept < dh.n && dh.start[dh.kept] < kept; dh.kept++)
    ;
  if (dh.kept == dh.n) {
    char when[40], abbr[16];

    die(EXIT_USAGE,
        "day %s is older than the retention (%" PRId64 " hours): the oldest "
        "hour kept is %.16s %s",
        day, retention, table_time(kept, when, sizeof(when)),
        zone_abbr(kept, abbr, sizeof(abbr)));
  }
  for (h = dh.kept; h < dh.n; h++) {
    tsent += sent[h];
    tref += refused[h];
  }
  if (svg != NULL) {
    FILE *f = strcmp(svg, "-") == 0 ? stdout : fopen(svg, "w");
    if (f == NULL)
      die(EXIT_USAGE, "cannot write %s: %s", svg, strerror(errno));
    write_svg(f, kind, name, day, &dh, sent, refused, limit);
    if (f != stdout && fclose(f) != 0)
      die(EXIT_USAGE, "cannot write %s: %s", svg, strerror(errno));
    if (f == stdout)
      return;
  }
  if (json) {
    char when[32];
    printf("{\n  \"kind\": ");
    json_string(kind);
    printf(",\n  \"name\": ");
    json_string(name);
    printf(",\n  \"day\": \"%s\",\n  \"timezone\": ", day);
    json_string(zone);
    printf(",\n  \"hours\": [");
    for (h = 0; h < dh.n; h++)
      if (h < dh.kept)
        printf("%s\n    {\"hour\": \"%s\", \"sent\": null, \"refused\": "
               "null, \"kept\": false}",
               h ? "," : "", obspamd_iso_time(dh.start[h], when, sizeof(when)));
      else
        printf("%s\n    {\"hour\": \"%s\", \"sent\": %" PRId64
               ", \"refused\": %" PRId64 "}",
               h ? "," : "", obspamd_iso_time(dh.start[h], when, sizeof(when)),
               sent[h], refused[h]);
    printf("\n  ],\n  \"sent\": %" PRId64 ",\n  \"refused\": %" PRId64
           ",\n  \"limit\": ",
           tsent, tref);
    json_limit(limit);
    /* From a daemon that says what the retention keeps. */
    if (kept != INT64_MIN)
      printf(",\n  \"retention_hours\": %" PRId64
             ",\n  \"oldest_hour_kept\": \"%s\"",
             retention, obspamd_iso_time(kept, when, sizeof(when)));
    printf("\n}\n");
  } else {
    printf("%s ", kind);
    put_utf8(stdout, name, plain_char);
    printf(" on %s (", day);
    put_utf8(stdout, zone, plain_char);
    printf("), per clock hour:\n\n");
    printf("HOUR   %8s  %8s\n", "SENT", "REFUSED");
    for (h = 0; h < dh.n; h++)
      if (h < dh.kept)
        printf("%s  %8s  %8s\n", dh.label[h], "-", "-");
      else
        printf("%s  %8" PRId64 "  %8" PRId64 "\n", dh.label[h], sent[h],
               refused[h]);
    printf("total  %8" PRId64 "  %8" PRId64 "\n", tsent, tref);
    if (limit >= 0)
      printf("limit  %8" PRId64 " per hour\n", limit);
    if (dh.kept > 0)
      printf("\n-: not kept: the retention (%" PRId64 " hours) keeps the "
             "hours from %s; the total is of the hours from %s.\n",
             retention, dh.label[dh.kept], dh.label[dh.kept]);
  }
  if (svg != NULL)
    fprintf(stderr, "%s: chart written to %s\n", progname, svg);
}

/* ---- panels: list, top, blocked, overview ------------------------------ */

/* A table of text cells, aligned when printed: numbers (the columns in
   right) to the right, the last column unpadded. */
typedef struct table {
  int ncols;
  const char *const *head;
  unsigned right;
  char **cells; /* ncols per row */
  size_t n, size;
} table;

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *fmt(const char *f, ...) {
  va_list ap;
  char *s;
  int n;

  va_start(ap, f);
  n = vsnprintf(NULL, 0, f, ap);
  va_end(ap);
  s = xmalloc((size_t)n + 1);
  va_start(ap, f);
  vsnprintf(s, (size_t)n + 1, f, ap);
  va_end(ap);
  return s;
}

/* The first two cells of an object's row: its kind and name. */
static void who_cells(char **c, const char *kind, const char *name) {
  c[0] = fmt("%s", kind);
  c[1] = fmt("%s", name);
}

/* Adds a row of t->ncols cells (taken: made by fmt). */
static void table_row(table *t, char **cells) {
  if (t->n == t->size) {
    t->size = t->size ? t->size * 2 : 64;
    t->cells = realloc(t->cells, t->size * (size_t)t->ncols * sizeof(char *));
    if (t->cells == NULL)
      die(EXIT_DAEMON, "out of memory");
  }
  memcpy(t->cells + t->n * (size_t)t->ncols, cells,
         (size_t)t->ncols * sizeof(char *));
  t->n++;
}

static void table_print(table *t) {
  int w[16], c;
  size_t i;

  for (c = 0; c < t->ncols; c++)
    w[c] = width(t->head[c]);
  for (i = 0; i < t->n; i++)
    for (c = 0; c < t->ncols; c++)
      if (width(t->cells[i * (size_t)t->ncols + c]) > w[c])
        w[c] = width(t->cells[i * (size_t)t->ncols + c]);
  for (i = 0; i <= t->n; i++) {
    for (c = 0; c < t->ncols; c++) {
      const char *v = i == 0 ? t->head[c] : t->cells[(i - 1) * t->ncols + c];
      int pad = w[c] - width(v);
      if (c > 0)
        printf("  ");
      if (t->right & (1u << c)) {
        while (pad-- > 0)
          putchar(' ');
        put_utf8(stdout, v, plain_char);
      } else if (c == t->ncols - 1) {
        put_utf8(stdout, v, plain_char);
      } else {
        cell(v, w[c]);
      }
    }
    putchar('\n');
  }
  for (i = 0; i < t->n * (size_t)t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
}

/* A limit for a table: the count, or "unlimited". */
static char *limit_cell(int64_t limit) {
  return limit < 0 ? fmt("unlimited") : fmt("%" PRId64, limit);
}

static void need_fields(const rec *r, size_t n) {
  if (r->n != n)
    die(EXIT_DAEMON, "the answer holds a %s line of %zu fields", r->f[0], r->n);
}

/* list rows: row KIND NAME SENDING SENT REFUSED EXCEEDED LIMIT COUNT
   BLOCKED_KIND BLOCKED_BY LAST_RESET. */
enum {
  L_KIND = 1,
  L_NAME,
  L_SENDING,
  L_SENT,
  L_REFUSED,
  L_EXCEEDED,
  L_LIMIT,
  L_COUNT,
  L_BKIND,
  L_BY,
  L_RESET,
  L_FIELDS
};

static void cmd_list(const char *spec, int json, const char *kind,
                     const char *parent, int active, const char *after,
                     const char *limit) {
  static const char *const head[] = {"KIND",    "NAME",  "SENDING",
                                     "COUNT",   "LIMIT", "SENT",
                                     "REFUSED", "OVER",  "BLOCKED BY"};
  table t = {9, head, 0xf8, NULL, 0, 0};
  char req[3000];
  const char *next = NULL;
  answer a;
  size_t i, n = 0;
  int64_t now = (int64_t)time(NULL);
  int marked = 0;

  kind_for(kind, 0);
  snprintf(req, sizeof(req), "list %s%s%s%s%s%s%s%s", kind,
           parent ? " parent=" : "", parent ? parent : "",
           active ? " active" : "", after ? " after=" : "", after ? after : "",
           limit ? " limit=" : "", limit ? limit : "");
  ask(spec, req, &a);
  for (i = 0; i < a.nrecs; i++) {
    if (strcmp(a.recs[i].f[0], "row") == 0)
      need_fields(&a.recs[i], L_FIELDS);
    else if (strcmp(a.recs[i].f[0], "next") == 0 && a.recs[i].n == 2)
      next = a.recs[i].f[1];
  }
  if (json) {
    printf("{\n  \"kind\": ");
    json_string(kind);
    printf(",\n  \"parent\": ");
    if (parent)
      json_string(parent);
    else
      printf("null");
    printf(",\n  \"active\": %s,\n  \"rows\": [", active ? "true" : "false");
  }
  for (i = 0; i < a.nrecs; i++) {
    rec *r = &a.recs[i];
    int blocked, hour, day;
    char *c[9];
    if (strcmp(r->f[0], "row") != 0)
      continue;
    blocked = strcmp(r->f[L_BKIND], "-") != 0;
    /* SENT is the day window's, COUNT, REFUSED and OVER the hour's: each
       counts from a reset that fell in its window, as status says. */
    hour = since_reset(number(r->f[L_RESET]), now, 1);
    day = since_reset(number(r->f[L_RESET]), now, 2);
    marked |= day;
    if (json) {
      printf("%s\n    ", n++ ? "," : "");
      json_who(r->f[L_KIND], r->f[L_NAME]);
      printf(", \"sent\": %" PRId64 ", \"refused\": %" PRId64
             ", \"exceeded\": %" PRId64 ", \"limit\": ",
             number(r->f[L_SENT]), number(r->f[L_REFUSED]),
             number(r->f[L_EXCEEDED]));
      json_limit(number(r->f[L_LIMIT]));
      printf(", \"count\": %" PRId64 ", \"sending\": %s, \"blocked_by\": ",
             number(r->f[L_COUNT]), number(r->f[L_SENDING]) ? "true" : "false");
      if (blocked) {
        json_who(r->f[L_BKIND], r->f[L_BY]);
        printf("}");
      } else {
        printf("null");
      }
      printf(", \"last_reset\": ");
      json_time(number(r->f[L_RESET]));
      printf(", \"since_reset\": [%s]",
             hour  ? "\"count\", \"sent\", \"refused\", \"exceeded\""
             : day ? "\"sent\""
                   : "");
      printf("}");
    } else {
      who_cells(c, r->f[L_KIND], r->f[L_NAME]);
      c[2] = fmt("%s", number(r->f[L_SENDING]) ? "yes" : "no");
      c[3] = fmt("%" PRId64 "%s", number(r->f[L_COUNT]), hour ? "*" : "");
      c[4] = limit_cell(number(r->f[L_LIMIT]));
      c[5] = fmt("%" PRId64 "%s", number(r->f[L_SENT]), day ? "*" : "");
      c[6] = fmt("%" PRId64 "%s", number(r->f[L_REFUSED]), hour ? "*" : "");
      c[7] = fmt("%" PRId64 "%s", number(r->f[L_EXCEEDED]), hour ? "*" : "");
      c[8] = blocked ? fmt("%s %s", r->f[L_BKIND], r->f[L_BY]) : fmt("-");
      table_row(&t, c);
    }
  }
  if (json) {
    printf("%s],\n  \"next\": ", n ? "\n  " : "");
    if (next)
      json_string(next);
    else
      printf("null");
    printf("\n}\n");
    return;
  }
  if (t.n == 0) {
    printf("No %s%s.\n", kind, active ? " was active" : "");
    free(t.cells);
  } else {
    table_print(&t);
  }
  if (marked)
    printf("*: since the object's reset, which fell in the window (COUNT, "
           "REFUSED\n   and OVER: the last 60 minutes; SENT: the last 24 "
           "hours).\n");
  if (next != NULL) {
    printf("More after ");
    put_utf8(stdout, next, plain_char);
    printf(": obspamctl list %s --after ", kind);
    put_utf8(stdout, next, plain_char);
    printf("\n");
  }
}

/* top rows: row KIND SENT REFUSED EXCEEDED LIMIT COUNT SENDING UID
   SUBSCRIPTION NAME; LIMIT, COUNT and SENDING "-" for a script (and an
   object no longer configured). */
enum {
  T_KIND = 1,
  T_SENT,
  T_REFUSED,
  T_EXCEEDED,
  T_LIMIT,
  T_COUNT,
  T_SENDING,
  T_UID,
  T_SUB,
  T_NAME,
  T_FIELDS
};

static void json_top_row(const rec *r) {
  int live = strcmp(r->f[T_LIMIT], "-") != 0;

  json_who(r->f[T_KIND], r->f[T_NAME]);
  printf(", \"sent\": %" PRId64 ", \"refused\": %" PRId64
         ", \"exceeded\": %" PRId64 ", \"limit\": ",
         number(r->f[T_SENT]), number(r->f[T_REFUSED]),
         number(r->f[T_EXCEEDED]));
  json_limit(live ? number(r->f[T_LIMIT]) : -1);
  printf(", \"count\": ");
  if (live)
    printf("%" PRId64, number(r->f[T_COUNT]));
  else
    printf("null");
  printf(", \"sending\": %s", !live                     ? "null"
                              : number(r->f[T_SENDING]) ? "true"
                                                        : "false");
  json_owner(r->f[T_UID], r->f[T_SUB]);
  printf("}");
}

/* The "row" records of a as a JSON array of top rows, indented as a
   member of the answer's object. */
static void json_top_rows(const answer *a) {
  size_t i, n = 0;

  printf("[");
  for (i = 0; i < a->nrecs; i++) {
    if (strcmp(a->recs[i].f[0], "row") != 0)
      continue;
    printf("%s\n    ", n++ ? "," : "");
    json_top_row(&a->recs[i]);
  }
  printf("%s]", n ? "\n  " : "");
}

/* Top rows as a table, or "none" when there are none. */
static void top_table(const answer *a, const char *none) {
  static const char *const head[] = {"KIND", "NAME",        "SENT",  "REFUSED",
                                     "OVER", "COUNT",       "LIMIT", "SENDING",
                                     "UID",  "SUBSCRIPTION"};
  table t = {10, head, 0x1fc & ~0x80u, NULL, 0, 0};
  size_t i;

  for (i = 0; i < a->nrecs; i++) {
    const rec *r = &a->recs[i];
    int live;
    char *c[10];
    if (strcmp(r->f[0], "row") != 0)
      continue;
    live = strcmp(r->f[T_LIMIT], "-") != 0;
    who_cells(c, r->f[T_KIND], r->f[T_NAME]);
    c[2] = fmt("%" PRId64, number(r->f[T_SENT]));
    c[3] = fmt("%" PRId64, number(r->f[T_REFUSED]));
    c[4] = fmt("%" PRId64, number(r->f[T_EXCEEDED]));
    c[5] = live ? fmt("%" PRId64, number(r->f[T_COUNT])) : fmt("-");
    c[6] = live ? limit_cell(number(r->f[T_LIMIT])) : fmt("-");
    c[7] = !live ? fmt("-") : fmt(number(r->f[T_SENDING]) ? "yes" : "no");
    c[8] = number(r->f[T_UID]) < 0 ? fmt("-") : fmt("%s", r->f[T_UID]);
    c[9] = fmt("%s", *r->f[T_SUB] ? r->f[T_SUB] : "-");
    table_row(&t, c);
  }
  if (t.n == 0) {
    printf("%s\n", none);
    free(t.cells);
  } else {
    table_print(&t);
  }
}

static void cmd_top(const char *spec, int json, const char *kind,
                    const char *since, const char *limit) {
  int64_t now = (int64_t)time(NULL), from, to;
  char req[256], t1[32], t2[32], abbr[64];
  answer a;
  size_t i;

  if (kind != NULL)
    kind_for(kind, 1);
  from = now - parse_duration(since ? since : "24h");
  to = now + 1;
  snprintf(req, sizeof(req), "top %" PRId64 " %" PRId64 "%s%s limit=%s", from,
           to, kind ? " kind=" : "", kind ? kind : "", limit ? limit : "10");
  ask(spec, req, &a);
  for (i = 0; i < a.nrecs; i++)
    if (strcmp(a.recs[i].f[0], "row") == 0)
      need_fields(&a.recs[i], T_FIELDS);
  if (json) {
    json_span(from, to);
    json_top_rows(&a);
    printf("\n}\n");
    return;
  }
  {
    int64_t end = to % 3600 ? to - to % 3600 + 3600 : to;
    printf("Top senders of the clock hours from %.16s to %.16s %s\n\n",
           table_time(from - from % 3600, t1, sizeof(t1)),
           table_time(end, t2, sizeof(t2)), zone_abbr(end, abbr, sizeof(abbr)));
  }
  top_table(&a, "Nothing was sent.");
}

/* blocked rows: row KIND NAME BLOCKED_KIND BLOCKED_BY WINDOW LIMIT. */
enum { B_KIND = 1, B_NAME, B_BKIND, B_BY, B_WINDOW, B_LIMIT, B_FIELDS };

static void cmd_blocked(const char *spec, int json) {
  static const char *const head[] = {"KIND", "NAME", "BLOCKED BY", "WINDOW",
                                     "LIMIT"};
  table t = {5, head, 0x10, NULL, 0, 0};
  answer a;
  size_t i, n = 0;

  ask(spec, "blocked", &a);
  if (json)
    printf("{\n  \"rows\": [");
  for (i = 0; i < a.nrecs; i++) {
    rec *r = &a.recs[i];
    int known;
    if (strcmp(r->f[0], "row") != 0)
      continue;
    need_fields(r, B_FIELDS);
    known = strcmp(r->f[B_BKIND], "-") != 0;
    if (json) {
      printf("%s\n    ", n++ ? "," : "");
      json_who(r->f[B_KIND], r->f[B_NAME]);
      printf(", \"blocked_by\": ");
      if (!known) {
        printf("null}");
        continue;
      }
      json_who(r->f[B_BKIND], r->f[B_BY]);
      printf(", \"window\": ");
      json_field(r->f[B_WINDOW]);
      printf(", \"limit\": ");
      json_limit(number(r->f[B_LIMIT]));
      printf("}}");
    } else {
      char *c[5];
      who_cells(c, r->f[B_KIND], r->f[B_NAME]);
      c[2] = known ? fmt("%s %s", r->f[B_BKIND], r->f[B_BY]) : fmt("-");
      c[3] = fmt("%s", r->f[B_WINDOW]);
      c[4] = number(r->f[B_LIMIT]) < 0 ? fmt("-") : fmt("%s", r->f[B_LIMIT]);
      table_row(&t, c);
    }
  }
  if (json) {
    printf("%s]\n}\n", n ? "\n  " : "");
  } else if (t.n == 0) {
    printf("Every object can send.\n");
    free(t.cells);
  } else {
    table_print(&t);
  }
}

static void cmd_overview(const char *spec, int json) {
  static const char *const kinds[3] = {"subscription", "domain", "mailbox"};
  static const char *const keys[3] = {"not_sending_subscriptions",
                                      "not_sending_domains",
                                      "not_sending_mailboxes"};
  int64_t blocked[3], enabled, hour, day, day_from;
  char t1[32], abbr[64];
  answer a;
  size_t i;
  int k;

  ask(spec, "overview", &a);
  enabled = number(value(&a, "enabled"));
  for (k = 0; k < 3; k++)
    blocked[k] = number(value(&a, keys[k]));
  hour = number(value(&a, "refused_hour"));
  day = number(value(&a, "refused_day"));
  day_from = number(value(&a, "day_from"));
  for (i = 0; i < a.nrecs; i++)
    if (strcmp(a.recs[i].f[0], "row") == 0)
      need_fields(&a.recs[i], T_FIELDS);
  if (json) {
    printf("{\n  \"enabled\": %s,\n  \"not_sending\": {",
           enabled ? "true" : "false");
    for (k = 0; k < 3; k++)
      printf("%s\"%s\": %" PRId64, k ? ", " : "", kinds[k], blocked[k]);
    printf("},\n  \"refused_hour\": %" PRId64 ",\n  \"refused_day\": %" PRId64
           ",\n  \"day_from\": ",
           hour, day);
    json_time(day_from);
    printf(",\n  \"timezone\": ");
    json_string(zone);
    printf(",\n  \"top\": ");
    json_top_rows(&a);
    printf("\n}\n");
    return;
  }
  printf("Protection:   %s\n", enabled ? "on" : "off (every message passes)");
  printf("Not sending:  %" PRId64 " subscription%s, %" PRId64
         " domain%s, %" PRId64 " mailbox%s\n",
         blocked[0], blocked[0] == 1 ? "" : "s", blocked[1],
         blocked[1] == 1 ? "" : "s", blocked[2], blocked[2] == 1 ? "" : "es");
  printf("Refused:      %" PRId64 " in the last 60 minutes, %" PRId64
         " since %.16s %s\n\n",
         hour, day, table_time(day_from, t1, sizeof(t1)),
         zone_abbr(day_from, abbr, sizeof(abbr)));
  printf("Top senders since %.16s %s:\n", t1, abbr);
  top_table(&a, "Nothing was sent.");
}

static void cmd_message(const char *spec, int json, const char *command) {
  answer a;
  const char *msg;

  ask(spec, command, &a);
  msg = value(&a, "message");
  if (msg == NULL)
    die(EXIT_DAEMON, "the answer lacks its message");
  if (json) {
    printf("{\"result\": \"ok\", \"message\": ");
    json_string(msg);
    printf("}\n");
  } else {
    put_utf8(stdout, msg, plain_char);
    putchar('\n');
  }
}

static void cmd_ping(const char *spec, int json) {
  answer a;
  const char *name, *version;
  int64_t pid, uptime;

  ask(spec, "ping", &a);
  name = value(&a, "name");
  version = value(&a, "version");
  pid = number(value(&a, "pid"));
  uptime = number(value(&a, "uptime"));
  if (name == NULL || version == NULL)
    die(EXIT_DAEMON, "the answer lacks a field");
  if (json) {
    printf("{\"name\": ");
    json_string(name);
    printf(", \"version\": ");
    json_string(version);
    printf(", \"pid\": %" PRId64 ", \"uptime\": %" PRId64 "}\n", pid, uptime);
  } else {
    printf("%s (libobspam %s), pid %" PRId64 ", up %" PRId64 " s\n", name,
           version, pid, uptime);
  }
}

/* ---- the command line ---------------------------------------------------- */

/* Long options; the values past 255 are those with no short form. */
enum {
  OPT_CONTROL = 256,
  OPT_JSON,
  OPT_TIMEOUT,
  OPT_SINCE,
  OPT_DAY,
  OPT_SVG,
  OPT_VERSION,
  OPT_FORCE,
  OPT_TZ,
  OPT_PARENT,
  OPT_ACTIVE,
  OPT_AFTER,
  OPT_LIMIT,
  OPT_KIND,
  OPT_END
};

#define LONG_OPTIONS (OPT_END - OPT_CONTROL)

/* Their names, in that order, each followed by ':' when it takes a value
   (as getopt's short options are). */
static const char *const long_names[LONG_OPTIONS] = {
    "control:", "json", "timeout:", "since:", "day:",   "svg:",   "version",
    "force",    "tz:",  "parent:",  "active", "after:", "limit:", "kind:"};

/* Made from long_names by long_options_init, then --help (-h), then the
   zeros that end the array. */
static struct option long_options[LONG_OPTIONS + 2];

static void long_options_init(void) {
  static char names[LONG_OPTIONS][16];
  int i;

  for (i = 0; i < LONG_OPTIONS; i++) {
    size_t n = strlen(long_names[i]);
    int value = long_names[i][n - 1] == ':';

    memcpy(names[i], long_names[i], n - (size_t)value);
    long_options[i].name = names[i];
    long_options[i].has_arg = value ? required_argument : no_argument;
    long_options[i].val = OPT_CONTROL + i;
  }
  long_options[i].name = "help";
  long_options[i].val = 'h';
}

/* ":" first: a missing value is told apart from an unknown option, and
   getopt_long prints nothing of its own. Options may follow the command
   (`report --since 7d`): GNU getopt_long moves the words behind them. */
static const char short_options[] = ":h";

/* Whether --json is among the options, found before the real parse so that
   an error in an option before it is already a JSON document. It parses a
   copy: getopt_long reorders the array it reads, and an option left
   without its value would then take the command as its value. */
static int wants_json(int argc, char **argv) {
  char **copy = xmalloc(((size_t)argc + 1) * sizeof(*copy));
  int c, found = 0;

  memcpy(copy, argv, ((size_t)argc + 1) * sizeof(*copy));
  opterr = 0;
  while ((c = getopt_long(argc, copy, short_options, long_options, NULL)) != -1)
    if (c == OPT_JSON)
      found = 1;
  optind = 0; /* GNU: the next getopt_long starts afresh */
  free(copy);
  return found;
}

int main(int argc, char **argv) {
  const char *control = getenv("OBSPAM_CONTROL"), *since = NULL, *day = NULL,
             *svg = NULL, *words[8], *tz = NULL, *parent = NULL, *after = NULL,
             *limit = NULL, *kind = NULL;
  /* Where the options with a text value put it. */
  const char **text_of[LONG_OPTIONS] = {[OPT_CONTROL - OPT_CONTROL] = &control,
                                        [OPT_SINCE - OPT_CONTROL] = &since,
                                        [OPT_DAY - OPT_CONTROL] = &day,
                                        [OPT_SVG - OPT_CONTROL] = &svg,
                                        [OPT_TZ - OPT_CONTROL] = &tz,
                                        [OPT_PARENT - OPT_CONTROL] = &parent,
                                        [OPT_AFTER - OPT_CONTROL] = &after,
                                        [OPT_KIND - OPT_CONTROL] = &kind};
  char spec[600];
  int json = 0, force = 0, active = 0, nwords = 0, i, opt;

  long_options_init();
  if (control == NULL || *control == '\0')
    control = DEFAULT_CONTROL;
  json_errors = wants_json(argc, argv);
  opterr = 0;
  while ((opt = getopt_long(argc, argv, short_options, long_options, NULL)) !=
         -1) {
    if (opt >= OPT_CONTROL && text_of[opt - OPT_CONTROL] != NULL) {
      *text_of[opt - OPT_CONTROL] = optarg;
      continue;
    }
    switch (opt) {
    case 'h':
      usage_text(stdout);
      return 0;
    case OPT_VERSION:
      printf("obspamctl (libobspam %d.%d.%d)\n", OBSPAM_VERSION_MAJOR,
             OBSPAM_VERSION_MINOR, OBSPAM_VERSION_PATCH);
      return 0;
    case OPT_JSON:
      json = 1;
      break;
    case OPT_FORCE:
      force = 1;
      break;
    case OPT_ACTIVE:
      active = 1;
      break;
    case OPT_LIMIT: {
      char *end;
      long n = strtol(optarg, &end, 10);
      if (*optarg < '0' || *optarg > '9' || *end != '\0' || n < 0 ||
          n > 100000000)
        die_usage("bad limit '%s': expected a count, 0..100000000 (0: all)",
                  optarg);
      limit = optarg;
      break;
    }
    case OPT_TIMEOUT: {
      char *end;
      long t = strtol(optarg, &end, 10);
      if (*optarg == '\0' || *end != '\0' || t <= 0 || t > 86400)
        die_usage("bad timeout '%s': expected seconds, 1..86400", optarg);
      timeout_s = (int)t;
      break;
    }
    case ':': /* argv[optind - 1] is the option as written */
      die_usage("option %s needs a value", argv[optind - 1]);
    default: /* '?': optopt is the short option, the value of a long
                option given a value it does not take, or 0 */
      if ((optopt >= OPT_CONTROL && optopt < OPT_END &&
           long_options[optopt - OPT_CONTROL].has_arg == no_argument) ||
          optopt == 'h')
        die_usage("option %s takes no value", argv[optind - 1]);
      if (optopt != 0)
        die_usage("unknown option '-%c'", optopt);
      die_usage("unknown option '%s'", argv[optind - 1]);
    }
  }
  for (i = optind; i < argc; i++) {
    if (nwords == (int)(sizeof(words) / sizeof(words[0])))
      die_usage("too many arguments");
    words[nwords++] = argv[i];
  }
  if (nwords == 0)
    die_usage("no command given");
  /* One request is one line: a name cannot carry a line break into it. */
  for (i = 1; i < nwords; i++) {
    const char *c;
    for (c = words[i]; *c; c++)
      if ((unsigned char)*c < 0x20 || *c == 0x7f)
        die_usage("'%s' holds a control character", words[i]);
  }
  /* A bare path is a Unix socket. */
  if (control[0] == '/')
    snprintf(spec, sizeof(spec), "unix:%s", control);
  else
    snprintf(spec, sizeof(spec), "%s", control);
  {
    obspamd_spec sp;
    char err[512];
    if (obspamd_spec_parse(spec, &sp, err, sizeof(err)) != 0)
      die_usage("--control: %s", err);
  }

  if (force && strcmp(words[0], "reload") != 0)
    die_usage("--force goes with reload only");
  if (since != NULL && strcmp(words[0], "report") != 0 &&
      strcmp(words[0], "top") != 0)
    die_usage("--since goes with report and top only");
  if ((parent != NULL || active || after != NULL) &&
      strcmp(words[0], "list") != 0)
    die_usage("%s goes with list only", parent   ? "--parent"
                                        : active ? "--active"
                                                 : "--after");
  if (limit != NULL && strcmp(words[0], "list") != 0 &&
      strcmp(words[0], "top") != 0)
    die_usage("--limit goes with list and top only");
  if (kind != NULL && strcmp(words[0], "top") != 0)
    die_usage("--kind goes with top only");
  zone_set(tz);
  if ((day != NULL || svg != NULL) && strcmp(words[0], "history") != 0)
    die_usage("%s goes with history only", day ? "--day" : "--svg");

  if (strcmp(words[0], "status") == 0) {
    if (nwords != 3)
      die_usage("usage: status KIND NAME");
    cmd_status(spec, json, words[1], words[2]);
  } else if (strcmp(words[0], "report") == 0) {
    if (nwords != 1)
      die_usage("usage: report [--since DURATION] [--json]");
    cmd_report(spec, json, since);
  } else if (strcmp(words[0], "history") == 0) {
    if (nwords != 3)
      die_usage("usage: history KIND NAME [--day YYYY-MM-DD] [--svg FILE]");
    cmd_history(spec, json, words[1], words[2], day, svg);
  } else if (strcmp(words[0], "reload") == 0 || strcmp(words[0], "save") == 0) {
    if (nwords != 1)
      die_usage("usage: %s", words[0]);
    cmd_message(spec, json, force ? "reload force" : words[0]);
  } else if (strcmp(words[0], "ping") == 0) {
    if (nwords != 1)
      die_usage("usage: ping");
    cmd_ping(spec, json);
  } else if (strcmp(words[0], "list") == 0) {
    if (nwords != 2)
      die_usage("usage: list KIND [--parent NAME] [--active] [--after NAME] "
                "[--limit N]");
    cmd_list(spec, json, words[1], parent, active, after, limit);
  } else if (strcmp(words[0], "top") == 0) {
    if (nwords != 1)
      die_usage("usage: top [--kind KIND] [--since DURATION] [--limit N]");
    cmd_top(spec, json, kind, since, limit);
  } else if (strcmp(words[0], "blocked") == 0 ||
             strcmp(words[0], "overview") == 0) {
    if (nwords != 1)
      die_usage("usage: %s", words[0]);
    if (words[0][0] == 'b')
      cmd_blocked(spec, json);
    else
      cmd_overview(spec, json);
  } else if (strcmp(words[0], "reset") == 0) {
    char req[1024];
    if (nwords != 3)
      die_usage("usage: reset KIND NAME");
    kind_for(words[1], 0);
    snprintf(req, sizeof(req), "reset %s %s", words[1], words[2]);
    cmd_message(spec, json, req);
  } else if (strcmp(words[0], "set-limit") == 0) {
    char req[2048];
    if (nwords != 5)
      die_usage("usage: set-limit KIND NAME WHICH VALUE");
    if (strcmp(words[1], "plan") != 0 &&
        strcmp(words[1], "subscription") != 0 &&
        strcmp(words[1], "domain") != 0 && strcmp(words[1], "mailbox") != 0)
      die_usage("bad kind '%s': expected plan, subscription, domain or "
                "mailbox",
                words[1]);
    snprintf(req, sizeof(req), "set-limit %s %s %s %s", words[1], words[2],
             words[3], words[4]);
    cmd_message(spec, json, req);
  } else {
    die_usage("unknown command '%s': expected status, report, history, list, "
              "top, blocked, overview, reset, set-limit, reload, save or "
              "ping",
              words[0]);
  }
  answer_free(&last_answer);
  if (fflush(stdout) != 0 || ferror(stdout))
    die(EXIT_DAEMON, "cannot write the output: %s", strerror(errno));
  return 0;
}
