/* SPDX-License-Identifier: MIT */
/* Implicit mailboxes (SPEC.md section 2, API.md decision step 4): logins
   and senders of a hosted domain that the configuration does not declare.
   Made on first use with the inherited mailbox limit, seen by statistics,
   history, reports, reloads and snapshots as declared mailboxes are,
   capped by OBSPAM_OPT_IMPLICIT_MAILBOXES, never made by obspam_check. */
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"

static obspam_engine *e;

/* Subscription s (limit 100) with domain d.example (mailboxes 5 by
   default) and one declared mailbox, a@d.example. */
static const char CONF[] = "subscription s subscription=100\n"
                           "domain d.example subscription=s mailbox=5\n"
                           "mailbox a@d.example\n";

TU_ENGINE_SETUP(tu_new_conf(CONF))

TestSuite(implicit, .init = setup, .fini = teardown);

static void expect_status(int64_t count, int64_t overflow, int64_t episodes,
                          int line) {
  int64_t c = -1, o = -1, ep = -1;
  OK(obspam_implicit_status(e, &c, &o, &ep));
  cr_assert_eq(c, count, "line %d: count %" PRId64 ", expected %" PRId64, line,
               c, count);
  cr_assert_eq(o, overflow, "line %d: overflow %" PRId64 ", expected %" PRId64,
               line, o, overflow);
  cr_assert_eq(ep, episodes, "line %d: episodes %" PRId64 ", expected %" PRId64,
               line, ep, episodes);
}
#define EXPECT_STATUS(c, o, ep) expect_status((c), (o), (ep), __LINE__)

static void expect_absent(const char *name, int line) {
  obspam_stats s = OBSPAM_STATS_INIT;
  int rc = obspam_stats_get(e, OBSPAM_MAILBOX, name, T0, &s);
  cr_assert_eq(rc, OBSPAM_ENOTFOUND, "line %d: stats_get(%s) returned %d", line,
               name, rc);
}
#define EXPECT_ABSENT(name) expect_absent((name), __LINE__)

/* A login of the hosted domain is limited by name, by the mailbox limit a
   declared mailbox of the domain inherits. */
Test(implicit, login_limited_by_name) {
  obspam_verdict v = SASL(e, "Stolen@D.Example", 3, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "stolen@d.example", 5, 0, 0);
  v = SASL(e, "stolen@d.example", 2, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "stolen@d.example", 5, 3, 0);
  v = SASL(e, "stolen@d.example", 1, T0 + 2);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "stolen@d.example", 5, 5,
                 3598);
  EXPECT_CHAIN_COUNTS(e, "stolen@d.example", "d.example", "s", T0 + 2, 5, 1);
  EXPECT_STATS(e, OBSPAM_MAILBOX, "stolen@d.example", T0 + 2, 0, 5, 5, 1, 1,
               T0 + 2);
  EXPECT_EFF(e, OBSPAM_MAILBOX, "stolen@d.example", 5);
  int64_t lim = 0;
  RC(obspam_effective_limit(e, OBSPAM_MAILBOX, "never@d.example", &lim),
     OBSPAM_ENOTFOUND);
  /* Another login has its own counters. */
  v = SASL(e, "other@d.example", 5, T0 + 3);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "other@d.example", 5, 0, 0);
  EXPECT_STATUS(2, 0, 0);
  /* A domain's limit change reaches them as it reaches declared ones. */
  OK(obspam_set_limit(e, OBSPAM_DOMAIN, "d.example", OBSPAM_MAILBOX, 7));
  v = SASL(e, "stolen@d.example", 2, T0 + 4);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "stolen@d.example", 7, 5, 0);
}

/* Senders count too: forwards, and unauthenticated local mail. */
Test(implicit, senders_forwards_and_local_mail) {
  obspam_message m =
      tu_msg(0, NULL, "web@d.example", NULL, 2, -1, NULL, NULL, T0);
  obspam_verdict v = DECIDE(e, &m);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "web@d.example", 5, 0, 0);
  m = tu_msg(OBSPAM_MSG_FORWARD_REMOTE, NULL, "fwd@d.example", "192.0.2.1", 1,
             -1, NULL, NULL, T0);
  v = DECIDE(e, &m);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "fwd@d.example", 5, 0, 0);
  /* Inbound mail with a forged hosted sender makes nothing. */
  m = tu_msg(0, NULL, "forged@d.example", "198.51.100.77", 1, -1, NULL, NULL,
             T0);
  v = DECIDE(e, &m);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  EXPECT_ABSENT("forged@d.example");
  /* Nor does a bare domain, an unhosted domain or a script. */
  SASL(e, "d.example", 1, T0);
  SASL(e, "x@nowhere.example", 1, T0);
  OK(obspam_set_uid(e, "s", 1000));
  SCRIPT(e, 1000, "d.example", 1, T0);
  EXPECT_STATUS(2, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "d.example", T0, 5, 0);
}

/* obspam_check answers as obspam_decide would, and makes nothing. */
Test(implicit, check_makes_nothing) {
  OK(obspam_set_limit(e, OBSPAM_DOMAIN, "d.example", OBSPAM_MAILBOX, 0));
  obspam_message m =
      tu_msg(0, "new@d.example", NULL, "192.0.2.1", 1, -1, NULL, NULL, T0);
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  OK(obspam_check(e, &m, &v));
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "new@d.example", 0, 0, -1);
  EXPECT_STATUS(0, 0, 0);
  EXPECT_ABSENT("new@d.example");
  OK(obspam_set_limit(e, OBSPAM_DOMAIN, "d.example", OBSPAM_MAILBOX, 5));
  OK(obspam_check(e, &m, &v));
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "new@d.example", 5, 0, 0);
  EXPECT_STATUS(0, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "d.example", T0, 0, 0);
  /* Once it exists, a check reads it. */
  v = DECIDE(e, &m);
  OK(obspam_check(e, &m, &v));
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "new@d.example", 5, 1, 0);
  EXPECT_STATUS(1, 0, 0);
  /* With the cap met, a check predicts the overflow and counts none. */
  OK(obspam_set_option(e, OBSPAM_OPT_IMPLICIT_MAILBOXES, 1));
  m.sasl_username = "newer@d.example";
  OK(obspam_check(e, &m, &v));
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "d.example", -1, 1, 0);
  EXPECT_STATUS(1, 0, 0);
}

/* Past the cap the domain and subscription are still charged; the
   overflow is counted, and an episode each time the cap is met anew. */
Test(implicit, cap_and_overflow) {
  OK(obspam_set_option(e, OBSPAM_OPT_IMPLICIT_MAILBOXES, 2));
  SASL(e, "m1@d.example", 1, T0);
  SASL(e, "m2@d.example", 1, T0);
  obspam_verdict v = SASL(e, "m3@d.example", 4, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "d.example", -1, 2, 0);
  EXPECT_STATUS(2, 1, 1);
  v = SASL(e, "m4@d.example", 1, T0);
  EXPECT_STATUS(2, 2, 1);
  EXPECT_ABSENT("m3@d.example");
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "d.example", T0, 7, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s", T0, 7, 0);
  /* Existing ones still count; declared mailboxes are not capped. */
  v = SASL(e, "m1@d.example", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "m1@d.example", 5, 1, 0);
  v = SASL(e, "a@d.example", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "a@d.example", 5, 0, 0);
  EXPECT_STATUS(2, 2, 1);
  /* Room again (one removed, with its counters): the episode ends. */
  OK(obspam_remove(e, OBSPAM_MAILBOX, "m2@d.example"));
  EXPECT_STATUS(1, 2, 1);
  v = SASL(e, "m3@d.example", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "m3@d.example", 5, 0, 0);
  SASL(e, "m5@d.example", 1, T0);
  EXPECT_STATUS(2, 3, 2);
  /* Cap 0: none at all. */
  OK(obspam_set_option(e, OBSPAM_OPT_IMPLICIT_MAILBOXES, 0));
  v = SASL(e, "m1@d.example", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "m1@d.example", 5, 2, 0);
  v = SASL(e, "m9@d.example", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "d.example", -1, 12, 0);
  EXPECT_STATUS(2, 4, 2);
}

/* Declared later, through the API or a reload: the same counters. */
Test(implicit, declared_later_keeps_counters) {
  SASL(e, "late@d.example", 3, T0);
  OK(obspam_add(e, OBSPAM_MAILBOX, "LATE@d.example", NULL));
  EXPECT_STATUS(0, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "late@d.example", T0, 3, 0);
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "late@d.example", OBSPAM_MAILBOX, 4));
  obspam_verdict v = SASL(e, "late@d.example", 2, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "late@d.example", 4, 3,
                 3600);
  RC(obspam_add(e, OBSPAM_MAILBOX, "late@d.example", NULL), OBSPAM_EEXIST);

  SASL(e, "later@d.example", 2, T0 + 60);
  OK(obspam_load_config_string(e, "subscription s subscription=100\n"
                                  "domain d.example subscription=s mailbox=5\n"
                                  "mailbox a@d.example\n"
                                  "mailbox later@d.example limit=9\n"));
  EXPECT_STATUS(1, 0, 0); /* late@ is implicit again, with its counters */
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "late@d.example", T0 + 60, 3, 1);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "later@d.example", T0 + 60, 2, 0);
  v = SASL(e, "later@d.example", 8, T0 + 60);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "later@d.example", 9, 2,
                 3600);
  /* A reload without the domain takes them with it. */
  OK(obspam_load_config_string(e, "subscription s\n"));
  EXPECT_STATUS(0, 0, 0);
  EXPECT_ABSENT("late@d.example");
  OK(obspam_load_config_string(e, CONF));
  v = SASL(e, "late@d.example", 1, T0 + 60);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "late@d.example", 5, 0, 0);
}

/* Removing the domain or the subscription removes its implicit mailboxes
   and their counters; their open refusals still make notices. */
static char noticed[8][64];
static int n_noticed;
static void on_notice(const obspam_notice *n, void *ud) {
  (void)ud;
  if (n_noticed < 8)
    snprintf(noticed[n_noticed++], sizeof noticed[0], "%d %s %" PRId64, n->kind,
             n->name, n->refused);
}

Test(implicit, removed_with_their_domain) {
  OK(obspam_set_notify(e, on_notice, NULL));
  SASL(e, "x@d.example", 5, T0);
  SASL(e, "x@d.example", 1, T0);
  SASL(e, "y@d.example", 1, T0);
  EXPECT_STATUS(2, 0, 0);
  OK(obspam_remove(e, OBSPAM_DOMAIN, "d.example"));
  EXPECT_STATUS(0, 0, 0);
  EXPECT_ABSENT("x@d.example");
  n_noticed = 0;
  OK(obspam_notify_flush(e, T0 + 3600));
  /* Only x@ went over a limit of its own (5); d.example and s were
     refused on its way but stayed under theirs. */
  cr_assert_eq(n_noticed, 1);
  cr_assert_str_eq(noticed[0], "4 x@d.example 1");
  OK(obspam_add(e, OBSPAM_DOMAIN, "d.example", "s"));
  obspam_verdict v = SASL(e, "x@d.example", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "x@d.example", -1, 0, 0);
  OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "s"));
  EXPECT_STATUS(0, 0, 0);
}

static char hours[4][64];
static int n_hours;
static void on_hour(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  (void)ud;
  if (n_hours < 4)
    snprintf(hours[n_hours++], sizeof hours[0],
             "T0%+" PRId64 " %" PRId64 " %" PRId64, hour - T0, sent, refused);
}

static char rows[8][80];
static int n_rows;
static void on_row(const obspam_report_row *r, void *ud) {
  (void)ud;
  if (n_rows < 8)
    snprintf(rows[n_rows++], sizeof rows[0], "%d %s %" PRId64 " %" PRId64,
             r->kind, r->name, r->sent, r->refused);
}

/* History and reports show them as declared mailboxes. */
Test(implicit, history_and_report) {
  SASL(e, "h@d.example", 4, T0 + 10);
  SASL(e, "h@d.example", 2, T0 + 3000); /* 4 + 2 > 5: refused */
  SASL(e, "h@d.example", 4, T0 + 3610);
  n_hours = 0;
  OK(obspam_history(e, OBSPAM_MAILBOX, "h@d.example", T0, T0 + 7200, on_hour,
                    NULL));
  cr_assert_eq(n_hours, 2);
  cr_assert_str_eq(hours[0], "T0+0 4 1");
  cr_assert_str_eq(hours[1], "T0+3600 4 0");
  RC(obspam_history(e, OBSPAM_MAILBOX, "nope@d.example", T0, T0 + 7200, on_hour,
                    NULL),
     OBSPAM_ENOTFOUND);
  n_rows = 0;
  OK(obspam_report(e, T0, T0 + 7200, on_row, NULL));
  /* The report of attempts lists the objects over their own limit:
     the mailbox alone. */
  cr_assert_eq(n_rows, 1);
  cr_assert_str_eq(rows[0], "4 h@d.example 8 1");
}

/* A snapshot keeps them: loaded where the domain is hosted, a saved
   mailbox that is not declared comes back as an implicit one. */
Test(implicit, snapshot) {
  char path[] = "/tmp/obspam_implicit_XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  SASL(e, "snap@d.example", 3, T0);
  SASL(e, "a@d.example", 2, T0);
  OK(obspam_state_save(e, path));

  obspam_engine *e2 = tu_new();
  OK(obspam_load_config_string(e2, CONF));
  OK(obspam_state_load(e2, path));
  int64_t count = -1;
  OK(obspam_implicit_status(e2, &count, NULL, NULL));
  cr_assert_eq(count, 1);
  EXPECT_COUNTS(e2, OBSPAM_MAILBOX, "snap@d.example", T0, 3, 0);
  EXPECT_COUNTS(e2, OBSPAM_MAILBOX, "a@d.example", T0, 2, 0);
  obspam_verdict v = SASL(e2, "snap@d.example", 3, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "snap@d.example", 5, 3,
                 3600);
  /* Declared there, the declared one takes the counters; with a cap of 0,
     an undeclared one is dropped. */
  obspam_engine_free(e2);
  e2 = tu_new();
  OK(obspam_load_config_string(e2, "subscription s\n"
                                   "domain d.example subscription=s\n"
                                   "mailbox snap@d.example limit=4\n"
                                   "implicit-mailboxes 0\n"));
  OK(obspam_state_load(e2, path));
  OK(obspam_implicit_status(e2, &count, NULL, NULL));
  cr_assert_eq(count, 0);
  EXPECT_COUNTS(e2, OBSPAM_MAILBOX, "snap@d.example", T0, 3, 0);
  obspam_stats s = OBSPAM_STATS_INIT;
  RC(obspam_stats_get(e2, OBSPAM_MAILBOX, "a@d.example", T0, &s),
     OBSPAM_ENOTFOUND);
  obspam_engine_free(e2);
  unlink(path);
}

/* A batch makes one implicit mailbox for several messages of one login. */
Test(implicit, batch) {
  tu_batch b;
  for (int i = 0; i < 12; i++)
    b.m[i] = tu_msg(0, i % 2 ? "b1@d.example" : "b2@d.example", NULL,
                    "192.0.2.1", 1, -1, NULL, NULL, T0 + i);
  tu_batch_ready(&b, 12);
  OK(obspam_decide_batch(e, b.pm, b.pv, b.rc, 12));
  EXPECT_VERDICT(b.v[8], OBSPAM_ACCEPT, OBSPAM_MAILBOX, "b2@d.example", 5, 4,
                 0);
  EXPECT_VERDICT(b.v[10], OBSPAM_REFUSE, OBSPAM_MAILBOX, "b2@d.example", 5, 5,
                 3590);
  EXPECT_VERDICT(b.v[11], OBSPAM_REFUSE, OBSPAM_MAILBOX, "b1@d.example", 5, 5,
                 3589);
  EXPECT_STATUS(2, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "b1@d.example", T0 + 11, 5, 1);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "b2@d.example", T0 + 11, 5, 1);
}

/* Once an implicit mailbox has no counters and no history left (its hour
   is past the retention), it is gone. */
Test(implicit, expires_with_its_history) {
  OK(obspam_set_option(e, OBSPAM_OPT_RETENTION_HOURS, 1));
  SASL(e, "old@d.example", 1, T0);
  EXPECT_STATUS(1, 0, 0);
  /* Later charges of other objects sweep what is idle: whatever the
     retention, the history keeps the day window's 24 clock hours, so
     the hour of T0 goes at T0 + 24 hours and not before. */
  for (int i = 0; i < 4; i++)
    SASL(e, "a@d.example", 1, T0 + 23 * 3600 + i);
  EXPECT_STATUS(1, 0, 0);
  for (int i = 0; i < 4; i++)
    SASL(e, "a@d.example", 1, T0 + 24 * 3600 + i);
  EXPECT_STATUS(0, 0, 0);
  EXPECT_ABSENT("old@d.example");
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MEASURE_HEAP 0 /* the sanitizers' allocators keep their own books */
#else
#define MEASURE_HEAP 1
#endif

static size_t heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

/* An attacker with a stolen password for the domain logs in with 100,000
   random local parts. With the cap at 10,000 exactly 10,000 implicit
   mailboxes exist; the other 90,000 logins are charged to the domain and
   subscription only and leave nothing behind. Each implicit mailbox costs
   its object, its window ring (with the minute window) and its history:
   1,349 bytes on x86-64 with glibc (13.5 MB for 10,000; the assertion
   allows 1,536), so the default cap of 100,000 bounds them to about
   135 MB. */
Test(implicit, memory_bounded_under_random_logins) {
  enum { CAP = 10000, LOGINS = 100000 };
  char login[64];
  OK(obspam_load_config_string(e, "subscription s\n"
                                  "domain d.example subscription=s\n"
                                  "implicit-mailboxes 10000\n"));
  srand(12345);
  size_t before = heap_in_use(), at_cap = 0;
  for (int i = 0; i < LOGINS; i++) {
    snprintf(login, sizeof login, "%08x%08x@d.example", (unsigned)rand(),
             (unsigned)i);
    obspam_message m =
        tu_msg(0, login, NULL, "198.51.100.9", 1, -1, NULL, NULL, T0 + i / 100);
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    OK(obspam_decide(e, &m, &v));
    cr_assert_eq(v.kind, i < CAP ? OBSPAM_MAILBOX : OBSPAM_DOMAIN);
    if (i == CAP)
      at_cap = heap_in_use();
  }
  size_t after = heap_in_use();
  EXPECT_STATUS(CAP, LOGINS - CAP, 1);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "d.example", T0 + 999, LOGINS, 0);
  if (MEASURE_HEAP) {
    size_t per = (at_cap - before) / CAP;
    cr_log_info("%d implicit mailboxes: %zu bytes, %zu each; after %d more "
                "logins: %zd bytes more",
                CAP, at_cap - before, per, LOGINS - CAP,
                (ssize_t)(after - at_cap));
    cr_assert_lt(per, 1536, "%zu bytes per implicit mailbox", per);
    /* Overflowing logins allocate nothing that stays. */
    cr_assert_lt(after > at_cap ? after - at_cap : 0, (size_t)65536,
                 "%zu bytes grown past the cap", after - at_cap);
  }
}
