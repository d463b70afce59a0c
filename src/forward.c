/* SPDX-License-Identifier: MIT */
/* The public functions of forwards and mailing lists: declaring them and
   asking what a recipient or a sender is (marks.h holds the rules). */
#include <string.h>

#include "engine.h"

/* Normalises a list address, or a forward's address (forward set), for
   function fn; *domain_at: where its domain starts. */
static int norm(obspam_engine *e, const char *fn, const char *address,
                int forward, obspam__name *n, size_t *domain_at) {
  const char *why;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (forward) {
    why = obspam__forward_norm(address, n, domain_at);
  } else {
    why = obspam__name_norm(address, OBSPAM__NAME_MAILBOX, n);
    *domain_at = n->at + 1;
  }
  if (why != NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "%s: bad address '%.64s': %s", fn,
                        address != NULL ? address : "(null)", why);
  return OBSPAM_OK;
}

/* Adds (add set) or removes a forward (flag set) or a list. */
static int change(obspam_engine *e, const char *fn, const char *address,
                  uint32_t flag, int add) {
  int forward = flag != OBSPAM_MSG_MAILING_LIST, rc;
  obspam__name n;
  size_t at;
  obspam__index *x;

  if ((rc = norm(e, fn, address, forward, &n, &at)) != OBSPAM_OK)
    return rc;
  pthread_rwlock_wrlock(&e->lock);
  x = forward ? &e->conf->marks.fwd : &e->conf->marks.list;
  if (!add)
    rc = obspam__mark_remove(x, n.s, n.len);
  else if (obspam__tree_find(&e->conf->tree, OBSPAM_DOMAIN, n.s + at,
                             n.len - at) == NULL)
    rc = OBSPAM_ENOTFOUND;
  else
    rc = obspam__mark_add(x, n.s, n.len, flag);
  obspam__marks_seen(e);
  pthread_rwlock_unlock(&e->lock);
  switch (rc) {
  case OBSPAM_OK:
    return rc;
  case OBSPAM_EEXIST:
    return obspam__fail(e, rc, "%s: '%s' is %s already", fn, n.s,
                        forward ? "a forward" : "a mailing list");
  case OBSPAM_ENOTFOUND:
    if (add)
      return obspam__fail(e, rc, "%s: no domain '%s'", fn, n.s + at);
    return obspam__fail(e, rc, "%s: '%s' is not %s", fn, n.s,
                        forward ? "a forward" : "a mailing list");
  default:
    return obspam__fail(e, rc, "%s: out of memory", fn);
  }
}

int obspam_forward_add(obspam_engine *e, const char *address, int remote) {
  if (e != NULL && remote != 0 && remote != 1)
    return obspam__fail(e, OBSPAM_EINVAL,
                        "forward_add: remote is %d, not 0 or 1", remote);
  return change(e, "forward_add", address,
                remote ? OBSPAM_MSG_FORWARD_REMOTE : OBSPAM_MSG_FORWARD_LOCAL,
                1);
}

int obspam_forward_remove(obspam_engine *e, const char *address) {
  return change(e, "forward_remove", address, OBSPAM_MSG_FORWARD_LOCAL, 0);
}

int obspam_mailing_list_add(obspam_engine *e, const char *address) {
  return change(e, "mailing_list_add", address, OBSPAM_MSG_MAILING_LIST, 1);
}

int obspam_mailing_list_remove(obspam_engine *e, const char *address) {
  return change(e, "mailing_list_remove", address, OBSPAM_MSG_MAILING_LIST, 0);
}

/* A recipient or sender asked about, as the mailbox the MTA makes of it
   (obspam__name_canon) into n: whether it is one. */
static int envelope_address(const char *address, obspam__name *n) {
  if (obspam__name_norm(address, OBSPAM__NAME_ANY, n) != NULL)
    return 0;
  obspam__name_canon(n);
  return n->at < n->len && n->at > 0 && n->at + 1 < n->len;
}

int obspam_forward_lookup(obspam_engine *e, const char *address, uint32_t *flag,
                          char *mailbox, size_t size) {
  obspam__name n, out;
  uint32_t f = 0;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (address == NULL || flag == NULL || mailbox == NULL ||
      size < OBSPAM_NAME_MAX + 1)
    return obspam__fail(e, OBSPAM_EINVAL, "forward_lookup: %s",
                        size < OBSPAM_NAME_MAX + 1 && mailbox != NULL
                            ? "mailbox buffer is smaller than 321 bytes"
                            : "an argument is NULL");
  /* Called for every recipient: an address that is no valid name is
     simply no forward, as a sender that is none is simply not hosted.
     With no forward declared, the answer needs no lock. */
  if (!(__atomic_load_n(&e->marks, __ATOMIC_ACQUIRE) & OBSPAM__MARKS_FORWARD)) {
    *flag = 0;
    mailbox[0] = '\0';
    return OBSPAM_OK;
  }
  pthread_rwlock_rdlock(&e->lock);
  if (e->conf->marks.fwd.n > 0 && envelope_address(address, &n))
    f = obspam__forward_find(&e->conf->marks, &e->conf->tree, &n, &out);
  pthread_rwlock_unlock(&e->lock);
  *flag = f;
  if (f != 0)
    memcpy(mailbox, out.s, out.len + 1);
  else
    mailbox[0] = '\0';
  return OBSPAM_OK;
}

int obspam_mailing_list_match(obspam_engine *e, const char *sender,
                              const char *client_address, int *match) {
  obspam__name n;
  uint8_t addr[16];
  int local = 1, found = 0;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (sender == NULL || match == NULL)
    return obspam__fail(e, OBSPAM_EINVAL,
                        "mailing_list_match: an argument is NULL");
  if (client_address != NULL && client_address[0] != '\0' &&
      obspam__addr_parse(client_address, addr) != 0)
    return obspam__fail(e, OBSPAM_EINVAL,
                        "mailing_list_match: client address '%.64s' is not "
                        "an IPv4 or IPv6 address",
                        client_address);
  /* Asked about every message: with no list declared (the usual case)
     the sender is not even read, and no lock is taken. */
  if (!(__atomic_load_n(&e->marks, __ATOMIC_ACQUIRE) & OBSPAM__MARKS_LIST)) {
    *match = 0;
    return OBSPAM_OK;
  }
  pthread_rwlock_rdlock(&e->lock);
  if (e->conf->marks.list.n > 0 && envelope_address(sender, &n)) {
    if (client_address != NULL && client_address[0] != '\0')
      local = obspam__local_contains(&e->conf->local, addr);
    found = local && obspam__list_find(&e->conf->marks, &n);
  }
  pthread_rwlock_unlock(&e->lock);
  *match = found;
  return OBSPAM_OK;
}
