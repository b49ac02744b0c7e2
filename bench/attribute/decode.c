/*
 * tpbench-decode: the copies' decoder alone (record_compact_views), over values of a stopped
 * daemon's store read into memory first, so that neither LMDB nor the merge is timed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "record.h"

#define DEC_MAXEV 65536 /* events of one value, at most (a larger one is skipped) */

struct dec_vals {
	uint8_t *buf;
	size_t nb, cap;
	uint32_t *len;
	size_t n, max;
};

static double
dec_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The name of runs.mdb's largest copy ("run.N.c") into name. */
static int
dec_largest(MDB_txn *txn, char *name, size_t len)
{
	MDB_dbi main, dbi;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	MDB_stat st;
	size_t best = 0;
	int rc;

	if ((rc = mdb_dbi_open(txn, NULL, 0, &main)) != 0 ||
	    (rc = mdb_cursor_open(txn, main, &c)) != 0)
		goto fail;
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		char n[64];

		if (k.mv_size < 3 || k.mv_size >= sizeof(n) ||
		    memcmp((const char *)k.mv_data + k.mv_size - 2, ".c", 2) != 0)
			continue;
		memcpy(n, k.mv_data, k.mv_size);
		n[k.mv_size] = '\0';
		if (mdb_dbi_open(txn, n, 0, &dbi) != 0 || mdb_stat(txn, dbi, &st) != 0)
			continue;
		if (st.ms_entries > best) {
			best = st.ms_entries;
			snprintf(name, len, "%s", n);
		}
	}
	rc = rc == MDB_NOTFOUND && best > 0 ? 0 : rc == 0 ? MDB_NOTFOUND : rc;
fail:
	mdb_cursor_close(c);
	return rc;
}

static int
dec_read(MDB_txn *txn, const char *name, struct dec_vals *d)
{
	MDB_dbi dbi;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_dbi_open(txn, name, 0, &dbi)) != 0 ||
	    (rc = mdb_cursor_open(txn, dbi, &c)) != 0)
		goto fail;
	while (d->n < d->max && (rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		if (v.mv_size > UINT32_MAX)
			continue;
		if (d->nb + v.mv_size > d->cap) {
			size_t ncap = d->cap ? d->cap * 2 : (size_t)1 << 24;
			uint8_t *nbuf;

			while (ncap < d->nb + v.mv_size)
				ncap *= 2;
			if ((nbuf = realloc(d->buf, ncap)) == NULL) {
				rc = ENOMEM;
				goto fail;
			}
			d->buf = nbuf;
			d->cap = ncap;
		}
		memcpy(d->buf + d->nb, v.mv_data, v.mv_size);
		d->len[d->n++] = (uint32_t)v.mv_size;
		d->nb += v.mv_size;
	}
	if (rc == MDB_NOTFOUND)
		rc = 0;
fail:
	mdb_cursor_close(c);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = { { "store", required_argument, NULL, 's' },
		                              { "copy", required_argument, NULL, 'c' },
		                              { "values", required_argument, NULL, 'n' },
		                              { "rounds", required_argument, NULL, 'r' },
		                              { NULL, 0, NULL, 0 } };
	const char *store = NULL, *copy = NULL;
	char path[4096], name[64] = "";
	struct dec_vals d = { 0 };
	struct attr_event *ev = NULL;
	struct attr_trait *tr = NULL;
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	long rounds = 5;
	int o, rc, status = 1;

	d.max = 3000000;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			store = optarg;
			break;
		case 'c':
			copy = optarg;
			break;
		case 'n':
			d.max = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rounds = strtol(optarg, NULL, 10);
			break;
		default:
			goto usage;
		}
	}
	if (store == NULL || d.max == 0 || rounds < 1)
		goto usage;
	snprintf(path, sizeof(path), "%s/runs.mdb", store);
	if ((d.len = malloc(d.max * sizeof(*d.len))) == NULL ||
	    (ev = malloc(DEC_MAXEV * sizeof(*ev))) == NULL ||
	    (tr = malloc(DEC_MAXEV * RECORD_MAX_TRAIT * sizeof(*tr))) == NULL) {
		fputs("tpbench-decode: out of memory\n", stderr);
		goto out;
	}
	if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 4096)) != 0 ||
	    (rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK, 0)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (copy == NULL && (rc = dec_largest(txn, name, sizeof(name))) != 0) ||
	    (rc = dec_read(txn, copy != NULL ? copy : name, &d)) != 0) {
		fprintf(stderr, "tpbench-decode: %s: %s (a stopped daemon's STATE_DIR/store?)\n",
		        path, mdb_strerror(rc));
		goto out;
	}
	printf("| copy | values | events | bytes/event | round | s | ns/event | check |\n"
	       "|---|---|---|---|---|---|---|---|\n");
	for (long r = 0; r < rounds; r++) {
		size_t i, off = 0, ne = 0, nt;
		uint64_t chk = 0;
		double t0 = dec_now(), t;

		for (i = 0; i < d.n; off += d.len[i++]) {
			const uint8_t *first;
			uint32_t n;

			if (record_compact_count(d.buf + off, d.len[i], &n, &first) != 0) {
				fprintf(stderr, "tpbench-decode: value %zu: bad count\n", i);
				goto out;
			}
			if (n > DEC_MAXEV)
				continue;
			if (record_compact_views(first, d.buf + off + d.len[i], n, ev, tr, &nt) !=
			    0) {
				fprintf(stderr, "tpbench-decode: value %zu: corrupt\n", i);
				goto out;
			}
			/* what the engine reads, so that none of it is optimised away */
			chk += (uint64_t)ev[n - 1].ts_us + ev[0].seq + ev[0].channel + nt;
			ne += n;
		}
		t = dec_now() - t0;
		printf("| %s | %zu | %zu | %.1f | %ld | %.3f | %.1f | %016" PRIx64 " |\n",
		       copy != NULL ? copy : name, d.n, ne, ne ? (double)d.nb / (double)ne : 0.0,
		       r + 1, t, ne ? t * 1e9 / (double)ne : 0.0, chk);
	}
	status = 0;
	goto out;
usage:
	fputs("usage: tpbench-decode --store STATE_DIR/store [--copy run.N.c] [--values N] "
	      "[--rounds N]\n",
	      stderr);
	status = 64;
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	free(d.buf);
	free(d.len);
	free(ev);
	free(tr);
	return status;
}
