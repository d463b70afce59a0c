/* SPDX-License-Identifier: MIT */
/* The texts both daemons show: the SMTP refusal, the log lines of a
   refusal and a notice, and the notice mails. */
#include "common_test.h"
#include "log.h"
#include "refusal.h"
#include "service.h"
#include "util.h"

static char text[1024];
static int code;

/* text holds what; a failure shows the whole text. */
#define expect_in(text, what)                                                  \
  cr_assert(strstr((text), (what)) != NULL, "no \"%s\" in:\n%s", (what), (text))

/* Counted in recipients (0), or in messages (1). */
static int unit;
/* The window the verdicts name (0: the recipients cap, scripts). */
static int64_t window = OBSPAM_WINDOW_HOUR;

static const char *refusal(int kind, const char *object, int64_t limit,
                           int64_t count, int64_t retry, int reject,
                           const obspam_message *m) {
  obspam_verdict v =
      refused_verdict(kind, object, limit, count, retry, (int)window);

  code = 0;
  obspamd_refusal_text_msg(&v, m, reject, unit, &code, text, sizeof(text));
  return text;
}

/* The refusal text of v, rejected or not, counted in messages or not. */
static const char *text_of(const obspam_verdict *v, int reject, int messages) {
  obspamd_refusal_text(v, reject, messages, &code, text, sizeof(text));
  return text;
}

Test(refusal, over_the_limit_with_time_to_wait) {
  cr_assert_str_eq(
      refusal(OBSPAM_MAILBOX, "info@example.com", 20, 20, 420, 0, NULL),
      "4.7.1 mailbox info@example.com has sent to 20 recipients in "
      "the last 60 minutes, its limit is 20 recipients per hour; try again "
      "in 7 minutes");
  cr_assert_eq(code, 451);
  cr_assert_str_eq(refusal(OBSPAM_SUBSCRIPTION, "acme", 1, 1, 3599, 0, NULL),
                   "4.7.1 subscription acme has sent to 1 recipient in the "
                   "last 60 minutes, its limit is 1 recipient per hour; try "
                   "again in 60 minutes");
}

/* One message to 2 recipients is not "2 messages": the words follow the
   engine's unit. */
Test(refusal, the_unit_word) {
  unit = 1;
  cr_assert_str_eq(
      refusal(OBSPAM_MAILBOX, "info@example.com", 20, 20, 420, 0, NULL),
      "4.7.1 mailbox info@example.com has sent 20 messages in the last 60 "
      "minutes, its limit is 20 messages per hour; try again in 7 minutes");
  cr_assert_str_eq(refusal(OBSPAM_DOMAIN, "example.com", 1, 1, 60, 0, NULL),
                   "4.7.1 domain example.com has sent 1 message in the last "
                   "60 minutes, its limit is 1 message per hour; try again "
                   "in 1 minute");
  unit = 0;
  cr_assert_str_eq(refusal(OBSPAM_DOMAIN, "example.com", 2, 2, 60, 0, NULL),
                   "4.7.1 domain example.com has sent to 2 recipients in the "
                   "last 60 minutes, its limit is 2 recipients per hour; try "
                   "again in 1 minute");
}

/* The window the verdict names (1.3), in words, each in both units. */
Test(refusal, the_window) {
  obspam_verdict v = refused_verdict(OBSPAM_MAILBOX, "info@example.com", 20, 20,
                                     35, OBSPAM_WINDOW_MINUTE);

  cr_assert_str_eq(text_of(&v, 0, 1),
                   "4.7.1 mailbox info@example.com has sent 20 "
                   "messages in the last minute, its limit is 20 "
                   "messages per minute; try again in 35 seconds");
  cr_assert_eq(code, 451);
  v.retry_after = 1;
  cr_assert_str_eq(text_of(&v, 0, 0),
                   "4.7.1 mailbox info@example.com has sent to 20 "
                   "recipients in the last minute, its limit is 20 "
                   "recipients per minute; try again in 1 second");
  v.window = OBSPAM_WINDOW_HOUR;
  v.retry_after = 420;
  cr_assert_str_eq(text_of(&v, 0, 1),
                   "4.7.1 mailbox info@example.com has sent 20 "
                   "messages in the last 60 minutes, its limit is 20 "
                   "messages per hour; try again in 7 minutes");
  v.window = OBSPAM_WINDOW_DAY;
  v.limit = v.count = 1000;
  v.retry_after = 7200;
  cr_assert_str_eq(text_of(&v, 0, 1),
                   "4.7.1 mailbox info@example.com has sent 1000 "
                   "messages in the last 24 hours, its limit is 1000 "
                   "messages per day; try again in 120 minutes");
  v.retry_after = 5 * 3600 + 11 * 60 + 1;
  cr_assert_str_eq(text_of(&v, 0, 0),
                   "4.7.1 mailbox info@example.com has sent to 1000 "
                   "recipients in the last 24 hours, its limit is "
                   "1000 recipients per day; try again in 5 hours 12 "
                   "minutes");
  /* Rejected: the window's words, no wait. */
  cr_assert_str_eq(text_of(&v, 1, 0),
                   "5.7.1 mailbox info@example.com has sent to 1000 "
                   "recipients in the last 24 hours, its limit is "
                   "1000 recipients per day");
  cr_assert_eq(code, 550);
  /* A message larger than a window's limit never fits it. */
  v.window = OBSPAM_WINDOW_MINUTE;
  v.limit = 10;
  v.count = 0;
  v.retry_after = -1;
  cr_assert_str_eq(text_of(&v, 0, 0),
                   "4.7.1 mailbox info@example.com cannot send this "
                   "message: it has more recipients than its limit of "
                   "10 recipients per minute");
}

/* The recipients cap (verdict window 0, limit the cap, count the
   message's recipients): said in recipients whatever the unit, never
   with a wait. */
Test(refusal, the_recipients_cap) {
  obspam_message m = OBSPAM_MESSAGE_INIT;

  window = 0;
  cr_assert_str_eq(
      refusal(OBSPAM_MAILBOX, "info@example.com", 10, 30, -1, 0, NULL),
      "4.7.1 mailbox info@example.com cannot send this message: it has 30 "
      "recipients, its limit is 10 recipients per message");
  cr_assert_eq(code, 451);
  unit = 1;
  cr_assert_str_eq(refusal(OBSPAM_DOMAIN, "example.com", 1, 2, -1, 1, NULL),
                   "5.7.1 domain example.com cannot send this message: it "
                   "has 2 recipients, its limit is 1 recipient per message");
  cr_assert_eq(code, 550);
  cr_assert_str_eq(refusal(OBSPAM_MAILBOX, "a@example.com", 0, 1, -1, 0, NULL),
                   "4.7.1 mailbox a@example.com cannot send this message: it "
                   "has 1 recipient, its limit is 0 recipients per message");
  unit = 0;
  /* A script's message at its subscription, over the cap: its count is
     the message's recipients. */
  m.flags = OBSPAM_MSG_SCRIPT;
  m.uid = 10002;
  m.recipients = 12;
  cr_assert_str_eq(refusal(OBSPAM_SUBSCRIPTION, "bakery", 10, 12, -1, 0, &m),
                   "4.7.1 subscription bakery cannot send this message: it "
                   "has 12 recipients, its limit is 10 recipients per "
                   "message");
  cr_assert_eq(
      obspamd_refusal_reason(&(obspam_verdict){.kind = OBSPAM_SUBSCRIPTION,
                                               .limit = 10,
                                               .count = 12,
                                               .retry_after = -1},
                             &m),
      OBSPAMD_REASON_CAP);
  /* Scripts forbidden: the subscription's hourly figures. */
  cr_assert_str_eq(refusal(OBSPAM_SUBSCRIPTION, "bakery", 5000, 7, -1, 0, &m),
                   "4.7.1 scripts of subscription bakery may not send mail");
  window = OBSPAM_WINDOW_HOUR;
}

/* The names of the reasons, as the log lines and the metrics give them. */
Test(refusal, reason_names) {
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  static const struct {
    int64_t window, retry;
    const char *name;
  } cases[] = {{60, 5, "minute"},
               {3600, 60, "hour"},
               {86400, 60, "day"},
               {0, 60, "hour"},
               {0, -1, "max-recipients"}};
  size_t i;

  v.kind = OBSPAM_MAILBOX;
  v.limit = 10;
  v.count = 11;
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    v.window = cases[i].window;
    v.retry_after = cases[i].retry;
    cr_assert_str_eq(obspamd_reason_name(obspamd_refusal_reason(&v, NULL)),
                     cases[i].name);
  }
  v.kind = OBSPAM_SUBSCRIPTION;
  v.window = 0;
  v.retry_after = -1;
  v.limit = -1;
  cr_assert_str_eq(obspamd_reason_name(obspamd_refusal_reason(&v, NULL)),
                   "scripts");
  cr_assert_str_eq(obspamd_reason_name(OBSPAMD_REASONS), "-");
  cr_assert_str_eq(obspamd_window_per(OBSPAM_WINDOW_MINUTE), "per minute");
  cr_assert_str_eq(obspamd_window_per(OBSPAM_WINDOW_HOUR), "per hour");
  cr_assert_str_eq(obspamd_window_per(OBSPAM_WINDOW_DAY), "per day");
}

/* A permanent refusal (action reject) gives no retry hint: its sender
   does not retry. */
Test(refusal, reject_has_no_retry_hint) {
  cr_assert_str_eq(
      refusal(OBSPAM_DOMAIN, "example.com", 1000, 1000, 61, 1, NULL),
      "5.7.1 domain example.com has sent to 1000 recipients in the last 60 "
      "minutes, its limit is 1000 recipients per hour");
  cr_assert_eq(code, 550);
  unit = 1;
  cr_assert_str_eq(
      refusal(OBSPAM_MAILBOX, "info@example.com", 20, 20, 3600, 1, NULL),
      "5.7.1 mailbox info@example.com has sent 20 messages in the last 60 "
      "minutes, its limit is 20 messages per hour");
  cr_assert_null(strstr(text, "try again"));
}

/* Under a minute in seconds; then whole minutes rounded up, so that a
   sender who waits as long as it is told fits; past two hours, hours and
   minutes. */
Test(refusal, the_wait_in_words) {
  static const struct {
    int64_t retry;
    const char *tail;
  } cases[] = {{0, "in 1 second"},
               {1, "in 1 second"},
               {2, "in 2 seconds"},
               {59, "in 59 seconds"},
               {60, "in 1 minute"},
               {61, "in 2 minutes"},
               {120, "in 2 minutes"},
               {121, "in 3 minutes"},
               {3600, "in 60 minutes"},
               {7200, "in 120 minutes"},
               {7201, "in 2 hours 1 minute"},
               {7260, "in 2 hours 1 minute"},
               {7261, "in 2 hours 2 minutes"},
               {10800, "in 3 hours"},
               {3600 + 82800, "in 24 hours"},
               {86399, "in 24 hours"}};
  size_t i;

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *t =
        refusal(OBSPAM_MAILBOX, "a@b.example", 5, 5, cases[i].retry, 0, NULL);
    size_t n = strlen(cases[i].tail);
    cr_assert(strlen(t) > n && strcmp(t + strlen(t) - n, cases[i].tail) == 0,
              "retry %lld: '%s' should end with '%s'",
              (long long)cases[i].retry, t, cases[i].tail);
  }
}

/* Never fits (retry_after -1): no retry hint, deferred or rejected. */
Test(refusal, never_fits) {
  obspam_message m = OBSPAM_MESSAGE_INIT;

  cr_assert_str_eq(
      refusal(OBSPAM_MAILBOX, "info@example.com", 0, 0, -1, 0, NULL),
      "4.7.1 mailbox info@example.com cannot send this message: its limit "
      "is 0");
  cr_assert_str_eq(refusal(OBSPAM_DOMAIN, "example.com", 50, 3, -1, 1, NULL),
                   "5.7.1 domain example.com cannot send this message: it "
                   "has more recipients than its limit of 50 recipients per "
                   "hour");
  cr_assert_eq(code, 550);
  /* Counted in messages, only the recipients of one message can be too
     many for a limit above 0 (the cap on recipients per message). */
  unit = 1;
  cr_assert_str_eq(refusal(OBSPAM_DOMAIN, "example.com", 50, 3, -1, 0, NULL),
                   "4.7.1 domain example.com cannot send this message: it "
                   "has more recipients than the 50 one message may have");
  unit = 0;

  /* A script refused at its subscription with no time to wait and no
     window: scripts are forbidden there. */
  window = 0;
  m.flags = OBSPAM_MSG_SCRIPT;
  m.uid = 10002;
  cr_assert_str_eq(refusal(OBSPAM_SUBSCRIPTION, "bakery", 5000, 0, -1, 0, &m),
                   "4.7.1 scripts of subscription bakery may not send mail");
  /* Without the message, an unlimited subscription tells it as well. */
  cr_assert_str_eq(refusal(OBSPAM_SUBSCRIPTION, "bakery", -1, 0, -1, 0, NULL),
                   "4.7.1 scripts of subscription bakery may not send mail");
  /* A limit of 0 is said as such, script or not. */
  window = OBSPAM_WINDOW_HOUR;
  cr_assert_str_eq(refusal(OBSPAM_SUBSCRIPTION, "bakery", 0, 0, -1, 0, &m),
                   "4.7.1 subscription bakery cannot send this message: its "
                   "limit is 0");
  /* A script charged to a mailbox (SASL login) is refused as any mail. */
  window = OBSPAM_WINDOW_HOUR;
  cr_assert_str_eq(refusal(OBSPAM_MAILBOX, "info@example.com", 5, 0, -1, 0, &m),
                   "4.7.1 mailbox info@example.com cannot send this message: "
                   "it has more recipients than its limit of 5 recipients "
                   "per hour");
}

Test(refusal, fits_an_smtp_reply_line) {
  char object[OBSPAM_NAME_MAX + 1];
  const char *t;
  size_t i;

  /* The longest name, and the largest figures. */
  memset(object, 'a', OBSPAM_NAME_MAX);
  object[OBSPAM_NAME_MAX - 12] = '@';
  object[OBSPAM_NAME_MAX] = '\0';
  t = refusal(OBSPAM_SUBSCRIPTION, object, INT64_MAX, INT64_MAX, INT64_MAX, 0,
              NULL);
  cr_assert_leq(strlen(t), OBSPAMD_REFUSAL_MAX);
  cr_assert_leq(strlen("451 ") + strlen(t) + strlen("\r\n"), 512);
  cr_assert(strncmp(t, "4.7.1 subscription aaaa", 23) == 0, "%s", t);
  for (i = 0; t[i]; i++)
    cr_assert(t[i] >= 0x20 && t[i] < 0x7f, "byte %zu of '%s'", i, t);
}

Test(refusal, printable_ascii_only) {
  /* UTF-8 (and any byte above 0x7f) is not allowed in an SMTP reply. */
  cr_assert_str_eq(
      refusal(OBSPAM_MAILBOX, "caf\xc3\xa9@example.com", 2, 2, 30, 0, NULL),
      "4.7.1 mailbox caf??@example.com has sent to 2 recipients in "
      "the last 60 minutes, its limit is 2 recipients per hour; try again "
      "in 30 seconds");
}

Test(refusal, truncated_to_the_buffer) {
  obspam_verdict v =
      refused_verdict(OBSPAM_MAILBOX, "info@example.com", 20, 20, 420, 0);
  char small[10];

  obspamd_refusal_text(&v, 1, 0, &code, small, sizeof(small));
  cr_assert_str_eq(small, "5.7.1 mai");
  cr_assert_eq(code, 550);
  code = 0;
  obspamd_refusal_text(&v, 0, 0, &code, NULL, 0);
  cr_assert_eq(code, 451);
}

/* ---- log lines ----------------------------------------------------------- */

/* Each log test writes into a directory of its own, its log captured. */
TestSuite(log, .init = log_in_test_dir);

Test(log, refusal_line) {
  obspam_verdict v =
      refused_verdict(OBSPAM_MAILBOX, "info@example.com", 20, 20, 420, 0);
  obspam_message m = OBSPAM_MESSAGE_INIT;

  m.sasl_username = "info@example.com";
  m.client_address = "203.0.113.7";
  m.recipients = 3;
  obspamd_log_refusal(&v, &m, 0, "4FgH2x1Kz9");

  v.kind = OBSPAM_SUBSCRIPTION;
  v.limit = -1;
  v.count = 0;
  v.retry_after = -1;
  snprintf(v.object, sizeof(v.object), "bakery");
  m.sasl_username = NULL;
  m.client_address = "";
  m.sender = "www data@bakery.example";
  m.recipients = 1;
  m.flags = OBSPAM_MSG_SCRIPT;
  m.uid = 10002;
  m.script = "/var/www/my site/contact.php";
  obspamd_log_refusal(&v, &m, 1, NULL);

  cr_assert(logged_line("refuse kind=mailbox object=info@example.com "
                        "limit=20 count=20 unit=recipients retry=420 "
                        "queue_id=4FgH2x1Kz9 sasl=info@example.com "
                        "sender=- client=203.0.113.7 recipients=3 "
                        "window=hour"),
            "%s", logged());
  cr_assert(logged_line("refuse kind=subscription object=bakery "
                        "limit=unlimited count=0 unit=messages retry=never "
                        "queue_id=- sasl=- "
                        "sender=www?data@bakery.example client=- "
                        "recipients=1 window=scripts uid=10002 "
                        "script=/var/www/my?site/contact.php"),
            "%s", logged());
}

/* Names keep their UTF-8 in log lines; only blanks, control characters
   and bytes that are not UTF-8 become '?'. */
Test(log, utf8_names_intact) {
  obspam_verdict v =
      refused_verdict(OBSPAM_MAILBOX, "j\xc3\xb6rg@example.com", 2, 2, 60, 0);
  obspam_message m = OBSPAM_MESSAGE_INIT;

  m.sasl_username = "J\xc3\x96RG@example.com";
  m.sender = "bad\xff\xc3@example.com"; /* not UTF-8 */
  m.flags = OBSPAM_MSG_SCRIPT;
  m.uid = 33;
  m.script = "/var/www/b\xc3\xbc"
             "cher/k\xc3\xa4se.php\x01";
  obspamd_log_refusal(&v, &m, 0, "4FgH2x1Kz9");
  cr_assert(logged_line("refuse kind=mailbox object=j\xc3\xb6rg@example.com "
                        "limit=2 count=2 unit=recipients retry=60 "
                        "queue_id=4FgH2x1Kz9 sasl=J\xc3\x96RG@example.com "
                        "sender=bad??@example.com client=- recipients=1 "
                        "window=hour uid=33 script=/var/www/b\xc3\xbc"
                        "cher/k\xc3\xa4se.php?"),
            "%s", logged());

  /* obspamd_log itself: UTF-8 passes, stray bytes do not. */
  obspamd_log(LOG_INFO, "caf\xc3\xa9 \xe2\x82\xac \xc0\xaf \xed\xa0\x80 "
                        "\xf4\x90\x80\x80 cut\xe2\x82");
  cr_assert(logged_line("caf\xc3\xa9 \xe2\x82\xac ?? ??? ???? cut??"), "%s",
            logged());
}

/* A name cleaned into a buffer too small for its last character ends
   before it: no character is ever cut in two. */
Test(log, clean_never_cuts_a_character) {
  char out[6];

  obspamd__clean(out, sizeof(out), "ab\xc3\xb6\xe2\x82\xac",
                 OBSPAMD__CLEAN_UTF8);
  cr_assert_str_eq(out, "ab\xc3\xb6");
  obspamd__clean(out, sizeof(out), "ab\xc3\xb6 x", OBSPAMD__CLEAN_NO_BLANK);
  cr_assert_str_eq(out, "ab???");
  cr_assert_eq(obspamd_utf8_char("\xf0\x9f\x98\x80"), 4);
  cr_assert_eq(obspamd_utf8_char("\xe0\x80\x80"), 0); /* overlong */
  cr_assert_eq(obspamd_utf8_char("\x80"), 0);
  cr_assert_eq(obspamd_utf8_char("\xc3"), 0); /* cut short by the NUL */
}

Test(log, one_line_per_event_with_prefix) {
  char *raw, stamp[32], name[32];
  int pid = 0, n = 0;

  obspamd_log(LOG_INFO, "a\nforged line\tand tab");
  obspamd_log(LOG_ERR, "broken");
  obspamd_log(LOG_WARNING, "careful");
  obspamd_log(LOG_DEBUG, "hidden");
  obspamd_log_verbose(1);
  obspamd_log(LOG_DEBUG, "shown");
  cr_assert_str_eq(logged(), "a?forged line?and tab\n"
                             "error: broken\n"
                             "warning: careful\n"
                             "debug: shown\n");
  /* The prefix: "2024-05-01T12:34:56Z test[PID]: ". */
  raw = read_file(log_path);
  cr_assert_eq(sscanf(raw, "%31s %31[^[][%d]: %n", stamp, name, &pid, &n), 3,
               "%s", raw);
  cr_assert_eq(strlen(stamp), 20, "%s", stamp);
  cr_assert_eq(stamp[4], '-');
  cr_assert_eq(stamp[10], 'T');
  cr_assert_eq(stamp[19], 'Z');
  cr_assert_str_eq(name, "test");
  cr_assert_eq(pid, (int)getpid());
  free(raw);
}

/* ---- notices and their mails --------------------------------------------- */

static obspam_notice sample_notice(void) {
  obspam_notice n = OBSPAM_NOTICE_INIT;

  n.kind = OBSPAM_MAILBOX;
  n.name = "info@example.com";
  n.subscription = "acme";
  n.contact = "ops@acme.example";
  n.limit = 20;
  n.sent = 20;
  n.refused = 12;
  n.exceeded = 9;
  n.first_refused = 1714566667; /* 2024-05-01 12:31:07 */
  n.last_refused = 1714568320;  /* 12:58:40 */
  n.period_start = 1714564800;  /* 12:00 */
  n.period_end = 1714568400;    /* 13:00 */
  n.window = OBSPAM_WINDOW_HOUR;
  return n;
}

Test(notice, log_line) {
  obspam_notice n = sample_notice();
  char line[1200];

  obspamd__notice_line(&n, 0, line, sizeof(line));
  cr_assert_str_eq(line, "notice kind=mailbox object=info@example.com "
                         "subscription=acme limit=20 unit=recipients "
                         "window=hour sent=20 refused=12 exceeded=9 "
                         "first=2024-05-01T12:31:07Z "
                         "last=2024-05-01T12:58:40Z "
                         "period=2024-05-01T12:00:00Z..2024-05-01T13:00:00Z");
  n.kind = OBSPAM_SUBSCRIPTION;
  n.name = "s\xc3\xb6lo";
  n.subscription = NULL;
  n.limit = -1;
  obspamd__notice_line(&n, 1, line, sizeof(line));
  cr_assert_str_eq(line, "notice kind=subscription object=s\xc3\xb6lo "
                         "subscription=- limit=unlimited unit=messages "
                         "window=hour sent=20 refused=12 exceeded=9 "
                         "first=2024-05-01T12:31:07Z "
                         "last=2024-05-01T12:58:40Z "
                         "period=2024-05-01T12:00:00Z..2024-05-01T13:00:00Z");
  /* The other windows, the recipients cap and forbidden scripts (no
     window; an unlimited hourly limit). */
  n.limit = 1000;
  n.window = OBSPAM_WINDOW_DAY;
  obspamd__notice_line(&n, 0, line, sizeof(line));
  expect_in(line, " limit=1000 unit=recipients window=day sent=20 ");
  n.window = OBSPAM_WINDOW_MINUTE;
  obspamd__notice_line(&n, 0, line, sizeof(line));
  expect_in(line, " unit=recipients window=minute sent=");
  n.window = 0;
  n.limit = 10;
  obspamd__notice_line(&n, 0, line, sizeof(line));
  expect_in(line, " limit=10 unit=recipients window=max-recipients ");
  n.limit = -1;
  obspamd__notice_line(&n, 0, line, sizeof(line));
  expect_in(line, " limit=unlimited unit=recipients window=scripts ");
}

static const obspamd__mail_info sample_info = {"obspam-policyd",
                                               "obspam@mx1.example.net",
                                               "mx1.example.net",
                                               "postmaster@example.net",
                                               0,
                                               1714568405,
                                               0,
                                               OBSPAMD_LOCAL_NONE,
                                               "/run/obspam/control.sock",
                                               0};

/* The headers after From:, To: and Reply-To: of both mails about
   sample_notice(), and the blank line after them. */
#define SAMPLE_HEADERS                                                         \
  "Subject: [obspam] mailbox info@example.com: 9 over-the-limit attempts\n"    \
  "Date: Wed, 01 May 2024 13:00:05 +0000\n"                                    \
  "Auto-Submitted: auto-generated\n"                                           \
  "MIME-Version: 1.0\n"                                                        \
  "Content-Type: text/plain; charset=UTF-8\n"                                  \
  "Content-Transfer-Encoding: 8bit\n"                                          \
  "\n"

Test(notice, mail_to_the_admin) {
  obspam_notice n = sample_notice();
  char buf[8192];
  size_t len = obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));

  cr_assert_eq(len, strlen(buf));
  cr_assert_str_eq(
      buf,
      "From: obspam-policyd <obspam@mx1.example.net>\n"
      "To: postmaster@example.net\n" SAMPLE_HEADERS
      "The mailbox info@example.com went over its limit of 20 per hour\n"
      "on mx1.example.net.\n"
      "\n"
      "  Object:         mailbox info@example.com\n"
      "  Subscription:   acme\n"
      "  Contact:        ops@acme.example (sent a copy of this notice)\n"
      "  Limit:          20 recipients per hour\n"
      "  Period:         2024-05-01 12:00:00 UTC to 2024-05-01 13:00:00 UTC\n"
      "  Sent:           20 recipients in the period\n"
      "  Refused:        9 over-the-limit attempts\n"
      "                  and 3 more while another limit was reached\n"
      "  Refused mail:   deferred (the sending server retries)\n"
      "  First refusal:  2024-05-01 12:31:07 UTC\n"
      "  Last refusal:   2024-05-01 12:58:40 UTC\n"
      "\n"
      "What to do:\n"
      "- If this traffic is not expected, a password may have been stolen "
      "or a\n"
      "  script abused. obspam-policyd logs each refusal (syslog, facility\n"
      "  mail) on a line of its own; the lines about this mailbox:\n"
      "    grep -iE 'refuse .* (object|sasl|sender)=info@example\\.com '\n"
      "  The live figures:\n"
      "    obspamctl status mailbox info@example.com\n"
      "    obspamctl report --since 24h\n"
      "- If the traffic is legitimate, raise the limit in the "
      "configuration\n"
      "  file and reload it: obspamctl reload\n"
      "\n"
      "-- \n"
      "obspam-policyd on mx1.example.net\n");
}

Test(notice, mail_to_the_contact) {
  obspam_notice n = sample_notice();
  char buf[8192];

  n.refused = n.exceeded;
  obspamd__notice_mail(&sample_info, &n, 1, buf, sizeof(buf));
  cr_assert_str_eq(
      buf,
      "From: obspam-policyd <obspam@mx1.example.net>\n"
      "To: ops@acme.example\n"
      "Reply-To: postmaster@example.net\n" SAMPLE_HEADERS "Hello,\n"
      "\n"
      "The mailbox info@example.com of your subscription acme\n"
      "tried to send more mail than its limit of 20 per hour allows.\n"
      "\n"
      "  Object:         mailbox info@example.com\n"
      "  Subscription:   acme\n"
      "  Limit:          20 recipients per hour\n"
      "  Period:         2024-05-01 12:00:00 UTC to 2024-05-01 13:00:00 UTC\n"
      "  Sent:           20 recipients in the period\n"
      "  Refused:        9 over-the-limit attempts\n"
      "  Refused mail:   deferred (the sending server retries)\n"
      "  First refusal:  2024-05-01 12:31:07 UTC\n"
      "  Last refusal:   2024-05-01 12:58:40 UTC\n"
      "\n"
      "What to do:\n"
      "- If you did not send this mail, the password of a mailbox may have "
      "been\n"
      "  stolen, or a form or script of your web site abused: change the\n"
      "  password and check your site's scripts.\n"
      "- If the mail was legitimate, wait until the count of the last 60 "
      "minutes\n"
      "  is below the limit, or ask your hosting provider for a higher "
      "limit:\n"
      "  reply to this mail (postmaster@example.net).\n"
      "\n"
      "-- \n"
      "obspam-policyd on mx1.example.net\n");
}

/* A notice names the window of the limit it is about (1.3): its figure
   per minute or per day, the cap on recipients per message, or scripts
   forbidden; and what the contact can do about each. */
Test(notice, mail_of_each_window) {
  obspam_notice n = sample_notice();
  char buf[8192];

  n.limit = 1000;
  n.window = OBSPAM_WINDOW_DAY;
  obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));
  expect_in(buf, "\nThe mailbox info@example.com went over its limit "
                 "of 1000 per day\non mx1.example.net.\n");
  expect_in(buf, "\n  Limit:          1000 recipients per day\n");
  obspamd__notice_mail(&sample_info, &n, 1, buf, sizeof(buf));
  expect_in(buf, "\ntried to send more mail than its limit of 1000 "
                 "per day allows.\n");
  expect_in(buf, "wait until the count of the last 24 hours\n  is "
                 "below the limit");

  n.limit = 20;
  n.window = OBSPAM_WINDOW_MINUTE;
  obspamd__notice_mail(&sample_info, &n, 1, buf, sizeof(buf));
  expect_in(buf, "\n  Limit:          20 recipients per minute\n");
  expect_in(buf, "wait until the count of the last minute\n  is "
                 "below the limit");

  /* The cap: in recipients whatever the unit. */
  n.limit = 10;
  n.window = 0;
  obspamd__notice_mail(&(obspamd__mail_info){.daemon = "obspam-policyd",
                                             .from = "obspam@mx1.example.net",
                                             .hostname = "mx1.example.net",
                                             .admin = "postmaster@example.net",
                                             .unit = 1},
                       &n, 0, buf, sizeof(buf));
  expect_in(buf, "\nThe mailbox info@example.com went over its limit "
                 "of 10 recipients per message\non mx1.example.net.\n");
  expect_in(buf, "\n  Limit:          10 recipients per message\n");
  obspamd__notice_mail(&sample_info, &n, 1, buf, sizeof(buf));
  expect_in(buf, "- If the mail was legitimate, send each message to at "
                 "most 10\n  recipients, or ask your hosting provider "
                 "for a higher limit:\n");

  /* Forbidden scripts: no figure. */
  n.kind = OBSPAM_SUBSCRIPTION;
  n.name = "acme";
  n.limit = -1;
  obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));
  expect_in(buf, "\nThe subscription acme went over its sending "
                 "limit\non mx1.example.net.\n");
  expect_in(buf, "\n  Limit:          scripts may not send mail\n");
}

Test(notice, mail_details) {
  obspam_notice n = sample_notice();
  obspamd__mail_info mi = sample_info;
  char buf[8192], small[16];

  /* A subscription, one refusal, rejected, counted in messages:
     singulars, no Subscription: line, and what reject means. */
  n.kind = OBSPAM_SUBSCRIPTION;
  n.name = "acme";
  n.refused = 1;
  n.exceeded = 1;
  n.sent = 1;
  n.limit = 1;
  mi.reject = 1;
  mi.unit = 1;
  obspamd__notice_mail(&mi, &n, 1, buf, sizeof(buf));
  expect_in(buf, "Subject: [obspam] subscription acme: 1 "
                 "over-the-limit attempt\n");
  expect_in(buf, "\nYour subscription acme\ntried to send");
  expect_in(buf, "  Limit:          1 message per hour\n"
                 "  Period:");
  expect_in(buf, "  Sent:           1 message in the period\n"
                 "  Refused:        1 over-the-limit attempt\n"
                 "  Refused mail:   rejected (the sender got an "
                 "error)\n");
  cr_assert_null(strstr(buf, "Subscription:"), "%s", buf);

  /* Header values are printable ASCII: a name outside ASCII is encoded
     in the subject (RFC 2047, words of whole characters, lines of at most
     76 characters); the body keeps UTF-8. */
  n = sample_notice();
  n.name = "caf\xc3\xa9@example.com";
  obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));
  expect_in(buf, "\nSubject: "
                 "=?UTF-8?B?W29ic3BhbV0gbWFpbGJveCBjYWbDqUBleGFtcGxlLmNv"
                 "bTogOSBv?=\n"
                 " =?UTF-8?B?dmVyLXRoZS1saW1pdCBhdHRlbXB0cw==?=\n"
                 "Date: ");
  expect_in(buf, "  Object:         mailbox caf\xc3\xa9@example.com\n");
  expect_in(buf, "    obspamctl status mailbox "
                 "caf\xc3\xa9@example.com\n");

  /* The longest name: every header line printable ASCII, at most 76
     characters. */
  {
    char longest[OBSPAM_NAME_MAX + 1], *line, *end;
    size_t i;
    for (i = 0; i + 2 <= 300; i += 2)
      memcpy(longest + i, "\xc3\xa9", 2);
    snprintf(longest + 300, sizeof(longest) - 300, "@example.com");
    n.name = longest;
    obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));
    for (line = buf; *line != '\n'; line = end + 1) {
      end = strchr(line, '\n');
      cr_assert_not_null(end);
      cr_assert_leq(end - line, 76, "%.*s", (int)(end - line), line);
      for (i = 0; line + i < end; i++)
        cr_assert(line[i] >= 0x20 && line[i] < 0x7f, "%s", buf);
    }
  }
  n.name = "caf\xc3\xa9@example.com";

  /* Truncation: the length needed is returned, as snprintf does. */
  cr_assert_eq(obspamd__notice_mail(&sample_info, &n, 0, small, sizeof(small)),
               obspamd__notice_mail(&sample_info, &n, 0, NULL, 0));
  cr_assert_str_eq(small, "From: obspam-po");
}

/* The milter holds a refused local submission: its notices say so, and
   name its own control socket, as its unit starts it. */
Test(notice, mail_of_the_milter) {
  obspam_notice n = sample_notice();
  obspamd__mail_info mi = sample_info;
  char buf[8192];

  mi.daemon = "obspam-milter";
  mi.local_action = OBSPAMD_LOCAL_HOLD;
  mi.control = "/run/obspam-milter/control";
  n.kind = OBSPAM_SUBSCRIPTION;
  n.name = "bakery";
  obspamd__notice_mail(&mi, &n, 0, buf, sizeof(buf));
  expect_in(buf, "  Refused mail:   deferred over SMTP (the sending "
                 "server retries);\n"
                 "                  held when submitted locally "
                 "(postsuper -H releases it)\n");
  expect_in(buf, "  The live figures:\n"
                 "    obspamctl --control /run/obspam-milter/control "
                 "status subscription bakery\n"
                 "    obspamctl --control /run/obspam-milter/control "
                 "report --since 24h\n");
  expect_in(buf, "reload it: obspamctl --control "
                 "/run/obspam-milter/control reload\n");
  expect_in(buf, "    grep -iE 'refuse kind=subscription "
                 "object=bakery '\n");

  mi.local_action = OBSPAMD_LOCAL_BOUNCE;
  mi.reject = 1;
  obspamd__notice_mail(&mi, &n, 1, buf, sizeof(buf));
  expect_in(buf, "  Refused mail:   rejected over SMTP (the sender "
                 "got an error);\n"
                 "                  returned to the sender when "
                 "submitted locally\n");

  /* No control socket: no obspamctl command that could not reach it. */
  mi.control = NULL;
  obspamd__notice_mail(&mi, &n, 0, buf, sizeof(buf));
  cr_assert_null(strstr(buf, "obspamctl status"), "%s", buf);
  expect_in(buf, "  (obspam-milter has no control socket for "
                 "obspamctl: see its\n  --control option.)\n");
}

/* The grep command a notice suggests finds the real refusal lines about
   its object, and only those: it is run on a log the daemon's own code
   wrote. */
Test(notice, grep_hint_matches_the_log) {
  static const struct {
    int kind;
    const char *name;
    const char *hits; /* queue IDs of the lines it must find */
  } cases[] = {
      {OBSPAM_MAILBOX, "demo@bakery.example", "Q1 Q2"},
      {OBSPAM_MAILBOX, "o'neil+x@bakery.example", "Q4"},
      {OBSPAM_DOMAIN, "bakery.example", "Q1 Q2 Q3 Q4 Q7"},
      {OBSPAM_SUBSCRIPTION, "bakery", "Q3"},
      {OBSPAM_MAILBOX, "j\xc3\xb6rg@example.com", "Q5"},
      {OBSPAM_MAILBOX, "o''ne'''il@bakery.example", "Q7"},
  };
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  obspam_message m = OBSPAM_MESSAGE_INIT;
  size_t i;

  log_in_test_dir();
  v.action = OBSPAM_REFUSE;
  v.limit = 5;
  v.count = 5;
  v.retry_after = 60;
  /* Q1: the mailbox named; Q2: its domain named, the login in upper
     case; Q3: the subscription named, a sender of the domain; Q4: a
     mailbox whose name needs quoting; Q5: UTF-8. */
  v.kind = OBSPAM_MAILBOX;
  snprintf(v.object, sizeof(v.object), "demo@bakery.example");
  m.sasl_username = "demo@bakery.example";
  obspamd_log_refusal(&v, &m, 0, "Q1");
  v.kind = OBSPAM_DOMAIN;
  snprintf(v.object, sizeof(v.object), "bakery.example");
  m.sasl_username = "DEMO@Bakery.Example";
  obspamd_log_refusal(&v, &m, 0, "Q2");
  v.kind = OBSPAM_SUBSCRIPTION;
  snprintf(v.object, sizeof(v.object), "bakery");
  m.sasl_username = NULL;
  m.sender = "shop@bakery.example";
  obspamd_log_refusal(&v, &m, 0, "Q3");
  v.kind = OBSPAM_MAILBOX;
  snprintf(v.object, sizeof(v.object), "o'neil+x@bakery.example");
  m.sender = "o'neil+x@bakery.example";
  obspamd_log_refusal(&v, &m, 0, "Q4");
  snprintf(v.object, sizeof(v.object), "j\xc3\xb6rg@example.com");
  m.sender = "j\xc3\xb6rg@example.com";
  obspamd_log_refusal(&v, &m, 0, "Q5");
  /* Lines that must not match: notices, other objects. */
  obspamd_log(LOG_NOTICE, "notice kind=mailbox object=demo@bakery.example "
                          "subscription=bakery");
  v.kind = OBSPAM_MAILBOX;
  snprintf(v.object, sizeof(v.object), "demo@bakery.example.org");
  m.sender = "demo@bakery.example.org";
  obspamd_log_refusal(&v, &m, 0, "Q6");
  /* Q7: runs of quotes, written as runs in the command. */
  snprintf(v.object, sizeof(v.object), "o''ne'''il@bakery.example");
  m.sender = "o''ne'''il@bakery.example";
  obspamd_log_refusal(&v, &m, 0, "Q7");

  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char grep[2048], cmd[4096], *out;
    obspamd__refusal_grep(cases[i].kind, cases[i].name, grep, sizeof(grep));
    snprintf(cmd, sizeof(cmd),
             "%s %s | sed 's/.* queue_id=\\([^ ]*\\) .*/\\1/' | "
             "tr '\\n' ' ' | sed 's/ $//' > %s",
             grep, log_path, path_in("hits"));
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    out = read_file(path_in("hits"));
    cr_assert_str_eq(out, cases[i].hits, "%s\n%s", grep, logged());
    free(out);
  }
}

/* Names and contacts come from the configuration and from traffic (an
   implicit mailbox is named by the sender an attacker chose): what a mail
   makes of them must be the address, text and command they are. */
Test(notice, contact_outside_ascii) {
  obspam_notice n = sample_notice();
  char buf[8192];

  /* The configuration takes "contact=jörg@example.com": the mail goes to
     that address, in UTF-8 (RFC 6532), not to "j??rg@example.com", and
     the admin's copy names it so. */
  n.contact = "j\xc3\xb6rg@example.com";
  obspamd__notice_mail(&sample_info, &n, 1, buf, sizeof(buf));
  expect_in(buf, "\nTo: j\xc3\xb6rg@example.com\nReply-To: "
                 "postmaster@example.net\n");
  obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));
  expect_in(buf, "\n  Contact:        j\xc3\xb6rg@example.com (sent a copy "
                 "of this notice)\n");
  /* Bytes that are no UTF-8 are no address either: never raw. */
  n.contact = "j\xf6rg@example.com";
  obspamd__notice_mail(&sample_info, &n, 1, buf, sizeof(buf));
  expect_in(buf, "\nTo: j?rg@example.com\n");
}

/* A contact that is not one address is mailed nothing (sendmail -t
   reads "ops@example.com,root" as two): the admin's copy does not say it
   was sent one, nor does the contact's mail ask to reply to an admin
   address that is not one. */
Test(notice, addresses_that_are_not_one) {
  obspam_notice n = sample_notice();
  obspamd__mail_info mi = sample_info;
  char buf[8192];

  n.contact = "ops@example.com,root";
  obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));
  cr_assert_null(strstr(buf, "Contact:"), "%s", buf);
  cr_assert_null(strstr(buf, "root"), "%s", buf);
  n.contact = "ops@example.com";
  mi.admin = "postmaster@example.net,root";
  obspamd__notice_mail(&mi, &n, 1, buf, sizeof(buf));
  expect_in(buf, "\nTo: ops@example.com\nSubject: ");
  cr_assert_null(strstr(buf, "root"), "%s", buf);
}

Test(notice, subject_that_looks_encoded) {
  obspam_notice n = sample_notice();
  char buf[8192];

  /* A sender whose name is an encoded word would have mail readers show
     a subject of its choice: the whole subject is encoded instead, so
     that the name is shown as it is. */
  n.name = "=?utf-8?q?your_account_is_closed?=@example.com";
  obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));
  expect_in(
      buf, "\nSubject: "
           "=?UTF-8?B?W29ic3BhbV0gbWFpbGJveCA9P3V0Zi04P3E/eW91cl9hY2NvdW50?=\n"
           " =?UTF-8?B?X2lzX2Nsb3NlZD89QGV4YW1wbGUuY29tOiA5IG92ZXItdGhlLWxp?=\n"
           " =?UTF-8?B?bWl0IGF0dGVtcHRz?=\nDate: ");
}

Test(notice, name_that_looks_like_an_option) {
  obspam_notice n = sample_notice();
  char buf[8192];

  /* obspamctl takes options after its command (GNU getopt): a name that
     starts with '-' follows "--", or the command the admin copies reads
     it as an option ("--control=/tmp/x@example.com" would ask another
     socket, and the status named nothing). */
  n.name = "--control=/tmp/x@example.com";
  obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));
  expect_in(buf, "\n    obspamctl status mailbox -- "
                 "--control=/tmp/x@example.com\n");
  n.name = "-h@example.com";
  obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));
  expect_in(buf, "\n    obspamctl status mailbox -- -h@example.com\n");
}

Test(notice, lines_fit_a_mail) {
  /* Names of 320 bytes that need the most room in the commands the
     admin's mail suggests: quotes, and characters a regular expression
     escapes beside them. A line of a mail is at most 998 bytes (RFC
     5322): past it Exim's transports refuse the message and Postfix
     breaks the line, and the command with it. 320 quotes made a line
     of 1,315 bytes. */
  static const char *const parts[] = {"'", ".'", "\\'", "a'", "''.", "\\"};
  obspam_notice n = sample_notice();
  char name[OBSPAM_NAME_MAX + 1], buf[16384], *line, *end;
  size_t i, len;

  for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
    for (len = 0; len + strlen(parts[i]) + 12 <= OBSPAM_NAME_MAX;
         len += strlen(parts[i]))
      memcpy(name + len, parts[i], strlen(parts[i]));
    snprintf(name + len, sizeof(name) - len, "@example.com");
    n.name = name;
    obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));
    for (line = buf; (end = strchr(line, '\n')) != NULL; line = end + 1)
      cr_assert_leq(end - line, 998, "%s: %.*s", parts[i], (int)(end - line),
                    line);
  }
}
