/* SPDX-License-Identifier: MIT */
/*
 * What a hosting panel asks of the library: obspam_enumerate (name order,
 * parents, the active flag, paging, errors), obspam_top, obspam_reset and
 * the subscription charged for unknown uids, with exact values.
 */
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
