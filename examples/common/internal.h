/* SPDX-License-Identifier: MIT */
/* Internals of obspamd_common shared by its files and reached by its unit
   tests (tests/daemons/common_*.c). Daemons use the headers of
   the topics (log.h, sockets.h, access.h, options.h, service.h,
   refusal.h, metrics.h, control.h, start.h, util.h) only. */
#ifndef OBSPAMD_INTERNAL_H
#define OBSPAMD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "service.h"

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
  int unit;             /* OBSPAM_OPT_COUNT_UNIT: 0 recipients, 1 messages */
  int local_action;     /* obspamd_service.local_action */
  /* The daemon's control socket ("unix:/run/obspam/control.sock"), for
     the obspamctl commands the mail suggests; NULL or "": it has none. */
  const char *control;
  /* 1 when the notice, which has no window, is about forbidden scripts
     (obspamd__notice_reason_in found it out); 0: as the notice says. */
  int scripts;
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
   "notice kind=mailbox object=... subscription=... limit=... unit=...
   window=... sent=... refused=... exceeded=... first=ISO last=ISO
   period=ISO..ISO". unit is OBSPAM_OPT_COUNT_UNIT; window is the name of
   obspamd_notice_reason (minute, hour, day, max-recipients, scripts). */
void obspamd__notice_line(const obspam_notice *n, int unit, char *buf,
                          size_t size);
/* The same with the reason given (OBSPAMD_REASON_*), as
   obspamd__notice_reason_in tells it. */
void obspamd__notice_line_as(const obspam_notice *n, int reason, int unit,
                             char *buf, size_t size);

/* obspamd_notice_reason, with the engine's help where the notice alone
   cannot tell: a subscription's notice without a window is about its
   recipients cap (its limit is the cap) or about forbidden scripts (its
   limit is the hourly limit, unlimited or not). It is the second when
   the notice's limit is not the subscription's cap now and is its hourly
   limit now (so always when it has no cap); when both are equal, or the
   subscription is gone, the notice's own reason stands. Takes the
   engine's read lock: not for a caller that holds it. */
int obspamd__notice_reason_in(obspam_engine *e, const obspam_notice *n);

/* The grep -E pattern that finds the refusal log lines about an object:
   those that name it, and for a mailbox or a domain those whose login or
   sender is it or belongs to it; as one shell word (quoted when needed).
   What notice mails suggest, and what a test greps real logs with. */
void obspamd__refusal_grep(int kind, const char *name, char *buf, size_t size);

/* Copies src into dst (size bytes), each byte that is not printable ASCII
   written as '?'. Flags: OBSPAMD__CLEAN_NO_BLANK also writes blanks as
   '?'; OBSPAMD__CLEAN_UTF8 keeps valid UTF-8 characters (only control
   characters and bytes that are not UTF-8 become '?'). A character is
   never cut: dst ends before one that does not fit. */
#define OBSPAMD__CLEAN_NO_BLANK 1
#define OBSPAMD__CLEAN_UTF8 2
void obspamd__clean(char *dst, size_t size, const char *src, int flags);

/* The control socket the daemon serves (obspamd_control_start), for the
   notice mails; NULL when it stops. */
void obspamd__service_control(obspamd_service *s, const char *spec);

/* The limits set live (overrides.c): the service's list, made at start
   and freed at stop. After each successful load of the configuration,
   obspamd__overrides_loaded sets again in e the overrides whose object's
   line in text is the one they were made under, drops the others (text
   NULL: the file could not be read as a text, so all), logs each, and
   keeps the lines of text for the next comparison. It returns how many
   it dropped, which the reload's answer tells. */
struct obspamd__overrides;
struct obspamd__overrides *obspamd__overrides_new(void);
void obspamd__overrides_free(struct obspamd__overrides *o);
struct obspamd__overrides *obspamd__overrides_get(obspamd_service *s);
size_t obspamd__overrides_loaded(obspamd_service *s, obspam_engine *e,
                                 const char *text, size_t len);

/* Sorts n elements of size bytes at base in ascending order of the
   uint64_t each begins with (compare orders them the same way). A reload
   of a million mailboxes sorts 1.1 million of them twice, and qsort's
   comparisons through a function pointer took a fifth of the reload's
   CPU, which the event loop wants back: a radix sort, a byte a pass over
   a scratch copy, skipping the bytes that every key shares, does it in
   a fifth of the time or less (26 ms against 137 ms for 1.1 million
   64-bit keys, 35 ms against 212 ms for as many 16-byte elements here).
   Without memory for the copy, qsort with compare. */
void obspamd__sort_by_key(void *base, size_t n, size_t size,
                          int (*compare)(const void *, const void *));

/* Blocks every signal in the calling thread and returns the old mask in
   old: threads started here must not take a daemon's signals. */
#include <signal.h>
int obspamd__thread_create(pthread_t *t, void *(*fn)(void *), void *arg);
/* Tells thread t, which polls the read end of the pipe wake, to end (one
   byte into the pipe), and joins it. */
void obspamd__thread_stop(pthread_t t, const int wake[2]);
/* Closes the listening socket *fd of such a thread and its pipe wake, and
   marks the three closed (-1). */
void obspamd__close_fds(int *fd, int wake[2]);

/* The socket that syslog mode writes to, "/dev/log"; tests point it at
   one of their own before obspamd_log_open. */
extern const char *obspamd__syslog_path;
/* One log line of a mode (OBSPAMD_LOG_*) into line: see log.h. Ends
   with a newline except in syslog mode; returns its length. */
#include <time.h>
size_t obspamd__log_format(int mode, const char *ident, long pid, time_t now,
                           int priority, const char *msg, char *line,
                           size_t size);

/* The array p of *cap elements of size bytes, grown to twice as many
   (*cap is doubled); NULL when memory ran out, which frees p. For arrays
   that a scan fills and that are freed on any failure. */
void *obspamd__grow(void *p, size_t *cap, size_t size);

/* A text growing in a caller's buffer of size bytes, counted like
   snprintf: len is the length of the whole text, which is cut at size - 1
   bytes (and NUL-terminated) when it is longer. */
typedef struct obspamd__text {
  char *buf;
  size_t size, len;
} obspamd__text;

/* Appends to t as printf formats. */
void obspamd__put(obspamd__text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The directory part of path ("." when it has no slash) into dir. */
void obspamd__dir_of(const char *path, char *dir, size_t size);

/* The coalescing of refusal log lines (refusals.c; see
   obspamd_log_refusal). Whether the refusal of this object at now_ms
   (monotonic; -1: the clock) was only counted (1), or its line is to be
   logged now (0: the first of its object, or coalescing is off). */
int obspamd__refusal_counted(int kind, const char *object, const char *queue_id,
                             int64_t now_ms);
/* Logs the summary line of every object whose interval has ended by
   now_ms, and forgets the objects that were not refused in it; with all
   set, of every object whatever its interval, and forgets them all (a
   daemon that stops). */
void obspamd__refusals_flush(int64_t now_ms, int all);
/* obspamd_log_refusal at a given time, for the tests. */
void obspamd__log_refusal_at(const obspam_verdict *v, const obspam_message *m,
                             int unit, const char *queue_id, int64_t now_ms);
/* obspamd_refusal at a given time, for the tests. */
size_t obspamd__refusal_at(const obspam_verdict *v, const obspam_message *m,
                           int reject, int unit, const char *queue_id,
                           int *code, char *buf, size_t size, int64_t now_ms);
/* The whole line of a refusal, logged whatever was logged before. */
void obspamd__refusal_line(const obspam_verdict *v, const obspam_message *m,
                           int unit, const char *queue_id);
/* The wait a refusal's text tells its sender, in seconds: retry_after
   under a minute as it is (at least 1), longer ones rounded up to whole
   minutes, so that a sender who waits as long as it is told always
   fits. Inline: every refusal of a flood asks it (refusals.c). */
static inline int64_t obspamd__retry_shown(int64_t retry_after) {
  if (retry_after < 60)
    return retry_after < 1 ? 1 : retry_after;
  if (retry_after > INT64_MAX - 59)
    return INT64_MAX / 60 * 60; /* rounding up would overflow */
  return (retry_after + 59) / 60 * 60;
}

#endif
