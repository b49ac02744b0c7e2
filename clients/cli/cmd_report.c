/*
 * touchpoint report --out DIR: fetch Attribute (every requested model, the transition
 * matrix, daily linear credit) and Paths (all), then hand both to the reports library.
 */
#include <getopt.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"
#include "cmd_attribute.h"
#include "touchpoint/v1/attribution.pb-c.h"
#ifdef TP_HAVE_REPORT
#include "reports/report.h"
#endif

static const char report_help[] =
    "Usage: touchpoint report -o DIR [--pdf] [--gnuplot PATH] [attribute options]\n"
    "\n"
    "Writes a self-contained report into DIR, atomically: index.html with the charts\n"
    "and tables, attribution.csv, attribution.json and a PNG and an SVG per chart\n"
    "(drawn by gnuplot). DIR must not exist, be empty or hold a previous report.\n"
    "  -o, --out DIR      the report directory (required)\n"
    "  --pdf              also report.pdf with every chart\n"
    "  --gnuplot PATH     the gnuplot to run (default: gnuplot from PATH)\n"
    "  attribute options: --model, --lookback, --from, --to, --repeats, --level,\n"
    "  --half-life, --order, --conversion, --by, --first-weight, --last-weight,\n"
    "  --direct-channels (see touchpoint attribute --help)\n";

int
cmd_report(struct cli *g, int argc, char **argv)
{
#ifdef TP_HAVE_REPORT
	struct option longopts[32];
	struct attr_opts o;
	struct report_options ro = { 0 };
	Touchpoint__V1__PathsRequest preq = TOUCHPOINT__V1__PATHS_REQUEST__INIT;
	Touchpoint__V1__AttributeResponse *ar = NULL;
	Touchpoint__V1__PathsResponse *pr = NULL;
	tp_client *c = NULL;
	char err[1024];
	int ch, rv, st;

	attr_longopts_build(longopts, NULL, 0);
	attr_opts_init(&o);
	while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "m:l:o:", longopts, NULL)) !=
	       -1) {
		if ((rv = cli_common(g, ch, report_help)) != -1) {
			if (rv != -2)
				return rv;
		} else if (ch == 'o') {
			ro.out_dir = optarg;
		} else if (ch == ATTR_OPT_PDF) {
			ro.pdf = 1;
		} else if (ch == ATTR_OPT_GNUPLOT) {
			ro.gnuplot = optarg;
		} else if ((rv = attr_opts_parse(&o, "report", ch, optarg)) != 0) {
			return rv > 0 ? rv : cli_bad_option("report", argv, ch);
		}
	}
	if (optind != argc)
		return cli_usage("report", "unexpected argument '%s'", argv[optind]);
	if (ro.out_dir == NULL)
		return cli_usage("report", "--out DIR is required");
	if ((rv = attr_opts_finish(&o, "report")) != 0)
		return rv;
	/* A bad or unusable --out is told now, not after the whole attribution query. */
	if ((st = report_check_out(ro.out_dir, err, sizeof(err))) == TP_INVALID_ARGUMENT)
		return cli_usage("report", "--out: %s", err);
	if (st != TP_OK) {
		cli_msg("touchpoint report: %s: %s", tp_strerror(st), err);
		return st == TP_FAILED_PRECONDITION ? EX_CANTCREAT : cli_exit_code(st);
	}
	o.req.transition_matrix = 1;
	o.req.daily_model = "linear";
	preq.window = &o.win;
	preq.top = 0;
	if ((rv = cli_connect(g, &c)) != EX_OK)
		return rv;
	tp_set_timeout(c, 600000);
	rv = cli_rpc(c, "/touchpoint.v1.Attribution/Attribute", &o.req.base,
	             &touchpoint__v1__attribute_response__descriptor, (ProtobufCMessage **)&ar);
	if (rv == EX_OK)
		rv = attr_paths_fetch(c, &preq, &pr);
	tp_close(c);
	if (rv != EX_OK)
		goto done;
	err[0] = '\0';
	if ((st = report_write(ar, pr, &ro, err, sizeof(err))) != TP_OK) {
		cli_msg("touchpoint report: %s: %s", tp_strerror(st), err);
		rv = st == TP_FAILED_PRECONDITION ? EX_CANTCREAT
		     : st == TP_UNAVAILABLE       ? EX_UNAVAILABLE
		                                  : cli_local_exit_code(st);
		goto done;
	}
	cli_msg("touchpoint report: wrote %s", ro.out_dir);
done:
	if (ar != NULL)
		protobuf_c_message_free_unpacked(&ar->base, NULL);
	if (pr != NULL)
		protobuf_c_message_free_unpacked(&pr->base, NULL);
	return rv;
#else
	(void)g;
	(void)argc;
	(void)argv;
	(void)report_help;
	fprintf(stderr, "touchpoint report: built without the reports library\n");
	return EX_SOFTWARE;
#endif
}
