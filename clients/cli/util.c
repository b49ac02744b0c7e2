/*
 * Shared CLI plumbing: exit codes, common options, connecting and calling with errors
 * reported the same way everywhere.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "attribution/engine.h"
#include "cli.h"

int
cli_exit_code(int status)
{
	switch (status) {
	case TP_OK:
		return EX_OK;
	case TP_INVALID_ARGUMENT:
		return EX_DATAERR;
	case TP_NOT_FOUND:
		return EX_NOINPUT;
	case TP_UNAVAILABLE:
		return EX_UNAVAILABLE;
	case TP_DEADLINE_EXCEEDED:
	case TP_RESOURCE_EXHAUSTED:
		return EX_TEMPFAIL;
	case TP_PERMISSION_DENIED:
	case TP_UNAUTHENTICATED:
		return EX_NOPERM;
	default:
		return EX_SOFTWARE;
	}
}

int
cli_local_exit_code(int status)
{
	return status == TP_RESOURCE_EXHAUSTED ? EX_OSERR : cli_exit_code(status);
}

int
cli_parse_count(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
cli_parse_format(const char *s, enum cli_format *f)
{
	if (strcmp(s, "table") == 0)
		*f = CLI_TABLE;
	else if (strcmp(s, "csv") == 0)
		*f = CLI_CSV;
	else if (strcmp(s, "json") == 0)
		*f = CLI_JSON;
	else
		return -1;
	return 0;
}

void
cli_msg(const char *fmt, ...)
{
	char buf[CLI_MSG_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		snprintf(buf, sizeof(buf), "touchpoint: (a message that cannot be formatted)");
	attr_text_put(stderr, buf);
	if (n >= (int)sizeof(buf))
		fputs("...", stderr);
	putc('\n', stderr);
}

int
cli_usage(const char *cmd, const char *fmt, ...)
{
	char msg[CLI_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cli_msg("touchpoint%s%s: %s", cmd ? " " : "", cmd ? cmd : "", msg);
	fprintf(stderr, "Try 'touchpoint %s%s--help'.\n", cmd ? cmd : "", cmd ? " " : "");
	return EX_USAGE;
}

int
cli_bad_option(const char *cmd, char **argv, int ch)
{
	const char *a = optind > 0 ? argv[optind - 1] : "";
	int n;

	if (ch != '?' && ch != ':') {
		/* Another command's option, known to getopt: its value may be the next word. */
		if (optarg != NULL && optind > 1 && argv[optind - 1] == optarg)
			a = argv[optind - 2];
		if (strncmp(a, "--", 2) != 0)
			return cli_usage(cmd, "option '-%c' does not apply to %s", ch,
			                 cmd ? cmd : "touchpoint");
		n = (int)strcspn(a, "=");
		return cli_usage(cmd, "option '%.*s' does not apply to %s", n, a,
		                 cmd ? cmd : "touchpoint");
	}
	/* A short option may sit in a cluster (-fx): getopt names it in optopt. */
	if (optopt > 0 && optopt < 128 && strncmp(a, "--", 2) != 0)
		return cli_usage(cmd, "unknown option, or one without its value: '-%c'", optopt);
	n = (int)strcspn(a, "=");
	return cli_usage(cmd, "unknown option, or one without its value: '%.*s'", n, a);
}

/* main() flushes standard output after every command and says why it failed. */
int
cli_help(const char *text)
{
	fputs(text, stdout);
	return EX_OK;
}

int
cli_version(void)
{
	printf("touchpoint %s\n", TP_VERSION);
	return EX_OK;
}

int
cli_common(struct cli *g, int ch, const char *help)
{
	switch (ch) {
	case CLI_OPT_ENDPOINT:
		g->endpoint = optarg;
		return -2;
	case CLI_OPT_HELP:
		return cli_help(help);
	case CLI_OPT_VERSION:
		return cli_version();
	default:
		return -1;
	}
}

void
cli_report(const char *what, const struct tp_result *res)
{
	size_t i;

	/* The daemon's messages quote what it was sent: a customer id, a channel. */
	cli_msg("touchpoint: %s: %s%s%s", what, tp_strerror(res->status),
	        res->message[0] ? ": " : "", res->message);
	for (i = 0; i < res->nviolations && i < 100; i++)
		cli_msg("  %s: %s", res->violations[i].field, res->violations[i].reason);
	if (res->nviolations > 100)
		fprintf(stderr, "  ... and %zu more\n", res->nviolations - 100);
}

int
cli_connect(const struct cli *g, tp_client **cp)
{
	struct tp_result res;
	int status;

	if ((status = tp_connect_ex(cp, g->endpoint, &res)) != TP_OK) {
		cli_msg("touchpoint: %s", res.message);
		/* Only the URL is bad: the value of -e or TOUCHPOINT_ENDPOINT, a usage error. */
		if (status == TP_INVALID_ARGUMENT) {
			fprintf(stderr, "touchpoint: an endpoint is an NNG URL, e.g. "
			                "ipc:///path/to.sock or tcp://host:port (-e or "
			                "TOUCHPOINT_ENDPOINT).\n");
			tp_result_free(&res);
			return EX_USAGE;
		}
		if (status == TP_UNAVAILABLE)
			fprintf(stderr, "touchpoint: is touchpointd running? Set the endpoint "
			                "with -e or TOUCHPOINT_ENDPOINT.\n");
		tp_result_free(&res);
		return cli_exit_code(status);
	}
	return EX_OK;
}

/* malloc for protobuf-c's unpack, noting when it fails: NULL from unpack is then memory. */
static void *
cli_unpack_alloc(void *arg, size_t n)
{
	void *p = malloc(n > 0 ? n : 1);

	if (p == NULL)
		*(int *)arg = 1;
	return p;
}

static void
cli_unpack_free(void *arg, void *p)
{
	(void)arg;
	free(p);
}

int
cli_rpc_result(tp_client *c, const char *method, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *out_desc, ProtobufCMessage **out,
               struct tp_result *res)
{
	uint8_t *buf = NULL;
	void *resp = NULL;
	size_t len, rlen = 0;
	int status, oom = 0;
	/* Freed as usual (free_unpacked with NULL): both are malloc and free. */
	ProtobufCAllocator alloc = { cli_unpack_alloc, cli_unpack_free, &oom };

	*out = NULL;
	memset(res, 0, sizeof(*res));
	res->status = TP_OK;
	len = protobuf_c_message_get_packed_size(req);
	if ((buf = malloc(len ? len : 1)) == NULL) {
		fprintf(stderr, "touchpoint: out of memory\n");
		return EX_OSERR;
	}
	protobuf_c_message_pack(req, buf);
	status = tp_call(c, method, buf, len, &resp, &rlen, res);
	free(buf);
	if (status != TP_OK)
		return cli_exit_code(status);
	*out = protobuf_c_message_unpack(out_desc, &alloc, rlen, resp);
	free(resp);
	if (*out == NULL && oom) {
		fprintf(stderr, "touchpoint: out of memory unpacking the %s reply\n",
		        out_desc->name);
		return EX_OSERR;
	}
	if (*out == NULL) {
		fprintf(stderr, "touchpoint: malformed %s reply\n", out_desc->name);
		return EX_SOFTWARE;
	}
	return EX_OK;
}

int
cli_rpc_status(tp_client *c, const char *method, const ProtobufCMessage *req,
               const ProtobufCMessageDescriptor *out_desc, ProtobufCMessage **out, int *st)
{
	struct tp_result res;
	int rv = cli_rpc_result(c, method, req, out_desc, out, &res);

	if (st != NULL)
		*st = res.status;
	if (res.status != TP_OK) {
		cli_report(strrchr(method, '/') + 1, &res);
		tp_result_free(&res);
	}
	return rv;
}

int
cli_rpc(tp_client *c, const char *method, const ProtobufCMessage *req,
        const ProtobufCMessageDescriptor *out_desc, ProtobufCMessage **out)
{
	return cli_rpc_status(c, method, req, out_desc, out, NULL);
}
