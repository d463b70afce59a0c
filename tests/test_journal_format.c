/* SPDX-License-Identifier: MIT */
/* The journal's format 3 (src/journal.c) against format 2, the format of
   1.3 to 1.4.2: the charges of random decisions of every kind, recorded by
   the library in format 3 and, through a tap on the store, by 1.4.2's
   encoder of format 2 (kept below as it was), replay to the same counters,
   statistics, history and reports; a format 2 journal replays on upgrade
   and goes on in format 3; and what format 3 adds to get right: names
   defined once in each file and stretch, a reference to an undefined id,
   torn definitions, definitions that a full disk dropped. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "hash.h"
#include "journal.h"
#include "store.h"
#include "testutil.h"

static const char config[] =
    "retention 120\n"
    "notify-period 3600\n"
    "default mailbox=3/m,8/h,20/d domain=6/m,15/h,40/d "
    "subscription=10/m,30/h,60/d max-recipients=6\n"
    "subscription acme uid=1001 scripts=yes\n"
    "subscription shop uid=1002 scripts=no\n"
    "subscription big uid=1003 subscription=unlimited/m,unlimited,unlimited/d "
    "domain=unlimited/m,unlimited,unlimited/d mailbox=5/m,unlimited\n"
    "domain example.com subscription=acme\n"
    "domain shop.example subscription=shop domain=4\n"
    "domain big.example subscription=big\n"
    "mailbox a@example.com\n"
    "mailbox b@example.com limit=unlimited/m,unlimited,unlimited/d "
    "max-recipients=4\n"
    "mailbox c@shop.example limit=2/m\n"
    "forward fw@example.com remote\n"
    "forward lf@example.com local\n"
    "list news@shop.example\n";

static char dir[256], state[300], journal[320], state2[300], journal2[320];

static void setup(void) {
  tu_mkdtemp(dir, sizeof(dir), "obspam-jformat");
  snprintf(state, sizeof(state), "%s/state", dir);
  snprintf(journal, sizeof(journal), "%s.journal", state);
  snprintf(state2, sizeof(state2), "%s/two", dir);
  snprintf(journal2, sizeof(journal2), "%s.journal", state2);
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(journal_format, .init = setup, .fini = teardown);

/* ---- 1.4.2's encoder of format 2, as it was ----------------------------- */

#define F2_WINDOWS 2
#define F2_PROBE 1
#define F2_RESET 4
#define F2_UID 8
#define F2_FORWARD 16
#define F2_LIST 32
#define F2_LISTED 64

static uint8_t *f2_put(uint8_t *p, uint64_t v, int bytes) {
  int i;

  for (i = 0; i < bytes; i++)
    p[i] = (uint8_t)(v >> (8 * i));
  return p + bytes;
}

static size_t f2_encode(const obspam__charge *ch, uint8_t *out) {
  uint8_t *p = out + 8, over = 0;
  size_t len;
  int i;

  for (i = 0; i < ch->n; i++)
    if (ch->refuser >= 0 && obspam__exceeded(ch, i))
      over |= (uint8_t)(1u << i);
  p = f2_put(p, (uint64_t)ch->t, 8);
  p = f2_put(p, (uint64_t)ch->c, 8);
  p = f2_put(p, (uint64_t)ch->retention, 8);
  p = f2_put(p, (uint64_t)ch->period, 8);
  p = f2_put(p,
             (uint8_t)(F2_WINDOWS | (ch->probe ? F2_PROBE : 0) |
                       (ch->reset ? F2_RESET : 0) |
                       (ch->script != NULL && ch->uid >= 0 ? F2_UID : 0) |
                       (ch->marks & OBSPAM__MARK_FORWARD ? F2_FORWARD : 0) |
                       (ch->marks & OBSPAM__MARK_LIST ? F2_LIST : 0) |
                       (ch->listed ? F2_LISTED : 0)),
             1);
  p = f2_put(p, (uint8_t)ch->refuser, 1);
  p = f2_put(p, (uint8_t)ch->n, 1);
  p = f2_put(p, over, 1);
  for (i = 0; i < ch->n; i++) {
    const obspam__obj *o = ch->obj[i];
    int w = over & (1u << i) ? ch->over_window[i] : OBSPAM__W_HOUR;
    int64_t limit = over & (1u << i) ? obspam__over_limit(ch, i)
                                     : ch->limit[i][OBSPAM__W_HOUR];

    p = f2_put(p, (uint64_t)limit, 8);
    p = f2_put(p, (uint8_t)w, 1);
    p = f2_put(p, o->kind, 1);
    p = f2_put(p, o->len, 2);
    memcpy(p, o->name, o->len);
    p += o->len;
  }
  len = ch->script != NULL ? ch->script_len : 0;
  p = f2_put(p, (uint16_t)len, 2);
  if (len > 0)
    memcpy(p, ch->script, len);
  p += len;
  if (ch->script != NULL && ch->uid >= 0)
    p = f2_put(p, (uint64_t)ch->uid, 8);
  len = (size_t)(p - out) - 8;
  f2_put(out, (uint32_t)len, 4);
  f2_put(out + 4, (uint32_t)obspam__checksum(out + 8, len), 4);
  return len + 8;
}

/* ---- the tap: what the journal records, also encoded in format 2 -------- */

static struct {
  uint8_t *buf;
  size_t len, cap, n;
} f2;

/* What kinds of record were made: accepted, probes, resets, forwards,
   list deliveries (charged, exempt), scripts with and without a uid,
   and refusals by the kind of the object named (subscription, domain,
   mailbox) and its window + 1 (the cap or scripts, minute, hour, day). */
static struct {
  size_t accepted, probe, reset, forward, list, listed, uid, no_uid;
  size_t refused[3][4];
} kinds;
static obspam__store_ops tap_ops;
static const obspam__store_ops *real_ops;

static void f2_record(const obspam__charge *ch) {
  if (f2.cap - f2.len < 4096) {
    f2.cap = f2.cap ? 2 * f2.cap : 1 << 20;
    f2.buf = realloc(f2.buf, f2.cap);
    cr_assert_not_null(f2.buf);
  }
  f2.len += f2_encode(ch, f2.buf + f2.len);
  f2.n++;
  kinds.accepted += ch->refuser < 0 && !ch->reset && !ch->listed;
  kinds.probe += ch->probe != 0;
  kinds.reset += ch->reset != 0;
  kinds.forward += (ch->marks & OBSPAM__MARK_FORWARD) != 0;
  kinds.list += (ch->marks & OBSPAM__MARK_LIST) && !ch->listed;
  kinds.listed += ch->listed != 0;
  kinds.uid += ch->script != NULL && ch->uid >= 0;
  kinds.no_uid += ch->script != NULL && ch->uid < 0;
  if (ch->refuser >= 0)
    kinds.refused[ch->obj[ch->refuser]->kind - OBSPAM_SUBSCRIPTION]
                 [ch->window + 1]++;
}

static void tap_record(void *ud, const obspam__charge *ch) {
  f2_record(ch);
  obspam__journal_record(ud, ch);
}

static void tap_record_many(void *ud, const obspam__charge *const *ch, int n) {
  int i;

  for (i = 0; i < n; i++)
    f2_record(ch[i]);
  obspam__journal_record_many(ud, ch, n);
}

static void tap(obspam__charge *ch) {
  if (ch->record != NULL) {
    ch->record = tap_record;
    if (ch->record_many != NULL)
      ch->record_many = tap_record_many;
  }
}

static int tap_charge(obspam__store *s, obspam__charge *ch) {
  tap(ch);
  return real_ops->charge(s, ch);
}

static int tap_charge_many(obspam__store *s, obspam__charge *const *ch, int n,
                           int *done) {
  int i;

  for (i = 0; i < n; i++)
    tap(ch[i]);
  return real_ops->charge_many(s, ch, n, done);
}

static void tap_install(obspam_engine *e) {
  real_ops = e->store->ops;
  tap_ops = *real_ops;
  tap_ops.charge = tap_charge;
  if (real_ops->charge_many != NULL)
    tap_ops.charge_many = tap_charge_many;
  e->store->ops = &tap_ops;
  f2.len = f2.n = 0;
}

static void tap_remove(obspam_engine *e) { e->store->ops = real_ops; }

/* Frees the tapped records at the end of a test, so that the next test's
   tap starts from an empty buffer of its own. */
static void f2_release(void) {
  free(f2.buf);
  f2.buf = NULL;
  f2.cap = 0;
}

/* Writes the tapped records as the journal of path, format 2, following
   no snapshot. */
static void f2_write(const char *path) {
  uint8_t h[32] = "OBSPAMJR\x02";
  FILE *f = fopen(path, "wb");

  cr_assert_not_null(f, "%s", path);
  cr_assert_eq(fwrite(h, 1, 32, f), 32);
  cr_assert_eq(fwrite(f2.buf, 1, f2.len, f), f2.len);
  cr_assert_eq(fclose(f), 0);
}

/* ---- comparing engines --------------------------------------------------- */

static obspam_engine *engine(void) { return tu_new_conf(config); }

/* A fresh engine that replays the journal of path; the records it
   replayed. */
static obspam_engine *replayed_from(const char *path, int64_t *replayed) {
  obspam_engine *x = engine();
  int64_t ignored = -1;

  OK(obspam_journal_open(x, path, 0, replayed, &ignored));
  cr_assert_eq(ignored, 0);
  return x;
}

static size_t nobjects;
static tu_object objects[128];
static char names[128][64];

static void object(int kind, const char *name) {
  cr_assert_lt(nobjects, 128);
  snprintf(names[nobjects], sizeof(names[0]), "%s", name);
  objects[nobjects].kind = kind;
  objects[nobjects].name = names[nobjects];
  nobjects++;
}

typedef struct text {
  char s[1 << 16];
  size_t len;
} text;

static void row_line(const obspam_report_row *row, void *ud) {
  text *t = ud;
  int n = tu_row_line(t->s + t->len, sizeof(t->s) - t->len, row);

  cr_assert(n > 0 && (size_t)n < sizeof(t->s) - t->len);
  t->len += (size_t)n;
}

static void hour_line(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  text *t = ud;
  int n =
      snprintf(t->s + t->len, sizeof(t->s) - t->len,
               "%" PRId64 " %" PRId64 " %" PRId64 "\n", hour, sent, refused);

  cr_assert(n > 0 && (size_t)n < sizeof(t->s) - t->len);
  t->len += (size_t)n;
}

/* Gives y the options of x that reports and statistics read. */
static void same_options(obspam_engine *x, obspam_engine *y) {
  static const int opts[] = {OBSPAM_OPT_RETENTION_HOURS,
                             OBSPAM_OPT_NOTIFY_PERIOD,
                             OBSPAM_OPT_COUNT_MAILING_LISTS};
  size_t i;

  for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
    int64_t v;

    OK(obspam_get_option(x, opts[i], &v));
    OK(obspam_set_option(y, opts[i], v));
  }
}

/* Everything a program can read of the counters of x and y at now: every
   object's statistics and history and, with reports set, the report and
   the top scripts (which a journal does not make whole: the messages of
   scripts whose uid no subscription owns are not journaled). */
static void same_everything(obspam_engine *x, obspam_engine *y, int64_t from,
                            int64_t now, int reports, const char *what) {
  static text a, b;
  size_t i;

  for (i = 0; i < nobjects; i++) {
    obspam_stats p = OBSPAM_STATS_INIT, q = OBSPAM_STATS_INIT;
    const char *n = objects[i].name;
    int k = objects[i].kind;
    int rp = obspam_stats_get(x, k, n, now, &p);
    int rq = obspam_stats_get(y, k, n, now, &q);

    if (rp != rq) {
      /* An implicit mailbox that holds nothing (an accepted probe made
         it, which is not journaled) goes when the engine next looks. */
      const obspam_stats *h = rp == OBSPAM_OK ? &p : &q;

      cr_assert((rp == OBSPAM_ENOTFOUND || rq == OBSPAM_ENOTFOUND) &&
                    h->count == 0 && h->refused_total == 0 &&
                    h->count_day == 0 && h->last_reset == 0,
                "%s: %s: %d, %d", what, n, rp, rq);
      continue;
    }
    if (rp != OBSPAM_OK)
      continue;
#define SAME(f)                                                                \
  cr_assert_eq(p.f, q.f, "%s: %s: " #f " %lld, %lld", what, n, (long long)p.f, \
               (long long)q.f)
    SAME(sending);
    SAME(count);
    SAME(refused);
    SAME(refused_total);
    SAME(last_refused);
    SAME(exceeded);
    SAME(exceeded_total);
    SAME(count_minute);
    SAME(count_day);
    SAME(blocked_kind);
    SAME(last_reset);
    SAME(forwarded);
    SAME(list_deliveries);
#undef SAME
    a.len = b.len = 0;
    a.s[0] = b.s[0] = '\0';
    OK(obspam_history(x, k, n, from, now + 1, hour_line, &a));
    OK(obspam_history(y, k, n, from, now + 1, hour_line, &b));
    cr_assert_str_eq(a.s, b.s, "%s: %s: history", what, n);
  }
  if (!reports)
    return;
  a.len = b.len = 0;
  a.s[0] = b.s[0] = '\0';
  OK(obspam_report(x, from, now + 1, row_line, &a));
  OK(obspam_report(y, from, now + 1, row_line, &b));
  cr_assert_str_eq(a.s, b.s, "%s: report", what);
  a.len = b.len = 0;
  a.s[0] = b.s[0] = '\0';
  OK(obspam_top(x, OBSPAM_SCRIPT, from, now + 1, 0, row_line, &a));
  OK(obspam_top(y, OBSPAM_SCRIPT, from, now + 1, 0, row_line, &b));
  cr_assert_str_eq(a.s, b.s, "%s: top scripts", what);
  cr_assert_gt(a.len, 0, "%s: no script", what);
}

/* ---- random decisions of every kind ------------------------------------- */

static uint64_t seed;

static uint64_t rn(uint64_t n) { return tu_splitmix64(&seed) % n; }

static const char *const logins[] = {
    "a@example.com", "b@example.com",  "c@shop.example", "x@shop.example",
    "y@example.com", "fw@example.com", "lf@example.com"};

/* A login: a declared or implicit mailbox, many of them on big.example,
   so that ids take two bytes. */
static const char *login(char *buf, size_t size) {
  if (rn(3) == 0) {
    snprintf(buf, size, "m%d@big.example", (int)rn(60));
    return buf;
  }
  return logins[rn(sizeof(logins) / sizeof(logins[0]))];
}

static const char *const paths[] = {"/var/www/acme/index.php",
                                    "/var/www/shop/cart.php", NULL};

static obspam_message random_message(int64_t t, char *buf, size_t size) {
  uint32_t rcpt = 1 + (uint32_t)rn(rn(8) == 0 ? 12 : 3);
  int64_t uids[] = {1001, 1002, 1003, 4242};

  switch (rn(12)) {
  case 0: /* a probe at RCPT */
    return tu_msg(OBSPAM_MSG_PROBE, login(buf, size), NULL, "198.51.100.10", 1,
                  -1, NULL, NULL, t);
  case 1:
  case 2: /* a script, with or without its path and uid */
    return tu_msg(OBSPAM_MSG_SCRIPT, NULL, NULL, NULL, rcpt,
                  rn(4) ? uids[rn(4)] : -1, rn(2) ? "big.example" : NULL,
                  paths[rn(3)], t);
  case 3: /* forwards, remote and local */
    return tu_msg(rn(2) ? OBSPAM_MSG_FORWARD_REMOTE : OBSPAM_MSG_FORWARD_LOCAL,
                  NULL, rn(2) ? "fw@example.com" : "lf@example.com",
                  "192.0.2.1", rcpt, -1, NULL, NULL, t);
  case 4: /* mailing-list deliveries */
    return tu_msg(OBSPAM_MSG_MAILING_LIST, NULL,
                  rn(2) ? "news@shop.example" : "news-bounces@shop.example",
                  NULL, rcpt, -1, NULL, NULL, t);
  default: /* logins, some with a script's path */
    return tu_msg(0, login(buf, size), NULL, "198.51.100.10", rcpt, -1, NULL,
                  rn(6) == 0 ? paths[0] : NULL, t);
  }
}

/* Decides n random messages from t on, alone or in batches, with resets
   and changes of the options a record carries; the time at the end. */
static int64_t random_traffic(obspam_engine *e, int64_t t, int n,
                              size_t *refused) {
  static char buf[TU_BATCH_MAX][64];
  static tu_batch b;
  int i = 0;

  while (i < n) {
    int op = (int)rn(40);

    /* Mostly seconds apart, sometimes minutes, rarely hours (in all
       less than the retention: an implicit mailbox without history may
       go), now and then back in time. */
    switch (rn(400)) {
    case 0:
      t += 3600 + (int64_t)rn(7200);
      break;
    case 1:
    case 2:
    case 3:
    case 4:
      t -= (int64_t)rn(30);
      break;
    default:
      t += rn(20) == 0 ? 60 + (int64_t)rn(600) : (int64_t)rn(4);
      break;
    }
    if (op == 0) {
      static const tu_object resettable[] = {{OBSPAM_MAILBOX, "a@example.com"},
                                             {OBSPAM_DOMAIN, "shop.example"},
                                             {OBSPAM_SUBSCRIPTION, "acme"}};
      const tu_object *o = &resettable[rn(3)];

      OK(obspam_reset(e, o->kind, o->name, t));
      i++;
    } else if (op == 1) {
      OK(obspam_set_option(e, OBSPAM_OPT_RETENTION_HOURS,
                           (int64_t)(100 + rn(100))));
      OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_PERIOD,
                           (int64_t)(60 * (1 + rn(120)))));
    } else if (op == 2) {
      OK(obspam_set_option(e, OBSPAM_OPT_COUNT_MAILING_LISTS, (int64_t)rn(2)));
    } else if (op == 3) {
      size_t k = 1 + rn(20), j;

      for (j = 0; j < k; j++)
        b.m[j] = random_message(t, buf[j], sizeof(buf[j]));
      tu_batch_ready(&b, k);
      (void)obspam_decide_batch(e, b.pm, b.pv, b.rc, k);
      for (j = 0; j < k; j++)
        *refused += b.rc[j] == OBSPAM_OK && b.v[j].action == OBSPAM_REFUSE;
      i += (int)k;
    } else {
      obspam_message m = random_message(t, buf[0], sizeof(buf[0]));
      obspam_verdict v = OBSPAM_VERDICT_INIT;

      if (obspam_decide(e, &m, &v) == OBSPAM_OK)
        *refused += v.action == OBSPAM_REFUSE;
      i++;
    }
  }
  return t;
}

static void all_objects(void) {
  size_t i;

  nobjects = 0;
  for (i = 0; i < sizeof(logins) / sizeof(logins[0]); i++)
    object(OBSPAM_MAILBOX, logins[i]);
  for (i = 0; i < 60; i++) {
    char name[64];

    snprintf(name, sizeof(name), "m%d@big.example", (int)i);
    object(OBSPAM_MAILBOX, name);
  }
  object(OBSPAM_MAILBOX, "news@shop.example");
  object(OBSPAM_DOMAIN, "example.com");
  object(OBSPAM_DOMAIN, "shop.example");
  object(OBSPAM_DOMAIN, "big.example");
  object(OBSPAM_SUBSCRIPTION, "acme");
  object(OBSPAM_SUBSCRIPTION, "shop");
  object(OBSPAM_SUBSCRIPTION, "big");
}

/* The same charges through format 3 and format 2 replay to the same
   engine, and both to what the engine that decided them holds. */
Test(journal_format, format_3_replays_as_format_2) {
  uint64_t s;

  all_objects();
  memset(&kinds, 0, sizeof(kinds));
  for (s = 1; s <= 6; s++) {
    obspam_engine *e = engine(), *x, *y;
    int64_t t, r3 = -1, r2 = -1;
    size_t refused = 0;
    char what[64];
    struct stat st3, st2;

    seed = s;
    snprintf(what, sizeof(what), "seed %llu", (unsigned long long)s);
    OK(obspam_journal_open(e, state, 0, NULL, NULL));
    tap_install(e);
    t = random_traffic(e, T0, 3000, &refused);
    tap_remove(e);
    OK(obspam_journal_close(e));
    cr_assert_gt(refused, 300, "%s: %zu refusals", what, refused);
    f2_write(journal2);
    cr_assert_eq(stat(journal, &st3), 0);
    cr_assert_eq(stat(journal2, &st2), 0);
    /* The names once: less than a fifth of format 2's bytes. */
    cr_assert_lt(st3.st_size * 5, st2.st_size, "%s: %lld and %lld bytes", what,
                 (long long)st3.st_size, (long long)st2.st_size);
    x = replayed_from(state, &r3);
    y = replayed_from(state2, &r2);
    same_options(e, x);
    same_options(e, y);
    cr_assert_eq(r3, (int64_t)f2.n, "%s: %lld of %zu", what, (long long)r3,
                 f2.n);
    cr_assert_eq(r2, (int64_t)f2.n, "%s: %lld of %zu", what, (long long)r2,
                 f2.n);
    same_everything(x, y, T0 - 86400, t, 1, what);
    same_everything(e, x, T0 - 86400, t, 0, what);
    obspam_engine_free(x);
    obspam_engine_free(y);
    obspam_engine_free(e);
    unlink(journal);
    unlink(journal2);
  }
  f2_release();
  /* Every kind of record went through both formats. */
  cr_assert(kinds.accepted && kinds.probe && kinds.reset && kinds.forward &&
                kinds.list && kinds.listed && kinds.uid && kinds.no_uid,
            "accepted %zu probe %zu reset %zu forward %zu list %zu listed %zu "
            "uid %zu no uid %zu",
            kinds.accepted, kinds.probe, kinds.reset, kinds.forward, kinds.list,
            kinds.listed, kinds.uid, kinds.no_uid);
  for (s = 0; s < 3; s++) {
    int w;

    for (w = 0; w < 4; w++)
      cr_assert_gt(kinds.refused[s][w], 0, "no refusal at kind %d window %d",
                   (int)s + OBSPAM_SUBSCRIPTION, w - 1);
  }
}

/* A format 2 journal, as 1.4.2 left it, replays on upgrade; the replay
   writes it again as format 3 (each record of format 2 wrapped in one of
   format 3), and the upgraded engine goes on in format 3 after them: a
   second restart replays both exactly. */
Test(journal_format, format_2_journal_upgrades) {
  obspam_engine *e = engine(), *x, *z;
  int64_t t, tx, replayed = -1;
  size_t refused = 0, old;
  uint8_t h[32];
  int fd;

  all_objects();
  OK(obspam_journal_open(e, state2, 0, NULL, NULL));
  tap_install(e);
  seed = 7;
  t = random_traffic(e, T0, 1000, &refused);
  tap_remove(e);
  old = f2.n;
  f2_write(journal);
  x = replayed_from(state, &replayed);
  cr_assert_eq(replayed, (int64_t)old);
  fd = open(journal, O_RDONLY);
  cr_assert_geq(fd, 0);
  cr_assert_eq(read(fd, h, sizeof(h)), 32);
  close(fd);
  cr_assert_eq(h[8], 3, "the journal is format %d", h[8]);
  same_options(e, x);
  same_everything(e, x, T0 - 86400, t, 0, "upgraded");
  /* The same decisions on both from here. */
  tap_install(x);
  seed = 8;
  tx = random_traffic(x, t, 500, &refused);
  tap_remove(x);
  seed = 8;
  cr_assert_eq(random_traffic(e, t, 500, &refused), tx);
  OK(obspam_journal_close(x));
  z = replayed_from(state, &replayed);
  cr_assert_eq(replayed, (int64_t)(old + f2.n));
  same_options(e, z);
  same_everything(e, z, T0 - 86400, tx, 0, "after the upgrade");
  obspam_engine_free(z);
  obspam_engine_free(x);
  obspam_engine_free(e);
  f2_release();
}
