/* SPDX-License-Identifier: MIT */
/* obspam-policyd's count of connections per client
   (examples/policyd/peers.c): keys of TCP and Unix-socket peers, the
   limit, and a table that grows and empties. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "peers.h"

static peer_key v4(const char *ip) {
  struct sockaddr_storage ss;
  struct sockaddr_in *a = (struct sockaddr_in *)&ss;
  peer_key k;

  memset(&ss, 0, sizeof(ss));
  a->sin_family = AF_INET;
  a->sin_port = htons(40000);
  cr_assert_eq(inet_pton(AF_INET, ip, &a->sin_addr), 1);
  cr_assert_eq(peer_key_of(-1, &ss, sizeof(*a), &k), 0);
  return k;
}

static peer_key v6(const char *ip, unsigned port) {
  struct sockaddr_storage ss;
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
  peer_key k;

  memset(&ss, 0, sizeof(ss));
  a->sin6_family = AF_INET6;
  a->sin6_port = htons((uint16_t)port);
  cr_assert_eq(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
  cr_assert_eq(peer_key_of(-1, &ss, sizeof(*a), &k), 0);
  return k;
}

static const char *text(const peer_key *k) {
  static char buf[64];

  peer_key_text(k, buf, sizeof(buf));
  return buf;
}

Test(peers, keys_of_addresses) {
  peer_key a = v4("203.0.113.7"), b = v6("::ffff:203.0.113.7", 1),
           c = v6("2001:db8::1", 2), d = v6("2001:db8::1", 3);

  cr_expect_str_eq(text(&a), "203.0.113.7");
  /* A mapped address is the IPv4 client; the port is not the client. */
  cr_expect_eq(memcmp(&a, &b, sizeof(a)), 0);
  cr_expect_str_eq(text(&c), "2001:db8::1");
  cr_expect_eq(memcmp(&c, &d, sizeof(c)), 0);
  cr_expect_neq(memcmp(&a, &c, sizeof(a)), 0);
}

Test(peers, key_of_a_unix_peer_is_its_uid) {
  struct sockaddr_storage ss;
  int sv[2];
  peer_key k;
  char want[32];

  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  memset(&ss, 0, sizeof(ss));
  ss.ss_family = AF_UNIX;
  cr_assert_eq(peer_key_of(sv[0], &ss, sizeof(sa_family_t), &k), 0);
  cr_expect_eq(k.kind, PEER_UID);
  snprintf(want, sizeof(want), "uid %lu", (unsigned long)geteuid());
  cr_expect_str_eq(text(&k), want);
  close(sv[0]);
  close(sv[1]);
  /* An unknown family is not counted. */
  ss.ss_family = AF_UNSPEC;
  cr_expect_eq(peer_key_of(-1, &ss, sizeof(ss), &k), -1);
}

Test(peers, limit_per_key) {
  peer_table *t = peers_new();
  peer_key a = v4("192.0.2.1"), b = v4("192.0.2.2");
  peer *pa[3], *pb;
  int at_limit = -1, i;

  cr_assert_not_null(t);
  for (i = 0; i < 3; i++) {
    pa[i] = peers_take(t, &a, 3, &at_limit);
    cr_assert_not_null(pa[i], "connection %d", i);
  }
  cr_expect_eq(peers_count(pa[0]), 3);
  cr_expect_null(peers_take(t, &a, 3, &at_limit));
  cr_expect_eq(at_limit, 1);
  /* Another client is not affected. */
  pb = peers_take(t, &b, 3, &at_limit);
  cr_assert_not_null(pb);
  cr_expect_eq(peers_keys(t), 2);
  /* A closed connection makes room for one. */
  peers_release(t, pa[2]);
  cr_expect_eq(peers_count(pa[0]), 2);
  pa[2] = peers_take(t, &a, 3, &at_limit);
  cr_expect_not_null(pa[2]);
  for (i = 0; i < 3; i++)
    peers_release(t, pa[i]);
  cr_expect_eq(peers_keys(t), 1);
  peers_release(t, pb);
  cr_expect_eq(peers_keys(t), 0);
  peers_free(t);
}

Test(peers, many_keys_grow_and_empty) {
  peer_table *t = peers_new();
  static peer *taken[20000][2];
  int i, j, at_limit;

  cr_assert_not_null(t);
  for (i = 0; i < 20000; i++) {
    char ip[64];
    peer_key k;

    snprintf(ip, sizeof(ip), "2001:db8::%x:%x", i >> 8, i & 0xff);
    k = v6(ip, 1);
    for (j = 0; j < 2; j++) {
      taken[i][j] = peers_take(t, &k, 2, &at_limit);
      cr_assert_not_null(taken[i][j], "key %d, connection %d", i, j);
    }
    cr_assert_null(peers_take(t, &k, 2, &at_limit), "key %d: a third", i);
  }
  cr_expect_eq(peers_keys(t), 20000);
  for (i = 0; i < 20000; i++)
    for (j = 0; j < 2; j++)
      peers_release(t, taken[i][j]);
  cr_expect_eq(peers_keys(t), 0);
  peers_free(t);
}
