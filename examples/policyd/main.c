/* SPDX-License-Identifier: MIT */
/* obspam-policyd: a Postfix SMTP access policy server (check_policy_service)
   on top of libobspam.

   One thread runs an epoll loop over non-blocking sockets: the listeners,
   every policy connection and a self-pipe for signals. Decisions take
   microseconds and never block, so one thread serves thousands of
   connections; the control socket and the metrics endpoint have threads
   of their own (examples/common), and so does a reload while it runs.
   The request parser is policy.c, the rules for a request rules.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "log.h"
#include "metrics.h"
#include "obspam.h"
#include "options.h"
#include "peers.h"
#include "policy.h"
#include "refusal.h"
#include "rules.h"
#include "service.h"
#include "sockets.h"
#include "start.h"
#include "util.h"

#define PROGRAM "obspam-policyd"
/* Postfix: check_policy_service unix:private/obspam-policy */
#define DEFAULT_LISTEN "unix:/var/spool/postfix/private/obspam-policy"
/* Longer than Postfix's smtpd_policy_service_max_idle (300 s), so that
   Postfix, not the server, closes the connections it keeps for reuse. */
#define DEFAULT_IDLE_TIMEOUT 600
/* A request must be complete this long after its first byte: Postfix
   writes a request at once, so only a client that holds a connection on
   purpose (a byte now and then, half a request) comes near it. */
#define DEFAULT_REQUEST_TIMEOUT 10
/* Postfix keeps at most one connection to a policy service per smtpd
   process, and master.cf's default_process_limit (100) bounds the smtpd
   processes of each service: smtp, submission and smtps at that limit
   make 300. Every one of them is the same client (the address of the
   Postfix host, or the uid postfix on a Unix socket). */
#define DEFAULT_MAX_PER_CLIENT 300
#define MAX_LISTENERS 16
/* Descriptors kept free for the state file, the notify command, the
   control socket and the metrics endpoint when connections use the rest. */
#define FD_RESERVE 64

/* Bytes read at once, and room for answers not yet written. A client that
   sends requests faster than it reads the answers is not read from until
   they are written. */
#define IN_CAP 4096
#define OUT_CAP 8192

/* ---- options ------------------------------------------------------------ */

typedef struct options {
  obspamd_options c; /* the options both daemons take */
  const char *listen[MAX_LISTENERS];
  int nlisten;
  int idle_timeout;
  int request_timeout;
  long max_connections;
  long max_per_client;
} options;

static void usage(FILE *f) {
  fprintf(
      f,
      "Usage: " PROGRAM " --config FILE [options]\n"
      "\n"
      "A Postfix policy server (check_policy_service) that limits outgoing\n"
      "mail per mailbox, domain and subscription with libobspam.\n"
      "\n"
      "Options:\n"
      "  --config FILE          the limits (obspam.conf); required\n"
      "  --listen SPEC          where Postfix connects: unix:PATH,\n"
      "                         inet:HOST:PORT or inet:[IPV6]:PORT; may be\n"
      "                         repeated (default, unless systemd hands\n"
      "                         over sockets: " DEFAULT_LISTEN
      ")\n" OBSPAMD_USAGE_STATE
      "  --idle-timeout SECS    close a connection idle this long (default "
      "%d)\n"
      "  --request-timeout SECS close a connection whose request is not\n"
      "                         complete this long after its first byte\n"
      "                         (default %d)\n"
      "  --socket-mode MODE     octal mode of unix: listen sockets (default "
      "%04o,\n"
      "                         group postfix)\n"
      "  --max-connections N    at most N policy connections at once\n"
      "                         (default: the file limit less %d)\n"
      "  --max-connections-per-client N\n"
      "                         at most N of them from one client address\n"
      "                         (or one uid on a unix: socket; default "
      "%d)\n" OBSPAMD_USAGE_RELOAD OBSPAMD_USAGE_REFUSAL_LOG
          OBSPAMD_USAGE_PRIVILEGE
      "  --foreground           do not detach\n" OBSPAMD_USAGE_END(PROGRAM),
      DEFAULT_IDLE_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, OBSPAMD_SOCKET_MODE,
      FD_RESERVE, DEFAULT_MAX_PER_CLIENT);
}

enum {
  OPT_LISTEN = OBSPAMD_OPT_OWN,
  OPT_IDLE,
  OPT_REQUEST_TIMEOUT,
  OPT_MAXCONN,
  OPT_MAXPERCLIENT
};

/* The policy server's own options (obspamd_own_option): --listen, and
   numbers from 1 that set the field of the table. */
static int own_option(void *own, int opt, const char *arg) {
  options *o = own;
  const struct {
    int opt;
    const char *name;
    long max;
    int *seconds; /* or */
    long *count;
  } numbers[] = {
      {OPT_IDLE, "--idle-timeout", 86400, &o->idle_timeout, NULL},
      {OPT_REQUEST_TIMEOUT, "--request-timeout", 86400, &o->request_timeout,
       NULL},
      {OPT_MAXCONN, "--max-connections", 10000000, NULL, &o->max_connections},
      {OPT_MAXPERCLIENT, "--max-connections-per-client", 10000000, NULL,
       &o->max_per_client}};
  size_t i;
  long v;

  if (opt == OPT_LISTEN) {
    if (obspamd_spec_option(PROGRAM, "--listen", arg,
                            OBSPAMD_SPEC_UNIX | OBSPAMD_SPEC_INET) != 0)
      return -1;
    return obspamd_option_append(PROGRAM, "--listen", arg, o->listen,
                                 &o->nlisten, MAX_LISTENERS, "listeners");
  }
  for (i = 0; numbers[i].opt != opt; i++)
    ;
  if ((v = obspamd_number(PROGRAM, numbers[i].name, arg, 1, numbers[i].max,
                          10)) < 0)
    return -1;
  if (numbers[i].seconds != NULL)
    *numbers[i].seconds = (int)v;
  else
    *numbers[i].count = v;
  return 0;
}

static const struct option own_longopts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
    {"max-connections", required_argument, NULL, OPT_MAXCONN},
    {"max-connections-per-client", required_argument, NULL, OPT_MAXPERCLIENT}};

/* Returns 0, 1 (--help or --version: exit 0) or -1 (a usage error). */
static int parse_options(int argc, char **argv, options *o) {
  *o = (options){.idle_timeout = DEFAULT_IDLE_TIMEOUT,
                 .request_timeout = DEFAULT_REQUEST_TIMEOUT,
                 .max_per_client = DEFAULT_MAX_PER_CLIENT};
  return obspamd_options_parse(PROGRAM, argc, argv, own_longopts,
                               sizeof(own_longopts) / sizeof(own_longopts[0]),
                               own_option, o, usage, &o->c);
}

/* ---- the event loop ----------------------------------------------------- */

enum { ITEM_LISTENER, ITEM_SIGNALS, ITEM_CONN };

typedef struct listener {
  int type; /* ITEM_LISTENER */
  int fd;
  int paused;
  int unix_socket;         /* peers are checked (obspamd_peer_allowed) */
  char spec[PATH_MAX + 8]; /* as given, or with the port bound */
  const char *unlink_path; /* the socket file of a unix: listener */
} listener;

typedef struct conn {
  int type; /* ITEM_CONN */
  int fd;
  uint32_t events;          /* the epoll interest now */
  struct conn *prev, *next; /* least recently active first */
  int64_t last;             /* monotonic ms of the last read */
  /* While a request is incomplete (or read but not answered, because the
     client does not take its answers): in the server's list of such
     connections, oldest first, since started (monotonic ms). */
  struct conn *wprev, *wnext;
  int64_t started;
  int waiting;
  /* With answers made in this round: in the server's list of such
     connections, written once the round's decisions are in the journal. */
  struct conn *rprev, *rnext;
  int ready;
  peer *client;            /* its client's count; NULL when not counted */
  int unix_peer;           /* came in on a unix: listener, peer checked */
  size_t in_off, in_len;   /* bytes of in[] not parsed yet */
  size_t out_off, out_len; /* bytes of out[] not written yet */
  char peer[72];           /* for log lines */
  rules_memory mem;        /* what the rules remember of its messages */
  policy_req req;
  char in[IN_CAP];
  char out[OUT_CAP];
} conn;

typedef struct server {
  obspamd_service svc;
  int ep;
  listener listeners[MAX_LISTENERS];
  int nlisteners;
  int signals_type; /* ITEM_SIGNALS, the epoll item of the signal pipe */
  int signals;      /* its read end */
  conn *head, *tail;
  conn *whead, *wtail; /* connections with a request pending, oldest first */
  conn *rhead;         /* connections with answers of this round */
  long nconns, max_conns;
  int64_t idle_ms, request_ms;
  /* Connections counted per client (peers.h). */
  peer_table *peers;
  long max_per_client;
  /* Closings for abuse, logged once per ABUSE_LOG_MS with a count. */
  int64_t abuse_logged;
  long slow_closed, capped;
  char slow_last[72], capped_last[64];
  int accept_paused;
  int64_t accept_resume; /* monotonic ms */
  int64_t pause_logged;  /* monotonic ms of the last "not accepting" */
  int stop, reload;
  /* The reload thread: a large file takes a second to parse, and the
     loop goes on answering meanwhile (the engine swaps the new
     configuration in at once when it is ready). */
  pthread_t reloader;
  int reloader_started; /* a thread exists and must be joined */
  int reloading;        /* it runs (atomic) */
  /* When epoll_wait last returned: the time a request read in this round
     was read, as far as the metrics and the idle timeouts care (one
     clock read per round instead of two per request). */
  double woke_us;
} server;

static void list_remove(server *s, conn *c) {
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    s->head = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  else
    s->tail = c->prev;
  c->prev = c->next = NULL;
}

static void list_append(server *s, conn *c) {
  c->prev = s->tail;
  c->next = NULL;
  if (s->tail != NULL)
    s->tail->next = c;
  else
    s->head = c;
  s->tail = c;
}

static void wait_remove(server *s, conn *c) {
  if (!c->waiting)
    return;
  if (c->wprev != NULL)
    c->wprev->wnext = c->wnext;
  else
    s->whead = c->wnext;
  if (c->wnext != NULL)
    c->wnext->wprev = c->wprev;
  else
    s->wtail = c->wprev;
  c->wprev = c->wnext = NULL;
  c->waiting = 0;
}

/* Keeps the list of connections with a request pending in the order of
   their deadlines, which is the order of their starts: a request that
   starts now goes to the end. */
static void wait_append(server *s, conn *c, int64_t now) {
  c->started = now;
  c->waiting = 1;
  c->wprev = s->wtail;
  c->wnext = NULL;
  if (s->wtail != NULL)
    s->wtail->wnext = c;
  else
    s->whead = c;
  s->wtail = c;
}

/* After c's input was parsed and answered: a request begun and not
   complete, or input read and not yet answered (the client does not take
   its answers), must be done within --request-timeout of the start of
   that request. completed says whether a request was answered in this
   round: the one pending now is then a new one. */
static void track_request(server *s, conn *c, int completed) {
  int pending = c->req.request_len > 0 || c->in_off < c->in_len;

  if (!pending) {
    wait_remove(s, c);
    return;
  }
  if (c->waiting && !completed)
    return; /* the same request goes on */
  wait_remove(s, c);
  wait_append(s, c, (int64_t)(s->woke_us / 1000));
}

static void ready_add(server *s, conn *c) {
  if (c->ready)
    return;
  c->ready = 1;
  c->rprev = NULL;
  c->rnext = s->rhead;
  if (s->rhead != NULL)
    s->rhead->rprev = c;
  s->rhead = c;
}

static void ready_remove(server *s, conn *c) {
  if (!c->ready)
    return;
  if (c->rprev != NULL)
    c->rprev->rnext = c->rnext;
  else
    s->rhead = c->rnext;
  if (c->rnext != NULL)
    c->rnext->rprev = c->rprev;
  c->rprev = c->rnext = NULL;
  c->ready = 0;
}

static void set_listeners(server *s, int on) {
  int i;

  for (i = 0; i < s->nlisteners; i++) {
    listener *l = &s->listeners[i];
    struct epoll_event ev;

    if (l->paused == !on)
      continue;
    ev.events = on ? EPOLLIN : 0;
    ev.data.ptr = l;
    epoll_ctl(s->ep, EPOLL_CTL_MOD, l->fd, &ev);
    l->paused = !on;
  }
}

static void conn_close(server *s, conn *c) {
  epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  list_remove(s, c);
  wait_remove(s, c);
  ready_remove(s, c);
  peers_release(s->peers, c->client);
  free(c);
  s->nconns--;
  obspamd_metrics_connection_close(&s->svc.metrics);
  /* A descriptor is free again. */
  if (s->accept_paused && s->nconns < s->max_conns) {
    s->accept_paused = 0;
    set_listeners(s, 1);
  }
}

static void conn_interest(server *s, conn *c) {
  uint32_t want = 0;

  if (c->in_off == c->in_len)
    want |= EPOLLIN;
  if (c->out_len > c->out_off)
    want |= EPOLLOUT;
  if (want != c->events) {
    struct epoll_event ev;

    ev.events = want;
    ev.data.ptr = c;
    epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = want;
  }
}

static void append(conn *c, const char *text, size_t n) {
  if (c->out_off > 0) {
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
  }
  memcpy(c->out + c->out_len, text, n);
  c->out_len += n;
}

/* "action=451 4.7.1 ...\n\n", put together in place: in a flood every
   request is answered so, and the text is copied from what was written
   for the object's last refusal while its words stay the same. */
static void answer_refuse(server *s, conn *c, const obspam_verdict *v,
                          const obspam_message *m) {
  char line[RULES_REPLY_MAX];
  int code;
  size_t n;

  n = obspamd_refusal(v, m, obspamd_reject(&s->svc), obspamd_unit(&s->svc),
                      policy_get(&c->req, POLICY_QUEUE_ID), &code,
                      line + RULES_TEXT_AT, RULES_TEXT_MAX);
  append(c, line, rules_reply(line, code, n));
}

/* "action=452 4.5.3 Too many recipients": the recipient past the cap. */
static void answer_too_many(conn *c) {
  char line[RULES_REPLY_MAX];
  size_t n = sizeof(RULES_TOO_MANY) - 1;

  memcpy(line + RULES_TEXT_AT, RULES_TOO_MANY, n);
  append(c, line, rules_reply(line, RULES_TOO_MANY_CODE, n));
}

/* The forward the recipient of r makes, if any (rules_recipient): *flag
   and mailbox as obspam_forward_lookup gives them, *flag 0 for none. */
static void recipient_forward(server *s, conn *c, uint32_t *flag,
                              char mailbox[OBSPAM_NAME_MAX + 1]) {
  const char *rcpt = rules_recipient(&c->req, &c->mem);

  *flag = 0;
  if (rcpt != NULL && obspam_forward_lookup(s->svc.engine, rcpt, flag, mailbox,
                                            OBSPAM_NAME_MAX + 1) != OBSPAM_OK)
    *flag = 0;
}

/* A RCPT that the sender's probe let through (SPEC.md section 2): a
   forwarding recipient whose mailbox could not send one more message is
   refused now, naming that mailbox, and one whose message this
   connection cannot keep is put off as the recipient past the cap is;
   then the recipients cap; then the forward is kept for DATA. Appends
   the answer. */
static void answer_rcpt(server *s, conn *c, const obspam_message *m,
                        const obspam_verdict *v) {
  uint32_t before = rules_rcpt_before(&c->req, &c->mem), flag;
  char mailbox[OBSPAM_NAME_MAX + 1], dunno[16];
  obspamd_forward f;

  recipient_forward(s, c, &flag, mailbox);
  if (flag != 0) {
    obspam_message pm;
    obspam_verdict pv = OBSPAM_VERDICT_INIT;

    f.flag = flag;
    f.count = 1;
    memcpy(f.mailbox, mailbox, sizeof(mailbox));
    obspamd_forward_message(m, &f, 1, &pm);
    /* Only a refused probe is counted: one let through is counted when
       it is charged. */
    if (obspam_decide(s->svc.engine, &pm, &pv) == OBSPAM_OK &&
        pv.action == OBSPAM_REFUSE) {
      obspamd_metrics_marked(&s->svc.metrics, &pv, &pm);
      answer_refuse(s, c, &pv, &pm);
      return;
    }
    if (!rules_forward_fits(&c->mem, mailbox)) {
      answer_too_many(c);
      return;
    }
  }
  if (c->mem.cap == RULES_CAP_UNKNOWN)
    c->mem.cap = obspamd_recipients_cap(s->svc.engine, v);
  if (!rules_rcpt_admit(&c->mem, before, c->mem.cap)) {
    answer_too_many(c);
    return;
  }
  if (flag != 0)
    rules_forward_keep(&c->mem, flag, mailbox);
  append(c, dunno, rules_reply(dunno, 0, 0));
}

/* Decides a complete message and the forwards its recipients make
   (obspamd_decide_forwards): those kept at RCPT, or the one recipient
   Postfix names at DATA when its RCPT did not come here. */
static int decide_message(server *s, conn *c, const obspam_message *m,
                          obspam_verdict *v, obspam_message *about) {
  const obspamd_forwards *fw = rules_forwards(&c->req, &c->mem);
  obspamd_forwards one;
  uint32_t flag;
  char mailbox[OBSPAM_NAME_MAX + 1];

  if (fw->n == 0) {
    recipient_forward(s, c, &flag, mailbox);
    obspamd_forwards_clear(&one);
    if (flag != 0)
      obspamd_forwards_keep(&one, flag, mailbox);
    fw = &one;
  }
  return obspamd_decide_forwards(s->svc.engine, m, fw, &s->svc.metrics, v,
                                 about);
}

/* Answers one complete request by the rules (rules.h). Returns -1 when
   it must not be answered: the protocol then asks for a closed
   connection, and Postfix applies its smtpd_policy_service_default_action. */
static int answer(server *s, conn *c) {
  obspam_message m = OBSPAM_MESSAGE_INIT, about;
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  rules_step step = rules_begin(&c->req, c->unix_peer, &c->mem, &m);
  char dunno[16];
  int rc;

  if (step == RULES_CLOSE) {
    obspamd_metrics_bad_request(&s->svc.metrics);
    obspamd_log(LOG_WARNING,
                "request from %s names a submitter's uid (obspam_uid), "
                "which only an allowed peer of a unix: socket may do; "
                "closing without an answer",
                c->peer);
    return -1;
  }
  if (step == RULES_DUNNO) {
    append(c, dunno, rules_reply(dunno, 0, 0));
    return 0;
  }
  obspamd_mark_list(s->svc.engine, &m);
  about = m;
  rc = step == RULES_CHECK    ? obspam_check(s->svc.engine, &m, &v)
       : step == RULES_DECIDE ? decide_message(s, c, &m, &v, &about)
                              : obspam_decide(s->svc.engine, &m, &v);
  if (rc != OBSPAM_OK) {
    /* The shared store down (store-fallback defer): one line per
       episode, not one per request. */
    if (!obspamd_store_deferred(&s->svc, rc))
      obspamd_log(LOG_ERR,
                  "cannot decide a request from %s (state %s): %s; closing "
                  "without an answer",
                  c->peer, policy_state_name(&c->req),
                  obspam_engine_errmsg(s->svc.engine));
    return -1;
  }
  if (v.action == OBSPAM_REFUSE)
    answer_refuse(s, c, &v, &about);
  else if (step != RULES_DECIDE)
    answer_rcpt(s, c, &m, &v);
  else
    append(c, dunno, rules_reply(dunno, 0, 0));
  if (rules_end(step, policy_get(&c->req, POLICY_INSTANCE),
                v.action == OBSPAM_REFUSE, &c->mem))
    obspamd_metrics_decision(&s->svc.metrics, &v, &about,
                             obspamd_now_us() - s->woke_us);
  return 0;
}

/* Writes what it can of the pending answers. Returns -1 on a dead peer. */
static int conn_flush(conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t n =
        send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      return -1;
    }
    c->out_off += (size_t)n;
  }
  c->out_off = c->out_len = 0;
  return 0;
}

/* Room for one more answer. */
static int out_room(const conn *c) {
  return OUT_CAP - (c->out_len - c->out_off) >= RULES_REPLY_MAX;
}

/* Parses what was read and answers every complete request, as long as
   there is room for answers; when the answers fill their buffer, it is
   written out and parsing goes on, until the input is used up or the
   socket takes no more (then EPOLLOUT brings the rest back here). A
   round does at most IN_CAP bytes of one connection, so a client that
   pipelines thousands of requests cannot starve the others. Returns -1
   when c was closed. */
static int conn_process(server *s, conn *c) {
  int completed = 0;

  for (;;) {
    size_t used;
    int rc;

    if (c->in_off == c->in_len)
      break;
    if (!out_room(c)) {
      /* The answers leave only after their decisions are in the journal
         (a deep pipeline: otherwise once per round, in flush_ready). */
      obspamd_journal_flush(&s->svc);
      if (conn_flush(c) < 0) {
        conn_close(s, c);
        return -1;
      }
      if (!out_room(c))
        break; /* the socket is full: wait for EPOLLOUT */
    }
    rc = policy_feed(&c->req, c->in + c->in_off, c->in_len - c->in_off, &used);
    c->in_off += used;
    if (rc == POLICY_ERROR) {
      obspamd_metrics_bad_request(&s->svc.metrics);
      obspamd_log(LOG_WARNING,
                  "bad policy request from %s: %s; closing without an "
                  "answer",
                  c->peer, c->req.error);
      conn_close(s, c);
      return -1;
    }
    if (rc == POLICY_COMPLETE) {
      if (answer(s, c) < 0) {
        conn_close(s, c);
        return -1;
      }
      policy_reset(&c->req);
      completed = 1;
    }
  }
  if (c->in_off == c->in_len)
    c->in_off = c->in_len = 0;
  track_request(s, c, completed);
  if (c->out_len > c->out_off)
    ready_add(s, c); /* written at the end of the round */
  else
    conn_interest(s, c);
  return 0;
}

/* The end of a round: the decisions made in it go to the journal in one
   write, then their answers leave. */
static void flush_ready(server *s) {
  if (s->rhead == NULL)
    return;
  obspamd_journal_flush(&s->svc);
  while (s->rhead != NULL) {
    conn *c = s->rhead;

    ready_remove(s, c);
    if (conn_flush(c) < 0)
      conn_close(s, c);
    else
      conn_interest(s, c);
  }
}

static int conn_readable(server *s, conn *c) {
  ssize_t n;

  if (c->in_off < c->in_len)
    return 0; /* still parsing what came before */
  do
    n = recv(c->fd, c->in, sizeof(c->in), 0);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return 0;
  if (n <= 0) {
    /* Postfix closes connections it no longer needs; a reset is the same
       to us. A client that only shut down its side gets the answers that
       are still waiting, as far as the socket takes them now. */
    if (n == 0) {
      if (c->ready)
        obspamd_journal_flush(&s->svc);
      conn_flush(c);
    }
    conn_close(s, c);
    return -1;
  }
  c->in_off = 0;
  c->in_len = (size_t)n;
  c->last = (int64_t)(s->woke_us / 1000);
  list_remove(s, c);
  list_append(s, c);
  return conn_process(s, c);
}

static int conn_writable(server *s, conn *c) {
  if (conn_flush(c) < 0) {
    conn_close(s, c);
    return -1;
  }
  if (c->in_off < c->in_len)
    return conn_process(s, c); /* requests that waited for room */
  conn_interest(s, c);
  return 0;
}

static void peer_name(const struct sockaddr_storage *ss, const listener *l,
                      char *out, size_t size) {
  char ip[INET6_ADDRSTRLEN];

  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
    snprintf(out, size, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
    snprintf(out, size, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
  } else {
    snprintf(out, size, "%.*s", (int)size - 1, l->spec);
  }
}

static void pause_accepting(server *s, const char *why) {
  int64_t now = obspamd_now_ms();

  /* Once a minute at most: under a lasting shortage every closed
     connection resumes accepting and the next accept pauses again. */
  if (!s->accept_paused &&
      (s->pause_logged == 0 || now - s->pause_logged >= 60000)) {
    obspamd_log(LOG_WARNING,
                "not accepting policy connections for a while: %s (%ld "
                "open)",
                why, s->nconns);
    s->pause_logged = now;
  }
  s->accept_paused = 1;
  s->accept_resume = now + 1000;
  set_listeners(s, 0);
}

static void accept_some(server *s, listener *l) {
  int i;

  /* A bounded batch, so that a flood of connections cannot starve the
     ones already open; the listener stays readable for the next round. */
  for (i = 0; i < 64; i++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct epoll_event ev;
    peer *p;
    conn *c;
    int fd;

    if (s->nconns >= s->max_conns) {
      char why[64];

      snprintf(why, sizeof(why), "at the limit of %ld connections",
               s->max_conns);
      pause_accepting(s, why);
      return;
    }
    fd = accept4(l->fd, (struct sockaddr *)&ss, &len,
                 SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      /* EMFILE, ENFILE, ENOBUFS, ENOMEM: retrying at once would spin;
         the kernel keeps the waiting connections in the backlog. */
      pause_accepting(s, strerror(errno));
      return;
    }
    if (l->unix_socket && !obspamd_peer_allowed(fd, l->spec)) {
      close(fd);
      continue;
    }
    /* One client may not hold every connection: past its share, its new
       connections are closed at once, and the others still get in. */
    {
      peer_key key;
      int at_limit = 0;

      p = NULL;
      if (peer_key_of(fd, &ss, len, &key) == 0 &&
          (p = peers_take(s->peers, &key, s->max_per_client, &at_limit)) ==
              NULL) {
        close(fd);
        if (!at_limit) {
          pause_accepting(s, "out of memory");
          return;
        }
        s->capped++;
        peer_key_text(&key, s->capped_last, sizeof(s->capped_last));
        continue;
      }
    }
    c = malloc(sizeof(*c));
    if (c == NULL) {
      peers_release(s->peers, p);
      close(fd);
      pause_accepting(s, "out of memory");
      return;
    }
    c->type = ITEM_CONN;
    c->fd = fd;
    c->client = p;
    c->unix_peer = l->unix_socket;
    c->waiting = 0;
    c->wprev = c->wnext = NULL;
    c->ready = 0;
    c->rprev = c->rnext = NULL;
    c->events = EPOLLIN;
    c->in_off = c->in_len = c->out_off = c->out_len = 0;
    rules_memory_init(&c->mem);
    c->last = obspamd_now_ms();
    peer_name(&ss, l, c->peer, sizeof(c->peer));
    policy_reset(&c->req);
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      peers_release(s->peers, p);
      close(fd);
      free(c);
      pause_accepting(s, strerror(errno));
      return;
    }
    list_append(s, c);
    s->nconns++;
    obspamd_metrics_connection_open(&s->svc.metrics);
  }
}

static void read_signals(server *s) {
  unsigned char buf[64];
  ssize_t n, i;

  while ((n = read(s->signals, buf, sizeof(buf))) > 0)
    for (i = 0; i < n; i++) {
      if (buf[i] == SIGHUP)
        s->reload = 1;
      else
        s->stop = buf[i];
    }
}

static void close_idle(server *s, int64_t now) {
  while (s->head != NULL && now - s->head->last >= s->idle_ms) {
    conn *c = s->head;

    obspamd_log(LOG_INFO, "closing the connection from %s: idle for %lld s",
                c->peer, (long long)(s->idle_ms / 1000));
    conn_close(s, c);
  }
}

/* Closes the connections whose request was not complete in time. */
static void close_slow(server *s, int64_t now) {
  while (s->whead != NULL && now - s->whead->started >= s->request_ms) {
    conn *c = s->whead;

    s->slow_closed++;
    snprintf(s->slow_last, sizeof(s->slow_last), "%s", c->peer);
    conn_close(s, c);
  }
}

/* Under abuse there are thousands of these: the first is logged at once,
   the rest as a count every ABUSE_LOG_MS, so that the log stays
   readable when it matters. */
#define ABUSE_LOG_MS 10000

static void log_abuse(server *s, int64_t now) {
  if ((s->slow_closed == 0 && s->capped == 0) ||
      (s->abuse_logged != 0 && now - s->abuse_logged < ABUSE_LOG_MS))
    return;
  if (s->slow_closed > 0)
    obspamd_log(LOG_WARNING,
                "closed %ld connection%s whose request was not complete "
                "within %lld s (the last from %s)",
                s->slow_closed, s->slow_closed == 1 ? "" : "s",
                (long long)(s->request_ms / 1000), s->slow_last);
  if (s->capped > 0)
    obspamd_log(LOG_WARNING,
                "refused %ld connection%s of clients at the limit of %ld "
                "connections per client (the last from %s)",
                s->capped, s->capped == 1 ? "" : "s", s->max_per_client,
                s->capped_last);
  s->slow_closed = s->capped = 0;
  s->abuse_logged = now;
}

/* ---- start and stop ----------------------------------------------------- */

/* Raises the soft limit on descriptors to the hard one: each connection
   holds one. */
static long raise_fd_limit(void) {
  struct rlimit rl;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rlim_t want = rl.rlim_max;

    if (want == RLIM_INFINITY || want > 1048576)
      want = 1048576;
    if (want > rl.rlim_cur) {
      struct rlimit nl = {want, rl.rlim_max};

      if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
        rl.rlim_cur = want;
    }
  }
  return rl.rlim_cur == RLIM_INFINITY ? 1048576 : (long)rl.rlim_cur;
}

/* Watches l, whose descriptor is set, and names it for the log. */
static int add_listener(server *s, listener *l, const char *given) {
  struct epoll_event ev;

  l->type = ITEM_LISTENER;
  l->paused = 0;
  s->nlisteners++;
  /* The port the kernel chose for "inet:HOST:0", for the ready line. */
  if (obspamd_socket_name(l->fd, l->spec, sizeof(l->spec)) != 0)
    snprintf(l->spec, sizeof(l->spec), "%s", given);
  l->unix_socket = strncmp(l->spec, "unix:", 5) == 0;
  if (!l->unix_socket)
    obspamd_warn_tcp(l->spec);
  ev.events = EPOLLIN;
  ev.data.ptr = l;
  if (epoll_ctl(s->ep, EPOLL_CTL_ADD, l->fd, &ev) != 0) {
    obspamd_log(LOG_ERR, "epoll: %s", strerror(errno));
    return -1;
  }
  return 0;
}

/* The sockets systemd hands over (obspam-policyd.socket), then those of
   --listen; the default one when there are neither. */
static int open_listeners(server *s, options *o) {
  int fds[MAX_LISTENERS], n, i;

  n = obspamd_inherited_sockets(fds, MAX_LISTENERS);
  for (i = 0; i < n; i++) {
    listener *l = &s->listeners[s->nlisteners];

    l->unlink_path = NULL; /* systemd's socket unit owns the file */
    l->fd = fds[i];
    if (add_listener(s, l, "a socket from systemd") != 0)
      return -1;
  }
  if (n == 0 && o->nlisten == 0)
    o->listen[o->nlisten++] = DEFAULT_LISTEN;
  for (i = 0; i < o->nlisten; i++) {
    listener *l = &s->listeners[s->nlisteners];
    char err[400];

    if (s->nlisteners == MAX_LISTENERS) {
      obspamd_log(LOG_ERR, "cannot listen on %s: at most %d listeners",
                  o->listen[i], MAX_LISTENERS);
      return -1;
    }
    l->unlink_path = NULL;
    l->fd = obspamd_listen(o->listen[i], o->c.socket_mode, err, sizeof(err));
    if (l->fd < 0) {
      obspamd_log(LOG_ERR, "cannot listen on %s: %s", o->listen[i], err);
      return -1;
    }
    if (strncmp(o->listen[i], "unix:", 5) == 0) {
      l->unlink_path = o->listen[i] + 5;
      if (obspamd_socket_group(l->unlink_path, o->c.user_uid, err,
                               sizeof(err)) != 0) {
        obspamd_log(LOG_ERR, "cannot listen on %s: %s", o->listen[i], err);
        close(l->fd);
        unlink(l->unlink_path);
        return -1;
      }
    }
    if (add_listener(s, l, o->listen[i]) != 0)
      return -1;
  }
  return 0;
}

static void close_listeners(server *s) {
  int i;

  for (i = 0; i < s->nlisteners; i++) {
    close(s->listeners[i].fd);
    if (s->listeners[i].unlink_path != NULL)
      unlink(s->listeners[i].unlink_path);
  }
  s->nlisteners = 0;
}

static void *reload_main(void *arg) {
  server *s = arg;
  char msg[512];

  obspamd_reload(&s->svc, msg, sizeof(msg)); /* logs the outcome */
  __atomic_store_n(&s->reloading, 0, __ATOMIC_RELEASE);
  return NULL;
}

/* Starts a reload on a thread of its own, unless one runs: then the
   request waits for it (s->reload stays set), so that a file changed
   during a reload is read again. */
static void start_reload(server *s) {
  sigset_t all, old;
  int rc;

  if (__atomic_load_n(&s->reloading, __ATOMIC_ACQUIRE))
    return;
  if (s->reloader_started) {
    pthread_join(s->reloader, NULL);
    s->reloader_started = 0;
  }
  s->reload = 0;
  __atomic_store_n(&s->reloading, 1, __ATOMIC_RELEASE);
  /* The thread must not take the signals meant for the loop. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  rc = pthread_create(&s->reloader, NULL, reload_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc == 0) {
    s->reloader_started = 1;
    return;
  }
  /* No thread: reload here, the loop waits. */
  __atomic_store_n(&s->reloading, 0, __ATOMIC_RELEASE);
  reload_main(s);
}

static void run(server *s) {
  struct epoll_event evs[256];
  int64_t now;

  while (!s->stop) {
    int n, i;

    n = epoll_wait(s->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), 1000);
    if (n < 0 && errno != EINTR) {
      obspamd_log(LOG_ERR, "epoll_wait: %s", strerror(errno));
      break;
    }
    s->woke_us = obspamd_now_us();
    for (i = 0; i < n; i++) {
      int type = *(int *)evs[i].data.ptr;
      uint32_t e = evs[i].events;

      if (type == ITEM_LISTENER) {
        accept_some(s, evs[i].data.ptr);
      } else if (type == ITEM_SIGNALS) {
        read_signals(s);
      } else {
        conn *c = evs[i].data.ptr;

        /* Each handler returns -1 when it closed c. */
        if ((e & (EPOLLERR | EPOLLHUP)) && !(e & EPOLLIN))
          conn_close(s, c);
        else if ((e & EPOLLOUT) && conn_writable(s, c) < 0)
          continue;
        else if (e & EPOLLIN)
          conn_readable(s, c);
      }
    }
    flush_ready(s);
    if (s->reload)
      start_reload(s);
    now = obspamd_now_ms();
    close_idle(s, now);
    close_slow(s, now);
    log_abuse(s, now);
    if (s->accept_paused && now >= s->accept_resume &&
        s->nconns < s->max_conns) {
      s->accept_paused = 0;
      set_listeners(s, 1);
    }
  }
}

/* The line tests and scripts wait for; it names the ports the kernel
   chose for "inet:HOST:0". */
static void log_ready(server *s, const char *config) {
  char where[1024];
  size_t used = 0;
  int i;

  where[0] = '\0';
  for (i = 0; i < s->nlisteners && used < sizeof(where); i++)
    used += (size_t)snprintf(where + used, sizeof(where) - used, "%s%s",
                             i > 0 ? ", " : "", s->listeners[i].spec);
  obspamd_log(LOG_INFO,
              "ready: listening on %s (libobspam %s, config %s, at most %ld "
              "connections, %ld per client)",
              where, obspam_version_string(), config, s->max_conns,
              s->max_per_client);
}

/* The number of connections: what --max-connections asks for, within
   what the file limit allows. */
static void set_limits(server *s, const options *o) {
  long fd_limit = raise_fd_limit();

  s->max_conns = fd_limit - FD_RESERVE > 16 ? fd_limit - FD_RESERVE : 16;
  if (o->max_connections > 0) {
    if (o->max_connections > s->max_conns)
      obspamd_log(LOG_WARNING,
                  "--max-connections %ld is more than the file limit (%ld) "
                  "allows: using %ld",
                  o->max_connections, fd_limit, s->max_conns);
    else
      s->max_conns = o->max_connections;
  }
  s->idle_ms = (int64_t)o->idle_timeout * 1000;
  s->request_ms = (int64_t)o->request_timeout * 1000;
  s->max_per_client = o->max_per_client;
}

/* The epoll set, with the signal pipe in it; the listeners come next. */
static int open_loop(server *s, int signals) {
  struct epoll_event ev;

  s->ep = epoll_create1(EPOLL_CLOEXEC);
  if (s->ep < 0) {
    obspamd_log(LOG_ERR, "epoll_create1: %s", strerror(errno));
    return -1;
  }
  s->signals_type = ITEM_SIGNALS;
  s->signals = signals;
  ev.events = EPOLLIN;
  ev.data.ptr = &s->signals_type;
  if (epoll_ctl(s->ep, EPOLL_CTL_ADD, signals, &ev) != 0) {
    obspamd_log(LOG_ERR, "epoll: %s", strerror(errno));
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  static server srv; /* large: the listeners' specs */
  server *s = &srv;
  obspamd_start st;
  options o;
  int rc;

  obspamd_open_stdio();
  rc = parse_options(argc, argv, &o);
  rc = obspamd_start_init(&st, PROGRAM, rc, &o.c, o.listen, o.nlisten);
  if (rc != OBSPAMD_START_GO_ON)
    return rc;
  if (obspamd_start_process(&st, OBSPAMD_SIGNALS_NONBLOCK) != 0)
    return 1;
  set_limits(s, &o);
  s->peers = peers_new();
  if (s->peers == NULL) {
    obspamd_log(LOG_ERR, "cannot start: out of memory");
    return 1;
  }
  if (obspamd_start_service(&st, &s->svc) != 0)
    return 1;

  s->ep = -1;
  rc = 1;
  if (open_loop(s, st.signals) == 0 && open_listeners(s, &o) == 0 &&
      obspamd_start_threads(&st, &s->svc) == 0) {
    log_ready(s, st.config);
    obspamd_start_ready(&st);
    run(s);
    if (s->stop)
      obspamd_log(LOG_INFO, "stopping on signal %d", s->stop);
    rc = s->stop ? 0 : 1;
    while (s->head != NULL)
      conn_close(s, s->head);
    if (s->reloader_started)
      pthread_join(s->reloader, NULL);
  }
  close_listeners(s);
  if (s->ep >= 0)
    close(s->ep);
  rc = obspamd_start_end(&st, &s->svc, rc);
  peers_free(s->peers);
  return rc;
}
