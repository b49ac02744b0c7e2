/*
 * engine_util: helpers shared by the engine's tests — event builders, a names table, request
 * building and credit lookup. Header-only, static: each test program includes it once.
 */
#ifndef TP_TEST_ENGINE_UTIL_H
#define TP_TEST_ENGINE_UTIL_H

#include <string.h>

#include "attribution/engine.h"
#include "touchpoint/touchpoint.h"

#define DAY  86400000000LL
#define HOUR 3600000000LL

enum { SEARCH = 1, EMAIL, DIRECT, DISPLAY, SOCIAL, PURCHASE, SIGNUP, SPRING, AUTUMN, NNAMES };

static const char *const test_names[NNAMES + 32] = {
	NULL,     "search",   "email",  "direct", "display",
	"social", "purchase", "signup", "spring", "autumn",
};

static const char *
names_fn(void *arg, uint32_t id)
{
	const char *const *t = arg ? (const char *const *)arg : test_names;

	return id < NNAMES + 32 ? t[id] : NULL;
}

static inline struct attr_event
TOUCH(int64_t ts, uint32_t ch, uint32_t camp) {
	struct attr_event e;

	memset(&e, 0, sizeof(e));
	e.kind = ATTR_TOUCH;
	e.ts_us = ts;
	e.channel = ch;
	e.campaign = camp;
	return e;
}

static inline struct attr_event
CONV(int64_t ts, double value, uint32_t name) {
	struct attr_event e;

	memset(&e, 0, sizeof(e));
	e.kind = ATTR_CONVERSION;
	e.ts_us = ts;
	e.value = value;
	e.name = name;
	return e;
}

/* Gives each event its arrival number, in array order. */
static inline void
seqs(struct attr_event *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		e[i].seq = i + 1;
}

struct req {
	Touchpoint__V1__AttributeRequest r;
	Touchpoint__V1__Window w;
	Touchpoint__V1__ModelSpec spec[24];
	Touchpoint__V1__ModelSpec *sp[24];
	Touchpoint__V1__Param par[24][3];
	Touchpoint__V1__Param *pp[24][3];
};

static inline void
req_init(struct req *q)
{
	memset(q, 0, sizeof(*q));
	touchpoint__v1__attribute_request__init(&q->r);
	touchpoint__v1__window__init(&q->w);
	q->r.window = &q->w;
	q->r.models = q->sp;
}

static inline void
req_lookback(struct req *q, int64_t s)
{
	q->w.lookback_case = TOUCHPOINT__V1__WINDOW__LOOKBACK_LOOKBACK_S;
	q->w.lookback_s = s;
}

/* Adds a model; k1/v1 (optional) a parameter. Returns the spec for more parameters. */
static inline Touchpoint__V1__ModelSpec *
req_model(struct req *q, const char *name, const char *k1, const char *v1)
{
	size_t i = q->r.n_models++;
	Touchpoint__V1__ModelSpec *s = &q->spec[i];

	touchpoint__v1__model_spec__init(s);
	s->model = (char *)name;
	s->params = q->pp[i];
	q->sp[i] = s;
	if (k1 != NULL) {
		touchpoint__v1__param__init(&q->par[i][0]);
		q->par[i][0].key = (char *)k1;
		q->par[i][0].value = (char *)v1;
		q->pp[i][0] = &q->par[i][0];
		s->n_params = 1;
	}
	return s;
}

static inline void
req_param(struct req *q, const char *k, const char *v)
{
	size_t i = q->r.n_models - 1, j = q->spec[i].n_params++;

	touchpoint__v1__param__init(&q->par[i][j]);
	q->par[i][j].key = (char *)k;
	q->par[i][j].value = (char *)v;
	q->pp[i][j] = &q->par[i][j];
}

static inline const Touchpoint__V1__ModelResult *
find_model(Touchpoint__V1__ModelResult *const *m, size_t n, const char *model)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(m[i]->model, model) == 0)
			return m[i];
	return NULL;
}

static inline const Touchpoint__V1__ChannelCredit *
find_credit(const Touchpoint__V1__ModelResult *m, const char *ch)
{
	size_t i;

	for (i = 0; m != NULL && i < m->n_channels; i++)
		if (strcmp(m->channels[i]->channel, ch) == 0)
			return m->channels[i];
	return NULL;
}

/* Conversions credited to ch by model (0 when the channel is not listed). */
static inline double
conv_of(const Touchpoint__V1__AttributeResponse *r, const char *model, const char *ch)
{
	const Touchpoint__V1__ChannelCredit *c =
	    find_credit(find_model(r->models, r->n_models, model), ch);

	return c ? c->conversions : 0;
}

static inline double
value_of(const Touchpoint__V1__AttributeResponse *r, const char *model, const char *ch)
{
	const Touchpoint__V1__ChannelCredit *c =
	    find_credit(find_model(r->models, r->n_models, model), ch);

	return c ? c->value : 0;
}

#endif /* TP_TEST_ENGINE_UTIL_H */
