/*
 * journey: SPEC §3 for one customer — which touches form the path of each conversion, and
 * the non-converting path after the last one. The events arrive already in SPEC §3 order.
 */
#include <stdlib.h>

#include "touchpoint/touchpoint.h"
#include "attribution/internal.h"

/* The lower bound (exclusive) of the window ending at t; INT64_MIN when unlimited. */
static int64_t
window_low(int64_t t, int64_t lookback_s)
{
	int64_t span;

	if (lookback_s <= 0 || lookback_s > INT64_MAX / 1000000)
		return INT64_MIN;
	span = lookback_s * 1000000;
	if (t < INT64_MIN + span)
		return INT64_MIN;
	return t - span;
}

int
attr_journey_check(const struct attr_event *evs, size_t n)
{
	size_t i;

	/* Only the relative order of touches and conversions matters to SPEC §3. */
	for (i = 1; i < n; i++) {
		if (evs[i].ts_us < evs[i - 1].ts_us)
			return TP_INVALID_ARGUMENT;
		if (evs[i].ts_us == evs[i - 1].ts_us && evs[i].kind == ATTR_TOUCH &&
		    evs[i - 1].kind == ATTR_CONVERSION)
			return TP_INVALID_ARGUMENT;
	}
	return TP_OK;
}

/*
 * buf must hold n indexes. Conversions that keep() rejects are ignored entirely: they neither
 * get a path nor end one.
 */
int
attr_journey_walk(const struct attr_event *evs, size_t n, int64_t lookback_s, attr_keep_fn keep,
                  void *keep_arg, size_t *buf, attr_journey_fn fn, void *arg)
{
	size_t seg = 0, i, j, k, last;
	int64_t lo;
	int rv;

	for (i = 0; i < n; i++) {
		if (evs[i].kind != ATTR_CONVERSION)
			continue;
		if (keep != NULL && !keep(keep_arg, &evs[i]))
			continue;
		lo = window_low(evs[i].ts_us, lookback_s);
		for (k = 0, j = seg; j < i; j++)
			if (evs[j].kind == ATTR_TOUCH && evs[j].ts_us > lo)
				buf[k++] = j;
		if ((rv = fn(arg, 1, i, buf, k)) != 0)
			return rv;
		seg = i + 1;
	}
	for (last = n, j = seg; j < n; j++)
		if (evs[j].kind == ATTR_TOUCH)
			last = j;
	if (last == n)
		return TP_OK;
	lo = window_low(evs[last].ts_us, lookback_s);
	for (k = 0, j = seg; j <= last; j++)
		if (evs[j].kind == ATTR_TOUCH && evs[j].ts_us > lo)
			buf[k++] = j;
	return fn(arg, 0, 0, buf, k);
}

int
attr_journey_paths(const struct attr_event *evs, size_t n, int64_t lookback_s, attr_journey_fn fn,
                   void *arg)
{
	size_t *buf;
	int rv;

	if (n == 0)
		return TP_OK;
	if (evs == NULL || fn == NULL || lookback_s < 0)
		return TP_INVALID_ARGUMENT;
	if ((rv = attr_journey_check(evs, n)) != TP_OK)
		return rv;
	if ((buf = malloc(n * sizeof(*buf))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	rv = attr_journey_walk(evs, n, lookback_s, NULL, NULL, buf, fn, arg);
	free(buf);
	return rv;
}
