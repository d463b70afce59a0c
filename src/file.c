/* SPDX-License-Identifier: MIT */
/* Reading a whole file, for the configuration and the snapshot. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

int obspam__read_file(obspam_engine *e, const char *fn, const char *path,
                      char **out, size_t *len) {
  struct stat st;
  size_t cap, n = 0;
  char *buf;
  int fd, err;

  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return obspam__fail(e, OBSPAM_EIO, "%s%s: cannot open: %s", fn, path,
                        strerror(errno));
  cap = fstat(fd, &st) == 0 && st.st_size > 0 ? (size_t)st.st_size + 1 : 65536;
  buf = malloc(cap);
  if (buf == NULL) {
    close(fd);
    return obspam__fail(e, OBSPAM_ENOMEM, "%s%s: out of memory", fn, path);
  }
  for (;;) {
    ssize_t r;

    if (n + 1 == cap) { /* the file grew, or its size was unknown */
      char *grown = realloc(buf, cap * 2);

      if (grown == NULL) {
        free(buf);
        close(fd);
        return obspam__fail(e, OBSPAM_ENOMEM, "%s%s: out of memory", fn, path);
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
    err = errno;
    free(buf);
    close(fd);
    return obspam__fail(e, OBSPAM_EIO, "%s%s: cannot read: %s", fn, path,
                        strerror(err));
  }
  close(fd);
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return OBSPAM_OK;
}
