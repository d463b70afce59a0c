/* SPDX-License-Identifier: MIT */
/* Logging, the text of a refusal, the metrics counters and the service
   around the engine (see log.h, refusal.h, metrics.h, service.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "forwards.h"
#include "internal.h"
#include "log.h"
#include "metrics.h"
#include "refusal.h"
#include "service.h"
#include "util.h"

/* ---- logging --------------------------------------------------------------
 */

/* The settings may change while threads log (a daemon that goes to the
   background switches to syslog): the lock makes a line see the old
   settings or the new ones. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_ident[64] = "obspamd";
static int log_mode = OBSPAMD_LOG_STDERR;
static int log_echo;
static int log_verbose;
/* The syslog socket: a datagram socket connected to obspamd__syslog_path
   while in syslog mode, -1 otherwise. Written here rather than through
   syslog(3) so that the tests can point it at a socket of their own. */
static int log_fd = -1;
const char *obspamd__syslog_path = "/dev/log";

/* Connects the syslog socket; with log_lock held. A missing syslog daemon
   is not an error: lines are dropped until it is there. */
static void syslog_connect(void) {
  struct sockaddr_un sun;

  if (log_fd >= 0)
    close(log_fd);
  log_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (log_fd < 0)
    return;
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", obspamd__syslog_path);
  if (connect(log_fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
    /* Kept: a later line tries again. */
  }
}

void obspamd_log_open(const char *ident, int mode) {
  pthread_mutex_lock(&log_lock);
  snprintf(log_ident, sizeof(log_ident), "%s", ident ? ident : "obspamd");
  log_mode = mode;
  if (mode == OBSPAMD_LOG_SYSLOG) {
    /* Opened now, while the daemon may still be root and before any
       sandbox: /dev/log stays reachable whatever comes after. */
    syslog_connect();
  } else if (log_fd >= 0) {
    close(log_fd);
    log_fd = -1;
  }
  pthread_mutex_unlock(&log_lock);
}

void obspamd_log_echo(int on) {
  pthread_mutex_lock(&log_lock);
  log_echo = on;
  pthread_mutex_unlock(&log_lock);
}

int obspamd_log_mode(int asked, int foreground) {
  const char *js = getenv("JOURNAL_STREAM");
  unsigned long long dev, ino;
  struct stat st;

  if (asked != OBSPAMD_LOG_AUTO)
    return asked;
  /* systemd sets JOURNAL_STREAM to the device and inode of the stream it
     connected stdout and stderr to; a child whose stderr was redirected
     since inherits the variable but not the stream (systemd.exec(5)). A
     daemon that detaches puts /dev/null in its place: syslog then. */
  if (foreground && js != NULL && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
      fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
      (unsigned long long)st.st_ino == ino)
    return OBSPAMD_LOG_JOURNAL;
  return foreground ? OBSPAMD_LOG_STDERR : OBSPAMD_LOG_SYSLOG;
}

void obspamd_log_verbose(int verbose) {
  __atomic_store_n(&log_verbose, verbose, __ATOMIC_RELAXED);
}

void obspamd__clean(char *dst, size_t size, const char *src, int flags) {
  size_t i = 0, o = 0;

  if (size == 0)
    return;
  while (src != NULL && src[i] != '\0' && o + 1 < size) {
    unsigned char c = (unsigned char)src[i];
    int n = c >= 0x80 && (flags & OBSPAMD__CLEAN_UTF8)
                ? obspamd_utf8_char(src + i)
                : 1;
    if (c >= 0x80 && n > 1) {
      if (o + (size_t)n >= size)
        break;
      memcpy(dst + o, src + i, (size_t)n);
      o += (size_t)n;
      i += (size_t)n;
      continue;
    }
    dst[o++] = (c < 0x20 || c >= 0x7f ||
                ((flags & OBSPAMD__CLEAN_NO_BLANK) && c == ' '))
                   ? '?'
                   : (char)c;
    i++;
  }
  dst[o] = '\0';
}

static const char *level_prefix(int priority) {
  switch (priority & LOG_PRIMASK) {
  case LOG_EMERG:
  case LOG_ALERT:
  case LOG_CRIT:
    return "fatal: ";
  case LOG_ERR:
    return "error: ";
  case LOG_WARNING:
    return "warning: ";
  case LOG_DEBUG:
    return "debug: ";
  default:
    return "";
  }
}

/* One write per line, so that lines of different threads do not mix. */
static void write_line(const char *line, size_t n) {
  while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
    ;
}

/* Formats a line of the given mode into line (size bytes, at least 2),
   ending with a newline except in syslog mode; returns its length. */
size_t obspamd__log_format(int mode, const char *ident, long pid, time_t now,
                           int priority, const char *msg, char *line,
                           size_t size) {
  const char *level = level_prefix(priority);
  int n;

  if (mode == OBSPAMD_LOG_SYSLOG) {
    /* RFC 3164, as glibc's syslog(3) writes it: local time, and the
       facility in the priority. */
    char stamp[32];
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
    n = snprintf(line, size, "<%d>%s %s[%ld]: %s%s",
                 LOG_MAIL | (priority & LOG_PRIMASK), stamp, ident, pid, level,
                 msg);
  } else if (mode == OBSPAMD_LOG_JOURNAL) {
    /* The journal adds the time, the name and the pid; the facility
       comes from the unit's SyslogFacility=. */
    n = snprintf(line, size, "<%d>%s%s\n", priority & LOG_PRIMASK, level, msg);
  } else {
    char stamp[32];
    obspamd_iso_time((int64_t)now, stamp, sizeof(stamp));
    n = snprintf(line, size, "%s %s[%ld]: %s%s\n", stamp, ident, pid, level,
                 msg);
  }
  if (n < 0)
    return 0;
  if ((size_t)n >= size) {
    n = (int)size - 1;
    if (mode != OBSPAMD_LOG_SYSLOG)
      line[n - 1] = '\n';
  }
  return (size_t)n;
}

void obspamd_log(int priority, const char *fmt, ...) {
  char msg[2048], line[2200];
  va_list ap;
  size_t i, n;
  time_t now = time(NULL);

  if ((priority & LOG_PRIMASK) == LOG_DEBUG &&
      !__atomic_load_n(&log_verbose, __ATOMIC_RELAXED))
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  /* One event, one line: a name or path with a newline must not forge a
     second log line. UTF-8 passes (jörg@example.com, file names); a byte
     that is not part of it is written '?', so that a line is always valid
     UTF-8 for syslog, the journal and whatever reads them. */
  for (i = 0; msg[i] != '\0';) {
    unsigned char c = (unsigned char)msg[i];
    int len = c >= 0x80 ? obspamd_utf8_char(msg + i) : 1;
    if (len == 0 || c < 0x20 || c == 0x7f) {
      msg[i++] = '?';
      continue;
    }
    i += (size_t)len;
  }
  pthread_mutex_lock(&log_lock);
  n = obspamd__log_format(log_mode, log_ident, (long)getpid(), now, priority,
                          msg, line, sizeof(line));
  if (log_mode == OBSPAMD_LOG_SYSLOG) {
    /* A restarted syslog daemon has a new socket: connect again once. */
    if (log_fd >= 0 && send(log_fd, line, n, MSG_NOSIGNAL) < 0 &&
        errno != EAGAIN) {
      syslog_connect();
      if (log_fd >= 0)
        (void)send(log_fd, line, n, MSG_NOSIGNAL);
    }
    if (log_echo) {
      n = obspamd__log_format(OBSPAMD_LOG_STDERR, log_ident, (long)getpid(),
                              now, priority, msg, line, sizeof(line));
      pthread_mutex_unlock(&log_lock);
      write_line(line, n);
      return;
    }
    pthread_mutex_unlock(&log_lock);
    return;
  }
  pthread_mutex_unlock(&log_lock);
  write_line(line, n);
}

/* ---- the text of a refusal ----------------------------------------------- */

const char *obspamd_unit_word(int unit, int64_t n) {
  if (unit == 1)
    return n == 1 ? "message" : "messages";
  return n == 1 ? "recipient" : "recipients";
}

/* The window a verdict names, in words: "in the last minute" and "per
   minute", "in the last 60 minutes" and "per hour", "in the last 24
   hours" and "per day" (the hour also for any other value). */
static void window_words(int64_t w, const char **in, const char **per) {
  *in = w == OBSPAM_WINDOW_MINUTE ? "in the last minute"
        : w == OBSPAM_WINDOW_DAY  ? "in the last 24 hours"
                                  : "in the last 60 minutes";
  *per = obspamd_window_per(w);
}

const char *obspamd_window_per(int64_t window) {
  return window == OBSPAM_WINDOW_MINUTE ? "per minute"
         : window == OBSPAM_WINDOW_DAY  ? "per day"
                                        : "per hour";
}

int obspamd_notice_reason(const obspam_notice *n) {
  int64_t w = n->struct_size >= sizeof(*n) ? n->window : OBSPAM_WINDOW_HOUR;

  if (w == OBSPAM_WINDOW_MINUTE)
    return OBSPAMD_REASON_MINUTE;
  if (w == OBSPAM_WINDOW_HOUR)
    return OBSPAMD_REASON_HOUR;
  if (w == OBSPAM_WINDOW_DAY)
    return OBSPAMD_REASON_DAY;
  /* No window: the recipients cap (a count), or forbidden scripts, whose
     notice carries the subscription's hourly limit, which only an
     unlimited one tells apart from a cap. */
  return n->limit < 0 ? OBSPAMD_REASON_SCRIPTS : OBSPAMD_REASON_CAP;
}

const char *obspamd_reason_name(int reason) {
  static const char *const names[OBSPAMD_REASONS] = {
      "minute", "hour", "day", "max-recipients", "scripts"};

  return reason >= 0 && reason < OBSPAMD_REASONS ? names[reason] : "-";
}

/* A text put together in place and cut at cap bytes (without its NUL).
   A flood is answered with a refusal per request: building it costs a few
   copies, where snprintf parsed formats and copied through a stream. */
typedef struct rtext {
  char *buf;
  size_t len, cap;
} rtext;

static void put_bytes(rtext *t, const char *s, size_t n) {
  if (n > t->cap - t->len)
    n = t->cap - t->len;
  memcpy(t->buf + t->len, s, n);
  t->len += n;
}

static void put_str(rtext *t, const char *s) { put_bytes(t, s, strlen(s)); }

static void put_int(rtext *t, int64_t v) {
  char d[24];
  size_t i = sizeof(d);
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

  do
    d[--i] = (char)('0' + u % 10);
  while ((u /= 10) != 0);
  if (v < 0)
    d[--i] = '-';
  put_bytes(t, d + i, sizeof(d) - i);
}

/* "7 minutes", "1 hour", ...: n and its word, singular for 1. */
static void put_count(rtext *t, int64_t n, const char *one, const char *many) {
  put_int(t, n);
  put_str(t, " ");
  put_str(t, n == 1 ? one : many);
}

/* The wait a sender is told (obspamd__retry_shown): "35 seconds", "7
   minutes", up to two hours in minutes ("120 minutes"), then hours and
   minutes ("5 hours", "23 hours 59 minutes"). */
static void put_wait(rtext *t, int64_t retry_after) {
  int64_t s = obspamd__retry_shown(retry_after), minutes = s / 60;

  if (s < 60) {
    put_count(t, s, "second", "seconds");
    return;
  }
  if (minutes <= 120) {
    put_count(t, minutes, "minute", "minutes");
    return;
  }
  put_count(t, minutes / 60, "hour", "hours");
  if (minutes % 60 != 0) {
    put_str(t, " ");
    put_count(t, minutes % 60, "minute", "minutes");
  }
}

/* A name as obspamd__clean writes it with OBSPAMD__CLEAN_NO_BLANK: a
   byte that is not printable ASCII, or a blank, is '?'. */
static void put_name(rtext *t, const char *s) {
  for (; *s != '\0' && t->len < t->cap; s++) {
    unsigned char c = (unsigned char)*s;

    t->buf[t->len++] = c <= 0x20 || c >= 0x7f ? '?' : (char)c;
  }
}

/* "20 recipients per hour", or "unlimited". */
static void put_limit(rtext *t, const obspam_verdict *v, int unit,
                      const char *per) {
  if (v->limit < 0) {
    put_str(t, "unlimited");
    return;
  }
  put_int(t, v->limit);
  put_str(t, " ");
  put_str(t, obspamd_unit_word(unit, v->limit));
  put_str(t, " ");
  put_str(t, per);
}

void obspamd_refusal_text_msg(const obspam_verdict *v, const obspam_message *m,
                              int reject, int unit, int *code, char *buf,
                              size_t size) {
  const char *kind = obspamd_kind_name(v->kind), *in, *per;
  int reason = obspamd_refusal_reason(v, m);
  rtext t;

  if (code != NULL)
    *code = reject ? 550 : 451;
  if (buf == NULL || size == 0)
    return;
  t.buf = buf;
  t.len = 0;
  t.cap = size - 1 < OBSPAMD_REFUSAL_MAX ? size - 1 : OBSPAMD_REFUSAL_MAX;
  window_words(v->window, &in, &per);
  put_str(&t, reject ? "5.7.1 " : "4.7.1 ");
  if (reason == OBSPAMD_REASON_SCRIPTS) {
    put_str(&t, "scripts of subscription ");
    put_name(&t, v->object);
    put_str(&t, " may not send mail");
  } else if (reason == OBSPAMD_REASON_CAP) {
    /* The cap is on recipients whatever the unit; the message is refused
       whole, and waiting does not help. */
    put_str(&t, kind);
    put_str(&t, " ");
    put_name(&t, v->object);
    put_str(&t, " cannot send this message: it has ");
    put_count(&t, v->count, "recipient", "recipients");
    put_str(&t, ", its limit is ");
    put_count(&t, v->limit, "recipient", "recipients");
    put_str(&t, " per message");
  } else if (v->retry_after < 0) {
    /* Never: a limit of 0, or a message larger than the limit of a
       window. Counted in messages, a message never fits a limit above 0
       only for having more recipients than one message may have. No
       retry hint: waiting does not help. */
    put_str(&t, kind);
    put_str(&t, " ");
    put_name(&t, v->object);
    put_str(&t, " cannot send this message: ");
    if (v->limit == 0) {
      put_str(&t, "its limit is 0");
    } else if (unit == 1) {
      put_str(&t, "it has more recipients than the ");
      put_int(&t, v->limit);
      put_str(&t, " one message may have");
    } else {
      put_str(&t, "it has more recipients than its limit of ");
      put_limit(&t, v, unit, per);
    }
  } else {
    put_str(&t, kind);
    put_str(&t, " ");
    put_name(&t, v->object);
    put_str(&t, unit == 1 ? " has sent " : " has sent to ");
    put_int(&t, v->count);
    put_str(&t, " ");
    put_str(&t, obspamd_unit_word(unit, v->count));
    put_str(&t, " ");
    put_str(&t, in);
    put_str(&t, ", its limit is ");
    put_limit(&t, v, unit, per);
    /* A permanent refusal says nothing of retrying: its sender does
       not. */
    if (!reject) {
      put_str(&t, "; try again in ");
      put_wait(&t, v->retry_after);
    }
  }
  buf[t.len] = '\0';
}

void obspamd_refusal_text(const obspam_verdict *v, int reject, int unit,
                          int *code, char *buf, size_t size) {
  obspamd_refusal_text_msg(v, NULL, reject, unit, code, buf, size);
}

void obspamd_log_refusal(const obspam_verdict *v, const obspam_message *m,
                         int unit, const char *queue_id) {
  obspamd__log_refusal_at(v, m, unit, queue_id, -1);
}

void obspamd__log_refusal_at(const obspam_verdict *v, const obspam_message *m,
                             int unit, const char *queue_id, int64_t now_ms) {
  /* In a flood, most refusals end here: counted, not formatted. */
  if (!obspamd__refusal_counted(v->kind, v->object, queue_id, now_ms))
    obspamd__refusal_line(v, m, unit, queue_id);
}

void obspamd__refusal_line(const obspam_verdict *v, const obspam_message *m,
                           int unit, const char *queue_id) {
  const int flags = OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8;
  char object[sizeof(v->object)], sasl[330], sender[330], client[64],
      script[1030], limit[24], retry[24], qid[64], extra[1100] = "";

  obspamd__clean(object, sizeof(object), v->object[0] ? v->object : "-", flags);
  obspamd__clean(sasl, sizeof(sasl),
                 m && m->sasl_username && *m->sasl_username ? m->sasl_username
                                                            : "-",
                 flags);
  obspamd__clean(sender, sizeof(sender),
                 m && m->sender && *m->sender ? m->sender : "-", flags);
  obspamd__clean(
      client, sizeof(client),
      m && m->client_address && *m->client_address ? m->client_address : "-",
      flags);
  obspamd__clean(qid, sizeof(qid),
                 queue_id != NULL && *queue_id ? queue_id : "-", flags);
  if (v->limit < 0)
    snprintf(limit, sizeof(limit), "unlimited");
  else
    snprintf(limit, sizeof(limit), "%" PRId64, v->limit);
  if (v->retry_after < 0)
    snprintf(retry, sizeof(retry), "never");
  else
    snprintf(retry, sizeof(retry), "%" PRId64, v->retry_after);
  if (m != NULL && (m->flags & OBSPAM_MSG_SCRIPT)) {
    obspamd__clean(script, sizeof(script),
                   m->script && *m->script ? m->script : "-", flags);
    snprintf(extra, sizeof(extra), " uid=%" PRId64 " script=%s", m->uid,
             script);
  } else if (obspamd_mail_word(m) != NULL) {
    /* A forward or a list delivery: the sender is the forwarding mailbox
       (or the list), not someone who wrote the message. */
    snprintf(extra, sizeof(extra), " mail=%s", obspamd_mail_word(m));
  }
  obspamd_log(LOG_NOTICE,
              "refuse kind=%s object=%s limit=%s count=%" PRId64
              " unit=%s retry=%s queue_id=%s sasl=%s sender=%s client=%s "
              "recipients=%u window=%s%s",
              obspamd_kind_name(v->kind), object, limit, v->count,
              obspamd_unit_word(unit, 2), retry, qid, sasl, sender, client,
              m ? (unsigned)m->recipients : 0u,
              obspamd_reason_name(obspamd_refusal_reason(v, m)), extra);
}

/* ---- metrics counters ---------------------------------------------------- */

/* 10 µs to 1 s: a decision takes microseconds; a request that waits on
   the engine's write lock during a reload of a large file can take tens of
   milliseconds. */
const double obspamd_latency_bounds_us[OBSPAMD_LATENCY_BUCKETS] = {
    10, 25, 50, 100, 250, 500, 1000, 2500, 10000, 50000, 250000, 1000000};

#define ADD(p, n) __atomic_add_fetch((p), (n), __ATOMIC_RELAXED)

/* One writer: a load and a store, without the locked instruction that an
   atomic addition costs, are enough for readers on other threads to see
   whole values. */
#define BUMP(p, n)                                                             \
  __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + (n),          \
                   __ATOMIC_RELAXED)

/* Adds n to the counter p of decisions, with one set when one thread
   counts them (obspamd_metrics.one_writer): a locked addition costs some
   twenty cycles, six of them a request, which the policy server, whose
   loop is the only thread that counts decisions, spares. */
#define COUNT(one, p, n)                                                       \
  do {                                                                         \
    if (one)                                                                   \
      BUMP((p), (n));                                                          \
    else                                                                       \
      ADD((p), (n));                                                           \
  } while (0)

/* obspamd_metrics_verdict for one writer or any: inlined once for each,
   so that the choice is made once a decision. */
static inline __attribute__((always_inline)) void
count_verdict(obspamd_metrics *m, const obspam_verdict *v,
              const obspam_message *msg, int one) {
  if (v->action >= 0 && v->action <= OBSPAM_UNKNOWN)
    COUNT(one, &m->decisions[v->action], 1);
  if (v->action == OBSPAM_REFUSE && v->kind >= 0 && v->kind <= OBSPAM_SCRIPT)
    COUNT(one, &m->refusals[v->kind], 1);
  if (v->action == OBSPAM_REFUSE)
    COUNT(one, &m->reasons[obspamd_refusal_reason(v, msg)], 1);
  if (msg != NULL && (msg->flags & OBSPAM_MSG_MAILING_LIST) && v->action >= 0 &&
      v->action <= OBSPAM_UNKNOWN)
    COUNT(one, &m->lists[v->action], 1);
}

/* obspamd_metrics_latency, likewise. */
static inline __attribute__((always_inline)) void
count_latency(obspamd_metrics *m, double latency_us, uint64_t n, int one) {
  int i;

  if (!(latency_us >= 0)) /* also NaN */
    latency_us = 0;
  for (i = 0; i < OBSPAMD_LATENCY_BUCKETS; i++)
    if (latency_us <= obspamd_latency_bounds_us[i])
      break;
  COUNT(one, &m->latency[i], n);
  COUNT(one, &m->latency_count, n);
  COUNT(
      one, &m->latency_sum_us,
      n * (latency_us >= 1e18 ? (uint64_t)1e18 : (uint64_t)(latency_us + 0.5)));
}

void obspamd_metrics_verdict(obspamd_metrics *m, const obspam_verdict *v,
                             const obspam_message *msg) {
  if (m->one_writer)
    count_verdict(m, v, msg, 1);
  else
    count_verdict(m, v, msg, 0);
}

void obspamd_metrics_latency(obspamd_metrics *m, double latency_us,
                             uint64_t n) {
  if (m->one_writer)
    count_latency(m, latency_us, n, 1);
  else
    count_latency(m, latency_us, n, 0);
}

void obspamd_metrics_decision(obspamd_metrics *m, const obspam_verdict *v,
                              const obspam_message *msg, double latency_us) {
  if (m->one_writer) {
    count_verdict(m, v, msg, 1);
    count_latency(m, latency_us, 1, 1);
  } else {
    count_verdict(m, v, msg, 0);
    count_latency(m, latency_us, 1, 0);
  }
}

/* A round of the policy server's loop works for tens of microseconds;
   the buckets from 1 ms on are about the stalls an admin watches for
   (10 ms is what a save or a reload may cost the loop at most), and 500
   ms is the bound of tests/daemons/durable.py stall. */
const double obspamd_loop_bounds_us[OBSPAMD_LOOP_BUCKETS] = {
    100,   250,   500,    1000,   2000,   5000,   10000,
    20000, 50000, 100000, 250000, 500000, 1000000};

void obspamd_metrics_timing(obspamd_timing *t, double us, uint64_t n) {
  uint64_t whole;
  int i;

  if (!(us >= 0)) /* also NaN */
    us = 0;
  whole = us >= 1e18 ? (uint64_t)1e18 : (uint64_t)(us + 0.5);
  /* The bucket of the whole microseconds, as the sum and the maximum
     count it: a maximum of 0.010000 s is in the bucket of 10 ms. */
  for (i = 0; i < OBSPAMD_LOOP_BUCKETS; i++)
    if ((double)whole <= obspamd_loop_bounds_us[i])
      break;
  BUMP(&t->bucket[i], n);
  BUMP(&t->sum_us, whole * n);
  /* Last, and released: a reader that sees this maximum sees its bucket
     too. */
  if (whole > __atomic_load_n(&t->max_us, __ATOMIC_RELAXED))
    __atomic_store_n(&t->max_us, whole, __ATOMIC_RELEASE);
}

void obspamd_metrics_marked(obspamd_metrics *m, const obspam_verdict *v,
                            const obspam_message *msg) {
  uint32_t f = msg->flags;

  if (v->action < 0 || v->action > OBSPAM_UNKNOWN)
    return;
  if (f & OBSPAM_MSG_FORWARD_REMOTE)
    COUNT(m->one_writer, &m->forwards[1][v->action], 1);
  else if (f & OBSPAM_MSG_FORWARD_LOCAL)
    COUNT(m->one_writer, &m->forwards[0][v->action], 1);
}

void obspamd_metrics_connection_open(obspamd_metrics *m) {
  ADD(&m->connections_open, 1);
  ADD(&m->connections_total, 1);
}

void obspamd_metrics_connection_close(obspamd_metrics *m) {
  ADD(&m->connections_open, -1);
}

void obspamd_metrics_bad_request(obspamd_metrics *m) {
  ADD(&m->requests_bad, 1);
}

/* ---- threads ------------------------------------------------------------- */

int obspamd__thread_create(pthread_t *t, void *(*fn)(void *), void *arg) {
  sigset_t all, old;
  int rc;

  /* The new thread inherits the mask: with every signal blocked there, a
     SIGTERM meant for the daemon's signal handling (libmilter's sigwait
     thread, the policy server's loop) is never taken by it. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(t, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

void obspamd__thread_stop(pthread_t t, const int wake[2]) {
  while (write(wake[1], "x", 1) < 0 && errno == EINTR)
    ;
  pthread_join(t, NULL);
}

void obspamd__close_fds(int *fd, int wake[2]) {
  close(*fd);
  close(wake[0]);
  close(wake[1]);
  *fd = wake[0] = wake[1] = -1;
}

/* ---- the service --------------------------------------------------------- */

struct obspamd_private {
  char hostname[256];
  char mail_from[320];
  int reject; /* the action option, read outside callbacks */
  int unit;   /* the count unit option, likewise */
  int marks;  /* obspamd_marks: set by load_config, read by any thread */
  /* The mail queue; the lock lets a notice that arrives late (a decision
     still running in notify-immediate mode) find it gone rather than
     freed. */
  pthread_mutex_t mail_lock;
  obspamd__mailer *mailer;
  char control[128]; /* the control socket, "" when none (mail_lock) */
  /* obspamd_tick's schedule, in monotonic milliseconds. */
  pthread_mutex_t tick_lock;
  int64_t next_save_ms, next_flush_ms;
  /* The objects the running configuration declares, as sorted hashes of
     kind and name: what a reload would drop is counted against them. */
  uint64_t *objects;
  size_t nobjects;
  /* The shared store as store_watch last saw it, to log each change
     once: store_episodes is its count of episodes, store_fallbacks its
     count of decisions made without it when the last recovery was said
     (or when it answered with no episode open). store_open: an episode
     was said and its recovery not yet, store_first the first episode
     not yet said recovered. store_deferred: the requests deferred since
     the last recovery line because it did not answer (store-fallback
     defer), counted before the request's store_leave. */
  int64_t store_episodes, store_fallbacks, store_first;
  int store_open;
  int64_t store_deferred;
  /* The shared store's pool busy: decisions made without it while it
     answers, every connection busy for longer than store-timeout, which
     open no outage. busy_open: an episode was said and its end not yet;
     busy_episodes counts them; busy_seen is the library's count of
     decisions made without the store at the last look, busy_grew_ms
     the time of the last look that found it grown. store_pool: the
     connections of the pool, from the configuration's store line (0:
     unknown). */
  int busy_open, store_pool;
  int64_t busy_episodes, busy_seen, busy_grew_ms;
  /* The decisions in flight (obspamd_store_enter to obspamd_store_leave),
     by the parity of store_gen when they began. store_gen moves on when
     the store is seen answering again after an episode; the recovery
     line waits until the decisions of the generation before
     (store_drain) have all come back (store_draining), since a decision
     that found the store down may be counted after it answers again.
     store_drain_episodes: the episodes when store_gen moved on. */
  unsigned store_gen;
  int64_t store_inflight[2];
  int store_draining, store_drain;
  int64_t store_drain_episodes;
  /* The episodes of a full set of implicit mailboxes the tick has seen. */
  int64_t implicit_episodes;
  /* Set when the journal dropped decisions that only a snapshot can
     hold now: the next tick saves (obspamd_journal_flush). */
  int save_now;
  /* The limits set live (overrides.c), and how many the last load of
     the configuration dropped (for the reload's answer; s->lock). */
  struct obspamd__overrides *overrides;
  size_t overrides_dropped;
  /* The housekeeping thread. */
  pthread_mutex_t hk_lock;
  pthread_cond_t hk_cond;
  pthread_t hk_thread;
  int hk_running, hk_stop;
};

int obspamd__notice_reason_in(obspam_engine *e, const obspam_notice *n) {
  int reason = obspamd_notice_reason(n);
  int64_t cap = -1, hour = -1;

  /* A cap is never unlimited, so obspamd_notice_reason already calls an
     unlimited limit forbidden scripts; a domain or mailbox never goes
     over its own limit for forbidden scripts. */
  if (reason != OBSPAMD_REASON_CAP || n->kind != OBSPAM_SUBSCRIPTION ||
      obspam_effective_max_recipients(e, n->kind, n->name, &cap) != OBSPAM_OK ||
      obspam_effective_limit(e, n->kind, n->name, &hour) != OBSPAM_OK)
    return reason;
  return n->limit != cap && n->limit == hour ? OBSPAMD_REASON_SCRIPTS : reason;
}

void obspamd__notice_line(const obspam_notice *n, int unit, char *buf,
                          size_t size) {
  obspamd__notice_line_as(n, obspamd_notice_reason(n), unit, buf, size);
}

void obspamd__notice_line_as(const obspam_notice *n, int reason, int unit,
                             char *buf, size_t size) {
  const int flags = OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8;
  char name[OBSPAM_NAME_MAX + 1], sub[OBSPAM_NAME_MAX + 1], limit[24],
      first[32], last[32], ps[32], pe[32];

  obspamd__clean(name, sizeof(name), n->name, flags);
  obspamd__clean(sub, sizeof(sub), n->subscription ? n->subscription : "-",
                 flags);
  if (n->limit < 0)
    snprintf(limit, sizeof(limit), "unlimited");
  else
    snprintf(limit, sizeof(limit), "%" PRId64, n->limit);
  snprintf(buf, size,
           "notice kind=%s object=%s subscription=%s limit=%s unit=%s "
           "window=%s sent=%" PRId64 " refused=%" PRId64 " exceeded=%" PRId64
           " first=%s last=%s period=%s..%s",
           obspamd_kind_name(n->kind), name, sub, limit,
           unit == 1 ? "messages" : "recipients", obspamd_reason_name(reason),
           n->sent, n->refused,
           n->struct_size >= sizeof(obspam_notice) ? n->exceeded : 0,
           obspamd_iso_time(n->first_refused, first, sizeof(first)),
           obspamd_iso_time(n->last_refused, last, sizeof(last)),
           obspamd_iso_time(n->period_start, ps, sizeof(ps)),
           obspamd_iso_time(n->period_end, pe, sizeof(pe)));
}

/* The notice callback: runs on the thread that flushes, or inside
   obspam_decide in notify-immediate mode, with no engine lock held. It
   only reads the engine (what a notice without a window is about), and
   must not wait: mails are queued. */
static void on_notice(const obspam_notice *n, void *ud) {
  obspamd_service *s = ud;
  struct obspamd_private *p = s->priv;
  char line[1200], what[OBSPAM_NAME_MAX + 32];
  obspamd__mail_info mi;
  int who;

  int reason = obspamd__notice_reason_in(s->engine, n);

  ADD(&s->metrics.notices, 1);
  obspamd__notice_line_as(n, reason,
                          __atomic_load_n(&p->unit, __ATOMIC_RELAXED), line,
                          sizeof(line));
  obspamd_log(LOG_NOTICE, "%s", line);
  pthread_mutex_lock(&p->mail_lock);
  if (p->mailer == NULL) {
    pthread_mutex_unlock(&p->mail_lock);
    return;
  }
  mi.daemon = s->name ? s->name : "obspamd";
  mi.from = p->mail_from;
  mi.hostname = p->hostname;
  mi.admin = s->admin;
  mi.reject = __atomic_load_n(&p->reject, __ATOMIC_RELAXED);
  mi.unit = __atomic_load_n(&p->unit, __ATOMIC_RELAXED);
  mi.local_action = s->local_action;
  mi.control = p->control;
  mi.now = (int64_t)time(NULL);
  mi.scripts = reason == OBSPAMD_REASON_SCRIPTS;
  snprintf(what, sizeof(what), "kind=%s object=%s", obspamd_kind_name(n->kind),
           n->name);
  for (who = 0; who < 2; who++) {
    const char *to = who == 0 ? s->admin : n->contact;
    size_t need, len;
    char *text;
    if (to == NULL || *to == '\0')
      continue;
    need = obspamd__notice_mail(&mi, n, who, NULL, 0) + 1;
    text = malloc(need);
    if (text == NULL) {
      ADD(&s->metrics.mails_dropped, 1);
      obspamd_log(LOG_ERR, "mail dropped to=%s %s: out of memory", to, what);
      continue;
    }
    len = obspamd__notice_mail(&mi, n, who, text, need);
    obspamd__mailer_queue(p->mailer, to, what, text, len);
  }
  pthread_mutex_unlock(&p->mail_lock);
}

static void cache_action(obspamd_service *s) {
  int64_t action = 0, unit = 0;

  obspam_get_option(s->engine, OBSPAM_OPT_ACTION, &action);
  obspam_get_option(s->engine, OBSPAM_OPT_COUNT_UNIT, &unit);
  __atomic_store_n(&s->priv->reject, action == 1, __ATOMIC_RELAXED);
  __atomic_store_n(&s->priv->unit, unit == 1, __ATOMIC_RELAXED);
}

void obspamd__service_control(obspamd_service *s, const char *spec) {
  struct obspamd_private *p = s->priv;

  if (p == NULL)
    return;
  pthread_mutex_lock(&p->mail_lock);
  snprintf(p->control, sizeof(p->control), "%s", spec ? spec : "");
  pthread_mutex_unlock(&p->mail_lock);
}

/* Renames a state file the library refused aside, as PATH.bad-STAMP, so
   that it can be examined and the next save does not overwrite it. */
static int rename_aside(const char *path, char *aside, size_t size) {
  time_t now = time(NULL);
  struct tm tm;
  char stamp[32];
  int i;

  gmtime_r(&now, &tm);
  strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
  for (i = 1; i < 100; i++) {
    struct stat st;
    if (i == 1)
      snprintf(aside, size, "%s.bad-%s", path, stamp);
    else
      snprintf(aside, size, "%s.bad-%s-%d", path, stamp, i);
    if (lstat(aside, &st) != 0 && errno == ENOENT)
      return rename(path, aside);
  }
  errno = EEXIST;
  return -1;
}

/* A state file that cannot be written is found at start, not at the first
   save a minute later (or at exit, when it is too late). */
static int check_state_dir(const char *path) {
  char dir[PATH_MAX];
  struct stat st;

  obspamd__dir_of(path, dir, sizeof(dir));
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    obspamd_log(LOG_ERR,
                "cannot start: the directory %s of the state file %s does "
                "not exist",
                dir, path);
    return -1;
  }
  /* Whoever may write the directory may put files of their own where
     the daemon reads and writes its state. Without the sticky bit, any
     user could replace the state file itself, with counters of their
     choosing, and so lift every limit: the daemon refuses that. With it,
     or for the directory's group, they can still make the names before
     the daemon does (a lock held for ever, a journal that is not one, a
     state file of theirs before the first save): a warning. */
  if ((st.st_mode & S_IWOTH) != 0 && (st.st_mode & S_ISVTX) == 0) {
    obspamd_log(LOG_ERR,
                "cannot start: the directory %s of the state file %s has "
                "mode %04o: any user may replace the state file, and so "
                "set its counters; make it writable by the daemon's user "
                "only",
                dir, path, (unsigned)(st.st_mode & 07777));
    return -1;
  }
  if (faccessat(AT_FDCWD, dir, W_OK, AT_EACCESS) != 0) {
    obspamd_log(LOG_ERR,
                "cannot start: cannot write the state file %s: directory %s: "
                "%s",
                path, dir, strerror(errno));
    return -1;
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    obspamd_log(LOG_WARNING,
                "the directory %s of the state file %s has mode %04o: %s "
                "may make the state file, its journal or its lock before "
                "the daemon does; make it writable by the daemon's user "
                "only",
                dir, path, (unsigned)(st.st_mode & 07777),
                (st.st_mode & S_IWOTH) != 0 ? "any user" : "its group");
  return 0;
}

/* Loads the state file: see obspamd_service_start. */
static int load_state(obspamd_service *s) {
  struct stat st;
  char aside[PATH_MAX + 64], when[32];
  int rc;

  if (check_state_dir(s->state_path) != 0)
    return OBSPAM_EIO;
  if (stat(s->state_path, &st) != 0) {
    if (errno == ENOENT) {
      /* A save killed before its first rename leaves a temporary file
         and no state file: the load removes such leftovers even so (and
         fails, as it must, on the missing file). */
      obspam_state_load(s->engine, s->state_path);
      obspamd_log(LOG_INFO, "state missing path=%s: starting from zero",
                  s->state_path);
      return OBSPAM_OK;
    }
    obspamd_log(LOG_ERR, "cannot start: cannot read the state file %s: %s",
                s->state_path, strerror(errno));
    return OBSPAM_EIO;
  }
  rc = obspam_state_load(s->engine, s->state_path);
  if (rc == OBSPAM_OK) {
    s->metrics.last_save = (int64_t)st.st_mtime;
    obspamd_log(LOG_INFO, "state loaded path=%s saved=%s", s->state_path,
                obspamd_iso_time((int64_t)st.st_mtime, when, sizeof(when)));
    return OBSPAM_OK;
  }
  if (rc == OBSPAM_ECORRUPT || rc == OBSPAM_EVERSION) {
    char why[600];
    snprintf(why, sizeof(why), "%s", obspam_engine_errmsg(s->engine));
    if (rename_aside(s->state_path, aside, sizeof(aside)) != 0) {
      obspamd_log(LOG_ERR,
                  "cannot start: the state file %s is unusable (%s) and "
                  "cannot be renamed aside: %s",
                  s->state_path, why, strerror(errno));
      return OBSPAM_EIO;
    }
    obspamd_log(LOG_WARNING,
                "state unusable path=%s moved=%s: %s; starting from zero",
                s->state_path, aside, why);
    return OBSPAM_OK;
  }
  obspamd_log(LOG_ERR, "cannot start: %s", obspam_engine_errmsg(s->engine));
  return rc;
}

/* Opens the journal beside the state file, replaying the decisions the
   state file does not hold yet. A journal that cannot be used is renamed
   aside like a bad state file: the daemon starts (from the state file
   alone) rather than not at all. */
/* The journal's file that an OBSPAM_ECORRUPT or OBSPAM_EVERSION of
   obspam_journal_open names ("journal_open: PATH: ..."), into path:
   STATE.journal.next (a save killed after its cut leaves it) when the
   message names it, else STATE.journal. */
static void unusable_journal(const obspamd_service *s, const char *why,
                             char *path, size_t size) {
  static const char head[] = "journal_open: ";
  size_t n;

  snprintf(path, size, "%s.journal.next", s->state_path);
  n = strlen(path);
  if (strncmp(why, head, sizeof(head) - 1) == 0 &&
      strncmp(why + sizeof(head) - 1, path, n) == 0 &&
      why[sizeof(head) - 1 + n] == ':')
    return;
  snprintf(path, size, "%s.journal", s->state_path);
}

static int open_journal(obspamd_service *s) {
  char path[PATH_MAX + 16], aside[PATH_MAX + 80], why[600];
  int64_t replayed = 0, ignored = 0;
  unsigned flags = s->journal_fsync ? OBSPAM_JOURNAL_FSYNC : 0;
  int rc, moved;

  rc =
      obspam_journal_open(s->engine, s->state_path, flags, &replayed, &ignored);
  /* An unusable file is renamed aside, and the journal opened again:
     each of the two files at most once. */
  for (moved = 0; moved < 2 && (rc == OBSPAM_ECORRUPT || rc == OBSPAM_EVERSION);
       moved++) {
    snprintf(why, sizeof(why), "%s", obspam_engine_errmsg(s->engine));
    unusable_journal(s, why, path, sizeof(path));
    if (rename_aside(path, aside, sizeof(aside)) != 0) {
      obspamd_log(LOG_ERR,
                  "cannot start: the journal %s is unusable (%s) and cannot "
                  "be renamed aside: %s",
                  path, why, strerror(errno));
      return OBSPAM_EIO;
    }
    obspamd_log(LOG_WARNING, "journal unusable path=%s moved=%s: %s", path,
                aside, why);
    rc = obspam_journal_open(s->engine, s->state_path, flags, &replayed,
                             &ignored);
  }
  if (rc != OBSPAM_OK) {
    obspamd_log(LOG_ERR, "cannot start: %s", obspam_engine_errmsg(s->engine));
    return rc;
  }
  if (ignored > 0)
    obspamd_log(LOG_WARNING,
                "journal path=%s.journal: %" PRId64 " decisions not replayed: "
                "they follow another state file than %s (or a shared "
                "store keeps the counters)",
                s->state_path, ignored, s->state_path);
  obspamd_log(LOG_INFO, "journal opened path=%s.journal replayed=%" PRId64 "%s",
              s->state_path, replayed, s->journal_fsync ? " fsync" : "");
  return OBSPAM_OK;
}

/* A full disk fails every round: the answers go on (the counters are in
   memory), with one line when the writes begin to fail and one when they
   work again, with the count, and the metrics in between. */
int obspamd_journal_flush(obspamd_service *s) {
  struct obspamd_private *p = s->priv;
  obspamd_metrics *m = &s->metrics;
  int rc = obspam_journal_flush(s->engine);
  unsigned long long dropped = 0;
  uint64_t failed;
  char why[512];

  if (rc == OBSPAM_OK &&
      __atomic_load_n(&m->journal_failing, __ATOMIC_RELAXED) == 0)
    return rc;
  if (rc != OBSPAM_OK) {
    obspam_engine_errmsg_r(s->engine, why, sizeof(why));
    /* The flush that writes again after the journal dropped decisions
       (more than its 256 KiB waited) fails to say how many: it ends the
       episode, and as no file holds those decisions, a save starts at
       once. */
    if (sscanf(why, "journal_flush: %llu decisions were dropped", &dropped) !=
        1) {
      ADD(&m->journal_failures, 1);
      if (__atomic_fetch_add(&m->journal_failing, 1, __ATOMIC_RELAXED) == 0) {
        ADD(&m->journal_episodes, 1);
        obspamd_log(LOG_ERR, "journal: %s; the decisions wait in memory", why);
      }
      return rc;
    }
    ADD(&m->journal_dropped, (uint64_t)dropped);
    __atomic_store_n(&p->save_now, 1, __ATOMIC_RELAXED);
  }
  failed = __atomic_exchange_n(&m->journal_failing, 0, __ATOMIC_RELAXED);
  if (dropped > 0)
    obspamd_log(LOG_ERR,
                "journal: written again after %" PRIu64 " failed writes; "
                "%llu decisions it could not hold are in no file until the "
                "save that starts now",
                failed, dropped);
  else if (failed > 0)
    obspamd_log(LOG_INFO,
                "journal: written again after %" PRIu64 " failed writes",
                failed);
  return rc;
}

/* ---- loading the configuration ------------------------------------------ */

/* Reads a whole file. Returns 0, or -1 with errno set. */
static int read_text(const char *path, char **text, size_t *len) {
  FILE *f = fopen(path, "rb");
  size_t size = 65536, n = 0;
  char *buf;

  if (f == NULL)
    return -1;
  buf = malloc(size);
  while (buf != NULL) {
    size_t got = fread(buf + n, 1, size - n - 1, f);

    n += got;
    if (n < size - 1)
      break;
    {
      char *bigger = realloc(buf, size * 2);

      if (bigger == NULL) {
        free(buf);
        buf = NULL;
        errno = ENOMEM;
        break;
      }
      buf = bigger;
      size *= 2;
    }
  }
  if (buf != NULL && ferror(f)) {
    free(buf);
    buf = NULL;
    errno = EIO;
  }
  fclose(f);
  if (buf == NULL)
    return -1;
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return 0;
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

  return x < y ? -1 : x > y;
}

void *obspamd__grow(void *p, size_t *cap, size_t size) {
  void *bigger = realloc(p, *cap * 2 * size);

  if (bigger == NULL) {
    free(p);
    return NULL;
  }
  *cap *= 2;
  return bigger;
}

void obspamd__put(obspamd__text *t, const char *fmt, ...) {
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(t->len < t->size ? t->buf + t->len : NULL,
                t->len < t->size ? t->size - t->len : 0, fmt, ap);
  va_end(ap);
  if (n > 0)
    t->len += (size_t)n;
}

void obspamd__sort_by_key(void *base, size_t n, size_t size,
                          int (*compare)(const void *, const void *)) {
  size_t counts[8][256], i, sum, c;
  unsigned char *tmp, *src = base, *dst, *swap;
  uint64_t key;
  int b, k;

  if (n < 2)
    return;
  tmp = malloc(n * size);
  if (tmp == NULL) {
    qsort(base, n, size, compare);
    return;
  }
  memset(counts, 0, sizeof(counts));
  for (i = 0; i < n; i++) {
    memcpy(&key, src + i * size, sizeof(key));
    for (b = 0; b < 8; b++)
      counts[b][(key >> (8 * b)) & 0xff]++;
  }
  memcpy(&key, src, sizeof(key));
  dst = tmp;
  for (b = 0; b < 8; b++) {
    size_t *count = counts[b];

    /* The byte is the same in every key: the pass would change nothing. */
    if (count[(key >> (8 * b)) & 0xff] == n)
      continue;
    for (k = 0, sum = 0; k < 256; k++) {
      c = count[k];
      count[k] = sum;
      sum += c;
    }
    for (i = 0; i < n; i++) {
      uint64_t ki;

      memcpy(&ki, src + i * size, sizeof(ki));
      memcpy(dst + count[(ki >> (8 * b)) & 0xff]++ * size, src + i * size,
             size);
    }
    swap = src;
    src = dst;
    dst = swap;
  }
  if (src != (unsigned char *)base)
    memcpy(base, src, n * size);
  free(tmp);
}

/* The connections of the pool that the URI of a store line asks for
   (line: from the URI to the end of the line), as the library reads it:
   "?pool=N" at the end of the URI, else its default; 0 for the empty
   URI (memory). The library checks the line; this only reads it. */
#define STORE_POOL_DEFAULT 4
static int store_pool(const char *line, size_t len) {
  const char *end = line + len, *q;
  int pool = 0;

  while (line < end && (*line == ' ' || *line == '\t'))
    line++;
  for (q = line; q < end && *q != ' ' && *q != '\t' && *q != '\r' && *q != '#';
       q++)
    ;
  if (q == line)
    return 0;
  end = q;
  if ((q = memmem(line, (size_t)(end - line), "?pool=", 6)) == NULL)
    return STORE_POOL_DEFAULT;
  for (q += 6; q < end && *q >= '0' && *q <= '9' && pool <= 64; q++)
    pool = pool * 10 + (*q - '0');
  return pool;
}

/* The objects a configuration text declares: the lines "plan NAME",
   "subscription NAME", "domain NAME" and "mailbox NAME" (the library
   has accepted the text, or will be asked to, so the first two words
   are enough), as sorted, distinct 64-bit FNV-1a hashes of the keyword
   and the lower-cased name. *declares gets whether any line holds more
   than blanks and a comment, *marks the OBSPAMD_MARK_* of the lines
   whose first word is `forward` or `list`, the keywords of forwards and
   mailing lists, *pool the connections of the pool that a `store` line
   asks for (0 without one). A byte-order mark at the start is skipped,
   as the library skips it: a file that holds nothing else declares
   nothing, and the first line's object counts. Returns 0, or -1 when out
   of memory. */
static int scan_objects(const char *text, size_t len, uint64_t **out, size_t *n,
                        int *declares, int *marks, int *pool) {
  static const char *const kinds[] = {"plan", "subscription", "domain",
                                      "mailbox"};
  size_t cap = 1024, count = 0, i = 0, k;
  uint64_t *set = malloc(cap * sizeof(*set));

  *declares = 0;
  *marks = 0;
  *pool = 0;
  if (set == NULL)
    return -1;
  if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
    i = 3;
  while (i < len) {
    size_t end = i, w, wl;

    while (end < len && text[end] != '\n')
      end++;
    while (i < end && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
      i++;
    if (i < end && text[i] != '#') {
      *declares = 1;
      for (w = i; w < end && text[w] != ' ' && text[w] != '\t'; w++)
        ;
      wl = w - i;
      if (wl == 7 && memcmp(text + i, "forward", 7) == 0)
        *marks |= OBSPAMD_MARK_FORWARDS;
      if (wl == 4 && memcmp(text + i, "list", 4) == 0)
        *marks |= OBSPAMD_MARK_LISTS;
      if (wl == 5 && memcmp(text + i, "store", 5) == 0)
        *pool = store_pool(text + w, end - w);
      for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        if (strlen(kinds[k]) == wl && memcmp(text + i, kinds[k], wl) == 0)
          break;
      while (w < end && (text[w] == ' ' || text[w] == '\t'))
        w++;
      if (k < sizeof(kinds) / sizeof(kinds[0]) && w < end && text[w] != '#') {
        uint64_t h = 14695981039346656037ull;

        h = (h ^ (uint64_t)(k + 1)) * 1099511628211ull;
        for (; w < end && text[w] != ' ' && text[w] != '\t' &&
               text[w] != '\r' && text[w] != '#';
             w++) {
          unsigned char c = (unsigned char)text[w];

          if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
          h = (h ^ c) * 1099511628211ull;
        }
        if (count == cap &&
            (set = obspamd__grow(set, &cap, sizeof(*set))) == NULL)
          return -1;
        set[count++] = h;
      }
    }
    i = end + 1;
  }
  obspamd__sort_by_key(set, count, sizeof(*set), compare_u64);
  for (i = 0, k = 0; i < count; i++)
    if (k == 0 || set[i] != set[k - 1])
      set[k++] = set[i];
  *out = set;
  *n = k;
  return 0;
}

/* How many of old (sorted) are not in new (sorted). */
static size_t count_dropped(const uint64_t *old, size_t nold,
                            const uint64_t *now, size_t nnow) {
  size_t i = 0, j = 0, dropped = 0;

  while (i < nold) {
    if (j == nnow || old[i] < now[j]) {
      dropped++;
      i++;
    } else if (old[i] == now[j]) {
      i++;
      j++;
    } else {
      j++;
    }
  }
  return dropped;
}

/* The message of a failed load of text from path: the library names the
   text "<string>", and it was the file. */
static void text_error(const char *path, const char *msg, char *why,
                       size_t size) {
  if (strncmp(msg, "<string>", 8) == 0)
    snprintf(why, size, "%s%s", path, msg + 8);
  else
    snprintf(why, size, "%s", msg);
}

/* Loads the configuration file into e, as obspam_load_config would, and
   returns the library's code with its message in why. With check, a file
   that looks like a mistake is refused first (see obspamd_reload). On
   success the service's set of objects becomes the file's, and
   *declares (optional) whether the file declares anything. e is the
   service's engine, or another one (s->priv NULL then: nothing is
   checked or kept).

   obspamd_marks answers from p->marks, read without a lock by decisions
   that may run during the swap: it gains the marks of a configuration
   before it goes in, and becomes what the configuration in place holds
   once the load has returned. */
static int load_config(obspamd_service *s, obspam_engine *e, int check,
                       int force, char *why, size_t why_size,
                       int *declares_out) {
  struct obspamd_private *p = s->priv;
  char *text = NULL;
  uint64_t *set = NULL;
  size_t len = 0, n = 0;
  const int all = OBSPAMD_MARK_FORWARDS | OBSPAMD_MARK_LISTS;
  int rc, declares = 0, marks = all, pool = 0;
  int old_marks =
      p != NULL ? __atomic_load_n(&p->marks, __ATOMIC_RELAXED) : all;

  if (declares_out != NULL)
    *declares_out = 1;

  if (read_text(s->config_path, &text, &len) != 0 ||
      memchr(text, '\0', len) != NULL) {
    /* Unreadable, or a NUL byte that a text cannot carry: the library
       reads the file itself and says what is wrong with it. */
    free(text);
    if (p != NULL) /* unknown: forwards and lists are looked up */
      __atomic_store_n(&p->marks, all, __ATOMIC_RELEASE);
    rc = obspam_load_config(e, s->config_path);
    snprintf(why, why_size, "%s", obspam_engine_errmsg(e));
    if (rc != OBSPAM_OK && p != NULL)
      __atomic_store_n(&p->marks, old_marks, __ATOMIC_RELEASE);
    if (rc == OBSPAM_OK && p != NULL) {
      free(p->objects);
      p->objects = NULL;
      p->nobjects = 0; /* unknown: nothing to compare the next one with */
      __atomic_store_n(&p->store_pool, 0, __ATOMIC_RELAXED);
      p->overrides_dropped = obspamd__overrides_loaded(s, e, NULL, 0);
    }
    return rc;
  }
  if (scan_objects(text, len, &set, &n, &declares, &marks, &pool) != 0) {
    free(text);
    snprintf(why, why_size, "%s: out of memory", s->config_path);
    return OBSPAM_ENOMEM;
  }
  if (check && !force && p != NULL) {
    int max = s->reload_max_drop > 0 && s->reload_max_drop <= 100
                  ? s->reload_max_drop
                  : OBSPAMD_RELOAD_MAX_DROP;
    size_t dropped = count_dropped(p->objects, p->nobjects, set, n);

    rc = OBSPAM_OK;
    if (!declares) {
      snprintf(why, why_size,
               "%s declares nothing (it is empty or only comments): loaded, "
               "it would lift every limit; refused (obspamctl reload "
               "--force loads it)",
               s->config_path);
      rc = OBSPAM_EINVAL;
    } else if (p->nobjects > 0 && dropped * 100 > (size_t)max * p->nobjects) {
      snprintf(why, why_size,
               "%s drops %zu of the %zu objects of the running "
               "configuration (%zu%%), more than the %d%% "
               "--reload-max-drop allows; refused (obspamctl reload --force "
               "loads it)",
               s->config_path, dropped, p->nobjects,
               dropped * 100 / p->nobjects, max);
      rc = OBSPAM_EINVAL;
    }
    if (rc != OBSPAM_OK) {
      /* A file with an error is refused for that error, which says more
         (its line); the second parse costs only on this rare path. */
      obspam_engine *scratch = NULL;
      int rc2;

      if (obspam_engine_new(&scratch) == OBSPAM_OK &&
          (rc2 = obspam_load_config_string(scratch, text)) != OBSPAM_OK) {
        text_error(s->config_path, obspam_engine_errmsg(scratch), why,
                   why_size);
        rc = rc2;
      }
      obspam_engine_free(scratch);
      free(set);
      free(text);
      return rc;
    }
  }
  if (p != NULL)
    __atomic_store_n(&p->marks, old_marks | marks, __ATOMIC_RELEASE);
  rc = obspam_load_config_string(e, text);
  if (p != NULL)
    __atomic_store_n(&p->marks, rc == OBSPAM_OK ? marks : old_marks,
                     __ATOMIC_RELEASE);
  if (declares_out != NULL)
    *declares_out = declares;
  if (rc != OBSPAM_OK) {
    text_error(s->config_path, obspam_engine_errmsg(e), why, why_size);
    /* The engine's message belongs to whichever call failed last, and a
       decision on another thread may fail meanwhile (a malformed client
       address). The text alone decides the error, so loading it into a
       scratch engine gives the message for sure. */
    if (p != NULL) {
      obspam_engine *scratch = NULL;

      if (obspam_engine_new(&scratch) == OBSPAM_OK &&
          obspam_load_config_string(scratch, text) == rc)
        text_error(s->config_path, obspam_engine_errmsg(scratch), why,
                   why_size);
      obspam_engine_free(scratch);
    }
    free(set);
  } else if (p != NULL) {
    free(p->objects);
    p->objects = set;
    p->nobjects = n;
    __atomic_store_n(&p->store_pool, pool, __ATOMIC_RELAXED);
    p->overrides_dropped = obspamd__overrides_loaded(s, e, text, len);
  } else {
    free(set);
  }
  free(text);
  return rc;
}

int obspamd_check_config(const char *program, const char *path) {
  obspamd_service tmp;
  obspam_engine *e;
  char why[600];
  int rc, declares = 1;

  if (obspam_engine_new(&e) != OBSPAM_OK) {
    fprintf(stderr, "%s: out of memory\n", program);
    return 1;
  }
  memset(&tmp, 0, sizeof(tmp));
  tmp.config_path = path;
  rc = load_config(&tmp, e, 0, 0, why, sizeof(why), &declares);
  if (rc != OBSPAM_OK)
    fprintf(stderr, "%s\n", why);
  else if (!declares)
    fprintf(stderr,
            "%s: warning: the file declares nothing (it is empty or only "
            "comments): it limits nothing, and a reload to it is refused "
            "unless forced\n",
            path);
  else
    printf("%s: configuration OK\n", path);
  obspam_engine_free(e);
  return rc == OBSPAM_OK ? 0 : 1;
}

int obspamd_service_start(obspamd_service *s) {
  struct obspamd_private *p;
  int rc;

  memset(&s->metrics, 0, sizeof(s->metrics));
  s->engine = NULL;
  s->priv = NULL;
  if (s->config_path == NULL || *s->config_path == '\0') {
    obspamd_log(LOG_ERR, "cannot start: no configuration file given");
    return OBSPAM_EINVAL;
  }
  p = calloc(1, sizeof(*p));
  if (p == NULL) {
    obspamd_log(LOG_ERR, "cannot start: out of memory");
    return OBSPAM_ENOMEM;
  }
  rc = obspam_engine_new(&s->engine);
  if (rc != OBSPAM_OK) {
    obspamd_log(LOG_ERR, "cannot start: cannot create the engine: %s",
                obspam_strerror(rc));
    free(p);
    return rc;
  }
  s->priv = p;
  p->overrides = obspamd__overrides_new();
  if (p->overrides == NULL) {
    obspamd_log(LOG_ERR, "cannot start: out of memory");
    rc = OBSPAM_ENOMEM;
    goto fail;
  }
  {
    char why[600];

    rc = load_config(s, s->engine, 0, 0, why, sizeof(why), NULL);
    if (rc != OBSPAM_OK) {
      obspamd_log(LOG_ERR, "cannot start: %s", why);
      goto fail;
    }
  }
  obspamd_log(LOG_INFO, "config loaded path=%s", s->config_path);
  if (s->state_path != NULL && *s->state_path != '\0') {
    rc = load_state(s);
    if (rc == OBSPAM_OK)
      rc = open_journal(s);
    if (rc != OBSPAM_OK)
      goto fail;
  }
  if (gethostname(p->hostname, sizeof(p->hostname) - 1) != 0 ||
      p->hostname[0] == '\0')
    snprintf(p->hostname, sizeof(p->hostname), "localhost");
  obspamd__clean(p->hostname, sizeof(p->hostname), p->hostname, 1);
  if (s->mail_from != NULL && *s->mail_from != '\0')
    obspamd__clean(p->mail_from, sizeof(p->mail_from), s->mail_from, 1);
  else
    snprintf(p->mail_from, sizeof(p->mail_from), "obspam@%s", p->hostname);
  cache_action(s);
  pthread_mutex_init(&s->lock, NULL);
  pthread_mutex_init(&p->tick_lock, NULL);
  pthread_mutex_init(&p->hk_lock, NULL);
  pthread_cond_init(&p->hk_cond, NULL);
  pthread_mutex_init(&p->mail_lock, NULL);
  p->next_save_ms = obspamd_now_ms() + (int64_t)s->save_interval * 1000;
  p->next_flush_ms = 0;
  if (s->notify_command != NULL && *s->notify_command != '\0' &&
      s->admin != NULL && *s->admin != '\0') {
    p->mailer = obspamd__mailer_start(s);
    if (p->mailer == NULL) {
      obspamd_log(LOG_ERR, "cannot start: cannot start the mail thread");
      pthread_mutex_destroy(&s->lock);
      pthread_mutex_destroy(&p->tick_lock);
      pthread_mutex_destroy(&p->hk_lock);
      pthread_cond_destroy(&p->hk_cond);
      pthread_mutex_destroy(&p->mail_lock);
      rc = OBSPAM_ENOMEM;
      goto fail;
    }
  } else if (s->notify_command != NULL && *s->notify_command != '\0') {
    obspamd_log(LOG_WARNING,
                "no admin address: notices are logged, not mailed");
  }
  obspam_set_notify(s->engine, on_notice, s);
  return OBSPAM_OK;

fail:
  obspam_engine_free(s->engine);
  s->engine = NULL;
  s->priv = NULL;
  obspamd__overrides_free(p->overrides);
  free(p->objects);
  free(p);
  return rc;
}

int obspamd_service_stop(obspamd_service *s) {
  struct obspamd_private *p = s->priv;
  int rc = OBSPAM_OK;

  if (p == NULL)
    return OBSPAM_OK;
  obspamd_housekeeping_stop(s);
  /* What was counted of the refusals since their last lines. */
  obspamd__refusals_flush(obspamd_now_ms(), 1);
  if (s->state_path != NULL && *s->state_path != '\0')
    rc = obspamd_save(s, NULL, 0);
  /* After the last save the journal holds nothing more: closed, it is
     left for the next start, which finds it empty. */
  if (obspam_journal_close(s->engine) != OBSPAM_OK)
    obspamd_log(LOG_ERR, "journal: %s", obspam_engine_errmsg(s->engine));
  obspam_set_notify(s->engine, NULL, NULL);
  {
    obspamd__mailer *m;
    pthread_mutex_lock(&p->mail_lock);
    m = p->mailer;
    p->mailer = NULL;
    pthread_mutex_unlock(&p->mail_lock);
    if (m != NULL)
      obspamd__mailer_stop(m);
  }
  obspam_engine_free(s->engine);
  s->engine = NULL;
  pthread_mutex_destroy(&s->lock);
  pthread_mutex_destroy(&p->tick_lock);
  pthread_mutex_destroy(&p->hk_lock);
  pthread_cond_destroy(&p->hk_cond);
  pthread_mutex_destroy(&p->mail_lock);
  obspamd__overrides_free(p->overrides);
  free(p->objects);
  free(p);
  s->priv = NULL;
  return rc;
}

struct obspamd__overrides *obspamd__overrides_get(obspamd_service *s) {
  return s->priv != NULL ? s->priv->overrides : NULL;
}

static void copy_msg(char *msg, size_t size, const char *text) {
  if (msg != NULL && size > 0)
    snprintf(msg, size, "%s", text);
}

int obspamd_reload(obspamd_service *s, char *msg, size_t msg_size) {
  return obspamd_reload_force(s, 0, msg, msg_size);
}

int obspamd_reload_force(obspamd_service *s, int force, char *msg,
                         size_t msg_size) {
  char why[600];
  size_t dropped;
  int rc;

  pthread_mutex_lock(&s->lock);
  rc = load_config(s, s->engine, 1, force, why, sizeof(why), NULL);
  if (rc == OBSPAM_OK) {
    cache_action(s);
    ADD(&s->metrics.reloads_ok, 1);
    obspamd_log(LOG_INFO, "reload ok path=%s%s", s->config_path,
                force ? " (forced)" : "");
    dropped = s->priv->overrides_dropped;
    /* A limit set live that the reload dropped changes what the object
       may send: the admin who reloads is told, not only the log. */
    if (dropped > 0)
      snprintf(why, sizeof(why),
               "configuration reloaded from %s; %zu limit%s set live "
               "dropped (the log names %s)",
               s->config_path, dropped, dropped == 1 ? "" : "s",
               dropped == 1 ? "it" : "them");
    else
      snprintf(why, sizeof(why), "configuration reloaded from %s",
               s->config_path);
  } else {
    ADD(&s->metrics.reloads_failed, 1);
    obspamd_log(LOG_ERR, "reload failed: %s", why);
  }
  pthread_mutex_unlock(&s->lock);
  copy_msg(msg, msg_size, why);
  return rc;
}

int obspamd_save(obspamd_service *s, char *msg, size_t msg_size) {
  char why[600];
  int rc;

  if (s->state_path == NULL || *s->state_path == '\0') {
    copy_msg(msg, msg_size, "no state file is configured");
    return OBSPAM_EINVAL;
  }
  pthread_mutex_lock(&s->lock);
  rc = obspam_state_save(s->engine, s->state_path);
  if (rc == OBSPAM_OK) {
    __atomic_store_n(&s->metrics.last_save, (int64_t)time(NULL),
                     __ATOMIC_RELAXED);
    ADD(&s->metrics.saves_ok, 1);
    obspamd_log(LOG_DEBUG, "save ok path=%s", s->state_path);
    snprintf(why, sizeof(why), "state saved to %s", s->state_path);
  } else {
    snprintf(why, sizeof(why), "%s", obspam_engine_errmsg(s->engine));
    ADD(&s->metrics.saves_failed, 1);
    obspamd_log(LOG_ERR, "save failed: %s", why);
  }
  pthread_mutex_unlock(&s->lock);
  copy_msg(msg, msg_size, why);
  return rc;
}

void obspamd_flush(obspamd_service *s, int64_t now) {
  int rc = obspam_notify_flush(s->engine, now < 0 ? 0 : now);

  if (rc != OBSPAM_OK)
    obspamd_log(LOG_ERR, "flush failed: %s", obspam_engine_errmsg(s->engine));
}

/* "local counters" or "deferring", from the engine's store-fallback. */
static const char *store_fallback_name(obspamd_service *s) {
  int64_t v = 0;

  obspam_get_option(s->engine, OBSPAM_OPT_STORE_FALLBACK, &v);
  return v ? "deferring mail" : "on this node's own counters";
}

/* The two lines of an episode of the shared store, an outage or a busy
   pool, worded alike: the first when decisions begin to be made without
   it (what happens, how the decisions are made, until when, which
   episode), the second when it is back, with the decisions made without
   it and the requests deferred. */
static void store_said_gone(obspamd_service *s, const char *what,
                            const char *until, const char *which) {
  obspamd_log(LOG_WARNING, "store: %s; deciding without it (%s) %s (%s)", what,
              store_fallback_name(s), until, which);
}

static void store_said_back(const char *what, int64_t made, int64_t deferred,
                            const char *which) {
  char count[64];

  if (deferred > 0)
    snprintf(count, sizeof(count), "; %" PRId64 " requests were deferred",
             deferred);
  else
    count[0] = '\0';
  obspamd_log(LOG_NOTICE,
              "store: %s; %" PRId64 " decisions were made without it%s (%s)",
              what, made, count, which);
}

/* Says the end of a busy pool's episode: the decisions made without the
   store from the last line to the look that saw made of them. */
static void busy_said_back(struct obspamd_private *p, int64_t made) {
  char which[48];

  snprintf(which, sizeof(which), "busy episode %" PRId64, p->busy_episodes);
  store_said_back("the pool of the shared store has free connections again",
                  made - p->store_fallbacks,
                  __atomic_exchange_n(&p->store_deferred, 0, __ATOMIC_SEQ_CST),
                  which);
  p->store_fallbacks = made;
  p->busy_open = 0;
}

/* A decision made without the store while it answers and no outage is
   open found every connection of the pool busy for longer than
   store-timeout, or got one too late to end its exchange in time (the
   library calls the store down for anything else).
   Such decisions are an episode of their own, said once when a look
   first finds one, and once when a look finds that none was made for a
   second, or for store-timeout when that is longer: a decision may wait
   that long for a connection. Its count is the growth of the library's
   count between the two lines, the metric's, and a decision counted
   after the second line opens another episode. The library says when a
   decision found the pool busy, not when the next one got a connection:
   the quiet second stands for that, and keeps a pool that is busy off and
   on, second after second, to one episode. Called with tick_lock held,
   fallbacks the library's count now. */
static void busy_watch(obspamd_service *s, struct obspamd_private *p,
                       int64_t fallbacks) {
  int64_t ms = obspamd_now_ms(), tmo = 0;

  if (fallbacks != p->busy_seen) {
    p->busy_seen = fallbacks;
    p->busy_grew_ms = ms;
  }
  if (!p->busy_open) {
    char what[160], which[48];
    int pool = __atomic_load_n(&p->store_pool, __ATOMIC_RELAXED);

    if (fallbacks == p->store_fallbacks)
      return;
    obspam_get_option(s->engine, OBSPAM_OPT_STORE_TIMEOUT_MS, &tmo);
    if (pool > 0)
      snprintf(what, sizeof(what),
               "the pool of %d connection%s to the shared store was busy "
               "for longer than %" PRId64 " ms (store-timeout)",
               pool, pool == 1 ? "" : "s", tmo);
    else
      snprintf(what, sizeof(what),
               "the pool of connections to the shared store was busy for "
               "longer than %" PRId64 " ms (store-timeout)",
               tmo);
    snprintf(which, sizeof(which), "busy episode %" PRId64, ++p->busy_episodes);
    store_said_gone(s, what, "while it is", which);
    p->busy_open = 1;
    return;
  }
  obspam_get_option(s->engine, OBSPAM_OPT_STORE_TIMEOUT_MS, &tmo);
  if (ms - p->busy_grew_ms >= (tmo > 1000 ? tmo : 1000))
    busy_said_back(p, fallbacks);
}

/* Logs once when the shared store stops answering (the decisions then use
   this node's own counters, or are deferred) and once when it is back,
   with the decisions made without it (the growth of the library's count,
   obspam_store_fallback_decisions_total, since the last recovery line)
   and the requests deferred (store_deferred). Episodes that began and
   ended between two looks are said together ("episodes 3 to 4"). A new
   store (a reload that names another) starts its counts from zero: so
   does this. Called with tick_lock held. Decisions made without the
   store while it answers are a busy pool's (busy_watch).

   Both counts must be the metric's exactly, and a decision is counted
   after the store's state it acted on: the library counts a fallback
   decision when its exchange has failed, and the daemon a deferred
   request when the answer reaches it. Meanwhile another caller's probe
   may find the store answering again, so a decision that found it down
   can be counted after that. Hence the recovery line is not written
   when the store is first seen answering: the generation of decisions
   moves on, and the line waits until every decision begun before has
   come back (obspamd_store_leave). A decision begun after that saw the
   store answering (it began after this look read it so), so it can fall
   back only in a new episode: the counts are read once the old
   generation is back, the requests deferred first, and a new episode
   seen then postpones the line to the next recovery, which says both. */
static void store_watch(obspamd_service *s, struct obspamd_private *p) {
  int64_t shared = 0, up = 0, episodes = 0, fallbacks = 0, deferred;

  if (obspam_store_status(s->engine, &shared, &up, &episodes, &fallbacks) !=
          OBSPAM_OK ||
      !shared)
    return;
  if (episodes < p->store_episodes || fallbacks < p->store_fallbacks) {
    p->store_episodes = p->store_fallbacks = 0;
    p->store_open = 0;
    p->busy_open = 0;
    p->busy_seen = 0;
    __atomic_store_n(&p->store_draining, 0, __ATOMIC_SEQ_CST);
  }
  if (episodes > p->store_episodes) {
    char which[48];

    /* A busy pool's episode ends where the outage begins: what was made
       without the store since the last look is the outage's. */
    if (p->busy_open)
      busy_said_back(p, p->busy_seen);
    snprintf(which, sizeof(which), "episode %" PRId64, episodes);
    store_said_gone(s, "the shared store does not answer", "until it does",
                    which);
    if (!p->store_open)
      p->store_first = p->store_episodes + 1;
    p->store_open = 1;
    p->store_episodes = episodes;
  }
  if (!p->store_open) {
    if (up)
      busy_watch(s, p, fallbacks);
    return;
  }
  if (!up)
    return;
  if (!p->store_draining) {
    p->store_drain =
        (int)(__atomic_fetch_add(&p->store_gen, 1, __ATOMIC_SEQ_CST) & 1);
    p->store_drain_episodes = episodes;
    __atomic_store_n(&p->store_draining, 1, __ATOMIC_SEQ_CST);
  }
  if (__atomic_load_n(&p->store_inflight[p->store_drain], __ATOMIC_SEQ_CST) !=
      0)
    return; /* the last of them to come back looks again */
  __atomic_store_n(&p->store_draining, 0, __ATOMIC_SEQ_CST);
  deferred = __atomic_exchange_n(&p->store_deferred, 0, __ATOMIC_SEQ_CST);
  if (obspam_store_status(s->engine, &shared, &up, &episodes, &fallbacks) !=
          OBSPAM_OK ||
      !shared || !up || episodes != p->store_drain_episodes) {
    /* Another episode began: some of these requests may be its own. */
    __atomic_add_fetch(&p->store_deferred, deferred, __ATOMIC_SEQ_CST);
    return;
  }
  {
    char which[64];

    if (p->store_first < episodes)
      snprintf(which, sizeof(which), "episodes %" PRId64 " to %" PRId64,
               p->store_first, episodes);
    else
      snprintf(which, sizeof(which), "episode %" PRId64, episodes);
    store_said_back("the shared store answers again",
                    fallbacks - p->store_fallbacks, deferred, which);
  }
  p->store_fallbacks = fallbacks;
  p->busy_seen = fallbacks;
  p->store_open = 0;
}

unsigned obspamd_store_enter(obspamd_service *s) {
  struct obspamd_private *p = s->priv;
  unsigned g;

  if (p == NULL)
    return 0;
  g = __atomic_load_n(&p->store_gen, __ATOMIC_SEQ_CST) & 1;
  __atomic_add_fetch(&p->store_inflight[g], 1, __ATOMIC_SEQ_CST);
  return g;
}

void obspamd_store_leave(obspamd_service *s, unsigned ticket) {
  struct obspamd_private *p = s->priv;

  if (p == NULL)
    return;
  /* The last of a generation that a recovery line waits for says it
     now; when the tick holds the lock, it is said at the next one. */
  if (__atomic_sub_fetch(&p->store_inflight[ticket & 1], 1, __ATOMIC_SEQ_CST) ==
          0 &&
      __atomic_load_n(&p->store_draining, __ATOMIC_SEQ_CST) &&
      pthread_mutex_trylock(&p->tick_lock) == 0) {
    store_watch(s, p);
    pthread_mutex_unlock(&p->tick_lock);
  }
}

int obspamd_store_deferred(obspamd_service *s, int rc) {
  struct obspamd_private *p = s->priv;

  if (rc != OBSPAM_EUNAVAIL || p == NULL)
    return 0;
  __atomic_add_fetch(&p->store_deferred, 1, __ATOMIC_SEQ_CST);
  /* The episode's line now, not at the next tick: the tick is not
     running (else it logs it). */
  if (pthread_mutex_trylock(&p->tick_lock) == 0) {
    store_watch(s, p);
    pthread_mutex_unlock(&p->tick_lock);
  }
  return 1;
}

/* Logs once each time the implicit mailboxes reach their cap (logins and
   senders of hosted domains that the configuration does not declare):
   until some expire, new ones are limited by their domain and
   subscription only. Called with tick_lock held. */
static void implicit_watch(obspamd_service *s, struct obspamd_private *p) {
  int64_t count = 0, overflow = 0, episodes = 0, cap = 0;

  if (obspam_implicit_status(s->engine, &count, &overflow, &episodes) !=
      OBSPAM_OK)
    return;
  if (episodes > p->implicit_episodes) {
    obspam_get_option(s->engine, OBSPAM_OPT_IMPLICIT_MAILBOXES, &cap);
    obspamd_log(LOG_WARNING,
                "implicit: %" PRId64 " undeclared mailboxes are tracked, the "
                "cap (implicit-mailboxes %" PRId64 "); more are limited by "
                "their domain and subscription only until some expire "
                "(episode %" PRId64 ", %" PRId64 " such decisions so far)",
                count, cap, episodes, overflow);
  }
  p->implicit_episodes = episodes;
}

void obspamd_tick(obspamd_service *s, int64_t now) {
  struct obspamd_private *p = s->priv;
  int64_t ms = obspamd_now_ms();
  int save = 0, flush = 0, asked;

  if (p == NULL)
    return;
  /* Two callers at once (a thread and a loop) share the schedule; the
     second one simply finds nothing due. */
  if (pthread_mutex_trylock(&p->tick_lock) != 0)
    return;
  asked = __atomic_exchange_n(&p->save_now, 0, __ATOMIC_RELAXED);
  if (s->state_path != NULL && *s->state_path != '\0' &&
      (asked || (s->save_interval > 0 && ms >= p->next_save_ms))) {
    save = 1;
    p->next_save_ms = ms + (int64_t)s->save_interval * 1000;
  }
  if (ms >= p->next_flush_ms) {
    flush = 1;
    p->next_flush_ms =
        ms + (int64_t)(s->flush_interval > 0 ? s->flush_interval : 10) * 1000;
  }
  store_watch(s, p);
  implicit_watch(s, p);
  obspamd__refusals_flush(ms, 0);
  pthread_mutex_unlock(&p->tick_lock);
  if (save)
    obspamd_save(s, NULL, 0);
  if (flush)
    obspamd_flush(s, now);
}

static void *housekeeping(void *arg) {
  obspamd_service *s = arg;
  struct obspamd_private *p = s->priv;
  struct timespec until;

  pthread_mutex_lock(&p->hk_lock);
  while (!p->hk_stop) {
    pthread_mutex_unlock(&p->hk_lock);
    obspamd_tick(s, 0);
    pthread_mutex_lock(&p->hk_lock);
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    while (!p->hk_stop &&
           pthread_cond_timedwait(&p->hk_cond, &p->hk_lock, &until) == 0)
      ;
  }
  pthread_mutex_unlock(&p->hk_lock);
  return NULL;
}

int obspamd_housekeeping_start(obspamd_service *s) {
  struct obspamd_private *p = s->priv;
  int rc;

  if (p == NULL || p->hk_running)
    return p == NULL ? -1 : 0;
  p->hk_stop = 0;
  rc = obspamd__thread_create(&p->hk_thread, housekeeping, s);
  if (rc != 0) {
    obspamd_log(LOG_ERR, "cannot start the housekeeping thread: %s",
                strerror(rc));
    return -1;
  }
  p->hk_running = 1;
  return 0;
}

void obspamd_housekeeping_stop(obspamd_service *s) {
  struct obspamd_private *p = s->priv;

  if (p == NULL || !p->hk_running)
    return;
  pthread_mutex_lock(&p->hk_lock);
  p->hk_stop = 1;
  pthread_cond_signal(&p->hk_cond);
  pthread_mutex_unlock(&p->hk_lock);
  pthread_join(p->hk_thread, NULL);
  p->hk_running = 0;
}

/* Whether an option is 1. obspamd_reject and obspamd_unit ask it for
   every refusal: a started service answers from what cache_action kept
   of the configuration it loaded (*cached), without the engine's lock. */
static int option_is_1(obspamd_service *s, const int *cached, int option) {
  int64_t v = 0;

  if (s->priv != NULL)
    return __atomic_load_n(cached, __ATOMIC_RELAXED);
  if (obspam_get_option(s->engine, option, &v) != OBSPAM_OK)
    return 0;
  return v == 1;
}

int obspamd_marks(obspamd_service *s) {
  if (s->priv == NULL)
    return OBSPAMD_MARK_FORWARDS | OBSPAMD_MARK_LISTS;
  return __atomic_load_n(&s->priv->marks, __ATOMIC_ACQUIRE);
}

int obspamd_reject(obspamd_service *s) {
  return option_is_1(s, s->priv ? &s->priv->reject : NULL, OBSPAM_OPT_ACTION);
}

int obspamd_unit(obspamd_service *s) {
  return option_is_1(s, s->priv ? &s->priv->unit : NULL, OBSPAM_OPT_COUNT_UNIT);
}

int64_t obspamd_recipients_cap(obspam_engine *e, const obspam_verdict *v) {
  const char *at;
  int64_t cap = -1;

  if (v->action != OBSPAM_ACCEPT || v->kind < OBSPAM_SUBSCRIPTION ||
      v->kind > OBSPAM_MAILBOX)
    return -1;
  if (obspam_effective_max_recipients(e, v->kind, v->object, &cap) == OBSPAM_OK)
    return cap;
  /* A mailbox the probe would make implicit does not exist yet: it
     would inherit its domain's cap, having none of its own. */
  at = strrchr(v->object, '@');
  if (v->kind == OBSPAM_MAILBOX && at != NULL &&
      obspam_effective_max_recipients(e, OBSPAM_DOMAIN, at + 1, &cap) ==
          OBSPAM_OK)
    return cap;
  return -1;
}
