/* SPDX-License-Identifier: MIT */
/*
 * libobspam - outbound spam protection for hosting mail servers.
 *
 * This is the whole public interface of the library, version 1. Everything
 * declared here is part of the stable ABI: names, constant values, structure
 * layouts and the behaviour documented beside each declaration. Later 1.x
 * releases only add functions and append fields at the end of structures.
 *
 * Conventions shared by every function:
 *
 *   - A fallible function returns OBSPAM_OK (0) on success or a negative
 *     OBSPAM_E* code. On failure the engine is unchanged and
 *     obspam_engine_errmsg() says what went wrong in one line.
 *   - Nothing returned by the library needs to be freed by the caller.
 *     Strings passed in are copied; strings handed to callbacks live until
 *     the callback returns.
 *   - Names are ASCII case-insensitive and reported in lower case. A name
 *     is at most OBSPAM_NAME_MAX bytes, not empty, and holds no blanks or
 *     control characters. A mailbox is "local@domain" with exactly one '@'.
 *   - Times are Unix seconds; 0 passed as a time means "now".
 *   - Every function is thread-safe: one engine may be shared by many
 *     threads. Callbacks run on the calling thread and must not call back
 *     into the same engine.
 *   - Every structure starts with struct_size, which the caller sets to the
 *     sizeof the structure it was compiled with; the *_INIT macros do it.
 */
#ifndef OBSPAM_H
#define OBSPAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define OBSPAM_API
#elif defined(__GNUC__) && __GNUC__ >= 4
#define OBSPAM_API __attribute__((visibility("default")))
#else
#define OBSPAM_API
#endif

#define OBSPAM_VERSION_MAJOR 1
#define OBSPAM_VERSION_MINOR 4
#define OBSPAM_VERSION_PATCH 6
#define OBSPAM_VERSION_NUMBER                                                  \
  ((OBSPAM_VERSION_MAJOR << 16) | (OBSPAM_VERSION_MINOR << 8) |                \
   OBSPAM_VERSION_PATCH)

/* The longest name (domain, mailbox, plan, subscription), in bytes. */
#define OBSPAM_NAME_MAX 320

/* Error codes. The X-macro keeps the enum and obspam_strerror() in step. */
#define OBSPAM_ERRNO_MAP(XX)                                                   \
  XX(OK, 0, "success")                                                         \
  XX(ENOMEM, -1, "out of memory")                                              \
  XX(EINVAL, -2, "invalid argument")                                           \
  XX(ENOTFOUND, -3, "no such object")                                          \
  XX(EEXIST, -4, "object already exists")                                      \
  XX(ESYNTAX, -5, "syntax error in configuration")                             \
  XX(EIO, -6, "input/output error")                                            \
  XX(ECORRUPT, -7, "corrupt or foreign state file")                            \
  XX(EVERSION, -8, "state file from a newer version")                          \
  XX(EUNAVAIL, -9, "shared counter store unavailable")

enum obspam_errno {
#define OBSPAM_ERRNO_ENUM_(name, value, text) OBSPAM_##name = value,
  OBSPAM_ERRNO_MAP(OBSPAM_ERRNO_ENUM_)
#undef OBSPAM_ERRNO_ENUM_
      OBSPAM_ERRNO_END_ = -10 /* one past the last code; not part of the ABI */
};

/* Kinds of objects. OBSPAM_SCRIPT appears in reports only. */
enum obspam_kind {
  OBSPAM_SERVER = 0,
  OBSPAM_PLAN = 1,
  OBSPAM_SUBSCRIPTION = 2,
  OBSPAM_DOMAIN = 3,
  OBSPAM_MAILBOX = 4,
  OBSPAM_SCRIPT = 5
};

/* Limit values; any value >= 0 is a count per hour. */
#define OBSPAM_UNLIMITED (-1)
#define OBSPAM_INHERIT (-2)

/* The most recipients one message counts for (added in 1.3): a message
   with more is charged this many. No mail server sends so many in one
   message; the bound keeps every counter the library keeps, and saves and
   loads, far inside 64 bits (a counter saturates at 2^48 per object and
   minute or hour, which is 131,072 such messages). */
#define OBSPAM_RECIPIENTS_MAX 2147483648u

/* Windows of a limit, in seconds (added in 1.3). A verdict and the
   statistics name a window by these values. */
#define OBSPAM_WINDOW_MINUTE 60
#define OBSPAM_WINDOW_HOUR 3600
#define OBSPAM_WINDOW_DAY 86400

/* Verdict actions. */
enum obspam_action {
  OBSPAM_ACCEPT = 0, /* counted and within every limit */
  OBSPAM_REFUSE = 1, /* over a limit, or scripts forbidden: nothing charged */
  OBSPAM_EXEMPT = 2, /* whitelisted client, or an exempt kind of mail */
  OBSPAM_UNKNOWN = 3 /* the sender belongs to no hosted object */
};

/* obspam_message.flags */
#define OBSPAM_MSG_SCRIPT 1u         /* submitted by a local script (uid) */
#define OBSPAM_MSG_FORWARD_LOCAL 2u  /* a forward to a local address */
#define OBSPAM_MSG_FORWARD_REMOTE 4u /* a forward to a remote address */
#define OBSPAM_MSG_MAILING_LIST 8u   /* a mailing-list delivery */
/* A probe before the message is complete (at RCPT time, say): charge
   nothing, but record a refusal as usual. Added in 1.0 beside API.md. */
#define OBSPAM_MSG_PROBE 16u

/* Options for obspam_set_option() / obspam_get_option(). */
enum obspam_option {
  OBSPAM_OPT_ENABLED = 1,    /* 0 or 1; default 1 */
  OBSPAM_OPT_COUNT_UNIT = 2, /* 0 recipients (default), 1 messages */
  OBSPAM_OPT_ACTION = 3,     /* 0 defer (default), 1 reject */
  /* Unauthenticated mail charged to its envelope sender: 0 never, 1 from
     any client, 2 (the default since 1.3) only local submissions and
     clients inside a local network (obspam_local_network_add). */
  OBSPAM_OPT_COUNT_UNAUTHENTICATED = 4,
  OBSPAM_OPT_COUNT_FORWARD_LOCAL = 5,  /* 0 or 1; default 0 */
  OBSPAM_OPT_COUNT_FORWARD_REMOTE = 6, /* 0 or 1; default 1 */
  OBSPAM_OPT_COUNT_MAILING_LISTS = 7,  /* 0 or 1; default 0 */
  OBSPAM_OPT_RETENTION_HOURS = 8,      /* 1 .. 87600; default 720 */
  OBSPAM_OPT_NOTIFY_PERIOD = 9,        /* seconds, 60 .. 2678400; 3600 */
  OBSPAM_OPT_NOTIFY_IMMEDIATE = 10,    /* 0 or 1; default 0 */
  /* Added in 1.1, for a shared counter store (obspam_set_store): */
  OBSPAM_OPT_STORE_TIMEOUT_MS = 11, /* 1 .. 60000; default 200 */
  OBSPAM_OPT_STORE_FALLBACK = 12,   /* 0 local (default), 1 defer */
  /* Added in 1.3: how many implicit mailboxes (logins and senders of a
     hosted domain that the configuration does not declare) may exist at
     once; 0 .. 100000000, default 100000. */
  OBSPAM_OPT_IMPLICIT_MAILBOXES = 13
};

typedef struct obspam_engine obspam_engine;

/* One outgoing message, as an adapter saw it. */
typedef struct obspam_message {
  uint32_t struct_size;
  uint32_t flags;             /* OBSPAM_MSG_* */
  const char *sasl_username;  /* NULL or "" when not authenticated */
  const char *sender;         /* envelope sender; a forward: the forwarder */
  const char *client_address; /* IPv4/IPv6 text; NULL or "" when local */
  uint32_t recipients;        /* >= 1; counted as at most
                                 OBSPAM_RECIPIENTS_MAX */
  int64_t uid;                /* system user of a script, -1 unknown */
  const char *domain_hint;    /* virtual host of a script, NULL unknown */
  const char *script;         /* script path for reports, NULL unknown */
  int64_t time;               /* 0 = now */
} obspam_message;

/* The answer to one message. A refusal names the charged object and
   window that keep the message out longest: one the message can never
   fit (a count larger than the window's limit, or more recipients than
   the cap) first, then the longest wait; among equal waits the highest
   level, then the longer window. The recipients cap counts as the lowest
   charged object's shortest window; a refusal for it gives the cap as
   limit and the message's recipients as count. An accept names the
   lowest charged object and its hour. */
typedef struct obspam_verdict {
  uint32_t struct_size;
  int32_t action;      /* OBSPAM_ACCEPT / REFUSE / EXEMPT / UNKNOWN */
  int32_t kind;        /* refusing object's kind; on accept the charged one's */
  int64_t limit;       /* that object's effective limit in the window named */
  int64_t count;       /* its count in that window before this message */
  int64_t retry_after; /* seconds until it would fit; -1 never; 0 on accept */
  char object[328];    /* that object's name, NUL-terminated */
  /* Added in 1.3: */
  int64_t window; /* seconds of the window named (OBSPAM_WINDOW_*); 0 for
                     the recipients cap or forbidden scripts, and on
                     EXEMPT and UNKNOWN; 3600 on accept */
} obspam_verdict;

/* Live status of one object. A refusal counts as refused on every charged
   object, and as exceeded ("over the limit") only on those whose own
   limit the message did not fit (for forbidden scripts: the
   subscription). */
typedef struct obspam_stats {
  uint32_t struct_size;
  /* 1 while protection is off or a one-recipient message through this
     object would fit every window of it and of every ancestor
     (blocked_kind -1; the recipients cap is no window). Before 1.3:
     while count < limit. */
  int32_t sending;
  int64_t limit;         /* effective limit of the hour window */
  int64_t count;         /* charged in the last 60 minutes */
  int64_t refused;       /* attempts refused in the last 60 minutes */
  int64_t refused_total; /* attempts refused within the retention period */
  int64_t last_refused;  /* time of the last refusal; 0 = never */
  /* Added in 1.3: */
  int64_t exceeded;       /* attempts over its own limit, last 60 minutes */
  int64_t exceeded_total; /* the same within the retention period */
  /* The minute and day windows: effective limits (-1: unlimited) and
     what was charged in the last 60 seconds (twelve 5-second buckets) and
     in the current clock hour and the 23 before it. */
  int64_t limit_minute, count_minute;
  int64_t limit_day, count_day;
  /* -1 while a one-recipient message through this object would fit every
     window of it and of its ancestors; else the kind of the highest
     object (itself or an ancestor) with a window it would not fit. */
  int32_t blocked_kind;
  int32_t disabled;     /* 1 while protection is off */
  char blocked_by[328]; /* that object's name; "" when none */
  int64_t last_reset;   /* time of the last obspam_reset; 0 = never */
  /* Added in 1.4: the current clock hour's forwards and mailing-list
     deliveries (exempt or charged), as a report row of that hour has
     them. */
  int64_t forwarded;
  int64_t list_deliveries;
} obspam_stats;

/* One row of a report. */
typedef struct obspam_report_row {
  uint32_t struct_size;
  int32_t kind;     /* OBSPAM_SUBSCRIPTION, DOMAIN, MAILBOX or SCRIPT */
  const char *name; /* lower case; a script's path as it was given */
  int64_t sent;     /* charged in the period */
  int64_t refused;  /* attempts refused in the period */
  /* Times of the first and last attempt over the object's own limit in
     the period (since 1.3; a script: of its first and last refusal); 0
     when none. */
  int64_t first_refused, last_refused;
  /* Added in 1.3: */
  int64_t exceeded; /* attempts over the object's own limit in the period */
  /* The window (OBSPAM_WINDOW_*) of the last attempt over its own limit
     in the period; 0 for the recipients cap, for forbidden scripts, and
     when there was none. */
  int64_t window;
  /* A script's row: the uid of the last message from that path (-1
     unknown) and the subscription behind it: the one that owns that uid
     when the report is made, else the unknown-uid subscription
     (obspam_set_unknown_uid_subscription), else NULL; with a shared
     Redis store, the subscription its mail was charged to, and uid -1.
     NULL and -1 in other rows. */
  const char *subscription;
  int64_t uid;
  /* Added in 1.4: of sent, the messages charged as forwards
     (OBSPAM_MSG_FORWARD_LOCAL or _REMOTE) in the period; and the
     mailing-list deliveries (OBSPAM_MSG_MAILING_LIST) made through this
     object in the period, exempt or charged (those charged are part of
     sent too). In the object's count unit, as sent. */
  int64_t forwarded;
  int64_t list_deliveries;
} obspam_report_row;

/* A notice: an object went over its own limit during a notification
   period (since 1.3; before, any refusal made one). */
typedef struct obspam_notice {
  uint32_t struct_size;
  int32_t kind;             /* OBSPAM_SUBSCRIPTION, DOMAIN or MAILBOX */
  const char *name;         /* the object, lower case */
  const char *subscription; /* its owning subscription, NULL if none */
  const char *contact;      /* that subscription's contact, NULL if none */
  int64_t limit;         /* its effective limit at its last attempt over it */
  int64_t sent, refused; /* charged and refused in the period */
  /* The first and last attempt over its limit in the period. */
  int64_t first_refused, last_refused;
  int64_t period_start, period_end; /* [start, end) */
  /* Added in 1.3: */
  int64_t exceeded; /* attempts over its own limit in the period (> 0) */
  /* The window (OBSPAM_WINDOW_*) of limit; 0 when limit is the recipients
     cap or the attempt was a forbidden script's. */
  int64_t window;
} obspam_notice;

#define OBSPAM_MESSAGE_INIT                                                    \
  { sizeof(obspam_message), 0, NULL, NULL, NULL, 1, -1, NULL, NULL, 0 }
#define OBSPAM_VERDICT_INIT                                                    \
  { sizeof(obspam_verdict), 0, 0, 0, 0, 0, {0}, 0 }
#define OBSPAM_STATS_INIT                                                      \
  {                                                                            \
    sizeof(obspam_stats), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1, 0, {0}, 0,   \
        0, 0                                                                   \
  }
#define OBSPAM_REPORT_ROW_INIT                                                 \
  { sizeof(obspam_report_row), 0, NULL, 0, 0, 0, 0, 0, 0, NULL, -1, 0, 0 }
#define OBSPAM_NOTICE_INIT                                                     \
  { sizeof(obspam_notice), 0, NULL, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/* ---- Version and errors ------------------------------------------------ */

/* (MAJOR << 16) | (MINOR << 8) | PATCH of the library actually loaded;
   compare it with OBSPAM_VERSION_NUMBER to detect a mismatch. */
OBSPAM_API unsigned int obspam_version(void);
/* "MAJOR.MINOR.PATCH" */
OBSPAM_API const char *obspam_version_string(void);
/* A static description of an OBSPAM_E* code; unknown codes are described
   as such. Never NULL. */
OBSPAM_API const char *obspam_strerror(int err);
/* "server", "plan", "subscription", "domain", "mailbox" or "script" for
   an OBSPAM_* kind; "unknown kind" for anything else. Never NULL. Added
   in 1.3. */
OBSPAM_API const char *obspam_kind_name(int kind);

/* ---- The engine -------------------------------------------------------- */

/* Creates an engine that limits nothing: the server defaults are unlimited,
   scripts are allowed and every option has its default. */
OBSPAM_API int obspam_engine_new(obspam_engine **out);
/* Frees an engine and everything it holds. NULL is fine. */
OBSPAM_API void obspam_engine_free(obspam_engine *e);
/* The last failure on this engine in one line ("" when none). When threads
   share an engine, the line belongs to whichever call failed last; the
   returned code is always exact. Never NULL. The pointer is the engine's
   own buffer, which a failure in another thread rewrites in place: a
   program that shares an engine between threads reads a line cut in two
   or mixed with another unless it uses obspam_engine_errmsg_r(). */
OBSPAM_API const char *obspam_engine_errmsg(const obspam_engine *e);
/* Copies the last failure on this engine (as obspam_engine_errmsg() has
   it) into buf, under the lock a failure takes to write it, so the copy
   is always one whole line even while other threads fail on the same
   engine. At most size - 1 bytes and a NUL are written; a message is
   shorter than 512 bytes, so a buffer of 512 always holds it whole. A
   NULL engine gives "no engine". OBSPAM_OK, or OBSPAM_EINVAL (nothing
   written) when buf is NULL or size is 0. Added in 1.3. */
OBSPAM_API int obspam_engine_errmsg_r(const obspam_engine *e, char *buf,
                                      size_t size);

OBSPAM_API int obspam_set_option(obspam_engine *e, int option, int64_t value);
OBSPAM_API int obspam_get_option(obspam_engine *e, int option, int64_t *value);

/* ---- The limit tree ---------------------------------------------------- */

/* Adds an object. parent: NULL for a plan; a plan or NULL for a
   subscription; the owning subscription for a domain (required); NULL or
   the mailbox's own domain for a mailbox, whose domain must be hosted.
   Returns OBSPAM_EEXIST for a duplicate, OBSPAM_ENOTFOUND for an unknown
   parent. A new object inherits every limit. */
OBSPAM_API int obspam_add(obspam_engine *e, int kind, const char *name,
                          const char *parent);
/* Removes an object and its subtree (a plan: its subscriptions; a
   subscription: its domains; a domain: its mailboxes), with their counters.
   An object added again later starts from zero. */
OBSPAM_API int obspam_remove(obspam_engine *e, int kind, const char *name);
/* Sets one limit of an object. which: OBSPAM_MAILBOX, OBSPAM_DOMAIN or
   OBSPAM_SUBSCRIPTION. kind OBSPAM_SERVER (name NULL) sets a server default
   (OBSPAM_INHERIT is not allowed there); OBSPAM_PLAN and
   OBSPAM_SUBSCRIPTION take all three (a subscription's own limit and the
   defaults of its domains and mailboxes); OBSPAM_DOMAIN takes DOMAIN (its
   own) and MAILBOX (its mailboxes' default); OBSPAM_MAILBOX takes MAILBOX.
   per_hour: a count >= 0, OBSPAM_UNLIMITED or OBSPAM_INHERIT. */
OBSPAM_API int obspam_set_limit(obspam_engine *e, int kind, const char *name,
                                int which, int64_t per_hour);
/* The limit that applies to a subscription, domain or mailbox: its own
   value, else the nearest ancestor's, else the server default. */
OBSPAM_API int obspam_effective_limit(obspam_engine *e, int kind,
                                      const char *name, int64_t *per_hour);
/* Windows and the recipients cap (added in 1.3). Each of the three
   limits has a minute, an hour and a day window, each set and inherited
   on its own (an object's own value, else its nearest ancestor's for that
   kind and window, else the server default); obspam_set_limit and
   obspam_effective_limit are the hour window. window: OBSPAM_WINDOW_MINUTE,
   OBSPAM_WINDOW_HOUR or OBSPAM_WINDOW_DAY (anything else: OBSPAM_EINVAL);
   kind, name, which and limit as for obspam_set_limit. */
OBSPAM_API int obspam_set_window_limit(obspam_engine *e, int kind,
                                       const char *name, int which,
                                       int64_t window, int64_t limit);
OBSPAM_API int obspam_effective_window_limit(obspam_engine *e, int kind,
                                             const char *name, int64_t window,
                                             int64_t *limit);
/* The cap on the recipients of one message, for kind OBSPAM_SERVER (name
   NULL; not OBSPAM_INHERIT), OBSPAM_PLAN, OBSPAM_SUBSCRIPTION,
   OBSPAM_DOMAIN or OBSPAM_MAILBOX: a count >= 0, OBSPAM_UNLIMITED (the
   server's default) or OBSPAM_INHERIT (every other object's default).
   It is inherited down the tree as a limit is, and the cap of the lowest
   charged object (the mailbox; a script's domain or subscription)
   applies: a message with more recipients is refused whole, whatever
   the count unit. */
OBSPAM_API int obspam_set_max_recipients(obspam_engine *e, int kind,
                                         const char *name, int64_t max);
/* The cap that applies to a subscription, domain or mailbox. */
OBSPAM_API int obspam_effective_max_recipients(obspam_engine *e, int kind,
                                               const char *name, int64_t *max);
/* The system user whose scripts are charged to a subscription; one uid
   belongs to at most one subscription (OBSPAM_EEXIST otherwise). -1
   removes it. */
OBSPAM_API int obspam_set_uid(obspam_engine *e, const char *subscription,
                              int64_t uid);
/* Whether local scripts may send: 1, 0 or OBSPAM_INHERIT, for kind
   OBSPAM_SERVER (name NULL, default 1, not INHERIT), OBSPAM_PLAN or
   OBSPAM_SUBSCRIPTION. */
OBSPAM_API int obspam_set_scripts_allowed(obspam_engine *e, int kind,
                                          const char *name, int allowed);
/* The address notified about a subscription; NULL or "" removes it. */
OBSPAM_API int obspam_set_contact(obspam_engine *e, const char *subscription,
                                  const char *email);

/* ---- The whitelist ----------------------------------------------------- */

/* "192.0.2.0/24", "2001:db8::/32" or one address. Host bits beyond the
   prefix are an error. An IPv4 entry also matches the IPv4-mapped IPv6
   form of its addresses (::ffff:192.0.2.1). */
OBSPAM_API int obspam_whitelist_add(obspam_engine *e, const char *cidr);
OBSPAM_API int obspam_whitelist_remove(obspam_engine *e, const char *cidr);

/* ---- Local networks (added in 1.3) ------------------------------------- */

/* The networks whose unauthenticated mail is outgoing mail, charged to
   its envelope sender under OBSPAM_OPT_COUNT_UNAUTHENTICATED 2: written
   and matched as the whitelist is. While none is added, 127.0.0.0/8 and
   ::1 are the local networks. */
OBSPAM_API int obspam_local_network_add(obspam_engine *e, const char *cidr);
OBSPAM_API int obspam_local_network_remove(obspam_engine *e, const char *cidr);

/* ---- Forwards and mailing lists (added in 1.3) -------------------------

   A forward is a hosted address that redirects its mail, to a hosted
   mailbox (local) or outside (remote): each message that arrives for it
   is one new message sent by that address's mailbox. A mailing list
   posts with its address, or its -bounces form, as envelope sender. The
   engine keeps both, as a configuration file's `forward` and `list`
   lines declare them (a load replaces them with the file's), so that
   every adapter recognises the same messages; obspam_decide itself only
   reads the flags an adapter sets from these answers. */

/* Declares address a forward: "local@domain", or "@domain" for a
   catch-all (the domain's mail for addresses that are neither forwards
   of their own nor declared mailboxes). remote: 1 when it redirects
   outside (OBSPAM_MSG_FORWARD_REMOTE), 0 to a hosted mailbox
   (OBSPAM_MSG_FORWARD_LOCAL). The domain must be hosted. OBSPAM_EINVAL
   for a bad address or remote, OBSPAM_ENOTFOUND for an unknown domain,
   OBSPAM_EEXIST when address is a forward already (remove it first to
   change its kind). */
OBSPAM_API int obspam_forward_add(obspam_engine *e, const char *address,
                                  int remote);
/* OBSPAM_ENOTFOUND when address is no forward. */
OBSPAM_API int obspam_forward_remove(obspam_engine *e, const char *address);
/* What a message to the recipient address is: *flag gets
   OBSPAM_MSG_FORWARD_LOCAL or OBSPAM_MSG_FORWARD_REMOTE for a forward,
   0 otherwise (also for an address that is no valid name), and mailbox
   (size bytes, at least OBSPAM_NAME_MAX + 1) the name to decide the
   forward as: the message's sender, in lower case, with the flag set
   and no SASL login: the address itself, or the domain of a catch-all.
   OBSPAM_OK, or OBSPAM_EINVAL for a NULL argument or a smaller buffer. */
OBSPAM_API int obspam_forward_lookup(obspam_engine *e, const char *address,
                                     uint32_t *flag, char *mailbox,
                                     size_t size);

/* Declares the posting address of a mailing list ("news@example.com",
   whose domain must be hosted). OBSPAM_EINVAL, OBSPAM_ENOTFOUND for an
   unknown domain, OBSPAM_EEXIST when declared already. */
OBSPAM_API int obspam_mailing_list_add(obspam_engine *e, const char *address);
/* OBSPAM_ENOTFOUND when address is no list. */
OBSPAM_API int obspam_mailing_list_remove(obspam_engine *e,
                                          const char *address);
/* Whether a message with envelope sender `sender` from client_address
   (NULL or "" for a local submission) is a list delivery: *match gets 1
   when sender is a declared list's address or its -bounces form with an
   optional +tag ("news-bounces+x=y@example.com") and the message comes
   from a local network or is a local submission (a client elsewhere
   cannot use a list's name to escape its limits); 0 otherwise. Set
   OBSPAM_MSG_MAILING_LIST then. OBSPAM_OK, or OBSPAM_EINVAL for a NULL
   argument or a client address that is not an IP address. */
OBSPAM_API int obspam_mailing_list_match(obspam_engine *e, const char *sender,
                                         const char *client_address,
                                         int *match);

/* ---- The configuration file -------------------------------------------- */

/* Replaces the options, the limit tree and the whitelist with those of a
   configuration file (see "Configuration file" in the documentation) in
   one step: a decision running at the same time sees the old
   configuration or the new one, never a mixture, and is not held up while
   the file is parsed. An option, server default or whitelist entry the
   file does not give returns to its default. Every object that exists
   before and after (same kind and name) keeps its counters and history,
   even when it moved to another parent; the others lose theirs.
   On any error nothing changes and obspam_engine_errmsg() says
   "FILE:LINE: what is wrong": OBSPAM_ESYNTAX for an error in the text,
   OBSPAM_EIO ("FILE: cannot open: ...") when the file cannot be read. */
OBSPAM_API int obspam_load_config(obspam_engine *e, const char *path);
/* The same for a configuration held in a string; messages name it
   "<string>". */
OBSPAM_API int obspam_load_config_string(obspam_engine *e, const char *text);

/* ---- Deciding ---------------------------------------------------------- */

/* Decides one message and, when it is accepted, charges it to every
   charged object at once; see "Decision semantics" in the documentation.
   A refusal charges nothing and is recorded in the statistics. */
OBSPAM_API int obspam_decide(obspam_engine *e, const obspam_message *msg,
                             obspam_verdict *out);

/* The verdict obspam_decide would give msg now, without charging or
   recording anything and without moving the engine's clock: for an early
   answer (at RCPT time, say) before the message is complete. Immediate
   notices are not sent and the script path is not recorded. Added in
   1.0 beside the functions of API.md. */
OBSPAM_API int obspam_check(obspam_engine *e, const obspam_message *msg,
                            obspam_verdict *out);

/* Decides n messages in order, each exactly as obspam_decide would
   (rc[i] is what obspam_decide returns for msgs[i] into out[i]), and
   faster when there are several: the objects of a few messages at a time
   are looked up ahead of deciding them, so that their cache misses
   overlap instead of following one another, and the locks are taken once
   for them. For an adapter that holds several complete messages at once.
   The messages are not one transaction: other threads may decide between
   them. Returns OBSPAM_OK when every message was decided, else the first
   rc[i] that is not (obspam_engine_errmsg tells the last failure);
   OBSPAM_EINVAL, with nothing decided, when n > 0 and an array is NULL.
   Added in 1.2. */
OBSPAM_API int obspam_decide_batch(obspam_engine *e,
                                   const obspam_message *const *msgs,
                                   obspam_verdict *const *out, int *rc,
                                   size_t n);

/* Per message of obspam_decide_start: decide it as obspam_check does
   (nothing charged). */
#define OBSPAM_DECIDE_DRY 1u

/* Decides msgs[0..n) as obspam_decide_batch does (a message whose how[i]
   has OBSPAM_DECIDE_DRY as obspam_check does; how may be NULL), without
   making the caller wait for a shared store, then calls done(arg) once,
   after every out[i] and rc[i] is written. For an adapter with an event
   loop. When the counters are in this process's memory, the messages are
   decided and done is called in the caller's thread before this function
   returns. With a shared store (store redis://...) they are queued for
   the engine's own threads, which send each batch to the store in one
   round trip; done is then called on one of those threads, and it should
   only hand the results over (write to a pipe or an eventfd, say).
   The messages, their strings, out, rc and how must stay valid until
   done is called. obspam_engine_free waits for the batches queued.
   Returns OBSPAM_OK when done will be (or was) called; otherwise nothing
   was decided and done is never called: OBSPAM_EINVAL when e or done is
   NULL or n > 0 and an array is NULL, OBSPAM_ENOMEM. Added in 1.4. */
OBSPAM_API int obspam_decide_start(obspam_engine *e,
                                   const obspam_message *const *msgs,
                                   obspam_verdict *const *out, int *rc,
                                   const uint32_t *how, size_t n,
                                   void (*done)(void *arg), void *arg);

/* Live status of a subscription, domain or mailbox at time now (0 = now).
   Fields appended in 1.3 are written only when out->struct_size holds
   them. */
OBSPAM_API int obspam_stats_get(obspam_engine *e, int kind, const char *name,
                                int64_t now, obspam_stats *out);

/* ---- History and reports ----------------------------------------------- */

/* Hourly history of a subscription, domain, mailbox or script (kind
   OBSPAM_SCRIPT, name its path): fn is called for each clock hour that
   overlaps [from, to), lies within the retention period and had activity,
   oldest first, with what was charged and refused in that hour. */
OBSPAM_API int obspam_history(obspam_engine *e, int kind, const char *name,
                              int64_t from, int64_t to,
                              void (*fn)(int64_t hour_start, int64_t sent,
                                         int64_t refused, void *ud),
                              void *ud);

/* Where spam comes from, over the clock hours that overlap [from, to):
   first every subscription, domain and mailbox that went over its own
   limit (exceeded > 0), most such attempts first, ties by name; then
   every script path with activity, most messages sent first, then most
   refused, ties by name. An object refused only because of another one
   (an ancestor over its limit, forbidden scripts) is not listed. fn is
   called once per row. (Before 1.3: every object with refusals, most
   refusals first, the scripts among them.) */
OBSPAM_API int obspam_report(obspam_engine *e, int64_t from, int64_t to,
                             void (*fn)(const obspam_report_row *row, void *ud),
                             void *ud);

/* ---- Panels (added in 1.3) --------------------------------------------- */

/* obspam_enumerate flags: only objects with activity, that is a count
   in their day window or a refusal in the last 60 minutes. */
#define OBSPAM_ENUM_ACTIVE 1u

/* Calls fn, in name order (the bytes of the lower-case names), for the
   objects of kind (OBSPAM_SUBSCRIPTION, OBSPAM_DOMAIN or OBSPAM_MAILBOX,
   implicit mailboxes included) that sort after `after` (NULL or "": from
   the first), that lie under `parent` when it is not NULL (an object of
   a higher kind: a plan, subscription or domain; the name is looked up
   from the kind just above kind upwards, so a mailbox's parent is a
   domain before a subscription or plan of the same name), and that
   flags admit, at most max of them (0: no bound), each with its status
   at now (0 = now) as obspam_stats_get gives it. fn returns 0 to go on,
   anything else to stop. The engine is held for one call only, and
   within it for at most 1024 objects at a time: a panel pages through a
   million mailboxes by calling again with after = the last name it was
   given (any text is a cursor, compared with the lower-case names).
   OBSPAM_EINVAL for another kind, unknown flags, a NULL fn, a negative
   time, a malformed parent or an after longer than OBSPAM_NAME_MAX;
   OBSPAM_ENOTFOUND for an unknown parent. */
OBSPAM_API int obspam_enumerate(obspam_engine *e, int kind, const char *parent,
                                uint32_t flags, const char *after, size_t max,
                                int64_t now,
                                int (*fn)(int kind, const char *name,
                                          const obspam_stats *st, void *ud),
                                void *ud);

/* The top senders over the clock hours that overlap [from, to), whether
   or not they hit a limit: the n rows (0: all) of kind (OBSPAM_SUBSCRIPTION,
   DOMAIN, MAILBOX or SCRIPT; -1: every kind) that sent most, most sent
   first, then most refused, ties by kind and name; rows as obspam_report
   gives them. OBSPAM_EINVAL for another kind or a NULL fn. */
OBSPAM_API int obspam_top(obspam_engine *e, int kind, int64_t from, int64_t to,
                          size_t n,
                          void (*fn)(const obspam_report_row *row, void *ud),
                          void *ud);

/* Empties every window of a subscription, domain or mailbox (after a
   password change, say) at now (0 = now): it may send its whole limit
   again. Its day window starts at the reset. Its ancestors keep their
   counts; its history and totals keep what happened; the time of the
   reset is the stats' last_reset. Snapshots keep it and the journal
   records it. With a shared counter store (obspam_set_store) the reset
   is made there, for every server sharing it; OBSPAM_EUNAVAIL, with
   nothing reset, when that store does not answer. OBSPAM_ENOTFOUND for
   an unknown object; OBSPAM_EINVAL for another kind or a negative
   time. */
OBSPAM_API int obspam_reset(obspam_engine *e, int kind, const char *name,
                            int64_t now);

/* The subscription charged for mail of a local script whose uid no
   subscription owns, under its own limits (NULL or "": none, the
   default). The `unknown-uid-subscription NAME` line of a configuration
   file sets it too; a load without the line clears it. Without one such
   mail is OBSPAM_UNKNOWN and charged to nothing, but the in-memory store
   keeps it as a script row (obspam_report, obspam_top, obspam_history):
   named by its path, or "uid N" when it has none, with uid N and
   subscription NULL. OBSPAM_ENOTFOUND for an unknown subscription. */
OBSPAM_API int obspam_set_unknown_uid_subscription(obspam_engine *e,
                                                   const char *subscription);

/* ---- Notifications ----------------------------------------------------- */

/* Registers the callback that receives notices (NULL: none). Periods are
   aligned to multiples of OBSPAM_OPT_NOTIFY_PERIOD seconds. */
OBSPAM_API int obspam_set_notify(obspam_engine *e,
                                 void (*fn)(const obspam_notice *n, void *ud),
                                 void *ud);
/* Emits one notice per object that went over its own limit in every
   period that ended at or before now (0 = now) and was not flushed yet;
   nothing for quiet periods, nothing about objects that were only
   refused because of another one, and nothing twice. With
   OBSPAM_OPT_NOTIFY_IMMEDIATE an object's first attempt over its limit
   in a period is also notified at once, from obspam_decide. The callback
   runs with no engine lock held. */
OBSPAM_API int obspam_notify_flush(obspam_engine *e, int64_t now);

/* ---- A shared counter store (added in 1.1) ----------------------------- */

/* Keeps the counters in Redis, shared by every engine (every mail server)
   that names the same Redis: uri is "redis://HOST:PORT[/DB]" or
   "sentinel://HOST:PORT[,HOST:PORT...]/MASTER", either followed by
   "?pool=N" (the connections this engine keeps, 1 to 64, default 4; since
   1.4; "redis-cluster://" is refused); NULL or "" goes back to the
   in-memory counters. prefix (NULL: "obspam:") starts every key. Batches
   that obspam_decide_start queued are decided first, on the store they
   were queued for. Connections are made as decisions need them; while
   Redis does not answer within OBSPAM_OPT_STORE_TIMEOUT_MS (for a free
   connection, a connect or an answer), decisions use this engine's own
   in-memory counters (OBSPAM_OPT_STORE_FALLBACK 0) or fail with
   OBSPAM_EUNAVAIL (1), and Redis is tried again every second.
   OBSPAM_EINVAL for a malformed uri, or when the library was built
   without Redis support. A `store` line in a configuration file does the
   same; a configuration without one goes back to memory only when the
   store came from a configuration. */
OBSPAM_API int obspam_set_store(obspam_engine *e, const char *uri,
                                const char *prefix);
/* The state of the shared store: *shared 1 when one is set, *up 1 while
   it answers, *episodes the number of times it stopped answering, and
   *fallback_decisions the decisions made without it. Any pointer may be
   NULL. With no shared store all are 0. */
OBSPAM_API int obspam_store_status(obspam_engine *e, int64_t *shared,
                                   int64_t *up, int64_t *episodes,
                                   int64_t *fallback_decisions);

/* What a shared store still owes Redis (added in 1.4). While Redis did
   not answer, the decisions accepted on this engine's own counters
   (OBSPAM_OPT_STORE_FALLBACK 0) are kept in a ledger, with the exempt
   mailing-list deliveries made meanwhile (since 1.4.1), at most 65536
   records, and added to Redis once it answers again, so that the limits
   and reports count them there too: *ledger_pending the records waiting,
   *ledger_added those added since the store was set, *ledger_dropped
   those that did not fit in the ledger (only this engine counted them).
   A reload's dropped objects have their keys deleted in Redis in the
   background: *keys_pending the keys waiting, *keys_deleted those
   deleted. Any pointer may be NULL; with no shared store all are 0. */
OBSPAM_API int obspam_store_backlog(obspam_engine *e, int64_t *ledger_pending,
                                    int64_t *ledger_added,
                                    int64_t *ledger_dropped,
                                    int64_t *keys_pending,
                                    int64_t *keys_deleted);

/* ---- Implicit mailboxes (added in 1.3) --------------------------------- */

/* *count: the implicit mailboxes that exist now; *overflow: the decisions
   that found the cap (OBSPAM_OPT_IMPLICIT_MAILBOXES) reached and charged
   the domain and subscription without a mailbox, since the engine was
   made; *episodes: how many times the cap was reached. Any pointer may be
   NULL. */
OBSPAM_API int obspam_implicit_status(obspam_engine *e, int64_t *count,
                                      int64_t *overflow, int64_t *episodes);

/* ---- Persistence ------------------------------------------------------- */

/* Writes counters, history and notification progress to path atomically
   (a temporary file in the same directory, fsync, rename, fsync of the
   directory), with a format version and a checksum. The temporary files
   that saves killed before their rename left beside path
   (path.tmp.XXXXXX) are removed first; so does obspam_state_load, even
   when path itself does not exist. */
OBSPAM_API int obspam_state_save(obspam_engine *e, const char *path);
/* Restores a saved state for the objects of the engine that exist by kind
   and name, and ignores the rest; objects absent from the file start from
   zero. A truncated, corrupted, empty or foreign file gives
   OBSPAM_ECORRUPT, a newer format OBSPAM_EVERSION, an unreadable one
   OBSPAM_EIO; on any error the engine is unchanged. */
OBSPAM_API int obspam_state_load(obspam_engine *e, const char *path);

/* ---- The journal (added in 1.3) ------------------------------------------

   A snapshot holds what was counted when it was written; the journal holds
   what was decided since, so that a process killed at any moment loses no
   count. It is the file state_path.journal beside the state file, and a
   second one, state_path.journal.next, while a save is under way.

   Once a journal is open, every decision that changes the counters is
   recorded in memory as part of the decision itself: accepted messages
   (their recipients or the message), refused ones and refused probes
   (the statistics count refusals), with the objects charged, the time and
   the verdict. Checks, probes that are accepted, and exempt, whitelisted
   and unknown senders change nothing and are not recorded; neither are
   decisions made by a shared counter store (obspam_set_store: it keeps
   the counters itself), nor notices sent. obspam_journal_flush writes the
   recorded decisions in one write; call it before the answers leave (a
   daemon: once per round of its event loop). A record that no flush wrote
   is written when 256 KiB of them wait.

   obspam_state_save(e, state_path) cuts the journal at the moment it
   copies the counters and replaces it by the records made after that
   moment once the snapshot is in place; a save to another path leaves
   the journal alone. */

/* obspam_journal_open flags. OBSPAM_JOURNAL_FSYNC: each flush waits for
   the disk (fdatasync). */
#define OBSPAM_JOURNAL_FSYNC 1u

/* Opens (or creates, mode 0600) the journal of state_path and replays into
   the engine every decision it holds that the state file on disk does not:
   call it after obspam_state_load(e, state_path), or on a fresh engine
   when there is no state file. A last record cut short by a crash is
   ignored. Records of a journal that belongs to another snapshot (an older
   one put back, or a state file that could not be loaded) are not
   replayed: *ignored counts them. *replayed (either pointer may be NULL)
   counts the decisions replayed; a decision whose objects are gone from
   the configuration charges those that remain.

   Without OBSPAM_JOURNAL_FSYNC, a process that dies loses nothing that a
   flush wrote, and a power loss what the kernel had not written yet; with
   it, each flush is on the disk when it returns.

   OBSPAM_EINVAL when a journal is open already, OBSPAM_ECORRUPT when the
   file is not a journal, OBSPAM_EVERSION for a newer format, OBSPAM_EIO
   when it cannot be read or written. OBSPAM_ENOMEM may leave some of the
   decisions replayed: calling it again replays the rest, and ends where a
   call that never failed ends. Thread-safe, like every function here. */
OBSPAM_API int obspam_journal_open(obspam_engine *e, const char *state_path,
                                   unsigned flags, int64_t *replayed,
                                   int64_t *ignored);
/* Writes the decisions recorded since the last flush to the journal in one
   write (and, with OBSPAM_JOURNAL_FSYNC, waits for the disk). OBSPAM_OK
   also when no journal is open or nothing waits. OBSPAM_EIO when the file
   does not take them: they stay in memory for the next flush, and the
   file is cut back to its last whole record. At most 256 KiB of records
   wait; past that the oldest are dropped from the journal (not from the
   counters: only the next obspam_state_save puts them in a file), and the
   first flush that writes again answers OBSPAM_EIO with how many. */
OBSPAM_API int obspam_journal_flush(obspam_engine *e);
/* Flushes and closes the journal; its file stays for the next
   obspam_journal_open. OBSPAM_OK when none is open. obspam_engine_free
   closes it too. */
OBSPAM_API int obspam_journal_close(obspam_engine *e);

#ifdef __cplusplus
}
#endif

#endif /* OBSPAM_H */
