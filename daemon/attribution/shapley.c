/*
 * shapley: shapley_rate (SPEC §4), the counterfactual Shapley value over conversion rates.
 * Paths aggregate by channel set; each converting set's split is computed once — exactly
 * through subset sums up to ATTR_EXACT_SHAPLEY channels, from sampled permutations beyond.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "touchpoint/touchpoint.h"
#include "attribution/internal.h"

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorts and dedupes u in place; returns the new length. */
static uint32_t
to_set(uint32_t *u, uint32_t len)
{
	uint32_t i, n = 0;

	if (len > 32) {
		qsort(u, len, sizeof(*u), cmp_u32);
	} else {
		/* paths are short: an insertion sort beats qsort's calls through a pointer */
		for (i = 1; i < len; i++) {
			uint32_t x = u[i], j = i;

			for (; j > 0 && u[j - 1] > x; j--)
				u[j] = u[j - 1];
			u[j] = x;
		}
	}
	for (i = 0; i < len; i++)
		if (n == 0 || u[n - 1] != u[i])
			u[n++] = u[i];
	return n;
}

/* A channel set of units below 64 as a bit mask, with its paths' sums (sets_by_mask). */
struct mset {
	uint64_t mask;
	double conversions, value, nulls;
};

/*
 * The table of channel sets when every unit is below 64: a path's set is the OR of its
 * units' bits, summed (attr_map: mask -> its place) in the paths' order, then added to sets
 * in the order first seen, its units ascending. That is the table the general way builds,
 * sum for sum in the same order, without sorting and hashing every path's units (1.2 M
 * distinct paths at 50 M events: ≈ 60 % of this model's time).
 */
static int
sets_by_mask(const struct attr_table *t, struct attr_ptab *sets, uint32_t *buf)
{
	struct attr_map at = { 0 };
	struct mset *e = NULL;
	size_t n = 0, ecap = 0, i, j;
	uint32_t x;
	int rv = TP_RESOURCE_EXHAUSTED;

	for (i = 0; i < t->npaths; i++) {
		const struct attr_path *p = &t->paths[i];
		uint64_t m = 0;

		for (j = 0; j < p->len; j++) {
			if (p->units[j] >= 64) {
				rv = TP_INTERNAL; /* the table's nunits is wrong */
				goto fail;
			}
			m |= (uint64_t)1 << p->units[j];
		}
		if (!attr_map_get(&at, m, &x)) {
			if (n == ecap) {
				struct mset *ne = realloc(e, (ecap ? ecap * 2 : 256) * sizeof(*e));

				if (ne == NULL)
					goto fail;
				e = ne;
				ecap = ecap ? ecap * 2 : 256;
			}
			e[n] = (struct mset){ m, 0, 0, 0 };
			x = (uint32_t)n++;
			if (attr_map_put(&at, m, x) != TP_OK)
				goto fail;
		}
		e[x].conversions += p->conversions;
		e[x].value += p->value;
		e[x].nulls += p->nulls;
	}
	for (i = 0; i < n; i++) {
		uint32_t len = 0, u;

		for (u = 0; u < 64; u++)
			if (e[i].mask >> u & 1)
				buf[len++] = u;
		if ((rv = attr_ptab_add(sets, buf, len, e[i].conversions, e[i].value,
		                        e[i].nulls)) != TP_OK)
			goto fail;
	}
	rv = TP_OK;
fail:
	free(e);
	attr_map_free(&at);
	return rv;
}

/* Whether sorted e[0..m) is a subset of sorted d[0..k); pos receives the positions in d. */
static int
subset_of(const uint32_t *e, uint32_t m, const uint32_t *d, uint32_t k, uint32_t *pos)
{
	uint32_t i = 0, j = 0;

	if (m > k)
		return 0;
	while (i < m && j < k) {
		if (e[i] == d[j])
			pos[i++] = j++;
		else if (e[i] > d[j])
			j++;
		else
			return 0;
	}
	return i == m;
}

struct work {
	double *c, *n; /* exact: per subset mask */
	uint32_t *sub; /* one subset's units */
	uint32_t *pos; /* positions of a set's units inside the converting set */
	double *phi, *bc, *bn;
	uint32_t *perm, *rank;
	uint32_t *rel;    /* sampled: relevant set indexes */
	uint32_t *relpos; /* and their positions, flattened */
	size_t relcap, relposcap;
};

static void
exact(const struct attr_ptab *sets, const uint32_t *d, uint32_t k, struct work *w)
{
	uint32_t full = 1u << k, mask, b, j, i;
	double wt[ATTR_EXACT_SHAPLEY + 1];

	memset(w->c, 0, full * sizeof(double));
	memset(w->n, 0, full * sizeof(double));
	if ((size_t)full <= sets->n) {
		/* fewer subsets than sets: look each subset up */
		for (mask = 1; mask < full; mask++) {
			uint32_t m = 0;
			long x;

			for (b = 0; b < k; b++)
				if (mask & (1u << b))
					w->sub[m++] = d[b];
			if ((x = attr_ptab_find(sets, w->sub, m)) >= 0) {
				w->c[mask] = sets->e[x].conversions;
				w->n[mask] = sets->e[x].conversions + sets->e[x].nulls;
			}
		}
	} else {
		for (i = 0; i < sets->n; i++) {
			const struct attr_pent *p = &sets->e[i];

			if (!subset_of(attr_ptab_units(sets, i), p->len, d, k, w->pos))
				continue;
			for (mask = 0, j = 0; j < p->len; j++)
				mask |= 1u << w->pos[j];
			w->c[mask] = p->conversions;
			w->n[mask] = p->conversions + p->nulls;
		}
	}
	/* subset sums: c[S] = conversions of every set inside S */
	for (b = 0; b < k; b++)
		for (mask = 0; mask < full; mask++)
			if (mask & (1u << b)) {
				w->c[mask] += w->c[mask ^ (1u << b)];
				w->n[mask] += w->n[mask ^ (1u << b)];
			}
	for (mask = 0; mask < full; mask++)
		w->c[mask] = mask != 0 && w->n[mask] > 0 ? w->c[mask] / w->n[mask] : 0;
	/* |S|!(k-|S|-1)!/k! = 1 / (k * C(k-1, |S|)) */
	for (b = 0; b < k; b++) {
		double cmb = 1;

		for (j = 0; j < b; j++)
			cmb = cmb * (k - 1 - j) / (j + 1);
		wt[b] = 1.0 / (k * cmb);
	}
	for (j = 0; j < k; j++) {
		double phi = 0;

		for (mask = 0; mask < full; mask++)
			if (!(mask & (1u << j)))
				phi += wt[__builtin_popcount(mask)] *
				       (w->c[mask | (1u << j)] - w->c[mask]);
		w->phi[j] = phi;
	}
}

static uint64_t
rng_next(uint64_t *s)
{
	/* xorshift64*: a fixed seed makes the estimate reproducible */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static int
sampled(const struct attr_ptab *sets, const uint32_t *d, uint32_t k, struct work *w)
{
	size_t nrel = 0, npos = 0, i, r;
	uint64_t seed = attr_hash_units(d, k) | 1;
	uint32_t j, t;

	for (i = 0; i < sets->n; i++) {
		const struct attr_pent *p = &sets->e[i];

		if (nrel == w->relcap) {
			size_t ncap = w->relcap ? w->relcap * 2 : 256;
			uint32_t *nr = realloc(w->rel, ncap * sizeof(*nr));

			if (nr == NULL)
				return TP_RESOURCE_EXHAUSTED;
			w->rel = nr;
			w->relcap = ncap;
		}
		if (npos + p->len > w->relposcap) {
			size_t ncap = w->relposcap ? w->relposcap * 2 : 1024;
			uint32_t *np;

			while (ncap < npos + p->len)
				ncap *= 2;
			if ((np = realloc(w->relpos, ncap * sizeof(*np))) == NULL)
				return TP_RESOURCE_EXHAUSTED;
			w->relpos = np;
			w->relposcap = ncap;
		}
		if (!subset_of(attr_ptab_units(sets, i), p->len, d, k, w->relpos + npos))
			continue;
		w->rel[nrel++] = (uint32_t)i;
		npos += p->len;
	}
	for (j = 0; j < k; j++)
		w->phi[j] = 0;
	for (r = 0; r < ATTR_SHAPLEY_SAMPLE; r++) {
		double cc = 0, cn = 0, prev = 0;
		size_t off = 0;

		for (j = 0; j < k; j++)
			w->perm[j] = j;
		for (j = k - 1; j > 0; j--) {
			uint32_t x = (uint32_t)(rng_next(&seed) % (j + 1)), tmp = w->perm[j];

			w->perm[j] = w->perm[x];
			w->perm[x] = tmp;
		}
		for (j = 0; j < k; j++) {
			w->rank[w->perm[j]] = j;
			w->bc[j] = w->bn[j] = 0;
		}
		/* a set joins the coalition when its last member does */
		for (i = 0; i < nrel; i++) {
			const struct attr_pent *p = &sets->e[w->rel[i]];
			uint32_t step = 0;

			for (j = 0; j < p->len; j++)
				if (w->rank[w->relpos[off + j]] > step)
					step = w->rank[w->relpos[off + j]];
			off += p->len;
			w->bc[step] += p->conversions;
			w->bn[step] += p->conversions + p->nulls;
		}
		for (t = 0; t < k; t++) {
			double p;

			cc += w->bc[t];
			cn += w->bn[t];
			p = cn > 0 ? cc / cn : 0;
			w->phi[w->perm[t]] += p - prev;
			prev = p;
		}
	}
	for (j = 0; j < k; j++)
		w->phi[j] /= ATTR_SHAPLEY_SAMPLE;
	return TP_OK;
}

int
attr_shapley_rate(const struct attr_table *t, struct attr_credit *out, size_t *nestimated,
                  char *errbuf, size_t errlen)
{
	struct attr_ptab sets = { 0 };
	struct work w = { 0 };
	uint32_t *buf = NULL, maxlen = 0, kexact;
	size_t i;
	int rv = TP_RESOURCE_EXHAUSTED;

	*nestimated = 0;
	for (i = 0; i < t->npaths; i++)
		if (t->paths[i].len > maxlen)
			maxlen = t->paths[i].len;
	if (maxlen == 0)
		return TP_OK;
	if ((buf = malloc(maxlen * sizeof(*buf))) == NULL)
		goto fail;
	if (t->nunits <= 64 && (rv = sets_by_mask(t, &sets, buf)) != TP_OK)
		goto fail;
	for (i = 0; i < t->npaths && t->nunits > 64; i++) {
		const struct attr_path *p = &t->paths[i];
		uint32_t k;

		memcpy(buf, p->units, p->len * sizeof(*buf));
		k = to_set(buf, p->len);
		if ((rv = attr_ptab_add(&sets, buf, k, p->conversions, p->value, p->nulls)) !=
		    TP_OK)
			goto fail;
	}
	rv = TP_RESOURCE_EXHAUSTED;
	kexact = maxlen < ATTR_EXACT_SHAPLEY ? maxlen : ATTR_EXACT_SHAPLEY;
	w.c = malloc(((size_t)1 << kexact) * sizeof(double));
	w.n = malloc(((size_t)1 << kexact) * sizeof(double));
	w.sub = malloc(maxlen * sizeof(uint32_t));
	w.pos = malloc(maxlen * sizeof(uint32_t));
	w.phi = malloc(maxlen * sizeof(double));
	w.bc = malloc(maxlen * sizeof(double));
	w.bn = malloc(maxlen * sizeof(double));
	w.perm = malloc(maxlen * sizeof(uint32_t));
	w.rank = malloc(maxlen * sizeof(uint32_t));
	if (!w.c || !w.n || !w.sub || !w.pos || !w.phi || !w.bc || !w.bn || !w.perm || !w.rank)
		goto fail;
	for (i = 0; i < sets.n; i++) {
		const struct attr_pent *p = &sets.e[i];
		const uint32_t *d = attr_ptab_units(&sets, i);
		double pos = 0;
		uint32_t j;

		/* A path file's row may carry value without conversions: it is shared too. */
		if (p->conversions <= 0 && !(p->value > 0))
			continue;
		if ((i & 63) == 0 && t->cancelled != NULL && t->cancelled(t->cancel_arg)) {
			rv = TP_CANCELLED;
			snprintf(errbuf, errlen, "shapley_rate: cancelled");
			goto fail;
		}
		if (p->len <= ATTR_EXACT_SHAPLEY) {
			exact(&sets, d, p->len, &w);
		} else {
			if ((rv = sampled(&sets, d, p->len, &w)) != TP_OK)
				goto fail;
			rv = TP_RESOURCE_EXHAUSTED;
			(*nestimated)++;
		}
		for (j = 0; j < p->len; j++)
			if (w.phi[j] > 0)
				pos += w.phi[j];
		for (j = 0; j < p->len; j++) {
			/* negative phi count as 0; all zero: an equal split */
			double s = pos > 0 ? (w.phi[j] > 0 ? w.phi[j] / pos : 0) : 1.0 / p->len;

			out->conversions[d[j]] += p->conversions * s;
			out->value[d[j]] += p->value * s;
		}
	}
	rv = TP_OK;
fail:
	if (rv != TP_OK && rv != TP_CANCELLED)
		snprintf(errbuf, errlen, "shapley_rate: out of memory");
	attr_ptab_free(&sets);
	free(buf);
	free(w.c);
	free(w.n);
	free(w.sub);
	free(w.pos);
	free(w.phi);
	free(w.bc);
	free(w.bn);
	free(w.perm);
	free(w.rank);
	free(w.rel);
	free(w.relpos);
	return rv;
}
