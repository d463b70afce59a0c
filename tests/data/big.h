/* SPDX-License-Identifier: MIT */
/* The big tree and its three hours of traffic: test_snapshot.c's engines,
   and what state-old.c wrote the samples of the older snapshot formats
   from. Only calls that every version since 1.0 has are used, so that
   state-old.c builds against the commit that wrote each format. The
   includer defines T0, a multiple of 3600.

     plan p1
     subscription s1 (plan p1, uid 1001, contact ops@s1.example)
       domain d1.example: a@ (limit 3), b@
       domain d2.example: c@ (limit 1)
     subscription s2 (uid 1002, limit 10, scripts forbidden)
       domain d3.example: e@ (limit 2)

   Variants of the tree: without d2.example (and c@), with an extra mailbox
   new@d1.example. */
#ifndef OBSPAM_TESTS_DATA_BIG_H
#define OBSPAM_TESTS_DATA_BIG_H

#include "obspam.h"

#define BIG_WITHOUT_D2 1
#define BIG_WITH_NEW 2

/* The newest message of the traffic (two hours and a half after T0). */
#define BIG_NEWEST (T0 + 9000)

/* Fails the function with the code of a call that failed, and its line. */
#define BIG_TRY(call)                                                          \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != OBSPAM_OK) {                                                    \
      *line = __LINE__;                                                        \
      return rc_;                                                              \
    }                                                                          \
  } while (0)

/* Builds the variant of the big tree in the empty engine x: OBSPAM_OK, or
   the code of the first call that failed, whose line goes to *line. */
static int big_tree_build(obspam_engine *x, int variant, int *line) {
  int d2 = !(variant & BIG_WITHOUT_D2);

  BIG_TRY(obspam_add(x, OBSPAM_PLAN, "p1", NULL));
  BIG_TRY(obspam_add(x, OBSPAM_SUBSCRIPTION, "s1", "p1"));
  BIG_TRY(obspam_add(x, OBSPAM_SUBSCRIPTION, "s2", NULL));
  BIG_TRY(obspam_set_uid(x, "s1", 1001));
  BIG_TRY(obspam_set_uid(x, "s2", 1002));
  BIG_TRY(obspam_set_contact(x, "s1", "ops@s1.example"));
  BIG_TRY(obspam_set_scripts_allowed(x, OBSPAM_SUBSCRIPTION, "s2", 0));
  BIG_TRY(
      obspam_set_limit(x, OBSPAM_SUBSCRIPTION, "s2", OBSPAM_SUBSCRIPTION, 10));
  BIG_TRY(obspam_add(x, OBSPAM_DOMAIN, "d1.example", "s1"));
  if (d2)
    BIG_TRY(obspam_add(x, OBSPAM_DOMAIN, "d2.example", "s1"));
  BIG_TRY(obspam_add(x, OBSPAM_DOMAIN, "d3.example", "s2"));
  BIG_TRY(obspam_add(x, OBSPAM_MAILBOX, "a@d1.example", NULL));
  BIG_TRY(obspam_add(x, OBSPAM_MAILBOX, "b@d1.example", NULL));
  if (d2)
    BIG_TRY(obspam_add(x, OBSPAM_MAILBOX, "c@d2.example", NULL));
  BIG_TRY(obspam_add(x, OBSPAM_MAILBOX, "e@d3.example", NULL));
  if (variant & BIG_WITH_NEW)
    BIG_TRY(obspam_add(x, OBSPAM_MAILBOX, "new@d1.example", NULL));
  BIG_TRY(
      obspam_set_limit(x, OBSPAM_MAILBOX, "a@d1.example", OBSPAM_MAILBOX, 3));
  if (d2)
    BIG_TRY(
        obspam_set_limit(x, OBSPAM_MAILBOX, "c@d2.example", OBSPAM_MAILBOX, 1));
  BIG_TRY(
      obspam_set_limit(x, OBSPAM_MAILBOX, "e@d3.example", OBSPAM_MAILBOX, 2));
  return OBSPAM_OK;
}

/* One message of the traffic: a login's (script NULL: sent from a network
   client, sender and login alike) or a script's of uid, with the action
   it must get. */
typedef struct big_step {
  const char *login;
  int64_t uid;
  const char *hint, *script;
  uint32_t rcpt;
  int64_t t;
  int action;
} big_step;

/* Three hours of traffic. At the end, the notices of the first hour are
   closed and pending; those of the second (s2, d3, e) and the third (s1,
   d1, a) are periods still in progress. */
static const big_step big_traffic_steps[] = {
    /* The first hour. */
    {"a@d1.example", -1, NULL, NULL, 3, T0 + 60, OBSPAM_ACCEPT},
    {"a@d1.example", -1, NULL, NULL, 1, T0 + 120, OBSPAM_REFUSE},
    {"a@d1.example", -1, NULL, NULL, 1, T0 + 180, OBSPAM_REFUSE},
    {"b@d1.example", -1, NULL, NULL, 5, T0 + 200, OBSPAM_ACCEPT},
    {"c@d2.example", -1, NULL, NULL, 1, T0 + 300, OBSPAM_ACCEPT},
    {"c@d2.example", -1, NULL, NULL, 1, T0 + 400, OBSPAM_REFUSE},
    {NULL, 1001, "d2.example", "/var/www/S1/index.php", 2, T0 + 500,
     OBSPAM_ACCEPT},
    {NULL, 1002, NULL, "/home/s2/spam.pl", 1, T0 + 600, OBSPAM_REFUSE},
    /* The second. */
    {"a@d1.example", -1, NULL, NULL, 2, T0 + 3600 + 60, OBSPAM_ACCEPT},
    {"e@d3.example", -1, NULL, NULL, 2, T0 + 3600 + 100, OBSPAM_ACCEPT},
    {"e@d3.example", -1, NULL, NULL, 1, T0 + 3600 + 200, OBSPAM_REFUSE},
    /* The third. */
    {"a@d1.example", -1, NULL, NULL, 1, T0 + 7200 + 30, OBSPAM_ACCEPT},
    {"a@d1.example", -1, NULL, NULL, 3, T0 + 7200 + 90, OBSPAM_REFUSE},
    {"b@d1.example", -1, NULL, NULL, 4, T0 + 7200 + 1500, OBSPAM_ACCEPT},
    {"c@d2.example", -1, NULL, NULL, 1, BIG_NEWEST, OBSPAM_ACCEPT}};
#define BIG_STEPS (sizeof big_traffic_steps / sizeof big_traffic_steps[0])

/* The message of a step. */
static obspam_message big_message(const big_step *s) {
  obspam_message m = {.struct_size = sizeof(obspam_message),
                      .flags = s->login != NULL ? 0u : OBSPAM_MSG_SCRIPT,
                      .sasl_username = s->login,
                      .sender = s->login,
                      .client_address =
                          s->login != NULL ? "198.51.100.10" : NULL,
                      .recipients = s->rcpt,
                      .uid = s->uid,
                      .domain_hint = s->hint,
                      .script = s->script,
                      .time = s->t};

  return m;
}

#endif /* OBSPAM_TESTS_DATA_BIG_H */
