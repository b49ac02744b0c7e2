/*
 * charts: every chart of the report as data files plus a gnuplot script, drawn by a gnuplot
 * child process into ID.png and ID.svg (and all of them into report.pdf on request).
 *
 * Safety: gnuplot's command language expands backquotes and runs system(), so the scripts
 * written here contain only constants of this file and numbers. Every name, title and
 * label travels in tab-separated data files (cleaned by report_clean: no tabs, newlines or
 * control characters; '"' and '\\' carried as 0x01 and 0x03 and turned back by tp_q; 0x02,
 * which never occurs, as the comment character so that '#' is text; spaces at either end
 * as "␣", which strcol() would strip) and is read with strcol()/xtic()/ytic() or stats into
 * string variables, which gnuplot never re-parses. No missing-data marker is set: a field
 * equal to it reads as empty through strcol(), so a channel named "NaN" lost its label;
 * an undefined number is written as NaN, which gnuplot skips as undefined.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "touchpoint/touchpoint.h"
#include "internal.h"

extern char **environ;

#define GP_TIMEOUT_S 60
#define LABEL_CP     32 /* code points of an axis label before the ellipsis */
#define PATH_CP      56

/*
 * Okabe-Ito (up to 8 series) and Paul Tol's muted scheme (9 or 10): colour-blind safe. The
 * muted scheme's tenth, pale grey #DDDDDD, is its colour for bad data and nearly invisible
 * on white; #661100 from Tol's 12-colour scheme stands in for it.
 */
static const char *const okabe_ito[] = { "#0072B2", "#E69F00", "#009E73", "#CC79A7",
	                                 "#56B4E9", "#D55E00", "#F0E442", "#000000" };
static const char *const tol_muted[] = { "#332288", "#88CCEE", "#44AA99", "#117733", "#999933",
	                                 "#DDCC77", "#CC6677", "#882255", "#AA4499", "#661100" };
#define OTHER_COLOUR "#BBBBBB"

/* A rows × series table of numbers, names cleaned for gnuplot. */
struct table {
	size_t nrow, ncol;
	char **row, **col;
	double *v; /* [row * ncol + col], NAN: missing */
};

struct gp {
	char path[4096]; /* resolved gnuplot executable, an absolute path */
	char **envp;
	int found;
};

static int
table_new(struct table *t, size_t nrow, size_t ncol)
{
	size_t i;

	memset(t, 0, sizeof(*t));
	t->nrow = nrow;
	t->ncol = ncol;
	if ((t->row = calloc(nrow + 1, sizeof(*t->row))) == NULL ||
	    (t->col = calloc(ncol + 1, sizeof(*t->col))) == NULL ||
	    (t->v = malloc((nrow * ncol + 1) * sizeof(*t->v))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (i = 0; i < nrow * ncol; i++)
		t->v[i] = NAN;
	return TP_OK;
}

static void
table_free(struct table *t)
{
	size_t i;

	for (i = 0; t->row != NULL && i < t->nrow; i++)
		free(t->row[i]);
	for (i = 0; t->col != NULL && i < t->ncol; i++)
		free(t->col[i]);
	free(t->row);
	free(t->col);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

/* Stores a cleaned copy of a name (raw from the response) for a data file. */
static char *
gp_name(const char *raw, size_t maxcp)
{
	char buf[REPORT_NAME_MAX];

	report_clean(buf, sizeof(buf), raw, maxcp, 1);
	return strdup(buf);
}

static FILE *
data_open(struct report_ctx *c, const char *id, const char *suffix)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s%s", c->dir, id, suffix);
	return fopen(path, "w");
}

static void
put_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.10g", v);
	else
		fputs("NaN", f);
}

/* ID.tsv (label, values…) and ID.keys.txt (one series name a line). */
static int
table_write(struct report_ctx *c, const char *id, const struct table *t)
{
	FILE *f;
	size_t i, j;
	int bad;

	if ((f = data_open(c, id, ".tsv")) == NULL)
		return TP_INTERNAL;
	for (i = 0; i < t->nrow; i++) {
		fputs(t->row[i], f);
		for (j = 0; j < t->ncol; j++) {
			fputc('\t', f);
			put_num(f, t->v[i * t->ncol + j]);
		}
		fputc('\n', f);
	}
	bad = ferror(f);
	if (fclose(f) != 0 || bad)
		return TP_INTERNAL;
	if ((f = data_open(c, id, ".keys.txt")) == NULL)
		return TP_INTERNAL;
	for (j = 0; j < t->ncol; j++)
		fprintf(f, "%s\n", t->col[j]);
	bad = ferror(f);
	if (fclose(f) != 0 || bad)
		return TP_INTERNAL;
	return TP_OK;
}

/*
 * ID.txt: title, subtitle, y label and x label on one tab-separated line (stats skips a
 * blank line, but not an empty field) — raw text, cleaned here. The HTML gets the display
 * form of the title.
 */
static int
texts_write(struct report_ctx *c, struct report_chart *ch, const char *title, const char *ylabel,
            const char *xlabel)
{
	char buf[REPORT_NAME_MAX];
	const char *lines[4] = { title, c->window, ylabel, xlabel };
	FILE *f;
	size_t i;
	int bad;

	report_clean(ch->title, sizeof(ch->title), title, 200, 0);
	if ((f = data_open(c, ch->id, ".txt")) == NULL)
		return TP_INTERNAL;
	for (i = 0; i < 4; i++) {
		if (lines[i] != NULL && lines[i][0] != '\0') {
			report_clean(buf, sizeof(buf), lines[i], 200, 1);
			fputs(buf, f);
		}
		fputc(i == 3 ? '\n' : '\t', f);
	}
	bad = ferror(f);
	if (fclose(f) != 0 || bad)
		return TP_INTERNAL;
	return TP_OK;
}

static struct report_chart *
chart_add(struct report_ctx *c, const char *id, int segment)
{
	struct report_chart *ch;
	size_t cap;

	if (c->ncharts == c->capcharts) {
		cap = c->capcharts == 0 ? 16 : c->capcharts * 2;
		ch = realloc(c->charts, cap * sizeof(*ch));
		if (ch == NULL)
			return NULL;
		c->charts = ch;
		c->capcharts = cap;
	}
	ch = &c->charts[c->ncharts++];
	memset(ch, 0, sizeof(*ch));
	snprintf(ch->id, sizeof(ch->id), "%s", id);
	ch->segment = segment;
	ch->width = 1000;
	ch->height = 600;
	return ch;
}

/* 1 when every value of t is 0 or undefined: a chart of it would be empty. */
static int
table_nothing(const struct table *t)
{
	size_t i;

	for (i = 0; i < t->nrow * t->ncol; i++)
		if (isfinite(t->v[i]) && t->v[i] != 0)
			return 0;
	return 1;
}

/* Leaves a chart out (docs/reports.md): kept in the list so index.html says why. */
static void
chart_omit(struct report_chart *ch, const char *title, const char *why)
{
	report_clean(ch->title, sizeof(ch->title), title, 200, 0);
	snprintf(ch->err, sizeof(ch->err), "%s", why);
	ch->omitted = 1;
}

/* The common head of every chart body: settings, texts, series names, colours. */
static void
body_head(FILE *b, const char *id, size_t nkeys, size_t other_key)
{
	size_t i;

	fputs("reset\n"
	      "set encoding utf8\n"
	      "set datafile separator \"\\t\"\n"
	      "set datafile commentschars \"\\002\"\n"
	      "unset datafile missing\n"
	      "tp_b(s) = (tp_j = strstrt(s, \"\\003\")) ? s[1:tp_j-1] . \"\\\\\" . "
	      "tp_b(s[tp_j+1:]) : s\n"
	      "tp_q(s) = (tp_i = strstrt(s, \"\\001\")) ? tp_b(s[1:tp_i-1]) . \"\\\"\" . "
	      "tp_q(s[tp_i+1:]) : tp_b(s)\n"
	      "array tp_t[4]\n",
	      b);
	fprintf(b,
	        "stats '%s.txt' using (tp_t[1] = tp_q(strcol(1)), tp_t[2] = tp_q(strcol(2)), "
	        "tp_t[3] = tp_q(strcol(3)), tp_t[4] = tp_q(strcol(4)), 0) nooutput\n",
	        id);
	if (nkeys > 0) {
		fprintf(b, "array tp_k[%zu]\n", nkeys);
		fprintf(
		    b,
		    "stats '%s.keys.txt' using (tp_k[int($0)+1] = tp_q(strcol(1)), 0) nooutput\n",
		    id);
	}
	fputs("set title tp_t[1] . \"\\n\" . tp_t[2] noenhanced\n"
	      "set ylabel tp_t[3] noenhanced\n"
	      "set xlabel tp_t[4] noenhanced\n"
	      "set border 3 lc rgb \"#444444\"\n"
	      "set tics nomirror\n"
	      "set grid ytics lt 1 lc rgb \"#dddddd\"\n"
	      "set key outside right top vertical Left reverse noenhanced samplen 1.5 spacing 1.2 "
	      "nobox\n"
	      "set style fill solid 0.9 noborder\n",
	      b);
	for (i = 0; i < nkeys; i++)
		fprintf(b, "set linetype %zu lc rgb \"%s\" lw 1.5\n", i + 1,
		        i == other_key ? OTHER_COLOUR
		        : nkeys <= 8   ? okabe_ito[i]
		                       : tol_muted[i % 10]);
}

/* Grouped bars: one group per row, one bar per series. */
static void
body_bars(FILE *b, const char *id, const struct table *t, int percent)
{
	const unsigned char *p;
	size_t ncp = 0;

	body_head(b, id, t->ncol, SIZE_MAX);
	fputs("set style data histograms\n"
	      "set style histogram clustered gap 1\n"
	      "set xtics rotate by 35 right scale 0\n"
	      "set yrange [0:*]\n",
	      b);
	if (percent)
		fputs("set format y \"%g%%\"\n", b);
	if (t->ncol == 1)
		fputs("unset key\n", b);
	/* The first label, rotated, reaches left of the axis: make room so it is not cut. */
	for (p = (const unsigned char *)(t->nrow > 0 ? t->row[0] : ""); *p != '\0'; p++)
		ncp += (*p & 0xc0) != 0x80;
	if (ncp * 4 / 5 > 10)
		fprintf(b, "set lmargin %zu\n", ncp * 4 / 5);
	fprintf(b,
	        "plot for [i=2:%zu] '%s.tsv' using i:xtic(tp_q(strcol(1))) title tp_k[i-1] "
	        "lt i-1\n",
	        t->ncol + 1, id);
}

/* Stacked bars over time; only every step-th row gets a date under it. */
static void
body_stacked(FILE *b, const char *id, const struct table *t, size_t step, size_t other)
{
	body_head(b, id, t->ncol, other);
	fputs("set style data histograms\n"
	      "set style histogram rowstacked\n"
	      "set boxwidth 0.85 relative\n"
	      "set xtics rotate by 35 right scale 0\n"
	      "set yrange [0:*]\n",
	      b);
	fprintf(b,
	        "plot '%s.tsv' using 2:xtic(int($0) %% %zu == 0 ? tp_q(strcol(1)) : \"\") "
	        "title tp_k[1] lt 1",
	        id, step);
	if (t->ncol > 1)
		fprintf(b, ", for [i=3:%zu] '' using i title tp_k[i-1] lt i-1", t->ncol + 1);
	fputc('\n', b);
}

/* Horizontal bars, first row on top, the value written after each bar. */
static void
body_hbars(FILE *b, const char *id, const struct table *t, double xmax)
{
	body_head(b, id, t->ncol, SIZE_MAX);
	fprintf(b,
	        "unset key\n"
	        "set grid noytics xtics lt 1 lc rgb \"#dddddd\"\n"
	        "set ytics scale 0\n"
	        "set yrange [0.4:%zu.6]\n"
	        "set xrange [0:%.10g]\n"
	        "plot '%s.tsv' using ($2/2):(%zu-$0):($2/2):(0.38):ytic(tp_q(strcol(1))) "
	        "with boxxyerror lt 1, \\\n"
	        "  '' using 2:(%zu-$0):(sprintf(\" %%.4g\", $2)) with labels left noenhanced\n",
	        t->nrow, xmax > 0 ? xmax * 1.15 : 1.0, id, t->nrow, t->nrow);
}

/* Closes the memory stream of a chart body and hands the text to the chart. */
static int
body_end(FILE *b, char **bodyp, struct report_chart *ch)
{
	int bad = ferror(b);

	if (fclose(b) != 0 || bad) {
		free(*bodyp);
		*bodyp = NULL;
		return TP_RESOURCE_EXHAUSTED;
	}
	ch->body = *bodyp;
	return TP_OK;
}

/*
 * "TITLE, by model" over several models; over one, which has no legend, "TITLE under
 * MODEL" (the label of mods[which]).
 */
static void
title_models(char *dst, size_t len, const char *title,
             const Touchpoint__V1__ModelResult *const *mods, size_t nmod, size_t which,
             size_t nshown)
{
	char lab[256];
	int n;

	if (nshown != 1) {
		n = snprintf(dst, len, "%s, by model", title);
	} else {
		report_model_label(lab, sizeof(lab), mods, nmod, which);
		n = snprintf(dst, len, "%s under %s", title, lab);
	}
	/* Cut (never with the callers' buffers): texts_write cleans whatever was split. */
	if (n < 0 || (size_t)n >= len)
		dst[len - 1] = '\0';
}

/*
 * The label of the bar or stack that sums the nrest channels after the nshown named ones:
 * "(N others)", made unlike each of those names (name(arg, i)), for a channel may be
 * called anything — "(other)", the label until session 15, merged with its bucket.
 */
static void
other_label(char *dst, size_t len, size_t nrest, const char *(*name)(const void *, size_t),
            const void *arg, size_t nshown)
{
	static const char stars[] = "****************";
	size_t i, k;

	/* nshown names block at most nshown of the nshown + 1 tries: one is free. */
	for (k = 0; k <= nshown && k < sizeof(stars); k++) {
		snprintf(dst, len, "(%zu other%s)%.*s", nrest, nrest == 1 ? "" : "s", (int)k,
		         stars);
		for (i = 0; i < nshown && strcmp(name(arg, i), dst) != 0; i++)
			;
		if (i == nshown)
			return;
	}
}
_Static_assert(REPORT_MAX_BARS < 16 && REPORT_MAX_STACKS < 16, "other_label's stars");

static const char *
grid_name(const void *arg, size_t i)
{
	return ((const struct report_grid *)arg)->ch[i];
}

/*
 * Model comparison and value per channel for one section: the top REPORT_MAX_BARS channels
 * by mean share, the rest summed in "(N others)". what: 0 share, 1 value. title: what is
 * shown, without the models.
 */
static int
chart_models(struct report_ctx *c, const struct report_grid *g, int segment, int what,
             const char *id, const char *title)
{
	struct report_chart *ch;
	struct table t;
	char lab[256], full[1200], named[1100], olab[64] = "";
	size_t nrow, i, j, k, len = 0;
	const double *src = what == 0 ? g->share : g->value;
	double v;
	FILE *b;
	char *body = NULL;
	int rv;

	if (g->nch == 0 || g->nmod == 0)
		return TP_OK;
	nrow = g->nch > REPORT_MAX_BARS ? REPORT_MAX_BARS + 1 : g->nch;
	if ((ch = chart_add(c, id, segment)) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	title_models(named, sizeof(named), title, g->mod, g->nmod, 0, g->nmod);
	title = named;
	if ((rv = table_new(&t, nrow, g->nmod)) != TP_OK)
		goto fail;
	if (g->nch > REPORT_MAX_BARS)
		other_label(olab, sizeof(olab), g->nch - REPORT_MAX_BARS, grid_name, g,
		            REPORT_MAX_BARS);
	for (i = 0; i < nrow; i++) {
		int other = g->nch > REPORT_MAX_BARS && i == REPORT_MAX_BARS;

		if ((t.row[i] = gp_name(other ? olab : g->ch[i], LABEL_CP)) == NULL) {
			rv = TP_RESOURCE_EXHAUSTED;
			goto fail;
		}
		for (j = 0; j < g->nmod; j++) {
			if (!other) {
				v = src[i * g->nmod + j];
			} else {
				for (v = 0, k = i; k < g->nch; k++)
					if (isfinite(src[k * g->nmod + j]))
						v += src[k * g->nmod + j];
			}
			t.v[i * g->nmod + j] = what == 0 && isfinite(v) ? v * 100 : v;
		}
	}
	if (table_nothing(&t)) {
		chart_omit(ch, title,
		           what == 0 ? "no model attributed a conversion to any channel"
		                     : "every attributed value is 0");
		goto fail;
	}
	for (j = 0; j < g->nmod; j++) {
		report_model_label(lab, sizeof(lab), g->mod, g->nmod, j);
		if ((t.col[j] = gp_name(lab, 0)) == NULL) {
			rv = TP_RESOURCE_EXHAUSTED;
			goto fail;
		}
	}
	if (g->nch > REPORT_MAX_BARS)
		snprintf(full, sizeof(full), "%s (top %d of %zu, the rest as %s)", title,
		         REPORT_MAX_BARS, g->nch, olab);
	else
		snprintf(full, sizeof(full), "%s", title);
	if ((rv = table_write(c, id, &t)) != TP_OK ||
	    (rv = texts_write(
	         c, ch, full,
	         what == 0 ? "share of the model's attributed conversions" : "attributed value",
	         c->attr->level == TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN ? "channel/campaign"
	                                                                 : "channel")) != TP_OK)
		goto fail;
	if ((b = open_memstream(&body, &len)) == NULL) {
		rv = TP_RESOURCE_EXHAUSTED;
		goto fail;
	}
	body_bars(b, id, &t, what == 0);
	rv = body_end(b, &body, ch);
fail:
	if (rv != TP_OK && ch->err[0] == '\0')
		snprintf(ch->err, sizeof(ch->err), "could not write its data");
	table_free(&t);
	return rv;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t
days_from_civil(int y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int
parse_day(const char *s, int64_t *day)
{
	int y, n = 0;
	unsigned m, d;

	if (sscanf(s, "%4d-%2u-%2u%n", &y, &m, &d, &n) != 3 || n != 10 || s[10] != '\0' || m < 1 ||
	    m > 12 || d < 1 || d > 31)
		return -1;
	*day = days_from_civil(y, m, d);
	return 0;
}

static void
day_string(char *dst, size_t len, int64_t day)
{
	time_t t = (time_t)(day * 86400);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		snprintf(dst, len, "?");
	else
		strftime(dst, len, "%Y-%m-%d", &tm);
}

struct chan_total {
	const char *name;
	double conv, value;
};

static const char *
chan_name(const void *arg, size_t i)
{
	return ((const struct chan_total *)arg)[i].name;
}

static int
cmp_chan_name(const void *a, const void *b)
{
	return strcmp(((const struct chan_total *)a)->name, ((const struct chan_total *)b)->name);
}

static int
cmp_chan_conv(const void *a, const void *b)
{
	const struct chan_total *x = a, *y = b;

	if (x->conv != y->conv)
		return x->conv < y->conv ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* Conversions and value over time, stacked by channel, from resp->daily. */
static int
chart_daily(struct report_ctx *c)
{
	const Touchpoint__V1__AttributeResponse *a = c->attr;
	struct chan_total *ch = NULL;
	struct table t[2];
	struct report_chart *rc[2] = { NULL, NULL };
	int64_t lo = INT64_MAX, hi = INT64_MIN, day, bucket, nb;
	size_t n = 0, u, i, j, col, ncol, step, len;
	char title[512], model[128], lab[32], olab[64] = "", *body;
	FILE *b;
	int rv = TP_OK, w;

	memset(t, 0, sizeof(t));
	if (a->n_daily == 0)
		return TP_OK;
	if ((ch = calloc(a->n_daily, sizeof(*ch))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (i = 0; i < a->n_daily; i++) {
		if (parse_day(a->daily[i]->day, &day) != 0)
			continue;
		lo = day < lo ? day : lo;
		hi = day > hi ? day : hi;
		ch[n].name = a->daily[i]->channel;
		ch[n].conv = a->daily[i]->conversions;
		ch[n++].value = a->daily[i]->value;
	}
	if (n == 0)
		goto out;
	qsort(ch, n, sizeof(*ch), cmp_chan_name);
	for (i = 0, u = 0; i < n; i++) {
		if (u > 0 && strcmp(ch[u - 1].name, ch[i].name) == 0) {
			ch[u - 1].conv += ch[i].conv;
			ch[u - 1].value += ch[i].value;
		} else {
			ch[u++] = ch[i];
		}
	}
	n = u;
	qsort(ch, n, sizeof(*ch), cmp_chan_conv);
	ncol = n > REPORT_MAX_STACKS + 1 ? REPORT_MAX_STACKS + 1 : n;
	if (n > REPORT_MAX_STACKS + 1)
		other_label(olab, sizeof(olab), n - REPORT_MAX_STACKS, chan_name, ch,
		            REPORT_MAX_STACKS);
	/* Beyond a year the bars become n-day groups, so a chart never has more than 366. */
	bucket = (hi - lo + REPORT_MAX_BUCKETS) / REPORT_MAX_BUCKETS;
	nb = (hi - lo) / bucket + 1;
	step = ((size_t)nb + 11) / 12;
	for (w = 0; w < 2; w++) {
		if ((rv = table_new(&t[w], (size_t)nb, ncol)) != TP_OK)
			goto out;
		for (i = 0; i < (size_t)nb; i++) {
			day_string(lab, sizeof(lab), lo + (int64_t)i * bucket);
			if ((t[w].row[i] = gp_name(lab, 0)) == NULL) {
				rv = TP_RESOURCE_EXHAUSTED;
				goto out;
			}
			for (j = 0; j < ncol; j++)
				t[w].v[i * ncol + j] = 0;
		}
		for (j = 0; j < ncol; j++) {
			int other = n > REPORT_MAX_STACKS + 1 && j == REPORT_MAX_STACKS;

			if ((t[w].col[j] = gp_name(other ? olab : ch[j].name, LABEL_CP)) == NULL) {
				rv = TP_RESOURCE_EXHAUSTED;
				goto out;
			}
		}
	}
	for (i = 0; i < a->n_daily; i++) {
		if (parse_day(a->daily[i]->day, &day) != 0)
			continue;
		/* Names beyond the top ones land in the last column, "(N others)". */
		for (col = 0; col + 1 < ncol && strcmp(ch[col].name, a->daily[i]->channel) != 0;
		     col++)
			;
		j = (size_t)((day - lo) / bucket);
		if (isfinite(a->daily[i]->conversions))
			t[0].v[j * ncol + col] += a->daily[i]->conversions;
		if (isfinite(a->daily[i]->value))
			t[1].v[j * ncol + col] += a->daily[i]->value;
	}
	report_clean(model, sizeof(model), a->daily_model, 40, 0);
	for (w = 0; w < 2; w++) {
		const char *id = w == 0 ? "daily_conversions" : "daily_value";

		if ((rc[w] = chart_add(c, id, -1)) == NULL) {
			rv = TP_RESOURCE_EXHAUSTED;
			goto out;
		}
		if (bucket == 1)
			snprintf(title, sizeof(title), "%s per day under %s, stacked by channel",
			         w == 0 ? "Attributed conversions" : "Attributed value", model);
		else
			snprintf(title, sizeof(title),
			         "%s per %lld days under %s, stacked by channel",
			         w == 0 ? "Attributed conversions" : "Attributed value",
			         (long long)bucket, model);
		if (table_nothing(&t[w])) {
			chart_omit(rc[w], title,
			           w == 0 ? "no conversion was attributed on any day"
			                  : "every attributed value is 0");
			continue;
		}
		if ((rv = table_write(c, id, &t[w])) != TP_OK ||
		    (rv = texts_write(c, rc[w], title, w == 0 ? "conversions" : "value",
		                      bucket == 1 ? "day (UTC)"
		                                  : "first day of the period (UTC)")) != TP_OK)
			goto out;
		body = NULL;
		if ((b = open_memstream(&body, &len)) == NULL) {
			rv = TP_RESOURCE_EXHAUSTED;
			goto out;
		}
		body_stacked(b, id, &t[w], step, n > REPORT_MAX_STACKS + 1 ? ncol - 1 : SIZE_MAX);
		if ((rv = body_end(b, &body, rc[w])) != TP_OK)
			goto out;
	}
out:
	for (w = 0; w < 2; w++)
		if (rv != TP_OK && rc[w] != NULL && rc[w]->err[0] == '\0')
			snprintf(rc[w]->err, sizeof(rc[w]->err), "could not write its data");
	table_free(&t[0]);
	table_free(&t[1]);
	free(ch);
	return rv;
}

/* Path length distribution and the top converting paths, from the PathsResponse. */
static int
chart_paths(struct report_ctx *c)
{
	const Touchpoint__V1__PathsResponse *p = c->paths;
	enum { MAXLEN = 20 };
	double conv[MAXLEN + 1], nul[MAXLEN + 1], xmax = 0;
	size_t i, j, maxl = 0, l, o, nrow, len;
	size_t top[REPORT_TOP_PATHS];
	struct report_chart *ch = NULL;
	struct table t;
	char title[256], lab[16], *path = NULL, *body;
	FILE *b;
	int rv = TP_OK;

	memset(&t, 0, sizeof(t));
	if (p == NULL || p->n_paths == 0)
		return TP_OK;
	memset(conv, 0, sizeof(conv));
	memset(nul, 0, sizeof(nul));
	for (i = 0; i < p->n_paths; i++) {
		l = p->paths[i]->n_channels;
		l = l > MAXLEN ? MAXLEN : l;
		maxl = l > maxl ? l : maxl;
		if (isfinite(p->paths[i]->total_conversions))
			conv[l] += p->paths[i]->total_conversions;
		if (isfinite(p->paths[i]->total_null))
			nul[l] += p->paths[i]->total_null;
	}
	if (maxl >= 1) {
		if ((ch = chart_add(c, "path_length", -1)) == NULL)
			return TP_RESOURCE_EXHAUSTED;
		if ((rv = table_new(&t, maxl, 2)) != TP_OK)
			goto out;
		for (l = 1; l <= maxl; l++) {
			snprintf(lab, sizeof(lab), l == MAXLEN ? "%zu+" : "%zu", l);
			if ((t.row[l - 1] = gp_name(lab, 0)) == NULL) {
				rv = TP_RESOURCE_EXHAUSTED;
				goto out;
			}
			t.v[(l - 1) * 2] = conv[l];
			t.v[(l - 1) * 2 + 1] = nul[l];
		}
		if ((t.col[0] = gp_name("conversions", 0)) == NULL ||
		    (t.col[1] = gp_name("non-converting paths", 0)) == NULL) {
			rv = TP_RESOURCE_EXHAUSTED;
			goto out;
		}
		if (p->distinct_paths > p->n_paths)
			snprintf(title, sizeof(title),
			         "Path length distribution (touches per path; the top %zu of %llu "
			         "distinct paths)",
			         p->n_paths, (unsigned long long)p->distinct_paths);
		else
			snprintf(title, sizeof(title),
			         "Path length distribution (touches per path)");
		if (table_nothing(&t)) {
			chart_omit(ch, title,
			           "every path counts 0 conversions and 0 non-converting");
		} else {
			if ((rv = table_write(c, "path_length", &t)) != TP_OK ||
			    (rv = texts_write(c, ch, title, "count", "touches in the path")) !=
			        TP_OK)
				goto out;
			body = NULL;
			if ((b = open_memstream(&body, &len)) == NULL) {
				rv = TP_RESOURCE_EXHAUSTED;
				goto out;
			}
			body_bars(b, "path_length", &t, 0);
			if ((rv = body_end(b, &body, ch)) != TP_OK)
				goto out;
		}
		table_free(&t);
	}

	/* Top converting paths: a partial selection sort keeps this O(n · 20). */
	for (nrow = 0; nrow < REPORT_TOP_PATHS; nrow++) {
		size_t best = SIZE_MAX;

		for (i = 0; i < p->n_paths; i++) {
			double v = p->paths[i]->total_conversions;

			if (!isfinite(v) || v <= 0)
				continue;
			for (j = 0; j < nrow && top[j] != i; j++)
				;
			if (j < nrow)
				continue;
			if (best == SIZE_MAX || v > p->paths[best]->total_conversions)
				best = i;
		}
		if (best == SIZE_MAX)
			break;
		top[nrow] = best;
	}
	if (nrow == 0)
		goto out;
	ch = NULL;
	if ((ch = chart_add(c, "top_paths", -1)) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	ch->height = 700;
	if ((rv = table_new(&t, nrow, 1)) != TP_OK)
		goto out;
	for (i = 0; i < nrow; i++) {
		const Touchpoint__V1__PathRow *r = p->paths[top[i]];
		char nm[REPORT_NAME_MAX];

		/* The label is built from cleaned names, so " > " stays the only separator. */
		len = 0;
		free(path);
		if ((path = malloc(PATH_CP * 8 + 16)) == NULL) {
			rv = TP_RESOURCE_EXHAUSTED;
			goto out;
		}
		path[0] = '\0';
		for (j = 0, o = 0; j < r->n_channels && o < PATH_CP * 4; j++) {
			report_clean(nm, sizeof(nm), r->channels[j], LABEL_CP, 0);
			o += (size_t)snprintf(path + o, PATH_CP * 8 + 16 - o, "%s%s",
			                      j == 0 ? "" : " > ", nm);
		}
		if ((t.row[i] = gp_name(path, PATH_CP)) == NULL) {
			rv = TP_RESOURCE_EXHAUSTED;
			goto out;
		}
		t.v[i] = r->total_conversions;
		xmax = r->total_conversions > xmax ? r->total_conversions : xmax;
	}
	if ((t.col[0] = gp_name("conversions", 0)) == NULL) {
		rv = TP_RESOURCE_EXHAUSTED;
		goto out;
	}
	snprintf(title, sizeof(title), "Top %zu converting paths, by conversions", nrow);
	if ((rv = table_write(c, "top_paths", &t)) != TP_OK ||
	    (rv = texts_write(c, ch, title, "", "conversions")) != TP_OK)
		goto out;
	body = NULL;
	if ((b = open_memstream(&body, &len)) == NULL) {
		rv = TP_RESOURCE_EXHAUSTED;
		goto out;
	}
	body_hbars(b, "top_paths", &t, xmax);
	rv = body_end(b, &body, ch);
out:
	if (rv != TP_OK && ch != NULL && ch->err[0] == '\0')
		snprintf(ch->err, sizeof(ch->err), "could not write its data");
	free(path);
	table_free(&t);
	return rv;
}

/* Markov states for the heat map, with the probability flowing into each. */
struct state {
	const char *name;
	double in;
	int from, to;
};

static int
cmp_state_name(const void *a, const void *b)
{
	return strcmp(((const struct state *)a)->name, ((const struct state *)b)->name);
}

static int
cmp_state_in(const void *a, const void *b)
{
	const struct state *x = a, *y = b;

	if (x->in != y->in)
		return x->in < y->in ? 1 : -1;
	return strcmp(x->name, y->name);
}

static int
is_special(const char *s)
{
	return strcmp(s, "(start)") == 0 || strcmp(s, "(conversion)") == 0 ||
	       strcmp(s, "(null)") == 0;
}

static long
state_find(const struct state *st, size_t n, const char *name)
{
	struct state key = { .name = name };
	const struct state *p = bsearch(&key, st, n, sizeof(*st), cmp_state_name);

	return p == NULL ? -1 : (long)(p - st);
}

static int
labels_write(struct report_ctx *c, const char *id, const char *const *names, size_t n)
{
	FILE *f;
	size_t i;
	int bad;
	char buf[REPORT_NAME_MAX];

	if ((f = data_open(c, id, "")) == NULL)
		return TP_INTERNAL;
	for (i = 0; i < n; i++) {
		report_clean(buf, sizeof(buf), names[i], LABEL_CP, 1);
		fprintf(f, "%s\n", buf);
	}
	bad = ferror(f);
	if (fclose(f) != 0 || bad)
		return TP_INTERNAL;
	return TP_OK;
}

static int
chart_markov(struct report_ctx *c)
{
	const Touchpoint__V1__ModelResult *m = NULL;
	struct state *st = NULL;
	const char **rows = NULL, **cols = NULL;
	double *cell = NULL;
	size_t i, n = 0, u, nr = 0, nc = 0, nst, k, len;
	long fi, ti, r, col;
	struct report_chart *ch = NULL;
	char title[256], lab[160], id[] = "markov_transitions", fid[64], *body = NULL;
	FILE *f = NULL, *b;
	int rv = TP_OK, bad;

	for (i = 0; i < c->attr->n_models && m == NULL; i++)
		if (strcmp(c->attr->models[i]->model, "markov") == 0 &&
		    c->attr->models[i]->n_transitions > 0)
			m = c->attr->models[i];
	if (m == NULL)
		return TP_OK;
	if ((st = calloc(2 * m->n_transitions, sizeof(*st))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (i = 0; i < m->n_transitions; i++) {
		st[n++].name = m->transitions[i]->from;
		st[n++].name = m->transitions[i]->to;
	}
	qsort(st, n, sizeof(*st), cmp_state_name);
	for (i = 0, u = 0; i < n; i++)
		if (u == 0 || strcmp(st[u - 1].name, st[i].name) != 0)
			st[u++] = st[i];
	n = u;
	for (i = 0; i < m->n_transitions; i++) {
		fi = state_find(st, n, m->transitions[i]->from);
		ti = state_find(st, n, m->transitions[i]->to);
		st[fi].from = 1;
		st[ti].to = 1;
		if (isfinite(m->transitions[i]->probability))
			st[ti].in += m->transitions[i]->probability;
	}
	/* The busiest ordinary states, then the special ones at the edges of the map. */
	qsort(st, n, sizeof(*st), cmp_state_in);
	if ((rows = calloc(n + 2, sizeof(*rows))) == NULL ||
	    (cols = calloc(n + 3, sizeof(*cols))) == NULL) {
		rv = TP_RESOURCE_EXHAUSTED;
		goto out;
	}
	for (i = 0, nst = 0; i < n; i++) {
		if (is_special(st[i].name))
			continue;
		if (nst++ >= REPORT_MAX_STATES)
			break;
		if (st[i].from)
			rows[nr++] = st[i].name;
		if (st[i].to)
			cols[nc++] = st[i].name;
	}
	/* "(start)" heads the rows; absorbing states end the columns. */
	memmove(rows + 1, rows, nr * sizeof(*rows));
	rows[0] = "(start)";
	nr++;
	cols[nc++] = "(conversion)";
	cols[nc++] = "(null)";
	if ((cell = calloc(nr * nc + 1, sizeof(*cell))) == NULL) {
		rv = TP_RESOURCE_EXHAUSTED;
		goto out;
	}
	for (i = 0; i < m->n_transitions; i++) {
		for (r = 0; r < (long)nr && strcmp(rows[r], m->transitions[i]->from) != 0; r++)
			;
		for (col = 0; col < (long)nc && strcmp(cols[col], m->transitions[i]->to) != 0;
		     col++)
			;
		if (r < (long)nr && col < (long)nc && isfinite(m->transitions[i]->probability))
			cell[(size_t)r * nc + (size_t)col] = m->transitions[i]->probability;
	}
	if ((ch = chart_add(c, id, -1)) == NULL) {
		rv = TP_RESOURCE_EXHAUSTED;
		goto out;
	}
	ch->height = 800;
	if ((f = data_open(c, id, ".tsv")) == NULL) {
		rv = TP_INTERNAL;
		goto out;
	}
	for (r = 0; r < (long)nr; r++)
		for (k = 0; k < nc; k++) {
			fprintf(f, "%zu\t%ld\t", k, r);
			put_num(f, cell[(size_t)r * nc + k]);
			fputc('\n', f);
		}
	bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		rv = TP_INTERNAL;
		goto out;
	}
	snprintf(fid, sizeof(fid), "%s.x.txt", id);
	if ((rv = labels_write(c, fid, cols, nc)) != TP_OK)
		goto out;
	snprintf(fid, sizeof(fid), "%s.y.txt", id);
	if ((rv = labels_write(c, fid, rows, nr)) != TP_OK)
		goto out;
	for (i = 0; i < c->attr->n_models; i++)
		if (c->attr->models[i] == m)
			report_model_label(
			    lab, sizeof(lab),
			    (const Touchpoint__V1__ModelResult *const *)c->attr->models,
			    c->attr->n_models, i);
	for (i = 0, k = 0; i < n; i++)
		k += !is_special(st[i].name);
	if (k > REPORT_MAX_STATES)
		snprintf(title, sizeof(title),
		         "Markov transition probabilities, %s (the %d busiest of %zu states)", lab,
		         REPORT_MAX_STATES, k);
	else
		snprintf(title, sizeof(title), "Markov transition probabilities, %s", lab);
	if ((rv = texts_write(c, ch, title, "from state", "to state")) != TP_OK)
		goto out;
	if ((b = open_memstream(&body, &len)) == NULL) {
		rv = TP_RESOURCE_EXHAUSTED;
		goto out;
	}
	body_head(b, id, 0, SIZE_MAX);
	fprintf(b,
	        "unset key\n"
	        "set grid noxtics noytics\n"
	        "set border 0\n"
	        "set xrange [-0.5:%zu.5]\n"
	        "set yrange [%zu.5:-0.5]\n"
	        "set xtics rotate by 35 right scale 0\n"
	        "set ytics scale 0\n"
	        "set cbrange [0:1]\n"
	        "set cblabel \"transition probability\"\n"
	        "set palette defined (0 \"#FFFFFF\", 0.25 \"#C6DBEF\", 0.6 \"#4292C6\", 1 "
	        "\"#08306B\")\n"
	        "plot '%s.tsv' using 1:2:3 with image, \\\n"
	        "  '%s.x.txt' using 0:(NaN):xtic(tp_q(strcol(1))) with points, \\\n"
	        "  '%s.y.txt' using (NaN):0:ytic(tp_q(strcol(1))) with points",
	        nc - 1, nr - 1, id, id, id);
	/* Numbers in the cells only while they fit. */
	if (nr * nc <= 400)
		fprintf(b,
		        ", \\\n  '%s.tsv' using 1:2:($3 > 0 ? sprintf(\"%%.2f\", $3) : \"\"):"
		        "($3 > 0.5 ? 0xFFFFFF : 0x000000) with labels tc rgb variable font \",8\"",
		        id);
	fputc('\n', b);
	rv = body_end(b, &body, ch);
out:
	if (rv != TP_OK && ch != NULL && ch->err[0] == '\0')
		snprintf(ch->err, sizeof(ch->err), "could not write its data");
	free(st);
	free(rows);
	free(cols);
	free(cell);
	return rv;
}

/* Removal effects of every markov model, per channel. */
static int
chart_removal(struct report_ctx *c)
{
	const struct report_grid *g = &c->main;
	struct report_chart *ch = NULL;
	struct table t;
	size_t i, j, k, nmk = 0, *mk = NULL, nrow = 0, len;
	char lab[160], title[768], *body = NULL;
	FILE *b;
	int rv = TP_OK;

	memset(&t, 0, sizeof(t));
	if (!g->any_re)
		return TP_OK;
	if ((mk = calloc(g->nmod, sizeof(*mk))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (j = 0; j < g->nmod; j++)
		for (i = 0; i < g->nch; i++)
			if (isfinite(g->re[i * g->nmod + j])) {
				mk[nmk++] = j;
				break;
			}
	nrow = g->nch > REPORT_MAX_BARS ? REPORT_MAX_BARS : g->nch;
	if ((ch = chart_add(c, "removal_effects", -1)) == NULL) {
		rv = TP_RESOURCE_EXHAUSTED;
		goto out;
	}
	if ((rv = table_new(&t, nrow, nmk)) != TP_OK)
		goto out;
	for (i = 0; i < nrow; i++) {
		if ((t.row[i] = gp_name(g->ch[i], LABEL_CP)) == NULL) {
			rv = TP_RESOURCE_EXHAUSTED;
			goto out;
		}
		for (j = 0; j < nmk; j++) {
			double v = g->re[i * g->nmod + mk[j]];

			t.v[i * nmk + j] = isfinite(v) ? v * 100 : v;
		}
	}
	for (j = 0; j < nmk; j++) {
		report_model_label(lab, sizeof(lab), g->mod, g->nmod, mk[j]);
		if ((t.col[j] = gp_name(lab, 0)) == NULL) {
			rv = TP_RESOURCE_EXHAUSTED;
			goto out;
		}
	}
	title_models(title, sizeof(title), "Markov removal effect per channel", g->mod, g->nmod,
	             nmk > 0 ? mk[0] : 0, nmk);
	k = strlen(title);
	if (g->nch > REPORT_MAX_BARS)
		snprintf(title + k, sizeof(title) - k, " (top %d of %zu channels)", REPORT_MAX_BARS,
		         g->nch);
	if (table_nothing(&t)) {
		chart_omit(ch, title, "every removal effect is 0");
		goto out;
	}
	if ((rv = table_write(c, "removal_effects", &t)) != TP_OK ||
	    (rv = texts_write(c, ch, title, "conversions lost without the channel", "channel")) !=
	        TP_OK)
		goto out;
	if ((b = open_memstream(&body, &len)) == NULL) {
		rv = TP_RESOURCE_EXHAUSTED;
		goto out;
	}
	body_bars(b, "removal_effects", &t, 1);
	rv = body_end(b, &body, ch);
out:
	if (rv != TP_OK && ch != NULL && ch->err[0] == '\0')
		snprintf(ch->err, sizeof(ch->err), "could not write its data");
	free(mk);
	table_free(&t);
	return rv;
}

struct spend {
	const char *name;
	const char *currency;
	double amount;
	int mixed;
};

static int
cmp_spend_name(const void *a, const void *b)
{
	return strcmp(((const struct spend *)a)->name, ((const struct spend *)b)->name);
}

static int
cmp_spend_amount(const void *a, const void *b)
{
	const struct spend *x = a, *y = b;

	if (x->amount != y->amount)
		return x->amount < y->amount ? 1 : -1;
	return strcmp(x->name, y->name);
}

/* Cost per channel, and CPA and ROAS per channel per model. */
static int
chart_spend(struct report_ctx *c)
{
	const Touchpoint__V1__AttributeResponse *a = c->attr;
	const struct report_grid *g = &c->main;
	static const char *const ids[3] = { "spend_cost", "spend_cpa", "spend_roas" };
	struct spend *sp = NULL;
	struct report_chart *ch = NULL;
	struct table t;
	size_t i, j, k, n, u, nrow, gi, len;
	char lab[160], title[768], cur[64], ylab[128], *body;
	const char *currency = NULL;
	int mixed = 0, rv = TP_OK, w;
	FILE *b;

	memset(&t, 0, sizeof(t));
	if (a->n_spend == 0)
		return TP_OK;
	if ((sp = calloc(a->n_spend, sizeof(*sp))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (i = 0; i < a->n_spend; i++) {
		sp[i].name = a->spend[i]->channel;
		sp[i].amount = isfinite(a->spend[i]->amount) ? a->spend[i]->amount : 0;
		if (currency == NULL)
			currency = a->spend[i]->currency;
		else if (strcmp(currency, a->spend[i]->currency) != 0)
			mixed = 1;
	}
	qsort(sp, a->n_spend, sizeof(*sp), cmp_spend_name);
	for (i = 0, u = 0; i < a->n_spend; i++) {
		if (u > 0 && strcmp(sp[u - 1].name, sp[i].name) == 0)
			sp[u - 1].amount += sp[i].amount;
		else
			sp[u++] = sp[i];
	}
	n = u;
	qsort(sp, n, sizeof(*sp), cmp_spend_amount);
	nrow = n > REPORT_MAX_BARS ? REPORT_MAX_BARS : n;
	if (mixed)
		snprintf(cur, sizeof(cur), "mixed currencies, summed as numbers");
	else if (currency != NULL && currency[0] != '\0')
		report_clean(cur, sizeof(cur), currency, 8, 0);
	else
		snprintf(cur, sizeof(cur), "currency not given");
	for (w = 0; w < 3; w++) {
		size_t ncol = w == 0 ? 1 : g->nmod;

		if (w > 0 && g->nmod == 0)
			break;
		if ((ch = chart_add(c, ids[w], -1)) == NULL) {
			rv = TP_RESOURCE_EXHAUSTED;
			goto out;
		}
		if ((rv = table_new(&t, nrow, ncol)) != TP_OK)
			goto out;
		for (i = 0; i < nrow; i++) {
			if ((t.row[i] = gp_name(sp[i].name, LABEL_CP)) == NULL) {
				rv = TP_RESOURCE_EXHAUSTED;
				goto out;
			}
			if (w == 0) {
				t.v[i] = sp[i].amount;
				continue;
			}
			for (gi = 0; gi < g->nch && strcmp(g->ch[gi], sp[i].name) != 0; gi++)
				;
			for (j = 0; j < ncol; j++) {
				double conv = gi < g->nch ? g->conv[gi * g->nmod + j] : 0;
				double val = gi < g->nch ? g->value[gi * g->nmod + j] : 0;

				t.v[i * ncol + j] = w == 1 ? report_cpa(sp[i].amount, conv)
				                           : report_roas(sp[i].amount, val);
			}
		}
		for (j = 0; j < ncol; j++) {
			if (w == 0)
				snprintf(lab, sizeof(lab), "cost");
			else
				report_model_label(lab, sizeof(lab), g->mod, g->nmod, j);
			if ((t.col[j] = gp_name(lab, 0)) == NULL) {
				rv = TP_RESOURCE_EXHAUSTED;
				goto out;
			}
		}
		if (w == 0)
			snprintf(title, sizeof(title), "Cost per channel");
		else
			title_models(title, sizeof(title),
			             w == 1 ? "Cost per attributed conversion (CPA) per channel"
			                    : "Return on ad spend (attributed value / cost) per "
			                      "channel",
			             g->mod, g->nmod, 0, g->nmod);
		k = strlen(title);
		if (n > nrow && k < sizeof(title))
			snprintf(title + k, sizeof(title) - k, " (top %zu of %zu by cost)", nrow,
			         n);
		snprintf(ylab, sizeof(ylab),
		         w == 0   ? "cost (%s)"
		         : w == 1 ? "CPA (%s)"
		                  : "%s",
		         w == 2 ? "ROAS (value per unit of cost)" : cur);
		/*
		 * No CPA without attributed conversions, no ROAS without cost: a chart of
		 * nothing but undefined values or 0 is left out (gnuplot refuses to draw one
		 * of undefined values only).
		 */
		if (table_nothing(&t)) {
			chart_omit(ch, title,
			           w == 0   ? "every cost is 0"
			           : w == 1 ? "no channel with spend has attributed conversions"
			                    : "no channel with spend has attributed value");
			table_free(&t);
			continue;
		}
		if ((rv = table_write(c, ids[w], &t)) != TP_OK ||
		    (rv = texts_write(c, ch, title, ylab, "channel")) != TP_OK)
			goto out;
		body = NULL;
		if ((b = open_memstream(&body, &len)) == NULL) {
			rv = TP_RESOURCE_EXHAUSTED;
			goto out;
		}
		body_bars(b, ids[w], &t, 0);
		if ((rv = body_end(b, &body, ch)) != TP_OK)
			goto out;
		table_free(&t);
	}
out:
	if (rv != TP_OK && ch != NULL && ch->err[0] == '\0')
		snprintf(ch->err, sizeof(ch->err), "could not write its data");
	table_free(&t);
	free(sp);
	(void)mixed;
	return rv;
}

struct seg_rank {
	double conv;
	const char *name;
	size_t idx;
};

static int
cmp_segment(const void *a, const void *b)
{
	const struct seg_rank *x = a, *y = b;

	if (x->conv != y->conv)
		return x->conv < y->conv ? 1 : -1;
	return strcmp(x->name, y->name);
}

static int
chart_segments(struct report_ctx *c)
{
	const Touchpoint__V1__AttributeResponse *a = c->attr;
	struct seg_rank *rank;
	size_t *all, i, n = a->n_segments, keep;
	char id[64], title[1024], trait[256], name[512];
	int rv;

	if (n == 0)
		return TP_OK;
	keep = n > REPORT_MAX_SEGMENTS ? REPORT_MAX_SEGMENTS : n;
	if ((rank = calloc(n, sizeof(*rank))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	for (i = 0; i < n; i++) {
		rank[i].conv =
		    a->segments[i]->totals != NULL ? a->segments[i]->totals->conversions : 0;
		rank[i].conv = isfinite(rank[i].conv) ? rank[i].conv : 0;
		rank[i].name = a->segments[i]->segment;
		rank[i].idx = i;
	}
	qsort(rank, n, sizeof(*rank), cmp_segment);
	if ((all = calloc(keep, sizeof(*all))) == NULL) {
		free(rank);
		return TP_RESOURCE_EXHAUSTED;
	}
	for (i = 0; i < keep; i++)
		all[i] = rank[i].idx;
	free(rank);
	c->seg_index = all;
	if ((c->seg = calloc(keep, sizeof(*c->seg))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	c->nseg = keep;
	for (i = 0; i < c->nseg; i++) {
		const Touchpoint__V1__Segment *s = a->segments[all[i]];

		if ((rv = report_grid_build(&c->seg[i], s->models, s->n_models)) != TP_OK)
			return rv;
		snprintf(id, sizeof(id), "segment_%zu_model_comparison", i + 1);
		/* Cleaned and cut at a character, with an ellipsis, before they are put in. */
		report_clean(trait, sizeof(trait), a->by_trait, 40, 0);
		report_clean(name, sizeof(name), s->segment, 64, 0);
		snprintf(title, sizeof(title),
		         "Segment %s = %s: share of attributed conversions per channel", trait,
		         name);
		if ((rv = chart_models(c, &c->seg[i], (int)i, 0, id, title)) != TP_OK)
			return rv;
	}
	return TP_OK;
}

/*
 * dir/name (dir may be NULL or empty: name alone) as an absolute path into dst, a relative
 * one prefixed with the working directory: the child runs gnuplot after fchdir() into the
 * report's temporary directory, where a relative path would name nothing. -1 when it does
 * not fit or there is no working directory.
 */
static int
gp_abs(char *dst, size_t len, const char *dir, size_t dirlen, const char *name)
{
	char cwd[4096];
	size_t n;

	if (dir == NULL || dirlen == 0)
		n = (size_t)snprintf(dst, len, "%s", name);
	else
		n = (size_t)snprintf(dst, len, "%.*s/%s", (int)dirlen, dir, name);
	if (n >= len)
		return -1;
	if (dst[0] == '/')
		return 0;
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return -1;
	if (dir == NULL || dirlen == 0)
		n = (size_t)snprintf(dst, len, "%s/%s", cwd, name);
	else
		n = (size_t)snprintf(dst, len, "%s/%.*s/%s", cwd, (int)dirlen, dir, name);
	return n < len ? 0 : -1;
}

static int
gp_usable(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* gnuplot from PATH, as execvp would find it, resolved in the parent (see gp_run). */
static int
gp_find(struct gp *gp, const char *name)
{
	const char *path, *p, *e;
	size_t n;

	if (strchr(name, '/') != NULL)
		return gp_abs(gp->path, sizeof(gp->path), NULL, 0, name) == 0 && gp_usable(gp->path)
		           ? 0
		           : -1;
	if ((path = getenv("PATH")) == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path;; p = e + 1) {
		e = strchr(p, ':');
		n = e == NULL ? strlen(p) : (size_t)(e - p);
		/* An empty entry is the working directory. */
		if (gp_abs(gp->path, sizeof(gp->path), p, n, name) == 0 && gp_usable(gp->path))
			return 0;
		if (e == NULL)
			return -1;
	}
}

/* The caller's environment with the locale pinned to C.UTF-8 and gnuplot's own knobs off. */
static int
gp_env(struct gp *gp)
{
	static const char *const drop[] = { "LC_",      "LANG=",    "LANGUAGE=",
		                            "GNUPLOT_", "GNUTERM=", "GDFONTPATH=" };
	size_t n = 0, i, k, j;

	for (i = 0; environ != NULL && environ[i] != NULL; i++)
		n++;
	if ((gp->envp = calloc(n + 2, sizeof(*gp->envp))) == NULL)
		return -1;
	for (i = 0, k = 0; i < n; i++) {
		for (j = 0; j < sizeof(drop) / sizeof(drop[0]); j++)
			if (strncmp(environ[i], drop[j], strlen(drop[j])) == 0)
				break;
		if (j == sizeof(drop) / sizeof(drop[0]))
			gp->envp[k++] = environ[i];
	}
	gp->envp[k] = "LC_ALL=C.UTF-8";
	return 0;
}

/* First informative line of gnuplot's stderr, cleaned for a message. */
static void
gp_stderr(int fd, char *msg, size_t msglen)
{
	char buf[4096], *line, *save = NULL, *pick = NULL;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	msg[0] = '\0';
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, "\" line ") != NULL) {
			pick = line;
			break;
		}
		if (pick == NULL && line[strspn(line, " \t^")] != '\0')
			pick = line;
	}
	if (pick != NULL)
		report_clean(msg, msglen, pick + strspn(pick, " \t"), 200, 0);
}

/*
 * Runs `gnuplot -d SCRIPT` in the report directory with a 60 s limit. The child only calls
 * async-signal-safe functions (hence execve with a path and environment prepared here,
 * not execvp and setenv). Returns TP_OK, or TP_INTERNAL / TP_DEADLINE_EXCEEDED with msg.
 */
static int
gp_run(struct report_ctx *c, struct gp *gp, const char *script, char *msg, size_t msglen)
{
	char *argv[] = { "gnuplot", "-d", (char *)script, NULL };
	char line[256];
	struct timespec t0, now, nap = { 0, 10 * 1000 * 1000 };
	int errfd = -1, nullfd = -1, dfd = -1, status = 0, rv = TP_INTERNAL;
	char errpath[4200];
	pid_t pid, w;

	snprintf(errpath, sizeof(errpath), "%s/gnuplot.err", c->dir);
	if ((errfd = open(errpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
	    (nullfd = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0 ||
	    (dfd = open(c->dir, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(msg, msglen, "cannot start gnuplot: %s", strerror(errno));
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((pid = fork()) < 0) {
		snprintf(msg, msglen, "cannot start gnuplot: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		if (fchdir(dfd) != 0 || dup2(nullfd, 0) < 0 || dup2(nullfd, 1) < 0 ||
		    dup2(errfd, 2) < 0)
			_exit(126);
		execve(gp->path, argv, gp->envp);
		_exit(127);
	}
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			snprintf(msg, msglen, "waiting for gnuplot: %s", strerror(errno));
			goto out;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= GP_TIMEOUT_S) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			snprintf(msg, msglen, "gnuplot did not finish in %d s", GP_TIMEOUT_S);
			rv = TP_DEADLINE_EXCEEDED;
			goto out;
		}
		nanosleep(&nap, NULL);
	}
	gp_stderr(errfd, line, sizeof(line));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		rv = TP_OK;
	} else if (WIFEXITED(status)) {
		snprintf(msg, msglen, "gnuplot exited %d%s%s", WEXITSTATUS(status),
		         line[0] != '\0' ? ": " : "", line);
	} else {
		snprintf(msg, msglen, "gnuplot killed by signal %d%s%s", WTERMSIG(status),
		         line[0] != '\0' ? ": " : "", line);
	}
out:
	if (errfd >= 0)
		close(errfd);
	if (nullfd >= 0)
		close(nullfd);
	if (dfd >= 0)
		close(dfd);
	unlink(errpath);
	return rv;
}

/* Moves ID.EXT.tmp to ID.EXT when gnuplot left a non-empty file; removes it otherwise. */
static int
gp_keep(struct report_ctx *c, const char *name)
{
	char tmp[4200], fin[4200];
	struct stat st;

	if ((size_t)snprintf(fin, sizeof(fin), "%s/%s", c->dir, name) >= sizeof(fin) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", fin) >= sizeof(tmp))
		return -1;
	if (stat(tmp, &st) != 0 || st.st_size == 0 || rename(tmp, fin) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int
script_write(struct report_ctx *c, const char *name, const struct report_chart *const *ch, size_t n,
             int pdf)
{
	char path[4200];
	FILE *f;
	size_t i;
	int bad;

	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	if ((f = fopen(path, "w")) == NULL)
		return TP_INTERNAL;
	if (pdf) {
		fputs("set terminal pdfcairo size 10in,6in noenhanced font \"DejaVu Sans,9\"\n"
		      "set output 'report.pdf.tmp'\n",
		      f);
		for (i = 0; i < n; i++)
			fputs(ch[i]->body, f);
		fputs("set output\n", f);
	} else {
		fprintf(f,
		        "set terminal pngcairo size %d,%d noenhanced font \"DejaVu Sans,10\" "
		        "background rgb \"#FFFFFF\"\n"
		        "set output '%s.png.tmp'\n",
		        ch[0]->width, ch[0]->height, ch[0]->id);
		fputs(ch[0]->body, f);
		fprintf(f,
		        "set output\n"
		        "set terminal svg size %d,%d noenhanced font \"DejaVu Sans,11\" "
		        "background rgb \"#FFFFFF\"\n"
		        "set output '%s.svg.tmp'\n",
		        ch[0]->width, ch[0]->height, ch[0]->id);
		fputs(ch[0]->body, f);
		fputs("set output\n", f);
	}
	bad = ferror(f);
	if (fclose(f) != 0 || bad)
		return TP_INTERNAL;
	return TP_OK;
}

static void
set_err(char *errbuf, size_t errlen, int *rv, int status, const char *fmt, const char *a,
        const char *b)
{
	if (*rv != TP_OK)
		return;
	*rv = status;
	snprintf(errbuf, errlen, fmt, a, b);
}

int
report_charts(struct report_ctx *c, char *errbuf, size_t errlen)
{
	struct gp gp;
	struct report_chart *ch;
	const struct report_chart **ok = NULL;
	char script[128], name[128], msg[512], path[4200];
	size_t i, nok = 0;
	int rv = TP_OK, st;

	memset(&gp, 0, sizeof(gp));
	/* Plan and write every chart's data; a failure here is I/O or memory, not gnuplot. */
	if ((st = chart_models(c, &c->main, -1, 0, "model_comparison",
	                       "Share of attributed conversions per channel")) != TP_OK ||
	    (st = chart_models(c, &c->main, -1, 1, "value_by_channel",
	                       "Attributed value per channel")) != TP_OK ||
	    (st = chart_daily(c)) != TP_OK || (st = chart_paths(c)) != TP_OK ||
	    (st = chart_markov(c)) != TP_OK || (st = chart_removal(c)) != TP_OK ||
	    (st = chart_spend(c)) != TP_OK || (st = chart_segments(c)) != TP_OK) {
		snprintf(errbuf, errlen, "charts: %s",
		         st == TP_RESOURCE_EXHAUSTED ? "out of memory"
		                                     : "could not write their data");
		if (st == TP_RESOURCE_EXHAUSTED)
			return st;
		rv = st;
	}
	for (i = 0; i < c->ncharts && c->charts[i].omitted; i++)
		;
	if (i == c->ncharts) {
		if (c->o->pdf)
			snprintf(c->pdf_err, sizeof(c->pdf_err), "no chart to put in it");
		return rv;
	}
	if (gp_find(&gp, c->o->gnuplot != NULL ? c->o->gnuplot : "gnuplot") != 0) {
		for (i = 0; i < c->ncharts; i++)
			if (!c->charts[i].omitted)
				snprintf(c->charts[i].err, sizeof(c->charts[i].err),
				         "gnuplot not found");
		snprintf(c->pdf_err, sizeof(c->pdf_err), "gnuplot not found");
		if (rv == TP_OK) {
			report_clean(msg, sizeof(msg),
			             c->o->gnuplot != NULL ? c->o->gnuplot : "gnuplot", 100, 0);
			snprintf(errbuf, errlen, "gnuplot not found (%s)", msg);
		}
		return rv == TP_OK ? TP_UNAVAILABLE : rv;
	}
	if (gp_env(&gp) != 0) {
		snprintf(errbuf, errlen, "charts: out of memory");
		return TP_RESOURCE_EXHAUSTED;
	}
	if ((ok = calloc(c->ncharts, sizeof(*ok))) == NULL) {
		free(gp.envp);
		snprintf(errbuf, errlen, "charts: out of memory");
		return TP_RESOURCE_EXHAUSTED;
	}
	for (i = 0; i < c->ncharts; i++) {
		ch = &c->charts[i];
		if (ch->body == NULL || ch->omitted)
			continue;
		snprintf(script, sizeof(script), "%s.gp", ch->id);
		if (script_write(c, script, (const struct report_chart *const *)&ch, 1, 0) !=
		    TP_OK) {
			snprintf(ch->err, sizeof(ch->err), "could not write its script");
			set_err(errbuf, errlen, &rv, TP_INTERNAL, "chart %s: %s", ch->id, ch->err);
			continue;
		}
		st = gp_run(c, &gp, script, ch->err, sizeof(ch->err));
		if (st == TP_OK) {
			snprintf(name, sizeof(name), "%s.png", ch->id);
			st = gp_keep(c, name);
			snprintf(name, sizeof(name), "%s.svg", ch->id);
			if (gp_keep(c, name) != 0 || st != 0) {
				snprintf(ch->err, sizeof(ch->err), "gnuplot wrote no output");
				st = TP_INTERNAL;
			}
		}
		if (st != TP_OK) {
			/* Never leave half a chart: both files go. */
			if ((size_t)snprintf(path, sizeof(path), "%s/%s.png", c->dir, ch->id) <
			    sizeof(path))
				unlink(path);
			if ((size_t)snprintf(path, sizeof(path), "%s/%s.svg", c->dir, ch->id) <
			    sizeof(path))
				unlink(path);
			set_err(errbuf, errlen, &rv, st, "chart %s: %s", ch->id, ch->err);
			continue;
		}
		ch->ok = 1;
		ok[nok++] = ch;
	}
	if (c->o->pdf && nok > 0) {
		if (script_write(c, "report.pdf.gp", ok, nok, 1) != TP_OK) {
			snprintf(c->pdf_err, sizeof(c->pdf_err), "could not write its script");
			set_err(errbuf, errlen, &rv, TP_INTERNAL, "%s: %s", "report.pdf",
			        c->pdf_err);
		} else if ((st = gp_run(c, &gp, "report.pdf.gp", c->pdf_err, sizeof(c->pdf_err))) !=
		           TP_OK) {
			set_err(errbuf, errlen, &rv, st, "%s: %s", "report.pdf", c->pdf_err);
		} else if (gp_keep(c, "report.pdf") != 0) {
			snprintf(c->pdf_err, sizeof(c->pdf_err), "gnuplot wrote no output");
			set_err(errbuf, errlen, &rv, TP_INTERNAL, "%s: %s", "report.pdf",
			        c->pdf_err);
		} else {
			c->pdf_ok = 1;
		}
	} else if (c->o->pdf) {
		snprintf(c->pdf_err, sizeof(c->pdf_err), "no chart to put in it");
	}
	free(ok);
	free(gp.envp);
	return rv;
}

void
report_charts_free(struct report_ctx *c)
{
	size_t i;

	for (i = 0; i < c->ncharts; i++)
		free(c->charts[i].body);
	free(c->charts);
	c->charts = NULL;
	c->ncharts = c->capcharts = 0;
}
