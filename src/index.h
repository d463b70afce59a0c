/* SPDX-License-Identifier: MIT */
/* The index of objects by name: an open-addressing hash table.

   Each slot holds an object's 64-bit name hash beside the pointer, so a
   lookup reads one slot line and then only the object it is looking for;
   a chained table (uthash) reads every object ahead of it in the bucket,
   a cache miss each. Linear probing, never more than half full, deletion
   by shifting the following slots back (no tombstones), so a lookup
   stops at the first empty slot. It never shrinks. */
#ifndef OBSPAM_INDEX_H
#define OBSPAM_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "hash.h"

struct obspam__obj;

/* Asks for the cache line at p ahead of its use; never faults. */
#if defined(__GNUC__)
#define OBSPAM__PREFETCH(p) __builtin_prefetch(p)
#else
#define OBSPAM__PREFETCH(p) ((void)(p))
#endif

typedef struct obspam__slot {
  uint64_t hash;
  struct obspam__obj *obj; /* NULL: empty */
} obspam__slot;

typedef struct obspam__index {
  obspam__slot *slot; /* NULL until the first object */
  size_t mask;        /* number of slots - 1 */
  size_t n;           /* objects held */
} obspam__index;

/* The hash of a name as the index keys it. Inline, as the two below
   are: a decision asks each of them once. */
static inline uint64_t obspam__index_hash(const char *name, size_t len) {
  return obspam__hash(name, len);
}

/* The object named name (normalised), or NULL; with the name's hash
   already known, the second. */
struct obspam__obj *obspam__index_find(const obspam__index *x, const char *name,
                                       size_t len);
struct obspam__obj *obspam__index_find_hash(const obspam__index *x,
                                            const char *name, size_t len,
                                            uint64_t hash);

/* For looking up many names at once, each step for every name before the
   next step for any (so that their cache misses overlap): the slot where
   the search for hash starts is brought into the cache; then the first
   object whose slot holds hash, or NULL, is returned without reading it
   (a guess: its name is not compared). */
static inline void obspam__index_prefetch(const obspam__index *x,
                                          uint64_t hash) {
  if (x->slot != NULL)
    OBSPAM__PREFETCH(&x->slot[(size_t)hash & x->mask]);
}

static inline struct obspam__obj *obspam__index_guess(const obspam__index *x,
                                                      uint64_t hash) {
  size_t i;

  if (x->slot == NULL)
    return NULL;
  for (i = (size_t)hash & x->mask; x->slot[i].obj != NULL;
       i = (i + 1) & x->mask)
    if (x->slot[i].hash == hash)
      return x->slot[i].obj;
  return NULL;
}

/* Makes room for one more object: 0, or -1 when memory ran out (the index
   is unchanged). After it, obspam__index_put cannot fail. */
int obspam__index_reserve(obspam__index *x);
/* The same for `more` objects. */
int obspam__index_reserve_n(obspam__index *x, size_t more);

/* Adds o, whose name is not in the index yet; room must be reserved. */
void obspam__index_put(obspam__index *x, struct obspam__obj *o);

/* Removes o, which is in the index. */
void obspam__index_del(obspam__index *x, const struct obspam__obj *o);

/* Frees the slots; the objects are the caller's. */
void obspam__index_free(obspam__index *x);

/* Calls fn for every object, in no particular order; fn may free the
   object but must not change the index. */
void obspam__index_each(const obspam__index *x,
                        void (*fn)(struct obspam__obj *, void *), void *ud);

#endif
