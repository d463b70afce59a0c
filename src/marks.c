/* SPDX-License-Identifier: MIT */
/* Forwarding addresses and mailing lists (marks.h). */
#include "marks.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char *obspam__forward_norm(const char *in, obspam__name *out,
                                 size_t *domain_at) {
  const char *why;

  if (in != NULL && in[0] == '@') {
    /* A catch-all: the domain must be a valid domain name, and the key
       keeps its '@' so that it can never be taken for an address. */
    why = obspam__name_norm(in + 1, OBSPAM__NAME_PLAIN, out);
    if (why != NULL)
      return why;
    if (out->len + 1 > OBSPAM_NAME_MAX)
      return "name is longer than 320 bytes";
    memmove(out->s + 1, out->s, out->len + 1);
    out->s[0] = '@';
    out->len++;
    out->at = 0;
    *domain_at = 1;
    return NULL;
  }
  why = obspam__name_norm(in, OBSPAM__NAME_MAILBOX, out);
  if (why == NULL)
    *domain_at = out->at + 1;
  return why;
}

int obspam__mark_add(obspam__index *x, const char *name, size_t len,
                     uint32_t flag) {
  obspam__mark *k;

  if (obspam__index_find(x, name, len) != NULL)
    return OBSPAM_EEXIST;
  if (obspam__index_reserve(x) != 0 ||
      (k = (obspam__mark *)obspam__obj_new(sizeof(*k), 0, name, len)) == NULL)
    return OBSPAM_ENOMEM;
  k->flag = flag;
  obspam__index_put(x, &k->obj);
  return OBSPAM_OK;
}

int obspam__mark_remove(obspam__index *x, const char *name, size_t len) {
  obspam__obj *o = obspam__index_find(x, name, len);

  if (o == NULL)
    return OBSPAM_ENOTFOUND;
  obspam__index_del(x, o);
  free(o); /* the obspam__mark it starts */
  return OBSPAM_OK;
}

static void free_one(obspam__obj *o, void *ud) {
  (void)ud;
  free(o);
}

void obspam__marks_free(obspam__marks *m) {
  obspam__index_each(&m->fwd, free_one, NULL);
  obspam__index_free(&m->fwd);
  obspam__index_each(&m->list, free_one, NULL);
  obspam__index_free(&m->list);
}

uint32_t obspam__forward_find(const obspam__marks *m, const obspam__tree *t,
                              const obspam__name *n, obspam__name *out) {
  const obspam__mark *k;
  size_t dlen;

  if (n->at >= n->len || m->fwd.n == 0)
    return 0;
  k = (const obspam__mark *)obspam__index_find(&m->fwd, n->s, n->len);
  if (k != NULL) {
    memcpy(out, n, offsetof(obspam__name, s) + n->len + 1);
    return k->flag;
  }
  /* "user+ext@domain" that is no forward of its own is user@domain's
     mail, as Postfix with recipient_delimiter = + delivers or forwards it
     (virtual(5): the address, then without its extension, then the
     catch-all): that forward, or that mailbox's, which no catch-all
     takes. */
  {
    const char *plus = memchr(n->s, '+', n->at);

    if (plus != NULL && plus != n->s) {
      size_t user = (size_t)(plus - n->s);

      memcpy(out->s, n->s, user);
      memcpy(out->s + user, n->s + n->at, n->len - n->at + 1);
      out->len = user + n->len - n->at;
      out->at = user;
      k = (const obspam__mark *)obspam__index_find(&m->fwd, out->s, out->len);
      if (k != NULL)
        return k->flag;
      if (obspam__tree_find(t, OBSPAM_MAILBOX, out->s, out->len) != NULL)
        return 0;
    }
  }
  /* A catch-all forwards only what no mailbox receives: "@domain" is
     looked up in place of the local part. */
  if (obspam__tree_find(t, OBSPAM_MAILBOX, n->s, n->len) != NULL)
    return 0;
  dlen = n->len - n->at;
  k = (const obspam__mark *)obspam__index_find(&m->fwd, n->s + n->at, dlen);
  if (k == NULL)
    return 0;
  out->len = dlen - 1;
  out->at = out->len;
  memcpy(out->s, n->s + n->at + 1, dlen);
  return k->flag;
}

#define BOUNCES "-bounces"
#define BOUNCES_LEN (sizeof(BOUNCES) - 1)

int obspam__list_find(const obspam__marks *m, const obspam__name *n) {
  char key[OBSPAM_NAME_MAX + 1];
  const char *p, *local_end = n->s + n->at;
  size_t dlen = n->len - n->at;

  if (n->at >= n->len || m->list.n == 0)
    return 0;
  if (obspam__index_find(&m->list, n->s, n->len) != NULL)
    return 1;
  /* Each "-bounces" that ends the local part or comes before its "+tag"
     may be the list's bounce address: the list is what comes before it.
     A list's own name may hold "-bounces", so every one is tried. */
  for (p = n->s;
       (p = memmem(p, (size_t)(local_end - p), BOUNCES, BOUNCES_LEN)) != NULL;
       p++) {
    const char *after = p + BOUNCES_LEN;
    size_t base = (size_t)(p - n->s);

    if (base == 0 || (after != local_end && *after != '+'))
      continue;
    memcpy(key, n->s, base);
    memcpy(key + base, local_end, dlen);
    if (obspam__index_find(&m->list, key, base + dlen) != NULL)
      return 1;
  }
  return 0;
}
