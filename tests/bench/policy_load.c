/* SPDX-License-Identifier: MIT */
/* bench_policy_load: a load generator for Postfix SMTP access policy
   servers (SMTPD_POLICY_README).

   It opens N connections to one policy server and, on each, does what a
   Postfix smtpd process does: write one request, wait for the whole reply
   ("action=...\n\n"), then write the next one. Nothing is pipelined, so
   every connection has exactly one request in flight and the latency of a
   request is the time from its first byte written to the last byte of its
   reply read.

   Each request carries the attributes Postfix 3.7 sends (about thirty),
   for one mailbox drawn at random (fixed-seed xorshift, uniform) from M
   mailboxes named userKKKK@dDDD.example, D = K / DOMAIN_SIZE. The request
   of every mailbox is rendered once before the clock starts, so the
   generator spends its time on I/O, not on formatting; only the queue id
   (in queue_id and instance) is written into a copy for each request, so
   that every request is a different message, as with Postfix: a policy
   server may treat a repeated instance as a second question about a
   message it has already decided. A template file (--template) replaces
   the built-in request; it may use the placeholders {mailbox} {local}
   {domain} {index} {octet} {queue_id} {state}.

   The connections are spread over T threads (default 1), each running one
   epoll loop over its non-blocking sockets. A warm-up phase (--warmup
   seconds) runs first and is not measured; then either --duration seconds
   or --requests replies (for at most --duration seconds) are measured.
   Requests sent before the measured phase began or answered after it
   ended are not counted.

   It prints requests per second, the latency percentiles, the replies by
   kind (DUNNO, refusals: 4xx/5xx/DEFER/REJECT, others) and the errors
   (failed connects, closed connections, timeouts, malformed replies; a
   connection that fails is reopened) and its own CPU time per reply,
   then one machine-readable line:

     RESULT label=... conns=4 requests=... seconds=... rps=... p50_us=...
     p90_us=... p99_us=... max_us=... errors=... dunno=... refused=...
     other=... replies_total=... load_cpu_us=...

   replies_total counts every reply read, warm-up included, so that the CPU
   time a server used during the whole run can be divided by it.

   It never fails on a time. The exit status is 0 when replies were
   measured and no error happened, 2 when an error happened or nothing was
   measured, 1 for bad usage.

   Usage: bench_policy_load [OPTIONS] TARGET
   TARGET: inet:HOST:PORT, HOST:PORT, [IPV6]:PORT, unix:PATH or /PATH. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define PROG "bench_policy_load"
/* A reply longer than this is malformed: Postfix itself allows lines of a
   few kilobytes, and no policy server answers with more. */
#define REPLY_MAX 4096
#define MAX_CONNECTIONS 4096
#define MAX_THREADS 64
/* How long a failed connection waits before it is opened again, so that a
   server that is down does not turn the generator into a busy loop. */
#define RECONNECT_NS 100000000ull

/* The attributes Postfix 3.7 sends for a message submitted with SMTP AUTH
   (SMTPD_POLICY_README, "Protocol description"), with TLS, at DATA
   (recipient is sent when the message has a single recipient). */
static const char default_template[] =
    "request=smtpd_access_policy\n"
    "protocol_state={state}\n"
    "protocol_name=ESMTP\n"
    "helo_name=laptop.{domain}\n"
    "queue_id={queue_id}\n"
    "sender={mailbox}\n"
    "recipient=friend{index}@gmail.example.net\n"
    "recipient_count=1\n"
    "client_address=198.51.100.{octet}\n"
    "client_name=host-198-51-100-{octet}.isp.example.net\n"
    "reverse_client_name=host-198-51-100-{octet}.isp.example.net\n"
    "instance={queue_id}.6745f2a1.1\n"
    "sasl_method=PLAIN\n"
    "sasl_username={mailbox}\n"
    "sasl_sender=\n"
    "size=48213\n"
    "ccert_subject=\n"
    "ccert_issuer=\n"
    "ccert_fingerprint=\n"
    "ccert_pubkey_fingerprint=\n"
    "encryption_protocol=TLSv1.3\n"
    "encryption_cipher=TLS_AES_256_GCM_SHA384\n"
    "encryption_keysize=256\n"
    "etrn_domain=\n"
    "stress=\n"
    "client_port=51724\n"
    "policy_context=submission\n"
    "server_address=192.0.2.10\n"
    "server_port=587\n"
    "compatibility_level=3.6\n"
    "mail_version=3.7.11\n"
    "\n";

/* ---- options ------------------------------------------------------------- */

static struct {
  const char *target;
  const char *label;
  const char *state;
  const char *template_file;
  unsigned connections;
  unsigned threads;
  unsigned mailboxes;
  unsigned domain_size;
  double duration;
  double warmup;
  double timeout;
  uint64_t requests; /* 0: measure for duration seconds */
  uint64_t seed;
} opt = {
    .label = "-",
    .state = "DATA",
    .connections = 1,
    .threads = 1,
    .mailboxes = 1000,
    .domain_size = 10,
    .duration = 10,
    .warmup = 1,
    .timeout = 5,
    .seed = 0x9e3779b97f4a7c15ull,
};

/* The resolved target. */
static struct sockaddr_storage target_addr;
static socklen_t target_len;

/* The rendered request of each mailbox, with the offsets of its queue ids,
   which are rewritten for every request. */
#define QID_DIGITS 10
#define MAX_QIDS 8
typedef struct rendered {
  char *text;
  size_t len;
  size_t qid_at[MAX_QIDS]; /* offsets of the QID_DIGITS hex digits */
  unsigned nqid;
} rendered;
static rendered *requests;
static size_t request_max; /* the longest request */

/* ---- phases -------------------------------------------------------------- */

enum { PHASE_WARMUP = 0, PHASE_MEASURE = 1, PHASE_STOP = 2 };
static int phase = PHASE_WARMUP;
/* When the measured phase began, in CLOCK_MONOTONIC ns; UINT64_MAX until
   then, so that no request of the warm-up counts. */
static uint64_t measure_start = UINT64_MAX;
static uint64_t measure_end;
static uint64_t measured_total; /* replies measured, all threads */
static volatile sig_atomic_t interrupted;

/* ---- helpers ------------------------------------------------------------- */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...) {
  va_list ap;

  fprintf(stderr, PROG ": ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A uniform index below n, from the high bits. */
static uint32_t rnd_below(uint64_t *s, uint32_t n) {
  return (uint32_t)(((xorshift64(s) >> 32) * (uint64_t)n) >> 32);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);

  if (p == NULL)
    die("out of memory (%zu bytes)", n);
  return p;
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (p == NULL)
    die("out of memory (%zu bytes)", n);
  return p;
}

static unsigned long parse_count(const char *what, const char *s,
                                 unsigned long min, unsigned long max) {
  char *end;
  unsigned long v;

  errno = 0;
  v = strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min ||
      v > max)
    die("%s: '%s' is not a whole number from %lu to %lu", what, s, min, max);
  return v;
}

static double parse_seconds(const char *what, const char *s, double min) {
  char *end;
  double v;

  errno = 0;
  v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= min) || v > 86400)
    die("%s: '%s' is not a number of seconds from %g to 86400", what, s, min);
  return v;
}

/* ---- the target ---------------------------------------------------------- */

static void resolve_target(const char *spec) {
  const char *path = NULL;
  char host[256];
  const char *port;
  const char *hp = spec;
  struct addrinfo hints, *res;
  int rc;

  if (strncmp(spec, "unix:", 5) == 0)
    path = spec + 5;
  else if (spec[0] == '/')
    path = spec;
  if (path != NULL) {
    struct sockaddr_un *sun = (struct sockaddr_un *)&target_addr;

    if (path[0] == '\0' || strlen(path) >= sizeof(sun->sun_path))
      die("target '%s': a socket path must have 1 to %zu bytes", spec,
          sizeof(sun->sun_path) - 1);
    memset(&target_addr, 0, sizeof(target_addr));
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, path);
    target_len = (socklen_t)sizeof(*sun);
    return;
  }

  if (strncmp(hp, "inet:", 5) == 0)
    hp += 5;
  if (hp[0] == '[') {
    const char *close = strchr(hp, ']');

    if (close == NULL || close[1] != ':' ||
        (size_t)(close - hp - 1) >= sizeof(host))
      die("target '%s': expected [IPV6]:PORT", spec);
    memcpy(host, hp + 1, (size_t)(close - hp - 1));
    host[close - hp - 1] = '\0';
    port = close + 2;
  } else {
    const char *colon = strrchr(hp, ':');

    if (colon == NULL || (size_t)(colon - hp) >= sizeof(host))
      die("target '%s': expected inet:HOST:PORT, HOST:PORT or unix:PATH", spec);
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    port = colon + 1;
  }
  parse_count("target port", port, 1, 65535);

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0)
    die("target '%s': %s", spec, gai_strerror(rc));
  memcpy(&target_addr, res->ai_addr, res->ai_addrlen);
  target_len = res->ai_addrlen;
  freeaddrinfo(res);
}

/* Opens a non-blocking connection to the target; -1 with errno set when
   the connect fails at once. A TCP connection to 127.0.0.1 normally
   completes within the call; otherwise EPOLLOUT tells when it does. */
static int open_connection(int *in_progress) {
  int fd = socket(target_addr.ss_family,
                  SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;

  *in_progress = 0;
  if (fd < 0)
    return -1;
  if (target_addr.ss_family != AF_UNIX)
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, (struct sockaddr *)&target_addr, target_len) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      int saved = errno;

      close(fd);
      errno = saved;
      return -1;
    }
    *in_progress = 1;
  }
  return fd;
}

/* ---- requests ------------------------------------------------------------ */

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t len = 0, cap = 0, n;

  if (f == NULL)
    die("template %s: %s", path, strerror(errno));
  do {
    if (cap - len < 4096) {
      cap = cap * 2 + 8192;
      if (cap > (1u << 20))
        die("template %s: longer than 1 MiB", path);
      buf = xrealloc(buf, cap);
    }
    n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
  } while (n > 0);
  if (ferror(f))
    die("template %s: %s", path, strerror(errno));
  fclose(f);
  buf[len] = '\0';
  if (memchr(buf, '\0', len) != NULL)
    die("template %s: contains a NUL byte", path);
  return buf;
}

/* Appends s to a growing buffer. */
static void append(char **buf, size_t *len, size_t *cap, const char *s,
                   size_t n) {
  if (*len + n + 1 > *cap) {
    *cap = (*len + n + 1) * 2;
    *buf = xrealloc(*buf, *cap);
  }
  memcpy(*buf + *len, s, n);
  *len += n;
  (*buf)[*len] = '\0';
}

static void mailbox_name(unsigned k, char *local, size_t local_size,
                         char *domain, size_t domain_size) {
  snprintf(local, local_size, "user%04u", k);
  snprintf(domain, domain_size, "d%03u.example", k / opt.domain_size);
}

/* Renders the template for mailbox k. Lines end with "\n" (a template
   written with "\r\n" is converted), and the request ends with exactly
   one empty line, whatever the template ends with. */
static void render(const char *tpl, unsigned k, rendered *r) {
  char local[32], domain[64], mailbox[96], value[128];
  char *out = NULL;
  size_t len = 0, cap = 0;
  const char *p = tpl;

  mailbox_name(k, local, sizeof(local), domain, sizeof(domain));
  snprintf(mailbox, sizeof(mailbox), "%s@%s", local, domain);
  r->nqid = 0;
  append(&out, &len, &cap, "", 0);
  while (*p != '\0') {
    const char *brace = strpbrk(p, "{\r");
    const char *v = NULL;

    if (brace == NULL) {
      append(&out, &len, &cap, p, strlen(p));
      break;
    }
    append(&out, &len, &cap, p, (size_t)(brace - p));
    p = brace;
    if (*p == '\r') {
      p++;
      continue;
    }
#define PLACEHOLDER(name) (strncmp(p, "{" name "}", sizeof(name) + 1) == 0)
    if (PLACEHOLDER("mailbox"))
      v = mailbox;
    else if (PLACEHOLDER("local"))
      v = local;
    else if (PLACEHOLDER("domain"))
      v = domain;
    else if (PLACEHOLDER("state"))
      v = opt.state;
    else if (PLACEHOLDER("index")) {
      snprintf(value, sizeof(value), "%u", k);
      v = value;
    } else if (PLACEHOLDER("octet")) {
      snprintf(value, sizeof(value), "%u", 1 + k % 254);
      v = value;
    } else if (PLACEHOLDER("queue_id")) {
      /* Postfix's short queue ids are a dozen or so upper-case hex
         digits; the digits after "4Q" are the request's number. */
      if (r->nqid == MAX_QIDS)
        die("the request template has more than %d {queue_id}", MAX_QIDS);
      r->qid_at[r->nqid++] = len + 2;
      snprintf(value, sizeof(value), "4Q%0*u", QID_DIGITS, 0u);
      v = value;
    }
#undef PLACEHOLDER
    if (v != NULL) {
      append(&out, &len, &cap, v, strlen(v));
      p = strchr(p, '}') + 1;
    } else {
      append(&out, &len, &cap, "{", 1);
      p++;
    }
  }
  /* Exactly one empty line at the end. */
  while (len > 0 && out[len - 1] == '\n')
    len--;
  if (len == 0)
    die("the request template is empty");
  out[len] = '\0';
  append(&out, &len, &cap, "\n\n", 2);
  r->text = out;
  r->len = len;
}

static void render_all(void) {
  char *tpl = opt.template_file ? read_file(opt.template_file)
                                : (char *)default_template;
  unsigned k;

  requests = xmalloc(sizeof(*requests) * opt.mailboxes);
  for (k = 0; k < opt.mailboxes; k++) {
    render(tpl, k, &requests[k]);
    if (requests[k].len > request_max)
      request_max = requests[k].len;
  }
  if (tpl != default_template)
    free(tpl);
}

/* ---- connections and threads --------------------------------------------- */

enum conn_state {
  CONN_DOWN = 0,   /* closed; reopened at retry_at */
  CONN_CONNECTING, /* connect in progress */
  CONN_SENDING,    /* part of the request is written */
  CONN_WAITING     /* the request is written; reading the reply */
};

typedef struct conn {
  int fd;
  enum conn_state state;
  unsigned mailbox; /* of the request in flight */
  char *out;        /* the request in flight: request_max bytes */
  size_t out_len;
  size_t sent;       /* bytes of the request written */
  size_t got;        /* bytes of the reply read */
  uint64_t started;  /* when the request's first byte was written */
  uint64_t retry_at; /* CONN_DOWN: when to reconnect */
  char reply[REPLY_MAX];
} conn;

typedef struct worker {
  pthread_t thread;
  unsigned index;
  int epfd;
  conn *conns;
  unsigned nconns;
  uint64_t rng;
  uint64_t seq; /* requests started, for unique queue ids */
  /* Latencies of the measured replies, in ns. */
  uint64_t *lat;
  size_t nlat, caplat;
  /* Replies by kind (measured phase) and errors (any phase). */
  uint64_t dunno, refused, other;
  uint64_t err_connect, err_closed, err_timeout, err_malformed;
  uint64_t warmup_replies;
  char first_error[256];
  char first_other[128];
} worker;

static void note_error(worker *w, uint64_t *counter, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note_error(worker *w, uint64_t *counter, const char *fmt, ...) {
  va_list ap;

  (*counter)++;
  if (w->first_error[0] != '\0')
    return;
  va_start(ap, fmt);
  vsnprintf(w->first_error, sizeof(w->first_error), fmt, ap);
  va_end(ap);
}

static void conn_close(worker *w, conn *c) {
  if (c->fd >= 0) {
    (void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  c->fd = -1;
  c->state = CONN_DOWN;
  c->retry_at = now_ns() + RECONNECT_NS;
}

static void conn_watch(worker *w, conn *c, uint32_t events, int op) {
  struct epoll_event ev;

  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.ptr = c;
  if (epoll_ctl(w->epfd, op, c->fd, &ev) != 0)
    die("epoll_ctl: %s", strerror(errno));
}

/* Writes what is left of the request in flight. Returns 0, or -1 when the
   connection failed (and was closed). */
static int conn_write(worker *w, conn *c) {
  const char *req = c->out;
  size_t len = c->out_len;

  while (c->sent < len) {
    ssize_t n = send(c->fd, req + c->sent, len - c->sent, MSG_NOSIGNAL);

    if (n > 0) {
      c->sent += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (c->state != CONN_SENDING) {
        c->state = CONN_SENDING;
        conn_watch(w, c, EPOLLOUT, EPOLL_CTL_MOD);
      }
      return 0;
    }
    note_error(w, &w->err_closed, "write: %s",
               n < 0 ? strerror(errno) : "nothing written");
    conn_close(w, c);
    return -1;
  }
  if (c->state == CONN_SENDING || c->state == CONN_CONNECTING)
    conn_watch(w, c, EPOLLIN, EPOLL_CTL_MOD);
  c->state = CONN_WAITING;
  return 0;
}

/* Starts the next request on a connection that is idle: a copy of its
   mailbox's request with a queue id of its own. The numbers of worker i
   are i, i + T, i + 2T, ... so that no two requests share one. */
static int conn_next(worker *w, conn *c) {
  static const char hex[] = "0123456789ABCDEF";
  const rendered *r;
  uint64_t id = w->seq++ * opt.threads + w->index;
  char digits[QID_DIGITS];
  unsigned i;

  c->mailbox = rnd_below(&w->rng, opt.mailboxes);
  r = &requests[c->mailbox];
  memcpy(c->out, r->text, r->len);
  c->out_len = r->len;
  for (i = 0; i < QID_DIGITS; i++, id >>= 4)
    digits[QID_DIGITS - 1 - i] = hex[id & 15];
  for (i = 0; i < r->nqid; i++)
    memcpy(c->out + r->qid_at[i], digits, QID_DIGITS);
  c->sent = 0;
  c->got = 0;
  c->started = now_ns();
  return conn_write(w, c);
}

static int conn_open(worker *w, conn *c) {
  int in_progress;

  c->fd = open_connection(&in_progress);
  if (c->fd < 0) {
    note_error(w, &w->err_connect, "connect: %s", strerror(errno));
    c->state = CONN_DOWN;
    c->retry_at = now_ns() + RECONNECT_NS;
    return -1;
  }
  if (in_progress) {
    c->state = CONN_CONNECTING;
    c->started = now_ns();
    conn_watch(w, c, EPOLLOUT, EPOLL_CTL_ADD);
    return 0;
  }
  /* Connected at once: the socket is watched for the reply, which is
     what conn_write expects of a connection in CONN_WAITING. */
  conn_watch(w, c, EPOLLIN, EPOLL_CTL_ADD);
  c->state = CONN_WAITING;
  return conn_next(w, c);
}

static void record(worker *w, uint64_t ns) {
  if (w->nlat == w->caplat) {
    w->caplat = w->caplat ? w->caplat * 2 : 65536;
    w->lat = xrealloc(w->lat, w->caplat * sizeof(*w->lat));
  }
  w->lat[w->nlat++] = ns;
}

/* The reply is complete (it ends with its empty line): check and count
   it. Returns 0, or -1 when it is malformed. */
static int conn_reply(worker *w, conn *c, uint64_t done) {
  const char *action = c->reply + 7;
  size_t alen;

  if (c->got < 9 || strncmp(c->reply, "action=", 7) != 0 ||
      memchr(c->reply, '\n', c->got - 2) != NULL) {
    note_error(w, &w->err_malformed,
               "malformed reply (%zu bytes): expected one line "
               "'action=...' and an empty line",
               c->got);
    return -1;
  }
  alen = c->got - 9; /* without "action=" and the "\n\n" */
  if (__atomic_load_n(&phase, __ATOMIC_ACQUIRE) != PHASE_MEASURE ||
      c->started < __atomic_load_n(&measure_start, __ATOMIC_ACQUIRE)) {
    w->warmup_replies++;
    return 0;
  }
  record(w, done - c->started);
  if (alen >= 5 && strncasecmp(action, "DUNNO", 5) == 0)
    w->dunno++;
  else if ((alen >= 1 && (action[0] == '4' || action[0] == '5')) ||
           (alen >= 5 && (strncasecmp(action, "DEFER", 5) == 0 ||
                          strncasecmp(action, "REJECT", 6) == 0)))
    w->refused++;
  else {
    w->other++;
    if (w->first_other[0] == '\0')
      snprintf(w->first_other, sizeof(w->first_other), "%.*s",
               (int)(alen < 100 ? alen : 100), action);
  }
  if (opt.requests > 0 &&
      __atomic_add_fetch(&measured_total, 1, __ATOMIC_ACQ_REL) ==
          opt.requests) {
    __atomic_store_n(&measure_end, done, __ATOMIC_RELEASE);
    __atomic_store_n(&phase, PHASE_STOP, __ATOMIC_RELEASE);
  }
  return 0;
}

static void conn_readable(worker *w, conn *c) {
  for (;;) {
    ssize_t n = recv(c->fd, c->reply + c->got, sizeof(c->reply) - c->got, 0);
    uint64_t done;

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (n <= 0) {
      if (n == 0)
        note_error(w, &w->err_closed, "the server closed the connection%s",
                   c->got ? " in the middle of a reply" : "");
      else
        note_error(w, &w->err_closed, "read: %s", strerror(errno));
      conn_close(w, c);
      return;
    }
    if (c->state != CONN_WAITING) {
      note_error(w, &w->err_malformed,
                 "the server sent %zd bytes before the request was written", n);
      conn_close(w, c);
      return;
    }
    c->got += (size_t)n;
    if (c->got < 2 || c->reply[c->got - 1] != '\n' ||
        c->reply[c->got - 2] != '\n') {
      /* A reply ends with "\n\n" and nothing may follow it, since only
         one request is in flight: anything else is incomplete so far,
         or too long. */
      if (c->got == sizeof(c->reply)) {
        note_error(w, &w->err_malformed, "a reply longer than %d bytes",
                   REPLY_MAX);
        conn_close(w, c);
        return;
      }
      {
        void *end = memmem(c->reply, c->got, "\n\n", 2);

        if (end != NULL) {
          note_error(w, &w->err_malformed, "%zu bytes after the end of a reply",
                     c->got - (size_t)((char *)end + 2 - c->reply));
          conn_close(w, c);
          return;
        }
      }
      continue;
    }
    done = now_ns();
    if (conn_reply(w, c, done) != 0) {
      conn_close(w, c);
      return;
    }
    if (__atomic_load_n(&phase, __ATOMIC_ACQUIRE) == PHASE_STOP)
      return;
    /* The next reply cannot be there yet: wait for epoll. */
    (void)conn_next(w, c);
    return;
  }
}

static void conn_writable(worker *w, conn *c) {
  if (c->state == CONN_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
      err = errno;
    if (err != 0) {
      note_error(w, &w->err_connect, "connect: %s", strerror(err));
      conn_close(w, c);
      return;
    }
    (void)conn_next(w, c);
    return;
  }
  if (c->state == CONN_SENDING)
    (void)conn_write(w, c);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  struct epoll_event events[64];
  uint64_t timeout_ns = (uint64_t)(opt.timeout * 1e9);
  uint64_t last_sweep = now_ns();
  unsigned i;

  for (i = 0; i < w->nconns; i++)
    (void)conn_open(w, &w->conns[i]);

  while (__atomic_load_n(&phase, __ATOMIC_ACQUIRE) != PHASE_STOP) {
    int n = epoll_wait(w->epfd, events, 64, 20);
    uint64_t now;

    if (n < 0 && errno != EINTR)
      die("epoll_wait: %s", strerror(errno));
    for (i = 0; n > 0 && i < (unsigned)n; i++) {
      conn *c = events[i].data.ptr;

      if (c->fd < 0)
        continue;
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (c->state == CONN_CONNECTING || c->state == CONN_SENDING)
          conn_writable(w, c);
        else
          conn_readable(w, c);
      } else if (events[i].events & EPOLLOUT)
        conn_writable(w, c);
    }

    /* Timeouts and reconnections, checked a few times a second. */
    now = now_ns();
    if (now - last_sweep < 10000000ull)
      continue;
    last_sweep = now;
    for (i = 0; i < w->nconns; i++) {
      conn *c = &w->conns[i];

      if (c->state == CONN_DOWN) {
        if (now >= c->retry_at &&
            __atomic_load_n(&phase, __ATOMIC_ACQUIRE) != PHASE_STOP)
          (void)conn_open(w, c);
      } else if (now - c->started > timeout_ns) {
        note_error(w, &w->err_timeout,
                   c->state == CONN_CONNECTING ? "connect timed out after %g s"
                                               : "no complete reply after %g s",
                   opt.timeout);
        conn_close(w, c);
      }
    }
  }
  for (i = 0; i < w->nconns; i++)
    if (w->conns[i].fd >= 0)
      close(w->conns[i].fd);
  return NULL;
}

/* ---- report -------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

  return x < y ? -1 : x > y;
}

/* The nearest-rank percentile of a sorted array, in microseconds. */
static double percentile_us(const uint64_t *v, size_t n, double p) {
  size_t rank;

  if (n == 0)
    return 0;
  rank = (size_t)(p / 100.0 * (double)n + 0.999999);
  if (rank < 1)
    rank = 1;
  if (rank > n)
    rank = n;
  return (double)v[rank - 1] / 1000.0;
}

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static void sleep_until(uint64_t t) {
  for (;;) {
    uint64_t now = now_ns();
    struct timespec ts;

    if (now >= t || interrupted ||
        __atomic_load_n(&phase, __ATOMIC_ACQUIRE) == PHASE_STOP)
      return;
    ts.tv_sec = 0;
    ts.tv_nsec = t - now > 50000000ull ? 50000000L : (long)(t - now);
    nanosleep(&ts, NULL);
  }
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " [OPTIONS] TARGET\n"
          "  TARGET               inet:HOST:PORT, HOST:PORT, [IPV6]:PORT,\n"
          "                       unix:PATH or /PATH\n"
          "  -c, --connections N  connections, one request in flight each "
          "(1)\n"
          "  -T, --threads N      threads sharing the connections, one epoll\n"
          "                       loop each (1)\n"
          "  -d, --duration S     seconds measured (10)\n"
          "  -n, --requests N     measure N replies, for at most --duration\n"
          "                       seconds\n"
          "  -w, --warmup S       seconds of unmeasured warm-up first (1)\n"
          "  -m, --mailboxes N    mailboxes the requests are spread over "
          "(1000)\n"
          "      --domain-size N  mailboxes per domain (10): mailbox K is\n"
          "                       userKKKK@dDDD.example, D = K / N\n"
          "  -s, --state STATE    protocol_state of the requests (DATA)\n"
          "  -f, --template FILE  request template instead of the built-in\n"
          "                       Postfix 3.7 one; placeholders {mailbox}\n"
          "                       {local} {domain} {index} {octet} {queue_id}\n"
          "                       {state}\n"
          "  -t, --timeout S      seconds before a request counts as timed "
          "out (5)\n"
          "      --seed N         seed of the mailbox choice\n"
          "  -l, --label TEXT     name printed in the RESULT line\n"
          "      --list-mailboxes print \"LOCAL DOMAIN\" per mailbox and exit\n"
          "      --show-request   print the request of mailbox 0 and exit\n");
}

int main(int argc, char **argv) {
  enum { OPT_DOMAIN_SIZE = 256, OPT_SEED, OPT_LIST, OPT_SHOW };
  static const struct option longopts[] = {
      {"connections", required_argument, NULL, 'c'},
      {"threads", required_argument, NULL, 'T'},
      {"duration", required_argument, NULL, 'd'},
      {"requests", required_argument, NULL, 'n'},
      {"warmup", required_argument, NULL, 'w'},
      {"mailboxes", required_argument, NULL, 'm'},
      {"domain-size", required_argument, NULL, OPT_DOMAIN_SIZE},
      {"state", required_argument, NULL, 's'},
      {"template", required_argument, NULL, 'f'},
      {"timeout", required_argument, NULL, 't'},
      {"seed", required_argument, NULL, OPT_SEED},
      {"label", required_argument, NULL, 'l'},
      {"list-mailboxes", no_argument, NULL, OPT_LIST},
      {"show-request", no_argument, NULL, OPT_SHOW},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int ch, list = 0, show = 0, status;
  worker *workers;
  uint64_t t0, lat_n = 0, errors = 0;
  uint64_t dunno = 0, refused = 0, other = 0, warm = 0;
  uint64_t e_connect = 0, e_closed = 0, e_timeout = 0, e_malformed = 0;
  uint64_t *all;
  double seconds, rps, load_cpu_us = -1;
  unsigned i;
  struct sigaction sa;
  const char *first_error = NULL, *first_other = NULL;

  while ((ch = getopt_long(argc, argv, "c:T:d:n:w:m:s:f:t:l:h", longopts,
                           NULL)) != -1) {
    switch (ch) {
    case 'c':
      opt.connections =
          (unsigned)parse_count("--connections", optarg, 1, MAX_CONNECTIONS);
      break;
    case 'T':
      opt.threads = (unsigned)parse_count("--threads", optarg, 1, MAX_THREADS);
      break;
    case 'd':
      opt.duration = parse_seconds("--duration", optarg, 0.1);
      break;
    case 'n':
      opt.requests = parse_count("--requests", optarg, 1, 1000000000ul);
      break;
    case 'w':
      opt.warmup = parse_seconds("--warmup", optarg, 0);
      break;
    case 'm':
      opt.mailboxes = (unsigned)parse_count("--mailboxes", optarg, 1, 1000000);
      break;
    case OPT_DOMAIN_SIZE:
      opt.domain_size =
          (unsigned)parse_count("--domain-size", optarg, 1, 1000000);
      break;
    case 's':
      if (optarg[0] == '\0' || strpbrk(optarg, "\r\n") != NULL)
        die("--state: '%s' is not a protocol state", optarg);
      opt.state = optarg;
      break;
    case 'f':
      opt.template_file = optarg;
      break;
    case 't':
      opt.timeout = parse_seconds("--timeout", optarg, 0.001);
      break;
    case OPT_SEED:
      opt.seed = parse_count("--seed", optarg, 1, ULONG_MAX);
      break;
    case 'l':
      opt.label = optarg;
      break;
    case OPT_LIST:
      list = 1;
      break;
    case OPT_SHOW:
      show = 1;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 1;
    }
  }

  if (list) {
    char local[32], domain[64];

    for (i = 0; i < opt.mailboxes; i++) {
      mailbox_name(i, local, sizeof(local), domain, sizeof(domain));
      printf("%s %s\n", local, domain);
    }
    return 0;
  }
  render_all();
  if (show) {
    fputs(requests[0].text, stdout);
    return 0;
  }
  if (optind != argc - 1) {
    usage(stderr);
    return 1;
  }
  opt.target = argv[optind];
  resolve_target(opt.target);
  if (opt.threads > opt.connections)
    opt.threads = opt.connections;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  workers = calloc(opt.threads, sizeof(*workers));
  if (workers == NULL)
    die("out of memory");
  for (i = 0; i < opt.threads; i++) {
    worker *w = &workers[i];
    unsigned j;

    w->index = i;
    w->nconns = opt.connections / opt.threads +
                (i < opt.connections % opt.threads ? 1 : 0);
    w->conns = calloc(w->nconns, sizeof(*w->conns));
    if (w->conns == NULL)
      die("out of memory");
    for (j = 0; j < w->nconns; j++) {
      w->conns[j].fd = -1;
      w->conns[j].out = xmalloc(request_max);
    }
    w->rng = opt.seed ^ (0x2545f4914f6cdd1dull * (i + 1));
    if (w->rng == 0)
      w->rng = 1;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0)
      die("epoll_create1: %s", strerror(errno));
  }

  printf(PROG ": %s, %u connection%s on %u thread%s, %u mailboxes, "
              "protocol_state=%s, %zu-byte requests, warm-up %g s, ",
         opt.target, opt.connections, opt.connections == 1 ? "" : "s",
         opt.threads, opt.threads == 1 ? "" : "s", opt.mailboxes, opt.state,
         requests[0].len, opt.warmup);
  if (opt.requests > 0)
    printf("then %" PRIu64 " replies measured\n", opt.requests);
  else
    printf("then %g s measured\n", opt.duration);
  fflush(stdout);

  t0 = now_ns();
  for (i = 0; i < opt.threads; i++)
    if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0)
      die("pthread_create failed");
  sleep_until(t0 + (uint64_t)(opt.warmup * 1e9));
  __atomic_store_n(&measure_start, now_ns(), __ATOMIC_RELEASE);
  __atomic_store_n(&phase, PHASE_MEASURE, __ATOMIC_RELEASE);
  /* With --requests, the worker that measures the last reply ends the
     phase, and sleep_until returns when it does; the duration still
     bounds the run, so that a server that stopped answering cannot make
     it last for ever. */
  sleep_until(measure_start + (uint64_t)(opt.duration * 1e9));
  if (__atomic_load_n(&phase, __ATOMIC_ACQUIRE) != PHASE_STOP) {
    __atomic_store_n(&measure_end, now_ns(), __ATOMIC_RELEASE);
    __atomic_store_n(&phase, PHASE_STOP, __ATOMIC_RELEASE);
  }
  for (i = 0; i < opt.threads; i++)
    pthread_join(workers[i].thread, NULL);

  for (i = 0; i < opt.threads; i++)
    lat_n += workers[i].nlat;
  all = xmalloc(sizeof(*all) * (lat_n ? lat_n : 1));
  lat_n = 0;
  for (i = 0; i < opt.threads; i++) {
    worker *w = &workers[i];

    memcpy(all + lat_n, w->lat, w->nlat * sizeof(*w->lat));
    lat_n += w->nlat;
    dunno += w->dunno;
    refused += w->refused;
    other += w->other;
    warm += w->warmup_replies;
    e_connect += w->err_connect;
    e_closed += w->err_closed;
    e_timeout += w->err_timeout;
    e_malformed += w->err_malformed;
    if (first_error == NULL && w->first_error[0] != '\0')
      first_error = w->first_error;
    if (first_other == NULL && w->first_other[0] != '\0')
      first_other = w->first_other;
  }
  errors = e_connect + e_closed + e_timeout + e_malformed;
  qsort(all, lat_n, sizeof(*all), cmp_u64);
  seconds = (double)(measure_end - measure_start) / 1e9;
  rps = seconds > 0 ? (double)lat_n / seconds : 0;

  printf("  %" PRIu64 " replies in %.3f s: %.0f requests/s "
         "(%" PRIu64 " warm-up replies not counted)%s\n",
         lat_n, seconds, rps, warm, interrupted ? " [interrupted]" : "");
  printf("  latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n",
         percentile_us(all, lat_n, 50), percentile_us(all, lat_n, 90),
         percentile_us(all, lat_n, 99), percentile_us(all, lat_n, 99.9),
         lat_n ? (double)all[lat_n - 1] / 1000.0 : 0.0);
  printf("  replies: %" PRIu64 " DUNNO, %" PRIu64 " refused (4xx/5xx/"
         "DEFER/REJECT), %" PRIu64 " other%s%s%s\n",
         dunno, refused, other, first_other ? " (first: '" : "",
         first_other ? first_other : "", first_other ? "')" : "");
  printf("  errors: %" PRIu64 " (connect %" PRIu64 ", closed %" PRIu64
         ", timeout %" PRIu64 ", malformed %" PRIu64 ")%s%s\n",
         errors, e_connect, e_closed, e_timeout, e_malformed,
         first_error ? "; first: " : "", first_error ? first_error : "");
  /* The generator's own CPU time per reply read: when it comes near a
     server's, the generator, not the server, sets the pace. */
  {
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) == 0 && lat_n + warm > 0)
      load_cpu_us =
          ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6) *
          1e6 / (double)(lat_n + warm);
  }
  printf("  load generator CPU: %.2f us per reply\n", load_cpu_us);
  printf("RESULT label=%s conns=%u requests=%" PRIu64 " seconds=%.3f "
         "rps=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f "
         "errors=%" PRIu64 " dunno=%" PRIu64 " refused=%" PRIu64
         " other=%" PRIu64 " replies_total=%" PRIu64 " load_cpu_us=%.2f\n",
         opt.label, opt.connections, lat_n, seconds, rps,
         percentile_us(all, lat_n, 50), percentile_us(all, lat_n, 90),
         percentile_us(all, lat_n, 99),
         lat_n ? (double)all[lat_n - 1] / 1000.0 : 0.0, errors, dunno, refused,
         other, lat_n + warm, load_cpu_us);
  status = (lat_n > 0 && errors == 0) ? 0 : 2;

  for (i = 0; i < opt.threads; i++) {
    close(workers[i].epfd);
    free(workers[i].lat);
    for (unsigned j = 0; j < workers[i].nconns; j++)
      free(workers[i].conns[j].out);
    free(workers[i].conns);
  }
  free(workers);
  free(all);
  for (i = 0; i < opt.mailboxes; i++)
    free(requests[i].text);
  free(requests);
  return status;
}
