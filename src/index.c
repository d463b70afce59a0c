/* SPDX-License-Identifier: MIT */
#include "index.h"

#include <stdlib.h>
#include <string.h>

#include "tree.h"

#define FIRST_SLOTS 16 /* slots of a new index: a power of two */

obspam__obj *obspam__index_find(const obspam__index *x, const char *name,
                                size_t len) {
  return obspam__index_find_hash(x, name, len, obspam__index_hash(name, len));
}

obspam__obj *obspam__index_find_hash(const obspam__index *x, const char *name,
                                     size_t len, uint64_t h) {
  size_t i;

  if (x->slot == NULL)
    return NULL;
  for (i = (size_t)h & x->mask; x->slot[i].obj != NULL; i = (i + 1) & x->mask) {
    const obspam__obj *o = x->slot[i].obj;

    if (x->slot[i].hash == h && o->len == len &&
        memcmp(o->name, name, len) == 0)
      return x->slot[i].obj;
  }
  return NULL;
}

/* Puts o into the first empty slot of its probe sequence. */
static void place(obspam__slot *slot, size_t mask, uint64_t h, obspam__obj *o) {
  size_t i;

  for (i = (size_t)h & mask; slot[i].obj != NULL; i = (i + 1) & mask)
    ;
  slot[i].hash = h;
  slot[i].obj = o;
}

int obspam__index_reserve(obspam__index *x) {
  return obspam__index_reserve_n(x, 1);
}

int obspam__index_reserve_n(obspam__index *x, size_t more) {
  size_t cap = x->slot != NULL ? x->mask + 1 : 0, i;
  obspam__slot *slot;

  if ((x->n + more) * 2 <= cap)
    return 0;
  if (cap == 0)
    cap = FIRST_SLOTS;
  while ((x->n + more) * 2 > cap)
    cap *= 2;
  if (cap > SIZE_MAX / sizeof(*slot) ||
      (slot = calloc(cap, sizeof(*slot))) == NULL)
    return -1;
  for (i = 0; x->slot != NULL && i <= x->mask; i++)
    if (x->slot[i].obj != NULL)
      place(slot, cap - 1, x->slot[i].hash, x->slot[i].obj);
  free(x->slot);
  x->slot = slot;
  x->mask = cap - 1;
  return 0;
}

void obspam__index_put(obspam__index *x, obspam__obj *o) {
  place(x->slot, x->mask, obspam__index_hash(o->name, o->len), o);
  x->n++;
}

void obspam__index_del(obspam__index *x, const obspam__obj *o) {
  size_t i, j, home;

  for (i = (size_t)obspam__index_hash(o->name, o->len) & x->mask;
       x->slot[i].obj != o; i = (i + 1) & x->mask)
    ;
  /* Every later slot of the run that may move back into the hole does:
     one whose home is not cyclically within (i, j]. */
  for (j = (i + 1) & x->mask; x->slot[j].obj != NULL; j = (j + 1) & x->mask) {
    home = (size_t)x->slot[j].hash & x->mask;
    if (((j - home) & x->mask) >= ((j - i) & x->mask)) {
      x->slot[i] = x->slot[j];
      i = j;
    }
  }
  x->slot[i].obj = NULL;
  x->slot[i].hash = 0;
  x->n--;
}

void obspam__index_free(obspam__index *x) {
  free(x->slot);
  memset(x, 0, sizeof(*x));
}

void obspam__index_each(const obspam__index *x,
                        void (*fn)(obspam__obj *, void *), void *ud) {
  size_t i;

  for (i = 0; x->slot != NULL && i <= x->mask; i++)
    if (x->slot[i].obj != NULL)
      fn(x->slot[i].obj, ud);
}
