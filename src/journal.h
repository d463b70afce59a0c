/* SPDX-License-Identifier: MIT */
/* The journal of decisions since the last snapshot (journal.c). */
#ifndef OBSPAM_JOURNAL_H
#define OBSPAM_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct obspam__journal obspam__journal;

/* The record callback of a charge (store.h), journal being the
   obspam__journal: records a charge the store just made, under the
   store's lock. Encodes it into the journal's buffer (writing the buffer
   out first when it is full). Cannot fail: a record the file does not
   take is counted lost and reported by the next flush. */
void obspam__journal_record(void *journal, const obspam__charge *ch);
/* Its batch form (store.h, record_many): records ch[0..n) in order under
   one hold of the journal's lock, as n calls of obspam__journal_record
   would. */
void obspam__journal_record_many(void *journal, const obspam__charge *const *ch,
                                 int n);

/* For obspam_state_save. The journal of e when path is its state file,
   locked for the save (NULL when none): then the save calls
   obspam__journal_prepare before taking the counters,
   obspam__journal_cut under the store's lock as the save's cut, and
   obspam__journal_saved once the snapshot is written or failed. Called
   with the engine's read lock held. */
obspam__journal *obspam__journal_begin_save(obspam_engine *e, const char *path);
/* Opens state.journal.next for the records after the cut. OBSPAM_OK or
   OBSPAM_EIO (the save must then fail: call obspam__journal_saved). */
int obspam__journal_prepare(obspam_engine *e, obspam__journal *j);
void obspam__journal_cut(void *j);
/* Marks the records after the cut as following the snapshot with this
   payload length and checksum, before that snapshot is renamed into
   place. OBSPAM_OK or OBSPAM_EIO (the save must then fail). */
int obspam__journal_stamp(obspam_engine *e, obspam__journal *j, uint64_t length,
                          uint64_t checksum);
/* The snapshot was written (rc OBSPAM_OK) or not: the journal is replaced
   by the records after the cut, or keeps them after its own. Unlocks the
   journal for saves. Returns rc, or OBSPAM_EIO when the journal could not
   follow. */
int obspam__journal_saved(obspam_engine *e, obspam__journal *j, int rc);
/* Whether path is the state file of the open journal (the engine's read
   lock held). */
int obspam__journal_owns(obspam_engine *e, const char *path);

/* Closes and frees the journal of e, if any, without the engine's lock
   (obspam_engine_free). */
void obspam__journal_free(obspam_engine *e);

#endif
