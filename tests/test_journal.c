/* SPDX-License-Identifier: MIT */
/* The journal: obspam_journal_open, obspam_journal_flush,
   obspam_journal_close, and what obspam_state_save does with it. An
   engine that "crashed" is one whose files are read by a second engine
   while the first is still alive: nothing at its end is written. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static const char config[] =
    "default mailbox=5 domain=unlimited subscription=unlimited\n"
    "subscription acme\n"
    "domain example.com subscription=acme\n"
    "mailbox a@example.com\n"
    "mailbox b@example.com limit=unlimited\n"
    "subscription shop\n"
    "domain shop.example subscription=shop domain=4\n";

static char dir[256], state[300], journal[320], next[330];

static void setup(void) {
  tu_mkdtemp(dir, sizeof(dir), "obspam-journal");
  snprintf(state, sizeof(state), "%s/state", dir);
  snprintf(journal, sizeof(journal), "%s.journal", state);
  snprintf(next, sizeof(next), "%s.journal.next", state);
}

static void teardown(void) { tu_rmtree(dir); }

TestSuite(journal, .init = setup, .fini = teardown);

static obspam_engine *engine(void) {
  obspam_engine *e = tu_new();

  OK(obspam_load_config_string(e, config));
  return e;
}

/* A second engine from the files, as a restart would make it. */
static obspam_engine *restart(int64_t want_replayed, int64_t want_ignored) {
  obspam_engine *e = engine();
  int64_t replayed = -1, ignored = -1;

  if (access(state, F_OK) == 0)
    OK(obspam_state_load(e, state));
  OK(obspam_journal_open(e, state, 0, &replayed, &ignored));
  cr_assert_eq(replayed, want_replayed, "replayed %lld, expected %lld",
               (long long)replayed, (long long)want_replayed);
  cr_assert_eq(ignored, want_ignored, "ignored %lld, expected %lld",
               (long long)ignored, (long long)want_ignored);
  return e;
}

static const tu_object objects[] = {
    {OBSPAM_MAILBOX, "a@example.com"},    {OBSPAM_MAILBOX, "b@example.com"},
    {OBSPAM_MAILBOX, "new@shop.example"}, {OBSPAM_DOMAIN, "example.com"},
    {OBSPAM_DOMAIN, "shop.example"},      {OBSPAM_SUBSCRIPTION, "acme"},
    {OBSPAM_SUBSCRIPTION, "shop"}};

/* Every counter of every object, the same in both engines. */
static void same_counters(obspam_engine *x, obspam_engine *y, int64_t now) {
  size_t i;

  for (i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
    obspam_stats a = OBSPAM_STATS_INIT, b = OBSPAM_STATS_INIT;
    int ra = obspam_stats_get(x, objects[i].kind, objects[i].name, now, &a);
    int rb = obspam_stats_get(y, objects[i].kind, objects[i].name, now, &b);

    cr_assert_eq(ra, rb, "%s: %d, %d", objects[i].name, ra, rb);
    if (ra != OBSPAM_OK)
      continue;
    cr_assert_eq(a.count, b.count, "%s: count %lld, %lld", objects[i].name,
                 (long long)a.count, (long long)b.count);
    cr_assert_eq(a.refused, b.refused, "%s: refused", objects[i].name);
    cr_assert_eq(a.refused_total, b.refused_total, "%s: refused_total",
                 objects[i].name);
    cr_assert_eq(a.exceeded, b.exceeded, "%s: exceeded", objects[i].name);
    cr_assert_eq(a.exceeded_total, b.exceeded_total, "%s", objects[i].name);
    cr_assert_eq(a.last_refused, b.last_refused, "%s", objects[i].name);
    cr_assert_eq(a.count_day, b.count_day, "%s", objects[i].name);
    cr_assert_eq(a.forwarded, b.forwarded, "%s: forwarded", objects[i].name);
    cr_assert_eq(a.list_deliveries, b.list_deliveries, "%s: list_deliveries",
                 objects[i].name);
  }
}

/* A restart from the files of e that replays and ignores the numbers of
   entries given and gives the counters e has at now. */
static obspam_engine *restarted(obspam_engine *e, int64_t replayed,
                                int64_t ignored, int64_t now) {
  obspam_engine *back = restart(replayed, ignored);

  same_counters(e, back, now);
  return back;
}

/* The same, for a test that looks no further. */
static void restarts_same(obspam_engine *e, int64_t replayed, int64_t ignored,
                          int64_t now) {
  obspam_engine_free(restarted(e, replayed, ignored, now));
}

static void traffic(obspam_engine *e, int64_t t, int rounds) {
  int i;

  for (i = 0; i < rounds; i++) {
    (void)SASL(e, "a@example.com", 2, t + i);
    (void)SASL(e, "b@example.com", 7, t + i);
    /* Undeclared: an implicit mailbox of shop.example. */
    (void)SASL(e, "new@shop.example", 1, t + i);
  }
}

static void copy_file(const char *from, const char *to) {
  char cmd[800];

  snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
  cr_assert_eq(system(cmd), 0);
}

static off_t size_of(const char *path) {
  struct stat st;

  cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
  return st.st_size;
}

/* Decisions flushed and never saved come back, refusals included. */
Test(journal, replayed_without_a_snapshot) {
  obspam_engine *e = engine(), *back;
  obspam_verdict v;

  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  traffic(e, T0, 4);
  /* a@example.com: 2 + 2 of 5, then refused (2 more, and 2 again). */
  v = SASL(e, "a@example.com", 2, T0 + 10);
  cr_assert_eq(v.action, OBSPAM_REFUSE);
  OK(obspam_journal_flush(e));
  back = restarted(e, 13, 0, T0 + 20);
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "a@example.com", T0 + 20, 4, 3);
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "new@shop.example", T0 + 20, 4, 0);
  obspam_engine_free(back);
  obspam_engine_free(e);
}

/* Forwards and list deliveries, exempt (charged to nobody) and
   charged, replay with exact numbers. */
Test(journal, forwards_and_lists_replay) {
  obspam_engine *e = engine(), *back;
  obspam_message fw = tu_msg(OBSPAM_MSG_FORWARD_REMOTE, NULL, "a@example.com",
                             "192.0.2.1", 1, -1, NULL, NULL, T0);
  obspam_message ls = tu_msg(OBSPAM_MSG_MAILING_LIST, NULL, "news@shop.example",
                             NULL, 6, -1, NULL, NULL, T0);
  /* What the restarted engine counts: sent, forwarded, list deliveries. */
  static const struct {
    int kind;
    const char *name;
    int64_t count, forwarded, lists;
  } want[] = {{OBSPAM_MAILBOX, "a@example.com", 1, 1, 0},
              {OBSPAM_DOMAIN, "shop.example", 3, 0, 9},
              {OBSPAM_MAILBOX, "news@shop.example", 3, 0, 3}};
  obspam_verdict v;

  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  v = DECIDE(e, &fw);
  cr_assert_eq(v.action, OBSPAM_ACCEPT);
  ls.time = T0 + 1;
  v = DECIDE(e, &ls); /* exempt: shop.example and shop count it */
  cr_assert_eq(v.action, OBSPAM_EXEMPT);
  OK(obspam_set_option(e, OBSPAM_OPT_COUNT_MAILING_LISTS, 1));
  ls.time = T0 + 2;
  ls.recipients = 3;
  v = DECIDE(e, &ls); /* charged: its implicit mailbox too */
  cr_assert_eq(v.action, OBSPAM_ACCEPT);
  OK(obspam_journal_flush(e));
  back = restarted(e, 3, 0, T0 + 20);
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    EXPECT_COUNTS(back, want[i].kind, want[i].name, T0 + 20, want[i].count, 0);
    EXPECT_MARKS(back, want[i].kind, want[i].name, T0 + 20, want[i].forwarded,
                 want[i].lists);
  }
  obspam_engine_free(back);
  obspam_engine_free(e);
}

/* Nothing is written before a flush; a flush writes everything. */
Test(journal, nothing_before_the_flush) {
  obspam_engine *e = engine();
  off_t whole;

  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  cr_assert_eq(size_of(journal), 32);
  traffic(e, T0, 2);
  cr_assert_eq(size_of(journal), 32);
  OK(obspam_journal_flush(e));
  whole = size_of(journal);
  OK(obspam_journal_flush(e)); /* nothing waits: nothing written */
  cr_assert_eq(size_of(journal), whole);
  restarts_same(e, 6, 0, T0 + 5);
  obspam_engine_free(e);
}

/* A save replaces the journal by what came after it. */
Test(journal, save_truncates) {
  obspam_engine *e = engine();

  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  traffic(e, T0, 3);
  OK(obspam_journal_flush(e));
  OK(obspam_state_save(e, state));
  cr_assert_eq(size_of(journal), 32);
  cr_assert_eq(access(next, F_OK), -1);
  traffic(e, T0 + 100, 2);
  OK(obspam_journal_flush(e));
  restarts_same(e, 6, 0, T0 + 200);
  /* A save to another path leaves the journal alone. */
  snprintf(next, sizeof(next), "%s/other", dir);
  OK(obspam_state_save(e, next));
  restarts_same(e, 6, 0, T0 + 200);
  obspam_engine_free(e);
}

/* The journal after a restart goes on where it was. */
Test(journal, restart_twice) {
  obspam_engine *e = engine(), *back, *again;

  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  traffic(e, T0, 3);
  OK(obspam_journal_flush(e));
  back = restart(9, 0);
  traffic(e, T0 + 60, 2);
  traffic(back, T0 + 60, 2);
  OK(obspam_journal_flush(back));
  obspam_engine_free(back); /* closes: the next one reads its records */
  again = restart(15, 0);
  same_counters(e, again, T0 + 120);
  obspam_engine_free(again);
  obspam_engine_free(e);
}

/* A record cut short by a crash is ignored, and so is anything after it;
   the journal goes on from the last whole record, cut there. */
Test(journal, torn_last_record) {
  obspam_engine *e = engine(), *back;
  off_t whole;
  int fd, cut;

  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  traffic(e, T0, 2);
  OK(obspam_journal_flush(e));
  whole = size_of(journal);
  (void)SASL(e, "b@example.com", 100, T0 + 30);
  OK(obspam_journal_flush(e));
  cr_assert_gt(size_of(journal), whole + 9);
  for (cut = 1; cut < (int)(size_of(journal) - whole); cut += 7) {
    char torn[400], aside[400];

    snprintf(torn, sizeof(torn), "%s/torn", dir);
    snprintf(aside, sizeof(aside), "%s/aside", dir);
    copy_file(journal, torn);
    cr_assert_eq(truncate(torn, whole + cut), 0);
    cr_assert_eq(rename(journal, aside), 0);
    cr_assert_eq(rename(torn, journal), 0);
    back = restart(6, 0);
    EXPECT_COUNTS(back, OBSPAM_MAILBOX, "b@example.com", T0 + 30, 14, 0);
    obspam_engine_free(back);
    cr_assert_eq(size_of(journal), whole);
    cr_assert_eq(rename(aside, journal), 0);
  }
  /* A damaged byte in the middle ends what is trusted there. */
  fd = open(journal, O_WRONLY);
  cr_assert_geq(fd, 0);
  cr_assert_eq(pwrite(fd, "\xff", 1, whole + (size_of(journal) - whole) / 2),
               1);
  close(fd);
  back = restart(6, 0);
  obspam_engine_free(back);
  obspam_engine_free(e);
}

/* The files of a journaled engine e through two saves, copied aside:
   s0, the snapshot of the first save, and j0, the journal of the 3
   decisions after it; s1 (unless NULL), the snapshot of the second, and
   j1, the journal of the 6 decisions after it. */
static void files_of_two_saves(obspam_engine *e, const char *s0, const char *j0,
                               const char *s1, const char *j1) {
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  traffic(e, T0, 2);
  OK(obspam_state_save(e, state));
  traffic(e, T0 + 10, 1);
  OK(obspam_journal_flush(e));
  copy_file(state, s0);
  copy_file(journal, j0);
  OK(obspam_state_save(e, state));
  if (s1 != NULL)
    copy_file(state, s1);
  traffic(e, T0 + 20, 2);
  OK(obspam_journal_flush(e));
  copy_file(journal, j1);
}

/* The files a save killed before it stamped .next leaves, from those
   of files_of_two_saves: s0 in place, j0 its journal, and j1 as .next,
   whose snapshot length says that no snapshot holds its counters yet. */
static void files_of_a_save_killed_before_its_stamp(const char *s0,
                                                    const char *j0,
                                                    const char *j1) {
  int fd;

  copy_file(s0, state);
  copy_file(j0, journal);
  copy_file(j1, next);
  fd = open(next, O_WRONLY);
  cr_assert_eq(pwrite(fd, "\xff\xff\xff\xff\xff\xff\xff\xff", 8, 16), 8);
  close(fd);
}

/* The files a crash during a save can leave. */
Test(journal, crash_during_a_save) {
  obspam_engine *e = engine();
  char s0[400], s1[400], j0[400], j1[400];

  snprintf(s0, sizeof(s0), "%s/s0", dir);
  snprintf(s1, sizeof(s1), "%s/s1", dir);
  snprintf(j0, sizeof(j0), "%s/j0", dir);
  snprintf(j1, sizeof(j1), "%s/j1", dir);
  files_of_two_saves(e, s0, j0, s1, j1);

  /* Killed after .next was stamped, before the snapshot's rename: S0 is
     in place, J0 follows it and J1 (.next) follows a snapshot that never
     landed. */
  copy_file(s0, state);
  copy_file(j0, journal);
  copy_file(j1, next);
  restarts_same(e, 9, 0, T0 + 30);
  cr_assert_eq(access(next, F_OK), -1);

  /* Killed after the snapshot's rename, before the journal's: S1 is in
     place, and J0 is older than it. */
  copy_file(s1, state);
  copy_file(j0, journal);
  copy_file(j1, next);
  restarts_same(e, 6, 3, T0 + 30);

  /* Killed before .next was stamped: it follows no snapshot yet. */
  files_of_a_save_killed_before_its_stamp(s0, j0, j1);
  restarts_same(e, 9, 0, T0 + 30);
  obspam_engine_free(e);
}

/* A journal that follows another snapshot is not replayed. */
Test(journal, foreign_journal_ignored) {
  obspam_engine *e = engine(), *back;
  char old[400];

  snprintf(old, sizeof(old), "%s/old", dir);
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  traffic(e, T0, 1);
  OK(obspam_state_save(e, state));
  copy_file(state, old);
  traffic(e, T0 + 10, 1);
  OK(obspam_state_save(e, state));
  traffic(e, T0 + 20, 2);
  OK(obspam_journal_flush(e));
  copy_file(old, state); /* an older snapshot put back */
  back = restart(0, 6);
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "b@example.com", T0 + 20, 7, 0);
  obspam_engine_free(back);
  /* Nor over no snapshot at all. */
  unlink(state);
  back = restart(0, 0); /* the journal was written again, empty */
  obspam_engine_free(back);
  obspam_engine_free(e);
}

/* Makes the state path a directory, not empty (it holds a file), so that
   a save cannot rename its snapshot into place. */
static void state_is_a_directory(void) {
  char inside[400];
  int fd;

  cr_assert_eq(mkdir(state, 0700), 0);
  snprintf(inside, sizeof(inside), "%s/file", state);
  fd = open(inside, O_WRONLY | O_CREAT, 0600);
  cr_assert_geq(fd, 0);
  close(fd);
}

/* A save that fails after its cut keeps the records after it: here the
   rename of the snapshot fails (the state path is a directory). */
Test(journal, failed_save_keeps_everything) {
  obspam_engine *e = engine(), *back;
  int64_t replayed = -1;

  state_is_a_directory();
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  traffic(e, T0, 2);
  OK(obspam_journal_flush(e));
  traffic(e, T0 + 5, 1); /* waiting at the cut */
  RC(obspam_state_save(e, state), OBSPAM_EIO);
  cr_assert_eq(access(next, F_OK), -1);
  traffic(e, T0 + 10, 1);
  OK(obspam_journal_flush(e));
  back = engine();
  OK(obspam_journal_open(back, state, 0, &replayed, NULL));
  cr_assert_eq(replayed, 12);
  same_counters(e, back, T0 + 20);
  obspam_engine_free(back);
  obspam_engine_free(e);
}

Test(journal, bad_calls) {
  obspam_engine *e = engine();
  int fd;

  RC(obspam_journal_open(NULL, state, 0, NULL, NULL), OBSPAM_EINVAL);
  RC(obspam_journal_open(e, NULL, 0, NULL, NULL), OBSPAM_EINVAL);
  RC(obspam_journal_open(e, "", 0, NULL, NULL), OBSPAM_EINVAL);
  RC(obspam_journal_open(e, state, 2, NULL, NULL), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e), "journal_open: unknown flags 0x2");
  RC(obspam_journal_flush(NULL), OBSPAM_EINVAL);
  RC(obspam_journal_close(NULL), OBSPAM_EINVAL);
  OK(obspam_journal_flush(e)); /* none open */
  OK(obspam_journal_close(e));

  fd = open(journal, O_WRONLY | O_CREAT, 0600);
  cr_assert_eq(write(fd, "not a journal at all, but 32+ bytes", 35), 35);
  close(fd);
  RC(obspam_journal_open(e, state, 0, NULL, NULL), OBSPAM_ECORRUPT);
  cr_assert(strstr(obspam_engine_errmsg(e), "not a libobspam journal"));
  fd = open(journal, O_WRONLY | O_TRUNC);
  cr_assert_eq(write(fd,
                     "OBSPAMJR\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
                     "\0\0\0\0\0\0\0\0",
                     32),
               32);
  close(fd);
  RC(obspam_journal_open(e, state, 0, NULL, NULL), OBSPAM_EVERSION);
  unlink(journal);

  OK(obspam_journal_open(e, state, OBSPAM_JOURNAL_FSYNC, NULL, NULL));
  RC(obspam_journal_open(e, state, 0, NULL, NULL), OBSPAM_EINVAL);
  cr_assert_str_eq(obspam_engine_errmsg(e),
                   "journal_open: a journal is open already");
  OK(obspam_state_save(e, state));
  RC(obspam_state_load(e, state), OBSPAM_EINVAL);
  traffic(e, T0, 1);
  OK(obspam_journal_close(e));
  OK(obspam_state_load(e, state)); /* closed: allowed again */
  obspam_engine_free(e);
}

/* A file that takes part of a write and then no more, as a full disk
   does (here the file size limit: the same short write, then EFBIG). */
static void limit_file_size(rlim_t size) {
  struct rlimit rl;

  cr_assert_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
  rl.rlim_cur = size;
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/* Lifts the file size limit after the flushes it refused: the next flush
   still fails, to say that the oldest `dropped` decisions are lost. */
static void expect_dropped(obspam_engine *e, int64_t dropped) {
  char want[120];

  limit_file_size(RLIM_INFINITY);
  RC(obspam_journal_flush(e), OBSPAM_EIO);
  snprintf(want, sizeof(want),
           "journal_flush: %lld decisions were dropped: the journal did not "
           "take them",
           (long long)dropped);
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
}

/* A write cut short leaves no torn record: the file is cut back to its
   whole records, the decisions wait in memory, and the next flush that
   the file takes writes them after the good ones, where a restart reads
   them all. */
Test(journal, short_write_cut_back) {
  obspam_engine *e = engine(), *back;
  struct stat before, after;
  off_t whole;
  int i;

  cr_assert_neq(signal(SIGXFSZ, SIG_IGN), SIG_ERR);
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  traffic(e, T0, 2);
  OK(obspam_journal_flush(e));
  whole = size_of(journal);
  /* Room for part of one record. */
  limit_file_size((rlim_t)whole + 50);
  traffic(e, T0 + 10, 2);
  for (i = 0; i < 3; i++) {
    RC(obspam_journal_flush(e), OBSPAM_EIO);
    cr_assert(strstr(obspam_engine_errmsg(e), "File too large"), "%s",
              obspam_engine_errmsg(e));
    cr_assert_eq(size_of(journal), whole);
  }
  traffic(e, T0 + 20, 1);
  limit_file_size(RLIM_INFINITY);
  OK(obspam_journal_flush(e));
  cr_assert_eq(stat(journal, &before), 0);
  back = restarted(e, 15, 0, T0 + 30);
  /* The restart goes on in the same file: it needs no room for a copy. */
  cr_assert_eq(stat(journal, &after), 0);
  cr_assert_eq(after.st_ino, before.st_ino);
  cr_assert_eq(after.st_size, before.st_size);
  OK(obspam_journal_close(back));
  obspam_engine_free(back);
  restarts_same(e, 15, 0, T0 + 30);
  obspam_engine_free(e);
}

/* While the file takes nothing, 256 KiB of records wait; beyond that
   the oldest go. The flush that writes again says how many, exactly
   once; the engine's counters still hold them, and the next save puts
   them in the state file. */
Test(journal, dropped_while_full) {
  obspam_engine *e = engine(), *back;
  off_t whole, first, rec;
  int64_t cap, i, n;

  cr_assert_neq(signal(SIGXFSZ, SIG_IGN), SIG_ERR);
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  /* The first record defines the names, the second refers to them. */
  (void)SASL(e, "b@example.com", 1, T0);
  OK(obspam_journal_flush(e));
  first = size_of(journal) - 32;
  (void)SASL(e, "b@example.com", 1, T0);
  OK(obspam_journal_flush(e));
  rec = size_of(journal) - 32 - first;
  /* 5 of length and checksum, flags and shape 2, the time 5 (T0 whole),
     the amount 1, retention and period 2 + 2, each object's id 1 with
     its kind and name the first time: acme 6, example.com 13,
     b@example.com 15 (no limit: it went over none). Then the time's
     difference, 0, in one byte. */
  cr_assert_eq(first, 54);
  cr_assert_eq(rec, 12);
  cap = (256 * 1024) / rec; /* records that wait in memory */
  whole = size_of(journal);
  limit_file_size((rlim_t)whole);
  n = cap + cap / 2;
  for (i = 0; i < n; i++)
    (void)SASL(e, "b@example.com", 1, T0 + 1);
  RC(obspam_journal_flush(e), OBSPAM_EIO);
  cr_assert(strstr(obspam_engine_errmsg(e), "File too large"), "%s",
            obspam_engine_errmsg(e));
  cr_assert_eq(size_of(journal), whole);
  expect_dropped(e, cap);
  /* The first record after the dropped ones defines the names again. */
  cr_assert_eq(size_of(journal), whole + first + (n - cap - 1) * rec);
  OK(obspam_journal_flush(e)); /* said once */
  EXPECT_COUNTS(e, OBSPAM_MAILBOX, "b@example.com", T0 + 2, 2 + n, 0);
  back = restart(2 + n - cap, 0);
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "b@example.com", T0 + 2, 2 + n - cap, 0);
  obspam_engine_free(back);
  OK(obspam_state_save(e, state));
  restarts_same(e, 0, 0, T0 + 2);
  obspam_engine_free(e);
}

/* Format 3's records of b@example.com (see dropped_while_full): the first
   in a generation defines its three names, the next ones refer to them. */
#define FIRST 54
#define NEXT 12

/* A save's cut starts a generation: the first record after it defines
   its names again, so that every file, and every stretch copied from
   one file into another, defines before it refers. */
Test(journal, names_defined_again_after_a_cut) {
  obspam_engine *e = engine();

  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  (void)SASL(e, "b@example.com", 1, T0);
  (void)SASL(e, "b@example.com", 1, T0);
  OK(obspam_journal_flush(e));
  cr_assert_eq(size_of(journal), 32 + FIRST + NEXT);
  OK(obspam_state_save(e, state));
  cr_assert_eq(size_of(journal), 32);
  (void)SASL(e, "b@example.com", 1, T0);
  (void)SASL(e, "b@example.com", 1, T0);
  OK(obspam_journal_flush(e));
  cr_assert_eq(size_of(journal), 32 + FIRST + NEXT);
  restarts_same(e, 2, 0, T0 + 5);
  obspam_engine_free(e);
}

/* A save whose snapshot cannot be renamed into place (the state path is
   a directory): the records after its cut go back after the journal's,
   and the next record defines its names again. */
Test(journal, names_defined_again_after_a_failed_save) {
  obspam_engine *e = engine(), *back;
  int64_t replayed = -1;

  state_is_a_directory();
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  (void)SASL(e, "b@example.com", 1, T0);
  (void)SASL(e, "b@example.com", 1, T0);
  OK(obspam_journal_flush(e));
  (void)SASL(e, "b@example.com", 1, T0); /* waiting at the cut */
  RC(obspam_state_save(e, state), OBSPAM_EIO);
  (void)SASL(e, "b@example.com", 1, T0);
  (void)SASL(e, "b@example.com", 1, T0);
  OK(obspam_journal_flush(e));
  cr_assert_eq(size_of(journal), 32 + FIRST + 2 * NEXT + FIRST + NEXT);
  back = engine();
  OK(obspam_journal_open(back, state, 0, &replayed, NULL));
  cr_assert_eq(replayed, 5);
  same_counters(e, back, T0 + 5);
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "b@example.com", T0 + 5, 5, 0);
  obspam_engine_free(back);
  obspam_engine_free(e);
}

/* A restart that finds a journal and a .next to replay writes their
   records into one fresh file: each file's definitions come with its
   records, those of .next overriding the journal's ids, and the records
   the restarted engine makes follow in a generation of their own. */
Test(journal, merged_files_keep_their_definitions) {
  obspam_engine *e = engine(), *back, *again;
  char s0[400], j0[400], j1[400];

  snprintf(s0, sizeof(s0), "%s/s0", dir);
  snprintf(j0, sizeof(j0), "%s/j0", dir);
  snprintf(j1, sizeof(j1), "%s/j1", dir);
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  (void)SASL(e, "a@example.com", 1, T0);
  OK(obspam_state_save(e, state));
  /* J0: ids 0 to 2 are acme, example.com and a@example.com. */
  (void)SASL(e, "a@example.com", 1, T0 + 1);
  (void)SASL(e, "new@shop.example", 1, T0 + 1);
  OK(obspam_journal_flush(e));
  copy_file(state, s0);
  copy_file(journal, j0);
  OK(obspam_state_save(e, state));
  /* J1: ids 0 to 2 are shop, shop.example and new@shop.example. */
  (void)SASL(e, "new@shop.example", 2, T0 + 2);
  (void)SASL(e, "new@shop.example", 1, T0 + 2);
  (void)SASL(e, "a@example.com", 1, T0 + 2);
  OK(obspam_journal_flush(e));
  copy_file(journal, j1);
  /* Killed after .next was stamped, before the snapshot's rename. */
  copy_file(s0, state);
  copy_file(j0, journal);
  copy_file(j1, next);
  back = restarted(e, 5, 0, T0 + 5);
  cr_assert_eq(access(next, F_OK), -1);
  (void)SASL(e, "new@shop.example", 1, T0 + 3);
  (void)SASL(back, "new@shop.example", 1, T0 + 3);
  (void)SASL(e, "b@example.com", 3, T0 + 3);
  (void)SASL(back, "b@example.com", 3, T0 + 3);
  obspam_engine_free(back); /* closes its journal: every record written */
  again = restart(7, 0);
  same_counters(e, again, T0 + 5);
  /* shop.example takes 4 an hour: the last one was refused. */
  EXPECT_COUNTS(again, OBSPAM_MAILBOX, "new@shop.example", T0 + 5, 4, 1);
  EXPECT_COUNTS(again, OBSPAM_MAILBOX, "a@example.com", T0 + 5, 3, 0);
  obspam_engine_free(again);
  obspam_engine_free(e);
}

/* Records dropped while the file takes nothing may hold the definitions
   later records would refer to: the first record after a drop defines
   its names again. Here the dropped ones include the first record of
   the file, the one that defined them. */
Test(journal, dropped_definitions_made_again) {
  obspam_engine *e = engine(), *back;
  int64_t cap, i, n;

  cr_assert_neq(signal(SIGXFSZ, SIG_IGN), SIG_ERR);
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  limit_file_size(32);
  /* The records that wait in memory: the first defines, the others
     refer, while they fit in 256 KiB. */
  cap = 1 + (256 * 1024 - FIRST) / NEXT;
  n = cap + 10;
  for (i = 0; i < n; i++)
    (void)SASL(e, "b@example.com", 1, T0);
  RC(obspam_journal_flush(e), OBSPAM_EIO);
  expect_dropped(e, cap);
  cr_assert_eq(size_of(journal), 32 + FIRST + 9 * NEXT);
  back = restart(10, 0);
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "b@example.com", T0 + 1, 10, 0);
  obspam_engine_free(back);
  obspam_engine_free(e);
}

/* Takes the bytes [from, to) out of the journal. */
static void cut_out(off_t from, off_t to) {
  off_t size = size_of(journal);
  char *data = malloc((size_t)size);
  int fd = open(journal, O_RDWR);

  cr_assert_not_null(data);
  cr_assert_geq(fd, 0);
  cr_assert_eq(pread(fd, data, (size_t)size, 0), size);
  cr_assert_eq(pwrite(fd, data + to, (size_t)(size - to), from), size - to);
  cr_assert_eq(ftruncate(fd, size - (to - from)), 0);
  close(fd);
  free(data);
}

/* A record that refers to an id no record before it defined stops the
   replay there, as a damaged record does, rather than count for another
   object; the journal is cut after the last record replayed. */
Test(journal, undefined_id_stops_the_replay) {
  obspam_engine *e = engine(), *back;
  char whole[400];

  snprintf(whole, sizeof(whole), "%s/whole", dir);
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  (void)SASL(e, "b@example.com", 1, T0);
  (void)SASL(e, "b@example.com", 2, T0);
  (void)SASL(e, "b@example.com", 3, T0);
  OK(obspam_journal_flush(e));
  obspam_engine_free(e);
  cr_assert_eq(size_of(journal), 32 + FIRST + 2 * NEXT);
  copy_file(journal, whole);
  /* Without the second record, the third still refers to the first. */
  cut_out(32 + FIRST, 32 + FIRST + NEXT);
  back = restart(2, 0);
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "b@example.com", T0, 4, 0);
  obspam_engine_free(back);
  /* Without the first, the others give ids nothing defined. */
  copy_file(whole, journal);
  cut_out(32, 32 + FIRST);
  back = restart(0, 0);
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "b@example.com", T0, 0, 0);
  obspam_engine_free(back);
  cr_assert_eq(size_of(journal), 32);
}

/* A definition cut short by a crash is ignored like any torn record. */
Test(journal, torn_definition_ignored) {
  obspam_engine *e = engine(), *back;
  char torn[400], whole[400];
  int cut;

  snprintf(torn, sizeof(torn), "%s/torn", dir);
  snprintf(whole, sizeof(whole), "%s/whole", dir);
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  (void)SASL(e, "b@example.com", 4, T0);
  OK(obspam_journal_flush(e));
  obspam_engine_free(e);
  cr_assert_eq(size_of(journal), 32 + FIRST);
  copy_file(journal, whole);
  for (cut = 1; cut < FIRST; cut++) {
    copy_file(whole, torn);
    cr_assert_eq(truncate(torn, 32 + cut), 0);
    cr_assert_eq(rename(torn, journal), 0);
    back = restart(0, 0);
    EXPECT_COUNTS(back, OBSPAM_MAILBOX, "b@example.com", T0, 0, 0);
    obspam_engine_free(back);
    cr_assert_eq(size_of(journal), 32);
  }
  copy_file(whole, journal);
  back = restart(1, 0);
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "b@example.com", T0, 4, 0);
  obspam_engine_free(back);
}

/* The whole file at path, for comparing bytes. */
static char *slurp(const char *path, size_t *n) {
  off_t size = size_of(path);
  char *data = malloc((size_t)size + 1);
  int fd = open(path, O_RDONLY);

  cr_assert_not_null(data);
  cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
  cr_assert_eq(pread(fd, data, (size_t)size, 0), size);
  close(fd);
  *n = (size_t)size;
  return data;
}

/* A second process given the same state file (two daemons started with
   one --state by mistake) is refused before it reads or writes anything:
   the first one's journal and counts stay whole, and once the first is
   gone the state file opens again, its decisions replayed. */
Test(journal, another_process_refused) {
  obspam_engine *e = engine(), *back;
  char want[1000], c, *before, *after;
  size_t nb, na;
  int ready[2], status;
  pid_t pid;

  cr_assert_eq(pipe(ready), 0);
  fflush(NULL);
  pid = fork();
  cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
  if (pid == 0) {
    /* The first daemon: its journal open, 6 decisions flushed. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (obspam_journal_open(e, state, 0, NULL, NULL) != OBSPAM_OK)
      _exit(3);
    traffic(e, T0, 2);
    if (obspam_journal_flush(e) != OBSPAM_OK || write(ready[1], "x", 1) != 1)
      _exit(3);
    for (;;)
      pause();
  }
  close(ready[1]);
  cr_assert_eq(read(ready[0], &c, 1), 1, "the first process did not start");
  close(ready[0]);
  before = slurp(journal, &nb);

  RC(obspam_journal_open(e, state, 0, NULL, NULL), OBSPAM_EIO);
  snprintf(want, sizeof(want),
           "journal_open: %s is in use by process %ld (it holds %s.lock): two "
           "processes cannot share a state file",
           state, (long)pid, state);
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
  after = slurp(journal, &na);
  cr_assert_eq(na, nb);
  cr_assert_eq(memcmp(before, after, nb), 0, "the journal was changed");
  cr_assert_eq(access(next, F_OK), -1);
  free(after);
  free(before);

  kill(pid, SIGKILL);
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  back = restart(6, 0);
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "b@example.com", T0 + 5, 14, 0);
  obspam_engine_free(back);
  obspam_engine_free(e);
}

/* The lock's file is no way in: a symbolic link or another kind of file
   in its place is refused with its name. */
Test(journal, lock_file_checked) {
  obspam_engine *e = engine();
  char lock[400], want[800], target[400];

  snprintf(lock, sizeof(lock), "%s.lock", state);
  snprintf(target, sizeof(target), "%s/target", dir);
  cr_assert_eq(symlink(target, lock), 0);
  RC(obspam_journal_open(e, state, 0, NULL, NULL), OBSPAM_EIO);
  snprintf(want, sizeof(want), "journal_open: %s: %s", lock, strerror(ELOOP));
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
  cr_assert_eq(access(target, F_OK), -1, "the link was followed");
  cr_assert_eq(access(journal, F_OK), -1);
  cr_assert_eq(unlink(lock), 0);
  cr_assert_eq(mkfifo(lock, 0600), 0);
  RC(obspam_journal_open(e, state, 0, NULL, NULL), OBSPAM_EIO);
  snprintf(want, sizeof(want), "journal_open: %s: not a regular file", lock);
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
  cr_assert_eq(unlink(lock), 0);
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  cr_assert_eq(size_of(lock), 0);
  obspam_engine_free(e);
}

/* A FIFO or a symbolic link at the state's paths (a state directory that
   others can write) is refused with its name, at once: opening a FIFO to
   read it waited for a writer for ever, and the daemon never started. */
Test(journal, state_paths_that_are_no_regular_files, .timeout = 20) {
  obspam_engine *e = engine();
  char want[800], target[400];
  const char *paths[] = {journal, next};
  int i;

  for (i = 0; i < 2; i++) {
    cr_assert_eq(mkfifo(paths[i], 0600), 0);
    RC(obspam_journal_open(e, state, 0, NULL, NULL), OBSPAM_EIO);
    snprintf(want, sizeof(want), "journal_open: %s: not a regular file",
             paths[i]);
    cr_assert_str_eq(obspam_engine_errmsg(e), want);
    cr_assert_eq(unlink(paths[i]), 0);
  }
  /* The state file itself: its identity is not read from a FIFO, and
     the snapshot is not loaded from one, or through a link. */
  cr_assert_eq(mkfifo(state, 0600), 0);
  RC(obspam_state_load(e, state), OBSPAM_EIO);
  snprintf(want, sizeof(want), "state_load: %s: not a regular file", state);
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  OK(obspam_journal_close(e));
  cr_assert_eq(unlink(state), 0);
  snprintf(target, sizeof(target), "%s/target", dir);
  cr_assert_eq(mkfifo(target, 0600), 0);
  cr_assert_eq(symlink(target, state), 0);
  RC(obspam_state_load(e, state), OBSPAM_EIO);
  snprintf(want, sizeof(want), "state_load: %s: cannot open: %s", state,
           strerror(ELOOP));
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
  cr_assert_eq(unlink(journal), 0);
  cr_assert_eq(symlink(target, journal), 0);
  RC(obspam_journal_open(e, state, 0, NULL, NULL), OBSPAM_EIO);
  snprintf(want, sizeof(want), "journal_open: %s: cannot open: %s", journal,
           strerror(ELOOP));
  cr_assert_str_eq(obspam_engine_errmsg(e), want);
  obspam_engine_free(e);
}

/* A file planted at STATE.journal.next between two saves (a state
   directory that others can write): here a hard link to the journal of
   another state file beside this one. The save makes a file of its own
   there: the planted one is neither truncated nor made this journal. */
Test(journal, planted_next_not_adopted) {
  obspam_engine *e = engine(), *other = engine(), *back;
  char ostate[400], ojournal[420], *before, *after;
  struct stat mine, theirs;
  size_t nb, na;

  snprintf(ostate, sizeof(ostate), "%s/other", dir);
  snprintf(ojournal, sizeof(ojournal), "%s.journal", ostate);
  OK(obspam_journal_open(other, ostate, 0, NULL, NULL));
  traffic(other, T0, 1);
  OK(obspam_journal_flush(other));
  obspam_engine_free(other);
  before = slurp(ojournal, &nb);
  cr_assert_gt(nb, 32);

  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  traffic(e, T0, 2);
  OK(obspam_journal_flush(e));
  cr_assert_eq(link(ojournal, next), 0);
  OK(obspam_state_save(e, state));
  traffic(e, T0 + 10, 1);
  OK(obspam_journal_flush(e));

  after = slurp(ojournal, &na);
  cr_assert_eq(na, nb, "the other journal: %zu bytes, was %zu", na, nb);
  cr_assert_eq(memcmp(before, after, nb), 0, "the other journal was changed");
  cr_assert_eq(stat(journal, &mine), 0);
  cr_assert_eq(stat(ojournal, &theirs), 0);
  cr_assert_neq(mine.st_ino, theirs.st_ino, "the planted file is the journal");
  cr_assert_eq(mine.st_mode & 07777, 0600);
  cr_assert_eq(theirs.st_nlink, 1);
  restarts_same(e, 3, 0, T0 + 20);
  /* And the other state's decisions are still its own. */
  back = engine();
  {
    int64_t replayed = -1;

    OK(obspam_journal_open(back, ostate, 0, &replayed, NULL));
    cr_assert_eq(replayed, 3);
  }
  obspam_engine_free(back);
  free(before);
  free(after);
  obspam_engine_free(e);
}

/* A restart after a save killed between its cut and its end merges the
   journal and .next into a fresh file. When the disk does not take that
   file (full), the open fails, and neither file may have been touched:
   the records of .next were still in no other file. The next start, with
   room, replays all of them. */
Test(journal, merge_that_fails_keeps_both_files) {
  obspam_engine *e = engine(), *back;
  char s0[400], j0[400], j1[400], fresh[400], *before, *after;
  size_t nb, na;
  int64_t replayed = -1, ignored = -1;

  snprintf(s0, sizeof(s0), "%s/s0", dir);
  snprintf(j0, sizeof(j0), "%s/j0", dir);
  snprintf(j1, sizeof(j1), "%s/j1", dir);
  files_of_two_saves(e, s0, j0, NULL, j1);
  obspam_engine_free(e);

  /* Killed before .next was stamped: S0, J0, and J1 as .next. */
  files_of_a_save_killed_before_its_stamp(s0, j0, j1);
  before = slurp(next, &nb);
  cr_assert_neq(signal(SIGXFSZ, SIG_IGN), SIG_ERR);
  back = engine();
  OK(obspam_state_load(back, state));
  limit_file_size((rlim_t)(size_of(journal) + 8));
  RC(obspam_journal_open(back, state, 0, NULL, NULL), OBSPAM_EIO);
  limit_file_size(RLIM_INFINITY);
  obspam_engine_free(back);
  snprintf(fresh, sizeof(fresh), "%s.journal.new", state);
  cr_assert_eq(access(fresh, F_OK), -1, "the fresh file is left");
  after = slurp(next, &na);
  cr_assert_eq(na, nb, ".next: %zu bytes, was %zu", na, nb);
  cr_assert_eq(memcmp(before, after, nb), 0, ".next was changed");
  free(before);
  free(after);

  /* A fresh file left by a start killed while writing it goes. */
  copy_file(j0, fresh);
  back = engine();
  OK(obspam_state_load(back, state));
  OK(obspam_journal_open(back, state, 0, &replayed, &ignored));
  cr_assert_eq(access(fresh, F_OK), -1, "the fresh file is left");
  cr_assert_eq(replayed, 9);
  cr_assert_eq(ignored, 0);
  /* b@example.com: 2 + 1 + 2 rounds of 7. */
  EXPECT_COUNTS(back, OBSPAM_MAILBOX, "b@example.com", T0 + 30, 35, 0);
  cr_assert_eq(access(next, F_OK), -1);
  obspam_engine_free(back);
}

/* ---- kill -9 at random points -------------------------------------------- */

#define KILL_ROUNDS 120

static uint32_t next_random(uint32_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 17;
  *s ^= *s << 5;
  return *s;
}

/* A daemon's life in a child: a restart from the files, then decisions
   of one recipient at time t, each flushed and then acknowledged by a
   byte on ack (as a daemon answers only after its flush), with a save
   after about one in eight, until it is killed. */
static void decide_until_killed(int ack, int64_t t, uint32_t seed) {
  obspam_engine *e = engine();

  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (access(state, F_OK) == 0 && obspam_state_load(e, state) != OBSPAM_OK)
    _exit(3);
  if (obspam_journal_open(e, state, 0, NULL, NULL) != OBSPAM_OK)
    _exit(4);
  for (;;) {
    obspam_message m = tu_login_msg("b@example.com", NULL, 1, t);
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    if (obspam_decide(e, &m, &v) != OBSPAM_OK || v.action != OBSPAM_ACCEPT ||
        obspam_journal_flush(e) != OBSPAM_OK || write(ack, "x", 1) != 1)
      _exit(5);
    if (next_random(&seed) % 8 == 0 && obspam_state_save(e, state) != OBSPAM_OK)
      _exit(6);
  }
}

/* A process killed at any point of its decisions, flushes and saves
   (the cut, .next's stamp, the snapshot's temporary file and rename,
   the journal's rename, a restart's merge) loses no decision it
   acknowledged and counts none twice: after each kill, a restart counts
   every acknowledged decision, and at most the one in doubt (decided,
   maybe flushed, not acknowledged). The clock crosses an hour on the
   way. No file but the state, its journal and the lock is left. */
Test(journal, killed_at_random_points, .timeout = 120) {
  uint32_t seed = 20261208;
  int64_t total = 0, doubt = 0, t_end = T0 + 3595 + KILL_ROUNDS;
  int round, in_save = 0;

  for (round = 0; round < KILL_ROUNDS; round++) {
    obspam_engine *back;
    int ack[2], status;
    int64_t acked = 0, count;
    char buf[4096];
    ssize_t r;
    pid_t pid;

    cr_assert_eq(pipe(ack), 0);
    fflush(NULL);
    pid = fork();
    cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
    if (pid == 0) {
      close(ack[0]);
      decide_until_killed(ack[1], T0 + 3595 + round, next_random(&seed));
    }
    close(ack[1]);
    usleep((useconds_t)(next_random(&seed) % 30000));
    kill(pid, SIGKILL);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "round %d: the child ended by itself (status %d)", round, status);
    while ((r = read(ack[0], buf, sizeof(buf))) > 0)
      acked += r;
    close(ack[0]);
    in_save += access(next, F_OK) == 0;

    back = engine();
    if (access(state, F_OK) == 0)
      OK(obspam_state_load(back, state));
    OK(obspam_journal_open(back, state, 0, NULL, NULL));
    count = STATS(back, OBSPAM_MAILBOX, "b@example.com", t_end).count_day;
    cr_assert(count >= total + acked && count <= total + acked + 1,
              "round %d: %lld counted, %lld before and %lld acknowledged",
              round, (long long)count, (long long)total, (long long)acked);
    doubt += count - total - acked;
    total = count;
    obspam_engine_free(back);
  }
  cr_log_info("%d kills, %d of them during a save: %lld decisions "
              "acknowledged, %lld in doubt counted",
              KILL_ROUNDS, in_save, (long long)(total - doubt),
              (long long)doubt);
  cr_assert_gt(in_save, 0, "no kill came during a save");
  {
    char cmd[600];

    snprintf(cmd, sizeof(cmd),
             "test \"$(ls -A '%s' | tr '\\n' ' ')\" = "
             "'state state.journal state.lock '",
             dir);
    cr_assert_eq(system(cmd), 0, "files left beside the state file");
  }
}

/* The clock jumps across an hour, back and forth, around a save's cut:
   the records keep each decision's own time (a difference from the
   previous record's, negative when the clock went back), and a restart
   gives every counter the running engine has. */
Test(journal, clock_jumps_across_the_hour) {
  static const int64_t at[] = {3590, 3601, 3550, 7300, 3599, 3600, 10, 3599};
  obspam_engine *e = engine();
  size_t i;

  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
    traffic(e, T0 + at[i], 1);
    (void)SASL(e, "a@example.com", 1, T0 + at[i]);
    if (i == 3)
      OK(obspam_state_save(e, state));
    OK(obspam_journal_flush(e));
  }
  restarts_same(e, 16, 0, T0 + 7300);
  restarts_same(e, 16, 0, T0 + 3600 * 30);
  obspam_engine_free(e);
}

/* The owner and mode of path: the directory's owner, mode 0600. */
static void of_nobody(const char *path) {
  struct stat st;

  cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
  cr_assert_eq(st.st_uid, 65534, "%s: uid %u", path, (unsigned)st.st_uid);
  cr_assert_eq(st.st_gid, 65534, "%s: gid %u", path, (unsigned)st.st_gid);
  cr_assert_eq(st.st_mode & 07777, 0600, "%s: mode %o", path,
               (unsigned)(st.st_mode & 07777));
}

/* Made by root (a daemon before it becomes its --user, or one run by
   hand as root), the lock, the journal and the snapshot go to the owner
   of the state directory, the user the daemon becomes: a later start as
   that user (systemd's) opens them, even when no save as that user
   replaced them (a crash). */
Test(journal, files_of_the_directory_owner) {
  obspam_engine *e = engine();
  char lock[400];

  if (geteuid() != 0) {
    obspam_engine_free(e);
    cr_skip_test("needs root");
  }
  snprintf(lock, sizeof(lock), "%s.lock", state);
  cr_assert_eq(chown(dir, 65534, 65534), 0, "chown: %s", strerror(errno));
  OK(obspam_journal_open(e, state, 0, NULL, NULL));
  of_nobody(lock);
  of_nobody(journal);
  traffic(e, T0, 1);
  OK(obspam_state_save(e, state));
  of_nobody(journal);
  of_nobody(state);
  obspam_engine_free(e);
}
