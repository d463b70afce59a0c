/* Logging, the text of a refusal, the metrics counters and the service
   around the engine (see daemon.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "internal.h"

/* ---- logging --------------------------------------------------------------
 */

/* The settings may change while threads log (a daemon that goes to the
   background switches to syslog): the lock makes a line see the old
   settings or the new ones. openlog keeps a pointer to the ident, hence
   two buffers: the one syslog uses is never rewritten. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_ident[2][64] = {"obspamd", "obspamd"};
static int log_current;
static int log_foreground = 1;
static int log_verbose;

void obspamd_log_open(const char *ident, int foreground) {
  pthread_mutex_lock(&log_lock);
  log_current ^= 1;
  snprintf(log_ident[log_current], sizeof(log_ident[0]), "%s",
           ident ? ident : "obspamd");
  log_foreground = foreground;
  if (!foreground)
    openlog(log_ident[log_current], LOG_PID | LOG_NDELAY, LOG_MAIL);
  pthread_mutex_unlock(&log_lock);
}

void obspamd_log_verbose(int verbose) {
  __atomic_store_n(&log_verbose, verbose, __ATOMIC_RELAXED);
}

void obspamd__clean(char *dst, size_t size, const char *src, int no_blank) {
  size_t i;

  if (size == 0)
    return;
  for (i = 0; src != NULL && src[i] != '\0' && i + 1 < size; i++) {
    unsigned char c = (unsigned char)src[i];
    dst[i] = (c < 0x20 || c >= 0x7f || (no_blank && c == ' ')) ? '?' : (char)c;
  }
  dst[i] = '\0';
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

void obspamd_log(int priority, const char *fmt, ...) {
  char msg[2048], line[2200];
  va_list ap;
  size_t i;
  int n;

  if ((priority & LOG_PRIMASK) == LOG_DEBUG &&
      !__atomic_load_n(&log_verbose, __ATOMIC_RELAXED))
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  /* One event, one line: a name or path with a newline must not forge a
     second log line. Bytes above 0x7f pass (UTF-8 file names). */
  for (i = 0; msg[i] != '\0'; i++)
    if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
      msg[i] = '?';
  pthread_mutex_lock(&log_lock);
  if (!log_foreground) {
    syslog(priority, "%s%s", level_prefix(priority), msg);
    pthread_mutex_unlock(&log_lock);
    return;
  }
  {
    char stamp[32];
    obspamd_iso_time((int64_t)time(NULL), stamp, sizeof(stamp));
    n = snprintf(line, sizeof(line), "%s %s[%ld]: %s%s\n", stamp,
                 log_ident[log_current], (long)getpid(), level_prefix(priority),
                 msg);
  }
  pthread_mutex_unlock(&log_lock);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof(line)) {
    n = (int)sizeof(line) - 1;
    line[n - 1] = '\n';
  }
  /* One write per line, so that lines of different threads do not mix. */
  while (write(STDERR_FILENO, line, (size_t)n) < 0 && errno == EINTR)
    ;
}

/* ---- the text of a refusal ----------------------------------------------- */

void obspamd_refusal_text_msg(const obspam_verdict *v, const obspam_message *m,
                              int reject, int *code, char *buf, size_t size) {
  char text[OBSPAMD_REFUSAL_MAX + 200], object[sizeof(v->object)], limit[32];
  const char *enh = reject ? "5.7.1" : "4.7.1";
  const char *kind = obspamd_kind_name(v->kind);
  long long minutes;
  size_t len;

  if (code != NULL)
    *code = reject ? 550 : 451;
  if (buf == NULL || size == 0)
    return;
  obspamd__clean(object, sizeof(object), v->object, 1);
  if (v->limit < 0)
    snprintf(limit, sizeof(limit), "unlimited");
  else
    snprintf(limit, sizeof(limit), "%" PRId64 " per hour", v->limit);

  if (v->retry_after < 0) {
    /* Never: scripts forbidden, a limit of 0, or a message larger than the
       limit. A subscription with no limit can only refuse a script; a
       script refused at its subscription with a limit other than 0 was
       refused for being a script (that it has more recipients than the
       limit is possible but rarer, and the verdict cannot tell). */
    int script = m != NULL && (m->flags & OBSPAM_MSG_SCRIPT);
    if (v->kind == OBSPAM_SUBSCRIPTION &&
        (v->limit < 0 || (script && v->limit != 0)))
      snprintf(text, sizeof(text),
               "%s scripts of subscription %s may not send mail", enh, object);
    else if (v->limit == 0)
      snprintf(text, sizeof(text),
               "%s %s %s cannot send this message: its limit is 0", enh, kind,
               object);
    else
      snprintf(text, sizeof(text),
               "%s %s %s cannot send this message: it has more recipients "
               "than its limit of %s",
               enh, kind, object, limit);
  } else {
    /* Whole minutes, rounded up: "in 1 minute" for 1 to 60 seconds, so
       that a sender who waits as long as it is told always fits. */
    minutes = v->retry_after <= 60
                  ? 1
                  : v->retry_after / 60 + (v->retry_after % 60 != 0);
    snprintf(text, sizeof(text),
             "%s %s %s has sent %" PRId64
             " message%s in the last 60 minutes, its limit is %s; try again "
             "in %lld minute%s",
             enh, kind, object, v->count, v->count == 1 ? "" : "s", limit,
             minutes, minutes == 1 ? "" : "s");
  }
  len = strlen(text);
  if (len > OBSPAMD_REFUSAL_MAX)
    len = OBSPAMD_REFUSAL_MAX;
  if (len > size - 1)
    len = size - 1;
  memcpy(buf, text, len);
  buf[len] = '\0';
}

void obspamd_refusal_text(const obspam_verdict *v, int reject, int *code,
                          char *buf, size_t size) {
  obspamd_refusal_text_msg(v, NULL, reject, code, buf, size);
}

void obspamd_log_refusal(const obspam_verdict *v, const obspam_message *m) {
  char object[sizeof(v->object)], sasl[330], sender[330], client[64],
      script[1030], limit[24], retry[24], extra[1100] = "";

  obspamd__clean(object, sizeof(object), v->object[0] ? v->object : "-", 1);
  obspamd__clean(
      sasl, sizeof(sasl),
      m && m->sasl_username && *m->sasl_username ? m->sasl_username : "-", 1);
  obspamd__clean(sender, sizeof(sender),
                 m && m->sender && *m->sender ? m->sender : "-", 1);
  obspamd__clean(
      client, sizeof(client),
      m && m->client_address && *m->client_address ? m->client_address : "-",
      1);
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
                   m->script && *m->script ? m->script : "-", 1);
    snprintf(extra, sizeof(extra), " uid=%" PRId64 " script=%s", m->uid,
             script);
  }
  obspamd_log(LOG_NOTICE,
              "refuse kind=%s object=%s limit=%s count=%" PRId64
              " retry=%s sasl=%s sender=%s client=%s recipients=%u%s",
              obspamd_kind_name(v->kind), object, limit, v->count, retry, sasl,
              sender, client, m ? (unsigned)m->recipients : 0u, extra);
}

/* ---- metrics counters ---------------------------------------------------- */

/* 10 µs to 1 s: a decision takes microseconds; a request that waits on
   the engine's write lock during a reload of a large file can take tens of
   milliseconds. */
const double obspamd_latency_bounds_us[OBSPAMD_LATENCY_BUCKETS] = {
    10, 25, 50, 100, 250, 500, 1000, 2500, 10000, 50000, 250000, 1000000};

#define ADD(p, n) __atomic_add_fetch((p), (n), __ATOMIC_RELAXED)

void obspamd_metrics_decision(obspamd_metrics *m, const obspam_verdict *v,
                              double latency_us) {
  int i;

  if (v->action >= 0 && v->action <= OBSPAM_UNKNOWN)
    ADD(&m->decisions[v->action], 1);
  if (v->action == OBSPAM_REFUSE && v->kind >= 0 && v->kind <= OBSPAM_SCRIPT)
    ADD(&m->refusals[v->kind], 1);
  if (!(latency_us >= 0)) /* also NaN */
    latency_us = 0;
  for (i = 0; i < OBSPAMD_LATENCY_BUCKETS; i++)
    if (latency_us <= obspamd_latency_bounds_us[i])
      break;
  ADD(&m->latency[i], 1);
  ADD(&m->latency_count, 1);
  ADD(&m->latency_sum_us,
      latency_us >= 1e18 ? (uint64_t)1e18 : (uint64_t)(latency_us + 0.5));
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

int64_t obspamd__now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the service --------------------------------------------------------- */

struct obspamd_private {
  char hostname[256];
  char mail_from[320];
  int reject; /* the action option, read outside callbacks */
  /* The mail queue; the lock lets a notice that arrives late (a decision
     still running in notify-immediate mode) find it gone rather than
     freed. */
  pthread_mutex_t mail_lock;
  obspamd__mailer *mailer;
  /* obspamd_tick's schedule, in monotonic milliseconds. */
  pthread_mutex_t tick_lock;
  int64_t next_save_ms, next_flush_ms;
  /* The shared store as the last tick saw it, to log each change once. */
  int64_t store_up, store_episodes, store_fallbacks;
  /* The episodes of a full set of implicit mailboxes the tick has seen. */
  int64_t implicit_episodes;
  /* The housekeeping thread. */
  pthread_mutex_t hk_lock;
  pthread_cond_t hk_cond;
  pthread_t hk_thread;
  int hk_running, hk_stop;
};

void obspamd__notice_line(const obspam_notice *n, char *buf, size_t size) {
  char name[OBSPAM_NAME_MAX + 1], sub[OBSPAM_NAME_MAX + 1], limit[24],
      first[32], last[32], ps[32], pe[32];

  obspamd__clean(name, sizeof(name), n->name, 1);
  obspamd__clean(sub, sizeof(sub), n->subscription ? n->subscription : "-", 1);
  if (n->limit < 0)
    snprintf(limit, sizeof(limit), "unlimited");
  else
    snprintf(limit, sizeof(limit), "%" PRId64, n->limit);
  snprintf(buf, size,
           "notice kind=%s object=%s subscription=%s limit=%s sent=%" PRId64
           " refused=%" PRId64 " first=%s last=%s period=%s..%s",
           obspamd_kind_name(n->kind), name, sub, limit, n->sent, n->refused,
           obspamd_iso_time(n->first_refused, first, sizeof(first)),
           obspamd_iso_time(n->last_refused, last, sizeof(last)),
           obspamd_iso_time(n->period_start, ps, sizeof(ps)),
           obspamd_iso_time(n->period_end, pe, sizeof(pe)));
}

/* The notice callback: runs on the thread that flushes, or inside
   obspam_decide in notify-immediate mode, with no engine lock held. It
   must not call into the engine, and must not wait: mails are queued. */
static void on_notice(const obspam_notice *n, void *ud) {
  obspamd_service *s = ud;
  struct obspamd_private *p = s->priv;
  char line[1200], what[OBSPAM_NAME_MAX + 32];
  obspamd__mail_info mi;
  int who;

  ADD(&s->metrics.notices, 1);
  obspamd__notice_line(n, line, sizeof(line));
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
  mi.now = (int64_t)time(NULL);
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
  int64_t action = 0;

  obspam_get_option(s->engine, OBSPAM_OPT_ACTION, &action);
  __atomic_store_n(&s->priv->reject, action == 1, __ATOMIC_RELAXED);
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
  const char *slash = strrchr(path, '/');
  struct stat st;

  if (slash == NULL)
    snprintf(dir, sizeof(dir), ".");
  else
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path),
             path);
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    obspamd_log(LOG_ERR,
                "cannot start: the directory %s of the state file %s does "
                "not exist",
                dir, path);
    return -1;
  }
  if (faccessat(AT_FDCWD, dir, W_OK, AT_EACCESS) != 0) {
    obspamd_log(LOG_ERR,
                "cannot start: cannot write the state file %s: directory %s: "
                "%s",
                path, dir, strerror(errno));
    return -1;
  }
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
  rc = obspam_load_config(s->engine, s->config_path);
  if (rc != OBSPAM_OK) {
    obspamd_log(LOG_ERR, "cannot start: %s", obspam_engine_errmsg(s->engine));
    goto fail;
  }
  obspamd_log(LOG_INFO, "config loaded path=%s", s->config_path);
  s->priv = p;
  if (s->state_path != NULL && *s->state_path != '\0') {
    rc = load_state(s);
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
  p->next_save_ms = obspamd__now_ms() + (int64_t)s->save_interval * 1000;
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
  free(p);
  return rc;
}

void obspamd_service_stop(obspamd_service *s) {
  struct obspamd_private *p = s->priv;

  if (p == NULL)
    return;
  obspamd_housekeeping_stop(s);
  if (s->state_path != NULL && *s->state_path != '\0')
    obspamd_save(s, NULL, 0);
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
  free(p);
  s->priv = NULL;
}

static void copy_msg(char *msg, size_t size, const char *text) {
  if (msg != NULL && size > 0)
    snprintf(msg, size, "%s", text);
}

int obspamd_reload(obspamd_service *s, char *msg, size_t msg_size) {
  char why[600];
  int rc;

  pthread_mutex_lock(&s->lock);
  rc = obspam_load_config(s->engine, s->config_path);
  if (rc == OBSPAM_OK) {
    cache_action(s);
    ADD(&s->metrics.reloads_ok, 1);
    obspamd_log(LOG_INFO, "reload ok path=%s", s->config_path);
    snprintf(why, sizeof(why), "configuration reloaded from %s",
             s->config_path);
  } else {
    /* The engine's message belongs to whichever call failed last, and a
       decision on another thread may fail meanwhile (a malformed client
       address). The file alone decides the error, so loading it into a
       scratch engine gives the message for sure. */
    obspam_engine *scratch = NULL;
    snprintf(why, sizeof(why), "%s", obspam_engine_errmsg(s->engine));
    if (obspam_engine_new(&scratch) == OBSPAM_OK &&
        obspam_load_config(scratch, s->config_path) == rc)
      snprintf(why, sizeof(why), "%s", obspam_engine_errmsg(scratch));
    obspam_engine_free(scratch);
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

/* Logs once when the shared store stops answering (the decisions then use
   this node's own counters, or are deferred) and once when it is back.
   Called with tick_lock held. */
static void store_watch(obspamd_service *s, struct obspamd_private *p) {
  int64_t shared = 0, up = 0, episodes = 0, fallbacks = 0;

  if (obspam_store_status(s->engine, &shared, &up, &episodes, &fallbacks) !=
          OBSPAM_OK ||
      !shared)
    return;
  if (episodes > p->store_episodes)
    obspamd_log(LOG_WARNING,
                "store: the shared store does not answer; deciding without "
                "it (%s) until it does (episode %" PRId64 ")",
                store_fallback_name(s), episodes);
  else if (up && !p->store_up && p->store_episodes > 0)
    obspamd_log(LOG_NOTICE,
                "store: the shared store answers again; %" PRId64
                " decisions were made without it",
                fallbacks - p->store_fallbacks);
  if (episodes > p->store_episodes || (up && !p->store_up))
    p->store_fallbacks = fallbacks;
  p->store_up = up;
  p->store_episodes = episodes;
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
  int64_t ms = obspamd__now_ms();
  int save = 0, flush = 0;

  if (p == NULL)
    return;
  /* Two callers at once (a thread and a loop) share the schedule; the
     second one simply finds nothing due. */
  if (pthread_mutex_trylock(&p->tick_lock) != 0)
    return;
  if (s->state_path != NULL && *s->state_path != '\0' && s->save_interval > 0 &&
      ms >= p->next_save_ms) {
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

int obspamd_reject(obspamd_service *s) {
  int64_t action = 0;

  if (obspam_get_option(s->engine, OBSPAM_OPT_ACTION, &action) != OBSPAM_OK)
    return 0;
  return action == 1;
}
