/* SPDX-License-Identifier: MIT */
/* Notifications: the callback and the flush of ended periods. The notices
   themselves are gathered by the store (store.h, notices) and by
   obspam_decide in immediate mode. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"

int obspam_set_notify(obspam_engine *e,
                      void (*fn)(const obspam_notice *n, void *ud), void *ud) {
  if (e == NULL)
    return OBSPAM_EINVAL;
  pthread_rwlock_wrlock(&e->lock);
  e->notify = fn;
  e->notify_ud = fn != NULL ? ud : NULL;
  pthread_rwlock_unlock(&e->lock);
  return OBSPAM_OK;
}

/* Oldest period first, then by kind from the top and by name. */
static int notice_order(const obspam__pending *a, const obspam__pending *b) {
  if (a->period_start != b->period_start)
    return a->period_start < b->period_start ? -1 : 1;
  if (a->kind != b->kind)
    return a->kind - b->kind;
  return strcmp(a->name, b->name);
}

/* Sorts the list by notice_order: a merge sort of the links themselves,
   so that a flush needs no memory and cannot lose a notice. */
static obspam__pending *sort(obspam__pending *list) {
  obspam__pending *a = NULL, *b = NULL, *next, head, *tail = &head;
  int flip = 0;

  if (list == NULL || list->next == NULL)
    return list;
  for (; list != NULL; list = next, flip ^= 1) {
    next = list->next;
    if (flip) {
      list->next = b;
      b = list;
    } else {
      list->next = a;
      a = list;
    }
  }
  a = sort(a);
  b = sort(b);
  while (a != NULL && b != NULL) {
    obspam__pending **least = notice_order(a, b) <= 0 ? &a : &b;

    tail->next = *least;
    tail = *least;
    *least = (*least)->next;
  }
  tail->next = a != NULL ? a : b;
  return head.next;
}

int obspam_notify_flush(obspam_engine *e, int64_t now) {
  void (*fn)(const obspam_notice *, void *);
  obspam__pending *list, *p;
  void *ud;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (now < 0)
    return obspam__fail(e, OBSPAM_EINVAL, "notify_flush: time is negative");
  if (now == 0)
    now = (int64_t)time(NULL);
  pthread_rwlock_rdlock(&e->lock);
  rc = e->store->ops->notices(e->store, now, &list);
  fn = e->notify;
  ud = e->notify_ud;
  pthread_rwlock_unlock(&e->lock);

  list = sort(list);
  for (p = list; fn != NULL && p != NULL; p = p->next) {
    obspam_notice notice;

    memset(&notice, 0, sizeof(notice));
    notice.struct_size = sizeof(notice);
    notice.kind = p->kind;
    notice.name = p->name;
    notice.subscription = p->subscription;
    notice.contact = p->contact;
    notice.limit = p->limit;
    notice.window = p->window;
    notice.sent = p->sent;
    notice.refused = p->refused;
    notice.exceeded = p->exceeded;
    notice.first_refused = p->first;
    notice.last_refused = p->last;
    notice.period_start = p->period_start;
    notice.period_end = p->period_end;
    fn(&notice, ud);
  }
  obspam__pending_free(list);
  if (rc != OBSPAM_OK)
    return obspam__fail(e, rc,
                        "notify_flush: out of memory; the rest "
                        "is kept for the next flush");
  return OBSPAM_OK;
}
