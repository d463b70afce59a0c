/* SPDX-License-Identifier: MIT */
/* The public functions that change the tree and the whitelist. Each checks
   its arguments before it takes the engine's lock, and changes nothing
   unless it succeeds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

static int tree_kind(int kind) {
  return kind >= OBSPAM_PLAN && kind <= OBSPAM_MAILBOX;
}

static int limit_kind(int kind) {
  return kind >= OBSPAM_SUBSCRIPTION && kind <= OBSPAM_MAILBOX;
}

/* Normalises the name of an object of kind for function fn. */
static int norm(obspam_engine *e, const char *fn, int kind, const char *name,
                obspam__name *out) {
  if (e == NULL)
    return OBSPAM_EINVAL;
  if (!tree_kind(kind))
    return obspam__bad_kind(e, fn, kind,
                            "a plan, subscription, domain or mailbox");
  return obspam__kind_name_norm(e, fn, kind, name, out);
}

/* Finds an object; the engine's lock must be held. */
static obspam__obj *find(obspam_engine *e, const char *fn, int kind,
                         const obspam__name *n) {
  obspam__obj *o = obspam__tree_find(&e->conf->tree, kind, n->s, n->len);

  if (o == NULL)
    obspam__fail(e, OBSPAM_ENOTFOUND, "%s: no %s '%s'", fn,
                 obspam_kind_name(kind), n->s);
  return o;
}

/* Declaring a mailbox that exists as an implicit one: that object, with
   its counters and history, becomes the declared mailbox. Under the write
   lock. OBSPAM_ENOTFOUND when there is no such implicit mailbox (or one
   whose state is gone, which is freed); OBSPAM_OK, OBSPAM_EEXIST or
   OBSPAM_ENOMEM otherwise. */
static int declare_implicit(obspam_engine *e, const obspam__name *n,
                            obspam__obj *domain) {
  obspam__tree *t = &e->conf->tree;
  obspam__imb *m;

  m = (obspam__imb *)obspam__index_find(&e->imp.index, n->s, n->len);
  if (m == NULL)
    return OBSPAM_ENOTFOUND;
  if (m->obj.hist == NULL) { /* expired: nothing to keep */
    obspam__implicit_drop(&e->imp, m);
    return OBSPAM_ENOTFOUND;
  }
  if (obspam__tree_find(t, OBSPAM_MAILBOX, n->s, n->len) != NULL)
    return OBSPAM_EEXIST;
  if (obspam__tree_reserve(t, OBSPAM_MAILBOX) != OBSPAM_OK)
    return OBSPAM_ENOMEM;
  obspam__implicit_take(&e->imp, m);
  return obspam__tree_adopt(t, &m->obj, domain); /* room is reserved */
}

int obspam_add(obspam_engine *e, int kind, const char *name,
               const char *parent) {
  obspam__name n, pn;
  obspam__obj *p = NULL, *o;
  int parent_kind, rc;

  rc = norm(e, "add", kind, name, &n);
  if (rc != OBSPAM_OK)
    return rc;
  parent_kind = kind - 1;
  if (kind == OBSPAM_MAILBOX) {
    /* The parent of a mailbox is the domain of its address. */
    const char *dom = n.s + n.at + 1;

    if (parent != NULL &&
        (obspam__name_norm(parent, OBSPAM__NAME_PLAIN, &pn) != NULL ||
         strcmp(pn.s, dom) != 0))
      return obspam__fail(e, OBSPAM_EINVAL,
                          "add: the parent of mailbox '%s' is its domain "
                          "'%s', not '%.64s'",
                          n.s, dom, parent);
    pn.len = n.len - n.at - 1;
    memcpy(pn.s, dom, pn.len + 1);
  } else if (parent == NULL) {
    if (kind == OBSPAM_DOMAIN)
      return obspam__fail(e, OBSPAM_EINVAL,
                          "add: domain '%s' needs a subscription", n.s);
  } else {
    if (kind == OBSPAM_PLAN)
      return obspam__fail(e, OBSPAM_EINVAL, "add: a plan has no parent");
    rc = norm(e, "add", parent_kind, parent, &pn);
    if (rc != OBSPAM_OK)
      return rc;
  }

  pthread_rwlock_wrlock(&e->lock);
  if (kind == OBSPAM_MAILBOX || parent != NULL) {
    p = find(e, "add", parent_kind, &pn);
    if (p == NULL) {
      pthread_rwlock_unlock(&e->lock);
      return OBSPAM_ENOTFOUND;
    }
  }
  if (kind == OBSPAM_MAILBOX)
    rc = declare_implicit(e, &n, p);
  else
    rc = OBSPAM_ENOTFOUND;
  if (rc == OBSPAM_ENOTFOUND)
    rc = obspam__tree_add(&e->conf->tree, kind, &n, p, &o);
  pthread_rwlock_unlock(&e->lock);
  if (rc == OBSPAM_EEXIST)
    return obspam__fail(e, rc, "add: %s '%s' exists already",
                        obspam_kind_name(kind), n.s);
  if (rc == OBSPAM_ENOMEM)
    return obspam__fail(e, rc, "add: out of memory");
  return rc;
}

/* Whether o is root or below it. */
static int under(const obspam__obj *o, const obspam__obj *root) {
  for (; o != NULL; o = o->parent)
    if (o == root)
      return 1;
  return 0;
}

/* Under the write lock: reserves what forgetting the subtree of root
   needs in store st, its implicit mailboxes included. They are linked
   under their domains for the time of the count only: no reader can see
   the tree meanwhile. */
static int reserve_with_implicit(obspam_engine *e, obspam__store *st,
                                 obspam__obj *root) {
  obspam__imb *m;
  int rc;

  for (m = e->imp.first; m != NULL; m = m->next)
    if (under(m->obj.parent, root)) {
      obspam__obj *o = &m->obj, *d = o->parent;

      o->prev = NULL;
      o->next = d->child;
      if (d->child != NULL)
        d->child->prev = o;
      d->child = o;
    }
  rc = st->ops->reserve(st, root);
  for (m = e->imp.first; m != NULL; m = m->next)
    if (under(m->obj.parent, root)) {
      obspam__obj *o = &m->obj;

      if (o->prev != NULL)
        o->prev->next = o->next;
      else
        o->parent->child = o->next;
      if (o->next != NULL)
        o->next->prev = o->prev;
      o->prev = o->next = NULL;
    }
  return rc;
}

/* Under the write lock, after reserve_with_implicit: the implicit
   mailboxes of the subtree of root go, with their state in store st
   (those whose state is gone too: their domain is going). */
static void forget_implicit(obspam_engine *e, obspam__store *st,
                            obspam__obj *root) {
  obspam__imb *m, *next;

  for (m = e->imp.first; m != NULL; m = next) {
    next = m->next;
    if (under(&m->obj, root)) {
      st->ops->forget(st, &m->obj);
      obspam__implicit_drop(&e->imp, m);
    }
  }
}

/* The names of the objects with counters that a removal forgets, for a
   shared store to delete their counters once the engine's lock is let go
   (store.h, forget_named): a subscription with 10,000 mailboxes is then
   one exchange per batch of objects made after the lock, not a round
   trip per object under the write lock, which stops every decision. The
   names and the sub names that make their keys are copied into one
   allocation, made before anything is removed. */
typedef struct doomed {
  obspam__named *v; /* NULL while counting */
  char *text;
  size_t n, bytes;
} doomed;

static void doom(doomed *d, const obspam__obj *o) {
  const obspam__sub *s = obspam__owner(o);
  const char *sub = s != NULL ? s->obj.name : "";
  size_t sl = strlen(sub);

  if (o->kind < OBSPAM_SUBSCRIPTION)
    return;
  if (d->v != NULL) {
    char *t = d->text + d->bytes;

    memcpy(t, sub, sl + 1);
    memcpy(t + sl + 1, o->name, (size_t)o->len + 1);
    d->v[d->n].kind = o->kind;
    d->v[d->n].sub = t;
    d->v[d->n].name = t + sl + 1;
    d->v[d->n].len = o->len;
  }
  d->n++;
  d->bytes += sl + 1 + (size_t)o->len + 1;
}

/* root and everything below it, declared or implicit. */
static void doom_all(obspam_engine *e, doomed *d, const obspam__obj *root) {
  const obspam__obj *sub, *dom, *mbx;
  obspam__imb *m;

  d->n = d->bytes = 0;
  doom(d, root);
  /* At most four levels: plan, subscription, domain, mailbox. */
  for (sub = root->child; sub != NULL; sub = sub->next) {
    doom(d, sub);
    for (dom = sub->child; dom != NULL; dom = dom->next) {
      doom(d, dom);
      for (mbx = dom->child; mbx != NULL; mbx = mbx->next)
        doom(d, mbx);
    }
  }
  if (root->kind != OBSPAM_MAILBOX)
    for (m = e->imp.first; m != NULL; m = m->next)
      if (under(m->obj.parent, root))
        doom(d, &m->obj);
}

/* Under the write lock: the names of what removing root forgets into d.
   OBSPAM_OK or OBSPAM_ENOMEM. */
static int doomed_names(obspam_engine *e, doomed *d, const obspam__obj *root) {
  size_t n;

  d->v = NULL;
  doom_all(e, d, root);
  n = d->n;
  if (n == 0)
    return OBSPAM_OK;
  if ((d->v = malloc(n * sizeof(*d->v) + d->bytes)) == NULL)
    return OBSPAM_ENOMEM;
  d->text = (char *)(d->v + n);
  doom_all(e, d, root);
  return OBSPAM_OK;
}

int obspam_remove(obspam_engine *e, int kind, const char *name) {
  obspam__name n;
  obspam__obj *o, *root = NULL;
  obspam__imb *m = NULL;
  obspam__store *st, *shared = NULL;
  doomed d = {NULL, NULL, 0, 0};
  int rc = norm(e, "remove", kind, name, &n);

  if (rc != OBSPAM_OK)
    return rc;
  pthread_rwlock_wrlock(&e->lock);
  st = e->store;
  o = obspam__tree_find(&e->conf->tree, kind, n.s, n.len);
  if (o != NULL)
    root = o;
  else if (kind == OBSPAM_MAILBOX &&
           (m = obspam__implicit_find(&e->imp, n.s, n.len)) != NULL)
    root = &m->obj;
  /* A shared store forgets the local counters here and deletes its own
     after the lock (forget_named), before this call returns. */
  if (root != NULL && st->ops->forget_named != NULL &&
      (rc = doomed_names(e, &d, root)) == OBSPAM_OK &&
      (shared = obspam__store_take(st)) != NULL)
    st = e->local;
  if (rc != OBSPAM_OK) {
    /* Out of memory for the names: nothing is removed. */
  } else if (o != NULL && kind == OBSPAM_MAILBOX) {
    /* A mailbox has nothing below it: no scan of the implicit ones. */
    rc = st->ops->reserve(st, o);
    if (rc == OBSPAM_OK)
      obspam__tree_remove(&e->conf->tree, o, obspam__store_forget, st);
  } else if (o != NULL) {
    rc = reserve_with_implicit(e, st, o);
    if (rc == OBSPAM_OK) {
      forget_implicit(e, st, o);
      obspam__tree_remove(&e->conf->tree, o, obspam__store_forget, st);
    }
  } else if (m != NULL) {
    /* An implicit mailbox is removed as a declared one is: its counters
       go (after a password change, say). */
    rc = st->ops->reserve(st, &m->obj);
    if (rc == OBSPAM_OK) {
      st->ops->forget(st, &m->obj);
      obspam__implicit_drop(&e->imp, m);
    }
  } else {
    rc = OBSPAM_ENOTFOUND;
    find(e, "remove", kind, &n); /* records the failure */
  }
  pthread_rwlock_unlock(&e->lock);
  if (shared != NULL) {
    if (rc == OBSPAM_OK)
      shared->ops->forget_named(shared, d.v, d.n);
    shared->ops->use(shared, -1);
  }
  free(d.v);
  if (rc == OBSPAM_ENOMEM)
    return obspam__fail(e, rc, "remove: out of memory");
  return rc;
}

/* Where a value of o, an object of t, lives: window w's limit of kind
   which (w -1: the recipients cap). Makes o's extra values when they are
   needed (NULL when memory ran out). */
static int64_t *value_of(obspam__tree *t, obspam__obj *o, int which, int w) {
  obspam__extra *x;

  if (w == OBSPAM__W_HOUR)
    return &o->own[OBSPAM__LIM(which)];
  if ((x = obspam__tree_extra(t, o)) == NULL)
    return NULL;
  return w < 0 ? &x->max_rcpt : &x->own[w == OBSPAM__W_DAY][OBSPAM__LIM(which)];
}

static int64_t *server_value(obspam__tree *t, int which, int w) {
  if (w == OBSPAM__W_HOUR)
    return &t->server[OBSPAM__LIM(which)];
  return w < 0 ? &t->server_extra.max_rcpt
               : &t->server_extra.own[w == OBSPAM__W_DAY][OBSPAM__LIM(which)];
}

/* Sets window w's limit of kind which (w -1: the recipients cap, which
   is not a limit kind's) of an object or the server; what is the
   function's name for errors. */
static int set_value(obspam_engine *e, const char *what, int kind,
                     const char *name, int which, int w, int64_t v) {
  obspam__name n;
  obspam__obj *o;
  int64_t *at;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (w >= 0 && (!limit_kind(which) || (limit_kind(kind) && which < kind)))
    return obspam__fail(e, OBSPAM_EINVAL, "%s: a %s has no %s limit", what,
                        obspam_kind_name(kind), obspam_kind_name(which));
  if (w < 0 && kind != OBSPAM_SERVER && !tree_kind(kind))
    return obspam__bad_kind(
        e, what, kind, "the server, a plan, subscription, domain or mailbox");
  if (v < OBSPAM_INHERIT || (kind == OBSPAM_SERVER && v == OBSPAM_INHERIT))
    return obspam__fail(
        e, OBSPAM_EINVAL, "%s: %lld is not a count%s", what, (long long)v,
        kind == OBSPAM_SERVER ? " or unlimited" : ", unlimited or inherit");
  if (kind == OBSPAM_SERVER) {
    if (name != NULL)
      return obspam__fail(e, OBSPAM_EINVAL, "%s: the server takes no name",
                          what);
    pthread_rwlock_wrlock(&e->lock);
    *server_value(&e->conf->tree, which, w) = v;
    pthread_rwlock_unlock(&e->lock);
    return OBSPAM_OK;
  }
  rc = norm(e, what, kind, name, &n);
  if (rc != OBSPAM_OK)
    return rc;
  pthread_rwlock_wrlock(&e->lock);
  o = find(e, what, kind, &n);
  rc = OBSPAM_ENOTFOUND;
  if (o != NULL && w != OBSPAM__W_HOUR && o->extra == NULL &&
      v == OBSPAM_INHERIT)
    rc = OBSPAM_OK; /* already so: nothing to allocate */
  else if (o != NULL && (at = value_of(&e->conf->tree, o, which, w)) == NULL)
    rc = obspam__fail(e, OBSPAM_ENOMEM, "%s: out of memory", what);
  else if (o != NULL) {
    *at = v;
    obspam__tree_extra_trim(&e->conf->tree, o);
    rc = OBSPAM_OK;
  }
  pthread_rwlock_unlock(&e->lock);
  return rc;
}

int obspam_set_limit(obspam_engine *e, int kind, const char *name, int which,
                     int64_t per_hour) {
  return set_value(e, "set_limit", kind, name, which, OBSPAM__W_HOUR, per_hour);
}

/* The index of a window given in seconds to function fn, or a negative
   error code. */
static int window_arg(obspam_engine *e, const char *fn, int64_t window) {
  int w = obspam__window_index(window);

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (w < 0)
    return obspam__fail(e, OBSPAM_EINVAL,
                        "%s: %lld is not a window (60, 3600 or 86400 seconds)",
                        fn, (long long)window);
  return w;
}

int obspam_set_window_limit(obspam_engine *e, int kind, const char *name,
                            int which, int64_t window, int64_t limit) {
  int w = window_arg(e, "set_window_limit", window);

  if (w < 0)
    return w;
  return set_value(e, "set_window_limit", kind, name, which, w, limit);
}

int obspam_set_max_recipients(obspam_engine *e, int kind, const char *name,
                              int64_t max) {
  return set_value(e, "set_max_recipients", kind, name, OBSPAM_MAILBOX, -1,
                   max);
}

/* The effective value of window w (-1: the recipients cap) of a
   subscription, domain or mailbox, declared or implicit. */
static int effective_value(obspam_engine *e, const char *what, int kind,
                           const char *name, int w, int64_t *out) {
  obspam__name n;
  obspam__obj *o;
  obspam__imb *held;
  int rc;

  if ((rc = obspam__counted_kind(e, what, kind, "an effective limit")) !=
      OBSPAM_OK)
    return rc;
  if (out == NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "%s: the result pointer is NULL",
                        what);
  rc = norm(e, what, kind, name, &n);
  if (rc != OBSPAM_OK)
    return rc;
  pthread_rwlock_rdlock(&e->lock);
  /* An implicit mailbox has the limit a declared one would inherit. */
  o = obspam__find_counted(e, kind, &n, &held);
  if (o == NULL)
    find(e, what, kind, &n); /* records the failure */
  else if (w < 0)
    *out = obspam__effective_cap(&e->conf->tree, o);
  else
    *out = obspam__effective_w(&e->conf->tree, o, w);
  if (held != NULL)
    obspam__implicit_unpin(&e->imp, held);
  pthread_rwlock_unlock(&e->lock);
  return o != NULL ? OBSPAM_OK : OBSPAM_ENOTFOUND;
}

int obspam_effective_limit(obspam_engine *e, int kind, const char *name,
                           int64_t *per_hour) {
  return effective_value(e, "effective_limit", kind, name, OBSPAM__W_HOUR,
                         per_hour);
}

int obspam_effective_window_limit(obspam_engine *e, int kind, const char *name,
                                  int64_t window, int64_t *limit) {
  int w = window_arg(e, "effective_window_limit", window);

  if (w < 0)
    return w;
  return effective_value(e, "effective_window_limit", kind, name, w, limit);
}

int obspam_effective_max_recipients(obspam_engine *e, int kind,
                                    const char *name, int64_t *max) {
  return effective_value(e, "effective_max_recipients", kind, name, -1, max);
}

int obspam_set_uid(obspam_engine *e, const char *subscription, int64_t uid) {
  obspam__name n;
  obspam__obj *o;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (uid < -1 || uid > OBSPAM__UID_MAX)
    return obspam__fail(e, OBSPAM_EINVAL,
                        "set_uid: %lld is not a uid (0 to 4294967294, or -1 "
                        "for none)",
                        (long long)uid);
  rc = norm(e, "set_uid", OBSPAM_SUBSCRIPTION, subscription, &n);
  if (rc != OBSPAM_OK)
    return rc;
  pthread_rwlock_wrlock(&e->lock);
  o = find(e, "set_uid", OBSPAM_SUBSCRIPTION, &n);
  rc = o != NULL ? obspam__tree_set_uid(&e->conf->tree, (obspam__sub *)o, uid)
                 : OBSPAM_ENOTFOUND;
  pthread_rwlock_unlock(&e->lock);
  if (rc == OBSPAM_EEXIST)
    return obspam__fail(e, rc,
                        "set_uid: uid %lld belongs to another "
                        "subscription",
                        (long long)uid);
  if (rc == OBSPAM_ENOMEM)
    return obspam__fail(e, rc, "set_uid: out of memory");
  return rc;
}

int obspam_set_scripts_allowed(obspam_engine *e, int kind, const char *name,
                               int allowed) {
  obspam__name n;
  obspam__obj *o;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (kind != OBSPAM_SERVER && kind != OBSPAM_PLAN &&
      kind != OBSPAM_SUBSCRIPTION)
    return obspam__fail(e, OBSPAM_EINVAL,
                        "set_scripts_allowed: only the "
                        "server, a plan or a subscription allows scripts");
  if (allowed != 0 && allowed != 1 &&
      (allowed != OBSPAM_INHERIT || kind == OBSPAM_SERVER))
    return obspam__fail(e, OBSPAM_EINVAL,
                        "set_scripts_allowed: %d is not 1, 0%s", allowed,
                        kind == OBSPAM_SERVER ? "" : " or inherit");
  if (kind == OBSPAM_SERVER) {
    if (name != NULL)
      return obspam__fail(e, OBSPAM_EINVAL,
                          "set_scripts_allowed: the server takes no name");
    pthread_rwlock_wrlock(&e->lock);
    e->conf->tree.server_scripts = allowed;
    pthread_rwlock_unlock(&e->lock);
    return OBSPAM_OK;
  }
  rc = norm(e, "set_scripts_allowed", kind, name, &n);
  if (rc != OBSPAM_OK)
    return rc;
  pthread_rwlock_wrlock(&e->lock);
  o = find(e, "set_scripts_allowed", kind, &n);
  if (o != NULL)
    *obspam__scripts_of(o) = allowed;
  pthread_rwlock_unlock(&e->lock);
  return o != NULL ? OBSPAM_OK : OBSPAM_ENOTFOUND;
}

/* The length of the UTF-8 character at s (of 2 to 4 bytes, no overlong
   form, no surrogate, at most U+10FFFF), or 0 when s starts none. */
static size_t utf8_char(const unsigned char *s) {
  size_t n, i;
  uint32_t c;

  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    n = 2, c = s[0] & 0x1fu;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    n = 3, c = s[0] & 0x0fu;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    n = 4, c = s[0] & 0x07u;
  else
    return 0;
  for (i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    c = c << 6 | (s[i] & 0x3fu);
  }
  if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10ffff ||
      (c >= 0xd800 && c <= 0xdfff))
    return 0;
  return n;
}

const char *obspam__contact_why(const char *addr) {
  obspam__name n;
  const char *why = obspam__name_norm(addr, OBSPAM__NAME_MAILBOX, &n), *at;
  const unsigned char *s;

  if (why != NULL)
    return why;
  at = strchr(addr, '@');
  for (s = (const unsigned char *)addr; *s != '\0';) {
    size_t len = 1;

    /* sendmail -t reads the To: header as a list of addresses: these
       bytes would add a recipient (',' ';' ':' of a group), name one
       inside '<' '>', quote or comment one, or escape a byte. */
    if (strchr(",;:<>()[]\\\"", *s) != NULL)
      return "a contact is one address, without , ; : < > ( ) [ ] \\ or "
             "\"";
    if (*s >= 0x80 && (len = utf8_char(s)) == 0)
      return "an address must be UTF-8";
    if ((const char *)s > at && *s < 0x80 && !(*s >= 'a' && *s <= 'z') &&
        !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') && *s != '-' &&
        *s != '.')
      return "a domain holds letters, digits, '-' and '.' only";
    s += len;
  }
  return NULL;
}

int obspam_set_contact(obspam_engine *e, const char *subscription,
                       const char *email) {
  obspam__name n;
  obspam__obj *o;
  char *copy = NULL, *old = NULL;
  const char *why;
  int rc;

  rc = norm(e, "set_contact", OBSPAM_SUBSCRIPTION, subscription, &n);
  if (rc != OBSPAM_OK)
    return rc;
  if (email != NULL && email[0] != '\0') {
    why = obspam__contact_why(email);
    if (why != NULL)
      return obspam__fail(e, OBSPAM_EINVAL, "set_contact: address '%.64s': %s",
                          email, why);
    copy = strdup(email);
    if (copy == NULL)
      return obspam__fail(e, OBSPAM_ENOMEM, "set_contact: out of memory");
  }
  pthread_rwlock_wrlock(&e->lock);
  o = find(e, "set_contact", OBSPAM_SUBSCRIPTION, &n);
  if (o != NULL) {
    old = ((obspam__sub *)o)->contact;
    ((obspam__sub *)o)->contact = copy;
    copy = NULL;
  }
  pthread_rwlock_unlock(&e->lock);
  free(old);
  free(copy);
  return o != NULL ? OBSPAM_OK : OBSPAM_ENOTFOUND;
}

/* Adds or removes a network of the whitelist or of the local networks:
   one set of networks each, written and matched the same way. */
static int net_change(obspam_engine *e, const char *fn, const char *cidr,
                      int local, int add) {
  obspam__net net;
  obspam__whitelist *set;
  const char *why;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  why = obspam__net_parse(cidr, &net);
  if (why != NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "%s: '%.64s': %s", fn,
                        cidr ? cidr : "(null)", why);
  pthread_rwlock_wrlock(&e->lock);
  set = local ? &e->conf->local : &e->conf->wl;
  rc = add ? obspam__wl_add(set, &net) : obspam__wl_remove(set, &net);
  pthread_rwlock_unlock(&e->lock);
  if (rc == OBSPAM_EEXIST)
    return obspam__fail(e, rc, "%s: '%s' is %s already", fn, cidr,
                        local ? "a local network" : "whitelisted");
  if (rc == OBSPAM_ENOTFOUND)
    return obspam__fail(e, rc, "%s: '%s' is not %s", fn, cidr,
                        local ? "a local network" : "whitelisted");
  if (rc == OBSPAM_ENOMEM)
    return obspam__fail(e, rc, "%s: out of memory", fn);
  return rc;
}

int obspam_whitelist_add(obspam_engine *e, const char *cidr) {
  return net_change(e, "whitelist_add", cidr, 0, 1);
}

int obspam_whitelist_remove(obspam_engine *e, const char *cidr) {
  return net_change(e, "whitelist_remove", cidr, 0, 0);
}

int obspam_local_network_add(obspam_engine *e, const char *cidr) {
  return net_change(e, "local_network_add", cidr, 1, 1);
}

int obspam_local_network_remove(obspam_engine *e, const char *cidr) {
  return net_change(e, "local_network_remove", cidr, 1, 0);
}
