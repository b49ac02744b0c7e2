/*
 * query: the pool that answers reads. Each method handler only queues the call; a pool
 * thread runs it against the store (read transactions) and the attribution engine.
 */
#include "query.h"

#include <pthread.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attribution/engine.h"
#include "log.h"
#include "touchpoint/touchpoint.h"
#include "touchpoint/v1/attribution.pb-c.h"
#include "touchpoint/v1/query.pb-c.h"
#include "validate.h"

/* Customers between two deadline checks during a scan. */
#define QUERY_CHECK_EVERY 256
#define QUERY_DAY_US      INT64_C(86400000000)

struct query;
typedef void (*query_fn)(struct query *q, struct rpc_call *call);

struct query_method {
	struct query *q;
	query_fn fn;
	const ProtobufCServiceDescriptor *svc;
	const char *name;
	int lane; /* QUERY_HEAVY, QUERY_LIGHT or QUERY_INLINE */
};

/*
 * Heavy calls (scans, backups) queue for any thread; light ones (one journey) are taken
 * first and have a thread of their own; status is answered at once on NNG's thread (it
 * never waits: store_stats takes no lock a query or a growth holds), so a health check
 * stays fast while every query thread reads a whale journey.
 */
enum { QUERY_HEAVY, QUERY_LIGHT, QUERY_INLINE };

struct query_item {
	struct rpc_call *call;
	query_fn fn;
};

struct query_ring {
	struct query_item *items;
	size_t cap, head, len;
};

struct query_lane {
	struct query *q;
	int light_only;
};

#define QUERY_PAGE_IDLE_US (600 * (int64_t)1000000) /* a paged table is kept this long idle */
/* Paged tables kept at once: each holds a scan's distinct paths (≈ 100 MB at 50 M events). */
#define QUERY_PAGE_TABLES 4

/*
 * Two queues: light calls are taken first by every thread, and one extra thread takes
 * nothing else, so an operator's status or a journey is answered while every other
 * thread is busy with an hour-long attribution.
 */
struct query {
	struct store *store;
	atomic_int_fast64_t default_lookback_s;
	atomic_int abort;
	int64_t start_us;
	pthread_t *threads;
	unsigned nthreads;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct query_ring light, heavy;
	struct query_lane lane_light, lane_any;
	int stop;
	char *stall_file;
	struct query_method methods[5];

	/*
	 * The path tables of the last paged Paths queries, so that the next pages come from
	 * the same snapshot without another scan. Several, so that two analysts exporting at
	 * once both finish; a new paged query past QUERY_PAGE_TABLES replaces the one used
	 * least recently.
	 */
	pthread_mutex_t pmu;
	struct query_ptab {
		struct attr_engine *pe; /* NULL: a free slot */
		uint64_t token;
		uint32_t top;
		int64_t used_us;
	} pt[QUERY_PAGE_TABLES];
	uint64_t pserial;
	int64_t page_idle_us;
	size_t max_reply_bytes; /* the most a reply carries (query_options) */
	unsigned scan_threads;
};

#define QUERY_PAGE_SLACK 4096 /* room for the envelope, totals and counters of a page */

static int64_t
query_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- Journey/GetJourney */

struct journey_paths {
	const struct store_journey *j;
	Touchpoint__V1__JourneyPath **paths;
	size_t n, cap;
};

static void
journey_paths_free(struct journey_paths *jp)
{
	for (size_t i = 0; i < jp->n; i++) {
		free(jp->paths[i]->touch_event_ids);
		free(jp->paths[i]->channels);
		free(jp->paths[i]);
	}
	free(jp->paths);
}

static int
journey_path_cb(void *arg, int converting, size_t conversion_index, const size_t *touch_index,
                size_t ntouches)
{
	struct journey_paths *jp = arg;
	Touchpoint__V1__JourneyPath *p;
	Touchpoint__V1__Event *const *ev = jp->j->events;

	if (jp->n == jp->cap) {
		size_t cap = jp->cap == 0 ? 8 : jp->cap * 2;
		void *np = realloc(jp->paths, cap * sizeof(*jp->paths));

		if (np == NULL)
			return TP_RESOURCE_EXHAUSTED;
		jp->paths = np;
		jp->cap = cap;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	touchpoint__v1__journey_path__init(p);
	jp->paths[jp->n++] = p;
	p->converting = converting != 0;
	if (converting && conversion_index < jp->j->n) {
		const Touchpoint__V1__Event *c = ev[conversion_index];

		p->conversion_event_id = c->event_id;
		p->conversion_timestamp_us = c->timestamp_us;
		if (c->kind_case == TOUCHPOINT__V1__EVENT__KIND_CONVERSION)
			p->value = c->conversion->value;
	}
	if (ntouches == 0)
		return TP_OK;
	if ((p->touch_event_ids = calloc(ntouches, sizeof(char *))) == NULL ||
	    (p->channels = calloc(ntouches, sizeof(char *))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (size_t i = 0; i < ntouches; i++) {
		const Touchpoint__V1__Event *t;

		if (touch_index[i] >= jp->j->n)
			return TP_INTERNAL;
		t = ev[touch_index[i]];
		p->touch_event_ids[i] = t->event_id;
		p->channels[i] = t->kind_case == TOUCHPOINT__V1__EVENT__KIND_TOUCH
		                     ? t->touch->channel
		                     : (char *)"";
	}
	p->n_touch_event_ids = ntouches;
	p->n_channels = ntouches;
	return TP_OK;
}

/* What a page of paths may fill: the reply less room for its envelope and counters. */
static size_t
paths_page_bytes(const struct query *q)
{
	return (q->max_reply_bytes > 2 * QUERY_PAGE_SLACK ? q->max_reply_bytes
	                                                  : 2 * QUERY_PAGE_SLACK) -
	       QUERY_PAGE_SLACK;
}

/* Bytes the tag and length of a repeated message field's element of len bytes take. */
static size_t
field_bytes(size_t len)
{
	size_t n = 2; /* a one-byte tag, at least one length byte */

	for (; len >= 128; len >>= 7)
		n++;
	return n;
}

/*
 * Cuts r (the whole journey) down to the page from offset on: as many events as the reply
 * holds, the paths only in the page at offset 0. Pages are read statelessly, one request
 * each, as of the first page's as_of; a client sees an alias joined in between by the
 * total_events.
 */
static int
journey_page(const struct query *q, uint64_t offset, Touchpoint__V1__GetJourneyResponse *r,
             char *msg, size_t msglen)
{
	/* What rpc.c lets a reply's payload be (rpc_reply_max). */
	size_t budget = q->max_reply_bytes > RPC_REPLY_ENVELOPE
	                    ? q->max_reply_bytes - RPC_REPLY_ENVELOPE
	                    : 0,
	       used, k, len;

	if (offset > r->n_events || (offset == r->n_events && offset > 0)) {
		snprintf(msg, msglen, "offset: is %llu, the journey has %zu events",
		         (unsigned long long)offset, r->n_events);
		return TP_OUT_OF_RANGE;
	}
	r->offset = offset;
	r->events += offset;
	r->n_events -= offset;
	if (offset > 0)
		r->n_paths = 0;
	k = r->n_events;
	r->n_events = 0;
	used = protobuf_c_message_get_packed_size(&r->base);
	if (used > budget) {
		snprintf(msg, msglen,
		         "paths: the journey's paths alone take %zu bytes, over the %zu a reply "
		         "may hold",
		         used, budget);
		return TP_RESOURCE_EXHAUSTED;
	}
	while (r->n_events < k) {
		len = protobuf_c_message_get_packed_size(&r->events[r->n_events]->base);
		if (used + field_bytes(len) + len > budget)
			break;
		used += field_bytes(len) + len;
		r->n_events++;
	}
	if (r->n_events == 0 && k > 0) {
		snprintf(msg, msglen,
		         "events: event %llu%s takes more than the %zu bytes a reply may hold",
		         (unsigned long long)offset, offset == 0 ? " with the paths" : "", budget);
		return TP_RESOURCE_EXHAUSTED;
	}
	return TP_OK;
}

static void
query_journey(struct query *q, struct rpc_call *call)
{
	const Touchpoint__V1__GetJourneyRequest *req =
	    (const Touchpoint__V1__GetJourneyRequest *)rpc_call_request(call);
	Touchpoint__V1__GetJourneyResponse resp = TOUCHPOINT__V1__GET_JOURNEY_RESPONSE__INIT;
	struct journey_paths jp = { 0 };
	struct store_journey *j = NULL;
	size_t idlen = strlen(req->customer_id);
	char msg[160];
	int64_t lookback = atomic_load(&q->default_lookback_s);
	int rv;

	if (idlen == 0 || idlen > 256 || !validate_utf8(req->customer_id, idlen)) {
		rpc_finish(call, TP_INVALID_ARGUMENT, NULL,
		           "customer_id: must be 1-256 bytes of UTF-8");
		return;
	}
	if (req->lookback_case == TOUCHPOINT__V1__GET_JOURNEY_REQUEST__LOOKBACK_LOOKBACK_S) {
		if (req->lookback_s < 0) {
			rpc_finish(call, TP_INVALID_ARGUMENT, NULL,
			           "lookback_s: is %lld, must be >= 0 (0: unlimited)",
			           (long long)req->lookback_s);
			return;
		}
		lookback = req->lookback_s;
	}
	if ((rv = store_journey_as_of(q->store, req->customer_id, req->as_of, &j)) != TP_OK) {
		/* The id goes back to the client that sent it, never into the log. */
		if (rv == TP_NOT_FOUND)
			rpc_finish(call, rv, NULL, "no events for customer_id \"%s\"",
			           req->customer_id);
		else
			rpc_finish(call, rv, NULL, "cannot read the journey");
		return;
	}
	jp.j = j;
	if ((rv = attr_journey_paths(j->view, j->n, lookback, journey_path_cb, &jp)) != TP_OK) {
		log_err("journey: path assembly failed: code=%d events=%zu", rv, j->n);
		rpc_finish(call, rv, NULL, "cannot assemble the journey's paths");
		goto done;
	}
	resp.customer_id = j->customer_id;
	resp.aliases = j->aliases;
	resp.n_aliases = j->naliases;
	resp.events = j->events;
	resp.n_events = j->n;
	resp.paths = jp.paths;
	resp.n_paths = jp.n;
	resp.total_events = j->n;
	resp.as_of = j->as_of;
	if (req->paging_case == TOUCHPOINT__V1__GET_JOURNEY_REQUEST__PAGING_OFFSET &&
	    (rv = journey_page(q, req->offset, &resp, msg, sizeof(msg))) != TP_OK) {
		rpc_finish(call, rv, NULL, "%s", msg);
		goto done;
	}
	rpc_finish(call, TP_OK, &resp.base, NULL);
done:
	journey_paths_free(&jp);
	store_journey_free(j);
}

/* ---- Admin */

static void
query_status(struct query *q, struct rpc_call *call)
{
	Touchpoint__V1__GetStatusResponse resp = TOUCHPOINT__V1__GET_STATUS_RESPONSE__INIT;
	Touchpoint__V1__EventCounts ec = TOUCHPOINT__V1__EVENT_COUNTS__INIT;
	struct store_stats st;
	int rv;

	memset(&st, 0, sizeof(st));
	if ((rv = store_stats(q->store, &st)) != TP_OK) {
		rpc_finish(call, rv, NULL, "cannot read the store's statistics");
		return;
	}
	ec.touch = st.events[ATTR_TOUCH];
	ec.conversion = st.events[ATTR_CONVERSION];
	ec.identify = st.events[ATTR_IDENTIFY];
	ec.alias = st.events[ATTR_ALIAS];
	ec.spend = st.events[ATTR_SPEND];
	ec.total = st.events[0];
	resp.version = (char *)TP_VERSION;
	resp.uptime_s = (uint64_t)((query_mono_us() - q->start_us) / 1000000);
	resp.events = &ec;
	resp.duplicates = st.duplicates;
	resp.customers = st.customers;
	resp.store_bytes = st.store_bytes;
	rpc_finish(call, TP_OK, &resp.base, NULL);
}

static void
query_backup(struct query *q, struct rpc_call *call)
{
	const Touchpoint__V1__BackupRequest *req =
	    (const Touchpoint__V1__BackupRequest *)rpc_call_request(call);
	Touchpoint__V1__BackupResponse resp = TOUCHPOINT__V1__BACKUP_RESPONSE__INIT;
	struct store_stats st;
	char err[256] = "";
	uint64_t bytes = 0;
	size_t len = strlen(req->dir);
	int rv;

	if (req->dir[0] != '/' || len >= 4096 || !validate_utf8(req->dir, len)) {
		rpc_finish(call, TP_INVALID_ARGUMENT, NULL, "dir: must be an absolute path");
		return;
	}
	memset(&st, 0, sizeof(st));
	if ((rv = store_stats(q->store, &st)) == TP_OK)
		rv = store_backup(q->store, req->dir, &bytes, err, sizeof(err));
	if (rv != TP_OK) {
		log_warn("backup failed: code=%d error=\"%s\"", rv, err);
		rpc_finish(call, rv, NULL, "%s", err[0] != '\0' ? err : "backup failed");
		return;
	}
	log_notice("backup done: bytes=%llu", (unsigned long long)bytes);
	resp.dir = req->dir;
	resp.bytes = bytes;
	/* Counted before the copy began: the backup holds at least these. */
	resp.events = st.events[0];
	rpc_finish(call, TP_OK, &resp.base, NULL);
}

/* ---- Attribution */

struct scan_merge;

/* One per part; aligned so that two threads counting customers share no cache line. */
struct scan_ctx {
	_Alignas(64) struct query *q;
	struct rpc_call *call;
	struct attr_engine *e;
	uint64_t customers;
	int rv;
	struct scan_merge *merge;
};

/*
 * Parts of a scan are merged into the first part's engine in part order, as soon as the
 * parts before them are: by whichever scan thread finishes a part that makes the next one
 * mergeable, outside the lock, while the other threads go on scanning.
 */
struct scan_merge {
	pthread_mutex_t mu;
	struct scan_ctx *pc;
	uint8_t done[STORE_SCAN_NPARTS];
	unsigned next; /* parts before it are in pc[0].e */
	int merging;
};

/* The models' cancellation: nobody waits for them any more, or the daemon stops. */
static int
query_cancelled(void *arg)
{
	struct scan_ctx *sc = arg;

	return rpc_call_expired(sc->call) || atomic_load(&sc->q->abort);
}

static int
scan_customer(void *arg, const char *customer_id, const struct attr_event *evs, size_t n)
{
	struct scan_ctx *sc = arg;
	int rv;

	(void)customer_id;
	if ((rv = attr_engine_customer(sc->e, evs, n)) != TP_OK) {
		sc->rv = rv;
		return 1;
	}
	if (++sc->customers % QUERY_CHECK_EVERY == 0) {
		if (rpc_call_expired(sc->call)) {
			sc->rv = TP_DEADLINE_EXCEEDED;
			return 1;
		}
		if (atomic_load(&sc->q->abort)) {
			sc->rv = TP_UNAVAILABLE;
			return 1;
		}
	}
	return 0;
}

static int
scan_spend(void *arg, uint32_t channel, uint32_t campaign, int32_t day, double amount,
           const char *currency)
{
	struct scan_ctx *sc = arg;
	int rv;

	if ((rv = attr_engine_spend(sc->e, channel, campaign, day, amount, currency)) != TP_OK) {
		sc->rv = rv;
		return 1;
	}
	return 0;
}

/*
 * A fresh engine for one part of a scan, from the request the caller's engine came from
 * (why not in msg).
 */
typedef int (*query_engine_fn)(const void *req, struct query *q, int64_t lookback_s,
                               struct attr_engine **ep, char *msg, size_t msglen);

static int
scan_part_done(void *arg, unsigned part)
{
	struct scan_ctx *sc = arg;
	struct scan_merge *m = sc->merge;
	unsigned k;
	int rv = TP_OK;

	pthread_mutex_lock(&m->mu);
	m->done[part] = 1;
	if (m->merging) {
		pthread_mutex_unlock(&m->mu);
		return 0;
	}
	m->merging = 1;
	while (rv == TP_OK && m->next < STORE_SCAN_NPARTS && m->done[m->next]) {
		k = m->next;
		pthread_mutex_unlock(&m->mu);
		if (k > 0) {
			rv = attr_engine_merge(m->pc[0].e, m->pc[k].e);
			attr_engine_free(m->pc[k].e);
			m->pc[k].e = NULL;
		}
		pthread_mutex_lock(&m->mu);
		m->next++;
	}
	m->merging = 0;
	pthread_mutex_unlock(&m->mu);
	if (rv != TP_OK) {
		sc->rv = rv;
		return 1;
	}
	return 0;
}

/*
 * Streams every journey into sc->e, on every core: each part of the store's partitioned scan
 * feeds an engine of its own, merged into sc->e in part order, so the result is the same for
 * any thread count. TP_OK or the code to answer with (message in msg).
 */
static int
query_scan(struct query *q, struct scan_ctx *sc, query_engine_fn mk, const void *req,
           int64_t lookback_s, char *msg, size_t msglen)
{
	struct scan_ctx pc[STORE_SCAN_NPARTS];
	void *args[STORE_SCAN_NPARTS];
	struct scan_merge m;
	char emsg[256] = "";
	size_t i;
	int rv = TP_OK;

	memset(pc, 0, sizeof(pc));
	memset(&m, 0, sizeof(m));
	pthread_mutex_init(&m.mu, NULL);
	m.pc = pc;
	for (i = 0; i < STORE_SCAN_NPARTS; i++) {
		pc[i].q = q;
		pc[i].call = sc->call;
		pc[i].merge = &m;
		args[i] = &pc[i];
		if (i == 0)
			pc[i].e = sc->e;
		else if ((rv = mk(req, q, lookback_s, &pc[i].e, emsg, sizeof(emsg))) != TP_OK)
			break; /* what the first engine passed, this one can only fail for memory */
	}
	if (rv == TP_OK)
		rv = store_scan_parts(q->store, q->scan_threads, scan_customer, scan_part_done,
		                      args);
	/* A part's own code (deadline, shutdown, the engine's) says more than "stopped". */
	for (i = 0; i < STORE_SCAN_NPARTS; i++) {
		sc->customers += pc[i].customers;
		if (pc[i].rv != TP_OK && sc->rv == TP_OK) {
			sc->rv = pc[i].rv;
			/* the failing engine's words; a failed merge's are in the first one's */
			snprintf(emsg, sizeof(emsg), "%s",
			         pc[i].e != NULL && attr_engine_error(pc[i].e)[0] != '\0'
			             ? attr_engine_error(pc[i].e)
			             : attr_engine_error(sc->e));
		}
	}
	if (sc->rv != TP_OK)
		rv = sc->rv;
	if (rv == TP_OK && m.next != STORE_SCAN_NPARTS)
		rv = TP_INTERNAL; /* every part was done: all were merged */
	for (i = 1; i < STORE_SCAN_NPARTS; i++)
		attr_engine_free(pc[i].e);
	pthread_mutex_destroy(&m.mu);
	/* The client stops waiting at its deadline: do not run the models for nobody. */
	if (rv == TP_OK && rpc_call_expired(sc->call))
		rv = TP_DEADLINE_EXCEEDED;
	switch (rv) {
	case TP_OK:
		break;
	case TP_DEADLINE_EXCEEDED:
		snprintf(msg, msglen, "deadline exceeded after %llu customers",
		         (unsigned long long)sc->customers);
		break;
	case TP_UNAVAILABLE:
		snprintf(msg, msglen, "touchpointd is shutting down, retry later");
		break;
	case TP_INVALID_ARGUMENT: /* the request's shape, e.g. too many segments */
		snprintf(msg, msglen, "%s", emsg[0] ? emsg : "the request cannot be answered");
		break;
	default: /* with the engine's words when it had some ("out of memory") */
		snprintf(msg, msglen, "scan failed after %llu customers%s%s",
		         (unsigned long long)sc->customers, emsg[0] ? ": " : "", emsg);
		log_err("query: scan failed: code=%d customers=%llu%s%s", rv,
		        (unsigned long long)sc->customers, emsg[0] ? " reason=" : "", emsg);
		break;
	}
	return rv;
}

static int
attribute_engine(const void *req, struct query *q, int64_t lookback_s, struct attr_engine **ep,
                 char *msg, size_t msglen)
{
	return attr_engine_new(ep, req, lookback_s, store_name, q->store, msg, msglen);
}

static int
paths_engine(const void *req, struct query *q, int64_t lookback_s, struct attr_engine **ep,
             char *msg, size_t msglen)
{
	const Touchpoint__V1__PathsRequest *r = req;

	return attr_engine_new_paths(ep, r->window, lookback_s, store_name, q->store, msg, msglen);
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static void
query_attribute(struct query *q, struct rpc_call *call)
{
	const Touchpoint__V1__AttributeRequest *req =
	    (const Touchpoint__V1__AttributeRequest *)rpc_call_request(call);
	Touchpoint__V1__AttributeResponse *resp = NULL;
	struct scan_ctx sc = { .q = q, .call = call };
	char msg[512] = "";
	int32_t from_day = INT32_MIN, to_day = INT32_MAX;
	/* Read once: every part's engine must have the same, whatever SIGHUP does meanwhile. */
	int64_t lookback_s = atomic_load(&q->default_lookback_s);
	int64_t t0 = query_mono_us(), t1, t2;
	int rv;

	rv = attr_engine_new(&sc.e, req, lookback_s, store_name, q->store, msg, sizeof(msg));
	if (rv != TP_OK) {
		rpc_finish(call, rv, NULL, "%s", msg);
		return;
	}
	if ((rv = query_scan(q, &sc, attribute_engine, req, lookback_s, msg, sizeof(msg))) !=
	    TP_OK) {
		rpc_finish(call, rv, NULL, "%s", msg);
		goto done;
	}
	/* Spend on the UTC days the window touches: [from, to) in days, to rounded up. */
	if (req->window != NULL && req->window->from_case == TOUCHPOINT__V1__WINDOW__FROM_FROM_US &&
	    req->window->from_us >= 0 && req->window->from_us < VALIDATE_TS_END_US)
		from_day = (int32_t)floor_div(req->window->from_us, QUERY_DAY_US);
	if (req->window != NULL && req->window->to_case == TOUCHPOINT__V1__WINDOW__TO_TO_US &&
	    req->window->to_us >= 0 && req->window->to_us < VALIDATE_TS_END_US)
		to_day = (int32_t)-floor_div(-req->window->to_us, QUERY_DAY_US);
	rv = store_spend(q->store, from_day, to_day, scan_spend, &sc);
	if (sc.rv != TP_OK)
		rv = sc.rv;
	if (rv != TP_OK) {
		log_err("attribute: spend scan failed: code=%d", rv);
		rpc_finish(call, rv, NULL, "cannot read spend events");
		goto done;
	}
	t1 = query_mono_us();
	attr_engine_cancel_with(sc.e, query_cancelled, &sc);
	if ((rv = attr_engine_result(sc.e, &resp)) == TP_CANCELLED) {
		if (rpc_call_expired(call))
			rpc_finish(call, TP_DEADLINE_EXCEEDED, NULL,
			           "deadline exceeded while running the models");
		else
			rpc_finish(call, TP_UNAVAILABLE, NULL,
			           "touchpointd is shutting down, retry later");
		goto done;
	}
	if (rv != TP_OK) {
		log_err("attribute: models failed: code=%d customers=%llu", rv,
		        (unsigned long long)sc.customers);
		rpc_finish(call, rv, NULL, "%s",
		           attr_engine_error(sc.e)[0] ? attr_engine_error(sc.e)
		                                      : "attribution failed");
		goto done;
	}
	t2 = query_mono_us();
	/* Where the time went, as the scan (journeys and path tables) and the models. */
	log_info("attribute done: customers=%llu models=%zu scan_s=%.3f models_s=%.3f",
	         (unsigned long long)sc.customers, resp->n_models, (double)(t1 - t0) / 1e6,
	         (double)(t2 - t1) / 1e6);
	rpc_finish(call, TP_OK, &resp->base, NULL);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
done:
	attr_engine_free(sc.e);
}

/* Frees slot i's table. Under pmu. */
static void
paths_free_slot(struct query *q, size_t i)
{
	attr_engine_free(q->pt[i].pe);
	memset(&q->pt[i], 0, sizeof(q->pt[i]));
}

/* Drops the kept path tables idle longer than page_idle_us (or all). Under pmu. */
static void
paths_drop(struct query *q, int always)
{
	int64_t now = query_mono_us();

	for (size_t i = 0; i < QUERY_PAGE_TABLES; i++) {
		if (q->pt[i].pe == NULL || (!always && now - q->pt[i].used_us <= q->page_idle_us))
			continue;
		if (!always)
			log_info("paths: snapshot %llu dropped, idle %lld s",
			         (unsigned long long)q->pt[i].token,
			         (long long)((now - q->pt[i].used_us) / 1000000));
		paths_free_slot(q, i);
	}
}

void
query_tick(struct query *q)
{
	if (q == NULL || pthread_mutex_trylock(&q->pmu) != 0)
		return;
	paths_drop(q, 0);
	pthread_mutex_unlock(&q->pmu);
}

/* Keeps e for the next pages: a free slot, else the one used least recently. Under pmu. */
static uint64_t
paths_keep(struct query *q, struct attr_engine *e, uint32_t top)
{
	size_t i, at = 0;
	uint64_t token;

	paths_drop(q, 0);
	for (i = 0; i < QUERY_PAGE_TABLES; i++) {
		if (q->pt[i].pe == NULL) {
			at = i;
			break;
		}
		if (q->pt[i].used_us < q->pt[at].used_us)
			at = i;
	}
	if (q->pt[at].pe != NULL) {
		log_info("paths: %d paged tables kept: snapshot %llu dropped for a new one",
		         QUERY_PAGE_TABLES, (unsigned long long)q->pt[at].token);
		paths_free_slot(q, at);
	}
	/* A token nobody can guess by accident; 0 means "compute". */
	token = (uint64_t)q->start_us << 20 ^ ++q->pserial;
	token += token == 0;
	q->pt[at] = (struct query_ptab){ e, token, top, query_mono_us() };
	return token;
}

/* A later page of a kept table: FAILED_PRECONDITION if it is gone. */
static void
paths_next_page(struct query *q, struct rpc_call *call, const Touchpoint__V1__PathsRequest *req)
{
	Touchpoint__V1__PathsResponse *resp = NULL;
	size_t i;
	int rv;

	pthread_mutex_lock(&q->pmu);
	paths_drop(q, 0);
	for (i = 0; i < QUERY_PAGE_TABLES; i++)
		if (q->pt[i].pe != NULL && q->pt[i].token == req->snapshot &&
		    q->pt[i].top == req->top)
			break;
	if (i == QUERY_PAGE_TABLES) {
		pthread_mutex_unlock(&q->pmu);
		rpc_finish(call, TP_FAILED_PRECONDITION, NULL,
		           "snapshot: path table %llu is gone (idle over 10 minutes, replaced by "
		           "%d newer paged queries, or touchpointd restarted): start again at "
		           "offset 0",
		           (unsigned long long)req->snapshot, QUERY_PAGE_TABLES);
		return;
	}
	rv = attr_engine_paths_page(q->pt[i].pe, req->top, req->offset, req->limit,
	                            paths_page_bytes(q), &resp);
	if (rv == TP_OK) {
		resp->snapshot = q->pt[i].token;
		q->pt[i].used_us = query_mono_us();
		if (resp->next_offset == 0)
			paths_free_slot(q, i); /* the last page: nobody needs the table any more */
	}
	pthread_mutex_unlock(&q->pmu);
	if (rv != TP_OK) {
		rpc_finish(call, rv, NULL, "path table failed");
		return;
	}
	rpc_finish(call, TP_OK, &resp->base, NULL);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void
query_paths(struct query *q, struct rpc_call *call)
{
	const Touchpoint__V1__PathsRequest *req =
	    (const Touchpoint__V1__PathsRequest *)rpc_call_request(call);
	Touchpoint__V1__PathsResponse *resp = NULL;
	struct scan_ctx sc = { .q = q, .call = call };
	char msg[512] = "";
	int64_t lookback_s = atomic_load(&q->default_lookback_s); /* once: see query_attribute */
	int rv;

	if (req->snapshot != 0) {
		paths_next_page(q, call, req);
		return;
	}
	rv = attr_engine_new_paths(&sc.e, req->window, lookback_s, store_name, q->store, msg,
	                           sizeof(msg));
	if (rv != TP_OK) {
		rpc_finish(call, rv, NULL, "%s", msg);
		return;
	}
	if ((rv = query_scan(q, &sc, paths_engine, req, lookback_s, msg, sizeof(msg))) != TP_OK) {
		rpc_finish(call, rv, NULL, "%s", msg);
		goto done;
	}
	/* Unpaged (limit 0), the whole table must fit: rpc.c refuses a reply over the limit. */
	rv = attr_engine_paths_page(sc.e, req->top, req->offset, req->limit,
	                            req->limit > 0 ? paths_page_bytes(q) : SIZE_MAX, &resp);
	if (rv != TP_OK) {
		log_err("paths: failed: code=%d customers=%llu", rv,
		        (unsigned long long)sc.customers);
		rpc_finish(call, rv, NULL, "path table failed");
		goto done;
	}
	if (resp->next_offset != 0) {
		/* More pages to come: keep the table. */
		pthread_mutex_lock(&q->pmu);
		resp->snapshot = paths_keep(q, sc.e, req->top);
		sc.e = NULL;
		pthread_mutex_unlock(&q->pmu);
	}
	rpc_finish(call, TP_OK, &resp->base, NULL);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
done:
	attr_engine_free(sc.e);
}

/* ---- The pool */

static int
ring_take(struct query_ring *r, struct query_item *it)
{
	if (r->len == 0)
		return 0;
	*it = r->items[r->head];
	r->head = (r->head + 1) % r->cap;
	r->len--;
	return 1;
}

static int
ring_put(struct query_ring *r, struct query_item it)
{
	if (r->len == r->cap)
		return 0;
	r->items[(r->head + r->len) % r->cap] = it;
	r->len++;
	return 1;
}

/* Thread 0 is the light lane; the others take light calls first, then heavy ones. */
static void *
query_main(void *arg)
{
	struct query_lane *lane = arg;
	struct query *q = lane->q;
	int light_only = lane->light_only;

	(void)prctl(PR_SET_NAME, light_only ? "tp-query-light" : "tp-query");
	for (;;) {
		struct query_item it;
		int got;

		if (q->stall_file != NULL && access(q->stall_file, F_OK) == 0 &&
		    !atomic_load(&q->abort)) {
			struct timespec nap = { 0, 50 * 1000000 };

			nanosleep(&nap, NULL);
			continue;
		}
		pthread_mutex_lock(&q->mu);
		while (q->light.len == 0 && (light_only || q->heavy.len == 0) && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		got = ring_take(&q->light, &it) || (!light_only && ring_take(&q->heavy, &it));
		pthread_mutex_unlock(&q->mu);
		if (!got) {
			if (q->stop)
				break;
			continue;
		}
		if (atomic_load(&q->abort))
			rpc_finish(it.call, TP_UNAVAILABLE, NULL,
			           "touchpointd is shutting down, retry later");
		else if (rpc_call_expired(it.call))
			rpc_finish(it.call, TP_DEADLINE_EXCEEDED, NULL,
			           "deadline passed while queued");
		else
			it.fn(q, it.call);
	}
	return NULL;
}

static void
query_enqueue(void *arg, struct rpc_call *call)
{
	struct query_method *m = arg;
	struct query *q = m->q;
	int full;

	if (m->lane == QUERY_INLINE) {
		m->fn(q, call);
		return;
	}
	pthread_mutex_lock(&q->mu);
	full = q->stop || !ring_put(m->lane == QUERY_LIGHT ? &q->light : &q->heavy,
	                            (struct query_item){ call, m->fn });
	if (!full)
		pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	if (full)
		rpc_finish(call, TP_RESOURCE_EXHAUSTED, NULL, "query queue full, retry later");
}

int
query_start(struct query **qp, const struct query_options *o, char *errbuf, size_t errlen)
{
	struct query *q;
	int rv;

	*qp = NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		goto nomem;
	q->store = o->store;
	q->max_reply_bytes = o->max_reply_bytes;
	pthread_mutex_init(&q->pmu, NULL);
	q->page_idle_us =
	    o->page_idle_ms > 0 ? (int64_t)o->page_idle_ms * 1000 : QUERY_PAGE_IDLE_US;
	q->scan_threads = o->scan_threads;
	if (o->stall_file != NULL && (q->stall_file = strdup(o->stall_file)) == NULL)
		goto nomem;
	atomic_init(&q->default_lookback_s, o->default_lookback_s);
	atomic_init(&q->abort, 0);
	q->start_us = query_mono_us();
	q->light.cap = q->heavy.cap = o->queue_depth > 0 ? o->queue_depth : 1;
	if ((q->light.items = calloc(q->light.cap, sizeof(struct query_item))) == NULL ||
	    (q->heavy.items = calloc(q->heavy.cap, sizeof(struct query_item))) == NULL ||
	    (q->threads = calloc((o->threads > 0 ? o->threads : 1) + 1, sizeof(pthread_t))) == NULL)
		goto nomem;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->lane_light = (struct query_lane){ q, 1 };
	q->lane_any = (struct query_lane){ q, 0 };
	q->methods[0] =
	    (struct query_method){ q, query_journey, &touchpoint__v1__journey__descriptor,
		                   "GetJourney", QUERY_LIGHT };
	q->methods[1] = (struct query_method){ q, query_status, &touchpoint__v1__admin__descriptor,
		                               "GetStatus", QUERY_INLINE };
	q->methods[2] = (struct query_method){ q, query_backup, &touchpoint__v1__admin__descriptor,
		                               "Backup", QUERY_HEAVY };
	q->methods[3] =
	    (struct query_method){ q, query_attribute, &touchpoint__v1__attribution__descriptor,
		                   "Attribute", QUERY_HEAVY };
	q->methods[4] =
	    (struct query_method){ q, query_paths, &touchpoint__v1__attribution__descriptor,
		                   "Paths", QUERY_HEAVY };
	/* Thread 0 is the light lane; then query_threads threads for everything. */
	for (unsigned n = (o->threads > 0 ? o->threads : 1) + 1; q->nthreads < n; q->nthreads++)
		if ((rv = pthread_create(&q->threads[q->nthreads], NULL, query_main,
		                         q->nthreads == 0 ? &q->lane_light : &q->lane_any)) != 0) {
			snprintf(errbuf, errlen, "query: cannot start a thread: %s", strerror(rv));
			query_stop(q);
			return TP_RESOURCE_EXHAUSTED;
		}
	*qp = q;
	return TP_OK;
nomem:
	snprintf(errbuf, errlen, "query: out of memory");
	if (q != NULL) {
		pthread_mutex_destroy(&q->pmu);
		free(q->light.items);
		free(q->heavy.items);
		free(q->threads);
		free(q->stall_file);
		free(q);
	}
	return TP_RESOURCE_EXHAUSTED;
}

int
query_register(struct query *q, struct rpc_server *r)
{
	int rv;

	for (size_t i = 0; i < sizeof(q->methods) / sizeof(q->methods[0]); i++)
		if ((rv = rpc_register(r, q->methods[i].svc, q->methods[i].name, query_enqueue,
		                       &q->methods[i])) != TP_OK)
			return rv;
	return TP_OK;
}

void
query_set_default_lookback(struct query *q, int64_t seconds)
{
	atomic_store(&q->default_lookback_s, seconds);
}

void
query_stop(struct query *q)
{
	if (q == NULL)
		return;
	atomic_store(&q->abort, 1);
	pthread_mutex_lock(&q->mu);
	q->stop = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	paths_drop(q, 1);
	pthread_mutex_destroy(&q->pmu);
	free(q->threads);
	free(q->light.items);
	free(q->heavy.items);
	free(q->stall_file);
	free(q);
}
