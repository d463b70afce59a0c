/* SPDX-License-Identifier: MIT */
/* What the programs that wrote the samples of older formats share
   (state-old.c, journal-format1.c): the fixed time, a check that stops the
   program on an error, and a decision whose action must be the one
   expected. They use only calls that every version since 1.0 has, so that
   they build against the commit that wrote each format. */
#ifndef OBSPAM_TESTS_DATA_WRITER_H
#define OBSPAM_TESTS_DATA_WRITER_H

#include <stdio.h>
#include <stdlib.h>

#include "obspam.h"

#define T0 ((int64_t)1800000000)

static obspam_engine *e;

static void ok(int rc, int line) {
  if (rc != OBSPAM_OK) {
    fprintf(stderr, "line %d: %s\n", line, obspam_engine_errmsg(e));
    exit(1);
  }
}
#define OK(x) ok((x), __LINE__)

/* Decides m and stops unless its action is the one expected. */
static void decided(const obspam_message *m, int action, int line) {
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  ok(obspam_decide(e, m, &v), line);
  if (v.action != action) {
    fprintf(stderr, "line %d: the message at %lld got action %d\n", line,
            (long long)m->time, v.action);
    exit(1);
  }
}

#endif /* OBSPAM_TESTS_DATA_WRITER_H */
