/* SPDX-License-Identifier: MIT */
/* Fuzzes a stream of decisions on a small hosting tree, interleaved with
   every change an adapter or a panel makes while mail flows: limits, objects
   added and removed, uids, scripts, contacts, options, the whitelist,
   reloads, snapshots, reports and notice flushes.

   The input is a program: each operation takes a byte for its kind and a
   few more for its arguments (fuzz_in). Invariants, checked after every
   operation that can break them:

   - every call answers one of the codes it documents for its arguments;
   - obspam_check predicts the verdict obspam_decide (or, at odd seconds,
     obspam_decide_batch) then gives;
   - an accepted message is charged c (recipients, or 1) to each object it
     names and to no other (a probe, OBSPAM_MSG_PROBE, to none), and no
     limited object that was charged is over its limit afterwards; a
     refusal charges nothing, records one refused attempt on the refusing
     object, and its count plus c exceeds its limit (unless scripts are
     forbidden); EXEMPT, UNKNOWN and the disabled ACCEPT name no object and
     change no counter;
   - retry_after is -1 or the first second at which the same message would
     be accepted, nothing else being sent;
   - a whitelisted client is exempt while protection is on;
   - statistics are consistent (sending, non-negative counts), history is
     in order, report rows are in their documented order, notices are
     well-formed and flushed in order;
   - a snapshot saved and loaded back gives the same statistics. */
#include "fuzz.h"

#define T0 1700000000

/* ---- the universe -------------------------------------------------------- */

static const struct {
  int kind;
  const char *name;
  const char *parent; /* for obspam_add */
} objs[] = {
    {OBSPAM_PLAN, "p1", NULL},
    {OBSPAM_PLAN, "p2", NULL},
    {OBSPAM_SUBSCRIPTION, "s1", "p1"},
    {OBSPAM_SUBSCRIPTION, "s2", NULL},
    {OBSPAM_SUBSCRIPTION, "s3", "p2"},
    {OBSPAM_DOMAIN, "a.example", "s1"},
    {OBSPAM_DOMAIN, "b.example", "s1"},
    {OBSPAM_DOMAIN, "c.example", "s2"},
    {OBSPAM_DOMAIN, "d.example", "s3"},
    {OBSPAM_MAILBOX, "x@a.example", NULL},
    {OBSPAM_MAILBOX, "y@a.example", NULL},
    {OBSPAM_MAILBOX, "z@c.example", NULL},
    {OBSPAM_MAILBOX, "w@d.example", NULL},
    /* Declared by no configuration: implicit mailboxes once charged. */
    {OBSPAM_MAILBOX, "other@a.example", NULL},
    {OBSPAM_MAILBOX, "someone@b.example", NULL},
};
#define NOBJ (sizeof(objs) / sizeof(objs[0]))
#define FIRST_LIMITED 2 /* objs[] from here on have statistics */

/* Configurations a reload chooses from, and the whitelist each gives (a
   bit per entry of wl_entries). */
static const char conf0[] =
    "retention 24\n"
    "notify-period 600\n"
    "default mailbox=8 domain=20 subscription=30\n"
    "plan p1 mailbox=4 domain=10 subscription=12 scripts=yes\n"
    "plan p2 scripts=no\n"
    "subscription s1 plan=p1 uid=1000 contact=ops@a.example\n"
    "subscription s2 uid=1001 subscription=6\n"
    "subscription s3 plan=p2 uid=1002\n"
    "domain a.example subscription=s1\n"
    "domain b.example subscription=s1 domain=5 mailbox=2\n"
    "domain c.example subscription=s2\n"
    "domain d.example subscription=s3\n"
    "mailbox x@a.example limit=3\n"
    "mailbox y@a.example\n"
    "mailbox z@c.example limit=inherit\n"
    "mailbox w@d.example limit=0\n"
    "whitelist 192.0.2.0/24\n";
/* b.example moves to s2, c.example goes, limits change. */
static const char conf1[] =
    "count messages\n"
    "notify-immediate yes\n"
    "count-forward-local yes\n"
    "default mailbox=5 domain=unlimited subscription=9\n"
    "plan p1 subscription=unlimited\n"
    "subscription s1 plan=p1 uid=1001\n"
    "subscription s2 uid=1000 contact=s2@b.example\n"
    "domain a.example subscription=s1 mailbox=1\n"
    "domain b.example subscription=s2\n"
    "mailbox x@a.example limit=2\n"
    "whitelist 10.0.0.1\n"
    "whitelist 2001:db8::/32\n";
/* Protection off. */
static const char conf2[] = "enabled no\n"
                            "subscription s1\n"
                            "domain a.example subscription=s1\n"
                            "mailbox x@a.example limit=0\n";
static const char *const confs[] = {conf0, conf1, conf2};
static const unsigned conf_wl[] = {1u, 6u, 0u};

static const char *const wl_entries[] = {"192.0.2.0/24", "10.0.0.1",
                                         "2001:db8::/32"};
#define NWL 3

/* Client addresses, and the whitelist entries each falls in. */
static const struct {
  const char *text;
  unsigned in;
} clients[] = {
    {NULL, 0},           {"", 0},
    {"192.0.2.9", 1},    {"::ffff:192.0.2.200", 1},
    {"10.0.0.1", 2},     {"10.0.0.2", 0},
    {"2001:db8::25", 4}, {"2001:db9::1", 0},
    {"203.0.113.1", 0},
};
#define NCLIENTS (sizeof(clients) / sizeof(clients[0]))

static const char *const addresses[] = {
    NULL,
    "",
    "x@a.example",
    "y@a.example",
    "z@c.example",
    "w@d.example",
    "X@A.Example",
    "other@a.example",
    "someone@b.example",
    "a.example",
    "c.example",
    "nobody@nowhere.example",
    "two@@a.example",
    "@a.example",
    "with space@a.example",
    "s1",
    "x@a.example\r\n",
};
#define NADDR (sizeof(addresses) / sizeof(addresses[0]))

static const char *const scripts[] = {NULL, "", "/var/www/a/index.php",
                                      "/var/www/a/contact.php",
                                      "/tmp/\x1b[31mevil\n.php"};
#define NSCRIPTS (sizeof(scripts) / sizeof(scripts[0]))

static const int64_t limit_values[] = {
    0, 1, 2, 3, 5, 10, OBSPAM_UNLIMITED, OBSPAM_INHERIT, -3, INT64_MAX};
#define NLIMITS (sizeof(limit_values) / sizeof(limit_values[0]))

/* ---- the run ------------------------------------------------------------- */

/* OBSPAM_FUZZ_TRACE=1 prints each operation: to read a crashing input. */
static int trace;

typedef struct run {
  obspam_engine *e;
  int64_t t;      /* the time of the next message; never below 1 */
  int64_t newest; /* the newest time a decision saw: the engine's clock */
  /* The shortest retention in force so far: history pruned under it stays
     pruned when the retention grows again. */
  int64_t min_retention;
  unsigned wl;  /* whitelist entries present, by bit */
  int in_flush; /* notices come from a flush, not from obspam_decide */
  int64_t last_period_start;
  int last_kind;
  char last_name[OBSPAM_NAME_MAX + 1];
  char path[128];
} run;

static void stats_of(run *r, obspam_stats st[NOBJ], int found[NOBJ],
                     int64_t now) {
  size_t i;
  int rc;

  for (i = FIRST_LIMITED; i < NOBJ; i++) {
    obspam_stats s = OBSPAM_STATS_INIT;

    rc = obspam_stats_get(r->e, objs[i].kind, objs[i].name, now, &s);
    FUZZ_CHECK(rc == OBSPAM_OK || rc == OBSPAM_ENOTFOUND, "stats_get %s: %d",
               objs[i].name, rc);
    found[i] = rc == OBSPAM_OK;
    st[i] = s;
    if (!found[i])
      continue;
    FUZZ_CHECK(s.count >= 0 && s.refused >= 0 && s.refused_total >= 0,
               "%s: negative statistics", objs[i].name);
    /* Sending follows what blocks it (the object or an ancestor), and
       nothing blocks while protection is off; an object at its own limit
       is blocked, by itself or by an ancestor that also is. */
    FUZZ_CHECK(s.sending == (s.blocked_kind == -1) &&
                   (!s.disabled || s.blocked_kind == -1),
               "%s: sending %d, blocked by kind %d, disabled %d", objs[i].name,
               s.sending, s.blocked_kind, s.disabled);
    FUZZ_CHECK(s.disabled || s.limit < 0 || s.count < s.limit ||
                   s.blocked_kind != -1,
               "%s: not blocked with count %lld, limit %lld", objs[i].name,
               (long long)s.count, (long long)s.limit);
    /* With two hours or more of history, kept so all along, the hour's
       window is in it. */
    FUZZ_CHECK(r->min_retention < 2 || s.refused_total >= s.refused,
               "%s: %lld refused in the window, %lld in the retention",
               objs[i].name, (long long)s.refused, (long long)s.refused_total);
  }
}

static void on_notice(const obspam_notice *n, void *ud) {
  run *r = ud;
  size_t i;

  FUZZ_CHECK(n->struct_size == sizeof(*n), "notice struct_size");
  FUZZ_CHECK(n->kind >= OBSPAM_SUBSCRIPTION && n->kind <= OBSPAM_MAILBOX,
             "notice of kind %d", n->kind);
  FUZZ_CHECK(n->name != NULL && n->name[0] != '\0', "notice without a name");
  for (i = 0; n->name[i] != '\0'; i++)
    FUZZ_CHECK(!(n->name[i] >= 'A' && n->name[i] <= 'Z'),
               "notice name '%s' is not lower case", n->name);
  FUZZ_CHECK(n->subscription != NULL, "notice of %s without subscription",
             n->name);
  FUZZ_CHECK(n->refused >= 1 && n->sent >= 0, "notice of %s: %lld refused",
             n->name, (long long)n->refused);
  FUZZ_CHECK(n->period_start < n->period_end &&
                 n->period_start <= n->first_refused &&
                 n->first_refused <= n->last_refused &&
                 n->last_refused < n->period_end,
             "notice of %s: period [%lld, %lld), refusals %lld..%lld", n->name,
             (long long)n->period_start, (long long)n->period_end,
             (long long)n->first_refused, (long long)n->last_refused);
  /* Only an object over its own limit is noticed. */
  FUZZ_CHECK(n->exceeded >= 1 && n->exceeded <= n->refused,
             "notice of %s: %lld over the limit of %lld refused", n->name,
             (long long)n->exceeded, (long long)n->refused);
  if (!r->in_flush) {
    /* At the object's first attempt over its limit in the period; it may
       have been refused before, because of an ancestor. */
    FUZZ_CHECK(n->exceeded == 1 && n->first_refused == n->last_refused,
               "immediate notice of %s with %lld attempts over the limit",
               n->name, (long long)n->exceeded);
    return;
  }
  /* A flush is sorted: period, then kind, then name. */
  if (r->last_kind != 0) {
    int c = n->period_start != r->last_period_start
                ? (n->period_start < r->last_period_start ? -1 : 1)
            : n->kind != r->last_kind ? n->kind - r->last_kind
                                      : strcmp(n->name, r->last_name);

    /* Equal keys happen: an object refused in a period, whose period was
       closed early (the notify-period option changed, or it was removed)
       and that was refused again in a period with the same start. */
    FUZZ_CHECK(c >= 0, "flushed notices out of order: %s after %s", n->name,
               r->last_name);
  }
  r->last_period_start = n->period_start;
  r->last_kind = n->kind;
  snprintf(r->last_name, sizeof(r->last_name), "%s", n->name);
}

static void same_verdict(const obspam_verdict *a, const obspam_verdict *b,
                         const char *what) {
  FUZZ_CHECK(a->action == b->action && a->kind == b->kind &&
                 a->limit == b->limit && a->count == b->count &&
                 a->retry_after == b->retry_after &&
                 strcmp(a->object, b->object) == 0,
             "%s: check said %d %d '%s' limit %lld count %lld retry %lld, "
             "decide %d %d '%s' limit %lld count %lld retry %lld",
             what, a->action, a->kind, a->object, (long long)a->limit,
             (long long)a->count, (long long)a->retry_after, b->action, b->kind,
             b->object, (long long)b->limit, (long long)b->count,
             (long long)b->retry_after);
}

static int index_of(int kind, const char *name) {
  size_t i;

  for (i = 0; i < NOBJ; i++)
    if (objs[i].kind == kind && strcmp(objs[i].name, name) == 0)
      return (int)i;
  return -1;
}

static void op_decide(run *r, fuzz_in *in) {
  obspam_message m = OBSPAM_MESSAGE_INIT;
  obspam_verdict v = OBSPAM_VERDICT_INIT, predicted = OBSPAM_VERDICT_INIT;
  obspam_stats before[NOBJ], after[NOBJ];
  int found_before[NOBJ], found_after[NOBJ];
  unsigned client = fuzz_pick(in, NCLIENTS), shape = fuzz_u8(in);
  int64_t enabled, unit, c, now;
  int charged = 0, refused_on_object = 0, self, probe;
  size_t i;

  m.sasl_username = addresses[fuzz_pick(in, NADDR)];
  m.sender = addresses[fuzz_pick(in, NADDR)];
  m.client_address = clients[client].text;
  m.flags = shape & 15;
  m.recipients = (shape & 0x30) == 0x30   ? 1 + fuzz_u8(in) * 1000u
                 : (shape & 0xc0) == 0xc0 ? 4000000000u
                                          : 1 + (shape >> 4 & 3);
  m.uid = 999 + (int64_t)fuzz_pick(in, 5); /* 999 (nobody) .. 1003 */
  m.domain_hint = addresses[fuzz_pick(in, NADDR)];
  m.script = scripts[fuzz_pick(in, NSCRIPTS)];
  r->t += fuzz_u8(in);
  /* A probe (at RCPT time) charges nothing but records its refusal. */
  probe = fuzz_u8(in) < 64;
  if (probe)
    m.flags |= OBSPAM_MSG_PROBE;
  m.time = r->t;
  now = r->t;

  FUZZ_RC(obspam_get_option(r->e, OBSPAM_OPT_ENABLED, &enabled), OBSPAM_OK);
  FUZZ_RC(obspam_get_option(r->e, OBSPAM_OPT_COUNT_UNIT, &unit), OBSPAM_OK);
  c = unit                                   ? 1
      : m.recipients > OBSPAM_RECIPIENTS_MAX ? OBSPAM_RECIPIENTS_MAX
                                             : (int64_t)m.recipients;

  stats_of(r, before, found_before, now);
  FUZZ_RC(obspam_check(r->e, &m, &predicted), OBSPAM_OK);
  if (now & 1) {
    /* At odd seconds through obspam_decide_batch, as a batch of one
       (the input format stays as it was). */
    const obspam_message *pm = &m;
    obspam_verdict *pv = &v;
    int rc = -99;

    FUZZ_RC(obspam_decide_batch(r->e, &pm, &pv, &rc, 1), OBSPAM_OK);
    FUZZ_RC(rc, OBSPAM_OK);
  } else {
    FUZZ_RC(obspam_decide(r->e, &m, &v), OBSPAM_OK);
  }
  same_verdict(&predicted, &v, "check before decide");
  /* A message older than the newest one is decided at the newest time. */
  if (now > r->newest)
    r->newest = now;
  now = r->newest;
  if (trace)
    fprintf(stderr,
            "decide t=%lld login=%s sender=%s client=%s flags=%u rcpt=%u "
            "uid=%lld hint=%s script=%s -> action %d kind %d '%s' limit %lld "
            "count %lld retry %lld\n",
            (long long)m.time, m.sasl_username ? m.sasl_username : "(null)",
            m.sender ? m.sender : "(null)",
            m.client_address ? m.client_address : "(null)", m.flags,
            m.recipients, (long long)m.uid,
            m.domain_hint ? m.domain_hint : "(null)",
            m.script ? m.script : "(null)", v.action, v.kind, v.object,
            (long long)v.limit, (long long)v.count, (long long)v.retry_after);
  stats_of(r, after, found_after, now);

  if (enabled && (clients[client].in & r->wl))
    FUZZ_CHECK(v.action == OBSPAM_EXEMPT, "client %s is whitelisted, action %d",
               m.client_address, v.action);
  FUZZ_CHECK(v.action >= OBSPAM_ACCEPT && v.action <= OBSPAM_UNKNOWN,
             "action %d", v.action);

  self = v.kind >= OBSPAM_SUBSCRIPTION ? index_of(v.kind, v.object) : -1;
  /* An implicit mailbox that this decision made had nothing before. */
  if (self >= 0 && objs[self].kind == OBSPAM_MAILBOX && !found_before[self] &&
      found_after[self] &&
      (v.action == OBSPAM_ACCEPT || v.action == OBSPAM_REFUSE)) {
    obspam_stats zero = OBSPAM_STATS_INIT;

    zero.limit = after[self].limit;
    zero.sending = 1;
    before[self] = zero;
    found_before[self] = 1;
  }
  if (v.kind != -1)
    FUZZ_CHECK(self >= 0 && found_before[self] && found_after[self],
               "verdict names %d '%s', which is not in the tree", v.kind,
               v.object);
  for (i = FIRST_LIMITED; i < NOBJ; i++) {
    int64_t dc, dr;

    if (!found_before[i] || !found_after[i])
      continue;
    dc = after[i].count - before[i].count;
    dr = after[i].refused - before[i].refused;
    if (v.action == OBSPAM_ACCEPT && v.kind != -1) {
      FUZZ_CHECK(dc == 0 || (dc == c && !probe),
                 "%s charged %lld, not 0 or %lld%s", objs[i].name,
                 (long long)dc, (long long)c, probe ? " (a probe)" : "");
      FUZZ_CHECK(dr == 0, "%s: a refusal recorded on an accept", objs[i].name);
      if (dc == c) {
        charged++;
        FUZZ_CHECK(after[i].limit < 0 || after[i].count <= after[i].limit,
                   "%s accepted over its limit: %lld > %lld", objs[i].name,
                   (long long)after[i].count, (long long)after[i].limit);
      }
    } else if (v.action == OBSPAM_REFUSE) {
      FUZZ_CHECK(dc == 0, "%s charged %lld on a refusal", objs[i].name,
                 (long long)dc);
      FUZZ_CHECK(dr == 0 || dr == 1, "%s: %lld refusals recorded", objs[i].name,
                 (long long)dr);
      if ((int)i == self)
        refused_on_object = (int)dr;
    } else {
      FUZZ_CHECK(dc == 0 && dr == 0, "%s changed on action %d", objs[i].name,
                 v.action);
    }
  }

  switch (v.action) {
  case OBSPAM_ACCEPT:
    FUZZ_CHECK(v.retry_after == 0, "accept with retry_after %lld",
               (long long)v.retry_after);
    if (v.kind == -1) {
      FUZZ_CHECK(!enabled && v.object[0] == '\0' && v.limit == 0 &&
                     v.count == 0,
                 "an accept without an object while enabled");
      break;
    }
    FUZZ_CHECK((probe ? charged == 0 && after[self].count == v.count
                      : charged >= 1 && after[self].count == v.count + c) &&
                   before[self].count == v.count,
               "accepted on %s: count %lld before, %lld after, verdict %lld",
               v.object, (long long)before[self].count,
               (long long)after[self].count, (long long)v.count);
    FUZZ_CHECK(v.limit == after[self].limit, "verdict limit %lld, stats %lld",
               (long long)v.limit, (long long)after[self].limit);
    break;
  case OBSPAM_REFUSE:
    FUZZ_CHECK(enabled && self >= 0 && refused_on_object == 1,
               "refused by %s without a refusal recorded on it", v.object);
    FUZZ_CHECK(before[self].count == v.count && v.limit == after[self].limit,
               "refused by %s: count %lld (stats %lld), limit %lld (stats "
               "%lld)",
               v.object, (long long)v.count, (long long)before[self].count,
               (long long)v.limit, (long long)after[self].limit);
    if (v.retry_after != -1) {
      obspam_message later = m;
      obspam_verdict w = OBSPAM_VERDICT_INIT;

      FUZZ_CHECK(v.retry_after >= 1 && v.limit >= 0 && v.count + c > v.limit &&
                     c <= v.limit,
                 "refused by %s: count %lld + %lld, limit %lld, retry %lld",
                 v.object, (long long)v.count, (long long)c, (long long)v.limit,
                 (long long)v.retry_after);
      later.time = now + v.retry_after;
      FUZZ_RC(obspam_check(r->e, &later, &w), OBSPAM_OK);
      FUZZ_CHECK(w.action == OBSPAM_ACCEPT,
                 "retry_after %lld, yet refused by %s then",
                 (long long)v.retry_after, w.object);
      if (v.retry_after > 1) {
        later.time = now + v.retry_after - 1;
        FUZZ_RC(obspam_check(r->e, &later, &w), OBSPAM_OK);
        FUZZ_CHECK(w.action == OBSPAM_REFUSE,
                   "retry_after %lld, yet accepted one second earlier",
                   (long long)v.retry_after);
      }
    } else {
      /* Never: c is over some charged object's limit, or scripts are
         forbidden; either way an empty window does not help. */
      obspam_message later = m;
      obspam_verdict w = OBSPAM_VERDICT_INIT;

      later.time = now + 7200;
      FUZZ_RC(obspam_check(r->e, &later, &w), OBSPAM_OK);
      FUZZ_CHECK(w.action == OBSPAM_REFUSE,
                 "retry_after -1 from %s, yet accepted two hours later",
                 v.object);
    }
    break;
  default:
    FUZZ_CHECK(v.kind == -1 && v.object[0] == '\0' && v.limit == 0 &&
                   v.count == 0 && v.retry_after == 0,
               "action %d names an object", v.action);
  }
}

/* A call that may answer one of a few codes. */
#define ONE_OF(call, ...)                                                      \
  do {                                                                         \
    static const int ok_[] = {__VA_ARGS__};                                    \
    int rc_ = (call);                                                          \
    size_t k_;                                                                 \
    for (k_ = 0; k_ < sizeof(ok_) / sizeof(ok_[0]) && ok_[k_] != rc_; k_++)    \
      ;                                                                        \
    FUZZ_CHECK(k_ < sizeof(ok_) / sizeof(ok_[0]), "%s returned %d (%s): %s",   \
               #call, rc_, obspam_strerror(rc_), obspam_engine_errmsg(r->e));  \
  } while (0)

/* The order of obspam_report: objects over their own limit first, most
   such attempts first; then the scripts, most sent, then most refused;
   ties by name, then kind. 1 when prev may come before row. */
static int report_ordered(const obspam_report_row *prev,
                          const obspam_report_row *row) {
  int ps = prev->kind == OBSPAM_SCRIPT, rs = row->kind == OBSPAM_SCRIPT, c;

  if (ps != rs)
    return rs;
  if (prev->exceeded != row->exceeded)
    return prev->exceeded > row->exceeded;
  if (rs && prev->sent != row->sent)
    return prev->sent > row->sent;
  if (rs && prev->refused != row->refused)
    return prev->refused > row->refused;
  c = strcmp(prev->name, row->name);
  return c != 0 ? c < 0 : prev->kind <= row->kind;
}

static void on_row(const obspam_report_row *row, void *ud) {
  obspam_report_row *prev = ud;

  FUZZ_CHECK(row->kind >= OBSPAM_SUBSCRIPTION && row->kind <= OBSPAM_SCRIPT,
             "report row of kind %d", row->kind);
  FUZZ_CHECK(row->kind == OBSPAM_SCRIPT ? row->sent > 0 || row->refused > 0
                                        : row->exceeded > 0,
             "report row %s neither over its limit nor a script that sent",
             row->name);
  FUZZ_CHECK(row->exceeded <= row->refused,
             "report row %s: %lld over the limit of %lld refused", row->name,
             (long long)row->exceeded, (long long)row->refused);
  if (prev->struct_size != 0)
    FUZZ_CHECK(report_ordered(prev, row),
               "report rows out of order: %s (%lld over) after %s (%lld over)",
               row->name, (long long)row->exceeded, prev->name,
               (long long)prev->exceeded);
  *prev = *row;
  prev->struct_size = 1;
  /* The name is only valid during the callback: keep a copy. */
  {
    static char name[2048];

    snprintf(name, sizeof(name), "%s", row->name);
    prev->name = name;
  }
}

static void on_hour(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  int64_t *prev = ud;

  FUZZ_CHECK(hour % 3600 == 0 && hour > *prev && sent >= 0 && refused >= 0 &&
                 sent + refused > 0,
             "history hour %lld (after %lld): sent %lld refused %lld",
             (long long)hour, (long long)*prev, (long long)sent,
             (long long)refused);
  *prev = hour;
}

static void op_snapshot(run *r) {
  obspam_stats before[NOBJ], after[NOBJ];
  int found_before[NOBJ], found_after[NOBJ];
  size_t i;

  stats_of(r, before, found_before, r->t);
  FUZZ_RC(obspam_state_save(r->e, r->path), OBSPAM_OK);
  FUZZ_RC(obspam_state_load(r->e, r->path), OBSPAM_OK);
  stats_of(r, after, found_after, r->t);
  for (i = FIRST_LIMITED; i < NOBJ; i++)
    FUZZ_CHECK(found_before[i] == found_after[i] &&
                   memcmp(&before[i], &after[i], sizeof(before[i])) == 0,
               "%s: statistics changed by a save and a load", objs[i].name);
}

static void step(run *r, fuzz_in *in) {
  unsigned op = fuzz_u8(in) % 24;
  size_t o = fuzz_pick(in, NOBJ);

  if (trace && op >= 10)
    fprintf(stderr, "op %u on %s at t=%lld\n", op, objs[o].name,
            (long long)r->t);

  switch (op) {
  default: /* 0..9: most of a stream is mail */
    op_decide(r, in);
    break;
  case 10: {
    int kind = (int)fuzz_pick(in, 5), which = 2 + (int)fuzz_pick(in, 3);
    int64_t value = limit_values[fuzz_pick(in, NLIMITS)];

    ONE_OF(
        obspam_set_limit(r->e, kind, kind ? objs[o].name : NULL, which, value),
        OBSPAM_OK, OBSPAM_EINVAL, OBSPAM_ENOTFOUND);
    break;
  }
  case 11:
    ONE_OF(obspam_add(r->e, objs[o].kind, objs[o].name, objs[o].parent),
           OBSPAM_OK, OBSPAM_EEXIST, OBSPAM_ENOTFOUND);
    break;
  case 12:
    ONE_OF(obspam_remove(r->e, objs[o].kind, objs[o].name), OBSPAM_OK,
           OBSPAM_ENOTFOUND);
    break;
  case 13:
    ONE_OF(obspam_set_uid(r->e, objs[o].name, 999 + (int64_t)fuzz_pick(in, 5)),
           OBSPAM_OK, OBSPAM_EEXIST, OBSPAM_ENOTFOUND, OBSPAM_EINVAL);
    ONE_OF(obspam_set_uid(r->e, objs[o].name, -1), OBSPAM_OK, OBSPAM_ENOTFOUND,
           OBSPAM_EINVAL);
    break;
  case 14: {
    static const int values[] = {0, 1, OBSPAM_INHERIT, 7};

    ONE_OF(obspam_set_scripts_allowed(r->e, objs[o].kind, objs[o].name,
                                      values[fuzz_pick(in, 4)]),
           OBSPAM_OK, OBSPAM_EINVAL, OBSPAM_ENOTFOUND);
    break;
  }
  case 15:
    ONE_OF(
        obspam_set_contact(r->e, objs[o].name, addresses[fuzz_pick(in, NADDR)]),
        OBSPAM_OK, OBSPAM_EINVAL, OBSPAM_ENOTFOUND);
    break;
  case 16: {
    static const int64_t values[] = {0, 1, 2, 60, 600, 3600, 720, -1};
    int option = (int)fuzz_pick(in, 12);
    int64_t retention;

    ONE_OF(obspam_set_option(r->e, option, values[fuzz_pick(in, 8)]), OBSPAM_OK,
           OBSPAM_EINVAL);
    FUZZ_RC(obspam_get_option(r->e, OBSPAM_OPT_RETENTION_HOURS, &retention),
            OBSPAM_OK);
    if (retention < r->min_retention)
      r->min_retention = retention;
    break;
  }
  case 17: {
    unsigned w = fuzz_pick(in, NWL);

    if (fuzz_u8(in) & 1) {
      ONE_OF(obspam_whitelist_add(r->e, wl_entries[w]), OBSPAM_OK,
             OBSPAM_EEXIST);
      r->wl |= 1u << w;
    } else {
      ONE_OF(obspam_whitelist_remove(r->e, wl_entries[w]), OBSPAM_OK,
             OBSPAM_ENOTFOUND);
      r->wl &= ~(1u << w);
    }
    break;
  }
  case 18: {
    unsigned k = fuzz_pick(in, 3);

    FUZZ_RC(obspam_load_config_string(r->e, confs[k]), OBSPAM_OK);
    r->wl = conf_wl[k];
    break;
  }
  case 19: {
    obspam_report_row prev = OBSPAM_REPORT_ROW_INIT;
    int64_t from = r->t - (int64_t)fuzz_u8(in) * 600, hour = -1;

    prev.struct_size = 0;
    FUZZ_RC(obspam_report(r->e, from, r->t + 1, on_row, &prev), OBSPAM_OK);
    if (objs[o].kind >= OBSPAM_SUBSCRIPTION)
      ONE_OF(obspam_history(r->e, objs[o].kind, objs[o].name, 0, INT64_MAX,
                            on_hour, &hour),
             OBSPAM_OK, OBSPAM_ENOTFOUND);
    hour = -1;
    ONE_OF(obspam_history(r->e, OBSPAM_SCRIPT, "/var/www/a/index.php", 0,
                          INT64_MAX, on_hour, &hour),
           OBSPAM_OK, OBSPAM_ENOTFOUND);
    break;
  }
  case 20:
    r->in_flush = 1;
    r->last_kind = 0;
    FUZZ_RC(obspam_notify_flush(r->e, r->t), OBSPAM_OK);
    r->in_flush = 0;
    break;
  case 21:
    op_snapshot(r);
    break;
  case 22: {
    /* Time jumps: hours ahead, or back (the engine keeps its newest). */
    unsigned j = fuzz_u8(in);

    if (j & 1)
      r->t += (int64_t)(j >> 1) * 1800;
    else if (r->t > (int64_t)(j >> 1) * 600)
      r->t -= (int64_t)(j >> 1) * 600;
    break;
  }
  case 23:
    FUZZ_RC(obspam_set_notify(r->e, (fuzz_u8(in) & 1) ? on_notice : NULL, r),
            OBSPAM_OK);
    break;
  }
}

static char dir_path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *dir = getenv("OBSPAM_FUZZ_DIR");

  (void)argc;
  (void)argv;
  snprintf(dir_path, sizeof(dir_path), "%s", dir != NULL ? dir : fuzz_dir());
  trace = getenv("OBSPAM_FUZZ_TRACE") != NULL;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, data + size};
  run r;
  int n;

  memset(&r, 0, sizeof(r));
  snprintf(r.path, sizeof(r.path), "%s/decide.state", dir_path);
  r.t = T0;
  r.min_retention = 24; /* conf0's; the others keep 720 */
  r.wl = conf_wl[0];
  FUZZ_RC(obspam_engine_new(&r.e), OBSPAM_OK);
  FUZZ_RC(obspam_load_config_string(r.e, conf0), OBSPAM_OK);
  FUZZ_RC(obspam_set_notify(r.e, on_notice, &r), OBSPAM_OK);
  for (n = 0; n < 400 && fuzz_left(&in); n++)
    step(&r, &in);
  r.in_flush = 1;
  r.last_kind = 0;
  FUZZ_RC(obspam_notify_flush(r.e, r.t + 86400), OBSPAM_OK);
  obspam_engine_free(r.e);
  return 0;
}
