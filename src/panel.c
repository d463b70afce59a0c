/* SPDX-License-Identifier: MIT */
/* What a hosting panel asks: the objects of a kind page by page
   (obspam_enumerate), the top senders of a period (obspam_top), the
   reset of one object's counters (obspam_reset) and the subscription
   charged for mail of unknown uids. Each gathers what it answers while
   the locks are held and calls the callback with none held. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "journal.h"

/* The most objects one hold of the engine reads for obspam_enumerate: a
   larger max (or none) is served in pages of this many, the engine let
   go between them, so that neither the lock hold nor the memory of a
   call grows with the number of objects. */
#define PAGE 1024

/* One object picked for a page: implicit mailboxes are pinned once
   picked. */
typedef struct pick {
  obspam__obj *o;
  int implicit;
} pick;

static int pick_order(const void *a, const void *b) {
  return strcmp(((const pick *)a)->o->name, ((const pick *)b)->o->name);
}

/* The objects that sort after a cursor, the first `max` of them in name
   order: candidates are added in any order; whenever twice max of them
   wait, they are sorted and cut to max. n candidates cost O(n log max)
   and 2 max slots. */
typedef struct picker {
  pick *v;
  size_t n, max;
  const char *after; /* "" from the first */
  /* The last of a full page after the latest cut: only names before it
     can still enter. NULL while no cut filled the page. */
  const obspam__obj *bound;
} picker;

static void picker_cut(picker *p) {
  qsort(p->v, p->n, sizeof(*p->v), pick_order);
  if (p->n >= p->max) {
    p->n = p->max;
    p->bound = p->v[p->max - 1].o;
  }
}

/* Whether o might enter the page: after the cursor, and before the
   bound. */
static int picker_wants(const picker *p, const obspam__obj *o) {
  return strcmp(o->name, p->after) > 0 &&
         (p->bound == NULL || strcmp(o->name, p->bound->name) < 0);
}

static void picker_add(picker *p, obspam__obj *o, int implicit) {
  if (p->n == 2 * p->max)
    picker_cut(p);
  p->v[p->n].o = o;
  p->v[p->n].implicit = implicit;
  p->n++;
}

/* Whether o lies under parent (NULL: anything). */
static int under(const obspam__obj *o, const obspam__obj *parent) {
  const obspam__obj *p;

  if (parent == NULL)
    return 1;
  for (p = o->parent; p != NULL; p = p->parent)
    if (p == parent)
      return 1;
  return 0;
}

/* Whether o has activity: a count in its day window or a refusal in the
   last 60 minutes. The in-memory store holds nothing for an object
   without either (no ring, no history), which answers most objects
   without reading them. */
static int active(obspam_engine *e, const obspam__obj *o, int64_t now) {
  obspam__reading r;

  if (e->store == e->local &&
      __atomic_load_n(&o->ring, __ATOMIC_RELAXED) == NULL &&
      __atomic_load_n(&o->hist, __ATOMIC_RELAXED) == NULL)
    return 0;
  e->store->ops->read(e->store, o, now,
                      e->conf->opt[OBSPAM_OPT_RETENTION_HOURS], &r);
  return r.count_day > 0 || r.refused > 0;
}

typedef struct query {
  obspam_engine *e;
  int kind;
  const obspam__obj *parent;
  uint32_t flags;
  int64_t now;
  picker *p;
} query;

static void consider(const query *q, obspam__obj *o, int implicit) {
  if (!picker_wants(q->p, o))
    return;
  if ((q->flags & OBSPAM_ENUM_ACTIVE) && !active(q->e, o, q->now))
    return;
  picker_add(q->p, o, implicit);
}

/* The objects of q->kind in the subtree of o. */
static void walk(const query *q, obspam__obj *o) {
  obspam__obj *c;

  for (c = o->child; c != NULL; c = c->next) {
    if (c->kind == q->kind)
      consider(q, c, 0);
    else if (c->kind < q->kind)
      walk(q, c);
  }
}

/* The declared objects of a page. Without a parent, the tree's name
   order gives them from the cursor on: a binary search, then as many as
   the page takes (more when the flags skip some). */
static void pick_declared(const query *q, const obspam__tree *t) {
  const obspam__sorted *s = obspam__tree_sorted(t, q->kind);
  size_t lo, hi;

  if (q->parent != NULL) {
    walk(q, (obspam__obj *)q->parent);
    return;
  }
  lo = 0;
  hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (strcmp(s->v[mid]->name, q->p->after) > 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  for (; lo < s->n && q->p->n < q->p->max; lo++)
    consider(q, s->v[lo], 0);
  picker_cut(q->p); /* in order already: it sets the bound */
}

/* The implicit mailboxes of a page, under the set's lock; those picked
   are pinned before it is let go. */
static void pick_implicit(const query *q, obspam__implicit *im) {
  obspam__imb *m;
  size_t i;

  obspam__implicit_lock(im);
  for (m = im->first; m != NULL; m = m->next)
    if (obspam__implicit_exists(m) && under(&m->obj, q->parent))
      consider(q, &m->obj, 1);
  picker_cut(q->p);
  for (i = 0; i < q->p->n; i++)
    if (q->p->v[i].implicit)
      ((obspam__imb *)q->p->v[i].o)->pins++;
  obspam__implicit_unlock(im);
}

/* The parent of an enumeration: the object of the nearest kind above
   kind with that name (a mailbox's domain before a subscription or plan
   of the same name). Under the read lock. */
static const obspam__obj *find_parent(obspam__tree *t, int kind,
                                      const obspam__name *n) {
  const obspam__obj *o = NULL;
  int k;

  for (k = kind - 1; k >= OBSPAM_PLAN && o == NULL; k--)
    o = obspam__tree_find(t, k, n->s, n->len);
  return o;
}

/* What one page hands to the callback, copied under the lock. */
typedef struct page_out {
  obspam_stats st[PAGE];
  char name[PAGE][OBSPAM_NAME_MAX + 1];
  pick v[2 * PAGE];
} page_out;

/* One page: up to max (<= PAGE) objects after cursor, with their status,
   into out; *got of them. OBSPAM_OK, or OBSPAM_ENOTFOUND when there is
   no such parent. */
static int page(obspam_engine *e, int kind, const obspam__name *parent,
                uint32_t flags, const char *cursor, size_t max, int64_t now,
                page_out *out, size_t *got) {
  picker p = {out->v, 0, max, cursor, NULL};
  query q = {e, kind, NULL, flags, now, &p};
  size_t i;
  int rc = OBSPAM_OK;

  *got = 0;
  pthread_rwlock_rdlock(&e->lock);
  if (parent != NULL &&
      (q.parent = find_parent(&e->conf->tree, kind, parent)) == NULL)
    rc = OBSPAM_ENOTFOUND;
  if (rc == OBSPAM_OK)
    pick_declared(&q, &e->conf->tree);
  if (rc == OBSPAM_OK && kind == OBSPAM_MAILBOX)
    pick_implicit(&q, &e->imp);
  else if (rc == OBSPAM_OK)
    picker_cut(&p);
  for (i = 0; rc == OBSPAM_OK && i < p.n; i++) {
    const obspam__obj *o = p.v[i].o;

    out->st[i].struct_size = sizeof(out->st[i]);
    obspam__stats_fill(e, o, now, &out->st[i]);
    memcpy(out->name[i], o->name, (size_t)o->len + 1);
  }
  for (i = 0; rc == OBSPAM_OK && i < p.n; i++)
    if (p.v[i].implicit)
      obspam__implicit_unpin(&e->imp, (obspam__imb *)p.v[i].o);
  pthread_rwlock_unlock(&e->lock);
  if (rc == OBSPAM_OK)
    *got = p.n;
  return rc;
}

int obspam_enumerate(obspam_engine *e, int kind, const char *parent,
                     uint32_t flags, const char *after, size_t max, int64_t now,
                     int (*fn)(int kind, const char *name,
                               const obspam_stats *st, void *ud),
                     void *ud) {
  obspam__name pn, cursor;
  page_out *out;
  size_t got, i, done = 0, len;
  const char *why;
  int rc = OBSPAM_OK;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (kind < OBSPAM_SUBSCRIPTION || kind > OBSPAM_MAILBOX)
    return obspam__bad_kind(e, "enumerate", kind,
                            "a subscription, domain or mailbox");
  if (fn == NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "enumerate: no callback");
  if ((flags & ~OBSPAM_ENUM_ACTIVE) != 0)
    return obspam__fail(e, OBSPAM_EINVAL, "enumerate: unknown flags 0x%x",
                        (unsigned)(flags & ~OBSPAM_ENUM_ACTIVE));
  if (now < 0)
    return obspam__fail(e, OBSPAM_EINVAL, "enumerate: time is negative");
  if (parent != NULL &&
      (why = obspam__name_norm(parent, OBSPAM__NAME_PLAIN, &pn)) != NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "enumerate: parent '%.64s': %s",
                        parent, why);
  /* The cursor is any text up to a name's length, compared as the
     lower-case names are: a name the panel was given, or a prefix. */
  len = after != NULL ? strlen(after) : 0;
  if (len > OBSPAM_NAME_MAX)
    return obspam__fail(e, OBSPAM_EINVAL,
                        "enumerate: 'after' is longer than %d bytes",
                        OBSPAM_NAME_MAX);
  for (i = 0; i < len; i++)
    cursor.s[i] =
        (char)(after[i] >= 'A' && after[i] <= 'Z' ? after[i] + 32 : after[i]);
  cursor.s[len] = '\0';
  if (now == 0)
    now = (int64_t)time(NULL);
  now = obspam__newest(e, now);
  if ((out = malloc(sizeof(*out))) == NULL)
    return obspam__fail(e, OBSPAM_ENOMEM, "enumerate: out of memory");

  for (;;) {
    size_t want = max == 0 || max - done > PAGE ? PAGE : max - done;

    rc = page(e, kind, parent != NULL ? &pn : NULL, flags, cursor.s, want, now,
              out, &got);
    if (rc != OBSPAM_OK)
      break;
    for (i = 0; i < got; i++)
      if (fn(kind, out->name[i], &out->st[i], ud) != 0)
        break;
    done += got;
    if (i < got || got < want || (max != 0 && done == max))
      break;
    memcpy(cursor.s, out->name[got - 1], strlen(out->name[got - 1]) + 1);
  }
  free(out);
  if (rc == OBSPAM_ENOTFOUND)
    return obspam__fail(e, rc,
                        "enumerate: no plan, subscription or domain "
                        "'%s' above a %s",
                        pn.s, obspam_kind_name(kind));
  return OBSPAM_OK;
}

int obspam_reset(obspam_engine *e, int kind, const char *name, int64_t now) {
  obspam__charge ch;
  obspam__name n;
  obspam__obj *o;
  obspam__imb *held;
  int rc;

  if ((rc = obspam__counted_kind(e, "reset", kind, "counters")) != OBSPAM_OK)
    return rc;
  if (now < 0)
    return obspam__fail(e, OBSPAM_EINVAL, "reset: time is negative");
  if ((rc = obspam__kind_name_norm(e, "reset", kind, name, &n)) != OBSPAM_OK)
    return rc;
  if (now == 0)
    now = (int64_t)time(NULL);

  memset(&ch, 0, sizeof(ch));
  pthread_rwlock_rdlock(&e->lock);
  /* An implicit mailbox is pinned while it is reset. */
  o = obspam__find_counted(e, kind, &n, &held);
  if (o == NULL) {
    rc = OBSPAM_ENOTFOUND;
  } else {
    ch.n = 1;
    ch.obj[0] = o;
    ch.reset = 1;
    ch.c = 1;
    ch.t = obspam__newest(e, now);
    ch.refuser = -1;
    ch.uid = -1;
    ch.retention = e->conf->opt[OBSPAM_OPT_RETENTION_HOURS];
    ch.period = e->conf->opt[OBSPAM_OPT_NOTIFY_PERIOD];
    ch.record = e->journal != NULL ? obspam__journal_record : NULL;
    ch.record_ud = e->journal;
    rc = e->store->ops->charge(e->store, &ch);
  }
  if (held != NULL)
    obspam__implicit_unpin(&e->imp, held);
  pthread_rwlock_unlock(&e->lock);
  if (rc == OBSPAM_ENOTFOUND)
    return obspam__fail(e, rc, "reset: no %s '%s'", obspam_kind_name(kind),
                        n.s);
  if (rc == OBSPAM_EUNAVAIL)
    return obspam__fail(e, rc,
                        "reset: the shared store (Redis) does not answer; "
                        "nothing was reset");
  if (rc != OBSPAM_OK)
    return obspam__fail(e, rc, "reset: out of memory");
  obspam__observe(e, ch.t);
  return OBSPAM_OK;
}

int obspam_set_unknown_uid_subscription(obspam_engine *e,
                                        const char *subscription) {
  obspam__tree *t;
  obspam__name n;
  const char *why;
  int rc = OBSPAM_OK;

  if (e == NULL)
    return OBSPAM_EINVAL;
  n.s[0] = '\0';
  if (subscription != NULL && subscription[0] != '\0' &&
      (why = obspam__name_norm(subscription, OBSPAM__NAME_PLAIN, &n)) != NULL)
    return obspam__fail(e, OBSPAM_EINVAL,
                        "set_unknown_uid_subscription: subscription name "
                        "'%.64s': %s",
                        subscription, why);
  pthread_rwlock_wrlock(&e->lock);
  t = &e->conf->tree;
  if (n.s[0] != '\0' &&
      obspam__tree_find(t, OBSPAM_SUBSCRIPTION, n.s, n.len) == NULL)
    rc = OBSPAM_ENOTFOUND;
  else
    memcpy(t->unknown_uid, n.s, strlen(n.s) + 1);
  pthread_rwlock_unlock(&e->lock);
  if (rc != OBSPAM_OK)
    return obspam__fail(
        e, rc, "set_unknown_uid_subscription: no subscription '%s'", n.s);
  return OBSPAM_OK;
}
