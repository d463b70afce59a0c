/* SPDX-License-Identifier: MIT */
/* The counter store: the sliding-window counters, hourly history,
   notification progress and script statistics of every object, behind one
   interface, so that a store shared by several servers can stand in for
   the in-memory one without any change to the decision logic. */
#ifndef OBSPAM_STORE_H
#define OBSPAM_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"
#include "tree.h"

/* The longest script path kept; longer ones are cut to this length. */
#define OBSPAM__SCRIPT_MAX 1024
/* How many script paths are tracked; the least recently used go first. */
#define OBSPAM__SCRIPTS_MAX 10000

/* One check-and-charge: the objects a message is charged to, from the top
   (subscription, domain, mailbox), and what the store answers. */
typedef struct obspam__charge {
  /* in */
  int n;               /* 1 to 3 charged objects */
  obspam__obj *obj[3]; /* top first */
  /* Effective limits by object and window; OBSPAM_UNLIMITED allowed. */
  int64_t limit[3][OBSPAM__WINDOWS];
  int64_t t;  /* message time; the store may move it forward */
  int64_t c;  /* amount: recipients or 1 */
  int forbid; /* refuse at once, naming obj[0] (scripts off) */
  /* The message has more recipients than the cap (max-recipients) of
     the lowest charged object, obj[n - 1]: a wait of -1 for it, named as
     window -1 (judge.c); cap is that cap, recipients the message's. */
  int over_cap;
  int64_t cap, recipients;
  int dry;   /* only answer: charge, record and allocate nothing */
  int probe; /* charge nothing, but record a refusal */
  /* The decision was made elsewhere (refuser, count and retry_after are
     set): only account it in the notification period. */
  int notify_only;
  /* The decision is given by a journal record (refuser, window, and
     over[i] for each object over its own limit): apply it without
     answering. */
  int replay;
  /* Not a message: empty every window of obj[0] (n is 1) at t, keeping
     its history, and note the time as its last reset (obspam_reset).
     Recorded and replayed as a charge is. */
  int reset;
  /* Not charged to any object (n is 0): a script whose uid no
     subscription owns. Its path (script, or "uid N" without one) counts
     c sent at t, with uid, for reports only; nothing answers or records
     it. A store that keeps no such rows (Redis) does nothing. Made in
     the order of the charges, so that it meets the clock as they do. */
  int note;
  /* What kind of mail an accepted charge is (OBSPAM__MARK_*): forwards
     and mailing-list deliveries are counted apart in each object's hour
     of history as well as in sent. */
  int marks;
  /* Not a charge: a mailing-list delivery that is exempt
     (count-mailing-lists off) through obj[0..n), the objects it would
     have been charged to. Each counts c list deliveries at t in its hour
     of history; nothing is answered, charged or refused. Recorded and
     replayed as a charge is. */
  int listed;
  /* Not NULL: called with record_ud once the charge is made, under the
     store's lock (the journal records it: journal.h). A callback, so that
     a store knows nothing of the journal. */
  void (*record)(void *record_ud, const struct obspam__charge *ch);
  void *record_ud;
  /* NULL, or the batch form of record (only when record is set): a store
     that makes several charges under one hold of its lock may call it
     once, before it lets the lock go, with those of them that share
     record_many and record_ud, in order, instead of record for each. */
  void (*record_many)(void *record_ud, const struct obspam__charge *const *ch,
                      int n);
  int64_t retention;  /* hours of history to keep */
  int64_t period;     /* notification period, seconds */
  const char *script; /* script path (cleaned, at most SCRIPT_MAX), or NULL */
  size_t script_len;
  int64_t uid; /* with a script: the message's uid, -1 unknown */
  /* For a shared store only: how long to wait for it, and whether to fail
     with OBSPAM_EUNAVAIL (defer set) instead of using the local counters
     when it does not answer. The in-memory store ignores both. */
  int64_t timeout_ms;
  int defer;
  /* out */
  int refuser; /* index of the object named; -1: accepted */
  /* On refusal, the window named (OBSPAM__W_*), or -1 for the recipients
     cap and forbidden scripts. */
  int window;
  /* Each object's count in each window before the message, and its wait
     there (API.md step 5): 0 fits. */
  int64_t count[3][OBSPAM__WINDOWS];
  int64_t wait[3][OBSPAM__WINDOWS];
  int64_t retry_after; /* on refusal: seconds, or -1 never */
  /* On refusal, set by obspam__judge: whether the message went over each
     object's own limit (a window's or the cap), so that it is recorded
     as exceeded there. */
  uint8_t over[3];
  /* On refusal, for each object with over[i] set: the window
     (OBSPAM__W_*) it went over by the most, as the naming rule orders
     waits (the longest, then the longer window), or -1 for its
     recipients cap or forbidden scripts. What its history, report row and
     notice give as the window of the attempt. */
  int8_t over_window[3];
  /* On refusal: which objects went over their own limit for the first
     time in the current notification period, and what that period holds
     for them. */
  uint8_t first_exceeded[3];
  int64_t period_sent[3], period_refused[3];
  int64_t period_start;
} obspam__charge;

/* The marks of a charge (obspam__charge.marks). */
#define OBSPAM__MARK_FORWARD 1u /* a forward, local or remote */
#define OBSPAM__MARK_LIST 2u    /* a mailing-list delivery */

/* Step 5 of the decision, once the store has set each charged object's
   wait in each window: whether the message is refused, which object and
   window the verdict names (refuser, window), retry_after and over[].
   Every store calls it, so that they all name the same object. */
void obspam__judge(obspam__charge *ch);

/* obspam__judge for a store that knows which waits are not 0: bit
   OBSPAM__WINDOWS * i + w of over is set for each wait[i][w] that is
   not, every other wait is 0. The same answer, without a walk over
   every wait when none or one is set. Inline: the in-memory store calls
   it for every charge. */
static inline void obspam__judge_over(obspam__charge *ch, unsigned over) {
  int i, w;

  /* A flood's refusal has one wait (its object's full window), an
     accepted message none: those are named without obspam__judge's
     walk. */
  if (ch->forbid || ch->over_cap || (over & (over - 1)) != 0) {
    obspam__judge(ch);
    return;
  }
  memset(ch->over, 0, sizeof(ch->over));
  memset(ch->over_window, -1, sizeof(ch->over_window));
  if (over == 0) {
    ch->refuser = ch->window = -1;
    ch->retry_after = 0;
    return;
  }
  i = __builtin_ctz(over) / OBSPAM__WINDOWS;
  w = __builtin_ctz(over) % OBSPAM__WINDOWS;
  ch->over[i] = 1;
  ch->over_window[i] = (int8_t)w;
  ch->refuser = i;
  ch->window = w;
  ch->retry_after = ch->wait[i][w];
}

/* Whether a refused charge went over the ith object's own limit: the
   subscription for forbidden scripts, else each object with a wait in
   some window or over its recipients cap. */
static inline int obspam__exceeded(const obspam__charge *ch, int i) {
  return ch->over[i];
}

/* The window (seconds; 0: the recipients cap or forbidden scripts) in
   which a refused charge went over the ith object's own limit, and that
   limit: what its history, report row and notice give. */
static inline int64_t obspam__over_seconds(const obspam__charge *ch, int i) {
  return ch->over_window[i] >= 0 ? obspam__window_seconds(ch->over_window[i])
                                 : 0;
}

static inline int64_t obspam__over_limit(const obspam__charge *ch, int i) {
  int w = ch->over_window[i];

  if (w >= 0)
    return ch->limit[i][w];
  return ch->forbid ? ch->limit[i][OBSPAM__W_HOUR] : ch->cap;
}

/* What the store knows of one object at a time. */
typedef struct obspam__reading {
  int64_t count;          /* charged in the hour window */
  int64_t count_minute;   /* charged in the minute window */
  int64_t refused;        /* refused attempts in the window */
  int64_t exceeded;       /* attempts over its own limit in the window */
  int64_t refused_total;  /* refused attempts within the retention */
  int64_t exceeded_total; /* over its own limit within the retention */
  int64_t last_refused;   /* 0: never */
  /* Charged in the clock hour of now and the 23 before (the day
     window). */
  int64_t count_day;
  int64_t last_reset; /* time of the last reset (obspam_reset); 0: none */
  /* The clock hour of now's forwards (part of its sent) and mailing-list
     deliveries (exempt or charged). */
  int64_t forwarded, lists;
} obspam__reading;

/* One clock hour of history. first and last are the first and last of
   the attempts a report lists for the object: over its own limit for a
   subscription, domain or mailbox, refused for a script (0: none). */
typedef struct obspam__hour {
  int64_t hour; /* start of the clock hour */
  int64_t sent, refused, exceeded, first, last;
  /* The window (seconds) of the attempt at last; 0: the recipients cap,
     forbidden scripts, or none. */
  int64_t window;
  /* Of sent, what was charged as forwards; and the mailing-list
     deliveries made through the object, exempt or charged. */
  int64_t forwarded, lists;
} obspam__hour;

/* A report row; name and sub point into the same allocation as the
   rows. */
typedef struct obspam__row {
  int kind;
  const char *name;
  int64_t sent, refused, exceeded, first, last;
  int64_t window;           /* of the attempt at last (obspam__hour) */
  int64_t forwarded, lists; /* as in obspam__hour */
  /* A script's: the uid of its last message (-1 unknown), and the
     subscription it was charged to when the store keeps it (NULL: the
     engine finds it from the uid). */
  int64_t uid;
  const char *sub;
} obspam__row;

/* The hour arithmetic every store shares. The start of the clock hour
   of t. */
static inline int64_t obspam__hour_of(int64_t t) { return t - t % 3600; }

/* The first hour still within the retention, seen from hour. */
static inline int64_t obspam__hour_cutoff(int64_t hour, int64_t retention) {
  return hour - (retention - 1) * 3600;
}

/* Whether the clock hour starting at hour counts for [from, to): within
   the retention (at or after cutoff) and overlapping the range. */
static inline int obspam__hour_in(int64_t hour, int64_t cutoff, int64_t from,
                                  int64_t to) {
  return hour >= cutoff && hour < to && hour + 3600 > from;
}

/* Adds one hour of history to a report row. */
static inline void obspam__row_add(obspam__row *row, const obspam__hour *h) {
  row->sent += h->sent;
  row->refused += h->refused;
  row->exceeded += h->exceeded;
  row->forwarded += h->forwarded;
  row->lists += h->lists;
  if (h->first != 0) {
    if (row->first == 0)
      row->first = h->first;
    row->last = h->last;
    row->window = h->window;
  }
}

/* Whether a row belongs in a report (every 0): a subscription, domain
   or mailbox that went over its own limit; a script with any activity.
   With every 1, whether it belongs in a list of top senders: anything
   with activity. */
static inline int obspam__row_reported(int kind, const obspam__row *row,
                                       int every) {
  return kind == OBSPAM_SCRIPT || every ? row->sent > 0 || row->refused > 0
                                        : row->exceeded > 0;
}

/* A notice that is ready to be emitted, with its own copies of names. */
typedef struct obspam__pending {
  struct obspam__pending *next;
  int kind;
  char *name, *subscription, *contact;            /* in the same allocation */
  int64_t limit, window, sent, refused, exceeded; /* window in seconds */
  int64_t first, last; /* the first and last attempt over the limit */
  int64_t period_start, period_end;
} obspam__pending;

void obspam__pending_free(obspam__pending *list);

/* An object as a shared store finds its counters: by kind, name, and
   the name of the subscription that owns it ("" none), which make its
   keys. What the caller copied under the engine's lock, so that it stays
   valid once the lock is let go. */
typedef struct obspam__named {
  int kind;
  const char *sub;
  const char *name;
  size_t len;
} obspam__named;

typedef struct obspam__store obspam__store;
typedef obspam__obj *(*obspam__successor)(int kind, const char *name,
                                          size_t len, void *ud);

typedef struct obspam__store_ops {
  /* All or nothing: either every object is charged c at t, or none is
     and a refusal is recorded on each. Returns OBSPAM_OK or
     OBSPAM_ENOMEM (then nothing was charged or recorded). With dry set,
     only the answer is computed and nothing changes. */
  int (*charge)(obspam__store *s, obspam__charge *ch);
  void (*read)(obspam__store *s, const obspam__obj *o, int64_t now,
               int64_t retention, obspam__reading *out);
  /* The object is going away: drop what the store holds for it. */
  void (*forget)(obspam__store *s, obspam__obj *o);
  /* The tree was replaced: every object that holds state hands it to its
     successor (same kind and name in the new tree), or drops it. The new
     objects must hold no state yet. OBSPAM_OK, or OBSPAM_ENOMEM with
     nothing changed. */
  int (*carry)(obspam__store *s, obspam__successor successor, void *ud);
  /* Optional, a local store only (NULL: carry does all the work): a
     reload in two steps around carry, so that the engine's write lock
     is held for the objects the new tree has no namesake for, not for
     every object with state. carry_prepare, without the engine's lock
     and before carry, makes each object of the new tree that find (which
     must read the new tree only) gives for a state's owner share that
     state, and keeps it shared while decisions go on in the old tree;
     carry then hands over the rest. carry_finish, after the engine's
     lock is released, moves the shared states to the new objects when
     swapped (carry ran and the new tree went in), or lets the new
     objects go. The old tree and the new one both live until
     carry_finish returns; one reload at a time. */
  void (*carry_prepare)(obspam__store *s, obspam__successor find, void *ud);
  void (*carry_finish)(obspam__store *s, int swapped);
  /* A local store only, under the engine's write lock, before carry:
     calls fn with the kind and name of every object whose state carry
     will hand over itself (after carry_prepare, those it could not
     share; else all), up to the first call that does not return 0,
     whose value it returns. */
  int (*carry_pending)(obspam__store *s,
                       int (*fn)(int kind, const char *name, size_t len,
                                 void *ud),
                       void *ud);
  /* Allocates ahead what forgetting the subtree of root will need (the
     notices of its open periods), so that a removal cannot fail halfway.
     OBSPAM_OK or OBSPAM_ENOMEM. */
  int (*reserve)(obspam__store *s, obspam__obj *root);
  /* The hours of o (or, when o is NULL, of the script path) that overlap
     [from, to) within the retention, oldest first, in a fresh array.
     OBSPAM_ENOTFOUND for an unknown script. */
  int (*history)(obspam__store *s, const obspam__obj *o, const char *script,
                 size_t script_len, int64_t from, int64_t to, int64_t retention,
                 obspam__hour **out, size_t *n);
  /* The objects and scripts of the hours overlapping [from, to), unsorted,
     in one fresh allocation: with every 0 those a report lists
     (obspam__row_reported), with every 1 each that sent or was refused
     (obspam_top). */
  int (*report)(obspam__store *s, int64_t from, int64_t to, int64_t retention,
                int every, obspam__row **out, size_t *n);
  /* Detaches the notices of every period that ended at or before now. */
  int (*notices)(obspam__store *s, int64_t now, obspam__pending **out);
  /* Saving and loading: only a local store has them (NULL in a shared
     store, whose counters live elsewhere). The engine keeps its local
     store for its whole life and calls these on it, under its lock.

     Appends the whole state to b. When cut is not NULL, calls it once
     with the store's lock held, at the moment the state appended is
     taken: every charge before it is in b, none after it. The store
     writes the rest without the caller's locks, which cut may release:
     the state is the one at the cut however long the write takes, and
     decisions, reloads and loads go on meanwhile (store_mem_snapshot.c). */
  void (*save)(obspam__store *s, obspam__buf *b, void (*cut)(void *ud),
               void *ud);
  /* Parses a saved state of format version (1 or 2, see snapshot.c)
     without touching the store: NULL and *why set when it is malformed or
     memory ran out (*nomem set then). */
  void *(*load_parse)(obspam__store *s, obspam__reader *r, uint32_t version,
                      const char **why, int *nomem);
  /* Replaces the whole state by a parsed one, keeping what belongs to
     objects that successor finds; consumes parsed. Returns the newest
     message time the state had seen. */
  int64_t (*load_install)(obspam__store *s, void *parsed,
                          obspam__successor successor, void *ud);
  void (*load_discard)(obspam__store *s, void *parsed);
  /* Calls fn with the kind and name of every object of a parsed state,
     up to the first call that does not return 0, whose value it
     returns. */
  int (*load_each)(obspam__store *s, void *parsed,
                   int (*fn)(int kind, const char *name, size_t len, void *ud),
                   void *ud);
  void (*destroy)(obspam__store *s);
  /* Optional (NULL: the caller calls charge n times). n charges in
     order, as n calls of charge would do them, up to the first that does
     not return OBSPAM_OK, whose code is returned; *done is the number
     that did. */
  int (*charge_many)(obspam__store *s, obspam__charge *const *ch, int n,
                     int *done);
  /* Optional, a hint: the n objects will be charged soon, around minute;
     their counters may be brought into the cache. Called under the
     engine's read lock only, concurrently with charges. */
  void (*warm)(obspam__store *s, obspam__obj *const *objs, int n,
               int64_t minute);
  /* Optional (NULL: never): whether s is the store that opening uri with
     prefix would give, so that a reload that names it again keeps it. */
  int (*same)(const obspam__store *s, const char *uri, const char *prefix);
  /* Optional (NULL: a local store, all zeros): shared, up, episodes,
     fallback decisions; see obspam_store_status. */
  void (*status)(obspam__store *s, int64_t out[4]);
  /* Optional (NULL: a local store): a reload dropped o, or moved it under
     another subscription; called under the engine's read lock with the
     old tree still whole. A shared store deletes what it keeps for o,
     without making the caller wait for it. */
  void (*gone)(obspam__store *s, const obspam__obj *o);
  /* Optional (NULL: all zeros): the charges of an outage waiting to be
     added to the shared store, added, and dropped past the bound; the
     keys of dropped objects waiting to be deleted, deleted, and given up
     (left to expire). See obspam_store_backlog. */
  void (*backlog)(obspam__store *s, int64_t out[6]);
  /* Optional (NULL: the caller reads the objects themselves, under the
     engine's lock, which costs a local store no wait): what read gives
     for each of the n objects of v, named rather than pointed to, so that
     the caller can ask without the engine's lock while a reload may free
     the objects. A shared store asks in one exchange per batch of
     objects, not one per object. OBSPAM_OK, OBSPAM_ENOMEM, or
     OBSPAM_EUNAVAIL when the store does not answer (out is then
     undefined, and read, which the local counters answer, is left).
     Only between use(s, 1), called under the engine's lock, and
     use(s, -1): destroy waits for every such user, so that a store that
     a reload or obspam_set_store replaces meanwhile outlives the call.
     destroy is called under the engine's write lock: a user must not
     wait for the engine's lock before use(s, -1). */
  int (*read_named)(obspam__store *s, const obspam__named *v, size_t n,
                    int64_t now, int64_t retention, obspam__reading *out);
  void (*use)(obspam__store *s, int delta);
  /* Optional (NULL: report under the engine's lock), with use as
     read_named: report from the shared store alone, which needs no
     object of the tree, so without the engine's lock; OBSPAM_EUNAVAIL
     when it does not answer (report, under the lock, then answers from
     the local counters). */
  int (*report_shared)(obspam__store *s, int64_t from, int64_t to,
                       int64_t retention, int every, obspam__row **out,
                       size_t *n);
  /* Optional (NULL: forget drops everything, under the engine's lock),
     with use as read_named: what a shared store keeps for the n objects
     of v, which were removed and forgotten in the local store under the
     engine's write lock (obspam_remove), deleted without that lock, in
     one exchange per batch of objects; the keys it cannot delete now
     (the store does not answer) are left to the housekeeping of objects
     a reload dropped. */
  void (*forget_named)(obspam__store *s, const obspam__named *v, size_t n);
  /* Optional (NULL: history under the engine's lock), with use as
     read_named: history for the object named o, or, when o is NULL, for
     the script path; OBSPAM_EUNAVAIL when the store does not answer
     (history, under the lock, then answers from the local counters). */
  int (*history_named)(obspam__store *s, const obspam__named *o,
                       const char *script, size_t script_len, int64_t from,
                       int64_t to, int64_t retention, obspam__hour **out,
                       size_t *n);
  /* Optional (NULL: a reset is a charge, made under the engine's lock),
     with use as read_named: the shared store's half of a reset of the
     object named o (a charge with reset set does both halves), at *t,
     which it moves forward to the newest time it saw. OBSPAM_OK, or
     OBSPAM_EUNAVAIL when it does not answer (nothing was reset there).
     The caller then resets the local counters, without journaling, as
     charge does on a shared store. */
  int (*reset_named)(obspam__store *s, const obspam__named *o, int64_t *t,
                     int64_t retention);
} obspam__store_ops;

struct obspam__store {
  const obspam__store_ops *ops;
};

/* The callback of obspam__tree_free and obspam__tree_remove for an
   object going away: the store (store) drops what it holds for it. */
static inline void obspam__store_forget(obspam__obj *o, void *store) {
  obspam__store *s = store;

  s->ops->forget(s, o);
}

/* s, taken for calls without the engine's lock (obspam__store_ops.use)
   when it has such calls; else NULL. Under the engine's lock. */
static inline obspam__store *obspam__store_take(obspam__store *s) {
  if (s->ops->use == NULL)
    return NULL;
  s->ops->use(s, 1);
  return s;
}

/* The in-memory store. NULL when out of memory. */
obspam__store *obspam__mem_store_new(void);
/* With on set, s, an in-memory store, makes every charge the long way,
   as a charge whose objects are not warm is made (store_mem.c): for the
   tests that compare the two ways. */
void obspam__mem_store_long_way(obspam__store *s, int on);

/* ---- Stores opened from a URI (store_uri.c) ------------------------------ */

/* NULL when uri names a store this library can open
   ("redis://HOST:PORT[/DB]", "sentinel://HOST:PORT[,HOST:PORT...]/MASTER",
   either with "?pool=N", with Redis support); else what is wrong, in a
   few words. */
const char *obspam__store_uri_check(const char *uri);
/* The longest key prefix of a shared store. */
#define OBSPAM__PREFIX_MAX 128
/* NULL when prefix can start a shared store's keys: 1 to PREFIX_MAX bytes,
   no blanks, and no braces (a brace would move the hash tag that keeps an
   object's keys in one slot); else what is wrong. The C API and the
   `store-prefix` line both ask here, so they accept the same prefixes. */
const char *obspam__store_prefix_check(const char *prefix);
/* The store at uri with prefix (NULL: the default one) over local, which
   stays the caller's and must outlive it: it answers what the store at
   uri does not keep (notices, saving and loading) and stands in when
   that store does not answer. A store connects at its first use. NULL
   when out of memory or uri is bad. */
obspam__store *obspam__store_open(const char *uri, const char *prefix,
                                  obspam__store *local);

/* The Redis store (store_redis.c), for store_uri.c only. */
obspam__store *obspam__redis_store_new(const char *uri, const char *prefix,
                                       obspam__store *local);

#endif
