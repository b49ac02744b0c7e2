/*
 * tpbench-walk: the floor under `touchpoint attribute`: a bare cursor walk over a stopped
 * daemon's store (store_walk), the journey stream without models on one thread (store_scan)
 * and on several, as the daemon runs it (store_scan_parts, --threads, 0 = one per CPU up to 8).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "memtune.h"
#include "store.h"

struct wk_count {
	uint64_t customers, events;
};

static double
wk_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
wk_customer(void *arg, const char *customer_id, const struct attr_event *evs, size_t n)
{
	struct wk_count *c = arg;

	(void)customer_id;
	(void)evs;
	c->customers++;
	c->events += n;
	return 0;
}

/* A part's counter, on a cache line of its own: parts next to each other run at once. */
struct wk_part {
	_Alignas(64) struct wk_count c;
};

/* The parallel scan: a counter per part, summed afterwards. */
static int
wk_parts(struct store *st, unsigned threads, struct wk_count *sum)
{
	struct wk_part part[STORE_SCAN_NPARTS];
	void *args[STORE_SCAN_NPARTS];
	size_t i;
	int rc;

	memset(part, 0, sizeof(part));
	for (i = 0; i < STORE_SCAN_NPARTS; i++)
		args[i] = &part[i].c;
	if ((rc = store_scan_parts(st, threads, wk_customer, NULL, args)) != 0)
		return rc;
	for (i = 0; i < STORE_SCAN_NPARTS; i++) {
		sum->customers += part[i].c.customers;
		sum->events += part[i].c.events;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "label", required_argument, NULL, 'l' },
		{ "header", no_argument, NULL, 'H' },
		{ "threads", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_options so = { 0 };
	struct store *st = NULL;
	struct store_stats stats;
	struct stat sb;
	struct wk_count cnt = { 0, 0 }, pcnt = { 0, 0 };
	unsigned threads = 0;
	const char *label = "";
	char err[256];
	uint64_t records = 0;
	double t0, walk_s, scan_s, pscan_s;
	int opt, rc, rv = 1;

	memtune_init(); /* the daemon's allocator settings: its scans are measured here */
	while ((opt = getopt_long(argc, argv, "s:l:Ht:", lopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			so.path = optarg;
			break;
		case 'l':
			label = optarg;
			break;
		case 't':
			threads = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'H':
			printf("| store | stored events | walk records | walk s | walk records/s | "
			       "scan customers | scan events | scan s | parallel scan customers | "
			       "parallel scan s |\n"
			       "|---|---|---|---|---|---|---|---|---|---|\n");
			return 0;
		default:
			goto usage;
		}
	}
	if (so.path == NULL)
		goto usage;
	/* store_open creates a missing store: refuse a directory that holds none. */
	snprintf(err, sizeof(err), "%s/data.mdb", so.path);
	if (stat(err, &sb) != 0) {
		fprintf(stderr, "tpbench-walk: no store in %s (the daemon's is STATE_DIR/store)\n",
		        so.path);
		return 66;
	}
	if ((rc = store_open(&st, &so, err, sizeof(err))) != 0) {
		fprintf(stderr, "tpbench-walk: %s: %s\n", so.path, err);
		return 1;
	}
	if ((rc = store_stats(st, &stats)) != 0)
		goto fail;
	/* Once to warm the page cache, as the attribute run it is compared with was. */
	if ((rc = store_walk(st, &records)) != 0)
		goto fail;
	t0 = wk_now();
	if ((rc = store_walk(st, &records)) != 0)
		goto fail;
	walk_s = wk_now() - t0;
	t0 = wk_now();
	if ((rc = store_scan(st, wk_customer, &cnt)) != 0)
		goto fail;
	scan_s = wk_now() - t0;
	t0 = wk_now();
	if ((rc = wk_parts(st, threads, &pcnt)) != 0)
		goto fail;
	pscan_s = wk_now() - t0;
	/* The same journeys, or the parallel scan is wrong. */
	if (pcnt.customers != cnt.customers || pcnt.events != cnt.events) {
		fprintf(stderr,
		        "tpbench-walk: parallel scan saw %" PRIu64 " customers, %" PRIu64
		        " events; the scan %" PRIu64 ", %" PRIu64 "\n",
		        pcnt.customers, pcnt.events, cnt.customers, cnt.events);
		rc = 1;
		goto fail;
	}
	printf("| %s | %" PRIu64 " | %" PRIu64 " | %.3f | %.0f | %" PRIu64 " | %" PRIu64
	       " | %.3f | %" PRIu64 " | %.3f |\n",
	       label, stats.events[0], records, walk_s, walk_s > 0 ? (double)records / walk_s : 0.0,
	       cnt.customers, cnt.events, scan_s, pcnt.customers, pscan_s);
	rv = 0;
fail:
	if (rv != 0)
		fprintf(stderr, "tpbench-walk: store call failed with status %d\n", rc);
	store_close(st);
	return rv;
usage:
	fputs("usage: tpbench-walk --store STATE_DIR/store [--label TEXT] [--threads N]\n", stderr);
	return 64;
}
