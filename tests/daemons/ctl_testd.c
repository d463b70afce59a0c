/* SPDX-License-Identifier: MIT */
/* ctl_testd: a small daemon around obspamd_common for the tests of the
   control socket, the metrics endpoint, the notices and obspamctl (the
   real daemons are obspam-policyd and obspam-milter). It runs in the
   foreground, logs to stderr, and ends with SIGTERM or SIGINT; SIGHUP
   reloads the configuration.

     ctl_testd --config FILE --control unix:PATH [--state FILE]
               [--metrics inet:HOST:PORT] [--admin ADDR]
               [--notify-command CMD] [--notify-timeout S]
               [--mail-from ADDR] [--save-interval S] [--flush-interval S]
               [--housekeeping] [--feed FILE]

   --feed FILE replays lines before serving, and prints what they give on
   standard output:

     decide KEY=VALUE...   sasl= sender= client= recipients= uid= hint=
                           script= queue_id= flags=script,forward-local,
                           forward-remote,list  time=N|now|now-N|now+N
                           -> "verdict action=... kind=... object=...
                              limit=... count=... retry=... code=...
                              text=..." (text: the refusal text)
     flush TIME            obspamd_flush at that time (same forms)
     connection open|close, bad    metrics helpers
   and then "fed N lines now=T", T the time "now" stood for. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "metrics.h"
#include "refusal.h"
#include "service.h"
#include "util.h"

static void usage(void) {
  fprintf(stderr,
          "usage: ctl_testd --config FILE --control unix:PATH [--state FILE]"
          " [--metrics SPEC] [--admin ADDR] [--notify-command CMD]"
          " [--notify-timeout S] [--mail-from ADDR] [--save-interval S]"
          " [--flush-interval S] [--housekeeping] [--feed FILE]\n");
  exit(2);
}

static int64_t parse_when(const char *v, int64_t now) {
  if (strcmp(v, "now") == 0)
    return now;
  if (strncmp(v, "now-", 4) == 0)
    return now - strtoll(v + 4, NULL, 10);
  if (strncmp(v, "now+", 4) == 0)
    return now + strtoll(v + 4, NULL, 10);
  return strtoll(v, NULL, 10);
}

static double elapsed_us(const struct timespec *a) {
  struct timespec b;
  clock_gettime(CLOCK_MONOTONIC, &b);
  return (double)(b.tv_sec - a->tv_sec) * 1e6 +
         (double)(b.tv_nsec - a->tv_nsec) / 1e3;
}

static void decide(obspamd_service *s, char *args, int64_t now) {
  obspam_message m = OBSPAM_MESSAGE_INIT;
  obspam_verdict v = OBSPAM_VERDICT_INIT;
  static const char *const actions[] = {"accept", "refuse", "exempt",
                                        "unknown"};
  struct timespec t0;
  char text[600] = "", *word, *save = NULL, *queue_id = NULL;
  int rc, code = 0;

  for (word = strtok_r(args, " ", &save); word != NULL;
       word = strtok_r(NULL, " ", &save)) {
    char *v_ = strchr(word, '=');
    if (v_ == NULL)
      continue;
    *v_++ = '\0';
    if (strcmp(word, "sasl") == 0)
      m.sasl_username = v_;
    else if (strcmp(word, "sender") == 0)
      m.sender = v_;
    else if (strcmp(word, "client") == 0)
      m.client_address = v_;
    else if (strcmp(word, "recipients") == 0)
      m.recipients = (uint32_t)strtoul(v_, NULL, 10);
    else if (strcmp(word, "uid") == 0)
      m.uid = strtoll(v_, NULL, 10);
    else if (strcmp(word, "hint") == 0)
      m.domain_hint = v_;
    else if (strcmp(word, "script") == 0)
      m.script = v_;
    else if (strcmp(word, "time") == 0)
      m.time = parse_when(v_, now);
    else if (strcmp(word, "queue_id") == 0)
      queue_id = v_;
    else if (strcmp(word, "flags") == 0) {
      if (strstr(v_, "script"))
        m.flags |= OBSPAM_MSG_SCRIPT;
      if (strstr(v_, "forward-local"))
        m.flags |= OBSPAM_MSG_FORWARD_LOCAL;
      if (strstr(v_, "forward-remote"))
        m.flags |= OBSPAM_MSG_FORWARD_REMOTE;
      if (strstr(v_, "list"))
        m.flags |= OBSPAM_MSG_MAILING_LIST;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t0);
  rc = obspam_decide(s->engine, &m, &v);
  if (rc != OBSPAM_OK) {
    obspamd_metrics_bad_request(&s->metrics);
    printf("error %s\n", obspam_engine_errmsg(s->engine));
    return;
  }
  if (v.action == OBSPAM_REFUSE) {
    obspamd_refusal_text_msg(&v, &m, obspamd_reject(s), obspamd_unit(s), &code,
                             text, sizeof(text));
    obspamd_log_refusal(&v, &m, obspamd_unit(s), queue_id);
  }
  obspamd_metrics_decision(&s->metrics, &v, NULL, elapsed_us(&t0));
  printf("verdict action=%s kind=%s object=%s limit=%" PRId64 " count=%" PRId64
         " retry=%" PRId64 " code=%d text=%s\n",
         actions[v.action], v.kind >= 0 ? obspamd_kind_name(v.kind) : "-",
         v.object[0] ? v.object : "-", v.limit, v.count, v.retry_after, code,
         text);
}

static int feed(obspamd_service *s, const char *path) {
  FILE *f = fopen(path, "r");
  char line[4096];
  int64_t now = (int64_t)time(NULL);
  int n = 0;

  if (f == NULL) {
    fprintf(stderr, "ctl_testd: %s: %s\n", path, strerror(errno));
    return -1;
  }
  while (fgets(line, sizeof(line), f) != NULL) {
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '\0' || line[0] == '#')
      continue;
    n++;
    if (strncmp(line, "decide ", 7) == 0)
      decide(s, line + 7, now);
    else if (strncmp(line, "flush ", 6) == 0)
      obspamd_flush(s, parse_when(line + 6, now));
    else if (strcmp(line, "connection open") == 0)
      obspamd_metrics_connection_open(&s->metrics);
    else if (strcmp(line, "connection close") == 0)
      obspamd_metrics_connection_close(&s->metrics);
    else if (strcmp(line, "bad") == 0)
      obspamd_metrics_bad_request(&s->metrics);
    else
      fprintf(stderr, "ctl_testd: %s: unknown line '%s'\n", path, line);
  }
  fclose(f);
  printf("fed %d lines now=%" PRId64 "\n", n, now);
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  obspamd_service s;
  const char *control = NULL, *metrics = NULL, *feed_path = NULL;
  int housekeeping = 0, i, sig, status = 0;
  sigset_t set;

  memset(&s, 0, sizeof(s));
  s.name = "ctl_testd";
  for (i = 1; i < argc; i++) {
    const char *o = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(o, "--housekeeping") == 0) {
      housekeeping = 1;
      continue;
    }
    if (v == NULL)
      usage();
    i++;
    if (strcmp(o, "--config") == 0)
      s.config_path = v;
    else if (strcmp(o, "--state") == 0)
      s.state_path = v;
    else if (strcmp(o, "--control") == 0)
      control = v;
    else if (strcmp(o, "--metrics") == 0)
      metrics = v;
    else if (strcmp(o, "--admin") == 0)
      s.admin = v;
    else if (strcmp(o, "--notify-command") == 0)
      s.notify_command = v;
    else if (strcmp(o, "--notify-timeout") == 0)
      s.notify_timeout = atoi(v);
    else if (strcmp(o, "--mail-from") == 0)
      s.mail_from = v;
    else if (strcmp(o, "--save-interval") == 0)
      s.save_interval = atoi(v);
    else if (strcmp(o, "--flush-interval") == 0)
      s.flush_interval = atoi(v);
    else if (strcmp(o, "--feed") == 0)
      feed_path = v;
    else
      usage();
  }
  if (s.config_path == NULL || control == NULL)
    usage();
  setvbuf(stdout, NULL, _IOLBF, 0);
  obspamd_log_open("ctl_testd", 1);

  /* The signals are taken by sigtimedwait below, on this thread only. */
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  if (obspamd_service_start(&s) != OBSPAM_OK)
    return 1;
  if (feed_path != NULL && feed(&s, feed_path) != 0) {
    obspamd_service_stop(&s);
    return 1;
  }
  if (obspamd_control_start(&s, control) != 0) {
    obspamd_service_stop(&s);
    return 1;
  }
  if (metrics != NULL && obspamd_metrics_start(&s, metrics) != 0) {
    obspamd_control_stop();
    obspamd_service_stop(&s);
    return 1;
  }
  if (housekeeping && obspamd_housekeeping_start(&s) != 0)
    status = 1;
  obspamd_log(LOG_INFO, "ready");

  while (status == 0) {
    struct timespec one = {1, 0};
    sig = sigtimedwait(&set, NULL, &one);
    if (sig == SIGHUP) {
      obspamd_reload(&s, NULL, 0);
    } else if (sig == SIGTERM || sig == SIGINT) {
      break;
    } else if (sig < 0 && !housekeeping) {
      obspamd_tick(&s, 0);
    }
  }
  obspamd_metrics_stop();
  obspamd_control_stop();
  obspamd_service_stop(&s);
  obspamd_log(LOG_INFO, "stopped");
  return status;
}
