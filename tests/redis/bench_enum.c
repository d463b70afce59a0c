/* SPDX-License-Identifier: MIT */
/* bench_enum: paging through the active mailboxes of a large
   configuration on the Redis store, by tests/redis/bench_enum.sh.

     bench_enum DIRECT_URI URI MAILBOXES ACTIVE SECONDS

   MAILBOXES mailboxes in 100 domains of one subscription, ACTIVE of them
   (evenly spread) charged once through DIRECT_URI; then, through URI
   (the same Redis behind a delaying proxy), one thread pages through
   the active mailboxes (obspam_enumerate with OBSPAM_ENUM_ACTIVE, 100 a
   call) and then asks for the top mailboxes, while a second thread
   decides one message at a time (for the first active mailbox) and a
   third reloads the same
   configuration without pause. A pass that takes longer than SECONDS is
   stopped there (its figures say how far it got). store-timeout is 10 s,
   so that a loaded machine measures waits, not fallbacks.

   Prints the time of the whole pass, of its first page and of the top,
   the longest decision and the 99th percentile of the decisions made
   during the pass, and the reloads made; never fails on a time, exits
   non-zero when the library returns an error or a listing is not what
   was charged. With "idle" after SECONDS: SECONDS of decisions and
   reloads, without a pass; with "steady": the pass and the decisions,
   without reloads. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "obspam.h"

#define SAMPLES 1000000

static obspam_engine *e;
static char *conf;
static volatile int stop;
static volatile int errors;
static long long reloads;
static double *lat_us;
static size_t nlat;

static double now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

/* The configuration: store line, then mailboxes m<i>@d<i % 100>.example. */
static char *make_conf(const char *uri, const char *prefix, int mailboxes) {
  size_t cap = (size_t)mailboxes * 48 + 8192, len = 0;
  char *s = malloc(cap);
  int i;

  if (s == NULL)
    exit(2);
  len += (size_t)snprintf(s + len, cap - len,
                          "store %s\nstore-prefix %s\nstore-timeout 10000\n"
                          "subscription s1\n",
                          uri, prefix);
  for (i = 0; i < 100; i++)
    len += (size_t)snprintf(s + len, cap - len,
                            "domain d%02d.example subscription=s1\n", i);
  for (i = 0; i < mailboxes; i++)
    len += (size_t)snprintf(s + len, cap - len, "mailbox m%06d@d%02d.example\n",
                            i, i % 100);
  return s;
}

static obspam_engine *engine_for(const char *text) {
  obspam_engine *x;

  if (obspam_engine_new(&x) != OBSPAM_OK ||
      obspam_load_config_string(x, text) != OBSPAM_OK) {
    fprintf(stderr, "engine: %s\n", obspam_engine_errmsg(x));
    exit(2);
  }
  return x;
}

/* Decides for the first active mailbox (so that the active ones stay
   those charged), one message at a time. */
static void *decider(void *arg) {
  (void)arg;
  while (!stop) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    double t0;

    m.sasl_username = "m000000@d00.example";
    t0 = now_s();
    if (obspam_decide(e, &m, &v) != OBSPAM_OK || v.action != OBSPAM_ACCEPT)
      errors++;
    if (nlat < SAMPLES)
      lat_us[nlat++] = (now_s() - t0) * 1e6;
  }
  return NULL;
}

static void *reloader(void *arg) {
  (void)arg;
  while (!stop) {
    if (obspam_load_config_string(e, conf) != OBSPAM_OK) {
      fprintf(stderr, "reload: %s\n", obspam_engine_errmsg(e));
      errors++;
      return NULL;
    }
    reloads++;
  }
  return NULL;
}

typedef struct pass {
  char last[OBSPAM_NAME_MAX + 1];
  long long n;
} pass;

static int on_mailbox(int kind, const char *name, const obspam_stats *st,
                      void *ud) {
  pass *p = ud;

  (void)kind;
  if (st->count_day < 1)
    errors++;
  snprintf(p->last, sizeof(p->last), "%s", name);
  p->n++;
  return 0;
}

static void on_row(const obspam_report_row *row, void *ud) {
  (void)row;
  (*(long long *)ud)++;
}

int main(int argc, char **argv) {
  obspam_engine *seed;
  char prefix[64], *direct;
  pthread_t th[2];
  pass p;
  double t0, first = -1, whole, top, limit;
  long long rows = 0;
  int mailboxes, active, i, done = 1, idle = 0, steady = 0;

  if (argc == 7 && strcmp(argv[6], "idle") == 0)
    idle = 1;
  else if (argc == 7 && strcmp(argv[6], "steady") == 0)
    steady = 1;
  else if (argc != 6) {
    fprintf(stderr, "usage: bench_enum DIRECT_URI URI MAILBOXES ACTIVE "
                    "SECONDS [idle|steady]\n");
    return 2;
  }
  mailboxes = atoi(argv[3]);
  active = atoi(argv[4]);
  limit = atof(argv[5]);
  if (mailboxes < 100 || active < 1 || active > mailboxes)
    return 2;
  snprintf(prefix, sizeof(prefix), "benum-%d:", (int)getpid());
  direct = make_conf(argv[1], prefix, mailboxes);
  conf = make_conf(argv[2], prefix, mailboxes);
  lat_us = malloc(SAMPLES * sizeof(*lat_us));
  if (lat_us == NULL)
    return 2;

  /* The active mailboxes, charged straight to Redis in batches. */
  seed = engine_for(direct);
  for (i = 0; i < active; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    char login[64];
    int k = (int)((long long)i * mailboxes / active);

    snprintf(login, sizeof(login), "m%06d@d%02d.example", k, k % 100);
    m.sasl_username = login;
    if (obspam_decide(seed, &m, &v) != OBSPAM_OK || v.action != OBSPAM_ACCEPT) {
      fprintf(stderr, "seed: %s\n", obspam_engine_errmsg(seed));
      return 1;
    }
  }
  obspam_engine_free(seed);

  e = engine_for(conf);
  pthread_create(&th[0], NULL, decider, NULL);
  if (!steady)
    pthread_create(&th[1], NULL, reloader, NULL);
  memset(&p, 0, sizeof(p));
  t0 = now_s();
  /* idle: the same SECONDS of decisions and reloads without a pass, to
     tell what the pass adds. */
  while (idle && now_s() - t0 < limit) {
    struct timespec ms100 = {0, 100000000};

    nanosleep(&ms100, NULL);
  }
  for (; !idle;) {
    long long before = p.n;

    if (obspam_enumerate(e, OBSPAM_MAILBOX, NULL, OBSPAM_ENUM_ACTIVE,
                         p.last[0] ? p.last : NULL, 100, 0, on_mailbox,
                         &p) != OBSPAM_OK) {
      fprintf(stderr, "enumerate: %s\n", obspam_engine_errmsg(e));
      errors++;
      break;
    }
    if (first < 0)
      first = now_s() - t0;
    if (p.n - before < 100)
      break;
    if (now_s() - t0 > limit) {
      done = 0;
      break;
    }
  }
  whole = now_s() - t0;
  t0 = now_s();
  if (obspam_top(e, OBSPAM_MAILBOX, (int64_t)time(NULL) - 3600,
                 (int64_t)time(NULL) + 1, 10, on_row, &rows) != OBSPAM_OK) {
    fprintf(stderr, "top: %s\n", obspam_engine_errmsg(e));
    errors++;
  }
  top = now_s() - t0;
  stop = 1;
  pthread_join(th[0], NULL);
  if (!steady)
    pthread_join(th[1], NULL);
  qsort(lat_us, nlat, sizeof(*lat_us), cmp_d);
  printf("%d mailboxes, %d active: listed %lld in %.2f s%s (first page "
         "%.3f s), top %.3f s; %zu decisions meanwhile: p99 %.1f ms, "
         "longest %.1f ms; %lld reloads\n",
         mailboxes, active, p.n, whole, done ? "" : " (stopped)", first, top,
         nlat, nlat ? lat_us[nlat * 99 / 100] / 1000 : 0.0,
         nlat ? lat_us[nlat - 1] / 1000 : 0.0, reloads);
  if (done && !idle && p.n != active) {
    fprintf(stderr, "listed %lld, charged %d\n", p.n, active);
    errors++;
  }
  obspam_engine_free(e);
  free(conf);
  free(direct);
  free(lat_us);
  return errors ? 1 : 0;
}
