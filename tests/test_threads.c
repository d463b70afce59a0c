/* SPDX-License-Identifier: MIT */
/*
 * Thread stress. One engine shared by many threads must keep decisions
 * atomic across levels: with a subscription limit L and N single-recipient
 * messages decided at the same instant, exactly min(L, N) are accepted,
 * whatever the interleaving. A second test changes the tree, limits,
 * options and whitelist while threads decide, and checks that the counters
 * agree with the verdicts the threads saw.
 */
#include <pthread.h>

#include "testutil.h"

#define N_THREADS 8
#define PER_THREAD 1000
#define N_MAILBOXES 64

static obspam_engine *e;
static pthread_barrier_t barrier;
static char mbox[N_MAILBOXES][32];

/* subscription s: domains d0.test and d1.test, 32 mailboxes each; only the
   subscription is limited. */
static void build(int64_t sub_limit) {
  e = tu_new();
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "s", NULL));
  OK(obspam_set_uid(e, "s", 5000));
  OK(obspam_add(e, OBSPAM_DOMAIN, "d0.test", "s"));
  OK(obspam_add(e, OBSPAM_DOMAIN, "d1.test", "s"));
  for (int i = 0; i < N_MAILBOXES; i++) {
    snprintf(mbox[i], sizeof mbox[i], "m%d@d%d.test", i, i % 2);
    OK(obspam_add(e, OBSPAM_MAILBOX, mbox[i], NULL));
  }
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "s", OBSPAM_SUBSCRIPTION,
                      sub_limit));
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "s", OBSPAM_DOMAIN,
                      OBSPAM_UNLIMITED));
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "s", OBSPAM_MAILBOX,
                      OBSPAM_UNLIMITED));
}

typedef struct worker {
  int id;
  int64_t limit;
  int64_t accepted, refused, bad, errors;
  char bad_verdict[512];
} worker;

/* Each thread decides PER_THREAD single-recipient messages at T0 for the
   mailboxes of s, and checks each verdict's fields. */
static void *decider(void *arg) {
  worker *w = arg;
  pthread_barrier_wait(&barrier);
  for (int i = 0; i < PER_THREAD; i++) {
    const char *login = mbox[(w->id * 7 + i) % N_MAILBOXES];
    obspam_message m = tu_msg(0, login, login, NULL, 1, -1, NULL, NULL, T0);
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    if (obspam_decide(e, &m, &v) != OBSPAM_OK) {
      w->errors++;
      continue;
    }
    int ok;
    if (v.action == OBSPAM_ACCEPT) {
      w->accepted++;
      ok = v.kind == OBSPAM_MAILBOX && strcmp(v.object, login) == 0 &&
           v.limit == OBSPAM_UNLIMITED && v.count >= 0 && v.retry_after == 0;
    } else if (v.action == OBSPAM_REFUSE) {
      w->refused++;
      /* Every charge is at T0: the slot frees at T0 + 3600 (retry 3600), or
         never when the limit is 0. */
      ok = v.kind == OBSPAM_SUBSCRIPTION && strcmp(v.object, "s") == 0 &&
           v.limit == w->limit && v.count == w->limit &&
           v.retry_after == (w->limit == 0 ? -1 : 3600);
    } else {
      ok = 0;
    }
    if (!ok && w->bad++ == 0)
      tu_fmt_verdict(w->bad_verdict, sizeof w->bad_verdict, &v);
  }
  return NULL;
}

static void run_round(int64_t limit) {
  build(limit);
  worker w[N_THREADS];
  pthread_t th[N_THREADS];
  memset(w, 0, sizeof w);
  cr_assert_eq(pthread_barrier_init(&barrier, NULL, N_THREADS), 0);
  for (int i = 0; i < N_THREADS; i++) {
    w[i].id = i;
    w[i].limit = limit;
    cr_assert_eq(pthread_create(&th[i], NULL, decider, &w[i]), 0);
  }
  int64_t accepted = 0, refused = 0;
  for (int i = 0; i < N_THREADS; i++) {
    pthread_join(th[i], NULL);
    cr_assert_eq(w[i].errors, 0, "thread %d: %" PRId64 " decide errors", i,
                 w[i].errors);
    cr_assert_eq(w[i].bad, 0,
                 "limit %" PRId64 ": thread %d saw %" PRId64
                 " wrong verdicts, first %s",
                 limit, i, w[i].bad, w[i].bad_verdict);
    accepted += w[i].accepted;
    refused += w[i].refused;
  }
  pthread_barrier_destroy(&barrier);

  const int64_t total = N_THREADS * PER_THREAD;
  const int64_t want = limit < total ? limit : total;
  cr_assert_eq(accepted, want,
               "limit %" PRId64 ": %" PRId64 " accepted, expected %" PRId64,
               limit, accepted, want);
  cr_assert_eq(refused, total - want,
               "limit %" PRId64 ": %" PRId64 " refused, expected %" PRId64,
               limit, refused, total - want);
  obspam_stats s = STATS(e, OBSPAM_SUBSCRIPTION, "s", T0 + 59);
  cr_assert_eq(s.count, want, "limit %" PRId64 ": stats count %" PRId64, limit,
               s.count);
  cr_assert_eq(s.refused, total - want,
               "limit %" PRId64 ": stats refused %" PRId64, limit, s.refused);
  cr_assert_eq(s.refused_total, total - want);
  /* The levels below agree: the mailboxes and the domains sum up. */
  int64_t mcount = 0, mrefused = 0, dcount = 0, drefused = 0;
  for (int i = 0; i < N_MAILBOXES; i++) {
    obspam_stats ms = STATS(e, OBSPAM_MAILBOX, mbox[i], T0 + 59);
    mcount += ms.count;
    mrefused += ms.refused;
  }
  for (int d = 0; d < 2; d++) {
    obspam_stats ds =
        STATS(e, OBSPAM_DOMAIN, d ? "d1.test" : "d0.test", T0 + 59);
    dcount += ds.count;
    drefused += ds.refused;
  }
  cr_assert_eq(mcount, want, "mailboxes sum to %" PRId64, mcount);
  cr_assert_eq(mrefused, total - want, "mailbox refusals sum to %" PRId64,
               mrefused);
  cr_assert_eq(dcount, want, "domains sum to %" PRId64, dcount);
  cr_assert_eq(drefused, total - want, "domain refusals sum to %" PRId64,
               drefused);
  obspam_engine_free(e);
  e = NULL;
}

Test(threads, limit_1000_exactly) { run_round(1000); }

Test(threads, several_limits) {
  static const int64_t limits[] = {0, 1, 2, 63, 999, 2500, 7999, 8000, 12345};
  for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
    run_round(limits[i]);
}

Test(threads, repeated_rounds) {
  for (int r = 0; r < 10; r++)
    run_round(1000 + 300 * r);
}

/* ---- decisions while everything else changes --------------------------------
 */

/* Set once the deciders are done; read by the churner and limiter. */
static int stop;
#define STOPPED() __atomic_load_n(&stop, __ATOMIC_ACQUIRE)

typedef struct mix {
  int id;
  int64_t accepted, script_accepted, refused, other, errors;
} mix;

/* Deciders on the stable objects of s, at T0: whatever the limits are at
   each moment, their verdicts must agree with the counters at the end. */
static void *mix_decider(void *arg) {
  mix *w = arg;
  pthread_barrier_wait(&barrier);
  for (int i = 0; i < 2000; i++) {
    obspam_message m;
    if (i % 5 == 4)
      m = tu_msg(OBSPAM_MSG_SCRIPT, NULL, NULL, NULL, 1, 5000,
                 i % 2 ? "d0.test" : NULL, "/x.php", T0);
    else
      m = tu_msg(0, mbox[(w->id * 13 + i) % N_MAILBOXES], NULL, NULL,
                 (uint32_t)(1 + i % 3), -1, NULL, NULL, T0);
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    if (obspam_decide(e, &m, &v) != OBSPAM_OK)
      w->errors++;
    else if (v.action == OBSPAM_ACCEPT) {
      w->accepted += m.recipients;
      if (m.flags & OBSPAM_MSG_SCRIPT)
        w->script_accepted += m.recipients;
    } else if (v.action == OBSPAM_REFUSE)
      w->refused++;
    else
      w->other++;
  }
  return NULL;
}

/* Adds and removes unrelated objects, deciding for them in between. */
static void *churner(void *arg) {
  int64_t *errors = arg;
  char sub[32], dom[32], mb[48];
  pthread_barrier_wait(&barrier);
  for (int i = 0; !STOPPED() || i < 50; i++) {
    snprintf(sub, sizeof sub, "tmp%d", i % 7);
    snprintf(dom, sizeof dom, "tmp%d.test", i % 7);
    snprintf(mb, sizeof mb, "u@tmp%d.test", i % 7);
    int rc = 0;
    rc |= obspam_add(e, OBSPAM_SUBSCRIPTION, sub, i % 2 ? "p" : NULL);
    rc |= obspam_set_uid(e, sub, 6000 + i % 7);
    rc |= obspam_add(e, OBSPAM_DOMAIN, dom, sub);
    rc |= obspam_add(e, OBSPAM_MAILBOX, mb, NULL);
    rc |= obspam_set_limit(e, OBSPAM_MAILBOX, mb, OBSPAM_MAILBOX, i % 4);
    rc |= obspam_set_contact(e, sub, "ops@tmp.test");
    obspam_message m = tu_msg(0, mb, NULL, NULL, 1, -1, NULL, NULL, T0);
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    rc |= obspam_decide(e, &m, &v);
    if (v.action != (i % 4 ? OBSPAM_ACCEPT : OBSPAM_REFUSE))
      rc |= 1;
    if (i % 3 == 0)
      rc |= obspam_remove(e, OBSPAM_MAILBOX, mb);
    if (i % 3 == 1)
      rc |= obspam_remove(e, OBSPAM_DOMAIN, dom);
    rc |= obspam_remove(e, OBSPAM_SUBSCRIPTION, sub);
    /* Gone: now UNKNOWN. */
    m = tu_msg(OBSPAM_MSG_SCRIPT, NULL, NULL, NULL, 1, 6000 + i % 7, NULL, NULL,
               T0);
    rc |= obspam_decide(e, &m, &v);
    if (v.action != OBSPAM_UNKNOWN)
      rc |= 1;
    if (rc != 0)
      (*errors)++;
  }
  return NULL;
}

/* Changes limits of s while the deciders run, between 100 and 400 (and
   unlimited for the lower levels), and unrelated options and whitelist
   entries. */
static void *limiter(void *arg) {
  int64_t *errors = arg;
  pthread_barrier_wait(&barrier);
  for (int i = 0; !STOPPED() || i < 50; i++) {
    int rc = 0;
    rc |= obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "s", OBSPAM_SUBSCRIPTION,
                           i % 2 ? 100 : 400);
    rc |= obspam_set_limit(e, OBSPAM_DOMAIN, "d1.test", OBSPAM_DOMAIN,
                           i % 3 ? OBSPAM_UNLIMITED : 50);
    rc |= obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_MAILBOX,
                           i % 2 ? OBSPAM_UNLIMITED : 1000000);
    rc |= obspam_set_limit(e, OBSPAM_PLAN, "p", OBSPAM_DOMAIN, 1 + i);
    rc |= obspam_set_option(e, OBSPAM_OPT_ACTION, i % 2);
    rc |= obspam_set_option(e, OBSPAM_OPT_NOTIFY_IMMEDIATE, 0);
    rc |= obspam_set_option(e, OBSPAM_OPT_RETENTION_HOURS, 24 + i % 100);
    rc |= obspam_whitelist_add(e, "203.0.113.0/24");
    rc |= obspam_whitelist_remove(e, "203.0.113.0/24");
    rc |= obspam_set_scripts_allowed(e, OBSPAM_PLAN, "p", i % 2);
    int64_t lim;
    rc |= obspam_effective_limit(e, OBSPAM_SUBSCRIPTION, "s", &lim);
    if (lim != 100 && lim != 400)
      rc |= 1;
    obspam_stats st = OBSPAM_STATS_INIT;
    rc |= obspam_stats_get(e, OBSPAM_SUBSCRIPTION, "s", T0, &st);
    if (st.count > 400)
      rc |= 1;
    if (rc != 0)
      (*errors)++;
  }
  return NULL;
}

Test(threads, decide_while_changing) {
  build(400);
  OK(obspam_add(e, OBSPAM_PLAN, "p", NULL));
  enum { N_DEC = 6 };
  pthread_t th[N_DEC + 2];
  mix w[N_DEC];
  int64_t churn_errors = 0, limit_errors = 0;
  memset(w, 0, sizeof w);
  __atomic_store_n(&stop, 0, __ATOMIC_RELEASE);
  cr_assert_eq(pthread_barrier_init(&barrier, NULL, N_DEC + 2), 0);
  for (int i = 0; i < N_DEC; i++) {
    w[i].id = i;
    cr_assert_eq(pthread_create(&th[i], NULL, mix_decider, &w[i]), 0);
  }
  cr_assert_eq(pthread_create(&th[N_DEC], NULL, churner, &churn_errors), 0);
  cr_assert_eq(pthread_create(&th[N_DEC + 1], NULL, limiter, &limit_errors), 0);
  int64_t accepted = 0, refused = 0, script_accepted = 0;
  for (int i = 0; i < N_DEC; i++) {
    pthread_join(th[i], NULL);
    cr_assert_eq(w[i].errors, 0, "decider %d: %" PRId64 " errors", i,
                 w[i].errors);
    cr_assert_eq(w[i].other, 0, "decider %d: %" PRId64 " EXEMPT/UNKNOWN", i,
                 w[i].other);
    accepted += w[i].accepted;
    script_accepted += w[i].script_accepted;
    refused += w[i].refused;
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  pthread_join(th[N_DEC], NULL);
  pthread_join(th[N_DEC + 1], NULL);
  pthread_barrier_destroy(&barrier);
  cr_assert_eq(churn_errors, 0, "%" PRId64 " churn rounds failed",
               churn_errors);
  cr_assert_eq(limit_errors, 0, "%" PRId64 " limiter rounds failed",
               limit_errors);

  /* Every decision was at T0: the counters hold every accepted unit. */
  obspam_stats s = STATS(e, OBSPAM_SUBSCRIPTION, "s", T0);
  cr_assert_eq(s.count, accepted,
               "s counts %" PRId64 ", threads saw %" PRId64 " accepted",
               s.count, accepted);
  cr_assert_eq(s.refused, refused,
               "s refused %" PRId64 ", threads saw %" PRId64, s.refused,
               refused);
  cr_assert_leq(accepted, 400, "accepted %" PRId64 " > the largest limit",
                accepted);
  cr_assert_gt(accepted, 0);
  cr_assert_gt(refused, 0);
  /* The mailboxes hold the accepted logins; s has them plus the scripts. */
  int64_t mcount = 0;
  for (int i = 0; i < N_MAILBOXES; i++)
    mcount += STATS(e, OBSPAM_MAILBOX, mbox[i], T0).count;
  cr_assert_eq(mcount, accepted - script_accepted,
               "mailboxes count %" PRId64 ", threads saw %" PRId64, mcount,
               accepted - script_accepted);
  /* None of the churned objects is left. */
  for (int i = 0; i < 7; i++) {
    char sub[32];
    int64_t lim;
    snprintf(sub, sizeof sub, "tmp%d", i);
    RC(obspam_effective_limit(e, OBSPAM_SUBSCRIPTION, sub, &lim),
       OBSPAM_ENOTFOUND);
  }
  obspam_engine_free(e);
  e = NULL;
}
