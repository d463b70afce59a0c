/* SPDX-License-Identifier: MIT */
/* The lines of a request taken whole (policy.c) for one way of finding
   their bytes. policy.c includes this file once for each way it builds,
   after defining:

   LINES(name)  the name of this way's version of a function;
   TARGET       the attributes of its functions (an instruction set);
   CHUNK        the bytes it looks at at a time (left undefined: one);
   MASK_BITS    the bits of a byte in its masks, lowest byte lowest;
   STOPS(p)     the mask of the bytes that stop a line taken whole, the
                control bytes up to '\r', in the chunk at p;
   EQS(p)       the mask of its '=' bytes;
   CTZ(m)       the trailing zero bits of a mask that is not 0, as a size_t.

   Both masks are exact (unlike zero_bytes), so that the bits of bytes
   already looked at may be shifted out. The macros are undefined at the
   end. No include guard: it is meant to be included more than once. */

/* The offset of the first byte from k to end (offsets in data) that stops
   a line taken whole, or with with_eq that is an '=', or end when there is
   none. When fewer than a chunk's bytes are left, the last chunk is the
   one that ends at end, if data holds it, without the bits of the bytes
   before k. */
TARGET static inline size_t LINES(find_stop)(const char *data, size_t k,
                                             size_t end, int with_eq) {
#ifdef CHUNK
  uint64_t m;

  for (; k + CHUNK <= end; k += CHUNK) {
    m = STOPS(data + k) | (with_eq ? EQS(data + k) : 0);
    if (m != 0)
      return k + CTZ(m) / MASK_BITS;
  }
  if (k < end && end >= CHUNK) {
    const char *last = data + end - CHUNK;

    m = (STOPS(last) | (with_eq ? EQS(last) : 0)) >>
        ((k - (end - CHUNK)) * MASK_BITS);
    return m != 0 ? k + CTZ(m) / MASK_BITS : end;
  }
#endif
  for (; k < end; k++)
    if ((unsigned char)data[k] <= '\r' || (with_eq && data[k] == '='))
      break;
  return k;
}

/* The ordinary attribute lines at the start of data, taken at once: each a
   name, '=', a value and '\n', without a control byte up to '\r', within
   every limit. Each leaves r as the byte path would (put_run, put_byte and
   end_line). Returns the bytes taken, their '\n' included; it stops before
   the first line that is for the byte path: incomplete, empty or anything
   unusual. */
TARGET static size_t LINES(whole_lines)(policy_req *r, const char *data,
                                        size_t len) {
  /* The request's limits as bounds of the lines taken: a line is taken
     when its '\n' lies before reach, while lines are left. */
  size_t reach = POLICY_REQUEST_MAX - r->request_len, off = 0;
  unsigned left = POLICY_ATTRS_MAX - r->attrs, lines_max = left;

#ifdef CHUNK
  ptrdiff_t last;

  _Static_assert(CHUNK <= 32, "a name found in a chunk is a short_name");
#endif
  if (reach > len)
    reach = len;
#ifdef CHUNK
  /* The last offset at which a chunk lies before reach (negative when
     none does): one comparison a line. */
  last = (ptrdiff_t)reach - CHUNK;
#endif
  if (left == 0)
    return 0;
  for (;;) {
    size_t eq, n, from = off;
    policy_value *v;

    /* The line's first '=' (eq) and its end (n), which must be a '\n'
       within POLICY_LINE_MAX bytes and before reach. Most names, and many
       whole lines, fit in the line's first chunk; each failed check goes
       straight to the byte path, with no flag to test again. */
#ifdef CHUNK
    if ((ptrdiff_t)off <= last) {
      const uint64_t stops = STOPS(data + off), eqs = EQS(data + off);
      /* The '=' bytes before the first stop (all of them when the chunk
         has none): the name ends at the first of them, which must not be
         the line's first byte. Without one, a stop comes first (the line
         is for the byte path) or neither is in the chunk. */
      const uint64_t named = eqs & (stops - 1);

#if MASK_BITS == 8
      /* A chunk of 8 bytes holds few names: the line whose chunk holds
         neither is told first. (In the order of the wider ways below,
         words cost about 7 instructions a line more; in this one, those
         ways cost about 4 more.) */
      if ((stops | eqs) == 0) {
        from = off + CHUNK;
      } else if (named == 0) {
        break;
      } else {
#else
      if (named == 0) {
        if (stops != 0)
          break;
        from = off + CHUNK;
      } else {
#endif
        if (named & ((uint64_t)1 << (MASK_BITS - 1)))
          break;
        eq = off + CTZ(named) / MASK_BITS;
        if (stops != 0) {
          n = off + CTZ(stops) / MASK_BITS;
          /* A name within a chunk is shorter than 32 bytes: the lookup
             needs no check of its length. */
          v = lookup_fast(r, data + off, eq - off, 1);
          goto line_end;
        }
        /* The next chunk, without find_stop's loop and bound checks. */
        from = off + CHUNK;
        if (off + 2 * CHUNK <= reach) {
          const uint64_t next = STOPS(data + from);

          if (next != 0) {
            n = from + CTZ(next) / MASK_BITS;
            v = lookup_fast(r, data + off, eq - off, 1);
            goto line_end;
          }
          from += CHUNK;
        }
        goto value;
      }
    } else if (last >= 0 && off < reach) {
      /* Fewer than a chunk's bytes left before reach: the chunk that ends
         at reach, without the bits of the bytes before the line. Nothing
         lies past reach, so a line that does not end in it is for the
         byte path. */
      const unsigned shift = (unsigned)(off - (size_t)last) * MASK_BITS;
      const uint64_t stops = STOPS(data + last) >> shift,
                     eqs = EQS(data + last) >> shift, named = eqs & (stops - 1);

      if (named == 0 || (named & ((uint64_t)1 << (MASK_BITS - 1))) ||
          stops == 0)
        break;
      eq = off + CTZ(named) / MASK_BITS;
      n = off + CTZ(stops) / MASK_BITS;
      v = lookup_fast(r, data + off, eq - off, 1);
      goto line_end;
    }
#endif
    eq = LINES(find_stop)(data, from, reach, 1);
    if (eq == reach || eq == off || data[eq] != '=')
      break;
    from = eq + 1;
#ifdef CHUNK
  value:
#endif
    n = LINES(find_stop)(data, from, reach, 0);
    if (n >= reach || n - off > POLICY_LINE_MAX)
      break;
    v = lookup_fast(r, data + off, eq - off, 0);
#ifdef CHUNK
  line_end:
#endif
    if (data[n] != '\n')
      break;
    if (v != NULL)
      put_value(v, data + eq + 1, n - eq - 1, len - eq - 1);
    off = n + 1;
    if (--left == 0)
      break;
  }
  r->request_len += off;
  lines_max -= left;
  r->attrs += lines_max;
  r->line += lines_max;
  return off;
}

#undef LINES
#undef TARGET
#undef CHUNK
#undef MASK_BITS
#undef STOPS
#undef EQS
#undef CTZ
