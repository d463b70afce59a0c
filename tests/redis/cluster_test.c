/* SPDX-License-Identifier: MIT */
/* Engines ("relays") sharing their counters in a live Redis; run by
   tests/redis/run.sh, which starts the servers:

     cluster_test shared URI
         two engines on one Redis accept exactly the mailbox limit between
         them, refuse the rest with the same verdict, and report each
         other's refusals;
     cluster_test fallback URI KILL_CMD RESTART_CMD
         Redis killed: decisions go on with local counters (fallback local)
         or fail with OBSPAM_EUNAVAIL (fallback defer), one episode counted;
         Redis restarted: decisions use the shared counters again;
     cluster_test failover URI FAILOVER_CMD
         a Sentinel failover: the next decision goes to the new master and
         finds every count acknowledged before, within a bounded time;
     cluster_test restart URI
         an engine freed (a relay stopped) leaves the shared counters in
         Redis: the next engine on the same prefix finds them;
     cluster_test load URI PREFIX SECONDS STEP
         no test: the mailbox a@d.example sends one message every STEP
         seconds for SECONDS seconds of message time, for memory.sh to
         measure what Redis keeps for it.

   Exits 0 when every expectation holds; prints what it checks. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "obspam.h"
#include "testbase.h"

static int failures;
static int64_t T; /* every decision's time: both engines see the same */

#define EXPECT(cond, ...)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                   \
      printf(__VA_ARGS__);                                                     \
      printf("\n");                                                            \
    }                                                                          \
  } while (0)

static obspam_engine *engine(const char *uri, const char *prefix,
                             const char *fallback) {
  char conf[1024];
  obspam_engine *e;

  snprintf(conf, sizeof(conf),
           "store %s\n"
           "store-prefix %s\n"
           "store-timeout 300\n"
           "store-fallback %s\n"
           "subscription s1 subscription=100\n"
           "domain d.example subscription=s1 mailbox=4\n"
           "mailbox a@d.example limit=10\n",
           uri, prefix, fallback);
  if (obspam_engine_new(&e) != OBSPAM_OK) {
    printf("engine_new failed\n");
    exit(2);
  }
  if (obspam_load_config_string(e, conf) != OBSPAM_OK) {
    printf("load_config_string: %s\n", obspam_engine_errmsg(e));
    exit(2);
  }
  return e;
}

static int decide_as(obspam_engine *e, const char *login, obspam_verdict *v) {
  obspam_message m = OBSPAM_MESSAGE_INIT;
  obspam_verdict init = OBSPAM_VERDICT_INIT;

  *v = init;
  m.sasl_username = login;
  m.time = T;
  return obspam_decide(e, &m, v);
}

static int decide(obspam_engine *e, obspam_verdict *v) {
  obspam_message m = OBSPAM_MESSAGE_INIT;
  obspam_verdict init = OBSPAM_VERDICT_INIT;

  *v = init;
  m.sasl_username = "a@d.example";
  m.time = T;
  return obspam_decide(e, &m, v);
}

static void status(obspam_engine *e, int64_t st[4]) {
  obspam_store_status(e, &st[0], &st[1], &st[2], &st[3]);
  printf("  status: shared=%" PRId64 " up=%" PRId64 " episodes=%" PRId64
         " fallbacks=%" PRId64 "\n",
         st[0], st[1], st[2], st[3]);
}

/* Per kind (subscription, domain, mailbox): refused, over the limit, and
   the number of rows. */
static void print_row(const obspam_report_row *row) {
  char line[2048];

  tu_row_line(line, sizeof line, row);
  printf("  %s", line);
}

static void report_row(const obspam_report_row *row, void *ud) {
  int64_t(*by_kind)[3] = ud;

  print_row(row);
  if (row->kind >= OBSPAM_SUBSCRIPTION && row->kind <= OBSPAM_MAILBOX) {
    by_kind[row->kind - OBSPAM_SUBSCRIPTION][0] = row->refused;
    by_kind[row->kind - OBSPAM_SUBSCRIPTION][1] = row->exceeded;
    by_kind[row->kind - OBSPAM_SUBSCRIPTION][2]++;
  }
}

/* The mailbox's notice of one relay. */
typedef struct seen {
  int notices;
  int64_t sent, refused, limit;
} seen;

static void on_notice(const obspam_notice *n, void *ud) {
  seen *s = ud;

  printf("  notice: kind %d %s sent %" PRId64 " refused %" PRId64
         " limit %" PRId64 "\n",
         n->kind, n->name, n->sent, n->refused, n->limit);
  s->notices++;
  if (n->kind == OBSPAM_MAILBOX) {
    s->sent = n->sent;
    s->refused = n->refused;
    s->limit = n->limit;
  }
}

static int shared(const char *uri) {
  char prefix[64];
  obspam_engine *e1, *e2;
  obspam_verdict v1, v2, v;
  obspam_stats st = OBSPAM_STATS_INIT;
  int64_t rows[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
  int i;

  seen n1 = {0, 0, 0, 0}, n2 = {0, 0, 0, 0};

  snprintf(prefix, sizeof(prefix), "shared-%d:", (int)getpid());
  e1 = engine(uri, prefix, "local");
  e2 = engine(uri, prefix, "local");
  obspam_set_notify(e1, on_notice, &n1);
  obspam_set_notify(e2, on_notice, &n2);
  printf("two relays, mailbox limit 10: 7 through one, 3 through the other "
         "in one obspam_decide_batch\n");
  for (i = 0; i < 7; i++) {
    EXPECT(decide(e1, &v) == OBSPAM_OK, "%s", obspam_engine_errmsg(e1));
    EXPECT(v.action == OBSPAM_ACCEPT, "message %d: action %d", i, v.action);
    EXPECT(v.count == i, "message %d: count %" PRId64, i, v.count);
  }
  {
    obspam_message m[3];
    obspam_verdict bv[3];
    const obspam_message *pm[3];
    obspam_verdict *pv[3];
    int rc[3];

    for (i = 0; i < 3; i++) {
      obspam_message m0 = OBSPAM_MESSAGE_INIT;
      obspam_verdict v0 = OBSPAM_VERDICT_INIT;

      m[i] = m0;
      m[i].sasl_username = "a@d.example";
      m[i].time = T;
      bv[i] = v0;
      pm[i] = &m[i];
      pv[i] = &bv[i];
    }
    EXPECT(obspam_decide_batch(e2, pm, pv, rc, 3) == OBSPAM_OK, "%s",
           obspam_engine_errmsg(e2));
    for (i = 0; i < 3; i++) {
      EXPECT(rc[i] == OBSPAM_OK && bv[i].action == OBSPAM_ACCEPT,
             "message %d: rc %d action %d", 7 + i, rc[i], bv[i].action);
      EXPECT(bv[i].count == 7 + i, "message %d: count %" PRId64, 7 + i,
             bv[i].count);
    }
  }
  printf("the 11th is refused on both, with the same verdict\n");
  EXPECT(decide(e1, &v1) == OBSPAM_OK, "%s", obspam_engine_errmsg(e1));
  EXPECT(decide(e2, &v2) == OBSPAM_OK, "%s", obspam_engine_errmsg(e2));
  EXPECT(v1.action == OBSPAM_REFUSE && v2.action == OBSPAM_REFUSE,
         "actions %d %d", v1.action, v2.action);
  EXPECT(v1.kind == OBSPAM_MAILBOX && strcmp(v1.object, "a@d.example") == 0,
         "refused by %d %s", v1.kind, v1.object);
  EXPECT(v1.count == 10 && v2.count == 10 && v1.limit == 10,
         "counts %" PRId64 " %" PRId64, v1.count, v2.count);
  /* All ten were charged in the minute of T: they leave the window at
     its start + 3600. */
  EXPECT(v1.retry_after == (T / 60 + 60) * 60 - T &&
             v1.retry_after == v2.retry_after,
         "retry_after %" PRId64 " %" PRId64 ", want %" PRId64, v1.retry_after,
         v2.retry_after, (T / 60 + 60) * 60 - T);
  EXPECT(obspam_stats_get(e2, OBSPAM_MAILBOX, "a@d.example", T, &st) ==
             OBSPAM_OK,
         "%s", obspam_engine_errmsg(e2));
  EXPECT(st.count == 10 && st.refused == 2 && st.refused_total == 2 &&
             st.last_refused == T && st.exceeded == 2 && st.exceeded_total == 2,
         "stats on relay 2: count %" PRId64 " refused %" PRId64
         " total %" PRId64 " last %" PRId64 " exceeded %" PRId64
         " total %" PRId64,
         st.count, st.refused, st.refused_total, st.last_refused, st.exceeded,
         st.exceeded_total);
  /* The subscription (10 of 100) was refused with it, not over its limit. */
  EXPECT(obspam_stats_get(e1, OBSPAM_SUBSCRIPTION, "s1", T, &st) == OBSPAM_OK,
         "%s", obspam_engine_errmsg(e1));
  EXPECT(st.refused == 2 && st.exceeded == 0 && st.exceeded_total == 0,
         "subscription s1 on relay 1: refused %" PRId64 " exceeded %" PRId64
         " total %" PRId64,
         st.refused, st.exceeded, st.exceeded_total);
  printf("a report on either relay shows both refusals of the mailbox, the "
         "one object over its limit\n");
  EXPECT(obspam_report(e1, T - 3600, T + 1, report_row, rows) == OBSPAM_OK,
         "%s", obspam_engine_errmsg(e1));
  EXPECT(rows[2][0] == 2 && rows[2][1] == 2 && rows[2][2] == 1 &&
             rows[0][2] == 0 && rows[1][2] == 0,
         "mailbox refused %" PRId64 " exceeded %" PRId64 " in %" PRId64
         " rows; %" PRId64 " subscription and %" PRId64 " domain rows",
         rows[2][0], rows[2][1], rows[2][2], rows[0][2], rows[1][2]);
  printf("each relay notifies the refusal it made, at the period's end\n");
  EXPECT(obspam_notify_flush(e1, T - T % 3600 + 3600) == OBSPAM_OK, "%s",
         obspam_engine_errmsg(e1));
  EXPECT(obspam_notify_flush(e2, T - T % 3600 + 3600) == OBSPAM_OK, "%s",
         obspam_engine_errmsg(e2));
  EXPECT(n1.notices == 1 && n1.sent == 7 && n1.refused == 1 && n1.limit == 10,
         "relay 1: %d notices, mailbox sent %" PRId64 " refused %" PRId64,
         n1.notices, n1.sent, n1.refused);
  EXPECT(n2.notices == 1 && n2.sent == 3 && n2.refused == 1 && n2.limit == 10,
         "relay 2: %d notices, mailbox sent %" PRId64 " refused %" PRId64,
         n2.notices, n2.sent, n2.refused);
  printf("an undeclared mailbox (implicit, limit 4 from its domain) is "
         "counted once for both relays\n");
  for (i = 0; i < 4; i++) {
    obspam_engine *on = i < 3 ? e1 : e2;

    EXPECT(decide_as(on, "stolen@d.example", &v) == OBSPAM_OK, "%s",
           obspam_engine_errmsg(on));
    EXPECT(v.action == OBSPAM_ACCEPT && v.kind == OBSPAM_MAILBOX &&
               strcmp(v.object, "stolen@d.example") == 0 && v.limit == 4 &&
               v.count == i,
           "message %d: action %d kind %d %s limit %" PRId64 " count %" PRId64,
           i, v.action, v.kind, v.object, v.limit, v.count);
  }
  EXPECT(decide_as(e1, "stolen@d.example", &v) == OBSPAM_OK, "%s",
         obspam_engine_errmsg(e1));
  EXPECT(v.action == OBSPAM_REFUSE && v.kind == OBSPAM_MAILBOX &&
             strcmp(v.object, "stolen@d.example") == 0 && v.count == 4,
         "the 5th: action %d kind %d %s count %" PRId64, v.action, v.kind,
         v.object, v.count);
  EXPECT(obspam_stats_get(e2, OBSPAM_MAILBOX, "stolen@d.example", T, &st) ==
             OBSPAM_OK,
         "%s", obspam_engine_errmsg(e2));
  EXPECT(st.count == 4 && st.refused == 1 && st.limit == 4,
         "stats of stolen@ on relay 2: count %" PRId64 " refused %" PRId64,
         st.count, st.refused);
  obspam_engine_free(e1);
  obspam_engine_free(e2);
  return failures ? 1 : 0;
}

/* The rows of a report, as they came. */
typedef struct listed {
  int rows;
  obspam_report_row first;
} listed;

static void list_row(const obspam_report_row *row, void *ud) {
  listed *l = ud;

  print_row(row);
  if (l->rows++ == 0)
    l->first = *row;
}

/* An object active in two hours of a report's period is one row with
   the sums of both. */
static int report_hours(const char *uri) {
  char prefix[64];
  obspam_engine *e;
  obspam_verdict v;
  listed l;
  int i, hour;

  snprintf(prefix, sizeof(prefix), "hours-%d:", (int)getpid());
  e = engine(uri, prefix, "local");
  printf("mailbox limit 10: 11 messages at T and 11 two hours later\n");
  for (hour = 0; hour < 2; hour++)
    for (i = 0; i < 11; i++) {
      obspam_message m = OBSPAM_MESSAGE_INIT;
      obspam_verdict init = OBSPAM_VERDICT_INIT;

      v = init;
      m.sasl_username = "a@d.example";
      m.time = T + hour * 7200;
      EXPECT(obspam_decide(e, &m, &v) == OBSPAM_OK, "%s",
             obspam_engine_errmsg(e));
      EXPECT(v.action == (i < 10 ? OBSPAM_ACCEPT : OBSPAM_REFUSE),
             "hour %d message %d: action %d", hour, i, v.action);
    }
  memset(&l, 0, sizeof(l));
  EXPECT(obspam_report(e, T - 3600, T + 3 * 3600, list_row, &l) == OBSPAM_OK,
         "%s", obspam_engine_errmsg(e));
  EXPECT(l.rows == 1 && l.first.kind == OBSPAM_MAILBOX &&
             strcmp(l.first.name, "a@d.example") == 0 && l.first.sent == 20 &&
             l.first.refused == 2 && l.first.exceeded == 2 &&
             l.first.first_refused == T && l.first.last_refused == T + 7200,
         "%d rows, the first kind %d sent %" PRId64 " refused %" PRId64
         " exceeded %" PRId64 " first %" PRId64 " last %" PRId64,
         l.rows, l.first.kind, l.first.sent, l.first.refused, l.first.exceeded,
         l.first.first_refused, l.first.last_refused);
  obspam_engine_free(e);
  return failures ? 1 : 0;
}

static void run(const char *what, const char *cmd) {
  int rc;

  printf("$ %s (%s)\n", cmd, what);
  fflush(stdout);
  rc = system(cmd);
  if (rc != 0) {
    printf("command failed: %d\n", rc);
    exit(2);
  }
}

static int fallback(const char *uri, const char *kill_cmd,
                    const char *restart_cmd) {
  char prefix[64];
  obspam_engine *e;
  obspam_verdict v;
  int64_t st[4];
  int i, rc;

  snprintf(prefix, sizeof(prefix), "fallback-%d:", (int)getpid());
  e = engine(uri, prefix, "local");
  printf("4 messages on Redis\n");
  for (i = 0; i < 4; i++) {
    EXPECT(decide(e, &v) == OBSPAM_OK && v.action == OBSPAM_ACCEPT &&
               v.count == i,
           "message %d: action %d count %" PRId64, i, v.action, v.count);
  }
  status(e, st);
  EXPECT(st[0] == 1 && st[1] == 1 && st[2] == 0 && st[3] == 0, "status");

  run("Redis dies", kill_cmd);
  printf("3 messages on the local counters, one episode\n");
  for (i = 0; i < 3; i++) {
    rc = decide(e, &v);
    EXPECT(rc == OBSPAM_OK && v.action == OBSPAM_ACCEPT && v.count == i,
           "fallback message %d: rc %d action %d count %" PRId64, i, rc,
           v.action, v.count);
  }
  status(e, st);
  EXPECT(st[1] == 0 && st[2] == 1 && st[3] == 3, "status while down");

  printf("fallback defer: the decision fails with OBSPAM_EUNAVAIL\n");
  obspam_set_option(e, OBSPAM_OPT_STORE_FALLBACK, 1);
  rc = decide(e, &v);
  EXPECT(rc == OBSPAM_EUNAVAIL, "rc %d (%s)", rc, obspam_engine_errmsg(e));
  printf("  errmsg: %s\n", obspam_engine_errmsg(e));
  obspam_set_option(e, OBSPAM_OPT_STORE_FALLBACK, 0);

  run("Redis comes back", restart_cmd);
  /* Redis is tried again at most once a second. */
  usleep(1100 * 1000);
  printf("back on Redis: the shared count is there again\n");
  rc = decide(e, &v);
  EXPECT(rc == OBSPAM_OK && v.action == OBSPAM_ACCEPT && v.count == 4,
         "rc %d action %d count %" PRId64 " (want 4, the shared count)", rc,
         v.action, v.count);
  status(e, st);
  EXPECT(st[1] == 1 && st[2] == 1 && st[3] == 4, "status after the return");
  obspam_engine_free(e);
  return failures ? 1 : 0;
}

static double now_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int failover(const char *uri, const char *failover_cmd) {
  char prefix[64];
  obspam_engine *e;
  obspam_verdict v;
  int64_t st[4];
  double start;
  int i, rc;

  snprintf(prefix, sizeof(prefix), "failover-%d:", (int)getpid());
  e = engine(uri, prefix, "local");
  printf("5 messages on the master named by the sentinel\n");
  for (i = 0; i < 5; i++)
    EXPECT(decide(e, &v) == OBSPAM_OK && v.action == OBSPAM_ACCEPT &&
               v.count == i,
           "message %d: action %d count %" PRId64, i, v.action, v.count);
  run("the sentinel promotes the replica", failover_cmd);
  start = now_ms();
  rc = decide(e, &v);
  printf("  first decision after the failover: %.1f ms\n", now_ms() - start);
  status(e, st);
  EXPECT(rc == OBSPAM_OK && v.action == OBSPAM_ACCEPT && v.count == 5,
         "rc %d action %d count %" PRId64 " (want 5: nothing was in flight)",
         rc, v.action, v.count);
  EXPECT(st[1] == 1 && st[3] == 0, "decided on the new master");
  EXPECT(now_ms() - start < 5000, "bounded time");
  obspam_engine_free(e);
  return failures ? 1 : 0;
}

static int restart(const char *uri) {
  char prefix[64];
  obspam_engine *e;
  obspam_verdict v;
  int i;

  snprintf(prefix, sizeof(prefix), "restart-%d:", (int)getpid());
  e = engine(uri, prefix, "defer");
  printf("3 messages, then the engine is freed and made again\n");
  for (i = 0; i < 3; i++)
    EXPECT(decide(e, &v) == OBSPAM_OK && v.action == OBSPAM_ACCEPT &&
               v.count == i,
           "message %d: action %d count %" PRId64, i, v.action, v.count);
  obspam_engine_free(e);
  e = engine(uri, prefix, "defer");
  EXPECT(decide(e, &v) == OBSPAM_OK && v.action == OBSPAM_ACCEPT &&
             v.count == 3,
         "after the restart: action %d count %" PRId64 " (want 3)", v.action,
         v.count);
  obspam_engine_free(e);
  return failures ? 1 : 0;
}

/* The load memory.sh measures: one message every step seconds from T
   for seconds, all accepted (no limit is reached). */
static int load(const char *uri, const char *prefix, int64_t seconds,
                int64_t step) {
  obspam_engine *e = engine(uri, prefix, "defer");
  int64_t t;
  int64_t st[4];

  if (obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "s1", OBSPAM_SUBSCRIPTION,
                       OBSPAM_UNLIMITED) != OBSPAM_OK ||
      obspam_set_limit(e, OBSPAM_MAILBOX, "a@d.example", OBSPAM_MAILBOX,
                       OBSPAM_UNLIMITED) != OBSPAM_OK) {
    printf("set_limit: %s\n", obspam_engine_errmsg(e));
    return 2;
  }
  for (t = 0; t < seconds; t += step) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    m.sasl_username = "a@d.example";
    m.time = T - seconds + step + t;
    EXPECT(obspam_decide(e, &m, &v) == OBSPAM_OK && v.action == OBSPAM_ACCEPT,
           "at %" PRId64 ": action %d by %s window %" PRId64 " %s", t, v.action,
           v.object, v.window, obspam_engine_errmsg(e));
  }
  status(e, st);
  EXPECT(st[3] == 0, "every decision on Redis");
  obspam_engine_free(e);
  return failures ? 1 : 0;
}

static int badconf(void) {
  obspam_engine *e;
  int rc;

  obspam_engine_new(&e);
  rc = obspam_load_config_string(e, "retention 24\nstore redis://nohost\n");
  printf("  %s\n", obspam_engine_errmsg(e));
  EXPECT(rc == OBSPAM_ESYNTAX, "rc %d", rc);
  EXPECT(strcmp(obspam_engine_errmsg(e),
                "<string>:2: bad value 'redis://nohost' for 'store': "
                "expected redis://HOST:PORT[/DB]") == 0,
         "message");
  rc = obspam_set_store(e, "memcached://x:1", NULL);
  printf("  %s\n", obspam_engine_errmsg(e));
  EXPECT(rc == OBSPAM_EINVAL, "rc %d", rc);
  obspam_engine_free(e);
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  T = (int64_t)time(NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 2 && strcmp(argv[1], "badconf") == 0)
    return badconf();
  if (argc == 3 && strcmp(argv[1], "shared") == 0)
    return shared(argv[2]);
  if (argc == 3 && strcmp(argv[1], "report_hours") == 0)
    return report_hours(argv[2]);
  if (argc == 5 && strcmp(argv[1], "fallback") == 0)
    return fallback(argv[2], argv[3], argv[4]);
  if (argc == 4 && strcmp(argv[1], "failover") == 0)
    return failover(argv[2], argv[3]);
  if (argc == 3 && strcmp(argv[1], "restart") == 0)
    return restart(argv[2]);
  if (argc == 6 && strcmp(argv[1], "load") == 0)
    return load(argv[2], argv[3], strtoll(argv[4], NULL, 10),
                strtoll(argv[5], NULL, 10));
  fprintf(stderr, "usage: cluster_test shared URI | report_hours URI | "
                  "fallback URI KILL "
                  "RESTART | failover URI FAILOVER | restart URI | "
                  "load URI PREFIX SECONDS STEP\n");
  return 2;
}
