/* SPDX-License-Identifier: MIT */
/* obspam_decide: every rule of "Decision semantics (normative)" in API.md
   and the choices the README gives under "How a message is decided". */
#include <time.h>

#include "store.h"
#include "testutil.h"

static obspam_engine *e;

/*
 * The fixture tree (everything unlimited unless a test sets a limit):
 *   plan basic
 *   subscription acme (plan basic, uid 10001)
 *     domain example.com: info@, sales@
 *     domain example.net: bob@
 *   subscription other (no plan, uid 10002)
 *     domain other.org: x@
 */
TU_ENGINE_SETUP(tu_fixture("decide.conf"))

TestSuite(decide, .init = setup, .fini = teardown);

#define LIMIT(kind, name, which, v)                                            \
  OK(obspam_set_limit(e, (kind), (name), (which), (v)))
#define MBOX_LIMIT(name, v) LIMIT(OBSPAM_MAILBOX, name, OBSPAM_MAILBOX, v)
#define DOMAIN_LIMIT(name, v) LIMIT(OBSPAM_DOMAIN, name, OBSPAM_DOMAIN, v)
#define SUB_LIMIT(name, v)                                                     \
  LIMIT(OBSPAM_SUBSCRIPTION, name, OBSPAM_SUBSCRIPTION, v)
#define OPT(o, v) OK(obspam_set_option(e, (o), (v)))

/* Asserts the counters of every fixture object at T0 + 59 (the tests that
   use it charge only at T0 .. T0 + 59, so everything is in the window). */
static void expect_all(int64_t info, int64_t sales, int64_t bob, int64_t x,
                       int64_t com, int64_t net, int64_t org, int64_t acme,
                       int64_t other, int line) {
  const int64_t now = T0 + 59;
  tu_expect_counts(e, OBSPAM_MAILBOX, "info@example.com", now, info, 0, line);
  tu_expect_counts(e, OBSPAM_MAILBOX, "sales@example.com", now, sales, 0, line);
  tu_expect_counts(e, OBSPAM_MAILBOX, "bob@example.net", now, bob, 0, line);
  tu_expect_counts(e, OBSPAM_MAILBOX, "x@other.org", now, x, 0, line);
  tu_expect_counts(e, OBSPAM_DOMAIN, "example.com", now, com, 0, line);
  tu_expect_counts(e, OBSPAM_DOMAIN, "example.net", now, net, 0, line);
  tu_expect_counts(e, OBSPAM_DOMAIN, "other.org", now, org, 0, line);
  tu_expect_counts(e, OBSPAM_SUBSCRIPTION, "acme", now, acme, 0, line);
  tu_expect_counts(e, OBSPAM_SUBSCRIPTION, "other", now, other, 0, line);
}
/* Counters, in order: info sales bob x | example.com example.net other.org |
   acme other. No refusals anywhere. */
#define EXPECT_ALL(...) expect_all(__VA_ARGS__, __LINE__)
#define NOTHING_COUNTED() EXPECT_ALL(0, 0, 0, 0, 0, 0, 0, 0, 0)

/* A message with every field given; decided at once. */
static obspam_verdict dec(uint32_t flags, const char *sasl, const char *sender,
                          uint32_t rcpt, int64_t uid, const char *hint,
                          int64_t t, int line) {
  obspam_message m =
      tu_msg(flags, sasl, sender, "198.51.100.10", rcpt, uid, hint, NULL, t);
  return tu_decide_msg(e, &m, line);
}
#define DEC(flags, sasl, sender, rcpt, uid, hint, t)                           \
  dec((flags), (sasl), (sender), (rcpt), (uid), (hint), (t), __LINE__)

/* Decides a message without a hint at T0 and asserts the empty verdict
   of action (EXEMPT, UNKNOWN, or a disabled engine's ACCEPT). */
static void expect_empty_dec(int action, uint32_t flags, const char *sasl,
                             const char *sender, uint32_t rcpt, int64_t uid,
                             int line) {
  obspam_verdict v = dec(flags, sasl, sender, rcpt, uid, NULL, T0, line);

  tu_expect_verdict(&v, action, -1, "", 0, 0, 0, line);
}
#define EXPECT_EMPTY_DEC(action, flags, sasl, sender, rcpt, uid)               \
  expect_empty_dec((action), (flags), (sasl), (sender), (rcpt), (uid), __LINE__)

/* ---- rule 1: disabled ---------------------------------------------------- */

Test(decide, disabled_accepts_and_counts_nothing) {
  MBOX_LIMIT("info@example.com", 0);
  OK(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, 0));
  OPT(OBSPAM_OPT_ENABLED, 0);
  obspam_verdict v = SASL(e, "info@example.com", 5, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_ACCEPT);
  v = UNAUTH(e, "nobody@nowhere.test", 5, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_ACCEPT);
  v = SCRIPT(e, 10001, "example.com", 5, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_ACCEPT);
  v = SCRIPT(e, 4242, NULL, 5, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_ACCEPT);
  EXPECT_EMPTY_DEC(OBSPAM_ACCEPT, OBSPAM_MSG_MAILING_LIST, NULL,
                   "bob@example.net", 3, -1);
  NOTHING_COUNTED();
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0);
  cr_assert_eq(s.refused_total, 0);
  cr_assert_eq(s.last_refused, 0);
  /* Enabled again, the limit applies. */
  OPT(OBSPAM_OPT_ENABLED, 1);
  v = SASL(e, "info@example.com", 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "info@example.com", 0, 0);
}

/* ---- rule 3: exempt kinds of mail -----------------------------------------
 */

Test(decide, mailing_list_exempt_by_default) {
  obspam_verdict v;
  EXPECT_EMPTY_DEC(OBSPAM_EXEMPT, OBSPAM_MSG_MAILING_LIST, NULL,
                   "info@example.com", 3, -1);
  /* Rule 3 comes before the SASL rule. */
  EXPECT_EMPTY_DEC(OBSPAM_EXEMPT, OBSPAM_MSG_MAILING_LIST, "info@example.com",
                   "info@example.com", 3, -1);
  /* And before the script rule, even an unknown uid. */
  v = DEC(OBSPAM_MSG_MAILING_LIST | OBSPAM_MSG_SCRIPT, NULL, NULL, 3, 999, NULL,
          T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  /* And an unknown sender is EXEMPT, not UNKNOWN. */
  EXPECT_EMPTY_DEC(OBSPAM_EXEMPT, OBSPAM_MSG_MAILING_LIST, NULL,
                   "x@nowhere.test", 3, -1);
  NOTHING_COUNTED();
}

Test(decide, mailing_list_counted) {
  OPT(OBSPAM_OPT_COUNT_MAILING_LISTS, 1);
  obspam_verdict v =
      DEC(OBSPAM_MSG_MAILING_LIST, NULL, "info@example.com", 3, -1, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "info@example.com");
  /* Counted even with unauthenticated counting off. */
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 0);
  v = DEC(OBSPAM_MSG_MAILING_LIST, NULL, "bob@example.net", 2, -1, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "bob@example.net");
  /* A plain unauthenticated message is not. */
  EXPECT_EMPTY_DEC(OBSPAM_UNKNOWN, 0, NULL, "bob@example.net", 2, -1);
  /* A counted list delivery from nobody we host is UNKNOWN. */
  EXPECT_EMPTY_DEC(OBSPAM_UNKNOWN, OBSPAM_MSG_MAILING_LIST, NULL,
                   "list@nowhere.test", 2, -1);
  EXPECT_ALL(3, 0, 2, 0, 3, 2, 0, 5, 0);
}

/* With both unauthenticated and list counting off, a list delivery is
   EXEMPT (rule 3), not UNKNOWN. */
Test(decide, mailing_list_off_unauth_off) {
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 0);
  EXPECT_EMPTY_DEC(OBSPAM_EXEMPT, OBSPAM_MSG_MAILING_LIST, NULL,
                   "info@example.com", 1, -1);
  NOTHING_COUNTED();
}

Test(decide, forward_local_exempt_by_default) {
  EXPECT_EMPTY_DEC(OBSPAM_EXEMPT, OBSPAM_MSG_FORWARD_LOCAL, NULL,
                   "info@example.com", 1, -1);
  EXPECT_EMPTY_DEC(OBSPAM_EXEMPT, OBSPAM_MSG_FORWARD_LOCAL, NULL,
                   "x@nowhere.test", 1, -1);
  NOTHING_COUNTED();
}

Test(decide, forward_local_counted) {
  OPT(OBSPAM_OPT_COUNT_FORWARD_LOCAL, 1);
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 0);
  obspam_verdict v =
      DEC(OBSPAM_MSG_FORWARD_LOCAL, NULL, "info@example.com", 4, -1, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "info@example.com");
  EXPECT_EMPTY_DEC(OBSPAM_UNKNOWN, OBSPAM_MSG_FORWARD_LOCAL, NULL,
                   "x@nowhere.test", 1, -1);
  EXPECT_ALL(4, 0, 0, 0, 4, 0, 0, 4, 0);
}

Test(decide, forward_remote_counted_by_default) {
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 0);
  obspam_verdict v =
      DEC(OBSPAM_MSG_FORWARD_REMOTE, NULL, "bob@example.net", 2, -1, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "bob@example.net");
  /* The forwarder is resolved as a login is: an implicit mailbox of a
     hosted domain. */
  v = DEC(OBSPAM_MSG_FORWARD_REMOTE, NULL, "Alias@Other.ORG", 3, -1, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "alias@other.org");
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "alias@other.org", T0, 3, 0);
  /* A forwarder we do not host: UNKNOWN. */
  EXPECT_EMPTY_DEC(OBSPAM_UNKNOWN, OBSPAM_MSG_FORWARD_REMOTE, NULL,
                   "x@nowhere.test", 1, -1);
  EXPECT_EMPTY_DEC(OBSPAM_UNKNOWN, OBSPAM_MSG_FORWARD_REMOTE, NULL, "", 1, -1);
  EXPECT_ALL(0, 0, 2, 0, 0, 2, 3, 2, 3);
}

Test(decide, forward_remote_off) {
  OPT(OBSPAM_OPT_COUNT_FORWARD_REMOTE, 0);
  EXPECT_EMPTY_DEC(OBSPAM_EXEMPT, OBSPAM_MSG_FORWARD_REMOTE, NULL,
                   "bob@example.net", 2, -1);
  /* Exempt before the SASL rule too. */
  EXPECT_EMPTY_DEC(OBSPAM_EXEMPT, OBSPAM_MSG_FORWARD_REMOTE, "bob@example.net",
                   "bob@example.net", 2, -1);
  NOTHING_COUNTED();
}

/* A counted forward with a resolvable SASL login: the SASL rule comes
   first. */
Test(decide, forward_with_login_charges_login) {
  obspam_verdict v = DEC(OBSPAM_MSG_FORWARD_REMOTE, "bob@example.net",
                         "info@example.com", 2, -1, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "bob@example.net");
  EXPECT_ALL(0, 0, 2, 0, 0, 2, 0, 2, 0);
}

/* ---- rule 4: SASL logins ---------------------------------------------------
 */

Test(decide, sasl_mailbox_charges_three_levels) {
  obspam_verdict v = SASL(e, "info@example.com", 3, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "info@example.com");
  EXPECT_ALL(3, 0, 0, 0, 3, 0, 0, 3, 0);
  v = SASL(e, "info@example.com", 2, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 3, 0);
  v = SASL(e, "sales@example.com", 1, T0 + 2);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "sales@example.com");
  v = SASL(e, "bob@example.net", 4, T0 + 3);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "bob@example.net");
  v = SASL(e, "x@other.org", 7, T0 + 4);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "x@other.org");
  EXPECT_ALL(5, 1, 4, 7, 6, 4, 7, 10, 7);
}

/* The login wins over the envelope sender. */
Test(decide, sasl_login_wins_over_sender) {
  obspam_verdict v =
      DEC(0, "bob@example.net", "info@example.com", 2, -1, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "bob@example.net");
  EXPECT_ALL(0, 0, 2, 0, 0, 2, 0, 2, 0);
}

/* A login of a hosted domain whose mailbox is not declared is an implicit
   mailbox, with the mailbox limit a declared one would inherit. */
Test(decide, sasl_hosted_domain_unknown_mailbox) {
  DOMAIN_LIMIT("example.com", 50);
  LIMIT(OBSPAM_DOMAIN, "example.com", OBSPAM_MAILBOX, 4);
  obspam_verdict v =
      DEC(0, "nobody@example.com", "info@example.com", 3, -1, NULL, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "nobody@example.com", 4, 0,
                 0);
  v = DEC(0, "Nobody@EXAMPLE.com", NULL, 2, -1, NULL, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "nobody@example.com", 4, 3,
                 3600);
  v = DEC(0, "Nobody@EXAMPLE.com", NULL, 1, -1, NULL, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "nobody@example.com", 4, 3,
                 0);
  EXPECT_CHAIN_COUNTS(e, "nobody@example.com", "example.com", "acme", T0, 4, 1);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 0, 0);
}

/* A bare domain name as login resolves to that domain when hosted. */
Test(decide, sasl_bare_domain) {
  obspam_verdict v = DEC(0, "Example.NET", NULL, 2, -1, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_DOMAIN, "example.net");
  EXPECT_ALL(0, 0, 0, 0, 0, 2, 0, 2, 0);
}

/* A login that resolves to nothing falls through to the next rules. */
Test(decide, sasl_unresolvable_falls_through) {
  /* The client is not local: count unauthenticated mail from anywhere. */
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 1);
  static const char *const logins[] = {
      "x@nowhere.test",
      "nowhere.test",
      "a@b@example.com",
      "info",
      "acme",
      "info@example.co",
      "x@",
      "",
  };
  for (size_t i = 0; i < sizeof logins / sizeof logins[0]; i++) {
    obspam_verdict v = DEC(0, logins[i], "info@example.com", 1, -1, NULL, T0);
    EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                   OBSPAM_UNLIMITED, (int64_t)i, 0);
  }
  /* With unauthenticated counting off, nothing else applies: UNKNOWN. */
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 0);
  obspam_verdict v;
  EXPECT_EMPTY_DEC(OBSPAM_UNKNOWN, 0, "x@nowhere.test", "info@example.com", 1,
                   -1);
  /* ... but a resolvable login is still charged. */
  v = DEC(0, "info@example.com", NULL, 1, -1, NULL, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 8, 0);
  /* An unresolvable login with the script flag falls through to the uid. */
  v = DEC(OBSPAM_MSG_SCRIPT, "x@nowhere.test", NULL, 1, 10002, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_SUBSCRIPTION, "other");
  EXPECT_ALL(9, 0, 0, 0, 9, 0, 0, 9, 1);
}

/* Logins of any length or shape are simply not hosted, and neither are
   such senders of a domain that is not; a sender that is no name in a
   hosted domain charges the domain (unauthenticated_sender_that_is_no_
   name_charges_its_domain in test_forward.c). */
Test(decide, sasl_overlong_or_odd_login_is_not_an_error) {
  /* The client is not local: count unauthenticated mail from anywhere. */
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 1);
  char big[1000], far[1000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  memcpy(far, big, sizeof far);
  memcpy(big + sizeof big - 13, "@example.com", 12);
  memcpy(far + sizeof far - 14, "@nowhere.test", 13);
  obspam_verdict v = DEC(0, big, "bob@example.net", 1, -1, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "bob@example.net");
  EXPECT_EMPTY_DEC(OBSPAM_UNKNOWN, 0, NULL, far, 1, -1);
  v = DEC(0, "info@example.com\n", "bob@example.net", 1, -1, NULL, T0);
  cr_assert_eq(v.action, OBSPAM_ACCEPT);
  EXPECT_ALL(0, 0, 2, 0, 0, 2, 0, 2, 0);
}

/* A resolvable login with the script flag: the SASL rule comes first. */
Test(decide, sasl_before_script) {
  obspam_verdict v =
      DEC(OBSPAM_MSG_SCRIPT, "bob@example.net", NULL, 1, 10002, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "bob@example.net");
  EXPECT_ALL(0, 0, 1, 0, 0, 1, 0, 1, 0);
}

/* ---- rule 4: scripts -------------------------------------------------------
 */

Test(decide, script_charges_subscription) {
  obspam_verdict v = SCRIPT(e, 10001, NULL, 3, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_SUBSCRIPTION, "acme");
  /* Never a mailbox, even when the sender is one. */
  v = DEC(OBSPAM_MSG_SCRIPT, NULL, "info@example.com", 2, 10001, NULL, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, "acme",
                 OBSPAM_UNLIMITED, 3, 0);
  EXPECT_ALL(0, 0, 0, 0, 0, 0, 0, 5, 0);
}

Test(decide, script_domain_hint) {
  SUB_LIMIT("acme", 100);
  DOMAIN_LIMIT("example.net", 40);
  /* A hosted domain of the subscription: charged, and named. */
  obspam_verdict v = SCRIPT(e, 10001, "example.net", 3, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "example.net", 40, 0, 0);
  v = SCRIPT(e, 10001, "EXAMPLE.Net", 2, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "example.net", 40, 3, 0);
  /* Another subscription's domain: ignored. */
  v = SCRIPT(e, 10001, "other.org", 4, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, "acme", 100, 5, 0);
  /* Not hosted, or not a domain name: ignored. */
  v = SCRIPT(e, 10001, "nowhere.test", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, "acme", 100, 9, 0);
  v = SCRIPT(e, 10001, "", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, "acme", 100, 10, 0);
  v = SCRIPT(e, 10001, "info@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, "acme", 100, 11, 0);
  EXPECT_ALL(0, 0, 0, 0, 0, 5, 0, 12, 0);
}

Test(decide, script_unknown_uid) {
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 1);
  obspam_verdict v = SCRIPT(e, 4242, "example.com", 1, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  v = SCRIPT(e, -1, "example.com", 1, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  /* No fall-through to the sender. */
  EXPECT_EMPTY_DEC(OBSPAM_UNKNOWN, OBSPAM_MSG_SCRIPT, NULL, "info@example.com",
                   1, 4242);
  /* Unknown even when scripts are forbidden everywhere. */
  OK(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, 0));
  v = SCRIPT(e, 4242, NULL, 1, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  NOTHING_COUNTED();
}

/* Scripts not allowed: REFUSE naming the subscription, retry -1, limit and
   count of the subscription, a refusal on every charged object and nothing
   charged. */
Test(decide, scripts_forbidden_verdict) {
  SUB_LIMIT("acme", 50);
  obspam_verdict v = SASL(e, "info@example.com", 7, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "info@example.com");
  OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "acme", 0));
  v = SCRIPT(e, 10001, "example.com", 2, T0 + 5);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "acme", 50, 7);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 5, 7, 1);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.com", T0 + 5, 7, 1);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 5, 7, 0);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.net", T0 + 5, 0, 0);
  /* 7 < 50: still sending for other kinds of mail. */
  EXPECT_STATS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 5, 1, 50, 7, 1, 1, T0 + 5);
  /* Without a hint only the subscription records the refusal. */
  v = SCRIPT(e, 10001, NULL, 1, T0 + 6);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "acme", 50, 7);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 6, 7, 2);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.com", T0 + 6, 7, 1);
  /* Even a domain over its limit does not change who is named. */
  DOMAIN_LIMIT("example.com", 0);
  v = SCRIPT(e, 10001, "example.com", 1, T0 + 7);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "acme", 50, 7);
  /* Unlimited subscription: limit -1 in the verdict. */
  OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "other", 0));
  v = SCRIPT(e, 10002, NULL, 1, T0 + 8);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "other", OBSPAM_UNLIMITED, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "other", T0 + 8, 0, 1);
}

/* Whether a script of acme (plan basic) and of other (no plan) may send. */
static void expect_scripts(int acme_allowed, int other_allowed, int line) {
  obspam_verdict v = tu_script(e, 10001, NULL, 1, T0, line);
  cr_assert_eq(v.action, acme_allowed ? OBSPAM_ACCEPT : OBSPAM_REFUSE,
               "line %d: acme script action %d", line, v.action);
  cr_assert_eq(v.kind, OBSPAM_SUBSCRIPTION);
  cr_assert_str_eq(v.object, "acme");
  cr_assert_eq(v.retry_after, acme_allowed ? 0 : -1);
  v = tu_script(e, 10002, NULL, 1, T0, line);
  cr_assert_eq(v.action, other_allowed ? OBSPAM_ACCEPT : OBSPAM_REFUSE,
               "line %d: other script action %d", line, v.action);
  cr_assert_eq(v.kind, OBSPAM_SUBSCRIPTION);
  cr_assert_str_eq(v.object, "other");
  cr_assert_eq(v.retry_after, other_allowed ? 0 : -1);
}
#define EXPECT_SCRIPTS(a, o) expect_scripts((a), (o), __LINE__)

static void scripts(int server, int plan, int sub) {
  OK(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, server));
  OK(obspam_set_scripts_allowed(e, OBSPAM_PLAN, "basic", plan));
  OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "acme", sub));
}

/* Its own setting, else its plan's, else the server's. */
Test(decide, scripts_allowed_chain) {
  const int I = OBSPAM_INHERIT;
  EXPECT_SCRIPTS(1, 1); /* the default: allowed */
  scripts(0, I, I);
  EXPECT_SCRIPTS(0, 0);
  scripts(1, 0, I);
  EXPECT_SCRIPTS(0, 1);
  scripts(1, I, 0);
  EXPECT_SCRIPTS(0, 1);
  scripts(0, 1, I);
  EXPECT_SCRIPTS(1, 0);
  scripts(0, 0, 1);
  EXPECT_SCRIPTS(1, 0);
  scripts(1, 0, 1);
  EXPECT_SCRIPTS(1, 1);
  scripts(1, 1, 0);
  EXPECT_SCRIPTS(0, 1);
  scripts(0, I, 1);
  EXPECT_SCRIPTS(1, 0);
  scripts(1, I, I);
  EXPECT_SCRIPTS(1, 1);
  /* other's own setting shadows the server. */
  OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "other", 0));
  EXPECT_SCRIPTS(1, 0);
  OK(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, 0));
  OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "other", 1));
  EXPECT_SCRIPTS(0, 1);
  /* Refusals were recorded: acme was refused 5 times ((0,I,I), (1,0,I),
     (1,I,0), (1,1,0) and the last one), other 5 times (the four rows with
     server 0 while it inherited, and its own 0). */
  obspam_stats s = STATS(e, OBSPAM_SUBSCRIPTION, "acme", T0);
  cr_assert_eq(s.refused, 5, "acme refused %" PRId64, s.refused);
  cr_assert_eq(s.count, 7, "acme sent %" PRId64, s.count);
  s = STATS(e, OBSPAM_SUBSCRIPTION, "other", T0);
  cr_assert_eq(s.refused, 5, "other refused %" PRId64, s.refused);
  cr_assert_eq(s.count, 7, "other sent %" PRId64, s.count);
}

/* ---- rule 4: unauthenticated senders ----------------------------------------
 */

Test(decide, unauthenticated_sender) {
  /* The client is not local: count unauthenticated mail from anywhere. */
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 1);
  obspam_verdict v = UNAUTH(e, "INFO@Example.Com", 2, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "info@example.com");
  v = UNAUTH(e, "someone@Example.NET", 3, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "someone@example.net");
  v = UNAUTH(e, "other.org", 4, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "other.org", OBSPAM_UNLIMITED,
                 0, 0);
  /* An empty login is no login. */
  v = DEC(0, "", "sales@example.com", 1, -1, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "sales@example.com");
  EXPECT_ALL(2, 1, 0, 0, 3, 3, 4, 6, 4);
}

Test(decide, unauthenticated_not_counted) {
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 0);
  obspam_verdict v = UNAUTH(e, "info@example.com", 2, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  EXPECT_EMPTY_DEC(OBSPAM_UNKNOWN, 0, "", "info@example.com", 2, -1);
  NOTHING_COUNTED();
}

/* A message from sender with this client address (NULL: local). */
static obspam_verdict from(const char *client, const char *sender, int line) {
  obspam_message m = tu_msg(0, NULL, sender, client, 1, -1, NULL, NULL, T0);
  return tu_decide_msg(e, &m, line);
}
#define FROM(client, sender) from((client), (sender), __LINE__)

/* The default, "local": inbound mail with a forged hosted sender is not
   outgoing mail; a local submission and the default local networks are. */
Test(decide, unauthenticated_local_by_default) {
  int64_t v0 = -1;
  OK(obspam_get_option(e, OBSPAM_OPT_COUNT_UNAUTHENTICATED, &v0));
  cr_assert_eq(v0, 2);
  MBOX_LIMIT("info@example.com", 0);
  static const char *const remote[] = {
      "198.51.100.77", "126.255.255.255", "128.0.0.1", "::2",
      "2001:db8::1",   "::ffff:10.0.0.1", "0.0.0.0",
  };
  for (size_t i = 0; i < sizeof remote / sizeof remote[0]; i++) {
    obspam_verdict v = FROM(remote[i], "info@example.com");
    cr_assert_eq(v.action, OBSPAM_UNKNOWN, "client %s: action %d", remote[i],
                 v.action);
    EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  }
  NOTHING_COUNTED();
  MBOX_LIMIT("info@example.com", OBSPAM_UNLIMITED);
  static const char *const local[] = {
      NULL, "", "127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.9",
  };
  for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
    obspam_verdict v = FROM(local[i], "info@example.com");
    EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                   OBSPAM_UNLIMITED, (int64_t)i, 0);
  }
  EXPECT_ALL(6, 0, 0, 0, 6, 0, 0, 6, 0);
}

/* Configured local networks replace the defaults; removing the last one
   brings the defaults back. IPv4 entries match IPv4-mapped IPv6. */
Test(decide, unauthenticated_local_networks) {
  OK(obspam_local_network_add(e, "10.0.5.0/24"));
  OK(obspam_local_network_add(e, "2001:db8:1::/48"));
  obspam_verdict v = FROM("10.0.5.200", "info@example.com");
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "info@example.com");
  v = FROM("::ffff:10.0.5.1", "info@example.com");
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 1, 0);
  v = FROM("2001:db8:1:ffff::1", "info@example.com");
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 2, 0);
  /* Outside them, and the defaults no longer apply; local submissions
     always count. */
  v = FROM("10.0.6.1", "info@example.com");
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  v = FROM("127.0.0.1", "info@example.com");
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  v = FROM("::1", "info@example.com");
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  v = FROM(NULL, "info@example.com");
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 3, 0);
  OK(obspam_local_network_remove(e, "10.0.5.0/24"));
  v = FROM("10.0.5.200", "info@example.com");
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  OK(obspam_local_network_remove(e, "2001:db8:1::/48"));
  v = FROM("127.0.0.1", "info@example.com");
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 4, 0);
  EXPECT_ALL(5, 0, 0, 0, 5, 0, 0, 5, 0);
}

/* 1 counts from anywhere, 0 never; logins, scripts and counted lists do
   not depend on it. The whitelist still comes first. */
Test(decide, unauthenticated_option_values) {
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 1);
  obspam_verdict v = FROM("198.51.100.77", "info@example.com");
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "info@example.com");
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 0);
  v = FROM(NULL, "info@example.com");
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  v = FROM("127.0.0.1", "info@example.com");
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 2);
  OPT(OBSPAM_OPT_COUNT_MAILING_LISTS, 1);
  /* A counted list delivery is charged whatever the client. */
  v = DEC(OBSPAM_MSG_MAILING_LIST, NULL, "bob@example.net", 3, -1, NULL, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "bob@example.net");
  OK(obspam_whitelist_add(e, "127.0.0.0/8"));
  v = FROM("127.0.0.1", "info@example.com");
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  RC(obspam_set_option(e, OBSPAM_OPT_COUNT_UNAUTHENTICATED, 3), OBSPAM_EINVAL);
  RC(obspam_set_option(e, OBSPAM_OPT_COUNT_UNAUTHENTICATED, -1), OBSPAM_EINVAL);
  EXPECT_ALL(1, 0, 3, 0, 1, 3, 0, 4, 0);
}

Test(decide, null_and_unknown_senders) {
  static const char *const senders[] = {
      "",        "x@nowhere.test", "nowhere.test", "<>", "info@example.co",
      "example", "acme",           NULL,
  };
  MBOX_LIMIT("info@example.com", 0);
  for (size_t i = 0; i < sizeof senders / sizeof senders[0]; i++) {
    obspam_verdict v = UNAUTH(e, senders[i], 5, T0);
    cr_assert_eq(v.action, OBSPAM_UNKNOWN, "sender \"%s\": action %d",
                 senders[i] ? senders[i] : "(null)", v.action);
    EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  }
  NOTHING_COUNTED();
}

/* ---- rules 5 and 6: limits
 * ---------------------------------------------------- */

/* Parents are sums of their children and the parent's limit wins. */
Test(decide, subscription_limit_across_mailboxes) {
  SUB_LIMIT("acme", 3);
  LIMIT(OBSPAM_SERVER, NULL, OBSPAM_MAILBOX, 10);
  obspam_verdict v = SASL(e, "info@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 10, 0,
                 0);
  v = SASL(e, "info@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 10, 1,
                 0);
  v = SASL(e, "bob@example.net", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "bob@example.net", 10, 0, 0);
  /* The 4th: acme has 3 of 3. All charges are in minute T0/60, so they
     leave the window at T0 + 3600: retry = 3600. */
  v = SASL(e, "bob@example.net", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 3, 3, 3600);
  v = SASL(e, "sales@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 3, 3, 3600);
  /* other is not affected. */
  v = SASL(e, "x@other.org", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "x@other.org", 10, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0, 3, 2);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "bob@example.net", T0, 1, 1);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "sales@example.com", T0, 0, 1);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 2, 0);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.com", T0, 2, 1);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.net", T0, 1, 1);
  obspam_stats s = STATS(e, OBSPAM_SUBSCRIPTION, "acme", T0);
  cr_assert_eq(s.sending, 0, "acme is at its limit");
  cr_assert_eq(s.limit, 3);
  /* info is under its own limit, but its subscription blocks it. */
  s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0);
  cr_assert_eq(s.sending, 0, "acme blocks info");
  cr_assert_eq(s.blocked_kind, OBSPAM_SUBSCRIPTION);
  cr_assert_str_eq(s.blocked_by, "acme");
  cr_assert_eq(s.exceeded, 0, "info never went over its own limit");
}

Test(decide, domain_limit_across_mailboxes) {
  DOMAIN_LIMIT("example.com", 2);
  obspam_verdict v = SASL(e, "info@example.com", 1, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "info@example.com");
  v = SASL(e, "sales@example.com", 1, T0 + 30);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "sales@example.com");
  /* t = T0+40, both charges in minute T0/60: retry = 3600 - 40 = 3560. */
  v = SASL(e, "info@example.com", 1, T0 + 40);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_DOMAIN, "example.com", 2, 2, 3560);
  v = SASL(e, "bob@example.net", 1, T0 + 40);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "bob@example.net");
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 40, 3, 1);
}

/* Among objects that wait equally long, the highest is named. */
Test(decide, equal_waits_name_the_highest) {
  /* mailbox full only */
  SUB_LIMIT("acme", 5);
  DOMAIN_LIMIT("example.com", 5);
  MBOX_LIMIT("info@example.com", 1);
  obspam_verdict v = SASL(e, "info@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 1, 0, 0);
  v = SASL(e, "info@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 1, 1,
                 3600);
  /* domain and mailbox full: the domain */
  DOMAIN_LIMIT("example.com", 1);
  v = SASL(e, "info@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_DOMAIN, "example.com", 1, 1, 3600);
  /* all three full: the subscription */
  SUB_LIMIT("acme", 1);
  v = SASL(e, "info@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 1, 1, 3600);
  /* subscription and mailbox full, domain not: the subscription */
  DOMAIN_LIMIT("example.com", OBSPAM_UNLIMITED);
  v = SASL(e, "info@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 1, 1, 3600);
  /* only the subscription full */
  MBOX_LIMIT("info@example.com", 100);
  v = SASL(e, "info@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 1, 1, 3600);
  EXPECT_CHAIN_COUNTS(e, "info@example.com", "example.com", "acme", T0, 1, 5);
}

/* All or nothing: a count that does not fit is refused whole. */
Test(decide, all_or_nothing) {
  MBOX_LIMIT("info@example.com", 10);
  obspam_verdict v = SASL(e, "info@example.com", 8, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 10, 0,
                 0);
  /* 8 + 3 > 10. The 8 leave at T0 + 3600; t = T0 + 60: retry 3540. */
  v = SASL(e, "info@example.com", 3, T0 + 60);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 10, 8,
                 3540);
  EXPECT_CHAIN_COUNTS(e, "info@example.com", "example.com", "acme", T0 + 60, 8,
                      1);
  /* 8 + 2 = 10 fits exactly. */
  v = SASL(e, "info@example.com", 2, T0 + 60);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 10, 8,
                 0);
  EXPECT_CHAIN_COUNTS(e, "info@example.com", "example.com", "acme", T0 + 60, 10,
                      1);
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 60);
  cr_assert_eq(s.sending, 0);
  /* 1 more: 10 + 1 > 10; the 8 leave at T0+3600, after which 2 + 1 fits;
     t = T0 + 60: retry 3540. */
  v = SASL(e, "info@example.com", 1, T0 + 60);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 10, 10,
                 3540);
}

/* A refused message is not charged; refusals count attempts, not
   recipients, on every charged object. */
Test(decide, refusals_not_charged) {
  MBOX_LIMIT("info@example.com", 2);
  SASL(e, "info@example.com", 2, T0);
  for (int i = 0; i < 5; i++) {
    obspam_verdict v = SASL(e, "info@example.com", 7, T0 + 10);
    /* 7 > 2: never fits. */
    EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "info@example.com", 2, 2);
  }
  EXPECT_CHAIN_COUNTS(e, "info@example.com", "example.com", "acme", T0 + 10, 2,
                      5);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.net", T0 + 10, 0, 0);
  EXPECT_STATS(e, OBSPAM_DOMAIN, "example.com", T0 + 10, 1, OBSPAM_UNLIMITED, 2,
               5, 5, T0 + 10);
}

Test(decide, count_unit_messages) {
  MBOX_LIMIT("info@example.com", 2);
  OPT(OBSPAM_OPT_COUNT_UNIT, 1);
  obspam_verdict v = SASL(e, "info@example.com", 500, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 2, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 1, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0, 1, 0);
  v = SASL(e, "info@example.com", 500, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 2, 1, 0);
  v = SASL(e, "info@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 2, 2,
                 3600);
  /* Back to recipients: 500 > 2 never fits; bob is unlimited and takes
     500. */
  OPT(OBSPAM_OPT_COUNT_UNIT, 0);
  v = SASL(e, "info@example.com", 500, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "info@example.com", 2, 2);
  v = SASL(e, "bob@example.net", 500, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "bob@example.net");
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0, 502, 2);
}

Test(decide, limit_zero) {
  MBOX_LIMIT("info@example.com", 0);
  obspam_verdict v = SASL(e, "info@example.com", 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "info@example.com", 0, 0);
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0);
  cr_assert_eq(s.count, 0);
  cr_assert_eq(s.refused, 1);
  cr_assert_eq(s.sending, 0, "0 < 0 is false: not sending");
  cr_assert_eq(s.limit, 0);
  OPT(OBSPAM_OPT_COUNT_UNIT, 1);
  v = SASL(e, "info@example.com", 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "info@example.com", 0, 0);
  /* A subscription with limit 0 refuses its scripts too. */
  SUB_LIMIT("other", 0);
  v = SCRIPT(e, 10002, NULL, 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "other", 0, 0);
}

Test(decide, count_larger_than_limit) {
  MBOX_LIMIT("info@example.com", 5);
  obspam_verdict v = SASL(e, "info@example.com", 6, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "info@example.com", 5, 0);
  v = SASL(e, "info@example.com", 5, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 5, 0, 0);
}

/* retry_after is -1 when c exceeds the limit of any charged object, even
   one below a full one, and that object (it waits longest) is named. */
Test(decide, never_fits_lower_object) {
  SUB_LIMIT("acme", 10);
  MBOX_LIMIT("info@example.com", 2);
  SASL(e, "bob@example.net", 10, T0);
  obspam_verdict v = SASL(e, "info@example.com", 3, T0 + 1);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "info@example.com", 2, 0);
  /* With 2 recipients it would fit info: retry is acme's, 3599. */
  v = SASL(e, "info@example.com", 2, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 10, 10, 3599);
}

/* Exact verdict fields on accept: the lowest charged object, in lower case,
   its effective limit, its count before this message, retry 0. */
Test(decide, accept_verdict_fields) {
  /* The client is not local: count unauthenticated mail from anywhere. */
  OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 1);
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "BigCorp", NULL));
  OK(obspam_add(e, OBSPAM_DOMAIN, "BigCorp.EXAMPLE", "BIGCORP"));
  OK(obspam_add(e, OBSPAM_MAILBOX, "Info@BigCorp.Example", NULL));
  OK(obspam_set_uid(e, "bigcorp", 555));
  LIMIT(OBSPAM_SUBSCRIPTION, "bigcorp", OBSPAM_MAILBOX, 70);
  LIMIT(OBSPAM_SUBSCRIPTION, "bigcorp", OBSPAM_DOMAIN, 80);
  LIMIT(OBSPAM_SUBSCRIPTION, "bigcorp", OBSPAM_SUBSCRIPTION, 90);
  obspam_verdict v = SASL(e, "INFO@BIGCORP.EXAMPLE", 4, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@bigcorp.example", 70,
                 0, 0);
  v = SASL(e, "info@bigcorp.example", 5, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@bigcorp.example", 70,
                 4, 0);
  v = UNAUTH(e, "Sales@BigCorp.Example", 6, T0 + 2);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "sales@bigcorp.example", 70,
                 0, 0);
  v = SCRIPT(e, 555, NULL, 7, T0 + 3);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, "bigcorp", 90, 15, 0);
  v = SCRIPT(e, 555, "BIGCORP.example", 1, T0 + 4);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "bigcorp.example", 80, 15, 0);
  /* Refusals name objects in lower case too. bigcorp has 23, the domain 16,
     the mailbox 9, all in minute T0/60. 71 recipients: 23 + 71 > 90 waits
     3595 s, but 71 is more than the mailbox limit 70: never, the mailbox
     is named. */
  v = SASL(e, "Info@BigCorp.Example", 71, T0 + 5);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "info@bigcorp.example", 70, 9);
  /* 68 fits every limit once minute T0/60 has left: at T0+3600, so retry =
     3600 - 5 = 3595. */
  v = SASL(e, "Info@BigCorp.Example", 68, T0 + 5);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "bigcorp", 90, 23,
                 3595);
}

/* A time older than the newest one seen is treated as the newest one. */
Test(decide, time_going_backwards) {
  MBOX_LIMIT("info@example.com", 1);
  const int64_t newest = T0 + 7200;
  obspam_verdict v = SASL(e, "info@example.com", 1, newest);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 1, 0, 0);
  /* At T0 the window would be empty; treated as T0+7200 it is full, and
     retry counts from T0+7200: the charge leaves at newest+3600. */
  v = SASL(e, "info@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 1, 1,
                 3600);
  /* bob's charge at "T0" lands in newest's minute. */
  v = SASL(e, "bob@example.net", 1, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "bob@example.net");
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "bob@example.net", newest + 3599, 1, 0);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "bob@example.net", newest + 3600, 0, 0);
  /* The refusal was recorded at newest. */
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, "info@example.com", newest);
  cr_assert_eq(s.last_refused, newest, "last_refused %" PRId64, s.last_refused);
  /* stats_get uses max(now, newest) too. */
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 1, 1);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", 1, 1, 1);
  /* Later times move forward again. */
  v = SASL(e, "info@example.com", 1, newest + 3600);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 1, 0, 0);
}

/* ---- invalid input
 * ------------------------------------------------------------- */

static void expect_unchanged_after_invalid(void) {
  EXPECT_ALL(1, 0, 0, 0, 1, 0, 0, 1, 0);
  const char *m = obspam_engine_errmsg(e);
  cr_assert(m != NULL && m[0] != '\0', "no errmsg after an invalid decide");
}

Test(decide, invalid_input) {
  SASL(e, "info@example.com", 1, T0);
  obspam_message m =
      tu_msg(0, "info@example.com", NULL, NULL, 1, -1, NULL, NULL, T0);
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  RC(obspam_decide(e, NULL, &v), OBSPAM_EINVAL);
  RC(obspam_decide(e, &m, NULL), OBSPAM_EINVAL);
  RC(obspam_decide(NULL, &m, &v), OBSPAM_EINVAL);
  m.struct_size = sizeof(obspam_message) - 1;
  RC(obspam_decide(e, &m, &v), OBSPAM_EINVAL);
  m.struct_size = 0;
  RC(obspam_decide(e, &m, &v), OBSPAM_EINVAL);
  m.struct_size = 4;
  RC(obspam_decide(e, &m, &v), OBSPAM_EINVAL);
  m.struct_size = sizeof(obspam_message);
  v.struct_size = offsetof(obspam_verdict, window) - 1;
  RC(obspam_decide(e, &m, &v), OBSPAM_EINVAL);
  v.struct_size = 0;
  RC(obspam_decide(e, &m, &v), OBSPAM_EINVAL);
  v.struct_size = sizeof(obspam_verdict);
  m.recipients = 0;
  RC(obspam_decide(e, &m, &v), OBSPAM_EINVAL);
  m.recipients = 1;
  m.time = -1;
  RC(obspam_decide(e, &m, &v), OBSPAM_EINVAL);
  m.time = INT64_MIN;
  RC(obspam_decide(e, &m, &v), OBSPAM_EINVAL);
  expect_unchanged_after_invalid();
  /* The same message, valid, is fine. */
  m.time = T0;
  OK(obspam_decide(e, &m, &v));
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 1, 0);
}

/* A failed decision does not move the newest time either. */
Test(decide, invalid_decide_does_not_advance_time) {
  MBOX_LIMIT("info@example.com", 1);
  SASL(e, "info@example.com", 1, T0);
  obspam_message m = tu_msg(0, "info@example.com", NULL, "bad address", 1, -1,
                            NULL, NULL, T0 + 3600);
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  RC(obspam_decide(e, &m, &v), OBSPAM_EINVAL);
  m.client_address = NULL;
  m.recipients = 0;
  RC(obspam_decide(e, &m, &v), OBSPAM_EINVAL);
  /* Still T0 + 1 for the engine: the charge of T0 is in the window. */
  v = SASL(e, "info@example.com", 1, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 1, 1,
                 3599);
}

/* Larger structures (a later 1.x caller appending fields) are accepted. */
Test(decide, larger_struct_sizes) {
  struct {
    obspam_message m;
    char future[32];
  } big;
  struct {
    obspam_verdict v;
    char future[32];
  } bigv;
  memset(&big, 0, sizeof big);
  memset(&bigv, 0, sizeof bigv);
  big.m = tu_msg(0, "info@example.com", NULL, NULL, 2, -1, NULL, NULL, T0);
  big.m.struct_size = sizeof big;
  bigv.v.struct_size = sizeof bigv;
  OK(obspam_decide(e, &big.m, &bigv.v));
  EXPECT_VERDICT(bigv.v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 0, 0);
  EXPECT_ALL(2, 0, 0, 0, 2, 0, 0, 2, 0);
}

/* time 0 means now. */
Test(decide, time_zero_is_now) {
  MBOX_LIMIT("info@example.com", 1);
  int64_t before = (int64_t)time(NULL);
  obspam_verdict v = SASL(e, "info@example.com", 1, 0);
  int64_t after = (int64_t)time(NULL);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 1, 0, 0);
  /* The charge is in the minute of some tn in [before, after]. At `after`
     it is still in the window; retry = (tn/60 + 60)*60 - after, which lies
     in [3541 - (after - before), 3600]. */
  v = SASL(e, "info@example.com", 1, after);
  cr_assert_eq(v.action, OBSPAM_REFUSE, "the charge of time 0 is not now");
  cr_assert_eq(v.count, 1);
  cr_assert_geq(v.retry_after, 3541 - (after - before));
  cr_assert_leq(v.retry_after, 3600);
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, "info@example.com", 0);
  cr_assert_eq(s.count, 1);
  cr_assert_eq(s.refused, 1);
  cr_assert_geq(s.last_refused, before);
  cr_assert_leq(s.last_refused, (int64_t)time(NULL));
  /* An hour later it is gone. */
  v = SASL(e, "info@example.com", 1, after + 3600);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 1, 0, 0);
}

/* The stats of a fresh object and the sending flag. */
Test(decide, stats_fields) {
  MBOX_LIMIT("info@example.com", 2);
  EXPECT_STATS(e, OBSPAM_MAILBOX, "info@example.com", T0, 1, 2, 0, 0, 0, 0);
  SASL(e, "info@example.com", 1, T0);
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0);
  cr_assert_eq(s.sending, 1);
  cr_assert_eq(s.count, 1);
  SASL(e, "info@example.com", 1, T0 + 1);
  s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 1);
  cr_assert_eq(s.sending, 0);
  cr_assert_eq(s.count, 2);
  SASL(e, "info@example.com", 1, T0 + 2);
  SASL(e, "info@example.com", 1, T0 + 125);
  s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 125);
  cr_assert_eq(s.refused, 2);
  cr_assert_eq(s.refused_total, 2);
  cr_assert_eq(s.last_refused, T0 + 125);
  /* An unlimited object is always sending. */
  s = STATS(e, OBSPAM_DOMAIN, "example.com", T0 + 125);
  cr_assert_eq(s.limit, OBSPAM_UNLIMITED);
  cr_assert_eq(s.sending, 1);
  cr_assert_eq(s.count, 2);
  cr_assert_eq(s.refused, 2);
  /* The window moves on; the totals stay. */
  s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 3600 + 125);
  cr_assert_eq(s.count, 0);
  cr_assert_eq(s.refused, 0);
  cr_assert_eq(s.sending, 1);
  cr_assert_eq(s.refused_total, 2);
  cr_assert_eq(s.last_refused, T0 + 125);
}

/* A limit change applies at once to the next decision. */
Test(decide, limit_change_applies_immediately) {
  SASL(e, "info@example.com", 5, T0);
  MBOX_LIMIT("info@example.com", 5);
  obspam_verdict v = SASL(e, "info@example.com", 1, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 5, 5,
                 3599);
  LIMIT(OBSPAM_DOMAIN, "example.com", OBSPAM_MAILBOX, 6);
  v = SASL(e, "info@example.com", 1, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 5, 5,
                 3599);
  MBOX_LIMIT("info@example.com", OBSPAM_INHERIT);
  v = SASL(e, "info@example.com", 1, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 6, 5, 0);
  /* Lowering below the count: refused, retry from the window. */
  LIMIT(OBSPAM_SERVER, NULL, OBSPAM_SUBSCRIPTION, 3);
  v = SASL(e, "sales@example.com", 1, T0 + 2);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 3, 6, 3598);
}

/* Counts are 64-bit: UINT32_MAX recipients, twice, on an unlimited mailbox,
   each counted as OBSPAM_RECIPIENTS_MAX (tests/test_counts.c). */
Test(decide, huge_recipient_counts) {
  obspam_verdict v = SASL(e, "bob@example.net", UINT32_MAX, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "bob@example.net");
  v = SASL(e, "bob@example.net", UINT32_MAX, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "bob@example.net",
                 OBSPAM_UNLIMITED, (int64_t)OBSPAM_RECIPIENTS_MAX, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 1,
                2 * (int64_t)OBSPAM_RECIPIENTS_MAX, 0);
  /* Against a limit: larger than the limit, never. */
  MBOX_LIMIT("info@example.com", 1000000);
  v = SASL(e, "info@example.com", UINT32_MAX, T0 + 2);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "info@example.com", 1000000, 0);
  /* A huge limit is compared without overflow. */
  MBOX_LIMIT("info@example.com", INT64_MAX);
  v = SASL(e, "info@example.com", UINT32_MAX, T0 + 3);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 INT64_MAX, 0, 0);
}

/* The longest names fit the verdict's object field exactly. */
Test(decide, longest_names_in_verdicts) {
  char dom[400], mb[800];
  memset(dom, 'd', 318);
  dom[318] = '\0';
  snprintf(mb, sizeof mb, "M@%s", dom);
  cr_assert_eq(strlen(mb), 320u);
  OK(obspam_add(e, OBSPAM_DOMAIN, dom, "other"));
  OK(obspam_add(e, OBSPAM_MAILBOX, mb, NULL));
  MBOX_LIMIT(mb, 1);
  mb[0] = 'm';
  obspam_verdict v = SASL(e, mb, 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, mb, 1, 0, 0);
  cr_assert_eq(strlen(v.object), 320u);
  v = SASL(e, mb, 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, mb, 1, 1, 3600);
  char sub[400];
  memset(sub, 's', 320);
  sub[320] = '\0';
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, sub, NULL));
  OK(obspam_set_uid(e, sub, 777));
  v = SCRIPT(e, 777, NULL, 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, sub, OBSPAM_UNLIMITED,
                 0, 0);
}

/* A removed mailbox's login is an implicit mailbox of its hosted domain,
   from zero: removing a mailbox removes its counters. */
Test(decide, removed_mailbox_falls_back_to_domain) {
  SASL(e, "info@example.com", 2, T0);
  OK(obspam_remove(e, OBSPAM_MAILBOX, "info@example.com"));
  obspam_verdict v = SASL(e, "info@example.com", 1, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "info@example.com");
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.com", T0, 3, 0);
  OK(obspam_remove(e, OBSPAM_DOMAIN, "example.com"));
  v = SASL(e, "info@example.com", 1, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0, 3, 0);
}

/* ---- who is named, what is recorded (API.md step 5, 1.3) ------------------
 */

/* The reported case: subscription s (limit 2), a@ sends 2 recipients, then
   zero@ (limit 0) sends 1. s is full and waits until its minute leaves,
   but zero@ can never send: zero@ keeps the message out longest and is
   named, with its own limit and count. The refusal is recorded on all
   three; zero@ and s (full) went over their own limits, the unlimited
   domain did not. */
Test(decide, reported_mailbox_limit_zero_is_named) {
  obspam_engine *x = tu_new();

  OK(obspam_add(x, OBSPAM_SUBSCRIPTION, "s", NULL));
  OK(obspam_add(x, OBSPAM_DOMAIN, "d.example", "s"));
  OK(obspam_add(x, OBSPAM_MAILBOX, "a@d.example", NULL));
  OK(obspam_add(x, OBSPAM_MAILBOX, "zero@d.example", NULL));
  OK(obspam_set_limit(x, OBSPAM_SUBSCRIPTION, "s", OBSPAM_SUBSCRIPTION, 2));
  OK(obspam_set_limit(x, OBSPAM_MAILBOX, "zero@d.example", OBSPAM_MAILBOX, 0));
  obspam_verdict v = SASL(x, "a@d.example", 2, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "a@d.example");
  cr_assert_eq(v.window, OBSPAM_WINDOW_HOUR);
  v = SASL(x, "zero@d.example", 1, T0 + 10);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "zero@d.example", 0, 0);
  cr_assert_eq(v.window, OBSPAM_WINDOW_HOUR);

  obspam_stats s = STATS(x, OBSPAM_MAILBOX, "zero@d.example", T0 + 10);
  cr_assert_eq(s.refused, 1);
  cr_assert_eq(s.exceeded, 1);
  cr_assert_eq(s.exceeded_total, 1);
  /* Its subscription is the highest object it cannot send through. */
  cr_assert_eq(s.blocked_kind, OBSPAM_SUBSCRIPTION);
  cr_assert_str_eq(s.blocked_by, "s");
  s = STATS(x, OBSPAM_SUBSCRIPTION, "s", T0 + 10);
  cr_assert_eq(s.refused, 1);
  cr_assert_eq(s.exceeded, 1, "s is full: a wait of its own");
  cr_assert_eq(s.exceeded_total, 1);
  s = STATS(x, OBSPAM_DOMAIN, "d.example", T0 + 10);
  cr_assert_eq(s.refused, 1);
  cr_assert_eq(s.exceeded, 0);
  s = STATS(x, OBSPAM_MAILBOX, "a@d.example", T0 + 10);
  cr_assert_eq(s.refused, 0);
  obspam_engine_free(x);
}

/* Refused is recorded on every charged object, over the limit only on
   those with a wait of their own. */
Test(decide, exceeded_only_where_the_own_limit_is) {
  SUB_LIMIT("acme", 5);
  MBOX_LIMIT("info@example.com", 1);
  SASL(e, "info@example.com", 1, T0);
  /* info is full (waits 3599 s), acme has room. */
  obspam_verdict v = SASL(e, "info@example.com", 1, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 1, 1,
                 3599);
  /* acme full too: both wait 3597 s, the higher one is named and both
     went over their limit. */
  SASL(e, "bob@example.net", 4, T0 + 2);
  v = SASL(e, "info@example.com", 1, T0 + 3);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 5, 5, 3597);
  /* bob is unlimited: only acme waits. */
  v = SASL(e, "bob@example.net", 1, T0 + 4);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 5, 5, 3596);

  static const struct {
    int kind;
    const char *name;
    int64_t refused, exceeded;
  } want[] = {{OBSPAM_MAILBOX, "info@example.com", 2, 2},
              {OBSPAM_DOMAIN, "example.com", 2, 0},
              {OBSPAM_SUBSCRIPTION, "acme", 3, 2},
              {OBSPAM_MAILBOX, "bob@example.net", 1, 0},
              {OBSPAM_DOMAIN, "example.net", 1, 0}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    obspam_stats s = STATS(e, want[i].kind, want[i].name, T0 + 60);
    cr_assert_eq(s.refused, want[i].refused, "%s refused %" PRId64,
                 want[i].name, s.refused);
    cr_assert_eq(s.exceeded, want[i].exceeded, "%s exceeded %" PRId64,
                 want[i].name, s.exceeded);
    cr_assert_eq(s.exceeded_total, want[i].exceeded);
    /* An hour later the window is empty; the totals stay. */
    s = STATS(e, want[i].kind, want[i].name, T0 + 3660);
    cr_assert_eq(s.exceeded, 0);
    cr_assert_eq(s.refused, 0);
    cr_assert_eq(s.exceeded_total, want[i].exceeded, "%s exceeded_total",
                 want[i].name);
    cr_assert_eq(s.refused_total, want[i].refused);
  }
}

/* Forbidden scripts: refused on every charged object, over the limit on
   the subscription only, even when the hinted domain is over its own. */
Test(decide, forbidden_scripts_exceed_the_subscription_only) {
  SUB_LIMIT("acme", 50);
  DOMAIN_LIMIT("example.com", 0);
  OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "acme", 0));
  obspam_verdict v = SCRIPT(e, 10001, "example.com", 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "acme", 50, 0);
  cr_assert_eq(v.window, 0, "forbidden scripts name no window");
  obspam_stats s = STATS(e, OBSPAM_SUBSCRIPTION, "acme", T0);
  cr_assert_eq(s.refused, 1);
  cr_assert_eq(s.exceeded, 1);
  s = STATS(e, OBSPAM_DOMAIN, "example.com", T0);
  cr_assert_eq(s.refused, 1);
  cr_assert_eq(s.exceeded, 0);
}

/* The window of a verdict (1.3): the hour on accept and for a limit, 0
   for forbidden scripts and for verdicts that name nothing. A 1.2 caller's
   shorter verdict is filled up to its size and no further. */
Test(decide, verdict_window) {
  MBOX_LIMIT("info@example.com", 1);
  obspam_verdict v = SASL(e, "info@example.com", 1, T0);
  cr_assert_eq(v.window, 3600);
  v = SASL(e, "info@example.com", 1, T0);
  cr_assert_eq(v.action, OBSPAM_REFUSE);
  cr_assert_eq(v.window, 3600);
  v = SASL(e, "nobody@elsewhere.example", 1, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  cr_assert_eq(v.window, 0);
  OK(obspam_whitelist_add(e, "198.51.100.0/24"));
  v = SASL(e, "info@example.com", 1, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  cr_assert_eq(v.window, 0);
  OK(obspam_whitelist_remove(e, "198.51.100.0/24"));

  obspam_message m =
      tu_msg(0, "info@example.com", NULL, NULL, 1, -1, NULL, NULL, T0 + 1);
  v.struct_size = offsetof(obspam_verdict, window);
  v.window = 777;
  OK(obspam_decide(e, &m, &v));
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 1, 1,
                 3599);
  cr_assert_eq(v.window, 777, "a 1.2 verdict has no window field");
}

/* Status through ancestors (1.3): blocked_kind and blocked_by name the
   highest object a one-recipient message through this one would not fit,
   and sending follows them. */
/* Asserts that an object is blocked by bkind / by (-1 and "": not
   blocked), and sending exactly when it is not blocked. */
static void expect_blocked(int kind, const char *name, int64_t now, int bkind,
                           const char *by, int line) {
  obspam_stats s = tu_stats(e, kind, name, now, line);

  cr_assert(s.blocked_kind == bkind && strcmp(s.blocked_by, by) == 0 &&
                s.sending == (bkind == -1),
            "line %d: %s blocked by %d '%s', sending %d", line, name,
            s.blocked_kind, s.blocked_by, s.sending);
}
#define EXPECT_BLOCKED(kind, name, now, bkind, by)                             \
  expect_blocked((kind), (name), (now), (bkind), (by), __LINE__)

Test(decide, stats_blocked_through_ancestors) {
  EXPECT_BLOCKED(OBSPAM_MAILBOX, "info@example.com", T0, -1, "");
  cr_assert_eq(STATS(e, OBSPAM_MAILBOX, "info@example.com", T0).disabled, 0);
  /* The mailbox full: it blocks itself. */
  MBOX_LIMIT("info@example.com", 0);
  EXPECT_BLOCKED(OBSPAM_MAILBOX, "info@example.com", T0, OBSPAM_MAILBOX,
                 "info@example.com");
  /* The domain full: the domain is higher. sales@ is blocked by it too,
     the domain itself as well; acme and bob@ are not. */
  DOMAIN_LIMIT("example.com", 2);
  SASL(e, "sales@example.com", 2, T0);
  EXPECT_BLOCKED(OBSPAM_MAILBOX, "info@example.com", T0, OBSPAM_DOMAIN,
                 "example.com");
  EXPECT_BLOCKED(OBSPAM_MAILBOX, "sales@example.com", T0, OBSPAM_DOMAIN,
                 "example.com");
  EXPECT_BLOCKED(OBSPAM_DOMAIN, "example.com", T0, OBSPAM_DOMAIN,
                 "example.com");
  EXPECT_BLOCKED(OBSPAM_SUBSCRIPTION, "acme", T0, -1, "");
  EXPECT_BLOCKED(OBSPAM_MAILBOX, "bob@example.net", T0, -1, "");
  /* acme full as well: the subscription is the highest for all of them. */
  SUB_LIMIT("acme", 2);
  EXPECT_BLOCKED(OBSPAM_MAILBOX, "info@example.com", T0, OBSPAM_SUBSCRIPTION,
                 "acme");
  EXPECT_BLOCKED(OBSPAM_MAILBOX, "bob@example.net", T0, OBSPAM_SUBSCRIPTION,
                 "acme");
  /* Once the window has moved on, only info@ (limit 0) blocks itself. */
  EXPECT_BLOCKED(OBSPAM_MAILBOX, "info@example.com", T0 + 3600, OBSPAM_MAILBOX,
                 "info@example.com");
  EXPECT_BLOCKED(OBSPAM_MAILBOX, "bob@example.net", T0 + 3600, -1, "");
}

/* Protection off: sending, not blocked, disabled. */
Test(decide, stats_disabled) {
  MBOX_LIMIT("info@example.com", 0);
  OPT(OBSPAM_OPT_ENABLED, 0);
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0);
  cr_assert_eq(s.disabled, 1);
  cr_assert_eq(s.sending, 1);
  cr_assert_eq(s.blocked_kind, -1);
  cr_assert_str_eq(s.blocked_by, "");
  cr_assert_eq(s.limit, 0);
  OPT(OBSPAM_OPT_ENABLED, 1);
  s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0);
  cr_assert_eq(s.disabled, 0);
  cr_assert_eq(s.sending, 0);
}

/* The window fields of 1.3 without limits: unlimited, and the counts of
   the minute (the last twelve 5-second buckets) and of the day (the hour
   of now and the 23 before it). */
Test(decide, stats_window_fields) {
  SASL(e, "info@example.com", 5, T0 + 10);
  SASL(e, "info@example.com", 3, T0 + 3600 + 10);
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 3600 + 10);
  cr_assert_eq(s.count, 3);
  cr_assert_eq(s.limit_minute, OBSPAM_UNLIMITED);
  cr_assert_eq(s.limit_day, OBSPAM_UNLIMITED);
  cr_assert_eq(s.count_minute, 3);
  cr_assert_eq(s.count_day, 8);
  /* Its 5-second bucket, that of T0 + 3610, leaves at T0 + 3670. */
  s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 3600 + 69);
  cr_assert_eq(s.count_minute, 3);
  s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 3600 + 70);
  cr_assert_eq(s.count_minute, 0);
  /* The hour of now and the 23 before it. */
  s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 23 * 3600 + 3599);
  cr_assert_eq(s.count_day, 8);
  s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 24 * 3600);
  cr_assert_eq(s.count_day, 3);
  s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 25 * 3600);
  cr_assert_eq(s.count_day, 0);
}

/* A 1.2 caller's obspam_stats ends at last_refused: nothing is written
   beyond it. */
Test(decide, stats_of_the_1_2_size) {
  MBOX_LIMIT("info@example.com", 0);
  SASL(e, "info@example.com", 1, T0);
  obspam_stats s = OBSPAM_STATS_INIT;
  memset(&s, 0x5a, sizeof s);
  s.struct_size = offsetof(obspam_stats, exceeded);
  OK(obspam_stats_get(e, OBSPAM_MAILBOX, "info@example.com", T0, &s));
  cr_assert_eq(s.sending, 0);
  cr_assert_eq(s.limit, 0);
  cr_assert_eq(s.refused, 1);
  const unsigned char *tail = (const unsigned char *)&s.exceeded;
  for (size_t i = 0; i < sizeof s - offsetof(obspam_stats, exceeded); i++)
    cr_assert_eq(tail[i], 0x5a, "byte %zu past the 1.2 size was written", i);
  s.struct_size = offsetof(obspam_stats, exceeded) - 1;
  RC(obspam_stats_get(e, OBSPAM_MAILBOX, "info@example.com", T0, &s),
     OBSPAM_EINVAL);
}

/* A window left empty for more than an hour starts afresh, its attempts
   over the limit too: the attempt of minute m0 = T0/60 is not subtracted
   again when minute m0 + 180, whose bucket it shared, comes. */
Test(decide, exceeded_window_after_an_idle_hour) {
  MBOX_LIMIT("info@example.com", 0);
  SASL(e, "info@example.com", 1, T0);
  cr_assert_eq(STATS(e, OBSPAM_MAILBOX, "info@example.com", T0).exceeded, 1);
  /* Minute m0 + 130. */
  SASL(e, "info@example.com", 1, T0 + 7800);
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 7800);
  cr_assert_eq(s.exceeded, 1, "exceeded %" PRId64, s.exceeded);
  cr_assert_eq(s.exceeded_total, 2);
  /* Minute m0 + 180: the window is m0 + 121 .. m0 + 180. */
  s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 10800);
  cr_assert_eq(s.exceeded, 1, "exceeded %" PRId64, s.exceeded);
  cr_assert_eq(s.refused, 1, "refused %" PRId64, s.refused);
  s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 7800 + 3600);
  cr_assert_eq(s.exceeded, 0, "exceeded %" PRId64, s.exceeded);
}

/* ---- step 5: naming among objects, windows and the cap --------------------
   The naming among windows is checked on obspam__judge directly (suite
   judge) and the rest through obspam_decide with hour limits, whose
   counting every store shares. */

/* The longest wait names the object, whatever its level: info's wait
   outlasts acme's. */
Test(decide, longest_wait_names_the_object) {
  SUB_LIMIT("acme", 2);
  MBOX_LIMIT("info@example.com", 1);
  SASL(e, "sales@example.com", 1, T0);
  SASL(e, "info@example.com", 1, T0 + 600);
  obspam_verdict v = SASL(e, "info@example.com", 1, T0 + 900);
  /* info: its message of T0 + 600 leaves at T0 + 4200; acme: one of its
     two leaves at T0 + 3600. */
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 1, 1,
                 3300);
  cr_assert_eq(v.window, OBSPAM_WINDOW_HOUR);
  /* Both went over their own limit. */
  cr_assert_eq(STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 900).exceeded,
               1);
  cr_assert_eq(STATS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 900).exceeded, 1);
  cr_assert_eq(STATS(e, OBSPAM_DOMAIN, "example.com", T0 + 900).exceeded, 0);
  /* Equal waits: the highest level. */
  v = SASL(e, "sales@example.com", 1, T0 + 900);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 2, 2, 2700);
  MBOX_LIMIT("sales@example.com", 1);
  SASL(e, "bob@example.net", 1, T0 + 3600); /* acme: T0 + 600, T0 + 3600 */
  v = SASL(e, "sales@example.com", 1, T0 + 3600);
  /* sales: nothing in its window any more; acme waits for T0 + 600. */
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 2, 2, 600);
}

/* The verdict of a message over the recipients cap, through obspam_decide
   and obspam_decide_batch. */
static void expect_cap_verdict(const obspam_verdict *v, int kind,
                               const char *name, int64_t cap, int64_t rcpt,
                               int line) {
  tu_expect_verdict(v, OBSPAM_REFUSE, kind, name, cap, rcpt, -1, line);
  cr_assert_eq(v->window, 0, "line %d: window %" PRId64, line, v->window);
}
#define EXPECT_CAP_VERDICT(v, kind, name, cap, rcpt)                           \
  expect_cap_verdict(&(v), (kind), (name), (cap), (rcpt), __LINE__)

/* refused and exceeded of an object's stats at T0. */
static void expect_refused(int kind, const char *name, int64_t refused,
                           int64_t exceeded, int line) {
  obspam_stats st = tu_stats(e, kind, name, T0, line);

  cr_assert(st.refused == refused && st.exceeded == exceeded,
            "line %d: %s refused %" PRId64 " exceeded %" PRId64
            ", expected %" PRId64 " and %" PRId64,
            line, name, st.refused, st.exceeded, refused, exceeded);
}
#define EXPECT_REFUSED(kind, name, refused, exceeded)                          \
  expect_refused((kind), (name), (refused), (exceeded), __LINE__)

/* A message with more recipients than the cap is refused whole, for
   ever, whatever the unit; it is refused on every charged object and over
   the limit on the mailbox only. */
Test(decide, cap_refuses_the_whole_message) {
  OK(obspam_set_max_recipients(e, OBSPAM_MAILBOX, "info@example.com", 3));
  obspam_verdict v = SASL(e, "info@example.com", 4, T0);
  EXPECT_CAP_VERDICT(v, OBSPAM_MAILBOX, "info@example.com", 3, 4);
  /* Nothing charged. */
  EXPECT_CHAIN_COUNTS(e, "info@example.com", "example.com", "acme", T0, 0, 1);
  EXPECT_REFUSED(OBSPAM_MAILBOX, "info@example.com", 1, 1);
  EXPECT_REFUSED(OBSPAM_DOMAIN, "example.com", 1, 0);
  EXPECT_REFUSED(OBSPAM_SUBSCRIPTION, "acme", 1, 0);
  v = SASL(e, "info@example.com", 3, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_MAILBOX, "info@example.com");
  /* In messages, the cap still counts recipients. */
  OPT(OBSPAM_OPT_COUNT_UNIT, 1);
  v = SASL(e, "info@example.com", 4, T0 + 1);
  EXPECT_CAP_VERDICT(v, OBSPAM_MAILBOX, "info@example.com", 3, 4);
  v = SASL(e, "info@example.com", 3, T0 + 2);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 3, 0);
  /* A cap of 0: nothing at all. */
  OK(obspam_set_max_recipients(e, OBSPAM_MAILBOX, "info@example.com", 0));
  v = SASL(e, "info@example.com", 1, T0 + 3);
  EXPECT_CAP_VERDICT(v, OBSPAM_MAILBOX, "info@example.com", 0, 1);
  /* A batch decides it the same way. */
  tu_batch b;
  b.m[0] = tu_login_msg("info@example.com", NULL, 1, T0 + 4);
  b.m[1] = tu_login_msg("sales@example.com", NULL, 1000, T0 + 4);
  tu_batch_ready(&b, 2);
  OK(obspam_decide_batch(e, b.pm, b.pv, b.rc, 2));
  EXPECT_CAP_VERDICT(b.v[0], OBSPAM_MAILBOX, "info@example.com", 0, 1);
  EXPECT_VERDICT(b.v[1], OBSPAM_ACCEPT, OBSPAM_MAILBOX, "sales@example.com",
                 OBSPAM_UNLIMITED, 0, 0);
  EXPECT_REFUSED(OBSPAM_MAILBOX, "info@example.com", 4, 4);
  EXPECT_REFUSED(OBSPAM_SUBSCRIPTION, "acme", 4, 0);
}

/* Asserts that a login's message of cap + 1 recipients is refused by the
   cap of the object it charges last (kind, named as the login). */
static void expect_capped(const char *login, int kind, int64_t cap, int line) {
  obspam_verdict v = tu_sasl(e, login, (uint32_t)cap + 1, T0, line);

  expect_cap_verdict(&v, kind, login, cap, cap + 1, line);
}
#define EXPECT_CAPPED(login, kind, cap)                                        \
  expect_capped((login), (kind), (cap), __LINE__)

/* The cap of the lowest charged object applies, its own or inherited:
   not the smallest cap on the way up. */
Test(decide, cap_of_the_lowest_object) {
  OK(obspam_set_max_recipients(e, OBSPAM_SERVER, NULL, 100));
  OK(obspam_set_max_recipients(e, OBSPAM_PLAN, "basic", 50));
  OK(obspam_set_max_recipients(e, OBSPAM_SUBSCRIPTION, "acme", 1));
  OK(obspam_set_max_recipients(e, OBSPAM_DOMAIN, "example.com", 5));
  obspam_verdict v = SASL(e, "info@example.com", 5, T0);
  EXPECT_ACTION(v, OBSPAM_ACCEPT);
  EXPECT_CAPPED("info@example.com", OBSPAM_MAILBOX, 5);
  EXPECT_CAPPED("bob@example.net", OBSPAM_MAILBOX, 1);
  v = SASL(e, "x@other.org", 100, T0);
  EXPECT_ACTION(v, OBSPAM_ACCEPT);
  EXPECT_CAPPED("x@other.org", OBSPAM_MAILBOX, 100);
  /* An implicit mailbox has its domain's. */
  EXPECT_CAPPED("new@example.com", OBSPAM_MAILBOX, 5);
  /* A login of a bare domain charges the domain last: its cap. */
  EXPECT_CAPPED("example.net", OBSPAM_DOMAIN, 1);
}

/* A script's mail: the domain's cap when the hinted domain is charged,
   else the subscription's; a mailbox's cap never applies. */
Test(decide, cap_of_a_script) {
  OK(obspam_set_max_recipients(e, OBSPAM_SUBSCRIPTION, "acme", 10));
  OK(obspam_set_max_recipients(e, OBSPAM_DOMAIN, "example.com", 3));
  OK(obspam_set_max_recipients(e, OBSPAM_MAILBOX, "info@example.com", 1));
  obspam_verdict v = SCRIPT(e, 10001, "example.com", 4, T0);
  EXPECT_CAP_VERDICT(v, OBSPAM_DOMAIN, "example.com", 3, 4);
  v = SCRIPT(e, 10001, "example.com", 3, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_DOMAIN, "example.com");
  /* No hint, a hint that is not hosted or not acme's: the subscription. */
  v = SCRIPT(e, 10001, NULL, 10, T0);
  EXPECT_ACTION(v, OBSPAM_ACCEPT);
  v = SCRIPT(e, 10001, "nowhere.example", 11, T0);
  EXPECT_CAP_VERDICT(v, OBSPAM_SUBSCRIPTION, "acme", 10, 11);
  v = SCRIPT(e, 10001, "other.org", 11, T0);
  EXPECT_CAP_VERDICT(v, OBSPAM_SUBSCRIPTION, "acme", 10, 11);
  /* example.net inherits acme's cap. */
  v = SCRIPT(e, 10001, "example.net", 11, T0);
  EXPECT_CAP_VERDICT(v, OBSPAM_DOMAIN, "example.net", 10, 11);
  EXPECT_REFUSED(OBSPAM_DOMAIN, "example.com", 1, 1);
  EXPECT_REFUSED(OBSPAM_DOMAIN, "example.net", 1, 1);
  EXPECT_REFUSED(OBSPAM_SUBSCRIPTION, "acme", 4, 2);
  EXPECT_REFUSED(OBSPAM_MAILBOX, "info@example.com", 0, 0);
}

/* The cap and the windows in one decision: the cap is a wait of -1 on the
   lowest object, its shortest window. */
Test(decide, cap_and_windows_together) {
  OK(obspam_set_max_recipients(e, OBSPAM_MAILBOX, "info@example.com", 2));
  /* acme full with a wait of 3600: the cap's -1 is longer. */
  SUB_LIMIT("acme", 5);
  SASL(e, "bob@example.net", 5, T0);
  obspam_verdict v = SASL(e, "info@example.com", 3, T0);
  EXPECT_CAP_VERDICT(v, OBSPAM_MAILBOX, "info@example.com", 2, 3);
  EXPECT_REFUSED(OBSPAM_SUBSCRIPTION, "acme", 1, 1);
  EXPECT_REFUSED(OBSPAM_DOMAIN, "example.com", 1, 0);
  EXPECT_REFUSED(OBSPAM_MAILBOX, "info@example.com", 1, 1);
  /* Within the cap, acme's limit refuses as before. */
  v = SASL(e, "info@example.com", 2, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 5, 5, 3600);
  cr_assert_eq(v.window, OBSPAM_WINDOW_HOUR);
  SUB_LIMIT("acme", OBSPAM_UNLIMITED);
  /* The mailbox's own hour never fits either: the hour, a longer window
     than the cap, is named. */
  MBOX_LIMIT("info@example.com", 1);
  v = SASL(e, "info@example.com", 3, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "info@example.com", 1, 0);
  cr_assert_eq(v.window, OBSPAM_WINDOW_HOUR);
  /* The domain may not send at all: -1 too, and the higher level. */
  DOMAIN_LIMIT("example.com", 0);
  v = SASL(e, "info@example.com", 3, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_DOMAIN, "example.com", 0, 0);
  cr_assert_eq(v.window, OBSPAM_WINDOW_HOUR);
  EXPECT_REFUSED(OBSPAM_DOMAIN, "example.com", 4, 1);
  EXPECT_REFUSED(OBSPAM_MAILBOX, "info@example.com", 4, 3);
}

/* An immediate notice gives the window its object went over and that
   window's limit: the cap's with window 0. */
/* What a notice or a report row said of an object, its name copied. */
typedef struct heard {
  int kind;
  char name[OBSPAM_NAME_MAX + 1];
  int64_t limit, window, exceeded;
} heard;

static heard seen[4], rows[8]; /* notices, report rows */
static int nseen, nrows;

static void hear(heard *list, int *n, int max, int kind, const char *name,
                 int64_t limit, int64_t window, int64_t exceeded) {
  cr_assert_lt(*n, max);
  list[*n] = (heard){
      .kind = kind, .limit = limit, .window = window, .exceeded = exceeded};
  snprintf(list[*n].name, sizeof(list[*n].name), "%s", name);
  (*n)++;
}

static void on_notice(const obspam_notice *n, void *ud) {
  (void)ud;
  hear(seen, &nseen, 4, n->kind, n->name, n->limit, n->window, n->exceeded);
}

/* A row has no limit: -1 stands for it. */
static void on_row(const obspam_report_row *r, void *ud) {
  (void)ud;
  hear(rows, &nrows, 8, r->kind, r->name, -1, r->window, r->exceeded);
}

/* Asserts that list[i] of the n heard (what: "notices" or "rows") names
   the object and the window, with exceeded 1. */
static void expect_heard(const char *what, const heard *list, int n, int i,
                         int kind, const char *name, int64_t limit,
                         int64_t window, int line) {
  cr_assert_lt(i, n, "line %d: only %d %s", line, n, what);
  cr_assert(list[i].kind == kind && strcmp(list[i].name, name) == 0 &&
                list[i].limit == limit && list[i].window == window &&
                list[i].exceeded == 1,
            "line %d: %s[%d]: %d %s limit %" PRId64 " window %" PRId64
            " exceeded %" PRId64,
            line, what, i, list[i].kind, list[i].name, list[i].limit,
            list[i].window, list[i].exceeded);
}
#define EXPECT_NOTICE(i, kind, name, limit, window)                            \
  expect_heard("notices", seen, nseen, (i), (kind), (name), (limit), (window), \
               __LINE__)
#define EXPECT_ROW(i, kind, name, window)                                      \
  expect_heard("rows", rows, nrows, (i), (kind), (name), -1, (window), __LINE__)

Test(decide, immediate_notices_name_their_window) {
  OPT(OBSPAM_OPT_NOTIFY_IMMEDIATE, 1);
  OK(obspam_set_notify(e, on_notice, NULL));
  OK(obspam_set_max_recipients(e, OBSPAM_MAILBOX, "info@example.com", 2));
  SUB_LIMIT("acme", 5);
  SASL(e, "bob@example.net", 5, T0);
  obspam_verdict v = SASL(e, "info@example.com", 3, T0);
  EXPECT_CAP_VERDICT(v, OBSPAM_MAILBOX, "info@example.com", 2, 3);
  cr_assert_eq(nseen, 2);
  EXPECT_NOTICE(0, OBSPAM_SUBSCRIPTION, "acme", 5, OBSPAM_WINDOW_HOUR);
  EXPECT_NOTICE(1, OBSPAM_MAILBOX, "info@example.com", 2, 0);
  /* sales: over its own hour limit only. */
  MBOX_LIMIT("sales@example.com", 0);
  SUB_LIMIT("acme", OBSPAM_UNLIMITED);
  nseen = 0;
  v = SASL(e, "sales@example.com", 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "sales@example.com", 0, 0);
  cr_assert_eq(nseen, 1);
  EXPECT_NOTICE(0, OBSPAM_MAILBOX, "sales@example.com", 0, OBSPAM_WINDOW_HOUR);
  /* A forbidden script: the subscription's hour limit, window 0. */
  OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "other", 0));
  SUB_LIMIT("other", 7);
  nseen = 0;
  v = SCRIPT(e, 10002, NULL, 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "other", 7, 0);
  cr_assert_eq(v.window, 0);
  cr_assert_eq(nseen, 1);
  EXPECT_NOTICE(0, OBSPAM_SUBSCRIPTION, "other", 7, 0);
}

/* What obspam_stats_get says of the windows: each one's effective limit,
   the day's count, and blocked over every window of the object and its
   ancestors (the highest one named). */
Test(decide, stats_of_every_window) {
  obspam_stats st = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0);
  cr_assert(st.limit_minute == -1 && st.limit == -1 && st.limit_day == -1);
  cr_assert_eq(st.blocked_kind, -1);
  OK(obspam_set_window_limit(e, OBSPAM_DOMAIN, "example.com", OBSPAM_MAILBOX,
                             OBSPAM_WINDOW_MINUTE, 30));
  OK(obspam_set_window_limit(e, OBSPAM_MAILBOX, "info@example.com",
                             OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY, 2));
  MBOX_LIMIT("info@example.com", 10);
  SASL(e, "info@example.com", 2, H0);
  /* Two hours later the hour holds nothing, the day both. */
  st = STATS(e, OBSPAM_MAILBOX, "info@example.com", H2);
  cr_assert(st.limit_minute == 30 && st.limit == 10 && st.limit_day == 2,
            "limits %" PRId64 " %" PRId64 " %" PRId64, st.limit_minute,
            st.limit, st.limit_day);
  cr_assert(st.count == 0 && st.count_day == 2, "counts %" PRId64 " %" PRId64,
            st.count, st.count_day);
  cr_assert_eq(st.sending, 0);
  cr_assert_eq(st.blocked_kind, OBSPAM_MAILBOX);
  cr_assert_str_eq(st.blocked_by, "info@example.com");
  st = STATS(e, OBSPAM_MAILBOX, "sales@example.com", H2);
  cr_assert(st.limit_minute == 30 && st.limit == -1 && st.limit_day == -1);
  cr_assert_eq(st.blocked_kind, -1);
  cr_assert_str_eq(st.blocked_by, "");
  cr_assert_eq(st.sending, 1);
  /* acme may send nothing in a minute: it blocks, and is named over
     info. */
  OK(obspam_set_window_limit(e, OBSPAM_SUBSCRIPTION, "acme",
                             OBSPAM_SUBSCRIPTION, OBSPAM_WINDOW_MINUTE, 0));
  st = STATS(e, OBSPAM_MAILBOX, "info@example.com", H2);
  cr_assert_eq(st.blocked_kind, OBSPAM_SUBSCRIPTION);
  cr_assert_str_eq(st.blocked_by, "acme");
  st = STATS(e, OBSPAM_DOMAIN, "example.net", H2);
  cr_assert_eq(st.blocked_kind, OBSPAM_SUBSCRIPTION);
  cr_assert_eq(st.limit_minute, -1);
  st = STATS(e, OBSPAM_SUBSCRIPTION, "acme", H2);
  cr_assert(st.limit_minute == 0 && st.count_day == 2 && st.sending == 0);
  /* The day leaves the history as the hours pass: at H0 + 24 h, none. */
  OK(obspam_set_window_limit(e, OBSPAM_SUBSCRIPTION, "acme",
                             OBSPAM_SUBSCRIPTION, OBSPAM_WINDOW_MINUTE,
                             OBSPAM_INHERIT));
  st = STATS(e, OBSPAM_MAILBOX, "info@example.com", H0 + 24 * 3600);
  cr_assert_eq(st.count_day, 0);
  cr_assert_eq(st.blocked_kind, -1);
  /* A disabled engine blocks nothing. */
  OK(obspam_set_window_limit(e, OBSPAM_MAILBOX, "info@example.com",
                             OBSPAM_MAILBOX, OBSPAM_WINDOW_MINUTE, 0));
  OPT(OBSPAM_OPT_ENABLED, 0);
  st = STATS(e, OBSPAM_MAILBOX, "info@example.com", H0 + 24 * 3600);
  cr_assert(st.blocked_kind == -1 && st.sending == 1 && st.disabled == 1);
  cr_assert_eq(st.limit_minute, 0);
}

/* The naming among windows through obspam_decide, with the store's
   counting of the minute and day windows. */
#define WLIMIT(kind, name, which, window, v)                                   \
  OK(obspam_set_window_limit(e, (kind), (name), (which), (window), (v)))

static void expect_window(const obspam_verdict *v, int64_t window, int line) {
  cr_assert_eq(v->window, window,
               "line %d: window %" PRId64 ", expected %" PRId64, line,
               v->window, window);
}
#define EXPECT_WINDOW(v, window) expect_window(&(v), (window), __LINE__)

Test(decide, windows_named_by_wait_level_and_length) {
  /* The minute's wait is the shorter: the hour is named. */
  WLIMIT(OBSPAM_MAILBOX, "info@example.com", OBSPAM_MAILBOX,
         OBSPAM_WINDOW_MINUTE, 2);
  MBOX_LIMIT("info@example.com", 2);
  SASL(e, "info@example.com", 2, T0);
  obspam_verdict v = SASL(e, "info@example.com", 1, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 2, 2,
                 3599);
  EXPECT_WINDOW(v, OBSPAM_WINDOW_HOUR);
  /* Only the minute is full: its wait, to the end of T0's bucket. */
  MBOX_LIMIT("info@example.com", 100);
  v = SASL(e, "info@example.com", 1, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 2, 2,
                 59);
  EXPECT_WINDOW(v, OBSPAM_WINDOW_MINUTE);
  /* Two windows that never fit: the longer one. */
  WLIMIT(OBSPAM_MAILBOX, "sales@example.com", OBSPAM_MAILBOX,
         OBSPAM_WINDOW_MINUTE, 0);
  WLIMIT(OBSPAM_MAILBOX, "sales@example.com", OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY,
         0);
  v = SASL(e, "sales@example.com", 1, T0 + 2);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "sales@example.com", 0, 0);
  EXPECT_WINDOW(v, OBSPAM_WINDOW_DAY);
  /* The subscription's minute never fits either: the higher level comes
     before the longer window. */
  WLIMIT(OBSPAM_SUBSCRIPTION, "acme", OBSPAM_SUBSCRIPTION, OBSPAM_WINDOW_MINUTE,
         0);
  v = SASL(e, "sales@example.com", 1, T0 + 2);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "acme", 0, 2);
  EXPECT_WINDOW(v, OBSPAM_WINDOW_MINUTE);
  /* Refused on all three each time; over the limit: info twice, sales
     twice, acme once. */
  EXPECT_REFUSED(OBSPAM_SUBSCRIPTION, "acme", 4, 1);
  EXPECT_REFUSED(OBSPAM_DOMAIN, "example.com", 4, 0);
  EXPECT_REFUSED(OBSPAM_MAILBOX, "sales@example.com", 2, 2);
}

/* A day limit blocks in the statistics once its count is reached, and
   lets go as the day's clock hours pass; the minute's as its buckets
   leave. */
Test(decide, stats_block_in_the_minute_and_the_day) {
  WLIMIT(OBSPAM_MAILBOX, "info@example.com", OBSPAM_MAILBOX,
         OBSPAM_WINDOW_MINUTE, 3);
  SASL(e, "info@example.com", 3, T0);
  obspam_stats st = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 59);
  cr_assert(st.count_minute == 3 && st.limit_minute == 3 &&
            st.blocked_kind == OBSPAM_MAILBOX && st.sending == 0);
  st = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 60);
  cr_assert(st.count_minute == 0 && st.blocked_kind == -1 && st.sending == 1);
  WLIMIT(OBSPAM_DOMAIN, "example.com", OBSPAM_DOMAIN, OBSPAM_WINDOW_DAY, 4);
  SASL(e, "sales@example.com", 1, T0 + 3600);
  st = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 7200);
  cr_assert(st.blocked_kind == OBSPAM_DOMAIN, "blocked_kind %d",
            st.blocked_kind);
  cr_assert_str_eq(st.blocked_by, "example.com");
  st = STATS(e, OBSPAM_DOMAIN, "example.com", T0 + 7200);
  cr_assert(st.count_day == 4 && st.limit_day == 4 && st.count == 0);
  /* T0's hour leaves the day at T0 + 24 h. */
  st = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 24 * 3600 - 1);
  cr_assert_eq(st.blocked_kind, OBSPAM_DOMAIN);
  st = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 24 * 3600);
  cr_assert_eq(st.blocked_kind, -1);
  obspam_verdict v = SASL(e, "info@example.com", 3, T0 + 24 * 3600);
  EXPECT_ACTION(v, OBSPAM_ACCEPT);
}

/* Report rows and flushed notices carry the window of the object's last
   attempt over its own limit: the minute's, the day's, or 0 for the
   cap. */
Test(decide, reports_and_notices_carry_the_window) {
  OK(obspam_set_notify(e, on_notice, NULL));
  WLIMIT(OBSPAM_MAILBOX, "info@example.com", OBSPAM_MAILBOX,
         OBSPAM_WINDOW_MINUTE, 1);
  WLIMIT(OBSPAM_DOMAIN, "example.net", OBSPAM_DOMAIN, OBSPAM_WINDOW_DAY, 0);
  OK(obspam_set_max_recipients(e, OBSPAM_MAILBOX, "sales@example.com", 1));
  SASL(e, "info@example.com", 1, T0);
  obspam_verdict v = SASL(e, "info@example.com", 1, T0 + 10);
  EXPECT_WINDOW(v, OBSPAM_WINDOW_MINUTE);
  v = SASL(e, "bob@example.net", 1, T0 + 20);
  EXPECT_WINDOW(v, OBSPAM_WINDOW_DAY);
  v = SASL(e, "sales@example.com", 2, T0 + 30);
  EXPECT_CAP_VERDICT(v, OBSPAM_MAILBOX, "sales@example.com", 1, 2);

  OK(obspam_report(e, T0, T0 + 3600, on_row, NULL));
  cr_assert_eq(nrows, 3);
  /* One attempt each, in name order. */
  EXPECT_ROW(0, OBSPAM_DOMAIN, "example.net", OBSPAM_WINDOW_DAY);
  EXPECT_ROW(1, OBSPAM_MAILBOX, "info@example.com", OBSPAM_WINDOW_MINUTE);
  EXPECT_ROW(2, OBSPAM_MAILBOX, "sales@example.com", 0);

  OK(obspam_notify_flush(e, T0 + 7200));
  cr_assert_eq(nseen, 3);
  EXPECT_NOTICE(0, OBSPAM_DOMAIN, "example.net", 0, OBSPAM_WINDOW_DAY);
  EXPECT_NOTICE(1, OBSPAM_MAILBOX, "info@example.com", 1, OBSPAM_WINDOW_MINUTE);
  EXPECT_NOTICE(2, OBSPAM_MAILBOX, "sales@example.com", 1, 0);
}

/* ---- obspam__judge: the naming rule among windows ------------------------ */

TestSuite(judge);

/* A charge of three objects (subscription, domain, mailbox) that waits
   nowhere. */
static obspam__charge charge3(void) {
  obspam__charge ch;

  memset(&ch, 0, sizeof(ch));
  ch.n = 3;
  return ch;
}

#define EXPECT_JUDGED(ch, refuser_, window_, retry_, o0, o1, o2)               \
  do {                                                                         \
    obspam__judge(&(ch));                                                      \
    cr_assert((ch).refuser == (refuser_) && (ch).window == (window_) &&        \
                  (ch).retry_after == (retry_),                                \
              "line %d: refuser %d window %d retry %" PRId64, __LINE__,        \
              (ch).refuser, (ch).window, (ch).retry_after);                    \
    cr_assert((ch).over[0] == (o0) && (ch).over[1] == (o1) &&                  \
                  (ch).over[2] == (o2),                                        \
              "line %d: over %d %d %d", __LINE__, (ch).over[0], (ch).over[1],  \
              (ch).over[2]);                                                   \
  } while (0)

#define M OBSPAM__W_MINUTE
#define H OBSPAM__W_HOUR
#define D OBSPAM__W_DAY

Test(judge, no_wait_accepts) {
  obspam__charge ch = charge3();
  EXPECT_JUDGED(ch, -1, -1, 0, 0, 0, 0);
}

/* Equal waits in two windows of one object: the longer window. */
Test(judge, equal_waits_name_the_longer_window) {
  obspam__charge ch = charge3();
  ch.wait[2][M] = ch.wait[2][H] = 100;
  EXPECT_JUDGED(ch, 2, H, 100, 0, 0, 1);
  ch.wait[2][D] = 100;
  EXPECT_JUDGED(ch, 2, D, 100, 0, 0, 1);
  ch = charge3();
  ch.wait[1][M] = ch.wait[1][D] = -1;
  EXPECT_JUDGED(ch, 1, D, -1, 0, 1, 0);
}

/* -1 first, then the longest wait, whatever the window. */
Test(judge, longest_wait_over_window) {
  obspam__charge ch = charge3();
  ch.wait[2][M] = -1;
  ch.wait[2][D] = 80000;
  EXPECT_JUDGED(ch, 2, M, -1, 0, 0, 1);
  ch = charge3();
  ch.wait[2][M] = 55;
  ch.wait[2][H] = 54;
  EXPECT_JUDGED(ch, 2, M, 55, 0, 0, 1);
  ch.wait[0][D] = 56;
  EXPECT_JUDGED(ch, 0, D, 56, 1, 0, 1);
}

/* Equal waits on two objects: the highest level, before the longer
   window. */
Test(judge, equal_waits_name_the_highest_level) {
  obspam__charge ch = charge3();
  ch.wait[0][M] = 30;
  ch.wait[2][D] = 30;
  EXPECT_JUDGED(ch, 0, M, 30, 1, 0, 1);
  ch.wait[1][H] = -1;
  ch.wait[2][D] = -1;
  EXPECT_JUDGED(ch, 1, H, -1, 1, 1, 1);
}

/* The cap: the lowest object's wait of -1, after its windows. */
Test(judge, recipients_cap) {
  obspam__charge ch = charge3();
  ch.over_cap = 1;
  EXPECT_JUDGED(ch, 2, -1, -1, 0, 0, 1);
  ch.wait[0][H] = 3000;
  EXPECT_JUDGED(ch, 2, -1, -1, 1, 0, 1);
  ch.wait[2][M] = -1;
  EXPECT_JUDGED(ch, 2, M, -1, 1, 0, 1);
  ch.wait[1][D] = -1;
  EXPECT_JUDGED(ch, 1, D, -1, 1, 1, 1);
  /* A script's charge of one object: the subscription's cap. */
  ch = charge3();
  ch.n = 1;
  ch.over_cap = 1;
  EXPECT_JUDGED(ch, 0, -1, -1, 1, 0, 0);
}

Test(judge, forbidden_scripts) {
  obspam__charge ch = charge3();
  ch.n = 2;
  ch.forbid = 1;
  ch.over_cap = 1;
  ch.wait[1][H] = -1;
  EXPECT_JUDGED(ch, 0, -1, -1, 1, 0, 0);
}

/* obspam__judge_over, told which waits are not 0, names what
   obspam__judge names from the waits alone, on random charges: most
   waits 0, the others -1 or short, so that ties are frequent; now and
   then a cap or forbidden scripts. */
Test(judge, over_as_judge_on_random_waits) {
  uint64_t x = 0x9E3779B97F4A7C15ull;
  int round, none = 0, one = 0, more = 0;

  for (round = 0; round < 200000; round++) {
    obspam__charge slow = charge3(), fast;
    unsigned over = 0;
    int i, w, bits;

    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    slow.n = 1 + (int)(x % 3);
    slow.over_cap = (x >> 2) % 8 == 0;
    slow.forbid = (x >> 5) % 32 == 0;
    for (i = 0; i < slow.n; i++)
      for (w = 0; w < OBSPAM__WINDOWS; w++) {
        unsigned r = (unsigned)(x >> (10 + 5 * (OBSPAM__WINDOWS * i + w))) % 32;

        slow.wait[i][w] = r < 26 ? 0 : r < 28 ? -1 : (int64_t)(r % 3) * 30 + 30;
        if (slow.wait[i][w] != 0)
          over |= 1u << (OBSPAM__WINDOWS * i + w);
      }
    /* What a store leaves there before it judges. */
    slow.refuser = slow.window = 7;
    slow.retry_after = 99;
    memset(slow.over, 5, sizeof(slow.over));
    memset(slow.over_window, 5, sizeof(slow.over_window));
    fast = slow;
    obspam__judge(&slow);
    obspam__judge_over(&fast, over);
    cr_assert(fast.refuser == slow.refuser && fast.window == slow.window &&
                  fast.retry_after == slow.retry_after &&
                  memcmp(fast.over, slow.over, sizeof(slow.over)) == 0 &&
                  memcmp(fast.over_window, slow.over_window,
                         sizeof(slow.over_window)) == 0,
              "round %d: refuser %d/%d window %d/%d retry %" PRId64 "/%" PRId64,
              round, fast.refuser, slow.refuser, fast.window, slow.window,
              fast.retry_after, slow.retry_after);
    bits = __builtin_popcount(over);
    none += bits == 0 && !slow.over_cap && !slow.forbid;
    one += bits == 1 && !slow.over_cap && !slow.forbid;
    more += bits > 1;
  }
  cr_assert(none >= 10000 && one >= 10000 && more >= 10000,
            "cases: %d without a wait, %d with one, %d with more", none, one,
            more);
}
