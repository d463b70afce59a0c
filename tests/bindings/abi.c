/* SPDX-License-Identifier: MIT */
/*
 * Prints what the C compiler makes of include/obspam.h, for the binding
 * tests to compare with their own declarations:
 *
 *   const NAME VALUE            every constant of the header
 *   size STRUCT BYTES           sizeof of every structure
 *   field STRUCT.FIELD OFFSET   offsetof of every field, in header order
 *
 * Built and run by tests/bindings/run.sh; uses the header only.
 */
#include <stddef.h>
#include <stdio.h>

#include "obspam.h"

#define CONST(name) printf("const %s %lld\n", #name, (long long)(name))
#define SIZE(type) printf("size %s %zu\n", #type, sizeof(type))
#define FIELD(type, field)                                                     \
  printf("field %s.%s %zu\n", #type, #field, offsetof(type, field))

int main(void) {
#define OBSPAM_ABI_ERRNO_(name, value, text) CONST(OBSPAM_##name);
  OBSPAM_ERRNO_MAP(OBSPAM_ABI_ERRNO_)
#undef OBSPAM_ABI_ERRNO_
  CONST(OBSPAM_VERSION_MAJOR);
  CONST(OBSPAM_VERSION_MINOR);
  CONST(OBSPAM_VERSION_PATCH);
  CONST(OBSPAM_VERSION_NUMBER);
  CONST(OBSPAM_NAME_MAX);
  CONST(OBSPAM_SERVER);
  CONST(OBSPAM_PLAN);
  CONST(OBSPAM_SUBSCRIPTION);
  CONST(OBSPAM_DOMAIN);
  CONST(OBSPAM_MAILBOX);
  CONST(OBSPAM_SCRIPT);
  CONST(OBSPAM_UNLIMITED);
  CONST(OBSPAM_INHERIT);
  CONST(OBSPAM_ACCEPT);
  CONST(OBSPAM_REFUSE);
  CONST(OBSPAM_EXEMPT);
  CONST(OBSPAM_UNKNOWN);
  CONST(OBSPAM_MSG_SCRIPT);
  CONST(OBSPAM_MSG_FORWARD_LOCAL);
  CONST(OBSPAM_MSG_FORWARD_REMOTE);
  CONST(OBSPAM_MSG_MAILING_LIST);
  CONST(OBSPAM_MSG_PROBE);
  CONST(OBSPAM_DECIDE_DRY);
  CONST(OBSPAM_OPT_ENABLED);
  CONST(OBSPAM_OPT_COUNT_UNIT);
  CONST(OBSPAM_OPT_ACTION);
  CONST(OBSPAM_OPT_COUNT_UNAUTHENTICATED);
  CONST(OBSPAM_OPT_COUNT_FORWARD_LOCAL);
  CONST(OBSPAM_OPT_COUNT_FORWARD_REMOTE);
  CONST(OBSPAM_OPT_COUNT_MAILING_LISTS);
  CONST(OBSPAM_OPT_RETENTION_HOURS);
  CONST(OBSPAM_OPT_NOTIFY_PERIOD);
  CONST(OBSPAM_OPT_NOTIFY_IMMEDIATE);
  CONST(OBSPAM_OPT_STORE_TIMEOUT_MS);
  CONST(OBSPAM_OPT_STORE_FALLBACK);
  CONST(OBSPAM_OPT_IMPLICIT_MAILBOXES);
  CONST(OBSPAM_WINDOW_MINUTE);
  CONST(OBSPAM_WINDOW_HOUR);
  CONST(OBSPAM_WINDOW_DAY);
  CONST(OBSPAM_RECIPIENTS_MAX);
  CONST(OBSPAM_JOURNAL_FSYNC);
  CONST(OBSPAM_ENUM_ACTIVE);

  SIZE(obspam_message);
  FIELD(obspam_message, struct_size);
  FIELD(obspam_message, flags);
  FIELD(obspam_message, sasl_username);
  FIELD(obspam_message, sender);
  FIELD(obspam_message, client_address);
  FIELD(obspam_message, recipients);
  FIELD(obspam_message, uid);
  FIELD(obspam_message, domain_hint);
  FIELD(obspam_message, script);
  FIELD(obspam_message, time);

  SIZE(obspam_verdict);
  FIELD(obspam_verdict, struct_size);
  FIELD(obspam_verdict, action);
  FIELD(obspam_verdict, kind);
  FIELD(obspam_verdict, limit);
  FIELD(obspam_verdict, count);
  FIELD(obspam_verdict, retry_after);
  FIELD(obspam_verdict, object);
  FIELD(obspam_verdict, window);

  SIZE(obspam_stats);
  FIELD(obspam_stats, struct_size);
  FIELD(obspam_stats, sending);
  FIELD(obspam_stats, limit);
  FIELD(obspam_stats, count);
  FIELD(obspam_stats, refused);
  FIELD(obspam_stats, refused_total);
  FIELD(obspam_stats, last_refused);
  FIELD(obspam_stats, exceeded);
  FIELD(obspam_stats, exceeded_total);
  FIELD(obspam_stats, limit_minute);
  FIELD(obspam_stats, count_minute);
  FIELD(obspam_stats, limit_day);
  FIELD(obspam_stats, count_day);
  FIELD(obspam_stats, blocked_kind);
  FIELD(obspam_stats, disabled);
  FIELD(obspam_stats, blocked_by);
  FIELD(obspam_stats, last_reset);
  FIELD(obspam_stats, forwarded);
  FIELD(obspam_stats, list_deliveries);

  SIZE(obspam_report_row);
  FIELD(obspam_report_row, struct_size);
  FIELD(obspam_report_row, kind);
  FIELD(obspam_report_row, name);
  FIELD(obspam_report_row, sent);
  FIELD(obspam_report_row, refused);
  FIELD(obspam_report_row, first_refused);
  FIELD(obspam_report_row, last_refused);
  FIELD(obspam_report_row, exceeded);
  FIELD(obspam_report_row, window);
  FIELD(obspam_report_row, subscription);
  FIELD(obspam_report_row, uid);
  FIELD(obspam_report_row, forwarded);
  FIELD(obspam_report_row, list_deliveries);

  SIZE(obspam_notice);
  FIELD(obspam_notice, struct_size);
  FIELD(obspam_notice, kind);
  FIELD(obspam_notice, name);
  FIELD(obspam_notice, subscription);
  FIELD(obspam_notice, contact);
  FIELD(obspam_notice, limit);
  FIELD(obspam_notice, sent);
  FIELD(obspam_notice, refused);
  FIELD(obspam_notice, first_refused);
  FIELD(obspam_notice, last_refused);
  FIELD(obspam_notice, period_start);
  FIELD(obspam_notice, period_end);
  FIELD(obspam_notice, exceeded);
  FIELD(obspam_notice, window);
  return 0;
}
