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

static int get_le(obspam__reader *r, uint64_t *v, int bytes) {
  const uint8_t *p = obspam__get_bytes(r, (size_t)bytes);
  int i;

  if (p == NULL)
    return -1;
  *v = 0;
  for (i = 0; i < bytes; i++)
    *v |= (uint64_t)p[i] << (8 * i);
  return 0;
}

int obspam__get_u8(obspam__reader *r, uint8_t *v) {
  uint64_t x = 0;
  int rc = get_le(r, &x, 1);

  *v = (uint8_t)x;
  return rc;
}

int obspam__get_u16(obspam__reader *r, uint16_t *v) {
  uint64_t x = 0;
  int rc = get_le(r, &x, 2);

  *v = (uint16_t)x;
  return rc;
}

int obspam__get_u32(obspam__reader *r, uint32_t *v) {
  uint64_t x = 0;
  int rc = get_le(r, &x, 4);

  *v = (uint32_t)x;
  return rc;
}

int obspam__get_i64(obspam__reader *r, int64_t *v) {
  uint64_t x = 0;
  int rc = get_le(r, &x, 8);

  *v = (int64_t)x;
  return rc;
}
