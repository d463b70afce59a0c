/* SPDX-License-Identifier: MIT */
/*
 * Replays a decision stream through the C API and prints what the engine
 * says, one line per answer. stream.py and stream.php do the same through
 * the Python and PHP bindings; tests/bindings/run.sh checks that the three
 * outputs are identical. The format is described in gen_stream.py.
 *
 *   stream CONFIG STREAM
 */
#define _POSIX_C_SOURCE 200809L /* strtok_r */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obspam.h"

#define MAX_WORDS 12

/* '-' is NULL, '~' the empty string. */
static const char *str_arg(const char *word) {
  if (strcmp(word, "-") == 0)
    return NULL;
  if (strcmp(word, "~") == 0)
    return "";
  return word;
}

/* A time; '-' is "no end". */
static int64_t time_arg(const char *word) {
  return strcmp(word, "-") == 0 ? INT64_MAX : strtoll(word, NULL, 10);
}

static const char *or_dash(const char *s) {
  return s != NULL && s[0] != '\0' ? s : "-";
}

static int error(const obspam_engine *e, int rc) {
  printf("error %d %s\n", rc, obspam_engine_errmsg(e));
  return rc;
}

static void on_notice(const obspam_notice *n, void *ud) {
  (void)ud;
  printf("notice %d %s %s %s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
         " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n",
         (int)n->kind, n->name, or_dash(n->subscription), or_dash(n->contact),
         n->limit, n->sent, n->refused, n->first_refused, n->last_refused,
         n->period_start, n->period_end, n->exceeded, n->window);
}

static void on_hour(int64_t hour, int64_t sent, int64_t refused, void *ud) {
  ++*(int *)ud;
  printf("history %" PRId64 " %" PRId64 " %" PRId64 "\n", hour, sent, refused);
}

static void on_row(const obspam_report_row *r, void *ud) {
  ++*(int *)ud;
  printf("report %d %s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
         " %" PRId64 "\n",
         (int)r->kind, r->name, r->sent, r->refused, r->first_refused,
         r->last_refused, r->exceeded, r->window);
}

static int on_object(int kind, const char *name, const obspam_stats *st,
                     void *ud) {
  ++*(int *)ud;
  printf("list %d %s %d %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n",
         kind, name, (int)st->sending, st->count, st->limit, st->refused,
         st->last_reset);
  return 0;
}

static void on_top(const obspam_report_row *r, void *ud) {
  ++*(int *)ud;
  printf("top %d %s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %s %" PRId64
         "\n",
         (int)r->kind, r->name, r->sent, r->refused, r->exceeded, r->window,
         or_dash(r->subscription), r->uid);
}

static void run(obspam_engine *e, char **w, int n) {
  int rc, rows = 0;

  if (strcmp(w[0], "d") == 0 && n == 10) {
    obspam_message msg = OBSPAM_MESSAGE_INIT;
    obspam_verdict v = OBSPAM_VERDICT_INIT;

    msg.time = strtoll(w[1], NULL, 10);
    msg.flags = (uint32_t)strtoul(w[2], NULL, 10);
    msg.recipients = (uint32_t)strtoul(w[3], NULL, 10);
    msg.uid = strtoll(w[4], NULL, 10);
    msg.sasl_username = str_arg(w[5]);
    msg.sender = str_arg(w[6]);
    msg.client_address = str_arg(w[7]);
    msg.domain_hint = str_arg(w[8]);
    msg.script = str_arg(w[9]);
    rc = obspam_decide(e, &msg, &v);
    if (rc != OBSPAM_OK) {
      error(e, rc);
      return;
    }
    printf("verdict %d %d %s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n",
           (int)v.action, (int)v.kind, or_dash(v.object), v.limit, v.count,
           v.retry_after, v.window);
  } else if (strcmp(w[0], "s") == 0 && n == 4) {
    obspam_stats s = OBSPAM_STATS_INIT;

    rc = obspam_stats_get(e, atoi(w[1]), w[2], strtoll(w[3], NULL, 10), &s);
    if (rc != OBSPAM_OK) {
      error(e, rc);
      return;
    }
    printf("stats %s %s %d %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
           " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
           " %" PRId64 " %" PRId64 " %d %d %s\n",
           w[1], w[2], (int)s.sending, s.limit, s.count, s.refused,
           s.refused_total, s.last_refused, s.exceeded, s.exceeded_total,
           s.limit_minute, s.count_minute, s.limit_day, s.count_day,
           (int)s.blocked_kind, (int)s.disabled, or_dash(s.blocked_by));
  } else if (strcmp(w[0], "h") == 0 && n == 5) {
    rc = obspam_history(e, atoi(w[1]), w[2], time_arg(w[3]), time_arg(w[4]),
                        on_hour, &rows);
    if (rc != OBSPAM_OK)
      error(e, rc);
    else
      printf("history end %d\n", rows);
  } else if (strcmp(w[0], "r") == 0 && n == 3) {
    rc = obspam_report(e, time_arg(w[1]), time_arg(w[2]), on_row, &rows);
    if (rc != OBSPAM_OK)
      error(e, rc);
    else
      printf("report end %d\n", rows);
  } else if (strcmp(w[0], "n") == 0 && n == 2) {
    rc = obspam_notify_flush(e, strtoll(w[1], NULL, 10));
    if (rc != OBSPAM_OK)
      error(e, rc);
    else
      printf("flush end\n");
  } else if (strcmp(w[0], "w") == 0 && n == 6) {
    rc = obspam_set_window_limit(e, atoi(w[1]), str_arg(w[2]), atoi(w[3]),
                                 strtoll(w[4], NULL, 10),
                                 strtoll(w[5], NULL, 10));
    if (rc != OBSPAM_OK)
      error(e, rc);
    else
      printf("window %s %s %s %s %s\n", w[1], w[2], w[3], w[4], w[5]);
  } else if (strcmp(w[0], "x") == 0 && n == 4) {
    rc = obspam_set_max_recipients(e, atoi(w[1]), str_arg(w[2]),
                                   strtoll(w[3], NULL, 10));
    if (rc != OBSPAM_OK)
      error(e, rc);
    else
      printf("cap %s %s %s\n", w[1], w[2], w[3]);
  } else if (strcmp(w[0], "e") == 0 && n == 3) {
    static const int64_t windows[3] = {OBSPAM_WINDOW_MINUTE, OBSPAM_WINDOW_HOUR,
                                       OBSPAM_WINDOW_DAY};
    int64_t v[4];
    int i;

    for (i = 0, rc = OBSPAM_OK; i < 3 && rc == OBSPAM_OK; i++)
      rc =
          obspam_effective_window_limit(e, atoi(w[1]), w[2], windows[i], &v[i]);
    if (rc == OBSPAM_OK)
      rc = obspam_effective_max_recipients(e, atoi(w[1]), w[2], &v[3]);
    if (rc != OBSPAM_OK)
      error(e, rc);
    else
      printf("effective %s %s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
             "\n",
             w[1], w[2], v[0], v[1], v[2], v[3]);
  } else if (strcmp(w[0], "l") == 0 && n == 7) {
    rc = obspam_enumerate(e, atoi(w[1]), str_arg(w[2]),
                          (uint32_t)strtoul(w[3], NULL, 10), str_arg(w[4]),
                          (size_t)strtoul(w[5], NULL, 10),
                          strtoll(w[6], NULL, 10), on_object, &rows);
    if (rc != OBSPAM_OK)
      error(e, rc);
    else
      printf("list end %d\n", rows);
  } else if (strcmp(w[0], "t") == 0 && n == 5) {
    rc = obspam_top(e, atoi(w[1]), time_arg(w[2]), time_arg(w[3]),
                    (size_t)strtoul(w[4], NULL, 10), on_top, &rows);
    if (rc != OBSPAM_OK)
      error(e, rc);
    else
      printf("top end %d\n", rows);
  } else if (strcmp(w[0], "z") == 0 && n == 4) {
    rc = obspam_reset(e, atoi(w[1]), w[2], strtoll(w[3], NULL, 10));
    if (rc != OBSPAM_OK)
      error(e, rc);
    else
      printf("reset %s %s\n", w[1], w[2]);
  } else if (strcmp(w[0], "u") == 0 && n == 2) {
    rc = obspam_set_unknown_uid_subscription(e, str_arg(w[1]));
    if (rc != OBSPAM_OK)
      error(e, rc);
    else
      printf("unknown-uid %s\n", w[1]);
  } else if (strcmp(w[0], "o") == 0 && n == 3) {
    rc = obspam_set_option(e, atoi(w[1]), strtoll(w[2], NULL, 10));
    if (rc != OBSPAM_OK)
      error(e, rc);
    else
      printf("option %s %s\n", w[1], w[2]);
  } else {
    fprintf(stderr, "stream: cannot read the command '%s' (%d words)\n", w[0],
            n);
    exit(2);
  }
}

int main(int argc, char **argv) {
  obspam_engine *e = NULL;
  char line[4096];
  FILE *in;
  int rc;

  if (argc != 3) {
    fprintf(stderr, "usage: stream CONFIG STREAM\n");
    return 2;
  }
  if (obspam_engine_new(&e) != OBSPAM_OK)
    return 1;
  rc = obspam_load_config(e, argv[1]);
  if (rc == OBSPAM_OK)
    rc = obspam_set_notify(e, on_notice, NULL);
  if (rc != OBSPAM_OK) {
    fprintf(stderr, "stream: %s\n", obspam_engine_errmsg(e));
    return 1;
  }
  in = fopen(argv[2], "r");
  if (in == NULL) {
    perror(argv[2]);
    return 1;
  }
  while (fgets(line, sizeof(line), in) != NULL) {
    char *w[MAX_WORDS], *save = NULL, *word;
    int n = 0;

    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '#' || line[0] == '\0')
      continue;
    for (word = strtok_r(line, " ", &save); word != NULL && n < MAX_WORDS;
         word = strtok_r(NULL, " ", &save))
      w[n++] = word;
    run(e, w, n);
  }
  fclose(in);
  obspam_engine_free(e);
  return 0;
}
