/* SPDX-License-Identifier: MIT */
/*
 * libobspam quickstart: build a small hosting tree, send a burst of mail
 * from one mailbox and watch its hourly limit refuse what exceeds it.
 *
 * Uses the public API only (obspam.h). Build and run it from the project
 * root with ./examples/demo.sh, or:
 *
 *   cmake -S . -B build && cmake --build build && ./build/examples/quickstart
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "obspam.h"

/* Every message of the burst is sent at this fixed time (UTC), 30 seconds
   into a minute, so that the output is the same on every run. */
#define BURST_TIME ((int64_t)1767268830) /* 2026-01-01 12:00:30 UTC */
#define BURST_SIZE 8

/* Stops the program when a call fails, saying which call and why. */
static void check(const obspam_engine *e, int rc, const char *call) {
  if (rc == OBSPAM_OK)
    return;
  fprintf(stderr, "quickstart: %s failed: %s (%d)", call, obspam_strerror(rc),
          rc);
  if (e != NULL && obspam_engine_errmsg(e)[0] != '\0')
    fprintf(stderr, ": %s", obspam_engine_errmsg(e));
  fputc('\n', stderr);
  exit(EXIT_FAILURE);
}

/* Formats a Unix time as "YYYY-MM-DD HH:MM:SS UTC". */
static const char *utc(int64_t t, char *buf, size_t size) {
  time_t tt = (time_t)t;
  struct tm *tm = gmtime(&tt);
  if (tm == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", tm) == 0)
    snprintf(buf, size, "%" PRId64, t);
  return buf;
}

/* Builds the tree that the SPEC's configuration example describes, in
   short:
     server defaults: mailbox 100, domain 1000, subscription 5000 per hour
     plan "basic":    mailbox 50,  domain 500,  subscription 1000
     subscription "acme" on plan basic, system user 10001, with a contact
     domain example.com in acme
     mailboxes info@example.com (its own limit: 5) and sales@example.com */
static void build_tree(obspam_engine *e) {
  /* A new engine limits nothing: set the server-wide defaults first. */
  check(e, obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_MAILBOX, 100),
        "obspam_set_limit(server, mailbox)");
  check(e, obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_DOMAIN, 1000),
        "obspam_set_limit(server, domain)");
  check(e, obspam_set_limit(e, OBSPAM_SERVER, NULL, OBSPAM_SUBSCRIPTION, 5000),
        "obspam_set_limit(server, subscription)");

  /* A service plan overrides the defaults for its subscriptions. */
  check(e, obspam_add(e, OBSPAM_PLAN, "basic", NULL), "obspam_add(plan)");
  check(e, obspam_set_limit(e, OBSPAM_PLAN, "basic", OBSPAM_MAILBOX, 50),
        "obspam_set_limit(plan, mailbox)");
  check(e, obspam_set_limit(e, OBSPAM_PLAN, "basic", OBSPAM_DOMAIN, 500),
        "obspam_set_limit(plan, domain)");
  check(e, obspam_set_limit(e, OBSPAM_PLAN, "basic", OBSPAM_SUBSCRIPTION, 1000),
        "obspam_set_limit(plan, subscription)");

  /* The customer's account: mail from its scripts (uid 10001) is charged
     to it, and its contact hears about refusals. */
  check(e, obspam_add(e, OBSPAM_SUBSCRIPTION, "acme", "basic"),
        "obspam_add(subscription)");
  check(e, obspam_set_uid(e, "acme", 10001), "obspam_set_uid");
  check(e, obspam_set_contact(e, "acme", "ops@acme.example"),
        "obspam_set_contact");

  check(e, obspam_add(e, OBSPAM_DOMAIN, "example.com", "acme"),
        "obspam_add(domain)");

  /* info@ gets a limit of its own; sales@ inherits the plan's 50. */
  check(e, obspam_add(e, OBSPAM_MAILBOX, "info@example.com", NULL),
        "obspam_add(mailbox info)");
  check(e,
        obspam_set_limit(e, OBSPAM_MAILBOX, "info@example.com", OBSPAM_MAILBOX,
                         5),
        "obspam_set_limit(mailbox info)");
  check(e, obspam_add(e, OBSPAM_MAILBOX, "sales@example.com", NULL),
        "obspam_add(mailbox sales)");
}

static void print_effective_limits(obspam_engine *e) {
  static const struct {
    int kind;
    const char *name;
    const char *note;
  } objects[] = {{OBSPAM_SUBSCRIPTION, "acme",
                  "from plan basic; uid 10001, contact ops@acme.example"},
                 {OBSPAM_DOMAIN, "example.com", "from plan basic"},
                 {OBSPAM_MAILBOX, "info@example.com", "its own limit"},
                 {OBSPAM_MAILBOX, "sales@example.com", "from plan basic"}};
  size_t i;

  printf("The hosting tree and its effective limits, in messages per hour\n"
         "(that is, in the last 60 minutes). Server defaults: mailbox 100,\n"
         "domain 1000, subscription 5000; plan basic: 50, 500, 1000.\n");
  for (i = 0; i < sizeof objects / sizeof objects[0]; i++) {
    int64_t limit = 0;
    char text[24];

    check(e,
          obspam_effective_limit(e, objects[i].kind, objects[i].name, &limit),
          "obspam_effective_limit");
    if (limit == OBSPAM_UNLIMITED)
      snprintf(text, sizeof text, "unlimited");
    else
      snprintf(text, sizeof text, "%" PRId64, limit);
    printf("  %-13s %-18s %5s  %s\n", obspam_kind_name(objects[i].kind),
           objects[i].name, text, objects[i].note);
  }
  printf("\n");
}

/* Prints one verdict on one line. */
static void print_verdict(int n, const obspam_verdict *v) {
  switch (v->action) {
  case OBSPAM_ACCEPT: /* the lowest charged object, its count before */
    printf("  #%d  accepted  %s %s  count %" PRId64 ", limit %" PRId64 "\n", n,
           obspam_kind_name(v->kind), v->object, v->count, v->limit);
    break;
  case OBSPAM_REFUSE: /* the highest object that is full */
    printf("  #%d  REFUSED   %s %s  count %" PRId64 ", limit %" PRId64, n,
           obspam_kind_name(v->kind), v->object, v->count, v->limit);
    if (v->retry_after < 0)
      printf(": it can never fit\n");
    else
      printf(": retry in %" PRId64 " s (try again in %" PRId64 " minute%s)\n",
             v->retry_after, (v->retry_after + 59) / 60,
             (v->retry_after + 59) / 60 == 1 ? "" : "s");
    break;
  case OBSPAM_EXEMPT:
    printf("  #%d  exempt    (whitelisted or not counted)\n", n);
    break;
  default:
    printf("  #%d  unknown   (the sender is not hosted here)\n", n);
    break;
  }
}

static void send_burst(obspam_engine *e) {
  char when[64];
  int n;

  printf("A burst of %d messages from info@example.com (SASL login), one "
         "recipient each,\nat %s:\n",
         BURST_SIZE, utc(BURST_TIME, when, sizeof when));
  for (n = 1; n <= BURST_SIZE; n++) {
    obspam_message msg = OBSPAM_MESSAGE_INIT;
    obspam_verdict verdict = OBSPAM_VERDICT_INIT;

    msg.sasl_username = "info@example.com"; /* who logged in */
    msg.sender = "info@example.com";        /* the envelope sender */
    msg.client_address = "203.0.113.7";     /* the submitting client */
    msg.recipients = 1;
    msg.time = BURST_TIME;
    check(e, obspam_decide(e, &msg, &verdict), "obspam_decide");
    print_verdict(n, &verdict);
  }
  /* The code the daemons answer with: obspam-policyd and obspam-milter
     send 451 4.7.1 for the default action, 550 5.7.1 for reject. */
  printf("  A refused message is not lost: with the default action (defer) "
         "the MTA\n  answers \"451 4.7.1\" and the sender's server tries "
         "again later.\n\n");
}

static void print_status(obspam_engine *e) {
  static const struct {
    int kind;
    const char *name;
  } objects[] = {{OBSPAM_MAILBOX, "info@example.com"},
                 {OBSPAM_DOMAIN, "example.com"},
                 {OBSPAM_SUBSCRIPTION, "acme"}};
  char when[64];
  size_t i;

  printf("Status (obspam_stats_get) at %s:\n",
         utc(BURST_TIME, when, sizeof when));
  printf("  %-13s %-18s %-12s %9s %6s %8s\n", "level", "name", "status",
         "limit", "sent", "refused");
  for (i = 0; i < sizeof objects / sizeof objects[0]; i++) {
    obspam_stats st = OBSPAM_STATS_INIT;
    char limit[24];

    check(
        e,
        obspam_stats_get(e, objects[i].kind, objects[i].name, BURST_TIME, &st),
        "obspam_stats_get");
    if (st.limit == OBSPAM_UNLIMITED)
      snprintf(limit, sizeof limit, "unlimited");
    else
      snprintf(limit, sizeof limit, "%" PRId64, st.limit);
    printf("  %-13s %-18s %-12s %9s %6" PRId64 " %8" PRId64 "\n",
           obspam_kind_name(objects[i].kind), objects[i].name,
           st.sending ? "sending" : "not sending", limit, st.count, st.refused);
  }
  printf("  (sent and refused: in the last 60 minutes)\n");
}

int main(void) {
  obspam_engine *e = NULL;

  /* The library loaded must be the one this program was compiled with. */
  if ((obspam_version() >> 16) != OBSPAM_VERSION_MAJOR) {
    fprintf(stderr, "quickstart: built for libobspam %d, running with %s\n",
            OBSPAM_VERSION_MAJOR, obspam_version_string());
    return EXIT_FAILURE;
  }
  printf("libobspam %s quickstart\n\n", obspam_version_string());

  check(NULL, obspam_engine_new(&e), "obspam_engine_new");
  build_tree(e);
  print_effective_limits(e);
  send_burst(e);
  print_status(e);
  obspam_engine_free(e);
  return EXIT_SUCCESS;
}
