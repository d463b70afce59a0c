/*
 * Header test, C++ side: include/obspam.h must compile alone as C++
 * (-std=c++11 -pedantic -Werror -Wall -Wextra) and declare its functions
 * with C linkage, which linking and calling them proves. The *_INIT macros
 * must be valid C++ initialisers.
 *
 * Only obspam.h is included; the exit status is the number of the first
 * check that failed (0 when all pass).
 */
#include "obspam.h"

int main() {
  obspam_message msg = OBSPAM_MESSAGE_INIT;
  obspam_verdict verdict = OBSPAM_VERDICT_INIT;
  obspam_stats stats = OBSPAM_STATS_INIT;
  obspam_report_row row = OBSPAM_REPORT_ROW_INIT;
  obspam_notice notice = OBSPAM_NOTICE_INIT;

  if (msg.struct_size != sizeof(obspam_message) || msg.recipients != 1 ||
      msg.uid != -1 || msg.sender != NULL)
    return 1;
  if (verdict.struct_size != sizeof(obspam_verdict) ||
      verdict.object[0] != '\0')
    return 2;
  if (stats.struct_size != sizeof(obspam_stats) || stats.limit != 0)
    return 3;
  if (row.struct_size != sizeof(obspam_report_row) || row.name != NULL)
    return 4;
  if (notice.struct_size != sizeof(obspam_notice) || notice.contact != NULL)
    return 5;

  /* The enumerations convert to int as the C API expects. */
  int kind = OBSPAM_SUBSCRIPTION;
  int option = OBSPAM_OPT_COUNT_UNIT;
  int64_t limit = OBSPAM_UNLIMITED;
  unsigned int flags = OBSPAM_MSG_FORWARD_REMOTE | OBSPAM_MSG_SCRIPT;
  if (kind != 2 || option != 2 || limit != -1 || flags != 5u ||
      OBSPAM_ENOTFOUND != -3 || OBSPAM_REFUSE != 1)
    return 6;

  /* C linkage: these would not link if the header lacked extern "C". */
  unsigned int (*version)(void) = obspam_version;
  if (version() != OBSPAM_VERSION_NUMBER)
    return 7;
  const char *text = obspam_strerror(OBSPAM_OK);
  if (text == NULL)
    return 8;
  return 0;
}
