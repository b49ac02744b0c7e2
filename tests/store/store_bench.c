/*
 * store_bench: the store alone, without NNG or protobuf decoding: CPU time of store_prepare()
 * (the NNG workers' part), of store_write() (the writer thread) and of the whole process
 * (writer + compactor) per event, then store_walk() against store_scan(). Not a test; a
 * tool for tuning the store.
 *
 *   store_bench DIR [EVENTS [GROUP [sync|nosync [rm]]]]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "store_util.h"
#include "touchpoint/touchpoint.h"

#define NCHAN 10

static double
clock_s(clockid_t id)
{
	struct timespec t;

	clock_gettime(id, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double
process_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/*
 * A /proc/self/io counter: wchar (bytes passed to write calls: LMDB writes every dirty page
 * with pwrite/writev at commit) or write_bytes (bytes the kernel sent towards the disk).
 */
static uint64_t
io_counter(const char *name)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	size_t n = strlen(name);
	uint64_t v = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, name, n) == 0 && line[n] == ':')
			v = strtoull(line + n + 1, NULL, 10);
	fclose(f);
	return v;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A tpgen-like event: mostly touches, some identifies (two traits), conversions, aliases. */
static Touchpoint__V1__Event *
make_event(uint64_t n, uint64_t ncust, int64_t ts)
{
	static const char *chans[NCHAN] = { "paid_search",    "organic_search", "social_paid",
		                            "social_organic", "email",          "display",
		                            "affiliate",      "direct",         "referral",
		                            "video" };
	char eid[48], cid[48], prev[48];
	uint64_t c = rnd() % ncust, r = rnd() % 1000;
	Touchpoint__V1__Event *e;

	snprintf(eid, sizeof(eid), "g1-%" PRIu64 "-%" PRIu64, c, n);
	snprintf(cid, sizeof(cid), "cust-%016" PRIx64, c * UINT64_C(0x9e3779b97f4a7c15));
	if (r < 10) {
		return ev_conv(eid, cid, ts, (double)(r * 7 % 200), "purchase");
	} else if (r < 24) {
		snprintf(prev, sizeof(prev), "anon-%016" PRIx64, c * UINT64_C(0xbf58476d1ce4e5b9));
		return ev_alias(eid, cid, ts, prev);
	} else if (r < 190) {
		Touchpoint__V1__Identify *id = xmalloc(sizeof(*id));
		int i;

		e = ev_base(eid, cid, ts);
		touchpoint__v1__identify__init(id);
		id->n_traits = 2;
		id->traits = xmalloc(2 * sizeof(*id->traits));
		for (i = 0; i < 2; i++) {
			id->traits[i] = xmalloc(sizeof(*id->traits[i]));
			touchpoint__v1__trait__init(id->traits[i]);
			id->traits[i]->key = xstrdup(i ? "country" : "plan");
			id->traits[i]->value = xstrdup(i ? "DE" : "pro");
		}
		e->kind_case = TOUCHPOINT__V1__EVENT__KIND_IDENTIFY;
		e->identify = id;
		return e;
	}
	e = ev_touch(eid, cid, ts, chans[rnd() % NCHAN], r % 3 ? "brand" : "");
	free(e->touch->source);
	free(e->touch->medium);
	e->touch->source = xstrdup("google");
	e->touch->medium = xstrdup("cpc");
	e->touch->interaction = TOUCHPOINT__V1__INTERACTION__INTERACTION_CLICK;
	return e;
}

static int
scan_cb(void *arg, const char *cid, const struct attr_event *evs, size_t n)
{
	(void)cid;
	(void)evs;
	*(uint64_t *)arg += n;
	return 0;
}

int
main(int argc, char **argv)
{
	struct store_options o = { 0 };
	struct store *s;
	struct store_stats st;
	char err[256];
	uint64_t events = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000, done = 0, walked = 0,
	         scanned = 0;
	size_t group = argc > 3 ? strtoul(argv[3], NULL, 10) : 2700;
	double w0, p0, t0, wcpu = 0, pcpu = 0, t1, t2, t3;
	struct store_prepared *prep;
	uint64_t wc0 = io_counter("wchar"), wb0 = io_counter("write_bytes");
	int64_t ts = 1700000000LL * 1000000LL;

	if (argc < 2 || group == 0) {
		fprintf(stderr, "usage: store_bench DIR [EVENTS [GROUP [sync]]]\n");
		return 64;
	}
	o.path = argv[1];
	o.map_size = (size_t)64 << 30;
	o.nosync = !(argc > 4 && strcmp(argv[4], "sync") == 0);
	if (store_open(&s, &o, err, sizeof(err)) != TP_OK) {
		fprintf(stderr, "store_open: %s\n", err);
		return 1;
	}
	p0 = process_cpu_s();
	t0 = clock_s(CLOCK_MONOTONIC);
	while (done < events) {
		struct tbatch *t = tb_new(group);
		size_t i;

		for (i = 0; i < group && done + i < events; i++) {
			ts += (int64_t)(rnd() % 2000);
			tb_add(t, make_event(done + i, events / 4 + 1, ts));
		}
		/* Prepared apart, as the daemon's NNG workers do: the writer's CPU is the rest. */
		w0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
		if (store_prepare(s, t->b.events, t->b.n, &prep) != TP_OK) {
			fprintf(stderr, "store_prepare failed\n");
			return 1;
		}
		t->b.prep = prep;
		pcpu += clock_s(CLOCK_THREAD_CPUTIME_ID) - w0;
		w0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
		if (tb_write(s, t) != TP_OK) {
			fprintf(stderr, "store_write failed\n");
			return 1;
		}
		wcpu += clock_s(CLOCK_THREAD_CPUTIME_ID) - w0;
		done += t->b.n;
		store_prepared_free(prep);
		tb_free(t);
	}
	t1 = clock_s(CLOCK_MONOTONIC);
	if (store_stats(s, &st) != TP_OK)
		return 1;
	printf("write: %" PRIu64 " events in %.2f s: %.0f events/s, prepare CPU %.3f us/event, "
	       "writer CPU %.2f us/event, process CPU %.2f us/event, %.1f bytes/event, %" PRIu64
	       " runs\n",
	       done, t1 - t0, (double)done / (t1 - t0), pcpu / (double)done * 1e6,
	       wcpu / (double)done * 1e6, (process_cpu_s() - p0) / (double)done * 1e6,
	       (double)st.store_bytes / (double)st.events[0], st.runs);
	/* Compaction goes on in the background: count its writes too, until it is idle. */
	for (;;) {
		uint64_t w = io_counter("wchar");
		struct timespec ts = { 1, 500000000L };

		nanosleep(&ts, NULL);
		if (io_counter("wchar") == w)
			break;
	}
	if (store_stats(s, &st) != TP_OK)
		return 1;
	printf("io: %.1f bytes written per event (wchar), %.1f sent to disk (write_bytes), "
	       "%" PRIu64 " runs after compaction\n",
	       (double)(io_counter("wchar") - wc0) / (double)done,
	       (double)(io_counter("write_bytes") - wb0) / (double)done, st.runs);
	store_walk(s, &walked); /* warm */
	t1 = clock_s(CLOCK_MONOTONIC);
	store_walk(s, &walked);
	t2 = clock_s(CLOCK_MONOTONIC);
	store_scan(s, scan_cb, &scanned);
	t3 = clock_s(CLOCK_MONOTONIC);
	printf("read: walk %" PRIu64 " records %.3f s, scan %" PRIu64 " events %.3f s, "
	       "scan/walk %.2f\n",
	       walked, t2 - t1, scanned, t3 - t2, (t3 - t2) / (t2 - t1));
	store_close(s);
	if (argc > 5 && strcmp(argv[5], "rm") == 0)
		rm_store_dir(argv[1]);
	return 0;
}
