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

/* The phases of a run: what the step just decided was. */
enum {
  RUN_START,   /* nothing yet */
  RUN_CHECKS,  /* the checks of m and of every forward */
  RUN_REFUSED, /* the decision of the first part refused (recorded) */
  RUN_CHARGE,  /* one charge of forward part */
  RUN_LAST,    /* the decision of m itself: the answer */
  RUN_DONE
};

void obspamd_forwards_begin(obspamd_forwards_run *r, const obspam_message *m,
                            const obspamd_forwards *fw) {
  r->m = m;
  r->fw = fw;
  r->phase = RUN_START;
  r->part = 0;
  r->k = 0;
  r->result = OBSPAM_OK;
  r->about = *m;
}

/* Puts message m as the step's only message, to be decided. */
static unsigned one(obspamd_forwards_run *r, const obspam_message *m,
                    int phase) {
  r->msg[0] = *m;
  r->how[0] = 0;
  r->v[0].struct_size = sizeof(r->v[0]);
  r->phase = phase;
  return 1;
}

static unsigned done(obspamd_forwards_run *r, int rc) {
  r->result = rc;
  r->phase = RUN_DONE;
  return 0;
}

/* The next charge: the forward part's next recipient, else m itself. */
static unsigned next_charge(obspamd_forwards_run *r) {
  const obspamd_forwards *fw = r->fw;
  obspam_message part;

  while (r->part < fw->n && r->k >= fw->f[r->part].count) {
    r->part++;
    r->k = 0;
  }
  if (r->part == fw->n)
    return one(r, r->m, RUN_LAST);
  obspamd_forward_message(r->m, &fw->f[r->part], 0, &part);
  return one(r, &part, RUN_CHARGE);
}

unsigned obspamd_forwards_step(obspamd_forwards_run *r,
                               obspamd_metrics *metrics) {
  const obspamd_forwards *fw = r->fw;
  unsigned i;

  switch (r->phase) {
  case RUN_START:
    if (fw->n == 0)
      return one(r, r->m, RUN_LAST);
    /* First the check of every part: a forward refused must not leave
       the message charged (the sender's MTA retries it, and it would
       count twice). */
    r->msg[0] = *r->m;
    for (i = 0; i < fw->n; i++)
      obspamd_forward_message(r->m, &fw->f[i], 0, &r->msg[i + 1]);
    for (i = 0; i <= fw->n; i++) {
      r->how[i] = OBSPAM_DECIDE_DRY;
      r->v[i].struct_size = sizeof(r->v[i]);
    }
    r->phase = RUN_CHECKS;
    return fw->n + 1;
  case RUN_CHECKS:
    /* The first part refused, in order, is decided and answered: as if
       the checks had been made one by one and stopped there. */
    for (i = 0; i <= fw->n; i++) {
      if (r->rc[i] != OBSPAM_OK)
        return done(r, r->rc[i]);
      if (r->v[i].action == OBSPAM_REFUSE) {
        r->about = r->msg[i];
        r->part = i; /* 0: m itself */
        return one(r, &r->msg[i], RUN_REFUSED);
      }
    }
    /* Then the charges, the message's own verdict last so that it is the
       answer when everything fits. */
    r->part = 0;
    r->k = 0;
    return next_charge(r);
  case RUN_REFUSED:
    if (r->rc[0] == OBSPAM_OK && r->part > 0)
      obspamd_metrics_marked(metrics, &r->v[0], &r->msg[0]);
    return done(r, r->rc[0]);
  case RUN_CHARGE:
    if (r->rc[0] != OBSPAM_OK)
      return done(r, r->rc[0]);
    obspamd_metrics_marked(metrics, &r->v[0], &r->msg[0]);
    if (r->v[0].action == OBSPAM_REFUSE) {
      /* Another message took the last slot meanwhile, or the forwarding
         mailbox has room for fewer of its recipients than the message
         has (the check asked for one): the parts charged before it stay
         charged. */
      r->about = r->msg[0];
      return done(r, OBSPAM_OK);
    }
    r->k++;
    return next_charge(r);
  case RUN_LAST:
    return done(r, r->rc[0]);
  default:
    return 0;
  }
}

int obspamd_decide_forwards(obspam_engine *e, const obspam_message *m,
                            const obspamd_forwards *fw,
                            obspamd_metrics *metrics, obspam_verdict *v,
                            obspam_message *about) {
  obspamd_forwards_run r;
  unsigned n, i;

  *about = *m;
  if (fw->n == 0)
    return obspam_decide(e, m, v);
  obspamd_forwards_begin(&r, m, fw);
  while ((n = obspamd_forwards_step(&r, metrics)) > 0)
    for (i = 0; i < n; i++)
      r.rc[i] = r.how[i] & OBSPAM_DECIDE_DRY
                    ? obspam_check(e, &r.msg[i], &r.v[i])
                    : obspam_decide(e, &r.msg[i], &r.v[i]);
  *about = r.about;
  if (r.result == OBSPAM_OK)
    *v = r.v[0];
  return r.result;
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
