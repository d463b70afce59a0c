/* SPDX-License-Identifier: MIT */
/* See peers.h. A chained hash table of the keys with connections open;
   it doubles when it holds more keys than buckets, and an entry is freed
   with its key's last connection. */
#include "peers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

struct peer {
  struct peer *next;
  peer_key key;
  uint64_t hash;
  long count;
};

struct peer_table {
  peer **buckets;
  size_t nbuckets; /* a power of two */
  size_t nkeys;
};

int peer_key_of(int fd, const struct sockaddr_storage *ss, socklen_t len,
                peer_key *k) {
  memset(k, 0, sizeof(*k));
  if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    k->kind = PEER_IPV4;
    memcpy(k->bytes, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    return 0;
  }
  if (ss->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

    /* One client on a dual-stack socket is one client. */
    if (IN6_IS_ADDR_V4MAPPED(a)) {
      k->kind = PEER_IPV4;
      memcpy(k->bytes, a->s6_addr + 12, 4);
    } else {
      k->kind = PEER_IPV6;
      memcpy(k->bytes, a->s6_addr, 16);
    }
    return 0;
  }
  if (ss->ss_family == AF_UNIX) {
    struct ucred cred;
    socklen_t clen = sizeof(cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 ||
        clen < sizeof(cred))
      return -1;
    k->kind = PEER_UID;
    memcpy(k->bytes, &cred.uid, sizeof(cred.uid));
    return 0;
  }
  return -1;
}

void peer_key_text(const peer_key *k, char *buf, size_t size) {
  char ip[INET6_ADDRSTRLEN];
  uint32_t uid;

  switch (k->kind) {
  case PEER_IPV4:
    inet_ntop(AF_INET, k->bytes, ip, sizeof(ip));
    snprintf(buf, size, "%s", ip);
    break;
  case PEER_IPV6:
    inet_ntop(AF_INET6, k->bytes, ip, sizeof(ip));
    snprintf(buf, size, "%s", ip);
    break;
  case PEER_UID:
    memcpy(&uid, k->bytes, sizeof(uid));
    snprintf(buf, size, "uid %lu", (unsigned long)uid);
    break;
  default:
    snprintf(buf, size, "?");
  }
}

static uint64_t key_hash(const peer_key *k) {
  uint64_t h = 14695981039346656037ull;
  size_t i;

  h = (h ^ k->kind) * 1099511628211ull;
  for (i = 0; i < sizeof(k->bytes); i++)
    h = (h ^ k->bytes[i]) * 1099511628211ull;
  return h;
}

peer_table *peers_new(void) {
  peer_table *t = calloc(1, sizeof(*t));

  if (t == NULL)
    return NULL;
  t->nbuckets = 1024;
  t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
  if (t->buckets == NULL) {
    free(t);
    return NULL;
  }
  return t;
}

/* Every peer of t in one list, for a caller that frees or replaces the
   buckets next (they still point into the list). */
static peer *all_peers(const peer_table *t) {
  peer *all = NULL, *p, *next;
  size_t i;

  for (i = 0; i < t->nbuckets; i++)
    for (p = t->buckets[i]; p != NULL; p = next) {
      next = p->next;
      p->next = all;
      all = p;
    }
  return all;
}

void peers_free(peer_table *t) {
  peer *p, *next;

  if (t == NULL)
    return;
  for (p = all_peers(t); p != NULL; p = next) {
    next = p->next;
    free(p);
  }
  free(t->buckets);
  free(t);
}

/* Doubles the buckets; staying as it is when memory is short only makes
   the chains longer. */
static void grow(peer_table *t) {
  size_t n = t->nbuckets * 2;
  peer **b = calloc(n, sizeof(*b)), *p, *next;

  if (b == NULL)
    return;
  for (p = all_peers(t); p != NULL; p = next) {
    next = p->next;
    p->next = b[p->hash & (n - 1)];
    b[p->hash & (n - 1)] = p;
  }
  free(t->buckets);
  t->buckets = b;
  t->nbuckets = n;
}

peer *peers_take(peer_table *t, const peer_key *k, long max, int *at_limit) {
  uint64_t h = key_hash(k);
  peer **slot = &t->buckets[h & (t->nbuckets - 1)], *p;

  *at_limit = 0;
  for (p = *slot; p != NULL; p = p->next)
    if (p->hash == h && memcmp(&p->key, k, sizeof(*k)) == 0)
      break;
  if (p != NULL) {
    if (p->count >= max) {
      *at_limit = 1;
      return NULL;
    }
    p->count++;
    return p;
  }
  if (max < 1) {
    *at_limit = 1;
    return NULL;
  }
  p = malloc(sizeof(*p));
  if (p == NULL)
    return NULL;
  p->key = *k;
  p->hash = h;
  p->count = 1;
  p->next = *slot;
  *slot = p;
  if (++t->nkeys > t->nbuckets)
    grow(t);
  return p;
}

void peers_release(peer_table *t, peer *p) {
  peer **slot;

  if (p == NULL || --p->count > 0)
    return;
  for (slot = &t->buckets[p->hash & (t->nbuckets - 1)]; *slot != p;
       slot = &(*slot)->next)
    ;
  *slot = p->next;
  free(p);
  t->nkeys--;
}

void peers_name(const peer *p, char *buf, size_t size) {
  peer_key_text(&p->key, buf, size);
}

long peers_count(const peer *p) { return p != NULL ? p->count : 0; }

size_t peers_keys(const peer_table *t) { return t->nkeys; }
