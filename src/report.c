/* SPDX-License-Identifier: MIT */
/* obspam_history and obspam_report: what the statistics say about a
   period. Both gather their rows from the store while the locks are held,
   then call the callback with no lock held. */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

int obspam_history(obspam_engine *e, int kind, const char *name, int64_t from,
                   int64_t to,
                   void (*fn)(int64_t hour_start, int64_t sent, int64_t refused,
                              void *ud),
                   void *ud) {
  obspam__hour *hours = NULL;
  obspam__name n;
  obspam__obj *o = NULL;
  obspam__imb *held = NULL;
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

  pthread_rwlock_rdlock(&e->lock);
  if (kind != OBSPAM_SCRIPT) {
    o = obspam__tree_find(&e->conf->tree, kind, n.s, n.len);
    /* An implicit mailbox is pinned while it is read. */
    if (o == NULL && kind == OBSPAM_MAILBOX &&
        (held = obspam__implicit_hold(&e->imp, n.s, n.len)) != NULL)
      o = &held->obj;
    rc = o != NULL ? OBSPAM_OK : OBSPAM_ENOTFOUND;
  } else {
    rc = OBSPAM_OK;
  }
  if (rc == OBSPAM_OK)
    rc = e->store->ops->history(e->store, o, name, len, from, to,
                                e->conf->opt[OBSPAM_OPT_RETENTION_HOURS],
                                &hours, &count);
  if (held != NULL)
    obspam__implicit_unpin(&e->imp, held);
  pthread_rwlock_unlock(&e->lock);
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

int obspam_report(obspam_engine *e, int64_t from, int64_t to,
                  void (*fn)(const obspam_report_row *row, void *ud),
                  void *ud) {
  obspam__row *rows;
  size_t n, i;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (fn == NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "report: no callback");
  pthread_rwlock_rdlock(&e->lock);
  rc = e->store->ops->report(
      e->store, from, to, e->conf->opt[OBSPAM_OPT_RETENTION_HOURS], &rows, &n);
  pthread_rwlock_unlock(&e->lock);
  if (rc != OBSPAM_OK)
    return obspam__fail(e, rc, "report: out of memory");
  if (n > 1)
    qsort(rows, n, sizeof(*rows), row_order);
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
    fn(&row, ud);
  }
  free(rows);
  return OBSPAM_OK;
}
