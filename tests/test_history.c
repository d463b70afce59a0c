/* SPDX-License-Identifier: MIT */
/* obspam_history and the retention fields of obspam_stats (refused_total,
   last_refused), as the README's "Statistics, reports, notifications,
   snapshots" describes them, through the public API only. */
#include <stdint.h>

#include "testutil.h"

static obspam_engine *e;

/*
 * The fixture tree (everything unlimited unless a test sets a limit):
 *   subscription s1 (uid 1001, scripts allowed)
 *     domain d1.example: a@ (limit 3), b@
 *     domain e1.example: z@
 *   subscription s2 (uid 1002, scripts forbidden)
 *     domain d2.example
 */
TU_ENGINE_SETUP(tu_fixture("history.conf"))

TestSuite(history, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------- */

#define MAXROWS 64

typedef struct rows {
  int n; /* calls, even beyond MAXROWS */
  int64_t r[MAXROWS][3];
} rows;

static void collect(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  rows *x = ud;

  if (x->n < MAXROWS) {
    x->r[x->n][0] = hour;
    x->r[x->n][1] = sent;
    x->r[x->n][2] = refused;
  }
  x->n++;
}

static const char *fmt_rows(char *buf, size_t size, const rows *x) {
  size_t at = 0;
  int i;

  buf[0] = '\0';
  for (i = 0; i < x->n && i < MAXROWS && at < size; i++)
    at += (size_t)snprintf(buf + at, size - at,
                           "{T0%+" PRId64 ", %" PRId64 ", %" PRId64 "} ",
                           x->r[i][0] - T0, x->r[i][1], x->r[i][2]);
  return buf;
}

/* Asserts the exact rows obspam_history gives: {hour, sent, refused}. */
static void expect_hist(int kind, const char *name, int64_t from, int64_t to,
                        const int64_t (*want)[3], int nwant, int line) {
  rows got = {0, {{0}}};
  char buf[2048];
  int rc = obspam_history(e, kind, name, from, to, collect, &got);
  int i, j;

  cr_assert_eq(rc, OBSPAM_OK, "line %d: history(%d, %s) returned %d (%s): %s",
               line, kind, name, rc, obspam_strerror(rc),
               obspam_engine_errmsg(e));
  cr_assert_eq(got.n, nwant,
               "line %d: history(%d, %s, T0%+" PRId64 ", T0%+" PRId64
               ") gave %d rows, expected %d: %s",
               line, kind, name, from - T0, to - T0, got.n, nwant,
               fmt_rows(buf, sizeof buf, &got));
  for (i = 0; i < nwant; i++)
    for (j = 0; j < 3; j++)
      cr_assert_eq(got.r[i][j], want[i][j],
                   "line %d: history(%d, %s, T0%+" PRId64 ", T0%+" PRId64
                   ") row %d field %d is %" PRId64 ", expected %" PRId64
                   "; rows: %s",
                   line, kind, name, from - T0, to - T0, i, j, got.r[i][j],
                   want[i][j], fmt_rows(buf, sizeof buf, &got));
}

/* EXPECT_HIST(kind, name, from, to, {hour, sent, refused}, ...) */
#define EXPECT_HIST(kind, name, from, to, ...)                                 \
  do {                                                                         \
    const int64_t want_[][3] = {__VA_ARGS__};                                  \
    expect_hist((kind), (name), (from), (to), want_,                           \
                (int)(sizeof want_ / sizeof want_[0]), __LINE__);              \
  } while (0)
#define EXPECT_NO_HIST(kind, name, from, to)                                   \
  expect_hist((kind), (name), (from), (to), NULL, 0, __LINE__)

/* Messages of the fixture's engine, asserting the action. */
#define LOGIN(login, rcpt, t, action)                                          \
  SEND_LOGIN(e, (login), NULL, (rcpt), (t), (action))
#define LOGIN_PATH(login, path, rcpt, t, action)                               \
  SEND_LOGIN(e, (login), (path), (rcpt), (t), (action))
#define RUN(uid, hint, path, rcpt, t, action)                                  \
  SEND_SCRIPT(e, (uid), (hint), (path), (rcpt), (t), (action))

static int64_t ignored_calls;
static void count_call(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  (void)hour;
  (void)sent;
  (void)refused;
  (void)ud;
  ignored_calls++;
}

/* Asserts that obspam_history knows no object kind/name. */
static void expect_unknown(int kind, const char *name, int line) {
  int rc = obspam_history(e, kind, name, 0, INT64_MAX, count_call, NULL);

  cr_assert_eq(rc, OBSPAM_ENOTFOUND, "line %d: history of %s: %d", line, name,
               rc);
}
#define EXPECT_UNKNOWN(kind, name) expect_unknown((kind), (name), __LINE__)

/* ---- exact values -------------------------------------------------------- */

/* The traffic of the next tests: hours H0, H1 and H3 with activity, H2
   quiet. a@d1.example has a limit of 3 per 60 minutes. */
static void traffic(void) {
  /* H0: a sends 3, then two attempts are refused (the second in the last
     second of the hour). */
  LOGIN("a@d1.example", 2, T0 + 10, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, T0 + 20, OBSPAM_ACCEPT);
  SEND_LOGINS(e, "a@d1.example", 1, OBSPAM_REFUSE, T0 + 30, T0 + 3599);
  /* H1: the first second of the hour; a's window has emptied. */
  LOGIN("a@d1.example", 1, H1, OBSPAM_ACCEPT);
  LOGIN("b@d1.example", 5, H1 + 100, OBSPAM_ACCEPT);
  /* A login of the hosted domain that is no mailbox: domain and
     subscription only. */
  LOGIN("x@d1.example", 2, H1 + 200, OBSPAM_ACCEPT);
  /* A script with a hint: subscription and domain, never a mailbox. */
  RUN(1001, "d1.example", "/home/s1/cron.sh", 1, H1 + 300, OBSPAM_ACCEPT);
  /* H3 (H2 stays quiet). */
  LOGIN("a@d1.example", 3, H3 + 100, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H3 + 200, OBSPAM_REFUSE);
  LOGIN("a@d1.example", 4, H3 + 300, OBSPAM_REFUSE);
  LOGIN("z@e1.example", 4, H3 + 400, OBSPAM_ACCEPT);
}

Test(history, exact_hourly_values_every_level) {
  traffic();
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", 0, INT64_MAX, {H0, 3, 2},
              {H1, 1, 0}, {H3, 3, 2});
  EXPECT_HIST(OBSPAM_MAILBOX, "b@d1.example", 0, INT64_MAX, {H1, 5, 0});
  EXPECT_HIST(OBSPAM_MAILBOX, "z@e1.example", 0, INT64_MAX, {H3, 4, 0});
  EXPECT_HIST(OBSPAM_DOMAIN, "d1.example", 0, INT64_MAX, {H0, 3, 2}, {H1, 9, 0},
              {H3, 3, 2});
  EXPECT_HIST(OBSPAM_DOMAIN, "e1.example", 0, INT64_MAX, {H3, 4, 0});
  EXPECT_HIST(OBSPAM_SUBSCRIPTION, "s1", 0, INT64_MAX, {H0, 3, 2}, {H1, 9, 0},
              {H3, 7, 2});
  EXPECT_HIST(OBSPAM_SCRIPT, "/home/s1/cron.sh", 0, INT64_MAX, {H1, 1, 0});
  /* Objects without activity: no rows, and no error. */
  EXPECT_NO_HIST(OBSPAM_SUBSCRIPTION, "s2", 0, INT64_MAX);
  EXPECT_NO_HIST(OBSPAM_DOMAIN, "d2.example", 0, INT64_MAX);
}

Test(history, names_are_case_insensitive) {
  traffic();
  EXPECT_HIST(OBSPAM_MAILBOX, "A@D1.Example", 0, INT64_MAX, {H0, 3, 2},
              {H1, 1, 0}, {H3, 3, 2});
  EXPECT_HIST(OBSPAM_DOMAIN, "D1.EXAMPLE", 0, INT64_MAX, {H0, 3, 2}, {H1, 9, 0},
              {H3, 3, 2});
  EXPECT_HIST(OBSPAM_SUBSCRIPTION, "S1", 0, INT64_MAX, {H0, 3, 2}, {H1, 9, 0},
              {H3, 7, 2});
}

Test(history, stats_fields_exact) {
  traffic();
  /* At the last message: a's window holds the 3 of H3 + 100 and the two
     refusals after it. */
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", H3 + 400, 0, 3, 3, 2, 4,
               H3 + 300);
  EXPECT_STATS(e, OBSPAM_DOMAIN, "d1.example", H3 + 400, 1, OBSPAM_UNLIMITED, 3,
               2, 4, H3 + 300);
  EXPECT_STATS(e, OBSPAM_SUBSCRIPTION, "s1", H3 + 400, 1, OBSPAM_UNLIMITED, 7,
               2, 4, H3 + 300);
  EXPECT_STATS(e, OBSPAM_MAILBOX, "b@d1.example", H3 + 400, 1, OBSPAM_UNLIMITED,
               0, 0, 0, 0);
  EXPECT_STATS(e, OBSPAM_MAILBOX, "z@e1.example", H3 + 400, 1, OBSPAM_UNLIMITED,
               4, 0, 0, 0);
  EXPECT_STATS(e, OBSPAM_SUBSCRIPTION, "s2", H3 + 400, 1, OBSPAM_UNLIMITED, 0,
               0, 0, 0);
  /* An hour later the window is empty; the retention (720 hours) still
     holds every refusal. */
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", H4 + 400, 1, 3, 0, 0, 4,
               H3 + 300);
  EXPECT_STATS(e, OBSPAM_SUBSCRIPTION, "s1", H4 + 400, 1, OBSPAM_UNLIMITED, 0,
               0, 4, H3 + 300);
  /* A time before the newest message is read as the newest. */
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", T0, 0, 3, 3, 2, 4, H3 + 300);
}

Test(history, refused_total_counts_attempts_not_recipients) {
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "a@d1.example", OBSPAM_MAILBOX, 0));
  /* Two attempts, of 50 and of 7 recipients: 2 refused. */
  static const int rcpt[] = {50, 7};
  for (int i = 0; i < 2; i++)
    LOGIN("a@d1.example", rcpt[i], T0 + 1 + i, OBSPAM_REFUSE);
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", 0, INT64_MAX, {H0, 0, 2});
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", T0 + 2, 0, 0, 0, 2, 2,
               T0 + 2);
}

/* ---- the range: clock hours overlapping [from, to) ----------------------- */

Test(history, hour_boundaries) {
  traffic();
  /* T0 + 3599 is in H0, T0 + 3600 in H1 (see traffic()). */
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", H0, H0 + 1, {H0, 3, 2});
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", H0 + 3599, H1, {H0, 3, 2});
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", H1, H1 + 1, {H1, 1, 0});
}

Test(history, overlap_rule) {
  traffic();
  /* Two seconds astride the H0/H1 boundary touch both hours. */
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", H1 - 1, H1 + 1, {H0, 3, 2},
              {H1, 1, 0});
  /* to is exclusive: [T0 + 1, H1) is H0 only. */
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", T0 + 1, H1, {H0, 3, 2});
  /* from is inclusive: [H1, ...) excludes H0, whose end is H1. */
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", H1, H3, {H1, 1, 0});
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", H1 + 1, H3 + 1, {H1, 1, 0},
              {H3, 3, 2});
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", H0 + 1800, H3 + 1800, {H0, 3, 2},
              {H1, 1, 0}, {H3, 3, 2});
  /* Only the quiet hour H2. */
  EXPECT_NO_HIST(OBSPAM_MAILBOX, "a@d1.example", H2, H3);
  EXPECT_NO_HIST(OBSPAM_MAILBOX, "a@d1.example", H2 + 1, H2 + 2);
  /* Empty ranges. */
  EXPECT_NO_HIST(OBSPAM_MAILBOX, "a@d1.example", H1, H1);
  EXPECT_NO_HIST(OBSPAM_MAILBOX, "a@d1.example", H3, H0);
  /* The rule is literal, h < to && h + 3600 > from: an empty range inside
     an hour still overlaps that hour. */
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", H3 + 100, H3 + 100, {H3, 3, 2});
  /* Before and after every activity. */
  EXPECT_NO_HIST(OBSPAM_MAILBOX, "a@d1.example", 0, H0);
  EXPECT_NO_HIST(OBSPAM_MAILBOX, "a@d1.example", H4, INT64_MAX);
}

Test(history, oldest_first_and_only_active_hours) {
  int i;

  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "a@d1.example", OBSPAM_MAILBOX,
                      OBSPAM_INHERIT));
  /* Activity in every third hour of two days, i + 1 recipients. */
  for (i = 0; i < 48; i += 3)
    LOGIN("a@d1.example", (uint32_t)(i + 1), T0 + i * 3600 + 7, OBSPAM_ACCEPT);
  EXPECT_HIST(
      OBSPAM_MAILBOX, "a@d1.example", 0, INT64_MAX, {T0, 1, 0},
      {T0 + 3 * 3600, 4, 0}, {T0 + 6 * 3600, 7, 0}, {T0 + 9 * 3600, 10, 0},
      {T0 + 12 * 3600, 13, 0}, {T0 + 15 * 3600, 16, 0}, {T0 + 18 * 3600, 19, 0},
      {T0 + 21 * 3600, 22, 0}, {T0 + 24 * 3600, 25, 0}, {T0 + 27 * 3600, 28, 0},
      {T0 + 30 * 3600, 31, 0}, {T0 + 33 * 3600, 34, 0}, {T0 + 36 * 3600, 37, 0},
      {T0 + 39 * 3600, 40, 0}, {T0 + 42 * 3600, 43, 0},
      {T0 + 45 * 3600, 46, 0});
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", T0 + 4 * 3600, T0 + 13 * 3600,
              {T0 + 6 * 3600, 7, 0}, {T0 + 9 * 3600, 10, 0},
              {T0 + 12 * 3600, 13, 0});
}

/* ---- scripts ------------------------------------------------------------- */

Test(history, scripts) {
  OK(obspam_whitelist_add(e, "192.0.2.0/24"));
  /* H0 */
  RUN(1001, NULL, "/var/www/s1/Mail.php", 3, T0 + 100, OBSPAM_ACCEPT);
  RUN(1001, NULL, "/var/www/s1/Mail.php", 2, T0 + 200, OBSPAM_ACCEPT);
  /* Scripts are forbidden for s2: a refusal of the script and of s2. */
  RUN(1002, NULL, "/var/www/s2/bad.php", 5, T0 + 300, OBSPAM_REFUSE);
  /* A path that came with a login is kept too, accepted or refused. */
  LOGIN_PATH("a@d1.example", "/usr/bin/php-wrapper", 1, T0 + 400,
             OBSPAM_ACCEPT);
  LOGIN_PATH("a@d1.example", "/usr/bin/php-wrapper", 3, T0 + 500,
             OBSPAM_REFUSE);
  /* Messages charged to nothing record no path, except a script's whose
     uid is nobody's: it is reported (below). */
  RUN(4242, NULL, "/var/www/unknown.php", 1, T0 + 600, OBSPAM_UNKNOWN);
  tu_send(e,
          tu_msg(0, "a@d1.example", "a@d1.example", "192.0.2.7", 1, -1, NULL,
                 "/var/www/white.php", T0 + 700),
          OBSPAM_EXEMPT, __LINE__);
  tu_send(e,
          tu_msg(OBSPAM_MSG_MAILING_LIST, "a@d1.example", "a@d1.example",
                 "198.51.100.10", 1, -1, NULL, "/var/www/list.php", T0 + 800),
          OBSPAM_EXEMPT, __LINE__);
  OK(obspam_set_option(e, OBSPAM_OPT_ENABLED, 0));
  RUN(1001, NULL, "/var/www/disabled.php", 1, T0 + 900, OBSPAM_ACCEPT);
  OK(obspam_set_option(e, OBSPAM_OPT_ENABLED, 1));
  /* H1 */
  RUN(1001, "d1.example", "/var/www/s1/Mail.php", 4, H1 + 1, OBSPAM_ACCEPT);
  RUN(1002, "d2.example", "/var/www/s2/bad.php", 1, H1 + 2, OBSPAM_REFUSE);
  /* H2, in messages: one message to 10 recipients is 1. */
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_UNIT, 1));
  RUN(1001, NULL, "/var/www/s1/Mail.php", 10, H2 + 1, OBSPAM_ACCEPT);

  EXPECT_HIST(OBSPAM_SCRIPT, "/var/www/s1/Mail.php", 0, INT64_MAX, {H0, 5, 0},
              {H1, 4, 0}, {H2, 1, 0});
  EXPECT_HIST(OBSPAM_SCRIPT, "/var/www/s1/Mail.php", H1, H1 + 1, {H1, 4, 0});
  EXPECT_HIST(OBSPAM_SCRIPT, "/var/www/s2/bad.php", 0, INT64_MAX, {H0, 0, 1},
              {H1, 0, 1});
  EXPECT_HIST(OBSPAM_SCRIPT, "/usr/bin/php-wrapper", 0, INT64_MAX, {H0, 1, 1});
  /* The refusals were recorded on s2 (and on the hinted domain). */
  EXPECT_HIST(OBSPAM_SUBSCRIPTION, "s2", 0, INT64_MAX, {H0, 0, 1}, {H1, 0, 1});
  EXPECT_HIST(OBSPAM_DOMAIN, "d2.example", 0, INT64_MAX, {H1, 0, 1});
  /* s1: the three script messages and the login's accepted one. */
  EXPECT_HIST(OBSPAM_SUBSCRIPTION, "s1", 0, INT64_MAX, {H0, 6, 1}, {H1, 4, 0},
              {H2, 1, 0});
  EXPECT_HIST(OBSPAM_DOMAIN, "d1.example", 0, INT64_MAX, {H0, 1, 1},
              {H1, 4, 0});

  /* Paths keep their case: a path differing only in case is unknown. */
  EXPECT_UNKNOWN(OBSPAM_SCRIPT, "/var/www/s1/mail.php");
  EXPECT_UNKNOWN(OBSPAM_SCRIPT, "/VAR/WWW/S1/MAIL.PHP");
  EXPECT_HIST(OBSPAM_SCRIPT, "/var/www/unknown.php", 0, INT64_MAX, {H0, 1, 0});
  EXPECT_UNKNOWN(OBSPAM_SCRIPT, "/var/www/white.php");
  EXPECT_UNKNOWN(OBSPAM_SCRIPT, "/var/www/list.php");
  EXPECT_UNKNOWN(OBSPAM_SCRIPT, "/var/www/disabled.php");
  cr_assert_eq(ignored_calls, 0, "the callback ran %" PRId64 " times",
               ignored_calls);
}

Test(history, script_path_control_characters) {
  RUN(1001, NULL,
      "/srv/a\tb\x01"
      "c\x1f\x7f.php",
      2, T0 + 1, OBSPAM_ACCEPT);
  EXPECT_HIST(OBSPAM_SCRIPT, "/srv/a?b?c??.php", 0, INT64_MAX, {H0, 2, 0});
}

/* ---- retention ----------------------------------------------------------- */

Test(history, retention_cutoff) {
  OK(obspam_set_option(e, OBSPAM_OPT_RETENTION_HOURS, 3));
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "a@d1.example", OBSPAM_MAILBOX, 1));
  /* H0: one sent, two refused. */
  LOGIN("a@d1.example", 1, H0 + 100, OBSPAM_ACCEPT);
  SEND_LOGINS(e, "a@d1.example", 1, OBSPAM_REFUSE, H0 + 200, H0 + 300);
  /* H1: one sent, one refused. */
  LOGIN("a@d1.example", 1, H1 + 100, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H1 + 200, OBSPAM_REFUSE);
  /* H2: another mailbox moves the engine's newest time on. */
  LOGIN("b@d1.example", 1, H2 + 100, OBSPAM_ACCEPT);

  /* Newest in H2: the kept hours are H0, H1, H2. */
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", 0, INT64_MAX, {H0, 1, 2},
              {H1, 1, 1});
  EXPECT_HIST(OBSPAM_DOMAIN, "d1.example", 0, INT64_MAX, {H0, 1, 2}, {H1, 1, 1},
              {H2, 1, 0});
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", H2 + 100, 1, 1, 0, 1, 3,
               H1 + 200);
  EXPECT_STATS(e, OBSPAM_DOMAIN, "d1.example", H2 + 100, 1, OBSPAM_UNLIMITED, 1,
               1, 3, H1 + 200);
  /* stats_get reads the retention at max(now, newest); history at the
     newest message time, which has not moved. */
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", H3, 1, 1, 0, 0, 1, H1 + 200);
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", H4, 1, 1, 0, 0, 0, 0);
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", 0, INT64_MAX, {H0, 1, 2},
              {H1, 1, 1});

  /* The last second of H2 changes nothing. */
  LOGIN("b@d1.example", 1, H3 - 1, OBSPAM_ACCEPT);
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", 0, INT64_MAX, {H0, 1, 2},
              {H1, 1, 1});
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", H3 - 1, 1, 1, 0, 0, 3,
               H1 + 200);

  /* The first second of H3: H0 leaves, from history and from the stats. */
  LOGIN("b@d1.example", 1, H3, OBSPAM_ACCEPT);
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", 0, INT64_MAX, {H1, 1, 1});
  EXPECT_NO_HIST(OBSPAM_MAILBOX, "a@d1.example", H0, H1);
  EXPECT_HIST(OBSPAM_DOMAIN, "d1.example", 0, INT64_MAX, {H1, 1, 1}, {H2, 2, 0},
              {H3, 1, 0});
  EXPECT_HIST(OBSPAM_SUBSCRIPTION, "s1", 0, INT64_MAX, {H1, 1, 1}, {H2, 2, 0},
              {H3, 1, 0});
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", H3, 1, 1, 0, 0, 1, H1 + 200);
  /* The window at H3 still holds b's H2 + 100 (minute 121 of T0). */
  EXPECT_STATS(e, OBSPAM_DOMAIN, "d1.example", H3, 1, OBSPAM_UNLIMITED, 3, 0, 1,
               H1 + 200);
  EXPECT_STATS(e, OBSPAM_SUBSCRIPTION, "s1", H3, 1, OBSPAM_UNLIMITED, 3, 0, 1,
               H1 + 200);

  /* H4: H1 leaves too; a has nothing left. */
  LOGIN("b@d1.example", 1, H4 + 100, OBSPAM_ACCEPT);
  EXPECT_NO_HIST(OBSPAM_MAILBOX, "a@d1.example", 0, INT64_MAX);
  EXPECT_HIST(OBSPAM_DOMAIN, "d1.example", 0, INT64_MAX, {H2, 2, 0}, {H3, 1, 0},
              {H4, 1, 0});
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", H4 + 100, 1, 1, 0, 0, 0, 0);
  EXPECT_STATS(e, OBSPAM_DOMAIN, "d1.example", H4 + 100, 1, OBSPAM_UNLIMITED, 1,
               0, 0, 0);
  EXPECT_STATS(e, OBSPAM_SUBSCRIPTION, "s1", H4 + 100, 1, OBSPAM_UNLIMITED, 1,
               0, 0, 0);

  /* a starts again from nothing. */
  LOGIN("a@d1.example", 1, H4 + 200, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 1, H4 + 300, OBSPAM_REFUSE);
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", 0, INT64_MAX, {H4, 1, 1});
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", H4 + 300, 0, 1, 1, 1, 1,
               H4 + 300);
}

Test(history, retention_one_hour_and_scripts) {
  OK(obspam_set_option(e, OBSPAM_OPT_RETENTION_HOURS, 1));
  RUN(1002, NULL, "/tmp/x.sh", 1, H0 + 3000, OBSPAM_REFUSE);
  RUN(1001, NULL, "/tmp/y.sh", 2, H0 + 3001, OBSPAM_ACCEPT);
  EXPECT_HIST(OBSPAM_SCRIPT, "/tmp/x.sh", 0, INT64_MAX, {H0, 0, 1});
  EXPECT_STATS(e, OBSPAM_SUBSCRIPTION, "s2", H0 + 3001, 1, OBSPAM_UNLIMITED, 0,
               1, 1, H0 + 3000);
  /* Retention 1: only the current hour. */
  RUN(1001, NULL, "/tmp/y.sh", 3, H1, OBSPAM_ACCEPT);
  EXPECT_NO_HIST(OBSPAM_SCRIPT, "/tmp/x.sh", 0, INT64_MAX);
  EXPECT_HIST(OBSPAM_SCRIPT, "/tmp/y.sh", 0, INT64_MAX, {H1, 3, 0});
  EXPECT_HIST(OBSPAM_SUBSCRIPTION, "s1", 0, INT64_MAX, {H1, 3, 0});
  EXPECT_NO_HIST(OBSPAM_SUBSCRIPTION, "s2", 0, INT64_MAX);
  /* The refusal of H0 + 3000 is still in the 60-minute window, but no
     longer within the retention. */
  EXPECT_STATS(e, OBSPAM_SUBSCRIPTION, "s2", H1, 1, OBSPAM_UNLIMITED, 0, 1, 0,
               0);
}

/* ---- units --------------------------------------------------------------- */

Test(history, recipients_then_messages) {
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "a@d1.example", OBSPAM_MAILBOX, 2));
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "b@d1.example", OBSPAM_MAILBOX, 100));
  /* H0, recipients (the default): 5 + 7 = 12 on b. */
  LOGIN("b@d1.example", 5, H0 + 1, OBSPAM_ACCEPT);
  LOGIN("b@d1.example", 7, H0 + 2, OBSPAM_ACCEPT);
  /* 3 recipients do not fit a's 2: one refused attempt. */
  LOGIN("a@d1.example", 3, H0 + 3, OBSPAM_REFUSE);
  /* H1, messages: each message is 1. */
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_UNIT, 1));
  LOGIN("a@d1.example", 3, H1 + 1, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 50, H1 + 2, OBSPAM_ACCEPT);
  LOGIN("a@d1.example", 9, H1 + 3, OBSPAM_REFUSE);
  LOGIN("b@d1.example", 5, H1 + 4, OBSPAM_ACCEPT);

  EXPECT_HIST(OBSPAM_MAILBOX, "b@d1.example", 0, INT64_MAX, {H0, 12, 0},
              {H1, 1, 0});
  EXPECT_HIST(OBSPAM_MAILBOX, "a@d1.example", 0, INT64_MAX, {H0, 0, 1},
              {H1, 2, 1});
  EXPECT_HIST(OBSPAM_DOMAIN, "d1.example", 0, INT64_MAX, {H0, 12, 1},
              {H1, 3, 1});
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", H1 + 4, 0, 2, 2, 1, 2,
               H1 + 3);
}

/* ---- objects that come and go -------------------------------------------- */

Test(history, removed_object_is_unknown_and_readded_starts_empty) {
  traffic();
  OK(obspam_remove(e, OBSPAM_MAILBOX, "a@d1.example"));
  EXPECT_UNKNOWN(OBSPAM_MAILBOX, "a@d1.example");
  /* Its parents keep what was charged to them. */
  EXPECT_HIST(OBSPAM_DOMAIN, "d1.example", 0, INT64_MAX, {H0, 3, 2}, {H1, 9, 0},
              {H3, 3, 2});
  OK(obspam_add(e, OBSPAM_MAILBOX, "a@d1.example", NULL));
  EXPECT_NO_HIST(OBSPAM_MAILBOX, "a@d1.example", 0, INT64_MAX);
  EXPECT_STATS(e, OBSPAM_MAILBOX, "a@d1.example", H3 + 400, 1, OBSPAM_UNLIMITED,
               0, 0, 0, 0);

  OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "s1"));
  EXPECT_UNKNOWN(OBSPAM_SUBSCRIPTION, "s1");
  EXPECT_UNKNOWN(OBSPAM_DOMAIN, "d1.example");
  EXPECT_UNKNOWN(OBSPAM_MAILBOX, "b@d1.example");
  cr_assert_eq(ignored_calls, 0, "the callback ran %" PRId64 " times",
               ignored_calls);
}

/* ---- errors -------------------------------------------------------------- */

/* Calls of obspam_history that fail, and the code each gets. */
static const struct {
  int kind;
  const char *name;
  int with_callback;
  int rc;
} bad_history[] = {
    /* Kinds without history (p1 is a plan the test adds). */
    {OBSPAM_SERVER, NULL, 1, OBSPAM_EINVAL},
    {OBSPAM_SERVER, "s1", 1, OBSPAM_EINVAL},
    {OBSPAM_PLAN, "p1", 1, OBSPAM_EINVAL},
    {6, "s1", 1, OBSPAM_EINVAL},
    {-1, "s1", 1, OBSPAM_EINVAL},
    /* Unknown objects; separate namespaces: s1 is no domain, d1.example
       no subscription. */
    {OBSPAM_MAILBOX, "nobody@d1.example", 1, OBSPAM_ENOTFOUND},
    {OBSPAM_DOMAIN, "nowhere.example", 1, OBSPAM_ENOTFOUND},
    {OBSPAM_SUBSCRIPTION, "s9", 1, OBSPAM_ENOTFOUND},
    {OBSPAM_DOMAIN, "s1", 1, OBSPAM_ENOTFOUND},
    {OBSPAM_SUBSCRIPTION, "d1.example", 1, OBSPAM_ENOTFOUND},
    {OBSPAM_SCRIPT, "/no/such/script.php", 1, OBSPAM_ENOTFOUND},
    /* No callback. */
    {OBSPAM_MAILBOX, "a@d1.example", 0, OBSPAM_EINVAL},
    {OBSPAM_SCRIPT, "/home/s1/cron.sh", 0, OBSPAM_EINVAL},
    /* Bad names. */
    {OBSPAM_MAILBOX, NULL, 1, OBSPAM_EINVAL},
    {OBSPAM_DOMAIN, "", 1, OBSPAM_EINVAL},
    {OBSPAM_MAILBOX, "no-at-sign", 1, OBSPAM_EINVAL},
    {OBSPAM_DOMAIN, " d1.example", 1, OBSPAM_EINVAL},
    {OBSPAM_SCRIPT, NULL, 1, OBSPAM_EINVAL}};

Test(history, errors) {
  traffic();
  OK(obspam_add(e, OBSPAM_PLAN, "p1", NULL));
  for (size_t i = 0; i < sizeof bad_history / sizeof bad_history[0]; i++) {
    int rc = obspam_history(
        e, bad_history[i].kind, bad_history[i].name, 0, INT64_MAX,
        bad_history[i].with_callback ? count_call : NULL, NULL);

    cr_assert_eq(rc, bad_history[i].rc, "row %zu (%s): %d, expected %d", i,
                 bad_history[i].name ? bad_history[i].name : "NULL", rc,
                 bad_history[i].rc);
  }
  /* No engine. */
  RC(obspam_history(NULL, OBSPAM_MAILBOX, "a@d1.example", 0, INT64_MAX,
                    count_call, NULL),
     OBSPAM_EINVAL);
  cr_assert_eq(ignored_calls, 0, "the callback ran %" PRId64 " times",
               ignored_calls);
  /* A failure leaves a message. */
  EXPECT_UNKNOWN(OBSPAM_MAILBOX, "nobody@d1.example");
  cr_assert_neq(obspam_engine_errmsg(e)[0], '\0', "no error message");
}

/* The callback gets its user data, once per row. */
typedef struct tally {
  int calls;
  int64_t sent, refused;
} tally;

static void add_up(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  tally *t = ud;

  (void)hour;
  t->calls++;
  t->sent += sent;
  t->refused += refused;
}

Test(history, user_data_passed_through) {
  tally t = {0, 0, 0};

  traffic();
  OK(obspam_history(e, OBSPAM_SUBSCRIPTION, "s1", 0, INT64_MAX, add_up, &t));
  cr_assert_eq(t.calls, 3, "calls = %d", t.calls);
  cr_assert_eq(t.sent, 19, "sent = %" PRId64, t.sent);
  cr_assert_eq(t.refused, 4, "refused = %" PRId64, t.refused);
}
