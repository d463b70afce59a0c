/* SPDX-License-Identifier: MIT */
/* The daemons' metrics: counters any thread updates, and the Prometheus
   endpoint that serves them (GET /metrics over HTTP/1.0 on a TCP address,
   a thread of its own). The names of the metrics are listed at
   the top of metrics.c. */
#ifndef OBSPAMD_METRICS_H
#define OBSPAMD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "obspam.h"
#include "refusal.h"

/* Upper bounds of the request latency histogram, in microseconds. */
#define OBSPAMD_LATENCY_BUCKETS 12
extern const double obspamd_latency_bounds_us[OBSPAMD_LATENCY_BUCKETS];

/* Upper bounds of the event loop's histograms, in microseconds: from
   0.1 ms, where a round that works for microseconds falls, to 1 s. */
#define OBSPAMD_LOOP_BUCKETS 13
extern const double obspamd_loop_bounds_us[OBSPAMD_LOOP_BUCKETS];

/* Times measured by an event loop (obspam-policyd's): a histogram, its
   sum and the longest since the start. One thread writes them (the
   loop's), any thread reads them. */
typedef struct obspamd_timing {
  uint64_t bucket[OBSPAMD_LOOP_BUCKETS + 1]; /* last one: +Inf */
  uint64_t sum_us;
  uint64_t max_us;
} obspamd_timing;

/* Counters updated with __atomic builtins (relaxed) from any thread. */
typedef struct obspamd_metrics {
  uint64_t decisions[4];             /* by OBSPAM_ACCEPT .. OBSPAM_UNKNOWN */
  uint64_t refusals[6];              /* by kind of the refusing object */
  uint64_t reasons[OBSPAMD_REASONS]; /* by window, cap or scripts */
  int64_t connections_open;          /* policy or SMTP connections now */
  uint64_t connections_total;
  uint64_t requests_bad; /* malformed or over-long requests */
  uint64_t latency[OBSPAMD_LATENCY_BUCKETS + 1]; /* last one: +Inf */
  uint64_t latency_count;
  uint64_t latency_sum_us;
  uint64_t reloads_ok, reloads_failed;
  uint64_t saves_ok, saves_failed;
  uint64_t notices;
  int64_t last_save; /* Unix time of the last good save, 0 = none */
  /* Notification mails: handed to the command and accepted by it, failed
     (the command failed or timed out), dropped (queue full, or still
     queued at exit). */
  uint64_t mails_sent, mails_failed, mails_dropped;
  /* Forwards decided, [0 local, 1 remote][action], and list deliveries
     by action (forwards.h). */
  uint64_t forwards[2][4];
  uint64_t lists[4];
  /* The journal of the state file (obspamd_journal_flush): its writes
     failed in a row (0 while it is written), all its failed writes, the
     times it began to fail, and the decisions it dropped meanwhile. */
  uint64_t journal_failing, journal_failures, journal_episodes;
  uint64_t journal_dropped;
  /* A daemon with an event loop sets loop to 1 before its metrics
     endpoint starts; only then are the loop's times below exposed. The
     rounds: the work of one round, from epoll_wait returning to the next
     call. The waits: each request's, from the read that completed it to
     the write of its answer. */
  int loop;
  obspamd_timing rounds, waits;
  /* Set, like loop, before the metrics endpoint starts by a daemon whose
     decisions one thread counts (the policy server's loop): the counters
     of obspamd_metrics_decision and obspamd_metrics_marked are then
     added without a locked instruction. */
  int one_writer;
} obspamd_metrics;

/* Counts one decision (from any thread, or only one: one_writer): its action,
   the refusing level and the window named (obspamd_refusal_reason, which the
   message msg helps; NULL when there is none), and the time the request took
   (from reading it to answering). */
void obspamd_metrics_decision(obspamd_metrics *m, const obspam_verdict *v,
                              const obspam_message *msg, double latency_us);
/* Its two halves, for a daemon that counts the times of many decisions
   at once (the policy server: the decisions of a batch, asked in one
   round, took the same time): what the verdict says, and n decisions
   that took latency_us each. */
void obspamd_metrics_verdict(obspamd_metrics *m, const obspam_verdict *v,
                             const obspam_message *msg);
void obspamd_metrics_latency(obspamd_metrics *m, double latency_us, uint64_t n);
/* Counts the decision of a forward (its action, by its kind), which
   obspamd_metrics_decision leaves to this; a list delivery's is counted by
   obspamd_metrics_decision. */
void obspamd_metrics_marked(obspamd_metrics *m, const obspam_verdict *v,
                            const obspam_message *msg);
/* A connection accepted (open and total + 1) or closed (open - 1). */
void obspamd_metrics_connection_open(obspamd_metrics *m);
void obspamd_metrics_connection_close(obspamd_metrics *m);
/* A malformed or over-long request. */
void obspamd_metrics_bad_request(obspamd_metrics *m);
/* Counts n times of us microseconds into t; only one thread may call it
   for a given t (the loop's), any thread may read t meanwhile. */
void obspamd_metrics_timing(obspamd_timing *t, double us, uint64_t n);

/* The endpoint serves a service (service.h). */
typedef struct obspamd_service obspamd_service;

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
