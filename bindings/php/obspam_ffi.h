/* SPDX-License-Identifier: MIT */
/*
 * libobspam v1 for PHP's FFI::cdef(), which reads C declarations but no
 * preprocessor directives: the typedefs, structures and functions of
 * include/obspam.h, copied without the macros. The constants (OBSPAM_*
 * values, *_INIT initialisers) are class constants of Obspam\Engine in
 * src/Engine.php.
 *
 * Keep it in step with include/obspam.h: tests/bindings/check_ffi_decls.py
 * checks that both declare the same functions with the same signatures and
 * the same structures with the same fields, in the same order.
 */

typedef struct obspam_engine obspam_engine;

typedef struct obspam_message {
  uint32_t struct_size;
  uint32_t flags;
  const char *sasl_username;
  const char *sender;
  const char *client_address;
  uint32_t recipients;
  int64_t uid;
  const char *domain_hint;
  const char *script;
  int64_t time;
} obspam_message;

typedef struct obspam_verdict {
  uint32_t struct_size;
  int32_t action;
  int32_t kind;
  int64_t limit;
  int64_t count;
  int64_t retry_after;
  char object[328];
  int64_t window;
} obspam_verdict;

typedef struct obspam_stats {
  uint32_t struct_size;
  int32_t sending;
  int64_t limit;
  int64_t count;
  int64_t refused;
  int64_t refused_total;
  int64_t last_refused;
  int64_t exceeded;
  int64_t exceeded_total;
  int64_t limit_minute, count_minute;
  int64_t limit_day, count_day;
  int32_t blocked_kind;
  int32_t disabled;
  char blocked_by[328];
  int64_t last_reset;
  int64_t forwarded;
  int64_t list_deliveries;
} obspam_stats;

typedef struct obspam_report_row {
  uint32_t struct_size;
  int32_t kind;
  const char *name;
  int64_t sent;
  int64_t refused;
  int64_t first_refused, last_refused;
  int64_t exceeded;
  int64_t window;
  const char *subscription;
  int64_t uid;
  int64_t forwarded;
  int64_t list_deliveries;
} obspam_report_row;

typedef struct obspam_notice {
  uint32_t struct_size;
  int32_t kind;
  const char *name;
  const char *subscription;
  const char *contact;
  int64_t limit;
  int64_t sent, refused;
  int64_t first_refused, last_refused;
  int64_t period_start, period_end;
  int64_t exceeded;
  int64_t window;
} obspam_notice;

unsigned int obspam_version(void);
const char *obspam_version_string(void);
const char *obspam_strerror(int err);
const char *obspam_kind_name(int kind);

int obspam_engine_new(obspam_engine **out);
void obspam_engine_free(obspam_engine *e);
const char *obspam_engine_errmsg(const obspam_engine *e);
int obspam_engine_errmsg_r(const obspam_engine *e, char *buf, size_t size);

int obspam_set_option(obspam_engine *e, int option, int64_t value);
int obspam_get_option(obspam_engine *e, int option, int64_t *value);

int obspam_add(obspam_engine *e, int kind, const char *name,
               const char *parent);
int obspam_remove(obspam_engine *e, int kind, const char *name);
int obspam_set_limit(obspam_engine *e, int kind, const char *name, int which,
                     int64_t per_hour);
int obspam_effective_limit(obspam_engine *e, int kind, const char *name,
                           int64_t *per_hour);
int obspam_set_window_limit(obspam_engine *e, int kind, const char *name,
                            int which, int64_t window, int64_t limit);
int obspam_effective_window_limit(obspam_engine *e, int kind, const char *name,
                                  int64_t window, int64_t *limit);
int obspam_set_max_recipients(obspam_engine *e, int kind, const char *name,
                              int64_t max);
int obspam_effective_max_recipients(obspam_engine *e, int kind,
                                    const char *name, int64_t *max);
int obspam_set_uid(obspam_engine *e, const char *subscription, int64_t uid);
int obspam_set_scripts_allowed(obspam_engine *e, int kind, const char *name,
                               int allowed);
int obspam_set_contact(obspam_engine *e, const char *subscription,
                       const char *email);

int obspam_whitelist_add(obspam_engine *e, const char *cidr);
int obspam_whitelist_remove(obspam_engine *e, const char *cidr);

int obspam_local_network_add(obspam_engine *e, const char *cidr);
int obspam_local_network_remove(obspam_engine *e, const char *cidr);

int obspam_forward_add(obspam_engine *e, const char *address, int remote);
int obspam_forward_remove(obspam_engine *e, const char *address);
int obspam_forward_lookup(obspam_engine *e, const char *address, uint32_t *flag,
                          char *mailbox, size_t size);
int obspam_mailing_list_add(obspam_engine *e, const char *address);
int obspam_mailing_list_remove(obspam_engine *e, const char *address);
int obspam_mailing_list_match(obspam_engine *e, const char *sender,
                              const char *client_address, int *match);

int obspam_load_config(obspam_engine *e, const char *path);
int obspam_load_config_string(obspam_engine *e, const char *text);

int obspam_decide(obspam_engine *e, const obspam_message *msg,
                  obspam_verdict *out);
int obspam_check(obspam_engine *e, const obspam_message *msg,
                 obspam_verdict *out);
int obspam_decide_batch(obspam_engine *e, const obspam_message *const *msgs,
                        obspam_verdict *const *out, int *rc, size_t n);
int obspam_decide_start(obspam_engine *e, const obspam_message *const *msgs,
                        obspam_verdict *const *out, int *rc,
                        const uint32_t *how, size_t n, void (*done)(void *arg),
                        void *arg);

int obspam_stats_get(obspam_engine *e, int kind, const char *name, int64_t now,
                     obspam_stats *out);

int obspam_history(obspam_engine *e, int kind, const char *name, int64_t from,
                   int64_t to,
                   void (*fn)(int64_t hour_start, int64_t sent, int64_t refused,
                              void *ud),
                   void *ud);
int obspam_report(obspam_engine *e, int64_t from, int64_t to,
                  void (*fn)(const obspam_report_row *row, void *ud), void *ud);

int obspam_enumerate(obspam_engine *e, int kind, const char *parent,
                     uint32_t flags, const char *after, size_t max, int64_t now,
                     int (*fn)(int kind, const char *name,
                               const obspam_stats *st, void *ud),
                     void *ud);
int obspam_top(obspam_engine *e, int kind, int64_t from, int64_t to, size_t n,
               void (*fn)(const obspam_report_row *row, void *ud), void *ud);
int obspam_reset(obspam_engine *e, int kind, const char *name, int64_t now);
int obspam_set_unknown_uid_subscription(obspam_engine *e,
                                        const char *subscription);

int obspam_set_notify(obspam_engine *e,
                      void (*fn)(const obspam_notice *n, void *ud), void *ud);
int obspam_notify_flush(obspam_engine *e, int64_t now);

int obspam_state_save(obspam_engine *e, const char *path);
int obspam_state_load(obspam_engine *e, const char *path);

int obspam_set_store(obspam_engine *e, const char *uri, const char *prefix);
int obspam_store_status(obspam_engine *e, int64_t *shared, int64_t *up,
                        int64_t *episodes, int64_t *fallback_decisions);
int obspam_store_backlog(obspam_engine *e, int64_t *ledger_pending,
                         int64_t *ledger_added, int64_t *ledger_dropped,
                         int64_t *keys_pending, int64_t *keys_deleted);

int obspam_implicit_status(obspam_engine *e, int64_t *count, int64_t *overflow,
                           int64_t *episodes);

int obspam_journal_open(obspam_engine *e, const char *state_path,
                        unsigned flags, int64_t *replayed, int64_t *ignored);
int obspam_journal_flush(obspam_engine *e);
int obspam_journal_close(obspam_engine *e);
