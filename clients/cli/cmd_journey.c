/*
 * touchpoint journey CUSTOMER: Journey/GetJourney, the customer's events in SPEC §3 order
 * and the paths they form.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "attribution/engine.h"
#include "cli.h"
#include "csv.h"
#include "json.h"
#include "timefmt.h"
#include "touchpoint/v1/query.pb-c.h"

static const char journey_help[] =
    "Usage: touchpoint journey [--lookback D] [--format table|csv|json] CUSTOMER\n"
    "\n"
    "Shows the customer's events (after alias resolution) in time order and the paths\n"
    "they form: one converting path per conversion and the non-converting tail.\n"
    "  --lookback D   path window: s, m, h, d suffixes, 0 = unlimited (default 30d)\n"
    "  --format F     table (default), csv or json\n";

/* Room for SPEC §2's largest identify (32 traits, keys ≤ 64, values ≤ 256 bytes). */
#define JOURNEY_DETAIL_MAX (32 * (64 + 256 + 2) + 64)

static const char *
journey_type(const Touchpoint__V1__Event *e)
{
	switch (e->kind_case) {
	case TOUCHPOINT__V1__EVENT__KIND_TOUCH:
		return "touch";
	case TOUCHPOINT__V1__EVENT__KIND_CONVERSION:
		return "conversion";
	case TOUCHPOINT__V1__EVENT__KIND_IDENTIFY:
		return "identify";
	case TOUCHPOINT__V1__EVENT__KIND_ALIAS:
		return "alias";
	case TOUCHPOINT__V1__EVENT__KIND_SPEND:
		return "spend";
	default:
		return "unknown";
	}
}

/* The channel, campaign and a one-line detail of an event, for people. */
static void
journey_cols(const Touchpoint__V1__Event *e, const char **channel, const char **campaign,
             char *detail, size_t dlen)
{
	char num[64];
	size_t i, o = 0;

	*channel = *campaign = "";
	detail[0] = '\0';
	switch (e->kind_case) {
	case TOUCHPOINT__V1__EVENT__KIND_TOUCH:
		*channel = e->touch->channel;
		*campaign = e->touch->campaign;
		break;
	case TOUCHPOINT__V1__EVENT__KIND_CONVERSION:
		attr_format_number(num, sizeof(num), e->conversion->value);
		snprintf(detail, dlen, "%s %s%s%s",
		         e->conversion->name[0] ? e->conversion->name : "conversion", num,
		         e->conversion->currency[0] ? " " : "", e->conversion->currency);
		break;
	case TOUCHPOINT__V1__EVENT__KIND_IDENTIFY:
		/* Whole traits only: a cut would split a UTF-8 character. */
		for (i = 0; i < e->identify->n_traits; i++) {
			int n =
			    snprintf(detail + o, dlen - o, "%s%s=%s", i ? " " : "",
			             e->identify->traits[i]->key, e->identify->traits[i]->value);

			if (n < 0 || (size_t)n >= dlen - o) {
				snprintf(detail + o, dlen - o, "%s", dlen - o > 4 ? " …" : "");
				break;
			}
			o += (size_t)n;
		}
		break;
	case TOUCHPOINT__V1__EVENT__KIND_ALIAS:
		snprintf(detail, dlen, "previous_id=%s", e->alias->previous_id);
		break;
	case TOUCHPOINT__V1__EVENT__KIND_SPEND:
		*channel = e->spend->channel;
		*campaign = e->spend->campaign;
		attr_format_number(detail, dlen, e->spend->amount);
		break;
	default:
		break;
	}
}

static double
journey_value(const Touchpoint__V1__Event *e)
{
	return e->kind_case == TOUCHPOINT__V1__EVENT__KIND_CONVERSION ? e->conversion->value : 0;
}

static void
journey_channels(FILE *out, const Touchpoint__V1__JourneyPath *p)
{
	size_t i;

	for (i = 0; i < p->n_channels; i++)
		fprintf(out, "%s%s", i ? " > " : "", p->channels[i]);
}

static void
journey_json(const Touchpoint__V1__GetJourneyResponse *r)
{
	char t[TF_TIME_MAX], num[64];
	size_t i, j;

	printf("{\"customer_id\": ");
	attr_json_string(stdout, r->customer_id);
	printf(", \"aliases\": [");
	for (i = 0; i < r->n_aliases; i++) {
		printf(i ? ", " : "");
		attr_json_string(stdout, r->aliases[i]);
	}
	printf("], \"events\": [");
	for (i = 0; i < r->n_events; i++) {
		const Touchpoint__V1__Event *e = r->events[i];
		const char *ch, *camp;
		char detail[JOURNEY_DETAIL_MAX];

		journey_cols(e, &ch, &camp, detail, sizeof(detail));
		tf_format(e->timestamp_us, t, sizeof(t));
		printf("%s{\"event_id\": ", i ? ", " : "");
		attr_json_string(stdout, e->event_id);
		printf(", \"timestamp\": \"%s\", \"timestamp_us\": %lld, \"type\": \"%s\"", t,
		       (long long)e->timestamp_us, journey_type(e));
		if (e->kind_case == TOUCHPOINT__V1__EVENT__KIND_TOUCH ||
		    e->kind_case == TOUCHPOINT__V1__EVENT__KIND_SPEND) {
			printf(", \"channel\": ");
			attr_json_string(stdout, ch);
			printf(", \"campaign\": ");
			attr_json_string(stdout, camp);
		}
		if (e->kind_case == TOUCHPOINT__V1__EVENT__KIND_CONVERSION) {
			attr_format_number(num, sizeof(num), e->conversion->value);
			printf(", \"value\": %s, \"name\": ", num);
			attr_json_string(stdout, e->conversion->name);
		}
		if (e->kind_case == TOUCHPOINT__V1__EVENT__KIND_IDENTIFY) {
			printf(", \"traits\": {");
			for (j = 0; j < e->identify->n_traits; j++) {
				printf(j ? ", " : "");
				attr_json_string(stdout, e->identify->traits[j]->key);
				printf(": ");
				attr_json_string(stdout, e->identify->traits[j]->value);
			}
			printf("}");
		}
		if (e->kind_case == TOUCHPOINT__V1__EVENT__KIND_ALIAS) {
			printf(", \"previous_id\": ");
			attr_json_string(stdout, e->alias->previous_id);
		}
		printf("}");
	}
	printf("], \"paths\": [");
	for (i = 0; i < r->n_paths; i++) {
		const Touchpoint__V1__JourneyPath *p = r->paths[i];

		printf("%s{\"converting\": %s", i ? ", " : "", p->converting ? "true" : "false");
		if (p->converting) {
			printf(", \"conversion_event_id\": ");
			attr_json_string(stdout, p->conversion_event_id);
			attr_format_number(num, sizeof(num), p->value);
			printf(", \"conversion_timestamp_us\": %lld, \"value\": %s",
			       (long long)p->conversion_timestamp_us, num);
		}
		printf(", \"touch_event_ids\": [");
		for (j = 0; j < p->n_touch_event_ids; j++) {
			printf(j ? ", " : "");
			attr_json_string(stdout, p->touch_event_ids[j]);
		}
		printf("], \"channels\": [");
		for (j = 0; j < p->n_channels; j++) {
			printf(j ? ", " : "");
			attr_json_string(stdout, p->channels[j]);
		}
		printf("]}");
	}
	printf("]}\n");
}

static void
journey_csv(const Touchpoint__V1__GetJourneyResponse *r)
{
	char t[TF_TIME_MAX], v[64];
	size_t i;

	printf("record,timestamp,type,channel,campaign,value,event_id,detail\r\n");
	for (i = 0; i < r->n_events; i++) {
		const Touchpoint__V1__Event *e = r->events[i];
		const char *ch, *camp;
		char detail[JOURNEY_DETAIL_MAX];

		journey_cols(e, &ch, &camp, detail, sizeof(detail));
		tf_format(e->timestamp_us, t, sizeof(t));
		attr_format_number(v, sizeof(v), journey_value(e));
		printf("event,%s,%s,", t, journey_type(e));
		csv_put(stdout, ch);
		putchar(',');
		csv_put(stdout, camp);
		printf(",%s,", v);
		csv_put(stdout, e->event_id);
		putchar(',');
		csv_put(stdout, detail);
		fputs("\r\n", stdout);
	}
	for (i = 0; i < r->n_paths; i++) {
		const Touchpoint__V1__JourneyPath *p = r->paths[i];
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);

		if (m == NULL)
			continue;
		journey_channels(m, p);
		fclose(m);
		if (p->converting)
			tf_format(p->conversion_timestamp_us, t, sizeof(t));
		attr_format_number(v, sizeof(v), p->value);
		printf("%s,%s,path,,,%s,", p->converting ? "converting_path" : "null_path",
		       p->converting ? t : "", v);
		csv_put(stdout, p->converting ? p->conversion_event_id : "");
		putchar(',');
		csv_put(stdout, buf);
		fputs("\r\n", stdout);
		free(buf);
	}
}

/* s for the terminal (control characters as '?'), padded to w columns. */
static void
journey_col(const char *s, int w)
{
	const unsigned char *p;

	attr_text_put(stdout, s);
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		w -= (*p & 0xc0) != 0x80;
	while (w-- > 0)
		putchar(' ');
}

static void
journey_table(const Touchpoint__V1__GetJourneyResponse *r)
{
	char t[TF_TIME_MAX], v[32];
	size_t i, j;

	fputs("customer ", stdout);
	attr_text_put(stdout, r->customer_id);
	for (i = 0; i < r->n_aliases; i++) {
		fputs(i ? ", " : " (aliases: ", stdout);
		attr_text_put(stdout, r->aliases[i]);
	}
	printf("%s\n\n%-27s  %-10s  %-24s  %-12s  %s\n", r->n_aliases ? ")" : "", "time", "type",
	       "channel/campaign or detail", "value", "event id");
	for (i = 0; i < r->n_events; i++) {
		const Touchpoint__V1__Event *e = r->events[i];
		const char *ch, *camp;
		char detail[JOURNEY_DETAIL_MAX], cc[JOURNEY_DETAIL_MAX];

		journey_cols(e, &ch, &camp, detail, sizeof(detail));
		tf_format(e->timestamp_us, t, sizeof(t));
		if (ch[0] != '\0')
			snprintf(cc, sizeof(cc), "%s%s%s", ch, camp[0] ? "/" : "", camp);
		else
			snprintf(cc, sizeof(cc), "%s", detail);
		v[0] = '\0';
		if (e->kind_case == TOUCHPOINT__V1__EVENT__KIND_CONVERSION)
			snprintf(v, sizeof(v), "%.2f", journey_value(e));
		printf("%-27s  %-10s  ", t, journey_type(e));
		journey_col(cc, 24);
		printf("  %-12s  ", v);
		attr_text_put(stdout, e->event_id);
		putchar('\n');
	}
	printf("\npaths\n");
	if (r->n_paths == 0)
		printf("  (none)\n");
	for (i = 0; i < r->n_paths; i++) {
		const Touchpoint__V1__JourneyPath *p = r->paths[i];

		if (p->converting) {
			tf_format(p->conversion_timestamp_us, t, sizeof(t));
			fputs("  conversion ", stdout);
			attr_text_put(stdout, p->conversion_event_id);
			printf(" at %s, value %.2f: ", t, p->value);
		} else {
			printf("  non-converting: ");
		}
		if (p->n_channels == 0)
			printf("(unattributed: no touch in the window)");
		for (j = 0; j < p->n_channels; j++) {
			fputs(j ? " > " : "", stdout);
			attr_text_put(stdout, p->channels[j]);
		}
		putchar('\n');
	}
}

int
cmd_journey(struct cli *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "format", required_argument, NULL, CLI_OPT_FORMAT },
		{ "lookback", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	Touchpoint__V1__GetJourneyRequest req = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__INIT;
	Touchpoint__V1__GetJourneyResponse *r = NULL;
	enum cli_format fmt = CLI_TABLE;
	tp_client *c = NULL;
	int64_t lookback;
	int ch, rv;

	while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "l:", longopts, NULL)) != -1) {
		if ((rv = cli_common(g, ch, journey_help)) != -1) {
			if (rv != -2)
				return rv;
		} else if (ch == CLI_OPT_FORMAT) {
			if (cli_parse_format(optarg, &fmt) != 0)
				return cli_usage("journey", "bad --format '%s'", optarg);
		} else if (ch == 'l') {
			if (tf_parse_duration(optarg, &lookback) != 0)
				return cli_usage("journey", "bad --lookback '%s'", optarg);
			req.lookback_case =
			    TOUCHPOINT__V1__GET_JOURNEY_REQUEST__LOOKBACK_LOOKBACK_S;
			req.lookback_s = lookback;
		} else {
			return cli_bad_option("journey", argv);
		}
	}
	if (optind + 1 != argc)
		return cli_usage("journey", "one customer id wanted");
	req.customer_id = argv[optind];
	if ((rv = cli_connect(g, &c)) != EX_OK)
		return rv;
	rv = cli_rpc(c, "/touchpoint.v1.Journey/GetJourney", &req.base,
	             &touchpoint__v1__get_journey_response__descriptor, (ProtobufCMessage **)&r);
	tp_close(c);
	if (rv != EX_OK)
		return rv;
	if (fmt == CLI_JSON)
		journey_json(r);
	else if (fmt == CLI_CSV)
		journey_csv(r);
	else
		journey_table(r);
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return EX_OK;
}
