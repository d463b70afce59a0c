/* SPDX-License-Identifier: MIT */
/* Fuzzes the policy server's request parser (examples/policyd/policy.c):
   the bytes of a connection, fed to policy_feed at once and again in
   pieces of every size down to one byte (a slow client), must give the
   same requests and the same errors at the same offsets.

   Invariants:
   - feeding is incremental: the split never matters;
   - a complete request has request=smtpd_access_policy, its values are
     NUL-terminated, hold no newline and no NUL, and are at most
     POLICY_VALUE_MAX bytes; policy_get is NULL exactly for an absent
     attribute; no request is over POLICY_REQUEST_MAX bytes;
   - a failed parser stays failed (nothing consumed) until it is reset;
   - policy_message gives a message that obspam_decide accepts as valid
     (never OBSPAM_EINVAL: the client address is an IP address or NULL,
     recipients >= 1), whose client address is the one sent exactly when
     inet_pton takes it (without a submitter's uid), and
     policy_state_name is short and printable.

   Input: byte 0 seeds the piece sizes; the rest is the connection. */
// fuzz-sources: examples/policyd/policy.c
#include <arpa/inet.h>

#include "fuzz.h"
#include "policy.h"

#define T0 1700000000

/* What one parse of a stream saw, event by event. */
typedef struct event {
  int status; /* POLICY_COMPLETE or POLICY_ERROR */
  size_t end; /* offset just after the bytes consumed */
  policy_value attr[POLICY_ATTR_COUNT];
  char error[160];
} event;

#define EVENTS_MAX 64

typedef struct parse {
  event ev[EVENTS_MAX];
  int n;
  int pending; /* the stream ended inside a request */
} parse;

static obspam_engine *engine;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  FUZZ_RC(obspam_engine_new(&engine), OBSPAM_OK);
  FUZZ_RC(obspam_load_config_string(engine,
                                    "subscription acme\n"
                                    "domain acme.example subscription=acme\n"
                                    "mailbox info@acme.example limit=3\n"
                                    "whitelist 192.0.2.0/24\n"),
          OBSPAM_OK);
  return 0;
}

static void check_request(const policy_req *r) {
  obspam_message m = OBSPAM_MESSAGE_INIT;
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  const char *state, *addr;
  size_t i;
  int a, rc;

  for (a = 0; a < POLICY_ATTR_COUNT; a++) {
    const policy_value *pv = &r->attr[a];
    const char *got = policy_get(r, (enum policy_attr)a);

    FUZZ_CHECK((got == NULL) == !pv->present, "policy_get(%d) and present", a);
    if (!pv->present)
      continue; /* its other fields are not reset */
    FUZZ_CHECK(pv->len <= POLICY_VALUE_MAX && strlen(pv->text) == pv->len,
               "attribute %d: len %u, strlen %zu", a, pv->len,
               strlen(pv->text));
    FUZZ_CHECK(!pv->cut || pv->len == POLICY_VALUE_MAX,
               "attribute %d cut at %u bytes", a, pv->len);
    FUZZ_CHECK(strchr(pv->text, '\n') == NULL, "attribute %d holds a newline",
               a);
  }
  FUZZ_CHECK(r->attr[POLICY_REQUEST].present &&
                 strcmp(r->attr[POLICY_REQUEST].text, "smtpd_access_policy") ==
                     0,
             "a complete request without request=smtpd_access_policy");
  FUZZ_CHECK(r->request_len <= POLICY_REQUEST_MAX, "request of %zu bytes",
             r->request_len);
  FUZZ_CHECK(r->attrs <= POLICY_ATTRS_MAX, "request of %u attributes",
             r->attrs);

  state = policy_state_name(r);
  FUZZ_CHECK(state != NULL && strlen(state) <= 16,
             "policy_state_name is NULL or long");
  for (i = 0; state[i] != '\0'; i++)
    FUZZ_CHECK((unsigned char)state[i] > 0x20 && state[i] != 0x7f,
               "policy_state_name holds 0x%02x", (unsigned char)state[i]);

  (void)policy_message(r, &m);
  FUZZ_CHECK(m.recipients >= 1, "a message without recipients");
  addr = policy_get(r, POLICY_CLIENT_ADDRESS);
  if (addr != NULL && !policy_claims_uid(r)) {
    unsigned char buf[16];
    int ip = inet_pton(AF_INET, addr, buf) == 1 ||
             inet_pton(AF_INET6, addr, buf) == 1;

    FUZZ_CHECK((m.client_address != NULL) == ip,
               "client_address '%s' taken %d, inet_pton says %d", addr,
               m.client_address != NULL, ip);
  }
  m.time = T0;
  rc = obspam_decide(engine, &m, &v);
  FUZZ_CHECK(rc == OBSPAM_OK, "decide on a parsed request: %d (%s): %s", rc,
             obspam_strerror(rc), obspam_engine_errmsg(engine));
  rc = obspam_check(engine, &m, &v);
  FUZZ_CHECK(rc == OBSPAM_OK, "check on a parsed request: %d", rc);
}

static void record(parse *p, const policy_req *r, int status, size_t end) {
  event *ev;

  if (p->n == EVENTS_MAX)
    return;
  ev = &p->ev[p->n++];
  memset(ev, 0, sizeof(*ev));
  ev->status = status;
  ev->end = end;
  if (status == POLICY_COMPLETE) {
    int a;

    /* The fields of an absent attribute are not reset: left zero. */
    for (a = 0; a < POLICY_ATTR_COUNT; a++)
      if (r->attr[a].present)
        ev->attr[a] = r->attr[a];
  } else
    snprintf(ev->error, sizeof(ev->error), "%s", r->error);
}

/* Parses data at once (seed 0), one byte at a time (seed 1), or in pieces
   of pseudo-random sizes drawn from seed; with check set, each complete
   request is checked and decided. */
static void run_parse(const uint8_t *data, size_t size, parse *p, uint32_t seed,
                      int check) {
  policy_req r;
  size_t pos = 0;

  memset(p, 0, sizeof(*p));
  policy_reset(&r);
  while (pos < size && p->n < EVENTS_MAX) {
    size_t piece = size - pos, used = 0;
    int status;

    if (seed == 1) {
      piece = 1;
    } else if (seed != 0) {
      /* xorshift: pieces of 1 to 16 bytes. */
      seed ^= seed << 13;
      seed ^= seed >> 17;
      seed ^= seed << 5;
      piece = 1 + seed % 16;
      if (piece > size - pos)
        piece = size - pos;
    }
    status = policy_feed(&r, (const char *)data + pos, piece, &used);
    FUZZ_CHECK(used <= piece, "policy_feed used %zu of %zu", used, piece);
    FUZZ_CHECK(status != POLICY_MORE || used == piece,
               "POLICY_MORE with %zu of %zu bytes used", used, piece);
    FUZZ_CHECK(status == POLICY_MORE || used >= 1,
               "a request ended without a byte consumed");
    pos += used;
    if (status == POLICY_MORE)
      continue;
    record(p, &r, status, pos);
    if (status == POLICY_COMPLETE) {
      if (check)
        check_request(&r);
    } else {
      size_t again = 99;

      FUZZ_CHECK(status == POLICY_ERROR, "policy_feed returned %d", status);
      FUZZ_CHECK(r.error[0] != '\0', "an error without a reason");
      FUZZ_CHECK(policy_feed(&r, "x", 1, &again) == POLICY_ERROR && again == 0,
                 "a failed parser took more bytes");
    }
    policy_reset(&r);
  }
  p->pending = r.request_len > 0;
}

static void same(const parse *a, const parse *b, const char *how) {
  int i, k;

  FUZZ_CHECK(a->n == b->n, "%s: %d events, at once %d", how, b->n, a->n);
  for (i = 0; i < a->n; i++) {
    const event *x = &a->ev[i], *y = &b->ev[i];

    FUZZ_CHECK(x->status == y->status && x->end == y->end,
               "%s: event %d is %d at %zu, at once %d at %zu", how, i,
               y->status, y->end, x->status, x->end);
    for (k = 0; k < POLICY_ATTR_COUNT; k++) {
      const policy_value *u = &x->attr[k], *w = &y->attr[k];

      FUZZ_CHECK(u->present == w->present && u->cut == w->cut &&
                     u->len == w->len && memcmp(u->text, w->text, u->len) == 0,
                 "%s: request %d, attribute %d is '%s', at once '%s'", how, i,
                 k, w->text, u->text);
    }
    FUZZ_CHECK(strcmp(x->error, y->error) == 0,
               "%s: error %d is '%s', at once '%s'", how, i, y->error,
               x->error);
  }
  FUZZ_CHECK(a->n == EVENTS_MAX || a->pending == b->pending,
             "%s: the stream ends inside a request or not", how);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static parse whole, pieces, bytes;

  if (size == 0)
    return 0;
  run_parse(data + 1, size - 1, &whole, 0, 1);
  run_parse(data + 1, size - 1, &pieces, 0x9e3779b9u ^ data[0], 0);
  same(&whole, &pieces, "in pieces");
  run_parse(data + 1, size - 1, &bytes, 1, 0);
  same(&whole, &bytes, "byte by byte");
  return 0;
}
