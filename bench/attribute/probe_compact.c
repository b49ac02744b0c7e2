/*
 * tpbench-compact-probe: a design probe for #3's attribute/walk target, not a part of the
 * daemon. It copies a stopped daemon's journeys (after alias resolution) into one LMDB
 * record per customer holding only what attribution reads, then times reading them back.
 */
#define _GNU_SOURCE
#include <getopt.h>
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

static struct attr_event cp_ev[CP_MAX_EVENTS];

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

/* Reads every customer back (into engine e when not NULL); returns seconds or -1. */
static double
cp_read(MDB_env *env, struct attr_engine *e, uint64_t *nev)
{
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_dbi dbi;
	MDB_val k, v;
	double t0 = cp_now(), t = -1;
	int rc;

	*nev = 0;
	if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0 ||
	    mdb_dbi_open(txn, NULL, 0, &dbi) != 0 || mdb_cursor_open(txn, dbi, &c) != 0)
		goto fail;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const uint8_t *p = v.mv_data, *end = p + v.mv_size;
		uint64_t n, i, x;
		int64_t ts = 0;

		if ((p = cp_get(p, end, &n)) == NULL || n > CP_MAX_EVENTS)
			goto fail;
		for (i = 0; i < n; i++) {
			struct attr_event *ev = &cp_ev[i];

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
		*nev += n;
		if (e != NULL && attr_engine_customer(e, cp_ev, (size_t)n) != TP_OK)
			goto fail;
	}
	if (rc == MDB_NOTFOUND)
		t = cp_now() - t0;
fail:
	if (c != NULL)
		mdb_cursor_close(c);
	if (txn != NULL)
		mdb_txn_abort(txn);
	return t;
}

int
main(int argc, char **argv)
{
	static struct cp_build b;
	static const struct option lo[] = { { "store", required_argument, NULL, 's' },
		                            { "out", required_argument, NULL, 'o' },
		                            { NULL, 0, NULL, 0 } };
	struct store_options so = { 0 };
	struct store *st = NULL;
	Touchpoint__V1__AttributeRequest req = TOUCHPOINT__V1__ATTRIBUTE_REQUEST__INIT;
	Touchpoint__V1__AttributeResponse *out = NULL;
	struct attr_engine *e = NULL;
	const char *path = NULL;
	char err[256];
	uint64_t records = 0, nev = 0;
	double t0, walk_s, read_s[2], engine_s[2], models_s[2];
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
	if (mdb_env_sync(b.env, 1) != 0 || cp_read(b.env, NULL, &nev) < 0)
		goto fail;
	for (k = 0; k < 2; k++) {
		if ((read_s[k] = cp_read(b.env, NULL, &nev)) < 0 ||
		    attr_engine_new(&e, &req, 30 * 86400, NULL, NULL, err, sizeof(err)) != TP_OK ||
		    (engine_s[k] = cp_read(b.env, e, &nev)) < 0)
			goto fail;
		t0 = cp_now();
		if (attr_engine_result(e, &out) != TP_OK)
			goto fail;
		models_s[k] = cp_now() - t0;
		protobuf_c_message_free_unpacked(&out->base, NULL);
		attr_engine_free(e);
		e = NULL;
	}
	printf(
	    "| events | store bytes/event | copy bytes/event | walk s | copy read s | copy read + "
	    "engine s | models s |\n|---|---|---|---|---|---|---|\n");
	printf("| %llu | %.1f | %.1f | %.3f | %.3f, %.3f | %.3f, %.3f | %.3f, %.3f |\n",
	       (unsigned long long)nev,
	       (double)ss.store_bytes / (double)(ss.events[0] ? ss.events[0] : 1),
	       (double)b.bytes / (double)b.nev, walk_s, read_s[0], read_s[1], engine_s[0],
	       engine_s[1], models_s[0], models_s[1]);
	rv = 0;
fail:
	if (rv != 0)
		fprintf(stderr, "tpbench-compact-probe: failed\n");
	if (e != NULL)
		attr_engine_free(e);
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
