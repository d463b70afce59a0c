/* SPDX-License-Identifier: MIT */
/*
 * Thread stress for implicit mailboxes: threads that decide (one by one,
 * in batches, and checks) for logins of a hosted domain that no mailbox
 * line declares, against a small cap, while another thread reads their
 * status, declares and removes some and reloads the configuration. The
 * counters must add up exactly: every accepted message is on the domain,
 * and on its implicit mailbox unless it overflowed.
 */
#include "testthreads.h"

#define N_THREADS 6
#define PER_THREAD 3000
#define N_LOGINS 200
#define CAP 50

static obspam_engine *e;
static pthread_barrier_t barrier;
static char login[N_LOGINS][32];
static int stop;
static int64_t changer_bad; /* what the changing thread saw go wrong */

static const char CONF[] = "subscription s\n"
                           "domain d.test subscription=s\n"
                           "implicit-mailboxes 50\n";

static void *decider(void *arg) {
  tu_worker *w = arg;
  tu_batch b;

  pthread_barrier_wait(&barrier);
  for (int i = 0; i < PER_THREAD;) {
    const char *who = login[(w->id * 37 + i * 11) % N_LOGINS];
    obspam_message m = tu_msg(0, who, NULL, "192.0.2.1", 1, -1, NULL, NULL, T0);
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    if (i % 3 == 0) {
      /* A check between decisions changes nothing. */
      if (obspam_check(e, &m, &v) != OBSPAM_OK)
        w->errors++;
    }
    if (i % 5 == 0 && i + 10 <= PER_THREAD) {
      for (int k = 0; k < 10; k++)
        b.m[k] = tu_msg(0, login[(w->id * 37 + (i + k) * 11) % N_LOGINS], NULL,
                        "192.0.2.1", 1, -1, NULL, NULL, T0);
      tu_batch_ready(&b, 10);
      if (obspam_decide_batch(e, b.pm, b.pv, b.rc, 10) != OBSPAM_OK)
        w->errors++;
      w->decided += 10;
      i += 10;
      continue;
    }
    if (obspam_decide(e, &m, &v) != OBSPAM_OK || v.action != OBSPAM_ACCEPT)
      w->errors++;
    w->decided++;
    i++;
  }
  return NULL;
}

static void setup(void) {
  e = tu_new();
  OK(obspam_load_config_string(e, CONF));
  for (int i = 0; i < N_LOGINS; i++)
    snprintf(login[i], sizeof login[i], "u%d@d.test", i);
  stop = 0;
  changer_bad = 0;
}

static void teardown(void) { obspam_engine_free(e); }

static int64_t run_deciders(void *(*other)(void *)) {
  pthread_t t[N_THREADS + 1];
  tu_worker w[N_THREADS];
  int64_t total = 0;

  pthread_barrier_init(&barrier, NULL, N_THREADS + (other != NULL));
  tu_start_workers(t, w, N_THREADS, decider, e, &barrier);
  if (other != NULL)
    pthread_create(&t[N_THREADS], NULL, other, NULL);
  tu_join_workers(t, w, N_THREADS, "thread");
  for (int i = 0; i < N_THREADS; i++)
    total += w[i].decided;
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  if (other != NULL)
    pthread_join(t[N_THREADS], NULL);
  pthread_barrier_destroy(&barrier);
  return total;
}

/* Without changes: exactly CAP implicit mailboxes, and their counts and
   the overflow add up to every message. */
Test(threads_implicit, counters_add_up, .init = setup, .fini = teardown) {
  int64_t total = run_deciders(NULL), n = -1, overflow = -1, episodes = -1;
  int64_t sum = 0, existing = 0;

  OK(obspam_implicit_status(e, &n, &overflow, &episodes));
  cr_assert_eq(n, CAP);
  cr_assert_eq(episodes, 1);
  for (int i = 0; i < N_LOGINS; i++) {
    obspam_stats s = OBSPAM_STATS_INIT;
    int rc = obspam_stats_get(e, OBSPAM_MAILBOX, login[i], T0, &s);

    if (rc == OBSPAM_ENOTFOUND)
      continue;
    cr_assert_eq(rc, OBSPAM_OK);
    sum += s.count;
    existing++;
  }
  cr_assert_eq(existing, CAP);
  cr_assert_eq(sum + overflow, total, "%" PRId64 " + %" PRId64 " != %" PRId64,
               sum, overflow, total);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "d.test", T0, total, 0);
}

/* Status, declarations, removals and reloads meanwhile. */
static void *changer(void *arg) {
  (void)arg;
  pthread_barrier_wait(&barrier);
  for (int i = 0; !__atomic_load_n(&stop, __ATOMIC_RELAXED); i++) {
    int64_t n = 0;
    obspam_stats s = OBSPAM_STATS_INIT;
    const char *who = login[(i * 13) % N_LOGINS];

    if (obspam_implicit_status(e, &n, NULL, NULL) != OBSPAM_OK || n > CAP)
      changer_bad++;
    (void)obspam_stats_get(e, OBSPAM_MAILBOX, who, T0, &s);
    switch (i % 4) {
    case 0:
      (void)obspam_add(e, OBSPAM_MAILBOX, who, NULL);
      break;
    case 1:
      (void)obspam_remove(e, OBSPAM_MAILBOX, who);
      break;
    case 2:
      if (obspam_load_config_string(e, CONF) != OBSPAM_OK)
        changer_bad++;
      break;
    default:
      (void)obspam_remove(e, OBSPAM_MAILBOX, login[(i * 7) % N_LOGINS]);
    }
  }
  return NULL;
}

Test(threads_implicit, while_changing, .init = setup, .fini = teardown) {
  int64_t total = run_deciders(changer), n = -1;

  cr_assert_eq(changer_bad, 0);
  OK(obspam_implicit_status(e, &n, NULL, NULL));
  cr_assert_leq(n, CAP);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "d.test", T0, total, 0);
}
