/* SPDX-License-Identifier: MIT */
/*
 * obspam_engine_errmsg_r() while other threads fail on the same engine.
 * Two threads fail again and again with messages of very different
 * lengths; readers copy the message meanwhile. Every copy must be one of
 * the two whole lines (or the line of the failure before the threads
 * started): a copy taken while a failure rewrites the buffer would end in
 * the middle of one line or mix the two (and ThreadSanitizer would report
 * the race).
 *
 * How many copies a reader takes while the failing threads run is up to
 * the scheduler: on a busy machine a reader can miss the CPU for all the
 * time the failing threads need for a fixed number of failures, and then
 * copy nothing, or only the line of the one thread still failing. So the
 * failing threads make FAILURES failures each and go on until every
 * reader has copied each of their two lines COPIES times: every reader
 * has then seen the buffer change between the two lengths while it
 * copied, whatever the timing.
 */
#include <pthread.h>

#include "testutil.h"

#define FAILURES 20000 /* per failing thread, at least */
#define READERS 2
#define COPIES 1000 /* per reader of each failing thread's line, at least */

enum { LONG_LINE, SHORT_LINE, LINES };

static obspam_engine *e;
static pthread_barrier_t barrier;
static char long_name[300];
static char long_msg[512], short_msg[512], start_msg[512];

/* One reader's tallies. The failing threads read copies while the reader
   counts, so it is only touched atomically until the threads are joined. */
typedef struct reader {
  long copies[LINES], torn, errors;
  int error;
  char torn_copy[512];
} reader;

static reader r[READERS];
static int failing;

/* Whether every reader has copied each failing thread's line COPIES
   times. */
static int copied_enough(void) {
  for (int i = 0; i < READERS; i++)
    for (int line = 0; line < LINES; line++)
      if (__atomic_load_n(&r[i].copies[line], __ATOMIC_RELAXED) < COPIES)
        return 0;
  return 1;
}

/* Fails to remove the domain named arg FAILURES times, and on until the
   readers have copied enough: neither failing thread stops while a reader
   still needs the line of the other. */
static void *fail(void *arg) {
  const char *name = arg;

  pthread_barrier_wait(&barrier);
  for (long i = 0; i < FAILURES || !copied_enough(); i++)
    obspam_remove(e, OBSPAM_DOMAIN, name);
  __atomic_fetch_sub(&failing, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void *read_messages(void *arg) {
  reader *rd = arg;
  char buf[512];
  int rc;

  pthread_barrier_wait(&barrier);
  while (__atomic_load_n(&failing, __ATOMIC_ACQUIRE) > 0) {
    rc = obspam_engine_errmsg_r(e, buf, sizeof buf);
    if (rc != OBSPAM_OK) {
      if (rd->errors++ == 0)
        rd->error = rc;
    } else if (strcmp(buf, long_msg) == 0) {
      __atomic_fetch_add(&rd->copies[LONG_LINE], 1, __ATOMIC_RELAXED);
    } else if (strcmp(buf, short_msg) == 0) {
      __atomic_fetch_add(&rd->copies[SHORT_LINE], 1, __ATOMIC_RELAXED);
    } else if (strcmp(buf, start_msg) != 0) {
      if (rd->torn++ == 0)
        snprintf(rd->torn_copy, sizeof rd->torn_copy, "%s", buf);
    }
  }
  return NULL;
}

Test(threads_errmsg, copies_are_whole_lines) {
  pthread_t t[2 + READERS];

  memset(long_name, 'a', sizeof long_name - 1 - 5);
  memcpy(long_name + sizeof long_name - 1 - 5, ".test", 6);
  snprintf(long_msg, sizeof long_msg, "remove: no domain '%s'", long_name);
  snprintf(short_msg, sizeof short_msg, "remove: no domain 'b.test'");
  snprintf(start_msg, sizeof start_msg, "remove: no domain 'start.test'");
  e = tu_new();
  /* Each failure alone writes exactly the expected line. */
  RC(obspam_remove(e, OBSPAM_DOMAIN, long_name), OBSPAM_ENOTFOUND);
  cr_assert_str_eq(obspam_engine_errmsg(e), long_msg);
  RC(obspam_remove(e, OBSPAM_DOMAIN, "b.test"), OBSPAM_ENOTFOUND);
  cr_assert_str_eq(obspam_engine_errmsg(e), short_msg);
  /* A third line before the threads start, so that a copy of one of the
     two lines is sure to have been written by a failing thread. */
  RC(obspam_remove(e, OBSPAM_DOMAIN, "start.test"), OBSPAM_ENOTFOUND);
  cr_assert_str_eq(obspam_engine_errmsg(e), start_msg);

  memset(r, 0, sizeof r);
  failing = 2;
  cr_assert_eq(pthread_barrier_init(&barrier, NULL, 2 + READERS), 0);
  cr_assert_eq(pthread_create(&t[0], NULL, fail, long_name), 0);
  cr_assert_eq(pthread_create(&t[1], NULL, fail, "b.test"), 0);
  for (int i = 0; i < READERS; i++)
    cr_assert_eq(pthread_create(&t[2 + i], NULL, read_messages, &r[i]), 0);
  for (int i = 0; i < 2 + READERS; i++)
    pthread_join(t[i], NULL);
  pthread_barrier_destroy(&barrier);

  for (int i = 0; i < READERS; i++) {
    cr_expect_eq(r[i].errors, 0, "reader %d: %ld copies returned %d (%s)", i,
                 r[i].errors, r[i].error, obspam_strerror(r[i].error));
    cr_expect_eq(r[i].torn, 0, "reader %d: %ld torn copies, the first \"%s\"",
                 i, r[i].torn, r[i].torn_copy);
    /* The handshake above: a reader that copied fewer would have kept the
       failing threads going. */
    cr_expect_geq(r[i].copies[LONG_LINE], COPIES,
                  "reader %d: %ld copies of the long line", i,
                  r[i].copies[LONG_LINE]);
    cr_expect_geq(r[i].copies[SHORT_LINE], COPIES,
                  "reader %d: %ld copies of the short line", i,
                  r[i].copies[SHORT_LINE]);
  }
  /* The failing threads wrote the last line. */
  cr_expect(strcmp(obspam_engine_errmsg(e), long_msg) == 0 ||
                strcmp(obspam_engine_errmsg(e), short_msg) == 0,
            "the last line is \"%s\"", obspam_engine_errmsg(e));
  obspam_engine_free(e);
}
