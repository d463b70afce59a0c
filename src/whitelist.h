/* SPDX-License-Identifier: MIT */
/* Sets of client networks, IPv4 and IPv6: the whitelist (trusted
   clients, never limited) and the local networks (whose unauthenticated
   mail is outgoing mail) are both one of these. */
#ifndef OBSPAM_WHITELIST_H
#define OBSPAM_WHITELIST_H

#include <stdint.h>

/* An address or network; IPv4 is held as ::ffff:a.b.c.d, so one
   comparison serves both families. */
typedef struct obspam__net {
  uint8_t addr[16];
  uint8_t prefix; /* 0..128, counted on the 128-bit form */
} obspam__net;

typedef struct obspam__whitelist {
  obspam__net *nets;
  uint32_t n, cap;
} obspam__whitelist;

/* Parses "addr" or "addr/prefix". Returns NULL or what is wrong. */
const char *obspam__net_parse(const char *text, obspam__net *out);
/* Parses a client address (no prefix). Returns 0 or -1. */
int obspam__addr_parse(const char *text, uint8_t out[16]);

int obspam__wl_contains(const obspam__whitelist *w, const uint8_t addr[16]);
/* Whether addr is in the local networks w, or, when w is empty, in the
   default ones: 127.0.0.0/8 and ::1. */
int obspam__local_contains(const obspam__whitelist *w, const uint8_t addr[16]);
/* OBSPAM_OK, OBSPAM_EEXIST or OBSPAM_ENOMEM. */
int obspam__wl_add(obspam__whitelist *w, const obspam__net *n);
/* OBSPAM_OK or OBSPAM_ENOTFOUND. */
int obspam__wl_remove(obspam__whitelist *w, const obspam__net *n);
void obspam__wl_free(obspam__whitelist *w);

#endif
