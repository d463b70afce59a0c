/* SPDX-License-Identifier: MIT */
/* obspam-policyd's rules for a request (examples/policyd/rules.c): the
   step each protocol state leads to, the message given to the engine,
   what a connection remembers of probes and charges, and the exact
   answer text. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"
#include "rules.h"

/* A parsed request: "request=smtpd_access_policy", the protocol state and
   the given lines. */
static policy_req parsed(const char *state, const char *lines) {
  char text[1024];
  policy_req r;
  size_t used = 0;
  int n;

  n = snprintf(text, sizeof(text),
               "request=smtpd_access_policy\nprotocol_state=%s\n%s\n\n", state,
               lines);
  cr_assert(n > 0 && (size_t)n < sizeof(text));
  policy_reset(&r);
  cr_assert_eq(policy_feed(&r, text, (size_t)n, &used), POLICY_COMPLETE, "%s",
               r.error);
  cr_assert_eq(used, (size_t)n);
  return r;
}

/* A request whose instance is the given one (none for NULL), as
   rules_end reads it. */
static const policy_req *about(const char *instance) {
  static policy_req r;
  char line[RULES_INSTANCE_MAX * 2 + 16];

  if (instance == NULL) {
    r = parsed("DATA", "sender=a@b.example");
  } else {
    snprintf(line, sizeof(line), "instance=%s", instance);
    r = parsed("DATA", line);
  }
  return &r;
}

/* What one connection remembers, fresh for each test, and the message
   the last step filled. */
static rules_memory mem;
static obspam_message m;

static void fresh(void) { rules_memory_init(&mem); }

TestSuite(rules, .init = fresh);

/* The step for a request (checked: from a checked peer), filling m. */
static rules_step step(const policy_req *r, int checked) {
  obspam_message init = OBSPAM_MESSAGE_INIT;

  m = init;
  return rules_begin(r, checked, &mem, &m);
}

Test(rules, stages_not_decided_answer_dunno) {
  static const char *states[] = {"CONNECT", "EHLO", "HELO",  "MAIL",
                                 "VRFY",    "ETRN", "NOSUCH"};
  size_t i;

  for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
    policy_req r = parsed(states[i], "sasl_username=a@b.example");

    cr_assert_eq(step(&r, 0), RULES_DUNNO, "%s", states[i]);
  }
}

Test(rules, rcpt_is_a_probe_of_one_recipient) {
  policy_req r = parsed(
      "RCPT", "sasl_username=a@b.example\nrecipient_count=0\ninstance=1.2.3");

  cr_assert_eq(step(&r, 0), RULES_PROBE);
  cr_assert_eq(m.recipients, 1u);
  cr_assert_eq(m.flags & OBSPAM_MSG_PROBE, (unsigned)OBSPAM_MSG_PROBE);
  cr_assert_str_eq(m.sasl_username, "a@b.example");
}

Test(rules, refused_probe_is_counted_once_per_message) {
  policy_req r = parsed("RCPT", "sasl_username=a@b.example\ninstance=1.2.3");
  policy_req other =
      parsed("RCPT", "sasl_username=a@b.example\ninstance=1.2.4");

  /* Let through: not remembered, the next recipient is probed again. */
  cr_assert_eq(step(&r, 0), RULES_PROBE);
  cr_assert_eq(rules_end(RULES_PROBE, about("1.2.3"), 0, &mem), 0);
  cr_assert_str_eq(mem.probed, "");
  cr_assert_eq(step(&r, 0), RULES_PROBE);
  /* Refused: counted, remembered; later recipients are only checked. */
  cr_assert_eq(rules_end(RULES_PROBE, about("1.2.3"), 1, &mem), 1);
  cr_assert_str_eq(mem.probed, "1.2.3");
  cr_assert_eq(step(&r, 0), RULES_CHECK);
  cr_assert_eq(m.recipients, 1u);
  cr_assert_eq(m.flags & OBSPAM_MSG_PROBE, 0u);
  /* A check counts in the metrics only when it refuses. */
  cr_assert_eq(rules_end(RULES_CHECK, about("1.2.3"), 1, &mem), 1);
  cr_assert_eq(rules_end(RULES_CHECK, about("1.2.3"), 0, &mem), 0);
  cr_assert_str_eq(mem.probed, "1.2.3");
  /* Another message is probed anew. */
  cr_assert_eq(step(&other, 0), RULES_PROBE);
}

Test(rules, probe_without_instance_is_never_a_check) {
  policy_req none = parsed("RCPT", "sasl_username=a@b.example");
  policy_req empty = parsed("RCPT", "sasl_username=a@b.example\ninstance=");

  cr_assert_eq(rules_end(RULES_PROBE, about(NULL), 1, &mem), 1);
  cr_assert_str_eq(mem.probed, "");
  cr_assert_eq(step(&none, 0), RULES_PROBE);
  cr_assert_eq(rules_end(RULES_PROBE, about(""), 1, &mem), 1);
  cr_assert_eq(step(&empty, 0), RULES_PROBE);
}

Test(rules, data_and_end_of_message_charge_once) {
  policy_req data = parsed(
      "DATA", "sasl_username=a@b.example\nrecipient_count=7\ninstance=9.8.7");
  policy_req eom =
      parsed("END-OF-MESSAGE",
             "sasl_username=a@b.example\nrecipient_count=7\ninstance=9.8.7");
  policy_req next = parsed(
      "DATA", "sasl_username=a@b.example\nrecipient_count=2\ninstance=9.8.8");

  cr_assert_eq(step(&data, 0), RULES_DECIDE);
  cr_assert_eq(m.recipients, 7u);
  cr_assert_eq(m.flags & OBSPAM_MSG_PROBE, 0u);
  /* A charge always counts, refused or not. */
  cr_assert_eq(rules_end(RULES_DECIDE, about("9.8.7"), 0, &mem), 1);
  cr_assert_str_eq(mem.decided, "9.8.7");
  cr_assert_eq(step(&eom, 0), RULES_DUNNO);
  cr_assert_eq(step(&next, 0), RULES_DECIDE);
  cr_assert_eq(m.recipients, 2u);
  cr_assert_eq(rules_end(RULES_DECIDE, about("9.8.8"), 1, &mem), 1);
  cr_assert_str_eq(mem.decided, "9.8.8");
}

Test(rules, end_of_message_alone_is_decided) {
  policy_req eom =
      parsed("END-OF-MESSAGE", "sasl_username=a@b.example\ninstance=5");

  cr_assert_eq(step(&eom, 0), RULES_DECIDE);
  cr_assert_eq(m.recipients, 1u);
}

Test(rules, decide_without_or_with_a_long_instance_forgets) {
  char lines[200], longest[RULES_INSTANCE_MAX + 1];
  policy_req r;

  cr_assert_eq(rules_end(RULES_DECIDE, about("9.8.7"), 0, &mem), 1);
  cr_assert_eq(rules_end(RULES_DECIDE, about(NULL), 0, &mem), 1);
  cr_assert_str_eq(mem.decided, "");
  /* RULES_INSTANCE_MAX bytes do not fit: the message is decided each
     time it is asked about, as if it had no instance. */
  memset(longest, 'x', RULES_INSTANCE_MAX);
  longest[RULES_INSTANCE_MAX] = '\0';
  cr_assert_eq(rules_end(RULES_DECIDE, about("9.8.7"), 0, &mem), 1);
  cr_assert_eq(rules_end(RULES_DECIDE, about(longest), 0, &mem), 1);
  cr_assert_str_eq(mem.decided, "");
  snprintf(lines, sizeof(lines), "instance=%s", longest);
  r = parsed("DATA", lines);
  cr_assert_eq(step(&r, 0), RULES_DECIDE);
  /* One byte less fits. */
  longest[RULES_INSTANCE_MAX - 1] = '\0';
  cr_assert_eq(rules_end(RULES_DECIDE, about(longest), 0, &mem), 1);
  cr_assert_str_eq(mem.decided, longest);
  /* A long instance does not wipe a probe remembered before. */
  cr_assert_eq(rules_end(RULES_PROBE, about("1.2.3"), 1, &mem), 1);
  longest[RULES_INSTANCE_MAX - 1] = 'x';
  cr_assert_eq(rules_end(RULES_PROBE, about(longest), 1, &mem), 1);
  cr_assert_str_eq(mem.probed, "1.2.3");
}

Test(rules, a_uid_needs_a_checked_peer) {
  policy_req r =
      parsed("END-OF-MESSAGE",
             "obspam_uid=1001\nobspam_script=/var/www/a/x.php\ninstance=4");
  policy_req rcpt = parsed("RCPT", "obspam_uid=1001");
  policy_req mail = parsed("MAIL", "obspam_uid=1001");

  /* Over TCP: closed whatever the stage, even one never decided. */
  cr_assert_eq(step(&r, 0), RULES_CLOSE);
  cr_assert_eq(step(&rcpt, 0), RULES_CLOSE);
  cr_assert_eq(step(&mail, 0), RULES_CLOSE);
  /* From a checked peer: a local submission by that uid. */
  cr_assert_eq(step(&r, 1), RULES_DECIDE);
  cr_assert_eq(m.uid, 1001);
  cr_assert_eq(m.flags & OBSPAM_MSG_SCRIPT, (unsigned)OBSPAM_MSG_SCRIPT);
  cr_assert_str_eq(m.script, "/var/www/a/x.php");
  cr_assert_eq(step(&rcpt, 1), RULES_PROBE);
  cr_assert_eq(step(&mail, 1), RULES_DUNNO);
}

Test(rules, dunno_reply) {
  char line[RULES_REPLY_MAX];
  size_t n = rules_reply(line, 0, 99);

  cr_assert_eq(n, 14u);
  cr_assert_eq(memcmp(line, "action=DUNNO\n\n", 14), 0);
}

Test(rules, refusal_reply) {
  static const char text[] = "4.7.1 a@b.example: the mailbox's limit";
  char line[RULES_REPLY_MAX];
  size_t n;

  memcpy(line + RULES_TEXT_AT, text, sizeof(text) - 1);
  n = rules_reply(line, 451, sizeof(text) - 1);
  cr_assert_eq(n, 11 + sizeof(text) - 1 + 2);
  line[n] = '\0';
  cr_assert_str_eq(line,
                   "action=451 4.7.1 a@b.example: the mailbox's limit\n\n");
  memcpy(line + RULES_TEXT_AT, "5.7.1 no", 8);
  n = rules_reply(line, 550, 8);
  line[n] = '\0';
  cr_assert_str_eq(line, "action=550 5.7.1 no\n\n");
}

/* The codes copied whole (451, 550) and those written digit by digit
   give the same line: every code an answer may carry. */
Test(rules, every_code_written_as_printed) {
  char line[RULES_REPLY_MAX], want[32];
  int code;
  size_t n;

  for (code = 100; code <= 599; code++) {
    memcpy(line + RULES_TEXT_AT, "t", 1);
    n = rules_reply(line, code, 1);
    snprintf(want, sizeof(want), "action=%d t\n\n", code);
    cr_assert_eq(n, strlen(want), "code %d", code);
    cr_assert_eq(memcmp(line, want, n), 0, "code %d", code);
  }
}

Test(rules, longest_refusal_fits) {
  char line[RULES_REPLY_MAX];
  size_t n;

  memset(line + RULES_TEXT_AT, 'x', RULES_TEXT_MAX);
  n = rules_reply(line, 554, RULES_TEXT_MAX);
  cr_assert_eq(n, (size_t)RULES_TEXT_AT + RULES_TEXT_MAX + 2);
  cr_assert(n <= RULES_REPLY_MAX);
  cr_assert_eq(memcmp(line, "action=554 xx", 13), 0);
  cr_assert_eq(memcmp(line + n - 3, "x\n\n", 3), 0);
}

/* The recipients cap at RCPT: each message's recipients counted on the
   connection, the one past the cap not let through (and not counted),
   the next message counted from 0. */
Test(rules, recipients_counted_per_message) {
  policy_req a = parsed(
      "RCPT", "sasl_username=a@b.example\nrecipient_count=0\ninstance=1.1");
  policy_req b = parsed(
      "RCPT", "sasl_username=a@b.example\nrecipient_count=0\ninstance=1.2");
  uint32_t i;

  cr_assert_eq(mem.cap, RULES_CAP_UNKNOWN);
  for (i = 0; i < 3; i++) {
    cr_assert_eq(rules_rcpt_before(&a, &mem), i);
    mem.cap = 3; /* as the server caches it */
    cr_assert_eq(rules_rcpt_admit(&mem, i, mem.cap), 1, "recipient %u", i + 1);
  }
  cr_assert_eq(rules_rcpt_before(&a, &mem), 3u);
  cr_assert_eq(mem.cap, 3);
  cr_assert_eq(rules_rcpt_admit(&mem, 3, mem.cap), 0);
  cr_assert_eq(rules_rcpt_before(&a, &mem), 3u); /* the 4th was not counted */
  cr_assert_eq(rules_rcpt_admit(&mem, 3, mem.cap), 0);
  /* The next transaction: its own count, its cap looked up again. */
  cr_assert_eq(rules_rcpt_before(&b, &mem), 0u);
  cr_assert_eq(mem.cap, RULES_CAP_UNKNOWN);
  cr_assert_str_eq(mem.counted, "1.2");
  cr_assert_eq(rules_rcpt_admit(&mem, 0, 1), 1);
  cr_assert_eq(rules_rcpt_before(&b, &mem), 1u);
  cr_assert_eq(rules_rcpt_admit(&mem, 1, 1), 0);
  /* Unlimited (-1) lets any number through. */
  cr_assert_eq(rules_rcpt_admit(&mem, 1000000, -1), 1);
  cr_assert_eq(mem.recipients, 1000001u);
  /* A cap of 0 lets none through. */
  cr_assert_eq(rules_rcpt_admit(&mem, 0, 0), 0);
}

/* A charge ends the count of its message's recipients. */
Test(rules, decide_forgets_the_count) {
  policy_req a = parsed(
      "RCPT", "sasl_username=a@b.example\nrecipient_count=0\ninstance=7.7");

  cr_assert_eq(rules_rcpt_before(&a, &mem), 0u);
  mem.cap = 10;
  cr_assert_eq(rules_rcpt_admit(&mem, 0, 10), 1);
  cr_assert_eq(rules_end(RULES_DECIDE, about("7.7"), 0, &mem), 1);
  cr_assert_str_eq(mem.counted, "");
  cr_assert_eq(mem.recipients, 0u);
  cr_assert_eq(mem.cap, RULES_CAP_UNKNOWN);
  /* The same instance asked again at RCPT (a client that goes on after
     DATA cannot, but a reused id must not carry a stale count). */
  cr_assert_eq(rules_rcpt_before(&a, &mem), 0u);
}

/* Without an instance (an MTA that opens a connection per question, as
   Exim's readsocket does) the request's own recipient_count is the count
   before it; nothing is kept between requests. */
Test(rules, recipient_count_sent_at_rcpt) {
  policy_req e9 =
      parsed("RCPT", "sasl_username=a@b.example\nrecipient_count=9");
  policy_req e10 =
      parsed("RCPT", "sasl_username=a@b.example\nrecipient_count=10");
  policy_req p = parsed(
      "RCPT", "sasl_username=a@b.example\nrecipient_count=4\ninstance=3.3");

  cr_assert_eq(step(&e9, 0), RULES_PROBE);
  cr_assert_eq(m.recipients, 1u); /* the probe is of one recipient */
  cr_assert_eq(policy_recipient_count(&e9), 9u);
  cr_assert_eq(rules_rcpt_before(&e9, &mem), 9u);
  cr_assert_eq(rules_rcpt_admit(&mem, 9, 10), 1);
  cr_assert_eq(mem.recipients, 0u); /* not kept: no instance */
  cr_assert_eq(rules_rcpt_before(&e10, &mem), 10u);
  cr_assert_eq(rules_rcpt_admit(&mem, 10, 10), 0);
  /* With an instance, the larger of the two counts. */
  cr_assert_eq(rules_rcpt_before(&p, &mem), 4u);
  cr_assert_eq(rules_rcpt_admit(&mem, 4, 10), 1);
  cr_assert_eq(rules_rcpt_before(&p, &mem), 5u);
}

Test(rules, too_many_reply) {
  char line[RULES_REPLY_MAX];
  size_t n = sizeof(RULES_TOO_MANY) - 1;

  memcpy(line + RULES_TEXT_AT, RULES_TOO_MANY, n);
  n = rules_reply(line, RULES_TOO_MANY_CODE, n);
  cr_assert_eq(n, strlen("action=452 4.5.3 Too many recipients\n\n"));
  cr_assert(memcmp(line, "action=452 4.5.3 Too many recipients\n\n", n) == 0);
}

/* The recipient to look up as a forward, at the step rules_begin gives. */
static const char *recipient(const policy_req *r) {
  return rules_recipient(r, step(r, 0), &mem);
}

/* Forwards: the recipient looked up at RCPT, and at DATA only when the
   message's RCPT did not come here and it has one recipient. */
Test(rules, recipient_to_look_up) {
  policy_req rcpt = parsed("RCPT", "recipient=Sales@Example.com\ninstance=9.1");
  policy_req none = parsed("RCPT", "instance=9.1");
  policy_req data1 = parsed(
      "DATA", "recipient=sales@example.com\nrecipient_count=1\ninstance=9.1");
  policy_req data2 = parsed(
      "DATA", "recipient=sales@example.com\nrecipient_count=2\ninstance=9.1");
  policy_req eom =
      parsed("END-OF-MESSAGE",
             "recipient=sales@example.com\nrecipient_count=1\ninstance=9.2");
  policy_req mail = parsed("MAIL", "recipient=sales@example.com");

  cr_assert_str_eq(recipient(&rcpt), "Sales@Example.com");
  cr_assert_null(recipient(&none));
  cr_assert_null(recipient(&mail));
  /* No RCPT of 9.1 seen: Postfix's one recipient. */
  cr_assert_str_eq(recipient(&data1), "sales@example.com");
  cr_assert_null(recipient(&data2));
  cr_assert_str_eq(recipient(&eom), "sales@example.com");
  /* Its RCPT seen: what RCPT kept is the answer, not a second look. */
  (void)rules_rcpt_before(&rcpt, &mem);
  cr_assert_null(recipient(&data1));
  cr_assert_str_eq(recipient(&eom), "sales@example.com");
  /* A refused probe makes the next recipient's a check: looked up too. */
  cr_assert_eq(rules_end(RULES_PROBE, about("9.1"), 1, &mem), 1);
  cr_assert_eq(step(&rcpt, 0), RULES_CHECK);
  cr_assert_str_eq(recipient(&rcpt), "Sales@Example.com");
}

Test(rules, forwards_kept_per_message) {
  policy_req a = parsed("RCPT", "recipient=x@example.com\ninstance=5.1");
  policy_req a_data = parsed("DATA", "recipient_count=4\ninstance=5.1");
  policy_req b = parsed("RCPT", "recipient=y@example.com\ninstance=5.2");
  policy_req b_data = parsed("DATA", "recipient_count=1\ninstance=5.2");
  const obspamd_forwards *fw;

  cr_assert_eq(rules_forwards(&a_data, &mem)->n, 0u);
  (void)rules_rcpt_before(&a, &mem);
  rules_forward_keep(&mem, OBSPAM_MSG_FORWARD_REMOTE, "x@example.com");
  rules_forward_keep(&mem, OBSPAM_MSG_FORWARD_LOCAL, "desk@example.com");
  rules_forward_keep(&mem, OBSPAM_MSG_FORWARD_REMOTE, "catch.example");
  /* The same forwarding address again is the same recipient: kept once.
     A catch-all's mailbox (its domain) stands for each of its addresses. */
  rules_forward_keep(&mem, OBSPAM_MSG_FORWARD_REMOTE, "x@example.com");
  rules_forward_keep(&mem, OBSPAM_MSG_FORWARD_REMOTE, "catch.example");
  fw = rules_forwards(&a_data, &mem);
  cr_assert_eq(fw->n, 3u);
  cr_assert_str_eq(fw->f[0].mailbox, "x@example.com");
  cr_assert_eq(fw->f[0].flag, OBSPAM_MSG_FORWARD_REMOTE);
  cr_assert_eq(fw->f[0].count, 1u);
  cr_assert_str_eq(fw->f[1].mailbox, "desk@example.com");
  cr_assert_eq(fw->f[1].flag, OBSPAM_MSG_FORWARD_LOCAL);
  cr_assert_eq(fw->f[1].count, 1u);
  cr_assert_str_eq(fw->f[2].mailbox, "catch.example");
  cr_assert_eq(fw->f[2].count, 2u);
  /* Another message's DATA does not see them. */
  cr_assert_eq(rules_forwards(&b_data, &mem)->n, 0u);
  /* The charge forgets them. */
  cr_assert_eq(rules_end(RULES_DECIDE, about("5.1"), 0, &mem), 1);
  cr_assert_eq(rules_forwards(&a_data, &mem)->n, 0u);
  /* A new message's first RCPT starts its own. */
  (void)rules_rcpt_before(&a, &mem);
  rules_forward_keep(&mem, OBSPAM_MSG_FORWARD_REMOTE, "x@example.com");
  (void)rules_rcpt_before(&b, &mem);
  cr_assert_eq(rules_forwards(&b_data, &mem)->n, 0u);
  cr_assert_eq(rules_forwards(&a_data, &mem)->n, 0u);
}

Test(rules, forwards_are_bounded) {
  policy_req a = parsed("RCPT", "recipient=x@example.com\ninstance=6.1");
  policy_req none = parsed("RCPT", "recipient=x@example.com");
  policy_req a_data = parsed("DATA", "instance=6.1");
  char name[32];
  int i;

  (void)rules_rcpt_before(&a, &mem);
  for (i = 0; i < OBSPAMD_FORWARDS_MAX; i++) {
    snprintf(name, sizeof name, "f%d@example.com", i);
    cr_assert_eq(rules_forward_fits(&mem, name), 1);
    rules_forward_keep(&mem, OBSPAM_MSG_FORWARD_REMOTE, name);
  }
  /* Full: a new mailbox does not fit, a kept one still does. */
  cr_assert_eq(rules_forward_fits(&mem, "new@example.com"), 0);
  cr_assert_eq(rules_forward_fits(&mem, "f0@example.com"), 1);
  rules_forward_keep(&mem, OBSPAM_MSG_FORWARD_REMOTE, "f0@example.com");
  cr_assert_eq(rules_forwards(&a_data, &mem)->n, OBSPAMD_FORWARDS_MAX);
  cr_assert_eq(rules_forwards(&a_data, &mem)->f[0].count, 1u);
  /* Without an instance nothing is kept. */
  rules_memory_init(&mem);
  (void)rules_rcpt_before(&none, &mem);
  rules_forward_keep(&mem, OBSPAM_MSG_FORWARD_REMOTE, "x@example.com");
  cr_assert_eq(mem.fw.n, 0u);
}

/* A message is the one remembered exactly when strcmp says so: random
   instances of every length up to past RULES_INSTANCE_MAX, asked about
   after one kept over a longer one (whose bytes stay past its end), the
   same, cut, extended or with one byte changed. */
Test(rules, same_message_as_strcmp_tells) {
  unsigned seed = 17;
  int round;

  for (round = 0; round < 20000; round++) {
    char older[RULES_INSTANCE_MAX + 10], kept[RULES_INSTANCE_MAX + 10],
        asked[RULES_INSTANCE_MAX + 12], lines[200];
    size_t n, k, i;
    const char *want_kept;
    policy_req r;
    int want;

    seed = seed * 1103515245u + 12345u;
    n = (seed >> 16) % (RULES_INSTANCE_MAX + 6);
    for (i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      kept[i] = "AB.1"[(seed >> 16) % 4];
      older[i] = 'A';
    }
    kept[n] = '\0';
    memset(older + n, '.', sizeof(older) - 1 - n);
    older[sizeof(older) - 1] = '\0';
    older[RULES_INSTANCE_MAX - 1] = '\0';
    memcpy(asked, kept, n + 1);
    k = n;
    seed = seed * 1103515245u + 12345u;
    switch ((seed >> 16) % 4) {
    case 0: /* the same */
      break;
    case 1: /* cut */
      k = n > 0 ? (seed >> 4) % n : 0;
      asked[k] = '\0';
      break;
    case 2: /* extended by a byte or two */
      asked[k++] = older[n];
      if ((seed >> 8) & 1)
        asked[k++] = 'B';
      asked[k] = '\0';
      break;
    default: /* one byte changed */
      if (n > 0)
        asked[(seed >> 4) % n] = 'C';
      break;
    }
    /* kept over older, which leaves its bytes past kept's end. */
    rules_memory_init(&mem);
    cr_assert_eq(rules_end(RULES_DECIDE, about(older), 0, &mem), 1);
    cr_assert_eq(rules_end(RULES_DECIDE, about(kept), 0, &mem), 1);
    want_kept = n < RULES_INSTANCE_MAX ? kept : "";
    cr_assert_str_eq(mem.decided, want_kept);
    snprintf(lines, sizeof(lines), "instance=%s", asked);
    r = parsed("DATA", lines);
    want = asked[0] != '\0' && strcmp(asked, want_kept) == 0;
    cr_assert_eq(step(&r, 0), want ? RULES_DUNNO : RULES_DECIDE,
                 "'%s' after '%s'", asked, kept);
  }
}
