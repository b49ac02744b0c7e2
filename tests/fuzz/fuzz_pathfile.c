/*
 * fuzz_pathfile: `attribute --paths` (daemon/attribution/pathfile.c) over arbitrary bytes with
 * first_touch, linear and markov order 1, then rendered; the length picks level and repeats.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attribution/engine.h"
#include "touchpoint/touchpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FP_MAX_INPUT (64 * 1024)
/*
 * Markov's cost grows with the distinct channels (a dense inverse up to 1536 states): an
 * input that may name more than this many gets the two heuristics only, so thousands of
 * runs still take seconds.
 */
#define FP_MARKOV_UNITS 256

/* Channel names in a path are at most one per '>' plus one per row. */
static size_t
max_units(const uint8_t *data, size_t size)
{
	size_t i, n = 1;

	for (i = 0; i < size; i++)
		n += data[i] == '>' || data[i] == '\n';
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Touchpoint__V1__AttributeRequest req = TOUCHPOINT__V1__ATTRIBUTE_REQUEST__INIT;
	Touchpoint__V1__Window w = TOUCHPOINT__V1__WINDOW__INIT;
	Touchpoint__V1__ModelSpec ms[3] = { TOUCHPOINT__V1__MODEL_SPEC__INIT,
		                            TOUCHPOINT__V1__MODEL_SPEC__INIT,
		                            TOUCHPOINT__V1__MODEL_SPEC__INIT };
	Touchpoint__V1__ModelSpec *msp[3] = { &ms[0], &ms[1], &ms[2] };
	Touchpoint__V1__Param order = TOUCHPOINT__V1__PARAM__INIT, *orderp = &order;
	Touchpoint__V1__AttributeResponse *resp = NULL;
	static FILE *null_out;
	char err[512];
	FILE *in;
	int rv;

	if (size == 0 || size > FP_MAX_INPUT)
		return 0;
	if (null_out == NULL && (null_out = fopen("/dev/null", "w")) == NULL)
		abort();
	ms[0].model = (char *)"first_touch";
	ms[1].model = (char *)"linear";
	ms[2].model = (char *)"markov";
	order.key = (char *)"order";
	order.value = (char *)"1";
	ms[2].params = &orderp;
	ms[2].n_params = 1;
	req.models = msp;
	req.n_models = max_units(data, size) <= FP_MARKOV_UNITS ? 3 : 2;
	w.lookback_case = TOUCHPOINT__V1__WINDOW__LOOKBACK_LOOKBACK_S;
	w.lookback_s = 0;
	w.level =
	    size % 2 ? TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN : TOUCHPOINT__V1__LEVEL__LEVEL_CHANNEL;
	w.repeats = size / 2 % 2 ? TOUCHPOINT__V1__REPEATS__REPEATS_COLLAPSE
	                         : TOUCHPOINT__V1__REPEATS__REPEATS_KEEP;
	req.window = &w;

	if ((in = fmemopen((void *)data, size, "r")) == NULL)
		return 0;
	err[0] = '\0';
	rv = attr_pathfile_attribute(in, &req, &resp, err, sizeof(err));
	fclose(in);
	if (rv == TP_OK) {
		if (resp == NULL)
			abort();
		/* what the CLI prints next, names from the file included */
		if (attr_render_attribute(null_out, resp, ATTR_FORMAT_TABLE) != TP_OK ||
		    attr_render_attribute(null_out, resp, ATTR_FORMAT_CSV) != TP_OK ||
		    attr_render_attribute(null_out, resp, ATTR_FORMAT_JSON) != TP_OK)
			abort();
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	} else if (resp != NULL || (rv == TP_INVALID_ARGUMENT && err[0] == '\0')) {
		abort();
	}
	return 0;
}
