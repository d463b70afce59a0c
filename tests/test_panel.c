/* SPDX-License-Identifier: MIT */
/*
 * What a hosting panel asks of the library: obspam_enumerate (name order,
 * parents, the active flag, paging, errors), obspam_top, obspam_reset and
 * the subscription charged for unknown uids, with exact values; the
 * name order that enumeration pages through, against a model, after loads
 * and after thousands of additions and removals.
 */
#include <stdlib.h>

#include "engine.h"
#include "testutil.h"

static obspam_engine *e;

static const char CONF[] = "plan basic\n"
                           "subscription acme plan=basic uid=1001 mailbox=5\n"
                           "subscription zeta uid=1002\n"
                           "domain b.test subscription=acme\n"
                           "domain a.test subscription=acme\n"
                           "domain z.test subscription=zeta\n"
                           "mailbox c@a.test\n"
                           "mailbox a@a.test\n"
                           "mailbox b@b.test\n"
                           "mailbox y@z.test\n";

TU_ENGINE_SETUP(tu_new_conf(CONF))

/* The names an enumeration gave, joined by blanks, with each one's
   status count after a colon. */
typedef struct seen {
  char text[65536];
  int n, stop_after;
} seen;

static int collect(int kind, const char *name, const obspam_stats *st,
                   void *ud) {
  seen *s = ud;
  size_t len = strlen(s->text);

  (void)kind;
  snprintf(s->text + len, sizeof(s->text) - len, "%s%s:%" PRId64,
           len ? " " : "", name, st->count);
  s->n++;
  return s->stop_after != 0 && s->n >= s->stop_after;
}

static void send_as(const char *login, uint32_t rcpt, int64_t t) {
  obspam_message m =
      tu_msg(0, login, NULL, "192.0.2.1", rcpt, -1, NULL, NULL, t);
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  OK(obspam_decide(e, &m, &v));
}

Test(enumerate, every_kind_in_name_order, .init = setup, .fini = teardown) {
  seen s = {{0}, 0, 0};

  send_as("a@a.test", 2, T0);
  OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, NULL, 0, T0, collect, &s));
  cr_assert_str_eq(s.text, "a@a.test:2 b@b.test:0 c@a.test:0 y@z.test:0");
  memset(&s, 0, sizeof(s));
  OK(obspam_enumerate(e, OBSPAM_DOMAIN, NULL, 0, "", 0, T0, collect, &s));
  cr_assert_str_eq(s.text, "a.test:2 b.test:0 z.test:0");
  memset(&s, 0, sizeof(s));
  OK(obspam_enumerate(e, OBSPAM_SUBSCRIPTION, NULL, 0, NULL, 0, T0, collect,
                      &s));
  cr_assert_str_eq(s.text, "acme:2 zeta:0");
}

Test(enumerate, under_a_parent, .init = setup, .fini = teardown) {
  seen s = {{0}, 0, 0};

  OK(obspam_enumerate(e, OBSPAM_MAILBOX, "A.test", 0, NULL, 0, T0, collect,
                      &s));
  cr_assert_str_eq(s.text, "a@a.test:0 c@a.test:0");
  memset(&s, 0, sizeof(s));
  OK(obspam_enumerate(e, OBSPAM_MAILBOX, "acme", 0, NULL, 0, T0, collect, &s));
  cr_assert_str_eq(s.text, "a@a.test:0 b@b.test:0 c@a.test:0");
  memset(&s, 0, sizeof(s));
  OK(obspam_enumerate(e, OBSPAM_DOMAIN, "basic", 0, NULL, 0, T0, collect, &s));
  cr_assert_str_eq(s.text, "a.test:0 b.test:0");
  memset(&s, 0, sizeof(s));
  OK(obspam_enumerate(e, OBSPAM_SUBSCRIPTION, "basic", 0, NULL, 0, T0, collect,
                      &s));
  cr_assert_str_eq(s.text, "acme:0");
}

Test(enumerate, implicit_mailboxes_and_active, .init = setup,
     .fini = teardown) {
  seen s = {{0}, 0, 0};

  send_as("b2@b.test", 3, T0); /* implicit */
  send_as("c@a.test", 1, T0);
  OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, NULL, 0, T0, collect, &s));
  cr_assert_str_eq(s.text, "a@a.test:0 b2@b.test:3 b@b.test:0 c@a.test:1 "
                           "y@z.test:0");
  memset(&s, 0, sizeof(s));
  OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, OBSPAM_ENUM_ACTIVE, NULL, 0, T0,
                      collect, &s));
  cr_assert_str_eq(s.text, "b2@b.test:3 c@a.test:1");
  memset(&s, 0, sizeof(s));
  OK(obspam_enumerate(e, OBSPAM_MAILBOX, "b.test", OBSPAM_ENUM_ACTIVE, NULL, 0,
                      T0, collect, &s));
  cr_assert_str_eq(s.text, "b2@b.test:3");
  /* Still active a day later from the day window... */
  memset(&s, 0, sizeof(s));
  OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, OBSPAM_ENUM_ACTIVE, NULL, 0,
                      T0 + 23 * 3600, collect, &s));
  cr_assert_str_eq(s.text, "b2@b.test:0 c@a.test:0");
  /* ...and no more once it has left it. */
  memset(&s, 0, sizeof(s));
  OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, OBSPAM_ENUM_ACTIVE, NULL, 0,
                      T0 + 24 * 3600, collect, &s));
  cr_assert_str_eq(s.text, "");
}

Test(enumerate, pages_and_stop, .init = setup, .fini = teardown) {
  seen s = {{0}, 0, 0};

  OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, NULL, 2, T0, collect, &s));
  cr_assert_str_eq(s.text, "a@a.test:0 b@b.test:0");
  memset(&s, 0, sizeof(s));
  OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, "B@b.test", 2, T0, collect,
                      &s));
  cr_assert_str_eq(s.text, "c@a.test:0 y@z.test:0");
  memset(&s, 0, sizeof(s));
  OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, "y@z.test", 2, T0, collect,
                      &s));
  cr_assert_str_eq(s.text, "");
  /* A prefix is a cursor too. */
  memset(&s, 0, sizeof(s));
  OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, "c", 0, T0, collect, &s));
  cr_assert_str_eq(s.text, "c@a.test:0 y@z.test:0");
  memset(&s, 0, sizeof(s));
  s.stop_after = 3;
  OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, NULL, 0, T0, collect, &s));
  cr_assert_str_eq(s.text, "a@a.test:0 b@b.test:0 c@a.test:0");
}

Test(enumerate, errors, .init = setup, .fini = teardown) {
  seen s = {{0}, 0, 0};
  char longer[OBSPAM_NAME_MAX + 2];

  RC(obspam_enumerate(NULL, OBSPAM_MAILBOX, NULL, 0, NULL, 0, 0, collect, &s),
     OBSPAM_EINVAL);
  RC(obspam_enumerate(e, OBSPAM_PLAN, NULL, 0, NULL, 0, 0, collect, &s),
     OBSPAM_EINVAL);
  cr_assert_str_eq(
      obspam_engine_errmsg(e),
      "enumerate: kind 1 is not a subscription, domain or mailbox");
  RC(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, NULL, 0, 0, NULL, &s),
     OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e), "enumerate: no callback");
  RC(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 2, NULL, 0, 0, collect, &s),
     OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e), "enumerate: unknown flags 0x2");
  RC(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, NULL, 0, -1, collect, &s),
     OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e), "enumerate: time is negative");
  RC(obspam_enumerate(e, OBSPAM_MAILBOX, "no.test", 0, NULL, 0, 0, collect, &s),
     OBSPAM_ENOTFOUND);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "enumerate: no plan, subscription or domain 'no.test' "
                   "above a mailbox");
  /* A mailbox is nobody's parent; a domain is no subscription's. */
  RC(obspam_enumerate(e, OBSPAM_SUBSCRIPTION, "a.test", 0, NULL, 0, 0, collect,
                      &s),
     OBSPAM_ENOTFOUND);
  RC(obspam_enumerate(e, OBSPAM_MAILBOX, "a b", 0, NULL, 0, 0, collect, &s),
     OBSPAM_EINVAL);
  memset(longer, 'x', sizeof(longer) - 1);
  longer[sizeof(longer) - 1] = '\0';
  RC(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, longer, 0, 0, collect, &s),
     OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "enumerate: 'after' is longer than 320 bytes");
  cr_assert_eq(s.n, 0);
}

/* Paging through many objects gives each exactly once, in order, whatever
   the page size, declared and implicit mixed. */
Test(enumerate, many_in_pages, .init = setup, .fini = teardown) {
  static char conf[1 << 20];
  size_t len = 0;
  int page_sizes[] = {1, 7, 1000, 1024, 1025, 0};

  len += (size_t)snprintf(conf + len, sizeof(conf) - len,
                          "subscription s\ndomain m.test subscription=s\n");
  for (int i = 0; i < 3000; i += 2)
    len += (size_t)snprintf(conf + len, sizeof(conf) - len,
                            "mailbox u%05d@m.test\n", i);
  OK(obspam_load_config_string(e, conf));
  for (int i = 1; i < 3000; i += 2) {
    char who[32];

    snprintf(who, sizeof(who), "u%05d@m.test", i);
    send_as(who, 1, T0);
  }
  for (size_t k = 0; k < sizeof(page_sizes) / sizeof(page_sizes[0]); k++) {
    char after[64] = "";
    int next = 0;

    for (;;) {
      seen s = {{0}, 0, 0};
      char *last = NULL;

      OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, after,
                          (size_t)page_sizes[k], T0, collect, &s));
      if (s.n == 0)
        break;
      for (char *w = strtok(s.text, " "); w != NULL; w = strtok(NULL, " ")) {
        char want[64];

        snprintf(want, sizeof(want), "u%05d@m.test:%d", next, next % 2);
        cr_assert_str_eq(w, want, "page size %d", page_sizes[k]);
        next++;
        last = w;
      }
      cr_assert_not_null(last);
      *strchr(last, ':') = '\0';
      snprintf(after, sizeof(after), "%s", last);
      if (page_sizes[k] == 0)
        break;
    }
    cr_assert_eq(next, 3000, "page size %d gave %d", page_sizes[k], next);
  }
}

/* ---- obspam_reset ---------------------------------------------------------
 */

static obspam_stats stats_of(int kind, const char *name, int64_t now) {
  obspam_stats st = OBSPAM_STATS_INIT;

  OK(obspam_stats_get(e, kind, name, now, &st));
  return st;
}

static int decide_as(const char *login, uint32_t rcpt, int64_t t) {
  obspam_message m =
      tu_msg(0, login, NULL, "192.0.2.1", rcpt, -1, NULL, NULL, t);
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  OK(obspam_decide(e, &m, &v));
  return v.action;
}

static void hist_line(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  char *s = ud;
  size_t len = strlen(s);

  snprintf(s + len, 256 - len, "%s%" PRId64 ":%" PRId64 "/%" PRId64,
           len ? " " : "", (hour - T0) / 3600, sent, refused);
}

Test(reset, empties_the_windows_and_keeps_the_history, .init = setup,
     .fini = teardown) {
  obspam_stats st;
  char hist[256] = "";

  for (int i = 0; i < 5; i++)
    cr_assert_eq(decide_as("a@a.test", 1, T0 + i), OBSPAM_ACCEPT);
  cr_assert_eq(decide_as("a@a.test", 1, T0 + 5), OBSPAM_REFUSE);
  st = stats_of(OBSPAM_MAILBOX, "a@a.test", T0 + 6);
  cr_assert_eq(st.count, 5);
  cr_assert_eq(st.sending, 0);
  cr_assert_eq(st.last_reset, 0);

  OK(obspam_reset(e, OBSPAM_MAILBOX, "A@a.test", T0 + 10));
  st = stats_of(OBSPAM_MAILBOX, "a@a.test", T0 + 11);
  cr_assert_eq(st.count, 0);
  cr_assert_eq(st.count_minute, 0);
  cr_assert_eq(st.count_day, 0);
  cr_assert_eq(st.refused, 0);
  cr_assert_eq(st.exceeded, 0);
  cr_assert_eq(st.sending, 1);
  cr_assert_eq(st.last_reset, T0 + 10);
  /* What happened stays in the history and its totals. */
  cr_assert_eq(st.refused_total, 1);
  cr_assert_eq(st.last_refused, T0 + 5);
  OK(obspam_history(e, OBSPAM_MAILBOX, "a@a.test", T0, T0 + 7200, hist_line,
                    hist));
  cr_assert_str_eq(hist, "0:5/1");
  /* Its parents keep their counts. */
  cr_assert_eq(stats_of(OBSPAM_DOMAIN, "a.test", T0 + 11).count, 5);
  cr_assert_eq(stats_of(OBSPAM_SUBSCRIPTION, "acme", T0 + 11).last_reset, 0);

  for (int i = 0; i < 5; i++)
    cr_assert_eq(decide_as("a@a.test", 1, T0 + 20 + i), OBSPAM_ACCEPT);
  cr_assert_eq(decide_as("a@a.test", 1, T0 + 30), OBSPAM_REFUSE);
  st = stats_of(OBSPAM_MAILBOX, "a@a.test", T0 + 31);
  cr_assert_eq(st.count, 5);
  cr_assert_eq(st.count_day, 5);
  hist[0] = '\0';
  OK(obspam_history(e, OBSPAM_MAILBOX, "a@a.test", T0, T0 + 7200, hist_line,
                    hist));
  cr_assert_str_eq(hist, "0:10/2");
}

/* The day window starts at the reset: the hours before it leave it at
   once, and of its own hour only what came after it stays. */
Test(reset, the_day_window, .init = setup, .fini = teardown) {
  OK(obspam_load_config_string(e, "subscription s\n"
                                  "domain d.test subscription=s\n"
                                  "mailbox m@d.test limit=100/h,10/d\n"));
  cr_assert_eq(decide_as("m@d.test", 6, T0), OBSPAM_ACCEPT);
  cr_assert_eq(decide_as("m@d.test", 3, H1 + 10), OBSPAM_ACCEPT);
  cr_assert_eq(stats_of(OBSPAM_MAILBOX, "m@d.test", H1 + 15).count_day, 9);
  OK(obspam_reset(e, OBSPAM_MAILBOX, "m@d.test", H1 + 20));
  cr_assert_eq(stats_of(OBSPAM_MAILBOX, "m@d.test", H1 + 21).count_day, 0);
  cr_assert_eq(decide_as("m@d.test", 4, H1 + 30), OBSPAM_ACCEPT);
  cr_assert_eq(decide_as("m@d.test", 6, H1 + 40), OBSPAM_ACCEPT);
  cr_assert_eq(decide_as("m@d.test", 1, H1 + 50), OBSPAM_REFUSE);
  cr_assert_eq(stats_of(OBSPAM_MAILBOX, "m@d.test", H2).count_day, 10);
  /* The hour of the reset is in the day window for 24 hours more; what it
     had sent before the reset never counts again. */
  cr_assert_eq(
      stats_of(OBSPAM_MAILBOX, "m@d.test", T0 + 24 * 3600 + 5).count_day, 10);
  cr_assert_eq(decide_as("m@d.test", 1, H2 + 22 * 3600), OBSPAM_REFUSE);
  cr_assert_eq(
      stats_of(OBSPAM_MAILBOX, "m@d.test", H1 + 24 * 3600 + 5).count_day, 0);
  cr_assert_eq(decide_as("m@d.test", 10, H1 + 24 * 3600 + 6), OBSPAM_ACCEPT);
}

Test(reset, implicit_mailbox_and_errors, .init = setup, .fini = teardown) {
  cr_assert_eq(decide_as("new@a.test", 2, T0), OBSPAM_ACCEPT);
  OK(obspam_reset(e, OBSPAM_MAILBOX, "new@a.test", T0 + 1));
  cr_assert_eq(stats_of(OBSPAM_MAILBOX, "new@a.test", T0 + 2).count, 0);
  cr_assert_eq(stats_of(OBSPAM_MAILBOX, "new@a.test", T0 + 2).last_reset,
               T0 + 1);
  /* An object that never sent can be reset too. */
  OK(obspam_reset(e, OBSPAM_SUBSCRIPTION, "zeta", T0 + 3));
  cr_assert_eq(stats_of(OBSPAM_SUBSCRIPTION, "zeta", T0 + 4).last_reset,
               T0 + 3);
  /* A time before the newest one seen is the newest one. */
  OK(obspam_reset(e, OBSPAM_DOMAIN, "z.test", T0 - 100));
  cr_assert_eq(stats_of(OBSPAM_DOMAIN, "z.test", T0 + 4).last_reset, T0 + 3);

  RC(obspam_reset(NULL, OBSPAM_MAILBOX, "a@a.test", 0), OBSPAM_EINVAL);
  RC(obspam_reset(e, OBSPAM_PLAN, "basic", 0), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "reset: only a subscription, domain or mailbox has "
                   "counters");
  RC(obspam_reset(e, OBSPAM_MAILBOX, "nobody", 0), OBSPAM_EINVAL);
  RC(obspam_reset(e, OBSPAM_MAILBOX, "a@a.test", -1), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e), "reset: time is negative");
  RC(obspam_reset(e, OBSPAM_MAILBOX, "nobody@a.test", 0), OBSPAM_ENOTFOUND);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "reset: no mailbox 'nobody@a.test'");
  RC(obspam_reset(e, OBSPAM_DOMAIN, "none.test", 0), OBSPAM_ENOTFOUND);
}

/* ---- a reset across a restart ---------------------------------------------
 */

static char dir[256], state[300];

static void setup_files(void) {
  setup();
  tu_mkdtemp(dir, sizeof(dir), "obspam-panel");
  snprintf(state, sizeof(state), "%s/state", dir);
}

static void teardown_files(void) {
  teardown();
  tu_rmtree(dir);
}

/* A second engine with the same configuration, as a restart makes it. */
static obspam_engine *restarted(int load, int journal) {
  obspam_engine *r = tu_new_conf(CONF);
  int64_t replayed = -1;

  if (load)
    OK(obspam_state_load(r, state));
  if (journal)
    OK(obspam_journal_open(r, state, 0, &replayed, NULL));
  return r;
}

/* Five messages of a@a.test, a reset at T0 + 10, and two recipients
   after it. */
static void send_reset_send(void) {
  for (int i = 0; i < 5; i++)
    cr_assert_eq(decide_as("a@a.test", 1, T0 + i), OBSPAM_ACCEPT);
  OK(obspam_reset(e, OBSPAM_MAILBOX, "a@a.test", T0 + 10));
  cr_assert_eq(decide_as("a@a.test", 2, T0 + 11), OBSPAM_ACCEPT);
}

/* The restarted engine r knows of the reset and of what came after it. */
static void expect_reset_kept(obspam_engine *r) {
  obspam_stats st = OBSPAM_STATS_INIT;

  OK(obspam_stats_get(r, OBSPAM_MAILBOX, "a@a.test", T0 + 12, &st));
  cr_assert_eq(st.last_reset, T0 + 10);
  cr_assert_eq(st.count, 2);
  cr_assert_eq(st.count_day, 2);
}

Test(reset, kept_by_a_snapshot, .init = setup_files, .fini = teardown_files) {
  obspam_engine *r;
  obspam_stats st = OBSPAM_STATS_INIT;

  send_reset_send();
  OK(obspam_state_save(e, state));
  r = restarted(1, 0);
  expect_reset_kept(r);
  /* The next hour goes on from the snapshot's hour of the reset. */
  OK(obspam_stats_get(r, OBSPAM_MAILBOX, "a@a.test", H1 + 5, &st));
  cr_assert_eq(st.count_day, 2);
  cr_assert_eq(st.last_reset, T0 + 10);
  obspam_engine_free(r);
}

Test(reset, kept_by_the_journal, .init = setup_files, .fini = teardown_files) {
  obspam_engine *r;
  obspam_stats st = OBSPAM_STATS_INIT;
  int64_t replayed = -1;

  OK(obspam_journal_open(e, state, 0, &replayed, NULL));
  send_reset_send();
  OK(obspam_journal_flush(e));
  r = tu_new_conf(CONF);
  OK(obspam_journal_open(r, state, 0, &replayed, NULL));
  cr_assert_eq(replayed, 7);
  expect_reset_kept(r);
  OK(obspam_stats_get(r, OBSPAM_DOMAIN, "a.test", T0 + 12, &st));
  cr_assert_eq(st.count, 7);
  obspam_engine_free(r);
}

/* ---- obspam_top, script rows, unknown uids --------------------------------
 */

/* The rows of a report or top list as text, one a line, in a buffer of
   ROWS_TEXT bytes. */
#define ROWS_TEXT 4096

static void row_line(const obspam_report_row *r, void *ud) {
  char *text = ud;
  size_t len = strlen(text);

  snprintf(text + len, ROWS_TEXT - len,
           "%d %s %" PRId64 "/%" PRId64 " %" PRId64 " %s\n", r->kind, r->name,
           r->sent, r->refused, r->uid,
           r->subscription != NULL ? r->subscription : "-");
}

static int script_as(int64_t uid, const char *path, uint32_t rcpt, int64_t t,
                     obspam_verdict *v) {
  obspam_message m =
      tu_msg(OBSPAM_MSG_SCRIPT, NULL, NULL, NULL, rcpt, uid, NULL, path, t);

  *v = (obspam_verdict)OBSPAM_VERDICT_INIT;
  OK(obspam_decide(e, &m, v));
  return v->action;
}

/* The traffic of the top tests: mailboxes, an implicit one, scripts of
   known and unknown uids. */
static void traffic(void) {
  obspam_verdict v;

  for (int i = 0; i < 3; i++)
    cr_assert_eq(decide_as("a@a.test", 1, T0 + i), OBSPAM_ACCEPT);
  cr_assert_eq(decide_as("b@b.test", 2, T0 + 3), OBSPAM_ACCEPT);
  cr_assert_eq(decide_as("new@a.test", 1, T0 + 4), OBSPAM_ACCEPT);
  cr_assert_eq(script_as(1001, "/www/x.php", 4, T0 + 5, &v), OBSPAM_ACCEPT);
  cr_assert_eq(script_as(1002, NULL, 1, T0 + 6, &v), OBSPAM_ACCEPT);
  cr_assert_eq(script_as(9999, "/tmp/evil.php", 7, T0 + 7, &v), OBSPAM_UNKNOWN);
  cr_assert_eq(script_as(8888, NULL, 2, T0 + 8, &v), OBSPAM_UNKNOWN);
  /* Neither a path nor a uid: nothing to report it by. */
  cr_assert_eq(script_as(-1, NULL, 2, T0 + 8, &v), OBSPAM_UNKNOWN);
  cr_assert_eq(decide_as("a@a.test", 1, T0 + 10), OBSPAM_ACCEPT);
  cr_assert_eq(decide_as("a@a.test", 1, T0 + 11), OBSPAM_ACCEPT);
  cr_assert_eq(decide_as("a@a.test", 1, T0 + 12), OBSPAM_REFUSE);
}

Test(top, every_kind_by_sent, .init = setup, .fini = teardown) {
  char r[ROWS_TEXT] = "";

  traffic();
  OK(obspam_top(e, -1, T0, T0 + 3600, 0, row_line, r));
  cr_assert_str_eq(r, "2 acme 12/1 -1 -\n"
                      "5 /tmp/evil.php 7/0 9999 -\n"
                      "3 a.test 6/1 -1 -\n"
                      "4 a@a.test 5/1 -1 -\n"
                      "5 /www/x.php 4/0 1001 acme\n"
                      "3 b.test 2/0 -1 -\n"
                      "4 b@b.test 2/0 -1 -\n"
                      "5 uid 8888 2/0 8888 -\n"
                      "2 zeta 1/0 -1 -\n"
                      "4 new@a.test 1/0 -1 -\n");
  r[0] = '\0';
  OK(obspam_top(e, OBSPAM_MAILBOX, T0, T0 + 3600, 2, row_line, r));
  cr_assert_str_eq(r, "4 a@a.test 5/1 -1 -\n"
                      "4 b@b.test 2/0 -1 -\n");
  r[0] = '\0';
  OK(obspam_top(e, OBSPAM_SCRIPT, 0, INT64_MAX, 0, row_line, r));
  cr_assert_str_eq(r, "5 /tmp/evil.php 7/0 9999 -\n"
                      "5 /www/x.php 4/0 1001 acme\n"
                      "5 uid 8888 2/0 8888 -\n");
  r[0] = '\0';
  OK(obspam_top(e, -1, H1, H2, 0, row_line, r));
  cr_assert_str_eq(r, "");
  /* The report lists the scripts with their uid and subscription too. */
  r[0] = '\0';
  OK(obspam_report(e, T0, T0 + 3600, row_line, r));
  cr_assert_str_eq(r, "4 a@a.test 5/1 -1 -\n"
                      "5 /tmp/evil.php 7/0 9999 -\n"
                      "5 /www/x.php 4/0 1001 acme\n"
                      "5 uid 8888 2/0 8888 -\n");
}

Test(top, errors, .init = setup, .fini = teardown) {
  char r[ROWS_TEXT] = "";

  RC(obspam_top(NULL, -1, 0, 0, 0, row_line, r), OBSPAM_EINVAL);
  RC(obspam_top(e, OBSPAM_PLAN, 0, 0, 0, row_line, r), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "top: kind 1 is not a subscription, domain, mailbox, "
                   "script or -1 (every kind)");
  RC(obspam_top(e, -2, 0, 0, 0, row_line, r), OBSPAM_EINVAL);
  RC(obspam_top(e, -1, 0, 0, 0, NULL, r), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e), "top: no callback");
}

Test(unknown_uid, a_catch_all_subscription, .init = setup, .fini = teardown) {
  obspam_verdict v;
  char r[ROWS_TEXT] = "";

  traffic();
  OK(obspam_set_unknown_uid_subscription(e, "ZETA"));
  cr_assert_eq(script_as(9999, "/tmp/evil.php", 1, T0 + 20, &v), OBSPAM_ACCEPT);
  cr_assert_eq(v.kind, OBSPAM_SUBSCRIPTION);
  cr_assert_str_eq(v.object, "zeta");
  cr_assert_eq(stats_of(OBSPAM_SUBSCRIPTION, "zeta", T0 + 21).count, 2);
  OK(obspam_top(e, OBSPAM_SCRIPT, T0, T0 + 3600, 1, row_line, r));
  cr_assert_str_eq(r, "5 /tmp/evil.php 8/0 9999 zeta\n");
  /* Its own limits apply. */
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "zeta", OBSPAM_SUBSCRIPTION, 2));
  cr_assert_eq(script_as(7777, NULL, 1, T0 + 22, &v), OBSPAM_REFUSE);
  cr_assert_str_eq(v.object, "zeta");
  /* NULL or "" goes back to none. */
  OK(obspam_set_unknown_uid_subscription(e, ""));
  cr_assert_eq(script_as(9999, NULL, 1, T0 + 23, &v), OBSPAM_UNKNOWN);
  OK(obspam_set_unknown_uid_subscription(e, "zeta"));
  OK(obspam_set_unknown_uid_subscription(e, NULL));
  cr_assert_eq(script_as(9999, NULL, 1, T0 + 23, &v), OBSPAM_UNKNOWN);

  RC(obspam_set_unknown_uid_subscription(NULL, "zeta"), OBSPAM_EINVAL);
  RC(obspam_set_unknown_uid_subscription(e, "no-such"), OBSPAM_ENOTFOUND);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "set_unknown_uid_subscription: no subscription 'no-such'");
  RC(obspam_set_unknown_uid_subscription(e, "a b"), OBSPAM_EINVAL);
  /* A removed catch-all charges nothing any more. */
  OK(obspam_set_unknown_uid_subscription(e, "zeta"));
  OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "zeta"));
  cr_assert_eq(script_as(9999, NULL, 1, T0 + 24, &v), OBSPAM_UNKNOWN);
}

Test(unknown_uid, the_configuration_line, .init = setup, .fini = teardown) {
  obspam_verdict v;
  char conf[1024];

  snprintf(conf, sizeof(conf), "%sunknown-uid-subscription Zeta\n", CONF);
  OK(obspam_load_config_string(e, conf));
  cr_assert_eq(script_as(4242, NULL, 1, T0, &v), OBSPAM_ACCEPT);
  cr_assert_str_eq(v.object, "zeta");
  /* A configuration without the line has none. */
  OK(obspam_load_config_string(e, CONF));
  cr_assert_eq(script_as(4242, NULL, 1, T0, &v), OBSPAM_UNKNOWN);

  RC(obspam_load_config_string(e, "unknown-uid-subscription s\n"
                                  "subscription s\n"),
     OBSPAM_ESYNTAX);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "<string>:1: unknown subscription 's' (declared later, on "
                   "line 2)");
  RC(obspam_load_config_string(e, "subscription s\n"
                                  "unknown-uid-subscription s\n"
                                  "unknown-uid-subscription s\n"),
     OBSPAM_ESYNTAX);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "<string>:3: 'unknown-uid-subscription' appears twice");
  RC(obspam_load_config_string(e, "unknown-uid-subscription\n"),
     OBSPAM_ESYNTAX);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "<string>:1: missing subscription after "
                   "'unknown-uid-subscription'");
  RC(obspam_load_config_string(e, "subscription s\n"
                                  "unknown-uid-subscription s t\n"),
     OBSPAM_ESYNTAX);
  cr_assert_str_eq(obspam_engine_errmsg(e), "<string>:2: too many values for "
                                            "'unknown-uid-subscription'");
  /* The failed loads changed nothing. */
  cr_assert_eq(script_as(4242, NULL, 1, T0, &v), OBSPAM_UNKNOWN);
}

/* The uid of a script's last message survives a restart. */
Test(top, script_uid_kept_by_a_snapshot, .init = setup_files,
     .fini = teardown_files) {
  obspam_engine *saved = e;
  char r[ROWS_TEXT] = "";

  traffic();
  OK(obspam_state_save(e, state));
  e = restarted(1, 0);
  OK(obspam_top(e, OBSPAM_SCRIPT, T0, T0 + 3600, 0, row_line, r));
  cr_assert_str_eq(r, "5 /tmp/evil.php 7/0 9999 -\n"
                      "5 /www/x.php 4/0 1001 acme\n"
                      "5 uid 8888 2/0 8888 -\n");
  obspam_engine_free(e);
  e = saved;
}

/* A script's uid is in its journal record (flag 8): replayed, the row has
   it. */
Test(top, script_uid_kept_by_the_journal, .init = setup_files,
     .fini = teardown_files) {
  obspam_engine *saved = e;
  int64_t replayed = -1;
  char r[ROWS_TEXT] = "";

  OK(obspam_journal_open(e, state, 0, &replayed, NULL));
  traffic();
  OK(obspam_journal_flush(e));
  e = tu_new_conf(CONF);
  OK(obspam_journal_open(e, state, 0, &replayed, NULL));
  /* Every decision that changed a counter: the unknown uids' rows are
     not journaled. */
  cr_assert_eq(replayed, 10, "replayed %" PRId64, replayed);
  OK(obspam_top(e, OBSPAM_SCRIPT, T0, T0 + 3600, 0, row_line, r));
  cr_assert_str_eq(r, "5 /www/x.php 4/0 1001 acme\n");
  obspam_engine_free(e);
  e = saved;
}

/* A reload keeps what a reset did, as it keeps the counters. */
Test(reset, kept_by_a_reload, .init = setup, .fini = teardown) {
  obspam_stats st;

  for (int i = 0; i < 5; i++)
    cr_assert_eq(decide_as("a@a.test", 1, T0 + i), OBSPAM_ACCEPT);
  OK(obspam_reset(e, OBSPAM_MAILBOX, "a@a.test", T0 + 10));
  cr_assert_eq(decide_as("a@a.test", 2, T0 + 11), OBSPAM_ACCEPT);
  OK(obspam_load_config_string(e, CONF));
  st = stats_of(OBSPAM_MAILBOX, "a@a.test", T0 + 12);
  cr_assert_eq(st.last_reset, T0 + 10);
  cr_assert_eq(st.count, 2);
  cr_assert_eq(st.count_day, 2);
}

/* ---- the name order ------------------------------------------------------
 */

/* The names of the library's name order of kind into out (room for
   max), read inside the library (no enumeration has run); how many.
   Asserts the shape of the blocks on the way: none empty or over full,
   no mark left, and their counts adding up to the order's. */
static size_t order_names(int kind, const char **out, size_t max) {
  const obspam__sorted *s = obspam__tree_sorted(&e->conf->tree, kind);
  obspam__spos at = {0, 0};
  obspam__obj *o;
  size_t n = 0, sum = 0;

  for (size_t b = 0; b < s->nb; b++) {
    cr_assert(s->b[b]->n >= 1 && s->b[b]->n <= OBSPAM__BLOCK,
              "block %zu of %zu holds %zu", b, s->nb, s->b[b]->n);
    cr_assert_eq(s->b[b]->marks, 0);
    /* Small neighbours are merged by the removal that made one small. */
    cr_assert(b == 0 || s->b[b - 1]->n >= OBSPAM__BLOCK / 4 ||
                  s->b[b]->n >= OBSPAM__BLOCK / 4,
              "blocks %zu and %zu hold %zu and %zu", b - 1, b, s->b[b - 1]->n,
              s->b[b]->n);
    sum += s->b[b]->n;
  }
  cr_assert_eq(sum, s->n, "kind %d: blocks hold %zu, the order %zu", kind, sum,
               s->n);
  for (; (o = obspam__sorted_at(s, at)) != NULL; obspam__sorted_next(s, &at)) {
    cr_assert_eq((uintptr_t)o & 1u, 0);
    cr_assert_lt(n, max);
    out[n++] = o->name;
  }
  cr_assert_eq(n, s->n);
  return n;
}

/* Asserts that the library's name order of kind is want (the names
   separated by spaces). */
static void order_is(int kind, const char *want) {
  static const char *names[4096];
  static char text[1 << 16];
  size_t len = 0, n = order_names(kind, names, 4096);

  text[0] = '\0';
  for (size_t i = 0; i < n && len < sizeof(text); i++)
    len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s",
                            i ? " " : "", names[i]);
  cr_assert_str_eq(text, want, "order of kind %d", kind);
}

/* The order of every kind exists as soon as a configuration is loaded,
   and a failed load leaves the one in use. */
Test(order, made_by_the_load, .init = setup, .fini = teardown) {
  order_is(OBSPAM_PLAN, "basic");
  order_is(OBSPAM_SUBSCRIPTION, "acme zeta");
  order_is(OBSPAM_DOMAIN, "a.test b.test z.test");
  order_is(OBSPAM_MAILBOX, "a@a.test b@b.test c@a.test y@z.test");
  cr_assert_eq(e->conf->tree.bulk, 0);

  RC(obspam_load_config_string(e, "subscription q\nmailbox m@q\n"),
     OBSPAM_ESYNTAX);
  order_is(OBSPAM_MAILBOX, "a@a.test b@b.test c@a.test y@z.test");

  OK(obspam_load_config_string(e, "subscription Q\n"
                                  "domain q.test subscription=q\n"
                                  "domain p.test subscription=q\n"
                                  "mailbox Zz@Q.test\nmailbox z@q.test\n"
                                  "mailbox zz@p.test\n"));
  order_is(OBSPAM_DOMAIN, "p.test q.test");
  order_is(OBSPAM_MAILBOX, "z@q.test zz@p.test zz@q.test");
  order_is(OBSPAM_PLAN, "");
}

/* The names of a load that share long prefixes (beyond 8 and 16 bytes,
   where the sort compares the next chunk), that begin one another, and
   that hold bytes above 0x7f, which sort after ASCII as strcmp says. */
Test(order, long_prefixes_and_high_bytes, .init = setup, .fini = teardown) {
  static const char *const local[] = {"aaaaaaaaaaaaaaaaaaaab",
                                      "aaaaaaaaaaaaaaaaaaaa",
                                      "aaaaaaaaaaaaaaaaaaaaa",
                                      "aaaaaaaa",
                                      "aaaaaaa",
                                      "aaaaaaaaa",
                                      "\xc3\xa9t\xc3\xa9",
                                      "zzzzzzzzzzzzzzzzzzzz",
                                      "\x7e",
                                      "aaaaaaaaaaaaaaaab",
                                      "aaaaaaaaaaaaaaaa",
                                      "b"};
  const size_t n = sizeof(local) / sizeof(local[0]);
  const char *want[sizeof(local) / sizeof(local[0])];
  char conf[4096], expect[4096];
  size_t len = 0, elen = 0;

  len += (size_t)snprintf(conf + len, sizeof(conf) - len,
                          "subscription s\ndomain d subscription=s\n");
  for (size_t i = 0; i < n; i++) {
    len += (size_t)snprintf(conf + len, sizeof(conf) - len, "mailbox %s@d\n",
                            local[i]);
    want[i] = local[i];
  }
  for (size_t i = 1; i < n; i++) /* the model: insertion by strcmp */
    for (size_t j = i; j > 0 && strcmp(want[j - 1], want[j]) > 0; j--) {
      const char *x = want[j];

      want[j] = want[j - 1];
      want[j - 1] = x;
    }
  for (size_t i = 0; i < n; i++)
    elen += (size_t)snprintf(expect + elen, sizeof(expect) - elen, "%s%s@d",
                             i ? " " : "", want[i]);
  OK(obspam_load_config_string(e, conf));
  order_is(OBSPAM_MAILBOX, expect);
  cr_assert(strncmp(expect, "aaaaaaa@d aaaaaaaa@d ", 21) == 0);
  cr_assert(strcmp(expect + elen - strlen("\x7e@d \xc3\xa9t\xc3\xa9@d"),
                   "\x7e@d \xc3\xa9t\xc3\xa9@d") == 0);
}

static int by_strcmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Enough names for the sort's buckets (not only its insertion sort of
   small runs), most of them sharing 9 to 23 bytes, loaded in random
   order: the order is strcmp's. */
Test(order, many_sharing_long_prefixes, .init = setup, .fini = teardown) {
  static const char *const prefix[] = {"", "ppppppppp", "pppppppppppppppp",
                                       "pppppppppppppppp0123456"};
  static const char alpha[] = "p0\xc3\xa9z";
  enum { N = 3000 };
  static char names[N][48];
  static const char *want[N];
  size_t size = N * 64 + 64, len = 0, n = 0;
  char *conf = malloc(size);
  uint64_t r = 7;

  cr_assert_not_null(conf);
  len += (size_t)snprintf(conf + len, size - len,
                          "subscription s\ndomain d subscription=s\n");
  while (n < N) {
    size_t k = strlen(strcpy(names[n], prefix[tu_splitmix64(&r) % 4]));
    size_t extra = 1 + tu_splitmix64(&r) % 10;
    int dup = 0;

    for (size_t i = 0; i < extra; i++)
      names[n][k++] = alpha[tu_splitmix64(&r) % (sizeof(alpha) - 1)];
    memcpy(names[n] + k, "@d", 3);
    for (size_t i = 0; i < n && !dup; i++)
      dup = strcmp(names[i], names[n]) == 0;
    if (dup)
      continue;
    len += (size_t)snprintf(conf + len, size - len, "mailbox %s\n", names[n]);
    want[n] = names[n];
    n++;
  }
  OK(obspam_load_config_string(e, conf));
  free(conf);
  qsort(want, N, sizeof(want[0]), by_strcmp);
  static const char *got[N];

  cr_assert_eq(order_names(OBSPAM_MAILBOX, got, N), (size_t)N);
  for (size_t i = 0; i < N; i++)
    cr_assert_str_eq(got[i], want[i], "at %zu", i);
}

/* ---- the name order against a model --------------------------------------
 */

#define M_MAX 8000 /* objects the model may hold */

typedef struct mobj {
  char name[80];
  int kind;
  int parent;   /* index into the model; -1 none */
  int alive;    /* in the engine now */
  int implicit; /* a mailbox that a decision made, not declared */
} mobj;

static mobj *model;
static int n_model;
static uint64_t rng = 13;

static int rn(int n) { return (int)(tu_splitmix64(&rng) % (uint64_t)n); }

/* A name of shapes that test the sort: a few letters and digits drawn
   from a small alphabet, so that long common prefixes are frequent. */
static void random_word(char *buf, size_t size) {
  static const char alpha[] = "aab0.-\xc3\xa9";
  size_t len = 1 + (size_t)rn(rn(4) == 0 ? 24 : 6), i;

  if (len >= size)
    len = size - 1;
  for (i = 0; i < len; i++)
    buf[i] = alpha[rn((int)sizeof(alpha) - 1)];
  buf[len] = '\0';
}

static int model_find(int kind, const char *name) {
  for (int i = 0; i < n_model; i++)
    if (model[i].alive && model[i].kind == kind &&
        strcmp(model[i].name, name) == 0)
      return i;
  return -1;
}

/* A random living object of kind (mailboxes: implicit or declared as
   asked), or -1 when there is none. */
static int model_pick(int kind, int implicit) {
  int n = 0, k;

  for (int i = 0; i < n_model; i++)
    n += model[i].alive && model[i].kind == kind &&
         model[i].implicit == implicit;
  if (n == 0)
    return -1;
  k = rn(n);
  for (int i = 0; i < n_model; i++)
    if (model[i].alive && model[i].kind == kind &&
        model[i].implicit == implicit && k-- == 0)
      return i;
  return -1;
}

/* Kills o and what lies under it in the model. */
static void model_kill(int o) {
  model[o].alive = 0;
  for (int i = 0; i < n_model; i++)
    if (model[i].alive && model[i].parent == o)
      model_kill(i);
}

/* The living names of kind (mailboxes: declared and implicit) in strcmp
   order, into v; their number. */
static size_t model_names(int kind, const char **v) {
  size_t n = 0;

  for (int i = 0; i < n_model; i++)
    if (model[i].alive && model[i].kind == kind)
      v[n++] = model[i].name;
  qsort(v, n, sizeof(*v), by_strcmp);
  return n;
}

typedef struct listing {
  const char **want;
  size_t n, at;
  int bad;
} listing;

static int expect_next(int kind, const char *name, const obspam_stats *st,
                       void *ud) {
  listing *l = ud;

  (void)kind;
  (void)st;
  if (l->at >= l->n || strcmp(name, l->want[l->at]) != 0)
    l->bad = 1;
  l->at++;
  return 0;
}

/* Enumerates kind whole, then from a few cursors (a name of the model, a
   prefix of one, text that is none) a few at a time, against the model. */
static void model_check(int step) {
  static const char *want[M_MAX];

  for (int kind = OBSPAM_SUBSCRIPTION; kind <= OBSPAM_MAILBOX; kind++) {
    size_t n = model_names(kind, want);
    listing l = {want, n, 0, 0};

    OK(obspam_enumerate(e, kind, NULL, 0, NULL, 0, T0, expect_next, &l));
    cr_assert(!l.bad && l.at == n, "step %d, %s: %zu names, %zu expected", step,
              obspam_kind_name(kind), l.at, n);
    if (kind != OBSPAM_MAILBOX) /* declared only: the tree's own order */
      cr_assert_eq(obspam__tree_sorted(&e->conf->tree, kind)->n, n);
    for (int c = 0; c < 6; c++) {
      char after[64];
      size_t from, max = (size_t)(1 + rn(40));

      if (n > 0 && c < 4) {
        snprintf(after, sizeof(after), "%s", want[rn((int)n)]);
        if (c % 2 == 1) /* a prefix */
          after[rn((int)strlen(after)) + 1] = '\0';
      } else {
        random_word(after, sizeof(after));
      }
      for (from = 0; from < n && strcmp(want[from], after) <= 0; from++)
        ;
      l.want = want + from;
      l.n = n - from < max ? n - from : max;
      l.at = 0;
      l.bad = 0;
      OK(obspam_enumerate(e, kind, NULL, 0, after, max, T0, expect_next, &l));
      cr_assert(!l.bad && l.at == l.n,
                "step %d, %s after '%s', max %zu: %zu names, %zu expected",
                step, obspam_kind_name(kind), after, max, l.at, l.n);
    }
  }
}

/* Loads the model's declared objects as a configuration, mailboxes
   backwards so that the file is in no particular order. */
static void model_reload(void) {
  size_t size = (size_t)M_MAX * 80, len = 0;
  char *conf = malloc(size);

  cr_assert_not_null(conf);
  conf[0] = '\0';
  for (int kind = OBSPAM_SUBSCRIPTION; kind <= OBSPAM_MAILBOX; kind++)
    for (int i = kind == OBSPAM_MAILBOX ? n_model - 1 : 0;
         i >= 0 && i < n_model; i += kind == OBSPAM_MAILBOX ? -1 : 1) {
      const mobj *o = &model[i];

      if (!o->alive || o->kind != kind || o->implicit)
        continue;
      if (kind == OBSPAM_SUBSCRIPTION)
        len += (size_t)snprintf(conf + len, size - len, "subscription %s\n",
                                o->name);
      else if (kind == OBSPAM_DOMAIN)
        len += (size_t)snprintf(conf + len, size - len,
                                "domain %s subscription=%s\n", o->name,
                                model[o->parent].name);
      else
        len +=
            (size_t)snprintf(conf + len, size - len, "mailbox %s\n", o->name);
    }
  OK(obspam_load_config_string(e, conf));
  free(conf);
}

/* One random change, made on the engine and the model alike. */
static void model_step(void) {
  int r = rn(100), p, o;
  char word[26], name[80];
  obspam__name n;

  if (r < 4 || model_pick(OBSPAM_SUBSCRIPTION, 0) < 0) {
    random_word(word, sizeof(word));
    snprintf(name, sizeof(name), "s%s", word);
    o = model_find(OBSPAM_SUBSCRIPTION, name);
    RC(obspam_add(e, OBSPAM_SUBSCRIPTION, name, NULL),
       o >= 0 ? OBSPAM_EEXIST : OBSPAM_OK);
    p = -1;
    r = OBSPAM_SUBSCRIPTION;
  } else if (r < 20 || model_pick(OBSPAM_DOMAIN, 0) < 0) {
    p = model_pick(OBSPAM_SUBSCRIPTION, 0);
    random_word(word, sizeof(word));
    snprintf(name, sizeof(name), "d%s.test", word);
    o = model_find(OBSPAM_DOMAIN, name);
    RC(obspam_add(e, OBSPAM_DOMAIN, name, model[p].name),
       o >= 0 ? OBSPAM_EEXIST : OBSPAM_OK);
    r = OBSPAM_DOMAIN;
  } else if (r < 62) {
    /* A mailbox, declared; now and then one that a decision made first,
       which the declaration adopts. */
    if (rn(5) == 0 && (o = model_pick(OBSPAM_MAILBOX, 1)) >= 0) {
      OK(obspam_add(e, OBSPAM_MAILBOX, model[o].name, NULL));
      model[o].implicit = 0;
      return;
    }
    p = model_pick(OBSPAM_DOMAIN, 0);
    random_word(word, sizeof(word));
    snprintf(name, sizeof(name), "%.25s@%.40s", word, model[p].name);
    o = model_find(OBSPAM_MAILBOX, name);
    if (o >= 0 && model[o].implicit) {
      OK(obspam_add(e, OBSPAM_MAILBOX, name, NULL));
      model[o].implicit = 0;
      return;
    }
    RC(obspam_add(e, OBSPAM_MAILBOX, name, NULL),
       o >= 0 ? OBSPAM_EEXIST : OBSPAM_OK);
    r = OBSPAM_MAILBOX;
  } else if (r < 72) {
    p = model_pick(OBSPAM_DOMAIN, 0);
    random_word(word, sizeof(word));
    snprintf(name, sizeof(name), "%.25s@%.40s", word, model[p].name);
    o = model_find(OBSPAM_MAILBOX, name);
    send_as(name, 1, T0);
    if (o < 0 && n_model < M_MAX) {
      cr_assert_null(obspam__name_norm(name, OBSPAM__NAME_MAILBOX, &n));
      model[n_model] = (mobj){{0}, OBSPAM_MAILBOX, p, 1, 1};
      snprintf(model[n_model].name, sizeof(model[n_model].name), "%s", name);
      n_model++;
    }
    return;
  } else {
    /* A removal: mostly a mailbox, declared or not, now and then a
       domain or a subscription with all below it. */
    int kind = r < 94   ? OBSPAM_MAILBOX
               : r < 98 ? OBSPAM_DOMAIN
                        : OBSPAM_SUBSCRIPTION;

    o = model_pick(kind, kind == OBSPAM_MAILBOX && r < 76);
    if (o < 0)
      return;
    OK(obspam_remove(e, kind, model[o].name));
    model_kill(o);
    return;
  }
  if (o < 0 && n_model < M_MAX) {
    model[n_model] = (mobj){{0}, r, p, 1, 0};
    snprintf(model[n_model].name, sizeof(model[n_model].name), "%s", name);
    n_model++;
  }
}

/* Thousands of additions and removals in random order, reloads between
   them: every enumeration gives exactly the model's names, in order. */
Test(order, kept_by_changes_against_a_model, .init = setup, .fini = teardown) {
  model = calloc(M_MAX, sizeof(*model));
  cr_assert_not_null(model);
  n_model = 0;
  OK(obspam_load_config_string(e, ""));
  for (int step = 1; step <= 6000; step++) {
    model_step();
    if (step % 1500 == 0) {
      model_check(step);
      model_reload();
      /* The reload made the order: right after it, before any page. */
      for (int kind = OBSPAM_SUBSCRIPTION; kind <= OBSPAM_DOMAIN; kind++) {
        static const char *want[M_MAX], *got[M_MAX];

        size_t n = model_names(kind, want);

        cr_assert_eq(order_names(kind, got, M_MAX), n);
        for (size_t i = 0; i < n; i++)
          cr_assert_str_eq(got[i], want[i]);
      }
    }
    if (step % 500 == 0)
      model_check(step);
  }
  cr_assert_gt(n_model, 2000);
  free(model);
}

/* ---- the blocks of the name order against a model ------------------------
 */

#define B_MAX 6000 /* mailboxes of the test below: a dozen blocks */

/* The mailbox i of the test below: in one of three domains, its number
   first so that the name order is the numbers' order. */
static void block_name(char *buf, size_t size, int i) {
  snprintf(buf, size, "m%05d@d%d.test", i, i % 3);
}

/* Asserts that the mailboxes in the order and from obspam_enumerate
   (whole, and in pages of 700 from a random cursor, which cross blocks)
   are exactly those of alive, in order. */
static void blocks_check(const char *alive, const char *what) {
  static const char *got[B_MAX], *want[B_MAX];
  static char names[B_MAX][24];
  size_t n = 0;

  for (int i = 0; i < B_MAX; i++)
    if (alive[i]) {
      block_name(names[i], sizeof(names[i]), i);
      want[n++] = names[i];
    }
  cr_assert_eq(order_names(OBSPAM_MAILBOX, got, B_MAX), n, "%s", what);
  for (size_t i = 0; i < n; i++)
    cr_assert_str_eq(got[i], want[i], "%s, at %zu", what, i);

  listing l = {want, n, 0, 0};

  OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, NULL, 0, T0, expect_next,
                      &l));
  cr_assert(!l.bad && l.at == n, "%s: whole", what);
  if (n == 0)
    return;
  size_t from = (size_t)rn((int)n);
  listing p = {want + from + 1, n - from - 1, 0, 0};
  size_t want_n = p.n < 700 ? p.n : 700;

  OK(obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, want[from], 700, T0,
                      expect_next, &p));
  cr_assert(!p.bad && p.at == want_n, "%s: from %s, %zu of %zu", what,
            want[from], p.at, want_n);
}

/* Thousands of mailboxes added one by one in random order (the blocks
   split, again and again), removed one by one in random order (they
   merge), a third of them at once with their domain (one pass over every
   block), added again after a reload (blocks three quarters full), all
   removed and added in name order (full blocks): the order and every
   page are the model's at every step checked. */
Test(order, blocks_split_and_merge_against_a_model, .init = setup,
     .fini = teardown) {
  static char alive[B_MAX];
  static int perm[B_MAX];
  const obspam__sorted *s;
  char name[24], what[64];
  int n = 0;

  OK(obspam_load_config_string(e, "subscription s\n"
                                  "domain d0.test subscription=s\n"
                                  "domain d1.test subscription=s\n"
                                  "domain d2.test subscription=s\n"));
  memset(alive, 0, sizeof(alive));
  for (int i = 0; i < B_MAX; i++)
    perm[i] = i;
  for (int i = B_MAX - 1; i > 0; i--) {
    int j = rn(i + 1), x = perm[i];

    perm[i] = perm[j];
    perm[j] = x;
  }
  for (int i = 0; i < B_MAX; i++) {
    block_name(name, sizeof(name), perm[i]);
    OK(obspam_add(e, OBSPAM_MAILBOX, name, NULL));
    alive[perm[i]] = 1;
    if (i % 397 == 0 || i == B_MAX - 1) {
      snprintf(what, sizeof(what), "after %d additions", i + 1);
      blocks_check(alive, what);
    }
  }
  s = obspam__tree_sorted(&e->conf->tree, OBSPAM_MAILBOX);
  cr_assert_geq(s->nb, (size_t)B_MAX / OBSPAM__BLOCK + 1);
  cr_assert_leq(s->nb, (size_t)2 * B_MAX / OBSPAM__BLOCK + 1);

  /* Two thirds removed one by one, in another random order. */
  for (int i = 0; i < B_MAX; i++) {
    if (perm[i] % 3 == 1 || i % 3 == 0)
      continue;
    block_name(name, sizeof(name), perm[i]);
    OK(obspam_remove(e, OBSPAM_MAILBOX, name));
    alive[perm[i]] = 0;
    if (++n % 211 == 0) {
      snprintf(what, sizeof(what), "after %d removals", n);
      blocks_check(alive, what);
    }
  }
  blocks_check(alive, "after the removals");
  /* The domain with a third: its mailboxes leave every block at once. */
  OK(obspam_remove(e, OBSPAM_DOMAIN, "d1.test"));
  for (int i = 1; i < B_MAX; i += 3)
    alive[i] = 0;
  blocks_check(alive, "after the domain");
  /* About 1,300 left: the merges left no more blocks than an eighth of a
     block each would need. */
  cr_assert(s->n > 1000 && s->n < 1700, "%zu left", s->n);
  cr_assert_leq(s->nb, 8 * s->n / OBSPAM__BLOCK + 1);
  /* A reload fills blocks anew; additions split those. */
  {
    size_t size = 64 + (size_t)B_MAX * 40, len = 0;
    char *conf = malloc(size);

    cr_assert_not_null(conf);
    len += (size_t)snprintf(conf + len, size - len,
                            "subscription s\ndomain d0.test subscription=s\n"
                            "domain d2.test subscription=s\n");
    for (int i = 0; i < B_MAX; i++)
      if (alive[i]) {
        block_name(name, sizeof(name), i);
        len += (size_t)snprintf(conf + len, size - len, "mailbox %s\n", name);
      }
    OK(obspam_load_config_string(e, conf));
    free(conf);
  }
  blocks_check(alive, "after the reload");
  for (int i = 0; i < B_MAX; i++) {
    if (alive[perm[i]] || perm[i] % 3 == 1)
      continue;
    block_name(name, sizeof(name), perm[i]);
    OK(obspam_add(e, OBSPAM_MAILBOX, name, NULL));
    alive[perm[i]] = 1;
  }
  blocks_check(alive, "after the additions");
  /* And every one removed: no block is left. */
  for (int i = 0; i < B_MAX; i++)
    if (alive[perm[i]]) {
      block_name(name, sizeof(name), perm[i]);
      OK(obspam_remove(e, OBSPAM_MAILBOX, name));
      alive[perm[i]] = 0;
    }
  blocks_check(alive, "after removing all");
  s = obspam__tree_sorted(&e->conf->tree, OBSPAM_MAILBOX);
  cr_assert_eq(s->nb, 0);
  /* Added in name order, they fill every block but the last. */
  for (int i = 0; i < B_MAX; i++) {
    if (i % 3 == 1) /* d1.test is no more */
      continue;
    block_name(name, sizeof(name), i);
    OK(obspam_add(e, OBSPAM_MAILBOX, name, NULL));
    alive[i] = 1;
  }
  blocks_check(alive, "after additions in order");
  cr_assert_eq(s->nb, (s->n + OBSPAM__BLOCK - 1) / OBSPAM__BLOCK);
}
