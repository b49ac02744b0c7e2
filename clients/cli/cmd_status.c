/*
 * touchpoint status: Admin/GetStatus as a table, key,value CSV or SPEC §6 JSON.
 */
#include <getopt.h>
#include <inttypes.h>
#include <sysexits.h>

#include "attribution/engine.h"
#include "cli.h"
#include "json.h"
#include "touchpoint/v1/query.pb-c.h"

static const char status_help[] =
    "Usage: touchpoint status [--format table|csv|json] [-e ENDPOINT]\n"
    "\n"
    "Shows touchpointd's version, uptime, stored events per type, duplicates\n"
    "(acknowledged but not stored again), the number of customers (exact up to\n"
    "65 536, then an estimate within about 1 %) and the store's size in bytes.\n"
    "  --format F   table (default), csv (key,value rows) or json\n";

int
cmd_status(struct cli *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "format", required_argument, NULL, CLI_OPT_FORMAT },
		{ NULL, 0, NULL, 0 },
	};
	Touchpoint__V1__GetStatusRequest req = TOUCHPOINT__V1__GET_STATUS_REQUEST__INIT;
	Touchpoint__V1__GetStatusResponse *r = NULL;
	Touchpoint__V1__EventCounts none = TOUCHPOINT__V1__EVENT_COUNTS__INIT;
	const Touchpoint__V1__EventCounts *ev;
	enum cli_format fmt = CLI_TABLE;
	tp_client *c = NULL;
	int ch, rv;

	while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		if ((rv = cli_common(g, ch, status_help)) != -1) {
			if (rv != -2)
				return rv;
		} else if (ch == CLI_OPT_FORMAT) {
			if (cli_parse_format(optarg, &fmt) != 0)
				return cli_usage("status", "bad --format '%s'", optarg);
		} else {
			return cli_bad_option("status", argv, ch);
		}
	}
	if (optind != argc)
		return cli_usage("status", "unexpected argument '%s'", argv[optind]);
	if ((rv = cli_connect(g, &c)) != EX_OK)
		return rv;
	rv = cli_rpc(c, "/touchpoint.v1.Admin/GetStatus", &req.base,
	             &touchpoint__v1__get_status_response__descriptor, (ProtobufCMessage **)&r);
	tp_close(c);
	if (rv != EX_OK)
		return rv;
	ev = r->events != NULL ? r->events : &none;
	switch (fmt) {
	case CLI_JSON:
		printf("{\"version\": ");
		attr_json_string(stdout, r->version);
		printf(", \"uptime_s\": %" PRIu64 ", \"events\": {\"touch\": %" PRIu64
		       ", \"conversion\": %" PRIu64 ", \"identify\": %" PRIu64
		       ", \"alias\": %" PRIu64 ", \"spend\": %" PRIu64 ", \"total\": %" PRIu64
		       "}, \"duplicates\": %" PRIu64 ", \"customers\": %" PRIu64
		       ", \"store_bytes\": %" PRIu64 "}\n",
		       r->uptime_s, ev->touch, ev->conversion, ev->identify, ev->alias, ev->spend,
		       ev->total, r->duplicates, r->customers, r->store_bytes);
		break;
	case CLI_CSV:
		/* RFC 4180 lines, as every other CSV of the CLI */
		printf("key,value\r\nversion,%s\r\nuptime_s,%" PRIu64 "\r\nevents.touch,%" PRIu64
		       "\r\nevents.conversion,%" PRIu64 "\r\nevents.identify,%" PRIu64
		       "\r\nevents.alias,%" PRIu64 "\r\nevents.spend,%" PRIu64
		       "\r\nevents.total,%" PRIu64 "\r\nduplicates,%" PRIu64
		       "\r\ncustomers,%" PRIu64 "\r\nstore_bytes,%" PRIu64 "\r\n",
		       r->version, r->uptime_s, ev->touch, ev->conversion, ev->identify, ev->alias,
		       ev->spend, ev->total, r->duplicates, r->customers, r->store_bytes);
		break;
	case CLI_TABLE:
		printf("version      %s\nuptime       %" PRIu64 " s\nevents       %" PRIu64
		       " (touch %" PRIu64 ", conversion %" PRIu64 ", identify %" PRIu64
		       ", alias %" PRIu64 ", spend %" PRIu64 ")\nduplicates   %" PRIu64
		       "\ncustomers    %" PRIu64 "\nstore        %" PRIu64 " bytes\n",
		       r->version, r->uptime_s, ev->total, ev->touch, ev->conversion, ev->identify,
		       ev->alias, ev->spend, r->duplicates, r->customers, r->store_bytes);
		break;
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return EX_OK;
}
