/* The texts both daemons show: the SMTP refusal, the log lines of a
   refusal and a notice, and the notice mails. */
#include "common_test.h"

static char text[1024];
static int code;

static const char *refusal(int kind, const char *object, int64_t limit,
                           int64_t count, int64_t retry, int reject,
                           const obspam_message *m) {
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  v.action = OBSPAM_REFUSE;
  v.kind = kind;
  v.limit = limit;
  v.count = count;
  v.retry_after = retry;
  snprintf(v.object, sizeof(v.object), "%s", object);
  code = 0;
  obspamd_refusal_text_msg(&v, m, reject, &code, text, sizeof(text));
  return text;
}

Test(refusal, over_the_limit_with_time_to_wait) {
  cr_assert_str_eq(
      refusal(OBSPAM_MAILBOX, "info@example.com", 20, 20, 420, 0, NULL),
      "4.7.1 mailbox info@example.com has sent 20 messages in "
      "the last 60 minutes, its limit is 20 per hour; try again "
      "in 7 minutes");
  cr_assert_eq(code, 451);
  cr_assert_str_eq(
      refusal(OBSPAM_DOMAIN, "example.com", 1000, 1000, 61, 1, NULL),
      "5.7.1 domain example.com has sent 1000 messages in the "
      "last 60 minutes, its limit is 1000 per hour; try again "
      "in 2 minutes");
  cr_assert_eq(code, 550);
  cr_assert_str_eq(refusal(OBSPAM_SUBSCRIPTION, "acme", 1, 1, 3599, 0, NULL),
                   "4.7.1 subscription acme has sent 1 message in the last "
                   "60 minutes, its limit is 1 per hour; try again in 60 "
                   "minutes");
}

Test(refusal, retry_rounds_up_to_whole_minutes) {
  static const struct {
    int64_t retry;
    const char *tail;
  } cases[] = {{1, "in 1 minute"},     {59, "in 1 minute"},
               {60, "in 1 minute"},    {61, "in 2 minutes"},
               {120, "in 2 minutes"},  {121, "in 3 minutes"},
               {3600, "in 60 minutes"}};
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

Test(refusal, never_fits) {
  obspam_message m = OBSPAM_MESSAGE_INIT;

  cr_assert_str_eq(
      refusal(OBSPAM_MAILBOX, "info@example.com", 0, 0, -1, 0, NULL),
      "4.7.1 mailbox info@example.com cannot send this message: its limit "
      "is 0");
  cr_assert_str_eq(refusal(OBSPAM_DOMAIN, "example.com", 50, 3, -1, 1, NULL),
                   "5.7.1 domain example.com cannot send this message: it "
                   "has more recipients than its limit of 50 per hour");
  cr_assert_eq(code, 550);

  /* A script refused at its subscription with no time to wait: scripts
     are forbidden there. */
  m.flags = OBSPAM_MSG_SCRIPT;
  m.uid = 10002;
  cr_assert_str_eq(refusal(OBSPAM_SUBSCRIPTION, "bakery", 5000, 0, -1, 0, &m),
                   "4.7.1 scripts of subscription bakery may not send mail");
  /* Without the message, an unlimited subscription tells it as well. */
  cr_assert_str_eq(refusal(OBSPAM_SUBSCRIPTION, "bakery", -1, 0, -1, 0, NULL),
                   "4.7.1 scripts of subscription bakery may not send mail");
  /* A limit of 0 is said as such, script or not. */
  cr_assert_str_eq(refusal(OBSPAM_SUBSCRIPTION, "bakery", 0, 0, -1, 0, &m),
                   "4.7.1 subscription bakery cannot send this message: its "
                   "limit is 0");
  /* A script charged to a mailbox (SASL login) is refused as any mail. */
  cr_assert_str_eq(refusal(OBSPAM_MAILBOX, "info@example.com", 5, 0, -1, 0, &m),
                   "4.7.1 mailbox info@example.com cannot send this message: "
                   "it has more recipients than its limit of 5 per hour");
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
      "4.7.1 mailbox caf??@example.com has sent 2 messages in "
      "the last 60 minutes, its limit is 2 per hour; try again "
      "in 1 minute");
}

Test(refusal, truncated_to_the_buffer) {
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  char small[10];

  v.action = OBSPAM_REFUSE;
  v.kind = OBSPAM_MAILBOX;
  v.limit = v.count = 20;
  v.retry_after = 420;
  snprintf(v.object, sizeof(v.object), "info@example.com");
  obspamd_refusal_text(&v, 1, &code, small, sizeof(small));
  cr_assert_str_eq(small, "5.7.1 mai");
  cr_assert_eq(code, 550);
  code = 0;
  obspamd_refusal_text(&v, 0, &code, NULL, 0);
  cr_assert_eq(code, 451);
}

/* ---- log lines ----------------------------------------------------------- */

Test(log, refusal_line) {
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  obspam_message m = OBSPAM_MESSAGE_INIT;

  make_test_dir();
  capture_log();
  v.action = OBSPAM_REFUSE;
  v.kind = OBSPAM_MAILBOX;
  v.limit = 20;
  v.count = 20;
  v.retry_after = 420;
  snprintf(v.object, sizeof(v.object), "info@example.com");
  m.sasl_username = "info@example.com";
  m.client_address = "203.0.113.7";
  m.recipients = 3;
  obspamd_log_refusal(&v, &m);

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
  obspamd_log_refusal(&v, &m);

  cr_assert(logged_line("refuse kind=mailbox object=info@example.com "
                        "limit=20 count=20 retry=420 sasl=info@example.com "
                        "sender=- client=203.0.113.7 recipients=3"),
            "%s", logged());
  cr_assert(logged_line("refuse kind=subscription object=bakery "
                        "limit=unlimited count=0 retry=never sasl=- "
                        "sender=www?data@bakery.example client=- "
                        "recipients=1 uid=10002 "
                        "script=/var/www/my?site/contact.php"),
            "%s", logged());
}

Test(log, one_line_per_event_with_prefix) {
  char *raw, stamp[32], name[32];
  int pid = 0, n = 0;

  make_test_dir();
  capture_log();
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
  n.first_refused = 1714566667; /* 2024-05-01 12:31:07 */
  n.last_refused = 1714568320;  /* 12:58:40 */
  n.period_start = 1714564800;  /* 12:00 */
  n.period_end = 1714568400;    /* 13:00 */
  return n;
}

Test(notice, log_line) {
  obspam_notice n = sample_notice();
  char line[1200];

  obspamd__notice_line(&n, line, sizeof(line));
  cr_assert_str_eq(line, "notice kind=mailbox object=info@example.com "
                         "subscription=acme limit=20 sent=20 refused=12 "
                         "first=2024-05-01T12:31:07Z "
                         "last=2024-05-01T12:58:40Z "
                         "period=2024-05-01T12:00:00Z..2024-05-01T13:00:00Z");
  n.kind = OBSPAM_SUBSCRIPTION;
  n.name = "solo";
  n.subscription = NULL;
  n.limit = -1;
  obspamd__notice_line(&n, line, sizeof(line));
  cr_assert_str_eq(line, "notice kind=subscription object=solo "
                         "subscription=- limit=unlimited sent=20 refused=12 "
                         "first=2024-05-01T12:31:07Z "
                         "last=2024-05-01T12:58:40Z "
                         "period=2024-05-01T12:00:00Z..2024-05-01T13:00:00Z");
}

static const obspamd__mail_info sample_info = {"obspam-policyd",
                                               "obspam@mx1.example.net",
                                               "mx1.example.net",
                                               "postmaster@example.net",
                                               0,
                                               1714568405};

Test(notice, mail_to_the_admin) {
  obspam_notice n = sample_notice();
  char buf[8192];
  size_t len = obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));

  cr_assert_eq(len, strlen(buf));
  cr_assert_str_eq(
      buf,
      "From: obspam-policyd <obspam@mx1.example.net>\n"
      "To: postmaster@example.net\n"
      "Subject: [obspam] mailbox info@example.com refused 12 messages\n"
      "Date: Wed, 01 May 2024 13:00:05 +0000\n"
      "Auto-Submitted: auto-generated\n"
      "MIME-Version: 1.0\n"
      "Content-Type: text/plain; charset=UTF-8\n"
      "Content-Transfer-Encoding: 8bit\n"
      "\n"
      "The mailbox info@example.com went over its sending limit\n"
      "on mx1.example.net.\n"
      "\n"
      "  Object:         mailbox info@example.com\n"
      "  Subscription:   acme\n"
      "  Contact:        ops@acme.example (sent a copy of this notice)\n"
      "  Limit:          20 messages per hour\n"
      "  Period:         2024-05-01 12:00:00 UTC to 2024-05-01 13:00:00 UTC\n"
      "  Sent:           20 messages in the period\n"
      "  Refused:        12 attempts, deferred (the sending server retries)\n"
      "  First refusal:  2024-05-01 12:31:07 UTC\n"
      "  Last refusal:   2024-05-01 12:58:40 UTC\n"
      "\n"
      "What to do:\n"
      "- If this traffic is not expected, a password may have been stolen "
      "or a\n"
      "  script abused. obspam-policyd logs each refusal\n"
      "  (syslog, facility mail) as a line that holds:\n"
      "    refuse kind=mailbox object=info@example.com\n"
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

  obspamd__notice_mail(&sample_info, &n, 1, buf, sizeof(buf));
  cr_assert_str_eq(
      buf,
      "From: obspam-policyd <obspam@mx1.example.net>\n"
      "To: ops@acme.example\n"
      "Reply-To: postmaster@example.net\n"
      "Subject: [obspam] mailbox info@example.com refused 12 messages\n"
      "Date: Wed, 01 May 2024 13:00:05 +0000\n"
      "Auto-Submitted: auto-generated\n"
      "MIME-Version: 1.0\n"
      "Content-Type: text/plain; charset=UTF-8\n"
      "Content-Transfer-Encoding: 8bit\n"
      "\n"
      "Hello,\n"
      "\n"
      "The mailbox info@example.com of your subscription acme\n"
      "tried to send more mail than its limit allows.\n"
      "\n"
      "  Object:         mailbox info@example.com\n"
      "  Subscription:   acme\n"
      "  Limit:          20 messages per hour\n"
      "  Period:         2024-05-01 12:00:00 UTC to 2024-05-01 13:00:00 UTC\n"
      "  Sent:           20 messages in the period\n"
      "  Refused:        12 attempts, deferred (the sending server retries)\n"
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

Test(notice, mail_details) {
  obspam_notice n = sample_notice();
  obspamd__mail_info mi = sample_info;
  char buf[8192], small[16];

  /* A subscription, one refusal, rejected: singulars, no Subscription:
     line, and what reject means. */
  n.kind = OBSPAM_SUBSCRIPTION;
  n.name = "acme";
  n.refused = 1;
  n.sent = 1;
  n.limit = 1;
  mi.reject = 1;
  obspamd__notice_mail(&mi, &n, 1, buf, sizeof(buf));
  cr_assert(strstr(buf, "Subject: [obspam] subscription acme refused 1 "
                        "message\n") != NULL,
            "%s", buf);
  cr_assert(strstr(buf, "\nYour subscription acme\ntried to send") != NULL,
            "%s", buf);
  cr_assert(strstr(buf, "  Limit:          1 message per hour\n"
                        "  Period:") != NULL,
            "%s", buf);
  cr_assert(strstr(buf, "  Sent:           1 message in the period\n"
                        "  Refused:        1 attempt, rejected (the sender "
                        "got an error)\n") != NULL,
            "%s", buf);
  cr_assert_null(strstr(buf, "Subscription:"), "%s", buf);

  /* Header values are printable ASCII; the body keeps UTF-8. */
  n = sample_notice();
  n.name = "caf\xc3\xa9@example.com";
  obspamd__notice_mail(&sample_info, &n, 0, buf, sizeof(buf));
  cr_assert(strstr(buf, "Subject: [obspam] mailbox caf??@example.com "
                        "refused 12 messages\n") != NULL,
            "%s", buf);
  cr_assert(
      strstr(buf, "  Object:         mailbox caf\xc3\xa9@example.com\n") !=
          NULL,
      "%s", buf);

  /* Truncation: the length needed is returned, as snprintf does. */
  cr_assert_eq(obspamd__notice_mail(&sample_info, &n, 0, small, sizeof(small)),
               obspamd__notice_mail(&sample_info, &n, 0, NULL, 0));
  cr_assert_str_eq(small, "From: obspam-po");
}
