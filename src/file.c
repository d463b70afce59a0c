/* SPDX-License-Identifier: MIT */
/* Reading and writing whole files, for the configuration, the snapshot
   and the journal. It knows nothing of the engine: the caller words the
   error. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "obspam.h"

/* Reads the rest of fd, then closes it: obspam__file_read once the file
   is open. */
static int read_fd(int fd, char **out, size_t *len, const char **what,
                   int *err) {
  struct stat st;
  size_t cap, n = 0;
  char *buf;

  cap = fstat(fd, &st) == 0 && st.st_size > 0 ? (size_t)st.st_size + 1 : 65536;
  buf = malloc(cap);
  if (buf == NULL) {
    close(fd);
    *what = "out of memory";
    *err = 0;
    return OBSPAM_ENOMEM;
  }
  for (;;) {
    ssize_t r;

    if (n + 1 == cap) { /* the file grew, or its size was unknown */
      char *grown = realloc(buf, cap * 2);

      if (grown == NULL) {
        free(buf);
        close(fd);
        *what = "out of memory";
        *err = 0;
        return OBSPAM_ENOMEM;
      }
      buf = grown;
      cap *= 2;
    }
    r = read(fd, buf + n, cap - 1 - n);
    if (r > 0) {
      n += (size_t)r;
      continue;
    }
    if (r == 0)
      break;
    if (errno == EINTR)
      continue;
    *what = "cannot read";
    *err = errno;
    free(buf);
    close(fd);
    return OBSPAM_EIO;
  }
  close(fd);
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return OBSPAM_OK;
}

int obspam__file_read(const char *path, char **out, size_t *len,
                      const char **what, int *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  if (fd < 0) {
    *what = "cannot open";
    *err = errno;
    return OBSPAM_EIO;
  }
  return read_fd(fd, out, len, what, err);
}

int obspam__file_read_regular(const char *path, char **out, size_t *len,
                              const char **what, int *err) {
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

  if (fd < 0) {
    *what = "cannot open";
    *err = errno;
    return OBSPAM_EIO;
  }
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    *what = "not a regular file";
    *err = 0;
    close(fd);
    return OBSPAM_EIO;
  }
  return read_fd(fd, out, len, what, err);
}

int obspam__open_regular(const char *path, int flags) {
  struct stat st;
  int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

  if (fd < 0)
    return -1;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  return fd;
}

int obspam__write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);

    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int obspam__dir_of(const char *path, char *dir, size_t size) {
  const char *slash = strrchr(path, '/');
  int n;

  if (slash == NULL)
    n = snprintf(dir, size, ".");
  else if (slash == path)
    n = snprintf(dir, size, "/");
  else
    n = snprintf(dir, size, "%.*s", (int)(slash - path), path);
  return n >= 0 && (size_t)n < size ? 0 : -1;
}

void obspam__give_to_dir_owner(int fd, const char *path) {
  char dir[4096];
  struct stat st;

  if (geteuid() == 0 && obspam__dir_of(path, dir, sizeof(dir)) == 0 &&
      stat(dir, &st) == 0 && st.st_uid != 0 &&
      fchown(fd, st.st_uid, st.st_gid) != 0) {
    /* The daemon's user is told at its start, naming the file. */
  }
}

/* Makes the rename itself durable. */
int obspam__sync_dir(const char *path) {
  char dir[4096];
  int fd, rc;

  if (obspam__dir_of(path, dir, sizeof(dir)) != 0) {
    errno = ENAMETOOLONG;
    return -1;
  }
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  rc = fsync(fd);
  close(fd);
  return rc;
}
