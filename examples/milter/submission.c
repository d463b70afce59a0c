/* SPDX-License-Identifier: MIT */
/* See submission.h. */
#include "submission.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int digit(char c) { return c >= '0' && c <= '9'; }

int sub_is_local_client(const char *addr, long port) {
  unsigned char buf[sizeof(struct in6_addr)];

  if (addr == NULL || addr[0] == '\0')
    return 1;
  /* Postfix sends "unknown" for an address it could not tell; nothing
     such comes from a real TCP client, but neither is it evidence of one. */
  if (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1)
    return 1;
  if (port != 0)
    return 0;
  return strcmp(addr, "127.0.0.1") == 0 || strcmp(addr, "::1") == 0 ||
         strcmp(addr, "::ffff:127.0.0.1") == 0;
}

void sub_client_address(const char *in, char *out, size_t size) {
  size_t len;

  if (size == 0)
    return;
  if (in == NULL)
    in = "";
  len = strlen(in);
  /* Only a matched pair of brackets is an address literal. */
  if (len >= 2 && in[0] == '[' && in[len - 1] == ']') {
    in++;
    len -= 2;
  }
  if (len >= 5 && strncasecmp(in, "IPv6:", 5) == 0) {
    in += 5;
    len -= 5;
  }
  if (len > size - 1)
    len = size - 1;
  memcpy(out, in, len);
  out[len] = '\0';
}

/* Reads a uid: 1 to 10 digits, at most 4294967295. Returns -1 otherwise;
 *end gets the first byte after the digits. */
static int64_t read_uid(const char *s, const char **end) {
  int64_t v = 0;
  int n = 0;

  while (digit(s[n])) {
    if (n == 10)
      return -1;
    v = v * 10 + (s[n] - '0');
    n++;
  }
  if (n == 0 || v > 4294967295LL)
    return -1;
  *end = s + n;
  return v;
}

int64_t sub_pickup_marker(const char *v, char *qid, size_t qid_size) {
  const char *p;
  int64_t uid;
  size_t n = 0;

  if (v == NULL || qid_size == 0)
    return -1;
  while (blank(*v))
    v++;
  if (strncmp(v, "uid=", 4) != 0)
    return -1;
  uid = read_uid(v + 4, &p);
  if (uid < 0 || strncmp(p, " id=", 4) != 0)
    return -1;
  p += 4;
  while ((p[n] >= '0' && p[n] <= '9') || (p[n] >= 'A' && p[n] <= 'Z') ||
         (p[n] >= 'a' && p[n] <= 'z')) {
    if (n + 1 >= qid_size)
      return -1;
    qid[n] = p[n];
    n++;
  }
  if (n == 0)
    return -1;
  qid[n] = '\0';
  for (p += n; *p != '\0'; p++)
    if (!blank(*p))
      return -1;
  return uid;
}

int64_t sub_php_script(const char *value, const char **file, size_t *file_len) {
  const char *p, *f;
  size_t n;
  int64_t uid;

  if (value == NULL)
    return -1;
  while (blank(*value))
    value++;
  uid = read_uid(value, &p);
  if (uid < 0 || *p != ':')
    return -1;
  f = p + 1;
  while (blank(*f))
    f++;
  n = strlen(f);
  while (n > 0 && blank(f[n - 1]))
    n--;
  if (n == 0)
    return -1;
  *file = f;
  *file_len = n;
  return uid;
}

/* ---- virtual host patterns ---------------------------------------------- */

#define MAX_WILDCARDS 8

int sub_pattern_check(const char *pat, char *err, size_t err_size) {
  size_t i, len;
  int domains = 0, wild = 0, prev_wild = 0;

  if (pat == NULL || pat[0] != '/') {
    snprintf(err, err_size, "the pattern must start with '/'");
    return -1;
  }
  len = strlen(pat);
  if (len > SUB_PATTERN_MAX) {
    snprintf(err, err_size, "the pattern is longer than %d bytes",
             SUB_PATTERN_MAX);
    return -1;
  }
  for (i = 0; i < len; i++) {
    int is_wild = 0;

    if (pat[i] == '*') {
      is_wild = 1;
    } else if (pat[i] == '%') {
      if (pat[i + 1] == 'd') {
        domains++;
        is_wild = 1;
      } else if (pat[i + 1] != '%') {
        snprintf(err, err_size,
                 "'%%' must be followed by 'd' (the domain) or '%%'");
        return -1;
      }
      i++;
    } else if ((unsigned char)pat[i] < 0x20 || pat[i] == 0x7f) {
      snprintf(err, err_size, "the pattern holds a control character");
      return -1;
    }
    /* "*%d" could split one directory name anywhere. */
    if (is_wild && prev_wild) {
      snprintf(err, err_size,
               "two wildcards side by side cannot be told "
               "apart");
      return -1;
    }
    wild += is_wild;
    prev_wild = is_wild;
  }
  if (domains != 1) {
    snprintf(err, err_size,
             "the pattern must hold %%d exactly once (it has %d)", domains);
    return -1;
  }
  if (wild > MAX_WILDCARDS) {
    snprintf(err, err_size, "the pattern holds more than %d wildcards",
             MAX_WILDCARDS);
    return -1;
  }
  return 0;
}

/* Matches pat against s[0..n) from the start; on success the pattern is
   used up and s stands at its end or at a '/' (or the pattern ended with
   '/'). The domain's place is written to *dom and *dom_len. Wildcards never
   cross '/', so each tries the positions of one path component only:
   with at most MAX_WILDCARDS of them the work stays small. */
static int match(const char *pat, const char *s, size_t n, const char **dom,
                 size_t *dom_len, char last) {
  while (*pat != '\0') {
    int is_domain = pat[0] == '%' && pat[1] == 'd';

    if (is_domain || pat[0] == '*') {
      const char *rest = pat + (is_domain ? 2 : 1);
      size_t k;

      /* One or more bytes of this component; the longest first, so that a
         pattern ending in a wildcard takes the whole component. */
      for (k = 0; k < n && s[k] != '/'; k++)
        ;
      for (; k >= 1; k--) {
        if (match(rest, s + k, n - k, dom, dom_len, s[k - 1])) {
          if (is_domain) {
            *dom = s;
            *dom_len = k;
          }
          return 1;
        }
      }
      return 0;
    }
    if (pat[0] == '%' && pat[1] == '%') {
      if (n == 0 || s[0] != '%')
        return 0;
      pat += 2;
    } else {
      if (n == 0 || s[0] != pat[0])
        return 0;
      pat++;
    }
    last = s[0];
    s++;
    n--;
  }
  return n == 0 || s[0] == '/' || last == '/';
}

int sub_pattern_match(const char *pattern, const char *path, size_t len,
                      char *domain, size_t domain_size) {
  const char *dom = NULL;
  size_t dom_len = 0;

  if (!match(pattern, path, len, &dom, &dom_len, '\0') || dom == NULL ||
      dom_len + 1 > domain_size)
    return 0;
  memcpy(domain, dom, dom_len);
  domain[dom_len] = '\0';
  return 1;
}

/* The longest address rewritten as Postfix rewrites it. A longer one is
   no name of the library's (320 bytes at most) whatever it becomes, and
   is cut as it is. */
#define ADDRESS_WORK 512

/* Where a source route ("@a.example,@b.example:") ends in [b, e): after
   its first ':' outside quotes, when something follows; else b. */
static const char *past_route(const char *b, const char *e) {
  const char *p;
  int quoted = 0;

  if (b == e || *b != '@')
    return b;
  for (p = b; p < e; p++) {
    if (*p == '\\' && p + 1 < e)
      p++;
    else if (*p == '"')
      quoted = !quoted;
    else if (*p == ':' && !quoted)
      return p + 1 < e ? p + 1 : b;
  }
  return b;
}

/* Reverses a[i..j) and its quoted marks. */
static void reverse(char *a, unsigned char *q, size_t i, size_t j) {
  while (i + 1 < j) {
    char c = a[i];
    unsigned char m = q[i];

    a[i] = a[j - 1];
    q[i] = q[j - 1];
    a[j - 1] = c;
    q[j - 1] = m;
    i++;
    j--;
  }
}

size_t sub_envelope_address(const char *arg, char *out, size_t size) {
  char a[ADDRESS_WORK];
  unsigned char q[ADDRESS_WORK]; /* 1: the byte was quoted */
  const char *b, *e, *p;
  size_t n = 0, i, copy, at = SIZE_MAX, bang = SIZE_MAX, pct = SIZE_MAX;
  int quoted = 0;

  if (arg == NULL)
    arg = "";
  b = arg;
  while (blank(*b))
    b++;
  e = b + strlen(b);
  while (e > b && blank(e[-1]))
    e--;
  if (e - b >= 2 && b[0] == '<' && e[-1] == '>') {
    b++;
    e--;
  }
  while (b < e && blank(*b))
    b++;
  b = past_route(b, e);
  /* The address as Postfix's tokenizer reads it: quotes and backslashes
     only protect what they hold, blanks and comments outside quotes
     separate nothing. */
  for (p = b; p < e; p++) {
    char c = *p;
    unsigned char m = (unsigned char)quoted;

    if (c == '"') {
      quoted = !quoted;
      continue;
    }
    if (c == '\\' && p + 1 < e) {
      c = *++p;
      m = 1;
    } else if (!quoted && blank(c)) {
      continue;
    } else if (!quoted && c == '(') {
      int depth = 1;

      while (++p < e && depth > 0) {
        if (*p == '\\' && p + 1 < e)
          p++;
        else if (*p == '(')
          depth++;
        else if (*p == ')')
          depth--;
      }
      p--;
      continue;
    }
    if (n < sizeof(a)) {
      a[n] = c;
      q[n] = m;
    }
    n++;
  }
  /* Then as trivial-rewrite(8) canonicalizes it: without an '@', a bang
     path "site!user" becomes "user@site" (swap_bangpath, at the first
     '!'), else "user%site" becomes "user@site" (allow_percent_hack, at
     the last '%'); and one dot at the end of the domain goes. */
  if (n <= sizeof(a)) {
    for (i = 0; i < n; i++) {
      if (q[i])
        continue;
      if (a[i] == '@')
        at = i;
      else if (a[i] == '!' && bang == SIZE_MAX)
        bang = i;
      else if (a[i] == '%')
        pct = i;
    }
    if (at == SIZE_MAX && bang != SIZE_MAX) {
      /* site!user -> resu!etis -> user!site -> user@site */
      reverse(a, q, 0, n);
      reverse(a, q, 0, n - 1 - bang);
      reverse(a, q, n - bang, n);
      a[n - 1 - bang] = '@';
    } else if (at == SIZE_MAX && pct != SIZE_MAX) {
      a[pct] = '@';
    }
    if (n >= 2 && a[n - 1] == '.' && !q[n - 1] &&
        (q[n - 2] || (a[n - 2] != '.' && a[n - 2] != '@')))
      n--;
  }
  if (size > 0) {
    copy = n < size - 1 ? n : size - 1;
    if (copy > sizeof(a))
      copy = sizeof(a);
    memcpy(out, a, copy);
    out[copy] = '\0';
  }
  return n;
}
