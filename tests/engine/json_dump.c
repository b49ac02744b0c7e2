/*
 * json_dump: prints the engine's JSON for a small data set (with segments, daily credits,
 * spend and the Markov matrix) so that check_json.py can verify SPEC §6's shape.
 */
#include <stdio.h>
#include <string.h>

#include "engine_util.h"

int
main(int argc, char **argv)
{
	struct attr_trait pro = { "plan", "pro" };
	struct attr_event a[] = { TOUCH(1 * DAY, SEARCH, SPRING), TOUCH(2 * DAY, EMAIL, 0),
		                  CONV(2 * DAY + 5, 12.5, PURCHASE) };
	struct attr_event b[] = { { 0 },
		                  TOUCH(1 * DAY, SOCIAL, 0),
		                  TOUCH(3 * DAY, EMAIL, 0),
		                  CONV(3 * DAY + 7, 3, PURCHASE),
		                  TOUCH(4 * DAY, DIRECT, 0) };
	static const char *const hostile[NNAMES + 32] = {
		NULL, "se\"arch\\", "em\nail", "direct\x01", "display", "sociäl 😀",
	};
	Touchpoint__V1__AttributeResponse *r;
	Touchpoint__V1__PathsResponse *p;
	struct attr_engine *e;
	struct req q;
	char err[256];
	int paths = argc > 1 && strcmp(argv[1], "paths") == 0;

	b[0].kind = ATTR_IDENTIFY;
	b[0].traits = &pro;
	b[0].ntraits = 1;
	seqs(a, 3);
	seqs(b, 5);
	req_init(&q);
	q.r.by_trait = "plan";
	q.r.daily_model = "position_based";
	q.r.transition_matrix = 1;
	q.w.from_case = TOUCHPOINT__V1__WINDOW__FROM_FROM_US;
	q.w.from_us = 0;
	if (attr_engine_new(&e, &q.r, 30 * 86400, names_fn, (void *)hostile, err, sizeof(err)) !=
	    TP_OK) {
		fprintf(stderr, "json_dump: %s\n", err);
		return 1;
	}
	if (attr_engine_customer(e, a, 3) != TP_OK || attr_engine_customer(e, b, 5) != TP_OK ||
	    attr_engine_spend(e, SEARCH, SPRING, 1, 4.5, "EUR") != TP_OK)
		return 1;
	if (paths) {
		if (attr_engine_paths(e, 0, &p) != TP_OK ||
		    attr_render_paths(stdout, p, ATTR_FORMAT_JSON) != TP_OK)
			return 1;
		protobuf_c_message_free_unpacked(&p->base, NULL);
	} else {
		if (attr_engine_result(e, &r) != TP_OK ||
		    attr_render_attribute(stdout, r, ATTR_FORMAT_JSON) != TP_OK)
			return 1;
		protobuf_c_message_free_unpacked(&r->base, NULL);
	}
	attr_engine_free(e);
	return 0;
}
