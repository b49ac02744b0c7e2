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
    "Usage: touchpoint journey [-l|--lookback D] [--format table|csv|json] CUSTOMER\n"
    "\n"
    "Shows the customer's events (after alias resolution) in time order and the paths\n"
    "they form: one converting path per conversion and the non-converting tail.\n"
    "  -l, --lookback D   path window: s m h d, 0 = unlimited (default: the\n"
    "                     daemon's default_lookback, 30d unless configured)\n"
    "  --format F         table (default), csv or json\n";

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

/* The interaction as sent (send --interaction, the import column); NULL when none. */
static const char *
journey_interaction(Touchpoint__V1__Interaction i)
{
	switch (i) {
	case TOUCHPOINT__V1__INTERACTION__INTERACTION_IMPRESSION:
		return "impression";
	case TOUCHPOINT__V1__INTERACTION__INTERACTION_CLICK:
		return "click";
	case TOUCHPOINT__V1__INTERACTION__INTERACTION_VISIT:
		return "visit";
	case TOUCHPOINT__V1__INTERACTION__INTERACTION_EMAIL_OPEN:
		return "email_open";
	case TOUCHPOINT__V1__INTERACTION__INTERACTION_OTHER:
		return "other";
	default:
		return NULL;
	}
}

/* An unnamed conversion is SPEC §2's default, as the table shows it. */
static const char *
journey_conversion_name(const Touchpoint__V1__Conversion *c)
{
	return c->name[0] != '\0' ? c->name : "conversion";
}

/* A spend's day; stored empty, it is the UTC day of its timestamp (spend.day). */
static void
journey_day(const Touchpoint__V1__Event *e, char *buf, size_t len)
{
	if (e->spend->day[0] != '\0') {
		snprintf(buf, len, "%s", e->spend->day);
		return;
	}
	tf_format(e->timestamp_us, buf, len);
	if (len > 10)
		buf[10] = '\0';
}

static void
journey_channels(FILE *out, const Touchpoint__V1__JourneyPath *p)
{
	size_t i;

	for (i = 0; i < p->n_channels; i++)
		fprintf(out, "%s%s", i ? " > " : "", p->channels[i]);
}

static void
journey_json_key(FILE *out, const char *key, const char *s)
{
	fprintf(out, ", \"%s\": ", key);
	attr_json_string(out, s);
}

static void
journey_json_number(FILE *out, const char *key, double v)
{
	char num[64];

	attr_format_number(num, sizeof(num), v);
	fprintf(out, ", \"%s\": %s", key, num);
}

static void
journey_json_traits(FILE *out, const Touchpoint__V1__Identify *id)
{
	size_t j;

	putc('{', out);
	for (j = 0; j < id->n_traits; j++) {
		fputs(j ? ", " : "", out);
		attr_json_string(out, id->traits[j]->key);
		fputs(": ", out);
		attr_json_string(out, id->traits[j]->value);
	}
	putc('}', out);
}

/* Every field of the event, under its proto name; an absent optional one is null. */
static void
journey_json_event(FILE *out, const Touchpoint__V1__Event *e)
{
	char t[TF_TIME_MAX];
	const char *in;

	tf_format(e->timestamp_us, t, sizeof(t));
	fputs("{\"event_id\": ", out);
	attr_json_string(out, e->event_id);
	journey_json_key(out, "customer_id", e->customer_id);
	fprintf(out, ", \"timestamp\": \"%s\", \"timestamp_us\": %lld, \"type\": \"%s\"", t,
	        (long long)e->timestamp_us, journey_type(e));
	switch (e->kind_case) {
	case TOUCHPOINT__V1__EVENT__KIND_TOUCH:
		journey_json_key(out, "channel", e->touch->channel);
		journey_json_key(out, "campaign", e->touch->campaign);
		journey_json_key(out, "source", e->touch->source);
		journey_json_key(out, "medium", e->touch->medium);
		in = journey_interaction(e->touch->interaction);
		if (in != NULL)
			journey_json_key(out, "interaction", in);
		else
			fputs(", \"interaction\": null", out);
		if (e->touch->cost_present_case == TOUCHPOINT__V1__TOUCH__COST_PRESENT_COST)
			journey_json_number(out, "cost", e->touch->cost);
		else
			fputs(", \"cost\": null", out);
		break;
	case TOUCHPOINT__V1__EVENT__KIND_CONVERSION:
		journey_json_number(out, "value", e->conversion->value);
		journey_json_key(out, "currency", e->conversion->currency);
		journey_json_key(out, "name", journey_conversion_name(e->conversion));
		break;
	case TOUCHPOINT__V1__EVENT__KIND_IDENTIFY:
		fputs(", \"traits\": ", out);
		journey_json_traits(out, e->identify);
		break;
	case TOUCHPOINT__V1__EVENT__KIND_ALIAS:
		journey_json_key(out, "previous_id", e->alias->previous_id);
		break;
	case TOUCHPOINT__V1__EVENT__KIND_SPEND:
		journey_day(e, t, sizeof(t));
		journey_json_key(out, "channel", e->spend->channel);
		journey_json_key(out, "campaign", e->spend->campaign);
		journey_json_key(out, "day", t);
		journey_json_number(out, "amount", e->spend->amount);
		journey_json_key(out, "currency", e->spend->currency);
		break;
	default:
		break;
	}
	putc('}', out);
}

static void
journey_json(const Touchpoint__V1__GetJourneyResponse *r)
{
	char num[64];
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
		fputs(i ? ", " : "", stdout);
		journey_json_event(stdout, r->events[i]);
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

/* The columns after detail: each field once, empty where the event has none. */
#define JOURNEY_CSV_FIELDS                                                                         \
	"customer_id,source,medium,interaction,cost,currency,name,previous_id,day,amount,traits"
#define JOURNEY_CSV_NFIELDS 11

/* -1 when out of memory (nothing of the columns was written). */
static int
journey_csv_fields(FILE *out, const Touchpoint__V1__Event *e)
{
	const char *col[JOURNEY_CSV_NFIELDS] = { e->customer_id };
	char cost[64], amount[64], day[TF_TIME_MAX], *traits = NULL;
	size_t i, len = 0;
	FILE *m;

	switch (e->kind_case) {
	case TOUCHPOINT__V1__EVENT__KIND_TOUCH:
		col[1] = e->touch->source;
		col[2] = e->touch->medium;
		col[3] = journey_interaction(e->touch->interaction);
		if (e->touch->cost_present_case == TOUCHPOINT__V1__TOUCH__COST_PRESENT_COST) {
			attr_format_number(cost, sizeof(cost), e->touch->cost);
			col[4] = cost;
		}
		break;
	case TOUCHPOINT__V1__EVENT__KIND_CONVERSION:
		col[5] = e->conversion->currency;
		col[6] = journey_conversion_name(e->conversion);
		break;
	case TOUCHPOINT__V1__EVENT__KIND_IDENTIFY:
		/* A JSON object: the detail column's "k=v" cannot tell "a=b c" apart. */
		if ((m = open_memstream(&traits, &len)) == NULL)
			return -1;
		journey_json_traits(m, e->identify);
		if (fclose(m) != 0) {
			free(traits);
			return -1;
		}
		col[10] = traits;
		break;
	case TOUCHPOINT__V1__EVENT__KIND_ALIAS:
		col[7] = e->alias->previous_id;
		break;
	case TOUCHPOINT__V1__EVENT__KIND_SPEND:
		col[5] = e->spend->currency;
		journey_day(e, day, sizeof(day));
		col[8] = day;
		attr_format_number(amount, sizeof(amount), e->spend->amount);
		col[9] = amount;
		break;
	default:
		break;
	}
	for (i = 0; i < JOURNEY_CSV_NFIELDS; i++) {
		putc(',', out);
		csv_put(out, col[i] != NULL ? col[i] : "");
	}
	free(traits);
	return 0;
}

/*
 * EX_OK, or EX_OSERR (said) when memory runs out: the CSV stops there, and the exit status
 * says so, rather than a record being left out or a column filled with a placeholder.
 */
static int
journey_csv(const Touchpoint__V1__GetJourneyResponse *r)
{
	char t[TF_TIME_MAX], v[64];
	size_t i, k;

	printf("record,timestamp,type,channel,campaign,value,event_id,detail," JOURNEY_CSV_FIELDS
	       "\r\n");
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
		if (journey_csv_fields(stdout, e) != 0)
			goto nomem;
		fputs("\r\n", stdout);
	}
	for (i = 0; i < r->n_paths; i++) {
		const Touchpoint__V1__JourneyPath *p = r->paths[i];
		char *buf = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&buf, &len);

		if (m == NULL)
			goto nomem;
		journey_channels(m, p);
		if (fclose(m) != 0) {
			free(buf);
			goto nomem;
		}
		if (p->converting)
			tf_format(p->conversion_timestamp_us, t, sizeof(t));
		attr_format_number(v, sizeof(v), p->value);
		printf("%s,%s,path,,,%s,", p->converting ? "converting_path" : "null_path",
		       p->converting ? t : "", v);
		csv_put(stdout, p->converting ? p->conversion_event_id : "");
		putchar(',');
		csv_put(stdout, buf);
		/* Every record has the header's field count (RFC 4180). */
		for (k = 0; k < JOURNEY_CSV_NFIELDS; k++)
			putchar(',');
		fputs("\r\n", stdout);
		free(buf);
	}
	return EX_OK;
nomem:
	fflush(stdout); /* the records before it, then why the rest is missing */
	cli_msg("touchpoint: journey: out of memory writing the CSV");
	return EX_OSERR;
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

/*
 * A journey too large for one reply comes in pages (GetJourneyRequest.offset): they are
 * read one after the other and their events put together, each page as of the first
 * one's as_of, so events that keep arriving for the customer do not change it. Only an
 * alias joined in between changes its total_events: then it is read again, up to
 * JOURNEY_TRIES times.
 */
#define JOURNEY_TRIES 3

struct pages {
	Touchpoint__V1__GetJourneyResponse **page;
	size_t npages, cap;
	Touchpoint__V1__Event **merged; /* every page's events (views), if more than one */
	size_t nevents;
	int complete;
};

static void
pages_free(struct pages *pg)
{
	size_t i;

	for (i = 0; i < pg->npages; i++)
		protobuf_c_message_free_unpacked(&pg->page[i]->base, NULL);
	free(pg->page);
	free(pg->merged);
	memset(pg, 0, sizeof(*pg));
}

static int
journey_read(tp_client *c, Touchpoint__V1__GetJourneyRequest *req, struct pages *pg)
{
	Touchpoint__V1__GetJourneyResponse *r;
	uint64_t total = 0;
	int rv;

	pages_free(pg);
	req->paging_case = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__PAGING_OFFSET;
	req->offset = 0;
	req->as_of = 0;
	for (;;) {
		rv = cli_rpc(c, "/touchpoint.v1.Journey/GetJourney", &req->base,
		             &touchpoint__v1__get_journey_response__descriptor,
		             (ProtobufCMessage **)&r);
		if (rv != EX_OK)
			return rv;
		if (pg->npages == pg->cap) {
			size_t ncap = pg->cap ? pg->cap * 2 : 4;
			void *np = realloc(pg->page, ncap * sizeof(*pg->page));

			if (np == NULL) {
				protobuf_c_message_free_unpacked(&r->base, NULL);
				goto nomem;
			}
			pg->page = np;
			pg->cap = ncap;
		}
		pg->page[pg->npages++] = r;
		/* A daemon without pages (total_events 0) sends the whole journey. */
		if (pg->npages == 1) {
			total = r->total_events > 0 ? r->total_events : r->n_events;
			req->as_of = r->as_of; /* 0 from a daemon before as_of: as before */
		}
		if (r->total_events != 0 && (r->total_events != total || r->offset != req->offset))
			return EX_OK; /* it changed, or pages do not follow: not complete */
		if (pg->npages == 1 && r->n_events == total) {
			pg->nevents = r->n_events;
			break;
		}
		if (pg->merged == NULL && (pg->merged = calloc(total, sizeof(*pg->merged))) == NULL)
			goto nomem;
		if (r->n_events == 0 || r->n_events > total - req->offset) {
			cli_msg("touchpoint: journey: malformed page at offset %llu",
			        (unsigned long long)req->offset);
			return EX_SOFTWARE;
		}
		memcpy(pg->merged + req->offset, r->events, r->n_events * sizeof(*r->events));
		req->offset += r->n_events;
		pg->nevents = req->offset;
		if (req->offset == total)
			break;
	}
	pg->complete = 1;
	return EX_OK;
nomem:
	cli_msg("touchpoint: out of memory");
	return EX_OSERR;
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
	struct pages pg = { 0 };
	enum cli_format fmt = CLI_TABLE;
	tp_client *c = NULL;
	int64_t lookback;
	int ch, rv, tries;

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
			return cli_bad_option("journey", argv, ch);
		}
	}
	if (optind + 1 != argc)
		return cli_usage("journey", "one customer id wanted");
	req.customer_id = argv[optind];
	if ((rv = cli_connect(g, &c)) != EX_OK)
		return rv;
	for (tries = 0; tries < JOURNEY_TRIES; tries++) {
		if ((rv = journey_read(c, &req, &pg)) != EX_OK || pg.complete)
			break;
	}
	tp_close(c);
	if (rv == EX_OK && !pg.complete) {
		cli_msg("touchpoint: journey: the journey changed while it was read in pages (an "
		        "alias joined another id to it, or the daemon predates as_of); try again");
		rv = EX_TEMPFAIL;
	}
	if (rv == EX_OK) {
		/* The first page, with every page's events. */
		Touchpoint__V1__GetJourneyResponse view = *pg.page[0];

		view.events = pg.merged != NULL ? pg.merged : pg.page[0]->events;
		view.n_events = pg.nevents;
		if (fmt == CLI_JSON)
			journey_json(&view);
		else if (fmt == CLI_CSV)
			rv = journey_csv(&view);
		else
			journey_table(&view);
	}
	pages_free(&pg);
	return rv;
}
