/* SPDX-License-Identifier: MIT */
/* obspam-milter's libmilter callbacks: what they collect from each message
   and the decision at its end. main.c sets milter_settings up, registers
   milter_description() and runs smfi_main. */
#ifndef OBSPAM_MILTER_FILTER_H
#define OBSPAM_MILTER_FILTER_H

#include <libmilter/mfapi.h>

#include "service.h"

/* What becomes of a refused local submission (see obspam-milter(8)). */
enum milter_local_action {
  LOCAL_HOLD = 0,  /* smfi_quarantine: Postfix's hold queue */
  LOCAL_BOUNCE = 1 /* 550 5.7.1: Postfix bounces it to the sender */
};

#define MILTER_MAX_PATTERNS 16

typedef struct milter_settings {
  obspamd_service *svc;
  int local_action;
  const char *patterns[MILTER_MAX_PATTERNS]; /* checked --vhost-pattern */
  int npatterns;
  int verbose; /* log every decision (LOG_DEBUG) */
} milter_settings;

/* Read by the callbacks; set before smfi_main and not changed after. */
extern milter_settings milter_cfg;

/* The filter to hand to smfi_register. */
struct smfiDesc *milter_description(void);

/* Connections open now (from xxfi_connect to xxfi_close). */
long milter_open_connections(void);
/* Waits until no connection is open or timeout_ms passed; returns the
   number still open. smfi_main returns without waiting for the sessions
   it started, and they use the engine. */
long milter_wait_idle(int timeout_ms);

#endif
