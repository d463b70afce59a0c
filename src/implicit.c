/* SPDX-License-Identifier: MIT */
#include "implicit.h"

#include <stdlib.h>
#include <string.h>

/* How many of the least recently charged mailboxes a creation looks at
   for one that no longer exists. */
#define RECLAIM_PER_CALL 8

int obspam__implicit_init(obspam__implicit *im) {
  memset(im, 0, sizeof(*im));
  return pthread_mutex_init(&im->lock, NULL) == 0 ? 0 : -1;
}

/* Whether the store holds anything of m. A ring never exists without a
   hist record, and only a pinned mailbox can gain one; the store clears
   the pointer with an atomic store (SET_PTR in store_mem.h). */
static int has_state(const obspam__imb *m) {
  return __atomic_load_n(&m->obj.hist, __ATOMIC_RELAXED) != NULL;
}

static void unlink_lru(obspam__implicit *im, obspam__imb *m) {
  if (m->prev != NULL)
    m->prev->next = m->next;
  else
    im->first = m->next;
  if (m->next != NULL)
    m->next->prev = m->prev;
  else
    im->last = m->prev;
  m->prev = m->next = NULL;
}

static void append_lru(obspam__implicit *im, obspam__imb *m) {
  m->next = NULL;
  m->prev = im->last;
  if (im->last != NULL)
    im->last->next = m;
  else
    im->first = m;
  im->last = m;
}

void obspam__implicit_drop(obspam__implicit *im, obspam__imb *m) {
  obspam__index_del(&im->index, &m->obj);
  unlink_lru(im, m);
  free(m);
}

void obspam__implicit_take(obspam__implicit *im, obspam__imb *m) {
  obspam__index_del(&im->index, &m->obj);
  unlink_lru(im, m);
}

void obspam__implicit_put(obspam__implicit *im, obspam__imb *m) {
  obspam__index_put(&im->index, &m->obj);
  append_lru(im, m);
}

size_t obspam__implicit_size(const obspam__implicit *im) { return im->index.n; }

void obspam__implicit_free(obspam__implicit *im) {
  while (im->first != NULL)
    obspam__implicit_drop(im, im->first);
  obspam__index_free(&im->index);
  pthread_mutex_destroy(&im->lock);
}

obspam__imb *obspam__implicit_new(const char *name, size_t len,
                                  obspam__obj *domain) {
  obspam__imb *m =
      (obspam__imb *)obspam__obj_new(sizeof(*m), OBSPAM_MAILBOX, name, len);

  if (m == NULL)
    return NULL;
  m->obj.parent = domain;
  m->obj.own[0] = m->obj.own[1] = m->obj.own[2] = OBSPAM_INHERIT;
  return m;
}

/* Frees, from the least recently charged end, up to max mailboxes that
   no longer exist; stops at the first that does. With the lock held. */
static void reclaim(obspam__implicit *im, int max) {
  while (max-- > 0 && im->first != NULL && im->first->pins == 0 &&
         !has_state(im->first))
    obspam__implicit_drop(im, im->first);
}

int obspam__implicit_get(obspam__implicit *im, const obspam__name *name,
                         uint64_t hash, obspam__obj *domain, int64_t cap,
                         int create, obspam__imb **out) {
  obspam__imb *m;
  int rc = OBSPAM__IMB_FOUND;

  *out = NULL;
  pthread_mutex_lock(&im->lock);
  m = (obspam__imb *)obspam__index_find_hash(&im->index, name->s, name->len,
                                             hash);
  if (m != NULL) {
    m->pins++;
    if (create && im->last != m) {
      unlink_lru(im, m);
      append_lru(im, m);
    }
    *out = m;
    goto done;
  }
  reclaim(im, RECLAIM_PER_CALL);
  if ((int64_t)im->index.n >= cap) {
    rc = OBSPAM__IMB_FULL;
    goto done;
  }
  if (!create) {
    rc = OBSPAM__IMB_ABSENT;
    goto done;
  }
  m = obspam__implicit_new(name->s, name->len, domain);
  if (m == NULL || obspam__index_reserve(&im->index) != 0) {
    free(m);
    rc = OBSPAM__IMB_NOMEM;
    goto done;
  }
  m->pins = 1;
  obspam__implicit_put(im, m);
  im->full = 0;
  *out = m;
done:
  pthread_mutex_unlock(&im->lock);
  return rc;
}

void obspam__implicit_overflowed(obspam__implicit *im) {
  pthread_mutex_lock(&im->lock);
  im->overflow++;
  if (!im->full)
    im->episodes++;
  im->full = 1;
  pthread_mutex_unlock(&im->lock);
}

void obspam__implicit_unpin(obspam__implicit *im, obspam__imb *m) {
  pthread_mutex_lock(&im->lock);
  if (--m->pins == 0 && !has_state(m))
    obspam__implicit_drop(im, m);
  pthread_mutex_unlock(&im->lock);
}

obspam__imb *obspam__implicit_find(obspam__implicit *im, const char *name,
                                   size_t len) {
  obspam__imb *m = (obspam__imb *)obspam__index_find(&im->index, name, len);

  return m != NULL && (m->pins > 0 || has_state(m)) ? m : NULL;
}

int obspam__implicit_exists(const obspam__imb *m) {
  return m->pins > 0 || has_state(m);
}

obspam__imb *obspam__implicit_hold(obspam__implicit *im, const char *name,
                                   size_t len) {
  obspam__imb *m;

  pthread_mutex_lock(&im->lock);
  m = obspam__implicit_find(im, name, len);
  if (m != NULL)
    m->pins++;
  pthread_mutex_unlock(&im->lock);
  return m;
}

int64_t obspam__implicit_count(obspam__implicit *im) {
  int64_t n;

  pthread_mutex_lock(&im->lock);
  /* Mailboxes expire in the order they were last charged, which is the
     order of the list: those that no longer exist are at its front, and
     the first one that does ends the walk. */
  reclaim(im, INT32_MAX);
  n = (int64_t)im->index.n;
  pthread_mutex_unlock(&im->lock);
  return n;
}

void obspam__implicit_purge(obspam__implicit *im) {
  obspam__imb *m, *next;

  for (m = im->first; m != NULL; m = next) {
    next = m->next;
    if (m->pins == 0 && !has_state(m))
      obspam__implicit_drop(im, m);
  }
}
