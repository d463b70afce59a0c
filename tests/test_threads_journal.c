/* SPDX-License-Identifier: MIT */
/* The journal against saves and flushes from other threads: whatever the
   interleaving, the snapshot on disk and the journal beside it hold every
   decision exactly once. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define THREADS 4
#define PER_THREAD 20000

static const char config[] =
    "default mailbox=40 domain=unlimited subscription=300\n"
    "subscription acme\n"
    "domain example.com subscription=acme\n"
    "mailbox m0@example.com\n"
    "mailbox m1@example.com\n"
    "mailbox m2@example.com limit=unlimited\n"
    "subscription shop\n"
    "domain shop.example subscription=shop\n";

static const char *const logins[] = {"m0@example.com", "m1@example.com",
                                     "m2@example.com", "x@shop.example",
                                     "y@shop.example"};

static obspam_engine *e;
static char dir[256], state[300];
static int done;

/* An engine on conf with a journal beside a state file in a new
   temporary directory (dir, state). */
static obspam_engine *journaled(const char *conf) {
  obspam_engine *j;

  tu_mkdtemp(dir, sizeof(dir), "obspam-tj");
  snprintf(state, sizeof(state), "%s/state", dir);
  j = tu_new_conf(conf);
  OK(obspam_journal_open(j, state, 0, NULL, NULL));
  return j;
}

/* An engine on conf that loads what e saved and journaled. */
static obspam_engine *reopened(const char *conf) {
  obspam_engine *j = tu_new_conf(conf);

  OK(obspam_state_load(j, state));
  OK(obspam_journal_open(j, state, 0, NULL, NULL));
  return j;
}

/* Frees e and back and removes the temporary directory. */
static void finish(obspam_engine *back) {
  obspam_engine_free(back);
  obspam_engine_free(e);
  tu_rmtree(dir);
}

static void *decider(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg;
  int i;

  for (i = 0; i < PER_THREAD; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    m.sasl_username = logins[rand_r(&seed) % 5];
    m.recipients = 1 + rand_r(&seed) % 4;
    m.flags = rand_r(&seed) % 8 == 0 ? OBSPAM_MSG_PROBE : 0;
    m.time = T0 + i / 10;
    cr_assert_eq(obspam_decide(e, &m, &v), OBSPAM_OK);
  }
  return NULL;
}

/* Saves until the deciders are done, each answering arg's code. */
static void *saver(void *arg) {
  int want = (int)(intptr_t)arg;

  while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
    cr_assert_eq(obspam_state_save(e, state), want, "%s",
                 obspam_engine_errmsg(e));
    cr_assert_eq(obspam_journal_flush(e), OBSPAM_OK);
  }
  return NULL;
}

static void *flusher(void *arg) {
  (void)arg;
  while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE))
    cr_assert_eq(obspam_journal_flush(e), OBSPAM_OK);
  return NULL;
}

/* Decisions from THREADS deciders while saver saves, each save answering
   save_rc, and a flusher flushes, until the deciders are done. */
static void race(int save_rc) {
  pthread_t t[THREADS + 2];
  int i;

  for (i = 0; i < THREADS; i++)
    cr_assert_eq(
        pthread_create(&t[i], NULL, decider, (void *)(uintptr_t)(i * 7919 + 1)),
        0);
  cr_assert_eq(
      pthread_create(&t[THREADS], NULL, saver, (void *)(intptr_t)save_rc), 0);
  cr_assert_eq(pthread_create(&t[THREADS + 1], NULL, flusher, NULL), 0);
  for (i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
  pthread_join(t[THREADS], NULL);
  pthread_join(t[THREADS + 1], NULL);
  OK(obspam_journal_flush(e));
}

/* back holds e's counts. */
static void same_counts(obspam_engine *back) {
  int i, k, kinds[] = {OBSPAM_MAILBOX, OBSPAM_DOMAIN, OBSPAM_SUBSCRIPTION};
  const char *names[][5] = {{"m0@example.com", "m1@example.com",
                             "m2@example.com", "x@shop.example",
                             "y@shop.example"},
                            {"example.com", "shop.example", NULL, NULL, NULL},
                            {"acme", "shop", NULL, NULL, NULL}};

  for (k = 0; k < 3; k++)
    for (i = 0; i < 5 && names[k][i] != NULL; i++) {
      obspam_stats a = OBSPAM_STATS_INIT, b = OBSPAM_STATS_INIT;
      int64_t now = T0 + PER_THREAD / 10;

      OK(obspam_stats_get(e, kinds[k], names[k][i], now, &a));
      OK(obspam_stats_get(back, kinds[k], names[k][i], now, &b));
      cr_assert_eq(a.count, b.count, "%s: count %lld, %lld", names[k][i],
                   (long long)a.count, (long long)b.count);
      cr_assert_eq(a.refused, b.refused, "%s: refused", names[k][i]);
      cr_assert_eq(a.exceeded, b.exceeded, "%s: exceeded", names[k][i]);
      cr_assert_eq(a.refused_total, b.refused_total, "%s", names[k][i]);
      cr_assert_eq(a.count_day, b.count_day, "%s", names[k][i]);
    }
}

Test(threads_journal, saves_and_flushes_race_decisions) {
  obspam_engine *back;

  e = journaled(config);
  race(OBSPAM_OK);
  back = reopened(config);
  same_counts(back);
  finish(back);
}

/* Saves that fail after their cut (the state path is a directory: the
   snapshot is never renamed into place) while decisions go on. The
   records made between a cut and the failure go back after the
   journal's, with the definitions of the names they give (journal
   format 3), and those after them define the names again: a restart
   replays every decision once. */
Test(threads_journal, failed_saves_race_decisions) {
  obspam_engine *back;
  char inside[400];
  FILE *f;

  e = journaled(config);
  cr_assert_eq(mkdir(state, 0700), 0);
  snprintf(inside, sizeof(inside), "%s/file", state);
  f = fopen(inside, "w");
  cr_assert_not_null(f);
  fclose(f);
  race(OBSPAM_EIO);
  back = tu_new_conf(config);
  OK(obspam_journal_open(back, state, 0, NULL, NULL));
  same_counts(back);
  finish(back);
}

/* Saves of many objects, in many slices (store_mem_snapshot.c), while
   decisions make new objects, move them to new hours and minutes and
   free the counters of idle ones: the snapshot and the journal after it
   still hold every decision exactly once. The deciders go on until the
   last save is written, so that it overlaps them. */
#define MANY 10000
#define SAVES 12

static const char many_config[] = "default mailbox=25 domain=unlimited "
                                  "subscription=unlimited\n"
                                  "implicit-mailboxes 100000\n"
                                  "subscription acme\n"
                                  "domain example.com subscription=acme\n";
static int stop_deciders;
static int64_t decided; /* by both deciders */

static void many_login(char *buf, size_t size, unsigned i) {
  snprintf(buf, size, "u%u@example.com", i);
}

static void *many_decider(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg;
  char login[64];
  int64_t i;

  for (i = 0; !__atomic_load_n(&stop_deciders, __ATOMIC_ACQUIRE); i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    /* A login leaves the drawn range after a while: its ring empties and
       is freed while the saves run, and new logins come in. */
    many_login(login, sizeof(login), (unsigned)(i / 64) + rand_r(&seed) % MANY);
    m.sasl_username = login;
    m.recipients = 1 + rand_r(&seed) % 3;
    m.time = T0 + i / 4;
    cr_assert_eq(obspam_decide(e, &m, &v), OBSPAM_OK);
    __atomic_add_fetch(&decided, 1, __ATOMIC_RELAXED);
  }
  return (void *)(intptr_t)i;
}

static void *many_saver(void *arg) {
  int i;

  (void)arg;
  /* Every login of the range has counters first. */
  while (__atomic_load_n(&decided, __ATOMIC_RELAXED) < 4 * MANY)
    sched_yield();
  for (i = 0; i < SAVES; i++)
    cr_assert_eq(obspam_state_save(e, state), OBSPAM_OK, "%s",
                 obspam_engine_errmsg(e));
  return NULL;
}

Test(threads_journal, sliced_saves_of_many_objects) {
  pthread_t t[3];
  obspam_engine *back;
  char login[64];
  int64_t now, total = 0, n0, n1;
  void *r0, *r1;
  unsigned i;

  e = journaled(many_config);
  cr_assert_eq(pthread_create(&t[0], NULL, many_decider, (void *)1u), 0);
  cr_assert_eq(pthread_create(&t[1], NULL, many_decider, (void *)7u), 0);
  cr_assert_eq(pthread_create(&t[2], NULL, many_saver, NULL), 0);
  pthread_join(t[2], NULL);
  __atomic_store_n(&stop_deciders, 1, __ATOMIC_RELEASE);
  pthread_join(t[0], &r0);
  pthread_join(t[1], &r1);
  OK(obspam_journal_flush(e));
  n0 = (int64_t)(intptr_t)r0;
  n1 = (int64_t)(intptr_t)r1;
  now = T0 + (n0 > n1 ? n0 : n1) / 4;

  back = reopened(many_config);
  for (i = 0; i < MANY + (unsigned)((n0 > n1 ? n0 : n1) / 64); i++) {
    obspam_stats a = OBSPAM_STATS_INIT, b = OBSPAM_STATS_INIT;
    int ra, rb;

    many_login(login, sizeof(login), i);
    ra = obspam_stats_get(e, OBSPAM_MAILBOX, login, now, &a);
    rb = obspam_stats_get(back, OBSPAM_MAILBOX, login, now, &b);
    cr_assert_eq(ra, rb, "%s: %d, %d", login, ra, rb);
    if (ra != OBSPAM_OK)
      continue;
    cr_assert_eq(a.count, b.count, "%s: count %lld, %lld", login,
                 (long long)a.count, (long long)b.count);
    cr_assert_eq(a.count_minute, b.count_minute, "%s: minute", login);
    cr_assert_eq(a.count_day, b.count_day, "%s: day", login);
    cr_assert_eq(a.refused, b.refused, "%s: refused", login);
    cr_assert_eq(a.exceeded, b.exceeded, "%s: exceeded", login);
    cr_assert_eq(a.refused_total, b.refused_total, "%s", login);
    cr_assert_eq(a.exceeded_total, b.exceeded_total, "%s", login);
    total += a.count_day;
  }
  {
    obspam_stats a = OBSPAM_STATS_INIT, b = OBSPAM_STATS_INIT;

    OK(obspam_stats_get(e, OBSPAM_DOMAIN, "example.com", now, &a));
    OK(obspam_stats_get(back, OBSPAM_DOMAIN, "example.com", now, &b));
    cr_assert_eq(a.count_day, b.count_day, "domain: day %lld, %lld",
                 (long long)a.count_day, (long long)b.count_day);
    cr_assert_eq(a.refused_total, b.refused_total, "domain: refused");
    cr_assert(a.count_day > 0 && total > 0);
  }
  finish(back);
}
