/* SPDX-License-Identifier: MIT */
/* The address of a shared store, parsed from its URI. */
#ifndef OBSPAM_STORE_URI_H
#define OBSPAM_STORE_URI_H

#define OBSPAM__URI_MAX 1024
#define OBSPAM__SENTINELS_MAX 8

typedef struct obspam__endpoint {
  char host[256];
  int port;
} obspam__endpoint;

typedef struct obspam__store_addr {
  int sentinel;
  int n;
  obspam__endpoint ep[OBSPAM__SENTINELS_MAX];
  long db;
  char master[128];
} obspam__store_addr;

/* Parses "redis://HOST:PORT[/DB]" or
   "sentinel://HOST:PORT[,HOST:PORT...]/MASTER" into p: NULL, or what is
   wrong in a few words. */
const char *obspam__store_addr_parse(const char *uri, obspam__store_addr *p);

#endif
