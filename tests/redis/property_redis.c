/* SPDX-License-Identifier: MIT */
/* The conformance property test (tests/test_property.c, unchanged) with
   every engine it makes keeping its counters in Redis: the same decision
   stream must give the same verdicts and statistics as the reference model,
   which the in-memory store matches in the ordinary suite.

   Built by tests/redis/run.sh; OBSPAM_TEST_REDIS names the Redis. Each
   engine gets a key prefix of its own, so the seeds do not see each
   other's counters. */
#define obspam_engine_new property_engine_new
#define obspam_engine_free property_engine_free
#include "test_property.c"
#undef obspam_engine_new
#undef obspam_engine_free

#include <unistd.h>

OBSPAM_API int obspam_engine_new(obspam_engine **out);
OBSPAM_API void obspam_engine_free(obspam_engine *e);

/* A decision that fell back to memory would make the comparison vacuous:
   every engine must have decided everything on Redis. */
void property_engine_free(obspam_engine *eng) {
  int64_t shared = 0, up = 0, episodes = 0, fallbacks = 0;

  if (eng != NULL) {
    obspam_store_status(eng, &shared, &up, &episodes, &fallbacks);
    if (shared != 1 || episodes != 0 || fallbacks != 0) {
      fprintf(stderr,
              "not all on Redis: shared %lld episodes %lld fallbacks %lld\n",
              (long long)shared, (long long)episodes, (long long)fallbacks);
      abort();
    }
  }
  obspam_engine_free(eng);
}

int property_engine_new(obspam_engine **out) {
  static unsigned serial;
  const char *uri = getenv("OBSPAM_TEST_REDIS");
  char prefix[64];
  int rc = obspam_engine_new(out);

  if (rc != OBSPAM_OK)
    return rc;
  if (uri == NULL) {
    fprintf(stderr, "OBSPAM_TEST_REDIS is not set\n");
    abort();
  }
  snprintf(prefix, sizeof(prefix), "prop-%d-%u:", (int)getpid(), serial++);
  rc = obspam_set_store(*out, uri, prefix);
  if (rc != OBSPAM_OK) {
    fprintf(stderr, "set_store: %s\n", obspam_engine_errmsg(*out));
    abort();
  }
  /* A Redis that fsyncs every write on a busy machine may take longer
     than the default 200 ms now and then: that decision would fall back
     to memory, and a verdict would differ before the check above could
     say why. */
  obspam_set_option(*out, OBSPAM_OPT_STORE_TIMEOUT_MS, 10000);
  return OBSPAM_OK;
}
