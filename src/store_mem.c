/* SPDX-License-Identifier: MIT */
/* The in-memory counter store.

   Each object that sent or was refused in the last hour has a ring of 60
   one-minute buckets, and beside them, in the same allocation, the
   minute window's twelve 5-second buckets; the sums of the buckets are
   kept beside them, so a check costs no loop. The day window (the clock
   hour of now and the 23 before) is read from the hourly history, which
   keeps at least those 24 hours whatever the retention. Rings sit on a list
   ordered by the minute they were last advanced to; every charge frees a few
   rings from the old end whose window has emptied, so an idle object holds no
   ring.

   Every object with any state (a ring, history, a notification period in
   progress) has a hist record, on a second list ordered by last activity;
   history is kept per clock hour in a small circular array, so it grows
   with the hours in which the object was active, never with the retention
   alone, and a hist record whose hours have all expired is freed the same
   way as an idle ring.

   Script paths are objects of their own (kind OBSPAM_SCRIPT) that only
   this store knows: an index of at most OBSPAM__SCRIPTS_MAX, the least
   recently used dropped first.

   One mutex guards everything here; a check-and-charge holds it for a few
   dozen instructions. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "store_mem.h"

/* ---- the window ---------------------------------------------------------- */

/* Moves a window of nb buckets b, whose newest bucket is newest and whose
   buckets sum to *sum, forward to bucket k > newest: empties the buckets
   that leave and takes them from *sum (sum_at, below, reads the same
   without changing it). */
static void drain(int64_t *b, int nb, int64_t newest, int64_t *sum, int64_t k) {
  int64_t j;

  if (k - newest >= nb) {
    memset(b, 0, (size_t)nb * sizeof(*b));
    *sum = 0;
    return;
  }
  for (j = newest + 1; j <= k; j++) {
    *sum -= b[j % nb];
    b[j % nb] = 0;
  }
}

/* Moves the ring forward to minute, emptying the buckets that leave. */
static void advance(ring *r, int64_t minute) {
  int64_t k;

  if (minute <= r->minute)
    return;
  drain(r->b_sent, WINDOW, r->minute, &r->sent, minute);
  if (minute - r->minute >= WINDOW) {
    memset(r->b_ref, 0, sizeof(r->b_ref));
    if (r->b_exc != NULL)
      memset(r->b_exc, 0, WINDOW * sizeof(*r->b_exc));
    r->refused = r->exceeded = 0;
  } else {
    for (k = r->minute + 1; k <= minute; k++) {
      int i = (int)(k % WINDOW);

      r->refused -= r->b_ref[i];
      r->b_ref[i] = 0;
      if (r->b_exc != NULL) {
        r->exceeded -= r->b_exc[i];
        r->b_exc[i] = 0;
      }
    }
  }
  r->minute = minute;
}

/* Frees the buckets of attempts over the limit once the window holds
   none. Not in advance: a charge keeps what it found until it is done. */
static void exc_trim(ring *r) {
  if (r != NULL && r->exceeded == 0 && r->b_exc != NULL) {
    free(r->b_exc);
    r->b_exc = NULL;
  }
}

/* What a window of nb buckets b, whose newest bucket is newest and whose
   buckets sum to sum, would hold at bucket k, without changing it. */
static int64_t sum_at(const int64_t *b, int nb, int64_t newest, int64_t sum,
                      int64_t k) {
  int64_t j;

  if (k <= newest)
    return sum;
  if (k - newest >= nb)
    return 0;
  for (j = newest + 1; j <= k; j++)
    sum -= b[j % nb];
  return sum;
}

/* What the hour window of r would hold sent at minute, and the minute
   window at tick: what a charge reads, at the start of the ring. */
static int64_t peek_sent(const ring *r, int64_t minute) {
  return sum_at(r->b_sent, WINDOW, r->minute, r->sent, minute);
}

static int64_t tick_peek(const ring *r, int64_t tick) {
  return sum_at(r->b_min, TICKS, r->tick, r->m_sent, tick);
}

/* The sums the window would hold at minute, without changing the ring. */
static void peek(const ring *r, int64_t minute, int64_t *sent, int64_t *refused,
                 int64_t *exceeded) {
  int64_t k;

  *sent = r->sent;
  *refused = r->refused;
  *exceeded = r->exceeded;
  if (minute <= r->minute)
    return;
  if (minute - r->minute >= WINDOW) {
    *sent = *refused = *exceeded = 0;
    return;
  }
  for (k = r->minute + 1; k <= minute; k++) {
    *sent -= r->b_sent[k % WINDOW];
    *refused -= r->b_ref[k % WINDOW];
    if (r->b_exc != NULL)
      *exceeded -= r->b_exc[k % WINDOW];
  }
}

/* Moves the minute window of r forward to tick, emptying the buckets
   that leave. */
static void tick_advance(ring *r, int64_t tick) {
  if (tick <= r->tick)
    return;
  drain(r->b_min, TICKS, r->tick, &r->m_sent, tick);
  r->tick = tick;
}

/* Advances r to minute. The ring list stays in the order of the rings'
   minutes by moving a ring to the end only when its minute changes, so a
   busy object costs no list work within a minute. */
static void ring_touch(mem_store *m, ring *r, int64_t minute) {
  if (minute <= r->minute)
    return;
  advance(r, minute);
  if (m->r_last != r) {
    LIST_UNLINK(m->r_first, m->r_last, r, prev, next);
    LIST_APPEND(m->r_first, m->r_last, r, prev, next);
  }
}

static void ring_free(mem_store *m, obspam__obj *o) {
  ring *r = o->ring;

  if (r == NULL)
    return;
  mem_keep(m, o->hist);
  LIST_UNLINK(m->r_first, m->r_last, r, prev, next);
  free(r->b_exc);
  free(r);
  SET_PTR(o->ring, NULL);
  if (o->hist != NULL)
    mem_set_ring(o->hist, NULL); /* and the object that shares it */
}

/* The wait of wait_in below when the window at t holds excess (> 0) more
   than fits: the seconds until the oldest buckets that hold the excess
   have left the window, nothing else being sent. Dropping the buckets of
   the window at bucket K up to k - 1 is the window at bucket k + nb - 1.

   Every refusal of a flood walks this, without a division. Only the
   buckets up to newest hold anything (those before the epoch, or before
   the window of newest, or after newest, when the buckets were not
   advanced to t, are empty): the walk starts at the first of them in t's
   window, and ends by newest at the latest, where the excess is used up.
   A mailbox flooding after it filled its hour mostly has empty buckets
   before the ones that hold its messages, so the walk passes empty ones
   four at a time, and the ring in its two straight runs.

   The window holds count (the sum of those buckets), so the bucket that
   uses the excess up is also the first, from newest down, below which
   more than count - excess would be left. When that is less than the
   excess, the walk goes down from newest instead: a flood refused after
   its object filled its window has an excess of one message in a window
   whose messages were all sent lately, and finds the bucket at once. */
static int64_t wait_walk(const int64_t *b, int nb, int64_t size, int64_t newest,
                         int64_t t, int64_t count, int64_t excess) {
  int64_t k, left;
  int i, end;

  k = t / size - (nb - 1);
  if (k < newest - (nb - 1))
    k = newest - (nb - 1);
  if (k < 0)
    k = 0;
  if (count - excess < excess) {
    int64_t keep = count - excess, j;

    for (j = newest, i = (int)(newest % nb); j >= k;
         j--, i = i > 0 ? i - 1 : nb - 1)
      if ((keep -= b[i]) < 0)
        return (j + nb) * size - t;
    /* The buckets hold less than count (they never do): walked up. */
  }
  /* Buckets k to newest: at most nb of them, from b[k % nb] on. */
  left = k <= newest ? newest - k + 1 : 0;
  i = (int)(k % nb);
  while (excess > 0 && left > 0) {
    end = nb - i < left ? nb : i + (int)left;
    k += end - i;
    left -= end - i;
    while (i + 4 <= end && (b[i] | b[i + 1] | b[i + 2] | b[i + 3]) == 0)
      i += 4;
    while (i < end && excess > 0)
      excess -= b[i++];
    /* Stopped early: k is one past the bucket that used the excess up. */
    k -= end - i;
    left += end - i;
    if (i == nb)
      i = 0;
  }
  return (k + nb - 1) * size - t;
}

/* Whether c more fits under limit where count is held. */
static inline int fits(int64_t count, int64_t c, int64_t limit) {
  return limit < 0 || count + c <= limit;
}

/* The wait (API.md step 5) in a window of nb buckets of size seconds,
   b[k % nb] holding bucket k up to the newest, newest, for c more under
   limit when the window holds count at t: 0 when it fits, -1 when c alone
   is over the limit, else wait_walk's. What fits answers here, so that
   the objects and windows that are not full cost no call. */
static inline int64_t wait_in(const int64_t *b, int nb, int64_t size,
                              int64_t newest, int64_t t, int64_t count,
                              int64_t c, int64_t limit) {
  if (fits(count, c, limit))
    return 0;
  if (c > limit)
    return -1;
  /* count > limit - c >= 0: the buckets hold the excess. */
  return wait_walk(b, nb, size, newest, t, count, count + c - limit);
}

/* The wait in the hour window (60 one-minute buckets) or the minute
   window (twelve 5-second ones) of r, NULL when the object has none: it
   then holds nothing, and count is 0. */
static int64_t wait_hour(const ring *r, int64_t t, int64_t count, int64_t c,
                         int64_t limit) {
  if (r == NULL)
    return limit >= 0 && c > limit ? -1 : 0;
  return wait_in(r->b_sent, WINDOW, 60, r->minute, t, count, c, limit);
}

static int64_t wait_minute(const ring *r, int64_t t, int64_t count, int64_t c,
                           int64_t limit) {
  if (r == NULL)
    return limit >= 0 && c > limit ? -1 : 0;
  return wait_in(r->b_min, TICKS, TICK, r->tick, t, count, c, limit);
}

/* ---- history ------------------------------------------------------------- */

/* The start of the newest hour with a record, or -1. */
static int64_t hist_newest(const hist *h) {
  if (h->cur.hour >= 0)
    return h->cur.hour;
  return h->n > 0 ? hist_at(h, h->n - 1)->hour : -1;
}

static void hist_prune(hist *h, int64_t cutoff) {
  while (h->n > 0 && hist_at(h, 0)->hour < cutoff) {
    h->head = (h->head + 1) % h->cap;
    h->n--;
  }
}

/* The first hour h keeps, seen from hour: the retention's, but never
   fewer than the day window's 24 hours. */
static int64_t keep_cutoff(int64_t hour, int64_t retention) {
  return obspam__hour_cutoff(hour,
                             retention > DAY_HOURS ? retention : DAY_HOURS);
}

/* The first clock hour of the day window of hour for h: 23 hours
   before, or the hour of its last reset when that is later. */
static int64_t day_from(const hist *h, int64_t hour) {
  int64_t from = hour - (DAY_HOURS - 1) * 3600;
  int64_t reset = obspam__hour_of(h->last_reset);

  return h->last_reset != 0 && reset > from ? reset : from;
}

/* What rec, a record of h, counts in a day window that holds it: its
   sent, less what its hour had sent before a reset in that hour. */
static int64_t day_sent(const hist *h, const obspam__hour *rec) {
  return h->last_reset != 0 && rec->hour == obspam__hour_of(h->last_reset)
             ? rec->sent - h->reset_base
             : rec->sent;
}

/* The index of the oldest record of h in the day window of hour (hist_len
   when none is). The records are in rising hours, so it walks back from
   the newest, at most 24 of them. */
static uint32_t day_first(const hist *h, int64_t hour) {
  int64_t from = day_from(h, hour);
  uint32_t i = hist_len(h);

  while (i > 0 && hist_rec(h, i - 1)->hour >= from)
    i--;
  return i;
}

/* Sent by h in the day window of hour, summed over its records. */
static __attribute__((noinline)) int64_t day_walk(const hist *h, int64_t hour) {
  int64_t sum = 0;
  uint32_t i;

  for (i = day_first(h, hour); i < hist_len(h); i++)
    sum += day_sent(h, hist_rec(h, i));
  return sum;
}

/* Sent by h in the day window of hour: the clock hour and the 23 before.
   Each charge asks it for every object, nearly always within the hour in
   progress: that answer is inline, the walk apart. */
static inline __attribute__((always_inline)) int64_t day_count(const hist *h,
                                                               int64_t hour) {
  if (h == NULL)
    return 0;
  if (h->cur.hour == hour)
    return h->day + h->cur.sent;
  return day_walk(h, hour);
}

/* Sets h->day for the hour in progress, once it has begun: what the day
   window holds besides the hour's sent (negative when a reset in that
   hour leaves out some of it). */
static void day_set(hist *h) {
  uint32_t i;

  h->day = day_sent(h, &h->cur) - h->cur.sent;
  for (i = day_first(h, h->cur.hour); i < h->n; i++)
    h->day += day_sent(h, hist_at(h, i));
}

/* The wait in the day window of h (NULL: none, holding nothing) at t,
   whose clock hour is hour: its buckets are the clock hours of the
   history. Dropping the hours up to X is the window whose newest hour is
   X + 23 hours, from X + 24 hours on. */
static int64_t wait_day(const hist *h, int64_t t, int64_t hour, int64_t count,
                        int64_t c, int64_t limit) {
  int64_t last = 0;
  uint32_t i, n;

  if (fits(count, c, limit))
    return 0;
  if (c > limit)
    return -1;
  /* count > limit - c >= 0: h holds it. */
  n = hist_len(h);
  for (i = day_first(h, hour); i < n && count + c > limit; i++) {
    count -= day_sent(h, hist_rec(h, i));
    last = hist_rec(h, i)->hour;
  }
  return last + DAY_HOURS * 3600 - t;
}

/* The list of records a reload resolves under the engine's lock. */
static void pending_add(mem_store *m, hist *h) {
  if (!h->pending) {
    LIST_APPEND(m->u_first, m->u_last, h, uprev, unext);
    h->pending = 1;
  }
}

static void pending_del(mem_store *m, hist *h) {
  if (h->pending) {
    LIST_UNLINK(m->u_first, m->u_last, h, uprev, unext);
    h->pending = 0;
  }
}

static hist *hist_get(mem_store *m, obspam__obj *o) {
  hist *h = o->hist;

  if (h == NULL) {
    h = calloc(1, sizeof(*h));
    if (h == NULL)
      return NULL;
    h->owner = o;
    h->cur.hour = -1;
    h->uid = -1;
    h->gen = m->gen; /* not in a save in progress */
    SET_PTR(o->hist, h);
    LIST_APPEND(m->h_first, m->h_last, h, prev, next);
    if (m->carry_phase == 1 && o->kind != OBSPAM_SCRIPT)
      pending_add(m, h); /* made after the reload's preparation saw it */
  }
  return h;
}

/* An hour in which nothing was charged or refused (one begun by a probe,
   or by notification accounting alone) is not kept. */
static int hour_empty(const obspam__hour *rec) {
  return rec->sent == 0 && rec->refused == 0 && rec->lists == 0;
}

/* Doubles the array of h (hist_room). Returns -1 when memory ran out. */
static __attribute__((noinline)) int hist_grow(hist *h) {
  obspam__hour *grown;
  uint32_t i, cap;

  cap = h->cap ? h->cap * 2 : 4;
  grown = malloc(cap * sizeof(*grown));
  if (grown == NULL)
    return -1;
  for (i = 0; i < h->n; i++)
    grown[i] = *hist_at(h, i);
  free(h->h);
  h->h = grown;
  h->head = 0;
  h->cap = cap;
  return 0;
}

/* Makes sure h can take hour as its hour in progress without allocating:
   the array grows when the hour in progress will have to move into it.
   Growing changes nothing that can be seen. Returns -1 when memory ran
   out. Inline for the charges within the hour in progress, which need no
   room. */
static inline __attribute__((always_inline)) int hist_room(hist *h,
                                                           int64_t hour) {
  if (h->cur.hour < 0 || h->cur.hour == hour || hour_empty(&h->cur) ||
      h->n < h->cap)
    return 0;
  return hist_grow(h);
}

/* hist_begin for a new hour. */
static __attribute__((noinline)) void
hist_move(mem_store *m, hist *h, int64_t hour, int64_t retention) {
  if (h->cur.hour < 0 && h->n > 0 && hist_at(h, h->n - 1)->hour == hour) {
    /* Loaded from a snapshot: the newest stored hour goes on. */
    h->cur = *hist_at(h, --h->n);
    day_set(h);
    return;
  }
  if (h->cur.hour >= 0 && !hour_empty(&h->cur)) {
    hist_prune(h, keep_cutoff(hour, retention));
    *hist_at(h, h->n++) = h->cur; /* hist_room made the room */
  }
  memset(&h->cur, 0, sizeof(h->cur));
  h->cur.hour = hour;
  day_set(h);
  if (m->h_last != h) {
    mem_unlinking(m, h);
    LIST_UNLINK(m->h_first, m->h_last, h, prev, next);
    LIST_APPEND(m->h_first, m->h_last, h, prev, next);
  }
}

/* Makes hour the hour in progress of h, after hist_room: the previous one
   moves into the array, and hours beyond the retention leave it. Within
   one hour it touches nothing but h itself, and the list of holders, kept
   in the order of their newest hour, changes only when a holder's hour
   does. Inline for the charges within the hour in progress, which change
   nothing. */
static inline __attribute__((always_inline)) void
hist_begin(mem_store *m, hist *h, int64_t hour, int64_t retention) {
  if (h->cur.hour != hour)
    hist_move(m, h, hour, retention);
}

static void refused_unlink(mem_store *m, hist *h) {
  hist *unused_last = NULL;

  if (h->nprev == NULL && m->refused != h)
    return; /* not on the list */
  LIST_UNLINK(m->refused, unused_last, h, nprev, nnext);
  (void)unused_last;
}

void obspam__mem_refused_link(mem_store *m, hist *h) {
  h->nprev = NULL;
  h->nnext = m->refused;
  if (m->refused != NULL)
    m->refused->nprev = h;
  m->refused = h;
}

static void hist_free(mem_store *m, obspam__obj *o) {
  hist *h = o->hist;

  if (h == NULL)
    return;
  mem_keep(m, h);
  mem_unlinking(m, h);
  refused_unlink(m, h);
  pending_del(m, h);
  LIST_UNLINK(m->h_first, m->h_last, h, prev, next);
  SET_PTR(h->owner->hist, NULL);
  if (h->mirror != NULL)
    SET_PTR(h->mirror->hist, NULL);
  free(h->h);
  free(h);
  SET_PTR(o->hist, NULL);
}

/* ---- notices ------------------------------------------------------------- */

void obspam__pending_free(obspam__pending *list) {
  while (list != NULL) {
    obspam__pending *next = list->next;

    free(list);
    list = next;
  }
}

static char *put_str(char **at, const char *s) {
  char *start = *at;
  size_t n = strlen(s) + 1;

  memcpy(start, s, n);
  *at += n;
  return start;
}

/* The size of a notice that holds strings of any length a name may have. */
#define SPARE_SIZE (sizeof(obspam__pending) + 3 * (OBSPAM_NAME_MAX + 1))

/* A notice with its own copies of the strings, in one allocation: a spare
   one when there is one, else a new one. */
obspam__pending *obspam__mem_pending_new(mem_store *m, int kind,
                                         const char *name, const char *sub,
                                         const char *contact) {
  size_t size = sizeof(obspam__pending) + strlen(name) + 1 +
                (sub ? strlen(sub) + 1 : 0) +
                (contact ? strlen(contact) + 1 : 0);
  obspam__pending *p;
  char *at;

  if (m != NULL && m->spare != NULL && size <= SPARE_SIZE) {
    p = m->spare;
    m->spare = p->next;
    m->nspare--;
    memset(p, 0, sizeof(*p));
  } else {
    p = calloc(1, size);
  }
  if (p == NULL)
    return NULL;
  at = (char *)(p + 1);
  p->kind = kind;
  p->name = put_str(&at, name);
  p->subscription = sub ? put_str(&at, sub) : NULL;
  p->contact = contact ? put_str(&at, contact) : NULL;
  return p;
}

/* A notice for the period in progress of h, allocated but not filled:
   np_close_with fills it and makes it pending. */
static obspam__pending *np_alloc(mem_store *m, const hist *h) {
  /* Once a reload swapped the trees, the new one names the subscription
     and its contact, even before the record's owner moved to it. */
  const obspam__obj *o =
      m->carry_phase == 2 && h->mirror != NULL ? h->mirror : h->owner;
  const obspam__sub *s = obspam__owner(o);

  return obspam__mem_pending_new(m, o->kind, o->name, s ? s->obj.name : NULL,
                                 s ? s->contact : NULL);
}

/* Clears the counts of the period in progress of h. */
static void np_clear(hist *h) {
  h->np_sent = h->np_refused = h->np_exceeded = 0;
  h->np_first = h->np_last = 0;
}

/* Turns the period in progress of h, which went over the limit, into the
   pending notice p (from np_alloc). Cannot fail. */
static void np_close_with(mem_store *m, hist *h, obspam__pending *p) {
  mem_keep(m, h);
  p->limit = h->np_limit;
  p->window = h->np_window;
  p->sent = h->np_sent;
  p->refused = h->np_refused;
  p->exceeded = h->np_exceeded;
  p->first = h->np_first;
  p->last = h->np_last;
  p->period_start = h->np_start;
  p->period_end = h->np_end;
  p->next = m->pending;
  m->pending = p;
  refused_unlink(m, h);
  np_clear(h);
}

/* np_close_with with a notice of its own. Returns -1 when memory ran out
   (h is left as it was). */
static int np_close(mem_store *m, hist *h) {
  obspam__pending *p = np_alloc(m, h);

  if (p == NULL)
    return -1;
  np_close_with(m, h, p);
  return 0;
}

/* Whether moving h into the period starting at start closes one that
   went over the limit, which needs a notice. */
static int np_closes(const hist *h, int64_t start, int64_t end) {
  return h->np_exceeded > 0 && (h->np_start != start || h->np_end != end);
}

/* Moves h into the notification period [start, end), closing the one in
   progress into p (allocated when np_closes said so). */
static void np_roll(mem_store *m, hist *h, int64_t start, int64_t end,
                    obspam__pending *p) {
  if (h->np_start == start && h->np_end == end)
    return;
  if (p != NULL)
    np_close_with(m, h, p);
  h->np_start = start;
  h->np_end = end;
  np_clear(h);
}

/* ---- scripts ------------------------------------------------------------- */

void obspam__mem_script_free(mem_store *m, script *sc) {
  ring_free(m, &sc->obj);
  hist_free(m, &sc->obj);
  obspam__index_del(&m->scripts, &sc->obj);
  LIST_UNLINK(m->s_first, m->s_last, sc, lprev, lnext);
  m->nscripts--;
  free(sc);
}

/* Drops what the store holds for o, a tree object or a script. */
void obspam__mem_drop(mem_store *m, obspam__obj *o) {
  if (o->kind == OBSPAM_SCRIPT) {
    obspam__mem_script_free(m, (script *)o);
    return;
  }
  ring_free(m, o);
  hist_free(m, o);
}

static script *script_find(mem_store *m, const char *path, size_t len) {
  return (script *)obspam__index_find(&m->scripts, path, len);
}

script *obspam__mem_script_new(const char *path, size_t len) {
  return (script *)obspam__obj_new(sizeof(script), OBSPAM_SCRIPT, path, len);
}

/* Adds sc to the table as the most recently used script. Returns -1
   (and frees sc) when memory ran out. */
static int script_insert(mem_store *m, script *sc) {
  if (obspam__index_reserve(&m->scripts) != 0) {
    free(sc);
    return -1;
  }
  obspam__index_put(&m->scripts, &sc->obj);
  LIST_APPEND(m->s_first, m->s_last, sc, lprev, lnext);
  m->nscripts++;
  return 0;
}

/* Drops the least recently used scripts beyond OBSPAM__SCRIPTS_MAX. */
static void script_evict(mem_store *m) {
  while (m->nscripts > OBSPAM__SCRIPTS_MAX)
    obspam__mem_script_free(m, m->s_first);
}

static void script_use(mem_store *m, script *sc) {
  if (m->s_last != sc) {
    LIST_UNLINK(m->s_first, m->s_last, sc, lprev, lnext);
    LIST_APPEND(m->s_first, m->s_last, sc, lprev, lnext);
  }
}

/* ---- sweeping ------------------------------------------------------------ */

/* Frees a few rings whose window is empty at minute, and a few hist
   records with nothing left within the retention. A record whose
   notification period went over the limit waits for the flush that turns
   it into a notice, so that sweeping never allocates. */
static int ring_stale(const ring *r, int64_t minute) {
  return r != NULL && r->minute <= minute - WINDOW;
}

static int hist_stale(const hist *h, int64_t cutoff) {
  return h != NULL && h->owner->ring == NULL && hist_newest(h) < cutoff;
}

static __attribute__((noinline)) void sweep_some(mem_store *m, int64_t minute,
                                                 int64_t cutoff) {
  hist *h, *next;
  int i;

  for (i = 0; i < SWEEP_PER_CALL && ring_stale(m->r_first, minute); i++)
    ring_free(m, m->r_first->owner);
  for (i = 0, h = m->h_first; i < SWEEP_PER_CALL && hist_stale(h, cutoff);
       i++, h = next) {
    next = h->next;
    if (h->np_exceeded == 0)
      obspam__mem_drop(m, h->owner);
  }
}

/* Each charge sweeps, and nearly always finds nothing to free: the test
   of the oldest ring and record is inline. */
static inline __attribute__((always_inline)) void
sweep(mem_store *m, int64_t minute, int64_t cutoff) {
  if (ring_stale(m->r_first, minute) || hist_stale(m->h_first, cutoff))
    sweep_some(m, minute, cutoff);
}

/* ---- the store interface ------------------------------------------------- */

/* A refusal of the ith charged object in its notification period: an
   attempt over its own limit is what a notice is about. */
static inline __attribute__((always_inline)) void
np_refusal(mem_store *m, obspam__charge *ch, int i, int64_t t) {
  hist *h = ch->obj[i]->hist;

  h->np_refused++;
  ch->first_exceeded[i] = 0;
  if (obspam__exceeded(ch, i)) {
    ch->first_exceeded[i] = h->np_exceeded == 0;
    if (h->np_exceeded++ == 0) {
      h->np_first = t;
      obspam__mem_refused_link(m, h);
    }
    h->np_last = t;
    h->np_limit = obspam__over_limit(ch, i);
    h->np_window = obspam__over_seconds(ch, i);
  }
  ch->period_sent[i] = h->np_sent;
  ch->period_refused[i] = h->np_refused;
}

/* Records an attempt in an hour of history; over says whether it is one
   the report lists (first and last), and window is its window. */
static void hour_refusal(obspam__hour *rec, int over, int64_t window,
                         int64_t t) {
  rec->refused++;
  if (over) {
    if (rec->first == 0)
      rec->first = t;
    rec->last = t;
    rec->window = window;
  }
}

static void charge_refusal(mem_store *m, obspam__charge *ch, int i, int64_t t,
                           int slot, uint32_t *exc) {
  obspam__obj *o = ch->obj[i];
  ring *r = o->ring;
  hist *h = o->hist;
  int over = obspam__exceeded(ch, i);

  r->b_ref[slot]++;
  r->refused++;
  if (over) {
    if (r->b_exc == NULL)
      r->b_exc = exc; /* prepare allocated it */
    r->b_exc[slot]++;
    r->exceeded++;
    h->cur.exceeded++;
  }
  hour_refusal(&h->cur, over, over ? obspam__over_seconds(ch, i) : 0, t);
  h->last_refused = t;
  np_refusal(m, ch, i, t);
}

/* Adds c to the count *v, saturating at COUNT_MAX; returns what it
   added. */
static int64_t add_count(int64_t *v, int64_t c) {
  if (c > COUNT_MAX - *v)
    c = COUNT_MAX - *v;
  *v += c;
  return c;
}

static void charge_accept(obspam__charge *ch, int i, int slot, int tslot) {
  ring *r = ch->obj[i]->ring;

  /* A window's sum is the sum of its buckets, as the loader derives it. */
  r->sent += add_count(&r->b_sent[slot], ch->c);
  r->m_sent += add_count(&r->b_min[tslot], ch->c);
  add_count(&ch->obj[i]->hist->cur.sent, ch->c);
  add_count(&ch->obj[i]->hist->np_sent, ch->c);
  if (ch->marks & OBSPAM__MARK_FORWARD)
    add_count(&ch->obj[i]->hist->cur.forwarded, ch->c);
  if (ch->marks & OBSPAM__MARK_LIST)
    add_count(&ch->obj[i]->hist->cur.lists, ch->c);
}

static void charge_script(script *sc, const obspam__charge *ch, int64_t t) {
  hist *h = sc->obj.hist;

  h->uid = ch->uid;
  if (ch->refuser >= 0) {
    hour_refusal(&h->cur, 1, 0, t);
    h->last_refused = t;
  } else {
    add_count(&h->cur.sent, ch->c);
  }
}

/* The answer to a charge at t, changing nothing: each object's count and
   wait, then the verdict's object and retry hint. A wait is worked out
   only where the message does not fit, and the judge is told which
   waits are not 0, so that it need not look at the others.

   Returns which objects are not warm (bit i for obj[i]) and which have
   no buckets of attempts over the limit (bit 3 + i). An object is warm
   when its ring and record are in minute, hour and the notification
   period [start, end) already: a charge then has nothing to allocate
   for it and nothing to move on (charge_locked), and its counts of the
   hour and the day are its ring's and its record's sums as they stand.
   long_way: every count worked out as for an object that is not warm
   (the tests that compare the two). */
static unsigned answer(obspam__charge *ch, int64_t t, int64_t minute,
                       int64_t tick, int64_t hour, int64_t start, int64_t end,
                       int long_way) {
  int64_t c = ch->c, *count, *wait;
  const int64_t *limit;
  unsigned over = 0, bit = 1, cold = 0; /* bit: the minute's of object i */
  int i;

  for (i = 0; i < ch->n; i++, bit <<= OBSPAM__WINDOWS) {
    const ring *r = ch->obj[i]->ring;
    const hist *h = ch->obj[i]->hist;
    int warm = 0;

    if (r == NULL || h == NULL || r->minute != minute || h->cur.hour != hour ||
        h->np_start != start || h->np_end != end) {
      cold |= 1u << i;
    } else {
      warm = !long_way;
      if (r->b_exc == NULL)
        cold |= 8u << i;
    }
    count = ch->count[i];
    wait = ch->wait[i];
    limit = ch->limit[i];
    if (warm) {
      /* The ring is in minute and the record in hour: what peek_sent and
         day_count would find at once. */
      count[OBSPAM__W_HOUR] = r->sent;
      count[OBSPAM__W_MINUTE] = tick_peek(r, tick);
      count[OBSPAM__W_DAY] = h->day + h->cur.sent;
    } else {
      count[OBSPAM__W_MINUTE] = count[OBSPAM__W_HOUR] = 0;
      if (r != NULL) {
        count[OBSPAM__W_HOUR] = peek_sent(r, minute);
        count[OBSPAM__W_MINUTE] = tick_peek(r, tick);
      }
      count[OBSPAM__W_DAY] = day_count(h, hour);
    }
    wait[OBSPAM__W_MINUTE] = wait[OBSPAM__W_HOUR] = wait[OBSPAM__W_DAY] = 0;
    if (!fits(count[OBSPAM__W_MINUTE], c, limit[OBSPAM__W_MINUTE]) &&
        (wait[OBSPAM__W_MINUTE] = wait_minute(r, t, count[OBSPAM__W_MINUTE], c,
                                              limit[OBSPAM__W_MINUTE])) != 0)
      over |= bit << OBSPAM__W_MINUTE;
    if (!fits(count[OBSPAM__W_HOUR], c, limit[OBSPAM__W_HOUR]) &&
        (wait[OBSPAM__W_HOUR] = wait_hour(r, t, count[OBSPAM__W_HOUR], c,
                                          limit[OBSPAM__W_HOUR])) != 0)
      over |= bit << OBSPAM__W_HOUR;
    if (!fits(count[OBSPAM__W_DAY], c, limit[OBSPAM__W_DAY]) &&
        (wait[OBSPAM__W_DAY] = wait_day(h, t, hour, count[OBSPAM__W_DAY], c,
                                        limit[OBSPAM__W_DAY])) != 0)
      over |= bit << OBSPAM__W_DAY;
  }
  memset(ch->first_exceeded, 0, sizeof(ch->first_exceeded));
  obspam__judge_over(ch, over);
  return cold;
}

/* What a charge allocates before it changes anything. */
typedef struct prepared {
  ring *ring[3];              /* new rings, not yet attached */
  uint32_t *exc[3];           /* buckets of attempts over the limit */
  obspam__pending *notice[3]; /* notices of periods the charge closes */
  int new_hist[3];            /* hist records this charge created */
  script *sc;                 /* the script, found or new */
  int new_script;
} prepared;

/* Undoes prepare: frees what it allocated, drops what it created. */
static void unprepare(mem_store *m, obspam__charge *ch, prepared *p) {
  int i;

  for (i = 0; i < ch->n; i++) {
    free(p->ring[i]);
    free(p->exc[i]);
    free(p->notice[i]);
    if (p->new_hist[i])
      hist_free(m, ch->obj[i]);
  }
  if (p->new_script)
    obspam__mem_script_free(m, p->sc);
}

/* The first phase of a charge, after its answer: every allocation it may
   need, and nothing that can be seen. Returns -1 (with everything undone)
   when memory ran out. */
static int prepare(mem_store *m, obspam__charge *ch, int64_t hour,
                   int64_t start, prepared *p) {
  int i;

  memset(p, 0, sizeof(*p));
  for (i = 0; i < ch->n; i++) {
    obspam__obj *o = ch->obj[i];
    hist *h = o->hist;

    if (h == NULL) {
      p->new_hist[i] = 1;
      if ((h = hist_get(m, o)) == NULL)
        goto nomem;
    }
    if (hist_room(h, hour) != 0)
      goto nomem;
    if (np_closes(h, start, start + ch->period) &&
        (p->notice[i] = np_alloc(m, h)) == NULL)
      goto nomem;
    if (!ch->notify_only && o->ring == NULL &&
        (p->ring[i] = calloc(1, sizeof(ring))) == NULL)
      goto nomem;
    if (!ch->notify_only && ch->refuser >= 0 && obspam__exceeded(ch, i) &&
        (o->ring == NULL || o->ring->b_exc == NULL) &&
        (p->exc[i] = calloc(WINDOW, sizeof(uint32_t))) == NULL)
      goto nomem;
  }
  if (ch->script != NULL && !ch->notify_only) {
    p->sc = script_find(m, ch->script, ch->script_len);
    if (p->sc == NULL) {
      p->sc = obspam__mem_script_new(ch->script, ch->script_len);
      if (p->sc == NULL || script_insert(m, p->sc) != 0) {
        p->sc = NULL;
        goto nomem;
      }
      p->new_script = 1;
    }
    if (hist_get(m, &p->sc->obj) == NULL ||
        hist_room(p->sc->obj.hist, hour) != 0)
      goto nomem;
  }
  return 0;
nomem:
  unprepare(m, ch, p);
  return -1;
}

/* The notification accounting of a decision another store made (the
   shared store decides; each node notifies about what it decided). After
   prepare; cannot fail. */
static void notify_only(mem_store *m, obspam__charge *ch, int64_t hour,
                        int64_t start, prepared *p) {
  int i;

  if (ch->t > m->newest)
    m->newest = ch->t;
  ch->period_start = start;
  for (i = 0; i < ch->n; i++) {
    hist *h = ch->obj[i]->hist;

    /* The hour in progress keeps the record in its place among the
       holders; an empty one is never stored. */
    hist_begin(m, h, hour, ch->retention);
    np_roll(m, h, start, start + ch->period, p->notice[i]);
    ch->first_exceeded[i] = 0;
    if (ch->refuser >= 0)
      np_refusal(m, ch, i, ch->t);
    else if (!ch->probe)
      add_count(&h->np_sent, ch->c);
  }
  sweep(m, ch->t / 60, keep_cutoff(hour, ch->retention));
}

/* A charge reads three places of each object: the start of the ring
   (the sums and the bucket of the minute window), the hour window's
   bucket of the minute and the hot part of the hist record. Asked for
   together, their cache misses overlap instead of following one another.
   tick is the 5-second bucket, or -1 when only the minute is known: then
   every line of the minute window is asked for. Safe without the lock
   (see SET_PTR). */
static void prefetch(obspam__obj *const *obj, int n, int64_t minute,
                     int64_t tick) {
  int i;

  for (i = 0; i < n; i++) {
    const ring *r = __atomic_load_n(&obj[i]->ring, __ATOMIC_RELAXED);
    const hist *h = __atomic_load_n(&obj[i]->hist, __ATOMIC_RELAXED);

    if (r != NULL) {
      OBSPAM__PREFETCH(r);
      if (tick >= 0) {
        OBSPAM__PREFETCH(&r->b_min[tick % TICKS]);
      } else {
        /* r, r + 64 and r + 127 are in every line the first 128 bytes
           (up to the end of b_min) touch, however r is aligned. */
        OBSPAM__PREFETCH((const char *)r + 64);
        OBSPAM__PREFETCH((const char *)(r->b_min + TICKS) - 1);
      }
      OBSPAM__PREFETCH(&r->b_sent[minute % WINDOW]);
    }
    if (h != NULL) {
      OBSPAM__PREFETCH(h);
      OBSPAM__PREFETCH(&h->cur.sent); /* the end of the hot part */
    }
  }
}

/* The records of a batch (mem_charge_many) that wait for its end, to be
   handed to the journal under one hold of its lock (store.h,
   record_many); NULL for a charge made alone. RECORDS: how many wait at
   most, as many as a batch of the engine's has charges. */
#define RECORDS 8
typedef struct recorder {
  const obspam__charge *ch[RECORDS];
  int n;
} recorder;

static void record_flush(recorder *rec) {
  if (rec->n > 0)
    rec->ch[0]->record_many(rec->ch[0]->record_ud, rec->ch, rec->n);
  rec->n = 0;
}

/* Records ch, a charge just made (ch->record is set), at once or with the
   records of its batch that share its batch form, in the same order. */
static inline __attribute__((always_inline)) void
record(recorder *rec, const obspam__charge *ch) {
  if (rec == NULL || ch->record_many == NULL) {
    if (rec != NULL)
      record_flush(rec);
    ch->record(ch->record_ud, ch);
    return;
  }
  if (rec->n == RECORDS ||
      (rec->n > 0 && (rec->ch[0]->record_many != ch->record_many ||
                      rec->ch[0]->record_ud != ch->record_ud)))
    record_flush(rec);
  rec->ch[rec->n++] = ch;
}

/* A reset of ch->obj[0] at t (>= the newest time), with the lock held:
   its minute and hour windows go with its ring; its day window starts
   at t. The history keeps every hour, and the hour in progress the
   record of the reset. */
static int reset_locked(mem_store *m, obspam__charge *ch, int64_t t,
                        recorder *rec) {
  obspam__obj *o = ch->obj[0];
  int64_t hour = obspam__hour_of(t);
  int fresh = o->hist == NULL;
  hist *h = hist_get(m, o);

  if (h == NULL || hist_room(h, hour) != 0) {
    if (fresh)
      hist_free(m, o);
    return OBSPAM_ENOMEM;
  }
  mem_keep(m, h);
  /* Nothing below can fail. */
  ch->t = m->newest = t;
  hist_begin(m, h, hour, ch->retention);
  ring_free(m, o);
  h->last_reset = t;
  h->reset_base = h->cur.sent;
  day_set(h);
  if (ch->record != NULL)
    record(rec, ch);
  return OBSPAM_OK;
}

/* A note of a script charged to nothing (store.h, note) at t (>= the
   newest time), with the lock held. */
static int note_locked(mem_store *m, obspam__charge *ch, int64_t t) {
  int64_t hour = obspam__hour_of(t);
  script *sc = script_find(m, ch->script, ch->script_len);
  int fresh = 0;

  if (sc == NULL) {
    sc = obspam__mem_script_new(ch->script, ch->script_len);
    if (sc == NULL || script_insert(m, sc) != 0)
      return OBSPAM_ENOMEM; /* script_insert frees sc */
    fresh = 1;
  }
  if (hist_get(m, &sc->obj) == NULL || hist_room(sc->obj.hist, hour) != 0) {
    if (fresh)
      obspam__mem_script_free(m, sc);
    return OBSPAM_ENOMEM;
  }
  mem_keep(m, sc->obj.hist);
  /* Nothing below can fail. */
  ch->t = m->newest = t;
  hist_begin(m, sc->obj.hist, hour, ch->retention);
  script_use(m, sc);
  add_count(&sc->obj.hist->cur.sent, ch->c);
  sc->obj.hist->uid = ch->uid;
  script_evict(m);
  sweep(m, t / 60, keep_cutoff(hour, ch->retention));
  return OBSPAM_OK;
}

/* An exempt mailing-list delivery (store.h, listed) at t (>= the newest
   time), with the lock held: the hour in progress of each object counts
   it, and nothing else changes. */
static int listed_locked(mem_store *m, obspam__charge *ch, int64_t t,
                         recorder *rec) {
  int64_t hour = obspam__hour_of(t);
  int fresh[3] = {0, 0, 0};
  int i;

  for (i = 0; i < ch->n; i++) {
    fresh[i] = ch->obj[i]->hist == NULL;
    if (hist_get(m, ch->obj[i]) == NULL ||
        hist_room(ch->obj[i]->hist, hour) != 0) {
      /* Only the records this delivery made go; a grown array stays. */
      for (; i >= 0; i--)
        if (fresh[i])
          hist_free(m, ch->obj[i]);
      return OBSPAM_ENOMEM;
    }
  }
  for (i = 0; i < ch->n; i++)
    mem_keep(m, ch->obj[i]->hist);
  /* Nothing below can fail. */
  ch->t = m->newest = t;
  for (i = 0; i < ch->n; i++) {
    hist *h = ch->obj[i]->hist;

    hist_begin(m, h, hour, ch->retention);
    add_count(&h->cur.lists, ch->c);
  }
  sweep(m, t / 60, keep_cutoff(hour, ch->retention));
  if (ch->record != NULL)
    record(rec, ch);
  return OBSPAM_OK;
}

/* Works the clock of a charge at t (>= 0: divided without minding a
   sign) out into k. */
static __attribute__((noinline)) void
clock_set(mem_clock *k, int64_t t, int64_t period, int64_t retention) {
  k->t = t;
  k->period = period;
  k->retention = retention;
  k->minute = (int64_t)((uint64_t)t / 60);
  k->tick = (int64_t)((uint64_t)t / TICK);
  k->hour = t - (int64_t)((uint64_t)t % 3600);
  k->start = t - (int64_t)((uint64_t)t % (uint64_t)period);
  k->cutoff = keep_cutoff(k->hour, retention);
  k->slot = (int)(t - k->hour) / 60;
  k->tslot = (int)(t - k->minute * 60) / TICK;
}

/* The clock of a charge at t, worked out again only when the charge
   before was of another second or settings (or every time for the tests
   that take the long way, which compare the two). Inline: a flood's
   charges all find it. */
static inline __attribute__((always_inline)) const mem_clock *
clock_at(mem_store *m, int64_t t, int64_t period, int64_t retention) {
  mem_clock *k = &m->clock;

  if (k->t != t || k->period != period || k->retention != retention ||
      m->long_way)
    clock_set(k, t, period, retention);
  return k;
}

/* A charge, with the lock held. */
static int charge_locked(mem_store *m, obspam__charge *ch, recorder *rec) {
  int64_t t, minute, tick, hour, start;
  const mem_clock *k;
  prepared p;
  unsigned cold = 7; /* answer's, for every object when it is not asked */
  int i, slot, tslot, warm;

  t = ch->t > m->newest ? ch->t : m->newest;
  if (ch->reset)
    return reset_locked(m, ch, t, rec);
  if (ch->note)
    return ch->dry ? OBSPAM_OK : note_locked(m, ch, t);
  if (ch->listed)
    return ch->dry ? OBSPAM_OK : listed_locked(m, ch, t, rec);
  k = clock_at(m, t, ch->period, ch->retention);
  minute = k->minute;
  tick = k->tick;
  hour = k->hour;
  start = k->start;
  /* One call, so that answer is inline. */
  if (ch->dry || (!ch->notify_only && !ch->replay))
    cold = answer(ch, t, minute, tick, hour, start, start + ch->period,
                  m->long_way);
  if (ch->dry) {
    ch->t = t;
    return OBSPAM_OK;
  }
  /* A charge whose objects are all warm, and whose refusal goes over no
     object that has no buckets for it yet, allocates nothing: prepare
     would find nothing to do, and the steps that move a ring, a record
     or a period on would change nothing. A flood is refused this way,
     and a steady sender accepted. */
  warm = !m->long_way && ch->script == NULL && (cold & 7u) == 0 &&
         ((cold >> 3) & (ch->over[0] | (unsigned)ch->over[1] << 1 |
                         (unsigned)ch->over[2] << 2)) == 0;
  if (warm) {
    p.sc = NULL;
    p.new_script = 0;
  } else if (prepare(m, ch, hour, start, &p) != 0) {
    return OBSPAM_ENOMEM;
  }
  /* Tested once: a save is seldom in progress (mem_keep). */
  if (m->saving) {
    for (i = 0; i < ch->n; i++)
      mem_keep(m, ch->obj[i]->hist);
    if (p.sc != NULL)
      mem_keep(m, p.sc->obj.hist);
  }
  if (ch->notify_only) {
    notify_only(m, ch, hour, start, &p);
    return OBSPAM_OK;
  }

  /* Nothing below can fail. Each object is brought to t and charged in
     one pass: no object shares another's ring or record. slot and tslot
     are the buckets of t in every ring. */
  slot = k->slot;
  tslot = k->tslot;
  ch->t = m->newest = t;
  ch->period_start = start;
  for (i = 0; i < ch->n; i++) {
    obspam__obj *o = ch->obj[i];
    ring *r = o->ring;
    int moved = 0;

    if (!warm) {
      hist_begin(m, o->hist, hour, ch->retention);
      np_roll(m, o->hist, start, start + ch->period, p.notice[i]);
      if (p.ring[i] != NULL) {
        r = p.ring[i];
        r->owner = o;
        r->minute = minute;
        r->tick = tick;
        SET_PTR(o->ring, r);
        mem_set_ring(o->hist, r);
        LIST_APPEND(m->r_first, m->r_last, r, prev, next);
      }
      moved = r->minute < minute;
      ring_touch(m, r, minute);
    }
    tick_advance(r, tick);
    /* Only a refusal or a new minute can leave the buckets of attempts
       over the limit empty; an accept within the minute does not read
       them (they are in a line of the ring it did not ask for). */
    if (ch->refuser >= 0) {
      charge_refusal(m, ch, i, t, slot, warm ? NULL : p.exc[i]);
      exc_trim(r);
    } else {
      if (!ch->probe)
        charge_accept(ch, i, slot, tslot);
      if (moved)
        exc_trim(r);
    }
  }
  if (p.sc != NULL) {
    hist_begin(m, p.sc->obj.hist, hour, ch->retention);
    script_use(m, p.sc);
  }
  if (p.sc != NULL && (ch->refuser >= 0 || !ch->probe))
    charge_script(p.sc, ch, t);
  else if (p.new_script) /* an accepted probe leaves no trace */
    obspam__mem_script_free(m, p.sc);
  if (p.new_script) /* only a new script can make one too many */
    script_evict(m);
  sweep(m, minute, k->cutoff);
  /* Recorded under the lock, so that a save's cut (mem_save) sees every
     charge either in the snapshot or in the journal after it. An accepted
     probe changed nothing. */
  if (ch->record != NULL && (ch->refuser >= 0 || !ch->probe))
    record(rec, ch);
  return OBSPAM_OK;
}

static int mem_charge(obspam__store *s, obspam__charge *ch) {
  mem_store *m = (mem_store *)s;
  int rc;

  /* Asked for while the lock is waited for, at the message's own time
     (the store's newest is read only under the lock): the charges of a
     batch (mem_charge_many) were warmed with their group instead. */
  if (!ch->reset && !ch->note && !ch->listed && !ch->dry)
    prefetch(ch->obj, ch->n, ch->t / 60, ch->t / TICK);
  mem_lock(m);
  rc = charge_locked(m, ch, NULL);
  pthread_mutex_unlock(&m->lock);
  return rc;
}

/* n charges in order under one hold of the lock, up to the first that
   fails. */
static int mem_charge_many(obspam__store *s, obspam__charge *const *ch, int n,
                           int *done) {
  mem_store *m = (mem_store *)s;
  recorder rec;
  int rc = OBSPAM_OK;

  rec.n = 0;
  mem_lock(m);
  for (*done = 0; *done < n; ++*done)
    if ((rc = charge_locked(m, ch[*done], &rec)) != OBSPAM_OK)
      break;
  /* Before the lock goes, for a save's cut (charge_locked). */
  record_flush(&rec);
  pthread_mutex_unlock(&m->lock);
  return rc;
}

static void mem_read(obspam__store *s, const obspam__obj *o, int64_t now,
                     int64_t retention, obspam__reading *out) {
  mem_store *m = (mem_store *)s;
  const hist *h;
  int64_t cutoff;
  uint32_t i;

  memset(out, 0, sizeof(*out));
  mem_lock(m);
  if (now < m->newest)
    now = m->newest;
  if (o->ring != NULL) {
    peek(o->ring, now / 60, &out->count, &out->refused, &out->exceeded);
    out->count_minute = tick_peek(o->ring, now / TICK);
  }
  h = o->hist;
  out->count_day = day_count(h, obspam__hour_of(now));
  if (h != NULL) {
    cutoff = obspam__hour_cutoff(obspam__hour_of(now), retention);
    for (i = 0; i < hist_len(h); i++) {
      const obspam__hour *rec = hist_rec(h, i);

      if (rec->hour < cutoff)
        continue;
      if (rec->hour == obspam__hour_of(now)) {
        out->forwarded = rec->forwarded;
        out->lists = rec->lists;
      }
      out->refused_total += rec->refused;
      out->exceeded_total += rec->exceeded;
    }
    if (h->last_refused != 0 && obspam__hour_of(h->last_refused) >= cutoff)
      out->last_refused = h->last_refused;
    out->last_reset = h->last_reset;
  }
  pthread_mutex_unlock(&m->lock);
}

/* Makes sure the pool holds n spare notices. */
static int spare_reserve(mem_store *m, size_t n) {
  while (m->nspare < n) {
    obspam__pending *p = malloc(SPARE_SIZE);

    if (p == NULL)
      return -1;
    p->next = m->spare;
    m->spare = p;
    m->nspare++;
  }
  return 0;
}

/* The objects of the subtree of o whose notification period went over
   the limit: each needs a notice when it goes. */
static size_t open_periods(const obspam__obj *o) {
  size_t n = o->hist != NULL && o->hist->np_exceeded > 0;
  const obspam__obj *c;

  for (c = o->child; c != NULL; c = c->next)
    n += open_periods(c);
  return n;
}

static int mem_reserve(obspam__store *s, obspam__obj *root) {
  mem_store *m = (mem_store *)s;
  int rc;

  mem_lock(m);
  rc = spare_reserve(m, open_periods(root)) == 0 ? OBSPAM_OK : OBSPAM_ENOMEM;
  pthread_mutex_unlock(&m->lock);
  return rc;
}

static void mem_forget(obspam__store *s, obspam__obj *o) {
  mem_store *m = (mem_store *)s;

  mem_lock(m);
  /* A removed object that went over its limit is still worth a notice;
     reserve made sure there is one for it. */
  if (o->hist != NULL && o->hist->np_exceeded > 0)
    (void)np_close(m, o->hist);
  ring_free(m, o);
  hist_free(m, o);
  pthread_mutex_unlock(&m->lock);
}

/* Hands the state of from, which the reload's successor replaces by to
   (NULL: it has none), over to to or drops it. */
static void carry_one(mem_store *m, hist *h, obspam__obj *to) {
  obspam__obj *from = h->owner;

  if (to == from) /* an implicit mailbox that stays itself */
    return;
  if (to == NULL) {
    if (h->np_exceeded > 0)
      (void)np_close(m, h); /* a spare was reserved */
    ring_free(m, from);
    hist_free(m, from);
    return;
  }
  SET_PTR(to->ring, from->ring);
  SET_PTR(to->hist, h);
  SET_PTR(from->ring, NULL);
  SET_PTR(from->hist, NULL);
  h->owner = to;
  h->mirror = NULL; /* to was the one sharing it, if any */
  if (to->ring != NULL)
    to->ring->owner = to;
}

/* Under the engine's write lock. After mem_carry_prepare, only the
   records on the pending list are carried here (the others are already
   shared with their object of the new tree, and mem_carry_finish moves
   their owner); without it, or when it no longer holds, every record. */
static int mem_carry(obspam__store *s, obspam__successor successor, void *ud) {
  mem_store *m = (mem_store *)s;
  int fast;
  hist *h, *next;
  size_t closing = 0;

  mem_lock(m);
  fast = m->carry_phase == 1 && m->carry_ok;
  /* First the notices of the objects that go, so that nothing changes
     when there is no memory for them. */
  for (h = fast ? m->u_first : m->h_first; h != NULL;
       h = fast ? h->unext : h->next)
    if (h->owner->kind != OBSPAM_SCRIPT && h->np_exceeded > 0 &&
        successor(h->owner->kind, h->owner->name, h->owner->len, ud) == NULL)
      closing++;
  if (spare_reserve(m, closing) != 0) {
    pthread_mutex_unlock(&m->lock);
    return OBSPAM_ENOMEM;
  }
  for (h = fast ? m->u_first : m->h_first; h != NULL; h = next) {
    next = fast ? h->unext : h->next;
    pending_del(m, h);
    if (h->owner->kind != OBSPAM_SCRIPT)
      carry_one(m, h,
                successor(h->owner->kind, h->owner->name, h->owner->len, ud));
  }
  while (m->u_first != NULL)
    pending_del(m, m->u_first);
  if (m->carry_phase == 1)
    m->carry_phase = 2;
  pthread_mutex_unlock(&m->lock);
  return OBSPAM_OK;
}

static int mem_carry_pending(obspam__store *s,
                             int (*fn)(int kind, const char *name, size_t len,
                                       void *ud),
                             void *ud) {
  mem_store *m = (mem_store *)s;
  int fast, rc = 0;
  const hist *h;

  mem_lock(m);
  fast = m->carry_phase == 1 && m->carry_ok;
  for (h = fast ? m->u_first : m->h_first; h != NULL && rc == 0;
       h = fast ? h->unext : h->next)
    if (h->owner->kind != OBSPAM_SCRIPT)
      rc = fn(h->owner->kind, h->owner->name, h->owner->len, ud);
  pthread_mutex_unlock(&m->lock);
  return rc;
}

/* How many records one hold of the lock visits in a reload's preparation
   or move: a few dozen microseconds. */
#define CARRY_SLICE 512

/* Visits every record, a slice at a time under the lock, from the first
   one: fn(m, h) for each. The visit goes on past records that move or
   go meanwhile (mem_unlinking); a record that moves to the end may be
   visited twice, and fn sees it has already been. */
static void visit_in_slices(mem_store *m,
                            void (*fn)(mem_store *m, hist *h, void *ud),
                            void *ud) {
  int done = 0, k;
  hist *h;

  mem_lock(m);
  m->carry_next = m->h_first;
  pthread_mutex_unlock(&m->lock);
  while (!done) {
    mem_lock(m);
    for (k = 0; k < CARRY_SLICE && (h = m->carry_next) != NULL; k++) {
      m->carry_next = h->next;
      fn(m, h, ud);
    }
    done = m->carry_next == NULL;
    pthread_mutex_unlock(&m->lock);
    obspam__mem_let_waiters_in(m);
  }
}

typedef struct finding {
  obspam__successor find;
  void *ud;
} finding;

/* A record seen by the preparation: shared with the object of the same
   kind and name in the new tree, or, when there is none, left to the
   swap (the successor may then be an implicit mailbox, which only the
   engine's lock lets the engine find or make). */
static void prepare_one(mem_store *m, hist *h, void *ud) {
  const finding *f = ud;
  obspam__obj *to;

  if (h->owner->kind == OBSPAM_SCRIPT || h->mirror != NULL || h->pending)
    return;
  to = f->find(h->owner->kind, h->owner->name, h->owner->len, f->ud);
  if (to == NULL || to->hist != NULL || to->ring != NULL) {
    pending_add(m, h);
    return;
  }
  h->mirror = to;
  SET_PTR(to->hist, h);
  SET_PTR(to->ring, h->owner->ring);
}

/* Without the engine's lock, while decisions go on in the old tree: the
   object of the new tree (find, which reads the new tree only) that has
   the kind and name of each record's owner points to the same record and
   ring, and every change of the owner's ring from now on is made to both
   (mem_set_ring, ring_free, hist_free). Records made meanwhile, and
   those the new tree has no object for, go on the pending list, which
   mem_carry resolves under the engine's lock. */
static void mem_carry_prepare(obspam__store *s, obspam__successor find,
                              void *ud) {
  mem_store *m = (mem_store *)s;
  finding f = {find, ud};

  mem_lock(m);
  m->carry_phase = 1;
  m->carry_ok = 1;
  pthread_mutex_unlock(&m->lock);
  visit_in_slices(m, prepare_one, &f);
}

/* After the swap: the record belongs to the object of the new tree that
   shares it; the old object, about to be freed, lets it go. Else (the
   reload failed) the new object, about to be freed, lets it go. */
static void finish_one(mem_store *m, hist *h, void *ud) {
  obspam__obj *from = h->owner, *to = h->mirror;

  (void)m;
  if (to == NULL)
    return;
  h->mirror = NULL;
  if (to == from)
    return;
  if (*(const int *)ud) {
    h->owner = to;
    if (to->ring != NULL)
      to->ring->owner = to;
    SET_PTR(from->ring, NULL);
    SET_PTR(from->hist, NULL);
  } else {
    SET_PTR(to->ring, NULL);
    SET_PTR(to->hist, NULL);
  }
}

/* Ends a reload begun by mem_carry_prepare, with the engine's lock
   released: swapped says whether the new tree went in (mem_carry ran).
   The old tree (or the new one, when it did not go in) must live until
   this returns. */
static void mem_carry_finish(obspam__store *s, int swapped) {
  mem_store *m = (mem_store *)s;

  visit_in_slices(m, finish_one, &swapped);
  mem_lock(m);
  while (m->u_first != NULL)
    pending_del(m, m->u_first);
  m->carry_phase = 0;
  m->carry_next = NULL;
  pthread_mutex_unlock(&m->lock);
}

static int mem_history(obspam__store *s, const obspam__obj *o, const char *path,
                       size_t len, int64_t from, int64_t to, int64_t retention,
                       obspam__hour **out, size_t *n) {
  mem_store *m = (mem_store *)s;
  const hist *h;
  int64_t cutoff;
  uint32_t i;
  int rc = OBSPAM_OK;

  *out = NULL;
  *n = 0;
  mem_lock(m);
  if (o == NULL) {
    script *sc = script_find(m, path, len);

    o = sc != NULL ? &sc->obj : NULL;
    if (o == NULL)
      rc = OBSPAM_ENOTFOUND;
  }
  h = o != NULL ? o->hist : NULL;
  if (h != NULL && hist_len(h) > 0) {
    cutoff = obspam__hour_cutoff(obspam__hour_of(m->newest), retention);
    *out = malloc(hist_len(h) * sizeof(**out));
    if (*out == NULL)
      rc = OBSPAM_ENOMEM;
    for (i = 0; *out != NULL && i < hist_len(h); i++) {
      const obspam__hour *rec = hist_rec(h, i);

      /* An hour begun by a probe that charged nothing has no activity. */
      if (obspam__hour_in(rec->hour, cutoff, from, to) &&
          (rec->sent != 0 || rec->refused != 0))
        (*out)[(*n)++] = *rec;
    }
  }
  pthread_mutex_unlock(&m->lock);
  return rc;
}

/* Sums h over the hours overlapping [from, to) and within the retention. */
static void sum_range(const hist *h, int64_t from, int64_t to, int64_t cutoff,
                      obspam__row *row) {
  uint32_t i;

  memset(row, 0, sizeof(*row));
  for (i = 0; i < hist_len(h); i++) {
    const obspam__hour *rec = hist_rec(h, i);

    if (obspam__hour_in(rec->hour, cutoff, from, to))
      obspam__row_add(row, rec);
  }
}

static int mem_report(obspam__store *s, int64_t from, int64_t to,
                      int64_t retention, int every, obspam__row **out,
                      size_t *n) {
  mem_store *m = (mem_store *)s;
  size_t rows = 0, names = 0;
  int64_t cutoff;
  obspam__row row, *all;
  const hist *h;
  char *at;

  *out = NULL;
  *n = 0;
  mem_lock(m);
  cutoff = obspam__hour_cutoff(obspam__hour_of(m->newest), retention);
  /* First count, then fill one allocation: rows, then names. */
  for (h = m->h_first; h != NULL; h = h->next) {
    sum_range(h, from, to, cutoff, &row);
    if (obspam__row_reported(h->owner->kind, &row, every)) {
      rows++;
      names += (size_t)h->owner->len + 1;
    }
  }
  all = rows ? malloc(rows * sizeof(*all) + names) : NULL;
  if (rows > 0 && all == NULL) {
    pthread_mutex_unlock(&m->lock);
    return OBSPAM_ENOMEM;
  }
  at = all != NULL ? (char *)(all + rows) : NULL;
  for (h = m->h_first; h != NULL && *n < rows; h = h->next) {
    sum_range(h, from, to, cutoff, &row);
    if (!obspam__row_reported(h->owner->kind, &row, every))
      continue;
    row.kind = h->owner->kind;
    row.name = put_str(&at, h->owner->name);
    row.uid = h->owner->kind == OBSPAM_SCRIPT ? h->uid : -1;
    row.sub = NULL;
    all[(*n)++] = row;
  }
  pthread_mutex_unlock(&m->lock);
  *out = all;
  return OBSPAM_OK;
}

static int mem_notices(obspam__store *s, int64_t now, obspam__pending **out) {
  mem_store *m = (mem_store *)s;
  obspam__pending **pp, *p, *ready = NULL;
  hist *h, *next;
  int rc = OBSPAM_OK;

  mem_lock(m);
  for (h = m->refused; h != NULL; h = next) {
    next = h->nnext;
    if (h->np_end <= now && np_close(m, h) != 0) {
      rc = OBSPAM_ENOMEM;
      break;
    }
  }
  for (pp = &m->pending; (p = *pp) != NULL;) {
    if (p->period_end <= now) {
      *pp = p->next;
      p->next = ready;
      ready = p;
    } else {
      pp = &p->next;
    }
  }
  pthread_mutex_unlock(&m->lock);
  *out = ready;
  return rc;
}

static void mem_destroy(obspam__store *s) {
  mem_store *m = (mem_store *)s;

  while (m->h_first != NULL)
    obspam__mem_drop(m, m->h_first->owner);
  while (m->s_first != NULL)
    obspam__mem_script_free(m, m->s_first);
  obspam__index_free(&m->scripts);
  while (m->r_first != NULL)
    ring_free(m, m->r_first->owner);
  obspam__pending_free(m->pending);
  obspam__pending_free(m->spare);
  pthread_mutex_destroy(&m->lock);
  pthread_mutex_destroy(&m->save_lock);
  free(m);
}

/* Without the lock: prefetch reads the pointers atomically (SET_PTR). */
static void mem_warm(obspam__store *s, obspam__obj *const *objs, int n,
                     int64_t minute) {
  (void)s;
  prefetch(objs, n, minute, -1);
}

static const obspam__store_ops mem_ops = {
    .charge = mem_charge,
    .read = mem_read,
    .forget = mem_forget,
    .carry = mem_carry,
    .carry_prepare = mem_carry_prepare,
    .carry_finish = mem_carry_finish,
    .carry_pending = mem_carry_pending,
    .reserve = mem_reserve,
    .history = mem_history,
    .report = mem_report,
    .notices = mem_notices,
    .save = obspam__mem_save,
    .load_parse = obspam__mem_load_parse,
    .load_install = obspam__mem_load_install,
    .load_discard = obspam__mem_load_discard,
    .load_each = obspam__mem_load_each,
    .destroy = mem_destroy,
    .charge_many = mem_charge_many,
    .warm = mem_warm};

obspam__store *obspam__mem_store_new(void) {
  mem_store *m = calloc(1, sizeof(*m));
  pthread_mutexattr_t attr;
  int rc;

  if (m == NULL)
    return NULL;
  /* The lock is held for a few dozen instructions: a thread that finds it
     taken spins a little before it sleeps, rather than paying a context
     switch for every contended decision. */
  if (pthread_mutexattr_init(&attr) != 0) {
    free(m);
    return NULL;
  }
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
  rc = pthread_mutex_init(&m->lock, &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc != 0) {
    free(m);
    return NULL;
  }
  if (pthread_mutex_init(&m->save_lock, NULL) != 0) {
    pthread_mutex_destroy(&m->lock);
    free(m);
    return NULL;
  }
  m->clock.t = -1;
  m->base.ops = &mem_ops;
  return &m->base;
}

void obspam__mem_store_long_way(obspam__store *s, int on) {
  mem_store *m = (mem_store *)s;

  mem_lock(m);
  m->long_way = on;
  pthread_mutex_unlock(&m->lock);
}
