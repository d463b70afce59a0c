/* SPDX-License-Identifier: MIT */
/*
 * obspam_decide_batch under threads. Batches look objects up ahead of
 * their decisions, reading counter pointers without the counter lock (see
 * SET_PTR in src/store_mem.c); these suites run under ThreadSanitizer in
 * tests/run.sh.
 *
 *   - 8 threads decide batches for the mailboxes of one subscription at
 *     the same instant: exactly the subscription's limit is accepted.
 *   - 2 threads decide batches while a third removes and re-adds
 *     mailboxes and reloads the configuration, which frees the counters
 *     the batches may be prefetching: every call succeeds, and every
 *     verdict is one a decision could give.
 */

#include "testthreads.h"

#define N_THREADS 8
#define PER_THREAD 1200
#define PER_CALL 13 /* not a multiple of the library's group */
#define N_MAILBOXES 64

static obspam_engine *e;
static pthread_barrier_t barrier;
static char mbox[N_MAILBOXES][32];

static const char conf[] = "subscription s uid=5000 subscription=500\n"
                           "domain d0.test subscription=s\n"
                           "domain d1.test subscription=s\n";

static void build(void) {
  e = tu_new_conf(conf);
  for (int i = 0; i < N_MAILBOXES; i++) {
    snprintf(mbox[i], sizeof mbox[i], "m%d@d%d.test", i, i % 2);
    OK(obspam_add(e, OBSPAM_MAILBOX, mbox[i], NULL));
  }
}

/* PER_THREAD single-recipient messages at T0, PER_CALL per batch. */
static void *decider(void *arg) {
  tu_worker *w = arg;
  tu_batch b;
  obspam_message *m = b.m;
  obspam_verdict *v = b.v;
  int *rc = b.rc;

  pthread_barrier_wait(&barrier);
  for (int i = 0; i < PER_THREAD; i += PER_CALL) {
    int n = PER_THREAD - i < PER_CALL ? PER_THREAD - i : PER_CALL;

    for (int k = 0; k < n; k++) {
      const char *login = mbox[(w->id * 7 + i + k) % N_MAILBOXES];

      m[k] = tu_msg(0, login, login, NULL, 1, -1, NULL, NULL, T0);
    }
    tu_batch_ready(&b, (size_t)n);
    if (obspam_decide_batch(e, b.pm, b.pv, rc, (size_t)n) != OBSPAM_OK) {
      w->errors++;
      continue;
    }
    for (int k = 0; k < n; k++) {
      int ok;

      if (v[k].action == OBSPAM_ACCEPT) {
        w->accepted++;
        ok = rc[k] == OBSPAM_OK && v[k].kind == OBSPAM_MAILBOX &&
             strcmp(v[k].object, m[k].sasl_username) == 0 &&
             v[k].limit == OBSPAM_UNLIMITED && v[k].retry_after == 0;
      } else if (v[k].action == OBSPAM_REFUSE) {
        w->refused++;
        ok = rc[k] == OBSPAM_OK && v[k].kind == OBSPAM_SUBSCRIPTION &&
             strcmp(v[k].object, "s") == 0 && v[k].limit == 500 &&
             v[k].count == 500 && v[k].retry_after == 3600;
      } else {
        ok = 0;
      }
      if (!ok && w->bad++ == 0)
        tu_fmt_verdict(w->bad_verdict, sizeof w->bad_verdict, &v[k]);
    }
  }
  return NULL;
}

Test(threads_batch, eight_threads_accept_exactly_the_subscription_limit) {
  tu_worker w[N_THREADS];
  pthread_t th[N_THREADS];
  int64_t accepted = 0, refused = 0;

  build();
  cr_assert_eq(pthread_barrier_init(&barrier, NULL, N_THREADS), 0);
  tu_start_workers(th, w, N_THREADS, decider, e, &barrier);
  accepted = tu_join_workers(th, w, N_THREADS, "thread");
  for (int i = 0; i < N_THREADS; i++)
    refused += w[i].refused;
  pthread_barrier_destroy(&barrier);
  cr_assert_eq(accepted, 500);
  cr_assert_eq(refused, N_THREADS * PER_THREAD - 500);
  obspam_stats s = STATS(e, OBSPAM_SUBSCRIPTION, "s", T0 + 59);
  cr_assert_eq(s.count, 500);
  cr_assert_eq(s.refused, N_THREADS * PER_THREAD - 500);
  obspam_engine_free(e);
}

/* ---- batches while the tree changes under them ---------------------------
 */

static volatile int stop;

static void *churn_decider(void *arg) {
  tu_worker *w = arg;
  int64_t t = T0;
  tu_batch b;
  obspam_message *m = b.m;
  obspam_verdict *v = b.v;

  pthread_barrier_wait(&barrier);
  for (int i = 0; !__atomic_load_n(&stop, __ATOMIC_RELAXED); i++) {
    for (int k = 0; k < PER_CALL; k++) {
      const char *login = mbox[(w->id * 11 + i * PER_CALL + k) % N_MAILBOXES];

      /* The minutes move on, so rings are advanced, swept and freed. */
      m[k] = tu_msg(0, login, login, NULL, 1, -1, NULL, NULL, t);
      t += 7;
    }
    tu_batch_ready(&b, PER_CALL);
    if (obspam_decide_batch(e, b.pm, b.pv, b.rc, PER_CALL) != OBSPAM_OK) {
      w->errors++;
      continue;
    }
    __atomic_add_fetch(&w->calls, 1, __ATOMIC_RELAXED);
    for (int k = 0; k < PER_CALL; k++) {
      /* A removed mailbox is charged as its domain until it is back; a
         present one is accepted as itself. Either may be refused by the
         subscription. */
      const char *dom = strchr(m[k].sasl_username, '@') + 1;
      int ok =
          (v[k].action == OBSPAM_ACCEPT && v[k].kind == OBSPAM_MAILBOX &&
           strcmp(v[k].object, m[k].sasl_username) == 0) ||
          (v[k].action == OBSPAM_ACCEPT && v[k].kind == OBSPAM_DOMAIN &&
           strcmp(v[k].object, dom) == 0) ||
          (v[k].action == OBSPAM_REFUSE && v[k].kind == OBSPAM_SUBSCRIPTION &&
           strcmp(v[k].object, "s") == 0 && v[k].limit == 500);

      if (!ok && w->bad++ == 0)
        tu_fmt_verdict(w->bad_verdict, sizeof w->bad_verdict, &v[k]);
    }
  }
  return NULL;
}

/* Called while either decider has made fewer than 20 batches. */
static int deciders_behind(tu_worker *w) {
  return __atomic_load_n(&w[0].calls, __ATOMIC_RELAXED) < 20 ||
         __atomic_load_n(&w[1].calls, __ATOMIC_RELAXED) < 20;
}

/* At least 200 rounds, and on until both deciders made 20 batches (a
   decider that is never scheduled fails the test when the cap is hit). */
static void *churner(void *arg) {
  tu_worker *w = arg;

  pthread_barrier_wait(&barrier);
  for (int round = 0; round < 200 || (deciders_behind(w) && round < 1000000);
       round++) {
    for (int i = round % 4; i < N_MAILBOXES; i += 4)
      OK(obspam_remove(e, OBSPAM_MAILBOX, mbox[i]));
    for (int i = round % 4; i < N_MAILBOXES; i += 4)
      OK(obspam_add(e, OBSPAM_MAILBOX, mbox[i], NULL));
    if (round % 10 == 9) {
      /* A reload without the mailboxes, then they come back. */
      OK(obspam_load_config_string(e, conf));
      for (int i = 0; i < N_MAILBOXES; i++)
        OK(obspam_add(e, OBSPAM_MAILBOX, mbox[i], NULL));
    }
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  return NULL;
}

Test(threads_batch, batches_while_mailboxes_come_and_go) {
  tu_worker w[2];
  pthread_t th[3];

  build();
  stop = 0;
  cr_assert_eq(pthread_barrier_init(&barrier, NULL, 3), 0);
  tu_start_workers(th, w, 2, churn_decider, e, &barrier);
  cr_assert_eq(pthread_create(&th[2], NULL, churner, w), 0);
  tu_join_workers(th, w, 2, "thread");
  pthread_join(th[2], NULL);
  pthread_barrier_destroy(&barrier);
  for (int i = 0; i < 2; i++)
    cr_assert_geq(w[i].calls, 20, "thread %d made %" PRId64 " calls", i,
                  w[i].calls);
  obspam_engine_free(e);
}
