/* SPDX-License-Identifier: MIT */
/*
 * Helpers of the thread-stress suites (test_threads_*.c), on top of
 * testutil.h: the tallies of one deciding thread, and starting and joining
 * a row of them. Every helper is static inline so that a suite that does
 * not use one does not get an "unused function" warning.
 */
#ifndef OBSPAM_TESTTHREADS_H
#define OBSPAM_TESTTHREADS_H

#include <pthread.h>

#include "testutil.h"

/* One deciding thread: the engine it decides on and the barrier it waits
   at (NULL where the suite keeps them in globals), which one it is, and
   what it counted. A suite uses the fields it needs (calls: its batches;
   bad_verdict: the first verdict it found wrong; inline_done, dry_ok,
   other_thread, extra_calls: how obspam_decide_start answered). */
typedef struct tu_worker {
  obspam_engine *e;
  pthread_barrier_t *barrier;
  int id;
  int64_t accepted, refused, decided, bad, errors, calls;
  int64_t inline_done, dry_ok, other_thread, extra_calls;
  char bad_verdict[512];
} tu_worker;

/* Starts n threads running fn, the i-th on w[i], whose tallies are zeroed,
   whose id is i and whose engine and barrier are e and barrier. */
static inline void tu_start_workers(pthread_t *t, tu_worker *w, int n,
                                    void *(*fn)(void *), obspam_engine *e,
                                    pthread_barrier_t *barrier) {
  for (int i = 0; i < n; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].e = e;
    w[i].barrier = barrier;
    w[i].id = i;
    cr_assert_eq(pthread_create(&t[i], NULL, fn, &w[i]), 0,
                 "thread %d not started", i);
  }
}

/* Joins the n threads of tu_start_workers and fails the test when one of
   them counted an error or a wrong verdict; what names them in the
   message. Returns the sum of their accepted messages. */
static inline int64_t tu_join_workers(pthread_t *t, tu_worker *w, int n,
                                      const char *what) {
  int64_t accepted = 0;

  for (int i = 0; i < n; i++) {
    pthread_join(t[i], NULL);
    cr_assert_eq(w[i].errors, 0, "%s %d: %" PRId64 " errors", what, i,
                 w[i].errors);
    cr_assert_eq(w[i].bad, 0, "%s %d: %" PRId64 " wrong verdicts, first %s",
                 what, i, w[i].bad, w[i].bad_verdict);
    accepted += w[i].accepted;
  }
  return accepted;
}

#endif /* OBSPAM_TESTTHREADS_H */
