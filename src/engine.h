/* SPDX-License-Identifier: MIT */
/* The engine: what a configuration load replaces as one piece (options,
   tree, whitelist), the counter store, and the locks. */
#ifndef OBSPAM_ENGINE_H
#define OBSPAM_ENGINE_H

#include <pthread.h>

#include "implicit.h"
#include "marks.h"
#include "obspam.h"
#include "options.h"
#include "store.h"
#include "tree.h"
#include "whitelist.h"

/* The threads that decide the batches of obspam_decide_start on a shared
   store: each takes the batches queued, up to OBSPAM__ASYNC_MESSAGES
   messages (at least one batch), into one exchange. As many as the
   pool's default connections: with Redis 1 ms away, 16 connections of
   the policy server got 6,071 answers a second from 2 threads and 7,715
   from 4 (tests/bench/redis_compare.sh). */
#define OBSPAM__ASYNC_THREADS 4
#define OBSPAM__ASYNC_MESSAGES 256

/* Everything a configuration describes. */
typedef struct obspam__conf {
  int64_t opt[OBSPAM__OPT_MAX + 1]; /* by OBSPAM_OPT_* */
  obspam__tree tree;
  obspam__whitelist wl;
  /* The local networks (OBSPAM_OPT_COUNT_UNAUTHENTICATED 2); empty means
     the default ones (obspam__local_contains). */
  obspam__whitelist local;
  /* The `forward` and `list` lines (marks.h). */
  obspam__marks marks;
  /* The `store` and `store-prefix` lines of a configuration file; NULL
     when absent. Unused by configurations made through the C API. */
  char *store_uri, *store_prefix;
} obspam__conf;

struct obspam_engine {
  /* Readers: decisions and queries. Writers: every change to conf, and
     the swap of conf on a reload. Counters have their own lock inside the
     store, taken after this one. */
  pthread_rwlock_t lock;
  obspam__conf *conf;
  /* The store decisions charge: local, or a shared store opened over it
     (store_uri.c). local lives as long as the engine, so what only it
     answers (saving and loading a snapshot) never meets a store that
     obspam_set_store has freed. */
  obspam__store *store;
  obspam__store *local;
  /* 1 while store is a shared one: written under the write lock with
     store, read atomically by a batch choosing its groups. */
  int shared;
  /* Which kinds of marks the configuration holds (OBSPAM__MARKS_*):
     written under the write lock by obspam__marks_seen whenever they may
     change, read atomically by obspam_forward_lookup and
     obspam_mailing_list_match, which the policy server asks for every
     request and which, with none declared (the usual case), answer
     without the lock. */
  unsigned marks;
  void (*notify)(const obspam_notice *n, void *ud); /* under lock */
  void *notify_ud;
  /* The newest message time any decision has seen; read and raised
     atomically, without a lock. */
  int64_t newest;
  /* The store is a shared one set by a configuration file's `store` line
     (a configuration without one then goes back to memory), not by
     obspam_set_store. */
  int store_from_config;
  /* The implicit mailboxes; they outlive a reload, moved to the new
     tree's domains. */
  obspam__implicit imp;
  /* The journal (journal.c), set and cleared under the write lock; NULL
     when none is open. A replay that failed applied replay_done records
     of the journal that follows the snapshot replay_id: the next
     obspam_journal_open goes on from there. */
  struct obspam__journal *journal;
  /* Set with journal: what obspam_engine_free calls to flush and close
     it, so that the engine does not call up into journal.c. */
  void (*journal_free)(obspam_engine *e);
  size_t replay_done;
  uint64_t replay_id[2];

  /* One replacement of the configuration at a time: the store prepares
     and finishes one without the engine's lock (obspam__conf_replace). */
  pthread_mutex_t swap_lock;

  pthread_mutex_t err_lock;
  char errmsg[512];

  /* obspam_decide_start on a shared store (async.c): the batches queued
     for the engine's threads, oldest first, under async_lock. */
  pthread_mutex_t async_lock;
  pthread_cond_t async_work; /* a batch was queued, or stop */
  pthread_cond_t async_idle; /* the queue is empty and no thread busy */
  struct obspam__job *queue, *queue_tail;
  int threads, busy, stop;
  pthread_t thread[OBSPAM__ASYNC_THREADS];
};

/* Decides msgs[0..n) in order into out and rc, as obspam_decide_batch
   does, those whose how[i] has OBSPAM_DECIDE_DRY as obspam_check does
   (how may be NULL). On a shared store, every charge in one exchange
   when it can. Returns the first failure, or OBSPAM_OK (decide.c). */
int obspam__decide_many(obspam_engine *e, const obspam_message *const *msgs,
                        obspam_verdict *const *out, int *rc,
                        const uint32_t *how, size_t n);
/* Waits until every batch queued by obspam_decide_start is decided and
   its done called (async.c). */
void obspam__async_drain(obspam_engine *e);
/* Drains, then ends the engine's threads (async.c). */
void obspam__async_stop(obspam_engine *e);

#define OBSPAM__MARKS_FORWARD 1u
#define OBSPAM__MARKS_LIST 2u
/* Sets e->marks from the configuration's marks. Under the write lock,
   after every change of them and every swap of the configuration. */
void obspam__marks_seen(obspam_engine *e);

/* A conf with default options, an empty tree and no whitelist. */
obspam__conf *obspam__conf_new(void);
void obspam__conf_free(obspam__conf *c, obspam__store *store);
/* Makes next the engine's configuration in one step: decisions see the
   old conf or the new one, never a mixture. Objects that exist in both
   (same kind and name) keep their counters and history; the others lose
   them. The old conf is freed after the lock is released. OBSPAM_OK, or
   OBSPAM_ENOMEM with nothing changed (next then belongs to the caller). */
int obspam__conf_replace(obspam_engine *e, obspam__conf *next);
/* Under the engine's read lock: the object of kind named n that has
   counters, the declared one or else an implicit mailbox, pinned in *held
   until the caller lets it go (obspam__implicit_unpin) before the lock;
   *held is NULL for any other answer, and NULL is neither. */
obspam__obj *obspam__find_counted(obspam_engine *e, int kind,
                                  const obspam__name *n, obspam__imb **held);
/* An obspam__successor: the object of that kind and name in conf. */
obspam__obj *obspam__conf_find(int kind, const char *name, size_t len,
                               void *conf);
/* Under the write lock: installs a parsed snapshot (store.h,
   load_install), giving the saved mailboxes that are not declared but
   whose domain is hosted an implicit mailbox, within the cap. OBSPAM_OK
   (*newest: the snapshot's newest time) or OBSPAM_ENOMEM, with nothing
   changed and parsed still the caller's. */
int obspam__load_install(obspam_engine *e, void *parsed, int64_t *newest);
/* The domain of a mailbox name in tree t, or NULL. */
obspam__obj *obspam__domain_of(const obspam__tree *t, const char *name,
                               size_t len);
/* Makes the engine's store the shared one at uri with prefix, or memory
   (uri NULL or ""), keeping the local counters. Under the write lock.
   The store it replaces goes to *old (NULL when there is none to free),
   for obspam__store_free once the lock is let go: freeing a shared
   store waits for its readers by name and its housekeeping, which must
   not hold up decisions. */
int obspam__store_switch(obspam_engine *e, const char *uri, const char *prefix,
                         obspam__store **old);
/* Frees a store that obspam__store_switch replaced; NULL does nothing. */
void obspam__store_free(obspam__store *old);

/* Takes the time t of a message into account and returns the time to use
   for it: t, or the newest time seen when t is older. */
static inline int64_t obspam__observe(obspam_engine *e, int64_t t) {
  int64_t seen = __atomic_load_n(&e->newest, __ATOMIC_RELAXED);

  while (t > seen)
    if (__atomic_compare_exchange_n(&e->newest, &seen, t, 1, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED))
      return t;
  return seen;
}

/* t, or the newest time seen when t is older; changes nothing. */
static inline int64_t obspam__newest(obspam_engine *e, int64_t t) {
  int64_t seen = __atomic_load_n(&e->newest, __ATOMIC_RELAXED);

  return t > seen ? t : seen;
}

/* Records the failure message and returns code. */
int obspam__fail(obspam_engine *e, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* OBSPAM_EINVAL with the message "fn: kind K is not what", for a kind
   argument out of the range of function fn. */
int obspam__bad_kind(obspam_engine *e, const char *fn, int kind,
                     const char *what);
/* Whether kind has counters (a subscription, domain or mailbox): OBSPAM_OK,
   or OBSPAM_EINVAL with the message "fn: only a subscription, domain or
   mailbox has what"; OBSPAM_EINVAL, with no message, for a NULL engine. */
int obspam__counted_kind(obspam_engine *e, const char *fn, int kind,
                         const char *what);

/* NULL when addr is one mailbox address, local@domain, that a notice can
   be mailed to, or why it is not: obspam__name_norm's reasons, and the
   bytes that would make a recipient header name more than one address or
   another one (',' ';' '<' '>' quotes, brackets...), a domain of other
   than letters, digits, '-' and '.', and text that is not UTF-8. The
   contact of a subscription is one, from the configuration or from
   obspam_set_contact alike. */
const char *obspam__contact_why(const char *addr);
/* The largest uid: a uid_t has 32 bits, and (uid_t)-1 (4294967295) is
   none, what setreuid(2) takes as "unchanged". */
#define OBSPAM__UID_MAX 4294967294LL

/* name normalised into out as the name of an object of kind (a mailbox's
   is an address): OBSPAM_OK, or OBSPAM_EINVAL with the message "fn: KIND
   name 'NAME': why". */
int obspam__kind_name_norm(obspam_engine *e, const char *fn, int kind,
                           const char *name, obspam__name *out);

/* Reads the whole file at path into a fresh NUL-terminated buffer. On
   failure the message is "<fn><path>: cannot open: <reason>" (or cannot
   read, out of memory) and the code OBSPAM_EIO or OBSPAM_ENOMEM. With
   state, a file of a state (the snapshot, the journal's files), read
   through obspam__file_read_regular: a FIFO or a device planted at one of
   the state's paths is refused ("<fn><path>: not a regular file") rather
   than waited for or read, and a symbolic link is not followed. */
int obspam__read_file(obspam_engine *e, const char *fn, const char *path,
                      int state, char **out, size_t *len);

/* The status of o at now into out, as obspam_stats_get gives it (the
   fields out->struct_size holds). Under the engine's read lock, with o
   pinned when it is an implicit mailbox (decide.c). */
void obspam__stats_fill(obspam_engine *e, const obspam__obj *o, int64_t now,
                        obspam_stats *out);

/* What the store gave for o when it was read beforehand (without the
   engine's lock: obspam__store_ops.read_named), or NULL to read it now. */
typedef const obspam__reading *(*obspam__known)(const obspam__obj *o, void *ud);

/* obspam__stats_fill with the readings that known gives for o and the
   ancestors its status looks at, so that a shared store is not asked
   under the engine's lock; those it does not give are read. */
void obspam__stats_fill_known(obspam_engine *e, const obspam__obj *o,
                              int64_t now, obspam__known known, void *ud,
                              obspam_stats *out);

/* obspam_stats_get's status of the object of kind named n on a shared
   store, its counters read without the engine's lock (panel.c):
   OBSPAM_OK, OBSPAM_ENOTFOUND, or OBSPAM_EUNAVAIL when the store reads
   nothing by name or does not answer (the caller then reads under the
   lock). */
int obspam__stats_named(obspam_engine *e, int kind, const obspam__name *n,
                        int64_t now, obspam_stats *out);

/* Names o, found by its name n, for a call of the shared store by name
   once the engine's lock is let go (panel.c): its kind and name, and the
   name of its subscription, which makes its keys, copied into sub
   (OBSPAM_NAME_MAX + 1 bytes). Under the engine's lock. */
void obspam__named_set(obspam__named *on, char *sub, const obspam__obj *o,
                       const obspam__name *n);

/* Structures grow at their end (API.md "Additions in 1.3"): a caller
   compiled against an older header passes a smaller struct_size. The
   size of a structure up to and including field, and whether the
   caller's structure p holds field. */
#define OBSPAM__SIZE_TO(type, field)                                           \
  (offsetof(type, field) + sizeof(((type *)0)->field))
#define OBSPAM__HAS(p, type, field)                                            \
  ((p)->struct_size >= OBSPAM__SIZE_TO(type, field))
/* Sets a field the caller's structure holds; leaves a shorter one alone. */
#define OBSPAM__SET(p, type, field, value)                                     \
  do {                                                                         \
    if (OBSPAM__HAS(p, type, field))                                           \
      (p)->field = (value);                                                    \
  } while (0)

#endif
