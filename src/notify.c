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
static int notice_order(const void *pa, const void *pb) {
  const obspam__pending *a = *(const obspam__pending *const *)pa;
  const obspam__pending *b = *(const obspam__pending *const *)pb;

  if (a->period_start != b->period_start)
    return a->period_start < b->period_start ? -1 : 1;
  if (a->kind != b->kind)
    return a->kind - b->kind;
  return strcmp(a->name, b->name);
}

int obspam_notify_flush(obspam_engine *e, int64_t now) {
  void (*fn)(const obspam_notice *, void *);
  obspam__pending *list, *p, **sorted;
  size_t n = 0, i;
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

  for (p = list; p != NULL; p = p->next)
    n++;
  sorted = malloc((n ? n : 1) * sizeof(*sorted));
  if (sorted == NULL) {
    /* The notices are lost rather than the process: say so. */
    obspam__pending_free(list);
    return obspam__fail(e, OBSPAM_ENOMEM,
                        "notify_flush: out of memory, "
                        "%zu notices dropped",
                        n);
  }
  for (i = 0, p = list; p != NULL; p = p->next)
    sorted[i++] = p;
  if (n > 1)
    qsort(sorted, n, sizeof(*sorted), notice_order);
  for (i = 0; fn != NULL && i < n; i++) {
    obspam_notice notice;

    memset(&notice, 0, sizeof(notice));
    notice.struct_size = sizeof(notice);
    notice.kind = sorted[i]->kind;
    notice.name = sorted[i]->name;
    notice.subscription = sorted[i]->subscription;
    notice.contact = sorted[i]->contact;
    notice.limit = sorted[i]->limit;
    notice.sent = sorted[i]->sent;
    notice.refused = sorted[i]->refused;
    notice.first_refused = sorted[i]->first_refused;
    notice.last_refused = sorted[i]->last_refused;
    notice.period_start = sorted[i]->period_start;
    notice.period_end = sorted[i]->period_end;
    fn(&notice, ud);
  }
  free(sorted);
  obspam__pending_free(list);
  if (rc != OBSPAM_OK)
    return obspam__fail(e, rc,
                        "notify_flush: out of memory; the rest "
                        "is kept for the next flush");
  return OBSPAM_OK;
}
