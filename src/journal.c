/* SPDX-License-Identifier: MIT */
/* The journal: the decisions made since the last snapshot, so that a
   process killed between two saves loses no count.

   File layout (STATE.journal, and STATE.journal.next during a save), all
   fixed-width integers little-endian:

     offset  size  field
          0     8  magic "OBSPAMJR"
          8     4  format version (3; 1.3 to 1.4.2 wrote 2, and 1.3 before
                   the minute and day windows 1)
         12     4  reserved, 0
         16     8  payload length of the snapshot the records follow
         24     8  its XXH3-64 checksum (both 0: no snapshot; length
                   2^64 - 1: a save that has not taken its counters yet)
         32     -  records

   Format 3. Numbers marked v are varints: seven bits a byte, low bits
   first, the high bit set on every byte but the last. A record is v its
   payload's length, u32 the low 32 bits of the payload's XXH3-64, then
   the payload:

     u8 flags: 1 a probe; 2 the time is absolute (else the difference
       from the previous record's, zigzag-coded: 2d, or -2d - 1 when
       negative); 4 a reset of its one object (obspam_reset: amount 1,
       meaning nothing); 8 a script's uid follows; 16 a forward; 32 a
       mailing-list delivery; 64 an exempt mailing-list delivery, which
       charged nothing and is counted on its objects (store.h listed),
       with 32 and no refusal; 128 the retention and the notification
       period follow (else the previous record's hold);
     u8 shape: bits 0-1 the count of objects n (1 to 3, top first, no
       two of the same level, as in every format; 0: the rest is the
       payload of a record of format 1 or 2, and flags is 0),
       bits 2-3 the object named by a refusal + 1 (0: accepted), bits 4-6
       bit i set when object i went over its own limit, bit 7 a script
       path follows;
     v time, v amount (recipients or 1); with flag 128, v retention hours
     and v notification period;
     for each object: v id << 3 | 4 when a definition | window + 1 (0
       minute, 1 hour, 2 day, -1 the recipients cap or forbidden
       scripts); with a definition, u8 kind, v name length and the name;
       then, when it went over its own limit, v the limit + 1 (0:
       unlimited);
     with shape bit 7, v the path's length and the path; with flag 8, v
     the uid of the script's message.

   The limit and window are those the object went over (store.h,
   over_window); an object that did not has the hour's window and no
   limit (format 2 gave its hourly limit), which a replay does not read.

   Names are defined once. The first record that names an object in a
   stretch of records defines it (an id, its kind and its name); later
   records give the id alone. A reader keeps the definitions of a file in
   order, a later definition of an id overriding an earlier one, and
   stops at a record that gives an id it holds no definition for, as at a
   damaged one. Time and retention are carried the same way: the first
   record of a stretch gives them whole.

   A stretch is a generation of the writer: it forgets every definition,
   the time and the retention, and counts its ids from 0 again. Each
   object keeps the mark of its last definition (obspam__obj,
   journal_mark: the generation's base plus its id); defs[] holds the
   object each id of the generation was given to, so that neither an
   object of an earlier generation or journal nor a new one at a freed
   object's address passes for defined. A generation begins wherever a
   record could be read without the records written before it in the
   generation: a new journal (a fresh file, or one a replay kept, whose
   records end with another generation's); the cut, whose records go to
   .next, a file of their own; a failed save's copy-back of .next after
   the journal's records (and settle's, its retry), which puts another
   generation's definitions before the waiting records; and records
   dropped while the disk took nothing, which may have held
   definitions. A replay into a fresh journal copies whole files' records
   (the journal's, then .next's), each file beginning with a generation,
   so each copied stretch defines before it refers.

   Format 2 (and 1) records are u32 payload length, u32 the low 32 bits
   of the payload's XXH3-64, then:

     i64 time, i64 amount, i64 retention hours, i64 notification period;
     u8 flags (as format 3's, but 2: each object carries a window, and
     none of 128); i8 the object named by a refusal (-1: accepted); u8
     count of objects (1 to 3, top first); u8 bit i set when object i
     went over its own limit; then for each object: i64 a limit, with flag
     2 an i8 window, u8 kind, u16 name length, name; then u16 script path
     length (0: none) and the path; with flag 8, the i64 uid of the
     script's message.

   Format 2 writes every record with flag 2. Format 1's records have no
   window: they went over the hourly limit, and replay as such; they may
   follow format 2's header, as a replay copies the records it keeps
   into a fresh journal. A replay that copies records of format 1 or 2
   into a format 3 journal wraps each payload in a record of format 3 of
   shape 0.

   A record is what the store applied, not the message: replayed, it is
   applied again as it was decided (store.h, charge->replay), whatever the
   limits are now.

   The cut. A save copies the counters with the store's lock held; under
   that same lock every charge records itself (store_mem.c), so each
   charge is either in the snapshot or recorded after the cut, never both.
   At the cut the records waiting in memory are written to STATE.journal,
   and later ones go to STATE.journal.next, which the save prepared with a
   placeholder snapshot identity. Before the snapshot is renamed into
   place, .next is stamped with its identity; after, .next is renamed over
   STATE.journal. A crash anywhere in between leaves files that say which
   records to replay: the journal whose identity is the state file's, and
   after it .next when .next's identity is not (its snapshot never landed).
   A journal whose identity is another snapshot's is not replayed.

   A restart that must merge the two files (a save killed after its cut)
   writes STATE.journal.new, renames it over .next (its identity is the
   state file's, so it is then replayed alone) and .next over the
   journal: until the merged file is whole, both files stay as they were.

   STATE.lock is never replaced: the process whose journal is open holds
   a record lock on it (lock_state), so that a second process given the
   same state file is refused rather than writing over the first one's
   records. Every file the journal makes is made new (O_EXCL, after an
   unlink of the name), never opened where something else may lie. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "file.h"
#include "hash.h"
#include "index.h"
#include "journal.h"
#include "names.h"

#define MAGIC "OBSPAMJR"
#define VERSION 3u
#define FLAG_PROBE 1
#define FLAG_WINDOWS 2  /* formats 1 and 2 */
#define FLAG_ABSOLUTE 2 /* format 3 */
#define FLAG_RESET 4
#define FLAG_UID 8
#define FLAG_FORWARD 16
#define FLAG_LIST 32
#define FLAG_LISTED 64
#define FLAG_SETTINGS 128 /* format 3 */
#define SHAPE_SCRIPT 128
#define DEFINES 4 /* an object's id is a definition */
#define HEADER 32
#define BUF_CAP (256 * 1024)
#define RECORD_MAX 4096
#define FRAME_MAX 6 /* a record's length (at most two bytes) and checksum */
#define PENDING UINT64_MAX /* the identity of a snapshot not taken yet */
#define DEFS_MIN 1024      /* ids a generation holds without growing defs */

struct obspam__journal {
  pthread_mutex_t lock;      /* everything below */
  pthread_mutex_t save_lock; /* one save of the state file at a time */
  unsigned flags;
  char *state, *path, *next; /* STATE, STATE.journal, STATE.journal.next */
  char *fresh;               /* STATE.journal.new, written by a restart */
  int lock_fd;               /* STATE.lock, locked while the journal is open */
  int fd;                    /* where flushes write: path's, or next's */
  uint64_t size;             /* bytes of fd's file that hold whole records */
  int next_fd;               /* prepared for the cut, else -1 */
  int old_fd;                /* path's, from the cut until saved, else -1 */
  uint64_t old_size;
  /* After a failed save or rename: fd is next's. 1: path holds the
     records before it (a snapshot that never landed); 2: next follows
     the state file and path is stale. The next save first sets it right. */
  int unsettled;
  int cut_failed; /* errno of a cut that could not write; 0 */
  uint64_t lost;  /* records dropped since the last flush that wrote */
  /* The generation (see the top): ids base .. base + nids - 1 are
     given, id i to the object at defs[i] (room for cap), and ids below
     room can be, with marks that do not wrap; the previous record's
     time, retention and period, when timed. */
  uint32_t base, nids, cap, room;
  uintptr_t *defs;
  int timed;
  int64_t t, retention, period;
  size_t len;    /* bytes waiting in buf */
  uint32_t nbuf; /* records waiting in buf */
  uint8_t buf[BUF_CAP];
  uint8_t aside[RECORD_MAX]; /* a record made near buf's end */
};

/* ---- encoding ------------------------------------------------------------ */

static uint8_t *put(uint8_t *p, uint64_t v, int bytes) {
  int i;

  for (i = 0; i < bytes; i++)
    p[i] = (uint8_t)(v >> (8 * i));
  return p + bytes;
}

static uint64_t get(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  int i;

  for (i = 0; i < bytes; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void header(uint8_t *h, uint64_t length, uint64_t checksum) {
  memcpy(h, MAGIC, 8);
  put(h + 8, VERSION, 4);
  put(h + 12, 0, 4);
  put(h + 16, length, 8);
  put(h + 24, checksum, 8);
}

/* A u32 store for encode, which runs for every charge under the store's
   lock: on a little-endian host one store, where put's loop is one per
   byte. */
static inline void put32(uint8_t *p, uint32_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(p, &v, sizeof(v));
#else
  put(p, v, 4);
#endif
}

/* v as a varint at p; the byte after it. */
static uint8_t *put_var_long(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

/* The same, with the one- and two-byte forms that encode writes for
   nearly every number inline. */
static inline uint8_t *put_var(uint8_t *p, uint64_t v) {
  if (v < 0x80) {
    *p = (uint8_t)v;
    return p + 1;
  }
  if (v < 0x4000) {
    p[0] = (uint8_t)(v | 0x80);
    p[1] = (uint8_t)(v >> 7);
    return p + 2;
  }
  return put_var_long(p, v);
}

/* The varint at *q, before stop, into *v; *q moves past it. 0 when it
   runs past stop or past 64 bits. */
static int get_var(const uint8_t **q, const uint8_t *stop, uint64_t *v) {
  const uint8_t *p = *q;
  uint64_t x = 0;
  int shift;

  for (shift = 0; shift < 64 && p < stop; shift += 7) {
    uint8_t b = *p++;

    if (shift == 63 && b > 1)
      return 0;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (b < 0x80) {
      *q = p;
      *v = x;
      return 1;
    }
  }
  return 0;
}

/* Signed differences as varints: small ones of either sign are short. */
static inline uint64_t zigzag(uint64_t d) { return (d << 1) ^ (0 - (d >> 63)); }

static inline uint64_t unzigzag(uint64_t z) { return (z >> 1) ^ (0 - (z & 1)); }

/* The ids the generation can give: as many as defs holds, and no more
   than keep the marks below 2^32. */
static void set_room(obspam__journal *j) {
  j->room = j->cap < UINT32_MAX - j->base ? j->cap : UINT32_MAX - j->base;
}

/* Starts a generation (see the top): the records after it define
   whatever they name, and give the time and retention whole. Marks are
   never 0, which a new object has, and never wrap while a generation
   could still give them. */
static void generation(obspam__journal *j) {
  j->base += j->nids;
  if (j->base == 0 || j->base > UINT32_MAX - 3)
    j->base = 1;
  j->nids = 0;
  j->timed = 0;
  set_room(j);
}

/* Makes room in defs for the three ids a record may define, with marks
   that do not wrap. Without more room the ids start again, at the cost
   of defining again what the next records name. */
static void make_room(obspam__journal *j) {
  uintptr_t *grown =
      j->cap < UINT32_MAX / 4 && j->nids <= UINT32_MAX - 3 - j->base
          ? realloc(j->defs, 2 * (size_t)j->cap * sizeof(*grown))
          : NULL;

  if (grown != NULL) {
    j->defs = grown;
    j->cap *= 2;
    set_room(j);
  } else {
    generation(j);
  }
}

/* The record of ch into out (RECORD_MAX bytes), in j's generation, which
   has room for ch's ids; its length. Inline in a batch's loop
   (obspam__journal_record_many), encode elsewhere. */
static inline __attribute__((always_inline)) size_t
encode_at(obspam__journal *j, const obspam__charge *ch, uint8_t *out) {
  uint8_t *payload = out + FRAME_MAX - 1, *p = payload + 2;
  unsigned flags = (ch->probe ? FLAG_PROBE : 0) | (ch->reset ? FLAG_RESET : 0) |
                   (ch->marks & OBSPAM__MARK_FORWARD ? FLAG_FORWARD : 0) |
                   (ch->marks & OBSPAM__MARK_LIST ? FLAG_LIST : 0) |
                   (ch->listed ? FLAG_LISTED : 0),
           shape = (unsigned)(ch->n | (ch->refuser + 1) << 2);
  size_t len;
  int i;

  if (j->timed) {
    p = put_var(p, zigzag((uint64_t)ch->t - (uint64_t)j->t));
  } else {
    flags |= FLAG_ABSOLUTE;
    p = put_var(p, (uint64_t)ch->t);
  }
  p = put_var(p, (uint64_t)ch->c);
  if (!j->timed || ch->retention != j->retention || ch->period != j->period) {
    flags |= FLAG_SETTINGS;
    p = put_var(p, (uint64_t)ch->retention);
    p = put_var(p, (uint64_t)ch->period);
    j->retention = ch->retention;
    j->period = ch->period;
  }
  j->t = ch->t;
  j->timed = 1;
  for (i = 0; i < ch->n; i++) {
    obspam__obj *o = ch->obj[i];
    uint32_t id = o->journal_mark - j->base;
    int over = ch->refuser >= 0 && obspam__exceeded(ch, i);
    unsigned w = over ? (unsigned)(ch->over_window[i] + 1) : OBSPAM__W_HOUR + 1;

    shape |= (unsigned)over << (4 + i);
    if (id < j->nids && j->defs[id] == (uintptr_t)o) {
      p = put_var(p, (uint64_t)id << 3 | w);
    } else {
      id = j->nids++;
      j->defs[id] = (uintptr_t)o;
      o->journal_mark = j->base + id;
      p = put_var(p, (uint64_t)id << 3 | DEFINES | w);
      *p++ = o->kind;
      p = put_var(p, o->len);
      memcpy(p, o->name, o->len);
      p += o->len;
    }
    if (over)
      p = put_var(p, (uint64_t)obspam__over_limit(ch, i) + 1);
  }
  if (ch->script != NULL) {
    shape |= SHAPE_SCRIPT;
    p = put_var(p, ch->script_len);
    memcpy(p, ch->script, ch->script_len);
    p += ch->script_len;
    if (ch->uid >= 0) {
      flags |= FLAG_UID;
      p = put_var(p, (uint64_t)ch->uid);
    }
  }
  payload[0] = (uint8_t)flags;
  payload[1] = (uint8_t)shape;
  len = (size_t)(p - payload);
  /* The payload went where a length of one byte leaves it. */
  if (len < 0x80) {
    out[0] = (uint8_t)len;
    put32(out + 1, (uint32_t)obspam__checksum(payload, len));
    return len + FRAME_MAX - 1;
  }
  memmove(payload + 1, payload, len);
  out[0] = (uint8_t)(len | 0x80);
  out[1] = (uint8_t)(len >> 7);
  put32(out + 2, (uint32_t)obspam__checksum(payload + 1, len));
  return len + FRAME_MAX;
}

static size_t encode(obspam__journal *j, const obspam__charge *ch,
                     uint8_t *out) {
  return encode_at(j, ch, out);
}

typedef struct record {
  int64_t t, c, retention, period;
  int probe, reset, listed, refuser, n;
  unsigned marks; /* OBSPAM__MARK_* */
  int64_t uid;
  uint8_t over;
  int64_t limit[3];
  int window[3]; /* OBSPAM__W_*, -1 the recipients cap or scripts */
  int kind[3];
  size_t len[3];
  const char *name[3];
  const char *script;
  size_t script_len;
  const uint8_t *raw; /* the whole record, header included */
  size_t raw_len;
  int old; /* raw is a record of format 1 or 2 (its own framing) */
} record;

/* Whether r holds values a decision can make, and nothing else: what
   every format checks once it has read a record. The objects of a
   charge are of different kinds, top first (store.h), so no object is
   named twice, which the store is not made for. */
static int valid(const record *r) {
  int i;

  if (r->t < 0 || r->c < 1 || r->c > (int64_t)OBSPAM_RECIPIENTS_MAX ||
      r->retention < 1 || r->retention > 87600 || r->period < 60 ||
      r->period > 2678400 || r->n < 1 || r->n > 3 || r->refuser < -1 ||
      r->refuser >= r->n || (r->over >> r->n) != 0 ||
      (r->reset && (r->n != 1 || r->refuser != -1 || r->probe || r->marks)) ||
      (r->listed && (r->marks != OBSPAM__MARK_LIST || r->refuser != -1 ||
                     r->probe || r->reset)))
    return 0;
  for (i = 0; i < r->n; i++)
    if (r->window[i] < -1 || r->window[i] >= OBSPAM__WINDOWS ||
        (r->window[i] < 0 && !((r->over >> i) & 1)) ||
        r->kind[i] < OBSPAM_SUBSCRIPTION || r->kind[i] > OBSPAM_MAILBOX ||
        (i > 0 && r->kind[i] <= r->kind[i - 1]) || r->len[i] < 1 ||
        r->len[i] > OBSPAM_NAME_MAX || r->limit[i] < OBSPAM_UNLIMITED)
      return 0;
  return r->script_len <= OBSPAM__SCRIPT_MAX && r->uid >= -1 &&
         (r->uid < 0 || r->script_len > 0);
}

/* Decodes the payload of a record of format 1 or 2, q to stop, into r.
   0 when it is damaged. */
static int decode_old(const uint8_t *q, const uint8_t *stop, record *r) {
  size_t uid;
  uint8_t flags;
  int i, windows;

  if (stop - q < 36)
    return 0;
  r->t = (int64_t)get(q, 8);
  r->c = (int64_t)get(q + 8, 8);
  r->retention = (int64_t)get(q + 16, 8);
  r->period = (int64_t)get(q + 24, 8);
  flags = q[32];
  r->probe = flags & FLAG_PROBE;
  r->reset = (flags & FLAG_RESET) != 0;
  r->listed = (flags & FLAG_LISTED) != 0;
  r->marks = (flags & FLAG_FORWARD ? OBSPAM__MARK_FORWARD : 0u) |
             (flags & FLAG_LIST ? OBSPAM__MARK_LIST : 0u);
  r->refuser = (int8_t)q[33];
  r->n = q[34];
  r->over = q[35];
  if ((flags & ~(FLAG_PROBE | FLAG_WINDOWS | FLAG_RESET | FLAG_UID |
                 FLAG_FORWARD | FLAG_LIST | FLAG_LISTED)) != 0 ||
      r->n < 1 || r->n > 3)
    return 0;
  windows = (flags & FLAG_WINDOWS) != 0;
  q += 36;
  for (i = 0; i < r->n; i++) {
    if (stop - q < 11 + windows)
      return 0;
    r->limit[i] = (int64_t)get(q, 8);
    q += 8;
    r->window[i] = windows ? (int8_t)*q++ : OBSPAM__W_HOUR;
    r->kind[i] = q[0];
    r->len[i] = (size_t)get(q + 1, 2);
    q += 3;
    if ((size_t)(stop - q) < r->len[i])
      return 0;
    r->name[i] = (const char *)q;
    q += r->len[i];
  }
  if (stop - q < 2)
    return 0;
  r->script_len = (size_t)get(q, 2);
  q += 2;
  uid = (flags & FLAG_UID) ? 8 : 0;
  if (r->script_len > OBSPAM__SCRIPT_MAX ||
      (size_t)(stop - q) != r->script_len + uid)
    return 0;
  r->script = r->script_len > 0 ? (const char *)q : NULL;
  r->uid = uid ? (int64_t)get(q + r->script_len, 8) : -1;
  return valid(r);
}

/* Decodes the record of format 1 or 2 at p (end: the end of the file).
   Its length, or 0 when it is cut short or damaged: the end of what can
   be trusted. */
static size_t decode2(const uint8_t *p, const uint8_t *end, record *r) {
  uint64_t len;

  if (end - p < 8)
    return 0;
  len = get(p, 4);
  if (len < 36 || len > RECORD_MAX - 8 || (uint64_t)(end - p - 8) < len ||
      (uint32_t)obspam__checksum(p + 8, len) != (uint32_t)get(p + 4, 4) ||
      !decode_old(p + 8, p + 8 + len, r))
    return 0;
  r->raw = p;
  r->raw_len = (size_t)len + 8;
  r->old = 1;
  return r->raw_len;
}

/* What a reader of a format 3 file holds between records: each id's
   definition (ids[0..n), room for cap), and the time and retention of
   the previous record, when timed. */
typedef struct defined {
  const char *name;
  size_t len;
  int kind;
} defined;

typedef struct reader {
  defined *ids;
  size_t n, cap;
  int timed;
  int64_t t, retention, period;
} reader;

/* Decodes the record of format 3 at p (end: the end of the file) with
   what rd holds, which has room for three more ids. Its length, or 0
   when it is cut short or damaged, or gives an id with no definition. */
static size_t decode3(const uint8_t *p, const uint8_t *end, reader *rd,
                      record *r) {
  const uint8_t *q = p, *stop;
  uint64_t len, v;
  unsigned flags, shape;
  int i;

  if (!get_var(&q, end, &len) || len < 2 || len > RECORD_MAX - FRAME_MAX ||
      end - q < 4 || (uint64_t)(end - q - 4) < len ||
      (uint32_t)obspam__checksum(q + 4, len) != (uint32_t)get(q, 4))
    return 0;
  q += 4;
  stop = q + len;
  r->raw = p;
  r->raw_len = (size_t)(stop - p);
  r->old = 0;
  flags = q[0];
  shape = q[1];
  q += 2;
  if ((shape & 3) == 0)
    return flags == 0 && decode_old(q, stop, r) ? r->raw_len : 0;
  r->n = (int)(shape & 3);
  r->refuser = (int)((shape >> 2) & 3) - 1;
  r->over = (uint8_t)((shape >> 4) & 7);
  r->probe = flags & FLAG_PROBE;
  r->reset = (flags & FLAG_RESET) != 0;
  r->listed = (flags & FLAG_LISTED) != 0;
  r->marks = (flags & FLAG_FORWARD ? OBSPAM__MARK_FORWARD : 0u) |
             (flags & FLAG_LIST ? OBSPAM__MARK_LIST : 0u);
  if (!get_var(&q, stop, &v) || (!(flags & FLAG_ABSOLUTE) && !rd->timed))
    return 0;
  r->t = (int64_t)(flags & FLAG_ABSOLUTE ? v : (uint64_t)rd->t + unzigzag(v));
  if (!get_var(&q, stop, &v) || v > OBSPAM_RECIPIENTS_MAX)
    return 0;
  r->c = (int64_t)v;
  if (flags & FLAG_SETTINGS) {
    if (!get_var(&q, stop, &v) || v > 87600)
      return 0;
    r->retention = (int64_t)v;
    if (!get_var(&q, stop, &v) || v > 2678400)
      return 0;
    r->period = (int64_t)v;
  } else if (rd->timed) {
    r->retention = rd->retention;
    r->period = rd->period;
  } else {
    return 0;
  }
  for (i = 0; i < r->n; i++) {
    uint64_t id;

    if (!get_var(&q, stop, &v))
      return 0;
    id = v >> 3;
    r->window[i] = (int)(v & 3) - 1;
    if (v & DEFINES) {
      defined *d;

      if (id > rd->n || stop - q < 2)
        return 0;
      d = &rd->ids[id];
      d->kind = *q++;
      if (!get_var(&q, stop, &v) || v < 1 || v > OBSPAM_NAME_MAX ||
          (uint64_t)(stop - q) < v)
        return 0;
      d->len = (size_t)v;
      d->name = (const char *)q;
      q += v;
      if (id == rd->n)
        rd->n++;
    } else if (id >= rd->n) {
      return 0;
    }
    r->kind[i] = rd->ids[id].kind;
    r->name[i] = rd->ids[id].name;
    r->len[i] = rd->ids[id].len;
    r->limit[i] = OBSPAM_UNLIMITED; /* not read: see the top */
    if ((r->over >> i) & 1) {
      if (!get_var(&q, stop, &v))
        return 0;
      r->limit[i] = (int64_t)(v - 1);
    }
  }
  r->script = NULL;
  r->script_len = 0;
  if (shape & SHAPE_SCRIPT) {
    if (!get_var(&q, stop, &v) || v < 1 || v > OBSPAM__SCRIPT_MAX ||
        (uint64_t)(stop - q) < v)
      return 0;
    r->script = (const char *)q;
    r->script_len = (size_t)v;
    q += v;
  }
  r->uid = -1;
  if (flags & FLAG_UID) {
    if (!get_var(&q, stop, &v) || v > INT64_MAX)
      return 0;
    r->uid = (int64_t)v;
  }
  if (q != stop || !valid(r))
    return 0;
  rd->timed = 1;
  rd->t = r->t;
  rd->retention = r->retention;
  rd->period = r->period;
  return r->raw_len;
}

/* ---- writing ------------------------------------------------------------- */

/* Writes n bytes at off, whatever the descriptor's offset. 0, or -1
   (errno set; ENOSPC for a write cut short with no reason given). */
static int write_at(int fd, const uint8_t *p, size_t n, uint64_t off) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, (off_t)off);

    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      if (w == 0)
        errno = ENOSPC;
      return -1;
    }
    p += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

/* Writes the waiting records to fd. 0, or -1 (errno set) with the
   records still waiting and the file cut back to its whole records.
   A full disk takes part of a write and refuses the rest: the torn
   record is cut off, and the next write goes where it began, not where
   the descriptor's offset is. So even when the cut fails, the torn bytes
   are at the file's end, where a replay stops anyway, and the next
   write covers them: a torn record never lies between good ones, which
   it would hide. */
static int flush_locked(obspam__journal *j, int sync) {
  int err;

  if (j->len == 0)
    return 0;
  if (write_at(j->fd, j->buf, j->len, j->size) == 0 &&
      (!sync || !(j->flags & OBSPAM_JOURNAL_FSYNC) || fdatasync(j->fd) == 0)) {
    j->size += j->len;
    j->len = 0;
    j->nbuf = 0;
    return 0;
  }
  err = errno ? errno : EIO;
  if (ftruncate(j->fd, (off_t)j->size) != 0) {
    /* The next write covers the torn bytes (above). */
  }
  errno = err;
  return -1;
}

/* Records ch, with the journal's lock held. */
static void record_locked(obspam__journal *j, const obspam__charge *ch) {
  size_t len;

  if (j->room - j->nids < 3)
    make_room(j);
  /* Encoded in place, so that the record's names are copied once; near
     the buffer's end, aside, to learn whether it fits. */
  if (BUF_CAP - j->len >= RECORD_MAX) {
    j->len += encode(j, ch, j->buf + j->len);
    j->nbuf++;
    return;
  }
  len = encode(j, ch, j->aside);
  if (BUF_CAP - j->len < len && flush_locked(j, 1) != 0) {
    /* The file takes nothing: the oldest records go, and the next flush
       says how many. Their definitions go with them, so the record is
       made again in a generation of its own. */
    j->lost += j->nbuf;
    j->len = 0;
    j->nbuf = 0;
    generation(j);
    len = encode(j, ch, j->aside);
  }
  memcpy(j->buf + j->len, j->aside, len);
  j->len += len;
  j->nbuf++;
}

void obspam__journal_record(void *journal, const obspam__charge *ch) {
  obspam__journal *j = journal;

  pthread_mutex_lock(&j->lock);
  record_locked(j, ch);
  pthread_mutex_unlock(&j->lock);
}

void obspam__journal_record_many(void *journal, const obspam__charge *const *ch,
                                 int n) {
  obspam__journal *j = journal;
  int i;

  pthread_mutex_lock(&j->lock);
  if (j->room - j->nids >= 3 * (uint32_t)n &&
      BUF_CAP - j->len >= (size_t)n * RECORD_MAX) {
    /* Room for every record's ids and bytes: record_locked would find
       nothing to make room for and no record to set aside. */
    size_t len = j->len;

    for (i = 0; i < n; i++)
      len += encode_at(j, ch[i], j->buf + len);
    j->len = len;
    j->nbuf += (uint32_t)n;
  } else {
    for (i = 0; i < n; i++)
      record_locked(j, ch[i]);
  }
  pthread_mutex_unlock(&j->lock);
}

/* Makes path a new, empty file, mode 0600, for records. Whatever lies at
   path is unlinked first rather than opened: a file or a hard link
   planted there (a state directory that others can write) is neither
   truncated nor made the journal, with its owner and mode. The
   descriptor, or -1 (errno set). */
static int create_records(const char *path) {
  int fd;

  if (unlink(path) != 0 && errno != ENOENT)
    return -1;
  fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0)
    obspam__give_to_dir_owner(fd, path);
  return fd;
}

/* Copies the records of next's file (fd src, size bytes) after those of
   path's (dst, at *dst_size). 0 or -1 (errno set; dst cut back). */
static int copy_records(int src, uint64_t size, int dst, uint64_t *dst_size) {
  uint8_t chunk[65536];
  uint64_t off = HEADER, at = *dst_size;
  int err;

  while (off < size) {
    size_t want =
        size - off < sizeof(chunk) ? (size_t)(size - off) : sizeof(chunk);
    ssize_t r = pread(src, chunk, want, (off_t)off);

    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0 || write_at(dst, chunk, (size_t)r, at) != 0)
      goto fail;
    off += (uint64_t)r;
    at += (uint64_t)r;
  }
  *dst_size = at;
  return 0;
fail:
  err = errno ? errno : EIO;
  if (ftruncate(dst, (off_t)*dst_size) != 0) {
    /* Whatever is left past *dst_size is written over: records are
       copied there, never at the file's end (settle). */
  }
  errno = err;
  return -1;
}

/* Sets right what a failed save or rename left (unsettled): afterwards
   fd is path's and next is gone. 0 or -1 (errno set, nothing changed). */
static int settle(obspam__journal *j) {
  if (j->unsettled == 2) {
    if (rename(j->next, j->path) != 0)
      return -1;
  } else if (j->unsettled == 1) {
    int dst = obspam__open_regular(j->path, O_RDWR);
    struct stat st;
    uint64_t size;

    if (dst < 0)
      return -1;
    /* The records go after path's last whole one (old_size, as the cut
       left it), not at the file's end, where a copy that failed may have
       left part of a record. */
    if (fstat(dst, &st) != 0 || j->old_size < HEADER ||
        (uint64_t)st.st_size < j->old_size) {
      close(dst);
      errno = EIO;
      return -1;
    }
    size = j->old_size;
    if (copy_records(j->fd, j->size, dst, &size) != 0 ||
        ((j->flags & OBSPAM_JOURNAL_FSYNC) && fdatasync(dst) != 0)) {
      int err = errno;

      close(dst);
      errno = err;
      return -1;
    }
    close(j->fd);
    unlink(j->next);
    j->fd = dst;
    j->size = size;
    generation(j);
  }
  j->unsettled = 0;
  return 0;
}

/* ---- saves --------------------------------------------------------------- */

int obspam__journal_owns(obspam_engine *e, const char *path) {
  return e->journal != NULL && strcmp(e->journal->state, path) == 0;
}

obspam__journal *obspam__journal_begin_save(obspam_engine *e,
                                            const char *path) {
  obspam__journal *j = e->journal;

  if (j == NULL || strcmp(j->state, path) != 0)
    return NULL;
  pthread_mutex_lock(&j->save_lock);
  return j;
}

int obspam__journal_prepare(obspam_engine *e, obspam__journal *j) {
  uint8_t h[HEADER];
  int fd, err;

  pthread_mutex_lock(&j->lock);
  j->cut_failed = 0;
  if (settle(j) != 0) {
    err = errno;
    pthread_mutex_unlock(&j->lock);
    return obspam__fail(e, OBSPAM_EIO, "state_save: journal %s: %s", j->path,
                        strerror(err));
  }
  pthread_mutex_unlock(&j->lock);
  header(h, PENDING, 0);
  fd = create_records(j->next);
  if (fd < 0 || obspam__write_all(fd, h, HEADER) != 0) {
    err = errno ? errno : EIO;
    if (fd >= 0) {
      close(fd);
      unlink(j->next);
    }
    return obspam__fail(e, OBSPAM_EIO, "state_save: %s: %s", j->next,
                        strerror(err));
  }
  j->next_fd = fd;
  return OBSPAM_OK;
}

void obspam__journal_cut(void *ud) {
  obspam__journal *j = ud;

  pthread_mutex_lock(&j->lock);
  /* The records before the cut belong with the journal the snapshot
     replaces: if the snapshot does not land, they are still needed. */
  if (flush_locked(j, 0) != 0) {
    j->cut_failed = errno;
  } else {
    j->old_fd = j->fd;
    j->old_size = j->size;
    j->fd = j->next_fd;
    j->size = HEADER;
    j->next_fd = -1;
    generation(j);
  }
  pthread_mutex_unlock(&j->lock);
}

int obspam__journal_stamp(obspam_engine *e, obspam__journal *j, uint64_t length,
                          uint64_t checksum) {
  uint8_t id[16];
  int fd, err = 0;

  pthread_mutex_lock(&j->lock);
  fd = j->old_fd >= 0 ? j->fd : -1;
  if (fd >= 0) {
    put(id, length, 8);
    put(id + 8, checksum, 8);
    if (pwrite(fd, id, 16, 16) != 16 ||
        ((j->flags & OBSPAM_JOURNAL_FSYNC) && fdatasync(fd) != 0))
      err = errno ? errno : EIO;
  } else {
    err = j->cut_failed ? j->cut_failed : EIO;
  }
  pthread_mutex_unlock(&j->lock);
  if (err != 0)
    return obspam__fail(e, OBSPAM_EIO, "state_save: journal %s: %s",
                        fd >= 0 ? j->next : j->path, strerror(err));
  return OBSPAM_OK;
}

int obspam__journal_saved(obspam_engine *e, obspam__journal *j, int rc) {
  int err = 0, old = -1;

  pthread_mutex_lock(&j->lock);
  if (j->next_fd >= 0) { /* no cut: the save failed before it */
    close(j->next_fd);
    unlink(j->next);
    j->next_fd = -1;
  } else if (j->old_fd >= 0 && rc == OBSPAM_OK) {
    /* The snapshot is in place: the journal is what came after it. The
       old file is closed and the new one renamed below, without the lock
       that every flush takes: a rename waits for the file system's own
       journal, milliseconds on a busy disk, and the descriptor the
       flushes write to is the same before and after it. save_lock keeps
       the next save out until it is done. */
    old = j->old_fd;
  } else if (j->old_fd >= 0) {
    /* No snapshot: the records after the cut go back after the others. */
    uint64_t size = j->old_size;

    if (copy_records(j->fd, j->size, j->old_fd, &size) == 0) {
      close(j->fd);
      unlink(j->next);
      j->fd = j->old_fd;
      j->size = size;
      generation(j);
    } else {
      close(j->old_fd);
      j->unsettled = 1;
    }
  }
  j->old_fd = -1;
  pthread_mutex_unlock(&j->lock);
  if (old >= 0) {
    close(old);
    if (rename(j->next, j->path) != 0) {
      err = errno;
      pthread_mutex_lock(&j->lock);
      j->unsettled = 2;
      pthread_mutex_unlock(&j->lock);
    }
  }
  pthread_mutex_unlock(&j->save_lock);
  if (rc == OBSPAM_OK && err != 0)
    return obspam__fail(e, OBSPAM_EIO, "state_save: journal %s: %s", j->next,
                        strerror(err));
  return rc;
}

/* ---- opening and replaying ----------------------------------------------- */

static void journal_destroy(obspam__journal *j) {
  if (j == NULL)
    return;
  if (j->fd >= 0)
    close(j->fd);
  if (j->next_fd >= 0)
    close(j->next_fd);
  if (j->lock_fd >= 0)
    close(j->lock_fd);
  pthread_mutex_destroy(&j->lock);
  pthread_mutex_destroy(&j->save_lock);
  free(j->defs);
  free(j->state);
  free(j->path);
  free(j->next);
  free(j->fresh);
  free(j);
}

static char *concat(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *s = malloc(la + lb + 1);

  if (s != NULL) {
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
  }
  return s;
}

/* The identity of the snapshot in the state file: its payload length and
   checksum, both 0 when there is none or it is not one. */
static void state_identity(const char *state, uint64_t id[2]) {
  uint8_t h[32];
  int fd = obspam__open_regular(state, O_RDONLY);

  id[0] = id[1] = 0;
  if (fd < 0)
    return;
  if (pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
      memcmp(h, "OBSPAMST", 8) == 0) {
    id[0] = get(h + 16, 8);
    id[1] = get(h + 24, 8);
  }
  close(fd);
}

/* A journal file read whole: its identity and its records. */
typedef struct jfile {
  int present;
  char *data;
  size_t size;
  uint64_t id[2];
  record *rec;
  size_t n;
  size_t whole; /* bytes up to the end of the last whole record */
} jfile;

/* Makes room for need elements of size bytes at *v (room for *cap). 0,
   or -1 with *v as it was. */
static int grow(void *v, size_t *cap, size_t need, size_t size) {
  size_t n = *cap ? *cap : 256;
  void *grown;

  if (need <= *cap)
    return 0;
  while (n < need)
    n *= 2;
  grown = realloc(*(void **)v, n * size);
  if (grown == NULL)
    return -1;
  *(void **)v = grown;
  *cap = n;
  return 0;
}

static int read_journal(obspam_engine *e, const char *path, jfile *f) {
  const uint8_t *p, *end;
  reader rd;
  size_t cap = 0;
  unsigned version;
  int rc = OBSPAM_OK;

  memset(f, 0, sizeof(*f));
  if (access(path, F_OK) != 0 && errno == ENOENT)
    return OBSPAM_OK;
  rc = obspam__read_file(e, "journal_open: ", path, 1, &f->data, &f->size);
  if (rc != OBSPAM_OK)
    return rc;
  f->present = 1;
  p = (const uint8_t *)f->data;
  end = p + f->size;
  if (f->size < HEADER) {
    /* A file cut before its header was complete holds no record. */
    if (memcmp(p, MAGIC, f->size < 8 ? f->size : 8) != 0)
      return obspam__fail(e, OBSPAM_ECORRUPT,
                          "journal_open: %s: not a libobspam journal", path);
    f->id[0] = PENDING;
    return OBSPAM_OK;
  }
  if (memcmp(p, MAGIC, 8) != 0)
    return obspam__fail(e, OBSPAM_ECORRUPT,
                        "journal_open: %s: not a libobspam journal", path);
  if (get(p + 8, 4) > VERSION)
    return obspam__fail(e, OBSPAM_EVERSION,
                        "journal_open: %s: format %u is newer than this "
                        "library's (%u)",
                        path, (unsigned)get(p + 8, 4), VERSION);
  if (get(p + 8, 4) == 0 || get(p + 12, 4) != 0)
    return obspam__fail(e, OBSPAM_ECORRUPT, "journal_open: %s: bad header",
                        path);
  f->id[0] = get(p + 16, 8);
  f->id[1] = get(p + 24, 8);
  version = (unsigned)get(p + 8, 4);
  p += HEADER;
  memset(&rd, 0, sizeof(rd));
  for (;;) {
    record r;
    size_t n;

    /* Room for the record, and for the three ids it may define. */
    if (grow(&f->rec, &cap, f->n + 1, sizeof(*f->rec)) != 0 ||
        grow(&rd.ids, &rd.cap, rd.n + 3, sizeof(*rd.ids)) != 0) {
      rc = obspam__fail(e, OBSPAM_ENOMEM, "journal_open: out of memory");
      break;
    }
    n = version < 3 ? decode2(p, end, &r) : decode3(p, end, &rd, &r);
    if (n == 0)
      break;
    f->rec[f->n++] = r;
    p += n;
  }
  free(rd.ids);
  f->whole = (size_t)(p - (const uint8_t *)f->data);
  return rc;
}

static void jfile_free(jfile *f) {
  free(f->data);
  free(f->rec);
}

/* Applies one record under the engine's write lock. */
static int replay_one(obspam_engine *e, const record *r) {
  obspam__charge ch;
  obspam__imb *pinned = NULL;
  int i, rc;

  memset(&ch, 0, sizeof(ch));
  ch.refuser = -1;
  for (i = 0; i < r->n; i++) {
    obspam__obj *o =
        obspam__conf_find(r->kind[i], r->name[i], r->len[i], e->conf);

    if (o == NULL && r->kind[i] == OBSPAM_MAILBOX && pinned == NULL) {
      obspam__obj *dom =
          obspam__domain_of(&e->conf->tree, r->name[i], r->len[i]);
      obspam__name nm;
      obspam__imb *m;
      const char *at = memchr(r->name[i], '@', r->len[i]);

      if (dom != NULL && at != NULL) {
        nm.len = r->len[i];
        nm.at = (size_t)(at - r->name[i]);
        memcpy(nm.s, r->name[i], r->len[i]);
        nm.s[nm.len] = '\0';
        switch (obspam__implicit_get(
            &e->imp, &nm, obspam__index_hash(nm.s, nm.len), dom,
            e->conf->opt[OBSPAM_OPT_IMPLICIT_MAILBOXES], 1, &m)) {
        case OBSPAM__IMB_FOUND:
          pinned = m;
          o = &m->obj;
          break;
        case OBSPAM__IMB_NOMEM:
          return OBSPAM_ENOMEM;
        default:
          break; /* the cap is met: the others are charged */
        }
      }
    }
    if (o == NULL)
      continue; /* gone from the configuration */
    ch.obj[ch.n] = o;
    /* The store reads the limit an object went over where its window
       says (store.h, obspam__over_limit); -1 is the cap's, as forbid is not
       set on a replay. */
    if (r->window[i] >= 0)
      ch.limit[ch.n][r->window[i]] = r->limit[i];
    else
      ch.cap = r->limit[i];
    ch.over_window[ch.n] = (int8_t)r->window[i];
    ch.over[ch.n] = (r->over >> i) & 1;
    if (r->refuser == i || (r->refuser >= 0 && ch.refuser < 0))
      ch.refuser = ch.n;
    ch.n++;
  }
  if (ch.n == 0)
    return OBSPAM_OK;
  ch.t = r->t;
  ch.c = r->c;
  ch.retention = r->retention;
  ch.period = r->period;
  ch.probe = r->probe;
  ch.reset = r->reset;
  ch.listed = r->listed;
  ch.marks = (int)r->marks;
  ch.replay = 1;
  ch.script = r->script;
  ch.script_len = r->script_len;
  ch.uid = r->uid;
  rc = e->store->ops->charge(e->store, &ch);
  if (pinned != NULL)
    obspam__implicit_unpin(&e->imp, pinned);
  if (rc == OBSPAM_OK)
    obspam__observe(e, ch.t);
  return rc;
}

/* Writes the journal that follows the snapshot id, holding the records
   of list (of path's file, then of next's), and puts it in path's
   place. The descriptor, or -1 with path and next as they were, or next
   replaced by the new file (whose identity, the state file's, has it
   replayed alone). It is written as fresh and renamed over next first:
   next may hold records that no other file holds (a save killed after
   its cut), and a disk that does not take the new file must not lose
   them. */
static int write_fresh(obspam__journal *j, const uint64_t id[2],
                       record *const *list, size_t n, uint64_t *size) {
  uint8_t h[HEADER];
  size_t i;
  int fd = create_records(j->fresh), err;

  if (fd < 0)
    return -1;
  header(h, id[0], id[1]);
  *size = HEADER;
  if (obspam__write_all(fd, h, HEADER) != 0)
    goto fail;
  for (i = 0; i < n; i++) {
    const uint8_t *raw = list[i]->raw;
    size_t len = list[i]->raw_len;
    uint8_t wrap[RECORD_MAX + FRAME_MAX];

    if (list[i]->old) {
      /* A record of format 1 or 2 goes in a record of shape 0. */
      uint8_t *q = put_var(wrap, len - 8 + 2);

      put32(q, 0);
      q[4] = q[5] = 0;
      memcpy(q + 6, raw + 8, len - 8);
      put32(q, (uint32_t)obspam__checksum(q + 4, len - 8 + 2));
      len = (size_t)(q + 4 - wrap) + len - 8 + 2;
      raw = wrap;
    }
    if (obspam__write_all(fd, raw, len) != 0)
      goto fail;
    *size += len;
  }
  if (fsync(fd) != 0 || rename(j->fresh, j->next) != 0 ||
      rename(j->next, j->path) != 0)
    goto fail;
  (void)obspam__sync_dir(j->path);
  return fd;
fail:
  err = errno;
  close(fd);
  unlink(j->fresh);
  errno = err;
  return -1;
}

/* Keeps the file that holds exactly the n records replayed, when there
   is one, rather than writing them again: a restart on a full disk, where
   a second copy does not fit, still opens its journal. The file is cut
   after them (a torn last record goes; all of them when a shared store
   keeps the counters), and is put in path's place when it is next's.
   The descriptor, or -1 when only a fresh file will do. */
static int reuse(obspam__journal *j, const jfile *cur, const jfile *nxt,
                 const uint64_t id[2], size_t n, uint64_t *size) {
  const jfile *f;
  uint64_t keep;
  int fd;

  if (nxt->present && nxt->id[0] == id[0] && nxt->id[1] == id[1])
    f = nxt;
  else if (cur->present && cur->id[0] == id[0] && cur->id[1] == id[1] &&
           nxt->n == 0)
    f = cur;
  else
    return -1;
  if (f->size < HEADER || get((const uint8_t *)f->data + 8, 4) != VERSION ||
      (n != 0 && n != f->n))
    return -1;
  keep = n == 0 ? HEADER : f->whole;
  if (f == nxt && rename(j->next, j->path) != 0)
    return -1;
  fd = obspam__open_regular(j->path, O_RDWR);
  if (fd < 0)
    return -1;
  /* Cut records could come back at the next start; with FSYNC, the
     records kept are on the disk before anything is decided, as a fresh
     file's would be. */
  if (ftruncate(fd, (off_t)keep) != 0 ||
      ((j->flags & OBSPAM_JOURNAL_FSYNC) && fdatasync(fd) != 0)) {
    close(fd);
    return -1;
  }
  if (f == nxt)
    (void)obspam__sync_dir(j->path);
  else if (nxt->present)
    unlink(j->next); /* a save's, holding nothing */
  *size = keep;
  return fd;
}

/* Two processes given the same state file would write their records
   over each other's (each at its own idea of the journal's end), and
   each save would put only its own counters in the snapshot: the second
   is refused. The lock is a POSIX record lock on STATE.lock, a file
   that no save replaces (the journal and the snapshot are replaced by
   renames), held while the journal is open and released by the kernel
   when the process ends, however it ends. A record lock belongs to a
   process: engines of one process are not told apart (a second
   obspam_journal_open of one engine is refused anyway). OBSPAM_OK with
   j->lock_fd set, or OBSPAM_EIO. */
static int lock_state(obspam_engine *e, obspam__journal *j) {
  char *lock = concat(j->state, ".lock");
  struct stat st;
  struct flock fl;
  int fd, rc, attempt, err = 0;

  if (lock == NULL)
    return obspam__fail(e, OBSPAM_ENOMEM, "journal_open: out of memory");
  fd = open(lock, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0)
    obspam__give_to_dir_owner(fd, lock);
  if (fd < 0 && errno == EEXIST)
    fd = open(lock, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 || fstat(fd, &st) != 0) {
    rc = obspam__fail(e, OBSPAM_EIO, "journal_open: %s: %s", lock,
                      strerror(errno));
    goto out;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = obspam__fail(e, OBSPAM_EIO, "journal_open: %s: not a regular file",
                      lock);
    goto out;
  }
  /* A holder that goes between the attempt and the question leaves the
     lock free: asked again. */
  for (attempt = 0; attempt < 4; attempt++) {
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) == 0) {
      j->lock_fd = fd;
      fd = -1;
      rc = OBSPAM_OK;
      goto out;
    }
    err = errno;
    if (err != EAGAIN && err != EACCES)
      break;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
      rc = obspam__fail(e, OBSPAM_EIO,
                        "journal_open: %s is in use by process %ld (it holds "
                        "%s): two processes cannot share a state file",
                        j->state, (long)fl.l_pid, lock);
      goto out;
    }
  }
  rc = obspam__fail(e, OBSPAM_EIO, "journal_open: %s: cannot lock: %s", lock,
                    strerror(err));
out:
  if (fd >= 0)
    close(fd);
  free(lock);
  return rc;
}

int obspam_journal_open(obspam_engine *e, const char *state_path,
                        unsigned flags, int64_t *replayed, int64_t *ignored) {
  obspam__journal *j;
  jfile cur, nxt;
  record **list = NULL;
  uint64_t id[2];
  size_t n = 0, i, skip;
  int64_t count = 0, dropped = 0;
  int rc;

  if (replayed != NULL)
    *replayed = 0;
  if (ignored != NULL)
    *ignored = 0;
  if (e == NULL)
    return OBSPAM_EINVAL;
  if (state_path == NULL || state_path[0] == '\0')
    return obspam__fail(e, OBSPAM_EINVAL, "journal_open: no path");
  if (flags & ~OBSPAM_JOURNAL_FSYNC)
    return obspam__fail(e, OBSPAM_EINVAL, "journal_open: unknown flags 0x%x",
                        flags & ~OBSPAM_JOURNAL_FSYNC);
  if (strlen(state_path) > 4000)
    return obspam__fail(e, OBSPAM_EINVAL, "journal_open: path is too long");
  pthread_rwlock_rdlock(&e->lock);
  rc = e->journal != NULL;
  pthread_rwlock_unlock(&e->lock);
  if (rc)
    return obspam__fail(e, OBSPAM_EINVAL,
                        "journal_open: a journal is open already");
  j = calloc(1, sizeof(*j));
  if (j == NULL)
    return obspam__fail(e, OBSPAM_ENOMEM, "journal_open: out of memory");
  j->fd = j->next_fd = j->old_fd = j->lock_fd = -1;
  j->flags = flags;
  pthread_mutex_init(&j->lock, NULL);
  pthread_mutex_init(&j->save_lock, NULL);
  j->state = concat(state_path, "");
  j->path = concat(state_path, ".journal");
  j->next = concat(state_path, ".journal.next");
  j->fresh = concat(state_path, ".journal.new");
  j->defs = malloc(DEFS_MIN * sizeof(*j->defs));
  j->cap = DEFS_MIN;
  generation(j);
  if (j->state == NULL || j->path == NULL || j->next == NULL ||
      j->fresh == NULL || j->defs == NULL) {
    journal_destroy(j);
    return obspam__fail(e, OBSPAM_ENOMEM, "journal_open: out of memory");
  }
  memset(&cur, 0, sizeof(cur));
  memset(&nxt, 0, sizeof(nxt));
  rc = lock_state(e, j);
  /* A start killed while it wrote its fresh file left it: it holds
     copies of records that the journal or .next still hold (and
     write_fresh makes its own anyway). */
  if (rc == OBSPAM_OK)
    (void)unlink(j->fresh);
  if (rc == OBSPAM_OK)
    rc = read_journal(e, j->path, &cur);
  if (rc == OBSPAM_OK)
    rc = read_journal(e, j->next, &nxt);
  if (rc != OBSPAM_OK)
    goto out;

  /* Which records the state file does not hold (see the top). */
  state_identity(j->state, id);
  list = malloc((cur.n + nxt.n + 1) * sizeof(*list));
  if (list == NULL) {
    rc = obspam__fail(e, OBSPAM_ENOMEM, "journal_open: out of memory");
    goto out;
  }
  if (nxt.present && nxt.id[0] == id[0] && nxt.id[1] == id[1]) {
    for (i = 0; i < nxt.n; i++)
      list[n++] = &nxt.rec[i];
    dropped = (int64_t)cur.n;
  } else if (cur.present && cur.id[0] == id[0] && cur.id[1] == id[1]) {
    for (i = 0; i < cur.n; i++)
      list[n++] = &cur.rec[i];
    for (i = 0; i < nxt.n; i++)
      list[n++] = &nxt.rec[i];
  } else {
    dropped = (int64_t)(cur.n + nxt.n);
  }

  pthread_rwlock_wrlock(&e->lock);
  if (e->store != e->local) {
    /* The shared store holds the counters; nothing is replayed. */
    dropped += (int64_t)n;
    n = 0;
  }
  /* A replay that ran out of memory applied the first ones already. */
  skip = e->replay_id[0] == id[0] && e->replay_id[1] == id[1] &&
                 e->replay_done <= n
             ? e->replay_done
             : 0;
  for (i = skip; i < n; i++) {
    rc = replay_one(e, list[i]);
    if (rc != OBSPAM_OK) {
      e->replay_id[0] = id[0];
      e->replay_id[1] = id[1];
      e->replay_done = i;
      pthread_rwlock_unlock(&e->lock);
      rc = obspam__fail(e, rc, "journal_open: out of memory");
      goto out;
    }
    count++;
  }
  j->fd = reuse(j, &cur, &nxt, id, n, &j->size);
  if (j->fd < 0)
    j->fd = write_fresh(j, id, list, n, &j->size);
  if (j->fd < 0) {
    int err = errno;

    e->replay_id[0] = id[0];
    e->replay_id[1] = id[1];
    e->replay_done = n;
    pthread_rwlock_unlock(&e->lock);
    rc = obspam__fail(e, OBSPAM_EIO, "journal_open: %s: %s", j->path,
                      strerror(err));
    goto out;
  }
  e->replay_done = 0;
  e->replay_id[0] = e->replay_id[1] = 0;
  if (e->journal != NULL) { /* another thread opened one meanwhile */
    pthread_rwlock_unlock(&e->lock);
    rc = obspam__fail(e, OBSPAM_EINVAL,
                      "journal_open: a journal is open already");
    goto out;
  }
  e->journal = j;
  e->journal_free = obspam__journal_free;
  j = NULL;
  pthread_rwlock_unlock(&e->lock);
  if (replayed != NULL)
    *replayed = count + (int64_t)skip;
  if (ignored != NULL)
    *ignored = dropped;
  rc = OBSPAM_OK;
out:
  free(list);
  jfile_free(&cur);
  jfile_free(&nxt);
  journal_destroy(j);
  return rc;
}

/* ---- flushing and closing ------------------------------------------------ */

static int flush_report(obspam_engine *e, obspam__journal *j) {
  const char *file = j->path;
  uint64_t lost;
  int err = 0;

  pthread_mutex_lock(&j->lock);
  if (flush_locked(j, 1) != 0) {
    err = errno;
    if (j->unsettled || j->old_fd >= 0)
      file = j->next; /* where fd writes now */
    lost = 0;         /* told by the flush that writes again */
  } else {
    lost = j->lost;
    j->lost = 0;
  }
  pthread_mutex_unlock(&j->lock);
  if (err != 0)
    return obspam__fail(e, OBSPAM_EIO, "journal_flush: %s: %s", file,
                        strerror(err));
  if (lost > 0)
    return obspam__fail(e, OBSPAM_EIO,
                        "journal_flush: %llu decisions were dropped: the "
                        "journal did not take them",
                        (unsigned long long)lost);
  return OBSPAM_OK;
}

int obspam_journal_flush(obspam_engine *e) {
  int rc = OBSPAM_OK;

  if (e == NULL)
    return OBSPAM_EINVAL;
  pthread_rwlock_rdlock(&e->lock);
  if (e->journal != NULL)
    rc = flush_report(e, e->journal);
  pthread_rwlock_unlock(&e->lock);
  return rc;
}

int obspam_journal_close(obspam_engine *e) {
  obspam__journal *j;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  pthread_rwlock_wrlock(&e->lock);
  j = e->journal;
  e->journal = NULL;
  pthread_rwlock_unlock(&e->lock);
  if (j == NULL)
    return OBSPAM_OK;
  /* A save under way finishes first (it holds save_lock). */
  pthread_mutex_lock(&j->save_lock);
  pthread_mutex_unlock(&j->save_lock);
  rc = flush_report(e, j);
  journal_destroy(j);
  return rc;
}

void obspam__journal_free(obspam_engine *e) {
  obspam__journal *j = e->journal;

  if (j == NULL)
    return;
  e->journal = NULL;
  pthread_mutex_lock(&j->lock);
  (void)flush_locked(j, 1);
  pthread_mutex_unlock(&j->lock);
  journal_destroy(j);
}
