/* SPDX-License-Identifier: MIT */
/* The options (OBSPAM_OPT_*): defaults and ranges. */
#ifndef OBSPAM_OPTIONS_H
#define OBSPAM_OPTIONS_H

#include <stdint.h>

#include "obspam.h"

#define OBSPAM__OPT_MAX OBSPAM_OPT_IMPLICIT_MAILBOXES

/* Checks an option value: NULL when valid, else what is wrong. */
const char *obspam__opt_check(int option, int64_t value);
/* The default of a known option (1 to OBSPAM__OPT_MAX). */
int64_t obspam__opt_default(int option);
/* Whether option is known; if so, its range in *min and *max. */
int obspam__opt_range(int option, int64_t *min, int64_t *max);

#endif
