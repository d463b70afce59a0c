/* SPDX-License-Identifier: MIT */
/* Snapshots when the disk says no: the helper that tests/faults/save_errors.sh
   runs in a file system it has made full, read-only or unwritable.

   usage: save_errors write PATH      saves a small engine's state: must work
          save_errors fail PATH       saves a large engine's state: must give
                                      OBSPAM_EIO, with the system's reason in
                                      the message
          save_errors load PATH       loads PATH into a fresh engine: must
                                      give back the small engine's counters

   Exits 0 when the expectation holds, 1 otherwise, and says why. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obspam.h"

#define T0 1700000000

static int fail(const char *what, int rc, obspam_engine *e) {
  fprintf(stderr, "save_errors: %s: %d (%s): %s\n", what, rc,
          obspam_strerror(rc), e ? obspam_engine_errmsg(e) : "");
  return 1;
}

/* A small engine: one mailbox that sent 7 messages. */
static obspam_engine *small(void) {
  obspam_engine *e;
  int i;

  if (obspam_engine_new(&e) != OBSPAM_OK ||
      obspam_load_config_string(e, "subscription acme\n"
                                   "domain acme.example subscription=acme\n"
                                   "mailbox info@acme.example\n") != OBSPAM_OK)
    exit(fail("setting up", -1, NULL));
  for (i = 0; i < 7; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    m.sasl_username = "info@acme.example";
    m.time = T0 + i;
    if (obspam_decide(e, &m, &v) != OBSPAM_OK)
      exit(fail("decide", -1, e));
  }
  return e;
}

/* A large engine: 3,000 mailboxes with state, a snapshot of several
   hundred kilobytes. */
static obspam_engine *large(void) {
  obspam_engine *e;
  size_t len = 0, cap = 3000 * 48 + 256;
  char *conf = malloc(cap);
  int i;

  if (conf == NULL || obspam_engine_new(&e) != OBSPAM_OK)
    exit(fail("setting up", -1, NULL));
  len += (size_t)snprintf(conf + len, cap - len,
                          "subscription big\n"
                          "domain big.example subscription=big\n");
  for (i = 0; i < 3000; i++)
    len += (size_t)snprintf(conf + len, cap - len,
                            "mailbox user%d@big.example\n", i);
  if (obspam_load_config_string(e, conf) != OBSPAM_OK)
    exit(fail("loading the large configuration", -1, e));
  free(conf);
  for (i = 0; i < 3000; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    char login[64];

    snprintf(login, sizeof(login), "user%d@big.example", i);
    m.sasl_username = login;
    m.time = T0 + i;
    if (obspam_decide(e, &m, &v) != OBSPAM_OK)
      exit(fail("decide", -1, e));
  }
  return e;
}

int main(int argc, char **argv) {
  obspam_engine *e;
  int rc;

  if (argc != 3) {
    fprintf(stderr, "usage: save_errors write|fail|load PATH\n");
    return 2;
  }
  if (strcmp(argv[1], "write") == 0) {
    e = small();
    rc = obspam_state_save(e, argv[2]);
    if (rc != OBSPAM_OK)
      return fail("saving the small state", rc, e);
    printf("saved %s\n", argv[2]);
  } else if (strcmp(argv[1], "fail") == 0) {
    e = large();
    rc = obspam_state_save(e, argv[2]);
    if (rc != OBSPAM_EIO)
      return fail("saving the large state: expected OBSPAM_EIO", rc, e);
    printf("OBSPAM_EIO: %s\n", obspam_engine_errmsg(e));
  } else if (strcmp(argv[1], "load") == 0) {
    obspam_stats st = OBSPAM_STATS_INIT;

    if (obspam_engine_new(&e) != OBSPAM_OK ||
        obspam_load_config_string(e,
                                  "subscription acme\n"
                                  "domain acme.example subscription=acme\n"
                                  "mailbox info@acme.example\n") != OBSPAM_OK)
      return fail("setting up", -1, NULL);
    rc = obspam_state_load(e, argv[2]);
    if (rc != OBSPAM_OK)
      return fail("loading the previous state", rc, e);
    rc = obspam_stats_get(e, OBSPAM_MAILBOX, "info@acme.example", T0 + 60, &st);
    if (rc != OBSPAM_OK || st.count != 7)
      return fail("the previous state's count (expected 7)",
                  rc != OBSPAM_OK ? rc : (int)st.count, e);
    printf("loaded %s: count 7\n", argv[2]);
  } else {
    fprintf(stderr, "save_errors: unknown mode '%s'\n", argv[1]);
    return 2;
  }
  obspam_engine_free(e);
  return 0;
}
