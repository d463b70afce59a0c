/* SPDX-License-Identifier: MIT */
/* obspam_report: the rows, their order and their fields, the range, the
   retention, and the script table (10,000 paths, least recently used
   dropped first; paths as given, control characters shown as '?'), as
   the README's "Statistics, reports, notifications, snapshots" says. */
#include <stdint.h>
#include <stdlib.h>

#include "testutil.h"

static obspam_engine *e;

/*
 * The fixture tree (everything unlimited unless a test sets a limit):
 *   subscription alpha (uid 1001)
 *     domain alpha.example: a1@ (limit 1), a2@ (limit 1)
 *   subscription beta (uid 1002, scripts forbidden)
 *     domain beta.example: b1@ (limit 2)
 *   subscription gamma (uid 1003)
 *     domain gamma.example
 */
TU_ENGINE_SETUP(tu_fixture("report.conf"))

TestSuite(report, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------- */

/* One row as the callback saw it, with its own copy of the name. */
typedef struct row {
  int kind;
  char *name;
  int64_t sent, refused, exceeded, first, last;
} row;

typedef struct rows {
  size_t n, cap;
  row *r;
  int bad_size; /* a row whose struct_size was wrong */
} rows;

static void collect(const obspam_report_row *in, void *ud) {
  rows *x = ud;

  if (in->struct_size != sizeof(obspam_report_row))
    x->bad_size = 1;
  if (x->n == x->cap) {
    x->cap = x->cap ? 2 * x->cap : 16;
    x->r = realloc(x->r, x->cap * sizeof(*x->r));
    cr_assert_not_null(x->r, "out of memory");
  }
  x->r[x->n].kind = in->kind;
  x->r[x->n].name = strdup(in->name != NULL ? in->name : "(NULL)");
  cr_assert_not_null(x->r[x->n].name, "out of memory");
  x->r[x->n].sent = in->sent;
  x->r[x->n].refused = in->refused;
  x->r[x->n].exceeded = in->exceeded;
  x->r[x->n].first = in->first_refused;
  x->r[x->n].last = in->last_refused;
  x->n++;
}

static void rows_free(rows *x) {
  size_t i;

  for (i = 0; i < x->n; i++)
    free(x->r[i].name);
  free(x->r);
  x->r = NULL;
  x->n = x->cap = 0;
}

static rows report(int64_t from, int64_t to, int line) {
  rows x = {0, 0, NULL, 0};
  int rc = obspam_report(e, from, to, collect, &x);

  cr_assert_eq(rc, OBSPAM_OK, "line %d: report returned %d (%s): %s", line, rc,
               obspam_strerror(rc), obspam_engine_errmsg(e));
  cr_assert_eq(x.bad_size, 0, "line %d: a row's struct_size is not %zu", line,
               sizeof(obspam_report_row));
  return x;
}

static void fmt_rows(char *buf, size_t size, const rows *x) {
  size_t at = 0, i;

  buf[0] = '\0';
  for (i = 0; i < x->n && at < size; i++)
    at += (size_t)snprintf(buf + at, size - at,
                           "\n  {%d, \"%.40s\", %" PRId64 ", %" PRId64
                           ", %" PRId64 ", T0%+" PRId64 ", T0%+" PRId64 "}",
                           x->r[i].kind, x->r[i].name, x->r[i].sent,
                           x->r[i].refused, x->r[i].exceeded,
                           x->r[i].first - T0, x->r[i].last - T0);
}

/* A wanted row; first and last are absolute times (0: none). */
typedef struct want {
  int kind;
  const char *name;
  int64_t sent, refused, exceeded, first, last;
} want;

static void expect_report(int64_t from, int64_t to, const want *w, size_t nw,
                          int line) {
  rows x = report(from, to, line);
  char buf[4096];
  size_t i;

  fmt_rows(buf, sizeof buf, &x);
  cr_assert_eq(x.n, nw,
               "line %d: report(T0%+" PRId64 ", T0%+" PRId64
               ") gave %zu rows, expected %zu:%s",
               line, from - T0, to - T0, x.n, nw, buf);
  for (i = 0; i < nw; i++) {
    const row *g = &x.r[i];

    cr_assert(g->kind == w[i].kind && strcmp(g->name, w[i].name) == 0 &&
                  g->sent == w[i].sent && g->refused == w[i].refused &&
                  g->exceeded == w[i].exceeded && g->first == w[i].first &&
                  g->last == w[i].last,
              "line %d: row %zu is {%d, \"%s\", %" PRId64 ", %" PRId64
              ", %" PRId64 ", %" PRId64 ", %" PRId64 "}, expected {%d, "
              "\"%s\", %" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
              ", %" PRId64 "}; all rows:%s",
              line, i, g->kind, g->name, g->sent, g->refused, g->exceeded,
              g->first, g->last, w[i].kind, w[i].name, w[i].sent, w[i].refused,
              w[i].exceeded, w[i].first, w[i].last, buf);
  }
  rows_free(&x);
}

/* EXPECT_REPORT(from, to, {kind, name, sent, refused, exceeded, first,
   last}, ...) */
#define EXPECT_REPORT(from, to, ...)                                           \
  do {                                                                         \
    const want want_[] = {__VA_ARGS__};                                        \
    expect_report((from), (to), want_, sizeof want_ / sizeof want_[0],         \
                  __LINE__);                                                   \
  } while (0)
#define EXPECT_EMPTY_REPORT(from, to)                                          \
  expect_report((from), (to), NULL, 0, __LINE__)

/* Messages of the fixture's engine, asserting the action. */
#define LOGIN(login, rcpt, t, action)                                          \
  SEND_LOGIN(e, (login), NULL, (rcpt), (t), (action))
#define RUN(uid, hint, path, rcpt, t, action)                                  \
  SEND_SCRIPT(e, (uid), (hint), (path), (rcpt), (t), (action))

static int64_t hist_sent, hist_refused, hist_rows;
static void hist_cb(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  (void)hour;
  (void)ud;
  hist_rows++;
  hist_sent += sent;
  hist_refused += refused;
}

/* obspam_history of a script path: its return code, and its rows summed
   into hist_rows, hist_sent and hist_refused. */
static int script_history(const char *path) {
  hist_rows = hist_sent = hist_refused = 0;
  return obspam_history(e, OBSPAM_SCRIPT, path, 0, INT64_MAX, hist_cb, NULL);
}

/* ---- the traffic of the order tests -------------------------------------- */

static void traffic(void) {
  /* H0 */
  LOGIN("b1@beta.example", 2, T0 + 30, OBSPAM_ACCEPT);
  LOGIN("a1@alpha.example", 1, T0 + 60, OBSPAM_ACCEPT);
  SEND_LOGINS(e, "a1@alpha.example", 1, OBSPAM_REFUSE, T0 + 120, T0 + 180,
              T0 + 240);
  LOGIN("a2@alpha.example", 1, T0 + 300, OBSPAM_ACCEPT);
  LOGIN("a2@alpha.example", 1, T0 + 360, OBSPAM_REFUSE);
  /* beta may not run scripts: refusals of beta (and of the hinted
     domain) and of the script. */
  RUN(1002, "beta.example", "/srv/beta/Send.php", 1, T0 + 400, OBSPAM_REFUSE);
  RUN(1002, NULL, "/srv/beta/Send.php", 1, T0 + 500, OBSPAM_REFUSE);
  /* gamma's scripts send freely. */
  RUN(1003, NULL, "/srv/gamma/a.php", 5, T0 + 600, OBSPAM_ACCEPT);
  RUN(1003, NULL, "/srv/gamma/b.php", 5, T0 + 700, OBSPAM_ACCEPT);
  RUN(1003, NULL, "/srv/gamma/c.php", 7, T0 + 800, OBSPAM_ACCEPT);
  RUN(1003, "gamma.example", "/srv/gamma/d.php", 1, T0 + 900, OBSPAM_ACCEPT);
  /* H1: a1's window is empty again (its message of T0 + 60 left it at
     T0 + 3660). */
  LOGIN("a1@alpha.example", 1, H1 + 60, OBSPAM_ACCEPT);
  LOGIN("a1@alpha.example", 1, H1 + 100, OBSPAM_REFUSE);
}

/* ---- order and fields ---------------------------------------------------- */

/* What traffic() leaves in the report of H0 alone, and of H0 and H1:
   first the objects that went over their own limit, most such attempts
   first (alpha and its domain, unlimited, were only refused because of
   a1@ and a2@; beta.example only because beta's scripts are forbidden),
   with the first and last of those attempts; then every script with
   activity, most messages sent first, then most refused. */
static const want hour_h0[] = {
    {OBSPAM_MAILBOX, "a1@alpha.example", 1, 3, 3, T0 + 120, T0 + 240},
    {OBSPAM_SUBSCRIPTION, "beta", 2, 2, 2, T0 + 400, T0 + 500},
    {OBSPAM_MAILBOX, "a2@alpha.example", 1, 1, 1, T0 + 360, T0 + 360},
    {OBSPAM_SCRIPT, "/srv/gamma/c.php", 7, 0, 0, 0, 0},
    {OBSPAM_SCRIPT, "/srv/gamma/a.php", 5, 0, 0, 0, 0},
    {OBSPAM_SCRIPT, "/srv/gamma/b.php", 5, 0, 0, 0, 0},
    {OBSPAM_SCRIPT, "/srv/gamma/d.php", 1, 0, 0, 0, 0},
    {OBSPAM_SCRIPT, "/srv/beta/Send.php", 0, 2, 0, T0 + 400, T0 + 500}};

/* Both hours: H0's rows, but for a1@'s, which sums both hours, its first
   attempt from H0 and its last from H1. */
#define NROWS (sizeof hour_h0 / sizeof hour_h0[0])
static want both_hours[NROWS];

static void both_hours_rows(void) {
  memcpy(both_hours, hour_h0, sizeof hour_h0);
  both_hours[0] =
      (want){OBSPAM_MAILBOX, "a1@alpha.example", 2, 4, 4, T0 + 120, H1 + 100};
}

#define EXPECT_ROWS(from, to, rows)                                            \
  expect_report((from), (to), (rows), sizeof(rows) / sizeof((rows)[0]),        \
                __LINE__)

Test(report, rows_and_order_one_hour) {
  traffic();
  EXPECT_ROWS(H0, H1, hour_h0);
}

Test(report, ranges) {
  traffic();
  /* H1 alone. */
  EXPECT_REPORT(
      H1, H2,
      {OBSPAM_MAILBOX, "a1@alpha.example", 1, 1, 1, H1 + 100, H1 + 100});
  /* Both hours: sums; first refusal from H0, last from H1. */
  both_hours_rows();
  EXPECT_ROWS(H0, H2, both_hours);
  /* The same through every range whose hours are H0 and H1: whole clock
     hours, whatever seconds of them the range covers. */
  EXPECT_ROWS(H1 - 1, H1 + 1, both_hours);
  EXPECT_ROWS(0, INT64_MAX, both_hours);
  /* A range inside H0 that misses every refusal still covers all of H0. */
  EXPECT_ROWS(T0 + 1000, T0 + 1001, hour_h0);
  /* Ranges without activity. */
  EXPECT_EMPTY_REPORT(H2, H3);
  EXPECT_EMPTY_REPORT(0, T0);
  EXPECT_EMPTY_REPORT(H1, H1);
  EXPECT_EMPTY_REPORT(H2, H0);
}

Test(report, nothing_to_report) {
  /* A new engine, and one whose tree has never sent. */
  EXPECT_EMPTY_REPORT(0, INT64_MAX);
  EXPECT_EMPTY_REPORT(H0, H1);
}

Test(report, objects_without_refusals_are_not_listed) {
  /* Only accepted mail, no script path: nothing to report. */
  LOGIN("a1@alpha.example", 1, T0 + 1, OBSPAM_ACCEPT);
  LOGIN("b1@beta.example", 2, T0 + 2, OBSPAM_ACCEPT);
  RUN(1003, "gamma.example", NULL, 4, T0 + 3, OBSPAM_ACCEPT);
  EXPECT_EMPTY_REPORT(0, INT64_MAX);
  /* A script without a path sent nothing to list either; one with a path
     is listed even without refusals. */
  RUN(1003, NULL, "/x.php", 3, T0 + 4, OBSPAM_ACCEPT);
  EXPECT_REPORT(0, INT64_MAX, {OBSPAM_SCRIPT, "/x.php", 3, 0, 0, 0, 0});
}

Test(report, ties_same_name_by_kind) {
  /* A subscription and its domain of the same name, both over their
     limit together: the subscription (kind 2) comes before the domain
     (kind 3). */
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "same.example", NULL));
  OK(obspam_add(e, OBSPAM_DOMAIN, "same.example", "same.example"));
  OK(obspam_set_limit(e, OBSPAM_DOMAIN, "same.example", OBSPAM_DOMAIN, 0));
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "same.example",
                      OBSPAM_SUBSCRIPTION, 0));
  LOGIN("x@same.example", 1, T0 + 10, OBSPAM_REFUSE);
  LOGIN("y@same.example", 1, T0 + 20, OBSPAM_REFUSE);
  EXPECT_REPORT(
      0, INT64_MAX,
      {OBSPAM_SUBSCRIPTION, "same.example", 0, 2, 2, T0 + 10, T0 + 20},
      {OBSPAM_DOMAIN, "same.example", 0, 2, 2, T0 + 10, T0 + 20});
}

Test(report, ties_by_name_use_bytes) {
  /* strcmp order: digits and '-' before letters, shorter prefix first. */
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "zz", NULL));
  OK(obspam_add(e, OBSPAM_DOMAIN, "b.example", "zz"));
  OK(obspam_add(e, OBSPAM_DOMAIN, "b-c.example", "zz"));
  OK(obspam_add(e, OBSPAM_DOMAIN, "b0.example", "zz"));
  OK(obspam_add(e, OBSPAM_DOMAIN, "ba.example", "zz"));
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "zz", OBSPAM_DOMAIN, 0));
  LOGIN("ba.example", 1, T0 + 1, OBSPAM_REFUSE);
  LOGIN("b0.example", 1, T0 + 2, OBSPAM_REFUSE);
  LOGIN("b.example", 1, T0 + 3, OBSPAM_REFUSE);
  LOGIN("b-c.example", 1, T0 + 4, OBSPAM_REFUSE);
  /* zz itself (unlimited) was only refused: it is not listed. */
  EXPECT_REPORT(0, INT64_MAX,
                {OBSPAM_DOMAIN, "b-c.example", 0, 1, 1, T0 + 4, T0 + 4},
                {OBSPAM_DOMAIN, "b.example", 0, 1, 1, T0 + 3, T0 + 3},
                {OBSPAM_DOMAIN, "b0.example", 0, 1, 1, T0 + 2, T0 + 2},
                {OBSPAM_DOMAIN, "ba.example", 0, 1, 1, T0 + 1, T0 + 1});
}

Test(report, script_refusals_by_limit) {
  /* A script of alpha with a limit on its subscription: refused by the
     limit, not by a ban; the script row counts it. The subscription comes
     first (it went over its limit), then the scripts by messages sent. */
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "alpha", OBSPAM_SUBSCRIPTION, 3));
  RUN(1001, NULL, "/home/alpha/cron.sh", 2, T0 + 10, OBSPAM_ACCEPT);
  RUN(1001, NULL, "/home/alpha/cron.sh", 2, T0 + 20, OBSPAM_REFUSE);
  RUN(1001, NULL, "/home/alpha/other.sh", 1, T0 + 30, OBSPAM_ACCEPT);
  RUN(1001, NULL, "/home/alpha/cron.sh", 5, T0 + 40, OBSPAM_REFUSE);
  EXPECT_REPORT(
      0, INT64_MAX, {OBSPAM_SUBSCRIPTION, "alpha", 3, 2, 2, T0 + 20, T0 + 40},
      {OBSPAM_SCRIPT, "/home/alpha/cron.sh", 2, 2, 0, T0 + 20, T0 + 40},
      {OBSPAM_SCRIPT, "/home/alpha/other.sh", 1, 0, 0, 0, 0});
}

Test(report, units) {
  /* In messages, sent counts messages; refused always counts attempts. */
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_UNIT, 1));
  RUN(1003, NULL, "/m.php", 40, T0 + 1, OBSPAM_ACCEPT);
  RUN(1003, NULL, "/m.php", 40, T0 + 2, OBSPAM_ACCEPT);
  RUN(1003, NULL, "/n.php", 1, T0 + 3, OBSPAM_ACCEPT);
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_UNIT, 0));
  RUN(1003, NULL, "/n.php", 2, T0 + 4, OBSPAM_ACCEPT);
  EXPECT_REPORT(0, INT64_MAX, {OBSPAM_SCRIPT, "/n.php", 3, 0, 0, 0, 0},
                {OBSPAM_SCRIPT, "/m.php", 2, 0, 0, 0, 0});
}

/* ---- retention ----------------------------------------------------------- */

Test(report, retention_cutoff) {
  OK(obspam_set_option(e, OBSPAM_OPT_RETENTION_HOURS, 2));
  LOGIN("a1@alpha.example", 1, H0 + 10, OBSPAM_ACCEPT);
  LOGIN("a1@alpha.example", 1, H0 + 20, OBSPAM_REFUSE);
  RUN(1003, NULL, "/old.php", 1, H0 + 30, OBSPAM_ACCEPT);
  LOGIN("a2@alpha.example", 1, H1 + 10, OBSPAM_ACCEPT);
  LOGIN("a2@alpha.example", 1, H1 + 20, OBSPAM_REFUSE);
  /* Newest in H1: H0 and H1 are kept. */
  EXPECT_REPORT(0, INT64_MAX,
                {OBSPAM_MAILBOX, "a1@alpha.example", 1, 1, 1, H0 + 20, H0 + 20},
                {OBSPAM_MAILBOX, "a2@alpha.example", 1, 1, 1, H1 + 20, H1 + 20},
                {OBSPAM_SCRIPT, "/old.php", 1, 0, 0, 0, 0});
  /* Newest in H2: H0 has left. */
  RUN(1003, NULL, "/new.php", 1, H2, OBSPAM_ACCEPT);
  EXPECT_REPORT(0, INT64_MAX,
                {OBSPAM_MAILBOX, "a2@alpha.example", 1, 1, 1, H1 + 20, H1 + 20},
                {OBSPAM_SCRIPT, "/new.php", 1, 0, 0, 0, 0});
  EXPECT_EMPTY_REPORT(H0, H1);
}

/* ---- script paths -------------------------------------------------------- */

Test(report, path_case_and_control_characters) {
  char longpath[1501], cut[1025];

  RUN(1003, NULL, "/Var/WWW/Index.PHP", 2, T0 + 1, OBSPAM_ACCEPT);
  RUN(1003, NULL,
      "/srv/a\tb\x01"
      "c\x1f\x7f.php",
      3, T0 + 2, OBSPAM_ACCEPT);
  /* A control character in the middle and one at the end. */
  RUN(1003, NULL, "/srv/x\ny\r", 4, T0 + 3, OBSPAM_ACCEPT);
  EXPECT_REPORT(0, INT64_MAX, {OBSPAM_SCRIPT, "/srv/x?y?", 4, 0, 0, 0, 0},
                {OBSPAM_SCRIPT, "/srv/a?b?c??.php", 3, 0, 0, 0, 0},
                {OBSPAM_SCRIPT, "/Var/WWW/Index.PHP", 2, 0, 0, 0, 0});
  /* The same path in another case is another script. */
  RUN(1003, NULL, "/var/www/index.php", 1, T0 + 4, OBSPAM_ACCEPT);
  EXPECT_REPORT(0, INT64_MAX, {OBSPAM_SCRIPT, "/srv/x?y?", 4, 0, 0, 0, 0},
                {OBSPAM_SCRIPT, "/srv/a?b?c??.php", 3, 0, 0, 0, 0},
                {OBSPAM_SCRIPT, "/Var/WWW/Index.PHP", 2, 0, 0, 0, 0},
                {OBSPAM_SCRIPT, "/var/www/index.php", 1, 0, 0, 0, 0});
  cr_assert_eq(script_history("/Var/WWW/Index.PHP"), OBSPAM_OK, "%s",
               obspam_engine_errmsg(e));
  cr_assert_eq(hist_sent, 2, "sent %" PRId64, hist_sent);
  cr_assert_eq(script_history("/srv/a?b?c??.php"), OBSPAM_OK, "%s",
               obspam_engine_errmsg(e));
  cr_assert_eq(hist_sent, 3, "sent %" PRId64, hist_sent);

  /* A path longer than 1024 bytes is cut to 1024. */
  memset(longpath, 'p', sizeof longpath - 1);
  longpath[0] = '/';
  longpath[sizeof longpath - 1] = '\0';
  memcpy(cut, longpath, 1024);
  cut[1024] = '\0';
  RUN(1003, NULL, longpath, 9, T0 + 5, OBSPAM_ACCEPT);
  EXPECT_REPORT(0, INT64_MAX, {OBSPAM_SCRIPT, cut, 9, 0, 0, 0, 0},
                {OBSPAM_SCRIPT, "/srv/x?y?", 4, 0, 0, 0, 0},
                {OBSPAM_SCRIPT, "/srv/a?b?c??.php", 3, 0, 0, 0, 0},
                {OBSPAM_SCRIPT, "/Var/WWW/Index.PHP", 2, 0, 0, 0, 0},
                {OBSPAM_SCRIPT, "/var/www/index.php", 1, 0, 0, 0, 0});
  cr_assert_eq(script_history(cut), OBSPAM_OK, "%s", obspam_engine_errmsg(e));
  cr_assert_eq(hist_rows, 1, "rows %" PRId64, hist_rows);
  cr_assert_eq(hist_sent, 9, "sent %" PRId64, hist_sent);
  /* Another path with the same first 1024 bytes is the same script. */
  longpath[1400] = 'q';
  RUN(1003, NULL, longpath, 1, T0 + 6, OBSPAM_ACCEPT);
  cr_assert_eq(script_history(cut), OBSPAM_OK, "%s", obspam_engine_errmsg(e));
  cr_assert_eq(hist_sent, 10, "sent %" PRId64, hist_sent);
}

/* The path of script i of the LRU test. */
static const char *lru_path(char *buf, int i) {
  snprintf(buf, 32, "/p/%05d.php", i);
  return buf;
}

Test(report, script_table_lru_limit, .timeout = 120) {
  char path[32];
  rows x;
  size_t i;
  int k;

  /* 10,000 paths: the table is full. */
  for (k = 0; k < 10000; k++)
    RUN(1003, NULL, lru_path(path, k), 1, T0 + 1, OBSPAM_ACCEPT);
  x = report(0, INT64_MAX, __LINE__);
  cr_assert_eq(x.n, 10000, "%zu rows", x.n);
  rows_free(&x);
  /* Path 0 is used again, so path 1 is now the least recently used. */
  RUN(1003, NULL, lru_path(path, 0), 1, T0 + 2, OBSPAM_ACCEPT);
  /* The 10,001st path drops it. */
  RUN(1003, NULL, lru_path(path, 10000), 1, T0 + 3, OBSPAM_ACCEPT);

  cr_assert_eq(script_history(lru_path(path, 1)), OBSPAM_ENOTFOUND,
               "the least recently used path is still known");
  cr_assert_eq(script_history(lru_path(path, 0)), OBSPAM_OK,
               "the path used again was dropped: %s", obspam_engine_errmsg(e));
  cr_assert_eq(hist_sent, 2, "sent %" PRId64, hist_sent);
  cr_assert_eq(script_history(lru_path(path, 10000)), OBSPAM_OK, "%s",
               obspam_engine_errmsg(e));
  cr_assert_eq(hist_sent, 1, "sent %" PRId64, hist_sent);

  /* The report: path 0 (2 sent) first, then 2 .. 10000 by name. (Only
     paths 0 and 10000, the two most recently used, were queried, so the
     order of use stays 2, 3, ..., 9999, 0, 10000 whether or not a query
     counts as a use.) */
  x = report(0, INT64_MAX, __LINE__);
  cr_assert_eq(x.n, 10000, "%zu rows", x.n);
  cr_assert_str_eq(x.r[0].name, "/p/00000.php", "row 0 is %s", x.r[0].name);
  cr_assert_eq(x.r[0].sent, 2, "row 0 sent %" PRId64, x.r[0].sent);
  for (i = 1; i < x.n; i++) {
    lru_path(path, (int)i + 1);
    cr_assert_str_eq(x.r[i].name, path, "row %zu is %s, expected %s", i,
                     x.r[i].name, path);
    cr_assert_eq(x.r[i].kind, OBSPAM_SCRIPT, "row %zu kind %d", i, x.r[i].kind);
    cr_assert_eq(x.r[i].sent, 1, "row %zu sent %" PRId64, i, x.r[i].sent);
    cr_assert_eq(x.r[i].refused, 0, "row %zu refused %" PRId64, i,
                 x.r[i].refused);
  }
  rows_free(&x);

  /* The dropped path comes back from zero and drops the next least
     recently used one, path 2. */
  RUN(1003, NULL, lru_path(path, 1), 1, T0 + 4, OBSPAM_ACCEPT);
  cr_assert_eq(script_history(lru_path(path, 1)), OBSPAM_OK, "%s",
               obspam_engine_errmsg(e));
  cr_assert_eq(hist_sent, 1, "sent %" PRId64, hist_sent);
  cr_assert_eq(script_history(lru_path(path, 2)), OBSPAM_ENOTFOUND,
               "path 2 should have been dropped");
  cr_assert_eq(script_history(lru_path(path, 3)), OBSPAM_OK, "%s",
               obspam_engine_errmsg(e));
}

Test(report, refused_scripts_count_as_used) {
  char path[32];
  int k;

  /* A refusal uses a path as much as a sent message does. */
  for (k = 0; k < 10000; k++)
    RUN(1003, NULL, lru_path(path, k), 1, T0 + 1, OBSPAM_ACCEPT);
  RUN(1002, NULL, lru_path(path, 0), 1, T0 + 2, OBSPAM_REFUSE);
  RUN(1003, NULL, lru_path(path, 10000), 1, T0 + 3, OBSPAM_ACCEPT);
  cr_assert_eq(script_history(lru_path(path, 0)), OBSPAM_OK, "%s",
               obspam_engine_errmsg(e));
  cr_assert_eq(hist_sent, 1, "sent %" PRId64, hist_sent);
  cr_assert_eq(hist_refused, 1, "refused %" PRId64, hist_refused);
  cr_assert_eq(script_history(lru_path(path, 1)), OBSPAM_ENOTFOUND,
               "path 1 should have been dropped");
}

/* ---- errors and the callback --------------------------------------------- */

static int calls;
static void count_call(const obspam_report_row *r, void *ud) {
  (void)r;
  (void)ud;
  calls++;
}

Test(report, errors) {
  traffic();
  RC(obspam_report(e, 0, INT64_MAX, NULL, NULL), OBSPAM_EINVAL);
  cr_assert_neq(obspam_engine_errmsg(e)[0], '\0', "no error message");
  RC(obspam_report(NULL, 0, INT64_MAX, count_call, NULL), OBSPAM_EINVAL);
  cr_assert_eq(calls, 0, "the callback ran %d times", calls);
}

typedef struct tally {
  int calls;
  int64_t refused;
} tally;

static void add_up(const obspam_report_row *r, void *ud) {
  tally *t = ud;

  t->calls++;
  t->refused += r->refused;
}

Test(report, user_data_passed_through) {
  tally t = {0, 0};

  traffic();
  OK(obspam_report(e, H0, H1, add_up, &t));
  cr_assert_eq(t.calls, 8, "calls = %d", t.calls);
  cr_assert_eq(t.refused, 3 + 2 + 1 + 2, "refused = %" PRId64, t.refused);
}

/* The forwards and list deliveries of one row, by name. */
typedef struct marks {
  const char *name;
  int kind;
  int found;
  int64_t sent, forwarded, lists;
} marks;

static void find_marks(const obspam_report_row *r, void *ud) {
  marks *m = ud;

  if (r->kind == m->kind && strcmp(r->name, m->name) == 0) {
    m->found++;
    m->sent = r->sent;
    m->forwarded = r->forwarded;
    m->lists = r->list_deliveries;
  }
}

/* Asserts that the report (top: the top senders of kind) lists name found
   times (0 or 1), with these counts (0 where it is not listed). */
static void expect_marks(int top, int kind, const char *name, int found,
                         int64_t sent, int64_t forwarded, int64_t lists,
                         int line) {
  marks m = {name, kind, 0, 0, 0, 0};

  if (top)
    OK(obspam_top(e, kind, H0, H1, 0, find_marks, &m));
  else
    OK(obspam_report(e, H0, H1, find_marks, &m));
  cr_assert_eq(m.found, found, "line %d: %s listed %d times", line, name,
               m.found);
  cr_assert(m.sent == sent && m.forwarded == forwarded && m.lists == lists,
            "line %d: %s sent %" PRId64 " forwarded %" PRId64 " lists %" PRId64,
            line, name, m.sent, m.forwarded, m.lists);
}

#define EXPECT_ROW_MARKS(top, kind, name, found, sent, forwarded, lists)       \
  expect_marks((top), (kind), (name), (found), (sent), (forwarded), (lists),   \
               __LINE__)

/* Forwards and list deliveries are counted in the rows of reports and
   top senders (1.4); they change neither which objects a report lists nor
   their order. An exempt list delivery charges nothing: an object with
   nothing else sent is no top sender. */
Test(report, forwards_and_list_deliveries) {
  obspam_message fw =
      tu_msg(OBSPAM_MSG_FORWARD_REMOTE, NULL, "a1@alpha.example", "192.0.2.7",
             1, -1, NULL, NULL, T0 + 10);
  obspam_message ls = tu_msg(OBSPAM_MSG_MAILING_LIST, NULL, "a2@alpha.example",
                             NULL, 4, -1, NULL, NULL, T0 + 20);
  obspam_verdict v;

  v = DECIDE(e, &fw);
  EXPECT_ACTION(v, OBSPAM_ACCEPT);
  v = DECIDE(e, &ls);
  EXPECT_ACTION(v, OBSPAM_EXEMPT);
  LOGIN("a1@alpha.example", 1, T0 + 30, OBSPAM_REFUSE);
  EXPECT_ROW_MARKS(0, OBSPAM_MAILBOX, "a1@alpha.example", 1, 1, 1, 0);
  /* a2 never went over its limit, and sent nothing. */
  EXPECT_ROW_MARKS(0, OBSPAM_MAILBOX, "a2@alpha.example", 0, 0, 0, 0);
  EXPECT_ROW_MARKS(1, OBSPAM_SUBSCRIPTION, "alpha", 1, 1, 1, 4);
  EXPECT_ROW_MARKS(1, OBSPAM_MAILBOX, "a2@alpha.example", 0, 0, 0, 0);
  EXPECT_ROWS(H0, H1,
              ((const want[]){{OBSPAM_MAILBOX, "a1@alpha.example", 1, 1, 1,
                               T0 + 30, T0 + 30}}));
}
