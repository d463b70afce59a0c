/* SPDX-License-Identifier: MIT */
/* Reloading the configuration while two threads decide.

   The main thread loads two configurations, A and B, in turn, with a
   failed load between them, while two worker threads decide a fixed cycle
   of six kinds of message. A and B are built so that every verdict tells
   which configuration it saw, and so that a decision that mixed them (the
   whitelist or options of one with the tree of the other, a limit of one
   with an object of the other) gives a verdict that fits neither:

     kind  message                            under A          under B
     0     login m, client in A's whitelist   EXEMPT           ACCEPT m LB_M
     1     login m, client in B's whitelist   ACCEPT m LA_M    EXEMPT
     2     unauthenticated sender m           UNKNOWN          ACCEPT m LB_M
     3     login m, other client              ACCEPT m LA_M    ACCEPT m LB_M
     4     script uid 5000, hint d.example    ACCEPT d LA_D    ACCEPT d LB_D
     5     script uid 5001, hint d.example    ACCEPT t LA_T    ACCEPT s LB_S

   In A, d belongs to s and uid 5000 to s, 5001 to t; in B, d belongs to t
   and the uids are swapped, so the same domain moves at every reload. All
   limits are far above what the test sends, so nothing is refused.

   Every object exists in both configurations, so counters must survive
   every reload: each worker checks that the count of m it reads never
   goes down, and at the end the count of each object equals the number of
   accepted messages charged to it, by the configuration each verdict saw.

   Which configuration a racing decision sees is up to the scheduler: a
   worker may run all its decisions while the main thread is off the CPU,
   or only in the moments after one of the two reloads. So every
   GATE_EVERY reloads the main thread stops after the failed load that
   follows a reload of B, and again after one of A, until each worker has
   made one decision, which must be the configuration loaded (the reload
   took effect, the failed load changed nothing). Between the gates the
   decisions race the reloads freely; a worker stops once it has made
   DECISIONS and passed GATES gates, so that it has seen both
   configurations and decided while dozens of reloads were made, whatever
   the timing. Past DECISIONS it decides at most once a reload, so that
   it stays far below every limit however slow the reloads are. */
#include <pthread.h>
#include <stdatomic.h>

#include "testutil.h"

#define LA_M 1000001
#define LB_M 1000002
#define LA_D 2000001
#define LB_D 2000002
#define LA_T 3000001
#define LB_S 3000002

#define DECISIONS 20000 /* per worker, at least */
#define GATE_EVERY 16   /* reloads: a gate after a B and after an A */
#define GATES 6         /* per worker, at least: 3 of each configuration */

static const char CONF_A[] =
    "count-unauthenticated no\n"
    "default mailbox=9000001 domain=9000002 subscription=9000003\n"
    "subscription s uid=5000 subscription=8000001\n"
    "subscription t uid=5001 subscription=3000001\n"
    "domain d.example subscription=s domain=2000001\n"
    "mailbox m@d.example limit=1000001\n"
    "whitelist 192.0.2.0/24\n";

static const char CONF_B[] =
    "count-unauthenticated yes\n"
    "default mailbox=9000001 domain=9000002 subscription=9000003\n"
    "subscription s uid=5001 subscription=3000002\n"
    "subscription t uid=5000 subscription=8000002\n"
    "domain d.example subscription=t domain=2000002 mailbox=1000002\n"
    "mailbox m@d.example\n"
    "whitelist 198.51.100.0/24\n";

/* B with an error on its last line: it must change nothing. */
static const char CONF_BAD[] = "count-unauthenticated yes\n"
                               "subscription s uid=5000 subscription=1\n"
                               "domain d.example subscription=s domain=1\n"
                               "mailbox m@d.example limit=1\n"
                               "whitelist 0.0.0.0/0\n"
                               "mailbox x@nowhere.example\n";

/* The objects a verdict may charge: m@d.example, d.example, s and t. */
#define CHARGED "mdst"

typedef struct worker {
  pthread_t thread;
  obspam_engine *e;
  int id;
  /* What it saw. */
  long decisions, seen_a, seen_b;
  long charged[4]; /* by the letters of CHARGED */
  /* The first inconsistency, or "". */
  char failure[512];
  /* The gates it passed: the last one's number and how many; the
     reloads it has seen the end of, once it has made DECISIONS; done once
     it decides no more. Written under gate.lock. */
  long passed, gates, reloads;
  int done;
} worker;

static atomic_int workers_left;

/* The gate the main thread waits at: its number (0 none yet) and the
   configuration loaded while it is open; and the reloads made so far.
   The workers read the number at every decision without the lock; the
   rest is under the lock. to_main wakes the main thread at a gate,
   to_workers the workers that wait for a reload or a gate. */
static struct {
  pthread_mutex_t lock;
  pthread_cond_t to_main, to_workers;
  atomic_long number;
  int conf; /* 'A' or 'B' */
  long reloads;
} gate = {PTHREAD_MUTEX_INITIALIZER,
          PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER,
          0,
          0,
          0};

static void fail(worker *w, int i, int kind, const obspam_verdict *v,
                 const char *why) {
  char buf[400];

  if (w->failure[0] != '\0')
    return;
  snprintf(w->failure, sizeof(w->failure),
           "worker %d, decision %d, message kind %d: %s; verdict %s", w->id, i,
           kind, why, tu_fmt_verdict(buf, sizeof(buf), v));
}

static int is(const obspam_verdict *v, int action, int kind, const char *object,
              int64_t limit) {
  return v->action == action && v->kind == kind &&
         strcmp(v->object, object) == 0 && v->limit == limit &&
         v->retry_after == 0;
}

static int is_empty(const obspam_verdict *v, int action) {
  return v->action == action && v->kind == -1 && v->object[0] == '\0' &&
         v->limit == 0 && v->count == 0 && v->retry_after == 0;
}

/* The verdict a message of each kind gets under A and under B: an empty
   one where kind is -1, else an acceptance naming the object and its
   limit; and the counters that acceptance charged, by letter (m the
   mailbox, d the domain, s and t the subscriptions). */
typedef struct outcome {
  int action, kind;
  const char *object;
  int64_t limit;
  const char *charged;
} outcome;

#define EMPTY(action)                                                          \
  { (action), -1, "", 0, "" }
#define ON_M(limit, sub)                                                       \
  { OBSPAM_ACCEPT, OBSPAM_MAILBOX, "m@d.example", (limit), "md" sub }

static const outcome OUTCOME[6][2] = {
    {EMPTY(OBSPAM_EXEMPT), ON_M(LB_M, "t")},
    {ON_M(LA_M, "s"), EMPTY(OBSPAM_EXEMPT)},
    {EMPTY(OBSPAM_UNKNOWN), ON_M(LB_M, "t")},
    {ON_M(LA_M, "s"), ON_M(LB_M, "t")},
    {{OBSPAM_ACCEPT, OBSPAM_DOMAIN, "d.example", LA_D, "ds"},
     {OBSPAM_ACCEPT, OBSPAM_DOMAIN, "d.example", LB_D, "dt"}},
    {{OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, "t", LA_T, "t"},
     {OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, "s", LB_S, "s"}},
};

/* Checks one verdict; returns 'A', 'B' or 0 (inconsistent), and counts
   what it charged. */
static int classify(worker *w, int kind, const obspam_verdict *v) {
  for (int c = 0; c < 2; c++) {
    const outcome *o = &OUTCOME[kind][c];

    if (o->kind == -1 ? is_empty(v, o->action)
                      : is(v, o->action, o->kind, o->object, o->limit)) {
      for (const char *p = o->charged; *p != '\0'; p++)
        w->charged[strchr(CHARGED, *p) - CHARGED]++;
      return "AB"[c];
    }
  }
  return 0;
}

static obspam_message message(int kind) {
  switch (kind) {
  case 0:
    return tu_msg(0, "m@d.example", NULL, "192.0.2.1", 1, -1, NULL, NULL, T0);
  case 1:
    return tu_msg(0, "m@d.example", NULL, "198.51.100.1", 1, -1, NULL, NULL,
                  T0);
  case 2:
    return tu_msg(0, NULL, "m@d.example", "203.0.113.1", 1, -1, NULL, NULL, T0);
  case 3:
    return tu_msg(0, "m@d.example", NULL, "203.0.113.1", 1, -1, NULL, NULL, T0);
  case 4:
    return tu_msg(OBSPAM_MSG_SCRIPT, NULL, NULL, NULL, 1, 5000, "d.example",
                  NULL, T0);
  default:
    return tu_msg(OBSPAM_MSG_SCRIPT, NULL, NULL, NULL, 1, 5001, "d.example",
                  NULL, T0);
  }
}

/* Passes gate number with a decision, made while it was open, that saw
   seen: returns whether that is the configuration loaded. */
static int pass_gate(worker *w, long number, int seen) {
  int want;

  pthread_mutex_lock(&gate.lock);
  want = gate.conf;
  w->passed = number;
  w->gates++;
  pthread_cond_signal(&gate.to_main);
  pthread_mutex_unlock(&gate.lock);
  return seen == want;
}

/* Once a worker has made DECISIONS, it decides only after a reload it has
   not seen the end of, or at a gate: at most once a reload, so that a
   main thread slow to reach its gates cannot make it send more than the
   limits allow. */
static void wait_for_reload(worker *w) {
  pthread_mutex_lock(&gate.lock);
  while (gate.reloads == w->reloads && atomic_load(&gate.number) == w->passed)
    pthread_cond_wait(&gate.to_workers, &gate.lock);
  w->reloads = gate.reloads;
  pthread_mutex_unlock(&gate.lock);
}

static void *work(void *arg) {
  worker *w = arg;
  int64_t last_count = 0;
  int i;

  for (i = 0; i < DECISIONS || w->gates < GATES; i++) {
    int kind = (i + w->id) % 6, rc, seen;
    obspam_message m = message(kind);
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    long number;

    if (i >= DECISIONS)
      wait_for_reload(w);
    /* Read before the decision: the main thread waits at this gate until
       the decision is made. */
    number = atomic_load(&gate.number);

    rc = obspam_decide(w->e, &m, &v);
    if (rc != OBSPAM_OK) {
      fail(w, i, kind, &v, obspam_strerror(rc));
      break;
    }
    seen = classify(w, kind, &v);
    if (seen == 0) {
      fail(w, i, kind, &v, "fits neither configuration");
      break;
    }
    w->decisions++;
    w->seen_a += seen == 'A';
    w->seen_b += seen == 'B';
    if (number != w->passed && !pass_gate(w, number, seen)) {
      fail(w, i, kind, &v,
           "a decision between two reloads saw the other configuration");
      break;
    }

    if (i % 64 == 0) {
      obspam_stats st = OBSPAM_STATS_INIT;

      rc = obspam_stats_get(w->e, OBSPAM_MAILBOX, "m@d.example", T0, &st);
      if (rc != OBSPAM_OK || st.count < last_count) {
        fail(w, i, kind, &v,
             rc != OBSPAM_OK ? "stats_get failed"
                             : "the count of m went down across a reload");
        break;
      }
      last_count = st.count;
    }
  }
  pthread_mutex_lock(&gate.lock);
  w->done = 1;
  pthread_cond_signal(&gate.to_main);
  pthread_mutex_unlock(&gate.lock);
  atomic_fetch_sub(&workers_left, 1);
  return NULL;
}

/* Whether the main thread still waits for w at gate number. */
static int waits_for(const worker *w, long number) {
  return !w->done && w->passed != number;
}

/* Opens a gate while conf is loaded (nothing is reloaded until it closes)
   and waits until every worker has passed it or stopped. */
static void hold_gate(worker *w, int conf) {
  long number;

  pthread_mutex_lock(&gate.lock);
  gate.conf = conf;
  number = atomic_load(&gate.number) + 1;
  atomic_store(&gate.number, number);
  pthread_cond_broadcast(&gate.to_workers);
  while (waits_for(&w[0], number) || waits_for(&w[1], number))
    pthread_cond_wait(&gate.to_main, &gate.lock);
  pthread_mutex_unlock(&gate.lock);
}

/* Tells the workers that wait for one that a reload was made. */
static void reloaded(void) {
  pthread_mutex_lock(&gate.lock);
  gate.reloads++;
  pthread_cond_broadcast(&gate.to_workers);
  pthread_mutex_unlock(&gate.lock);
}

static void expect_count(obspam_engine *e, int kind, const char *name,
                         long want) {
  obspam_stats st = STATS(e, kind, name, T0);

  cr_assert_eq(st.count, want, "%s: count %" PRId64 ", expected %ld", name,
               st.count, want);
  cr_assert_eq(st.refused, 0, "%s: %" PRId64 " refusals", name, st.refused);
}

Test(threads_reload, decisions_see_one_configuration_or_the_other,
     .timeout = 600) {
  obspam_engine *e = tu_new();
  worker w[2];
  long reloads = 0, failed_loads = 0;
  int i;

  OK(obspam_load_config_string(e, CONF_A));
  memset(w, 0, sizeof(w));
  atomic_store(&workers_left, 2);
  for (i = 0; i < 2; i++) {
    w[i].e = e;
    w[i].id = i;
    cr_assert_eq(pthread_create(&w[i].thread, NULL, work, &w[i]), 0);
  }
  /* Reload until both workers are done, and at least twice: B, a
     failure, A, a failure, ..., with a gate after the failures that
     follow the first B and A of every GATE_EVERY reloads. */
  while (atomic_load(&workers_left) > 0 || reloads < 2) {
    const char *text = reloads % 2 == 0 ? CONF_B : CONF_A;
    int rc = obspam_load_config_string(e, text);

    cr_assert_eq(rc, OBSPAM_OK, "reload %ld: %s", reloads,
                 obspam_engine_errmsg(e));
    reloads++;
    reloaded();
    rc = obspam_load_config_string(e, CONF_BAD);
    cr_assert_eq(rc, OBSPAM_ESYNTAX);
    failed_loads++;
    if (reloads % GATE_EVERY == 1 || reloads % GATE_EVERY == 2)
      hold_gate(w, reloads % 2 == 1 ? 'B' : 'A');
  }
  for (i = 0; i < 2; i++)
    cr_assert_eq(pthread_join(w[i].thread, NULL), 0);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "<string>:6: unknown domain 'nowhere.example'");

  for (i = 0; i < 2; i++) {
    cr_assert_str_eq(w[i].failure, "", "%s", w[i].failure);
    cr_assert_geq(w[i].decisions, DECISIONS);
    cr_assert_geq(w[i].gates, GATES);
    cr_assert_gt(w[i].seen_a, 0, "worker %d never saw configuration A", i);
    cr_assert_gt(w[i].seen_b, 0, "worker %d never saw configuration B", i);
  }
  cr_assert_geq(reloads, (GATES / 2 - 1) * GATE_EVERY + 2);
  cr_log_info("%ld reloads, %ld failed loads, %ld gates; worker 0 saw A %ld "
              "times, B %ld times; worker 1 saw A %ld, B %ld",
              reloads, failed_loads, atomic_load(&gate.number), w[0].seen_a,
              w[0].seen_b, w[1].seen_a, w[1].seen_b);

  /* Each object's counters hold exactly what the verdicts charged to it,
     across every reload; one more reload keeps them all. */
  for (i = 0; i < 2; i++) {
    OK(obspam_load_config_string(e, i == 0 ? CONF_A : CONF_B));
    expect_count(e, OBSPAM_MAILBOX, "m@d.example",
                 w[0].charged[0] + w[1].charged[0]);
    expect_count(e, OBSPAM_DOMAIN, "d.example",
                 w[0].charged[1] + w[1].charged[1]);
    expect_count(e, OBSPAM_SUBSCRIPTION, "s",
                 w[0].charged[2] + w[1].charged[2]);
    expect_count(e, OBSPAM_SUBSCRIPTION, "t",
                 w[0].charged[3] + w[1].charged[3]);
  }
  obspam_engine_free(e);
}

/* Reloads of a tree of many mailboxes while two threads decide and the
   time goes on (rings empty and are freed, new ones are made): the
   store shares each state with the new tree in slices before the swap
   and moves it after (store_mem.c, mem_carry_prepare), so decisions made
   at any moment of a reload must land in the one state of their
   mailbox. Configuration A declares every mailbox; B only the even ones
   (the odd ones go on as implicit mailboxes) and moves the domain to
   another subscription. Nothing is refused, so at the end each
   mailbox's day count is every recipient its decisions charged. */
#define MB 6000
#define MB_DECISIONS 150000 /* per worker */
#define MB_RELOADS 16       /* at least */

static obspam_engine *mb_engine;
static _Atomic int64_t mb_charged[MB];
static atomic_int mb_done; /* deciders finished */

static char *mb_config(int b) {
  size_t size = (size_t)MB * 64 + 512, n;
  char *text = malloc(size);
  int i;

  cr_assert_not_null(text);
  n = (size_t)snprintf(text, size,
                       "default mailbox=unlimited domain=unlimited "
                       "subscription=unlimited\n"
                       "implicit-mailboxes %d\n"
                       "subscription s\nsubscription t\n"
                       "domain many.example subscription=%s\n",
                       2 * MB, b ? "t" : "s");
  for (i = 0; i < MB; i++)
    if (!b || i % 2 == 0)
      n +=
          (size_t)snprintf(text + n, size - n, "mailbox u%d@many.example\n", i);
  return text;
}

static void *mb_decider(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg;
  char login[64];
  int i;

  for (i = 0; i < MB_DECISIONS; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    /* A sliding range of logins, so that some go idle for over an hour
       while others start. */
    int k = (int)(((unsigned)i / 40 + rand_r(&seed) % (MB / 2)) % MB);

    snprintf(login, sizeof(login), "u%d@many.example", k);
    m.sasl_username = login;
    m.recipients = 1 + rand_r(&seed) % 3;
    m.time = T0 + i / 8; /* under 6 hours: all in the day window */
    cr_assert_eq(obspam_decide(mb_engine, &m, &v), OBSPAM_OK);
    cr_assert_eq(v.action, OBSPAM_ACCEPT, "%s", login);
    atomic_fetch_add(&mb_charged[k], m.recipients);
  }
  atomic_fetch_add(&mb_done, 1);
  return NULL;
}

Test(threads_reload, many_objects_carried_while_deciding, .timeout = 120) {
  char *conf[2] = {mb_config(0), mb_config(1)};
  pthread_t t[2];
  char login[64];
  int i;

  mb_engine = tu_new();
  OK(obspam_load_config_string(mb_engine, conf[0]));
  cr_assert_eq(pthread_create(&t[0], NULL, mb_decider, (void *)3u), 0);
  cr_assert_eq(pthread_create(&t[1], NULL, mb_decider, (void *)11u), 0);
  /* Reloads for as long as the deciders run. */
  for (i = 1; i <= MB_RELOADS || atomic_load(&mb_done) < 2; i++)
    cr_assert_eq(obspam_load_config_string(mb_engine, conf[i % 2]), OBSPAM_OK,
                 "%s", obspam_engine_errmsg(mb_engine));
  pthread_join(t[0], NULL);
  pthread_join(t[1], NULL);
  for (i = 0; i < MB; i++) {
    obspam_stats st = OBSPAM_STATS_INIT;

    snprintf(login, sizeof(login), "u%d@many.example", i);
    OK(obspam_stats_get(mb_engine, OBSPAM_MAILBOX, login, T0 + MB_DECISIONS / 8,
                        &st));
    cr_assert_eq(st.count_day, atomic_load(&mb_charged[i]),
                 "%s: %lld charged, %lld counted", login,
                 (long long)atomic_load(&mb_charged[i]),
                 (long long)st.count_day);
  }
  obspam_engine_free(mb_engine);
  free(conf[0]);
  free(conf[1]);
}
