/* SPDX-License-Identifier: MIT */
/* bench_pool: the library on the Redis store, by tests/redis/bench_pool.sh.

     bench_pool URI MODE THREADS SECONDS

   URI names the Redis (with ?pool=N for the pool's size). 1,000
   mailboxes in 10 domains of one subscription, all unlimited, so that
   every decision is an accept that writes. MODE:

     sync   THREADS threads call obspam_decide in a loop (the milter's
            threads): decisions/s, p50 and p99 of one call;
     batch  THREADS threads call obspam_decide_batch with 64 messages:
            decisions/s, and p50 and p99 of one batch;
     start  one thread keeps THREADS batches of 16 messages in flight
            through obspam_decide_start (an event loop): decisions/s, and
            p50 and p99 from start to done.

   Prints one line of figures; never fails on a time, exits non-zero when
   the library returns an error or a decision was made without Redis. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obspam.h"

#define MAILBOXES 1000
#define BATCH 64
#define START_BATCH 16
#define SAMPLES 200000

static obspam_engine *e;
static char login[MAILBOXES][32];
static double seconds;
static volatile int errors;

static double now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Latencies in microseconds, one array per thread. */
typedef struct lat {
  double *v;
  size_t n;
  long long decisions;
  unsigned seed;
} lat;

static void lat_add(lat *l, double us) {
  if (l->n < SAMPLES)
    l->v[l->n++] = us;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return x < y ? -1 : x > y;
}

static obspam_message msg_for(lat *l) {
  obspam_message m = OBSPAM_MESSAGE_INIT;

  m.sasl_username = login[rand_r(&l->seed) % MAILBOXES];
  return m;
}

static void *sync_thread(void *arg) {
  lat *l = arg;
  double end = now_s() + seconds;

  while (now_s() < end) {
    obspam_message m = msg_for(l);
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    double t0 = now_s();

    if (obspam_decide(e, &m, &v) != OBSPAM_OK || v.action != OBSPAM_ACCEPT)
      errors++;
    lat_add(l, (now_s() - t0) * 1e6);
    l->decisions++;
  }
  return NULL;
}

static void *batch_thread(void *arg) {
  lat *l = arg;
  obspam_message m[BATCH];
  obspam_verdict v[BATCH];
  const obspam_message *pm[BATCH];
  obspam_verdict *pv[BATCH];
  int rc[BATCH], i;
  double end = now_s() + seconds;

  for (i = 0; i < BATCH; i++) {
    pm[i] = &m[i];
    pv[i] = &v[i];
  }
  while (now_s() < end) {
    double t0 = now_s();

    for (i = 0; i < BATCH; i++) {
      obspam_verdict v0 = OBSPAM_VERDICT_INIT;

      m[i] = msg_for(l);
      v[i] = v0;
    }
    if (obspam_decide_batch(e, pm, pv, rc, BATCH) != OBSPAM_OK)
      errors++;
    lat_add(l, (now_s() - t0) * 1e6);
    l->decisions += BATCH;
  }
  return NULL;
}

/* One batch of start mode: its messages and the time it started. */
typedef struct slot {
  obspam_message m[START_BATCH];
  obspam_verdict v[START_BATCH];
  const obspam_message *pm[START_BATCH];
  obspam_verdict *pv[START_BATCH];
  int rc[START_BATCH];
  double t0;
  int busy;
} slot;

static pthread_mutex_t slock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t scond = PTHREAD_COND_INITIALIZER;

static void on_done(void *arg) {
  slot *s = arg;

  pthread_mutex_lock(&slock);
  s->busy = 0;
  pthread_cond_signal(&scond);
  pthread_mutex_unlock(&slock);
}

static void run_start(lat *l, int inflight) {
  slot *s = calloc((size_t)inflight, sizeof(*s));
  double end = now_s() + seconds;
  int i, k;

  pthread_mutex_lock(&slock);
  for (;;) {
    int any = 0, stop = now_s() >= end;

    for (i = 0; i < inflight; i++) {
      if (s[i].busy) {
        any = 1;
        continue;
      }
      if (s[i].t0 > 0) {
        lat_add(l, (now_s() - s[i].t0) * 1e6);
        l->decisions += START_BATCH;
        for (k = 0; k < START_BATCH; k++)
          if (s[i].rc[k] != OBSPAM_OK || s[i].v[k].action != OBSPAM_ACCEPT)
            errors++;
        s[i].t0 = 0;
      }
      if (stop)
        continue;
      for (k = 0; k < START_BATCH; k++) {
        obspam_verdict v0 = OBSPAM_VERDICT_INIT;

        s[i].m[k] = msg_for(l);
        s[i].v[k] = v0;
        s[i].pm[k] = &s[i].m[k];
        s[i].pv[k] = &s[i].v[k];
      }
      s[i].busy = 1;
      s[i].t0 = now_s();
      any = 1;
      pthread_mutex_unlock(&slock);
      if (obspam_decide_start(e, s[i].pm, s[i].pv, s[i].rc, NULL, START_BATCH,
                              on_done, &s[i]) != OBSPAM_OK)
        errors++;
      pthread_mutex_lock(&slock);
    }
    if (!any)
      break;
    pthread_cond_wait(&scond, &slock);
  }
  pthread_mutex_unlock(&slock);
  free(s);
}

int main(int argc, char **argv) {
  int threads, i, d;
  lat *l;
  pthread_t *th;
  double t0, took, *all;
  size_t n = 0;
  long long decisions = 0;
  int64_t episodes = 0, fallbacks = 0;
  const char *mode;

  if (argc != 5) {
    fprintf(stderr, "usage: bench_pool URI sync|batch|start THREADS SECONDS\n");
    return 2;
  }
  mode = argv[2];
  threads = atoi(argv[3]);
  seconds = atof(argv[4]);
  if (threads < 1 || seconds <= 0 || obspam_engine_new(&e) != OBSPAM_OK ||
      obspam_set_store(e, argv[1], "bench:") != OBSPAM_OK ||
      obspam_add(e, OBSPAM_SUBSCRIPTION, "s", NULL) != OBSPAM_OK ||
      /* A machine shared with other jobs can stall a call for longer than
         the default 200 ms: a fallback would be measured as a decision. */
      obspam_set_option(e, OBSPAM_OPT_STORE_TIMEOUT_MS, 5000) != OBSPAM_OK) {
    fprintf(stderr, "bench_pool: bad arguments or setup\n");
    return 2;
  }
  for (d = 0; d < 10; d++) {
    char dom[32];

    snprintf(dom, sizeof(dom), "d%d.test", d);
    obspam_add(e, OBSPAM_DOMAIN, dom, "s");
  }
  for (i = 0; i < MAILBOXES; i++) {
    snprintf(login[i], sizeof(login[i]), "m%d@d%d.test", i, i % 10);
    obspam_add(e, OBSPAM_MAILBOX, login[i], NULL);
  }
  l = calloc((size_t)threads, sizeof(*l));
  th = calloc((size_t)threads, sizeof(*th));
  for (i = 0; i < threads; i++) {
    l[i].v = malloc(SAMPLES * sizeof(double));
    l[i].seed = (unsigned)i + 1;
  }
  t0 = now_s();
  if (strcmp(mode, "start") == 0) {
    run_start(&l[0], threads);
  } else {
    void *(*fn)(void *) =
        strcmp(mode, "batch") == 0 ? batch_thread : sync_thread;

    for (i = 0; i < threads; i++)
      pthread_create(&th[i], NULL, fn, &l[i]);
    for (i = 0; i < threads; i++)
      pthread_join(th[i], NULL);
  }
  took = now_s() - t0;
  all = malloc((size_t)threads * SAMPLES * sizeof(double));
  for (i = 0; i < threads; i++) {
    memcpy(all + n, l[i].v, l[i].n * sizeof(double));
    n += l[i].n;
    decisions += l[i].decisions;
  }
  qsort(all, n, sizeof(double), cmp_d);
  obspam_store_status(e, NULL, NULL, &episodes, &fallbacks);
  printf("%s threads=%d: %.0f decisions/s, p50 %.0f us, p99 %.0f us "
         "(%zu calls, %d errors, %" PRId64 " decisions without Redis)\n",
         mode, threads, (double)decisions / took, n ? all[n / 2] : 0,
         n ? all[n * 99 / 100] : 0, n, errors, fallbacks);
  if (episodes != 0)
    errors++;
  obspam_engine_free(e);
  return errors ? 1 : 0;
}
