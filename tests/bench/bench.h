/* SPDX-License-Identifier: MIT */
/* What the benchmark programs share: a small, fast generator of
   pseudo-random numbers whose sequence depends on its seed alone, so that
   two runs with one seed do the same work. */
#ifndef OBSPAM_BENCH_H
#define OBSPAM_BENCH_H

#include <stdint.h>

/* The next value of Marsaglia's xorshift64 from the state *s (not 0). */
static inline uint64_t xorshift64(uint64_t *s) {
  uint64_t x = *s;

  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

#endif /* OBSPAM_BENCH_H */
