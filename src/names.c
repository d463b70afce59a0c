/* SPDX-License-Identifier: MIT */
#include "names.h"

const char *obspam__name_norm(const char *in, int shape, obspam__name *out) {
  size_t i, ats = 0;

  if (in == NULL)
    return "name is missing";
  out->at = 0;
  for (i = 0; in[i] != '\0'; i++) {
    unsigned char c = (unsigned char)in[i];

    if (i == OBSPAM_NAME_MAX)
      return "name is longer than 320 bytes";
    if (c <= 0x20 || c == 0x7f)
      return "name holds a blank or a control character";
    if (c >= 'A' && c <= 'Z')
      c = (unsigned char)(c + ('a' - 'A'));
    else if (c == '@') {
      ats++;
      out->at = i;
    }
    out->s[i] = (char)c;
  }
  out->s[i] = '\0';
  out->len = i;
  if (i == 0)
    return "name is empty";
  if (ats == 0) {
    out->at = i;
    return shape == OBSPAM__NAME_MAILBOX ? "a mailbox needs one '@'" : NULL;
  }
  if (shape == OBSPAM__NAME_PLAIN)
    return "name holds an '@'";
  if (ats != 1)
    return "an address holds more than one '@'";
  if (out->at == 0 || out->at + 1 == i)
    return "an address needs a local part and a domain";
  return NULL;
}
