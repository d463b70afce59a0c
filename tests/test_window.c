/* SPDX-License-Identifier: MIT */
/*
 * The 60-minute sliding window with one-minute buckets, and retry_after.
 *
 * From API.md: count_in_window(t) sums the buckets of minutes
 * (t div 60) - 59 ... (t div 60); retry_after is the smallest s >= 1 such
 * that the message fits every charged object at t + s (-1 if c is larger
 * than some charged object's limit).
 *
 * So a charge made in minute m is counted at t while t div 60 <= m + 59,
 * i.e. while t < (m + 60) * 60, and leaves the window at exactly
 * (m + 60) * 60. Every expectation below is worked out from that by hand.
 *
 * T0 = 1800000000 = 30000000 * 60, so m0 = T0 / 60 = 30000000 and minute
 * m0 + k starts at T0 + 60k.
 */
#include "testutil.h"

static obspam_engine *e;

/*   subscription acme (uid 10001)
 *     domain example.com: info@, sales@
 *     domain example.net: bob@          (all unlimited unless set) */
TU_ENGINE_SETUP(tu_fixture("window.conf"))

TestSuite(window, .init = setup, .fini = teardown);

#define INFO "info@example.com"
#define MBOX_LIMIT(name, v)                                                    \
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, (name), OBSPAM_MAILBOX, (v)))
#define INFO_COUNT(now) STATS(e, OBSPAM_MAILBOX, INFO, (now)).count

#define EXPECT_INFO_COUNT(now, want)                                           \
  do {                                                                         \
    int64_t got_ = INFO_COUNT(now);                                            \
    cr_assert_eq(got_, (int64_t)(want),                                        \
                 "line %d: count at T0%+" PRId64 " = %" PRId64                 \
                 ", expected %" PRId64,                                        \
                 __LINE__, (int64_t)(now)-T0, got_, (int64_t)(want));          \
  } while (0)

/* A charge at the first second of minute m0 lives 3600 s. */
Test(window, charge_at_minute_start) {
  SASL(e, INFO, 1, T0);
  EXPECT_INFO_COUNT(T0, 1);
  EXPECT_INFO_COUNT(T0 + 59, 1);
  EXPECT_INFO_COUNT(T0 + 1800, 1);
  /* T0+3599: minute m0+59, window m0..m0+59: counted. */
  EXPECT_INFO_COUNT(T0 + 3599, 1);
  /* T0+3600: minute m0+60, window m0+1..m0+60: gone. */
  EXPECT_INFO_COUNT(T0 + 3600, 0);
  EXPECT_INFO_COUNT(T0 + 7200, 0);
}

/* A charge at the last second of minute m0 (tc = T0 + 59, i.e.
   3600 * 500000 + 59) is counted until (m0 + 60) * 60 - 1 = T0 + 3599 =
   tc + 3540 and leaves at tc + 3541: it lives only 3541 s. */
Test(window, charge_at_minute_end) {
  const int64_t tc = T0 + 59;
  MBOX_LIMIT(INFO, 1);
  obspam_verdict v = SASL(e, INFO, 1, tc);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 1, 0, 0);
  EXPECT_INFO_COUNT(tc + 3540, 1);
  EXPECT_INFO_COUNT(tc + 3541, 0);
  /* At tc + 3540 = T0 + 3599 the message fits at T0 + 3600: retry 1. */
  v = SASL(e, INFO, 1, tc + 3540);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 1, 1, 1);
  v = SASL(e, INFO, 1, tc + 3541);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 1, 0, 0);
}

/* T0 + 59 and T0 + 60 are in different buckets. */
Test(window, minute_boundary_splits_buckets) {
  SASL(e, INFO, 1, T0 + 59); /* minute m0 */
  SASL(e, INFO, 2, T0 + 60); /* minute m0 + 1 */
  EXPECT_INFO_COUNT(T0 + 60, 3);
  EXPECT_INFO_COUNT(T0 + 3599, 3);
  EXPECT_INFO_COUNT(T0 + 3600, 2); /* m0 left */
  EXPECT_INFO_COUNT(T0 + 3659, 2);
  EXPECT_INFO_COUNT(T0 + 3660, 0); /* m0 + 1 left */
}

/* Charges of the same minute share a bucket and leave together. */
Test(window, same_minute_one_bucket) {
  SASL(e, INFO, 1, T0 + 1);
  SASL(e, INFO, 2, T0 + 30);
  SASL(e, INFO, 4, T0 + 59);
  EXPECT_INFO_COUNT(T0 + 3599, 7);
  EXPECT_INFO_COUNT(T0 + 3600, 0);
}

/* Charges k+1 in minutes m0 + 10k, k = 0..5 (21 in all). */
Test(window, spread_buckets) {
  for (int k = 0; k <= 5; k++)
    SASL(e, INFO, (uint32_t)(k + 1), T0 + 600 * k);
  /* T0+3000: minute m0+50, window m0-9..m0+50: all. */
  EXPECT_INFO_COUNT(T0 + 3000, 21);
  /* T0+3599: m0+59, window m0..m0+59: all. */
  EXPECT_INFO_COUNT(T0 + 3599, 21);
  /* T0+3600: m0+60, window m0+1..: minus k=0 (1). */
  EXPECT_INFO_COUNT(T0 + 3600, 20);
  /* T0+4199: m0+69, window m0+10..: still k=1. */
  EXPECT_INFO_COUNT(T0 + 4199, 20);
  /* T0+4200: m0+70, window m0+11..: minus k=1 (2). */
  EXPECT_INFO_COUNT(T0 + 4200, 18);
  /* T0+6599: m0+109, window m0+50..m0+109: k=5 only (6). */
  EXPECT_INFO_COUNT(T0 + 6599, 6);
  /* T0+6600: m0+110, window m0+51..: nothing. */
  EXPECT_INFO_COUNT(T0 + 6600, 0);
}

/* One bucket: limit 2, 2 charged at T0 (minute m0). Refused at T0+1000:
   fits once m0 leaves at T0+3600, retry = 3600 - 1000 = 2600. */
Test(window, retry_single_bucket) {
  MBOX_LIMIT(INFO, 2);
  SASL(e, INFO, 2, T0);
  obspam_verdict v = SASL(e, INFO, 1, T0 + 1000);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 2, 2, 2600);
  /* Same at T0+3599: 1; at T0 itself: 3600. */
  v = SASL(e, INFO, 1, T0 + 3599);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 2, 2, 1);
  v = SASL(e, INFO, 1, T0 + 3600);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 2, 0, 0);
}

/* t0 = 6000000 (minute 100000). Limit 2, 1 at t0 and 1 at t0+600 (minute
   100010). Refused at t0+1200: fits when minute 100000 leaves, at
   (t0/60 + 60)*60 = 6003600; retry = 6003600 - 6001200 = 2400. */
Test(window, retry_mid_window_example) {
  const int64_t t0 = 6000000;
  MBOX_LIMIT(INFO, 2);
  SASL(e, INFO, 1, t0);
  SASL(e, INFO, 1, t0 + 600);
  obspam_verdict v = SASL(e, INFO, 1, t0 + 1200);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 2, 2,
                 (t0 / 60 + 60) * 60 - (t0 + 1200));
  cr_assert_eq(v.retry_after, 2400);
  /* At t0+3600 it fits (count 1). */
  v = SASL(e, INFO, 1, t0 + 3600);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 2, 1, 0);
  /* Now 1 at minute 100010 and 1 at 100060: full. At t0+3601 the next slot
     frees when 100010 leaves: (100010 + 60) * 60 = 6004200; retry = 6004200
     - 6003601 = 599. */
  v = SASL(e, INFO, 1, t0 + 3601);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 2, 2, 599);
}

/* Limit 5; 2 at T0 (m0), 2 at T0+600 (m0+10), 1 at T0+1200 (m0+20). At
   t = T0+1800 (count 5), a message of c recipients needs count <= 5 - c:
     c=1: drop m0 (left 3)         -> T0+3600: retry 1800
     c=2: drop m0 (3 <= 3)         -> T0+3600: retry 1800
     c=3: drop m0, m0+10 (left 1)  -> T0+4200: retry 2400
     c=4: same (1 <= 1)            -> T0+4200: retry 2400
     c=5: drop all three (left 0)  -> T0+4800: retry 3000
     c=6: larger than the limit    -> -1 */
Test(window, retry_needs_several_buckets) {
  MBOX_LIMIT(INFO, 5);
  SASL(e, INFO, 2, T0);
  SASL(e, INFO, 2, T0 + 600);
  SASL(e, INFO, 1, T0 + 1200);
  static const int64_t want[7] = {0, 1800, 1800, 2400, 2400, 3000, -1};
  for (uint32_t c = 1; c <= 6; c++) {
    obspam_verdict v = SASL(e, INFO, c, T0 + 1800);
    EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 5, 5, want[c]);
  }
}

/* In the middle of a minute: a charge at T0+30 (m0) leaves at T0+3600. */
Test(window, retry_mid_minute) {
  /* A refused message's time and its retry_after. */
  static const int64_t refused[][2] = {
      {T0 + 3017, 583}, {T0 + 3590, 10}, {T0 + 3599, 1}};

  MBOX_LIMIT(INFO, 1);
  SASL(e, INFO, 1, T0 + 30);
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    obspam_verdict v = SASL(e, INFO, 1, refused[i][0]);
    EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 1, 1, refused[i][1]);
  }
}

/* retry is the max over all charged objects, and the object with that
   longest wait is named: acme (limit 2) is full, but info (limit 1) needs
   longer.
     bob  1 at T0      (m0):    acme 1
     info 1 at T0+1200 (m0+20): acme 2, info 1
   info sends 1 at T0+1800: acme 2+1 > 2 and info 1+1 > 1. acme fits when
   m0 leaves (T0+3600), info when m0+20 leaves (T0+4800): info is named,
   retry = 4800 - 1800 = 3000. */
Test(window, retry_max_over_charged_objects) {
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "acme", OBSPAM_SUBSCRIPTION, 2));
  MBOX_LIMIT(INFO, 1);
  SASL(e, "bob@example.net", 1, T0);
  SASL(e, INFO, 1, T0 + 1200);
  obspam_verdict v = SASL(e, INFO, 1, T0 + 1800);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 1, 1, 3000);
  /* bob only needs acme: 1800. */
  v = SASL(e, "bob@example.net", 1, T0 + 1800);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 2, 2, 1800);
  /* At T0+3600 bob fits, info does not (its own limit, 1200 s more). */
  v = SASL(e, INFO, 1, T0 + 3600);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 1, 1, 1200);
  v = SASL(e, "bob@example.net", 1, T0 + 3600);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "bob@example.net",
                 OBSPAM_UNLIMITED, 0, 0);
}

/* Three levels, the domain needs the longest.
     acme limit 3, example.com limit 2, info limit 5
     bob   1 at T0      (m0):    acme 1
     sales 1 at T0+600  (m0+10): acme 2, example.com 1
     info  1 at T0+1500 (m0+25): acme 3, example.com 2, info 1
   info sends 1 at T0+2000: acme 3+1 > 3 (fits at T0+3600 when m0
   leaves); example.com 2+1 > 2 (fits when m0+10 leaves, T0+4200: the
   longest wait, named); info fits. retry = 4200 - 2000 = 2200. */
Test(window, retry_three_levels) {
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "acme", OBSPAM_SUBSCRIPTION, 3));
  OK(obspam_set_limit(e, OBSPAM_DOMAIN, "example.com", OBSPAM_DOMAIN, 2));
  MBOX_LIMIT(INFO, 5);
  SASL(e, "bob@example.net", 1, T0);
  SASL(e, "sales@example.com", 1, T0 + 600);
  SASL(e, INFO, 1, T0 + 1500);
  obspam_verdict v = SASL(e, INFO, 1, T0 + 2000);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_DOMAIN, "example.com", 2, 2, 2200);
  /* 2 recipients: example.com needs 0, so m0+25 must leave too: T0+1500+3600
     = T0+5100, retry 3100. acme needs <= 1: m0 and m0+10 gone, T0+4200. */
  v = SASL(e, INFO, 2, T0 + 2000);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_DOMAIN, "example.com", 2, 2, 3100);
  /* A script with the example.com hint: acme and example.com only, the same
     2200 for 1 recipient. */
  v = SCRIPT(e, 10001, "example.com", 1, T0 + 2000);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_DOMAIN, "example.com", 2, 2, 2200);
  /* Without the hint: acme only, 1600. */
  v = SCRIPT(e, 10001, NULL, 1, T0 + 2000);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 3, 3, 1600);
}

/* 60 charges, one per minute m0..m0+59, limit 60. At T0+3599 the window is
   full; the next slot frees at T0+3600: retry 1. */
Test(window, one_charge_per_minute) {
  MBOX_LIMIT(INFO, 60);
  for (int k = 0; k < 60; k++) {
    obspam_verdict v = SASL(e, INFO, 1, T0 + 60 * k);
    EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 60, k, 0);
  }
  obspam_verdict v = SASL(e, INFO, 1, T0 + 3599);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 60, 60, 1);
  /* Three at once need three minutes to leave: m0+2 leaves at
     T0 + 120 + 3600 = T0+3720; retry = 3720 - 3599 = 121. */
  v = SASL(e, INFO, 3, T0 + 3599);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 60, 60, 121);
  v = SASL(e, INFO, 1, T0 + 3600);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 60, 59, 0);
  EXPECT_INFO_COUNT(T0 + 3600, 60);
  EXPECT_INFO_COUNT(T0 + 3660, 59);
}

/* The ring of 60 buckets is reused: minute m0 and m0+60 share a slot, the
   old value must not leak into the new minute. */
Test(window, ring_reuse) {
  MBOX_LIMIT(INFO, 1);
  obspam_verdict v = SASL(e, INFO, 1, T0); /* m0 */
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 1, 0, 0);
  v = SASL(e, INFO, 1, T0 + 3600); /* m0 + 60 */
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 1, 0, 0);
  EXPECT_INFO_COUNT(T0 + 3600, 1);
  EXPECT_INFO_COUNT(T0 + 7199, 1);
  EXPECT_INFO_COUNT(T0 + 7200, 0);
  v = SASL(e, INFO, 1, T0 + 7260); /* m0 + 121 */
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 1, 0, 0);
  EXPECT_INFO_COUNT(T0 + 7260, 1);
  /* After a gap of several hours, and of exactly 24 hours. */
  v = SASL(e, INFO, 1, T0 + 7260 + 5 * 3600 + 17);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 1, 0, 0);
  v = SASL(e, INFO, 1, T0 + 7260 + 29 * 3600 + 17);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 1, 0, 0);
  v = SASL(e, INFO, 1, T0 + 7260 + 29 * 3600 + 18);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 1, 1,
                 (((T0 + 7260 + 29 * 3600 + 17) / 60 + 60) * 60) -
                     (T0 + 7260 + 29 * 3600 + 18));
  cr_assert_eq(v.retry_after, 3600 - 18);
}

/* Partial expiry across the ring: charges in minutes m0..m0+59 of 1 each,
   then a gap of 30 minutes: half of them left. */
Test(window, partial_expiry_after_gap) {
  for (int k = 0; k < 60; k++)
    SASL(e, INFO, 1, T0 + 60 * k);
  /* T0+5400: minute m0+90, window m0+31..m0+90: charges m0+31..m0+59 = 29. */
  EXPECT_INFO_COUNT(T0 + 5400, 29);
  SASL(e, INFO, 5, T0 + 5400);
  EXPECT_INFO_COUNT(T0 + 5400, 34);
  /* T0+7139: m0+118, window m0+59..: 1 + 5. */
  EXPECT_INFO_COUNT(T0 + 7139, 6);
  EXPECT_INFO_COUNT(T0 + 7140, 5);
  EXPECT_INFO_COUNT(T0 + 9000, 0);
}

/* stats.refused is in the same window (attempts, by minute). A refusal at
   T0+59 (minute m0) is in the window at T0+3599 and not at T0+3600;
   refused_total keeps it. */
Test(window, refused_in_window) {
  MBOX_LIMIT(INFO, 0);
  SASL(e, INFO, 1, T0 + 59);
  SASL(e, INFO, 3, T0 + 60);
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, INFO, T0 + 3599);
  cr_assert_eq(s.refused, 2);
  cr_assert_eq(s.refused_total, 2);
  s = STATS(e, OBSPAM_MAILBOX, INFO, T0 + 3600);
  cr_assert_eq(s.refused, 1);
  cr_assert_eq(s.refused_total, 2);
  s = STATS(e, OBSPAM_MAILBOX, INFO, T0 + 3660);
  cr_assert_eq(s.refused, 0);
  cr_assert_eq(s.refused_total, 2);
  cr_assert_eq(s.last_refused, T0 + 60);
}

/* stats_get does not move the engine's time: only decisions do. */
Test(window, stats_get_does_not_advance_time) {
  MBOX_LIMIT(INFO, 1);
  SASL(e, INFO, 1, T0);
  EXPECT_INFO_COUNT(T0 + 3600, 0);
  /* Still T0+10 for decisions: the charge of T0 is in the window. */
  obspam_verdict v = SASL(e, INFO, 1, T0 + 10);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 1, 1, 3590);
}

/* The newest time is the newest seen by any decision, also one that ended
   EXEMPT or UNKNOWN (the README: "a time older than the newest one any
   decision has seen counts as that newest time"). */
Test(window, newest_time_from_any_decision) {
  MBOX_LIMIT(INFO, 1);
  SASL(e, INFO, 1, T0);
  /* UNKNOWN at T0+3600. */
  obspam_verdict v = UNAUTH(e, "x@nowhere.test", 1, T0 + 3600);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
  /* A message at T0+10 is treated as T0+3600: the window is empty. */
  v = SASL(e, INFO, 1, T0 + 10);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 1, 0, 0);
  /* EXEMPT (a mailing list) at T0+7200, then the same. */
  v = tu_decide_msg(e,
                    &(obspam_message){sizeof(obspam_message),
                                      OBSPAM_MSG_MAILING_LIST, NULL, INFO, NULL,
                                      1, -1, NULL, NULL, T0 + 7200},
                    __LINE__);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  v = SASL(e, INFO, 1, T0 + 20);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 1, 0, 0);
  EXPECT_INFO_COUNT(T0 + 7200, 1);
}

/* Backwards times and retry: counted from the clamped time. */
Test(window, backwards_time_retry) {
  MBOX_LIMIT(INFO, 2);
  SASL(e, INFO, 1, T0);
  SASL(e, INFO, 1, T0 + 1000); /* minute m0+16, the newest time */
  /* At "T0+5" = T0+1000: m0 leaves at T0+3600, retry 2600. */
  obspam_verdict v = SASL(e, INFO, 1, T0 + 5);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 2, 2, 2600);
  v = SASL(e, INFO, 2, 1);
  /* 2 recipients need both gone: m0+16 leaves at T0+960+3600 = T0+4560;
     retry = 4560 - 1000 = 3560. */
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 2, 2, 3560);
}

/* Times near the epoch: the window reaches back before minute 0. A charge at
   t = 1 (minute 0) leaves at 3600. */
Test(window, near_the_epoch) {
  MBOX_LIMIT(INFO, 2);
  obspam_verdict v = SASL(e, INFO, 1, 1);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 2, 0, 0);
  v = SASL(e, INFO, 1, 59);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 2, 1, 0);
  v = SASL(e, INFO, 1, 60);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, 2, 2, 3540);
  EXPECT_INFO_COUNT(3599, 2);
  EXPECT_INFO_COUNT(3600, 0);
  v = SASL(e, INFO, 2, 3600);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, INFO, 2, 0, 0);
}

/* The retry hint against API.md's definition on random traffic: messages
   of 1 to 4 recipients at random steps through a few hours, under limits
   from 1 to 40, the model keeping every accepted message's minute. The
   walk that finds the hint goes from the oldest bucket or from the
   newest, whichever needs the smaller sum: both directions, and floods
   of refusals after the window filled, are met many times. */
Test(window, retry_as_defined_on_random_traffic) {
  enum { MAX = 4096 };
  static int64_t minute[MAX], count[MAX];
  uint64_t x = 0x2545F4914F6CDD1Dull;
  int64_t t = T0;
  int round, refused = 0, walked_back = 0;

  for (round = 0; round < 40; round++) {
    int64_t limit = 1 + round;
    int n = 0, i;

    t += 7200; /* each round starts on an empty window */
    MBOX_LIMIT(INFO, limit);
    for (i = 0; i < 600 && n < MAX; i++) {
      int64_t held = 0, want = 0, k;
      uint32_t c;
      obspam_verdict v;
      int j;

      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      /* Mostly short steps, so that the window fills; now and then a
         long one, so that it empties. */
      t += x % 16 == 0 ? (int64_t)(x >> 8) % 4000 : (int64_t)(x >> 8) % 40;
      c = 1 + (uint32_t)((x >> 20) % 4);
      for (j = 0; j < n; j++)
        if (minute[j] >= t / 60 - 59)
          held += count[j];
      v = SASL(e, INFO, c, t);
      if (held + c <= limit) {
        cr_assert_eq(v.action, OBSPAM_ACCEPT, "t=T0%+" PRId64,
                     (int64_t)(t - T0));
        minute[n] = t / 60;
        count[n++] = c;
        continue;
      }
      refused++;
      if ((int64_t)c > limit) {
        want = -1;
      } else {
        /* The count changes only at a minute's start. */
        for (k = 1; k <= 60 && want == 0; k++) {
          int64_t at = (t / 60 + k) * 60, in = 0;

          for (j = 0; j < n; j++)
            if (minute[j] >= at / 60 - 59)
              in += count[j];
          if (in + c <= limit)
            want = at - t;
        }
        walked_back += held - (held + c - limit) < held + c - limit;
      }
      EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, INFO, limit, held, want);
    }
  }
  cr_assert_geq(refused, 5000, "only %d refusals", refused);
  cr_assert_geq(walked_back, 1000, "only %d walks from the newest bucket",
                walked_back);
}
