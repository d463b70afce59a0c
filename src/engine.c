#include "engine.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

unsigned int obspam_version(void) { return OBSPAM_VERSION_NUMBER; }

const char *obspam_version_string(void) {
  return STR(OBSPAM_VERSION_MAJOR) "." STR(OBSPAM_VERSION_MINOR) "." STR(
      OBSPAM_VERSION_PATCH);
}

const char *obspam_strerror(int err) {
  switch (err) {
#define XX(name, value, text)                                                  \
  case OBSPAM_##name:                                                          \
    return text;
    OBSPAM_ERRNO_MAP(XX)
#undef XX
  default:
    return "unknown error";
  }
}

const char *obspam__kind_name(int kind) {
  static const char *const names[] = {"server", "plan",    "subscription",
                                      "domain", "mailbox", "script"};

  return kind >= 0 && kind <= OBSPAM_SCRIPT ? names[kind] : "unknown kind";
}

int obspam__fail(obspam_engine *e, int code, const char *fmt, ...) {
  va_list ap;

  pthread_mutex_lock(&e->err_lock);
  va_start(ap, fmt);
  vsnprintf(e->errmsg, sizeof(e->errmsg), fmt, ap);
  va_end(ap);
  pthread_mutex_unlock(&e->err_lock);
  return code;
}

/* ---- options ------------------------------------------------------------- */

static const struct {
  int64_t def, min, max;
} opts[OBSPAM__OPT_MAX + 1] = {
    [OBSPAM_OPT_ENABLED] = {1, 0, 1},
    [OBSPAM_OPT_COUNT_UNIT] = {0, 0, 1},
    [OBSPAM_OPT_ACTION] = {0, 0, 1},
    [OBSPAM_OPT_COUNT_UNAUTHENTICATED] = {1, 0, 1},
    [OBSPAM_OPT_COUNT_FORWARD_LOCAL] = {0, 0, 1},
    [OBSPAM_OPT_COUNT_FORWARD_REMOTE] = {1, 0, 1},
    [OBSPAM_OPT_COUNT_MAILING_LISTS] = {0, 0, 1},
    [OBSPAM_OPT_RETENTION_HOURS] = {720, 1, 87600},
    [OBSPAM_OPT_NOTIFY_PERIOD] = {3600, 60, 2678400},
    [OBSPAM_OPT_NOTIFY_IMMEDIATE] = {0, 0, 1},
};

const char *obspam__opt_check(int option, int64_t value) {
  if (option < 1 || option > OBSPAM__OPT_MAX)
    return "unknown option";
  if (value < opts[option].min || value > opts[option].max)
    return "value out of range";
  return NULL;
}

obspam__conf *obspam__conf_new(void) {
  obspam__conf *c = calloc(1, sizeof(*c));
  int i;

  if (c == NULL)
    return NULL;
  for (i = 1; i <= OBSPAM__OPT_MAX; i++)
    c->opt[i] = opts[i].def;
  obspam__tree_init(&c->tree);
  return c;
}

static void forget(obspam__obj *o, void *store) {
  obspam__store *s = store;

  s->ops->forget(s, o);
}

void obspam__conf_free(obspam__conf *c, obspam__store *store) {
  if (c == NULL)
    return;
  obspam__tree_free(&c->tree, store != NULL ? forget : NULL, store);
  obspam__wl_free(&c->wl);
  free(c);
}

obspam__obj *obspam__conf_find(int kind, const char *name, size_t len,
                               void *conf) {
  const obspam__conf *c = conf;

  if (kind < OBSPAM_PLAN || kind > OBSPAM_MAILBOX)
    return NULL;
  return obspam__tree_find(&c->tree, kind, name, len);
}

void obspam__conf_replace(obspam_engine *e, obspam__conf *next) {
  obspam__conf *old;

  pthread_rwlock_wrlock(&e->lock);
  old = e->conf;
  e->store->ops->carry(e->store, obspam__conf_find, next);
  e->conf = next;
  pthread_rwlock_unlock(&e->lock);
  /* The old objects hold no state any more: nothing to tell the store. */
  obspam__conf_free(old, NULL);
}

int obspam_set_option(obspam_engine *e, int option, int64_t value) {
  const char *why;

  if (e == NULL)
    return OBSPAM_EINVAL;
  why = obspam__opt_check(option, value);
  if (why != NULL) {
    if (option >= 1 && option <= OBSPAM__OPT_MAX)
      return obspam__fail(e, OBSPAM_EINVAL,
                          "option %d: %lld is out of range %lld..%lld", option,
                          (long long)value, (long long)opts[option].min,
                          (long long)opts[option].max);
    return obspam__fail(e, OBSPAM_EINVAL, "unknown option %d", option);
  }
  pthread_rwlock_wrlock(&e->lock);
  e->conf->opt[option] = value;
  pthread_rwlock_unlock(&e->lock);
  return OBSPAM_OK;
}

int obspam_get_option(obspam_engine *e, int option, int64_t *value) {
  if (e == NULL)
    return OBSPAM_EINVAL;
  if (option < 1 || option > OBSPAM__OPT_MAX)
    return obspam__fail(e, OBSPAM_EINVAL, "unknown option %d", option);
  if (value == NULL)
    return obspam__fail(e, OBSPAM_EINVAL, "get_option: value is NULL");
  pthread_rwlock_rdlock(&e->lock);
  *value = e->conf->opt[option];
  pthread_rwlock_unlock(&e->lock);
  return OBSPAM_OK;
}

/* ---- the engine ---------------------------------------------------------- */

int obspam_engine_new(obspam_engine **out) {
  obspam_engine *e;
  pthread_rwlockattr_t attr;

  if (out == NULL)
    return OBSPAM_EINVAL;
  *out = NULL;
  e = calloc(1, sizeof(*e));
  if (e == NULL)
    return OBSPAM_ENOMEM;
  e->conf = obspam__conf_new();
  e->store = obspam__mem_store_new();
  if (e->conf == NULL || e->store == NULL)
    goto nomem;
  /* Decisions never stop, so a writer (a reload, a panel's change) must
     not wait for a moment with no reader: prefer writers. */
  if (pthread_rwlockattr_init(&attr) != 0)
    goto nomem;
  pthread_rwlockattr_setkind_np(&attr,
                                PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  if (pthread_rwlock_init(&e->lock, &attr) != 0) {
    pthread_rwlockattr_destroy(&attr);
    goto nomem;
  }
  pthread_rwlockattr_destroy(&attr);
  if (pthread_mutex_init(&e->err_lock, NULL) != 0) {
    pthread_rwlock_destroy(&e->lock);
    goto nomem;
  }
  *out = e;
  return OBSPAM_OK;
nomem:
  obspam__conf_free(e->conf, NULL);
  if (e->store != NULL)
    e->store->ops->destroy(e->store);
  free(e);
  return OBSPAM_ENOMEM;
}

void obspam_engine_free(obspam_engine *e) {
  if (e == NULL)
    return;
  obspam__conf_free(e->conf, e->store);
  e->store->ops->destroy(e->store);
  pthread_rwlock_destroy(&e->lock);
  pthread_mutex_destroy(&e->err_lock);
  free(e);
}

const char *obspam_engine_errmsg(const obspam_engine *e) {
  return e != NULL ? e->errmsg : "no engine";
}
