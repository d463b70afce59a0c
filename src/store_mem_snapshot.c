/* SPDX-License-Identifier: MIT */
/* The in-memory store's snapshot payload (its layout is in snapshot.c's
   opening comment): writing the counters, parsing them without touching
   the store, and installing a parsed state in one step. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "store_mem.h"

/* Strings in a snapshot: a u16 length, 0xffff for NULL. */
#define NO_STRING 0xffffu

static void put_string(obspam__buf *b, const char *s) {
  size_t n = s != NULL ? strlen(s) : 0;

  obspam__buf_u16(b, s != NULL ? (uint16_t)n : (uint16_t)NO_STRING);
  obspam__buf_put(b, s, n);
}

/* Most buckets are zero: only the others are written. */
static void save_counts(obspam__buf *b, const uint32_t *v) {
  uint8_t n = 0;
  int i;

  for (i = 0; v != NULL && i < WINDOW; i++)
    n = (uint8_t)(n + (v[i] != 0));
  obspam__buf_u8(b, n);
  for (i = 0; n > 0 && i < WINDOW; i++)
    if (v[i] != 0) {
      obspam__buf_u8(b, (uint8_t)i);
      obspam__buf_u32(b, v[i]);
    }
}

/* The same for the nb buckets of messages sent at v. */
static void save_sent(obspam__buf *b, const int64_t *v, int nb) {
  uint8_t n = 0;
  int i;

  for (i = 0; i < nb; i++)
    n = (uint8_t)(n + (v[i] != 0));
  obspam__buf_u8(b, n);
  for (i = 0; i < nb; i++)
    if (v[i] != 0) {
      obspam__buf_u8(b, (uint8_t)i);
      obspam__buf_i64(b, v[i]);
    }
}

static void save_buckets(obspam__buf *b, const ring *r) {
  save_sent(b, r->b_sent, WINDOW);
  save_counts(b, r->b_ref);
  save_counts(b, r->b_exc);
  obspam__buf_i64(b, r->tick);
  save_sent(b, r->b_min, TICKS);
}

/* One object's record, as the layout in snapshot.c gives it. */
static void put_record(obspam__buf *b, const hist *h) {
  const ring *r = h->owner->ring;
  uint32_t i;

  obspam__buf_u8(b, h->owner->kind);
  obspam__buf_u16(b, h->owner->len);
  obspam__buf_put(b, h->owner->name, h->owner->len);
  obspam__buf_i64(b, h->last_refused);
  obspam__buf_i64(b, h->np_start);
  obspam__buf_i64(b, h->np_end);
  obspam__buf_i64(b, h->np_sent);
  obspam__buf_i64(b, h->np_refused);
  obspam__buf_i64(b, h->np_exceeded);
  obspam__buf_i64(b, h->np_first);
  obspam__buf_i64(b, h->np_last);
  obspam__buf_i64(b, h->np_limit);
  obspam__buf_i64(b, h->np_window);
  obspam__buf_i64(b, h->last_reset);
  obspam__buf_i64(b, h->reset_base);
  obspam__buf_i64(b, h->uid);
  obspam__buf_u32(b, hist_len(h));
  for (i = 0; i < hist_len(h); i++) {
    const obspam__hour *rec = hist_rec(h, i);

    obspam__buf_i64(b, rec->hour);
    obspam__buf_i64(b, rec->sent);
    obspam__buf_i64(b, rec->refused);
    obspam__buf_i64(b, rec->exceeded);
    obspam__buf_i64(b, rec->first);
    obspam__buf_i64(b, rec->last);
    obspam__buf_i64(b, rec->window);
    obspam__buf_i64(b, rec->forwarded);
    obspam__buf_i64(b, rec->lists);
  }
  obspam__buf_u8(b, r != NULL);
  if (r != NULL) {
    obspam__buf_i64(b, r->minute);
    save_buckets(b, r);
  }
}

void obspam__mem_save_one(mem_store *m, hist *h) {
  put_record(m->save_buf, h);
  h->gen = m->gen;
  m->saved++;
}

static void put_pending(obspam__buf *b, const obspam__pending *list) {
  const obspam__pending *p;
  uint32_t count = 0;

  for (p = list; p != NULL; p = p->next)
    count++;
  obspam__buf_u32(b, count);
  for (p = list; p != NULL; p = p->next) {
    obspam__buf_u8(b, (uint8_t)p->kind);
    put_string(b, p->name);
    put_string(b, p->subscription);
    put_string(b, p->contact);
    obspam__buf_i64(b, p->limit);
    obspam__buf_i64(b, p->window);
    obspam__buf_i64(b, p->sent);
    obspam__buf_i64(b, p->refused);
    obspam__buf_i64(b, p->exceeded);
    obspam__buf_i64(b, p->first);
    obspam__buf_i64(b, p->last);
    obspam__buf_i64(b, p->period_start);
    obspam__buf_i64(b, p->period_end);
  }
}

/* How much one hold of the lock writes, at most, besides the record
   that crosses the bound: about a tenth of a millisecond of work, so
   that a decision waits no longer than that for a save. */
#define SLICE_RECORDS 256
#define SLICE_BYTES 65536

/* Between two slices: the threads that wait for the lock now take it
   first (mem_lock counts them), each once, for a millisecond at most, so
   that a steady stream of them cannot hold the save or the reload up for
   ever. Waiting until no thread waits would not do: threads that decide
   all the time wait for one another, and the save or the reload would
   give its turn away a thousand times a slice. */
void obspam__mem_let_waiters_in(mem_store *m) {
  int waiting = __atomic_load_n(&m->waiters, __ATOMIC_RELAXED), i;
  unsigned until = __atomic_load_n(&m->admitted, __ATOMIC_RELAXED) +
                   (unsigned)(waiting > 0 ? waiting : 0);

  for (i = 0;
       i < 1000 && __atomic_load_n(&m->waiters, __ATOMIC_RELAXED) > 0 &&
       (int)(until - __atomic_load_n(&m->admitted, __ATOMIC_RELAXED)) > 0;
       i++)
    sched_yield();
}

/* Grows b ahead to what the previous save wrote and a quarter more, so
   that the slices, under the lock, rarely copy the buffer to grow it. */
static void reserve(obspam__buf *b, size_t want) {
  uint8_t *grown;

  if (b->failed || want <= b->cap)
    return;
  grown = realloc(b->p, want);
  if (grown == NULL)
    return; /* the slices try again, a little at a time */
  b->p = grown;
  b->cap = want;
}

/* The state at the cut, taken without holding the lock for the whole
   write: the cut fixes what the snapshot holds (the time, the notices,
   which records exist), then the records are written a slice at a time,
   and a record that a charge, a sweep, a notice or a removal is about to
   change before its slice comes is written first, as it was (mem_keep).
   A record made after the cut carries the save's gen and is skipped.
   The records are therefore not all in the order of the list: the
   loader does not depend on it. */
void obspam__mem_save(obspam__store *s, obspam__buf *b, void (*cut)(void *ud),
                      void *ud) {
  mem_store *m = (mem_store *)s;
  obspam__buf notices = {NULL, 0, 0, 0};
  size_t at, start = b->len;
  int done = 0, k;
  hist *h;

  pthread_mutex_lock(&m->save_lock);
  reserve(b, start + m->save_hint + m->save_hint / 4);
  mem_lock(m);
  if (cut != NULL)
    cut(ud);
  m->gen++;
  m->saving = 1;
  m->save_buf = b;
  m->save_next = m->h_first;
  m->saved = 0;
  obspam__buf_i64(b, m->newest);
  at = b->len;
  obspam__buf_u32(b, 0); /* the count, known at the end */
  put_pending(&notices, m->pending);
  pthread_mutex_unlock(&m->lock);
  while (!done) {
    size_t from;

    mem_lock(m);
    from = b->len;
    for (k = 0; k < SLICE_RECORDS && b->len - from < SLICE_BYTES &&
                (h = m->save_next) != NULL;
         k++) {
      m->save_next = h->next;
      if (h->gen != m->gen)
        obspam__mem_save_one(m, h);
    }
    done = m->save_next == NULL;
    if (done) {
      m->saving = 0;
      m->save_buf = NULL;
    }
    pthread_mutex_unlock(&m->lock);
    obspam__mem_let_waiters_in(m);
  }
  if (!b->failed) {
    uint32_t n = m->saved;
    int i;

    for (i = 0; i < 4; i++)
      b->p[at + (size_t)i] = (uint8_t)(n >> (8 * i));
  }
  obspam__buf_put(b, notices.p, notices.len);
  b->failed |= notices.failed;
  free(notices.p);
  m->save_hint = b->len - start;
  pthread_mutex_unlock(&m->save_lock);
}

/* A parsed snapshot: state detached from any object, ready to install. */
typedef struct parsed_entry {
  int kind;
  char name[OBSPAM__SCRIPT_MAX + 1];
  size_t len;
  hist *h;
  ring *r;
  script *sc; /* for kind OBSPAM_SCRIPT: the new script object */
} parsed_entry;

typedef struct parsed {
  int64_t newest;
  uint32_t n;
  parsed_entry *e;
  obspam__pending *pending;
  /* The script index, built whole, so that installing it cannot fail. */
  obspam__index scripts;
  script *s_first, *s_last;
  uint32_t nscripts;
} parsed;

static void parsed_free(parsed *p) {
  uint32_t i;

  if (p == NULL)
    return;
  obspam__index_free(&p->scripts); /* its slots; the scripts go below */
  for (i = 0; i < p->n; i++) {
    if (p->e[i].h != NULL)
      free(p->e[i].h->h);
    free(p->e[i].h);
    if (p->e[i].r != NULL)
      free(p->e[i].r->b_exc);
    free(p->e[i].r);
    free(p->e[i].sc);
  }
  free(p->e);
  obspam__pending_free(p->pending);
  free(p);
}

/* Checks that a name read from a snapshot is what the library itself
   would have stored for that kind. */
static int name_ok(int kind, const char *name, size_t len) {
  obspam__name n;
  size_t i;

  if (kind == OBSPAM_SCRIPT) {
    if (len == 0)
      return 0;
    for (i = 0; i < len; i++)
      if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
        return 0;
    return 1;
  }
  return obspam__name_norm(name,
                           kind == OBSPAM_MAILBOX ? OBSPAM__NAME_MAILBOX
                                                  : OBSPAM__NAME_PLAIN,
                           &n) == NULL &&
         n.len == len && memcmp(n.s, name, len) == 0;
}

static int get_string(obspam__reader *r, char *buf, size_t max, int *null) {
  uint16_t len;
  const uint8_t *p;

  if (obspam__get_u16(r, &len) != 0)
    return -1;
  *null = len == NO_STRING;
  if (*null)
    return 0;
  if (len > max || (p = obspam__get_bytes(r, len)) == NULL ||
      memchr(p, '\0', len) != NULL)
    return -1;
  memcpy(buf, p, len);
  buf[len] = '\0';
  return 0;
}

/* Reads the i64 fields at v, in order; -1 when the input ends. */
static int get_all(obspam__reader *r, int64_t *const *v, int n) {
  int i;

  for (i = 0; i < n; i++)
    if (obspam__get_i64(r, v[i]) != 0)
      return -1;
  return 0;
}

/* Whether w is what format 3 may give as a window: seconds of one, or 0
   (the recipients cap, forbidden scripts, none). */
static int window_ok(int64_t w) {
  return w == 0 || obspam__window_index(w) >= 0;
}

/* Format 1 (1.0 to 1.2) did not know which refusals went over the
   object's own limit: its refusals load as refusals only, and what it
   kept of the first and last refusal of a subscription, domain or
   mailbox, which reports and notices now give for attempts over the
   limit, is dropped. A script's first and last refusal are kept.
   Formats 1 and 2 knew the hour window only: an attempt over the limit
   they kept was over the hour's. */
static const char *parse_hist(obspam__reader *r, hist *h, int64_t newest,
                              uint32_t version, int kind) {
  int64_t *const period[] = {&h->last_refused, &h->np_start,   &h->np_end,
                             &h->np_sent,      &h->np_refused, &h->np_exceeded,
                             &h->np_first,     &h->np_last,    &h->np_limit,
                             &h->np_window,    &h->last_reset, &h->reset_base,
                             &h->uid};
  int64_t *const period_v1[] = {&h->last_refused, &h->np_start,   &h->np_end,
                                &h->np_sent,      &h->np_refused, &h->np_first,
                                &h->np_last,      &h->np_limit};
  uint32_t n, i;
  int64_t prev = -1;

  if ((version == 1   ? get_all(r, period_v1, 8)
       : version == 2 ? get_all(r, period, 9)
       : version == 3 ? get_all(r, period, 10)
                      : get_all(r, period, 13)) ||
      obspam__get_u32(r, &n))
    return "truncated";
  if (version < 3)
    h->np_window = version == 2 && h->np_exceeded > 0 ? 3600 : 0;
  if (version < 4) {
    h->last_reset = h->reset_base = 0;
    h->uid = -1;
  }
  /* A reset is of a subscription, domain or mailbox; a uid a script's. */
  if (h->last_reset < 0 || h->last_reset > newest || h->reset_base < 0 ||
      h->reset_base > COUNT_MAX || h->uid < -1 ||
      (kind == OBSPAM_SCRIPT ? h->last_reset != 0 || h->reset_base != 0
                             : h->uid != -1))
    return "bad counters";
  /* Bounds far above what a real engine reaches, so that no sum of them
     can overflow. */
  if (h->np_sent > COUNT_MAX || h->np_refused > COUNT_MAX)
    return "bad counters";
  if (h->last_refused < 0 || h->last_refused > newest || h->np_start < 0 ||
      h->np_end < h->np_start || h->np_sent < 0 || h->np_refused < 0 ||
      h->np_exceeded < 0 || h->np_exceeded > h->np_refused || h->np_first < 0 ||
      h->np_last < h->np_first || h->np_limit < -1 || !window_ok(h->np_window))
    return "bad counters";
  /* An attempt over the limit has a time: reports give it (format 1 kept
     none, and its period's times are dropped below). */
  if (version > 1 && h->np_exceeded > 0 && h->np_first == 0)
    return "bad counters";
  if (version == 1)
    h->np_first = h->np_last = h->np_limit = 0;
  if (n > HOURS_MAX + 1)
    return "too many hours of history";
  h->cap = n > 4 ? n : 4;
  h->h = malloc(h->cap * sizeof(*h->h));
  if (h->h == NULL)
    return NULL;
  for (i = 0; i < n; i++) {
    obspam__hour *rec = &h->h[i];
    int64_t *const hour[] = {&rec->hour,     &rec->sent,      &rec->refused,
                             &rec->exceeded, &rec->first,     &rec->last,
                             &rec->window,   &rec->forwarded, &rec->lists};
    int64_t *const hour_v1[] = {&rec->hour, &rec->sent, &rec->refused,
                                &rec->first, &rec->last};

    rec->exceeded = rec->window = rec->forwarded = rec->lists = 0;
    if (version == 1   ? get_all(r, hour_v1, 5)
        : version <= 4 ? get_all(r, hour, 6 + (version >= 3))
                       : get_all(r, hour, 9))
      return "truncated";
    if (version == 2 && kind != OBSPAM_SCRIPT && rec->first != 0)
      rec->window = 3600;
    if (rec->sent > COUNT_MAX || rec->refused > COUNT_MAX ||
        rec->lists > COUNT_MAX)
      return "bad history";
    /* Forwards are part of sent; list deliveries need not be (exempt
       ones charge nothing). */
    if (rec->forwarded < 0 || rec->forwarded > rec->sent || rec->lists < 0)
      return "bad history";
    if (rec->hour < 0 || rec->hour % 3600 != 0 || rec->hour <= prev ||
        rec->hour > newest || rec->sent < 0 || rec->refused < 0 ||
        rec->exceeded < 0 || rec->exceeded > rec->refused || rec->first < 0 ||
        rec->last < rec->first || !window_ok(rec->window) ||
        (rec->exceeded > 0 && rec->first == 0))
      return "bad history";
    if (version == 1 && kind != OBSPAM_SCRIPT)
      rec->first = rec->last = 0;
    prev = rec->hour;
  }
  h->n = n;
  h->cur.hour = -1; /* the next charge makes the newest hour current */
  return NULL;
}

/* Reads one set of non-zero buckets: i64 ones into sent when it is not
   NULL, else u32 ones into *counts (allocated when it is NULL and the set
   is not empty). Their sum is added to *sum. */
static const char *parse_buckets(obspam__reader *r, int nb, int64_t *sent,
                                 uint32_t **counts, int64_t *sum, int *nomem) {
  uint8_t n, i, prev = 0;
  int k;

  if (obspam__get_u8(r, &n))
    return "truncated";
  if (n > nb)
    return "bad window";
  if (sent == NULL && n > 0 && *counts == NULL &&
      (*counts = calloc(WINDOW, sizeof(**counts))) == NULL) {
    *nomem = 1;
    return "out of memory";
  }
  for (k = 0; k < n; k++) {
    int64_t v64 = 0;
    uint32_t v32 = 0;

    if (obspam__get_u8(r, &i) ||
        (sent != NULL ? obspam__get_i64(r, &v64) : obspam__get_u32(r, &v32)))
      return "truncated";
    /* Rising indexes, no zero values, no sum that could overflow. */
    if (i >= nb || (k > 0 && i <= prev) ||
        (sent != NULL ? v64 <= 0 || v64 > COUNT_MAX : v32 == 0))
      return "bad window";
    prev = i;
    if (sent != NULL) {
      sent[i] = v64;
      *sum += v64;
    } else {
      (*counts)[i] = v32;
      *sum += v32;
    }
  }
  return NULL;
}

/* Reads a ring into a new one at *out, which the caller frees, whatever
   the answer. */
static const char *parse_ring(obspam__reader *r, ring **out, int64_t newest,
                              uint32_t version, int *nomem) {
  ring *g = *out = calloc(1, sizeof(*g));
  uint32_t *ref;
  const char *why;
  int i;

  if (g == NULL) {
    *nomem = 1;
    return "out of memory";
  }
  ref = g->b_ref;
  if (obspam__get_i64(r, &g->minute))
    return "truncated";
  if (g->minute < 0 || g->minute > newest / 60)
    return "bad window";
  /* The sums are derived, never read from the file. */
  why = parse_buckets(r, WINDOW, g->b_sent, NULL, &g->sent, nomem);
  if (why == NULL)
    why = parse_buckets(r, WINDOW, NULL, &ref, &g->refused, nomem);
  if (why == NULL && version >= 2)
    why = parse_buckets(r, WINDOW, NULL, &g->b_exc, &g->exceeded, nomem);
  for (i = 0; why == NULL && g->b_exc != NULL && i < WINDOW; i++)
    if (g->b_exc[i] > g->b_ref[i])
      why = "bad window"; /* more over the limit than refused */
  /* Before format 3 there was no minute window: it starts empty. */
  if (why == NULL && version >= 3) {
    if (obspam__get_i64(r, &g->tick))
      return "truncated";
    /* The minute window's newest bucket is within the hour window's
       newest minute, as a charge leaves them. */
    if (g->tick < 0 || g->tick > newest / TICK ||
        g->tick / (60 / TICK) > g->minute)
      return "bad window";
    why = parse_buckets(r, TICKS, g->b_min, NULL, &g->m_sent, nomem);
  }
  return why;
}

static const char *parse_entry(obspam__reader *r, parsed *p, parsed_entry *e,
                               int64_t newest, uint32_t version, int *nomem) {
  const uint8_t *bytes;
  const char *why;
  uint16_t len;
  uint8_t kind, has_ring;

  if (obspam__get_u8(r, &kind) || obspam__get_u16(r, &len))
    return "truncated";
  if (kind < OBSPAM_SUBSCRIPTION || kind > OBSPAM_SCRIPT ||
      len > (kind == OBSPAM_SCRIPT ? OBSPAM__SCRIPT_MAX : OBSPAM_NAME_MAX))
    return "bad object";
  if ((bytes = obspam__get_bytes(r, len)) == NULL)
    return "truncated";
  memcpy(e->name, bytes, len);
  e->name[len] = '\0';
  e->len = len;
  e->kind = kind;
  if (memchr(bytes, '\0', len) != NULL || !name_ok(kind, e->name, len))
    return "bad object name";
  e->h = calloc(1, sizeof(*e->h));
  if (e->h == NULL)
    goto nomem;
  why = parse_hist(r, e->h, newest, version, kind);
  if (why != NULL)
    return why;
  if (e->h->h == NULL)
    goto nomem;
  /* The store keeps no notification period for a script path. */
  if (kind == OBSPAM_SCRIPT &&
      (e->h->np_start != 0 || e->h->np_end != 0 || e->h->np_sent != 0 ||
       e->h->np_refused != 0 || e->h->np_exceeded != 0 || e->h->np_first != 0 ||
       e->h->np_last != 0 || e->h->np_limit != 0))
    return "bad object";
  if (obspam__get_u8(r, &has_ring))
    return "truncated";
  if (has_ring > 1 || (has_ring && kind == OBSPAM_SCRIPT))
    return "bad window";
  if (has_ring && (why = parse_ring(r, &e->r, newest, version, nomem)) != NULL)
    return why;
  if (kind == OBSPAM_SCRIPT) {
    if (obspam__index_find(&p->scripts, e->name, len) != NULL)
      return "a script path appears twice";
    if (p->nscripts == OBSPAM__SCRIPTS_MAX)
      return "too many script paths";
    e->sc = obspam__mem_script_new(e->name, len);
    if (e->sc == NULL)
      goto nomem;
    if (obspam__index_reserve(&p->scripts) != 0) {
      free(e->sc);
      e->sc = NULL;
      goto nomem;
    }
    obspam__index_put(&p->scripts, &e->sc->obj);
    LIST_APPEND(p->s_first, p->s_last, e->sc, lprev, lnext);
    p->nscripts++;
  }
  return NULL;
nomem:
  *nomem = 1;
  return "out of memory";
}

/* Format 1's notices were made for every refused object, over its own
   limit or not: they are read and dropped. */
static const char *parse_pending(obspam__reader *r, parsed *p, uint32_t version,
                                 int *nomem) {
  char name[OBSPAM_NAME_MAX + 1], sub[OBSPAM_NAME_MAX + 1],
      contact[OBSPAM_NAME_MAX + 1];
  int no_name, no_sub, no_contact;
  obspam__pending **tail = &p->pending;
  uint32_t n, i;
  uint8_t kind;

  if (obspam__get_u32(r, &n))
    return "truncated";
  for (i = 0; i < n; i++) {
    obspam__pending *q;

    if (obspam__get_u8(r, &kind) ||
        get_string(r, name, OBSPAM_NAME_MAX, &no_name) ||
        get_string(r, sub, OBSPAM_NAME_MAX, &no_sub) ||
        get_string(r, contact, OBSPAM_NAME_MAX, &no_contact))
      return "truncated or bad notice";
    if (kind < OBSPAM_SUBSCRIPTION || kind > OBSPAM_MAILBOX || no_name ||
        !name_ok(kind, name, strlen(name)))
      return "bad notice";
    q = obspam__mem_pending_new(NULL, kind, name, no_sub ? NULL : sub,
                                no_contact ? NULL : contact);
    if (q == NULL) {
      *nomem = 1;
      return "out of memory";
    }
    *tail = q; /* in the file's order, so that a save writes it again */
    {
      int64_t *const v[] = {&q->limit,   &q->window,       &q->sent,
                            &q->refused, &q->exceeded,     &q->first,
                            &q->last,    &q->period_start, &q->period_end};
      int64_t *const v2[] = {&q->limit,        &q->sent,      &q->refused,
                             &q->exceeded,     &q->first,     &q->last,
                             &q->period_start, &q->period_end};
      int64_t *const v1[] = {&q->limit,     &q->sent, &q->refused,
                             &q->first,     &q->last, &q->period_start,
                             &q->period_end};

      if (version == 1   ? get_all(r, v1, 7)
          : version == 2 ? get_all(r, v2, 8)
                         : get_all(r, v, 9))
        return "truncated";
      if (version == 2)
        q->window = 3600;
    }
    if (q->period_end <= q->period_start || q->refused <= 0 ||
        !window_ok(q->window) ||
        (version >= 2 && (q->exceeded <= 0 || q->exceeded > q->refused ||
                          q->first <= 0 || q->last < q->first)))
      return "bad notice";
    if (version == 1) {
      *tail = NULL;
      free(q);
      continue;
    }
    tail = &q->next;
  }
  return NULL;
}

void *obspam__mem_load_parse(obspam__store *s, obspam__reader *r,
                             uint32_t version, const char **why, int *nomem) {
  parsed *p = calloc(1, sizeof(*p));
  uint32_t n, i;

  (void)s;
  *nomem = 0;
  *why = "out of memory";
  if (p == NULL) {
    *nomem = 1;
    return NULL;
  }
  if (obspam__get_i64(r, &p->newest) || obspam__get_u32(r, &n)) {
    *why = "truncated";
    goto fail;
  }
  if (p->newest < 0) {
    *why = "bad time";
    goto fail;
  }
  /* Each entry takes at least 73 bytes (81 in format 2, 89 from format 3
     on): a count beyond that is a lie. */
  if (n > (size_t)(r->end - r->p) / (version == 1   ? 73u
                                     : version == 2 ? 81u
                                                    : 89u)) {
    *why = "truncated";
    goto fail;
  }
  p->e = calloc(n ? n : 1, sizeof(*p->e));
  if (p->e == NULL) {
    *nomem = 1;
    goto fail;
  }
  for (i = 0; i < n; i++) {
    p->n = i + 1;
    *why = parse_entry(r, p, &p->e[i], p->newest, version, nomem);
    if (*why != NULL)
      goto fail;
  }
  *why = parse_pending(r, p, version, nomem);
  if (*why != NULL)
    goto fail;
  if (r->p != r->end) {
    *why = "trailing bytes";
    goto fail;
  }
  return p;
fail:
  parsed_free(p);
  return NULL;
}

int64_t obspam__mem_load_install(obspam__store *s, void *state,
                                 obspam__successor successor, void *ud) {
  mem_store *m = (mem_store *)s;
  parsed *p = state;
  int64_t newest = p->newest;
  obspam__pending **tail;
  uint32_t i;

  mem_lock(m);
  m->carry_ok = 0; /* a reload's preparation no longer holds */
  while (m->h_first != NULL)
    obspam__mem_drop(m, m->h_first->owner);
  while (m->s_first != NULL)
    obspam__mem_script_free(m, m->s_first);
  obspam__pending_free(m->pending);
  m->pending = NULL;
  if (p->newest > m->newest)
    m->newest = p->newest;
  obspam__index_free(&m->scripts);
  m->scripts = p->scripts;
  m->s_first = p->s_first;
  m->s_last = p->s_last;
  m->nscripts = p->nscripts;
  memset(&p->scripts, 0, sizeof(p->scripts));

  for (i = 0; i < p->n; i++) {
    parsed_entry *e = &p->e[i];
    obspam__obj *o;

    if (e->kind == OBSPAM_SCRIPT) {
      o = &e->sc->obj; /* already in the table */
      e->sc = NULL;
    } else {
      o = successor(e->kind, e->name, e->len, ud);
      if (o == NULL || o->hist != NULL)
        continue;
    }
    SET_PTR(o->hist, e->h);
    e->h->owner = o;
    e->h->gen = m->gen; /* not in a save in progress */
    LIST_APPEND(m->h_first, m->h_last, e->h, prev, next);
    if (e->h->np_exceeded > 0)
      obspam__mem_refused_link(m, e->h);
    e->h = NULL;
    if (e->r != NULL) {
      SET_PTR(o->ring, e->r);
      e->r->owner = o;
      LIST_APPEND(m->r_first, m->r_last, e->r, prev, next);
      e->r = NULL;
    }
  }
  tail = &m->pending;
  *tail = p->pending;
  p->pending = NULL;
  pthread_mutex_unlock(&m->lock);
  parsed_free(p);
  return newest;
}

int obspam__mem_load_each(obspam__store *s, void *state,
                          int (*fn)(int, const char *, size_t, void *),
                          void *ud) {
  const parsed *p = state;
  uint32_t i;
  int rc;

  (void)s;
  for (i = 0; i < p->n; i++)
    if ((rc = fn(p->e[i].kind, p->e[i].name, p->e[i].len, ud)) != 0)
      return rc;
  return 0;
}

void obspam__mem_load_discard(obspam__store *s, void *state) {
  (void)s;
  parsed_free(state);
}
