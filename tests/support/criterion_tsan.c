/* SPDX-License-Identifier: MIT */
/*
 * Lets Criterion run under ThreadSanitizer. Linked into the test suites of
 * OBSPAM_SANITIZE=thread builds only.
 *
 * Criterion's sandboxing library (BoxFort) maps a shared arena at a random
 * address in [0x200000000000, 0x600000000000), drawn with rand_r(), and
 * gives up ("Could not initialize inheritable arena") after a few addresses
 * that are already mapped. ThreadSanitizer reserves nearly all of that range
 * for its shadow memory; the only part left to programs is where it places
 * position-independent executables, [0x550000000000, 0x568000000000). So
 * almost every start fails (Criterion issue #274).
 *
 * This rand_r() interposes the C library's for calls made from
 * libcriterion, and keeps their results in the range of offsets that BoxFort
 * turns into addresses in that free part (offset << 24 from 0x200000000000).
 * Every other caller gets the C library's rand_r() unchanged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

/* BoxFort: base 0x200000000000, step 1 << 24, offset mask 0x3fffff. */
#define FREE_FIRST_OFFSET 0x350000 /* 0x550000000000 */
#define FREE_OFFSETS 0x18000       /* up to 0x568000000000 */

typedef int (*rand_r_fn)(unsigned int *);

static int called_from_criterion(const void *caller) {
  Dl_info info;
  return dladdr(caller, &info) != 0 && info.dli_fname != NULL &&
         strstr(info.dli_fname, "libcriterion") != NULL;
}

int rand_r(unsigned int *seed) {
  static rand_r_fn next;
  rand_r_fn fn = __atomic_load_n(&next, __ATOMIC_ACQUIRE);
  if (fn == NULL) {
    void *sym = dlsym(RTLD_NEXT, "rand_r");
    memcpy(&fn, &sym, sizeof fn);
    if (fn == NULL)
      abort();
    __atomic_store_n(&next, fn, __ATOMIC_RELEASE);
  }
  int value = fn(seed);
  if (called_from_criterion(__builtin_return_address(0)))
    return FREE_FIRST_OFFSET + value % FREE_OFFSETS;
  return value;
}
