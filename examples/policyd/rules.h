/* SPDX-License-Identifier: MIT */
/* obspam-policyd's rules for one complete request, apart from the sockets:
   which requests the engine is asked about and how (a probe at RCPT, a
   charge at DATA or END-OF-MESSAGE, nothing elsewhere), what a connection
   remembers so that one message is charged once and a refused probe is
   counted once, and the answer's text. Pure functions: no I/O, no engine,
   no allocation, so that each rule has a unit test
   (tests/daemons/policyd_rules.c) and the event loop in main.c only calls
   them. */
#ifndef OBSPAM_POLICYD_RULES_H
#define OBSPAM_POLICYD_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "forwards.h"
#include "obspam.h"
#include "policy.h"

/* What the server does with a request. */
typedef enum rules_step {
  /* Close the connection without an answer: the request names a
     submitter's uid on a connection whose peer was not checked. */
  RULES_CLOSE = 0,
  /* Answer DUNNO without asking the engine: a stage that is not decided,
     or a message that this connection already had decided. */
  RULES_DUNNO,
  /* RCPT, first refusal of this message not yet recorded: obspam_decide
     with OBSPAM_MSG_PROBE (the refusal is counted, nothing is charged). */
  RULES_PROBE,
  /* RCPT of a message whose probe was refused before: obspam_check, so
     that fifty recipients make one refusal in the statistics. */
  RULES_CHECK,
  /* DATA or END-OF-MESSAGE, first time for this message: obspam_decide. */
  RULES_DECIDE
} rules_step;

/* What a connection remembers of the messages it asked about: the
   instance (Postfix's per-message id) of the last message decided, and of
   the last one refused at RCPT; and for the recipients cap, the message
   whose recipients are being counted, how many of them were let through
   and its cap once looked up, and the forwards its recipients make
   (forwards.h), charged with it at DATA. Empty strings at the start. One smtpd
   process asks about one SMTP session at a time over its connection, so
   this is all a connection ever needs: its memory is fixed, whatever the
   client does. */
#define RULES_INSTANCE_MAX 72
#define RULES_CAP_UNKNOWN INT64_MIN
typedef struct rules_memory {
  char decided[RULES_INSTANCE_MAX];
  char probed[RULES_INSTANCE_MAX];
  char counted[RULES_INSTANCE_MAX]; /* "" : no message being counted */
  uint32_t recipients;              /* let through at RCPT */
  int64_t cap;                      /* RULES_CAP_UNKNOWN: not looked up */
  obspamd_forwards fw;              /* the forwards of message counted */
} rules_memory;

/* Resets the memory of a new connection. */
void rules_memory_init(rules_memory *mem);

/* policy_get(r, a) for one of the attributes the rules and the server
   read (a valid a), without a call: a position-independent build calls
   the exported policy_get through the PLT, three times a request. */
static inline const char *rules_attr(const policy_req *r, enum policy_attr a) {
  return r->attr[a].present ? r->attr[a].text : NULL;
}

/* Decides the step for the complete request r and fills m (initialised by
   the caller with OBSPAM_MESSAGE_INIT) with the message to give the
   engine: with RULES_PROBE and RULES_CHECK, recipients is 1 (too early to
   count them, and the message may never come) and RULES_PROBE sets
   OBSPAM_MSG_PROBE. checked_peer says whether the connection came in on a
   unix: socket whose peer was checked: only such a peer may name a
   submitter's uid. m points into r (policy_message). */
rules_step rules_begin(const policy_req *r, int checked_peer,
                       const rules_memory *mem, obspam_message *m);

/* After the engine answered a RULES_PROBE, RULES_CHECK or RULES_DECIDE
   step for the complete request r (whose instance, if sent, names the
   message): records in mem what later requests need and returns whether
   the decision goes into the metrics (every charge; a probe or check
   only when it refused, as a refusal is what the statistics count at
   RCPT). A charge ends the count of the message's recipients. */
int rules_end(rules_step step, const policy_req *r, int refused,
              rules_memory *mem);

/* The recipients cap at RCPT (SPEC.md section 2): the server counts the
   recipients of each message itself, since Postfix sends recipient_count
   only at DATA and END-OF-MESSAGE, and answers the one past the cap
   RULES_TOO_MANY, so that an honest client sends the rest in another
   transaction.

   rules_rcpt_before, for a RCPT request r that the engine let through:
   the recipients its message already has. A new instance starts a new
   count (and forgets the cap looked up for the last one); a request
   without an instance, or with one too long to keep, is counted by
   itself. An MTA that knows the count (Exim's $recipients_count, one
   connection per question) sends it as recipient_count, which Postfix
   sends as 0 at RCPT: the larger of the two is taken. */
uint32_t rules_rcpt_before(const policy_req *r, rules_memory *mem);
/* Whether one more recipient fits cap (-1: unlimited) after before; if so
   it is counted in mem. */
int rules_rcpt_admit(rules_memory *mem, uint32_t before, int64_t cap);

/* Forwards (SPEC.md section 2): a recipient that is a forwarding address
   makes one new message from its mailbox, learnt at RCPT with the
   message's recipients (the same instance) and charged at DATA or
   END-OF-MESSAGE with the message.

   rules_recipient: the recipient of r, whose step rules_begin gave, to
   look up as a forward (obspam_forward_lookup): at RCPT, the one it adds;
   at DATA and END-OF-MESSAGE, Postfix's `recipient` of a message with
   only one, when none of its RCPT requests came here (the check only in
   smtpd_data_restrictions); NULL otherwise. */
const char *rules_recipient(const policy_req *r, rules_step step,
                            const rules_memory *mem);
/* At RCPT, after rules_rcpt_before: whether one more recipient forwarded
   by mailbox can be kept for the message (OBSPAMD_FORWARDS_MAX), and
   keeping it once the recipient is let through. A request without an
   instance keeps nothing: nothing ties its DATA to it. A forwarding
   address named again (its mailbox is the address itself) is the same
   recipient and is kept once; a catch-all's mailbox, its domain, is kept
   once for each of its recipients. */
int rules_forward_fits(const rules_memory *mem, const char *mailbox);
void rules_forward_keep(rules_memory *mem, uint32_t flag, const char *mailbox);
/* At DATA or END-OF-MESSAGE: the forwards kept for r's message (none
   when its recipients were not seen). */
const obspamd_forwards *rules_forwards(const policy_req *r,
                                       const rules_memory *mem);

#define RULES_TOO_MANY "4.5.3 Too many recipients"
#define RULES_TOO_MANY_CODE 452

/* The answer is written in place: a refusal's text goes at
   line + RULES_TEXT_AT (at most RULES_TEXT_MAX bytes, obspamd_refusal
   writes it there), then rules_reply puts "action=CODE " before it and the
   empty line after it. The longest answer is RULES_REPLY_MAX bytes. */
#define RULES_TEXT_AT 11
#define RULES_TEXT_MAX 1024
#define RULES_REPLY_MAX (RULES_TEXT_MAX + 16)

/* Completes the answer in line and returns its length: with code 0,
   "action=DUNNO\n\n" (text_len is ignored); otherwise
   "action=CODE TEXT\n\n" with the text_len bytes already at
   line + RULES_TEXT_AT. code is an SMTP code (100..599). */
size_t rules_reply(char *line, int code, size_t text_len);

#endif
