/*
 * render: AttributeResponse and PathsResponse as an aligned table for people, and as CSV
 * (RFC 4180) or JSON (SPEC §6) for machines.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "touchpoint/touchpoint.h"
#include "attribution/internal.h"

typedef Touchpoint__V1__AttributeResponse AResp;
typedef Touchpoint__V1__ModelResult MRes;

void
attr_format_number(char *buf, size_t len, double v)
{
	snprintf(buf, len, "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, len, "%.17g", v);
}

static void
json_num(FILE *out, double v)
{
	char buf[40];

	if (!isfinite(v)) {
		fputs("null", out);
		return;
	}
	attr_format_number(buf, sizeof(buf), v);
	fputs(buf, out);
}

void
attr_json_string(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	putc('"', out);
	for (; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fprintf(out, "\\u%04x", *p);
			else
				putc(*p, out);
		}
	}
	putc('"', out);
}

static void
csv_str(FILE *out, const char *s)
{
	const char *p;

	s = s ? s : "";
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, out);
		return;
	}
	putc('"', out);
	for (p = s; *p; p++) {
		if (*p == '"')
			putc('"', out);
		putc(*p, out);
	}
	putc('"', out);
}

/* An empty field where JSON says null: a sum past DBL_MAX, a ratio of nothing. */
static void
csv_num(FILE *out, double v)
{
	char buf[40];

	if (!isfinite(v))
		return;
	attr_format_number(buf, sizeof(buf), v);
	fputs(buf, out);
}

/* RFC 3339 in UTC, with microseconds only when there are some. */
static void
json_time(FILE *out, int64_t us)
{
	int64_t s = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
	int64_t frac = us - s * 1000000, days = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
	int64_t sod = s - days * 86400;
	int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
	int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = yoe + era * 400 + (m <= 2);

	fprintf(out, "\"%04lld-%02lld-%02lldT%02lld:%02lld:%02lld", (long long)y, (long long)m,
	        (long long)d, (long long)(sod / 3600), (long long)(sod / 60 % 60),
	        (long long)(sod % 60));
	if (frac != 0)
		fprintf(out, ".%06lld", (long long)frac);
	fputs("Z\"", out);
}

static void
json_totals(FILE *out, const Touchpoint__V1__Totals *t)
{
	Touchpoint__V1__Totals zero = TOUCHPOINT__V1__TOTALS__INIT;

	if (t == NULL)
		t = &zero;
	fputs("{\"conversions\": ", out);
	json_num(out, t->conversions);
	fputs(", \"value\": ", out);
	json_num(out, t->value);
	fprintf(out, ", \"converting_paths\": %" PRIu64 ", \"null_paths\": %" PRIu64,
	        t->converting_paths, t->null_paths);
	fputs(", \"unattributed_conversions\": ", out);
	json_num(out, t->unattributed_conversions);
	fputs(", \"unattributed_value\": ", out);
	json_num(out, t->unattributed_value);
	putc('}', out);
}

/* A numeric parameter prints as a JSON number; a text one ("007") stays a string. */
static void
json_param(FILE *out, const char *model, const char *key, const char *v)
{
	char *end;
	double x;

	if (v != NULL && *v != '\0' && !attr_param_is_text(model, key) &&
	    strspn(v, "0123456789+-.eE") == strlen(v)) {
		x = strtod(v, &end);
		if (*end == '\0' && isfinite(x)) {
			json_num(out, x);
			return;
		}
	}
	attr_json_string(out, v);
}

static void
json_models(FILE *out, MRes *const *models, size_t n)
{
	size_t i, j;

	putc('[', out);
	for (i = 0; i < n; i++) {
		const MRes *m = models[i];

		fputs(i ? ", {\"model\": " : "{\"model\": ", out);
		attr_json_string(out, m->model);
		fputs(", \"params\": {", out);
		for (j = 0; j < m->n_params; j++) {
			fputs(j ? ", " : "", out);
			attr_json_string(out, m->params[j]->key);
			fputs(": ", out);
			json_param(out, m->model, m->params[j]->key, m->params[j]->value);
		}
		fputs("}, \"channels\": [", out);
		for (j = 0; j < m->n_channels; j++) {
			const Touchpoint__V1__ChannelCredit *c = m->channels[j];

			fputs(j ? ", {\"channel\": " : "{\"channel\": ", out);
			attr_json_string(out, c->channel);
			fputs(", \"conversions\": ", out);
			json_num(out, c->conversions);
			fputs(", \"value\": ", out);
			json_num(out, c->value);
			fputs(", \"share\": ", out);
			json_num(out, c->share);
			if (c->removal_effect_present_case ==
			    TOUCHPOINT__V1__CHANNEL_CREDIT__REMOVAL_EFFECT_PRESENT_REMOVAL_EFFECT) {
				fputs(", \"removal_effect\": ", out);
				json_num(out, c->removal_effect);
			}
			putc('}', out);
		}
		putc(']', out);
		if (m->n_transitions > 0) {
			fputs(", \"transitions\": [", out);
			for (j = 0; j < m->n_transitions; j++) {
				fputs(j ? ", {\"from\": " : "{\"from\": ", out);
				attr_json_string(out, m->transitions[j]->from);
				fputs(", \"to\": ", out);
				attr_json_string(out, m->transitions[j]->to);
				fputs(", \"probability\": ", out);
				json_num(out, m->transitions[j]->probability);
				putc('}', out);
			}
			putc(']', out);
		}
		if (m->estimated)
			fputs(", \"estimated\": true", out);
		if (m->note != NULL && m->note[0] != '\0') {
			fputs(", \"note\": ", out);
			attr_json_string(out, m->note);
		}
		putc('}', out);
	}
	putc(']', out);
}

static void
json_attribute(FILE *out, const AResp *r)
{
	size_t i;

	fprintf(out, "{\"lookback_s\": %" PRId64 ", \"from\": ", r->lookback_s);
	if (r->from_case == TOUCHPOINT__V1__ATTRIBUTE_RESPONSE__FROM_FROM_US)
		json_time(out, r->from_us);
	else
		fputs("null", out);
	fputs(", \"to\": ", out);
	if (r->to_case == TOUCHPOINT__V1__ATTRIBUTE_RESPONSE__TO_TO_US)
		json_time(out, r->to_us);
	else
		fputs("null", out);
	fprintf(out, ", \"repeats\": \"%s\", \"level\": \"%s\"",
	        r->repeats == TOUCHPOINT__V1__REPEATS__REPEATS_COLLAPSE ? "collapse" : "keep",
	        r->level == TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN ? "campaign" : "channel");
	if (r->conversion != NULL && r->conversion[0] != '\0') {
		fputs(", \"conversion\": ", out);
		attr_json_string(out, r->conversion);
	}
	fputs(", \"totals\": ", out);
	json_totals(out, r->totals);
	fputs(", \"models\": ", out);
	json_models(out, r->models, r->n_models);
	if (r->by_trait != NULL && r->by_trait[0] != '\0') {
		fputs(", \"by_trait\": ", out);
		attr_json_string(out, r->by_trait);
		fputs(", \"segments\": [", out);
		for (i = 0; i < r->n_segments; i++) {
			fputs(i ? ", {\"segment\": " : "{\"segment\": ", out);
			attr_json_string(out, r->segments[i]->segment);
			fputs(", \"totals\": ", out);
			json_totals(out, r->segments[i]->totals);
			fputs(", \"models\": ", out);
			json_models(out, r->segments[i]->models, r->segments[i]->n_models);
			putc('}', out);
		}
		putc(']', out);
	}
	if (r->daily_model != NULL && r->daily_model[0] != '\0') {
		fputs(", \"daily_model\": ", out);
		attr_json_string(out, r->daily_model);
		fputs(", \"daily\": [", out);
		for (i = 0; i < r->n_daily; i++) {
			fputs(i ? ", {\"day\": " : "{\"day\": ", out);
			attr_json_string(out, r->daily[i]->day);
			fputs(", \"channel\": ", out);
			attr_json_string(out, r->daily[i]->channel);
			fputs(", \"conversions\": ", out);
			json_num(out, r->daily[i]->conversions);
			fputs(", \"value\": ", out);
			json_num(out, r->daily[i]->value);
			putc('}', out);
		}
		putc(']', out);
	}
	if (r->n_spend > 0) {
		fputs(", \"spend\": [", out);
		for (i = 0; i < r->n_spend; i++) {
			fputs(i ? ", {\"channel\": " : "{\"channel\": ", out);
			attr_json_string(out, r->spend[i]->channel);
			fputs(", \"amount\": ", out);
			json_num(out, r->spend[i]->amount);
			fputs(", \"currency\": ", out);
			attr_json_string(out, r->spend[i]->currency);
			putc('}', out);
		}
		putc(']', out);
	}
	fputs("}\n", out);
}

static void
csv_models(FILE *out, const char *segment, MRes *const *models, size_t n)
{
	size_t i, j;

	for (i = 0; i < n; i++)
		for (j = 0; j < models[i]->n_channels; j++) {
			const Touchpoint__V1__ChannelCredit *c = models[i]->channels[j];

			csv_str(out, segment);
			putc(',', out);
			csv_str(out, models[i]->model);
			putc(',', out);
			csv_str(out, c->channel);
			putc(',', out);
			csv_num(out, c->conversions);
			putc(',', out);
			csv_num(out, c->value);
			putc(',', out);
			csv_num(out, c->share);
			putc(',', out);
			if (c->removal_effect_present_case ==
			    TOUCHPOINT__V1__CHANNEL_CREDIT__REMOVAL_EFFECT_PRESENT_REMOVAL_EFFECT)
				csv_num(out, c->removal_effect);
			fputs("\r\n", out);
		}
}

int
attr_text_width(const char *s)
{
	int w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

void
attr_text_put(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");

	/* A control character (C0, DEL, C1) would move the cursor or retitle the terminal. */
	for (; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			putc('?', out);
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			putc('?', out), p++;
		else
			putc(*p, out);
	}
}

static void
pad(FILE *out, int n)
{
	while (n-- > 0)
		putc(' ', out);
}

/* TP_RESOURCE_EXHAUSTED when its rows cannot be gathered (nothing of the table printed). */
static int
table_models(FILE *out, const Touchpoint__V1__Totals *t, MRes *const *models, size_t n)
{
	const char **rows = NULL;
	size_t nrows = 0, cap = 0, i, j, k;
	int w0 = attr_text_width("channel"), *wc = NULL, rv = TP_OK;
	char buf[64];

	for (i = 0; i < n; i++)
		cap += models[i]->n_channels;
	if (n > 0) {
		rows = calloc(cap ? cap : 1, sizeof(*rows));
		wc = calloc(n, sizeof(*wc));
	}
	if (n > 0 && (rows == NULL || wc == NULL)) {
		rv = TP_RESOURCE_EXHAUSTED;
		goto done;
	}
	/* rows in the first model's order, then what other models add */
	for (i = 0; i < n; i++)
		for (j = 0; j < models[i]->n_channels; j++) {
			const char *ch = models[i]->channels[j]->channel;

			for (k = 0; k < nrows && strcmp(rows[k], ch) != 0; k++)
				;
			if (k == nrows)
				rows[nrows++] = ch;
		}
	for (k = 0; k < nrows; k++)
		if (attr_text_width(rows[k]) > w0)
			w0 = attr_text_width(rows[k]);
	for (i = 0; i < n; i++) {
		wc[i] = attr_text_width(models[i]->model);
		if (wc[i] < 10)
			wc[i] = 10;
	}
	if (n == 0) {
		fputs("(no models)\n", out);
		goto totals;
	}
	fputs("channel", out);
	pad(out, w0 - attr_text_width("channel"));
	for (i = 0; i < n; i++) {
		fputs("  ", out);
		pad(out, wc[i] - attr_text_width(models[i]->model));
		attr_text_put(out, models[i]->model);
	}
	putc('\n', out);
	for (k = 0; k < nrows; k++) {
		attr_text_put(out, rows[k]);
		pad(out, w0 - attr_text_width(rows[k]));
		for (i = 0; i < n; i++) {
			double v = 0;

			for (j = 0; j < models[i]->n_channels; j++)
				if (strcmp(models[i]->channels[j]->channel, rows[k]) == 0)
					v = models[i]->channels[j]->conversions;
			snprintf(buf, sizeof(buf), "%.2f", v);
			fputs("  ", out);
			pad(out, wc[i] - attr_text_width(buf));
			fputs(buf, out);
		}
		putc('\n', out);
	}
	for (i = 0; i < n; i++)
		if (models[i]->note != NULL && models[i]->note[0] != '\0')
			fprintf(out, "note: %s: %s\n", models[i]->model, models[i]->note);
totals:
	if (t != NULL)
		fprintf(out,
		        "conversions %.2f (value %.2f); converting paths %" PRIu64
		        ", null paths %" PRIu64 "; unattributed %.2f (value %.2f)\n",
		        t->conversions, t->value, t->converting_paths, t->null_paths,
		        t->unattributed_conversions, t->unattributed_value);
done:
	free(rows);
	free(wc);
	return rv;
}

int
attr_render_attribute(FILE *out, const Touchpoint__V1__AttributeResponse *r, enum attr_format f)
{
	size_t i;

	if (out == NULL || r == NULL)
		return TP_INVALID_ARGUMENT;
	switch (f) {
	case ATTR_FORMAT_JSON:
		json_attribute(out, r);
		break;
	case ATTR_FORMAT_CSV:
		fputs("segment,model,channel,conversions,value,share,removal_effect\r\n", out);
		csv_models(out, "", r->models, r->n_models);
		for (i = 0; i < r->n_segments; i++)
			csv_models(out, r->segments[i]->segment, r->segments[i]->models,
			           r->segments[i]->n_models);
		break;
	case ATTR_FORMAT_TABLE:
		if (table_models(out, r->totals, r->models, r->n_models) != TP_OK)
			return TP_RESOURCE_EXHAUSTED;
		for (i = 0; i < r->n_segments; i++) {
			putc('\n', out);
			attr_text_put(out, r->by_trait ? r->by_trait : "segment");
			fputs(" = ", out);
			attr_text_put(out, r->segments[i]->segment);
			putc('\n', out);
			if (table_models(out, r->segments[i]->totals, r->segments[i]->models,
			                 r->segments[i]->n_models) != TP_OK)
				return TP_RESOURCE_EXHAUSTED;
		}
		break;
	default:
		return TP_INVALID_ARGUMENT;
	}
	return ferror(out) ? TP_INTERNAL : TP_OK;
}

static int
csv_path(FILE *out, const Touchpoint__V1__PathRow *p)
{
	size_t i, len = 0;
	char *s, *q;

	for (i = 0; i < p->n_channels; i++)
		len += strlen(p->channels[i]) + 3;
	if ((s = malloc(len + 1)) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (q = s, i = 0; i < p->n_channels; i++) {
		size_t l = strlen(p->channels[i]);

		if (i > 0) {
			memcpy(q, " > ", 3);
			q += 3;
		}
		memcpy(q, p->channels[i], l);
		q += l;
	}
	*q = '\0';
	csv_str(out, s);
	free(s);
	return TP_OK;
}

int
attr_render_path_rows(FILE *out, const Touchpoint__V1__PathsResponse *r)
{
	size_t i;

	if (out == NULL || r == NULL)
		return TP_INVALID_ARGUMENT;
	for (i = 0; i < r->n_paths; i++) {
		if (csv_path(out, r->paths[i]) != TP_OK)
			return TP_RESOURCE_EXHAUSTED;
		putc(',', out);
		csv_num(out, r->paths[i]->total_conversions);
		putc(',', out);
		csv_num(out, r->paths[i]->total_conversion_value);
		putc(',', out);
		csv_num(out, r->paths[i]->total_null);
		fputs("\r\n", out);
	}
	return ferror(out) ? TP_INTERNAL : TP_OK;
}

int
attr_render_paths(FILE *out, const Touchpoint__V1__PathsResponse *r, enum attr_format f)
{
	size_t i, j;

	if (out == NULL || r == NULL)
		return TP_INVALID_ARGUMENT;
	switch (f) {
	case ATTR_FORMAT_CSV:
		fputs(ATTR_PATHS_CSV_HEADER "\r\n", out);
		return attr_render_path_rows(out, r);
	case ATTR_FORMAT_JSON:
		fprintf(out, "{\"distinct_paths\": %" PRIu64 ", \"totals\": ", r->distinct_paths);
		json_totals(out, r->totals);
		fputs(", \"paths\": [", out);
		for (i = 0; i < r->n_paths; i++) {
			fputs(i ? ", {\"path\": [" : "{\"path\": [", out);
			for (j = 0; j < r->paths[i]->n_channels; j++) {
				fputs(j ? ", " : "", out);
				attr_json_string(out, r->paths[i]->channels[j]);
			}
			fputs("], \"total_conversions\": ", out);
			json_num(out, r->paths[i]->total_conversions);
			fputs(", \"total_conversion_value\": ", out);
			json_num(out, r->paths[i]->total_conversion_value);
			fputs(", \"total_null\": ", out);
			json_num(out, r->paths[i]->total_null);
			putc('}', out);
		}
		fputs("]}\n", out);
		break;
	case ATTR_FORMAT_TABLE:
		fprintf(out, "%12s %12s %8s  %s\n", "conversions", "value", "nulls", "path");
		for (i = 0; i < r->n_paths; i++) {
			const Touchpoint__V1__PathRow *p = r->paths[i];

			fprintf(out, "%12.2f %12.2f %8.0f  ", p->total_conversions,
			        p->total_conversion_value, p->total_null);
			for (j = 0; j < p->n_channels; j++) {
				fputs(j ? " > " : "", out);
				attr_text_put(out, p->channels[j]);
			}
			putc('\n', out);
		}
		fprintf(out, "%" PRIu64 " distinct paths", r->distinct_paths);
		if (r->n_paths < r->distinct_paths)
			fprintf(out, " (top %zu shown)", r->n_paths);
		putc('\n', out);
		break;
	default:
		return TP_INVALID_ARGUMENT;
	}
	return ferror(out) ? TP_INTERNAL : TP_OK;
}
