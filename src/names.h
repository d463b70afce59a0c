/* SPDX-License-Identifier: MIT */
/* Validation and normalisation of names and addresses. */
#ifndef OBSPAM_NAMES_H
#define OBSPAM_NAMES_H

#include <stddef.h>

#include "obspam.h"

/* A buffer that holds any valid name and its NUL. */
typedef struct obspam__name {
  size_t len;
  size_t at; /* offset of the '@' in a mailbox, else len */
  char s[OBSPAM_NAME_MAX + 1];
} obspam__name;

enum {
  OBSPAM__NAME_ANY = 0,    /* a mailbox or a plain name: used for senders */
  OBSPAM__NAME_PLAIN = 1,  /* a plan, subscription or domain: no '@' */
  OBSPAM__NAME_MAILBOX = 2 /* local@domain */
};

/* Copies in, in lower case, into out in one pass. Returns NULL, or why the
   text is not a valid name of that shape: NULL, empty, longer than
   OBSPAM_NAME_MAX, holding a blank or a control character, or (for a
   mailbox) not exactly one '@' between a non-empty local part and domain.
   With OBSPAM__NAME_ANY the text is checked as a mailbox when it holds an
   '@' and as a plain name otherwise. */
const char *obspam__name_norm(const char *in, int shape, obspam__name *out);

/* Rewrites n, a name obspam__name_norm took with OBSPAM__NAME_ANY, into
   the envelope address an MTA makes of it before it looks it up or sends
   it on (Postfix's trivial-rewrite(8), whose defaults swap_bangpath and
   allow_percent_hack are on): without an '@', a bang path "site!user"
   becomes "user@site" (at its first '!') or else "user%site" becomes
   "user@site" (at its last '%'); one dot that ends an address's domain
   goes ("user@site." -> "user@site"). A sender or forward written so is
   the same mailbox to the MTA, and must be to the limits. A rewrite that
   would leave an empty part is not made. */
void obspam__name_canon(obspam__name *n);

#endif
