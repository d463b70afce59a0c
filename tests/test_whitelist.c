/* SPDX-License-Identifier: MIT */
/* The whitelist: parsing, duplicates, removal and matching in decisions. */
#include <arpa/inet.h>
#include <string.h>

#include "testutil.h"
#include "whitelist.h"

static obspam_engine *e;

/* One subscription with one mailbox, every limit 0 so that anything that is
   not exempt is refused (and a refusal would show in the stats). */
TU_ENGINE_SETUP(tu_fixture("whitelist.conf"))

TestSuite(whitelist, .init = setup, .fini = teardown);

static obspam_verdict from(const char *client, int64_t t, int line) {
  obspam_message m = tu_msg(0, "info@example.com", "info@example.com", client,
                            1, -1, NULL, NULL, t);
  return tu_decide_msg(e, &m, line);
}
#define FROM(client) from((client), T0, __LINE__)

/* Whether a client address is exempt. Uses an unlimited mailbox, so a
   non-exempt message is accepted; the caller checks the counters. */
static int exempt(const char *client, int line) {
  obspam_verdict v = from(client, T0, line);
  cr_assert(v.action == OBSPAM_EXEMPT || v.action == OBSPAM_ACCEPT,
            "line %d: %s gave action %d", line, client, v.action);
  if (v.action == OBSPAM_EXEMPT) {
    cr_assert_eq(v.kind, -1, "line %d: EXEMPT with kind %d", line, v.kind);
    cr_assert_str_eq(v.object, "", "line %d: EXEMPT with object \"%s\"", line,
                     v.object);
    cr_assert_eq(v.limit, 0);
    cr_assert_eq(v.count, 0);
    cr_assert_eq(v.retry_after, 0);
  }
  return v.action == OBSPAM_EXEMPT;
}
static void expect_exempt(const char *client, int want, int line) {
  cr_assert_eq(exempt(client, line), want,
               "line %d: %s should %sbe whitelisted", line,
               client ? client : "(null)", want ? "" : "not ");
}
/* Asserts of each client address given, in order, that it is exempt
   (want 1) or not (want 0). */
static void expect_each(const char *const *clients, size_t n, int want,
                        int line) {
  for (size_t i = 0; i < n; i++)
    expect_exempt(clients[i], want, line);
}
#define EXPECT_EACH(want, ...)                                                 \
  do {                                                                         \
    static const char *const clients_[] = {__VA_ARGS__};                       \
    expect_each(clients_, sizeof clients_ / sizeof clients_[0], (want),        \
                __LINE__);                                                     \
  } while (0)
#define EXPECT_EXEMPT(...) EXPECT_EACH(1, __VA_ARGS__)
#define EXPECT_NOT_EXEMPT(...) EXPECT_EACH(0, __VA_ARGS__)

Test(whitelist, valid_entries) {
  static const char *const good[] = {
      "192.0.2.0/24",    "10.0.0.1",      "10.1.2.3/32",
      "0.0.0.0/0",       "172.16.0.0/12", "10.0.0.0/7",
      "2001:db8::/32",   "::1",           "::/0",
      "2001:db8::1/128", "fe80::/10",     "2001:db8:8000::/33",
      "255.255.255.255", "100.64.0.0/10", "2001:DB8:1::/48",
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    OK(obspam_whitelist_add(e, good[i]));
}

Test(whitelist, host_bits_set) {
  static const char *const bad[] = {
      "192.0.2.1/24",       "192.0.2.128/24", "11.0.0.0/7", "1.0.0.0/0",
      "10.0.0.1/31",        "2001:db8::1/32", "::1/0",      "::1/127",
      "2001:db8:4000::/33", "fe80::1/64",     "0.0.0.1/0",  "128.0.0.0/0",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = obspam_whitelist_add(e, bad[i]);
    cr_assert_eq(rc, OBSPAM_EINVAL, "whitelist_add(\"%s\") returned %d", bad[i],
                 rc);
  }
}

Test(whitelist, malformed) {
  static const char *const bad[] = {
      "1.2.3",
      "1.2.3.4/33",
      "::1/129",
      "1.2.3.4/",
      "/8",
      "1.2.3.0/024",
      "1.2.3.4/024",
      "1.0.0.0/+8",
      "1.2.3.4/+8",
      "1.0.0.0/08",
      "0.0.0.0/00",
      "1.2.3.4/-1",
      "fe80::1%eth0",
      " 1.2.3.4",
      "1.2.3.4 ",
      "1.2.3.4/ 8",
      "",
      "1.2.3.4.5",
      "256.1.1.1",
      "1.2.3.-4",
      "abc",
      "1.2.3.4/8x",
      "1.2.3.4/32/32",
      "2001:db8:::1",
      ":::",
      "2001:db8::/",
      "2001:db8::/x",
      "1.2.3.4/0x8",
      "1.2.3.4\n",
      "/",
      "1.2.3.4//32",
      "2001:db8::g",
      "::1/1280",
      "1.2.3.4/4294967328",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = obspam_whitelist_add(e, bad[i]);
    cr_assert_eq(rc, OBSPAM_EINVAL, "whitelist_add(\"%s\") returned %d", bad[i],
                 rc);
    rc = obspam_whitelist_remove(e, bad[i]);
    cr_assert_eq(rc, OBSPAM_EINVAL, "whitelist_remove(\"%s\") returned %d",
                 bad[i], rc);
  }
  RC(obspam_whitelist_add(e, NULL), OBSPAM_EINVAL);
  RC(obspam_whitelist_remove(e, NULL), OBSPAM_EINVAL);
  const char *m = obspam_engine_errmsg(e);
  cr_assert(m[0] != '\0', "no errmsg after a bad entry");
}

/* A refused entry whitelists nothing. */
Test(whitelist, refused_entries_whitelist_nothing) {
  RC(obspam_whitelist_add(e, "192.0.2.1/24"), OBSPAM_EINVAL);
  RC(obspam_whitelist_add(e, "192.0.2.1/33"), OBSPAM_EINVAL);
  RC(obspam_whitelist_add(e, "1.0.0.0/+0"), OBSPAM_EINVAL);
  EXPECT_NOT_EXEMPT("192.0.2.1", "192.0.2.0", "1.0.0.1");
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 3, 0);
}

Test(whitelist, duplicates) {
  OK(obspam_whitelist_add(e, "192.0.2.0/24"));
  RC(obspam_whitelist_add(e, "192.0.2.0/24"), OBSPAM_EEXIST);
  OK(obspam_whitelist_add(e, "10.0.0.1"));
  /* The same network written differently. */
  RC(obspam_whitelist_add(e, "10.0.0.1/32"), OBSPAM_EEXIST);
  RC(obspam_whitelist_add(e, "10.0.0.1"), OBSPAM_EEXIST);
  OK(obspam_whitelist_add(e, "2001:db8::/32"));
  RC(obspam_whitelist_add(e, "2001:0db8:0000::/32"), OBSPAM_EEXIST);
  RC(obspam_whitelist_add(e, "2001:DB8::/32"), OBSPAM_EEXIST);
  OK(obspam_whitelist_add(e, "::1"));
  RC(obspam_whitelist_add(e, "::1/128"), OBSPAM_EEXIST);
  RC(obspam_whitelist_add(e, "0:0:0:0:0:0:0:1"), OBSPAM_EEXIST);
  /* Same address, other prefix: another network. */
  OK(obspam_whitelist_add(e, "192.0.2.0/25"));
  OK(obspam_whitelist_add(e, "2001:db8::/33"));
  const char *m = obspam_engine_errmsg(e);
  cr_assert(m[0] != '\0', "no errmsg after EEXIST");
}

Test(whitelist, remove) {
  RC(obspam_whitelist_remove(e, "192.0.2.0/24"), OBSPAM_ENOTFOUND);
  OK(obspam_whitelist_add(e, "192.0.2.0/24"));
  OK(obspam_whitelist_add(e, "2001:db8::/32"));
  EXPECT_EXEMPT("192.0.2.7", "2001:db8::7");
  /* Another prefix of the same address is another entry. */
  RC(obspam_whitelist_remove(e, "192.0.2.0/25"), OBSPAM_ENOTFOUND);
  RC(obspam_whitelist_remove(e, "192.0.0.0/16"), OBSPAM_ENOTFOUND);
  RC(obspam_whitelist_remove(e, "192.0.2.7"), OBSPAM_ENOTFOUND);
  EXPECT_EXEMPT("192.0.2.7");
  OK(obspam_whitelist_remove(e, "192.0.2.0/24"));
  EXPECT_NOT_EXEMPT("192.0.2.7");
  EXPECT_EXEMPT("2001:db8::7");
  RC(obspam_whitelist_remove(e, "192.0.2.0/24"), OBSPAM_ENOTFOUND);
  /* Removal matches the parsed network, not the text. */
  OK(obspam_whitelist_remove(e, "2001:0DB8::/32"));
  EXPECT_NOT_EXEMPT("2001:db8::7");
  OK(obspam_whitelist_add(e, "10.0.0.1"));
  OK(obspam_whitelist_remove(e, "10.0.0.1/32"));
  EXPECT_NOT_EXEMPT("10.0.0.1");
  /* It can be added again. */
  OK(obspam_whitelist_add(e, "192.0.2.0/24"));
  EXPECT_EXEMPT("192.0.2.7");
}

/* A whitelisted client is EXEMPT even from a limit of 0, with kind -1,
   object "", zeros, and nothing counted or refused. */
Test(whitelist, exempt_verdict_and_nothing_counted) {
  OK(obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_MAILBOX, 0));
  OK(obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_DOMAIN, 0));
  OK(obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_SUBSCRIPTION, 0));
  OK(obspam_whitelist_add(e, "192.0.2.0/24"));
  obspam_verdict v = FROM("192.0.2.7");
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  /* Scripts and unauthenticated mail too, even with scripts forbidden. */
  OK(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, 0));
  obspam_message m = tu_msg(OBSPAM_MSG_SCRIPT, NULL, NULL, "192.0.2.8", 5, 1001,
                            "example.com", NULL, T0);
  v = DECIDE(e, &m);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  m = tu_msg(0, NULL, "info@example.com", "192.0.2.255", 5, -1, NULL, NULL, T0);
  v = DECIDE(e, &m);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  /* A sender that belongs to nobody is exempt too (rule 2 comes first). */
  m = tu_msg(0, NULL, "x@nowhere.test", "192.0.2.9", 5, -1, NULL, NULL, T0);
  v = DECIDE(e, &m);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0);
  cr_assert_eq(s.count, 0);
  cr_assert_eq(s.refused, 0);
  cr_assert_eq(s.refused_total, 0);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.com", T0, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0, 0, 0);
  /* From elsewhere it is refused (limit 0). */
  v = FROM("192.0.3.7");
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme", 0, 0, -1);
}

Test(whitelist, ipv4_boundaries) {
  OK(obspam_whitelist_add(e, "192.0.2.0/24"));
  OK(obspam_whitelist_add(e, "10.0.0.0/7"));
  OK(obspam_whitelist_add(e, "172.16.5.4"));
  EXPECT_EXEMPT("192.0.2.0", "192.0.2.255");
  EXPECT_NOT_EXEMPT("192.0.3.0", "192.0.1.255");
  EXPECT_EXEMPT("10.0.0.0", "11.255.255.255");
  EXPECT_NOT_EXEMPT("12.0.0.0", "9.255.255.255");
  EXPECT_EXEMPT("172.16.5.4");
  EXPECT_NOT_EXEMPT("172.16.5.5", "172.16.5.3");
  /* Not exempt: 6 messages counted, 1 each. */
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 6, 0);
}

Test(whitelist, ipv6_boundaries) {
  OK(obspam_whitelist_add(e, "2001:db8::/32"));
  OK(obspam_whitelist_add(e, "2001:db8:8000::/33"));
  OK(obspam_whitelist_add(e, "fd00::1"));
  OK(obspam_whitelist_add(e, "2001:db9:8000::/33"));
  EXPECT_EXEMPT("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
                "2001:DB8::1");
  EXPECT_NOT_EXEMPT("2001:db9::1", "2001:db7:ffff::1");
  EXPECT_EXEMPT("fd00::1", "fd00:0:0:0:0:0:0:1");
  EXPECT_NOT_EXEMPT("fd00::2");
  EXPECT_EXEMPT("2001:db9:8000::1", "2001:db9:ffff::1");
  EXPECT_NOT_EXEMPT("2001:db9:7fff:ffff::1");
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 4, 0);
}

Test(whitelist, slash_zero) {
  OK(obspam_whitelist_add(e, "0.0.0.0/0"));
  EXPECT_EXEMPT("1.2.3.4", "255.255.255.255", "0.0.0.0", "::ffff:8.8.8.8");
  /* An IPv4 entry does not match native IPv6 addresses. */
  EXPECT_NOT_EXEMPT("2001:db8::1");
  OK(obspam_whitelist_remove(e, "0.0.0.0/0"));
  OK(obspam_whitelist_add(e, "::/0"));
  EXPECT_EXEMPT("2001:db8::1", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 1, 0);
}

Test(whitelist, ipv4_mapped_client) {
  OK(obspam_whitelist_add(e, "192.0.2.0/24"));
  EXPECT_EXEMPT("::ffff:192.0.2.7", "::FFFF:192.0.2.200", "::ffff:c000:0207");
  EXPECT_NOT_EXEMPT("::ffff:192.0.3.7");
  /* An IPv4-compatible (not mapped) or NAT64 address is another address. */
  EXPECT_NOT_EXEMPT("64:ff9b::192.0.2.7");
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 2, 0);
}

Test(whitelist, localhost_not_whitelisted_by_default) {
  obspam_verdict v = FROM("127.0.0.1");
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 0, 0);
  v = FROM("::1");
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 1, 0);
  v = FROM(NULL);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 2, 0);
  v = FROM("");
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com",
                 OBSPAM_UNLIMITED, 3, 0);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 4, 0);
}

/* A local submission (no client address) is never whitelisted, even by
   0.0.0.0/0 and ::/0. */
Test(whitelist, local_submission_not_matched) {
  OK(obspam_whitelist_add(e, "0.0.0.0/0"));
  OK(obspam_whitelist_add(e, "::/0"));
  EXPECT_NOT_EXEMPT(NULL, "");
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 2, 0);
}

Test(whitelist, malformed_client_address) {
  static const char *const bad[] = {
      "1.2.3",     "not-an-ip",    "192.0.2.0/24", " 1.2.3.4",  "1.2.3.4 ",
      "256.0.0.1", "2001:db8:::1", "localhost",    "1.2.3.4.5",
  };
  OK(obspam_whitelist_add(e, "0.0.0.0/0"));
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    obspam_message m = tu_msg(0, "info@example.com", "info@example.com", bad[i],
                              1, -1, NULL, NULL, T0);
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    int rc = obspam_decide(e, &m, &v);
    cr_assert_eq(rc, OBSPAM_EINVAL, "client \"%s\": decide returned %d", bad[i],
                 rc);
  }
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 0, 0);
}

/* When protection is disabled, a malformed client address does not matter:
   the disabled switch short-circuits first. */
Test(whitelist, malformed_client_address_disabled) {
  OK(obspam_set_option(e, OBSPAM_OPT_ENABLED, 0));
  obspam_message m = tu_msg(0, "info@example.com", "info@example.com",
                            "not-an-ip", 1, -1, NULL, NULL, T0);
  obspam_verdict v = DECIDE(e, &m);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_ACCEPT);
}

/* The whitelist keeps working with many entries. */
Test(whitelist, many_entries) {
  char buf[64];
  for (int i = 0; i < 256; i++) {
    snprintf(buf, sizeof buf, "10.%d.0.0/16", i);
    OK(obspam_whitelist_add(e, buf));
    snprintf(buf, sizeof buf, "2001:db8:%x::/48", i);
    OK(obspam_whitelist_add(e, buf));
  }
  EXPECT_EXEMPT("10.0.0.1", "10.200.255.255", "2001:db8:ff:1::1");
  EXPECT_NOT_EXEMPT("2001:db8:100::1", "11.0.0.1");
  for (int i = 0; i < 256; i += 2) {
    snprintf(buf, sizeof buf, "10.%d.0.0/16", i);
    OK(obspam_whitelist_remove(e, buf));
  }
  EXPECT_NOT_EXEMPT("10.0.0.1");
  EXPECT_EXEMPT("10.1.0.1");
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 3, 0);
}

/* ---- local networks: the same set of networks, another use -------------- */

/* Whether unauthenticated mail from client, with a hosted sender, is
   counted: charged to the sender (ACCEPT) or not (UNKNOWN). */
static int counted(const char *client, int line) {
  obspam_message m =
      tu_msg(0, NULL, "info@example.com", client, 1, -1, NULL, NULL, T0);
  obspam_verdict v = tu_decide_msg(e, &m, line);
  cr_assert(v.action == OBSPAM_ACCEPT || v.action == OBSPAM_UNKNOWN,
            "line %d: %s gave action %d", line, client, v.action);
  return v.action == OBSPAM_ACCEPT;
}
#define EXPECT_COUNTED(client)                                                 \
  cr_assert(counted((client), __LINE__), "%s is not local", (client))
#define EXPECT_NOT_COUNTED(client)                                             \
  cr_assert(!counted((client), __LINE__), "%s is local", (client))

/* Written, checked and matched as whitelist entries are, with their own
   messages. */
Test(whitelist, local_networks_add_and_remove) {
  EXPECT_COUNTED("127.0.0.1");
  EXPECT_COUNTED("::1");
  EXPECT_NOT_COUNTED("10.0.5.1");
  OK(obspam_local_network_add(e, "10.0.5.0/24"));
  EXPECT_COUNTED("10.0.5.1");
  EXPECT_COUNTED("::ffff:10.0.5.255");
  EXPECT_NOT_COUNTED("10.0.6.1");
  /* Once one is given, the defaults are not local any more. */
  EXPECT_NOT_COUNTED("127.0.0.1");
  EXPECT_NOT_COUNTED("::1");
  RC(obspam_local_network_add(e, "10.0.5.0/24"), OBSPAM_EEXIST);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "local_network_add: '10.0.5.0/24' is a local network "
                   "already");
  RC(obspam_local_network_add(e, "10.0.5.1/24"), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "local_network_add: '10.0.5.1/24': address has bits set "
                   "beyond the prefix length");
  RC(obspam_local_network_add(e, "localhost"), OBSPAM_EINVAL);
  RC(obspam_local_network_add(e, NULL), OBSPAM_EINVAL);
  RC(obspam_local_network_add(NULL, "10.0.0.0/8"), OBSPAM_EINVAL);
  RC(obspam_local_network_remove(e, "10.0.6.0/24"), OBSPAM_ENOTFOUND);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "local_network_remove: '10.0.6.0/24' is not a local "
                   "network");
  RC(obspam_local_network_remove(NULL, "10.0.5.0/24"), OBSPAM_EINVAL);
  /* The whitelist is another set: removing there finds nothing. */
  RC(obspam_whitelist_remove(e, "10.0.5.0/24"), OBSPAM_ENOTFOUND);
  OK(obspam_local_network_remove(e, "10.0.5.0/24"));
  EXPECT_NOT_COUNTED("10.0.5.1");
  EXPECT_COUNTED("127.0.0.1");
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 5, 0);
}

/* A local network that is also whitelisted: the whitelist comes first. */
Test(whitelist, local_network_and_whitelist) {
  OK(obspam_local_network_add(e, "192.0.2.0/24"));
  OK(obspam_whitelist_add(e, "192.0.2.128/25"));
  EXPECT_COUNTED("192.0.2.1");
  obspam_message m =
      tu_msg(0, NULL, "info@example.com", "192.0.2.200", 1, -1, NULL, NULL, T0);
  obspam_verdict v = DECIDE(e, &m);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0, 1, 0);
}

/* The model of a client address: what inet_pton makes of it, IPv4 as
   ::ffff:a.b.c.d. */
static int addr_model(const char *text, uint8_t out[16]) {
  struct in_addr v4;

  if (inet_pton(AF_INET, text, &v4) == 1) {
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &v4, 4);
    return 0;
  }
  return inet_pton(AF_INET6, text, out) == 1 ? 0 : -1;
}

static void expect_addr_as_model(const char *text) {
  uint8_t got[16], want[16];
  int rc = obspam__addr_parse(text, got), wrc = addr_model(text, want);

  cr_assert_eq(rc, wrc, "'%s': %d, inet_pton says %d", text, rc, wrc);
  if (rc == 0)
    cr_assert_arr_eq(got, want, 16, "'%s': another address", text);
}

/* The parser of client addresses (its own IPv4 path, inet_pton for the
   rest) accepts exactly what inet_pton accepts, with the same bytes: the
   edge cases, then random texts over the characters that matter. */
Test(whitelist, addr_parse_as_inet_pton) {
  static const char *const texts[] = {
      "0.0.0.0",      "255.255.255.255", "198.51.100.1",
      "1.2.3.4",      "256.1.1.1",       "1.2.3.256",
      "1.2.3",        "1.2.3.4.",        "1.2.3.4.5",
      ".1.2.3",       "1..2.3",          "01.2.3.4",
      "1.2.3.04",     "0.0.0.00",        "1.2.3.4 ",
      " 1.2.3.4",     "1.2.3.4x",        "",
      "::1",          "::ffff:1.2.3.4",  "2001:db8::1",
      "1.2.3.-4",     "+1.2.3.4",        "999.1.1.1",
      "1.2.3.2555",   "10.0.0.1\n",      "1e1.2.3.4",
      "0x1.2.3.4",    "10.20.30.400",    "255.255.255.2550",
      "9.99.199.255", "1.22.255.0",      "00.1.2.3",
      "1.2.3.4/",     "1.2.3.4:25",      "1.2.3.0"};
  char text[24];
  uint64_t x = 0x9E3779B97F4A7C15ull;
  size_t i;
  int k, n;

  for (i = 0; i < sizeof texts / sizeof texts[0]; i++)
    expect_addr_as_model(texts[i]);
  for (i = 0; i < 200000; i++) {
    /* Mostly digits and dots, so that many texts are close to a quad. */
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    n = (int)(x % 17);
    for (k = 0; k < n; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      text[k] = "0123456789012345....:a"[x % 22];
    }
    text[n] = '\0';
    expect_addr_as_model(text);
  }
}
