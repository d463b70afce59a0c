/* SPDX-License-Identifier: MIT */
/* What a hosting panel asks: the objects of a kind page by page
   (obspam_enumerate), the top senders of a period (obspam_top), the
   reset of one object's counters (obspam_reset) and the subscription
   charged for mail of unknown uids. Each gathers what it answers while
   the locks are held and calls the callback with none held. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "hash.h"
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
static int busy(const obspam__reading *r) {
  return r->count_day > 0 || r->refused > 0;
}

static int active(obspam_engine *e, const obspam__obj *o, int64_t now) {
  obspam__reading r;

  if (e->store == e->local &&
      __atomic_load_n(&o->ring, __ATOMIC_RELAXED) == NULL &&
      __atomic_load_n(&o->hist, __ATOMIC_RELAXED) == NULL)
    return 0;
  e->store->ops->read(e->store, o, now,
                      e->conf->opt[OBSPAM_OPT_RETENTION_HOURS], &r);
  return busy(&r);
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
   order gives them from the cursor on: a binary search over its blocks
   and one in a block, then as many as the page takes (more when the
   flags skip some). */
static void pick_declared(const query *q, const obspam__tree *t) {
  const obspam__sorted *s = obspam__tree_sorted(t, q->kind);
  obspam__spos at;
  obspam__obj *o;

  if (q->parent != NULL) {
    walk(q, (obspam__obj *)q->parent);
    return;
  }
  at = obspam__sorted_after(s, q->p->after);
  for (; (o = obspam__sorted_at(s, at)) != NULL && q->p->n < q->p->max;
       obspam__sorted_next(s, &at))
    consider(q, o, 0);
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

/* What one page hands to the callback, copied under the lock; more: the
   objects after next may still hold some for the next page. */
typedef struct page_out {
  obspam_stats st[PAGE];
  char name[PAGE][OBSPAM_NAME_MAX + 1];
  pick v[2 * PAGE];
  char next[OBSPAM_NAME_MAX + 1];
  int more;
} page_out;

/* The objects of a page into q's picker, under the read lock (the
   implicit ones pinned). */
static int pick_page(obspam_engine *e, query *q, const obspam__name *parent) {
  int rc = OBSPAM_OK;

  if (parent != NULL &&
      (q->parent = find_parent(&e->conf->tree, q->kind, parent)) == NULL)
    rc = OBSPAM_ENOTFOUND;
  if (rc == OBSPAM_OK)
    pick_declared(q, &e->conf->tree);
  if (rc == OBSPAM_OK && q->kind == OBSPAM_MAILBOX)
    pick_implicit(q, &e->imp);
  else if (rc == OBSPAM_OK)
    picker_cut(q->p);
  return rc;
}

/* The page's last name as the next cursor, and whether a full page may
   have left some. */
static void page_next(page_out *out, size_t got, size_t max) {
  out->more = got == max;
  if (got > 0)
    memcpy(out->next, out->name[got - 1], strlen(out->name[got - 1]) + 1);
}

/* One page: up to max (<= PAGE) objects after cursor, with their status,
   into out; *got of them. OBSPAM_OK, or OBSPAM_ENOTFOUND when there is
   no such parent. */
static int page(obspam_engine *e, int kind, const obspam__name *parent,
                uint32_t flags, const char *cursor, size_t max, int64_t now,
                page_out *out, size_t *got) {
  picker p = {out->v, 0, max, cursor, NULL};
  query q = {e, kind, NULL, flags, now, &p};
  size_t i;
  int rc;

  *got = 0;
  pthread_rwlock_rdlock(&e->lock);
  rc = pick_page(e, &q, parent);
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
  if (rc == OBSPAM_OK) {
    *got = p.n;
    page_next(out, p.n, max);
  }
  return rc;
}

/* ---- A page on a shared store ------------------------------------------

   Reading an object on a shared store is a round trip, which must not be
   made under the engine's lock (a reload waits for it, and every
   decision for the reload). A page is made in three steps instead: under
   the lock, the names of the next candidates (and of the store it reads
   from, which is kept alive); without it, their counters, by name, in
   one exchange per CHUNK; under it again, each object found again by
   name and its status filled from what was read. A reload in between
   may have dropped an object (it is left out) or moved it under another
   subscription (its counters are read again). */

/* The candidates of an OBSPAM_ENUM_ACTIVE page read in one exchange. */
#define CHUNK 256
/* The most ancestors of a page's objects (two each) and the slots of
   their table (at most half full). */
#define ANC (2 * PAGE)
#define ANC_SLOTS (4 * PAGE)
/* The rounds of reads by name of a page before what is left is read
   under the lock (each round is needed only when a reload moved
   objects under another subscription meanwhile). */
#define ROUNDS 3

/* An object read by name: what is copied of it under the lock, and what
   the store gave for it under that subscription (have). */
typedef struct known {
  int kind, have;
  size_t len;
  char name[OBSPAM_NAME_MAX + 1];
  char sub[OBSPAM_NAME_MAX + 1];
  obspam__reading r;
} known;

typedef struct named_ws {
  known res[PAGE]; /* the objects of the page, in name order */
  known cand[CHUNK];
  known anc[ANC]; /* their domains and subscriptions */
  size_t nres, nanc;
  int32_t slot[ANC_SLOTS]; /* anc by kind and name: index + 1, 0 empty */
  /* One exchange's names and readings, and whose they are. */
  obspam__named nv[PAGE + ANC];
  obspam__reading rv[PAGE + ANC];
  known *who[PAGE + ANC];
  size_t nwho;
  int64_t retention;
  obspam__store *store; /* taken with use(), or NULL */
} named_ws;

static const char *owner_name(const obspam__obj *o) {
  const obspam__sub *s = obspam__owner(o);

  return s != NULL ? s->obj.name : "";
}

void obspam__named_set(obspam__named *on, char *sub, const obspam__obj *o,
                       const obspam__name *n) {
  const char *sn = owner_name(o);

  memcpy(sub, sn, strlen(sn) + 1);
  on->kind = o->kind;
  on->sub = sub;
  on->name = n->s;
  on->len = n->len;
}

/* k names o from now on; what was read for it stays if o is still under
   the same subscription. */
static void known_set(known *k, const obspam__obj *o) {
  const char *sub = owner_name(o);

  if (k->kind != o->kind || k->len != o->len || strcmp(k->name, o->name) ||
      strcmp(k->sub, sub) != 0)
    k->have = 0;
  k->kind = o->kind;
  k->len = o->len;
  memcpy(k->name, o->name, (size_t)o->len + 1);
  memcpy(k->sub, sub, strlen(sub) + 1);
}

/* The slot of the ancestor of kind and name, empty when it has none. */
static int32_t *anc_slot(named_ws *w, int kind, const char *name, size_t len) {
  size_t i = (size_t)(obspam__hash(name, len) + (uint64_t)kind) % ANC_SLOTS;

  while (w->slot[i] != 0) {
    const known *k = &w->anc[w->slot[i] - 1];

    if (k->kind == kind && k->len == len && memcmp(k->name, name, len) == 0)
      break;
    i = (i + 1) % ANC_SLOTS;
  }
  return &w->slot[i];
}

/* Whether what was read for o is its own: read for its subscription. */
static const obspam__reading *known_for(const known *k, const obspam__obj *o) {
  return k->have && strcmp(k->sub, owner_name(o)) == 0 ? &k->r : NULL;
}

/* The status of the object a page fills: its own reading, and its
   ancestors'. */
typedef struct fill_ctx {
  named_ws *w;
  const obspam__obj *o;
  const known *self;
} fill_ctx;

static const obspam__reading *fill_known(const obspam__obj *o, void *ud) {
  fill_ctx *c = ud;
  int32_t at;

  if (o == c->o)
    return known_for(c->self, o);
  at = *anc_slot(c->w, o->kind, o->name, o->len);
  return at != 0 ? known_for(&c->w->anc[at - 1], o) : NULL;
}

/* Whether everything o's status reads was read: else what is missing is
   named for the next exchange (the object itself in k, its ancestors in
   the table). Under the read lock. */
static int all_known(named_ws *w, known *k, const obspam__obj *o) {
  const obspam__obj *p;
  int ok = 1;

  if (known_for(k, o) == NULL) {
    known_set(k, o);
    ok = 0;
  }
  for (p = o->parent; p != NULL && p->kind >= OBSPAM_SUBSCRIPTION;
       p = p->parent) {
    int32_t *at = anc_slot(w, p->kind, p->name, p->len);

    if (*at == 0) {
      if (w->nanc == ANC)
        return 0; /* cannot happen: two ancestors an object */
      memset(&w->anc[w->nanc], 0, offsetof(known, r));
      *at = (int32_t)++w->nanc;
    }
    if (known_for(&w->anc[*at - 1], p) == NULL) {
      known_set(&w->anc[*at - 1], p);
      ok = 0;
    }
  }
  return ok;
}

static void want_read(named_ws *w, known *v, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    if (!v[i].have)
      w->who[w->nwho++] = &v[i];
}

/* Reads what w->who names from the store taken (take_store), without
   the engine's lock, in one exchange per batch, and lets the store go.
   OBSPAM_OK or OBSPAM_EUNAVAIL (also when out of memory: read under the
   lock then). */
static int read_wanted(named_ws *w, int64_t now) {
  size_t i;
  int rc;

  for (i = 0; i < w->nwho; i++) {
    w->nv[i].kind = w->who[i]->kind;
    w->nv[i].sub = w->who[i]->sub;
    w->nv[i].name = w->who[i]->name;
    w->nv[i].len = w->who[i]->len;
  }
  rc = w->store->ops->read_named(w->store, w->nv, w->nwho, now, w->retention,
                                 w->rv);
  w->store->ops->use(w->store, -1);
  w->store = NULL;
  if (rc != OBSPAM_OK)
    return OBSPAM_EUNAVAIL;
  for (i = 0; i < w->nwho; i++) {
    w->who[i]->r = w->rv[i];
    w->who[i]->have = 1;
  }
  w->nwho = 0;
  return OBSPAM_OK;
}

/* Under the read lock: takes the engine's store for one exchange
   (read_wanted lets it go), or says it reads nothing by name. It is held
   only while no lock is waited for: a reload or obspam_set_store that
   frees it, holding the write lock, waits for the exchange, never for
   this thread's next hold of the lock. */
static int take_store(obspam_engine *e, named_ws *w) {
  w->retention = e->conf->opt[OBSPAM_OPT_RETENTION_HOURS];
  if (e->store->ops->read_named == NULL ||
      (w->store = obspam__store_take(e->store)) == NULL)
    return -1;
  return 0;
}

/* The names of up to max objects after `after` (any activity) into v,
   *n of them, with the store taken for reading them when read is set.
   OBSPAM_EUNAVAIL: the engine's store reads nothing by name (a local
   one). */
static int names_after(obspam_engine *e, int kind, const obspam__name *parent,
                       const char *after, size_t max, int64_t now,
                       page_out *out, named_ws *w, known *v, size_t *n,
                       int read) {
  picker p = {out->v, 0, max, after, NULL};
  query q = {e, kind, NULL, 0, now, &p};
  size_t i;
  int rc;

  *n = 0;
  pthread_rwlock_rdlock(&e->lock);
  if (read ? take_store(e, w) != 0 : e->store->ops->read_named == NULL) {
    pthread_rwlock_unlock(&e->lock);
    return OBSPAM_EUNAVAIL;
  }
  rc = pick_page(e, &q, parent);
  for (i = 0; rc == OBSPAM_OK && i < p.n; i++) {
    memset(&v[i], 0, offsetof(known, r));
    known_set(&v[i], p.v[i].o);
  }
  for (i = 0; rc == OBSPAM_OK && i < p.n; i++)
    if (p.v[i].implicit)
      obspam__implicit_unpin(&e->imp, (obspam__imb *)p.v[i].o);
  pthread_rwlock_unlock(&e->lock);
  if (rc == OBSPAM_OK)
    *n = p.n;
  else if (w->store != NULL) {
    w->store->ops->use(w->store, -1);
    w->store = NULL;
  }
  return rc;
}

/* The objects of an active page: the candidates after cursor, CHUNK at
   a time, those with activity kept, until max are. */
static int pick_active(obspam_engine *e, int kind, const obspam__name *parent,
                       const char *cursor, size_t max, int64_t now,
                       page_out *out, named_ws *w) {
  char scan[OBSPAM_NAME_MAX + 1];
  size_t nc, i;
  int rc;

  memcpy(scan, cursor, strlen(cursor) + 1);
  out->more = 0;
  for (;;) {
    rc =
        names_after(e, kind, parent, scan, CHUNK, now, out, w, w->cand, &nc, 1);
    if (rc == OBSPAM_OK && nc == 0) {
      w->store->ops->use(w->store, -1);
      w->store = NULL;
    }
    if (rc != OBSPAM_OK || nc == 0)
      return rc;
    w->nwho = 0;
    want_read(w, w->cand, nc);
    if ((rc = read_wanted(w, now)) != OBSPAM_OK)
      return rc;
    for (i = 0; i < nc && w->nres < max; i++)
      if (busy(&w->cand[i].r))
        w->res[w->nres++] = w->cand[i];
    if (w->nres == max) {
      out->more = 1;
      return OBSPAM_OK;
    }
    if (nc < CHUNK)
      return OBSPAM_OK;
    memcpy(scan, w->cand[nc - 1].name, w->cand[nc - 1].len + 1);
  }
}

/* The status of every object of w->res into out, found again by name
   under the lock, its counters read beforehand; objects a reload dropped
   (or moved from under parent) are left out. *got of them. */
static int fill_page(obspam_engine *e, int kind, const obspam__name *parent,
                     int64_t now, page_out *out, named_ws *w, size_t *got) {
  uint8_t done[PAGE];
  size_t i, kept;
  int round, rc = OBSPAM_OK, left = 1;

  memset(done, 0, sizeof(done));
  for (round = 1; left && rc == OBSPAM_OK; round++) {
    const obspam__obj *pp = NULL;

    left = 0;
    pthread_rwlock_rdlock(&e->lock);
    if (parent != NULL &&
        (pp = find_parent(&e->conf->tree, kind, parent)) == NULL)
      rc = OBSPAM_ENOTFOUND;
    for (i = 0; rc == OBSPAM_OK && i < w->nres; i++) {
      known *k = &w->res[i];
      obspam__name n;
      obspam__imb *held;
      const obspam__obj *o;

      if (done[i])
        continue;
      n.len = n.at = k->len;
      memcpy(n.s, k->name, k->len + 1);
      o = obspam__find_counted(e, kind, &n, &held);
      if (o == NULL || (pp != NULL && !under(o, pp))) {
        done[i] = 2; /* gone */
      } else if (all_known(w, k, o) || round == ROUNDS) {
        fill_ctx c = {w, o, k};

        out->st[i].struct_size = sizeof(out->st[i]);
        obspam__stats_fill_known(e, o, now, fill_known, &c, &out->st[i]);
        done[i] = 1;
      } else {
        left = 1;
      }
      if (held != NULL)
        obspam__implicit_unpin(&e->imp, held);
    }
    /* What is missing is read with the store of now. */
    if (left && rc == OBSPAM_OK && take_store(e, w) != 0)
      round = ROUNDS - 1; /* the rest is read under the lock */
    pthread_rwlock_unlock(&e->lock);
    if (w->store != NULL) {
      w->nwho = 0;
      want_read(w, w->res, w->nres);
      want_read(w, w->anc, w->nanc);
      if (read_wanted(w, now) != OBSPAM_OK)
        round = ROUNDS - 1;
    }
  }
  for (i = kept = 0; rc == OBSPAM_OK && i < w->nres; i++) {
    if (done[i] != 1)
      continue;
    if (kept != i)
      out->st[kept] = out->st[i];
    memcpy(out->name[kept], w->res[i].name, w->res[i].len + 1);
    kept++;
  }
  *got = rc == OBSPAM_OK ? kept : 0;
  return rc;
}

/* One page on a shared store, as page() gives it. OBSPAM_EUNAVAIL: the
   store reads nothing by name (it was replaced by a local one), or does
   not answer; page() is left to make it. */
static int page_named(obspam_engine *e, int kind, const obspam__name *parent,
                      uint32_t flags, const char *cursor, size_t max,
                      int64_t now, page_out *out, named_ws *w, size_t *got) {
  int rc;

  *got = 0;
  w->nres = w->nanc = 0;
  memset(w->slot, 0, sizeof(w->slot));
  if (flags & OBSPAM_ENUM_ACTIVE) {
    memcpy(out->next, cursor, strlen(cursor) + 1);
    rc = pick_active(e, kind, parent, cursor, max, now, out, w);
  } else {
    rc = names_after(e, kind, parent, cursor, max, now, out, w, w->res,
                     &w->nres, 0);
    out->more = w->nres == max;
  }
  if (rc == OBSPAM_OK)
    rc = fill_page(e, kind, parent, now, out, w, got);
  if (rc == OBSPAM_OK && w->nres > 0)
    memcpy(out->next, w->res[w->nres - 1].name, w->res[w->nres - 1].len + 1);
  return rc;
}

/* ---- One object's status on a shared store ---------------------------

   obspam_stats_get reads the object and the ancestors its status looks
   at (three objects at most) as a page does: named under the lock, read
   in one exchange without it, the status filled under it again. */

/* The objects of one status and what was read for them. */
typedef struct one_ws {
  known k[3];
  size_t n;
} one_ws;

static const obspam__reading *one_known(const obspam__obj *o, void *ud) {
  one_ws *w = ud;
  size_t i;

  for (i = 0; i < w->n; i++)
    if (w->k[i].kind == o->kind && w->k[i].len == o->len &&
        memcmp(w->k[i].name, o->name, o->len) == 0)
      return known_for(&w->k[i], o);
  return NULL;
}

/* Under the read lock: whether everything o's status reads was read as
   it is now (a reload may have moved o under another subscription); if
   not, w names o and its ancestors afresh. */
static int one_all_known(one_ws *w, const obspam__obj *o) {
  const obspam__obj *p;

  for (p = o; p != NULL && p->kind >= OBSPAM_SUBSCRIPTION; p = p->parent)
    if (one_known(p, w) == NULL)
      break;
  if (p == NULL || p->kind < OBSPAM_SUBSCRIPTION)
    return 1;
  w->n = 0;
  for (p = o; p != NULL && p->kind >= OBSPAM_SUBSCRIPTION; p = p->parent) {
    memset(&w->k[w->n], 0, offsetof(known, r));
    known_set(&w->k[w->n++], p);
  }
  return 0;
}

int obspam__stats_named(obspam_engine *e, int kind, const obspam__name *n,
                        int64_t now, obspam_stats *out) {
  obspam__named v[3];
  obspam__reading rv[3];
  one_ws w;
  int round, rc = OBSPAM_EUNAVAIL;
  size_t i;

  w.n = 0;
  for (round = 1; rc == OBSPAM_EUNAVAIL; round++) {
    obspam__store *s = NULL;
    obspam__imb *held;
    const obspam__obj *o;
    int64_t retention;

    pthread_rwlock_rdlock(&e->lock);
    retention = e->conf->opt[OBSPAM_OPT_RETENTION_HOURS];
    o = obspam__find_counted(e, kind, n, &held);
    if (o == NULL) {
      rc = OBSPAM_ENOTFOUND;
    } else if (one_all_known(&w, o) || round == ROUNDS) {
      /* What is missing after ROUNDS moves is read under the lock. */
      obspam__stats_fill_known(e, o, now, one_known, &w, out);
      rc = OBSPAM_OK;
    } else if (e->store->ops->read_named == NULL ||
               (s = obspam__store_take(e->store)) == NULL) {
      rc = OBSPAM_EUNAVAIL; /* a local store now: the caller reads */
    }
    if (held != NULL)
      obspam__implicit_unpin(&e->imp, held);
    pthread_rwlock_unlock(&e->lock);
    if (s == NULL)
      break;
    for (i = 0; i < w.n; i++) {
      v[i].kind = w.k[i].kind;
      v[i].sub = w.k[i].sub;
      v[i].name = w.k[i].name;
      v[i].len = w.k[i].len;
    }
    rc = s->ops->read_named(s, v, w.n, now, retention, rv);
    s->ops->use(s, -1);
    if (rc != OBSPAM_OK)
      return OBSPAM_EUNAVAIL; /* not answered: the caller reads */
    for (i = 0; i < w.n; i++) {
      w.k[i].r = rv[i];
      w.k[i].have = 1;
    }
    rc = OBSPAM_EUNAVAIL;
  }
  return rc;
}

int obspam_enumerate(obspam_engine *e, int kind, const char *parent,
                     uint32_t flags, const char *after, size_t max, int64_t now,
                     int (*fn)(int kind, const char *name,
                               const obspam_stats *st, void *ud),
                     void *ud) {
  obspam__name pn, cursor;
  page_out *out;
  named_ws *ws = NULL;
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
  /* A shared store is read without the engine's lock (page_named); a
     page it cannot make, or any page when memory runs out for it, is
     made by page(). */
  if (__atomic_load_n(&e->shared, __ATOMIC_RELAXED) &&
      (ws = malloc(sizeof(*ws))) != NULL)
    ws->store = NULL;

  for (;;) {
    size_t want = max == 0 || max - done > PAGE ? PAGE : max - done;

    rc = ws != NULL ? page_named(e, kind, parent != NULL ? &pn : NULL, flags,
                                 cursor.s, want, now, out, ws, &got)
                    : OBSPAM_EUNAVAIL;
    if (rc == OBSPAM_EUNAVAIL)
      rc = page(e, kind, parent != NULL ? &pn : NULL, flags, cursor.s, want,
                now, out, &got);
    if (rc != OBSPAM_OK)
      break;
    for (i = 0; i < got; i++)
      if (fn(kind, out->name[i], &out->st[i], ud) != 0)
        break;
    done += got;
    if (i < got || !out->more || (max != 0 && done == max))
      break;
    memcpy(cursor.s, out->next, strlen(out->next) + 1);
  }
  free(ws);
  free(out);
  if (rc == OBSPAM_ENOTFOUND)
    return obspam__fail(e, rc,
                        "enumerate: no plan, subscription or domain "
                        "'%s' above a %s",
                        pn.s, obspam_kind_name(kind));
  return OBSPAM_OK;
}

/* The reset of o at t, as a charge. Under the read lock. */
static void reset_charge(obspam_engine *e, obspam__obj *o, int64_t t,
                         obspam__charge *ch) {
  memset(ch, 0, sizeof(*ch));
  ch->n = 1;
  ch->obj[0] = o;
  ch->reset = 1;
  ch->c = 1;
  ch->t = t;
  ch->refuser = -1;
  ch->uid = -1;
  ch->retention = e->conf->opt[OBSPAM_OPT_RETENTION_HOURS];
  ch->period = e->conf->opt[OBSPAM_OPT_NOTIFY_PERIOD];
  ch->record = e->journal != NULL ? obspam__journal_record : NULL;
  ch->record_ud = e->journal;
}

/* A reset on a shared store, its round trip made without the engine's
   lock: the object's name and subscription copied under the lock, the
   shared store reset by name, and the local counters under the lock
   again, as the store's charge does them (unjournaled). A reload that
   moved the object meanwhile makes it reset again by its new keys;
   after ROUNDS moves, *named is 0 and the caller resets under the lock,
   as it does for a store that resets nothing by name. *t: the time of
   the reset. */
static int reset_named(obspam_engine *e, int kind, const obspam__name *n,
                       int64_t now, int *named, int64_t *t) {
  char sub[OBSPAM_NAME_MAX + 1];
  int round, rc = OBSPAM_OK;

  *named = 0;
  sub[0] = '\0';
  for (round = 0; round < ROUNDS; round++) {
    obspam__store *s = NULL;
    obspam__imb *held;
    obspam__obj *o;
    obspam__named on;
    int64_t retention;

    pthread_rwlock_rdlock(&e->lock);
    retention = e->conf->opt[OBSPAM_OPT_RETENTION_HOURS];
    o = obspam__find_counted(e, kind, n, &held);
    if (o == NULL) {
      /* Removed after the shared store was reset: that reset stands. */
      rc = round > 0 ? OBSPAM_OK : OBSPAM_ENOTFOUND;
      *named = 1;
    } else if (round > 0 && strcmp(owner_name(o), sub) == 0) {
      obspam__charge ch;

      reset_charge(e, o, *t, &ch);
      ch.record = NULL;
      (void)e->local->ops->charge(e->local, &ch);
      rc = OBSPAM_OK;
      *named = 1;
    } else if (e->store->ops->reset_named != NULL &&
               (s = obspam__store_take(e->store)) != NULL) {
      obspam__named_set(&on, sub, o, n);
      *t = obspam__newest(e, now);
    }
    if (held != NULL)
      obspam__implicit_unpin(&e->imp, held);
    pthread_rwlock_unlock(&e->lock);
    if (s == NULL)
      return rc;
    rc = s->ops->reset_named(s, &on, t, retention);
    s->ops->use(s, -1);
    if (rc != OBSPAM_OK) {
      *named = 1; /* not answered: nothing was reset */
      return rc;
    }
  }
  return OBSPAM_OK;
}

int obspam_reset(obspam_engine *e, int kind, const char *name, int64_t now) {
  obspam__charge ch;
  obspam__name n;
  obspam__obj *o;
  obspam__imb *held;
  int rc, named = 0;

  if ((rc = obspam__counted_kind(e, "reset", kind, "counters")) != OBSPAM_OK)
    return rc;
  if (now < 0)
    return obspam__fail(e, OBSPAM_EINVAL, "reset: time is negative");
  if ((rc = obspam__kind_name_norm(e, "reset", kind, name, &n)) != OBSPAM_OK)
    return rc;
  if (now == 0)
    now = (int64_t)time(NULL);

  ch.t = 0;
  /* On a shared store, no round trip under the engine's lock: a reload
     would wait for it, and every decision behind the reload. */
  if (__atomic_load_n(&e->shared, __ATOMIC_RELAXED))
    rc = reset_named(e, kind, &n, now, &named, &ch.t);
  if (!named) {
    pthread_rwlock_rdlock(&e->lock);
    /* An implicit mailbox is pinned while it is reset. */
    o = obspam__find_counted(e, kind, &n, &held);
    if (o == NULL) {
      rc = OBSPAM_ENOTFOUND;
    } else {
      reset_charge(e, o, obspam__newest(e, now), &ch);
      rc = e->store->ops->charge(e->store, &ch);
    }
    if (held != NULL)
      obspam__implicit_unpin(&e->imp, held);
    pthread_rwlock_unlock(&e->lock);
  }
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
