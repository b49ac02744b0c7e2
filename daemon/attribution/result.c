/*
 * result: runs the requested models over a scope's path table and builds the
 * AttributeResponse and PathsResponse messages (plain malloc, freed by protobuf-c).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "touchpoint/touchpoint.h"
#include "attribution/internal.h"

#define NEW(T, init, p)                                                                            \
	do {                                                                                       \
		if (((p) = malloc(sizeof(T))) == NULL)                                             \
			return TP_RESOURCE_EXHAUSTED;                                              \
		init(p);                                                                           \
	} while (0)

static int
setstr(char **dst, const char *s)
{
	char *c = strdup(s);

	if (c == NULL)
		return TP_RESOURCE_EXHAUSTED;
	*dst = c;
	return TP_OK;
}

static int
totals_of(const struct attr_scope *s, Touchpoint__V1__Totals **out)
{
	Touchpoint__V1__Totals *t;

	NEW(Touchpoint__V1__Totals, touchpoint__v1__totals__init, t);
	t->conversions = s->conversions;
	t->value = s->value;
	t->converting_paths = s->converting_paths;
	t->null_paths = s->null_paths;
	t->unattributed_conversions = s->unattributed;
	t->unattributed_value = s->unattributed_value;
	*out = t;
	return TP_OK;
}

struct crow {
	double conversions;
	const char *name;
	uint32_t unit;
};

static int
cmp_crow(const void *a, const void *b)
{
	const struct crow *x = a, *y = b;

	if (x->conversions != y->conversions)
		return x->conversions > y->conversions ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* What one scope's models share: the table view and scratch arrays. */
struct run {
	struct attr_engine *e;
	struct attr_scope *s;
	struct attr_table table;
	struct attr_path *paths;
	uint8_t *present;
	uint32_t npresent, maxlen;
	double attributed, attributed_value;
	double *conv, *val, *re, *w;
	struct crow *rows;
	int top;
};

static int
model_result(struct run *ru, size_t mi, Touchpoint__V1__ModelResult **out, char *errbuf,
             size_t errlen)
{
	struct attr_engine *e = ru->e;
	struct attr_minst *m = &e->m[mi];
	uint32_t nunits = e->units.n, u, j;
	struct attr_credit cr = { ru->conv, ru->val, NULL };
	struct attr_markov_matrix mat = { NULL, 0 };
	Touchpoint__V1__ModelResult *mr;
	size_t i, nest = 0;
	int rv;

	NEW(Touchpoint__V1__ModelResult, touchpoint__v1__model_result__init, mr);
	*out = mr;
	if ((rv = setstr(&mr->model, m->d->name)) != TP_OK)
		return rv;
	if ((mr->params = calloc(m->np ? m->np : 1, sizeof(*mr->params))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (i = 0; i < m->np; i++) {
		Touchpoint__V1__Param *p;

		NEW(Touchpoint__V1__Param, touchpoint__v1__param__init, p);
		mr->params[mr->n_params++] = p;
		if ((rv = setstr(&p->key, m->pkey[i])) != TP_OK ||
		    (rv = setstr(&p->value, m->pval[i])) != TP_OK)
			return rv;
	}
	memset(ru->conv, 0, nunits * sizeof(double));
	memset(ru->val, 0, nunits * sizeof(double));
	memset(ru->re, 0, nunits * sizeof(double));
	if (ru->table.npaths > 0) {
		switch (m->d->kind) {
		case ATTR_MK_WEIGHT:
			if ((rv = attr_minst_sync(m, &e->units)) != TP_OK)
				return rv;
			for (i = 0; i < ru->table.npaths; i++) {
				const struct attr_path *p = &ru->paths[i];

				/*
				 * A path with no conversion and no value adds w * 0 to every
				 * credit: nothing. Most distinct paths are such (1.0 M of
				 * 1.2 M at 50 M events), and their weights cost as much.
				 */
				if (p->conversions == 0 && p->value == 0)
					continue;
				m->d->weights(m, p->units, p->len, NULL, 0, ru->w);
				for (j = 0; j < p->len; j++) {
					ru->conv[p->units[j]] += ru->w[j] * p->conversions;
					ru->val[p->units[j]] += ru->w[j] * p->value;
				}
			}
			break;
		case ATTR_MK_TIMEDECAY:
			for (u = 0; u < nunits && u < ru->s->acc[mi].cap; u++) {
				ru->conv[u] = ru->s->acc[mi].conversions[u];
				ru->val[u] = ru->s->acc[mi].value[u];
			}
			break;
		case ATTR_MK_SHAPLEY_RATE:
			if ((rv = attr_shapley_rate(&ru->table, &cr, &nest, errbuf, errlen)) !=
			    TP_OK)
				return rv;
			break;
		case ATTR_MK_MARKOV:
#ifdef TP_HAVE_MARKOV
			cr.removal_effect = ru->re;
			rv = attr_markov(&ru->table, m->order, &cr,
			                 ru->top && e->transition_matrix ? &mat : NULL, errbuf,
			                 errlen);
			if (rv != TP_OK)
				return rv;
#else
			snprintf(errbuf, errlen, "markov is not built into this engine");
			return TP_UNIMPLEMENTED;
#endif
			break;
		}
	}
	if (nest > 0) {
		char note[160];

		mr->estimated = 1;
		snprintf(note, sizeof(note),
		         "%zu channel set(s) with more than %d distinct channels estimated from %d "
		         "sampled permutations",
		         nest, ATTR_EXACT_SHAPLEY, ATTR_SHAPLEY_SAMPLE);
		if ((rv = setstr(&mr->note, note)) != TP_OK)
			return rv;
	}
	for (i = 0, u = 0; u < nunits; u++)
		if (ru->present[u]) {
			ru->rows[i].conversions = ru->conv[u];
			ru->rows[i].name = e->units.names[u];
			ru->rows[i].unit = u;
			i++;
		}
	if (i > 1)
		qsort(ru->rows, i, sizeof(*ru->rows), cmp_crow);
	if ((mr->channels = calloc(i ? i : 1, sizeof(*mr->channels))) == NULL)
		goto nomem;
	for (j = 0; j < i; j++) {
		Touchpoint__V1__ChannelCredit *c;

		if ((c = malloc(sizeof(*c))) == NULL)
			goto nomem;
		touchpoint__v1__channel_credit__init(c);
		mr->channels[mr->n_channels++] = c;
		u = ru->rows[j].unit;
		if ((rv = setstr(&c->channel, e->units.names[u])) != TP_OK)
			goto fail;
		c->conversions = ru->conv[u];
		c->value = ru->val[u];
		c->share = ru->attributed > 0 ? ru->conv[u] / ru->attributed : 0;
		if (m->d->kind == ATTR_MK_MARKOV) {
			c->removal_effect_present_case =
			    TOUCHPOINT__V1__CHANNEL_CREDIT__REMOVAL_EFFECT_PRESENT_REMOVAL_EFFECT;
			c->removal_effect = ru->re[u];
		}
	}
	if (mat.n > 0) {
		if ((mr->transitions = calloc(mat.n, sizeof(*mr->transitions))) == NULL)
			goto nomem;
		for (i = 0; i < mat.n; i++) {
			Touchpoint__V1__Transition *t;

			if ((t = malloc(sizeof(*t))) == NULL)
				goto nomem;
			touchpoint__v1__transition__init(t);
			mr->transitions[mr->n_transitions++] = t;
			if ((rv = setstr(&t->from, mat.t[i].from)) != TP_OK ||
			    (rv = setstr(&t->to, mat.t[i].to)) != TP_OK)
				goto fail;
			t->probability = mat.t[i].probability;
		}
	}
	rv = TP_OK;
	goto fail;
nomem:
	rv = TP_RESOURCE_EXHAUSTED;
fail:
#ifdef TP_HAVE_MARKOV
	if (mat.t != NULL)
		attr_markov_matrix_free(&mat);
#endif
	return rv;
}

/* A scope's models run on two threads from this many distinct paths: below, a thread costs more. */
#define RESULT_PAR_PATHS 4096

/* One thread's share of a scope's models: it takes the next model until none is left. */
struct mworker {
	struct run ru; /* the shared view, its own scratch */
	Touchpoint__V1__ModelResult **models;
	const size_t *order; /* the models, the costliest first */
	atomic_size_t *next;
	size_t failed; /* the model that failed, or SIZE_MAX */
	int rv;
	char err[256];
};

static int
scratch_alloc(struct run *ru, uint32_t nunits)
{
	ru->conv = calloc(nunits ? nunits : 1, sizeof(double));
	ru->val = calloc(nunits ? nunits : 1, sizeof(double));
	ru->re = calloc(nunits ? nunits : 1, sizeof(double));
	ru->rows = calloc(nunits ? nunits : 1, sizeof(*ru->rows));
	ru->w = malloc((ru->maxlen ? ru->maxlen : 1) * sizeof(double));
	if (!ru->conv || !ru->val || !ru->re || !ru->rows || !ru->w)
		return TP_RESOURCE_EXHAUSTED;
	return TP_OK;
}

static void
scratch_free(struct run *ru)
{
	free(ru->conv);
	free(ru->val);
	free(ru->re);
	free(ru->w);
	free(ru->rows);
}

static void *
mworker_main(void *arg)
{
	struct mworker *w = arg;
	size_t k, i;

	while ((k = atomic_fetch_add(w->next, 1)) < w->ru.e->nm) {
		i = w->order[k];
		if ((w->rv = model_result(&w->ru, i, &w->models[i], w->err, sizeof(w->err))) !=
		    TP_OK) {
			w->failed = i;
			break;
		}
	}
	return NULL;
}

/* The second models thread, named for top -H, perf and ps -L (best effort). */
static void *
mworker_thread(void *arg)
{
	(void)prctl(PR_SET_NAME, "tp-models");
	return mworker_main(arg);
}

/*
 * Where a model goes in the two threads' queue: the slow kinds first, so that the last one
 * to start is short (in model order, shapley_rate, the slowest at 50 M events, started last
 * and ran alone).
 */
static int
model_rank(enum attr_mkind k)
{
	switch (k) {
	case ATTR_MK_MARKOV:
		return 0;
	case ATTR_MK_SHAPLEY_RATE:
		return 1;
	case ATTR_MK_WEIGHT:
		return 2;
	default:
		return 3;
	}
}

/*
 * The models of a big scope on two threads (the query's and one more): each model reads
 * the table and writes only its own result, so the results are those of one thread.
 */
static int
models_parallel(struct run *ru, Touchpoint__V1__ModelResult **models, char *errbuf, size_t errlen)
{
	struct mworker w[2];
	atomic_size_t next;
	pthread_t tid;
	int started, rv = TP_OK, k, r;
	size_t i, n = 0, first = SIZE_MAX, *order;

	if ((order = malloc((ru->e->nm ? ru->e->nm : 1) * sizeof(*order))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (r = 0; r <= 3; r++)
		for (i = 0; i < ru->e->nm; i++)
			if (model_rank(ru->e->m[i].d->kind) == r)
				order[n++] = i;
	atomic_init(&next, 0);
	memset(w, 0, sizeof(w));
	for (k = 0; k < 2; k++) {
		w[k].ru = *ru;
		w[k].models = models;
		w[k].order = order;
		w[k].next = &next;
		w[k].failed = SIZE_MAX;
	}
	/* w[0] uses the run's scratch; w[1] its own */
	w[1].ru.conv = w[1].ru.val = w[1].ru.re = w[1].ru.w = NULL;
	w[1].ru.rows = NULL;
	if ((rv = scratch_alloc(&w[1].ru, ru->e->units.n)) != TP_OK)
		goto fail;
	started = pthread_create(&tid, NULL, mworker_thread, &w[1]) == 0;
	mworker_main(&w[0]);
	if (started)
		pthread_join(tid, NULL);
	else
		mworker_main(&w[1]); /* no thread: the models left run here */
	for (k = 0; k < 2; k++)
		if (w[k].rv != TP_OK && w[k].failed < first) {
			first = w[k].failed;
			rv = w[k].rv;
			snprintf(errbuf, errlen, "%s", w[k].err);
		}
	if (rv != TP_OK)
		/* the other thread may have stopped early: results are not contiguous */
		for (i = 0; i < ru->e->nm; i++) {
			if (models[i] != NULL)
				protobuf_c_message_free_unpacked(&models[i]->base, NULL);
			models[i] = NULL;
		}
fail:
	scratch_free(&w[1].ru);
	free(order);
	return rv;
}

static int
scope_models(struct attr_engine *e, struct attr_scope *s, int top,
             Touchpoint__V1__ModelResult ***models, size_t *nmodels, char *errbuf, size_t errlen)
{
	uint32_t nunits = e->units.n, j;
	struct run ru;
	size_t i;
	int rv = TP_RESOURCE_EXHAUSTED;

	memset(&ru, 0, sizeof(ru));
	ru.e = e;
	ru.s = s;
	ru.top = top;
	if ((*models = calloc(e->nm ? e->nm : 1, sizeof(**models))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	/* Written whole below; as large as the table, so it comes from the tables' kept blocks. */
	ru.paths = attr_ptab_buf_get((s->pt.n ? s->pt.n : 1) * sizeof(*ru.paths));
	ru.present = calloc(nunits ? nunits : 1, 1);
	if (!ru.paths || !ru.present)
		goto fail;
	for (i = 0; i < s->pt.n; i++) {
		const struct attr_pent *p = &s->pt.e[i];

		ru.paths[i].units = attr_ptab_units(&s->pt, i);
		ru.paths[i].len = p->len;
		ru.paths[i].conversions = p->conversions;
		ru.paths[i].value = p->value;
		ru.paths[i].nulls = p->nulls;
		ru.attributed += p->conversions;
		ru.attributed_value += p->value;
		if (p->len > ru.maxlen)
			ru.maxlen = p->len;
		for (j = 0; j < p->len; j++)
			ru.present[ru.paths[i].units[j]] = 1;
	}
	if ((rv = scratch_alloc(&ru, nunits)) != TP_OK)
		goto fail;
	ru.table.paths = ru.paths;
	ru.table.npaths = s->pt.n;
	ru.table.nunits = nunits;
	ru.table.unit_names = (const char *const *)e->units.names;
	ru.table.cancelled = e->cancelled;
	ru.table.cancel_arg = e->cancel_arg;
	if (e->nm >= 2 && s->pt.n >= RESULT_PAR_PATHS) {
		rv = models_parallel(&ru, *models, errbuf, errlen);
		for (i = 0; i < e->nm && (*models)[i] != NULL; i++)
			(*nmodels)++;
		goto fail;
	}
	for (i = 0; i < e->nm; i++) {
		rv = model_result(&ru, i, &(*models)[i], errbuf, errlen);
		if ((*models)[i] != NULL)
			(*nmodels)++;
		if (rv != TP_OK)
			goto fail;
	}
	rv = TP_OK;
fail:
	attr_ptab_buf_put(ru.paths, (s->pt.n ? s->pt.n : 1) * sizeof(*ru.paths));
	free(ru.present);
	scratch_free(&ru);
	return rv;
}

static int
cmp_seg(const void *a, const void *b)
{
	const struct attr_scope *x = *(struct attr_scope *const *)a;
	const struct attr_scope *y = *(struct attr_scope *const *)b;

	return strcmp(x->segment, y->segment);
}

/* Days since the epoch -> YYYY-MM-DD (proleptic Gregorian). */
static void
day_string(int32_t day, char *buf, size_t len)
{
	int64_t z = (int64_t)day + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
	int64_t m = mp < 10 ? mp + 3 : mp - 9;

	snprintf(buf, len, "%04lld-%02lld-%02lld", (long long)(y + (m <= 2)), (long long)m,
	         (long long)d);
}

static int
cmp_daily(const void *a, const void *b)
{
	const struct attr_daily *x = a, *y = b;

	if (x->day != y->day)
		return x->day < y->day ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int
cmp_spend(const void *a, const void *b)
{
	const struct attr_spend *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : strcmp(x->currency, y->currency);
}

static int
daily_and_spend(struct attr_engine *e, Touchpoint__V1__AttributeResponse *r)
{
	char day[48];
	size_t i;
	int rv;

	/* sort the engine's own arrays: results are built once, at the end */
	for (i = 0; i < e->ndly; i++)
		e->dly[i].name = e->units.names[e->dly[i].unit];
	for (i = 0; i < e->nspend; i++)
		e->spend[i].name = e->units.names[e->spend[i].unit];
	if (e->ndly > 1)
		qsort(e->dly, e->ndly, sizeof(*e->dly), cmp_daily);
	if (e->nspend > 1)
		qsort(e->spend, e->nspend, sizeof(*e->spend), cmp_spend);
	attr_map_free(&e->dailymap); /* indexes changed; no more paths may come */
	if (e->ndly > 0 && (r->daily = calloc(e->ndly, sizeof(*r->daily))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (i = 0; i < e->ndly; i++) {
		Touchpoint__V1__DailyCredit *d;

		NEW(Touchpoint__V1__DailyCredit, touchpoint__v1__daily_credit__init, d);
		r->daily[r->n_daily++] = d;
		day_string(e->dly[i].day, day, sizeof(day));
		if ((rv = setstr(&d->day, day)) != TP_OK ||
		    (rv = setstr(&d->channel, e->units.names[e->dly[i].unit])) != TP_OK)
			return rv;
		d->conversions = e->dly[i].conversions;
		d->value = e->dly[i].value;
	}
	if (e->nspend > 0 && (r->spend = calloc(e->nspend, sizeof(*r->spend))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (i = 0; i < e->nspend; i++) {
		Touchpoint__V1__ChannelSpend *s;

		NEW(Touchpoint__V1__ChannelSpend, touchpoint__v1__channel_spend__init, s);
		r->spend[r->n_spend++] = s;
		if ((rv = setstr(&s->channel, e->units.names[e->spend[i].unit])) != TP_OK)
			return rv;
		if (e->spend[i].currency[0] != '\0' &&
		    (rv = setstr(&s->currency, e->spend[i].currency)) != TP_OK)
			return rv;
		s->amount = e->spend[i].amount;
	}
	return TP_OK;
}

static int
build(struct attr_engine *e, Touchpoint__V1__AttributeResponse *r, char *errbuf, size_t errlen)
{
	size_t i;
	int rv;

	r->lookback_s = e->lookback_s;
	if (e->has_from) {
		r->from_case = TOUCHPOINT__V1__ATTRIBUTE_RESPONSE__FROM_FROM_US;
		r->from_us = e->from_us;
	}
	if (e->has_to) {
		r->to_case = TOUCHPOINT__V1__ATTRIBUTE_RESPONSE__TO_TO_US;
		r->to_us = e->to_us;
	}
	r->repeats = e->collapse ? TOUCHPOINT__V1__REPEATS__REPEATS_COLLAPSE
	                         : TOUCHPOINT__V1__REPEATS__REPEATS_KEEP;
	r->level = e->campaign ? TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN
	                       : TOUCHPOINT__V1__LEVEL__LEVEL_CHANNEL;
	if (e->conversion && (rv = setstr(&r->conversion, e->conversion)) != TP_OK)
		return rv;
	if ((rv = totals_of(&e->top, &r->totals)) != TP_OK)
		return rv;
	if ((rv = scope_models(e, &e->top, 1, &r->models, &r->n_models, errbuf, errlen)) != TP_OK)
		return rv;
	if (e->by_trait != NULL) {
		if ((rv = setstr(&r->by_trait, e->by_trait)) != TP_OK)
			return rv;
		if (e->nsegs > 1)
			qsort(e->segs, e->nsegs, sizeof(*e->segs), cmp_seg);
		attr_smap_free(&e->segmap); /* indexes changed with the sort */
		if (e->nsegs > 0 && (r->segments = calloc(e->nsegs, sizeof(*r->segments))) == NULL)
			return TP_RESOURCE_EXHAUSTED;
		for (i = 0; i < e->nsegs; i++) {
			Touchpoint__V1__Segment *sg;

			NEW(Touchpoint__V1__Segment, touchpoint__v1__segment__init, sg);
			r->segments[r->n_segments++] = sg;
			if ((rv = setstr(&sg->segment, e->segs[i]->segment)) != TP_OK ||
			    (rv = totals_of(e->segs[i], &sg->totals)) != TP_OK ||
			    (rv = scope_models(e, e->segs[i], 0, &sg->models, &sg->n_models, errbuf,
			                       errlen)) != TP_OK)
				return rv;
		}
	}
	if (e->daily_name != NULL && (rv = setstr(&r->daily_model, e->daily_name)) != TP_OK)
		return rv;
	return daily_and_spend(e, r);
}

int
attr_build_result(struct attr_engine *e, Touchpoint__V1__AttributeResponse **out, char *errbuf,
                  size_t errlen)
{
	Touchpoint__V1__AttributeResponse *r;
	int rv;

	*out = NULL;
	if ((r = malloc(sizeof(*r))) == NULL)
		return attr_oom(errbuf, errlen);
	touchpoint__v1__attribute_response__init(r);
	if ((rv = build(e, r, errbuf, errlen)) != TP_OK) {
		/*
		 * Most of build()'s allocations say nothing: RESOURCE_EXHAUSTED from them is
		 * memory, and the reply (or --paths) must say so rather than nothing.
		 */
		if (rv == TP_RESOURCE_EXHAUSTED && errlen > 0 && errbuf[0] == '\0')
			snprintf(errbuf, errlen, "out of memory");
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return rv;
	}
	*out = r;
	return TP_OK;
}

struct prow {
	const struct attr_pent *p;
	const uint32_t *u;
	char *const *names;
};

static int
cmp_prow(const void *a, const void *b)
{
	const struct prow *x = a, *y = b;
	uint32_t i;
	int c;

	if (x->p->conversions != y->p->conversions)
		return x->p->conversions > y->p->conversions ? -1 : 1;
	if (x->p->nulls != y->p->nulls)
		return x->p->nulls > y->p->nulls ? -1 : 1;
	for (i = 0; i < x->p->len && i < y->p->len; i++)
		if ((c = strcmp(x->names[x->u[i]], y->names[y->u[i]])) != 0)
			return c;
	return x->p->len < y->p->len ? -1 : x->p->len > y->p->len;
}

/* The table's order, sorted once per engine (paging asks for it page after page). */
static int
paths_order(struct attr_engine *e)
{
	const struct attr_ptab *pt = &e->top.pt;
	struct prow *rows;
	size_t i;

	if (e->porder != NULL || pt->n == 0)
		return TP_OK;
	if ((rows = calloc(pt->n, sizeof(*rows))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	if ((e->porder = malloc(pt->n * sizeof(*e->porder))) == NULL) {
		free(rows);
		return TP_RESOURCE_EXHAUSTED;
	}
	for (i = 0; i < pt->n; i++) {
		rows[i].p = &pt->e[i];
		rows[i].u = attr_ptab_units(pt, i);
		rows[i].names = e->units.names;
	}
	if (pt->n > 1)
		qsort(rows, pt->n, sizeof(*rows), cmp_prow);
	for (i = 0; i < pt->n; i++)
		e->porder[i] = (size_t)(rows[i].p - pt->e);
	e->nporder = pt->n;
	free(rows);
	return TP_OK;
}

/* An upper bound of a row's packed size inside a PathsResponse. */
static size_t
path_row_bytes(const struct attr_engine *e, const uint32_t *u, uint32_t len)
{
	size_t b = 4 + 3 * 9;
	uint32_t j;

	for (j = 0; j < len; j++)
		b += strlen(e->units.names[u[j]]) + 4;
	return b;
}

static int
build_paths(struct attr_engine *e, uint32_t top, uint64_t offset, uint32_t limit, size_t max_bytes,
            Touchpoint__V1__PathsResponse *r)
{
	const struct attr_ptab *pt = &e->top.pt;
	size_t n = pt->n, i, end, bytes = 0;
	uint32_t j;
	int rv;

	if ((rv = totals_of(&e->top, &r->totals)) != TP_OK)
		return rv;
	r->distinct_paths = n;
	if ((rv = paths_order(e)) != TP_OK)
		return rv;
	if (top > 0 && top < n)
		n = top;
	if (offset >= n)
		return TP_OK;
	end = limit > 0 && n - offset > limit ? (size_t)offset + limit : n;
	if ((r->paths = calloc(end - offset, sizeof(*r->paths))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (i = offset; i < end; i++) {
		size_t k = e->porder[i];
		const struct attr_pent *p = &pt->e[k];
		const uint32_t *u = attr_ptab_units(pt, k);
		Touchpoint__V1__PathRow *row;

		/* Only a bounded page counts its bytes (strlen of every name). */
		if (max_bytes != SIZE_MAX && (bytes += path_row_bytes(e, u, p->len)) > max_bytes &&
		    i > offset)
			break;
		NEW(Touchpoint__V1__PathRow, touchpoint__v1__path_row__init, row);
		r->paths[r->n_paths++] = row;
		if ((row->channels = calloc(p->len ? p->len : 1, sizeof(*row->channels))) == NULL)
			return TP_RESOURCE_EXHAUSTED;
		for (j = 0; j < p->len; j++) {
			if ((rv = setstr(&row->channels[j], e->units.names[u[j]])) != TP_OK)
				return rv;
			row->n_channels++;
		}
		row->total_conversions = p->conversions;
		row->total_conversion_value = p->value;
		row->total_null = p->nulls;
	}
	r->next_offset = i < n ? i : 0;
	return TP_OK;
}

int
attr_engine_paths_page(struct attr_engine *e, uint32_t top, uint64_t offset, uint32_t limit,
                       size_t max_bytes, Touchpoint__V1__PathsResponse **out)
{
	Touchpoint__V1__PathsResponse *r;
	int rv;

	if (e == NULL || out == NULL)
		return TP_INVALID_ARGUMENT;
	*out = NULL;
	if ((rv = attr_engine_settle(e)) != TP_OK)
		return rv;
	if ((r = malloc(sizeof(*r))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	touchpoint__v1__paths_response__init(r);
	if ((rv = build_paths(e, top, offset, limit, max_bytes, r)) != TP_OK) {
		protobuf_c_message_free_unpacked(&r->base, NULL);
		return rv;
	}
	*out = r;
	return TP_OK;
}

int
attr_engine_paths(struct attr_engine *e, uint32_t top, Touchpoint__V1__PathsResponse **out)
{
	return attr_engine_paths_page(e, top, 0, 0, SIZE_MAX, out);
}
