/*
 * The report's private parts shared by report.c (directory, text helpers, credit grid),
 * charts.c (gnuplot) and html.c (index.html).
 */
#ifndef TP_REPORT_INTERNAL_H
#define TP_REPORT_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "report.h"

/* Bounds that keep every chart readable and every buffer finite. */
#define REPORT_MAX_BARS     15 /* channels per bar chart; the rest become "(N others)" */
#define REPORT_MAX_STACKS   7  /* channels stacked over time; the rest "(N others)" */
#define REPORT_MAX_SEGMENTS 50 /* segments drawn and tabulated, by conversions */
#define REPORT_MAX_STATES   30 /* rows and columns of the Markov heat map */
#define REPORT_TOP_PATHS    20
#define REPORT_MAX_BUCKETS  366  /* time buckets (days, or n-day groups beyond a year) */
#define REPORT_NAME_MAX     1024 /* bytes of a cleaned name, ellipsis included */

/* One chart: file stem, what it shows, where it goes, and whether it was drawn. */
struct report_chart {
	char id[64];     /* file stem: ID.png, ID.svg */
	char title[512]; /* cleaned UTF-8 (not escaped) */
	int segment;     /* -1: main section; else index into attr->segments */
	int width, height;
	int ok;
	int omitted;   /* nothing to show (every value 0 or undefined): not drawn, err says why */
	char err[256]; /* why it failed, or why it was left out */
	char *body;    /* the gnuplot commands (constants and numbers only) */
};

/*
 * Channels × models of one section (the whole response or one segment), channels sorted
 * by mean share over the models, descending. Values are NAN where a model did not credit
 * the channel.
 */
struct report_grid {
	size_t nch, nmod;
	const char **ch; /* borrowed from the response */
	const Touchpoint__V1__ModelResult **mod;
	double *share, *conv, *value, *re; /* [channel * nmod + model] */
	int any_re;
};

struct report_ctx {
	const Touchpoint__V1__AttributeResponse *attr;
	const Touchpoint__V1__PathsResponse *paths;
	const struct report_options *o;
	char dir[4096]; /* the temporary directory */
	struct report_grid main;
	struct report_grid *seg; /* nseg grids, for the segments drawn */
	size_t nseg;
	size_t *seg_index; /* nseg indexes into attr->segments, by conversions */
	char window[512];  /* "lookback 30 d · from … · level channel · …" cleaned */
	struct report_chart *charts;
	size_t ncharts, capcharts;
	int pdf_ok;
	char pdf_err[256];
	int csv_ok, json_ok;
};

/*
 * Copies src into dst as valid UTF-8 for display: a tab becomes "⇥", a line break "↵",
 * other control characters and invalid bytes U+FFFD; an empty name "(empty)"; a space at
 * either end "␣" (U+2423), so that " ", "  " and " x" are visible and distinct. At most
 * maxcp code points (0: no limit), the last one an ellipsis when cut. With gnuplot set, a
 * double quote becomes the byte 0x01 and a backslash 0x03, which the chart scripts turn
 * back (tp_q): gnuplot's data files have no escape for a quote and read backslash-n in a
 * field as a line break. dst always ends in NUL.
 */
void report_clean(char *dst, size_t dstlen, const char *src, size_t maxcp, int gnuplot);

/* Model label for legends and tables: the name, plus its parameters when ambiguous. */
void report_model_label(char *dst, size_t dstlen, const Touchpoint__V1__ModelResult *const *mods,
                        size_t nmod, size_t i);

int report_grid_build(struct report_grid *g, Touchpoint__V1__ModelResult *const *mods, size_t nmod);
void report_grid_free(struct report_grid *g);

/*
 * CPA (cost / attributed conversions) and ROAS (attributed value / cost) as every chart and
 * table shows them: a model that did not credit a channel (NAN in the grid, or a channel
 * with spend but not in the grid) attributed 0 to it. CPA is undefined (NAN) without
 * conversions, ROAS only without cost.
 */
double report_cpa(double cost, double conv);
double report_roas(double cost, double value);

/* Formats a µs timestamp as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC). */
void report_time(char *dst, size_t dstlen, int64_t us);

/* charts.c: plans, writes and draws every chart; fills c->charts. Returns TP_OK or the
 * first chart failure (message in errbuf); other charts are still attempted. */
int report_charts(struct report_ctx *c, char *errbuf, size_t errlen);
void report_charts_free(struct report_ctx *c);

/* html.c: index.html into f. Returns TP_OK or TP_INTERNAL on a write error. */
int report_html(const struct report_ctx *c, FILE *f);

#endif /* TP_REPORT_INTERNAL_H */
