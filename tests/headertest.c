/* SPDX-License-Identifier: MIT */
/*
 * Header test, C side: include/obspam.h must compile alone as strict C99
 * (-std=c99 -pedantic -Werror -Wall -Wextra), with nothing included before
 * it. The program also checks that the *_INIT macros fill in what they
 * promise, that a few constants keep their ABI values, and that the library
 * it runs against has the header's version.
 *
 * Only obspam.h is included, so nothing is printed: the exit status is the
 * number of the first check that failed (0 when all pass).
 */
#include "obspam.h"

int main(void) {
  obspam_message msg = OBSPAM_MESSAGE_INIT;
  obspam_verdict verdict = OBSPAM_VERDICT_INIT;
  obspam_stats stats = OBSPAM_STATS_INIT;
  obspam_report_row row = OBSPAM_REPORT_ROW_INIT;
  obspam_notice notice = OBSPAM_NOTICE_INIT;

  /* The *_INIT macros. */
  if (msg.struct_size != sizeof(obspam_message) || msg.flags != 0 ||
      msg.sasl_username != NULL || msg.sender != NULL ||
      msg.client_address != NULL || msg.recipients != 1 || msg.uid != -1 ||
      msg.domain_hint != NULL || msg.script != NULL || msg.time != 0)
    return 1;
  if (verdict.struct_size != sizeof(obspam_verdict) || verdict.action != 0 ||
      verdict.kind != 0 || verdict.limit != 0 || verdict.count != 0 ||
      verdict.retry_after != 0 || verdict.object[0] != '\0' ||
      verdict.object[sizeof verdict.object - 1] != '\0' || verdict.window != 0)
    return 2;
  if (stats.struct_size != sizeof(obspam_stats) || stats.sending != 0 ||
      stats.limit != 0 || stats.count != 0 || stats.refused != 0 ||
      stats.refused_total != 0 || stats.last_refused != 0 ||
      stats.exceeded != 0 || stats.exceeded_total != 0 ||
      stats.limit_minute != 0 || stats.count_minute != 0 ||
      stats.limit_day != 0 || stats.count_day != 0 ||
      stats.blocked_kind != -1 || stats.disabled != 0 ||
      stats.blocked_by[0] != '\0' || stats.last_reset != 0 ||
      stats.forwarded != 0 || stats.list_deliveries != 0)
    return 3;
  if (row.struct_size != sizeof(obspam_report_row) || row.kind != 0 ||
      row.name != NULL || row.sent != 0 || row.refused != 0 ||
      row.first_refused != 0 || row.last_refused != 0 || row.exceeded != 0 ||
      row.window != 0 || row.subscription != NULL || row.uid != -1 ||
      row.forwarded != 0 || row.list_deliveries != 0)
    return 4;
  if (notice.struct_size != sizeof(obspam_notice) || notice.kind != 0 ||
      notice.name != NULL || notice.subscription != NULL ||
      notice.contact != NULL || notice.limit != 0 || notice.sent != 0 ||
      notice.refused != 0 || notice.first_refused != 0 ||
      notice.last_refused != 0 || notice.period_start != 0 ||
      notice.period_end != 0 || notice.exceeded != 0 || notice.window != 0)
    return 5;

  /* A few constants whose values are part of the ABI. */
  if (OBSPAM_OK != 0 || OBSPAM_EINVAL != -2 || OBSPAM_EVERSION != -8 ||
      OBSPAM_SERVER != 0 || OBSPAM_MAILBOX != 4 || OBSPAM_SCRIPT != 5 ||
      OBSPAM_UNLIMITED != -1 || OBSPAM_INHERIT != -2 || OBSPAM_ACCEPT != 0 ||
      OBSPAM_UNKNOWN != 3 || OBSPAM_MSG_SCRIPT != 1u ||
      OBSPAM_MSG_MAILING_LIST != 8u || OBSPAM_OPT_ENABLED != 1 ||
      OBSPAM_OPT_NOTIFY_IMMEDIATE != 10 || OBSPAM_NAME_MAX != 320)
    return 6;
  if (sizeof verdict.object < OBSPAM_NAME_MAX + 1)
    return 7;

    /* The structure layouts on LP64 (x86_64, aarch64), as released: the
       1.0 fields where they were, the 1.3 and 1.4 ones appended after them. */
#if UINTPTR_MAX == 0xffffffffffffffffu
  if (sizeof(obspam_message) != 72 ||
      offsetof(obspam_message, recipients) != 32 ||
      offsetof(obspam_message, uid) != 40 ||
      offsetof(obspam_message, time) != 64)
    return 8;
  if (sizeof(obspam_verdict) != 376 || offsetof(obspam_verdict, kind) != 8 ||
      offsetof(obspam_verdict, limit) != 16 ||
      offsetof(obspam_verdict, retry_after) != 32 ||
      offsetof(obspam_verdict, object) != 40 ||
      offsetof(obspam_verdict, window) != 368)
    return 9;
  if (sizeof(obspam_stats) != 456 ||
      offsetof(obspam_stats, last_reset) != 432 ||
      offsetof(obspam_stats, forwarded) != 440 ||
      offsetof(obspam_stats, list_deliveries) != 448 ||
      offsetof(obspam_stats, limit) != 8 ||
      offsetof(obspam_stats, last_refused) != 40 ||
      offsetof(obspam_stats, exceeded) != 48 ||
      offsetof(obspam_stats, count_day) != 88 ||
      offsetof(obspam_stats, blocked_kind) != 96 ||
      offsetof(obspam_stats, disabled) != 100 ||
      offsetof(obspam_stats, blocked_by) != 104)
    return 10;
  if (sizeof(obspam_report_row) != 96 ||
      offsetof(obspam_report_row, forwarded) != 80 ||
      offsetof(obspam_report_row, list_deliveries) != 88 ||
      offsetof(obspam_report_row, subscription) != 64 ||
      offsetof(obspam_report_row, uid) != 72 ||
      offsetof(obspam_report_row, name) != 8 ||
      offsetof(obspam_report_row, last_refused) != 40 ||
      offsetof(obspam_report_row, exceeded) != 48 ||
      offsetof(obspam_report_row, window) != 56)
    return 11;
  if (sizeof(obspam_notice) != 104 || offsetof(obspam_notice, limit) != 32 ||
      offsetof(obspam_notice, period_end) != 80 ||
      offsetof(obspam_notice, exceeded) != 88 ||
      offsetof(obspam_notice, window) != 96)
    return 12;
#endif

  /* The library loaded is the one the header describes. */
  if (obspam_version() != OBSPAM_VERSION_NUMBER)
    return 13;
  if (obspam_strerror(OBSPAM_EINVAL) == NULL)
    return 14;
  return 0;
}
