/* SPDX-License-Identifier: MIT */
/* Forwards and mailing lists: declaring them (C API and configuration
   file), what a recipient or sender is, and how the flags they give are
   charged. */
#include "testutil.h"

static obspam_engine *e;

#define CONF                                                                   \
  "count-forward-local yes\n"                                                  \
  "local-network 10.0.5.0/24\n"                                                \
  "subscription acme subscription=10\n"                                        \
  "domain example.com subscription=acme domain=5 mailbox=2\n"                  \
  "domain big.example subscription=acme\n"                                     \
  "mailbox info@example.com\n"                                                 \
  "forward sales@example.com remote\n"                                         \
  "forward desk@Example.COM local\n"                                           \
  "forward @big.example remote\n"                                              \
  "list news@big.example\n"

TU_ENGINE_SETUP(tu_new_conf(CONF))

TestSuite(forward, .init = setup, .fini = teardown);

/* The flag and charged name of a recipient. */
static uint32_t lookup(const char *rcpt, char *mailbox, int line) {
  uint32_t flag = 99;
  int rc = obspam_forward_lookup(e, rcpt, &flag, mailbox, OBSPAM_NAME_MAX + 1);

  cr_assert_eq(rc, OBSPAM_OK, "line %d: forward_lookup(%s) returned %d: %s",
               line, rcpt, rc, obspam_engine_errmsg(e));
  return flag;
}
static void expect_forward(const char *rcpt, uint32_t flag, const char *name,
                           int line) {
  char mb[OBSPAM_NAME_MAX + 1];
  uint32_t got = lookup(rcpt, mb, line);

  cr_assert_eq(got, flag, "line %d: %s: flag %u, expected %u", line, rcpt, got,
               flag);
  cr_assert_str_eq(mb, name, "line %d: %s: mailbox '%s', expected '%s'", line,
                   rcpt, mb, name);
}
#define EXPECT_FORWARD(rcpt, flag, name)                                       \
  expect_forward((rcpt), (flag), (name), __LINE__)

static int list_match(const char *sender, const char *client) {
  int match = 99;

  OK(obspam_mailing_list_match(e, sender, client, &match));
  return match;
}

Test(forward, lookup_from_config) {
  EXPECT_FORWARD("sales@example.com", OBSPAM_MSG_FORWARD_REMOTE,
                 "sales@example.com");
  EXPECT_FORWARD("SALES@Example.com", OBSPAM_MSG_FORWARD_REMOTE,
                 "sales@example.com");
  EXPECT_FORWARD("desk@example.com", OBSPAM_MSG_FORWARD_LOCAL,
                 "desk@example.com");
  /* No catch-all for example.com: other addresses are no forwards. */
  EXPECT_FORWARD("info@example.com", 0, "");
  EXPECT_FORWARD("nobody@example.com", 0, "");
  /* The catch-all of big.example charges the domain. */
  EXPECT_FORWARD("anyone@big.example", OBSPAM_MSG_FORWARD_REMOTE,
                 "big.example");
  EXPECT_FORWARD("someone@other.example", 0, "");
  /* Not valid names: simply no forwards. */
  EXPECT_FORWARD("no-at-sign", 0, "");
  EXPECT_FORWARD("", 0, "");
  EXPECT_FORWARD("a b@example.com", 0, "");
}

Test(forward, catch_all_leaves_mailboxes_and_own_forwards) {
  OK(obspam_add(e, OBSPAM_MAILBOX, "real@big.example", NULL));
  OK(obspam_forward_add(e, "desk@big.example", 0));
  EXPECT_FORWARD("real@big.example", 0, "");
  EXPECT_FORWARD("desk@big.example", OBSPAM_MSG_FORWARD_LOCAL,
                 "desk@big.example");
  EXPECT_FORWARD("ghost@big.example", OBSPAM_MSG_FORWARD_REMOTE, "big.example");
  OK(obspam_forward_remove(e, "@big.example"));
  EXPECT_FORWARD("ghost@big.example", 0, "");
  EXPECT_FORWARD("desk@big.example", OBSPAM_MSG_FORWARD_LOCAL,
                 "desk@big.example");
}

Test(forward, api_add_remove_errors) {
  char mb[OBSPAM_NAME_MAX + 1];
  uint32_t flag;

  RC(obspam_forward_add(e, "sales@example.com", 0), OBSPAM_EEXIST);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "forward_add: 'sales@example.com' is a forward already");
  RC(obspam_forward_add(e, "x@nowhere.example", 1), OBSPAM_ENOTFOUND);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "forward_add: no domain 'nowhere.example'");
  RC(obspam_forward_add(e, "@nowhere.example", 1), OBSPAM_ENOTFOUND);
  RC(obspam_forward_add(e, "x@example.com", 2), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "forward_add: remote is 2, not 0 or 1");
  RC(obspam_forward_add(e, "example.com", 1), OBSPAM_EINVAL);
  RC(obspam_forward_add(e, "@", 1), OBSPAM_EINVAL);
  RC(obspam_forward_add(e, "@a@b", 1), OBSPAM_EINVAL);
  RC(obspam_forward_add(e, NULL, 1), OBSPAM_EINVAL);
  RC(obspam_forward_add(NULL, "x@example.com", 1), OBSPAM_EINVAL);
  RC(obspam_forward_remove(e, "x@example.com"), OBSPAM_ENOTFOUND);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "forward_remove: 'x@example.com' is not a forward");
  RC(obspam_forward_lookup(e, "x@example.com", &flag, mb, OBSPAM_NAME_MAX),
     OBSPAM_EINVAL);
  RC(obspam_forward_lookup(e, NULL, &flag, mb, sizeof mb), OBSPAM_EINVAL);
  RC(obspam_forward_lookup(e, "x@example.com", NULL, mb, sizeof mb),
     OBSPAM_EINVAL);

  OK(obspam_forward_add(e, "New@Example.com", 1));
  EXPECT_FORWARD("new@example.com", OBSPAM_MSG_FORWARD_REMOTE,
                 "new@example.com");
  OK(obspam_forward_remove(e, "NEW@example.com"));
  EXPECT_FORWARD("new@example.com", 0, "");
  /* A forward changes its kind by being removed and added again. */
  OK(obspam_forward_remove(e, "sales@example.com"));
  OK(obspam_forward_add(e, "sales@example.com", 0));
  EXPECT_FORWARD("sales@example.com", OBSPAM_MSG_FORWARD_LOCAL,
                 "sales@example.com");
}

Test(forward, list_match_forms) {
  cr_assert_eq(list_match("news@big.example", NULL), 1);
  cr_assert_eq(list_match("news@big.example", ""), 1);
  cr_assert_eq(list_match("NEWS-bounces@big.example", "10.0.5.1"), 1);
  cr_assert_eq(list_match("news-bounces+x=y@big.example", "10.0.5.7"), 1);
  cr_assert_eq(list_match("news-bounces+@big.example", "::ffff:10.0.5.9"), 1);
  /* The local networks are the configured ones: 127.0.0.1 is not one. */
  cr_assert_eq(list_match("news-bounces@big.example", "127.0.0.1"), 0);
  OK(obspam_local_network_remove(e, "10.0.5.0/24"));
  cr_assert_eq(list_match("news-bounces@big.example", "127.0.0.1"), 1);
  cr_assert_eq(list_match("news-bounces@big.example", "::1"), 1);
  cr_assert_eq(list_match("news-bounces@big.example", "10.0.5.1"), 0);
  /* Not its forms. */
  cr_assert_eq(list_match("news+x@big.example", NULL), 0);
  cr_assert_eq(list_match("news-bounce@big.example", NULL), 0);
  cr_assert_eq(list_match("news-bouncesx@big.example", NULL), 0);
  cr_assert_eq(list_match("news-request@big.example", NULL), 0);
  cr_assert_eq(list_match("-bounces@big.example", NULL), 0);
  cr_assert_eq(list_match("news@example.com", NULL), 0);
  cr_assert_eq(list_match("news-bounces@example.com", NULL), 0);
  cr_assert_eq(list_match("big.example", NULL), 0);
  cr_assert_eq(list_match("", NULL), 0);
  /* From outside the local networks, a list's name is ordinary mail. */
  cr_assert_eq(list_match("news-bounces@big.example", "192.0.2.1"), 0);
  cr_assert_eq(list_match("news@big.example", "2001:db8::1"), 0);
  RC(obspam_mailing_list_match(e, "news@big.example", "not-an-ip", &(int){0}),
     OBSPAM_EINVAL);
  RC(obspam_mailing_list_match(e, NULL, NULL, &(int){0}), OBSPAM_EINVAL);
  RC(obspam_mailing_list_match(e, "news@big.example", NULL, NULL),
     OBSPAM_EINVAL);
}

/* An address written as the MTA rewrites it (a dot that ends the
   domain, a bang path, the percent hack) is the mailbox the MTA sends
   as: the same forward, list and sender. Before, each was no forward
   and a sender of no hosted domain: nothing was counted. */
Test(forward, envelope_forms_are_what_the_mta_makes_of_them) {
  obspam_message m;
  obspam_verdict v;

  EXPECT_FORWARD("sales@example.com.", OBSPAM_MSG_FORWARD_REMOTE,
                 "sales@example.com");
  EXPECT_FORWARD("Example.COM!sales", OBSPAM_MSG_FORWARD_REMOTE,
                 "sales@example.com");
  EXPECT_FORWARD("sales%example.com", OBSPAM_MSG_FORWARD_REMOTE,
                 "sales@example.com");
  EXPECT_FORWARD("ghost@big.example.", OBSPAM_MSG_FORWARD_REMOTE,
                 "big.example");
  /* Postfix with recipient_delimiter = +: an address with an extension
     that is no forward of its own is the one without it. */
  EXPECT_FORWARD("sales+news@example.com.", OBSPAM_MSG_FORWARD_REMOTE,
                 "sales@example.com");
  EXPECT_FORWARD("info+x@example.com", 0, ""); /* a mailbox's */
  EXPECT_FORWARD("info+x@big.example", OBSPAM_MSG_FORWARD_REMOTE,
                 "big.example"); /* no mailbox there: the catch-all */
  EXPECT_FORWARD("+x@example.com", 0, "");
  EXPECT_FORWARD("sales@example.com..", 0, "");
  EXPECT_FORWARD("!sales", 0, "");
  EXPECT_FORWARD("sales%", 0, "");
  cr_assert_eq(list_match("news@big.example.", "10.0.5.1"), 1);
  cr_assert_eq(list_match("big.example!news-bounces", "10.0.5.1"), 1);
  /* Unauthenticated mail from a local network, charged by its sender:
     info@ (declared, limit 2 from its domain) three times over. */
  m = tu_msg(0, NULL, "info@example.com.", "10.0.5.3", 1, -1, NULL, NULL, T0);
  v = tu_decide_msg(e, &m, __LINE__);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 2, 0, 0);
  m.sender = "example.com!info";
  v = tu_decide_msg(e, &m, __LINE__);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "info@example.com", 2, 1, 0);
  m.sender = "info%example.com";
  v = tu_decide_msg(e, &m, __LINE__);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "info@example.com", 2, 2,
                 3600);
}

/* A local client's sender in a hosted domain that is no valid name
   still charges its domain and subscription: the MTA sends the mail
   from that domain all the same. Before, it was UNKNOWN and nothing was
   counted. */
Test(forward, unauthenticated_sender_that_is_no_name_charges_its_domain) {
  char longer[400];
  obspam_message m;
  obspam_verdict v;

  memset(longer, 'a', 330);
  strcpy(longer + 330, "@example.com");
  m = tu_msg(0, NULL, "\"in fo\"@example.com", "10.0.5.3", 1, -1, NULL, NULL,
             T0);
  v = tu_decide_msg(e, &m, __LINE__);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "example.com", 5, 0, 0);
  m.sender = longer;
  v = tu_decide_msg(e, &m, __LINE__);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "example.com", 5, 1, 0);
  m.sender = "a@b@Example.COM.";
  v = tu_decide_msg(e, &m, __LINE__);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "example.com", 5, 2, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0, 3, 0);
  /* Not hosted, or from outside the local networks: nothing. */
  m.sender = "in fo@elsewhere.example";
  v = tu_decide_msg(e, &m, __LINE__);
  cr_assert_eq(v.action, OBSPAM_UNKNOWN);
  m.sender = "\"in fo\"@example.com";
  m.client_address = "192.0.2.9";
  v = tu_decide_msg(e, &m, __LINE__);
  cr_assert_eq(v.action, OBSPAM_UNKNOWN);
}

Test(forward, list_with_bounces_in_its_name) {
  OK(obspam_mailing_list_add(e, "a-bounces@example.com"));
  cr_assert_eq(list_match("a-bounces@example.com", NULL), 1);
  cr_assert_eq(list_match("a-bounces-bounces+t@example.com", NULL), 1);
  cr_assert_eq(list_match("a@example.com", NULL), 0);
  RC(obspam_mailing_list_add(e, "A-Bounces@example.com"), OBSPAM_EEXIST);
  cr_assert_str_eq(
      obspam_engine_errmsg(e),
      "mailing_list_add: 'a-bounces@example.com' is a mailing list already");
  RC(obspam_mailing_list_add(e, "l@nowhere.example"), OBSPAM_ENOTFOUND);
  RC(obspam_mailing_list_add(e, "@example.com"), OBSPAM_EINVAL);
  OK(obspam_mailing_list_remove(e, "a-bounces@example.com"));
  cr_assert_eq(list_match("a-bounces@example.com", NULL), 0);
  RC(obspam_mailing_list_remove(e, "a-bounces@example.com"), OBSPAM_ENOTFOUND);
  cr_assert_str_eq(
      obspam_engine_errmsg(e),
      "mailing_list_remove: 'a-bounces@example.com' is not a mailing list");
}

/* The message an adapter makes of a forward: no login, the flag, the
   charged name as sender, one message. */
static obspam_verdict forward_msg(const char *rcpt, const char *client,
                                  int64_t t, int line) {
  char mb[OBSPAM_NAME_MAX + 1];
  uint32_t flag = lookup(rcpt, mb, line);
  obspam_message m = tu_msg(flag, NULL, mb, client, 1, -1, NULL, NULL, t);

  cr_assert_neq(flag, 0, "line %d: %s is no forward", line, rcpt);
  return tu_decide_msg(e, &m, line);
}
#define FORWARD(rcpt, client, t) forward_msg((rcpt), (client), (t), __LINE__)

Test(forward, charged_to_the_forwarding_mailbox_from_any_client) {
  obspam_verdict v;

  /* sales@ is undeclared: an implicit mailbox, limit 2. */
  v = FORWARD("sales@example.com", "192.0.2.9", T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "sales@example.com", 2, 0,
                 0);
  v = FORWARD("sales@example.com", "192.0.2.9", T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "sales@example.com", 2, 1,
                 0);
  v = FORWARD("sales@example.com", "192.0.2.9", T0 + 2);
  EXPECT_VERDICT(v, OBSPAM_REFUSE, OBSPAM_MAILBOX, "sales@example.com", 2, 2,
                 3600 - 2);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.com", T0 + 2, 2, 1);
  /* A local forward, counted with count-forward-local yes. */
  v = FORWARD("desk@example.com", NULL, T0 + 3);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "desk@example.com", 2, 0, 0);
  /* The catch-all: the domain and its subscription. */
  v = FORWARD("ghost@big.example", "198.51.100.1", T0 + 4);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_DOMAIN, "big.example", -1, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 4, 4, 1);
}

Test(forward, kinds_not_counted_are_exempt) {
  obspam_verdict v;

  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_FORWARD_REMOTE, 0));
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_FORWARD_LOCAL, 0));
  v = FORWARD("sales@example.com", "192.0.2.9", T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  v = FORWARD("desk@example.com", "192.0.2.9", T0);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.com", T0, 0, 0);
}

Test(forward, list_deliveries) {
  obspam_message m = tu_msg(0, NULL, "news-bounces+x=y@big.example",
                            "10.0.5.20", 5, -1, NULL, NULL, T0);
  obspam_verdict v;
  int match = 0;

  OK(obspam_mailing_list_match(e, m.sender, m.client_address, &match));
  cr_assert_eq(match, 1);
  m.flags |= OBSPAM_MSG_MAILING_LIST;
  v = DECIDE(e, &m);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  /* Counted: charged as mail from its sender. */
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_MAILING_LISTS, 1));
  v = DECIDE(e, &m);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX,
                 "news-bounces+x=y@big.example", -1, 0, 0);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "big.example", T0, 5, 0);
}

/* A forward counts in sent and in forwarded, on each charged object;
   a refused one in neither. Ordinary mail counts in neither. */
Test(forward, stats_count_forwards_apart) {
  obspam_verdict v;

  FORWARD("sales@example.com", "192.0.2.9", T0);
  FORWARD("sales@example.com", "192.0.2.9", T0 + 1);
  v = FORWARD("sales@example.com", "192.0.2.9", T0 + 2);
  EXPECT_ACTION(v, OBSPAM_REFUSE);
  v = SASL(e, "info@example.com", 1, T0 + 3);
  EXPECT_ACTION(v, OBSPAM_ACCEPT);
  EXPECT_MARKS(e, OBSPAM_MAILBOX, "sales@example.com", T0 + 3, 2, 0);
  EXPECT_MARKS(e, OBSPAM_MAILBOX, "info@example.com", T0 + 3, 0, 0);
  EXPECT_MARKS(e, OBSPAM_DOMAIN, "example.com", T0 + 3, 2, 0);
  EXPECT_MARKS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 3, 2, 0);
  EXPECT_COUNTS(e, OBSPAM_DOMAIN, "example.com", T0 + 3, 3, 1);
  /* The stats are the current clock hour's: the next hour has none. */
  EXPECT_MARKS(e, OBSPAM_DOMAIN, "example.com", H1, 0, 0);
}

/* Decides m again at t for rcpt recipients, list deliveries counted
   (count_lists 1) or exempt (0). */
static obspam_verdict redeliver(obspam_message *m, int count_lists, int64_t t,
                                uint32_t rcpt) {
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_MAILING_LISTS, count_lists));
  m->time = t;
  m->recipients = rcpt;
  return DECIDE(e, m);
}

/* An exempt list delivery charges nothing but is counted on the objects
   it would have been charged to: its domain and subscription, and its
   mailbox only once that exists. A counted one is in both sent and
   list deliveries. */
Test(forward, stats_count_list_deliveries_exempt_or_charged) {
  obspam_message m =
      tu_msg(OBSPAM_MSG_MAILING_LIST, NULL, "news-bounces@big.example",
             "10.0.5.20", 5, -1, NULL, NULL, T0);
  const char *mb = "news-bounces@big.example";
  obspam_stats s;
  obspam_verdict v;

  v = DECIDE(e, &m);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  EXPECT_MARKS(e, OBSPAM_DOMAIN, "big.example", T0, 0, 5);
  EXPECT_MARKS(e, OBSPAM_SUBSCRIPTION, "acme", T0, 0, 5);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0, 0, 0);
  /* No implicit mailbox was made for it. */
  s = (obspam_stats)OBSPAM_STATS_INIT;
  RC(obspam_stats_get(e, OBSPAM_MAILBOX, mb, T0, &s), OBSPAM_ENOTFOUND);
  /* Counted: charged to the mailbox (made now), its domain and its
     subscription, and a list delivery on each. */
  v = redeliver(&m, 1, T0 + 10, 5);
  EXPECT_ACTION(v, OBSPAM_ACCEPT);
  EXPECT_MARKS(e, OBSPAM_MAILBOX, mb, T0 + 10, 0, 5);
  EXPECT_MARKS(e, OBSPAM_DOMAIN, "big.example", T0 + 10, 0, 10);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 10, 5, 0);
  /* Refused (acme's limit is 10): no delivery was made. */
  v = redeliver(&m, 1, T0 + 20, 6);
  EXPECT_ACTION(v, OBSPAM_REFUSE);
  EXPECT_MARKS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 20, 0, 10);
  /* Exempt again: now that the mailbox exists, it counts there too. */
  v = redeliver(&m, 0, T0 + 30, 3);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  EXPECT_MARKS(e, OBSPAM_MAILBOX, mb, T0 + 30, 0, 8);
  EXPECT_MARKS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 30, 0, 13);
  EXPECT_COUNTS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 30, 5, 1);
  /* A check records nothing, nor does a whitelisted client. */
  m.time = T0 + 40;
  OK(obspam_check(e, &m, &v));
  OK(obspam_whitelist_add(e, "10.0.5.20"));
  v = DECIDE(e, &m);
  EXPECT_EMPTY_VERDICT(v, OBSPAM_EXEMPT);
  EXPECT_MARKS(e, OBSPAM_SUBSCRIPTION, "acme", T0 + 40, 0, 13);
}

/* A caller built against 1.3 passes a smaller obspam_stats: the 1.4
   fields past its end are not written. */
Test(forward, stats_of_a_1_3_caller_end_before_the_marks) {
  obspam_stats st;

  FORWARD("sales@example.com", "192.0.2.9", T0);
  memset(&st, 0xa5, sizeof(st));
  st.struct_size = (uint32_t)offsetof(obspam_stats, forwarded);
  OK(obspam_stats_get(e, OBSPAM_DOMAIN, "example.com", T0, &st));
  cr_assert_eq(st.count, 1);
  cr_assert_eq((uint64_t)st.forwarded, 0xa5a5a5a5a5a5a5a5u);
  cr_assert_eq((uint64_t)st.list_deliveries, 0xa5a5a5a5a5a5a5a5u);
  st.struct_size = sizeof(st);
  OK(obspam_stats_get(e, OBSPAM_DOMAIN, "example.com", T0, &st));
  cr_assert_eq(st.forwarded, 1);
  cr_assert_eq(st.list_deliveries, 0);
}

/* The rows of a report, with copies of their names. */
typedef struct marks_rows {
  size_t n;
  struct {
    char name[OBSPAM_NAME_MAX + 1];
    int64_t sent, forwarded, list_deliveries;
  } row[8];
} marks_rows;

static void marks_collect(const obspam_report_row *r, void *ud) {
  marks_rows *x = ud;

  cr_assert_lt(x->n, 8, "too many rows");
  snprintf(x->row[x->n].name, sizeof(x->row[x->n].name), "%s", r->name);
  x->row[x->n].sent = r->sent;
  x->row[x->n].forwarded = r->forwarded;
  x->row[x->n].list_deliveries = r->list_deliveries;
  x->n++;
}

/* Report rows carry the period's forwards and list deliveries. */
Test(forward, report_rows_count_forwards_and_lists) {
  obspam_message m =
      tu_msg(OBSPAM_MSG_MAILING_LIST, NULL, "news-bounces@big.example", NULL, 4,
             -1, NULL, NULL, T0 + 5);
  marks_rows x = {0};
  obspam_verdict v;

  FORWARD("sales@example.com", "192.0.2.9", T0);
  FORWARD("sales@example.com", "192.0.2.9", T0 + 1);
  FORWARD("sales@example.com", "192.0.2.9", T0 + 2); /* refused */
  DECIDE(e, &m);
  /* Over acme's limit of 10 (2 sent): listed, with its list deliveries. */
  v = SASL(e, "x@big.example", 9, T0 + 6);
  EXPECT_ACTION(v, OBSPAM_REFUSE);
  /* In the next hour: outside a report of the first. */
  m.time = H1;
  DECIDE(e, &m);
  OK(obspam_report(e, H0, H1, marks_collect, &x));
  cr_assert_eq(x.n, 2);
  cr_assert_str_eq(x.row[0].name, "acme");
  cr_assert_eq(x.row[0].sent, 2);
  cr_assert_eq(x.row[0].forwarded, 2);
  cr_assert_eq(x.row[0].list_deliveries, 4);
  cr_assert_str_eq(x.row[1].name, "sales@example.com");
  cr_assert_eq(x.row[1].sent, 2);
  cr_assert_eq(x.row[1].forwarded, 2);
  cr_assert_eq(x.row[1].list_deliveries, 0);
  x.n = 0;
  OK(obspam_report(e, H0, H2, marks_collect, &x));
  cr_assert_eq(x.n, 2);
  cr_assert_eq(x.row[0].list_deliveries, 8);
}

Test(forward, config_errors_name_file_and_line) {
  static const struct {
    const char *line, *msg;
  } bad[] = {
      {"forward", "<string>:4: missing address after 'forward'"},
      {"forward a@example.com",
       "<string>:4: forward 'a@example.com' needs local or remote after it"},
      {"forward a@example.com outside",
       "<string>:4: bad value 'outside' for 'forward': expected local or "
       "remote"},
      {"forward a@example.com remote x",
       "<string>:4: too many values for 'forward'"},
      {"forward a.example.com remote",
       "<string>:4: bad forward address 'a.example.com': a mailbox needs one "
       "'@'"},
      {"forward a@nowhere.example remote",
       "<string>:4: unknown domain 'nowhere.example'"},
      {"forward @nowhere.example remote",
       "<string>:4: unknown domain 'nowhere.example'"},
      {"forward sales@example.com local",
       "<string>:4: duplicate forward 'sales@example.com'"},
      {"list", "<string>:4: missing address after 'list'"},
      {"list news@example.com x", "<string>:4: too many values for 'list'"},
      {"list @example.com", "<string>:4: bad list address '@example.com': an "
                            "address needs a local part "
                            "and a domain"},
      {"list l@later.example",
       "<string>:4: unknown domain 'later.example' (declared later, on line "
       "5)"},
  };

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char text[512];
    int rc;

    snprintf(text, sizeof text,
             "subscription acme\n"
             "domain example.com subscription=acme\n"
             "forward sales@example.com remote\n"
             "%s\n"
             "domain later.example subscription=acme\n",
             bad[i].line);
    rc = obspam_load_config_string(e, text);
    cr_assert_eq(rc, OBSPAM_ESYNTAX, "%s: returned %d", bad[i].line, rc);
    cr_assert_str_eq(obspam_engine_errmsg(e), bad[i].msg);
  }
  /* Nothing changed. */
  EXPECT_FORWARD("ghost@big.example", OBSPAM_MSG_FORWARD_REMOTE, "big.example");
  cr_assert_eq(list_match("news@big.example", NULL), 1);
}

/* A reload replaces the forwards and lists with the file's and keeps the
   forwarding mailboxes' counters. */
Test(forward, reload_replaces_marks_and_keeps_counters) {
  obspam_verdict v;

  v = FORWARD("sales@example.com", "192.0.2.9", T0);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "sales@example.com", 2, 0,
                 0);
  OK(obspam_load_config_string(
      e, "subscription acme subscription=10\n"
         "domain example.com subscription=acme domain=5 mailbox=2\n"
         "domain big.example subscription=acme\n"
         "forward sales@example.com remote\n"
         "list other@example.com\n"));
  EXPECT_FORWARD("desk@example.com", 0, "");
  EXPECT_FORWARD("ghost@big.example", 0, "");
  cr_assert_eq(list_match("news@big.example", NULL), 0);
  cr_assert_eq(list_match("other-bounces@example.com", NULL), 1);
  v = FORWARD("sales@example.com", "192.0.2.9", T0 + 1);
  EXPECT_VERDICT(v, OBSPAM_ACCEPT, OBSPAM_MAILBOX, "sales@example.com", 2, 1,
                 0);
}

/* With no forward or no list declared, the lookups answer without the
   engine's lock, from what the last change or reload left declared: each
   change and each reload must be seen at once. */
Test(forward, lookups_follow_every_change_of_the_marks) {
  char mb[OBSPAM_NAME_MAX + 1];
  uint32_t flag = 99;
  int match = 99;

  OK(obspam_forward_remove(e, "sales@example.com"));
  OK(obspam_forward_remove(e, "desk@example.com"));
  EXPECT_FORWARD("ghost@big.example", OBSPAM_MSG_FORWARD_REMOTE, "big.example");
  OK(obspam_forward_remove(e, "@big.example"));
  EXPECT_FORWARD("ghost@big.example", 0, "");
  EXPECT_FORWARD("sales@example.com", 0, "");
  cr_assert_eq(list_match("news@big.example", NULL), 1);
  OK(obspam_forward_add(e, "sales@example.com", 1));
  EXPECT_FORWARD("sales@example.com", OBSPAM_MSG_FORWARD_REMOTE,
                 "sales@example.com");
  OK(obspam_mailing_list_remove(e, "news@big.example"));
  cr_assert_eq(list_match("news@big.example", NULL), 0);
  /* An address that is none is refused whether or not a list exists. */
  RC(obspam_mailing_list_match(e, "news@big.example", "10.0.5", &match),
     OBSPAM_EINVAL);
  cr_assert_eq(match, 99);
  OK(obspam_mailing_list_add(e, "news@big.example"));
  cr_assert_eq(list_match("news-bounces@big.example", NULL), 1);

  OK(obspam_load_config_string(e, "subscription acme subscription=10\n"
                                  "domain example.com subscription=acme\n"));
  EXPECT_FORWARD("sales@example.com", 0, "");
  cr_assert_eq(list_match("news@example.com", NULL), 0);
  RC(obspam_forward_lookup(e, "sales@example.com", &flag, mb, OBSPAM_NAME_MAX),
     OBSPAM_EINVAL);
  cr_assert_eq(flag, 99);
  OK(obspam_forward_add(e, "sales@example.com", 0));
  EXPECT_FORWARD("sales@example.com", OBSPAM_MSG_FORWARD_LOCAL,
                 "sales@example.com");
  OK(obspam_mailing_list_add(e, "news@example.com"));
  cr_assert_eq(list_match("news@example.com", NULL), 1);
  OK(obspam_forward_remove(e, "sales@example.com"));
  EXPECT_FORWARD("sales@example.com", 0, "");
  OK(obspam_mailing_list_remove(e, "news@example.com"));
  cr_assert_eq(list_match("news@example.com", NULL), 0);
  OK(obspam_load_config_string(e, "subscription acme subscription=10\n"
                                  "domain example.com subscription=acme\n"
                                  "list news@example.com\n"));
  EXPECT_FORWARD("news@example.com", 0, "");
  cr_assert_eq(list_match("news@example.com", NULL), 1);
  OK(obspam_load_config_string(e, "subscription acme subscription=10\n"
                                  "domain example.com subscription=acme\n"
                                  "forward desk@example.com local\n"));
  EXPECT_FORWARD("desk@example.com", OBSPAM_MSG_FORWARD_LOCAL,
                 "desk@example.com");
  cr_assert_eq(list_match("news@example.com", NULL), 0);
}
