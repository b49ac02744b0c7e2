/*
 * touchpoint send TYPE: one event from flags, sent with tp_send.
 */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "attribution/engine.h"
#include "cli.h"
#include "csv.h"
#include "json.h"
#include "row.h"
#include "timefmt.h"

static const char send_help[] =
    "Usage: touchpoint send touch|conversion|identify|alias|spend [options]\n"
    "\n"
    "Sends one event and prints its id and whether it was stored or a duplicate.\n"
    "  -c, --customer ID       customer id (required except for spend)\n"
    "  -i, --event-id ID       idempotency key (default: a new time-ordered id)\n"
    "  -t, --time T            RFC 3339, YYYY-MM-DD or @microseconds (default: now)\n"
    "  touch:      --channel C (required) --campaign C --source S --medium M\n"
    "              --interaction impression|click|visit|email_open|other --cost X\n"
    "  conversion: --value X --currency ISO --name NAME\n"
    "  identify:   --trait KEY=VALUE (repeatable)\n"
    "  alias:      --previous-id ID\n"
    "  spend:      --channel C --campaign C --day YYYY-MM-DD --amount X --currency ISO\n"
    "  --format F  table (default), csv or json\n"
    "  -e, --endpoint URL, -h, --help, -V, --version\n";

enum {
	SEND_CHANNEL = 0x200,
	SEND_CAMPAIGN,
	SEND_SOURCE,
	SEND_MEDIUM,
	SEND_INTERACTION,
	SEND_COST,
	SEND_VALUE,
	SEND_CURRENCY,
	SEND_NAME,
	SEND_TRAIT,
	SEND_PREVIOUS_ID,
	SEND_DAY,
	SEND_AMOUNT,
};

static int
send_number(const char *opt, const char *s, double *v)
{
	char *end;

	*v = strtod(s, &end);
	if (end == s || *end != '\0' || !isfinite(*v))
		return cli_usage("send", "--%s: not a number: '%s'", opt, s);
	return 0;
}

int
cmd_send(struct cli *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "format", required_argument, NULL, CLI_OPT_FORMAT },
		{ "customer", required_argument, NULL, 'c' },
		{ "event-id", required_argument, NULL, 'i' },
		{ "time", required_argument, NULL, 't' },
		{ "channel", required_argument, NULL, SEND_CHANNEL },
		{ "campaign", required_argument, NULL, SEND_CAMPAIGN },
		{ "source", required_argument, NULL, SEND_SOURCE },
		{ "medium", required_argument, NULL, SEND_MEDIUM },
		{ "interaction", required_argument, NULL, SEND_INTERACTION },
		{ "cost", required_argument, NULL, SEND_COST },
		{ "value", required_argument, NULL, SEND_VALUE },
		{ "currency", required_argument, NULL, SEND_CURRENCY },
		{ "name", required_argument, NULL, SEND_NAME },
		{ "trait", required_argument, NULL, SEND_TRAIT },
		{ "previous-id", required_argument, NULL, SEND_PREVIOUS_ID },
		{ "day", required_argument, NULL, SEND_DAY },
		{ "amount", required_argument, NULL, SEND_AMOUNT },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const inames[] = { "impression", "click", "visit", "email_open",
		                              "other" };
	struct row_field f[24 + ROW_MAX_TRAITS];
	char keys[ROW_MAX_TRAITS][72];
	struct row_event re;
	struct tp_result res;
	enum cli_format fmt = CLI_TABLE;
	const char *type = NULL, *time_s = NULL;
	char idbuf[TP_EVENT_ID_LEN + 1], field[64], reason[256], tbuf[32];
	tp_client *c = NULL;
	size_t nf = 0, ntraits = 0, i;
	int64_t us;
	double d;
	int ch, rv;

	if (argc >= 2 && argv[1][0] != '-') {
		type = argv[1];
		argv++;
		argc--;
	}
	while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "c:i:t:", longopts, NULL)) !=
	       -1) {
		const char *name = NULL;

		if ((rv = cli_common(g, ch, send_help)) != -1) {
			if (rv != -2)
				return rv;
			continue;
		}
		if (nf >= sizeof(f) / sizeof(f[0]) - 2)
			return cli_usage("send", "too many options");
		switch (ch) {
		case CLI_OPT_FORMAT:
			if (cli_parse_format(optarg, &fmt) != 0)
				return cli_usage("send", "bad --format '%s'", optarg);
			break;
		case 'c':
			name = "customer_id";
			break;
		case 'i':
			name = "event_id";
			break;
		case 't':
			time_s = optarg;
			break;
		case SEND_CHANNEL:
			name = "channel";
			break;
		case SEND_CAMPAIGN:
			name = "campaign";
			break;
		case SEND_SOURCE:
			name = "source";
			break;
		case SEND_MEDIUM:
			name = "medium";
			break;
		case SEND_INTERACTION:
			for (i = 0; i < 5; i++)
				if (strcmp(optarg, inames[i]) == 0)
					break;
			if (i == 5)
				return cli_usage("send",
				                 "--interaction: '%s' is not impression, "
				                 "click, visit, email_open or other",
				                 optarg);
			name = "interaction";
			break;
		case SEND_COST:
		case SEND_VALUE:
		case SEND_AMOUNT:
			name = ch == SEND_COST ? "cost" : ch == SEND_VALUE ? "value" : "amount";
			if (send_number(name, optarg, &d) != 0)
				return EX_USAGE;
			break;
		case SEND_CURRENCY:
			name = "currency";
			break;
		case SEND_NAME:
			name = "name";
			break;
		case SEND_PREVIOUS_ID:
			name = "previous_id";
			break;
		case SEND_DAY:
			name = "day";
			break;
		case SEND_TRAIT: {
			const char *eq = strchr(optarg, '=');

			if (eq == NULL || eq == optarg || (size_t)(eq - optarg) > 64)
				return cli_usage("send",
				                 "--trait wants KEY=VALUE (key 1-64 bytes)");
			if (ntraits == ROW_MAX_TRAITS)
				return cli_usage("send", "more than %d traits", ROW_MAX_TRAITS);
			snprintf(keys[ntraits], sizeof(keys[ntraits]), "trait.%.*s",
			         (int)(eq - optarg), optarg);
			f[nf].name = keys[ntraits++];
			f[nf++].value = eq + 1;
			break;
		}
		default:
			return cli_bad_option("send", argv, ch);
		}
		if (name != NULL) {
			f[nf].name = name;
			f[nf++].value = optarg;
		}
	}
	if (type == NULL)
		return cli_usage("send",
		                 "which event? touch, conversion, identify, alias or spend");
	if (optind != argc)
		return cli_usage("send", "unexpected argument '%s'", argv[optind]);
	if (time_s != NULL) {
		if ((rv = tf_parse_time(time_s, &us)) == TF_OUT_OF_RANGE)
			return cli_usage(
			    "send", "--time: '%s' is out of the supported range 1970-2200", time_s);
		if (rv != 0)
			return cli_usage("send", "--time: '%s' is not RFC 3339, YYYY-MM-DD or @µs",
			                 time_s);
	} else {
		us = tp_now_us();
	}
	snprintf(tbuf, sizeof(tbuf), "%lld", (long long)us);
	f[nf].name = "timestamp_us";
	f[nf++].value = tbuf;
	f[nf].name = "type";
	f[nf++].value = type;
	if (row_to_event(f, nf, &re, field, sizeof(field), reason, sizeof(reason)) != 0) {
		if (strcmp(field, "type") == 0)
			return cli_usage("send", "%s", reason);
		cli_msg("touchpoint send: %s: %s", field, reason);
		return EX_DATAERR;
	}
	/* A one-off event gets a fresh id, not the content hash an import would use. */
	for (i = 0; i < nf; i++)
		if (strcmp(f[i].name, "event_id") == 0)
			break;
	if (i == nf) {
		if (tp_event_id_new(idbuf) != TP_OK) {
			row_event_free(&re);
			fprintf(stderr, "touchpoint send: no entropy for an event id\n");
			return EX_OSERR;
		}
		re.ev.event_id = idbuf;
	}
	if ((rv = cli_connect(g, &c)) != EX_OK) {
		row_event_free(&re);
		return rv;
	}
	rv = tp_send(c, &re.ev, 1, &res);
	tp_close(c);
	if (rv != TP_OK) {
		cli_report("send", &res);
		tp_result_free(&res);
		row_event_free(&re);
		return cli_exit_code(rv);
	}
	switch (fmt) {
	case CLI_JSON:
		printf("{\"event_id\": ");
		attr_json_string(stdout, re.ev.event_id);
		printf(", \"accepted\": %u, \"duplicates\": %u}\n", res.accepted, res.duplicates);
		break;
	case CLI_CSV:
		printf("event_id,accepted,duplicates\r\n");
		csv_put(stdout, re.ev.event_id);
		printf(",%u,%u\r\n", res.accepted, res.duplicates);
		break;
	case CLI_TABLE:
		printf("%s ", res.duplicates ? "duplicate (already stored)" : "stored");
		attr_text_put(stdout, re.ev.event_id);
		putchar('\n');
		break;
	}
	tp_result_free(&res);
	row_event_free(&re);
	return EX_OK;
}
