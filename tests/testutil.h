/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the Criterion suites, on top of those that need no
 * test framework (testbase.h: T0 and the hours after it, tu_msg, the
 * lines of notices and report rows). Only the public API of obspam.h is
 * used. Every helper is static inline so that a suite that does not use
 * one does not get an "unused function" warning.
 */
#ifndef OBSPAM_TESTUTIL_H
#define OBSPAM_TESTUTIL_H

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obspam.h"
#include "testbase.h"

/* Asserts that a call returns the expected code, naming the call. */
#define RC(expr, want)                                                         \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    cr_assert_eq(rc_, (want), "line %d: %s returned %d (%s), expected %d",     \
                 __LINE__, #expr, rc_, obspam_strerror(rc_), (int)(want));     \
  } while (0)

#define OK(expr) RC(expr, OBSPAM_OK)

static inline obspam_engine *tu_new(void) {
  obspam_engine *e = NULL;
  int rc = obspam_engine_new(&e);
  cr_assert_eq(rc, OBSPAM_OK, "obspam_engine_new returned %d", rc);
  cr_assert_not_null(e, "obspam_engine_new gave a NULL engine");
  return e;
}

/* An engine with the configuration text (the grammar of obspam.conf),
   for fixture trees. */
static inline obspam_engine *tu_new_conf(const char *text) {
  obspam_engine *e = tu_new();
  int rc = obspam_load_config_string(e, text);

  cr_assert_eq(rc, OBSPAM_OK, "the fixture's configuration: %s",
               obspam_engine_errmsg(e));
  return e;
}

#ifdef OBSPAM_TEST_SRCDIR
/* An engine loaded with the fixture tests/data/name, a file in the
   grammar of obspam.conf. */
static inline obspam_engine *tu_fixture(const char *name) {
  char path[4096];
  obspam_engine *e = tu_new();
  int rc;

  snprintf(path, sizeof path, "%s/data/%s", OBSPAM_TEST_SRCDIR, name);
  rc = obspam_load_config(e, path);
  cr_assert_eq(rc, OBSPAM_OK, "the fixture %s: %s", path,
               obspam_engine_errmsg(e));
  return e;
}
#endif

/* The setup() and teardown() of a suite whose every test starts with the
   fresh engine that make gives (tu_new(), tu_fixture("NAME.conf")) in the
   suite's own `static obspam_engine *e`. */
#define TU_ENGINE_SETUP(make)                                                  \
  static void setup(void) { e = (make); }                                      \
  static void teardown(void) {                                                 \
    obspam_engine_free(e);                                                     \
    e = NULL;                                                                  \
  }

/* Makes a new directory for a suite's files, PREFIX-XXXXXX under $TMPDIR
   (under /tmp when it is unset or empty), and puts its path in dir (size
   bytes). */
static inline void tu_mkdtemp(char *dir, size_t size, const char *prefix) {
  const char *tmp = getenv("TMPDIR");

  snprintf(dir, size, "%s/%s-XXXXXX",
           tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", prefix);
  cr_assert_not_null(mkdtemp(dir));
}

/* Removes a directory that tu_mkdtemp made, with everything in it. */
static inline void tu_rmtree(const char *dir) {
  char cmd[400];

  cr_assert_lt(strlen(dir), sizeof(cmd) - sizeof("rm -rf ''"),
               "%s: path too long", dir);
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}

/* A notice as a callback saw it, with copies of its strings. */
typedef struct tu_notice {
  uint32_t struct_size;
  int kind;
  char name[OBSPAM_NAME_MAX + 1];
  char sub[OBSPAM_NAME_MAX + 1];
  char contact[OBSPAM_NAME_MAX + 1];
  int has_name, has_sub, has_contact; /* whether the string was not NULL */
  int64_t limit, sent, refused, first, last, start, end, exceeded;
} tu_notice;

/* Copies n into r; a NULL string becomes null_text. */
static inline void tu_notice_copy(tu_notice *r, const obspam_notice *n,
                                  const char *null_text) {
  const tu_notice copy = {.struct_size = n->struct_size,
                          .kind = n->kind,
                          .has_name = n->name != NULL,
                          .has_sub = n->subscription != NULL,
                          .has_contact = n->contact != NULL,
                          .limit = n->limit,
                          .sent = n->sent,
                          .refused = n->refused,
                          .first = n->first_refused,
                          .last = n->last_refused,
                          .start = n->period_start,
                          .end = n->period_end,
                          .exceeded = n->exceeded};

  *r = copy;
  snprintf(r->name, sizeof r->name, "%s", n->name ? n->name : null_text);
  snprintf(r->sub, sizeof r->sub, "%s",
           n->subscription ? n->subscription : null_text);
  snprintf(r->contact, sizeof r->contact, "%s",
           n->contact ? n->contact : null_text);
}

static inline const char *tu_action_name(int a) {
  switch (a) {
  case OBSPAM_ACCEPT:
    return "ACCEPT";
  case OBSPAM_REFUSE:
    return "REFUSE";
  case OBSPAM_EXEMPT:
    return "EXEMPT";
  case OBSPAM_UNKNOWN:
    return "UNKNOWN";
  default:
    return "?";
  }
}

/* Formats a verdict into buf for failure messages. */
static inline const char *tu_fmt_verdict(char *buf, size_t n,
                                         const obspam_verdict *v) {
  snprintf(buf, n,
           "{action=%s kind=%d object=\"%s\" limit=%" PRId64 " count=%" PRId64
           " retry_after=%" PRId64 "}",
           tu_action_name(v->action), (int)v->kind, v->object, v->limit,
           v->count, v->retry_after);
  return buf;
}

/* The arrays obspam_decide_batch takes, for up to TU_BATCH_MAX messages:
   fill m, call tu_batch_ready, pass pm, pv and rc. */
#define TU_BATCH_MAX 64
typedef struct tu_batch {
  obspam_message m[TU_BATCH_MAX];
  obspam_verdict v[TU_BATCH_MAX];
  const obspam_message *pm[TU_BATCH_MAX];
  obspam_verdict *pv[TU_BATCH_MAX];
  int rc[TU_BATCH_MAX];
} tu_batch;

/* Points pm and pv at m and v, and makes the first n verdicts blank. */
static inline void tu_batch_ready(tu_batch *b, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    obspam_verdict v0 = OBSPAM_VERDICT_INIT;

    b->v[i] = v0;
    b->pm[i] = &b->m[i];
    b->pv[i] = &b->v[i];
    b->rc[i] = -99;
  }
}

/* Decides a message and asserts that the call succeeded. */
static inline obspam_verdict tu_decide_msg(obspam_engine *e,
                                           const obspam_message *m, int line) {
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  int rc = obspam_decide(e, m, &v);
  cr_assert_eq(rc, OBSPAM_OK, "line %d: obspam_decide returned %d (%s): %s",
               line, rc, obspam_strerror(rc), obspam_engine_errmsg(e));
  return v;
}

#define DECIDE(e, m) tu_decide_msg((e), (m), __LINE__)

/* An authenticated submission from a network client, naming a script
   (X-PHP-Originating-Script over SMTP) when path is not NULL. */
static inline obspam_message tu_login_msg(const char *login, const char *path,
                                          uint32_t rcpt, int64_t t) {
  return tu_msg(0, login, login, "198.51.100.10", rcpt, -1, NULL, path, t);
}

/* A message from a local script run by uid (hint: its virtual host, path:
   its file; NULL when unknown). */
static inline obspam_message tu_script_msg(int64_t uid, const char *hint,
                                           const char *path, uint32_t rcpt,
                                           int64_t t) {
  return tu_msg(OBSPAM_MSG_SCRIPT, NULL, NULL, NULL, rcpt, uid, hint, path, t);
}

static inline obspam_verdict tu_sasl(obspam_engine *e, const char *login,
                                     uint32_t rcpt, int64_t t, int line) {
  obspam_message m = tu_login_msg(login, NULL, rcpt, t);
  return tu_decide_msg(e, &m, line);
}
#define SASL(e, login, rcpt, t) tu_sasl((e), (login), (rcpt), (t), __LINE__)

/* An unauthenticated message with envelope sender `sender`. */
static inline obspam_verdict tu_unauth(obspam_engine *e, const char *sender,
                                       uint32_t rcpt, int64_t t, int line) {
  obspam_message m =
      tu_msg(0, NULL, sender, "198.51.100.10", rcpt, -1, NULL, NULL, t);
  return tu_decide_msg(e, &m, line);
}
#define UNAUTH(e, sender, rcpt, t)                                             \
  tu_unauth((e), (sender), (rcpt), (t), __LINE__)

static inline obspam_verdict tu_script(obspam_engine *e, int64_t uid,
                                       const char *hint, uint32_t rcpt,
                                       int64_t t, int line) {
  obspam_message m = tu_script_msg(uid, hint, NULL, rcpt, t);
  return tu_decide_msg(e, &m, line);
}
#define SCRIPT(e, uid, hint, rcpt, t)                                          \
  tu_script((e), (uid), (hint), (rcpt), (t), __LINE__)

static inline void tu_expect_action(const obspam_verdict *v, int action,
                                    int line) {
  char buf[512];

  cr_assert_eq(v->action, action, "line %d: action %s expected, got %s", line,
               tu_action_name(action), tu_fmt_verdict(buf, sizeof buf, v));
}

/* Asserts the action of a verdict. */
#define EXPECT_ACTION(v, action) tu_expect_action(&(v), (action), __LINE__)

/* Decides m and asserts the action of its verdict. */
static inline void tu_send(obspam_engine *e, obspam_message m, int action,
                           int line) {
  obspam_verdict v = tu_decide_msg(e, &m, line);

  tu_expect_action(&v, action, line);
}

/* An authenticated submission (SASL), naming a script or not (path
   NULL); asserts the action. */
#define SEND_LOGIN(e, login, path, rcpt, t, action)                            \
  tu_send((e), tu_login_msg((login), (path), (rcpt), (t)), (action), __LINE__)

/* A local script of uid; asserts the action. */
#define SEND_SCRIPT(e, uid, hint, path, rcpt, t, action)                       \
  tu_send((e), tu_script_msg((uid), (hint), (path), (rcpt), (t)), (action),    \
          __LINE__)

/* Messages of login to rcpt recipients at each of the n times t, each of
   which must get action. */
static inline void tu_send_logins(obspam_engine *e, const char *login,
                                  uint32_t rcpt, int action, const int64_t *t,
                                  size_t n, int line) {
  for (size_t i = 0; i < n; i++)
    tu_send(e, tu_login_msg(login, NULL, rcpt, t[i]), action, line);
}
#define SEND_LOGINS(e, login, rcpt, action, ...)                               \
  do {                                                                         \
    static const int64_t t_[] = {__VA_ARGS__};                                 \
    tu_send_logins((e), (login), (rcpt), (action), t_,                         \
                   sizeof t_ / sizeof t_[0], __LINE__);                        \
  } while (0)

static inline void tu_expect_verdict(const obspam_verdict *v, int action,
                                     int kind, const char *object,
                                     int64_t limit, int64_t count,
                                     int64_t retry, int line) {
  char buf[512];
  tu_fmt_verdict(buf, sizeof buf, v);
  cr_assert_eq(v->action, action, "line %d: action %s expected, got %s", line,
               tu_action_name(action), buf);
  cr_assert_eq(v->kind, kind, "line %d: kind %d expected, got %s", line, kind,
               buf);
  cr_assert_str_eq(v->object, object, "line %d: object \"%s\" expected, got %s",
                   line, object, buf);
  cr_assert_eq(v->limit, limit, "line %d: limit %" PRId64 " expected, got %s",
               line, limit, buf);
  cr_assert_eq(v->count, count, "line %d: count %" PRId64 " expected, got %s",
               line, count, buf);
  cr_assert_eq(v->retry_after, retry,
               "line %d: retry_after %" PRId64 " expected, got %s", line, retry,
               buf);
}

/* Asserts every field of a verdict. */
#define EXPECT_VERDICT(v, action, kind, object, limit, count, retry)           \
  tu_expect_verdict(&(v), (action), (kind), (object), (limit), (count),        \
                    (retry), __LINE__)

/* Asserts an acceptance charged to an object without a limit. */
#define EXPECT_ACCEPT_UNLIMITED(v, kind, object)                               \
  EXPECT_VERDICT((v), OBSPAM_ACCEPT, (kind), (object), OBSPAM_UNLIMITED, 0, 0)

/* Asserts a refusal that waiting cannot lift (retry_after -1): the
   message is larger than the limit of the object named. */
#define EXPECT_NEVER_FITS(v, kind, object, limit, count)                       \
  EXPECT_VERDICT((v), OBSPAM_REFUSE, (kind), (object), (limit), (count), -1)

/* The verdict of EXEMPT / UNKNOWN (and of a disabled engine's ACCEPT). */
#define EXPECT_EMPTY_VERDICT(v, action)                                        \
  tu_expect_verdict(&(v), (action), -1, "", 0, 0, 0, __LINE__)

static inline obspam_stats tu_stats(obspam_engine *e, int kind,
                                    const char *name, int64_t now, int line) {
  obspam_stats s = OBSPAM_STATS_INIT;
  int rc = obspam_stats_get(e, kind, name, now, &s);
  cr_assert_eq(rc, OBSPAM_OK,
               "line %d: obspam_stats_get(%d, %s) returned %d (%s): %s", line,
               kind, name ? name : "(null)", rc, obspam_strerror(rc),
               obspam_engine_errmsg(e));
  return s;
}
#define STATS(e, kind, name, now) tu_stats((e), (kind), (name), (now), __LINE__)

/* Asserts one field of an object's stats, naming it. */
static inline void tu_expect_field(const char *name, const char *field,
                                   int64_t got, int64_t want, int line) {
  cr_assert_eq(got, want,
               "line %d: stats(%s).%s = %" PRId64 ", expected %" PRId64, line,
               name, field, got, want);
}

/* Asserts the count and refused fields of an object's stats at now. */
static inline void tu_expect_counts(obspam_engine *e, int kind,
                                    const char *name, int64_t now,
                                    int64_t count, int64_t refused, int line) {
  obspam_stats s = tu_stats(e, kind, name, now, line);

  tu_expect_field(name, "count", s.count, count, line);
  tu_expect_field(name, "refused", s.refused, refused, line);
}
#define EXPECT_COUNTS(e, kind, name, now, count, refused)                      \
  tu_expect_counts((e), (kind), (name), (now), (count), (refused), __LINE__)

/* Asserts the forwards and list deliveries of an object's stats at now. */
static inline void tu_expect_marks(obspam_engine *e, int kind, const char *name,
                                   int64_t now, int64_t forwarded,
                                   int64_t lists, int line) {
  obspam_stats s = tu_stats(e, kind, name, now, line);

  tu_expect_field(name, "forwarded", s.forwarded, forwarded, line);
  tu_expect_field(name, "list_deliveries", s.list_deliveries, lists, line);
}
#define EXPECT_MARKS(e, kind, name, now, forwarded, lists)                     \
  tu_expect_marks((e), (kind), (name), (now), (forwarded), (lists), __LINE__)

/* Asserts the same count and refused fields of a mailbox, its domain and
   its subscription at now. */
static inline void tu_expect_chain_counts(obspam_engine *e, const char *mailbox,
                                          const char *domain, const char *sub,
                                          int64_t now, int64_t count,
                                          int64_t refused, int line) {
  tu_expect_counts(e, OBSPAM_MAILBOX, mailbox, now, count, refused, line);
  tu_expect_counts(e, OBSPAM_DOMAIN, domain, now, count, refused, line);
  tu_expect_counts(e, OBSPAM_SUBSCRIPTION, sub, now, count, refused, line);
}
#define EXPECT_CHAIN_COUNTS(e, mailbox, domain, sub, now, count, refused)      \
  tu_expect_chain_counts((e), (mailbox), (domain), (sub), (now), (count),      \
                         (refused), __LINE__)

/* Asserts the fields of an object's stats at now that every version had:
   sending, limit, count, refused, refused_total and last_refused. */
static inline void tu_expect_stats(obspam_engine *e, int kind, const char *name,
                                   int64_t now, int32_t sending, int64_t limit,
                                   int64_t count, int64_t refused,
                                   int64_t refused_total, int64_t last_refused,
                                   int line) {
  obspam_stats s = tu_stats(e, kind, name, now, line);

  tu_expect_field(name, "sending", s.sending, sending, line);
  tu_expect_field(name, "limit", s.limit, limit, line);
  tu_expect_field(name, "count", s.count, count, line);
  tu_expect_field(name, "refused", s.refused, refused, line);
  tu_expect_field(name, "refused_total", s.refused_total, refused_total, line);
  tu_expect_field(name, "last_refused", s.last_refused, last_refused, line);
}
#define EXPECT_STATS(e, kind, name, now, sending, limit, count, refused,       \
                     total, last)                                              \
  tu_expect_stats((e), (kind), (name), (now), (sending), (limit), (count),     \
                  (refused), (total), (last), __LINE__)

static inline int64_t tu_eff(obspam_engine *e, int kind, const char *name,
                             int line) {
  int64_t v = -99;
  int rc = obspam_effective_limit(e, kind, name, &v);
  cr_assert_eq(rc, OBSPAM_OK,
               "line %d: obspam_effective_limit(%d, %s) returned %d (%s)", line,
               kind, name, rc, obspam_strerror(rc));
  return v;
}
#define EFF(e, kind, name) tu_eff((e), (kind), (name), __LINE__)

#define EXPECT_EFF(e, kind, name, want)                                        \
  do {                                                                         \
    int64_t got_ = tu_eff((e), (kind), (name), __LINE__);                      \
    cr_assert_eq(got_, (int64_t)(want),                                        \
                 "line %d: effective limit of %s = %" PRId64                   \
                 ", expected %" PRId64,                                        \
                 __LINE__, (name), got_, (int64_t)(want));                     \
  } while (0)

/* The effective limit of one window, and the cap, of an object. */
/* Asserts the effective limits listed in text, one a line: a kind
   (mailbox, domain or subscription), a name and the limit (a count or
   "unlimited"), as "mailbox m@a.example 50\n". A line it cannot read
   fails the test. */
static inline void tu_expect_effs(obspam_engine *e, const char *text,
                                  int line) {
  static const char *const kinds[] = {"subscription", "domain", "mailbox"};
  char kind[16], name[OBSPAM_NAME_MAX + 1], want[24];
  int used;

  /* 320 is OBSPAM_NAME_MAX. */
  for (int row = 1;
       sscanf(text, "%15s %320s %23s%n", kind, name, want, &used) == 3; row++) {
    int k = -1;
    char *end = want;
    int64_t v = strcmp(want, "unlimited") == 0 ? OBSPAM_UNLIMITED
                                               : strtoll(want, &end, 10);

    for (int i = 0; i < 3; i++)
      if (strcmp(kind, kinds[i]) == 0)
        k = OBSPAM_SUBSCRIPTION + i;
    cr_assert_neq(k, -1, "line %d: row %d: kind '%s'", line, row, kind);
    cr_assert(v == OBSPAM_UNLIMITED || (end != want && *end == '\0'),
              "line %d: row %d: limit '%s'", line, row, want);
    int64_t got = tu_eff(e, k, name, line);
    cr_assert_eq(got, v,
                 "line %d: row %d: effective limit of %s = %" PRId64
                 ", expected %" PRId64,
                 line, row, name, got, v);
    text += used;
  }
  cr_assert_eq(text[strspn(text, " \n")], '\0', "line %d: unread: %s", line,
               text);
}
#define EXPECT_EFFS(e, text) tu_expect_effs((e), (text), __LINE__)

static inline int64_t tu_eff_window(obspam_engine *e, int kind,
                                    const char *name, int64_t window,
                                    int line) {
  int64_t v = -99;
  int rc = obspam_effective_window_limit(e, kind, name, window, &v);
  cr_assert_eq(rc, OBSPAM_OK,
               "line %d: obspam_effective_window_limit(%d, %s, %" PRId64
               ") returned %d (%s): %s",
               line, kind, name, window, rc, obspam_strerror(rc),
               obspam_engine_errmsg(e));
  return v;
}

static inline int64_t tu_eff_cap(obspam_engine *e, int kind, const char *name,
                                 int line) {
  int64_t v = -99;
  int rc = obspam_effective_max_recipients(e, kind, name, &v);
  cr_assert_eq(rc, OBSPAM_OK,
               "line %d: obspam_effective_max_recipients(%d, %s) returned %d "
               "(%s): %s",
               line, kind, name, rc, obspam_strerror(rc),
               obspam_engine_errmsg(e));
  return v;
}

/* Asserts the three windows of an object's effective limit, and that
   obspam_effective_limit is the hour's. */
static inline void tu_expect_windows(obspam_engine *e, int kind,
                                     const char *name, int64_t m, int64_t h,
                                     int64_t d, int line) {
  int64_t gm = tu_eff_window(e, kind, name, OBSPAM_WINDOW_MINUTE, line);
  int64_t gh = tu_eff_window(e, kind, name, OBSPAM_WINDOW_HOUR, line);
  int64_t gd = tu_eff_window(e, kind, name, OBSPAM_WINDOW_DAY, line);
  cr_assert(gm == m && gh == h && gd == d,
            "line %d: %s: windows %" PRId64 "/m %" PRId64 "/h %" PRId64
            "/d, expected %" PRId64 "/m %" PRId64 "/h %" PRId64 "/d",
            line, name, gm, gh, gd, m, h, d);
  cr_assert_eq(tu_eff(e, kind, name, line), gh,
               "line %d: effective_limit of %s is not its hour's", line, name);
}
#define EXPECT_WINDOWS(e, kind, name, m, h, d)                                 \
  tu_expect_windows((e), (kind), (name), (m), (h), (d), __LINE__)

#define EXPECT_CAP(e, kind, name, want)                                        \
  cr_assert_eq(tu_eff_cap((e), (kind), (name), __LINE__), (int64_t)(want),     \
               "line %d: the cap of %s", __LINE__, (name))

#endif /* OBSPAM_TESTUTIL_H */
