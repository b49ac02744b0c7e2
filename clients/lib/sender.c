/*
 * tp_sender: a bounded queue of event copies drained by one background thread that
 * batches, retries with backoff (same ids, so exactly-once in the store) and reports
 * events that will never be stored.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

struct tp_sender {
	tp_client *c;
	struct tp_sender_options o;
	pthread_mutex_t mu;
	pthread_cond_t cv_work;  /* the thread waits for events, flushes, closing */
	pthread_cond_t cv_space; /* blocked adders wait for room */
	pthread_cond_t cv_done;  /* flushers wait for progress */
	struct tp_event **ring;  /* FIFO of copies; the batch in flight stays at its head */
	int64_t *added_ms;       /* when each ring slot was added */
	size_t head, count;
	uint64_t added, done, flush_target;
	int closing;
	unsigned users; /* callers inside add/flush: close frees the sender once none is */
	struct tp_sender_stats st;
	/* The thread's own buffers, max_batch long. */
	struct tp_event *batch, *bad;
	unsigned char *isbad;
	pthread_t thr;
	int thr_started;
};

static int64_t
tp_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timespec
tp_abstime(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	return ts;
}

static int
tp_retryable(int status)
{
	return status == TP_UNAVAILABLE || status == TP_DEADLINE_EXCEEDED ||
	       status == TP_RESOURCE_EXHAUSTED;
}

/* Hands events that will not be stored to on_error; called without the lock. */
static void
tp_reject(tp_sender *s, const struct tp_result *res, const struct tp_event *evs, size_t n)
{
	if (n == 0)
		return;
	if (s->o.on_error != NULL)
		s->o.on_error(s->o.arg, res, evs, n);
	pthread_mutex_lock(&s->mu);
	s->st.rejected += n;
	s->st.sent += n;
	pthread_mutex_unlock(&s->mu);
}

/* Sleeps ms unless the sender closes; returns 0 when closing. */
static int
tp_backoff(tp_sender *s, unsigned ms)
{
	struct timespec until = tp_abstime(tp_mono_ms() + ms);
	int alive;

	pthread_mutex_lock(&s->mu);
	s->st.retries++;
	while (!s->closing && pthread_cond_timedwait(&s->cv_work, &s->mu, &until) != ETIMEDOUT)
		;
	alive = !s->closing;
	pthread_mutex_unlock(&s->mu);
	return alive;
}

/*
 * Drops the events the violations name from evs[0..*m), handing them to on_error with
 * the violations re-indexed into that subset. Returns 0 when the violations do not all
 * name events of the batch (then the caller rejects everything).
 */
static int
tp_split_invalid(tp_sender *s, struct tp_result *res, struct tp_event *evs, size_t *m)
{
	size_t i, nbad = 0, ngood = 0, *pos;

	if (res->nviolations == 0)
		return 0;
	for (i = 0; i < res->nviolations; i++)
		if (res->violations[i].index < 0 || (size_t)res->violations[i].index >= *m)
			return 0;
	memset(s->isbad, 0, *m);
	for (i = 0; i < res->nviolations; i++)
		s->isbad[res->violations[i].index] = 1;
	if ((pos = calloc(*m, sizeof(*pos))) == NULL)
		return 0;
	for (i = 0; i < *m; i++) {
		if (s->isbad[i]) {
			pos[i] = nbad;
			s->bad[nbad++] = evs[i];
		} else {
			evs[ngood++] = evs[i];
		}
	}
	for (i = 0; i < res->nviolations; i++)
		res->violations[i].index = (int)pos[res->violations[i].index];
	free(pos);
	tp_reject(s, res, s->bad, nbad);
	*m = ngood;
	return 1;
}

/* Sends evs[0..n) until every event is acknowledged or rejected (or the sender closes). */
static void
tp_send_batch(tp_sender *s, struct tp_event *evs, size_t n)
{
	struct tp_result res;
	unsigned backoff = s->o.retry_initial_ms;
	size_t lim = n, k, k0;
	int status, too_big;

	while (n > 0) {
		k = k0 = n < lim ? n : lim;
		status = tp__send(s->c, evs, k, &res, &too_big);
		if (status == TP_OK) {
			pthread_mutex_lock(&s->mu);
			s->st.accepted += res.accepted;
			s->st.duplicates += res.duplicates;
			s->st.sent += k;
			pthread_mutex_unlock(&s->mu);
			evs += k;
			n -= k;
			backoff = s->o.retry_initial_ms;
		} else if (too_big && k > 1) {
			/* Unusually large events: halve the batch rather than fail it. */
			lim = k / 2;
		} else if (tp_retryable(status) && !too_big) {
			if (!tp_backoff(s, backoff)) {
				tp_reject(s, &res, evs, n);
				n = 0;
			}
			backoff = backoff * 2 < s->o.retry_max_ms ? backoff * 2 : s->o.retry_max_ms;
		} else if (status == TP_INVALID_ARGUMENT && tp_split_invalid(s, &res, evs, &k)) {
			/* The good ones of the chunk stay first; the unsent rest moves up. */
			memmove(evs + k, evs + k0, (n - k0) * sizeof(*evs));
			n -= k0 - k;
		} else {
			tp_reject(s, &res, evs, k);
			evs += k;
			n -= k;
		}
		tp_result_free(&res);
	}
}

static void *
tp_sender_main(void *arg)
{
	tp_sender *s = arg;
	size_t nb, i;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->closing) {
			int64_t due;
			struct timespec until;

			if (s->count >= s->o.max_batch)
				break;
			if (s->count == 0) {
				pthread_cond_wait(&s->cv_work, &s->mu);
				continue;
			}
			if (s->done < s->flush_target)
				break;
			due = s->added_ms[s->head] + s->o.flush_interval_ms;
			if (tp_mono_ms() >= due)
				break;
			until = tp_abstime(due);
			pthread_cond_timedwait(&s->cv_work, &s->mu, &until);
		}
		if (s->closing)
			break;
		nb = s->count < s->o.max_batch ? s->count : s->o.max_batch;
		for (i = 0; i < nb; i++)
			s->batch[i] = *s->ring[(s->head + i) % s->o.max_queue];
		pthread_mutex_unlock(&s->mu);
		tp_send_batch(s, s->batch, nb);
		pthread_mutex_lock(&s->mu);
		for (i = 0; i < nb; i++) {
			free(s->ring[s->head]);
			s->ring[s->head] = NULL;
			s->head = (s->head + 1) % s->o.max_queue;
		}
		s->count -= nb;
		s->done += nb;
		pthread_cond_broadcast(&s->cv_space);
		pthread_cond_broadcast(&s->cv_done);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void
tp_sender_free(tp_sender *s)
{
	size_t i;

	if (s->ring != NULL)
		for (i = 0; i < s->o.max_queue; i++)
			free(s->ring[i]);
	free(s->ring);
	free(s->added_ms);
	free(s->batch);
	free(s->bad);
	free(s->isbad);
	pthread_cond_destroy(&s->cv_work);
	pthread_cond_destroy(&s->cv_space);
	pthread_cond_destroy(&s->cv_done);
	pthread_mutex_destroy(&s->mu);
	tp_close(s->c);
	free(s);
}

int
tp_sender_new(tp_sender **sp, const char *endpoint, const struct tp_sender_options *o)
{
	pthread_condattr_t ca;
	struct tp_result res;
	tp_sender *s;
	int status;

	if (sp == NULL)
		return TP_INVALID_ARGUMENT;
	*sp = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return TP_INTERNAL;
	if (o != NULL)
		s->o = *o;
	if (s->o.max_batch == 0)
		s->o.max_batch = 1000;
	if (s->o.flush_interval_ms == 0)
		s->o.flush_interval_ms = 200;
	if (s->o.max_queue == 0)
		s->o.max_queue = 100000;
	if (s->o.retry_initial_ms == 0)
		s->o.retry_initial_ms = 50;
	if (s->o.retry_max_ms == 0)
		s->o.retry_max_ms = 5000;
	if (s->o.max_batch > s->o.max_queue)
		s->o.max_batch = s->o.max_queue;
	if (s->o.retry_max_ms < s->o.retry_initial_ms)
		s->o.retry_max_ms = s->o.retry_initial_ms;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv_work, &ca);
	pthread_cond_init(&s->cv_space, &ca);
	pthread_cond_init(&s->cv_done, &ca);
	pthread_condattr_destroy(&ca);
	status = TP_INTERNAL;
	if ((s->ring = calloc(s->o.max_queue, sizeof(*s->ring))) == NULL ||
	    (s->added_ms = calloc(s->o.max_queue, sizeof(*s->added_ms))) == NULL ||
	    (s->batch = calloc(s->o.max_batch, sizeof(*s->batch))) == NULL ||
	    (s->bad = calloc(s->o.max_batch, sizeof(*s->bad))) == NULL ||
	    (s->isbad = calloc(s->o.max_batch, 1)) == NULL)
		goto fail;
	tp__result_init(&res);
	if ((status = tp__connect(&s->c, endpoint, 0, &res)) != TP_OK)
		goto fail;
	status = TP_INTERNAL;
	if (pthread_create(&s->thr, NULL, tp_sender_main, s) != 0)
		goto fail;
	s->thr_started = 1;
	*sp = s;
	return TP_OK;
fail:
	tp_sender_free(s);
	return status;
}

/* Ends an add or flush (s->mu held, then released); the last one out lets close go on. */
static void
tp_leave(tp_sender *s)
{
	if (--s->users == 0 && s->closing)
		pthread_cond_broadcast(&s->cv_done);
	pthread_mutex_unlock(&s->mu);
}

int
tp_sender_add(tp_sender *s, const struct tp_event *ev)
{
	struct tp_event *e;

	if (s == NULL || ev == NULL || ev->kind < TP_TOUCH || ev->kind > TP_SPEND)
		return TP_INVALID_ARGUMENT;
	if (ev->kind == TP_IDENTIFY &&
	    ((ev->u.identify.count > 0 && ev->u.identify.traits == NULL) ||
	     ev->u.identify.count > TP_SENDER_MAX_TRAITS))
		return TP_INVALID_ARGUMENT;
	if ((e = tp__event_dup(ev)) == NULL)
		return TP_INTERNAL;
	pthread_mutex_lock(&s->mu);
	s->users++;
	while (!s->closing && s->count == s->o.max_queue) {
		if (!s->o.block_when_full) {
			tp_leave(s);
			free(e);
			return TP_RESOURCE_EXHAUSTED;
		}
		pthread_cond_wait(&s->cv_space, &s->mu);
	}
	if (s->closing) {
		tp_leave(s);
		free(e);
		return TP_FAILED_PRECONDITION;
	}
	s->ring[(s->head + s->count) % s->o.max_queue] = e;
	s->added_ms[(s->head + s->count) % s->o.max_queue] = tp_mono_ms();
	s->count++;
	s->added++;
	if (s->count == 1 || s->count == s->o.max_batch)
		pthread_cond_signal(&s->cv_work);
	tp_leave(s);
	return TP_OK;
}

int
tp_flush(tp_sender *s, unsigned timeout_ms)
{
	struct timespec until = tp_abstime(tp_mono_ms() + timeout_ms);
	uint64_t target;
	int status = TP_OK;

	if (s == NULL)
		return TP_INVALID_ARGUMENT;
	pthread_mutex_lock(&s->mu);
	s->users++;
	target = s->added;
	if (target > s->flush_target)
		s->flush_target = target;
	pthread_cond_signal(&s->cv_work);
	while (s->done < target && !s->closing) {
		if (timeout_ms == 0) {
			pthread_cond_wait(&s->cv_done, &s->mu);
		} else if (pthread_cond_timedwait(&s->cv_done, &s->mu, &until) == ETIMEDOUT) {
			status = s->done < target ? TP_DEADLINE_EXCEEDED : TP_OK;
			break;
		}
	}
	if (s->done < target && status == TP_OK)
		status = TP_DEADLINE_EXCEEDED;
	tp_leave(s);
	return status;
}

void
tp_sender_stats(tp_sender *s, struct tp_sender_stats *st)
{
	if (s == NULL || st == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	*st = s->st;
	st->queued = s->count;
	pthread_mutex_unlock(&s->mu);
}

int
tp_sender_close(tp_sender *s, unsigned timeout_ms)
{
	struct tp_result res;
	size_t i;
	int status;

	if (s == NULL)
		return TP_OK;
	status = tp_flush(s, timeout_ms);
	pthread_mutex_lock(&s->mu);
	s->closing = 1;
	pthread_cond_broadcast(&s->cv_work);
	pthread_cond_broadcast(&s->cv_space);
	pthread_cond_broadcast(&s->cv_done);
	/* Adders and flushers woken above still hold the mutex or wait on a condition. */
	while (s->users > 0)
		pthread_cond_wait(&s->cv_done, &s->mu);
	pthread_mutex_unlock(&s->mu);
	/* A call in flight would wait for its own timeout: closing the socket ends it now. */
	if (status != TP_OK)
		tp__shutdown(s->c);
	if (s->thr_started)
		pthread_join(s->thr, NULL);
	if (s->count > 0) {
		tp__result_init(&res);
		tp__fail(&res, TP_DEADLINE_EXCEEDED, "sender closed with %zu events unsent",
		         s->count);
		for (i = 0; i < s->count; i++) {
			struct tp_event *e = s->ring[(s->head + i) % s->o.max_queue];

			tp_reject(s, &res, e, 1);
		}
	}
	tp_sender_free(s);
	return status;
}
