/* SPDX-License-Identifier: MIT */
#include "names.h"

#include <stdint.h>
#include <string.h>

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
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
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
