/* SPDX-License-Identifier: MIT */
#include "names.h"

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Eight bytes at a time. Every decision normalises its login or sender,
   and a byte loop costs about 18 instructions a byte; a word costs about
   40. ONES, HIGHS and LOWS hold 0x01, 0x80 and 0x7f in every byte. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
#define LOWS 0x7f7f7f7f7f7f7f7full

/* 0x80 in each byte of x that is 0, and 0 in the others (exact, unlike
   the shorter test that can flag a 0x01 above a zero byte). */
static inline uint64_t zero_bytes(uint64_t x) {
  return ~(((x & LOWS) + LOWS) | x | LOWS);
}

/* Whether a byte of x is a blank or a control character (<= 0x20) or
   DEL (0x7f): what the byte loop refuses. */
static inline int has_bad(uint64_t x) {
  return ((((x - ONES * 0x21) & ~x) | zero_bytes(x ^ (ONES * 0x7f))) & HIGHS) !=
         0;
}

/* 0x80 in each byte of x that is an upper-case ASCII letter ('A' 0x41 to
   'Z' 0x5a), 0 in the others: each byte is computed on its own 7 bits, so
   no carry crosses into its neighbour. */
static inline uint64_t upper_bytes(uint64_t x) {
  uint64_t low = x & LOWS;

  return (ONES * (0x7f + 0x5b) - low) & ~x & (low + ONES * (0x7f - 0x40)) &
         HIGHS;
}

/* The byte loop: bytes [i, end) of in into out, lower-cased; the '@'
   seen counted in *ats and the last one's offset in out->at. NULL, or why
   a byte is refused. */
static const char *bytes(const char *in, size_t i, size_t end,
                         obspam__name *out, size_t *ats) {
  for (; i < end; i++) {
    unsigned char c = (unsigned char)in[i];

    if (c <= 0x20 || c == 0x7f)
      return "name holds a blank or a control character";
    if (c >= 'A' && c <= 'Z')
      c = (unsigned char)(c + ('a' - 'A'));
    else if (c == '@') {
      ++*ats;
      out->at = i;
    }
    out->s[i] = (char)c;
  }
  return NULL;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* The eight bytes of in at i into out, lower-cased, as the byte loop
   would; the '@' among the bytes that fresh marks (0x80 in each) counted
   in *ats (as 1, or 2 for any more) and the last one's offset kept in
   out->at. Byte k of the text is byte k of the word from its low end.
   NULL, or why a byte is refused. */
static inline __attribute__((always_inline)) const char *
word(const char *in, size_t i, uint64_t fresh, obspam__name *out, size_t *ats) {
  uint64_t x, at;

  memcpy(&x, in + i, 8);
  if (has_bad(x)) /* the byte loop names the first bad byte */
    return bytes(in, i, i + 8, out, ats);
  at = zero_bytes(x ^ (ONES * '@')) & fresh;
  if (at != 0) {
    *ats += (at & (at - 1)) != 0 ? 2 : 1;
    out->at = i + (size_t)(63 - __builtin_clzll(at)) / 8;
  }
  x |= upper_bytes(x) >> 2; /* 0x80 >> 2 is 'a' - 'A' */
  memcpy(out->s + i, &x, 8);
  return NULL;
}
#endif

#if defined(__SSE2__)
/* Sixteen bytes at a time where SSE2 is (every x86-64): a name of 20 to
   40 bytes then costs two or three blocks of about 30 instructions
   instead of three to five words. The sixteen bytes of in at i into out,
   as word does; fresh marks the bytes counted (bit k for byte k). */
static inline __attribute__((always_inline)) const char *
block(const char *in, size_t i, unsigned fresh, obspam__name *out,
      size_t *ats) {
  __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
  /* A byte is at most 0x20 when the smaller of it and 0x20 is itself. */
  __m128i bad =
      _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x20)), x),
                   _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f)));
  __m128i upper;
  unsigned at;

  if (_mm_movemask_epi8(bad) != 0) /* the byte loop names the first one */
    return bytes(in, i, i + 16, out, ats);
  at = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('@'))) &
       fresh;
  if (at != 0) {
    *ats += (at & (at - 1)) != 0 ? 2 : 1;
    out->at = i + (size_t)(31 - __builtin_clz(at));
  }
  /* Signed comparisons: the bytes from 0x80 up are below 'A'. */
  upper = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('A' - 1)),
                        _mm_cmpgt_epi8(_mm_set1_epi8('Z' + 1), x));
  x = _mm_or_si128(x, _mm_and_si128(upper, _mm_set1_epi8('a' - 'A')));
  _mm_storeu_si128((__m128i *)(void *)(out->s + i), x);
  return NULL;
}
#endif

void obspam__name_canon(obspam__name *n) {
  size_t len = n->len, k;
  const char *p;

  if (n->at == len && (p = memchr(n->s, '!', len)) != NULL) {
    char user[OBSPAM_NAME_MAX + 1];

    k = (size_t)(p - n->s); /* the site is s[0..k), the user after it */
    if (k == 0 || k + 1 == len)
      return;
    memcpy(user, p + 1, len - k - 1);
    memmove(n->s + len - k, n->s, k);
    memcpy(n->s, user, len - k - 1);
    n->s[len - k - 1] = '@';
    n->at = len - k - 1;
  } else if (n->at == len) {
    for (k = len; k > 0 && n->s[k - 1] != '%'; k--)
      ;
    if (k <= 1 || k == len) /* none, or an empty part */
      return;
    n->s[k - 1] = '@';
    n->at = k - 1;
  }
  if (n->at < len && len >= 2 && n->s[len - 1] == '.' && n->s[len - 2] != '.' &&
      len - 2 != n->at) {
    n->s[--len] = '\0';
    n->len = len;
  }
}

const char *obspam__name_norm(const char *in, int shape, obspam__name *out) {
  size_t i = 0, len, end, ats = 0;
  const char *why = NULL;

  if (in == NULL)
    return "name is missing";
  out->at = 0;
  /* The bytes before the limit are checked first: a blank among them is
     the reason given even when the text is also too long. */
  len = strnlen(in, OBSPAM_NAME_MAX + 1);
  end = len > OBSPAM_NAME_MAX ? OBSPAM_NAME_MAX : len;
#if defined(__SSE2__)
  for (; i + 16 <= end && why == NULL; i += 16)
    why = block(in, i, 0xffffu, out, &ats);
  /* The last bytes as the end of a block, as the words do below. */
  if (why == NULL && i < end && end >= 16) {
    why = block(in, end - 16, 0xffffu << (16 - (end - i)), out, &ats);
    i = end;
  }
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  /* A text shorter than a block, or every text without SSE2. */
  for (; i + 8 <= end && why == NULL; i += 8)
    why = word(in, i, HIGHS, out, &ats);
  /* The last bytes as the end of a word that the ones before them start,
     counted once (fresh): they are read and written again unchanged. */
  if (why == NULL && i < end && end >= 8) {
    why = word(in, end - 8, HIGHS << (8 * (8 - (end - i))), out, &ats);
    i = end;
  }
#endif
  if (why == NULL) /* a text shorter than a word */
    why = bytes(in, i, end, out, &ats);
  if (why != NULL)
    return why;
  if (len > OBSPAM_NAME_MAX)
    return "name is longer than 320 bytes";
  i = len;
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
