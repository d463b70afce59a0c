/* SPDX-License-Identifier: MIT */
/* The service: start (configuration, state file), reload, save, stop,
   notices with their log lines and mails, the periodic work. */
#include <sys/socket.h>
#include <sys/un.h>

#include "common_test.h"
#include "control.h"
#include "metrics.h"
#include "service.h"
#include "util.h"

/* The mailbox, its domain and its subscription each have a limit of 1: a
   second message goes over all three, so that each gets a notice (only
   an object over its own limit does). */
static const char *const CONFIG =
    "notify-period 3600\n"
    "default mailbox=100 domain=1000 subscription=5000\n"
    "subscription acme uid=10001 contact=ops@acme.example subscription=1\n"
    "domain example.com subscription=acme domain=1\n"
    "mailbox info@example.com limit=1\n";

/* 2024-05-01 12:31:07 UTC, in the period [12:00, 13:00). */
#define T0 1714566667
#define PERIOD_END 1714568400

static obspamd_service svc;

/* A counter of svc, read as the service's threads write it. */
#define M(field) __atomic_load_n(&svc.metrics.field, __ATOMIC_RELAXED)

static void setup(const char *config) {
  log_in_test_dir();
  write_file(path_in("obspam.conf"), config);
  memset(&svc, 0, sizeof(svc));
  svc.name = "obspam-test";
  svc.config_path = path_in("obspam.conf");
}

static int64_t limit_of(const char *mailbox) {
  int64_t v = -99;
  cr_assert_eq(obspam_effective_limit(svc.engine, OBSPAM_MAILBOX, mailbox, &v),
               OBSPAM_OK);
  return v;
}

static int decide_at(const char *sasl, int64_t t) {
  obspam_message m = OBSPAM_MESSAGE_INIT;
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  m.sasl_username = sasl;
  m.client_address = "203.0.113.7";
  m.time = t;
  cr_assert_eq(obspam_decide(svc.engine, &m, &v), OBSPAM_OK);
  return v.action;
}

/* ---- start ------------------------------------------------------------- */

Test(start, refuses_a_bad_configuration) {
  char line[900];

  setup("enabled yes\nenabeld no\n");
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_ESYNTAX);
  cr_assert_null(svc.engine);
  snprintf(line, sizeof(line),
           "error: cannot start: %s:2: unknown keyword 'enabeld'",
           svc.config_path);
  cr_assert(logged_line(line), "%s", logged());

  svc.config_path = path_in("missing.conf");
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_EIO);
  snprintf(line, sizeof(line),
           "error: cannot start: %s: cannot open: No such file or directory",
           svc.config_path);
  cr_assert(logged_line(line), "%s", logged());

  svc.config_path = NULL;
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_EINVAL);
  cr_assert(logged_line("error: cannot start: no configuration file given"),
            "%s", logged());
}

Test(start, missing_state_is_a_first_start) {
  char line[900];

  setup(CONFIG);
  svc.state_path = path_in("state");
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  snprintf(line, sizeof(line), "config loaded path=%s", svc.config_path);
  cr_assert(logged_line(line), "%s", logged());
  snprintf(line, sizeof(line), "state missing path=%s: starting from zero",
           svc.state_path);
  cr_assert(logged_line(line), "%s", logged());
  cr_assert_eq(M(last_save), 0);
  obspamd_service_stop(&svc);
  /* Stopping saved it. */
  cr_assert_eq(access(path_in("state"), R_OK), 0);
}

Test(start, state_survives_a_restart) {
  obspam_stats st = OBSPAM_STATS_INIT;
  char line[900], when[32];
  struct stat sb;

  setup(CONFIG);
  svc.state_path = path_in("state");
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  cr_assert_eq(decide_at("info@example.com", 0), OBSPAM_ACCEPT);
  cr_assert_eq(decide_at("info@example.com", 0), OBSPAM_REFUSE);
  obspamd_service_stop(&svc);
  cr_assert_null(svc.engine);

  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  cr_assert_eq(stat(svc.state_path, &sb), 0);
  snprintf(line, sizeof(line), "state loaded path=%s saved=%s", svc.state_path,
           obspamd_iso_time((int64_t)sb.st_mtime, when, sizeof(when)));
  cr_assert(logged_line(line), "%s", logged());
  cr_assert_eq(M(last_save), (int64_t)sb.st_mtime);
  cr_assert_eq(
      obspam_stats_get(svc.engine, OBSPAM_MAILBOX, "info@example.com", 0, &st),
      OBSPAM_OK);
  cr_assert_eq(st.count, 1);
  cr_assert_eq(st.refused, 1);
  obspamd_service_stop(&svc);
}

/* The single file whose name starts with prefix in the test directory. */
static char *find_aside(const char *prefix) {
  static char found[600];
  char cmd[800];
  FILE *p;

  snprintf(cmd, sizeof(cmd), "ls -d '%s'* 2>/dev/null", prefix);
  p = popen(cmd, "r");
  cr_assert_not_null(p);
  found[0] = '\0';
  if (fgets(found, sizeof(found), p) != NULL)
    found[strcspn(found, "\n")] = '\0';
  pclose(p);
  return found[0] ? found : NULL;
}

static void check_renamed(const char *content, size_t len,
                          const char *library_msg) {
  char prefix[600], line[1600], *aside;
  FILE *f;

  setup(CONFIG);
  svc.state_path = path_in("state");
  f = fopen(svc.state_path, "w");
  cr_assert_not_null(f);
  fwrite(content, 1, len, f);
  fclose(f);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  snprintf(prefix, sizeof(prefix), "%s.bad-", svc.state_path);
  aside = find_aside(prefix);
  cr_assert_not_null(aside, "no %s* file", prefix);
  /* PATH.bad-YYYYmmddHHMMSS */
  cr_assert_eq(strlen(aside), strlen(prefix) + 14, "%s", aside);
  cr_assert_neq(access(svc.state_path, F_OK), 0,
                "the bad file is still "
                "there");
  {
    char *moved = read_file(aside);
    cr_assert_eq(memcmp(moved, content, len), 0);
    free(moved);
  }
  snprintf(line, sizeof(line),
           "warning: state unusable path=%s moved=%s: state_load: %s: %s; "
           "starting from zero",
           svc.state_path, aside, svc.state_path, library_msg);
  cr_assert(logged_line(line), "expected '%s' in:\n%s", line, logged());
  obspamd_service_stop(&svc);
}

Test(start, corrupt_state_is_renamed_aside) {
  check_renamed("garbage, not a state file at all, no no no\n", 43,
                "not a libobspam state file");
}

Test(start, newer_state_is_renamed_aside) {
  /* A header of format 6 (a later libobspam; 1.4 writes format 5). */
  static const char header[32] = {'O', 'B', 'S', 'P', 'A', 'M', 'S', 'T', 6};
  check_renamed(header, sizeof(header),
                "format 6 is newer than this library's (5)");
}

/* A journal's file that is not one is renamed aside and the start goes
   on: STATE.journal.next as well as STATE.journal, each named by its
   own line (before, a bad .next had the journal renamed in its place,
   and the start failed). */
Test(start, unusable_journal_files_are_renamed_aside) {
  static const char junk[] = "not a journal at all\n";
  const char *const names[] = {"state.journal.next", "state.journal"};
  char line[2200], prefix[620], *aside;
  size_t i;

  setup(CONFIG);
  svc.state_path = path_in("state");
  for (i = 0; i < 2; i++) {
    FILE *f = fopen(path_in(names[i]), "w");

    cr_assert_not_null(f);
    fwrite(junk, 1, sizeof(junk) - 1, f);
    fclose(f);
  }
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK, "%s", logged());
  for (i = 0; i < 2; i++) {
    char path[520];

    snprintf(path, sizeof(path), "%s", path_in(names[i]));
    snprintf(prefix, sizeof(prefix), "%s.bad-", path);
    aside = find_aside(prefix);
    cr_assert_not_null(aside, "no %s* file:\n%s", prefix, logged());
    snprintf(line, sizeof(line),
             "warning: journal unusable path=%s moved=%s: journal_open: %s: "
             "not a libobspam journal",
             path, aside, path);
    cr_assert(logged_line(line), "expected '%s' in:\n%s", line, logged());
  }
  cr_assert(logged_text("journal opened path="), "%s", logged());
  obspamd_service_stop(&svc);
}

Test(start, unreadable_state_stops_the_start) {
  char line[900];

  setup(CONFIG);
  /* A directory where the file should be: it cannot be read. */
  svc.state_path = path_in("state");
  cr_assert_eq(mkdir(svc.state_path, 0700), 0);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_EIO);
  cr_assert_null(svc.engine);
  cr_assert(logged_text("error: cannot start: state_load: "), "%s", logged());

  svc.state_path = path_in("nodir/state");
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_EIO);
  snprintf(line, sizeof(line),
           "error: cannot start: the directory %s of the state file %s does "
           "not exist",
           path_in("nodir"), svc.state_path);
  cr_assert(logged_line(line), "%s", logged());
}

/* A FIFO at the state path stops the start at once, saying so: opening
   it to read waited for a writer for ever. */
Test(start, fifo_at_the_state_path_stops_the_start, .timeout = 20) {
  char line[900];

  setup(CONFIG);
  svc.state_path = path_in("state");
  cr_assert_eq(mkfifo(svc.state_path, 0600), 0);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_EIO);
  cr_assert_null(svc.engine);
  snprintf(line, sizeof(line),
           "error: cannot start: state_load: %s: not a regular file",
           svc.state_path);
  cr_assert(logged_line(line), "%s", logged());
}

/* A state directory that others may write: refused when any user may
   replace the state file (no sticky bit), said at start otherwise. */
Test(start, state_directory_others_can_write) {
  char line[2000], dir[600];

  setup(CONFIG);
  snprintf(dir, sizeof(dir), "%s", path_in("var"));
  cr_assert_eq(mkdir(dir, 0700), 0);
  svc.state_path = path_in("var/state");
  cr_assert_eq(chmod(dir, 0777), 0);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_EIO);
  cr_assert_null(svc.engine);
  snprintf(line, sizeof(line),
           "error: cannot start: the directory %s of the state file %s has "
           "mode 0777: any user may replace the state file, and so set its "
           "counters; make it writable by the daemon's user only",
           dir, svc.state_path);
  cr_assert(logged_line(line), "%s", logged());

  cr_assert_eq(chmod(dir, 01777), 0);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  obspamd_service_stop(&svc);
  snprintf(line, sizeof(line),
           "warning: the directory %s of the state file %s has mode 1777: "
           "any user may make the state file, its journal or its lock before "
           "the daemon does; make it writable by the daemon's user only",
           dir, svc.state_path);
  cr_assert(logged_line(line), "%s", logged());

  cr_assert_eq(chmod(dir, 02770), 0);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  obspamd_service_stop(&svc);
  snprintf(line, sizeof(line),
           "warning: the directory %s of the state file %s has mode 2770: "
           "its group may make the state file, its journal or its lock before "
           "the daemon does; make it writable by the daemon's user only",
           dir, svc.state_path);
  cr_assert(logged_line(line), "%s", logged());

  /* The daemon's user alone, or others that may only read: nothing. */
  cr_assert_eq(chmod(dir, 0755), 0);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  obspamd_service_stop(&svc);
  cr_assert_eq(count_in(logged(), "the directory"), 3, "%s", logged());
}

/* A directory the daemon's user may not write (procfs refuses even
   root): the start says so at once instead of failing at the first
   save. */
Test(start, state_directory_the_daemon_cannot_write) {
  char line[600];
  int err;

  /* The errno the daemon names: EPERM for root, EACCES for another user. */
  cr_assert_neq(faccessat(AT_FDCWD, "/proc/1", W_OK, AT_EACCESS), 0);
  err = errno;
  setup(CONFIG);
  svc.state_path = "/proc/1/obspam-state";
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_EIO);
  cr_assert_null(svc.engine);
  snprintf(line, sizeof(line),
           "error: cannot start: cannot write the state file "
           "/proc/1/obspam-state: directory /proc/1: %s",
           strerror(err));
  cr_assert(logged_line(line), "%s", logged());
}

/* ---- reload and save ------------------------------------------------------
 */

Test(reload, keeps_the_running_configuration_on_error) {
  char msg[700], line[900];

  setup(CONFIG);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  cr_assert_eq(limit_of("info@example.com"), 1);
  cr_assert_eq(obspamd_reject(&svc), 0);

  write_file(svc.config_path, "action reject\nplan basic mailbox=lots\n");
  cr_assert_eq(obspamd_reload(&svc, msg, sizeof(msg)), OBSPAM_ESYNTAX);
  snprintf(line, sizeof(line),
           "%s:2: bad value 'lots' for 'mailbox': expected a count, "
           "unlimited or inherit",
           svc.config_path);
  cr_assert_str_eq(msg, line);
  snprintf(line, sizeof(line),
           "error: reload failed: %s:2: bad value 'lots' for 'mailbox': "
           "expected a count, unlimited or inherit",
           svc.config_path);
  cr_assert(logged_line(line), "%s", logged());
  cr_assert_eq(limit_of("info@example.com"), 1);
  cr_assert_eq(obspamd_reject(&svc), 0);
  cr_assert_eq(M(reloads_failed), 1);
  cr_assert_eq(M(reloads_ok), 0);

  write_file(svc.config_path,
             "action reject\nsubscription acme\ndomain example.com "
             "subscription=acme\nmailbox info@example.com limit=30\n");
  cr_assert_eq(obspamd_reload(&svc, msg, sizeof(msg)), OBSPAM_OK);
  snprintf(line, sizeof(line), "configuration reloaded from %s",
           svc.config_path);
  cr_assert_str_eq(msg, line);
  snprintf(line, sizeof(line), "reload ok path=%s", svc.config_path);
  cr_assert(logged_line(line), "%s", logged());
  cr_assert_eq(limit_of("info@example.com"), 30);
  cr_assert_eq(obspamd_reject(&svc), 1);
  cr_assert_eq(M(reloads_ok), 1);
  /* NULL msg is fine. */
  cr_assert_eq(obspamd_reload(&svc, NULL, 0), OBSPAM_OK);
  obspamd_service_stop(&svc);
}

/* What the configuration may declare (obspamd_marks): a bit is clear
   only when its text has no such line, and then the lookups an adapter
   skips for it would have found nothing. */
static void expect_marks(const char *text, int rc, int marks) {
  static const char *const addresses[] = {
      "sales@example.com",        "info@example.com", "news@example.com",
      "news-bounces@example.com", "list@example.com", "x@example.com"};
  char msg[700];
  size_t i;

  write_file(svc.config_path, text);
  cr_assert_eq(obspamd_reload(&svc, msg, sizeof(msg)), rc, "%s: %s", text, msg);
  cr_assert_eq(obspamd_marks(&svc), marks, "%s", text);
  for (i = 0; i < sizeof(addresses) / sizeof(addresses[0]); i++) {
    char mailbox[OBSPAM_NAME_MAX + 1];
    uint32_t flag = 99;
    int match = 99;

    cr_assert_eq(obspam_forward_lookup(svc.engine, addresses[i], &flag, mailbox,
                                       sizeof(mailbox)),
                 OBSPAM_OK);
    if (!(marks & OBSPAMD_MARK_FORWARDS))
      cr_assert_eq(flag, 0u, "%s: %s", text, addresses[i]);
    cr_assert_eq(obspam_mailing_list_match(svc.engine, addresses[i],
                                           "127.0.0.1", &match),
                 OBSPAM_OK);
    if (!(marks & OBSPAMD_MARK_LISTS))
      cr_assert_eq(match, 0, "%s: %s", text, addresses[i]);
  }
}

Test(reload, marks_follow_the_configuration) {
  static const char *const bad = "plan basic mailbox=lots\n";
  const int fwd = OBSPAMD_MARK_FORWARDS, lists = OBSPAMD_MARK_LISTS;
  char text[4][1024];

  setup(CONFIG);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  cr_assert_eq(obspamd_marks(&svc), 0);
  snprintf(text[0], sizeof(text[0]), "%sforward sales@example.com remote\n",
           CONFIG);
  expect_marks(text[0], OBSPAM_OK, fwd);
  expect_marks(CONFIG, OBSPAM_OK, 0);
  snprintf(text[1], sizeof(text[1]), "%s \tlist news@example.com\n", CONFIG);
  expect_marks(text[1], OBSPAM_OK, lists);
  /* A reload that fails leaves what the running configuration has. */
  snprintf(text[2], sizeof(text[2]), "%sforward x@example.com local\n%s",
           CONFIG, bad);
  expect_marks(text[2], OBSPAM_ESYNTAX, lists);
  snprintf(text[3], sizeof(text[3]),
           "%sforward sales@example.com remote\nlist news@example.com\n",
           CONFIG);
  expect_marks(text[3], OBSPAM_OK, fwd | lists);
  expect_marks(CONFIG, OBSPAM_OK, 0);
  expect_marks(text[2], OBSPAM_ESYNTAX, 0);
  /* Neither a comment nor a name is one. */
  snprintf(text[3], sizeof(text[3]),
           "%s# forward sales@example.com remote\n  # list news@example.com\n"
           "mailbox list@example.com\nmailbox forward@example.com\n",
           CONFIG);
  expect_marks(text[3], OBSPAM_OK, 0);
  /* A byte-order mark is skipped, as the library skips it. */
  snprintf(text[3], sizeof(text[3]), "\xef\xbb\xbf%s", CONFIG);
  expect_marks(text[3], OBSPAM_OK, 0);
  snprintf(text[3], sizeof(text[3]),
           "\xef\xbb\xbf%sforward sales@example.com remote\n", CONFIG);
  expect_marks(text[3], OBSPAM_OK, fwd);
  obspamd_service_stop(&svc);
}

/* ---- a reload that looks like a mistake -------------------------------- */

/* Ten objects: a subscription, a domain and eight mailboxes. */
static const char *const TEN =
    "subscription acme\n"
    "domain example.com subscription=acme\n"
    "mailbox m1@example.com limit=7\nmailbox m2@example.com\n"
    "mailbox m3@example.com\nmailbox m4@example.com\n"
    "mailbox m5@example.com\nmailbox m6@example.com\n"
    "mailbox m7@example.com\nmailbox m8@example.com\n";

static void expect_refused(const char *why) {
  char msg[700], line[900];

  cr_assert_eq(obspamd_reload(&svc, msg, sizeof(msg)), OBSPAM_EINVAL, "%s",
               msg);
  snprintf(line, sizeof(line), "%s %s", svc.config_path, why);
  cr_assert_str_eq(msg, line);
  snprintf(line, sizeof(line), "error: reload failed: %s %s", svc.config_path,
           why);
  cr_assert(logged_line(line), "%s", logged());
  /* Nothing changed. */
  cr_assert_eq(limit_of("m1@example.com"), 7);
}

Test(reload_guard, empty_file_refused_unless_forced) {
  char msg[700], line[900];
  static const char *const empty =
      "declares nothing (it is empty or only comments): loaded, it would "
      "lift every limit; refused (obspamctl reload --force loads it)";
  int64_t v;

  setup(TEN);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  write_file(svc.config_path, "");
  expect_refused(empty);
  write_file(svc.config_path, "# generated by the panel\n\n  \t# nothing\n");
  expect_refused(empty);
  cr_assert_eq(M(reloads_failed), 2);
  cr_assert_eq(M(reloads_ok), 0);

  cr_assert_eq(obspamd_reload_force(&svc, 1, msg, sizeof(msg)), OBSPAM_OK);
  snprintf(line, sizeof(line), "reload ok path=%s (forced)", svc.config_path);
  cr_assert(logged_line(line), "%s", logged());
  cr_assert_eq(
      obspam_effective_limit(svc.engine, OBSPAM_MAILBOX, "m1@example.com", &v),
      OBSPAM_ENOTFOUND);
  /* Forced to nothing, any file is an addition. */
  write_file(svc.config_path, TEN);
  cr_assert_eq(obspamd_reload(&svc, msg, sizeof(msg)), OBSPAM_OK, "%s", msg);
  cr_assert_eq(limit_of("m1@example.com"), 7);
  obspamd_service_stop(&svc);
}

Test(reload_guard, dropping_more_than_half_refused) {
  char msg[700], text[1000];

  setup(TEN);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  /* 6 of 10 dropped: the subscription, the domain and m1, m2 stay. */
  snprintf(text, sizeof(text),
           "action reject\nsubscription acme\n"
           "domain example.com subscription=acme\n"
           "mailbox m1@example.com limit=9\nmailbox m2@example.com\n");
  write_file(svc.config_path, text);
  expect_refused("drops 6 of the 10 objects of the running configuration "
                 "(60%), more than the 50% --reload-max-drop allows; refused "
                 "(obspamctl reload --force loads it)");
  cr_assert_eq(obspamd_reject(&svc), 0);
  /* 5 of 10 is not more than half; names match whatever their case. */
  write_file(svc.config_path,
             "subscription ACME\ndomain Example.COM subscription=acme\n"
             "mailbox M1@example.com limit=9\nmailbox m2@EXAMPLE.com\n"
             "mailbox m3@example.com\n# mailbox m4@example.com\n"
             "whitelist 192.0.2.0/24\n");
  cr_assert_eq(obspamd_reload(&svc, msg, sizeof(msg)), OBSPAM_OK, "%s", msg);
  cr_assert_eq(limit_of("m1@example.com"), 9);
  /* The running configuration is now those 5: dropping 3 of them is too
     many, new objects do not make up for it. */
  write_file(svc.config_path,
             "subscription acme\ndomain example.com subscription=acme\n"
             "mailbox n1@example.com\nmailbox n2@example.com\n"
             "mailbox n3@example.com\nmailbox n4@example.com\n");
  cr_assert_eq(obspamd_reload(&svc, msg, sizeof(msg)), OBSPAM_EINVAL);
  cr_assert(strstr(msg, " drops 3 of the 5 objects of the running "
                        "configuration (60%), ") != NULL,
            "%s", msg);
  cr_assert_eq(obspamd_reload_force(&svc, 1, msg, sizeof(msg)), OBSPAM_OK);
  obspamd_service_stop(&svc);
}

Test(reload_guard, the_share_is_an_option) {
  char msg[700];

  setup(TEN);
  svc.reload_max_drop = 10;
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  /* 2 of 10 (20%) is more than 10%. */
  write_file(svc.config_path,
             "subscription acme\ndomain example.com subscription=acme\n"
             "mailbox m1@example.com limit=7\nmailbox m2@example.com\n"
             "mailbox m3@example.com\nmailbox m4@example.com\n"
             "mailbox m5@example.com\nmailbox m6@example.com\n");
  expect_refused("drops 2 of the 10 objects of the running configuration "
                 "(20%), more than the 10% --reload-max-drop allows; refused "
                 "(obspamctl reload --force loads it)");
  obspamd_service_stop(&svc);

  /* 100: any drop, but never a file that declares nothing. */
  setup(TEN);
  svc.reload_max_drop = 100;
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  write_file(svc.config_path, "\n");
  expect_refused("declares nothing (it is empty or only comments): loaded, it "
                 "would lift every limit; refused (obspamctl reload --force "
                 "loads it)");
  /* A byte-order mark, which the library skips, is nothing either. */
  write_file(svc.config_path, "\xef\xbb\xbf");
  expect_refused("declares nothing (it is empty or only comments): loaded, it "
                 "would lift every limit; refused (obspamctl reload --force "
                 "loads it)");
  write_file(svc.config_path, "\xef\xbb\xbf# generated\n");
  expect_refused("declares nothing (it is empty or only comments): loaded, it "
                 "would lift every limit; refused (obspamctl reload --force "
                 "loads it)");
  write_file(svc.config_path, "enabled yes\n");
  cr_assert_eq(obspamd_reload(&svc, msg, sizeof(msg)), OBSPAM_OK, "%s", msg);
  obspamd_service_stop(&svc);
}

Test(reload_guard, an_error_is_reported_before_a_drop) {
  char msg[700], line[900];

  setup(TEN);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  /* Cut in the middle of a line: the error of that line, not the drop. */
  write_file(svc.config_path, "subscription acme\ndomain example.com subscr");
  cr_assert_eq(obspamd_reload(&svc, msg, sizeof(msg)), OBSPAM_ESYNTAX);
  snprintf(line, sizeof(line), "%s:2: ", svc.config_path);
  cr_assert(strncmp(msg, line, strlen(line)) == 0, "%s", msg);
  cr_assert_eq(limit_of("m1@example.com"), 7);
  obspamd_service_stop(&svc);
}

Test(save, with_and_without_a_state_file) {
  char msg[700], line[900];
  int64_t before = (int64_t)time(NULL);

  setup(CONFIG);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  cr_assert_eq(obspamd_save(&svc, msg, sizeof(msg)), OBSPAM_EINVAL);
  cr_assert_str_eq(msg, "no state file is configured");
  obspamd_service_stop(&svc);

  mkdir(path_in("lib"), 0700);
  svc.state_path = path_in("lib/state");
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  cr_assert_eq(obspamd_save(&svc, msg, sizeof(msg)), OBSPAM_OK);
  snprintf(line, sizeof(line), "state saved to %s", svc.state_path);
  cr_assert_str_eq(msg, line);
  cr_assert_eq(M(saves_ok), 1);
  cr_assert_geq(M(last_save), before);
  cr_assert_leq(M(last_save), (int64_t)time(NULL));

  /* The directory goes away: the save fails, is logged and counted. */
  {
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path_in("lib"));
    cr_assert_eq(system(cmd), 0);
  }
  cr_assert_eq(obspamd_save(&svc, msg, sizeof(msg)), OBSPAM_EIO);
  cr_assert(strncmp(msg, "state_save: ", 12) == 0, "%s", msg);
  snprintf(line, sizeof(line), "error: save failed: %s", msg);
  cr_assert(logged_line(line), "%s", logged());
  cr_assert_eq(M(saves_failed), 1);
  cr_assert_eq(M(saves_ok), 1);
  obspamd_service_stop(&svc);
  /* The save at stop failed too. */
  cr_assert_eq(M(saves_failed), 2);
}

/* ---- notices and mail ---------------------------------------------------- */

static void refuse_once(void) {
  cr_assert_eq(decide_at("info@example.com", T0), OBSPAM_ACCEPT);
  cr_assert_eq(decide_at("info@example.com", T0 + 5), OBSPAM_REFUSE);
}

static const char *const NOTICE_LINES[] = {
    "notice kind=subscription object=acme subscription=acme limit=1 "
    "unit=recipients window=hour sent=1 refused=1 exceeded=1 "
    "first=2024-05-01T12:31:12Z last=2024-05-01T12:31:12Z "
    "period=2024-05-01T12:00:00Z..2024-05-01T13:00:00Z",
    "notice kind=domain object=example.com subscription=acme limit=1 "
    "unit=recipients window=hour sent=1 refused=1 exceeded=1 "
    "first=2024-05-01T12:31:12Z last=2024-05-01T12:31:12Z "
    "period=2024-05-01T12:00:00Z..2024-05-01T13:00:00Z",
    "notice kind=mailbox object=info@example.com subscription=acme limit=1 "
    "unit=recipients window=hour sent=1 refused=1 exceeded=1 "
    "first=2024-05-01T12:31:12Z last=2024-05-01T12:31:12Z "
    "period=2024-05-01T12:00:00Z..2024-05-01T13:00:00Z"};

Test(notify, notices_are_logged_without_mail) {
  int i;

  setup(CONFIG);
  svc.notify_command = "cat > /dev/null";
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  cr_assert(logged_line("warning: no admin address: notices are logged, not "
                        "mailed"),
            "%s", logged());
  refuse_once();
  obspamd_flush(&svc, PERIOD_END - 1);
  cr_assert_eq(M(notices), 0);
  obspamd_flush(&svc, PERIOD_END);
  cr_assert_eq(M(notices), 3);
  for (i = 0; i < 3; i++)
    cr_assert(logged_line(NOTICE_LINES[i]), "no '%s' in:\n%s", NOTICE_LINES[i],
              logged());
  /* Nothing twice. */
  obspamd_flush(&svc, PERIOD_END + 3600);
  cr_assert_eq(M(notices), 3);
  obspamd_service_stop(&svc);
}

/* Counts the files mail.* of the test directory. */
static int mail_files(void) {
  char cmd[700], buf[32];
  FILE *p;
  int n = 0;

  snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c '^mail\\.' ", test_dir);
  p = popen(cmd, "r");
  if (p != NULL && fgets(buf, sizeof(buf), p) != NULL)
    n = atoi(buf);
  if (p != NULL)
    pclose(p);
  return n;
}

/* The mails the command wrote (files mail.* of the test directory), one
   after the other, malloc'ed. */
static char *read_mails(void) {
  char cmd[700], *all = malloc(1 << 16);
  FILE *f;
  size_t n;

  cr_assert_not_null(all);
  snprintf(cmd, sizeof(cmd), "cat '%s'/mail.*", test_dir);
  f = popen(cmd, "r");
  cr_assert_not_null(f);
  n = fread(all, 1, (1 << 16) - 1, f);
  all[n] = '\0';
  pclose(f);
  return all;
}

Test(notify, mails_to_the_admin_and_the_contact) {
  char cmd[700], *all, *p;
  int64_t t0;

  setup(CONFIG);
  snprintf(cmd, sizeof(cmd), "cat > \"%s/mail.$$\"", test_dir);
  svc.notify_command = cmd;
  svc.admin = "postmaster@example.net";
  svc.mail_from = "obspam@mx1.example.net";
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  refuse_once();
  t0 = obspamd_now_ms();
  obspamd_flush(&svc, PERIOD_END);
  /* The flush only queues the mails. */
  cr_assert_lt(obspamd_now_ms() - t0, 1000);
  WAIT_FOR(M(mails_sent) == 6, 10000);
  cr_assert_eq(M(mails_sent), 6, "%s", logged());
  cr_assert_eq(mail_files(), 6);
  all = read_mails();
  /* Three to the admin, three to the contact, one per object each. */
  for (p = all, t0 = 0; (p = strstr(p, "\nTo: postmaster@example.net\n")); p++)
    t0++;
  cr_assert_eq(t0, 3, "%s", all);
  for (p = all, t0 = 0; (p = strstr(p, "\nTo: ops@acme.example\n")); p++)
    t0++;
  cr_assert_eq(t0, 3, "%s", all);
  cr_assert(strstr(all, "From: obspam-test <obspam@mx1.example.net>\n") != NULL,
            "%s", all);
  cr_assert(strstr(all, "Subject: [obspam] mailbox info@example.com: 1 "
                        "over-the-limit attempt\n") != NULL,
            "%s", all);
  cr_assert(strstr(all, "  Sent:           1 recipient in the period\n"
                        "  Refused:        1 over-the-limit attempt\n"
                        "  Refused mail:   deferred (the sending server "
                        "retries)\n") != NULL,
            "%s", all);
  /* Without a control socket the mails suggest no obspamctl command. */
  cr_assert_null(strstr(all, "obspamctl status"), "%s", all);
  cr_assert(logged_line("mail sent to=postmaster@example.net kind=mailbox "
                        "object=info@example.com"),
            "%s", logged());
  cr_assert(logged_line("mail sent to=ops@acme.example kind=domain "
                        "object=example.com"),
            "%s", logged());
  obspamd_service_stop(&svc);
  free(all);
}

/* sendmail -t reads To: as a list: an admin address "a@x,root" would
   mail local root too. No mail goes to what is not one address; the
   contact's mails still go. */
Test(notify, no_mail_to_what_is_not_one_address) {
  char cmd[700], *all;

  setup(CONFIG);
  snprintf(cmd, sizeof(cmd), "cat > \"%s/mail.$$\"", test_dir);
  svc.notify_command = cmd;
  svc.admin = "postmaster@example.net,root";
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  refuse_once();
  obspamd_flush(&svc, PERIOD_END);
  WAIT_FOR(M(mails_sent) == 3, 10000);
  cr_assert_eq(M(mails_sent), 3, "%s", logged());
  cr_assert_eq(M(mails_dropped), 3, "%s", logged());
  cr_assert_eq(mail_files(), 3);
  all = read_mails();
  /* Nor is the contact told to reply to it. */
  cr_assert_null(strstr(all, "root"), "%s", all);
  cr_assert_null(strstr(all, "Reply-To:"), "%s", all);
  cr_assert(logged_line("error: mail not sent to=postmaster@example.net,root "
                        "kind=mailbox object=info@example.com: not one "
                        "address: it holds a blank, a control character or "
                        "one of , ; : < > ( ) [ ] \\ \""),
            "%s", logged());
  obspamd_service_stop(&svc);
  free(all);
}

/* The mails name the control socket the daemon serves (obspamctl's
   default is left out). */
Test(notify, mails_name_the_control_socket) {
  char cmd[700], spec[600], want[900], *all;

  setup(CONFIG);
  snprintf(cmd, sizeof(cmd), "cat > \"%s/mail.$$\"", test_dir);
  svc.notify_command = cmd;
  svc.admin = "postmaster@example.net";
  svc.local_action = OBSPAMD_LOCAL_HOLD;
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  snprintf(spec, sizeof(spec), "unix:%s", path_in("ctl.sock"));
  cr_assert_eq(obspamd_control_start(&svc, spec), 0);
  refuse_once();
  obspamd_flush(&svc, PERIOD_END);
  WAIT_FOR(M(mails_sent) == 6, 10000);
  cr_assert_eq(M(mails_sent), 6, "%s", logged());
  obspamd_control_stop();
  all = read_mails();
  snprintf(want, sizeof(want),
           "    obspamctl --control %s status mailbox info@example.com\n",
           path_in("ctl.sock"));
  cr_assert(strstr(all, want) != NULL, "%s", all);
  cr_assert(strstr(all, "held when submitted locally") != NULL, "%s", all);
  obspamd_service_stop(&svc);
  free(all);
}

/* The control socket's answer to request, whole (the daemon closes once
   it has answered), malloc'ed. */
static char *ask_control(const char *path, const char *request) {
  struct sockaddr_un sun;
  size_t len = 0, size = 4096;
  char *buf = malloc(size);
  ssize_t n;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  cr_assert_not_null(buf);
  cr_assert_geq(fd, 0);
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
  cr_assert_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0,
               "connect: %s", strerror(errno));
  cr_assert_eq(send(fd, request, strlen(request), MSG_NOSIGNAL),
               (ssize_t)strlen(request));
  while ((n = recv(fd, buf + len, size - 1 - len, 0)) > 0)
    len += (size_t)n;
  buf[len] = '\0';
  close(fd);
  return buf;
}

/* The control socket answers its own user, and root, only: a client whose
   credentials cannot be read is refused like any other, with a line that
   says why, and nothing it asked is done. */
Test(control, refuses_a_client_whose_credentials_cannot_be_read) {
  char spec[600], *answer;

  const char *ping = "ok\nname\tobspam-test\n";

  setup(CONFIG);
  svc.state_path = path_in("state");
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  snprintf(spec, sizeof(spec), "unix:%s", path_in("ctl.sock"));
  cr_assert_eq(obspamd_control_start(&svc, spec), 0);
  answer = ask_control(path_in("ctl.sock"), "ping\n");
  cr_assert_eq(strncmp(answer, ping, strlen(ping)), 0, "%s", answer);
  free(answer);

  peercred_fail(ENOTCONN);
  answer = ask_control(path_in("ctl.sock"), "save\n");
  peercred_fail(0);
  cr_assert_str_eq(answer, "error permission denied\n");
  free(answer);
  cr_assert(logged_line("warning: control: refused a client whose "
                        "credentials cannot be read: Transport endpoint is "
                        "not connected"),
            "%s", logged());
  /* The save it asked for was not made. */
  cr_assert_neq(access(svc.state_path, F_OK), 0);
  obspamd_control_stop();
  obspamd_service_stop(&svc);
}

Test(notify, a_failing_command_is_logged) {
  setup(CONFIG);
  svc.notify_command = "echo 'no route to host' >&2; exit 75";
  svc.admin = "postmaster@example.net";
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  refuse_once();
  obspamd_flush(&svc, PERIOD_END);
  WAIT_FOR(M(mails_failed) == 6, 10000);
  cr_assert_eq(M(mails_failed), 6);
  cr_assert_eq(M(mails_sent), 0);
  cr_assert(logged_line("error: mail failed to=ops@acme.example "
                        "kind=mailbox object=info@example.com: notify "
                        "command exited with status 75: no route to host"),
            "%s", logged());
  obspamd_service_stop(&svc);
}

Test(notify, a_hung_command_is_killed_and_stop_is_bounded) {
  int64_t t0;

  setup(CONFIG);
  svc.notify_command = "sleep 30";
  svc.admin = "postmaster@example.net";
  svc.notify_timeout = 1;
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  refuse_once();
  t0 = obspamd_now_ms();
  obspamd_flush(&svc, PERIOD_END);
  cr_assert_lt(obspamd_now_ms() - t0, 500);
  WAIT_FOR(M(mails_failed) >= 1, 5000);
  cr_assert(logged_line("error: mail failed to=postmaster@example.net "
                        "kind=subscription object=acme: notify command "
                        "timed out after 1 s: killed"),
            "%s", logged());
  /* Five mails left: stop gives them one timeout in all. */
  t0 = obspamd_now_ms();
  obspamd_service_stop(&svc);
  cr_assert_lt(obspamd_now_ms() - t0, 3500);
  cr_assert_eq(M(mails_sent), 0);
  cr_assert_eq(M(mails_failed) + M(mails_dropped), 6);
  cr_assert_geq(M(mails_dropped), 3, "%s", logged());
  cr_assert(logged_text(": the daemon is stopping\n"), "%s", logged());
}

/* How many lines of the log hold text. */
static int logged_count(const char *text) {
  char *log = logged(), *p;
  int n = 0;

  for (p = log; (p = strstr(p, text)) != NULL; p++)
    n++;
  free(log);
  return n;
}

/* An attacker who chooses the senders chooses what is notified: each
   implicit mailbox it takes over its limit is a notice, and each notice
   was a mail to the admin and one to the contact, as fast as the command
   ran (3,000 refused requests to obspam-policyd in 0.2 s made 6,000
   mails: 1,000 queued and sent, 4,979 dropped with a line each). One
   address gets at most 100 mails an hour; every notice is still logged. */
Test(notify, mails_to_one_address_are_bounded) {
  char login[64];
  int i;

  setup("notify-immediate yes\n"
        "default mailbox=100 domain=100000 subscription=100000 "
        "max-recipients=1\n"
        "subscription acme contact=ops@acme.example\n"
        "domain example.com subscription=acme\n");
  svc.notify_command = "cat > /dev/null";
  svc.admin = "postmaster@example.net";
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  for (i = 0; i < 150; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    /* Two recipients over a cap of one: the mailbox went over its own
       limit, its domain and subscription did not. */
    snprintf(login, sizeof(login), "s%d@example.com", i);
    m.sasl_username = login;
    m.client_address = "203.0.113.7";
    m.recipients = 2;
    m.time = T0;
    cr_assert_eq(obspam_decide(svc.engine, &m, &v), OBSPAM_OK);
    cr_assert_eq(v.action, OBSPAM_REFUSE);
  }
  cr_assert_eq(M(notices), 150);
  cr_assert_eq(logged_count("notice kind=mailbox object=s"), 150);
  WAIT_FOR(M(mails_sent) + M(mails_dropped) == 300, 20000);
  cr_assert_eq(M(mails_sent), 200, "%s", logged());
  cr_assert_eq(M(mails_dropped), 100, "%s", logged());
  /* One line for each address when its mails stop, not one a mail. */
  cr_assert_eq(logged_count("mail dropped to="), 2, "%s", logged());
  cr_assert(logged_text("warning: mail dropped to=postmaster@example.net "
                        "kind=mailbox object=s100@example.com: 100 mails "
                        "to this address in an hour; until "),
            "%s", logged());
  cr_assert(logged_text("warning: mail dropped to=ops@acme.example "
                        "kind=mailbox object=s100@example.com: 100 mails "
                        "to this address in an hour; until "),
            "%s", logged());
  cr_assert(logged_text(" its notices are logged, not mailed\n"), "%s",
            logged());
  obspamd_service_stop(&svc);
}

Test(notify, immediate_notices_come_from_the_decision) {
  char config[1024];

  snprintf(config, sizeof(config), "notify-immediate yes\n%s", CONFIG);
  setup(config);
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  refuse_once();
  cr_assert_eq(M(notices), 3);
  cr_assert(logged_line(NOTICE_LINES[2]), "%s", logged());
  obspamd_service_stop(&svc);
}

/* ---- the periodic work --------------------------------------------------- */

/* The service of CONFIG started, with a state file to save every
   second. */
static void start_saving_every_second(void) {
  setup(CONFIG);
  svc.state_path = path_in("state");
  svc.save_interval = 1;
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
}

Test(tick, saves_and_flushes_when_due) {
  start_saving_every_second();
  refuse_once();
  /* The first tick flushes (notices left from before a restart go out
     at once); the first save is due one interval after the start. */
  obspamd_tick(&svc, PERIOD_END);
  cr_assert_eq(M(notices), 3);
  cr_assert_eq(M(saves_ok), 0);
  usleep(1100 * 1000);
  obspamd_tick(&svc, PERIOD_END);
  cr_assert_eq(M(saves_ok), 1);
  obspamd_tick(&svc, PERIOD_END);
  cr_assert_eq(M(saves_ok), 1);
  obspamd_service_stop(&svc);
  cr_assert_eq(M(saves_ok), 2);
}

/* The implicit mailboxes' cap: each time it is reached the tick logs
   once, and the metrics export the figures. */
Test(tick, implicit_overflow_logged_once_per_episode) {
  static const char *const logins[] = {"n1@example.com", "n2@example.com",
                                       "n3@example.com", "n4@example.com"};
  char buf[8192];
  int i;

  setup("implicit-mailboxes 2\n"
        "subscription acme\n"
        "domain example.com subscription=acme\n");
  cr_assert_eq(obspamd_service_start(&svc), OBSPAM_OK);
  for (i = 0; i < 4; i++)
    decide_at(logins[i], T0 + i);
  obspamd_tick(&svc, T0 + 10);
  obspamd_tick(&svc, T0 + 11);
  cr_assert(logged_line("warning: implicit: 2 undeclared mailboxes are "
                        "tracked, the cap (implicit-mailboxes 2); more are "
                        "limited by their domain and subscription only until "
                        "some expire (episode 1, 2 such decisions so far)"),
            "%s", logged());
  obspamd_metrics_format(&svc, buf, sizeof(buf));
  cr_assert(strstr(buf, "\nobspam_implicit_mailboxes 2\n") != NULL, "%s", buf);
  cr_assert(strstr(buf, "\nobspam_implicit_overflow_total 2\n") != NULL, "%s",
            buf);
  cr_assert(strstr(buf, "\nobspam_implicit_overflow_episodes_total 1\n") !=
                NULL,
            "%s", buf);
  /* Room again, then the cap again: a second episode, a second line. */
  cr_assert_eq(obspam_remove(svc.engine, OBSPAM_MAILBOX, "n1@example.com"),
               OBSPAM_OK);
  decide_at("n5@example.com", T0 + 20);
  decide_at("n6@example.com", T0 + 21);
  obspamd_tick(&svc, T0 + 30);
  cr_assert(logged_text("(episode 2, 3 such decisions so far)"), "%s",
            logged());
  {
    char *log = logged();
    int n = count_in(log, "warning: implicit:");

    free(log);
    cr_assert_eq(n, 2, "%d implicit lines", n);
  }
  obspamd_service_stop(&svc);
}

Test(tick, housekeeping_thread) {
  start_saving_every_second();
  cr_assert_eq(obspamd_housekeeping_start(&svc), 0);
  WAIT_FOR(M(saves_ok) >= 1, 5000);
  cr_assert_geq(M(saves_ok), 1);
  obspamd_housekeeping_stop(&svc);
  obspamd_housekeeping_stop(&svc); /* twice is fine */
  obspamd_service_stop(&svc);      /* also stops it if still running */
}
