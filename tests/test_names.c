/* SPDX-License-Identifier: MIT */
/* The normaliser of names (src/names.c), which reads eight bytes at a
   time, against the byte loop it replaced: the same verdict, the same
   reason and, for a valid name, the same bytes, length and '@', on edge
   cases and on random texts over the bytes that matter. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "names.h"

/* The model: the normaliser as one byte loop. */
static const char *model(const char *in, int shape, obspam__name *out) {
  size_t i, ats = 0;

  if (in == NULL)
    return "name is missing";
  out->at = 0;
  for (i = 0; in[i] != '\0'; i++) {
    unsigned char c = (unsigned char)in[i];

    if (i == OBSPAM_NAME_MAX)
      return "name is longer than 320 bytes";
    if (c <= 0x20 || c == 0x7f)
      return "name holds a blank or a control character";
    if (c >= 'A' && c <= 'Z')
      c = (unsigned char)(c + ('a' - 'A'));
    else if (c == '@') {
      ats++;
      out->at = i;
    }
    out->s[i] = (char)c;
  }
  out->s[i] = '\0';
  out->len = i;
  if (i == 0)
    return "name is empty";
  if (ats == 0) {
    out->at = i;
    return shape == OBSPAM__NAME_MAILBOX ? "a mailbox needs one '@'" : NULL;
  }
  if (shape == OBSPAM__NAME_PLAIN)
    return "name holds an '@'";
  if (ats != 1)
    return "an address holds more than one '@'";
  if (out->at == 0 || out->at + 1 == i)
    return "an address needs a local part and a domain";
  return NULL;
}

static void expect_as_model(const char *text) {
  int shape;

  for (shape = OBSPAM__NAME_ANY; shape <= OBSPAM__NAME_MAILBOX; shape++) {
    obspam__name got, want;
    const char *g = obspam__name_norm(text, shape, &got);
    const char *w = model(text, shape, &want);

    cr_assert_str_eq(g != NULL ? g : "ok", w != NULL ? w : "ok",
                     "'%.40s' (%zu bytes), shape %d", text, strlen(text),
                     shape);
    if (w == NULL) {
      cr_assert_eq(got.len, want.len, "'%.40s': length", text);
      cr_assert_eq(got.at, want.at, "'%.40s': '@' at", text);
      cr_assert_str_eq(got.s, want.s);
    }
  }
}

Test(names, edge_cases_as_byte_loop) {
  static const char *const texts[] = {"",
                                      "a",
                                      "A",
                                      "@",
                                      "a@b",
                                      "ABCDEFGH",
                                      "ABCDEFGH@IJKLMNOP.QRST",
                                      "Mary.Smith@Example.COM",
                                      "mary@d0012345.example",
                                      "@example.com",
                                      "mary@",
                                      "a@b@c",
                                      "abcdefg@",
                                      "abcdefgh@abcdefg@",
                                      "@@@@@@@@",
                                      "[\\]^_`{|}~",
                                      "@ABZ[`az{?",
                                      "tab\there",
                                      "sp ace@example.com",
                                      "abcdefghijklmno\x7f",
                                      "abcdefgh\x01",
                                      "\x80\xff\xc3\xa9@\xe2\x82\xac.example",
                                      "\x81@\xc1\xda\xdb\xfa.EX"};
  char text[700];
  size_t i;

  for (i = 0; i < sizeof texts / sizeof texts[0]; i++)
    expect_as_model(texts[i]);
  cr_assert_str_eq(obspam__name_norm(NULL, OBSPAM__NAME_ANY, NULL),
                   "name is missing");
  /* Around the limit: 319 to 322 bytes, valid, and with a blank or an
     '@' before, at or after the limit. */
  for (i = OBSPAM_NAME_MAX - 9; i <= OBSPAM_NAME_MAX + 2; i++) {
    size_t k;

    memset(text, 'X', i);
    text[i] = '\0';
    expect_as_model(text);
    text[i / 2] = '@';
    expect_as_model(text);
    for (k = OBSPAM_NAME_MAX - 2; k < i; k++) {
      char was = text[k];

      text[k] = ' ';
      expect_as_model(text);
      text[k] = '@';
      expect_as_model(text);
      text[k] = was;
    }
  }
  memset(text, 'a', sizeof(text) - 1);
  text[sizeof(text) - 1] = '\0';
  expect_as_model(text);
}

Test(names, random_as_byte_loop) {
  /* Letters at both ends of the upper-case range and just outside it,
     '@', blanks, controls, DEL and bytes above 0x7f. */
  static const unsigned char alphabet[] = "AZ@[`azmM09.-_+ \t\x01\x1f\x21"
                                          "\x7f\x80\xc1\xda\xdb\xff\x3f\x40";
  char text[340];
  uint64_t x = 0x9E3779B97F4A7C15ull;
  size_t i, k, n;

  for (i = 0; i < 300000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    /* Mostly short names, and a few near the limit. */
    n = i % 64 == 0 ? 300 + (size_t)(x % 30) : (size_t)(x % 40);
    for (k = 0; k < n; k++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      /* Most bytes are plain letters, so that most texts are valid. */
      text[k] =
          (char)(x % 4 != 0 ? "abcdefghKLMNOPQR"[(x >> 8) % 16]
                            : alphabet[(x >> 8) % (sizeof(alphabet) - 1)]);
    }
    text[n] = '\0';
    expect_as_model(text);
  }
}

/* obspam__name_canon: the address the MTA makes of an envelope address,
   or the name unchanged. */
Test(names, envelope_canon) {
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"info@example.com.", "info@example.com"},
      {"example.com!info", "info@example.com"},
      {"a!b!c", "b!c@a"},
      {"info%example.com", "info@example.com"},
      {"a%b%c", "a%b@c"},
      {"example.com!info.", "info.@example.com"},
      {"info@example.com..", "info@example.com.."},
      {"info@.", "info@."},
      {"!info", "!info"},
      {"site!", "site!"},
      {"%info", "%info"},
      {"info%", "info%"},
      {"a!b@c", "a!b@c"},
      {"a%b@c", "a%b@c"},
      {"example.com.", "example.com."},
      {"example.com", "example.com"},
  };
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    obspam__name n;
    const char *at;

    cr_assert_null(obspam__name_norm(cases[i].in, OBSPAM__NAME_ANY, &n), "%s",
                   cases[i].in);
    obspam__name_canon(&n);
    cr_assert_str_eq(n.s, cases[i].out, "%s", cases[i].in);
    cr_assert_eq(n.len, strlen(cases[i].out), "%s", cases[i].in);
    at = strchr(n.s, '@');
    cr_assert_eq(n.at, at != NULL ? (size_t)(at - n.s) : n.len, "%s",
                 cases[i].in);
  }
}
