/*
 * html: index.html — window, totals, every chart (PNG beside it, SVG linked), and the
 * credit tables per model side by side. No scripts, no network: it reads from a file://.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "touchpoint/touchpoint.h"
#include "internal.h"

#define HTML_MAX_ROWS 200 /* table rows; attribution.csv has them all */

static const char css[] =
    "body{font-family:'DejaVu Sans',Verdana,sans-serif;margin:2em auto;max-width:1100px;"
    "color:#222;line-height:1.4}\n"
    "h1{margin-bottom:.2em}h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;"
    "margin-top:2em}\n"
    ".window{color:#555}\n"
    "table{border-collapse:collapse;margin:1em 0;font-size:.9em}\n"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}\n"
    "th{background:#f3f3f3}td.name,th.name{text-align:left;max-width:28em;"
    "overflow-wrap:anywhere}\n"
    "td.hi{background:#CFE3F3;font-weight:bold}td.lo{background:#FBE3C8}\n"
    "figure{margin:1.5em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}\n"
    "figcaption{font-size:.9em;color:#444}\n"
    ".missing{background:#FBE3C8;border-left:4px solid #D55E00;padding:.5em 1em}\n"
    ".note{color:#555;font-size:.9em}\n"
    "nav a{margin-right:1em}\n";

/* Writes raw text, cleaned (valid UTF-8, visible control characters) and escaped. */
static void
html_text(FILE *f, const char *raw)
{
	char buf[REPORT_NAME_MAX];
	const char *p;

	report_clean(buf, sizeof(buf), raw, 0, 0);
	for (p = buf; *p != '\0'; p++) {
		switch (*p) {
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&#39;", f);
			break;
		default:
			fputc(*p, f);
		}
	}
}

static void
html_num(FILE *f, double v, const char *fmt)
{
	if (isfinite(v))
		fprintf(f, fmt, v);
	else
		fputs("–", f);
}

/* One table cell: an undefined number (a CPA without conversions) is a dash in it. */
static void
html_td(FILE *f, double v, const char *fmt)
{
	fputs("<td>", f);
	html_num(f, v, fmt);
	fputs("</td>", f);
}

static const struct report_chart *
chart_find(const struct report_ctx *c, const char *id)
{
	size_t i;

	for (i = 0; i < c->ncharts; i++)
		if (strcmp(c->charts[i].id, id) == 0)
			return &c->charts[i];
	return NULL;
}

static void
html_chart(FILE *f, const struct report_chart *ch)
{
	if (ch == NULL)
		return;
	if (ch->omitted) {
		fprintf(f, "<p class=\"note\">Chart <code>%s</code> is left out (", ch->id);
		html_text(f, ch->title);
		fputs("): nothing to show, ", f);
		html_text(f, ch->err);
		fputs(".</p>\n", f);
		return;
	}
	if (!ch->ok) {
		fprintf(f, "<p class=\"missing\">Chart <code>%s</code> is missing (", ch->id);
		html_text(f, ch->title);
		fputs("): ", f);
		html_text(f, ch->err[0] != '\0' ? ch->err : "not drawn");
		fputs("</p>\n", f);
		return;
	}
	fprintf(f, "<figure id=\"%s\"><img src=\"%s.png\" width=\"%d\" height=\"%d\" alt=\"",
	        ch->id, ch->id, ch->width, ch->height);
	html_text(f, ch->title);
	fputs("\">\n<figcaption>", f);
	html_text(f, ch->title);
	fprintf(f, " — <a href=\"%s.svg\">SVG</a></figcaption></figure>\n", ch->id);
}

static void
html_totals(FILE *f, const Touchpoint__V1__Totals *t)
{
	if (t == NULL) {
		fputs("<p class=\"note\">No totals in the response.</p>\n", f);
		return;
	}
	fputs("<table><tr><th>conversions</th><th>value</th><th>converting paths</th>"
	      "<th>non-converting paths</th><th>unattributed conversions</th>"
	      "<th>unattributed value</th></tr>\n<tr>",
	      f);
	html_td(f, t->conversions, "%.10g");
	html_td(f, t->value, "%.2f");
	fprintf(f, "<td>%llu</td><td>%llu</td>", (unsigned long long)t->converting_paths,
	        (unsigned long long)t->null_paths);
	html_td(f, t->unattributed_conversions, "%.10g");
	html_td(f, t->unattributed_value, "%.2f");
	fputs("</tr></table>\n", f);
}

static int
is_participation(const Touchpoint__V1__ModelResult *m)
{
	return strcmp(m->model, "participation") == 0;
}

static void
html_model_head(FILE *f, const struct report_grid *g, const char *extra)
{
	char lab[256];
	size_t j;

	fputs("<tr><th class=\"name\">channel</th>", f);
	for (j = 0; j < g->nmod; j++) {
		report_model_label(lab, sizeof(lab), g->mod, g->nmod, j);
		fputs("<th>", f);
		html_text(f, lab);
		fputs("</th>", f);
	}
	if (extra != NULL)
		fprintf(f, "<th>%s</th>", extra);
	fputs("</tr>\n", f);
}

static void
html_more(FILE *f, size_t n)
{
	if (n > HTML_MAX_ROWS)
		fprintf(f,
		        "<p class=\"note\">The first %d of %zu rows; attribution.csv has them "
		        "all.</p>\n",
		        HTML_MAX_ROWS, n);
}

/*
 * Shares side by side, the largest and smallest share of each row marked and the spread
 * (max − min) drawn as a bar, so that where the models disagree stands out. participation
 * is left out of the spread: its shares sum past 100 % by design.
 */
static void
html_share_table(FILE *f, const struct report_grid *g)
{
	size_t i, j, n = g->nch > HTML_MAX_ROWS ? HTML_MAX_ROWS : g->nch;
	double lo, hi, v, spread, maxspread = 0;

	for (i = 0; i < g->nch; i++) {
		lo = INFINITY, hi = -INFINITY;
		for (j = 0; j < g->nmod; j++) {
			v = g->share[i * g->nmod + j];
			if (is_participation(g->mod[j]) || !isfinite(v))
				continue;
			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
		}
		if (hi >= lo && hi - lo > maxspread)
			maxspread = hi - lo;
	}
	fputs("<table class=\"share\">\n", f);
	html_model_head(f, g, "spread (max − min)");
	for (i = 0; i < n; i++) {
		lo = INFINITY, hi = -INFINITY;
		for (j = 0; j < g->nmod; j++) {
			v = g->share[i * g->nmod + j];
			if (is_participation(g->mod[j]) || !isfinite(v))
				continue;
			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
		}
		fputs("<tr><td class=\"name\">", f);
		html_text(f, g->ch[i]);
		fputs("</td>", f);
		for (j = 0; j < g->nmod; j++) {
			v = g->share[i * g->nmod + j];
			if (!isfinite(v)) {
				fputs("<td>–</td>", f);
				continue;
			}
			fprintf(f, "<td%s>%.1f%%</td>",
			        is_participation(g->mod[j]) || hi <= lo ? ""
			        : v == hi                               ? " class=\"hi\""
			        : v == lo                               ? " class=\"lo\""
			                                                : "",
			        v * 100);
		}
		spread = hi >= lo ? hi - lo : NAN;
		if (isfinite(spread))
			fprintf(f,
			        "<td style=\"background:linear-gradient(to right,#E69F00 %.0f%%,"
			        "transparent %.0f%%)\">%.1f pp</td>",
			        maxspread > 0 ? spread / maxspread * 100 : 0,
			        maxspread > 0 ? spread / maxspread * 100 : 0, spread * 100);
		else
			fputs("<td>–</td>", f);
		fputs("</tr>\n", f);
	}
	fputs("</table>\n", f);
	fputs("<p class=\"note\">Per row, the largest share is <span style=\"background:#CFE3F3\">"
	      "blue</span> and the smallest <span style=\"background:#FBE3C8\">orange</span>; "
	      "the spread is in percentage points (participation left out: its shares add up "
	      "to more than 100 %).</p>\n",
	      f);
	html_more(f, g->nch);
}

static void
html_value_table(FILE *f, const struct report_grid *g, const double *vals, const char *fmt)
{
	size_t i, j, n = g->nch > HTML_MAX_ROWS ? HTML_MAX_ROWS : g->nch;

	fputs("<table>\n", f);
	html_model_head(f, g, NULL);
	for (i = 0; i < n; i++) {
		fputs("<tr><td class=\"name\">", f);
		html_text(f, g->ch[i]);
		fputs("</td>", f);
		for (j = 0; j < g->nmod; j++) {
			fputs("<td>", f);
			html_num(f, vals[i * g->nmod + j], fmt);
			fputs("</td>", f);
		}
		fputs("</tr>\n", f);
	}
	fputs("</table>\n", f);
	html_more(f, g->nch);
}

static void
html_notes(FILE *f, const struct report_grid *g)
{
	char lab[256];
	size_t j;

	for (j = 0; j < g->nmod; j++) {
		const Touchpoint__V1__ModelResult *m = g->mod[j];

		if (!m->estimated && (m->note == NULL || m->note[0] == '\0'))
			continue;
		report_model_label(lab, sizeof(lab), g->mod, g->nmod, j);
		fputs("<p class=\"note\"><b>", f);
		html_text(f, lab);
		fputs("</b>: ", f);
		if (m->estimated)
			fputs("estimated from a sample of permutations. ", f);
		if (m->note != NULL)
			html_text(f, m->note);
		fputs("</p>\n", f);
	}
}

static void
html_paths(FILE *f, const Touchpoint__V1__PathsResponse *p)
{
	size_t i, j, n = p->n_paths > REPORT_TOP_PATHS ? REPORT_TOP_PATHS : p->n_paths;

	if (n == 0)
		return;
	fprintf(f,
	        "<h3>Paths</h3>\n<p class=\"note\">%llu distinct paths; the first %zu of the "
	        "path table as the daemon ranked them.</p>\n<table>\n"
	        "<tr><th class=\"name\">path</th><th>conversions</th><th>value</th>"
	        "<th>non-converting</th></tr>\n",
	        (unsigned long long)p->distinct_paths, n);
	for (i = 0; i < n; i++) {
		fputs("<tr><td class=\"name\">", f);
		for (j = 0; j < p->paths[i]->n_channels; j++) {
			if (j > 0)
				fputs(" &gt; ", f);
			html_text(f, p->paths[i]->channels[j]);
		}
		fputs("</td>", f);
		html_td(f, p->paths[i]->total_conversions, "%.10g");
		html_td(f, p->paths[i]->total_conversion_value, "%.2f");
		html_td(f, p->paths[i]->total_null, "%.10g");
		fputs("</tr>\n", f);
	}
	fputs("</table>\n", f);
}

static void
html_spend(FILE *f, const struct report_ctx *c)
{
	const Touchpoint__V1__AttributeResponse *a = c->attr;
	const struct report_grid *g = &c->main;
	size_t i, j, gi, n = a->n_spend > HTML_MAX_ROWS ? HTML_MAX_ROWS : a->n_spend;
	char lab[256];

	fputs("<table>\n<tr><th class=\"name\">channel</th><th>cost</th><th>currency</th>", f);
	for (j = 0; j < g->nmod; j++) {
		report_model_label(lab, sizeof(lab), g->mod, g->nmod, j);
		fputs("<th>CPA ", f);
		html_text(f, lab);
		fputs("</th>", f);
	}
	for (j = 0; j < g->nmod; j++) {
		report_model_label(lab, sizeof(lab), g->mod, g->nmod, j);
		fputs("<th>ROAS ", f);
		html_text(f, lab);
		fputs("</th>", f);
	}
	fputs("</tr>\n", f);
	for (i = 0; i < n; i++) {
		const Touchpoint__V1__ChannelSpend *s = a->spend[i];

		for (gi = 0; gi < g->nch && strcmp(g->ch[gi], s->channel) != 0; gi++)
			;
		fputs("<tr><td class=\"name\">", f);
		html_text(f, s->channel);
		fputs("</td>", f);
		html_td(f, s->amount, "%.2f");
		fputs("<td>", f);
		if (s->currency != NULL && s->currency[0] != '\0')
			html_text(f, s->currency);
		fputs("</td>", f);
		/* Not in the grid: no model credited the channel, 0 conversions and value. */
		for (j = 0; j < g->nmod; j++)
			html_td(f,
			        report_cpa(s->amount, gi < g->nch ? g->conv[gi * g->nmod + j] : 0),
			        "%.2f");
		for (j = 0; j < g->nmod; j++)
			html_td(
			    f, report_roas(s->amount, gi < g->nch ? g->value[gi * g->nmod + j] : 0),
			    "%.2f");
		fputs("</tr>\n", f);
	}
	fputs("</table>\n<p class=\"note\">CPA = cost / attributed conversions; ROAS = "
	      "attributed value / cost, per model.</p>\n",
	      f);
	html_more(f, a->n_spend);
}

static void
html_section_models(FILE *f, const struct report_grid *g)
{
	if (g->nmod == 0 || g->nch == 0) {
		fputs("<p class=\"note\">No model credited any channel.</p>\n", f);
		return;
	}
	fputs("<h3>Share of attributed conversions</h3>\n", f);
	html_share_table(f, g);
	fputs("<h3>Attributed conversions</h3>\n", f);
	html_value_table(f, g, g->conv, "%.2f");
	fputs("<h3>Attributed value</h3>\n", f);
	html_value_table(f, g, g->value, "%.2f");
	html_notes(f, g);
}

static void
html_window(FILE *f, const struct report_ctx *c)
{
	const Touchpoint__V1__AttributeResponse *a = c->attr;
	char t[64];
	time_t now = time(NULL);
	struct tm tm;

	fputs("<table>\n<tr><th class=\"name\">lookback</th><td class=\"name\">", f);
	if (a->lookback_s == 0)
		fputs("unlimited", f);
	else
		fprintf(f, "%lld s (%.4g days)", (long long)a->lookback_s,
		        (double)a->lookback_s / 86400);
	fputs("</td></tr>\n<tr><th class=\"name\">from (inclusive)</th><td class=\"name\">", f);
	if (a->from_case == TOUCHPOINT__V1__ATTRIBUTE_RESPONSE__FROM_FROM_US) {
		report_time(t, sizeof(t), a->from_us);
		html_text(f, t);
	} else {
		fputs("the first event", f);
	}
	fputs("</td></tr>\n", f);
	/* An exclusive bound only when there is one: without it, the last event is in. */
	if (a->to_case == TOUCHPOINT__V1__ATTRIBUTE_RESPONSE__TO_TO_US) {
		report_time(t, sizeof(t), a->to_us);
		fputs("<tr><th class=\"name\">to (exclusive)</th><td class=\"name\">", f);
		html_text(f, t);
	} else {
		fputs("<tr><th class=\"name\">to</th><td class=\"name\">after the last event", f);
	}
	fprintf(f,
	        "</td></tr>\n<tr><th class=\"name\">level</th><td class=\"name\">%s</td></tr>\n"
	        "<tr><th class=\"name\">repeats</th><td class=\"name\">%s</td></tr>\n",
	        a->level == TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN ? "campaign" : "channel",
	        a->repeats == TOUCHPOINT__V1__REPEATS__REPEATS_COLLAPSE ? "collapse" : "keep");
	fputs("<tr><th class=\"name\">conversion</th><td class=\"name\">", f);
	if (a->conversion != NULL && a->conversion[0] != '\0')
		html_text(f, a->conversion);
	else
		fputs("all", f);
	fputs("</td></tr>\n", f);
	if (a->by_trait != NULL && a->by_trait[0] != '\0') {
		fputs("<tr><th class=\"name\">segments by trait</th><td class=\"name\">", f);
		html_text(f, a->by_trait);
		fputs("</td></tr>\n", f);
	}
	if (a->daily_model != NULL && a->daily_model[0] != '\0') {
		fputs("<tr><th class=\"name\">over time, under</th><td class=\"name\">", f);
		html_text(f, a->daily_model);
		fputs("</td></tr>\n", f);
	}
	if (gmtime_r(&now, &tm) != NULL && strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
		fprintf(f, "<tr><th class=\"name\">generated</th><td class=\"name\">%s</td></tr>\n",
		        t);
	fputs("</table>\n", f);
}

int
report_html(const struct report_ctx *c, FILE *f)
{
	const Touchpoint__V1__AttributeResponse *a = c->attr;
	static const char *const over_time[] = { "daily_conversions", "daily_value" };
	static const char *const markov[] = { "markov_transitions", "removal_effects" };
	static const char *const spend[] = { "spend_cost", "spend_cpa", "spend_roas" };
	char id[64];
	size_t i, nmissing = 0, ndrawn = 0;

	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	      "<title>touchpoint attribution report</title>\n<style>\n",
	      f);
	fputs(css, f);
	fputs("</style>\n</head>\n<body>\n<h1>Attribution report</h1>\n<p class=\"window\">", f);
	html_text(f, c->window);
	fputs("</p>\n", f);

	/* Charts left out for having nothing to show are not missing: a note says why. */
	for (i = 0; i < c->ncharts; i++) {
		ndrawn += !c->charts[i].omitted;
		nmissing += !c->charts[i].ok && !c->charts[i].omitted;
	}
	if (nmissing > 0) {
		fprintf(f,
		        "<div class=\"missing\"><p><b>%zu of %zu charts are missing:</b></p><ul>\n",
		        nmissing, ndrawn);
		for (i = 0; i < c->ncharts; i++) {
			if (c->charts[i].ok || c->charts[i].omitted)
				continue;
			fprintf(f, "<li><code>%s</code>: ", c->charts[i].id);
			html_text(f, c->charts[i].err[0] != '\0' ? c->charts[i].err : "not drawn");
			fputs("</li>\n", f);
		}
		fputs("</ul></div>\n", f);
	}

	fputs("<p>Data: <a href=\"attribution.csv\">attribution.csv</a> · "
	      "<a href=\"attribution.json\">attribution.json</a>",
	      f);
	if (c->pdf_ok)
		fputs(" · <a href=\"report.pdf\">report.pdf</a> (every chart)", f);
	fputs("</p>\n", f);
	if (c->o->pdf && !c->pdf_ok) {
		fputs("<p class=\"missing\">report.pdf is missing: ", f);
		html_text(f, c->pdf_err[0] != '\0' ? c->pdf_err : "not drawn");
		fputs("</p>\n", f);
	}

	fputs("<h2>Window and filters</h2>\n", f);
	html_window(f, c);
	fputs("<h2>Totals</h2>\n", f);
	html_totals(f, a->totals);

	fputs("<h2>Models compared</h2>\n", f);
	html_chart(f, chart_find(c, "model_comparison"));
	html_chart(f, chart_find(c, "value_by_channel"));
	html_section_models(f, &c->main);

	if (chart_find(c, over_time[0]) != NULL) {
		fputs("<h2>Over time</h2>\n", f);
		for (i = 0; i < 2; i++)
			html_chart(f, chart_find(c, over_time[i]));
	}
	if (c->paths != NULL && c->paths->n_paths > 0) {
		fputs("<h2>Paths</h2>\n", f);
		html_chart(f, chart_find(c, "path_length"));
		html_chart(f, chart_find(c, "top_paths"));
		html_paths(f, c->paths);
	}
	if (chart_find(c, markov[0]) != NULL || chart_find(c, markov[1]) != NULL) {
		fputs("<h2>Markov chain</h2>\n", f);
		for (i = 0; i < 2; i++)
			html_chart(f, chart_find(c, markov[i]));
		if (c->main.any_re) {
			fputs("<h3>Removal effects</h3>\n", f);
			html_value_table(f, &c->main, c->main.re, "%.4f");
		}
	}
	if (a->n_spend > 0) {
		fputs("<h2>Spend</h2>\n", f);
		for (i = 0; i < 3; i++)
			html_chart(f, chart_find(c, spend[i]));
		html_spend(f, c);
	}
	if (c->nseg > 0) {
		fputs("<h2>Segments by ", f);
		html_text(f, a->by_trait);
		fputs("</h2>\n", f);
		if (a->n_segments > c->nseg)
			fprintf(
			    f,
			    "<p class=\"note\">The %zu segments with the most conversions of %zu; "
			    "attribution.json has them all.</p>\n",
			    c->nseg, a->n_segments);
		for (i = 0; i < c->nseg; i++) {
			const Touchpoint__V1__Segment *s = a->segments[c->seg_index[i]];

			fputs("<h3>", f);
			html_text(f, a->by_trait);
			fputs(" = ", f);
			html_text(f, s->segment);
			fputs("</h3>\n", f);
			html_totals(f, s->totals);
			snprintf(id, sizeof(id), "segment_%zu_model_comparison", i + 1);
			html_chart(f, chart_find(c, id));
			if (c->seg[i].nmod > 0 && c->seg[i].nch > 0)
				html_share_table(f, &c->seg[i]);
			else
				fputs("<p class=\"note\">No model credited any channel.</p>\n", f);
		}
	}
	fputs("<p class=\"note\">Made by touchpoint " TP_VERSION
	      ". Charts drawn by gnuplot; names of channels are shown as sent, with control "
	      "characters made visible.</p>\n</body>\n</html>\n",
	      f);
	return ferror(f) ? TP_INTERNAL : TP_OK;
}
