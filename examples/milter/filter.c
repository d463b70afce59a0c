/* SPDX-License-Identifier: MIT */
/* obspam-milter's callbacks. libmilter runs each connection in a thread of
   its own and calls these in protocol order for that connection; what one
   connection collects lives in its private data (smfi_setpriv), never in
   globals, and the one engine is shared (it is thread-safe).

   A connection's state (client address and port) is allocated in
   xxfi_connect and freed in xxfi_close; a message's state (sender, SASL
   login, recipients, what its headers say) is allocated in xxfi_envfrom
   and freed when the message ends: at xxfi_eom after the decision, at
   xxfi_abort, or at xxfi_close if neither came. */
#include "filter.h"
#include "forwards.h"
#include "log.h"
#include "metrics.h"
#include "refusal.h"
#include "service.h"
#include "util.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "obspam.h"
#include "submission.h"

milter_settings milter_cfg;

/* An address longer than a name can never be hosted, so a value cut to
   this size is decided exactly as the whole one (see policy.h). */
#define VALUE_MAX 400
/* The library keeps at most 1024 bytes of a script's path. */
#define SCRIPT_MAX 1024
/* message.cap before the first recipient looked it up. */
#define CAP_UNKNOWN INT64_MIN

typedef struct message {
  char sender[VALUE_MAX + 1]; /* envelope sender, without <> */
  char sasl[VALUE_MAX + 1];   /* {auth_authen}, "" when none */
  uint32_t recipients;        /* RCPT TO let through */
  int64_t cap;                /* its cap on recipients; CAP_UNKNOWN */
  int markers;                /* X-Obspam-Pickup: headers seen */
  int64_t marker_uid;         /* the first one's uid, -1 when malformed */
  char marker_qid[64];        /* the queue ID it names */
  int php_seen;               /* the first X-PHP-Originating-Script: */
  int64_t php_uid;            /* from it, -1 when malformed */
  char script[SCRIPT_MAX + 1];
  obspamd_forwards fw; /* the forwards its recipients make */
  /* The first forwarding mailbox of a local submission that fw had no
     room for, "" when none. */
  char fw_left[OBSPAM_NAME_MAX + 1];
} message;

typedef struct connection {
  char addr[INET6_ADDRSTRLEN + 8]; /* the client's address, "" unknown */
  long port;                       /* its port, -1 unknown */
  message *msg;                    /* the message in progress, or NULL */
} connection;

static long open_connections;

long milter_open_connections(void) {
  return __atomic_load_n(&open_connections, __ATOMIC_RELAXED);
}

long milter_wait_idle(int timeout_ms) {
  long n;
  int waited = 0;

  while ((n = milter_open_connections()) > 0 && waited < timeout_ms) {
    struct timespec ts = {0, 20 * 1000000};

    nanosleep(&ts, NULL);
    waited += 20;
  }
  return n;
}

static void copy_value(char *dst, size_t size, const char *src) {
  size_t n = src != NULL ? strlen(src) : 0;

  if (n > size - 1)
    n = size - 1;
  if (n > 0)
    memcpy(dst, src, n);
  dst[n] = '\0';
}

/* The queue ID for log lines: Postfix sends it ("i") from DATA on. */
static const char *queue_id(SMFICTX *ctx) {
  const char *i = smfi_getsymval(ctx, "i");

  return i != NULL && i[0] != '\0' ? i : "-";
}

static void end_message(connection *c) {
  free(c->msg);
  c->msg = NULL;
}

/* ---- negotiation and connection ------------------------------------------ */

static sfsistat on_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
                             unsigned long f2, unsigned long f3,
                             unsigned long *pf0, unsigned long *pf1,
                             unsigned long *pf2, unsigned long *pf3) {
  (void)f2;
  (void)f3;
  /* Only what the MTA offers may be asked for, or libmilter drops the
     connection. Quarantine holds refused local submissions; header changes
     remove the X-Obspam-Pickup: headers. */
  *pf0 = f0 & (SMFIF_QUARANTINE | SMFIF_CHGHDRS | SMFIF_SETSYMLIST);
  /* Steps the filter has no use for are not sent at all. */
  *pf1 = f1 & (SMFIP_NOHELO | SMFIP_NOBODY | SMFIP_NOEOH | SMFIP_NOUNKNOWN |
               SMFIP_NODATA);
  *pf2 = 0;
  *pf3 = 0;
  /* Postfix's default milter_connect_macros do not include {client_addr}
     or {client_port}: ask for what the decision needs. A list given here
     replaces the MTA's for that stage. */
  if (f0 & SMFIF_SETSYMLIST) {
    smfi_setsymlist(ctx, SMFIM_CONNECT,
                    "j _ {daemon_name} {client_addr} {client_port} "
                    "{client_name}");
    smfi_setsymlist(ctx, SMFIM_ENVFROM, "i {auth_type} {auth_authen}");
    smfi_setsymlist(ctx, SMFIM_EOM, "i");
  }
  return SMFIS_CONTINUE;
}

static sfsistat on_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *sa) {
  connection *c = calloc(1, sizeof(*c));
  const char *addr, *port;

  if (c == NULL) {
    obspamd_log(LOG_ERR, "out of memory for a connection: deferring it");
    return SMFIS_TEMPFAIL;
  }
  c->port = -1;
  /* The MTA's macros first (Postfix sends them when asked, see
     on_negotiate); else the address libmilter decoded from the CONNECT
     packet, for an MTA that sends no macros. */
  addr = smfi_getsymval(ctx, "{client_addr}");
  port = smfi_getsymval(ctx, "{client_port}");
  if (addr != NULL)
    sub_client_address(addr, c->addr, sizeof(c->addr));
  if (port != NULL) {
    char *end;
    long p = strtol(port, &end, 10);

    if (port[0] != '\0' && *end == '\0' && p >= 0 && p <= 65535)
      c->port = p;
  }
  if (sa != NULL && sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

    if (addr == NULL)
      inet_ntop(AF_INET, &in->sin_addr, c->addr, sizeof(c->addr));
    if (port == NULL)
      c->port = ntohs(in->sin_port);
  } else if (sa != NULL && sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

    if (addr == NULL)
      inet_ntop(AF_INET6, &in6->sin6_addr, c->addr, sizeof(c->addr));
    if (port == NULL)
      c->port = ntohs(in6->sin6_port);
  }
  if (smfi_setpriv(ctx, c) != MI_SUCCESS) {
    free(c);
    obspamd_log(LOG_ERR, "cannot keep a connection's state: deferring it");
    return SMFIS_TEMPFAIL;
  }
  __atomic_fetch_add(&open_connections, 1, __ATOMIC_RELAXED);
  obspamd_metrics_connection_open(&milter_cfg.svc->metrics);
  if (milter_cfg.verbose)
    obspamd_log(LOG_DEBUG, "connect from %s [%s] port %ld%s",
                hostname != NULL ? hostname : "-",
                c->addr[0] != '\0' ? c->addr : "-", c->port,
                sub_is_local_client(c->addr, c->port)
                    ? ": a local submission (no SMTP client)"
                    : "");
  return SMFIS_CONTINUE;
}

/* ---- the envelope -------------------------------------------------------- */

static sfsistat on_envfrom(SMFICTX *ctx, char **argv) {
  connection *c = smfi_getpriv(ctx);
  message *g;

  if (c == NULL)
    return SMFIS_CONTINUE;
  end_message(c); /* a message that was neither ended nor aborted */
  g = calloc(1, sizeof(*g));
  if (g == NULL) {
    obspamd_log(LOG_ERR, "out of memory for a message: deferring it");
    return SMFIS_TEMPFAIL;
  }
  g->marker_uid = -1;
  g->php_uid = -1;
  g->cap = CAP_UNKNOWN;
  sub_envelope_address(argv != NULL ? argv[0] : NULL, g->sender,
                       sizeof(g->sender));
  copy_value(g->sasl, sizeof(g->sasl), smfi_getsymval(ctx, "{auth_authen}"));
  c->msg = g;
  return SMFIS_CONTINUE;
}

static void set_reply(SMFICTX *ctx, int code, const char *text);

/* The cap on the recipients of the SMTP message g (obspamd_recipients_cap
   of the object that would be charged), asked once per message: the
   verdict a one-recipient message would get names the lowest charged
   object. -1 when none applies: the sender is not charged, or is already
   over a limit (the message is refused at its end anyway). */
static int64_t message_cap(const connection *c, const message *g) {
  obspam_message m = OBSPAM_MESSAGE_INIT;
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  m.sender = g->sender;
  m.sasl_username = g->sasl[0] != '\0' ? g->sasl : NULL;
  m.client_address = c->addr;
  if (obspam_check(milter_cfg.svc->engine, &m, &v) != OBSPAM_OK)
    return -1;
  return obspamd_recipients_cap(milter_cfg.svc->engine, &v);
}

/* The forward a recipient makes (SPEC.md section 2), kept for the end of
   the message. A forwarding mailbox that could not send one more message
   refuses the recipient of an SMTP client now (451, naming the mailbox;
   the client retries it), as the message would be refused at its end;
   a local submission is decided whole at its end. Returns
   SMFIS_CONTINUE or the refusal. */
static sfsistat forward_rcpt(SMFICTX *ctx, const connection *c, message *g,
                             const char *arg, int smtp) {
  obspamd_service *svc = milter_cfg.svc;
  char rcpt[VALUE_MAX + 1], text[OBSPAMD_REFUSAL_MAX + 1];
  obspamd_forward f;
  uint32_t flag = 0;

  /* A configuration without forwards has none to find (obspamd_marks):
     the lookup is not asked. The marks are read for each recipient, an
     atomic load: a reload that declares a forward sets them before its
     configuration goes in, so the next recipient looks it up. */
  if (!(obspamd_marks(svc) & OBSPAMD_MARK_FORWARDS))
    return SMFIS_CONTINUE;
  sub_envelope_address(arg, rcpt, sizeof(rcpt));
  if (rcpt[0] == '\0' ||
      obspam_forward_lookup(svc->engine, rcpt, &flag, f.mailbox,
                            sizeof(f.mailbox)) != OBSPAM_OK)
    return SMFIS_CONTINUE;
  if (flag == 0)
    return SMFIS_CONTINUE;
  if (smtp) {
    obspam_message m = OBSPAM_MESSAGE_INIT, pm;
    obspam_verdict v = OBSPAM_VERDICT_INIT;
    int code, rc, unit = obspamd_unit(svc);
    unsigned ticket;

    m.client_address = c->addr;
    f.flag = flag;
    f.count = 1;
    obspamd_forward_message(&m, &f, 1, &pm);
    ticket = obspamd_store_enter(svc);
    rc = obspam_decide(svc->engine, &pm, &v);
    obspamd_store_leave(svc, ticket);
    /* Only a refused probe is counted: one let through is counted when
       it is charged. */
    if (rc == OBSPAM_OK && v.action == OBSPAM_REFUSE) {
      obspamd_metrics_marked(&svc->metrics, &v, &pm);
      obspamd_log_refusal(&v, &pm, unit, "-");
      obspamd_refusal_text_msg(&v, &pm, obspamd_reject(svc), unit, &code, text,
                               sizeof(text));
      set_reply(ctx, code, text);
      return code >= 500 ? SMFIS_REJECT : SMFIS_TEMPFAIL;
    }
  }
  if (!obspamd_forwards_fits(&g->fw, f.mailbox)) {
    /* Postfix cannot refuse one recipient of a local submission: it
       calls that a milter configuration error and leaves the message in
       the maildrop, tried again every minute for ever. The submitter is
       charged for every recipient; this forward goes uncounted, and is
       said at the end of the message. */
    if (!smtp) {
      if (g->fw_left[0] == '\0')
        copy_value(g->fw_left, sizeof(g->fw_left), f.mailbox);
      return SMFIS_CONTINUE;
    }
    smfi_setreply(ctx, "452", "4.5.3", "Too many recipients");
    return SMFIS_TEMPFAIL;
  }
  obspamd_forwards_keep(&g->fw, flag, f.mailbox);
  return SMFIS_CONTINUE;
}

static sfsistat on_envrcpt(SMFICTX *ctx, char **argv) {
  connection *c = smfi_getpriv(ctx);
  message *g;
  int smtp;
  sfsistat ret;

  if (c == NULL || c->msg == NULL)
    return SMFIS_CONTINUE;
  g = c->msg;
  smtp = g->sasl[0] != '\0' || !sub_is_local_client(c->addr, c->port);
  /* The recipients cap, where SMTP allows it (SPEC.md section 2): the
     recipient past it gets 452 4.5.3, and an honest client sends the
     rest in another transaction. A local submission is left to the end
     of the message: its uid, which decides who is charged, comes with
     its headers, and its recipients are not an SMTP client's to retry. */
  if (smtp) {
    if (g->cap == CAP_UNKNOWN)
      g->cap = message_cap(c, g);
    if (g->cap >= 0 && (int64_t)g->recipients + 1 > g->cap) {
      smfi_setreply(ctx, "452", "4.5.3", "Too many recipients");
      return SMFIS_TEMPFAIL;
    }
  }
  ret = forward_rcpt(ctx, c, g, argv != NULL ? argv[0] : NULL, smtp);
  if (ret != SMFIS_CONTINUE)
    return ret;
  /* The library counts a message as at most OBSPAM_RECIPIENTS_MAX. */
  if (g->recipients < OBSPAM_RECIPIENTS_MAX)
    g->recipients++;
  return SMFIS_CONTINUE;
}

/* ---- headers ------------------------------------------------------------- */

/* Headers come in message order. The X-Obspam-Pickup: header that the
   header_checks rule writes for a local submission comes before every
   header of the message itself (see submission.h), so only the first one
   is read; it is trusted at the end of the message only if it names the
   message's own queue ID. Only the first X-PHP-Originating-Script: counts
   too: PHP's mail() writes its own above the headers the script passes
   it. */
static sfsistat on_header(SMFICTX *ctx, char *name, char *value) {
  connection *c = smfi_getpriv(ctx);
  message *g;

  if (c == NULL || c->msg == NULL || name == NULL)
    return SMFIS_CONTINUE;
  g = c->msg;
  if (strcasecmp(name, SUB_PICKUP_HEADER) == 0) {
    if (g->markers++ == 0)
      g->marker_uid =
          sub_pickup_marker(value, g->marker_qid, sizeof(g->marker_qid));
  } else if (!g->php_seen &&
             strcasecmp(name, "X-PHP-Originating-Script") == 0) {
    const char *file;
    size_t len;

    g->php_seen = 1;
    g->php_uid = sub_php_script(value, &file, &len);
    if (g->php_uid >= 0) {
      if (len > SCRIPT_MAX)
        len = SCRIPT_MAX;
      memcpy(g->script, file, len);
      g->script[len] = '\0';
    }
  }
  return SMFIS_CONTINUE;
}

/* The X-Obspam-Pickup: headers are removed from the message once read:
   they served the milter only (pickup's Received: header, which is
   delivered, says the same). From the last to the first, so that the
   indexes stay right whether the MTA applies each removal at once or not. */
static void remove_markers(SMFICTX *ctx, const message *g) {
  int i;

  for (i = g->markers; i >= 1; i--)
    smfi_chgheader(ctx, SUB_PICKUP_HEADER, i, NULL);
}

/* ---- the decision ---------------------------------------------------------
 */

/* smfi_setreply reads '%' as a printf directive: it must be doubled. */
static void escape_percent(const char *in, char *out, size_t size) {
  size_t o = 0;

  for (; *in != '\0' && o + 2 < size; in++) {
    out[o++] = *in;
    if (*in == '%')
      out[o++] = '%';
  }
  out[o] = '\0';
}

/* Sets the SMTP reply of a refusal: text is "X.Y.Z words...", as
   obspamd_refusal_text writes it. */
static void set_reply(SMFICTX *ctx, int code, const char *text) {
  char rcode[8], xcode[16], msg[2 * OBSPAMD_REFUSAL_MAX + 2];
  const char *sp = strchr(text, ' ');
  size_t n = sp != NULL ? (size_t)(sp - text) : 0;

  snprintf(rcode, sizeof(rcode), "%d", code);
  if (n == 0 || n >= sizeof(xcode)) {
    escape_percent(text, msg, sizeof(msg));
    smfi_setreply(ctx, rcode, NULL, msg);
    return;
  }
  memcpy(xcode, text, n);
  xcode[n] = '\0';
  escape_percent(sp + 1, msg, sizeof(msg));
  if (smfi_setreply(ctx, rcode, xcode, msg) != MI_SUCCESS)
    obspamd_log(LOG_WARNING, "libmilter refused the reply text \"%s %s\"",
                rcode, text);
}

/* Whether a warning last said at *last is due again (once every 10
   minutes, whatever the number of messages); *last is then now. */
static int warning_due(int64_t *last_said) {
  int64_t now = (int64_t)time(NULL), last;

  last = __atomic_load_n(last_said, __ATOMIC_RELAXED);
  return now - last >= 600 &&
         __atomic_compare_exchange_n(last_said, &last, now, 0, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED);
}

/* A local submission without a usable X-Obspam-Pickup: header is said
   once in a while, not for every message. */
static int64_t last_marker_warning;

static void warn_marker(const char *qid, const message *g) {
  if (!warning_due(&last_marker_warning))
    return;
  if (g->markers == 0)
    obspamd_log(LOG_WARNING,
                "%s: a local submission without an " SUB_PICKUP_HEADER
                ": header: its uid is unknown and it is decided by its "
                "sender. Is the header_checks rule of obspam-milter(8) "
                "in main.cf? (said once every 10 minutes)",
                qid);
  else
    obspamd_log(LOG_WARNING,
                "%s: a local submission whose first " SUB_PICKUP_HEADER
                ": header is not the one Postfix wrote for it (it names "
                "queue ID %s): ignored, the message is decided by its "
                "sender; a script may be forging it (said once every 10 "
                "minutes)",
                qid, g->marker_uid >= 0 ? g->marker_qid : "(malformed)");
}

/* Fills m from what the message told. domain gets the virtual host, when
   a pattern finds one. Returns whether it is a local submission. */
static int describe(const connection *c, const message *g, const char *qid,
                    obspam_message *m, char *domain, size_t domain_size) {
  int local = g->sasl[0] == '\0' && sub_is_local_client(c->addr, c->port);
  int i;

  m->recipients = g->recipients > 0 ? g->recipients : 1;
  m->sender = g->sender;
  if (!local) {
    m->sasl_username = g->sasl[0] != '\0' ? g->sasl : NULL;
    m->client_address = c->addr;
    return 0;
  }
  /* A local submission has no client: a whitelist entry for 127.0.0.1
     must not exempt scripts. */
  m->client_address = NULL;
  if (g->marker_uid < 0 || strcmp(g->marker_qid, qid) != 0) {
    warn_marker(qid, g);
    return 1; /* no trusted uid: decided by its sender */
  }
  m->flags |= OBSPAM_MSG_SCRIPT;
  m->uid = g->marker_uid;
  /* PHP writes the uid of the script's owner. Another uid means that the
     header was not written by PHP for this user (a script can write any
     header): its path is not trusted. */
  if (g->php_uid < 0 || g->php_uid != g->marker_uid)
    return 1;
  m->script = g->script;
  if (g->script[0] != '/')
    return 1;
  for (i = 0; i < milter_cfg.npatterns; i++)
    if (sub_pattern_match(milter_cfg.patterns[i], g->script, strlen(g->script),
                          domain, domain_size)) {
      m->domain_hint = domain;
      break;
    }
  return 1;
}

/* Forwards of local submissions left uncounted, likewise. */
static int64_t last_forwards_warning;

static void warn_forwards_left(const char *qid, const message *g) {
  if (g->fw_left[0] == '\0' || !warning_due(&last_forwards_warning))
    return;
  obspamd_log(LOG_WARNING,
              "%s: a local submission to more than %d forwarding "
              "mailboxes: the forwards of the others (%s, ...) are not "
              "counted (said once every 10 minutes)",
              qid, OBSPAMD_FORWARDS_MAX, g->fw_left);
}

static void log_decision(int priority, const char *qid, int local,
                         const obspam_message *m, const obspam_verdict *v) {
  static const char *const actions[] = {"accept", "refuse", "exempt",
                                        "unknown"};
  char uid[24] = "-";

  if (m->flags & OBSPAM_MSG_SCRIPT)
    snprintf(uid, sizeof(uid), "%" PRId64, m->uid);
  obspamd_log(
      priority,
      "%s: %s %s kind=%s object=%s local=%s uid=%s script=%s "
      "domain=%s sasl=%s sender=%s client=%s recipients=%" PRIu32,
      qid, actions[v->action & 3], local ? "local-submission" : "smtp",
      obspamd_kind_name(v->kind), v->object[0] != '\0' ? v->object : "-",
      local ? "yes" : "no", uid, m->script != NULL ? m->script : "-",
      m->domain_hint != NULL ? m->domain_hint : "-",
      m->sasl_username != NULL ? m->sasl_username : "-",
      m->sender[0] != '\0' ? m->sender : "<>",
      m->client_address != NULL ? m->client_address : "-", m->recipients);
}

static sfsistat on_eom(SMFICTX *ctx) {
  connection *c = smfi_getpriv(ctx);
  obspamd_service *svc = milter_cfg.svc;
  obspam_message m = OBSPAM_MESSAGE_INIT, about;
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  char domain[OBSPAM_NAME_MAX + 1], text[OBSPAMD_REFUSAL_MAX + 1];
  const char *qid = queue_id(ctx);
  double t0;
  int local, rc, code, unit, deferred;
  unsigned ticket;
  sfsistat ret;

  if (c == NULL || c->msg == NULL)
    return SMFIS_CONTINUE;
  local = describe(c, c->msg, qid, &m, domain, sizeof(domain));
  warn_forwards_left(qid, c->msg);
  /* Likewise for mailing lists. */
  if (obspamd_marks(svc) & OBSPAMD_MARK_LISTS)
    obspamd_mark_list(svc->engine, &m);
  t0 = obspamd_now_us();
  /* The message and the forwards its recipients make, as one answer;
     from here on m is the message the verdict is about. */
  ticket = obspamd_store_enter(svc);
  rc = obspamd_decide_forwards(svc->engine, &m, &c->msg->fw, &svc->metrics, &v,
                               &about);
  /* The shared store down (store-fallback defer): one line per episode,
     not one per message. */
  deferred = rc != OBSPAM_OK && obspamd_store_deferred(svc, rc);
  obspamd_store_leave(svc, ticket);
  m = about;
  if (rc != OBSPAM_OK) {
    if (!deferred)
      obspamd_log(LOG_ERR, "%s: cannot decide: %s; deferring the message", qid,
                  obspam_engine_errmsg(svc->engine));
    obspamd_metrics_bad_request(&svc->metrics);
    smfi_setreply(ctx, "451", "4.3.0",
                  "Temporary failure of the sending limits, try again later");
    end_message(c);
    return SMFIS_TEMPFAIL;
  }
  /* The decision reaches the journal before its answer leaves. Threads
     that answer at once share a write: a flush takes every record waiting,
     and the others find theirs written. A journal that fails is logged;
     the message is answered all the same. */
  (void)obspamd_journal_flush(svc);
  obspamd_metrics_decision(&svc->metrics, &v, &m, obspamd_now_us() - t0);
  if (milter_cfg.verbose)
    log_decision(LOG_DEBUG, qid, local, &m, &v);
  if (v.action != OBSPAM_REFUSE) {
    remove_markers(ctx, c->msg);
    end_message(c);
    return SMFIS_CONTINUE;
  }

  unit = obspamd_unit(svc);
  obspamd_log_refusal(&v, &m, unit, qid);
  if (!local) {
    int reject = obspamd_reject(svc);

    obspamd_refusal_text_msg(&v, &m, reject, unit, &code, text, sizeof(text));
    set_reply(ctx, code, text);
    ret = reject ? SMFIS_REJECT : SMFIS_TEMPFAIL;
  } else if (milter_cfg.local_action == LOCAL_HOLD) {
    /* The text without its status code, and without a retry hint (held
       mail waits for an admin, not for the clock), as a permanent
       refusal's: Postfix keeps no reason with a held message, so the log
       line below is what tells it. */
    obspamd_refusal_text_msg(&v, &m, 1, unit, &code, text, sizeof(text));
    if (smfi_quarantine(ctx, strchr(text, ' ') != NULL ? strchr(text, ' ') + 1
                                                       : text) == MI_SUCCESS) {
      remove_markers(ctx, c->msg);
      obspamd_log(LOG_NOTICE,
                  "%s: held: the refused local submission is kept in the "
                  "hold queue (release: postsuper -H %s; delete: "
                  "postsuper -d %s)",
                  qid, qid, qid);
      end_message(c);
      return SMFIS_ACCEPT;
    }
    /* Only an MTA that cannot quarantine gets here (it did not offer it at
       negotiation): rejecting is the other safe choice. */
    obspamd_log(LOG_WARNING,
                "%s: the MTA cannot hold messages (no quarantine): "
                "rejecting the local submission instead",
                qid);
    obspamd_refusal_text_msg(&v, &m, 1, unit, &code, text, sizeof(text));
    set_reply(ctx, code, text);
    ret = SMFIS_REJECT;
  } else {
    /* Postfix bounces a rejected local submission to its sender; only a
       permanent reply does that (a temporary one leaves it in the
       maildrop, retried every minute). */
    obspamd_refusal_text_msg(&v, &m, 1, unit, &code, text, sizeof(text));
    set_reply(ctx, code, text);
    obspamd_log(LOG_NOTICE,
                "%s: rejected: Postfix returns the local submission to its "
                "sender <%s>",
                qid, m.sender[0] != '\0' ? m.sender : "");
    ret = SMFIS_REJECT;
  }
  end_message(c);
  return ret;
}

/* ---- the end of a message or connection ---------------------------------- */

static sfsistat on_abort(SMFICTX *ctx) {
  connection *c = smfi_getpriv(ctx);

  if (c != NULL)
    end_message(c);
  return SMFIS_CONTINUE;
}

static sfsistat on_close(SMFICTX *ctx) {
  connection *c = smfi_getpriv(ctx);

  if (c == NULL)
    return SMFIS_CONTINUE;
  end_message(c);
  free(c);
  smfi_setpriv(ctx, NULL);
  obspamd_metrics_connection_close(&milter_cfg.svc->metrics);
  __atomic_fetch_sub(&open_connections, 1, __ATOMIC_RELAXED);
  return SMFIS_CONTINUE;
}

struct smfiDesc *milter_description(void) {
  static struct smfiDesc desc = {"obspam-milter", /* name */
                                 SMFI_VERSION,
                                 SMFIF_QUARANTINE | SMFIF_CHGHDRS |
                                     SMFIF_SETSYMLIST, /* flags */
                                 on_connect,
                                 NULL, /* helo */
                                 on_envfrom,
                                 on_envrcpt,
                                 on_header,
                                 NULL, /* eoh */
                                 NULL, /* body */
                                 on_eom,
                                 on_abort,
                                 on_close,
                                 NULL, /* unknown */
                                 NULL, /* data */
                                 on_negotiate};

  return &desc;
}
