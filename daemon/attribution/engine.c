/*
 * engine: the streaming side of tpattr — requests in, one customer's journey at a time into
 * the path tables (top level and per segment), spend per unit of credit.
 */
#include <stdlib.h>
#include <string.h>

#include "touchpoint/touchpoint.h"
#include "attribution/internal.h"

#define ATTR_NAME_MAX 512 /* channel (64) + '/' + campaign (128), with room for "#N" names */

int
attr_oom(char *errbuf, size_t errlen)
{
	snprintf(errbuf, errlen, "out of memory");
	return TP_RESOURCE_EXHAUSTED;
}

int
attr_engine_alloc(struct attr_engine **ep)
{
	if ((*ep = calloc(1, sizeof(**ep))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	return TP_OK;
}

int
attr_units_add(struct attr_units *u, const char *name, uint32_t chanlen, uint32_t *id)
{
	if (u->n >= UINT32_MAX - 1)
		return TP_RESOURCE_EXHAUSTED;
	if (u->n == u->cap) {
		uint32_t ncap = u->cap ? u->cap * 2 : 64;
		char **nn = realloc(u->names, ncap * sizeof(*nn));
		uint32_t *nl;

		if (nn == NULL)
			return TP_RESOURCE_EXHAUSTED;
		u->names = nn;
		if ((nl = realloc(u->chanlen, ncap * sizeof(*nl))) == NULL)
			return TP_RESOURCE_EXHAUSTED;
		u->chanlen = nl;
		u->cap = ncap;
	}
	if ((u->names[u->n] = strdup(name)) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	u->chanlen[u->n] = chanlen;
	*id = u->n++;
	return TP_OK;
}

static void
units_free(struct attr_units *u)
{
	uint32_t i;

	for (i = 0; i < u->n; i++)
		free(u->names[i]);
	free(u->names);
	free(u->chanlen);
	attr_map_free(&u->map);
	attr_smap_free(&u->smap);
	memset(u, 0, sizeof(*u));
}

void
attr_scope_free(struct attr_scope *s, size_t nm)
{
	size_t i;

	if (s->acc != NULL)
		for (i = 0; i < nm; i++)
			attr_acc_free(&s->acc[i]);
	free(s->acc);
	free(s->segment);
	attr_ptab_free(&s->pt);
}

void
attr_engine_free(struct attr_engine *e)
{
	size_t i;

	if (e == NULL)
		return;
	attr_scope_free(&e->top, e->nm);
	for (i = 0; i < e->nsegs; i++) {
		attr_scope_free(e->segs[i], e->nm);
		free(e->segs[i]);
	}
	free(e->segs);
	attr_smap_free(&e->segmap);
	for (i = 0; i < e->nm; i++)
		attr_minst_clear(&e->m[i]);
	free(e->m);
	attr_minst_clear(&e->daily);
	free(e->daily_name);
	free(e->by_trait);
	free(e->conversion);
	units_free(&e->units);
	attr_map_free(&e->convok);
	attr_map_free(&e->dailymap);
	free(e->udirect);
	free(e->dly);
	for (i = 0; i < e->nspend; i++)
		free(e->spend[i].currency);
	free(e->spend);
	free(e->tidx);
	free(e->useq);
	free(e->uts);
	free(e->w);
	free(e->porder);
	free(e);
}

static int
parse_window(struct attr_engine *e, const Touchpoint__V1__Window *w, int64_t default_lookback_s,
             char *errbuf, size_t errlen)
{
	e->lookback_s = default_lookback_s;
	if (w == NULL)
		return TP_OK;
	if (w->lookback_case == TOUCHPOINT__V1__WINDOW__LOOKBACK_LOOKBACK_S)
		e->lookback_s = w->lookback_s;
	if (e->lookback_s < 0) {
		snprintf(errbuf, errlen, "window.lookback_s: must be >= 0 (0 = unlimited)");
		return TP_INVALID_ARGUMENT;
	}
	if ((e->has_from = w->from_case == TOUCHPOINT__V1__WINDOW__FROM_FROM_US))
		e->from_us = w->from_us;
	if ((e->has_to = w->to_case == TOUCHPOINT__V1__WINDOW__TO_TO_US))
		e->to_us = w->to_us;
	if (e->has_from && e->has_to && e->from_us > e->to_us) {
		snprintf(errbuf, errlen, "window.to_us: must not be before from_us");
		return TP_INVALID_ARGUMENT;
	}
	switch (w->repeats) {
	case TOUCHPOINT__V1__REPEATS__REPEATS_UNSPECIFIED:
	case TOUCHPOINT__V1__REPEATS__REPEATS_KEEP:
		break;
	case TOUCHPOINT__V1__REPEATS__REPEATS_COLLAPSE:
		e->collapse = 1;
		break;
	default:
		snprintf(errbuf, errlen, "window.repeats: unknown value %d", (int)w->repeats);
		return TP_INVALID_ARGUMENT;
	}
	switch (w->level) {
	case TOUCHPOINT__V1__LEVEL__LEVEL_UNSPECIFIED:
	case TOUCHPOINT__V1__LEVEL__LEVEL_CHANNEL:
		break;
	case TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN:
		e->campaign = 1;
		break;
	default:
		snprintf(errbuf, errlen, "window.level: unknown value %d", (int)w->level);
		return TP_INVALID_ARGUMENT;
	}
	if (w->conversion != NULL && w->conversion[0] != '\0' &&
	    (e->conversion = strdup(w->conversion)) == NULL)
		return attr_oom(errbuf, errlen);
	return TP_OK;
}

static int
new_common(struct attr_engine **ep, const Touchpoint__V1__Window *w, int64_t default_lookback_s,
           attr_names_fn names, void *names_arg, char *errbuf, size_t errlen)
{
	struct attr_engine *e;
	int rv;

	if (errlen > 0)
		errbuf[0] = '\0';
	*ep = NULL;
	if (default_lookback_s < 0) {
		snprintf(errbuf, errlen, "default lookback must be >= 0");
		return TP_INVALID_ARGUMENT;
	}
	if (attr_engine_alloc(&e) != TP_OK)
		return attr_oom(errbuf, errlen);
	e->names = names;
	e->names_arg = names_arg;
	if ((rv = parse_window(e, w, default_lookback_s, errbuf, errlen)) != TP_OK) {
		attr_engine_free(e);
		return rv;
	}
	*ep = e;
	return TP_OK;
}

int
attr_engine_new_paths(struct attr_engine **ep, const Touchpoint__V1__Window *w,
                      int64_t default_lookback_s, attr_names_fn names, void *names_arg,
                      char *errbuf, size_t errlen)
{
	int rv;

	if (ep == NULL)
		return TP_INVALID_ARGUMENT;
	if ((rv = new_common(ep, w, default_lookback_s, names, names_arg, errbuf, errlen)) != TP_OK)
		return rv;
	(*ep)->paths_only = 1;
	return TP_OK;
}

int
attr_engine_make(struct attr_engine **ep, const Touchpoint__V1__AttributeRequest *req,
                 int64_t default_lookback_s, attr_names_fn names, void *names_arg,
                 int no_timestamps, char *errbuf, size_t errlen)
{
	struct attr_engine *e;
	int rv;

	if (ep == NULL || req == NULL)
		return TP_INVALID_ARGUMENT;
	if ((rv = new_common(&e, req->window, default_lookback_s, names, names_arg, errbuf,
	                     errlen)) != TP_OK)
		return rv;
	e->no_timestamps = no_timestamps;
	if ((rv = attr_models_parse(e, req, no_timestamps, errbuf, errlen)) != TP_OK)
		goto fail;
	e->transition_matrix = req->transition_matrix != 0;
	if (req->by_trait != NULL && req->by_trait[0] != '\0') {
		if (no_timestamps) {
			snprintf(errbuf, errlen, "by_trait: a path table has no traits");
			rv = TP_INVALID_ARGUMENT;
			goto fail;
		}
		if ((e->by_trait = strdup(req->by_trait)) == NULL) {
			rv = attr_oom(errbuf, errlen);
			goto fail;
		}
	}
	if ((e->top.acc = calloc(e->nm ? e->nm : 1, sizeof(*e->top.acc))) == NULL) {
		rv = attr_oom(errbuf, errlen);
		goto fail;
	}
	*ep = e;
	return TP_OK;
fail:
	attr_engine_free(e);
	return rv;
}

int
attr_engine_new(struct attr_engine **ep, const Touchpoint__V1__AttributeRequest *req,
                int64_t default_lookback_s, attr_names_fn names, void *names_arg, char *errbuf,
                size_t errlen)
{
	return attr_engine_make(ep, req, default_lookback_s, names, names_arg, 0, errbuf, errlen);
}

static const char *
resolve(struct attr_engine *e, uint32_t id, char *tmp, size_t len)
{
	const char *s = e->names ? e->names(e->names_arg, id) : NULL;

	if (s == NULL) {
		snprintf(tmp, len, "#%u", id);
		s = tmp;
	}
	return s;
}

/* unit_of() for a unit it has no shortcut to: through the map, or new. */
static int
unit_find(struct attr_engine *e, uint64_t key, uint32_t channel, uint32_t campaign, uint32_t *id)
{
	char name[ATTR_NAME_MAX], t1[16], t2[16];
	const char *ch;
	int rv;

	if (!attr_map_get(&e->units.map, key, id)) {
		ch = resolve(e, channel, t1, sizeof(t1));
		if (e->campaign)
			snprintf(name, sizeof(name), "%s/%s", ch,
			         campaign ? resolve(e, campaign, t2, sizeof(t2)) : "(none)");
		else
			snprintf(name, sizeof(name), "%s", ch);
		/*
		 * SPEC §4: the campaign-level unit is the text channel/campaign, so pairs that
		 * print alike ("a/b" + "c", "a" + "b/c"; no campaign and "(none)") are one unit,
		 * as they are when the exported path table is read back.
		 */
		if (!e->campaign || !attr_smap_get(&e->units.smap, name, id)) {
			if ((rv = attr_units_add(&e->units, name,
			                         (uint32_t)strnlen(ch, sizeof(name)), id)) !=
			        TP_OK ||
			    (e->campaign &&
			     (rv = attr_smap_put(&e->units.smap, name, *id)) != TP_OK))
				return rv;
		}
		if ((rv = attr_map_put(&e->units.map, key, *id)) != TP_OK)
			return rv;
	}
	if (!e->campaign && channel < ATTR_UNIT_DIRECT) {
		if (channel >= e->udn) {
			uint32_t n = e->udn ? e->udn : 64, *nd;

			while (n <= channel)
				n *= 2;
			/* without the array the map still answers: only the shortcut is lost */
			if ((nd = realloc(e->udirect, n * sizeof(*nd))) == NULL)
				goto found;
			memset(nd + e->udn, 0, (n - e->udn) * sizeof(*nd));
			e->udirect = nd;
			e->udn = n;
		}
		e->udirect[channel] = *id + 1;
	}
found:
	e->lastkey = key;
	e->lastkey_valid = 1;
	e->lastunit = *id;
	return TP_OK;
}

/*
 * The dense unit id of a touch (channel, campaign). Called for every touch of every path:
 * the shortcuts are inline, the rest (and its kilobyte of name buffers) is not.
 */
static inline int
unit_of(struct attr_engine *e, uint32_t channel, uint32_t campaign, uint32_t *id)
{
	uint64_t key = e->campaign ? ((uint64_t)channel << 32) | campaign : channel;

	if (e->lastkey_valid && e->lastkey == key) {
		*id = e->lastunit;
		return TP_OK;
	}
	if (!e->campaign && channel < e->udn && e->udirect[channel] != 0) {
		*id = e->udirect[channel] - 1;
		e->lastkey = key;
		e->lastkey_valid = 1;
		e->lastunit = *id;
		return TP_OK;
	}
	return unit_find(e, key, channel, campaign, id);
}

static int
keep_conversion(void *arg, const struct attr_event *c)
{
	struct attr_engine *e = arg;
	const char *name;
	char tmp[16];
	uint32_t v;

	if (e->conversion == NULL)
		return 1;
	if (attr_map_get(&e->convok, c->name, &v))
		return (int)v;
	name = c->name == 0 ? "conversion" : resolve(e, c->name, tmp, sizeof(tmp));
	v = strcmp(name, e->conversion) == 0;
	/* the cache is only a shortcut: a failed put costs a lookup next time */
	(void)attr_map_put(&e->convok, c->name, v);
	return (int)v;
}

struct cust {
	struct attr_engine *e;
	const struct attr_event *evs;
	struct attr_scope *seg;
};

static int
scope_path(struct attr_engine *e, struct attr_scope *s, int converting, uint32_t len, int64_t T,
           double value)
{
	int rv;

	if (!converting) {
		s->null_paths++;
		return attr_ptab_queue_add(&s->pt, &s->ptq, e->useq, len, 0, 0, 1);
	}
	s->conversions += 1;
	s->value += value;
	if (len == 0) {
		s->unattributed += 1;
		s->unattributed_value += value;
		return TP_OK;
	}
	s->converting_paths++;
	if ((rv = attr_ptab_queue_add(&s->pt, &s->ptq, e->useq, len, 1, value, 0)) != TP_OK)
		return rv;
	if (!e->paths_only &&
	    (rv = attr_stream_path(e, s, e->useq, e->uts, len, T, value)) != TP_OK)
		return rv;
	return TP_OK;
}

static int
on_path(void *arg, int converting, size_t ci, const size_t *ti, size_t k)
{
	struct cust *c = arg;
	struct attr_engine *e = c->e;
	const struct attr_event *evs = c->evs;
	int64_t t = converting ? evs[ci].ts_us : evs[ti[k - 1]].ts_us;
	double value = converting ? evs[ci].value : 0;
	uint32_t len = 0, u;
	size_t i;
	int rv;

	if ((e->has_from && t < e->from_us) || (e->has_to && t >= e->to_us))
		return TP_OK;
	for (i = 0; i < k; i++) {
		const struct attr_event *ev = &evs[ti[i]];

		if ((rv = unit_of(e, ev->channel, ev->campaign, &u)) != TP_OK)
			return rv;
		if (e->collapse && len > 0 && e->useq[len - 1] == u)
			continue; /* the earliest of a run stands for it */
		e->useq[len] = u;
		e->uts[len] = ev->ts_us;
		len++;
	}
	if ((rv = scope_path(e, &e->top, converting, len, t, value)) != TP_OK)
		return rv;
	if (c->seg != NULL && (rv = scope_path(e, c->seg, converting, len, t, value)) != TP_OK)
		return rv;
	if (converting && len > 0 && e->has_daily &&
	    (rv = attr_daily_path(e, e->useq, e->uts, len, t, value)) != TP_OK)
		return rv;
	return TP_OK;
}

/* The scope of segment name, created (in first-seen order) if new. */
static int
segment_get(struct attr_engine *e, const char *name, struct attr_scope **sp)
{
	struct attr_scope *s;
	uint32_t idx;
	int rv;

	if (attr_smap_get(&e->segmap, name, &idx)) {
		*sp = e->segs[idx];
		return TP_OK;
	}
	if (e->nsegs >= ATTR_MAX_SEGMENTS) {
		/* The request's shape, not the daemon's load: retrying cannot help. */
		snprintf(e->err, sizeof(e->err),
		         "by_trait: more than %d distinct values (segments); choose a trait with "
		         "fewer values or a narrower window",
		         ATTR_MAX_SEGMENTS);
		return TP_INVALID_ARGUMENT;
	}
	if ((e->nsegs & (e->nsegs + 1)) == 0 || e->segs == NULL) {
		struct attr_scope **ns = realloc(e->segs, (e->nsegs * 2 + 2) * sizeof(*ns));

		if (ns == NULL)
			return TP_RESOURCE_EXHAUSTED;
		e->segs = ns;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	if ((s->segment = strdup(name)) == NULL ||
	    (s->acc = calloc(e->nm ? e->nm : 1, sizeof(*s->acc))) == NULL) {
		attr_scope_free(s, 0);
		free(s);
		return TP_RESOURCE_EXHAUSTED;
	}
	e->segs[e->nsegs++] = s; /* owned by e from here on */
	if ((rv = attr_smap_put(&e->segmap, name, (uint32_t)(e->nsegs - 1))) != TP_OK)
		return rv;
	*sp = s;
	return TP_OK;
}

static int
find_segment(struct attr_engine *e, const struct attr_event *evs, size_t n, struct attr_scope **sp)
{
	const char *best = NULL;
	int64_t bts = 0;
	uint64_t bseq = 0;
	size_t i, j;

	for (i = 0; i < n; i++) {
		if (evs[i].kind != ATTR_IDENTIFY)
			continue;
		for (j = 0; j < evs[i].ntraits; j++) {
			const struct attr_trait *t = &evs[i].traits[j];

			if (t->key == NULL || t->value == NULL || strcmp(t->key, e->by_trait) != 0)
				continue;
			if (best == NULL || evs[i].ts_us > bts ||
			    (evs[i].ts_us == bts && evs[i].seq >= bseq)) {
				best = t->value;
				bts = evs[i].ts_us;
				bseq = evs[i].seq;
			}
		}
	}
	return segment_get(e, best != NULL ? best : "(none)", sp);
}

static int
reserve_buffers(struct attr_engine *e, size_t n)
{
	size_t ncap = e->bufcap ? e->bufcap : 64;

	if (n <= e->bufcap)
		return TP_OK;
	while (ncap < n)
		ncap *= 2;
	free(e->tidx);
	free(e->useq);
	free(e->uts);
	free(e->w);
	e->tidx = malloc(ncap * sizeof(*e->tidx));
	e->useq = malloc(ncap * sizeof(*e->useq));
	e->uts = malloc(ncap * sizeof(*e->uts));
	e->w = malloc(ncap * sizeof(*e->w));
	if (e->tidx == NULL || e->useq == NULL || e->uts == NULL || e->w == NULL) {
		e->bufcap = 0;
		return TP_RESOURCE_EXHAUSTED;
	}
	e->bufcap = ncap;
	return TP_OK;
}

int
attr_engine_customer(struct attr_engine *e, const struct attr_event *evs, size_t n)
{
	struct cust c = { e, evs, NULL };
	int rv;

	if (e == NULL || (evs == NULL && n > 0))
		return TP_INVALID_ARGUMENT;
	if (n == 0)
		return TP_OK;
	if ((rv = attr_journey_check(evs, n)) != TP_OK)
		return rv;
	if ((rv = reserve_buffers(e, n)) != TP_OK)
		return rv;
	if (e->by_trait != NULL && (rv = find_segment(e, evs, n, &c.seg)) != TP_OK)
		return rv;
	return attr_journey_walk(evs, n, e->lookback_s, keep_conversion, e, e->tidx, on_path, &c);
}

void
attr_engine_cancel_with(struct attr_engine *e, int (*cancelled)(void *arg), void *arg)
{
	e->cancelled = cancelled;
	e->cancel_arg = arg;
}

const char *
attr_engine_error(const struct attr_engine *e)
{
	return e != NULL ? e->err : "";
}

int
attr_engine_spend(struct attr_engine *e, uint32_t channel, uint32_t campaign, int32_t day,
                  double amount, const char *currency)
{
	const char *cur = currency ? currency : "";
	uint32_t u;
	size_t i;
	int rv;

	(void)day; /* the caller selects the days; spend is reported per unit */
	if (e == NULL || !(amount >= 0))
		return TP_INVALID_ARGUMENT;
	if ((rv = unit_of(e, channel, campaign, &u)) != TP_OK)
		return rv;
	for (i = 0; i < e->nspend; i++)
		if (e->spend[i].unit == u && strcmp(e->spend[i].currency, cur) == 0) {
			e->spend[i].amount += amount;
			return TP_OK;
		}
	if (e->nspend == e->spendcap) {
		size_t ncap = e->spendcap ? e->spendcap * 2 : 16;
		struct attr_spend *ns = realloc(e->spend, ncap * sizeof(*ns));

		if (ns == NULL)
			return TP_RESOURCE_EXHAUSTED;
		e->spend = ns;
		e->spendcap = ncap;
	}
	if ((e->spend[e->nspend].currency = strdup(cur)) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	e->spend[e->nspend].unit = u;
	e->spend[e->nspend].amount = amount;
	e->nspend++;
	return TP_OK;
}

int
attr_engine_settle(struct attr_engine *e)
{
	int rv;

	if ((rv = attr_ptab_queue_flush(&e->top.pt, &e->top.ptq)) != TP_OK)
		return rv;
	for (size_t i = 0; i < e->nsegs; i++)
		if ((rv = attr_ptab_queue_flush(&e->segs[i]->pt, &e->segs[i]->ptq)) != TP_OK)
			return rv;
	return TP_OK;
}

int
attr_engine_result(struct attr_engine *e, Touchpoint__V1__AttributeResponse **out)
{
	int rv;

	if (e == NULL || out == NULL)
		return TP_INVALID_ARGUMENT;
	if (e->paths_only)
		return TP_FAILED_PRECONDITION;
	e->err[0] = '\0';
	if ((rv = attr_engine_settle(e)) != TP_OK)
		return attr_oom(e->err, sizeof(e->err));
	return attr_build_result(e, out, e->err, sizeof(e->err));
}

/* src's unit ids in dst: units new to dst are added in src's (first-seen) order. */
static int
merge_units(struct attr_engine *dst, const struct attr_engine *src, uint32_t *map)
{
	const struct attr_map *sm = &src->units.map;
	uint64_t *key = NULL;
	uint8_t *haskey = NULL;
	uint32_t i, id;
	size_t k;
	int rv = TP_OK;

	if (src->units.n == 0)
		return TP_OK;
	if ((key = calloc(src->units.n, sizeof(*key))) == NULL ||
	    (haskey = calloc(src->units.n, 1)) == NULL) {
		rv = TP_RESOURCE_EXHAUSTED;
		goto fail;
	}
	/* The map is key -> id; the remap needs id -> key. Path-file units have names only. */
	for (k = 0; k < sm->cap; k++)
		if (sm->vals[k] != UINT32_MAX && sm->vals[k] < src->units.n) {
			key[sm->vals[k]] = sm->keys[k];
			haskey[sm->vals[k]] = 1;
		}
	for (i = 0; i < src->units.n; i++) {
		const char *name = src->units.names[i];

		if (haskey[i] ? attr_map_get(&dst->units.map, key[i], &id)
		              : attr_smap_get(&dst->units.smap, name, &id)) {
			map[i] = id;
			continue;
		}
		/* A campaign-level label dst met under another (channel, campaign): see unit_of. */
		if (haskey[i] && dst->campaign && attr_smap_get(&dst->units.smap, name, &id)) {
			if ((rv = attr_map_put(&dst->units.map, key[i], id)) != TP_OK)
				goto fail;
			map[i] = id;
			continue;
		}
		if ((rv = attr_units_add(&dst->units, name, src->units.chanlen[i], &id)) != TP_OK)
			goto fail;
		if (haskey[i])
			rv = attr_map_put(&dst->units.map, key[i], id);
		if (rv == TP_OK && (!haskey[i] || dst->campaign))
			rv = attr_smap_put(&dst->units.smap, name, id);
		if (rv != TP_OK)
			goto fail;
		map[i] = id;
	}
fail:
	free(key);
	free(haskey);
	return rv;
}

static int
merge_scope(const struct attr_engine *dst, struct attr_scope *d, const struct attr_engine *src,
            const struct attr_scope *s, const uint32_t *map, int identity, uint32_t **buf,
            size_t *bufcap)
{
	size_t i, m;
	uint32_t j, n;
	int rv;

	d->conversions += s->conversions;
	d->value += s->value;
	d->unattributed += s->unattributed;
	d->unattributed_value += s->unattributed_value;
	d->converting_paths += s->converting_paths;
	d->null_paths += s->null_paths;
	if (s->pt.n > 0 && (rv = attr_ptab_reserve(&d->pt, s->pt.n, s->pt.alen)) != TP_OK)
		return rv;
	/* In src's order: a path new to dst comes after dst's, as in one pass. */
	for (i = 0; i < s->pt.n; i++) {
		const struct attr_pent *p = &s->pt.e[i];
		const uint32_t *u = attr_ptab_units(&s->pt, i);

		if (identity) {
			/* the same units: the same hash, nothing to rewrite */
			if ((rv = attr_ptab_queue_add_hashed(&d->pt, &d->ptq, p->hash, u, p->len,
			                                     p->conversions, p->value, p->nulls)) !=
			    TP_OK)
				return rv;
			continue;
		}
		if (p->len > *bufcap) {
			uint32_t *nb = realloc(*buf, p->len * sizeof(*nb));

			if (nb == NULL)
				return TP_RESOURCE_EXHAUSTED;
			*buf = nb;
			*bufcap = p->len;
		}
		for (j = 0; j < p->len; j++)
			(*buf)[j] = map[u[j]];
		if ((rv = attr_ptab_queue_add(&d->pt, &d->ptq, *buf, p->len, p->conversions,
		                              p->value, p->nulls)) != TP_OK)
			return rv;
	}
	if ((rv = attr_ptab_queue_flush(&d->pt, &d->ptq)) != TP_OK)
		return rv;
	if (s->acc == NULL || d->acc == NULL)
		return TP_OK;
	for (m = 0; m < src->nm; m++) {
		const struct attr_acc *a = &s->acc[m];

		if (a->cap == 0)
			continue;
		if ((rv = attr_acc_reserve(&d->acc[m], dst->units.n)) != TP_OK)
			return rv;
		n = a->cap < src->units.n ? a->cap : src->units.n;
		for (j = 0; j < n; j++) {
			d->acc[m].conversions[map[j]] += a->conversions[j];
			d->acc[m].value[map[j]] += a->value[j];
		}
	}
	return TP_OK;
}

static int
merge_daily(struct attr_engine *dst, const struct attr_engine *src, const uint32_t *map)
{
	size_t i;
	uint32_t idx;
	int rv;

	for (i = 0; i < src->ndly; i++) {
		const struct attr_daily *s = &src->dly[i];
		uint32_t u = map[s->unit];
		uint64_t key = ((uint64_t)(uint32_t)s->day << 32) | u;

		if (!attr_map_get(&dst->dailymap, key, &idx)) {
			if (dst->ndly == dst->dlycap) {
				size_t ncap = dst->dlycap ? dst->dlycap * 2 : 256;
				struct attr_daily *nd = realloc(dst->dly, ncap * sizeof(*nd));

				if (nd == NULL)
					return TP_RESOURCE_EXHAUSTED;
				dst->dly = nd;
				dst->dlycap = ncap;
			}
			if (dst->ndly >= UINT32_MAX - 1)
				return TP_RESOURCE_EXHAUSTED;
			idx = (uint32_t)dst->ndly++;
			dst->dly[idx].name = NULL;
			dst->dly[idx].day = s->day;
			dst->dly[idx].unit = u;
			dst->dly[idx].conversions = dst->dly[idx].value = 0;
			if ((rv = attr_map_put(&dst->dailymap, key, idx)) != TP_OK)
				return rv;
		}
		dst->dly[idx].conversions += s->conversions;
		dst->dly[idx].value += s->value;
	}
	return TP_OK;
}

static int
merge_spend(struct attr_engine *dst, const struct attr_engine *src, const uint32_t *map)
{
	size_t i, j;

	for (i = 0; i < src->nspend; i++) {
		const struct attr_spend *s = &src->spend[i];
		uint32_t u = map[s->unit];

		for (j = 0; j < dst->nspend; j++)
			if (dst->spend[j].unit == u &&
			    strcmp(dst->spend[j].currency, s->currency) == 0)
				break;
		if (j == dst->nspend) {
			if (dst->nspend == dst->spendcap) {
				size_t ncap = dst->spendcap ? dst->spendcap * 2 : 16;
				struct attr_spend *ns = realloc(dst->spend, ncap * sizeof(*ns));

				if (ns == NULL)
					return TP_RESOURCE_EXHAUSTED;
				dst->spend = ns;
				dst->spendcap = ncap;
			}
			if ((dst->spend[j].currency = strdup(s->currency)) == NULL)
				return TP_RESOURCE_EXHAUSTED;
			dst->spend[j].name = NULL;
			dst->spend[j].unit = u;
			dst->spend[j].amount = 0;
			dst->nspend++;
		}
		dst->spend[j].amount += s->amount;
	}
	return TP_OK;
}

int
attr_engine_merge(struct attr_engine *dst, struct attr_engine *src)
{
	uint32_t *map = NULL, *buf = NULL, u;
	size_t bufcap = 0, i;
	struct attr_scope *seg;
	int identity, rv;

	if (dst == NULL || src == NULL || dst == src || dst->paths_only != src->paths_only ||
	    dst->nm != src->nm || dst->has_daily != src->has_daily ||
	    (dst->by_trait == NULL) != (src->by_trait == NULL) ||
	    dst->lookback_s != src->lookback_s || dst->collapse != src->collapse ||
	    dst->campaign != src->campaign)
		return TP_INVALID_ARGUMENT;
	if ((rv = attr_engine_settle(dst)) != TP_OK || (rv = attr_engine_settle(src)) != TP_OK)
		return rv;
	if (src->units.n > 0 && (map = malloc(src->units.n * sizeof(*map))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	if ((rv = merge_units(dst, src, map)) != TP_OK)
		goto fail;
	for (u = 0; u < src->units.n && map[u] == u; u++)
		;
	identity = u == src->units.n;
	if ((rv = merge_scope(dst, &dst->top, src, &src->top, map, identity, &buf, &bufcap)) !=
	    TP_OK)
		goto fail;
	for (i = 0; i < src->nsegs; i++)
		if ((rv = segment_get(dst, src->segs[i]->segment, &seg)) != TP_OK ||
		    (rv = merge_scope(dst, seg, src, src->segs[i], map, identity, &buf, &bufcap)) !=
		        TP_OK)
			goto fail;
	if ((rv = merge_daily(dst, src, map)) != TP_OK ||
	    (rv = merge_spend(dst, src, map)) != TP_OK)
		goto fail;
fail:
	free(map);
	free(buf);
	return rv;
}
