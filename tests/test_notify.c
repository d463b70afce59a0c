/* SPDX-License-Identifier: MIT */
/* obspam_set_notify and obspam_notify_flush: notices at the end of a
   period, every field, once per object and period, immediate mode, and
   callbacks that run with no engine lock held, as the README's
   "Statistics, reports, notifications, snapshots" describes them. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "testutil.h"

static obspam_engine *e;

#define NONE NULL /* no subscription / no contact in a wanted notice */

/*
 * The fixture tree:
 *   subscription s1 (uid 1001, limit 100, contact abuse@s1.example)
 *     domain d1.example (unlimited): a@ (limit 2), b@ (unlimited)
 *   subscription s2 (uid 1002, unlimited, no contact, scripts forbidden)
 *     domain d2.example (limit 50): c@ (limit 1)
 */
TU_ENGINE_SETUP(tu_fixture("notify.conf"))

TestSuite(notify, .init = setup, .fini = teardown);

/* ---- the recorder -------------------------------------------------------- */

typedef tu_notice rec;

#define RECMAX 64
static rec got[RECMAX];
static pthread_t got_thread[RECMAX]; /* the thread each callback ran on */
static int ngot;
static void *got_ud;

static void record(const obspam_notice *n, void *ud) {
  got_ud = ud;
  if (ngot < RECMAX) {
    tu_notice_copy(&got[ngot], n, "");
    got_thread[ngot] = pthread_self();
  }
  ngot++;
}

/* A notice's exceeded is expected to be its refused: in these tests every
   refusal of an object notified went over its own limit (the tests of
   "who is notified" at the end check notices where they differ). */
typedef struct want {
  int kind;
  const char *name, *sub, *contact; /* NULL: the notice's must be NULL */
  int64_t limit, sent, refused, first, last, start, end;
} want;

static void fmt_rec(char *buf, size_t size, const rec *r) {
  snprintf(buf, size,
           "{kind %d, \"%s\", sub %s%s%s, contact %s%s%s, limit %" PRId64
           ", sent %" PRId64 ", refused %" PRId64 ", first T0%+" PRId64
           ", last T0%+" PRId64 ", [T0%+" PRId64 ", T0%+" PRId64
           "), exceeded %" PRId64 "}",
           r->kind, r->name, r->has_sub ? "\"" : "",
           r->has_sub ? r->sub : "NULL", r->has_sub ? "\"" : "",
           r->has_contact ? "\"" : "", r->has_contact ? r->contact : "NULL",
           r->has_contact ? "\"" : "", r->limit, r->sent, r->refused,
           r->first - T0, r->last - T0, r->start - T0, r->end - T0,
           r->exceeded);
}

static void fmt_all(char *buf, size_t size, const rec *r, int n) {
  size_t at = 0;
  int i;

  buf[0] = '\0';
  for (i = 0; i < n && i < RECMAX && at < size; i++) {
    at += (size_t)snprintf(buf + at, size - at, "\n  ");
    if (at < size)
      fmt_rec(buf + at, size - at, &r[i]);
    at += strlen(buf + at);
  }
}

static int str_is(int has, const char *s, const char *want_s) {
  if (want_s == NULL)
    return !has;
  return has && strcmp(s, want_s) == 0;
}

/* Asserts that recs[0..n) are exactly w[0..nw), in order. */
static void expect_recs(const rec *r, int n, const want *w, int nw,
                        const char *what, int line) {
  char buf[8192], one[2048];
  int i;

  fmt_all(buf, sizeof buf, r, n);
  cr_assert_eq(n, nw, "line %d: %s: %d notices, expected %d:%s", line, what, n,
               nw, buf);
  for (i = 0; i < nw; i++) {
    fmt_rec(one, sizeof one, &r[i]);
    cr_assert_eq(r[i].struct_size, sizeof(obspam_notice),
                 "line %d: notice %d struct_size %u", line, i,
                 (unsigned)r[i].struct_size);
    cr_assert(
        r[i].kind == w[i].kind && r[i].has_name &&
            strcmp(r[i].name, w[i].name) == 0 &&
            str_is(r[i].has_sub, r[i].sub, w[i].sub) &&
            str_is(r[i].has_contact, r[i].contact, w[i].contact) &&
            r[i].limit == w[i].limit && r[i].sent == w[i].sent &&
            r[i].refused == w[i].refused && r[i].first == w[i].first &&
            r[i].last == w[i].last && r[i].start == w[i].start &&
            r[i].end == w[i].end && r[i].exceeded == w[i].refused,
        "line %d: %s: notice %d is %s; expected {kind %d, \"%s\", sub "
        "%s, contact %s, limit %" PRId64 ", sent %" PRId64 ", refused %" PRId64
        ", first T0%+" PRId64 ", last T0%+" PRId64 ", [T0%+" PRId64
        ", T0%+" PRId64 "), exceeded %" PRId64 "}; all:%s",
        line, what, i, one, w[i].kind, w[i].name, w[i].sub ? w[i].sub : "NULL",
        w[i].contact ? w[i].contact : "NULL", w[i].limit, w[i].sent,
        w[i].refused, w[i].first - T0, w[i].last - T0, w[i].start - T0,
        w[i].end - T0, w[i].refused, buf);
  }
}

/* Flushes at now and asserts the notices emitted, in order. */
static void expect_flush(int64_t now, const want *w, int nw, int line) {
  int rc;

  ngot = 0;
  rc = obspam_notify_flush(e, now);
  cr_assert_eq(rc, OBSPAM_OK, "line %d: notify_flush returned %d (%s): %s",
               line, rc, obspam_strerror(rc), obspam_engine_errmsg(e));
  expect_recs(got, ngot, w, nw, "flush", line);
}

/* EXPECT_FLUSH(now, {kind, name, sub, contact, limit, sent, refused, first,
   last, start, end}, ...) */
#define EXPECT_FLUSH(now, ...)                                                 \
  do {                                                                         \
    const want want_[] = {__VA_ARGS__};                                        \
    expect_flush((now), want_, (int)(sizeof want_ / sizeof want_[0]),          \
                 __LINE__);                                                    \
  } while (0)
#define EXPECT_NOTHING(now) expect_flush((now), NULL, 0, __LINE__)

/* Orders notices by kind, then name: immediate notices of one decision
   are compared as a set, the decisions leaving their order open. */
static int rec_order(const void *pa, const void *pb) {
  const rec *a = pa, *b = pb;

  if (a->kind != b->kind)
    return a->kind - b->kind;
  return strcmp(a->name, b->name);
}

/* Asserts the notices recorded since ngot was last reset (the immediate
   ones of the decisions since), then resets. */
static void expect_recorded(const want *w, int nw, int line) {
  qsort(got, (size_t)(ngot < RECMAX ? ngot : RECMAX), sizeof(rec), rec_order);
  expect_recs(got, ngot, w, nw, "immediate", line);
  ngot = 0;
}
#define EXPECT_RECORDED(...)                                                   \
  do {                                                                         \
    const want want_[] = {__VA_ARGS__};                                        \
    expect_recorded(want_, (int)(sizeof want_ / sizeof want_[0]), __LINE__);   \
  } while (0)
#define EXPECT_NONE_RECORDED() expect_recorded(NULL, 0, __LINE__)

/* Messages of the fixture's engine, asserting the action. */
#define LOGIN(login, rcpt, t, action)                                          \
  SEND_LOGIN(e, (login), NULL, (rcpt), (t), (action))
#define RUN(uid, hint, rcpt, t, action)                                        \
  SEND_SCRIPT(e, (uid), (hint), NULL, (rcpt), (t), (action))

#define SUB OBSPAM_SUBSCRIPTION
#define DOM OBSPAM_DOMAIN
#define MBX OBSPAM_MAILBOX
#define C1 "abuse@s1.example"

/* ---- flush --------------------------------------------------------------- */

/* a and c are refused in H0; b sends after a's refusals. */
static void traffic_h0(void) {
  SEND_LOGINS(e, "a@d1.example", 1, OBSPAM_ACCEPT, T0 + 10, T0 + 20);
  LOGIN("c@d2.example", 1, T0 + 30, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, T0 + 100, OBSPAM_REFUSE);
  LOGIN("a@d1.example", 3, T0 + 200, OBSPAM_REFUSE);
  LOGIN("b@d1.example", 5, T0 + 300, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, T0 + 400, OBSPAM_REFUSE);
}

Test(notify, every_field_at_flush) {
  OK(obspam_set_notify(e, record, NULL));
  traffic_h0();
  /* The period has not ended yet. */
  EXPECT_NOTHING(H1 - 1);
  EXPECT_NOTHING(T0 + 400);
  EXPECT_FLUSH(
      H1, {MBX, "a@d1.example", "s1", C1, 2, 2, 2, T0 + 100, T0 + 200, H0, H1},
      {MBX, "c@d2.example", "s2", NONE, 1, 1, 1, T0 + 400, T0 + 400, H0, H1});
  /* Once per object and period. */
  EXPECT_NOTHING(H1);
  EXPECT_NOTHING(H1 + 100000);
}

Test(notify, flush_runs_on_the_calling_thread_with_user_data) {
  int token;

  OK(obspam_set_notify(e, record, &token));
  traffic_h0();
  ngot = 0;
  OK(obspam_notify_flush(e, H2));
  cr_assert_eq(ngot, 2, "%d notices", ngot);
  cr_assert_eq(got_ud, (void *)&token, "user data not passed through");
  cr_assert(pthread_equal(got_thread[0], pthread_self()),
            "the callback ran on another thread");
}

Test(notify, later_flush_time_same_notices) {
  OK(obspam_set_notify(e, record, NULL));
  traffic_h0();
  /* Flushing long after the period: the same notices, once. */
  EXPECT_FLUSH(
      H3 + 12345,
      {MBX, "a@d1.example", "s1", C1, 2, 2, 2, T0 + 100, T0 + 200, H0, H1},
      {MBX, "c@d2.example", "s2", NONE, 1, 1, 1, T0 + 400, T0 + 400, H0, H1});
  EXPECT_NOTHING(H3 + 12345);
}

Test(notify, quiet_periods_give_nothing) {
  OK(obspam_set_notify(e, record, NULL));
  /* H0: sending only. */
  LOGIN("a@d1.example", 2, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("b@d1.example", 9, H0 + 20, OBSPAM_ACCEPT);
  EXPECT_NOTHING(H1);
  /* H1: c is refused. */
  LOGIN("c@d2.example", 1, H1 + 10, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, H1 + 20, OBSPAM_REFUSE);
  /* H2: sending only. */
  LOGIN("b@d1.example", 1, H2 + 10, OBSPAM_ACCEPT);
  EXPECT_FLUSH(
      H3, {MBX, "c@d2.example", "s2", NONE, 1, 1, 1, H1 + 20, H1 + 20, H1, H2});
  EXPECT_NOTHING(H3 + 3600);
}

/* Refusals in H0 (a), H1 (c) and H2 (a). */
static void three_periods(void) {
  LOGIN("a@d1.example", 2, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H0 + 20, OBSPAM_REFUSE);
  LOGIN("c@d2.example", 1, H1 + 10, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, H1 + 20, OBSPAM_REFUSE);
  LOGIN("a@d1.example", 2, H2 + 10, OBSPAM_ACCEPT);
  SEND_LOGINS(e, "a@d1.example", 1, OBSPAM_REFUSE, H2 + 20, H2 + 30);
}

Test(notify, several_periods_in_order) {
  OK(obspam_set_notify(e, record, NULL));
  three_periods();
  EXPECT_FLUSH(
      H3, {MBX, "a@d1.example", "s1", C1, 2, 2, 1, H0 + 20, H0 + 20, H0, H1},
      {MBX, "c@d2.example", "s2", NONE, 1, 1, 1, H1 + 20, H1 + 20, H1, H2},
      {MBX, "a@d1.example", "s1", C1, 2, 2, 2, H2 + 20, H2 + 30, H2, H3});
  EXPECT_NOTHING(H3);
}

Test(notify, partial_flushes) {
  OK(obspam_set_notify(e, record, NULL));
  three_periods();
  EXPECT_NOTHING(H1 - 1);
  EXPECT_FLUSH(
      H2, {MBX, "a@d1.example", "s1", C1, 2, 2, 1, H0 + 20, H0 + 20, H0, H1},
      {MBX, "c@d2.example", "s2", NONE, 1, 1, 1, H1 + 20, H1 + 20, H1, H2});
  EXPECT_NOTHING(H3 - 1);
  EXPECT_FLUSH(
      H3, {MBX, "a@d1.example", "s1", C1, 2, 2, 2, H2 + 20, H2 + 30, H2, H3});
  EXPECT_NOTHING(H3 + 3600);
}

Test(notify, flush_in_between_decisions) {
  OK(obspam_set_notify(e, record, NULL));
  LOGIN("a@d1.example", 2, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H0 + 20, OBSPAM_REFUSE);
  EXPECT_FLUSH(
      H1, {MBX, "a@d1.example", "s1", C1, 2, 2, 1, H0 + 20, H0 + 20, H0, H1});
  /* The next refusal of a is in the next period: a new notice. */
  LOGIN("a@d1.example", 2, H1 + 10, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H1 + 20, OBSPAM_REFUSE);
  EXPECT_FLUSH(
      H2, {MBX, "a@d1.example", "s1", C1, 2, 2, 1, H1 + 20, H1 + 20, H1, H2});
  EXPECT_NOTHING(H2);
}

Test(notify, limit_at_last_refusal) {
  OK(obspam_set_notify(e, record, NULL));
  LOGIN("a@d1.example", 2, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H0 + 20, OBSPAM_REFUSE);
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "a@d1.example", OBSPAM_MAILBOX, 1));
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "s1", OBSPAM_SUBSCRIPTION, 99));
  LOGIN("a@d1.example", 1, H0 + 30, OBSPAM_REFUSE);
  /* Raised again after the last refusal: no effect on the notice. */
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "a@d1.example", OBSPAM_MAILBOX, 7));
  EXPECT_FLUSH(
      H1, {MBX, "a@d1.example", "s1", C1, 1, 2, 2, H0 + 20, H0 + 30, H0, H1});
}

Test(notify, scripts_notify_their_subscription_not_the_path) {
  OK(obspam_set_notify(e, record, NULL));
  {
    obspam_message m = tu_msg(OBSPAM_MSG_SCRIPT, NULL, NULL, NULL, 4, 1002,
                              "d2.example", "/srv/x.php", H0 + 10);
    obspam_verdict v = DECIDE(e, &m);

    EXPECT_ACTION(v, OBSPAM_REFUSE);
  }
  RUN(1002, NULL, 1, H0 + 20, OBSPAM_REFUSE);
  /* The subscription, over its limit (its scripts are forbidden); its
     domain was only refused. */
  EXPECT_FLUSH(H1, {SUB, "s2", "s2", NONE, -1, 0, 2, H0 + 10, H0 + 20, H0, H1});
}

/* A login whose mailbox is not declared is an implicit mailbox, noticed
   as a declared one is: here it has no limit of its own, so only the
   domain it went over is. */
Test(notify, domain_login_without_mailbox) {
  OK(obspam_set_notify(e, record, NULL));
  OK(obspam_set_limit(e, OBSPAM_DOMAIN, "d1.example", OBSPAM_DOMAIN, 3));
  LOGIN("nobody@d1.example", 3, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("nobody@d1.example", 1, H0 + 20, OBSPAM_REFUSE);
  /* The domain went over its limit; s1 (4 of 100) did not. */
  EXPECT_FLUSH(
      H1, {DOM, "d1.example", "s1", C1, 3, 3, 1, H0 + 20, H0 + 20, H0, H1});
}

Test(notify, contact_changes_follow_the_subscription) {
  OK(obspam_set_notify(e, record, NULL));
  OK(obspam_set_contact(e, "s2", "ops@s2.example"));
  LOGIN("c@d2.example", 1, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, H0 + 20, OBSPAM_REFUSE);
  OK(obspam_set_contact(e, "s1", NULL));
  LOGIN("a@d1.example", 2, H0 + 30, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H0 + 40, OBSPAM_REFUSE);
  EXPECT_FLUSH(
      H1, {MBX, "a@d1.example", "s1", NONE, 2, 2, 1, H0 + 40, H0 + 40, H0, H1},
      {MBX, "c@d2.example", "s2", "ops@s2.example", 1, 1, 1, H0 + 20, H0 + 20,
       H0, H1});
}

/* ---- periods ------------------------------------------------------------- */

Test(notify, period_alignment_420) {
  /* 420 s does not divide T0: periods are multiples of 420 since the
     epoch. T0 + 1000 lies in [T0 + 720, T0 + 1140). */
  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_PERIOD, 420));
  OK(obspam_set_notify(e, record, NULL));
  LOGIN("a@d1.example", 2, T0 + 900, OBSPAM_ACCEPT);
  SEND_LOGINS(e, "a@d1.example", 1, OBSPAM_REFUSE, T0 + 1000, T0 + 1139,
              T0 + 1140);
  EXPECT_NOTHING(T0 + 1139);
  EXPECT_FLUSH(T0 + 1140, {MBX, "a@d1.example", "s1", C1, 2, 2, 2, T0 + 1000,
                           T0 + 1139, T0 + 720, T0 + 1140});
  EXPECT_NOTHING(T0 + 1559);
  EXPECT_FLUSH(T0 + 1560, {MBX, "a@d1.example", "s1", C1, 2, 0, 1, T0 + 1140,
                           T0 + 1140, T0 + 1140, T0 + 1560});
}

Test(notify, period_alignment_day) {
  /* A day: T0 + 1000 lies in [1799971200, 1800057600). */
  const int64_t start = 1799971200, end = 1800057600;

  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_PERIOD, 86400));
  OK(obspam_set_notify(e, record, NULL));
  LOGIN("c@d2.example", 1, T0 + 900, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, T0 + 1000, OBSPAM_REFUSE);
  /* Three hours later, still the same period. */
  LOGIN("c@d2.example", 1, H3 + 10, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, H3 + 20, OBSPAM_REFUSE);
  EXPECT_NOTHING(end - 1);
  EXPECT_FLUSH(end, {MBX, "c@d2.example", "s2", NONE, 1, 2, 2, T0 + 1000,
                     H3 + 20, start, end});
}

Test(notify, period_minimum_60) {
  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_PERIOD, 60));
  OK(obspam_set_notify(e, record, NULL));
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "a@d1.example", OBSPAM_MAILBOX, 0));
  SEND_LOGINS(e, "a@d1.example", 1, OBSPAM_REFUSE, T0 + 59, T0 + 60);
  EXPECT_FLUSH(T0 + 60, {MBX, "a@d1.example", "s1", C1, 0, 0, 1, T0 + 59,
                         T0 + 59, T0, T0 + 60});
  EXPECT_FLUSH(T0 + 120, {MBX, "a@d1.example", "s1", C1, 0, 0, 1, T0 + 60,
                          T0 + 60, T0 + 60, T0 + 120});
}

Test(notify, flush_zero_is_wall_clock) {
  /* A refusal in 1970: its period ended long before the wall clock. */
  OK(obspam_set_notify(e, record, NULL));
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "c@d2.example", OBSPAM_MAILBOX, 0));
  LOGIN("c@d2.example", 1, 36005, OBSPAM_REFUSE);
  ngot = 0;
  OK(obspam_notify_flush(e, 0));
  cr_assert_eq(ngot, 1, "%d notices", ngot);
  cr_assert_eq(got[0].start, 36000, "start %" PRId64, got[0].start);
  cr_assert_eq(got[0].end, 39600, "end %" PRId64, got[0].end);
  /* And a period that ends after the wall clock is not flushed by 0. */
  LOGIN("c@d2.example", 1, (int64_t)time(NULL) + 7200, OBSPAM_REFUSE);
  EXPECT_NOTHING(0);
}

/* ---- immediate mode ------------------------------------------------------ */

/* d1's notice in immediate_first_refusal_only: refused three times in H0,
   over its limit of 7 once. */
static void expect_d1_over_once(const rec *r, int line) {
  char one[2048];

  fmt_rec(one, sizeof one, r);
  cr_assert(r->kind == DOM && strcmp(r->name, "d1.example") == 0 &&
                r->limit == 7 && r->sent == 7 && r->refused == 3 &&
                r->exceeded == 1 && r->first == T0 + 500 &&
                r->last == T0 + 500 && r->start == H0 && r->end == H1,
            "line %d: d1's notice is %s", line, one);
}

Test(notify, immediate_first_refusal_only) {
  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_IMMEDIATE, 1));
  OK(obspam_set_notify(e, record, NULL));
  ngot = 0;
  SEND_LOGINS(e, "a@d1.example", 1, OBSPAM_ACCEPT, T0 + 10, T0 + 20);
  LOGIN("b@d1.example", 5, T0 + 30, OBSPAM_ACCEPT);
  EXPECT_NONE_RECORDED();
  /* The first refusal over the limit: a notice per object that went
     over its own limit (a@ alone), from inside decide, on the calling
     thread. */
  LOGIN("a@d1.example", 1, T0 + 100, OBSPAM_REFUSE);
  cr_assert(ngot > 0 && pthread_equal(got_thread[0], pthread_self()),
            "no immediate notice on the deciding thread");
  EXPECT_RECORDED(
      {MBX, "a@d1.example", "s1", C1, 2, 2, 1, T0 + 100, T0 + 100, H0, H1});
  /* Not at the second. */
  LOGIN("a@d1.example", 1, T0 + 200, OBSPAM_REFUSE);
  EXPECT_NONE_RECORDED();
  /* c's first refusal: c alone went over its limit. */
  LOGIN("c@d2.example", 1, T0 + 300, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, T0 + 400, OBSPAM_REFUSE);
  EXPECT_RECORDED(
      {MBX, "c@d2.example", "s2", NONE, 1, 1, 1, T0 + 400, T0 + 400, H0, H1});
  /* A refusal by d1's limit, for b: d1 goes over its limit for the first
     time (it was refused twice before, for a); b (unlimited) did not. */
  OK(obspam_set_limit(e, OBSPAM_DOMAIN, "d1.example", OBSPAM_DOMAIN, 7));
  LOGIN("b@d1.example", 1, T0 + 500, OBSPAM_REFUSE);
  cr_assert_eq(ngot, 1, "%d immediate notices", ngot);
  expect_d1_over_once(&got[0], __LINE__);
  ngot = 0;
  /* The flush still gives the full notices: d1's counts its three
     refusals, one of them over its own limit. */
  ngot = 0;
  OK(obspam_notify_flush(e, H1));
  cr_assert_eq(ngot, 3, "%d notices", ngot);
  expect_d1_over_once(&got[0], __LINE__);
  {
    const want w[] = {
        {MBX, "a@d1.example", "s1", C1, 2, 2, 2, T0 + 100, T0 + 200, H0, H1},
        {MBX, "c@d2.example", "s2", NONE, 1, 1, 1, T0 + 400, T0 + 400, H0, H1}};

    expect_recs(got + 1, ngot - 1, w, 2, "flush", __LINE__);
  }
  /* The next period: immediate notices again, from zero. */
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "a@d1.example", OBSPAM_MAILBOX, 0));
  ngot = 0;
  LOGIN("a@d1.example", 1, H1 + 10, OBSPAM_REFUSE);
  EXPECT_RECORDED(
      {MBX, "a@d1.example", "s1", C1, 0, 0, 1, H1 + 10, H1 + 10, H1, H2});
}

Test(notify, immediate_scripts_forbidden) {
  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_IMMEDIATE, 1));
  OK(obspam_set_notify(e, record, NULL));
  LOGIN("c@d2.example", 1, H0 + 5, OBSPAM_ACCEPT);
  ngot = 0;
  RUN(1002, "d2.example", 3, H0 + 10, OBSPAM_REFUSE);
  EXPECT_RECORDED({SUB, "s2", "s2", NONE, -1, 1, 1, H0 + 10, H0 + 10, H0, H1});
  RUN(1002, NULL, 3, H0 + 20, OBSPAM_REFUSE);
  EXPECT_NONE_RECORDED();
}

Test(notify, immediate_off_by_default_and_without_callback) {
  OK(obspam_set_notify(e, record, NULL));
  ngot = 0;
  LOGIN("a@d1.example", 2, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H0 + 20, OBSPAM_REFUSE);
  EXPECT_NONE_RECORDED();
  /* Immediate mode without a callback: decisions work, nothing is lost
     for the flush. */
  OK(obspam_set_notify(e, NULL, NULL));
  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_IMMEDIATE, 1));
  LOGIN("c@d2.example", 1, H0 + 30, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, H0 + 40, OBSPAM_REFUSE);
  OK(obspam_set_notify(e, record, NULL));
  EXPECT_FLUSH(
      H1, {MBX, "a@d1.example", "s1", C1, 2, 2, 1, H0 + 20, H0 + 20, H0, H1},
      {MBX, "c@d2.example", "s2", NONE, 1, 1, 1, H0 + 40, H0 + 40, H0, H1});
}

/* ---- no lock is held while a callback runs ------------------------------- */

/* Thread A runs a call whose callback blocks until thread B has decided,
   read stats and changed an option (which takes the engine's write lock)
   on the same engine. If A held any engine lock, B would wait for A and A
   for B until the callback's timeout. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int in_cb, b_done, a_done, b_timed_out, cb_saw_b_done, cb_calls;
static int b_rc[4], a_rc;
static obspam_verdict a_verdict, b_verdict;
static obspam_stats b_stats;
static int a_uses_flush;

static void deadline_in(struct timespec *ts, int seconds) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += seconds;
}

static void blocking_cb(const obspam_notice *n, void *ud) {
  struct timespec ts;

  (void)n;
  (void)ud;
  pthread_mutex_lock(&mu);
  cb_calls++;
  if (!in_cb) {
    in_cb = 1;
    pthread_cond_broadcast(&cv);
    deadline_in(&ts, 10);
    while (!b_done && pthread_cond_timedwait(&cv, &mu, &ts) != ETIMEDOUT)
      ;
    cb_saw_b_done = b_done;
  }
  pthread_mutex_unlock(&mu);
}

static void *thread_a(void *arg) {
  (void)arg;
  if (a_uses_flush) {
    a_rc = obspam_notify_flush(e, H1);
  } else {
    obspam_message m = tu_msg(0, "a@d1.example", "a@d1.example",
                              "198.51.100.10", 1, -1, NULL, NULL, T0 + 100);
    a_verdict.struct_size = sizeof(a_verdict);
    a_rc = obspam_decide(e, &m, &a_verdict);
  }
  pthread_mutex_lock(&mu);
  a_done = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void *thread_b(void *arg) {
  obspam_message m = tu_msg(0, "b@d1.example", "b@d1.example", "198.51.100.10",
                            1, -1, NULL, NULL, T0 + 110);
  struct timespec ts;

  (void)arg;
  pthread_mutex_lock(&mu);
  deadline_in(&ts, 10);
  while (!in_cb && pthread_cond_timedwait(&cv, &mu, &ts) != ETIMEDOUT)
    ;
  if (!in_cb) {
    b_timed_out = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return NULL;
  }
  pthread_mutex_unlock(&mu);

  b_verdict.struct_size = sizeof(b_verdict);
  b_rc[0] = obspam_decide(e, &m, &b_verdict);
  b_stats.struct_size = sizeof(b_stats);
  b_rc[1] =
      obspam_stats_get(e, OBSPAM_MAILBOX, "a@d1.example", T0 + 110, &b_stats);
  /* Writers: an option and a limit. */
  b_rc[2] = obspam_set_option(e, OBSPAM_OPT_COUNT_FORWARD_LOCAL, 1);
  b_rc[3] =
      obspam_set_limit(e, OBSPAM_MAILBOX, "c@d2.example", OBSPAM_MAILBOX, 9);

  pthread_mutex_lock(&mu);
  b_done = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  return NULL;
}

static void run_blocking_case(void) {
  pthread_t ta, tb;
  struct timespec ts;
  int i;

  cr_assert_eq(pthread_create(&tb, NULL, thread_b, NULL), 0, "thread B");
  cr_assert_eq(pthread_create(&ta, NULL, thread_a, NULL), 0, "thread A");
  pthread_mutex_lock(&mu);
  deadline_in(&ts, 30);
  while (!(a_done && (b_done || b_timed_out)) &&
         pthread_cond_timedwait(&cv, &mu, &ts) != ETIMEDOUT)
    ;
  pthread_mutex_unlock(&mu);
  /* A stuck thread is not joined: the failed test's process ends. */
  cr_assert_eq(b_timed_out, 0, "the callback never ran");
  cr_assert_eq(b_done, 1, "thread B is still blocked: a lock is held");
  cr_assert_eq(a_done, 1, "thread A never returned");
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  cr_assert_eq(cb_saw_b_done, 1,
               "thread B finished only after the callback gave up waiting: "
               "the callback ran with an engine lock held");
  cr_assert_eq(a_rc, OBSPAM_OK, "thread A's call returned %d", a_rc);
  for (i = 0; i < 4; i++)
    cr_assert_eq(b_rc[i], OBSPAM_OK, "thread B's call %d returned %d", i,
                 b_rc[i]);
  cr_assert_eq(b_verdict.action, OBSPAM_ACCEPT, "thread B's decision: %d",
               b_verdict.action);
}

Test(notify, no_lock_held_in_immediate_callback, .timeout = 60) {
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "a@d1.example", OBSPAM_MAILBOX, 0));
  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_IMMEDIATE, 1));
  OK(obspam_set_notify(e, blocking_cb, NULL));
  a_uses_flush = 0;
  run_blocking_case();
  cr_assert_eq(a_verdict.action, OBSPAM_REFUSE, "thread A's decision: %d",
               a_verdict.action);
  cr_assert_eq(cb_calls, 1, "%d immediate notices", cb_calls);
  /* The refusal was recorded before the callback ran. */
  cr_assert_eq(b_stats.refused, 1, "B saw refused %" PRId64, b_stats.refused);
  cr_assert_eq(b_stats.refused_total, 1, "B saw refused_total %" PRId64,
               b_stats.refused_total);
}

Test(notify, no_lock_held_in_flush_callback, .timeout = 60) {
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "a@d1.example", OBSPAM_MAILBOX, 0));
  LOGIN("a@d1.example", 1, T0 + 50, OBSPAM_REFUSE);
  OK(obspam_set_notify(e, blocking_cb, NULL));
  a_uses_flush = 1;
  run_blocking_case();
  cr_assert_eq(cb_calls, 1, "%d notices", cb_calls);
}

/* ---- objects that go away, callbacks that go away ------------------------ */

Test(notify, removed_objects_still_notified) {
  OK(obspam_set_notify(e, record, NULL));
  OK(obspam_set_contact(e, "s2", "ops@s2.example"));
  LOGIN("a@d1.example", 2, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H0 + 20, OBSPAM_REFUSE);
  LOGIN("c@d2.example", 1, H0 + 30, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, H0 + 40, OBSPAM_REFUSE);
  /* A mailbox alone, and a whole subscription with its subtree. */
  OK(obspam_remove(e, OBSPAM_MAILBOX, "a@d1.example"));
  OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "s2"));
  EXPECT_FLUSH(
      H1, {MBX, "a@d1.example", "s1", C1, 2, 2, 1, H0 + 20, H0 + 20, H0, H1},
      {MBX, "c@d2.example", "s2", "ops@s2.example", 1, 1, 1, H0 + 40, H0 + 40,
       H0, H1});
  EXPECT_NOTHING(H2);
}

Test(notify, removed_domain_before_period_end) {
  OK(obspam_set_notify(e, record, NULL));
  LOGIN("a@d1.example", 2, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H0 + 20, OBSPAM_REFUSE);
  OK(obspam_remove(e, OBSPAM_DOMAIN, "d1.example"));
  /* Removed before its period ended: still not emitted early. */
  EXPECT_NOTHING(H1 - 1);
  EXPECT_FLUSH(
      H1, {MBX, "a@d1.example", "s1", C1, 2, 2, 1, H0 + 20, H0 + 20, H0, H1});
}

Test(notify, set_notify_null_drops_ended_notices) {
  OK(obspam_set_notify(e, record, NULL));
  LOGIN("a@d1.example", 2, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H0 + 20, OBSPAM_REFUSE);
  LOGIN("c@d2.example", 1, H1 + 10, OBSPAM_ACCEPT);
  LOGIN("c@d2.example", 1, H1 + 20, OBSPAM_REFUSE);
  OK(obspam_set_notify(e, NULL, NULL));
  ngot = 0;
  /* H0's notices are consumed without a callback... */
  OK(obspam_notify_flush(e, H1));
  cr_assert_eq(ngot, 0, "%d notices without a callback", ngot);
  OK(obspam_set_notify(e, record, NULL));
  /* ...and never come back; H1's are still there. */
  EXPECT_FLUSH(
      H2, {MBX, "c@d2.example", "s2", NONE, 1, 1, 1, H1 + 20, H1 + 20, H1, H2});
}

static int other_calls;
static void other_cb(const obspam_notice *n, void *ud) {
  (void)n;
  (void)ud;
  other_calls++;
}

Test(notify, replacing_the_callback) {
  OK(obspam_set_notify(e, other_cb, NULL));
  OK(obspam_set_notify(e, record, NULL));
  LOGIN("a@d1.example", 2, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H0 + 20, OBSPAM_REFUSE);
  EXPECT_FLUSH(
      H1, {MBX, "a@d1.example", "s1", C1, 2, 2, 1, H0 + 20, H0 + 20, H0, H1});
  cr_assert_eq(other_calls, 0, "the replaced callback ran %d times",
               other_calls);
}

/* ---- errors -------------------------------------------------------------- */

Test(notify, errors) {
  OK(obspam_set_notify(e, record, NULL));
  LOGIN("a@d1.example", 2, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H0 + 20, OBSPAM_REFUSE);
  ngot = 0;
  RC(obspam_notify_flush(e, -1), OBSPAM_EINVAL);
  cr_assert_neq(obspam_engine_errmsg(e)[0], '\0', "no error message");
  RC(obspam_notify_flush(e, INT64_MIN), OBSPAM_EINVAL);
  RC(obspam_notify_flush(NULL, H1), OBSPAM_EINVAL);
  RC(obspam_set_notify(NULL, record, NULL), OBSPAM_EINVAL);
  cr_assert_eq(ngot, 0, "%d notices from failed calls", ngot);
  /* The failures consumed nothing. */
  EXPECT_FLUSH(
      H1, {MBX, "a@d1.example", "s1", C1, 2, 2, 1, H0 + 20, H0 + 20, H0, H1});
}

Test(notify, flush_without_anything) {
  EXPECT_NOTHING(H1);
  OK(obspam_set_notify(e, record, NULL));
  EXPECT_NOTHING(H1);
  EXPECT_NOTHING(INT64_MAX);
}

/* ---- who is notified (1.3) ------------------------------------------------
 */

static int nrows;
static obspam_report_row rows[8];
static char row_names[8][OBSPAM_NAME_MAX + 1];

/* Keeps a row, with a copy of its name: the row's lives only until the
   callback returns. */
static void keep_row(const obspam_report_row *r, void *ud) {
  (void)ud;
  if (nrows < 8) {
    rows[nrows] = *r;
    snprintf(row_names[nrows], sizeof row_names[nrows], "%s", r->name);
    rows[nrows].name = row_names[nrows];
  }
  nrows++;
}

/* The reported case: one refused message from demo@bakery.example (limit
   5; domain unlimited; subscription 800) gives one notice, the mailbox's,
   at once in immediate mode and once at the flush, and the report lists
   the mailbox alone. */
Test(notify, reported_one_refusal_one_notice) {
  obspam_engine *x = tu_new();

  OK(obspam_load_config_string(
      x, "subscription bakery subscription=800 contact=owner@bakery.example\n"
         "domain bakery.example subscription=bakery domain=unlimited\n"
         "mailbox demo@bakery.example limit=5\n"));
  OK(obspam_set_option(x, OBSPAM_OPT_NOTIFY_IMMEDIATE, 1));
  OK(obspam_set_notify(x, record, NULL));
  ngot = 0;
  cr_assert_eq(SASL(x, "demo@bakery.example", 5, T0 + 10).action,
               OBSPAM_ACCEPT);
  cr_assert_eq(SASL(x, "demo@bakery.example", 1, T0 + 20).action,
               OBSPAM_REFUSE);
  EXPECT_RECORDED({MBX, "demo@bakery.example", "bakery", "owner@bakery.example",
                   5, 5, 1, T0 + 20, T0 + 20, H0, H1});
  OK(obspam_notify_flush(x, H1));
  EXPECT_RECORDED({MBX, "demo@bakery.example", "bakery", "owner@bakery.example",
                   5, 5, 1, T0 + 20, T0 + 20, H0, H1});
  nrows = 0;
  OK(obspam_report(x, H0, H1, keep_row, NULL));
  cr_assert_eq(nrows, 1, "%d report rows", nrows);
  cr_assert_eq(rows[0].kind, MBX);
  cr_assert_str_eq(rows[0].name, "demo@bakery.example");
  cr_assert_eq(rows[0].sent, 5);
  cr_assert_eq(rows[0].refused, 1);
  cr_assert_eq(rows[0].exceeded, 1);
  cr_assert_eq(rows[0].first_refused, T0 + 20);
  cr_assert_eq(rows[0].last_refused, T0 + 20);
  obspam_engine_free(x);
}

/* Refused only because of an ancestor: refused is counted, no notice. A
   notice's first and last are those of the attempts over the limit. */
Test(notify, refused_by_an_ancestor_is_not_notified) {
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "s1", OBSPAM_SUBSCRIPTION, 3));
  OK(obspam_set_notify(e, record, NULL));
  LOGIN("b@d1.example", 3, H0 + 10, OBSPAM_ACCEPT);
  /* s1 is full: a@ (0 of 2) and b@ are refused because of it. */
  LOGIN("a@d1.example", 1, H0 + 20, OBSPAM_REFUSE);
  LOGIN("b@d1.example", 1, H0 + 30, OBSPAM_REFUSE);
  /* 3 recipients never fit a@ (limit 2): a@ goes over its own limit. */
  LOGIN("a@d1.example", 3, H0 + 40, OBSPAM_REFUSE);
  ngot = 0;
  OK(obspam_notify_flush(e, H1));
  cr_assert_eq(ngot, 2, "%d notices", ngot);
  cr_assert(got[0].kind == SUB && strcmp(got[0].name, "s1") == 0 &&
                got[0].refused == 3 && got[0].exceeded == 3 &&
                got[0].first == H0 + 20 && got[0].last == H0 + 40,
            "s1's notice");
  cr_assert(got[1].kind == MBX && strcmp(got[1].name, "a@d1.example") == 0 &&
                got[1].sent == 0 && got[1].refused == 2 &&
                got[1].exceeded == 1 && got[1].first == H0 + 40 &&
                got[1].last == H0 + 40 && got[1].limit == 2,
            "a@'s notice");
  obspam_stats st = STATS(e, OBSPAM_MAILBOX, "b@d1.example", H0 + 40);
  cr_assert_eq(st.refused, 1);
  cr_assert_eq(st.exceeded, 0);
}
