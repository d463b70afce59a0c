/* SPDX-License-Identifier: MIT */
#include "engine.h"
#include "file.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

unsigned int obspam_version(void) { return OBSPAM_VERSION_NUMBER; }

const char *obspam_version_string(void) {
  return STR(OBSPAM_VERSION_MAJOR) "." STR(OBSPAM_VERSION_MINOR) "." STR(
      OBSPAM_VERSION_PATCH);
}

const char *obspam_strerror(int err) {
  switch (err) {
#define XX(name, value, text)                                                  \
  case OBSPAM_##name:                                                          \
    return text;
    OBSPAM_ERRNO_MAP(XX)
#undef XX
  default:
    return "unknown error";
  }
}

const char *obspam_kind_name(int kind) {
  static const char *const names[] = {"server", "plan",    "subscription",
                                      "domain", "mailbox", "script"};

  return kind >= 0 && kind <= OBSPAM_SCRIPT ? names[kind] : "unknown kind";
}

int obspam__fail(obspam_engine *e, int code, const char *fmt, ...) {
  va_list ap;
  char *p;

  pthread_mutex_lock(&e->err_lock);
  va_start(ap, fmt);
  vsnprintf(e->errmsg, sizeof(e->errmsg), fmt, ap);
  va_end(ap);
  /* Messages quote untrusted text (names, addresses, configuration
     words): keep them one printable line. */
  for (p = e->errmsg; *p != '\0'; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      *p = '?';
  pthread_mutex_unlock(&e->err_lock);
  return code;
}

int obspam__bad_kind(obspam_engine *e, const char *fn, int kind,
                     const char *what) {
  return obspam__fail(e, OBSPAM_EINVAL, "%s: kind %d is not %s", fn, kind,
                      what);
}

int obspam__counted_kind(obspam_engine *e, const char *fn, int kind,
                         const char *what) {
  if (e == NULL)
    return OBSPAM_EINVAL;
  if (kind < OBSPAM_SUBSCRIPTION || kind > OBSPAM_MAILBOX)
    return obspam__fail(e, OBSPAM_EINVAL,
                        "%s: only a subscription, domain or mailbox has %s", fn,
                        what);
  return OBSPAM_OK;
}

int obspam__kind_name_norm(obspam_engine *e, const char *fn, int kind,
                           const char *name, obspam__name *out) {
  const char *why = obspam__name_norm(
      name, kind == OBSPAM_MAILBOX ? OBSPAM__NAME_MAILBOX : OBSPAM__NAME_PLAIN,
      out);

  if (why != NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "%s: %s name '%.64s': %s", fn,
                        obspam_kind_name(kind), name ? name : "(null)", why);
  return OBSPAM_OK;
}

void obspam__marks_seen(obspam_engine *e) {
  const obspam__marks *m = &e->conf->marks;

  __atomic_store_n(&e->marks,
                   (m->fwd.n > 0 ? OBSPAM__MARKS_FORWARD : 0u) |
                       (m->list.n > 0 ? OBSPAM__MARKS_LIST : 0u),
                   __ATOMIC_RELEASE);
}

obspam__conf *obspam__conf_new(void) {
  obspam__conf *c = calloc(1, sizeof(*c));
  int i;

  if (c == NULL)
    return NULL;
  for (i = 1; i <= OBSPAM__OPT_MAX; i++)
    c->opt[i] = obspam__opt_default(i);
  obspam__tree_init(&c->tree);
  return c;
}

void obspam__conf_free(obspam__conf *c, obspam__store *store) {
  if (c == NULL)
    return;
  obspam__tree_free(&c->tree, store != NULL ? obspam__store_forget : NULL,
                    store);
  obspam__wl_free(&c->wl);
  obspam__wl_free(&c->local);
  obspam__marks_free(&c->marks);
  free(c->store_uri);
  free(c->store_prefix);
  free(c);
}

obspam__obj *obspam__find_counted(obspam_engine *e, int kind,
                                  const obspam__name *n, obspam__imb **held) {
  obspam__obj *o = obspam__tree_find(&e->conf->tree, kind, n->s, n->len);

  *held = NULL;
  if (o == NULL && kind == OBSPAM_MAILBOX &&
      (*held = obspam__implicit_hold(&e->imp, n->s, n->len)) != NULL)
    o = &(*held)->obj;
  return o;
}

obspam__obj *obspam__conf_find(int kind, const char *name, size_t len,
                               void *conf) {
  const obspam__conf *c = conf;

  if (kind < OBSPAM_PLAN || kind > OBSPAM_MAILBOX)
    return NULL;
  return obspam__tree_find(&c->tree, kind, name, len);
}

obspam__obj *obspam__domain_of(const obspam__tree *t, const char *name,
                               size_t len) {
  const char *at = memchr(name, '@', len);

  if (at == NULL)
    return NULL;
  return obspam__tree_find(t, OBSPAM_DOMAIN, at + 1,
                           len - (size_t)(at + 1 - name));
}

/* Implicit mailboxes across a change of the whole tree (a reload, a
   snapshot load): the mailbox names without a declared object whose
   domain is hosted in the new tree keep or get an implicit mailbox. */
typedef struct carrying {
  obspam__conf *next;
  obspam__implicit *im;
  obspam__index fresh; /* new implicit mailboxes, not in im yet */
  obspam__imb *list;   /* the same, linked through next */
  int64_t cap;         /* how many im and fresh may hold together */
} carrying;

/* An obspam__successor: the object of that kind and name in the new tree,
   else for a mailbox of a hosted domain its implicit mailbox (the one
   that exists, which stays itself, or a fresh one). */
static obspam__obj *successor(int kind, const char *name, size_t len,
                              void *ud) {
  carrying *cr = ud;
  obspam__obj *o = obspam__conf_find(kind, name, len, cr->next);

  if (o != NULL || kind != OBSPAM_MAILBOX ||
      obspam__domain_of(&cr->next->tree, name, len) == NULL)
    return o;
  o = obspam__index_find(&cr->im->index, name, len);
  return o != NULL ? o : obspam__index_find(&cr->fresh, name, len);
}

/* Adds a fresh implicit mailbox for name, a mailbox with state that the
   new tree does not declare, when its domain is hosted there, it has no
   implicit mailbox yet and the cap leaves room. 0, or -1 when out of
   memory. */
static int carry_fresh(carrying *cr, const char *name, size_t len) {
  obspam__obj *d;
  obspam__imb *m;

  if (obspam__conf_find(OBSPAM_MAILBOX, name, len, cr->next) != NULL ||
      (d = obspam__domain_of(&cr->next->tree, name, len)) == NULL ||
      obspam__index_find(&cr->im->index, name, len) != NULL ||
      obspam__index_find(&cr->fresh, name, len) != NULL ||
      (int64_t)(obspam__implicit_size(cr->im) + cr->fresh.n) >= cr->cap)
    return 0;
  m = obspam__implicit_new(name, len, d);
  if (m == NULL || obspam__index_reserve(&cr->fresh) != 0) {
    free(m);
    return -1;
  }
  obspam__index_put(&cr->fresh, &m->obj);
  m->next = cr->list;
  cr->list = m;
  return 0;
}

static void carry_undo(carrying *cr) {
  while (cr->list != NULL) {
    obspam__imb *m = cr->list;

    cr->list = m->next;
    free(m);
  }
  obspam__index_free(&cr->fresh);
}

/* After the store carried its state: implicit mailboxes left without
   state go, the others move to their domain in the new tree, and the
   fresh ones join them (room was reserved). Cannot fail. */
static void carry_commit(carrying *cr) {
  obspam__imb *m, *next;

  obspam__implicit_purge(cr->im);
  for (m = cr->im->first; m != NULL; m = m->next)
    m->obj.parent = obspam__domain_of(&cr->next->tree, m->obj.name, m->obj.len);
  for (m = cr->list; m != NULL; m = next) {
    next = m->next;
    m->prev = m->next = NULL;
    obspam__implicit_put(cr->im, m);
  }
  cr->list = NULL;
  obspam__index_free(&cr->fresh);
  obspam__implicit_purge(cr->im);
}

typedef struct fresh_walk {
  carrying *cr;
  int failed;
} fresh_walk;

/* A mailbox with state that the new tree may not declare: it may go on
   as an implicit one. */
static int fresh_from_old(int kind, const char *name, size_t len, void *ud) {
  fresh_walk *w = ud;

  if (kind == OBSPAM_MAILBOX && carry_fresh(w->cr, name, len) != 0)
    w->failed = 1;
  return w->failed;
}

/* For the walk of the old tree after a reload: the shared store, and
   the configuration that replaced the tree. */
typedef struct gone_walk {
  obspam__store *store;
  obspam__conf *next;
} gone_walk;

/* An object of the old tree that the new one has no namesake for, or
   has under another subscription (a shared store's keys carry it): the
   shared store deletes its keys. */
static void gone_one(obspam__obj *o, void *ud) {
  gone_walk *w = ud;
  const obspam__obj *now = obspam__conf_find(o->kind, o->name, o->len, w->next);
  const obspam__sub *was = obspam__owner(o), *is;

  if (now != NULL) {
    is = obspam__owner(now);
    if ((was == NULL) == (is == NULL) &&
        (was == NULL || strcmp(was->obj.name, is->obj.name) == 0))
      return;
  }
  w->store->ops->gone(w->store, o);
}

/* The state of every object that the new tree keeps is first shared with
   it by the local store, without the engine's lock, while decisions go
   on (carry_prepare); under the write lock, only the objects the new
   tree has no namesake for are resolved (implicit mailboxes, objects
   that go, and what decisions made meanwhile), and the trees are
   swapped; then, without the lock again, the states move to the new
   objects (carry_finish) before the old tree is freed. So the write
   lock is held for the changes, not for every object with state. */
int obspam__conf_replace(obspam_engine *e, obspam__conf *next) {
  const obspam__store_ops *local = e->local->ops;
  carrying cr;
  fresh_walk w = {&cr, 0};
  obspam__conf *old;
  obspam__store *gone = NULL;

  memset(&cr, 0, sizeof(cr));
  cr.next = next;
  cr.im = &e->imp;
  pthread_mutex_lock(&e->swap_lock);
  if (local->carry_prepare != NULL)
    local->carry_prepare(e->local, obspam__conf_find, next);
  pthread_rwlock_wrlock(&e->lock);
  old = e->conf;
  cr.cap = next->opt[OBSPAM_OPT_IMPLICIT_MAILBOXES];
  obspam__implicit_purge(&e->imp);
  (void)local->carry_pending(e->local, fresh_from_old, &w);
  if (w.failed || obspam__index_reserve_n(&e->imp.index, cr.fresh.n) != 0 ||
      e->store->ops->carry(e->store, successor, &cr) != OBSPAM_OK) {
    carry_undo(&cr);
    pthread_rwlock_unlock(&e->lock);
    if (local->carry_finish != NULL)
      local->carry_finish(e->local, 0);
    pthread_mutex_unlock(&e->swap_lock);
    return OBSPAM_ENOMEM;
  }
  carry_commit(&cr);
  /* The uri was checked by the parser: only memory can run out here, and
     then the store stays as it was. */
  if (next->store_uri != NULL) {
    if (obspam__store_switch(e, next->store_uri, next->store_prefix, &gone) ==
        OBSPAM_OK)
      e->store_from_config = 1;
  } else if (e->store_from_config) {
    (void)obspam__store_switch(e, NULL, NULL, &gone);
    e->store_from_config = 0;
  }
  e->conf = next;
  obspam__marks_seen(e);
  pthread_rwlock_unlock(&e->lock);
  obspam__store_free(gone);
  if (local->carry_finish != NULL)
    local->carry_finish(e->local, 1);
  /* A shared store keeps its counters by name: those of the objects that
     went are deleted there, in the background. The old tree is whole
     until it is freed below, and the swap lock keeps next in place. */
  pthread_rwlock_rdlock(&e->lock);
  if (e->store->ops->gone != NULL) {
    gone_walk gw = {e->store, next};
    int kind;

    for (kind = OBSPAM_SUBSCRIPTION; kind <= OBSPAM_MAILBOX; kind++)
      obspam__index_each(&old->tree.index[kind], gone_one, &gw);
  }
  pthread_rwlock_unlock(&e->lock);
  pthread_mutex_unlock(&e->swap_lock);
  /* The old objects hold no state any more: nothing to tell the store. */
  obspam__conf_free(old, NULL);
  return OBSPAM_OK;
}

/* A snapshot's mailbox record: it may need an implicit mailbox. */
static int fresh_from_saved(int kind, const char *name, size_t len, void *ud) {
  return kind == OBSPAM_MAILBOX ? carry_fresh(ud, name, len) : 0;
}

int obspam__load_install(obspam_engine *e, void *parsed, int64_t *newest) {
  carrying cr;

  memset(&cr, 0, sizeof(cr));
  cr.next = e->conf;
  cr.im = &e->imp;
  cr.cap = e->conf->opt[OBSPAM_OPT_IMPLICIT_MAILBOXES];
  obspam__implicit_purge(&e->imp);
  if (e->local->ops->load_each(e->local, parsed, fresh_from_saved, &cr) != 0 ||
      obspam__index_reserve_n(&e->imp.index, cr.fresh.n) != 0) {
    carry_undo(&cr);
    return OBSPAM_ENOMEM;
  }
  *newest = e->local->ops->load_install(e->local, parsed, successor, &cr);
  carry_commit(&cr);
  return OBSPAM_OK;
}

int obspam_set_option(obspam_engine *e, int option, int64_t value) {
  const char *why;

  if (e == NULL)
    return OBSPAM_EINVAL;
  why = obspam__opt_check(option, value);
  if (why != NULL) {
    int64_t min, max;

    if (obspam__opt_range(option, &min, &max))
      return obspam__fail(e, OBSPAM_EINVAL,
                          "option %d: %lld is out of range %lld..%lld", option,
                          (long long)value, (long long)min, (long long)max);
    return obspam__fail(e, OBSPAM_EINVAL, "unknown option %d", option);
  }
  pthread_rwlock_wrlock(&e->lock);
  e->conf->opt[option] = value;
  pthread_rwlock_unlock(&e->lock);
  return OBSPAM_OK;
}

int obspam_get_option(obspam_engine *e, int option, int64_t *value) {
  if (e == NULL)
    return OBSPAM_EINVAL;
  if (option < 1 || option > OBSPAM__OPT_MAX)
    return obspam__fail(e, OBSPAM_EINVAL, "unknown option %d", option);
  if (value == NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "get_option: value is NULL");
  pthread_rwlock_rdlock(&e->lock);
  *value = e->conf->opt[option];
  pthread_rwlock_unlock(&e->lock);
  return OBSPAM_OK;
}

/* ---- the engine ---------------------------------------------------------- */

int obspam_engine_new(obspam_engine **out) {
  obspam_engine *e;
  pthread_rwlockattr_t attr;

  if (out == NULL)
    return OBSPAM_EINVAL;
  *out = NULL;
  e = calloc(1, sizeof(*e));
  if (e == NULL)
    return OBSPAM_ENOMEM;
  e->conf = obspam__conf_new();
  e->local = e->store = obspam__mem_store_new();
  if (e->conf == NULL || e->local == NULL)
    goto nomem;
  /* Decisions never stop, so a writer (a reload, a panel's change) must
     not wait for a moment with no reader: prefer writers. */
  if (pthread_rwlockattr_init(&attr) != 0)
    goto nomem;
  pthread_rwlockattr_setkind_np(&attr,
                                PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  if (pthread_rwlock_init(&e->lock, &attr) != 0) {
    pthread_rwlockattr_destroy(&attr);
    goto nomem;
  }
  pthread_rwlockattr_destroy(&attr);
  if (pthread_mutex_init(&e->err_lock, NULL) != 0) {
    pthread_rwlock_destroy(&e->lock);
    goto nomem;
  }
  if (pthread_mutex_init(&e->swap_lock, NULL) != 0) {
    pthread_mutex_destroy(&e->err_lock);
    pthread_rwlock_destroy(&e->lock);
    goto nomem;
  }
  if (pthread_mutex_init(&e->async_lock, NULL) != 0 ||
      pthread_cond_init(&e->async_work, NULL) != 0 ||
      pthread_cond_init(&e->async_idle, NULL) != 0 ||
      obspam__implicit_init(&e->imp) != 0) {
    pthread_mutex_destroy(&e->swap_lock);
    pthread_mutex_destroy(&e->err_lock);
    pthread_rwlock_destroy(&e->lock);
    goto nomem;
  }
  *out = e;
  return OBSPAM_OK;
nomem:
  obspam__conf_free(e->conf, NULL);
  if (e->local != NULL)
    e->local->ops->destroy(e->local);
  free(e);
  return OBSPAM_ENOMEM;
}

void obspam_engine_free(obspam_engine *e) {
  if (e == NULL)
    return;
  /* Every batch queued is decided, and its done called, first. */
  obspam__async_stop(e);
  if (e->journal_free != NULL)
    e->journal_free(e);
  /* Only the local store forgets the objects: a shared store keeps its
     counters by name for the other servers, and for this one when it
     starts again. */
  obspam__conf_free(e->conf, e->local);
  /* The store drops the state of the implicit mailboxes, which must still
     be there; then they go. */
  if (e->store != e->local)
    e->store->ops->destroy(e->store);
  e->local->ops->destroy(e->local);
  obspam__implicit_free(&e->imp);
  pthread_rwlock_destroy(&e->lock);
  pthread_mutex_destroy(&e->swap_lock);
  pthread_mutex_destroy(&e->err_lock);
  pthread_mutex_destroy(&e->async_lock);
  pthread_cond_destroy(&e->async_work);
  pthread_cond_destroy(&e->async_idle);
  free(e);
}

const char *obspam_engine_errmsg(const obspam_engine *e) {
  return e != NULL ? e->errmsg : "no engine";
}

int obspam_engine_errmsg_r(const obspam_engine *e, char *buf, size_t size) {
  /* The lock is the engine's, not the caller's: taking it does not change
     what the const promises, the message. */
  pthread_mutex_t *lock;

  if (buf == NULL || size == 0)
    return OBSPAM_EINVAL;
  if (e == NULL) {
    snprintf(buf, size, "%s", "no engine");
    return OBSPAM_OK;
  }
  lock = (pthread_mutex_t *)&e->err_lock;
  pthread_mutex_lock(lock);
  snprintf(buf, size, "%s", e->errmsg);
  pthread_mutex_unlock(lock);
  return OBSPAM_OK;
}

int obspam__read_file(obspam_engine *e, const char *fn, const char *path,
                      int state, char **out, size_t *len) {
  const char *what;
  int err, rc = state ? obspam__file_read_regular(path, out, len, &what, &err)
                      : obspam__file_read(path, out, len, &what, &err);

  if (rc == OBSPAM_OK)
    return OBSPAM_OK;
  if (err == 0)
    return obspam__fail(e, rc, "%s%s: %s", fn, path, what);
  return obspam__fail(e, rc, "%s%s: %s: %s", fn, path, what, strerror(err));
}

/* ---- the shared store ---------------------------------------------------- */

int obspam__store_switch(obspam_engine *e, const char *uri, const char *prefix,
                         obspam__store **old) {
  obspam__store *cur = e->store, *next;

  *old = NULL;
  if (uri == NULL || uri[0] == '\0') {
    next = e->local;
  } else {
    if (cur->ops->same != NULL && cur->ops->same(cur, uri, prefix))
      return OBSPAM_OK;
    next = obspam__store_open(uri, prefix, e->local);
    if (next == NULL)
      return OBSPAM_ENOMEM;
  }
  e->store = next;
  __atomic_store_n(&e->shared, next != e->local, __ATOMIC_RELAXED);
  if (cur != e->local && cur != next)
    *old = cur;
  return OBSPAM_OK;
}

void obspam__store_free(obspam__store *old) {
  if (old != NULL)
    old->ops->destroy(old);
}

int obspam_set_store(obspam_engine *e, const char *uri, const char *prefix) {
  obspam__store *gone = NULL;
  const char *why;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (uri != NULL && uri[0] != '\0') {
    why = obspam__store_uri_check(uri);
    if (why != NULL)
      return obspam__fail(e, OBSPAM_EINVAL, "set_store: '%.200s': %s", uri,
                          why);
  }
  if (prefix != NULL && (why = obspam__store_prefix_check(prefix)) != NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "set_store: prefix '%.64s': %s",
                        prefix, why);
  /* The batches queued for the old store are decided there first. */
  obspam__async_drain(e);
  pthread_rwlock_wrlock(&e->lock);
  rc = obspam__store_switch(e, uri, prefix, &gone);
  if (rc == OBSPAM_OK)
    e->store_from_config = 0;
  pthread_rwlock_unlock(&e->lock);
  obspam__store_free(gone);
  if (rc != OBSPAM_OK)
    return obspam__fail(e, rc, "set_store: out of memory");
  return OBSPAM_OK;
}

/* Reads the store's status figures (backlog 0) or its backlog (1) under
   the engine's lock, zeros from a store that keeps none, and hands the
   first n of them to the caller's pointers that are not NULL. */
static int store_figures(obspam_engine *e, int backlog, int64_t *const *out,
                         int n) {
  int64_t v[6] = {0, 0, 0, 0, 0, 0};
  int i;

  if (e == NULL)
    return OBSPAM_EINVAL;
  pthread_rwlock_rdlock(&e->lock);
  if (!backlog && e->store->ops->status != NULL)
    e->store->ops->status(e->store, v);
  else if (backlog && e->store->ops->backlog != NULL)
    e->store->ops->backlog(e->store, v);
  pthread_rwlock_unlock(&e->lock);
  for (i = 0; i < n; i++)
    if (out[i] != NULL)
      *out[i] = v[i];
  return OBSPAM_OK;
}

int obspam_store_status(obspam_engine *e, int64_t *shared, int64_t *up,
                        int64_t *episodes, int64_t *fallback_decisions) {
  int64_t *const out[4] = {shared, up, episodes, fallback_decisions};

  return store_figures(e, 0, out, 4);
}

int obspam_store_backlog(obspam_engine *e, int64_t *ledger_pending,
                         int64_t *ledger_added, int64_t *ledger_dropped,
                         int64_t *keys_pending, int64_t *keys_deleted) {
  int64_t *const out[5] = {ledger_pending, ledger_added, ledger_dropped,
                           keys_pending, keys_deleted};

  return store_figures(e, 1, out, 5);
}

int obspam_implicit_status(obspam_engine *e, int64_t *count, int64_t *overflow,
                           int64_t *episodes) {
  int64_t n;

  if (e == NULL)
    return OBSPAM_EINVAL;
  pthread_rwlock_rdlock(&e->lock);
  n = obspam__implicit_count(&e->imp);
  obspam__implicit_lock(&e->imp);
  if (overflow != NULL)
    *overflow = e->imp.overflow;
  if (episodes != NULL)
    *episodes = e->imp.episodes;
  obspam__implicit_unlock(&e->imp);
  pthread_rwlock_unlock(&e->lock);
  if (count != NULL)
    *count = n;
  return OBSPAM_OK;
}
