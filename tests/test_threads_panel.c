/* SPDX-License-Identifier: MIT */
/*
 * Thread stress for what a panel does while mail flows: one thread pages
 * through 100,000 declared mailboxes (and the implicit ones decisions
 * make) with obspam_enumerate, while others decide, add and remove
 * mailboxes (which drops the tree's name order) and read statistics;
 * and resets of one mailbox racing decisions for it. Every page must be
 * in name order and go on from the last name; every declared mailbox
 * must be seen exactly once; the counters must add up exactly.
 */
#include <stdlib.h>

#include "testthreads.h"

#define N_MAILBOXES 100000
#define N_DOMAINS 10
#define N_DECIDERS 3
#define PER_DECIDER 4000
#define PAGE_SIZE 1000

static obspam_engine *e;
static pthread_barrier_t barrier;
static int stop;

static void setup(void) { e = tu_new(); }
static void teardown(void) {
  obspam_engine_free(e);
  e = NULL;
}

/* mailbox i: "uNNNNNN@dK.test", with K = i % N_DOMAINS */
static void mailbox_name(char *buf, size_t size, int i) {
  snprintf(buf, size, "u%06d@d%d.test", i, i % N_DOMAINS);
}

static void load_many(void) {
  size_t cap = (size_t)N_MAILBOXES * 32 + 4096, len = 0;
  char *conf = malloc(cap);

  cr_assert_not_null(conf);
  len += (size_t)snprintf(conf + len, cap - len,
                          "subscription s mailbox=1000000\n");
  for (int k = 0; k < N_DOMAINS; k++)
    len += (size_t)snprintf(conf + len, cap - len,
                            "domain d%d.test subscription=s\n", k);
  for (int i = 0; i < N_MAILBOXES; i++) {
    len += (size_t)snprintf(conf + len, cap - len, "mailbox ");
    mailbox_name(conf + len, cap - len, i);
    len += strlen(conf + len);
    conf[len++] = '\n';
  }
  conf[len] = '\0';
  OK(obspam_load_config_string(e, conf));
  free(conf);
}

static void *decider(void *arg) {
  tu_worker *w = arg;
  char who[64];

  pthread_barrier_wait(&barrier);
  for (int i = 0; i < PER_DECIDER; i++) {
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    obspam_message m;

    /* Declared mailboxes, and logins nobody declared (implicit). */
    if (i % 4 == 3)
      snprintf(who, sizeof(who), "x%d-%d@d%d.test", w->id, i % 50, i % 7);
    else
      mailbox_name(who, sizeof(who), (w->id * 7919 + i * 104729) % N_MAILBOXES);
    m = tu_msg(0, who, NULL, "192.0.2.1", 1, -1, NULL, NULL, T0 + i / 100);
    if (obspam_decide(e, &m, &v) != OBSPAM_OK || v.action != OBSPAM_ACCEPT)
      w->errors++;
    else
      w->accepted++;
  }
  return NULL;
}

/* Adds and removes mailboxes that sort among the declared ones, so that
   the pager meets a dropped name order again and again. */
static void *changer(void *arg) {
  int64_t *errors = arg;
  char who[64];

  pthread_barrier_wait(&barrier);
  for (int i = 0; !__atomic_load_n(&stop, __ATOMIC_RELAXED) && i < 40; i++) {
    snprintf(who, sizeof(who), "u%06d-extra@d0.test", (i * 2477) % N_MAILBOXES);
    if (obspam_add(e, OBSPAM_MAILBOX, who, NULL) != OBSPAM_OK ||
        obspam_remove(e, OBSPAM_MAILBOX, who) != OBSPAM_OK)
      (*errors)++;
  }
  return NULL;
}

typedef struct pager {
  char last[OBSPAM_NAME_MAX + 1];
  int64_t declared_seen, total_seen, out_of_order, bad_stats;
  unsigned char *seen; /* by declared mailbox */
  int got;
} pager;

static int on_object(int kind, const char *name, const obspam_stats *st,
                     void *ud) {
  pager *p = ud;
  int i, k;
  char tail[16];

  if (kind != OBSPAM_MAILBOX || strcmp(name, p->last) <= 0)
    p->out_of_order++;
  if (st->struct_size != sizeof(*st) || st->limit != 1000000 || st->count < 0)
    p->bad_stats++;
  snprintf(p->last, sizeof(p->last), "%s", name);
  p->total_seen++;
  p->got++;
  /* A declared mailbox: "u" six digits "@d" K ".test", nothing more. */
  if (sscanf(name, "u%6d@d%d%15s", &i, &k, tail) == 3 &&
      strcmp(tail, ".test") == 0 && i >= 0 && i < N_MAILBOXES &&
      k == i % N_DOMAINS) {
    p->seen[i]++;
    p->declared_seen++;
  }
  return 0;
}

static void *page_through(void *arg) {
  pager *p = arg;

  pthread_barrier_wait(&barrier);
  p->last[0] = '\0';
  do {
    char after[OBSPAM_NAME_MAX + 1];

    snprintf(after, sizeof(after), "%s", p->last);
    p->got = 0;
    if (obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, after, PAGE_SIZE, 0,
                         on_object, p) != OBSPAM_OK)
      p->bad_stats++;
  } while (p->got == PAGE_SIZE);
  return NULL;
}

Test(threads_panel, paging_while_deciding, .init = setup, .fini = teardown,
     .timeout = 600) {
  pthread_t d[N_DECIDERS], c, pg;
  tu_worker w[N_DECIDERS];
  pager p;
  int64_t changer_errors = 0, accepted = 0;
  obspam_stats st = OBSPAM_STATS_INIT;

  load_many();
  memset(&p, 0, sizeof(p));
  p.seen = calloc(N_MAILBOXES, 1);
  cr_assert_not_null(p.seen);
  pthread_barrier_init(&barrier, NULL, N_DECIDERS + 2);
  tu_start_workers(d, w, N_DECIDERS, decider, e, &barrier);
  pthread_create(&c, NULL, changer, &changer_errors);
  pthread_create(&pg, NULL, page_through, &p);
  pthread_join(pg, NULL);
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  accepted = tu_join_workers(d, w, N_DECIDERS, "decider");
  pthread_join(c, NULL);
  pthread_barrier_destroy(&barrier);

  cr_assert_eq(changer_errors, 0);
  cr_assert_eq(p.out_of_order, 0, "%" PRId64 " names out of order",
               p.out_of_order);
  cr_assert_eq(p.bad_stats, 0);
  cr_assert_eq(p.declared_seen, N_MAILBOXES, "saw %" PRId64 " declared",
               p.declared_seen);
  for (int i = 0; i < N_MAILBOXES; i++)
    cr_assert_eq(p.seen[i], 1, "mailbox %d seen %d times", i, p.seen[i]);
  free(p.seen);
  /* Every decision is on the subscription. */
  OK(obspam_stats_get(e, OBSPAM_SUBSCRIPTION, "s", T0 + 60, &st));
  cr_assert_eq(accepted, N_DECIDERS * PER_DECIDER);
  cr_assert_eq(st.count, accepted, "count %" PRId64 ", accepted %" PRId64,
               st.count, accepted);
}

/* ---- resets racing decisions --------------------------------------------- */

#define LIMIT 50
#define RESETS 200

static void *resetter(void *arg) {
  int64_t *errors = arg;

  pthread_barrier_wait(&barrier);
  for (int i = 0; i < RESETS; i++)
    if (obspam_reset(e, OBSPAM_MAILBOX, "m@d.test", T0 + 1) != OBSPAM_OK)
      (*errors)++;
  return NULL;
}

static void *hammer(void *arg) {
  tu_worker *w = arg;

  pthread_barrier_wait(&barrier);
  for (int i = 0; i < PER_DECIDER; i++) {
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    obspam_message m =
        tu_msg(0, "m@d.test", NULL, "192.0.2.1", 1, -1, NULL, NULL, T0 + 1);

    if (obspam_decide(e, &m, &v) != OBSPAM_OK)
      w->errors++;
    else if (v.action == OBSPAM_ACCEPT)
      w->accepted++;
    else if (v.action != OBSPAM_REFUSE || v.count != LIMIT)
      w->errors++; /* a refusal names the mailbox, full */
  }
  return NULL;
}

/* Reads the mailbox while it is reset and charged: its window never holds
   more than its limit. */
static void *watcher(void *arg) {
  int64_t *errors = arg;

  pthread_barrier_wait(&barrier);
  while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
    obspam_stats st = OBSPAM_STATS_INIT;

    if (obspam_stats_get(e, OBSPAM_MAILBOX, "m@d.test", T0 + 1, &st) !=
            OBSPAM_OK ||
        st.count < 0 || st.count > LIMIT || st.count_day > LIMIT ||
        (st.last_reset != 0 && st.last_reset != T0 + 1))
      (*errors)++;
  }
  return NULL;
}

static void sum_hours(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  int64_t *s = ud;

  (void)hour;
  s[0] += sent;
  s[1] += refused;
}

Test(threads_panel, resets_racing_decisions, .init = setup, .fini = teardown,
     .timeout = 600) {
  pthread_t h[N_DECIDERS], r, wt;
  tu_worker w[N_DECIDERS];
  int64_t reset_errors = 0, watch_errors = 0, accepted = 0, hist[2] = {0, 0};
  obspam_stats st = OBSPAM_STATS_INIT;

  OK(obspam_load_config_string(e, "subscription s\n"
                                  "domain d.test subscription=s\n"
                                  "mailbox m@d.test limit=50/h,50/d\n"));
  __atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
  pthread_barrier_init(&barrier, NULL, N_DECIDERS + 2);
  tu_start_workers(h, w, N_DECIDERS, hammer, e, &barrier);
  pthread_create(&r, NULL, resetter, &reset_errors);
  pthread_create(&wt, NULL, watcher, &watch_errors);
  accepted = tu_join_workers(h, w, N_DECIDERS, "hammer");
  pthread_join(r, NULL);
  __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
  pthread_join(wt, NULL);
  pthread_barrier_destroy(&barrier);
  cr_assert_eq(reset_errors, 0);
  cr_assert_eq(watch_errors, 0);

  /* The history keeps every message, whatever the resets emptied; the
     domain, never reset, counted them all. */
  OK(obspam_history(e, OBSPAM_MAILBOX, "m@d.test", 0, INT64_MAX, sum_hours,
                    hist));
  cr_assert_eq(hist[0], accepted);
  cr_assert_eq(hist[0] + hist[1], N_DECIDERS * PER_DECIDER);
  cr_assert(accepted >= LIMIT, "accepted %" PRId64, accepted);
  OK(obspam_stats_get(e, OBSPAM_DOMAIN, "d.test", T0 + 1, &st));
  cr_assert_eq(st.count, accepted);
  /* After one more reset the mailbox takes exactly its limit again. */
  OK(obspam_reset(e, OBSPAM_MAILBOX, "m@d.test", T0 + 1));
  for (int i = 0; i < LIMIT + 1; i++) {
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    obspam_message m =
        tu_msg(0, "m@d.test", NULL, "192.0.2.1", 1, -1, NULL, NULL, T0 + 1);

    OK(obspam_decide(e, &m, &v));
    cr_assert_eq(v.action, i < LIMIT ? OBSPAM_ACCEPT : OBSPAM_REFUSE);
  }
}
