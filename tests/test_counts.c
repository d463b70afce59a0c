/* SPDX-License-Identifier: MIT */
/* One notion of a valid count: what a message counts for
   (OBSPAM_RECIPIENTS_MAX), where a counter stops (2^48 for an object's
   minute, hour and notification period), and that whatever the engine
   charged it saves and loads back exactly. */
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"

#define COUNT_MAX ((int64_t)1 << 48)
#define BIG ((int64_t)OBSPAM_RECIPIENTS_MAX)

static const char config[] =
    "default mailbox=unlimited domain=unlimited subscription=unlimited\n"
    "subscription acme\n"
    "domain example.com subscription=acme\n"
    "mailbox big@example.com\n"
    "mailbox small@example.com limit=20\n";

static obspam_engine *e;
static char path[256];

static void setup(void) {
  e = tu_new();
  OK(obspam_load_config_string(e, config));
  snprintf(path, sizeof(path), "%s/test_counts.%ld.state", OBSPAM_TEST_BINDIR,
           (long)getpid());
}

static void teardown(void) {
  obspam_engine_free(e);
  unlink(path);
}

TestSuite(counts, .init = setup, .fini = teardown);

typedef struct hours {
  int n;
  int64_t hour[4], sent[4];
} hours;

static void on_hour(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  hours *h = ud;

  (void)refused;
  cr_assert_lt(h->n, 4);
  h->hour[h->n] = hour;
  h->sent[h->n++] = sent;
}

static hours history_of(obspam_engine *en, const char *mailbox) {
  hours h = {0};

  OK(obspam_history(en, OBSPAM_MAILBOX, mailbox, T0 - 3600, T0 + 3600, on_hour,
                    &h));
  return h;
}

/* A message counts for at most OBSPAM_RECIPIENTS_MAX recipients. */
Test(counts, recipients_beyond_the_bound_count_as_the_bound) {
  obspam_verdict v = SASL(e, "big@example.com", UINT32_MAX, T0);

  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "big@example.com",
                 OBSPAM_UNLIMITED, 0, 0);
  v = SASL(e, "big@example.com", (uint32_t)BIG + 1, T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "big@example.com",
                 OBSPAM_UNLIMITED, BIG, 0);
  v = SASL(e, "big@example.com", (uint32_t)BIG, T0 + 2);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "big@example.com",
                 OBSPAM_UNLIMITED, 2 * BIG, 0);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "big@example.com", T0 + 2, 3 * BIG, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 2, 3 * BIG, 0);
}

/* 2^17 messages of 2^31 in one minute fill the minute's counter; the next
   ones are accepted (the mailbox is unlimited) but count nothing more in
   that minute, hour or period. The next minute counts again. What was
   charged saves and loads back exactly. */
Test(counts, counters_saturate_and_round_trip) {
  obspam_engine *back;
  obspam_verdict v;
  hours h;
  int i;

  for (i = 0; i < (1 << 17) + 10; i++) {
    v = SASL(e, "big@example.com", UINT32_MAX, T0 + 5);
    cr_assert_eq(v.action, OBSPAM_ACCEPT, "message %d", i);
  }
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "big@example.com", T0 + 5, COUNT_MAX, 0);
  v = SASL(e, "big@example.com", 3, T0 + 65);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "big@example.com",
                 OBSPAM_UNLIMITED, COUNT_MAX, 0);
  /* The hour and the notification period stop at the same bound. */
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "big@example.com", T0 + 65, COUNT_MAX + 3,
                0);
  h = history_of(e, "big@example.com");
  cr_assert_eq(h.n, 1);
  cr_assert_eq(h.hour[0], T0);
  cr_assert_eq(h.sent[0], COUNT_MAX);
  /* A mailbox with a limit beside it keeps its own count. */
  v = SASL(e, "small@example.com", 15, T0 + 70);
  cr_assert_eq(v.action, OBSPAM_ACCEPT);

  OK(obspam_state_save(e, path));
  back = tu_new();
  OK(obspam_load_config_string(back, config));
  OK(obspam_state_load(back, path));
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "big@example.com", T0 + 70, COUNT_MAX + 3,
                0);
  EXPECT_COUNTS(back, OBSPAM_SUBSCRIPTION, "acme", T0 + 70, COUNT_MAX + 3 + 15,
                0);
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "small@example.com", T0 + 70, 15, 0);
  h = history_of(back, "big@example.com");
  cr_assert_eq(h.n, 1);
  cr_assert_eq(h.sent[0], COUNT_MAX);
  /* The restored mailbox at 15 of 20 has 5 left, not 20. */
  v = SASL(back, "small@example.com", 6, T0 + 80);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "small@example.com", 20, 15,
                 3580);
  v = SASL(back, "small@example.com", 5, T0 + 80);
  cr_assert_eq(v.action, OBSPAM_ACCEPT);
  obspam_engine_free(back);
}
