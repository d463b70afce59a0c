/* SPDX-License-Identifier: MIT */
/* bench_dunno_server: the ceiling of a policy server on this machine.

   A Postfix policy server that does no work at all: it reads bytes until
   an empty line ends a request and answers "action=DUNNO\n\n", without
   looking at a single attribute. What it costs per request is what every
   policy server pays whatever it decides: the epoll wake-up, one read and
   one write on a socket. Its requests per second are therefore the most
   any policy server can reach here with the same event model, and
   tests/bench/policyd_compare.sh measures obspam-policyd against it.

   It is built like obspam-policyd's network side, so that the comparison
   is fair: one thread, one epoll loop, non-blocking sockets, level-
   triggered, one read of up to 16 KiB per wake-up. A server with more
   threads would set a different ceiling.

   Usage: bench_dunno_server LISTEN
   LISTEN: inet:HOST:PORT (PORT 0: any free port), inet:[IPV6]:PORT or
   unix:PATH. Once it listens, it prints "listening on inet:HOST:PORT"
   (with the port it got) on stdout. SIGTERM or SIGINT stop it; it then
   prints on stderr how many requests it answered. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PROG "bench_dunno_server"
#define REPLY "action=DUNNO\n\n"
#define REPLY_LEN (sizeof(REPLY) - 1)
/* Replies owed to a client that does not read them are bounded: past
   this, the server stops reading from it until they are written. */
#define MAX_OWED 4096

typedef struct client {
  int fd;
  int line_has_text; /* the current line has a byte other than '\r' */
  int request_has_text;
  uint64_t owed;      /* replies not written yet */
  size_t owed_offset; /* bytes of the first owed reply already written */
  uint32_t events;    /* what epoll watches for now */
} client;

static volatile sig_atomic_t stop;
static uint64_t answered;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void die(const char *what) {
  fprintf(stderr, PROG ": %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Opens the listening socket for spec and returns it; fills shown with the
   address actually bound (the port chosen for port 0). */
static int listen_on(const char *spec, char *shown, size_t shown_size) {
  int fd, one = 1;

  if (strncmp(spec, "unix:", 5) == 0) {
    struct sockaddr_un sun;
    const char *path = spec + 5;

    if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
      fprintf(stderr, PROG ": %s: bad socket path\n", spec);
      exit(1);
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    strcpy(sun.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
      die("socket");
    (void)unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
      die(spec);
    snprintf(shown, shown_size, "%s", spec);
  } else if (strncmp(spec, "inet:", 5) == 0) {
    char host[256], serv[16];
    const char *hp = spec + 5, *port;
    struct addrinfo hints, *res;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    int rc;

    if (hp[0] == '[') {
      const char *close = strchr(hp, ']');

      if (close == NULL || close[1] != ':' ||
          (size_t)(close - hp - 1) >= sizeof(host)) {
        fprintf(stderr, PROG ": %s: expected inet:[IPV6]:PORT\n", spec);
        exit(1);
      }
      memcpy(host, hp + 1, (size_t)(close - hp - 1));
      host[close - hp - 1] = '\0';
      port = close + 2;
    } else {
      const char *colon = strrchr(hp, ':');

      if (colon == NULL || (size_t)(colon - hp) >= sizeof(host)) {
        fprintf(stderr, PROG ": %s: expected inet:HOST:PORT\n", spec);
        exit(1);
      }
      memcpy(host, hp, (size_t)(colon - hp));
      host[colon - hp] = '\0';
      port = colon + 1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
      fprintf(stderr, PROG ": %s: %s\n", spec, gai_strerror(rc));
      exit(1);
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
      die("socket");
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
      die(spec);
    freeaddrinfo(res);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0 ||
        getnameinfo((struct sockaddr *)&ss, sslen, host, sizeof(host), serv,
                    sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
      die("getsockname");
    snprintf(shown, shown_size,
             ss.ss_family == AF_INET6 ? "inet:[%s]:%s" : "inet:%s:%s", host,
             serv);
  } else {
    fprintf(stderr, PROG ": %s: expected inet:HOST:PORT or unix:PATH\n", spec);
    exit(1);
  }
  if (listen(fd, SOMAXCONN) != 0)
    die("listen");
  return fd;
}

/* Watches for room to write while replies are left over, and stops
   reading from a client that is owed too many. In the usual case (every
   reply written at once) nothing changes and no system call is made. */
static void update_events(int ep, client *c) {
  uint32_t want =
      (c->owed < MAX_OWED ? EPOLLIN : 0) | (c->owed > 0 ? EPOLLOUT : 0);
  struct epoll_event ev;

  if (want == c->events)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.events = want;
  ev.data.ptr = c;
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
    die("epoll_ctl");
  c->events = want;
}

static void drop(int ep, client *c) {
  (void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c);
}

/* Writes the replies owed, as many at a time as fit in one buffer.
   Returns -1 when the client is gone. */
static int flush_replies(client *c) {
  static char many[64 * REPLY_LEN];
  static int filled;

  if (!filled) {
    for (size_t i = 0; i < 64; i++)
      memcpy(many + i * REPLY_LEN, REPLY, REPLY_LEN);
    filled = 1;
  }
  while (c->owed > 0) {
    uint64_t batch = c->owed < 64 ? c->owed : 64;
    size_t len = (size_t)batch * REPLY_LEN - c->owed_offset;
    ssize_t n = send(c->fd, many + c->owed_offset, len, MSG_NOSIGNAL);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    if (n <= 0)
      return -1;
    c->owed_offset += (size_t)n;
    c->owed -= c->owed_offset / REPLY_LEN;
    c->owed_offset %= REPLY_LEN;
  }
  return 0;
}

/* Counts the requests that end in data: a request ends at an empty line
   (nothing but an optional '\r' before its '\n') once it has had a line
   with text; empty lines before a request are skipped, as Postfix's own
   policy clients never send them. */
static void scan(client *c, const char *data, size_t len) {
  const char *p = data, *end = data + len;

  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop_at = nl ? nl : end;

    /* Any byte but '\r' before the newline makes the line non-empty. */
    for (const char *q = p; q < stop_at && !c->line_has_text; q++)
      if (*q != '\r')
        c->line_has_text = 1;
    if (nl == NULL)
      return;
    if (c->line_has_text)
      c->request_has_text = 1;
    else if (c->request_has_text) {
      c->owed++;
      c->request_has_text = 0;
    }
    c->line_has_text = 0;
    p = nl + 1;
  }
}

int main(int argc, char **argv) {
  struct epoll_event ev, events[64];
  char shown[300];
  static char buf[16384];
  int lfd, ep;
  struct sigaction sa;

  if (argc != 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: " PROG " inet:HOST:PORT|unix:PATH\n");
    return 1;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  lfd = listen_on(argv[1], shown, sizeof(shown));
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0)
    die("epoll_create1");
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.ptr = NULL; /* the listening socket */
  if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
    die("epoll_ctl");
  printf("listening on %s\n", shown);
  fflush(stdout);

  while (!stop) {
    int n = epoll_wait(ep, events, 64, -1);

    if (n < 0) {
      if (errno == EINTR)
        continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      client *c = events[i].data.ptr;

      if (c == NULL) {
        int fd;

        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
               0) {
          c = calloc(1, sizeof(*c));
          if (c == NULL) {
            close(fd);
            continue;
          }
          c->fd = fd;
          c->events = EPOLLIN;
          ev.events = EPOLLIN;
          ev.data.ptr = c;
          if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            die("epoll_ctl");
        }
        continue;
      }
      if ((events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
          (c->events & EPOLLIN)) {
        ssize_t got = read(c->fd, buf, sizeof(buf));
        uint64_t before = c->owed;

        if (got < 0 && (errno == EAGAIN || errno == EINTR))
          continue;
        if (got <= 0) {
          drop(ep, c);
          continue;
        }
        scan(c, buf, (size_t)got);
        answered += c->owed - before;
      }
      if (flush_replies(c) != 0) {
        drop(ep, c);
        continue;
      }
      update_events(ep, c);
    }
  }
  fprintf(stderr, PROG ": answered %" PRIu64 " requests\n", answered);
  if (strncmp(shown, "unix:", 5) == 0)
    (void)unlink(shown + 5);
  return 0;
}
