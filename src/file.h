/* SPDX-License-Identifier: MIT */
/* Reading and writing whole files. */
#ifndef OBSPAM_FILE_H
#define OBSPAM_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Reads the whole file at path into a fresh NUL-terminated buffer.
   OBSPAM_OK; else OBSPAM_EIO or OBSPAM_ENOMEM, with *what saying which
   step failed ("cannot open", "cannot read", "out of memory") and *err
   the errno of an I/O failure (0 for memory). */
int obspam__file_read(const char *path, char **out, size_t *len,
                      const char **what, int *err);
/* The same for the files of a state (the snapshot, the journal's files),
   whose directory someone else may have put things in: a symbolic link
   is not followed ("cannot open", ELOOP), a FIFO or a device is not
   waited for or read ("not a regular file", *err 0). */
int obspam__file_read_regular(const char *path, char **out, size_t *len,
                              const char **what, int *err);
/* Opens path as open(2) does with flags, without following a symbolic
   link or waiting for a FIFO: the descriptor of a regular file, or -1
   (errno set; EINVAL for a file that is not a regular one). */
int obspam__open_regular(const char *path, int flags);
/* Writes all n bytes at p to fd, going on after EINTR: 0, or -1 with
   errno set. */
int obspam__write_all(int fd, const uint8_t *p, size_t n);
/* The directory of path ("." when it names none) into dir: 0, or -1
   when it does not fit in size bytes. */
int obspam__dir_of(const char *path, char *dir, size_t size);
/* Gives the file fd, just made at path, to the owner of path's directory
   when this process is root and the directory is not root's: a daemon
   started as root makes its state files before it becomes its --user,
   the directory's owner, who must be able to open them at a later start
   as that user. Best effort: root itself opens them anyway. */
void obspam__give_to_dir_owner(int fd, const char *path);
/* Makes a rename in the directory of path durable: 0, or -1. */
int obspam__sync_dir(const char *path);

#endif
