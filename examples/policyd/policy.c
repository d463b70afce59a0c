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

  for (i = 0; i < POLICY_ATTR_COUNT; i++) {
    r->attr[i].text[0] = '\0';
    r->attr[i].len = 0;
    r->attr[i].present = 0;
    r->attr[i].cut = 0;
  }
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

/* A whole attribute line at the start of data, taken at once when it is
   ordinary: a name, '=', a value, '\n', no '\r' or NUL, within every
   limit. It leaves r as the byte path would (put_run, put_byte and
   end_line). Returns the bytes it took, its '\n' included, or 0 when the
   line is for the byte path: incomplete, empty, or anything unusual. */
static size_t whole_line(policy_req *r, const char *data, size_t len,
                         size_t clean) {
  const char *nl =
      memchr(data, '\n', len < POLICY_LINE_MAX + 1 ? len : POLICY_LINE_MAX + 1);
  const char *eqp;
  size_t n, eq, vlen;
  int target;

  if (nl == NULL)
    return 0;
  n = (size_t)(nl - data);
  if (n == 0 || r->request_len + n + 1 > POLICY_REQUEST_MAX ||
      r->attrs + 1 > POLICY_ATTRS_MAX)
    return 0;
  /* No '\r' or NUL in the line (known when it lies in the first clean
     bytes), and a name before its first '='. */
  if ((n >= clean && plain_run(data, n, 1) != n) ||
      (eqp = memchr(data, '=', n)) == NULL || eqp == data)
    return 0;
  eq = (size_t)(eqp - data);
  vlen = n - eq - 1;
  r->attrs++;
  target = eq > POLICY_NAME_MAX ? -1 : lookup(data, eq);
  if (target >= 0) {
    policy_value *v = &r->attr[target];
    size_t k = vlen < POLICY_VALUE_MAX ? vlen : POLICY_VALUE_MAX;

    v->present = 1;
    v->cut = vlen > POLICY_VALUE_MAX;
    copy_short(v->text, data + eq + 1, k);
    v->len = (uint16_t)k;
    v->text[k] = '\0';
  }
  r->request_len += n + 1;
  r->line++;
  return n + 1;
}

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

/* Checks a request whose empty line has arrived. */
static int finish(policy_req *r) {
  const policy_value *req = &r->attr[POLICY_REQUEST];
  const policy_value *rc = &r->attr[POLICY_RECIPIENT_COUNT];
  const policy_value *uid = &r->attr[POLICY_OBSPAM_UID];
  char q[72];

  if (!req->present)
    return fail(r, "the request has no 'request' attribute");
  if (req->cut || strcmp(req->text, "smtpd_access_policy") != 0) {
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

/* How many bytes data starts with that are neither '\r' nor NUL. */
static size_t clean_prefix(const char *data, size_t len) {
  const char *cr = memchr(data, '\r', len);
  const char *nul = memchr(data, '\0', cr != NULL ? (size_t)(cr - data) : len);

  return nul != NULL  ? (size_t)(nul - data)
         : cr != NULL ? (size_t)(cr - data)
                      : len;
}

int policy_feed(policy_req *r, const char *data, size_t len, size_t *used) {
  size_t i, clean = clean_prefix(data, len);
  int rc = POLICY_MORE;

  if (r->failed) {
    *used = 0;
    return POLICY_ERROR;
  }
  for (i = 0; i < len; i++) {
    char c = data[i];

    /* The fast paths: a whole ordinary line, or else a run of ordinary
       bytes within the limits, is taken at once; anything else goes byte
       by byte below. */
    if (!r->pending_cr && !r->in_value && r->line_len == 0 &&
        r->name_len == 0 && !r->name_cut) {
      size_t k = whole_line(r, data + i, len - i, clean > i ? clean - i : 0);

      if (k > 0) {
        i += k - 1;
        continue;
      }
    }
    if (!r->pending_cr) {
      size_t k = plain_run(data + i, len - i, r->in_value);

      if (k > 1 && r->request_len + k <= POLICY_REQUEST_MAX &&
          r->line_len + k <= POLICY_LINE_MAX) {
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

const char *policy_get(const policy_req *r, enum policy_attr a) {
  if ((int)a < 0 || a >= POLICY_ATTR_COUNT || !r->attr[a].present)
    return NULL;
  return r->attr[a].text;
}

/* A value, or NULL when it is absent or empty. */
static const char *nonempty(const policy_req *r, enum policy_attr a) {
  const char *s = policy_get(r, a);

  return s != NULL && s[0] != '\0' ? s : NULL;
}

static int is_ip(const char *s) {
  unsigned char buf[16];

  return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int policy_claims_uid(const policy_req *r) {
  return nonempty(r, POLICY_OBSPAM_UID) != NULL;
}

uint32_t policy_recipient_count(const policy_req *r) {
  const char *count = nonempty(r, POLICY_RECIPIENT_COUNT);
  uint32_t n = 0;

  /* policy_feed accepted the count: digits only, at most 2^31. */
  for (; count != NULL && *count != '\0'; count++)
    n = n * 10 + (uint32_t)(*count - '0');
  return n;
}

enum policy_stage policy_message(const policy_req *r, obspam_message *m) {
  const char *state = policy_get(r, POLICY_PROTOCOL_STATE);
  const char *addr = nonempty(r, POLICY_CLIENT_ADDRESS);
  const char *uid = nonempty(r, POLICY_OBSPAM_UID);
  enum policy_stage stage = POLICY_STAGE_OTHER;
  uint32_t n = policy_recipient_count(r);

  if (state != NULL) {
    if (strcasecmp(state, "RCPT") == 0)
      stage = POLICY_STAGE_RCPT;
    else if (strcasecmp(state, "DATA") == 0)
      stage = POLICY_STAGE_DATA;
    else if (strcasecmp(state, "END-OF-MESSAGE") == 0)
      stage = POLICY_STAGE_EOM;
  }
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
    if (!r->attr[POLICY_OBSPAM_SCRIPT].cut)
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
