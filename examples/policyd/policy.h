/* SPDX-License-Identifier: MIT */
/* The Postfix SMTP access policy protocol (SMTPD_POLICY_README): a request
   is a sequence of "name=value" lines ended by an empty line.

   The parser is a pure, incremental function: it reads bytes as they come
   (one at a time or many requests at once), copies the few attributes the
   policy server needs into fixed-size fields, and never allocates or does
   I/O. That keeps a connection's memory bounded, whatever a client sends,
   and lets a fuzzer drive it directly. */
#ifndef OBSPAM_POLICY_H
#define OBSPAM_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "obspam.h"

/* Limits of one request. A longer line or request, or more attributes, is
   an error: Postfix itself sends about 30 short attributes. Its longest
   line is helo_name with the client's EHLO argument, which Postfix takes
   up to its line_length_limit (2048 bytes with the command and CRLF): a
   line of 2051 bytes, which must not be taken for a malformed request
   (Postfix would defer the client's mail with its default action). */
#define POLICY_LINE_MAX 4096     /* bytes per line, without its newline */
#define POLICY_REQUEST_MAX 65536 /* bytes per request, newlines included */
#define POLICY_ATTRS_MAX 100     /* attributes per request */

/* The attributes that are kept; every other one is read and dropped. */
enum policy_attr {
  POLICY_REQUEST = 0,
  POLICY_PROTOCOL_STATE,
  POLICY_SASL_USERNAME,
  POLICY_SENDER,
  POLICY_CLIENT_ADDRESS,
  POLICY_RECIPIENT_COUNT,
  POLICY_INSTANCE,
  POLICY_QUEUE_ID, /* for the refusal log line */
  /* The recipient at RCPT (and at DATA when the message has only one):
     a forwarding address makes a forward (rules.h). */
  POLICY_RECIPIENT,
  /* Reserved for a local submission, sent by an MTA that knows who
     submitted it (Exim's acl_not_smtp, see examples/exim): the
     submitter's uid and the script's path. Postfix never sends them; the
     server answers them only on a unix: socket, whose peers it checked. */
  POLICY_OBSPAM_UID,
  POLICY_OBSPAM_SCRIPT,
  POLICY_ATTR_COUNT
};

/* Room kept for a value. An address longer than OBSPAM_NAME_MAX is not a
   valid name and can never be hosted, so a cut value of more than
   OBSPAM_NAME_MAX bytes is decided exactly as the whole one would be. */
#define POLICY_VALUE_MAX 400
/* The longest attribute name compared with the kept ones; a longer name
   is an attribute of no interest. */
#define POLICY_NAME_MAX 32

/* A kept attribute. text, len and cut are those of the request only when
   present is set: policy_reset clears present alone. */
typedef struct policy_value {
  char text[POLICY_VALUE_MAX + 1]; /* NUL-terminated, cut when too long */
  uint16_t len;                    /* bytes kept in text */
  uint8_t present;                 /* the attribute was sent */
  uint8_t cut;                     /* the value was longer than text */
} policy_value;

/* What policy_feed returns. */
enum policy_status {
  POLICY_MORE = 0,     /* every byte was consumed; the request goes on */
  POLICY_COMPLETE = 1, /* a request ended (its empty line was consumed) */
  POLICY_ERROR = -1    /* malformed or over a limit: see error */
};

/* One request being read. Set up with policy_reset; the same structure
   reads the following requests of a connection after another reset. */
typedef struct policy_req {
  policy_value attr[POLICY_ATTR_COUNT];
  /* The parser's position. */
  char name[POLICY_NAME_MAX + 1];
  uint16_t name_len;
  int8_t in_value;    /* reading a value (after '=') */
  int8_t name_cut;    /* the name is longer than name[] */
  int8_t pending_cr;  /* a '\r' that a '\n' may follow */
  int8_t failed;      /* an error was returned; reset before reuse */
  int target;         /* the kept attribute being read, or -1 */
  size_t line_len;    /* bytes of the current line so far */
  size_t request_len; /* bytes of the request so far */
  unsigned attrs;     /* attribute lines so far */
  unsigned line;      /* number of the current line, from 1 */
  char error[160];    /* why POLICY_ERROR was returned */
} policy_req;

/* Makes r ready for a new request. */
void policy_reset(policy_req *r);

/* Reads up to len bytes of data and stops after the empty line that ends
   a request. *used gets the bytes consumed: all of them with POLICY_MORE,
   those up to the end of the request with POLICY_COMPLETE (the rest
   belongs to the next request: reset r and feed it), and those up to the
   offending byte with POLICY_ERROR, after which r stays failed until it is
   reset.

   Lines end with "\n"; a "\r" right before it is dropped as well, so that
   a request typed into telnet works. Empty lines before a request's first
   attribute are skipped. Errors: a NUL byte, a line without '=', an empty
   attribute name, a line over POLICY_LINE_MAX bytes, a request over
   POLICY_REQUEST_MAX bytes or POLICY_ATTRS_MAX attributes, and, at its end,
   a request without request=smtpd_access_policy, or with a
   recipient_count that is not a number up to 2^31
   (OBSPAM_RECIPIENTS_MAX) or an obspam_uid that is not a number below
   2^32. An attribute given twice keeps its last value. */
int policy_feed(policy_req *r, const char *data, size_t len, size_t *used);

/* A kept attribute of a complete request: its value, or NULL when it was
   not sent. */
const char *policy_get(const policy_req *r, enum policy_attr a);

/* The SMTP stage a request comes from, as far as the policy server cares. */
enum policy_stage {
  POLICY_STAGE_OTHER = 0, /* CONNECT, HELO, MAIL, VRFY, ETRN, unknown */
  POLICY_STAGE_RCPT,      /* RCPT TO: a probe, nothing charged */
  POLICY_STAGE_DATA,      /* DATA (or BDAT): the message is decided */
  POLICY_STAGE_EOM        /* END-OF-MESSAGE: decided as well */
};

/* Fills m (which the caller initialised with OBSPAM_MESSAGE_INIT) from a
   complete request and returns its stage. m points into r, so r must not
   be reset while m is in use. sasl_username and sender are NULL when
   empty; client_address is NULL when it is empty or not an IPv4 or IPv6
   address (Postfix sends "unknown" when it could not tell), so that it is
   decided as a local submission that no whitelist entry matches;
   recipients is recipient_count at DATA and END-OF-MESSAGE, at least 1,
   and 1 elsewhere. A request with an obspam_uid is a local submission by
   that uid: OBSPAM_MSG_SCRIPT is set, client_address is NULL (a
   whitelist entry for 127.0.0.1 must not exempt scripts) and script is
   obspam_script when it is given and was not cut. Whether the uid may be
   believed is the caller's business (policy_claims_uid). */
enum policy_stage policy_message(const policy_req *r, obspam_message *m);

/* The recipient_count of a complete request as sent (0 when absent or
   empty), whatever the stage: at RCPT, Postfix sends 0 and Exim the
   recipients accepted before this one. */
uint32_t policy_recipient_count(const policy_req *r);

/* Whether a complete request names a submitter's uid (a non-empty
   obspam_uid), which only a trusted peer may do. */
int policy_claims_uid(const policy_req *r);

/* "RCPT", "DATA", ...: the protocol_state as sent, cut to a short length
   for logs, or "-" when there is none. Never NULL. */
const char *policy_state_name(const policy_req *r);

#endif
