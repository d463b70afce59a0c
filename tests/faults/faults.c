/* SPDX-License-Identifier: MIT */
/* Allocation-failure injection on every public entry point.

   The library's sources are linked into this program with
   -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup: each of
   their allocations goes through the __wrap_* functions below, which fail
   the Nth one while a call is armed (mode "once"), or the Nth and every one
   after it (mode "from": memory stays short). Allocations made by the C
   library itself (qsort, stdio) are not counted: only the library's own
   requests fail. Under AddressSanitizer, __real_malloc is ASan's, so
   LeakSanitizer sees everything.

   For each entry point (a "case": a setup that builds an engine with state,
   and one call), and for N = 1, 2, ... until the call runs without reaching
   its Nth allocation:

   - the call returns OBSPAM_ENOMEM and its message says "out of memory";
     the engine shows exactly what it showed before (options, limits,
     statistics at two times, history, report, what obspam_check answers for
     a set of probe messages, the engine's clock);
   - the call is then made again without failures: it succeeds, and the
     engine ends exactly like one on which the call succeeded at once (the
     same signature, and the same notices when everything is flushed);
   - or, where an allocation is not needed for the answer, the call
     succeeds and the engine ends exactly as after a call without failure.
     Which allocations may be skipped that way is listed per case
     (skippable): a report of a skipped allocation on another case fails.

   After each case, LeakSanitizer must find nothing.

   usage: faults [CASE...]     (no argument: every case; --list: their names)
   Prints one line per case and mode; exits 1 when anything failed. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <sanitizer/lsan_interface.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../testbase.h"
#include "obspam.h"

/* ---- the failing allocator ------------------------------------------------
 */

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);

static int armed;      /* count allocations and fail some */
static long fail_at;   /* the allocation to fail, from 1 */
static int fail_after; /* mode "from": fail every one from fail_at on */
static long seen;      /* allocations counted while armed */
static long failed;    /* allocations failed while armed */

static int should_fail(void) {
  if (!armed)
    return 0;
  seen++;
  if (seen == fail_at || (fail_after && seen > fail_at)) {
    failed++;
    return 1;
  }
  return 0;
}

void *__wrap_malloc(size_t n) {
  return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n) {
  return should_fail() ? NULL : __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n) {
  return should_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s) {
  return should_fail() ? NULL : __real_strdup(s);
}

static void arm(long at, int after) {
  fail_at = at;
  fail_after = after;
  seen = failed = 0;
  armed = 1;
}

static void disarm(void) { armed = 0; }

/* ---- results --------------------------------------------------------------
 */

static int problems; /* of the current case and mode */

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...) {
  va_list ap;

  if (problems++ >= 5)
    return; /* the first few say enough */
  fputs("     ", stdout);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
}

#define MUST(call)                                                             \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != OBSPAM_OK) {                                                    \
      fprintf(stderr, "%s:%d: %s returned %d\n", __FILE__, __LINE__, #call,    \
              rc_);                                                            \
      exit(2);                                                                 \
    }                                                                          \
  } while (0)

/* ---- a growable text, for signatures ------------------------------------ */

typedef struct text {
  char *p;
  size_t len, cap;
} text;

static void put(text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
  va_list ap;
  int n;

  for (;;) {
    va_start(ap, fmt);
    n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? t->cap - t->len : 0, fmt,
                  ap);
    va_end(ap);
    if (t->p != NULL && (size_t)n < t->cap - t->len)
      break;
    t->cap = t->cap * 2 + (size_t)n + 256;
    t->p = __real_realloc(t->p, t->cap);
    if (t->p == NULL)
      abort();
  }
  t->len += (size_t)n;
}

static void text_free(text *t) {
  free(t->p);
  memset(t, 0, sizeof(*t));
}

/* The first line where two signatures differ, for the report. */
static void first_difference(const text *a, const text *b, char *out,
                             size_t size) {
  const char *x = a->p ? a->p : "", *y = b->p ? b->p : "";
  const char *lx = x, *ly = y;

  while (*x && *x == *y) {
    if (*x == '\n') {
      lx = x + 1;
      ly = y + 1;
    }
    x++;
    y++;
  }
  snprintf(out, size, "expected '%.*s', got '%.*s'", (int)strcspn(lx, "\n"), lx,
           (int)strcspn(ly, "\n"), ly);
}

/* ---- the engine the cases start from ----------------------------------- */

#define START 1700000000             /* the setup's first message */
#define T1 (START + 5 * 3600 + 1500) /* the setup's last message, about */
#define NOW (T1 + 600)               /* when the calls happen */

static const char base_conf[] =
    "retention 240\n"
    "notify-period 600\n"
    "default mailbox=50 domain=200 subscription=400\n"
    "plan basic mailbox=5 domain=20 subscription=30 scripts=yes\n"
    "plan closed scripts=no\n"
    "subscription acme plan=basic uid=1000 contact=ops@acme.example\n"
    "subscription bakery uid=1001 subscription=7 contact=me@bakery.example\n"
    "subscription cron plan=closed uid=1002\n"
    "subscription spare\n"
    "domain acme.example subscription=acme\n"
    "domain shop.acme.example subscription=acme domain=6 mailbox=2\n"
    "domain bakery.example subscription=bakery\n"
    "domain cron.example subscription=cron\n"
    "mailbox info@acme.example limit=4\n"
    "mailbox sales@acme.example\n"
    "mailbox orders@shop.acme.example\n"
    "mailbox demo@bakery.example limit=3\n"
    "whitelist 192.0.2.0/24\n"
    "whitelist 2001:db8::/32\n"
    "whitelist 198.51.100.7\n";

/* Every object a signature looks at: those of the configuration and those
   the cases add. */
static const tu_object objects[] = {
    {OBSPAM_PLAN, "basic"},
    {OBSPAM_PLAN, "closed"},
    {OBSPAM_PLAN, "gold"},
    {OBSPAM_SUBSCRIPTION, "acme"},
    {OBSPAM_SUBSCRIPTION, "bakery"},
    {OBSPAM_SUBSCRIPTION, "cron"},
    {OBSPAM_SUBSCRIPTION, "spare"},
    {OBSPAM_SUBSCRIPTION, "newco"},
    {OBSPAM_DOMAIN, "acme.example"},
    {OBSPAM_DOMAIN, "shop.acme.example"},
    {OBSPAM_DOMAIN, "bakery.example"},
    {OBSPAM_DOMAIN, "cron.example"},
    {OBSPAM_DOMAIN, "newco.example"},
    {OBSPAM_MAILBOX, "info@acme.example"},
    {OBSPAM_MAILBOX, "sales@acme.example"},
    {OBSPAM_MAILBOX, "orders@shop.acme.example"},
    {OBSPAM_MAILBOX, "demo@bakery.example"},
    {OBSPAM_MAILBOX, "new@acme.example"},
    {OBSPAM_MAILBOX, "hello@newco.example"},
};
#define NOBJECTS (sizeof(objects) / sizeof(objects[0]))

/* Logins of hosted domains that no mailbox line declares: implicit
   mailboxes once a decision charged them. */
static const char *const implicit[] = {
    "other@bakery.example", "x@shop.acme.example", "fresh@acme.example"};
#define NIMPLICIT (sizeof(implicit) / sizeof(implicit[0]))

static const char *const script_paths[] = {
    "/var/www/acme/index.php", "/var/www/acme/contact.php",
    "/var/www/bakery/wp-login.php", "/srv/new/script.php",
    "/var/www/unknown/x.php"};
#define NSCRIPTS (sizeof(script_paths) / sizeof(script_paths[0]))

/* Every notice delivered since the setup, as text, in order. The callback
   runs inside armed calls, so it writes into a fixed buffer: an allocation
   of its own would be counted (and could fail). */
static char notice_log[1 << 16];
static size_t notice_log_len;
static int notice_log_full;

static void record_notice(const obspam_notice *n, void *ud) {
  size_t room = sizeof(notice_log) - notice_log_len;
  int w;

  (void)ud;
  w = tu_notice_line(notice_log + notice_log_len, room, n);
  if (w < 0 || (size_t)w >= room)
    notice_log_full = 1;
  else
    notice_log_len += (size_t)w;
}

static void clear_notice_log(void) {
  notice_log_len = 0;
  notice_log[0] = '\0';
}

/* A local submission (no client address). */
static void decide_at(obspam_engine *e, const char *login, const char *sender,
                      uint32_t flags, int64_t uid, const char *hint,
                      const char *script, uint32_t rcpt, int64_t t) {
  obspam_message m =
      tu_msg(flags, login, sender, NULL, rcpt, uid, hint, script, t);
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  MUST(obspam_decide(e, &m, &v));
}

/* Five hours of mail: history, refusals in every period, scripts, rings,
   pending notices of ended periods, a few objects that are idle. */
static obspam_engine *rich(void) {
  static const char *const logins[] = {
      "info@acme.example",   "sales@acme.example",   "orders@shop.acme.example",
      "demo@bakery.example", "other@bakery.example", "x@shop.acme.example"};
  obspam_engine *e;
  int h, i;

  MUST(obspam_engine_new(&e));
  MUST(obspam_load_config_string(e, base_conf));
  MUST(obspam_set_notify(e, record_notice, NULL));
  for (h = 0; h < 5; h++)
    for (i = 0; i < 30; i++) {
      int64_t t = START + h * 3600 + i * 50;

      if (i % 5 == 4)
        decide_at(e, NULL, NULL, OBSPAM_MSG_SCRIPT, 1000 + i % 3,
                  "acme.example", script_paths[i % 3], 1, t);
      else
        decide_at(e, logins[i % 6], NULL, 0, -1, NULL, NULL, 1 + i % 2, t);
    }
  /* Refusals in the last period that stays open until NOW. */
  for (i = 0; i < 6; i++)
    decide_at(e, "info@acme.example", NULL, 0, -1, NULL, NULL, 1, T1 + i);
  return e;
}

static obspam_engine *empty(void) {
  obspam_engine *e;

  MUST(obspam_engine_new(&e));
  return e;
}

/* ---- signatures ------------------------------------------------------- */

static void put_row(const obspam_report_row *r, void *ud) {
  char line[8192];

  tu_row_line(line, sizeof line, r);
  put(ud, "%s  uid %" PRId64 " subscription %s\n", line, r->uid,
      r->subscription != NULL ? r->subscription : "-");
}

static void put_hour(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  put(ud, "  hour %" PRId64 " sent=%" PRId64 " refused=%" PRId64 "\n", hour,
      sent, refused);
}

/* Probe messages: what obspam_check answers shows the tree, the uids, the
   scripts settings, the whitelist, the options and the counters, without
   changing anything. */
static void put_probes(obspam_engine *e, text *t) {
  static const char *const clients[] = {
      NULL,           "192.0.2.1", "2001:db8::7", "198.51.100.7",
      "198.51.100.8", "10.1.1.1",  "127.0.0.1",   "10.9.9.9"};
  size_t i;
  int64_t uid;

  for (i = 0; i < NOBJECTS + 2 + 8; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    int rc;

    m.time = NOW;
    if (i < NOBJECTS) {
      m.sasl_username = objects[i].name;
    } else if (i < NOBJECTS + 2) {
      m.flags = OBSPAM_MSG_FORWARD_LOCAL | OBSPAM_MSG_FORWARD_REMOTE;
      m.sender = i == NOBJECTS ? "info@acme.example" : "nobody@acme.example";
    } else {
      m.client_address = clients[i - NOBJECTS - 2];
      m.sender = "sales@acme.example";
      m.recipients = 3;
    }
    rc = obspam_check(e, &m, &v);
    put(t,
        "check %zu: %d %d %d '%s' %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
        "\n",
        i, rc, v.action, v.kind, v.object, v.limit, v.count, v.retry_after,
        v.window);
  }
  for (uid = 999; uid <= 1006; uid++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    int rc;

    m.flags = OBSPAM_MSG_SCRIPT;
    m.uid = uid;
    m.domain_hint = "acme.example";
    m.time = NOW;
    rc = obspam_check(e, &m, &v);
    put(t, "uid %" PRId64 ": %d %d %d '%s' %" PRId64 " %" PRId64 "\n", uid, rc,
        v.action, v.kind, v.object, v.limit, v.count);
  }
}

/* Everything the engine shows without changing itself. */
static void signature(obspam_engine *e, text *t) {
  size_t i;
  int k;

  for (k = OBSPAM_OPT_ENABLED; k <= OBSPAM_OPT_IMPLICIT_MAILBOXES; k++) {
    int64_t v = 0;
    int rc = obspam_get_option(e, k, &v);

    put(t, "option %d: %d %" PRId64 "\n", k, rc, v);
  }
  {
    int64_t n = -1, overflow = -1, episodes = -1;

    MUST(obspam_implicit_status(e, &n, &overflow, &episodes));
    put(t, "implicit: %" PRId64 " %" PRId64 " %" PRId64 "\n", n, overflow,
        episodes);
  }
  for (i = 0; i < NIMPLICIT; i++) {
    obspam_stats st = OBSPAM_STATS_INIT;
    int rc = obspam_stats_get(e, OBSPAM_MAILBOX, implicit[i], NOW, &st);

    put(t, "implicit %s: %d %" PRId64 " %" PRId64 " %" PRId64 "\n", implicit[i],
        rc, st.limit, st.count, st.refused_total);
    if (rc == OBSPAM_OK)
      MUST(obspam_history(e, OBSPAM_MAILBOX, implicit[i], 0, INT64_MAX,
                          put_hour, t));
  }
  for (i = 0; i < NOBJECTS; i++) {
    int kind = objects[i].kind;
    const char *name = objects[i].name;
    int64_t limit = 0;
    int rc;

    put(t, "%d %s:", kind, name);
    if (kind == OBSPAM_PLAN) {
      /* A plan shows in its subscriptions' limits; this tells whether it
         exists at all. */
      rc = obspam_add(e, OBSPAM_PLAN, name, NULL);
      put(t, " exists=%d\n", rc == OBSPAM_EEXIST);
      if (rc == OBSPAM_OK)
        MUST(obspam_remove(e, OBSPAM_PLAN, name));
      continue;
    }
    rc = obspam_effective_limit(e, kind, name, &limit);
    put(t, " limit %d %" PRId64, rc, limit);
    if (rc == OBSPAM_OK) {
      int64_t when[2] = {1, NOW}; /* 1: the engine's own clock */
      int64_t minute = 0, day = 0, cap = 0;
      int w;

      MUST(obspam_effective_window_limit(e, kind, name, OBSPAM_WINDOW_MINUTE,
                                         &minute));
      MUST(obspam_effective_window_limit(e, kind, name, OBSPAM_WINDOW_DAY,
                                         &day));
      MUST(obspam_effective_max_recipients(e, kind, name, &cap));
      put(t, " windows %" PRId64 " %" PRId64 " cap %" PRId64, minute, day, cap);

      for (w = 0; w < 2; w++) {
        obspam_stats st = OBSPAM_STATS_INIT;

        MUST(obspam_stats_get(e, kind, name, when[w], &st));
        put(t,
            " | %d %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
            " %" PRId64 " %" PRId64 " %d %d %s %" PRId64 " fw %" PRId64
            " ls %" PRId64,
            st.sending, st.count, st.refused, st.refused_total, st.last_refused,
            st.exceeded, st.exceeded_total, st.count_day, st.blocked_kind,
            st.disabled, st.blocked_by, st.last_reset, st.forwarded,
            st.list_deliveries);
      }
      put(t, "\n");
      MUST(obspam_history(e, kind, name, 0, INT64_MAX, put_hour, t));
    } else {
      put(t, "\n");
    }
  }
  for (i = 0; i < NSCRIPTS; i++) {
    put(t, "script %s: %d\n", script_paths[i],
        obspam_history(e, OBSPAM_SCRIPT, script_paths[i], 0, INT64_MAX,
                       put_hour, t));
  }
  /* The forwards and lists a case may add or a load may bring. */
  {
    static const char *const rcpts[] = {"fwd@acme.example", "x@bakery.example",
                                        "info@acme.example"};
    static const char *const senders[] = {"news@acme.example",
                                          "news-bounces+t@acme.example"};
    char mb[OBSPAM_NAME_MAX + 1];
    uint32_t flag;
    int match;

    for (i = 0; i < sizeof(rcpts) / sizeof(rcpts[0]); i++) {
      MUST(obspam_forward_lookup(e, rcpts[i], &flag, mb, sizeof(mb)));
      put(t, "forward %s: %u %s\n", rcpts[i], flag, mb);
    }
    for (i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
      MUST(obspam_mailing_list_match(e, senders[i], NULL, &match));
      put(t, "list %s: %d\n", senders[i], match);
    }
  }
  MUST(obspam_report(e, 0, INT64_MAX, put_row, t));
  put_probes(e, t);
}

static int line_order(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The signature, then every notice delivered since the setup, those of the
   calls and all that are still to come (this consumes them). They are
   compared as a set: a flush that fails half-way may deliver some notices
   and leave the rest to the next one, which sorts its own; what matters is
   that none is lost and none comes twice. */
static void final_signature(obspam_engine *e, text *t) {
  char *lines[2048], *p;
  size_t n = 0, i;

  signature(e, t);
  MUST(obspam_set_notify(e, record_notice, NULL));
  MUST(obspam_notify_flush(e, INT64_MAX / 4));
  for (p = strtok(notice_log, "\n"); p != NULL && n < 2048;
       p = strtok(NULL, "\n"))
    lines[n++] = p;
  qsort(lines, n, sizeof(lines[0]), line_order);
  for (i = 0; i < n; i++)
    put(t, "%s\n", lines[i]);
  if (notice_log_full || n == 2048)
    put(t, "(the notice log is full)\n");
  clear_notice_log();
}

/* ---- the cases --------------------------------------------------------- */

static char dir[256], state_path[512], conf_path[512];

static void count_hour(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  (void)hour;
  (void)sent;
  (void)refused;
  (void)ud;
}

static void count_row(const obspam_report_row *r, void *ud) {
  (void)r;
  (void)ud;
}

/* A configuration with many mailboxes: the tables grow while it loads. */
static char *big_conf;

static const char *const big_conf_head =
    "retention 240\n"
    "notify-period 600\n"
    "plan basic mailbox=5\n"
    "subscription acme plan=basic uid=1003 contact=new@acme.example\n"
    "subscription newco uid=1000\n"
    "domain acme.example subscription=newco\n"
    "domain newco.example subscription=newco\n"
    "mailbox info@acme.example limit=9\n"
    "whitelist 10.0.0.0/8\n";

static int c_engine_new(obspam_engine *e) {
  (void)e;
  return OBSPAM_OK; /* handled apart: see run_engine_new */
}

static int c_add_mailbox(obspam_engine *e) {
  return obspam_add(e, OBSPAM_MAILBOX, "new@acme.example", "acme.example");
}

static int c_add_subscription(obspam_engine *e) {
  return obspam_add(e, OBSPAM_SUBSCRIPTION, "newco", "basic");
}

static int c_add_first_plan(obspam_engine *e) {
  return obspam_add(e, OBSPAM_PLAN, "gold", NULL);
}

static int c_remove_mailbox(obspam_engine *e) {
  return obspam_remove(e, OBSPAM_MAILBOX, "info@acme.example");
}

static int c_remove_subscription(obspam_engine *e) {
  return obspam_remove(e, OBSPAM_SUBSCRIPTION, "acme");
}

static int c_set_limit(obspam_engine *e) {
  return obspam_set_limit(e, OBSPAM_DOMAIN, "acme.example", OBSPAM_MAILBOX, 1);
}

/* The first minute or day value of an object, and its first cap: each
   allocates the object's extra values. */
static int c_set_window_limit(obspam_engine *e) {
  return obspam_set_window_limit(e, OBSPAM_DOMAIN, "acme.example",
                                 OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY, 3);
}

static int c_set_max_recipients(obspam_engine *e) {
  return obspam_set_max_recipients(e, OBSPAM_MAILBOX, "info@acme.example", 2);
}

/* A configuration with windows and caps at every level. */
static int c_load_config_windows(obspam_engine *e) {
  static const char conf[] =
      "default mailbox=50,500/d domain=200 subscription=400 "
      "max-recipients=100\n"
      "plan basic mailbox=5,1/m domain=20/m,20 subscription=30 "
      "max-recipients=10\n"
      "plan closed scripts=no\n"
      "subscription acme plan=basic uid=1000 contact=ops@acme.example "
      "mailbox=inherit/m,40/d\n"
      "subscription bakery uid=1001 subscription=7,70/d max-recipients=3\n"
      "domain acme.example subscription=acme max-recipients=inherit\n"
      "domain bakery.example subscription=bakery domain=unlimited/d\n"
      "mailbox info@acme.example limit=4,2/m max-recipients=1\n"
      "mailbox demo@bakery.example limit=unlimited/m\n";

  return obspam_load_config_string(e, conf);
}

static int c_effective_limit(obspam_engine *e) {
  int64_t v;

  return obspam_effective_limit(e, OBSPAM_MAILBOX, "sales@acme.example", &v);
}

static int c_set_uid_new(obspam_engine *e) {
  return obspam_set_uid(e, "spare", 1005);
}

static int c_set_uid_change(obspam_engine *e) {
  return obspam_set_uid(e, "acme", 1006);
}

static int c_set_scripts_allowed(obspam_engine *e) {
  return obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "acme", 0);
}

static int c_set_contact(obspam_engine *e) {
  return obspam_set_contact(e, "spare", "boss@spare.example");
}

static int c_set_contact_replace(obspam_engine *e) {
  return obspam_set_contact(e, "acme", "new@acme.example");
}

static int c_set_option(obspam_engine *e) {
  return obspam_set_option(e, OBSPAM_OPT_COUNT_UNIT, 1);
}

static int c_get_option(obspam_engine *e) {
  int64_t v;

  return obspam_get_option(e, OBSPAM_OPT_RETENTION_HOURS, &v);
}

static int c_forward_add(obspam_engine *e) {
  return obspam_forward_add(e, "fwd@acme.example", 1);
}

static int c_forward_add_catch_all(obspam_engine *e) {
  return obspam_forward_add(e, "@bakery.example", 0);
}

static int c_load_config_marks(obspam_engine *e) {
  static char conf[sizeof(base_conf) + 128];

  snprintf(conf, sizeof(conf),
           "%sforward fwd@acme.example remote\nforward @bakery.example "
           "local\nlist news@acme.example\n",
           base_conf);
  return obspam_load_config_string(e, conf);
}

static int c_implicit_status(obspam_engine *e) {
  int64_t n, overflow, episodes;

  return obspam_implicit_status(e, &n, &overflow, &episodes);
}

static int c_declare_implicit(obspam_engine *e) {
  return obspam_add(e, OBSPAM_MAILBOX, "other@bakery.example", NULL);
}

static int c_remove_domain_implicit(obspam_engine *e) {
  return obspam_remove(e, OBSPAM_DOMAIN, "bakery.example");
}

static int c_load_config_undeclare(obspam_engine *e) {
  /* info@ and sales@ are declared no more: they go on as implicit
     mailboxes, with their counters. */
  static const char *const drop[] = {"mailbox info@acme.example limit=4\n",
                                     "mailbox sales@acme.example\n"};
  char conf[sizeof(base_conf)], *at;
  size_t i;

  memcpy(conf, base_conf, sizeof(base_conf));
  for (i = 0; i < 2; i++) {
    at = strstr(conf, drop[i]);
    memmove(at, at + strlen(drop[i]), strlen(at + strlen(drop[i])) + 1);
  }
  return obspam_load_config_string(e, conf);
}

static int c_load_config_string(obspam_engine *e) {
  return obspam_load_config_string(e, big_conf_head);
}

static int c_load_config_big(obspam_engine *e) {
  return obspam_load_config_string(e, big_conf);
}

/* A subscription that has sent its whole limit: the next message goes
   over it for the first time, and the refusal allocates the buckets of
   its attempts over the limit (and, in immediate mode, a notice). */
static obspam_engine *rich_newco(void) {
  obspam_engine *e = rich();

  MUST(obspam_add(e, OBSPAM_SUBSCRIPTION, "newco", NULL));
  MUST(obspam_add(e, OBSPAM_DOMAIN, "newco.example", "newco"));
  MUST(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "newco", OBSPAM_SUBSCRIPTION,
                        2));
  MUST(obspam_set_option(e, OBSPAM_OPT_NOTIFY_IMMEDIATE, 1));
  decide_at(e, "hello@newco.example", NULL, 0, -1, NULL, NULL, 2, NOW - 60);
  return e;
}

/* Limits of the minute and day windows: sales@ has sent its minute's
   one message, its domain nearly its day's. */
static obspam_engine *rich_windows(void) {
  obspam_engine *e = rich();

  MUST(obspam_set_window_limit(e, OBSPAM_MAILBOX, "sales@acme.example",
                               OBSPAM_MAILBOX, OBSPAM_WINDOW_MINUTE, 1));
  MUST(obspam_set_window_limit(e, OBSPAM_DOMAIN, "acme.example", OBSPAM_DOMAIN,
                               OBSPAM_WINDOW_DAY, 40));
  decide_at(e, "sales@acme.example", NULL, 0, -1, NULL, NULL, 1, NOW - 1);
  return e;
}

/* Over the minute's limit of sales@ and the day's of its domain: each
   is recorded over its own limit, in its own window. */
static int c_stats_get(obspam_engine *e) {
  obspam_stats st = OBSPAM_STATS_INIT;

  return obspam_stats_get(e, OBSPAM_MAILBOX, "info@acme.example", NOW, &st);
}

static int c_history(obspam_engine *e) {
  return obspam_history(e, OBSPAM_SUBSCRIPTION, "acme", 0, INT64_MAX,
                        count_hour, NULL);
}

static int c_history_script(obspam_engine *e) {
  return obspam_history(e, OBSPAM_SCRIPT, "/var/www/acme/index.php", 0,
                        INT64_MAX, count_hour, NULL);
}

static int c_report(obspam_engine *e) {
  return obspam_report(e, 0, INT64_MAX, count_row, NULL);
}

static int count_object(int kind, const char *name, const obspam_stats *st,
                        void *ud) {
  (void)kind;
  (void)name;
  (void)st;
  (void)ud;
  return 0;
}

static int c_enumerate(obspam_engine *e) {
  return obspam_enumerate(e, OBSPAM_MAILBOX, NULL, 0, NULL, 0, NOW,
                          count_object, NULL);
}

static int c_enumerate_under(obspam_engine *e) {
  return obspam_enumerate(e, OBSPAM_MAILBOX, "acme", OBSPAM_ENUM_ACTIVE,
                          "info@acme.example", 2, NOW, count_object, NULL);
}

static int c_top(obspam_engine *e) {
  return obspam_top(e, -1, 0, INT64_MAX, 3, count_row, NULL);
}

static int c_reset(obspam_engine *e) {
  return obspam_reset(e, OBSPAM_MAILBOX, "info@acme.example", NOW);
}

/* An object without counters or history: the reset makes its record. */
static int c_reset_idle(obspam_engine *e) {
  return obspam_reset(e, OBSPAM_SUBSCRIPTION, "spare", NOW);
}

static int c_reset_implicit(obspam_engine *e) {
  return obspam_reset(e, OBSPAM_MAILBOX, "x@shop.acme.example", NOW);
}

/* A script of a uid nobody owns: UNKNOWN, but kept as a script row. */
static int c_load_config_unknown_uid(obspam_engine *e) {
  static char conf[sizeof(base_conf) + 64];

  snprintf(conf, sizeof(conf), "%sunknown-uid-subscription spare\n", base_conf);
  return obspam_load_config_string(e, conf);
}

static int c_set_notify(obspam_engine *e) {
  return obspam_set_notify(e, record_notice, NULL);
}

static int c_notify_flush(obspam_engine *e) {
  return obspam_notify_flush(e, NOW + 7200);
}

/* A snapshot of format 1, written by libobspam 1.2 (run from the
   repository's root, as tests/faults/run.sh does). */
/* A snapshot of format 2, written before the minute and day windows. */
/* Setups besides rich() and empty(). */
static obspam_engine *rich_marks(void) {
  obspam_engine *e = rich();

  MUST(obspam_forward_add(e, "fwd@acme.example", 1));
  MUST(obspam_mailing_list_add(e, "news@acme.example"));
  return e;
}

static obspam_engine *rich_local(void) {
  obspam_engine *e = rich();

  MUST(obspam_local_network_add(e, "10.9.0.0/16"));
  return e;
}

/* The configuration without state, to load rich()'s state into: its
   implicit mailboxes have to be made. */
static obspam_engine *fresh_saved(void) {
  obspam_engine *e = rich();

  MUST(obspam_state_save(e, state_path));
  obspam_engine_free(e);
  MUST(obspam_engine_new(&e));
  MUST(obspam_load_config_string(e, base_conf));
  MUST(obspam_set_notify(e, record_notice, NULL));
  return e;
}

static obspam_engine *rich_saved(void) {
  obspam_engine *e = rich(), *other;

  /* The file to load holds another engine's state: more history, one
     object fewer, so that a load changes what a signature shows. */
  MUST(obspam_engine_new(&other));
  MUST(obspam_load_config_string(other, base_conf));
  decide_at(other, "sales@acme.example", NULL, 0, -1, NULL,
            "/var/www/acme/index.php", 3, START - 3600);
  decide_at(other, "info@acme.example", NULL, 0, -1, NULL, NULL, 9, T1 + 30);
  decide_at(other, "demo@bakery.example", NULL, 0, -1, NULL, "/x.php", 1,
            T1 + 40);
  MUST(obspam_state_save(other, state_path));
  obspam_engine_free(other);
  return e;
}

static obspam_engine *rich_immediate(void) {
  obspam_engine *e = rich();

  MUST(obspam_set_option(e, OBSPAM_OPT_NOTIFY_IMMEDIATE, 1));
  return e;
}

static obspam_engine *whitelist_full(void) {
  static const char *const nets[] = {"10.0.0.0/8", "172.16.0.0/12",
                                     "192.168.0.0/16", "203.0.113.0/24",
                                     "2001:db9::/32"};
  obspam_engine *e = rich();
  size_t i;

  /* With the three of the configuration: eight, the array's first size. */
  for (i = 0; i < sizeof(nets) / sizeof(nets[0]); i++)
    MUST(obspam_whitelist_add(e, nets[i]));
  return e;
}

/* One subscription owns a uid: moving it empties the table of uids. */
static obspam_engine *one_uid(void) {
  obspam_engine *e = empty();

  MUST(obspam_load_config_string(e, "subscription acme uid=1000\n"
                                    "subscription spare\n"
                                    "domain acme.example subscription=acme\n"));
  return e;
}

static int c_set_uid_only(obspam_engine *e) {
  return obspam_set_uid(e, "acme", 1001);
}

static obspam_engine *empty_with_sub(void) {
  obspam_engine *e = empty();

  MUST(obspam_add(e, OBSPAM_SUBSCRIPTION, "newco", NULL));
  return e;
}

static int c_set_uid_first_call(obspam_engine *e) {
  return obspam_set_uid(e, "newco", 1000);
}

static int c_add_first_plan_empty(obspam_engine *e) {
  return obspam_add(e, OBSPAM_PLAN, "gold", NULL);
}

/* The journal. Its setup writes a state file and a journal of decisions
   after it (made by another engine), for an engine that loaded the state
   file; every setup writes them anew, since opening the journal rewrites
   it. */
static obspam_engine *journaled(void) {
  obspam_engine *e = rich(), *other;
  char journal[600];

  /* What the last case left there would be replayed into other too. */
  snprintf(journal, sizeof(journal), "%s.journal", state_path);
  unlink(journal);
  MUST(obspam_state_save(e, state_path));
  obspam_engine_free(e);
  MUST(obspam_engine_new(&other));
  MUST(obspam_load_config_string(other, base_conf));
  MUST(obspam_state_load(other, state_path));
  MUST(obspam_journal_open(other, state_path, 0, NULL, NULL));
  decide_at(other, "sales@acme.example", NULL, 0, -1, NULL,
            "/var/www/acme/index.php", 3, T1 + 20);
  decide_at(other, "info@acme.example", NULL, 0, -1, NULL, NULL, 9, T1 + 30);
  decide_at(other, "x@shop.acme.example", NULL, 0, -1, NULL, NULL, 1, T1 + 35);
  decide_at(other, "demo@bakery.example", NULL, 0, -1, NULL, "/x.php", 1,
            T1 + 40);
  obspam_engine_free(other); /* closes the journal: every record written */
  MUST(obspam_engine_new(&e));
  MUST(obspam_load_config_string(e, base_conf));
  MUST(obspam_set_notify(e, record_notice, NULL));
  MUST(obspam_state_load(e, state_path));
  return e;
}

/* journaled()'s files, with a reset in the journal. */
static obspam_engine *journaled_reset(void) {
  obspam_engine *e = journaled(), *other;

  obspam_engine_free(e);
  MUST(obspam_engine_new(&other));
  MUST(obspam_load_config_string(other, base_conf));
  MUST(obspam_state_load(other, state_path));
  MUST(obspam_journal_open(other, state_path, 0, NULL, NULL));
  MUST(obspam_reset(other, OBSPAM_MAILBOX, "info@acme.example", T1 + 50));
  MUST(obspam_reset(other, OBSPAM_SUBSCRIPTION, "spare", T1 + 55));
  decide_at(other, "info@acme.example", NULL, 0, -1, NULL, NULL, 2, T1 + 60);
  obspam_engine_free(other);
  MUST(obspam_engine_new(&e));
  MUST(obspam_load_config_string(e, base_conf));
  MUST(obspam_set_notify(e, record_notice, NULL));
  MUST(obspam_state_load(e, state_path));
  return e;
}

static int c_journal_open(obspam_engine *e) {
  return obspam_journal_open(e, state_path, 0, NULL, NULL);
}

/* rich()'s engine, with no state file, and a journal of format 1 (written
   before the minute and day windows) where its journal goes. */
static obspam_engine *journaled_format_1(void) {
  obspam_engine *e = rich();
  char journal[600], cmd[1400];

  snprintf(journal, sizeof(journal), "%s.journal", state_path);
  unlink(state_path);
  snprintf(cmd, sizeof(cmd), "cp tests/data/journal-format1.bin '%s'", journal);
  if (system(cmd) != 0) {
    fprintf(stderr, "faults: %s failed\n", cmd);
    exit(2);
  }
  return e;
}

/* An engine with its journal open and decisions waiting in it. */
static obspam_engine *journal_waiting(void) {
  obspam_engine *e = journaled();

  MUST(obspam_journal_open(e, state_path, 0, NULL, NULL));
  decide_at(e, "info@acme.example", NULL, 0, -1, NULL, NULL, 1, T1 + 50);
  return e;
}

static int c_journal_flush(obspam_engine *e) { return obspam_journal_flush(e); }

static int c_journal_close(obspam_engine *e) { return obspam_journal_close(e); }

typedef struct fcase {
  const char *name;
  obspam_engine *(*setup)(void);
  int (*call)(obspam_engine *e);
  /* Allocations whose failure the call may absorb and still succeed,
     changing nothing that can be observed: documented per case. */
  const char *skippable;
  /* Instead of call, for an entry point that takes the engine and one
     text (an address, a path): the function and its text. */
  int (*call_text)(obspam_engine *e, const char *text);
  const char *text;
  /* Or a message to decide (check: to check). */
  const obspam_message *msg;
  int check;
} fcase;

/* A case made by a function of the engine; one of an entry point that
   takes the engine and a text; one that decides or checks a message. */
#define CASE(name, setup, call)                                                \
  { (name), (setup), (call), NULL, NULL, NULL, NULL, 0 }
#define TEXT_CASE(name, setup, call_text, text)                                \
  { (name), (setup), NULL, NULL, (call_text), (text), NULL, 0 }
#define MSG_CASE(name, setup, msg)                                             \
  { (name), (setup), NULL, NULL, NULL, NULL, (msg), 0 }
#define CHECK_CASE(name, setup, msg)                                           \
  { (name), (setup), NULL, NULL, NULL, NULL, (msg), 1 }
/* A message of those cases, its fields in the order of tu_msg's. */
#define MSG(flags, sasl, sender, rcpt, uid, hint, script, t)                   \
  (&(const obspam_message){sizeof(obspam_message), (flags), (sasl), (sender),  \
                           NULL, (rcpt), (uid), (hint), (script), (t)})

/* Makes the call of case c on e. */
static int call_case(const fcase *c, obspam_engine *e) {
  if (c->msg != NULL) {
    obspam_message m = *c->msg;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    return c->check ? obspam_check(e, &m, &v) : obspam_decide(e, &m, &v);
  }
  return c->call_text != NULL ? c->call_text(e, c->text) : c->call(e);
}

/* Whether ENOMEM may leave part of the call's work done: obspam_journal_open
   keeps the decisions it replayed so far, and the call made again must
   then end exactly where a call that never failed ends. */
static int resumable(const fcase *c) { return c->call == c_journal_open; }

static const fcase cases[] = {
    CASE("engine_new", empty, c_engine_new),
    CASE("add/mailbox", rich, c_add_mailbox),
    CASE("add/subscription", rich, c_add_subscription),
    CASE("add/plan", rich, c_add_first_plan),
    CASE("add/first-of-its-kind", empty, c_add_first_plan_empty),
    CASE("remove/mailbox", rich, c_remove_mailbox),
    CASE("remove/subscription", rich, c_remove_subscription),
    CASE("set_limit", rich, c_set_limit),
    CASE("effective_limit", rich, c_effective_limit),
    CASE("set_window_limit", rich, c_set_window_limit),
    CASE("set_max_recipients", rich, c_set_max_recipients),
    CASE("load_config_string/windows", rich, c_load_config_windows),
    CASE("set_uid/new", rich, c_set_uid_new),
    CASE("set_uid/change", rich, c_set_uid_change),
    CASE("set_uid/first", empty_with_sub, c_set_uid_first_call),
    CASE("set_uid/move-the-only-one", one_uid, c_set_uid_only),
    CASE("set_scripts_allowed", rich, c_set_scripts_allowed),
    CASE("set_contact/new", rich, c_set_contact),
    CASE("set_contact/replace", rich, c_set_contact_replace),
    CASE("set_option", rich, c_set_option),
    CASE("get_option", rich, c_get_option),
    TEXT_CASE("whitelist_add", rich, obspam_whitelist_add, "10.0.0.0/8"),
    /* The ninth entry (see whitelist_full) makes the array grow. */
    TEXT_CASE("whitelist_add/grow", whitelist_full, obspam_whitelist_add,
              "fe80::/10"),
    TEXT_CASE("whitelist_remove", rich, obspam_whitelist_remove,
              "198.51.100.7"),
    CASE("load_config_string", rich, c_load_config_string),
    CASE("load_config_string/big", rich, c_load_config_big),
    TEXT_CASE("load_config", rich, obspam_load_config, conf_path),
    /* A mailbox, domain and subscription without state yet, and a new
       script path. */
    MSG_CASE("decide/new-objects", rich,
             MSG(0, "other@cron.example", NULL, 1, -1, NULL,
                 "/srv/new/script.php", NOW)),
    /* An exempt mailing-list delivery through a mailbox, domain and
       subscription without state yet: recorded on all three, or on none. */
    MSG_CASE("decide/list-exempt-new", rich,
             MSG(OBSPAM_MSG_MAILING_LIST, NULL, "other@cron.example", 7, -1,
                 NULL, NULL, NOW)),
    /* A refusal in a new period: the old periods close into notices, and
       the immediate notice goes out (rich_immediate). */
    MSG_CASE("decide/refuse", rich_immediate,
             MSG(0, "demo@bakery.example", NULL, 40, -1, NULL,
                 "/var/www/bakery/wp-login.php", NOW)),
    MSG_CASE("decide/refuse-first-over-limit", rich_newco,
             MSG(0, "hello@newco.example", NULL, 1, -1, NULL, NULL, NOW)),
    MSG_CASE("decide/script", rich,
             MSG(OBSPAM_MSG_SCRIPT, NULL, NULL, 1, 1000, "shop.acme.example",
                 "/var/www/acme/shop/cart.php", NOW)),
    MSG_CASE("decide/refuse-over-windows", rich_windows,
             MSG(0, "sales@acme.example", NULL, 30, -1, NULL, NULL, NOW)),
    /* Eleven days on: idle rings and expired history are swept, and what
       they still had to notify becomes notices. */
    {"decide/sweep", rich, NULL,
     "the sweep that follows a decision turns the open period of a record "
     "it frees into a notice; when that allocation fails it stops, keeps "
     "the record and tries again at the next decision",
     NULL, NULL,
     MSG(0, "sales@acme.example", NULL, 1, -1, NULL, NULL, NOW + 11 * 86400),
     0},
    CHECK_CASE("check", rich,
               MSG(0, "new@cron.example", NULL, 1, -1, NULL, NULL, NOW)),
    CASE("stats_get", rich, c_stats_get),
    CASE("history", rich, c_history),
    CASE("history/script", rich, c_history_script),
    CASE("report", rich, c_report),
    CASE("set_notify", rich, c_set_notify),
    CASE("notify_flush", rich, c_notify_flush),
    TEXT_CASE("state_save", rich, obspam_state_save, state_path),
    TEXT_CASE("state_load", rich_saved, obspam_state_load, state_path),
    TEXT_CASE("state_load/format-1", rich, obspam_state_load,
              "tests/data/state-format1.bin"),
    TEXT_CASE("state_load/format-2", rich, obspam_state_load,
              "tests/data/state-format2.bin"),
    TEXT_CASE("state_load/format-3", rich, obspam_state_load,
              "tests/data/state-format3.bin"),
    TEXT_CASE("state_load/implicit", fresh_saved, obspam_state_load,
              state_path),
    TEXT_CASE("local_network_add", rich, obspam_local_network_add,
              "10.9.0.0/16"),
    TEXT_CASE("local_network_remove", rich_local, obspam_local_network_remove,
              "10.9.0.0/16"),
    CASE("forward_add", rich, c_forward_add),
    CASE("forward_add/catch-all", rich, c_forward_add_catch_all),
    TEXT_CASE("forward_remove", rich_marks, obspam_forward_remove,
              "fwd@acme.example"),
    TEXT_CASE("mailing_list_add", rich, obspam_mailing_list_add,
              "news@acme.example"),
    TEXT_CASE("mailing_list_remove", rich_marks, obspam_mailing_list_remove,
              "news@acme.example"),
    CASE("load_config_string/forwards", rich, c_load_config_marks),
    CASE("implicit_status", rich, c_implicit_status),
    /* A login whose implicit mailbox does not exist yet. */
    MSG_CASE("decide/implicit-new", rich,
             MSG(0, "fresh@acme.example", NULL, 1, -1, NULL, NULL, NOW)),
    CASE("add/declare-implicit", rich, c_declare_implicit),
    CASE("remove/domain-with-implicit", rich, c_remove_domain_implicit),
    CASE("load_config_string/undeclare", rich, c_load_config_undeclare),
    CASE("journal_open", journaled, c_journal_open),
    CASE("journal_open/format-1", journaled_format_1, c_journal_open),
    CASE("journal_flush", journal_waiting, c_journal_flush),
    CASE("journal_close", journal_waiting, c_journal_close),
    TEXT_CASE("state_save/journal", journal_waiting, obspam_state_save,
              state_path),
    CASE("enumerate", rich, c_enumerate),
    CASE("enumerate/under-active-after", rich, c_enumerate_under),
    CASE("top", rich, c_top),
    CASE("reset", rich, c_reset),
    CASE("reset/idle", rich, c_reset_idle),
    CASE("reset/implicit", rich, c_reset_implicit),
    CASE("reset/journal", journal_waiting, c_reset),
    CASE("journal_open/reset", journaled_reset, c_journal_open),
    TEXT_CASE("set_unknown_uid_subscription", rich,
              obspam_set_unknown_uid_subscription, "spare"),
    MSG_CASE("decide/unknown-uid", rich,
             MSG(OBSPAM_MSG_SCRIPT, NULL, NULL, 1, 4242, NULL,
                 "/var/www/unknown/x.php", NOW)),
    CASE("load_config_string/unknown-uid", rich, c_load_config_unknown_uid),
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* ---- running a case ------------------------------------------------------ */

/* obspam_engine_new: every failure gives ENOMEM, no engine and no leak. */
static void run_engine_new(int after, long *allocs) {
  long n;

  for (n = 1;; n++) {
    obspam_engine *e = (obspam_engine *)&n; /* must be set to NULL */
    int rc;

    arm(n, after);
    rc = obspam_engine_new(&e);
    disarm();
    if (failed == 0) {
      if (rc != OBSPAM_OK || e == NULL)
        problem("N=%ld: no failure, yet %d", n, rc);
      else
        obspam_engine_free(e);
      *allocs = seen;
      return;
    }
    if (rc != OBSPAM_ENOMEM || e != NULL)
      problem("N=%ld: returned %d with engine %p, expected ENOMEM and NULL", n,
              rc, (void *)e);
    if (rc == OBSPAM_OK && e != NULL && e != (obspam_engine *)&n)
      obspam_engine_free(e);
  }
}

static void run_case(const fcase *c, int after, long *allocs, long *skipped) {
  text before = {0}, expected = {0}, got = {0};
  char diff[600];
  obspam_engine *e;
  long n;
  int rc;

  if (c->call == c_engine_new) {
    run_engine_new(after, allocs);
    return;
  }
  /* What the engine shows before the call, and after it succeeds. */
  e = c->setup();
  clear_notice_log();
  signature(e, &before);
  rc = call_case(c, e);
  if (rc != OBSPAM_OK) {
    problem("the call fails without any injected failure: %d (%s)", rc,
            obspam_engine_errmsg(e));
    obspam_engine_free(e);
    text_free(&before);
    return;
  }
  final_signature(e, &expected);
  obspam_engine_free(e);

  for (n = 1;; n++) {
    e = c->setup();
    clear_notice_log();
    arm(n, after);
    rc = call_case(c, e);
    disarm();
    if (failed == 0) {
      /* The call needs fewer than n allocations: done. */
      if (rc != OBSPAM_OK)
        problem("N=%ld: no failure, yet %d (%s)", n, rc,
                obspam_engine_errmsg(e));
      *allocs = seen;
      obspam_engine_free(e);
      break;
    }
    if (rc == OBSPAM_OK) {
      /* The call did without that allocation: nothing may show it. */
      (*skipped)++;
      final_signature(e, &got);
      if (strcmp(got.p, expected.p) != 0) {
        first_difference(&expected, &got, diff, sizeof(diff));
        problem("N=%ld: allocation %ld failed, the call succeeded, but the "
                "engine differs from one where it did not fail: %s",
                n, fail_at, diff);
      }
    } else if (rc != OBSPAM_ENOMEM) {
      problem("N=%ld: returned %d (%s), expected ENOMEM: %s", n, rc,
              obspam_strerror(rc), obspam_engine_errmsg(e));
    } else {
      if (strstr(obspam_engine_errmsg(e), "out of memory") == NULL)
        problem("N=%ld: ENOMEM, but the message says '%s'", n,
                obspam_engine_errmsg(e));
      signature(e, &got);
      if (!resumable(c) && strcmp(got.p, before.p) != 0) {
        first_difference(&before, &got, diff, sizeof(diff));
        problem("N=%ld: ENOMEM, but the engine changed: %s", n, diff);
      }
      text_free(&got);
      /* Fully usable: the same call now succeeds, and ends where a call
         that never failed ends. */
      rc = call_case(c, e);
      if (rc != OBSPAM_OK) {
        problem("N=%ld: after ENOMEM the call fails again: %d (%s)", n, rc,
                obspam_engine_errmsg(e));
      } else {
        final_signature(e, &got);
        if (strcmp(got.p, expected.p) != 0) {
          first_difference(&expected, &got, diff, sizeof(diff));
          problem("N=%ld: after ENOMEM and a successful retry the engine "
                  "differs: %s",
                  n, diff);
        }
      }
    }
    text_free(&got);
    obspam_engine_free(e);
  }
  text_free(&before);
  text_free(&expected);
}

static int run(const fcase *c) {
  int after, bad = 0;

  for (after = 0; after <= 1; after++) {
    long allocs = 0, skipped = 0;

    problems = 0;
    run_case(c, after, &allocs, &skipped);
    if (__lsan_do_recoverable_leak_check() != 0)
      problem("LeakSanitizer found leaks (see above)");
    if (skipped > 0 && c->skippable == NULL)
      problem("%ld injected failures were absorbed by a call that documents "
              "none",
              skipped);
    printf("%s %s (%s): %ld allocations; %s\n", problems ? "FAIL" : "ok  ",
           c->name, after ? "failing from the Nth on" : "failing the Nth",
           allocs,
           allocs == 0   ? "nothing to fail"
           : skipped > 0 ? "some failures absorbed"
                         : "each failure gave ENOMEM");
    fflush(stdout);
    bad |= problems != 0;
  }
  return bad;
}

/* ---- obspam_decide_batch -------------------------------------------------

   A batch is not one call that fails or succeeds as a whole: each message
   is decided as obspam_decide would decide it, the messages before a
   failure stay decided and the ones after it are decided too. So the
   batch is compared with the same messages decided one by one on a second
   engine, with the same allocation failing: the same return codes, the
   same verdicts, and engines that end alike (signature and notices). */

#define NBATCH 11 /* more than one group of the library's */

static void batch_messages(obspam_message *m) {
  static const char *const logins[NBATCH] = {"other@cron.example",
                                             "demo@bakery.example",
                                             NULL,
                                             "info@acme.example",
                                             "x@shop.acme.example",
                                             "sales@acme.example",
                                             "other@cron.example",
                                             NULL,
                                             "demo@bakery.example",
                                             "nobody@nowhere.example",
                                             "orders@shop.acme.example"};
  int i;

  for (i = 0; i < NBATCH; i++) {
    obspam_message m0 = OBSPAM_MESSAGE_INIT;

    m[i] = m0;
    m[i].sasl_username = logins[i];
    m[i].time = NOW + i;
    m[i].recipients = 1 + (uint32_t)(i % 3) * 20;
  }
  m[0].script = "/srv/new/script.php";
  m[2].flags = OBSPAM_MSG_SCRIPT; /* a script of uid 1000 */
  m[2].uid = 1000;
  m[2].domain_hint = "shop.acme.example";
  m[2].script = "/var/www/acme/shop/new.php";
  m[5].client_address = "10.1.1.1";
  m[7].recipients = 0; /* invalid: EINVAL wherever it comes */
  m[8].script = "/var/www/bakery/wp-login.php";
}

/* Decides the batch on e, one by one when single is set, with the Nth
   allocation failing as arm() says; the codes, verdicts and final
   signature go into t, and *enomem is set when a message got ENOMEM.
   Returns the number of injected failures. */
static long batch_run(obspam_engine *e, int single, long n, int after, text *t,
                      int *enomem) {
  obspam_message m[NBATCH];
  obspam_verdict v[NBATCH];
  const obspam_message *pm[NBATCH];
  obspam_verdict *pv[NBATCH];
  int rc[NBATCH], first = OBSPAM_OK, ret;
  long injected;
  int i;

  batch_messages(m);
  for (i = 0; i < NBATCH; i++) {
    obspam_verdict v0 = OBSPAM_VERDICT_INIT;

    v[i] = v0;
    pm[i] = &m[i];
    pv[i] = &v[i];
  }
  if (n > 0)
    arm(n, after);
  if (single) {
    for (i = 0; i < NBATCH; i++) {
      rc[i] = obspam_decide(e, pm[i], pv[i]);
      if (rc[i] != OBSPAM_OK && first == OBSPAM_OK)
        first = rc[i];
    }
    ret = first;
  } else {
    ret = obspam_decide_batch(e, pm, pv, rc, NBATCH);
  }
  disarm();
  injected = n > 0 ? failed : 0;
  put(t, "returned %d\n", ret);
  for (i = 0; i < NBATCH; i++) {
    put(t, "message %d: %d", i, rc[i]);
    *enomem |= rc[i] == OBSPAM_ENOMEM;
    if (rc[i] == OBSPAM_OK)
      put(t, " %d %d '%s' %" PRId64 " %" PRId64 " %" PRId64, v[i].action,
          v[i].kind, v[i].object, v[i].limit, v[i].count, v[i].retry_after);
    put(t, "\n");
  }
  final_signature(e, t);
  return injected;
}

static int run_batch(obspam_engine *(*setup)(void), const char *name) {
  int after, bad = 0;

  for (after = 0; after <= 1; after++) {
    long n, enomem = 0;

    problems = 0;
    for (n = 1;; n++) {
      text one = {0}, many = {0};
      char diff[600];
      obspam_engine *e;
      long f1, f2;
      int saw = 0;

      e = setup();
      clear_notice_log();
      f1 = batch_run(e, 1, n, after, &one, &saw);
      obspam_engine_free(e);
      e = setup();
      clear_notice_log();
      f2 = batch_run(e, 0, n, after, &many, &saw);
      obspam_engine_free(e);
      if (f1 != f2)
        problem("N=%ld: %ld failures one by one, %ld in the batch", n, f1, f2);
      else if (strcmp(one.p, many.p) != 0) {
        first_difference(&one, &many, diff, sizeof(diff));
        problem("N=%ld: the batch differs from the same messages one by "
                "one: %s",
                n, diff);
      }
      enomem += saw;
      text_free(&one);
      text_free(&many);
      if (f2 == 0 || problems > 0)
        break;
    }
    if (enomem == 0)
      problem("no injected failure gave ENOMEM");
    if (__lsan_do_recoverable_leak_check() != 0)
      problem("LeakSanitizer found leaks (see above)");
    printf("%s %s (%s): %ld allocations; each run alike one by one\n",
           problems ? "FAIL" : "ok  ", name,
           after ? "failing from the Nth on" : "failing the Nth", n - 1);
    fflush(stdout);
    bad |= problems != 0;
  }
  return bad;
}

static void setup_files(void) {
  const char *tmp = getenv("TMPDIR");
  size_t i, len = 0;
  FILE *f;

  snprintf(dir, sizeof(dir), "%s/obspam-faults.XXXXXX", tmp ? tmp : "/tmp");
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    exit(2);
  }
  snprintf(state_path, sizeof(state_path), "%s/state", dir);
  snprintf(conf_path, sizeof(conf_path), "%s/obspam.conf", dir);
  f = fopen(conf_path, "w");
  if (f == NULL || fputs(big_conf_head, f) < 0 || fclose(f) != 0) {
    perror(conf_path);
    exit(2);
  }
  /* 400 mailboxes: enough for the tables to grow while it loads. */
  big_conf = __real_malloc(strlen(big_conf_head) + 400 * 64);
  len = (size_t)sprintf(big_conf, "%s", big_conf_head);
  for (i = 0; i < 400; i++)
    len += (size_t)sprintf(big_conf + len, "mailbox m%zu@newco.example\n", i);
}

static void cleanup_files(void) {
  unlink(state_path);
  unlink(conf_path);
  rmdir(dir);
  free(big_conf);
}

int main(int argc, char **argv) {
  size_t i;
  int bad = 0, ran = 0, a;

  if (argc == 2 && strcmp(argv[1], "--list") == 0) {
    for (i = 0; i < NCASES; i++)
      puts(cases[i].name);
    puts("decide_batch");
    puts("decide_batch/immediate");
    return 0;
  }
  setup_files();
  for (i = 0; i < NCASES; i++) {
    int wanted = argc == 1;

    for (a = 1; a < argc; a++)
      if (strcmp(argv[a], cases[i].name) == 0 ||
          (strncmp(argv[a], cases[i].name, strlen(argv[a])) == 0 &&
           cases[i].name[strlen(argv[a])] == '/'))
        wanted = 1;
    if (!wanted)
      continue;
    bad |= run(&cases[i]);
    ran++;
  }
  for (a = 1; a < argc || argc == 1; a++) {
    if (argc == 1 || strcmp(argv[a], "decide_batch") == 0) {
      bad |= run_batch(rich, "decide_batch");
      bad |= run_batch(rich_immediate, "decide_batch/immediate");
      ran++;
    }
    if (argc == 1)
      break;
  }
  cleanup_files();
  if (ran == 0) {
    fprintf(stderr, "faults: no such case (see --list)\n");
    return 2;
  }
  return bad;
}
