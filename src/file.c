/* SPDX-License-Identifier: MIT */
/* Reading a whole file, for the configuration, the snapshot and the
   journal. It knows nothing of the engine: the caller words the error. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "obspam.h"

int obspam__file_read(const char *path, char **out, size_t *len,
                      const char **what, int *err) {
  struct stat st;
  size_t cap, n = 0;
  char *buf;
  int fd;

  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *what = "cannot open";
    *err = errno;
    return OBSPAM_EIO;
  }
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
