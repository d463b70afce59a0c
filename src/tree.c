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

/* Drops the name order of kind: the index is about to change. Under the
   write lock (or on a tree no reader sees), so nobody holds it. */
static void unsort(obspam__tree *t, int kind) {
  free(t->sorted[kind]);
  t->sorted[kind] = NULL;
}

static int by_name(const void *a, const void *b) {
  return strcmp((*(obspam__obj *const *)a)->name,
                (*(obspam__obj *const *)b)->name);
}

const obspam__sorted *obspam__tree_sorted(obspam__tree *t, int kind) {
  obspam__sorted *s = __atomic_load_n(&t->sorted[kind], __ATOMIC_ACQUIRE);
  obspam__sorted *none = NULL;
  const obspam__index *x = &t->index[kind];
  size_t i;

  if (s != NULL)
    return s;
  s = malloc(sizeof(*s) + x->n * sizeof(s->v[0]));
  if (s == NULL)
    return NULL;
  s->n = 0;
  for (i = 0; x->slot != NULL && i <= x->mask; i++)
    if (x->slot[i].obj != NULL)
      s->v[s->n++] = x->slot[i].obj;
  qsort(s->v, s->n, sizeof(s->v[0]), by_name);
  /* Another reader may have made it meanwhile: the first one stays. */
  if (!__atomic_compare_exchange_n(&t->sorted[kind], &none, s, 0,
                                   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    free(s);
    s = none;
  }
  return s;
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
  if (obspam__index_reserve(&t->index[kind]) != 0 ||
      (o = obspam__obj_new(obj_size(kind), kind, name->s, name->len)) == NULL)
    return OBSPAM_ENOMEM;
  o->own[0] = o->own[1] = o->own[2] = OBSPAM_INHERIT;
  if (obspam__scripts_of(o) != NULL)
    *obspam__scripts_of(o) = OBSPAM_INHERIT;
  if (kind == OBSPAM_SUBSCRIPTION)
    ((obspam__sub *)o)->uid = -1;
  unsort(t, kind);
  obspam__index_put(&t->index[kind], o);
  link_child(o, parent);
  *out = o;
  return OBSPAM_OK;
}

int obspam__tree_adopt(obspam__tree *t, obspam__obj *o, obspam__obj *parent) {
  if (obspam__index_reserve(&t->index[o->kind]) != 0)
    return OBSPAM_ENOMEM;
  unsort(t, o->kind);
  obspam__index_put(&t->index[o->kind], o);
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
  unsort(t, o->kind);
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

void obspam__tree_remove(obspam__tree *t, obspam__obj *o,
                         void (*forget)(obspam__obj *, void *), void *ud) {
  while (o->child != NULL)
    obspam__tree_remove(t, o->child, forget, ud);
  if (forget != NULL)
    forget(o, ud);
  unlink_child(o);
  free_obj(t, o);
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
    unsort(t, kind);
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
