/* SPDX-License-Identifier: MIT */
/* The Prometheus text exposition (format 0.0.4) of a service's metrics,
   and the HTTP/1.0 endpoint that serves it at GET /metrics.

   Names (see the HELP lines below):
     obspam_decisions_total{action="accept|refuse|exempt|unknown"}  counter
     obspam_refusals_total{level="subscription|domain|mailbox"}     counter
     obspam_refusal_windows_total{window="minute|hour|day|max-recipients|scripts"}
                                                                     counter
     obspam_forward_decisions_total{kind="local|remote",action="..."} counter
     obspam_list_deliveries_total{action="accept|refuse|exempt|unknown"}
                                                                     counter
     obspam_connections_open                                         gauge
     obspam_connections_total, obspam_requests_bad_total             counter
     obspam_request_duration_seconds                                 histogram
     with an event loop (obspam-policyd) only:
     obspam_loop_round_seconds, obspam_request_wait_seconds          histogram
     obspam_loop_round_max_seconds, obspam_request_wait_max_seconds  gauge
                                    the longest since the start
     obspam_config_reloads_total{result="ok|failed"}                 counter
     obspam_snapshot_saves_total{result="ok|failed"}                 counter
     obspam_snapshot_last_success_timestamp_seconds
                                    gauge; Unix time of the last state
                                    file written (or loaded), 0 if none
     with a state file only:
     obspam_journal_writable                                         gauge
     obspam_journal_write_failures_total                             counter
     obspam_journal_failure_episodes_total                           counter
     obspam_journal_dropped_decisions_total                          counter
     obspam_notices_total                                            counter
     obspam_notify_mails_total{result="sent|failed|dropped"}         counter
     obspam_build_info{daemon="...",version="..."} 1                 gauge
     obspam_implicit_mailboxes                                       gauge
     obspam_implicit_overflow_total                                  counter
     obspam_implicit_overflow_episodes_total                         counter
     with a shared store (Redis) only:
     obspam_store_up                                                 gauge
     obspam_store_fallback_episodes_total                            counter
     obspam_store_fallback_decisions_total                           counter

   The endpoint is one thread with a poll loop: at most 16 clients at
   once, a request of at most 4096 bytes up to the blank line that ends
   its headers, 5 seconds to send it and read the answer; the connection
   is closed after the answer. A new connection while all 16 are taken
   replaces the oldest one that has not sent a whole request yet, and a
   request that came with its connection is answered at once: a client
   that opens hundreds of connections and sends nothing cannot keep a
   scraper out. GET
   /metrics answers 200, another path 404, another method 405, a request
   that cannot be parsed or is too long 400. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "metrics.h"
#include "service.h"
#include "sockets.h"
#include "util.h"

/* ---- the exposition ------------------------------------------------------ */

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

static void family(obspamd__text *o, const char *name, const char *type,
                   const char *help) {
  obspamd__put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family of one sample without labels: the library's own figures and
   the daemon's gauges. */
static void single(obspamd__text *o, const char *name, const char *type,
                   const char *help, int64_t value) {
  family(o, name, type, help);
  obspamd__put(o, "%s %" PRId64 "\n", name, value);
}

/* A counter of the daemon's, one sample without labels. */
static void counter(obspamd__text *o, const char *name, const char *help,
                    uint64_t value) {
  family(o, name, "counter", help);
  obspamd__put(o, "%s %" PRIu64 "\n", name, value);
}

/* A counter family labelled by result: one sample for each of the
   results (up to their NULL), with the value at the same place. */
static void by_result(obspamd__text *o, const char *name, const char *help,
                      const char *const *results, const uint64_t *values) {
  int i;

  family(o, name, "counter", help);
  for (i = 0; results[i] != NULL; i++)
    obspamd__put(o, "%s{result=\"%s\"} %" PRIu64 "\n", name, results[i],
                 values[i]);
}

/* A histogram bound in seconds, written without trailing zeros: 1e-05 s
   is "0.00001", 1 s is "1". */
static void bound_text(double us, char *buf, size_t size) {
  size_t len;

  snprintf(buf, size, "%.6f", us / 1e6);
  len = strlen(buf);
  while (len > 0 && buf[len - 1] == '0')
    buf[--len] = '\0';
  if (len > 0 && buf[len - 1] == '.')
    buf[--len] = '\0';
}

/* A time in seconds from microseconds, without rounding. */
static void seconds(obspamd__text *o, uint64_t us) {
  obspamd__put(o, "%" PRIu64 ".%06" PRIu64 "\n", us / 1000000, us % 1000000);
}

/* A histogram of times: counts[i] observations up to bounds[i]
   microseconds, counts[n] above the last bound. */
static void histogram(obspamd__text *o, const char *name, const char *help,
                      const double *bounds, int n, const uint64_t *counts,
                      uint64_t sum_us) {
  uint64_t cumulative = 0;
  char le[32];
  int i;

  family(o, name, "histogram", help);
  for (i = 0; i < n; i++) {
    cumulative += LOAD(&counts[i]);
    bound_text(bounds[i], le, sizeof(le));
    obspamd__put(o, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, le, cumulative);
  }
  cumulative += LOAD(&counts[n]);
  obspamd__put(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
  obspamd__put(o, "%s_sum ", name);
  seconds(o, sum_us);
  /* The count is the +Inf bucket, read once, so that the two always
     agree even while observations are counted. */
  obspamd__put(o, "%s_count %" PRIu64 "\n", name, cumulative);
}

/* The loop's times named PREFIX: the histogram PREFIX_seconds and the
   gauge PREFIX_max_seconds, the longest since the start. The maximum is
   read first (acquired: its bucket is counted too), so that the
   highest bucket counted never lies below it, even while observations
   are counted. */
static void timing(obspamd__text *o, const char *prefix, const char *help,
                   const obspamd_timing *t) {
  uint64_t max_us = __atomic_load_n(&t->max_us, __ATOMIC_ACQUIRE);
  char name[64], max_help[160];

  snprintf(name, sizeof(name), "%s_seconds", prefix);
  histogram(o, name, help, obspamd_loop_bounds_us, OBSPAMD_LOOP_BUCKETS,
            t->bucket, LOAD(&t->sum_us));
  snprintf(name, sizeof(name), "%s_max_seconds", prefix);
  snprintf(max_help, sizeof(max_help),
           "The longest of %s_seconds since the "
           "start.",
           prefix);
  family(o, name, "gauge", max_help);
  obspamd__put(o, "%s ", name);
  seconds(o, max_us);
}

/* A label value: backslash, double quote and newline escaped. */
static void label_value(const char *in, char *buf, size_t size) {
  size_t j = 0;

  for (; in != NULL && *in != '\0' && j + 3 < size; in++) {
    if (*in == '\\' || *in == '"') {
      buf[j++] = '\\';
      buf[j++] = *in;
    } else if (*in == '\n') {
      buf[j++] = '\\';
      buf[j++] = 'n';
    } else {
      buf[j++] = *in;
    }
  }
  buf[j] = '\0';
}

size_t obspamd_metrics_format(obspamd_service *s, char *buf, size_t size) {
  static const char *const actions[] = {"accept", "refuse", "exempt",
                                        "unknown"};
  static const int levels[] = {OBSPAM_SUBSCRIPTION, OBSPAM_DOMAIN,
                               OBSPAM_MAILBOX};
  static const char *const ok_failed[] = {"ok", "failed", NULL};
  obspamd_metrics *m = &s->metrics;
  obspamd__text o = {buf, size, 0};
  int64_t shared = 0, up = 0, episodes = 0, fallbacks = 0;
  int64_t implicit = 0, overflow = 0, overflow_episodes = 0;
  char daemon[160];
  int i, j;

  if (size > 0)
    buf[0] = '\0';
  family(&o, "obspam_decisions_total", "counter",
         "Messages decided, by verdict.");
  for (i = 0; i < 4; i++)
    obspamd__put(&o, "obspam_decisions_total{action=\"%s\"} %" PRIu64 "\n",
                 actions[i], LOAD(&m->decisions[i]));
  family(&o, "obspam_refusals_total", "counter",
         "Messages refused, by the level of the object that refused them.");
  for (i = 0; i < 3; i++)
    obspamd__put(&o, "obspam_refusals_total{level=\"%s\"} %" PRIu64 "\n",
                 obspamd_kind_name(levels[i]), LOAD(&m->refusals[levels[i]]));
  /* A family of its own, so that the series of obspam_refusals_total
     stay as they were. */
  family(&o, "obspam_refusal_windows_total", "counter",
         "Messages refused, by the window named (or the recipients cap, or "
         "scripts forbidden).");
  for (i = 0; i < OBSPAMD_REASONS; i++)
    obspamd__put(&o,
                 "obspam_refusal_windows_total{window=\"%s\"} %" PRIu64 "\n",
                 obspamd_reason_name(i), LOAD(&m->reasons[i]));
  /* Forwards are decided apart from the message that makes them, and
     are not in obspam_decisions_total; a list delivery is one of its
     decisions too. */
  family(&o, "obspam_forward_decisions_total", "counter",
         "Forwards decided (one per forwarding recipient), by kind and "
         "verdict.");
  for (j = 0; j < 2; j++)
    for (i = 0; i < 4; i++)
      obspamd__put(&o,
                   "obspam_forward_decisions_total{kind=\"%s\",action=\"%s\"} "
                   "%" PRIu64 "\n",
                   j ? "remote" : "local", actions[i],
                   LOAD(&m->forwards[j][i]));
  family(&o, "obspam_list_deliveries_total", "counter",
         "Mailing-list deliveries decided, by verdict.");
  for (i = 0; i < 4; i++)
    obspamd__put(&o,
                 "obspam_list_deliveries_total{action=\"%s\"} %" PRIu64 "\n",
                 actions[i], LOAD(&m->lists[i]));
  single(&o, "obspam_connections_open", "gauge",
         "Policy or SMTP connections open now.", LOAD(&m->connections_open));
  counter(&o, "obspam_connections_total",
          "Policy or SMTP connections accepted.", LOAD(&m->connections_total));
  counter(&o, "obspam_requests_bad_total", "Malformed or over-long requests.",
          LOAD(&m->requests_bad));

  histogram(&o, "obspam_request_duration_seconds",
            "Time from reading a request to answering it.",
            obspamd_latency_bounds_us, OBSPAMD_LATENCY_BUCKETS, m->latency,
            LOAD(&m->latency_sum_us));
  if (m->loop) {
    timing(&o, "obspam_loop_round",
           "Time one round of the event loop worked, from epoll_wait "
           "returning to the next call.",
           &m->rounds);
    timing(&o, "obspam_request_wait",
           "Time a request waited in the server, from the read that "
           "completed it to the write of its answer.",
           &m->waits);
  }
  {
    const uint64_t reloads[] = {LOAD(&m->reloads_ok), LOAD(&m->reloads_failed)},
                   saves[] = {LOAD(&m->saves_ok), LOAD(&m->saves_failed)};

    by_result(&o, "obspam_config_reloads_total",
              "Configuration reloads, by result.", ok_failed, reloads);
    by_result(&o, "obspam_snapshot_saves_total", "State file saves, by result.",
              ok_failed, saves);
  }
  /* A time rather than an age, as Prometheus's own exporters do: the
     age is time() minus it in a query, and 0 (the epoch) for "never"
     makes any alert on the age fire at once. */
  single(&o, "obspam_snapshot_last_success_timestamp_seconds", "gauge",
         "Unix time the state file was last written, 0 if never.",
         LOAD(&m->last_save));
  if (s->state_path != NULL && *s->state_path != '\0') {
    single(&o, "obspam_journal_writable", "gauge",
           "1 while the journal of the state file takes writes, 0 while "
           "they fail (the decisions wait in memory).",
           LOAD(&m->journal_failing) == 0);
    counter(&o, "obspam_journal_write_failures_total",
            "Journal writes that failed, one per round of decisions.",
            LOAD(&m->journal_failures));
    counter(&o, "obspam_journal_failure_episodes_total",
            "Times the journal stopped taking writes.",
            LOAD(&m->journal_episodes));
    counter(&o, "obspam_journal_dropped_decisions_total",
            "Decisions the journal could not hold while it failed: until "
            "the next save, no file has them.",
            LOAD(&m->journal_dropped));
  }
  counter(&o, "obspam_notices_total",
          "Notices: objects refused in a notification period.",
          LOAD(&m->notices));
  {
    static const char *const mail_results[] = {"sent", "failed", "dropped",
                                               NULL};
    const uint64_t mails[] = {LOAD(&m->mails_sent), LOAD(&m->mails_failed),
                              LOAD(&m->mails_dropped)};

    by_result(&o, "obspam_notify_mails_total",
              "Notice mails, by result: sent, failed (the command failed), "
              "dropped (not tried).",
              mail_results, mails);
  }
  if (obspam_store_status(s->engine, &shared, &up, &episodes, &fallbacks) ==
          OBSPAM_OK &&
      shared) {
    single(&o, "obspam_store_up", "gauge",
           "1 while the shared counter store answers.", up);
    single(&o, "obspam_store_fallback_episodes_total", "counter",
           "Times the shared store stopped answering.", episodes);
    single(&o, "obspam_store_fallback_decisions_total", "counter",
           "Decisions made without the shared store.", fallbacks);
  }
  if (obspam_implicit_status(s->engine, &implicit, &overflow,
                             &overflow_episodes) == OBSPAM_OK) {
    single(&o, "obspam_implicit_mailboxes", "gauge",
           "Undeclared mailboxes of hosted domains tracked now.", implicit);
    single(&o, "obspam_implicit_overflow_total", "counter",
           "Decisions that found the implicit-mailboxes cap reached.",
           overflow);
    single(&o, "obspam_implicit_overflow_episodes_total", "counter",
           "Times the implicit-mailboxes cap was reached.", overflow_episodes);
  }
  family(&o, "obspam_build_info", "gauge",
         "The daemon and the version of libobspam it runs.");
  label_value(s->name ? s->name : "obspamd", daemon, sizeof(daemon));
  obspamd__put(&o, "obspam_build_info{daemon=\"%s\",version=\"%s\"} 1\n",
               daemon, obspam_version_string());
  if (size > 0 && o.len >= size)
    buf[size - 1] = '\0';
  return o.len;
}

/* ---- the endpoint -------------------------------------------------------- */

#define MAX_CLIENTS 16
#define REQUEST_MAX 4096
#define CLIENT_TIMEOUT_MS 5000

typedef struct client {
  int fd; /* -1: a free slot */
  char req[REQUEST_MAX + 1];
  size_t len;
  char *resp; /* NULL while reading */
  size_t resp_len, resp_off;
  int64_t deadline;
} client;

static struct {
  obspamd_service *s;
  int fd, wake[2];
  pthread_t thread;
  int running;
  client c[MAX_CLIENTS];
} ep = {.fd = -1, .wake = {-1, -1}};

static char *response(const char *status, const char *extra, const char *type,
                      const char *body, size_t body_len, size_t *len) {
  size_t head_max = 256 + strlen(extra);
  char *r = malloc(head_max + body_len);
  int n;

  if (r == NULL)
    return NULL;
  n = snprintf(r, head_max,
               "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "%sConnection: close\r\n\r\n",
               status, type, body_len, extra);
  memcpy(r + n, body, body_len);
  *len = (size_t)n + body_len;
  return r;
}

static char *error_response(const char *status, const char *extra,
                            size_t *len) {
  char body[128];
  int n = snprintf(body, sizeof(body), "%s\n", status);
  return response(status, extra, "text/plain; charset=utf-8", body, (size_t)n,
                  len);
}

static char *metrics_response(size_t *len) {
  size_t need = obspamd_metrics_format(ep.s, NULL, 0) + 512, got;
  char *body = malloc(need), *r;

  if (body == NULL)
    return NULL;
  got = obspamd_metrics_format(ep.s, body, need);
  if (got >= need)
    got = need - 1;
  r = response("200 OK", "", "text/plain; version=0.0.4; charset=utf-8", body,
               got, len);
  free(body);
  return r;
}

/* Answers a request whose headers have all arrived (or that is too long
   to be one). */
static void answer(client *c, int complete) {
  char *sp1, *sp2, *eol;
  size_t mlen;

  c->req[c->len] = '\0';
  eol = strpbrk(c->req, "\r\n");
  sp1 = strchr(c->req, ' ');
  sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  if (!complete || eol == NULL || sp1 == NULL || sp1 > eol || sp2 == NULL ||
      sp2 > eol || strncmp(sp2 + 1, "HTTP/", 5) != 0) {
    /* Not counted in obspam_requests_bad_total, which is about the
       daemon's mail traffic, not about its scrapers. */
    c->resp = error_response("400 Bad Request", "", &c->resp_len);
    return;
  }
  mlen = (size_t)(sp1 - c->req);
  if (mlen != 3 || memcmp(c->req, "GET", 3) != 0) {
    c->resp = error_response("405 Method Not Allowed", "Allow: GET\r\n",
                             &c->resp_len);
    return;
  }
  *sp2 = '\0';
  if (strcmp(sp1 + 1, "/metrics") == 0 || strncmp(sp1 + 1, "/metrics?", 9) == 0)
    c->resp = metrics_response(&c->resp_len);
  else
    c->resp = error_response("404 Not Found", "", &c->resp_len);
}

static void drop(client *c) {
  /* Unread input at close makes the kernel send a reset, which can cost
     the client its answer (a request that was too long): what is already
     there is read and dropped first. */
  if (c->resp != NULL && c->resp_off == c->resp_len) {
    char buf[4096];
    int i;
    shutdown(c->fd, SHUT_WR);
    for (i = 0; i < 16; i++)
      if (recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
        break;
  }
  close(c->fd);
  free(c->resp);
  c->fd = -1;
  c->resp = NULL;
}

static void on_readable(client *c) {
  ssize_t n = recv(c->fd, c->req + c->len, REQUEST_MAX - c->len, 0);

  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    drop(c);
    return;
  }
  if (n < 0)
    return;
  c->len += (size_t)n;
  c->req[c->len] = '\0';
  if (strstr(c->req, "\r\n\r\n") != NULL || strstr(c->req, "\n\n") != NULL)
    answer(c, 1);
  else if (c->len == REQUEST_MAX)
    answer(c, 0);
  else
    return;
  if (c->resp == NULL) /* out of memory: the client sees the close */
    drop(c);
}

static void on_writable(client *c) {
  ssize_t n = send(c->fd, c->resp + c->resp_off, c->resp_len - c->resp_off,
                   MSG_NOSIGNAL | MSG_DONTWAIT);

  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    drop(c);
    return;
  }
  c->resp_off += (size_t)n;
  if (c->resp_off == c->resp_len)
    drop(c);
}

/* The slot for a new connection: a free one, else the one of the oldest
   client still sending its request (it is dropped); -1 when every client
   is being answered. */
static int slot_for_new(void) {
  int k, oldest = -1;

  for (k = 0; k < MAX_CLIENTS; k++) {
    if (ep.c[k].fd < 0)
      return k;
    if (ep.c[k].resp == NULL &&
        (oldest < 0 || ep.c[k].deadline < ep.c[oldest].deadline))
      oldest = k;
  }
  if (oldest >= 0)
    drop(&ep.c[oldest]);
  return oldest;
}

static void *endpoint(void *arg) {
  struct pollfd p[MAX_CLIENTS + 2];
  int slot_of[MAX_CLIENTS + 2];
  int64_t pause_until = 0;
  (void)arg;

  for (;;) {
    int n = 0, i, free_slots = 0, reading = 0, timeout = -1, rc;
    int64_t now = obspamd_now_ms();

    p[n].fd = ep.wake[0];
    p[n].events = POLLIN;
    slot_of[n++] = -1;
    for (i = 0; i < MAX_CLIENTS; i++) {
      client *c = &ep.c[i];
      int64_t left;
      if (c->fd < 0) {
        free_slots++;
        continue;
      }
      if (now >= c->deadline) {
        /* A slow or silent client loses its connection, nothing more. */
        drop(c);
        free_slots++;
        continue;
      }
      left = c->deadline - now;
      if (timeout < 0 || left < timeout)
        timeout = (int)left;
      p[n].fd = c->fd;
      p[n].events = c->resp ? POLLOUT : POLLIN;
      slot_of[n++] = i;
      reading += c->resp == NULL;
    }
    if ((free_slots > 0 || reading > 0) && now >= pause_until) {
      p[n].fd = ep.fd;
      p[n].events = POLLIN;
      slot_of[n++] = -2;
    } else if (free_slots > 0 || reading > 0) {
      int left = (int)(pause_until - now);
      if (timeout < 0 || left < timeout)
        timeout = left;
    }
    rc = poll(p, (nfds_t)n, timeout);
    if (rc < 0 && errno != EINTR) {
      obspamd_log(LOG_ERR, "metrics: poll: %s", strerror(errno));
      break;
    }
    if (rc <= 0)
      continue;
    if (p[0].revents)
      break;
    for (i = 1; i < n; i++) {
      client *c;
      if (!p[i].revents)
        continue;
      if (slot_of[i] == -2) {
        int round;
        /* A bounded batch: the clients already in get their turn. */
        for (round = 0; round < MAX_CLIENTS; round++) {
          int fd, k;
          client *nc;
          fd = accept4(ep.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
                errno == ENOBUFS) {
              /* Out of descriptors: try again in a second rather than spin
                 on a listen socket that stays readable. */
              obspamd_log(LOG_WARNING, "metrics: accept: %s", strerror(errno));
              pause_until = obspamd_now_ms() + 1000;
            }
            break;
          }
          k = slot_for_new();
          if (k < 0) {
            close(fd);
            break;
          }
          nc = &ep.c[k];
          nc->fd = fd;
          nc->len = 0;
          nc->resp = NULL;
          nc->resp_len = nc->resp_off = 0;
          nc->deadline = obspamd_now_ms() + CLIENT_TIMEOUT_MS;
          /* A scraper sends its request with the connection: it is
             answered now, before other connections can push it out. */
          on_readable(nc);
          if (nc->fd >= 0 && nc->resp != NULL)
            on_writable(nc);
        }
        continue;
      }
      c = &ep.c[slot_of[i]];
      if (c->fd < 0)
        continue;
      if (c->resp == NULL)
        on_readable(c);
      else
        on_writable(c);
      /* An answer just made is sent at once: most fit the socket's
         buffer, and the client is waiting for it. */
      if (c->fd >= 0 && c->resp != NULL && c->resp_off == 0)
        on_writable(c);
    }
  }
  return NULL;
}

int obspamd_metrics_start(obspamd_service *s, const char *spec) {
  char err[512], name[300];
  int i, rc;

  if (ep.running) {
    obspamd_log(LOG_ERR, "metrics: the endpoint is already running");
    return -1;
  }
  ep.fd = obspamd_listen(spec, -1, err, sizeof(err));
  if (ep.fd < 0) {
    obspamd_log(LOG_ERR, "metrics: %s", err);
    return -1;
  }
  if (pipe2(ep.wake, O_CLOEXEC) != 0) {
    obspamd_log(LOG_ERR, "metrics: pipe: %s", strerror(errno));
    close(ep.fd);
    ep.fd = -1;
    return -1;
  }
  ep.s = s;
  for (i = 0; i < MAX_CLIENTS; i++) {
    ep.c[i].fd = -1;
    ep.c[i].resp = NULL;
  }
  rc = obspamd__thread_create(&ep.thread, endpoint, NULL);
  if (rc != 0) {
    obspamd_log(LOG_ERR, "metrics: cannot start the thread: %s", strerror(rc));
    obspamd__close_fds(&ep.fd, ep.wake);
    return -1;
  }
  ep.running = 1;
  if (obspamd_socket_name(ep.fd, name, sizeof(name)) != 0)
    snprintf(name, sizeof(name), "%s", spec);
  obspamd_log(LOG_INFO, "metrics listening on %s", name);
  return 0;
}

void obspamd_metrics_stop(void) {
  obspamd_spec sp;
  int i;

  if (!ep.running)
    return;
  obspamd__thread_stop(ep.thread, ep.wake);
  for (i = 0; i < MAX_CLIENTS; i++)
    if (ep.c[i].fd >= 0)
      drop(&ep.c[i]);
  /* A metrics endpoint on a Unix socket leaves no file behind. */
  {
    char name[300];
    if (obspamd_socket_name(ep.fd, name, sizeof(name)) == 0 &&
        obspamd_spec_parse(name, &sp, NULL, 0) == 0 && sp.family == AF_UNIX)
      unlink(sp.path);
  }
  obspamd__close_fds(&ep.fd, ep.wake);
  ep.running = 0;
}
