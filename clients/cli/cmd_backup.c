/*
 * touchpoint backup DIR: Admin/Backup, a consistent copy of the store made by the daemon
 * (so DIR is a path on the daemon's host, made absolute here).
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "attribution/engine.h"
#include "cli.h"
#include "csv.h"
#include "json.h"
#include "touchpoint/v1/query.pb-c.h"

static const char backup_help[] =
    "Usage: touchpoint backup [--format table|csv|json] DIR\n"
    "\n"
    "Asks touchpointd for a consistent, compacted copy of its store in DIR (which must\n"
    "not exist or be empty), made while it keeps serving. DIR is on the daemon's host;\n"
    "a relative DIR is made absolute against this directory. It waits as long as the\n"
    "copy takes. Exit status 73 when DIR is not empty or cannot be created.\n"
    "  --format F   table (default), csv or json\n";

/* realpath() of DIR's parent (which must exist) plus DIR's last component. */
static int
backup_abspath(const char *dir, char *out, size_t len)
{
	char parent[PATH_MAX], real[PATH_MAX];
	const char *base;
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 0 || n >= sizeof(parent))
		return -1;
	memcpy(parent, dir, n);
	parent[n] = '\0';
	if ((base = strrchr(parent, '/')) == NULL) {
		base = parent;
		if (realpath(".", real) == NULL)
			return -1;
	} else {
		parent[base - parent] = '\0';
		base++;
		if (realpath(parent[0] ? parent : "/", real) == NULL)
			return -1;
	}
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || *base == '\0')
		return -1;
	if ((size_t)snprintf(out, len, "%s/%s", strcmp(real, "/") == 0 ? "" : real, base) >= len)
		return -1;
	return 0;
}

int
cmd_backup(struct cli *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "format", required_argument, NULL, CLI_OPT_FORMAT },
		{ NULL, 0, NULL, 0 },
	};
	Touchpoint__V1__BackupRequest req = TOUCHPOINT__V1__BACKUP_REQUEST__INIT;
	Touchpoint__V1__BackupResponse *r = NULL;
	enum cli_format fmt = CLI_TABLE;
	char path[PATH_MAX];
	tp_client *c = NULL;
	int ch, rv, st = TP_OK;

	while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		if ((rv = cli_common(g, ch, backup_help)) != -1) {
			if (rv != -2)
				return rv;
		} else if (ch == CLI_OPT_FORMAT) {
			if (cli_parse_format(optarg, &fmt) != 0)
				return cli_usage("backup", "bad --format '%s'", optarg);
		} else {
			return cli_bad_option("backup", argv, ch);
		}
	}
	if (optind + 1 != argc)
		return cli_usage("backup", "one directory wanted");
	if (backup_abspath(argv[optind], path, sizeof(path)) != 0) {
		cli_msg("touchpoint backup: %s: cannot resolve its parent directory: %s",
		        argv[optind], strerror(errno ? errno : EINVAL));
		return EX_CANTCREAT;
	}
	req.dir = path;
	if ((rv = cli_connect(g, &c)) != EX_OK)
		return rv;
	/*
	 * The daemon finishes a backup it has started whoever waits (a copy of a few GB takes
	 * minutes): with the default 10 s the CLI said "try again later" (75) about a backup
	 * that then succeeded, and the retry found the directory taken (73).
	 */
	tp_set_timeout(c, 0);
	rv = cli_rpc_status(c, "/touchpoint.v1.Admin/Backup", &req.base,
	                    &touchpoint__v1__backup_response__descriptor, (ProtobufCMessage **)&r,
	                    &st);
	tp_close(c);
	if (rv != EX_OK) /* DIR exists and is not empty, or its parent is missing */
		return st == TP_FAILED_PRECONDITION ? EX_CANTCREAT : rv;
	switch (fmt) {
	case CLI_JSON:
		printf("{\"dir\": ");
		attr_json_string(stdout, r->dir);
		printf(", \"bytes\": %" PRIu64 ", \"events\": %" PRIu64 "}\n", r->bytes, r->events);
		break;
	case CLI_CSV:
		printf("dir,bytes,events\r\n");
		csv_put(stdout, r->dir);
		printf(",%" PRIu64 ",%" PRIu64 "\r\n", r->bytes, r->events);
		break;
	case CLI_TABLE:
		fputs("backup ", stdout);
		attr_text_put(stdout, r->dir);
		printf(": %" PRIu64 " events, %" PRIu64 " bytes\n", r->events, r->bytes);
		break;
	}
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return EX_OK;
}
