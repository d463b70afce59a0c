/* SPDX-License-Identifier: MIT */
/*
 * obspam_decide_batch: each message is decided exactly as obspam_decide
 * decides it. Two engines with the same configuration get the same random
 * stream, one message at a time and in batches of random sizes; every
 * return code and verdict field, the statistics of every object, the
 * report and the notices must be the same, and with journals open, every
 * record of the journals. Then the edges: NULL arrays,
 * an empty batch, failing messages among good ones, immediate notices.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "testutil.h"

static const char conf[] =
    "count-unauthenticated yes\n"
    "count-forward-remote yes\n"
    "notify-period 600\n"
    "whitelist 192.0.2.0/24\n"
    "whitelist 2001:db8::/32\n"
    "default mailbox=20 domain=60 subscription=150 scripts=yes\n"
    "plan small mailbox=5 domain=12 subscription=30 scripts=no\n"
    "plan big mailbox=40 domain=unlimited subscription=200\n"
    "subscription acme plan=big uid=1001 contact=ops@acme.example\n"
    "subscription bakery plan=small uid=1002\n"
    "subscription solo uid=1003 subscription=9\n"
    "domain acme.example subscription=acme\n"
    "domain shop.acme.example subscription=acme domain=25\n"
    "domain bakery.example subscription=bakery\n"
    "domain solo.example subscription=solo\n"
    "mailbox info@acme.example limit=7\n"
    "mailbox sales@acme.example\n"
    "mailbox x@shop.acme.example limit=unlimited\n"
    "mailbox demo@bakery.example limit=3\n"
    "mailbox intern@bakery.example limit=0\n"
    "mailbox me@solo.example\n";

static const char *const logins[] = {"info@acme.example",
                                     "SALES@acme.example",
                                     "x@shop.acme.example",
                                     "demo@bakery.example",
                                     "intern@bakery.example",
                                     "me@solo.example",
                                     "nobody@acme.example",
                                     "acme.example",
                                     "who@elsewhere.example",
                                     "bad login",
                                     NULL};
static const char *const clients[] = {NULL,          "198.51.100.4",
                                      "192.0.2.9",   "2001:db8::1",
                                      "203.0.113.7", "not-an-address"};
static const char *const hints[] = {NULL, "acme.example", "shop.acme.example",
                                    "bakery.example"};
static const char *const scripts[] = {NULL, "/var/www/acme/index.php",
                                      "/var/www/bakery/wp-login.php"};
static const tu_object objects[] = {{OBSPAM_SUBSCRIPTION, "acme"},
                                    {OBSPAM_SUBSCRIPTION, "bakery"},
                                    {OBSPAM_SUBSCRIPTION, "solo"},
                                    {OBSPAM_DOMAIN, "acme.example"},
                                    {OBSPAM_DOMAIN, "shop.acme.example"},
                                    {OBSPAM_DOMAIN, "bakery.example"},
                                    {OBSPAM_DOMAIN, "solo.example"},
                                    {OBSPAM_MAILBOX, "info@acme.example"},
                                    {OBSPAM_MAILBOX, "sales@acme.example"},
                                    {OBSPAM_MAILBOX, "x@shop.acme.example"},
                                    {OBSPAM_MAILBOX, "demo@bakery.example"},
                                    {OBSPAM_MAILBOX, "intern@bakery.example"},
                                    {OBSPAM_MAILBOX, "me@solo.example"}};
#define N_OBJECTS (sizeof(objects) / sizeof(objects[0]))
#define N_MSG 4000

static uint64_t seed;

static uint32_t rn(uint32_t n) {
  seed ^= seed << 13;
  seed ^= seed >> 7;
  seed ^= seed << 17;
  return (uint32_t)(seed % n);
}

#define PICK(a) (a)[rn(sizeof(a) / sizeof((a)[0]))]

/* A random message; about one in forty is invalid, and the clock moves
   on by up to three minutes with now and then a step back. */
static obspam_message random_message(int64_t *t) {
  static const uint32_t flag_set[] = {0,
                                      0,
                                      0,
                                      OBSPAM_MSG_SCRIPT,
                                      OBSPAM_MSG_MAILING_LIST,
                                      OBSPAM_MSG_FORWARD_REMOTE,
                                      OBSPAM_MSG_FORWARD_LOCAL,
                                      OBSPAM_MSG_PROBE};
  uint32_t flags = PICK(flag_set);
  obspam_message m;

  *t += rn(10) == 0 ? -(int64_t)rn(120) : (int64_t)rn(180);
  m = tu_msg(flags, flags == OBSPAM_MSG_SCRIPT ? NULL : PICK(logins),
             PICK(logins), PICK(clients), 1 + rn(6),
             flags == OBSPAM_MSG_SCRIPT ? 1000 + (int64_t)rn(5) : -1,
             PICK(hints), PICK(scripts), *t);
  if (rn(40) == 0)
    m.recipients = 0;
  return m;
}

typedef struct log {
  char text[1 << 20];
  size_t len;
} log;

static void record(const obspam_notice *n, void *ud) {
  log *l = ud;
  int w = tu_notice_line(l->text + l->len, sizeof(l->text) - l->len, n);

  cr_assert(w > 0 && (size_t)w < sizeof(l->text) - l->len, "notice log full");
  l->len += (size_t)w;
}

static obspam_engine *engine(int immediate, log *l) {
  obspam_engine *e = tu_new();

  OK(obspam_load_config_string(e, conf));
  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_IMMEDIATE, immediate));
  l->len = 0;
  l->text[0] = '\0';
  OK(obspam_set_notify(e, record, l));
  return e;
}

static void put_row(const obspam_report_row *r, void *ud) {
  log *l = ud;
  int w = tu_row_line(l->text + l->len, sizeof(l->text) - l->len, r);

  cr_assert(w > 0 && (size_t)w < sizeof(l->text) - l->len, "report log full");
  l->len += (size_t)w;
}

static void same_state(obspam_engine *a, obspam_engine *b, int64_t t) {
  static log ra, rb;
  size_t i;

  for (i = 0; i < N_OBJECTS; i++) {
    obspam_stats x = STATS(a, objects[i].kind, objects[i].name, t);
    obspam_stats y = STATS(b, objects[i].kind, objects[i].name, t);

    cr_assert(x.count == y.count && x.refused == y.refused &&
                  x.refused_total == y.refused_total &&
                  x.last_refused == y.last_refused && x.limit == y.limit,
              "seed %" PRIu64 ": %s: count %" PRId64 "/%" PRId64
              " refused %" PRId64 "/%" PRId64 " total %" PRId64 "/%" PRId64,
              seed, objects[i].name, x.count, y.count, x.refused, y.refused,
              x.refused_total, y.refused_total);
  }
  ra.len = rb.len = 0;
  OK(obspam_report(a, 0, INT64_MAX, put_row, &ra));
  OK(obspam_report(b, 0, INT64_MAX, put_row, &rb));
  cr_assert_str_eq(ra.text, rb.text);
}

/* The records of the journal of state (after its header of 32 bytes,
   which names the snapshot it follows), in buf; their length. */
static size_t journal_records(const char *state, char *buf, size_t cap) {
  char path[320];
  FILE *f;
  size_t n;

  snprintf(path, sizeof(path), "%s.journal", state);
  f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  n = fread(buf, 1, cap, f);
  cr_assert(feof(f), "%s is larger than %zu bytes", path, cap);
  fclose(f);
  cr_assert_gt(n, 32);
  memmove(buf, buf + 32, n - 32);
  return n - 32;
}

/* dir is not NULL: both engines journal there (one/state, many/state),
   and their records must be the same, byte for byte: a batch records its
   charges under one hold of the journal's lock (record_many), a message
   decided alone with its own. */
static void same_stream_in(uint64_t s, int immediate, const char *dir) {
  static log la, lb;
  static char ja[1 << 22], jb[1 << 22];
  obspam_engine *one = engine(immediate, &la), *many = engine(immediate, &lb);
  char sa[300], sb[300];
  static tu_batch b;
  int64_t t = T0;
  size_t done = 0, refused = 0, failed = 0;

  seed = s;
  if (dir != NULL) {
    snprintf(sa, sizeof(sa), "%s/one", dir);
    snprintf(sb, sizeof(sb), "%s/many", dir);
    OK(obspam_journal_open(one, sa, 0, NULL, NULL));
    OK(obspam_journal_open(many, sb, 0, NULL, NULL));
  }
  while (done < N_MSG) {
    size_t n = 1 + rn(40), i; /* at most TU_BATCH_MAX */
    int first = OBSPAM_OK, got;

    for (i = 0; i < n; i++)
      b.m[i] = random_message(&t);
    tu_batch_ready(&b, n);
    got = obspam_decide_batch(many, b.pm, b.pv, b.rc, n);
    for (i = 0; i < n; i++) {
      obspam_verdict w = OBSPAM_VERDICT_INIT;
      int want = obspam_decide(one, &b.m[i], &w);
      char x[512], y[512];

      if (want != OBSPAM_OK && first == OBSPAM_OK)
        first = want;
      cr_assert_eq(b.rc[i], want, "seed %" PRIu64 " message %zu: %d, not %d", s,
                   done + i, b.rc[i], want);
      if (want != OBSPAM_OK) {
        failed++;
        continue;
      }
      refused += w.action == OBSPAM_REFUSE;
      cr_assert(b.v[i].action == w.action && b.v[i].kind == w.kind &&
                    strcmp(b.v[i].object, w.object) == 0 &&
                    b.v[i].limit == w.limit && b.v[i].count == w.count &&
                    b.v[i].retry_after == w.retry_after,
                "seed %" PRIu64 " message %zu: batch %s, one by one %s", s,
                done + i, tu_fmt_verdict(x, sizeof x, &b.v[i]),
                tu_fmt_verdict(y, sizeof y, &w));
    }
    cr_assert_eq(got, first);
    done += n;
  }
  /* The stream must have reached the interesting cases. */
  cr_assert_gt(refused, N_MSG / 20, "%zu refusals", refused);
  cr_assert_gt(failed, N_MSG / 100, "%zu failures", failed);
  same_state(one, many, t);
  cr_assert_str_eq(la.text, lb.text, "immediate notices");
  OK(obspam_notify_flush(one, t + 86400));
  OK(obspam_notify_flush(many, t + 86400));
  cr_assert_gt(la.len, 0);
  cr_assert_str_eq(la.text, lb.text, "notices");
  if (dir != NULL) {
    size_t na, nb;

    OK(obspam_journal_flush(one));
    OK(obspam_journal_flush(many));
    na = journal_records(sa, ja, sizeof(ja));
    nb = journal_records(sb, jb, sizeof(jb));
    /* Records of about ten bytes (format 3: the names once) for most
       of the messages accepted or refused. */
    cr_assert_gt(na, (size_t)(N_MSG - failed) * 8, "%zu bytes", na);
    cr_assert_eq(na, nb, "journals of %zu and %zu bytes", na, nb);
    cr_assert(memcmp(ja, jb, na) == 0, "seed %" PRIu64 ": the journals differ",
              s);
  }
  obspam_engine_free(one);
  obspam_engine_free(many);
}

static void same_stream(uint64_t s, int immediate) {
  same_stream_in(s, immediate, NULL);
}

Test(batch, same_as_one_by_one) {
  uint64_t s;

  for (s = 1; s <= 5; s++)
    same_stream(0x9e3779b97f4a7c15u * s, 0);
}

Test(batch, same_as_one_by_one_with_immediate_notices) {
  uint64_t s;

  for (s = 1; s <= 3; s++)
    same_stream(0xc2b2ae3d27d4eb4fu * s, 1);
}

Test(batch, same_journal_as_one_by_one) {
  char dir[256], sub[300];
  uint64_t s;

  tu_mkdtemp(dir, sizeof(dir), "obspam-batch");
  for (s = 1; s <= 3; s++) {
    snprintf(sub, sizeof(sub), "%s/%d", dir, (int)s);
    cr_assert_eq(mkdir(sub, 0700), 0);
    same_stream_in(0x165667b19e3779f9u * s, (int)(s & 1), sub);
  }
  tu_rmtree(dir);
}

static obspam_message login_at(const char *login, uint32_t rcpt, int64_t t) {
  return tu_msg(0, login, login, "198.51.100.4", rcpt, -1, NULL, NULL, t);
}

/* A new engine in *e, and a batch of five messages of login to rcpt
   recipients, from T0 on, step seconds apart. */
static tu_batch *five_logins(obspam_engine **e, const char *login,
                             uint32_t rcpt, int64_t step) {
  static log l;
  static tu_batch b;

  *e = engine(0, &l);
  for (int i = 0; i < 5; i++)
    b.m[i] = login_at(login, rcpt, T0 + step * i);
  tu_batch_ready(&b, 5);
  return &b;
}

Test(batch, a_limit_of_three_accepts_three_of_five) {
  obspam_engine *e;
  tu_batch *b = five_logins(&e, "demo@bakery.example", 1, 60);
  obspam_verdict *v = b->v;
  int *rc = b->rc, i;

  OK(obspam_decide_batch(e, b->pm, b->pv, b->rc, 5));
  for (i = 0; i < 3; i++) {
    cr_assert_eq(rc[i], OBSPAM_OK);
    cr_assert_eq(v[i].action, OBSPAM_ACCEPT);
    cr_assert_eq(v[i].kind, OBSPAM_MAILBOX);
    cr_assert_str_eq(v[i].object, "demo@bakery.example");
    cr_assert_eq(v[i].limit, 3);
    cr_assert_eq(v[i].count, i);
    cr_assert_eq(v[i].retry_after, 0);
  }
  for (i = 3; i < 5; i++) {
    cr_assert_eq(rc[i], OBSPAM_OK);
    cr_assert_eq(v[i].action, OBSPAM_REFUSE);
    cr_assert_str_eq(v[i].object, "demo@bakery.example");
    cr_assert_eq(v[i].limit, 3);
    cr_assert_eq(v[i].count, 3);
    /* The first charge (minute T0) leaves the window at T0 + 3600. */
    cr_assert_eq(v[i].retry_after, 3600 - 60 * i);
  }
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, "demo@bakery.example", T0 + 300);
  cr_assert_eq(s.count, 3);
  cr_assert_eq(s.refused, 2);
  obspam_engine_free(e);
}

Test(batch, null_arrays_decide_nothing) {
  static log l;
  obspam_engine *e = engine(0, &l);
  obspam_message m = login_at("info@acme.example", 1, T0);
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  const obspam_message *pm[1] = {&m};
  obspam_verdict *pv[1] = {&v};
  int rc[1] = {99};

  RC(obspam_decide_batch(NULL, pm, pv, rc, 1), OBSPAM_EINVAL);
  RC(obspam_decide_batch(e, NULL, pv, rc, 1), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "decide_batch: the message array is NULL");
  RC(obspam_decide_batch(e, pm, NULL, rc, 1), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "decide_batch: the verdict array is NULL");
  RC(obspam_decide_batch(e, pm, pv, NULL, 1), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "decide_batch: the return code array is NULL");
  cr_assert_eq(rc[0], 99);
  cr_assert_eq(STATS(e, OBSPAM_MAILBOX, "info@acme.example", T0).count, 0);
  /* Nothing to decide: fine, whatever the arrays. */
  OK(obspam_decide_batch(e, NULL, NULL, NULL, 0));
  obspam_engine_free(e);
}

Test(batch, failures_among_good_messages) {
  obspam_engine *e;
  tu_batch *b = five_logins(&e, "info@acme.example", 2, 1);
  obspam_verdict *v = b->v;
  int *rc = b->rc;

  b->m[1].recipients = 0;
  b->pm[3] = NULL;
  b->m[4].client_address = "300.1.1.1";
  RC(obspam_decide_batch(e, b->pm, b->pv, b->rc, 5), OBSPAM_EINVAL);
  cr_assert_eq(rc[0], OBSPAM_OK);
  cr_assert_eq(rc[1], OBSPAM_EINVAL);
  cr_assert_eq(rc[2], OBSPAM_OK);
  cr_assert_eq(rc[3], OBSPAM_EINVAL);
  cr_assert_eq(rc[4], OBSPAM_EINVAL);
  /* The last failure's message. */
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "decide: client address '300.1.1.1' is not an IPv4 or "
                   "IPv6 address");
  cr_assert_eq(v[2].action, OBSPAM_ACCEPT);
  cr_assert_eq(v[2].count, 2);
  cr_assert_eq(STATS(e, OBSPAM_MAILBOX, "info@acme.example", T0 + 5).count, 4);
  obspam_engine_free(e);
}

static int immediate_count;

static void count_notice(const obspam_notice *n, void *ud) {
  (void)ud;
  cr_assert_eq(n->refused, 1);
  cr_assert_eq(n->exceeded, 1);
  cr_assert_eq(n->kind, OBSPAM_MAILBOX);
  immediate_count++;
}

Test(batch, immediate_notices_come_once_per_object) {
  obspam_engine *e = tu_new();
  static tu_batch b;
  int i;

  OK(obspam_load_config_string(e, conf));
  OK(obspam_set_option(e, OBSPAM_OPT_NOTIFY_IMMEDIATE, 1));
  OK(obspam_set_notify(e, count_notice, NULL));
  /* Limit 3, one recipient each: the fourth is the first refusal, of the
     mailbox, its domain and its subscription at once; only the mailbox
     went over its own limit, and only it is notified, once. */
  for (i = 0; i < 6; i++)
    b.m[i] = login_at("demo@bakery.example", 1, T0 + i);
  tu_batch_ready(&b, 6);
  immediate_count = 0;
  OK(obspam_decide_batch(e, b.pm, b.pv, b.rc, 6));
  cr_assert_eq(b.v[3].action, OBSPAM_REFUSE);
  cr_assert_eq(immediate_count, 1);
  obspam_engine_free(e);
}
