/* SPDX-License-Identifier: MIT */
/* obspam_check: the verdict obspam_decide would give, with nothing charged,
   recorded or moved (counters, refusals, history, script paths, notices,
   the engine's clock). */
#include "testutil.h"

static obspam_engine *e;
static int notices;

static void count_notice(const obspam_notice *n, void *ud) {
  (void)n;
  (void)ud;
  notices++;
}

static void no_hour(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  (void)ud;
  cr_assert_fail("an hour %lld (%lld sent, %lld refused) after a check",
                 (long long)hour, (long long)sent, (long long)refused);
}

/* Subscription acme (uid 10001, limit 5), mailbox info@example.com (limit
   3). */
static void setup(void) {
  e = tu_fixture("check.conf");
  notices = 0;
}

static void teardown(void) { obspam_engine_free(e); }

TestSuite(check, .init = setup, .fini = teardown);

static obspam_verdict check(const char *login, uint32_t rcpt, int64_t t,
                            int line) {
  obspam_message m = tu_msg(0, login, NULL, NULL, rcpt, -1, NULL, NULL, t);
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  cr_assert_eq(obspam_check(e, &m, &v), OBSPAM_OK, "line %d: %s", line,
               obspam_engine_errmsg(e));
  return v;
}
#define CHECK(login, rcpt, t) check((login), (rcpt), (t), __LINE__)

Test(check, agrees_with_decide_and_charges_nothing) {
  obspam_verdict v;

  /* Empty: the check accepts, naming the lowest object, and counts 0. */
  v = CHECK("info@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 3, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 0, 0);
  SASL(e, "info@example.com", 3, T0);
  /* At the limit: refused with the retry decide would give (the bucket of
     minute T0/60 leaves at T0 + 3600; T0 + 30 waits 3570 s). */
  v = CHECK("info@example.com", 1, T0 + 30);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 3, 3,
                 3570);
  /* The refusal was not recorded, the count not changed. */
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 30, 3, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 30, 3, 0);
  /* More recipients than the limit: never. */
  v = CHECK("info@example.com", 4, T0 + 30);
  cr_assert_eq(v.retry_after, -1);
  /* The same message decided gives the same verdict, and records it. */
  v = SASL(e, "info@example.com", 1, T0 + 30);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 3, 3,
                 3570);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 30, 3, 1);
}

Test(check, parent_refuses_first) {
  obspam_verdict v;

  OK(obspam_add(e, OBSPAM_MAILBOX, "sales@example.com", NULL));
  SASL(e, "sales@example.com", 5, T0);
  v = CHECK("info@example.com", 1, T0 + 60);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 5, 5, 3540);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 60, 5, 0);
}

Test(check, moves_no_clock) {
  obspam_verdict v;

  SASL(e, "info@example.com", 3, T0);
  /* A check an hour later sees an empty window ... */
  v = CHECK("info@example.com", 1, T0 + 3600);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 3, 0, 0);
  /* ... but did not move time: a decision at T0 + 10 still sees the 3. */
  v = SASL(e, "info@example.com", 1, T0 + 10);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 3, 3,
                 3590);
}

Test(check, records_no_script_and_sends_no_notice) {
  obspam_message m = tu_msg(OBSPAM_MSG_SCRIPT, NULL, NULL, NULL, 9, 10001, NULL,
                            "/var/www/acme/mail.php", T0);
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_IMMEDIATE, 1));
  OK(obspam_set_notify(e, count_notice, NULL));
  OK(obspam_check(e, &m, &v));
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 5, 0, -1);
  cr_assert_eq(notices, 0, "a check sent %d notices", notices);
  /* The path was not recorded: it has no history at all. */
  RC(obspam_history(e, OBSPAM_SCRIPT, "/var/www/acme/mail.php", 0, T0 + 3600,
                    no_hour, NULL),
     OBSPAM_ENOTFOUND);
  cr_assert_eq(obspam_notify_flush(e, T0 + 7200), OBSPAM_OK);
  cr_assert_eq(notices, 0, "a flush after a check sent %d notices", notices);
}

Test(check, exempt_unknown_and_bad_input) {
  obspam_message m =
      tu_msg(0, NULL, "who@nowhere.test", NULL, 1, -1, NULL, NULL, T0);
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  OK(obspam_check(e, &m, &v));
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  m.recipients = 0;
  RC(obspam_check(e, &m, &v), OBSPAM_EINVAL);
  RC(obspam_check(e, NULL, &v), OBSPAM_EINVAL);
  RC(obspam_check(NULL, &m, &v), OBSPAM_EINVAL);
}

/* OBSPAM_MSG_PROBE: obspam_decide charges nothing, but a refusal is
   recorded as usual (statistics, history, notices). */
Test(check, probe_records_refusals_and_charges_nothing) {
  obspam_message m = tu_msg(OBSPAM_MSG_PROBE, "info@example.com", NULL, NULL, 1,
                            -1, NULL, "/srv/probe.php", T0 + 30);
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  /* Under the limit: accepted, nothing charged, no script sent. */
  OK(obspam_decide(e, &m, &v));
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 3, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 30, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 30, 0, 0);
  /* At the limit: refused, and the refusal counts on every level. */
  SASL(e, "info@example.com", 3, T0 + 30);
  OK(obspam_decide(e, &m, &v));
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 3, 3,
                 3570);
  EXPECT_CHAIN_COUNTS(e, "info@example.com", "example.com", "acme", T0 + 30, 3,
                      1);
  /* It is a refusal like any other for notices: the mailbox went over
     its own limit; the domain (unlimited) and acme (3 of 5) did not. */
  OK(obspam_set_notify(e, count_notice, NULL));
  OK(obspam_notify_flush(e, T0 + 7200));
  cr_assert_eq(notices, 1, "notices after a refused probe: %d", notices);
  cr_assert_eq(STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 30).exceeded,
               1);
  cr_assert_eq(STATS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 30).exceeded, 0);
}
