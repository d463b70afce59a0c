/* SPDX-License-Identifier: MIT */
/* The limit tree: plans, subscriptions, domains and mailboxes, each kind in
   its own index by name, linked to their parents and children. */
#ifndef OBSPAM_TREE_H
#define OBSPAM_TREE_H

#include <stdint.h>
#include <string.h>

#include "index.h"
#include "names.h"
#include "table.h"

struct obspam__ring;
struct obspam__hist;

/* Index into obspam__obj.own and obspam__tree.server: a limit kind. */
#define OBSPAM__LIM(kind) ((kind)-OBSPAM_SUBSCRIPTION)

/* The windows of a limit, by index: [OBSPAM__W_MINUTE] is twelve
   5-second buckets, [OBSPAM__W_HOUR] sixty 1-minute buckets,
   [OBSPAM__W_DAY] twenty-four clock hours (SPEC.md section 2). */
#define OBSPAM__WINDOWS 3
#define OBSPAM__W_MINUTE 0
#define OBSPAM__W_HOUR 1
#define OBSPAM__W_DAY 2

/* The seconds of window w (OBSPAM_WINDOW_*), and the index of a window
   given in seconds (-1: none). */
static inline int64_t obspam__window_seconds(int w) {
  static const int64_t seconds[OBSPAM__WINDOWS] = {60, 3600, 86400};

  return seconds[w];
}
static inline int obspam__window_index(int64_t seconds) {
  return seconds == 60      ? OBSPAM__W_MINUTE
         : seconds == 3600  ? OBSPAM__W_HOUR
         : seconds == 86400 ? OBSPAM__W_DAY
                            : -1;
}

/* The minute and day windows' own values and the recipients cap of an
   object, apart from the hour's: the many objects that set none of them
   pay one pointer. */
typedef struct obspam__extra {
  int64_t own[2][3]; /* [0 minute, 1 day][limit kind], as obspam__obj.own */
  int64_t max_rcpt;  /* a count, OBSPAM_UNLIMITED or OBSPAM_INHERIT */
} obspam__extra;

typedef struct obspam__obj {
  /* What a decision reads comes first: the name it compares, the parent
     it walks to, the limits and the counters. */
  uint16_t len;
  uint8_t kind;
  /* The journal's mark of the definition of the object in its file
     (journal.c); 0 none. In the padding before name. */
  uint32_t journal_mark;
  char *name;                 /* lower case, NUL-terminated, after the object */
  struct obspam__obj *parent; /* plan, subscription or domain; or NULL */
  /* Own values by limit kind (OBSPAM__LIM): the object's own limit at its
     own kind, and the defaults it gives the kinds below it. */
  int64_t own[3];
  obspam__extra *extra;            /* NULL: all of them inherit */
  struct obspam__ring *ring;       /* window counters; NULL while idle */
  struct obspam__hist *hist;       /* hourly history; NULL when none is kept */
  struct obspam__obj *child;       /* first child */
  struct obspam__obj *next, *prev; /* siblings under the same parent */
} obspam__obj;

typedef struct obspam__plan {
  obspam__obj obj;
  int scripts; /* 1, 0 or OBSPAM_INHERIT */
} obspam__plan;

typedef struct obspam__sub {
  obspam__obj obj;
  UT_hash_handle hh_uid; /* in obspam__tree.by_uid while uid >= 0 */
  int64_t uid;           /* -1: none */
  int scripts;           /* 1, 0 or OBSPAM_INHERIT */
  char *contact;         /* NULL: none */
} obspam__sub;

/* The objects of one kind in name order (the bytes of their lower-case
   names), for paging through them (obspam_enumerate). They are kept in
   blocks of at most OBSPAM__BLOCK pointers, each block in order and the
   blocks in order, none empty: an addition moves the rest of one block
   (and splits it when it is full), where one array would move the rest
   of every name, megabytes at a million mailboxes. */
#define OBSPAM__BLOCK 512

typedef struct obspam__block {
  size_t n;     /* v[0..n) */
  size_t marks; /* of a removal under way (tree.c) */
  struct obspam__obj *v[OBSPAM__BLOCK];
} obspam__block;

typedef struct obspam__sorted {
  obspam__block **b; /* b[0..nb), room for bcap */
  size_t nb, bcap;
  size_t n; /* objects in all the blocks */
  /* A block that obspam__tree_reserve allocated for the next split (or
     the first block), so that an addition after it cannot fail. */
  obspam__block *spare;
} obspam__sorted;

/* A place in a name order: block b, slot i; b == nb past the end. */
typedef struct obspam__spos {
  size_t b, i;
} obspam__spos;

/* The object at p, or NULL past the end; obspam__sorted_next moves p to
   the next one. */
static inline struct obspam__obj *obspam__sorted_at(const obspam__sorted *s,
                                                    obspam__spos p) {
  return p.b < s->nb ? s->b[p.b]->v[p.i] : NULL;
}
static inline void obspam__sorted_next(const obspam__sorted *s,
                                       obspam__spos *p) {
  if (++p->i == s->b[p->b]->n) {
    p->b++;
    p->i = 0;
  }
}

typedef struct obspam__tree {
  obspam__index index[5]; /* objects by kind; SERVER's slot is unused */
  /* By kind: the objects of the index in name order. A parsed tree gets
     it in one sort once the parse is done (obspam__tree_order), before
     any reader sees the tree; every change keeps it after that, under
     the write lock, so that no reader ever sorts. */
  obspam__sorted sorted[5];
  /* While set, the tree is being parsed and sorted is left empty: one
     sort at the end costs less than an insertion per object. */
  int bulk;
  obspam__sub *by_uid;
  /* An entry of by_uid that is no subscription (uid -2): with it the table
     is never emptied, and so never freed, by moving a uid. */
  obspam__sub uid_anchor;
  int64_t server[3];          /* server defaults by limit kind: the hour */
  obspam__extra server_extra; /* and the others, never OBSPAM_INHERIT */
  int server_scripts;
  /* How many objects of the tree hold extra values. While none does, the
     effective minute and day limits and the cap are the server's, with no
     walk up the tree: a decision on a tree that limits the hour only pays
     one comparison for them. */
  size_t extras;
  /* The subscription charged for mail of a script whose uid no
     subscription owns (obspam_set_unknown_uid_subscription), by name so
     that its removal needs no care; "" none. */
  char unknown_uid[OBSPAM_NAME_MAX + 1];
} obspam__tree;

void obspam__tree_init(obspam__tree *t);
void obspam__tree_free(obspam__tree *t, void (*forget)(obspam__obj *, void *),
                       void *ud);

/* Lookups by an already normalised name; NULL when absent. */
obspam__obj *obspam__tree_find(const obspam__tree *t, int kind,
                               const char *name, size_t len);
/* Whether the len bytes at a and b are the same, as memcmp says: a
   name of 8 to 32 bytes (most logins) is compared in words that overlap,
   none past either end, instead of in a call. */
static inline int obspam__same_bytes(const char *a, const char *b, size_t len) {
  uint64_t x[4], y[4];

  if (len < 8 || len > 32)
    return memcmp(a, b, len) == 0;
  memcpy(&x[0], a, 8);
  memcpy(&y[0], b, 8);
  memcpy(&x[1], a + len - 8, 8);
  memcpy(&y[1], b + len - 8, 8);
  if (len <= 16)
    return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
  memcpy(&x[2], a + 8, 8);
  memcpy(&y[2], b + 8, 8);
  memcpy(&x[3], a + len - 16, 8);
  memcpy(&y[3], b + len - 16, 8);
  return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0;
}

/* obspam__index_find_hash(x, name, len, hash), when guess is what
   obspam__index_guess(x, hash) gave (or NULL): the guess itself when it
   has the name, as names are unique in an index, so that a batch that
   guessed ahead (decide.c) does not walk the slots again; else the walk. */
static inline obspam__obj *obspam__index_find_guessed(const obspam__index *x,
                                                      const char *name,
                                                      size_t len, uint64_t hash,
                                                      obspam__obj *guess) {
  if (guess != NULL && guess->len == len &&
      obspam__same_bytes(guess->name, name, len))
    return guess;
  return obspam__index_find_hash(x, name, len, hash);
}

/* The mailbox named text as it is written (len bytes, at most
   OBSPAM_NAME_MAX; hash its obspam__index_hash), without normalising it;
   guess as for obspam__index_find_guessed. A text that is a mailbox's
   name as it stands is normalised already (lower case, one '@', no blank
   or control character), so this finds what normalising it first and
   looking the name up would find, or nothing. */
static inline obspam__obj *obspam__tree_find_exact(const obspam__tree *t,
                                                   const char *text, size_t len,
                                                   uint64_t hash,
                                                   obspam__obj *guess) {
  return obspam__index_find_guessed(&t->index[OBSPAM_MAILBOX], text, len, hash,
                                    guess);
}

/* The subscription that owns uid (>= 0), or NULL. */
obspam__sub *obspam__tree_by_uid(const obspam__tree *t, int64_t uid);

/* Adds a child under parent (which must be of the kind above). Returns
   OBSPAM_OK, OBSPAM_EEXIST or OBSPAM_ENOMEM; *out is the new object. */
int obspam__tree_add(obspam__tree *t, int kind, const obspam__name *name,
                     obspam__obj *parent, obspam__obj **out);
/* Unlinks and frees o and its subtree; forget is called for each object
   before it is freed, children first. */
void obspam__tree_remove(obspam__tree *t, obspam__obj *o,
                         void (*forget)(obspam__obj *, void *), void *ud);
/* Makes o, a mailbox or domain allocated alone (its name after it, in
   one allocation, and not in the tree), an object of the tree under
   parent, as obspam__tree_add would have made it: OBSPAM_OK or
   OBSPAM_ENOMEM (then nothing changed). */
int obspam__tree_adopt(obspam__tree *t, obspam__obj *o, obspam__obj *parent);
/* Moves o under another parent of the same kind. */
void obspam__tree_move(obspam__obj *o, obspam__obj *parent);
/* Sets or clears (uid -1) the uid of a subscription: OBSPAM_OK, EEXIST or
   ENOMEM. */
int obspam__tree_set_uid(obspam__tree *t, obspam__sub *s, int64_t uid);
/* The extra values of o, an object of t, made (every one OBSPAM_INHERIT)
   when it has none yet; NULL when memory ran out. */
obspam__extra *obspam__tree_extra(obspam__tree *t, obspam__obj *o);
/* Frees the extra values of o when every one of them is OBSPAM_INHERIT
   again, so that a tree whose windows and caps were all set back to
   inherit decides as fast as one that never had any. */
void obspam__tree_extra_trim(obspam__tree *t, obspam__obj *o);

/* The effective limit of a subscription, domain or mailbox: its own value,
   else the nearest ancestor's default for its kind, else the server's. */
static inline int64_t obspam__effective(const obspam__tree *t,
                                        const obspam__obj *o) {
  int lim = OBSPAM__LIM(o->kind);
  const obspam__obj *p;

  for (p = o; p != NULL; p = p->parent)
    if (p->own[lim] != OBSPAM_INHERIT)
      return p->own[lim];
  return t->server[lim];
}

/* The effective limit of o in window w (OBSPAM__W_*), as
   obspam__effective is the hour's. */
static inline int64_t obspam__effective_w(const obspam__tree *t,
                                          const obspam__obj *o, int w) {
  int lim = OBSPAM__LIM(o->kind), x = w == OBSPAM__W_DAY;
  const obspam__obj *p;

  if (w == OBSPAM__W_HOUR)
    return obspam__effective(t, o);
  if (t->extras == 0)
    return t->server_extra.own[x][lim];
  for (p = o; p != NULL; p = p->parent)
    if (p->extra != NULL && p->extra->own[x][lim] != OBSPAM_INHERIT)
      return p->extra->own[x][lim];
  return t->server_extra.own[x][lim];
}

/* The recipients cap that applies to o: its own, else its nearest
   ancestor's, else the server's. */
static inline int64_t obspam__effective_cap(const obspam__tree *t,
                                            const obspam__obj *o) {
  const obspam__obj *p;

  if (t->extras == 0)
    return t->server_extra.max_rcpt;
  for (p = o; p != NULL; p = p->parent)
    if (p->extra != NULL && p->extra->max_rcpt != OBSPAM_INHERIT)
      return p->extra->max_rcpt;
  return t->server_extra.max_rcpt;
}

/* The subscription that owns a subscription, domain or mailbox. */
static inline const obspam__sub *obspam__owner(const obspam__obj *o) {
  while (o != NULL && o->kind != OBSPAM_SUBSCRIPTION)
    o = o->parent;
  return (const obspam__sub *)o;
}

/* The objects of kind in name order. Under the engine's read lock; the
   result lives until the next change of the tree. */
const obspam__sorted *obspam__tree_sorted(const obspam__tree *t, int kind);
/* The place of the first object of s whose name sorts after name (every
   one: ""): a binary search over the blocks' first names, then one in
   the block. */
obspam__spos obspam__sorted_after(const obspam__sorted *s, const char *name);

/* Before a parser adds the objects of a fresh tree: the name order is
   not kept until obspam__tree_order makes it. */
void obspam__tree_bulk(obspam__tree *t);
/* Makes the name order of every kind in one sort, without any lock (the
   tree is the parser's), and keeps it from then on: OBSPAM_OK, or
   OBSPAM_ENOMEM (then the tree is to be freed). */
int obspam__tree_order(obspam__tree *t);

/* Makes room for one more object of kind, in its index and its name
   order: OBSPAM_OK or OBSPAM_ENOMEM (then nothing changed). After it,
   obspam__tree_adopt of an object of that kind cannot fail. */
int obspam__tree_reserve(obspam__tree *t, int kind);

/* The subscription a script of uid is charged to: the one that owns
   uid, else the unknown-uid subscription when it exists; NULL: none. */
obspam__sub *obspam__tree_script_sub(const obspam__tree *t, int64_t uid);

/* Whether scripts of subscription s may send. */
int obspam__scripts_allowed(const obspam__tree *t, const obspam__sub *s);

/* The scripts setting of a plan or a subscription (1, 0 or
   OBSPAM_INHERIT), which the two keep at different places; NULL for the
   other kinds. */
int *obspam__scripts_of(obspam__obj *o);

/* A zeroed object of size bytes (a structure that begins with an
   obspam__obj) of kind, with name[0..len) copied after it,
   NUL-terminated, in the same allocation, as every object of the library
   keeps its name; free() frees both. NULL when out of memory. */
obspam__obj *obspam__obj_new(size_t size, int kind, const char *name,
                             size_t len);

#endif
