/* SPDX-License-Identifier: MIT */
/* obspam_decide_start: decisions handed back through a callback, for
   adapters with an event loop. */
#include "engine.h"

int obspam_decide_start(obspam_engine *e, const obspam_message *const *msgs,
                        obspam_verdict *const *out, int *rc,
                        const uint32_t *how, size_t n, void (*done)(void *arg),
                        void *arg) {
  size_t i;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (done == NULL || (n > 0 && (msgs == NULL || out == NULL || rc == NULL)))
    return obspam__fail(e, OBSPAM_EINVAL, "decide_start: %s is NULL",
                        done == NULL   ? "the done function"
                        : msgs == NULL ? "the message array"
                        : out == NULL  ? "the verdict array"
                                       : "the return code array");
  /* Every store is decided in the caller's thread for now: a message at
     a time, so that checks and decisions keep their order. */
  for (i = 0; i < n; i++)
    rc[i] = how != NULL && (how[i] & OBSPAM_DECIDE_DRY)
                ? obspam_check(e, msgs[i], out[i])
                : obspam_decide(e, msgs[i], out[i]);
  done(arg);
  return OBSPAM_OK;
}
