/* SPDX-License-Identifier: MIT */
/* obspam-milter's parsing (examples/milter/submission.c): the local
   client, pickup's Received: header, PHP's X-PHP-Originating-Script:
   header, virtual host patterns and envelope addresses. */
#include <criterion/criterion.h>
#include <string.h>

#include "submission.h"

/* ---- the local client -----------------------------------------------------
 */

Test(local_client, postfix_cleanup_stand_in_is_local) {
  /* What cleanup(8) sends for sendmail(1)/pickup mail. */
  cr_expect_eq(sub_is_local_client("127.0.0.1", 0), 1);
  cr_expect_eq(sub_is_local_client("::1", 0), 1);
  cr_expect_eq(sub_is_local_client("::ffff:127.0.0.1", 0), 1);
}

Test(local_client, tcp_clients_are_not_local) {
  /* A webmail on the same host talks SMTP from a real port. */
  cr_expect_eq(sub_is_local_client("127.0.0.1", 41234), 0);
  cr_expect_eq(sub_is_local_client("::1", 25), 0);
  cr_expect_eq(sub_is_local_client("192.0.2.7", 0), 0);
  cr_expect_eq(sub_is_local_client("192.0.2.7", 5555), 0);
  cr_expect_eq(sub_is_local_client("2001:db8::1", 0), 0);
  /* An unknown port: only the address tells, and it is not missing. */
  cr_expect_eq(sub_is_local_client("127.0.0.1", -1), 0);
}

Test(local_client, no_address_is_local) {
  cr_expect_eq(sub_is_local_client(NULL, -1), 1);
  cr_expect_eq(sub_is_local_client("", -1), 1);
  cr_expect_eq(sub_is_local_client("unknown", 0), 1);
  cr_expect_eq(sub_is_local_client("localhost", 25), 1);
}

/* ---- Sendmail's forms of {client_addr} ------------------------------------
 */

static const char *client(const char *in, size_t size) {
  static char out[64];

  memset(out, 'x', sizeof(out));
  sub_client_address(in, out, size);
  return out;
}

/* Addresses as the milter gets them, the room given, and what is kept;
   in groups, one for each test below. */
enum { SENDMAIL, POSTFIX, HALF };
static const struct {
  int group;
  const char *in;
  size_t size;
  const char *out;
} clients[] = {
    {SENDMAIL, "IPv6:2001:db8::1", 64, "2001:db8::1"},
    {SENDMAIL, "ipv6:2001:db8::1", 64, "2001:db8::1"},
    {SENDMAIL, "[203.0.113.7]", 64, "203.0.113.7"},
    {SENDMAIL, "[IPv6:2001:db8::1]", 64, "2001:db8::1"},
    {SENDMAIL, "[::ffff:192.0.2.1]", 64, "::ffff:192.0.2.1"},
    {POSTFIX, "203.0.113.7", 64, "203.0.113.7"},
    {POSTFIX, "2001:db8::1", 64, "2001:db8::1"},
    {POSTFIX, "unknown", 64, "unknown"},
    {POSTFIX, "", 64, ""},
    {POSTFIX, NULL, 64, ""},
    /* No closing bracket, or a lone one: copied as sent, so that the
       library refuses it as no address rather than reading a part. */
    {HALF, "[203.0.113.7", 64, "[203.0.113.7"},
    {HALF, "203.0.113.7]", 64, "203.0.113.7]"},
    {HALF, "[]", 64, ""},
    {HALF, "IPv6:", 64, ""},
};

static void expect_clients(int group) {
  size_t i;

  for (i = 0; i < sizeof(clients) / sizeof(clients[0]); i++)
    if (clients[i].group == group)
      cr_expect_str_eq(client(clients[i].in, clients[i].size), clients[i].out,
                       "%s", clients[i].in ? clients[i].in : "NULL");
}

Test(client_address, sendmail_forms_unwrapped) { expect_clients(SENDMAIL); }
Test(client_address, postfix_forms_kept) { expect_clients(POSTFIX); }
Test(client_address, half_a_literal_is_not_one) { expect_clients(HALF); }

Test(client_address, cut_to_fit) {
  cr_expect_str_eq(client("[IPv6:2001:db8::1]", 5), "2001");
  cr_expect_str_eq(client("IPv6:2001:db8::1", 1), "");
}

/* ---- the X-Obspam-Pickup: header --------------------------------------- */

Test(pickup_marker, what_the_header_checks_rule_writes) {
  char qid[32];

  cr_expect_eq(
      sub_pickup_marker("uid=10001 id=4TqR2d0K1Zz9sGh", qid, sizeof(qid)),
      10001);
  cr_expect_str_eq(qid, "4TqR2d0K1Zz9sGh");
  cr_expect_eq(sub_pickup_marker("uid=0 id=76425A84914", qid, sizeof(qid)), 0);
  cr_expect_str_eq(qid, "76425A84914");
  /* Blanks around the value. */
  cr_expect_eq(sub_pickup_marker("  uid=33 id=ABC \r\n", qid, sizeof(qid)), 33);
  cr_expect_str_eq(qid, "ABC");
  cr_expect_eq(sub_pickup_marker("uid=4294967295 id=Z", qid, sizeof(qid)),
               4294967295LL);
}

Test(pickup_marker, other_forms_give_no_uid) {
  static const char *const bad[] = {NULL,
                                    "",
                                    "uid=1",
                                    "uid=1 id=",
                                    "uid= id=A",
                                    "uid=-1 id=A",
                                    "uid=1  id=A",
                                    "id=A uid=1",
                                    "uid=1 id=A;B",
                                    "uid=1 id=A B",
                                    "uid=1 id=../x",
                                    "uid=4294967296 id=A",
                                    "UID=1 id=A"};
  char qid[8];
  size_t i;

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    cr_expect_eq(sub_pickup_marker(bad[i], qid, sizeof(qid)), -1, "%s",
                 bad[i] ? bad[i] : "NULL");
  /* A queue ID that does not fit is refused, not cut. */
  cr_expect_eq(sub_pickup_marker("uid=1 id=ABCDEFG", qid, sizeof(qid)), 1);
  cr_expect_eq(sub_pickup_marker("uid=1 id=ABCDEFGH", qid, sizeof(qid)), -1);
  cr_expect_eq(sub_pickup_marker("uid=1 id=A", qid, 0), -1);
}

/* ---- X-PHP-Originating-Script: --------------------------------------------
 */

Test(php, uid_and_file) {
  const char *f = NULL;
  size_t n = 0;

  cr_expect_eq(sub_php_script("10001:contact.php", &f, &n), 10001);
  cr_expect_eq(n, strlen("contact.php"));
  cr_expect_eq(strncmp(f, "contact.php", n), 0);

  cr_expect_eq(sub_php_script("  33:/var/www/vhosts/example.com/httpdocs/"
                              "a:b.php \r\n",
                              &f, &n),
               33);
  cr_expect_eq(n, strlen("/var/www/vhosts/example.com/httpdocs/a:b.php"));
  cr_expect_eq(strncmp(f, "/var/www/vhosts/example.com/httpdocs/a:b.php", n),
               0);

  cr_expect_eq(sub_php_script("0: x.php", &f, &n), 0);
  cr_expect_eq(n, 5u);
}

Test(php, malformed) {
  const char *f;
  size_t n;

  cr_expect_eq(sub_php_script(NULL, &f, &n), -1);
  cr_expect_eq(sub_php_script("", &f, &n), -1);
  cr_expect_eq(sub_php_script("contact.php", &f, &n), -1);
  cr_expect_eq(sub_php_script(":contact.php", &f, &n), -1);
  cr_expect_eq(sub_php_script("33:", &f, &n), -1);
  cr_expect_eq(sub_php_script("33:   ", &f, &n), -1);
  cr_expect_eq(sub_php_script("33 :x.php", &f, &n), -1);
  cr_expect_eq(sub_php_script("-3:x.php", &f, &n), -1);
  cr_expect_eq(sub_php_script("99999999999:x.php", &f, &n), -1);
}

/* ---- virtual host patterns --------------------------------------------------
 */

static const char *domain_of(const char *pattern, const char *path) {
  static char d[64];
  char err[160];

  cr_assert_eq(sub_pattern_check(pattern, err, sizeof(err)), 0, "%s: %s",
               pattern, err);
  if (!sub_pattern_match(pattern, path, strlen(path), d, sizeof(d)))
    return NULL;
  return d;
}

Test(pattern, plesk_layout) {
  const char *p = "/var/www/vhosts/%d/";

  cr_expect_str_eq(
      domain_of(p, "/var/www/vhosts/example.com/httpdocs/contact.php"),
      "example.com");
  cr_expect_str_eq(domain_of(p, "/var/www/vhosts/shop.example.org/x.php"),
                   "shop.example.org");
  /* The domain's own directory, and nothing after the pattern. */
  cr_expect_str_eq(domain_of(p, "/var/www/vhosts/example.com/"), "example.com");
  cr_expect_null(domain_of(p, "/var/www/vhosts/example.com"));
  cr_expect_null(domain_of(p, "/var/www/vhosts//httpdocs/x.php"));
  cr_expect_null(domain_of(p, "/var/www/other/example.com/x.php"));
  cr_expect_null(domain_of(p, "contact.php"));
  cr_expect_null(domain_of(p, "/var/www/VHOSTS/example.com/x.php"));
}

Test(pattern, without_trailing_slash_takes_a_whole_component) {
  const char *p = "/var/www/%d";

  cr_expect_str_eq(domain_of(p, "/var/www/example.com/index.php"),
                   "example.com");
  cr_expect_str_eq(domain_of(p, "/var/www/example.com"), "example.com");
  cr_expect_null(domain_of(p, "/var/www/"));
}

Test(pattern, wildcards_and_literals_around_the_domain) {
  /* DirectAdmin: /home/USER/domains/DOMAIN/public_html. */
  cr_expect_str_eq(domain_of("/home/*/domains/%d/public_html/",
                             "/home/alice/domains/example.com/public_html/"
                             "wp-login.php"),
                   "example.com");
  cr_expect_null(domain_of("/home/*/domains/%d/public_html/",
                           "/home/alice/domains/example.com/private/x.php"));
  /* Text around %d in one component: the match backtracks. */
  cr_expect_str_eq(
      domain_of("/srv/web-%d.site/", "/srv/web-a.b.site.site/x.php"),
      "a.b.site");
  cr_expect_str_eq(domain_of("/srv/%%sites/%d/", "/srv/%sites/example.com/x"),
                   "example.com");
  cr_expect_null(domain_of("/srv/%%sites/%d/", "/srv/sites/example.com/x"));
  /* A wildcard never crosses '/'. */
  cr_expect_str_eq(domain_of("/home/*/%d/", "/home/a/b/example.com/x"), "b");
  cr_expect_null(domain_of("/home/*/%d/x", "/home/a/b/example.com/x"));
}

Test(pattern, domain_too_long_for_the_buffer) {
  char d[16];
  const char *path = "/v/example.com/x";

  /* "example.com" needs 12 bytes. */
  cr_expect_eq(sub_pattern_match("/v/%d/", path, strlen(path), d, 11), 0);
  cr_expect_eq(sub_pattern_match("/v/%d/", path, strlen(path), d, 12), 1);
  cr_expect_str_eq(d, "example.com");
}

Test(pattern, length_bounded_path) {
  char d[64];
  const char *path = "/v/example.com/x.php-and-more";

  /* Only the first len bytes are the path. */
  cr_expect_eq(sub_pattern_match("/v/%d", path, 14, d, sizeof(d)), 1);
  cr_expect_str_eq(d, "example.com");
  cr_expect_eq(sub_pattern_match("/v/%d/", path, 14, d, sizeof(d)), 0);
}

Test(pattern, bad_patterns) {
  char err[160];

  cr_expect_eq(sub_pattern_check("/var/www/", err, sizeof(err)), -1);
  cr_expect_str_eq(err, "the pattern must hold %d exactly once (it has 0)");
  cr_expect_eq(sub_pattern_check("/%d/%d/", err, sizeof(err)), -1);
  cr_expect_str_eq(err, "the pattern must hold %d exactly once (it has 2)");
  cr_expect_eq(sub_pattern_check("var/%d/", err, sizeof(err)), -1);
  cr_expect_str_eq(err, "the pattern must start with '/'");
  cr_expect_eq(sub_pattern_check(NULL, err, sizeof(err)), -1);
  cr_expect_eq(sub_pattern_check("/v/%x/", err, sizeof(err)), -1);
  cr_expect_str_eq(err, "'%' must be followed by 'd' (the domain) or '%'");
  cr_expect_eq(sub_pattern_check("/v/%d/%", err, sizeof(err)), -1);
  cr_expect_eq(sub_pattern_check("/v/*%d/", err, sizeof(err)), -1);
  cr_expect_str_eq(err, "two wildcards side by side cannot be told apart");
  cr_expect_eq(sub_pattern_check("/v/%d*/", err, sizeof(err)), -1);
  cr_expect_eq(sub_pattern_check("/v/**/%d/", err, sizeof(err)), -1);
  cr_expect_eq(sub_pattern_check("/v/\t/%d/", err, sizeof(err)), -1);
  cr_expect_str_eq(err, "the pattern holds a control character");
  cr_expect_eq(sub_pattern_check("/*/*/*/*/*/*/*/*/%d/", err, sizeof(err)), -1);
  cr_expect_str_eq(err, "the pattern holds more than 8 wildcards");
  /* Literal '%' beside a wildcard is fine. */
  cr_expect_eq(sub_pattern_check("/v/%%%d/", err, sizeof(err)), 0);
  cr_expect_eq(sub_pattern_check("/*/*/*/*/*/*/*/%d/", err, sizeof(err)), 0);
}

/* ---- envelope addresses
 * ------------------------------------------------------ */

Test(envelope, brackets_and_blanks) {
  char out[16];

  cr_expect_eq(sub_envelope_address("<a@example.com>", out, sizeof(out)), 13u);
  cr_expect_str_eq(out, "a@example.com");
  /* Postfix's cleanup sends local senders without brackets. */
  cr_expect_eq(sub_envelope_address("www@h.example", out, sizeof(out)), 13u);
  cr_expect_str_eq(out, "www@h.example");
  cr_expect_eq(sub_envelope_address("<>", out, sizeof(out)), 0u);
  cr_expect_str_eq(out, "");
  cr_expect_eq(sub_envelope_address(" <b@c> ", out, sizeof(out)), 3u);
  cr_expect_str_eq(out, "b@c");
  cr_expect_eq(sub_envelope_address(NULL, out, sizeof(out)), 0u);
  cr_expect_str_eq(out, "");
  cr_expect_eq(sub_envelope_address("<", out, sizeof(out)), 1u);
  cr_expect_str_eq(out, "<");
  /* Cut, and the whole length returned. */
  cr_expect_eq(
      sub_envelope_address("<someone@a-long-domain.example>", out, sizeof(out)),
      29u);
  cr_expect_str_eq(out, "someone@a-long-");
}

/* The forms Postfix takes in MAIL FROM and RCPT TO and rewrites before it
   looks an address up or sends it on (observed with Postfix 3.7: its
   {rcpt_addr} macro, the virtual_alias_maps lookup and the envelope it
   relays): each must be the address Postfix uses, or a forward is not
   recognised (a message to <"sales"@fwd.example> left through the
   forward uncounted) and a sender is charged under another name. */
static const struct {
  const char *in, *out;
} postfix_forms[] = {
    /* Quotes and backslashes around plain characters. */
    {"<\"sales\"@fwd.example>", "sales@fwd.example"},
    {"<s\\ales@fwd.example>", "sales@fwd.example"},
    {"<\"sales@fwd.example\">", "sales@fwd.example"},
    /* A quoted blank stays: no name holds one, as Postfix's policy
       requests show ("sa les@fwd.example"). */
    {"<\"sa les\"@fwd.example>", "sa les@fwd.example"},
    /* Comments and blanks between the parts. */
    {"<sales(c)@fwd.example>", "sales@fwd.example"},
    {"<(c)sales@fwd.example>", "sales@fwd.example"},
    {"<sales(a (nested\\) one))@fwd.example>", "sales@fwd.example"},
    {"< sales@fwd.example >", "sales@fwd.example"},
    /* A source route. */
    {"<@a.example,@b.example:sales@fwd.example>", "sales@fwd.example"},
    {"<@x.example:\"sales\"@fwd.example>", "sales@fwd.example"},
    /* One trailing dot of the domain, not two, nor one after '@'. */
    {"<sales@fwd.example.>", "sales@fwd.example"},
    {"<\"sales\"@fwd.example.>", "sales@fwd.example"},
    {"<sales@fwd.example..>", "sales@fwd.example.."},
    {"<sales@.>", "sales@."},
    {"<sales.@fwd.example>", "sales.@fwd.example"},
    /* Without an '@': a bang path (the first '!'), else the last '%'. */
    {"<fwd.example!sales>", "sales@fwd.example"},
    {"<fwd.example!\"sales\">", "sales@fwd.example"},
    {"<a.example!fwd.example!sales>", "fwd.example!sales@a.example"},
    {"<fwd.example.!sales>", "sales@fwd.example"},
    {"<sales%fwd.example>", "sales@fwd.example"},
    {"<a%b%fwd.example>", "a%b@fwd.example"},
    /* With an '@' neither is rewritten, nor a quoted '!' or '%'. */
    {"<a!b@fwd.example>", "a!b@fwd.example"},
    {"<a%b@fwd.example>", "a%b@fwd.example"},
    {"<\"fwd.example!sales\">", "fwd.example!sales"},
    /* Sendmail and Postfix's cleanup send the address as it is. */
    {"info@acme.example", "info@acme.example"},
    {"", ""},
};

Test(envelope, postfix_rewrites) {
  size_t i;

  for (i = 0; i < sizeof(postfix_forms) / sizeof(postfix_forms[0]); i++) {
    char out[64];
    size_t n = sub_envelope_address(postfix_forms[i].in, out, sizeof(out));

    cr_expect_str_eq(out, postfix_forms[i].out, "%s", postfix_forms[i].in);
    cr_expect_eq(n, strlen(postfix_forms[i].out), "%s", postfix_forms[i].in);
  }
}

Test(envelope, rewritten_then_cut) {
  char out[8];

  /* The length is the rewritten address's; the copy is cut. */
  cr_expect_eq(
      sub_envelope_address("<\"sales\"@fwd.example.>", out, sizeof(out)), 17u);
  cr_expect_str_eq(out, "sales@f");
}
