/* SPDX-License-Identifier: MIT */
#include "tree.h"

#include <stdlib.h>
#include <string.h>

void obspam__tree_init(obspam__tree *t) {
  int i;

  memset(t, 0, sizeof(*t));
  for (i = 0; i < 3; i++)
    t->server[i] = t->server_extra.own[0][i] = t->server_extra.own[1][i] =
        OBSPAM_UNLIMITED;
  t->server_extra.max_rcpt = OBSPAM_UNLIMITED;
  t->server_scripts = 1;
}

/* ---- the name order ------------------------------------------------------ */

/* A name's bytes [depth, depth + 8) as a big-endian number, zeros past
   its end: the numbers compare as the bytes do (unsigned, as strcmp
   compares), and a name comes before the longer names it begins. */
static uint64_t chunk(const obspam__obj *o, size_t depth) {
  unsigned char b[8] = {0};
  size_t i;

  if (depth + 8 <= o->len) /* whole: compilers make it one load */
    memcpy(b, o->name + depth, 8);
  else
    for (i = depth; i < o->len; i++)
      b[i - depth] = (unsigned char)o->name[i];
  return (uint64_t)b[0] << 56 | (uint64_t)b[1] << 48 | (uint64_t)b[2] << 40 |
         (uint64_t)b[3] << 32 | (uint64_t)b[4] << 24 | (uint64_t)b[5] << 16 |
         (uint64_t)b[6] << 8 | (uint64_t)b[7];
}

/* An object with a chunk of its name, so that sorting reads each name
   once per 8 bytes it has in common with another, not once per
   comparison. */
typedef struct keyed {
  uint64_t key;
  obspam__obj *o;
} keyed;

/* The byte counts of one sort, a row for each byte of a key. */
typedef struct sorting {
  size_t count[8][256], next[8][256];
} sorting;

static void insertion(keyed *v, size_t n) {
  size_t i, j;

  for (i = 1; i < n; i++) {
    keyed x = v[i];

    for (j = i; j > 0 && v[j - 1].key > x.key; j--)
      v[j] = v[j - 1];
    v[j] = x;
  }
}

#define BYTE(key, b) ((size_t)((key) >> (8 * (b)) & 0xff))

/* Sorts v[0..n) by key, in place (no copy of the array): from the
   highest byte in which the keys differ, the elements go to the buckets
   of that byte by cycles of swaps, then each bucket is sorted alike. */
static void radix(keyed *v, size_t n, sorting *s) {
  size_t *count, *next, i, at, k;
  uint64_t differ = 0;
  int b;

  if (n < 32) {
    insertion(v, n);
    return;
  }
  for (i = 1; i < n; i++)
    differ |= v[i].key ^ v[0].key;
  if (differ == 0)
    return;
  for (b = 7; BYTE(differ, b) == 0; b--)
    ;
  /* b only falls along a chain of calls: each has its own row. */
  count = s->count[b];
  next = s->next[b];
  memset(count, 0, sizeof(s->count[b]));
  for (i = 0; i < n; i++)
    count[BYTE(v[i].key, b)]++;
  for (k = 0, at = 0; k < 256; k++) {
    next[k] = at;
    at += count[k];
  }
  for (k = 0, at = 0; k < 256; at += count[k], k++)
    while (next[k] < at + count[k]) {
      keyed x = v[next[k]];
      size_t d = BYTE(x.key, b);

      while (d != k) {
        keyed y = v[next[d]];

        v[next[d]++] = x;
        x = y;
        d = BYTE(x.key, b);
      }
      v[next[k]++] = x;
    }
  if (b == 0)
    return;
  for (k = 0, at = 0; k < 256; at += count[k], k++)
    if (count[k] > 1)
      radix(v + at, count[k], s);
}

/* Sorts v[0..n), whose names agree in their first depth bytes, by name:
   by the next 8 bytes, then each run that agrees in them too by the 8
   after. A run whose chunk ends its names (a zero last byte) holds one
   name, as the names of a kind differ. */
static void sort_names(keyed *v, size_t n, size_t depth, sorting *s) {
  size_t i, j;

  /* The names are cache misses: each object is asked for 32 names
     ahead, its name 16 ahead (the object is in the cache by then). */
  for (i = 0; i < n; i++) {
    if (i + 32 < n)
      OBSPAM__PREFETCH(v[i + 32].o);
    if (i + 16 < n)
      OBSPAM__PREFETCH(v[i + 16].o->name + depth);
    v[i].key = chunk(v[i].o, depth);
  }
  radix(v, n, s);
  for (i = 0; i < n; i = j) {
    for (j = i + 1; j < n && v[j].key == v[i].key; j++)
      ;
    if (j - i > 1 && (v[i].key & 0xff) != 0)
      sort_names(v + i, j - i, depth + 8, s);
  }
}

void obspam__tree_bulk(obspam__tree *t) { t->bulk = 1; }

/* A parsed tree's blocks are filled to three quarters, so that the
   first additions after a load split none. */
#define FILL (3 * OBSPAM__BLOCK / 4)

static obspam__block *block_new(void) {
  obspam__block *k = malloc(sizeof(*k));

  if (k != NULL)
    k->n = k->marks = 0;
  return k;
}

/* Cuts the sorted objects v[0..n) of one kind into blocks: OBSPAM_OK or
   OBSPAM_ENOMEM (then the blocks made so far are s's, for the tree's
   free). */
static int order_fill(obspam__sorted *s, const keyed *v, size_t n) {
  size_t nb = (n + FILL - 1) / FILL, i;

  if ((s->b = malloc(nb * sizeof(*s->b))) == NULL)
    return OBSPAM_ENOMEM;
  s->bcap = nb;
  for (i = 0; i < n; i++) {
    obspam__block *k;

    if (i % FILL == 0) {
      if ((s->b[s->nb] = block_new()) == NULL)
        return OBSPAM_ENOMEM;
      s->nb++;
    }
    k = s->b[s->nb - 1];
    k->v[k->n++] = v[i].o;
  }
  s->n = n;
  return OBSPAM_OK;
}

int obspam__tree_order(obspam__tree *t) {
  sorting *s = malloc(sizeof(*s));
  keyed *v = NULL;
  size_t most = 0, i, n;
  int kind, rc = OBSPAM_OK;

  for (kind = OBSPAM_PLAN; kind <= OBSPAM_MAILBOX; kind++)
    if (t->index[kind].n > most)
      most = t->index[kind].n;
  if (s == NULL || (v = malloc((most + 1) * sizeof(*v))) == NULL) {
    free(s);
    return OBSPAM_ENOMEM;
  }
  for (kind = OBSPAM_PLAN; kind <= OBSPAM_MAILBOX && rc == OBSPAM_OK; kind++) {
    const obspam__index *x = &t->index[kind];

    if (x->n == 0)
      continue;
    for (i = 0, n = 0; i <= x->mask; i++)
      if (x->slot[i].obj != NULL)
        v[n++].o = x->slot[i].obj;
    sort_names(v, n, 0, s);
    rc = order_fill(&t->sorted[kind], v, n);
  }
  free(s);
  free(v);
  if (rc != OBSPAM_OK)
    return rc;
  t->bulk = 0;
  return OBSPAM_OK;
}

const obspam__sorted *obspam__tree_sorted(const obspam__tree *t, int kind) {
  return &t->sorted[kind];
}

/* While a subtree is removed, its objects are first marked in their
   name order, while every name can still be read: the low bit of the
   pointer, which the alignment of an object leaves clear, counted in
   the block's marks. The marked ones are then dropped in one pass per
   kind over the blocks that hold them, and only then are the objects
   freed. So removing a subscription with 10,000 mailboxes reads the
   blocks of those mailboxes once each. */
static int marked(const obspam__obj *o) { return ((uintptr_t)o & 1u) != 0; }

static obspam__obj *unmarked(obspam__obj *o) {
  return (obspam__obj *)((uintptr_t)o & ~(uintptr_t)1);
}

/* The block of s where name is or would go: the last one whose first
   name is not after it, or the first. Marks are read through. */
static size_t block_of(const obspam__sorted *s, const char *name) {
  size_t lo = 1, hi = s->nb;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;

    if (strcmp(unmarked(s->b[mid]->v[0])->name, name) <= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo - 1;
}

/* The position in k of the first name after name (after != 0) or not
   before it (after == 0). Marks are read through. */
static size_t slot_of(const obspam__block *k, const char *name, int after) {
  size_t lo = 0, hi = k->n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(unmarked(k->v[mid])->name, name);

    if (c < 0 || (after && c == 0))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

obspam__spos obspam__sorted_after(const obspam__sorted *s, const char *name) {
  obspam__spos p = {0, 0};

  if (s->nb == 0)
    return p;
  p.b = block_of(s, name);
  p.i = slot_of(s->b[p.b], name, 1);
  if (p.i == s->b[p.b]->n) {
    p.b++;
    p.i = 0;
  }
  return p;
}

int obspam__tree_reserve(obspam__tree *t, int kind) {
  obspam__sorted *s = &t->sorted[kind];
  obspam__block **b;
  size_t cap;

  if (obspam__index_reserve(&t->index[kind]) != 0)
    return OBSPAM_ENOMEM;
  if (t->bulk)
    return OBSPAM_OK;
  /* An addition needs at most one more block, and room for its
     pointer. */
  if (s->spare == NULL && (s->spare = block_new()) == NULL)
    return OBSPAM_ENOMEM;
  if (s->nb < s->bcap)
    return OBSPAM_OK;
  cap = s->bcap < 8 ? 8 : 2 * s->bcap;
  if (cap > SIZE_MAX / sizeof(*b) ||
      (b = realloc(s->b, cap * sizeof(*b))) == NULL)
    return OBSPAM_ENOMEM;
  s->b = b;
  s->bcap = cap;
  return OBSPAM_OK;
}

/* Puts o, just put into its index, into its name order (room is
   reserved): a binary search over the blocks, then one in the block,
   and a move of the rest of that block. A full block is first split
   where the name goes, but into parts of a quarter of a block at least.
   A name after the last of a full block goes alone into a new block
   instead, or to the front of the next block when that holds less than
   a quarter. So names added in order, or in a few runs of order (a
   panel or a program that builds a tree name by name), leave blocks
   full or three quarters full where halves would leave them half
   full, and no split makes a small block beside another. */
static void order_put(obspam__tree *t, obspam__obj *o) {
  obspam__sorted *s = &t->sorted[o->kind];
  obspam__block *k, *up;
  size_t at, i, keep;

  if (t->bulk)
    return;
  if (s->nb == 0) {
    s->b[s->nb++] = s->spare;
    s->spare = NULL;
  }
  at = block_of(s, o->name);
  k = s->b[at];
  i = slot_of(k, o->name, 0);
  if (i == OBSPAM__BLOCK && at + 1 < s->nb &&
      s->b[at + 1]->n < OBSPAM__BLOCK / 4) {
    k = s->b[at + 1];
    i = 0;
  } else if (k->n == OBSPAM__BLOCK) {
    keep = i == OBSPAM__BLOCK          ? OBSPAM__BLOCK
           : i < OBSPAM__BLOCK / 4     ? OBSPAM__BLOCK / 4
           : i > 3 * OBSPAM__BLOCK / 4 ? 3 * OBSPAM__BLOCK / 4
                                       : i;
    up = s->spare;
    s->spare = NULL;
    up->n = OBSPAM__BLOCK - keep;
    memcpy(up->v, &k->v[keep], up->n * sizeof(k->v[0]));
    k->n = keep;
    memmove(&s->b[at + 2], &s->b[at + 1], (s->nb - at - 1) * sizeof(s->b[0]));
    s->b[at + 1] = up;
    s->nb++;
    if (i > k->n || i == OBSPAM__BLOCK) {
      i -= k->n;
      k = up;
    }
  }
  memmove(&k->v[i + 1], &k->v[i], (k->n - i) * sizeof(k->v[0]));
  k->v[i] = o;
  k->n++;
  s->n++;
}

/* The marks of one removal: by kind, how many and the lowest block
   marked (SIZE_MAX: none). */
typedef struct marks {
  size_t n[5], first[5];
} marks;

/* Marks o and its subtree in their name orders. */
static void order_mark(obspam__tree *t, obspam__obj *o, marks *m) {
  obspam__sorted *s = &t->sorted[o->kind];
  obspam__block *k;
  obspam__obj *c;
  size_t at, i;

  for (c = o->child; c != NULL; c = c->next)
    order_mark(t, c, m);
  if (s->nb == 0)
    return;
  at = block_of(s, o->name);
  k = s->b[at];
  i = slot_of(k, o->name, 0);
  if (i == k->n || k->v[i] != o)
    return; /* not in the order: nothing to drop */
  k->v[i] = (obspam__obj *)((uintptr_t)o | 1u);
  k->marks++;
  m->n[o->kind]++;
  if (at < m->first[o->kind])
    m->first[o->kind] = at;
}

/* A block no longer used: kept as the spare when there is none. */
static void block_drop(obspam__sorted *s, obspam__block *k) {
  if (s->spare == NULL) {
    k->n = k->marks = 0;
    s->spare = k;
  } else
    free(k);
}

/* Drops the marked objects of k, keeping the others' order. */
static void block_pack(obspam__block *k) {
  size_t i, j;

  for (i = 0, j = 0; i < k->n; i++)
    if (!marked(k->v[i]))
      k->v[j++] = k->v[i];
  k->n = j;
  k->marks = 0;
}

/* Whether two neighbouring blocks are to become one: either holds less
   than a quarter of a block and both fit in one. So no two neighbours
   that a removal touched both hold less than a quarter. */
static int mergeable(const obspam__block *a, const obspam__block *b) {
  return a->n + b->n <= OBSPAM__BLOCK &&
         (a->n < OBSPAM__BLOCK / 4 || b->n < OBSPAM__BLOCK / 4);
}

/* Appends the objects of b to a, and drops b. */
static void merge(obspam__sorted *s, obspam__block *a, obspam__block *b) {
  memcpy(&a->v[a->n], b->v, b->n * sizeof(b->v[0]));
  a->n += b->n;
  block_drop(s, b);
}

/* Drops the marked objects from every order, keeping the others' order:
   each block that holds marks is packed, then dropped when empty, or
   merged with the block before it or the one after it (one without
   marks) when they are mergeable. The blocks after the last mark move
   back over the dropped ones in one move, and only when some were
   dropped. */
static void order_pack(obspam__tree *t, const marks *m) {
  int kind;

  for (kind = OBSPAM_PLAN; kind <= OBSPAM_MAILBOX; kind++) {
    obspam__sorted *s = &t->sorted[kind];
    size_t left = m->n[kind], i = m->first[kind], j = i;

    if (left == 0)
      continue;
    s->n -= left;
    for (; left > 0; i++) {
      obspam__block *k = s->b[i];

      if (k->marks == 0) {
        s->b[j++] = k;
        continue;
      }
      left -= k->marks;
      block_pack(k);
      if (k->n == 0)
        block_drop(s, k);
      else if (j > 0 && mergeable(s->b[j - 1], k))
        merge(s, s->b[j - 1], k);
      else
        s->b[j++] = k;
      /* The block now before the next one may be small, or next to a
         small one that k separated from it. */
      if (j > 0 && i + 1 < s->nb && s->b[i + 1]->marks == 0 &&
          mergeable(s->b[j - 1], s->b[i + 1]))
        merge(s, s->b[j - 1], s->b[++i]);
    }
    if (j < i)
      memmove(&s->b[j], &s->b[i], (s->nb - i) * sizeof(s->b[0]));
    s->nb -= i - j;
  }
}

static size_t obj_size(int kind) {
  switch (kind) {
  case OBSPAM_PLAN:
    return sizeof(obspam__plan);
  case OBSPAM_SUBSCRIPTION:
    return sizeof(obspam__sub);
  default:
    return sizeof(obspam__obj);
  }
}

obspam__obj *obspam__tree_find(const obspam__tree *t, int kind,
                               const char *name, size_t len) {
  return obspam__index_find(&t->index[kind], name, len);
}

obspam__sub *obspam__tree_by_uid(const obspam__tree *t, int64_t uid) {
  obspam__sub *s = NULL;

  if (uid >= 0)
    HASH_FIND(hh_uid, t->by_uid, &uid, sizeof(uid), s);
  return s;
}

obspam__sub *obspam__tree_script_sub(const obspam__tree *t, int64_t uid) {
  obspam__sub *s = obspam__tree_by_uid(t, uid);

  if (s == NULL && t->unknown_uid[0] != '\0')
    s = (obspam__sub *)obspam__tree_find(t, OBSPAM_SUBSCRIPTION, t->unknown_uid,
                                         strlen(t->unknown_uid));
  return s;
}

static void link_child(obspam__obj *o, obspam__obj *parent) {
  o->parent = parent;
  o->prev = NULL;
  o->next = NULL;
  if (parent == NULL)
    return;
  o->next = parent->child;
  if (parent->child != NULL)
    parent->child->prev = o;
  parent->child = o;
}

static void unlink_child(obspam__obj *o) {
  if (o->prev != NULL)
    o->prev->next = o->next;
  else if (o->parent != NULL)
    o->parent->child = o->next;
  if (o->next != NULL)
    o->next->prev = o->prev;
  o->parent = o->next = o->prev = NULL;
}

int obspam__tree_add(obspam__tree *t, int kind, const obspam__name *name,
                     obspam__obj *parent, obspam__obj **out) {
  obspam__obj *o;

  if (obspam__tree_find(t, kind, name->s, name->len) != NULL)
    return OBSPAM_EEXIST;
  if (obspam__tree_reserve(t, kind) != OBSPAM_OK ||
      (o = obspam__obj_new(obj_size(kind), kind, name->s, name->len)) == NULL)
    return OBSPAM_ENOMEM;
  o->own[0] = o->own[1] = o->own[2] = OBSPAM_INHERIT;
  if (obspam__scripts_of(o) != NULL)
    *obspam__scripts_of(o) = OBSPAM_INHERIT;
  if (kind == OBSPAM_SUBSCRIPTION)
    ((obspam__sub *)o)->uid = -1;
  obspam__index_put(&t->index[kind], o);
  order_put(t, o);
  link_child(o, parent);
  *out = o;
  return OBSPAM_OK;
}

int obspam__tree_adopt(obspam__tree *t, obspam__obj *o, obspam__obj *parent) {
  if (obspam__tree_reserve(t, o->kind) != OBSPAM_OK)
    return OBSPAM_ENOMEM;
  obspam__index_put(&t->index[o->kind], o);
  order_put(t, o);
  link_child(o, parent);
  return OBSPAM_OK;
}

void obspam__tree_move(obspam__obj *o, obspam__obj *parent) {
  unlink_child(o);
  link_child(o, parent);
}

int obspam__tree_set_uid(obspam__tree *t, obspam__sub *s, int64_t uid) {
  int64_t old = s->uid;

  if (uid == old)
    return OBSPAM_OK;
  if (uid >= 0 && obspam__tree_by_uid(t, uid) != NULL)
    return OBSPAM_EEXIST;
  if (t->by_uid == NULL) {
    t->uid_anchor.uid = -2;
    HASH_ADD(hh_uid, t->by_uid, uid, sizeof(t->uid_anchor.uid), &t->uid_anchor);
    if (t->uid_anchor.hh_uid.tbl == NULL) {
      t->by_uid = NULL;
      return OBSPAM_ENOMEM;
    }
  }
  if (old >= 0)
    HASH_DELETE(hh_uid, t->by_uid, s);
  s->uid = uid;
  if (uid < 0)
    return OBSPAM_OK;
  HASH_ADD(hh_uid, t->by_uid, uid, sizeof(s->uid), s);
  if (s->hh_uid.tbl == NULL) {
    /* Back into the bucket that held it a moment ago: that needs no
       memory, as the anchor keeps the table. */
    s->uid = old;
    if (old >= 0)
      HASH_ADD(hh_uid, t->by_uid, uid, sizeof(s->uid), s);
    return OBSPAM_ENOMEM;
  }
  return OBSPAM_OK;
}

obspam__extra *obspam__tree_extra(obspam__tree *t, obspam__obj *o) {
  int i;

  if (o->extra != NULL)
    return o->extra;
  if ((o->extra = malloc(sizeof(*o->extra))) == NULL)
    return NULL;
  for (i = 0; i < 3; i++)
    o->extra->own[0][i] = o->extra->own[1][i] = OBSPAM_INHERIT;
  o->extra->max_rcpt = OBSPAM_INHERIT;
  t->extras++;
  return o->extra;
}

void obspam__tree_extra_trim(obspam__tree *t, obspam__obj *o) {
  const obspam__extra *x = o->extra;
  int i;

  if (x == NULL || x->max_rcpt != OBSPAM_INHERIT)
    return;
  for (i = 0; i < 3; i++)
    if (x->own[0][i] != OBSPAM_INHERIT || x->own[1][i] != OBSPAM_INHERIT)
      return;
  free(o->extra);
  o->extra = NULL;
  t->extras--;
}

static void free_obj(obspam__tree *t, obspam__obj *o) {
  if (o->extra != NULL)
    t->extras--;
  obspam__index_del(&t->index[o->kind], o);
  if (o->kind == OBSPAM_SUBSCRIPTION) {
    obspam__sub *s = (obspam__sub *)o;

    if (s->uid >= 0)
      HASH_DELETE(hh_uid, t->by_uid, s);
    free(s->contact);
  }
  free(o->extra);
  free(o);
}

/* Unlinks and frees o and its subtree, children first. */
static void remove_tree(obspam__tree *t, obspam__obj *o,
                        void (*forget)(obspam__obj *, void *), void *ud) {
  while (o->child != NULL)
    remove_tree(t, o->child, forget, ud);
  if (forget != NULL)
    forget(o, ud);
  unlink_child(o);
  free_obj(t, o);
}

void obspam__tree_remove(obspam__tree *t, obspam__obj *o,
                         void (*forget)(obspam__obj *, void *), void *ud) {
  marks m = {{0}, {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX}};

  if (!t->bulk) {
    order_mark(t, o, &m);
    order_pack(t, &m);
  }
  remove_tree(t, o, forget, ud);
}

typedef struct freeing {
  void (*forget)(obspam__obj *, void *);
  void *ud;
} freeing;

static void free_one(obspam__obj *o, void *arg) {
  const freeing *f = arg;

  if (f->forget != NULL)
    f->forget(o, f->ud);
  if (o->kind == OBSPAM_SUBSCRIPTION)
    free(((obspam__sub *)o)->contact);
  free(o->extra);
  free(o);
}

void obspam__tree_free(obspam__tree *t, void (*forget)(obspam__obj *, void *),
                       void *ud) {
  UT_hash_table *uids = t->by_uid != NULL ? t->by_uid->hh_uid.tbl : NULL;
  freeing f = {forget, ud};
  int kind;

  /* Whole indexes go at once: no object is unlinked or deleted one by
     one. Children first, as obspam__tree_remove does. */
  for (kind = OBSPAM_MAILBOX; kind >= OBSPAM_PLAN; kind--) {
    obspam__sorted *s = &t->sorted[kind];
    size_t i;

    for (i = 0; i < s->nb; i++)
      free(s->b[i]);
    free(s->b);
    free(s->spare);
    obspam__index_each(&t->index[kind], free_one, &f);
    obspam__index_free(&t->index[kind]);
  }
  if (uids != NULL) {
    uthash_free(uids->buckets, uids->num_buckets * sizeof(*uids->buckets));
    uthash_free(uids, sizeof(*uids));
  }
  obspam__tree_init(t);
}

int obspam__scripts_allowed(const obspam__tree *t, const obspam__sub *s) {
  const obspam__plan *p = (const obspam__plan *)s->obj.parent;

  if (s->scripts != OBSPAM_INHERIT)
    return s->scripts;
  if (p != NULL && p->scripts != OBSPAM_INHERIT)
    return p->scripts;
  return t->server_scripts;
}

int *obspam__scripts_of(obspam__obj *o) {
  if (o->kind == OBSPAM_PLAN)
    return &((obspam__plan *)o)->scripts;
  if (o->kind == OBSPAM_SUBSCRIPTION)
    return &((obspam__sub *)o)->scripts;
  return NULL;
}

obspam__obj *obspam__obj_new(size_t size, int kind, const char *name,
                             size_t len) {
  obspam__obj *o = calloc(1, size + len + 1);

  if (o == NULL)
    return NULL;
  o->name = (char *)o + size;
  memcpy(o->name, name, len);
  o->name[len] = '\0';
  o->len = (uint16_t)len;
  o->kind = (uint8_t)kind;
  return o;
}
