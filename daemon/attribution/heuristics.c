/*
 * heuristics: the rule-based models of SPEC §4 as weights over a path's positions, so one
 * loop credits them over the path table (and per instance, for daily credits).
 */
#include <math.h>
#include <string.h>

#include "attribution/internal.h"

void
attr_w_first(const struct attr_minst *m, const uint32_t *u, uint32_t len, const int64_t *ts,
             int64_t T, double *w)
{
	(void)m, (void)u, (void)ts, (void)T;
	memset(w, 0, len * sizeof(*w));
	w[0] = 1;
}

void
attr_w_last(const struct attr_minst *m, const uint32_t *u, uint32_t len, const int64_t *ts,
            int64_t T, double *w)
{
	(void)m, (void)u, (void)ts, (void)T;
	memset(w, 0, len * sizeof(*w));
	w[len - 1] = 1;
}

void
attr_w_last_non_direct(const struct attr_minst *m, const uint32_t *u, uint32_t len,
                       const int64_t *ts, int64_t T, double *w)
{
	uint32_t i = len;

	(void)ts, (void)T;
	memset(w, 0, len * sizeof(*w));
	while (i > 0 && u[i - 1] < m->nflags && m->isdirect[u[i - 1]])
		i--;
	/* every touch direct: the last touch after all */
	w[i > 0 ? i - 1 : len - 1] = 1;
}

void
attr_w_linear(const struct attr_minst *m, const uint32_t *u, uint32_t len, const int64_t *ts,
              int64_t T, double *w)
{
	uint32_t i;

	(void)m, (void)u, (void)ts, (void)T;
	for (i = 0; i < len; i++)
		w[i] = 1.0 / len;
}

void
attr_w_position(const struct attr_minst *m, const uint32_t *u, uint32_t len, const int64_t *ts,
                int64_t T, double *w)
{
	double f = m->first_weight, l = m->last_weight;
	uint32_t i;

	(void)u, (void)ts, (void)T;
	if (len == 1) {
		w[0] = 1;
		return;
	}
	if (len == 2) {
		/* f = l = 0 leaves nothing to scale: split evenly (documented in models.md) */
		w[0] = f + l > 0 ? f / (f + l) : 0.5;
		w[1] = f + l > 0 ? l / (f + l) : 0.5;
		return;
	}
	w[0] = f;
	w[len - 1] = l;
	for (i = 1; i + 1 < len; i++)
		w[i] = (1.0 - f - l) / (len - 2);
}

/* Marks the first occurrence of each distinct unit with 1; returns how many there are. */
static uint32_t
mark_distinct(const uint32_t *u, uint32_t len, double *w)
{
	uint32_t i, j, d = 0;

	/* paths are short and distinct channels few: quadratic beats hashing here */
	for (i = 0; i < len; i++) {
		w[i] = 1;
		for (j = 0; j < i; j++)
			if (u[j] == u[i]) {
				w[i] = 0;
				break;
			}
		d += w[i] != 0;
	}
	return d;
}

void
attr_w_participation(const struct attr_minst *m, const uint32_t *u, uint32_t len, const int64_t *ts,
                     int64_t T, double *w)
{
	(void)m, (void)ts, (void)T;
	mark_distinct(u, len, w);
}

void
attr_w_shapley(const struct attr_minst *m, const uint32_t *u, uint32_t len, const int64_t *ts,
               int64_t T, double *w)
{
	uint32_t i, d;

	(void)m, (void)ts, (void)T;
	/* v(S) is additive over paths, so each path's Shapley value is its equal split */
	d = mark_distinct(u, len, w);
	for (i = 0; i < len; i++)
		w[i] /= d;
}

void
attr_w_time_decay(const struct attr_minst *m, const uint32_t *u, uint32_t len, const int64_t *ts,
                  int64_t T, double *w)
{
	double sum = 0;
	int64_t tmax = ts[0];
	uint32_t i;

	(void)u, (void)T;
	/*
	 * 2^(-(T - t_i)/h) normalised equals 2^(-(tmax - t_i)/h) normalised: measuring from
	 * the latest touch keeps that weight at 1, so old paths cannot underflow to 0/0.
	 */
	for (i = 1; i < len; i++)
		if (ts[i] > tmax)
			tmax = ts[i];
	for (i = 0; i < len; i++) {
		w[i] = exp2(-((double)(tmax - ts[i]) / 1e6) / m->half_life_s);
		sum += w[i];
	}
	for (i = 0; i < len; i++)
		w[i] /= sum;
}
