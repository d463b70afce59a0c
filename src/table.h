/* SPDX-License-Identifier: MIT */
/* uthash, configured for this library: xxHash as the hash function and
   allocation failures reported instead of exiting the process. Include
   this instead of <uthash.h>; a file that adds to a table must define
   uthash_nonfatal_oom(obj) before including it when it needs to know. */
#ifndef OBSPAM_TABLE_H
#define OBSPAM_TABLE_H

#include "hash.h"

#define HASH_FUNCTION(keyptr, keylen, hashv)                                   \
  ((hashv) = (unsigned)obspam__hash((keyptr), (size_t)(keylen)))
#define HASH_NONFATAL_OOM 1

#include <uthash.h>

#endif
