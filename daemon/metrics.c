/*
 * metrics: lock-free counters and histograms of touchpointd's activity, rendered as
 * Prometheus text (format 0.0.4) and served by NNG's supplemental HTTP server.
 */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "metrics.h"
#include "store.h"
#include "touchpoint/touchpoint.h"

#ifndef TP_VERSION
#define TP_VERSION "unknown"
#endif

/* A scrape is a few kilobytes; the cap only guards against a runaway renderer. */
#define METRICS_RENDER_MAX (1024 * 1024)
#define METRICS_NCODES     17 /* google.rpc.Code 0..16 */

/*
 * The fixed method table: the six rpcs of touchpoint.v1 and "unknown" (anything else, so a
 * client sending random method names cannot grow the label set). Labels use the short
 * "Service/Method" form.
 */
static const struct {
	const char *full;
	const char *label;
} metrics_methods[] = {
	{ "/touchpoint.v1.Ingest/Send", "Ingest/Send" },
	{ "/touchpoint.v1.Journey/GetJourney", "Journey/GetJourney" },
	{ "/touchpoint.v1.Admin/GetStatus", "Admin/GetStatus" },
	{ "/touchpoint.v1.Admin/Backup", "Admin/Backup" },
	{ "/touchpoint.v1.Attribution/Attribute", "Attribution/Attribute" },
	{ "/touchpoint.v1.Attribution/Paths", "Attribution/Paths" },
	{ NULL, "unknown" },
};
#define METRICS_NMETHODS (sizeof(metrics_methods) / sizeof(metrics_methods[0]))

/* Upper bounds of the histogram buckets; +Inf is implicit. */
static const double metrics_request_bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	                                         0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
	                                         1,      2.5,     5,      10,    30,     60 };
static const double metrics_commit_s_bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
	                                          0.005,  0.01,    0.025,  0.05,  0.1,
	                                          0.25,   0.5,     1,      2.5 };
static const double metrics_commit_ev_bounds[] = { 1,    4,     16,    64,     256,    1024,
	                                           4096, 16384, 65536, 262144, 1048576 };
static const double metrics_commit_b_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512 };

#define METRICS_MAXB 20 /* more than any bounds table above */

/*
 * Bucket counts are kept per bucket (not cumulative) so one observation is one atomic add;
 * the renderer sums them, and derives _count from them so a scrape is self-consistent.
 * The sum is an integer in units of 1/scale (nanoseconds for seconds) to stay atomic.
 */
struct metrics_hist {
	const double *bounds;
	size_t nbounds;
	double scale;
	_Atomic uint64_t bucket[METRICS_MAXB + 1];
	_Atomic uint64_t sum;
};

#define METRICS_HIST(b, s)                                                                         \
	{                                                                                          \
		.bounds = (b), .nbounds = sizeof(b) / sizeof((b)[0]), .scale = (s)                 \
	}

static _Atomic uint64_t metrics_requests[METRICS_NMETHODS][METRICS_NCODES];
static struct metrics_hist metrics_latency[METRICS_NMETHODS] = {
	METRICS_HIST(metrics_request_bounds, 1e9), METRICS_HIST(metrics_request_bounds, 1e9),
	METRICS_HIST(metrics_request_bounds, 1e9), METRICS_HIST(metrics_request_bounds, 1e9),
	METRICS_HIST(metrics_request_bounds, 1e9), METRICS_HIST(metrics_request_bounds, 1e9),
	METRICS_HIST(metrics_request_bounds, 1e9),
};
static struct metrics_hist metrics_commit_s = METRICS_HIST(metrics_commit_s_bounds, 1e9);
static struct metrics_hist metrics_commit_ev = METRICS_HIST(metrics_commit_ev_bounds, 1);
static struct metrics_hist metrics_commit_b = METRICS_HIST(metrics_commit_b_bounds, 1);
static _Atomic uint64_t metrics_ingested;
static _Atomic uint64_t metrics_duplicates;
static _Atomic uint64_t metrics_rejected;
static _Atomic uint64_t metrics_commit_failures;
static _Atomic uint64_t metrics_listener_reopens;
static _Atomic uint64_t metrics_qdepth;
static atomic_int metrics_wprio;

/* Written by metrics_start/metrics_stop only, read by the HTTP handler in between. */
static nng_http_server *metrics_server;
static struct store *_Atomic metrics_store;
static _Atomic int metrics_busy; /* handlers inside store_stats(): metrics_stop waits for 0 */
static _Atomic int64_t metrics_start_time;

static void
metrics_observe(struct metrics_hist *h, double v)
{
	size_t i;

	if (!(v >= 0)) /* negative or NaN: a clock step, count it in the first bucket */
		v = 0;
	for (i = 0; i < h->nbounds && v > h->bounds[i]; i++)
		;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	v *= h->scale;
	if (v > 1e18) /* keeps the conversion defined; a sum this large is garbage anyway */
		v = 1e18;
	atomic_fetch_add_explicit(&h->sum, (uint64_t)llround(v), memory_order_relaxed);
}

static size_t
metrics_method_index(const char *method)
{
	size_t i;

	if (method == NULL)
		return METRICS_NMETHODS - 1;
	for (i = 0; i < METRICS_NMETHODS - 1; i++)
		if (strcmp(method, metrics_methods[i].full) == 0)
			return i;
	return METRICS_NMETHODS - 1;
}

void
metrics_request(const char *method, int code, double seconds)
{
	size_t m = metrics_method_index(method);

	if (code < 0 || code >= METRICS_NCODES)
		code = TP_UNKNOWN;
	atomic_fetch_add_explicit(&metrics_requests[m][code], 1, memory_order_relaxed);
	metrics_observe(&metrics_latency[m], seconds);
}

void
metrics_ingest(uint64_t accepted, uint64_t duplicates, uint64_t rejected)
{
	atomic_fetch_add_explicit(&metrics_ingested, accepted, memory_order_relaxed);
	atomic_fetch_add_explicit(&metrics_duplicates, duplicates, memory_order_relaxed);
	atomic_fetch_add_explicit(&metrics_rejected, rejected, memory_order_relaxed);
}

void
metrics_commit_failed(void)
{
	atomic_fetch_add_explicit(&metrics_commit_failures, 1, memory_order_relaxed);
}

void
metrics_listener_reopened(void)
{
	atomic_fetch_add_explicit(&metrics_listener_reopens, 1, memory_order_relaxed);
}

void
metrics_commit(size_t batches, size_t events, double seconds)
{
	metrics_observe(&metrics_commit_b, (double)batches);
	metrics_observe(&metrics_commit_ev, (double)events);
	metrics_observe(&metrics_commit_s, seconds);
}

void
metrics_writer_priority(int prio)
{
	atomic_store_explicit(&metrics_wprio, prio, memory_order_relaxed);
}

void
metrics_queue_depth(size_t depth)
{
	atomic_store_explicit(&metrics_qdepth, depth, memory_order_relaxed);
}

/* A bounded, growing text buffer; the first failure sticks and is reported at the end. */
struct metrics_buf {
	char *p;
	size_t len;
	size_t cap;
	int err;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	size_t ncap;
	char *np;

	if (b->err)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->err = TP_INTERNAL;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		ncap = b->cap != 0 ? b->cap * 2 : 8192;
		while (ncap - b->len <= (size_t)n)
			ncap *= 2;
		if (ncap > METRICS_RENDER_MAX) {
			b->err = TP_RESOURCE_EXHAUSTED;
			return;
		}
		if ((np = realloc(b->p, ncap)) == NULL) {
			b->err = TP_RESOURCE_EXHAUSTED;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

static void
metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help)
{
	metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One histogram's series; labels is "" or e.g. "method=\"Ingest/Send\"". */
static void
metrics_render_hist(struct metrics_buf *b, const char *name, const char *labels,
                    struct metrics_hist *h)
{
	const char *sep = labels[0] != '\0' ? "," : "";
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i <= h->nbounds; i++) {
		cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		if (i < h->nbounds)
			metrics_printf(b, "%s_bucket{%s%sle=\"%.9g\"} %llu\n", name, labels, sep,
			               h->bounds[i], (unsigned long long)cum);
		else
			metrics_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
			               (unsigned long long)cum);
	}
	metrics_printf(b, "%s_sum%s%s%s %.9g\n", name, labels[0] != '\0' ? "{" : "", labels,
	               labels[0] != '\0' ? "}" : "",
	               (double)atomic_load_explicit(&h->sum, memory_order_relaxed) / h->scale);
	metrics_printf(b, "%s_count%s%s%s %llu\n", name, labels[0] != '\0' ? "{" : "", labels,
	               labels[0] != '\0' ? "}" : "", (unsigned long long)cum);
}

/* One counter's family and value; ns != 0: v is nanoseconds, shown in seconds. */
static void
metrics_counter_value(struct metrics_buf *b, const char *name, const char *help, uint64_t v, int ns)
{
	metrics_family(b, name, "counter", help);
	if (ns)
		metrics_printf(b, "%s %.9g\n", name, (double)v / 1e9);
	else
		metrics_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void
metrics_render_counter(struct metrics_buf *b, const char *name, const char *help,
                       _Atomic uint64_t *v)
{
	metrics_counter_value(b, name, help, atomic_load_explicit(v, memory_order_relaxed), 0);
}

static void
metrics_render_store(struct metrics_buf *b)
{
	static const char *const kinds[] = { NULL,       "touch", "conversion",
		                             "identify", "alias", "spend" };
	struct store *st;
	struct store_stats ss;
	size_t k;
	int rv = TP_UNAVAILABLE;

	/* Announce ourselves before looking at the store, so metrics_stop can wait for us. */
	atomic_fetch_add(&metrics_busy, 1);
	if ((st = atomic_load(&metrics_store)) != NULL) {
		memset(&ss, 0, sizeof(ss));
		rv = store_stats(st, &ss);
	}
	atomic_fetch_sub(&metrics_busy, 1);
	if (st == NULL)
		return;
	metrics_family(b, "touchpointd_store_up", "gauge",
	               "1 if the store answered the statistics query of this scrape.");
	if (rv != TP_OK) {
		metrics_printf(b, "touchpointd_store_up 0\n");
		return;
	}
	metrics_printf(b, "touchpointd_store_up 1\n");
	metrics_family(b, "touchpointd_store_events", "gauge",
	               "Events held in the store, by kind (duplicates are not stored).");
	for (k = 1; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		metrics_printf(b, "touchpointd_store_events{kind=\"%s\"} %llu\n", kinds[k],
		               (unsigned long long)ss.events[k]);
	metrics_family(b, "touchpointd_store_duplicates", "gauge",
	               "Duplicates acknowledged but not stored since the store was created.");
	metrics_printf(b, "touchpointd_store_duplicates %llu\n", (unsigned long long)ss.duplicates);
	metrics_family(b, "touchpointd_store_customers", "gauge",
	               "Distinct customers in the store (HyperLogLog estimate).");
	metrics_printf(b, "touchpointd_store_customers %llu\n", (unsigned long long)ss.customers);
	metrics_family(b, "touchpointd_store_bytes", "gauge",
	               "Bytes of the LMDB data files in use (data.mdb and runs.mdb).");
	metrics_printf(b, "touchpointd_store_bytes %llu\n", (unsigned long long)ss.store_bytes);
	metrics_family(b, "touchpointd_store_map_bytes", "gauge",
	               "Current LMDB map sizes in bytes, both environments (grow by themselves).");
	metrics_printf(b, "touchpointd_store_map_bytes %llu\n", (unsigned long long)ss.map_size);
	metrics_family(b, "touchpointd_store_map_used_ratio", "gauge",
	               "touchpointd_store_bytes / touchpointd_store_map_bytes.");
	metrics_printf(b, "touchpointd_store_map_used_ratio %.6g\n",
	               ss.map_size != 0 ? (double)ss.store_bytes / (double)ss.map_size : 0.0);
	metrics_family(b, "touchpointd_store_runs", "gauge",
	               "Sorted runs in the store (compaction keeps this O(log events)).");
	metrics_printf(b, "touchpointd_store_runs %llu\n", (unsigned long long)ss.runs);
	metrics_family(b, "touchpointd_store_runs_uncopied", "gauge",
	               "Runs without their attribution copy yet (runs written before copies "
	               "existed, until the compactor has made them); scans are slower until 0.");
	metrics_printf(b, "touchpointd_store_runs_uncopied %llu\n",
	               (unsigned long long)ss.runs_uncopied);
	metrics_family(b, "touchpointd_store_merges_running", "gauge",
	               "Merges of sorted runs in progress (the compactor does one at a time); "
	               "with log_segments at most 1, the compactor is idle.");
	metrics_printf(b, "touchpointd_store_merges_running %llu\n",
	               (unsigned long long)ss.merging);
	metrics_family(
	    b, "touchpointd_store_log_segments", "gauge",
	    "Log segments not yet sorted into runs, the writer's included (normally 1-2).");
	metrics_printf(b, "touchpointd_store_log_segments %llu\n", (unsigned long long)ss.segments);
	metrics_family(b, "touchpointd_store_readers", "gauge", "LMDB reader slots in use.");
	metrics_printf(b, "touchpointd_store_readers %llu\n", (unsigned long long)ss.readers);
	metrics_counter_value(b, "touchpointd_store_write_lock_wait_seconds_total",
	                      "Time the ingest writer waited for LMDB's write lock (held while "
	                      "the compactor drops flushed segments and consumed runs), part of "
	                      "touchpointd_commit_duration_seconds.",
	                      ss.wait_ns, 1);
	metrics_counter_value(
	    b, "touchpointd_store_commit_sync_seconds_total",
	    "Time the ingest writer spent in mdb_txn_commit (page writes and syncs "
	    "to disk), part of touchpointd_commit_duration_seconds.",
	    ss.commit_ns, 1);
	metrics_counter_value(
	    b, "touchpointd_store_compaction_chunks_total",
	    "Compaction write transactions (chunks of a merge of sorted runs or of "
	    "their copies).",
	    ss.chunks, 0);
	metrics_counter_value(b, "touchpointd_store_compaction_seconds_total",
	                      "Time compaction held LMDB's write lock.", ss.chunk_ns, 1);
	metrics_counter_value(b, "touchpointd_store_compacted_records_total",
	                      "Records rewritten by compaction.", ss.chunk_records, 0);
	metrics_family(b, "touchpointd_store_compactor_nice", "gauge",
	               "The compactor thread's nice value: compactor_nice while it keeps up, "
	               "the daemon's own (0) while it is behind.");
	metrics_printf(b, "touchpointd_store_compactor_nice %d\n", ss.compactor_nice);
	metrics_counter_value(b, "touchpointd_store_compactor_nice_denied_total",
	                      "Times the compactor was behind and could not raise its priority "
	                      "back (allow it: LimitNICE=+0 or CAP_SYS_NICE).",
	                      ss.compactor_nice_denied, 0);
}

int
metrics_render(char **buf, size_t *len)
{
	struct metrics_buf b = { NULL, 0, 0, 0 };
	char labels[96];
	size_t m, c;
	uint64_t v;

	*buf = NULL;
	*len = 0;
	metrics_family(&b, "touchpointd_build_info", "gauge",
	               "Always 1; the version of the running touchpointd is in the label.");
	metrics_printf(&b, "touchpointd_build_info{version=\"%s\"} 1\n", TP_VERSION);
	metrics_family(&b, "touchpointd_start_time_seconds", "gauge",
	               "Start time of the metrics server, seconds since the Unix epoch.");
	metrics_printf(&b, "touchpointd_start_time_seconds %lld\n",
	               (long long)atomic_load(&metrics_start_time));

	metrics_family(&b, "touchpointd_requests_total", "counter",
	               "Finished requests by method and status code (google.rpc.Code number).");
	for (m = 0; m < METRICS_NMETHODS; m++)
		for (c = 0; c < METRICS_NCODES; c++) {
			v = atomic_load_explicit(&metrics_requests[m][c], memory_order_relaxed);
			/* Code 0 always, so rate() works before the first request. */
			if (v != 0 || c == 0)
				metrics_printf(
				    &b,
				    "touchpointd_requests_total{method=\"%s\",code=\"%zu\"} "
				    "%llu\n",
				    metrics_methods[m].label, c, (unsigned long long)v);
		}
	metrics_family(&b, "touchpointd_request_duration_seconds", "histogram",
	               "Time from receiving a request to handing its reply to NNG.");
	for (m = 0; m < METRICS_NMETHODS; m++) {
		snprintf(labels, sizeof(labels), "method=\"%s\"", metrics_methods[m].label);
		metrics_render_hist(&b, "touchpointd_request_duration_seconds", labels,
		                    &metrics_latency[m]);
	}

	metrics_render_counter(&b, "touchpointd_events_ingested_total",
	                       "Events newly stored (committed to LMDB).", &metrics_ingested);
	metrics_render_counter(&b, "touchpointd_duplicates_total",
	                       "Events acknowledged as duplicates of a stored event_id.",
	                       &metrics_duplicates);
	metrics_render_counter(&b, "touchpointd_events_rejected_total",
	                       "Invalid events refused (with the rest of their batch).",
	                       &metrics_rejected);
	metrics_render_counter(&b, "touchpointd_commit_failures_total",
	                       "Group commits that failed (a full disk, say); their batches "
	                       "were refused and are retried by the clients.",
	                       &metrics_commit_failures);
	metrics_render_counter(&b, "touchpointd_listener_reopens_total",
	                       "Listeners found no longer accepting connections and opened "
	                       "again (their clients reconnect).",
	                       &metrics_listener_reopens);

	metrics_family(&b, "touchpointd_commit_events", "histogram",
	               "Events written per group commit.");
	metrics_render_hist(&b, "touchpointd_commit_events", "", &metrics_commit_ev);
	metrics_family(&b, "touchpointd_commit_batches", "histogram",
	               "Client batches carried per group commit.");
	metrics_render_hist(&b, "touchpointd_commit_batches", "", &metrics_commit_b);
	metrics_family(&b, "touchpointd_commit_duration_seconds", "histogram",
	               "Duration of a group commit, including fdatasync.");
	metrics_render_hist(&b, "touchpointd_commit_duration_seconds", "", &metrics_commit_s);

	metrics_family(&b, "touchpointd_writer_queue_depth", "gauge",
	               "Batches waiting for the writer thread (last sample).");
	metrics_printf(
	    &b, "touchpointd_writer_queue_depth %llu\n",
	    (unsigned long long)atomic_load_explicit(&metrics_qdepth, memory_order_relaxed));
	metrics_family(&b, "touchpointd_writer_priority", "gauge",
	               "The writer thread's SCHED_FIFO priority (writer_priority); 0: it runs in "
	               "the normal scheduler (not asked for, or not permitted).");
	metrics_printf(&b, "touchpointd_writer_priority %d\n",
	               atomic_load_explicit(&metrics_wprio, memory_order_relaxed));
	metrics_render_store(&b);

	if (b.err != 0) {
		free(b.p);
		return b.err;
	}
	*buf = b.p;
	*len = b.len;
	return TP_OK;
}

static void
metrics_handle(nng_aio *aio)
{
	nng_http_res *res = NULL;
	char *text = NULL;
	size_t len = 0;
	int rv;

	if (metrics_render(&text, &len) != TP_OK) {
		if ((rv = nng_http_res_alloc_error(&res, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR)) !=
		    0)
			goto fail;
		goto done;
	}
	if ((rv = nng_http_res_alloc(&res)) != 0)
		goto fail;
	if ((rv = nng_http_res_set_header(res, "Content-Type",
	                                  "text/plain; version=0.0.4; charset=utf-8")) != 0 ||
	    (rv = nng_http_res_copy_data(res, text, len)) != 0)
		goto fail;
done:
	free(text);
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
	return;
fail:
	free(text);
	if (res != NULL)
		nng_http_res_free(res);
	nng_aio_finish(aio, rv);
}

int
metrics_start(const char *url, struct store *st, char *errbuf, size_t errlen)
{
	nng_url *u = NULL;
	nng_http_handler *h = NULL;
	nng_http_server *srv = NULL;
	const char *path;
	int rv, status = TP_OK;

	atomic_store(&metrics_start_time, (int64_t)time(NULL));
	if (url == NULL || url[0] == '\0')
		return TP_OK;
	if (metrics_server != NULL) {
		snprintf(errbuf, errlen, "metrics: already started");
		return TP_FAILED_PRECONDITION;
	}
	if ((rv = nng_url_parse(&u, url)) != 0) {
		snprintf(errbuf, errlen, "metrics: bad URL \"%s\": %s", url, nng_strerror(rv));
		return TP_INVALID_ARGUMENT;
	}
	/* No TLS configuration exists for it, and the endpoint is meant for loopback. */
	if (strcmp(u->u_scheme, "http") != 0) {
		snprintf(errbuf, errlen, "metrics: URL \"%s\" must start with http://", url);
		status = TP_INVALID_ARGUMENT;
		goto fail;
	}
	path = u->u_path[0] != '\0' ? u->u_path : "/metrics";
	if ((rv = nng_http_server_hold(&srv, u)) != 0) {
		snprintf(errbuf, errlen, "metrics: %s: %s", url, nng_strerror(rv));
		status = TP_INTERNAL;
		goto fail;
	}
	if ((rv = nng_http_handler_alloc(&h, path, metrics_handle)) != 0 ||
	    (rv = nng_http_handler_collect_body(h, true, 0)) != 0 ||
	    (rv = nng_http_server_add_handler(srv, h)) != 0) {
		snprintf(errbuf, errlen, "metrics: %s: %s", url, nng_strerror(rv));
		status = TP_INTERNAL;
		goto fail;
	}
	h = NULL; /* the server owns it now */
	atomic_store(&metrics_store, st);
	if ((rv = nng_http_server_start(srv)) != 0) {
		snprintf(errbuf, errlen, "metrics: cannot listen on %s: %s", url, nng_strerror(rv));
		status = rv == NNG_EADDRINUSE ? TP_UNAVAILABLE : TP_INTERNAL;
		atomic_store(&metrics_store, NULL);
		goto fail;
	}
	metrics_server = srv;
	nng_url_free(u);
	return TP_OK;
fail:
	if (h != NULL)
		nng_http_handler_free(h);
	if (srv != NULL)
		nng_http_server_release(srv);
	nng_url_free(u);
	return status;
}

void
metrics_stop(void)
{
	struct timespec ts = { 0, 1000000 };

	if (metrics_server == NULL)
		return;
	nng_http_server_stop(metrics_server);
	nng_http_server_release(metrics_server);
	metrics_server = NULL;
	/*
	 * nng's stop does not wait for a handler already running; the caller closes the store
	 * right after us, so wait until no scrape is inside store_stats().
	 */
	atomic_store(&metrics_store, NULL);
	while (atomic_load(&metrics_busy) != 0)
		nanosleep(&ts, NULL);
}
