/* SPDX-License-Identifier: MIT */
/* obspam_state_save and obspam_state_load: the snapshot file.

   Layout, all integers little-endian:

     offset  size  field
          0     8  magic "OBSPAMST"
          8     4  format version (5; 1.3 wrote 4, 1.3 before resets 3,
                   before the minute and day windows 2, 1.0 to 1.2 1)
         12     4  reserved, 0
         16     8  payload length in bytes
         24     8  XXH3-64 of the payload
         32     -  payload, written by the store (store_mem_snapshot.c):

     i64 newest message time
     u32 count of objects, then for each (mostly least recently active
       first; a save in progress writes an object that is about to
       change out of turn, and the loader does not depend on the order):
       u8 kind (2 subscription, 3 domain, 4 mailbox, 5 script)
       u16 name length, name bytes (lower case; a script's path as given)
       i64 last refusal
       i64 x9 the notification period in progress: start, end, sent,
              refused, over the limit, first and last attempt over the
              limit, the limit at the last one and its window (seconds:
              60, 3600 or 86400; 0 the recipients cap, forbidden scripts
              or none)
       i64 x3 the last reset (obspam_reset; 0 none), what the hour
              record of its clock hour had sent before it (the day
              window leaves that out), and a script's uid of its last
              message (-1 unknown, and for every other kind)
       u32 count of hours, then for each, oldest first:
              i64 hour start, sent, refused, over the limit, first and
              last attempt (over the limit; for a script, refused), the
              window of the last one (as above), forwards (of sent) and
              mailing-list deliveries (exempt or charged)
       u8 has a window; if 1: i64 newest minute, then the buckets that
              are not zero (bucket i holds minute m where m % 60 == i):
              u8 count, then count x (u8 i, i64 sent) in rising i;
              u8 count, then count x (u8 i, u32 refused) in rising i;
              u8 count, then count x (u8 i, u32 over the limit) in
              rising i;
              then the minute window: i64 newest 5-second bucket (t div
              5), u8 count, then count x (u8 i, i64 sent) in rising i
              (bucket i holds k where k % 12 == i)
     u32 count of notices not yet emitted, then for each:
       u8 kind; three strings (u16 length or 0xffff for none, bytes):
       name, subscription, contact; i64 x9: limit, its window (as
       above), sent, refused, over the limit, first and last attempt over
       the limit, period start, period end

   The day window has nothing of its own: it is the last 24 hours of
   the history, which the store keeps whatever the retention.

   Format 4 is format 5 without the forwards and list deliveries of an
   hour: they load as 0.

   Format 3 is format 4 without the three numbers of the reset and the
   uid: no reset, uids unknown.

   Format 2 is format 3 without the windows: no window in the period, an
   hour or a notice, no minute window after the buckets. Its attempts
   over the limit load as over the hour's (3600), and the minute window
   starts empty.

   Format 1 is format 2 without what is about attempts over the limit:
   the period has 7 numbers (no "over the limit"; first and last are of
   refusals), an hour 5 (no "over the limit"; first and last refusal),
   a window no third set of buckets, a notice 7 numbers (no "over the
   limit"). It still loads: see parse_hist in store_mem_snapshot.c for what
   becomes of it.

   A later 1.x version may write a higher format version; it must keep
   reading every earlier one. A file with a higher version than this
   library knows is refused with OBSPAM_EVERSION. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "file.h"
#include "hash.h"
#include "journal.h"

#define MAGIC "OBSPAMST"
#define FORMAT_VERSION 5u
#define HEADER_SIZE 32

/* ---- temporary files of saves that did not finish ------------------------

   A save writes PATH.tmp.XXXXXX (mkstemp: six letters or digits) and
   renames it over PATH. A process killed in between leaves that file
   behind, and every such crash would leave one more, so the next save
   and the next load (a daemon's start) remove them: only names of
   exactly that pattern beside PATH, only regular files, and never the
   file of a save that is still running. A save holds an exclusive flock
   on its file from creation to rename; a file that cannot be locked at
   once is left alone, and a kill releases the lock with the process. */

static int temp_suffix(const char *s) {
  int i;

  for (i = 0; i < 6; i++) {
    char c = s[i];

    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9')))
      return 0;
  }
  return s[6] == '\0';
}

static void remove_stale_temps(const char *path) {
  char dir[4096];
  const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
  size_t blen = strlen(base);
  struct dirent *de;
  DIR *d;

  if (obspam__dir_of(path, dir, sizeof(dir)) != 0 || blen == 0 ||
      (d = opendir(dir)) == NULL)
    return;
  while ((de = readdir(d)) != NULL) {
    struct stat st, now;
    int fd;

    if (strncmp(de->d_name, base, blen) != 0 ||
        strncmp(de->d_name + blen, ".tmp.", 5) != 0 ||
        !temp_suffix(de->d_name + blen + 5))
      continue;
    fd = openat(dirfd(d), de->d_name,
                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
      continue;
    /* Unlinked only while locked, and only if the name still leads to
       the file that was locked. */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        fstatat(dirfd(d), de->d_name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
        now.st_dev == st.st_dev && now.st_ino == st.st_ino)
      unlinkat(dirfd(d), de->d_name, 0);
    close(fd);
  }
  closedir(d);
}

/* Creates and locks the temporary file of a save. Another save's
   clean-up may remove the file between its creation and the lock: it is
   then made again. Returns the descriptor or -1 (errno set). */
static int create_temp(char *tmp, size_t size, const char *path) {
  int attempt;

  for (attempt = 0; attempt < 8; attempt++) {
    struct stat st;
    int fd;

    snprintf(tmp, size, "%s.tmp.XXXXXX", path);
    /* Closed on exec: a program another thread starts meanwhile (a
       daemon's notify command) gets no descriptor of the state. */
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
      return -1;
    if (flock(fd, LOCK_EX) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0) {
      obspam__give_to_dir_owner(fd, path);
      return fd;
    }
    close(fd);
  }
  errno = EAGAIN;
  return -1;
}

/* Writes data to path through a temporary file in the same directory, so
   that path holds either the old content or the new, never a mixture. */
static int write_atomic(obspam_engine *e, const char *path, const uint8_t *p,
                        size_t n) {
  char tmp[4096];
  int fd, err;

  if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= sizeof(tmp))
    return obspam__fail(e, OBSPAM_EINVAL, "state_save: path is too long");
  remove_stale_temps(path);
  fd = create_temp(tmp, sizeof(tmp), path);
  if (fd < 0)
    return obspam__fail(e, OBSPAM_EIO, "state_save: %s: %s", tmp,
                        strerror(errno));
  if (obspam__write_all(fd, p, n) != 0 || fsync(fd) != 0) {
    err = errno;
    unlink(tmp);
    close(fd);
    return obspam__fail(e, OBSPAM_EIO, "state_save: %s: %s", tmp,
                        strerror(err ? err : EIO));
  }
  /* Renamed while still open, and so locked: closed first, the file
     could be taken for the leftover of a crash and removed. */
  if (rename(tmp, path) != 0) {
    err = errno;
    unlink(tmp);
    close(fd);
    return obspam__fail(e, OBSPAM_EIO, "state_save: %s: %s", path,
                        strerror(err));
  }
  if (close(fd) != 0)
    return obspam__fail(e, OBSPAM_EIO, "state_save: %s: %s", path,
                        strerror(errno));
  if (obspam__sync_dir(path) != 0)
    return obspam__fail(e, OBSPAM_EIO,
                        "state_save: syncing the directory "
                        "of %s: %s",
                        path, strerror(errno));
  return OBSPAM_OK;
}

static void patch_le(uint8_t *p, uint64_t v) {
  int i;

  for (i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* The cut of a save (store.h): the journal, if any, is cut there, and
   the engine's read lock goes, so that the rest of the save, written in
   slices by the store, neither holds up nor waits for a reload. The
   local store lives as long as the engine, and a journal being closed
   waits for the save (its save_lock). */
typedef struct save_cut {
  obspam_engine *e;
  obspam__journal *j;
} save_cut;

static void cut_and_unlock(void *ud) {
  save_cut *c = ud;

  if (c->j != NULL)
    obspam__journal_cut(c->j);
  pthread_rwlock_unlock(&c->e->lock);
}

int obspam_state_save(obspam_engine *e, const char *path) {
  obspam__buf b = {NULL, 0, 0, 0};
  obspam__journal *j;
  save_cut c;
  size_t payload;
  uint64_t sum;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (path == NULL || path[0] == '\0')
    return obspam__fail(e, OBSPAM_EINVAL, "state_save: no path");
  obspam__buf_put(&b, MAGIC, 8);
  obspam__buf_u32(&b, FORMAT_VERSION);
  obspam__buf_u32(&b, 0);
  obspam__buf_i64(&b, 0); /* length and checksum, patched below */
  obspam__buf_i64(&b, 0);
  /* The journal of this state file is cut where the counters are taken
     (journal.c). */
  pthread_rwlock_rdlock(&e->lock);
  j = obspam__journal_begin_save(e, path);
  if (j != NULL && (rc = obspam__journal_prepare(e, j)) != OBSPAM_OK) {
    pthread_rwlock_unlock(&e->lock);
    free(b.p);
    return obspam__journal_saved(e, j, rc);
  }
  c.e = e;
  c.j = j;
  e->local->ops->save(e->local, &b, cut_and_unlock, &c);
  if (b.failed) {
    free(b.p);
    rc = obspam__fail(e, OBSPAM_ENOMEM, "state_save: out of memory");
    return j != NULL ? obspam__journal_saved(e, j, rc) : rc;
  }
  payload = b.len - HEADER_SIZE;
  sum = obspam__checksum(b.p + HEADER_SIZE, payload);
  patch_le(b.p + 16, (uint64_t)payload);
  patch_le(b.p + 24, sum);
  rc = j != NULL ? obspam__journal_stamp(e, j, (uint64_t)payload, sum)
                 : OBSPAM_OK;
  if (rc == OBSPAM_OK)
    rc = write_atomic(e, path, b.p, b.len);
  free(b.p);
  return j != NULL ? obspam__journal_saved(e, j, rc) : rc;
}

int obspam_state_load(obspam_engine *e, const char *path) {
  obspam__reader r;
  char *text;
  uint8_t *data;
  size_t n;
  uint32_t version, reserved;
  int64_t payload, sum, newest;
  const char *why;
  void *parsed;
  int rc, nomem;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (path == NULL || path[0] == '\0')
    return obspam__fail(e, OBSPAM_EINVAL, "state_load: no path");
  pthread_rwlock_rdlock(&e->lock);
  rc = obspam__journal_owns(e, path);
  pthread_rwlock_unlock(&e->lock);
  if (rc)
    return obspam__fail(e, OBSPAM_EINVAL,
                        "state_load: %s has a journal open: close it first",
                        path);
  remove_stale_temps(path);
  rc = obspam__read_file(e, "state_load: ", path, 1, &text, &n);
  if (rc != OBSPAM_OK)
    return rc;
  data = (uint8_t *)text;
  r.p = data;
  r.end = data + n;
  r.bad = 0;
  if (n < HEADER_SIZE || memcmp(data, MAGIC, 8) != 0) {
    int ours = n >= 8 && memcmp(data, MAGIC, 8) == 0;

    free(data);
    return obspam__fail(e, OBSPAM_ECORRUPT, "state_load: %s: %s", path,
                        n == 0 ? "the file is empty"
                        : ours ? "the file is truncated"
                               : "not a libobspam state file");
  }
  r.p += 8;
  obspam__get_u32(&r, &version);
  obspam__get_u32(&r, &reserved);
  obspam__get_i64(&r, &payload);
  obspam__get_i64(&r, &sum);
  if (version > FORMAT_VERSION) {
    free(data);
    return obspam__fail(e, OBSPAM_EVERSION,
                        "state_load: %s: format %u is newer than this "
                        "library's (%u)",
                        path, version, FORMAT_VERSION);
  }
  if (version == 0 || reserved != 0 || (uint64_t)payload != n - HEADER_SIZE ||
      (uint64_t)sum != obspam__checksum(data + HEADER_SIZE, n - HEADER_SIZE)) {
    free(data);
    /* A file longer than its header says was appended to (or two writes
       mixed), not cut: the message says which, so that whoever looks
       into it does not go looking for a short write. */
    return obspam__fail(e, OBSPAM_ECORRUPT, "state_load: %s: %s", path,
                        version == 0 || reserved != 0 ? "bad header"
                        : (uint64_t)payload < n - HEADER_SIZE
                            ? "trailing data after the snapshot"
                        : (uint64_t)payload != n - HEADER_SIZE
                            ? "the file is truncated"
                            : "checksum mismatch: the file is corrupt");
  }
  /* Under the read lock, like every use of a store: decisions go on
     during the parse; a reload or obspam_set_store waits for its end
     (and, writers being preferred, so do decisions that come after it). */
  pthread_rwlock_rdlock(&e->lock);
  parsed = e->local->ops->load_parse(e->local, &r, version, &why, &nomem);
  pthread_rwlock_unlock(&e->lock);
  free(data);
  if (parsed == NULL)
    return obspam__fail(e, nomem ? OBSPAM_ENOMEM : OBSPAM_ECORRUPT,
                        "state_load: %s: %s", path, why);
  pthread_rwlock_wrlock(&e->lock);
  rc = obspam__load_install(e, parsed, &newest);
  if (rc != OBSPAM_OK)
    e->local->ops->load_discard(e->local, parsed);
  pthread_rwlock_unlock(&e->lock);
  if (rc != OBSPAM_OK) {
    return obspam__fail(e, rc, "state_load: %s: out of memory", path);
  }
  obspam__observe(e, newest);
  return OBSPAM_OK;
}
