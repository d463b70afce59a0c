/* SPDX-License-Identifier: MIT */
/* Version numbers and error texts. */
#include <limits.h>

#include "testutil.h"

Test(version, number_matches_header) {
  cr_assert_eq(obspam_version(), (unsigned int)OBSPAM_VERSION_NUMBER,
               "obspam_version() = 0x%x, header says 0x%x", obspam_version(),
               (unsigned int)OBSPAM_VERSION_NUMBER);
  cr_assert_eq(obspam_version(), 0x010406u, "obspam_version() = 0x%x",
               obspam_version());
  cr_assert_eq(OBSPAM_VERSION_MAJOR, 1);
  cr_assert_eq(OBSPAM_VERSION_MINOR, 4);
  cr_assert_eq(OBSPAM_VERSION_PATCH, 6);
}

Test(version, string) {
  const char *s = obspam_version_string();
  cr_assert_not_null(s, "obspam_version_string() is NULL");
  cr_assert_str_eq(s, "1.4.6", "obspam_version_string() = \"%s\"", s);
  /* The string agrees with the number. */
  char buf[32];
  snprintf(buf, sizeof buf, "%u.%u.%u", obspam_version() >> 16,
           (obspam_version() >> 8) & 0xffu, obspam_version() & 0xffu);
  cr_assert_str_eq(s, buf, "string \"%s\" vs number \"%s\"", s, buf);
}

Test(version, error_code_values) {
  cr_assert_eq(OBSPAM_OK, 0);
  cr_assert_eq(OBSPAM_ENOMEM, -1);
  cr_assert_eq(OBSPAM_EINVAL, -2);
  cr_assert_eq(OBSPAM_ENOTFOUND, -3);
  cr_assert_eq(OBSPAM_EEXIST, -4);
  cr_assert_eq(OBSPAM_ESYNTAX, -5);
  cr_assert_eq(OBSPAM_EIO, -6);
  cr_assert_eq(OBSPAM_ECORRUPT, -7);
  cr_assert_eq(OBSPAM_EVERSION, -8);
  cr_assert_eq(OBSPAM_EUNAVAIL, -9);
}

/* Every code has the exact text of OBSPAM_ERRNO_MAP. */
Test(version, strerror_every_code) {
  static const struct {
    int code;
    const char *text;
  } want[] = {
#define XX(name, value, text) {value, text},
      OBSPAM_ERRNO_MAP(XX)
#undef XX
  };
  cr_assert_eq(sizeof want / sizeof want[0], 10u, "the map has 10 codes");
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const char *s = obspam_strerror(want[i].code);
    cr_assert_not_null(s, "obspam_strerror(%d) is NULL", want[i].code);
    cr_assert_str_eq(s, want[i].text, "obspam_strerror(%d) = \"%s\"",
                     want[i].code, s);
  }
  /* The texts spelled out, in case the map itself were edited. */
  cr_assert_str_eq(obspam_strerror(0), "success");
  cr_assert_str_eq(obspam_strerror(-1), "out of memory");
  cr_assert_str_eq(obspam_strerror(-2), "invalid argument");
  cr_assert_str_eq(obspam_strerror(-3), "no such object");
  cr_assert_str_eq(obspam_strerror(-4), "object already exists");
  cr_assert_str_eq(obspam_strerror(-5), "syntax error in configuration");
  cr_assert_str_eq(obspam_strerror(-6), "input/output error");
  cr_assert_str_eq(obspam_strerror(-7), "corrupt or foreign state file");
  cr_assert_str_eq(obspam_strerror(-8), "state file from a newer version");
  cr_assert_str_eq(obspam_strerror(-9), "shared counter store unavailable");
}

/* An unknown code gets a non-NULL, non-empty text that is none of the known
   texts ("unknown codes are described as such"). */
Test(version, strerror_unknown_code) {
  static const int unknown[] = {-10, -11, 1, 2, 100, -1000, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *s = obspam_strerror(unknown[i]);
    cr_assert_not_null(s, "obspam_strerror(%d) is NULL", unknown[i]);
    cr_assert_neq(s[0], '\0', "obspam_strerror(%d) is empty", unknown[i]);
    for (int code = 0; code >= -9; code--)
      cr_assert_str_neq(s, obspam_strerror(code),
                        "obspam_strerror(%d) = \"%s\", the text of code %d",
                        unknown[i], s, code);
  }
}
