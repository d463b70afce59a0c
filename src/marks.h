/* SPDX-License-Identifier: MIT */
/* The addresses that mark a message (SPEC.md section 2): forwarding
   addresses, whose mail is charged as forwards, and mailing lists, whose
   posts are list deliveries. Each set is an index of names; what a name
   means is told by the rules below, shared by the C API, the
   configuration file and every adapter that asks. */
#ifndef OBSPAM_MARKS_H
#define OBSPAM_MARKS_H

#include <stdint.h>

#include "index.h"
#include "names.h"
#include "tree.h"

/* A forward (flag OBSPAM_MSG_FORWARD_LOCAL or _REMOTE) or a list (flag
   OBSPAM_MSG_MAILING_LIST). The name follows the structure. */
typedef struct obspam__mark {
  obspam__obj obj; /* only name and len are used: the index's key */
  uint32_t flag;
} obspam__mark;

typedef struct obspam__marks {
  /* Forwards by address ("info@example.com") or, for a catch-all, by
     "@example.com". */
  obspam__index fwd;
  obspam__index list; /* lists by posting address */
} obspam__marks;

/* Normalises the address of a forward: "local@domain", or "@domain" for
   a catch-all (*domain_at: where the domain starts in out->s). Returns
   NULL or why it is not one. */
const char *obspam__forward_norm(const char *in, obspam__name *out,
                                 size_t *domain_at);

/* Adds name (normalised) with flag to x: OBSPAM_OK, OBSPAM_EEXIST (x is
   unchanged) or OBSPAM_ENOMEM. */
int obspam__mark_add(obspam__index *x, const char *name, size_t len,
                     uint32_t flag);
/* Removes name: OBSPAM_OK or OBSPAM_ENOTFOUND. */
int obspam__mark_remove(obspam__index *x, const char *name, size_t len);
void obspam__marks_free(obspam__marks *m);

/* The forward a message to the normalised recipient n makes: its flag
   (0: none), and in out the name charged for it: the address itself, or
   the address without its "+extension" when that one is the forward, or
   the domain of a catch-all. A catch-all takes the recipients of its
   domain that are neither forwards of their own nor mailboxes declared
   in t (the mailboxes that exist), with or without their extension. */
uint32_t obspam__forward_find(const obspam__marks *m, const obspam__tree *t,
                              const obspam__name *n, obspam__name *out);

/* Whether the normalised envelope sender n is a declared list's address
   or its -bounces form, with or without a +tag ("news@d",
   "news-bounces@d", "news-bounces+x=y@d"). */
int obspam__list_find(const obspam__marks *m, const obspam__name *n);

#endif
