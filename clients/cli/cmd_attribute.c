/*
 * touchpoint attribute, paths and export paths: Attribution/Attribute and /Paths (or a
 * local path file), rendered by the engine's attr_render_*. The window and model options
 * are shared with `report` (attr_opts_*).
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_attribute.h"
#include "csv.h"
#include "timefmt.h"
#ifdef TP_HAVE_ENGINE
#include "attribution/engine.h"

/* Rows asked per page of export paths; the daemon ends a page sooner when it is full. */
#define EXPORT_PAGE_ROWS 1000000
#endif

/* The models of an empty list (SPEC §4), in the engine's order. */
static const char *const attr_all_models[] = {
	"first_touch",    "last_touch",    "last_non_direct", "linear",  "time_decay",
	"position_based", "participation", "markov",          "shapley", "shapley_rate",
};

const struct option attr_longopts[] = {
	{ "model", required_argument, NULL, 'm' },
	{ "lookback", required_argument, NULL, 'l' },
	{ "from", required_argument, NULL, ATTR_OPT_FROM },
	{ "to", required_argument, NULL, ATTR_OPT_TO },
	{ "repeats", required_argument, NULL, ATTR_OPT_REPEATS },
	{ "level", required_argument, NULL, ATTR_OPT_LEVEL },
	{ "half-life", required_argument, NULL, ATTR_OPT_HALF_LIFE },
	{ "order", required_argument, NULL, ATTR_OPT_ORDER },
	{ "conversion", required_argument, NULL, ATTR_OPT_CONVERSION },
	{ "by", required_argument, NULL, ATTR_OPT_BY },
	{ "first-weight", required_argument, NULL, ATTR_OPT_FIRST_WEIGHT },
	{ "last-weight", required_argument, NULL, ATTR_OPT_LAST_WEIGHT },
	{ "direct-channels", required_argument, NULL, ATTR_OPT_DIRECT },
	{ "matrix", no_argument, NULL, ATTR_OPT_MATRIX },
};
const size_t attr_nlongopts = sizeof(attr_longopts) / sizeof(attr_longopts[0]);

void
attr_opts_init(struct attr_opts *o)
{
	memset(o, 0, sizeof(*o));
	touchpoint__v1__attribute_request__init(&o->req);
	touchpoint__v1__window__init(&o->win);
	o->req.window = &o->win;
}

static int
attr_weight(const char *cmd, const char *opt, const char *s, char *out, size_t len)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !isfinite(v) || v < 0 || v > 1)
		return cli_usage(cmd, "--%s wants a number in [0, 1], not '%s'", opt, s);
	snprintf(out, len, "%s", s);
	return 0;
}

int
attr_opts_parse(struct attr_opts *o, const char *cmd, int ch, const char *arg)
{
	int64_t v;
	int rv;

	switch (ch) {
	case 'm':
		o->model_list = arg;
		return 0;
	case 'l':
		if (tf_parse_duration(arg, &v) != 0)
			return cli_usage(cmd, "bad --lookback '%s' (e.g. 30d, 12h, 0)", arg);
		o->win.lookback_case = TOUCHPOINT__V1__WINDOW__LOOKBACK_LOOKBACK_S;
		o->win.lookback_s = v;
		return 0;
	case ATTR_OPT_FROM:
	case ATTR_OPT_TO:
		if ((rv = tf_parse_time(arg, &v)) == TF_OUT_OF_RANGE)
			return cli_usage(cmd, "--%s '%s' is out of the supported range 1970-2200",
			                 ch == ATTR_OPT_FROM ? "from" : "to", arg);
		if (rv != 0)
			return cli_usage(cmd, "bad --%s '%s' (RFC 3339, YYYY-MM-DD or @µs)",
			                 ch == ATTR_OPT_FROM ? "from" : "to", arg);
		if (ch == ATTR_OPT_FROM) {
			o->win.from_case = TOUCHPOINT__V1__WINDOW__FROM_FROM_US;
			o->win.from_us = v;
		} else {
			o->win.to_case = TOUCHPOINT__V1__WINDOW__TO_TO_US;
			o->win.to_us = v;
		}
		return 0;
	case ATTR_OPT_REPEATS:
		if (strcmp(arg, "keep") == 0)
			o->win.repeats = TOUCHPOINT__V1__REPEATS__REPEATS_KEEP;
		else if (strcmp(arg, "collapse") == 0)
			o->win.repeats = TOUCHPOINT__V1__REPEATS__REPEATS_COLLAPSE;
		else
			return cli_usage(cmd, "--repeats is keep or collapse");
		return 0;
	case ATTR_OPT_LEVEL:
		if (strcmp(arg, "channel") == 0)
			o->win.level = TOUCHPOINT__V1__LEVEL__LEVEL_CHANNEL;
		else if (strcmp(arg, "campaign") == 0)
			o->win.level = TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN;
		else
			return cli_usage(cmd, "--level is channel or campaign");
		return 0;
	case ATTR_OPT_HALF_LIFE:
		if (tf_parse_duration(arg, &v) != 0 || v <= 0)
			return cli_usage(cmd, "bad --half-life '%s' (e.g. 7d)", arg);
		snprintf(o->half_life, sizeof(o->half_life), "%lld", (long long)v);
		return 0;
	case ATTR_OPT_ORDER:
		if (strlen(arg) != 1 || arg[0] < '1' || arg[0] > '4')
			return cli_usage(cmd, "--order is 1..4");
		snprintf(o->order, sizeof(o->order), "%s", arg);
		return 0;
	case ATTR_OPT_CONVERSION:
		o->win.conversion = (char *)arg;
		return 0;
	case ATTR_OPT_BY:
		o->req.by_trait = (char *)arg;
		return 0;
	case ATTR_OPT_FIRST_WEIGHT:
		return attr_weight(cmd, "first-weight", arg, o->first_weight,
		                   sizeof(o->first_weight));
	case ATTR_OPT_LAST_WEIGHT:
		return attr_weight(cmd, "last-weight", arg, o->last_weight, sizeof(o->last_weight));
	case ATTR_OPT_DIRECT:
		o->direct = arg;
		return 0;
	case ATTR_OPT_MATRIX:
		o->req.transition_matrix = 1;
		return 0;
	default:
		return -1;
	}
}

/* Adds key=value to spec when the model takes it; returns 1 if it did. */
static int
attr_param(struct attr_opts *o, size_t mi, const char *model, const char *want, const char *key,
           const char *value)
{
	Touchpoint__V1__Param *p;

	if (value == NULL || value[0] == '\0' || strcmp(model, want) != 0 ||
	    o->specs[mi].n_params == ATTR_MAX_PARAMS)
		return 0;
	p = &o->params[mi][o->specs[mi].n_params];
	touchpoint__v1__param__init(p);
	p->key = (char *)key;
	p->value = (char *)value;
	o->paramp[mi][o->specs[mi].n_params++] = p;
	return 1;
}

int
attr_opts_finish(struct attr_opts *o, const char *cmd)
{
	const char *list = o->model_list != NULL ? o->model_list : "all";
	int all = strcmp(list, "all") == 0;
	int any_param = o->half_life[0] || o->order[0] || o->first_weight[0] || o->last_weight[0] ||
	                o->direct != NULL;
	int used_hl = 0, used_order = 0, used_w = 0, used_direct = 0, has_markov = all;
	const char *p, *q;
	size_t i, n;

	if (all && !any_param)
		return 0; /* an empty list: every model with its defaults */
	if (all) {
		for (i = 0; i < sizeof(attr_all_models) / sizeof(attr_all_models[0]); i++)
			snprintf(o->names[i], sizeof(o->names[i]), "%s", attr_all_models[i]);
		o->nmodels = i;
	} else {
		for (p = list; *p != '\0'; p = *q ? q + 1 : q) {
			q = strchr(p, ',');
			if (q == NULL)
				q = p + strlen(p);
			n = (size_t)(q - p);
			if (n == 0 || n >= sizeof(o->names[0]))
				return cli_usage(cmd, "bad --model list '%s'", list);
			if (o->nmodels == ATTR_MAX_MODELS)
				return cli_usage(cmd, "more than %d models", ATTR_MAX_MODELS);
			memcpy(o->names[o->nmodels], p, n);
			o->names[o->nmodels++][n] = '\0';
		}
	}
	for (i = 0; i < o->nmodels; i++) {
		const char *m = o->names[i];

		touchpoint__v1__model_spec__init(&o->specs[i]);
		o->specs[i].model = o->names[i];
		o->specs[i].params = o->paramp[i];
		used_hl |= attr_param(o, i, m, "time_decay", "half_life_s", o->half_life);
		used_order |= attr_param(o, i, m, "markov", "order", o->order);
		used_w |= attr_param(o, i, m, "position_based", "first_weight", o->first_weight);
		used_w |= attr_param(o, i, m, "position_based", "last_weight", o->last_weight);
		used_direct |= attr_param(o, i, m, "last_non_direct", "direct_channels", o->direct);
		has_markov |= strcmp(m, "markov") == 0;
		o->specp[i] = &o->specs[i];
	}
	if (o->half_life[0] && !used_hl)
		return cli_usage(cmd, "--half-life applies to time_decay, which is not selected");
	if (o->order[0] && !used_order)
		return cli_usage(cmd, "--order applies to markov, which is not selected");
	if ((o->first_weight[0] || o->last_weight[0]) && !used_w)
		return cli_usage(cmd, "--first-weight/--last-weight apply to position_based, "
		                      "which is not selected");
	if (o->direct != NULL && !used_direct)
		return cli_usage(
		    cmd, "--direct-channels applies to last_non_direct, which is not selected");
	/* Only markov has transitions: without it --matrix would print nothing, silently. */
	if (o->req.transition_matrix && !has_markov)
		return cli_usage(cmd, "--matrix needs the markov model, which is not selected");
	o->req.n_models = o->nmodels;
	o->req.models = o->specp;
	return 0;
}

#ifdef TP_HAVE_ENGINE
static enum attr_format
attr_fmt(enum cli_format f)
{
	return f == CLI_JSON  ? ATTR_FORMAT_JSON
	       : f == CLI_CSV ? ATTR_FORMAT_CSV
	                      : ATTR_FORMAT_TABLE;
}

static void
matrix_pad(FILE *out, int n)
{
	while (n-- > 0)
		putc(' ', out);
}

/*
 * One model's transitions as an aligned from/to/probability list: the JSON's shape, which
 * stays readable at order 4 where a square grid of states would not.
 */
static void
matrix_table(FILE *out, const char *trait, const char *segment,
             const Touchpoint__V1__ModelResult *m)
{
	int wf = attr_text_width("from"), wt = attr_text_width("to");
	char p[32];
	size_t i;

	for (i = 0; i < m->n_transitions; i++) {
		if (attr_text_width(m->transitions[i]->from) > wf)
			wf = attr_text_width(m->transitions[i]->from);
		if (attr_text_width(m->transitions[i]->to) > wt)
			wt = attr_text_width(m->transitions[i]->to);
	}
	fputs("\ntransition matrix: ", out);
	attr_text_put(out, m->model);
	for (i = 0; i < m->n_params; i++) {
		fputs(i ? ", " : " (", out);
		attr_text_put(out, m->params[i]->key);
		putc(' ', out);
		attr_text_put(out, m->params[i]->value);
	}
	fputs(m->n_params ? ")" : "", out);
	if (segment != NULL) {
		fputs(", ", out);
		attr_text_put(out, trait);
		fputs(" = ", out);
		attr_text_put(out, segment);
	}
	putc('\n', out);
	fputs("from", out);
	matrix_pad(out, wf - attr_text_width("from") + 2);
	fputs("to", out);
	matrix_pad(out, wt - attr_text_width("to") + 2);
	fputs("probability\n", out);
	for (i = 0; i < m->n_transitions; i++) {
		attr_text_put(out, m->transitions[i]->from);
		matrix_pad(out, wf - attr_text_width(m->transitions[i]->from) + 2);
		attr_text_put(out, m->transitions[i]->to);
		matrix_pad(out, wt - attr_text_width(m->transitions[i]->to) + 2);
		snprintf(p, sizeof(p), "%.4f", m->transitions[i]->probability);
		matrix_pad(out, attr_text_width("probability") - attr_text_width(p));
		fputs(p, out);
		putc('\n', out);
	}
}

static void
matrix_csv(FILE *out, const char *segment, const Touchpoint__V1__ModelResult *m)
{
	char p[40];
	size_t i;

	for (i = 0; i < m->n_transitions; i++) {
		csv_put(out, segment);
		putc(',', out);
		csv_put(out, m->model);
		putc(',', out);
		csv_put(out, m->transitions[i]->from);
		putc(',', out);
		csv_put(out, m->transitions[i]->to);
		putc(',', out);
		/* Empty where JSON says null, as the credits' CSV does. */
		p[0] = '\0';
		if (isfinite(m->transitions[i]->probability))
			attr_format_number(p, sizeof(p), m->transitions[i]->probability);
		fputs(p, out);
		fputs("\r\n", out);
	}
}

static int
matrix_any(Touchpoint__V1__ModelResult *const *models, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (models[i]->n_transitions > 0)
			return 1;
	return 0;
}

/*
 * --matrix for table and CSV (the engine's JSON nests it in each model): after the
 * credits, each Markov model's transitions, the top level's first, then each segment's.
 * CSV starts a second table after an empty line, so a spreadsheet shows both and a
 * pivot of from × to gives the square matrix.
 */
static int
matrix_render(FILE *out, const Touchpoint__V1__AttributeResponse *r, enum cli_format fmt)
{
	size_t i, j;
	int any = matrix_any(r->models, r->n_models);

	for (i = 0; i < r->n_segments; i++)
		any |= matrix_any(r->segments[i]->models, r->segments[i]->n_models);
	if (!any || fmt == CLI_JSON)
		return 0;
	if (fmt == CLI_CSV)
		fputs("\r\nsegment,model,from,to,probability\r\n", out);
	for (i = 0; i < r->n_models; i++) {
		if (r->models[i]->n_transitions == 0)
			continue;
		if (fmt == CLI_CSV)
			matrix_csv(out, "", r->models[i]);
		else
			matrix_table(out, NULL, NULL, r->models[i]);
	}
	for (i = 0; i < r->n_segments; i++)
		for (j = 0; j < r->segments[i]->n_models; j++) {
			const Touchpoint__V1__ModelResult *m = r->segments[i]->models[j];

			if (m->n_transitions == 0)
				continue;
			if (fmt == CLI_CSV)
				matrix_csv(out, r->segments[i]->segment, m);
			else
				matrix_table(out, r->by_trait ? r->by_trait : "segment",
				             r->segments[i]->segment, m);
		}
	return ferror(out) ? -1 : 0;
}

/*
 * The options a path table cannot honour: it has no times, conversion names or traits.
 * Ignored, they would still be echoed in the JSON as if applied.
 */
static int
attr_pathfile_refuse(const struct attr_opts *o)
{
	const char *opt = NULL, *why = "timestamps";

	if (o->win.lookback_case == TOUCHPOINT__V1__WINDOW__LOOKBACK_LOOKBACK_S)
		opt = "--lookback";
	else if (o->win.from_case == TOUCHPOINT__V1__WINDOW__FROM_FROM_US)
		opt = "--from";
	else if (o->win.to_case == TOUCHPOINT__V1__WINDOW__TO_TO_US)
		opt = "--to";
	else if (o->win.conversion != NULL && o->win.conversion[0] != '\0')
		opt = "--conversion", why = "conversion names";
	else if (o->req.by_trait != NULL && o->req.by_trait[0] != '\0')
		opt = "--by", why = "traits";
	if (opt == NULL)
		return 0;
	return cli_usage("attribute", "%s does not apply to --paths: a path table has no %s", opt,
	                 why);
}
#endif

static const char attribute_help[] =
    "Usage: touchpoint attribute [options]\n"
    "\n"
    "Credits conversions (and value) to channels under each model (SPEC §4).\n"
    "  -m, --model LIST        comma-separated models, or all (default): first_touch,\n"
    "                          last_touch, last_non_direct, linear, time_decay,\n"
    "                          position_based (presets u_shaped, j_shaped, inverse_j),\n"
    "                          participation, markov, shapley, shapley_rate\n"
    "  -l, --lookback D        path window before each conversion: s m h d, 0 = unlimited\n"
    "                          (default: the daemon's default_lookback, 30d unless\n"
    "                          configured)\n"
    "  --from T, --to T        conversions in [from, to): RFC 3339, YYYY-MM-DD or\n"
    "                          @microseconds\n"
    "  --repeats keep|collapse consecutive touches on one channel (default keep)\n"
    "  --level channel|campaign unit of credit (default channel)\n"
    "  --half-life D           time_decay half-life (default 7d)\n"
    "  --order K               markov order 1..4 (default 1)\n"
    "  --first-weight W, --last-weight W   position_based weights (default 0.4/0.4)\n"
    "  --direct-channels LIST  last_non_direct's direct channels (default direct)\n"
    "  --conversion NAME       only conversions of this name\n"
    "  --by TRAIT              one section per value of this identify trait\n"
    "  --matrix                print markov's transition matrix too (markov must be\n"
    "                          among the models)\n"
    "  -p, --paths FILE        attribute a ChannelAttribution path table locally (no daemon;\n"
    "                          models that need timestamps are skipped; --lookback,\n"
    "                          --from, --to, --conversion and --by do not apply)\n"
    "  --format F              table (default), csv or json\n";

#ifdef TP_HAVE_ENGINE
/* A render's status as the exit code: out of memory says so (71), a write error is 74. */
static int
render_exit(int st)
{
	if (st == TP_RESOURCE_EXHAUSTED) {
		cli_msg("touchpoint: out of memory writing the output");
		return EX_OSERR;
	}
	return st == TP_OK ? EX_OK : EX_IOERR;
}
#endif

int
cmd_attribute(struct cli *g, int argc, char **argv)
{
#ifdef TP_HAVE_ENGINE
	struct option longopts[32];
	struct attr_opts o;
	Touchpoint__V1__AttributeResponse *r = NULL;
	enum cli_format fmt = CLI_TABLE;
	const char *pathfile = NULL;
	tp_client *c = NULL;
	char err[512];
	FILE *in;
	int ch, rv, st;

	attr_longopts_build(longopts, "paths", 'p');
	attr_opts_init(&o);
	while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "m:l:p:", longopts, NULL)) !=
	       -1) {
		if ((rv = cli_common(g, ch, attribute_help)) != -1) {
			if (rv != -2)
				return rv;
		} else if (ch == CLI_OPT_FORMAT) {
			if (cli_parse_format(optarg, &fmt) != 0)
				return cli_usage("attribute", "bad --format '%s'", optarg);
		} else if (ch == 'p') {
			pathfile = optarg;
		} else if ((rv = attr_opts_parse(&o, "attribute", ch, optarg)) != 0) {
			return rv > 0 ? rv : cli_bad_option("attribute", argv, ch);
		}
	}
	if (optind != argc)
		return cli_usage("attribute", "unexpected argument '%s'", argv[optind]);
	if ((rv = attr_opts_finish(&o, "attribute")) != 0)
		return rv;
	if (pathfile != NULL && (rv = attr_pathfile_refuse(&o)) != 0)
		return rv;
	if (pathfile != NULL) {
		in = strcmp(pathfile, "-") == 0 ? stdin : fopen(pathfile, "r");
		if (in == NULL) {
			int e = errno; /* writing the message may change it */

			cli_msg("touchpoint attribute: %s: %s", pathfile, strerror(e));
			/* as import: a file this user may not read is a permission, not no input */
			return e == EACCES ? EX_NOPERM : EX_NOINPUT;
		}
		err[0] = '\0';
		st = attr_pathfile_attribute(in, &o.req, &r, err, sizeof(err));
		if (in != stdin)
			fclose(in);
		if (st != TP_OK) {
			/* Every failure should say why; if one does not, its code still does. */
			if (err[0] == '\0')
				snprintf(err, sizeof(err), "attribution failed (%s)",
				         tp_strerror(st));
			cli_msg("touchpoint attribute: %s: %s", pathfile, err);
			return cli_local_exit_code(st); /* no daemon here */
		}
	} else {
		if ((rv = cli_connect(g, &c)) != EX_OK)
			return rv;
		/* Attribution scans every journey: give it longer than a point query. */
		tp_set_timeout(c, 600000);
		rv = cli_rpc(c, "/touchpoint.v1.Attribution/Attribute", &o.req.base,
		             &touchpoint__v1__attribute_response__descriptor,
		             (ProtobufCMessage **)&r);
		tp_close(c);
		if (rv != EX_OK)
			return rv;
	}
	st = attr_render_attribute(stdout, r, attr_fmt(fmt));
	if (st == TP_OK && matrix_render(stdout, r, fmt) != 0)
		st = TP_INTERNAL;
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return render_exit(st);
#else
	(void)g;
	(void)argc;
	(void)argv;
	(void)attribute_help;
	fprintf(stderr, "touchpoint attribute: built without the attribution engine\n");
	return EX_SOFTWARE;
#endif
}

void
attr_longopts_build(struct option *out, const char *extra, int extra_val)
{
	static const struct option common[] = { CLI_COMMON_LONGOPTS };
	size_t n = 0, i;

	for (i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		out[n++] = common[i];
	out[n++] = (struct option){ "format", required_argument, NULL, CLI_OPT_FORMAT };
	for (i = 0; i < attr_nlongopts; i++)
		out[n++] = attr_longopts[i];
	if (extra != NULL)
		out[n++] = (struct option){ extra, required_argument, NULL, extra_val };
	out[n++] = (struct option){ "top", required_argument, NULL, ATTR_OPT_TOP };
	out[n++] = (struct option){ "out", required_argument, NULL, 'o' };
	out[n++] = (struct option){ "pdf", no_argument, NULL, ATTR_OPT_PDF };
	out[n++] = (struct option){ "gnuplot", required_argument, NULL, ATTR_OPT_GNUPLOT };
	out[n] = (struct option){ NULL, 0, NULL, 0 };
}

static const char paths_help[] =
    "Usage: touchpoint paths [--top N] [window options] [--format table|csv|json]\n"
    "       touchpoint export paths [--out FILE] [window options] [--format csv]\n"
    "\n"
    "The path table: each distinct path with its conversions, conversion value and\n"
    "non-converting occurrences. `export paths` writes every path as ChannelAttribution\n"
    "CSV (path,total_conversions,total_conversion_value,total_null, \" > \" between\n"
    "channels) to FILE or standard output.\n"
    "  --top N      the N most converting paths (paths default 20; 0 = all)\n"
    "  -o, --out FILE   export paths: write here instead of standard output\n"
    "  window options: --lookback, --from, --to, --repeats, --level, --conversion\n"
    "                  (as for attribute)\n";

#ifdef TP_HAVE_ENGINE
typedef int (*paths_page_fn)(void *arg, Touchpoint__V1__PathsResponse *page);
/* Makes arg as before the first page, for a read started again; an exit code. */
typedef int (*paths_reset_fn)(void *arg);

/*
 * A paged read is started again at most this often when the daemon has let its table go:
 * it keeps four, so a fifth concurrent paged read (or ten idle minutes, or a restart)
 * takes this one's. More than that is a daemon too busy with paged reads to finish one.
 */
#define PATHS_TRIES 3

/*
 * Waits, once per process, until the file $TOUCHPOINT_TEST_PAGE_PAUSE.go exists, after
 * creating $TOUCHPOINT_TEST_PAGE_PAUSE.paused: a test hook (cli.sh paths_restart) that
 * holds a read between its first and second page while other reads take the daemon's
 * tables. At most 60 s.
 */
static void
test_page_pause(void)
{
	static int done;
	const char *hook = getenv("TOUCHPOINT_TEST_PAGE_PAUSE");
	char path[PATH_MAX];
	FILE *f;
	int i;

	if (done || hook == NULL || *hook == '\0')
		return;
	done = 1;
	if ((size_t)snprintf(path, sizeof(path), "%s.paused", hook) >= sizeof(path) ||
	    (f = fopen(path, "w")) == NULL)
		return;
	fclose(f);
	snprintf(path, sizeof(path), "%s.go", hook);
	for (i = 0; i < 1200 && access(path, F_OK) != 0; i++)
		nanosleep(&(struct timespec){ 0, 50000000 }, NULL);
}

/*
 * Every page of req's table, in order, to fn (an exit code; the page is freed after): a large
 * store's table is bigger than one message, and each page comes from the snapshot the
 * first one computed. When the daemon has let that snapshot go, the read starts again
 * from the first page (after reset) if reset is not NULL: the pages already handed to fn
 * are then forgotten, which an output already streamed cannot do.
 */
static int
paths_pages(tp_client *c, Touchpoint__V1__PathsRequest *req, paths_page_fn fn, paths_reset_fn reset,
            void *arg)
{
	Touchpoint__V1__PathsResponse *r = NULL;
	struct tp_result res;
	int rv, tries = 0;

again:
	req->limit = EXPORT_PAGE_ROWS;
	req->offset = req->snapshot = 0;
	do {
		rv = cli_rpc_result(c, "/touchpoint.v1.Attribution/Paths", &req->base,
		                    &touchpoint__v1__paths_response__descriptor,
		                    (ProtobufCMessage **)&r, &res);
		if (res.status == TP_FAILED_PRECONDITION && req->snapshot != 0 && reset != NULL &&
		    tries++ < PATHS_TRIES && strncmp(res.message, "snapshot:", 9) == 0) {
			tp_result_free(&res);
			cli_msg("touchpoint: the daemon let this read's path table go (more paged "
			        "reads at once than it keeps); reading it again from the start");
			if ((rv = reset(arg)) != EX_OK)
				return rv;
			goto again;
		}
		if (res.status != TP_OK) {
			cli_report("Paths", &res);
			tp_result_free(&res);
		}
		if (rv != EX_OK)
			return rv;
		rv = fn(arg, r);
		req->offset = r->next_offset;
		req->snapshot = r->snapshot;
		protobuf_c_message_free_unpacked(&r->base, NULL);
		if (req->offset != 0)
			test_page_pause();
	} while (rv == EX_OK && req->offset != 0);
	return rv;
}

static int
export_page(void *arg, Touchpoint__V1__PathsResponse *page)
{
	return render_exit(attr_render_path_rows(arg, page));
}

/* The export's temporary file emptied, its header written again. */
static int
export_reset(void *arg)
{
	FILE *f = arg;

	if (fflush(f) != 0 || ftruncate(fileno(f), 0) != 0 || fseek(f, 0, SEEK_SET) != 0) {
		cli_msg("touchpoint export paths: starting over: %s", strerror(errno));
		return EX_IOERR;
	}
	fputs(ATTR_PATHS_CSV_HEADER "\r\n", f);
	return EX_OK;
}

/*
 * export paths: the CSV header, then every page's rows. --out is written beside itself and
 * renamed into place at the end, so an error leaves neither a half file nor a previous
 * export destroyed.
 */
static int
export_pages(tp_client *c, Touchpoint__V1__PathsRequest *req, const char *out)
{
	char tmp[PATH_MAX], real[PATH_MAX];
	const char *name = out;
	FILE *f = stdout;
	struct stat st;
	int fd, rv;

	/*
	 * Not a regular file — a device, a FIFO, /dev/stdout — is written into as it is: renaming
	 * over it replaced /dev/full with a file. A link to a file: the file is replaced.
	 */
	if (out != NULL && stat(out, &st) == 0 && !S_ISREG(st.st_mode)) {
		if (S_ISDIR(st.st_mode)) {
			cli_msg("touchpoint export paths: %s: %s", out, strerror(EISDIR));
			return EX_CANTCREAT;
		}
		if ((f = fopen(out, "w")) == NULL) {
			cli_msg("touchpoint export paths: %s: %s", out, strerror(errno));
			return EX_CANTCREAT;
		}
		out = NULL;
	} else if (out != NULL && realpath(out, real) != NULL) {
		out = real;
	}
	if (out != NULL) {
		if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", out) >= sizeof(tmp)) {
			cli_msg("touchpoint export paths: %s: name too long", out);
			return EX_CANTCREAT;
		}
		if ((fd = mkstemp(tmp)) < 0 || (f = fdopen(fd, "w")) == NULL) {
			cli_msg("touchpoint export paths: %s: %s", out, strerror(errno));
			if (fd >= 0) {
				close(fd);
				unlink(tmp);
			}
			return EX_CANTCREAT;
		}
		/* mkstemp makes it 0600; an export is as readable as any file the shell makes.
		 * (Reading the umask sets it: no other thread runs here.) */
		mode_t um = umask(022);

		umask(um);
		(void)fchmod(fd, 0666 & ~um);
	}
	fputs(ATTR_PATHS_CSV_HEADER "\r\n", f);
	/* Only a file of its own can be emptied and written again if the read starts over. */
	rv = paths_pages(c, req, export_page, out != NULL ? export_reset : NULL, f);
	/* Standard output is flushed, and its failure reported, by main, as for every command. */
	if (f != stdout && fclose(f) != 0) {
		if (rv == EX_OK)
			cli_msg("touchpoint export paths: %s: %s", name, strerror(errno));
		rv = rv == EX_OK ? EX_IOERR : rv;
	}
	if (out != NULL && rv == EX_OK && rename(tmp, out) != 0) {
		cli_msg("touchpoint export paths: %s: %s", out, strerror(errno));
		rv = EX_CANTCREAT;
	}
	if (out != NULL && rv != EX_OK)
		unlink(tmp);
	return rv;
}

/* The pages joined: rows and totals move out of each page into one response. */
struct paths_join {
	Touchpoint__V1__PathsResponse *all;
};

static int
join_page(void *arg, Touchpoint__V1__PathsResponse *page)
{
	Touchpoint__V1__PathsResponse *all = ((struct paths_join *)arg)->all;
	Touchpoint__V1__PathRow **np;

	np = realloc(all->paths, (all->n_paths + page->n_paths + 1) * sizeof(*np));
	if (np == NULL) {
		fprintf(stderr, "touchpoint: out of memory joining the path table\n");
		return EX_OSERR;
	}
	all->paths = np;
	memcpy(all->paths + all->n_paths, page->paths, page->n_paths * sizeof(*np));
	all->n_paths += page->n_paths;
	page->n_paths = 0; /* the rows are all's now */
	if (all->totals == NULL) {
		all->totals = page->totals;
		page->totals = NULL;
		all->distinct_paths = page->distinct_paths;
	}
	return EX_OK;
}

/* The joined pages dropped, for a read started again. */
static int
join_reset(void *arg)
{
	Touchpoint__V1__PathsResponse *all = ((struct paths_join *)arg)->all;

	protobuf_c_message_free_unpacked(&all->base, NULL);
	if ((all = malloc(sizeof(*all))) == NULL) {
		((struct paths_join *)arg)->all = NULL;
		fprintf(stderr, "touchpoint: out of memory joining the path table\n");
		return EX_OSERR;
	}
	touchpoint__v1__paths_response__init(all);
	((struct paths_join *)arg)->all = all;
	return EX_OK;
}

int
attr_paths_fetch(tp_client *c, Touchpoint__V1__PathsRequest *req,
                 Touchpoint__V1__PathsResponse **out)
{
	struct paths_join j;
	int rv;

	*out = NULL;
	if ((j.all = malloc(sizeof(*j.all))) == NULL)
		return EX_OSERR;
	touchpoint__v1__paths_response__init(j.all);
	if ((rv = paths_pages(c, req, join_page, join_reset, &j)) != EX_OK) {
		if (j.all != NULL)
			protobuf_c_message_free_unpacked(&j.all->base, NULL);
		return rv;
	}
	*out = j.all;
	return EX_OK;
}
#endif

static int
paths_run(struct cli *g, int argc, char **argv, int export)
{
#ifdef TP_HAVE_ENGINE
	const char *cmd = export ? "export paths" : "paths";
	struct option longopts[32];
	struct attr_opts o;
	Touchpoint__V1__PathsRequest req = TOUCHPOINT__V1__PATHS_REQUEST__INIT;
	Touchpoint__V1__PathsResponse *r = NULL;
	enum cli_format fmt = export ? CLI_CSV : CLI_TABLE;
	const char *out = NULL;
	tp_client *c = NULL;
	unsigned long top = export ? 0 : 20;
	int ch, rv, st;

	attr_longopts_build(longopts, NULL, 0);
	attr_opts_init(&o);
	while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "l:o:", longopts, NULL)) != -1) {
		if ((rv = cli_common(g, ch, paths_help)) != -1) {
			if (rv != -2)
				return rv;
		} else if (ch == CLI_OPT_FORMAT) {
			/* SPEC §6: every command that prints data takes --format. */
			if (export && strcmp(optarg, "csv") != 0)
				return cli_usage(cmd,
				                 "bad --format '%s': export paths writes "
				                 "ChannelAttribution CSV only (--format csv)",
				                 optarg);
			if (cli_parse_format(optarg, &fmt) != 0)
				return cli_usage(cmd, "bad --format '%s'", optarg);
		} else if (ch == ATTR_OPT_TOP && !export) {
			if (cli_parse_count(optarg, 0, UINT32_MAX, &top) != 0)
				return cli_usage(cmd, "bad --top '%s'", optarg);
		} else if (ch == 'o' && export) {
			out = optarg;
		} else if (ch == 'l' || ch == ATTR_OPT_FROM || ch == ATTR_OPT_TO ||
		           ch == ATTR_OPT_REPEATS || ch == ATTR_OPT_LEVEL ||
		           ch == ATTR_OPT_CONVERSION) {
			if ((rv = attr_opts_parse(&o, cmd, ch, optarg)) != 0)
				return rv;
		} else {
			return cli_bad_option(cmd, argv, ch);
		}
	}
	if (optind != argc)
		return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
	req.window = &o.win;
	req.top = (uint32_t)top;
	if ((rv = cli_connect(g, &c)) != EX_OK)
		return rv;
	tp_set_timeout(c, 600000);
	if (export) {
		rv = export_pages(c, &req, out);
		tp_close(c);
		return rv;
	}
	/* In pages, as export does: --top 0 over a big store is larger than a reply. */
	rv = attr_paths_fetch(c, &req, &r);
	tp_close(c);
	if (rv != EX_OK)
		return rv;
	st = attr_render_paths(stdout, r, attr_fmt(fmt));
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return render_exit(st);
#else
	(void)g;
	(void)argc;
	(void)argv;
	(void)export;
	(void)paths_help;
	fprintf(stderr, "touchpoint paths: built without the attribution engine\n");
	return EX_SOFTWARE;
#endif
}

int
cmd_paths(struct cli *g, int argc, char **argv)
{
	return paths_run(g, argc, argv, 0);
}

int
cmd_export(struct cli *g, int argc, char **argv)
{
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
		return cli_help(paths_help);
	if (argc >= 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0))
		return cli_version();
	if (argc < 2 || strcmp(argv[1], "paths") != 0)
		return cli_usage("export", "what? only 'export paths' exists");
	return paths_run(g, argc - 1, argv + 1, 1);
}
