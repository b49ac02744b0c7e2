/*
 * touchpoint: the command-line client of touchpointd. Global options, then one command
 * (cmd_*.c), each a thin layer over libtouchpoint.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli.h"

static const char main_help[] =
    "Usage: touchpoint [-e ENDPOINT] COMMAND [options]\n"
    "\n"
    "Commands:\n"
    "  status                       daemon version, uptime, event counts, store size\n"
    "  send TYPE [options]          send one touch|conversion|identify|alias|spend event\n"
    "  import [options] FILE|-      bulk ingest CSV or NDJSON (optionally .gz)\n"
    "  journey CUSTOMER             a customer's events and paths\n"
    "  attribute [options]          credit per channel under the attribution models\n"
    "  paths [options]              the path table\n"
    "  export paths [--out FILE]    every path, ChannelAttribution CSV\n"
    "  report --out DIR [options]   HTML/CSV/JSON report with charts\n"
    "  backup DIR                   consistent copy of the store (on the daemon's host)\n"
    "\n"
    "Options:\n"
    "  -e, --endpoint URL   touchpointd's address (default: $TOUCHPOINT_ENDPOINT, else\n"
    "                       " TP_DEFAULT_ENDPOINT ";\n"
    "                       a daemon run with --state-dir DIR listens on\n"
    "                       ipc://DIR/touchpointd.sock)\n"
    "  -h, --help           this help; COMMAND --help for a command's\n"
    "  -V, --version        the version\n"
    "\n"
    "Exit status: 0 ok, 64 usage, 65 bad data, 66 not found, 69 daemon unavailable,\n"
    "70 internal error, 71 system error (out of memory, threads), 73 cannot create\n"
    "the output (backup, report, export --out), 74 cannot write the output (or\n"
    "read import's input), 75 try again later, 77 permission denied.\n";

static const struct {
	const char *name;
	int (*fn)(struct cli *, int, char **);
} main_cmds[] = {
	{ "status", cmd_status },   { "send", cmd_send },           { "import", cmd_import },
	{ "journey", cmd_journey }, { "attribute", cmd_attribute }, { "paths", cmd_paths },
	{ "export", cmd_export },   { "report", cmd_report },       { "backup", cmd_backup },
};

/*
 * Standard output written out, or 74 with why: commands print with stdio and learn of a
 * full disk only here. A reader that went away (| head) is no news worth a message.
 */
static int
main_flush(int rv)
{
	int e;

	errno = 0;
	if (fflush(stdout) == 0 && !ferror(stdout))
		return rv;
	e = errno;
	if ((rv == EX_OK || rv == EX_IOERR) && e != EPIPE)
		fprintf(stderr, "touchpoint: writing the output: %s\n", strerror(e != 0 ? e : EIO));
	return rv == EX_OK ? EX_IOERR : rv;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_LONGOPTS, { NULL, 0, NULL, 0 } };
	struct cli g = { 0 };
	size_t i;
	int ch, rv;

	/* A closed pipe (touchpoint ... | head) should end us quietly, not with a signal. */
	signal(SIGPIPE, SIG_IGN);
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		if (ch == '?' || ch == ':')
			return cli_bad_option(NULL, argv, ch);
		if ((rv = cli_common(&g, ch, main_help)) != -2)
			return main_flush(rv);
	}
	if (optind >= argc)
		return cli_usage(NULL, "no command given");
	for (i = 0; i < sizeof(main_cmds) / sizeof(main_cmds[0]); i++) {
		if (strcmp(argv[optind], main_cmds[i].name) == 0) {
			char **cargv = argv + optind;
			int cargc = argc - optind;

			optind = 0; /* reinitialise getopt for the command's own options */
			rv = main_cmds[i].fn(&g, cargc, cargv);
			return main_flush(rv);
		}
	}
	return cli_usage(NULL, "unknown command '%s'", argv[optind]);
}
