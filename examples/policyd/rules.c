/* SPDX-License-Identifier: MIT */
/* obspam-policyd's rules for one request (rules.h). */
#include "rules.h"

#include <string.h>

#include "refusal.h"

void rules_memory_init(rules_memory *mem) {
  mem->decided[0] = '\0';
  mem->probed[0] = '\0';
  mem->counted[0] = '\0';
  mem->recipients = 0;
  mem->cap = RULES_CAP_UNKNOWN;
  obspamd_forwards_clear(&mem->fw);
}

/* The instance of r as sent: present, with its length. */
static inline const policy_value *instance_of(const policy_req *r) {
  const policy_value *v = &r->attr[POLICY_INSTANCE];

  return v->present ? v : NULL;
}

/* Whether r's instance names a message and is the one remembered in
   kept, as strcmp would tell: kept ends where the instance does (a value
   holds no NUL) and has its bytes. An instance too long to keep never
   matches: that message is decided each time it is asked about, as if
   it had none (kept, written by remember, is always shorter). */
static int same_message(const policy_req *r, const char *kept) {
  const policy_value *v = instance_of(r);
  size_t n = v != NULL ? v->len : 0;

  if (n == 0 || n >= RULES_INSTANCE_MAX || kept[n] != '\0')
    return 0;
  return obspamd_same_bytes(v->text, kept, n);
}

/* Keeps r's instance in kept, or forgets what kept held when there is
   none or it is too long to keep. A short one is copied with the bytes
   after its NUL, in two fixed copies: text and kept both hold them. */
_Static_assert(RULES_INSTANCE_MAX >= 32 && POLICY_VALUE_MAX >= 32,
               "remember copies 32 bytes of a short instance");
static void remember(char *kept, const policy_req *r) {
  const policy_value *v = instance_of(r);
  size_t n = v != NULL ? v->len : RULES_INSTANCE_MAX;

  if (n < 32) {
    memcpy(kept, v->text, 16);
    memcpy(kept + 16, v->text + 16, 16);
  } else if (n < RULES_INSTANCE_MAX) {
    memcpy(kept, v->text, n + 1);
  } else {
    kept[0] = '\0';
  }
}

rules_step rules_begin(const policy_req *r, int checked_peer,
                       const rules_memory *mem, obspam_message *m) {
  enum policy_stage stage = policy_message(r, m);
  const char *uid = rules_attr(r, POLICY_OBSPAM_UID);

  /* A submitter's uid is believed only from a peer whose credentials
     were checked (an MTA such as Exim, allowed with --allow-user): over
     TCP any local user could claim another's uid and spend its limit, or
     pass its own scripts' mail off as someone else's. Such a request is
     refused, not decided by its sender, so that a misconfigured MTA is
     seen at once (it applies its own fail-safe action) rather than
     letting scripts' mail through uncounted. (policy_claims_uid, without
     its call.) */
  if (uid != NULL && uid[0] != '\0' && !checked_peer)
    return RULES_CLOSE;
  if (stage == POLICY_STAGE_OTHER)
    return RULES_DUNNO;
  if (stage == POLICY_STAGE_RCPT) {
    /* Too early to charge: the recipients are not all known and the
       message may never come. Only a sender that could not send even one
       more recipient is stopped now. The refusal is recorded in the
       statistics (a probe charges nothing), once per message: a client
       that tries fifty recipients made one attempt. */
    m->recipients = 1;
    if (same_message(r, mem->probed))
      return RULES_CHECK;
    m->flags |= OBSPAM_MSG_PROBE;
    return RULES_PROBE;
  }
  /* DATA or END-OF-MESSAGE. A message is decided once: with the check in
     both smtpd_data_restrictions and smtpd_end_of_data_restrictions,
     Postfix asks twice about one message (same instance, same
     connection), and the second question must not charge it again. */
  if (same_message(r, mem->decided))
    return RULES_DUNNO;
  return RULES_DECIDE;
}

uint32_t rules_rcpt_before(const policy_req *r, rules_memory *mem) {
  uint32_t sent = policy_recipient_count(r);

  if (!same_message(r, mem->counted)) {
    /* Another message: its own count, its own cap and its own forwards. */
    remember(mem->counted, r);
    mem->recipients = 0;
    mem->cap = RULES_CAP_UNKNOWN;
    obspamd_forwards_clear(&mem->fw);
  }
  return sent > mem->recipients ? sent : mem->recipients;
}

int rules_rcpt_admit(rules_memory *mem, uint32_t before, int64_t cap) {
  if (cap >= 0 && (int64_t)before + 1 > cap)
    return 0;
  if (mem->counted[0] != '\0' && before < UINT32_MAX)
    mem->recipients = before + 1;
  return 1;
}

int rules_end(rules_step step, const policy_req *r, int refused,
              rules_memory *mem) {
  switch (step) {
  case RULES_PROBE:
    /* A refused probe is remembered; one let through is not, so that
       the next recipient is probed (and counted) again. */
    if (refused && instance_of(r) != NULL &&
        instance_of(r)->len < RULES_INSTANCE_MAX)
      remember(mem->probed, r);
    return refused;
  case RULES_CHECK:
    return refused;
  case RULES_DECIDE:
    remember(mem->decided, r);
    /* The message is complete: its recipients are counted no more, and
       its forwards were charged with it. */
    mem->counted[0] = '\0';
    mem->recipients = 0;
    mem->cap = RULES_CAP_UNKNOWN;
    obspamd_forwards_clear(&mem->fw);
    return 1;
  default:
    return 0;
  }
}

const char *rules_recipient(const policy_req *r, rules_step step,
                            const rules_memory *mem) {
  const char *rcpt = rules_attr(r, POLICY_RECIPIENT);

  if (rcpt == NULL || rcpt[0] == '\0')
    return NULL;
  /* The step tells the stage (rules_begin): RCPT for a probe or a check,
     DATA or END-OF-MESSAGE for a decision. */
  if (step == RULES_PROBE || step == RULES_CHECK)
    return rcpt;
  if (step == RULES_DECIDE && policy_recipient_count(r) <= 1 &&
      !same_message(r, mem->counted))
    return rcpt;
  return NULL;
}

int rules_forward_fits(const rules_memory *mem, const char *mailbox) {
  return obspamd_forwards_fits(&mem->fw, mailbox);
}

void rules_forward_keep(rules_memory *mem, uint32_t flag, const char *mailbox) {
  if (mem->counted[0] != '\0')
    obspamd_forwards_keep(&mem->fw, flag, mailbox);
}

const obspamd_forwards *rules_forwards(const policy_req *r,
                                       const rules_memory *mem) {
  static const obspamd_forwards none = {0};

  /* Nothing kept, the usual case: the instance need not be compared. */
  if (mem->fw.n == 0)
    return &none;
  return same_message(r, mem->counted) ? &mem->fw : &none;
}

size_t rules_reply(char *line, int code, size_t text_len) {
  size_t n = RULES_TEXT_AT + text_len;

  if (code == 0) {
    memcpy(line, "action=DUNNO\n\n", 14);
    return 14;
  }
  /* Put together by hand: in a flood every request is answered so, and
     the codes of a refusal (451, 550) are copied whole rather than
     computed digit by digit. */
  if (code == 451) {
    memcpy(line, "action=451 ", 11);
  } else if (code == 550) {
    memcpy(line, "action=550 ", 11);
  } else {
    memcpy(line, "action=", 7);
    line[7] = (char)('0' + code / 100);
    line[8] = (char)('0' + code / 10 % 10);
    line[9] = (char)('0' + code % 10);
    line[10] = ' ';
  }
  line[n++] = '\n';
  line[n++] = '\n';
  return n;
}
