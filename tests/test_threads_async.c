/* SPDX-License-Identifier: MIT */
/*
 * obspam_decide_start and the Redis store's pool under threads; run under
 * ThreadSanitizer by tests/run.sh. The Redis suites start a private
 * redis-server on a free 127.0.0.1 port (none is the system's) and stop
 * it; they are skipped, saying so, where redis-server is not installed.
 *
 *   - in memory, 8 threads start batches (a dry message in each): done is
 *     called once per batch, before obspam_decide_start returns, and
 *     exactly the subscription's limit is accepted;
 *   - on Redis, the same with the batches decided by the engine's
 *     threads: done once per batch, on another thread, and exactly the
 *     limit accepted; the dry messages charge nothing;
 *   - on Redis with a pool of 1 and of 4 connections, 8 threads calling
 *     obspam_decide accept exactly the limit;
 *   - batches still queued when obspam_set_store or obspam_engine_free
 *     is called are decided first, and each done is called once;
 *   - on Redis, a batch of 600 messages (three exchanges) and 10 batches
 *     of 60 started at once are decided in order, each done once;
 *   - Redis frozen and thawed while 4 threads decide and 1 starts
 *     batches: every call succeeds (on the local counters meanwhile), and
 *     once Redis is back the ledger is added: Redis counts every decision
 *     (and, for each outage, at most the exchange each connection had in
 *     flight when it froze once more).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testthreads.h"

#define N_THREADS 8
#define PER_THREAD 600
#define PER_CALL 20 /* wider than the library's in-memory group */
#define N_MAILBOXES 64
#define LIMIT 500

static const char conf[] = "subscription s uid=5000 subscription=500\n"
                           "domain d0.test subscription=s\n"
                           "domain d1.test subscription=s\n";
static char mbox[N_MAILBOXES][32];

/* ---- a private redis-server ---------------------------------------------- */

static pid_t redis_pid;
static int redis_port;

static int free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int s = socket(AF_INET, SOCK_STREAM, 0), port;

  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
  port = ntohs(a.sin_port);
  close(s);
  return port;
}

/* Whether the server on redis_port answers PING. */
static int pong(void) {
  struct sockaddr_in a;
  char buf[16] = {0};
  int s = socket(AF_INET, SOCK_STREAM, 0), ok = 0;

  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)redis_port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, (struct sockaddr *)&a, sizeof a) == 0 &&
      write(s, "PING\r\n", 6) == 6 && read(s, buf, sizeof buf - 1) > 0)
    ok = strncmp(buf, "+PONG", 5) == 0;
  close(s);
  return ok;
}

/* Starts redis-server, or skips the test when it is not installed. */
static void redis_start(void) {
  char port[16];
  int i;

  if (system("command -v redis-server >/dev/null 2>&1") != 0)
    cr_skip_test("redis-server is not installed");
  redis_port = free_port();
  snprintf(port, sizeof port, "%d", redis_port);
  redis_pid = fork();
  cr_assert_neq(redis_pid, -1);
  if (redis_pid == 0) {
    execlp("redis-server", "redis-server", "--bind", "127.0.0.1", "--port",
           port, "--save", "", "--appendonly", "no", "--logfile", "/dev/null",
           (char *)NULL);
    _exit(127);
  }
  /* Ready when it answers; 10 seconds at most. */
  for (i = 0; i < 1000 && !pong(); i++)
    usleep(10000);
  cr_assert(pong(), "redis-server on 127.0.0.1:%d did not answer", redis_port);
}

static void redis_stop(void) {
  if (redis_pid > 0) {
    kill(redis_pid, SIGTERM);
    waitpid(redis_pid, NULL, 0);
    redis_pid = 0;
  }
}

static obspam_engine *engine(int pool) {
  char uri[64];
  obspam_engine *e = tu_new_conf(conf);

  for (int i = 0; i < N_MAILBOXES; i++) {
    snprintf(mbox[i], sizeof mbox[i], "m%d@d%d.test", i, i % 2);
    OK(obspam_add(e, OBSPAM_MAILBOX, mbox[i], NULL));
  }
  if (pool > 0) {
    snprintf(uri, sizeof uri, "redis://127.0.0.1:%d?pool=%d", redis_port, pool);
    OK(obspam_set_store(e, uri, NULL));
    /* The counts asserted are Redis's: a loaded machine (ctest -j2 beside
       the sanitizers) must not make an exchange outlast the default 200 ms
       and fall back to the local counters. The frozen-Redis test sets its
       own timeout. */
    OK(obspam_set_option(e, OBSPAM_OPT_STORE_TIMEOUT_MS, 5000));
  }
  return e;
}

/* ---- batches started by many threads ------------------------------------- */

typedef struct batch_call {
  tu_batch b;
  uint32_t how[TU_BATCH_MAX];
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int calls; /* done's calls */
  pthread_t by;
} batch_call;

static void on_done(void *arg) {
  batch_call *c = arg;

  pthread_mutex_lock(&c->lock);
  c->calls++;
  c->by = pthread_self();
  pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

/* PER_THREAD messages, PER_CALL per batch, the third of each a dry one. */
static void *starter(void *arg) {
  tu_worker *w = arg;
  batch_call *c = calloc(1, sizeof *c);

  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  pthread_barrier_wait(w->barrier);
  for (int i = 0; i < PER_THREAD; i += PER_CALL) {
    int n = PER_THREAD - i < PER_CALL ? PER_THREAD - i : PER_CALL, calls;

    for (int k = 0; k < n; k++) {
      const char *login = mbox[(w->id * 7 + i + k) % N_MAILBOXES];

      c->b.m[k] = tu_msg(0, login, login, NULL, 1, -1, NULL, NULL, T0);
      c->how[k] = k == 2 ? OBSPAM_DECIDE_DRY : 0;
    }
    tu_batch_ready(&c->b, (size_t)n);
    pthread_mutex_lock(&c->lock);
    c->calls = 0;
    pthread_mutex_unlock(&c->lock);
    if (obspam_decide_start(w->e, c->b.pm, c->b.pv, c->b.rc, c->how, (size_t)n,
                            on_done, c) != OBSPAM_OK) {
      w->errors++;
      continue;
    }
    pthread_mutex_lock(&c->lock);
    if (c->calls == 1)
      w->inline_done++;
    while (c->calls == 0)
      pthread_cond_wait(&c->cond, &c->lock);
    calls = c->calls;
    if (!pthread_equal(c->by, pthread_self()))
      w->other_thread++;
    pthread_mutex_unlock(&c->lock);
    if (calls != 1)
      w->extra_calls++;
    for (int k = 0; k < n; k++) {
      obspam_verdict *v = &c->b.v[k];

      if (c->b.rc[k] != OBSPAM_OK)
        w->bad++;
      else if (k == 2)
        w->dry_ok += v->action == OBSPAM_ACCEPT || v->action == OBSPAM_REFUSE;
      else if (v->action == OBSPAM_ACCEPT)
        w->accepted++;
      else if (v->action == OBSPAM_REFUSE && v->kind == OBSPAM_SUBSCRIPTION &&
               v->limit == LIMIT && v->count == LIMIT)
        w->refused++;
      else
        w->bad++;
    }
  }
  /* Every done was called before its wait ended: nothing touches c now. */
  pthread_mutex_destroy(&c->lock);
  pthread_cond_destroy(&c->cond);
  free(c);
  return NULL;
}

/* Runs the starters on e and checks the sums; shared: decided on Redis. */
static void run_starters(obspam_engine *e, int shared) {
  tu_worker w[N_THREADS];
  pthread_t th[N_THREADS];
  pthread_barrier_t barrier;
  int64_t accepted, refused = 0, dry = 0, inline_done = 0, other = 0;
  const int64_t batches = (PER_THREAD + PER_CALL - 1) / PER_CALL;
  const int64_t drys = batches;

  cr_assert_eq(pthread_barrier_init(&barrier, NULL, N_THREADS), 0);
  tu_start_workers(th, w, N_THREADS, starter, e, &barrier);
  accepted = tu_join_workers(th, w, N_THREADS, "thread");
  for (int i = 0; i < N_THREADS; i++) {
    cr_assert_eq(w[i].extra_calls, 0, "thread %d: done called twice", i);
    refused += w[i].refused;
    dry += w[i].dry_ok;
    inline_done += w[i].inline_done;
    other += w[i].other_thread;
  }
  pthread_barrier_destroy(&barrier);
  cr_assert_eq(accepted, LIMIT);
  cr_assert_eq(refused, N_THREADS * (PER_THREAD - drys) - LIMIT);
  cr_assert_eq(dry, N_THREADS * drys);
  if (shared) {
    /* Decided by the engine's threads, never the caller's. */
    cr_assert_eq(other, N_THREADS * batches);
  } else {
    cr_assert_eq(inline_done, N_THREADS * batches);
    cr_assert_eq(other, 0);
  }
  obspam_stats s = STATS(e, OBSPAM_SUBSCRIPTION, "s", T0 + 59);
  cr_assert_eq(s.count, LIMIT);
}

Test(threads_async, in_memory_done_inline_and_exact_limit) {
  obspam_engine *e = engine(0);

  run_starters(e, 0);
  obspam_engine_free(e);
}

Test(threads_async, redis_engine_threads_and_exact_limit, .fini = redis_stop) {
  obspam_engine *e;

  redis_start();
  e = engine(4);
  run_starters(e, 1);
  obspam_engine_free(e);
}

/* ---- the pool under synchronous callers ---------------------------------- */

static void *decider(void *arg) {
  tu_worker *c = arg;

  pthread_barrier_wait(c->barrier);
  for (int i = 0; i < 100; i++) {
    const char *login = mbox[(c->id * 11 + i) % N_MAILBOXES];
    obspam_message m = tu_msg(0, login, login, NULL, 1, -1, NULL, NULL, T0);
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    if (obspam_decide(c->e, &m, &v) != OBSPAM_OK)
      c->errors++;
    else if (v.action == OBSPAM_ACCEPT)
      c->accepted++;
    else
      c->refused++;
  }
  return NULL;
}

static void pool_run(int pool) {
  obspam_engine *e = engine(pool);
  tu_worker c[N_THREADS];
  pthread_t th[N_THREADS];
  pthread_barrier_t barrier;
  int64_t accepted, st[4];

  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "s", OBSPAM_SUBSCRIPTION, 250));
  cr_assert_eq(pthread_barrier_init(&barrier, NULL, N_THREADS), 0);
  tu_start_workers(th, c, N_THREADS, decider, e, &barrier);
  accepted = tu_join_workers(th, c, N_THREADS, "caller");
  pthread_barrier_destroy(&barrier);
  cr_assert_eq(accepted, 250, "pool %d: %" PRId64 " accepted", pool, accepted);
  OK(obspam_store_status(e, &st[0], &st[1], &st[2], &st[3]));
  cr_assert(st[0] == 1 && st[1] == 1 && st[2] == 0 && st[3] == 0,
            "pool %d: shared %" PRId64 " up %" PRId64 " episodes %" PRId64
            " fallbacks %" PRId64,
            pool, st[0], st[1], st[2], st[3]);
  /* The next pool size starts from empty counters. */
  OK(obspam_reset(e, OBSPAM_SUBSCRIPTION, "s", T0));
  obspam_engine_free(e);
}

Test(threads_async, redis_pool_of_one_and_of_four, .fini = redis_stop) {
  redis_start();
  pool_run(1);
  pool_run(4);
}

/* ---- what is queued when the store changes or the engine goes ------------ */

#define QUEUED 40

typedef struct counted {
  int calls;
} counted;

static void count_done(void *arg) {
  __atomic_add_fetch(&((counted *)arg)->calls, 1, __ATOMIC_RELAXED);
}

/* Starts QUEUED one-message batches on e; each done adds to its own
   counter. */
static void start_many(obspam_engine *e, tu_batch *b, counted *cnt) {
  for (int i = 0; i < QUEUED; i++) {
    b[i].m[0] = tu_msg(0, mbox[i % N_MAILBOXES], mbox[i % N_MAILBOXES], NULL, 1,
                       -1, NULL, NULL, T0);
    tu_batch_ready(&b[i], 1);
    cnt[i].calls = 0;
    OK(obspam_decide_start(e, b[i].pm, b[i].pv, b[i].rc, NULL, 1, count_done,
                           &cnt[i]));
  }
}

Test(threads_async, queued_batches_finish_before_set_store_and_free,
     .fini = redis_stop) {
  static tu_batch b[QUEUED];
  static counted cnt[QUEUED];
  obspam_engine *e;

  redis_start();
  e = engine(2);
  start_many(e, b, cnt);
  OK(obspam_set_store(e, NULL, NULL));
  for (int i = 0; i < QUEUED; i++) {
    cr_assert_eq(__atomic_load_n(&cnt[i].calls, __ATOMIC_RELAXED), 1,
                 "batch %d: done called %d times before set_store returned", i,
                 cnt[i].calls);
    cr_assert_eq(b[i].rc[0], OBSPAM_OK);
    cr_assert_eq(b[i].v[0].action, OBSPAM_ACCEPT);
  }
  obspam_engine_free(e);

  e = engine(2);
  start_many(e, b, cnt);
  obspam_engine_free(e);
  for (int i = 0; i < QUEUED; i++)
    cr_assert_eq(__atomic_load_n(&cnt[i].calls, __ATOMIC_RELAXED), 1,
                 "batch %d: done called %d times before engine_free returned",
                 i, cnt[i].calls);
}

/* ---- an outage under threads --------------------------------------------- */

static volatile int outage_over;

static void *outage_decider(void *arg) {
  tu_worker *c = arg;

  for (int i = 0; !__atomic_load_n(&outage_over, __ATOMIC_RELAXED); i++) {
    const char *login = mbox[(c->id * 13 + i) % N_MAILBOXES];
    obspam_message m = tu_msg(0, login, login, NULL, 1, -1, NULL, NULL, T0);
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    if (obspam_decide(c->e, &m, &v) != OBSPAM_OK || v.action != OBSPAM_ACCEPT)
      c->errors++;
    else
      c->decided++;
    usleep(1000);
  }
  return NULL;
}

static void *outage_starter(void *arg) {
  tu_worker *c = arg;
  batch_call *b = calloc(1, sizeof *b);

  pthread_mutex_init(&b->lock, NULL);
  pthread_cond_init(&b->cond, NULL);
  while (!__atomic_load_n(&outage_over, __ATOMIC_RELAXED)) {
    for (int k = 0; k < 8; k++)
      b->b.m[k] = tu_msg(0, mbox[k], mbox[k], NULL, 1, -1, NULL, NULL, T0);
    tu_batch_ready(&b->b, 8);
    b->calls = 0;
    if (obspam_decide_start(c->e, b->b.pm, b->b.pv, b->b.rc, NULL, 8, on_done,
                            b) != OBSPAM_OK) {
      c->errors++;
      continue;
    }
    pthread_mutex_lock(&b->lock);
    while (b->calls == 0)
      pthread_cond_wait(&b->cond, &b->lock);
    pthread_mutex_unlock(&b->lock);
    for (int k = 0; k < 8; k++)
      if (b->b.rc[k] != OBSPAM_OK || b->b.v[k].action != OBSPAM_ACCEPT)
        c->errors++;
      else
        c->decided++;
    usleep(2000);
  }
  pthread_mutex_destroy(&b->lock);
  pthread_cond_destroy(&b->cond);
  free(b);
  return NULL;
}

Test(threads_async, redis_frozen_and_thawed_under_threads, .fini = redis_stop) {
  tu_worker c[5];
  pthread_t th[5];
  obspam_engine *e;
  int64_t decided = 0, st[4], pending = -1, added = 0, dropped = -1;

  redis_start();
  e = engine(4);
  OK(obspam_set_option(e, OBSPAM_OPT_STORE_TIMEOUT_MS, 100));
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "s", OBSPAM_SUBSCRIPTION,
                      OBSPAM_UNLIMITED));
  __atomic_store_n(&outage_over, 0, __ATOMIC_RELAXED);
  /* Four threads decide one by one, a fifth starts batches. */
  tu_start_workers(th, c, 4, outage_decider, e, NULL);
  tu_start_workers(th + 4, c + 4, 1, outage_starter, e, NULL);
  usleep(200 * 1000);
  kill(redis_pid, SIGSTOP);
  usleep(600 * 1000);
  kill(redis_pid, SIGCONT);
  usleep(1500 * 1000);
  __atomic_store_n(&outage_over, 1, __ATOMIC_RELAXED);
  tu_join_workers(th, c, 5, "caller");
  for (int i = 0; i < 5; i++)
    decided += c[i].decided;
  /* Back on Redis, with the ledger added: a few more calls at most. */
  for (int i = 0; i < 100; i++) {
    obspam_message m = tu_msg(0, mbox[0], mbox[0], NULL, 1, -1, NULL, NULL, T0);
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    OK(obspam_check(e, &m, &v));
    OK(obspam_store_backlog(e, &pending, &added, &dropped, NULL, NULL));
    OK(obspam_store_status(e, &st[0], &st[1], &st[2], &st[3]));
    if (st[1] == 1 && pending == 0)
      break;
    usleep(50 * 1000);
  }
  cr_assert(st[1] == 1 && pending == 0 && dropped == 0,
            "up %" PRId64 " pending %" PRId64 " dropped %" PRId64, st[1],
            pending, dropped);
  cr_assert(st[2] >= 1 && st[3] > 0 && added == st[3],
            "episodes %" PRId64 ", fallbacks %" PRId64
            ", ledger added %" PRId64,
            st[2], st[3], added);
  obspam_stats s = STATS(e, OBSPAM_SUBSCRIPTION, "s", T0 + 59);
  /* An exchange in flight when Redis froze may still be made once it
     thaws, and its charges are in the ledger too: at most the 8 messages
     of a batch on each of the 4 connections, each outage. */
  cr_assert(s.count >= decided && s.count <= decided + 4 * 8 * st[2],
            "Redis counts %" PRId64 " for %" PRId64 " decided, %" PRId64
            " episodes",
            s.count, decided, st[2]);
  obspam_engine_free(e);
}

/* ---- batches larger than one exchange ------------------------------------ */

#define BIG 600

Test(threads_async, redis_batches_larger_than_an_exchange, .fini = redis_stop) {
  static obspam_message m[BIG];
  static obspam_verdict v[BIG];
  static const obspam_message *pm[BIG];
  static obspam_verdict *pv[BIG];
  static int rc[BIG];
  static counted cnt[10];
  obspam_engine *e;
  int accepted = 0, refused = 0;

  redis_start();
  e = engine(2);
  for (int i = 0; i < BIG; i++) {
    obspam_verdict v0 = OBSPAM_VERDICT_INIT;

    m[i] = tu_msg(0, mbox[i % N_MAILBOXES], mbox[i % N_MAILBOXES], NULL, 1, -1,
                  NULL, NULL, T0);
    v[i] = v0;
    pm[i] = &m[i];
    pv[i] = &v[i];
  }
  /* 600 messages: three exchanges, in order; the subscription's 500. */
  RC(obspam_decide_batch(e, pm, pv, rc, BIG), OBSPAM_OK);
  for (int i = 0; i < BIG; i++) {
    cr_assert_eq(rc[i], OBSPAM_OK);
    if (v[i].action == OBSPAM_ACCEPT) {
      cr_assert_eq(i, accepted, "message %d accepted after a refusal", i);
      accepted++;
    } else {
      cr_assert(v[i].action == OBSPAM_REFUSE && v[i].count == LIMIT);
      refused++;
    }
  }
  cr_assert_eq(accepted, LIMIT);
  cr_assert_eq(refused, BIG - LIMIT);
  /* 10 batches of 60 queued at once: the engine's threads take at most
     256 messages at a time; each done once, every message refused now. */
  for (int i = 0; i < BIG; i++) {
    obspam_verdict v0 = OBSPAM_VERDICT_INIT;

    v[i] = v0;
    rc[i] = -99;
  }
  for (int i = 0; i < 10; i++) {
    cnt[i].calls = 0;
    OK(obspam_decide_start(e, pm + 60 * i, pv + 60 * i, rc + 60 * i, NULL, 60,
                           count_done, &cnt[i]));
  }
  obspam_engine_free(e);
  for (int i = 0; i < 10; i++)
    cr_assert_eq(__atomic_load_n(&cnt[i].calls, __ATOMIC_RELAXED), 1);
  for (int i = 0; i < BIG; i++)
    cr_assert(rc[i] == OBSPAM_OK && v[i].action == OBSPAM_REFUSE,
              "message %d: rc %d action %d", i, rc[i], v[i].action);
}

/* An exempt mailing-list delivery in a batch on Redis: recorded on its
   own, the decisions around it still in the batch's one exchange. */
Test(threads_async, redis_batch_with_an_exempt_list_delivery,
     .fini = redis_stop) {
  obspam_message m[3];
  obspam_verdict v[3];
  const obspam_message *pm[3];
  obspam_verdict *pv[3];
  obspam_stats st = OBSPAM_STATS_INIT;
  int rc[3];
  obspam_engine *e;

  redis_start();
  e = engine(1);
  for (int i = 0; i < 3; i++) {
    obspam_verdict v0 = OBSPAM_VERDICT_INIT;

    m[i] = tu_msg(i == 1 ? OBSPAM_MSG_MAILING_LIST : 0, mbox[0], mbox[0], NULL,
                  1, -1, NULL, NULL, T0);
    v[i] = v0;
    pm[i] = &m[i];
    pv[i] = &v[i];
  }
  RC(obspam_decide_batch(e, pm, pv, rc, 3), OBSPAM_OK);
  cr_assert_eq(v[0].action, OBSPAM_ACCEPT);
  cr_assert_eq(v[1].action, OBSPAM_EXEMPT);
  cr_assert_eq(v[2].action, OBSPAM_ACCEPT);
  cr_assert_eq(v[2].count, 1);
  OK(obspam_stats_get(e, OBSPAM_MAILBOX, mbox[0], T0, &st));
  cr_assert_eq(st.count, 2);
  cr_assert_eq(st.forwarded, 0);
  cr_assert_eq(st.list_deliveries, 1);
  obspam_engine_free(e);
}
