/* SPDX-License-Identifier: MIT */
/* The metrics counters and their Prometheus text exposition. */
#include <pthread.h>

#include "common_test.h"
#include "metrics.h"
#include "service.h"

static char *format(obspamd_service *s) {
  size_t need = obspamd_metrics_format(s, NULL, 0);
  char *buf = malloc(need + 1);

  cr_assert_not_null(buf);
  cr_assert_eq(obspamd_metrics_format(s, buf, need + 1), need);
  cr_assert_eq(strlen(buf), need);
  return buf;
}

/* Whether text holds this whole line. */
static int has_line(const char *text, const char *line) {
  size_t n = strlen(line);
  const char *p = text;

  while ((p = strstr(p, line)) != NULL) {
    if ((p == text || p[-1] == '\n') && p[n] == '\n')
      return 1;
    p++;
  }
  return 0;
}

Test(metrics, exposition_of_a_new_service) {
  obspamd_service s;
  char expected[8192];
  char *text;

  memset(&s, 0, sizeof(s));
  s.name = "obspam-policyd";
  snprintf(
      expected, sizeof(expected),
      "# HELP obspam_decisions_total Messages decided, by verdict.\n"
      "# TYPE obspam_decisions_total counter\n"
      "obspam_decisions_total{action=\"accept\"} 0\n"
      "obspam_decisions_total{action=\"refuse\"} 0\n"
      "obspam_decisions_total{action=\"exempt\"} 0\n"
      "obspam_decisions_total{action=\"unknown\"} 0\n"
      "# HELP obspam_refusals_total Messages refused, by the level of the "
      "object that refused them.\n"
      "# TYPE obspam_refusals_total counter\n"
      "obspam_refusals_total{level=\"subscription\"} 0\n"
      "obspam_refusals_total{level=\"domain\"} 0\n"
      "obspam_refusals_total{level=\"mailbox\"} 0\n"
      "# HELP obspam_refusal_windows_total Messages refused, by the window "
      "named (or the recipients cap, or scripts forbidden).\n"
      "# TYPE obspam_refusal_windows_total counter\n"
      "obspam_refusal_windows_total{window=\"minute\"} 0\n"
      "obspam_refusal_windows_total{window=\"hour\"} 0\n"
      "obspam_refusal_windows_total{window=\"day\"} 0\n"
      "obspam_refusal_windows_total{window=\"max-recipients\"} 0\n"
      "obspam_refusal_windows_total{window=\"scripts\"} 0\n"
      "# HELP obspam_forward_decisions_total Forwards decided (one per "
      "forwarding recipient), by kind and verdict.\n"
      "# TYPE obspam_forward_decisions_total counter\n"
      "obspam_forward_decisions_total{kind=\"local\",action=\"accept\"} 0\n"
      "obspam_forward_decisions_total{kind=\"local\",action=\"refuse\"} 0\n"
      "obspam_forward_decisions_total{kind=\"local\",action=\"exempt\"} 0\n"
      "obspam_forward_decisions_total{kind=\"local\",action=\"unknown\"} 0\n"
      "obspam_forward_decisions_total{kind=\"remote\",action=\"accept\"} 0\n"
      "obspam_forward_decisions_total{kind=\"remote\",action=\"refuse\"} 0\n"
      "obspam_forward_decisions_total{kind=\"remote\",action=\"exempt\"} 0\n"
      "obspam_forward_decisions_total{kind=\"remote\",action=\"unknown\"} 0\n"
      "# HELP obspam_list_deliveries_total Mailing-list deliveries decided, "
      "by verdict.\n"
      "# TYPE obspam_list_deliveries_total counter\n"
      "obspam_list_deliveries_total{action=\"accept\"} 0\n"
      "obspam_list_deliveries_total{action=\"refuse\"} 0\n"
      "obspam_list_deliveries_total{action=\"exempt\"} 0\n"
      "obspam_list_deliveries_total{action=\"unknown\"} 0\n"
      "# HELP obspam_connections_open Policy or SMTP connections open now.\n"
      "# TYPE obspam_connections_open gauge\n"
      "obspam_connections_open 0\n"
      "# HELP obspam_connections_total Policy or SMTP connections "
      "accepted.\n"
      "# TYPE obspam_connections_total counter\n"
      "obspam_connections_total 0\n"
      "# HELP obspam_requests_bad_total Malformed or over-long requests.\n"
      "# TYPE obspam_requests_bad_total counter\n"
      "obspam_requests_bad_total 0\n"
      "# HELP obspam_request_duration_seconds Time from reading a request to "
      "answering it.\n"
      "# TYPE obspam_request_duration_seconds histogram\n"
      "obspam_request_duration_seconds_bucket{le=\"0.00001\"} 0\n"
      "obspam_request_duration_seconds_bucket{le=\"0.000025\"} 0\n"
      "obspam_request_duration_seconds_bucket{le=\"0.00005\"} 0\n"
      "obspam_request_duration_seconds_bucket{le=\"0.0001\"} 0\n"
      "obspam_request_duration_seconds_bucket{le=\"0.00025\"} 0\n"
      "obspam_request_duration_seconds_bucket{le=\"0.0005\"} 0\n"
      "obspam_request_duration_seconds_bucket{le=\"0.001\"} 0\n"
      "obspam_request_duration_seconds_bucket{le=\"0.0025\"} 0\n"
      "obspam_request_duration_seconds_bucket{le=\"0.01\"} 0\n"
      "obspam_request_duration_seconds_bucket{le=\"0.05\"} 0\n"
      "obspam_request_duration_seconds_bucket{le=\"0.25\"} 0\n"
      "obspam_request_duration_seconds_bucket{le=\"1\"} 0\n"
      "obspam_request_duration_seconds_bucket{le=\"+Inf\"} 0\n"
      "obspam_request_duration_seconds_sum 0.000000\n"
      "obspam_request_duration_seconds_count 0\n"
      "# HELP obspam_config_reloads_total Configuration reloads, by "
      "result.\n"
      "# TYPE obspam_config_reloads_total counter\n"
      "obspam_config_reloads_total{result=\"ok\"} 0\n"
      "obspam_config_reloads_total{result=\"failed\"} 0\n"
      "# HELP obspam_snapshot_saves_total State file saves, by result.\n"
      "# TYPE obspam_snapshot_saves_total counter\n"
      "obspam_snapshot_saves_total{result=\"ok\"} 0\n"
      "obspam_snapshot_saves_total{result=\"failed\"} 0\n"
      "# HELP obspam_snapshot_last_success_timestamp_seconds Unix time the "
      "state file was last written, 0 if never.\n"
      "# TYPE obspam_snapshot_last_success_timestamp_seconds gauge\n"
      "obspam_snapshot_last_success_timestamp_seconds 0\n"
      "# HELP obspam_notices_total Notices: objects refused in a "
      "notification period.\n"
      "# TYPE obspam_notices_total counter\n"
      "obspam_notices_total 0\n"
      "# HELP obspam_notify_mails_total Notice mails, by result: sent, "
      "failed (the command failed), dropped (not tried).\n"
      "# TYPE obspam_notify_mails_total counter\n"
      "obspam_notify_mails_total{result=\"sent\"} 0\n"
      "obspam_notify_mails_total{result=\"failed\"} 0\n"
      "obspam_notify_mails_total{result=\"dropped\"} 0\n"
      "# HELP obspam_build_info The daemon and the version of libobspam it "
      "runs.\n"
      "# TYPE obspam_build_info gauge\n"
      "obspam_build_info{daemon=\"obspam-policyd\",version=\"%s\"} 1\n",
      obspam_version_string());
  text = format(&s);
  cr_assert_str_eq(text, expected);
  free(text);
}

static void count(obspamd_service *s, int action, int kind, double us) {
  obspam_verdict v = OBSPAM_VERDICT_INIT;

  v.action = action;
  v.kind = kind;
  v.window = OBSPAM_WINDOW_HOUR;
  v.retry_after = 60;
  obspamd_metrics_decision(&s->metrics, &v, NULL, us);
}

/* Refusals by the window they name; the recipients cap and forbidden
   scripts (verdicts without a window) apart. Accepts count nowhere. */
Test(metrics, refusals_by_window) {
  static const struct {
    int action, kind;
    int64_t window, limit, count, retry;
  } cases[] = {
      {OBSPAM_REFUSE, OBSPAM_MAILBOX, OBSPAM_WINDOW_MINUTE, 20, 20, 35},
      {OBSPAM_REFUSE, OBSPAM_MAILBOX, OBSPAM_WINDOW_DAY, 1000, 1000, 7200},
      {OBSPAM_REFUSE, OBSPAM_DOMAIN, OBSPAM_WINDOW_DAY, 1000, 999, 60},
      {OBSPAM_REFUSE, OBSPAM_MAILBOX, 0, 10, 30, -1},
      {OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, 0, -1, 0, -1},
      {OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, 0, 5000, 3, -1},
      {OBSPAM_ACCEPT, OBSPAM_MAILBOX, OBSPAM_WINDOW_HOUR, 20, 3, 0}};
  static const char *const lines[] = {
      "obspam_refusal_windows_total{window=\"minute\"} 1\n",
      "obspam_refusal_windows_total{window=\"hour\"} 0\n",
      "obspam_refusal_windows_total{window=\"day\"} 2\n",
      "obspam_refusal_windows_total{window=\"max-recipients\"} 1\n",
      "obspam_refusal_windows_total{window=\"scripts\"} 2\n"};
  obspamd_service s;
  char *text;
  size_t i;

  memset(&s, 0, sizeof(s));
  s.name = "obspam-policyd";
  for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    v.action = cases[i].action;
    v.kind = cases[i].kind;
    v.window = cases[i].window;
    v.limit = cases[i].limit;
    v.count = cases[i].count;
    v.retry_after = cases[i].retry;
    obspamd_metrics_decision(&s.metrics, &v, NULL, 1);
  }
  text = format(&s);
  for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
    cr_assert_not_null(strstr(text, lines[i]), "missing %s in:\n%s", lines[i],
                       text);
  free(text);
}

/* The counts of decisions, added with locked instructions (any thread
   may count: the milter) or without (one_writer: the policy server's
   loop), are the same. */
static void expect_counted_values(int one_writer) {
  obspamd_service s;
  char *text;
  int i;

  memset(&s, 0, sizeof(s));
  s.name = "obspam-milter";
  s.metrics.one_writer = one_writer;
  /* Latencies on and around the bounds: a bound is inclusive ("le"). */
  count(&s, OBSPAM_ACCEPT, OBSPAM_MAILBOX, 5);
  count(&s, OBSPAM_ACCEPT, OBSPAM_MAILBOX, 10);
  count(&s, OBSPAM_ACCEPT, OBSPAM_DOMAIN, 11);
  count(&s, OBSPAM_REFUSE, OBSPAM_MAILBOX, 999);
  count(&s, OBSPAM_REFUSE, OBSPAM_MAILBOX, 1000000);
  count(&s, OBSPAM_REFUSE, OBSPAM_DOMAIN, 2000000);
  count(&s, OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, -3); /* a clock step back */
  count(&s, OBSPAM_EXEMPT, -1, 1);
  count(&s, OBSPAM_UNKNOWN, -1, 1);
  count(&s, OBSPAM_UNKNOWN, -1, 1);
  for (i = 0; i < 3; i++)
    obspamd_metrics_connection_open(&s.metrics);
  obspamd_metrics_connection_close(&s.metrics);
  obspamd_metrics_bad_request(&s.metrics);
  obspamd_metrics_bad_request(&s.metrics);
  s.metrics.reloads_ok = 4;
  s.metrics.reloads_failed = 1;
  s.metrics.saves_ok = 7;
  s.metrics.saves_failed = 2;
  s.metrics.notices = 5;
  s.metrics.mails_sent = 8;
  s.metrics.mails_failed = 1;
  s.metrics.mails_dropped = 3;
  s.metrics.last_save = 1714568340;

  text = format(&s);
  static const char *const lines[] = {
      "obspam_decisions_total{action=\"accept\"} 3",
      "obspam_decisions_total{action=\"refuse\"} 4",
      "obspam_decisions_total{action=\"exempt\"} 1",
      "obspam_decisions_total{action=\"unknown\"} 2",
      "obspam_refusals_total{level=\"subscription\"} 1",
      "obspam_refusals_total{level=\"domain\"} 1",
      "obspam_refusals_total{level=\"mailbox\"} 2",
      "obspam_refusal_windows_total{window=\"hour\"} 4",
      "obspam_connections_open 2",
      "obspam_connections_total 3",
      "obspam_requests_bad_total 2",
      "obspam_request_duration_seconds_bucket{le=\"0.00001\"} 6",
      "obspam_request_duration_seconds_bucket{le=\"0.000025\"} 7",
      "obspam_request_duration_seconds_bucket{le=\"0.00005\"} 7",
      "obspam_request_duration_seconds_bucket{le=\"0.0001\"} 7",
      "obspam_request_duration_seconds_bucket{le=\"0.00025\"} 7",
      "obspam_request_duration_seconds_bucket{le=\"0.0005\"} 7",
      "obspam_request_duration_seconds_bucket{le=\"0.001\"} 8",
      "obspam_request_duration_seconds_bucket{le=\"0.0025\"} 8",
      "obspam_request_duration_seconds_bucket{le=\"0.01\"} 8",
      "obspam_request_duration_seconds_bucket{le=\"0.05\"} 8",
      "obspam_request_duration_seconds_bucket{le=\"0.25\"} 8",
      "obspam_request_duration_seconds_bucket{le=\"1\"} 9",
      "obspam_request_duration_seconds_bucket{le=\"+Inf\"} 10",
      /* 5 + 10 + 11 + 999 + 1000000 + 2000000 + 0 + 1 + 1 + 1 µs */
      "obspam_request_duration_seconds_sum 3.001028",
      "obspam_request_duration_seconds_count 10",
      "obspam_config_reloads_total{result=\"ok\"} 4",
      "obspam_config_reloads_total{result=\"failed\"} 1",
      "obspam_snapshot_saves_total{result=\"ok\"} 7",
      "obspam_snapshot_saves_total{result=\"failed\"} 2",
      "obspam_snapshot_last_success_timestamp_seconds 1714568340",
      "obspam_notices_total 5",
      "obspam_notify_mails_total{result=\"sent\"} 8",
      "obspam_notify_mails_total{result=\"failed\"} 1",
      "obspam_notify_mails_total{result=\"dropped\"} 3",
  };
  for (i = 0; i < (int)(sizeof(lines) / sizeof(lines[0])); i++)
    cr_assert(has_line(text, lines[i]), "missing line '%s' in:\n%s", lines[i],
              text);
  free(text);
}

Test(metrics, counted_values) { expect_counted_values(0); }

Test(metrics, counted_values_one_writer) { expect_counted_values(1); }

/* The policy server counts a verdict per decision and the times of a run
   of decisions that took as long at once: the same metrics as one
   obspamd_metrics_decision each, with a writer or several. */
Test(metrics, verdicts_and_latency_runs_as_decisions) {
  static const struct {
    int action, kind;
    double us;
  } d[] = {{OBSPAM_REFUSE, OBSPAM_MAILBOX, 12},
           {OBSPAM_REFUSE, OBSPAM_DOMAIN, 12},
           {OBSPAM_ACCEPT, OBSPAM_MAILBOX, 12},
           {OBSPAM_REFUSE, OBSPAM_SUBSCRIPTION, 2500.4},
           {OBSPAM_EXEMPT, -1, 2500.4},
           {OBSPAM_REFUSE, OBSPAM_MAILBOX, -1},
           {OBSPAM_UNKNOWN, -1, 3e6},
           {OBSPAM_UNKNOWN, -1, 3e6},
           {OBSPAM_UNKNOWN, -1, 3e6}};
  const size_t n = sizeof(d) / sizeof(d[0]);
  int one_writer;

  for (one_writer = 0; one_writer <= 1; one_writer++) {
    static obspamd_service each, runs;
    char *want, *got;
    size_t i, start;

    memset(&each, 0, sizeof(each));
    memset(&runs, 0, sizeof(runs));
    each.name = runs.name = "obspam-policyd";
    each.metrics.one_writer = runs.metrics.one_writer = one_writer;
    for (i = 0; i < n; i++)
      count(&each, d[i].action, d[i].kind, d[i].us);
    for (start = 0, i = 0; i < n; i++) {
      obspam_verdict v = OBSPAM_VERDICT_INIT;

      v.action = d[i].action;
      v.kind = d[i].kind;
      v.window = OBSPAM_WINDOW_HOUR;
      v.retry_after = 60;
      obspamd_metrics_verdict(&runs.metrics, &v, NULL);
      if (i + 1 == n || d[i + 1].us != d[start].us) {
        obspamd_metrics_latency(&runs.metrics, d[start].us, i + 1 - start);
        start = i + 1;
      }
    }
    cr_assert_eq(runs.metrics.latency_count, n);
    want = format(&each);
    got = format(&runs);
    cr_assert_str_eq(got, want);
    free(want);
    free(got);
  }
}

/* The loop's times: only a daemon with a loop exposes them; bounds are
   inclusive, the maximum is the longest since the start, and one call
   counts n observations of the same time. */
Test(metrics, loop_timings) {
  obspamd_service s;
  char *text;
  int i;

  memset(&s, 0, sizeof(s));
  s.name = "obspam-milter";
  obspamd_metrics_timing(&s.metrics.rounds, 40, 1);
  text = format(&s);
  cr_assert_null(strstr(text, "obspam_loop_round"), "%s", text);
  cr_assert_null(strstr(text, "obspam_request_wait"), "%s", text);
  free(text);

  s.metrics.loop = 1;
  obspamd_metrics_timing(&s.metrics.rounds, 100, 1);
  obspamd_metrics_timing(&s.metrics.rounds, 10000.4, 1);
  obspamd_metrics_timing(&s.metrics.rounds, 10001, 1);
  obspamd_metrics_timing(&s.metrics.rounds, 2500000, 1);
  obspamd_metrics_timing(&s.metrics.rounds, 7, 1);
  obspamd_metrics_timing(&s.metrics.waits, 1500, 3);
  obspamd_metrics_timing(&s.metrics.waits, -2, 2); /* a clock step back */
  text = format(&s);
  static const char *const lines[] = {
      "# TYPE obspam_loop_round_seconds histogram",
      "obspam_loop_round_seconds_bucket{le=\"0.0001\"} 3",
      "obspam_loop_round_seconds_bucket{le=\"0.00025\"} 3",
      "obspam_loop_round_seconds_bucket{le=\"0.0005\"} 3",
      "obspam_loop_round_seconds_bucket{le=\"0.001\"} 3",
      "obspam_loop_round_seconds_bucket{le=\"0.002\"} 3",
      "obspam_loop_round_seconds_bucket{le=\"0.005\"} 3",
      "obspam_loop_round_seconds_bucket{le=\"0.01\"} 4",
      "obspam_loop_round_seconds_bucket{le=\"0.02\"} 5",
      "obspam_loop_round_seconds_bucket{le=\"0.05\"} 5",
      "obspam_loop_round_seconds_bucket{le=\"0.1\"} 5",
      "obspam_loop_round_seconds_bucket{le=\"0.25\"} 5",
      "obspam_loop_round_seconds_bucket{le=\"0.5\"} 5",
      "obspam_loop_round_seconds_bucket{le=\"1\"} 5",
      "obspam_loop_round_seconds_bucket{le=\"+Inf\"} 6",
      /* 40 + 100 + 10000 + 10001 + 2500000 + 7 µs */
      "obspam_loop_round_seconds_sum 2.520148",
      "obspam_loop_round_seconds_count 6",
      "# TYPE obspam_loop_round_max_seconds gauge",
      "obspam_loop_round_max_seconds 2.500000",
      "obspam_request_wait_seconds_bucket{le=\"0.0001\"} 2",
      "obspam_request_wait_seconds_bucket{le=\"0.001\"} 2",
      "obspam_request_wait_seconds_bucket{le=\"0.002\"} 5",
      "obspam_request_wait_seconds_bucket{le=\"+Inf\"} 5",
      "obspam_request_wait_seconds_sum 0.004500",
      "obspam_request_wait_seconds_count 5",
      "obspam_request_wait_max_seconds 0.001500",
  };
  for (i = 0; i < (int)(sizeof(lines) / sizeof(lines[0])); i++)
    cr_assert(has_line(text, lines[i]), "missing line '%s' in:\n%s", lines[i],
              text);
  free(text);
}

/* The version of the header, as the exposition writes it. */
#define STR_(x) #x
#define STR(x) STR_(x)
#define VERSION                                                                \
  STR(OBSPAM_VERSION_MAJOR)                                                    \
  "." STR(OBSPAM_VERSION_MINOR) "." STR(OBSPAM_VERSION_PATCH)

Test(metrics, label_values_are_escaped_and_output_truncated) {
  obspamd_service s;
  char buf[16], want[128], *text;
  size_t full;

  memset(&s, 0, sizeof(s));
  s.name = "ob\"spam\\d";
  text = format(&s);
  /* The version of the header the test was built with: the library's. */
  snprintf(
      want, sizeof(want),
      "obspam_build_info{daemon=\"ob\\\"spam\\\\d\",version=\"%d.%d.%d\"} 1",
      OBSPAM_VERSION_MAJOR, OBSPAM_VERSION_MINOR, OBSPAM_VERSION_PATCH);
  cr_assert(has_line(text, want), "%s", text);
  full = strlen(text);
  cr_assert_eq(obspamd_metrics_format(&s, buf, sizeof(buf)), full);
  cr_assert_str_eq(buf, "# HELP obspam_d");
  free(text);
}

/* Counters are updated from many threads at once and lose nothing. */
#define THREADS 4
#define PER_THREAD 50000

static obspamd_service shared;

static void *hammer(void *arg) {
  int i;
  (void)arg;
  for (i = 0; i < PER_THREAD; i++) {
    count(&shared, i % 2 ? OBSPAM_REFUSE : OBSPAM_ACCEPT, OBSPAM_MAILBOX, 20);
    obspamd_metrics_connection_open(&shared.metrics);
    obspamd_metrics_connection_close(&shared.metrics);
  }
  return NULL;
}

Test(metrics, atomic_under_threads) {
  pthread_t t[THREADS];
  int i;

  memset(&shared, 0, sizeof(shared));
  for (i = 0; i < THREADS; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
  for (i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  cr_assert_eq(shared.metrics.decisions[OBSPAM_ACCEPT],
               THREADS * PER_THREAD / 2);
  cr_assert_eq(shared.metrics.decisions[OBSPAM_REFUSE],
               THREADS * PER_THREAD / 2);
  cr_assert_eq(shared.metrics.refusals[OBSPAM_MAILBOX],
               THREADS * PER_THREAD / 2);
  cr_assert_eq(shared.metrics.latency[1], THREADS * PER_THREAD);
  cr_assert_eq(shared.metrics.latency_count, THREADS * PER_THREAD);
  cr_assert_eq(shared.metrics.latency_sum_us, 20ull * THREADS * PER_THREAD);
  cr_assert_eq(shared.metrics.connections_open, 0);
  cr_assert_eq(shared.metrics.connections_total, THREADS * PER_THREAD);
}
