/* SPDX-License-Identifier: MIT */
/* Implicit mailboxes: logins and senders of a hosted domain that the
   configuration does not declare (SPEC.md section 2).

   They live beside the tree, not in it: decisions create them under the
   engine's read lock, while the tree changes only under the write lock.
   The set has its own mutex, taken after the engine's lock and before
   the counter store's, and never held while the store is called by a
   decision.

   An implicit mailbox exists while it has counters or history in the
   store (its hist record), or while a decision holds it (pinned). The
   store frees an idle object's counters and history on its own, without
   telling anyone; a mailbox left without either and not pinned is freed
   by the set the next time it looks (on creating one, on counting them,
   on any change under the write lock). That is safe because only a
   pinned mailbox can gain state, and only under the engine's read lock. */
#ifndef OBSPAM_IMPLICIT_H
#define OBSPAM_IMPLICIT_H

#include <pthread.h>
#include <stdint.h>

#include "index.h"
#include "tree.h"

typedef struct obspam__imb {
  obspam__obj obj; /* kind OBSPAM_MAILBOX, parent its domain; first */
  struct obspam__imb *prev, *next; /* least recently charged first */
  uint32_t pins;                   /* decisions that hold it now */
} obspam__imb;

typedef struct obspam__implicit {
  pthread_mutex_t lock;
  obspam__index index; /* by name */
  obspam__imb *first, *last;
  int64_t overflow, episodes;
  int full; /* an episode is running: the cap was met, none made since */
} obspam__implicit;

int obspam__implicit_init(obspam__implicit *im);
/* Frees every implicit mailbox; the store must hold nothing of them any
   more (it was destroyed, or told to forget them). */
void obspam__implicit_free(obspam__implicit *im);

/* What obspam__implicit_get found. */
enum {
  OBSPAM__IMB_FOUND = 0, /* *out is the mailbox, pinned */
  OBSPAM__IMB_ABSENT,    /* none, and none made (create off): a new one
                            would be within the cap */
  OBSPAM__IMB_FULL,      /* none, and the cap leaves no room for one */
  OBSPAM__IMB_NOMEM      /* none: memory ran out making it */
};

/* The implicit mailbox name (normalised, hash its index hash) of domain,
   pinned; with create set, made when absent and the cap allows. */
int obspam__implicit_get(obspam__implicit *im, const obspam__name *name,
                         uint64_t hash, obspam__obj *domain, int64_t cap,
                         int create, obspam__imb **out);
/* A decision found the cap met and charged the domain and subscription
   alone: one more overflow, and an episode when one starts. */
void obspam__implicit_overflowed(obspam__implicit *im);
/* Lets a decision's pin go; frees the mailbox when that leaves it
   without state (a decision that failed, or charged nothing). */
void obspam__implicit_unpin(obspam__implicit *im, obspam__imb *m);

/* The mailbox of that name that exists (has state or is pinned), or
   NULL. The set's lock must be held by the caller while it uses the result
   (obspam__implicit_lock), or the engine's write lock. */
obspam__imb *obspam__implicit_find(obspam__implicit *im, const char *name,
                                   size_t len);
/* Under the engine's read lock: the mailbox of that name that exists,
   pinned (let it go with obspam__implicit_unpin), or NULL. For reading it
   without holding the set's lock meanwhile. */
obspam__imb *obspam__implicit_hold(obspam__implicit *im, const char *name,
                                   size_t len);
static inline void obspam__implicit_lock(obspam__implicit *im) {
  pthread_mutex_lock(&im->lock);
}
static inline void obspam__implicit_unlock(obspam__implicit *im) {
  pthread_mutex_unlock(&im->lock);
}

/* Whether m exists (has state or is pinned). The set's lock must be
   held; a reader that lets it go pins m first (m->pins++, under the
   lock) and lets it go with obspam__implicit_unpin. */
int obspam__implicit_exists(const obspam__imb *m);

/* How many exist, after freeing those at the front of the list that no
   longer do (they expire in the order they were last charged). */
int64_t obspam__implicit_count(obspam__implicit *im);

/* ---- under the engine's write lock (no decision runs) ---------------- */

/* Frees every mailbox without state: a walk of them all. */
void obspam__implicit_purge(obspam__implicit *im);
/* Takes m out of the set without freeing it (it becomes a declared
   mailbox: obspam__tree_adopt). */
void obspam__implicit_take(obspam__implicit *im, obspam__imb *m);
/* Adds m, made by obspam__implicit_new; room must have been reserved
   (obspam__index_reserve_n on im->index). */
void obspam__implicit_put(obspam__implicit *im, obspam__imb *m);
/* A new mailbox name of domain, not in any set yet; NULL when out of
   memory. */
obspam__imb *obspam__implicit_new(const char *name, size_t len,
                                  obspam__obj *domain);
/* Frees m, which is in the set; the store must hold nothing of it. */
void obspam__implicit_drop(obspam__implicit *im, obspam__imb *m);
/* The number of mailboxes in the set, with or without state. */
size_t obspam__implicit_size(const obspam__implicit *im);

#endif
