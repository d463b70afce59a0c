/* SPDX-License-Identifier: MIT */
/* The daemons' log: one line per event, to stderr, syslog or the journal
   (obspamd_log; daemon.c).
   Thread-safe: the milter calls it from libmilter's threads, the policy
   server from its event loop and the control thread. */
#ifndef OBSPAMD_LOG_H
#define OBSPAMD_LOG_H

#include <stdarg.h>
#include <syslog.h> /* LOG_ERR, LOG_WARNING, ... */

/* Where log lines go (--log):
   - stderr: "2024-05-01T12:34:56Z obspam-policyd[812]: warning: reload
     failed: ..." (UTC), for a daemon run by hand in the foreground;
   - syslog: datagrams to /dev/log with facility mail and the line's own
     priority, "<20>May  1 12:34:56 obspam-policyd[812]: warning: ...",
     as syslog(3) writes them (a detached daemon);
   - journal: stderr again, one line each with the "<N>" priority prefix
     that journald reads and no timestamp or name of its own, which the
     journal adds (under systemd; SyslogFacility=mail in the unit).
   One line per event, in a form an admin can grep:
     refuse kind=mailbox object=info@example.com limit=20 count=20
     unit=recipients retry=420 queue_id=4FgH2x1Kz9 ...
   Control characters in a message are written as '?', so that an event
   is always one line, and so is each byte that is not part of valid
   UTF-8: names keep their letters (jörg@example.com), and a line is
   always valid UTF-8. Before obspamd_log_open, logs go to stderr under
   the name "obspamd". The values 0 and 1 keep their old meaning of
   obspamd_log_open's second argument (foreground or not). */
enum {
  OBSPAMD_LOG_AUTO = -1,
  OBSPAMD_LOG_SYSLOG = 0,
  OBSPAMD_LOG_STDERR = 1,
  OBSPAMD_LOG_JOURNAL = 2
};
void obspamd_log_open(const char *ident, int mode);
/* The mode for --log (OBSPAMD_LOG_AUTO when not given): as asked, or
   in the foreground journal when stderr is the stream systemd named in
   JOURNAL_STREAM, else stderr; syslog for a daemon that detaches. */
int obspamd_log_mode(int asked, int foreground);
/* In syslog mode, also copy each line to stderr (on: 1), so that whoever
   started a daemon that detaches sees why it failed to start. */
void obspamd_log_echo(int on);
void obspamd_log(int priority, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* LOG_DEBUG lines are dropped unless verbose is set (default 0). */
void obspamd_log_verbose(int verbose);

#endif
