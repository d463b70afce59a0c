/* SPDX-License-Identifier: MIT */
/*
 * obspam_engine_errmsg_r() while other threads fail on the same engine.
 * Two threads fail again and again with messages of very different
 * lengths; readers copy the message meanwhile. Every copy must be one of
 * the two whole lines: a copy taken while a failure rewrites the buffer
 * would end in the middle of one line or mix the two (and ThreadSanitizer
 * would report the race).
 */
#include <pthread.h>

#include "testutil.h"

#define FAILURES 20000
#define READERS 2

static obspam_engine *e;
static pthread_barrier_t barrier;
static char long_name[300];
static char long_msg[512], short_msg[512];

typedef struct reader {
  long copies, torn;
  char torn_copy[512];
} reader;

static volatile int failing;

static void *fail_long(void *arg) {
  (void)arg;
  pthread_barrier_wait(&barrier);
  for (int i = 0; i < FAILURES; i++)
    obspam_remove(e, OBSPAM_DOMAIN, long_name);
  __atomic_fetch_sub(&failing, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void *fail_short(void *arg) {
  (void)arg;
  pthread_barrier_wait(&barrier);
  for (int i = 0; i < FAILURES; i++)
    obspam_remove(e, OBSPAM_DOMAIN, "b.test");
  __atomic_fetch_sub(&failing, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void *read_messages(void *arg) {
  reader *r = arg;
  char buf[512];

  pthread_barrier_wait(&barrier);
  while (__atomic_load_n(&failing, __ATOMIC_ACQUIRE) > 0) {
    if (obspam_engine_errmsg_r(e, buf, sizeof buf) != OBSPAM_OK) {
      r->torn++;
      continue;
    }
    r->copies++;
    if (strcmp(buf, long_msg) != 0 && strcmp(buf, short_msg) != 0) {
      if (r->torn++ == 0)
        snprintf(r->torn_copy, sizeof r->torn_copy, "%s", buf);
    }
  }
  return NULL;
}

Test(threads_errmsg, copies_are_whole_lines) {
  pthread_t t[2 + READERS];
  reader r[READERS];

  memset(long_name, 'a', sizeof long_name - 1 - 5);
  memcpy(long_name + sizeof long_name - 1 - 5, ".test", 6);
  snprintf(long_msg, sizeof long_msg, "remove: no domain '%s'", long_name);
  snprintf(short_msg, sizeof short_msg, "remove: no domain 'b.test'");
  e = tu_new();
  /* Each failure alone writes exactly the expected line. */
  RC(obspam_remove(e, OBSPAM_DOMAIN, long_name), OBSPAM_ENOTFOUND);
  cr_assert_str_eq(obspam_engine_errmsg(e), long_msg);
  RC(obspam_remove(e, OBSPAM_DOMAIN, "b.test"), OBSPAM_ENOTFOUND);
  cr_assert_str_eq(obspam_engine_errmsg(e), short_msg);

  memset(r, 0, sizeof r);
  failing = 2;
  cr_assert_eq(pthread_barrier_init(&barrier, NULL, 2 + READERS), 0);
  cr_assert_eq(pthread_create(&t[0], NULL, fail_long, NULL), 0);
  cr_assert_eq(pthread_create(&t[1], NULL, fail_short, NULL), 0);
  for (int i = 0; i < READERS; i++)
    cr_assert_eq(pthread_create(&t[2 + i], NULL, read_messages, &r[i]), 0);
  for (int i = 0; i < 2 + READERS; i++)
    pthread_join(t[i], NULL);
  pthread_barrier_destroy(&barrier);

  for (int i = 0; i < READERS; i++) {
    cr_expect_gt(r[i].copies, 0, "reader %d copied nothing", i);
    cr_expect_eq(r[i].torn, 0, "reader %d: %ld torn copies, the first \"%s\"",
                 i, r[i].torn, r[i].torn_copy);
  }
  obspam_engine_free(e);
}
