/*
 * timedecay: credits that need each touch's time (time_decay, and the daily credits of
 * daily_model), accumulated per path instance while journeys stream past.
 */
#include <stdlib.h>
#include <string.h>

#include "touchpoint/touchpoint.h"
#include "attribution/internal.h"

int
attr_acc_reserve(struct attr_acc *a, uint32_t nunits)
{
	uint32_t ncap = a->cap ? a->cap : 64;
	double *c, *v;

	if (nunits <= a->cap)
		return TP_OK;
	while (ncap < nunits)
		ncap *= 2;
	if ((c = realloc(a->conversions, ncap * sizeof(*c))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	a->conversions = c;
	if ((v = realloc(a->value, ncap * sizeof(*v))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	a->value = v;
	memset(c + a->cap, 0, (ncap - a->cap) * sizeof(*c));
	memset(v + a->cap, 0, (ncap - a->cap) * sizeof(*v));
	a->cap = ncap;
	return TP_OK;
}

void
attr_acc_free(struct attr_acc *a)
{
	free(a->conversions);
	free(a->value);
	memset(a, 0, sizeof(*a));
}

int
attr_stream_path(struct attr_engine *e, struct attr_scope *s, const uint32_t *u, const int64_t *ts,
                 uint32_t len, int64_t T, double value)
{
	size_t i;
	uint32_t j;
	int rv;

	for (i = 0; i < e->nm; i++) {
		struct attr_acc *a = &s->acc[i];

		if (e->m[i].d->kind != ATTR_MK_TIMEDECAY)
			continue;
		if ((rv = attr_acc_reserve(a, e->units.n)) != TP_OK)
			return rv;
		e->m[i].d->weights(&e->m[i], u, len, ts, T, e->w);
		for (j = 0; j < len; j++) {
			a->conversions[u[j]] += e->w[j];
			a->value[u[j]] += e->w[j] * value;
		}
	}
	return TP_OK;
}

int
attr_daily_path(struct attr_engine *e, const uint32_t *u, const int64_t *ts, uint32_t len,
                int64_t T, double value)
{
	/* floor division: days before 1970 stay on their own day */
	int64_t day = T >= 0 ? T / 86400000000LL : -((-T + 86400000000LL - 1) / 86400000000LL);
	uint32_t j, idx;
	int rv;

	if ((rv = attr_minst_sync(&e->daily, &e->units)) != TP_OK)
		return rv;
	e->daily.d->weights(&e->daily, u, len, ts, T, e->w);
	for (j = 0; j < len; j++) {
		uint64_t key = ((uint64_t)(uint32_t)(int32_t)day << 32) | u[j];

		if (e->w[j] == 0)
			continue;
		if (!attr_map_get(&e->dailymap, key, &idx)) {
			if (e->ndly == e->dlycap) {
				size_t ncap = e->dlycap ? e->dlycap * 2 : 256;
				struct attr_daily *nd = realloc(e->dly, ncap * sizeof(*nd));

				if (nd == NULL)
					return TP_RESOURCE_EXHAUSTED;
				e->dly = nd;
				e->dlycap = ncap;
			}
			if (e->ndly >= UINT32_MAX - 1)
				return TP_RESOURCE_EXHAUSTED;
			idx = (uint32_t)e->ndly++;
			e->dly[idx].day = (int32_t)day;
			e->dly[idx].unit = u[j];
			e->dly[idx].conversions = e->dly[idx].value = 0;
			if ((rv = attr_map_put(&e->dailymap, key, idx)) != TP_OK)
				return rv;
		}
		e->dly[idx].conversions += e->w[j];
		e->dly[idx].value += e->w[j] * value;
	}
	return TP_OK;
}
