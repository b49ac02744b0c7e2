/*
 * tpbench-compact-probe: a design probe for #3's attribute/walk target, not a part of the
 * daemon. It copies a stopped daemon's journeys (after alias resolution) into one LMDB
 * record per customer holding only what attribution reads, then times reading them back.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "attribution/engine.h"
#include "store.h"
#include "touchpoint/touchpoint.h"

#define CP_MAX_EVENTS 65536  /* a longer journey is cut: a probe, not a store */
#define CP_BATCH      100000 /* customers a write transaction */

struct cp_build {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint64_t ncust, nev, bytes, inbatch;
	uint8_t buf[CP_MAX_EVENTS * 24 + 16];
};

/* One reader's share of the copy: customers [from, to) into engine e (or none). */
struct cp_part {
	MDB_env *env;
	struct attr_engine *e;
	uint64_t from, to, nev;
	double s;
	struct attr_event ev[CP_MAX_EVENTS];
};

static double
cp_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint8_t *
cp_put(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

static const uint8_t *
cp_get(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t x = 0;
	int s = 0;

	while (p < end && (*p & 0x80) && s < 63) {
		x |= (uint64_t)(*p++ & 0x7f) << s;
		s += 7;
	}
	if (p == end)
		return NULL;
	*v = x | (uint64_t)*p++ << s;
	return p;
}

/*
 * One customer: the event count, then per event its kind, the time as a zigzag delta, and
 * channel and campaign (touch) or name and value (conversion). 9 bytes an event on the
 * generator's data, against ≈ 170 for the store's records, keys and pages.
 */
static int
cp_customer(void *arg, const char *cid, const struct attr_event *e, size_t n)
{
	struct cp_build *b = arg;
	uint8_t *p = b->buf;
	int64_t prev = 0, d;
	uint64_t key;
	MDB_val k, v;
	size_t i;

	(void)cid;
	n = n < CP_MAX_EVENTS ? n : CP_MAX_EVENTS;
	p = cp_put(p, n);
	for (i = 0; i < n; i++) {
		d = e[i].ts_us - prev;
		prev = e[i].ts_us;
		*p++ = (uint8_t)e[i].kind;
		p = cp_put(p, ((uint64_t)d << 1) ^ (uint64_t)(d >> 63));
		if (e[i].kind == ATTR_TOUCH) {
			p = cp_put(p, e[i].channel);
			p = cp_put(p, e[i].campaign);
		} else if (e[i].kind == ATTR_CONVERSION) {
			p = cp_put(p, e[i].name);
			memcpy(p, &e[i].value, 8);
			p += 8;
		}
	}
	/* In scan order, so appended: the store's customer hash order. */
	key = __builtin_bswap64(b->ncust);
	k.mv_data = &key;
	k.mv_size = sizeof(key);
	v.mv_data = b->buf;
	v.mv_size = (size_t)(p - b->buf);
	if (mdb_put(b->txn, b->dbi, &k, &v, MDB_APPEND) != 0)
		return 1;
	b->ncust++;
	b->nev += n;
	b->bytes += v.mv_size;
	if (++b->inbatch == CP_BATCH) {
		b->inbatch = 0;
		if (mdb_txn_commit(b->txn) != 0 || mdb_txn_begin(b->env, NULL, 0, &b->txn) != 0) {
			b->txn = NULL;
			return 1;
		}
	}
	return 0;
}

/* Reads a part of the copy back (into its engine when there is one); p->s = seconds or -1. */
static void *
cp_read(void *arg)
{
	struct cp_part *pt = arg;
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_dbi dbi;
	MDB_val k, v;
	uint64_t key = __builtin_bswap64(pt->from), at = pt->from;
	double t0 = cp_now();
	int rc;

	pt->s = -1;
	pt->nev = 0;
	k.mv_data = &key;
	k.mv_size = sizeof(key);
	if (mdb_txn_begin(pt->env, NULL, MDB_RDONLY, &txn) != 0 ||
	    mdb_dbi_open(txn, NULL, 0, &dbi) != 0 || mdb_cursor_open(txn, dbi, &c) != 0)
		goto fail;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && at < pt->to;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), at++) {
		const uint8_t *p = v.mv_data, *end = p + v.mv_size;
		uint64_t n, i, x;
		int64_t ts = 0;

		if ((p = cp_get(p, end, &n)) == NULL || n > CP_MAX_EVENTS)
			goto fail;
		for (i = 0; i < n; i++) {
			struct attr_event *ev = &pt->ev[i];

			memset(ev, 0, sizeof(*ev));
			if (p == end)
				goto fail;
			ev->kind = *p++;
			if ((p = cp_get(p, end, &x)) == NULL)
				goto fail;
			ts += (int64_t)(x >> 1) ^ -(int64_t)(x & 1);
			ev->ts_us = ts;
			ev->seq = i;
			if (ev->kind == ATTR_TOUCH) {
				if ((p = cp_get(p, end, &x)) == NULL)
					goto fail;
				ev->channel = (uint32_t)x;
				if ((p = cp_get(p, end, &x)) == NULL)
					goto fail;
				ev->campaign = (uint32_t)x;
			} else if (ev->kind == ATTR_CONVERSION) {
				if ((p = cp_get(p, end, &x)) == NULL || end - p < 8)
					goto fail;
				ev->name = (uint32_t)x;
				memcpy(&ev->value, p, 8);
				p += 8;
			}
		}
		pt->nev += n;
		if (pt->e != NULL && attr_engine_customer(pt->e, pt->ev, (size_t)n) != TP_OK)
			goto fail;
	}
	if (rc == 0 || rc == MDB_NOTFOUND)
		pt->s = cp_now() - t0;
fail:
	if (c != NULL)
		mdb_cursor_close(c);
	if (txn != NULL)
		mdb_txn_abort(txn);
	return NULL;
}

/*
 * The copy read into two engines by two threads (each half of the customers, in order),
 * merged, then the models: as the daemon's scan parts are. Seconds to the merged engine in
 * *read_s, the models in *models_s; -1 on an error.
 */
static int
cp_two(struct cp_part *pt, uint64_t ncust, double *read_s, double *models_s)
{
	Touchpoint__V1__AttributeRequest req = TOUCHPOINT__V1__ATTRIBUTE_REQUEST__INIT;
	Touchpoint__V1__AttributeResponse *out = NULL;
	char err[256];
	pthread_t tid;
	double t0;
	int k, rv = -1;

	for (k = 0; k < 2; k++)
		if (attr_engine_new(&pt[k].e, &req, 30 * 86400, NULL, NULL, err, sizeof(err)) !=
		    TP_OK)
			goto fail;
	pt[0].from = 0;
	pt[0].to = pt[1].from = ncust / 2;
	pt[1].to = ncust;
	t0 = cp_now();
	if (pthread_create(&tid, NULL, cp_read, &pt[1]) != 0)
		goto fail;
	cp_read(&pt[0]);
	pthread_join(tid, NULL);
	if (pt[0].s < 0 || pt[1].s < 0 || attr_engine_merge(pt[0].e, pt[1].e) != TP_OK)
		goto fail;
	*read_s = cp_now() - t0;
	t0 = cp_now();
	if (attr_engine_result(pt[0].e, &out) != TP_OK)
		goto fail;
	*models_s = cp_now() - t0;
	protobuf_c_message_free_unpacked(&out->base, NULL);
	rv = 0;
fail:
	for (k = 0; k < 2; k++) {
		if (pt[k].e != NULL)
			attr_engine_free(pt[k].e);
		pt[k].e = NULL;
	}
	return rv;
}

int
main(int argc, char **argv)
{
	static struct cp_build b;
	static struct cp_part pt[2];
	static const struct option lo[] = { { "store", required_argument, NULL, 's' },
		                            { "out", required_argument, NULL, 'o' },
		                            { NULL, 0, NULL, 0 } };
	Touchpoint__V1__AttributeRequest req = TOUCHPOINT__V1__ATTRIBUTE_REQUEST__INIT;
	struct store_options so = { 0 };
	struct store *st = NULL;
	const char *path = NULL;
	char err[256];
	uint64_t records = 0;
	double t0, walk_s, read_s[2], one_s[2], two_s[2], models_s[2];
	struct store_stats ss;
	struct stat sb;
	int ch, k, rv = 1;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ch == 's')
			so.path = optarg;
		else if (ch == 'o')
			path = optarg;
		else
			goto usage;
	}
	if (so.path == NULL || path == NULL)
		goto usage;
	snprintf(err, sizeof(err), "%s/data.mdb", so.path);
	if (stat(err, &sb) != 0 || stat(path, &sb) == 0) {
		fprintf(stderr, "tpbench-compact-probe: needs a store in %s and no file %s\n",
		        so.path, path);
		return 66;
	}
	if (store_open(&st, &so, err, sizeof(err)) != 0) {
		fprintf(stderr, "tpbench-compact-probe: %s: %s\n", so.path, err);
		return 1;
	}
	if (mdb_env_create(&b.env) != 0 || mdb_env_set_mapsize(b.env, (size_t)64 << 30) != 0 ||
	    mdb_env_open(b.env, path, MDB_NOSUBDIR | MDB_NOSYNC, 0644) != 0 ||
	    mdb_txn_begin(b.env, NULL, 0, &b.txn) != 0 || mdb_dbi_open(b.txn, NULL, 0, &b.dbi) != 0)
		goto fail;
	if (store_stats(st, &ss) != TP_OK)
		goto fail;
	t0 = cp_now();
	if (store_scan(st, cp_customer, &b) != 0 || b.txn == NULL || mdb_txn_commit(b.txn) != 0)
		goto fail;
	b.txn = NULL;
	fprintf(stderr, "copied %llu customers, %llu events in %.1f s\n",
	        (unsigned long long)b.ncust, (unsigned long long)b.nev, cp_now() - t0);
	/* Each read warmed once first, as the daemon's warm attribute is. */
	if (store_walk(st, &records) != 0)
		goto fail;
	t0 = cp_now();
	if (store_walk(st, &records) != 0)
		goto fail;
	walk_s = cp_now() - t0;
	store_close(st);
	st = NULL;
	if (mdb_env_sync(b.env, 1) != 0)
		goto fail;
	pt[0].env = pt[1].env = b.env;
	pt[0].from = 0;
	pt[0].to = b.ncust;
	cp_read(&pt[0]);
	for (k = 0; k < 2; k++) {
		/* the copy alone, then into one engine, on one thread */
		pt[0].from = 0;
		pt[0].to = b.ncust;
		cp_read(&pt[0]);
		if ((read_s[k] = pt[0].s) < 0 || attr_engine_new(&pt[0].e, &req, 30 * 86400, NULL,
		                                                 NULL, err, sizeof(err)) != TP_OK)
			goto fail;
		cp_read(&pt[0]);
		one_s[k] = pt[0].s;
		attr_engine_free(pt[0].e);
		pt[0].e = NULL;
		/* two threads and the models: what `attribute --model all` would take */
		if (one_s[k] < 0 || cp_two(pt, b.ncust, &two_s[k], &models_s[k]) != 0)
			goto fail;
	}
	printf(
	    "| events | store bytes/event | copy bytes/event | walk s | copy read s | copy read + "
	    "engine, 1 thread s | the same on 2 threads, merged s | models s | total, 2 "
	    "threads s | total / walk |\n|---|---|---|---|---|---|---|---|---|---|\n");
	printf("| %llu | %.1f | %.1f | %.3f | %.3f, %.3f | %.3f, %.3f | %.3f, %.3f | %.3f, %.3f | "
	       "%.3f, %.3f | %.1fx, %.1fx |\n",
	       (unsigned long long)b.nev,
	       (double)ss.store_bytes / (double)(ss.events[0] ? ss.events[0] : 1),
	       (double)b.bytes / (double)b.nev, walk_s, read_s[0], read_s[1], one_s[0], one_s[1],
	       two_s[0], two_s[1], models_s[0], models_s[1], two_s[0] + models_s[0],
	       two_s[1] + models_s[1], (two_s[0] + models_s[0]) / walk_s,
	       (two_s[1] + models_s[1]) / walk_s);
	rv = 0;
fail:
	if (rv != 0)
		fprintf(stderr, "tpbench-compact-probe: failed\n");
	if (pt[0].e != NULL)
		attr_engine_free(pt[0].e);
	if (b.txn != NULL)
		mdb_txn_abort(b.txn);
	if (b.env != NULL)
		mdb_env_close(b.env);
	if (st != NULL)
		store_close(st);
	return rv;
usage:
	fprintf(stderr, "usage: tpbench-compact-probe --store STATE/store --out FILE\n");
	return 64;
}
