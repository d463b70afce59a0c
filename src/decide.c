/* SPDX-License-Identifier: MIT */
/* obspam_decide and obspam_stats_get: the per-message path.

   A decision normalises at most three names into stack buffers, does at
   most three hash lookups, walks a handful of parent pointers for the
   effective limits, and hands the charged objects to the counter store
   in one call. It allocates nothing once the objects are active and
   formats nothing unless the input is invalid. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "journal.h"

/* A login or sender looked at ahead of its decision, by the look-ahead
   of a batch: its length and hash as it is written, and the mailbox its
   slot guessed. Used when the decision resolves the same text. */
typedef struct ready_name {
  const char *from;   /* the text; NULL: none */
  size_t len;         /* its length, up to OBSPAM_NAME_MAX + 1 */
  uint64_t hash;      /* with len at most OBSPAM_NAME_MAX: its hash */
  obspam__obj *guess; /* obspam__index_guess's among the mailboxes */
} ready_name;

/* An implicit mailbox a decision asks for: the name of a login or sender
   whose domain is hosted but whose mailbox is not declared. */
typedef struct wish {
  int want;
  uint64_t hash;
  obspam__name n;
} wish;

/* The mailbox (into *m) and the domain the normalised name n holds, or
   the domain it is; NULL when none is hosted. h is n's hash; same says
   that n is the text already looked up whole (no mailbox has it). */
static inline __attribute__((always_inline)) obspam__obj *
find_name(const obspam__tree *t, const obspam__name *n, int same, uint64_t h,
          obspam__obj **m) {
  if (n->at < n->len) {
    if (!same)
      *m = obspam__index_find_hash(&t->index[OBSPAM_MAILBOX], n->s, n->len, h);
    return *m != NULL ? (*m)->parent
                      : obspam__tree_find(t, OBSPAM_DOMAIN, n->s + n->at + 1,
                                          n->len - n->at - 1);
  }
  return obspam__index_find_hash(&t->index[OBSPAM_DOMAIN], n->s, n->len, h);
}

/* Resolves an address the way a login is resolved: a hosted mailbox
   charges the mailbox, its domain and its subscription; otherwise a hosted
   domain (the part after '@', or the whole text when it has none) charges
   the domain and its subscription, and an address with a local part asks
   for its implicit mailbox too (w). Returns 0 when nothing is hosted. pre,
   when not NULL, may hold addr looked at ahead.

   Most logins are written as their mailbox is declared: the text is
   looked up as it is first (obspam__tree_find_exact), and normalised
   only when that finds nothing. */
static inline __attribute__((always_inline)) int
resolve(const obspam__tree *t, const char *addr, obspam__charge *ch,
        const ready_name *pre, wish *w) {
  obspam__name own;
  obspam__obj *m = NULL, *d;
  size_t len;
  uint64_t h = 0;
  int same;

  if (addr == NULL || addr[0] == '\0')
    return 0;
  if (pre != NULL && pre->from == addr) {
    len = pre->len;
    if (len <= OBSPAM_NAME_MAX)
      m = obspam__tree_find_exact(t, addr, len, h = pre->hash, pre->guess);
  } else {
    len = strnlen(addr, OBSPAM_NAME_MAX + 1);
    if (len <= OBSPAM_NAME_MAX)
      m = obspam__tree_find_exact(t, addr, len,
                                  h = obspam__index_hash(addr, len), NULL);
  }
  if (m != NULL) {
    d = m->parent;
    ch->obj[0] = d->parent;
    ch->obj[1] = d;
    ch->obj[2] = m;
    ch->n = 3;
    return 1;
  }
  if (obspam__name_norm(addr, OBSPAM__NAME_ANY, &own) != NULL)
    return 0;
  /* Normalising changed nothing: the text's hash is the name's, and no
     mailbox has the name. */
  same = own.len == len && memcmp(own.s, addr, len) == 0;
  if (!same)
    h = obspam__index_hash(own.s, own.len);
  d = find_name(t, &own, same, h, &m);
  if (d == NULL) {
    /* "info@example.com." or "example.com!info" is info@example.com to
       the MTA, which sends it so: charged as that mailbox, not left
       unknown. Only when the name as written is not hosted: a domain
       declared as "fe80::1%eth0" is still itself. */
    size_t len0 = own.len, at0 = own.at;

    obspam__name_canon(&own);
    if (own.len == len0 && own.at == at0)
      return 0;
    h = obspam__index_hash(own.s, own.len);
    d = find_name(t, &own, 0, h, &m);
    if (d == NULL)
      return 0;
  }
  ch->obj[0] = d->parent;
  ch->obj[1] = d;
  ch->obj[2] = m;
  ch->n = m != NULL ? 3 : 2;
  if (m == NULL && own.at < own.len) {
    w->want = 1;
    w->hash = h;
    memcpy(&w->n, &own, offsetof(obspam__name, s) + own.len + 1);
  }
  return 1;
}

/* A script: the subscription that owns the uid (else the unknown-uid
   subscription), and the hinted domain when it is hosted under that
   subscription. */
static int resolve_script(const obspam__tree *t, const obspam_message *msg,
                          obspam__charge *ch) {
  obspam__sub *s = obspam__tree_script_sub(t, msg->uid);
  obspam__name n;
  obspam__obj *d;

  if (s == NULL)
    return 0;
  ch->obj[0] = &s->obj;
  ch->n = 1;
  if (msg->domain_hint != NULL &&
      obspam__name_norm(msg->domain_hint, OBSPAM__NAME_PLAIN, &n) == NULL) {
    d = obspam__tree_find(t, OBSPAM_DOMAIN, n.s, n.len);
    if (d != NULL && d->parent == &s->obj)
      ch->obj[ch->n++] = d;
  }
  ch->forbid = !obspam__scripts_allowed(t, s);
  return 1;
}

/* Step 3 of the decision: kinds of mail that are not counted. */
static int exempt(const obspam__conf *c, uint32_t flags) {
  return ((flags & OBSPAM_MSG_MAILING_LIST) &&
          !c->opt[OBSPAM_OPT_COUNT_MAILING_LISTS]) ||
         ((flags & OBSPAM_MSG_FORWARD_LOCAL) &&
          !c->opt[OBSPAM_OPT_COUNT_FORWARD_LOCAL]) ||
         ((flags & OBSPAM_MSG_FORWARD_REMOTE) &&
          !c->opt[OBSPAM_OPT_COUNT_FORWARD_REMOTE]);
}

/* Whether unauthenticated mail from this client is counted (step 4):
   always, never, or (2, "local") only a local submission (no client
   address) or a client inside a local network. addr is the parsed client
   address when there is one. */
static int unauth_counted(const obspam__conf *c, const obspam_message *msg,
                          const uint8_t addr[16]) {
  switch (c->opt[OBSPAM_OPT_COUNT_UNAUTHENTICATED]) {
  case 0:
    return 0;
  case 1:
    return 1;
  default:
    return msg->client_address == NULL || msg->client_address[0] == '\0' ||
           obspam__local_contains(&c->local, addr);
  }
}

/* An unauthenticated sender that is no valid name (a blank or a quote in
   its local part, "x y"@example.com, more than one '@', longer than a
   name may be) whose domain, after its last '@', is hosted: that domain
   and its subscription, as the MTA sends the mail from that domain all
   the same. Returns 0 when nothing is hosted. Only asked when the sender
   resolves to nothing. */
static int resolve_domain_of(const obspam__tree *t, const char *sender,
                             obspam__charge *ch) {
  const char *at = sender != NULL ? strrchr(sender, '@') : NULL;
  obspam__name n;
  obspam__obj *d;

  if (at == NULL || obspam__name_norm(at + 1, OBSPAM__NAME_PLAIN, &n) != NULL)
    return 0;
  if (n.len >= 2 && n.s[n.len - 1] == '.' && n.s[n.len - 2] != '.')
    n.s[--n.len] = '\0';
  d = obspam__tree_find(t, OBSPAM_DOMAIN, n.s, n.len);
  if (d == NULL)
    return 0;
  ch->obj[0] = d->parent;
  ch->obj[1] = d;
  ch->n = 2;
  return 1;
}

/* Step 4: finds the charged objects. Returns 0 for UNKNOWN. Inline, as
   limits is: begin calls both for every message. */
static inline __attribute__((always_inline)) int
charged(const obspam__conf *c, const obspam_message *msg,
        const uint8_t addr[16], obspam__charge *ch, const ready_name *pre,
        wish *w) {
  const obspam__tree *t = &c->tree;

  if (msg->sasl_username != NULL && resolve(t, msg->sasl_username, ch, pre, w))
    return 1;
  if (msg->flags & OBSPAM_MSG_SCRIPT)
    return resolve_script(t, msg, ch);
  if (msg->flags & (OBSPAM_MSG_FORWARD_LOCAL | OBSPAM_MSG_FORWARD_REMOTE))
    return resolve(t, msg->sender, ch, pre, w);
  if (unauth_counted(c, msg, addr) || (msg->flags & OBSPAM_MSG_MAILING_LIST))
    return resolve(t, msg->sender, ch, pre, w) ||
           resolve_domain_of(t, msg->sender, ch);
  return 0;
}

/* A script path as reports show it: at most OBSPAM__SCRIPT_MAX bytes, with
   control characters (a header can carry anything) shown as '?'. */
static size_t clean_script(const char *in, char *out) {
  size_t i;

  for (i = 0; in[i] != '\0' && i < OBSPAM__SCRIPT_MAX; i++) {
    unsigned char c = (unsigned char)in[i];

    out[i] = (char)(c < 0x20 || c == 0x7f ? '?' : c);
  }
  out[i] = '\0';
  return i;
}

/* Notices for immediate mode, copied out while the engine lock is held so
   that the callback can run after it is released. */
typedef struct immediate {
  int n;
  obspam_notice notice[3];
  char name[3][OBSPAM_NAME_MAX + 1];
  char sub[OBSPAM_NAME_MAX + 1];
  char contact[OBSPAM_NAME_MAX + 1];
} immediate;

static void immediate_fill(immediate *im, const obspam__charge *ch,
                           int64_t period) {
  const obspam__sub *s = obspam__owner(ch->obj[0]);
  int i;

  im->n = 0;
  memcpy(im->sub, s->obj.name, (size_t)s->obj.len + 1);
  if (s->contact != NULL)
    snprintf(im->contact, sizeof(im->contact), "%s", s->contact);
  for (i = 0; i < ch->n; i++) {
    obspam_notice *n = &im->notice[im->n];

    if (!ch->first_exceeded[i])
      continue;
    memcpy(im->name[im->n], ch->obj[i]->name, (size_t)ch->obj[i]->len + 1);
    memset(n, 0, sizeof(*n));
    n->struct_size = sizeof(*n);
    n->kind = ch->obj[i]->kind;
    n->name = im->name[im->n];
    n->subscription = im->sub;
    n->contact = s->contact != NULL ? im->contact : NULL;
    n->limit = obspam__over_limit(ch, i);
    n->window = obspam__over_seconds(ch, i);
    n->sent = ch->period_sent[i];
    n->refused = ch->period_refused[i];
    n->exceeded = 1;
    n->first_refused = n->last_refused = ch->t;
    n->period_start = ch->period_start;
    n->period_end = ch->period_start + period;
    im->n++;
  }
}

/* The window a verdict names, for callers whose verdict has the field:
   on accept the hour; on refusal the window named, or none (0) for the
   recipients cap and forbidden scripts. */
static void verdict_window(obspam_verdict *v, int64_t window) {
  if (OBSPAM__HAS(v, obspam_verdict, window))
    v->window = v->action == OBSPAM_ACCEPT ? OBSPAM_WINDOW_HOUR : window;
}

static void verdict_none(obspam_verdict *v, int action) {
  v->action = action;
  v->kind = -1;
  v->limit = v->count = v->retry_after = 0;
  v->object[0] = '\0';
  verdict_window(v, 0);
}

static inline __attribute__((always_inline)) void
verdict_obj(obspam_verdict *v, int action, const obspam__charge *ch, int i) {
  int w = action == OBSPAM_ACCEPT ? OBSPAM__W_HOUR : ch->window;

  v->action = action;
  v->kind = ch->obj[i]->kind;
  if (w >= 0) {
    v->limit = ch->limit[i][w];
    v->count = ch->count[i][w];
  } else if (ch->forbid) {
    v->limit = ch->limit[i][OBSPAM__W_HOUR];
    v->count = ch->count[i][OBSPAM__W_HOUR];
  } else { /* the recipients cap */
    v->limit = ch->cap;
    v->count = ch->recipients;
  }
  v->retry_after = action == OBSPAM_ACCEPT ? 0 : ch->retry_after;
  memcpy(v->object, ch->obj[i]->name, (size_t)ch->obj[i]->len + 1);
  verdict_window(v, w >= 0 ? obspam__window_seconds(w) : 0);
}

/* One decision on its way through the steps below. */
typedef struct decision {
  const obspam_message *msg;
  obspam_verdict *out;
  int64_t t; /* the message's time, which the decision moves the clock to */
  int rc;
  obspam__charge ch;
  char script[OBSPAM__SCRIPT_MAX + 1];
  /* The implicit mailbox charged, pinned until the decision is over; or,
     for a check, the one that would be made (a stand-in named w.n). */
  obspam__imb *pinned;
  obspam__obj standin;
  wish w;
  int overflow; /* the cap was met: charged without its implicit mailbox */
  /* In a batch: where d->ch stands among the group's charges, -1 when
     the message was settled without one. */
  int slot;
  int dry; /* in a batch: decided as obspam_check does */
} decision;

/* Checks what needs no lock. OBSPAM_OK, or the failure (recorded). */
static inline __attribute__((always_inline)) int
validate(obspam_engine *e, const obspam_message *msg,
         const obspam_verdict *out) {
  if (msg == NULL || out == NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "decide: %s is NULL",
                        msg == NULL ? "message" : "verdict");
  if (msg->struct_size < OBSPAM__SIZE_TO(obspam_message, time) ||
      out->struct_size < OBSPAM__SIZE_TO(obspam_verdict, object))
    return obspam__fail(e, OBSPAM_EINVAL,
                        "decide: struct_size is smaller than version 1's");
  if (msg->recipients == 0 || msg->time < 0)
    return obspam__fail(e, OBSPAM_EINVAL, "decide: %s",
                        msg->recipients == 0 ? "no recipients"
                                             : "time is negative");
  return OBSPAM_OK;
}

/* How begin treats an implicit mailbox that does not exist yet. */
enum {
  MAKE = 0, /* a decision: make it */
  STANDIN,  /* a check: charge a stand-in with no counters */
  NOT_YET,  /* a batch's message after its group's first: decide it later,
               first of a group, so that the mailboxes are made in the
               order, and as often, as one decision at a time makes them */
  FIND      /* an exempt list delivery: only one that exists, none made */
};
#define LATER 2 /* begin: the message is left for the next group */

/* Adds the implicit mailbox d asks for to its charged objects: the one
   that exists, or, as mode says, a new one or a stand-in. With the cap
   met, only the domain and the subscription are charged (d->overflow).
   OBSPAM_OK, LATER, or OBSPAM_ENOMEM (recorded). */
static int implicit(obspam_engine *e, const obspam__conf *c, decision *d,
                    int mode) {
  obspam__charge *ch = &d->ch;
  obspam__obj *dom = ch->obj[1];
  obspam__imb *m;

  switch (obspam__implicit_get(&e->imp, &d->w.n, d->w.hash, dom,
                               c->opt[OBSPAM_OPT_IMPLICIT_MAILBOXES],
                               mode == MAKE, &m)) {
  case OBSPAM__IMB_FOUND:
    d->pinned = m;
    ch->obj[ch->n++] = &m->obj;
    break;
  case OBSPAM__IMB_ABSENT:
    if (mode == NOT_YET)
      return LATER;
    if (mode == FIND)
      break;
    memset(&d->standin, 0, sizeof(d->standin));
    d->standin.name = d->w.n.s;
    d->standin.len = (uint16_t)d->w.n.len;
    d->standin.kind = OBSPAM_MAILBOX;
    d->standin.parent = dom;
    d->standin.own[0] = d->standin.own[1] = d->standin.own[2] = OBSPAM_INHERIT;
    ch->obj[ch->n++] = &d->standin;
    break;
  case OBSPAM__IMB_FULL:
    d->overflow = mode != FIND;
    break;
  default:
    d->rc = obspam__fail(e, OBSPAM_ENOMEM, "decide: out of memory");
    return OBSPAM_ENOMEM;
  }
  return OBSPAM_OK;
}

/* A decision is over: its implicit mailbox, if any, is let go. */
static void release(obspam_engine *e, decision *d) {
  if (d->pinned != NULL) {
    obspam__implicit_unpin(&e->imp, d->pinned);
    d->pinned = NULL;
  }
}

/* The effective limits of the charged objects in each window, and the
   cap of the lowest one. On a tree where no object has extra values (the
   usual one) obspam__effective_w and obspam__effective_cap take the
   server's at once: only the hour is walked for. */
static inline __attribute__((always_inline)) void limits(const obspam__tree *t,
                                                         obspam__charge *ch) {
  int i, w;

  if (t->extras == 0) {
    /* The test for extra values once, not once per object and window. */
    for (i = 0; i < ch->n; i++) {
      int lim = OBSPAM__LIM(ch->obj[i]->kind);

      ch->limit[i][OBSPAM__W_MINUTE] = t->server_extra.own[0][lim];
      ch->limit[i][OBSPAM__W_HOUR] = obspam__effective(t, ch->obj[i]);
      ch->limit[i][OBSPAM__W_DAY] = t->server_extra.own[1][lim];
    }
    ch->cap = t->server_extra.max_rcpt;
    return;
  }
  for (i = 0; i < ch->n; i++)
    for (w = 0; w < OBSPAM__WINDOWS; w++)
      ch->limit[i][w] = obspam__effective_w(t, ch->obj[i], w);
  ch->cap = obspam__effective_cap(t, ch->obj[ch->n - 1]);
}

/* Mail of a script whose uid no subscription owns is UNKNOWN, but the
   store keeps it as a script row, by its path or else as "uid N", so
   that reports show it: a note (store.h) queued as charges are. 0 when
   there is one to make, 1 when there is nothing to name it by. */
static int note_unknown(const obspam__conf *c, decision *d) {
  const obspam_message *msg = d->msg;
  obspam__charge *ch = &d->ch;
  int64_t rcpt = msg->recipients > OBSPAM_RECIPIENTS_MAX
                     ? OBSPAM_RECIPIENTS_MAX
                     : (int64_t)msg->recipients;

  if (msg->script != NULL && msg->script[0] != '\0')
    ch->script_len = clean_script(msg->script, d->script);
  else if (msg->uid >= 0)
    ch->script_len = (size_t)snprintf(d->script, sizeof(d->script), "uid %lld",
                                      (long long)msg->uid);
  else
    return 1;
  ch->script = d->script;
  ch->note = 1;
  ch->n = 0;
  ch->refuser = -1;
  ch->uid = msg->uid >= 0 ? msg->uid : -1;
  ch->c = c->opt[OBSPAM_OPT_COUNT_UNIT] ? 1 : rcpt;
  ch->retention = c->opt[OBSPAM_OPT_RETENTION_HOURS];
  ch->period = c->opt[OBSPAM_OPT_NOTIFY_PERIOD];
  ch->record = NULL;
  ch->record_many = NULL;
  ch->timeout_ms = c->opt[OBSPAM_OPT_STORE_TIMEOUT_MS];
  ch->defer = 0;
  return 0;
}

/* The amount a message counts: its recipients (at most
   OBSPAM_RECIPIENTS_MAX), or 1 in the messages unit. */
static void amount(const obspam__conf *c, const obspam_message *msg,
                   obspam__charge *ch) {
  ch->recipients = msg->recipients > OBSPAM_RECIPIENTS_MAX
                       ? OBSPAM_RECIPIENTS_MAX
                       : (int64_t)msg->recipients;
  ch->c = c->opt[OBSPAM_OPT_COUNT_UNIT] ? 1 : ch->recipients;
}

/* An exempt mailing-list delivery is charged nothing, but the objects it
   would have been charged to count it, so that reports and status show
   the lists' mail: the subscription, the domain and the sender's mailbox
   when it exists (declared or implicit; none is made for mail that is
   not counted). The verdict stays EXEMPT. 0 when d->ch is ready for the
   store, 1 when nothing is hosted (or memory ran out: d->rc). */
static int listed(obspam_engine *e, const obspam__conf *c, decision *d,
                  const uint8_t addr[16], const ready_name *pre) {
  obspam__charge *ch = &d->ch;

  d->w.want = 0;
  if (!charged(c, d->msg, addr, ch, pre, &d->w) ||
      (d->msg->flags & OBSPAM_MSG_SCRIPT))
    return 1;
  if (d->w.want && implicit(e, c, d, FIND) != OBSPAM_OK)
    return 1;
  /* Nothing is checked against them, but the journal records them. */
  limits(&c->tree, ch);
  amount(c, d->msg, ch);
  ch->listed = 1;
  ch->marks = OBSPAM__MARK_LIST;
  ch->refuser = -1;
  ch->script = NULL;
  ch->retention = c->opt[OBSPAM_OPT_RETENTION_HOURS];
  ch->period = c->opt[OBSPAM_OPT_NOTIFY_PERIOD];
  ch->timeout_ms = c->opt[OBSPAM_OPT_STORE_TIMEOUT_MS];
  ch->defer = 0;
  return 0;
}

/* Steps 1 to 4 of a decision, under the engine's read lock, newest being
   the clock as the decisions before this one left it, pre a name
   normalised ahead or NULL, mode for a new implicit mailbox (dry: a
   check). Returns 1 when the decision is settled (d->rc, and on success
   the verdict, are set), 0 when d->ch is ready for the counter store,
   LATER when it needs an implicit mailbox made (mode NOT_YET). Inline:
   a batch calls it for every message, and its frame costs more than
   most of its steps. */
static inline __attribute__((always_inline)) int
begin(obspam_engine *e, const obspam__conf *c, decision *d, int mode,
      int64_t newest, const ready_name *pre) {
  int dry = mode == STANDIN, rc;
  const obspam_message *msg = d->msg;
  obspam__charge *ch = &d->ch;
  uint8_t addr[16];

  d->pinned = NULL;
  d->overflow = 0;
  d->rc = validate(e, msg, d->out);
  if (d->rc != OBSPAM_OK)
    return 1;
  ch->n = 0;
  ch->forbid = 0;
  if (c->opt[OBSPAM_OPT_ENABLED] && msg->client_address != NULL &&
      msg->client_address[0] != '\0' &&
      obspam__addr_parse(msg->client_address, addr) != 0) {
    d->rc = obspam__fail(e, OBSPAM_EINVAL,
                         "decide: client address '%.64s' is not an IPv4 or "
                         "IPv6 address",
                         msg->client_address);
    return 1;
  }
  /* Every message decided moves the clock, whatever its verdict, once it
     is decided (a failure changes nothing); a check only reads it. */
  d->t = msg->time != 0 ? msg->time : (int64_t)time(NULL);
  ch->t = d->t > newest ? d->t : newest;
  ch->dry = dry;
  ch->probe = (msg->flags & OBSPAM_MSG_PROBE) != 0;
  ch->notify_only = 0;
  ch->replay = 0;
  ch->reset = 0;
  ch->note = 0;
  ch->listed = 0;
  ch->marks = 0;
  ch->record = dry || e->journal == NULL ? NULL : obspam__journal_record;
  ch->record_many = ch->record != NULL ? obspam__journal_record_many : NULL;
  ch->record_ud = e->journal;
  if (!c->opt[OBSPAM_OPT_ENABLED]) {
    verdict_none(d->out, OBSPAM_ACCEPT);
    return 1;
  }
  if (c->wl.n > 0 && msg->client_address != NULL &&
      msg->client_address[0] != '\0' && obspam__wl_contains(&c->wl, addr)) {
    verdict_none(d->out, OBSPAM_EXEMPT);
    return 1;
  }
  if (exempt(c, msg->flags)) {
    verdict_none(d->out, OBSPAM_EXEMPT);
    if ((msg->flags & OBSPAM_MSG_MAILING_LIST) &&
        !c->opt[OBSPAM_OPT_COUNT_MAILING_LISTS] && !dry && !ch->probe)
      return listed(e, c, d, addr, pre);
    return 1;
  }
  d->w.want = 0;
  ch->marks =
      (msg->flags & (OBSPAM_MSG_FORWARD_LOCAL | OBSPAM_MSG_FORWARD_REMOTE)
           ? OBSPAM__MARK_FORWARD
           : 0) |
      (msg->flags & OBSPAM_MSG_MAILING_LIST ? OBSPAM__MARK_LIST : 0);
  if (!charged(c, msg, addr, ch, pre, &d->w)) {
    verdict_none(d->out, OBSPAM_UNKNOWN);
    /* A script the flag names and charged() could not place: its uid is
       nobody's (and there is no unknown-uid subscription). */
    if ((msg->flags & OBSPAM_MSG_SCRIPT) && !dry && !ch->probe)
      return note_unknown(c, d);
    return 1;
  }
  if (d->w.want && (rc = implicit(e, c, d, mode)) != OBSPAM_OK)
    return rc == LATER ? LATER : 1;
  limits(&c->tree, ch);
  amount(c, msg, ch);
  ch->over_cap = ch->cap >= 0 && ch->recipients > ch->cap;
  ch->retention = c->opt[OBSPAM_OPT_RETENTION_HOURS];
  ch->period = c->opt[OBSPAM_OPT_NOTIFY_PERIOD];
  ch->script = NULL;
  ch->uid = msg->uid >= 0 ? msg->uid : -1;
  ch->timeout_ms = c->opt[OBSPAM_OPT_STORE_TIMEOUT_MS];
  ch->defer = (int)c->opt[OBSPAM_OPT_STORE_FALLBACK];
  if (!dry && msg->script != NULL && msg->script[0] != '\0') {
    ch->script_len = clean_script(msg->script, d->script);
    ch->script = d->script;
  }
  return 0;
}

/* Step 5, once the store has charged d->ch with result rc: the verdict,
   and the immediate notices when im is not NULL. Inline, as begin is. */
static inline __attribute__((always_inline)) void
finish(obspam_engine *e, decision *d, int rc, immediate *im) {
  const obspam__charge *ch = &d->ch;

  d->rc = rc;
  if (rc != OBSPAM_OK) {
    obspam__fail(e, rc, "%s",
                 rc == OBSPAM_EUNAVAIL
                     ? "decide: the shared counter store does not answer "
                       "(store-fallback defer)"
                     : "decide: out of memory");
  } else if (ch->note || ch->listed) {
    /* UNKNOWN or EXEMPT, as begin() said: nobody was charged. */
  } else if (ch->refuser >= 0) {
    verdict_obj(d->out, OBSPAM_REFUSE, ch, ch->refuser);
    if (im != NULL)
      immediate_fill(im, ch, ch->period);
  } else {
    verdict_obj(d->out, OBSPAM_ACCEPT, ch, ch->n - 1);
  }
  if (rc == OBSPAM_OK && d->overflow && !ch->dry)
    obspam__implicit_overflowed(&e->imp);
}

/* obspam_decide, and with dry set obspam_check. */
static int decide(obspam_engine *e, const obspam_message *msg,
                  obspam_verdict *out, int dry) {
  decision d;
  const obspam__conf *c;
  void (*notify)(const obspam_notice *, void *) = NULL;
  void *notify_ud = NULL;
  immediate im;
  int i;

  if (e == NULL)
    return OBSPAM_EINVAL;
  d.msg = msg;
  d.out = out;
  im.n = 0;
  pthread_rwlock_rdlock(&e->lock);
  c = e->conf;
  if (!dry && c->opt[OBSPAM_OPT_NOTIFY_IMMEDIATE] && e->notify != NULL) {
    notify = e->notify;
    notify_ud = e->notify_ud;
  }
  if (!begin(e, c, &d, dry ? STANDIN : MAKE, obspam__newest(e, 0), NULL))
    finish(e, &d, e->store->ops->charge(e->store, &d.ch),
           notify != NULL ? &im : NULL);
  release(e, &d);
  if (d.rc == OBSPAM_OK && !dry)
    obspam__observe(e, d.t);
  pthread_rwlock_unlock(&e->lock);
  /* The callback runs with no lock held: it may even be slow. */
  for (i = 0; i < im.n; i++)
    notify(&im.notice[i], notify_ud);
  return d.rc;
}

int obspam_decide(obspam_engine *e, const obspam_message *msg,
                  obspam_verdict *out) {
  return decide(e, msg, out, 0);
}

int obspam_check(obspam_engine *e, const obspam_message *msg,
                 obspam_verdict *out) {
  return decide(e, msg, out, 1);
}

/* ---- batches ------------------------------------------------------------- */

/* Messages decided together: their lookups overlap, and the engine lock
   and the counter store's lock are taken once for them all. Eight was
   the fastest group on a tree of a million mailboxes; larger groups ask
   for more cache lines at once than the core can have in flight. */
#define GROUP 8

/* Brings into the cache what deciding d[0..n) will read: each message's
   login (or sender), its slot among the mailboxes (as it is written:
   resolve), the object found there, its parent and grandparent, then
   their counters. Each step runs for every message
   before the next step for any, so that the misses of a step overlap. It
   only reads and guesses; the decisions themselves do the real lookups.
   Under the engine's read lock. */
static void warm(obspam_engine *e, const obspam__conf *c, const decision *d,
                 size_t n, ready_name *pre) {
  const obspam__index *mbx = &c->tree.index[OBSPAM_MAILBOX];
  obspam__obj *o[3 * GROUP];
  size_t i, k = 0, from;
  int level;

  for (i = 0; i < n; i++) {
    const obspam_message *m = d[i].msg;

    pre[i].from = m == NULL                  ? NULL
                  : m->sasl_username != NULL ? m->sasl_username
                                             : m->sender;
    if (pre[i].from != NULL)
      OBSPAM__PREFETCH(pre[i].from);
  }
  for (i = 0; i < n; i++) {
    const char *f = pre[i].from;

    pre[i].len = f != NULL ? strnlen(f, OBSPAM_NAME_MAX + 1) : 0;
    if (f == NULL || pre[i].len > OBSPAM_NAME_MAX)
      continue;
    pre[i].hash = obspam__index_hash(f, pre[i].len);
    obspam__index_prefetch(mbx, pre[i].hash);
  }
  for (i = 0; i < n; i++) {
    obspam__obj *g = pre[i].from != NULL && pre[i].len <= OBSPAM_NAME_MAX
                         ? obspam__index_guess(mbx, pre[i].hash)
                         : NULL;

    pre[i].guess = g;
    if (g != NULL) {
      OBSPAM__PREFETCH(g);
      o[k++] = g;
    }
  }
  /* Up the tree: every guess is a mailbox of the tree, whose parent is
     a domain, whose parent is a subscription. */
  for (level = 0, from = 0; level < 2; level++) {
    size_t to = k;

    for (i = from; i < to; i++) {
      OBSPAM__PREFETCH(o[i]->parent);
      o[k++] = o[i]->parent;
    }
    from = to;
  }
  if (e->store->ops->warm != NULL && k > 0)
    e->store->ops->warm(e->store, o, (int)k, obspam__newest(e, 0) / 60);
}

/* Steps 1 to 4 for d[0..n), in order, each with the clock the ones
   before it leave. The charges the counter store must make are put in
   ch[0..*queued), in the messages' order, and each message's d->slot says
   where its charge is (-1: settled without one). Returns how many
   messages were begun: n, or fewer when one needs an implicit mailbox
   made, which only a group's first message may do (it begins the next
   group). */
static size_t begin_group(obspam_engine *e, const obspam__conf *c, decision *d,
                          size_t n, obspam__charge **ch, int *queued) {
  ready_name pre[GROUP];
  int64_t newest;
  size_t i;

  /* A group wider than GROUP goes to a shared store, whose round trip
     dwarfs the cache misses that warming would overlap. */
  if (n <= GROUP)
    warm(e, c, d, n, pre);
  newest = obspam__newest(e, 0);
  *queued = 0;
  for (i = 0; i < n; i++) {
    int mode = d[i].dry ? STANDIN : i == 0 ? MAKE : NOT_YET;
    int r = begin(e, c, &d[i], mode, newest, n <= GROUP ? &pre[i] : NULL);

    if (r == LATER)
      return i;
    d[i].slot = -1;
    if (r == 0) {
      d[i].slot = *queued;
      ch[(*queued)++] = &d[i].ch;
    }
    if (d[i].rc == OBSPAM_OK && !d[i].dry && d[i].t > newest)
      newest = d[i].t;
  }
  return n;
}

/* Makes the charges ch[0..n) in order, all under one lock of the store
   when it can. OBSPAM_OK with *done = n, or the failure of charge *done
   (those before it were made, those after it not tried). */
static int charge_queued(obspam__store *s, obspam__charge *const *ch, int n,
                         int *done) {
  int rc = OBSPAM_OK;

  *done = 0;
  if (n > 0 && s->ops->charge_many != NULL)
    return s->ops->charge_many(s, ch, n, done);
  for (; *done < n; ++*done)
    if ((rc = s->ops->charge(s, ch[*done])) != OBSPAM_OK)
      break;
  return rc;
}

/* Decides d[0..n) (msg, out and dry set), as as many calls of decide
   (or, dry, of obspam_check) would; ch has room for n charges. At most
   GROUP messages on the in-memory store; on a shared one, any number,
   whose charges go to the store in one exchange. Returns how many it
   decided: all of them, or fewer when a charge failed (the messages after
   it were prepared with a clock that counted the failed one, so they are
   decided again) or a message after the first needs an implicit mailbox
   made. */
static size_t decide_group(obspam_engine *e, decision *d, size_t n,
                           obspam__charge **ch) {
  int queued, done, rc;
  size_t begun, decided, i;

  pthread_rwlock_rdlock(&e->lock);
  if (e->conf->opt[OBSPAM_OPT_NOTIFY_IMMEDIATE] && e->notify != NULL) {
    /* Immediate notices are sent after each decision, without the lock:
       one message at a time. */
    pthread_rwlock_unlock(&e->lock);
    d[0].rc = decide(e, d[0].msg, d[0].out, d[0].dry);
    return 1;
  }
  begun = begin_group(e, e->conf, d, n, ch, &queued);
  rc = charge_queued(e->store, ch, queued, &done);
  decided = begun;
  for (i = 0; i < begun; i++) {
    if (d[i].slot >= 0)
      finish(e, &d[i], d[i].slot < done ? OBSPAM_OK : rc, NULL);
    if (d[i].rc == OBSPAM_OK && !d[i].dry)
      obspam__observe(e, d[i].t);
    if (d[i].slot >= done) {
      /* Its charge failed: the group ends with it. */
      decided = i + 1;
      break;
    }
  }
  /* Every message begun lets its implicit mailbox go, those left for the
     caller too (one made for a message decided again later is made again
     then). */
  for (i = 0; i < begun; i++)
    release(e, &d[i]);
  pthread_rwlock_unlock(&e->lock);
  return decided;
}

/* The most messages in one exchange with a shared store: each costs Redis
   about 100 µs of script, and the whole exchange must end within the
   store's timeout (200 ms by default). */
#define WIDE_MAX 256

/* The messages of a batch on a shared store, WIDE_MAX at a time in one
   group (one exchange with the store) while no message after the first
   needs an implicit mailbox made. Returns 0 with *first the first failure (or
   OBSPAM_OK), or -1 when the group cannot be allocated (nothing was
   decided). */
static int decide_wide(obspam_engine *e, const obspam_message *const *msgs,
                       obspam_verdict *const *out, int *rc, const uint32_t *how,
                       size_t n, int *first) {
  decision *d = malloc(n * sizeof(*d));
  obspam__charge **ch = malloc(n * sizeof(*ch));
  size_t i, j, k;

  *first = OBSPAM_OK;
  if (d == NULL || ch == NULL) {
    free(d);
    free(ch);
    return -1;
  }
  for (i = 0; i < n; i++) {
    d[i].msg = msgs[i];
    d[i].out = out[i];
    d[i].dry = how != NULL && (how[i] & OBSPAM_DECIDE_DRY) != 0;
  }
  for (i = 0; i < n; i += k) {
    k = decide_group(e, d + i, n - i < WIDE_MAX ? n - i : WIDE_MAX, ch);
    for (j = i; j < i + k; j++) {
      rc[j] = d[j].rc;
      if (d[j].rc != OBSPAM_OK && *first == OBSPAM_OK)
        *first = d[j].rc;
    }
  }
  free(d);
  free(ch);
  return 0;
}

int obspam__decide_many(obspam_engine *e, const obspam_message *const *msgs,
                        obspam_verdict *const *out, int *rc,
                        const uint32_t *how, size_t n) {
  decision d[GROUP];
  obspam__charge *ch[GROUP];
  size_t i, j, k;
  int first = OBSPAM_OK;

  /* Memory for a wide group running out, the batch goes by GROUP. */
  if (n > GROUP && __atomic_load_n(&e->shared, __ATOMIC_RELAXED) &&
      decide_wide(e, msgs, out, rc, how, n, &first) == 0)
    return first;
  for (i = 0; i < n; i += k) {
    size_t m = n - i < GROUP ? n - i : GROUP;

    for (j = 0; j < m; j++) {
      d[j].msg = msgs[i + j];
      d[j].out = out[i + j];
      d[j].dry = how != NULL && (how[i + j] & OBSPAM_DECIDE_DRY) != 0;
    }
    k = decide_group(e, d, m, ch);
    for (j = 0; j < k; j++) {
      rc[i + j] = d[j].rc;
      if (d[j].rc != OBSPAM_OK && first == OBSPAM_OK)
        first = d[j].rc;
    }
  }
  return first;
}

int obspam_decide_batch(obspam_engine *e, const obspam_message *const *msgs,
                        obspam_verdict *const *out, int *rc, size_t n) {
  if (e == NULL)
    return OBSPAM_EINVAL;
  if (n > 0 && (msgs == NULL || out == NULL || rc == NULL))
    return obspam__fail(e, OBSPAM_EINVAL, "decide_batch: %s is NULL",
                        msgs == NULL  ? "the message array"
                        : out == NULL ? "the verdict array"
                                      : "the return code array");
  return obspam__decide_many(e, msgs, out, rc, NULL, n);
}

/* What a reading counted in window w. */
static int64_t count_in(const obspam__reading *r, int w) {
  return w == OBSPAM__W_MINUTE ? r->count_minute
         : w == OBSPAM__W_HOUR ? r->count
                               : r->count_day;
}

/* The highest of o and its ancestors (up to its subscription) with a
   window that a one-recipient message through o would not fit now, or
   NULL: where its count and one more exceed its effective limit, as
   step 5 gives such a message a wait there. r is what the store read for
   o itself; an ancestor is read only when it has a limit. Under the
   engine's read lock. */
static const obspam__obj *blocker(obspam_engine *e, const obspam__obj *o,
                                  const obspam__reading *r, int64_t now,
                                  obspam__known known, void *ud) {
  const obspam__tree *t = &e->conf->tree;
  const obspam__obj *chain[3], *p;
  int n = 0;

  for (p = o; p != NULL && p->kind >= OBSPAM_SUBSCRIPTION; p = p->parent)
    chain[n++] = p;
  while (n-- > 0) {
    const obspam__reading *at = chain[n] == o ? r : NULL;
    obspam__reading up;
    int w;

    for (w = OBSPAM__WINDOWS - 1; w >= 0; w--) {
      int64_t limit = obspam__effective_w(t, chain[n], w);

      if (limit < 0)
        continue;
      if (at == NULL && known != NULL)
        at = known(chain[n], ud);
      if (at == NULL) {
        e->store->ops->read(e->store, chain[n], now,
                            e->conf->opt[OBSPAM_OPT_RETENTION_HOURS], &up);
        at = &up;
      }
      if (count_in(at, w) + 1 > limit)
        return chain[n];
    }
  }
  return NULL;
}

void obspam__stats_fill(obspam_engine *e, const obspam__obj *o, int64_t now,
                        obspam_stats *out) {
  obspam__stats_fill_known(e, o, now, NULL, NULL, out);
}

void obspam__stats_fill_known(obspam_engine *e, const obspam__obj *o,
                              int64_t now, obspam__known known, void *ud,
                              obspam_stats *out) {
  obspam__reading r;
  const obspam__reading *k = known != NULL ? known(o, ud) : NULL;
  const obspam__obj *b = NULL;
  int enabled = e->conf->opt[OBSPAM_OPT_ENABLED] != 0;

  if (k != NULL)
    r = *k;
  else
    e->store->ops->read(e->store, o, now,
                        e->conf->opt[OBSPAM_OPT_RETENTION_HOURS], &r);
  out->limit = obspam__effective(&e->conf->tree, o);
  OBSPAM__SET(out, obspam_stats, limit_minute,
              obspam__effective_w(&e->conf->tree, o, OBSPAM__W_MINUTE));
  OBSPAM__SET(out, obspam_stats, limit_day,
              obspam__effective_w(&e->conf->tree, o, OBSPAM__W_DAY));
  if (enabled)
    b = blocker(e, o, &r, now, known, ud);
  out->count = r.count;
  out->refused = r.refused;
  out->refused_total = r.refused_total;
  out->last_refused = r.last_refused;
  /* Sending while a one-recipient message would fit: protection is off,
     or it fits every window of this object and of every ancestor. The
     recipients cap is no window (API.md): a cap of 0 alone does not make
     an object "not sending". */
  out->sending = b == NULL;
  OBSPAM__SET(out, obspam_stats, exceeded, r.exceeded);
  OBSPAM__SET(out, obspam_stats, exceeded_total, r.exceeded_total);
  OBSPAM__SET(out, obspam_stats, count_minute, r.count_minute);
  OBSPAM__SET(out, obspam_stats, count_day, r.count_day);
  OBSPAM__SET(out, obspam_stats, disabled, !enabled);
  OBSPAM__SET(out, obspam_stats, blocked_kind, b != NULL ? b->kind : -1);
  /* Copied under the lock: the object may go once it is released. */
  if (OBSPAM__HAS(out, obspam_stats, blocked_by)) {
    if (b != NULL)
      memcpy(out->blocked_by, b->name, (size_t)b->len + 1);
    else
      out->blocked_by[0] = '\0';
  }
  OBSPAM__SET(out, obspam_stats, last_reset, r.last_reset);
  OBSPAM__SET(out, obspam_stats, forwarded, r.forwarded);
  OBSPAM__SET(out, obspam_stats, list_deliveries, r.lists);
}

int obspam_stats_get(obspam_engine *e, int kind, const char *name, int64_t now,
                     obspam_stats *out) {
  obspam__name n;
  obspam__obj *o;
  obspam__imb *held = NULL;
  const char *why;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (kind < OBSPAM_SUBSCRIPTION || kind > OBSPAM_MAILBOX)
    return obspam__fail(e, OBSPAM_EINVAL,
                        "stats_get: only a subscription, "
                        "domain or mailbox has statistics");
  if (out == NULL ||
      out->struct_size < OBSPAM__SIZE_TO(obspam_stats, last_refused) || now < 0)
    return obspam__fail(e, OBSPAM_EINVAL, "stats_get: %s",
                        now < 0 ? "time is negative"
                                : "no output structure of version 1's size");
  why = obspam__name_norm(
      name, kind == OBSPAM_MAILBOX ? OBSPAM__NAME_MAILBOX : OBSPAM__NAME_PLAIN,
      &n);
  if (why != NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "stats_get: %s name '%.64s': %s",
                        obspam_kind_name(kind), name ? name : "(null)", why);
  if (now == 0)
    now = (int64_t)time(NULL);
  now = obspam__newest(e, now);

  /* A shared store is read without the engine's lock: a round trip under
     it would make a reload, and every decision behind it, wait. */
  rc = __atomic_load_n(&e->shared, __ATOMIC_RELAXED)
           ? obspam__stats_named(e, kind, &n, now, out)
           : OBSPAM_EUNAVAIL;
  if (rc == OBSPAM_OK)
    return OBSPAM_OK;
  o = NULL;
  pthread_rwlock_rdlock(&e->lock);
  /* An implicit mailbox is pinned while it is read. */
  if (rc == OBSPAM_EUNAVAIL)
    o = obspam__find_counted(e, kind, &n, &held);
  if (o != NULL)
    obspam__stats_fill(e, o, now, out);
  if (held != NULL)
    obspam__implicit_unpin(&e->imp, held);
  pthread_rwlock_unlock(&e->lock);
  if (o == NULL)
    return obspam__fail(e, OBSPAM_ENOTFOUND, "stats_get: no %s '%s'",
                        obspam_kind_name(kind), n.s);
  return OBSPAM_OK;
}
