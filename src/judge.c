/* SPDX-License-Identifier: MIT */
/* Step 5 of the decision, written once for every counter store: from the
   wait of each charged object, whether the message is refused, which
   object the verdict names and the retry hint. A store computes the
   waits from its own counters (store_mem.c in C, store_redis.c in the
   Lua it runs in Redis) and records the refusal; the naming is here. */
#include "store.h"

#include <string.h>

/* Whether wait a keeps a message out longer than wait b: -1 (never
   fits) is the longest of all. */
static int longer(int64_t a, int64_t b) {
  return b != -1 && (a == -1 || a > b);
}

void obspam__judge(obspam__charge *ch) {
  int i, w;

  ch->refuser = ch->window = -1;
  ch->retry_after = 0;
  memset(ch->over, 0, sizeof(ch->over));
  memset(ch->over_window, -1, sizeof(ch->over_window));
  if (ch->forbid) {
    /* Scripts forbidden: the subscription, for ever. */
    ch->refuser = 0;
    ch->retry_after = -1;
    ch->over[0] = 1;
    return;
  }
  /* Objects come from the top and each one's windows from the longest:
     on equal waits the first one found keeps the name, so the highest
     level, then the longer window. The recipients cap counts as the
     lowest object's shortest window. */
  for (i = 0; i < ch->n; i++) {
    for (w = OBSPAM__WINDOWS - 1; w >= 0; w--)
      if (ch->wait[i][w] != 0) {
        if (!ch->over[i] ||
            longer(ch->wait[i][w], ch->wait[i][ch->over_window[i]]))
          ch->over_window[i] = (int8_t)w;
        ch->over[i] = 1;
        if (ch->refuser < 0 || longer(ch->wait[i][w], ch->retry_after)) {
          ch->refuser = i;
          ch->window = w;
          ch->retry_after = ch->wait[i][w];
        }
      }
    if (i == ch->n - 1 && ch->over_cap) {
      if (!ch->over[i] || ch->wait[i][ch->over_window[i]] != -1)
        ch->over_window[i] = -1;
      ch->over[i] = 1;
      if (ch->refuser < 0 || longer(-1, ch->retry_after)) {
        ch->refuser = i;
        ch->window = -1;
        ch->retry_after = -1;
      }
    }
  }
}
