/* SPDX-License-Identifier: MIT */
/* Connections counted per client, so that one client cannot take every
   connection the policy server allows (--max-connections-per-client).

   A client is a peer key: the address of a TCP peer (an IPv4-mapped IPv6
   address counts as the IPv4 one), or the uid of a Unix-socket peer (from
   SO_PEERCRED), since every local process connects from the same
   nowhere. The table holds the keys that have connections open, and
   nothing else: a key leaves it with its last connection. */
#ifndef OBSPAM_POLICYD_PEERS_H
#define OBSPAM_POLICYD_PEERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct peer_key {
  uint8_t kind;      /* PEER_IPV4, PEER_IPV6 or PEER_UID */
  uint8_t bytes[16]; /* the address, or the uid (4 bytes, host order) */
} peer_key;

enum { PEER_IPV4 = 4, PEER_IPV6 = 6, PEER_UID = 1 };

/* The key of the peer of an accepted socket, whose address accept gave
   (ss, len). Returns 0, or -1 when it cannot be told (an unnamed peer of
   a Unix socket without credentials, an unknown family): such peers are
   not counted. */
int peer_key_of(int fd, const struct sockaddr_storage *ss, socklen_t len,
                peer_key *k);

/* The key as text for a log line: "203.0.113.7", "2001:db8::1" or
   "uid 110". */
void peer_key_text(const peer_key *k, char *buf, size_t size);

typedef struct peer peer;
typedef struct peer_table peer_table;

peer_table *peers_new(void);
void peers_free(peer_table *t);

/* Counts one more connection of k, unless it has max open already.
   Returns its entry (hand it to peers_release when the connection
   closes); NULL with *at_limit 1 when k has max, or *at_limit 0 when out
   of memory. */
peer *peers_take(peer_table *t, const peer_key *k, long max, int *at_limit);
void peers_release(peer_table *t, peer *p);

/* The client of an entry as text, as peer_key_text writes its key. */
void peers_name(const peer *p, char *buf, size_t size);

/* How many connections an entry has open now, and how many keys have any
   (for tests and log lines). */
long peers_count(const peer *p);
size_t peers_keys(const peer_table *t);

#endif
