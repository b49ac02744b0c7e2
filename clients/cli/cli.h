/*
 * What the touchpoint commands share: global options, output formats, the mapping of
 * statuses to sysexits codes and the RPC helper that prints what went wrong.
 */
#ifndef TP_CLI_CLI_H
#define TP_CLI_CLI_H

#include <stdio.h>

#include <protobuf-c/protobuf-c.h>

#include "touchpoint/touchpoint.h"

enum cli_format { CLI_TABLE, CLI_CSV, CLI_JSON };

struct cli {
	const char *endpoint; /* NULL: $TOUCHPOINT_ENDPOINT or the default */
};

/* Options every command takes; their getopt values. */
#define CLI_OPT_ENDPOINT 'e'
#define CLI_OPT_HELP     'h'
#define CLI_OPT_VERSION  'V'
#define CLI_OPT_FORMAT   0x100
#define CLI_COMMON_LONGOPTS                                                                        \
	{ "endpoint", required_argument, NULL, CLI_OPT_ENDPOINT },                                 \
	    { "help", no_argument, NULL, CLI_OPT_HELP },                                           \
	{                                                                                          \
		"version", no_argument, NULL, CLI_OPT_VERSION                                      \
	}
#define CLI_COMMON_SHORTOPTS "e:hV"

/* sysexits code for a tp status (SPEC §6). */
int cli_exit_code(int status);
/*
 * The same for a status of work done in this process, not by the daemon (a local path
 * table, a report, the output): RESOURCE_EXHAUSTED is then our memory, 71, not a busy
 * daemon's 75.
 */
int cli_local_exit_code(int status);
int cli_parse_format(const char *s, enum cli_format *f);
/* A decimal count in [min, max] (an option's value); 0, or -1 if it is not one. */
int cli_parse_count(const char *s, unsigned long min, unsigned long max, unsigned long *out);
/* Room for one message: a path of PATH_MAX with words around it. */
#define CLI_MSG_MAX 5120
/*
 * Prints one line to stderr: the formatted text with each control character as '?', as
 * tables print names (attr_text_put), since messages quote ids, cells, keys and paths
 * that must not move the cursor or retitle the terminal. Longer text ends in "...".
 */
void cli_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "touchpoint CMD: message" (as cli_msg) and a --help hint to stderr; returns 64. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * For an option the command does not take, getopt_long's ch: '?' (opterr = 0) for one
 * unknown or without its value, else one of another command's. Names the option itself
 * (never its value), as cli_usage() does; returns 64.
 */
int cli_bad_option(const char *cmd, char **argv, int ch);
/* Prints usage (stdout) and returns 0; main() flushes it. */
int cli_help(const char *text);
int cli_version(void);
/* Handles -e/-h/-V; returns -1 when ch is none of them, else the exit code or -2 (go on). */
int cli_common(struct cli *g, int ch, const char *help);

/* Prints res's message and violations to stderr, prefixed by what. */
void cli_report(const char *what, const struct tp_result *res);
/* Connects (printing why not); returns 0 or an exit code. */
int cli_connect(const struct cli *g, tp_client **cp);
/*
 * Packs req, calls method, unpacks the reply as out_desc into *out (free with
 * protobuf_c_message_free_unpacked). Prints failures; returns 0 or an exit code.
 */
int cli_rpc(tp_client *c, const char *method, const ProtobufCMessage *req,
            const ProtobufCMessageDescriptor *out_desc, ProtobufCMessage **out);
/*
 * cli_rpc without printing the daemon's refusal: a failed call leaves its status, message
 * and violations in *res (tp_result_free it); otherwise res->status is TP_OK. Local
 * failures (memory, a malformed reply) are printed as by cli_rpc.
 */
int cli_rpc_result(tp_client *c, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *out_desc, ProtobufCMessage **out,
                   struct tp_result *res);
/* cli_rpc, also giving the call's tp status in *st. */
int cli_rpc_status(tp_client *c, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *out_desc, ProtobufCMessage **out, int *st);

/* Commands: argv[0] is the command name. Each returns an exit code. */
int cmd_status(struct cli *g, int argc, char **argv);
int cmd_send(struct cli *g, int argc, char **argv);
int cmd_import(struct cli *g, int argc, char **argv);
int cmd_journey(struct cli *g, int argc, char **argv);
int cmd_attribute(struct cli *g, int argc, char **argv);
int cmd_paths(struct cli *g, int argc, char **argv);
int cmd_export(struct cli *g, int argc, char **argv);
int cmd_report(struct cli *g, int argc, char **argv);
int cmd_backup(struct cli *g, int argc, char **argv);

#endif /* TP_CLI_CLI_H */
