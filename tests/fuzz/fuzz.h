/* SPDX-License-Identifier: MIT */
/* What the libFuzzer targets of tests/fuzz/ share: a failed invariant that
   aborts with a message (libFuzzer then keeps the input), a reader that
   turns the fuzzer's bytes into choices, and files in memory for the
   functions that take a path.

   Each target is one C file with LLVMFuzzerTestOneInput; tests/fuzz/run.sh
   builds it with the library's sources and -fsanitize=fuzzer,address,
   undefined. */
#ifndef OBSPAM_FUZZ_H
#define OBSPAM_FUZZ_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "obspam.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An invariant that does not hold is a finding: say which and abort, so
   that libFuzzer saves the input as a crash. */
static void fuzz_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
static void fuzz_fail(const char *file, int line, const char *fmt, ...) {
  va_list ap;

  fprintf(stderr, "\n%s:%d: invariant broken: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

#define FUZZ_CHECK(cond, ...)                                                  \
  do {                                                                         \
    if (!(cond))                                                               \
      fuzz_fail(__FILE__, __LINE__, __VA_ARGS__);                              \
  } while (0)

/* obspam_* must return want. */
#define FUZZ_RC(call, want)                                                    \
  do {                                                                         \
    int rc_ = (call);                                                          \
    if (rc_ != (want))                                                         \
      fuzz_fail(__FILE__, __LINE__, "%s returned %d (%s), expected %d", #call, \
                rc_, obspam_strerror(rc_), (int)(want));                       \
  } while (0)

/* An object of the tree, for the tables of objects a target probes. */
typedef struct fuzz_object {
  int kind;
  const char *name;
} fuzz_object;

/* The subscriptions, domains and mailboxes of acme and bakery, which the
   configurations of several targets declare: entries of a fuzz_object
   table. */
/* clang-format off */
#define FUZZ_ACME_BAKERY                                                       \
  {OBSPAM_SUBSCRIPTION, "acme"}, {OBSPAM_SUBSCRIPTION, "bakery"},              \
  {OBSPAM_DOMAIN, "acme.example"}, {OBSPAM_DOMAIN, "bakery.example"},          \
  {OBSPAM_MAILBOX, "info@acme.example"},                                       \
  {OBSPAM_MAILBOX, "demo@bakery.example"}
/* clang-format on */

/* The configuration of acme and bakery that the file targets
   (fuzz_journal, fuzz_snapshot) decide on: limits small enough that a few
   decisions refuse, a uid, a contact and an implicit mailbox's defaults. */
static const char fuzz_acme_bakery_conf[] =
    "retention 72\n"
    "notify-period 600\n"
    "plan basic mailbox=5 domain=50 subscription=100\n"
    "subscription acme plan=basic uid=1000 contact=ops@acme.example\n"
    "subscription bakery uid=1001 subscription=7\n"
    "domain acme.example subscription=acme\n"
    "domain bakery.example subscription=bakery mailbox=3\n"
    "mailbox info@acme.example limit=4\n"
    "mailbox demo@bakery.example\n";

/* A fresh engine with the configuration text; any failure is a finding. */
static inline obspam_engine *fuzz_engine(const char *conf) {
  obspam_engine *e;

  FUZZ_RC(obspam_engine_new(&e), OBSPAM_OK);
  FUZZ_RC(obspam_load_config_string(e, conf), OBSPAM_OK);
  return e;
}

/* v's low bytes at p, least significant first, as the file formats store
   their integers. */
static inline void fuzz_put_le(uint8_t *p, uint64_t v, int bytes) {
  int i;

  for (i = 0; i < bytes; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- choices from bytes -------------------------------------------------- */

/* The input read front to back; once it is used up every choice is 0, so a
   short input still makes a well-defined run. */
typedef struct fuzz_in {
  const uint8_t *p, *end;
} fuzz_in;

static inline int fuzz_left(const fuzz_in *in) { return in->p < in->end; }

static inline uint8_t fuzz_u8(fuzz_in *in) {
  return in->p < in->end ? *in->p++ : 0;
}

static inline uint32_t fuzz_u16(fuzz_in *in) {
  uint32_t v = fuzz_u8(in);

  return v | (uint32_t)fuzz_u8(in) << 8;
}

static inline uint32_t fuzz_u32(fuzz_in *in) {
  uint32_t v = fuzz_u16(in);

  return v | fuzz_u16(in) << 16;
}

/* One of n (n >= 1). */
static inline unsigned fuzz_pick(fuzz_in *in, unsigned n) {
  return n <= 256 ? fuzz_u8(in) % n : fuzz_u16(in) % n;
}

/* A string of at most max bytes, NUL-terminated in buf (max + 1 bytes):
   a length byte, then the bytes (NULs become 'x', so that the text is a C
   string of exactly the bytes taken). */
static inline const char *fuzz_str(fuzz_in *in, char *buf, size_t max) {
  size_t n = fuzz_u8(in), i;

  if (n > max)
    n = max;
  for (i = 0; i < n && fuzz_left(in); i++) {
    char c = (char)fuzz_u8(in);

    buf[i] = c == '\0' ? 'x' : c;
  }
  buf[i] = '\0';
  return buf;
}

/* ---- files in memory --------------------------------------------------- */

/* A memfd whose /proc/self/fd path is handed to obspam_load_config: no
   disk, nothing left behind. */
typedef struct fuzz_file {
  int fd;
  char path[160];
} fuzz_file;

static inline void fuzz_file_open(fuzz_file *f, const char *name) {
  f->fd = memfd_create(name, MFD_CLOEXEC);
  if (f->fd < 0) {
    perror("memfd_create");
    abort();
  }
  snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", f->fd);
}

/* A regular file named name in dir instead (fuzz_dir: under /dev/shm
   when there is one), for obspam_state_load, which follows no symbolic
   link such as /proc/self/fd/N to the file of a state. */
static inline void fuzz_file_open_at(fuzz_file *f, const char *dir,
                                     const char *name) {
  snprintf(f->path, sizeof(f->path), "%s/%s", dir, name);
  f->fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (f->fd < 0) {
    perror(f->path);
    abort();
  }
}

static inline void fuzz_file_set(fuzz_file *f, const void *p, size_t n) {
  const uint8_t *b = p;
  size_t done = 0;

  if (ftruncate(f->fd, 0) != 0) {
    perror("ftruncate");
    abort();
  }
  while (done < n) {
    ssize_t w = pwrite(f->fd, b + done, n - done, (off_t)done);

    if (w <= 0) {
      perror("pwrite");
      abort();
    }
    done += (size_t)w;
  }
}

static char fuzz_dir_path[64];

static int fuzz_rm(const char *path, const struct stat *st, int flag,
                   struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void fuzz_dir_cleanup(void) {
  nftw(fuzz_dir_path, fuzz_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* A private directory for obspam_state_save, which writes a temporary file
   beside its target: under /dev/shm when there is one (no disk writes),
   removed at exit. tests/fuzz/run.sh gives one instead (OBSPAM_FUZZ_DIR),
   which it removes even after a crash. */
static inline const char *fuzz_dir(void) {
  if (fuzz_dir_path[0] == '\0') {
    snprintf(fuzz_dir_path, sizeof(fuzz_dir_path), "%s",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm/obspam-fuzz.XXXXXX"
                                           : "/tmp/obspam-fuzz.XXXXXX");
    if (mkdtemp(fuzz_dir_path) == NULL) {
      perror("mkdtemp");
      abort();
    }
    atexit(fuzz_dir_cleanup);
  }
  return fuzz_dir_path;
}

/* Reads a whole file into a fresh buffer; *n gets its size. */
static inline uint8_t *fuzz_slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  size_t cap = 0, len = 0, got;

  if (f == NULL)
    return NULL;
  do {
    if (cap - len < 65536) {
      cap = cap ? cap * 2 : 65536;
      buf = realloc(buf, cap);
      if (buf == NULL)
        abort();
    }
    got = fread(buf + len, 1, cap - len, f);
    len += got;
  } while (got > 0);
  fclose(f);
  *n = len;
  return buf;
}

#endif
