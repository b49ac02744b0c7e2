/*
 * markov_bench: times attr_markov() on a random path table held in memory (fixed seed):
 * N distinct paths over K channels, long-tailed lengths 1..20, Zipf-popular channels.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <sys/resource.h>

#include "model.h"
#include "touchpoint/touchpoint.h"

#define BM_MAXLEN 20

static uint64_t bm_rng = 0x2545f4914f6cdd1dULL;

static uint64_t
bm_next(void)
{
	bm_rng ^= bm_rng << 13;
	bm_rng ^= bm_rng >> 7;
	bm_rng ^= bm_rng << 17;
	return bm_rng;
}

static double
bm_unif(void)
{
	return (double)(bm_next() >> 11) / 9007199254740992.0;
}

/* Index into a cumulative distribution cdf[0..n-1] (cdf[n-1] == 1). */
static uint32_t
bm_pick(const double *cdf, uint32_t n)
{
	double u = bm_unif();
	uint32_t lo = 0, hi = n - 1;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint64_t
bm_hash(const uint32_t *u, uint32_t len)
{
	uint64_t h = 1469598103934665603ULL ^ len;

	for (uint32_t i = 0; i < len; i++) {
		h = (h ^ u[i]) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h;
}

struct bm_table {
	uint32_t *units; /* every path's units, packed (BM_MAXLEN a path while drawing) */
	struct attr_path *paths;
	size_t n;
	uint64_t draws;
};

/*
 * The units packed one path after the other, as the engine's path table keeps them
 * (attr_ptab's arena), so attr_markov reads what it reads in the daemon. In place: a
 * path's units only move down.
 */
static void
bm_pack(struct bm_table *t)
{
	size_t i, total = 0;

	for (i = 0; i < t->n; i++) {
		memmove(t->units + total, t->paths[i].units, t->paths[i].len * sizeof(*t->units));
		t->paths[i].units = t->units + total;
		total += t->paths[i].len;
	}
}

/*
 * Draw paths until n are distinct; a repeated path adds to its counts. 20% of draws
 * convert, with a value of 1..200.
 */
static int
bm_generate(struct bm_table *t, size_t n, uint32_t k)
{
	double *ccdf = malloc(k * sizeof(double)), lcdf[BM_MAXLEN], s = 0;
	size_t hcap = 1, i;
	uint32_t *htab = NULL, u[BM_MAXLEN];

	while (hcap < n * 2)
		hcap *= 2;
	htab = malloc(hcap * sizeof(*htab));
	t->units = malloc(n * BM_MAXLEN * sizeof(uint32_t));
	t->paths = calloc(n, sizeof(*t->paths));
	if (ccdf == NULL || htab == NULL || t->units == NULL || t->paths == NULL)
		return -1;
	memset(htab, 0xff, hcap * sizeof(*htab));
	for (i = 0; i < k; i++)
		s += ccdf[i] = 1.0 / (double)(i + 1);
	for (i = 0; i < k; i++)
		ccdf[i] = (i ? ccdf[i - 1] : 0) + ccdf[i] / s;
	ccdf[k - 1] = 1;
	s = 0;
	for (i = 0; i < BM_MAXLEN; i++)
		s += lcdf[i] = pow((double)(i + 1), -1.5);
	for (i = 0; i < BM_MAXLEN; i++)
		lcdf[i] = (i ? lcdf[i - 1] : 0) + lcdf[i] / s;
	lcdf[BM_MAXLEN - 1] = 1;

	t->n = 0;
	t->draws = 0;
	while (t->n < n) {
		uint32_t len = 1 + bm_pick(lcdf, BM_MAXLEN), j;
		size_t h;
		int conv = bm_unif() < 0.2;

		for (j = 0; j < len; j++)
			u[j] = bm_pick(ccdf, k);
		t->draws++;
		h = bm_hash(u, len) & (hcap - 1);
		while (htab[h] != UINT32_MAX) {
			struct attr_path *p = &t->paths[htab[h]];

			if (p->len == len && memcmp(p->units, u, len * sizeof(*u)) == 0)
				break;
			h = (h + 1) & (hcap - 1);
		}
		if (htab[h] == UINT32_MAX) {
			htab[h] = (uint32_t)t->n;
			memcpy(t->units + t->n * BM_MAXLEN, u, len * sizeof(*u));
			t->paths[t->n].units = t->units + t->n * BM_MAXLEN;
			t->paths[t->n].len = len;
			t->n++;
		}
		if (conv) {
			t->paths[htab[h]].conversions += 1;
			t->paths[htab[h]].value += 1 + (double)(bm_next() % 200);
		} else {
			t->paths[htab[h]].nulls += 1;
		}
	}
	free(htab);
	free(ccdf);
	bm_pack(t);
	return 0;
}

/* FNV-1a over the bytes of the results: runs that must agree bit for bit are compared by it. */
static uint64_t
bm_digest(uint64_t h, const double *x, uint32_t n)
{
	const unsigned char *b = (const unsigned char *)x;
	size_t i;

	for (i = 0; i < (size_t)n * sizeof(*x); i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/* Every unit's removal effect and credits, to compare two builds' results number by number. */
static int
bm_dump(const char *path, const struct attr_credit *cr, uint32_t k)
{
	FILE *f = fopen(path, "w");
	uint32_t u;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	for (u = 0; u < k; u++)
		fprintf(f, "%u\t%.17g\t%.17g\t%.17g\n", u, cr->removal_effect[u],
		        cr->conversions[u], cr->value[u]);
	if (fclose(f) != 0) {
		perror(path);
		return -1;
	}
	return 0;
}

static double
bm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
	struct bm_table t = { 0 };
	struct attr_table tab = { 0 };
	struct attr_credit cr;
	struct rusage ru;
	size_t n;
	uint32_t k;
	int lo = 1, hi = 3, order, rv = 1;
	double t0, sum, secs;
	uint64_t h;
	char err[256] = "";

	if (argc < 3) {
		fprintf(stderr, "usage: markov_bench PATHS CHANNELS [ORDER_FROM [ORDER_TO]]\n");
		return 64;
	}
	n = strtoul(argv[1], NULL, 10);
	k = (uint32_t)strtoul(argv[2], NULL, 10);
	if (argc > 3)
		lo = atoi(argv[3]);
	hi = argc > 4 ? atoi(argv[4]) : (argc > 3 ? lo : hi);
	if (n == 0 || k == 0 || n > 100000000) {
		fprintf(stderr, "markov_bench: PATHS 1..1e8 and CHANNELS >= 1\n");
		return 64;
	}
	t0 = bm_now();
	if (bm_generate(&t, n, k) != 0) {
		fprintf(stderr, "markov_bench: out of memory\n");
		return 70;
	}
	fprintf(stderr, "generated %zu distinct paths from %llu draws in %.2f s\n", t.n,
	        (unsigned long long)t.draws, bm_now() - t0);
	tab.paths = t.paths;
	tab.npaths = t.n;
	tab.nunits = k;
	tab.unit_names = NULL;
	cr.conversions = calloc(k, sizeof(double));
	cr.value = calloc(k, sizeof(double));
	cr.removal_effect = calloc(k, sizeof(double));
	if (cr.conversions == NULL || cr.value == NULL || cr.removal_effect == NULL)
		goto fail;
	printf("paths\tchannels\torder\tseconds\tsum_credit\tdigest\n");
	for (order = lo; order <= hi; order++) {
		int st;

		t0 = bm_now();
		st = attr_markov(&tab, order, &cr, NULL, err, sizeof(err));
		if (st != TP_OK) {
			fprintf(stderr, "markov_bench: status %d: %s\n", st, err);
			goto fail;
		}
		secs = bm_now() - t0;
		sum = 0;
		for (uint32_t u = 0; u < k; u++)
			sum += cr.conversions[u];
		h = bm_digest(0xcbf29ce484222325ULL, cr.removal_effect, k);
		h = bm_digest(h, cr.conversions, k);
		h = bm_digest(h, cr.value, k);
		printf("%zu\t%u\t%d\t%.3f\t%.6g\t%016llx\n", t.n, k, order, secs, sum,
		       (unsigned long long)h);
		if (getenv("MARKOV_BENCH_DUMP") != NULL &&
		    bm_dump(getenv("MARKOV_BENCH_DUMP"), &cr, k) != 0)
			goto fail;
		fflush(stdout);
	}
	getrusage(RUSAGE_SELF, &ru);
	fprintf(stderr, "max RSS %.0f MiB\n", (double)ru.ru_maxrss / 1024);
	rv = 0;
fail:
	free(cr.conversions);
	free(cr.value);
	free(cr.removal_effect);
	free(t.units);
	free(t.paths);
	return rv;
}
