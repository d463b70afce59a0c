/* SPDX-License-Identifier: MIT */
/* Little-endian byte encoding, for the snapshot and the journal. The
   bottom layer: it includes nothing of the library. */
#ifndef OBSPAM_CODEC_H
#define OBSPAM_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* A growing byte buffer. */
typedef struct obspam__buf {
  uint8_t *p;
  size_t len, cap;
  int failed; /* an allocation failed: the content is incomplete */
} obspam__buf;

void obspam__buf_put(obspam__buf *b, const void *p, size_t n);
void obspam__buf_u8(obspam__buf *b, uint8_t v);
void obspam__buf_u16(obspam__buf *b, uint16_t v);
void obspam__buf_u32(obspam__buf *b, uint32_t v);
void obspam__buf_i64(obspam__buf *b, int64_t v);

/* Reading: every getter fails (returns -1, sets bad) once the
   input is exhausted, so a truncated file cannot be over-read. */
typedef struct obspam__reader {
  const uint8_t *p, *end;
  int bad;
} obspam__reader;

int obspam__get_u8(obspam__reader *r, uint8_t *v);
int obspam__get_u16(obspam__reader *r, uint16_t *v);
int obspam__get_u32(obspam__reader *r, uint32_t *v);
int obspam__get_i64(obspam__reader *r, int64_t *v);
const uint8_t *obspam__get_bytes(obspam__reader *r, size_t n);

#endif
