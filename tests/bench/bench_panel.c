/* SPDX-License-Identifier: MIT */
/* bench_panel: what a panel's pages cost on a hosting-sized engine.

   Loads a configuration of N mailboxes (default 1,000,000) in N/10
   domains and N/50 subscriptions, makes N/10 of them active (one message
   each) and N/100 implicit mailboxes (logins no line declares), then
   prints the seconds of:

     - the first obspam_enumerate of the mailboxes after the load,
       which finds them in name order (the load sorted them);
     - paging through every mailbox in pages of 1000 (after = the last
       name of the previous page): the whole walk, the number of pages
       and the slowest page, which is the longest the engine is held;
     - the same walk with OBSPAM_ENUM_ACTIVE;
     - obspam_top of every kind over the hour, the first ten;
     - obspam_add of N/10 (at most 10,000) more mailboxes one by one,
       their names spread over the name order, then obspam_remove of
       them: the mean and the slowest call, which holds the write lock.

   It never fails on a time; it exits non-zero when the library returns
   an error or a walk does not see every mailbox once, in order.

   Usage: bench_panel [MAILBOXES]   (a multiple of 50, at least 1,000) */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obspam.h"

#define PAGE 1000
/* The hour of the traffic: 2026-01-01 00:00 UTC. */
#define HOUR ((int64_t)1767225600)

static double now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void must(obspam_engine *e, int rc, const char *what) {
  if (rc != OBSPAM_OK) {
    fprintf(stderr, "bench_panel: %s: %s (%s)\n", what, obspam_strerror(rc),
            e != NULL ? obspam_engine_errmsg(e) : "");
    exit(1);
  }
}

typedef struct walk {
  char last[OBSPAM_NAME_MAX + 1];
  uint64_t seen, bad;
  size_t got;
} walk;

static int on_object(int kind, const char *name, const obspam_stats *st,
                     void *ud) {
  walk *w = ud;

  (void)kind;
  (void)st;
  if (strcmp(name, w->last) <= 0)
    w->bad++;
  snprintf(w->last, sizeof(w->last), "%s", name);
  w->seen++;
  w->got++;
  return 0;
}

/* Pages through the mailboxes; the seconds of the whole walk and of its
   slowest page. */
static void page_all(obspam_engine *e, uint32_t flags, const char *label,
                     uint64_t want) {
  walk w;
  char after[OBSPAM_NAME_MAX + 1];
  double start = now_s(), worst = 0;
  uint64_t pages = 0;

  memset(&w, 0, sizeof(w));
  do {
    double t0 = now_s(), dt;

    snprintf(after, sizeof(after), "%s", w.last);
    w.got = 0;
    must(e,
         obspam_enumerate(e, OBSPAM_MAILBOX, NULL, flags, after, PAGE,
                          HOUR + 60, on_object, &w),
         "enumerate");
    dt = now_s() - t0;
    if (dt > worst)
      worst = dt;
    pages++;
  } while (w.got == PAGE);
  printf("%-28s %10" PRIu64 " objects %6" PRIu64
         " pages  %8.3f s  slowest page %7.2f ms\n",
         label, w.seen, pages, now_s() - start, worst * 1e3);
  if (w.bad != 0 || (want != 0 && w.seen != want)) {
    fprintf(stderr,
            "bench_panel: %s saw %" PRIu64 " (want %" PRIu64 "), %" PRIu64
            " out of order\n",
            label, w.seen, want, w.bad);
    exit(1);
  }
}

/* Adds nmail / 10 (at most 10,000) mailboxes one by one, each name
   just after one of the loaded ones, spread over the whole order, then
   removes them; prints the mean and the slowest of each call. */
static void changes(obspam_engine *e, uint32_t nmail, uint32_t ndom) {
  uint32_t n = nmail / 10 < 10000 ? nmail / 10 : 10000, i, j;
  char who[96];
  int pass;

  for (pass = 0; pass < 2; pass++) {
    double start = now_s(), worst = 0;

    for (i = 0; i < n; i++) {
      double t0 = now_s(), dt;

      j = (uint32_t)((uint64_t)i * 7919 % nmail);
      snprintf(who, sizeof(who), "m%ux@d%u.example", j, j % ndom);
      must(e,
           pass == 0 ? obspam_add(e, OBSPAM_MAILBOX, who, NULL)
                     : obspam_remove(e, OBSPAM_MAILBOX, who),
           pass == 0 ? "add" : "remove");
      dt = now_s() - t0;
      if (dt > worst)
        worst = dt;
    }
    printf("%-28s %10u calls  %8.0f ns each  slowest %7.1f us\n",
           pass == 0 ? "obspam_add, one by one" : "obspam_remove, one by one",
           n, (now_s() - start) * 1e9 / n, worst * 1e6);
  }
}

static void count_row(const obspam_report_row *r, void *ud) {
  (void)r;
  ++*(int *)ud;
}

int main(int argc, char **argv) {
  uint32_t nmail = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000;
  uint32_t ndom = nmail / 10, nsub = nmail / 50, i;
  size_t cap = (size_t)nmail * 48 + (size_t)ndom * 48 + (size_t)nsub * 32,
         len = 0;
  char *conf = malloc(cap), who[96];
  obspam_engine *e = NULL;
  double t;
  int rows = 0;

  if (nmail < 1000 || nmail % 50 != 0 || conf == NULL) {
    fprintf(stderr, "usage: bench_panel [MAILBOXES: a multiple of 50, at "
                    "least 1000]\n");
    return 2;
  }
  for (i = 0; i < nsub; i++)
    len += (size_t)snprintf(conf + len, cap - len, "subscription s%u\n", i);
  for (i = 0; i < ndom; i++)
    len += (size_t)snprintf(conf + len, cap - len,
                            "domain d%u.example subscription=s%u\n", i, i / 5);
  for (i = 0; i < nmail; i++)
    len += (size_t)snprintf(conf + len, cap - len, "mailbox m%u@d%u.example\n",
                            i, i % ndom);
  must(NULL, obspam_engine_new(&e), "engine_new");
  t = now_s();
  must(e, obspam_load_config_string(e, conf), "load_config_string");
  free(conf);
  printf("%u mailboxes, %u domains, %u subscriptions: loaded in %.2f s\n",
         nmail, ndom, nsub, now_s() - t);

  t = now_s();
  for (i = 0; i < nmail / 10; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    snprintf(who, sizeof(who), "m%u@d%u.example", i * 10 + 3,
             (i * 10 + 3) % ndom);
    m.sasl_username = who;
    m.time = HOUR + (int64_t)(i % 60);
    must(e, obspam_decide(e, &m, &v), "decide");
  }
  for (i = 0; i < nmail / 100; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    snprintf(who, sizeof(who), "implicit%u@d%u.example", i, i % ndom);
    m.sasl_username = who;
    m.time = HOUR + 59;
    must(e, obspam_decide(e, &m, &v), "decide");
  }
  printf("%u active mailboxes and %u implicit ones made in %.2f s\n",
         nmail / 10, nmail / 100, now_s() - t);

  {
    walk w;

    memset(&w, 0, sizeof(w));
    t = now_s();
    must(e,
         obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, NULL, PAGE, HOUR + 60,
                          on_object, &w),
         "enumerate");
    /* A loaded name order is blocks of 512 pointers, three quarters
       full. */
    printf("%-28s %8.3f s (the name order: about %zu bytes)\n", "first page",
           now_s() - t, (size_t)nmail * sizeof(void *) * 4 / 3);
  }
  page_all(e, 0, "every mailbox", (uint64_t)nmail + nmail / 100);
  page_all(e, OBSPAM_ENUM_ACTIVE, "active mailboxes",
           (uint64_t)nmail / 10 + nmail / 100);
  t = now_s();
  must(e, obspam_top(e, -1, HOUR, HOUR + 3600, 10, count_row, &rows), "top");
  printf("%-28s %8.3f s (%d rows)\n", "top 10 of every kind", now_s() - t,
         rows);
  changes(e, nmail, ndom);
  obspam_engine_free(e);
  return 0;
}
