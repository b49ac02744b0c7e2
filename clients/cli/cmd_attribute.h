/*
 * The attribution options shared by attribute, paths, export paths and report: the
 * window, the model list and its parameters, turned into an AttributeRequest.
 */
#ifndef TP_CLI_CMD_ATTRIBUTE_H
#define TP_CLI_CMD_ATTRIBUTE_H

#include <getopt.h>

#include "touchpoint/v1/attribution.pb-c.h"

#define ATTR_MAX_MODELS 16
#define ATTR_MAX_PARAMS 4

enum {
	ATTR_OPT_FROM = 0x300,
	ATTR_OPT_TO,
	ATTR_OPT_REPEATS,
	ATTR_OPT_LEVEL,
	ATTR_OPT_HALF_LIFE,
	ATTR_OPT_ORDER,
	ATTR_OPT_CONVERSION,
	ATTR_OPT_BY,
	ATTR_OPT_FIRST_WEIGHT,
	ATTR_OPT_LAST_WEIGHT,
	ATTR_OPT_DIRECT,
	ATTR_OPT_MATRIX,
	ATTR_OPT_TOP,
	ATTR_OPT_PDF,
	ATTR_OPT_GNUPLOT,
};

/* The request and every piece it points to (no allocation). */
struct attr_opts {
	Touchpoint__V1__AttributeRequest req;
	Touchpoint__V1__Window win;
	const char *model_list;
	char names[ATTR_MAX_MODELS][48];
	size_t nmodels;
	Touchpoint__V1__ModelSpec specs[ATTR_MAX_MODELS];
	Touchpoint__V1__ModelSpec *specp[ATTR_MAX_MODELS];
	Touchpoint__V1__Param params[ATTR_MAX_MODELS][ATTR_MAX_PARAMS];
	Touchpoint__V1__Param *paramp[ATTR_MAX_MODELS][ATTR_MAX_PARAMS];
	char half_life[24], order[4], first_weight[32], last_weight[32];
	const char *direct;
};

extern const struct option attr_longopts[];
extern const size_t attr_nlongopts;

void attr_opts_init(struct attr_opts *o);
/* 0 when ch was an attribution option, -1 when not one, else a usage exit code. */
int attr_opts_parse(struct attr_opts *o, const char *cmd, int ch, const char *arg);
/* Builds req.models from the list and parameters; 0 or a usage exit code. */
int attr_opts_finish(struct attr_opts *o, const char *cmd);
/* Common + format + attribution options (+ extra, --top, --out, --pdf, --gnuplot); out
 * needs room for 32. */
void attr_longopts_build(struct option *out, const char *extra, int extra_val);

/*
 * The whole path table of req (its top), read page by page from one snapshot and joined
 * into one response; an exit code (EX_OK). For callers that need every row in memory.
 */
struct tp_client;
int attr_paths_fetch(struct tp_client *c, Touchpoint__V1__PathsRequest *req,
                     Touchpoint__V1__PathsResponse **out);

#endif /* TP_CLI_CMD_ATTRIBUTE_H */
