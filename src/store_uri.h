/* SPDX-License-Identifier: MIT */
/* The address of a shared store, parsed from its URI. */
#ifndef OBSPAM_STORE_URI_H
#define OBSPAM_STORE_URI_H

#define OBSPAM__URI_MAX 1024
#define OBSPAM__SENTINELS_MAX 8
/* Connections to Redis per engine: "?pool=N" at the end of the URI. */
#define OBSPAM__POOL_DEFAULT 4
#define OBSPAM__POOL_MAX 64

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
  int pool; /* connections per engine */
} obspam__store_addr;

/* Parses "redis://HOST:PORT[/DB]" or
   "sentinel://HOST:PORT[,HOST:PORT...]/MASTER", either followed by
   "?pool=N" (1 to POOL_MAX connections; POOL_DEFAULT without it), into p:
   NULL, or what is wrong in a few words. */
const char *obspam__store_addr_parse(const char *uri, obspam__store_addr *p);

#endif
