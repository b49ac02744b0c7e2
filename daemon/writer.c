/*
 * writer: group commit. One thread owns store_write(); it takes every waiting batch (up to
 * group_events events), writes them in one transaction and answers each call afterwards,
 * so an acknowledged event is always durable.
 */
#include "writer.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "touchpoint/touchpoint.h"
#include "touchpoint/v1/ingest.pb-c.h"

struct writer_item {
	struct rpc_call *call;
	Touchpoint__V1__Event **events;
	size_t n;
	struct store_prepared *prep; /* freed by the writer after the commit */
};

struct writer {
	struct store *store;
	size_t group_events;
	unsigned beat_ms;
	char *stall_file;
	int priority; /* SCHED_FIFO priority asked for (writer_options) */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct writer_item *q; /* ring of cap items */
	size_t cap, head, len;
	int stop;
	atomic_uint_fast64_t beat;
	/* The writer thread's own buffers, reused from group to group. */
	struct writer_item *group;
	struct store_batch *batches;
	struct store_batch **bp;
	uint8_t *dup;
	size_t dupcap;
	uint32_t *idx;
	size_t idxcap;
};

static double
writer_elapsed(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Grows *buf to hold n elements of size sz; -1 on allocation failure. */
static int
writer_reserve(void **buf, size_t *cap, size_t n, size_t sz)
{
	void *p;
	size_t c = *cap;

	if (n <= c)
		return 0;
	while (c < n)
		c = c == 0 ? 4096 : c * 2;
	if ((p = realloc(*buf, c * sz)) == NULL)
		return -1;
	*buf = p;
	*cap = c;
	return 0;
}

static void
writer_answer(struct writer *w, struct store_batch *b, struct rpc_call *call)
{
	Touchpoint__V1__SendResponse resp = TOUCHPOINT__V1__SEND_RESPONSE__INIT;
	size_t nd = 0;

	resp.accepted = b->accepted;
	resp.duplicates = b->duplicates;
	if (b->duplicates > 0 &&
	    writer_reserve((void **)&w->idx, &w->idxcap, b->n, sizeof(uint32_t)) == 0) {
		for (size_t i = 0; i < b->n; i++)
			if (b->dup[i])
				w->idx[nd++] = (uint32_t)i;
		resp.duplicate_indexes = w->idx;
		resp.n_duplicate_indexes = nd;
	}
	rpc_finish(call, TP_OK, &resp.base, NULL);
}

/* One group: write, then answer every call in it. */
static void
writer_commit(struct writer *w, size_t ngroup)
{
	struct timespec t0;
	size_t nb = 0, events = 0, off = 0;
	char err[256];
	int rv;

	for (size_t i = 0; i < ngroup; i++) {
		struct writer_item *it = &w->group[i];

		if (rpc_call_expired(it->call)) {
			rpc_finish(
			    it->call, TP_DEADLINE_EXCEEDED, NULL,
			    "deadline passed while queued for the writer; nothing was stored");
			it->call = NULL;
			continue;
		}
		events += it->n;
	}
	if (writer_reserve((void **)&w->dup, &w->dupcap, events, 1) != 0) {
		for (size_t i = 0; i < ngroup; i++)
			if (w->group[i].call != NULL)
				rpc_finish(w->group[i].call, TP_RESOURCE_EXHAUSTED, NULL,
				           "out of memory, retry later");
		return;
	}
	if (events == 0)
		return; /* every call of the group expired: answered above */
	memset(w->dup, 0, events);
	for (size_t i = 0; i < ngroup; i++) {
		struct writer_item *it = &w->group[i];
		struct store_batch *b = &w->batches[nb];

		if (it->call == NULL)
			continue;
		b->events = it->events;
		b->n = it->n;
		b->prep = it->prep;
		b->dup = w->dup + off;
		b->accepted = 0;
		b->duplicates = 0;
		off += it->n;
		w->bp[nb++] = b;
	}
	if (nb == 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rv = store_write(w->store, w->bp, nb, err, sizeof(err));
	metrics_commit(nb, events, writer_elapsed(&t0));
	if (rv != TP_OK) {
		log_err("writer: commit failed: code=%d batches=%zu events=%zu: %s", rv, nb, events,
		        err);
		metrics_commit_failed(); /* a full disk, say: not the clients' invalid events */
	}
	nb = 0;
	for (size_t i = 0; i < ngroup; i++) {
		struct writer_item *it = &w->group[i];

		if (it->call == NULL)
			continue;
		if (rv == TP_OK) {
			metrics_ingest(w->batches[nb].accepted, w->batches[nb].duplicates, 0);
			writer_answer(w, &w->batches[nb], it->call);
		} else if (rv == TP_RESOURCE_EXHAUSTED) {
			/* store_write() says which resource: disk, map, memory, an LMDB limit */
			rpc_finish(
			    it->call, rv, NULL,
			    "the store cannot take it now (%s), nothing was stored; retry later",
			    err);
		} else {
			rpc_finish(it->call, rv, NULL,
			           "store write failed (%s), nothing was stored", err);
		}
		nb++;
	}
}

/*
 * Every acknowledgement waits on this one thread, and on 2 cores it often woke to find both
 * busy (NNG's workers, the clients): 15-20 % of a 4-client ingest was its runqueue wait
 * (docs/BENCHMARKS.md "Session 20"). As SCHED_FIFO it runs as soon as it wakes; it sleeps
 * in fdatasync and on its queue most of the time, so it cannot starve the others. Off by
 * default: it makes a reply-leaking race of NNG 1.5.2 ~10x likelier (docs/architecture.md).
 */
static void
writer_realtime(struct writer *w)
{
	struct sched_param sp = { .sched_priority = w->priority };
	int rv;

	if (w->priority <= 0)
		return;
	if ((rv = pthread_setschedparam(w->thread, SCHED_FIFO, &sp)) != 0) {
		log_notice("writer: stays in the normal scheduler (SCHED_FIFO %d: %s; needs "
		           "CAP_SYS_NICE or LimitRTPRIO=%d, and under systemd RestrictRealtime=no "
		           "and sched_setscheduler allowed: docs/operations.md)",
		           w->priority, strerror(rv), w->priority);
		return;
	}
	metrics_writer_priority(w->priority);
	log_info("writer: SCHED_FIFO priority %d", w->priority);
}

static void *
writer_main(void *arg)
{
	struct writer *w = arg;

	(void)prctl(PR_SET_NAME, "tp-writer"); /* for top -H, perf and ps -L; best effort */
	for (;;) {
		struct timespec ts;
		size_t ngroup = 0, events = 0, depth;
		int stop;

		/* The stall hook is for tests of the watchdog: no work and no heartbeat. */
		if (w->stall_file != NULL && access(w->stall_file, F_OK) == 0) {
			pthread_mutex_lock(&w->mu);
			stop = w->stop;
			pthread_mutex_unlock(&w->mu);
			if (!stop) {
				struct timespec nap = { 0, 50 * 1000000 };

				nanosleep(&nap, NULL);
				continue;
			}
		}
		atomic_fetch_add(&w->beat, 1);
		pthread_mutex_lock(&w->mu);
		if (w->len == 0 && !w->stop) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += (long)w->beat_ms * 1000000;
			ts.tv_sec += ts.tv_nsec / 1000000000;
			ts.tv_nsec %= 1000000000;
			pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		}
		if (w->len == 0 && w->stop) {
			pthread_mutex_unlock(&w->mu);
			break;
		}
		/* Every waiting batch up to the cap, but always at least one. */
		while (w->len > 0 && (ngroup == 0 || events + w->q[w->head].n <= w->group_events)) {
			w->group[ngroup++] = w->q[w->head];
			events += w->q[w->head].n;
			w->head = (w->head + 1) % w->cap;
			w->len--;
		}
		depth = w->len;
		pthread_mutex_unlock(&w->mu);
		metrics_queue_depth(depth);
		if (ngroup > 0) {
			writer_commit(w, ngroup);
			for (size_t i = 0; i < ngroup; i++) {
				store_prepared_free(w->group[i].prep);
				w->group[i].prep = NULL;
			}
			atomic_fetch_add(&w->beat, 1);
		}
	}
	return NULL;
}

int
writer_start(struct writer **wp, const struct writer_options *o, char *errbuf, size_t errlen)
{
	struct writer *w;
	pthread_condattr_t ca;
	int rv;

	*wp = NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		goto nomem;
	w->store = o->store;
	w->cap = o->queue_depth > 0 ? o->queue_depth : 1;
	w->group_events = o->group_events > 0 ? o->group_events : 1;
	w->beat_ms = o->beat_ms > 0 && o->beat_ms <= 500 ? o->beat_ms : 250;
	atomic_init(&w->beat, 0);
	w->priority = o->priority;
	if (o->stall_file != NULL && (w->stall_file = strdup(o->stall_file)) == NULL)
		goto nomem;
	if ((w->q = calloc(w->cap, sizeof(*w->q))) == NULL ||
	    (w->group = calloc(w->cap, sizeof(*w->group))) == NULL ||
	    (w->batches = calloc(w->cap, sizeof(*w->batches))) == NULL ||
	    (w->bp = calloc(w->cap, sizeof(*w->bp))) == NULL)
		goto nomem;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((rv = pthread_create(&w->thread, NULL, writer_main, w)) != 0) {
		snprintf(errbuf, errlen, "writer: cannot start its thread: %s", strerror(rv));
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		goto fail;
	}
	writer_realtime(w); /* here, not in the thread: settled before the daemon is ready */
	*wp = w;
	return TP_OK;
nomem:
	snprintf(errbuf, errlen, "writer: out of memory");
fail:
	if (w != NULL) {
		free(w->stall_file);
		free(w->q);
		free(w->group);
		free(w->batches);
		free(w->bp);
		free(w);
	}
	return TP_RESOURCE_EXHAUSTED;
}

int
writer_submit(struct writer *w, struct rpc_call *call, Touchpoint__V1__Event **events, size_t n,
              struct store_prepared *prep)
{
	int rv = TP_OK;

	pthread_mutex_lock(&w->mu);
	if (w->stop) {
		rv = TP_UNAVAILABLE;
	} else if (w->len == w->cap) {
		rv = TP_RESOURCE_EXHAUSTED;
	} else {
		struct writer_item *it = &w->q[(w->head + w->len) % w->cap];

		it->call = call;
		it->events = events;
		it->n = n;
		it->prep = prep;
		w->len++;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return rv;
}

uint64_t
writer_heartbeat(struct writer *w)
{
	return atomic_load(&w->beat);
}

void
writer_stop(struct writer *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->stall_file);
	free(w->q);
	free(w->group);
	free(w->batches);
	free(w->bp);
	free(w->dup);
	free(w->idx);
	free(w);
}
