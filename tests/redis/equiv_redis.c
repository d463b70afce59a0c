/* SPDX-License-Identifier: MIT */
/* The two stores answer alike: for each seed a random tree with random
   limits in every window (minute, hour, day) and random recipients caps is
   given to two engines, one counting in memory and one in Redis, and the
   same random stream of messages is decided by both. Every verdict field
   must be the same; so must, now and then and at the end, the statistics
   of every object (each window's limit and count), the report over the
   whole stream (with each row's window), every object's history and the
   notices. Limits, caps and the count unit change now and then during the
   stream, and objects are reset (obspam_reset), as an administrator
   would do.

     equiv_redis URI [SEEDS [STEPS]]

   Run by tests/redis/run.sh; prints the first differences and exits 1
   when there is any. Each seed has a key prefix of its own. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "obspam.h"
#include "testbase.h"

static int failures;

/* One line of text: a verdict, a row, a notice, with a name of up to 327
   bytes. */
#define LINE 640

#define EXPECT(cond, ...)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      if (++failures <= 20) {                                                  \
        printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                 \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
      }                                                                        \
    }                                                                          \
  } while (0)

/* splitmix64 */
static uint64_t rng;

static uint64_t rnd(void) { return tu_splitmix64(&rng); }

static int rn(int n) { return (int)(rnd() % (uint64_t)n); }

#define NSUB 3
#define NDOM 2 /* per subscription */
#define NMBX 3 /* per domain, declared; one more is implicit */

static const int64_t windows[3] = {OBSPAM_WINDOW_MINUTE, OBSPAM_WINDOW_HOUR,
                                   OBSPAM_WINDOW_DAY};

/* Objects by kind and name, to ask both engines about. */
typedef struct object {
  int kind;
  char name[64];
} object;

static object objs[64];
static int nobjs;

/* Refusals seen, by the window named: minute, hour, day, none (the cap
   or forbidden scripts); and acceptances. The stream must reach each. */
static long refusals[4], accepted, resets;

static void both(int rc_mem, int rc_redis, const char *what) {
  EXPECT(rc_mem == OBSPAM_OK && rc_redis == OBSPAM_OK, "%s: %d %d", what,
         rc_mem, rc_redis);
}

/* A random limit for window w: small enough to be reached. */
static int64_t some_limit(int w, int inherit_ok) {
  int r = rn(10);

  if (r == 0)
    return OBSPAM_UNLIMITED;
  if (r <= 2 && inherit_ok)
    return OBSPAM_INHERIT;
  return w == 0 ? rn(6) : w == 1 ? 2 + rn(12) : 5 + rn(25);
}

static int64_t some_cap(int inherit_ok) {
  int r = rn(6);

  if (r == 0)
    return OBSPAM_UNLIMITED;
  if (r <= 2 && inherit_ok)
    return OBSPAM_INHERIT;
  return 1 + rn(4);
}

/* Sets one random value (a limit in one window, or a cap) on object o of
   both engines. */
static void change(obspam_engine *e[2], const object *o) {
  int which, w, i, rc[2];
  int64_t v;

  /* The limits an object may set: its own kind and those below it. */
  which = o->kind + rn(OBSPAM_MAILBOX - o->kind + 1);
  if (rn(4) == 0) {
    v = some_cap(o->kind != OBSPAM_SERVER);
    for (i = 0; i < 2; i++)
      rc[i] = obspam_set_max_recipients(
          e[i], o->kind, o->kind == OBSPAM_SERVER ? NULL : o->name, v);
    both(rc[0], rc[1], "set_max_recipients");
    return;
  }
  if (o->kind == OBSPAM_SERVER)
    which = OBSPAM_SUBSCRIPTION + rn(3);
  w = rn(3);
  v = some_limit(w, o->kind != OBSPAM_SERVER);
  for (i = 0; i < 2; i++)
    rc[i] = obspam_set_window_limit(e[i], o->kind,
                                    o->kind == OBSPAM_SERVER ? NULL : o->name,
                                    which, windows[w], v);
  both(rc[0], rc[1], "set_window_limit");
}

/* The same tree in both engines, with random values. */
static void build(obspam_engine *e[2]) {
  static const object server = {OBSPAM_SERVER, ""};
  int s, d, m, i, k, rc[2];
  char sub[32], dom[32], mbx[64];

  nobjs = 0;
  for (s = 0; s < NSUB; s++) {
    snprintf(sub, sizeof(sub), "s%d", s);
    for (i = 0; i < 2; i++) {
      rc[i] = obspam_add(e[i], OBSPAM_SUBSCRIPTION, sub, NULL);
      if (rc[i] == OBSPAM_OK)
        rc[i] = obspam_set_uid(e[i], sub, 1000 + s);
      if (rc[i] == OBSPAM_OK)
        rc[i] =
            obspam_set_scripts_allowed(e[i], OBSPAM_SUBSCRIPTION, sub, s != 2);
    }
    both(rc[0], rc[1], "add subscription");
    objs[nobjs].kind = OBSPAM_SUBSCRIPTION;
    snprintf(objs[nobjs++].name, sizeof(objs[0].name), "%s", sub);
    for (d = 0; d < NDOM; d++) {
      snprintf(dom, sizeof(dom), "d%d%d.example", s, d);
      for (i = 0; i < 2; i++)
        rc[i] = obspam_add(e[i], OBSPAM_DOMAIN, dom, sub);
      both(rc[0], rc[1], "add domain");
      objs[nobjs].kind = OBSPAM_DOMAIN;
      snprintf(objs[nobjs++].name, sizeof(objs[0].name), "%s", dom);
      for (m = 0; m < NMBX; m++) {
        snprintf(mbx, sizeof(mbx), "m%d@%s", m, dom);
        for (i = 0; i < 2; i++)
          rc[i] = obspam_add(e[i], OBSPAM_MAILBOX, mbx, NULL);
        both(rc[0], rc[1], "add mailbox");
        objs[nobjs].kind = OBSPAM_MAILBOX;
        snprintf(objs[nobjs++].name, sizeof(objs[0].name), "%s", mbx);
      }
    }
  }
  /* Server defaults first, then a few values anywhere. */
  for (k = 0; k < 4; k++)
    change(e, &server);
  for (k = 0; k < 3 * nobjs; k++)
    change(e, &objs[rn(nobjs)]);
}

static const char *verdict_line(char *buf, size_t size,
                                const obspam_verdict *v) {
  snprintf(buf, size,
           "action %d kind %d %s limit %" PRId64 " count %" PRId64
           " retry %" PRId64 " window %" PRId64,
           v->action, v->kind, v->object, v->limit, v->count, v->retry_after,
           v->window);
  return buf;
}

static const char *stats_line(char *buf, size_t size, const obspam_stats *s) {
  snprintf(buf, size,
           "sending %d limit %" PRId64 " count %" PRId64 " refused %" PRId64
           " total %" PRId64 " last %" PRId64 " exceeded %" PRId64
           " total %" PRId64 " minute %" PRId64 "/%" PRId64 " day %" PRId64
           "/%" PRId64 " blocked %d %s disabled %d reset %" PRId64
           " forwarded %" PRId64 " lists %" PRId64,
           s->sending, s->limit, s->count, s->refused, s->refused_total,
           s->last_refused, s->exceeded, s->exceeded_total, s->count_minute,
           s->limit_minute, s->count_day, s->limit_day, s->blocked_kind,
           s->blocked_by, s->disabled, s->last_reset, s->forwarded,
           s->list_deliveries);
  return buf;
}

/* Lines collected from callbacks, compared sorted. */
typedef struct lines {
  char v[512][LINE];
  int n;
} lines;

static void add_line(lines *l, const char *s) {
  if (l->n < 512)
    snprintf(l->v[l->n++], sizeof(l->v[0]), "%s", s);
}

static int cmp_line(const void *a, const void *b) { return strcmp(a, b); }

static void compare_lines(lines *l0, lines *l1, const char *what) {
  int i;

  qsort(l0->v, (size_t)l0->n, sizeof(l0->v[0]), cmp_line);
  qsort(l1->v, (size_t)l1->n, sizeof(l1->v[0]), cmp_line);
  EXPECT(l0->n == l1->n, "%s: %d lines in memory, %d on Redis", what, l0->n,
         l1->n);
  for (i = 0; i < l0->n && i < l1->n; i++)
    EXPECT(strcmp(l0->v[i], l1->v[i]) == 0, "%s:\n  memory %s\n  redis  %s",
           what, l0->v[i], l1->v[i]);
}

static void on_row(const obspam_report_row *r, void *ud) {
  char buf[LINE];

  snprintf(buf, sizeof(buf),
           "%d %s sent %" PRId64 " refused %" PRId64 " exceeded %" PRId64
           " %" PRId64 "..%" PRId64 " window %" PRId64 " forwarded %" PRId64
           " lists %" PRId64,
           r->kind, r->name, r->sent, r->refused, r->exceeded, r->first_refused,
           r->last_refused, r->window, r->forwarded, r->list_deliveries);
  add_line(ud, buf);
}

static void on_notice(const obspam_notice *n, void *ud) {
  char buf[LINE];

  snprintf(buf, sizeof(buf),
           "%d %s limit %" PRId64 " window %" PRId64 " sent %" PRId64
           " refused %" PRId64 " exceeded %" PRId64 " %" PRId64 "..%" PRId64
           " [%" PRId64 ",%" PRId64 ")",
           n->kind, n->name, n->limit, n->window, n->sent, n->refused,
           n->exceeded, n->first_refused, n->last_refused, n->period_start,
           n->period_end);
  add_line(ud, buf);
}

static void on_hour(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  char buf[LINE];

  snprintf(buf, sizeof(buf), "%" PRId64 " sent %" PRId64 " refused %" PRId64,
           hour, sent, refused);
  add_line(ud, buf);
}

/* The statistics of every object, and of the implicit mailboxes, at now. */
static void compare_stats(obspam_engine *e[2], int64_t now, int seed,
                          int step) {
  char b0[LINE], b1[LINE], imp[64];
  int i, s, d, rc[2];

  for (i = 0; i < nobjs + NSUB * NDOM; i++) {
    obspam_stats st[2] = {OBSPAM_STATS_INIT, OBSPAM_STATS_INIT};
    const char *name;
    int kind, k;

    if (i < nobjs) {
      kind = objs[i].kind;
      name = objs[i].name;
    } else {
      s = (i - nobjs) / NDOM;
      d = (i - nobjs) % NDOM;
      snprintf(imp, sizeof(imp), "x@d%d%d.example", s, d);
      kind = OBSPAM_MAILBOX;
      name = imp;
    }
    for (k = 0; k < 2; k++)
      rc[k] = obspam_stats_get(e[k], kind, name, now, &st[k]);
    /* An implicit mailbox lives while the local store holds its history,
       which the two engines free at slightly different times (the
       in-memory one keeps it while its hour window holds anything): only
       declared objects must exist in both. */
    EXPECT(rc[0] == rc[1] || i >= nobjs,
           "seed %d step %d stats of %s: rc %d and %d", seed, step, name, rc[0],
           rc[1]);
    if (rc[0] != OBSPAM_OK || rc[1] != OBSPAM_OK)
      continue;
    stats_line(b0, sizeof(b0), &st[0]);
    stats_line(b1, sizeof(b1), &st[1]);
    EXPECT(strcmp(b0, b1) == 0,
           "seed %d step %d stats of %s at %" PRId64 ":\n  memory %s\n"
           "  redis  %s",
           seed, step, name, now, b0, b1);
  }
}

static const char *login(char *buf, size_t size) {
  int s = rn(NSUB), d = rn(NDOM), m = rn(NMBX + 1);

  if (m == NMBX)
    snprintf(buf, size, "x@d%d%d.example", s, d);
  else
    snprintf(buf, size, "m%d@d%d%d.example", m, s, d);
  return buf;
}

static int64_t step_time(void) {
  int r = rn(100);

  if (r < 70)
    return rn(7);
  if (r < 95)
    return 20 + rn(600);
  return 3600 + rn(6 * 3600);
}

static void run_seed(const char *uri, int seed, int steps) {
  obspam_engine *e[2];
  char prefix[64], who[64], b0[LINE], b1[LINE], script[32];
  lines *l[2];
  int64_t t0, t;
  int step, i, rc[2], k;

  rng = (uint64_t)seed * 0x2545f4914f6cdd1dull + 1;
  for (k = 0; k < 2; k++) {
    if (obspam_engine_new(&e[k]) != OBSPAM_OK) {
      printf("engine_new failed\n");
      exit(2);
    }
    l[k] = calloc(1, sizeof(lines));
    if (l[k] == NULL) {
      printf("out of memory\n");
      exit(2);
    }
  }
  snprintf(prefix, sizeof(prefix), "equiv-%d-%d:", (int)getpid(), seed);
  if (obspam_set_store(e[1], uri, prefix) != OBSPAM_OK) {
    printf("set_store: %s\n", obspam_engine_errmsg(e[1]));
    exit(2);
  }
  /* Long enough that no decision falls back to memory on a busy machine
     (which the end of the seed checks). */
  obspam_set_option(e[1], OBSPAM_OPT_STORE_TIMEOUT_MS, 10000);
  /* A short retention now and then: the day window must still see a
     whole day. */
  for (k = 0; k < 2; k++) {
    obspam_set_option(e[k], OBSPAM_OPT_RETENTION_HOURS,
                      seed % 3 == 0 ? 3 : 720);
    obspam_set_option(e[k], OBSPAM_OPT_COUNT_UNIT, seed % 4 == 1);
    /* List deliveries exempt (recorded without a charge) or charged. */
    obspam_set_option(e[k], OBSPAM_OPT_COUNT_MAILING_LISTS, seed % 2);
    obspam_set_notify(e[k], on_notice, l[k]);
  }
  build(e);
  t0 = t = 1800000000 + rn(86400);
  for (step = 0; step < steps; step++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v[2] = {OBSPAM_VERDICT_INIT, OBSPAM_VERDICT_INIT};

    t += step_time();
    if (rn(60) == 0)
      change(e, &objs[rn(nobjs)]);
    if (rn(200) == 0) {
      /* An administrator resets one object (obspam_reset). */
      const object *o = &objs[rn(nobjs)];

      for (k = 0; k < 2; k++)
        rc[k] = obspam_reset(e[k], o->kind, o->name, t);
      both(rc[0], rc[1], "reset");
      resets++;
    }
    if (rn(300) == 0) {
      int unit = rn(2);

      for (k = 0; k < 2; k++)
        obspam_set_option(e[k], OBSPAM_OPT_COUNT_UNIT, unit);
    }
    m.time = t;
    m.recipients = (uint32_t)(1 + (rn(4) == 0 ? rn(8) : rn(2)));
    if (rn(8) == 0) {
      /* A script of a subscription (scripts are forbidden in s2), with
         the domain it runs for now and then. */
      i = rn(NSUB);
      m.flags = OBSPAM_MSG_SCRIPT;
      m.uid = 1000 + i;
      snprintf(who, sizeof(who), "d%d%d.example", i, rn(NDOM));
      m.domain_hint = rn(2) ? who : NULL;
      snprintf(script, sizeof(script), "/var/www/s%d/%d.php", i, rn(3));
      m.script = script;
    } else if (rn(10) == 0) {
      /* A forward of a hosted address, or a mailing-list delivery from
         one: counted apart in reports and status. */
      m.flags = rn(2) ? OBSPAM_MSG_FORWARD_REMOTE : OBSPAM_MSG_MAILING_LIST;
      m.sender = login(who, sizeof(who));
    } else {
      m.sasl_username = login(who, sizeof(who));
    }
    for (k = 0; k < 2; k++)
      rc[k] = obspam_decide(e[k], &m, &v[k]);
    both(rc[0], rc[1], "decide");
    if (v[1].action == OBSPAM_ACCEPT)
      accepted++;
    else if (v[1].action == OBSPAM_REFUSE)
      refusals[v[1].window == 60      ? 0
               : v[1].window == 3600  ? 1
               : v[1].window == 86400 ? 2
                                      : 3]++;
    verdict_line(b0, sizeof(b0), &v[0]);
    verdict_line(b1, sizeof(b1), &v[1]);
    EXPECT(strcmp(b0, b1) == 0,
           "seed %d step %d, %s at %" PRId64 " (%u recipients):\n"
           "  memory %s\n  redis  %s",
           seed, step,
           m.script          ? m.script
           : m.sasl_username ? m.sasl_username
                             : m.sender,
           t, m.recipients, b0, b1);
    if (step % 250 == 249)
      compare_stats(e, t, seed, step);
  }
  compare_stats(e, t, seed, steps);
  for (k = 0; k < 2; k++) {
    l[k]->n = 0;
    EXPECT(obspam_report(e[k], t0, t + 1, on_row, l[k]) == OBSPAM_OK,
           "report: %s", obspam_engine_errmsg(e[k]));
  }
  compare_lines(l[0], l[1], "report");
  for (i = 0; i < nobjs; i++) {
    for (k = 0; k < 2; k++) {
      l[k]->n = 0;
      rc[k] = obspam_history(e[k], objs[i].kind, objs[i].name, t0, t + 1,
                             on_hour, l[k]);
    }
    both(rc[0], rc[1], "history");
    compare_lines(l[0], l[1], objs[i].name);
  }
  for (k = 0; k < 2; k++) {
    l[k]->n = 0;
    EXPECT(obspam_notify_flush(e[k], t + 86400 * 31) == OBSPAM_OK,
           "notify_flush: %s", obspam_engine_errmsg(e[k]));
  }
  compare_lines(l[0], l[1], "notices");
  {
    int64_t shared, up, episodes, fallbacks;

    obspam_store_status(e[1], &shared, &up, &episodes, &fallbacks);
    EXPECT(shared == 1 && episodes == 0 && fallbacks == 0,
           "not all on Redis: shared %" PRId64 " episodes %" PRId64
           " fallbacks %" PRId64,
           shared, episodes, fallbacks);
  }
  for (k = 0; k < 2; k++) {
    obspam_engine_free(e[k]);
    free(l[k]);
  }
}

int main(int argc, char **argv) {
  int seeds = argc > 2 ? atoi(argv[2]) : 8;
  int steps = argc > 3 ? atoi(argv[3]) : 1000;
  int seed;

  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) {
    fprintf(stderr, "usage: equiv_redis URI [SEEDS [STEPS]]\n");
    return 2;
  }
  for (seed = 1; seed <= seeds; seed++)
    run_seed(argv[1], seed, steps);
  printf("%d seeds of %d messages: %ld accepted; refused by the minute %ld, "
         "the hour %ld, the day %ld, the cap or forbidden scripts %ld; %ld "
         "resets; %d differences\n",
         seeds, steps, accepted, refusals[0], refusals[1], refusals[2],
         refusals[3], resets, failures);
  EXPECT(accepted > 0 && refusals[0] > 0 && refusals[1] > 0 &&
             refusals[2] > 0 && refusals[3] > 0 && resets > 0,
         "the stream must accept, refuse by every window and the cap, and "
         "reset");
  return failures ? 1 : 0;
}
