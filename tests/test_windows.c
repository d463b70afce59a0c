/* SPDX-License-Identifier: MIT */
/*
 * The minute and day windows of the in-memory store, and what keeps them:
 * snapshots, the journal, a reload.
 *
 * SPEC.md section 2: the minute window is twelve 5-second buckets (the
 * current one, t div 5, and the 11 before it), the day window 24 clock
 * hours (the current one and the 23 before it). API.md step 5: a wait is
 * the smallest s >= 1 such that the message fits that window at t + s if
 * nothing else were sent, -1 when it never fits.
 *
 * So a charge made in 5-second bucket k is counted at t while
 * t div 5 <= k + 11, and leaves at exactly (k + 12) * 5; a charge made in
 * the clock hour starting at X is counted while the clock hour of t is at
 * most X + 23 hours, and leaves at exactly X + 24 hours. Every expectation
 * below is worked out from that by hand.
 *
 * T0 = 1800000000 is a multiple of 3600 (and so of 5): bucket k0 = T0 / 5
 * starts at T0, bucket k0 + j at T0 + 5j; clock hour Hn starts at
 * T0 + 3600n.
 *
 * The limits are set with obspam_set_window_limit only. The store's own
 * answers the public API does not show (the minute count of a reading, the
 * window of a report row and of a notice) are read from the store itself,
 * at the end.
 */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"

static obspam_engine *e;

static const char conf[] = "subscription s\n"
                           "domain d.example subscription=s\n"
                           "mailbox a@d.example\n"
                           "mailbox b@d.example\n";

TU_ENGINE_SETUP(tu_new_conf(conf))

TestSuite(windows, .init = setup, .fini = teardown);

#define A "a@d.example"
#define B "b@d.example"
#define D "d.example"
#define MBX OBSPAM_MAILBOX
#define MINUTE OBSPAM_WINDOW_MINUTE
#define HOUR OBSPAM_WINDOW_HOUR
#define DAY OBSPAM_WINDOW_DAY

/* a@'s own limit in one window. */
static void limit_a(obspam_engine *x, int64_t window, int64_t limit) {
  OK(obspam_set_window_limit(x, MBX, A, MBX, window, limit));
}

/* A verdict with its window, every field asserted. */
static void expect_w(obspam_verdict v, int action, int kind, const char *object,
                     int64_t limit, int64_t count, int64_t retry, int64_t win,
                     int line) {
  tu_expect_verdict(&v, action, kind, object, limit, count, retry, line);
  cr_assert_eq(v.window, win, "line %d: window %" PRId64 ", expected %" PRId64,
               line, v.window, win);
}
#define EXPECT_W(v, action, kind, object, limit, count, retry, win)            \
  expect_w((v), (action), (kind), (object), (limit), (count), (retry), (win),  \
           __LINE__)

/* An accepted message names the mailbox, its hourly limit (unlimited here)
   and its hourly count before the message. */
#define EXPECT_ACCEPT(v, count)                                                \
  EXPECT_W((v), OBSPAM_ACCEPT, MBX, A, -1, (count), 0, HOUR)

#define COUNT_DAY(x, who, now) STATS((x), MBX, (who), (now)).count_day

/* ---- the minute window --------------------------------------------------- */

/* Limit 3 per minute. Two messages in bucket k0 (its first and last
   second) and one in k0 + 1. */
Test(windows, minute_bucket_edges) {
  obspam_verdict v;

  limit_a(e, MINUTE, 3);
  EXPECT_ACCEPT(SASL(e, A, 1, T0), 0);
  EXPECT_ACCEPT(SASL(e, A, 1, T0 + 4), 1);
  EXPECT_ACCEPT(SASL(e, A, 1, T0 + 5), 2);
  /* T0 + 6: the window k0 - 10 .. k0 + 1 holds 3. Without k0 (2) it
     holds 1: the window k0 + 1 .. k0 + 12, from T0 + 60. */
  v = SASL(e, A, 1, T0 + 6);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 3, 3, 54, MINUTE);
  /* T0 + 59, bucket k0 + 11: k0 is still in; one second to go. */
  v = SASL(e, A, 1, T0 + 59);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 3, 3, 1, MINUTE);
  /* T0 + 60, bucket k0 + 12: k0 left, the one of T0 + 5 is in. */
  EXPECT_ACCEPT(SASL(e, A, 1, T0 + 60), 3);
  /* T0 + 61: k0 + 1 (1) and k0 + 12 (1); 2 more need k0 + 1 gone, at
     bucket k0 + 13, T0 + 65. */
  v = SASL(e, A, 2, T0 + 61);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 3, 2, 4, MINUTE);
  v = SASL(e, A, 2, T0 + 64);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 3, 2, 1, MINUTE);
  EXPECT_ACCEPT(SASL(e, A, 2, T0 + 65), 4);
  /* 4 recipients never fit a limit of 3. */
  v = SASL(e, A, 4, T0 + 65);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 3, 3, -1, MINUTE);
  /* A whole minute later nothing is left: 3 fit at once. */
  EXPECT_ACCEPT(SASL(e, A, 3, T0 + 65 + 60), 6);
}

/* The buckets a long pause skips are emptied, whatever was in them; the
   walk of a wait goes over several buckets. */
Test(windows, minute_wait_over_several_buckets) {
  obspam_verdict v;

  limit_a(e, MINUTE, 4);
  EXPECT_ACCEPT(SASL(e, A, 1, T0 + 3), 0);  /* k0 */
  EXPECT_ACCEPT(SASL(e, A, 1, T0 + 17), 1); /* k0 + 3 */
  EXPECT_ACCEPT(SASL(e, A, 2, T0 + 50), 2); /* k0 + 10 */
  /* 3 more at T0 + 52 need 3 to leave: k0 (1), k0 + 3 (1), k0 + 10 (2):
     the window must start at k0 + 11, bucket k0 + 22, T0 + 110. */
  v = SASL(e, A, 3, T0 + 52);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 4, 4, 58, MINUTE);
  /* 1 more needs k0 gone only: bucket k0 + 12, T0 + 60. */
  v = SASL(e, A, 1, T0 + 52);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 4, 4, 8, MINUTE);
  /* 2 more: k0 and k0 + 3 gone, bucket k0 + 15, T0 + 75. */
  v = SASL(e, A, 2, T0 + 52);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 4, 4, 23, MINUTE);
  EXPECT_ACCEPT(SASL(e, A, 2, T0 + 75), 4);
  /* An hour later the minute window is empty (and the hour too). */
  EXPECT_ACCEPT(SASL(e, A, 4, T0 + 3600 + 75), 0);
}

/* Each charged object has its own minute window; the domain's limit names
   the domain. */
Test(windows, minute_limit_of_an_ancestor) {
  obspam_verdict v;

  OK(obspam_set_window_limit(e, OBSPAM_DOMAIN, D, OBSPAM_DOMAIN, MINUTE, 3));
  EXPECT_ACCEPT(SASL(e, A, 2, T0), 0);
  v = SASL(e, B, 1, T0 + 1);
  EXPECT_W(v, OBSPAM_ACCEPT, MBX, B, -1, 0, 0, HOUR);
  v = SASL(e, B, 1, T0 + 2);
  EXPECT_W(v, OBSPAM_REFUSE, OBSPAM_DOMAIN, D, 3, 3, 58, MINUTE);
}

/* ---- the day window ------------------------------------------------------ */

/* Limit 5 per day. 3 in the last second of H0, 2 at the start of H5. */
Test(windows, day_bucket_edges) {
  obspam_verdict v;

  limit_a(e, DAY, 5);
  EXPECT_ACCEPT(SASL(e, A, 3, T0 + 3599), 0);
  EXPECT_ACCEPT(SASL(e, A, 2, T0 + 5 * 3600), 0);
  cr_assert_eq(COUNT_DAY(e, A, T0 + 5 * 3600), 5);
  /* The last second of H23: H0 is still in; it leaves at H0 + 24 h. */
  cr_assert_eq(COUNT_DAY(e, A, T0 + 24 * 3600 - 1), 5);
  v = SASL(e, A, 1, T0 + 24 * 3600 - 1);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 5, 5, 1, DAY);
  /* H24: the window is H1 .. H24; H0 left. */
  cr_assert_eq(COUNT_DAY(e, A, T0 + 24 * 3600), 2);
  EXPECT_ACCEPT(SASL(e, A, 3, T0 + 24 * 3600), 0);
  /* 1 more needs H5 (2) gone: at H5 + 24 h. */
  v = SASL(e, A, 1, T0 + 24 * 3600 + 1);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 5, 5, 5 * 3600 - 1, DAY);
  /* 4 more need H5 and H24 gone: at H24 + 24 h. */
  v = SASL(e, A, 4, T0 + 24 * 3600 + 1);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 5, 5, 24 * 3600 - 1, DAY);
  /* 6 never fit. */
  v = SASL(e, A, 6, T0 + 24 * 3600 + 1);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 5, 5, -1, DAY);
  cr_assert_eq(COUNT_DAY(e, A, T0 + 29 * 3600 - 1), 5);
  cr_assert_eq(COUNT_DAY(e, A, T0 + 29 * 3600), 3);
  cr_assert_eq(COUNT_DAY(e, A, T0 + 48 * 3600 - 1), 3);
  cr_assert_eq(COUNT_DAY(e, A, T0 + 48 * 3600), 0);
}

/* The first message of a new clock hour reads the hours before it; a
   refusal is not counted. */
Test(windows, day_counts_every_hour_of_the_window) {
  obspam_verdict v;
  int h;

  limit_a(e, DAY, 24);
  for (h = 0; h < 24; h++)
    EXPECT_ACCEPT(SASL(e, A, 1, T0 + h * 3600 + 7), 0);
  v = SASL(e, A, 1, T0 + 23 * 3600 + 8);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 24, 24, 3600 - 8, DAY);
  /* H24 at once: H0 left; every hour's message in, the refusal not. */
  cr_assert_eq(COUNT_DAY(e, A, T0 + 24 * 3600), 23);
  EXPECT_ACCEPT(SASL(e, A, 1, T0 + 24 * 3600), 0);
  v = SASL(e, A, 2, T0 + 24 * 3600 + 1);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 24, 24, 2 * 3600 - 1, DAY);
}

/* A retention shorter than a day still keeps the day window; what the
   history and the totals show keeps to the retention. */
Test(windows, day_window_outlives_a_short_retention) {
  obspam_verdict v;
  obspam_stats s;

  OK(obspam_set_option(e, OBSPAM_OPT_RETENTION_HOURS, 1));
  limit_a(e, DAY, 4);
  EXPECT_ACCEPT(SASL(e, A, 4, T0), 0);
  v = SASL(e, A, 1, T0 + 20 * 3600);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 4, 4, 4 * 3600, DAY);
  s = STATS(e, MBX, A, T0 + 20 * 3600);
  cr_assert_eq(s.count_day, 4);
  cr_assert_eq(s.refused_total, 1);
  cr_assert_eq(s.exceeded_total, 1);
  cr_assert_eq(COUNT_DAY(e, A, T0 + 24 * 3600), 0);
  EXPECT_ACCEPT(SASL(e, A, 4, T0 + 24 * 3600), 0);
}

/* ---- windows together ------------------------------------------------------
 */

/* 2 per minute, 3 per hour, 5 per day: each window's wait, the longest
   named; on equal waits the longer window. */
Test(windows, every_window_of_one_object) {
  obspam_verdict v;

  limit_a(e, MINUTE, 2);
  limit_a(e, HOUR, 3);
  limit_a(e, DAY, 5);
  EXPECT_W(SASL(e, A, 2, T0), OBSPAM_ACCEPT, MBX, A, 3, 0, 0, HOUR);
  EXPECT_W(SASL(e, A, 1, T0 + 60), OBSPAM_ACCEPT, MBX, A, 3, 2, 0, HOUR);
  /* The minute holds 1 (fits), the hour 3 (full until minute m0 leaves
     at T0 + 3600), the day 3 (fits). */
  v = SASL(e, A, 1, T0 + 61);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 3, 3, 3539, HOUR);
  /* T0 + 3600: the hour holds 1 (minute m0 + 1), the day 3. */
  EXPECT_W(SASL(e, A, 2, T0 + 3600), OBSPAM_ACCEPT, MBX, A, 3, 1, 0, HOUR);
  /* T0 + 3601: the minute is full until T0 + 3660 (59 s), the hour until
     minute m0 + 1 leaves at T0 + 3660 (59 s), the day until H0 leaves
     (82799 s): the day is named. */
  v = SASL(e, A, 1, T0 + 3601);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 5, 5, 82799, DAY);
  /* Without the day's limit, minute and hour tie: the hour is named. */
  limit_a(e, DAY, OBSPAM_UNLIMITED);
  v = SASL(e, A, 1, T0 + 3601);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 3, 3, 59, HOUR);
  /* Without the hour's, the minute. */
  limit_a(e, HOUR, OBSPAM_UNLIMITED);
  v = SASL(e, A, 1, T0 + 3601);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 2, 2, 59, MINUTE);
}

/* ---- what keeps the windows ------------------------------------------------
 */

static void windows_limits(obspam_engine *x) {
  limit_a(x, MINUTE, 3);
  limit_a(x, DAY, 8);
}

/* 3 in H0; 2 in bucket H1 / 5 + 2, then a refusal over the minute. */
static void windows_traffic(obspam_engine *x) {
  obspam_verdict v;

  EXPECT_ACCEPT(SASL(x, A, 3, T0), 0);
  EXPECT_ACCEPT(SASL(x, A, 1, H1 + 10), 0);
  EXPECT_ACCEPT(SASL(x, A, 1, H1 + 14), 1);
  /* The minute holds 2 until bucket H1 / 5 + 14, H1 + 70. */
  v = SASL(x, A, 2, H1 + 14);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 3, 2, 56, MINUTE);
}

/* What an engine that saw windows_traffic() decides next. */
static void windows_after(obspam_engine *x) {
  obspam_verdict v;

  cr_assert_eq(COUNT_DAY(x, A, H1 + 15), 5);
  v = SASL(x, A, 2, H1 + 15);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 3, 2, 55, MINUTE);
  EXPECT_ACCEPT(SASL(x, A, 1, H1 + 15), 2);
  /* The minute is empty again at H1 + 100; the day holds 6: 3 more need
     H0 gone, at H0 + 24 h. */
  v = SASL(x, A, 3, H1 + 100);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 8, 6, 24 * 3600 - 3700, DAY);
  EXPECT_ACCEPT(SASL(x, A, 2, H1 + 100), 3);
}

static char dir[256], state[300];

static void make_dir(void) {
  tu_mkdtemp(dir, sizeof dir, "obspam-windows");
  snprintf(state, sizeof state, "%s/state", dir);
}

Test(windows, snapshot_round_trip) {
  obspam_engine *x = tu_new_conf(conf);

  make_dir();
  windows_limits(e);
  windows_limits(x);
  windows_traffic(e);
  OK(obspam_state_save(e, state));
  OK(obspam_state_load(x, state));
  windows_after(e);
  windows_after(x);
  obspam_engine_free(x);
  tu_rmtree(dir);
}

/* A notice as the callback saw it. */
typedef struct seen {
  int n;
  tu_notice r[8];
  int64_t window[8];
} seen;

static void on_notice(const obspam_notice *n, void *ud) {
  seen *s = ud;

  if (s->n < 8) {
    tu_notice_copy(&s->r[s->n], n, "-");
    s->window[s->n] = n->window;
  }
  s->n++;
}

/* The notices of x for the periods ended by now. */
static seen notices(obspam_engine *x, int64_t now) {
  seen s;

  memset(&s, 0, sizeof s);
  OK(obspam_set_notify(x, on_notice, &s));
  OK(obspam_notify_flush(x, now));
  OK(obspam_set_notify(x, NULL, NULL));
  return s;
}

/* An engine "killed" after windows_traffic(): e ran it with its journal
   open; the engine returned replays that journal, as a restart would. */
static obspam_engine *replayed_after_traffic(void) {
  obspam_engine *x = tu_new_conf(conf);
  int64_t replayed = -1, ignored = -1;

  make_dir();
  windows_limits(e);
  windows_limits(x);
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  windows_traffic(e);
  OK(obspam_journal_flush(e));
  OK(obspam_journal_open(x, state, 0, &replayed, &ignored));
  cr_assert_eq(replayed, 4, "replayed %" PRId64, replayed);
  cr_assert_eq(ignored, 0, "ignored %" PRId64, ignored);
  return x;
}

static void replayed_free(obspam_engine *x) {
  OK(obspam_journal_close(e));
  OK(obspam_journal_close(x));
  obspam_engine_free(x);
  tu_rmtree(dir);
}

/* The refusal over the minute comes back over the minute's limit, 3, in
   the notice of its period. */
Test(windows, journal_round_trip) {
  obspam_engine *x = replayed_after_traffic();
  seen n;

  n = notices(x, H2);
  cr_assert_eq(n.n, 1, "%d notices", n.n);
  cr_assert(strcmp(n.r[0].name, A) == 0 && n.r[0].limit == 3 &&
                n.r[0].sent == 2 && n.r[0].refused == 1 &&
                n.r[0].exceeded == 1 && n.r[0].first == H1 + 14 &&
                n.r[0].last == H1 + 14,
            "notice %s limit %" PRId64 " sent %" PRId64 " refused %" PRId64,
            n.r[0].name, n.r[0].limit, n.r[0].sent, n.r[0].refused);
  cr_assert_eq(n.window[0], MINUTE);
  replayed_free(x);
}

/* The counters of a replay are those of the engine that wrote the
   journal: both decide the same from there on. */
Test(windows, journal_replay_then_decide) {
  obspam_engine *x = replayed_after_traffic();

  windows_after(e);
  windows_after(x);
  replayed_free(x);
}

/* A message over the recipients cap is refused whole and recorded over
   the mailbox's own limit, the cap, which its notice gives; replayed from
   the journal, it is the same. */
Test(windows, recipients_cap_in_notices_and_journal) {
  obspam_engine *x = tu_new_conf(conf);
  int64_t replayed = -1;
  obspam_verdict v;
  obspam_stats st;
  seen n;
  int k;

  make_dir();
  OK(obspam_set_max_recipients(e, MBX, A, 5));
  OK(obspam_set_max_recipients(x, MBX, A, 5));
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  v = SASL(e, A, 7, T0 + 10);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 5, 7, -1, 0);
  EXPECT_ACCEPT(SASL(e, A, 5, T0 + 20), 0);
  st = STATS(e, MBX, A, T0 + 20);
  cr_assert(st.count == 5 && st.refused == 1 && st.exceeded == 1);
  OK(obspam_journal_flush(e));
  OK(obspam_journal_open(x, state, 0, &replayed, NULL));
  cr_assert_eq(replayed, 2, "replayed %" PRId64, replayed);
  for (k = 0; k < 2; k++) {
    n = notices(k == 0 ? e : x, H1);
    cr_assert_eq(n.n, 1, "engine %d: %d notices", k, n.n);
    cr_assert(strcmp(n.r[0].name, A) == 0 && n.r[0].limit == 5 &&
                  n.r[0].sent == 5 && n.r[0].refused == 1 &&
                  n.r[0].exceeded == 1 && n.r[0].first == T0 + 10,
              "engine %d: notice %s limit %" PRId64 " sent %" PRId64, k,
              n.r[0].name, n.r[0].limit, n.r[0].sent);
    cr_assert_eq(n.window[0], 0, "engine %d: window %" PRId64, k, n.window[0]);
  }
  replayed_free(x);
}

/* The report rows an obspam_report gives, as "kind name exceeded
   window" lines. */
static void on_row(const obspam_report_row *r, void *ud) {
  char *out = ud;
  size_t len = strlen(out);

  snprintf(out + len, 512 - len, "%d %s %" PRId64 " %" PRId64 "\n", r->kind,
           r->name, r->exceeded, r->window);
}

/* Report rows and notices give the window of the last attempt over the
   object's own limit, and the notice that window's limit. */
Test(windows, report_rows_and_notices_give_the_window) {
  char rows[512] = "";
  obspam_verdict v;
  seen n;

  limit_a(e, MINUTE, 2);
  limit_a(e, DAY, 3);
  EXPECT_ACCEPT(SASL(e, A, 2, T0), 0);
  v = SASL(e, A, 1, T0 + 1);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 2, 2, 59, MINUTE);
  OK(obspam_report(e, T0, H1, on_row, rows));
  cr_assert_str_eq(rows, "4 a@d.example 1 60\n");
  /* T0 + 70: the minute is empty, the day holds 2. */
  EXPECT_ACCEPT(SASL(e, A, 1, T0 + 70), 2);
  v = SASL(e, A, 1, T0 + 71);
  EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 3, 3, 24 * 3600 - 71, DAY);
  rows[0] = '\0';
  OK(obspam_report(e, T0, H1, on_row, rows));
  cr_assert_str_eq(rows, "4 a@d.example 2 86400\n");
  n = notices(e, H1);
  cr_assert_eq(n.n, 1, "%d notices", n.n);
  cr_assert(n.r[0].limit == 3 && n.window[0] == DAY && n.r[0].exceeded == 2,
            "notice limit %" PRId64 " window %" PRId64, n.r[0].limit,
            n.window[0]);
}

/* A reload that keeps a@ keeps its minute and day windows. */
Test(windows, reload_keeps_every_window) {
  windows_limits(e);
  windows_traffic(e);
  OK(obspam_load_config_string(e, conf));
  /* The limits set through the API went with the old tree. */
  windows_limits(e);
  windows_after(e);
}

/* ---- what only the store shows ---------------------------------------- */

/* A store of its own and one mailbox of no tree. */
typedef struct lone {
  obspam__store *s;
  obspam__obj o;
  char name[32];
} lone;

static void lone_new(lone *l) {
  memset(l, 0, sizeof(*l));
  l->s = obspam__mem_store_new();
  cr_assert_not_null(l->s);
  snprintf(l->name, sizeof l->name, "%s", A);
  l->o.name = l->name;
  l->o.len = (uint16_t)strlen(A);
  l->o.kind = OBSPAM_MAILBOX;
}

static void lone_free(lone *l) {
  obspam__store_forget(&l->o, l->s);
  l->s->ops->destroy(l->s);
}

/* A charge of c at t under limits per window (minute, hour, day); the
   refuser (-1 accepted). */
static int lone_charge(lone *l, int64_t c, int64_t t, int64_t lm, int64_t lh,
                       int64_t ld, obspam__charge *ch) {
  memset(ch, 0, sizeof(*ch));
  ch->n = 1;
  ch->obj[0] = &l->o;
  ch->limit[0][OBSPAM__W_MINUTE] = lm;
  ch->limit[0][OBSPAM__W_HOUR] = lh;
  ch->limit[0][OBSPAM__W_DAY] = ld;
  ch->t = t;
  ch->c = c;
  ch->recipients = c;
  ch->cap = OBSPAM_UNLIMITED;
  ch->retention = 720;
  ch->period = 3600;
  OK(l->s->ops->charge(l->s, ch));
  return ch->refuser;
}

static obspam__reading lone_read(lone *l, int64_t now) {
  obspam__reading r;

  l->s->ops->read(l->s, &l->o, now, 720, &r);
  return r;
}

/* Asserts the counts of the minute, the hour and the day of a charge's
   first object. */
static void expect_charged(const obspam__charge *ch, int64_t minute,
                           int64_t hour, int64_t day, int line) {
  cr_assert(ch->count[0][OBSPAM__W_MINUTE] == minute &&
                ch->count[0][OBSPAM__W_HOUR] == hour &&
                ch->count[0][OBSPAM__W_DAY] == day,
            "line %d: charged %" PRId64 "/m %" PRId64 "/h %" PRId64
            "/d, expected %" PRId64 "/m %" PRId64 "/h %" PRId64 "/d",
            line, (int64_t)ch->count[0][OBSPAM__W_MINUTE],
            (int64_t)ch->count[0][OBSPAM__W_HOUR],
            (int64_t)ch->count[0][OBSPAM__W_DAY], minute, hour, day);
}
#define EXPECT_CHARGED(ch, minute, hour, day)                                  \
  expect_charged(&(ch), (minute), (hour), (day), __LINE__)

/* The reading's minute count, at each edge of its buckets, beside the
   hour's and the day's; the charge's counts of every window. */
Test(windows, store_reading_and_counts) {
  lone l;
  obspam__charge ch;
  obspam__reading r;

  lone_new(&l);
  cr_assert_eq(lone_charge(&l, 2, T0 + 4, -1, -1, -1, &ch), -1);
  cr_assert_eq(lone_charge(&l, 3, T0 + 5, -1, -1, -1, &ch), -1);
  EXPECT_CHARGED(ch, 2, 2, 2);
  r = lone_read(&l, T0 + 59);
  cr_assert(r.count_minute == 5 && r.count == 5 && r.count_day == 5);
  r = lone_read(&l, T0 + 60);
  cr_assert_eq(r.count_minute, 3);
  r = lone_read(&l, T0 + 64);
  cr_assert_eq(r.count_minute, 3);
  r = lone_read(&l, T0 + 65);
  cr_assert(r.count_minute == 0 && r.count == 5 && r.count_day == 5);
  cr_assert_eq(lone_charge(&l, 1, H1 + 1, -1, -1, -1, &ch), -1);
  EXPECT_CHARGED(ch, 0, 0, 5);
  r = lone_read(&l, H1 + 1);
  cr_assert(r.count_minute == 1 && r.count == 1 && r.count_day == 6);
  lone_free(&l);
}

static void keep_rows(lone *l, obspam__row **rows, size_t *n) {
  OK(l->s->ops->report(l->s, 0, INT64_MAX, 720, 0, rows, n));
}

/* A refusal records the window it went over in the hour's history (the
   report row) and in the notification period (the notice), with that
   window's limit; the recipients cap as window 0 with the cap. */
Test(windows, store_refusals_record_their_window) {
  lone l;
  obspam__charge ch;
  obspam__row *rows;
  obspam__pending *p;
  size_t n;

  lone_new(&l);
  cr_assert_eq(lone_charge(&l, 2, T0, 2, 10, 100, &ch), -1);
  cr_assert_eq(lone_charge(&l, 1, T0 + 1, 2, 10, 100, &ch), 0);
  cr_assert(ch.window == OBSPAM__W_MINUTE && ch.over_window[0] == 0 &&
            ch.wait[0][OBSPAM__W_MINUTE] == 59 &&
            ch.wait[0][OBSPAM__W_HOUR] == 0 && ch.wait[0][OBSPAM__W_DAY] == 0);
  keep_rows(&l, &rows, &n);
  cr_assert(n == 1 && rows[0].exceeded == 1 && rows[0].window == 60 &&
            rows[0].last == T0 + 1);
  free(rows);
  /* Over the day's limit and the minute's: the day is the longer wait. */
  cr_assert_eq(lone_charge(&l, 1, T0 + 2, 2, 10, 2, &ch), 0);
  cr_assert(ch.window == OBSPAM__W_DAY && ch.over_window[0] == OBSPAM__W_DAY &&
            ch.wait[0][OBSPAM__W_DAY] == 24 * 3600 - 2);
  keep_rows(&l, &rows, &n);
  cr_assert(n == 1 && rows[0].exceeded == 2 && rows[0].window == 86400);
  free(rows);
  OK(l.s->ops->notices(l.s, H1, &p));
  cr_assert(p != NULL && p->next == NULL && p->limit == 2 &&
            p->window == 86400 && p->exceeded == 2);
  obspam__pending_free(p);
  /* The recipients cap. */
  memset(&ch, 0, sizeof(ch));
  ch.n = 1;
  ch.obj[0] = &l.o;
  ch.limit[0][0] = ch.limit[0][1] = ch.limit[0][2] = OBSPAM_UNLIMITED;
  ch.t = H1 + 5;
  ch.c = ch.recipients = 7;
  ch.cap = 5;
  ch.over_cap = 1;
  ch.retention = 720;
  ch.period = 3600;
  OK(l.s->ops->charge(l.s, &ch));
  cr_assert(ch.refuser == 0 && ch.window == -1 && ch.over_window[0] == -1 &&
            ch.retry_after == -1);
  keep_rows(&l, &rows, &n);
  cr_assert(n == 1 && rows[0].exceeded == 3 && rows[0].window == 0);
  free(rows);
  OK(l.s->ops->notices(l.s, H2, &p));
  cr_assert(p != NULL && p->limit == 5 && p->window == 0 && p->exceeded == 1);
  obspam__pending_free(p);
  lone_free(&l);
}

/* Copies the file at from to to. */
static void copy_file(const char *from, const char *to) {
  char cmd[1024];

  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* tests/data/journal-format1.bin was written before the windows
   (tests/data/journal-format1.c): a@ (limit 2 per hour) sent 2 at T0 and
   was refused 1 at T0 + 10, b@ sent 1 at T0 + 20, with no snapshot. Its
   records replay as over the hour's limit; the fresh journal the replay
   writes holds them under a format 2 header, and replays again. */
Test(windows, journal_format_1_replays) {
  const char limits[] = "subscription s\n"
                        "domain d.example subscription=s\n"
                        "mailbox a@d.example limit=2\n"
                        "mailbox b@d.example\n";
  char journal[320];
  int64_t replayed = -1;
  obspam_engine *x;
  obspam_stats s;
  obspam_verdict v;
  seen n;
  int round;

  make_dir();
  snprintf(journal, sizeof journal, "%s.journal", state);
  copy_file(OBSPAM_TEST_SRCDIR "/data/journal-format1.bin", journal);
  for (round = 0; round < 2; round++) {
    x = tu_new_conf(limits);
    OK(obspam_journal_open(x, state, 0, &replayed, NULL));
    cr_assert_eq(replayed, 3, "round %d: replayed %" PRId64, round, replayed);
    OK(obspam_journal_close(x));
    s = STATS(x, MBX, A, T0 + 20);
    cr_assert(s.count == 2 && s.refused == 1 && s.exceeded == 1 &&
                  s.count_day == 2,
              "round %d: count %" PRId64 " refused %" PRId64, round, s.count,
              s.refused);
    cr_assert_eq(COUNT_DAY(x, B, T0 + 20), 1);
    if (round == 1) {
      v = SASL(x, A, 1, T0 + 30);
      EXPECT_W(v, OBSPAM_REFUSE, MBX, A, 2, 2, 3570, HOUR);
      n = notices(x, H1);
      cr_assert_eq(n.n, 1, "%d notices", n.n);
      cr_assert(strcmp(n.r[0].name, A) == 0 && n.r[0].limit == 2 &&
                    n.r[0].refused == 2 && n.r[0].exceeded == 2 &&
                    n.r[0].first == T0 + 10 && n.r[0].last == T0 + 30,
                "notice %s limit %" PRId64 " refused %" PRId64, n.r[0].name,
                n.r[0].limit, n.r[0].refused);
    }
    obspam_engine_free(x);
  }
  tu_rmtree(dir);
}

/* ---- the shortcut of warm objects --------------------------------------- */

/* A subscription, its domain and its mailbox, of no tree, with a store
   of their own. */
typedef struct chain {
  obspam__store *s;
  obspam__sub sub;
  obspam__obj dom, mbx;
} chain;

static void chain_new(chain *k, int long_way) {
  memset(k, 0, sizeof(*k));
  k->s = obspam__mem_store_new();
  cr_assert_not_null(k->s);
  obspam__mem_store_long_way(k->s, long_way);
  k->sub.obj.name = "s";
  k->sub.obj.len = 1;
  k->sub.obj.kind = OBSPAM_SUBSCRIPTION;
  k->dom.name = D;
  k->dom.len = (uint16_t)strlen(D);
  k->dom.kind = OBSPAM_DOMAIN;
  k->dom.parent = &k->sub.obj;
  k->mbx.name = A;
  k->mbx.len = (uint16_t)strlen(A);
  k->mbx.kind = OBSPAM_MAILBOX;
  k->mbx.parent = &k->dom;
}

static obspam__obj *chain_obj(chain *k, int i) {
  return i == 0 ? &k->sub.obj : i == 1 ? &k->dom : &k->mbx;
}

static void chain_free(chain *k) {
  obspam__store_forget(&k->mbx, k->s);
  obspam__store_forget(&k->dom, k->s);
  obspam__store_forget(&k->sub.obj, k->s);
  k->s->ops->destroy(k->s);
}

static uint64_t xorshift(uint64_t *x) {
  *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
  return *x;
}

/* Asserts that the two charges answered alike. */
static void expect_same_answer(const obspam__charge *a, const obspam__charge *b,
                               int step) {
  int i;

  cr_assert(a->t == b->t && a->refuser == b->refuser &&
                a->window == b->window && a->retry_after == b->retry_after,
            "step %d: refuser %d/%d window %d/%d retry %" PRId64 "/%" PRId64,
            step, a->refuser, b->refuser, a->window, b->window, a->retry_after,
            b->retry_after);
  cr_assert(memcmp(a->count, b->count, sizeof(a->count)) == 0 &&
                memcmp(a->wait, b->wait, sizeof(a->wait)) == 0,
            "step %d: counts or waits differ", step);
  for (i = 0; i < a->n; i++) {
    cr_assert(
        a->over[i] == b->over[i] && a->over_window[i] == b->over_window[i] &&
            a->first_exceeded[i] == b->first_exceeded[i],
        "step %d, object %d: over %d/%d", step, i, a->over[i], b->over[i]);
    if (a->first_exceeded[i])
      cr_assert(a->period_sent[i] == b->period_sent[i] &&
                    a->period_refused[i] == b->period_refused[i] &&
                    a->period_start == b->period_start,
                "step %d, object %d: period differs", step, i);
  }
}

/* Asserts that the two stores hold the same for every object: what read
   gives, and every hour of history. */
static void expect_same_state(chain *a, chain *b, int64_t now, int step) {
  int i;

  for (i = 0; i < 3; i++) {
    obspam__reading ra, rb;
    obspam__hour *ha, *hb;
    size_t na, nb;

    a->s->ops->read(a->s, chain_obj(a, i), now, 720, &ra);
    b->s->ops->read(b->s, chain_obj(b, i), now, 720, &rb);
    cr_assert(memcmp(&ra, &rb, sizeof(ra)) == 0,
              "step %d, object %d: count %" PRId64 "/%" PRId64
              " refused %" PRId64 "/%" PRId64,
              step, i, ra.count, rb.count, ra.refused, rb.refused);
    OK(a->s->ops->history(a->s, chain_obj(a, i), NULL, 0, 0, INT64_MAX, 720,
                          &ha, &na));
    OK(b->s->ops->history(b->s, chain_obj(b, i), NULL, 0, 0, INT64_MAX, 720,
                          &hb, &nb));
    cr_assert(na == nb && (na == 0 || memcmp(ha, hb, na * sizeof(*ha)) == 0),
              "step %d, object %d: %zu/%zu hours of history differ", step, i,
              na, nb);
    free(ha);
    free(hb);
  }
}

/* Random traffic through a store that takes the shortcut and one that
   makes every charge the long way: the same answers, the same counters,
   history and notices. Mostly short steps, so that the objects stay warm
   (a flood's refusals and a steady sender's accepts), and now and then a
   step into another minute, hour or notification period, a probe, a
   check, a script, fewer objects, limits that change, or another
   notification period or retention (the long way also works the clock of
   every charge out again). */
Test(windows, warm_shortcut_as_long_way_on_random_traffic) {
  chain fast, slow;
  uint64_t x = 0x2545F4914F6CDD1Dull;
  int64_t t = T0, lim[3][OBSPAM__WINDOWS];
  int step, refused = 0, accepted = 0, i, w;

  chain_new(&fast, 0);
  chain_new(&slow, 1);
  for (step = 0; step < 60000; step++) {
    obspam__charge a, b;
    uint64_t r = xorshift(&x);
    int n = r % 16 == 0 ? 1 + (int)(r >> 4) % 2 : 3;

    if (step % 2000 == 0)
      for (i = 0; i < 3; i++)
        for (w = 0; w < OBSPAM__WINDOWS; w++) {
          uint64_t q = xorshift(&x);

          lim[i][w] = q % 4 == 0 ? OBSPAM_UNLIMITED
                                 : (int64_t)((q >> 2) % (w == 0   ? 60
                                                         : w == 1 ? 1200
                                                                  : 6000));
        }
    t += r % 64 == 0  ? (int64_t)((r >> 8) % 7200)
         : r % 8 == 0 ? (int64_t)((r >> 8) % 90)
                      : (int64_t)((r >> 8) % 3);
    memset(&a, 0, sizeof(a));
    a.n = n;
    for (i = 0; i < n; i++)
      memcpy(a.limit[i], lim[i], sizeof(lim[i]));
    a.t = t;
    a.c = a.recipients = 1 + (int64_t)((r >> 20) % 3);
    a.cap = OBSPAM_UNLIMITED;
    /* Another retention now and then: the store keeps the clock of the
       last charge by its time, period and retention (charge_locked). */
    a.retention = (r >> 52) % 256 == 0 ? 30 : 720;
    a.period = (r >> 24) % 512 == 0 ? 600 : 3600;
    a.probe = (r >> 33) % 32 == 0;
    a.dry = (r >> 38) % 32 == 0;
    if ((r >> 43) % 64 == 0) {
      a.script = "/www/x.php";
      a.script_len = strlen(a.script);
      a.uid = 1000;
    }
    b = a;
    for (i = 0; i < n; i++) {
      a.obj[i] = chain_obj(&fast, i);
      b.obj[i] = chain_obj(&slow, i);
    }
    OK(fast.s->ops->charge(fast.s, &a));
    OK(slow.s->ops->charge(slow.s, &b));
    expect_same_answer(&a, &b, step);
    refused += a.refuser >= 0;
    accepted += a.refuser < 0;
    if (step % 97 == 0)
      expect_same_state(&fast, &slow, t, step);
    if (step % 5000 == 4999) {
      obspam__pending *pa, *pb, *p, *q;

      OK(fast.s->ops->notices(fast.s, t, &pa));
      OK(slow.s->ops->notices(slow.s, t, &pb));
      for (p = pa, q = pb; p != NULL && q != NULL; p = p->next, q = q->next)
        cr_assert(p->kind == q->kind && strcmp(p->name, q->name) == 0 &&
                      p->limit == q->limit && p->window == q->window &&
                      p->sent == q->sent && p->refused == q->refused &&
                      p->exceeded == q->exceeded && p->first == q->first &&
                      p->last == q->last &&
                      p->period_start == q->period_start &&
                      p->period_end == q->period_end,
                  "step %d: notices of %s differ", step, p->name);
      cr_assert(p == NULL && q == NULL, "step %d: notices differ in number",
                step);
      obspam__pending_free(pa);
      obspam__pending_free(pb);
    }
  }
  expect_same_state(&fast, &slow, t, step);
  cr_assert(refused >= 10000 && accepted >= 10000, "%d refused, %d accepted",
            refused, accepted);
  chain_free(&fast);
  chain_free(&slow);
}

/* The hours of history that the ith object of k keeps. */
static size_t chain_hours(chain *k, int i) {
  obspam__hour *h;
  size_t n;

  OK(k->s->ops->history(k->s, chain_obj(k, i), NULL, 0, 0, INT64_MAX, 720, &h,
                        &n));
  free(h);
  return n;
}

/* The store keeps the clock of its last charge (charge_locked): a charge
   of the same second with another retention sweeps the history that this
   retention no longer keeps, as the long way does. The mailbox sends at
   T0; 40 hours later the subscription sends twice in one second, first
   with a retention of 720 hours, which keeps the mailbox's hour, then of
   30, which does not. */
Test(windows, clock_of_one_second_with_another_retention) {
  static const struct {
    int obj;
    int64_t t, retention;
  } steps[] = {{2, T0, 30}, {0, T0 + 40 * 3600, 720}, {0, T0 + 40 * 3600, 30}};
  static const size_t kept[] = {1, 1, 0};
  chain fast, slow, *k[2] = {&fast, &slow};
  int s, j, w;

  chain_new(&fast, 0);
  chain_new(&slow, 1);
  for (s = 0; s < 3; s++) {
    for (j = 0; j < 2; j++) {
      obspam__charge ch;

      memset(&ch, 0, sizeof(ch));
      ch.n = 1;
      ch.obj[0] = chain_obj(k[j], steps[s].obj);
      for (w = 0; w < OBSPAM__WINDOWS; w++)
        ch.limit[0][w] = OBSPAM_UNLIMITED;
      ch.t = steps[s].t;
      ch.c = ch.recipients = 1;
      ch.cap = OBSPAM_UNLIMITED;
      ch.retention = steps[s].retention;
      ch.period = 3600;
      OK(k[j]->s->ops->charge(k[j]->s, &ch));
      cr_assert_eq(ch.refuser, -1, "step %d", s);
      cr_assert_eq(chain_hours(k[j], 2), kept[s], "step %d, %s way", s,
                   j == 0 ? "short" : "long");
    }
    expect_same_state(&fast, &slow, steps[s].t, s);
  }
  chain_free(&fast);
  chain_free(&slow);
}
