/* SPDX-License-Identifier: MIT */
/* Stores opened from a URI: checking a URI, parsing a shared store's
   address, and opening the store a URI names. The engine and the
   configuration parser ask here, so neither knows which stores exist. */
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_uri.h"

static int parse_endpoint(const char *s, size_t len, obspam__endpoint *ep) {
  const char *colon;
  long port = 0;
  size_t hl, i;

  if (len == 0 || len >= sizeof(ep->host) + 8)
    return -1;
  colon = NULL;
  for (i = len; i > 0; i--)
    if (s[i - 1] == ':') {
      colon = s + i - 1;
      break;
    }
  if (colon == NULL || colon == s || colon + 1 == s + len ||
      (size_t)(s + len - colon - 1) > 5)
    return -1;
  for (i = (size_t)(colon + 1 - s); i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    port = port * 10 + (s[i] - '0');
  }
  if (port < 1 || port > 65535)
    return -1;
  hl = (size_t)(colon - s);
  if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
    s++;
    hl -= 2;
  }
  if (hl == 0 || hl >= sizeof(ep->host))
    return -1;
  for (i = 0; i < hl; i++)
    if ((unsigned char)s[i] <= ' ' || s[i] == '/' || s[i] == ',')
      return -1;
  memcpy(ep->host, s, hl);
  ep->host[hl] = '\0';
  ep->port = (int)port;
  return 0;
}

/* The "?pool=N" at the end of uri into p->pool, and the length of uri
   before it (the address) into *len. NULL, or what is wrong. */
static const char *parse_pool(const char *uri, size_t *len,
                              obspam__store_addr *p) {
  const char *q = strchr(uri, '?'), *d;

  p->pool = OBSPAM__POOL_DEFAULT;
  *len = strlen(uri);
  if (q == NULL)
    return NULL;
  *len = (size_t)(q - uri);
  if (strncmp(q, "?pool=", 6) != 0 || q[6] == '\0')
    return "the only parameter is ?pool=N (1 to 64 connections)";
  p->pool = 0;
  for (d = q + 6; *d != '\0'; d++) {
    if (*d < '0' || *d > '9' || p->pool > OBSPAM__POOL_MAX)
      return "the only parameter is ?pool=N (1 to 64 connections)";
    p->pool = p->pool * 10 + (*d - '0');
  }
  if (p->pool < 1 || p->pool > OBSPAM__POOL_MAX)
    return "the only parameter is ?pool=N (1 to 64 connections)";
  return NULL;
}

const char *obspam__store_addr_parse(const char *full, obspam__store_addr *p) {
  const char *s, *slash, *end, *why;
  char uri[OBSPAM__URI_MAX];
  size_t len;

  memset(p, 0, sizeof(*p));
  if (full == NULL || strlen(full) >= OBSPAM__URI_MAX)
    return "store address is too long";
  /* Redis Cluster would need the slot map, MOVED and ASK on every
     exchange, and a decision's keys in one slot per subscription; one
     master that Sentinel fails over gives the same guarantees (README,
     "Topology"), so a cluster URI is refused with the reason. */
  if (strncmp(full, "redis-cluster://", 16) == 0)
    return "Redis Cluster is not supported: name one master, "
           "redis://HOST:PORT[/DB], or its Sentinels, "
           "sentinel://HOST:PORT[,HOST:PORT...]/MASTER";
  if ((why = parse_pool(full, &len, p)) != NULL)
    return why;
  memcpy(uri, full, len);
  uri[len] = '\0';
  if (strncmp(uri, "redis://", 8) == 0) {
    s = uri + 8;
    slash = strchr(s, '/');
    end = slash != NULL ? slash : s + strlen(s);
    if (parse_endpoint(s, (size_t)(end - s), &p->ep[0]) != 0)
      return "expected redis://HOST:PORT[/DB]";
    p->n = 1;
    if (slash != NULL) {
      const char *d = slash + 1;

      if (*d == '\0')
        return "expected redis://HOST:PORT[/DB]";
      for (; *d != '\0'; d++) {
        if (*d < '0' || *d > '9' || p->db > 100000)
          return "the database is not a number";
        p->db = p->db * 10 + (*d - '0');
      }
    }
    return NULL;
  }
  if (strncmp(uri, "sentinel://", 11) == 0) {
    p->sentinel = 1;
    s = uri + 11;
    slash = strchr(s, '/');
    if (slash == NULL || slash[1] == '\0')
      return "expected sentinel://HOST:PORT[,HOST:PORT...]/MASTER";
    while (s < slash) {
      const char *comma = memchr(s, ',', (size_t)(slash - s));

      end = comma != NULL ? comma : slash;
      if (p->n == OBSPAM__SENTINELS_MAX)
        return "more than 8 sentinels";
      if (parse_endpoint(s, (size_t)(end - s), &p->ep[p->n]) != 0)
        return "expected sentinel://HOST:PORT[,HOST:PORT...]/MASTER";
      p->n++;
      s = end + 1;
    }
    if (p->n == 0 || strlen(slash + 1) >= sizeof(p->master))
      return "expected sentinel://HOST:PORT[,HOST:PORT...]/MASTER";
    for (s = slash + 1; *s != '\0'; s++)
      if ((unsigned char)*s <= ' ' || *s == '/' || *s == ',')
        return "bad master name";
    strcpy(p->master, slash + 1);
    return NULL;
  }
  return "expected redis://HOST:PORT[/DB] or "
         "sentinel://HOST:PORT[,HOST:PORT...]/MASTER";
}

const char *obspam__store_uri_check(const char *uri) {
  obspam__store_addr p;
  const char *why = obspam__store_addr_parse(uri, &p);

#ifdef OBSPAM_WITH_REDIS
  return why;
#else
  return why != NULL ? why : "this libobspam was built without Redis support";
#endif
}

const char *obspam__store_prefix_check(const char *prefix) {
  if (prefix[0] == '\0' || strlen(prefix) > OBSPAM__PREFIX_MAX ||
      strpbrk(prefix, " \t\r\n{}") != NULL)
    return "1 to 128 bytes, no blanks or braces";
  return NULL;
}

obspam__store *obspam__store_open(const char *uri, const char *prefix,
                                  obspam__store *local) {
#ifdef OBSPAM_WITH_REDIS
  return obspam__redis_store_new(uri, prefix, local);
#else
  (void)uri;
  (void)prefix;
  (void)local;
  return NULL;
#endif
}
