/* SPDX-License-Identifier: MIT */
/* The refusal log lines of a flood, coalesced per object (refusals.c):
   the first refusal of an object logged whole at once, then one count per
   object and interval, with the queue ID of the first refusal counted.
   The clock is the test's: every refusal and flush is given its time. */
#include "common_test.h"
#include "refusal.h"
#include "util.h"

/* The lines logged since the last call, without their prefixes, read
   from where the last call stopped (the model test logs thousands). */
static long log_offset;

static char *new_lines(void) {
  FILE *f = fopen(log_path, "r");
  char line[4096], *out;
  size_t len = 0, cap = 4096;

  cr_assert_not_null(f);
  out = malloc(cap);
  cr_assert_not_null(out);
  out[0] = '\0';
  fseek(f, log_offset, SEEK_SET);
  while (fgets(line, sizeof(line), f) != NULL) {
    char *rest = strstr(line, "]: ");
    size_t n;

    rest = rest != NULL ? rest + 3 : line;
    n = strlen(rest);
    while (len + n + 1 > cap) {
      cap *= 2;
      out = realloc(out, cap);
      cr_assert_not_null(out);
    }
    memcpy(out + len, rest, n + 1);
    len += n;
  }
  log_offset = ftell(f);
  fclose(f);
  return out;
}

static void expect_lines(const char *want) {
  char *got = new_lines();

  cr_assert_str_eq(got, want);
  free(got);
}

/* A refusal of kind and name at now_ms, with queue ID qid. */
static void refuse(int kind, const char *name, const char *qid,
                   int64_t now_ms) {
  obspam_verdict v = refused_verdict(kind, name, 1, 1, 60, 0);

  obspamd__log_refusal_at(&v, NULL, 0, qid, now_ms);
}

/* The whole line of such a refusal. */
static const char *whole(const char *kind, const char *name, const char *qid) {
  static char buf[1024];

  snprintf(buf, sizeof(buf),
           "refuse kind=%s object=%s limit=1 count=1 unit=recipients "
           "retry=60 queue_id=%s sasl=- sender=- client=- recipients=0 "
           "window=hour\n",
           kind, name, qid);
  return buf;
}

static void setup(void) {
  log_in_test_dir();
  log_offset = 0;
  obspamd_refusal_log_interval(10);
}

TestSuite(coalesce, .init = setup);

Test(coalesce, first_at_once_then_one_count_per_interval) {
  refuse(OBSPAM_MAILBOX, "info@example.com", "4FgH2x1Kz9", 1000);
  expect_lines(whole("mailbox", "info@example.com", "4FgH2x1Kz9"));
  refuse(OBSPAM_MAILBOX, "info@example.com", "5AbC", 2000);
  refuse(OBSPAM_MAILBOX, "info@example.com", "6DeF", 5000);
  refuse(OBSPAM_MAILBOX, "info@example.com", NULL, 10999);
  obspamd__refusals_flush(10999, 0);
  expect_lines("");
  obspamd__refusals_flush(11000, 0);
  expect_lines("refuse kind=mailbox object=info@example.com more=3 "
               "seconds=10 first_queue_id=5AbC\n");
  /* The next interval began with that line: a flush a little late says
     its whole seconds. */
  refuse(OBSPAM_MAILBOX, "info@example.com", "7GhI", 12000);
  obspamd__refusals_flush(20999, 0);
  expect_lines("");
  obspamd__refusals_flush(21900, 0);
  expect_lines("refuse kind=mailbox object=info@example.com more=1 "
               "seconds=10 first_queue_id=7GhI\n");
  /* A quiet interval ends the episode silently; the next refusal is a
     first again. */
  obspamd__refusals_flush(31900, 0);
  expect_lines("");
  refuse(OBSPAM_MAILBOX, "info@example.com", "8JkL", 32000);
  expect_lines(whole("mailbox", "info@example.com", "8JkL"));
}

Test(coalesce, no_queue_id_and_names_cleaned) {
  refuse(OBSPAM_SUBSCRIPTION, "bad name\x01", NULL, 0);
  refuse(OBSPAM_SUBSCRIPTION, "bad name\x01", "", 1);
  refuse(OBSPAM_SUBSCRIPTION, "bad name\x01", "9MnO", 2);
  obspamd__refusals_flush(10000, 0);
  expect_lines("refuse kind=subscription object=bad?name? limit=1 count=1 "
               "unit=recipients retry=60 queue_id=- sasl=- sender=- "
               "client=- recipients=0 window=hour\n"
               "refuse kind=subscription object=bad?name? more=2 seconds=10 "
               "first_queue_id=-\n");
}

/* The kind is part of the object: a domain and a subscription of the same
   name are two objects. */
Test(coalesce, kinds_apart) {
  refuse(OBSPAM_DOMAIN, "example.com", "A1", 0);
  refuse(OBSPAM_SUBSCRIPTION, "example.com", "A2", 0);
  refuse(OBSPAM_DOMAIN, "example.com", "A3", 0);
  refuse(OBSPAM_DOMAIN, "EXAMPLE.com", "A4", 0);
  expect_lines("refuse kind=domain object=example.com limit=1 count=1 "
               "unit=recipients retry=60 queue_id=A1 sasl=- sender=- "
               "client=- recipients=0 window=hour\n"
               "refuse kind=subscription object=example.com limit=1 "
               "count=1 unit=recipients retry=60 queue_id=A2 sasl=- "
               "sender=- client=- recipients=0 window=hour\n"
               "refuse kind=domain object=EXAMPLE.com limit=1 count=1 "
               "unit=recipients retry=60 queue_id=A4 sasl=- sender=- "
               "client=- recipients=0 window=hour\n");
}

/* Names of every length up to a few words, and up to the longest an
   object holds, are told apart by their last byte or their first, and
   found again whatever the field holds past their NUL. */
Test(coalesce, names_of_every_length_apart) {
  static const size_t lengths[] = {
      1,  2,  3,  4,  5,  6,  7,  8,  9,   10,  11,  12,  13,  14,  15, 16,
      17, 23, 24, 25, 31, 32, 33, 40, 318, 319, 320, 321, 325, 326, 327};
  size_t i, k;

  for (i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
    static char texts[3][sizeof(((obspam_verdict *)0)->object)];
    char *name[3] = {texts[0], texts[1], texts[2]};
    const size_t n = lengths[i];
    obspam_verdict v;

    for (k = 0; k < n; k++)
      name[0][k] = (char)('a' + (n + k) % 26);
    name[0][n] = '\0';
    memcpy(name[1], name[0], n + 1);
    name[1][n - 1] = '#'; /* the last byte changed */
    memcpy(name[2], name[0], n + 1);
    name[2][0] = '%'; /* the first */
    for (k = 0; k < 3; k++) {
      refuse(OBSPAM_DOMAIN, name[k], "Q", 1000);
      expect_lines(whole("domain", name[k], "Q"));
    }
    /* The first again, with bytes after its NUL: counted, not logged. */
    v = refused_verdict(OBSPAM_DOMAIN, name[0], 1, 1, 60, 0);
    memset(v.object + n + 1, 'x', sizeof(v.object) - n - 1);
    obspamd__log_refusal_at(&v, NULL, 0, "R", 2000);
    expect_lines("");
  }
}

Test(coalesce, interval_zero_logs_every_refusal) {
  obspamd_refusal_log_interval(0);
  refuse(OBSPAM_MAILBOX, "info@example.com", "B1", 0);
  refuse(OBSPAM_MAILBOX, "info@example.com", "B2", 1);
  obspamd__refusals_flush(20000, 0);
  refuse(OBSPAM_MAILBOX, "info@example.com", "B3", 20001);
  {
    char want[3072];

    snprintf(want, sizeof(want), "%s",
             whole("mailbox", "info@example.com", "B1"));
    strcat(want, whole("mailbox", "info@example.com", "B2"));
    strcat(want, whole("mailbox", "info@example.com", "B3"));
    expect_lines(want);
  }
}

/* A daemon that stops logs what it counted: a part of an interval is
   said in seconds rounded up, an interval over in whole seconds. */
Test(coalesce, stop_logs_what_was_counted) {
  refuse(OBSPAM_MAILBOX, "a@example.com", "C1", 1000);
  refuse(OBSPAM_MAILBOX, "a@example.com", "C2", 1200);
  refuse(OBSPAM_MAILBOX, "a@example.com", "C3", 1300);
  refuse(OBSPAM_MAILBOX, "b@example.com", "C4", 1000);
  refuse(OBSPAM_MAILBOX, "c@example.com", "C5", 500);
  refuse(OBSPAM_MAILBOX, "c@example.com", "C6", 600);
  new_lines();
  obspamd__refusals_flush(3500, 1);
  obspamd__refusals_flush(10500, 1);
  {
    char *got = new_lines();

    /* In the order of the table's slots: either. */
    cr_assert(strcmp(got, "refuse kind=mailbox object=a@example.com more=2 "
                          "seconds=3 first_queue_id=C2\n"
                          "refuse kind=mailbox object=c@example.com more=1 "
                          "seconds=3 first_queue_id=C6\n") == 0 ||
                  strcmp(got, "refuse kind=mailbox object=c@example.com "
                              "more=1 seconds=3 first_queue_id=C6\n"
                              "refuse kind=mailbox object=a@example.com "
                              "more=2 seconds=3 first_queue_id=C2\n") == 0,
              "%s", got);
    free(got);
  }
  /* Forgotten: the next refusal is a first. */
  refuse(OBSPAM_MAILBOX, "b@example.com", "C7", 11000);
  expect_lines(whole("mailbox", "b@example.com", "C7"));
  refuse(OBSPAM_MAILBOX, "b@example.com", "C8", 11000);
  obspamd__refusals_flush(30000, 1);
  /* Its interval ended at 21000 with one refusal, the next one had none:
     a daemon that stops late logs it as the flush would have. */
  expect_lines("refuse kind=mailbox object=b@example.com more=1 seconds=10 "
               "first_queue_id=C8\n");
}

/* Bad requests are coalesced per client as refusals are per object: the
   first of an episode is the caller's to log whole (0), the others are
   counted (1) into one line per client and interval. */
Test(coalesce, bad_requests_per_client) {
  cr_assert_eq(obspamd_bad_request_counted("127.0.0.1", 1000), 0);
  cr_assert_eq(obspamd_bad_request_counted("127.0.0.1", 1001), 1);
  cr_assert_eq(obspamd_bad_request_counted("uid 110", 1500), 0);
  cr_assert_eq(obspamd_bad_request_counted("127.0.0.1", 10999), 1);
  cr_assert_eq(obspamd_bad_request_counted("uid 110", 2000), 1);
  cr_assert_eq(obspamd_bad_request_counted("127.0.0.2", 2000), 0);
  /* A refused object of the same name is another thing. */
  refuse(OBSPAM_DOMAIN, "127.0.0.1", "E1", 2000);
  expect_lines(whole("domain", "127.0.0.1", "E1"));
  obspamd__refusals_flush(11000, 0);
  expect_lines("warning: 2 more bad requests from 127.0.0.1 in the last "
               "10 s\n");
  obspamd__refusals_flush(11500, 0);
  expect_lines("warning: 1 more bad request from uid 110 in the last 10 s\n");
  /* A quiet interval ends the episode: the next one is a first again. */
  obspamd__refusals_flush(21000, 0);
  expect_lines("");
  cr_assert_eq(obspamd_bad_request_counted("127.0.0.1", 21001), 0);
  cr_assert_eq(obspamd_bad_request_counted("127.0.0.1", 22000), 1);
  obspamd__refusals_flush(25000, 1);
  expect_lines("warning: 1 more bad request from 127.0.0.1 in the last 4 s\n");
  /* --refusal-log-interval 0: each one whole. */
  obspamd_refusal_log_interval(0);
  cr_assert_eq(obspamd_bad_request_counted("127.0.0.1", 30000), 0);
  cr_assert_eq(obspamd_bad_request_counted("127.0.0.1", 30001), 0);
}

/* The clients of bad requests have a table of their own: 3072 of them at
   once do not crowd the refused objects out of theirs; past them, the
   other clients are counted together. */
Test(coalesce, bad_requests_past_their_table) {
  char name[64];
  int i;

  for (i = 0; i < 3072; i++) {
    snprintf(name, sizeof(name), "127.0.%d.%d", i / 256, i % 256);
    cr_assert_eq(obspamd_bad_request_counted(name, 1000), 0);
  }
  refuse(OBSPAM_MAILBOX, "x@example.com", "F1", 1000);
  refuse(OBSPAM_MAILBOX, "x@example.com", "F2", 1001);
  expect_lines(whole("mailbox", "x@example.com", "F1"));
  cr_assert_eq(obspamd_bad_request_counted("10.0.0.1", 1000), 0);
  cr_assert_eq(obspamd_bad_request_counted("10.0.0.2", 1001), 1);
  cr_assert_eq(obspamd_bad_request_counted("10.0.0.1", 1002), 1);
  cr_assert_eq(obspamd_bad_request_counted("127.0.0.7", 1003), 1);
  obspamd__refusals_flush(11000, 0);
  {
    char *got = new_lines();

    cr_assert_str_eq(
        got, "refuse kind=mailbox object=x@example.com more=1 seconds=10 "
             "first_queue_id=F2\n"
             "warning: 1 more bad request from 127.0.0.7 in the last 10 s\n"
             "warning: 2 more bad requests from other clients in the last "
             "10 s\n");
    free(got);
  }
}

/* Past 3072 objects at once, the refusals of others are counted together,
   the first of each interval logged whole. */
Test(coalesce, objects_past_the_table) {
  char name[64];
  int i;

  for (i = 0; i < 3072; i++) {
    snprintf(name, sizeof(name), "m%d@example.com", i);
    refuse(OBSPAM_MAILBOX, name, "D0", 1000);
  }
  free(new_lines());
  refuse(OBSPAM_MAILBOX, "x@example.com", "D1", 1000);
  expect_lines(whole("mailbox", "x@example.com", "D1"));
  refuse(OBSPAM_MAILBOX, "y@example.com", "D2", 1001);
  refuse(OBSPAM_MAILBOX, "x@example.com", "D3", 1002);
  refuse(OBSPAM_MAILBOX, "m7@example.com", "D4", 1003); /* in the table */
  expect_lines("");
  obspamd__refusals_flush(11000, 0);
  {
    char *got = new_lines();

    cr_assert(strstr(got, "refuse kind=- object=- more=2 seconds=10 "
                          "first_queue_id=D2\n") != NULL,
              "%s", got);
    cr_assert(strstr(got, "refuse kind=mailbox object=m7@example.com more=1 "
                          "seconds=10 first_queue_id=D4\n") != NULL,
              "%s", got);
    cr_assert_eq(strlen(got),
                 strlen("refuse kind=- object=- more=2 "
                        "seconds=10 first_queue_id=D2\n") +
                     strlen("refuse kind=mailbox "
                            "object=m7@example.com more=1 "
                            "seconds=10 first_queue_id=D4\n"),
                 "%s", got);
    free(got);
  }
  /* The quiet ones left: room again. */
  refuse(OBSPAM_MAILBOX, "y@example.com", "D5", 11001);
  refuse(OBSPAM_MAILBOX, "y@example.com", "D6", 11002);
  expect_lines(whole("mailbox", "y@example.com", "D5"));
}

/* ---- against a model ----------------------------------------------------- */

#define NAMES 3600
#define TRACKED 3072

typedef struct model_entry {
  int in; /* in the table */
  int64_t since;
  uint64_t more;
  char qid[16];
} model_entry;

static model_entry model[NAMES];
static int model_n;
static model_entry untracked_model;
static int untracked_active;

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int kind_of(int k) {
  return k % 3 == 0 ? OBSPAM_DOMAIN : OBSPAM_MAILBOX;
}

static void name_of(int k, char *buf, size_t size) {
  snprintf(buf, size, k % 3 == 0 ? "d%d.example" : "m%d@example.com", k);
}

static int cmp_lines(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of text, sorted (a flush logs in the order of the table's
   slots), into out; text is cut into pieces. */
static void sort_lines(char *text, char *out, size_t size) {
  static char *lines[8192];
  char *p;
  size_t n = 0, i, len = 0;

  for (p = strtok(text, "\n"); p != NULL; p = strtok(NULL, "\n")) {
    cr_assert_lt(n, sizeof(lines) / sizeof(lines[0]));
    lines[n++] = p;
  }
  qsort(lines, n, sizeof(lines[0]), cmp_lines);
  for (i = 0; i < n; i++) {
    size_t l = strlen(lines[i]);

    cr_assert_lt(len + l + 2, size);
    memcpy(out + len, lines[i], l);
    len += l;
    out[len++] = '\n';
  }
  out[len] = '\0';
}

static void summary_of(const char *kind, const char *name, uint64_t more,
                       int64_t secs, const char *qid, char *buf, size_t size) {
  size_t n = strlen(buf);

  snprintf(buf + n, size - n,
           "refuse kind=%s object=%s more=%llu seconds=%lld "
           "first_queue_id=%s\n",
           kind, name, (unsigned long long)more, (long long)secs,
           qid[0] ? qid : "-");
}

/* The model's end of e's interval (refusals.c, roll): 0 when the
   episode goes on, -1 when it is over. */
static int model_roll(model_entry *e, const char *kind, const char *name,
                      int64_t now, char *want, size_t size) {
  if (now - e->since < 10000)
    return 0;
  if (e->more == 0)
    return -1;
  summary_of(kind, name, e->more, 10, e->qid, want, size);
  e->since += 10000;
  e->more = 0;
  e->qid[0] = '\0';
  return now - e->since < 10000 ? 0 : -1;
}

static void model_count(model_entry *e, const char *qid) {
  if (e->more++ == 0)
    snprintf(e->qid, sizeof(e->qid), "%s", qid);
}

static void model_open(model_entry *e, int64_t now) {
  e->since = now;
  e->more = 0;
  e->qid[0] = '\0';
}

/* Random refusals of 3,600 objects, some busy, most seldom, in bursts and
   slow times, and flushes now and then: the lines are the model's, the
   table's deletions (which move entries back in their probe runs) never
   lose an object, and it fills up and empties again. */
Test(coalesce, model, .timeout = 120) {
  static char want[1 << 20], got_sorted[1 << 20], want_sorted[1 << 20];
  int64_t now = 0;
  int op, full_seen = 0;

  for (op = 0; op <= 60000; op++) {
    uint64_t r = next_rand();
    char name[64], qid[16];

    /* Bursts that fill the table, then slow times that empty it. */
    now += (int64_t)((op / 15000) % 2 == 0 ? r % 2 : r % 1500);
    want[0] = '\0';
    if (op == 60000) {
      int k;

      /* The end: every interval running is logged, in seconds rounded
         up. */
      obspamd__refusals_flush(now, 1);
      for (k = 0; k < NAMES; k++) {
        model_entry *e = &model[k];

        if (!e->in)
          continue;
        name_of(k, name, sizeof(name));
        model_roll(e, obspamd_kind_name(kind_of(k)), name, now, want,
                   sizeof(want));
        if (e->more > 0)
          summary_of(obspamd_kind_name(kind_of(k)), name, e->more,
                     now - e->since > 1000 ? (now - e->since + 999) / 1000 : 1,
                     e->qid, want, sizeof(want));
      }
      if (untracked_active) {
        model_roll(&untracked_model, "-", "-", now, want, sizeof(want));
        if (untracked_model.more > 0)
          summary_of("-", "-", untracked_model.more,
                     now - untracked_model.since > 1000
                         ? (now - untracked_model.since + 999) / 1000
                         : 1,
                     untracked_model.qid, want, sizeof(want));
      }
    } else if (r % 13 == 0) {
      int k;

      /* The flush of a tick. */
      obspamd__refusals_flush(now, 0);
      for (k = 0; k < NAMES; k++) {
        model_entry *e = &model[k];

        name_of(k, name, sizeof(name));
        if (e->in && model_roll(e, obspamd_kind_name(kind_of(k)), name, now,
                                want, sizeof(want)) != 0) {
          e->in = 0;
          model_n--;
        }
      }
      if (untracked_active &&
          model_roll(&untracked_model, "-", "-", now, want, sizeof(want)) != 0)
        untracked_active = 0;
    } else {
      /* Half of the refusals go to 40 busy objects. */
      int k = (int)((r >> 8) % 2 == 0 ? (r >> 16) % 40 : (r >> 16) % NAMES);
      model_entry *e = &model[k];
      const char *kind = obspamd_kind_name(kind_of(k));

      name_of(k, name, sizeof(name));
      snprintf(qid, sizeof(qid), "Q%d", op);
      refuse(kind_of(k), name, qid, now);
      if (e->in) {
        if (model_roll(e, kind, name, now, want, sizeof(want)) == 0) {
          model_count(e, qid);
        } else {
          model_open(e, now);
          strcat(want, whole(kind, name, qid));
        }
      } else if (model_n >= TRACKED) {
        full_seen = 1;
        if (untracked_active && model_roll(&untracked_model, "-", "-", now,
                                           want, sizeof(want)) == 0) {
          model_count(&untracked_model, qid);
        } else {
          untracked_active = 1;
          model_open(&untracked_model, now);
          strcat(want, whole(kind, name, qid));
        }
      } else {
        e->in = 1;
        model_open(e, now);
        model_n++;
        strcat(want, whole(kind, name, qid));
      }
    }
    {
      char *got = new_lines();

      sort_lines(got, got_sorted, sizeof(got_sorted));
      sort_lines(want, want_sorted, sizeof(want_sorted));
      cr_assert_str_eq(got_sorted, want_sorted, "operation %d at %lld ms", op,
                       (long long)now);
      free(got);
    }
  }
  cr_assert(full_seen, "the table never filled up");
}

/* ---- the text of a refusal, kept with its object ------------------------- */

/* obspamd_refusal gives the text and code obspamd_refusal_text_msg gives,
   whatever changes from one refusal of an object to the next (the text
   kept with the object is used only while its words are the same): each
   step changes one thing of an object's last refusal, or nothing. And it
   logs as obspamd_log_refusal does. */
Test(coalesce, text_kept_with_the_object) {
  static const int kinds[] = {OBSPAM_MAILBOX, OBSPAM_DOMAIN,
                              OBSPAM_SUBSCRIPTION};
  /* Waits said in seconds, minutes, hours; windows and none (0: the
     recipients cap, or forbidden scripts). */
  static const int64_t waits[] = {-1,  1,   35,   59,   60,   61,
                                  119, 120, 3599, 7201, 86399};
  static const int64_t windows[] = {OBSPAM_WINDOW_MINUTE, OBSPAM_WINDOW_HOUR,
                                    OBSPAM_WINDOW_DAY, 0};
  struct last {
    obspam_verdict v;
    obspam_message m;
    int reject, unit;
  } last[9];
  char got[OBSPAMD_REFUSAL_MAX + 1], want[OBSPAMD_REFUSAL_MAX + 1];
  int i;

  for (i = 0; i < 9; i++) {
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    obspam_message m = OBSPAM_MESSAGE_INIT;

    v.action = OBSPAM_REFUSE;
    v.kind = kinds[i % 3];
    snprintf(v.object, sizeof(v.object), "o%d@example.com", i / 3);
    v.limit = 1;
    v.count = 1;
    v.retry_after = -1;
    v.window = OBSPAM_WINDOW_HOUR;
    last[i].v = v;
    last[i].m = m;
    last[i].reject = last[i].unit = 0;
  }
  for (i = 0; i < 30000; i++) {
    uint64_t r = next_rand();
    struct last *l = &last[(r >> 8) % 9];
    int code = 0, want_code = 0;
    size_t size = r >> 12 & 1 ? sizeof(got) : 1 + (r >> 13) % 60, n;

    switch ((r >> 20) % 9) {
    case 0:
      l->v.limit = (int64_t)((r >> 24) % 4) - 1;
      break;
    case 1:
      l->v.count = (int64_t)((r >> 24) % 4);
      break;
    case 2:
      l->v.retry_after = waits[(r >> 24) % 11];
      break;
    case 3:
      l->v.window = windows[(r >> 24) % 4];
      break;
    case 4:
      l->m.flags ^= OBSPAM_MSG_SCRIPT;
      break;
    case 5:
      l->reject ^= 1;
      break;
    case 6:
      l->unit ^= 1;
      break;
    case 7:
      l->m.recipients = (uint32_t)((r >> 24) % 4);
      break;
    default: /* the same words again */
      break;
    }
    n = obspamd__refusal_at(&l->v, &l->m, l->reject, l->unit, "Q", &code, got,
                            size, (int64_t)i);
    obspamd_refusal_text_msg(&l->v, &l->m, l->reject, l->unit, &want_code, want,
                             size);
    cr_assert_str_eq(got, want, "refusal %d", i);
    cr_assert_eq(n, strlen(want), "refusal %d", i);
    cr_assert_eq(code, want_code, "refusal %d", i);
  }
  /* Nine objects, each logged whole once: the rest counted (30 seconds
     of refusals, 1 ms apart, in intervals of 10 s). */
  {
    char *log = new_lines();

    cr_assert_eq(count_in(log, " limit="), 9, "%s", log);
    free(log);
  }
}

/* The refusals a thread answers under one hold of the table's lock
   (obspamd_refusals_hold, as the policy server's loop does a batch at a
   time) say what obspamd_refusal says and are counted with its refusals
   of the same object: the first logged whole, the others counted. */
Test(coalesce, held_refusals_as_the_others) {
  obspam_verdict v =
      refused_verdict(OBSPAM_MAILBOX, "held@example.com", 1, 1, 60, 0);
  obspam_message m = OBSPAM_MESSAGE_INIT;
  static const char summary[] =
      "refuse kind=mailbox object=held@example.com more=3 seconds=";
  char got[OBSPAMD_REFUSAL_MAX + 1], want[OBSPAMD_REFUSAL_MAX + 1];
  int i, code = 0, want_code = 0;
  size_t n;
  char *log;

  obspamd_refusal_text_msg(&v, &m, 0, 0, &want_code, want, sizeof(want));
  obspamd_refusals_hold();
  for (i = 0; i < 3; i++) {
    code = 0;
    n = obspamd_refusal_held(&v, &m, 0, 0, "Q1", &code, got, sizeof(got),
                             i == 0 ? -1 : obspamd_now_ms());
    cr_assert_str_eq(got, want, "refusal %d", i);
    cr_assert_eq(n, strlen(want), "refusal %d", i);
    cr_assert_eq(code, want_code, "refusal %d", i);
  }
  obspamd_refusals_release();
  n = obspamd_refusal(&v, &m, 0, 0, "Q2", &code, got, sizeof(got));
  cr_assert_str_eq(got, want);
  cr_assert_eq(n, strlen(want));
  log = new_lines();
  cr_assert_eq(count_in(log, "object=held@example.com limit=1"), 1, "%s", log);
  cr_assert_eq(count_in(log, "queue_id=Q1 "), 1, "%s", log);
  free(log);
  obspamd__refusals_flush(obspamd_now_ms(), 1);
  log = new_lines();
  cr_assert(strncmp(log, summary, strlen(summary)) == 0, "%s", log);
  cr_assert_not_null(strstr(log, " first_queue_id=Q1\n"), "%s", log);
  cr_assert_eq(count_in(log, "\n"), 1, "%s", log);
  free(log);
}

/* obspamd_same_bytes, which finds a name's entry, tells what memcmp
   tells: names of every length up to 40 bytes and past a verdict's
   longest, the same or with one byte changed at each place (to one
   that differs in a single bit, or in all of them). */
Test(coalesce, same_bytes_as_memcmp) {
  static char a[sizeof(((obspam_verdict *)0)->object) + 8],
      b[sizeof(((obspam_verdict *)0)->object) + 8];
  size_t n, k, at;

  for (n = 0; n < sizeof(a); n = n < 40 ? n + 1 : n + 71) {
    for (k = 0; k < n; k++)
      a[k] = (char)('a' + (n + k) % 26);
    memcpy(b, a, n);
    cr_assert(obspamd_same_bytes(a, b, n), "length %zu", n);
    for (at = 0; at < n; at++) {
      for (k = 0; k < 2; k++) {
        b[at] = (char)(a[at] ^ (k == 0 ? 0x01 : 0xff));
        cr_assert_eq(obspamd_same_bytes(a, b, n), memcmp(a, b, n) == 0,
                     "length %zu, byte %zu", n, at);
        cr_assert_not(obspamd_same_bytes(a, b, n), "length %zu, byte %zu", n,
                      at);
      }
      b[at] = a[at];
    }
  }
}
