/* SPDX-License-Identifier: MIT */
/*
 * Test helpers that need no test framework: the fixed times, the message
 * builder, and one line of text for a notice or a report row. The
 * Criterion suites get them through testutil.h; the fault-injection
 * program (tests/faults) and the Redis tests include this file alone.
 * Only the public API of obspam.h is used. Every helper is static inline
 * so that a file that does not use one does not get an "unused function"
 * warning.
 */
#ifndef OBSPAM_TESTBASE_H
#define OBSPAM_TESTBASE_H

#include <inttypes.h>
#include <stdio.h>

#include "obspam.h"

/* A fixed test time: a multiple of 3600 (and so of 60). */
#define T0 ((int64_t)1800000000)

/* Clock hours after T0. */
#define H0 (T0)
#define H1 (T0 + 3600)
#define H2 (T0 + 2 * 3600)
#define H3 (T0 + 3 * 3600)
#define H4 (T0 + 4 * 3600)

/* An object of the tree: its kind and name, for tables of objects that
   a test probes. */
typedef struct tu_object {
  int kind;
  const char *name;
} tu_object;

/* The next number of splitmix64 from the state *s (Steele, Lea and Flood):
   a fast generator of good quality whose sequence depends on the seed
   alone, so that a failing random test can be run again. */
static inline uint64_t tu_splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Builds a message; every field is given (NULL, -1 or 0 where it is
   unknown). */
static inline obspam_message tu_msg(uint32_t flags, const char *sasl,
                                    const char *sender, const char *client,
                                    uint32_t recipients, int64_t uid,
                                    const char *hint, const char *script,
                                    int64_t t) {
  obspam_message m = OBSPAM_MESSAGE_INIT;
  m.flags = flags;
  m.sasl_username = sasl;
  m.sender = sender;
  m.client_address = client;
  m.recipients = recipients;
  m.uid = uid;
  m.domain_hint = hint;
  m.script = script;
  m.time = t;
  return m;
}

/* Every field of a notice as one line ("-" for a NULL string), for logs
   that two runs compare. Returns what snprintf returns. */
static inline int tu_notice_line(char *buf, size_t size,
                                 const obspam_notice *n) {
  return snprintf(buf, size,
                  "notice %d %s sub=%s contact=%s limit=%" PRId64
                  " sent=%" PRId64 " refused=%" PRId64 " exceeded=%" PRId64
                  " %" PRId64 "..%" PRId64 " [%" PRId64 ",%" PRId64 ")\n",
                  n->kind, n->name, n->subscription ? n->subscription : "-",
                  n->contact ? n->contact : "-", n->limit, n->sent, n->refused,
                  n->exceeded, n->first_refused, n->last_refused,
                  n->period_start, n->period_end);
}

/* Every field of a report row as one line. Returns what snprintf
   returns. */
static inline int tu_row_line(char *buf, size_t size,
                              const obspam_report_row *r) {
  return snprintf(buf, size,
                  "report %d %s sent=%" PRId64 " refused=%" PRId64
                  " exceeded=%" PRId64 " %" PRId64 "..%" PRId64 "\n",
                  r->kind, r->name, r->sent, r->refused, r->exceeded,
                  r->first_refused, r->last_refused);
}

#endif /* OBSPAM_TESTBASE_H */
