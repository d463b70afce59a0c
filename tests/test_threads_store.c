/* SPDX-License-Identifier: MIT */
/*
 * obspam_set_store() while other threads save and load the state. One
 * thread switches the engine between two shared stores and memory again
 * and again, each switch freeing the shared store it leaves; two others
 * load and save a state file meanwhile. A load or save that reached the
 * store outside the engine's lock would use a store already freed
 * (AddressSanitizer and ThreadSanitizer report it); every call must
 * succeed, and the counters loaded must be the ones saved.
 *
 * No Redis server is needed: a shared store connects at its first
 * decision, and saving and loading never ask it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "testutil.h"

#define SWITCHES 3000
#define ROUNDS 400

static obspam_engine *e;
static pthread_barrier_t barrier;
static char dir[256], path[300], path2[300];
static volatile int switching;

typedef struct counts {
  int saves; /* for load_or_save: saves to path2, else loads path */
  long ok, failed;
  int first_rc;
  char first_msg[512];
} counts;

static void tally(counts *c, int rc) {
  if (rc == OBSPAM_OK) {
    c->ok++;
    return;
  }
  if (c->failed++ == 0) {
    c->first_rc = rc;
    snprintf(c->first_msg, sizeof c->first_msg, "%s", obspam_engine_errmsg(e));
  }
}

static void *switch_stores(void *arg) {
  counts *c = arg;
  static const char *const uris[] = {"redis://127.0.0.1:9/0",
                                     "redis://127.0.0.1:9/1", NULL};

  pthread_barrier_wait(&barrier);
  for (int i = 0; i < SWITCHES; i++)
    tally(c, obspam_set_store(e, uris[i % 3], NULL));
  __atomic_store_n(&switching, 0, __ATOMIC_RELEASE);
  return NULL;
}

/* Loads path, or saves to path2, until the switching is over. */
static void *load_or_save(void *arg) {
  counts *c = arg;

  pthread_barrier_wait(&barrier);
  for (int i = 0; i < ROUNDS || __atomic_load_n(&switching, __ATOMIC_ACQUIRE);
       i++)
    tally(c,
          c->saves ? obspam_state_save(e, path2) : obspam_state_load(e, path));
  return NULL;
}

static void expect_no_failure(const counts *c, const char *what) {
  cr_assert_eq(c->failed, 0, "%s failed %ld times, first with %d (%s): %s",
               what, c->failed, c->first_rc, obspam_strerror(c->first_rc),
               c->first_msg);
  cr_assert_gt(c->ok, 0, "%s never ran", what);
}

Test(threads_store, switch_while_saving_and_loading) {
  pthread_t t[3];
  counts sw = {0}, ld = {0}, sv = {.saves = 1};
  int rc;

  tu_mkdtemp(dir, sizeof dir, "obspam-store");
  snprintf(path, sizeof path, "%s/state", dir);
  snprintf(path2, sizeof path2, "%s/state2", dir);

  e = tu_new_conf("subscription s uid=10001 subscription=10\n"
                  "domain a.test subscription=s\n"
                  "mailbox u@a.test\n");
  rc = obspam_set_store(e, "redis://127.0.0.1:9/0", NULL);
  if (rc == OBSPAM_EINVAL)
    cr_skip_test("no Redis support: %s", obspam_engine_errmsg(e));
  OK(rc);
  OK(obspam_set_store(e, NULL, NULL));
  /* Three messages charged, saved: every load puts back exactly these. */
  SEND_LOGIN(e, "u@a.test", "", 1, T0, OBSPAM_ACCEPT);
  SEND_LOGIN(e, "u@a.test", "", 2, T0 + 1, OBSPAM_ACCEPT);
  OK(obspam_state_save(e, path));

  switching = 1;
  cr_assert_eq(pthread_barrier_init(&barrier, NULL, 3), 0);
  cr_assert_eq(pthread_create(&t[0], NULL, switch_stores, &sw), 0);
  cr_assert_eq(pthread_create(&t[1], NULL, load_or_save, &ld), 0);
  cr_assert_eq(pthread_create(&t[2], NULL, load_or_save, &sv), 0);
  for (int i = 0; i < 3; i++)
    pthread_join(t[i], NULL);
  pthread_barrier_destroy(&barrier);

  expect_no_failure(&sw, "obspam_set_store");
  expect_no_failure(&ld, "obspam_state_load");
  expect_no_failure(&sv, "obspam_state_save");
  /* SWITCHES is a multiple of 3: the last switch went back to memory. */
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "u@a.test", T0 + 2, 3, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s", T0 + 2, 3, 0);
  OK(obspam_state_load(e, path2));
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "u@a.test", T0 + 2, 3, 0);

  obspam_engine_free(e);
  unlink(path);
  unlink(path2);
  rmdir(dir);
}
