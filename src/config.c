/* SPDX-License-Identifier: MIT */
/* obspam_load_config and obspam_load_config_string: the configuration file
   of SPEC.md section 7.

   The text is parsed into a fresh configuration (obspam__conf_new) without
   the engine's lock, so decisions go on while a large file is read; only
   when the whole text is valid does obspam__conf_replace swap it in, under
   the write lock, carrying the counters of every object that still exists.
   On any error the fresh configuration is freed and the engine is left
   exactly as it was; only its error message changes.

   The file is read into memory once and split in place: words are
   NUL-terminated where they stand, so a line costs no allocation beyond
   the object it declares.

   Rules where SPEC.md leaves the choice open (the README repeats them):

   - Lines end with "\n" or "\r\n"; the last line needs no line ending. A
     line holds at most 4096 bytes, not counting its line ending. A NUL
     byte anywhere is an error. A UTF-8 byte order mark at the very start
     of the text is skipped.
   - Words are separated by spaces and tabs. A '#' at the start of a word
     starts a comment that runs to the end of the line; a '#' inside a word
     is part of it (a mailbox may be "a#b@example.com"). Blank lines and
     comment lines are ignored.
   - Keywords, keys and fixed values (yes, no, unlimited, inherit, ...) are
     lower case as written in SPEC.md. Names are case-insensitive, as
     everywhere in the library, and follow the same rules as obspam_add
     (at most 320 bytes, no '@' except in a mailbox).
   - Every object is declared before it is referred to; a reference to an
     object declared further down is an error that names the later line.
   - Each option keyword and `default` may appear once; each key at most
     once per line. An option the text does not set has its default value
     after the load; likewise the server defaults, the whitelist and the
     local networks (none: 127.0.0.0/8 and ::1).
   - A number is decimal digits only (leading zeros allowed, no sign) and
     must fit in 64 bits. A limit is such a count, `unlimited` or
     `inherit`; `default` takes no `inherit` (the server has no ancestor)
     and its `scripts=` only yes or no.
   - A limit key's value is one or more window limits separated by commas
     (`20/m,100/h,1000/d`): a limit and an optional window suffix `/m`,
     `/h` or `/d` (lower case), none meaning `/h`. Each window at most once
     in a value, no empty part; a window not named keeps its default
     (inherit; the server's: unlimited). `max-recipients=` takes one
     limit, no window.
   - `uid=N` is a number from 0 to 4294967294 owned by one subscription;
     `contact=` is one address "local@domain" (kept as written), see
     obspam__contact_why.
   - A `domain` needs `subscription=`. A `mailbox` belongs to the domain of
     its address, which must be declared. Duplicates of an object (same
     kind and name) or of a whitelist or local network are errors.
   - `forward ADDRESS local|remote` and `list ADDRESS` name an address of
     a declared domain ("@domain" for a catch-all forward), each once.
   - Errors: OBSPAM_ESYNTAX for anything wrong in the text, OBSPAM_EIO when
     the file cannot be opened or read, OBSPAM_ENOMEM, OBSPAM_EINVAL for a
     NULL argument. The message is "FILE:LINE: what is wrong" ("<string>"
     as FILE for text); an error that belongs to no line (the file cannot
     be opened or read) is "FILE: what is wrong". */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

#define LINE_MAX_BYTES 4096
/* The most words a line of LINE_MAX_BYTES can hold. */
#define WORDS_MAX (LINE_MAX_BYTES / 2 + 1)

/* Keys of KEY=VALUE words. */
enum {
  K_PLAN,
  K_MAILBOX,
  K_DOMAIN,
  K_SUBSCRIPTION,
  K_UID,
  K_SCRIPTS,
  K_CONTACT,
  K_LIMIT,
  K_MAX_RECIPIENTS,
  K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "plan",    "mailbox", "domain", "subscription",  "uid",
    "scripts", "contact", "limit",  "max-recipients"};

#define BIT(k) (1u << (k))

/* The keyword that declares objects of a kind, and the keys it takes.
   Index: OBSPAM_SERVER (the `default` line) to OBSPAM_MAILBOX. */
static const struct {
  const char *keyword;
  const char *what; /* in "unknown key 'x' for ..." */
  unsigned keys;
} decl[OBSPAM_MAILBOX + 1] = {
    [OBSPAM_SERVER] = {"default", "the defaults",
                       BIT(K_MAILBOX) | BIT(K_DOMAIN) | BIT(K_SUBSCRIPTION) |
                           BIT(K_MAX_RECIPIENTS) | BIT(K_SCRIPTS)},
    [OBSPAM_PLAN] = {"plan", "a plan",
                     BIT(K_MAILBOX) | BIT(K_DOMAIN) | BIT(K_SUBSCRIPTION) |
                         BIT(K_MAX_RECIPIENTS) | BIT(K_SCRIPTS)},
    [OBSPAM_SUBSCRIPTION] = {"subscription", "a subscription",
                             BIT(K_PLAN) | BIT(K_MAILBOX) | BIT(K_DOMAIN) |
                                 BIT(K_SUBSCRIPTION) | BIT(K_UID) |
                                 BIT(K_MAX_RECIPIENTS) | BIT(K_SCRIPTS) |
                                 BIT(K_CONTACT)},
    [OBSPAM_DOMAIN] = {"domain", "a domain",
                       BIT(K_SUBSCRIPTION) | BIT(K_DOMAIN) | BIT(K_MAILBOX) |
                           BIT(K_MAX_RECIPIENTS)},
    [OBSPAM_MAILBOX] = {"mailbox", "a mailbox",
                        BIT(K_LIMIT) | BIT(K_MAX_RECIPIENTS)},
};

/* Options with two or three values: their words, in the order messages
   list them, and the value each word stands for. */
#define YES_NO                                                                 \
  {"yes", "no", NULL}, { 1, 0, 0 }
static const struct {
  const char *keyword;
  int option;
  const char *word[3]; /* the third NULL for two values */
  int64_t value[3];
} word_options[] = {
    {"enabled", OBSPAM_OPT_ENABLED, YES_NO},
    {"count",
     OBSPAM_OPT_COUNT_UNIT,
     {"recipients", "messages", NULL},
     {0, 1, 0}},
    {"action", OBSPAM_OPT_ACTION, {"defer", "reject", NULL}, {0, 1, 0}},
    {"count-unauthenticated",
     OBSPAM_OPT_COUNT_UNAUTHENTICATED,
     {"local", "yes", "no"},
     {2, 1, 0}},
    {"count-forward-local", OBSPAM_OPT_COUNT_FORWARD_LOCAL, YES_NO},
    {"count-forward-remote", OBSPAM_OPT_COUNT_FORWARD_REMOTE, YES_NO},
    {"count-mailing-lists", OBSPAM_OPT_COUNT_MAILING_LISTS, YES_NO},
    {"notify-immediate", OBSPAM_OPT_NOTIFY_IMMEDIATE, YES_NO},
    {"store-fallback",
     OBSPAM_OPT_STORE_FALLBACK,
     {"local", "defer", NULL},
     {0, 1, 0}},
};

/* Options that take a number; their ranges are options.c's. */
static const struct {
  const char *keyword;
  int option;
  const char *unit;
} number_options[] = {
    {"retention", OBSPAM_OPT_RETENTION_HOURS, "hours"},
    {"notify-period", OBSPAM_OPT_NOTIFY_PERIOD, "seconds"},
    {"store-timeout", OBSPAM_OPT_STORE_TIMEOUT_MS, "milliseconds"},
    {"implicit-mailboxes", OBSPAM_OPT_IMPLICIT_MAILBOXES, "mailboxes"},
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

typedef struct parser {
  obspam_engine *e;
  obspam__conf *conf;
  const char *file; /* as messages name it */
  unsigned line;    /* number of the current line, from 1 */
  const char *rest; /* the text after the current line */
  const char *end;  /* the end of the text */
  unsigned opt_line[OBSPAM__OPT_MAX + 1]; /* where each option was set */
  unsigned default_line;                  /* where `default` was, or 0 */
  unsigned store_line, prefix_line;       /* `store`, `store-prefix`, or 0 */
  obspam__obj *last_domain; /* of the last mailbox: files group them */
  int nw;
  char *w[WORDS_MAX];
} parser;

/* What the KEY=VALUE words of a line said. */
typedef struct vals {
  unsigned given; /* BIT(K_*) of every key present */
  /* Bit LIM_BIT(w, OBSPAM__LIM(kind)) of every window limit present, and
     the limits by window and limit kind. */
  unsigned lim_given;
  int64_t lim[OBSPAM__WINDOWS][3];
  int64_t max_rcpt;    /* max-recipients= */
  obspam__obj *parent; /* plan= of a subscription, subscription= of a domain */
  int64_t uid;
  int scripts;
  const char *contact;
} vals;

/* Records "FILE:LINE: message" and returns code. */
static int perr(parser *p, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int perr(parser *p, int code, const char *fmt, ...) {
  char msg[448];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return obspam__fail(p->e, code, "%s:%u: %s", p->file, p->line, msg);
}

static int bad_value(parser *p, const char *key, const char *value,
                     const char *why) {
  return perr(p, OBSPAM_ESYNTAX, "bad value '%.64s' for '%s': %s", value, key,
              why);
}

/* ---- values -------------------------------------------------------------- */

enum { NUM_OK, NUM_BAD, NUM_NEGATIVE, NUM_BIG };

/* A count: decimal digits only, fitting in int64_t. */
static int parse_number(const char *s, int64_t *out) {
  int64_t v = 0;

  if (s[0] == '-' && s[1] >= '0' && s[1] <= '9')
    return NUM_NEGATIVE;
  if (s[0] < '0' || s[0] > '9')
    return NUM_BAD;
  for (; *s >= '0' && *s <= '9'; s++) {
    int d = *s - '0';

    if (v > (INT64_MAX - d) / 10)
      return NUM_BIG;
    v = v * 10 + d;
  }
  if (*s != '\0')
    return NUM_BAD;
  *out = v;
  return NUM_OK;
}

/* Why a word is not a number (parse_number's rc), or NULL. */
static const char *number_why(int rc, const char *negative,
                              const char *expect) {
  switch (rc) {
  case NUM_OK:
    return NULL;
  case NUM_NEGATIVE:
    return negative;
  case NUM_BIG:
    return "number is too large";
  default:
    return expect;
  }
}

/* A limit: a count, unlimited or (unless server) inherit. shown is the
   text messages quote: s, or the window limit s is the limit of. */
static int parse_limit(parser *p, const char *key, const char *s,
                       const char *shown, int server, int64_t *out) {
  const char *expect = server ? "expected a count or unlimited"
                              : "expected a count, unlimited or inherit";
  int rc;

  if (strcmp(s, "unlimited") == 0) {
    *out = OBSPAM_UNLIMITED;
    return OBSPAM_OK;
  }
  if (strcmp(s, "inherit") == 0) {
    if (server)
      return bad_value(p, key, shown, "the server defaults cannot inherit");
    *out = OBSPAM_INHERIT;
    return OBSPAM_OK;
  }
  rc = parse_number(s, out);
  if (rc == NUM_OK)
    return OBSPAM_OK;
  return bad_value(p, key, shown, number_why(rc, "negative count", expect));
}

#define LIM_BIT(w, lim) (1u << (3 * (w) + (lim)))

/* The window a suffix letter names (the word after '/'), or -1. */
static int window_of(const char *s) {
  if (s[0] == '\0' || s[1] != '\0')
    return -1;
  return s[0] == 'm'   ? OBSPAM__W_MINUTE
         : s[0] == 'h' ? OBSPAM__W_HOUR
         : s[0] == 'd' ? OBSPAM__W_DAY
                       : -1;
}

static const char *const window_names[OBSPAM__WINDOWS] = {"minute", "hour",
                                                          "day"};

/* A value V of limit kind lim (OBSPAM__LIM) into v: one or more window
   limits separated by commas, each a limit (parse_limit) with an optional
   window suffix, /m, /h or /d, none meaning /h. Each window once; the
   windows not named are left as they are (inherit). A word is at most a
   line long, so it is split in a copy that fits a line, and messages
   quote it and its parts as written. */
static int parse_windows(parser *p, const char *key, const char *val,
                         int server, int lim, vals *v) {
  char parts[LINE_MAX_BYTES + 1], limit[LINE_MAX_BYTES + 1], *part, *next;
  unsigned seen = 0;
  int rc;

  if (strpbrk(val, ",/") == NULL) { /* a bare limit: the hour */
    v->lim_given |= LIM_BIT(OBSPAM__W_HOUR, lim);
    return parse_limit(p, key, val, val, server, &v->lim[OBSPAM__W_HOUR][lim]);
  }
  memcpy(parts, val, strlen(val) + 1);
  for (part = parts; part != NULL; part = next) {
    char *comma = strchr(part, ','), *slash;
    int w = OBSPAM__W_HOUR;

    next = NULL;
    if (comma != NULL) {
      *comma = '\0';
      next = comma + 1;
    }
    if (part[0] == '\0')
      return bad_value(p, key, val, "a window limit is empty");
    slash = strchr(part, '/');
    if (slash != NULL) {
      if (slash[1] == '\0')
        return perr(p, OBSPAM_ESYNTAX, "missing window after '/' in '%.64s'",
                    part);
      if ((w = window_of(slash + 1)) < 0)
        return perr(p, OBSPAM_ESYNTAX, "unknown window '%.16s' in '%.64s'",
                    slash + 1, part);
    }
    if (seen & (1u << w)) {
      char why[40];

      snprintf(why, sizeof(why), "the %s window is given twice",
               window_names[w]);
      return bad_value(p, key, val, why);
    }
    seen |= 1u << w;
    if (slash == NULL) {
      rc = parse_limit(p, key, part, part, server, &v->lim[w][lim]);
    } else {
      memcpy(limit, part, (size_t)(slash - part));
      limit[slash - part] = '\0';
      rc = parse_limit(p, key, limit, part, server, &v->lim[w][lim]);
    }
    if (rc != OBSPAM_OK)
      return rc;
    v->lim_given |= LIM_BIT(w, lim);
  }
  return OBSPAM_OK;
}

/* ---- look-ahead for messages ----------------------------------------- */

static int blank(char c) { return c == ' ' || c == '\t'; }

/* The line further down that declares `keyword NAME` with NAME equal to
   name (already in lower case), or 0. Only for error messages: it reads
   the rest of the text, which has not been split yet. */
static unsigned declared_later(const parser *p, const char *keyword,
                               const obspam__name *name) {
  const char *s = p->rest, *end = p->end;
  size_t kwlen = strlen(keyword);
  unsigned line = p->line;

  while (s < end) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    const char *eol = nl != NULL ? nl : end;
    size_t i;

    line++;
    while (s < eol && blank(*s))
      s++;
    if ((size_t)(eol - s) > kwlen && memcmp(s, keyword, kwlen) == 0 &&
        blank(s[kwlen])) {
      s += kwlen;
      while (s < eol && blank(*s))
        s++;
      for (i = 0; i < name->len && s + i < eol; i++) {
        char c = s[i];

        if (c >= 'A' && c <= 'Z')
          c = (char)(c + ('a' - 'A'));
        if (c != name->s[i])
          break;
      }
      if (i == name->len &&
          (s + i == eol || blank(s[i]) || (s[i] == '\r' && s + i + 1 == eol)))
        return line;
    }
    s = eol + 1;
  }
  return 0;
}

/* Finds the object of kind that word (a reference, as written) names. */
static int lookup(parser *p, int kind, const char *word, obspam__obj **out) {
  obspam__name n;
  const char *why = obspam__name_norm(word, OBSPAM__NAME_PLAIN, &n);
  unsigned later;

  if (why != NULL)
    return perr(p, OBSPAM_ESYNTAX, "bad %s name '%.64s': %s",
                obspam_kind_name(kind), word, why);
  *out = obspam__tree_find(&p->conf->tree, kind, n.s, n.len);
  if (*out != NULL)
    return OBSPAM_OK;
  later = declared_later(p, decl[kind].keyword, &n);
  if (later != 0)
    return perr(p, OBSPAM_ESYNTAX,
                "unknown %s '%.64s' (declared later, on line %u)",
                obspam_kind_name(kind), word, later);
  return perr(p, OBSPAM_ESYNTAX, "unknown %s '%.64s'", obspam_kind_name(kind),
              word);
}

/* Reads the words from index first on as KEY=VALUE for an object of kind
   (OBSPAM_SERVER: the `default` line), left to right, into v. */
static int read_keys(parser *p, int first, int kind, vals *v) {
  int i, rc;

  memset(v, 0, sizeof(*v));
  for (i = first; i < p->nw; i++) {
    char *word = p->w[i], *eq = strchr(word, '='), *val;
    int k, server = kind == OBSPAM_SERVER;

    if (eq == NULL || eq == word)
      return perr(p, OBSPAM_ESYNTAX, "expected KEY=VALUE, found '%.64s'", word);
    *eq = '\0';
    val = eq + 1;
    for (k = 0; k < K_COUNT; k++)
      if (strcmp(word, key_names[k]) == 0)
        break;
    if (k == K_COUNT || !(decl[kind].keys & BIT(k)))
      return perr(p, OBSPAM_ESYNTAX, "unknown key '%.64s' for %s", word,
                  decl[kind].what);
    if (v->given & BIT(k))
      return perr(p, OBSPAM_ESYNTAX, "key '%s' is given twice", word);
    v->given |= BIT(k);
    if (val[0] == '\0')
      return perr(p, OBSPAM_ESYNTAX, "missing value for '%s'", word);

    switch (k) {
    case K_PLAN:
      rc = lookup(p, OBSPAM_PLAN, val, &v->parent);
      break;
    case K_SUBSCRIPTION:
    case K_MAILBOX:
    case K_DOMAIN:
    case K_LIMIT: {
      /* subscription= of a domain names its parent; elsewhere a key of
         these four sets a limit. */
      int lim = OBSPAM__LIM(k == K_SUBSCRIPTION ? OBSPAM_SUBSCRIPTION
                            : k == K_DOMAIN     ? OBSPAM_DOMAIN
                                                : OBSPAM_MAILBOX);

      if (k == K_SUBSCRIPTION && kind == OBSPAM_DOMAIN) {
        rc = lookup(p, OBSPAM_SUBSCRIPTION, val, &v->parent);
        break;
      }
      rc = parse_windows(p, word, val, server, lim, v);
      break;
    }
    case K_MAX_RECIPIENTS:
      rc = parse_limit(p, word, val, val, server, &v->max_rcpt);
      break;
    case K_UID:
      rc = parse_number(val, &v->uid);
      if (rc == NUM_OK && v->uid > OBSPAM__UID_MAX)
        rc = bad_value(p, word, val, "a uid is at most 4294967294");
      else
        rc = rc == NUM_OK ? OBSPAM_OK
                          : bad_value(p, word, val,
                                      number_why(rc, "negative uid",
                                                 "expected a number"));
      break;
    case K_SCRIPTS:
      rc = OBSPAM_OK;
      if (strcmp(val, "yes") == 0)
        v->scripts = 1;
      else if (strcmp(val, "no") == 0)
        v->scripts = 0;
      else if (!server && strcmp(val, "inherit") == 0)
        v->scripts = OBSPAM_INHERIT;
      else
        rc = bad_value(p, word, val,
                       server ? "expected yes or no"
                              : "expected yes, no or inherit");
      break;
    default: /* K_CONTACT */
    {
      const char *why = obspam__contact_why(val);

      rc = why != NULL ? bad_value(p, word, val, why) : OBSPAM_OK;
      v->contact = val;
      break;
    }
    }
    if (rc != OBSPAM_OK)
      return rc;
  }
  return OBSPAM_OK;
}

/* Sets the window limits and the cap a line gave on o's own values, or
   the server's (o NULL). o's extra values are made only for a value that
   is not inherit, which every one of them is already. */
static int apply_limits(parser *p, const vals *v, obspam__obj *o) {
  obspam__tree *t = &p->conf->tree;
  obspam__extra *x = o != NULL ? o->extra : &t->server_extra;
  int w, i;

  for (w = 0; w < OBSPAM__WINDOWS; w++)
    for (i = 0; i < 3; i++) {
      int64_t val = v->lim[w][i];

      if (!(v->lim_given & LIM_BIT(w, i)))
        continue;
      if (w == OBSPAM__W_HOUR) {
        *(o != NULL ? &o->own[i] : &t->server[i]) = val;
        continue;
      }
      if (x == NULL && val == OBSPAM_INHERIT)
        continue;
      if (x == NULL && (x = obspam__tree_extra(t, o)) == NULL)
        return perr(p, OBSPAM_ENOMEM, "out of memory");
      x->own[w == OBSPAM__W_DAY][i] = val;
    }
  if ((v->given & BIT(K_MAX_RECIPIENTS)) &&
      (x != NULL || v->max_rcpt != OBSPAM_INHERIT)) {
    if (x == NULL && (x = obspam__tree_extra(t, o)) == NULL)
      return perr(p, OBSPAM_ENOMEM, "out of memory");
    x->max_rcpt = v->max_rcpt;
  }
  return OBSPAM_OK;
}

/* ---- lines --------------------------------------------------------------- */

/* The checks every option line shares: once per text, one value. */
static int option_line(parser *p, int opt) {
  const char *kw = p->w[0];

  if (p->opt_line[opt] != 0)
    return perr(p, OBSPAM_ESYNTAX, "'%s' appears already on line %u", kw,
                p->opt_line[opt]);
  if (p->nw < 2)
    return perr(p, OBSPAM_ESYNTAX, "missing value for '%s'", kw);
  if (p->nw > 2)
    return perr(p, OBSPAM_ESYNTAX, "too many values for '%s'", kw);
  p->opt_line[opt] = p->line;
  return OBSPAM_OK;
}

static int line_word_option(parser *p, size_t i) {
  const char *val = p->w[1];
  int opt = word_options[i].option, rc, v;

  if ((rc = option_line(p, opt)) != OBSPAM_OK)
    return rc;
  for (v = 0; v < 3 && word_options[i].word[v] != NULL; v++)
    if (strcmp(val, word_options[i].word[v]) == 0) {
      p->conf->opt[opt] = word_options[i].value[v];
      return OBSPAM_OK;
    }
  if (word_options[i].word[2] != NULL)
    return perr(p, OBSPAM_ESYNTAX,
                "bad value '%.64s' for '%s': expected %s, %s or %s", val,
                p->w[0], word_options[i].word[0], word_options[i].word[1],
                word_options[i].word[2]);
  return perr(p, OBSPAM_ESYNTAX,
              "bad value '%.64s' for '%s': expected %s or %s", val, p->w[0],
              word_options[i].word[0], word_options[i].word[1]);
}

static int line_number_option(parser *p, size_t i) {
  const char *kw = p->w[0], *val = p->w[1];
  int opt = number_options[i].option, rc;
  char expect[48];
  int64_t v;

  if ((rc = option_line(p, opt)) != OBSPAM_OK)
    return rc;
  rc = parse_number(val, &v);
  if (rc != NUM_OK) {
    snprintf(expect, sizeof(expect), "expected a number of %s",
             number_options[i].unit);
    return bad_value(p, kw, val, number_why(rc, "negative number", expect));
  }
  if (obspam__opt_check(opt, v) != NULL) {
    int64_t min, max;

    obspam__opt_range(opt, &min, &max);
    return perr(p, OBSPAM_ESYNTAX,
                "bad value '%.64s' for '%s': out of range %lld..%lld", val, kw,
                (long long)min, (long long)max);
  }
  p->conf->opt[opt] = v;
  return OBSPAM_OK;
}

static int line_default(parser *p) {
  obspam__tree *t = &p->conf->tree;
  vals v;
  int rc;

  if (p->default_line != 0)
    return perr(p, OBSPAM_ESYNTAX, "'default' appears already on line %u",
                p->default_line);
  rc = read_keys(p, 1, OBSPAM_SERVER, &v);
  if (rc != OBSPAM_OK)
    return rc;
  if ((rc = apply_limits(p, &v, NULL)) != OBSPAM_OK)
    return rc;
  if (v.given & BIT(K_SCRIPTS))
    t->server_scripts = v.scripts;
  p->default_line = p->line;
  return OBSPAM_OK;
}

/* The NAME of a declaration, normalised into n. */
static int decl_name(parser *p, int kind, obspam__name *n) {
  const char *why;

  if (p->nw < 2)
    return perr(p, OBSPAM_ESYNTAX, "missing name after '%s'",
                decl[kind].keyword);
  why = obspam__name_norm(
      p->w[1],
      kind == OBSPAM_MAILBOX ? OBSPAM__NAME_MAILBOX : OBSPAM__NAME_PLAIN, n);
  if (why != NULL)
    return perr(p, OBSPAM_ESYNTAX, "bad %s name '%.64s': %s",
                obspam_kind_name(kind), p->w[1], why);
  return OBSPAM_OK;
}

/* Adds the object a declaration names; a duplicate is an error. */
static int add(parser *p, int kind, const obspam__name *n, obspam__obj *parent,
               obspam__obj **o) {
  int rc = obspam__tree_add(&p->conf->tree, kind, n, parent, o);

  if (rc == OBSPAM_EEXIST)
    return perr(p, OBSPAM_ESYNTAX, "duplicate %s '%s'", obspam_kind_name(kind),
                n->s);
  if (rc != OBSPAM_OK)
    return perr(p, OBSPAM_ENOMEM, "out of memory");
  return OBSPAM_OK;
}

/* The domain a mailbox line names, which must be declared above it. */
static int mailbox_domain(parser *p, const obspam__name *n, obspam__obj **d) {
  const char *name = n->s + n->at + 1;
  size_t len = n->len - n->at - 1;

  /* Panels write the mailboxes of a domain together: the domain of the
     previous mailbox saves a hash lookup most of the time. */
  *d = p->last_domain;
  if (*d != NULL && (*d)->len == len && memcmp((*d)->name, name, len) == 0)
    return OBSPAM_OK;
  *d = obspam__tree_find(&p->conf->tree, OBSPAM_DOMAIN, name, len);
  if (*d == NULL)
    return lookup(p, OBSPAM_DOMAIN, p->w[1] + n->at + 1, d);
  p->last_domain = *d;
  return OBSPAM_OK;
}

/* What only a subscription's line gives: its uid and its contact. */
static int subscription_keys(parser *p, obspam__sub *s, const vals *v) {
  if (v->given & BIT(K_UID)) {
    obspam__sub *owner = obspam__tree_by_uid(&p->conf->tree, v->uid);

    if (owner != NULL)
      return perr(p, OBSPAM_ESYNTAX,
                  "uid %lld belongs to subscription '%s' already",
                  (long long)v->uid, owner->obj.name);
    if (obspam__tree_set_uid(&p->conf->tree, s, v->uid) != OBSPAM_OK)
      return perr(p, OBSPAM_ENOMEM, "out of memory");
  }
  if (v->given & BIT(K_CONTACT)) {
    s->contact = strdup(v->contact);
    if (s->contact == NULL)
      return perr(p, OBSPAM_ENOMEM, "out of memory");
  }
  return OBSPAM_OK;
}

/* A `plan`, `subscription`, `domain` or `mailbox` line: the name, the
   keys, the object under its parent (a mailbox's is its domain, the
   others' the one their keys name), its limits, then what only some kinds
   have. */
static int line_object(parser *p, int kind) {
  obspam__name n;
  obspam__obj *o, *parent = NULL;
  vals v;
  int rc;

  if ((rc = decl_name(p, kind, &n)) != OBSPAM_OK)
    return rc;
  if (kind == OBSPAM_MAILBOX &&
      (rc = mailbox_domain(p, &n, &parent)) != OBSPAM_OK)
    return rc;
  if ((rc = read_keys(p, 2, kind, &v)) != OBSPAM_OK)
    return rc;
  if (kind == OBSPAM_DOMAIN && !(v.given & BIT(K_SUBSCRIPTION)))
    return perr(p, OBSPAM_ESYNTAX, "domain '%s' needs subscription=", n.s);
  if ((rc = add(p, kind, &n, kind == OBSPAM_MAILBOX ? parent : v.parent, &o)) !=
          OBSPAM_OK ||
      (rc = apply_limits(p, &v, o)) != OBSPAM_OK)
    return rc;
  /* Only a plan and a subscription take scripts=. */
  if (v.given & BIT(K_SCRIPTS))
    *obspam__scripts_of(o) = v.scripts;
  if (kind == OBSPAM_SUBSCRIPTION)
    return subscription_keys(p, (obspam__sub *)o, &v);
  return OBSPAM_OK;
}

/* `whitelist CIDR` and `local-network CIDR`: a network of one of the two
   sets, each entry once. */
static int line_network(parser *p, int local) {
  const char *kw = p->w[0];
  obspam__net net;
  const char *why;
  int rc;

  if (p->nw < 2)
    return perr(p, OBSPAM_ESYNTAX, "missing address after '%s'", kw);
  if (p->nw > 2)
    return perr(p, OBSPAM_ESYNTAX, "too many values for '%s'", kw);
  why = obspam__net_parse(p->w[1], &net);
  if (why != NULL)
    return perr(p, OBSPAM_ESYNTAX, "bad %s entry '%.64s': %s", kw, p->w[1],
                why);
  rc = obspam__wl_add(local ? &p->conf->local : &p->conf->wl, &net);
  if (rc == OBSPAM_EEXIST)
    return perr(p, OBSPAM_ESYNTAX, "duplicate %s entry '%s'", kw, p->w[1]);
  if (rc != OBSPAM_OK)
    return perr(p, OBSPAM_ENOMEM, "out of memory");
  return OBSPAM_OK;
}

/* `forward ADDRESS local|remote` and `list ADDRESS`: an address of a
   hosted domain that marks a message (marks.h), each declared once. */
static int line_mark(parser *p, int forward) {
  const char *kw = p->w[0], *why;
  obspam__name n;
  obspam__obj *d;
  size_t at;
  uint32_t flag = OBSPAM_MSG_MAILING_LIST;
  int rc;

  if (p->nw < 2)
    return perr(p, OBSPAM_ESYNTAX, "missing address after '%s'", kw);
  if (p->nw > (forward ? 3 : 2))
    return perr(p, OBSPAM_ESYNTAX, "too many values for '%s'", kw);
  if (forward) {
    if (p->nw < 3)
      return perr(p, OBSPAM_ESYNTAX,
                  "forward '%.64s' needs local or remote after it", p->w[1]);
    if (strcmp(p->w[2], "local") == 0)
      flag = OBSPAM_MSG_FORWARD_LOCAL;
    else if (strcmp(p->w[2], "remote") == 0)
      flag = OBSPAM_MSG_FORWARD_REMOTE;
    else
      return perr(p, OBSPAM_ESYNTAX,
                  "bad value '%.64s' for 'forward': expected local or remote",
                  p->w[2]);
    why = obspam__forward_norm(p->w[1], &n, &at);
  } else {
    why = obspam__name_norm(p->w[1], OBSPAM__NAME_MAILBOX, &n);
    at = n.at + 1;
  }
  if (why != NULL)
    return perr(p, OBSPAM_ESYNTAX, "bad %s address '%.64s': %s", kw, p->w[1],
                why);
  /* The domain is named as written: the name has the same layout. */
  if ((rc = lookup(p, OBSPAM_DOMAIN, p->w[1] + at, &d)) != OBSPAM_OK)
    return rc;
  rc = obspam__mark_add(forward ? &p->conf->marks.fwd : &p->conf->marks.list,
                        n.s, n.len, flag);
  if (rc == OBSPAM_EEXIST)
    return perr(p, OBSPAM_ESYNTAX, "duplicate %s '%s'", kw, n.s);
  if (rc != OBSPAM_OK)
    return perr(p, OBSPAM_ENOMEM, "out of memory");
  return OBSPAM_OK;
}

/* `store URI` and `store-prefix PREFIX`: the shared counter store. */
static int line_store(parser *p, int prefix) {
  const char *kw = p->w[0], *val = p->w[1], *why;
  unsigned *at = prefix ? &p->prefix_line : &p->store_line;
  char **dst = prefix ? &p->conf->store_prefix : &p->conf->store_uri;

  if (*at != 0)
    return perr(p, OBSPAM_ESYNTAX, "'%s' appears already on line %u", kw, *at);
  if (p->nw < 2)
    return perr(p, OBSPAM_ESYNTAX, "missing value for '%s'", kw);
  if (p->nw > 2)
    return perr(p, OBSPAM_ESYNTAX, "too many values for '%s'", kw);
  if (prefix) {
    if ((why = obspam__store_prefix_check(val)) != NULL)
      return bad_value(p, kw, val, why);
  } else if ((why = obspam__store_uri_check(val)) != NULL) {
    return bad_value(p, kw, val, why);
  }
  *at = p->line;
  *dst = strdup(val);
  if (*dst == NULL)
    return perr(p, OBSPAM_ENOMEM, "out of memory");
  return OBSPAM_OK;
}

/* `unknown-uid-subscription NAME`: the subscription, declared above,
   charged for mail of scripts whose uid no subscription owns. */
static int line_unknown_uid(parser *p) {
  const char *kw = p->w[0];
  obspam__tree *t = &p->conf->tree;
  obspam__obj *o;
  int rc;

  if (t->unknown_uid[0] != '\0')
    return perr(p, OBSPAM_ESYNTAX, "'%s' appears twice", kw);
  if (p->nw < 2)
    return perr(p, OBSPAM_ESYNTAX, "missing subscription after '%s'", kw);
  if (p->nw > 2)
    return perr(p, OBSPAM_ESYNTAX, "too many values for '%s'", kw);
  if ((rc = lookup(p, OBSPAM_SUBSCRIPTION, p->w[1], &o)) != OBSPAM_OK)
    return rc;
  memcpy(t->unknown_uid, o->name, (size_t)o->len + 1);
  return OBSPAM_OK;
}

/* Keywords that share a function in pairs, and what tells the two apart. */
static const struct {
  const char *keyword;
  int (*line)(parser *p, int second);
  int second;
} pair_lines[] = {
    {"whitelist", line_network, 0}, {"local-network", line_network, 1},
    {"list", line_mark, 0},         {"forward", line_mark, 1},
    {"store", line_store, 0},       {"store-prefix", line_store, 1},
};

static int line_words(parser *p) {
  const char *kw = p->w[0];
  size_t i;
  int kind;

  /* Mailboxes are by far the most numerous lines: test them first, then
     the kinds above them, up to the server's `default`. */
  for (kind = OBSPAM_MAILBOX; kind >= OBSPAM_SERVER; kind--)
    if (strcmp(kw, decl[kind].keyword) == 0)
      return kind == OBSPAM_SERVER ? line_default(p) : line_object(p, kind);
  for (i = 0; i < COUNT_OF(pair_lines); i++)
    if (strcmp(kw, pair_lines[i].keyword) == 0)
      return pair_lines[i].line(p, pair_lines[i].second);
  if (strcmp(kw, "unknown-uid-subscription") == 0)
    return line_unknown_uid(p);
  for (i = 0; i < COUNT_OF(word_options); i++)
    if (strcmp(kw, word_options[i].keyword) == 0)
      return line_word_option(p, i);
  for (i = 0; i < COUNT_OF(number_options); i++)
    if (strcmp(kw, number_options[i].keyword) == 0)
      return line_number_option(p, i);
  return perr(p, OBSPAM_ESYNTAX, "unknown keyword '%.64s'", kw);
}

/* Parses text[0..len), which the parser may change and whose byte at len
   it may overwrite, into p->conf. */
static int parse(parser *p, char *text, size_t len) {
  char *s = text, *end = text + len;

  p->end = end;
  p->line = 0;
  if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
    s += 3;
  while (s < end) {
    char *nl = memchr(s, '\n', (size_t)(end - s));
    char *eol = nl != NULL ? nl : end;
    size_t n;
    int rc;

    p->line++;
    p->rest = eol < end ? eol + 1 : end;
    if (eol > s && eol[-1] == '\r')
      eol--;
    n = (size_t)(eol - s);
    if (n > LINE_MAX_BYTES)
      return perr(p, OBSPAM_ESYNTAX, "line is longer than %d bytes",
                  LINE_MAX_BYTES);
    if (memchr(s, '\0', n) != NULL)
      return perr(p, OBSPAM_ESYNTAX, "line holds a NUL byte");

    /* Split into words in place. eol is a '\n', a '\r' or the end of the
       text, which the parser may overwrite. */
    p->nw = 0;
    while (s < eol) {
      while (s < eol && blank(*s))
        s++;
      if (s == eol || *s == '#')
        break;
      p->w[p->nw++] = s;
      while (s < eol && !blank(*s))
        s++;
      *s++ = '\0';
    }
    if (p->nw > 0 && (rc = line_words(p)) != OBSPAM_OK)
      return rc;
    s = (char *)p->rest;
  }
  return OBSPAM_OK;
}

/* Parses text (owned, with a writable byte at len) and, when it is valid,
   makes it the engine's configuration. */
static int load(obspam_engine *e, const char *file, char *text, size_t len) {
  parser *p = calloc(1, sizeof(*p));
  int rc;

  if (p == NULL)
    return obspam__fail(e, OBSPAM_ENOMEM, "%s: out of memory", file);
  p->e = e;
  p->file = file;
  p->conf = obspam__conf_new();
  if (p->conf == NULL) {
    free(p);
    return obspam__fail(e, OBSPAM_ENOMEM, "%s: out of memory", file);
  }
  obspam__tree_bulk(&p->conf->tree);
  rc = parse(p, text, len);
  /* The name order is made here, without any lock, so that the first
     page after the swap sorts nothing. */
  if (rc == OBSPAM_OK && obspam__tree_order(&p->conf->tree) != OBSPAM_OK)
    rc = obspam__fail(e, OBSPAM_ENOMEM, "%s: out of memory", file);
  if (rc == OBSPAM_OK && obspam__conf_replace(e, p->conf) != OBSPAM_OK)
    rc = obspam__fail(e, OBSPAM_ENOMEM, "%s: out of memory", file);
  if (rc != OBSPAM_OK)
    obspam__conf_free(p->conf, NULL);
  free(p);
  return rc;
}

int obspam_load_config(obspam_engine *e, const char *path) {
  char *text = NULL;
  size_t len = 0;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (path == NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "load_config: path is NULL");
  rc = obspam__read_file(e, "", path, 0, &text, &len);
  if (rc != OBSPAM_OK)
    return rc;
  rc = load(e, path, text, len);
  free(text);
  return rc;
}

int obspam_load_config_string(obspam_engine *e, const char *text) {
  size_t len;
  char *copy;
  int rc;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (text == NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "load_config_string: text is NULL");
  len = strlen(text);
  copy = malloc(len + 1);
  if (copy == NULL)
    return obspam__fail(e, OBSPAM_ENOMEM, "<string>: out of memory");
  memcpy(copy, text, len + 1);
  rc = load(e, "<string>", copy, len);
  free(copy);
  return rc;
}
