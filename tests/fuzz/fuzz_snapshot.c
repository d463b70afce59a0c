/* SPDX-License-Identifier: MIT */
/* Fuzzes the snapshot loader, obspam_state_load, and what the engine does
   with whatever state it accepted.

   The first byte of an input chooses how the rest is used: even, as the
   whole file; odd, as the payload, to which the target puts a valid header
   (magic, format version 1 + (byte >> 1) % 5, length, XXH3-64 checksum),
   so that the fuzzer spends its time in the payload parsers of every
   format rather than on the checksum.

   Invariants:
   - the answer is OBSPAM_OK, ECORRUPT or EVERSION (a readable file is
     never EIO; ENOMEM would be a lie on this input size);
   - a refused file changes nothing: the statistics and a snapshot saved
     before and after are the same;
   - an accepted state can be decided on, queried, reported, flushed and
     saved without any sanitizer report, and what was saved loads again
     and saves again to the very same bytes. */
#include "fuzz.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static const fuzz_object objects[] = {FUZZ_ACME_BAKERY};
#define NOBJ (sizeof(objects) / sizeof(objects[0]))

#define T0 1700000000

static fuzz_file file;
static char save_path[128], save_path2[128];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *dir = getenv("OBSPAM_FUZZ_DIR");

  (void)argc;
  (void)argv;
  if (dir == NULL)
    dir = fuzz_dir();
  fuzz_file_open_at(&file, dir, "input");
  snprintf(save_path, sizeof(save_path), "%s/snapshot.a", dir);
  snprintf(save_path2, sizeof(save_path2), "%s/snapshot.b", dir);
  return 0;
}

static void saved(obspam_engine *e, const char *path, uint8_t **buf,
                  size_t *n) {
  FUZZ_RC(obspam_state_save(e, path), OBSPAM_OK);
  *buf = fuzz_slurp(path, n);
  FUZZ_CHECK(*buf != NULL, "cannot read back %s", path);
}

static void on_row(const obspam_report_row *row, void *ud) {
  int64_t *prev_exceeded = ud;

  FUZZ_CHECK(row->name != NULL && row->name[0] != '\0', "report row unnamed");
  FUZZ_CHECK(row->kind >= OBSPAM_SUBSCRIPTION && row->kind <= OBSPAM_SCRIPT,
             "report row of kind %d", row->kind);
  FUZZ_CHECK(row->sent >= 0 && row->refused >= 0, "negative report row");
  /* Objects over their own limit come first, most such attempts first
     (the scripts after them are ordered by what they sent). */
  if (row->kind != OBSPAM_SCRIPT)
    FUZZ_CHECK(row->exceeded > 0 && row->exceeded <= *prev_exceeded,
               "report rows out of order: %lld over the limit after %lld",
               (long long)row->exceeded, (long long)*prev_exceeded);
  FUZZ_CHECK(row->exceeded == 0 || (row->first_refused > 0 &&
                                    row->first_refused <= row->last_refused),
             "report row of %s: first attempt %lld, last %lld", row->name,
             (long long)row->first_refused, (long long)row->last_refused);
  *prev_exceeded = row->kind == OBSPAM_SCRIPT ? 0 : row->exceeded;
}

static void on_hour(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  int64_t *prev = ud;

  FUZZ_CHECK(hour % 3600 == 0 && hour > *prev, "history hour %lld after %lld",
             (long long)hour, (long long)*prev);
  FUZZ_CHECK(sent >= 0 && refused >= 0, "negative history");
  *prev = hour;
}

static void on_notice(const obspam_notice *n, void *ud) {
  (void)ud;
  FUZZ_CHECK(n->kind >= OBSPAM_SUBSCRIPTION && n->kind <= OBSPAM_MAILBOX,
             "notice of kind %d", n->kind);
  FUZZ_CHECK(n->name != NULL, "notice without a name");
  FUZZ_CHECK(n->period_end > n->period_start, "notice period is empty");
}

/* Uses a loaded state: decisions on every object at times around the
   state's own, statistics, history, a report and a flush. */
static void exercise(obspam_engine *e) {
  static const char *senders[] = {"info@acme.example", "x@acme.example",
                                  "demo@bakery.example", "y@bakery.example"};
  int64_t t;
  int i;

  FUZZ_RC(obspam_set_notify(e, on_notice, NULL), OBSPAM_OK);
  for (i = 0; i < 8; i++) {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    m.sender = senders[i % 4];
    m.recipients = (uint32_t)(i % 3 == 2 ? 4000000000u : 1u + (unsigned)i);
    m.script = i % 2 ? "/var/www/acme/index.php" : NULL;
    m.flags = i == 7 ? OBSPAM_MSG_SCRIPT : 0;
    m.uid = 1000;
    m.time = i < 4 ? 1 : T0 + i * 1800;
    FUZZ_RC(obspam_decide(e, &m, &v), OBSPAM_OK);
    FUZZ_CHECK(v.action == OBSPAM_ACCEPT || v.action == OBSPAM_REFUSE,
               "decision %d: action %d", i, v.action);
    FUZZ_CHECK(v.action != OBSPAM_ACCEPT || v.limit < 0 ||
                   v.count + (int64_t)m.recipients <= v.limit,
               "accepted over the limit: count %lld + %u > %lld",
               (long long)v.count, m.recipients, (long long)v.limit);
    FUZZ_CHECK(v.action != OBSPAM_REFUSE || v.retry_after == -1 ||
                   v.retry_after >= 1,
               "retry_after %lld", (long long)v.retry_after);
  }
  for (i = 0; i < (int)NOBJ; i++) {
    obspam_stats st = OBSPAM_STATS_INIT;
    int64_t prev = -1;

    for (t = 0; t <= 2; t++) {
      FUZZ_RC(obspam_stats_get(e, objects[i].kind, objects[i].name,
                               t == 0   ? 1
                               : t == 1 ? T0
                                        : INT64_MAX / 2,
                               &st),
              OBSPAM_OK);
      FUZZ_CHECK(st.count >= 0 && st.refused >= 0 && st.refused_total >= 0,
                 "negative statistics for %s: %lld %lld %lld", objects[i].name,
                 (long long)st.count, (long long)st.refused,
                 (long long)st.refused_total);
    }
    FUZZ_RC(obspam_history(e, objects[i].kind, objects[i].name, 0, INT64_MAX,
                           on_hour, &prev),
            OBSPAM_OK);
  }
  {
    int64_t prev_exceeded = INT64_MAX, prev = -1;
    int rc;

    FUZZ_RC(obspam_report(e, 0, INT64_MAX, on_row, &prev_exceeded), OBSPAM_OK);
    rc = obspam_history(e, OBSPAM_SCRIPT, "/var/www/acme/index.php", 0,
                        INT64_MAX, on_hour, &prev);
    FUZZ_CHECK(rc == OBSPAM_OK || rc == OBSPAM_ENOTFOUND, "script history %d",
               rc);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  obspam_engine *e, *f;
  uint8_t *before, *after, *again, *buf = NULL;
  size_t n_before, n_after, n_again, n = 0;
  int rc;

  if (size == 0)
    return 0;
  if (data[0] & 1) {
    /* A valid header around the payload. */
    n = 32 + size - 1;
    buf = malloc(n);
    memcpy(buf, "OBSPAMST\x01\0\0\0\0\0\0\0", 16);
    buf[8] = (uint8_t)(1 + (data[0] >> 1) % 5);
    fuzz_put_le(buf + 16, (uint64_t)(size - 1), 8);
    memcpy(buf + 32, data + 1, size - 1);
    fuzz_put_le(buf + 24, XXH3_64bits(buf + 32, size - 1), 8);
    fuzz_file_set(&file, buf, n);
  } else {
    fuzz_file_set(&file, data + 1, size - 1);
  }

  e = fuzz_engine(fuzz_acme_bakery_conf);
  /* Some state of the engine's own, which a refused file must keep. */
  {
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    int i;

    for (i = 0; i < 6; i++) {
      m.sender = i % 2 ? "info@acme.example" : "demo@bakery.example";
      m.time = T0 - 100 + i;
      FUZZ_RC(obspam_decide(e, &m, &v), OBSPAM_OK);
    }
  }
  saved(e, save_path, &before, &n_before);
  rc = obspam_state_load(e, file.path);
  FUZZ_CHECK(rc == OBSPAM_OK || rc == OBSPAM_ECORRUPT || rc == OBSPAM_EVERSION,
             "state_load returned %d (%s): %s", rc, obspam_strerror(rc),
             obspam_engine_errmsg(e));
  saved(e, save_path, &after, &n_after);
  if (rc != OBSPAM_OK) {
    FUZZ_CHECK(n_before == n_after && memcmp(before, after, n_before) == 0,
               "a refused snapshot changed the engine (%s)",
               obspam_engine_errmsg(e));
  } else {
    /* What was accepted saves and loads back to the same state. The
       notices not yet emitted come back in reverse order from a load
       (which does not matter: a flush sorts them), so the bytes are
       compared after two round trips. */
    f = fuzz_engine(fuzz_acme_bakery_conf);
    FUZZ_RC(obspam_state_load(f, save_path), OBSPAM_OK);
    FUZZ_RC(obspam_state_save(f, save_path2), OBSPAM_OK);
    obspam_engine_free(f);
    f = fuzz_engine(fuzz_acme_bakery_conf);
    FUZZ_RC(obspam_state_load(f, save_path2), OBSPAM_OK);
    saved(f, save_path2, &again, &n_again);
    FUZZ_CHECK(n_again == n_after && memcmp(again, after, n_after) == 0,
               "a saved snapshot does not load back to the same state");
    free(again);
    obspam_engine_free(f);
    /* After use, the engine still writes a snapshot it can read. */
    exercise(e);
    FUZZ_RC(obspam_notify_flush(e, INT64_MAX / 2), OBSPAM_OK);
    FUZZ_RC(obspam_state_save(e, save_path), OBSPAM_OK);
    f = fuzz_engine(fuzz_acme_bakery_conf);
    rc = obspam_state_load(f, save_path);
    FUZZ_CHECK(rc == OBSPAM_OK,
               "the engine cannot load its own snapshot after use: %s",
               obspam_engine_errmsg(f));
    obspam_engine_free(f);
  }
  free(before);
  free(after);
  free(buf);
  obspam_engine_free(e);
  return 0;
}
