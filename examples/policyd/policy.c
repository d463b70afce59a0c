/* SPDX-License-Identifier: MIT */
/* The Postfix policy request parser: a byte-at-a-time state machine over
   fixed-size fields (see policy.h). Nothing here allocates, blocks or
   logs; errors are returned as text for the caller to log. */
#include "policy.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The kept attributes, in the order of enum policy_attr, with their
   lengths. */
#define ATTR(name)                                                             \
  { name, sizeof(name) - 1 }
static const struct {
  const char *name;
  size_t len;
} attr_names[POLICY_ATTR_COUNT] = {
    ATTR("request"),    ATTR("protocol_state"), ATTR("sasl_username"),
    ATTR("sender"),     ATTR("client_address"), ATTR("recipient_count"),
    ATTR("instance"),   ATTR("queue_id"),       ATTR("recipient"),
    ATTR("obspam_uid"), ATTR("obspam_script")};

void policy_reset(policy_req *r) {
  int i;

  /* An absent attribute's text, len and cut are never read (policy.h), so
     that the next request needs only the present flags cleared: a reset
     stays a few stores, not a write to each value's cache line. */
  for (i = 0; i < POLICY_ATTR_COUNT; i++)
    r->attr[i].present = 0;
  r->name[0] = '\0';
  r->name_len = 0;
  r->in_value = 0;
  r->name_cut = 0;
  r->pending_cr = 0;
  r->failed = 0;
  r->target = -1;
  r->line_len = 0;
  r->request_len = 0;
  r->attrs = 0;
  r->line = 1;
  r->error[0] = '\0';
}

/* Copies at most 64 bytes of untrusted text for an error message. A
   control byte, a byte of 0x7f or more and a backslash are written as
   \xNN, so that the log line stays one line of plain ASCII (a syslog
   reader or a terminal is given no raw bytes) and still shows exactly
   what was sent. The copy is cut where the next character would not
   fit, never inside an escape. */
static void quote(char *out, size_t size, const char *in, size_t len) {
  size_t i, j = 0, n = len < 64 ? len : 64;

  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)in[i];

    if (c < 0x20 || c >= 0x7f || c == '\\') {
      if (j + 4 >= size)
        break;
      snprintf(out + j, 5, "\\x%02x", c);
      j += 4;
    } else {
      if (j + 1 >= size)
        break;
      out[j++] = (char)c;
    }
  }
  out[j] = '\0';
}

static int fail(policy_req *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(policy_req *r, const char *fmt, ...) {
  int n = snprintf(r->error, sizeof(r->error), "line %u: ", r->line);
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(r->error + n, sizeof(r->error) - (size_t)n, fmt, ap);
  va_end(ap);
  r->failed = 1;
  return POLICY_ERROR;
}

static int lookup(const char *name, size_t len) {
  int i;

  /* Most of the thirty-odd attributes Postfix sends are not kept: the
     length and first byte rule them out before any comparison. */
  for (i = 0; i < POLICY_ATTR_COUNT; i++)
    if (attr_names[i].len == len && attr_names[i].name[0] == name[0] &&
        memcmp(name, attr_names[i].name, len) == 0)
      return i;
  return -1;
}

/* The helpers of whole_lines, inlined into each of its versions: the
   compiler inlines nothing of the default instruction set into a
   function of another (AVX2) unless told. */
#define INLINE static inline __attribute__((always_inline))

/* Loads of 4 and 8 bytes at any alignment. The same load of a string
   literal compiles to a constant, in either byte order. */
static inline uint32_t load4(const char *p) {
  uint32_t w;

  memcpy(&w, p, 4);
  return w;
}

static inline uint64_t load8(const char *p) {
  uint64_t w;

  memcpy(&w, p, 8);
  return w;
}

/* Whether the len bytes at name (4 to 16) are those of kept attribute a:
   two loads that overlap when len is not their size, each compared with
   a constant once inlined. It reads only the len bytes of name. */
static inline int is_attr(const char *name, size_t len, int a) {
  const char *s = attr_names[a].name;

  if (len >= 8)
    return load8(name) == load8(s) &&
           load8(name + len - 8) == load8(s + len - 8);
  return load4(name) == load4(s) && load4(name + len - 4) == load4(s + len - 4);
}

/* lookup for the lines taken whole, which gives the kept attribute's
   value in r (NULL for a name not kept): each case's address is a
   constant offset from r. The name's length leaves one or two kept
   attributes (and rules out most of the attributes Postfix sends), and
   one comparison of fixed length tells. short_name says that len is
   below 32, as it is for a name found in a line's first chunk: its
   bit in lengths then needs no check of len before. lookup stays the
   reference, for the byte path. Every name of attr_names must have its
   case. */
_Static_assert(POLICY_ATTR_COUNT == 11,
               "lookup_fast and the tests' kept_names list every kept name");
INLINE policy_value *lookup_fast(policy_req *r, const char *name, size_t len,
                                 int short_name) {
#define IS(a) (is_attr(name, len, a) ? &r->attr[a] : NULL)
#define EITHER(a, b) (is_attr(name, len, a) ? &r->attr[a] : IS(b))
  /* The lengths of the kept names, as bits: most other names are ruled
     out by a test that costs less than the switch's jump. */
  const uint32_t lengths = 1u << 6 | 1u << 7 | 1u << 8 | 1u << 9 | 1u << 10 |
                           1u << 13 | 1u << 14 | 1u << 15;

  if ((!short_name && len > 15) || !(lengths >> len & 1))
    return NULL;
  switch (len) {
  case 6:
    return IS(POLICY_SENDER);
  case 7:
    return IS(POLICY_REQUEST);
  case 8:
    return EITHER(POLICY_INSTANCE, POLICY_QUEUE_ID);
  case 9:
    return IS(POLICY_RECIPIENT);
  case 10:
    return IS(POLICY_OBSPAM_UID);
  case 13:
    return EITHER(POLICY_SASL_USERNAME, POLICY_OBSPAM_SCRIPT);
  case 14:
    return EITHER(POLICY_PROTOCOL_STATE, POLICY_CLIENT_ADDRESS);
  case 15:
    return IS(POLICY_RECIPIENT_COUNT);
  default:
    /* lengths leaves no other: no range check before the jump. */
    __builtin_unreachable();
  }
#undef IS
#undef EITHER
}

#if defined(__GNUC__) && defined(__BYTE_ORDER__) &&                            \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WORDWISE 1
#define ONES 0x0101010101010101u

/* The bytes of x that are zero, as their high bits; above the lowest zero
   byte a bit may be set falsely (a borrow), never below it. */
static uint64_t zero_bytes(uint64_t x) { return (x - ONES) & ~x & (ONES << 7); }
#endif

/* The length of the run of data that holds none of the bytes the parser
   must look at one by one: '\n', '\r', NUL, and '=' while in a name. Eight
   bytes at a time where the compiler allows it: the first special byte is
   the lowest byte flagged in any of the four masks. */
static size_t plain_run(const char *data, size_t len, int in_value) {
  size_t k = 0;
#ifdef WORDWISE
  const uint64_t eq = ONES * (uint64_t)(in_value ? '\n' : '=');

  for (; k + 8 <= len; k += 8) {
    uint64_t w, m;

    memcpy(&w, data + k, 8);
    m = zero_bytes(w ^ (ONES * '\n')) | zero_bytes(w ^ (ONES * '\r')) |
        zero_bytes(w) | zero_bytes(w ^ eq);
    if (m != 0)
      return k + (size_t)__builtin_ctzll(m) / 8;
  }
#endif
  for (; k < len; k++) {
    char c = data[k];

    if (c == '\n' || c == '\r' || c == '\0' || (!in_value && c == '='))
      break;
  }
  return k;
}

/* Appends run[0..k) to text, which holds *len bytes of at most max: what
   fits, NUL-terminated. Returns whether some of it did not fit. */
static int append(char *text, uint16_t *len, size_t max, const char *run,
                  size_t k) {
  size_t room = max - *len, n = k < room ? k : room;

  memcpy(text + *len, run, n);
  *len = (uint16_t)(*len + n);
  text[*len] = '\0';
  return k > room;
}

/* Bytes of a line that are neither its '\n' nor a '\r' that may come
   before one, to the current value (whose attribute is kept or not) or
   name: the k bytes of a run of plain bytes (plain_run), or one other.
   Inline in both callers: as a call, it costs a fragmented request (one
   fed 7 bytes at a time) 4% more instructions. */
static inline void put_run(policy_req *r, const char *run, size_t k) {
  if (r->in_value) {
    policy_value *v = r->target >= 0 ? &r->attr[r->target] : NULL;

    if (v != NULL && append(v->text, &v->len, POLICY_VALUE_MAX, run, k))
      v->cut = 1;
  } else if (append(r->name, &r->name_len, POLICY_NAME_MAX, run, k)) {
    r->name_cut = 1;
  }
}

/* memcpy for the few bytes of a value: compilers tend to expand a memcpy
   of unknown length into a string instruction whose start-up costs more
   than such a copy. */
static void copy_short(char *dst, const char *src, size_t n) {
  size_t j = 0;

  for (; j + 8 <= n; j += 8)
    memcpy(dst + j, src + j, 8);
  for (; j < n; j++)
    dst[j] = src[j];
}

/* whole_lines looks for two kinds of bytes: those that stop a line taken
   whole, the control bytes up to '\r' ('\n', and '\r', NUL and the rare
   others, for the byte path), and the '=' that ends the name. It finds
   them a chunk at a time (policy_lines.h): with AVX2 when the processor
   has it, 32 bytes; else with SSE2 (part of x86-64), 16 bytes; else in
   little-endian words, 8 bytes; else one byte at a time. For the tests,
   POLICY_SCAN_SSE2, POLICY_SCAN_WORDS or POLICY_SCAN_BYTES leaves the
   ways before it out. */
#if defined(POLICY_SCAN_BYTES)
#define SCAN_BYTES 1
#elif defined(POLICY_SCAN_WORDS) || !defined(__SSE2__)
#define SCAN_WORDS 1
#elif defined(POLICY_SCAN_SSE2) || !defined(__x86_64__) || !defined(__GNUC__)
#define SCAN_SSE2 1
#else
#define SCAN_SSE2 1
#define SCAN_AVX2 1
#endif

/* A kept value of a line taken whole: the vlen bytes at src, of which
   readable can be read, copied sixteen bytes at a time past the end of
   the value (into the rest of text, whose NUL follows) where both src
   and text hold the bytes, as they do but at the end of a read. */
_Static_assert(POLICY_VALUE_MAX % 16 == 0,
               "put_value's copy never runs past text");
INLINE void put_value(policy_value *v, const char *src, size_t vlen,
                      size_t readable) {
  const size_t k = vlen < POLICY_VALUE_MAX ? vlen : POLICY_VALUE_MAX;
  size_t j;

  if (k <= 32 && readable >= 32) {
    /* Most values: two copies, whatever their length. */
    memcpy(v->text, src, 16);
    memcpy(v->text + 16, src + 16, 16);
  } else if (((k + 15) & ~(size_t)15) <= readable) {
    for (j = 0; j < k; j += 16)
      memcpy(v->text + j, src + j, 16);
  } else {
    copy_short(v->text, src, k);
  }
  v->text[k] = '\0';
  v->len = (uint16_t)k;
  v->present = 1;
  v->cut = vlen > POLICY_VALUE_MAX;
}

#if defined(SCAN_SSE2)
#include <emmintrin.h>

static inline uint64_t sse2_stops(const char *p) {
  const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);

  /* A byte up to '\r' is its own minimum with '\r'. */
  return (unsigned)_mm_movemask_epi8(
      _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8('\r')), v));
}

static inline uint64_t sse2_eqs(const char *p) {
  const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);

  return (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('=')));
}

#define LINES(name) name##_sse2
#define TARGET
#define CTZ(m) ((size_t)__builtin_ctzll(m))
#define CHUNK 16
#define MASK_BITS 1
#define STOPS sse2_stops
#define EQS sse2_eqs
#include "policy_lines.h"
#define whole_lines_default whole_lines_sse2
#endif

#if defined(SCAN_AVX2)
#include <immintrin.h>

__attribute__((target("avx2"))) static inline uint64_t
avx2_stops(const char *p) {
  const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);

  return (unsigned)_mm256_movemask_epi8(
      _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8('\r')), v));
}

__attribute__((target("avx2"))) static inline uint64_t avx2_eqs(const char *p) {
  const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);

  return (unsigned)_mm256_movemask_epi8(
      _mm256_cmpeq_epi8(v, _mm256_set1_epi8('=')));
}

/* With BMI1's tzcnt of 64 bits, which every processor with AVX2 has,
   the count needs no sign extension to become an offset: two
   instructions fewer a line. */
#define LINES(name) name##_avx2
#define TARGET __attribute__((target("avx2,bmi")))
#define CTZ(m) ((size_t)__builtin_ia32_tzcnt_u64(m))
#define CHUNK 32
#define MASK_BITS 1
#define STOPS avx2_stops
#define EQS avx2_eqs
#include "policy_lines.h"
#endif

#if defined(SCAN_WORDS) && defined(WORDWISE)
#define LOW7 (ONES * 0x7f)

/* The low seven bits of a byte plus 0x72 reach bit 7 from 14 up, and plus
   0x7f from 1 up; no carry crosses into the next byte. */
static inline uint64_t word_stops(const char *p) {
  const uint64_t w = load8(p);

  return ~(((w & LOW7) + ONES * (0x7f - '\r')) | w) & (ONES << 7);
}

static inline uint64_t word_eqs(const char *p) {
  const uint64_t w = load8(p) ^ (ONES * '=');

  return ~(((w & LOW7) + LOW7) | w) & (ONES << 7);
}

#define LINES(name) name##_words
#define TARGET
#define CTZ(m) ((size_t)__builtin_ctzll(m))
#define CHUNK 8
#define MASK_BITS 8
#define STOPS word_stops
#define EQS word_eqs
#include "policy_lines.h"
#define whole_lines_default whole_lines_words
#elif defined(SCAN_WORDS) || defined(SCAN_BYTES)
#define LINES(name) name##_bytes
#define TARGET
#define CTZ(m) ((size_t)__builtin_ctzll(m))
#include "policy_lines.h"
#define whole_lines_default whole_lines_bytes
#endif

/* The way of this processor, chosen once, before main: policy_feed calls
   it through this pointer, with no function of its own between them to
   test the processor at each request. Not inlined into policy_feed,
   whose loop would make the compiler shuffle registers around each line
   (2% more instructions). */
static size_t (*whole_lines)(policy_req *r, const char *data,
                             size_t len) = whole_lines_default;

#if defined(SCAN_AVX2)
__attribute__((constructor)) static void whole_lines_choose(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi"))
    whole_lines = whole_lines_avx2;
}
#endif

/* One byte of a line that is neither its '\n' nor a '\r' that may come
   before one. */
static int put_byte(policy_req *r, char c) {
  if (r->in_value || c != '=') {
    put_run(r, &c, 1);
    return POLICY_MORE;
  }
  if (r->name_len == 0)
    return fail(r, "attribute without a name");
  if (++r->attrs > POLICY_ATTRS_MAX)
    return fail(r, "more than %d attributes", POLICY_ATTRS_MAX);
  r->in_value = 1;
  r->target = r->name_cut ? -1 : lookup(r->name, r->name_len);
  if (r->target >= 0) {
    /* A repeated attribute keeps its last value. */
    policy_value *v = &r->attr[r->target];

    v->present = 1;
    v->cut = 0;
    v->len = 0;
    v->text[0] = '\0';
  }
  return POLICY_MORE;
}

/* Whether a value is a number up to max (recipient_count, obspam_uid). */
static int number_value(const policy_value *v, uint64_t max) {
  uint64_t n = 0;
  uint16_t i;

  if (v->cut)
    return 0;
  for (i = 0; i < v->len; i++) {
    char c = v->text[i];

    if (c < '0' || c > '9')
      return 0;
    if ((n = n * 10 + (uint64_t)(c - '0')) > max)
      return 0;
  }
  return 1;
}

#define SMTPD_ACCESS_POLICY "smtpd_access_policy"

/* Checks a request whose empty line has arrived. */
static int finish(policy_req *r) {
  const policy_value *req = &r->attr[POLICY_REQUEST];
  const policy_value *rc = &r->attr[POLICY_RECIPIENT_COUNT];
  const policy_value *uid = &r->attr[POLICY_OBSPAM_UID];
  char q[72];

  if (!req->present)
    return fail(r, "the request has no 'request' attribute");
  /* A value holds no NUL: its length and bytes are strcmp's answer. */
  if (req->cut || req->len != sizeof(SMTPD_ACCESS_POLICY) - 1 ||
      memcmp(req->text, SMTPD_ACCESS_POLICY, req->len) != 0) {
    quote(q, sizeof(q), req->text, req->len);
    return fail(r, "unsupported request '%s'", q);
  }
  if (rc->present && rc->len > 0 && !number_value(rc, OBSPAM_RECIPIENTS_MAX)) {
    quote(q, sizeof(q), rc->text, rc->len);
    return fail(r, "bad recipient_count '%s': expected a number up to 2^31", q);
  }
  if (uid->present && uid->len > 0 && !number_value(uid, UINT32_MAX)) {
    quote(q, sizeof(q), uid->text, uid->len);
    return fail(r, "bad obspam_uid '%s': expected a number below 2^32", q);
  }
  return POLICY_COMPLETE;
}

/* The '\n' of a line. */
static int end_line(policy_req *r) {
  if (!r->in_value) {
    if (r->name_len > 0 || r->name_cut) {
      char q[72];

      quote(q, sizeof(q), r->name, r->name_len);
      return fail(r, "'%s%s' is not NAME=VALUE", q, r->name_cut ? "..." : "");
    }
    if (r->attrs == 0) {
      /* An empty line between requests is not a request. */
      r->line_len = 0;
      r->request_len = 0;
      return POLICY_MORE;
    }
    return finish(r);
  }
  r->in_value = 0;
  r->name_len = 0;
  r->name_cut = 0;
  r->name[0] = '\0';
  r->target = -1;
  r->line_len = 0;
  r->line++;
  return POLICY_MORE;
}

int policy_feed(policy_req *r, const char *data, size_t len, size_t *used) {
  size_t i;
  int rc = POLICY_MORE;

  if (r->failed) {
    *used = 0;
    return POLICY_ERROR;
  }
  for (i = 0; i < len; i++) {
    char c;

    /* The fast paths: the ordinary lines that follow are taken whole, or
       else a run of ordinary bytes within the limits is taken at once;
       anything else goes byte by byte below. */
    if (!r->pending_cr && !r->in_value && r->line_len == 0 &&
        r->name_len == 0 && !r->name_cut) {
      i += whole_lines(r, data + i, len - i);
      if (i == len)
        break;
    }
    c = data[i];
    /* A line's '\n' is no run, and often a request's end, right after
       its lines taken whole. */
    if (!r->pending_cr && c != '\n') {
      /* A run is looked for only as far as the limits allow: the bytes
         up to them are taken as a run, and the byte past them is refused
         below. Looking further would scan a long line's run again at
         each of its bytes past the limit. */
      size_t room = POLICY_LINE_MAX - r->line_len, k;

      if (room > POLICY_REQUEST_MAX - r->request_len)
        room = POLICY_REQUEST_MAX - r->request_len;
      k = plain_run(data + i, len - i < room ? len - i : room, r->in_value);
      if (k > 1) {
        r->request_len += k;
        r->line_len += k;
        put_run(r, data + i, k);
        i += k - 1;
        continue;
      }
    }
    if (++r->request_len > POLICY_REQUEST_MAX) {
      rc = fail(r, "the request is longer than %d bytes", POLICY_REQUEST_MAX);
      break;
    }
    if (c == '\n') {
      r->pending_cr = 0;
      rc = end_line(r);
      if (rc != POLICY_MORE)
        break;
      continue;
    }
    if (c == '\0') {
      rc = fail(r, "NUL byte");
      break;
    }
    if (++r->line_len > POLICY_LINE_MAX) {
      rc = fail(r, "line is longer than %d bytes", POLICY_LINE_MAX);
      break;
    }
    /* A '\r' is held back until the next byte shows whether it ends the
       line ("\r\n") or belongs to it. */
    if (r->pending_cr) {
      r->pending_cr = 0;
      rc = put_byte(r, '\r');
      if (rc != POLICY_MORE)
        break;
    }
    if (c == '\r') {
      r->pending_cr = 1;
      continue;
    }
    rc = put_byte(r, c);
    if (rc != POLICY_MORE)
      break;
  }
  *used = i < len ? i + 1 : len;
  return rc;
}

/* policy_get for a valid a. The exported functions are not inlined in a
   position-independent build (a program may interpose them): those
   below read values through this one and count_of. */
static inline const char *value_of(const policy_req *r, enum policy_attr a) {
  return r->attr[a].present ? r->attr[a].text : NULL;
}

const char *policy_get(const policy_req *r, enum policy_attr a) {
  if ((int)a < 0 || a >= POLICY_ATTR_COUNT)
    return NULL;
  return value_of(r, a);
}

/* A value, or NULL when it is absent or empty. */
static const char *nonempty(const policy_req *r, enum policy_attr a) {
  const char *s = value_of(r, a);

  return s != NULL && s[0] != '\0' ? s : NULL;
}

/* inet_pton(AF_INET) without its call: four numbers of one to three
   digits, each up to 255 and without a leading zero, joined by dots.
   Each number is read digit by digit without a loop: the byte after a
   digit tells whether the number goes on, a fourth digit is refused as
   the wrong separator, and only a number of three digits can be over
   255. s is NUL-terminated, so that a byte after a digit can be read. */
static inline int is_quad(const char *s) {
  int part;

  for (part = 0; part < 4; part++) {
    unsigned a = (unsigned)(unsigned char)s[0] - '0', b, c;

    if (a > 9)
      return 0;
    b = (unsigned)(unsigned char)s[1] - '0';
    if (b > 9) {
      s += 1;
    } else {
      if (a == 0)
        return 0;
      c = (unsigned)(unsigned char)s[2] - '0';
      if (c > 9) {
        s += 2;
      } else {
        if (a * 100 + b * 10 + c > 255)
          return 0;
        s += 3;
      }
    }
    if (*s++ != (part < 3 ? '.' : '\0'))
      return 0;
  }
  return 1;
}

/* An IPv6 address always holds a ':', which no IPv4 one does. Out of
   line: the dotted quad of most requests then needs none of the
   registers that the calls of this one would have policy_message save. */
__attribute__((noinline)) static int is_ip6(const char *s) {
  unsigned char buf[16];

  return strchr(s, ':') != NULL && inet_pton(AF_INET6, s, buf) == 1;
}

static inline int is_ip(const char *s) { return is_quad(s) || is_ip6(s); }

/* The stage of a protocol_state, compared as strcasecmp would. The four
   letters of RCPT and DATA match in either case exactly when they do with
   the case bit (0x20) set; END-OF-MESSAGE, whose '-' that bit would
   confuse with '\r', is compared as Postfix sends it first. */
static enum policy_stage stage_of(const policy_value *v) {
  if (!v->present)
    return POLICY_STAGE_OTHER;
  if (v->len == 4) {
    uint32_t w = load4(v->text) | 0x20202020u;

    if (w == load4("rcpt"))
      return POLICY_STAGE_RCPT;
    if (w == load4("data"))
      return POLICY_STAGE_DATA;
  } else if (v->len == 14 && (memcmp(v->text, "END-OF-MESSAGE", 14) == 0 ||
                              strcasecmp(v->text, "END-OF-MESSAGE") == 0)) {
    return POLICY_STAGE_EOM;
  }
  return POLICY_STAGE_OTHER;
}

int policy_claims_uid(const policy_req *r) {
  return nonempty(r, POLICY_OBSPAM_UID) != NULL;
}

static uint32_t count_of(const policy_req *r) {
  const char *count = nonempty(r, POLICY_RECIPIENT_COUNT);
  uint32_t n = 0;

  /* policy_feed accepted the count: digits only, at most 2^31. */
  for (; count != NULL && *count != '\0'; count++)
    n = n * 10 + (uint32_t)(*count - '0');
  return n;
}

uint32_t policy_recipient_count(const policy_req *r) { return count_of(r); }

enum policy_stage policy_message(const policy_req *r, obspam_message *m) {
  const char *addr = nonempty(r, POLICY_CLIENT_ADDRESS);
  const char *uid = nonempty(r, POLICY_OBSPAM_UID);
  enum policy_stage stage = stage_of(&r->attr[POLICY_PROTOCOL_STATE]);
  uint32_t n = count_of(r);

  m->sasl_username = nonempty(r, POLICY_SASL_USERNAME);
  m->sender = nonempty(r, POLICY_SENDER);
  m->client_address = addr != NULL && is_ip(addr) ? addr : NULL;
  m->recipients = 1;
  if ((stage == POLICY_STAGE_DATA || stage == POLICY_STAGE_EOM) && n > 1)
    m->recipients = n;
  if (uid != NULL) {
    /* policy_feed accepted it: digits only, below 2^32. A path that was
       cut is not the script's path: reports would show a wrong one. */
    int64_t u = 0;

    for (; *uid != '\0'; uid++)
      u = u * 10 + (*uid - '0');
    m->flags |= OBSPAM_MSG_SCRIPT;
    m->uid = u;
    m->client_address = NULL;
    if (value_of(r, POLICY_OBSPAM_SCRIPT) != NULL &&
        !r->attr[POLICY_OBSPAM_SCRIPT].cut)
      m->script = nonempty(r, POLICY_OBSPAM_SCRIPT);
  }
  return stage;
}

const char *policy_state_name(const policy_req *r) {
  const policy_value *v = &r->attr[POLICY_PROTOCOL_STATE];
  uint16_t i;

  if (!v->present || v->len == 0)
    return "-";
  if (v->len > 16)
    return "?";
  for (i = 0; i < v->len; i++) {
    char c = v->text[i];

    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-'))
      return "?";
  }
  return v->text;
}
