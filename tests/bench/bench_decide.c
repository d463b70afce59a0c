/* SPDX-License-Identifier: MIT */
/* bench_decide: the cost of obspam_decide() on a hosting-sized tree.

   Builds, through the public API only, a tree of N mailboxes (default
   1,000,000) in N/10 domains, N/50 subscriptions and 4 plans, then prints:

     - the seconds to build the tree;
     - the heap bytes per idle mailbox and per active mailbox (one that has
       sent in the current hour);
     - the ns per decision for random SASL logins, on one thread and on two
       threads sharing the engine, and the floor: one lookup of the same
       strings in a bare uthash table keyed by xxHash (XXH3_64bits), as the
       library's own tables are, both as independent lookups (which overlap
       in the CPU) and chained, one at a time;
     - the first pass (every object gets its counters) against a second
       pass over the same logins (nothing allocated);
     - obspam_effective_limit() of the same logins, the public lookup and
       limit walk without the counters: a rung between the decision and the
       floor.

   Every random choice comes from a fixed-seed xorshift made before the
   clock starts, so two runs do the same work. It prints figures and never
   fails on a time; it exits non-zero only when the library returns an
   error or a decision is not the expected ACCEPT.

   Usage: bench_decide [MAILBOXES [DECISIONS_PER_THREAD]]
   (defaults 1000000 and 4 * MAILBOXES, at most 4000000; the mixed-case,
   lookup and chained-floor figures use a quarter of the decisions). A
   full run takes under a minute and about 1.5 GB. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obspam.h"

/* The floor table is configured as src/table.h configures the library's:
   uthash with XXH3_64bits, xxHash compiled inline. */
#define XXH_INLINE_ALL
#include <xxhash.h>
#define HASH_FUNCTION(keyptr, keylen, hashv)                                   \
  ((hashv) = (unsigned)XXH3_64bits((keyptr), (size_t)(keylen)))
#include <uthash.h>

#include "bench.h"

#define MAILBOXES_PER_DOMAIN 10
#define DOMAINS_PER_SUB 5
#define PLANS 4
#define MAX_DECISIONS 4000000u
/* Each login sits in a fixed-size slot of one array: "mary@d0012345.example"
   and the longest local part below fit with room to spare. */
#define STRIDE 40
/* A message time inside one minute: 2026-01-01 00:00:30 UTC. Every
   decision uses it, so no window moves and no ring is swept. */
#define MSG_TIME ((int64_t)1767225630)
/* Large enough that nothing is ever refused, yet a real count, so the
   limit check runs and the effective-limit walk goes up to the plan. */
#define BIG_LIMIT ((int64_t)1000000000000)

static const char *const locals[MAILBOXES_PER_DOMAIN] = {
    "info", "admin", "sales",      "support", "office",
    "mary", "jo.ng", "john.smith", "billing", "webmaster"};

static obspam_engine *eng;
static char *logins;       /* N slots of STRIDE bytes, as stored (lower) */
static char *mixed_logins; /* the same, with random letters upper-cased */
static uint32_t nmail, ndom, nsub;

/* ---- helpers ------------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A uniform index below n, from the high bits (no modulo bias worth
   speaking of). */
static uint32_t rnd_below(uint64_t *s, uint32_t n) {
  return (uint32_t)(((xorshift64(s) >> 32) * (uint64_t)n) >> 32);
}

/* Bytes the allocator has handed out: small chunks (uordblks) and the
   mmap()ed ones (hblkhd), where big hash-bucket arrays end up. */
static double heap_bytes(void) {
  struct mallinfo2 mi = mallinfo2();

  return (double)mi.uordblks + (double)mi.hblkhd;
}

static double vmrss_bytes(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;

  if (f == NULL)
    return -1;
  while (fgets(line, sizeof(line), f) != NULL)
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
      break;
  fclose(f);
  return (double)kb * 1024.0;
}

static void check(int rc, const char *what) {
  if (rc != OBSPAM_OK) {
    fprintf(stderr, "bench_decide: %s: %s (%s)\n", what, obspam_strerror(rc),
            obspam_engine_errmsg(eng));
    exit(1);
  }
}

static const char *login_at(const char *base, uint32_t i) {
  return base + (size_t)i * STRIDE;
}

/* ---- building ------------------------------------------------------------ */

static void build_upper(void) {
  char name[64], parent[64];
  uint32_t i;

  for (i = 0; i < PLANS; i++) {
    snprintf(name, sizeof(name), "plan%" PRIu32, i);
    check(obspam_add(eng, OBSPAM_PLAN, name, NULL), "add plan");
    check(obspam_set_limit(eng, OBSPAM_PLAN, name, OBSPAM_SUBSCRIPTION,
                           BIG_LIMIT),
          "set_limit");
    check(obspam_set_limit(eng, OBSPAM_PLAN, name, OBSPAM_DOMAIN, BIG_LIMIT),
          "set_limit");
    check(obspam_set_limit(eng, OBSPAM_PLAN, name, OBSPAM_MAILBOX, BIG_LIMIT),
          "set_limit");
  }
  for (i = 0; i < nsub; i++) {
    snprintf(name, sizeof(name), "sub%06" PRIu32, i);
    snprintf(parent, sizeof(parent), "plan%" PRIu32, i % PLANS);
    check(obspam_add(eng, OBSPAM_SUBSCRIPTION, name, parent),
          "add subscription");
  }
  for (i = 0; i < ndom; i++) {
    snprintf(name, sizeof(name), "d%07" PRIu32 ".example", i);
    snprintf(parent, sizeof(parent), "sub%06" PRIu32, i / DOMAINS_PER_SUB);
    check(obspam_add(eng, OBSPAM_DOMAIN, name, parent), "add domain");
  }
}

static void make_logins(void) {
  uint64_t seed = 0x6d69786564636173u;
  uint32_t i;
  size_t k;

  logins = calloc(nmail, STRIDE);
  mixed_logins = calloc(nmail, STRIDE);
  if (logins == NULL || mixed_logins == NULL) {
    fprintf(stderr, "bench_decide: out of memory\n");
    exit(1);
  }
  for (i = 0; i < nmail; i++) {
    char *s = logins + (size_t)i * STRIDE, *m;

    snprintf(s, STRIDE, "%s@d%07" PRIu32 ".example",
             locals[i % MAILBOXES_PER_DOMAIN], i / MAILBOXES_PER_DOMAIN);
    m = memcpy(mixed_logins + (size_t)i * STRIDE, s, STRIDE);
    for (k = 0; m[k] != '\0'; k++)
      if (m[k] >= 'a' && m[k] <= 'z' && (xorshift64(&seed) & 1))
        m[k] = (char)(m[k] - 'a' + 'A');
  }
}

static void build_mailboxes(void) {
  uint32_t i;

  for (i = 0; i < nmail; i++)
    check(obspam_add(eng, OBSPAM_MAILBOX, login_at(logins, i), NULL),
          "add mailbox");
}

/* ---- the floor: a bare uthash table of the same keys --------------------- */

typedef struct floor_item {
  UT_hash_handle hh;
  uint32_t id;
  char key[]; /* stored after the item, as the library stores names */
} floor_item;

static floor_item *floor_table;

static void build_floor(void) {
  uint32_t i;

  for (i = 0; i < nmail; i++) {
    const char *s = login_at(logins, i);
    size_t len = strlen(s);
    floor_item *it = malloc(sizeof(*it) + len + 1);

    if (it == NULL) {
      fprintf(stderr, "bench_decide: out of memory\n");
      exit(1);
    }
    it->id = i;
    memcpy(it->key, s, len + 1);
    HASH_ADD_KEYPTR(hh, floor_table, it->key, len, it);
  }
}

static void free_floor(void) {
  floor_item *it, *tmp;

  HASH_ITER(hh, floor_table, it, tmp) {
    HASH_DEL(floor_table, it);
    free(it);
  }
}

/* ---- the timed loops ----------------------------------------------------- */

/* What a timed loop does with each login. */
enum { DECIDE, DECIDE_BATCH, LOOKUP, FLOOR, FLOOR_CHAINED };

#define BATCH 16 /* messages per obspam_decide_batch call */

/* One thread's work and results, on a cache line of its own. */
typedef struct job {
  const uint32_t *idx;
  size_t n;
  const char *base; /* logins or mixed_logins */
  int what;         /* DECIDE, LOOKUP, FLOOR or FLOOR_CHAINED */
  pthread_barrier_t *start;
  double t0, t1;
  uint64_t sum; /* a checksum that keeps the work observable */
  uint64_t bad; /* decisions that were not ACCEPT */
} __attribute__((aligned(64))) job;

/* The loops keep their sums in locals and store them once at the end, so
   that two threads never write to one cache line while they are timed. */
static __attribute__((noinline)) void run_decide(job *j) {
  obspam_message msg = OBSPAM_MESSAGE_INIT;
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  const uint32_t *idx = j->idx;
  const char *base = j->base;
  uint64_t sum = 0, bad = 0;
  size_t i, n = j->n;

  msg.time = MSG_TIME;
  j->t0 = now_s();
  for (i = 0; i < n; i++) {
    msg.sasl_username = login_at(base, idx[i]);
    if (obspam_decide(eng, &msg, &v) != OBSPAM_OK || v.action != OBSPAM_ACCEPT)
      bad++;
    sum += (uint64_t)v.count;
  }
  j->t1 = now_s();
  j->sum = sum;
  j->bad = bad;
}

/* The same decisions, BATCH messages per obspam_decide_batch call. */
static __attribute__((noinline)) void run_decide_batch(job *j) {
  obspam_message msg[BATCH];
  obspam_verdict v[BATCH];
  const obspam_message *pm[BATCH];
  obspam_verdict *pv[BATCH];
  int rc[BATCH];
  const uint32_t *idx = j->idx;
  const char *base = j->base;
  uint64_t sum = 0, bad = 0;
  size_t i, k, n = j->n;

  for (k = 0; k < BATCH; k++) {
    obspam_message m0 = OBSPAM_MESSAGE_INIT;
    obspam_verdict v0 = OBSPAM_VERDICT_INIT;

    msg[k] = m0;
    msg[k].time = MSG_TIME;
    v[k] = v0;
    pm[k] = &msg[k];
    pv[k] = &v[k];
  }
  j->t0 = now_s();
  for (i = 0; i < n; i += BATCH) {
    size_t m = n - i < BATCH ? n - i : BATCH;

    for (k = 0; k < m; k++)
      msg[k].sasl_username = login_at(base, idx[i + k]);
    if (obspam_decide_batch(eng, pm, pv, rc, m) != OBSPAM_OK)
      bad += m;
    for (k = 0; k < m; k++) {
      bad += v[k].action != OBSPAM_ACCEPT;
      sum += (uint64_t)v[k].count;
    }
  }
  j->t1 = now_s();
  j->sum = sum;
  j->bad = bad;
}

/* The public lookup without the counters: the name is normalised, the
   mailbox found under the engine's lock and its effective limit walked up
   to the plan, as a decision does before it charges anything. */
static __attribute__((noinline)) void run_lookup(job *j) {
  const uint32_t *idx = j->idx;
  const char *base = j->base;
  uint64_t sum = 0, bad = 0;
  size_t i, n = j->n;
  int64_t limit = 0;

  j->t0 = now_s();
  for (i = 0; i < n; i++) {
    if (obspam_effective_limit(eng, OBSPAM_MAILBOX, login_at(base, idx[i]),
                               &limit) != OBSPAM_OK)
      bad++;
    sum += (uint64_t)limit;
  }
  j->t1 = now_s();
  j->sum = sum;
  j->bad = bad;
}

/* The floor. Independent lookups overlap in an out-of-order core: the
   misses of the next ones start while the last one waits. */
static __attribute__((noinline)) void run_floor(job *j) {
  const uint32_t *idx = j->idx;
  const char *base = j->base;
  uint64_t sum = 0, bad = 0;
  size_t i, n = j->n;

  j->t0 = now_s();
  for (i = 0; i < n; i++) {
    const char *s = login_at(base, idx[i]);
    floor_item *it;

    HASH_FIND(hh, floor_table, s, strlen(s), it);
    if (it == NULL)
      bad++;
    else
      sum += it->id;
  }
  j->t1 = now_s();
  j->sum = sum;
  j->bad = bad;
}

/* The floor, chained: each login's index also depends on the item the
   previous lookup found (times a zero the compiler cannot see), so the
   lookups run one after the other, as calls that each end in a lock
   release do. A function of its own, so that the plain floor keeps no
   such dependency. */
static __attribute__((noinline)) void run_floor_chained(job *j) {
  const uint32_t *idx = j->idx;
  const char *base = j->base;
  uint64_t sum = 0, bad = 0;
  size_t i, n = j->n;
  uint32_t dep = 0, zero = 0;

  __asm__("" : "+r"(zero));
  j->t0 = now_s();
  for (i = 0; i < n; i++) {
    const char *s = login_at(base, idx[i] + dep);
    floor_item *it;

    HASH_FIND(hh, floor_table, s, strlen(s), it);
    if (it == NULL) {
      bad++;
    } else {
      sum += it->id;
      dep = it->id * zero;
    }
  }
  j->t1 = now_s();
  j->sum = sum;
  j->bad = bad;
}

static void *job_main(void *arg) {
  job *j = arg;

  if (j->start != NULL)
    pthread_barrier_wait(j->start);
  if (j->what == FLOOR)
    run_floor(j);
  else if (j->what == FLOOR_CHAINED)
    run_floor_chained(j);
  else if (j->what == LOOKUP)
    run_lookup(j);
  else if (j->what == DECIDE_BATCH)
    run_decide_batch(j);
  else
    run_decide(j);
  return NULL;
}

typedef struct result {
  double ns_per_op[2]; /* per thread */
  double ops_per_s;    /* all threads together, over the wall time */
  uint64_t sum;
} result;

/* Runs one job per index array on as many threads, started together. */
static result run(int threads, uint32_t *const *idx, size_t n, const char *base,
                  int what) {
  pthread_barrier_t start;
  pthread_t tid[2];
  job jobs[2];
  result r;
  double t0 = 0, t1 = 0;
  int i;

  memset(&r, 0, sizeof(r));
  memset(jobs, 0, sizeof(jobs));
  if (threads > 1)
    pthread_barrier_init(&start, NULL, (unsigned)threads);
  for (i = 0; i < threads; i++) {
    jobs[i].idx = idx[i];
    jobs[i].n = n;
    jobs[i].base = base;
    jobs[i].what = what;
    jobs[i].start = threads > 1 ? &start : NULL;
  }
  if (threads == 1) {
    job_main(&jobs[0]);
  } else {
    for (i = 0; i < threads; i++)
      if (pthread_create(&tid[i], NULL, job_main, &jobs[i]) != 0) {
        fprintf(stderr, "bench_decide: pthread_create failed\n");
        exit(1);
      }
    for (i = 0; i < threads; i++)
      pthread_join(tid[i], NULL);
    pthread_barrier_destroy(&start);
  }
  for (i = 0; i < threads; i++) {
    if (jobs[i].bad != 0) {
      fprintf(stderr, "bench_decide: %" PRIu64 " %s failed\n", jobs[i].bad,
              what == DECIDE || what == DECIDE_BATCH ? "decisions" : "lookups");
      exit(1);
    }
    r.ns_per_op[i] = (jobs[i].t1 - jobs[i].t0) * 1e9 / (double)n;
    r.sum += jobs[i].sum;
    if (i == 0 || jobs[i].t0 < t0)
      t0 = jobs[i].t0;
    if (i == 0 || jobs[i].t1 > t1)
      t1 = jobs[i].t1;
  }
  r.ops_per_s = (double)n * threads / (t1 - t0);
  return r;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv) {
  uint32_t *idx[2], *perm;
  uint64_t seed;
  size_t ndec, quarter, i;
  double t, t_build, t_mail, h0, h1, h2, r0, r1, r2;
  result pass1, pass2, d1, d2, b1, b2, dm, l1, f1, f2, fc;
  long arg;

  arg = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
  if (arg < 50 || arg > 10000000) {
    fprintf(stderr, "usage: %s [MAILBOXES (50..10000000) [DECISIONS]]\n",
            argv[0]);
    return 2;
  }
  nmail = (uint32_t)arg;
  ndom = (nmail + MAILBOXES_PER_DOMAIN - 1) / MAILBOXES_PER_DOMAIN;
  nsub = (ndom + DOMAINS_PER_SUB - 1) / DOMAINS_PER_SUB;
  ndec = (size_t)nmail * 4 < MAX_DECISIONS ? (size_t)nmail * 4 : MAX_DECISIONS;
  if (argc > 2 && strtol(argv[2], NULL, 10) > 0)
    ndec = (size_t)strtol(argv[2], NULL, 10);
  /* The secondary figures take a quarter of the count, to keep the whole
     run within a minute. */
  quarter = ndec / 4 > 0 ? ndec / 4 : 1;

  /* Everything random is made before any clock starts. */
  make_logins();
  for (i = 0; i < 2; i++) {
    idx[i] = malloc(ndec * sizeof(*idx[i]));
    if (idx[i] == NULL) {
      fprintf(stderr, "bench_decide: out of memory\n");
      return 1;
    }
  }
  seed = 0x0b5ba11ce5eed001u;
  for (i = 0; i < ndec; i++)
    idx[0][i] = rnd_below(&seed, nmail);
  seed = 0x0b5ba11ce5eed002u;
  for (i = 0; i < ndec; i++)
    idx[1][i] = rnd_below(&seed, nmail);
  /* The activation pass: every mailbox once, in a random order. */
  perm = malloc((size_t)nmail * sizeof(*perm));
  if (perm == NULL) {
    fprintf(stderr, "bench_decide: out of memory\n");
    return 1;
  }
  for (i = 0; i < nmail; i++)
    perm[i] = (uint32_t)i;
  seed = 0x0b5ba11ce5eed003u;
  for (i = nmail - 1; i > 0; i--) {
    uint32_t k = rnd_below(&seed, (uint32_t)i + 1), tmp = perm[i];

    perm[i] = perm[k];
    perm[k] = tmp;
  }

  printf("bench_decide: libobspam %s, %" PRIu32 " mailboxes in %" PRIu32
         " domains, %" PRIu32 " subscriptions, %d plans; %zu decisions per "
         "thread\n",
         obspam_version_string(), nmail, ndom, nsub, PLANS, ndec);

  /* The tree. */
  t = now_s();
  check(obspam_engine_new(&eng), "engine_new");
  build_upper();
  h0 = heap_bytes();
  r0 = vmrss_bytes();
  t_mail = now_s();
  build_mailboxes();
  t_mail = now_s() - t_mail;
  h1 = heap_bytes();
  r1 = vmrss_bytes();
  t_build = now_s() - t;

  /* First pass: every mailbox (and so every domain and subscription)
     sends once and gets its ring and history. */
  pass1 = run(1, &perm, nmail, logins, DECIDE);
  h2 = heap_bytes();
  r2 = vmrss_bytes();
  /* Second pass, same logins, same order: nothing to allocate. */
  pass2 = run(1, &perm, nmail, logins, DECIDE);

  d1 = run(1, idx, ndec, logins, DECIDE);
  d2 = run(2, idx, ndec, logins, DECIDE);
  b1 = run(1, idx, ndec, logins, DECIDE_BATCH);
  b2 = run(2, idx, ndec, logins, DECIDE_BATCH);
  dm = run(1, idx, quarter, mixed_logins, DECIDE);
  l1 = run(1, idx, quarter, logins, LOOKUP);

  build_floor();
  f1 = run(1, idx, ndec, logins, FLOOR);
  f2 = run(2, idx, ndec, logins, FLOOR);
  fc = run(1, idx, quarter, logins, FLOOR_CHAINED);

  printf("\nbuild: %.3f s for the tree (%.3f s of it for the %" PRIu32
         " mailboxes, %.0f ns per obspam_add)\n",
         t_build, t_mail, nmail, t_mail * 1e9 / nmail);
  printf("\nmemory, mallinfo2() uordblks+hblkhd delta (VmRSS delta beside):\n");
  printf("  idle mailbox:   %7.1f B  (VmRSS %7.1f B)  adding the mailboxes "
         "only, / %" PRIu32 "\n",
         (h1 - h0) / nmail, (r1 - r0) / nmail, nmail);
  printf("  active mailbox: %7.1f B  (VmRSS %7.1f B)  first send of every "
         "mailbox in the hour, / %" PRIu32 ";\n"
         "                  it also activates the %" PRIu32 " domains and "
         "%" PRIu32 " subscriptions (%.1f B per activated object)\n",
         (h2 - h1) / nmail, (r2 - r1) / nmail, nmail, ndom, nsub,
         (h2 - h1) / ((double)nmail + ndom + nsub));

  printf("\ndecisions (SASL login, 1 recipient, everything accepted, one "
         "fixed minute):\n");
  printf("  first pass, every mailbox once (allocates):  %7.1f ns/decision\n",
         pass1.ns_per_op[0]);
  printf("  second pass, same order (no allocation):     %7.1f ns/decision\n",
         pass2.ns_per_op[0]);
  printf("  random logins, 1 thread:                     %7.1f ns/decision  "
         "%.2f M decisions/s\n",
         d1.ns_per_op[0], d1.ops_per_s / 1e6);
  printf("  random logins, 2 threads:           %7.1f + %7.1f ns/decision  "
         "%.2f M decisions/s together\n",
         d2.ns_per_op[0], d2.ns_per_op[1], d2.ops_per_s / 1e6);
  printf("  random logins, batches of %d, 1 thread:      %7.1f ns/decision  "
         "%.2f M decisions/s\n",
         BATCH, b1.ns_per_op[0], b1.ops_per_s / 1e6);
  printf("  random logins, batches of %d, 2 threads:%7.1f + %7.1f ns/decision  "
         "%.2f M decisions/s together\n",
         BATCH, b2.ns_per_op[0], b2.ns_per_op[1], b2.ops_per_s / 1e6);
  printf("  random logins in mixed case, 1 thread:       %7.1f ns/decision  "
         "(%zu decisions)\n",
         dm.ns_per_op[0], quarter);
  printf("\nlookup through the API, no counters (obspam_effective_limit of "
         "the same logins):\n");
  printf("  1 thread:                                    %7.1f ns/lookup  "
         "(%zu lookups)\n",
         l1.ns_per_op[0], quarter);
  printf("\nfloor (strlen + HASH_FIND in a bare uthash/XXH3 table of the "
         "same keys):\n");
  printf("  1 thread:                                    %7.1f ns/lookup  "
         "%.2f M lookups/s\n",
         f1.ns_per_op[0], f1.ops_per_s / 1e6);
  printf("  2 threads:                          %7.1f + %7.1f ns/lookup  "
         "%.2f M lookups/s together\n",
         f2.ns_per_op[0], f2.ns_per_op[1], f2.ops_per_s / 1e6);
  printf("  1 thread, chained (one lookup at a time):    %7.1f ns/lookup  "
         "(%zu lookups)\n",
         fc.ns_per_op[0], quarter);
  printf("\nratio decision/floor: 1 thread %.2fx, 2 threads %.2fx "
         "(aggregate throughput); goal: within 3x\n",
         d1.ns_per_op[0] / f1.ns_per_op[0], f2.ops_per_s / d2.ops_per_s);
  printf("ratio batched decision/floor: 1 thread %.2fx, 2 threads %.2fx\n",
         b1.ns_per_op[0] / f1.ns_per_op[0], f2.ops_per_s / b2.ops_per_s);
  printf("ratio decision/chained floor, 1 thread: %.2fx\n",
         d1.ns_per_op[0] / fc.ns_per_op[0]);
  printf("checksums: library %" PRIu64 ", floor %" PRIu64 "\n",
         pass1.sum + pass2.sum + d1.sum + d2.sum + b1.sum + b2.sum + dm.sum +
             l1.sum,
         f1.sum + f2.sum + fc.sum);

  free_floor();
  obspam_engine_free(eng);
  free(perm);
  free(idx[0]);
  free(idx[1]);
  free(logins);
  free(mixed_logins);
  return 0;
}
