/* SPDX-License-Identifier: MIT */
/* Limits changed live (obspamctl set-limit), and what a reload does with
   them.

   A limit set through the control socket is not written to the
   configuration file: it lives in the engine until the file changes the
   object it was set on. So each override remembers the object's line in
   the configuration it was made under (a hash of the line, its words
   joined by single spaces, lower case, without the comment; "no line"
   for an object the file does not declare, an implicit mailbox). After
   every reload the overrides whose object's line is still the same are
   set again, and the others are dropped: the file has spoken since.
   Both are logged. Overrides live in memory only: a restart forgets
   them, as it starts from the file. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"
#include "util.h"

/* One object's line: hashes of its kind and name, and of the line; the
   object first, the key obspamd__sort_by_key sorts by. */
typedef struct line_hash {
  uint64_t object, line;
} line_hash;

typedef struct override {
  int kind;  /* OBSPAM_PLAN .. OBSPAM_MAILBOX */
  int which; /* OBSPAM_SUBSCRIPTION, DOMAIN, MAILBOX; -1: max-recipients */
  char name[OBSPAM_NAME_MAX + 1];
  /* The values set, per window (minute, hour, day), and which are set;
     max-recipients uses the hour's slot. */
  int64_t value[3];
  unsigned set;
  uint64_t line; /* the object's line when it was set; 0: none */
} override;

struct obspamd__overrides {
  line_hash *lines; /* of the running configuration, sorted by object */
  size_t nlines;
  override *list;
  size_t n, size;
};

static const int64_t windows[3] = {OBSPAM_WINDOW_MINUTE, OBSPAM_WINDOW_HOUR,
                                   OBSPAM_WINDOW_DAY};
static const char window_letter[3] = {'m', 'h', 'd'};

#define FNV_BASIS 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv(uint64_t h, unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    c = (unsigned char)(c - 'A' + 'a');
  return (h ^ c) * FNV_PRIME;
}

/* The hash of an object: its kind and its lower-case name. */
static uint64_t object_hash(int kind, const char *name, size_t len) {
  uint64_t h = fnv(FNV_BASIS, (unsigned char)kind);
  size_t i;

  for (i = 0; i < len; i++)
    h = fnv(h, (unsigned char)name[i]);
  return h;
}

static int compare_lines(const void *a, const void *b) {
  uint64_t x = ((const line_hash *)a)->object,
           y = ((const line_hash *)b)->object;

  return x < y ? -1 : x > y;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* The line of every object a configuration text declares (the library
   accepted it: one line per object). Returns 0, or -1 out of memory. */
static int scan_lines(const char *text, size_t len, line_hash **out,
                      size_t *n) {
  static const char *const keywords[] = {"plan", "subscription", "domain",
                                         "mailbox"};
  size_t cap = 256, count = 0, i = 0;
  line_hash *set = malloc(cap * sizeof(*set));

  if (set == NULL)
    return -1;
  /* The byte order mark the library skips. */
  if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
    i = 3;
  while (i < len) {
    size_t end = i, w, k;
    const char *name = NULL;
    size_t name_len = 0;
    uint64_t h = FNV_BASIS;
    int words = 0, kind = 0;

    while (end < len && text[end] != '\n')
      end++;
    /* The words, joined by one space, up to a comment: a '#' that starts
       a word (one inside a word is part of it, as in a#b@example.com). */
    for (w = i; w < end;) {
      size_t start;
      while (w < end && is_blank(text[w]))
        w++;
      if (w == end || text[w] == '#')
        break;
      start = w;
      while (w < end && !is_blank(text[w]))
        w++;
      if (words == 1) {
        name = text + start;
        name_len = w - start;
      }
      if (words > 0)
        h = fnv(h, ' ');
      for (k = start; k < w; k++)
        h = fnv(h, (unsigned char)text[k]);
      if (words == 0) {
        for (k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++)
          if (strlen(keywords[k]) == w - start &&
              memcmp(text + start, keywords[k], w - start) == 0)
            break;
        if (k == sizeof(keywords) / sizeof(keywords[0]))
          break;                     /* not an object's line */
        kind = OBSPAM_PLAN + (int)k; /* the kinds follow in this order */
      }
      words++;
    }
    if (name != NULL) {
      if (count == cap &&
          (set = obspamd__grow(set, &cap, sizeof(*set))) == NULL)
        return -1;
      set[count].object = object_hash(kind, name, name_len);
      set[count].line = h | 1; /* never 0, which is "no line" */
      count++;
    }
    i = end + 1;
  }
  obspamd__sort_by_key(set, count, sizeof(*set), compare_lines);
  *out = set;
  *n = count;
  return 0;
}

/* The line of an object in the running configuration, 0 when it has
   none. */
static uint64_t line_of(const struct obspamd__overrides *o, int kind,
                        const char *name) {
  line_hash key, *found;

  if (o == NULL || o->lines == NULL)
    return 0;
  key.object = object_hash(kind, name, strlen(name));
  found = bsearch(&key, o->lines, o->nlines, sizeof(key), compare_lines);
  return found ? found->line : 0;
}

/* "20/m,100/h" for what an override sets. */
static void value_text(const override *v, char *buf, size_t size) {
  size_t len = 0;
  int w;

  buf[0] = '\0';
  for (w = 0; w < 3; w++) {
    char one[32];
    if (!(v->set & (1u << w)))
      continue;
    if (v->value[w] == OBSPAM_UNLIMITED)
      snprintf(one, sizeof(one), "unlimited");
    else if (v->value[w] == OBSPAM_INHERIT)
      snprintf(one, sizeof(one), "inherit");
    else
      snprintf(one, sizeof(one), "%" PRId64, v->value[w]);
    if (v->which >= 0)
      snprintf(one + strlen(one), sizeof(one) - strlen(one), "/%c",
               window_letter[w]);
    len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s",
                            len ? "," : "", one);
  }
}

static const char *which_name(int which) {
  return which < 0 ? "max-recipients" : obspamd_kind_name(which);
}

/* Sets what v holds in the engine; the library's code. */
static int apply(obspam_engine *e, const override *v) {
  int w, rc = OBSPAM_OK;

  for (w = 0; w < 3 && rc == OBSPAM_OK; w++) {
    if (!(v->set & (1u << w)))
      continue;
    rc = v->which < 0
             ? obspam_set_max_recipients(e, v->kind, v->name, v->value[w])
             : obspam_set_window_limit(e, v->kind, v->name, v->which,
                                       windows[w], v->value[w]);
  }
  return rc;
}

/* A limit: a count, unlimited or inherit; 0 or -1. */
static int parse_limit(const char *s, size_t len, int64_t *out) {
  int64_t v = 0;
  size_t i;

  if (len == 9 && memcmp(s, "unlimited", 9) == 0) {
    *out = OBSPAM_UNLIMITED;
    return 0;
  }
  if (len == 7 && memcmp(s, "inherit", 7) == 0) {
    *out = OBSPAM_INHERIT;
    return 0;
  }
  if (len == 0)
    return -1;
  for (i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - 9) / 10)
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

/* VALUE as the configuration writes it (V: "20/m,100/h"; R for
   max-recipients: one limit without a window) into v. Returns 0, or -1
   with the reason in why. */
static int parse_value(const char *value, override *v, char *why, size_t size) {
  const char *p = value;

  v->set = 0;
  if (v->which < 0) {
    if (parse_limit(value, strlen(value), &v->value[1]) != 0) {
      snprintf(why, size,
               "bad value '%.64s' for 'max-recipients': expected a count, "
               "unlimited or inherit",
               value);
      return -1;
    }
    v->set = 2;
    return 0;
  }
  for (;;) {
    size_t len = strcspn(p, ","), limit_len = len;
    const char *slash = memchr(p, '/', len);
    int w = 1;

    if (len == 0) {
      snprintf(why, size, "bad value '%.64s': a window limit is empty", value);
      return -1;
    }
    if (slash != NULL) {
      size_t wl = len - (size_t)(slash - p) - 1;
      limit_len = (size_t)(slash - p);
      w = wl != 1           ? -1
          : slash[1] == 'm' ? 0
          : slash[1] == 'h' ? 1
          : slash[1] == 'd' ? 2
                            : -1;
      if (w < 0) {
        snprintf(why, size,
                 "bad value '%.64s': unknown window '%.*s': expected /m, /h "
                 "or /d",
                 value, (int)(wl > 16 ? 16 : wl), slash + 1);
        return -1;
      }
    }
    if (v->set & (1u << w)) {
      snprintf(why, size, "bad value '%.64s': the %s window is given twice",
               value,
               w == 0   ? "minute"
               : w == 1 ? "hour"
                        : "day");
      return -1;
    }
    if (parse_limit(p, limit_len, &v->value[w]) != 0) {
      snprintf(why, size,
               "bad value '%.64s': '%.*s' is not a count, unlimited or "
               "inherit",
               value, (int)(limit_len > 32 ? 32 : limit_len), p);
      return -1;
    }
    v->set |= 1u << w;
    if (p[len] == '\0')
      return 0;
    p += len + 1;
  }
}

int obspamd_set_limit(obspamd_service *s, int kind, const char *name,
                      const char *which, const char *value, long uid, char *msg,
                      size_t msg_size) {
  struct obspamd__overrides *o;
  override v, *slot = NULL;
  char why[600], shown[96], clean[OBSPAM_NAME_MAX + 1];
  size_t i;
  int rc;

  memset(&v, 0, sizeof(v));
  v.kind = kind;
  v.which =
      strcmp(which, "max-recipients") == 0 ? -1 : obspamd_kind_parse(which);
  if (v.which == -1 && strcmp(which, "max-recipients") != 0)
    v.which = -2; /* neither a kind nor the cap */
  if (v.which != -1 && v.which != OBSPAM_SUBSCRIPTION &&
      v.which != OBSPAM_DOMAIN && v.which != OBSPAM_MAILBOX) {
    snprintf(msg, msg_size,
             "bad limit '%.64s': expected subscription, domain, mailbox or "
             "max-recipients",
             which);
    return OBSPAM_EINVAL;
  }
  /* The limits each kind holds (obspam_set_limit), said before the
     engine is touched, so that a refused change changes nothing. */
  if (v.which >= 0 && (kind == OBSPAM_MAILBOX  ? v.which != OBSPAM_MAILBOX
                       : kind == OBSPAM_DOMAIN ? v.which == OBSPAM_SUBSCRIPTION
                                               : 0)) {
    snprintf(msg, msg_size, "a %s has no %s limit: expected %s",
             obspamd_kind_name(kind), which,
             kind == OBSPAM_MAILBOX ? "mailbox" : "domain or mailbox");
    return OBSPAM_EINVAL;
  }
  if (strlen(name) > OBSPAM_NAME_MAX) {
    snprintf(msg, msg_size, "name is longer than %d bytes", OBSPAM_NAME_MAX);
    return OBSPAM_EINVAL;
  }
  memcpy(v.name, name, strlen(name) + 1);
  for (i = 0; v.name[i]; i++)
    if (v.name[i] >= 'A' && v.name[i] <= 'Z')
      v.name[i] = (char)(v.name[i] - 'A' + 'a');
  if (parse_value(value, &v, why, sizeof(why)) != 0) {
    snprintf(msg, msg_size, "%s", why);
    return OBSPAM_EINVAL;
  }

  pthread_mutex_lock(&s->lock);
  o = obspamd__overrides_get(s);
  for (i = 0; o != NULL && i < o->n; i++)
    if (o->list[i].kind == v.kind && o->list[i].which == v.which &&
        strcmp(o->list[i].name, v.name) == 0)
      slot = &o->list[i];
  if (o != NULL && slot == NULL && o->n == o->size) {
    size_t size = o->size ? o->size * 2 : 16;
    override *bigger = realloc(o->list, size * sizeof(*bigger));
    if (bigger != NULL) {
      o->list = bigger;
      o->size = size;
    }
  }
  if (o == NULL || (slot == NULL && o->n == o->size)) {
    pthread_mutex_unlock(&s->lock);
    snprintf(msg, msg_size, "out of memory");
    return OBSPAM_ENOMEM;
  }
  rc = apply(s->engine, &v);
  if (rc != OBSPAM_OK) {
    char err[512];
    obspam_stats st = OBSPAM_STATS_INIT;
    obspam_engine_errmsg_r(s->engine, err, sizeof(err));
    pthread_mutex_unlock(&s->lock);
    /* The library sets limits on declared objects only; an implicit
       mailbox, which status and list show, is "no mailbox" to it. */
    if (rc == OBSPAM_ENOTFOUND && kind == OBSPAM_MAILBOX &&
        obspam_stats_get(s->engine, kind, v.name, 0, &st) == OBSPAM_OK) {
      obspamd__clean(clean, sizeof(clean), v.name,
                     OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8);
      snprintf(msg, msg_size,
               "mailbox %s is not declared (an implicit mailbox of its "
               "domain): give it a mailbox line in the configuration file, "
               "or set its domain's mailbox limit",
               clean);
    } else {
      snprintf(msg, msg_size, "%s", err);
    }
    return rc;
  }
  v.line = line_of(o, kind, v.name);
  if (slot == NULL) {
    slot = &o->list[o->n++];
    *slot = v;
  } else {
    int w;
    for (w = 0; w < 3; w++)
      if (v.set & (1u << w)) {
        slot->value[w] = v.value[w];
        slot->set |= 1u << w;
      }
  }
  pthread_mutex_unlock(&s->lock);
  value_text(&v, shown, sizeof(shown));
  obspamd__clean(clean, sizeof(clean), v.name,
                 OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8);
  obspamd_log(LOG_NOTICE,
              "set-limit kind=%s object=%s limit=%s value=%s uid=%ld: kept "
              "until the configuration changes that object",
              obspamd_kind_name(kind), clean, which_name(v.which), shown, uid);
  snprintf(msg, msg_size,
           "%s %s: %s limit set to %s until the configuration file changes "
           "that %s",
           obspamd_kind_name(kind), clean, which_name(v.which), shown,
           obspamd_kind_name(kind));
  return OBSPAM_OK;
}

size_t obspamd__overrides_loaded(obspamd_service *s, obspam_engine *e,
                                 const char *text, size_t len) {
  struct obspamd__overrides *o = obspamd__overrides_get(s);
  line_hash *lines = NULL;
  size_t nlines = 0, i, kept = 0, dropped_n;

  if (o == NULL)
    return 0;
  if (text != NULL && scan_lines(text, len, &lines, &nlines) != 0)
    lines = NULL; /* out of memory: nothing can be compared */
  for (i = 0; i < o->n; i++) {
    override *v = &o->list[i];
    char shown[96], clean[OBSPAM_NAME_MAX + 1], err[512] = "";
    const char *dropped = NULL;
    uint64_t line = 0;

    if (lines != NULL) {
      line_hash key, *found;
      key.object = object_hash(v->kind, v->name, strlen(v->name));
      found = bsearch(&key, lines, nlines, sizeof(key), compare_lines);
      line = found ? found->line : 0;
    }
    if (lines == NULL)
      dropped = "the configuration could not be compared";
    else if (line != v->line)
      dropped = "the configuration file changes that object";
    else if (apply(e, v) != OBSPAM_OK) {
      obspam_engine_errmsg_r(e, err, sizeof(err));
      dropped = err;
    }
    value_text(v, shown, sizeof(shown));
    obspamd__clean(clean, sizeof(clean), v->name,
                   OBSPAMD__CLEAN_NO_BLANK | OBSPAMD__CLEAN_UTF8);
    if (dropped != NULL) {
      obspamd_log(LOG_NOTICE,
                  "set-limit dropped kind=%s object=%s limit=%s value=%s: %s",
                  obspamd_kind_name(v->kind), clean, which_name(v->which),
                  shown, dropped);
    } else {
      obspamd_log(LOG_NOTICE,
                  "set-limit kept kind=%s object=%s limit=%s value=%s: the "
                  "configuration file does not change that object",
                  obspamd_kind_name(v->kind), clean, which_name(v->which),
                  shown);
      o->list[kept++] = *v;
    }
  }
  dropped_n = o->n - kept;
  o->n = kept;
  free(o->lines);
  o->lines = lines;
  o->nlines = lines != NULL ? nlines : 0;
  return dropped_n;
}

struct obspamd__overrides *obspamd__overrides_new(void) {
  return calloc(1, sizeof(struct obspamd__overrides));
}

void obspamd__overrides_free(struct obspamd__overrides *o) {
  if (o == NULL)
    return;
  free(o->lines);
  free(o->list);
  free(o);
}
