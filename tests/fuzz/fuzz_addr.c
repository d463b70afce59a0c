/* SPDX-License-Identifier: MIT */
/* Fuzzes the parsers of addresses, networks and names against reference
   implementations written here from the documented rules:

   - obspam_whitelist_add: "A.B.C.D", "A.B.C.D/N" (N 0..32), IPv6 text,
     "IPv6/N" (0..128); the prefix is plain decimal without sign or leading
     zero; bits set beyond the prefix are an error. An accepted network
     exempts exactly the addresses inside it (IPv4 ones in both their forms),
     can be removed once, and is a duplicate while present.
   - obspam_decide's client_address: NULL or "" is local; any other text
     that is not an IPv4 or IPv6 address is OBSPAM_EINVAL.
   - obspam_add's names: 1 to 320 bytes, no byte <= 0x20 or 0x7f; a plan,
     subscription or domain without '@'; a mailbox with exactly one '@'
     between a non-empty local part and domain; ASCII case-insensitive.
     An added name is found, charged and removed under any case.

   Every error message must be one line of printable characters, whatever
   the text it quotes.

   Input: byte 0 chooses the kind of object for the name test; the rest, up
   to the first NUL, is the text given to all three. */
#include <arpa/inet.h>

#include "fuzz.h"

#define T0 1700000000

static void check_errmsg(obspam_engine *e, const char *what) {
  const char *msg = obspam_engine_errmsg(e);
  size_t i;

  FUZZ_CHECK(msg[0] != '\0', "%s: no error message", what);
  for (i = 0; msg[i] != '\0'; i++)
    FUZZ_CHECK((unsigned char)msg[i] >= 0x20 && msg[i] != 0x7f,
               "%s: error message holds control character 0x%02x at %zu", what,
               (unsigned char)msg[i], i);
}

/* ---- networks ------------------------------------------------------------ */

/* The reference parser: 1 and the network (IPv4 mapped into IPv6, prefix
   counted on 128 bits), or 0. */
static int ref_net(const char *text, uint8_t addr[16], int *prefix, int *v4) {
  char buf[256];
  const char *slash = strchr(text, '/');
  size_t len = slash != NULL ? (size_t)(slash - text) : strlen(text);
  struct in_addr a4;
  int bits, i;

  if (len == 0 || len >= sizeof(buf))
    return 0;
  memcpy(buf, text, len);
  buf[len] = '\0';
  if (inet_pton(AF_INET, buf, &a4) == 1) {
    memset(addr, 0, 10);
    addr[10] = addr[11] = 0xff;
    memcpy(addr + 12, &a4, 4);
    bits = 32;
    *v4 = 1;
  } else if (inet_pton(AF_INET6, buf, addr) == 1) {
    bits = 128;
    *v4 = 0;
  } else {
    return 0;
  }
  *prefix = bits;
  if (slash != NULL) {
    const char *p = slash + 1;
    long v = 0;

    if (*p == '\0' || (p[0] == '0' && p[1] != '\0'))
      return 0;
    for (; *p != '\0'; p++) {
      if (*p < '0' || *p > '9')
        return 0;
      v = v * 10 + (*p - '0');
      if (v > bits)
        return 0;
    }
    *prefix = (int)v;
  }
  *prefix += 128 - bits;
  for (i = *prefix; i < 128; i++)
    if (addr[i / 8] & (0x80 >> (i % 8)))
      return 0;
  return 1;
}

/* The text of a 128-bit address: dotted quad for the IPv4 range when v4
   is set, IPv6 text otherwise. */
static void addr_text(const uint8_t a[16], int v4, char *out, size_t size) {
  if (v4)
    inet_ntop(AF_INET, a + 12, out, (socklen_t)size);
  else
    inet_ntop(AF_INET6, a, out, (socklen_t)size);
}

static int decide_action(obspam_engine *e, const char *client) {
  obspam_message m = OBSPAM_MESSAGE_INIT;
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  m.client_address = client;
  m.sender = "info@acme.example";
  m.time = T0;
  FUZZ_RC(obspam_decide(e, &m, &v), OBSPAM_OK);
  return v.action;
}

static void test_network(obspam_engine *e, const char *text) {
  uint8_t addr[16], other[16];
  char buf[INET6_ADDRSTRLEN + 8];
  int prefix = 0, v4 = 0, valid = ref_net(text, addr, &prefix, &v4);
  int rc = obspam_whitelist_add(e, text);

  if (!valid) {
    FUZZ_CHECK(rc == OBSPAM_EINVAL, "whitelist_add('%s') gave %d, want EINVAL",
               text, rc);
    check_errmsg(e, "whitelist_add");
    FUZZ_RC(obspam_whitelist_remove(e, text), OBSPAM_EINVAL);
    return;
  }
  FUZZ_CHECK(rc == OBSPAM_OK, "whitelist_add('%s') gave %d, want OK", text, rc);
  FUZZ_RC(obspam_whitelist_add(e, text), OBSPAM_EEXIST);

  /* The network's own address is inside; with a prefix under 128, flipping
     the first host bit stays inside, flipping the last network bit goes
     out. */
  addr_text(addr, v4, buf, sizeof(buf));
  FUZZ_CHECK(decide_action(e, buf) == OBSPAM_EXEMPT, "%s is not in %s", buf,
             text);
  if (v4) {
    char mapped[64];

    snprintf(mapped, sizeof(mapped), "::ffff:%s", buf);
    FUZZ_CHECK(decide_action(e, mapped) == OBSPAM_EXEMPT, "%s is not in %s",
               mapped, text);
  }
  if (prefix < 128) {
    memcpy(other, addr, 16);
    other[prefix / 8] ^= (uint8_t)(0x80 >> (prefix % 8));
    addr_text(other, v4 && prefix >= 96, buf, sizeof(buf));
    FUZZ_CHECK(decide_action(e, buf) == OBSPAM_EXEMPT, "%s is not in %s", buf,
               text);
  }
  if (prefix > 0) {
    memcpy(other, addr, 16);
    other[(prefix - 1) / 8] ^= (uint8_t)(0x80 >> ((prefix - 1) % 8));
    addr_text(other, v4 && prefix > 96, buf, sizeof(buf));
    FUZZ_CHECK(decide_action(e, buf) != OBSPAM_EXEMPT, "%s is in %s", buf,
               text);
  }
  FUZZ_RC(obspam_whitelist_remove(e, text), OBSPAM_OK);
  FUZZ_RC(obspam_whitelist_remove(e, text), OBSPAM_ENOTFOUND);
  addr_text(addr, v4, buf, sizeof(buf));
  FUZZ_CHECK(decide_action(e, buf) != OBSPAM_EXEMPT,
             "%s is exempt after %s was removed", buf, text);
}

/* ---- client addresses ---------------------------------------------------- */

static void test_client(obspam_engine *e, const char *text) {
  obspam_message m = OBSPAM_MESSAGE_INIT;
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  uint8_t a[16];
  int valid = text[0] == '\0' || inet_pton(AF_INET, text, a) == 1 ||
              inet_pton(AF_INET6, text, a) == 1;
  int rc;

  m.client_address = text;
  m.sender = "info@acme.example";
  m.time = T0;
  rc = obspam_decide(e, &m, &v);
  FUZZ_CHECK(rc == (valid ? OBSPAM_OK : OBSPAM_EINVAL),
             "decide with client '%s' gave %d", text, rc);
  if (!valid)
    check_errmsg(e, "decide");
  rc = obspam_check(e, &m, &v);
  FUZZ_CHECK(rc == (valid ? OBSPAM_OK : OBSPAM_EINVAL),
             "check with client '%s' gave %d", text, rc);
}

/* ---- names --------------------------------------------------------------- */

/* 1 when text is a valid name of kind; lower is its lower-case form. */
static int ref_name(int kind, const char *text, char *lower) {
  size_t n = strlen(text), i, ats = 0, at = 0;

  if (n == 0 || n > OBSPAM_NAME_MAX)
    return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)text[i];

    if (c <= 0x20 || c == 0x7f)
      return 0;
    if (c == '@') {
      ats++;
      at = i;
    }
    lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  lower[n] = '\0';
  if (kind != OBSPAM_MAILBOX)
    return ats == 0;
  return ats == 1 && at > 0 && at + 1 < n;
}

static void test_name(obspam_engine *e, int kind, const char *text) {
  static const char *const parent_of[] = {NULL, NULL, "basic", "acme", NULL};
  char lower[OBSPAM_NAME_MAX + 1], upper[OBSPAM_NAME_MAX + 1];
  const char *parent = parent_of[kind];
  int valid = ref_name(kind, text, lower);
  size_t i;
  int rc;

  if (kind == OBSPAM_MAILBOX && valid) {
    /* The mailbox's domain must be hosted: add it first (under another
       case, which must not matter). */
    const char *dom = strchr(text, '@') + 1;

    rc = obspam_add(e, OBSPAM_DOMAIN, dom, "ACME");
    FUZZ_CHECK(rc == OBSPAM_OK || rc == OBSPAM_EEXIST,
               "add domain '%s' gave %d", dom, rc);
  }
  rc = obspam_add(e, kind, text, parent);
  if (!valid) {
    FUZZ_CHECK(rc == OBSPAM_EINVAL, "add(%d, '%s') gave %d, want EINVAL", kind,
               text, rc);
    check_errmsg(e, "add");
    return;
  }
  FUZZ_CHECK(rc == OBSPAM_OK ||
                 (rc == OBSPAM_EEXIST &&
                  (strcmp(lower, "acme") == 0 || strcmp(lower, "basic") == 0 ||
                   strcmp(lower, "acme.example") == 0 ||
                   strcmp(lower, "info@acme.example") == 0)),
             "add(%d, '%s') gave %d, want OK", kind, text, rc);
  for (i = 0; lower[i] != '\0'; i++)
    upper[i] =
        (char)(lower[i] >= 'a' && lower[i] <= 'z' ? lower[i] - 32 : lower[i]);
  upper[i] = '\0';
  FUZZ_RC(obspam_add(e, kind, upper, parent), OBSPAM_EEXIST);
  if (kind >= OBSPAM_SUBSCRIPTION) {
    obspam_stats st = OBSPAM_STATS_INIT;

    FUZZ_RC(obspam_stats_get(e, kind, upper, T0, &st), OBSPAM_OK);
  }
  if (kind == OBSPAM_DOMAIN || kind == OBSPAM_MAILBOX) {
    /* As a login, under any case, it is charged to itself. */
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    m.sasl_username = upper;
    m.time = T0;
    FUZZ_RC(obspam_decide(e, &m, &v), OBSPAM_OK);
    FUZZ_CHECK(v.action == OBSPAM_ACCEPT && v.kind == kind &&
                   strcmp(v.object, lower) == 0,
               "login '%s': action %d kind %d object '%s'", upper, v.action,
               v.kind, v.object);
  }
  FUZZ_RC(obspam_remove(e, kind, upper), OBSPAM_OK);
  FUZZ_RC(obspam_remove(e, kind, text), OBSPAM_ENOTFOUND);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char conf[] = "plan basic\n"
                             "subscription acme plan=basic\n"
                             "domain acme.example subscription=acme\n"
                             "mailbox info@acme.example\n";
  obspam_engine *e;
  char *text;
  int kind;

  if (size == 0)
    return 0;
  kind = OBSPAM_PLAN + data[0] % 4;
  text = malloc(size);
  memcpy(text, data + 1, size - 1);
  text[size - 1] = '\0';

  FUZZ_RC(obspam_engine_new(&e), OBSPAM_OK);
  FUZZ_RC(obspam_load_config_string(e, conf), OBSPAM_OK);
  test_network(e, text);
  test_client(e, text);
  test_name(e, kind, text);
  obspam_engine_free(e);
  free(text);
  return 0;
}
