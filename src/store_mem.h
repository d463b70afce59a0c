/* SPDX-License-Identifier: MIT */
/* The in-memory store's own structures, shared by its two files only:
   store_mem.c (the live counters) and store_mem_snapshot.c (their
   snapshot format). Nothing else includes this. */
#ifndef OBSPAM_STORE_MEM_H
#define OBSPAM_STORE_MEM_H

#include <pthread.h>

#include "store.h"

#define WINDOW 60        /* minutes in the window */
#define TICKS 12         /* 5-second buckets in the minute window */
#define TICK 5           /* seconds in one of them */
#define DAY_HOURS 24     /* clock hours in the day window */
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
  /* What an accepted charge reads and writes comes first, in the first
     128 bytes: the newest minute and the hour window's sum of messages
     sent, then the minute window, whole: its newest 5-second bucket tick
     (t div 5), the sum of its buckets and the buckets, so that a charge
     finds its bucket in a line asked for ahead (prefetch, in
     store_mem.c). */
  int64_t minute;            /* the newest minute the buckets hold */
  int64_t sent;              /* the sum of b_sent */
  int64_t tick;              /* the newest 5-second bucket b_min holds */
  int64_t m_sent;            /* the sum of b_min */
  int64_t b_min[TICKS];      /* bucket i holds tick k where k % TICKS == i */
  int64_t refused, exceeded; /* sums over the buckets */
  /* Attempts over the object's own limit, by minute: allocated by the
     first such attempt and freed once the window holds none, so that
     the many objects that never go over their limit pay one pointer. */
  uint32_t *b_exc;
  int64_t b_sent[WINDOW]; /* one message may count 2^32 - 1 */
  uint32_t b_ref[WINDOW]; /* refusals count one each */
  /* The ring list and the owner, which only a new minute or a sweep
     touch, come last. */
  struct obspam__ring *prev, *next; /* ring list, oldest first */
  obspam__obj *owner;
} ring;

typedef struct obspam__hist {
  /* What an accepted charge reads and writes comes first, in the first 64
     bytes: the notification period in progress, the day window's sum
     before the hour in progress, and that hour up to its count of
     messages sent. */
  int64_t np_start, np_end, np_sent, np_refused, np_exceeded;
  /* Sent in the 23 clock hours before cur.hour (the day window without
     its newest hour), set when cur.hour changes: so the day window costs
     a decision one addition, not a walk of the history. */
  int64_t day;
  obspam__hour cur; /* the newest hour; cur.hour < 0 when there is none */
  /* The first and last attempt over the limit in the period, the limit
     at the last one and its window (seconds; 0: the recipients cap or
     forbidden scripts). */
  int64_t np_first, np_last, np_limit, np_window, last_refused;
  obspam__obj *owner;
  struct obspam__hist *prev, *next;   /* holders, by their newest hour */
  struct obspam__hist *nprev, *nnext; /* over the limit in their period */
  uint32_t head, n, cap;              /* the earlier hours: a circular array */
  /* The save (mem_store.gen) that wrote this record, or in which it was
     made: a save writes each record it finds with an older one, once. */
  uint32_t gen;
  /* A reload in progress (mem_carry_prepare): the object of the new tree
     that already shares this record and the owner's ring (both objects
     point to them) until the owner changes; and, for a record of which
     the new tree has no object of the same name, its place on the list
     that the reload resolves under the engine's lock (pending set). */
  obspam__obj *mirror;
  struct obspam__hist *uprev, *unext;
  uint8_t pending;
  obspam__hour *h;
  /* The last reset (obspam_reset; 0: none) and what the hour record of
     its clock hour had sent before it: the day window counts nothing
     before the reset, so the hours before its hour and that much of its
     hour are left out of it while they are in it. */
  int64_t last_reset, reset_base;
  int64_t uid; /* a script's: the uid of its last message; -1 unknown */
} hist;

typedef struct script {
  obspam__obj obj;              /* kind OBSPAM_SCRIPT, in mem_store.scripts */
  struct script *lprev, *lnext; /* least recently used first */
} script;

/* What a charge at t (charge_locked) works out from its time alone: its
   minute, 5-second bucket and clock hour, the start of its notification
   period of period seconds, the buckets of t in the hour and the minute
   windows, and the first hour that a retention of retention hours keeps.
   The charges of one second share them: the store keeps the last ones. */
typedef struct mem_clock {
  int64_t t, period, retention;
  int64_t minute, tick, hour, start, cutoff;
  int slot, tslot;
} mem_clock;

typedef struct mem_store {
  obspam__store base;
  pthread_mutex_t lock;
  int64_t newest;  /* the newest message time seen */
  mem_clock clock; /* the last charge's (charge_locked); t -1 before any */
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
  /* The save in progress (store_mem_snapshot.c), in slices: its records
     are written under the lock a slice at a time, and a record that is
     about to change before the save reached it is written first, as it
     was at the cut (mem_keep). gen counts the saves; saving is set from
     the cut to the last slice; save_next is the next record the save
     visits (moved on when that record moves or goes); saved counts the
     records written. One save at a time: save_lock. */
  pthread_mutex_t save_lock;
  uint32_t gen;
  int saving;
  obspam__buf *save_buf;
  hist *save_next;
  uint32_t saved;
  size_t save_hint; /* the size of the previous save's payload */
  /* Threads waiting for the lock (mem_lock), so that a save or a reload
     lets them in between its slices instead of taking the lock straight
     back; admitted counts the times such a thread got it, so that only
     those that wait when a slice ends are let in first (deciding
     threads that wait for one another would otherwise keep waiters
     above 0 for as long as they run). */
  int waiters;
  unsigned admitted;
  /* The reload in progress (engine.c, obspam__conf_replace): 0 none, 1
     prepared (records shared with the new tree; those it has no object
     for, and those made since, on the pending list u_first), 2 swapped
     (the owners move to the new tree). carry_ok is cleared when the
     preparation no longer holds (a snapshot loaded in between): the
     swap then carries everything, as without it. carry_next is the next
     record the preparation or the move visits. */
  int carry_phase, carry_ok;
  hist *u_first, *u_last;
  hist *carry_next;
  /* Every charge the long way, without the shortcut of warm objects
     (charge_locked): set by tests that compare the two. */
  int long_way;
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

static inline obspam__hour *hist_at(const hist *h, uint32_t i) {
  return &h->h[(h->head + i) % h->cap];
}

/* All the hours of h, oldest first: the array, then the hour in progress. */
static inline uint32_t hist_len(const hist *h) {
  return h->n + (h->cur.hour >= 0);
}

static inline const obspam__hour *hist_rec(const hist *h, uint32_t i) {
  return i < h->n ? hist_at(h, i) : &h->cur;
}

/* Takes the store's lock. A thread that finds it taken says so while it
   waits: a save in slices then lets it in before its next slice (a
   mutex lets the thread that unlocks take it again at once, before a
   waiter is even awake). Uncontended, it costs what locking costs. */
static inline void mem_lock(mem_store *m) {
  if (pthread_mutex_trylock(&m->lock) != 0) {
    __atomic_add_fetch(&m->waiters, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&m->lock);
    __atomic_sub_fetch(&m->waiters, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&m->admitted, 1, __ATOMIC_RELAXED);
  }
}

/* Between two slices of a save or a reload: lets the threads waiting for
   the lock take it first (store_mem_snapshot.c). */
void obspam__mem_let_waiters_in(mem_store *m);

/* Writes h to the save in progress as it was at the cut (store_mem_snapshot.c);
   only through mem_keep. */
void obspam__mem_save_one(mem_store *m, hist *h);

/* Called before anything of h (its record, its hours, its owner's ring)
   changes or goes: while a save is in progress and has not written h,
   h is written first, so that the snapshot holds the state at the cut.
   One comparison when no save is in progress. */
static inline void mem_keep(mem_store *m, hist *h) {
  if (m->saving && h != NULL && h->gen != m->gen)
    obspam__mem_save_one(m, h);
}

/* Before h leaves its place in the list of holders (it moves to the end
   or goes): a save in progress that was to visit it next goes on with
   the record after it. */
static inline void mem_unlinking(mem_store *m, const hist *h) {
  if (m->save_next == h)
    m->save_next = h->next;
  if (m->carry_next == h)
    m->carry_next = h->next;
}

/* Sets the ring of h's owner, and of the object of the new tree that
   shares h during a reload. */
static inline void mem_set_ring(hist *h, struct obspam__ring *r) {
  SET_PTR(h->owner->ring, r);
  if (h->mirror != NULL)
    SET_PTR(h->mirror->ring, r);
}

/* Links h into the list of holders that went over their own limit. */
void obspam__mem_refused_link(mem_store *m, hist *h);
/* A notice with its own copies of the names, or NULL. */
obspam__pending *obspam__mem_pending_new(mem_store *m, int kind,
                                         const char *name, const char *sub,
                                         const char *contact);
/* Frees a script and what the store holds for it. */
void obspam__mem_script_free(mem_store *m, script *sc);
/* Drops what the store holds for o (a script is freed). */
void obspam__mem_drop(mem_store *m, obspam__obj *o);
/* A new script object for path, not yet indexed, or NULL. */
script *obspam__mem_script_new(const char *path, size_t len);

/* The store's ops of saving and loading (store.h), in
   store_mem_snapshot.c. */
void obspam__mem_save(obspam__store *s, obspam__buf *b, void (*cut)(void *ud),
                      void *ud);
void *obspam__mem_load_parse(obspam__store *s, obspam__reader *r,
                             uint32_t version, const char **why, int *nomem);
int64_t obspam__mem_load_install(obspam__store *s, void *parsed,
                                 obspam__successor successor, void *ud);
int obspam__mem_load_each(obspam__store *s, void *parsed,
                          int (*fn)(int kind, const char *name, size_t len,
                                    void *ud),
                          void *ud);
void obspam__mem_load_discard(obspam__store *s, void *parsed);

#endif
