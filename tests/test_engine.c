/* SPDX-License-Identifier: MIT */
/* Engine life cycle, error messages and options. */
#include <limits.h>

#include "testutil.h"

static obspam_engine *e;

TU_ENGINE_SETUP(tu_new())

TestSuite(engine, .init = setup, .fini = teardown);

static int64_t get_opt(int opt) {
  int64_t v = -12345;
  int rc = obspam_get_option(e, opt, &v);
  cr_assert_eq(rc, OBSPAM_OK, "obspam_get_option(%d) returned %d", opt, rc);
  return v;
}

#define EXPECT_OPT(opt, want)                                                  \
  do {                                                                         \
    int64_t got_ = get_opt(opt);                                               \
    cr_assert_eq(got_, (int64_t)(want),                                        \
                 "line %d: option %s = %" PRId64 ", expected %" PRId64,        \
                 __LINE__, #opt, got_, (int64_t)(want));                       \
  } while (0)

Test(lifecycle, new_and_free) {
  obspam_engine *x = NULL;
  cr_assert_eq(obspam_engine_new(&x), OBSPAM_OK);
  cr_assert_not_null(x);
  obspam_engine_free(x);
}

Test(lifecycle, free_null_is_fine) {
  obspam_engine_free(NULL);
  cr_assert(1, "obspam_engine_free(NULL) returned");
}

Test(lifecycle, new_null_out) {
  cr_assert_eq(obspam_engine_new(NULL), OBSPAM_EINVAL,
               "obspam_engine_new(NULL) must be EINVAL");
}

Test(lifecycle, many_engines_are_independent) {
  obspam_engine *a = tu_new(), *b = tu_new();
  cr_assert_neq(a, b);
  OK(obspam_set_option(a, OBSPAM_OPT_COUNT_UNIT, 1));
  int64_t v = -1;
  OK(obspam_get_option(b, OBSPAM_OPT_COUNT_UNIT, &v));
  cr_assert_eq(v, 0, "an option set on one engine leaked to another");
  OK(obspam_add(a, OBSPAM_PLAN, "p", NULL));
  OK(obspam_add(b, OBSPAM_PLAN, "p", NULL));
  obspam_engine_free(a);
  obspam_engine_free(b);
}

Test(engine, errmsg_empty_initially) {
  const char *m = obspam_engine_errmsg(e);
  cr_assert_not_null(m, "errmsg is NULL");
  cr_assert_str_eq(m, "", "a new engine's errmsg is \"%s\"", m);
}

/* "Never NULL", even without an engine. */
Test(engine, errmsg_null_engine) {
  const char *m = obspam_engine_errmsg(NULL);
  cr_assert_not_null(m, "obspam_engine_errmsg(NULL) is NULL");
}

Test(engine, errmsg_after_failures) {
  /* A few different failures; each leaves a one-line, non-empty message. */
  RC(obspam_set_option(e, 999, 1), OBSPAM_EINVAL);
  const char *m = obspam_engine_errmsg(e);
  cr_assert_not_null(m);
  cr_assert_neq(m[0], '\0', "errmsg empty after a failed set_option");
  cr_assert_null(strchr(m, '\n'), "errmsg is not one line: \"%s\"", m);

  RC(obspam_add(e, OBSPAM_DOMAIN, "example.com", "nosuchsub"),
     OBSPAM_ENOTFOUND);
  m = obspam_engine_errmsg(e);
  cr_assert_neq(m[0], '\0', "errmsg empty after ENOTFOUND");
  cr_assert_null(strchr(m, '\n'), "errmsg is not one line: \"%s\"", m);

  OK(obspam_add(e, OBSPAM_PLAN, "p", NULL));
  RC(obspam_add(e, OBSPAM_PLAN, "p", NULL), OBSPAM_EEXIST);
  m = obspam_engine_errmsg(e);
  cr_assert_neq(m[0], '\0', "errmsg empty after EEXIST");

  RC(obspam_whitelist_add(e, "1.2.3"), OBSPAM_EINVAL);
  m = obspam_engine_errmsg(e);
  cr_assert_neq(m[0], '\0', "errmsg empty after a bad whitelist entry");
}

/* The copy is the message, cut to the buffer and always terminated; a
   missing buffer writes nothing. */
Test(engine, errmsg_r_copies) {
  char buf[64], tiny[8];

  memset(buf, 'x', sizeof buf);
  OK(obspam_engine_errmsg_r(e, buf, sizeof buf));
  cr_assert_str_eq(buf, "", "a new engine's copy is \"%s\"", buf);

  RC(obspam_remove(e, OBSPAM_DOMAIN, "nosuch.example"), OBSPAM_ENOTFOUND);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "remove: no domain 'nosuch.example'");
  OK(obspam_engine_errmsg_r(e, buf, sizeof buf));
  cr_assert_str_eq(buf, "remove: no domain 'nosuch.example'");

  memset(tiny, 'x', sizeof tiny);
  OK(obspam_engine_errmsg_r(e, tiny, sizeof tiny));
  cr_assert_str_eq(tiny, "remove:");

  OK(obspam_engine_errmsg_r(NULL, buf, sizeof buf));
  cr_assert_str_eq(buf, "no engine");

  memset(buf, 'x', sizeof buf);
  RC(obspam_engine_errmsg_r(e, buf, 0), OBSPAM_EINVAL);
  cr_assert_eq(buf[0], 'x', "size 0 wrote into the buffer");
  RC(obspam_engine_errmsg_r(e, NULL, sizeof buf), OBSPAM_EINVAL);
  /* Asking for the copy is not a failure: the message stays the last one. */
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "remove: no domain 'nosuch.example'");
}

Test(engine, errmsg_after_failed_decide) {
  obspam_message msg = OBSPAM_MESSAGE_INIT;
  msg.recipients = 0;
  msg.time = T0;
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  RC(obspam_decide(e, &msg, &v), OBSPAM_EINVAL);
  const char *m = obspam_engine_errmsg(e);
  cr_assert_not_null(m);
  cr_assert_neq(m[0], '\0', "errmsg empty after a failed decide");
}

Test(engine, option_defaults) {
  EXPECT_OPT(OBSPAM_OPT_ENABLED, 1);
  EXPECT_OPT(OBSPAM_OPT_COUNT_UNIT, 0);
  EXPECT_OPT(OBSPAM_OPT_ACTION, 0);
  EXPECT_OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 2);
  EXPECT_OPT(OBSPAM_OPT_COUNT_FORWARD_LOCAL, 0);
  EXPECT_OPT(OBSPAM_OPT_COUNT_FORWARD_REMOTE, 1);
  EXPECT_OPT(OBSPAM_OPT_COUNT_MAILING_LISTS, 0);
  EXPECT_OPT(OBSPAM_OPT_RETENTION_HOURS, 720);
  EXPECT_OPT(OBSPAM_OPT_NOTIFY_PERIOD, 3600);
  EXPECT_OPT(OBSPAM_OPT_NOTIFY_IMMEDIATE, 0);
  EXPECT_OPT(OBSPAM_OPT_IMPLICIT_MAILBOXES, 100000);
}

Test(engine, option_numbers_are_abi) {
  cr_assert_eq(OBSPAM_OPT_ENABLED, 1);
  cr_assert_eq(OBSPAM_OPT_COUNT_UNIT, 2);
  cr_assert_eq(OBSPAM_OPT_ACTION, 3);
  cr_assert_eq(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 4);
  cr_assert_eq(OBSPAM_OPT_COUNT_FORWARD_LOCAL, 5);
  cr_assert_eq(OBSPAM_OPT_COUNT_FORWARD_REMOTE, 6);
  cr_assert_eq(OBSPAM_OPT_COUNT_MAILING_LISTS, 7);
  cr_assert_eq(OBSPAM_OPT_RETENTION_HOURS, 8);
  cr_assert_eq(OBSPAM_OPT_NOTIFY_PERIOD, 9);
  cr_assert_eq(OBSPAM_OPT_NOTIFY_IMMEDIATE, 10);
}

static const int bool_opts[] = {
    OBSPAM_OPT_ENABLED,
    OBSPAM_OPT_COUNT_UNIT,
    OBSPAM_OPT_ACTION,
    OBSPAM_OPT_COUNT_FORWARD_LOCAL,
    OBSPAM_OPT_COUNT_FORWARD_REMOTE,
    OBSPAM_OPT_COUNT_MAILING_LISTS,
    OBSPAM_OPT_NOTIFY_IMMEDIATE,
};
#define N_BOOL_OPTS (sizeof bool_opts / sizeof bool_opts[0])

Test(engine, boolean_options_round_trip) {
  for (size_t i = 0; i < N_BOOL_OPTS; i++) {
    int opt = bool_opts[i];
    for (int pass = 0; pass < 2; pass++) {
      for (int64_t val = 0; val <= 1; val++) {
        OK(obspam_set_option(e, opt, val));
        int64_t got = get_opt(opt);
        cr_assert_eq(got, val, "option %d set to %" PRId64 ", read %" PRId64,
                     opt, val, got);
      }
    }
  }
}

Test(engine, boolean_options_reject_other_values) {
  static const int64_t bad[] = {2, -1, 3, 100, INT64_MAX, INT64_MIN, -2};
  for (size_t i = 0; i < N_BOOL_OPTS; i++) {
    int opt = bool_opts[i];
    for (int64_t keep = 0; keep <= 1; keep++) {
      OK(obspam_set_option(e, opt, keep));
      for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
        int rc = obspam_set_option(e, opt, bad[j]);
        cr_assert_eq(rc, OBSPAM_EINVAL,
                     "option %d value %" PRId64 " returned %d, expected EINVAL",
                     opt, bad[j], rc);
        int64_t got = get_opt(opt);
        cr_assert_eq(got, keep,
                     "option %d changed to %" PRId64
                     " by a refused value %" PRId64,
                     opt, got, bad[j]);
      }
    }
  }
}

/* 0 never, 1 from anywhere, 2 local submissions and local networks. */
Test(engine, count_unauthenticated_range) {
  for (int64_t v = 0; v <= 2; v++) {
    OK(obspam_set_option(e, OBSPAM_OPT_COUNT_UNAUTHENTICATED, v));
    EXPECT_OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, v);
  }
  static const int64_t bad[] = {3, -1, 100, INT64_MAX, INT64_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    RC(obspam_set_option(e, OBSPAM_OPT_COUNT_UNAUTHENTICATED, bad[i]),
       OBSPAM_EINVAL);
    EXPECT_OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 2);
  }
}

Test(engine, implicit_mailboxes_range) {
  static const int64_t good[] = {0, 1, 100000, 99999999, 100000000};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    OK(obspam_set_option(e, OBSPAM_OPT_IMPLICIT_MAILBOXES, good[i]));
    EXPECT_OPT(OBSPAM_OPT_IMPLICIT_MAILBOXES, good[i]);
  }
  OK(obspam_set_option(e, OBSPAM_OPT_IMPLICIT_MAILBOXES, 7));
  static const int64_t bad[] = {-1, 100000001, INT64_MAX, INT64_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    RC(obspam_set_option(e, OBSPAM_OPT_IMPLICIT_MAILBOXES, bad[i]),
       OBSPAM_EINVAL);
    EXPECT_OPT(OBSPAM_OPT_IMPLICIT_MAILBOXES, 7);
  }
}

Test(engine, retention_hours_range) {
  static const int64_t good[] = {1, 2, 24, 720, 8760, 87599, 87600};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    OK(obspam_set_option(e, OBSPAM_OPT_RETENTION_HOURS, good[i]));
    EXPECT_OPT(OBSPAM_OPT_RETENTION_HOURS, good[i]);
  }
  OK(obspam_set_option(e, OBSPAM_OPT_RETENTION_HOURS, 48));
  static const int64_t bad[] = {0, -1, 87601, 100000, INT64_MAX, INT64_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    RC(obspam_set_option(e, OBSPAM_OPT_RETENTION_HOURS, bad[i]), OBSPAM_EINVAL);
    EXPECT_OPT(OBSPAM_OPT_RETENTION_HOURS, 48);
  }
}

Test(engine, notify_period_range) {
  static const int64_t good[] = {60, 61, 3600, 86400, 2678399, 2678400};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_PERIOD, good[i]));
    EXPECT_OPT(OBSPAM_OPT_NOTIFY_PERIOD, good[i]);
  }
  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_PERIOD, 900));
  static const int64_t bad[] = {59, 0, -1, 2678401, INT64_MAX, INT64_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    RC(obspam_set_option(e, OBSPAM_OPT_NOTIFY_PERIOD, bad[i]), OBSPAM_EINVAL);
    EXPECT_OPT(OBSPAM_OPT_NOTIFY_PERIOD, 900);
  }
}

Test(engine, unknown_options) {
  static const int unknown[] = {0, 14, 15, -1, 100, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    int64_t v = 777;
    RC(obspam_set_option(e, unknown[i], 0), OBSPAM_EINVAL);
    RC(obspam_set_option(e, unknown[i], 1), OBSPAM_EINVAL);
    int rc = obspam_get_option(e, unknown[i], &v);
    cr_assert_eq(rc, OBSPAM_EINVAL, "get_option(%d) returned %d", unknown[i],
                 rc);
    cr_assert_eq(v, 777, "get_option(%d) wrote %" PRId64 " on failure",
                 unknown[i], v);
  }
  /* Nothing else moved. */
  EXPECT_OPT(OBSPAM_OPT_ENABLED, 1);
  EXPECT_OPT(OBSPAM_OPT_COUNT_UNIT, 0);
  EXPECT_OPT(OBSPAM_OPT_RETENTION_HOURS, 720);
  EXPECT_OPT(OBSPAM_OPT_NOTIFY_PERIOD, 3600);
}

Test(engine, option_null_arguments) {
  int64_t v = 0;
  RC(obspam_set_option(NULL, OBSPAM_OPT_ENABLED, 1), OBSPAM_EINVAL);
  RC(obspam_get_option(NULL, OBSPAM_OPT_ENABLED, &v), OBSPAM_EINVAL);
  RC(obspam_get_option(e, OBSPAM_OPT_ENABLED, NULL), OBSPAM_EINVAL);
  RC(obspam_get_option(e, 999, NULL), OBSPAM_EINVAL);
}

/* Setting one option does not disturb any other. */
Test(engine, options_are_independent) {
  OK(obspam_set_option(e, OBSPAM_OPT_ENABLED, 0));
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_UNIT, 1));
  OK(obspam_set_option(e, OBSPAM_OPT_ACTION, 1));
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_UNAUTHENTICATED, 0));
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_FORWARD_LOCAL, 1));
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_FORWARD_REMOTE, 0));
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_MAILING_LISTS, 1));
  OK(obspam_set_option(e, OBSPAM_OPT_RETENTION_HOURS, 100));
  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_PERIOD, 120));
  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_IMMEDIATE, 1));
  EXPECT_OPT(OBSPAM_OPT_ENABLED, 0);
  EXPECT_OPT(OBSPAM_OPT_COUNT_UNIT, 1);
  EXPECT_OPT(OBSPAM_OPT_ACTION, 1);
  EXPECT_OPT(OBSPAM_OPT_COUNT_UNAUTHENTICATED, 0);
  EXPECT_OPT(OBSPAM_OPT_COUNT_FORWARD_LOCAL, 1);
  EXPECT_OPT(OBSPAM_OPT_COUNT_FORWARD_REMOTE, 0);
  EXPECT_OPT(OBSPAM_OPT_COUNT_MAILING_LISTS, 1);
  EXPECT_OPT(OBSPAM_OPT_RETENTION_HOURS, 100);
  EXPECT_OPT(OBSPAM_OPT_NOTIFY_PERIOD, 120);
  EXPECT_OPT(OBSPAM_OPT_NOTIFY_IMMEDIATE, 1);
}

/* A new engine limits nothing: unlimited server defaults, scripts allowed. */
Test(engine, new_engine_limits_nothing) {
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "acme", NULL));
  OK(obspam_add(e, OBSPAM_DOMAIN, "example.com", "acme"));
  OK(obspam_add(e, OBSPAM_MAILBOX, "info@example.com", NULL));
  OK(obspam_set_uid(e, "acme", 1000));
  EXPECT_EFF(e, OBSPAM_SUBSCRIPTION, "acme", OBSPAM_UNLIMITED);
  EXPECT_EFF(e, OBSPAM_DOMAIN, "example.com", OBSPAM_UNLIMITED);
  EXPECT_EFF(e, OBSPAM_MAILBOX, "info@example.com", OBSPAM_UNLIMITED);
  obspam_verdict v = SASL(e, "info@example.com", 100000, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 0, 0);
  v = SCRIPT(e, 1000, NULL, 5, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, "acme",
                 OBSPAM_UNLIMITED, 100000, 0);
}

/* A NULL engine is EINVAL for every fallible function, NULL out pointers
   too. */
Test(engine, null_engine_everywhere) {
  obspam_message m = tu_msg(0, "a@b.c", "a@b.c", NULL, 1, -1, NULL, NULL, T0);
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  obspam_stats s = OBSPAM_STATS_INIT;
  int64_t lim = 0;
  RC(obspam_add(NULL, OBSPAM_PLAN, "p", NULL), OBSPAM_EINVAL);
  RC(obspam_remove(NULL, OBSPAM_PLAN, "p"), OBSPAM_EINVAL);
  RC(obspam_set_limit(NULL, OBSPAM_SERVER, NULL, OBSPAM_MAILBOX, 5),
     OBSPAM_EINVAL);
  RC(obspam_effective_limit(NULL, OBSPAM_SUBSCRIPTION, "s", &lim),
     OBSPAM_EINVAL);
  RC(obspam_set_uid(NULL, "s", 1), OBSPAM_EINVAL);
  RC(obspam_set_scripts_allowed(NULL, OBSPAM_SERVER, NULL, 1), OBSPAM_EINVAL);
  RC(obspam_set_contact(NULL, "s", "a@b.c"), OBSPAM_EINVAL);
  RC(obspam_whitelist_add(NULL, "192.0.2.0/24"), OBSPAM_EINVAL);
  RC(obspam_whitelist_remove(NULL, "192.0.2.0/24"), OBSPAM_EINVAL);
  RC(obspam_decide(NULL, &m, &v), OBSPAM_EINVAL);
  RC(obspam_stats_get(NULL, OBSPAM_SUBSCRIPTION, "s", T0, &s), OBSPAM_EINVAL);

  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "s", NULL));
  RC(obspam_effective_limit(e, OBSPAM_SUBSCRIPTION, "s", NULL), OBSPAM_EINVAL);
  RC(obspam_stats_get(e, OBSPAM_SUBSCRIPTION, "s", T0, NULL), OBSPAM_EINVAL);
  RC(obspam_decide(e, NULL, &v), OBSPAM_EINVAL);
  RC(obspam_decide(e, &m, NULL), OBSPAM_EINVAL);
}
