/* SPDX-License-Identifier: MIT */
/*
 * Property test: the engine against a small, obviously-correct reference
 * model written here from API.md "Decision semantics (normative)", SPEC.md
 * section 2 (the windows, the recipients cap, who is named) and the
 * README's "How a message is decided".
 *
 * For each fixed seed a random small tree (plans, subscriptions with uids,
 * domains, mailboxes; random limits in each of the three windows including
 * 0, unlimited and inherit; random recipients caps; random scripts
 * settings) and a random whitelist are built through the C API, then random
 * messages are decided by both the engine and the model, and every verdict
 * field is compared (action, kind, object, limit, count, retry_after,
 * window). Now and then an option is toggled, a limit, cap or scripts
 * setting changed, an object removed or added back, or a whitelist entry
 * toggled. At intervals and at the end, stats_get of every object is
 * compared with the model. Messages mostly come minutes apart, with bursts
 * seconds apart, so that every window fills up now and then.
 *
 * The model keeps, per object, a plain list of (time, amount) charges and
 * lists of the minutes of its refusals and of its attempts over its own
 * limit. A window of nb buckets of b seconds holds at t the charges whose
 * t div b is one of t div b - nb + 1 .. t div b (SPEC.md section 2:
 * minute 12 x 5 s, hour 60 x 60 s, day 24 x 3600 s).
 *
 * Each window's wait (API.md step 5) is found by trying the times at which
 * that window can change; the verdict names the longest wait (-1 the
 * longest), ties going to the highest level, then to the longer window;
 * the recipients cap of the lowest charged object is a wait of -1 in a
 * window of 0 seconds, the shortest. The retry hint is checked to be the
 * first second at which the message fits every window of every object.
 * Every charged object records the refusal, the objects with a wait (or
 * over their cap) record it as over the limit (the subscription for
 * forbidden scripts).
 *
 * OBSPAM_TEST_WINDOWS (default "minute,hour,day") names the windows the
 * library under test counts: the others get no limits here and their
 * counts in stats_get are not compared, so that a library that counts the
 * hour only is tested with OBSPAM_TEST_WINDOWS=hour.
 *
 * Two deliberate restrictions: API.md does not say in so many words whether
 * a decision that ends EXEMPT or UNKNOWN moves the engine's newest time
 * (test_window.c pins that separately). So the generator never gives such a
 * message a time newer than the newest counted one, and the model only
 * moves its newest time on decisions that reach the counters. And no cap is
 * 0: whether a cap of 0 makes stats_get call an object blocked (a message
 * has at least one recipient) is not said; caps are 1 and up.
 */
#include <ctype.h>
#include <stdlib.h>

#include "testutil.h"

#define N_STEPS 3000

/* ---- PRNG (splitmix64) ----------------------------------------------------
 */

static uint64_t rng_state;

static uint64_t rnd(void) { return tu_splitmix64(&rng_state); }

/* Uniform in [0, n). */
static int rn(int n) { return (int)(rnd() % (uint64_t)n); }

/* True with probability pct/1000. */
static int chance(int per_mille) { return rn(1000) < per_mille; }

/* ---- the model ------------------------------------------------------------
 */

enum { LS = 0, LD = 1, LM = 2 }; /* subscription, domain, mailbox limit */

/* The windows, shortest first: the seconds of a bucket, the buckets of
   the window, the window's seconds (OBSPAM_WINDOW_*). */
enum { WM = 0, WH = 1, WD = 2, NW = 3 };
static const int64_t bucket_s[NW] = {5, 60, 3600};
static const int64_t buckets[NW] = {12, 60, 24};
static const int64_t window_s[NW] = {OBSPAM_WINDOW_MINUTE, OBSPAM_WINDOW_HOUR,
                                     OBSPAM_WINDOW_DAY};
static const char *const window_name[NW] = {"minute", "hour", "day"};

/* Whether the library under test counts each window
   (OBSPAM_TEST_WINDOWS). */
static int counted[NW];

static void read_counted(void) {
  const char *env = getenv("OBSPAM_TEST_WINDOWS");
  if (env == NULL || env[0] == '\0')
    env = "minute,hour,day";
  for (int w = 0; w < NW; w++)
    counted[w] = strstr(env, window_name[w]) != NULL;
}

/* A list of (when, amount) that grows as needed, in the order added. */
typedef struct event {
  int64_t at, amount;
} event;

typedef struct events {
  event *v;
  size_t n, cap;
} events;

typedef struct counters {
  events charges;  /* at: time; times never go down */
  events refusals; /* at: minute; amount 1 */
  int64_t refused_total, last_refused;
  events exceeded; /* attempts over the object's own limit, likewise */
  int64_t exceeded_total;
} counters;

#define MAXP 3
#define MAXS 5
#define MAXD 12
/* Declared mailboxes, then implicit ones as they appear. */
#define MAXM 36
#define MAXMI (MAXM + 3 * MAXD + 8)

/* lim[w][l]: window w of limit l; cap: max-recipients (OBSPAM_INHERIT
   where not set). */
typedef struct mplan {
  char name[24];
  int64_t lim[NW][3], cap;
  int scripts; /* 1, 0, OBSPAM_INHERIT */
} mplan;

typedef struct msub {
  char name[24];
  int plan; /* -1: none */
  int64_t lim[NW][3], cap;
  int scripts;
  int64_t uid; /* -1: none */
  counters k;
} msub;

typedef struct mdom {
  char name[24];
  int sub;
  int alive;
  int64_t own[NW], mdef[NW], cap; /* its own, its mailboxes' default */
  counters k;
} mdom;

typedef struct mmbox {
  char name[40];
  int dom;
  int alive;
  int implicit; /* alive and not declared: made by a decision */
  int64_t own[NW], cap;
  counters k;
} mmbox;

static const char *const wl_entries[] = {"192.0.2.0/24", "2001:db8::/32",
                                         "10.1.2.3", "198.51.100.0/25"};
#define N_WL 4

/* The client addresses of the random messages; for client c,
   client_match[c] has bit i set where wl_entries[i] matches it, and
   client_local[c] says it is a local submission or in a default local
   network. */
static const char *const client_addr[] = {NULL,
                                          "",
                                          "192.0.2.7",
                                          "192.0.3.7",
                                          "::ffff:192.0.2.9",
                                          "2001:db8::5",
                                          "2001:db9::5",
                                          "10.1.2.3",
                                          "10.1.2.4",
                                          "127.0.0.1",
                                          "::ffff:127.1.2.3",
                                          "::1",
                                          "198.51.100.10",
                                          "198.51.100.200"};
static const unsigned client_match[] = {0, 0, 1, 0, 1, 2, 0,
                                        4, 0, 0, 0, 0, 8, 0};
static const int client_local[] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0};
#define N_CLIENTS (sizeof client_addr / sizeof client_addr[0])
_Static_assert(sizeof client_match / sizeof client_match[0] == N_CLIENTS &&
                   sizeof client_local / sizeof client_local[0] == N_CLIENTS,
               "one match and one local flag a client");

typedef struct model {
  int64_t server[NW][3], server_cap;
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
  free(k->charges.v);
  free(k->refusals.v);
  free(k->exceeded.v);
  memset(k, 0, sizeof *k);
}

static void counters_reset(counters *k) { counters_free(k); }

static void events_add(events *l, int64_t at, int64_t amount) {
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 16;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    cr_assert(l->v, "out of memory");
  }
  l->v[l->n++] = (event){at, amount};
}

/* Keeps the events whose at div unit is lo or more. */
static void events_keep_from(events *l, int64_t unit, int64_t lo) {
  size_t j = 0;

  for (size_t i = 0; i < l->n; i++)
    if (l->v[i].at / unit >= lo)
      l->v[j++] = l->v[i];
  l->n = j;
}

static void add_charge(counters *k, int64_t t, int64_t amount) {
  cr_assert(k->charges.n == 0 || k->charges.v[k->charges.n - 1].at <= t,
            "model: time went back");
  events_add(&k->charges, t, amount);
}

static void add_refusal(counters *k, int64_t t) {
  events_add(&k->refusals, t / 60, 1);
  k->refused_total++;
  k->last_refused = t;
}

static void add_exceeded(counters *k, int64_t t) {
  events_add(&k->exceeded, t / 60, 1);
  k->exceeded_total++;
}

/* count_in_window(t) of window w: the charges whose bucket t_i div b is
   within the nb buckets that end with t div b. Every charge is at or
   before the newest time, so only the lower end needs looking at; the
   list is in time order, so the walk from its end stops there. */
static int64_t count_w(const counters *k, int w, int64_t t) {
  int64_t lo = t / bucket_s[w] - (buckets[w] - 1), hi = t / bucket_s[w];
  int64_t sum = 0;
  const events *c = &k->charges;

  for (size_t i = c->n; i-- > 0 && c->v[i].at / bucket_s[w] >= lo;)
    if (c->v[i].at / bucket_s[w] <= hi)
      sum += c->v[i].amount;
  return sum;
}

/* How many of the minutes of l are in the hour that ends with t's. */
static int64_t minutes_at(const events *l, int64_t t) {
  int64_t lo = t / 60 - 59, hi = t / 60, sum = 0;
  for (size_t i = 0; i < l->n; i++)
    if (l->v[i].at >= lo && l->v[i].at <= hi)
      sum++;
  return sum;
}

static int64_t refused_at(const counters *k, int64_t t) {
  return minutes_at(&k->refusals, t);
}

static int64_t exceeded_at(const counters *k, int64_t t) {
  return minutes_at(&k->exceeded, t);
}

/* Drops what can never be in a window again: charges older than the day
   window of newest, refusals older than its hour (time never goes
   back). */
static void prune(counters *k, int64_t newest) {
  events_keep_from(&k->charges, 3600, newest / 3600 - 23);
  events_keep_from(&k->refusals, 1, newest / 60 - 59);
  events_keep_from(&k->exceeded, 1, newest / 60 - 59);
}

/* ---- effective limits, caps and scripts, straight from the chains ---------
 */

static int64_t pick(int64_t v, int64_t fallback) {
  return v != OBSPAM_INHERIT ? v : fallback;
}

/* Each window on its own: the object's value, else the nearest
   ancestor's for that limit and window, else the server's. */
static int64_t eff_sub(int s, int w) {
  int64_t v = M.server[w][LS];
  if (M.sub[s].plan >= 0)
    v = pick(M.plan[M.sub[s].plan].lim[w][LS], v);
  return pick(M.sub[s].lim[w][LS], v);
}

static int64_t eff_dom(int d, int w) {
  int s = M.dom[d].sub;
  int64_t v = M.server[w][LD];
  if (M.sub[s].plan >= 0)
    v = pick(M.plan[M.sub[s].plan].lim[w][LD], v);
  v = pick(M.sub[s].lim[w][LD], v);
  return pick(M.dom[d].own[w], v);
}

static int64_t eff_mb(int m, int w) {
  int d = M.mb[m].dom, s = M.dom[d].sub;
  int64_t v = M.server[w][LM];
  if (M.sub[s].plan >= 0)
    v = pick(M.plan[M.sub[s].plan].lim[w][LM], v);
  v = pick(M.sub[s].lim[w][LM], v);
  v = pick(M.dom[d].mdef[w], v);
  return pick(M.mb[m].own[w], v);
}

/* The recipients cap: one value per object, inherited down the chain
   mailbox, domain, subscription, plan, server. */
static int64_t cap_sub(int s) {
  int64_t v = M.server_cap;
  if (M.sub[s].plan >= 0)
    v = pick(M.plan[M.sub[s].plan].cap, v);
  return pick(M.sub[s].cap, v);
}

static int64_t cap_dom(int d) {
  return pick(M.dom[d].cap, cap_sub(M.dom[d].sub));
}

static int64_t cap_mb(int m) { return pick(M.mb[m].cap, cap_dom(M.mb[m].dom)); }

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

/* "An unauthenticated sender that is no valid name whose domain, after
   its last '@', is hosted charges that domain and its subscription"
   (README, since 1.4.5): asked when resolve finds nothing. */
static int resolve_domain_of(const char *addr, charged *c) {
  char l[400];
  if (addr == NULL)
    return 0;
  lower(addr, l, sizeof l);
  char *at = strrchr(l, '@');
  if (at == NULL)
    return 0;
  size_t n = strlen(at + 1);
  if (n >= 2 && at[n] == '.' && at[n - 1] != '.')
    at[n] = '\0';
  int d = find_dom(at + 1);
  if (d < 0)
    return 0;
  charge_domain(c, d);
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
  for (int w = 0; w < NW; w++)
    M.mb[m].own[w] = OBSPAM_INHERIT;
  M.mb[m].cap = OBSPAM_INHERIT;
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

static int64_t eff(int kind, int idx, int w) {
  switch (kind) {
  case OBSPAM_SUBSCRIPTION:
    return eff_sub(idx, w);
  case OBSPAM_DOMAIN:
    return eff_dom(idx, w);
  default:
    return eff_mb(idx, w);
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
    return resolve(msg->sender, c) || resolve_domain_of(msg->sender, c)
               ? -1
               : OBSPAM_UNKNOWN;
  return OBSPAM_UNKNOWN;
}

static int fits_all(const charged *c, int64_t t, int64_t n) {
  for (int i = 0; i < c->n; i++)
    for (int w = 0; w < NW; w++) {
      int64_t lim = eff(c->kind[i], c->idx[i], w);
      if (lim != OBSPAM_UNLIMITED &&
          count_w(ctr(c->kind[i], c->idx[i]), w, t) + n > lim)
        return 0;
    }
  return 1;
}

/* API.md step 5: the wait of one object in window w, 0 when the message
   fits it now, -1 when it never can, else the smallest s >= 1 at which it
   fits. The window's count changes only where a bucket starts, so the
   candidates are s = 1 and the starts of the next nb + 1 buckets. */
static int64_t wait_one(int kind, int idx, int w, int64_t t, int64_t n) {
  const counters *k = ctr(kind, idx);
  int64_t lim = eff(kind, idx, w), b = bucket_s[w];

  if (lim == OBSPAM_UNLIMITED || count_w(k, w, t) + n <= lim)
    return 0;
  if (n > lim)
    return -1;
  if (count_w(k, w, t + 1) + n <= lim)
    return 1;
  for (int64_t j = 1; j <= buckets[w] + 1; j++) {
    int64_t s = (t / b + j) * b - t;
    if (count_w(k, w, t + s) + n <= lim)
      return s;
  }
  cr_assert_fail("model: no wait found");
  return 0;
}

/* One reason to refuse: object i (top first) in window w (NW: the
   recipients cap, a window of 0 seconds) with that wait. */
typedef struct reason {
  int i, w;
  int64_t wait;
} reason;

static int64_t reason_window(const reason *r) {
  return r->w == NW ? 0 : window_s[r->w];
}

/* Whether a is named before b (SPEC.md "Who is named", API.md step 5):
   the longer wait, -1 the longest; then the higher level; then the longer
   window. */
static int named_before(const reason *a, const reason *b) {
  if (a->wait != b->wait) {
    if (a->wait == -1 || b->wait == -1)
      return a->wait == -1;
    return a->wait > b->wait;
  }
  if (a->i != b->i)
    return a->i < b->i;
  return reason_window(a) > reason_window(b);
}

static void empty_verdict(obspam_verdict *v, int action) {
  memset(v, 0, sizeof *v);
  v->struct_size = sizeof *v;
  v->action = action;
  v->kind = -1;
}

/* What a run saw, beyond the verdicts' actions: refusals naming each
   window (NW: the cap), those of them with a wait that ends, and those
   whose naming needed a tie-break. */
typedef struct seen {
  int64_t named[NW + 1], named_later[NW];
  int64_t tie_level, tie_window;
} seen;

static seen S;

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
    v->limit = eff_sub(script_sub, WH);
    v->count = count_w(&M.sub[script_sub].k, WH, t);
    v->retry_after = -1;
    v->window = 0;
    for (int i = 0; i < c.n; i++)
      add_refusal(ctr(c.kind[i], c.idx[i]), t);
    add_exceeded(&M.sub[script_sub].k, t);
    return;
  }
  int64_t n = M.unit_messages ? 1 : (int64_t)msg->recipients;
  /* 5. every reason to refuse: each window of each object, and the cap
     of the lowest one against the recipients, whatever the unit */
  reason why[3 * NW + 1];
  int nwhy = 0, over[3] = {0, 0, 0};
  for (int i = 0; i < c.n; i++)
    for (int w = 0; w < NW; w++) {
      int64_t wait = wait_one(c.kind[i], c.idx[i], w, t, n);
      if (wait != 0) {
        why[nwhy++] = (reason){i, w, wait};
        over[i] = 1;
      }
    }
  int lo = c.n - 1;
  int64_t cap = c.kind[lo] == OBSPAM_MAILBOX  ? cap_mb(c.idx[lo])
                : c.kind[lo] == OBSPAM_DOMAIN ? cap_dom(c.idx[lo])
                                              : cap_sub(c.idx[lo]);
  if (cap != OBSPAM_UNLIMITED && (int64_t)msg->recipients > cap) {
    why[nwhy++] = (reason){lo, NW, -1};
    over[lo] = 1;
  }
  if (nwhy > 0) {
    const reason *r = &why[0];
    for (int j = 1; j < nwhy; j++)
      if (named_before(&why[j], r))
        r = &why[j];
    for (int j = 0; j < nwhy; j++)
      if (&why[j] != r && why[j].wait == r->wait)
        *(why[j].i == r->i ? &S.tie_window : &S.tie_level) += 1;
    S.named[r->w]++;
    if (r->wait > 0)
      S.named_later[r->w]++;
    int i = r->i;
    v->action = OBSPAM_REFUSE;
    v->kind = c.kind[i];
    snprintf(v->object, sizeof v->object, "%s", oname(c.kind[i], c.idx[i]));
    if (r->w == NW) {
      v->limit = cap;
      v->count = msg->recipients;
    } else {
      v->limit = eff(c.kind[i], c.idx[i], r->w);
      v->count = count_w(ctr(c.kind[i], c.idx[i]), r->w, t);
    }
    v->retry_after = r->wait;
    v->window = reason_window(r);
    /* The longest wait is the first second at which the message fits
       every window of every object (fitting only gets easier as time
       goes on, since nothing is charged meanwhile). */
    if (r->wait == -1)
      cr_assert(!fits_all(&c, t + 86400 * 2, n) ||
                    (cap != OBSPAM_UNLIMITED && (int64_t)msg->recipients > cap),
                "model: a wait of -1 that fits later");
    else
      cr_assert(fits_all(&c, t + r->wait, n) &&
                    !fits_all(&c, t + r->wait - 1, n),
                "model: the longest wait is not the retry hint");
    for (int j = 0; j < c.n; j++) {
      add_refusal(ctr(c.kind[j], c.idx[j]), t);
      if (over[j])
        add_exceeded(ctr(c.kind[j], c.idx[j]), t);
    }
    return;
  }
  /* 6. accept: the lowest charged object is named, with its hour */
  v->action = OBSPAM_ACCEPT;
  v->kind = c.kind[lo];
  snprintf(v->object, sizeof v->object, "%s", oname(c.kind[lo], c.idx[lo]));
  v->limit = eff(c.kind[lo], c.idx[lo], WH);
  v->count = count_w(ctr(c.kind[lo], c.idx[lo]), WH, t);
  v->retry_after = 0;
  v->window = OBSPAM_WINDOW_HOUR;
  for (int i = 0; i < c.n; i++)
    add_charge(ctr(c.kind[i], c.idx[i]), t, n);
}

/* ---- building the tree in both ----------------------------------------------
 */

static obspam_engine *e;
static uint64_t cur_seed;

/* A random own value of window w: mostly inherit; small enough to be
   reached by the traffic of a run (bursts for the minute, days of mail
   for the day). A window the library does not count gets none. */
static int64_t rand_limit(int w) {
  int r = rn(100);
  if (!counted[w] || r < 40 + 15 * (w != WH))
    return OBSPAM_INHERIT;
  if (r < 64)
    return OBSPAM_UNLIMITED;
  if (r < 67)
    return 0;
  switch (w) {
  case WM:
    return r < 85 ? 1 + rn(6) : 5 + rn(21);
  case WH:
    return r < 75 ? 1 + rn(5) : 10 + rn(71);
  default:
    return r < 80 ? 10 + rn(51) : 50 + rn(351);
  }
}

static int64_t rand_server_limit(int w) {
  if (!counted[w] || rn(100) < 40 + 10 * (w != WH))
    return OBSPAM_UNLIMITED;
  return w == WM ? 5 + rn(26) : w == WH ? 20 + rn(131) : 100 + rn(701);
}

/* A recipients cap: mostly inherit, else 1 to 5 or unlimited (never 0:
   see the top). */
static int64_t rand_cap(void) {
  int r = rn(100);
  return r < 65 ? OBSPAM_INHERIT : r < 72 ? OBSPAM_UNLIMITED : 1 + rn(5);
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

/* Sets window w of limit which of an object in the engine: the hour now
   and then through the 1.0 function, which is the same window. */
static void set_w(int kind, const char *name, int which, int w, int64_t v) {
  if (w == WH && rn(2))
    E_OK(obspam_set_limit(e, kind, name, which, v));
  else
    E_OK(obspam_set_window_limit(e, kind, name, which, window_s[w], v));
}

/* An own value for window w, or the cap (w == NW), of an object: set in
   the engine unless it is inherit, which a new object has already. */
static int64_t own_value(int kind, const char *name, int which, int w) {
  int64_t v = w == NW ? rand_cap() : rand_limit(w);
  if (v != OBSPAM_INHERIT && w == NW)
    E_OK(obspam_set_max_recipients(e, kind, name, v));
  else if (v != OBSPAM_INHERIT)
    set_w(kind, name, which, w, v);
  return v;
}

static void add_mailbox_both(int m) {
  char b[64];
  mmbox *B = &M.mb[m];
  /* Declaring an implicit mailbox keeps its counters. */
  if (!B->implicit)
    counters_reset(&B->k);
  B->alive = 1;
  B->implicit = 0;
  E_OK(obspam_add(e, OBSPAM_MAILBOX, rcase(B->name, b, sizeof b),
                  rn(2) ? NULL : M.dom[B->dom].name));
  for (int w = 0; w < NW; w++)
    B->own[w] = rn(2) ? own_value(OBSPAM_MAILBOX, B->name, OBSPAM_MAILBOX, w)
                      : OBSPAM_INHERIT;
  B->cap = own_value(OBSPAM_MAILBOX, B->name, OBSPAM_MAILBOX, NW);
}

static void add_domain_both(int d) {
  char b[64];
  mdom *D = &M.dom[d];
  D->alive = 1;
  counters_reset(&D->k);
  E_OK(obspam_add(e, OBSPAM_DOMAIN, rcase(D->name, b, sizeof b),
                  rcase(M.sub[D->sub].name, b + 32, 32)));
  for (int w = 0; w < NW; w++) {
    D->own[w] = own_value(OBSPAM_DOMAIN, D->name, OBSPAM_DOMAIN, w);
    D->mdef[w] = own_value(OBSPAM_DOMAIN, D->name, OBSPAM_MAILBOX, w);
  }
  D->cap = own_value(OBSPAM_DOMAIN, D->name, OBSPAM_DOMAIN, NW);
}

static void build(uint64_t seed) {
  char b[64];
  cur_seed = seed;
  rng_state = seed * 0x2545f4914f6cdd1dull + 12345;
  read_counted();
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

  for (int w = 0; w < NW; w++)
    for (int l = 0; l < 3; l++) {
      M.server[w][l] = rand_server_limit(w);
      set_w(OBSPAM_SERVER, NULL, which_of[l], w, M.server[w][l]);
    }
  M.server_cap = rn(100) < 60 ? OBSPAM_UNLIMITED : 2 + rn(5);
  E_OK(obspam_set_max_recipients(e, OBSPAM_SERVER, NULL, M.server_cap));
  M.server_scripts = rn(100) < 85;
  E_OK(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, M.server_scripts));

  M.np = rn(MAXP);
  for (int p = 0; p < M.np; p++) {
    mplan *P = &M.plan[p];
    snprintf(P->name, sizeof P->name, "plan%d", p);
    E_OK(obspam_add(e, OBSPAM_PLAN, rcase(P->name, b, sizeof b), NULL));
    for (int w = 0; w < NW; w++)
      for (int l = 0; l < 3; l++)
        P->lim[w][l] = own_value(OBSPAM_PLAN, P->name, which_of[l], w);
    P->cap = own_value(OBSPAM_PLAN, P->name, OBSPAM_MAILBOX, NW);
    P->scripts = rand_scripts();
    E_OK(obspam_set_scripts_allowed(e, OBSPAM_PLAN, P->name, P->scripts));
  }

  M.ns = 1 + rn(MAXS - 1);
  for (int s = 0; s < M.ns; s++) {
    msub *U = &M.sub[s];
    snprintf(U->name, sizeof U->name, "sub%d", s);
    U->plan = M.np > 0 && rn(3) ? rn(M.np) : -1;
    E_OK(obspam_add(e, OBSPAM_SUBSCRIPTION, rcase(U->name, b, sizeof b),
                    U->plan >= 0 ? M.plan[U->plan].name : NULL));
    for (int w = 0; w < NW; w++)
      for (int l = 0; l < 3; l++)
        U->lim[w][l] = own_value(OBSPAM_SUBSCRIPTION, U->name, which_of[l], w);
    U->cap = own_value(OBSPAM_SUBSCRIPTION, U->name, OBSPAM_MAILBOX, NW);
    U->scripts = rand_scripts();
    E_OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, U->name,
                                    U->scripts));
    U->uid = rn(100) < 80 ? 1000 + s : -1;
    if (U->uid >= 0)
      E_OK(obspam_set_uid(e, U->name, U->uid));
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

/* A new value for one window (NW: the cap) of one limit of an object
   somewhere, set in both. A value set back to inherit is set in the
   engine too. */
static void change_value(void) {
  int w = rn(NW + 1), l = rn(3);
  int64_t v = w == NW ? rand_cap() : rand_limit(w);
  int kind;
  const char *name;
  int64_t *at;

  int which = rn(5);

  switch (which) {
  case 0:
    kind = OBSPAM_SERVER;
    name = NULL;
    if (w == NW)
      v = rn(2) ? OBSPAM_UNLIMITED : 1 + rn(6);
    else
      v = rand_server_limit(w);
    at = w == NW ? &M.server_cap : &M.server[w][l];
    break;
  case 1:
  case 2: {
    /* A plan or a subscription: the same limits and cap. */
    int is_plan = which == 1;
    if (is_plan && M.np == 0)
      return;
    int i = rn(is_plan ? M.np : M.ns);
    int64_t(*lim)[3] = is_plan ? M.plan[i].lim : M.sub[i].lim;
    kind = is_plan ? OBSPAM_PLAN : OBSPAM_SUBSCRIPTION;
    name = is_plan ? M.plan[i].name : M.sub[i].name;
    at = w == NW ? (is_plan ? &M.plan[i].cap : &M.sub[i].cap) : &lim[w][l];
    break;
  }
  case 3: {
    int d = rn(M.nd);
    if (!M.dom[d].alive)
      return;
    kind = OBSPAM_DOMAIN;
    name = M.dom[d].name;
    l = rn(2) ? LD : LM;
    at = w == NW   ? &M.dom[d].cap
         : l == LD ? &M.dom[d].own[w]
                   : &M.dom[d].mdef[w];
    break;
  }
  default: {
    if (M.nm == 0)
      return;
    int m = rn(M.nm);
    if (!M.mb[m].alive || M.mb[m].implicit)
      return;
    kind = OBSPAM_MAILBOX;
    name = M.mb[m].name;
    l = LM;
    at = w == NW ? &M.mb[m].cap : &M.mb[m].own[w];
  }
  }
  if (w < NW && !counted[w])
    return;
  *at = v;
  if (w == NW)
    E_OK(obspam_set_max_recipients(e, kind, name, v));
  else
    set_w(kind, name, which_of[l], w, v);
}

/* The model of mailbox m once it is removed: gone, with its counters. */
static void mailbox_gone(int m) {
  M.mb[m].alive = 0;
  M.mb[m].implicit = 0;
  counters_reset(&M.mb[m].k);
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
    change_value();
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
      mailbox_gone(m);
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
        if (M.mb[m].dom == d && M.mb[m].alive)
          mailbox_gone(m);
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
      /* Blocked: the highest of the object and its ancestors with a
         window that one more recipient would not fit. */
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
      for (int c = nchain - 1; c >= 0 && blocked < 0; c--)
        for (int w = 0; w < NW && blocked < 0; w++) {
          int64_t l = eff(chain_kind[c], chain_idx[c], w);
          if (l != OBSPAM_UNLIMITED &&
              count_w(ctr(chain_kind[c], chain_idx[c]), w, now) + 1 > l)
            blocked = c;
        }
      /* A window's count is compared when the library counts it; its
         limit always (none is set for a window it does not count). */
      enum { NF = 14 };
      int64_t want[NF] = {eff(kind, idx, WH),
                          count_w(k, WH, now),
                          refused_at(k, now),
                          k->refused_total,
                          k->last_refused,
                          blocked < 0,
                          exceeded_at(k, now),
                          k->exceeded_total,
                          blocked < 0 ? -1 : chain_kind[blocked],
                          0,
                          eff(kind, idx, WM),
                          counted[WM] ? count_w(k, WM, now) : s.count_minute,
                          eff(kind, idx, WD),
                          counted[WD] ? count_w(k, WD, now) : s.count_day};
      int64_t got[NF] = {s.limit,         s.count,          s.refused,
                         s.refused_total, s.last_refused,   s.sending,
                         s.exceeded,      s.exceeded_total, s.blocked_kind,
                         s.disabled,      s.limit_minute,   s.count_minute,
                         s.limit_day,     s.count_day};
      static const char *const field[NF] = {
          "limit",        "count",    "refused",      "refused_total",
          "last_refused", "sending",  "exceeded",     "exceeded_total",
          "blocked_kind", "disabled", "limit_minute", "count_minute",
          "limit_day",    "count_day"};
      cr_assert_str_eq(
          s.blocked_by,
          blocked < 0 ? "" : oname(chain_kind[blocked], chain_idx[blocked]),
          "seed %" PRIu64 " step %d: stats(%s).blocked_by", cur_seed, step,
          name);
      for (int f = 0; f < NF; f++)
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
  seen seen;        /* refusals by window, and tie-breaks */
} tally;

static void run(uint64_t seed, tally *ty) {
  int64_t *actions = ty->actions, *accept_kind = ty->accept_kind;
  int64_t never = 0, later = 0;
  memset(&S, 0, sizeof S);
  build(seed);
  int64_t clock = T0;
  int burst = 0;
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
    m.client_address = client_addr[c];
    m.recipients = (uint32_t)(1 + rn(5));
    int u = rn(M.ns + 2);
    m.uid = u < M.ns ? 1000 + u : (u == M.ns ? 999 : -1);
    int h = rn(4);
    m.domain_hint =
        h == 0   ? NULL
        : h == 3 ? "elsewhere.test"
                 : rcase(M.dom[rn(M.nd)].name, hint_buf, sizeof hint_buf);
    m.script = rn(2) ? "/var/www/x/index.php" : NULL;

    /* Minutes apart, with bursts of messages seconds apart now and then
       (which the minute window is for). */
    if (burst == 0 && chance(8))
      burst = 20 + rn(41);
    if (burst > 0) {
      burst--;
      clock += rn(7);
    } else {
      clock += rn(301);
    }
    m.time = clock;
    if (chance(30))
      m.time = clock - rn(4000); /* a time from the past */

    /* Messages that do not reach the counters get a time no newer than the
       newest counted one (see the comment at the top). */
    charged ch;
    int ss;
    if (classify(&m, client_match[c], client_local[c], &ch, &ss) != -1 &&
        m.time > M.newest)
      m.time = M.newest > 0 ? M.newest - rn(100) : T0 - 100000;

    obspam_verdict want;
    obspam_verdict got = OBSPAM_VERDICT_INIT;
    model_decide(&m, client_match[c], client_local[c], &want);
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
              "seed %" PRIu64 " step %d: message %s\n"
              "  engine %s window=%" PRId64 "\n  model  %s window=%" PRId64 "\n"
              "  (unit=%s unauth=%d fwd_local=%d fwd_remote=%d lists=%d)",
              seed, step, mbuf, gbuf, got.window, wbuf, want.window,
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
  for (int w = 0; w <= NW; w++)
    ty->seen.named[w] += S.named[w];
  for (int w = 0; w < NW; w++)
    ty->seen.named_later[w] += S.named_later[w];
  ty->seen.tie_level += S.tie_level;
  ty->seen.tie_window += S.tie_window;
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
   and that fit later, accepts naming each kind of object, refusals naming
   each window the library counts and the recipients cap, and namings that
   needed a tie-break between levels and between windows; otherwise the
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
  cr_log_info("refusals naming the minute %" PRId64 " (%" PRId64
              " with a wait that ends), the hour %" PRId64 " (%" PRId64
              "), the day %" PRId64 " (%" PRId64 "), the cap %" PRId64
              "; ties between levels %" PRId64 ", between windows %" PRId64,
              ty.seen.named[WM], ty.seen.named_later[WM], ty.seen.named[WH],
              ty.seen.named_later[WH], ty.seen.named[WD],
              ty.seen.named_later[WD], ty.seen.named[NW], ty.seen.tie_level,
              ty.seen.tie_window);
  for (int w = 0; w < NW; w++)
    if (counted[w]) {
      cr_assert_geq(ty.seen.named[w], 200,
                    "refusals naming the %s window only %" PRId64 " times",
                    window_name[w], ty.seen.named[w]);
      cr_assert_geq(ty.seen.named_later[w], 100,
                    "refusals naming the %s window with a wait that ends "
                    "only %" PRId64 " times",
                    window_name[w], ty.seen.named_later[w]);
    }
  cr_assert_geq(ty.seen.named[NW], 200,
                "refusals naming the cap only %" PRId64 " times",
                ty.seen.named[NW]);
  cr_assert_geq(ty.seen.tie_level, 200,
                "ties between levels only %" PRId64 " times",
                ty.seen.tie_level);
  cr_assert_geq(ty.seen.tie_window, counted[WM] || counted[WD] ? 200 : 1,
                "ties between windows only %" PRId64 " times",
                ty.seen.tie_window);
}
