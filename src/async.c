/* SPDX-License-Identifier: MIT */
/* obspam_decide_start: decisions handed back through a callback, for
   adapters with an event loop.

   On the in-memory store a decision costs a microsecond: it is made in
   the caller's thread. On a shared store it costs a round trip to Redis,
   so the batch is queued for the engine's own threads (started at the
   first such batch, at most OBSPAM__ASYNC_THREADS). A thread takes every
   batch queued at that moment and decides them together, in their
   order, as one batch: their charges go to Redis in one exchange. So the
   busier the loop, the more batches share a round trip. */
#include <stdlib.h>

#include "engine.h"

typedef struct obspam__job {
  struct obspam__job *next;
  const obspam_message *const *msgs;
  obspam_verdict *const *out;
  int *rc;
  const uint32_t *how;
  size_t n;
  void (*done)(void *arg);
  void *arg;
} job;

/* Decides the jobs of list, in order, as one batch when memory allows,
   each on its own otherwise; then calls each one's done. */
static void run(obspam_engine *e, job *list) {
  const obspam_message **msgs = NULL;
  obspam_verdict **out = NULL;
  uint32_t *how = NULL;
  int *rc = NULL;
  size_t total = 0, at = 0, i;
  job *j, *next;

  for (j = list; j != NULL; j = j->next)
    total += j->n;
  if (list != NULL && list->next != NULL) {
    msgs = malloc(total * sizeof(*msgs));
    out = malloc(total * sizeof(*out));
    how = malloc(total * sizeof(*how));
    rc = malloc(total * sizeof(*rc));
  }
  if (msgs != NULL && out != NULL && how != NULL && rc != NULL) {
    for (j = list; j != NULL; j = j->next)
      for (i = 0; i < j->n; i++, at++) {
        msgs[at] = j->msgs[i];
        out[at] = j->out[i];
        how[at] = j->how != NULL ? j->how[i] : 0;
      }
    (void)obspam__decide_many(e, msgs, out, rc, how, total);
    for (at = 0, j = list; j != NULL; j = j->next)
      for (i = 0; i < j->n; i++)
        j->rc[i] = rc[at++];
  } else {
    for (j = list; j != NULL; j = j->next)
      (void)obspam__decide_many(e, j->msgs, j->out, j->rc, j->how, j->n);
  }
  free(msgs);
  free(out);
  free(how);
  free(rc);
  for (j = list; j != NULL; j = next) {
    next = j->next;
    j->done(j->arg);
    free(j);
  }
}

static void *worker(void *arg) {
  obspam_engine *e = arg;

  pthread_mutex_lock(&e->async_lock);
  for (;;) {
    job *list;

    while (e->queue == NULL && !e->stop)
      pthread_cond_wait(&e->async_work, &e->async_lock);
    if (e->queue == NULL)
      break; /* stopped, and nothing is left */
    list = e->queue;
    e->queue = e->queue_tail = NULL;
    e->busy++;
    pthread_mutex_unlock(&e->async_lock);
    run(e, list);
    pthread_mutex_lock(&e->async_lock);
    e->busy--;
    if (e->queue == NULL && e->busy == 0)
      pthread_cond_broadcast(&e->async_idle);
  }
  pthread_mutex_unlock(&e->async_lock);
  return NULL;
}

void obspam__async_drain(obspam_engine *e) {
  pthread_mutex_lock(&e->async_lock);
  while (e->queue != NULL || e->busy > 0)
    pthread_cond_wait(&e->async_idle, &e->async_lock);
  pthread_mutex_unlock(&e->async_lock);
}

void obspam__async_stop(obspam_engine *e) {
  int i, n;

  pthread_mutex_lock(&e->async_lock);
  e->stop = 1;
  n = e->threads;
  pthread_cond_broadcast(&e->async_work);
  pthread_mutex_unlock(&e->async_lock);
  /* Each thread leaves once the queue is empty: every batch queued has
     been decided and its done called. */
  for (i = 0; i < n; i++)
    pthread_join(e->thread[i], NULL);
}

/* Queues j for the engine's threads, starting them at the first batch.
   0, or -1 when no thread runs (none could be started): j is then the
   caller's. */
static int enqueue(obspam_engine *e, job *j) {
  pthread_mutex_lock(&e->async_lock);
  while (e->threads < OBSPAM__ASYNC_THREADS && !e->stop &&
         pthread_create(&e->thread[e->threads], NULL, worker, e) == 0)
    e->threads++;
  if (e->threads == 0 || e->stop) {
    pthread_mutex_unlock(&e->async_lock);
    return -1;
  }
  j->next = NULL;
  if (e->queue_tail != NULL)
    e->queue_tail->next = j;
  else
    e->queue = j;
  e->queue_tail = j;
  pthread_cond_signal(&e->async_work);
  pthread_mutex_unlock(&e->async_lock);
  return 0;
}

int obspam_decide_start(obspam_engine *e, const obspam_message *const *msgs,
                        obspam_verdict *const *out, int *rc,
                        const uint32_t *how, size_t n, void (*done)(void *arg),
                        void *arg) {
  job *j;

  if (e == NULL)
    return OBSPAM_EINVAL;
  if (done == NULL || (n > 0 && (msgs == NULL || out == NULL || rc == NULL)))
    return obspam__fail(e, OBSPAM_EINVAL, "decide_start: %s is NULL",
                        done == NULL   ? "the done function"
                        : msgs == NULL ? "the message array"
                        : out == NULL  ? "the verdict array"
                                       : "the return code array");
  if (n > 0 && __atomic_load_n(&e->shared, __ATOMIC_RELAXED)) {
    j = malloc(sizeof(*j));
    if (j == NULL)
      return obspam__fail(e, OBSPAM_ENOMEM, "decide_start: out of memory");
    j->msgs = msgs;
    j->out = out;
    j->rc = rc;
    j->how = how;
    j->n = n;
    j->done = done;
    j->arg = arg;
    if (enqueue(e, j) == 0)
      return OBSPAM_OK;
    /* No thread could be started: decided here, as on a local store. */
    free(j);
  }
  (void)obspam__decide_many(e, msgs, out, rc, how, n);
  done(arg);
  return OBSPAM_OK;
}
