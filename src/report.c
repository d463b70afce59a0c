/* SPDX-License-Identifier: MIT */
/* obspam_history and obspam_report: what the statistics say about a
   period. Both gather their rows from the store while the locks are held,
   then call the callback with no lock held. */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* History from a shared store without the engine's lock: a round trip
   under it would make a reload, and every decision behind it, wait. The
   object's name and the subscription that makes its keys are copied
   under the lock; a script needs no object. OBSPAM_EUNAVAIL: the store
   reads nothing by name, or does not answer (the caller reads under the
   lock). */
static int history_named(obspam_engine *e, int kind, const char *script,
                         size_t len, const obspam__name *n, int64_t from,
                         int64_t to, obspam__hour **hours, size_t *count) {
  char sub[OBSPAM_NAME_MAX + 1];
  obspam__named on = {kind, sub, NULL, 0};
  obspam__store *s = NULL;
  const obspam__obj *o = NULL;
  obspam__imb *held = NULL;
  int64_t retention;
  int rc = OBSPAM_OK;

  if (!__atomic_load_n(&e->shared, __ATOMIC_RELAXED))
    return OBSPAM_EUNAVAIL;
  pthread_rwlock_rdlock(&e->lock);
  retention = e->conf->opt[OBSPAM_OPT_RETENTION_HOURS];
  if (kind != OBSPAM_SCRIPT &&
      (o = obspam__find_counted(e, kind, n, &held)) == NULL)
    rc = OBSPAM_ENOTFOUND;
  else if (e->store->ops->history_named == NULL ||
           (s = obspam__store_take(e->store)) == NULL)
    rc = OBSPAM_EUNAVAIL;
  if (o != NULL)
    obspam__named_set(&on, sub, o, n);
  if (held != NULL)
    obspam__implicit_unpin(&e->imp, held);
  pthread_rwlock_unlock(&e->lock);
  if (s == NULL)
    return rc;
  rc = s->ops->history_named(s, kind != OBSPAM_SCRIPT ? &on : NULL, script, len,
                             from, to, retention, hours, count);
  s->ops->use(s, -1);
  return rc;
}

int obspam_history(obspam_engine *e, int kind, const char *name, int64_t from,
                   int64_t to,
                   void (*fn)(int64_t hour_start, int64_t sent, int64_t refused,
                              void *ud),
                   void *ud) {
  obspam__hour *hours = NULL;
  obspam__name n;
  obspam__obj *o = NULL;
  obspam__imb *held = NULL;
  obspam__store *st;
  size_t count = 0, i, len = 0;
  const char *why = NULL;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (fn == NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "history: no callback");
  if (kind == OBSPAM_SCRIPT) {
    len = name != NULL ? strlen(name) : 0;
    if (len == 0 || len > OBSPAM__SCRIPT_MAX)
      why = "a script path of 1 to 1024 bytes";
  } else if (kind >= OBSPAM_SUBSCRIPTION && kind <= OBSPAM_MAILBOX) {
    why = obspam__name_norm(
        name,
        kind == OBSPAM_MAILBOX ? OBSPAM__NAME_MAILBOX : OBSPAM__NAME_PLAIN, &n);
  } else {
    return obspam__fail(e, OBSPAM_EINVAL,
                        "history: only a subscription, "
                        "domain, mailbox or script has history");
  }
  if (why != NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "history: %s '%.64s': %s",
                        obspam_kind_name(kind), name ? name : "(null)", why);

  rc = history_named(e, kind, name, len, &n, from, to, &hours, &count);
  if (rc == OBSPAM_EUNAVAIL) {
    pthread_rwlock_rdlock(&e->lock);
    if (kind != OBSPAM_SCRIPT) {
      /* An implicit mailbox is pinned while it is read. */
      o = obspam__find_counted(e, kind, &n, &held);
      rc = o != NULL ? OBSPAM_OK : OBSPAM_ENOTFOUND;
    } else {
      rc = OBSPAM_OK;
    }
    /* A shared store that did not answer by name is not asked again
       under the lock: the local counters answer. */
    st = e->store->ops->history_named != NULL ? e->local : e->store;
    if (rc == OBSPAM_OK)
      rc = st->ops->history(st, o, name, len, from, to,
                            e->conf->opt[OBSPAM_OPT_RETENTION_HOURS], &hours,
                            &count);
    if (held != NULL)
      obspam__implicit_unpin(&e->imp, held);
    pthread_rwlock_unlock(&e->lock);
  }
  if (rc == OBSPAM_ENOTFOUND)
    return obspam__fail(e, rc, "history: no %s '%s'", obspam_kind_name(kind),
                        kind == OBSPAM_SCRIPT ? name : n.s);
  if (rc != OBSPAM_OK)
    return obspam__fail(e, rc, "history: out of memory");
  for (i = 0; i < count; i++)
    fn(hours[i].hour, hours[i].sent, hours[i].refused, ud);
  free(hours);
  return OBSPAM_OK;
}

/* The objects that went over their own limit first, most such attempts
   first; then the scripts, most messages sent first, then most refused;
   ties by name and kind so that the order is always the same. */
static int row_order(const void *pa, const void *pb) {
  const obspam__row *a = pa, *b = pb;
  int c;

  if ((a->kind == OBSPAM_SCRIPT) != (b->kind == OBSPAM_SCRIPT))
    return a->kind == OBSPAM_SCRIPT ? 1 : -1;
  if (a->exceeded != b->exceeded)
    return a->exceeded > b->exceeded ? -1 : 1;
  if (a->sent != b->sent && a->kind == OBSPAM_SCRIPT)
    return a->sent > b->sent ? -1 : 1;
  if (a->refused != b->refused && a->kind == OBSPAM_SCRIPT)
    return a->refused > b->refused ? -1 : 1;
  c = strcmp(a->name, b->name);
  if (c != 0)
    return c;
  return a->kind - b->kind;
}

/* The top senders: most sent first, then most refused, ties by kind
   and name. */
static int top_order(const void *pa, const void *pb) {
  const obspam__row *a = pa, *b = pb;
  int c;

  if (a->sent != b->sent)
    return a->sent > b->sent ? -1 : 1;
  if (a->refused != b->refused)
    return a->refused > b->refused ? -1 : 1;
  if (a->kind != b->kind)
    return a->kind - b->kind;
  c = strcmp(a->name, b->name);
  return c;
}

/* The names of the subscriptions behind script rows, looked up while the
   engine's lock is held (the tree may change once it is let go): for a
   row whose store kept none, the subscription that owns its uid now, or
   the unknown-uid subscription. subs has n names; "" none. */
static void script_subs(obspam_engine *e, const obspam__row *rows, size_t n,
                        char (*subs)[OBSPAM_NAME_MAX + 1]) {
  size_t i;

  for (i = 0; i < n; i++) {
    const obspam__sub *s = NULL;

    subs[i][0] = '\0';
    if (rows[i].kind != OBSPAM_SCRIPT || rows[i].sub != NULL)
      continue;
    if (rows[i].uid >= 0)
      s = obspam__tree_script_sub(&e->conf->tree, rows[i].uid);
    if (s != NULL)
      memcpy(subs[i], s->obj.name, (size_t)s->obj.len + 1);
  }
}

/* The rows of a report (every 0) or of a list of top senders (every 1),
   sorted by order, at most max of them (0: all) and only of kind (-1:
   any), handed to fn with no lock held. */
static int rows_emit(obspam_engine *e, const char *what, int64_t from,
                     int64_t to, int every, int kind, size_t max,
                     int (*order)(const void *, const void *),
                     void (*fn)(const obspam_report_row *row, void *ud),
                     void *ud) {
  char(*subs)[OBSPAM_NAME_MAX + 1] = NULL;
  obspam__store *shared;
  obspam__row *rows;
  int64_t retention;
  size_t n, i, k;
  int rc;

  if (fn == NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "%s: no callback", what);
  pthread_rwlock_rdlock(&e->lock);
  retention = e->conf->opt[OBSPAM_OPT_RETENTION_HOURS];
  rc = OBSPAM_EUNAVAIL;
  shared = NULL;
  if (e->store->ops->report_shared != NULL &&
      (shared = obspam__store_take(e->store)) != NULL) {
    /* A shared store's report is many round trips, which a reload (and,
       behind it, every decision) must not wait for: it is made without
       the engine's lock, which is taken again for the scripts'
       subscriptions. */
    pthread_rwlock_unlock(&e->lock);
    rc = shared->ops->report_shared(shared, from, to, retention, every, &rows,
                                    &n);
    shared->ops->use(shared, -1);
    pthread_rwlock_rdlock(&e->lock);
  }
  /* A shared store that did not answer is not waited for twice: the
     local counters answer, as its report would. */
  if (rc == OBSPAM_EUNAVAIL)
    rc = shared != NULL ? e->local->ops->report(e->local, from, to, retention,
                                                every, &rows, &n)
                        : e->store->ops->report(e->store, from, to, retention,
                                                every, &rows, &n);
  /* Only the rows asked for are kept. */
  for (i = k = 0; rc == OBSPAM_OK && i < n; i++)
    if (kind < 0 || rows[i].kind == kind)
      rows[k++] = rows[i];
  n = rc == OBSPAM_OK ? k : 0;
  if (n > 1)
    qsort(rows, n, sizeof(*rows), order);
  if (max != 0 && n > max)
    n = max;
  if (rc == OBSPAM_OK && n > 0 && (subs = malloc(n * sizeof(*subs))) == NULL)
    rc = OBSPAM_ENOMEM;
  if (subs != NULL)
    script_subs(e, rows, n, subs);
  pthread_rwlock_unlock(&e->lock);
  if (rc != OBSPAM_OK) {
    free(rows);
    return obspam__fail(e, rc, "%s: %s", what, obspam_strerror(rc));
  }
  for (i = 0; i < n; i++) {
    obspam_report_row row;

    row.struct_size = sizeof(row);
    row.kind = rows[i].kind;
    row.name = rows[i].name;
    row.sent = rows[i].sent;
    row.refused = rows[i].refused;
    row.first_refused = rows[i].first;
    row.last_refused = rows[i].last;
    row.exceeded = rows[i].exceeded;
    row.window = rows[i].window;
    row.subscription = NULL;
    row.uid = -1;
    row.forwarded = rows[i].forwarded;
    row.list_deliveries = rows[i].lists;
    if (rows[i].kind == OBSPAM_SCRIPT) {
      row.subscription = rows[i].sub != NULL  ? rows[i].sub
                         : subs[i][0] != '\0' ? subs[i]
                                              : NULL;
      row.uid = rows[i].uid;
    }
    fn(&row, ud);
  }
  free(subs);
  free(rows);
  return OBSPAM_OK;
}

int obspam_report(obspam_engine *e, int64_t from, int64_t to,
                  void (*fn)(const obspam_report_row *row, void *ud),
                  void *ud) {
  if (e == NULL)
    return OBSPAM_EINVAL;
  return rows_emit(e, "report", from, to, 0, -1, 0, row_order, fn, ud);
}

int obspam_top(obspam_engine *e, int kind, int64_t from, int64_t to, size_t n,
               void (*fn)(const obspam_report_row *row, void *ud), void *ud) {
  if (e == NULL)
    return OBSPAM_EINVAL;
  if (kind != -1 && (kind < OBSPAM_SUBSCRIPTION || kind > OBSPAM_SCRIPT))
    return obspam__bad_kind(
        e, "top", kind,
        "a subscription, domain, mailbox, script or -1 (every kind)");
  return rows_emit(e, "top", from, to, 1, kind, n, top_order, fn, ud);
}
