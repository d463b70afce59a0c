/* SPDX-License-Identifier: MIT */
/* The in-memory counter store.

   Each object that sent or was refused in the last hour has a ring of 60
   one-minute buckets; the sums of the buckets are kept beside them, so a
   check costs no loop. Rings sit on a list ordered by the minute they were
   last advanced to; every charge frees a few rings from the old end whose
   window has emptied, so an idle object holds no ring.

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

#include "journal.h"
#include "store.h"

#define WINDOW 60        /* minutes in the window */
#define SWEEP_PER_CALL 8 /* idle records freed per charge, at most */
#define HOURS_MAX 87600  /* the longest retention, in hours */
/* The largest count of messages or recipients sent that one object keeps
   for a minute, an hour or a notification period: a charge saturates there
   (add_count), the snapshot writes nothing larger and the loader accepts
   nothing larger, so whatever was charged can be saved and loaded. A
   message counts at most OBSPAM_RECIPIENTS_MAX (2^31), so it takes 2^17 of
   the largest messages to reach it; sums of 60 minutes or of every hour
   of the longest retention stay far inside 64 bits. Refusals count one
   each and cannot come near it. */
#define COUNT_MAX ((int64_t)1 << 48)

typedef struct obspam__ring {
  struct obspam__ring *prev, *next; /* ring list, oldest first */
  obspam__obj *owner;
  int64_t minute;                  /* the newest minute the buckets hold */
  int64_t sent, refused, exceeded; /* sums over the buckets */
  /* Attempts over the object's own limit, by minute: allocated by the
     first such attempt and freed once the window holds none, so that
     the many objects that never go over their limit pay one pointer. */
  uint32_t *b_exc;
  int64_t b_sent[WINDOW]; /* one message may count 2^32 - 1 */
  uint32_t b_ref[WINDOW]; /* refusals count one each */
} ring;

typedef struct obspam__hist {
  /* What an accepted charge reads and writes comes first, in the first 56
     bytes: the notification period in progress, and the hour in progress
     up to its count of messages sent. */
  int64_t np_start, np_end, np_sent, np_refused, np_exceeded;
  obspam__hour cur; /* the newest hour; cur.hour < 0 when there is none */
  /* The first and last attempt over the limit in the period, and the
     limit at the last one. */
  int64_t np_first, np_last, np_limit, last_refused;
  obspam__obj *owner;
  struct obspam__hist *prev, *next;   /* holders, by their newest hour */
  struct obspam__hist *nprev, *nnext; /* over the limit in their period */
  uint32_t head, n, cap;              /* the earlier hours: a circular array */
  obspam__hour *h;
} hist;

typedef struct script {
  obspam__obj obj;              /* kind OBSPAM_SCRIPT, in mem_store.scripts */
  struct script *lprev, *lnext; /* least recently used first */
} script;

typedef struct mem_store {
  obspam__store base;
  pthread_mutex_t lock;
  int64_t newest; /* the newest message time seen */
  ring *r_first, *r_last;
  hist *h_first, *h_last;
  /* Holders that went over their own limit in their current period:
     each of them owes a notice. */
  hist *refused;
  obspam__index scripts;
  script *s_first, *s_last;
  uint32_t nscripts;
  obspam__pending *pending; /* notices of ended periods, not yet emitted */
  /* Blank notices of the largest size, allocated ahead by reserve so that
     removing objects and replacing the tree cannot fail. */
  obspam__pending *spare;
  size_t nspare;
} mem_store;

/* Intrusive doubly linked lists: unlink and append for a given pair of
   link fields. */
#define LIST_UNLINK(first, last, x, prev, next)                                \
  do {                                                                         \
    if ((x)->prev != NULL)                                                     \
      (x)->prev->next = (x)->next;                                             \
    else                                                                       \
      (first) = (x)->next;                                                     \
    if ((x)->next != NULL)                                                     \
      (x)->next->prev = (x)->prev;                                             \
    else                                                                       \
      (last) = (x)->prev;                                                      \
    (x)->prev = (x)->next = NULL;                                              \
  } while (0)

#define LIST_APPEND(first, last, x, prev, next)                                \
  do {                                                                         \
    (x)->next = NULL;                                                          \
    (x)->prev = (last);                                                        \
    if ((last) != NULL)                                                        \
      (last)->next = (x);                                                      \
    else                                                                       \
      (first) = (x);                                                           \
    (last) = (x);                                                              \
  } while (0)

/* An object's ring and hist pointers are read without the lock by
   mem_warm, only to prefetch what they point to (a stale pointer costs a
   wasted prefetch, never a fault); they are written with relaxed atomic
   stores so that such a read is not a data race. */
#define SET_PTR(field, value)                                                  \
  __atomic_store_n(&(field), (value), __ATOMIC_RELAXED)

/* ---- the window ---------------------------------------------------------- */

/* Moves the ring forward to minute, emptying the buckets that leave. */
static void advance(ring *r, int64_t minute) {
  int64_t k;

  if (minute <= r->minute)
    return;
  if (minute - r->minute >= WINDOW) {
    memset(r->b_sent, 0, sizeof(r->b_sent));
    memset(r->b_ref, 0, sizeof(r->b_ref));
    if (r->b_exc != NULL)
      memset(r->b_exc, 0, WINDOW * sizeof(*r->b_exc));
    r->sent = r->refused = r->exceeded = 0;
  } else {
    for (k = r->minute + 1; k <= minute; k++) {
      int i = (int)(k % WINDOW);

      r->sent -= r->b_sent[i];
      r->refused -= r->b_ref[i];
      r->b_sent[i] = r->b_ref[i] = 0;
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
  LIST_UNLINK(m->r_first, m->r_last, r, prev, next);
  free(r->b_exc);
  free(r);
  SET_PTR(o->ring, NULL);
}

/* The wait (API.md step 5) of an object whose window r (NULL: empty)
   holds count at t, for c more under limit: 0 when it fits, -1 when c
   alone is over the limit, else the seconds until the oldest minutes
   that hold the excess have left the window, nothing else being sent.
   Dropping the minutes of the window at minute M up to k - 1 is the
   window at minute k + WINDOW - 1.

   Every refusal of a flood walks this: one bucket a step, without a
   division. Only r's minutes hold anything (those before the epoch, or
   before r's window, or after r->minute, when r was not advanced to t,
   are empty): the walk starts at the first of them in t's window, and
   ends by r->minute at the latest, where what count holds is used up. */
static int64_t wait_of(const ring *r, int64_t t, int64_t count, int64_t c,
                       int64_t limit) {
  int64_t minute = t / 60, k;
  int i;

  if (limit < 0 || count + c <= limit)
    return 0;
  if (c > limit)
    return -1;
  /* count > limit - c >= 0: r holds it. */
  k = minute - (WINDOW - 1);
  if (k < r->minute - (WINDOW - 1))
    k = r->minute - (WINDOW - 1);
  if (k < 0)
    k = 0;
  for (i = (int)(k % WINDOW); count + c > limit && k <= r->minute; k++) {
    count -= r->b_sent[i];
    if (++i == WINDOW)
      i = 0;
  }
  return (k + WINDOW - 1) * 60 - t;
}

/* ---- history ------------------------------------------------------------- */

static obspam__hour *hist_at(const hist *h, uint32_t i) {
  return &h->h[(h->head + i) % h->cap];
}

/* All the hours of h, oldest first: the array, then the hour in progress. */
static uint32_t hist_len(const hist *h) { return h->n + (h->cur.hour >= 0); }

static const obspam__hour *hist_rec(const hist *h, uint32_t i) {
  return i < h->n ? hist_at(h, i) : &h->cur;
}

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

static hist *hist_get(mem_store *m, obspam__obj *o) {
  hist *h = o->hist;

  if (h == NULL) {
    h = calloc(1, sizeof(*h));
    if (h == NULL)
      return NULL;
    h->owner = o;
    h->cur.hour = -1;
    SET_PTR(o->hist, h);
    LIST_APPEND(m->h_first, m->h_last, h, prev, next);
  }
  return h;
}

/* An hour in which nothing was charged or refused (one begun by a probe,
   or by notification accounting alone) is not kept. */
static int hour_empty(const obspam__hour *rec) {
  return rec->sent == 0 && rec->refused == 0;
}

/* Makes sure h can take hour as its hour in progress without allocating:
   the array grows when the hour in progress will have to move into it.
   Growing changes nothing that can be seen. Returns -1 when memory ran
   out. */
static int hist_room(hist *h, int64_t hour) {
  obspam__hour *grown;
  uint32_t i, cap;

  if (h->cur.hour < 0 || h->cur.hour == hour || hour_empty(&h->cur) ||
      h->n < h->cap)
    return 0;
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

/* Makes hour the hour in progress of h, after hist_room: the previous one
   moves into the array, and hours beyond the retention leave it. Within
   one hour it touches nothing but h itself, and the list of holders, kept
   in the order of their newest hour, changes only when a holder's hour
   does. */
static void hist_begin(mem_store *m, hist *h, int64_t hour, int64_t retention) {
  if (h->cur.hour == hour)
    return;
  if (h->cur.hour < 0 && h->n > 0 && hist_at(h, h->n - 1)->hour == hour) {
    /* Loaded from a snapshot: the newest stored hour goes on. */
    h->cur = *hist_at(h, --h->n);
    return;
  }
  if (h->cur.hour >= 0 && !hour_empty(&h->cur)) {
    hist_prune(h, obspam__hour_cutoff(hour, retention));
    *hist_at(h, h->n++) = h->cur; /* hist_room made the room */
  }
  memset(&h->cur, 0, sizeof(h->cur));
  h->cur.hour = hour;
  if (m->h_last != h) {
    LIST_UNLINK(m->h_first, m->h_last, h, prev, next);
    LIST_APPEND(m->h_first, m->h_last, h, prev, next);
  }
}

static void refused_unlink(mem_store *m, hist *h) {
  hist *unused_last = NULL;

  if (h->nprev == NULL && m->refused != h)
    return; /* not on the list */
  LIST_UNLINK(m->refused, unused_last, h, nprev, nnext);
  (void)unused_last;
}

static void refused_link(mem_store *m, hist *h) {
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
  refused_unlink(m, h);
  LIST_UNLINK(m->h_first, m->h_last, h, prev, next);
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
static obspam__pending *pending_new(mem_store *m, int kind, const char *name,
                                    const char *sub, const char *contact) {
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
  const obspam__sub *s = obspam__owner(h->owner);

  return pending_new(m, h->owner->kind, h->owner->name, s ? s->obj.name : NULL,
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
  p->limit = h->np_limit;
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

static void script_free(mem_store *m, script *sc) {
  ring_free(m, &sc->obj);
  hist_free(m, &sc->obj);
  obspam__index_del(&m->scripts, &sc->obj);
  LIST_UNLINK(m->s_first, m->s_last, sc, lprev, lnext);
  m->nscripts--;
  free(sc);
}

/* Drops what the store holds for o, a tree object or a script. */
static void drop(mem_store *m, obspam__obj *o) {
  if (o->kind == OBSPAM_SCRIPT) {
    script_free(m, (script *)o);
    return;
  }
  ring_free(m, o);
  hist_free(m, o);
}

static script *script_find(mem_store *m, const char *path, size_t len) {
  return (script *)obspam__index_find(&m->scripts, path, len);
}

static script *script_new(const char *path, size_t len) {
  script *sc = calloc(1, sizeof(*sc) + len + 1);

  if (sc == NULL)
    return NULL;
  sc->obj.name = (char *)(sc + 1);
  memcpy(sc->obj.name, path, len);
  sc->obj.name[len] = '\0';
  sc->obj.len = (uint16_t)len;
  sc->obj.kind = OBSPAM_SCRIPT;
  return sc;
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
    script_free(m, m->s_first);
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
static void sweep(mem_store *m, int64_t minute, int64_t cutoff) {
  hist *h, *next;
  int i;

  for (i = 0; i < SWEEP_PER_CALL && m->r_first != NULL; i++) {
    if (m->r_first->minute > minute - WINDOW)
      break;
    ring_free(m, m->r_first->owner);
  }
  for (i = 0, h = m->h_first; i < SWEEP_PER_CALL && h != NULL; i++, h = next) {
    next = h->next;
    if (h->owner->ring != NULL || hist_newest(h) >= cutoff)
      break;
    if (h->np_exceeded == 0)
      drop(m, h->owner);
  }
}

/* ---- the store interface ------------------------------------------------- */

/* A refusal of the ith charged object in its notification period: an
   attempt over its own limit is what a notice is about. */
static void np_refusal(mem_store *m, obspam__charge *ch, int i, int64_t t) {
  hist *h = ch->obj[i]->hist;

  h->np_refused++;
  ch->first_exceeded[i] = 0;
  if (obspam__exceeded(ch, i)) {
    ch->first_exceeded[i] = h->np_exceeded == 0;
    if (h->np_exceeded++ == 0) {
      h->np_first = t;
      refused_link(m, h);
    }
    h->np_last = t;
    h->np_limit = ch->limit[i];
  }
  ch->period_sent[i] = h->np_sent;
  ch->period_refused[i] = h->np_refused;
}

/* Records an attempt in an hour of history; over says whether it is one
   the report lists (first and last). */
static void hour_refusal(obspam__hour *rec, int over, int64_t t) {
  rec->refused++;
  if (over) {
    if (rec->first == 0)
      rec->first = t;
    rec->last = t;
  }
}

static void charge_refusal(mem_store *m, obspam__charge *ch, int i, int64_t t,
                           int64_t minute, uint32_t *exc) {
  obspam__obj *o = ch->obj[i];
  ring *r = o->ring;
  hist *h = o->hist;
  int over = obspam__exceeded(ch, i);

  r->b_ref[minute % WINDOW]++;
  r->refused++;
  if (over) {
    if (r->b_exc == NULL)
      r->b_exc = exc; /* prepare allocated it */
    r->b_exc[minute % WINDOW]++;
    r->exceeded++;
    h->cur.exceeded++;
  }
  hour_refusal(&h->cur, over, t);
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

static void charge_accept(obspam__charge *ch, int i, int64_t minute) {
  ring *r = ch->obj[i]->ring;

  /* The window's sum is the sum of its buckets, as the loader derives it. */
  r->sent += add_count(&r->b_sent[minute % WINDOW], ch->c);
  add_count(&ch->obj[i]->hist->cur.sent, ch->c);
  add_count(&ch->obj[i]->hist->np_sent, ch->c);
}

static void charge_script(script *sc, const obspam__charge *ch, int64_t t) {
  hist *h = sc->obj.hist;

  if (ch->refuser >= 0) {
    hour_refusal(&h->cur, 1, t);
    h->last_refused = t;
  } else {
    add_count(&h->cur.sent, ch->c);
  }
}

/* The answer to a charge at t, changing nothing: each object's count and
   wait, then the verdict's object and retry hint. */
static void answer(obspam__charge *ch, int64_t t) {
  int64_t unused;
  int i;

  for (i = 0; i < ch->n; i++) {
    const ring *r = ch->obj[i]->ring;

    ch->count[i] = 0;
    if (r != NULL)
      peek(r, t / 60, &ch->count[i], &unused, &unused);
    ch->wait[i] = wait_of(r, t, ch->count[i], ch->c, ch->limit[i]);
    ch->first_exceeded[i] = 0;
  }
  obspam__judge(ch);
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
    script_free(m, p->sc);
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
    hist *h;

    p->new_hist[i] = o->hist == NULL;
    h = hist_get(m, o);
    if (h == NULL || hist_room(h, hour) != 0)
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
      p->sc = script_new(ch->script, ch->script_len);
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
  sweep(m, ch->t / 60, obspam__hour_cutoff(hour, ch->retention));
}

/* A charge reads three places of each object: the ring's sums, the
   bucket of the minute and the hot part of the hist record. Asked for
   together, their cache misses overlap instead of following one another.
   Safe without the lock (see SET_PTR). */
static void prefetch(obspam__obj *const *obj, int n, int64_t minute) {
  int i;

  for (i = 0; i < n; i++) {
    const ring *r = __atomic_load_n(&obj[i]->ring, __ATOMIC_RELAXED);
    const hist *h = __atomic_load_n(&obj[i]->hist, __ATOMIC_RELAXED);

    if (r != NULL) {
      OBSPAM__PREFETCH(r);
      OBSPAM__PREFETCH(&r->b_sent[minute % WINDOW]);
    }
    if (h != NULL) {
      OBSPAM__PREFETCH(h);
      OBSPAM__PREFETCH(&h->cur.sent); /* the end of the hot part */
    }
  }
}

/* A charge, with the lock held. */
static int charge_locked(mem_store *m, obspam__charge *ch) {
  int64_t t, minute, hour, start;
  prepared p;
  int i;

  t = ch->t > m->newest ? ch->t : m->newest;
  minute = t / 60;
  if (ch->dry) {
    ch->t = t;
    answer(ch, t);
    return OBSPAM_OK;
  }
  hour = obspam__hour_of(t);
  start = t - t % ch->period;
  prefetch(ch->obj, ch->n, minute);
  if (!ch->notify_only && !ch->replay)
    answer(ch, t);
  if (prepare(m, ch, hour, start, &p) != 0)
    return OBSPAM_ENOMEM;
  if (ch->notify_only) {
    notify_only(m, ch, hour, start, &p);
    return OBSPAM_OK;
  }

  /* Nothing below can fail. */
  ch->t = m->newest = t;
  for (i = 0; i < ch->n; i++) {
    obspam__obj *o = ch->obj[i];

    hist_begin(m, o->hist, hour, ch->retention);
    np_roll(m, o->hist, start, start + ch->period, p.notice[i]);
    if (p.ring[i] != NULL) {
      p.ring[i]->owner = o;
      p.ring[i]->minute = minute;
      SET_PTR(o->ring, p.ring[i]);
      LIST_APPEND(m->r_first, m->r_last, o->ring, prev, next);
    }
    ring_touch(m, o->ring, minute);
  }
  if (p.sc != NULL) {
    hist_begin(m, p.sc->obj.hist, hour, ch->retention);
    script_use(m, p.sc);
  }

  ch->period_start = start;
  if (ch->refuser >= 0) {
    for (i = 0; i < ch->n; i++)
      charge_refusal(m, ch, i, t, minute, p.exc[i]);
  } else {
    for (i = 0; i < ch->n && !ch->probe; i++)
      charge_accept(ch, i, minute);
  }
  for (i = 0; i < ch->n; i++)
    exc_trim(ch->obj[i]->ring);
  if (p.sc != NULL && (ch->refuser >= 0 || !ch->probe))
    charge_script(p.sc, ch, t);
  else if (p.new_script) /* an accepted probe leaves no trace */
    script_free(m, p.sc);
  script_evict(m);
  sweep(m, minute, obspam__hour_cutoff(hour, ch->retention));
  /* Recorded under the lock, so that a save's cut (mem_save) sees every
     charge either in the snapshot or in the journal after it. An accepted
     probe changed nothing. */
  if (ch->journal != NULL && (ch->refuser >= 0 || !ch->probe))
    obspam__journal_record(ch->journal, ch);
  return OBSPAM_OK;
}

static int mem_charge(obspam__store *s, obspam__charge *ch) {
  mem_store *m = (mem_store *)s;
  int rc;

  pthread_mutex_lock(&m->lock);
  rc = charge_locked(m, ch);
  pthread_mutex_unlock(&m->lock);
  return rc;
}

/* n charges in order under one hold of the lock, up to the first that
   fails. */
static int mem_charge_many(obspam__store *s, obspam__charge *const *ch, int n,
                           int *done) {
  mem_store *m = (mem_store *)s;
  int rc = OBSPAM_OK;

  pthread_mutex_lock(&m->lock);
  for (*done = 0; *done < n; ++*done)
    if ((rc = charge_locked(m, ch[*done])) != OBSPAM_OK)
      break;
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
  pthread_mutex_lock(&m->lock);
  if (now < m->newest)
    now = m->newest;
  if (o->ring != NULL)
    peek(o->ring, now / 60, &out->count, &out->refused, &out->exceeded);
  h = o->hist;
  if (h != NULL) {
    cutoff = obspam__hour_cutoff(obspam__hour_of(now), retention);
    for (i = 0; i < hist_len(h); i++) {
      const obspam__hour *rec = hist_rec(h, i);

      if (rec->hour < cutoff)
        continue;
      out->refused_total += rec->refused;
      out->exceeded_total += rec->exceeded;
      if (rec->hour > obspam__hour_of(now) - 24 * 3600)
        out->count_day += rec->sent;
    }
    if (h->last_refused != 0 && obspam__hour_of(h->last_refused) >= cutoff)
      out->last_refused = h->last_refused;
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

  pthread_mutex_lock(&m->lock);
  rc = spare_reserve(m, open_periods(root)) == 0 ? OBSPAM_OK : OBSPAM_ENOMEM;
  pthread_mutex_unlock(&m->lock);
  return rc;
}

static void mem_forget(obspam__store *s, obspam__obj *o) {
  mem_store *m = (mem_store *)s;

  pthread_mutex_lock(&m->lock);
  /* A removed object that went over its limit is still worth a notice;
     reserve made sure there is one for it. */
  if (o->hist != NULL && o->hist->np_exceeded > 0)
    (void)np_close(m, o->hist);
  ring_free(m, o);
  hist_free(m, o);
  pthread_mutex_unlock(&m->lock);
}

static int mem_carry(obspam__store *s, obspam__successor successor, void *ud) {
  mem_store *m = (mem_store *)s;
  hist *h, *next;
  size_t closing = 0;

  pthread_mutex_lock(&m->lock);
  /* First the notices of the objects that go, so that nothing changes
     when there is no memory for them. */
  for (h = m->h_first; h != NULL; h = h->next)
    if (h->owner->kind != OBSPAM_SCRIPT && h->np_exceeded > 0 &&
        successor(h->owner->kind, h->owner->name, h->owner->len, ud) == NULL)
      closing++;
  if (spare_reserve(m, closing) != 0) {
    pthread_mutex_unlock(&m->lock);
    return OBSPAM_ENOMEM;
  }
  for (h = m->h_first; h != NULL; h = next) {
    obspam__obj *from = h->owner, *to;

    next = h->next;
    if (from->kind == OBSPAM_SCRIPT)
      continue;
    to = successor(from->kind, from->name, from->len, ud);
    if (to == from) /* an implicit mailbox that stays itself */
      continue;
    if (to == NULL) {
      if (h->np_exceeded > 0)
        (void)np_close(m, h);
      ring_free(m, from);
      hist_free(m, from);
      continue;
    }
    SET_PTR(to->ring, from->ring);
    SET_PTR(to->hist, h);
    SET_PTR(from->ring, NULL);
    SET_PTR(from->hist, NULL);
    h->owner = to;
    if (to->ring != NULL)
      to->ring->owner = to;
  }
  pthread_mutex_unlock(&m->lock);
  return OBSPAM_OK;
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
  pthread_mutex_lock(&m->lock);
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
                      int64_t retention, obspam__row **out, size_t *n) {
  mem_store *m = (mem_store *)s;
  size_t rows = 0, names = 0;
  int64_t cutoff;
  obspam__row row, *all;
  const hist *h;
  char *at;

  *out = NULL;
  *n = 0;
  pthread_mutex_lock(&m->lock);
  cutoff = obspam__hour_cutoff(obspam__hour_of(m->newest), retention);
  /* First count, then fill one allocation: rows, then names. */
  for (h = m->h_first; h != NULL; h = h->next) {
    sum_range(h, from, to, cutoff, &row);
    if (obspam__row_reported(h->owner->kind, &row)) {
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
    if (!obspam__row_reported(h->owner->kind, &row))
      continue;
    row.kind = h->owner->kind;
    row.name = put_str(&at, h->owner->name);
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

  pthread_mutex_lock(&m->lock);
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

/* ---- snapshots ----------------------------------------------------------- */

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

static void save_buckets(obspam__buf *b, const ring *r) {
  uint8_t n = 0;
  int i;

  for (i = 0; i < WINDOW; i++)
    n = (uint8_t)(n + (r->b_sent[i] != 0));
  obspam__buf_u8(b, n);
  for (i = 0; i < WINDOW; i++)
    if (r->b_sent[i] != 0) {
      obspam__buf_u8(b, (uint8_t)i);
      obspam__buf_i64(b, r->b_sent[i]);
    }
  save_counts(b, r->b_ref);
  save_counts(b, r->b_exc);
}

static void mem_save(obspam__store *s, obspam__buf *b, void (*cut)(void *ud),
                     void *ud) {
  mem_store *m = (mem_store *)s;
  const obspam__pending *p;
  const hist *h;
  uint32_t count = 0, i;

  pthread_mutex_lock(&m->lock);
  if (cut != NULL)
    cut(ud);
  obspam__buf_i64(b, m->newest);
  for (h = m->h_first; h != NULL; h = h->next)
    count++;
  obspam__buf_u32(b, count);
  for (h = m->h_first; h != NULL; h = h->next) {
    const ring *r = h->owner->ring;

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
    obspam__buf_u32(b, hist_len(h));
    for (i = 0; i < hist_len(h); i++) {
      const obspam__hour *rec = hist_rec(h, i);

      obspam__buf_i64(b, rec->hour);
      obspam__buf_i64(b, rec->sent);
      obspam__buf_i64(b, rec->refused);
      obspam__buf_i64(b, rec->exceeded);
      obspam__buf_i64(b, rec->first);
      obspam__buf_i64(b, rec->last);
    }
    obspam__buf_u8(b, r != NULL);
    if (r != NULL) {
      obspam__buf_i64(b, r->minute);
      save_buckets(b, r);
    }
  }
  count = 0;
  for (p = m->pending; p != NULL; p = p->next)
    count++;
  obspam__buf_u32(b, count);
  for (p = m->pending; p != NULL; p = p->next) {
    obspam__buf_u8(b, (uint8_t)p->kind);
    put_string(b, p->name);
    put_string(b, p->subscription);
    put_string(b, p->contact);
    obspam__buf_i64(b, p->limit);
    obspam__buf_i64(b, p->sent);
    obspam__buf_i64(b, p->refused);
    obspam__buf_i64(b, p->exceeded);
    obspam__buf_i64(b, p->first);
    obspam__buf_i64(b, p->last);
    obspam__buf_i64(b, p->period_start);
    obspam__buf_i64(b, p->period_end);
  }
  pthread_mutex_unlock(&m->lock);
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

/* Format 1 (1.0 to 1.2) did not know which refusals went over the
   object's own limit: its refusals load as refusals only, and what it
   kept of the first and last refusal of a subscription, domain or
   mailbox, which reports and notices now give for attempts over the
   limit, is dropped. A script's first and last refusal are kept. */
static const char *parse_hist(obspam__reader *r, hist *h, int64_t newest,
                              uint32_t version, int kind) {
  int64_t *const period[] = {&h->last_refused, &h->np_start,   &h->np_end,
                             &h->np_sent,      &h->np_refused, &h->np_exceeded,
                             &h->np_first,     &h->np_last,    &h->np_limit};
  int64_t *const period_v1[] = {&h->last_refused, &h->np_start,   &h->np_end,
                                &h->np_sent,      &h->np_refused, &h->np_first,
                                &h->np_last,      &h->np_limit};
  uint32_t n, i;
  int64_t prev = -1;

  if ((version == 1 ? get_all(r, period_v1, 8) : get_all(r, period, 9)) ||
      obspam__get_u32(r, &n))
    return "truncated";
  /* Bounds far above what a real engine reaches, so that no sum of them
     can overflow. */
  if (h->np_sent > COUNT_MAX || h->np_refused > COUNT_MAX)
    return "bad counters";
  if (h->last_refused < 0 || h->last_refused > newest || h->np_start < 0 ||
      h->np_end < h->np_start || h->np_sent < 0 || h->np_refused < 0 ||
      h->np_exceeded < 0 || h->np_exceeded > h->np_refused || h->np_first < 0 ||
      h->np_last < h->np_first || h->np_limit < -1)
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
    int64_t *const hour[] = {&rec->hour,     &rec->sent,  &rec->refused,
                             &rec->exceeded, &rec->first, &rec->last};
    int64_t *const hour_v1[] = {&rec->hour, &rec->sent, &rec->refused,
                                &rec->first, &rec->last};

    rec->exceeded = 0;
    if (version == 1 ? get_all(r, hour_v1, 5) : get_all(r, hour, 6))
      return "truncated";
    if (rec->sent > COUNT_MAX || rec->refused > COUNT_MAX)
      return "bad history";
    if (rec->hour < 0 || rec->hour % 3600 != 0 || rec->hour <= prev ||
        rec->hour > newest || rec->sent < 0 || rec->refused < 0 ||
        rec->exceeded < 0 || rec->exceeded > rec->refused || rec->first < 0 ||
        rec->last < rec->first)
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
static const char *parse_buckets(obspam__reader *r, int64_t *sent,
                                 uint32_t **counts, int64_t *sum, int *nomem) {
  uint8_t n, i, prev = 0;
  int k;

  if (obspam__get_u8(r, &n))
    return "truncated";
  if (n > WINDOW)
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
    if (i >= WINDOW || (k > 0 && i <= prev) ||
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

static const char *parse_ring(obspam__reader *r, ring *g, int64_t newest,
                              uint32_t version, int *nomem) {
  uint32_t *ref = g->b_ref;
  const char *why;
  int i;

  if (obspam__get_i64(r, &g->minute))
    return "truncated";
  if (g->minute < 0 || g->minute > newest / 60)
    return "bad window";
  /* The sums are derived, never read from the file. */
  why = parse_buckets(r, g->b_sent, NULL, &g->sent, nomem);
  if (why == NULL)
    why = parse_buckets(r, NULL, &ref, &g->refused, nomem);
  if (why == NULL && version >= 2)
    why = parse_buckets(r, NULL, &g->b_exc, &g->exceeded, nomem);
  for (i = 0; why == NULL && g->b_exc != NULL && i < WINDOW; i++)
    if (g->b_exc[i] > g->b_ref[i])
      why = "bad window"; /* more over the limit than refused */
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
  if (has_ring) {
    e->r = calloc(1, sizeof(*e->r));
    if (e->r == NULL)
      goto nomem;
    why = parse_ring(r, e->r, newest, version, nomem);
    if (why != NULL)
      return why;
  }
  if (kind == OBSPAM_SCRIPT) {
    if (obspam__index_find(&p->scripts, e->name, len) != NULL)
      return "a script path appears twice";
    if (p->nscripts == OBSPAM__SCRIPTS_MAX)
      return "too many script paths";
    e->sc = script_new(e->name, len);
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
    q = pending_new(NULL, kind, name, no_sub ? NULL : sub,
                    no_contact ? NULL : contact);
    if (q == NULL) {
      *nomem = 1;
      return "out of memory";
    }
    *tail = q; /* in the file's order, so that a save writes it again */
    {
      int64_t *const v[] = {&q->limit,        &q->sent,      &q->refused,
                            &q->exceeded,     &q->first,     &q->last,
                            &q->period_start, &q->period_end};
      int64_t *const v1[] = {&q->limit,     &q->sent, &q->refused,
                             &q->first,     &q->last, &q->period_start,
                             &q->period_end};

      if (version == 1 ? get_all(r, v1, 7) : get_all(r, v, 8))
        return "truncated";
    }
    if (q->period_end <= q->period_start || q->refused <= 0 ||
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

static void *mem_load_parse(obspam__store *s, obspam__reader *r,
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
  /* Each entry takes at least 73 bytes (81 from format 2 on): a count
     beyond that is a lie. */
  if (n > (size_t)(r->end - r->p) / (version == 1 ? 73 : 81)) {
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

static int64_t mem_load_install(obspam__store *s, void *state,
                                obspam__successor successor, void *ud) {
  mem_store *m = (mem_store *)s;
  parsed *p = state;
  int64_t newest = p->newest;
  obspam__pending **tail;
  uint32_t i;

  pthread_mutex_lock(&m->lock);
  while (m->h_first != NULL)
    drop(m, m->h_first->owner);
  while (m->s_first != NULL)
    script_free(m, m->s_first);
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
    LIST_APPEND(m->h_first, m->h_last, e->h, prev, next);
    if (e->h->np_exceeded > 0)
      refused_link(m, e->h);
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

static int mem_load_each(obspam__store *s, void *state,
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

static void mem_load_discard(obspam__store *s, void *state) {
  (void)s;
  parsed_free(state);
}

static void mem_destroy(obspam__store *s) {
  mem_store *m = (mem_store *)s;

  while (m->h_first != NULL)
    drop(m, m->h_first->owner);
  while (m->s_first != NULL)
    script_free(m, m->s_first);
  obspam__index_free(&m->scripts);
  while (m->r_first != NULL)
    ring_free(m, m->r_first->owner);
  obspam__pending_free(m->pending);
  obspam__pending_free(m->spare);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

/* Without the lock: prefetch reads the pointers atomically (SET_PTR). */
static void mem_warm(obspam__store *s, obspam__obj *const *objs, int n,
                     int64_t minute) {
  (void)s;
  prefetch(objs, n, minute);
}

static const obspam__store_ops mem_ops = {.charge = mem_charge,
                                          .read = mem_read,
                                          .forget = mem_forget,
                                          .carry = mem_carry,
                                          .reserve = mem_reserve,
                                          .history = mem_history,
                                          .report = mem_report,
                                          .notices = mem_notices,
                                          .save = mem_save,
                                          .load_parse = mem_load_parse,
                                          .load_install = mem_load_install,
                                          .load_discard = mem_load_discard,
                                          .load_each = mem_load_each,
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
  m->base.ops = &mem_ops;
  return &m->base;
}
