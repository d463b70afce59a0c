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
   the last one refused at RCPT. Empty strings at the start. */
#define RULES_INSTANCE_MAX 72
typedef struct rules_memory {
  char decided[RULES_INSTANCE_MAX];
  char probed[RULES_INSTANCE_MAX];
} rules_memory;

/* Resets the memory of a new connection. */
void rules_memory_init(rules_memory *mem);

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
   step for the message with the given instance (NULL when none was sent):
   records in mem what later requests need and returns whether the
   decision goes into the metrics (every charge; a probe or check only
   when it refused, as a refusal is what the statistics count at RCPT). */
int rules_end(rules_step step, const char *instance, int refused,
              rules_memory *mem);

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
