/*
 * reports tests: report_write() over hand-built responses — files, PNG sizes, well-formed
 * SVG, CSV/JSON equal to the engine's renderer, links, hostile names, missing gnuplot.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "touchpoint/touchpoint.h"
#include "attribution/engine.h"
#include "report.h"
#include "internal.h"

#define MAXCH 20
#define NMOD  4
#define NDAYS 40

/* A whole response in fixed storage: no allocation, nothing to free. */
struct fixture {
	Touchpoint__V1__AttributeResponse r;
	Touchpoint__V1__Totals totals, seg_totals[2];
	Touchpoint__V1__ModelResult mod[NMOD], *modp[NMOD], seg_mod[2][2], *seg_modp[2][2];
	Touchpoint__V1__Param par[NMOD], *parp[NMOD];
	Touchpoint__V1__ChannelCredit cc[NMOD][MAXCH], *ccp[NMOD][MAXCH];
	Touchpoint__V1__Transition tr[MAXCH * 4 + 4], *trp[MAXCH * 4 + 4];
	char state[MAXCH][8];
	Touchpoint__V1__DailyCredit daily[NDAYS * MAXCH], *dailyp[NDAYS * MAXCH];
	char day[NDAYS][11];
	Touchpoint__V1__ChannelSpend spend[MAXCH], *spendp[MAXCH];
	Touchpoint__V1__Segment seg[2], *segp[2];
	Touchpoint__V1__PathsResponse paths;
	Touchpoint__V1__Totals ptotals;
	Touchpoint__V1__PathRow row[MAXCH * 2], *rowp[MAXCH * 2];
	char *rowch[MAXCH * 2][4];
};

static const char *const model_names[NMOD] = { "first_touch", "last_touch", "linear", "markov" };

static void
fixture_build(struct fixture *f, const char *const *ch, size_t nch, const char *segname)
{
	size_t m, i, k, n;
	double sum;

	memset(f, 0, sizeof(*f));
	f->r = (Touchpoint__V1__AttributeResponse)TOUCHPOINT__V1__ATTRIBUTE_RESPONSE__INIT;
	f->totals = (Touchpoint__V1__Totals)TOUCHPOINT__V1__TOTALS__INIT;
	f->r.lookback_s = 30 * 86400;
	f->r.from_case = TOUCHPOINT__V1__ATTRIBUTE_RESPONSE__FROM_FROM_US;
	f->r.from_us = INT64_C(1709251200) * 1000000; /* 2024-03-01 */
	f->r.level = TOUCHPOINT__V1__LEVEL__LEVEL_CHANNEL;
	f->r.repeats = TOUCHPOINT__V1__REPEATS__REPEATS_KEEP;
	f->r.totals = &f->totals;
	f->totals.conversions = 100;
	f->totals.value = 4000;
	f->totals.converting_paths = 100;
	f->totals.null_paths = 400;
	for (m = 0; m < NMOD; m++) {
		f->mod[m] = (Touchpoint__V1__ModelResult)TOUCHPOINT__V1__MODEL_RESULT__INIT;
		f->mod[m].model = (char *)model_names[m];
		f->modp[m] = &f->mod[m];
		for (i = 0, sum = 0; i < nch; i++)
			sum += (double)(nch - i) * (1 + 0.4 * (double)m * (double)(i % 2));
		for (i = 0; i < nch; i++) {
			Touchpoint__V1__ChannelCredit *c = &f->cc[m][i];
			double w = (double)(nch - i) * (1 + 0.4 * (double)m * (double)(i % 2));

			*c = (Touchpoint__V1__ChannelCredit)TOUCHPOINT__V1__CHANNEL_CREDIT__INIT;
			c->channel = (char *)ch[i];
			c->conversions = 100 * w / sum;
			c->value = 4000 * w / sum;
			c->share = w / sum;
			if (m == 3) {
				c->removal_effect_present_case =
				    TOUCHPOINT__V1__CHANNEL_CREDIT__REMOVAL_EFFECT_PRESENT_REMOVAL_EFFECT;
				c->removal_effect = 0.9 * w / sum;
			}
			f->ccp[m][i] = c;
		}
		f->mod[m].channels = f->ccp[m];
		f->mod[m].n_channels = nch;
	}
	f->par[0] = (Touchpoint__V1__Param)TOUCHPOINT__V1__PARAM__INIT;
	f->par[0].key = "order";
	f->par[0].value = "1";
	f->parp[0] = &f->par[0];
	f->mod[3].params = f->parp;
	f->mod[3].n_params = 1;
	/* Markov transitions: start → each; each → next, conversion, null. */
	for (i = 0, n = 0; i < nch; i++) {
		f->tr[n] = (Touchpoint__V1__Transition)TOUCHPOINT__V1__TRANSITION__INIT;
		f->tr[n].from = "(start)";
		f->tr[n].to = (char *)ch[i];
		f->tr[n++].probability = 1.0 / (double)nch;
		f->tr[n] = (Touchpoint__V1__Transition)TOUCHPOINT__V1__TRANSITION__INIT;
		f->tr[n].from = (char *)ch[i];
		f->tr[n].to = (char *)ch[(i + 1) % nch];
		f->tr[n++].probability = 0.3;
		f->tr[n] = (Touchpoint__V1__Transition)TOUCHPOINT__V1__TRANSITION__INIT;
		f->tr[n].from = (char *)ch[i];
		f->tr[n].to = "(conversion)";
		f->tr[n++].probability = 0.2;
		f->tr[n] = (Touchpoint__V1__Transition)TOUCHPOINT__V1__TRANSITION__INIT;
		f->tr[n].from = (char *)ch[i];
		f->tr[n].to = "(null)";
		f->tr[n++].probability = 0.5;
	}
	for (k = 0; k < n; k++)
		f->trp[k] = &f->tr[k];
	f->mod[3].transitions = f->trp;
	f->mod[3].n_transitions = n;
	f->r.models = f->modp;
	f->r.n_models = NMOD;

	f->r.daily_model = "linear";
	for (k = 0, n = 0; k < NDAYS; k++) {
		snprintf(f->day[k], sizeof(f->day[k]), "2024-03-%02zu", k % 31 + 1);
		if (k >= 31)
			snprintf(f->day[k], sizeof(f->day[k]), "2024-04-%02zu", k - 30);
		for (i = 0; i < nch; i++) {
			if ((k + i) % 3 == 0)
				continue; /* gaps: not every channel converts every day */
			f->daily[n] =
			    (Touchpoint__V1__DailyCredit)TOUCHPOINT__V1__DAILY_CREDIT__INIT;
			f->daily[n].day = f->day[k];
			f->daily[n].channel = (char *)ch[i];
			f->daily[n].conversions = 0.5 + (double)((k * 7 + i * 3) % 5);
			f->daily[n].value = 40 * f->daily[n].conversions;
			f->dailyp[n] = &f->daily[n];
			n++;
		}
	}
	f->r.daily = f->dailyp;
	f->r.n_daily = n;

	for (i = 0; i < nch; i++) {
		f->spend[i] = (Touchpoint__V1__ChannelSpend)TOUCHPOINT__V1__CHANNEL_SPEND__INIT;
		f->spend[i].channel = (char *)ch[i];
		f->spend[i].amount = 100.0 * (double)(i + 1);
		f->spend[i].currency = "EUR";
		f->spendp[i] = &f->spend[i];
	}
	f->r.spend = f->spendp;
	f->r.n_spend = nch;

	f->r.by_trait = "plan";
	for (k = 0; k < 2; k++) {
		f->seg[k] = (Touchpoint__V1__Segment)TOUCHPOINT__V1__SEGMENT__INIT;
		f->seg[k].segment = (char *)(k == 0 ? segname : "(none)");
		f->seg_totals[k] = (Touchpoint__V1__Totals)TOUCHPOINT__V1__TOTALS__INIT;
		f->seg_totals[k].conversions = k == 0 ? 60 : 40;
		f->seg[k].totals = &f->seg_totals[k];
		f->seg_mod[k][0] = f->mod[0];
		f->seg_mod[k][1] = f->mod[2];
		f->seg_modp[k][0] = &f->seg_mod[k][0];
		f->seg_modp[k][1] = &f->seg_mod[k][1];
		f->seg[k].models = f->seg_modp[k];
		f->seg[k].n_models = 2;
		f->segp[k] = &f->seg[k];
	}
	f->r.segments = f->segp;
	f->r.n_segments = 2;

	f->paths = (Touchpoint__V1__PathsResponse)TOUCHPOINT__V1__PATHS_RESPONSE__INIT;
	f->ptotals = (Touchpoint__V1__Totals)TOUCHPOINT__V1__TOTALS__INIT;
	f->paths.totals = &f->ptotals;
	for (i = 0; i < 2 * nch; i++) {
		f->row[i] = (Touchpoint__V1__PathRow)TOUCHPOINT__V1__PATH_ROW__INIT;
		for (k = 0; k < 1 + i % 4; k++)
			f->rowch[i][k] = (char *)ch[(i + k) % nch];
		f->row[i].channels = f->rowch[i];
		f->row[i].n_channels = 1 + i % 4;
		f->row[i].total_conversions = (double)(2 * nch - i);
		f->row[i].total_conversion_value = 40.0 * (double)(2 * nch - i);
		f->row[i].total_null = (double)(3 * nch + i);
		f->rowp[i] = &f->row[i];
	}
	f->paths.paths = f->rowp;
	f->paths.n_paths = 2 * nch;
	f->paths.distinct_paths = 2 * nch + 5;
}

static const char *const plain[] = { "email",   "paid_search", "organic",  "social",
	                             "display", "direct",      "referral", "affiliate" };

static char tmproot[256];

/* report_write, with its message shown when the status is not the one expected. */
static void
expect_write(const Touchpoint__V1__AttributeResponse *r, const Touchpoint__V1__PathsResponse *p,
             const struct report_options *o, char *err, size_t errlen, int want)
{
	int rv = report_write(r, p, o, err, errlen);

	if (rv != want)
		print_error("report_write: %d (want %d): %s\n", rv, want, err);
	assert_int_equal(rv, want);
}

static int
setup(void **state)
{
	const char *t = getenv("TMPDIR");

	(void)state;
	snprintf(tmproot, sizeof(tmproot), "%s/reports-test-XXXXXX", t != NULL ? t : "/tmp");
	return mkdtemp(tmproot) == NULL ? -1 : 0;
}

/* Removes the test's scratch tree (two levels: root/report/files). */
static int
teardown(void **state)
{
	char cmd[600];
	pid_t pid;
	int st;

	(void)state;
	/* REPORTS_TEST_KEEP=1 leaves the reports for a look. */
	if (getenv("REPORTS_TEST_KEEP") != NULL) {
		print_message("kept %s\n", tmproot);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "%s", tmproot);
	if ((pid = fork()) == 0) {
		execlp("rm", "rm", "-rf", "--", cmd, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	return 0;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf != NULL) {
		buf[n] = '\0';
		*len = (size_t)n;
	}
	return buf;
}

static int
exists(const char *dir, const char *name)
{
	char p[600];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* The data files are exactly what the engine's renderer prints for the response. */
static void
assert_rendered(const char *dir, const Touchpoint__V1__AttributeResponse *r)
{
	static const char *const names[2] = { "attribution.csv", "attribution.json" };
	enum attr_format fmt[2] = { ATTR_FORMAT_CSV, ATTR_FORMAT_JSON };
	char path[600], *want = NULL, *got;
	size_t wlen = 0, glen = 0;
	FILE *m;
	int i;

	for (i = 0; i < 2; i++) {
		assert_non_null(m = open_memstream(&want, &wlen));
		assert_int_equal(attr_render_attribute(m, r, fmt[i]), TP_OK);
		fclose(m);
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		assert_non_null(got = slurp(path, &glen));
		assert_true(glen > 10);
		assert_int_equal(glen, wlen);
		assert_memory_equal(got, want, wlen);
		free(got);
		free(want);
		want = NULL;
	}
}

static void
assert_png(const char *dir, const char *id, unsigned w, unsigned h)
{
	char path[600], *buf;
	const unsigned char *p;
	size_t len = 0;

	snprintf(path, sizeof(path), "%s/%s.png", dir, id);
	assert_non_null(buf = slurp(path, &len));
	p = (const unsigned char *)buf;
	assert_true(len > 33);
	assert_memory_equal(p, "\x89PNG\r\n\x1a\n", 8);
	assert_memory_equal(p + 12, "IHDR", 4);
	assert_int_equal((unsigned)p[16] << 24 | p[17] << 16 | p[18] << 8 | p[19], w);
	assert_int_equal((unsigned)p[20] << 24 | p[21] << 16 | p[22] << 8 | p[23], h);
	free(buf);
}

/* check_report.py: SVGs parse, links resolve, <img> sizes, names in texts. */
static int
run_checker(const char *dir, const char *names, const char *svg)
{
	pid_t pid;
	int st;

	if ((pid = fork()) == 0) {
		if (names != NULL)
			execlp("python3", "python3", REPORTS_CHECKER, dir, names, svg,
			       (char *)NULL);
		else
			execlp("python3", "python3", REPORTS_CHECKER, dir, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Nothing of the build is left beside or inside the report. */
static void
assert_clean(const char *parent, const char *dir)
{
	DIR *d;
	struct dirent *de;
	size_t n;

	assert_non_null(d = opendir(parent));
	while ((de = readdir(d)) != NULL)
		assert_null(strstr(de->d_name, ".tmp-"));
	closedir(d);
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		assert_false(n > 4 && strcmp(de->d_name + n - 4, ".tsv") == 0);
		assert_false(n > 3 && strcmp(de->d_name + n - 3, ".gp") == 0);
		assert_false(n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0);
		assert_false(n > 4 && strcmp(de->d_name + n - 4, ".txt") == 0);
	}
	closedir(d);
}

static void
test_full(void **state)
{
	static const struct {
		const char *id;
		unsigned h;
	} charts[] = { { "model_comparison", 600 },
		       { "value_by_channel", 600 },
		       { "daily_conversions", 600 },
		       { "daily_value", 600 },
		       { "path_length", 600 },
		       { "top_paths", 700 },
		       { "markov_transitions", 800 },
		       { "removal_effects", 600 },
		       { "spend_cost", 600 },
		       { "spend_cpa", 600 },
		       { "spend_roas", 600 },
		       { "segment_1_model_comparison", 600 },
		       { "segment_2_model_comparison", 600 } };
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	char dir[400], err[512], name[128], path[600], *pdf;
	size_t i, len = 0;

	(void)state;
	assert_non_null(f);
	fixture_build(f, plain, 8, "premium");
	snprintf(dir, sizeof(dir), "%s/out", tmproot);
	o.out_dir = dir;
	o.pdf = 1;
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_OK);
	assert_true(exists(dir, "index.html"));
	assert_rendered(dir, &f->r);
	for (i = 0; i < sizeof(charts) / sizeof(charts[0]); i++) {
		snprintf(name, sizeof(name), "%s.svg", charts[i].id);
		assert_true(exists(dir, name));
		assert_png(dir, charts[i].id, 1000, charts[i].h);
	}
	snprintf(path, sizeof(path), "%s/report.pdf", dir);
	assert_non_null(pdf = slurp(path, &len));
	assert_memory_equal(pdf, "%PDF-", 5);
	free(pdf);
	assert_int_equal(run_checker(dir, NULL, NULL), 0);
	assert_clean(tmproot, dir);
	free(f);
}

/* Display form of a name: tab "⇥", newline "↵" (no other control characters used), cut
 * at maxcp code points with an ellipsis. */
static void
shown(char *dst, size_t len, const char *s, size_t maxcp)
{
	size_t o = 0, cp = 0, total = 0;
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++)
		total += (*p & 0xc0) != 0x80;
	for (p = (const unsigned char *)s; *p != '\0' && o + 8 < len; p++) {
		if ((*p & 0xc0) != 0x80) {
			if (maxcp != 0 && total > maxcp && cp + 1 >= maxcp) {
				memcpy(dst + o, "\xe2\x80\xa6", 3); /* … */
				o += 3;
				break;
			}
			cp++;
		}
		if (*p == '\t') {
			memcpy(dst + o, "\xe2\x87\xa5", 3);
			o += 3;
		} else if (*p == '\n') {
			memcpy(dst + o, "\xe2\x86\xb5", 3);
			o += 3;
		} else {
			dst[o++] = (char)*p;
		}
	}
	dst[o] = '\0';
}

static void
test_hostile(void **state)
{
	char marker[64], names[12][128], file[400], dir[400], err[512], a[256], b[256];
	const char *ch[12];
	struct report_options o = { 0 };
	struct fixture *f = calloc(1, sizeof(*f));
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	size_t i, n;
	FILE *fp;

	(void)state;
	assert_non_null(f);
	/* A short marker path, so every payload fits a chart label uncut. */
	do {
		snprintf(marker, sizeof(marker), "/tmp/tp%04x",
		         (seed = seed * 1103515245 + 12345) & 0xffff);
	} while (access(marker, F_OK) == 0);
	n = 0;
	snprintf(names[n++], 128, "`touch %s`", marker);
	snprintf(names[n++], 128, "$(touch %s)", marker);
	snprintf(names[n++], 128, "\";system('touch %s');\"", marker);
	snprintf(names[n++], 128, "x\n!touch %s", marker);
	snprintf(names[n++], 128, "EOD");
	snprintf(names[n++], 128, "tab\there\tEOD");
	snprintf(names[n++], 128, "Über → café 😀");
	snprintf(names[n++], 128, "<script>alert(1)</script>");
	snprintf(names[n++], 128, "#not a comment 'q' @x \\n");
	for (i = 0; i < n; i++)
		ch[i] = names[i];
	fixture_build(f, ch, n, names[0]);
	f->r.by_trait = names[2];
	f->r.conversion = names[1];
	snprintf(dir, sizeof(dir), "%s/hostile", tmproot);
	o.out_dir = dir;
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_OK);
	assert_int_equal(access(marker, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	assert_rendered(dir, &f->r);

	snprintf(file, sizeof(file), "%s/names.txt", tmproot);
	assert_non_null(fp = fopen(file, "w"));
	for (i = 0; i < n; i++) {
		shown(a, sizeof(a), names[i], 32);
		shown(b, sizeof(b), names[i], 0);
		assert_string_equal(a, b); /* every payload reaches gnuplot whole */
		fprintf(fp, "%s\t%s\n", a, b);
	}
	fclose(fp);
	assert_int_equal(run_checker(dir, file, "model_comparison.svg"), 0);
	assert_int_equal(run_checker(dir, file, "spend_cost.svg"), 0);
	assert_int_equal(access(marker, F_OK), -1);
	free(f);
}

static void
test_no_gnuplot(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	char dir[400], err[512], path[600], *html;
	size_t len = 0;

	(void)state;
	assert_non_null(f);
	fixture_build(f, plain, 5, "premium");
	snprintf(dir, sizeof(dir), "%s/nognuplot", tmproot);
	o.out_dir = dir;
	o.gnuplot = "/nonexistent/gnuplot";
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_UNAVAILABLE);
	assert_non_null(strstr(err, "gnuplot not found"));
	assert_rendered(dir, &f->r);
	assert_false(exists(dir, "model_comparison.png"));
	snprintf(path, sizeof(path), "%s/index.html", dir);
	assert_non_null(html = slurp(path, &len));
	assert_non_null(strstr(html, "Chart <code>model_comparison</code> is missing"));
	free(html);
	assert_int_equal(run_checker(dir, NULL, NULL), 0);
	assert_clean(tmproot, dir);
	free(f);
}

/* A gnuplot that fails: the error names the chart and carries gnuplot's stderr. */
static void
test_gnuplot_fails(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	char dir[400], err[512], fake[400];
	FILE *fp;

	(void)state;
	assert_non_null(f);
	fixture_build(f, plain, 4, "premium");
	snprintf(fake, sizeof(fake), "%s/fake-gnuplot", tmproot);
	assert_non_null(fp = fopen(fake, "w"));
	fputs("#!/bin/sh\n: > model_comparison.png.tmp\necho 'boom: no luck' >&2\nexit 1\n", fp);
	fclose(fp);
	assert_int_equal(chmod(fake, 0755), 0);
	snprintf(dir, sizeof(dir), "%s/fails", tmproot);
	o.out_dir = dir;
	o.gnuplot = fake;
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_INTERNAL);
	assert_string_equal(err, "chart model_comparison: gnuplot exited 1: boom: no luck");
	assert_rendered(dir, &f->r);
	assert_false(exists(dir, "model_comparison.png"));
	assert_int_equal(run_checker(dir, NULL, NULL), 0);
	assert_clean(tmproot, dir);
	free(f);
}

static void
test_replace(void **state)
{
	static const char *const bad[] = { "", ".", "./", "..", "../", "/", "x/..", "x/." };
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	char dir[400], err[512], path[600];
	size_t i;
	FILE *fp;

	(void)state;
	assert_non_null(f);
	fixture_build(f, plain, 3, "premium");
	/* A directory that is not a report is never replaced. */
	snprintf(dir, sizeof(dir), "%s/foreign", tmproot);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/keep.txt", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("precious\n", fp);
	fclose(fp);
	o.out_dir = dir;
	expect_write(&f->r, NULL, &o, err, sizeof(err), TP_FAILED_PRECONDITION);
	assert_non_null(strstr(err, "not a touchpoint report"));
	assert_true(exists(dir, "keep.txt"));

	/* A previous report is replaced as a whole; its stale files go. */
	snprintf(dir, sizeof(dir), "%s/again/", tmproot);
	o.out_dir = dir;
	expect_write(&f->r, NULL, &o, err, sizeof(err), TP_OK);
	snprintf(path, sizeof(path), "%s/stale.png", dir);
	assert_non_null(fp = fopen(path, "w"));
	fputs("x", fp);
	fclose(fp);
	f->totals.conversions = 7;
	expect_write(&f->r, NULL, &o, err, sizeof(err), TP_OK);
	assert_false(exists(dir, "stale.png"));
	assert_false(exists(dir, "path_length.png")); /* no paths given */
	assert_rendered(dir, &f->r);
	assert_int_equal(run_checker(dir, NULL, NULL), 0);
	assert_clean(tmproot, dir);

	/* A parent that does not exist: the user's path is named, nothing is left behind. */
	snprintf(dir, sizeof(dir), "%s/no/such/parent", tmproot);
	o.out_dir = dir;
	expect_write(&f->r, NULL, &o, err, sizeof(err), TP_FAILED_PRECONDITION);
	assert_non_null(strstr(err, dir));
	assert_non_null(strstr(err, "cannot create"));

	expect_write(NULL, NULL, &o, err, sizeof(err), TP_INVALID_ARGUMENT);
	/* Paths that name no directory of their own; report_check_out agrees. */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.out_dir = bad[i];
		expect_write(&f->r, NULL, &o, err, sizeof(err), TP_INVALID_ARGUMENT);
		assert_int_equal(report_check_out(bad[i], err, sizeof(err)), TP_INVALID_ARGUMENT);
	}
	snprintf(dir, sizeof(dir), "%s/no/such/parent", tmproot);
	assert_int_equal(report_check_out(dir, err, sizeof(err)), TP_FAILED_PRECONDITION);
	assert_non_null(strstr(err, "cannot create"));
	snprintf(dir, sizeof(dir), "%s/foreign", tmproot);
	assert_int_equal(report_check_out(dir, err, sizeof(err)), TP_FAILED_PRECONDITION);
	snprintf(dir, sizeof(dir), "%s/again", tmproot);
	assert_int_equal(report_check_out(dir, err, sizeof(err)), TP_OK);
	snprintf(dir, sizeof(dir), "%s/new", tmproot);
	assert_int_equal(report_check_out(dir, err, sizeof(err)), TP_OK);
	free(f);
}

static void
test_clean(void **state)
{
	char buf[64];

	(void)state;
	report_clean(buf, sizeof(buf), "a\"b\tc\n\\", 0, 1);
	assert_string_equal(buf, "a\001b\xe2\x87\xa5"
	                         "c\xe2\x86\xb5\003");
	report_clean(buf, sizeof(buf), "\x01\x7f\xc2\x85", 0, 1); /* C0, DEL, C1 */
	assert_string_equal(buf, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	report_clean(buf, sizeof(buf), "a\"b", 0, 0);
	assert_string_equal(buf, "a\"b");
	report_clean(buf, sizeof(buf), "ok\xff\xc0\x80!", 0, 0); /* invalid, overlong */
	assert_string_equal(buf, "ok\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!");
	report_clean(buf, sizeof(buf), "", 0, 0);
	assert_string_equal(buf, "(empty)");
	report_clean(buf, sizeof(buf), "abcdefgh", 5, 0);
	assert_string_equal(buf, "abcd\xe2\x80\xa6");
	report_clean(buf, sizeof(buf), "abcde", 5, 0);
	assert_string_equal(buf, "abcde");
	report_clean(buf, 8, "abcdefghijkl", 0, 0); /* bounded by the buffer */
	assert_string_equal(buf, "abcd\xe2\x80\xa6");
	report_clean(buf, sizeof(buf), "éééé", 3, 0);
	assert_string_equal(buf, "éé\xe2\x80\xa6");
	report_clean(buf, sizeof(buf),
	             "a\xe2\x80\xa8"
	             "b\xe2\x80\xa9"
	             "c",
	             0, 0); /* U+2028/9 */
	assert_string_equal(buf, "a↵b↵c");
	report_clean(buf, sizeof(buf), " ", 0, 1); /* spaces at the edges only */
	assert_string_equal(buf, "␣");
	report_clean(buf, sizeof(buf), "   ", 0, 0);
	assert_string_equal(buf, "␣␣␣");
	report_clean(buf, sizeof(buf), "  a b  ", 0, 0);
	assert_string_equal(buf, "␣␣a b␣␣");
	report_clean(buf, sizeof(buf), "␣a", 0, 0); /* idempotent */
	assert_string_equal(buf, "␣a");
	report_clean(buf, sizeof(buf), " abcdefgh", 5, 0);
	assert_string_equal(buf, "␣abc…");
}

/*
 * Spend on channels that earned nothing: no CPA anywhere. The chart of nothing is left
 * out (gnuplot refused it, and the report failed), and each undefined cell of the HTML
 * table is a dash in its own cell, so later values stay under their headings.
 */
static void
test_spend_undefined(void **state)
{
	static const char *const other[] = { "tv", "radio", "print" };
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	char dir[400], err[512], path[600], *html;
	size_t i, len = 0;

	(void)state;
	assert_non_null(f);
	fixture_build(f, plain, 3, "premium");
	for (i = 0; i < 3; i++)
		f->spend[i].channel = (char *)other[i];
	snprintf(dir, sizeof(dir), "%s/nocpa", tmproot);
	o.out_dir = dir;
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_OK);
	assert_true(exists(dir, "spend_cost.svg"));
	assert_false(exists(dir, "spend_cpa.svg"));
	/* ROAS is defined (0 value on a known cost) but 0 everywhere: nothing to draw. */
	assert_false(exists(dir, "spend_roas.svg"));
	snprintf(path, sizeof(path), "%s/index.html", dir);
	assert_non_null(html = slurp(path, &len));
	assert_non_null(strstr(html, "<td>–</td>"));
	assert_null(strstr(html, "</td>–"));
	assert_null(strstr(html, "is missing"));
	free(html);
	assert_int_equal(run_checker(dir, NULL, NULL), 0);
	assert_clean(tmproot, dir);
	free(f);
}

/*
 * A channel with spend but no touches: ROAS is defined (cost 50, value 0: ROAS 0) in the
 * table as in the chart; only CPA, without conversions, is a dash.
 */
static void
test_spend_roas_zero(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	char dir[400], err[512], path[600], *html;
	size_t len = 0;

	(void)state;
	assert_non_null(f);
	fixture_build(f, plain, 3, "premium");
	f->spend[2].channel = "tv";
	f->spend[2].amount = 50;
	snprintf(dir, sizeof(dir), "%s/roas0", tmproot);
	o.out_dir = dir;
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_OK);
	snprintf(path, sizeof(path), "%s/index.html", dir);
	assert_non_null(html = slurp(path, &len));
	if (strstr(html, "<td class=\"name\">tv</td><td>50.00</td><td>EUR</td>"
	                 "<td>–</td><td>–</td><td>–</td><td>–</td>"
	                 "<td>0.00</td><td>0.00</td><td>0.00</td><td>0.00</td></tr>") == NULL)
		fail_msg("tv row: %s", strstr(html, "<td class=\"name\">tv</td>"));
	free(html);
	assert_true(exists(dir, "spend_roas.svg"));
	free(f);
}

/*
 * Names that gnuplot's data reading used to eat: "NaN" (the missing-data marker) lost its
 * label, and leading spaces were stripped, so " " and "  " were blank and alike. Every
 * chart draws them literally, edge spaces as "␣" (U+2423), and so does index.html.
 */
static void
test_names_literal(void **state)
{
	static const char *const odd[] = { "NaN", " ", "  ", "  lead", "trail ", "email" };
	static const char *const want[] = { "NaN", "␣", "␣␣", "␣␣lead", "trail␣", "email" };
	static const char *const svgs[] = { "model_comparison.svg",  "value_by_channel.svg",
		                            "daily_conversions.svg", "markov_transitions.svg",
		                            "spend_cost.svg",        "removal_effects.svg" };
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	char dir[400], err[512], file[400];
	size_t i;
	FILE *fp;

	(void)state;
	assert_non_null(f);
	fixture_build(f, odd, 6, "NaN");
	snprintf(dir, sizeof(dir), "%s/literal", tmproot);
	o.out_dir = dir;
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_OK);
	snprintf(file, sizeof(file), "%s/literal.txt", tmproot);
	assert_non_null(fp = fopen(file, "w"));
	for (i = 0; i < 6; i++)
		fprintf(fp, "=%s\t%s\n", want[i], want[i]);
	fclose(fp);
	for (i = 0; i < sizeof(svgs) / sizeof(svgs[0]); i++) {
		print_message("%s\n", svgs[i]);
		assert_int_equal(run_checker(dir, file, svgs[i]), 0);
	}
	/* Paths join the same forms; the segment named NaN is named in its title. */
	assert_non_null(fp = fopen(file, "w"));
	fputs("=NaN\tNaN\n=␣␣\t␣␣\n=␣ > ␣␣ > ␣␣lead > trail␣\t␣\n", fp);
	fclose(fp);
	assert_int_equal(run_checker(dir, file, "top_paths.svg"), 0);
	assert_non_null(fp = fopen(file, "w"));
	fputs("Segment plan = NaN: \tplan = NaN\n", fp);
	fclose(fp);
	assert_int_equal(run_checker(dir, file, "segment_1_model_comparison.svg"), 0);
	free(f);
}

/* The gnuplot on PATH, as an absolute path, into dst; 0 when found. */
static int
gnuplot_path(char *dst, size_t len)
{
	const char *path = getenv("PATH"), *p, *e;
	size_t n;

	for (p = path != NULL ? path : "/usr/bin:/bin";; p = e + 1) {
		e = strchr(p, ':');
		n = e == NULL ? strlen(p) : (size_t)(e - p);
		if (n > 0 && p[0] == '/' &&
		    (size_t)snprintf(dst, len, "%.*s/gnuplot", (int)n, p) < len &&
		    access(dst, X_OK) == 0)
			return 0;
		if (e == NULL)
			return -1;
	}
}

/*
 * A relative --gnuplot, a relative PATH entry and an empty one (the working directory):
 * gnuplot runs in the report's temporary directory, so the path is made absolute first
 * (it was looked up here and executed there: "gnuplot exited 127").
 */
static void
test_gnuplot_relative(void **state)
{
	static const char *const paths[] = { "gpbin:/nonexistent", ":/nonexistent",
		                             "/nonexistent:gpbin" };
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	char dir[400], err[512], real[600], link[600], cwd[1024], *oldpath;
	size_t i;

	(void)state;
	assert_non_null(f);
	fixture_build(f, plain, 3, "premium");
	assert_int_equal(gnuplot_path(real, sizeof(real)), 0);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_non_null(oldpath = strdup(getenv("PATH")));
	snprintf(link, sizeof(link), "%s/gpbin", tmproot);
	assert_int_equal(mkdir(link, 0755), 0);
	snprintf(link, sizeof(link), "%s/gpbin/gnuplot", tmproot);
	assert_int_equal(symlink(real, link), 0);
	snprintf(link, sizeof(link), "%s/gnuplot", tmproot);
	assert_int_equal(symlink(real, link), 0);
	assert_int_equal(chdir(tmproot), 0);

	o.out_dir = "rel-option";
	o.gnuplot = "gpbin/gnuplot";
	expect_write(&f->r, NULL, &o, err, sizeof(err), TP_OK);
	assert_true(exists("rel-option", "model_comparison.png"));
	o.gnuplot = NULL;
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		snprintf(dir, sizeof(dir), "%s/rel-path-%zu", tmproot, i);
		o.out_dir = dir;
		assert_int_equal(setenv("PATH", paths[i], 1), 0);
		expect_write(&f->r, NULL, &o, err, sizeof(err), TP_OK);
		assert_true(exists(dir, "model_comparison.svg"));
	}
	assert_int_equal(setenv("PATH", oldpath, 1), 0);
	assert_int_equal(chdir(cwd), 0);
	free(oldpath);
	free(f);
}

static mode_t
dir_mode(const char *dir)
{
	struct stat st;

	assert_int_equal(stat(dir, &st), 0);
	return st.st_mode & 07777;
}

/*
 * The report directory is made as mkdir(1) would (0777 less the umask), not 0755 whatever
 * the umask; a replaced report, or an empty directory filled, keeps no wider a mode.
 */
static void
test_umask(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	char dir[400], err[512];
	mode_t old;

	(void)state;
	assert_non_null(f);
	fixture_build(f, plain, 3, "premium");
	snprintf(dir, sizeof(dir), "%s/umask", tmproot);
	o.out_dir = dir;
	old = umask(027);
	expect_write(&f->r, NULL, &o, err, sizeof(err), TP_OK);
	assert_int_equal(dir_mode(dir), 0750);
	umask(077);
	expect_write(&f->r, NULL, &o, err, sizeof(err), TP_OK);
	assert_int_equal(dir_mode(dir), 0700);
	/* Made private by hand: a new report with a wider umask stays private. */
	umask(022);
	assert_int_equal(chmod(dir, 0710), 0);
	expect_write(&f->r, NULL, &o, err, sizeof(err), TP_OK);
	assert_int_equal(dir_mode(dir), 0710);
	snprintf(dir, sizeof(dir), "%s/umask-empty", tmproot);
	assert_int_equal(mkdir(dir, 0700), 0);
	expect_write(&f->r, NULL, &o, err, sizeof(err), TP_OK);
	assert_int_equal(dir_mode(dir), 0700);
	umask(old);
	free(f);
}

/*
 * A response in which nothing was credited: no conversions, or every value 0. The charts
 * of nothing (shares, values, removal effects, CPA, ROAS, the days) are left out, not
 * drawn empty, and index.html says so in their place without calling them missing.
 */
static void
test_nothing_to_show(void **state)
{
	static const char *const gone[] = { "model_comparison",
		                            "value_by_channel",
		                            "removal_effects",
		                            "spend_cpa",
		                            "spend_roas",
		                            "daily_conversions",
		                            "daily_value",
		                            "segment_1_model_comparison",
		                            "segment_2_model_comparison" };
	static const char *const kept[] = { "spend_cost", "path_length", "markov_transitions" };
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	char dir[400], err[512], path[600], name[128], *html;
	size_t i, m, len = 0;

	(void)state;
	assert_non_null(f);
	fixture_build(f, plain, 4, "premium");
	f->totals.conversions = 0;
	f->totals.value = 0;
	for (m = 0; m < NMOD; m++)
		for (i = 0; i < 4; i++) {
			f->cc[m][i].conversions = 0;
			f->cc[m][i].value = 0;
			f->cc[m][i].share = 0;
			f->cc[m][i].removal_effect = 0;
		}
	for (i = 0; i < f->r.n_daily; i++) {
		f->daily[i].conversions = 0;
		f->daily[i].value = 0;
	}
	snprintf(dir, sizeof(dir), "%s/nothing", tmproot);
	o.out_dir = dir;
	o.pdf = 1;
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_OK);
	for (i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
		snprintf(name, sizeof(name), "%s.svg", gone[i]);
		if (exists(dir, name))
			fail_msg("%s: drawn with nothing to show", name);
		snprintf(name, sizeof(name), "%s.png", gone[i]);
		assert_false(exists(dir, name));
	}
	for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		snprintf(name, sizeof(name), "%s.svg", kept[i]);
		assert_true(exists(dir, name));
	}
	assert_true(exists(dir, "report.pdf"));
	snprintf(path, sizeof(path), "%s/index.html", dir);
	assert_non_null(html = slurp(path, &len));
	assert_null(strstr(html, "is missing"));
	assert_null(strstr(html, "charts are missing"));
	assert_non_null(strstr(html, "<code>model_comparison</code> is left out"));
	free(html);
	assert_int_equal(run_checker(dir, NULL, NULL), 0);
	assert_clean(tmproot, dir);
	free(f);
}

/* A single model is named in the titles of its charts, as there is no legend. */
static void
test_single_model(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	Touchpoint__V1__ModelResult *one[1];
	char dir[400], err[512], file[400];
	FILE *fp;

	(void)state;
	assert_non_null(f);
	fixture_build(f, plain, 4, "premium");
	one[0] = &f->mod[3]; /* markov: removal effects too */
	f->r.models = one;
	f->r.n_models = 1;
	f->seg[0].n_models = 1;
	f->seg[1].n_models = 1;
	snprintf(dir, sizeof(dir), "%s/single", tmproot);
	o.out_dir = dir;
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_OK);
	snprintf(file, sizeof(file), "%s/single.txt", tmproot);
	assert_non_null(fp = fopen(file, "w"));
	fputs("=Share of attributed conversions per channel under markov\t"
	      "Share of attributed conversions per channel under markov\n",
	      fp);
	fclose(fp);
	assert_int_equal(run_checker(dir, file, "model_comparison.svg"), 0);
	assert_non_null(fp = fopen(file, "w"));
	fputs("=Attributed value per channel under markov\tAttributed value per channel "
	      "under markov\n",
	      fp);
	fclose(fp);
	assert_int_equal(run_checker(dir, file, "value_by_channel.svg"), 0);
	assert_non_null(fp = fopen(file, "w"));
	fputs("per channel under markov\tper channel under markov\n", fp);
	fclose(fp);
	assert_int_equal(run_checker(dir, file, "removal_effects.svg"), 0);
	assert_int_equal(run_checker(dir, file, "spend_cpa.svg"), 0);
	assert_int_equal(run_checker(dir, file, "spend_roas.svg"), 0);
	assert_non_null(fp = fopen(file, "w")); /* the segments' one model is first_touch */
	fputs("per channel under first_touch\tper channel under first_touch\n", fp);
	fclose(fp);
	assert_int_equal(run_checker(dir, file, "segment_1_model_comparison.svg"), 0);
	free(f);
}

/*
 * Ten models: every bar colour must show on white — enough luminance contrast (WCAG
 * ratio 1.5) or colour; Tol's pale grey #DDDDDD (1.36, no hue) did not.
 */
static void
test_palette(void **state)
{
	static const char *const names[10] = { "m0", "m1", "m2", "m3", "m4",
		                               "m5", "m6", "m7", "m8", "m9" };
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	Touchpoint__V1__ModelResult mods[10], *modp[10];
	char dir[400], err[512], path[600], *svg;
	const char *p;
	size_t i, len = 0, nfill = 0;
	unsigned rgb[3];

	(void)state;
	assert_non_null(f);
	fixture_build(f, plain, 8, "premium");
	for (i = 0; i < 10; i++) {
		mods[i] = f->mod[i % NMOD];
		mods[i].model = (char *)names[i];
		mods[i].n_transitions = 0;
		modp[i] = &mods[i];
	}
	f->r.models = modp;
	f->r.n_models = 10;
	snprintf(dir, sizeof(dir), "%s/palette", tmproot);
	o.out_dir = dir;
	expect_write(&f->r, NULL, &o, err, sizeof(err), TP_OK);
	snprintf(path, sizeof(path), "%s/model_comparison.svg", dir);
	assert_non_null(svg = slurp(path, &len));
	for (p = svg; (p = strstr(p, "<polygon fill = 'rgb(")) != NULL; p++) {
		double l = 0, k[3] = { 0.2126, 0.7152, 0.0722 }, ratio;
		unsigned lo = 255, hi = 0;

		assert_int_equal(
		    sscanf(p, "<polygon fill = 'rgb(%u,%u,%u)", &rgb[0], &rgb[1], &rgb[2]), 3);
		for (i = 0; i < 3; i++) {
			double c = rgb[i] / 255.0;

			l += k[i] * (c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4));
			lo = rgb[i] < lo ? rgb[i] : lo;
			hi = rgb[i] > hi ? rgb[i] : hi;
		}
		ratio = 1.05 / (l + 0.05);
		if (ratio < 1.5 && hi - lo < 64)
			fail_msg("bar colour rgb(%u, %u, %u): contrast %.2f on white, no hue",
			         rgb[0], rgb[1], rgb[2], ratio);
		nfill++;
	}
	assert_true(nfill >= 10 * 8);
	free(svg);
	free(f);
}

/*
 * Texts of index.html and the titles: without --to the window ends after the last event
 * (not "to (exclusive): the last event"); a long segment name is cut at a character, with
 * an ellipsis, not inside a UTF-8 sequence (which showed U+FFFD).
 */
static void
test_titles(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	char dir[400], err[512], path[600], seg[512], *html;
	size_t i, len = 0;

	(void)state;
	assert_non_null(f);
	seg[0] = 'x';
	for (i = 0; i < 200; i++)
		memcpy(seg + 1 + 2 * i, "é", 2);
	seg[401] = '\0';
	fixture_build(f, plain, 3, seg);
	snprintf(dir, sizeof(dir), "%s/titles", tmproot);
	o.out_dir = dir;
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_OK);
	snprintf(path, sizeof(path), "%s/index.html", dir);
	assert_non_null(html = slurp(path, &len));
	assert_null(strstr(html, ">the last event"));
	assert_non_null(strstr(html, "<th class=\"name\">to</th><td class=\"name\">after the last "
	                             "event</td>"));
	assert_null(strstr(html, "\xef\xbf\xbd"));
	assert_non_null(strstr(html, "éé…: share of attributed conversions per channel"));
	free(html);
	snprintf(path, sizeof(path), "%s/segment_1_model_comparison.svg", dir);
	assert_non_null(html = slurp(path, &len));
	assert_null(strstr(html, "\xef\xbf\xbd"));
	assert_non_null(strstr(html, "éé…: share of attributed conversions per channel"));
	free(html);
	/* With --to, the bound is named and exclusive. */
	f->r.to_case = TOUCHPOINT__V1__ATTRIBUTE_RESPONSE__TO_TO_US;
	f->r.to_us = INT64_C(1711929600) * 1000000; /* 2024-04-01 */
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_OK);
	snprintf(path, sizeof(path), "%s/index.html", dir);
	assert_non_null(html = slurp(path, &len));
	assert_non_null(strstr(html, "<th class=\"name\">to (exclusive)</th><td "
	                             "class=\"name\">2024-04-01</td>"));
	free(html);
	free(f);
}

/*
 * The bar or stack that sums the channels beyond the top ones is "(N others)", unlike any
 * channel shown: a real channel "(other)" keeps its own bar (it was merged with the
 * bucket's label), and one called "(3 others)" makes the bucket "(3 others)*".
 */
static void
test_other_label(void **state)
{
	static const char *const names[] = { "c01",        "(other)", "c03", "c04", "c05", "c06",
		                             "(3 others)", "c08",     "c09", "c10", "c11", "c12",
		                             "c13",        "c14",     "c15", "c16", "c17", "c18" };
	static const char *const starred[] = { "(3 others)",
		                               "(3 others)*",
		                               "(3 others)**",
		                               "(3 others)***",
		                               "(3 others)****",
		                               "(3 others)*****",
		                               "(3 others)******",
		                               "(3 others)*******",
		                               "(3 others)********",
		                               "c10",
		                               "c11",
		                               "c12",
		                               "c13",
		                               "c14",
		                               "c15",
		                               "c16",
		                               "c17",
		                               "c18" };
	struct fixture *f = calloc(1, sizeof(*f));
	struct report_options o = { 0 };
	char dir[400], err[512], file[500], *html;
	size_t len = 0;
	FILE *fp;

	(void)state;
	assert_non_null(f);
	fixture_build(f, names, 18, "seg");
	snprintf(dir, sizeof(dir), "%s/other", tmproot);
	o.out_dir = dir;
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_OK);
	snprintf(file, sizeof(file), "%s/other.txt", tmproot);
	assert_non_null(fp = fopen(file, "w"));
	fputs("=(other)\t(other)\n=(3 others)\t(3 others)\n=(3 others)*\t(3 others)*\n", fp);
	fclose(fp);
	assert_int_equal(run_checker(dir, file, "model_comparison.svg"), 0);
	snprintf(file, sizeof(file), "%s/model_comparison.svg", dir);
	assert_non_null(html = slurp(file, &len));
	assert_non_null(strstr(html, "the rest as (3 others)*"));
	free(html);
	/* Daily stacks: the top 7, then the 11 others (no channel is called that). */
	snprintf(file, sizeof(file), "%s/daily_conversions.svg", dir);
	assert_non_null(html = slurp(file, &len));
	assert_non_null(strstr(html, ">(11 others)<"));
	free(html);
	/* Nine shown channels take the label with 0 to 8 stars: the bucket gets 9. */
	fixture_build(f, starred, 18, "seg");
	expect_write(&f->r, &f->paths, &o, err, sizeof(err), TP_OK);
	snprintf(file, sizeof(file), "%s/model_comparison.svg", dir);
	assert_non_null(html = slurp(file, &len));
	assert_non_null(strstr(html, ">(3 others)*********<"));
	assert_non_null(strstr(html, ">(3 others)********<"));
	free(html);
	free(f);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean),           cmocka_unit_test(test_full),
		cmocka_unit_test(test_hostile),         cmocka_unit_test(test_no_gnuplot),
		cmocka_unit_test(test_gnuplot_fails),   cmocka_unit_test(test_replace),
		cmocka_unit_test(test_spend_undefined), cmocka_unit_test(test_spend_roas_zero),
		cmocka_unit_test(test_names_literal),   cmocka_unit_test(test_gnuplot_relative),
		cmocka_unit_test(test_umask),           cmocka_unit_test(test_nothing_to_show),
		cmocka_unit_test(test_single_model),    cmocka_unit_test(test_palette),
		cmocka_unit_test(test_titles),          cmocka_unit_test(test_other_label),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests_name("reports", tests, setup, teardown);
}
