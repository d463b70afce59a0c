/* SPDX-License-Identifier: MIT */
/* obspam-policyd: a Postfix SMTP access policy server (check_policy_service)
   on top of libobspam.

   One thread runs an epoll loop over non-blocking sockets: the listeners,
   every policy connection, a self-pipe for signals and an eventfd for
   decisions. The requests of one round that need a decision are handed
   to obspam_decide_start together at the end of the round; a connection
   whose request waits for its decision reads nothing more meanwhile, so
   that its answers keep the order of its requests. With the counters in
   memory the decisions are made at once, in the loop's thread; with a
   shared store (Redis) the engine's threads make them while the loop
   goes on with other connections, and hand them back through the
   eventfd. So one thread serves thousands of connections and never waits
   for the network; the control socket and the metrics endpoint have
   threads of their own (examples/common), and so does a reload while it
   runs. The request parser is policy.c, the rules for a request
   rules.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

enum { ITEM_LISTENER, ITEM_SIGNALS, ITEM_DECIDED, ITEM_CONN };

/* What the decision a connection waits for is about. */
enum {
  PHASE_MAIN,         /* the request's message (probe, check or charge) */
  PHASE_RCPT_FORWARD, /* at RCPT, the probe of the forward it makes */
  PHASE_FORWARDS      /* a step of a message with forwards (forwards.h) */
};

/* What a request with a forward needs for its later steps. Rare, so it
   is allocated for the request and freed with its answer, and the other
   connections do not carry it. */
typedef struct detour {
  obspamd_forwards one;     /* DATA: the forward of its one recipient */
  obspamd_forwards_run run; /* DATA: the steps of its decisions */
  /* RCPT: the recipients before this one, the cap, the forward the
     recipient makes and the probe of its mailbox. */
  uint32_t before;
  int64_t cap;
  obspamd_forward f;
  obspam_message pm;
} detour;

typedef struct listener {
  int type; /* ITEM_LISTENER */
  int fd;
  int paused;
  int unix_socket;         /* peers are checked (obspamd_peer_allowed) */
  char spec[PATH_MAX + 8]; /* as given, or with the port bound */
  const char *unlink_path; /* the socket file of a unix: listener */
} listener;

/* The server's lists of connections, which chain_append and chain_remove
   keep. */
enum chain {
  ALL, /* every connection, least recently active first */
  /* Those whose request is incomplete (or read but not answered, because
     the client does not take its answers), oldest first. */
  WAITING,
  /* Those with answers made in this round, written once the round's
     decisions are in the journal. */
  READY,
  CHAINS
};

typedef struct conn {
  int type; /* ITEM_CONN */
  int fd;
  uint32_t events; /* the epoll interest now */
  /* Its neighbours in each of the server's lists, and whether it is on
     each. */
  struct conn *prev[CHAINS], *next[CHAINS];
  int on[CHAINS];
  int64_t last;   /* monotonic ms of the last read */
  double read_us; /* when the round of the last read (s->woke_us) began */
  /* Answers in out[] whose wait is not counted yet, and the read_us of
     the first of them (the oldest). */
  unsigned answers;
  double answers_us;
  int64_t started; /* monotonic ms: the start of its request, on WAITING */
  /* A request whose decision was handed to obspam_decide_start: the
     connection reads and parses nothing more until it is answered. A
     connection closed meanwhile is only marked closed, and freed when
     its decision comes back, since the library still reads its message
     and the batch still names it. */
  int busy;
  int closed;
  int phase;               /* PHASE_*: what the decision is for */
  rules_step step;         /* the request's step */
  double asked_us;         /* when it was handed over, for the metrics */
  obspam_message m;        /* the request's message, pointing into req */
  detour *detour;          /* a request with a forward; NULL for the others */
  peer *client;            /* its client's count; NULL when not counted */
  int unix_peer;           /* came in on a unix: listener, peer checked */
  pid_t pid;               /* the peer's process there (carry_put), else 0 */
  int asked;               /* its first request came: carry_take was done */
  size_t in_off, in_len;   /* bytes of in[] not parsed yet */
  size_t out_off, out_len; /* bytes of out[] not written yet */
  char peer[72];           /* for log lines */
  rules_memory mem;        /* what the rules remember of its messages */
  policy_req req;
  char in[IN_CAP];
  char out[OUT_CAP];
} conn;

/* Decisions handed to obspam_decide_start together: the requests of one
   loop round (a round with more starts several). Requests put their
   messages in; the verdicts come back in v[] (or in a detour's run). */
#define BATCH_MAX 128
/* Batches kept for reuse when they come back. */
#define SPARE_MAX 8
typedef struct batch {
  struct server *s;
  struct batch *next; /* among the spares, or the batches decided */
  size_t n;
  const obspam_message *msgs[BATCH_MAX];
  obspam_verdict *out[BATCH_MAX];
  int rc[BATCH_MAX];
  uint32_t how[BATCH_MAX];
  /* The connection whose request message i is of. A request with
     several messages (the checks of a message and its forwards) has
     them one after the other, the first with span = their number. */
  conn *owner[BATCH_MAX];
  unsigned char span[BATCH_MAX];
  obspam_verdict v[BATCH_MAX];
  unsigned ticket; /* obspamd_store_enter's, left once answered */
} batch;

typedef struct server {
  obspamd_service svc;
  int ep;
  listener listeners[MAX_LISTENERS];
  int nlisteners;
  int signals_type; /* ITEM_SIGNALS, the epoll item of the signal pipe */
  int signals;      /* its read end */
  int decided_type; /* ITEM_DECIDED, the epoll item of the eventfd */
  int decided;      /* written when the engine's threads decided a batch */
  pthread_t loop;   /* the loop's thread: its batches need no wake-up */
  batch *filling;   /* the requests of this round not handed over yet */
  batch *finished;  /* decided, not answered yet (atomic: batch_done) */
  batch *spare;
  int nspare;
  long handed; /* batches handed over and not answered yet */
  conn *head[CHAINS], *tail[CHAINS]; /* the lists of connections */
  long nconns, max_conns;
  int64_t idle_ms, request_ms;
  /* Connections counted per client (peers.h). */
  peer_table *peers;
  long max_per_client;
  /* Closings for abuse, logged once per ABUSE_LOG_MS with a count. */
  int64_t abuse_logged;
  long slow_closed, capped;
  char slow_last[72], capped_last[64];
  /* The memories of the messages of closed connections, by the peer's
     process (carry_put); NULL until one is kept. */
  struct carried *carried;
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
  /* When settle took the batch being answered: the end of the time its
     requests took, for the metrics (one clock read per batch instead of
     one per request; the answers are written in place in the same
     microseconds), and the time of its refusals in their log lines'
     intervals (obspamd_refusal_held), in milliseconds. */
  double decided_us;
  int64_t decided_ms;
  /* The action and the unit of the configuration (obspamd_reject,
     obspamd_unit) as the round began: what the round's refusals say; and
     whether it may declare forwards or lists (obspamd_marks): the round's
     requests look up only those it may declare. */
  int reject, unit, marks;
  /* Whether the loop holds the lock of the refusals' table
     (obspamd_refusals_hold): taken at the first refusal of a batch being
     answered, and released when its answers are made (settle), so that a
     flood takes it once a batch instead of once a refusal. */
  int refusals_held;
  /* Decisions answered whose time is not counted yet (request_end): a
     run of timed_n that took timed_us each. The decisions of a batch,
     asked in one round and answered together, took the same time, and
     are counted at once at the end of the batch (latency_count). */
  double timed_us;
  uint64_t timed_n;
} server;

/* Takes c off list l, if it is on it. */
static void chain_remove(server *s, enum chain l, conn *c) {
  if (!c->on[l])
    return;
  if (c->prev[l] != NULL)
    c->prev[l]->next[l] = c->next[l];
  else
    s->head[l] = c->next[l];
  if (c->next[l] != NULL)
    c->next[l]->prev[l] = c->prev[l];
  else
    s->tail[l] = c->prev[l];
  c->prev[l] = c->next[l] = NULL;
  c->on[l] = 0;
}

/* Puts c at the end of list l, if it is not on it yet. The list of
   WAITING connections is then in the order of their deadlines, which is
   the order of their starts: a request that starts now goes to the end. */
static void chain_append(server *s, enum chain l, conn *c) {
  if (c->on[l])
    return;
  c->prev[l] = s->tail[l];
  c->next[l] = NULL;
  if (s->tail[l] != NULL)
    s->tail[l]->next[l] = c;
  else
    s->head[l] = c;
  s->tail[l] = c;
  c->on[l] = 1;
}

/* After c's input was parsed and answered: a request begun and not
   complete, or input read and not yet answered (the client does not take
   its answers), must be done within --request-timeout of the start of
   that request. completed says whether a request was answered in this
   round: the one pending now is then a new one. */
static void track_request(server *s, conn *c, int completed) {
  int pending = c->req.request_len > 0 || c->in_off < c->in_len;

  if (!pending) {
    chain_remove(s, WAITING, c);
    return;
  }
  if (c->on[WAITING] && !completed)
    return; /* the same request goes on */
  chain_remove(s, WAITING, c);
  c->started = (int64_t)(s->woke_us / 1000);
  chain_append(s, WAITING, c);
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

/* ---- what a process's next connection remembers -------------------------- */

/* Postfix closes a policy connection after smtpd_policy_service_max_idle
   (300 s) without a request, or max_ttl (1000 s) after it was opened, and
   the same smtpd process opens another for its next question: between
   the RCPT and the DATA, or the DATA and the END-OF-MESSAGE of one
   message (a slow upload). What the rules remember of that message
   (decided once, its recipients and forwards counted at RCPT) goes over
   to the new connection, found by the process's pid from the peer's
   credentials, so that the message is not charged twice nor its
   recipients counted afresh. A pid used again by another process finds
   only instances that are not its own (Postfix's hold the pid and the
   time), which match nothing. Over TCP no process is named: each
   connection starts afresh. The table is direct-mapped by pid and a
   memory is kept for at most CARRY_MS: a connection whose memory is
   overwritten or forgotten starts afresh, as every one did before. */
#define CARRY_SLOTS 256
#define CARRY_MS (3600 * 1000)
typedef struct carried {
  pid_t pid;  /* 0: the slot is free */
  int64_t at; /* monotonic ms of the close */
  rules_memory mem;
} carried;

/* Keeps the memory of c, which is being closed. */
static void carry_put(server *s, const conn *c) {
  carried *k;

  if (c->pid <= 0 || (c->mem.decided[0] == '\0' && c->mem.probed[0] == '\0' &&
                      c->mem.counted[0] == '\0'))
    return;
  if (s->carried == NULL &&
      (s->carried = calloc(CARRY_SLOTS, sizeof(*s->carried))) == NULL)
    return; /* out of memory: the next connection starts afresh */
  k = &s->carried[(unsigned)c->pid % CARRY_SLOTS];
  k->pid = c->pid;
  k->at = (int64_t)(s->woke_us / 1000);
  k->mem = c->mem;
}

/* Before c's first request: the memory its process left, if any. */
static void carry_take(server *s, conn *c) {
  carried *k;

  c->asked = 1;
  if (c->pid <= 0 || s->carried == NULL)
    return;
  k = &s->carried[(unsigned)c->pid % CARRY_SLOTS];
  if (k->pid != c->pid)
    return;
  if ((int64_t)(s->woke_us / 1000) - k->at < CARRY_MS)
    c->mem = k->mem;
  k->pid = 0;
}

static void conn_free(conn *c) {
  free(c->detour);
  free(c);
}

/* Closes c; while its decision is out, c itself stays, marked closed,
   and the batch frees it when it comes back. */
static void conn_close(server *s, conn *c) {
  /* Counted as closed before the peer can see it closed: a scrape that
     follows the peer's end of the connection counts it gone. */
  obspamd_metrics_connection_close(&s->svc.metrics);
  carry_put(s, c);
  epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  chain_remove(s, ALL, c);
  chain_remove(s, WAITING, c);
  chain_remove(s, READY, c);
  peers_release(s->peers, c->client);
  c->client = NULL;
  if (c->busy)
    c->closed = 1;
  else
    conn_free(c);
  s->nconns--;
  /* A descriptor is free again. */
  if (s->accept_paused && s->nconns < s->max_conns) {
    s->accept_paused = 0;
    set_listeners(s, 1);
  }
}

static void conn_interest(server *s, conn *c) {
  uint32_t want = 0;

  if (c->in_off == c->in_len && !c->busy)
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

/* Where c's next answer goes, at the end of its output: the answers are
   written there in place (rules_reply), not copied from elsewhere. A
   request is parsed only when there is room for its answer (out_room),
   so RULES_REPLY_MAX bytes are free there. */
static char *answer_at(conn *c) {
  if (c->out_off > 0) {
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
  }
  return c->out + c->out_len;
}

/* Adds the answer of n bytes written at answer_at to c's output. */
static void answered(conn *c, size_t n) {
  if (c->answers++ == 0)
    c->answers_us = c->read_us;
  c->out_len += n;
}

static void answer_dunno(conn *c) {
  answered(c, rules_reply(answer_at(c), 0, 0));
}

/* "action=451 4.7.1 ...\n\n": in a flood every request is answered so,
   and the text is copied from what was written for the object's last
   refusal while its words stay the same. */
static inline __attribute__((always_inline)) void
answer_refuse(server *s, conn *c, const obspam_verdict *v,
              const obspam_message *m) {
  char *line = answer_at(c);
  int code;
  size_t n;

  if (!s->refusals_held) {
    obspamd_refusals_hold();
    s->refusals_held = 1;
  }
  n = obspamd_refusal_held(v, m, s->reject, s->unit,
                           rules_attr(&c->req, POLICY_QUEUE_ID), &code,
                           line + RULES_TEXT_AT, RULES_TEXT_MAX, s->decided_ms);
  answered(c, rules_reply(line, code, n));
}

/* "action=452 4.5.3 Too many recipients": the recipient past the cap. */
static void answer_too_many(conn *c) {
  char *line = answer_at(c);
  size_t n = sizeof(RULES_TOO_MANY) - 1;

  memcpy(line + RULES_TEXT_AT, RULES_TOO_MANY, n);
  answered(c, rules_reply(line, RULES_TOO_MANY_CODE, n));
}

/* The forward the recipient of r makes, if any (rules_recipient): *flag
   and mailbox as obspam_forward_lookup gives them, *flag 0 for none.
   A configuration without forwards (obspamd_marks) has no forward to
   find: the lookup is not even asked. */
static void recipient_forward(server *s, conn *c, uint32_t *flag,
                              char mailbox[OBSPAM_NAME_MAX + 1]) {
  const char *rcpt;

  *flag = 0;
  if (!(s->marks & OBSPAMD_MARK_FORWARDS))
    return;
  rcpt = rules_recipient(&c->req, c->step, &c->mem);
  if (rcpt != NULL && obspam_forward_lookup(s->svc.engine, rcpt, flag, mailbox,
                                            OBSPAM_NAME_MAX + 1) != OBSPAM_OK)
    *flag = 0;
}

static detour *detour_get(conn *c) {
  if (c->detour == NULL)
    c->detour = malloc(sizeof(*c->detour));
  return c->detour;
}

/* ---- decisions handed over ---------------------------------------------- */

/* Called once a batch is decided: on the loop's thread when the
   counters are in memory (obspam_decide_start has not returned yet), on
   one of the engine's threads with a shared store. Only hands the batch
   over: the loop answers it (settle). */
static void batch_done(void *arg) {
  batch *b = arg;
  server *s = b->s;
  batch *head = __atomic_load_n(&s->finished, __ATOMIC_RELAXED);
  uint64_t one = 1;
  ssize_t n;

  do
    b->next = head;
  while (!__atomic_compare_exchange_n(&s->finished, &head, b, 1,
                                      __ATOMIC_RELEASE, __ATOMIC_RELAXED));
  if (pthread_equal(pthread_self(), s->loop))
    return; /* the loop looks at once (settle) */
  do
    n = write(s->decided, &one, sizeof(one));
  while (n < 0 && errno == EINTR);
}

/* Hands the batch being filled to the engine. */
static void batch_start(server *s) {
  batch *b = s->filling;
  size_t i;
  int rc;

  s->filling = NULL;
  s->handed++;
  b->ticket = obspamd_store_enter(&s->svc);
  rc = obspam_decide_start(s->svc.engine, b->msgs, b->out, b->rc, b->how, b->n,
                           batch_done, b);
  if (rc != OBSPAM_OK) {
    /* Nothing was decided: each request gets the error, as it would
       from obspam_decide. */
    for (i = 0; i < b->n; i++)
      b->rc[i] = rc;
    batch_done(b);
  }
}

/* Logs that a request of c cannot be decided for want of memory, and
   returns -1: c is then closed without an answer. */
static int out_of_memory(const conn *c) {
  obspamd_log(LOG_ERR,
              "cannot decide a request from %s: out of memory; closing "
              "without an answer",
              c->peer);
  return -1;
}

/* Puts k messages of c's request in the batch being filled: msgs[j]
   decided (how[j], NULL for 0) into vs[j], or into the batch's own
   verdicts when vs is NULL. c waits for them (phase). Returns -1 when
   no batch can be had (out of memory). */
static inline __attribute__((always_inline)) int
ask(server *s, conn *c, int phase, unsigned k, const obspam_message *msgs,
    const uint32_t *how, obspam_verdict *vs) {
  batch *b;
  unsigned j;

  if (s->filling != NULL && s->filling->n + k > BATCH_MAX)
    batch_start(s);
  if (s->filling == NULL) {
    if ((b = s->spare) != NULL) {
      s->spare = b->next;
      s->nspare--;
    } else if ((b = malloc(sizeof(*b))) == NULL) {
      return out_of_memory(c);
    }
    b->s = s;
    b->n = 0;
    s->filling = b;
  }
  b = s->filling;
  for (j = 0; j < k; j++) {
    size_t i = b->n++;

    b->msgs[i] = &msgs[j];
    b->how[i] = how != NULL ? how[j] : 0;
    if (vs != NULL) {
      b->out[i] = &vs[j];
    } else {
      b->v[i].struct_size = sizeof(b->v[i]);
      b->out[i] = &b->v[i];
    }
    b->owner[i] = c;
    b->span[i] = j == 0 ? (unsigned char)k : 0;
  }
  c->phase = phase;
  c->busy = 1;
  return 0;
}

/* ---- answers ------------------------------------------------------------ */

static int conn_process(server *s, conn *c, int resumed);
static inline __attribute__((always_inline)) void
conn_parsed(server *s, conn *c, int completed);

/* Counts the time of the decisions of the run (request_end). Called
   before answers leave: a client that has its answer and asks for the
   metrics finds its decision's time counted. */
static void latency_count(server *s) {
  if (s->timed_n > 0)
    obspamd_metrics_latency(&s->svc.metrics, s->timed_us, s->timed_n);
  s->timed_n = 0;
}

/* The end of an answered request: what the rules remember, and the
   decision in the metrics, its time in the run of those that took as
   long. */
static void request_end(server *s, conn *c, int refused,
                        const obspam_verdict *v, const obspam_message *about) {
  double us = s->decided_us - c->asked_us;

  if (!rules_end(c->step, &c->req, refused, &c->mem))
    return;
  obspamd_metrics_verdict(&s->svc.metrics, v, about);
  if (s->timed_n > 0 && us != s->timed_us)
    latency_count(s);
  s->timed_us = us;
  s->timed_n++;
}

/* At RCPT, once the recipients cap is known to be the only question
   left (SPEC.md section 2): the recipient past the cap is put off, the
   others are let through, and a forward (flag not 0) is kept for
   DATA. */
static void rcpt_admit(conn *c, uint32_t before, int64_t cap, uint32_t flag,
                       const char *mailbox) {
  if (c->mem.cap == RULES_CAP_UNKNOWN)
    c->mem.cap = cap;
  if (!rules_rcpt_admit(&c->mem, before, c->mem.cap)) {
    answer_too_many(c);
    return;
  }
  if (flag != 0)
    rules_forward_keep(&c->mem, flag, mailbox);
  answer_dunno(c);
}

/* A RCPT that the sender's probe let through (v): a forwarding recipient
   whose mailbox could not send one more message is refused, naming that
   mailbox (its probe is one more decision: returns 1, c waits for it);
   otherwise the recipients cap. Returns 0 when answered, -1 when c must
   be closed. */
static int rcpt_let_through(server *s, conn *c, const obspam_verdict *v) {
  uint32_t before = rules_rcpt_before(&c->req, &c->mem), flag;
  int64_t cap = c->mem.cap != RULES_CAP_UNKNOWN
                    ? c->mem.cap
                    : obspamd_recipients_cap(s->svc.engine, v);
  char mailbox[OBSPAM_NAME_MAX + 1];
  detour *d;

  recipient_forward(s, c, &flag, mailbox);
  if (flag == 0) {
    rcpt_admit(c, before, cap, 0, NULL);
    request_end(s, c, 0, v, &c->m);
    return 0;
  }
  if ((d = detour_get(c)) == NULL) {
    return out_of_memory(c);
  }
  d->before = before;
  d->cap = cap;
  d->f.flag = flag;
  d->f.count = 1;
  memcpy(d->f.mailbox, mailbox, sizeof(mailbox));
  obspamd_forward_message(&c->m, &d->f, 1, &d->pm);
  return ask(s, c, PHASE_RCPT_FORWARD, 1, &d->pm, NULL, NULL) == 0 ? 1 : -1;
}

/* The probe of a RCPT's forward is back (rc, pv). Only a refused probe
   is counted: one let through is counted when it is charged. Then, as
   for any RCPT let through, the forwards a message can keep and the
   recipients cap. */
static void rcpt_forward_probed(server *s, conn *c, int rc,
                                const obspam_verdict *pv) {
  detour *d = c->detour;

  if (rc == OBSPAM_OK && pv->action == OBSPAM_REFUSE) {
    obspamd_metrics_marked(&s->svc.metrics, pv, &d->pm);
    answer_refuse(s, c, pv, &d->pm);
  } else if (!rules_forward_fits(&c->mem, d->f.mailbox)) {
    answer_too_many(c);
  } else {
    rcpt_admit(c, d->before, d->cap, d->f.flag, d->f.mailbox);
  }
  request_end(s, c, 0, pv, &c->m);
}

/* The answer to a request whose decision is known: rc and v about the
   message about. Returns 0, or -1 when it must not be answered (the
   protocol then asks for a closed connection, and Postfix applies its
   smtpd_policy_service_default_action). */
static inline __attribute__((always_inline)) int
answer_decided(server *s, conn *c, int rc, const obspam_verdict *v,
               const obspam_message *about) {
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
  if (v->action == OBSPAM_REFUSE)
    answer_refuse(s, c, v, about);
  else if (c->step != RULES_DECIDE)
    return rcpt_let_through(s, c, v);
  else
    answer_dunno(c);
  request_end(s, c, v->action == OBSPAM_REFUSE, v, about);
  return 0;
}

/* The decision of c's request is back: items at..at+k of b. Answers it
   and goes on with the requests that waited behind it, or asks for the
   next decision the request needs. */
static void decided(server *s, conn *c, batch *b, size_t at, unsigned k) {
  detour *d = c->detour;
  unsigned j, n;
  int r;

  c->busy = 0;
  if (c->closed) {
    conn_free(c);
    return;
  }
  switch (c->phase) {
  case PHASE_RCPT_FORWARD:
    rcpt_forward_probed(s, c, b->rc[at], b->out[at]);
    r = 0;
    break;
  case PHASE_FORWARDS:
    for (j = 0; j < k; j++)
      d->run.rc[j] = b->rc[at + j];
    n = obspamd_forwards_step(&d->run, &s->svc.metrics);
    if (n > 0) {
      r = ask(s, c, PHASE_FORWARDS, n, d->run.msg, d->run.how, d->run.v) == 0
              ? 1
              : -1;
      break;
    }
    r = answer_decided(s, c, d->run.result, &d->run.v[0], &d->run.about);
    break;
  default:
    r = answer_decided(s, c, b->rc[at], b->out[at], &c->m);
    break;
  }
  if (r > 0)
    return; /* c waits for another decision */
  if (r < 0) {
    conn_close(s, c);
    return;
  }
  if (c->detour != NULL) {
    free(c->detour);
    c->detour = NULL;
  }
  policy_reset(&c->req);
  /* Usually nothing more was read: only the end of conn_process. */
  if (c->in_off == c->in_len)
    conn_parsed(s, c, 1);
  else
    conn_process(s, c, 1);
}

/* A complete message at DATA or END-OF-MESSAGE: its forwards
   (obspamd_forwards_run: those kept at RCPT, or the one recipient Postfix
   names at DATA when its RCPT did not come here) are decided with it in
   steps; a message without is one decision. Returns 1 (c waits) or -1. */
static int ask_message(server *s, conn *c) {
  const obspamd_forwards *fw = rules_forwards(&c->req, &c->mem);
  char mailbox[OBSPAM_NAME_MAX + 1];
  uint32_t flag = 0;
  unsigned n;
  detour *d;

  if (fw->n == 0)
    recipient_forward(s, c, &flag, mailbox);
  if (fw->n == 0 && flag == 0)
    return ask(s, c, PHASE_MAIN, 1, &c->m, NULL, NULL) == 0 ? 1 : -1;
  if ((d = detour_get(c)) == NULL) {
    return out_of_memory(c);
  }
  if (fw->n == 0) {
    obspamd_forwards_clear(&d->one);
    obspamd_forwards_keep(&d->one, flag, mailbox);
    fw = &d->one;
  }
  obspamd_forwards_begin(&d->run, &c->m, fw);
  n = obspamd_forwards_step(&d->run, &s->svc.metrics);
  return ask(s, c, PHASE_FORWARDS, n, d->run.msg, d->run.how, d->run.v) == 0
             ? 1
             : -1;
}

/* Counts a bad request of c; returns whether its line is to be logged:
   the first of its client's episode is, the others are counted into one
   line per client and interval (obspamd_bad_request_counted), so that a
   client cannot write thousands of lines a second into the mail log. */
static int bad_request(server *s, conn *c) {
  char client[sizeof(c->peer)];

  obspamd_metrics_bad_request(&s->svc.metrics);
  if (c->client != NULL)
    peers_name(c->client, client, sizeof(client));
  else
    snprintf(client, sizeof(client), "%s", c->peer);
  return !obspamd_bad_request_counted(client, -1);
}

/* Takes one complete request by the rules (rules.h): answers it at once
   when no decision is needed (returns 0), or hands its decision over
   (returns 1: c waits for it). Returns -1 when it must not be answered:
   the protocol then asks for a closed connection, and Postfix applies
   its smtpd_policy_service_default_action. */
static int answer(server *s, conn *c) {
  static const obspam_message init = OBSPAM_MESSAGE_INIT;
  static const uint32_t dry = OBSPAM_DECIDE_DRY;
  rules_step step;

  c->m = init;
  if (!c->asked)
    carry_take(s, c);
  step = rules_begin(&c->req, c->unix_peer, &c->mem, &c->m);
  if (step == RULES_CLOSE) {
    if (bad_request(s, c))
      obspamd_log(LOG_WARNING,
                  "request from %s names a submitter's uid (obspam_uid), "
                  "which only an allowed peer of a unix: socket may do; "
                  "closing without an answer",
                  c->peer);
    return -1;
  }
  if (step == RULES_DUNNO) {
    answer_dunno(c);
    return 0;
  }
  if (s->marks & OBSPAMD_MARK_LISTS)
    obspamd_mark_list(s->svc.engine, &c->m);
  c->step = step;
  c->asked_us = s->woke_us;
  /* A message with no forward kept, under a configuration without
     forwards, is one decision: what ask_message would find out. */
  if (step == RULES_DECIDE &&
      (c->mem.fw.n != 0 || (s->marks & OBSPAMD_MARK_FORWARDS)))
    return ask_message(s, c);
  return ask(s, c, PHASE_MAIN, 1, &c->m, step == RULES_CHECK ? &dry : NULL,
             NULL) == 0
             ? 1
             : -1;
}

/* recv and send as plain system calls. glibc's recv and send are
   cancellation points: in a process with other threads, each call turns
   asynchronous cancellation on and off around the system call, some 35
   instructions a call and 70 a request, for a loop that no thread ever
   cancels. A system without those two calls of their own (32-bit x86's
   socketcall) keeps the wrappers. */
static ssize_t sock_recv(int fd, void *buf, size_t len) {
#ifdef SYS_recvfrom
  return syscall(SYS_recvfrom, fd, buf, len, 0, NULL, NULL);
#else
  return recv(fd, buf, len, 0);
#endif
}

static ssize_t sock_send(int fd, const void *buf, size_t len) {
#ifdef SYS_sendto
  return syscall(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, NULL, 0);
#else
  return send(fd, buf, len, MSG_NOSIGNAL);
#endif
}

/* Writes what it can of the pending answers. Returns -1 on a dead peer. */
static int conn_flush(conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t n = sock_send(c->fd, c->out + c->out_off, c->out_len - c->out_off);

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

/* Waits of answers not counted yet: n of us microseconds each. The
   answers of a round's connections mostly waited exactly as long (read
   in the same round, written at the same time), and a run of equal ones
   is counted in one call. */
typedef struct waits {
  double us;
  uint64_t n;
} waits;

static void waits_count(server *s, waits *w) {
  if (w->n > 0)
    obspamd_metrics_timing(&s->svc.metrics.waits, w->us, w->n);
  w->n = 0;
}

static void waits_add(server *s, waits *w, double us, uint64_t n) {
  if (w->n > 0 && us != w->us)
    waits_count(s, w);
  w->us = us;
  w->n += n;
}

/* Once c's pending answers were written (conn_flush): the wait of each
   answer not counted yet, from the read that completed its request to
   now_us, when this write began, goes into w. An answer the socket does
   not take now is counted all the same: the client that does not read
   is not the server's wait. */
static void conn_waited(server *s, conn *c, double now_us, waits *w) {
  if (c->answers > 0) {
    waits_add(s, w, now_us - c->answers_us, c->answers);
    c->answers = 0;
  }
}

/* Writes c's pending answers and counts their waits (conn_waited).
   Returns -1 on a dead peer (nothing is counted). */
static int conn_send(server *s, conn *c, double now_us) {
  waits w = {0, 0};

  if (conn_flush(c) < 0)
    return -1;
  conn_waited(s, c, now_us, &w);
  waits_count(s, &w);
  return 0;
}

/* Room for one more answer. */
static int out_room(const conn *c) {
  return OUT_CAP - (c->out_len - c->out_off) >= RULES_REPLY_MAX;
}

/* After c's input was parsed as far as it goes (conn_process): its
   deadline, and its answers to write at the end of the round.
   completed: whether a request was answered in this round. */
static inline __attribute__((always_inline)) void
conn_parsed(server *s, conn *c, int completed) {
  if (c->in_off == c->in_len)
    c->in_off = c->in_len = 0;
  /* The time a decision takes is the server's, not the client's: no
     request deadline runs meanwhile. */
  if (c->busy)
    chain_remove(s, WAITING, c);
  else
    track_request(s, c, completed);
  if (c->out_len > c->out_off)
    chain_append(s, READY, c); /* written at the end of the round */
  else if (!c->busy)
    conn_interest(s, c);
  /* A connection that waits keeps its interest as it is: with the
     counters in memory its answer comes in this round, and two changes
     of it would cost two system calls for nothing. If it is readable
     before then, conn_readable takes the interest away. */
}

/* Parses what was read and answers every complete request, as long as
   there is room for answers; when the answers fill their buffer, it is
   written out and parsing goes on, until the input is used up, the
   socket takes no more (then EPOLLOUT brings the rest back here) or a
   request waits for its decision (then its answer brings the rest back
   here: resumed says so). A round does at most IN_CAP bytes of one
   connection, so a client that pipelines thousands of requests cannot
   starve the others. Returns -1 when c was closed. */
static int conn_process(server *s, conn *c, int resumed) {
  int completed = resumed;

  while (!c->busy) {
    size_t used;
    int rc;

    if (c->in_off == c->in_len)
      break;
    if (!out_room(c)) {
      /* The answers leave only after their decisions are in the journal
         (a deep pipeline: otherwise once per round, in flush_ready), and
         their times in the metrics. */
      obspamd_journal_flush(&s->svc);
      latency_count(s);
      if (conn_send(s, c, obspamd_now_us()) < 0) {
        conn_close(s, c);
        return -1;
      }
      if (!out_room(c))
        break; /* the socket is full: wait for EPOLLOUT */
    }
    rc = policy_feed(&c->req, c->in + c->in_off, c->in_len - c->in_off, &used);
    c->in_off += used;
    if (rc == POLICY_ERROR) {
      if (bad_request(s, c))
        obspamd_log(LOG_WARNING,
                    "bad policy request from %s: %s; closing without an "
                    "answer",
                    c->peer, c->req.error);
      conn_close(s, c);
      return -1;
    }
    if (rc == POLICY_COMPLETE) {
      rc = answer(s, c);
      if (rc < 0) {
        conn_close(s, c);
        return -1;
      }
      if (rc > 0)
        break; /* its answer comes back through decided() */
      policy_reset(&c->req);
      completed = 1;
    }
  }
  conn_parsed(s, c, completed);
  return 0;
}

/* Hands the requests of the round over and answers what was decided,
   until neither is left: with the counters in memory a batch is decided
   at once, and its answers let the requests that waited behind them be
   parsed, which may make another batch. */
static void settle(server *s) {
  for (;;) {
    batch *b, *rev = NULL;

    if (s->filling != NULL)
      batch_start(s);
    b = __atomic_exchange_n(&s->finished, NULL, __ATOMIC_ACQUIRE);
    if (b == NULL)
      return;
    /* Oldest first. */
    while (b != NULL) {
      batch *next = b->next;

      b->next = rev;
      rev = b;
      b = next;
    }
    while ((b = rev) != NULL) {
      size_t i;

      rev = b->next;
      s->decided_us = obspamd_now_us();
      s->decided_ms = (int64_t)(s->decided_us / 1000);
      for (i = 0; i < b->n; i += b->span[i])
        decided(s, b->owner[i], b, i, b->span[i]);
      latency_count(s);
      if (s->refusals_held) {
        obspamd_refusals_release();
        s->refusals_held = 0;
      }
      obspamd_store_leave(&s->svc, b->ticket);
      s->handed--;
      if (s->nspare < SPARE_MAX) {
        b->next = s->spare;
        s->spare = b;
        s->nspare++;
      } else {
        free(b);
      }
    }
  }
}

/* At exit, every connection closed: drops the batch not handed over
   yet (the loop stopped inside a round; nobody would get its answers,
   and a charge without an answer would count a message that Postfix
   sends again), then waits for the batches still out, which free the
   connections that were closed while they were. */
static void settle_all(server *s) {
  batch *b = s->filling;

  if (b != NULL) {
    size_t i;

    s->filling = NULL;
    for (i = 0; i < b->n; i += b->span[i])
      conn_free(b->owner[i]);
    free(b);
  }
  while (s->handed > 0) {
    struct pollfd pfd = {s->decided, POLLIN, 0};
    uint64_t count;

    if (poll(&pfd, 1, 1000) > 0 && read(s->decided, &count, sizeof(count)))
      pfd.revents = 0; /* read only to empty it: settle takes the batches */
    settle(s);
  }
}

/* The end of a round: the decisions made in it go to the journal in one
   write, then their answers leave. */
static void flush_ready(server *s) {
  waits w = {0, 0};
  double now_us;

  if (s->head[READY] == NULL)
    return;
  obspamd_journal_flush(&s->svc);
  /* One clock read for the round's answers: the waits they count end
     when the writes begin, after the journal's. */
  now_us = obspamd_now_us();
  while (s->head[READY] != NULL) {
    conn *c = s->head[READY];

    chain_remove(s, READY, c);
    if (conn_flush(c) < 0) {
      conn_close(s, c);
      continue;
    }
    conn_waited(s, c, now_us, &w);
    conn_interest(s, c);
  }
  waits_count(s, &w);
}

static int conn_readable(server *s, conn *c) {
  ssize_t n;

  if (c->busy) {
    conn_interest(s, c); /* nothing is read until it is answered */
    return 0;
  }
  if (c->in_off < c->in_len)
    return 0; /* still parsing what came before */
  do
    n = sock_recv(c->fd, c->in, sizeof(c->in));
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return 0;
  if (n <= 0) {
    /* Postfix closes connections it no longer needs; a reset is the same
       to us. A client that only shut down its side gets the answers that
       are still waiting, as far as the socket takes them now. */
    if (n == 0) {
      if (c->on[READY])
        obspamd_journal_flush(&s->svc);
      conn_send(s, c, obspamd_now_us());
    }
    conn_close(s, c);
    return -1;
  }
  c->in_off = 0;
  c->in_len = (size_t)n;
  c->read_us = s->woke_us;
  c->last = (int64_t)(s->woke_us / 1000);
  chain_remove(s, ALL, c);
  chain_append(s, ALL, c);
  return conn_process(s, c, 0);
}

static int conn_writable(server *s, conn *c) {
  if (conn_flush(c) < 0) {
    conn_close(s, c);
    return -1;
  }
  if (c->in_off < c->in_len && !c->busy) {
    /* The requests that waited for room waited for the client, which
       did not take its answers: their wait in the server starts now. */
    c->read_us = s->woke_us;
    return conn_process(s, c, 0);
  }
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
    c->pid = 0;
    c->asked = 0;
    if (l->unix_socket) {
      struct ucred cred;
      socklen_t clen = sizeof(cred);

      if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
        c->pid = cred.pid;
    }
    c->busy = c->closed = 0;
    c->detour = NULL;
    memset(c->on, 0, sizeof(c->on));
    c->events = EPOLLIN;
    c->in_off = c->in_len = c->out_off = c->out_len = 0;
    c->answers = 0;
    c->read_us = c->answers_us = s->woke_us;
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
    chain_append(s, ALL, c);
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
  while (s->head[ALL] != NULL && now - s->head[ALL]->last >= s->idle_ms) {
    conn *c = s->head[ALL];

    obspamd_log(LOG_INFO, "closing the connection from %s: idle for %lld s",
                c->peer, (long long)(s->idle_ms / 1000));
    conn_close(s, c);
  }
}

/* Closes the connections whose request was not complete in time. */
static void close_slow(server *s, int64_t now) {
  while (s->head[WAITING] != NULL &&
         now - s->head[WAITING]->started >= s->request_ms) {
    conn *c = s->head[WAITING];

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
  obspamd_timing *rounds = &s->svc.metrics.rounds;
  int64_t now;

  while (!s->stop) {
    int n, i;

    n = epoll_wait(s->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), 1000);
    if (n < 0 && errno != EINTR) {
      obspamd_log(LOG_ERR, "epoll_wait: %s", strerror(errno));
      break;
    }
    s->woke_us = obspamd_now_us();
    s->reject = obspamd_reject(&s->svc);
    s->unit = obspamd_unit(&s->svc);
    s->marks = obspamd_marks(&s->svc);
    for (i = 0; i < n; i++) {
      int type = *(int *)evs[i].data.ptr;
      uint32_t e = evs[i].events;

      if (type == ITEM_LISTENER) {
        accept_some(s, evs[i].data.ptr);
      } else if (type == ITEM_SIGNALS) {
        read_signals(s);
      } else if (type == ITEM_DECIDED) {
        uint64_t count;

        /* Emptied only: settle takes the batches decided. */
        if (read(s->decided, &count, sizeof(count)) < 0)
          continue;
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
    settle(s);
    flush_ready(s);
    if (s->reload)
      start_reload(s);
    /* The time the round began is close enough for the deadlines: the
       last read of every connection was in this round or before. */
    now = (int64_t)(s->woke_us / 1000);
    close_idle(s, now);
    close_slow(s, now);
    log_abuse(s, now);
    if (s->accept_paused && now >= s->accept_resume &&
        s->nconns < s->max_conns) {
      s->accept_paused = 0;
      set_listeners(s, 1);
    }
    /* The round's work, measured here, is the loop's own: the time the
       kernel takes to run it again after epoll_wait is not in it (the
       time the thread is preempted during the round is). */
    obspamd_metrics_timing(rounds, obspamd_now_us() - s->woke_us, 1);
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

/* The epoll set, with the signal pipe and the eventfd of decisions in
   it; the listeners come next. */
static int open_loop(server *s, int signals) {
  struct epoll_event ev;

  s->loop = pthread_self();
  s->decided = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->decided < 0) {
    obspamd_log(LOG_ERR, "eventfd: %s", strerror(errno));
    return -1;
  }

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
  s->decided_type = ITEM_DECIDED;
  ev.events = EPOLLIN;
  ev.data.ptr = &s->decided_type;
  if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->decided, &ev) != 0) {
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
  /* Before the metrics endpoint starts: the loop's times are measured,
     and the loop is the only thread that counts decisions. */
  s->svc.metrics.loop = 1;
  s->svc.metrics.one_writer = 1;

  s->ep = -1;
  s->decided = -1;
  rc = 1;
  if (open_loop(s, st.signals) == 0 && open_listeners(s, &o) == 0 &&
      obspamd_start_threads(&st, &s->svc) == 0) {
    log_ready(s, st.config);
    obspamd_start_ready(&st);
    run(s);
    if (s->stop)
      obspamd_log(LOG_INFO, "stopping on signal %d", s->stop);
    rc = s->stop ? 0 : 1;
    while (s->head[ALL] != NULL)
      conn_close(s, s->head[ALL]);
    settle_all(s);
    if (s->reloader_started)
      pthread_join(s->reloader, NULL);
  }
  close_listeners(s);
  if (s->ep >= 0)
    close(s->ep);
  rc = obspamd_start_end(&st, &s->svc, rc);
  /* After the engine is freed: none of its threads writes to it now. */
  if (s->decided >= 0)
    close(s->decided);
  while (s->spare != NULL) {
    batch *b = s->spare;

    s->spare = b->next;
    free(b);
  }
  peers_free(s->peers);
  free(s->carried);
  return rc;
}
