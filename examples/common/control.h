/* SPDX-License-Identifier: MIT */
/* The control socket: a Unix socket (mode 0600) served by a thread of its
   own, so that both daemons offer it the same way. obspamctl is its
   client. The protocol is documented in control.c. */
#ifndef OBSPAMD_CONTROL_H
#define OBSPAMD_CONTROL_H

#include "service.h"

/* spec: "unix:PATH". Removes a stale socket file, binds, chmods 0600 and
   starts the thread. The directory of PATH must exist. Returns 0, or -1
   after logging why. One control socket per process; start it after
   obspamd_service_start. */
int obspamd_control_start(obspamd_service *s, const char *spec);
/* Stops the thread and removes the socket file. Call it before
   obspamd_service_stop: the thread uses the engine. */
void obspamd_control_stop(void);

#endif
