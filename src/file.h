/* SPDX-License-Identifier: MIT */
/* Reading a whole file. */
#ifndef OBSPAM_FILE_H
#define OBSPAM_FILE_H

#include <stddef.h>

/* Reads the whole file at path into a fresh NUL-terminated buffer.
   OBSPAM_OK; else OBSPAM_EIO or OBSPAM_ENOMEM, with *what saying which
   step failed ("cannot open", "cannot read", "out of memory") and *err
   the errno of an I/O failure (0 for memory). */
int obspam__file_read(const char *path, char **out, size_t *len,
                      const char **what, int *err);

#endif
