/* SPDX-License-Identifier: MIT */
/* bench_delay_proxy: a TCP proxy on 127.0.0.1 that holds every byte for a
   fixed time in each direction, to measure a client of Redis as if Redis
   were across a network (tests/bench/redis_compare.sh), where tc netem is
   not allowed.

     bench_delay_proxy [-d MICROSECONDS] UPSTREAM_HOST:PORT

   Listens on a port of 127.0.0.1 that the kernel chooses and prints
   "listening 127.0.0.1:PORT" once it accepts; each connection is relayed
   to UPSTREAM, each chunk read written on DELAY microseconds after it was
   read (default 500, so 1 ms is added to each round trip). Chunks are
   delayed, not the stream slowed: a pipeline of requests keeps its
   depth, as on a network whose latency is the delay. Runs until killed.

   Two threads per direction of each connection: one reads and stamps,
   one sleeps until a chunk is due and writes it. A benchmark opens a few
   connections, so threads are simpler than a timer wheel here. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct chunk {
  struct chunk *next;
  int64_t due_ns;
  size_t len;
  char data[];
} chunk;

/* One direction of one connection: from reads, to writes. */
typedef struct pipe_dir {
  int from, to;
  int64_t delay_ns;
  pthread_mutex_t lock;
  pthread_cond_t more;
  chunk *head, *tail;
  int eof; /* the reader saw the end (or an error): nothing more comes */
  struct relay *relay;
} pipe_dir;

/* A connection: two directions; its sockets are closed when all four
   threads are done with them. */
typedef struct relay {
  pipe_dir dir[2];
  int fds[2];
  int users;
  pthread_mutex_t lock;
} relay;

static int64_t now_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void relay_release(relay *r) {
  int last;

  pthread_mutex_lock(&r->lock);
  last = --r->users == 0;
  pthread_mutex_unlock(&r->lock);
  if (!last)
    return;
  close(r->fds[0]);
  close(r->fds[1]);
  free(r);
}

static void *reader(void *arg) {
  pipe_dir *p = arg;

  for (;;) {
    chunk *c = malloc(sizeof(*c) + 65536);
    ssize_t n;

    if (c == NULL)
      break;
    do
      n = read(p->from, c->data, 65536);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
      free(c);
      break;
    }
    c->len = (size_t)n;
    c->due_ns = now_ns() + p->delay_ns;
    c->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->tail != NULL)
      p->tail->next = c;
    else
      p->head = c;
    p->tail = c;
    pthread_cond_signal(&p->more);
    pthread_mutex_unlock(&p->lock);
  }
  pthread_mutex_lock(&p->lock);
  p->eof = 1;
  pthread_cond_signal(&p->more);
  pthread_mutex_unlock(&p->lock);
  relay_release(p->relay);
  return NULL;
}

static void *writer(void *arg) {
  pipe_dir *p = arg;
  int ok = 1;

  for (;;) {
    chunk *c;
    struct timespec due;
    size_t off = 0;

    pthread_mutex_lock(&p->lock);
    while (p->head == NULL && !p->eof)
      pthread_cond_wait(&p->more, &p->lock);
    c = p->head;
    if (c != NULL && (p->head = c->next) == NULL)
      p->tail = NULL;
    pthread_mutex_unlock(&p->lock);
    if (c == NULL)
      break; /* the end, everything before it written */
    due.tv_sec = (time_t)(c->due_ns / 1000000000);
    due.tv_nsec = (long)(c->due_ns % 1000000000);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR)
      ;
    while (ok && off < c->len) {
      ssize_t n = write(p->to, c->data + off, c->len - off);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        ok = 0;
      else
        off += (size_t)n;
    }
    free(c);
  }
  /* The other side learns of the end as it would without the proxy. */
  shutdown(p->to, SHUT_WR);
  relay_release(p->relay);
  return NULL;
}

static int connect_to(const char *host, const char *port) {
  struct addrinfo hints, *res, *ai;
  int fd = -1, one = 1;

  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, port, &hints, &res) != 0)
    return -1;
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0)
      continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd >= 0)
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

static int start(void *(*fn)(void *), void *arg) {
  pthread_t t;
  pthread_attr_t a;
  int rc;

  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&a, 256 * 1024);
  rc = pthread_create(&t, &a, fn, arg);
  pthread_attr_destroy(&a);
  return rc;
}

int main(int argc, char **argv) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  int64_t delay_us = 500;
  char host[256], *colon;
  const char *port;
  int lfd, opt;

  while ((opt = getopt(argc, argv, "d:")) != -1) {
    if (opt != 'd')
      goto usage;
    delay_us = strtoll(optarg, NULL, 10);
    if (delay_us < 0 || delay_us > 10000000)
      goto usage;
  }
  if (optind + 1 != argc || strlen(argv[optind]) >= sizeof(host))
    goto usage;
  strcpy(host, argv[optind]);
  if ((colon = strrchr(host, ':')) == NULL)
    goto usage;
  *colon = '\0';
  port = colon + 1;
  signal(SIGPIPE, SIG_IGN);

  lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(lfd, 128) != 0 ||
      getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
    perror("bench_delay_proxy: listen");
    return 1;
  }
  printf("listening 127.0.0.1:%u\n", (unsigned)ntohs(sa.sin_port));
  fflush(stdout);

  for (;;) {
    int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), ufd, one = 1, i;
    relay *r;

    if (cfd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      perror("bench_delay_proxy: accept");
      return 1;
    }
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if ((ufd = connect_to(host, port)) < 0 ||
        (r = calloc(1, sizeof(*r))) == NULL) {
      fprintf(stderr, "bench_delay_proxy: cannot reach %s:%s\n", host, port);
      if (ufd >= 0)
        close(ufd);
      close(cfd);
      continue;
    }
    r->fds[0] = cfd;
    r->fds[1] = ufd;
    r->users = 4;
    pthread_mutex_init(&r->lock, NULL);
    for (i = 0; i < 2; i++) {
      pipe_dir *p = &r->dir[i];

      p->from = r->fds[i];
      p->to = r->fds[1 - i];
      p->delay_ns = delay_us * 1000;
      p->relay = r;
      pthread_mutex_init(&p->lock, NULL);
      pthread_cond_init(&p->more, NULL);
    }
    /* Four threads or none: a relay half started would hang its client. */
    for (i = 0; i < 4; i++)
      if (start(i % 2 == 0 ? reader : writer, &r->dir[i / 2]) != 0) {
        fprintf(stderr, "bench_delay_proxy: cannot start a thread\n");
        return 1;
      }
  }

usage:
  fprintf(stderr, "usage: bench_delay_proxy [-d MICROSECONDS] HOST:PORT\n");
  return 2;
}
