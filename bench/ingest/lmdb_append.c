/*
 * tpbench-lmdb-append: the ceiling the daemon's ingest is judged against: durable
 * commits of sequential keys (MDB_APPEND) into a fresh LMDB environment, records/s.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lmdb.h>

static double
la_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
la_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "records", required_argument, NULL, 'n' },
		{ "batch", required_argument, NULL, 'b' },
		{ "value-size", required_argument, NULL, 'v' },
		{ "header", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL;
	unsigned long records = 2000000, batch = 10000, vsize = 120, i, c, ncommit;
	unsigned char key[8], val[4096];
	double t0, t, secs, *lat = NULL;
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k, v;
	uint64_t seq = 0;
	int opt, rc, rv = 1, j;

	while ((opt = getopt_long(argc, argv, "d:n:b:v:H", lopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'n':
			records = strtoul(optarg, NULL, 10);
			break;
		case 'b':
			batch = strtoul(optarg, NULL, 10);
			break;
		case 'v':
			vsize = strtoul(optarg, NULL, 10);
			break;
		case 'H':
			printf("| records | batch | value bytes | seconds | records/s | commit p50 "
			       "ms | "
			       "commit p99 ms |\n|---|---|---|---|---|---|---|\n");
			return 0;
		default:
			goto usage;
		}
	}
	if (dir == NULL || records == 0 || batch == 0 || vsize == 0 || vsize > sizeof(val))
		goto usage;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "tpbench-lmdb-append: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	ncommit = (records + batch - 1) / batch;
	if ((lat = malloc(ncommit * sizeof(*lat))) == NULL)
		goto fail;
	for (i = 0; i < vsize; i++)
		val[i] = (unsigned char)(i * 31 + 7);
	/* Durable: no MDB_NOSYNC, MDB_NOMETASYNC or MDB_WRITEMAP, as the daemon's store. */
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, (size_t)records * (vsize + 64) * 2 + (64u << 20))) !=
	        0 ||
	    (rc = mdb_env_open(env, dir, 0, 0600)) != 0)
		goto lmdb_fail;
	t0 = la_now();
	for (c = 0; c < ncommit; c++) {
		t = la_now();
		if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
		    (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0)
			goto lmdb_fail;
		for (i = 0; i < batch && seq < records; i++, seq++) {
			for (j = 0; j < 8; j++)
				key[j] = (unsigned char)(seq >> (56 - 8 * j));
			k.mv_size = sizeof(key);
			k.mv_data = key;
			v.mv_size = vsize;
			v.mv_data = val;
			if ((rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND)) != 0)
				goto lmdb_fail;
		}
		rc = mdb_txn_commit(txn);
		txn = NULL;
		if (rc != 0)
			goto lmdb_fail;
		lat[c] = la_now() - t;
	}
	secs = la_now() - t0;
	qsort(lat, ncommit, sizeof(*lat), la_cmp);
	printf("| %lu | %lu | %lu | %.2f | %.0f | %.2f | %.2f |\n", records, batch, vsize, secs,
	       (double)records / secs, lat[ncommit / 2] * 1e3,
	       lat[(size_t)(0.99 * (double)ncommit) < ncommit ? (size_t)(0.99 * (double)ncommit)
	                                                      : ncommit - 1] *
	           1e3);
	rv = 0;
	goto fail;
lmdb_fail:
	fprintf(stderr, "tpbench-lmdb-append: %s\n", mdb_strerror(rc));
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	free(lat);
	return rv;
usage:
	fputs("usage: tpbench-lmdb-append --dir DIR [--records N] [--batch N] [--value-size B]\n",
	      stderr);
	return 64;
}
