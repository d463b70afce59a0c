/* SPDX-License-Identifier: MIT */
/* The limit tree: add/remove, names, limits and their inheritance, uids,
   scripts and contacts. */
#include <limits.h>

#include "testutil.h"

static obspam_engine *e;

/*
 * The fixture tree:
 *   plan basic, plan gold
 *   subscription acme (plan basic, uid 1001)
 *     domain example.com: info@, sales@
 *     domain example.net: bob@
 *   subscription solo (no plan, uid 1002)
 *     domain solo.org: x@
 */
TU_ENGINE_SETUP(tu_fixture("tree.conf"))

TestSuite(tree, .init = setup, .fini = teardown);

/* A script run by uid at T0 is charged to the unlimited subscription sub
   that had counted count before, or its uid is unknown (sub NULL). */
static void expect_uid(int64_t uid, const char *sub, int64_t count, int line) {
  obspam_verdict v = tu_script(e, uid, NULL, 1, T0, line);

  if (sub == NULL)
    tu_expect_verdict(&v, OBSPAM_UNKNOWN, -1, "", 0, 0, 0, line);
  else
    tu_expect_verdict(&v, OBSPAM_ACCEPT, OBSPAM_SUBSCRIPTION, sub,
                      OBSPAM_UNLIMITED, count, 0, line);
}
#define EXPECT_UID(uid, sub, count) expect_uid((uid), (sub), (count), __LINE__)

/* ---- "The engine is unchanged" ------------------------------------------ */

static const tu_object probe_objs[] = {
    {OBSPAM_SUBSCRIPTION, "acme"},
    {OBSPAM_SUBSCRIPTION, "solo"},
    {OBSPAM_SUBSCRIPTION, "basic"},
    {OBSPAM_SUBSCRIPTION, "ghost"},
    {OBSPAM_SUBSCRIPTION, "new"},
    {OBSPAM_DOMAIN, "example.com"},
    {OBSPAM_DOMAIN, "example.net"},
    {OBSPAM_DOMAIN, "solo.org"},
    {OBSPAM_DOMAIN, "ghost.com"},
    {OBSPAM_DOMAIN, "new.com"},
    {OBSPAM_DOMAIN, "acme"},
    {OBSPAM_MAILBOX, "info@example.com"},
    {OBSPAM_MAILBOX, "sales@example.com"},
    {OBSPAM_MAILBOX, "bob@example.net"},
    {OBSPAM_MAILBOX, "x@solo.org"},
    {OBSPAM_MAILBOX, "ghost@example.com"},
    {OBSPAM_MAILBOX, "new@example.com"},
    {OBSPAM_MAILBOX, "a@new.com"},
};
#define N_PROBES (sizeof probe_objs / sizeof probe_objs[0])
static const char *const probe_plans[] = {"basic", "gold", "new", "acme"};
#define N_PLANS (sizeof probe_plans / sizeof probe_plans[0])

typedef struct snapshot {
  int rc[N_PROBES];
  int64_t limit[N_PROBES], count[N_PROBES], refused[N_PROBES];
  /* The minute and day windows' effective limits and the cap. */
  int64_t minute[N_PROBES], day[N_PROBES], cap[N_PROBES];
  int plan_rc[N_PLANS];
  int uid_action[4];
} snapshot;

/* Records what the public API shows about the fixture objects: existence,
   effective limits, counters, plans and uid ownership. The probes leave the
   engine as they found it (plans and uids are probed with a throw-away
   subscription that is removed again). Note that the probes themselves may
   fail (ENOTFOUND), so the error message is checked separately. */
static void take(snapshot *s) {
  memset(s, 0, sizeof *s);
  for (size_t i = 0; i < N_PROBES; i++) {
    int64_t lim = -99;
    s->rc[i] =
        obspam_effective_limit(e, probe_objs[i].kind, probe_objs[i].name, &lim);
    s->limit[i] = lim;
    obspam_stats st = OBSPAM_STATS_INIT;
    int rc =
        obspam_stats_get(e, probe_objs[i].kind, probe_objs[i].name, T0, &st);
    cr_assert_eq(rc, s->rc[i], "stats_get and effective_limit disagree on %s",
                 probe_objs[i].name);
    s->count[i] = st.count;
    s->refused[i] = st.refused;
    s->minute[i] = s->day[i] = s->cap[i] = -99;
    cr_assert_eq(
        obspam_effective_window_limit(e, probe_objs[i].kind, probe_objs[i].name,
                                      OBSPAM_WINDOW_MINUTE, &s->minute[i]),
        s->rc[i]);
    cr_assert_eq(obspam_effective_window_limit(e, probe_objs[i].kind,
                                               probe_objs[i].name,
                                               OBSPAM_WINDOW_DAY, &s->day[i]),
                 s->rc[i]);
    cr_assert_eq(obspam_effective_max_recipients(
                     e, probe_objs[i].kind, probe_objs[i].name, &s->cap[i]),
                 s->rc[i]);
  }
  /* A plan exists when a subscription can be attached to it. */
  for (size_t i = 0; i < N_PLANS; i++) {
    s->plan_rc[i] =
        obspam_add(e, OBSPAM_SUBSCRIPTION, "zz-probe", probe_plans[i]);
    if (s->plan_rc[i] == OBSPAM_OK)
      OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "zz-probe"));
  }
  /* Which uids are taken: try to claim them on a throw-away subscription. */
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "zz-uid", NULL));
  static const int64_t uids[4] = {1001, 1002, 1003, 2000};
  for (int i = 0; i < 4; i++) {
    s->uid_action[i] = obspam_set_uid(e, "zz-uid", uids[i]);
    OK(obspam_set_uid(e, "zz-uid", -1));
  }
  OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "zz-uid"));
}

static void expect_same(const snapshot *a, const snapshot *b, int line) {
  for (size_t i = 0; i < N_PROBES; i++) {
    cr_assert_eq(a->rc[i], b->rc[i],
                 "line %d: existence of %s changed (rc %d -> %d)", line,
                 probe_objs[i].name, a->rc[i], b->rc[i]);
    cr_assert_eq(a->limit[i], b->limit[i],
                 "line %d: effective limit of %s changed (%" PRId64
                 " -> %" PRId64 ")",
                 line, probe_objs[i].name, a->limit[i], b->limit[i]);
    cr_assert_eq(a->count[i], b->count[i], "line %d: count of %s changed", line,
                 probe_objs[i].name);
    cr_assert(a->minute[i] == b->minute[i] && a->day[i] == b->day[i],
              "line %d: a window limit of %s changed", line,
              probe_objs[i].name);
    cr_assert_eq(a->cap[i], b->cap[i], "line %d: the cap of %s changed", line,
                 probe_objs[i].name);
    cr_assert_eq(a->refused[i], b->refused[i], "line %d: refused of %s changed",
                 line, probe_objs[i].name);
  }
  for (size_t i = 0; i < N_PLANS; i++)
    cr_assert_eq(a->plan_rc[i], b->plan_rc[i],
                 "line %d: existence of plan %s changed", line, probe_plans[i]);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(a->uid_action[i], b->uid_action[i],
                 "line %d: uid ownership changed (probe %d: %d -> %d)", line, i,
                 a->uid_action[i], b->uid_action[i]);
}

/* Runs a call that must fail with `want` and checks that it changed
   nothing and left an error message. */
#define FAILS(expr, want)                                                      \
  do {                                                                         \
    snapshot before_, after_;                                                  \
    take(&before_);                                                            \
    RC(expr, want);                                                            \
    const char *msg_ = obspam_engine_errmsg(e);                                \
    cr_assert(msg_ != NULL && msg_[0] != '\0', "line %d: no errmsg after %s",  \
              __LINE__, #expr);                                                \
    take(&after_);                                                             \
    expect_same(&before_, &after_, __LINE__);                                  \
  } while (0)

static int exists(int kind, const char *name) {
  int64_t lim;
  int rc = obspam_effective_limit(e, kind, name, &lim);
  cr_assert(rc == OBSPAM_OK || rc == OBSPAM_ENOTFOUND,
            "effective_limit(%d, %s) returned %d", kind, name, rc);
  return rc == OBSPAM_OK;
}

static int plan_exists(const char *name) {
  int rc = obspam_add(e, OBSPAM_SUBSCRIPTION, "zz-probe", name);
  cr_assert(rc == OBSPAM_OK || rc == OBSPAM_ENOTFOUND,
            "add(subscription, plan=%s) returned %d", name, rc);
  if (rc == OBSPAM_OK)
    OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "zz-probe"));
  return rc == OBSPAM_OK;
}

#define EXPECT_EXISTS(kind, name)                                              \
  cr_assert(exists(kind, name), "line %d: %s should exist", __LINE__, name)
#define EXPECT_GONE(kind, name)                                                \
  cr_assert(!exists(kind, name), "line %d: %s should not exist", __LINE__, name)

/* ---- add ----------------------------------------------------------------- */

Test(tree, fixture_objects_exist) {
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, "acme");
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, "solo");
  EXPECT_EXISTS(OBSPAM_DOMAIN, "example.com");
  EXPECT_EXISTS(OBSPAM_DOMAIN, "example.net");
  EXPECT_EXISTS(OBSPAM_DOMAIN, "solo.org");
  EXPECT_EXISTS(OBSPAM_MAILBOX, "info@example.com");
  EXPECT_EXISTS(OBSPAM_MAILBOX, "sales@example.com");
  EXPECT_EXISTS(OBSPAM_MAILBOX, "bob@example.net");
  EXPECT_EXISTS(OBSPAM_MAILBOX, "x@solo.org");
  cr_assert(plan_exists("basic"));
  cr_assert(plan_exists("gold"));
  cr_assert(!plan_exists("silver"));
  EXPECT_GONE(OBSPAM_SUBSCRIPTION, "ghost");
  EXPECT_GONE(OBSPAM_DOMAIN, "ghost.com");
  EXPECT_GONE(OBSPAM_MAILBOX, "ghost@example.com");
}

Test(tree, plan_parent_must_be_null) {
  FAILS(obspam_add(e, OBSPAM_PLAN, "new", "basic"), OBSPAM_EINVAL);
  FAILS(obspam_add(e, OBSPAM_PLAN, "new", "nosuch"), OBSPAM_EINVAL);
  OK(obspam_add(e, OBSPAM_PLAN, "new", NULL));
  cr_assert(plan_exists("new"));
}

Test(tree, subscription_parent) {
  FAILS(obspam_add(e, OBSPAM_SUBSCRIPTION, "new", "nosuch"), OBSPAM_ENOTFOUND);
  /* A subscription or domain name is not a plan. */
  FAILS(obspam_add(e, OBSPAM_SUBSCRIPTION, "new", "solo"), OBSPAM_ENOTFOUND);
  FAILS(obspam_add(e, OBSPAM_SUBSCRIPTION, "new", "example.com"),
        OBSPAM_ENOTFOUND);
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "new", "gold"));
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, "new");
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "new2", NULL));
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, "new2");
}

Test(tree, domain_parent) {
  FAILS(obspam_add(e, OBSPAM_DOMAIN, "new.com", NULL), OBSPAM_EINVAL);
  FAILS(obspam_add(e, OBSPAM_DOMAIN, "new.com", "nosuch"), OBSPAM_ENOTFOUND);
  /* A plan is not a subscription. */
  FAILS(obspam_add(e, OBSPAM_DOMAIN, "new.com", "gold"), OBSPAM_ENOTFOUND);
  OK(obspam_add(e, OBSPAM_DOMAIN, "new.com", "solo"));
  EXPECT_EXISTS(OBSPAM_DOMAIN, "new.com");
}

Test(tree, mailbox_parent) {
  /* Another domain, hosted or not, is not a valid parent. */
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "new@example.com", "example.net"),
        OBSPAM_EINVAL);
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "new@example.com", "other.org"),
        OBSPAM_EINVAL);
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "new@example.com", "acme"),
        OBSPAM_EINVAL);
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "new@example.com", ""), OBSPAM_EINVAL);
  /* The domain must be hosted. */
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "a@new.com", NULL), OBSPAM_ENOTFOUND);
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "a@new.com", "new.com"),
        OBSPAM_ENOTFOUND);
  /* Its own domain, in any case, is fine. */
  OK(obspam_add(e, OBSPAM_MAILBOX, "new@example.com", "EXAMPLE.Com"));
  EXPECT_EXISTS(OBSPAM_MAILBOX, "new@example.com");
}

Test(tree, bad_kinds) {
  static const int bad[] = {OBSPAM_SERVER, OBSPAM_SCRIPT, -1, 6, 99, INT_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    FAILS(obspam_add(e, bad[i], "new", NULL), OBSPAM_EINVAL);
    FAILS(obspam_add(e, bad[i], "acme", NULL), OBSPAM_EINVAL);
    FAILS(obspam_remove(e, bad[i], "acme"), OBSPAM_EINVAL);
    FAILS(obspam_remove(e, bad[i], "example.com"), OBSPAM_EINVAL);
  }
}

/* ---- names --------------------------------------------------------------- */

static char *repeat(char *buf, char c, size_t n) {
  memset(buf, c, n);
  buf[n] = '\0';
  return buf;
}

/* Names that are invalid for a plan, a subscription and a domain. */
static const char *const bad_plain_names[] = {
    "",      " x",     "x ",     "x y",    "x\ty", "\tx",  "x\n",
    "x\ry",  "x\x01y", "x\x1fy", "x\x7fy", "\x7f", "a@b",  "@",
    "a@b@c", "x@",     "@x",     " ",      "x\vy", "x\fy",
};

static void check_plain_names(int kind, const char *parent) {
  char buf[1100];
  FAILS(obspam_add(e, kind, NULL, parent), OBSPAM_EINVAL);
  for (size_t i = 0; i < sizeof bad_plain_names / sizeof bad_plain_names[0];
       i++)
    FAILS(obspam_add(e, kind, bad_plain_names[i], parent), OBSPAM_EINVAL);
  FAILS(obspam_add(e, kind, repeat(buf, 'a', 321), parent), OBSPAM_EINVAL);
  FAILS(obspam_add(e, kind, repeat(buf, 'b', 1000), parent), OBSPAM_EINVAL);
  /* 320 bytes is the longest valid name. */
  OK(obspam_add(e, kind, repeat(buf, 'a', 320), parent));
  RC(obspam_add(e, kind, repeat(buf, 'A', 320), parent), OBSPAM_EEXIST);
}

Test(tree, plan_names) {
  check_plain_names(OBSPAM_PLAN, NULL);
  char buf[400];
  cr_assert(plan_exists(repeat(buf, 'a', 320)));
}

Test(tree, subscription_names) {
  check_plain_names(OBSPAM_SUBSCRIPTION, NULL);
  char buf[400];
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, repeat(buf, 'a', 320));
}

Test(tree, subscription_names_with_plan) {
  check_plain_names(OBSPAM_SUBSCRIPTION, "gold");
  char buf[400];
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, repeat(buf, 'a', 320));
}

Test(tree, domain_names) {
  check_plain_names(OBSPAM_DOMAIN, "solo");
  char buf[400];
  EXPECT_EXISTS(OBSPAM_DOMAIN, repeat(buf, 'a', 320));
}

Test(tree, mailbox_names) {
  static const char *const bad[] = {
      "",
      "noat",
      "example.com",
      "a@@example.com",
      "a@b@example.com",
      "@example.com",
      "a@",
      "@",
      "@@",
      " a@example.com",
      "a@example.com ",
      "a b@example.com",
      "a\t@example.com",
      "a@example.com\n",
      "a\x01@example.com",
      "a\x7f@example.com",
      "a@exam ple.com",
      "\r\n",
  };
  char buf[400];
  FAILS(obspam_add(e, OBSPAM_MAILBOX, NULL, NULL), OBSPAM_EINVAL);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    FAILS(obspam_add(e, OBSPAM_MAILBOX, bad[i], NULL), OBSPAM_EINVAL);
    FAILS(obspam_add(e, OBSPAM_MAILBOX, bad[i], "example.com"), OBSPAM_EINVAL);
  }
  /* 321 bytes: 309 'a' + "@example.com" (12 bytes). */
  repeat(buf, 'a', 309);
  strcat(buf, "@example.com");
  cr_assert_eq(strlen(buf), 321u);
  FAILS(obspam_add(e, OBSPAM_MAILBOX, buf, NULL), OBSPAM_EINVAL);
  /* 320 bytes is fine. */
  repeat(buf, 'a', 308);
  strcat(buf, "@example.com");
  cr_assert_eq(strlen(buf), 320u);
  OK(obspam_add(e, OBSPAM_MAILBOX, buf, NULL));
  EXPECT_EXISTS(OBSPAM_MAILBOX, buf);
  /* A 320-byte mailbox in a long domain: 1 + '@' + 318. */
  repeat(buf, 'd', 318);
  OK(obspam_add(e, OBSPAM_DOMAIN, buf, "solo"));
  char mb[800];
  snprintf(mb, sizeof mb, "m@%s", buf);
  cr_assert_eq(strlen(mb), 320u);
  OK(obspam_add(e, OBSPAM_MAILBOX, mb, NULL));
  snprintf(mb, sizeof mb, "mm@%s", buf);
  FAILS(obspam_add(e, OBSPAM_MAILBOX, mb, NULL), OBSPAM_EINVAL);
}

/* Bytes above 0x7f are neither blanks nor control characters. */
Test(tree, high_bytes_are_valid) {
  OK(obspam_add(e, OBSPAM_DOMAIN,
                "b\xc3\xbc"
                "cher.example",
                "solo"));
  EXPECT_EXISTS(OBSPAM_DOMAIN, "b\xc3\xbc"
                               "cher.example");
  OK(obspam_add(e, OBSPAM_MAILBOX,
                "j\xc3\xb6rg@b\xc3\xbc"
                "cher.example",
                NULL));
  EXPECT_EXISTS(OBSPAM_MAILBOX, "j\xc3\xb6rg@b\xc3\xbc"
                                "cher.example");
  OK(obspam_add(e, OBSPAM_PLAN, "\xff\x80", NULL));
  cr_assert(plan_exists("\xff\x80"));
  /* Only ASCII letters fold: U+00C9 and U+00E9 are different names. */
  OK(obspam_add(e, OBSPAM_DOMAIN, "\xc3\x89t\xc3\xa9.example", "solo"));
  OK(obspam_add(e, OBSPAM_DOMAIN, "\xc3\xa9t\xc3\xa9.example", "solo"));
  RC(obspam_add(e, OBSPAM_DOMAIN, "\xc3\xa9T\xc3\xa9.EXAMPLE", "solo"),
     OBSPAM_EEXIST);
}

Test(tree, names_are_case_insensitive) {
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "MixedCase", "GOLD"));
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, "mixedcase");
  OK(obspam_add(e, OBSPAM_DOMAIN, "Example.ORG", "MIXEDCASE"));
  EXPECT_EXISTS(OBSPAM_DOMAIN, "example.org");
  OK(obspam_add(e, OBSPAM_MAILBOX, "Webmaster@Example.COM", NULL));
  EXPECT_EXISTS(OBSPAM_MAILBOX, "webmaster@example.com");
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "Webmaster@Example.COM", NULL),
        OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "webmaster@example.com", NULL),
        OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "INFO@EXAMPLE.COM", NULL), OBSPAM_EEXIST);
  OK(obspam_add(e, OBSPAM_MAILBOX, "Info@Example.ORG", "example.org"));
  EXPECT_EXISTS(OBSPAM_MAILBOX, "info@example.org");
  EXPECT_EXISTS(OBSPAM_MAILBOX, "INFO@EXAMPLE.ORG");
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "info@example.org", NULL), OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "INFO@example.org", NULL), OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_DOMAIN, "EXAMPLE.com", "solo"), OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_SUBSCRIPTION, "ACME", NULL), OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_PLAN, "Basic", NULL), OBSPAM_EEXIST);
  cr_assert(plan_exists("GoLd"));
  /* The local part is case-insensitive too, and verdicts are lower case. */
  obspam_verdict v = SASL(e, "INFO@example.ORG", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.org",
                 OBSPAM_UNLIMITED, 0, 0);
  OK(obspam_remove(e, OBSPAM_MAILBOX, "iNfO@eXaMpLe.OrG"));
  EXPECT_GONE(OBSPAM_MAILBOX, "info@example.org");
}

Test(tree, duplicates) {
  FAILS(obspam_add(e, OBSPAM_PLAN, "basic", NULL), OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_SUBSCRIPTION, "acme", "basic"), OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_SUBSCRIPTION, "acme", NULL), OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_SUBSCRIPTION, "acme", "gold"), OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_DOMAIN, "example.com", "acme"), OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_DOMAIN, "example.com", "solo"), OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "info@example.com", NULL), OBSPAM_EEXIST);
  FAILS(obspam_add(e, OBSPAM_MAILBOX, "info@example.com", "example.com"),
        OBSPAM_EEXIST);
}

/* A failed duplicate does not move the object: acme stays on plan basic and
   example.com stays in acme. */
Test(tree, duplicate_does_not_reparent) {
  OK(obspam_set_limit(e, OBSPAM_PLAN, "basic", OBSPAM_SUBSCRIPTION, 11));
  OK(obspam_set_limit(e, OBSPAM_PLAN, "gold", OBSPAM_SUBSCRIPTION, 22));
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "acme", OBSPAM_DOMAIN, 33));
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "solo", OBSPAM_DOMAIN, 44));
  RC(obspam_add(e, OBSPAM_SUBSCRIPTION, "acme", "gold"), OBSPAM_EEXIST);
  RC(obspam_add(e, OBSPAM_DOMAIN, "example.com", "solo"), OBSPAM_EEXIST);
  EXPECT_EFF(e, OBSPAM_SUBSCRIPTION, "acme", 11);
  EXPECT_EFF(e, OBSPAM_DOMAIN, "example.com", 33);
}

Test(tree, kinds_are_separate_namespaces) {
  OK(obspam_add(e, OBSPAM_PLAN, "shared", NULL));
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "shared", "shared"));
  OK(obspam_add(e, OBSPAM_DOMAIN, "shared", "shared"));
  OK(obspam_add(e, OBSPAM_PLAN, "acme", NULL));
  OK(obspam_add(e, OBSPAM_DOMAIN, "acme", "acme"));
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "example.com", NULL));
  EXPECT_EXISTS(OBSPAM_DOMAIN, "shared");
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, "shared");
  cr_assert(plan_exists("shared"));
  /* Removing one does not remove its namesakes. */
  OK(obspam_remove(e, OBSPAM_DOMAIN, "acme"));
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, "acme");
  cr_assert(plan_exists("acme"));
  OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "example.com"));
  EXPECT_EXISTS(OBSPAM_DOMAIN, "example.com");
}

/* ---- remove -------------------------------------------------------------- */

Test(tree, remove_unknown_or_invalid) {
  FAILS(obspam_remove(e, OBSPAM_PLAN, "silver"), OBSPAM_ENOTFOUND);
  FAILS(obspam_remove(e, OBSPAM_SUBSCRIPTION, "ghost"), OBSPAM_ENOTFOUND);
  FAILS(obspam_remove(e, OBSPAM_DOMAIN, "ghost.com"), OBSPAM_ENOTFOUND);
  FAILS(obspam_remove(e, OBSPAM_MAILBOX, "ghost@example.com"),
        OBSPAM_ENOTFOUND);
  /* Right name, wrong kind. */
  FAILS(obspam_remove(e, OBSPAM_PLAN, "acme"), OBSPAM_ENOTFOUND);
  FAILS(obspam_remove(e, OBSPAM_SUBSCRIPTION, "basic"), OBSPAM_ENOTFOUND);
  FAILS(obspam_remove(e, OBSPAM_DOMAIN, "acme"), OBSPAM_ENOTFOUND);
  FAILS(obspam_remove(e, OBSPAM_SUBSCRIPTION, "example.com"), OBSPAM_ENOTFOUND);
  static const int kinds[] = {OBSPAM_PLAN, OBSPAM_SUBSCRIPTION, OBSPAM_DOMAIN,
                              OBSPAM_MAILBOX};
  for (size_t i = 0; i < 4; i++) {
    FAILS(obspam_remove(e, kinds[i], NULL), OBSPAM_EINVAL);
    FAILS(obspam_remove(e, kinds[i], ""), OBSPAM_EINVAL);
  }
}

Test(tree, remove_mailbox) {
  OK(obspam_remove(e, OBSPAM_MAILBOX, "info@example.com"));
  EXPECT_GONE(OBSPAM_MAILBOX, "info@example.com");
  EXPECT_EXISTS(OBSPAM_MAILBOX, "sales@example.com");
  EXPECT_EXISTS(OBSPAM_DOMAIN, "example.com");
  FAILS(obspam_remove(e, OBSPAM_MAILBOX, "info@example.com"), OBSPAM_ENOTFOUND);
}

Test(tree, remove_domain_removes_its_mailboxes) {
  OK(obspam_remove(e, OBSPAM_DOMAIN, "example.com"));
  EXPECT_GONE(OBSPAM_DOMAIN, "example.com");
  EXPECT_GONE(OBSPAM_MAILBOX, "info@example.com");
  EXPECT_GONE(OBSPAM_MAILBOX, "sales@example.com");
  EXPECT_EXISTS(OBSPAM_DOMAIN, "example.net");
  EXPECT_EXISTS(OBSPAM_MAILBOX, "bob@example.net");
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, "acme");
  /* The mailbox cannot be added back without its domain. */
  RC(obspam_add(e, OBSPAM_MAILBOX, "info@example.com", NULL), OBSPAM_ENOTFOUND);
  /* The domain can now go to another subscription. */
  OK(obspam_add(e, OBSPAM_DOMAIN, "example.com", "solo"));
  EXPECT_GONE(OBSPAM_MAILBOX, "info@example.com");
  OK(obspam_add(e, OBSPAM_MAILBOX, "info@example.com", NULL));
  EXPECT_EXISTS(OBSPAM_MAILBOX, "info@example.com");
  /* A message from it is now charged to solo, not acme. */
  SASL(e, "info@example.com", 2, T0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "solo", T0, 2, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0, 0, 0);
}

Test(tree, remove_subscription_removes_domains_and_mailboxes) {
  OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "acme"));
  EXPECT_GONE(OBSPAM_SUBSCRIPTION, "acme");
  EXPECT_GONE(OBSPAM_DOMAIN, "example.com");
  EXPECT_GONE(OBSPAM_DOMAIN, "example.net");
  EXPECT_GONE(OBSPAM_MAILBOX, "info@example.com");
  EXPECT_GONE(OBSPAM_MAILBOX, "sales@example.com");
  EXPECT_GONE(OBSPAM_MAILBOX, "bob@example.net");
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, "solo");
  EXPECT_EXISTS(OBSPAM_DOMAIN, "solo.org");
  EXPECT_EXISTS(OBSPAM_MAILBOX, "x@solo.org");
  cr_assert(plan_exists("basic"), "the plan stays");
  /* Its names are free again. */
  OK(obspam_add(e, OBSPAM_DOMAIN, "example.com", "solo"));
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "acme", "gold"));
  EXPECT_GONE(OBSPAM_DOMAIN, "example.net");
}

Test(tree, remove_plan_removes_its_subscriptions) {
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "acme2", "basic"));
  OK(obspam_add(e, OBSPAM_DOMAIN, "acme2.com", "acme2"));
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "goldie", "gold"));
  OK(obspam_remove(e, OBSPAM_PLAN, "basic"));
  cr_assert(!plan_exists("basic"));
  EXPECT_GONE(OBSPAM_SUBSCRIPTION, "acme");
  EXPECT_GONE(OBSPAM_SUBSCRIPTION, "acme2");
  EXPECT_GONE(OBSPAM_DOMAIN, "example.com");
  EXPECT_GONE(OBSPAM_DOMAIN, "example.net");
  EXPECT_GONE(OBSPAM_DOMAIN, "acme2.com");
  EXPECT_GONE(OBSPAM_MAILBOX, "info@example.com");
  EXPECT_GONE(OBSPAM_MAILBOX, "bob@example.net");
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, "solo");
  EXPECT_EXISTS(OBSPAM_SUBSCRIPTION, "goldie");
  EXPECT_EXISTS(OBSPAM_MAILBOX, "x@solo.org");
  cr_assert(plan_exists("gold"));
  /* acme's uid went with it. */
  EXPECT_UID(1001, NULL, 0);
  OK(obspam_set_uid(e, "goldie", 1001));
}

/* Counters go with a removed object; adding it again starts from zero.
   The counters of the ancestors that stay are kept. */
Test(tree, readd_starts_from_zero) {
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "info@example.com", OBSPAM_MAILBOX,
                      3));
  obspam_verdict v = SASL(e, "info@example.com", 3, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 3, 0, 0);
  v = SASL(e, "info@example.com", 1, T0 + 10);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 3, 3,
                 3590);
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 10, 3, 1);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.com", T0 + 10, 3, 1);

  OK(obspam_remove(e, OBSPAM_MAILBOX, "info@example.com"));
  OK(obspam_add(e, OBSPAM_MAILBOX, "info@example.com", NULL));
  obspam_stats s = STATS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 10);
  cr_assert_eq(s.count, 0);
  cr_assert_eq(s.refused, 0);
  cr_assert_eq(s.refused_total, 0);
  cr_assert_eq(s.last_refused, 0);
  /* The new mailbox inherits again (its old limit of 3 is gone). */
  cr_assert_eq(s.limit, OBSPAM_UNLIMITED);
  cr_assert_eq(s.sending, 1);
  /* The domain keeps its counters. */
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.com", T0 + 10, 3, 1);

  /* Same for a domain and a subscription. */
  OK(obspam_remove(e, OBSPAM_DOMAIN, "example.com"));
  OK(obspam_add(e, OBSPAM_DOMAIN, "example.com", "acme"));
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.com", T0 + 10, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 10, 3, 1);
  OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "acme"));
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "acme", "basic"));
  s = STATS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 10);
  cr_assert_eq(s.count, 0);
  cr_assert_eq(s.refused, 0);
  cr_assert_eq(s.refused_total, 0);
  cr_assert_eq(s.last_refused, 0);
}

/* ---- set_limit ----------------------------------------------------------- */

static const char *name_of_kind(int kind) {
  switch (kind) {
  case OBSPAM_SERVER:
    return NULL;
  case OBSPAM_PLAN:
    return "basic";
  case OBSPAM_SUBSCRIPTION:
    return "acme";
  case OBSPAM_DOMAIN:
    return "example.com";
  default:
    return "info@example.com";
  }
}

/* Which (kind, which) combinations exist, and that each one sets the right
   limit: with everything else inheriting, setting (kind, which) to 42
   makes exactly the effective limit `which` of info@example.com's chain
   42. */
Test(tree, set_limit_kind_which_matrix) {
  static const int kinds[] = {OBSPAM_SERVER, OBSPAM_PLAN, OBSPAM_SUBSCRIPTION,
                              OBSPAM_DOMAIN, OBSPAM_MAILBOX};
  static const int whichs[] = {OBSPAM_SUBSCRIPTION, OBSPAM_DOMAIN,
                               OBSPAM_MAILBOX};
  /* allowed[kind index][which index] */
  static const int allowed[5][3] = {
      {1, 1, 1}, /* server */
      {1, 1, 1}, /* plan */
      {1, 1, 1}, /* subscription */
      {0, 1, 1}, /* domain */
      {0, 0, 1}, /* mailbox */
  };
  for (int k = 0; k < 5; k++) {
    for (int w = 0; w < 3; w++) {
      teardown();
      setup();
      const char *name = name_of_kind(kinds[k]);
      if (!allowed[k][w]) {
        FAILS(obspam_set_limit(e, kinds[k], name, whichs[w], 42),
              OBSPAM_EINVAL);
        continue;
      }
      OK(obspam_set_limit(e, kinds[k], name, whichs[w], 42));
      EXPECT_EFF(e, OBSPAM_SUBSCRIPTION, "acme",
                 whichs[w] == OBSPAM_SUBSCRIPTION ? 42 : OBSPAM_UNLIMITED);
      EXPECT_EFF(e, OBSPAM_DOMAIN, "example.com",
                 whichs[w] == OBSPAM_DOMAIN ? 42 : OBSPAM_UNLIMITED);
      EXPECT_EFF(e, OBSPAM_MAILBOX, "info@example.com",
                 whichs[w] == OBSPAM_MAILBOX ? 42 : OBSPAM_UNLIMITED);
      /* solo is on no plan: only the server default reaches it. */
      int reaches_solo = kinds[k] == OBSPAM_SERVER;
      EXPECT_EFF(
          e, OBSPAM_MAILBOX, "x@solo.org",
          reaches_solo && whichs[w] == OBSPAM_MAILBOX ? 42 : OBSPAM_UNLIMITED);
      EXPECT_EFF(e, OBSPAM_DOMAIN, "solo.org",
                 reaches_solo && whichs[w] == OBSPAM_DOMAIN ? 42
                                                            : OBSPAM_UNLIMITED);
      /* example.net is acme's too: only a domain-level value misses it. */
      int reaches_net = kinds[k] != OBSPAM_DOMAIN && kinds[k] != OBSPAM_MAILBOX;
      EXPECT_EFF(e, OBSPAM_MAILBOX, "bob@example.net",
                 reaches_net && whichs[w] == OBSPAM_MAILBOX ? 42
                                                            : OBSPAM_UNLIMITED);
    }
  }
}

Test(tree, set_limit_bad_which_and_kind) {
  static const int bad_which[] = {
      OBSPAM_SERVER, OBSPAM_PLAN, OBSPAM_SCRIPT, -1, 6, 99};
  static const int kinds[] = {OBSPAM_SERVER, OBSPAM_PLAN, OBSPAM_SUBSCRIPTION,
                              OBSPAM_DOMAIN, OBSPAM_MAILBOX};
  for (size_t k = 0; k < 5; k++)
    for (size_t w = 0; w < sizeof bad_which / sizeof bad_which[0]; w++)
      FAILS(obspam_set_limit(e, kinds[k], name_of_kind(kinds[k]), bad_which[w],
                             5),
            OBSPAM_EINVAL);
  FAILS(obspam_set_limit(e, OBSPAM_SCRIPT, "acme", OBSPAM_MAILBOX, 5),
        OBSPAM_EINVAL);
  FAILS(obspam_set_limit(e, 99, "acme", OBSPAM_MAILBOX, 5), OBSPAM_EINVAL);
  FAILS(obspam_set_limit(e, -1, "acme", OBSPAM_MAILBOX, 5), OBSPAM_EINVAL);
}

Test(tree, set_limit_bad_values) {
  OK(obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_MAILBOX, 7));
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "acme", OBSPAM_SUBSCRIPTION, 8));
  static const int64_t bad[] = {-3, -4, -100, INT64_MIN, INT32_MIN};
  static const int kinds[] = {OBSPAM_SERVER, OBSPAM_PLAN, OBSPAM_SUBSCRIPTION,
                              OBSPAM_DOMAIN, OBSPAM_MAILBOX};
  for (size_t k = 0; k < 5; k++)
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
      FAILS(obspam_set_limit(e, kinds[k], name_of_kind(kinds[k]),
                             OBSPAM_MAILBOX, bad[i]),
            OBSPAM_EINVAL);
  /* INHERIT is no server default. */
  FAILS(
      obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_MAILBOX, OBSPAM_INHERIT),
      OBSPAM_EINVAL);
  FAILS(obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_DOMAIN, OBSPAM_INHERIT),
        OBSPAM_EINVAL);
  FAILS(obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_SUBSCRIPTION,
                         OBSPAM_INHERIT),
        OBSPAM_EINVAL);
  EXPECT_EFF(e, OBSPAM_MAILBOX, "info@example.com", 7);
  EXPECT_EFF(e, OBSPAM_SUBSCRIPTION, "acme", 8);
  /* The server takes no name; the others need an existing one. */
  FAILS(obspam_set_limit(e, OBSPAM_SERVER, "server", OBSPAM_MAILBOX, 5),
        OBSPAM_EINVAL);
  FAILS(obspam_set_limit(e, OBSPAM_SERVER, "", OBSPAM_MAILBOX, 5),
        OBSPAM_EINVAL);
  for (size_t k = 1; k < 5; k++)
    FAILS(obspam_set_limit(e, kinds[k], NULL, OBSPAM_MAILBOX, 5),
          OBSPAM_EINVAL);
  FAILS(obspam_set_limit(e, OBSPAM_PLAN, "silver", OBSPAM_MAILBOX, 5),
        OBSPAM_ENOTFOUND);
  FAILS(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "ghost", OBSPAM_MAILBOX, 5),
        OBSPAM_ENOTFOUND);
  FAILS(obspam_set_limit(e, OBSPAM_DOMAIN, "ghost.com", OBSPAM_MAILBOX, 5),
        OBSPAM_ENOTFOUND);
  FAILS(obspam_set_limit(e, OBSPAM_MAILBOX, "ghost@example.com", OBSPAM_MAILBOX,
                         5),
        OBSPAM_ENOTFOUND);
}

Test(tree, set_limit_good_values) {
  static const int64_t good[] = {
      0, 1, 1000000, INT32_MAX, (int64_t)1 << 40, OBSPAM_UNLIMITED};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    OK(obspam_set_limit(e, OBSPAM_MAILBOX, "info@example.com", OBSPAM_MAILBOX,
                        good[i]));
    EXPECT_EFF(e, OBSPAM_MAILBOX, "info@example.com", good[i]);
    OK(obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_DOMAIN, good[i]));
    EXPECT_EFF(e, OBSPAM_DOMAIN, "example.com", good[i]);
  }
}

/* ---- effective_limit ----------------------------------------------------- */

Test(tree, effective_limit_errors) {
  int64_t v = 12345;
  RC(obspam_effective_limit(e, OBSPAM_PLAN, "basic", &v), OBSPAM_EINVAL);
  RC(obspam_effective_limit(e, OBSPAM_SERVER, NULL, &v), OBSPAM_EINVAL);
  RC(obspam_effective_limit(e, OBSPAM_SCRIPT, "acme", &v), OBSPAM_EINVAL);
  RC(obspam_effective_limit(e, OBSPAM_SUBSCRIPTION, NULL, &v), OBSPAM_EINVAL);
  RC(obspam_effective_limit(e, OBSPAM_SUBSCRIPTION, "acme", NULL),
     OBSPAM_EINVAL);
  RC(obspam_effective_limit(e, OBSPAM_SUBSCRIPTION, "ghost", &v),
     OBSPAM_ENOTFOUND);
  RC(obspam_effective_limit(e, OBSPAM_DOMAIN, "ghost.com", &v),
     OBSPAM_ENOTFOUND);
  RC(obspam_effective_limit(e, OBSPAM_MAILBOX, "ghost@example.com", &v),
     OBSPAM_ENOTFOUND);
  cr_assert_eq(v, 12345, "effective_limit wrote its output on failure");
}

/* The levels of the chains, the server first: each level's kind is its
   index, and the chain of the limit of kind k is levels 0 to k, whose
   object is level k. */
static const tu_object chain[] = {{OBSPAM_SERVER, NULL},
                                  {OBSPAM_PLAN, "basic"},
                                  {OBSPAM_SUBSCRIPTION, "acme"},
                                  {OBSPAM_DOMAIN, "example.com"},
                                  {OBSPAM_MAILBOX, "info@example.com"}};

/* Sets the limit of kind k at each level of its chain, step at the
   server, then 2 step, 3 step...: the object has its own, the largest. */
static void set_chain(int k, int64_t step) {
  for (int i = 0; i <= k; i++)
    OK(obspam_set_limit(e, chain[i].kind, chain[i].name, k, step * (i + 1)));
  EXPECT_EFF(e, k, chain[k].name, step * (k + 1));
}

/* Makes each level of set_chain's inherit in turn, from the object up:
   the object gets the value of the level above each time; then the
   server's 0 is the object's. None of this touched the other two chains:
   their objects are still unlimited. */
static void inherit_chain(int k, int64_t step) {
  for (int i = k; i >= 1; i--) {
    OK(obspam_set_limit(e, chain[i].kind, chain[i].name, k, OBSPAM_INHERIT));
    EXPECT_EFF(e, k, chain[k].name, step * i);
  }
  OK(obspam_set_limit(e, OBSPAM_SERVER, NULL, k, 0));
  EXPECT_EFF(e, k, chain[k].name, 0);
  for (int other = OBSPAM_SUBSCRIPTION; other <= OBSPAM_MAILBOX; other++)
    if (other != k)
      EXPECT_EFF(e, other, chain[other].name, OBSPAM_UNLIMITED);
}

/* Sets the limit of kind k of level (a kind and name) to unlimited: obj,
   under that level, follows it; other, not under it, keeps the server's
   0. */
static void unlimited_at(int level, const char *name, int k, const char *obj,
                         const char *other) {
  OK(obspam_set_limit(e, level, name, k, OBSPAM_UNLIMITED));
  EXPECT_EFF(e, k, obj, OBSPAM_UNLIMITED);
  EXPECT_EFF(e, k, other, 0);
}

/* The mailbox chain: own ?? domain.mailbox ?? subscription.mailbox ??
   plan.mailbox ?? server.mailbox. Each level shadows the next; custom
   values are larger than the defaults above them. The other two chains
   never move. */
Test(tree, mailbox_chain) {
  set_chain(OBSPAM_MAILBOX, 100);
  EXPECT_EFF(e, OBSPAM_MAILBOX, "sales@example.com", 400);
  EXPECT_EFF(e, OBSPAM_MAILBOX, "bob@example.net", 300);
  EXPECT_EFF(e, OBSPAM_MAILBOX, "x@solo.org", 100);
  inherit_chain(OBSPAM_MAILBOX, 100);
  OK(obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_MAILBOX,
                      OBSPAM_UNLIMITED));
  EXPECT_EFF(e, OBSPAM_MAILBOX, "info@example.com", OBSPAM_UNLIMITED);
  /* 0 and unlimited shadow too. */
  OK(obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_MAILBOX, 5));
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "acme", OBSPAM_MAILBOX, 0));
  EXPECT_EFF(e, OBSPAM_MAILBOX, "info@example.com", 0);
  unlimited_at(OBSPAM_DOMAIN, "example.com", OBSPAM_MAILBOX, "info@example.com",
               "bob@example.net");
  EXPECT_EFF(e, OBSPAM_MAILBOX, "x@solo.org", 5);
}

/* The domain chain: own ?? subscription.domain ?? plan.domain ??
   server.domain. */
Test(tree, domain_chain) {
  set_chain(OBSPAM_DOMAIN, 1000);
  EXPECT_EFF(e, OBSPAM_DOMAIN, "example.net", 3000);
  EXPECT_EFF(e, OBSPAM_DOMAIN, "solo.org", 1000);
  inherit_chain(OBSPAM_DOMAIN, 1000);
  /* A domain's mailbox default is not its own limit. */
  OK(obspam_set_limit(e, OBSPAM_DOMAIN, "example.com", OBSPAM_MAILBOX, 9));
  EXPECT_EFF(e, OBSPAM_DOMAIN, "example.com", 0);
  unlimited_at(OBSPAM_DOMAIN, "example.com", OBSPAM_DOMAIN, "example.com",
               "example.net");
}

/* The subscription chain: own ?? plan.subscription ?? server.subscription. */
Test(tree, subscription_chain) {
  set_chain(OBSPAM_SUBSCRIPTION, 10000);
  EXPECT_EFF(e, OBSPAM_SUBSCRIPTION, "solo", 10000);
  inherit_chain(OBSPAM_SUBSCRIPTION, 10000);
  /* A subscription's domain and mailbox defaults are not its own limit. */
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "acme", OBSPAM_DOMAIN, 5));
  OK(obspam_set_limit(e, OBSPAM_SUBSCRIPTION, "acme", OBSPAM_MAILBOX, 6));
  EXPECT_EFF(e, OBSPAM_SUBSCRIPTION, "acme", 0);
  unlimited_at(OBSPAM_PLAN, "basic", OBSPAM_SUBSCRIPTION, "acme", "solo");
}

/* A subscription added to a plan sees the plan's values; the limits follow
   when it is removed and added to another plan. */
Test(tree, chain_follows_plan) {
  OK(obspam_set_limit(e, OBSPAM_PLAN, "basic", OBSPAM_MAILBOX, 50));
  OK(obspam_set_limit(e, OBSPAM_PLAN, "gold", OBSPAM_MAILBOX, 500));
  OK(obspam_set_limit(e, OBSPAM_PLAN, "gold", OBSPAM_DOMAIN, 5000));
  OK(obspam_set_limit(e, OBSPAM_PLAN, "gold", OBSPAM_SUBSCRIPTION, 50000));
  EXPECT_EFF(e, OBSPAM_MAILBOX, "info@example.com", 50);
  OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "acme"));
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "acme", "gold"));
  OK(obspam_add(e, OBSPAM_DOMAIN, "example.com", "acme"));
  OK(obspam_add(e, OBSPAM_MAILBOX, "info@example.com", NULL));
  EXPECT_EFF(e, OBSPAM_MAILBOX, "info@example.com", 500);
  EXPECT_EFF(e, OBSPAM_DOMAIN, "example.com", 5000);
  EXPECT_EFF(e, OBSPAM_SUBSCRIPTION, "acme", 50000);
}

/* ---- uid, scripts, contact ------------------------------------------------
 */

Test(tree, set_uid) {
  EXPECT_UID(1001, "acme", 0);
  /* Owned by acme: solo cannot have it; acme may set it again. */
  FAILS(obspam_set_uid(e, "solo", 1001), OBSPAM_EEXIST);
  OK(obspam_set_uid(e, "acme", 1001));
  /* Bad values, bad subscriptions. */
  FAILS(obspam_set_uid(e, "acme", -2), OBSPAM_EINVAL);
  FAILS(obspam_set_uid(e, "acme", -1000), OBSPAM_EINVAL);
  FAILS(obspam_set_uid(e, "acme", INT64_MIN), OBSPAM_EINVAL);
  FAILS(obspam_set_uid(e, "ghost", 3000), OBSPAM_ENOTFOUND);
  FAILS(obspam_set_uid(e, NULL, 3000), OBSPAM_EINVAL);
  FAILS(obspam_set_uid(e, "", 3000), OBSPAM_EINVAL);
  /* -1 clears: the uid is unknown, and free for solo. */
  OK(obspam_set_uid(e, "acme", -1));
  EXPECT_UID(1001, NULL, 0);
  OK(obspam_set_uid(e, "solo", 1001));
  EXPECT_UID(1001, "solo", 0);
  /* solo's old uid 1002 was replaced, so it is free now. */
  EXPECT_UID(1002, NULL, 0);
  OK(obspam_set_uid(e, "acme", 1002));
  EXPECT_UID(1002, "acme", 1);
  /* uid 0 is a valid uid. */
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "root", NULL));
  OK(obspam_set_uid(e, "root", 0));
  EXPECT_UID(0, "root", 0);
  /* Case-insensitive subscription name. */
  OK(obspam_set_uid(e, "ROOT", 77));
  EXPECT_UID(77, "root", 1);
}

Test(tree, uid_freed_on_removal) {
  OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "acme"));
  EXPECT_UID(1001, NULL, 0);
  OK(obspam_set_uid(e, "solo", 1001));
  EXPECT_UID(1001, "solo", 0);
  /* A re-added subscription has no uid. */
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "acme", NULL));
  OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "solo"));
  EXPECT_UID(1001, NULL, 0);
  EXPECT_UID(1002, NULL, 0);
}

Test(tree, set_scripts_allowed_values) {
  OK(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, 0));
  OK(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, 1));
  OK(obspam_set_scripts_allowed(e, OBSPAM_PLAN, "basic", 0));
  OK(obspam_set_scripts_allowed(e, OBSPAM_PLAN, "basic", 1));
  OK(obspam_set_scripts_allowed(e, OBSPAM_PLAN, "basic", OBSPAM_INHERIT));
  OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "acme", 0));
  OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "acme", 1));
  OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "acme",
                                OBSPAM_INHERIT));
  FAILS(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, OBSPAM_INHERIT),
        OBSPAM_EINVAL);
  static const int bad[] = {2, -1, -3, 100, INT_MIN, INT_MAX};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    FAILS(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, bad[i]),
          OBSPAM_EINVAL);
    FAILS(obspam_set_scripts_allowed(e, OBSPAM_PLAN, "basic", bad[i]),
          OBSPAM_EINVAL);
    FAILS(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "acme", bad[i]),
          OBSPAM_EINVAL);
  }
  FAILS(obspam_set_scripts_allowed(e, OBSPAM_DOMAIN, "example.com", 0),
        OBSPAM_EINVAL);
  FAILS(obspam_set_scripts_allowed(e, OBSPAM_MAILBOX, "info@example.com", 0),
        OBSPAM_EINVAL);
  FAILS(obspam_set_scripts_allowed(e, OBSPAM_SCRIPT, "acme", 0), OBSPAM_EINVAL);
  FAILS(obspam_set_scripts_allowed(e, 99, "acme", 0), OBSPAM_EINVAL);
  FAILS(obspam_set_scripts_allowed(e, OBSPAM_SERVER, "server", 0),
        OBSPAM_EINVAL);
  FAILS(obspam_set_scripts_allowed(e, OBSPAM_PLAN, NULL, 0), OBSPAM_EINVAL);
  FAILS(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, NULL, 0),
        OBSPAM_EINVAL);
  FAILS(obspam_set_scripts_allowed(e, OBSPAM_PLAN, "silver", 0),
        OBSPAM_ENOTFOUND);
  FAILS(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "ghost", 0),
        OBSPAM_ENOTFOUND);
  /* After all the failures scripts are still allowed for acme. */
  EXPECT_UID(1001, "acme", 0);
}

/* A failed set_scripts_allowed keeps the previous value in force. */
Test(tree, failed_scripts_allowed_keeps_value) {
  OK(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "acme", 0));
  RC(obspam_set_scripts_allowed(e, OBSPAM_SUBSCRIPTION, "acme", 2),
     OBSPAM_EINVAL);
  obspam_verdict v = SCRIPT(e, 1001, NULL, 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "acme",
                 OBSPAM_UNLIMITED, 0, -1);
  OK(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, 0));
  RC(obspam_set_scripts_allowed(e, OBSPAM_SERVER, NULL, OBSPAM_INHERIT),
     OBSPAM_EINVAL);
  v = SCRIPT(e, 1002, NULL, 1, T0);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, "solo",
                 OBSPAM_UNLIMITED, 0, -1);
}

Test(tree, set_contact) {
  char buf[400];
  OK(obspam_set_contact(e, "acme", "ops@acme.example"));
  OK(obspam_set_contact(e, "ACME", "Ops@Acme.Example"));
  OK(obspam_set_contact(e, "acme", NULL));
  OK(obspam_set_contact(e, "acme", ""));
  OK(obspam_set_contact(e, "solo", "x@solo.org"));
  /* 320 bytes is fine, 321 is not. */
  repeat(buf, 'c', 308);
  strcat(buf, "@example.com");
  OK(obspam_set_contact(e, "acme", buf));
  repeat(buf, 'c', 309);
  strcat(buf, "@example.com");
  FAILS(obspam_set_contact(e, "acme", buf), OBSPAM_EINVAL);
  static const char *const bad[] = {
      "noat",      "a@b@c", "a b@c.d", " a@c.d", "a@c.d ", "a\t@c.d",
      "a\x01@c.d", "@c.d",  "a@",      "@",      "a@@c.d", "a\x7f@c.d",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    FAILS(obspam_set_contact(e, "acme", bad[i]), OBSPAM_EINVAL);
  FAILS(obspam_set_contact(e, "ghost", "a@b.c"), OBSPAM_ENOTFOUND);
  FAILS(obspam_set_contact(e, NULL, "a@b.c"), OBSPAM_EINVAL);
  FAILS(obspam_set_contact(e, "", "a@b.c"), OBSPAM_EINVAL);
  /* A plan name is not a subscription. */
  FAILS(obspam_set_contact(e, "basic", "a@b.c"), OBSPAM_ENOTFOUND);
}

/* ---- stats_get arguments --------------------------------------------------
 */

Test(tree, stats_get_errors) {
  obspam_stats s = OBSPAM_STATS_INIT;
  RC(obspam_stats_get(e, OBSPAM_PLAN, "basic", T0, &s), OBSPAM_EINVAL);
  RC(obspam_stats_get(e, OBSPAM_SERVER, NULL, T0, &s), OBSPAM_EINVAL);
  RC(obspam_stats_get(e, OBSPAM_SCRIPT, "x", T0, &s), OBSPAM_EINVAL);
  RC(obspam_stats_get(e, OBSPAM_SUBSCRIPTION, NULL, T0, &s), OBSPAM_EINVAL);
  RC(obspam_stats_get(e, OBSPAM_SUBSCRIPTION, "ghost", T0, &s),
     OBSPAM_ENOTFOUND);
  RC(obspam_stats_get(e, OBSPAM_DOMAIN, "ghost.com", T0, &s), OBSPAM_ENOTFOUND);
  RC(obspam_stats_get(e, OBSPAM_MAILBOX, "ghost@example.com", T0, &s),
     OBSPAM_ENOTFOUND);
  s = STATS(e, OBSPAM_MAILBOX, "INFO@example.com", T0);
  cr_assert_eq(s.limit, OBSPAM_UNLIMITED);
  cr_assert_eq(s.sending, 1);
  cr_assert_eq(s.count, 0);
  cr_assert_eq(s.refused, 0);
  cr_assert_eq(s.refused_total, 0);
  cr_assert_eq(s.last_refused, 0);
}

/* ---- windows and the recipients cap ------------------------------------ */

/* A call that fails with code want and the message msg. */
#define ERRMSG(expr, want, msg)                                                \
  do {                                                                         \
    RC(expr, want);                                                            \
    cr_assert_str_eq(obspam_engine_errmsg(e), (msg), "line %d", __LINE__);     \
  } while (0)

#define SETW(kind, name, which, window, v)                                     \
  OK(obspam_set_window_limit(e, (kind), (name), (which), (window), (v)))

/* A new engine limits no window: every one is unlimited, as is the cap. */
Test(tree, windows_unlimited_by_default) {
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", -1, -1, -1);
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "example.com", -1, -1, -1);
  EXPECT_WINDOWS(e, OBSPAM_SUBSCRIPTION, "acme", -1, -1, -1);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "info@example.com", OBSPAM_UNLIMITED);
  EXPECT_CAP(e, OBSPAM_DOMAIN, "example.com", OBSPAM_UNLIMITED);
  EXPECT_CAP(e, OBSPAM_SUBSCRIPTION, "acme", OBSPAM_UNLIMITED);
}

/* Each window is inherited on its own, through server, plan, subscription,
   domain and mailbox: a window set at one level does not stop the walk
   of another window. */
Test(tree, windows_inherit_each_on_its_own) {
  SETW(OBSPAM_SERVER, NULL, OBSPAM_MAILBOX, OBSPAM_WINDOW_MINUTE, 1);
  SETW(OBSPAM_SERVER, NULL, OBSPAM_MAILBOX, OBSPAM_WINDOW_HOUR, 2);
  SETW(OBSPAM_SERVER, NULL, OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY, 3);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", 1, 2, 3);
  SETW(OBSPAM_PLAN, "basic", OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY, 30);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", 1, 2, 30);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "x@solo.org", 1, 2, 3); /* no plan */
  SETW(OBSPAM_SUBSCRIPTION, "acme", OBSPAM_MAILBOX, OBSPAM_WINDOW_MINUTE, 10);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", 10, 2, 30);
  SETW(OBSPAM_DOMAIN, "example.com", OBSPAM_MAILBOX, OBSPAM_WINDOW_HOUR, 20);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", 10, 20, 30);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "bob@example.net", 10, 2, 30);
  SETW(OBSPAM_MAILBOX, "info@example.com", OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY,
       OBSPAM_UNLIMITED);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", 10, 20, -1);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "sales@example.com", 10, 20, 30);
  /* The same value as the hour's own, through obspam_set_limit. */
  OK(obspam_set_limit(e, OBSPAM_MAILBOX, "info@example.com", OBSPAM_MAILBOX,
                      5));
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", 10, 5, -1);
  /* Back to inherit, one window after another. */
  SETW(OBSPAM_MAILBOX, "info@example.com", OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY,
       OBSPAM_INHERIT);
  SETW(OBSPAM_MAILBOX, "info@example.com", OBSPAM_MAILBOX, OBSPAM_WINDOW_HOUR,
       OBSPAM_INHERIT);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", 10, 20, 30);
  SETW(OBSPAM_SUBSCRIPTION, "acme", OBSPAM_MAILBOX, OBSPAM_WINDOW_MINUTE,
       OBSPAM_INHERIT);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", 1, 20, 30);
  SETW(OBSPAM_PLAN, "basic", OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY, OBSPAM_INHERIT);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", 1, 20, 3);
  /* The domain and subscription limits never moved. */
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "example.com", -1, -1, -1);
  EXPECT_WINDOWS(e, OBSPAM_SUBSCRIPTION, "acme", -1, -1, -1);
}

/* Every limit kind has its three windows: the domain and subscription
   chains, with 0 (may not send) shadowing as a count does. */
Test(tree, windows_of_every_limit_kind) {
  SETW(OBSPAM_SERVER, NULL, OBSPAM_DOMAIN, OBSPAM_WINDOW_MINUTE, 100);
  SETW(OBSPAM_PLAN, "basic", OBSPAM_DOMAIN, OBSPAM_WINDOW_DAY, 0);
  SETW(OBSPAM_SUBSCRIPTION, "acme", OBSPAM_DOMAIN, OBSPAM_WINDOW_MINUTE, 50);
  SETW(OBSPAM_DOMAIN, "example.com", OBSPAM_DOMAIN, OBSPAM_WINDOW_DAY, 5000);
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "example.com", 50, -1, 5000);
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "example.net", 50, -1, 0);
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "solo.org", 100, -1, -1);
  SETW(OBSPAM_SERVER, NULL, OBSPAM_SUBSCRIPTION, OBSPAM_WINDOW_DAY, 9);
  SETW(OBSPAM_PLAN, "basic", OBSPAM_SUBSCRIPTION, OBSPAM_WINDOW_MINUTE, 7);
  SETW(OBSPAM_SUBSCRIPTION, "solo", OBSPAM_SUBSCRIPTION, OBSPAM_WINDOW_MINUTE,
       OBSPAM_UNLIMITED);
  EXPECT_WINDOWS(e, OBSPAM_SUBSCRIPTION, "acme", 7, -1, 9);
  EXPECT_WINDOWS(e, OBSPAM_SUBSCRIPTION, "solo", -1, -1, 9);
  /* The mailbox chain was not touched by any of it. */
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", -1, -1, -1);
}

/* The cap is inherited as a limit is: own, else the nearest ancestor's,
   else the server's; every level may set it. */
Test(tree, cap_inherits_down_the_tree) {
  OK(obspam_set_max_recipients(e, OBSPAM_SERVER, NULL, 100));
  EXPECT_CAP(e, OBSPAM_MAILBOX, "info@example.com", 100);
  EXPECT_CAP(e, OBSPAM_SUBSCRIPTION, "solo", 100);
  OK(obspam_set_max_recipients(e, OBSPAM_PLAN, "basic", 50));
  EXPECT_CAP(e, OBSPAM_MAILBOX, "info@example.com", 50);
  EXPECT_CAP(e, OBSPAM_SUBSCRIPTION, "acme", 50);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "x@solo.org", 100);
  OK(obspam_set_max_recipients(e, OBSPAM_SUBSCRIPTION, "acme", 40));
  OK(obspam_set_max_recipients(e, OBSPAM_DOMAIN, "example.com", 30));
  OK(obspam_set_max_recipients(e, OBSPAM_MAILBOX, "info@example.com", 0));
  EXPECT_CAP(e, OBSPAM_MAILBOX, "info@example.com", 0);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "sales@example.com", 30);
  EXPECT_CAP(e, OBSPAM_DOMAIN, "example.com", 30);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "bob@example.net", 40);
  EXPECT_CAP(e, OBSPAM_DOMAIN, "example.net", 40);
  EXPECT_CAP(e, OBSPAM_SUBSCRIPTION, "acme", 40);
  OK(obspam_set_max_recipients(e, OBSPAM_DOMAIN, "example.com",
                               OBSPAM_UNLIMITED));
  EXPECT_CAP(e, OBSPAM_MAILBOX, "sales@example.com", OBSPAM_UNLIMITED);
  OK(obspam_set_max_recipients(e, OBSPAM_DOMAIN, "example.com",
                               OBSPAM_INHERIT));
  OK(obspam_set_max_recipients(e, OBSPAM_SUBSCRIPTION, "acme", OBSPAM_INHERIT));
  EXPECT_CAP(e, OBSPAM_MAILBOX, "sales@example.com", 50);
  OK(obspam_set_max_recipients(e, OBSPAM_SERVER, NULL, OBSPAM_UNLIMITED));
  EXPECT_CAP(e, OBSPAM_MAILBOX, "x@solo.org", OBSPAM_UNLIMITED);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "info@example.com", 0);
  /* The limits did not move. */
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", -1, -1, -1);
}

/* An implicit mailbox inherits every window and the cap from its domain. */
Test(tree, implicit_mailbox_windows_and_cap) {
  SETW(OBSPAM_DOMAIN, "example.com", OBSPAM_MAILBOX, OBSPAM_WINDOW_MINUTE, 4);
  SETW(OBSPAM_SUBSCRIPTION, "acme", OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY, 40);
  OK(obspam_set_max_recipients(e, OBSPAM_DOMAIN, "example.com", 3));
  obspam_verdict v = SASL(e, "new@example.com", 1, T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "new@example.com",
                 OBSPAM_UNLIMITED, 0, 0);
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "new@example.com", 4, -1, 40);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "new@example.com", 3);
  /* Setting its own values needs it declared. */
  FAILS(obspam_set_window_limit(e, OBSPAM_MAILBOX, "new@example.com",
                                OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY, 1),
        OBSPAM_ENOTFOUND);
  FAILS(obspam_set_max_recipients(e, OBSPAM_MAILBOX, "new@example.com", 1),
        OBSPAM_ENOTFOUND);
}

/* A removed object's values go with it; added again, it inherits. */
Test(tree, readded_object_inherits_again) {
  SETW(OBSPAM_MAILBOX, "info@example.com", OBSPAM_MAILBOX, OBSPAM_WINDOW_MINUTE,
       6);
  OK(obspam_set_max_recipients(e, OBSPAM_MAILBOX, "info@example.com", 2));
  OK(obspam_remove(e, OBSPAM_MAILBOX, "info@example.com"));
  OK(obspam_add(e, OBSPAM_MAILBOX, "info@example.com", NULL));
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", -1, -1, -1);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "info@example.com", OBSPAM_UNLIMITED);
  SETW(OBSPAM_DOMAIN, "example.com", OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY, 8);
  OK(obspam_remove(e, OBSPAM_SUBSCRIPTION, "acme"));
  OK(obspam_add(e, OBSPAM_SUBSCRIPTION, "acme", "basic"));
  OK(obspam_add(e, OBSPAM_DOMAIN, "example.com", "acme"));
  OK(obspam_add(e, OBSPAM_MAILBOX, "info@example.com", NULL));
  EXPECT_WINDOWS(e, OBSPAM_MAILBOX, "info@example.com", -1, -1, -1);
}

/* Which kinds may set which window limit is set_limit's matrix, for every
   window; the errors change nothing and leave a message. */
Test(tree, set_window_limit_errors) {
  static const int64_t bad_windows[] = {0,    1,     59,  61,
                                        3599, 86401, -60, INT64_MAX};
  for (size_t i = 0; i < sizeof bad_windows / sizeof bad_windows[0]; i++) {
    FAILS(obspam_set_window_limit(e, OBSPAM_MAILBOX, "info@example.com",
                                  OBSPAM_MAILBOX, bad_windows[i], 5),
          OBSPAM_EINVAL);
    int64_t v = 12345;
    RC(obspam_effective_window_limit(e, OBSPAM_MAILBOX, "info@example.com",
                                     bad_windows[i], &v),
       OBSPAM_EINVAL);
    cr_assert_eq(v, 12345);
  }
  /* Kinds that may not set a limit, an object or a value that is not
     there, each with the code it gets. */
  static const struct {
    int kind;
    const char *name;
    int which;
    int64_t v;
    int rc;
  } bad_sets[] = {
      {OBSPAM_DOMAIN, "example.com", OBSPAM_SUBSCRIPTION, 5, OBSPAM_EINVAL},
      {OBSPAM_MAILBOX, "info@example.com", OBSPAM_DOMAIN, 5, OBSPAM_EINVAL},
      {OBSPAM_MAILBOX, "info@example.com", OBSPAM_SCRIPT, 5, OBSPAM_EINVAL},
      {OBSPAM_SCRIPT, "acme", OBSPAM_MAILBOX, 5, OBSPAM_EINVAL},
      {OBSPAM_SERVER, NULL, OBSPAM_MAILBOX, OBSPAM_INHERIT, OBSPAM_EINVAL},
      {OBSPAM_MAILBOX, "info@example.com", OBSPAM_MAILBOX, -3, OBSPAM_EINVAL},
      {OBSPAM_SERVER, "server", OBSPAM_MAILBOX, 5, OBSPAM_EINVAL},
      {OBSPAM_MAILBOX, "ghost@example.com", OBSPAM_MAILBOX, 5,
       OBSPAM_ENOTFOUND},
      {OBSPAM_PLAN, "silver", OBSPAM_MAILBOX, 5, OBSPAM_ENOTFOUND},
      {OBSPAM_MAILBOX, "bad name", OBSPAM_MAILBOX, 5, OBSPAM_EINVAL}};
  static const int64_t windows[] = {OBSPAM_WINDOW_MINUTE, OBSPAM_WINDOW_DAY};
  for (int w = 0; w < 2; w++)
    for (size_t i = 0; i < sizeof bad_sets / sizeof bad_sets[0]; i++)
      FAILS(obspam_set_window_limit(e, bad_sets[i].kind, bad_sets[i].name,
                                    bad_sets[i].which, windows[w],
                                    bad_sets[i].v),
            bad_sets[i].rc);
  /* The messages. */
  ERRMSG(obspam_set_window_limit(e, OBSPAM_MAILBOX, "info@example.com",
                                 OBSPAM_MAILBOX, 61, 5),
         OBSPAM_EINVAL,
         "set_window_limit: 61 is not a window (60, 3600 or 86400 seconds)");
  int64_t out = 12345;
  ERRMSG(obspam_effective_window_limit(e, OBSPAM_MAILBOX, "info@example.com",
                                       INT64_MAX, &out),
         OBSPAM_EINVAL,
         "effective_window_limit: 9223372036854775807 is not a window (60, "
         "3600 or 86400 seconds)");
  ERRMSG(obspam_set_window_limit(e, OBSPAM_DOMAIN, "example.com",
                                 OBSPAM_SUBSCRIPTION, OBSPAM_WINDOW_DAY, 5),
         OBSPAM_EINVAL, "set_window_limit: a domain has no subscription limit");
  ERRMSG(obspam_set_window_limit(e, OBSPAM_SERVER, NULL, OBSPAM_MAILBOX,
                                 OBSPAM_WINDOW_MINUTE, OBSPAM_INHERIT),
         OBSPAM_EINVAL, "set_window_limit: -2 is not a count or unlimited");
  ERRMSG(obspam_set_window_limit(e, OBSPAM_MAILBOX, "info@example.com",
                                 OBSPAM_MAILBOX, OBSPAM_WINDOW_MINUTE, -3),
         OBSPAM_EINVAL,
         "set_window_limit: -3 is not a count, unlimited or inherit");
  ERRMSG(obspam_set_window_limit(e, OBSPAM_MAILBOX, "ghost@example.com",
                                 OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY, 1),
         OBSPAM_ENOTFOUND, "set_window_limit: no mailbox 'ghost@example.com'");
  RC(obspam_set_window_limit(NULL, OBSPAM_SERVER, NULL, OBSPAM_MAILBOX,
                             OBSPAM_WINDOW_DAY, 5),
     OBSPAM_EINVAL);
  /* The same matrix as set_limit's is allowed, in every window. */
  SETW(OBSPAM_DOMAIN, "example.com", OBSPAM_DOMAIN, OBSPAM_WINDOW_DAY, 5);
  SETW(OBSPAM_PLAN, "basic", OBSPAM_SUBSCRIPTION, OBSPAM_WINDOW_MINUTE, 5);
  EXPECT_WINDOWS(e, OBSPAM_DOMAIN, "example.com", -1, -1, 5);
  EXPECT_WINDOWS(e, OBSPAM_SUBSCRIPTION, "acme", 5, -1, -1);
}

Test(tree, effective_window_limit_errors) {
  int64_t v = 12345;
  RC(obspam_effective_window_limit(NULL, OBSPAM_MAILBOX, "info@example.com",
                                   OBSPAM_WINDOW_DAY, &v),
     OBSPAM_EINVAL);
  RC(obspam_effective_window_limit(e, OBSPAM_PLAN, "basic", OBSPAM_WINDOW_DAY,
                                   &v),
     OBSPAM_EINVAL);
  RC(obspam_effective_window_limit(e, OBSPAM_SERVER, NULL, OBSPAM_WINDOW_DAY,
                                   &v),
     OBSPAM_EINVAL);
  ERRMSG(obspam_effective_window_limit(e, OBSPAM_MAILBOX, "info@example.com",
                                       OBSPAM_WINDOW_DAY, NULL),
         OBSPAM_EINVAL, "effective_window_limit: the result pointer is NULL");
  ERRMSG(obspam_effective_window_limit(e, OBSPAM_MAILBOX, "ghost@example.com",
                                       OBSPAM_WINDOW_MINUTE, &v),
         OBSPAM_ENOTFOUND,
         "effective_window_limit: no mailbox 'ghost@example.com'");
  RC(obspam_effective_window_limit(e, OBSPAM_DOMAIN, "bad name",
                                   OBSPAM_WINDOW_MINUTE, &v),
     OBSPAM_EINVAL);
  cr_assert_eq(v, 12345, "effective_window_limit wrote its output on failure");
}

Test(tree, max_recipients_errors) {
  OK(obspam_set_max_recipients(e, OBSPAM_DOMAIN, "example.com", 9));
  static const int64_t bad[] = {-3, -100, INT64_MIN};
  static const int kinds[] = {OBSPAM_SERVER, OBSPAM_PLAN, OBSPAM_SUBSCRIPTION,
                              OBSPAM_DOMAIN, OBSPAM_MAILBOX};
  for (size_t k = 0; k < 5; k++)
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
      FAILS(obspam_set_max_recipients(e, kinds[k], name_of_kind(kinds[k]),
                                      bad[i]),
            OBSPAM_EINVAL);
  FAILS(obspam_set_max_recipients(e, OBSPAM_SERVER, NULL, OBSPAM_INHERIT),
        OBSPAM_EINVAL);
  FAILS(obspam_set_max_recipients(e, OBSPAM_SCRIPT, "acme", 5), OBSPAM_EINVAL);
  FAILS(obspam_set_max_recipients(e, -1, "acme", 5), OBSPAM_EINVAL);
  FAILS(obspam_set_max_recipients(e, 99, "acme", 5), OBSPAM_EINVAL);
  FAILS(obspam_set_max_recipients(e, OBSPAM_SERVER, "server", 5),
        OBSPAM_EINVAL);
  FAILS(obspam_set_max_recipients(e, OBSPAM_DOMAIN, NULL, 5), OBSPAM_EINVAL);
  FAILS(obspam_set_max_recipients(e, OBSPAM_DOMAIN, "ghost.com", 5),
        OBSPAM_ENOTFOUND);
  FAILS(obspam_set_max_recipients(e, OBSPAM_PLAN, "silver", 5),
        OBSPAM_ENOTFOUND);
  RC(obspam_set_max_recipients(NULL, OBSPAM_SERVER, NULL, 5), OBSPAM_EINVAL);
  EXPECT_CAP(e, OBSPAM_MAILBOX, "info@example.com", 9);
  /* The messages. */
  ERRMSG(obspam_set_max_recipients(e, OBSPAM_MAILBOX, "info@example.com", -5),
         OBSPAM_EINVAL,
         "set_max_recipients: -5 is not a count, unlimited or inherit");
  ERRMSG(obspam_set_max_recipients(e, OBSPAM_SERVER, NULL, OBSPAM_INHERIT),
         OBSPAM_EINVAL, "set_max_recipients: -2 is not a count or unlimited");
  ERRMSG(obspam_set_max_recipients(e, OBSPAM_SCRIPT, "acme", 5), OBSPAM_EINVAL,
         "set_max_recipients: kind 5 is not the server, a plan, "
         "subscription, domain or mailbox");
  ERRMSG(obspam_set_max_recipients(e, OBSPAM_DOMAIN, "ghost.com", 5),
         OBSPAM_ENOTFOUND, "set_max_recipients: no domain 'ghost.com'");

  int64_t v = 12345;
  RC(obspam_effective_max_recipients(e, OBSPAM_PLAN, "basic", &v),
     OBSPAM_EINVAL);
  RC(obspam_effective_max_recipients(e, OBSPAM_SERVER, NULL, &v),
     OBSPAM_EINVAL);
  RC(obspam_effective_max_recipients(e, OBSPAM_MAILBOX, "info@example.com",
                                     NULL),
     OBSPAM_EINVAL);
  ERRMSG(obspam_effective_max_recipients(e, OBSPAM_SUBSCRIPTION, "ghost", &v),
         OBSPAM_ENOTFOUND, "effective_max_recipients: no subscription 'ghost'");
  RC(obspam_effective_max_recipients(NULL, OBSPAM_SUBSCRIPTION, "acme", &v),
     OBSPAM_EINVAL);
  cr_assert_eq(v, 12345);
  /* Every kind with a cap takes the three kinds of value. */
  static const int64_t good[] = {0, 1, 1000, OBSPAM_UNLIMITED};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    OK(obspam_set_max_recipients(e, OBSPAM_MAILBOX, "sales@example.com",
                                 good[i]));
    EXPECT_CAP(e, OBSPAM_MAILBOX, "sales@example.com", good[i]);
  }
}
