/* SPDX-License-Identifier: MIT */
/* Fuzzes the journal's reader, obspam_journal_open, on a journal that
   follows no snapshot, and what the engine does with what it replayed.

   The first byte of an input chooses how the rest is used: even, as the
   whole file; odd, as records under a valid header of format 1 +
   (byte >> 1) % 3, each a length byte and that many bytes of payload, to
   which the target puts the record's length and checksum as that format
   frames them, so that the fuzzer spends its time in the payload decoders
   rather than on the checksums (format 3's definitions, ids, varints, and
   format 1 and 2 payloads wrapped in its records of shape 0).

   Invariants:
   - the answer is OBSPAM_OK, ECORRUPT or EVERSION (a readable file is
     never EIO; ENOMEM would be a lie on this input size);
   - a refused journal changes nothing: the statistics are those of a
     fresh engine;
   - an accepted journal can be decided on, flushed and closed, and the
     file it leaves replays to the same statistics in another engine:
     the records replayed first, and those of the decisions after them. */
#include "fuzz.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static const fuzz_object objects[] = {FUZZ_ACME_BAKERY,
                                      {OBSPAM_MAILBOX, "x@acme.example"},
                                      {OBSPAM_MAILBOX, "y@bakery.example"}};
#define NOBJ (sizeof(objects) / sizeof(objects[0]))

#define T0 1700000000

static char state[128], journal[160];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *dir = getenv("OBSPAM_FUZZ_DIR");

  (void)argc;
  (void)argv;
  if (dir == NULL)
    dir = fuzz_dir();
  snprintf(state, sizeof(state), "%s/state", dir);
  snprintf(journal, sizeof(journal), "%s/state.journal", dir);
  return 0;
}

/* The input's records under a valid header of format version: the
   file's size. */
static size_t frame(const uint8_t *in, size_t n, unsigned version,
                    uint8_t *out) {
  size_t at = 32;

  memset(out, 0, 32);
  memcpy(out, "OBSPAMJR", 8);
  out[8] = (uint8_t)version;
  while (n > 0) {
    size_t len = in[0] < n - 1 ? in[0] : n - 1;
    uint32_t sum = (uint32_t)XXH3_64bits(in + 1, len);

    if (version < 3) {
      fuzz_put_le(out + at, len, 4);
      fuzz_put_le(out + at + 4, sum, 4);
      at += 8;
    } else if (len < 0x80) {
      out[at++] = (uint8_t)len;
      fuzz_put_le(out + at, sum, 4);
      at += 4;
    } else {
      out[at++] = (uint8_t)(len | 0x80);
      out[at++] = (uint8_t)(len >> 7);
      fuzz_put_le(out + at, sum, 4);
      at += 4;
    }
    memcpy(out + at, in + 1, len);
    at += len;
    in += 1 + len;
    n -= 1 + len;
  }
  return at;
}

static void write_file(const uint8_t *p, size_t n) {
  FILE *f = fopen(journal, "wb");

  FUZZ_CHECK(f != NULL, "cannot write %s", journal);
  FUZZ_CHECK(fwrite(p, 1, n, f) == n && fclose(f) == 0, "cannot write %s",
             journal);
}

/* The statistics of every object of x and y are the same; an implicit
   mailbox that holds nothing may be in one and not the other. */
static void same_stats(obspam_engine *x, obspam_engine *y, const char *what) {
  size_t i;

  for (i = 0; i < NOBJ; i++) {
    obspam_stats a = OBSPAM_STATS_INIT, b = OBSPAM_STATS_INIT;
    int ra = obspam_stats_get(x, objects[i].kind, objects[i].name, T0, &a);
    int rb = obspam_stats_get(y, objects[i].kind, objects[i].name, T0, &b);

    if (ra != rb) {
      const obspam_stats *h = ra == OBSPAM_OK ? &a : &b;

      FUZZ_CHECK(h->count == 0 && h->refused_total == 0 && h->count_day == 0,
                 "%s: %s is in one engine only", what, objects[i].name);
      continue;
    }
    FUZZ_CHECK(a.count == b.count && a.refused == b.refused &&
                   a.refused_total == b.refused_total &&
                   a.exceeded_total == b.exceeded_total &&
                   a.count_minute == b.count_minute &&
                   a.count_day == b.count_day &&
                   a.last_refused == b.last_refused &&
                   a.last_reset == b.last_reset && a.forwarded == b.forwarded &&
                   a.list_deliveries == b.list_deliveries,
               "%s: %s: count %lld, %lld; refused %lld, %lld", what,
               objects[i].name, (long long)a.count, (long long)b.count,
               (long long)a.refused_total, (long long)b.refused_total);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t buf[32 + 8 * 65536];
  obspam_engine *e, *f, *fresh;
  int64_t replayed = -1, ignored = -1, again = -1;
  int rc, i;

  if (size == 0 || size > 65536)
    return 0;
  unlink(state);
  if (data[0] & 1)
    write_file(buf, frame(data + 1, size - 1, 1 + (data[0] >> 1) % 3u, buf));
  else
    write_file(data + 1, size - 1);

  e = fuzz_engine(fuzz_acme_bakery_conf);
  rc = obspam_journal_open(e, state, 0, &replayed, &ignored);
  FUZZ_CHECK(rc == OBSPAM_OK || rc == OBSPAM_ECORRUPT || rc == OBSPAM_EVERSION,
             "journal_open returned %d (%s): %s", rc, obspam_strerror(rc),
             obspam_engine_errmsg(e));
  if (rc != OBSPAM_OK) {
    fresh = fuzz_engine(fuzz_acme_bakery_conf);
    same_stats(e, fresh, "a refused journal");
    obspam_engine_free(fresh);
    obspam_engine_free(e);
    return 0;
  }
  /* A file that names a snapshot is not replayed, there being none. */
  FUZZ_CHECK(replayed >= 0 && ignored >= 0 && (replayed == 0 || ignored == 0),
             "replayed %lld, ignored %lld", (long long)replayed,
             (long long)ignored);
  /* Decisions after the replay go into the same file, after the records
     it kept. */
  for (i = 0; i < 6; i++) {
    static const char *const senders[] = {"info@acme.example", "x@acme.example",
                                          "demo@bakery.example",
                                          "y@bakery.example"};
    obspam_message m = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    m.sender = senders[i % 4];
    m.recipients = 1u + (unsigned)i % 3;
    m.script = i == 5 ? "/var/www/acme/index.php" : NULL;
    m.flags = i == 5 ? OBSPAM_MSG_SCRIPT : 0;
    m.uid = 1000;
    m.time = T0 + i;
    FUZZ_RC(obspam_decide(e, &m, &v), OBSPAM_OK);
  }
  FUZZ_RC(obspam_journal_close(e), OBSPAM_OK);
  f = fuzz_engine(fuzz_acme_bakery_conf);
  FUZZ_RC(obspam_journal_open(f, state, 0, &again, &ignored), OBSPAM_OK);
  FUZZ_CHECK(again == replayed + 6, "replayed %lld, then %lld",
             (long long)replayed, (long long)again);
  same_stats(e, f, "the journal replayed again");
  obspam_engine_free(f);
  obspam_engine_free(e);
  return 0;
}
