/*
 * registry: the table of models — name, kind, parameters with defaults — and the parsing and
 * validation of a request's model list into instances (the engine's tiny vtable).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "touchpoint/touchpoint.h"
#include "attribution/internal.h"

enum { P_NUMBER, P_INTEGER, P_TEXT };

static const struct attr_pdesc p_lnd[] = { { "direct_channels", "direct", P_TEXT } };
static const struct attr_pdesc p_td[] = { { "half_life_s", "604800", P_NUMBER } };
static const struct attr_pdesc p_pos[] = { { "first_weight", "0.4", P_NUMBER },
	                                   { "last_weight", "0.4", P_NUMBER } };
static const struct attr_pdesc p_markov[] = { { "order", "1", P_INTEGER } };

#define NP(a) (sizeof(a) / sizeof((a)[0]))

static const struct attr_mdesc models[] = {
	{ "first_touch", ATTR_MK_WEIGHT, attr_w_first, NULL, 0, 0, 0, 0 },
	{ "last_touch", ATTR_MK_WEIGHT, attr_w_last, NULL, 0, 0, 0, 0 },
	{ "last_non_direct", ATTR_MK_WEIGHT, attr_w_last_non_direct, p_lnd, NP(p_lnd), 0, 0, 0 },
	{ "linear", ATTR_MK_WEIGHT, attr_w_linear, NULL, 0, 0, 0, 0 },
	{ "time_decay", ATTR_MK_TIMEDECAY, attr_w_time_decay, p_td, NP(p_td), 0, 0, 0 },
	{ "position_based", ATTR_MK_WEIGHT, attr_w_position, p_pos, NP(p_pos), 0, 0, 0 },
	{ "participation", ATTR_MK_WEIGHT, attr_w_participation, NULL, 0, 0, 0, 0 },
	{ "markov", ATTR_MK_MARKOV, NULL, p_markov, NP(p_markov), 0, 0, 0 },
	{ "shapley", ATTR_MK_WEIGHT, attr_w_shapley, NULL, 0, 0, 0, 0 },
	{ "shapley_rate", ATTR_MK_SHAPLEY_RATE, NULL, NULL, 0, 0, 0, 0 },
	/* presets: models of their own in the output, weights fixed */
	{ "u_shaped", ATTR_MK_WEIGHT, attr_w_position, NULL, 0, 0.4, 0.4, 1 },
	{ "j_shaped", ATTR_MK_WEIGHT, attr_w_position, NULL, 0, 0.2, 0.6, 1 },
	{ "inverse_j", ATTR_MK_WEIGHT, attr_w_position, NULL, 0, 0.6, 0.2, 1 },
};

/* The models an empty list means (SPEC §4's list, presets aside). */
static const char *const defaults[] = { "first_touch",   "last_touch", "last_non_direct",
	                                "linear",        "time_decay", "position_based",
	                                "participation", "markov",     "shapley",
	                                "shapley_rate" };

const struct attr_mdesc *
attr_model_lookup(const char *name)
{
	size_t i;

	for (i = 0; i < NP(models); i++)
		if (strcmp(models[i].name, name) == 0)
			return &models[i];
	return NULL;
}

int
attr_param_is_text(const char *model, const char *key)
{
	const struct attr_mdesc *d = model != NULL ? attr_model_lookup(model) : NULL;
	size_t i;

	for (i = 0; d != NULL && key != NULL && i < d->nparams; i++)
		if (strcmp(d->params[i].key, key) == 0)
			return d->params[i].kind == P_TEXT;
	return 0;
}

void
attr_minst_clear(struct attr_minst *m)
{
	size_t i;

	for (i = 0; i < m->ndirect; i++)
		free(m->direct[i]);
	free(m->direct);
	free(m->isdirect);
	for (i = 0; i < m->np; i++) {
		free(m->pkey[i]);
		free(m->pval[i]);
	}
	memset(m, 0, sizeof(*m));
}

int
attr_minst_sync(struct attr_minst *m, const struct attr_units *u)
{
	uint32_t i;
	size_t j;

	if (m->ndirect == 0 || m->nflags == u->n)
		return TP_OK;
	if (u->n > m->flagcap) {
		uint32_t ncap = m->flagcap ? m->flagcap : 64;
		uint8_t *nf;

		while (ncap < u->n)
			ncap *= 2;
		if ((nf = realloc(m->isdirect, ncap)) == NULL)
			return TP_RESOURCE_EXHAUSTED;
		m->isdirect = nf;
		m->flagcap = ncap;
	}
	for (i = m->nflags; i < u->n; i++) {
		m->isdirect[i] = 0;
		for (j = 0; j < m->ndirect; j++)
			if (strlen(m->direct[j]) == u->chanlen[i] &&
			    strncmp(m->direct[j], u->names[i], u->chanlen[i]) == 0)
				m->isdirect[i] = 1;
	}
	m->nflags = u->n;
	return TP_OK;
}

static int
echo(struct attr_minst *m, const char *key, const char *val)
{
	if (m->np >= ATTR_MAX_PARAMS)
		return TP_INTERNAL;
	m->pkey[m->np] = strdup(key);
	m->pval[m->np] = strdup(val);
	m->np++;
	return m->pkey[m->np - 1] && m->pval[m->np - 1] ? TP_OK : TP_RESOURCE_EXHAUSTED;
}

static int
echo_number(struct attr_minst *m, const char *key, double v)
{
	char buf[64];

	attr_format_number(buf, sizeof(buf), v);
	return echo(m, key, buf);
}

static int
parse_direct(struct attr_minst *m, const char *list)
{
	const char *p = list, *q;
	size_t n = 1;

	for (q = list; *q; q++)
		n += *q == ',';
	if ((m->direct = calloc(n, sizeof(*m->direct))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		while (len > 0 && *p == ' ')
			p++, len--;
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len > 0) {
			if ((m->direct[m->ndirect] = strndup(p, len)) == NULL)
				return TP_RESOURCE_EXHAUSTED;
			m->ndirect++;
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return TP_OK;
}

/* spec may be NULL (defaults). idx names the model in messages. */
static int
make_inst(struct attr_minst *m, const struct attr_mdesc *d, const Touchpoint__V1__ModelSpec *spec,
          const char *where, char *errbuf, size_t errlen)
{
	const char *val[ATTR_MAX_PARAMS];
	size_t i, j, np = spec ? spec->n_params : 0;
	int rv;

	memset(m, 0, sizeof(*m));
	m->d = d;
	for (j = 0; j < d->nparams; j++)
		val[j] = NULL;
	for (i = 0; i < np; i++) {
		const Touchpoint__V1__Param *p = spec->params[i];
		const char *key = p && p->key ? p->key : "";

		for (j = 0; j < d->nparams; j++)
			if (strcmp(d->params[j].key, key) == 0)
				break;
		if (j == d->nparams) {
			snprintf(errbuf, errlen, "%s.params.%s: unknown parameter for %s", where,
			         key, d->name);
			return TP_INVALID_ARGUMENT;
		}
		if (val[j] != NULL) {
			snprintf(errbuf, errlen, "%s.params.%s: given twice", where, key);
			return TP_INVALID_ARGUMENT;
		}
		val[j] = p->value ? p->value : "";
	}
	for (j = 0; j < d->nparams; j++) {
		const struct attr_pdesc *pd = &d->params[j];
		const char *s = val[j] ? val[j] : pd->def;
		char *end;
		double x = 0;
		long k = 0;

		if (pd->kind == P_NUMBER) {
			errno = 0;
			x = strtod(s, &end);
			if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(x))
				goto badnum;
		} else if (pd->kind == P_INTEGER) {
			errno = 0;
			k = strtol(s, &end, 10);
			if (*s == '\0' || *end != '\0' || errno != 0)
				goto badnum;
		}
		if (strcmp(pd->key, "half_life_s") == 0) {
			if (!(x > 0)) {
				snprintf(errbuf, errlen, "%s.params.half_life_s: must be > 0",
				         where);
				return TP_INVALID_ARGUMENT;
			}
			m->half_life_s = x;
		} else if (strcmp(pd->key, "first_weight") == 0 ||
		           strcmp(pd->key, "last_weight") == 0) {
			if (!(x >= 0 && x <= 1)) {
				snprintf(errbuf, errlen, "%s.params.%s: must be in [0,1]", where,
				         pd->key);
				return TP_INVALID_ARGUMENT;
			}
			*(pd->key[0] == 'f' ? &m->first_weight : &m->last_weight) = x;
		} else if (strcmp(pd->key, "order") == 0) {
			if (k < 1 || k > 4) {
				snprintf(errbuf, errlen, "%s.params.order: must be 1..4", where);
				return TP_INVALID_ARGUMENT;
			}
			m->order = (int)k;
		} else if (strcmp(pd->key, "direct_channels") == 0) {
			if ((rv = parse_direct(m, s)) != TP_OK)
				goto nomem;
		}
		if (pd->kind == P_TEXT)
			rv = echo(m, pd->key, s);
		else if (pd->kind == P_INTEGER)
			rv = echo_number(m, pd->key, (double)k);
		else
			rv = echo_number(m, pd->key, x);
		if (rv != TP_OK)
			goto nomem;
		continue;
	badnum:
		snprintf(errbuf, errlen, "%s.params.%s: must be %s", where, pd->key,
		         pd->kind == P_INTEGER ? "an integer" : "a number");
		return TP_INVALID_ARGUMENT;
	}
	if (d->preset) {
		m->first_weight = d->first;
		m->last_weight = d->last;
		if ((rv = echo_number(m, "first_weight", d->first)) != TP_OK ||
		    (rv = echo_number(m, "last_weight", d->last)) != TP_OK)
			goto nomem;
	}
	if (d->weights == attr_w_position && m->first_weight + m->last_weight > 1 + 1e-12) {
		snprintf(errbuf, errlen, "%s.params: first_weight + last_weight must be <= 1",
		         where);
		return TP_INVALID_ARGUMENT;
	}
	return TP_OK;
nomem: /* or, TP_INTERNAL, more parameters than a model has */
	snprintf(errbuf, errlen, "%s: %s", where,
	         rv == TP_RESOURCE_EXHAUSTED ? "out of memory" : "cannot keep its parameters");
	return rv;
}

#ifndef TP_HAVE_MARKOV
#define MARKOV_MISSING 1
#else
#define MARKOV_MISSING 0
#endif

int
attr_models_parse(struct attr_engine *e, const Touchpoint__V1__AttributeRequest *req,
                  int skip_timestamps, char *errbuf, size_t errlen)
{
	size_t n = req->n_models ? req->n_models : NP(defaults), i;
	char where[48];
	int rv;

	/* Each model is a pass over the path table at least: a list is not a work queue. */
	if (n > ATTR_MAX_MODELS) {
		snprintf(errbuf, errlen, "models: %zu models asked for, at most %d per request", n,
		         ATTR_MAX_MODELS);
		return TP_INVALID_ARGUMENT;
	}
	if ((e->m = calloc(n, sizeof(*e->m))) == NULL)
		return attr_oom(errbuf, errlen);
	for (i = 0; i < n; i++) {
		const Touchpoint__V1__ModelSpec *spec = req->n_models ? req->models[i] : NULL;
		const char *name = spec ? (spec->model ? spec->model : "") : defaults[i];
		const struct attr_mdesc *d = attr_model_lookup(name);

		snprintf(where, sizeof(where), "models[%zu]", i);
		if (d == NULL) {
			snprintf(errbuf, errlen, "%s: unknown model \"%s\"", where, name);
			return TP_INVALID_ARGUMENT;
		}
		if ((rv = make_inst(&e->m[e->nm], d, spec, where, errbuf, errlen)) != TP_OK) {
			attr_minst_clear(&e->m[e->nm]);
			return rv;
		}
		/* validated either way; only skipped when it cannot run */
		if ((skip_timestamps && d->kind == ATTR_MK_TIMEDECAY) ||
		    (d->kind == ATTR_MK_MARKOV && MARKOV_MISSING && spec == NULL)) {
			attr_minst_clear(&e->m[e->nm]);
			continue;
		}
		if (d->kind == ATTR_MK_MARKOV && MARKOV_MISSING) {
			snprintf(errbuf, errlen, "%s: markov is not built into this engine", where);
			attr_minst_clear(&e->m[e->nm]);
			return TP_UNIMPLEMENTED;
		}
		e->nm++;
	}
	if (req->daily_model != NULL && req->daily_model[0] != '\0') {
		const struct attr_mdesc *d = attr_model_lookup(req->daily_model);

		if (d == NULL) {
			snprintf(errbuf, errlen, "daily_model: unknown model \"%s\"",
			         req->daily_model);
			return TP_INVALID_ARGUMENT;
		}
		if (d->weights == NULL) {
			snprintf(errbuf, errlen,
			         "daily_model: %s credits the whole table, not single paths; "
			         "use a per-path model",
			         d->name);
			return TP_INVALID_ARGUMENT;
		}
		if ((rv = make_inst(&e->daily, d, NULL, "daily_model", errbuf, errlen)) != TP_OK)
			return rv;
		if ((e->daily_name = strdup(d->name)) == NULL)
			return attr_oom(errbuf, errlen);
		e->has_daily = !skip_timestamps;
	}
	return TP_OK;
}
