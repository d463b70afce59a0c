/* SPDX-License-Identifier: MIT */
/* Little-endian byte encoding: a growing buffer to write into, and a
   reader that cannot run past its end. The snapshot and the journal are
   written and read with these. */
#include <stdlib.h>
#include <string.h>

#include "codec.h"

void obspam__buf_put(obspam__buf *b, const void *p, size_t n) {
  if (b->failed || n == 0)
    return;
  if (b->cap - b->len < n) {
    size_t cap = b->cap ? b->cap : 4096;
    uint8_t *grown;

    while (cap - b->len < n)
      cap *= 2;
    grown = realloc(b->p, cap);
    if (grown == NULL) {
      b->failed = 1;
      return;
    }
    b->p = grown;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

static void put_le(obspam__buf *b, uint64_t v, int bytes) {
  uint8_t le[8];
  int i;

  for (i = 0; i < bytes; i++)
    le[i] = (uint8_t)(v >> (8 * i));
  obspam__buf_put(b, le, (size_t)bytes);
}

void obspam__buf_u8(obspam__buf *b, uint8_t v) { put_le(b, v, 1); }
void obspam__buf_u16(obspam__buf *b, uint16_t v) { put_le(b, v, 2); }
void obspam__buf_u32(obspam__buf *b, uint32_t v) { put_le(b, v, 4); }
void obspam__buf_i64(obspam__buf *b, int64_t v) { put_le(b, (uint64_t)v, 8); }

const uint8_t *obspam__get_bytes(obspam__reader *r, size_t n) {
  const uint8_t *p = r->p;

  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = 1;
    return NULL;
  }
  r->p += n;
  return p;
}

/* The next bytes (1 to 8) as a little-endian number; 0 once the input is
   exhausted, which sets bad. */
static uint64_t get_le(obspam__reader *r, int bytes) {
  const uint8_t *p = obspam__get_bytes(r, (size_t)bytes);
  uint64_t v = 0;
  int i;

  for (i = 0; p != NULL && i < bytes; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* The getters differ only in their type, whose size is the width read;
   bad, which nothing clears, says whether this read or an earlier one ran
   out. */
#define GETTER(name, type)                                                     \
  int obspam__get_##name(obspam__reader *r, type *v) {                         \
    *v = (type)get_le(r, (int)sizeof(type));                                   \
    return r->bad ? -1 : 0;                                                    \
  }

GETTER(u8, uint8_t)
GETTER(u16, uint16_t)
GETTER(u32, uint32_t)
GETTER(i64, int64_t)
