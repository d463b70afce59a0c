/* SPDX-License-Identifier: MIT */
/* The refusal log lines of a flood, coalesced per object (see refusal.h,
   obspamd_log_refusal): the first refusal of an object is logged whole at
   once and opens an interval; the refusals after it are only counted, and
   the count of each interval is logged as one line:

     refuse kind=mailbox object=info@example.com more=4180 seconds=10
     first_queue_id=4FgH2x1Kz9

   A spammer's flood then costs a lookup and an increment per request
   instead of a formatted line, and the log stays readable when the admin
   needs it.

   The intervals of an object follow each other back to back from its
   first refusal, and a refusal is counted in the interval its time falls
   in: one that comes after its interval ended logs that interval's line
   itself, before the flush of the next tick would. So a line counts
   exactly the refusals of its interval, whenever it is written. An
   interval without a refusal ends the episode: the object leaves the
   table, and its next refusal is logged whole again.

   The objects being counted are kept in one fixed table, made once: a
   refusal allocates nothing. Entries are found by a hash of the kind and
   the name (seeded per process, so that names chosen to collide cannot
   be prepared in advance) with linear probing, and removed by shifting
   the entries after them back, so that no tombstone ever slows a lookup.
   Past TRACKED_MAX objects at once, the refusals of objects not in the
   table share one more entry, logged as kind=- object=-; the first of
   each of its intervals is logged whole.

   One mutex guards the table: the milter refuses from libmilter's
   threads and flushes from its housekeeping thread.

   The bad requests of a client are coalesced the same way, per client
   (its address, or the uid of a unix: socket's peer), in a table of
   their own, so that a flood of bad requests from many addresses cannot
   crowd the refused objects out of theirs (obspamd_bad_request_counted). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "internal.h"
#include "log.h"
#include "refusal.h"
#include "util.h"

/* The table: at most TRACKED_MAX of its SLOTS taken, so that a probe
   stays short. The hashes are an array of their own, which the probes
   and the flush (every slot, once a second) read: 32 KiB, where the
   entries, 4 MiB in all, are only touched once used (a kilobyte an
   object refused, four to a page). */
#define SLOTS 4096
#define TRACKED_MAX 3072
/* Room for an object's name and its NUL, as a verdict holds it. */
#define NAME_SIZE sizeof(((obspam_verdict *)0)->object)

/* What the words of a refusal's text depend on besides the object
   (obspamd_refusal_text_msg): wait is -1 for a refusal that never fits,
   0 for one that says nothing of waiting (reject), else the seconds the
   text says (obspamd__retry_shown); how packs the rest: the window as the
   text names it (WORDS_MINUTE, WORDS_DAY or neither: the hour), the
   action, the unit, a script's mail, and the reason
   (obspamd_refusal_reason) from bit 5 on. */
typedef struct words {
  int64_t limit, count, wait;
  uint8_t how;
} words;

#define WORDS_MINUTE 1u
#define WORDS_DAY 2u
#define WORDS_REJECT 4u
#define WORDS_UNIT 8u
#define WORDS_SCRIPT 16u
#define WORDS_REASON_AT 5

/* What the words depend on, as the verdict and the caller give them:
   the verdict's retry_after and window (its limit and count are the
   words' own), and the action and unit (AS_REJECT, AS_UNIT) with AS_SET.
   A refusal that gives the same as the last one has its words without
   working them out. A script's refusal is never taken so (its reason
   also depends on the message's recipients), nor the first of an entry
   (whose as is 0 until its text is written: 0 has no AS_SET). */
#define AS_REJECT 1u
#define AS_UNIT 2u
#define AS_SET 4u

/* An entry in the order a counted refusal reads it, from the start of a
   cache line: the interval and its count, the words of the kept text,
   what they were worked out from, and what the lookup compares (68
   bytes), then the name and the text side by side in one array (the
   text right after the name's NUL). A refusal of a name of 20 bytes
   with a text of 140 touches four cache lines of the entry, where the
   unaligned entry of 1.4.1, with 80 bytes before the name, touched four
   or five. The queue ID, written once an interval, comes last. */
typedef struct tracked {
  int64_t since_ms; /* when the current interval began */
  uint64_t more;    /* refusals counted in it */
  /* The words of the object's last refusal (obspamd_refusal), whose SMTP
     text is kept at chars + len + 1 when text_len is not 0. */
  int64_t limit, count, wait;
  int64_t retry_after, window; /* of the verdict they came from */
  int32_t kind; /* -1: the entry of the objects the table has no room for */
  uint16_t len; /* of the name */
  uint16_t text_len;  /* of the text; 0: none kept yet */
  uint16_t text_code; /* 451 or 550 */
  uint8_t how;        /* words.how */
  uint8_t as;         /* AS_*: the action and unit they came from */
  char chars[NAME_SIZE + OBSPAMD_REFUSAL_MAX + 1];
  char qid[64]; /* the queue ID of the first refusal counted, "" for none */
} __attribute__((aligned(64))) tracked;

/* The entries of a bad request's client, and the one of the clients the
   table has no room for. */
#define KIND_BAD 0x100
#define KIND_BAD_OTHERS -2

/* One table of coalesced lines, its lock and the seed of its hashes. */
typedef struct coalesced {
  pthread_mutex_t lock;
  uint64_t seed;
  int ntracked;
  tracked untracked;      /* kind -1 or KIND_BAD_OTHERS */
  uint64_t hashes[SLOTS]; /* 0: the slot is free */
  tracked table[SLOTS];
} coalesced;

static coalesced refusals = {.lock = PTHREAD_MUTEX_INITIALIZER,
                             .untracked = {.kind = -1}};
static coalesced bad = {.lock = PTHREAD_MUTEX_INITIALIZER,
                        .untracked = {.kind = KIND_BAD_OTHERS}};
static int interval_ms = OBSPAMD_REFUSAL_LOG_INTERVAL * 1000;

void obspamd_refusal_log_interval(int seconds) {
  __atomic_store_n(&interval_ms, seconds > 0 ? seconds * 1000 : 0,
                   __ATOMIC_RELAXED);
}

/* XXH3 over the name, seeded with a value drawn once per table and the
   kind; never 0, which marks a free slot. With t's lock held. */
static inline __attribute__((always_inline)) uint64_t
hash_of(coalesced *t, int kind, const char *name, size_t len) {
  uint64_t h;

  if (t->seed == 0) {
    struct timespec ts;

    if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) !=
        (ssize_t)sizeof(t->seed)) {
      clock_gettime(CLOCK_MONOTONIC, &ts);
      t->seed =
          (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec;
    }
    t->seed |= 1;
  }
  h = XXH3_64bits_withSeed(
      name, len, t->seed + (uint64_t)(kind & 0xff) * 0x9E3779B97F4A7C15ull);
  return h != 0 ? h : 1;
}

/* Milliseconds of CLOCK_MONOTONIC_COARSE (the clock of obspamd_now_ms,
   read at the last timer tick): every counted refusal reads it, and the
   few milliseconds it may lag are nothing to an interval of seconds. */
static int64_t coarse_ms(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A summary line, taken from its entry under the lock and written after
   it (by the flush): what summary() writes. */
typedef struct line {
  int kind;
  uint64_t more;
  int64_t seconds;
  char name[NAME_SIZE];
  char qid[sizeof(((tracked *)0)->qid)];
} line;

/* The summary line of e's interval: seconds is its length, or for a
   daemon that stops, what it has run of it rounded up. */
static void line_of(line *l, const tracked *e, int64_t seconds) {
  /* A client is named by the daemon ("uid 110"), an object by traffic. */
  const int flags = e->kind == KIND_BAD
                        ? OBSPAMD__CLEAN_UTF8
                        : OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8;

  l->kind = e->kind;
  l->more = e->more;
  l->seconds = seconds;
  obspamd__clean(l->name, sizeof(l->name), e->kind >= 0 ? e->chars : "-",
                 flags);
  obspamd__clean(l->qid, sizeof(l->qid), e->qid[0] != '\0' ? e->qid : "-",
                 flags);
}

static void line_write(const line *l) {
  if (l->kind == KIND_BAD || l->kind == KIND_BAD_OTHERS) {
    obspamd_log(LOG_WARNING,
                "%" PRIu64 " more bad request%s from %s in the last %" PRId64
                " s",
                l->more, l->more == 1 ? "" : "s",
                l->kind == KIND_BAD ? l->name : "other clients", l->seconds);
    return;
  }
  obspamd_log(LOG_NOTICE,
              "refuse kind=%s object=%s more=%" PRIu64 " seconds=%" PRId64
              " first_queue_id=%s",
              l->kind >= 0 ? obspamd_kind_name(l->kind) : "-", l->name, l->more,
              l->seconds, l->qid);
}

static void summary(const tracked *e, int64_t seconds) {
  line l;

  line_of(&l, e, seconds);
  line_write(&l);
}

/* Opens e's first interval at now_ms: its refusal is logged whole. */
static void open_first(tracked *e, int64_t now_ms) {
  e->since_ms = now_ms;
  e->more = 0;
  e->qid[0] = '\0';
}

/* Ends e's interval if now_ms is past it: logs its line when it counted
   refusals (or, when out is not NULL, puts it there, with out->more not
   0), and opens the next one. Returns 0 when e's episode goes on (the
   next interval follows a busy one), -1 when it is over (the interval,
   or the one after it, had no refusal). With lock held. */
static int roll(tracked *e, int64_t now_ms, int64_t every, line *out) {
  if (now_ms - e->since_ms < every)
    return 0;
  if (e->more == 0)
    return -1;
  if (out != NULL)
    line_of(out, e, every / 1000);
  else
    summary(e, every / 1000);
  e->since_ms += every;
  e->more = 0;
  e->qid[0] = '\0';
  return now_ms - e->since_ms < every ? 0 : -1;
}

/* Counts one refusal into e, in an interval running. */
static void count(tracked *e, const char *queue_id) {
  if (e->more++ == 0) {
    size_t n = queue_id != NULL ? strnlen(queue_id, sizeof(e->qid) - 1) : 0;

    memcpy(e->qid, queue_id != NULL ? queue_id : "", n);
    e->qid[n] = '\0';
  }
}

/* Counts a refusal of the object at now_ms (every: the interval, not 0)
   in table t, with its lock held. *counted: whether it was only counted
   (else its line is logged whole). Returns the object's entry, or NULL
   for an object the table has no room for. */
static inline __attribute__((always_inline)) tracked *
account(coalesced *t, int kind, const char *object, const char *queue_id,
        int64_t now_ms, int64_t every, int *counted) {
  size_t len = strnlen(object, NAME_SIZE - 1), i;
  uint64_t h = hash_of(t, kind, object, len);
  tracked *e;

  for (i = h % SLOTS;; i = (i + 1) % SLOTS) {
    e = &t->table[i];
    if (t->hashes[i] == 0)
      break;
    if (t->hashes[i] == h && e->kind == kind && e->len == len &&
        obspamd_same_bytes(e->chars, object, len)) {
      *counted = roll(e, now_ms, every, NULL) == 0;
      if (*counted)
        count(e, queue_id);
      else
        open_first(e, now_ms); /* a new episode, in the same slot */
      return e;
    }
  }
  if (t->ntracked >= TRACKED_MAX) {
    /* No room: the first of these in an interval is logged whole, which
       names its object; the others are only counted together. */
    *counted = t->untracked.since_ms != 0 &&
               roll(&t->untracked, now_ms, every, NULL) == 0;
    if (*counted)
      count(&t->untracked, queue_id);
    else
      open_first(&t->untracked, now_ms != 0 ? now_ms : 1);
    return NULL;
  }
  t->hashes[i] = h;
  e->kind = kind;
  e->len = (uint16_t)len;
  memcpy(e->chars, object, len);
  e->chars[len] = '\0';
  e->text_len = 0;
  e->as = 0;
  open_first(e, now_ms);
  t->ntracked++;
  *counted = 0;
  return e;
}

/* Whether the line of object (kind) at now_ms in table t was only
   counted. */
static int counted_in(coalesced *t, int kind, const char *object,
                      const char *queue_id, int64_t now_ms) {
  int64_t every = __atomic_load_n(&interval_ms, __ATOMIC_RELAXED);
  int counted;

  if (every == 0)
    return 0;
  if (now_ms < 0)
    now_ms = coarse_ms();
  pthread_mutex_lock(&t->lock);
  account(t, kind, object, queue_id, now_ms, every, &counted);
  pthread_mutex_unlock(&t->lock);
  return counted;
}

/* The words of a refusal (struct words). */
static inline void words_of(const obspam_verdict *v, const obspam_message *m,
                            int reject, int unit, words *w) {
  w->limit = v->limit;
  w->count = v->count;
  w->wait = v->retry_after < 0 ? -1
            : reject           ? 0
                               : obspamd__retry_shown(v->retry_after);
  w->how =
      (uint8_t)((v->window == OBSPAM_WINDOW_MINUTE ? WORDS_MINUTE
                 : v->window == OBSPAM_WINDOW_DAY  ? WORDS_DAY
                                                   : 0u) |
                (reject ? WORDS_REJECT : 0u) | (unit ? WORDS_UNIT : 0u) |
                (m != NULL && (m->flags & OBSPAM_MSG_SCRIPT) != 0 ? WORDS_SCRIPT
                                                                  : 0u) |
                (unsigned)obspamd_refusal_reason(v, m) << WORDS_REASON_AT);
}

/* Whether the words of e's text were worked out from what v and as
   give (AS_SET): then they are v's. */
static inline int same_as(const tracked *e, const obspam_verdict *v,
                          unsigned as) {
  return e->as == as && as != 0 && e->limit == v->limit &&
         e->count == v->count && e->retry_after == v->retry_after &&
         e->window == v->window;
}

int obspamd__refusal_counted(int kind, const char *object, const char *queue_id,
                             int64_t now_ms) {
  return counted_in(&refusals, kind, object, queue_id, now_ms);
}

int obspamd_bad_request_counted(const char *client, int64_t now_ms) {
  return counted_in(&bad, KIND_BAD, client, NULL, now_ms);
}

/* Whether e's text was written for words w. */
static int same_words(const tracked *e, const words *w) {
  return e->text_len != 0 && e->limit == w->limit && e->count == w->count &&
         e->wait == w->wait && e->how == w->how;
}

/* obspamd_refusal at now_ms (-1: the clock); held: whether the caller
   holds the lock (obspamd_refusals_hold). */
static inline __attribute__((always_inline)) size_t
refusal(const obspam_verdict *v, const obspam_message *m, int reject, int unit,
        const char *queue_id, int *code, char *buf, size_t size, int64_t now_ms,
        int held) {
  int64_t every = __atomic_load_n(&interval_ms, __ATOMIC_RELAXED);
  int counted = 0;
  unsigned as;
  tracked *e;
  size_t n;

  if (size == 0)
    return 0;
  if (every == 0) {
    obspamd_refusal_text_msg(v, m, reject, unit, code, buf, size);
    obspamd__refusal_line(v, m, unit, queue_id);
    return strlen(buf);
  }
  as = m != NULL && (m->flags & OBSPAM_MSG_SCRIPT) != 0
           ? 0u
           : AS_SET | (reject ? AS_REJECT : 0u) | (unit ? AS_UNIT : 0u);
  if (now_ms < 0)
    now_ms = coarse_ms();
  if (!held)
    pthread_mutex_lock(&refusals.lock);
  e = account(&refusals, v->kind, v->object, queue_id, now_ms, every, &counted);
  if (e != NULL && !same_as(e, v, as)) {
    words w;

    words_of(v, m, reject, unit, &w);
    if (!same_words(e, &w)) {
      /* The words changed (for the wait: once a second under a minute,
         else once a minute at most): the text is written again. */
      char *text = e->chars + e->len + 1;
      int text_code;

      obspamd_refusal_text_msg(v, m, reject, unit, &text_code, text,
                               OBSPAMD_REFUSAL_MAX + 1);
      e->text_code = (uint16_t)text_code;
      e->text_len = (uint16_t)strlen(text);
      e->limit = w.limit;
      e->count = w.count;
      e->wait = w.wait;
      e->how = w.how;
    }
    e->retry_after = v->retry_after;
    e->window = v->window;
    e->as = (uint8_t)as;
  }
  if (e != NULL) {
    n = e->text_len < size - 1 ? e->text_len : size - 1;
    memcpy(buf, e->chars + e->len + 1, n);
    buf[n] = '\0';
    if (code != NULL)
      *code = e->text_code;
  }
  if (!held)
    pthread_mutex_unlock(&refusals.lock);
  if (e == NULL) {
    obspamd_refusal_text_msg(v, m, reject, unit, code, buf, size);
    n = strlen(buf);
  }
  if (!counted)
    obspamd__refusal_line(v, m, unit, queue_id);
  return n;
}

size_t obspamd_refusal(const obspam_verdict *v, const obspam_message *m,
                       int reject, int unit, const char *queue_id, int *code,
                       char *buf, size_t size) {
  return refusal(v, m, reject, unit, queue_id, code, buf, size, -1, 0);
}

size_t obspamd__refusal_at(const obspam_verdict *v, const obspam_message *m,
                           int reject, int unit, const char *queue_id,
                           int *code, char *buf, size_t size, int64_t now_ms) {
  return refusal(v, m, reject, unit, queue_id, code, buf, size, now_ms, 0);
}

void obspamd_refusals_hold(void) { pthread_mutex_lock(&refusals.lock); }

void obspamd_refusals_release(void) { pthread_mutex_unlock(&refusals.lock); }

size_t obspamd_refusal_held(const obspam_verdict *v, const obspam_message *m,
                            int reject, int unit, const char *queue_id,
                            int *code, char *buf, size_t size, int64_t now_ms) {
  return refusal(v, m, reject, unit, queue_id, code, buf, size, now_ms, 1);
}

/* Frees slot i of t and moves back the entries of its probe run that
   would no longer be found past the hole. With t's lock held. */
static void remove_slot(coalesced *t, size_t i) {
  size_t j = i;

  t->hashes[i] = 0;
  for (;;) {
    size_t home;

    j = (j + 1) % SLOTS;
    if (t->hashes[j] == 0)
      break;
    home = t->hashes[j] % SLOTS;
    /* The entry at j stays when its home lies cyclically in (i, j]. */
    if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
      continue;
    t->table[i] = t->table[j];
    t->hashes[i] = t->hashes[j];
    t->hashes[j] = 0;
    i = j;
  }
  t->ntracked--;
}

/* What a daemon that stops at now_ms has run of e's interval, in seconds
   rounded up (at least 1). */
static int64_t partial_seconds(const tracked *e, int64_t now_ms) {
  int64_t ms = now_ms - e->since_ms;

  return ms > 1000 ? (ms + 999) / 1000 : 1;
}

/* Takes the lines of entry e, ending its interval at now_ms (or, with
   all, whatever it counted) into l (1 or 2 of them: the interval that
   ended and the one that runs); returns how many. Returns -1 in *over
   when e leaves the table. With lock held. */
static int take(tracked *e, int64_t now_ms, int64_t every, int all, line l[2],
                int *over) {
  int n = 0;

  l[0].more = 0;
  *over = !(every > 0 && roll(e, now_ms, every, &l[0]) == 0 && !all);
  n += l[0].more > 0;
  if (*over && e->more > 0)
    line_of(&l[n++], e, partial_seconds(e, now_ms));
  return n;
}

/* Lines taken under the lock at a time. The refusals of a flood wait for
   the lock (the policy server's loop among them): with thousands of
   objects, writing every line with it held kept them waiting for
   milliseconds, more on a busy machine. */
#define FLUSH_BATCH 16

static void flush(coalesced *t, int64_t now_ms, int64_t every, int all) {
  line lines[FLUSH_BATCH];
  size_t i = 0;
  int n, k, over, last = 0;

  while (!last) {
    n = 0;
    pthread_mutex_lock(&t->lock);
    /* Between two batches other threads may add entries, before slot i
       (the next flush sees them) or after it; only the flush removes
       any. */
    while (i < SLOTS && n + 2 <= FLUSH_BATCH) {
      if (t->hashes[i] == 0) {
        i++;
        continue;
      }
      n += take(&t->table[i], now_ms, every, all, &lines[n], &over);
      /* Over, or the end: the object leaves the table. The shift may
         bring another entry into slot i, which is looked at next. */
      if (over)
        remove_slot(t, i);
      else
        i++;
    }
    if (i == SLOTS && n + 2 <= FLUSH_BATCH) {
      last = 1;
      if (t->untracked.since_ms != 0) {
        n += take(&t->untracked, now_ms, every, all, &lines[n], &over);
        if (over)
          t->untracked.since_ms = 0;
      }
    }
    pthread_mutex_unlock(&t->lock);
    for (k = 0; k < n; k++)
      line_write(&lines[k]);
  }
}

void obspamd__refusals_flush(int64_t now_ms, int all) {
  int64_t every = __atomic_load_n(&interval_ms, __ATOMIC_RELAXED);

  flush(&refusals, now_ms, every, all);
  flush(&bad, now_ms, every, all);
}
