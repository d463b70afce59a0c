/* SPDX-License-Identifier: MIT */
/* bench_state: the cost of obspam_state_save() and obspam_state_load() on a
   hosting-sized engine.

   Builds, through the public API only, two engines with the same tree of N
   mailboxes (default 1,000,000) in N/10 domains and N/50 subscriptions,
   then makes N/10 mailboxes active in the current hour in the first one:
   each sends one message of 1 to 5 recipients, N/10,000 of them (limit 1)
   send a second one that is refused, and N/1,000 messages come from local
   scripts with as many distinct paths. It then prints:

     - the seconds to build each tree and to make the traffic;
     - the size of the snapshot;
     - the seconds of obspam_state_save() (temporary file, fsync, rename,
       fsync of the directory) and of obspam_state_load() into the second
       engine, each run five times (save, load, save, load, ...): every
       run, then the best, the median and the worst.

   Targets (SPEC, issue 4): at 1,000,000 mailboxes with 100,000 active,
   save <= 1 s and load <= 2 s. The program prints the figures and how
   many runs were over the targets; it never fails on a time. It exits
   non-zero only when the library returns an error or the loaded engine
   disagrees with the saved one.

   Usage: bench_state [MAILBOXES [DIRECTORY]]
   (MAILBOXES a multiple of 50, at least 1,000; DIRECTORY default $TMPDIR
   or /tmp; the snapshot is written to a fresh directory inside it and
   removed at the end). */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "obspam.h"

#define MAILBOXES_PER_DOMAIN 10
#define DOMAINS_PER_SUB 5
#define RUNS 5
/* The hour of the traffic: 2026-01-01 00:00 UTC. */
#define HOUR ((int64_t)1767225600)

static const char *const locals[MAILBOXES_PER_DOMAIN] = {
    "info", "admin", "sales",      "support", "office",
    "mary", "jo.ng", "john.smith", "billing", "webmaster"};

static uint32_t nmail, ndom, nsub, nactive;

static double now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void check(obspam_engine *e, int rc, const char *what) {
  if (rc != OBSPAM_OK) {
    fprintf(stderr, "bench_state: %s: %s (%s)\n", what, obspam_strerror(rc),
            e != NULL ? obspam_engine_errmsg(e) : "");
    exit(1);
  }
}

static void mailbox_name(char *buf, size_t size, uint32_t i) {
  snprintf(buf, size, "%s@d%07" PRIu32 ".example",
           locals[i % MAILBOXES_PER_DOMAIN], i / MAILBOXES_PER_DOMAIN);
}

static obspam_engine *build_tree(void) {
  obspam_engine *e = NULL;
  char name[64], parent[64];
  uint32_t i;

  check(NULL, obspam_engine_new(&e), "engine_new");
  for (i = 0; i < nsub; i++) {
    snprintf(name, sizeof(name), "sub%06" PRIu32, i);
    check(e, obspam_add(e, OBSPAM_SUBSCRIPTION, name, NULL), "add sub");
    check(e, obspam_set_uid(e, name, 10000 + (int64_t)i), "set_uid");
  }
  for (i = 0; i < ndom; i++) {
    snprintf(name, sizeof(name), "d%07" PRIu32 ".example", i);
    snprintf(parent, sizeof(parent), "sub%06" PRIu32, i / DOMAINS_PER_SUB);
    check(e, obspam_add(e, OBSPAM_DOMAIN, name, parent), "add domain");
  }
  for (i = 0; i < nmail; i++) {
    mailbox_name(name, sizeof(name), i);
    check(e, obspam_add(e, OBSPAM_MAILBOX, name, NULL), "add mailbox");
  }
  return e;
}

static obspam_verdict deliver(obspam_engine *e, const char *login,
                              uint32_t rcpt, int64_t uid, const char *script,
                              int64_t t) {
  obspam_message m = OBSPAM_MESSAGE_INIT;
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  if (uid >= 0) {
    m.flags = OBSPAM_MSG_SCRIPT;
    m.uid = uid;
    m.script = script;
  } else {
    m.sasl_username = login;
    m.sender = login;
    m.client_address = "198.51.100.10";
  }
  m.recipients = rcpt;
  m.time = t;
  check(e, obspam_decide(e, &m, &v), "decide");
  return v;
}

/* N/10 distinct mailboxes, spread over the tree: k * 999983 mod N is a
   permutation when N has no factor 999983 (a prime). */
static uint32_t active_at(uint32_t k) {
  return (uint32_t)(((uint64_t)k * 999983u) % nmail);
}

static uint32_t traffic(obspam_engine *e) {
  char name[64], path[64];
  uint32_t k, refused = 0;

  for (k = 0; k < nactive; k++) {
    int64_t t = HOUR + (int64_t)((uint64_t)k * 3540 / nactive);
    uint32_t i = active_at(k);
    /* Every 1000th has a limit of 1: one message of 1, then a refusal. */
    int limited = k % 1000 == 0;

    mailbox_name(name, sizeof(name), i);
    if (limited)
      check(e, obspam_set_limit(e, OBSPAM_MAILBOX, name, OBSPAM_MAILBOX, 1),
            "set_limit");
    if (deliver(e, name, limited ? 1 : 1 + k % 5, -1, NULL, t).action !=
        OBSPAM_ACCEPT) {
      fprintf(stderr, "bench_state: %s was not accepted\n", name);
      exit(1);
    }
    if (limited)
      refused += deliver(e, name, 1, -1, NULL, t).action == OBSPAM_REFUSE;
    if (k % 100 == 0) {
      snprintf(path, sizeof(path),
               "/var/www/vhosts/site%06" PRIu32 "/httpdocs/mail.php", k / 100);
      deliver(e, NULL, 2,
              10000 + (int64_t)(i / MAILBOXES_PER_DOMAIN / DOMAINS_PER_SUB),
              path, t);
    }
  }
  return refused;
}

/* The loaded engine must say what the saved one says. */
static void compare(obspam_engine *a, obspam_engine *b) {
  char name[64];
  uint32_t k;

  for (k = 0; k < nactive; k += 997) {
    obspam_stats sa = OBSPAM_STATS_INIT, sb = OBSPAM_STATS_INIT;

    mailbox_name(name, sizeof(name), active_at(k));
    check(a, obspam_stats_get(a, OBSPAM_MAILBOX, name, HOUR + 3599, &sa),
          "stats_get");
    check(b, obspam_stats_get(b, OBSPAM_MAILBOX, name, HOUR + 3599, &sb),
          "stats_get");
    if (sa.count != sb.count || sa.refused != sb.refused ||
        sa.refused_total != sb.refused_total ||
        sa.last_refused != sb.last_refused || sa.count == 0) {
      fprintf(stderr, "bench_state: %s differs after the load\n", name);
      exit(1);
    }
  }
}

static int by_value(const void *pa, const void *pb) {
  double a = *(const double *)pa, b = *(const double *)pb;

  return (a > b) - (a < b);
}

/* Prints every run, then best, median and worst, and the runs over the
   target (which applies to the full size only). */
static void report(const char *what, const double *runs, double target) {
  double sorted[RUNS];
  int i, over = 0;

  printf("  %-10s  runs:", what);
  for (i = 0; i < RUNS; i++) {
    printf(" %.3f", runs[i]);
    sorted[i] = runs[i];
    over += runs[i] > target;
  }
  qsort(sorted, RUNS, sizeof(double), by_value);
  printf(" s\n  %-10s  best %.3f s, median %.3f s, worst %.3f s", what,
         sorted[0], sorted[RUNS / 2], sorted[RUNS - 1]);
  if (nmail == 1000000)
    printf("; target <= %.0f s: %d of %d runs over", target, over, RUNS);
  printf("\n");
}

int main(int argc, char **argv) {
  const char *tmp = getenv("TMPDIR");
  char dir[4096], path[4200];
  obspam_engine *src, *dst;
  double t, save[RUNS], load[RUNS];
  struct stat st;
  uint32_t refused;
  int i;

  nmail = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000u;
  if (nmail < 1000 || nmail % 50 != 0 || nmail % 999983 == 0) {
    fprintf(stderr, "usage: bench_state [MAILBOXES [DIRECTORY]]\n"
                    "MAILBOXES: a multiple of 50, at least 1000\n");
    return 2;
  }
  ndom = nmail / MAILBOXES_PER_DOMAIN;
  nsub = ndom / DOMAINS_PER_SUB;
  nactive = nmail / 10;
  snprintf(dir, sizeof(dir), "%s/bench_state.XXXXXX",
           argc > 2                        ? argv[2]
           : tmp != NULL && tmp[0] != '\0' ? tmp
                                           : "/tmp");
  if (mkdtemp(dir) == NULL) {
    perror(dir);
    return 1;
  }
  snprintf(path, sizeof(path), "%s/state", dir);

  printf("bench_state: %" PRIu32 " mailboxes, %" PRIu32 " domains, %" PRIu32
         " subscriptions; %" PRIu32 " active this hour\n",
         nmail, ndom, nsub, nactive);
  t = now_s();
  src = build_tree();
  printf("  build tree (engine 1)   %8.3f s\n", now_s() - t);
  t = now_s();
  dst = build_tree();
  printf("  build tree (engine 2)   %8.3f s\n", now_s() - t);
  t = now_s();
  refused = traffic(src);
  printf("  traffic                 %8.3f s  (%" PRIu32 " refused, %" PRIu32
         " script paths)\n",
         now_s() - t, refused, nactive / 100);

  for (i = 0; i < RUNS; i++) {
    t = now_s();
    check(src, obspam_state_save(src, path), "state_save");
    save[i] = now_s() - t;
    t = now_s();
    check(dst, obspam_state_load(dst, path), "state_load");
    load[i] = now_s() - t;
  }
  compare(src, dst);
  if (stat(path, &st) != 0) {
    perror(path);
    return 1;
  }
  printf("  snapshot size           %8.1f MB  (%lld bytes)\n",
         (double)st.st_size / 1e6, (long long)st.st_size);
  report("state_save", save, 1.0);
  report("state_load", load, 2.0);

  unlink(path);
  rmdir(dir);
  obspam_engine_free(src);
  obspam_engine_free(dst);
  return 0;
}
