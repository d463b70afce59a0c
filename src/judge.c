/* SPDX-License-Identifier: MIT */
/* Step 5 of the decision, written once for every counter store: from the
   wait of each charged object, whether the message is refused, which
   object the verdict names and the retry hint. A store computes the
   waits from its own counters (store_mem.c in C, store_redis.c in the
   Lua it runs in Redis) and records the refusal; the naming is here. */
#include "store.h"

/* Whether wait a keeps a message out longer than wait b: -1 (never
   fits) is the longest of all. */
static int longer(int64_t a, int64_t b) {
  return b != -1 && (a == -1 || a > b);
}

void obspam__judge(obspam__charge *ch) {
  int i;

  ch->refuser = -1;
  ch->retry_after = 0;
  if (ch->forbid) {
    /* Scripts forbidden: the subscription, for ever. */
    ch->refuser = 0;
    ch->retry_after = -1;
    return;
  }
  /* Objects come from the top: on equal waits the first one found, the
     highest level, keeps the name. Only the hour window exists, so no
     tie between windows of one object can arise. */
  for (i = 0; i < ch->n; i++)
    if (ch->wait[i] != 0 &&
        (ch->refuser < 0 || longer(ch->wait[i], ch->retry_after))) {
      ch->refuser = i;
      ch->retry_after = ch->wait[i];
    }
}
