/* SPDX-License-Identifier: MIT */
/* A refusal as the MTA and the log see it: its SMTP text and its log
   line, coalesced per object (refusals.c, daemon.c). */
#ifndef OBSPAMD_REFUSAL_H
#define OBSPAMD_REFUSAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "obspam.h"

/* The SMTP reply for a refusal, without the leading status code, in the
   words of the window the verdict names, e.g. "4.7.1 mailbox
   info@example.com has sent to 20 recipients in the last minute, its
   limit is 20 recipients per minute; try again in 35 seconds" ("in the
   last 60 minutes" and "per hour", "in the last 24 hours" and "per day"
   for the others), or for the recipients cap "4.7.1 mailbox
   info@example.com cannot send this message: it has 30 recipients, its
   limit is 10 recipients per message". unit is the engine's
   OBSPAM_OPT_COUNT_UNIT (0 recipients, 1 messages): the figures of a
   window are said in that unit. The wait is said in seconds under a
   minute, in minutes (rounded up) up to two hours, then in hours and
   minutes ("try again in 5 hours 12 minutes"). reject selects 5.7.1;
   *code gets 451 or 550. A permanent refusal (reject, or a message that
   never fits) carries no retry hint. The text is printable ASCII (a byte
   outside it in a name is written '?'), at most OBSPAMD_REFUSAL_MAX bytes
   so that "550 " + text + CRLF fits the 512 bytes of an SMTP reply line,
   and never longer than size - 1. It may hold '%': libmilter's
   smfi_setreply needs it doubled. */
#define OBSPAMD_REFUSAL_MAX 500
void obspamd_refusal_text(const obspam_verdict *v, int reject, int unit,
                          int *code, char *buf, size_t size);
/* The same, knowing the message: a script refused at its subscription with
   no time to wait (and a limit other than 0) was refused because scripts
   may not send ("scripts of subscription acme may not send mail"), which
   the verdict alone cannot tell from a message with more recipients than
   the limit. m may be NULL. */
void obspamd_refusal_text_msg(const obspam_verdict *v, const obspam_message *m,
                              int reject, int unit, int *code, char *buf,
                              size_t size);
/* Why a refusal was given: the window it names, the recipients cap, or
   scripts forbidden (which a verdict without its message cannot always
   tell from the cap of a subscription: m may be NULL). The names are
   those of the metrics' and the log's window label. */
enum obspamd_reason {
  OBSPAMD_REASON_MINUTE = 0,
  OBSPAMD_REASON_HOUR,
  OBSPAMD_REASON_DAY,
  OBSPAMD_REASON_CAP,
  OBSPAMD_REASON_SCRIPTS,
  OBSPAMD_REASONS
};
/* Inline: a flood asks it twice a request (the text's words and the
   metrics). */
static inline int obspamd_refusal_reason(const obspam_verdict *v,
                                         const obspam_message *m) {
  int script = m != NULL && (m->flags & OBSPAM_MSG_SCRIPT);

  if (v->window == OBSPAM_WINDOW_MINUTE)
    return OBSPAMD_REASON_MINUTE;
  if (v->window == OBSPAM_WINDOW_HOUR)
    return OBSPAMD_REASON_HOUR;
  if (v->window == OBSPAM_WINDOW_DAY)
    return OBSPAMD_REASON_DAY;
  if (v->retry_after >= 0) /* a verdict that names no window: the hour's */
    return OBSPAMD_REASON_HOUR;
  /* No window: the recipients cap, whose verdict carries the cap and the
     message's recipients (more than the cap), or scripts forbidden, whose
     verdict names a subscription with its hourly limit and count. Only a
     script's mail can be the second; an unlimited limit cannot be the
     first. */
  if (v->kind == OBSPAM_SUBSCRIPTION &&
      (v->limit < 0 || v->count <= v->limit ||
       (script && (int64_t)m->recipients != v->count)))
    return OBSPAMD_REASON_SCRIPTS;
  return OBSPAMD_REASON_CAP;
}
/* The same for a notice: the window of its limit, or (window 0) the
   recipients cap, or forbidden scripts when its limit is unlimited. */
int obspamd_notice_reason(const obspam_notice *n);
/* "minute", "hour", "day", "max-recipients", "scripts". */
const char *obspamd_reason_name(int reason);
/* "per minute", "per hour" or "per day", for a window in seconds
   (OBSPAM_WINDOW_*; the hour for any other value). */
const char *obspamd_window_per(int64_t window);
/* "recipients" / "messages", or the singular for n == 1, in the engine's
   unit (0 recipients, 1 messages). */
const char *obspamd_unit_word(int unit, int64_t n);

/* Logs one refusal: "refuse kind=mailbox object=... limit= count= unit=
   retry= queue_id= sasl= sender= client= recipients= window=" (+ " uid=
   script=" for a script). unit is "recipients" or "messages", as the
   engine counts; window is the reason's name (obspamd_reason_name: the
   window of limit and count, max-recipients or scripts);
   queue_id is the MTA's queue ID of the message (NULL or "" when it has
   none yet). limit=unlimited, retry=never, a missing value is "-"; names
   keep their UTF-8, and blanks, control characters and bytes that are not
   UTF-8 are written '?'.

   Lines are coalesced per refusing object (kind and name): the first
   refusal of an object is logged whole at once and opens an interval
   (obspamd_refusal_log_interval); the refusals in it are only counted,
   and their count is logged as one line when it ends:
     refuse kind=mailbox object=info@example.com more=4180 seconds=10
     first_queue_id=4FgH2x1Kz9
   more: the refusals counted in the interval (in the first one, those
   after the refusal logged whole); seconds: its length; first_queue_id: the
   queue ID of the first of them ("-" when it had none). The line is written by
   obspamd_tick, or by the next refusal of the object if it comes first, and
   counts exactly the refusals whose time falls in the interval. Intervals with
   refusals follow each other back to back; one without ends the episode, and
   the object's next refusal is logged whole again. 3072 objects are counted at
   once; while that many are, the refusals of others are counted together as
   "refuse kind=- object=- more=...", the first of each interval logged
   whole. obspamd_service_stop logs what was counted (seconds: of the
   interval under way, rounded up). */
void obspamd_log_refusal(const obspam_verdict *v, const obspam_message *m,
                         int unit, const char *queue_id);
/* memcmp(a, b, n) == 0 for the short strings of a request's path (an
   object's name, a message's instance), whose length is known: words
   compared in place, the last one overlapping the one before, where a
   call of memcmp costs more than the comparison of a few words. Reads
   only the n bytes of each. */
static inline int obspamd_same_bytes(const char *a, const char *b, size_t n) {
  uint64_t x, y;
  size_t i;

  if (n < 8)
    return memcmp(a, b, n) == 0;
  for (i = 0; i + 8 < n; i += 8) {
    memcpy(&x, a + i, 8);
    memcpy(&y, b + i, 8);
    if (x != y)
      return 0;
  }
  memcpy(&x, a + n - 8, 8);
  memcpy(&y, b + n - 8, 8);
  return x == y;
}

/* A refusal as a policy server answers it, in one call: logs it as
   obspamd_log_refusal does and writes its SMTP text into buf as
   obspamd_refusal_text_msg does, and returns the text's length. The
   text is kept beside the count of the object's refusals and copied
   again while its words stay the same (the count, limit and window, the
   minutes to wait, the action, the unit): in a flood, a refusal costs one
   lookup and a copy. Thread-safe. */
size_t obspamd_refusal(const obspam_verdict *v, const obspam_message *m,
                       int reject, int unit, const char *queue_id, int *code,
                       char *buf, size_t size);
/* A thread that answers refusals one after the other (the policy server's
   loop, a batch of requests at a time) takes the lock of their table once
   for all of them: obspamd_refusals_hold before the first,
   obspamd_refusal_held for each (obspamd_refusal without the lock), then
   obspamd_refusals_release. Meanwhile the refusals of other threads and
   the flush of obspamd_tick wait: hold it for a batch, not longer. now_ms
   is the time of the refusal on the clock of obspamd_now_ms, as the
   caller read it for the batch (-1: read here). */
void obspamd_refusals_hold(void);
size_t obspamd_refusal_held(const obspam_verdict *v, const obspam_message *m,
                            int reject, int unit, const char *queue_id,
                            int *code, char *buf, size_t size, int64_t now_ms);
void obspamd_refusals_release(void);
/* A request too bad to be answered (malformed, over a limit, or asking
   what its client may not), from client: its address ("203.0.113.7",
   "2001:db8::1"), or "uid 110" for the peer of a unix: socket. Coalesced
   per client as refusals are per object: returns 0 for the first of an
   episode, which the caller logs whole with its reason, and 1 for the
   others, which are only counted, one line per client and interval:
     4180 more bad requests from 127.0.0.1 in the last 10 s
   The clients are counted in a table of their own, 3072 at once (the
   others together, "from other clients"), so that bad requests from
   many addresses cannot crowd the refused objects out of theirs. now_ms
   as for obspamd_refusal_held (-1: read here). Thread-safe. */
int obspamd_bad_request_counted(const char *client, int64_t now_ms);
/* The interval of those lines in seconds (--refusal-log-interval); 0
   logs every refusal and every bad request whole. Default
   OBSPAMD_REFUSAL_LOG_INTERVAL. */
#define OBSPAMD_REFUSAL_LOG_INTERVAL 10
void obspamd_refusal_log_interval(int seconds);

#endif
