/* SPDX-License-Identifier: MIT */
/* The one door to xxHash. It is compiled inline and static into this
   library, so none of its symbols can clash with the host program's. */
#ifndef OBSPAM_HASH_H
#define OBSPAM_HASH_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static inline uint64_t obspam__hash(const void *p, size_t n) {
  return XXH3_64bits(p, n);
}

static inline uint64_t obspam__checksum(const void *p, size_t n) {
  return XXH3_64bits(p, n);
}

#endif
