/* SPDX-License-Identifier: MIT */
/* Forwards and mailing-list deliveries in the daemons (forwards.h). */
#include "forwards.h"

#include <string.h>

void obspamd_forward_message(const obspam_message *m, const obspamd_forward *f,
                             int probe, obspam_message *out) {
  obspam_message init = OBSPAM_MESSAGE_INIT;

  *out = init;
  out->flags = f->flag | (probe ? OBSPAM_MSG_PROBE : 0u);
  out->sender = f->mailbox;
  out->client_address = m->client_address;
  out->recipients = 1;
  out->time = m->time;
}

int obspamd_decide_forwards(obspam_engine *e, const obspam_message *m,
                            const obspamd_forwards *fw,
                            obspamd_metrics *metrics, obspam_verdict *v,
                            obspam_message *about) {
  obspam_message part;
  unsigned i;
  uint32_t k;
  int rc;

  *about = *m;
  if (fw->n == 0)
    return obspam_decide(e, m, v);
  /* First the check of every part: a forward refused must not leave the
     message charged (the sender's MTA retries it, and it would count
     twice). */
  if ((rc = obspam_check(e, m, v)) != OBSPAM_OK)
    return rc;
  if (v->action == OBSPAM_REFUSE)
    return obspam_decide(e, m, v);
  for (i = 0; i < fw->n; i++) {
    obspamd_forward_message(m, &fw->f[i], 0, &part);
    if ((rc = obspam_check(e, &part, v)) != OBSPAM_OK)
      return rc;
    if (v->action == OBSPAM_REFUSE) {
      *about = part;
      rc = obspam_decide(e, &part, v);
      if (rc == OBSPAM_OK)
        obspamd_metrics_marked(metrics, v, &part);
      return rc;
    }
  }
  /* Then the charges, the message's own verdict last so that it is the
     answer when everything fits. */
  for (i = 0; i < fw->n; i++) {
    obspamd_forward_message(m, &fw->f[i], 0, &part);
    for (k = 0; k < fw->f[i].count; k++) {
      if ((rc = obspam_decide(e, &part, v)) != OBSPAM_OK)
        return rc;
      obspamd_metrics_marked(metrics, v, &part);
      if (v->action == OBSPAM_REFUSE) {
        *about = part;
        return OBSPAM_OK;
      }
    }
  }
  return obspam_decide(e, m, v);
}

void obspamd_mark_list(obspam_engine *e, obspam_message *m) {
  int match = 0;

  if (m->sender != NULL && m->sender[0] != '\0' &&
      obspam_mailing_list_match(e, m->sender, m->client_address, &match) ==
          OBSPAM_OK &&
      match)
    m->flags |= OBSPAM_MSG_MAILING_LIST;
}

const char *obspamd_mail_word(const obspam_message *m) {
  if (m == NULL)
    return NULL;
  if (m->flags & OBSPAM_MSG_FORWARD_REMOTE)
    return "forward-remote";
  if (m->flags & OBSPAM_MSG_FORWARD_LOCAL)
    return "forward-local";
  if (m->flags & OBSPAM_MSG_MAILING_LIST)
    return "list";
  return NULL;
}
