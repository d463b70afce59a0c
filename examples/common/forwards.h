/* SPDX-License-Identifier: MIT */
/* Forwards and mailing-list deliveries as both daemons recognise them
   (SPEC.md section 2): the forwarding recipients a message has collected
   (at RCPT in the policy server, envrcpt in the milter), the decision at
   its end of the message and of each of its forwards, and the list flag
   of a list's post. */
#ifndef OBSPAMD_FORWARDS_H
#define OBSPAMD_FORWARDS_H

#include <stdint.h>
#include <string.h>

#include "metrics.h"
#include "obspam.h"

/* The distinct forwarding mailboxes one message may have. A message to
   more is answered "452 4.5.3 Too many recipients" at the recipient past
   them, so that a connection's memory stays fixed and an honest client
   sends the rest in another transaction. */
#define OBSPAMD_FORWARDS_MAX 8

typedef struct obspamd_forward {
  uint32_t flag;  /* OBSPAM_MSG_FORWARD_LOCAL or OBSPAM_MSG_FORWARD_REMOTE */
  uint32_t count; /* its forwarding recipients: one message each */
  char mailbox[OBSPAM_NAME_MAX + 1]; /* what obspam_forward_lookup named */
} obspamd_forward;

typedef struct obspamd_forwards {
  unsigned n;
  obspamd_forward f[OBSPAMD_FORWARDS_MAX];
} obspamd_forwards;

/* The collection is inline, so that the policy server's rules, which
   call nothing of the library, can keep it (examples/policyd/rules.h). */
static inline void obspamd_forwards_clear(obspamd_forwards *fw) { fw->n = 0; }

/* The index of mailbox in fw, or -1. */
static inline int obspamd_forwards_find(const obspamd_forwards *fw,
                                        const char *mailbox) {
  unsigned i;

  for (i = 0; i < fw->n; i++)
    if (strcmp(fw->f[i].mailbox, mailbox) == 0)
      return (int)i;
  return -1;
}

/* Whether one more recipient forwarded by mailbox has room in fw. */
static inline int obspamd_forwards_fits(const obspamd_forwards *fw,
                                        const char *mailbox) {
  return fw->n < OBSPAMD_FORWARDS_MAX ||
         obspamd_forwards_find(fw, mailbox) >= 0;
}

/* Counts one recipient forwarded by mailbox (at most OBSPAM_NAME_MAX
   bytes) with flag; nothing when it does not fit. A forward's mailbox is
   its own address in lower case, a catch-all's its domain: the same
   address again is the same recipient named twice, which the MTA
   delivers once, and is not counted again (else one inbound message
   naming it a hundred times would use up the mailbox's limit); a
   catch-all's domain counts each of its recipients. */
static inline void obspamd_forwards_keep(obspamd_forwards *fw, uint32_t flag,
                                         const char *mailbox) {
  int i = obspamd_forwards_find(fw, mailbox);
  obspamd_forward *f;
  size_t n = strlen(mailbox);

  if (i >= 0) {
    if (strchr(mailbox, '@') == NULL && fw->f[i].count < OBSPAM_RECIPIENTS_MAX)
      fw->f[i].count++;
    return;
  }
  if (fw->n >= OBSPAMD_FORWARDS_MAX || n > OBSPAM_NAME_MAX)
    return;
  f = &fw->f[fw->n++];
  f->flag = flag;
  f->count = 1;
  memcpy(f->mailbox, mailbox, n + 1);
}

/* The message that decides forward f of message m: one new message from
   the forwarding mailbox, with f's flag and no login, from m's client
   (a whitelisted client's mail is exempt, forwards included). probe adds
   OBSPAM_MSG_PROBE. */
void obspamd_forward_message(const obspam_message *m, const obspamd_forward *f,
                             int probe, obspam_message *out);

/* Decides a complete message m and the forwards it makes, as one answer.
   Without forwards: obspam_decide(m). With some, every part is first
   checked (obspam_check, nothing charged), so that a refusal of any of
   them charges none of the others; the first part refused is then
   decided (recorded as refused) and answered. Otherwise m and each
   forward (count times) are decided; a refusal then is answered as well,
   the parts charged before it staying charged: another message took the
   last slot meanwhile, or a forwarding mailbox with several recipients
   in the message has room for fewer of them (the check asks for one).
   *v is the verdict to answer, *about the message it is about (m, or one
   of fw's, which point into fw). Each forward's decision is counted in
   metrics (obspamd_metrics_marked). OBSPAM_OK or the engine's error. */
int obspamd_decide_forwards(obspam_engine *e, const obspam_message *m,
                            const obspamd_forwards *fw,
                            obspamd_metrics *metrics, obspam_verdict *v,
                            obspam_message *about);

/* The same decisions a step at a time, for a caller that hands each
   step's messages to obspam_decide_start and comes back when they are
   decided (the policy server's event loop): obspamd_forwards_begin, then
   obspamd_forwards_step until it returns 0. The checks of every part are
   one step (they change nothing, so deciding them together answers as
   checking them in turn does); each charge is a step of its own, since
   the next one is made only when the last one fitted. m and fw must stay
   valid until the end; msg[] points into fw. */
typedef struct obspamd_forwards_run {
  const obspam_message *m;
  const obspamd_forwards *fw;
  int phase;
  unsigned part; /* the forward being charged */
  uint32_t k;    /* of its count */
  /* The messages of the step (how: OBSPAM_DECIDE_DRY for a check), and
     where the caller puts what each returned. */
  obspam_message msg[OBSPAMD_FORWARDS_MAX + 1];
  uint32_t how[OBSPAMD_FORWARDS_MAX + 1];
  obspam_verdict v[OBSPAMD_FORWARDS_MAX + 1];
  int rc[OBSPAMD_FORWARDS_MAX + 1];
  /* Once the step count is 0: OBSPAM_OK or the engine's error, the
     verdict to answer in v[0], the message it is about. */
  int result;
  obspam_message about;
} obspamd_forwards_run;

void obspamd_forwards_begin(obspamd_forwards_run *r, const obspam_message *m,
                            const obspamd_forwards *fw);
/* After the messages of the last step were decided into v[] and rc[]
   (none before the first step): the number of messages of the next step,
   in msg[0..n) and how[0..n); 0 when the answer is known. Each forward's
   decision is counted in metrics (obspamd_metrics_marked). */
unsigned obspamd_forwards_step(obspamd_forwards_run *r,
                               obspamd_metrics *metrics);

/* Sets OBSPAM_MSG_MAILING_LIST on m when its envelope sender is a
   declared list's (obspam_mailing_list_match: its address or -bounces
   form, from a local network or a local submission). */
void obspamd_mark_list(obspam_engine *e, obspam_message *m);

/* The word for the kind of mail m is in log lines and metrics:
   "forward-local", "forward-remote", "list", or NULL for other mail. */
const char *obspamd_mail_word(const obspam_message *m);

#endif
