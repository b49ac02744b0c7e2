/*
 * markov: the Markov-chain removal-effect model of SPEC §4, solved exactly (no simulation)
 * over a sparse state graph: hash-consed order-k states, CSR transitions, SCC-wise solves.
 */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE (mk_lanes_alloc) */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "errf.h"
#include "model.h"
#include "touchpoint/touchpoint.h"

#define MK_MAXK 4
#ifndef MK_DENSE_MAX
#define MK_DENSE_MAX 48 /* SCCs up to this size are solved by Gaussian elimination */
#endif
#ifndef MK_INV_MAX
#define MK_INV_MAX 1536 /* order 1 with up to this many states: one dense inverse */
#endif
/* Gauss–Seidel stops when the largest update (about the residual) is below this, relative. */
#ifndef MK_TOL
#define MK_TOL 1e-14
#endif
/*
 * ... and a removal's lane when its largest update is below this times its largest δ: the
 * removal effects come out within about twice this, relative, of the exact ones (checked
 * against a solve at 1e-15 through MARKOV_BENCH_DUMP, docs/BENCHMARKS.md) ...
 */
#ifndef MK_LANE_TOL
#define MK_LANE_TOL 1e-13
#endif
/*
 * ... or below this in an SCC with a coarse correction, where a sweep's update is about
 * ten times the error it leaves, not about the error: within 3·10⁻¹⁴ relative of a solve at
 * 1e-15 on the benchmark's tables, 100 k and 1 M paths (3e-13 before the hubs of
 * mk_coarse_make: 1.3·10⁻¹³ at 1 M paths, 1000 channels, order 2, in 6 % more sweeps).
 */
#ifndef MK_CG_LANE_TOL
#define MK_CG_LANE_TOL 3e-14
#endif
#ifndef MK_LANES
/*
 * Removals solved together in one pass over the graph. A sweep waits on memory for every
 * predecessor's lanes, much the same for 4 lanes as for 24, so the more a pass carries the
 * less each costs: 1 M paths, 1000 channels, order 2 take 24–26 s with 4 lanes, 16–17 s
 * with 24 and no less with 32, whose lane array is a third larger (docs/BENCHMARKS.md,
 * "Session 26"). Multiples of four up to 64.
 */
#define MK_LANES 24
#endif
#ifndef MK_PREFETCH
#define MK_PREFETCH 2 /* the sweep asks for the lanes of the state this far ahead */
#endif
_Static_assert(MK_LANES % 4 == 0 && MK_LANES <= 64, "lanes go by four, their bits in 64");
#define MK_NV (MK_LANES / 4)
/* Four lanes: GCC's vector extension, so the same code is SSE2 or AVX2 (see MK_SWEEP_CLONES). */
typedef double mk_v4 __attribute__((vector_size(32)));
typedef float mk_f4 __attribute__((vector_size(16)));
typedef long long mk_l4 __attribute__((vector_size(32)));
#ifndef MK_OMEGA
#define MK_OMEGA 1.1 /* over-relaxation of the Gauss–Seidel sweeps */
#endif
#ifndef MK_THREAD_MIN
#define MK_THREAD_MIN 4096 /* fewer states: one thread unless TP_MARKOV_THREADS says */
#endif
#ifndef MK_XP_MAX
#define MK_XP_MAX 8 /* extrapolations per SCC solve of a removal batch, at most */
#endif
#ifndef MK_XP_LAM
#define MK_XP_LAM 0.99 /* ... only while both modes shrink at least this fast */
#endif
#ifndef MK_XP_FIT
#define MK_XP_FIT 5e-2 /* ... and the two-mode fit leaves less than this of the update */
#endif
#ifndef MK_CG_MIN
/*
 * SCCs of at least this many states get a coarse correction; the Gauss–Seidel test build
 * (MK_DENSE_MAX=2) gives it to small ones too, so that the tests reach it.
 */
#define MK_CG_MIN (MK_DENSE_MAX < 48 ? 16 : 1024)
#endif
#ifndef MK_CG_SWEEPS_MAX
#define MK_CG_SWEEPS_MAX 300 /* ... sweeps with it at most, then without (mk_lane_group) */
#endif
#ifndef MK_CG_AGG
#define MK_CG_AGG 64 /* ... over at most this many aggregates by first unit (2 or more) */
#endif
#ifndef MK_CG_HUBS
#define MK_CG_HUBS 64 /* ... plus the states with the most visits, each its own (see mk_hubs) */
#endif
_Static_assert(MK_CG_AGG >= 2 && MK_CG_HUBS >= 0 && MK_CG_AGG + MK_CG_HUBS <= 256,
               "aggregates are numbered in a byte");
#ifdef MK_STATS
/*
 * -DMK_STATS: attr_markov prints to stderr the removal solves' work (states × sweeps,
 * and the sweeps of SCCs over MK_DENSE_MAX states), a deterministic figure to compare
 * methods by, and the share of the flow inside SCCs that runs against the sweep order.
 */
static atomic_ullong mk_nwork, mk_nsweep;
#endif
/*
 * The removal sweeps are nearly all of a big chain's time, and waiting on the loads of the
 * predecessors' lanes: with AVX2 four lanes take one load and one multiply-add instead of two
 * each, so more of those loads are in flight at once (−8 to −20 % at 1 M paths, 1000
 * channels, order 2, with four lanes). Their coarse correction (mk_coarse_fix, a tenth of
 * the time with 24 lanes) is built twice too. The same multiplies and adds in the same
 * order, so the same bits on any CPU; the clone is chosen when the program is loaded.
 */
#if defined(__x86_64__) && defined(__has_attribute) && !defined(MK_NO_CLONES)
#if __has_attribute(target_clones)
#define MK_SWEEP_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef MK_SWEEP_CLONES
#define MK_SWEEP_CLONES
#endif
#define MK_MAX_THREADS 64      /* TP_MARKOV_THREADS is capped here; the default at 8 */
#define MK_MAX_SWEEPS  1000000 /* a safety net; only chains that almost never end get near it */
#define MK_MAX_STATES  (UINT32_MAX / 2)
#define MK_NONE        UINT32_MAX
#define MK_EMPTY       UINT64_MAX

/* The chain while it is being counted: states and aggregated transition weights. */
struct mk_build {
	uint32_t *keys; /* MK_MAXK units per state */
	uint8_t *klen;  /* 0 for (start) */
	double *wconv, *wnull, *vsum;
	size_t n, cap;
	uint32_t *stab; /* open addressing: state id, MK_NONE empty */
	size_t scap;
	uint64_t *ekey; /* from << 32 | to, MK_EMPTY empty */
	double *ew;
	size_t ne, ecap;
};

/* The chain ready to solve, renumbered so that SCCs are contiguous, sinks first. */
struct mk_chain {
	size_t n, ne;
	size_t *rp;    /* forward CSR */
	uint32_t *col; /* successor */
	double *p;     /* its probability */
	size_t *qp;    /* reverse CSR */
	uint32_t *qcol;
	double *qpr;
	double *r, *g; /* P(s -> conversion), value rate vsum/wout */
	uint32_t *scc;
	size_t nscc;
	size_t *sp; /* per SCC, its first state (SCCs are contiguous, numbered in order) */
	size_t *dp; /* per SCC, its successor SCCs: the condensation, as CSR */
	uint32_t *dcol;
	uint32_t start;
	size_t *up; /* per unit, the states containing it */
	uint32_t *ust;
	uint32_t *first;      /* per state, its first unit (nunits for (start)) */
	struct mk_coarse *cg; /* the big SCCs' coarse systems (removals) */
	size_t ncg;
};

/* A big SCC's coarse system (see mk_coarse_fix). */
struct mk_coarse {
	size_t scc, lo, m, nc;
	uint8_t *agg; /* per state of the SCC (from lo), its aggregate */
	double *w;    /* ... and its share of the aggregate's visits */
	double *lu;   /* nc × nc, the aggregated system's LU factors */
	size_t *piv;  /* ... and the row swapped into each row */
	uint32_t *gp; /* per position in the sweep, its flow against the sweep: */
	uint8_t *ga;  /* the aggregate it goes to */
	double *gw;   /* and its probability, summed over the states it goes to there */
};

/* Work space of the solver (the removals: one per thread, sharing v read-only). */
struct mk_solver {
	const struct mk_chain *c;
	const struct mk_coarse *cg; /* the current SCC's, or NULL */
	double *cy;                 /* its right-hand sides and solutions */
	double *v;                  /* expected visits in the full chain */
	double *lv; /* per state, MK_LANES lanes of δ = v − v₋u, one removal each; 0 between */
	uint64_t *lane;       /* bit j: the state holds lane j's unit */
	uint64_t *bits;       /* states (full chain) or SCCs (removals) to solve */
	uint32_t *grp;        /* one SCC's members */
	uint32_t *list;       /* the SCCs of the current removal, for restoring afterwards */
	uint32_t u[MK_LANES]; /* the current removal's units, nu of them */
	int nu;
	float *dl;     /* per position in grp, MK_LANES lanes of the last 3 sweeps' updates */
	int32_t *loc;  /* dense index in the current SCC, -1 elsewhere */
	double *a, *b; /* dense system */
};

static uint64_t
mk_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static uint64_t
mk_hash_key(const uint32_t *u, uint32_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL + len;
	uint32_t i;

	for (i = 0; i < len; i++)
		h = mk_mix(h ^ ((uint64_t)u[i] + 0x632be59bd9b4e019ULL * (i + 1)));
	return h;
}

static int
mk_grow_states(struct mk_build *b)
{
	size_t ncap = b->cap ? b->cap * 2 : 1024, i;
	uint32_t *keys;
	uint8_t *klen;
	double *a, *c, *v;

	if (ncap > MK_MAX_STATES)
		return TP_RESOURCE_EXHAUSTED;
	keys = realloc(b->keys, ncap * MK_MAXK * sizeof(*keys));
	if (keys == NULL)
		return TP_RESOURCE_EXHAUSTED;
	b->keys = keys;
	klen = realloc(b->klen, ncap);
	if (klen == NULL)
		return TP_RESOURCE_EXHAUSTED;
	b->klen = klen;
	a = realloc(b->wconv, ncap * sizeof(double));
	if (a == NULL)
		return TP_RESOURCE_EXHAUSTED;
	b->wconv = a;
	c = realloc(b->wnull, ncap * sizeof(double));
	if (c == NULL)
		return TP_RESOURCE_EXHAUSTED;
	b->wnull = c;
	v = realloc(b->vsum, ncap * sizeof(double));
	if (v == NULL)
		return TP_RESOURCE_EXHAUSTED;
	b->vsum = v;
	for (i = b->cap; i < ncap; i++)
		b->wconv[i] = b->wnull[i] = b->vsum[i] = 0;
	b->cap = ncap;
	return TP_OK;
}

static int
mk_rehash_states(struct mk_build *b, size_t ncap)
{
	uint32_t *t;
	size_t i, j, mask = ncap - 1;

	t = malloc(ncap * sizeof(*t));
	if (t == NULL)
		return TP_RESOURCE_EXHAUSTED;
	memset(t, 0xff, ncap * sizeof(*t));
	for (i = 0; i < b->n; i++) {
		j = mk_hash_key(b->keys + i * MK_MAXK, b->klen[i]) & mask;
		while (t[j] != MK_NONE)
			j = (j + 1) & mask;
		t[j] = (uint32_t)i;
	}
	free(b->stab);
	b->stab = t;
	b->scap = ncap;
	return TP_OK;
}

/* The id of state u[0..len-1], created on first sight. */
static int
mk_intern(struct mk_build *b, const uint32_t *u, uint32_t len, uint32_t *id)
{
	size_t j, mask;
	uint32_t s;
	int rv;

	if ((b->n + 1) * 2 > b->scap && (rv = mk_rehash_states(b, b->scap * 2)) != TP_OK)
		return rv;
	mask = b->scap - 1;
	j = mk_hash_key(u, len) & mask;
	while ((s = b->stab[j]) != MK_NONE) {
		const uint32_t *key = b->keys + (size_t)s * MK_MAXK;
		uint32_t i;

		/* Not memcmp: a call per probe for at most four words was most of the count. */
		for (i = 0; i < len && key[i] == u[i]; i++)
			;
		if (b->klen[s] == len && i == len) {
			*id = s;
			return TP_OK;
		}
		j = (j + 1) & mask;
	}
	if (b->n == b->cap && (rv = mk_grow_states(b)) != TP_OK)
		return rv;
	s = (uint32_t)b->n++;
	memset(b->keys + (size_t)s * MK_MAXK, 0, MK_MAXK * 4);
	memcpy(b->keys + (size_t)s * MK_MAXK, u, len * 4);
	b->klen[s] = (uint8_t)len;
	b->stab[j] = s;
	*id = s;
	return TP_OK;
}

static int
mk_rehash_edges(struct mk_build *b, size_t ncap)
{
	uint64_t *k;
	double *w;
	size_t i, j, mask = ncap - 1;

	k = malloc(ncap * sizeof(*k));
	w = malloc(ncap * sizeof(*w));
	if (k == NULL || w == NULL) {
		free(k);
		free(w);
		return TP_RESOURCE_EXHAUSTED;
	}
	memset(k, 0xff, ncap * sizeof(*k));
	for (i = 0; i < b->ecap; i++) {
		if (b->ekey[i] == MK_EMPTY)
			continue;
		j = mk_mix(b->ekey[i]) & mask;
		while (k[j] != MK_EMPTY)
			j = (j + 1) & mask;
		k[j] = b->ekey[i];
		w[j] = b->ew[i];
	}
	free(b->ekey);
	free(b->ew);
	b->ekey = k;
	b->ew = w;
	b->ecap = ncap;
	return TP_OK;
}

static int
mk_add_edge(struct mk_build *b, uint32_t from, uint32_t to, double w)
{
	uint64_t key = (uint64_t)from << 32 | to;
	size_t j, mask;
	int rv;

	if ((b->ne + 1) * 2 > b->ecap && (rv = mk_rehash_edges(b, b->ecap * 2)) != TP_OK)
		return rv;
	mask = b->ecap - 1;
	j = mk_mix(key) & mask;
	while (b->ekey[j] != MK_EMPTY) {
		if (b->ekey[j] == key) {
			b->ew[j] += w;
			return TP_OK;
		}
		j = (j + 1) & mask;
	}
	b->ekey[j] = key;
	b->ew[j] = w;
	b->ne++;
	return TP_OK;
}

static void
mk_build_free(struct mk_build *b)
{
	free(b->keys);
	free(b->klen);
	free(b->wconv);
	free(b->wnull);
	free(b->vsum);
	free(b->stab);
	free(b->ekey);
	free(b->ew);
	memset(b, 0, sizeof(*b));
}

/* Its counts and value are finite and >= 0 (NaN is neither). */
static inline int
mk_counts_ok(const struct attr_path *p)
{
	return p->conversions >= 0 && p->nulls >= 0 && p->value >= 0 && isfinite(p->conversions) &&
	       isfinite(p->nulls) && isfinite(p->value);
}

/* A path of the table that the model cannot use gets an error naming it. */
static int
mk_check_path(const struct attr_table *t, size_t i, char *errbuf, size_t errlen)
{
	const struct attr_path *p = &t->paths[i];
	uint32_t j;

	if (p->len == 0 || p->units == NULL) {
		tp_errf(errbuf, errlen, "paths[%zu]: empty path", i);
		return TP_INVALID_ARGUMENT;
	}
	if (!mk_counts_ok(p)) {
		tp_errf(errbuf, errlen, "paths[%zu]: counts and value must be finite and >= 0", i);
		return TP_INVALID_ARGUMENT;
	}
	for (j = 0; j < p->len; j++) {
		if (p->units[j] >= t->nunits) {
			tp_errf(errbuf, errlen, "paths[%zu].units[%u]: %u is not below nunits %u",
			        i, j, p->units[j], t->nunits);
			return TP_INVALID_ARGUMENT;
		}
	}
	return TP_OK;
}

/*
 * Order 1 with at most this many units: transitions are counted in a dense matrix, not
 * the hash table (mk_count1), if the table has enough paths to pay for zeroing it (a
 * segment of a few paths over hundreds of campaigns does not).
 */
#define MK_DENSE_UNITS 1023
#define MK_DENSE_OK(t)                                                                             \
	((t)->nunits <= MK_DENSE_UNITS &&                                                          \
	 ((size_t)(t)->nunits + 1) * ((size_t)(t)->nunits + 1) <= 4 * (t)->npaths + 4096)

/*
 * mk_count for order 1 with few units: every state is one unit, so a table by unit
 * replaces the state hash and a dense matrix the transition hash, and each path is
 * checked in the same pass. States are numbered, and transitions enter the hash table,
 * in the order they are first met, as mk_count does, so the chain is the same bit for
 * bit. A million paths over a dozen channels (ChannelAttribution's reference: about a
 * second) take a pass over the table.
 */
static int
mk_count1(struct mk_build *b, const struct attr_table *t, uint32_t start, double *tot, char *errbuf,
          size_t errlen)
{
	uint32_t prev, id, u, *ust, *seen;
	size_t i, j, n1 = (size_t)t->nunits + 1, nseen = 0;
	double w, *dw;
	int rv = TP_RESOURCE_EXHAUSTED;

	ust = malloc(n1 * sizeof(*ust));
	seen = malloc(n1 * n1 * sizeof(*seen));
	dw = calloc(n1 * n1, sizeof(*dw));
	if (ust == NULL || seen == NULL || dw == NULL)
		goto fail;
	memset(ust, 0xff, n1 * sizeof(*ust));
	for (i = 0; i < t->npaths; i++) {
		const struct attr_path *p = &t->paths[i];

		tot[0] += p->conversions; /* moot if the path is refused */
		tot[1] += p->value;
		w = p->conversions + p->nulls;
		/* The units are checked as they are counted; a path not counted, here. */
		if (p->len == 0 || p->units == NULL || !mk_counts_ok(p) || !(w > 0)) {
			if ((rv = mk_check_path(t, i, errbuf, errlen)) != TP_OK)
				goto fail;
			continue; /* nothing to count */
		}
		prev = start;
		for (j = 0; j < p->len; j++) {
			if ((u = p->units[j]) >= t->nunits) {
				rv = mk_check_path(t, i, errbuf, errlen);
				goto fail;
			}
			if ((id = ust[u]) == MK_NONE) {
				if ((rv = mk_intern(b, &u, 1, &id)) != TP_OK)
					goto fail;
				ust[u] = id;
			}
			if (id == prev)
				continue;
			if (dw[(size_t)prev * n1 + id] == 0)
				seen[nseen++] = (uint32_t)((size_t)prev * n1 + id);
			dw[(size_t)prev * n1 + id] += w;
			prev = id;
		}
		b->wconv[prev] += p->conversions;
		b->wnull[prev] += p->nulls;
		if (p->conversions > 0)
			b->vsum[prev] += p->value;
	}
	for (j = 0; j < nseen; j++) {
		if ((rv = mk_add_edge(b, (uint32_t)(seen[j] / n1), (uint32_t)(seen[j] % n1),
		                      dw[seen[j]])) != TP_OK)
			goto fail;
	}
	rv = TP_OK;
fail:
	free(ust);
	free(seen);
	free(dw);
	return rv;
}

/*
 * Count every path's transitions, checking each path and summing the conversions and
 * value into tot[0], tot[1] as it goes (one pass over the table); consecutive identical
 * states are merged.
 */
static int
mk_count(struct mk_build *b, const struct attr_table *t, int k, double *tot, char *errbuf,
         size_t errlen)
{
	uint32_t win[MK_MAXK] = { 0 }, start, prev, id;
	size_t i, j, nwin;
	double w;
	int rv;

	if ((rv = mk_rehash_states(b, 1024)) != TP_OK || (rv = mk_rehash_edges(b, 1024)) != TP_OK)
		return rv;
	if ((rv = mk_intern(b, win, 0, &start)) != TP_OK)
		return rv;
	if (k == 1 && MK_DENSE_OK(t))
		return mk_count1(b, t, start, tot, errbuf, errlen);
	for (i = 0; i < t->npaths; i++) {
		const struct attr_path *p = &t->paths[i];

		if ((rv = mk_check_path(t, i, errbuf, errlen)) != TP_OK)
			return rv;
		tot[0] += p->conversions;
		tot[1] += p->value;
		w = p->conversions + p->nulls;
		if (w <= 0)
			continue;
		prev = start;
		nwin = p->len < (uint32_t)k ? 1 : p->len - (uint32_t)k + 1;
		for (j = 0; j < nwin; j++) {
			uint32_t len = p->len < (uint32_t)k ? p->len : (uint32_t)k;

			memcpy(win, p->units + j, len * sizeof(*win));
			if ((rv = mk_intern(b, win, len, &id)) != TP_OK)
				return rv;
			if (id == prev)
				continue;
			if ((rv = mk_add_edge(b, prev, id, w)) != TP_OK)
				return rv;
			prev = id;
		}
		b->wconv[prev] += p->conversions;
		b->wnull[prev] += p->nulls;
		if (p->conversions > 0)
			b->vsum[prev] += p->value;
	}
	return TP_OK;
}

/*
 * Tarjan's SCC algorithm without recursion (chains have millions of states). Returns
 * in order[] the states grouped by SCC, sink SCCs first, each SCC in DFS postorder, so
 * that a Gauss–Seidel sweep in this order meets most successors before their
 * predecessors; scc[] gets the SCC number of each state.
 */
static int
mk_tarjan(size_t n, const size_t *rp, const uint32_t *col, uint32_t *order, uint32_t *scc)
{
	uint32_t *idx = NULL, *low = NULL, *stk = NULL, *cs = NULL, *post = NULL, *cnt = NULL;
	size_t *cpos = NULL, sp = 0, csp = 0, next = 0, npost = 0, nscc = 0, i;
	uint8_t *on = NULL;
	int rv = TP_RESOURCE_EXHAUSTED;

	idx = malloc(n * sizeof(*idx));
	low = malloc(n * sizeof(*low));
	stk = malloc(n * sizeof(*stk));
	cs = malloc(n * sizeof(*cs));
	cpos = malloc(n * sizeof(*cpos));
	post = malloc(n * sizeof(*post));
	on = calloc(n, 1);
	if (idx == NULL || low == NULL || stk == NULL || cs == NULL || cpos == NULL ||
	    post == NULL || on == NULL)
		goto fail;
	memset(idx, 0xff, n * sizeof(*idx));
	for (i = 0; i < n; i++) {
		if (idx[i] != MK_NONE)
			continue;
		idx[i] = low[i] = (uint32_t)next++;
		stk[sp++] = (uint32_t)i;
		on[i] = 1;
		cs[csp] = (uint32_t)i;
		cpos[csp++] = rp[i];
		while (csp > 0) {
			uint32_t v = cs[csp - 1];

			if (cpos[csp - 1] < rp[v + 1]) {
				uint32_t w = col[cpos[csp - 1]++];

				if (idx[w] == MK_NONE) {
					idx[w] = low[w] = (uint32_t)next++;
					stk[sp++] = w;
					on[w] = 1;
					cs[csp] = w;
					cpos[csp++] = rp[w];
				} else if (on[w] && idx[w] < low[v]) {
					low[v] = idx[w];
				}
				continue;
			}
			post[npost++] = v;
			csp--;
			if (csp > 0 && low[v] < low[cs[csp - 1]])
				low[cs[csp - 1]] = low[v];
			if (low[v] == idx[v]) {
				uint32_t w;

				do {
					w = stk[--sp];
					on[w] = 0;
					scc[w] = (uint32_t)nscc;
				} while (w != v);
				nscc++;
			}
		}
	}
	/* Stable counting sort of the postorder by SCC number. */
	cnt = calloc(nscc + 1, sizeof(*cnt));
	if (cnt == NULL)
		goto fail;
	for (i = 0; i < n; i++)
		cnt[scc[i] + 1]++;
	for (i = 0; i < nscc; i++)
		cnt[i + 1] += cnt[i];
	for (i = 0; i < n; i++)
		order[cnt[scc[post[i]]]++] = post[i];
	rv = TP_OK;
fail:
	free(idx);
	free(low);
	free(stk);
	free(cs);
	free(cpos);
	free(post);
	free(on);
	free(cnt);
	return rv;
}

/*
 * A Gauss–Seidel sweep of a big SCC converges as fast as little of the traffic runs
 * against its order (predecessors swept after their successors). Tarjan's DFS order leaves
 * 31–43 % of it backwards on the benchmark's path tables; Eades, Lin and Smyth's greedy
 * heuristic for a small feedback arc set, weighted by the transitions' counts (which are the
 * flows of the chain), orders each big SCC anew and leaves 26–34 %, for 7–18 % fewer sweeps:
 * sinks go last, sources first, otherwise the state whose outgoing count most exceeds its
 * incoming one goes next.
 */
struct mk_heap {
	double *key;
	uint32_t *id;
	size_t n;
};

static void
mk_heap_push(struct mk_heap *h, double key, uint32_t id)
{
	size_t i = h->n++;

	while (i > 0 && h->key[(i - 1) / 2] < key) {
		h->key[i] = h->key[(i - 1) / 2];
		h->id[i] = h->id[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->key[i] = key;
	h->id[i] = id;
}

static void
mk_heap_pop(struct mk_heap *h)
{
	double key = h->key[--h->n];
	uint32_t id = h->id[h->n];
	size_t i = 0, k;

	while ((k = 2 * i + 1) < h->n) {
		if (k + 1 < h->n && h->key[k + 1] > h->key[k])
			k++;
		if (!(h->key[k] > key))
			break;
		h->key[i] = h->key[k];
		h->id[i] = h->id[k];
		i = k;
	}
	h->key[i] = key;
	h->id[i] = id;
}

/*
 * Reorder mem[0..m-1] (one SCC, original ids) so that a sweep from mem[m-1] down to mem[0]
 * follows the heavy transitions. loc[] is -1 for every state on entry and on return.
 */
static int
mk_els(uint32_t *mem, size_t m, const size_t *orp, const uint32_t *ocol, const double *ow,
       int32_t *loc)
{
	size_t *ip = NULL, ne = 0, i, e, nin, nhd = 0, ntl = 0, left = m;
	uint32_t *ic = NULL, *stk = NULL, *seq = NULL, *cin = NULL, *cout = NULL;
	double *iw = NULL, *win = NULL, *wout = NULL;
	uint8_t *gone = NULL;
	struct mk_heap h = { 0 };
	int rv = TP_RESOURCE_EXHAUSTED;

	for (i = 0; i < m; i++)
		loc[mem[i]] = (int32_t)i;
	for (i = 0; i < m; i++) {
		for (e = orp[mem[i]]; e < orp[mem[i] + 1]; e++)
			ne += loc[ocol[e]] >= 0;
	}
	ip = calloc(m + 1, sizeof(*ip));
	ic = malloc((ne ? ne : 1) * sizeof(*ic));
	iw = malloc((ne ? ne : 1) * sizeof(*iw));
	stk = malloc(2 * (ne + m) * sizeof(*stk));
	seq = malloc(m * sizeof(*seq));
	cin = calloc(m, sizeof(*cin));
	cout = calloc(m, sizeof(*cout));
	win = calloc(m, sizeof(*win));
	wout = calloc(m, sizeof(*wout));
	gone = calloc(m, 1);
	h.key = malloc((m + 2 * ne) * sizeof(*h.key));
	h.id = malloc((m + 2 * ne) * sizeof(*h.id));
	if (ip == NULL || ic == NULL || iw == NULL || stk == NULL || seq == NULL || cin == NULL ||
	    cout == NULL || win == NULL || wout == NULL || gone == NULL || h.key == NULL ||
	    h.id == NULL)
		goto fail;
	/* Incoming transitions within the SCC, as CSR on local ids. */
	for (i = 0; i < m; i++) {
		for (e = orp[mem[i]]; e < orp[mem[i] + 1]; e++) {
			int32_t t = loc[ocol[e]];

			if (t < 0)
				continue;
			ip[t + 1]++;
			cout[i]++;
			wout[i] += ow[e];
			cin[t]++;
			win[t] += ow[e];
		}
	}
	for (i = 0; i < m; i++)
		ip[i + 1] += ip[i];
	for (i = 0; i < m; i++) {
		for (e = orp[mem[i]]; e < orp[mem[i] + 1]; e++) {
			int32_t t = loc[ocol[e]];

			if (t < 0)
				continue;
			ic[ip[t]] = (uint32_t)i;
			iw[ip[t]++] = ow[e];
		}
	}
	for (i = m; i > 0; i--)
		ip[i] = ip[i - 1];
	ip[0] = 0;
	for (i = 0; i < m; i++)
		mk_heap_push(&h, wout[i] - win[i], (uint32_t)i);
	nin = 0;
	while (left > 0) {
		uint32_t u;
		int tail;

		/* Sinks and sources first (the stack holds candidates; stale ones are skipped). */
		if (nin > 0) {
			u = stk[--nin];
			if (gone[u] || (cout[u] != 0 && cin[u] != 0))
				continue;
			tail = cout[u] == 0;
		} else {
			if (h.n == 0) { /* cannot happen: every state left has its key */
				rv = TP_INTERNAL;
				goto fail;
			}
			u = h.id[0];
			if (gone[u] || h.key[0] != wout[u] - win[u]) {
				mk_heap_pop(&h);
				continue;
			}
			mk_heap_pop(&h);
			tail = 0;
		}
		gone[u] = 1;
		left--;
		if (tail)
			seq[m - 1 - ntl++] = u;
		else
			seq[nhd++] = u;
		for (e = orp[mem[u]]; e < orp[mem[u] + 1]; e++) {
			int32_t t = loc[ocol[e]];

			if (t < 0 || gone[t])
				continue;
			win[t] -= ow[e];
			if (--cin[t] == 0)
				stk[nin++] = (uint32_t)t;
			mk_heap_push(&h, wout[t] - win[t], (uint32_t)t);
		}
		for (e = ip[u]; e < ip[u + 1]; e++) {
			uint32_t t = ic[e];

			if (gone[t])
				continue;
			wout[t] -= iw[e];
			if (--cout[t] == 0)
				stk[nin++] = t;
			mk_heap_push(&h, wout[t] - win[t], t);
		}
	}
	/* seq runs along the flow; a sweep goes from mem[m-1] down. */
	for (i = 0; i < m; i++)
		seq[i] = mem[seq[i]];
	for (i = 0; i < m; i++)
		mem[i] = seq[m - 1 - i];
	rv = TP_OK;
fail:
	for (i = 0; i < m; i++)
		loc[mem[i]] = -1;
	free(ip);
	free(ic);
	free(iw);
	free(stk);
	free(seq);
	free(cin);
	free(cout);
	free(win);
	free(wout);
	free(gone);
	free(h.key);
	free(h.id);
	return rv;
}

static void
mk_coarse_free(struct mk_coarse *g)
{
	free(g->agg);
	free(g->w);
	free(g->lu);
	free(g->piv);
	free(g->gp);
	free(g->ga);
	free(g->gw);
	memset(g, 0, sizeof(*g));
}

static void
mk_chain_free(struct mk_chain *c)
{
	size_t i;

	free(c->rp);
	free(c->col);
	free(c->p);
	free(c->qp);
	free(c->qcol);
	free(c->qpr);
	free(c->r);
	free(c->g);
	free(c->scc);
	free(c->sp);
	free(c->dp);
	free(c->dcol);
	free(c->up);
	free(c->ust);
	free(c->first);
	for (i = 0; i < c->ncg; i++)
		mk_coarse_free(&c->cg[i]);
	free(c->cg);
	memset(c, 0, sizeof(*c));
}

/*
 * The counted transitions as a forward CSR in the build's numbering (rp, col, w), and
 * wout, every state's total outgoing weight (transitions, conversions and nulls).
 */
struct mk_csr {
	size_t *rp;
	uint32_t *col;
	double *w, *wout;
};

static void
mk_csr_free(struct mk_csr *g)
{
	free(g->rp);
	free(g->col);
	free(g->w);
	free(g->wout);
	memset(g, 0, sizeof(*g));
}

static int
mk_csr_make(struct mk_csr *g, const struct mk_build *b)
{
	size_t n = b->n, ne = b->ne, i, e, *orp;
	uint32_t *ocol;
	double *ow, *wout;

	g->rp = orp = calloc(n + 1, sizeof(*orp));
	g->col = ocol = malloc((ne ? ne : 1) * sizeof(*ocol));
	g->w = ow = malloc((ne ? ne : 1) * sizeof(*ow));
	g->wout = wout = calloc(n ? n : 1, sizeof(*wout));
	if (orp == NULL || ocol == NULL || ow == NULL || wout == NULL) {
		mk_csr_free(g);
		return TP_RESOURCE_EXHAUSTED;
	}
	/* By counting sort on the source state. */
	for (e = 0; e < b->ecap; e++) {
		if (b->ekey[e] != MK_EMPTY)
			orp[(b->ekey[e] >> 32) + 1]++;
	}
	for (i = 0; i < n; i++)
		orp[i + 1] += orp[i];
	for (e = 0; e < b->ecap; e++) {
		uint32_t from;
		size_t at;

		if (b->ekey[e] == MK_EMPTY)
			continue;
		from = (uint32_t)(b->ekey[e] >> 32);
		at = orp[from]++;
		ocol[at] = (uint32_t)b->ekey[e];
		ow[at] = b->ew[e];
		wout[from] += b->ew[e];
	}
	for (i = n; i > 0; i--)
		orp[i] = orp[i - 1];
	orp[0] = 0;
	for (i = 0; i < n; i++)
		wout[i] += b->wconv[i] + b->wnull[i];
	return TP_OK;
}

/* State s holds unit u. */
static inline int
mk_holds(const struct mk_build *b, uint32_t s, uint32_t u)
{
	const uint32_t *key = b->keys + (size_t)s * MK_MAXK;
	uint32_t j;

	for (j = 0; j < b->klen[s] && key[j] != u; j++)
		;
	return j < b->klen[s];
}

/* State s may be eliminated on its own account: nothing converts there, it is reached. */
static int
mk_elim_ok(const struct mk_build *b, const struct mk_csr *g, const size_t *ip, const uint8_t *mark,
           size_t s)
{
	size_t e;

	if (s == 0 || mark[s] != 0 || b->wconv[s] > 0 || b->vsum[s] > 0 || ip[s + 1] == ip[s] ||
	    g->wout[s] <= 0)
		return 0;
	for (e = g->rp[s]; e < g->rp[s + 1]; e++) {
		if (g->col[e] == s)
			return 0; /* a loop: never counted, but the algebra would not hold */
	}
	return 1;
}

/* The units of blk[0..len) are each held by all its predecessors or all its successors. */
static int
mk_block_covered(const struct mk_build *b, const struct mk_csr *g, const size_t *ip,
                 const uint32_t *ic, const uint32_t *blk, size_t len)
{
	size_t k, e, in0 = blk[0], out0 = blk[len - 1];
	uint32_t j;

	for (k = 0; k < len; k++) {
		const uint32_t *key = b->keys + (size_t)blk[k] * MK_MAXK;

		for (j = 0; j < b->klen[blk[k]]; j++) {
			for (e = ip[in0]; e < ip[in0 + 1] && mk_holds(b, ic[e], key[j]); e++)
				;
			if (e == ip[in0 + 1])
				continue;
			for (e = g->rp[out0]; e < g->rp[out0 + 1] && mk_holds(b, g->col[e], key[j]);
			     e++)
				;
			if (e < g->rp[out0 + 1])
				return 0;
		}
	}
	return 1;
}

/*
 * blk[0..len) (a chain: each inner link the only way out of one state and into the next)
 * may go as a whole: no transitions added, no loop made (none of its predecessors is a
 * successor or in the block: p → block → p would become a loop p → p, and a state alone
 * in its SCC is solved in one pass, mk_lane_group; a > b > a > b made (a,b) such a state),
 * and its units covered.
 */
static int
mk_block_ok(const struct mk_build *b, const struct mk_csr *g, const size_t *ip, const uint32_t *ic,
            const uint32_t *blk, size_t len)
{
	size_t in = ip[blk[0] + 1] - ip[blk[0]],
	       out = g->rp[blk[len - 1] + 1] - g->rp[blk[len - 1]];
	size_t e, f, k;

	if (in * out > in + out + (len - 1))
		return 0;
	for (e = ip[blk[0]]; e < ip[blk[0] + 1]; e++) {
		for (k = 0; k < len && ic[e] != blk[k]; k++)
			;
		if (k < len)
			return 0;
		for (f = g->rp[blk[len - 1]]; f < g->rp[blk[len - 1] + 1] && g->col[f] != ic[e];
		     f++)
			;
		if (f < g->rp[blk[len - 1] + 1])
			return 0;
	}
	for (f = g->rp[blk[len - 1]]; f < g->rp[blk[len - 1] + 1]; f++) {
		for (k = 0; k < len && g->col[f] != blk[k]; k++)
			;
		if (k < len)
			return 0;
	}
	return mk_block_covered(b, g, ip, ic, blk, len);
}

/*
 * The chain without some states through which nothing converts: s is replaced by its
 * transitions (p → s → t becomes p → t with P(p→s)·P(s→t); its nulls become p's). That
 * is one step of Gaussian elimination, exact for the full chain's visits. It is exact
 * for every removal too when, for each unit u of s, all of s's predecessors hold u (they
 * are removed with s, and its lost visits v_s = Σ_p P(p→s)·v_p reach t as before) or all
 * of its successors do (they are removed themselves). At order k ≥ 2 a predecessor of
 * s = (a1..ak) holds a1..ak−1 and a successor a2..ak, so that is every state (start)
 * does not lead to, as long as s's neighbours are states of the original chain: the
 * eliminated states are an independent set, chosen greedily in id order. The same holds
 * for a chain of states s1 → … → sm (each link the only way out of one and into the next)
 * eliminated as one, with the units of all of them checked against s1's predecessors and
 * sm's successors (up to 3 states; at order k chains of k − 1 pass as a rule, longer ones
 * where repeated units make them, as in b > a > b > c > d > c at order 2). Only where no
 * transitions are added and no loop is made (mk_block_ok). The removal solves then sweep
 * 23–60 % fewer states on the benchmark's tables: most states of a big chain are rare
 * windows with one way in and one way out (docs/BENCHMARKS.md, "Session 14").
 */
static int
mk_reduce(const struct mk_build *b, const struct mk_csr *g, struct mk_build *r)
{
	size_t n = b->n, ne = g->rp[n], i, e, f, m = 0, *ip = NULL, cap;
	uint32_t *id = NULL, *ic = NULL;
	double w;
	uint8_t *mark = NULL; /* 1: a neighbour of an eliminated state, 2: eliminated */
	int rv = TP_RESOURCE_EXHAUSTED;

	memset(r, 0, sizeof(*r));
	ip = calloc(n + 1, sizeof(*ip));
	ic = malloc((ne ? ne : 1) * sizeof(*ic));
	mark = calloc(n ? n : 1, 1);
	id = malloc((n ? n : 1) * sizeof(*id));
	if (ip == NULL || ic == NULL || mark == NULL || id == NULL)
		goto fail;
	for (e = 0; e < ne; e++)
		ip[g->col[e] + 1]++;
	for (i = 0; i < n; i++)
		ip[i + 1] += ip[i];
	for (i = 0; i < n; i++) {
		for (e = g->rp[i]; e < g->rp[i + 1]; e++)
			ic[ip[g->col[e]]++] = (uint32_t)i;
	}
	for (i = n; i > 0; i--)
		ip[i] = ip[i - 1];
	ip[0] = 0;
	/* State 0 is (start): never eliminated, and so stays 0. */
	for (i = 1; i < n; i++) {
		uint32_t blk[MK_MAXK - 1];
		size_t len, k;

		if (!mk_elim_ok(b, g, ip, mark, i))
			continue;
		/* The block: i, then while a state's only successor has it as only predecessor. */
		blk[0] = (uint32_t)i;
		for (len = 1; len < MK_MAXK - 1; len++) {
			uint32_t x, cur = blk[len - 1];

			if (g->rp[cur + 1] - g->rp[cur] != 1)
				break;
			x = g->col[g->rp[cur]];
			if (ip[x + 1] - ip[x] != 1 || x == i || !mk_elim_ok(b, g, ip, mark, x))
				break;
			blk[len] = x;
		}
		for (; len > 0 && !mk_block_ok(b, g, ip, ic, blk, len); len--)
			;
		if (len == 0)
			continue;
		for (k = 0; k < len; k++)
			mark[blk[k]] = 2;
		for (e = ip[blk[0]]; e < ip[blk[0] + 1]; e++)
			mark[ic[e]] = 1;
		for (e = g->rp[blk[len - 1]]; e < g->rp[blk[len - 1] + 1]; e++)
			mark[g->col[e]] = 1;
	}
	for (i = 0; i < n; i++)
		id[i] = mark[i] == 2 ? MK_NONE : (uint32_t)m++;
#ifdef MK_STATS
	fprintf(stderr, "markov: %zu states, %zu eliminated\n", n, n - m);
#endif

	r->n = r->cap = m;
	r->keys = malloc((m ? m : 1) * MK_MAXK * sizeof(*r->keys));
	r->klen = malloc(m ? m : 1);
	r->wconv = malloc((m ? m : 1) * sizeof(double));
	r->wnull = malloc((m ? m : 1) * sizeof(double));
	r->vsum = malloc((m ? m : 1) * sizeof(double));
	if (r->keys == NULL || r->klen == NULL || r->wconv == NULL || r->wnull == NULL ||
	    r->vsum == NULL)
		goto fail;
	for (cap = 1024; cap < 2 * (b->ne + 1); cap *= 2)
		;
	if ((rv = mk_rehash_edges(r, cap)) != TP_OK)
		goto fail;
	for (i = 0; i < n; i++) {
		uint32_t p = id[i];

		if (p == MK_NONE)
			continue;
		memcpy(r->keys + (size_t)p * MK_MAXK, b->keys + i * MK_MAXK, MK_MAXK * 4);
		r->klen[p] = b->klen[i];
		r->wconv[p] = b->wconv[i];
		r->wnull[p] = b->wnull[i];
		r->vsum[p] = b->vsum[i];
	}
	for (i = 0; i < n; i++) {
		uint32_t p = id[i];

		if (p == MK_NONE)
			continue;
		for (e = g->rp[i]; e < g->rp[i + 1]; e++) {
			uint32_t s = g->col[e];

			if (id[s] != MK_NONE) {
				if ((rv = mk_add_edge(r, p, id[s], g->w[e])) != TP_OK)
					goto fail;
				continue;
			}
			/* Along the block to its end (its inner states have one way out each). */
			for (w = g->w[e];; s = g->col[g->rp[s]]) {
				r->wnull[p] += w * b->wnull[s] / g->wout[s];
				if (g->rp[s + 1] - g->rp[s] != 1 || id[g->col[g->rp[s]]] != MK_NONE)
					break;
				w *= g->w[g->rp[s]] / g->wout[s];
			}
			for (f = g->rp[s]; f < g->rp[s + 1]; f++) {
				if ((rv = mk_add_edge(r, p, id[g->col[f]],
				                      w * g->w[f] / g->wout[s])) != TP_OK)
					goto fail;
			}
		}
	}
	rv = TP_OK;
fail:
	if (rv != TP_OK)
		mk_build_free(r);
	free(ip);
	free(ic);
	free(mark);
	free(id);
	return rv;
}

/* From the counts (b, and g its CSR) to the solvable chain. */
static int
mk_chain_make(struct mk_chain *c, const struct mk_build *b, const struct mk_csr *g, uint32_t nunits)
{
	size_t n = b->n, ne = b->ne, i, e;
	const size_t *orp = g->rp;
	const uint32_t *ocol = g->col;
	const double *ow = g->w, *wout = g->wout;
	uint32_t *order = NULL, *newid = NULL, *oscc = NULL;
	int rv = TP_RESOURCE_EXHAUSTED;

	c->n = n;
	c->ne = ne;
	order = malloc(n * sizeof(*order));
	newid = malloc(n * sizeof(*newid));
	oscc = malloc(n * sizeof(*oscc));
	c->rp = calloc(n + 1, sizeof(*c->rp));
	c->col = malloc((ne ? ne : 1) * sizeof(*c->col));
	c->p = malloc((ne ? ne : 1) * sizeof(*c->p));
	c->qp = calloc(n + 1, sizeof(*c->qp));
	c->qcol = malloc((ne ? ne : 1) * sizeof(*c->qcol));
	c->qpr = malloc((ne ? ne : 1) * sizeof(*c->qpr));
	c->r = malloc(n * sizeof(*c->r));
	c->g = malloc(n * sizeof(*c->g));
	c->scc = malloc(n * sizeof(*c->scc));
	c->up = calloc((size_t)nunits + 1, sizeof(*c->up));
	c->first = malloc(n * sizeof(*c->first));
	if (order == NULL || newid == NULL || oscc == NULL || c->rp == NULL || c->col == NULL ||
	    c->p == NULL || c->qp == NULL || c->qcol == NULL || c->qpr == NULL || c->r == NULL ||
	    c->g == NULL || c->scc == NULL || c->up == NULL || c->first == NULL)
		goto fail;

	if ((rv = mk_tarjan(n, orp, ocol, order, oscc)) != TP_OK)
		goto fail;
#ifndef MK_NO_ELS                                /* -DMK_NO_ELS: Tarjan's order, to compare */
	memset(newid, 0xff, n * sizeof(*newid)); /* as loc[] of mk_els */
	for (i = 0; i < n; i = e) {
		for (e = i + 1; e < n && oscc[order[e]] == oscc[order[i]]; e++)
			;
		if (e - i > MK_DENSE_MAX &&
		    (rv = mk_els(order + i, e - i, orp, ocol, ow, (int32_t *)newid)) != TP_OK)
			goto fail;
	}
#endif
	rv = TP_RESOURCE_EXHAUSTED;
	for (i = 0; i < n; i++)
		newid[order[i]] = (uint32_t)i;
	c->start = newid[0];

	/* Renumbered forward CSR with probabilities, and the reverse structure. */
	for (i = 0; i < n; i++) {
		uint32_t o = order[i];
		double wo = wout[o];

		c->rp[i + 1] = c->rp[i] + (orp[o + 1] - orp[o]);
		for (e = orp[o]; e < orp[o + 1]; e++) {
			size_t at = c->rp[i] + (e - orp[o]);

			c->col[at] = newid[ocol[e]];
			c->p[at] = wo > 0 ? ow[e] / wo : 0;
			c->qp[c->col[at] + 1]++;
		}
		c->r[i] = wo > 0 ? b->wconv[o] / wo : 0;
		c->g[i] = wo > 0 ? b->vsum[o] / wo : 0;
		c->scc[i] = oscc[o];
		c->first[i] = b->klen[o] > 0 ? b->keys[(size_t)o * MK_MAXK] : nunits;
	}
	for (i = 0; i < n; i++)
		c->qp[i + 1] += c->qp[i];
	for (i = 0; i < n; i++) {
		for (e = c->rp[i]; e < c->rp[i + 1]; e++) {
			size_t at = c->qp[c->col[e]]++;

			c->qcol[at] = (uint32_t)i;
			c->qpr[at] = c->p[e];
		}
	}
	for (i = n; i > 0; i--)
		c->qp[i] = c->qp[i - 1];
	c->qp[0] = 0;

	/*
	 * SCC ranges and the condensation DAG: a removal marks the SCCs downstream of its
	 * states, and every state of a marked SCC is solved, so it walks SCCs, not states.
	 */
	c->nscc = n > 0 ? (size_t)c->scc[n - 1] + 1 : 0;
	c->sp = calloc(c->nscc + 1, sizeof(*c->sp));
	c->dp = calloc(c->nscc + 1, sizeof(*c->dp));
	c->dcol = malloc((ne ? ne : 1) * sizeof(*c->dcol));
	if (c->sp == NULL || c->dp == NULL || c->dcol == NULL)
		goto fail;
	for (i = 0; i < n; i++)
		c->sp[c->scc[i] + 1]++;
	for (i = 0; i < c->nscc; i++)
		c->sp[i + 1] += c->sp[i];
	memset(newid, 0xff, n * sizeof(*newid)); /* reused: the SCC that last listed one */
	for (i = 0, e = 0; i < c->nscc; i++) {
		size_t v, f;

		c->dp[i] = e;
		for (v = c->sp[i]; v < c->sp[i + 1]; v++) {
			for (f = c->rp[v]; f < c->rp[v + 1]; f++) {
				uint32_t t = c->scc[c->col[f]];

				if (t == i || newid[t] == i)
					continue;
				newid[t] = (uint32_t)i;
				c->dcol[e++] = t;
			}
		}
	}
	c->dp[c->nscc] = e;

	/* Per unit, the states holding it (each state once per distinct unit). */
	for (i = 0; i < n; i++) {
		const uint32_t *u = b->keys + (size_t)order[i] * MK_MAXK;
		uint32_t len = b->klen[order[i]], j, l;

		for (j = 0; j < len; j++) {
			for (l = 0; l < j && u[l] != u[j]; l++)
				;
			if (l == j)
				c->up[u[j] + 1]++;
		}
	}
	for (i = 0; i < nunits; i++)
		c->up[i + 1] += c->up[i];
	c->ust = malloc((c->up[nunits] ? c->up[nunits] : 1) * sizeof(*c->ust));
	if (c->ust == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		const uint32_t *u = b->keys + (size_t)order[i] * MK_MAXK;
		uint32_t len = b->klen[order[i]], j, l;

		for (j = 0; j < len; j++) {
			for (l = 0; l < j && u[l] != u[j]; l++)
				;
			if (l == j)
				c->ust[c->up[u[j]]++] = (uint32_t)i;
		}
	}
	for (i = nunits; i > 0; i--)
		c->up[i] = c->up[i - 1];
	c->up[0] = 0;
	rv = TP_OK;
fail:
	free(order);
	free(newid);
	free(oscc);
	return rv;
}

/*
 * Partial pivoting of both dense eliminations: the row at or below k (rows of w values)
 * whose column k is largest in magnitude is swapped into row k; its index is returned.
 */
static size_t
mk_pivot(double *a, size_t w, size_t n, size_t k)
{
	size_t i, j, piv = k;

	for (i = k + 1; i < n; i++) {
		if (fabs(a[i * w + k]) > fabs(a[piv * w + k]))
			piv = i;
	}
	if (piv != k) {
		for (j = 0; j < w; j++) {
			double t = a[k * w + j];

			a[k * w + j] = a[piv * w + j];
			a[piv * w + j] = t;
		}
	}
	return piv;
}

/* Gaussian elimination with partial pivoting on the m x m system a x = b (b gets x). */
static void
mk_dense(double *a, double *b, size_t m)
{
	size_t i, j, k, piv;

	for (k = 0; k < m; k++) {
		if ((piv = mk_pivot(a, m, m, k)) != k) {
			double t = b[k];

			b[k] = b[piv];
			b[piv] = t;
		}
		for (i = k + 1; i < m; i++) {
			double f = a[i * m + k] / a[k * m + k];

			if (f == 0)
				continue;
			for (j = k; j < m; j++)
				a[i * m + j] -= f * a[k * m + j];
			b[i] -= f * b[k];
		}
	}
	for (k = m; k-- > 0;) {
		for (j = k + 1; j < m; j++)
			b[k] -= a[k * m + j] * b[j];
		b[k] /= a[k * m + k];
	}
}

/*
 * Coarse correction of the removal sweeps. After a sweep or two the error of a lane in a
 * big SCC is, to all but 1–3 % of its square norm, e_s ≈ v_s·y_a: a factor per first unit
 * a of the state times the state's visits in the full chain (the flow that reaches channel a
 * spreads over the states (a, ·) much as the full chain's does), and sweeps shrink it by
 * only 0.25–0.5 each (measured on the benchmark's tables). So the error is also sought in
 * that space: with aggregates I of states by first unit, prolongation e_s = w_s·y_I
 * (w_s = v_s / Σ_I v) and restriction by summing over I, the aggregated system
 * (I − Pᵀ)·y = Σ_I r has P(J→I) = Σ_{p∈J} w_p·Q(p→I), the chain's flow lumped by first
 * unit. It is the full chain's, factored once (dense LU): a removal's own states are left
 * out of the residual and the correction, not of the factor, so the correction is not
 * exact for it, but it only has to be good, as the sweeps decide when a lane is done. The
 * residual after a Gauss–Seidel sweep is carried by the transitions that run against the
 * sweep alone, r_t = Σ Q(p→t)·Δ_p over those with Δ the sweep's update, so it costs a pass
 * over those transitions (reading Δ in single precision, which only changes how good the
 * correction is), not a whole sweep. Sweeps then shrink the error by about 0.05–0.1 each.
 */

/* LU factors of the n × n matrix a in place, with partial pivoting. */
static void
mk_lu(double *a, size_t n, size_t *piv)
{
	size_t i, j, k;

	for (k = 0; k < n; k++) {
		piv[k] = mk_pivot(a, n, n, k);
		for (i = k + 1; i < n; i++) {
			double f = a[i * n + k] /= a[k * n + k];

			if (f == 0)
				continue;
			for (j = k + 1; j < n; j++)
				a[i * n + j] -= f * a[k * n + j];
		}
	}
}

/* Solve with mk_lu's factors for MK_LANES right-hand sides, b[i * MK_LANES + lane]. */
static void
mk_lu_solve(const double *a, size_t n, const size_t *piv, double *b)
{
	size_t i, k;
	int j;

	for (k = 0; k < n; k++) {
		if (piv[k] != k) {
			for (j = 0; j < MK_LANES; j++) {
				double t = b[k * MK_LANES + j];

				b[k * MK_LANES + j] = b[piv[k] * MK_LANES + j];
				b[piv[k] * MK_LANES + j] = t;
			}
		}
	}
	/* Two partial sums a lane: the rows are long and the sums are latency-bound. */
	for (i = 1; i < n; i++) {
		double s0[MK_LANES] = { 0 }, s1[MK_LANES] = { 0 };

		for (k = 0; k + 1 < i; k += 2) {
			for (j = 0; j < MK_LANES; j++) {
				s0[j] += a[i * n + k] * b[k * MK_LANES + j];
				s1[j] += a[i * n + k + 1] * b[(k + 1) * MK_LANES + j];
			}
		}
		for (; k < i; k++) {
			for (j = 0; j < MK_LANES; j++)
				s0[j] += a[i * n + k] * b[k * MK_LANES + j];
		}
		for (j = 0; j < MK_LANES; j++)
			b[i * MK_LANES + j] -= s0[j] + s1[j];
	}
	for (i = n; i-- > 0;) {
		double s0[MK_LANES] = { 0 }, s1[MK_LANES] = { 0 };

		for (k = i + 1; k + 1 < n; k += 2) {
			for (j = 0; j < MK_LANES; j++) {
				s0[j] += a[i * n + k] * b[k * MK_LANES + j];
				s1[j] += a[i * n + k + 1] * b[(k + 1) * MK_LANES + j];
			}
		}
		for (; k < n; k++) {
			for (j = 0; j < MK_LANES; j++)
				s0[j] += a[i * n + k] * b[k * MK_LANES + j];
		}
		for (j = 0; j < MK_LANES; j++)
			b[i * MK_LANES + j] = (b[i * MK_LANES + j] - s0[j] - s1[j]) / a[i * n + i];
	}
}

struct mk_rank {
	double v;
	uint32_t u;
};

static int
mk_cmp_rank(const void *a, const void *b)
{
	const struct mk_rank *x = a, *y = b;

	if (x->v != y->v)
		return x->v > y->v ? -1 : 1;
	return x->u < y->u ? -1 : x->u > y->u;
}

/*
 * Give the h states of SCC [lo, lo + m) with the most visits (the first of equals) the
 * aggregates base, base + 1, ... After the correction by first unit most of a lane's error
 * sits on such hubs, in proportion to their visits (90 % of its square norm on 1 % of the
 * states); with a coarse unknown of their own the lanes stop at a tenth of the tolerance in
 * 6 % fewer sweeps (1 M paths, 1000 channels, order 2; 21 % at 200; docs/BENCHMARKS.md).
 */
static void
mk_hubs(struct mk_coarse *g, const double *v, size_t lo, size_t m, size_t h, size_t base)
{
	double key[MK_CG_HUBS > 0 ? MK_CG_HUBS : 1];
	uint32_t id[MK_CG_HUBS > 0 ? MK_CG_HUBS : 1];
	struct mk_heap hp = { key, id, 0 };
	size_t i;

	/* A heap of the h largest so far, smallest on top (keys negated: mk_heap is a max-heap). */
	for (i = 0; i < m && h > 0; i++) {
		if (hp.n < h) {
			mk_heap_push(&hp, -v[lo + i], (uint32_t)i);
		} else if (v[lo + i] > -hp.key[0]) {
			mk_heap_pop(&hp);
			mk_heap_push(&hp, -v[lo + i], (uint32_t)i);
		}
	}
	for (i = 0; i < hp.n; i++)
		g->agg[hp.id[i]] = (uint8_t)(base + i);
}

/*
 * The coarse system of SCC k from the full chain's visits v: an aggregate for each of the
 * MK_CG_AGG − 1 first units with the most visits, one for all the others (on the benchmark's
 * tables 2–64 aggregates save as many sweeps as one per unit, 1000 of them, whose dense
 * solve costs more than a sweep), then one for each hub (mk_hubs): up to MK_CG_HUBS states,
 * one in 16 at most. map (nunits + 1 entries, MK_NONE) and rk (as many) are scratch.
 */
static int
mk_coarse_make(struct mk_coarse *g, const struct mk_chain *c, const double *v, size_t k,
               uint32_t *map, struct mk_rank *rk)
{
	size_t lo = c->sp[k], m = c->sp[k + 1] - lo, top = lo + m - 1, nd = 0, nc, nu, i, e, nb = 0;
	size_t nh = m / 16 < MK_CG_HUBS ? m / 16 : MK_CG_HUBS;
	double *vs = NULL;

	memset(g, 0, sizeof(*g));
	for (i = 0; i < m; i++) {
		uint32_t a = c->first[lo + i];

		if (map[a] == MK_NONE) {
			map[a] = (uint32_t)nd;
			rk[nd].u = a;
			rk[nd++].v = 0;
		}
		rk[map[a]].v += v[lo + i];
	}
	qsort(rk, nd, sizeof(*rk), mk_cmp_rank);
	nu = nd < MK_CG_AGG ? nd : MK_CG_AGG;
	nc = nu >= 2 ? nu + nh : nu;
	for (i = 0; i < nd; i++)
		map[rk[i].u] = (uint32_t)(i < nu ? i : nu - 1);
	for (i = 0; i < m; i++) {
		for (e = c->qp[top - i]; e < c->qp[top - i + 1]; e++)
			nb += c->qcol[e] >= lo && c->qcol[e] < top - i;
	}
	if (nc >= 2) {
		g->agg = malloc(m * sizeof(*g->agg));
		g->w = malloc(m * sizeof(*g->w));
		g->lu = calloc(nc * nc, sizeof(*g->lu));
		g->piv = malloc(nc * sizeof(*g->piv));
		g->gp = nb < UINT32_MAX ? malloc((m + 1) * sizeof(*g->gp)) : NULL;
		g->ga = malloc((nb ? nb : 1) * sizeof(*g->ga));
		g->gw = malloc((nb ? nb : 1) * sizeof(*g->gw));
		vs = calloc(nc, sizeof(*vs));
	}
	if (nc >= 2 && (g->agg == NULL || g->w == NULL || g->lu == NULL || g->piv == NULL ||
	                g->gp == NULL || g->ga == NULL || g->gw == NULL || vs == NULL)) {
		for (i = 0; i < nd; i++)
			map[rk[i].u] = MK_NONE;
		free(vs);
		mk_coarse_free(g);
		return TP_RESOURCE_EXHAUSTED;
	}
	if (nc < 2) {
		for (i = 0; i < nd; i++)
			map[rk[i].u] = MK_NONE;
		return TP_OK;
	}
	for (i = 0; i < m; i++)
		g->agg[i] = (uint8_t)map[c->first[lo + i]];
	mk_hubs(g, v, lo, m, nc - nu, nu);
	for (i = 0; i < m; i++)
		vs[g->agg[i]] += v[lo + i];
	for (i = 0; i < nd; i++)
		map[rk[i].u] = MK_NONE;
	for (i = 0; i < m; i++)
		g->w[i] = vs[g->agg[i]] > 0 ? v[lo + i] / vs[g->agg[i]] : 0;
	for (i = 0; i < nc; i++)
		g->lu[i * nc + i] = 1;
	for (i = 0; i < m; i++) {
		for (e = c->rp[lo + i]; e < c->rp[lo + i + 1]; e++) {
			size_t t = c->col[e];

			if (t >= lo && t <= top)
				g->lu[g->agg[t - lo] * nc + g->agg[i]] -= g->w[i] * c->p[e];
		}
	}
	mk_lu(g->lu, nc, g->piv);
	/*
	 * The flow against the sweep, by the sweep's positions (top − state) of its sources,
	 * summed by the aggregate it goes to: a sweep's residual by aggregate is then one pass
	 * over the states in order rather than a gather over those transitions. At order k a
	 * state's successors all start with its second unit, so this is one entry for most.
	 */
	g->gp[0] = 0;
	for (i = 0, nb = 0; i < m; i++) {
		size_t p = top - i, at = nb;

		for (e = c->rp[p]; e < c->rp[p + 1]; e++) {
			size_t t = c->col[e], x;

			if (t <= p || t > top)
				continue;
			for (x = at; x < nb && g->ga[x] != g->agg[t - lo]; x++)
				;
			if (x == nb) {
				g->ga[nb] = g->agg[t - lo];
				g->gw[nb++] = 0;
			}
			g->gw[x] += c->p[e];
		}
		g->gp[i + 1] = (uint32_t)nb;
	}
	/* Fewer entries than transitions (a ninth on the benchmark's tables): keep only those. */
	if (nb > 0) {
		uint8_t *ga = realloc(g->ga, nb * sizeof(*g->ga));
		double *gw = realloc(g->gw, nb * sizeof(*g->gw));

		g->ga = ga != NULL ? ga : g->ga;
		g->gw = gw != NULL ? gw : g->gw;
	}
	g->scc = k;
	g->lo = lo;
	g->m = m;
	g->nc = nc;
	free(vs);
	return TP_OK;
}

/* The coarse systems of every SCC of at least MK_CG_MIN states. */
static int
mk_coarse_all(struct mk_chain *c, const double *v, uint32_t nunits)
{
	uint32_t *map;
	struct mk_rank *rk;
	size_t k, n = 0;
	int rv = TP_OK;

	for (k = 0; k < c->nscc; k++)
		n += c->sp[k + 1] - c->sp[k] >= MK_CG_MIN;
	if (n == 0)
		return TP_OK;
	c->cg = calloc(n, sizeof(*c->cg));
	map = malloc(((size_t)nunits + 1) * sizeof(*map));
	rk = malloc(((size_t)nunits + 1) * sizeof(*rk));
	if (c->cg == NULL || map == NULL || rk == NULL) {
		free(map);
		free(rk);
		return TP_RESOURCE_EXHAUSTED;
	}
	memset(map, 0xff, ((size_t)nunits + 1) * sizeof(*map));
	for (k = 0; k < c->nscc && rv == TP_OK; k++) {
		if (c->sp[k + 1] - c->sp[k] < MK_CG_MIN)
			continue;
		rv = mk_coarse_make(&c->cg[c->ncg], c, v, k, map, rk);
		if (rv == TP_OK && c->cg[c->ncg].nc > 0)
			c->ncg++;
	}
	free(map);
	free(rk);
	return rv;
}

/*
 * The coarse correction of the lanes of SCC g after a sweep whose update is in d (per
 * position in the sweep, which went from the highest state down): the residual summed by
 * aggregate (left out: the states that hold the lane's unit), the coarse solve, and the
 * prolonged solution added to every lane of every state that does not hold its unit. y is
 * scratch of nc × MK_LANES.
 */
MK_SWEEP_CLONES static void
mk_coarse_fix(struct mk_solver *s, const struct mk_coarse *g, const float *d, double *y)
{
	const struct mk_chain *c = s->c;
	size_t i, e, k, lo = g->lo, top = g->lo + g->m - 1;
	int j;

	memset(y, 0, g->nc * MK_LANES * sizeof(*y));
	/* After a sweep only the flow against it leaves a residual: r_t = Σ Q(p→t)·Δ_p. */
	for (i = 0; i < g->m; i++) {
		const mk_f4 *dp = (const mk_f4 *)(d + i * MK_LANES);

		for (k = g->gp[i]; k < g->gp[i + 1]; k++) {
			mk_v4 *r = (mk_v4 *)(y + (size_t)g->ga[k] * MK_LANES);
			double w = g->gw[k];

			for (j = 0; j < MK_NV; j++)
				r[j] += w * __builtin_convertvector(dp[j], mk_v4);
		}
	}
	/* ... less that of the lane's own states, which are held at v, not solved. */
	for (j = 0; j < s->nu; j++) {
		for (k = c->up[s->u[j]]; k < c->up[s->u[j] + 1]; k++) {
			size_t t = c->ust[k];
			double acc = 0;

			if (t < lo || t > top)
				continue;
			for (e = c->qp[t]; e < c->qp[t + 1]; e++) {
				if (c->qcol[e] >= lo && c->qcol[e] < t)
					acc += c->qpr[e] *
					       d[(top - c->qcol[e]) * MK_LANES + (size_t)j];
			}
			y[(size_t)g->agg[t - lo] * MK_LANES + (size_t)j] -= acc;
		}
	}
	mk_lu_solve(g->lu, g->nc, g->piv, y);
	for (i = 0; i < g->m; i++) {
		size_t t = lo + i;
		double *lv = s->lv + t * MK_LANES, w = g->w[i];
		const double *a = y + (size_t)g->agg[i] * MK_LANES;

		if (s->lane[t] == 0) {
			for (j = 0; j < MK_NV; j++)
				((mk_v4 *)lv)[j] += w * ((const mk_v4 *)a)[j];
			continue;
		}
		for (j = 0; j < MK_LANES; j++) {
			if (!(s->lane[t] >> j & 1))
				lv[j] += w * a[j];
		}
	}
}

/*
 * Over-relaxing the Gauss–Seidel sweeps by MK_OMEGA saves about a third of the sweeps on
 * the big SCCs of path tables, but SOR is not guaranteed to converge on a non-symmetric
 * system: as soon as an update grows instead of shrinking, the group falls back to plain
 * Gauss–Seidel, which always converges on a substochastic chain.
 */
static double
mk_omega(double om, double maxd, double prevd)
{
	return om > 1 && prevd > 0 && maxd > prevd ? 1.0 : om;
}

/*
 * Expected visits of one SCC's states (grp[0..m-1]) in the full chain: v = e_start + Qᵀv.
 * There are no self-loops (identical consecutive states were merged).
 */
static int
mk_full_group(struct mk_solver *s, size_t m)
{
	const struct mk_chain *c = s->c;
	size_t i, j, e, sweep;
	double om = MK_OMEGA, prevd = 0;

	if (m <= MK_DENSE_MAX) {
		for (i = 0; i < m; i++)
			s->loc[s->grp[i]] = (int32_t)i;
		for (i = 0; i < m; i++) {
			uint32_t v = s->grp[i];

			for (j = 0; j < m; j++)
				s->a[i * m + j] = i == j;
			s->b[i] = v == c->start;
			for (e = c->qp[v]; e < c->qp[v + 1]; e++) {
				uint32_t u = c->qcol[e];

				if (s->loc[u] >= 0)
					s->a[i * m + (size_t)s->loc[u]] -= c->qpr[e];
				else
					s->b[i] += c->qpr[e] * s->v[u];
			}
		}
		mk_dense(s->a, s->b, m);
		for (i = 0; i < m; i++) {
			s->v[s->grp[i]] = s->b[i];
			s->loc[s->grp[i]] = -1;
		}
		return TP_OK;
	}
	for (sweep = 0; sweep < MK_MAX_SWEEPS; sweep++) {
		double maxd = 0, maxv = 0;

		for (i = 0; i < m; i++) {
			uint32_t v = s->grp[i];
			double sum = v == c->start, d;

			for (e = c->qp[v]; e < c->qp[v + 1]; e++)
				sum += c->qpr[e] * s->v[c->qcol[e]];
			sum = s->v[v] + om * (sum - s->v[v]);
			d = fabs(sum - s->v[v]);
			s->v[v] = sum;
			maxd = d > maxd ? d : maxd;
			maxv = sum > maxv ? sum : maxv;
		}
		if (maxd <= MK_TOL * maxv)
			return TP_OK;
		om = mk_omega(om, maxd, prevd);
		prevd = maxd;
	}
	return TP_INTERNAL;
}

/*
 * Sweeps of a stationary iteration change x by δ_k = M^k δ_0, and after a few sweeps two
 * or three eigenvectors of M carry nearly all of it. Fitting δ_k + c1·δ_{k−1} + c0·δ_{k−2}
 * ≈ 0 (least squares, per lane) finds the polynomial z² + c1·z + c0 of the two leading
 * modes, and if it fits, the rest of the series Σ_{i>k} δ_i is added at once:
 * S = −(c1·δ_k + c0·(δ_k + δ_{k−1})) / (1 + c1 + c0). The sweeps go on until the updates are
 * below the tolerance as before, so a poor jump only costs sweeps, never accuracy.
 */
struct mk_fit {
	double a11, a12, a22, b1, b2, dd;
};

/* The jump coefficients of one lane, or 0 when the fit is poor or the modes near 1. */
static int
mk_fit_solve(const struct mk_fit *f, double *c1, double *c0)
{
	double det = f->a11 * f->a22 - f->a12 * f->a12, r, p1;

	if (!(f->a11 > 0) || !(f->dd > 0))
		return 0;
	if (det > 1e-12 * f->a11 * f->a22) {
		*c1 = (-f->b1 * f->a22 + f->b2 * f->a12) / det;
		*c0 = (-f->b2 * f->a11 + f->b1 * f->a12) / det;
	} else {
		*c1 = -f->b1 / f->a11;
		*c0 = 0;
	}
	r = f->dd + 2 * *c1 * f->b1 + 2 * *c0 * f->b2 + *c1 * *c1 * f->a11 +
	    2 * *c1 * *c0 * f->a12 + *c0 * *c0 * f->a22;
	p1 = 1 + *c1 + *c0;
	/* Jury's conditions with a margin: both roots well inside the unit circle. */
	return r <= MK_XP_FIT * MK_XP_FIT * f->dd && p1 >= 1 - MK_XP_LAM && 1 - *c1 + *c0 > 0 &&
	       fabs(*c0) < MK_XP_LAM;
}

/* Lane-wise max and |x| (macros: a vector argument would change the non-AVX ABI). */
#define MK_VMAX(a, b) ((mk_v4)((((a) > (b)) & (mk_l4)(a)) | (~((a) > (b)) & (mk_l4)(b))))
#define MK_VABS(a)    ((mk_v4)((mk_l4)(a) & (mk_l4){ INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX }))

/*
 * Ask for the lanes a state's update will read (its predecessors') and write (its own)
 * while the states before it are solved: with MK_LANES lanes the lane array is far larger
 * than the caches, and a predecessor's lanes span several lines that the sweep would
 * otherwise wait for one state at a time.
 */
static inline void
mk_prefetch(const struct mk_solver *s, uint32_t w)
{
	const struct mk_chain *c = s->c;
	size_t e, q;

	for (e = c->qp[w]; e < c->qp[w + 1]; e++) {
		const char *r = (const char *)(s->lv + (size_t)c->qcol[e] * MK_LANES);

		for (q = 0; q < MK_LANES * sizeof(double); q += 64)
			__builtin_prefetch(r + q);
	}
	for (q = 0; q < MK_LANES * sizeof(double); q += 64)
		__builtin_prefetch((const char *)(s->lv + (size_t)w * MK_LANES) + q, 1);
}

/*
 * The same for MK_LANES removals at once, sharing each pass over the graph. Lane j holds
 * δ = v − v₋u, the visits that removing lane j's unit takes away, not v₋u itself: where
 * the removal is rare δ is tiny next to v, and v − v₋u would lose its digits to
 * cancellation. δ_s = v_s where s holds the unit (its incoming traffic goes to null), and
 * elsewhere δ = Qᵀδ. Each lane stops on its own scale: its largest update below
 * MK_LANE_TOL (MK_CG_LANE_TOL with a coarse correction) times its largest δ, so a rare
 * unit is solved to the same relative accuracy as a popular one.
 */
MK_SWEEP_CLONES static int
mk_lane_group(struct mk_solver *s, size_t m)
{
	const struct mk_chain *c = s->c;
	size_t i, e, sweep, L = MK_LANES;
	double om = MK_OMEGA, prevd = 0, c1[MK_LANES], c0[MK_LANES];
	float *cur = s->dl, *d1 = s->dl + m * L, *d2 = s->dl + 2 * m * L, *tmp;
	const struct mk_coarse *cg = s->cg;
	const double tol = cg != NULL ? MK_CG_LANE_TOL : MK_LANE_TOL;
	int j, xp = m > MK_DENSE_MAX && cg == NULL ? MK_XP_MAX : 0, hist = 0, any, ok[MK_LANES];
	struct mk_fit f[MK_LANES];

	/* A state alone (no self-loops): its predecessors are solved, one pass is exact. */
	if (m == 1) {
		uint32_t v = s->grp[0];
		double acc[MK_LANES] = { 0 }, *lv = s->lv + (size_t)v * L;

		for (e = c->qp[v]; e < c->qp[v + 1]; e++) {
			const double *src = s->lv + (size_t)c->qcol[e] * L;
			double p = c->qpr[e];

			for (j = 0; j < MK_LANES; j++)
				acc[j] += p * src[j];
		}
		for (j = 0; j < MK_LANES; j++)
			lv[j] = (s->lane[v] >> j & 1) ? s->v[v] : acc[j];
#ifdef MK_STATS
		atomic_fetch_add(&mk_nwork, 1);
#endif
		return TP_OK;
	}
	/*
	 * Over-relaxation turns modes negative, which the jumps fit worse than they help, and
	 * the coarse correction needs the residual of a plain sweep.
	 */
	if (xp > 0 || cg != NULL)
		om = 1.0;

	for (sweep = 0; sweep < MK_MAX_SWEEPS; sweep++) {
		mk_v4 maxd[MK_NV], maxv[MK_NV], chk4 = { 0, 0, 0, 0 };
		double sum = 0, chk;
		int fit = xp > 0 && hist >= 2, done = 1, keep = xp > 0 || cg != NULL, k;

		memset(maxd, 0, sizeof(maxd));
		memset(maxv, 0, sizeof(maxv));
		memset(f, 0, sizeof(f));
		for (i = 0; i < m; i++) {
			uint32_t v = s->grp[i];
			mk_v4 acc[MK_NV], *lv = (mk_v4 *)(s->lv + (size_t)v * L);
			float *dc = cur + i * L;

			memset(acc, 0, sizeof(acc));
			if (i + MK_PREFETCH < m)
				mk_prefetch(s, s->grp[i + MK_PREFETCH]);
			for (e = c->qp[v]; e < c->qp[v + 1]; e++) {
				const mk_v4 *src = (const mk_v4 *)(s->lv + (size_t)c->qcol[e] * L);
				double p = c->qpr[e];

#pragma GCC unroll 16
				for (k = 0; k < MK_NV; k++)
					acc[k] += p * src[k];
			}
			/* Most states hold none of the batch's units: all lanes at once. */
			if (s->lane[v] == 0 && !fit) {
				for (k = 0; k < MK_NV; k++) {
					mk_v4 nv = lv[k] + om * (acc[k] - lv[k]), d = nv - lv[k];

					if (keep)
						*(mk_f4 *)(dc + 4 * k) =
						    __builtin_convertvector(d, mk_f4);
					lv[k] = nv;
					chk4 += nv; /* NaN or ∞ reaches the sum; max() passes it */
					maxd[k] = MK_VMAX(maxd[k], MK_VABS(d));
					maxv[k] = MK_VMAX(maxv[k], nv);
				}
				continue;
			}
			/* Lane by lane, through doubles (which a vector of them aliases). */
			for (j = 0; j < MK_LANES; j++) {
				double *lj = (double *)lv + j, *mdj = (double *)maxd + j,
				       *mvj = (double *)maxv + j;
				double nv = (s->lane[v] >> j & 1)
				                ? s->v[v]
				                : *lj + om * (((double *)acc)[j] - *lj);
				double d = nv - *lj;

				if (keep)
					dc[j] = (float)d;
				if (fit) {
					double x1 = d1[i * L + (size_t)j],
					       x2 = d2[i * L + (size_t)j];

					f[j].a11 += x1 * x1;
					f[j].a12 += x1 * x2;
					f[j].a22 += x2 * x2;
					f[j].b1 += d * x1;
					f[j].b2 += d * x2;
					f[j].dd += d * d;
				}
				*lj = nv;
				chk4[j % 4] += nv;
				d = fabs(d);
				*mdj = d > *mdj ? d : *mdj;
				*mvj = nv > *mvj ? nv : *mvj;
			}
		}
		chk = chk4[0] + chk4[1] + chk4[2] + chk4[3];
		/*
		 * The coarse correction is not guaranteed to converge: on a reviewer's random
		 * table (a 16-state SCC of the MK_DENSE_MAX=2 test build) one removal grew ×1.15 a
		 * sweep to ∞, then NaN, which came out as a NaN removal effect with TP_OK. So a
		 * sweep that is not finite, or too many of them, starts the group again from 0
		 * without it: plain Gauss–Seidel always converges on a substochastic chain.
		 */
		if (cg != NULL && (!isfinite(chk) || sweep + 1 >= MK_CG_SWEEPS_MAX)) {
			cg = NULL;
			for (i = 0; i < m; i++)
				memset(s->lv + (size_t)s->grp[i] * L, 0, L * sizeof(double));
			prevd = 0;
			continue;
		}
		if (!isfinite(chk))
			return TP_INTERNAL;
		for (j = 0; j < MK_LANES; j++) {
			double md = ((double *)maxd)[j], mv = ((double *)maxv)[j];

			done &= md <= tol * mv;
			sum += mv > 0 ? md / mv : 0;
		}
#ifdef MK_STATS
		atomic_fetch_add(&mk_nwork, m);
		if (m > MK_DENSE_MAX)
			atomic_fetch_add(&mk_nsweep, 1);
#endif
		if (done)
			return TP_OK;
		om = mk_omega(om, sum, prevd);
		prevd = sum;
		if (cg != NULL)
			mk_coarse_fix(s, cg, cur, s->cy);
		if (xp == 0)
			continue;
		hist++;
		any = 0;
		for (j = 0; fit && j < MK_LANES; j++) {
			ok[j] = mk_fit_solve(&f[j], &c1[j], &c0[j]);
			any |= ok[j];
		}
		if (any) {
			for (i = 0; i < m; i++) {
				double *lv = s->lv + (size_t)s->grp[i] * L;

				for (j = 0; j < MK_LANES; j++) {
					double x = cur[i * L + (size_t)j],
					       x1 = d1[i * L + (size_t)j];

					if (ok[j])
						lv[j] -= (c1[j] * x + c0[j] * (x + x1)) /
						         (1 + c1[j] + c0[j]);
				}
			}
			xp--;
			hist = 0;
			prevd = 0; /* the sweep after a jump is not an update that grew */
		}
		tmp = d2;
		d2 = d1;
		d1 = cur;
		cur = tmp;
	}
	return TP_INTERNAL;
}

/* Solve the states flagged in bits, SCC by SCC, sources first; clears the flags. */
static int
mk_solve(struct mk_solver *s, int lanes)
{
	const struct mk_chain *c = s->c;
	size_t w, m = 0;
	int rv;

	s->cg = NULL; /* groups of states, not whole SCCs: no coarse correction */
	for (w = (c->n + 63) / 64; w-- > 0;) {
		uint64_t bits = s->bits[w];

		s->bits[w] = 0;
		while (bits != 0) {
			int hi = 63 - __builtin_clzll(bits);
			uint32_t v = (uint32_t)(w * 64 + (size_t)hi);

			bits &= ~((uint64_t)1 << hi);
			if (m > 0 && c->scc[v] != c->scc[s->grp[0]]) {
				rv = lanes ? mk_lane_group(s, m) : mk_full_group(s, m);
				if (rv != TP_OK)
					return rv;
				m = 0;
			}
			s->grp[m++] = v;
		}
	}
	if (m > 0) {
		rv = lanes ? mk_lane_group(s, m) : mk_full_group(s, m);
		if (rv != TP_OK)
			return rv;
	}
	return TP_OK;
}

/* Solve the SCCs flagged in bits (whole), sinks last; the flags stay for mk_remove. */
static int
mk_solve_sccs(struct mk_solver *s)
{
	const struct mk_chain *c = s->c;
	size_t w, i, lo, m;
	int rv;

	for (w = (c->nscc + 63) / 64; w-- > 0;) {
		uint64_t bits = s->bits[w];

		while (bits != 0) {
			int hi = 63 - __builtin_clzll(bits);
			size_t k = w * 64 + (size_t)hi;

			bits &= ~((uint64_t)1 << hi);
			lo = c->sp[k];
			m = c->sp[k + 1] - lo;
			/* From the highest state down, as the full chain's solve goes. */
			for (i = 0; i < m; i++)
				s->grp[i] = (uint32_t)(lo + m - 1 - i);
			s->cg = NULL;
			for (i = 0; i < c->ncg; i++) {
				if (c->cg[i].scc == k)
					s->cg = &c->cg[i];
			}
			if ((rv = mk_lane_group(s, m)) != TP_OK)
				return rv;
		}
	}
	return TP_OK;
}

/*
 * Remove units u[0..nu-1] (nu <= MK_LANES), one per lane. Only the states holding one of
 * them and their descendants see different visits, so only the SCCs downstream of those
 * states are solved. Leaves in dconv[j] = P(conv) − P₋u(conv) = Σ_s δ_s·r_s and in
 * dval[j] = Σ_s (q_s − q₋u,s)·m_s = Σ_s δ_s·g_s, then zeroes the lanes it used.
 */
static int
mk_remove(struct mk_solver *s, const uint32_t *u, int nu, double *dconv, double *dval)
{
	const struct mk_chain *c = s->c;
	size_t i, e, v, head = 0, tail = 0;
	int j, rv;

	for (j = 0; j < nu; j++) {
		for (i = c->up[u[j]]; i < c->up[u[j] + 1]; i++) {
			uint32_t k = c->scc[c->ust[i]];

			s->lane[c->ust[i]] |= (uint64_t)1 << j;
			if (s->bits[k / 64] >> (k % 64) & 1)
				continue;
			s->bits[k / 64] |= (uint64_t)1 << (k % 64);
			s->list[tail++] = k;
		}
	}
	for (j = 0; j < MK_LANES; j++)
		s->u[j] = j < nu ? u[j] : 0;
	s->nu = nu;
	while (head < tail) {
		uint32_t k = s->list[head++];

		for (e = c->dp[k]; e < c->dp[k + 1]; e++) {
			uint32_t t = c->dcol[e];

			if (s->bits[t / 64] >> (t % 64) & 1)
				continue;
			s->bits[t / 64] |= (uint64_t)1 << (t % 64);
			s->list[tail++] = t;
		}
	}
	rv = mk_solve_sccs(s);
	for (j = 0; j < MK_LANES; j++)
		dconv[j] = dval[j] = 0;
	for (i = 0; i < tail; i++) {
		uint32_t k = s->list[i];

		s->bits[k / 64] &= ~((uint64_t)1 << (k % 64));
		for (v = c->sp[k]; v < c->sp[k + 1]; v++) {
			double *lv = s->lv + v * MK_LANES;

			for (j = 0; j < MK_LANES; j++) {
				dconv[j] += lv[j] * c->r[v];
				dval[j] += lv[j] * c->g[v];
				lv[j] = 0;
			}
			s->lane[v] = 0;
		}
	}
	return rv;
}

/*
 * The removals shared out over threads. Each batch of MK_LANES units is solved on its own
 * from the full solution (mk_remove restores what it changed), so which thread takes which
 * batch does not change a bit of the result: the batches are fixed by the unit order, and
 * the sums over units are made afterwards, in unit order, by the calling thread.
 */
struct mk_pool {
	const uint32_t *units; /* the units that occur, ascending */
	size_t nunits, nbatch;
	size_t maxscc; /* states in the largest SCC: a sweep's update is kept for one */
	size_t maxxp;  /* ... in the largest without a coarse system: its jumps keep three */
	size_t maxnc;  /* aggregates of the largest coarse system */
	double pconv;
	double *re, *vc;            /* per unit; written only by the thread that solves its batch */
	const struct attr_table *t; /* for its cancellation */
	atomic_size_t next;
	atomic_int stop;
};

struct mk_worker {
	struct mk_pool *pool;
	struct mk_solver s;
	pthread_t tid;
	int started, rv;
};

/*
 * A worker's lane array (n states × MK_LANES doubles, a state's lanes from a cache line).
 * A big one is in 2 MiB pages where the kernel gives them (THP in "madvise" mode): the
 * sweep's reads are scattered over tens of MiB, and with 4 KiB pages most miss the TLB as
 * well as the caches (−3 to −5 % at 1 M paths, 1000 channels, order 2). madvise is only
 * advice: if it fails, the pages are small and nothing else changes.
 */
static double *
mk_lanes_alloc(size_t n)
{
	const size_t huge = (size_t)2 << 20;
	size_t sz = (n * MK_LANES * sizeof(double) + 63) / 64 * 64;
	double *lv;

	if (sz < 4 * huge)
		return aligned_alloc(64, sz);
	sz = (sz + huge - 1) / huge * huge;
	lv = aligned_alloc(huge, sz);
	if (lv != NULL)
		(void)madvise(lv, sz, MADV_HUGEPAGE);
	return lv;
}

/* Positions of the sweeps' update history (mk_lane_group's cur, d1, d2). */
static size_t
mk_dl_len(const struct mk_pool *p)
{
	size_t n = p->maxscc > 3 * p->maxxp ? p->maxscc : 3 * p->maxxp;

	return n > 0 ? n : 1;
}

static void
mk_worker_free(struct mk_worker *w)
{
	free(w->s.lv);
	free(w->s.lane);
	free(w->s.bits);
	free(w->s.grp);
	free(w->s.list);
	free(w->s.dl);
	free(w->s.cy);
	memset(&w->s, 0, sizeof(w->s));
}

/* A removal solver over chain c with the full-chain visits v (only read). */
static int
mk_worker_init(struct mk_worker *w, struct mk_pool *pool, const struct mk_chain *c, double *v)
{
	memset(w, 0, sizeof(*w));
	w->pool = pool;
	w->s.c = c;
	w->s.v = v;
	w->s.lv = mk_lanes_alloc(c->n);
	w->s.lane = calloc(c->n, sizeof(*w->s.lane));
	w->s.bits = calloc((c->nscc + 63) / 64 + 1, sizeof(uint64_t));
	w->s.grp = malloc(c->n * sizeof(uint32_t));
	w->s.list = malloc((c->nscc + 1) * sizeof(uint32_t));
	w->s.dl = malloc(mk_dl_len(pool) * MK_LANES * sizeof(float));
	w->s.cy = aligned_alloc(
	    64, ((pool->maxnc ? pool->maxnc : 1) * MK_LANES * sizeof(double) + 63) / 64 * 64);
	if (w->s.lv == NULL || w->s.lane == NULL || w->s.bits == NULL || w->s.grp == NULL ||
	    w->s.list == NULL || w->s.dl == NULL || w->s.cy == NULL) {
		mk_worker_free(w);
		return TP_RESOURCE_EXHAUSTED;
	}
	memset(w->s.lv, 0, c->n * MK_LANES * sizeof(double));
	return TP_OK;
}

static void *
mk_work(void *arg)
{
	struct mk_worker *w = arg;
	struct mk_pool *p = w->pool;
	double dconv[MK_LANES], dval[MK_LANES];
	size_t k;
	int j, nb;

	w->rv = TP_OK;
	while (!atomic_load(&p->stop) && (k = atomic_fetch_add(&p->next, 1)) < p->nbatch) {
		const uint32_t *b = p->units + k * MK_LANES;

		nb = p->nunits - k * MK_LANES < MK_LANES ? (int)(p->nunits - k * MK_LANES)
		                                         : MK_LANES;
		if (p->t->cancelled != NULL && p->t->cancelled(p->t->cancel_arg)) {
			w->rv = TP_CANCELLED;
			atomic_store(&p->stop, 1);
			break;
		}
		if ((w->rv = mk_remove(&w->s, b, nb, dconv, dval)) != TP_OK) {
			atomic_store(&p->stop, 1);
			break;
		}
		for (j = 0; j < nb; j++) {
			double r = dconv[j] / p->pconv;

			p->re[b[j]] = r < 0 ? 0 : r > 1 ? 1 : r;
			p->vc[b[j]] = dval[j] < 0 ? 0 : dval[j];
		}
	}
	return NULL;
}

/* min(online CPUs, 8), or TP_MARKOV_THREADS; one for small chains; never above nbatch. */
static size_t
mk_nthreads(size_t nbatch, size_t nstates)
{
	const char *e = getenv("TP_MARKOV_THREADS");
	char *end;
	long k = -1;

	if (e != NULL && *e != '\0') {
		k = strtol(e, &end, 10);
		if (*end != '\0' || k < 1)
			k = -1;
		else if (k > MK_MAX_THREADS)
			k = MK_MAX_THREADS;
	}
	if (k < 0) {
		k = sysconf(_SC_NPROCESSORS_ONLN);
		k = k < 1 ? 1 : k > 8 ? 8 : k;
		/* Starting threads costs more than a small chain's removals. */
		if (nstates < MK_THREAD_MIN)
			k = 1;
	}
	if ((size_t)k > nbatch)
		k = (long)nbatch;
	return k < 1 ? 1 : (size_t)k;
}

/*
 * Every removal of pool->units. The calling thread is worker 0; a thread that cannot be
 * started or given memory only means fewer workers (worker 0 takes what is left).
 */
static int
mk_remove_all(struct mk_pool *pool, const struct mk_chain *c, double *v)
{
	struct mk_worker *w;
	size_t nt = mk_nthreads(pool->nbatch, c->n), i, got;
	int rv;

	w = calloc(nt, sizeof(*w));
	if (w == NULL)
		return TP_RESOURCE_EXHAUSTED;
	if ((rv = mk_worker_init(&w[0], pool, c, v)) != TP_OK)
		goto fail;
	for (got = 1; got < nt && mk_worker_init(&w[got], pool, c, v) == TP_OK; got++)
		w[got].started = pthread_create(&w[got].tid, NULL, mk_work, &w[got]) == 0;
	mk_work(&w[0]);
	rv = w[0].rv;
	for (i = 1; i < got; i++) {
		if (!w[i].started)
			continue;
		pthread_join(w[i].tid, NULL);
		if (rv == TP_OK)
			rv = w[i].rv;
	}
fail:
	for (i = 0; i < nt; i++)
		mk_worker_free(&w[i]);
	free(w);
	return rv;
}

/*
 * Order 1, few states: every unit is one state s, and a trajectory that meets s does so
 * first with probability f_s = G(start,s)/G(s,s), G = (I − Q)⁻¹, after which it behaves
 * as if started at s. So P − P₋s = f_s·x_s and V_s = f_s·z_s with x = G·r and z = G·g: one
 * Gauss–Jordan inverse (≈ n³ flops) instead of n iterative solves over a dense graph.
 */
static int
mk_order1(const struct mk_chain *c, uint32_t nunits, double *re, double *vc)
{
	size_t n = c->n, w = 2 * n, i, j, k, e;
	double *g = calloc(n * w, sizeof(double)), *x = calloc(n, sizeof(double));
	double *z = calloc(n, sizeof(double)), p;
	uint32_t u;

	if (g == NULL || x == NULL || z == NULL) {
		free(g);
		free(x);
		free(z);
		return TP_RESOURCE_EXHAUSTED;
	}
	for (i = 0; i < n; i++) {
		g[i * w + i] = 1;
		g[i * w + n + i] = 1;
		for (e = c->rp[i]; e < c->rp[i + 1]; e++)
			g[i * w + c->col[e]] -= c->p[e];
	}
	for (k = 0; k < n; k++) {
		double d;

		mk_pivot(g, w, n, k);
		d = g[k * w + k];
		for (j = k; j < w; j++)
			g[k * w + j] /= d;
		for (i = 0; i < n; i++) {
			double f = g[i * w + k];

			if (i == k || f == 0)
				continue;
			for (j = k; j < w; j++)
				g[i * w + j] -= f * g[k * w + j];
		}
	}
	/* G is now the right half. */
	for (i = 0; i < n; i++) {
		for (j = 0; j < n; j++) {
			x[i] += g[i * w + n + j] * c->r[j];
			z[i] += g[i * w + n + j] * c->g[j];
		}
	}
	p = x[c->start];
	for (u = 0; p > 0 && u < nunits; u++) {
		size_t st;
		double f, r;

		if (c->up[u] == c->up[u + 1])
			continue;
		st = c->ust[c->up[u]];
		f = g[c->start * w + n + st] / g[st * w + n + st];
		r = f * x[st] / p;
		re[u] = r < 0 ? 0 : r > 1 ? 1 : r;
		vc[u] = f * z[st] < 0 ? 0 : f * z[st];
	}
	free(g);
	free(x);
	free(z);
	return TP_OK;
}

/* "a > b > c", or "(start)" for the empty state. */
static char *
mk_state_name(const struct attr_table *t, const uint32_t *u, uint32_t len)
{
	char num[16], *out;
	const char *nm[MK_MAXK];
	size_t total = 0, at = 0, l;
	uint32_t i;

	if (len == 0)
		return strdup("(start)");
	for (i = 0; i < len; i++) {
		if (t->unit_names != NULL && t->unit_names[u[i]] != NULL) {
			nm[i] = t->unit_names[u[i]];
		} else {
			nm[i] = NULL;
		}
		if (nm[i] != NULL) {
			total += strlen(nm[i]);
		} else {
			total += (size_t)snprintf(num, sizeof(num), "%u", u[i]);
		}
		total += i > 0 ? 3 : 0;
	}
	out = malloc(total + 1);
	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (i > 0) {
			memcpy(out + at, " > ", 3);
			at += 3;
		}
		if (nm[i] != NULL) {
			l = strlen(nm[i]);
			memcpy(out + at, nm[i], l);
		} else {
			l = (size_t)snprintf(out + at, total + 1 - at, "%u", u[i]);
		}
		at += l;
	}
	out[at] = '\0';
	return out;
}

static int
mk_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
mk_add_tr(struct attr_markov_matrix *mat, const char *from, const char *to, double p)
{
	struct attr_transition *tr = &mat->t[mat->n];

	tr->from = strdup(from);
	tr->to = strdup(to);
	tr->probability = p;
	mat->n++;
	if (tr->from == NULL || tr->to == NULL)
		return TP_RESOURCE_EXHAUSTED;
	return TP_OK;
}

/*
 * The transition matrix: rows in order of first appearance, (start) first; in a row the
 * states by first appearance, then (conversion) and (null). Zero entries are left out.
 */
static int
mk_matrix(const struct attr_table *t, const struct mk_build *b, const size_t *orp,
          const uint32_t *ocol, const double *ow, struct attr_markov_matrix *mat)
{
	char **names = NULL;
	uint64_t *row = NULL;
	size_t n = b->n, i, e, cap, maxrow = 0;
	int rv = TP_RESOURCE_EXHAUSTED;

	cap = b->ne + 2 * n;
	mat->t = calloc(cap ? cap : 1, sizeof(*mat->t));
	names = calloc(n, sizeof(*names));
	if (mat->t == NULL || names == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		names[i] = mk_state_name(t, b->keys + i * MK_MAXK, b->klen[i]);
		if (names[i] == NULL)
			goto fail;
		if (orp[i + 1] - orp[i] > maxrow)
			maxrow = orp[i + 1] - orp[i];
	}
	row = malloc((maxrow ? maxrow : 1) * sizeof(*row));
	if (row == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		double wo = b->wconv[i] + b->wnull[i];
		size_t m = orp[i + 1] - orp[i];

		for (e = orp[i]; e < orp[i + 1]; e++)
			wo += ow[e];
		if (wo <= 0)
			continue;
		/* Sort the row by target, carrying the edge index along in the low bits. */
		for (e = 0; e < m; e++)
			row[e] = (uint64_t)ocol[orp[i] + e] << 32 | (uint32_t)e;
		qsort(row, m, sizeof(*row), mk_cmp_u64);
		for (e = 0; e < m; e++) {
			size_t at = orp[i] + (uint32_t)row[e];

			if ((rv = mk_add_tr(mat, names[i], names[ocol[at]], ow[at] / wo)) != TP_OK)
				goto fail;
		}
		if (b->wconv[i] > 0 &&
		    (rv = mk_add_tr(mat, names[i], "(conversion)", b->wconv[i] / wo)) != TP_OK)
			goto fail;
		if (b->wnull[i] > 0 &&
		    (rv = mk_add_tr(mat, names[i], "(null)", b->wnull[i] / wo)) != TP_OK)
			goto fail;
	}
	rv = TP_OK;
fail:
	if (names != NULL) {
		for (i = 0; i < n; i++)
			free(names[i]);
	}
	free(names);
	free(row);
	if (rv != TP_OK)
		attr_markov_matrix_free(mat);
	return rv;
}

static int
mk_check(const struct attr_table *t, int order, const struct attr_credit *out, char *errbuf,
         size_t errlen)
{
	if (order < 1 || order > MK_MAXK) {
		tp_errf(errbuf, errlen, "order: must be 1..%d, not %d", MK_MAXK, order);
		return TP_INVALID_ARGUMENT;
	}
	if (t == NULL || out == NULL || out->conversions == NULL || out->value == NULL ||
	    (t->npaths > 0 && t->paths == NULL)) {
		tp_errf(errbuf, errlen, "markov: missing table or output");
		return TP_INVALID_ARGUMENT;
	}
	return TP_OK;
}

int
attr_markov(const struct attr_table *t, int order, struct attr_credit *out,
            struct attr_markov_matrix *mat, char *errbuf, size_t errlen)
{
	struct mk_build b, red;
	struct mk_csr g = { 0 };
	struct mk_chain c;
	struct mk_solver s;
	size_t i, j, k, nb = 0, nbe = 0;
	struct mk_pool pool;
	uint32_t *units = NULL, u;
	double *re = NULL, *vc = NULL;
	double tot[2] = { 0, 0 }, pconv = 0, sre = 0, sv = 0;
	int rv;

	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	memset(&s, 0, sizeof(s));
	if (mat != NULL) {
		mat->t = NULL;
		mat->n = 0;
	}
	if ((rv = mk_check(t, order, out, errbuf, errlen)) != TP_OK)
		return rv;
	if ((rv = mk_count(&b, t, order, tot, errbuf, errlen)) != TP_OK)
		goto fail;
	nb = b.n;
	nbe = b.ne;
	if ((rv = mk_csr_make(&g, &b)) != TP_OK)
		goto fail;
	if (mat != NULL && (rv = mk_matrix(t, &b, g.rp, g.col, g.w, mat)) != TP_OK)
		goto fail;
	/* Order 1 has nothing to eliminate: its states hold one unit each. */
	if (order > 1) {
		if ((rv = mk_reduce(&b, &g, &red)) != TP_OK)
			goto fail;
		/* Only the reduced chain is solved: the full one goes first. */
		mk_build_free(&b);
		mk_csr_free(&g);
		b = red;
		if ((rv = mk_csr_make(&g, &b)) != TP_OK)
			goto fail;
	}
	if ((rv = mk_chain_make(&c, &b, &g, t->nunits)) != TP_OK)
		goto fail;
	if (t->cancelled != NULL && t->cancelled(t->cancel_arg)) {
		rv = TP_CANCELLED;
		goto fail_conv;
	}

	rv = TP_RESOURCE_EXHAUSTED;
	s.c = &c;
	s.v = calloc(c.n, sizeof(double));
	s.bits = calloc((c.n + 63) / 64, sizeof(uint64_t));
	s.grp = malloc(c.n * sizeof(uint32_t));
	s.loc = malloc(c.n * sizeof(int32_t));
	s.a = malloc(MK_DENSE_MAX * MK_DENSE_MAX * sizeof(double));
	s.b = malloc(MK_DENSE_MAX * sizeof(double));
	re = calloc((size_t)t->nunits + 1, sizeof(double));
	vc = calloc((size_t)t->nunits + 1, sizeof(double));
	units = malloc(((size_t)t->nunits + 1) * sizeof(uint32_t));
	if (s.v == NULL || s.bits == NULL || s.grp == NULL || s.loc == NULL || s.a == NULL ||
	    s.b == NULL || re == NULL || vc == NULL || units == NULL)
		goto fail;
	memset(s.loc, 0xff, c.n * sizeof(int32_t));

	if (order == 1 && c.n <= MK_INV_MAX) {
		if ((rv = mk_order1(&c, t->nunits, re, vc)) != TP_OK)
			goto fail;
		for (u = 0; u < t->nunits; u++) {
			sre += re[u];
			sv += vc[u];
		}
		goto credit;
	}

	/* The full chain: expected visits of every state from (start). */
	for (i = 0; i < c.n; i++)
		s.bits[i / 64] |= (uint64_t)1 << (i % 64);
	if ((rv = mk_solve(&s, 0)) != TP_OK)
		goto fail_conv;
	for (i = 0; i < c.n; i++)
		pconv += s.v[i] * c.r[i];

	/* RE_u = (P − P₋u)/P; V_u = Σ_s (q_s − q₋u,s)·m_s with q_s·m_s = visits_s·vsum_s/wout_s. */
	memset(&pool, 0, sizeof(pool));
	for (u = 0; u < t->nunits; u++) {
		if (c.up[u] < c.up[u + 1])
			units[pool.nunits++] = u;
	}
	for (i = 0, j = 0; i < c.n; i++) {
		j = i > 0 && c.scc[i] == c.scc[i - 1] ? j + 1 : 1;
		pool.maxscc = j > pool.maxscc ? j : pool.maxscc;
	}
	if ((rv = mk_coarse_all(&c, s.v, t->nunits)) != TP_OK)
		goto fail;
	for (i = 0; i < c.ncg; i++)
		pool.maxnc = c.cg[i].nc > pool.maxnc ? c.cg[i].nc : pool.maxnc;
	for (k = 0, i = 0; k < c.nscc; k++) {
		j = c.sp[k + 1] - c.sp[k];
		while (i < c.ncg && c.cg[i].scc < k)
			i++;
		if (j > MK_DENSE_MAX && (i == c.ncg || c.cg[i].scc != k))
			pool.maxxp = j > pool.maxxp ? j : pool.maxxp;
	}
	pool.units = units;
	pool.nbatch = (pool.nunits + MK_LANES - 1) / MK_LANES;
	pool.pconv = pconv;
	pool.re = re;
	pool.vc = vc;
	pool.t = t;
	atomic_init(&pool.next, 0);
	atomic_init(&pool.stop, 0);
	if (pconv > 0 && pool.nbatch > 0 && (rv = mk_remove_all(&pool, &c, s.v)) != TP_OK)
		goto fail_conv;
	for (u = 0; u < t->nunits; u++) {
		sre += re[u];
		sv += vc[u];
	}
#ifdef MK_STATS
	{
		double fw = 0, bw = 0;
		size_t q, e2;

		for (q = 0; q < c.n; q++) {
			for (e2 = c.qp[q]; e2 < c.qp[q + 1]; e2++) {
				uint32_t pp = c.qcol[e2];

				if (c.scc[pp] != c.scc[q])
					continue;
				if (pp > q)
					fw += s.v[pp] * c.qpr[e2];
				else
					bw += s.v[pp] * c.qpr[e2];
			}
		}
		fprintf(stderr, "markov: in-SCC flow forward %.4g backward %.4g (%.3f)\n", fw, bw,
		        bw / (fw + bw));
	}
	fprintf(stderr,
	        "markov: %zu states, %zu transitions, largest SCC %zu, %zu batches: work %llu, big "
	        "sweeps %llu\n",
	        c.n, c.ne, pool.maxscc, pool.nbatch, (unsigned long long)atomic_load(&mk_nwork),
	        (unsigned long long)atomic_load(&mk_nsweep));
	atomic_store(&mk_nwork, 0);
	atomic_store(&mk_nsweep, 0);
#endif
credit:
	for (u = 0; u < t->nunits; u++) {
		out->conversions[u] = sre > 0 ? re[u] / sre * tot[0] : 0;
		out->value[u] = sv > 0 ? vc[u] / sv * tot[1] : 0;
		if (out->removal_effect != NULL)
			out->removal_effect[u] = re[u];
	}
	rv = TP_OK;
	goto fail;
fail_conv:
	if (rv == TP_INTERNAL)
		tp_errf(errbuf, errlen, "markov: the solver did not converge");
	if (rv == TP_CANCELLED)
		tp_errf(errbuf, errlen, "markov: cancelled");
fail:
	if (rv == TP_RESOURCE_EXHAUSTED)
		tp_errf(errbuf, errlen, "markov: out of memory (%zu states, %zu transitions)",
		        nb > 0 ? nb : b.n, nb > 0 ? nbe : b.ne);
	if (rv != TP_OK && mat != NULL)
		attr_markov_matrix_free(mat);
	mk_build_free(&b);
	mk_chain_free(&c);
	mk_csr_free(&g);
	free(s.v);
	free(s.bits);
	free(s.grp);
	free(s.loc);
	free(s.a);
	free(s.b);
	free(re);
	free(vc);
	free(units);
	return rv;
}

void
attr_markov_matrix_free(struct attr_markov_matrix *mat)
{
	size_t i;

	if (mat == NULL)
		return;
	for (i = 0; i < mat->n; i++) {
		free(mat->t[i].from);
		free(mat->t[i].to);
	}
	free(mat->t);
	mat->t = NULL;
	mat->n = 0;
}
