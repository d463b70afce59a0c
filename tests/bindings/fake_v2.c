/* SPDX-License-Identifier: MIT */
/*
 * A stand-in for a libobspam of another version, which the bindings must
 * refuse: 2.0.0 (another major version) by default, or the version given
 * by -DFAKE_MAJOR=1 -DFAKE_MINOR=2 (older than the 1.3 the bindings need).
 * Built as a shared library by run.sh and the tests; it has only the
 * version functions, and the bindings must look at them first.
 */
#ifndef FAKE_MAJOR
#define FAKE_MAJOR 2
#define FAKE_MINOR 0
#endif
#define FAKE_STR2(x) #x
#define FAKE_STR(x) FAKE_STR2(x)

unsigned int obspam_version(void);
const char *obspam_version_string(void);

unsigned int obspam_version(void) {
  return (FAKE_MAJOR << 16) | (FAKE_MINOR << 8);
}
const char *obspam_version_string(void) {
  return FAKE_STR(FAKE_MAJOR) "." FAKE_STR(FAKE_MINOR) ".0";
}
