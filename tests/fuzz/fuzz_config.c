/* SPDX-License-Identifier: MIT */
/* Fuzzes the configuration parser: obspam_load_config_string and
   obspam_load_config on the same bytes, against an engine that already
   holds a configuration and counters.

   Invariants:
   - the answer is OBSPAM_OK or OBSPAM_ESYNTAX, nothing else;
   - an error names "<string>:LINE: " (or "PATH:LINE: ") with a line of the
     text, is one line without control characters, and changes nothing
     (options, limits, whitelist, counters);
   - the file gives the same answer and message as the string, and a text
     with a NUL byte is refused;
   - a text that loads loads again the same way, and every object that
     exists before and after keeps its counters, while a new one starts
     from zero. */
#include "fuzz.h"

/* The configuration in place before each input: a bit of everything. */
static const char base_conf[] =
    "count-forward-local yes\n"
    "retention 48\n"
    "default mailbox=100 domain=1000 subscription=5000\n"
    "plan basic mailbox=5 domain=50 subscription=100 scripts=no\n"
    "subscription acme plan=basic uid=1000 contact=ops@acme.example\n"
    "subscription bakery uid=1001 subscription=7\n"
    "domain acme.example subscription=acme\n"
    "domain bakery.example subscription=bakery mailbox=3\n"
    "mailbox info@acme.example limit=4\n"
    "mailbox demo@bakery.example\n"
    "whitelist 192.0.2.0/24\n"
    "whitelist 2001:db8::/32\n";

#define T0 1700000000

/* Objects whose state is compared before and after a load. */
static const fuzz_object probes[] = {
    FUZZ_ACME_BAKERY,
    {OBSPAM_SUBSCRIPTION, "newsroom"},
    {OBSPAM_DOMAIN, "shop.acme.example"},
    {OBSPAM_MAILBOX, "sales@acme.example"},
};
#define NPROBES (sizeof(probes) / sizeof(probes[0]))

/* What a load may change or keep, as the API shows it. */
typedef struct sig {
  int64_t opt[11];
  int found[NPROBES];
  int64_t limit[NPROBES];
  obspam_stats st[NPROBES];
  int action[4]; /* check() of probe messages: whitelist, uid */
} sig;

static void take_sig(obspam_engine *e, sig *s) {
  static const char *addrs[2] = {"192.0.2.7", "2001:db8::1"};
  int i;

  memset(s, 0, sizeof(*s));
  for (i = 1; i <= 10; i++)
    FUZZ_RC(obspam_get_option(e, i, &s->opt[i]), OBSPAM_OK);
  for (i = 0; i < (int)NPROBES; i++) {
    obspam_stats st = OBSPAM_STATS_INIT;
    int rc = obspam_stats_get(e, probes[i].kind, probes[i].name, T0, &st);

    FUZZ_CHECK(rc == OBSPAM_OK || rc == OBSPAM_ENOTFOUND, "stats_get %s: %d",
               probes[i].name, rc);
    s->found[i] = rc == OBSPAM_OK;
    if (s->found[i]) {
      s->st[i] = st;
      FUZZ_RC(obspam_effective_limit(e, probes[i].kind, probes[i].name,
                                     &s->limit[i]),
              OBSPAM_OK);
    }
  }
  for (i = 0; i < 4; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    m.time = T0;
    if (i < 2) {
      m.client_address = addrs[i];
      m.sender = "info@acme.example";
    } else {
      m.flags = OBSPAM_MSG_SCRIPT;
      m.uid = 1000 + (i - 2);
    }
    FUZZ_RC(obspam_check(e, &m, &v), OBSPAM_OK);
    s->action[i] = v.action;
  }
}

static void same_sig(const sig *a, const sig *b, const char *when) {
  int i;

  for (i = 1; i <= 10; i++)
    FUZZ_CHECK(a->opt[i] == b->opt[i], "%s: option %d changed", when, i);
  for (i = 0; i < (int)NPROBES; i++) {
    FUZZ_CHECK(a->found[i] == b->found[i], "%s: %s appeared or vanished", when,
               probes[i].name);
    FUZZ_CHECK(a->limit[i] == b->limit[i], "%s: limit of %s changed", when,
               probes[i].name);
    FUZZ_CHECK(memcmp(&a->st[i], &b->st[i], sizeof(a->st[i])) == 0,
               "%s: statistics of %s changed", when, probes[i].name);
  }
  for (i = 0; i < 4; i++)
    FUZZ_CHECK(a->action[i] == b->action[i], "%s: probe %d changed", when, i);
}

/* Counters survive a load for an object that exists before and after; an
   object that is new starts from zero. */
static void carried(const sig *before, const sig *after) {
  static const obspam_stats zero = OBSPAM_STATS_INIT;
  int i;

  for (i = 0; i < (int)NPROBES; i++) {
    const obspam_stats *a = &after->st[i];
    const obspam_stats *b = before->found[i] ? &before->st[i] : &zero;

    if (!after->found[i])
      continue;
    FUZZ_CHECK(a->count == b->count && a->refused == b->refused &&
                   a->refused_total == b->refused_total &&
                   a->last_refused == b->last_refused,
               "counters of %s not carried: count %lld -> %lld, refused "
               "%lld -> %lld",
               probes[i].name, (long long)b->count, (long long)a->count,
               (long long)b->refused, (long long)a->refused);
    /* Sending follows the object and its ancestors: not sending while
       something blocks it, and then never because of its own limit
       unless it is at that limit. */
    FUZZ_CHECK(a->sending == (a->blocked_kind == -1), "sending of %s is wrong",
               probes[i].name);
    FUZZ_CHECK(a->disabled || a->blocked_kind != -1 || a->limit < 0 ||
                   a->count < a->limit,
               "%s is at its limit but not blocked", probes[i].name);
  }
}

static obspam_engine *fresh_engine(void) {
  static const char *senders[] = {"info@acme.example", "x@acme.example",
                                  "demo@bakery.example"};
  obspam_engine *e;
  int i;

  FUZZ_RC(obspam_engine_new(&e), OBSPAM_OK);
  FUZZ_RC(obspam_load_config_string(e, base_conf), OBSPAM_OK);
  /* Counters and a refusal or two on every probe that exists. */
  for (i = 0; i < 12; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    m.sender = senders[i % 3];
    m.time = T0 - 600 + i * 30;
    FUZZ_RC(obspam_decide(e, &m, &v), OBSPAM_OK);
  }
  return e;
}

/* The error message of a failed load: "FILE:LINE: text", LINE a line of
   the text, one line of printable characters. */
static void check_errmsg(const char *msg, const char *file, unsigned lines) {
  size_t n = strlen(file), i;
  unsigned long line;
  char *end;

  FUZZ_CHECK(strncmp(msg, file, n) == 0 && msg[n] == ':',
             "error message '%s' does not start with '%s:'", msg, file);
  line = strtoul(msg + n + 1, &end, 10);
  FUZZ_CHECK(end != msg + n + 1 && end[0] == ':' && end[1] == ' ',
             "error message '%s' has no line number", msg);
  FUZZ_CHECK(line >= 1 && line <= lines,
             "error message '%s' names line %lu of %u", msg, line, lines);
  for (i = 0; msg[i] != '\0'; i++)
    FUZZ_CHECK((unsigned char)msg[i] >= 0x20 && msg[i] != 0x7f,
               "error message holds control character 0x%02x at %zu: '%s'",
               (unsigned char)msg[i], i, msg);
}

/* Lines of a text as the parser counts them: a last line without '\n'
   counts, an empty text has none. */
static unsigned count_lines(const char *p, size_t n) {
  unsigned lines = 0;
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i] == '\n')
      lines++;
  return lines + (n > 0 && p[n - 1] != '\n');
}

static fuzz_file file;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_file_open(&file, "obspam-fuzz-config");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  obspam_engine *e = fresh_engine();
  char *text = malloc(size + 1), msg_s[512], msg_f[512];
  size_t len;
  sig before, after, again;
  int rc_s, rc_f, has_nul;

  memcpy(text, data, size);
  text[size] = '\0';
  len = strlen(text);
  has_nul = len < size;

  /* The string: the text up to its first NUL. */
  take_sig(e, &before);
  rc_s = obspam_load_config_string(e, text);
  FUZZ_CHECK(rc_s == OBSPAM_OK || rc_s == OBSPAM_ESYNTAX,
             "load_config_string returned %d (%s)", rc_s,
             obspam_strerror(rc_s));
  snprintf(msg_s, sizeof(msg_s), "%s", obspam_engine_errmsg(e));
  take_sig(e, &after);
  if (rc_s != OBSPAM_OK) {
    check_errmsg(msg_s, "<string>", count_lines(text, len));
    same_sig(&before, &after, "after a failed load");
  } else {
    carried(&before, &after);
    FUZZ_RC(obspam_load_config_string(e, text), OBSPAM_OK);
    take_sig(e, &again);
    same_sig(&after, &again, "after loading the same text twice");
    /* The loaded tree decides without error. */
    {
      obspam_message m = OBSPAM_MESSAGE_INIT;
      obspam_verdict v = OBSPAM_VERDICT_INIT;

      m.sasl_username = "info@acme.example";
      m.client_address = "203.0.113.9";
      m.time = T0;
      FUZZ_RC(obspam_decide(e, &m, &v), OBSPAM_OK);
    }
  }
  obspam_engine_free(e);

  /* The file: every byte, NULs included, on a fresh engine. */
  e = fresh_engine();
  fuzz_file_set(&file, data, size);
  take_sig(e, &before);
  rc_f = obspam_load_config(e, file.path);
  snprintf(msg_f, sizeof(msg_f), "%s", obspam_engine_errmsg(e));
  take_sig(e, &after);
  if (has_nul) {
    FUZZ_CHECK(rc_f == OBSPAM_ESYNTAX,
               "a file with a NUL byte gave %d (%s), not ESYNTAX", rc_f,
               obspam_strerror(rc_f));
  } else {
    size_t n = strlen(file.path);

    FUZZ_CHECK(rc_f == rc_s, "the file gave %d, the string %d", rc_f, rc_s);
    if (rc_f != OBSPAM_OK)
      FUZZ_CHECK(strncmp(msg_f, file.path, n) == 0 &&
                     strcmp(msg_f + n, msg_s + strlen("<string>")) == 0,
                 "the file said '%s', the string '%s'", msg_f, msg_s);
  }
  if (rc_f != OBSPAM_OK) {
    check_errmsg(msg_f, file.path, count_lines((const char *)data, size));
    same_sig(&before, &after, "after a failed file load");
  } else {
    carried(&before, &after);
  }
  obspam_engine_free(e);
  free(text);
  return 0;
}
