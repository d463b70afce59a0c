/* SPDX-License-Identifier: MIT */
/* The configuration file: every keyword and value form, every error with
   its exact message and line, failed loads that change nothing, reloads
   that keep counters, and examples/obspam.conf. */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#ifndef OBSPAM_TEST_SRCDIR
#define OBSPAM_TEST_SRCDIR "tests"
#endif

static obspam_engine *e;

TU_ENGINE_SETUP(tu_new())

TestSuite(config_keywords, .init = setup, .fini = teardown);
TestSuite(config_errors, .init = setup, .fini = teardown);
TestSuite(config_files, .init = setup, .fini = teardown);
TestSuite(config_atomic, .init = setup, .fini = teardown);
TestSuite(config_reload, .init = setup, .fini = teardown);
TestSuite(config_example, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------- */

static void load_ok(obspam_engine *x, const char *text, int line) {
  int rc = obspam_load_config_string(x, text);

  cr_assert_eq(rc, OBSPAM_OK, "line %d: load returned %d (%s): %s", line, rc,
               obspam_strerror(rc), obspam_engine_errmsg(x));
}
#define LOAD(x, text) load_ok((x), (text), __LINE__)

static int64_t opt(obspam_engine *x, int option) {
  int64_t v = -12345;

  cr_assert_eq(obspam_get_option(x, option, &v), OBSPAM_OK);
  return v;
}

#define EXPECT_OPT(x, option, want)                                            \
  cr_assert_eq(opt((x), (option)), (int64_t)(want),                            \
               "line %d: option %s = %" PRId64 ", expected %" PRId64,          \
               __LINE__, #option, opt((x), (option)), (int64_t)(want))

/* Every option a configuration file sets, in the order of the values
   expect_all_options takes. */
static const int all_options[] = {OBSPAM_OPT_ENABLED,
                                  OBSPAM_OPT_IMPLICIT_MAILBOXES,
                                  OBSPAM_OPT_COUNT_UNIT,
                                  OBSPAM_OPT_ACTION,
                                  OBSPAM_OPT_COUNT_UNAUTHENTICATED,
                                  OBSPAM_OPT_COUNT_FORWARD_LOCAL,
                                  OBSPAM_OPT_COUNT_FORWARD_REMOTE,
                                  OBSPAM_OPT_COUNT_MAILING_LISTS,
                                  OBSPAM_OPT_RETENTION_HOURS,
                                  OBSPAM_OPT_NOTIFY_PERIOD,
                                  OBSPAM_OPT_NOTIFY_IMMEDIATE};
#define N_OPTIONS (sizeof all_options / sizeof all_options[0])

/* Asserts the value of every option of all_options. */
static void expect_all_options(const int64_t want[N_OPTIONS], int line) {
  for (size_t i = 0; i < N_OPTIONS; i++)
    cr_assert_eq(opt(e, all_options[i]), want[i],
                 "line %d: option %d = %" PRId64 ", expected %" PRId64, line,
                 all_options[i], opt(e, all_options[i]), want[i]);
}

/* The configuration the error tests start from; each failed load must
   leave it in place. */
static const char *const BASE = "count messages\n"
                                "default domain=900\n"
                                "plan base mailbox=7\n"
                                "subscription keep plan=base uid=4242\n"
                                "domain keep.example subscription=keep\n"
                                "mailbox m@keep.example\n"
                                "whitelist 192.0.2.0/24\n";

/* Checks that BASE is still the configuration. */
static void expect_base(int line) {
  int64_t v = -99;
  obspam_message m =
      tu_msg(0, "m@keep.example", NULL, "192.0.2.1", 1, -1, NULL, NULL, T0);
  obspam_verdict ver;

  cr_assert_eq(opt(e, OBSPAM_OPT_COUNT_UNIT), 1,
               "line %d: the count option changed", line);
  cr_assert_eq(obspam_effective_limit(e, OBSPAM_MAILBOX, "m@keep.example", &v),
               OBSPAM_OK, "line %d: the mailbox is gone", line);
  cr_assert_eq(v, 7, "line %d: the mailbox limit is %" PRId64, line, v);
  cr_assert_eq(obspam_effective_limit(e, OBSPAM_DOMAIN, "keep.example", &v),
               OBSPAM_OK);
  cr_assert_eq(v, 900, "line %d: the domain limit is %" PRId64, line, v);
  ver = tu_decide_msg(e, &m, line);
  cr_assert_eq(ver.action, OBSPAM_EXEMPT, "line %d: the whitelist changed",
               line);
  m = tu_msg(OBSPAM_MSG_SCRIPT, NULL, NULL, NULL, 1, 4242, NULL, NULL, T0);
  ver = tu_decide_msg(e, &m, line);
  cr_assert_str_eq(ver.object, "keep", "line %d: the uid changed", line);
}

/* Loads text on top of BASE and expects an ESYNTAX error on line `at`
   with exactly message msg; the engine must still hold BASE. */
static void expect_error(const char *text, unsigned at, const char *msg,
                         int line) {
  char want[600];
  int rc = obspam_load_config_string(e, text);

  cr_assert_eq(rc, OBSPAM_ESYNTAX,
               "line %d: load returned %d (%s), expected ESYNTAX; errmsg: %s",
               line, rc, obspam_strerror(rc), obspam_engine_errmsg(e));
  snprintf(want, sizeof(want), "<string>:%u: %s", at, msg);
  cr_assert_str_eq(obspam_engine_errmsg(e), want,
                   "line %d:\n  got      \"%s\"\n  expected \"%s\"", line,
                   obspam_engine_errmsg(e), want);
  expect_base(line);
}

#define ERR(text, at, msg)                                                     \
  do {                                                                         \
    LOAD(e, BASE);                                                             \
    expect_error((text), (at), (msg), __LINE__);                               \
  } while (0)

/* ERR for each case of n: a configuration text, then "=> AT: MSG", the
   line and message of the error it must get. */
static void expect_errors(const char *const *cases, size_t n, int line) {
  for (size_t i = 0; i < n; i++) {
    const char *arrow = strstr(cases[i], "=> ");
    char text[1024];
    unsigned at;
    int used = 0;

    cr_assert(arrow != NULL && sscanf(arrow, "=> %u: %n", &at, &used) == 1 &&
                  used > 0,
              "line %d: case %zu has no \"=> AT: MSG\"", line, i);
    cr_assert_lt((size_t)(arrow - cases[i]), sizeof text);
    snprintf(text, sizeof text, "%.*s", (int)(arrow - cases[i]), cases[i]);
    LOAD(e, BASE);
    expect_error(text, at, arrow + used, line);
  }
}
#define ERRS(...)                                                              \
  expect_errors((const char *const[]){__VA_ARGS__},                            \
                sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *),   \
                __LINE__)

/* A fresh temporary directory, and files in it. */
static char tmpdir[256];

static const char *make_tmpdir(void) {
  tu_mkdtemp(tmpdir, sizeof(tmpdir), "obspam-test-config");
  return tmpdir;
}

static void write_file(const char *path, const char *data, size_t len) {
  FILE *f = fopen(path, "wb");

  cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
  cr_assert_eq(fwrite(data, 1, len, f), len);
  cr_assert_eq(fclose(f), 0);
}

/* Writes text as obspam.conf in a new temporary directory and loads it on
   top of BASE: the error is want, and the engine still holds BASE. */
static void expect_file_error(const char *text, const char *want, int line) {
  cr_assert_eq(chdir(make_tmpdir()), 0);
  write_file("obspam.conf", text, strlen(text));
  LOAD(e, BASE);
  RC(obspam_load_config(e, "obspam.conf"), OBSPAM_ESYNTAX);
  cr_assert_str_eq(obspam_engine_errmsg(e), want, "line %d", line);
  expect_base(line);
  unlink("obspam.conf");
  cr_assert_eq(chdir("/"), 0);
  rmdir(tmpdir);
}

/* ---- keywords ------------------------------------------------------------ */

/* Asserts that m, sent from client, is exempt: the client is whitelisted. */
static void expect_whitelisted(obspam_message m, const char *client, int line) {
  obspam_verdict v;

  m.client_address = client;
  v = tu_decide_msg(e, &m, line);
  tu_expect_verdict(&v, OBSPAM_EXEMPT, -1, "", 0, 0, 0, line);
}
#define EXPECT_WHITELISTED(m, client)                                          \
  expect_whitelisted((m), (client), __LINE__)

/* SPEC.md's example from its plan line on: the tree and the whitelist. */
#define SPEC_EXAMPLE_TREE                                                      \
  "plan Basic mailbox=50 domain=500 subscription=1000\n"                       \
  "subscription acme plan=Basic subscription=3000 uid=10001 "                  \
  "scripts=yes contact=ops@acme.example\n"                                     \
  "domain example.com subscription=acme domain=unlimited mailbox=80\n"         \
  "mailbox info@example.com limit=20\n"                                        \
  "whitelist 192.0.2.0/24\n"                                                   \
  "whitelist 2001:db8::/32\n"

Test(config_keywords, spec_example_as_written) {
  LOAD(e,
       "enabled yes\n"
       "count recipients\n"
       "action defer\n"
       "default mailbox=100 domain=1000 subscription=5000\n" SPEC_EXAMPLE_TREE);
  EXPECT_EFFS(e, "mailbox info@example.com 20\n"
                 "domain example.com unlimited\n"
                 "subscription acme 3000\n");

  obspam_message m =
      tu_msg(0, "info@example.com", NULL, NULL, 1, -1, NULL, NULL, T0);
  EXPECT_WHITELISTED(m, "192.0.2.200");
  EXPECT_WHITELISTED(m, "2001:db8:ffff::1");
  m.client_address = "2001:db9::1";
  obspam_verdict v = DECIDE(e, &m);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 20, 0,
                 0);
  v = SCRIPT(e, 10001, "example.com", 2, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "example.com",
                 OBSPAM_UNLIMITED, 1, 0);
}

/* Each option keyword, with each of its values. */
Test(config_keywords, options_every_value) {
  static const struct {
    const char *kw;
    int option;
    const char *v0, *v1; /* the words for 0 and 1 */
  } bools[] = {
      {"enabled", OBSPAM_OPT_ENABLED, "no", "yes"},
      {"count", OBSPAM_OPT_COUNT_UNIT, "recipients", "messages"},
      {"action", OBSPAM_OPT_ACTION, "defer", "reject"},
      {"count-forward-local", OBSPAM_OPT_COUNT_FORWARD_LOCAL, "no", "yes"},
      {"count-forward-remote", OBSPAM_OPT_COUNT_FORWARD_REMOTE, "no", "yes"},
      {"count-mailing-lists", OBSPAM_OPT_COUNT_MAILING_LISTS, "no", "yes"},
      {"notify-immediate", OBSPAM_OPT_NOTIFY_IMMEDIATE, "no", "yes"},
  };
  char text[128];
  size_t i;

  for (i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
    snprintf(text, sizeof(text), "%s %s\n", bools[i].kw, bools[i].v1);
    LOAD(e, text);
    cr_assert_eq(opt(e, bools[i].option), 1, "%s", text);
    snprintf(text, sizeof(text), "%s %s\n", bools[i].kw, bools[i].v0);
    LOAD(e, text);
    cr_assert_eq(opt(e, bools[i].option), 0, "%s", text);
  }
  /* Three values: local (the default), yes and no; counts; retention and
     notify-period at their bounds and with a leading zero. Each row loads
     its text and asserts one option. */
  static const struct {
    const char *text;
    int option;
    int64_t want;
  } values[] = {
      {"count-unauthenticated yes\n", OBSPAM_OPT_COUNT_UNAUTHENTICATED, 1},
      {"count-unauthenticated no\n", OBSPAM_OPT_COUNT_UNAUTHENTICATED, 0},
      {"count-unauthenticated local\n", OBSPAM_OPT_COUNT_UNAUTHENTICATED, 2},
      {"implicit-mailboxes 0\n", OBSPAM_OPT_IMPLICIT_MAILBOXES, 0},
      {"implicit-mailboxes 100000000\n", OBSPAM_OPT_IMPLICIT_MAILBOXES,
       100000000},
      {"retention 1\nnotify-period 60\n", OBSPAM_OPT_RETENTION_HOURS, 1},
      {"retention 1\nnotify-period 60\n", OBSPAM_OPT_NOTIFY_PERIOD, 60},
      {"retention 87600\nnotify-period 2678400\n", OBSPAM_OPT_RETENTION_HOURS,
       87600},
      {"retention 87600\nnotify-period 2678400\n", OBSPAM_OPT_NOTIFY_PERIOD,
       2678400},
      {"retention 0048\nnotify-period 900\n", OBSPAM_OPT_RETENTION_HOURS, 48},
      {"retention 0048\nnotify-period 900\n", OBSPAM_OPT_NOTIFY_PERIOD, 900}};
  for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    LOAD(e, values[i].text);
    cr_assert_eq(opt(e, values[i].option), values[i].want,
                 "%s: %" PRId64 ", expected %" PRId64, values[i].text,
                 opt(e, values[i].option), values[i].want);
  }
}

/* All options at once, then a text without them: every option is back to
   its default. */
Test(config_keywords, options_not_given_return_to_default) {
  LOAD(e, "enabled no\ncount messages\naction reject\n"
          "count-unauthenticated no\ncount-forward-local yes\n"
          "count-forward-remote no\ncount-mailing-lists yes\n"
          "retention 24\nnotify-period 600\nnotify-immediate yes\n"
          "implicit-mailboxes 5\n");
  expect_all_options(
      (const int64_t[N_OPTIONS]){0, 5, 1, 1, 0, 1, 0, 1, 24, 600, 1}, __LINE__);

  LOAD(e, "# nothing but a comment\n");
  /* The defaults. */
  expect_all_options(
      (const int64_t[N_OPTIONS]){1, 100000, 0, 0, 2, 0, 1, 0, 720, 3600, 0},
      __LINE__);
}

/* Options set through the API are replaced by the file as well. */
Test(config_keywords, options_set_by_api_are_replaced) {
  OK(obspam_set_option(e, OBSPAM_OPT_RETENTION_HOURS, 5));
  OK(obspam_set_option(e, OBSPAM_OPT_ACTION, 1));
  LOAD(e, "action defer\n");
  EXPECT_OPT(e, OBSPAM_OPT_RETENTION_HOURS, 720);
  EXPECT_OPT(e, OBSPAM_OPT_ACTION, 0);
}

/* `enabled no` really switches protection off, `count messages` counts one
   per message. */
Test(config_keywords, options_take_effect) {
  LOAD(e, "enabled no\nsubscription s\ndomain d.example subscription=s "
          "mailbox=0\n");
  obspam_verdict v = SASL(e, "x@d.example", 1, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_ACCEPT);
  LOAD(e, "count messages\nsubscription s\ndomain d.example subscription=s "
          "mailbox=10\n");
  v = SASL(e, "x@d.example", 8, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "x@d.example", 10, 0, 0);
  v = SASL(e, "x@d.example", 8, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "x@d.example", 10, 1, 0);
}

Test(config_keywords, default_every_key) {
  LOAD(e, "default mailbox=11 domain=22 subscription=33 scripts=no\n"
          "plan p\nsubscription s plan=p uid=500\n"
          "domain d.example subscription=s\nmailbox m@d.example\n");
  EXPECT_EFFS(e, "mailbox m@d.example 11\n"
                 "domain d.example 22\n"
                 "subscription s 33\n");
  obspam_verdict v = SCRIPT(e, 500, NULL, 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "s", 33, 0);

  LOAD(e, "default mailbox=unlimited domain=0 subscription=unlimited "
          "scripts=yes\n"
          "subscription s uid=500\ndomain d.example subscription=s\n"
          "mailbox m@d.example\n");
  EXPECT_EFFS(e, "mailbox m@d.example unlimited\n"
                 "domain d.example 0\n"
                 "subscription s unlimited\n");
  v = SCRIPT(e, 500, NULL, 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, "s", OBSPAM_UNLIMITED,
                 0, 0);

  /* `default` with no key, and no `default` at all: unlimited. */
  LOAD(e, "default\nsubscription s\n");
  EXPECT_EFF(e, OBSPAM_SUBSCRIPTION, "s", OBSPAM_UNLIMITED);
  LOAD(e, "subscription s uid=1\n");
  EXPECT_EFF(e, OBSPAM_SUBSCRIPTION, "s", OBSPAM_UNLIMITED);
  v = SCRIPT(e, 1, NULL, 1, T0);
  cr_assert_eq(v.action, OBSPAM_ACCEPT, "scripts are allowed by default");
}

Test(config_keywords, plan_every_key) {
  LOAD(e, "default mailbox=1 domain=2 subscription=3 scripts=yes\n"
          "plan p mailbox=10 domain=20 subscription=30 scripts=no\n"
          "plan q mailbox=inherit domain=unlimited subscription=0 "
          "scripts=inherit\n"
          "plan r scripts=yes\n"
          "subscription sp plan=p uid=1\nsubscription sq plan=q uid=2\n"
          "domain dp.example subscription=sp\ndomain dq.example "
          "subscription=sq\n"
          "mailbox m@dp.example\nmailbox m@dq.example\n");
  EXPECT_EFFS(e, "mailbox m@dp.example 10\ndomain dp.example 20\n"
                 "subscription sp 30\nmailbox m@dq.example 1\n"
                 "domain dq.example unlimited\nsubscription sq 0\n");
  obspam_verdict v = SCRIPT(e, 1, NULL, 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "sp", 30, 0);
  /* sq's plan inherits scripts=yes from the server; its limit 0 refuses. */
  v = SCRIPT(e, 2, NULL, 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "sq", 0, 0);

  /* A plan allows scripts the server forbids. */
  LOAD(e, "default scripts=no\nplan r scripts=yes\nsubscription s plan=r "
          "uid=3\n");
  v = SCRIPT(e, 3, NULL, 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, "s", OBSPAM_UNLIMITED,
                 0, 0);
}

Test(config_keywords, subscription_every_key) {
  LOAD(e, "default scripts=no\n"
          "plan p mailbox=10 domain=20 subscription=30 scripts=no\n"
          "subscription s plan=p mailbox=11 domain=21 subscription=31 "
          "uid=1000 scripts=yes contact=Ops@S.example\n"
          "subscription t mailbox=unlimited domain=inherit "
          "subscription=inherit uid=0 scripts=inherit\n"
          "subscription u plan=p scripts=no uid=1001\n"
          "subscription v plan=p scripts=inherit uid=1002\n"
          "domain ds.example subscription=s\nmailbox m@ds.example\n"
          "domain dt.example subscription=t\nmailbox m@dt.example\n");
  EXPECT_EFFS(e, "mailbox m@ds.example 11\ndomain ds.example 21\n"
                 "subscription s 31\nmailbox m@dt.example unlimited\n"
                 "domain dt.example unlimited\nsubscription t unlimited\n");

  obspam_verdict v = SCRIPT(e, 1000, "ds.example", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "ds.example", 21, 0, 0);
  /* uid 0 is a uid like any other; t inherits scripts=no from the server. */
  v = SCRIPT(e, 0, NULL, 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "t", OBSPAM_UNLIMITED, 0);
  v = SCRIPT(e, 1001, NULL, 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "u", 30, 0);
  v = SCRIPT(e, 1002, NULL, 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "v", 30, 0);
  v = SCRIPT(e, 1003, NULL, 1, T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_UNKNOWN);
}

static char notice_contact[64], notice_sub[64];
static int notices_for_mailbox;

static void on_notice(const obspam_notice *n, void *ud) {
  (void)ud;
  if (n->kind != OBSPAM_MAILBOX || strcmp(n->name, "m@ds.example") != 0)
    return;
  notices_for_mailbox++;
  snprintf(notice_contact, sizeof(notice_contact), "%s",
           n->contact ? n->contact : "(null)");
  snprintf(notice_sub, sizeof(notice_sub), "%s",
           n->subscription ? n->subscription : "(null)");
}

/* contact= reaches the notices of the subscription's objects, as written. */
Test(config_keywords, subscription_contact_reaches_notices) {
  LOAD(e, "subscription s contact=Ops@S.example\n"
          "domain ds.example subscription=s\nmailbox m@ds.example limit=0\n");
  OK(obspam_set_notify(e, on_notice, NULL));
  obspam_verdict v = SASL(e, "m@ds.example", 1, T0 + 10);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "m@ds.example", 0, 0);
  OK(obspam_notify_flush(e, T0 + 3600));
  cr_assert_eq(notices_for_mailbox, 1);
  cr_assert_str_eq(notice_contact, "Ops@S.example");
  cr_assert_str_eq(notice_sub, "s");
}

Test(config_keywords, domain_every_key) {
  LOAD(e, "subscription s mailbox=5 domain=6 subscription=6\n"
          "domain a.example subscription=s domain=60 mailbox=50\n"
          "domain b.example subscription=S domain=unlimited mailbox=inherit\n"
          "domain c.example subscription=s domain=0 mailbox=unlimited\n"
          "mailbox m@a.example\nmailbox m@b.example\nmailbox m@c.example\n");
  EXPECT_EFFS(e, "domain a.example 60\nmailbox m@a.example 50\n"
                 "domain b.example unlimited\nmailbox m@b.example 5\n"
                 "domain c.example 0\nmailbox m@c.example unlimited\n");
  /* subscription= is the parent: the domain is charged with s. */
  obspam_verdict v = SASL(e, "m@a.example", 7, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "s", 6, 0);
}

Test(config_keywords, mailbox_limit_forms) {
  LOAD(e, "subscription s mailbox=9\ndomain d.example subscription=s\n"
          "mailbox count@d.example limit=3\n"
          "mailbox zero@d.example limit=0\n"
          "mailbox free@d.example limit=unlimited\n"
          "mailbox inh@d.example limit=inherit\n"
          "mailbox none@d.example\n"
          "mailbox Big@D.Example limit=9223372036854775807\n");
  EXPECT_EFFS(e, "mailbox count@d.example 3\nmailbox zero@d.example 0\n"
                 "mailbox free@d.example unlimited\n"
                 "mailbox inh@d.example 9\nmailbox none@d.example 9\n"
                 "mailbox big@d.example 9223372036854775807\n");
  obspam_verdict v = SASL(e, "zero@d.example", 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "zero@d.example", 0, 0);
  v = SASL(e, "count@d.example", 3, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "count@d.example", 3, 0, 0);
  v = SASL(e, "count@d.example", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "count@d.example", 3, 3,
                 3600);
}

Test(config_keywords, whitelist_forms) {
  LOAD(e, "subscription s\ndomain d.example subscription=s\n"
          "whitelist 192.0.2.7\n"
          "whitelist 198.51.100.0/24\n"
          "whitelist 2001:db8::25\n"
          "whitelist 2001:db8:1::/48\n"
          "whitelist ::ffff:203.0.113.0/120\n");
  static const struct {
    const char *client;
    int exempt;
  } cases[] = {
      {"192.0.2.7", 1},    {"192.0.2.8", 0},          {"198.51.100.255", 1},
      {"198.51.101.0", 0}, {"::ffff:192.0.2.7", 1},   {"2001:db8::25", 1},
      {"2001:db8::26", 0}, {"2001:db8:1:ffff::1", 1}, {"2001:db8:2::1", 0},
      {"203.0.113.9", 1},  {"::ffff:203.0.113.9", 1}};
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    obspam_message m =
        tu_msg(0, "x@d.example", NULL, cases[i].client, 1, -1, NULL, NULL, T0);
    obspam_verdict v = DECIDE(e, &m);

    cr_assert_eq(v.action, cases[i].exempt ? OBSPAM_EXEMPT : OBSPAM_ACCEPT,
                 "client %s: action %d", cases[i].client, v.action);
  }
  /* A reload replaces the whitelist: entries not in the text are gone. */
  LOAD(e, "subscription s\ndomain d.example subscription=s\n");
  obspam_message m =
      tu_msg(0, "x@d.example", NULL, "192.0.2.7", 1, -1, NULL, NULL, T0);
  obspam_verdict v = DECIDE(e, &m);
  cr_assert_eq(v.action, OBSPAM_ACCEPT);
}

/* Comments, blanks, tabs, CRLF, a missing final newline, a byte order
   mark, names in any case, '#' inside a word. */
Test(config_keywords, lexical_rules) {
  LOAD(e, "\xef\xbb\xbf# a panel wrote this\r\n"
          "\r\n"
          "   \t  \n"
          "  count\tmessages   # a comment after the value\r\n"
          "plan Gold mailbox=4 #domain=1 is commented out\n"
          "\tsubscription  ACME plan=gold\n"
          "#domain commented.example subscription=acme\n"
          "domain Example.COM subscription=acme\r\n"
          "mailbox a#b@example.com limit=2\n"
          "mailbox Info@EXAMPLE.com");
  EXPECT_OPT(e, OBSPAM_OPT_COUNT_UNIT, 1);
  EXPECT_EFFS(e, "domain example.com unlimited\n"
                 "mailbox info@example.com 4\n"
                 "mailbox a#b@example.com 2\n");
  int64_t v;
  RC(obspam_effective_limit(e, OBSPAM_DOMAIN, "commented.example", &v),
     OBSPAM_ENOTFOUND);
}

Test(config_keywords, empty_text_resets_everything) {
  LOAD(e, BASE);
  LOAD(e, "");
  int64_t v;
  RC(obspam_effective_limit(e, OBSPAM_MAILBOX, "m@keep.example", &v),
     OBSPAM_ENOTFOUND);
  EXPECT_OPT(e, OBSPAM_OPT_COUNT_UNIT, 0);
  /* The server defaults are unlimited again and the uid is free. */
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "other", NULL));
  OK(obspam_set_uid(e, "other", 4242));
  EXPECT_EFF(e, OBSPAM_SUBSCRIPTION, "other", OBSPAM_UNLIMITED);
}

/* Objects of different kinds may share a name. */
Test(config_keywords, kinds_are_separate_namespaces) {
  LOAD(e, "plan x mailbox=1\nsubscription x plan=x subscription=2\n"
          "domain x subscription=x domain=3\nmailbox x@x\n");
  EXPECT_EFFS(e, "subscription x 2\n"
                 "domain x 3\n"
                 "mailbox x@x 1\n");
}

/* The tree a file built can be changed through the API afterwards. */
Test(config_keywords, api_works_on_a_loaded_tree) {
  LOAD(e, BASE);
  OK(obspam_add(e, OBSPAM_MAILBOX, "n@keep.example", NULL));
  EXPECT_EFF(e, OBSPAM_MAILBOX, "n@keep.example", 7);
  RC(obspam_add(e, OBSPAM_MAILBOX, "m@keep.example", NULL), OBSPAM_EEXIST);
  OK(obspam_remove(e, OBSPAM_PLAN, "base"));
  int64_t v;
  RC(obspam_effective_limit(e, OBSPAM_DOMAIN, "keep.example", &v),
     OBSPAM_ENOTFOUND);
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "new", NULL));
  OK(obspam_set_uid(e, "new", 4242));
}

/* ---- errors -------------------------------------------------------------- */

Test(config_errors, lines_and_keywords) {
  ERRS("enabled yes\n\n# comment\nfoo bar\n=> 4: unknown keyword 'foo'",
       "Enabled yes\n=> 1: unknown keyword 'Enabled'",
       "enabled=yes\n=> 1: unknown keyword 'enabled=yes'",
       "whitelist\t192.0.2.0/24\n  plans p\n=> 2: unknown keyword 'plans'",
       /* Line numbers count every line, with CRLF endings too. */
       "enabled yes\r\n\r\n# x\r\nplan a\r\nplan a\r\n=> 5: duplicate plan 'a'",
       /* The first error wins. */
       "plan a\nplan b mailbox=x\nfoo\n=> 2: bad value 'x' for 'mailbox': "
       "expected a count, unlimited or inherit",
       /* An error on the last line, without a newline, discards the rest. */
       "enabled no\ncount messages\nplan a\nplan A=> 4: duplicate plan 'a'");
}

Test(config_errors, line_length) {
  char *text = malloc(2 * 4100 + 64);
  cr_assert_not_null(text);

  /* 4096 bytes, not counting the line ending, is the longest line. */
  strcpy(text, "enabled yes\n# ");
  memset(text + strlen(text), 'x', 4094);
  strcpy(text + 12 + 4096, "\r\n");
  cr_assert_eq(strlen(text), 12 + 4096 + 2);
  LOAD(e, text);
  text[12 + 4096] = '\0';
  LOAD(e, text);

  strcpy(text, "enabled yes\n# ");
  memset(text + strlen(text), 'x', 4095);
  strcpy(text + 12 + 4097, "\nplan a\n");
  ERR(text, 2, "line is longer than 4096 bytes");
  text[12 + 4097] = '\0';
  ERR(text, 2, "line is longer than 4096 bytes");
  /* A long line of words, not only of comment. */
  strcpy(text, "plan p");
  for (size_t i = strlen(text); i < 4100; i += 2)
    memcpy(text + i, " x", 3);
  ERR(text, 1, "line is longer than 4096 bytes");
  free(text);
}

Test(config_errors, option_values) {
  ERRS(
      "enabled\n=> 1: missing value for 'enabled'",
      "enabled # yes\n=> 1: missing value for 'enabled'",
      "enabled yes no\n=> 1: too many values for 'enabled'",
      "enabled maybe\n=> 1: bad value 'maybe' for 'enabled': expected yes or "
      "no",
      "enabled YES\n=> 1: bad value 'YES' for 'enabled': expected yes or no",
      "enabled 1\n=> 1: bad value '1' for 'enabled': expected yes or no",
      "count bytes\n=> 1: bad value 'bytes' for 'count': expected recipients "
      "or messages",
      "action bounce\n=> 1: bad value 'bounce' for 'action': expected defer or "
      "reject",
      "count-unauthenticated on\n=> 1: bad value 'on' for "
      "'count-unauthenticated': expected local, yes or no",
      "count-unauthenticated 2\n=> 1: bad value '2' for "
      "'count-unauthenticated': expected local, yes or no",
      "implicit-mailboxes 100000001\n=> 1: bad value '100000001' for "
      "'implicit-mailboxes': out of range 0..100000000",
      "implicit-mailboxes many\n=> 1: bad value 'many' for "
      "'implicit-mailboxes': expected a number of mailboxes",
      "count-forward-local 0\n=> 1: bad value '0' for 'count-forward-local': "
      "expected yes or no",
      "count-forward-remote true\n=> 1: bad value 'true' for "
      "'count-forward-remote': expected yes or no",
      "count-mailing-lists off\n=> 1: bad value 'off' for "
      "'count-mailing-lists': expected yes or no",
      "notify-immediate y\n=> 1: bad value 'y' for 'notify-immediate': "
      "expected yes or no",
      "retention many\n=> 1: bad value 'many' for 'retention': expected a "
      "number of hours",
      "retention +5\n=> 1: bad value '+5' for 'retention': expected a number "
      "of hours",
      "retention 5h\n=> 1: bad value '5h' for 'retention': expected a number "
      "of hours",
      "retention -1\n=> 1: bad value '-1' for 'retention': negative number",
      "retention 0\n=> 1: bad value '0' for 'retention': out of range 1..87600",
      "retention 87601\n=> 1: bad value '87601' for 'retention': out of range "
      "1..87600",
      "retention 99999999999999999999\n=> 1: bad value '99999999999999999999' "
      "for 'retention': number is too large",
      "notify-period 1h\n=> 1: bad value '1h' for 'notify-period': expected a "
      "number of seconds",
      "notify-period 59\n=> 1: bad value '59' for 'notify-period': out of "
      "range 60..2678400",
      "notify-period 2678401\n=> 1: bad value '2678401' for 'notify-period': "
      "out of range 60..2678400",
      "notify-period 3600 3600\n=> 1: too many values for 'notify-period'");
}

Test(config_errors, repeated_option_or_default) {
  ERRS("enabled yes\naction reject\nenabled yes\n=> 3: 'enabled' appears "
       "already on line 1",
       "count messages\n\n\n\ncount messages\n=> 5: 'count' appears already on "
       "line 1",
       "retention 5\nretention 6\n=> 2: 'retention' appears already on line 1",
       "plan p\ndefault mailbox=1\ndefault domain=2\n=> 3: 'default' appears "
       "already on line 2",
       "default\ndefault\n=> 2: 'default' appears already on line 1");
}

Test(config_errors, default_values) {
  ERRS("default mailbox=inherit\n=> 1: bad value 'inherit' for 'mailbox': the "
       "server defaults cannot inherit",
       "default subscription=inherit\n=> 1: bad value 'inherit' for "
       "'subscription': the server defaults cannot inherit",
       "default scripts=inherit\n=> 1: bad value 'inherit' for 'scripts': "
       "expected yes or no",
       "default domain=lots\n=> 1: bad value 'lots' for 'domain': expected a "
       "count or unlimited",
       "default domain=-1\n=> 1: bad value '-1' for 'domain': negative count",
       "default limit=5\n=> 1: unknown key 'limit' for the defaults",
       "default uid=5\n=> 1: unknown key 'uid' for the defaults",
       "default plan=p\n=> 1: unknown key 'plan' for the defaults",
       "default contact=a@b\n=> 1: unknown key 'contact' for the defaults");
}

Test(config_errors, limit_values) {
  ERRS("plan p mailbox=lots\n=> 1: bad value 'lots' for 'mailbox': expected a "
       "count, unlimited or inherit",
       "plan p domain=-5\n=> 1: bad value '-5' for 'domain': negative count",
       "plan p subscription=-0\n=> 1: bad value '-0' for 'subscription': "
       "negative count",
       "plan p subscription=+5\n=> 1: bad value '+5' for 'subscription': "
       "expected a count, unlimited or inherit",
       "plan p mailbox=9223372036854775808\n=> 1: bad value "
       "'9223372036854775808' for 'mailbox': number is too large",
       "plan p mailbox=Unlimited\n=> 1: bad value 'Unlimited' for 'mailbox': "
       "expected a count, unlimited or inherit",
       "plan p mailbox=1.5\n=> 1: bad value '1.5' for 'mailbox': expected a "
       "count, unlimited or inherit",
       "plan p mailbox=0x10\n=> 1: bad value '0x10' for 'mailbox': expected a "
       "count, unlimited or inherit",
       "plan p mailbox=\n=> 1: missing value for 'mailbox'",
       "plan p mailbox==5\n=> 1: bad value '=5' for 'mailbox': expected a "
       "count, unlimited or inherit",
       "plan p scripts=maybe\n=> 1: bad value 'maybe' for 'scripts': expected "
       "yes, no or inherit",
       "subscription s scripts=\n=> 1: missing value for 'scripts'",
       "subscription s\ndomain d subscription=s mailbox=-2\n=> 2: bad value "
       "'-2' for 'mailbox': negative count",
       "subscription s\ndomain d subscription=s\nmailbox m@d limit=-1\n=> 3: "
       "bad value '-1' for 'limit': negative count",
       "subscription s\ndomain d subscription=s\nmailbox m@d limit=none\n=> 3: "
       "bad value 'none' for 'limit': expected a count, unlimited or inherit");
}

Test(config_errors, keys) {
  ERRS(
      "plan p mailbox\n=> 1: expected KEY=VALUE, found 'mailbox'",
      "plan p =5\n=> 1: expected KEY=VALUE, found '=5'",
      "plan p uid=5\n=> 1: unknown key 'uid' for a plan",
      "plan p plan=q\n=> 1: unknown key 'plan' for a plan",
      "plan p contact=a@b\n=> 1: unknown key 'contact' for a plan",
      "plan p Mailbox=5\n=> 1: unknown key 'Mailbox' for a plan",
      "subscription s limit=5\n=> 1: unknown key 'limit' for a subscription",
      "subscription s\ndomain d subscription=s uid=3\n=> 2: unknown key 'uid' "
      "for a domain",
      "subscription s\ndomain d subscription=s scripts=no\n=> 2: unknown key "
      "'scripts' for a domain",
      "subscription s\ndomain d subscription=s\nmailbox m@d mailbox=2\n=> 3: "
      "unknown key 'mailbox' for a mailbox",
      "plan p mailbox=1 domain=2 mailbox=1\n=> 1: key 'mailbox' is given twice",
      "subscription s uid=1 uid=1\n=> 1: key 'uid' is given twice",
      "subscription s\nsubscription t\ndomain d subscription=s "
      "subscription=t\n=> 3: key 'subscription' is given twice",
      "subscription s\ndomain d subscription=s\nmailbox m@d limit=1 "
      "limit=1\n=> 3: key 'limit' is given twice");
}

Test(config_errors, names) {
  ERR("plan\n", 1, "missing name after 'plan'");
  ERR("plan # Gold\n", 1, "missing name after 'plan'");
  ERR("subscription\n", 1, "missing name after 'subscription'");
  ERR("domain\n", 1, "missing name after 'domain'");
  ERR("mailbox\n", 1, "missing name after 'mailbox'");
  ERR("plan a@b\n", 1, "bad plan name 'a@b': name holds an '@'");
  ERR("subscription a@b\n", 1,
      "bad subscription name 'a@b': name holds an '@'");
  ERR("subscription s\ndomain a@b subscription=s\n", 2,
      "bad domain name 'a@b': name holds an '@'");
  ERR("mailbox nobody\n", 1,
      "bad mailbox name 'nobody': a mailbox needs one '@'");
  ERR("mailbox a@b@c\n", 1,
      "bad mailbox name 'a@b@c': an address holds more than one '@'");
  ERR("mailbox @d.example\n", 1,
      "bad mailbox name '@d.example': an address needs a local part and a "
      "domain");
  ERR("mailbox m@\n", 1,
      "bad mailbox name 'm@': an address needs a local part and a domain");
  /* Messages show control characters as '?': one printable line. */
  ERR("plan a\x01z\n", 1,
      "bad plan name 'a?z': name holds a blank or a control character");
  ERR("plan a\rz\n", 1,
      "bad plan name 'a?z': name holds a blank or a control character");
  ERR("subscription s plan=a@b\n", 1, "bad plan name 'a@b': name holds an '@'");
}

Test(config_errors, name_length) {
  char text[1600], name[400];

  /* 320 bytes is the longest name. */
  memset(name, 'a', 320);
  name[320] = '\0';
  snprintf(text, sizeof(text), "plan %s mailbox=3\n", name);
  LOAD(e, text);
  snprintf(text, sizeof(text),
           "plan %s mailbox=3\nsubscription s plan=%s\n"
           "domain d.example subscription=s\nmailbox %.*s@d.example\n",
           name, name, 320 - 10, name);
  LOAD(e, text);
  char mailbox[400];
  snprintf(mailbox, sizeof(mailbox), "%.*s@d.example", 320 - 10, name);
  EXPECT_EFF(e, OBSPAM_MAILBOX, mailbox, 3);

  /* One byte more is an error; the message quotes the first 64 bytes. */
  char want[200];
  memset(name, 'a', 321);
  name[321] = '\0';
  snprintf(want, sizeof(want),
           "bad %%s name '%.64s': name is longer than 320 bytes", name);
  snprintf(text, sizeof(text), "plan %s\n", name);
  char msg[200];
  snprintf(msg, sizeof(msg), want, "plan");
  ERR(text, 1, msg);
  snprintf(text, sizeof(text),
           "subscription s\ndomain d.example subscription=s\n"
           "mailbox %.*s@d.example\n",
           320 - 9, name);
  snprintf(msg, sizeof(msg), want, "mailbox");
  ERR(text, 3, msg);
}

Test(config_errors, duplicates) {
  ERRS(
      "plan a\nplan A\n=> 2: duplicate plan 'a'",
      "subscription Acme\nsubscription acme\n=> 2: duplicate subscription "
      "'acme'",
      "subscription s\nsubscription t\ndomain d.example subscription=s\ndomain "
      "D.EXAMPLE subscription=t\n=> 4: duplicate domain 'd.example'",
      "subscription s\ndomain d subscription=s\nmailbox m@d\nmailbox M@D "
      "limit=4\n=> 4: duplicate mailbox 'm@d'",
      "whitelist 10.0.0.0/8\nwhitelist 10.0.0.0/8\n=> 2: duplicate whitelist "
      "entry '10.0.0.0/8'",
      "whitelist ::1\nwhitelist 0::1/128\n=> 2: duplicate whitelist entry "
      "'0::1/128'");
}

Test(config_errors, references) {
  ERRS("plan Basic\nsubscription acme plan=Basik\n=> 2: unknown plan 'Basik'",
       "domain d.example subscription=nobody\n=> 1: unknown subscription "
       "'nobody'",
       "subscription s\ndomain d.example\n=> 2: domain 'd.example' needs "
       "subscription=",
       "subscription s\ndomain D.example mailbox=3\n=> 2: domain 'd.example' "
       "needs subscription=",
       "subscription s\ndomain d.example subscription=\n=> 2: missing value "
       "for 'subscription'",
       "subscription s\ndomain d.example subscription=s\nmailbox "
       "m@nowhere.example\n=> 3: unknown domain 'nowhere.example'",
       /* A plan name is not a subscription, a subscription not a domain. */
       "plan p\ndomain d subscription=p\n=> 2: unknown subscription 'p'",
       "subscription d\nmailbox m@d\n=> 2: unknown domain 'd'");
}

Test(config_errors, referred_to_before_declared) {
  ERRS("subscription s plan=gold\nplan gold\n=> 1: unknown plan 'gold' "
       "(declared later, on line 2)",
       "domain d subscription=S\n\n# x\n  subscription\ts uid=5\n=> 1: unknown "
       "subscription 'S' (declared later, on line 4)",
       "subscription s\nmailbox a@D.example\r\ndomain d.example "
       "subscription=s\r\n=> 2: unknown domain 'D.example' (declared later, on "
       "line 3)",
       /* A commented-out declaration does not count, nor another kind. */
       "subscription s plan=gold\n# plan gold\nsubscription gold\n=> 1: "
       "unknown plan 'gold'",
       /* Nor a longer name that starts with the same letters. */
       "subscription s plan=gold\nplan golden\n=> 1: unknown plan 'gold'");
}

Test(config_errors, uid_and_contact) {
  ERRS("subscription a uid=7\nsubscription b uid=7\n=> 2: uid 7 belongs to "
       "subscription 'a' already",
       "subscription A uid=0\nsubscription b\nsubscription c uid=00\n=> 3: uid "
       "0 belongs to subscription 'a' already",
       "subscription a uid=-1\n=> 1: bad value '-1' for 'uid': negative uid",
       "subscription a uid=abc\n=> 1: bad value 'abc' for 'uid': expected a "
       "number",
       "subscription a uid=inherit\n=> 1: bad value 'inherit' for 'uid': "
       "expected a number",
       "subscription a uid=99999999999999999999\n=> 1: bad value "
       "'99999999999999999999' for 'uid': number is too large",
       /* A uid is a uid_t of 32 bits; (uid_t)-1 is none. */
       "subscription a uid=4294967295\n=> 1: bad value '4294967295' for "
       "'uid': a uid is at most 4294967294",
       "subscription a uid=4294968296\n=> 1: bad value '4294968296' for "
       "'uid': a uid is at most 4294967294",
       "subscription a contact=nobody\n=> 1: bad value 'nobody' for 'contact': "
       "a mailbox needs one '@'",
       "subscription a contact=a@b@c\n=> 1: bad value 'a@b@c' for 'contact': "
       "an address holds more than one '@'",
       "subscription a contact=@b\n=> 1: bad value '@b' for 'contact': an "
       "address needs a local part and a domain",
       "subscription a contact=\n=> 1: missing value for 'contact'");
}

/* The largest uid, in the configuration and through obspam_set_uid. */
Test(config_keywords, uid_range) {
  LOAD(e, "subscription a uid=4294967294\nsubscription b\n");
  OK(obspam_set_uid(e, "b", 4294967293LL));
  RC(obspam_set_uid(e, "b", 4294967295LL), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "set_uid: 4294967295 is not a uid (0 to 4294967294, or -1 "
                   "for none)");
  RC(obspam_set_uid(e, "b", 4294968296LL), OBSPAM_EINVAL);
  RC(obspam_set_uid(e, "b", -2), OBSPAM_EINVAL);
  /* Nothing changed: b keeps its uid, which a taken uid is not. */
  RC(obspam_set_uid(e, "a", 4294967293LL), OBSPAM_EEXIST);
  OK(obspam_set_uid(e, "b", -1));
  OK(obspam_set_uid(e, "a", 4294967293LL));
}

/* A contact is one address: sendmail -t reads the To: header of a notice
   as a list, so "ops@example.com,root" would mail local root too. */
Test(config_errors, contact_is_one_address) {
  ERRS("subscription a contact=ops@example.com,root\n=> 1: bad value "
       "'ops@example.com,root' for 'contact': a contact is one address, "
       "without , ; : < > ( ) [ ] \\ or \"",
       "subscription a contact=ops@example.com;root\n=> 1: bad "
       "value 'ops@example.com;root' for 'contact': a contact is "
       "one address, without , ; : < > ( ) [ ] \\ or \"",
       "subscription a\nsubscription b contact=<ops@example.com>\n=> 2: bad "
       "value '<ops@example.com>' for 'contact': a contact is one address, "
       "without , ; : < > ( ) [ ] \\ or \"",
       "subscription a contact=\"o,p\"@example.com\n=> 1: bad value "
       "'\"o,p\"@example.com' for 'contact': a contact is one address, "
       "without , ; : < > ( ) [ ] \\ or \"",
       "subscription a contact=root:ops@example.com\n=> 1: bad value "
       "'root:ops@example.com' for 'contact': a contact is one address, "
       "without , ; : < > ( ) [ ] \\ or \"",
       "subscription a contact=ops@[127.0.0.1]\n=> 1: bad value "
       "'ops@[127.0.0.1]' for 'contact': a contact is one address, without "
       ", ; : < > ( ) [ ] \\ or \"",
       "subscription a contact=ops@example.com/x\n=> 1: bad value "
       "'ops@example.com/x' for 'contact': a domain holds letters, digits, "
       "'-' and '.' only",
       "subscription a contact=j\xf6rg@example.com\n=> 1: bad value "
       "'j\xf6rg@example.com' for 'contact': an address must be UTF-8");
}

/* What a contact may hold: the characters of a local part (RFC 5322's
   atext), a domain's, and UTF-8 in both (RFC 6531). */
Test(config_keywords, contact_forms) {
  static const char *const good[] = {
      "a@b",
      "o.p+tag@mail-1.example.com",
      "!#$%&'*+-/=?^_`{|}~@example.com",
      "j\xc3\xb6rg@b\xc3\xbc"
      "cher.example",
      "\xe2\x82\xac@\xf0\x9f\x93\xa7.example",
  };
  char text[400];
  size_t i;

  for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    obspam_engine *x = NULL;

    OK(obspam_engine_new(&x));
    snprintf(text, sizeof(text), "subscription s contact=%s\n", good[i]);
    cr_assert_eq(obspam_load_config_string(x, text), OBSPAM_OK, "%s: %s",
                 good[i], obspam_engine_errmsg(x));
    cr_assert_eq(obspam_set_contact(x, "s", good[i]), OBSPAM_OK, "%s: %s",
                 good[i], obspam_engine_errmsg(x));
    obspam_engine_free(x);
  }
}

/* obspam_set_contact takes what contact= takes, and says why not. */
Test(config_keywords, set_contact_is_one_address) {
  static const char *const bad[][2] = {
      {"ops@example.com,root",
       "set_contact: address 'ops@example.com,root': a contact is one "
       "address, without , ; : < > ( ) [ ] \\ or \""},
      {"Ops <ops@example.com>",
       "set_contact: address 'Ops <ops@example.com>': name holds a blank or "
       "a control character"},
      {"<ops@example.com>",
       "set_contact: address '<ops@example.com>': a contact is one address, "
       "without , ; : < > ( ) [ ] \\ or \""},
      {"ops@exa_mple.com",
       "set_contact: address 'ops@exa_mple.com': a domain holds letters, "
       "digits, '-' and '.' only"},
      {"ops\xc3@example.com",
       "set_contact: address 'ops\xc3@example.com': an address must be "
       "UTF-8"},
      {"ops\xed\xa0\x80@example.com",
       "set_contact: address 'ops\xed\xa0\x80@example.com': an address must "
       "be UTF-8"},
  };
  size_t i;

  LOAD(e, "subscription s contact=ops@s.example\n"
          "domain ds.example subscription=s\nmailbox m@ds.example limit=0\n");
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    cr_assert_eq(obspam_set_contact(e, "s", bad[i][0]), OBSPAM_EINVAL, "%s",
                 bad[i][0]);
    cr_assert_str_eq(obspam_engine_errmsg(e), bad[i][1]);
  }
  /* Nothing changed: the notice goes to the configuration's contact. */
  OK(obspam_set_notify(e, on_notice, NULL));
  obspam_verdict v = SASL(e, "m@ds.example", 1, T0 + 10);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "m@ds.example", 0, 0);
  OK(obspam_notify_flush(e, T0 + 3600));
  cr_assert_eq(notices_for_mailbox, 1);
  cr_assert_str_eq(notice_contact, "ops@s.example");
}

/* `local-network` lines: the local networks, replaced at each load; none
   means 127.0.0.0/8 and ::1. */
static int counted_from(const char *client, int line) {
  obspam_message m =
      tu_msg(0, NULL, "x@l.example", client, 1, -1, NULL, NULL, T0);
  obspam_verdict ver = tu_decide_msg(e, &m, line);
  return ver.action == OBSPAM_ACCEPT;
}

Test(config_keywords, local_networks) {
  LOAD(e, "subscription s\ndomain l.example subscription=s\n"
          "local-network 10.0.5.0/24\nlocal-network 2001:db8:5::/48\n"
          "local-network 192.0.2.9\n");
  cr_assert(counted_from("10.0.5.7", __LINE__));
  cr_assert(counted_from("::ffff:10.0.5.7", __LINE__));
  cr_assert(counted_from("2001:db8:5::1", __LINE__));
  cr_assert(counted_from("192.0.2.9", __LINE__));
  cr_assert(!counted_from("192.0.2.10", __LINE__));
  cr_assert(!counted_from("127.0.0.1", __LINE__));
  cr_assert(counted_from(NULL, __LINE__));
  /* A file with an error changes nothing. */
  RC(obspam_load_config_string(e, "local-network 10.0.6.0/24\n"
                                  "local-network 10.0.5.0/33\n"),
     OBSPAM_ESYNTAX);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "<string>:2: bad local-network entry '10.0.5.0/33': IPv4 "
                   "prefix length is over 32");
  cr_assert(!counted_from("10.0.6.1", __LINE__));
  cr_assert(counted_from("10.0.5.7", __LINE__));
  /* Without the lines: the defaults again. */
  LOAD(e, "subscription s\ndomain l.example subscription=s\n");
  cr_assert(!counted_from("10.0.5.7", __LINE__));
  cr_assert(counted_from("127.0.0.1", __LINE__));
  cr_assert(counted_from("::1", __LINE__));
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "x@l.example", T0, 8, 0);
}

Test(config_errors, local_network_entries) {
  ERRS("local-network\n=> 1: missing address after 'local-network'",
       "local-network 10.0.0.0/8 10.1.0.0/16\n=> 1: too many values for "
       "'local-network'",
       "local-network example.com\n=> 1: bad local-network entry "
       "'example.com': not an IPv4 or IPv6 address",
       "local-network 10.0.0.1/24\n=> 1: bad local-network entry "
       "'10.0.0.1/24': address has bits set beyond the prefix length",
       "local-network ::1\nlocal-network 0::1/128\n=> 2: duplicate "
       "local-network entry '0::1/128'");
  /* The same network may be whitelisted and local. */
  LOAD(e, "whitelist 10.0.0.0/8\nlocal-network 10.0.0.0/8\n");
}

Test(config_errors, whitelist_entries) {
  ERRS(
      "whitelist\n=> 1: missing address after 'whitelist'",
      "whitelist 10.0.0.0/8 10.1.0.0/16\n=> 1: too many values for 'whitelist'",
      "whitelist 10.0.0.256\n=> 1: bad whitelist entry '10.0.0.256': not an "
      "IPv4 or IPv6 address",
      "whitelist example.com\n=> 1: bad whitelist entry 'example.com': not an "
      "IPv4 or IPv6 address",
      "whitelist 10.0.0.0/33\n=> 1: bad whitelist entry '10.0.0.0/33': IPv4 "
      "prefix length is over 32",
      "whitelist 10.0.0.1/24\n=> 1: bad whitelist entry '10.0.0.1/24': address "
      "has bits set beyond the prefix length",
      "whitelist 10.0.0.0/024\n=> 1: bad whitelist entry '10.0.0.0/024': "
      "prefix length is not a number",
      "whitelist 10.0.0.0/\n=> 1: bad whitelist entry '10.0.0.0/': prefix "
      "length is not a number",
      "whitelist 2001:db8::/129\n=> 1: bad whitelist entry '2001:db8::/129': "
      "IPv6 prefix length is over 128",
      "whitelist 2001:db8::1/32\n=> 1: bad whitelist entry '2001:db8::1/32': "
      "address has bits set beyond the prefix length",
      "whitelist 2001:db8:::1\n=> 1: bad whitelist entry '2001:db8:::1': not "
      "an IPv4 or IPv6 address");
}

Test(config_errors, null_arguments) {
  LOAD(e, BASE);
  RC(obspam_load_config_string(e, NULL), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e), "load_config_string: text is NULL");
  RC(obspam_load_config(e, NULL), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e), "load_config: path is NULL");
  RC(obspam_load_config_string(NULL, "enabled yes\n"), OBSPAM_EINVAL);
  RC(obspam_load_config(NULL, "/nonexistent"), OBSPAM_EINVAL);
  expect_base(__LINE__);
}

/* ---- files --------------------------------------------------------------- */

/* SPEC.md's example message, word for word. */
Test(config_files, spec_error_message) {
  static const char text[] =
      "# generated by the panel\n"
      "enabled yes\n"
      "count recipients\n"
      "action defer\n"
      "\n"
      "default mailbox=100 domain=1000 subscription=5000\n"
      "plan Basic mailbox=50 domain=500 subscription=1000\n"
      "plan Premium mailbox=500\n"
      "\n"
      "subscription acme plan=Basic uid=10001\n"
      "subscription zeta plan=Premium uid=10002\n"
      "subscription beta plan=Basik uid=10003\n"
      "domain beta.example subscription=beta\n";
  expect_file_error(text, "obspam.conf:12: unknown plan 'Basik'", __LINE__);
}

Test(config_files, load_from_file) {
  char path[300];

  snprintf(path, sizeof(path), "%s/a.conf", make_tmpdir());
  write_file(path, BASE, strlen(BASE));
  OK(obspam_load_config(e, path));
  expect_base(__LINE__);
  /* The file's name is in its messages. */
  write_file(path, "plan p\r\nplan q mailbox=-3\r\n", 27);
  RC(obspam_load_config(e, path), OBSPAM_ESYNTAX);
  char want[400];
  snprintf(want, sizeof(want),
           "%s:2: bad value '-3' for 'mailbox': "
           "negative count",
           path);
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
  expect_base(__LINE__);
  /* An empty file is a valid configuration that limits nothing. */
  write_file(path, "", 0);
  OK(obspam_load_config(e, path));
  int64_t v;
  RC(obspam_effective_limit(e, OBSPAM_MAILBOX, "m@keep.example", &v),
     OBSPAM_ENOTFOUND);
  unlink(path);
  rmdir(tmpdir);
}

Test(config_files, nul_byte) {
  static const char text[] = "enabled yes\nplan a\0b\nplan c\n";
  char path[300], want[400];

  snprintf(path, sizeof(path), "%s/nul.conf", make_tmpdir());
  write_file(path, text, sizeof(text) - 1);
  LOAD(e, BASE);
  RC(obspam_load_config(e, path), OBSPAM_ESYNTAX);
  snprintf(want, sizeof(want), "%s:2: line holds a NUL byte", path);
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
  expect_base(__LINE__);
  /* In a comment too, and on a last line without a newline. */
  write_file(path, "# \0\n", 4);
  RC(obspam_load_config(e, path), OBSPAM_ESYNTAX);
  snprintf(want, sizeof(want), "%s:1: line holds a NUL byte", path);
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
  write_file(path, "plan a\nplan b\0", 14);
  RC(obspam_load_config(e, path), OBSPAM_ESYNTAX);
  snprintf(want, sizeof(want), "%s:2: line holds a NUL byte", path);
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
  expect_base(__LINE__);
  unlink(path);
  rmdir(tmpdir);
}

Test(config_files, missing_file_and_directory) {
  char path[300], want[400];

  make_tmpdir();
  LOAD(e, BASE);
  snprintf(path, sizeof(path), "%s/missing.conf", tmpdir);
  RC(obspam_load_config(e, path), OBSPAM_EIO);
  snprintf(want, sizeof(want), "%s: cannot open: No such file or directory",
           path);
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
  expect_base(__LINE__);
  RC(obspam_load_config(e, tmpdir), OBSPAM_EIO);
  snprintf(want, sizeof(want), "%s: cannot read: Is a directory", tmpdir);
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
  expect_base(__LINE__);
  rmdir(tmpdir);
}

/* ---- a failed load changes nothing ----------------------------------------
   Two engines load the same configuration and decide the same stream; one
   of them suffers every kind of failed load half-way through. Every verdict
   field, every statistic and every option must stay equal. */

static const char *const C1 =
    "count recipients\naction defer\ncount-forward-local yes\n"
    "default mailbox=6 domain=10 subscription=14 scripts=yes\n"
    "plan small mailbox=3 scripts=no\n"
    "subscription s1 plan=small uid=2001 contact=a@s1.example\n"
    "subscription s2 uid=2002 subscription=8\n"
    "domain one.example subscription=s1\n"
    "domain two.example subscription=s2 mailbox=4\n"
    "mailbox a@one.example limit=5\n"
    "mailbox b@one.example\n"
    "mailbox c@two.example\n"
    "whitelist 192.0.2.0/24\n";

/* Everything different from C1, with a mistake on its last line. */
static const char *const C2_BAD =
    "count messages\naction reject\nenabled yes\ncount-forward-local no\n"
    "default mailbox=1 domain=1 subscription=1 scripts=no\n"
    "subscription s1 uid=2002\n"
    "subscription s2 uid=2001\n"
    "domain one.example subscription=s2\n"
    "domain two.example subscription=s1\n"
    "mailbox a@one.example limit=unlimited\n"
    "whitelist 198.51.100.0/24\n"
    "mailbox z@three.example\n";

static const char *const BAD_TEXTS[] = {
    "enabled maybe\n",
    "subscription s1\nsubscription s1\n",
    "subscription acme plan=Basik\n",
    "retention -5\n",
    "whitelist 10.0.0.1/8\n",
    "plan a\nfoo\n",
    "domain x.example subscription=s9\nsubscription s9\n",
};

/* The fixed stream: a mix of logins, unauthenticated senders, scripts,
   forwards and whitelisted clients, over a few minutes. */
static obspam_message stream_msg(int i) {
  static const char *const who[] = {"a@one.example", "b@one.example",
                                    "c@two.example", "x@two.example",
                                    "nobody@else.example"};
  int64_t t = T0 + i * 13;
  uint32_t rcpt = (uint32_t)(1 + i % 3);

  switch (i % 6) {
  case 0:
  case 1:
    return tu_msg(0, who[i % 5], who[i % 5], "203.0.113.5", rcpt, -1, NULL,
                  NULL, t);
  case 2:
    return tu_msg(0, NULL, who[(i / 6) % 5], "203.0.113.6", rcpt, -1, NULL,
                  NULL, t);
  case 3:
    return tu_msg(OBSPAM_MSG_SCRIPT, NULL, NULL, NULL, rcpt,
                  i % 4 == 0 ? 2001 : 2002,
                  i % 4 == 0 ? "one.example" : "two.example", NULL, t);
  case 4:
    return tu_msg(OBSPAM_MSG_FORWARD_LOCAL, NULL, who[i % 5], NULL, rcpt, -1,
                  NULL, NULL, t);
  default:
    return tu_msg(0, who[i % 5], NULL, "192.0.2.44", rcpt, -1, NULL, NULL, t);
  }
}

static void compare_stats(obspam_engine *a, obspam_engine *b, int kind,
                          const char *name) {
  obspam_stats sa = STATS(a, kind, name, T0 + 3600);

  /* b's stats are a's. */
  EXPECT_STATS(b, kind, name, T0 + 3600, sa.sending, sa.limit, sa.count,
               sa.refused, sa.refused_total, sa.last_refused);
}

static void decide_both(obspam_engine *a, obspam_engine *b, int from, int to,
                        int *refusals) {
  char ba[512], bb[512];

  for (int i = from; i < to; i++) {
    obspam_message m = stream_msg(i);
    obspam_verdict va = OBSPAM_VERDICT_INIT, vb = OBSPAM_VERDICT_INIT;

    RC(obspam_decide(a, &m, &va), OBSPAM_OK);
    RC(obspam_decide(b, &m, &vb), OBSPAM_OK);
    tu_fmt_verdict(ba, sizeof(ba), &va);
    tu_fmt_verdict(bb, sizeof(bb), &vb);
    cr_assert_str_eq(ba, bb, "message %d: %s vs %s", i, ba, bb);
    cr_assert_eq(va.action, vb.action);
    cr_assert_eq(va.kind, vb.kind);
    cr_assert_eq(va.limit, vb.limit);
    cr_assert_eq(va.count, vb.count);
    cr_assert_eq(va.retry_after, vb.retry_after);
    cr_assert_str_eq(va.object, vb.object);
    *refusals += va.action == OBSPAM_REFUSE;
  }
}

Test(config_atomic, failed_load_leaves_behaviour_identical) {
  obspam_engine *b = tu_new();
  char path[300];
  int refusals = 0, i, opt_i;

  LOAD(e, C1);
  LOAD(b, C1);
  decide_both(e, b, 0, 60, &refusals);

  /* Every kind of failure, on b only. */
  RC(obspam_load_config_string(b, C2_BAD), OBSPAM_ESYNTAX);
  cr_assert_str_eq(obspam_engine_errmsg(b),
                   "<string>:12: unknown domain 'three.example'");
  for (i = 0; i < (int)(sizeof(BAD_TEXTS) / sizeof(BAD_TEXTS[0])); i++)
    RC(obspam_load_config_string(b, BAD_TEXTS[i]), OBSPAM_ESYNTAX);
  snprintf(path, sizeof(path), "%s/nul.conf", make_tmpdir());
  write_file(path, "enabled no\n\0", 12);
  RC(obspam_load_config(b, path), OBSPAM_ESYNTAX);
  unlink(path);
  RC(obspam_load_config(b, path), OBSPAM_EIO);
  rmdir(tmpdir);

  decide_both(e, b, 60, 200, &refusals);
  /* The stream is not vacuous: it hits limits and forbidden scripts. */
  cr_assert_geq(refusals, 20, "only %d refusals", refusals);

  static const tu_object objs[] = {
      {OBSPAM_SUBSCRIPTION, "s1"},       {OBSPAM_SUBSCRIPTION, "s2"},
      {OBSPAM_DOMAIN, "one.example"},    {OBSPAM_DOMAIN, "two.example"},
      {OBSPAM_MAILBOX, "a@one.example"}, {OBSPAM_MAILBOX, "b@one.example"},
      {OBSPAM_MAILBOX, "c@two.example"}};
  for (i = 0; i < (int)(sizeof(objs) / sizeof(objs[0])); i++)
    compare_stats(e, b, objs[i].kind, objs[i].name);
  for (opt_i = OBSPAM_OPT_ENABLED; opt_i <= OBSPAM_OPT_NOTIFY_IMMEDIATE;
       opt_i++)
    cr_assert_eq(opt(e, opt_i), opt(b, opt_i), "option %d", opt_i);
  int64_t v;
  RC(obspam_effective_limit(b, OBSPAM_MAILBOX, "z@three.example", &v),
     OBSPAM_ENOTFOUND);
  obspam_engine_free(b);
}

/* The same failed text, applied to an engine, leaves the counters of
   every object exactly where they were. */
Test(config_atomic, failed_load_keeps_counters) {
  LOAD(e, C1);
  for (int i = 0; i < 5; i++)
    SASL(e, "a@one.example", 1, T0);
  obspam_verdict v = SASL(e, "a@one.example", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "a@one.example", 5, 5, 3600);
  RC(obspam_load_config_string(e, C2_BAD), OBSPAM_ESYNTAX);
  EXPECT_CHAIN_COUNTS(e, "a@one.example", "one.example", "s1", T0, 5, 1);
  v = SASL(e, "a@one.example", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "a@one.example", 5, 5, 3600);
}

/* ---- reload keeps counters ----------------------------------------------- */

/* Unauthenticated mail submitted locally (sendmail, pickup): charged to
   its sender. */
static void local_mail(obspam_engine *eng, const char *sender, uint32_t rcpt,
                       int64_t t, int line) {
  obspam_message m = tu_msg(0, NULL, sender, NULL, rcpt, -1, NULL, NULL, t);
  tu_decide_msg(eng, &m, line);
}
#define LOCAL(eng, sender, rcpt, t)                                            \
  local_mail((eng), (sender), (rcpt), (t), __LINE__)

static const char *const R1 = "subscription s1\nsubscription s2\n"
                              "domain d.example subscription=s1 domain=20\n"
                              "domain e.example subscription=s2\n"
                              "mailbox m@d.example limit=4\n"
                              "mailbox n@d.example\n";

Test(config_reload, same_text_keeps_counters) {
  LOAD(e, R1);
  for (int i = 0; i < 4; i++)
    SASL(e, "m@d.example", 1, T0 + i);
  obspam_verdict v = SASL(e, "m@d.example", 1, T0 + 4);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "m@d.example", 4, 4, 3596);
  LOAD(e, R1);
  EXPECT_STATS(e, OBSPAM_MAILBOX, "m@d.example", T0 + 5, 0, 4, 4, 1, 1, T0 + 4);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "d.example", T0 + 5, 4, 1);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s1", T0 + 5, 4, 1);
  v = SASL(e, "m@d.example", 1, T0 + 5);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "m@d.example", 4, 4, 3595);

  /* A new limit applies to the carried count at once. */
  LOAD(e, "subscription s1\nsubscription s2\n"
          "domain d.example subscription=s1 domain=20\n"
          "domain e.example subscription=s2\n"
          "mailbox m@d.example limit=6\nmailbox n@d.example\n");
  v = SASL(e, "m@d.example", 2, T0 + 6);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "m@d.example", 6, 4, 0);
  v = SASL(e, "m@d.example", 1, T0 + 7);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "m@d.example", 6, 6, 3593);
}

static int64_t hist_sent, hist_refused, hist_hours;

static void on_hour(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  (void)ud;
  cr_assert_eq(hour, T0);
  hist_hours++;
  hist_sent += sent;
  hist_refused += refused;
}

Test(config_reload, history_is_carried) {
  LOAD(e, R1);
  SASL(e, "n@d.example", 3, T0 + 100);
  SASL(e, "n@d.example", 30, T0 + 200);
  LOAD(e, R1);
  OK(obspam_history(e, OBSPAM_MAILBOX, "n@d.example", T0, T0 + 3600, on_hour,
                    NULL));
  cr_assert_eq(hist_hours, 1);
  cr_assert_eq(hist_sent, 3);
  cr_assert_eq(hist_refused, 1);
}

/* A domain moved to another subscription keeps its counters and those of
   its mailboxes; each subscription keeps its own. */
Test(config_reload, moved_domain_keeps_counters) {
  LOAD(e, R1);
  for (int i = 0; i < 3; i++)
    SASL(e, "n@d.example", 2, T0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s1", T0, 6, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s2", T0, 0, 0);

  LOAD(e, "subscription s1\nsubscription s2 subscription=7\n"
          "domain d.example subscription=s2 domain=20\n"
          "domain e.example subscription=s2\n"
          "mailbox m@d.example limit=4\nmailbox n@d.example limit=40\n");
  EXPECT_CHAIN_COUNTS(e, "n@d.example", "d.example", "s1", T0, 6, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s2", T0, 0, 0);

  /* From now on the domain's mail is charged to s2. */
  obspam_verdict v = SASL(e, "n@d.example", 7, T0 + 60);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "n@d.example", 40, 6, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s2", T0 + 60, 7, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s1", T0 + 60, 6, 0);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "d.example", T0 + 60, 13, 0);
  v = SASL(e, "m@d.example", 1, T0 + 60);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "s2", 7, 7, 3600);

  /* And back: the domain's count of 13 meets its limit of 20. */
  LOAD(e, R1);
  v = SASL(e, "n@d.example", 8, T0 + 120);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_DOMAIN, "d.example", 20, 13, 3480);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s1", T0 + 120, 6, 1);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s2", T0 + 120, 7, 1);
}

/* Objects a reload removes lose their counters; added again later, they
   start from zero. Their parents keep theirs. A mailbox whose domain stays
   goes on as an implicit mailbox, with its counters. */
Test(config_reload, removed_objects_come_back_at_zero) {
  LOAD(e, R1);
  SASL(e, "m@d.example", 3, T0);
  SASL(e, "n@d.example", 2, T0);
  LOCAL(e, "x@e.example", 5, T0);

  LOAD(e, "subscription s1\ndomain d.example subscription=s1 domain=20\n"
          "mailbox n@d.example\n");
  obspam_stats st = OBSPAM_STATS_INIT;
  RC(obspam_stats_get(e, OBSPAM_MAILBOX, "x@e.example", T0, &st),
     OBSPAM_ENOTFOUND);
  RC(obspam_stats_get(e, OBSPAM_DOMAIN, "e.example", T0, &st),
     OBSPAM_ENOTFOUND);
  RC(obspam_stats_get(e, OBSPAM_SUBSCRIPTION, "s2", T0, &st), OBSPAM_ENOTFOUND);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "n@d.example", T0, 2, 0);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "d.example", T0, 5, 0);
  /* m@d.example is implicit now: its limit is inherited (unlimited). */
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "m@d.example", T0, 3, 0);
  int64_t count = -1;
  OK(obspam_implicit_status(e, &count, NULL, NULL));
  cr_assert_eq(count, 1);
  obspam_verdict v = SASL(e, "m@d.example", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "m@d.example",
                 OBSPAM_UNLIMITED, 3, 0);

  /* Declared again, it keeps them; it is implicit no more. */
  LOAD(e, R1);
  OK(obspam_implicit_status(e, &count, NULL, NULL));
  cr_assert_eq(count, 0);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "m@d.example", T0, 4, 0);
  RC(obspam_stats_get(e, OBSPAM_MAILBOX, "x@e.example", T0, &st),
     OBSPAM_ENOTFOUND);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "e.example", T0, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s2", T0, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "n@d.example", T0, 2, 0);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "d.example", T0, 6, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s1", T0, 6, 0);
  st = STATS(e, OBSPAM_MAILBOX, "m@d.example", T0);
  cr_assert_eq(st.refused_total, 0);
}

/* Counters follow kind and name: a subscription that takes the name of a
   removed domain does not inherit the domain's counters. */
Test(config_reload, matched_by_kind_and_name) {
  LOAD(e, R1);
  LOCAL(e, "x@e.example", 5, T0);
  LOAD(e, "subscription e.example\nsubscription s2\n"
          "domain other.example subscription=e.example\n");
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "e.example", T0, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s2", T0, 5, 0);
  /* Names are matched after lower-casing. */
  LOAD(e, "subscription S2\ndomain E.EXAMPLE subscription=s2\n");
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "e.example", T0, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "s2", T0, 5, 0);
}

/* The file is the whole truth: changes made through the API since the
   last load are replaced by the next one. */
Test(config_reload, replaces_api_changes) {
  LOAD(e, R1);
  OK(obspam_add(e, OBSPAM_MAILBOX, "api@d.example", NULL));
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "api@d.example", OBSPAM_MAILBOX, 9));
  SASL(e, "api@d.example", 2, T0);
  OK(obspam_add(e, OBSPAM_MAILBOX, "idle@d.example", NULL));
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "m@d.example", OBSPAM_MAILBOX, 1));
  OK(obspam_whitelist_add(e, "203.0.113.0/24"));
  LOAD(e, R1);
  int64_t v;
  /* A mailbox without counters is gone; one with counters goes on as an
     implicit mailbox, with the limit it inherits, not the one it had. */
  RC(obspam_effective_limit(e, OBSPAM_MAILBOX, "idle@d.example", &v),
     OBSPAM_ENOTFOUND);
  EXPECT_EFF(e, OBSPAM_MAILBOX, "api@d.example", OBSPAM_UNLIMITED);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "api@d.example", T0, 2, 0);
  EXPECT_EFF(e, OBSPAM_MAILBOX, "m@d.example", 4);
  obspam_message m =
      tu_msg(0, "n@d.example", NULL, "203.0.113.1", 1, -1, NULL, NULL, T0);
  obspam_verdict ver = DECIDE(e, &m);
  EXPECT_ACCEPT_UNLIMITED(ver, OBSPAM_MAILBOX, "n@d.example");
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "d.example", T0, 3, 0);
}

/* ---- windows and the recipients cap ------------------------------------ */

/* A refusal for the recipients cap: the lowest object, its cap as the
   limit, the message's recipients as the count, window 0, never. */
static void expect_cap_verdict(const obspam_verdict *v, const char *login,
                               uint32_t rcpt, int64_t cap, int line) {
  tu_expect_verdict(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, login, cap, rcpt, -1,
                    line);
  cr_assert_eq(v->window, 0, "line %d: window %" PRId64, line, v->window);
}
#define EXPECT_CAP_VERDICT_AT(v, login, rcpt, cap)                             \
  expect_cap_verdict(&(v), (login), (rcpt), (cap), __LINE__)

static void expect_cap_refusal(obspam_engine *x, const char *login,
                               uint32_t rcpt, int64_t cap, int line) {
  obspam_verdict v = tu_sasl(x, login, rcpt, T0, line);

  expect_cap_verdict(&v, login, rcpt, cap, line);
}
#define EXPECT_CAP_REFUSAL(x, login, rcpt, cap)                                \
  expect_cap_refusal((x), (login), (rcpt), (cap), __LINE__)

/* SPEC.md section 7's example, as written but for its `forward` and
   `list` lines, which belong to issue 17. */
Test(config_keywords, spec_example_with_windows) {
  LOAD(e, "enabled yes\n"
          "count recipients\n"
          "action defer\n"
          "local-network 10.0.5.0/24\n"
          "default mailbox=20/m,100/h,1000/d domain=1000 subscription=5000 "
          "max-recipients=50\n" SPEC_EXAMPLE_TREE);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", 20, 20, 1000);
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "example.com", -1, -1, -1);
  EXPECT_WINDOWS(e, OBSPAM_SUBSCRIPTION, "acme", -1, 3000, -1);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "info@example.com", 50);
  EXPECT_CAP(e, OBSPAM_SUBSCRIPTION, "acme", 50);
  /* An implicit mailbox of example.com: the domain's hour, the server's
     minute and day, and the server's cap. */
  obspam_verdict v = SASL(e, "new@example.com", 20, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "new@example.com", 80, 0, 0);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "new@example.com", 20, 80, 1000);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "new@example.com", 50);
  /* Its minute is full until the bucket of T0 leaves it. */
  v = SASL(e, "new@example.com", 1, T0 + 4);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "new@example.com", 20, 20,
                 56);
  cr_assert_eq(v.window, OBSPAM_WINDOW_MINUTE);
  /* More recipients than the minute allows never fit it: the minute, a
     longer window than the cap, is named. */
  v = SASL(e, "new@example.com", 51, T0 + 60);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "new@example.com", 20, 0);
  cr_assert_eq(v.window, OBSPAM_WINDOW_MINUTE);
  OK(obspam_set_window_limit(e, OBSPAM_SERVER, NULL, OBSPAM_MAILBOX,
                             OBSPAM_WINDOW_MINUTE, 100));
  v = SASL(e, "new@example.com", 51, T0 + 60);
  EXPECT_CAP_VERDICT_AT(v, "new@example.com", 51, 50);
}

/* Every form of V and R on every line that takes them. */
Test(config_keywords, window_limits_every_form) {
  LOAD(e, "default mailbox=20/m,100/h,1000/d domain=1000 "
          "subscription=unlimited/d,5000 max-recipients=50\n"
          "plan p mailbox=inherit/m,50 domain=100/m max-recipients=40\n"
          "subscription s plan=p subscription=3000,30000/d mailbox=7/d "
          "max-recipients=inherit\n"
          "domain d.example subscription=s domain=unlimited "
          "mailbox=80/h,unlimited/d max-recipients=unlimited\n"
          "mailbox a@d.example limit=50/m max-recipients=10\n"
          "mailbox b@d.example limit=inherit/m,5/h\n"
          "mailbox c@d.example limit=1/d,2/m,3\n"
          "mailbox z@d.example limit=0/m,00/d\n"
          "subscription t\ndomain t.example subscription=t\n"
          "mailbox m@t.example max-recipients=0\n");
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "a@d.example", 50, 80, -1);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "b@d.example", 20, 5, -1);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "c@d.example", 2, 3, 1);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "z@d.example", 0, 80, 0);
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "d.example", 100, -1, -1);
  EXPECT_WINDOWS(e, OBSPAM_SUBSCRIPTION, "s", -1, 3000, 30000);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "m@t.example", 20, 100, 1000);
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "t.example", -1, 1000, -1);
  EXPECT_WINDOWS(e, OBSPAM_SUBSCRIPTION, "t", -1, 5000, -1);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "a@d.example", 10);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "b@d.example", OBSPAM_UNLIMITED);
  EXPECT_CAP(e, OBSPAM_DOMAIN, "d.example", OBSPAM_UNLIMITED);
  EXPECT_CAP(e, OBSPAM_SUBSCRIPTION, "s", 40);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "m@t.example", 0);
  EXPECT_CAP(e, OBSPAM_DOMAIN, "t.example", 50);
  /* The caps decide. */
  EXPECT_CAP_REFUSAL(e, "a@d.example", 11, 10);
  EXPECT_CAP_REFUSAL(e, "m@t.example", 1, 0);
  obspam_verdict v = SASL(e, "a@d.example", 10, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "a@d.example", 80, 0, 0);
  cr_assert_eq(v.window, OBSPAM_WINDOW_HOUR);
  v = SASL(e, "b@d.example", 5, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "b@d.example", 5, 0, 0);
  /* Without `default`, the server's windows and cap are unlimited again. */
  LOAD(e, "subscription t\ndomain t.example subscription=t\n"
          "mailbox m@t.example\n");
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "m@t.example", -1, -1, -1);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "m@t.example", OBSPAM_UNLIMITED);
}

/* Windows a value does not name inherit, on every line: a day limit on a
   domain leaves its hour to the subscription's default. */
Test(config_keywords, windows_not_named_inherit) {
  LOAD(e, "default domain=1000/d\n"
          "subscription s domain=300 mailbox=9/m\n"
          "domain d.example subscription=s domain=10/m mailbox=90/d\n"
          "mailbox a@d.example limit=3/h\n");
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "d.example", 10, 300, 1000);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "a@d.example", 9, 3, 90);
  /* `default` sets only the windows it names: the others stay unlimited. */
  LOAD(e, "default mailbox=5/m\nsubscription s\n"
          "domain d.example subscription=s\nmailbox a@d.example\n");
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "a@d.example", 5, -1, -1);
}

Test(config_errors, window_values) {
  ERRS("plan p mailbox=20/w\n=> 1: unknown window 'w' in '20/w'",
       "plan p mailbox=20/m,30/w\n=> 1: unknown window 'w' in '30/w'",
       "plan p mailbox=20/M\n=> 1: unknown window 'M' in '20/M'",
       "plan p domain=20/min\n=> 1: unknown window 'min' in '20/min'",
       "plan p domain=20/m/h\n=> 1: unknown window 'm/h' in '20/m/h'",
       "plan p mailbox=20/\n=> 1: missing window after '/' in '20/'",
       "plan p mailbox=/m\n=> 1: bad value '/m' for 'mailbox': expected a "
       "count, unlimited or inherit",
       "plan p mailbox=20/m,30/m\n=> 1: bad value '20/m,30/m' for 'mailbox': "
       "the minute window is given twice",
       "plan p mailbox=20,30/h\n=> 1: bad value '20,30/h' for 'mailbox': the "
       "hour window is given twice",
       "plan p subscription=1/d,5,unlimited/d\n=> 1: bad value "
       "'1/d,5,unlimited/d' for 'subscription': the day window is given twice",
       "plan p mailbox=20,\n=> 1: bad value '20,' for 'mailbox': a window "
       "limit is empty",
       "plan p mailbox=,20\n=> 1: bad value ',20' for 'mailbox': a window "
       "limit is empty",
       "plan p mailbox=20/m,,30/d\n=> 1: bad value '20/m,,30/d' for 'mailbox': "
       "a window limit is empty",
       "plan p mailbox=,\n=> 1: bad value ',' for 'mailbox': a window limit is "
       "empty",
       "plan p mailbox=lots/m\n=> 1: bad value 'lots/m' for 'mailbox': "
       "expected a count, unlimited or inherit",
       "plan p mailbox=20/m,-5\n=> 1: bad value '-5' for 'mailbox': negative "
       "count",
       "plan p mailbox=-5/d\n=> 1: bad value '-5/d' for 'mailbox': negative "
       "count",
       "plan p mailbox=9223372036854775808/d\n=> 1: bad value "
       "'9223372036854775808/d' for 'mailbox': number is too large",
       "plan p mailbox=20/m 30/d\n=> 1: expected KEY=VALUE, found '30/d'",
       "default mailbox=inherit/m\n=> 1: bad value 'inherit/m' for 'mailbox': "
       "the server defaults cannot inherit",
       "default domain=5,lots/d\n=> 1: bad value 'lots/d' for 'domain': "
       "expected a count or unlimited",
       "subscription s\ndomain d subscription=s domain=1/d,2/d\n=> 2: bad "
       "value '1/d,2/d' for 'domain': the day window is given twice",
       "subscription s\ndomain d subscription=s\nmailbox m@d limit=5/x\n=> 3: "
       "unknown window 'x' in '5/x'",
       /* A second key for the same limit is refused as before, windows or
          not. */
       "plan p mailbox=5/m mailbox=6/d\n=> 1: key 'mailbox' is given twice");
}

Test(config_errors, max_recipients_values) {
  ERRS("plan p max-recipients=lots\n=> 1: bad value 'lots' for "
       "'max-recipients': expected a count, unlimited or inherit",
       "plan p max-recipients=5/m\n=> 1: bad value '5/m' for 'max-recipients': "
       "expected a count, unlimited or inherit",
       "plan p max-recipients=5,6\n=> 1: bad value '5,6' for 'max-recipients': "
       "expected a count, unlimited or inherit",
       "plan p max-recipients=-1\n=> 1: bad value '-1' for 'max-recipients': "
       "negative count",
       "plan p max-recipients=\n=> 1: missing value for 'max-recipients'",
       "plan p max-recipients=1 max-recipients=1\n=> 1: key 'max-recipients' "
       "is given twice",
       "default max-recipients=inherit\n=> 1: bad value 'inherit' for "
       "'max-recipients': the server defaults cannot inherit",
       "default max-recipients=x\n=> 1: bad value 'x' for 'max-recipients': "
       "expected a count or unlimited",
       "subscription s max-recipients=Unlimited\n=> 1: bad value 'Unlimited' "
       "for 'max-recipients': expected a count, unlimited or inherit",
       "subscription s\ndomain d subscription=s max-recipients=-3\n=> 2: bad "
       "value '-3' for 'max-recipients': negative count",
       "subscription s\ndomain d subscription=s\nmailbox m@d "
       "max-recipients=1.5\n=> 3: bad value '1.5' for 'max-recipients': "
       "expected a count, unlimited or inherit",
       "subscription s\ndomain d subscription=s\nmailbox m@d "
       "max_recipients=5\n=> 3: unknown key 'max_recipients' for a mailbox");
}

/* The message issue 16 gives, from a file, on its line. */
Test(config_files, window_error_names_file_and_line) {
  static const char text[] = "enabled yes\n"
                             "count recipients\n"
                             "\n"
                             "default mailbox=20/m,100/h,1000/d\n"
                             "plan Basic mailbox=50 max-recipients=20\n"
                             "subscription acme plan=Basic uid=10001\n"
                             "domain example.com subscription=acme\n"
                             "mailbox a@example.com limit=5/m\n"
                             "mailbox b@example.com limit=unlimited/d\n"
                             "mailbox c@example.com limit=inherit/m,5/h\n"
                             "# the next line is wrong\n"
                             "mailbox d@example.com limit=20/w\n";
  expect_file_error(text, "obspam.conf:12: unknown window 'w' in '20/w'",
                    __LINE__);
}

/* A load that fails keeps every window and cap the engine had. */
Test(config_atomic, failed_load_keeps_windows_and_caps) {
  static const char *const good =
      "default mailbox=1/m max-recipients=9\n"
      "subscription s mailbox=2/d domain=3/m,30\n"
      "domain d.example subscription=s max-recipients=4\n"
      "mailbox a@d.example limit=5/m,6/d max-recipients=7\n";
  LOAD(e, good);
  RC(obspam_load_config_string(
         e, "default mailbox=11/m max-recipients=19\n"
            "subscription s mailbox=12/d domain=13/m\n"
            "domain d.example subscription=s max-recipients=14\n"
            "mailbox a@d.example limit=15/m,16/d max-recipients=17\n"
            "mailbox b@d.example limit=1/w\n"),
     OBSPAM_ESYNTAX);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "<string>:5: unknown window 'w' in '1/w'");
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "a@d.example", 5, -1, 6);
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "d.example", 3, 30, -1);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "a@d.example", 7);
  EXPECT_CAP(e, OBSPAM_DOMAIN, "d.example", 4);
  EXPECT_CAP(e, OBSPAM_SUBSCRIPTION, "s", 9);
  int64_t v;
  RC(obspam_effective_limit(e, OBSPAM_MAILBOX, "b@d.example", &v),
     OBSPAM_ENOTFOUND);
}

/* A reload takes the new file's windows and caps, whatever the old file
   or the API had set; values the new file leaves out inherit again. */
Test(config_reload, takes_the_new_windows_and_caps) {
  LOAD(e, "default mailbox=1/m,2/d max-recipients=3\n"
          "plan p mailbox=4/m max-recipients=5\n"
          "subscription s plan=p domain=6/d\n"
          "domain d.example subscription=s mailbox=7/d max-recipients=8\n"
          "mailbox a@d.example limit=9/m max-recipients=10\n"
          "mailbox b@d.example\n");
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "a@d.example", 9, -1, 7);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "b@d.example", 4, -1, 7);
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "d.example", -1, -1, 6);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "b@d.example", 8);
  SASL(e, "a@d.example", 2, T0);
  OK(obspam_set_window_limit(e, OBSPAM_MAILBOX, "b@d.example", OBSPAM_MAILBOX,
                             OBSPAM_WINDOW_DAY, 100));
  OK(obspam_set_max_recipients(e, OBSPAM_MAILBOX, "b@d.example", 100));
  OK(obspam_set_window_limit(e, OBSPAM_SERVER, NULL, OBSPAM_DOMAIN,
                             OBSPAM_WINDOW_MINUTE, 100));

  LOAD(e, "default mailbox=11/m max-recipients=13\n"
          "plan p max-recipients=15\n"
          "subscription s plan=p\n"
          "domain d.example subscription=s mailbox=17/d\n"
          "mailbox a@d.example limit=19/m,20/d\n"
          "mailbox b@d.example\n");
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "a@d.example", 19, -1, 20);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "b@d.example", 11, -1, 17);
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "d.example", -1, -1, -1);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "a@d.example", 15);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "b@d.example", 15);
  EXPECT_CAP(e, OBSPAM_SUBSCRIPTION, "s", 15);
  /* The counters came along. */
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "a@d.example", T0, 2, 0);

  /* No window or cap anywhere: every one unlimited again. */
  LOAD(e, "subscription s\ndomain d.example subscription=s\n"
          "mailbox a@d.example limit=5\n");
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "a@d.example", -1, 5, -1);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "a@d.example", OBSPAM_UNLIMITED);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "a@d.example", T0, 2, 0);
}

/* ---- the example --------------------------------------------------------- */

Test(config_example, loads_and_limits) {
  int rc = obspam_load_config(e, OBSPAM_TEST_SRCDIR "/../examples/obspam.conf");
  cr_assert_eq(rc, OBSPAM_OK, "examples/obspam.conf: %s",
               obspam_engine_errmsg(e));
  EXPECT_OPT(e, OBSPAM_OPT_ENABLED, 1);
  EXPECT_OPT(e, OBSPAM_OPT_RETENTION_HOURS, 720);
  EXPECT_EFFS(e, "mailbox info@acme.example 20\n"
                 "mailbox sales@acme.example 200\n"
                 "domain shop.acme.example 1500\nsubscription bakery 800\n"
                 "subscription monitoring unlimited\n"
                 "mailbox newsletter@newsroom.example 2000\n");

  /* The demo mailbox: five an hour. */
  obspam_verdict v;
  for (int i = 0; i < 5; i++) {
    v = SASL(e, "demo@bakery.example", 1, T0);
    EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "demo@bakery.example", 5,
                   i, 0);
  }
  v = SASL(e, "demo@bakery.example", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "demo@bakery.example", 5, 5,
                 3600);
  v = SASL(e, "old-intern@bakery.example", 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_MAILBOX, "old-intern@bakery.example", 0, 0);
  /* The Starter plan forbids scripts. */
  v = SCRIPT(e, 10002, "bakery.example", 1, T0);
  EXPECT_NEVER_FITS(v, OBSPAM_SUBSCRIPTION, "bakery", 800, 5);
  v = SCRIPT(e, 10003, "newsroom.example", 1, T0);
  EXPECT_ACCEPT_UNLIMITED(v, OBSPAM_DOMAIN, "newsroom.example");
  obspam_message m =
      tu_msg(0, "demo@bakery.example", NULL, NULL, 1, -1, NULL, NULL, T0);
  EXPECT_WHITELISTED(m, "192.0.2.25");
  EXPECT_WHITELISTED(m, "2001:db8:25:1::1");
  m.client_address = "127.0.0.1";
  v = DECIDE(e, &m);
  cr_assert_eq(v.action, OBSPAM_REFUSE, "127.0.0.1 is not whitelisted");
}

/* The `store-prefix` line and obspam_set_store accept the same prefixes:
   1 to 128 bytes, no blanks, no braces. */
Test(config_errors, store_prefix_rule_shared_with_set_store) {
  char long_prefix[130], line[160];

  memset(long_prefix, 'p', 129);
  long_prefix[129] = '\0';
  snprintf(line, sizeof line, "store-prefix %s\n", long_prefix);
  ERR(line, 1,
      "bad value 'pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppp' for 'store-prefix': 1 to 128 bytes, no blanks or braces");
  /* The message shows the carriage return as "?". */
  ERRS("store-prefix a\rb\n=> 1: bad value 'a?b' for 'store-prefix': 1 to 128 "
       "bytes, no blanks or braces",
       "store-prefix a{b\n=> 1: bad value 'a{b' for 'store-prefix': 1 to 128 "
       "bytes, no blanks or braces");
  long_prefix[128] = '\0';
  snprintf(line, sizeof line, "store-prefix %s\n", long_prefix);
  LOAD(e, line);

  RC(obspam_set_store(e, "", "a b"), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e), "set_store: prefix 'a b': 1 to "
                                            "128 bytes, no blanks or braces");
  RC(obspam_set_store(e, "", "a}"), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e), "set_store: prefix 'a}': 1 to "
                                            "128 bytes, no blanks or braces");
  RC(obspam_set_store(e, "", ""), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e), "set_store: prefix '': 1 to "
                                            "128 bytes, no blanks or braces");
  OK(obspam_set_store(e, "", long_prefix));
}
