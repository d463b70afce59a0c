/* SPDX-License-Identifier: MIT */
/* The index of objects by name (src/index.c): lookups after every mix of
   adding and removing, checked against a plain array, through growth and
   the backward shift that deletion does in place of tombstones. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "tree.h"

#define N 5000

static obspam__obj objs[N];
static char names[N][24];
static int present[N];
static obspam__index x;

static void setup(void) {
  int i;

  memset(&x, 0, sizeof(x));
  memset(present, 0, sizeof(present));
  for (i = 0; i < N; i++) {
    int n = snprintf(names[i], sizeof(names[i]), "user%d@example.com", i);

    memset(&objs[i], 0, sizeof(objs[i]));
    objs[i].name = names[i];
    objs[i].len = (uint16_t)n;
  }
}

static void teardown(void) { obspam__index_free(&x); }

TestSuite(index, .init = setup, .fini = teardown);

static void put(int i) {
  cr_assert_eq(obspam__index_reserve(&x), 0);
  obspam__index_put(&x, &objs[i]);
  present[i] = 1;
}

static void del(int i) {
  obspam__index_del(&x, &objs[i]);
  present[i] = 0;
}

/* Every name is found exactly when it is present, as its own object. */
static void check_all(void) {
  size_t n = 0;
  int i;

  for (i = 0; i < N; i++) {
    obspam__obj *o = obspam__index_find(&x, names[i], objs[i].len);

    cr_assert_eq(o, present[i] ? &objs[i] : NULL, "%s", names[i]);
    n += (size_t)present[i];
  }
  cr_assert_eq(x.n, n);
  /* Never more than half full. */
  cr_assert_leq(x.n * 2, x.mask + 1);
}

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

Test(index, empty_finds_nothing) {
  cr_assert_null(obspam__index_find(&x, "a", 1));
  cr_assert_eq(x.n, 0);
  cr_assert_null(x.slot);
}

Test(index, grows_from_16_slots_by_doubling) {
  int i;

  put(0);
  cr_assert_eq(x.mask + 1, 16);
  for (i = 1; i < 8; i++)
    put(i);
  cr_assert_eq(x.mask + 1, 16);
  put(8);
  cr_assert_eq(x.mask + 1, 32);
  for (i = 9; i < N; i++)
    put(i);
  cr_assert_eq(x.mask + 1, 16384);
  check_all();
}

Test(index, a_name_differing_only_in_length_or_bytes_is_not_found) {
  put(1);
  cr_assert_null(obspam__index_find(&x, names[1], objs[1].len - 1));
  cr_assert_null(obspam__index_find(&x, "user1@example.coM", objs[1].len));
  cr_assert_eq(obspam__index_find(&x, "user1@example.com", objs[1].len),
               &objs[1]);
}

Test(index, random_adds_and_removes_match_the_reference) {
  uint64_t s = 0x9e3779b97f4a7c15u;
  int round, i;

  for (round = 0; round < 20; round++) {
    for (i = 0; i < N / 2; i++) {
      int k = (int)(rnd(&s) % N);

      if (present[k])
        del(k);
      else
        put(k);
    }
    check_all();
  }
}

Test(index, removing_everything_leaves_every_slot_empty) {
  size_t i;
  int k;

  for (k = 0; k < N; k++)
    put(k);
  for (k = N - 1; k >= 0; k -= 2)
    del(k);
  check_all();
  for (k = N - 2; k >= 0; k -= 2)
    del(k);
  check_all();
  for (i = 0; i <= x.mask; i++)
    cr_assert_null(x.slot[i].obj);
}

static void count(obspam__obj *o, void *ud) {
  (void)o;
  ++*(int *)ud;
}

Test(index, each_visits_every_object_once) {
  int k, seen = 0;

  for (k = 0; k < N; k += 3)
    put(k);
  obspam__index_each(&x, count, &seen);
  cr_assert_eq(seen, (N + 2) / 3);
}

/* obspam__index_find_guessed finds what obspam__index_find_hash finds,
   whatever the guess: the one obspam__index_guess gives, NULL, or another
   object of the index, as a guess is when two names share a hash. Every
   even object is in the index, every odd one not. */
Test(index, find_guessed_as_find_on_random_guesses) {
  uint64_t s = 0x2545f4914f6cdd1du;
  int i, round, taken = 0, walked = 0;

  for (i = 0; i < N; i += 2)
    put(i);
  for (round = 0; round < 4 * N; round++) {
    int k = (int)(rnd(&s) % N), how = (int)(rnd(&s) % 3);
    uint64_t h = obspam__index_hash(names[k], objs[k].len);
    obspam__obj *guess = how == 0   ? obspam__index_guess(&x, h)
                         : how == 1 ? NULL
                                    : &objs[rnd(&s) % (N / 2) * 2];
    obspam__obj *want = obspam__index_find_hash(&x, names[k], objs[k].len, h);

    cr_assert_eq(
        obspam__index_find_guessed(&x, names[k], objs[k].len, h, guess), want,
        "%s, guess %s", names[k], guess != NULL ? guess->name : "none");
    taken += guess != NULL && guess == want;
    walked += guess != want;
  }
  cr_assert(taken >= N / 2 && walked >= N, "%d guesses taken, %d walks", taken,
            walked);
}

/* A tree of 40 subscriptions, each with a domain of 25 mailboxes. */
static void tree_of_mailboxes(obspam__tree *t) {
  obspam__obj *sub = NULL, *dom = NULL, *o;
  obspam__name n;
  char text[64];
  int i;

  obspam__tree_init(t);
  for (i = 0; i < 1000; i++) {
    if (i % 25 == 0) {
      snprintf(text, sizeof text, "s%d", i / 25);
      cr_assert_null(obspam__name_norm(text, OBSPAM__NAME_PLAIN, &n));
      cr_assert_eq(obspam__tree_add(t, OBSPAM_SUBSCRIPTION, &n, NULL, &sub),
                   OBSPAM_OK);
      snprintf(text, sizeof text, "d%d.example", i / 25);
      cr_assert_null(obspam__name_norm(text, OBSPAM__NAME_PLAIN, &n));
      cr_assert_eq(obspam__tree_add(t, OBSPAM_DOMAIN, &n, sub, &dom),
                   OBSPAM_OK);
    }
    snprintf(text, sizeof text, "user%d@d%d.example", i, i / 25);
    cr_assert_null(obspam__name_norm(text, OBSPAM__NAME_MAILBOX, &n));
    cr_assert_eq(obspam__tree_add(t, OBSPAM_MAILBOX, &n, dom, &o), OBSPAM_OK);
  }
}

/* obspam__tree_find_exact, which looks a text up as it is written, finds
   the mailbox that normalising the text and looking the name up finds,
   or nothing; and it finds it whenever the text is the name as it
   stands. Random texts: a declared mailbox's or an undeclared one's,
   with letters in upper case, a blank, a second '@', a byte cut off, or
   as they are; with the slot's guess and without. */
Test(index, find_exact_as_normalised_find_on_random_texts) {
  obspam__tree t;
  uint64_t s = 0x9e3779b97f4a7c15u;
  int round, hits = 0, normalised = 0;

  tree_of_mailboxes(&t);
  for (round = 0; round < 200000; round++) {
    char text[80];
    size_t len, k;
    uint64_t r = rnd(&s), h;
    obspam__obj *exact, *slow = NULL;
    obspam__name n;

    /* Mostly the domain of the mailbox of that number, if declared. */
    snprintf(text, sizeof text, "user%d@d%d.example", (int)(r % 1100),
             (int)((r >> 12) % 8 == 0 ? (r >> 15) % 44 : r % 1100 / 25));
    len = strlen(text);
    switch ((r >> 20) % 6) {
    case 0: /* letters in upper case */
      for (k = 0; k < len; k++)
        if (((r >> (24 + k % 32)) & 1) && text[k] >= 'a' && text[k] <= 'z')
          text[k] = (char)(text[k] - 'a' + 'A');
      break;
    case 1:
      text[(r >> 24) % len] = ' ';
      break;
    case 2:
      text[(r >> 24) % len] = '@';
      break;
    case 3:
      text[--len] = '\0';
      break;
    default: /* as it is */
      break;
    }
    h = obspam__index_hash(text, len);
    exact = obspam__tree_find_exact(
        &t, text, len, h,
        (r >> 60) & 1 ? obspam__index_guess(&t.index[OBSPAM_MAILBOX], h)
                      : NULL);
    if (obspam__name_norm(text, OBSPAM__NAME_ANY, &n) == NULL && n.at < n.len)
      slow = obspam__tree_find(&t, OBSPAM_MAILBOX, n.s, n.len);
    cr_assert(exact == NULL || exact == slow, "\"%s\": found %s, not %s", text,
              exact->name, slow != NULL ? slow->name : "nothing");
    if (slow != NULL && n.len == len && memcmp(n.s, text, len) == 0)
      cr_assert_eq(exact, slow, "\"%s\": not found as it stands", text);
    hits += exact != NULL;
    normalised += exact == NULL && slow != NULL;
  }
  cr_assert(hits >= 10000 && normalised >= 10000,
            "%d found as written, %d only once normalised", hits, normalised);
  obspam__tree_free(&t, NULL, NULL);
}

/* obspam__same_bytes says what memcmp says, on random pairs of 0 to 40
   bytes: equal, or with one byte changed anywhere (the words it compares
   overlap in the middle), read from the end of an allocation of their
   own size so that a read past either end would be caught by a
   sanitizer. */
Test(index, same_bytes_as_memcmp_on_random_pairs) {
  uint64_t s = 0x853c49e6748fea9bu;
  int round, differ = 0;

  for (round = 0; round < 200000; round++) {
    size_t len = (size_t)(rnd(&s) % 41), k;
    char *a = malloc(len + 1), *b = malloc(len + 1);
    uint64_t r = rnd(&s);

    cr_assert(a != NULL && b != NULL);
    for (k = 0; k < len; k++)
      a[k] = b[k] = (char)('a' + rnd(&s) % 3);
    if (len > 0 && r % 2 == 0)
      b[(r >> 8) % len] ^= (char)(1 << ((r >> 16) % 8));
    cr_assert_eq(obspam__same_bytes(a, b, len), memcmp(a, b, len) == 0,
                 "round %d, %zu bytes", round, len);
    differ += memcmp(a, b, len) != 0;
    free(a);
    free(b);
  }
  cr_assert_geq(differ, 50000, "only %d pairs differ", differ);
}
