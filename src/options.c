/* SPDX-License-Identifier: MIT */
/* The options: each one's default and range, in one table that the C API
   and the configuration file both ask. */
#include "options.h"

/* An option that is off (0) or on (1), by default def. */
#define SWITCH(def)                                                            \
  { def, 0, 1 }

/* By OBSPAM_OPT_*: default, smallest and largest value. */
static const struct {
  int64_t def, min, max;
} opts[OBSPAM__OPT_MAX + 1] = {
    [OBSPAM_OPT_ENABLED] = SWITCH(1),
    [OBSPAM_OPT_COUNT_UNIT] = SWITCH(0),
    [OBSPAM_OPT_ACTION] = SWITCH(0),
    [OBSPAM_OPT_COUNT_UNAUTHENTICATED] = {2, 0, 2},
    [OBSPAM_OPT_COUNT_FORWARD_LOCAL] = SWITCH(0),
    [OBSPAM_OPT_COUNT_FORWARD_REMOTE] = SWITCH(1),
    [OBSPAM_OPT_COUNT_MAILING_LISTS] = SWITCH(0),
    [OBSPAM_OPT_RETENTION_HOURS] = {720, 1, 87600},
    [OBSPAM_OPT_NOTIFY_PERIOD] = {3600, 60, 2678400},
    [OBSPAM_OPT_NOTIFY_IMMEDIATE] = SWITCH(0),
    [OBSPAM_OPT_STORE_TIMEOUT_MS] = {200, 1, 60000},
    [OBSPAM_OPT_STORE_FALLBACK] = SWITCH(0),
    [OBSPAM_OPT_IMPLICIT_MAILBOXES] = {100000, 0, 100000000},
};

const char *obspam__opt_check(int option, int64_t value) {
  if (option < 1 || option > OBSPAM__OPT_MAX)
    return "unknown option";
  if (value < opts[option].min || value > opts[option].max)
    return "value out of range";
  return NULL;
}

int64_t obspam__opt_default(int option) { return opts[option].def; }

int obspam__opt_range(int option, int64_t *min, int64_t *max) {
  if (option < 1 || option > OBSPAM__OPT_MAX)
    return 0;
  *min = opts[option].min;
  *max = opts[option].max;
  return 1;
}
