/* SPDX-License-Identifier: MIT */
/* Prints every value of the public header that a compiled program depends
   on and that abidiff cannot see: macro and enum constants (an enum that no
   function signature names leaves no trace in the debug information), and
   the size and offset of every field of the public structures.

   tests/abi/abicheck.sh compares the output with the committed list
   tests/abi/obspam-v1.constants: a 1.x release may add lines and make a
   structure larger (fields are appended), never change a line. */
#include <stddef.h>
#include <stdio.h>

#include "obspam.h"

#define C(name) printf("const %s %lld\n", #name, (long long)(name))
#define S(type) printf("sizeof %s %zu\n", #type, sizeof(type))
#define F(type, field)                                                         \
  printf("field %s.%s %zu %zu\n", #type, #field, offsetof(type, field),        \
         sizeof(((type *)0)->field))

int main(void) {
  C(OBSPAM_VERSION_MAJOR);
  C(OBSPAM_NAME_MAX);
#define OBSPAM_PRINT_ERRNO_(name, value, text) C(OBSPAM_##name);
  OBSPAM_ERRNO_MAP(OBSPAM_PRINT_ERRNO_)
#undef OBSPAM_PRINT_ERRNO_
  C(OBSPAM_SERVER);
  C(OBSPAM_PLAN);
  C(OBSPAM_SUBSCRIPTION);
  C(OBSPAM_DOMAIN);
  C(OBSPAM_MAILBOX);
  C(OBSPAM_SCRIPT);
  C(OBSPAM_UNLIMITED);
  C(OBSPAM_INHERIT);
  C(OBSPAM_ACCEPT);
  C(OBSPAM_REFUSE);
  C(OBSPAM_EXEMPT);
  C(OBSPAM_UNKNOWN);
  C(OBSPAM_MSG_SCRIPT);
  C(OBSPAM_MSG_FORWARD_LOCAL);
  C(OBSPAM_MSG_FORWARD_REMOTE);
  C(OBSPAM_MSG_MAILING_LIST);
  C(OBSPAM_MSG_PROBE);
  C(OBSPAM_OPT_ENABLED);
  C(OBSPAM_OPT_COUNT_UNIT);
  C(OBSPAM_OPT_ACTION);
  C(OBSPAM_OPT_COUNT_UNAUTHENTICATED);
  C(OBSPAM_OPT_COUNT_FORWARD_LOCAL);
  C(OBSPAM_OPT_COUNT_FORWARD_REMOTE);
  C(OBSPAM_OPT_COUNT_MAILING_LISTS);
  C(OBSPAM_OPT_RETENTION_HOURS);
  C(OBSPAM_OPT_NOTIFY_PERIOD);
  C(OBSPAM_OPT_NOTIFY_IMMEDIATE);
  /* 1.1 */
  C(OBSPAM_OPT_STORE_TIMEOUT_MS);
  C(OBSPAM_OPT_STORE_FALLBACK);
  /* 1.3 */
  C(OBSPAM_OPT_IMPLICIT_MAILBOXES);
  C(OBSPAM_WINDOW_MINUTE);
  C(OBSPAM_WINDOW_HOUR);
  C(OBSPAM_WINDOW_DAY);
  C(OBSPAM_RECIPIENTS_MAX);
  C(OBSPAM_JOURNAL_FSYNC);

  S(obspam_message);
  F(obspam_message, struct_size);
  F(obspam_message, flags);
  F(obspam_message, sasl_username);
  F(obspam_message, sender);
  F(obspam_message, client_address);
  F(obspam_message, recipients);
  F(obspam_message, uid);
  F(obspam_message, domain_hint);
  F(obspam_message, script);
  F(obspam_message, time);

  S(obspam_verdict);
  F(obspam_verdict, struct_size);
  F(obspam_verdict, action);
  F(obspam_verdict, kind);
  F(obspam_verdict, limit);
  F(obspam_verdict, count);
  F(obspam_verdict, retry_after);
  F(obspam_verdict, object);
  F(obspam_verdict, window); /* 1.3 */

  S(obspam_stats);
  F(obspam_stats, struct_size);
  F(obspam_stats, sending);
  F(obspam_stats, limit);
  F(obspam_stats, count);
  F(obspam_stats, refused);
  F(obspam_stats, refused_total);
  F(obspam_stats, last_refused);
  /* 1.3 */
  F(obspam_stats, exceeded);
  F(obspam_stats, exceeded_total);
  F(obspam_stats, limit_minute);
  F(obspam_stats, count_minute);
  F(obspam_stats, limit_day);
  F(obspam_stats, count_day);
  F(obspam_stats, blocked_kind);
  F(obspam_stats, disabled);
  F(obspam_stats, blocked_by);

  S(obspam_report_row);
  F(obspam_report_row, struct_size);
  F(obspam_report_row, kind);
  F(obspam_report_row, name);
  F(obspam_report_row, sent);
  F(obspam_report_row, refused);
  F(obspam_report_row, first_refused);
  F(obspam_report_row, last_refused);
  F(obspam_report_row, exceeded); /* 1.3 */

  S(obspam_notice);
  F(obspam_notice, struct_size);
  F(obspam_notice, kind);
  F(obspam_notice, name);
  F(obspam_notice, subscription);
  F(obspam_notice, contact);
  F(obspam_notice, limit);
  F(obspam_notice, sent);
  F(obspam_notice, refused);
  F(obspam_notice, first_refused);
  F(obspam_notice, last_refused);
  F(obspam_notice, period_start);
  F(obspam_notice, period_end);
  F(obspam_notice, exceeded); /* 1.3 */
  return 0;
}
