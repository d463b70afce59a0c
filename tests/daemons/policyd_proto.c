/* SPDX-License-Identifier: MIT */
/* The Postfix policy request parser of obspam-policyd
   (examples/policyd/policy.c): exact results for good requests, however
   they are cut into reads, and the exact error for each malformed one. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy.h"

/* Every attribute that Postfix 3.7 sends, as SMTPD_POLICY_README lists
   them, at RCPT time. */
static const char FULL[] = "request=smtpd_access_policy\nprotocol_state=RCPT\n"
                           "protocol_name=SMTP\nhelo_name=some.domain.tld\n"
                           "queue_id=8045F2AB23\nsender=foo@bar.tld\n"
                           "recipient=bar@foo.tld\nrecipient_count=0\n"
                           "client_address=1.2.3.4\n"
                           "client_name=another.domain.tld\n"
                           "reverse_client_name=another.domain.tld\n"
                           "instance=123.456.7\nsasl_method=plain\n"
                           "sasl_username=you\nsasl_sender=\nsize=12345\n"
                           "ccert_subject=solaris9.porcupine.org\n"
                           "ccert_issuer=Wietse+20Venema\n"
                           "ccert_fingerprint=C2:9D:F4:87:71:73:73:D9:18:E7:"
                           "C2:F3:C1:DA:6E:04\n"
                           "encryption_protocol=TLSv1/SSLv3\n"
                           "encryption_cipher=DHE-RSA-AES256-SHA\n"
                           "encryption_keysize=256\netrn_domain=\nstress=\n"
                           "ccert_pubkey_fingerprint=68:B3:29:DA:98:93:E3:40:"
                           "99:C7:D8:AD:5C:B9:C9:40\nclient_port=1234\n"
                           "policy_context=submission\n"
                           "server_address=10.3.2.1\nserver_port=54321\n\n";

static policy_req req;

static void setup(void) { policy_reset(&req); }

TestSuite(policy, .init = setup);

/* Feeds text in one call and expects a complete request using all of it. */
static void feed_all(const char *text, size_t len) {
  size_t used = 12345;
  int rc = policy_feed(&req, text, len, &used);

  cr_assert_eq(rc, POLICY_COMPLETE, "rc %d, error '%s'", rc, req.error);
  cr_assert_eq(used, len);
}

/* Feeds text in one call and expects an error with exactly this text. */
static void feed_error(const char *text, size_t len, const char *error,
                       size_t used_expected) {
  size_t used = 12345;
  int rc = policy_feed(&req, text, len, &used);

  cr_assert_eq(rc, POLICY_ERROR, "rc %d for an erroneous request", rc);
  cr_assert_str_eq(req.error, error);
  cr_assert_eq(used, used_expected, "used %zu, expected %zu", used,
               used_expected);
}

/* Each of the n values of attr, alone in a request, is refused on its
   line with "bad ATTR 'VALUE': " and the expectation. */
static void feed_bad_values(const char *attr, const char *const *bad, size_t n,
                            const char *expected) {
  size_t i;

  for (i = 0; i < n; i++) {
    char text[256], error[200];

    snprintf(text, sizeof(text), "request=smtpd_access_policy\n%s=%s\n\n", attr,
             bad[i]);
    snprintf(error, sizeof(error), "line 3: bad %s '%s': %s", attr, bad[i],
             expected);
    policy_reset(&req);
    feed_error(text, strlen(text), error, strlen(text));
  }
}

static void expect_attr(enum policy_attr a, const char *value) {
  const char *got = policy_get(&req, a);

  if (value == NULL) {
    cr_assert_null(got, "attribute %d: '%s' instead of absent", (int)a,
                   got != NULL ? got : "");
    return;
  }
  cr_assert_not_null(got, "attribute %d is absent", (int)a);
  cr_assert_str_eq(got, value);
}

Test(policy, full_postfix_request) {
  obspam_message m = OBSPAM_MESSAGE_INIT;

  feed_all(FULL, strlen(FULL));
  expect_attr(POLICY_REQUEST, "smtpd_access_policy");
  expect_attr(POLICY_PROTOCOL_STATE, "RCPT");
  expect_attr(POLICY_SASL_USERNAME, "you");
  expect_attr(POLICY_SENDER, "foo@bar.tld");
  expect_attr(POLICY_CLIENT_ADDRESS, "1.2.3.4");
  expect_attr(POLICY_RECIPIENT_COUNT, "0");
  expect_attr(POLICY_INSTANCE, "123.456.7");
  cr_assert_eq(req.attrs, 29);
  cr_assert_eq(policy_message(&req, &m), POLICY_STAGE_RCPT);
  cr_assert_str_eq(m.sasl_username, "you");
  cr_assert_str_eq(m.sender, "foo@bar.tld");
  cr_assert_str_eq(m.client_address, "1.2.3.4");
  cr_assert_eq(m.recipients, 1);
  cr_assert_eq(m.flags, 0);
  cr_assert_eq(m.uid, -1);
  cr_assert_str_eq(policy_state_name(&req), "RCPT");
}

Test(policy, any_order_unknown_ignored_absent_null) {
  static const char text[] = "x-future=1\nsender=a@b.example\n"
                             "protocol_state=DATA\n"
                             "request=smtpd_access_policy\n"
                             "recipient_count=12\n\n";
  obspam_message m = OBSPAM_MESSAGE_INIT;

  feed_all(text, strlen(text));
  expect_attr(POLICY_SENDER, "a@b.example");
  expect_attr(POLICY_SASL_USERNAME, NULL);
  expect_attr(POLICY_CLIENT_ADDRESS, NULL);
  expect_attr(POLICY_INSTANCE, NULL);
  cr_assert_eq(policy_message(&req, &m), POLICY_STAGE_DATA);
  cr_assert_null(m.sasl_username);
  cr_assert_null(m.client_address);
  cr_assert_eq(m.recipients, 12);
}

Test(policy, repeated_attribute_keeps_last) {
  static const char text[] = "request=smtpd_access_policy\n"
                             "sender=first@example.com\n"
                             "sender=second@example.com\nsender=\n"
                             "sasl_username=a@example.com\n"
                             "sasl_username=b@example.com\n\n";

  feed_all(text, strlen(text));
  expect_attr(POLICY_SENDER, "");
  expect_attr(POLICY_SASL_USERNAME, "b@example.com");
}

Test(policy, names_are_exact) {
  /* Postfix sends lower-case names; others are someone else's. A long
     name that starts like a kept one is not it. */
  static const char text[] = "request=smtpd_access_policy\n"
                             "Sender=upper@example.com\n"
                             "senderx=x@example.com\n"
                             "sender_with_a_very_long_name_beyond_32=y@e.com\n"
                             "\n";

  feed_all(text, strlen(text));
  expect_attr(POLICY_SENDER, NULL);
}

Test(policy, values_may_hold_equals_and_blanks) {
  static const char text[] = "request=smtpd_access_policy\n"
                             "sender=a=b c@example.com\n"
                             "\n";

  feed_all(text, strlen(text));
  expect_attr(POLICY_SENDER, "a=b c@example.com");
}

Test(policy, empty_lines_before_a_request_are_skipped) {
  static const char text[] = "\n\r\n\nrequest=smtpd_access_policy\n\n";

  feed_all(text, strlen(text));
  expect_attr(POLICY_REQUEST, "smtpd_access_policy");
  cr_assert_eq(req.request_len, strlen("request=smtpd_access_policy\n\n"));
}

Test(policy, crlf_line_endings) {
  static const char text[] = "request=smtpd_access_policy\r\n"
                             "sender=a@b.example\r\n"
                             "instance=a\rb\n"
                             "protocol_state=DATA\r\r\n"
                             "\r\n";

  feed_all(text, strlen(text));
  expect_attr(POLICY_SENDER, "a@b.example");
  /* Only the '\r' right before '\n' ends a line. */
  expect_attr(POLICY_INSTANCE, "a\rb");
  expect_attr(POLICY_PROTOCOL_STATE, "DATA\r");
  cr_assert_str_eq(policy_state_name(&req), "?");
}

Test(policy, pipelined_requests_in_one_buffer) {
  static const char text[] = "request=smtpd_access_policy\n"
                             "sender=one@example.com\n\n"
                             "\nrequest=smtpd_access_policy\n"
                             "sender=two@example.com\n\n"
                             "request=smtpd_access_policy\nsender=thr";
  size_t len = strlen(text), off = 0, used;
  size_t first = strlen("request=smtpd_access_policy\n"
                        "sender=one@example.com\n\n");

  cr_assert_eq(policy_feed(&req, text, len, &used), POLICY_COMPLETE);
  cr_assert_eq(used, first);
  expect_attr(POLICY_SENDER, "one@example.com");
  off += used;
  policy_reset(&req);
  cr_assert_eq(policy_feed(&req, text + off, len - off, &used),
               POLICY_COMPLETE);
  cr_assert_eq(used, strlen("\nrequest=smtpd_access_policy\n"
                            "sender=two@example.com\n\n"));
  expect_attr(POLICY_SENDER, "two@example.com");
  off += used;
  policy_reset(&req);
  cr_assert_eq(policy_feed(&req, text + off, len - off, &used), POLICY_MORE);
  cr_assert_eq(used, len - off);
  cr_assert_eq(policy_feed(&req, "ee@example.com\n\n", 16, &used),
               POLICY_COMPLETE);
  cr_assert_eq(used, 16);
  expect_attr(POLICY_SENDER, "three@example.com");
}

/* The same request cut into pieces of every size gives the same fields. */
static void check_split(size_t piece) {
  size_t len = strlen(FULL), off = 0, used;
  int rc = POLICY_MORE;

  policy_reset(&req);
  while (off < len) {
    size_t n = len - off < piece ? len - off : piece;

    rc = policy_feed(&req, FULL + off, n, &used);
    off += used;
    if (rc != POLICY_MORE)
      break;
    cr_assert_eq(used, n, "piece %zu at %zu: used %zu", piece, off, used);
  }
  cr_assert_eq(rc, POLICY_COMPLETE, "piece %zu: rc %d (%s)", piece, rc,
               req.error);
  cr_assert_eq(off, len, "piece %zu: ended at %zu of %zu", piece, off, len);
  expect_attr(POLICY_PROTOCOL_STATE, "RCPT");
  expect_attr(POLICY_SASL_USERNAME, "you");
  expect_attr(POLICY_SENDER, "foo@bar.tld");
  expect_attr(POLICY_CLIENT_ADDRESS, "1.2.3.4");
  expect_attr(POLICY_INSTANCE, "123.456.7");
  cr_assert_eq(req.attrs, 29);
}

Test(policy, byte_by_byte_and_every_piece_size) {
  size_t piece;

  for (piece = 1; piece <= 64; piece++)
    check_split(piece);
  check_split(1000);
}

Test(policy, random_splits_of_pipelined_requests) {
  /* 50 requests, each with its own sender, read in random pieces: every
     one completes once with its own sender. */
  static char text[50 * 128];
  size_t len = 0, off = 0, used;
  int i, done = 0;

  for (i = 0; i < 50; i++)
    len += (size_t)snprintf(text + len, sizeof(text) - len,
                            "%srequest=smtpd_access_policy\r\n"
                            "sender=s%d@example.com\n"
                            "protocol_state=DATA\n\n",
                            i % 7 == 0 ? "\n" : "", i);
  srand(42);
  while (off < len) {
    size_t n = (size_t)(rand() % 40) + 1;
    int rc;

    if (n > len - off)
      n = len - off;
    rc = policy_feed(&req, text + off, n, &used);
    cr_assert_neq(rc, POLICY_ERROR, "%s", req.error);
    off += used;
    if (rc == POLICY_COMPLETE) {
      char want[32];

      snprintf(want, sizeof(want), "s%d@example.com", done);
      expect_attr(POLICY_SENDER, want);
      done++;
      policy_reset(&req);
    }
  }
  cr_assert_eq(done, 50);
}

/* Random text rich in the bytes the parser looks at ('\n', '\r', NUL,
   '='), now and then with a value longer than is kept, fed whole and byte
   by byte: the same status, bytes used, error and attributes. Fed whole,
   the parser takes ordinary lines at once and scans runs of ordinary bytes
   eight at a time; one byte at a time it can do neither. */
Test(policy, word_scan_agrees_with_byte_by_byte) {
  static const char alphabet[] = "\n\n\r\0==ab@.";
  static const char *const heads[] = {"request=smtpd_access_policy\n",
                                      "sender=", "sasl_username=", "x=", ""};
  static policy_req one;
  char text[700];
  unsigned seed = 7;
  int round, a;

  for (round = 0; round < 20000; round++) {
    size_t len, used1 = 0, used2, i;
    int rc1 = POLICY_MORE, rc2;

    len = (size_t)snprintf(text, sizeof(text), "%s", heads[round % 5]);
    if (round % 7 == 1) /* cut at POLICY_VALUE_MAX */
      for (i = 0; i < POLICY_VALUE_MAX + 50; i++)
        text[len++] = 'v';
    seed = seed * 1103515245u + 12345u;
    for (i = (seed >> 16) % 90; i > 0; i--) {
      seed = seed * 1103515245u + 12345u;
      text[len++] = (seed >> 16) % 3 == 0
                        ? alphabet[(seed >> 20) % (sizeof(alphabet) - 1)]
                        : (char)('c' + (seed >> 20) % 20);
    }
    policy_reset(&req);
    policy_reset(&one);
    rc2 = policy_feed(&req, text, len, &used2);
    while (used1 < len && rc1 == POLICY_MORE) {
      size_t u;

      rc1 = policy_feed(&one, text + used1, 1, &u);
      used1 += u;
    }
    cr_assert_eq(rc2, rc1, "round %d: rc %d whole, %d byte by byte", round, rc2,
                 rc1);
    cr_assert_eq(used2, used1, "round %d", round);
    cr_assert_str_eq(req.error, one.error, "round %d", round);
    for (a = 0; a < POLICY_ATTR_COUNT; a++) {
      cr_assert_eq(req.attr[a].present, one.attr[a].present, "round %d", round);
      if (!req.attr[a].present)
        continue; /* an absent attribute's fields are not reset */
      cr_assert_eq(req.attr[a].len, one.attr[a].len, "round %d", round);
      cr_assert_eq(req.attr[a].cut, one.attr[a].cut, "round %d", round);
      cr_assert_eq(memcmp(req.attr[a].text, one.attr[a].text, req.attr[a].len),
                   0, "round %d", round);
    }
  }
}

/* ---- the lines taken whole against the byte path -------------------- */

/* What parsing a text gave, request by request: the status and bytes used
   of each call that ended one (and of the last call), the kept attributes
   of each complete request, and each error. */
#define OUTCOMES_MAX 8

typedef struct outcome {
  int rc;
  size_t end; /* offset in the text after the bytes used */
  char error[160];
  int present[POLICY_ATTR_COUNT];
  int cut[POLICY_ATTR_COUNT];
  char value[POLICY_ATTR_COUNT][POLICY_VALUE_MAX + 1];
} outcome;

typedef struct outcomes {
  outcome o[OUTCOMES_MAX];
  int n;
} outcomes;

/* Parses text in the pieces that cut[] (ascending offsets, ncut of them)
   makes, requests one after another as the daemon reads them: reset after
   each complete request, stop at an error. Fed in pieces of one byte, no
   line is taken whole: the byte path is the reference. */
static void parse_cut(const char *text, size_t len, const size_t *cut,
                      size_t ncut, outcomes *out) {
  static policy_req r;
  size_t off = 0, c = 0;

  memset(out, 0, sizeof(*out));
  policy_reset(&r);
  while (off < len && out->n < OUTCOMES_MAX) {
    size_t stop = len, used = 0;
    int rc, a;
    outcome *o;

    while (c < ncut && cut[c] <= off)
      c++;
    if (c < ncut)
      stop = cut[c];
    rc = policy_feed(&r, text + off, stop - off, &used);
    cr_assert_leq(used, stop - off);
    off += used;
    if (rc == POLICY_MORE) {
      cr_assert_eq(off, stop);
      continue;
    }
    o = &out->o[out->n++];
    o->rc = rc;
    o->end = off;
    snprintf(o->error, sizeof(o->error), "%s", r.error);
    for (a = 0; rc == POLICY_COMPLETE && a < POLICY_ATTR_COUNT; a++) {
      const char *v = policy_get(&r, (enum policy_attr)a);

      o->present[a] = v != NULL;
      if (v == NULL)
        continue;
      cr_assert_eq(strlen(v), r.attr[a].len);
      o->cut[a] = r.attr[a].cut;
      memcpy(o->value[a], v, r.attr[a].len + 1);
    }
    if (rc == POLICY_ERROR)
      break;
    policy_reset(&r);
  }
  /* Where the text ended: inside a request or not. */
  if (out->n < OUTCOMES_MAX) {
    outcome *o = &out->o[out->n++];

    o->rc = 99;
    o->end = r.request_len;
  }
}

static void same_outcomes(const outcomes *want, const outcomes *got,
                          const char *how, int round) {
  int i, a;

  cr_assert_eq(got->n, want->n, "round %d %s: %d outcomes, byte path %d", round,
               how, got->n, want->n);
  for (i = 0; i < want->n; i++) {
    const outcome *w = &want->o[i], *g = &got->o[i];

    cr_assert_eq(g->rc, w->rc, "round %d %s: outcome %d is %d, byte path %d",
                 round, how, i, g->rc, w->rc);
    cr_assert_eq(g->end, w->end,
                 "round %d %s: outcome %d at %zu, byte path %zu", round, how, i,
                 g->end, w->end);
    cr_assert_str_eq(g->error, w->error, "round %d %s", round, how);
    for (a = 0; a < POLICY_ATTR_COUNT; a++) {
      cr_assert_eq(g->present[a], w->present[a], "round %d %s: attribute %d",
                   round, how, a);
      cr_assert_eq(g->cut[a], w->cut[a], "round %d %s: attribute %d", round,
                   how, a);
      cr_assert_str_eq(g->value[a], w->value[a], "round %d %s: attribute %d",
                       round, how, a);
    }
  }
}

/* Names near the kept ones: each kept name, Postfix's others, and each
   kept name with one byte changed, one byte fewer or one more. */
static const char *const kept_names[] = {
    "request",        "protocol_state",  "sasl_username", "sender",
    "client_address", "recipient_count", "instance",      "queue_id",
    "recipient",      "obspam_uid",      "obspam_script"};
static const char *const other_names[] = {"protocol_name",
                                          "helo_name",
                                          "client_name",
                                          "reverse_client_name",
                                          "sasl_method",
                                          "sasl_sender",
                                          "size",
                                          "ccert_subject",
                                          "ccert_issuer",
                                          "ccert_fingerprint",
                                          "ccert_pubkey_fingerprint",
                                          "encryption_protocol",
                                          "encryption_cipher",
                                          "encryption_keysize",
                                          "etrn_domain",
                                          "stress",
                                          "client_port",
                                          "policy_context",
                                          "server_address",
                                          "server_port",
                                          "compatibility_level",
                                          "mail_version",
                                          "x",
                                          "Sender",
                                          "REQUEST",
                                          "sender ",
                                          " sender",
                                          "recipient_counts",
                                          "recipient_coun"};

static unsigned rnd_state = 1;

static unsigned rnd(unsigned n) {
  rnd_state = rnd_state * 1103515245u + 12345u;
  return (rnd_state >> 8) % n;
}

/* Appends an attribute name: kept, near a kept one, another, random, or
   around POLICY_NAME_MAX bytes. */
static size_t put_name(char *t) {
  unsigned kind = rnd(10);
  const char *k = kept_names[rnd(11)];
  size_t n = strlen(k), i;

  switch (kind) {
  case 0:
  case 1:
  case 2:
    memcpy(t, k, n);
    return n;
  case 3: /* one byte changed */
    memcpy(t, k, n);
    t[rnd((unsigned)n)] ^= (char)(1 + rnd(3) * 0x1f);
    return n;
  case 4: /* one byte fewer or one more */
    memcpy(t, k, n);
    if (rnd(2))
      return n - 1;
    t[n] = (char)"_sx="[rnd(4)];
    return n + 1;
  case 5:
  case 6:
    k = other_names[rnd(sizeof(other_names) / sizeof(*other_names))];
    n = strlen(k);
    memcpy(t, k, n);
    return n;
  case 7: /* around POLICY_NAME_MAX, a kept name's start */
    n = POLICY_NAME_MAX - 1 + rnd(3);
    for (i = 0; i < n; i++)
      t[i] = i < strlen(k) ? k[i] : 'n';
    return n;
  case 8: /* random bytes, rich in those the parser looks at */
    n = rnd(20);
    for (i = 0; i < n; i++)
      t[i] = (char)"abc_=\r\t\x01\x80\xff"[rnd(11)];
    return n;
  default: /* empty */
    return 0;
  }
}

/* Appends a value: short, empty, with '=', '\r', NUL, control or high
   bytes, or around POLICY_VALUE_MAX bytes. */
static size_t put_value(char *t) {
  size_t n, i;

  switch (rnd(8)) {
  case 0:
    return 0;
  case 1: /* around POLICY_VALUE_MAX */
    n = POLICY_VALUE_MAX - 2 + rnd(5);
    break;
  case 2: /* up to 40 bytes of anything the parser looks at */
    n = rnd(40);
    for (i = 0; i < n; i++)
      t[i] = (char)"v=\r\0\x0b\x0c\x0e\t \x7f\x80\xe9"[rnd(12)];
    return n;
  default:
    n = rnd(40);
    break;
  }
  for (i = 0; i < n; i++)
    t[i] = (char)('a' + (i + n) % 26);
  if (n > 0 && rnd(4) == 0)
    t[rnd((unsigned)n)] = '=';
  return n;
}

/* A text of one to three requests of random lines, now and then a line
   of exactly POLICY_LINE_MAX - 1 to + 1 bytes, a line without '=', an
   empty line before a request, "\r\n" line ends. */
static size_t random_text(char *t, size_t room) {
  size_t len = 0;
  int requests = 1 + (int)rnd(3), q, lines;

  for (q = 0; q < requests; q++) {
    if (rnd(5) == 0)
      t[len++] = '\n';
    if (rnd(8) != 0)
      len += (size_t)sprintf(t + len, "request=smtpd_access_policy\n");
    for (lines = (int)rnd(12); lines > 0 && len + 3 * POLICY_LINE_MAX < room;
         lines--) {
      unsigned shape = rnd(20);

      if (shape == 0) { /* a line of POLICY_LINE_MAX - 1 to + 1 bytes */
        size_t n = POLICY_LINE_MAX - 1 + rnd(3), start = len;

        len += (size_t)sprintf(t + len, "%s=", rnd(2) ? "sender" : "x");
        while (len - start < n)
          t[len++] = 'w';
      } else if (shape == 1) { /* no '=' */
        len += put_name(t + len);
      } else {
        len += put_name(t + len);
        t[len++] = '=';
        len += put_value(t + len);
      }
      if (rnd(6) == 0)
        t[len++] = '\r';
      t[len++] = '\n';
    }
    t[len++] = '\n';
  }
  if (rnd(4) == 0) /* the text ends inside a request */
    len -= rnd((unsigned)len / 2 + 1);
  return len;
}

/* One text parsed byte by byte (the reference), at once, and cut in two at
   every offset (or at 300 random ones when it is long) and at random
   places: the same outcomes. */
static void check_text(const char *text, size_t len, int round) {
  static size_t cuts[POLICY_REQUEST_MAX + 8];
  static outcomes ref, got;
  size_t i, n;

  for (i = 0; i < len; i++)
    cuts[i] = i + 1;
  parse_cut(text, len, cuts, len, &ref);
  parse_cut(text, len, NULL, 0, &got);
  same_outcomes(&ref, &got, "at once", round);
  for (i = 1; i < len; i++) {
    size_t at = len <= 1200 ? i : 1 + rnd((unsigned)len - 1);

    if (len > 1200 && i > 300)
      break;
    parse_cut(text, len, &at, 1, &got);
    same_outcomes(&ref, &got, "in two", round);
  }
  for (n = 0, i = 1 + rnd(64); i < len; n++, i += 1 + rnd(64))
    cuts[n] = i;
  parse_cut(text, len, cuts, n, &got);
  same_outcomes(&ref, &got, "in pieces", round);
}

Test(policy, whole_lines_agree_with_byte_path_random) {
  static char text[8 * POLICY_LINE_MAX + 4096];
  int round;

  rnd_state = 12345;
  for (round = 0; round < 3000; round++)
    check_text(text, random_text(text, sizeof(text)), round);
}

/* The last lines before the end of a read, fewer than a chunk's bytes
   (taken from the chunk that ends there): a line of every length up to
   past the widest chunk, kept or not, ordinary or for the byte path (an
   '=' first, a name that is a kept one's prefix, a control byte, "\r\n",
   no '='), the read ending after it, after the request's empty line, or
   inside it; each fed at once, in two at every offset and in pieces, as
   the byte path reads it. */
Test(policy, whole_lines_agree_with_byte_path_at_the_end_of_a_read) {
  static const char *const names[] = {
      "sender", "x", "sende", "recipient_count", "ccert_pubkey_fingerprint",
      ""};
  static const char *const shapes[] = {"", "=", "\r", "\x01", "\t", "\x7f"};
  static char text[512];
  int round = 0;
  size_t name, shape, vlen, end;

  rnd_state = 4242;
  for (name = 0; name < sizeof(names) / sizeof(*names); name++)
    for (shape = 0; shape < sizeof(shapes) / sizeof(*shapes); shape++)
      for (vlen = 0; vlen <= 70; vlen++)
        for (end = 0; end < 3; end++, round++) {
          size_t len = (size_t)sprintf(
              text, "request=smtpd_access_policy\nsize=1\n%s=", names[name]);
          size_t i;

          for (i = 0; i < vlen; i++)
            text[len++] = (char)('a' + i % 26);
          /* The odd byte in the middle of the value, or a line without
             '=' for the first shape's empty name. */
          if (shapes[shape][0] != '\0' && vlen > 0)
            text[len - 1 - vlen / 2] = shapes[shape][0];
          text[len++] = '\n';
          if (end == 1)
            text[len++] = '\n';
          else if (end == 2)
            len -= 1 + vlen / 3; /* the read ends inside the line */
          check_text(text, len, round);
        }
}

/* Requests near POLICY_REQUEST_MAX and POLICY_ATTRS_MAX: every line
   ordinary, the limit reached within a line or at its end. */
Test(policy, whole_lines_agree_with_byte_path_at_limits) {
  static char text[POLICY_REQUEST_MAX + 4096];
  int round = 0;
  long delta;

  rnd_state = 777;
  for (delta = -3; delta <= 3; delta++, round++) {
    size_t len = (size_t)sprintf(text, "request=smtpd_access_policy\n");
    size_t target = (size_t)((long)POLICY_REQUEST_MAX + delta), i;

    /* Lines of 2,000 bytes, then one that ends the request at target
       bytes with the empty line. */
    while (len + 2001 + 2 + 10 < target) {
      len += (size_t)sprintf(text + len, "s%03zu=", len % 1000);
      for (i = 0; i < 1995; i++)
        text[len++] = 'v';
      text[len++] = '\n';
    }
    len += (size_t)sprintf(text + len, "sender=");
    while (len < target - 2)
      text[len++] = 'z';
    text[len++] = '\n';
    text[len++] = '\n';
    cr_assert_eq(len, target);
    check_text(text, len, round);
  }
  for (delta = -2; delta <= 2; delta++, round++) {
    size_t len = (size_t)sprintf(text, "request=smtpd_access_policy\n");
    long i;

    for (i = 1; i < POLICY_ATTRS_MAX + delta; i++)
      len += (size_t)sprintf(text + len, "%s=%ld\n", i % 3 ? "sender" : "a", i);
    text[len++] = '\n';
    check_text(text, len, round);
  }
}

/* ---- malformed requests ------------------------------------------------ */

Test(policy, line_without_equals) {
  static const char text[] = "request=smtpd_access_policy\nhello\n\n";

  feed_error(text, strlen(text), "line 2: 'hello' is not NAME=VALUE",
             strlen("request=smtpd_access_policy\nhello\n"));
}

Test(policy, line_without_equals_long_is_cut) {
  /* Only the first POLICY_NAME_MAX bytes of a name are kept. */
  char text[200];

  cr_assert_eq(POLICY_NAME_MAX, 32);
  memset(text, 'x', 100);
  memcpy(text + 100, "\n", 2);
  feed_error(text, 101,
             "line 1: "
             "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is not NAME=VALUE",
             101);
}

Test(policy, empty_name) {
  static const char text[] = "request=smtpd_access_policy\n=value\n\n";

  feed_error(text, strlen(text), "line 2: attribute without a name",
             strlen("request=smtpd_access_policy\n="));
}

Test(policy, nul_byte_in_name_and_value) {
  static const char a[] = "request=smtpd_access_policy\nsen\0der=x\n\n";
  static const char b[] = "request=smtpd_access_policy\nsender=x\0y\n\n";

  feed_error(a, sizeof(a) - 1, "line 2: NUL byte",
             strlen("request=smtpd_access_policy\nsen") + 1);
  policy_reset(&req);
  feed_error(b, sizeof(b) - 1, "line 2: NUL byte",
             strlen("request=smtpd_access_policy\nsender=x") + 1);
}

Test(policy, missing_request_attribute) {
  static const char text[] = "sender=a@example.com\nprotocol_state=DATA\n\n";

  feed_error(text, strlen(text),
             "line 3: the request has no 'request' attribute", strlen(text));
}

Test(policy, other_request_type) {
  static const char text[] = "request=smtpd_other\n\n";
  static const char ctl[] = "request=smtpd\x01policy\n\n";

  feed_error(text, strlen(text), "line 2: unsupported request 'smtpd_other'",
             strlen(text));
  policy_reset(&req);
  /* Control characters of a client never reach a log line. */
  feed_error(ctl, strlen(ctl), "line 2: unsupported request 'smtpd\\x01policy'",
             strlen(ctl));
}

Test(policy, raw_bytes_escaped_in_errors) {
  /* Bytes of 0x80 and more (not UTF-8 here, or a terminal escape), DEL
     and a backslash are written as \xNN: the log gets plain ASCII. */
  static const char high[] = "request=\xff\xfe\x1b[31m\x7f\\x\n\n";
  static const char name[] = "request=smtpd_access_policy\n\xc3\xa9t\xe9\n\n";
  char long_text[200], want[200];
  int i;

  feed_error(high, strlen(high),
             "line 2: unsupported request "
             "'\\xff\\xfe\\x1b[31m\\x7f\\x5cx'",
             strlen(high));
  policy_reset(&req);
  feed_error(name, strlen(name), "line 2: '\\xc3\\xa9t\\xe9' is not NAME=VALUE",
             strlen(name) - 1);
  /* 64 bytes of 0x80: cut at a whole escape. The error is "line 2:
     unsupported request '...'", 160 bytes at most, and the quoted part
     takes 17 escapes of the 72 bytes it may use. */
  policy_reset(&req);
  snprintf(long_text, sizeof(long_text), "request=");
  for (i = 0; i < 64; i++)
    long_text[8 + i] = (char)0x80;
  snprintf(long_text + 72, sizeof(long_text) - 72, "\n\n");
  snprintf(want, sizeof(want), "line 2: unsupported request '");
  for (i = 0; i < 17; i++)
    strcat(want, "\\x80");
  strcat(want, "'");
  feed_error(long_text, strlen(long_text), want, strlen(long_text));
}

Test(policy, recipient_count_must_be_a_number) {
  static const char *const bad[] = {
      "abc",        "-1",         "1a",
      " 1",         "+1",         "2147483649",
      "4294967295", "4294967296", "99999999999999999999999"};

  feed_bad_values("recipient_count", bad, sizeof(bad) / sizeof(bad[0]),
                  "expected a number up to 2^31");
}

Test(policy, recipient_count_limits) {
  static const char max[] = "request=smtpd_access_policy\n"
                            "protocol_state=END-OF-MESSAGE\n"
                            "recipient_count=2147483648\n\n";
  static const char empty[] = "request=smtpd_access_policy\n"
                              "protocol_state=DATA\n"
                              "recipient_count=\n\n";
  obspam_message m = OBSPAM_MESSAGE_INIT;

  feed_all(max, strlen(max));
  cr_assert_eq(policy_message(&req, &m), POLICY_STAGE_EOM);
  cr_assert_eq(m.recipients, OBSPAM_RECIPIENTS_MAX);
  policy_reset(&req);
  feed_all(empty, strlen(empty));
  cr_assert_eq(policy_message(&req, &m), POLICY_STAGE_DATA);
  cr_assert_eq(m.recipients, 1);
}

Test(policy, line_length_limit) {
  /* "sender=" + value: exactly POLICY_LINE_MAX bytes is fine, one more is
     not, and the error comes at that byte. */
  static char text[POLICY_LINE_MAX + 64];
  size_t head = strlen("request=smtpd_access_policy\n");
  size_t n;

  memcpy(text, "request=smtpd_access_policy\nsender=", head + 7);
  memset(text + head + 7, 'a', POLICY_LINE_MAX - 7);
  n = head + POLICY_LINE_MAX;
  memcpy(text + n, "\n\n", 2);
  feed_all(text, n + 2);
  cr_assert_eq(strlen(policy_get(&req, POLICY_SENDER)), POLICY_VALUE_MAX);
  cr_assert_eq(req.attr[POLICY_SENDER].cut, 1);

  policy_reset(&req);
  text[n] = 'a';
  memcpy(text + n + 1, "\n\n", 2);
  feed_error(text, n + 3, "line 2: line is longer than 4096 bytes", n + 1);
}

Test(policy, line_length_limit_in_a_name_and_with_cr) {
  static char text[POLICY_LINE_MAX + 8];

  memset(text, 'n', POLICY_LINE_MAX + 1);
  feed_error(text, POLICY_LINE_MAX + 1,
             "line 1: line is longer than 4096 bytes", POLICY_LINE_MAX + 1);
  /* The '\r' of "\r\n" is part of the line. */
  policy_reset(&req);
  memcpy(text, "x=", 2);
  memset(text + 2, 'v', POLICY_LINE_MAX - 2);
  memcpy(text + POLICY_LINE_MAX, "\r\n", 2);
  feed_error(text, POLICY_LINE_MAX + 2,
             "line 1: line is longer than 4096 bytes", POLICY_LINE_MAX + 1);
}

Test(policy, request_length_limit) {
  /* The request line, 31 lines of 2047 bytes and their newlines, then one
     line that brings the request to exactly POLICY_REQUEST_MAX bytes with
     the empty line (line 34); one byte more fails at that empty line. */
  static char text[POLICY_REQUEST_MAX + 4096];
  size_t len = 0, rest;
  int i;

  len += (size_t)sprintf(text, "request=smtpd_access_policy\n");
  for (i = 0; i < 31; i++) {
    len += (size_t)sprintf(text + len, "x%02d=", i);
    memset(text + len, 'v', 2047 - 4);
    len += 2047 - 4;
    text[len++] = '\n';
  }
  rest = POLICY_REQUEST_MAX - len - 2; /* the last line's '\n' and "\n" */
  memcpy(text + len, "y=", 2);
  memset(text + len + 2, 'v', rest - 2);
  len += rest;
  memcpy(text + len, "\n\n", 2);
  cr_assert_eq(len + 2, POLICY_REQUEST_MAX);
  feed_all(text, len + 2);
  cr_assert_eq(req.request_len, POLICY_REQUEST_MAX);

  policy_reset(&req);
  memcpy(text + len, "v\n\n", 3);
  feed_error(text, len + 3, "line 34: the request is longer than 65536 bytes",
             POLICY_REQUEST_MAX + 1);
}

Test(policy, attribute_count_limit) {
  static char text[POLICY_ATTRS_MAX * 16 + 64];
  size_t len = 0;
  int i;

  len += (size_t)sprintf(text, "request=smtpd_access_policy\n");
  for (i = 1; i < POLICY_ATTRS_MAX; i++)
    len += (size_t)sprintf(text + len, "a%d=%d\n", i, i);
  memcpy(text + len, "\n", 2);
  feed_all(text, len + 1);
  cr_assert_eq(req.attrs, POLICY_ATTRS_MAX);

  policy_reset(&req);
  len += (size_t)sprintf(text + len, "one=more\n\n");
  feed_error(text, len, "line 101: more than 100 attributes",
             len - strlen("more\n\n"));
}

Test(policy, error_is_sticky_until_reset) {
  static const char bad[] = "oops\n";
  static const char good[] = "request=smtpd_access_policy\n\n";
  size_t used = 99;

  feed_error(bad, strlen(bad), "line 1: 'oops' is not NAME=VALUE", strlen(bad));
  cr_assert_eq(policy_feed(&req, good, strlen(good), &used), POLICY_ERROR);
  cr_assert_eq(used, 0);
  policy_reset(&req);
  feed_all(good, strlen(good));
}

/* ---- the message ------------------------------------------------------- */

static enum policy_stage message_of(const char *attrs, obspam_message *m) {
  char text[4096];

  snprintf(text, sizeof(text), "request=smtpd_access_policy\n%s\n", attrs);
  policy_reset(&req);
  feed_all(text, strlen(text));
  *m = (obspam_message)OBSPAM_MESSAGE_INIT;
  return policy_message(&req, m);
}

Test(policy, stages) {
  obspam_message m;

  cr_assert_eq(message_of("protocol_state=RCPT\n", &m), POLICY_STAGE_RCPT);
  cr_assert_eq(message_of("protocol_state=DATA\n", &m), POLICY_STAGE_DATA);
  cr_assert_eq(message_of("protocol_state=data\n", &m), POLICY_STAGE_DATA);
  cr_assert_eq(message_of("protocol_state=END-OF-MESSAGE\n", &m),
               POLICY_STAGE_EOM);
  cr_assert_eq(message_of("protocol_state=CONNECT\n", &m), POLICY_STAGE_OTHER);
  cr_assert_eq(message_of("protocol_state=MAIL\n", &m), POLICY_STAGE_OTHER);
  cr_assert_eq(message_of("protocol_state=VRFY\n", &m), POLICY_STAGE_OTHER);
  cr_assert_eq(message_of("protocol_state=\n", &m), POLICY_STAGE_OTHER);
  cr_assert_str_eq(policy_state_name(&req), "-");
  cr_assert_eq(message_of("", &m), POLICY_STAGE_OTHER);
  cr_assert_str_eq(policy_state_name(&req), "-");
  cr_assert_eq(message_of("protocol_state=DATAX\n", &m), POLICY_STAGE_OTHER);
  cr_assert_str_eq(policy_state_name(&req), "DATAX");
}

Test(policy, recipients_by_stage) {
  obspam_message m;

  message_of("protocol_state=DATA\nrecipient_count=7\n", &m);
  cr_assert_eq(m.recipients, 7);
  message_of("protocol_state=END-OF-MESSAGE\nrecipient_count=3\n", &m);
  cr_assert_eq(m.recipients, 3);
  /* Zero or absent at DATA: a message has at least one recipient. */
  message_of("protocol_state=DATA\nrecipient_count=0\n", &m);
  cr_assert_eq(m.recipients, 1);
  message_of("protocol_state=DATA\n", &m);
  cr_assert_eq(m.recipients, 1);
  message_of("protocol_state=RCPT\nrecipient_count=7\n", &m);
  cr_assert_eq(m.recipients, 1);
}

Test(policy, empty_values_are_null) {
  obspam_message m;

  message_of("protocol_state=DATA\nsasl_username=\nsender=\n"
             "client_address=\n",
             &m);
  cr_assert_null(m.sasl_username);
  cr_assert_null(m.sender);
  cr_assert_null(m.client_address);
}

Test(policy, client_address_must_be_an_ip) {
  static const char *const good[] = {"192.0.2.1", "2001:db8::25",
                                     "::ffff:192.0.2.1", "::1"};
  static const char *const bad[] = {"unknown",     "192.0.2",
                                    "192.0.2.1.5", "2001:db8::25%eth0",
                                    "[::1]",       "192.0.2.1 "};
  obspam_message m;
  char attrs[128];
  size_t i;

  for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    snprintf(attrs, sizeof(attrs), "client_address=%s\n", good[i]);
    message_of(attrs, &m);
    cr_assert_not_null(m.client_address, "%s", good[i]);
    cr_assert_str_eq(m.client_address, good[i]);
  }
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(attrs, sizeof(attrs), "client_address=%s\n", bad[i]);
    message_of(attrs, &m);
    cr_assert_null(m.client_address, "'%s' taken for an address", bad[i]);
  }
}

/* policy_message reads a dotted quad itself: random strings near the
   forms of an address are taken exactly when inet_pton takes them. */
Test(policy, client_address_as_inet_pton_reads_it) {
  static const char *const parts[] = {
      "0",    "1",   "9",   "00",  "01",  "10",  "99",  "255",  "256", "300",
      "1000", "199", "249", "250", "",    "a",   "::",  ":",    "f",   " ",
      "-1",   "+1",  "205", "259", "260", "265", "299", "0255", "09",  "1a"};
  unsigned seed = 99;
  int round;

  for (round = 0; round < 40000; round++) {
    char addr[64], attrs[96];
    unsigned char buf[16];
    size_t len = 0;
    int k, nparts, want;
    obspam_message m;

    seed = seed * 1103515245u + 12345u;
    nparts = 1 + (int)((seed >> 16) % 6);
    for (k = 0; k < nparts; k++) {
      seed = seed * 1103515245u + 12345u;
      len += (size_t)snprintf(
          addr + len, sizeof(addr) - len, "%s%s", k > 0 ? "." : "",
          parts[(seed >> 16) % (sizeof(parts) / sizeof(parts[0]))]);
    }
    if (round % 5 == 0 && len > 0) /* a dot or colon doubled or dropped */
      addr[(seed >> 8) % len] = (round % 10 == 0) ? ':' : '.';
    want = inet_pton(AF_INET, addr, buf) == 1 ||
           inet_pton(AF_INET6, addr, buf) == 1;
    snprintf(attrs, sizeof(attrs), "client_address=%s\n", addr);
    message_of(attrs, &m);
    if (addr[0] == '\0' || addr[0] == ' ' || addr[len - 1] == ' ')
      continue; /* empty, or not the value as sent */
    cr_assert_eq(m.client_address != NULL, want, "'%s': inet_pton says %d",
                 addr, want);
  }
}

/* Every number of one to four digits (leading zeros, 256 to 9999, each
   digit next to each bound), and a digit with a byte around '0'..'9' or
   '.', in each of the four places of a quad: taken exactly when
   inet_pton takes it. */
Test(policy, every_number_of_a_quad_as_inet_pton_reads_it) {
  static const char odd[] = {'/', ':', '.', ' ', 'a', '\x80'};
  int place, digits, k;

  for (place = 0; place < 4; place++) {
    for (digits = 1; digits <= 4; digits++) {
      int count = digits == 1   ? 10
                  : digits == 2 ? 100
                  : digits == 3 ? 1000
                                : 10000;

      for (k = 0; k < count + (int)sizeof(odd) * 2; k++) {
        char number[8], addr[64], attrs[96];
        unsigned char buf[16];
        obspam_message m;
        int want, p;
        size_t len = 0;

        if (k < count)
          snprintf(number, sizeof(number), "%0*d", digits, k);
        else if (k - count < (int)sizeof(odd))
          snprintf(number, sizeof(number), "%c%d", odd[k - count], digits);
        else
          snprintf(number, sizeof(number), "%d%c", digits,
                   odd[k - count - (int)sizeof(odd)]);
        for (p = 0; p < 4; p++)
          len += (size_t)snprintf(addr + len, sizeof(addr) - len, "%s%s",
                                  p > 0 ? "." : "", p == place ? number : "7");
        want = inet_pton(AF_INET, addr, buf) == 1 ||
               inet_pton(AF_INET6, addr, buf) == 1;
        snprintf(attrs, sizeof(attrs), "client_address=%s\n", addr);
        message_of(attrs, &m);
        if (addr[len - 1] == ' ')
          continue; /* not the value as sent */
        cr_assert_eq(m.client_address != NULL, want, "'%s': inet_pton says %d",
                     addr, want);
      }
    }
  }
}

/* The protocol state is compared as strcasecmp would: every mix of cases
   of the three states, and near misses ('\r' for '-', one letter
   changed, one more or fewer). */
Test(policy, stages_as_strcasecmp_reads_them) {
  static const char *const states[] = {"RCPT", "DATA", "END-OF-MESSAGE"};
  static const enum policy_stage stages[] = {
      POLICY_STAGE_RCPT, POLICY_STAGE_DATA, POLICY_STAGE_EOM};
  unsigned seed = 5;
  int round;

  for (round = 0; round < 5000; round++) {
    int s = round % 3, want = -1, k;
    char state[32], attrs[64];
    size_t n = strlen(states[s]), i;
    obspam_message m;

    memcpy(state, states[s], n + 1);
    for (i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      if ((seed >> 16) & 1)
        state[i] = (char)(state[i] ^ 0x20); /* the case bit */
    }
    seed = seed * 1103515245u + 12345u;
    switch ((seed >> 16) % 5) {
    case 0:
      state[(seed >> 4) % n] = (char)((seed >> 8) % 0x7e + 1);
      break;
    case 1:
      state[n - 1] = '\0';
      break;
    case 2:
      state[n] = 'S';
      state[n + 1] = '\0';
      break;
    default:
      break;
    }
    for (k = 0; k < 3; k++)
      if (strcasecmp(state, states[k]) == 0)
        want = k;
    if (strchr(state, '\n') != NULL || strchr(state, '\r') != NULL)
      continue; /* a line end, not part of the value as sent */
    snprintf(attrs, sizeof(attrs), "protocol_state=%s\n", state);
    cr_assert_eq(message_of(attrs, &m),
                 want < 0 ? POLICY_STAGE_OTHER : stages[want], "'%s'", state);
  }
  /* A '\r' inside the value is part of it: END\rOF-MESSAGE is no state,
     though '\r' and '-' differ by the case bit alone. */
  {
    obspam_message m;
    static const char text[] = "request=smtpd_access_policy\n"
                               "protocol_state=END\rOF-MESSAGE\n\n";

    policy_reset(&req);
    feed_all(text, strlen(text));
    cr_assert_eq(policy_message(&req, &m), POLICY_STAGE_OTHER);
  }
}

Test(policy, long_values_are_cut_past_any_valid_name) {
  /* A sender of 1000 bytes is kept as its first POLICY_VALUE_MAX bytes,
     still longer than any valid name, so the engine finds it hosted no
     more than the whole would be. */
  char attrs[1200];
  obspam_message m;

  cr_assert_gt(POLICY_VALUE_MAX, OBSPAM_NAME_MAX);
  memcpy(attrs, "sender=", 7);
  memset(attrs + 7, 'a', 990);
  memcpy(attrs + 997, "@example.com\n", 14);
  message_of(attrs, &m);
  cr_assert_eq(strlen(m.sender), POLICY_VALUE_MAX);
  cr_assert_eq(req.attr[POLICY_SENDER].cut, 1);
  cr_assert_eq(strncmp(m.sender, attrs + 7, POLICY_VALUE_MAX), 0);
}

/* obspam_uid and obspam_script: a local submission by that uid, with no
   client address, whatever client_address says. */
Test(policy, submitter_uid_and_script) {
  obspam_message m;

  message_of("protocol_state=END-OF-MESSAGE\nobspam_uid=10001\n"
             "obspam_script=/var/www/acme/contact.php\nsender=x@acme.example\n"
             "client_address=127.0.0.1\nrecipient_count=2\n",
             &m);
  cr_assert_eq(policy_claims_uid(&req), 1);
  cr_assert_eq(m.flags, OBSPAM_MSG_SCRIPT);
  cr_assert_eq(m.uid, 10001);
  cr_assert_str_eq(m.script, "/var/www/acme/contact.php");
  cr_assert_null(m.client_address);
  cr_assert_str_eq(m.sender, "x@acme.example");
  cr_assert_eq(m.recipients, 2);

  message_of("protocol_state=DATA\nobspam_uid=4294967295\n", &m);
  cr_assert_eq(m.uid, 4294967295LL);
  cr_assert_null(m.script);

  /* Empty: no claim. */
  message_of("protocol_state=DATA\nobspam_uid=\nobspam_script=/x.php\n"
             "client_address=192.0.2.1\n",
             &m);
  cr_assert_eq(policy_claims_uid(&req), 0);
  cr_assert_eq(m.flags, 0);
  cr_assert_eq(m.uid, -1);
  cr_assert_null(m.script);
  cr_assert_str_eq(m.client_address, "192.0.2.1");
}

Test(policy, submitter_script_cut_is_dropped) {
  char attrs[1200];
  obspam_message m;

  memcpy(attrs, "obspam_uid=33\nobspam_script=/", 29);
  memset(attrs + 29, 'a', 900);
  memcpy(attrs + 929, "\n", 2);
  message_of(attrs, &m);
  cr_assert_eq(m.uid, 33);
  cr_assert_null(m.script);
}

Test(policy, submitter_uid_must_be_a_number) {
  static const char *const bad[] = {"-1", "33x", "4294967296", " 33",
                                    "99999999999999999999"};

  feed_bad_values("obspam_uid", bad, sizeof(bad) / sizeof(bad[0]),
                  "expected a number below 2^32");
}
