/* SPDX-License-Identifier: MIT */
/* The Prometheus endpoint: GET /metrics over HTTP/1.0 on a TCP address,
   served by a thread of its own. The names of the metrics are listed at
   the top of metrics.c. */
#ifndef OBSPAMD_METRICS_H
#define OBSPAMD_METRICS_H

#include "daemon.h"

/* spec: "inet:HOST:PORT" ("inet:[::1]:PORT" for IPv6; port 0 picks a free
   one, logged as "metrics listening on inet:127.0.0.1:PORT"). Returns 0,
   or -1 after logging why. One endpoint per process; start it after
   obspamd_service_start, stop it before obspamd_service_stop. */
int obspamd_metrics_start(obspamd_service *s, const char *spec);
void obspamd_metrics_stop(void);

/* Writes the text exposition of s's metrics to buf (NUL-terminated,
   truncated at size). Returns the length of the whole text, as snprintf
   does: a result >= size means it was truncated (buf may be NULL when size
   is 0). Used by the endpoint and by tests. */
size_t obspamd_metrics_format(obspamd_service *s, char *buf, size_t size);

#endif
