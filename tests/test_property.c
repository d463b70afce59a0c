/* SPDX-License-Identifier: MIT */
/*
 * Property test: the engine against a small, obviously-correct reference
 * model written here from API.md "Decision semantics (normative)" and the
 * README's "How a message is decided".
 *
 * For each fixed seed a random small tree (plans, subscriptions with uids,
 * domains, mailboxes; random limits including 0, unlimited and inherit;
 * random scripts settings) and a random whitelist are built, then random
 * messages are decided by both the engine and the model, and every verdict
 * field is compared. Now and then an option is toggled, a limit or scripts
 * setting changed, an object removed or added back, or a whitelist entry
 * toggled. At intervals and at the end, stats_get of every object is
 * compared with the model.
 *
 * The model keeps, per object, a plain list of (minute, amount) charges and
 * lists of the minutes of its refusals and of its attempts over its own
 * limit; count_in_window(t) is the sum over minutes t/60-59 .. t/60.
 *
 * A refusal names the object with the longest wait (API.md step 5), each
 * wait found by trying the times at which the window can change; the
 * retry hint is checked against the same search over all the objects at
 * once. Every charged object records the refusal, the objects with a wait
 * record it as over the limit (the subscription for forbidden scripts).
 *
 * One deliberate restriction: API.md does not say in so many words whether
 * a decision that ends EXEMPT or UNKNOWN moves the engine's newest time
 * (test_window.c pins that separately). So the generator never gives such a
 * message a time newer than the newest counted one, and the model only
 * moves its newest time on decisions that reach the counters.
 */
#include <ctype.h>
#include <stdlib.h>

#include "testutil.h"

#define N_STEPS 3000

/* ---- PRNG (splitmix64) ----------------------------------------------------
 */

static uint64_t rng_state;

static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static int rn(int n) { return (int)(rnd() % (uint64_t)n); }

/* True with probability pct/1000. */
static int chance(int per_mille) { return rn(1000) < per_mille; }

/* ---- the model ------------------------------------------------------------
 */

enum { LS = 0, LD = 1, LM = 2 }; /* subscription, domain, mailbox limit */

typedef struct counters {
  int64_t *min, *amt; /* charges: minute, amount */
  size_t n, cap;
  int64_t *rmin; /* refusals: minute */
  size_t rn, rcap;
  int64_t refused_total, last_refused;
  int64_t *xmin; /* attempts over the object's own limit: minute */
  size_t xn, xcap;
  int64_t exceeded_total;
} counters;

#define MAXP 3
#define MAXS 5
#define MAXD 12
/* Declared mailboxes, then implicit ones as they appear. */
#define MAXM 36
#define MAXMI (MAXM + 3 * MAXD + 8)

typedef struct mplan {
  char name[24];
  int64_t lim[3];
  int scripts; /* 1, 0, OBSPAM_INHERIT */
} mplan;

typedef struct msub {
  char name[24];
  int plan; /* -1: none */
  int64_t lim[3];
  int scripts;
  int64_t uid; /* -1: none */
  counters k;
} msub;

typedef struct mdom {
  char name[24];
  int sub;
  int alive;
  int64_t own, mdef; /* its own limit, its mailboxes' default */
  counters k;
} mdom;

typedef struct mmbox {
  char name[40];
  int dom;
  int alive;
  int implicit; /* alive and not declared: made by a decision */
  int64_t own;
  counters k;
} mmbox;

static const char *const wl_entries[] = {"192.0.2.0/24", "2001:db8::/32",
                                         "10.1.2.3", "198.51.100.0/25"};
#define N_WL 4

static const struct {
  const char *addr;
  unsigned match; /* bit i: matched by wl_entries[i] */
  int local;      /* a local submission or a default local network */
} clients[] = {
    {NULL, 0, 1},
    {"", 0, 1},
    {"192.0.2.7", 1, 0},
    {"192.0.3.7", 0, 0},
    {"::ffff:192.0.2.9", 1, 0},
    {"2001:db8::5", 2, 0},
    {"2001:db9::5", 0, 0},
    {"10.1.2.3", 4, 0},
    {"10.1.2.4", 0, 0},
    {"127.0.0.1", 0, 1},
    {"::ffff:127.1.2.3", 0, 1},
    {"::1", 0, 1},
    {"198.51.100.10", 8, 0},
    {"198.51.100.200", 0, 0},
};
#define N_CLIENTS (sizeof clients / sizeof clients[0])

typedef struct model {
  int64_t server[3];
  int server_scripts;
  mplan plan[MAXP];
  int np;
  msub sub[MAXS];
  int ns;
  mdom dom[MAXD];
  int nd;
  mmbox mb[MAXMI];
  int nm;      /* declared mailboxes: mb[0 .. nm) */
  int nmi;     /* and implicit ones: mb[nm .. nmi) */
  unsigned wl; /* bit i: wl_entries[i] present */
  int unit_messages, count_fwd_local, count_fwd_remote, count_lists;
  int count_unauth; /* 0 never, 1 from anywhere, 2 local */
  int64_t newest;   /* 0: no counted decision yet */
} model;

static model M;

static void counters_free(counters *k) {
  free(k->min);
  free(k->amt);
  free(k->rmin);
  free(k->xmin);
  memset(k, 0, sizeof *k);
}

static void counters_reset(counters *k) { counters_free(k); }

static void add_charge(counters *k, int64_t minute, int64_t amount) {
  if (k->n == k->cap) {
    k->cap = k->cap ? 2 * k->cap : 16;
    k->min = realloc(k->min, k->cap * sizeof *k->min);
    k->amt = realloc(k->amt, k->cap * sizeof *k->amt);
    cr_assert(k->min && k->amt, "out of memory");
  }
  k->min[k->n] = minute;
  k->amt[k->n] = amount;
  k->n++;
}

static void add_refusal(counters *k, int64_t t) {
  if (k->rn == k->rcap) {
    k->rcap = k->rcap ? 2 * k->rcap : 16;
    k->rmin = realloc(k->rmin, k->rcap * sizeof *k->rmin);
    cr_assert(k->rmin, "out of memory");
  }
  k->rmin[k->rn++] = t / 60;
  k->refused_total++;
  k->last_refused = t;
}

static void add_exceeded(counters *k, int64_t t) {
  if (k->xn == k->xcap) {
    k->xcap = k->xcap ? 2 * k->xcap : 16;
    k->xmin = realloc(k->xmin, k->xcap * sizeof *k->xmin);
    cr_assert(k->xmin, "out of memory");
  }
  k->xmin[k->xn++] = t / 60;
  k->exceeded_total++;
}

/* count_in_window(t): minutes t/60 - 59 .. t/60. */
static int64_t count_at(const counters *k, int64_t t) {
  int64_t lo = t / 60 - 59, hi = t / 60, sum = 0;
  for (size_t i = 0; i < k->n; i++)
    if (k->min[i] >= lo && k->min[i] <= hi)
      sum += k->amt[i];
  return sum;
}

static int64_t minutes_at(const int64_t *m, size_t n, int64_t t) {
  int64_t lo = t / 60 - 59, hi = t / 60, sum = 0;
  for (size_t i = 0; i < n; i++)
    if (m[i] >= lo && m[i] <= hi)
      sum++;
  return sum;
}

static int64_t refused_at(const counters *k, int64_t t) {
  return minutes_at(k->rmin, k->rn, t);
}

static int64_t exceeded_at(const counters *k, int64_t t) {
  return minutes_at(k->xmin, k->xn, t);
}

/* Drops charges that can never be in a window again (their minute is older
   than newest/60 - 59, and time never goes back). */
static void prune(counters *k, int64_t newest) {
  int64_t lo = newest / 60 - 59;
  size_t j = 0;
  for (size_t i = 0; i < k->n; i++)
    if (k->min[i] >= lo) {
      k->min[j] = k->min[i];
      k->amt[j] = k->amt[i];
      j++;
    }
  k->n = j;
  j = 0;
  for (size_t i = 0; i < k->rn; i++)
    if (k->rmin[i] >= lo)
      k->rmin[j++] = k->rmin[i];
  k->rn = j;
  j = 0;
  for (size_t i = 0; i < k->xn; i++)
    if (k->xmin[i] >= lo)
      k->xmin[j++] = k->xmin[i];
  k->xn = j;
}

/* ---- effective limits and scripts, straight from the chains ----------------
 */

static int64_t pick(int64_t v, int64_t fallback) {
  return v != OBSPAM_INHERIT ? v : fallback;
}

static int64_t eff_sub(int s) {
  int64_t v = M.server[LS];
  if (M.sub[s].plan >= 0)
    v = pick(M.plan[M.sub[s].plan].lim[LS], v);
  return pick(M.sub[s].lim[LS], v);
}

static int64_t eff_dom(int d) {
  int s = M.dom[d].sub;
  int64_t v = M.server[LD];
  if (M.sub[s].plan >= 0)
    v = pick(M.plan[M.sub[s].plan].lim[LD], v);
  v = pick(M.sub[s].lim[LD], v);
  return pick(M.dom[d].own, v);
}

static int64_t eff_mb(int m) {
  int d = M.mb[m].dom, s = M.dom[d].sub;
  int64_t v = M.server[LM];
  if (M.sub[s].plan >= 0)
    v = pick(M.plan[M.sub[s].plan].lim[LM], v);
  v = pick(M.sub[s].lim[LM], v);
  v = pick(M.dom[d].mdef, v);
  return pick(M.mb[m].own, v);
}

static int scripts_allowed(int s) {
  if (M.sub[s].scripts != OBSPAM_INHERIT)
    return M.sub[s].scripts;
  if (M.sub[s].plan >= 0 && M.plan[M.sub[s].plan].scripts != OBSPAM_INHERIT)
    return M.plan[M.sub[s].plan].scripts;
  return M.server_scripts;
}

/* ---- resolution ------------------------------------------------------------
 */

/* The charged objects, top first; and the implicit mailbox asked for
   (imp_dom >= 0), which only a decision makes. */
typedef struct charged {
  int n;
  int kind[3];
  int idx[3];
  int imp_dom;
  char imp_name[64];
} charged;

static void lower(const char *in, char *out, size_t n) {
  size_t i;
  for (i = 0; in[i] && i + 1 < n; i++)
    out[i] = (char)tolower((unsigned char)in[i]);
  out[i] = '\0';
}

static int find_dom(const char *lname) {
  for (int d = 0; d < M.nd; d++)
    if (M.dom[d].alive && strcmp(M.dom[d].name, lname) == 0)
      return d;
  return -1;
}

static int find_mb(const char *lname) {
  for (int m = 0; m < M.nmi; m++)
    if (M.mb[m].alive && strcmp(M.mb[m].name, lname) == 0)
      return m;
  return -1;
}

static void charge_domain(charged *c, int d) {
  c->n = 2;
  c->kind[0] = OBSPAM_SUBSCRIPTION;
  c->idx[0] = M.dom[d].sub;
  c->kind[1] = OBSPAM_DOMAIN;
  c->idx[1] = d;
}

/* "Resolution of an address: lowercased; exact mailbox -> mailbox+domain+sub;
   else the part after the single '@' is a hosted domain -> domain+sub and
   the address's implicit mailbox (SPEC.md section 2); a bare domain name
   (no '@') resolves to that domain if hosted." */
static int resolve(const char *addr, charged *c) {
  char l[400];
  if (addr == NULL || addr[0] == '\0')
    return 0;
  lower(addr, l, sizeof l);
  const char *at = strchr(l, '@');
  if (at == NULL) {
    int d = find_dom(l);
    if (d < 0)
      return 0;
    charge_domain(c, d);
    return 1;
  }
  if (strchr(at + 1, '@') != NULL)
    return 0; /* not exactly one '@' */
  int m = find_mb(l);
  if (m >= 0) {
    charge_domain(c, M.mb[m].dom);
    c->n = 3;
    c->kind[2] = OBSPAM_MAILBOX;
    c->idx[2] = m;
    return 1;
  }
  int d = find_dom(at + 1);
  if (d < 0)
    return 0;
  charge_domain(c, d);
  c->imp_dom = d;
  snprintf(c->imp_name, sizeof c->imp_name, "%.39s", l);
  return 1;
}

/* The implicit mailbox c asks for, made on first use: a mailbox of that
   name that is gone (removed, or implicit before) comes back from zero,
   else a new one is appended. */
static void implicit_charge(charged *c) {
  int m;
  for (m = 0; m < M.nmi; m++)
    if (strcmp(M.mb[m].name, c->imp_name) == 0)
      break;
  if (m == M.nmi) {
    cr_assert_lt(M.nmi, MAXMI, "model: too many implicit mailboxes");
    M.nmi++;
    snprintf(M.mb[m].name, sizeof M.mb[m].name, "%.39s", c->imp_name);
    memset(&M.mb[m].k, 0, sizeof M.mb[m].k);
  }
  cr_assert(!M.mb[m].alive, "model: %s exists already", c->imp_name);
  M.mb[m].dom = c->imp_dom;
  M.mb[m].alive = 1;
  M.mb[m].implicit = 1;
  M.mb[m].own = OBSPAM_INHERIT;
  c->n = 3;
  c->kind[2] = OBSPAM_MAILBOX;
  c->idx[2] = m;
}

static counters *ctr(int kind, int idx) {
  switch (kind) {
  case OBSPAM_SUBSCRIPTION:
    return &M.sub[idx].k;
  case OBSPAM_DOMAIN:
    return &M.dom[idx].k;
  default:
    return &M.mb[idx].k;
  }
}

static int64_t eff(int kind, int idx) {
  switch (kind) {
  case OBSPAM_SUBSCRIPTION:
    return eff_sub(idx);
  case OBSPAM_DOMAIN:
    return eff_dom(idx);
  default:
    return eff_mb(idx);
  }
}

static const char *oname(int kind, int idx) {
  switch (kind) {
  case OBSPAM_SUBSCRIPTION:
    return M.sub[idx].name;
  case OBSPAM_DOMAIN:
    return M.dom[idx].name;
  default:
    return M.mb[idx].name;
  }
}

/* The class of a message before any counting: EXEMPT, UNKNOWN, or -1 when
   it reaches the counters (ACCEPT / REFUSE). Fills c. */
static int classify(const obspam_message *msg, unsigned wl_match, int local,
                    charged *c, int *script_sub) {
  *script_sub = -1;
  c->n = 0;
  c->imp_dom = -1;
  /* 1. protection is never disabled here. */
  /* 2. whitelist */
  if (wl_match & M.wl)
    return OBSPAM_EXEMPT;
  /* 3. exempt kinds of mail */
  if ((msg->flags & OBSPAM_MSG_MAILING_LIST) && !M.count_lists)
    return OBSPAM_EXEMPT;
  if ((msg->flags & OBSPAM_MSG_FORWARD_LOCAL) && !M.count_fwd_local)
    return OBSPAM_EXEMPT;
  if ((msg->flags & OBSPAM_MSG_FORWARD_REMOTE) && !M.count_fwd_remote)
    return OBSPAM_EXEMPT;
  /* 4. charged objects */
  if (resolve(msg->sasl_username, c))
    return -1;
  if (msg->flags & OBSPAM_MSG_SCRIPT) {
    int s = -1;
    for (int i = 0; i < M.ns; i++)
      if (msg->uid >= 0 && M.sub[i].uid == msg->uid)
        s = i;
    if (s < 0)
      return OBSPAM_UNKNOWN;
    c->n = 1;
    c->kind[0] = OBSPAM_SUBSCRIPTION;
    c->idx[0] = s;
    if (msg->domain_hint != NULL) {
      char l[400];
      lower(msg->domain_hint, l, sizeof l);
      int d = find_dom(l);
      if (d >= 0 && M.dom[d].sub == s) {
        c->n = 2;
        c->kind[1] = OBSPAM_DOMAIN;
        c->idx[1] = d;
      }
    }
    *script_sub = s;
    return -1;
  }
  if (msg->flags & (OBSPAM_MSG_FORWARD_LOCAL | OBSPAM_MSG_FORWARD_REMOTE))
    return resolve(msg->sender, c) ? -1 : OBSPAM_UNKNOWN;
  if (M.count_unauth == 1 || (M.count_unauth == 2 && local) ||
      (msg->flags & OBSPAM_MSG_MAILING_LIST))
    return resolve(msg->sender, c) ? -1 : OBSPAM_UNKNOWN;
  return OBSPAM_UNKNOWN;
}

static int fits_all(const charged *c, int64_t t, int64_t n) {
  for (int i = 0; i < c->n; i++) {
    int64_t lim = eff(c->kind[i], c->idx[i]);
    if (lim != OBSPAM_UNLIMITED &&
        count_at(ctr(c->kind[i], c->idx[i]), t) + n > lim)
      return 0;
  }
  return 1;
}

/* retry_after: smallest s >= 1 with every object fitting at t + s. The
   counts are constant within a minute, so the candidates are s = 1 and the
   starts of the next 60 minutes. */
static int64_t retry_after(const charged *c, int64_t t, int64_t n) {
  for (int i = 0; i < c->n; i++) {
    int64_t lim = eff(c->kind[i], c->idx[i]);
    if (lim != OBSPAM_UNLIMITED && n > lim)
      return -1;
  }
  if (fits_all(c, t + 1, n))
    return 1;
  for (int64_t k = 1; k <= 61; k++) {
    int64_t s = (t / 60 + k) * 60 - t;
    if (fits_all(c, t + s, n))
      return s;
  }
  cr_assert_fail("model: no retry_after found");
  return 0;
}

/* API.md step 5: the wait of one object, 0 when the message fits it now,
   -1 when it never can, else the smallest s >= 1 at which it fits. */
static int64_t wait_one(int kind, int idx, int64_t t, int64_t n) {
  const counters *k = ctr(kind, idx);
  int64_t lim = eff(kind, idx);

  if (lim == OBSPAM_UNLIMITED || count_at(k, t) + n <= lim)
    return 0;
  if (n > lim)
    return -1;
  if (count_at(k, t + 1) + n <= lim)
    return 1;
  for (int64_t j = 1; j <= 61; j++) {
    int64_t s = (t / 60 + j) * 60 - t;
    if (count_at(k, t + s) + n <= lim)
      return s;
  }
  cr_assert_fail("model: no wait found");
  return 0;
}

static void empty_verdict(obspam_verdict *v, int action) {
  memset(v, 0, sizeof *v);
  v->struct_size = sizeof *v;
  v->action = action;
  v->kind = -1;
}

static void model_decide(const obspam_message *msg, unsigned wl_match,
                         int local, obspam_verdict *v) {
  charged c;
  int script_sub;
  int cls = classify(msg, wl_match, local, &c, &script_sub);
  if (cls != -1) {
    empty_verdict(v, cls);
    return;
  }
  if (c.imp_dom >= 0)
    implicit_charge(&c);
  int64_t t = msg->time > M.newest ? msg->time : M.newest;
  M.newest = t;
  for (int i = 0; i < c.n; i++)
    prune(ctr(c.kind[i], c.idx[i]), t);
  memset(v, 0, sizeof *v);
  v->struct_size = sizeof *v;
  /* scripts forbidden */
  if (script_sub >= 0 && !scripts_allowed(script_sub)) {
    v->action = OBSPAM_REFUSE;
    v->kind = OBSPAM_SUBSCRIPTION;
    snprintf(v->object, sizeof v->object, "%s", M.sub[script_sub].name);
    v->limit = eff_sub(script_sub);
    v->count = count_at(&M.sub[script_sub].k, t);
    v->retry_after = -1;
    v->window = 0;
    for (int i = 0; i < c.n; i++)
      add_refusal(ctr(c.kind[i], c.idx[i]), t);
    add_exceeded(&M.sub[script_sub].k, t);
    return;
  }
  int64_t n = M.unit_messages ? 1 : (int64_t)msg->recipients;
  /* 5. the object with the longest wait (-1 the longest; ties: the
     highest, the first from the top) */
  int64_t wait[3];
  int named = -1;
  for (int i = 0; i < c.n; i++) {
    wait[i] = wait_one(c.kind[i], c.idx[i], t, n);
    if (wait[i] != 0 &&
        (named < 0 ||
         (wait[named] != -1 && (wait[i] == -1 || wait[i] > wait[named]))))
      named = i;
  }
  if (named >= 0) {
    int i = named;
    v->action = OBSPAM_REFUSE;
    v->kind = c.kind[i];
    snprintf(v->object, sizeof v->object, "%s", oname(c.kind[i], c.idx[i]));
    v->limit = eff(c.kind[i], c.idx[i]);
    v->count = count_at(ctr(c.kind[i], c.idx[i]), t);
    v->retry_after = wait[i];
    v->window = OBSPAM_WINDOW_HOUR;
    cr_assert_eq(v->retry_after, retry_after(&c, t, n),
                 "model: the longest wait is not the retry hint");
    for (int j = 0; j < c.n; j++) {
      add_refusal(ctr(c.kind[j], c.idx[j]), t);
      if (wait[j] != 0)
        add_exceeded(ctr(c.kind[j], c.idx[j]), t);
    }
    return;
  }
  /* 6. accept: the lowest charged object is named */
  int lo = c.n - 1;
  v->action = OBSPAM_ACCEPT;
  v->kind = c.kind[lo];
  snprintf(v->object, sizeof v->object, "%s", oname(c.kind[lo], c.idx[lo]));
  v->limit = eff(c.kind[lo], c.idx[lo]);
  v->count = count_at(ctr(c.kind[lo], c.idx[lo]), t);
  v->retry_after = 0;
  v->window = OBSPAM_WINDOW_HOUR;
  for (int i = 0; i < c.n; i++)
    add_charge(ctr(c.kind[i], c.idx[i]), t / 60, n);
}

/* ---- building the tree in both ----------------------------------------------
 */

static obspam_engine *e;
static uint64_t cur_seed;

static int64_t rand_limit(void) {
  int r = rn(100);
  if (r < 40)
    return OBSPAM_INHERIT;
  if (r < 52)
    return OBSPAM_UNLIMITED;
  if (r < 55)
    return 0;
  if (r < 65)
    return 1 + rn(5);
  return 10 + rn(71);
}

static int64_t rand_server_limit(void) {
  return rn(100) < 40 ? OBSPAM_UNLIMITED : 20 + rn(131);
}

static int rand_scripts(void) {
  int r = rn(100);
  return r < 70 ? OBSPAM_INHERIT : r < 85 ? 1 : 0;
}

/* A random-case copy of a lower-case name. */
static const char *rcase(const char *s, char *buf, size_t n) {
  size_t i;
  for (i = 0; s[i] && i + 1 < n; i++)
    buf[i] = rn(4) == 0 ? (char)toupper((unsigned char)s[i]) : s[i];
  buf[i] = '\0';
  return buf;
}

#define E_OK(expr)                                                             \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    cr_assert_eq(rc_, OBSPAM_OK, "seed %" PRIu64 ": %s returned %d (%s): %s",  \
                 cur_seed, #expr, rc_, obspam_strerror(rc_),                   \
                 obspam_engine_errmsg(e));                                     \
  } while (0)

static const int which_of[3] = {OBSPAM_SUBSCRIPTION, OBSPAM_DOMAIN,
                                OBSPAM_MAILBOX};

static void add_mailbox_both(int m) {
  char b[64];
  /* Declaring an implicit mailbox keeps its counters. */
  if (!M.mb[m].implicit)
    counters_reset(&M.mb[m].k);
  M.mb[m].alive = 1;
  M.mb[m].implicit = 0;
  M.mb[m].own = rn(2) ? rand_limit() : OBSPAM_INHERIT;
  E_OK(obspam_add(e, OBSPAM_MAILBOX, rcase(M.mb[m].name, b, sizeof b),
                  rn(2) ? NULL : M.dom[M.mb[m].dom].name));
  if (M.mb[m].own != OBSPAM_INHERIT)
    E_OK(obspam_set_limit(e, OBSPAM_MAILBOX, M.mb[m].name, OBSPAM_MAILBOX,
                          M.mb[m].own));
}

static void add_domain_both(int d) {
  char b[64];
  M.dom[d].alive = 1;
  M.dom[d].own = rand_limit();
  M.dom[d].mdef = rand_limit();
  counters_reset(&M.dom[d].k);
  E_OK(obspam_add(e, OBSPAM_DOMAIN, rcase(M.dom[d].name, b, sizeof b),
                  rcase(M.sub[M.dom[d].sub].name, b + 32, 32)));
  if (M.dom[d].own != OBSPAM_INHERIT)
    E_OK(obspam_set_limit(e, OBSPAM_DOMAIN, M.dom[d].name, OBSPAM_DOMAIN,
                          M.dom[d].own));
  if (M.dom[d].mdef != OBSPAM_INHERIT)
    E_OK(obspam_set_limit(e, OBSPAM_DOMAIN, M.dom[d].name, OBSPAM_MAILBOX,
                          M.dom[d].mdef));
}

static void build(uint64_t seed) {
  char b[64];
  cur_seed = seed;
  rng_state = seed * 0x2545f4914f6cdd1dull + 12345;
  for (int i = 0; i < M.ns; i++)
    counters_free(&M.sub[i].k);
  for (int i = 0; i < M.nd; i++)
    counters_free(&M.dom[i].k);
  for (int i = 0; i < M.nmi; i++)
    counters_free(&M.mb[i].k);
  memset(&M, 0, sizeof M);
  M.count_unauth = 2; /* the default */
  M.count_fwd_remote = 1;
  e = tu_new();

  for (int w = 0; w < 3; w++) {
    M.server[w] = rand_server_limit();
    E_OK(obspam_set_limit(e, OBSPAM_SERVER, NULL, which_of[w], M.server[w]));
  }
  M.server_scripts = rn(100) < 85;
  E_OK(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, M.server_scripts));

  M.np = rn(MAXP);
  for (int p = 0; p < M.np; p++) {
    snprintf(M.plan[p].name, sizeof M.plan[p].name, "plan%d", p);
    E_OK(obspam_add(e, OBSPAM_PLAN, rcase(M.plan[p].name, b, sizeof b), NULL));
    for (int w = 0; w < 3; w++) {
      M.plan[p].lim[w] = rand_limit();
      E_OK(obspam_set_limit(e, OBSPAM_PLAN, M.plan[p].name, which_of[w],
                            M.plan[p].lim[w]));
    }
    M.plan[p].scripts = rand_scripts();
    E_OK(obspam_set_scripts_allowed(e, OBSPAM_PLAN, M.plan[p].name,
                                    M.plan[p].scripts));
  }

  M.ns = 1 + rn(MAXS - 1);
  for (int s = 0; s < M.ns; s++) {
    msub *S = &M.sub[s];
    snprintf(S->name, sizeof S->name, "sub%d", s);
    S->plan = M.np > 0 && rn(3) ? rn(M.np) : -1;
    E_OK(obspam_add(e, OBSPAM_SUBSCRIPTION, rcase(S->name, b, sizeof b),
                    S->plan >= 0 ? M.plan[S->plan].name : NULL));
    for (int w = 0; w < 3; w++) {
      S->lim[w] = rand_limit();
      E_OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, S->name, which_of[w],
                            S->lim[w]));
    }
    S->scripts = rand_scripts();
    E_OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, S->name,
                                    S->scripts));
    S->uid = rn(100) < 80 ? 1000 + s : -1;
    if (S->uid >= 0)
      E_OK(obspam_set_uid(e, S->name, S->uid));
  }

  for (int s = 0; s < M.ns; s++) {
    int nd = 1 + rn(3);
    for (int i = 0; i < nd && M.nd < MAXD; i++) {
      int d = M.nd++;
      snprintf(M.dom[d].name, sizeof M.dom[d].name, "d%d.test", d);
      M.dom[d].sub = s;
      add_domain_both(d);
      int nm = rn(4);
      for (int j = 0; j < nm && M.nm < MAXM; j++) {
        int m = M.nm++;
        snprintf(M.mb[m].name, sizeof M.mb[m].name, "u%d@d%d.test", j, d);
        M.mb[m].dom = d;
        M.nmi = M.nm;
        add_mailbox_both(m);
      }
    }
  }

  for (int i = 0; i < N_WL; i++)
    if (rn(2)) {
      M.wl |= 1u << i;
      E_OK(obspam_whitelist_add(e, wl_entries[i]));
    }
}

/* ---- random events ----------------------------------------------------------
 */

static void toggle_option(int opt, int *field) {
  *field = !*field;
  E_OK(obspam_set_option(e, opt, *field));
}

static void random_event(void) {
  int r = rn(1000);
  if (r < 10) {
    toggle_option(OBSPAM_OPT_COUNT_UNIT, &M.unit_messages);
  } else if (r < 15) {
    M.count_unauth = (M.count_unauth + 1) % 3;
    E_OK(
        obspam_set_option(e, OBSPAM_OPT_COUNT_UNAUTHENTICATED, M.count_unauth));
  } else if (r < 20) {
    toggle_option(OBSPAM_OPT_COUNT_FORWARD_LOCAL, &M.count_fwd_local);
  } else if (r < 25) {
    toggle_option(OBSPAM_OPT_COUNT_FORWARD_REMOTE, &M.count_fwd_remote);
  } else if (r < 30) {
    toggle_option(OBSPAM_OPT_COUNT_MAILING_LISTS, &M.count_lists);
  } else if (r < 38) {
    /* a limit somewhere */
    int w = rn(3);
    switch (rn(5)) {
    case 0:
      M.server[w] = rand_server_limit();
      E_OK(obspam_set_limit(e, OBSPAM_SERVER, NULL, which_of[w], M.server[w]));
      break;
    case 1:
      if (M.np > 0) {
        int p = rn(M.np);
        M.plan[p].lim[w] = rand_limit();
        E_OK(obspam_set_limit(e, OBSPAM_PLAN, M.plan[p].name, which_of[w],
                              M.plan[p].lim[w]));
      }
      break;
    case 2: {
      int s = rn(M.ns);
      M.sub[s].lim[w] = rand_limit();
      E_OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, M.sub[s].name, which_of[w],
                            M.sub[s].lim[w]));
      break;
    }
    case 3: {
      int d = rn(M.nd);
      if (!M.dom[d].alive)
        break;
      if (rn(2)) {
        M.dom[d].own = rand_limit();
        E_OK(obspam_set_limit(e, OBSPAM_DOMAIN, M.dom[d].name, OBSPAM_DOMAIN,
                              M.dom[d].own));
      } else {
        M.dom[d].mdef = rand_limit();
        E_OK(obspam_set_limit(e, OBSPAM_DOMAIN, M.dom[d].name, OBSPAM_MAILBOX,
                              M.dom[d].mdef));
      }
      break;
    }
    default:
      if (M.nm > 0) {
        int m = rn(M.nm);
        if (!M.mb[m].alive || M.mb[m].implicit)
          break;
        M.mb[m].own = rand_limit();
        E_OK(obspam_set_limit(e, OBSPAM_MAILBOX, M.mb[m].name, OBSPAM_MAILBOX,
                              M.mb[m].own));
      }
    }
  } else if (r < 42) {
    /* scripts setting */
    int s = rn(M.ns);
    M.sub[s].scripts = rand_scripts();
    E_OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, M.sub[s].name,
                                    M.sub[s].scripts));
  } else if (r < 45) {
    M.server_scripts = !M.server_scripts;
    E_OK(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, M.server_scripts));
  } else if (r < 50 && M.nmi > 0) {
    /* a mailbox goes (an implicit one too), or comes back from zero (or
       is declared with the counters it has as an implicit one) */
    int m = rn(M.nmi);
    if (!M.dom[M.mb[m].dom].alive)
      return;
    if (M.mb[m].alive && (!M.mb[m].implicit || rn(2))) {
      M.mb[m].alive = 0;
      M.mb[m].implicit = 0;
      counters_reset(&M.mb[m].k);
      E_OK(obspam_remove(e, OBSPAM_MAILBOX, M.mb[m].name));
    } else {
      add_mailbox_both(m);
    }
  } else if (r < 53) {
    /* a domain goes with its mailboxes, or comes back (without them) */
    int d = rn(M.nd);
    if (M.dom[d].alive) {
      M.dom[d].alive = 0;
      counters_reset(&M.dom[d].k);
      for (int m = 0; m < M.nmi; m++)
        if (M.mb[m].dom == d && M.mb[m].alive) {
          M.mb[m].alive = 0;
          M.mb[m].implicit = 0;
          counters_reset(&M.mb[m].k);
        }
      E_OK(obspam_remove(e, OBSPAM_DOMAIN, M.dom[d].name));
    } else {
      add_domain_both(d);
    }
  } else if (r < 57) {
    int i = rn(N_WL);
    if (M.wl & (1u << i)) {
      M.wl &= ~(1u << i);
      E_OK(obspam_whitelist_remove(e, wl_entries[i]));
    } else {
      M.wl |= 1u << i;
      E_OK(obspam_whitelist_add(e, wl_entries[i]));
    }
  }
}

/* ---- random messages --------------------------------------------------------
 */

/* A random login / sender, into buf. */
static const char *rand_addr(char *buf, size_t n) {
  char tmp[64];
  int r = rn(20);
  if (r == 0)
    return NULL;
  if (r == 1)
    return "";
  if (r < 12 && M.nm > 0) /* a mailbox, present or removed */
    return rcase(M.mb[rn(M.nm)].name, buf, n);
  if (r < 14) { /* an unknown local part at one of our domains */
    snprintf(tmp, sizeof tmp, "nobody%d@%s", rn(3), M.dom[rn(M.nd)].name);
    return rcase(tmp, buf, n);
  }
  if (r < 15) /* a bare domain name */
    return rcase(M.dom[rn(M.nd)].name, buf, n);
  if (r < 16) { /* two '@' */
    snprintf(tmp, sizeof tmp, "a@b@%s", M.dom[rn(M.nd)].name);
    return rcase(tmp, buf, n);
  }
  if (r < 17) /* a subscription name is not a domain */
    return M.sub[rn(M.ns)].name;
  snprintf(buf, n, "x%d@elsewhere%d.test", rn(5), rn(3));
  return buf;
}

static void fmt_msg(char *out, size_t n, const obspam_message *m) {
  snprintf(out, n,
           "{flags=%u sasl=%s sender=%s client=%s rcpt=%u uid=%" PRId64
           " hint=%s time=T0%+" PRId64 "}",
           m->flags, m->sasl_username ? m->sasl_username : "(null)",
           m->sender ? m->sender : "(null)",
           m->client_address ? m->client_address : "(null)", m->recipients,
           m->uid, m->domain_hint ? m->domain_hint : "(null)", m->time - T0);
}

static void compare_stats(int step) {
  static const int64_t later[2] = {0, 1800};
  for (int j = 0; j < 2; j++) {
    int64_t now = M.newest + later[j];
    if (M.newest == 0)
      now = T0;
    struct {
      int kind, idx;
    } objs[MAXS + MAXD + MAXMI];
    int n = 0;
    for (int i = 0; i < M.ns; i++)
      objs[n].kind = OBSPAM_SUBSCRIPTION, objs[n++].idx = i;
    for (int i = 0; i < M.nd; i++)
      objs[n].kind = OBSPAM_DOMAIN, objs[n++].idx = i;
    for (int i = 0; i < M.nmi; i++)
      objs[n].kind = OBSPAM_MAILBOX, objs[n++].idx = i;
    for (int i = 0; i < n; i++) {
      int kind = objs[i].kind, idx = objs[i].idx;
      const char *name = oname(kind, idx);
      obspam_stats s = OBSPAM_STATS_INIT;
      int rc = obspam_stats_get(e, kind, name, now, &s);
      int alive = kind == OBSPAM_SUBSCRIPTION ||
                  (kind == OBSPAM_DOMAIN ? M.dom[idx].alive : M.mb[idx].alive);
      if (!alive) {
        cr_assert_eq(rc, OBSPAM_ENOTFOUND,
                     "seed %" PRIu64 " step %d: stats of removed %s: rc %d",
                     cur_seed, step, name, rc);
        continue;
      }
      cr_assert_eq(rc, OBSPAM_OK, "seed %" PRIu64 " step %d: stats(%s) rc %d",
                   cur_seed, step, name, rc);
      const counters *k = ctr(kind, idx);
      int64_t lim = eff(kind, idx), cnt = count_at(k, now);
      /* Blocked: the highest of the object and its ancestors that one
         more recipient would not fit. */
      int chain_kind[3], chain_idx[3], nchain = 0, blocked = -1;
      if (kind == OBSPAM_MAILBOX) {
        chain_kind[nchain] = OBSPAM_MAILBOX;
        chain_idx[nchain++] = idx;
        idx = M.mb[idx].dom;
      }
      if (kind != OBSPAM_SUBSCRIPTION) {
        chain_kind[nchain] = OBSPAM_DOMAIN;
        chain_idx[nchain++] = idx;
        idx = M.dom[idx].sub;
      }
      chain_kind[nchain] = OBSPAM_SUBSCRIPTION;
      chain_idx[nchain++] = idx;
      idx = objs[i].idx;
      for (int c = nchain - 1; c >= 0 && blocked < 0; c--) {
        int64_t l = eff(chain_kind[c], chain_idx[c]);
        if (l != OBSPAM_UNLIMITED &&
            count_at(ctr(chain_kind[c], chain_idx[c]), now) + 1 > l)
          blocked = c;
      }
      int64_t want[10] = {lim,
                          cnt,
                          refused_at(k, now),
                          k->refused_total,
                          k->last_refused,
                          blocked < 0,
                          exceeded_at(k, now),
                          k->exceeded_total,
                          blocked < 0 ? -1 : chain_kind[blocked],
                          0};
      int64_t got[10] = {s.limit,         s.count,          s.refused,
                         s.refused_total, s.last_refused,   s.sending,
                         s.exceeded,      s.exceeded_total, s.blocked_kind,
                         s.disabled};
      static const char *const field[10] = {
          "limit",        "count",   "refused",  "refused_total",
          "last_refused", "sending", "exceeded", "exceeded_total",
          "blocked_kind", "disabled"};
      cr_assert_str_eq(
          s.blocked_by,
          blocked < 0 ? "" : oname(chain_kind[blocked], chain_idx[blocked]),
          "seed %" PRIu64 " step %d: stats(%s).blocked_by", cur_seed, step,
          name);
      for (int f = 0; f < 10; f++)
        cr_assert_eq(got[f], want[f],
                     "seed %" PRIu64 " step %d: stats(%s).%s at T0%+" PRId64
                     " = %" PRId64 ", model %" PRId64,
                     cur_seed, step, name, field[f], now - T0, got[f], want[f]);
    }
  }
}

/* The verdict mix of a run. */
typedef struct tally {
  int64_t actions[4], never, later, accept_kind[5];
  int64_t implicit; /* verdicts that name an implicit mailbox */
} tally;

static void run(uint64_t seed, tally *ty) {
  int64_t *actions = ty->actions, *accept_kind = ty->accept_kind;
  int64_t never = 0, later = 0;
  build(seed);
  int64_t clock = T0;
  char sasl_buf[64], sender_buf[64], hint_buf[64];
  for (int step = 0; step < N_STEPS; step++) {
    if (chance(100))
      random_event();

    obspam_message m = OBSPAM_MESSAGE_INIT;
    int r = rn(100);
    m.flags = 0;
    if (r < 25)
      m.flags |= OBSPAM_MSG_SCRIPT;
    if (rn(100) < 6)
      m.flags |= OBSPAM_MSG_FORWARD_LOCAL;
    if (rn(100) < 6)
      m.flags |= OBSPAM_MSG_FORWARD_REMOTE;
    if (rn(100) < 6)
      m.flags |= OBSPAM_MSG_MAILING_LIST;
    m.sasl_username =
        rn(100) < 50 ? rand_addr(sasl_buf, sizeof sasl_buf) : NULL;
    m.sender = rand_addr(sender_buf, sizeof sender_buf);
    /* Half the messages are local submissions. */
    int c = rn(2) ? 0 : rn((int)N_CLIENTS);
    m.client_address = clients[c].addr;
    m.recipients = (uint32_t)(1 + rn(5));
    int u = rn(M.ns + 2);
    m.uid = u < M.ns ? 1000 + u : (u == M.ns ? 999 : -1);
    int h = rn(4);
    m.domain_hint =
        h == 0   ? NULL
        : h == 3 ? "elsewhere.test"
                 : rcase(M.dom[rn(M.nd)].name, hint_buf, sizeof hint_buf);
    m.script = rn(2) ? "/var/www/x/index.php" : NULL;

    clock += rn(301);
    m.time = clock;
    if (chance(30))
      m.time = clock - rn(4000); /* a time from the past */

    /* Messages that do not reach the counters get a time no newer than the
       newest counted one (see the comment at the top). */
    charged ch;
    int ss;
    if (classify(&m, clients[c].match, clients[c].local, &ch, &ss) != -1 &&
        m.time > M.newest)
      m.time = M.newest > 0 ? M.newest - rn(100) : T0 - 100000;

    obspam_verdict want;
    obspam_verdict got = OBSPAM_VERDICT_INIT;
    model_decide(&m, clients[c].match, clients[c].local, &want);
    int rc = obspam_decide(e, &m, &got);
    char mbuf[512], wbuf[512], gbuf[512];
    fmt_msg(mbuf, sizeof mbuf, &m);
    cr_assert_eq(rc, OBSPAM_OK, "seed %" PRIu64 " step %d: decide %s: rc %d %s",
                 seed, step, mbuf, rc, obspam_engine_errmsg(e));
    tu_fmt_verdict(wbuf, sizeof wbuf, &want);
    tu_fmt_verdict(gbuf, sizeof gbuf, &got);
    int same = got.action == want.action && got.kind == want.kind &&
               strcmp(got.object, want.object) == 0 &&
               got.limit == want.limit && got.count == want.count &&
               got.retry_after == want.retry_after && got.window == want.window;
    cr_assert(same,
              "seed %" PRIu64 " step %d: message %s\n  engine %s\n  model  %s\n"
              "  (unit=%s unauth=%d fwd_local=%d fwd_remote=%d lists=%d)",
              seed, step, mbuf, gbuf, wbuf,
              M.unit_messages ? "messages" : "recipients", M.count_unauth,
              M.count_fwd_local, M.count_fwd_remote, M.count_lists);

    actions[got.action]++;
    if (got.action == OBSPAM_REFUSE)
      *(got.retry_after == -1 ? &never : &later) += 1;
    if (got.action == OBSPAM_ACCEPT)
      accept_kind[got.kind]++;
    if (got.kind == OBSPAM_MAILBOX) {
      int mb = find_mb(got.object);
      if (mb >= 0 && M.mb[mb].implicit)
        ty->implicit++;
    }

    if (step % 250 == 249)
      compare_stats(step);
  }
  compare_stats(N_STEPS);
  ty->never += never;
  ty->later += later;
  obspam_engine_free(e);
  e = NULL;
}

#define SEED_TEST(n)                                                           \
  Test(property, seed_##n) {                                                   \
    tally ty;                                                                  \
    memset(&ty, 0, sizeof ty);                                                 \
    run(n, &ty);                                                               \
    cr_assert_gt(ty.actions[OBSPAM_ACCEPT], 0);                                \
    cr_assert_gt(ty.actions[OBSPAM_REFUSE], 0);                                \
  }

SEED_TEST(1)
SEED_TEST(2)
SEED_TEST(3)
SEED_TEST(4)
SEED_TEST(5)
SEED_TEST(6)
SEED_TEST(7)
SEED_TEST(8)
SEED_TEST(9)
SEED_TEST(10)

/* Over all seeds the generator covers every action, refusals that never fit
   and that fit later, and accepts naming each kind of object; otherwise the
   comparison above would prove little. */
Test(property, verdict_mix_is_not_degenerate) {
  tally ty;
  memset(&ty, 0, sizeof ty);
  for (uint64_t seed = 1; seed <= 10; seed++)
    run(seed, &ty);
  for (int a = 0; a < 4; a++)
    cr_assert_geq(ty.actions[a], 2000, "action %d only %" PRId64 " times", a,
                  ty.actions[a]);
  cr_assert_geq(ty.never, 1000, "retry -1 only %" PRId64 " times", ty.never);
  cr_assert_geq(ty.later, 500, "retry > 0 only %" PRId64 " times", ty.later);
  for (int k = OBSPAM_SUBSCRIPTION; k <= OBSPAM_MAILBOX; k++)
    cr_assert_geq(ty.accept_kind[k], 300,
                  "accepts naming kind %d only %" PRId64 " times", k,
                  ty.accept_kind[k]);
  cr_log_info("implicit mailboxes named %" PRId64 " times", ty.implicit);
  cr_assert_geq(ty.implicit, 300,
                "implicit mailboxes named only %" PRId64 " times", ty.implicit);
}
