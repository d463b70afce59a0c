/* Internals of obspamd_common shared by its files and reached by its unit
   tests (tests/daemons/common_*.c). Daemons use daemon.h, control.h and
   metrics.h only. */
#ifndef OBSPAMD_INTERNAL_H
#define OBSPAMD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "daemon.h"

/* Runs "/bin/sh -c command" with input on its standard input, in a process
   group of its own, and waits at most timeout_ms for it to exit; after
   that the group is killed (SIGKILL) and reaped. Its standard output and
   error are read (the first line is kept for the message). Returns 0 when
   the command exited with status 0, else -1 with one line in why:
   "exited with status 75: sendmail: fatal: ...", "killed by signal 9",
   "timed out after 2 s: killed", "cannot run /bin/sh: ...". */
int obspamd__run_command(const char *command, const char *input, size_t len,
                         int timeout_ms, char *why, size_t why_size);

/* What a notice mail needs beside the notice. */
typedef struct obspamd__mail_info {
  const char *daemon;   /* "obspam-policyd" */
  const char *from;     /* "obspam@mx1.example.net" */
  const char *hostname; /* "mx1.example.net" */
  const char *admin;    /* the admin's address */
  int reject;           /* the action: 1 reject, 0 defer */
  int64_t now;          /* for the Date: header */
} obspamd__mail_info;

/* Formats the mail about notice n, for the admin (for_contact 0) or for
   the subscription's contact (1), headers and body, LF line endings, into
   buf (NUL-terminated, truncated at size). Returns the length it needs,
   as snprintf does. */
size_t obspamd__notice_mail(const obspamd__mail_info *mi,
                            const obspam_notice *n, int for_contact, char *buf,
                            size_t size);

/* The mail queue and the thread that empties it (mail.c). */
typedef struct obspamd__mailer obspamd__mailer;
obspamd__mailer *obspamd__mailer_start(obspamd_service *s);
/* Gives the queued mails notify_timeout seconds in all, drops the rest. */
void obspamd__mailer_stop(obspamd__mailer *m);
/* Takes text (malloc'ed); to and what are copied. Drops the mail (logged,
   counted) when the queue is full. */
void obspamd__mailer_queue(obspamd__mailer *m, const char *to, const char *what,
                           char *text, size_t len);

/* The notice log line, without the log prefix:
   "notice kind=mailbox object=... subscription=... limit=... sent=...
   refused=... first=ISO last=ISO period=ISO..ISO". */
void obspamd__notice_line(const obspam_notice *n, char *buf, size_t size);

/* Copies src into dst (size bytes), each byte that is not printable ASCII
   (or, with no_blank, a blank) written as '?'. */
void obspamd__clean(char *dst, size_t size, const char *src, int no_blank);

/* Blocks every signal in the calling thread and returns the old mask in
   old: threads started here must not take a daemon's signals. */
#include <signal.h>
int obspamd__thread_create(pthread_t *t, void *(*fn)(void *), void *arg);

/* Monotonic milliseconds. */
int64_t obspamd__now_ms(void);

#endif
