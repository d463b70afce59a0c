/* SPDX-License-Identifier: MIT */
/* Forwards and list deliveries in the daemons (examples/common/forwards.c):
   the decision of a message with the forwards it makes, the list flag,
   their metrics and the word of the refusal log line. */
#include "common_test.h"
#include "forwards.h"
#include "metrics.h"
#include "refusal.h"

#define CONF                                                                   \
  "local-network 10.0.5.0/24\n"                                                \
  "subscription acme\n"                                                        \
  "domain example.com subscription=acme mailbox=2\n"                           \
  "domain big.example subscription=acme mailbox=1\n"                           \
  "mailbox info@example.com limit=4\n"                                         \
  "forward sales@example.com remote\n"                                         \
  "forward desk@example.com local\n"                                           \
  "list news@big.example\n"

static obspam_engine *engine(void) {
  obspam_engine *e = NULL;

  cr_assert_eq(obspam_engine_new(&e), OBSPAM_OK);
  cr_assert_eq(obspam_load_config_string(e, CONF), OBSPAM_OK, "%s",
               obspam_engine_errmsg(e));
  return e;
}

static obspam_message inbound(const char *sender, const char *client) {
  obspam_message m = OBSPAM_MESSAGE_INIT;

  m.sender = sender;
  m.client_address = client;
  m.recipients = 1;
  m.time = 1800000000;
  return m;
}

static void keep(obspamd_forwards *fw, obspam_engine *e, const char *rcpt) {
  char mb[OBSPAM_NAME_MAX + 1];
  uint32_t flag = 0;

  cr_assert_eq(obspam_forward_lookup(e, rcpt, &flag, mb, sizeof mb), OBSPAM_OK);
  cr_assert_neq(flag, 0u, "%s is no forward", rcpt);
  obspamd_forwards_keep(fw, flag, mb);
}

/* Charges one forward by f's mailbox, as another message's would. */
static void charge_forward(obspam_engine *e, const obspam_message *m,
                           const obspamd_forward *f) {
  obspam_message part;
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  obspamd_forward_message(m, f, 0, &part);
  cr_assert_eq(obspam_decide(e, &part, &v), OBSPAM_OK);
  cr_assert_eq(v.action, OBSPAM_ACCEPT);
}

static int64_t count(obspam_engine *e, int kind, const char *name) {
  obspam_stats st = OBSPAM_STATS_INIT;

  cr_assert_eq(obspam_stats_get(e, kind, name, 1800000000, &st), OBSPAM_OK,
               "%s", obspam_engine_errmsg(e));
  return st.count;
}

/* Both daemons keep their forwards through obspamd_forwards_keep: an
   address named again in one message (RCPT TO repeated) is one forward,
   a catch-all's domain one for each of its recipients. */
Test(forwards, an_address_named_again_is_kept_once) {
  obspamd_forwards fw;
  int i;

  obspamd_forwards_clear(&fw);
  for (i = 0; i < 3; i++) {
    obspamd_forwards_keep(&fw, OBSPAM_MSG_FORWARD_REMOTE, "x@example.com");
    obspamd_forwards_keep(&fw, OBSPAM_MSG_FORWARD_REMOTE, "catch.example");
  }
  cr_assert_eq(fw.n, 2u);
  cr_assert_str_eq(fw.f[0].mailbox, "x@example.com");
  cr_assert_eq(fw.f[0].count, 1u);
  cr_assert_str_eq(fw.f[1].mailbox, "catch.example");
  cr_assert_eq(fw.f[1].count, 3u);
}

Test(forwards, inbound_forward_charged_to_its_mailbox) {
  obspam_engine *e = engine();
  obspamd_metrics met;
  obspamd_forwards fw;
  obspam_message m = inbound("someone@elsewhere.example", "192.0.2.7"), about;
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  int i;

  memset(&met, 0, sizeof met);
  for (i = 0; i < 3; i++) {
    obspamd_forwards_clear(&fw);
    keep(&fw, e, "sales@example.com");
    cr_assert_eq(obspamd_decide_forwards(e, &m, &fw, &met, &v, &about),
                 OBSPAM_OK);
    if (i < 2) {
      /* The message itself is inbound mail: its own verdict answers. */
      cr_assert_eq(v.action, OBSPAM_UNKNOWN, "message %d", i + 1);
      cr_assert_eq(about.sender, m.sender);
    } else {
      cr_assert_eq(v.action, OBSPAM_REFUSE);
      cr_assert_str_eq(v.object, "sales@example.com");
      cr_assert_eq(v.limit, 2);
      cr_assert_eq(v.count, 2);
      cr_assert_str_eq(about.sender, "sales@example.com");
      cr_assert_eq(about.flags, OBSPAM_MSG_FORWARD_REMOTE);
      cr_assert_str_eq(obspamd_mail_word(&about), "forward-remote");
    }
  }
  cr_assert_eq(count(e, OBSPAM_MAILBOX, "sales@example.com"), 2);
  cr_assert_eq(met.forwards[1][OBSPAM_ACCEPT], 2u);
  cr_assert_eq(met.forwards[1][OBSPAM_REFUSE], 1u);
  cr_assert_eq(met.forwards[0][OBSPAM_ACCEPT], 0u);
  obspam_engine_free(e);
}

/* A refused forward charges none of the message's other parts. */
/* Decides m with the forwards kept in fw and asserts the verdict's action
   and object. */
static void expect_forwards_verdict(obspam_engine *e, const obspam_message *m,
                                    obspamd_forwards *fw, obspamd_metrics *met,
                                    int action, const char *object) {
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  obspam_message about;

  cr_assert_eq(obspamd_decide_forwards(e, m, fw, met, &v, &about), OBSPAM_OK);
  cr_assert_eq(v.action, action);
  cr_assert_str_eq(v.object, object);
}

Test(forwards, refusal_charges_nothing_else) {
  obspam_engine *e = engine();
  obspamd_metrics met;
  obspamd_forwards fw;
  obspam_message m = OBSPAM_MESSAGE_INIT;

  memset(&met, 0, sizeof met);
  m.sasl_username = "info@example.com";
  m.sender = "info@example.com";
  m.client_address = "192.0.2.7";
  m.recipients = 3;
  m.time = 1800000000;
  obspamd_forwards_clear(&fw);
  /* Three recipients: sales@ named twice (one forward, as the MTA
     delivers it once), and an outside one. sales@'s limit is 2: another
     message's forward then takes its second slot. */
  keep(&fw, e, "sales@example.com");
  keep(&fw, e, "sales@example.com");
  cr_assert_eq(fw.n, 1u);
  cr_assert_eq(fw.f[0].count, 1u);
  expect_forwards_verdict(e, &m, &fw, &met, OBSPAM_ACCEPT, "info@example.com");
  cr_assert_eq(count(e, OBSPAM_MAILBOX, "sales@example.com"), 1);
  cr_assert_eq(count(e, OBSPAM_MAILBOX, "info@example.com"), 3);
  charge_forward(e, &m, &fw.f[0]);
  cr_assert_eq(count(e, OBSPAM_MAILBOX, "sales@example.com"), 2);
  m.recipients = 1;
  obspamd_forwards_clear(&fw);
  keep(&fw, e, "desk@example.com"); /* local: not counted, exempt */
  keep(&fw, e, "sales@example.com");
  expect_forwards_verdict(e, &m, &fw, &met, OBSPAM_REFUSE, "sales@example.com");
  /* info@ (room for one more) was not charged, nor anything else. */
  cr_assert_eq(count(e, OBSPAM_MAILBOX, "info@example.com"), 3);
  cr_assert_eq(count(e, OBSPAM_MAILBOX, "sales@example.com"), 2);
  cr_assert_eq(met.forwards[1][OBSPAM_REFUSE], 1u);
  obspam_engine_free(e);
}

Test(forwards, list_flag_from_local_clients_only) {
  obspam_engine *e = engine();
  obspam_message m = inbound("news-bounces+a=b@big.example", "10.0.5.3");
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  obspamd_mark_list(e, &m);
  cr_assert_eq(m.flags, OBSPAM_MSG_MAILING_LIST);
  cr_assert_str_eq(obspamd_mail_word(&m), "list");
  m.recipients = 5;
  cr_assert_eq(obspam_decide(e, &m, &v), OBSPAM_OK);
  cr_assert_eq(v.action, OBSPAM_EXEMPT);
  /* A local submission is local too. */
  m = inbound("news@big.example", NULL);
  obspamd_mark_list(e, &m);
  cr_assert_eq(m.flags, OBSPAM_MSG_MAILING_LIST);
  /* From outside: ordinary mail. */
  m = inbound("news-bounces@big.example", "192.0.2.7");
  obspamd_mark_list(e, &m);
  cr_assert_eq(m.flags, 0u);
  cr_assert_null(obspamd_mail_word(&m));
  m = inbound("other@big.example", "10.0.5.3");
  obspamd_mark_list(e, &m);
  cr_assert_eq(m.flags, 0u);
  obspam_engine_free(e);
}

Test(forwards, metrics_and_log_line_tell_them_apart) {
  obspamd_metrics met;
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  obspam_message m = inbound("news@big.example", "10.0.5.3");
  obspamd_forward f = {OBSPAM_MSG_FORWARD_LOCAL, 1, "desk@example.com"};
  obspam_message fm;

  log_in_test_dir();
  memset(&met, 0, sizeof met);
  m.flags = OBSPAM_MSG_MAILING_LIST;
  v.action = OBSPAM_EXEMPT;
  obspamd_metrics_decision(&met, &v, &m, 10);
  cr_assert_eq(met.lists[OBSPAM_EXEMPT], 1u);
  cr_assert_eq(met.decisions[OBSPAM_EXEMPT], 1u);
  /* A forward's decision is counted by obspamd_metrics_marked only. */
  obspamd_forward_message(&m, &f, 0, &fm);
  cr_assert_eq(fm.flags, OBSPAM_MSG_FORWARD_LOCAL);
  cr_assert_eq(fm.recipients, 1u);
  cr_assert_null(fm.sasl_username);
  cr_assert_str_eq(fm.client_address, "10.0.5.3");
  v.action = OBSPAM_REFUSE;
  v.kind = OBSPAM_MAILBOX;
  v.limit = 2;
  v.count = 2;
  v.retry_after = 60;
  v.window = OBSPAM_WINDOW_HOUR;
  snprintf(v.object, sizeof v.object, "desk@example.com");
  obspamd_metrics_marked(&met, &v, &fm);
  cr_assert_eq(met.forwards[0][OBSPAM_REFUSE], 1u);
  cr_assert_eq(met.decisions[OBSPAM_REFUSE], 0u);
  obspamd__refusal_line(&v, &fm, 0, "Q1");
  cr_assert(logged_line("refuse kind=mailbox object=desk@example.com "
                        "limit=2 count=2 unit=recipients retry=60 "
                        "queue_id=Q1 sasl=- sender=desk@example.com "
                        "client=10.0.5.3 recipients=1 window=hour "
                        "mail=forward-local"),
            "%s", logged());
}

/* The steps obspamd_forwards_step gives a caller with an event loop: the
   checks of every part in one step (nothing charged), then one charge
   per step, each forward as many times as its recipients (sales@ named
   twice is one), the message itself last; a part refused at the checks
   is decided alone and answered. (desk@ forwards locally: not counted,
   but still a part.) */
Test(forwards, steps_for_an_event_loop) {
  obspam_engine *e = engine();
  obspamd_metrics met;
  obspamd_forwards fw;
  obspamd_forwards_run r;
  obspam_message m = inbound("someone@elsewhere.example", "192.0.2.7");
  const char *want[] = {"sales@example.com", "desk@example.com",
                        "someone@elsewhere.example"};
  unsigned n, i, step;

  memset(&met, 0, sizeof met);
  obspamd_forwards_clear(&fw);
  keep(&fw, e, "sales@example.com");
  keep(&fw, e, "sales@example.com");
  keep(&fw, e, "desk@example.com");
  obspamd_forwards_begin(&r, &m, &fw);
  n = obspamd_forwards_step(&r, &met);
  cr_assert_eq(n, 3u);
  for (i = 0; i < n; i++) {
    cr_assert_eq(r.how[i], OBSPAM_DECIDE_DRY, "part %u", i);
    r.rc[i] = obspam_check(e, &r.msg[i], &r.v[i]);
  }
  cr_assert_str_eq(r.msg[0].sender, "someone@elsewhere.example");
  cr_assert_str_eq(r.msg[1].sender, "sales@example.com");
  cr_assert_str_eq(r.msg[2].sender, "desk@example.com");
  for (step = 0; (n = obspamd_forwards_step(&r, &met)) > 0; step++) {
    cr_assert_eq(n, 1u, "step %u", step);
    cr_assert_lt(step, 3u);
    cr_assert_eq(r.how[0], 0u);
    cr_assert_str_eq(r.msg[0].sender, want[step], "step %u", step);
    r.rc[0] = obspam_decide(e, &r.msg[0], &r.v[0]);
  }
  cr_assert_eq(step, 3u);
  cr_assert_eq(r.result, OBSPAM_OK);
  cr_assert_eq(r.v[0].action, OBSPAM_UNKNOWN);
  cr_assert_eq(count(e, OBSPAM_MAILBOX, "sales@example.com"), 1);
  charge_forward(e, &m, &fw.f[0]);
  cr_assert_eq(count(e, OBSPAM_MAILBOX, "sales@example.com"), 2);

  /* sales@ has no room left (limit 2): the checks refuse it, and only
     its refusal is decided; nothing is charged. */
  obspamd_forwards_begin(&r, &m, &fw);
  n = obspamd_forwards_step(&r, &met);
  cr_assert_eq(n, 3u);
  for (i = 0; i < n; i++)
    r.rc[i] = obspam_check(e, &r.msg[i], &r.v[i]);
  cr_assert_eq(obspamd_forwards_step(&r, &met), 1u);
  cr_assert_str_eq(r.msg[0].sender, "sales@example.com");
  r.rc[0] = obspam_decide(e, &r.msg[0], &r.v[0]);
  cr_assert_eq(obspamd_forwards_step(&r, &met), 0u);
  cr_assert_eq(r.result, OBSPAM_OK);
  cr_assert_eq(r.v[0].action, OBSPAM_REFUSE);
  cr_assert_str_eq(r.v[0].object, "sales@example.com");
  cr_assert_str_eq(r.about.sender, "sales@example.com");
  cr_assert_eq(count(e, OBSPAM_MAILBOX, "sales@example.com"), 2);
  obspam_engine_free(e);
}
