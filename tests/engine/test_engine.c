/*
 * test_engine: the attribution engine against hand-computed journeys (SPEC §3, §4), its
 * edge cases and invariants, and the path-file round trip.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "attribution/internal.h"
#include "attribution/pathtable.h"
#include "engine_util.h"

#define EPS 1e-12
static void
near_(double a, double b, int line)
{
	if (!(fabs(a - b) <= 1e-9 * (1 + fabs(b))))
		fail_msg("line %d: %.17g != %.17g", line, a, b);
}
#define near(a, b) near_((a), (b), __LINE__)

typedef Touchpoint__V1__AttributeResponse AResp;

struct cust {
	struct attr_event *ev;
	size_t n;
};

static AResp *
run(struct req *q, struct cust *c, size_t nc, const char *const *names)
{
	struct attr_engine *e;
	AResp *r;
	char err[256];
	size_t i;

	assert_int_equal(
	    attr_engine_new(&e, &q->r, 30 * 86400, names_fn, (void *)names, err, sizeof(err)),
	    TP_OK);
	for (i = 0; i < nc; i++) {
		seqs(c[i].ev, c[i].n);
		assert_int_equal(attr_engine_customer(e, c[i].ev, c[i].n), TP_OK);
	}
	assert_int_equal(attr_engine_result(e, &r), TP_OK);
	attr_engine_free(e);
	return r;
}

static void
free_resp(AResp *r)
{
	protobuf_c_message_free_unpacked(&r->base, NULL);
}

static char *
render_as(AResp *r, enum attr_format fmt)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	assert_non_null((f = open_memstream(&buf, &len)));
	assert_int_equal(attr_render_attribute(f, r, fmt), TP_OK);
	fclose(f);
	return buf;
}

static char *
render(AResp *r)
{
	return render_as(r, ATTR_FORMAT_JSON);
}

/*
 * The basic set: A: search@1d email@2d direct@3d, buys 100 at 3d+1h;
 * B: display@1d search@2d, buys 50 at 2d+1h; C: email@1d, no purchase (a null path).
 */
static struct attr_event evA[4], evB[3], evC[1];

static size_t
basic(struct cust *c)
{
	evA[0] = TOUCH(1 * DAY, SEARCH, 0);
	evA[1] = TOUCH(2 * DAY, EMAIL, 0);
	evA[2] = TOUCH(3 * DAY, DIRECT, 0);
	evA[3] = CONV(3 * DAY + HOUR, 100, PURCHASE);
	evB[0] = TOUCH(1 * DAY, DISPLAY, 0);
	evB[1] = TOUCH(2 * DAY, SEARCH, 0);
	evB[2] = CONV(2 * DAY + HOUR, 50, PURCHASE);
	evC[0] = TOUCH(1 * DAY, EMAIL, 0);
	c[0] = (struct cust){ evA, 4 };
	c[1] = (struct cust){ evB, 3 };
	c[2] = (struct cust){ evC, 1 };
	return 3;
}

static void
test_heuristics(void **state)
{
	struct cust c[3];
	struct req q;
	AResp *r;

	(void)state;
	req_init(&q);
	req_model(&q, "first_touch", NULL, NULL);
	req_model(&q, "last_touch", NULL, NULL);
	req_model(&q, "last_non_direct", NULL, NULL);
	req_model(&q, "linear", NULL, NULL);
	req_model(&q, "position_based", NULL, NULL);
	req_model(&q, "j_shaped", NULL, NULL);
	req_model(&q, "participation", NULL, NULL);
	req_model(&q, "shapley", NULL, NULL);
	req_model(&q, "time_decay", "half_life_s", "86400");
	r = run(&q, c, basic(c), NULL);

	assert_int_equal(r->totals->converting_paths, 2);
	assert_int_equal(r->totals->null_paths, 1);
	near(r->totals->conversions, 2);
	near(r->totals->value, 150);
	/* first: A -> search, B -> display */
	near(conv_of(r, "first_touch", "search"), 1);
	near(value_of(r, "first_touch", "search"), 100);
	near(conv_of(r, "first_touch", "display"), 1);
	near(conv_of(r, "first_touch", "email"), 0);
	/* last: A -> direct, B -> search */
	near(conv_of(r, "last_touch", "direct"), 1);
	near(value_of(r, "last_touch", "search"), 50);
	/* last non-direct: A skips direct -> email */
	near(conv_of(r, "last_non_direct", "email"), 1);
	near(conv_of(r, "last_non_direct", "direct"), 0);
	near(conv_of(r, "last_non_direct", "search"), 1);
	/* linear: search 1/3 + 1/2 = 5/6, value 100/3 + 25 */
	near(conv_of(r, "linear", "search"), 5.0 / 6);
	near(value_of(r, "linear", "search"), 100.0 / 3 + 25);
	near(conv_of(r, "linear", "direct"), 1.0 / 3);
	/* position 0.4/0.4: A search .4 email .2 direct .4; B two touches .5/.5 */
	near(conv_of(r, "position_based", "search"), 0.9);
	near(conv_of(r, "position_based", "email"), 0.2);
	near(conv_of(r, "position_based", "display"), 0.5);
	/* j_shaped 0.2/0.6: A search .2 email .2 direct .6; B display .25 search .75 */
	near(conv_of(r, "j_shaped", "search"), 0.95);
	near(conv_of(r, "j_shaped", "direct"), 0.6);
	near(conv_of(r, "j_shaped", "display"), 0.25);
	/* participation: search in both converting paths; the null path gives nothing */
	near(conv_of(r, "participation", "search"), 2);
	near(conv_of(r, "participation", "email"), 1);
	/* shapley = equal split over distinct channels = linear here */
	near(conv_of(r, "shapley", "search"), 5.0 / 6);
	/*
	 * time_decay, h = 1 day: A's touches are 2, 1, 0 days before the last touch:
	 * weights 1/4, 1/2, 1 (sum 7/4) -> 1/7, 2/7, 4/7. B: 1/2, 1 -> 1/3, 2/3.
	 */
	near(conv_of(r, "time_decay", "search"), 1.0 / 7 + 2.0 / 3);
	near(conv_of(r, "time_decay", "email"), 2.0 / 7);
	near(conv_of(r, "time_decay", "direct"), 4.0 / 7);
	near(value_of(r, "time_decay", "direct"), 400.0 / 7);
	near(conv_of(r, "time_decay", "display"), 1.0 / 3);
	/* shares: of attributed conversions (2) */
	near(find_credit(find_model(r->models, r->n_models, "linear"), "search")->share, 5.0 / 12);
	/* sorted by conversions desc, then name */
	{
		const Touchpoint__V1__ModelResult *m = find_model(r->models, r->n_models, "linear");

		assert_string_equal(m->channels[0]->channel, "search");
		assert_string_equal(m->channels[1]->channel, "display");
		assert_string_equal(m->channels[2]->channel, "direct");
		assert_string_equal(m->channels[3]->channel, "email");
		/* email appears in the null path, so it is listed (with credit 0 only there) */
		m = find_model(r->models, r->n_models, "first_touch");
		assert_int_equal(m->n_channels, 4);
		assert_string_equal(m->channels[3]->channel, "email");
		m = find_model(r->models, r->n_models, "time_decay");
		assert_string_equal(m->params[0]->key, "half_life_s");
		assert_string_equal(m->params[0]->value, "86400");
		m = find_model(r->models, r->n_models, "j_shaped");
		assert_int_equal(m->n_params, 2);
		assert_string_equal(m->params[1]->value, "0.6");
	}
	free_resp(r);
}

/* SPEC §3 cut points, through the journey API. */
struct rec {
	int conv[8];
	size_t ci[8], n[8], idx[8][8];
	size_t count;
};

static int
record(void *arg, int converting, size_t ci, const size_t *ti, size_t n)
{
	struct rec *r = arg;
	size_t i;

	r->conv[r->count] = converting;
	r->ci[r->count] = ci;
	r->n[r->count] = n;
	for (i = 0; i < n && i < 8; i++)
		r->idx[r->count][i] = ti[i];
	r->count++;
	return 0;
}

static void
test_journey_cuts(void **state)
{
	/*
	 * lookback 2 days; conversion 1 at T = 10d:
	 * touch @ T-2d (excluded: the window is open there), @ T-2d+1us (in), @ T (in: touches
	 * come before conversions at equal times). Conversion 2 at 11d: nothing after conversion 1
	 * (exclusive) -> unattributed. Then a null path: touches @12d and @15d; t_last = 15d,
	 * window (13d, 15d] -> only the 15d touch.
	 */
	struct attr_event ev[] = {
		TOUCH(8 * DAY, SEARCH, 0),   TOUCH(8 * DAY + 1, EMAIL, 0),
		TOUCH(10 * DAY, DISPLAY, 0), CONV(10 * DAY, 1, 0),
		CONV(11 * DAY, 1, 0),        TOUCH(12 * DAY, SOCIAL, 0),
		TOUCH(15 * DAY, DIRECT, 0),
	};
	struct rec r;

	(void)state;
	memset(&r, 0, sizeof(r));
	seqs(ev, 7);
	assert_int_equal(attr_journey_paths(ev, 7, 2 * 86400, record, &r), TP_OK);
	assert_int_equal(r.count, 3);
	assert_true(r.conv[0] && r.ci[0] == 3 && r.n[0] == 2);
	assert_int_equal(r.idx[0][0], 1);
	assert_int_equal(r.idx[0][1], 2);
	assert_true(r.conv[1] && r.ci[1] == 4 && r.n[1] == 0);
	assert_true(!r.conv[2] && r.n[2] == 1 && r.idx[2][0] == 6);
	/* unlimited lookback: all three touches, and both null touches */
	memset(&r, 0, sizeof(r));
	assert_int_equal(attr_journey_paths(ev, 7, 0, record, &r), TP_OK);
	assert_int_equal(r.n[0], 3);
	assert_int_equal(r.n[2], 2);
	/* a customer whose last event is a conversion has no null path */
	memset(&r, 0, sizeof(r));
	assert_int_equal(attr_journey_paths(ev, 5, 0, record, &r), TP_OK);
	assert_int_equal(r.count, 2);
	/* out of SPEC order: a touch after a conversion at the same time */
	{
		struct attr_event bad[] = { CONV(5, 1, 0), TOUCH(5, SEARCH, 0) };

		assert_int_equal(attr_journey_paths(bad, 2, 0, record, &r), TP_INVALID_ARGUMENT);
	}
}

static void
test_unattributed_and_totals(void **state)
{
	struct attr_event ev[] = { TOUCH(1 * DAY, SEARCH, 0), CONV(2 * DAY, 10, 0),
		                   CONV(3 * DAY, 5, 0) };
	struct cust c[] = { { ev, 3 } };
	struct req q;
	AResp *r;

	(void)state;
	req_init(&q);
	req_model(&q, "linear", NULL, NULL);
	r = run(&q, c, 1, NULL);
	near(r->totals->conversions, 2);
	near(r->totals->value, 15);
	assert_int_equal(r->totals->converting_paths, 1);
	assert_int_equal(r->totals->null_paths, 0);
	near(r->totals->unattributed_conversions, 1);
	near(r->totals->unattributed_value, 5);
	/* credits sum to the attributed conversions (1), not to all conversions (2) */
	near(conv_of(r, "linear", "search"), 1);
	near(find_model(r->models, 1, "linear")->channels[0]->share, 1);
	free_resp(r);
}

static void
test_repeats(void **state)
{
	struct attr_event ev[] = { TOUCH(1, EMAIL, 0), TOUCH(2, EMAIL, 0), TOUCH(3, SEARCH, 0),
		                   CONV(4, 30, 0) };
	struct cust c[] = { { ev, 4 } };
	struct attr_engine *e;
	Touchpoint__V1__PathsResponse *p;
	struct req q;
	char err[128];
	AResp *r;

	(void)state;
	req_init(&q);
	req_model(&q, "linear", NULL, NULL);
	req_model(&q, "shapley", NULL, NULL);
	/* keep: email 2/3; shapley still splits over distinct channels: 1/2 */
	r = run(&q, c, 1, NULL);
	near(conv_of(r, "linear", "email"), 2.0 / 3);
	near(value_of(r, "linear", "email"), 20);
	near(conv_of(r, "shapley", "email"), 0.5);
	free_resp(r);
	/* collapse: email, search -> 1/2 each */
	q.w.repeats = TOUCHPOINT__V1__REPEATS__REPEATS_COLLAPSE;
	r = run(&q, c, 1, NULL);
	near(conv_of(r, "linear", "email"), 0.5);
	assert_int_equal(r->repeats, TOUCHPOINT__V1__REPEATS__REPEATS_COLLAPSE);
	free_resp(r);
	assert_int_equal(attr_engine_new_paths(&e, &q.w, 0, names_fn, NULL, err, sizeof(err)),
	                 TP_OK);
	assert_int_equal(attr_engine_customer(e, ev, 4), TP_OK);
	assert_int_equal(attr_engine_paths(e, 0, &p), TP_OK);
	assert_int_equal(p->n_paths, 1);
	assert_int_equal(p->paths[0]->n_channels, 2);
	assert_string_equal(p->paths[0]->channels[0], "email");
	assert_int_equal(attr_engine_result(e, &r), TP_FAILED_PRECONDITION);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	attr_engine_free(e);
}

static void
test_campaign_level(void **state)
{
	/* email/spring, email without campaign, then email/spring again: collapse at unit level */
	struct attr_event ev[] = { TOUCH(1, EMAIL, SPRING), TOUCH(2, EMAIL, 0), TOUCH(3, EMAIL, 0),
		                   CONV(4, 9, 0) };
	struct cust c[] = { { ev, 4 } };
	struct req q;
	AResp *r;

	(void)state;
	req_init(&q);
	req_model(&q, "linear", NULL, NULL);
	req_model(&q, "last_non_direct", "direct_channels", "email");
	q.w.level = TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN;
	q.w.repeats = TOUCHPOINT__V1__REPEATS__REPEATS_COLLAPSE;
	r = run(&q, c, 1, NULL);
	near(conv_of(r, "linear", "email/spring"), 0.5);
	near(conv_of(r, "linear", "email/(none)"), 0.5);
	/* every touch "direct" (the channel part is email): the last touch after all */
	near(conv_of(r, "last_non_direct", "email/(none)"), 1);
	assert_int_equal(r->level, TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN);
	free_resp(r);
}

/*
 * SPEC §4: the campaign-level unit is the text channel/campaign. Pairs that print alike are
 * one unit — in one engine and across merged ones — as when the exported table is read back.
 */
static void
test_campaign_labels(void **state)
{
	static const char *const nm[NNAMES + 32] = { NULL,  "a/b",   "c",      "a",
		                                     "b/c", "email", "(none)", "purchase" };
	struct attr_event e1[] = { TOUCH(1, 1, 2), CONV(2, 10, 7) },
	                  e2[] = { TOUCH(1, 3, 4), CONV(2, 20, 7) },
	                  e3[] = { TOUCH(1, 5, 0), CONV(2, 30, 7) },
	                  e4[] = { TOUCH(1, 5, 6), CONV(2, 40, 7) };
	struct cust c[] = { { e1, 2 }, { e2, 2 }, { e3, 2 }, { e4, 2 } };
	struct attr_engine *a, *b;
	struct req q;
	AResp *r;
	char err[256];
	size_t i;

	(void)state;
	req_init(&q);
	req_model(&q, "linear", NULL, NULL);
	q.w.level = TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN;
	r = run(&q, c, 4, nm);
	assert_int_equal(r->models[0]->n_channels, 2);
	near(conv_of(r, "linear", "a/b/c"), 2);
	near(conv_of(r, "linear", "email/(none)"), 2);
	free_resp(r);

	/* Customers 1 and 3 in one engine, 2 and 4 in another, merged. */
	assert_int_equal(attr_engine_new(&a, &q.r, 0, names_fn, (void *)nm, err, sizeof(err)),
	                 TP_OK);
	assert_int_equal(attr_engine_new(&b, &q.r, 0, names_fn, (void *)nm, err, sizeof(err)),
	                 TP_OK);
	for (i = 0; i < 4; i++) {
		seqs(c[i].ev, c[i].n);
		assert_int_equal(attr_engine_customer(i % 2 ? b : a, c[i].ev, c[i].n), TP_OK);
	}
	assert_int_equal(attr_engine_merge(a, b), TP_OK);
	assert_int_equal(attr_engine_result(a, &r), TP_OK);
	assert_int_equal(r->models[0]->n_channels, 2);
	near(conv_of(r, "linear", "a/b/c"), 2);
	near(conv_of(r, "linear", "email/(none)"), 2);
	free_resp(r);
	attr_engine_free(a);
	attr_engine_free(b);
}

static void
test_conversion_filter(void **state)
{
	/* a signup between the touches: ignored entirely with --conversion purchase */
	struct attr_event ev[] = { TOUCH(1, SEARCH, 0), CONV(2, 0, SIGNUP), TOUCH(3, EMAIL, 0),
		                   CONV(4, 10, PURCHASE) };
	struct cust c[] = { { ev, 4 } };
	struct req q;
	AResp *r;

	(void)state;
	req_init(&q);
	req_model(&q, "linear", NULL, NULL);
	r = run(&q, c, 1, NULL); /* unfiltered: signup <- search, purchase <- email */
	near(conv_of(r, "linear", "search"), 1);
	near(conv_of(r, "linear", "email"), 1);
	free_resp(r);
	q.w.conversion = "purchase";
	r = run(&q, c, 1, NULL);
	near(r->totals->conversions, 1);
	near(conv_of(r, "linear", "search"), 0.5);
	near(conv_of(r, "linear", "email"), 0.5);
	assert_string_equal(r->conversion, "purchase");
	free_resp(r);
	/* name id 0 is the default name "conversion" */
	ev[3].name = 0;
	q.w.conversion = "conversion";
	r = run(&q, c, 1, NULL);
	near(r->totals->conversions, 1);
	near(conv_of(r, "linear", "search"), 0.5);
	free_resp(r);
}

static void
test_from_to(void **state)
{
	struct attr_event ev[] = { TOUCH(1 * DAY, SEARCH, 0), CONV(2 * DAY, 1, 0),
		                   TOUCH(3 * DAY, EMAIL, 0), CONV(4 * DAY, 1, 0),
		                   TOUCH(5 * DAY, DISPLAY, 0) };
	struct cust c[] = { { ev, 5 } };
	struct req q;
	AResp *r;

	(void)state;
	req_init(&q);
	req_model(&q, "last_touch", NULL, NULL);
	/* [2d, 4d): the first conversion only; 4d is excluded, the null path (5d) too */
	q.w.from_case = TOUCHPOINT__V1__WINDOW__FROM_FROM_US;
	q.w.from_us = 2 * DAY;
	q.w.to_case = TOUCHPOINT__V1__WINDOW__TO_TO_US;
	q.w.to_us = 4 * DAY;
	r = run(&q, c, 1, NULL);
	near(r->totals->conversions, 1);
	assert_int_equal(r->totals->null_paths, 0);
	near(conv_of(r, "last_touch", "search"), 1);
	assert_null(find_credit(find_model(r->models, 1, "last_touch"), "email"));
	free_resp(r);
	q.w.from_us = 4 * DAY;
	q.w.to_us = 6 * DAY;
	r = run(&q, c, 1, NULL);
	near(conv_of(r, "last_touch", "email"), 1);
	assert_int_equal(r->totals->null_paths, 1);
	free_resp(r);
}

static void
test_segments(void **state)
{
	struct attr_trait pro = { "plan", "pro" }, free_ = { "plan", "free" },
	                  other = { "country", "fr" };
	struct attr_event a[] = { TOUCH(1, SEARCH, 0), { 0 }, { 0 }, CONV(5, 10, 0) };
	struct attr_event b[] = { TOUCH(1, EMAIL, 0), CONV(2, 20, 0) };
	struct attr_event d[] = { { 0 }, TOUCH(1, DISPLAY, 0), CONV(2, 1, 0) };
	struct cust c[] = { { a, 4 }, { b, 2 }, { d, 3 } };
	struct req q;
	AResp *r;

	(void)state;
	/* a: plan pro at 2, then free at 3 -> "free"; b: none -> "(none)"; d: country only */
	a[1].kind = ATTR_IDENTIFY, a[1].ts_us = 2, a[1].traits = &pro, a[1].ntraits = 1;
	a[2].kind = ATTR_IDENTIFY, a[2].ts_us = 3, a[2].traits = &free_, a[2].ntraits = 1;
	d[0].kind = ATTR_IDENTIFY, d[0].ts_us = 0, d[0].traits = &other, d[0].ntraits = 1;
	req_init(&q);
	req_model(&q, "last_touch", NULL, NULL);
	q.r.by_trait = "plan";
	r = run(&q, c, 3, NULL);
	assert_string_equal(r->by_trait, "plan");
	assert_int_equal(r->n_segments, 2);
	assert_string_equal(r->segments[0]->segment, "(none)");
	assert_string_equal(r->segments[1]->segment, "free");
	near(r->segments[0]->totals->conversions, 2);
	near(r->segments[1]->totals->value, 10);
	{
		const Touchpoint__V1__ModelResult *m = r->segments[0]->models[0];

		near(find_credit(m, "email")->conversions, 1);
		near(find_credit(m, "display")->conversions, 1);
		assert_null(find_credit(m, "search"));
		near(find_credit(m, "email")->share, 0.5);
	}
	/* the top level covers everyone */
	near(r->totals->conversions, 3);
	near(conv_of(r, "last_touch", "search"), 1);
	free_resp(r);

	/* 1 001 distinct values: refused as the request's shape, naming by_trait */
	{
		struct attr_engine *e = NULL;
		struct attr_event ev[2] = { { 0 }, TOUCH(2, SEARCH, 0) };
		struct attr_trait t;
		char val[16], err[256];
		int rv = TP_OK;

		assert_int_equal(attr_engine_new(&e, &q.r, 0, NULL, NULL, err, sizeof(err)), TP_OK);
		ev[0].kind = ATTR_IDENTIFY, ev[0].ts_us = 1, ev[0].traits = &t, ev[0].ntraits = 1;
		t.key = "plan";
		t.value = val;
		for (int i = 0; i <= 1000 && rv == TP_OK; i++) {
			snprintf(val, sizeof(val), "v%d", i);
			rv = attr_engine_customer(e, ev, 2);
		}
		assert_int_equal(rv, TP_INVALID_ARGUMENT);
		assert_non_null(strstr(attr_engine_error(e), "by_trait"));
		attr_engine_free(e);
	}
}

static void
test_empty(void **state)
{
	struct req q;
	AResp *r;
	char *buf;

	(void)state;
	req_init(&q);
	r = run(&q, NULL, 0, NULL); /* every model */
	assert_true(r->n_models >= 9);
	assert_int_equal(r->totals->converting_paths, 0);
	assert_int_equal(r->models[0]->n_channels, 0);
	assert_string_equal(r->models[0]->model, "first_touch");
	buf = render(r);
	assert_non_null(strstr(buf, "\"from\": null"));
	assert_non_null(strstr(buf, "\"lookback_s\": 2592000"));
	free(buf);
	free_resp(r);
}

static int
always(void *arg)
{
	(void)arg;
	return 1;
}

/* The long models stop when the caller says so (the daemon: deadline, shutdown). */
static void
test_cancel(void **state)
{
	struct attr_event a[] = { TOUCH(1, SEARCH, 0), TOUCH(2, EMAIL, 0), CONV(3, 10, 0) };
	static const char *const models[] = { "markov", "shapley_rate" };
	struct attr_engine *e;
	struct req q;
	AResp *r;
	char err[256];

	(void)state;
	for (size_t m = 0; m < 2; m++) {
		req_init(&q);
		req_model(&q, models[m], NULL, NULL);
		assert_int_equal(attr_engine_new(&e, &q.r, 0, NULL, NULL, err, sizeof(err)), TP_OK);
		seqs(a, 3);
		assert_int_equal(attr_engine_customer(e, a, 3), TP_OK);
		attr_engine_cancel_with(e, always, NULL);
		assert_int_equal(attr_engine_result(e, &r), TP_CANCELLED);
		assert_non_null(strstr(attr_engine_error(e), "cancelled"));
		attr_engine_cancel_with(e, NULL, NULL);
		assert_int_equal(attr_engine_result(e, &r), TP_OK);
		free_resp(r);
		attr_engine_free(e);
	}
}

static void
test_validation(void **state)
{
	struct attr_engine *e = NULL;
	struct req q;
	char err[256];

	(void)state;
	req_init(&q);
	req_model(&q, "linear", NULL, NULL);
	req_model(&q, "nope", NULL, NULL);
	assert_int_equal(attr_engine_new(&e, &q.r, 0, NULL, NULL, err, sizeof(err)),
	                 TP_INVALID_ARGUMENT);
	assert_string_equal(err, "models[1]: unknown model \"nope\"");
	assert_null(e);
	{
		/* A list is bounded (each model is a pass at least): 65 specs are refused. */
		Touchpoint__V1__ModelSpec one = TOUCHPOINT__V1__MODEL_SPEC__INIT, *many[65];

		one.model = (char *)"linear";
		for (size_t i = 0; i < 65; i++)
			many[i] = &one;
		req_init(&q);
		q.r.n_models = 65;
		q.r.models = many;
		assert_int_equal(attr_engine_new(&e, &q.r, 0, NULL, NULL, err, sizeof(err)),
		                 TP_INVALID_ARGUMENT);
		assert_non_null(strstr(err, "at most 64"));
		assert_null(e);
		q.r.n_models = 64;
		assert_int_equal(attr_engine_new(&e, &q.r, 0, NULL, NULL, err, sizeof(err)), TP_OK);
		attr_engine_free(e);
		e = NULL;
	}
	req_init(&q);
	req_model(&q, "linear", NULL, NULL);
	req_model(&q, "markov", "order", "5");
	assert_int_equal(attr_engine_new(&e, &q.r, 0, NULL, NULL, err, sizeof(err)),
	                 TP_INVALID_ARGUMENT);
	assert_string_equal(err, "models[1].params.order: must be 1..4");
	req_init(&q);
	req_model(&q, "markov", "half_life_s", "5");
	assert_int_equal(attr_engine_new(&e, &q.r, 0, NULL, NULL, err, sizeof(err)),
	                 TP_INVALID_ARGUMENT);
	assert_string_equal(err, "models[0].params.half_life_s: unknown parameter for markov");
	req_init(&q);
	req_model(&q, "position_based", "first_weight", "0.7");
	req_param(&q, "last_weight", "0.5");
	assert_int_equal(attr_engine_new(&e, &q.r, 0, NULL, NULL, err, sizeof(err)),
	                 TP_INVALID_ARGUMENT);
	assert_non_null(strstr(err, "models[0].params"));
	req_init(&q);
	req_model(&q, "time_decay", "half_life_s", "abc");
	assert_int_equal(attr_engine_new(&e, &q.r, 0, NULL, NULL, err, sizeof(err)),
	                 TP_INVALID_ARGUMENT);
	req_init(&q);
	req_lookback(&q, -1);
	assert_int_equal(attr_engine_new(&e, &q.r, 0, NULL, NULL, err, sizeof(err)),
	                 TP_INVALID_ARGUMENT);
	req_init(&q);
	q.r.daily_model = "markov";
	assert_int_equal(attr_engine_new(&e, &q.r, 0, NULL, NULL, err, sizeof(err)),
	                 TP_INVALID_ARGUMENT);
	assert_null(e);
}

/* A deterministic pseudo-random journey set: K channels, N customers. */
static uint64_t rng = 88172645463325252ULL;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

#define NCUST 300

static struct cust *
random_set(void)
{
	struct cust *c = calloc(NCUST, sizeof(*c));
	size_t i, j;

	for (i = 0; i < NCUST; i++) {
		size_t n = 1 + rnd(8);
		int64_t t = DAY;

		c[i].ev = calloc(n + 2, sizeof(*c[i].ev));
		for (j = 0; j < n; j++) {
			t += (1 + rnd(3)) * HOUR;
			if (rnd(5) == 0 && j > 0)
				c[i].ev[c[i].n++] = CONV(t, 1 + rnd(100), 0);
			else
				c[i].ev[c[i].n++] = TOUCH(t, 1 + rnd(5), rnd(3) ? 0 : SPRING);
		}
		if (rnd(2))
			c[i].ev[c[i].n++] = CONV(t + HOUR, 1 + rnd(100), 0);
	}
	return c;
}

static void
free_set(struct cust *c)
{
	size_t i;

	for (i = 0; i < NCUST; i++)
		free(c[i].ev);
	free(c);
}

static void
test_invariants(void **state)
{
	/* channel ids 1..5 renamed by a permutation: credits follow the names */
	/* channel ids renamed by a permutation that keeps "direct" (last_non_direct's default) */
	static const char *const perm[NNAMES + 32] = { NULL,     "email",  "display",
		                                       "direct", "social", "search" };
	struct cust *c = random_set();
	struct req q;
	AResp *r, *p;
	size_t i, j;

	(void)state;
	req_init(&q);
	req_lookback(&q, 0);
	r = run(&q, c, NCUST, NULL);
	p = run(&q, c, NCUST, perm);
	assert_true(r->totals->converting_paths > 50 && r->totals->null_paths > 20);
	for (i = 0; i < r->n_models; i++) {
		const Touchpoint__V1__ModelResult *m = r->models[i], *pm = p->models[i];
		double sc = 0, sv = 0;

		assert_string_equal(m->model, pm->model);
		for (j = 0; j < m->n_channels; j++) {
			const char *name = m->channels[j]->channel;
			uint32_t id;

			sc += m->channels[j]->conversions;
			sv += m->channels[j]->value;
			assert_true(m->channels[j]->conversions >= -EPS);
			if (j > 0)
				assert_true(m->channels[j - 1]->conversions >=
				            m->channels[j]->conversions);
			for (id = 1; id <= 5 && strcmp(test_names[id], name) != 0; id++)
				;
			assert_true(id <= 5);
			near(find_credit(pm, perm[id])->conversions, m->channels[j]->conversions);
			near(find_credit(pm, perm[id])->value, m->channels[j]->value);
		}
		if (strcmp(m->model, "participation") == 0) {
			assert_true(sc >
			            r->totals->conversions - r->totals->unattributed_conversions);
			continue;
		}
		near(sc, r->totals->conversions - r->totals->unattributed_conversions);
		near(sv, r->totals->value - r->totals->unattributed_value);
	}
	free_resp(r);
	free_resp(p);
	free_set(c);
}

/*
 * A scope of over 4 096 distinct paths runs its models on two threads: each model's result
 * is exactly the one it gives alone (one model, one thread).
 */
#define NMANY 6000

static void
test_models_two_threads(void **state)
{
	static const uint32_t ch[6] = { SEARCH, EMAIL, DIRECT, DISPLAY, SOCIAL, NNAMES + 3 };
	struct cust *c = calloc(NMANY, sizeof(*c));
	struct req q, one;
	AResp *all, *r;
	size_t i, j, k;

	(void)state;
	assert_non_null(c);
	for (i = 0; i < NMANY; i++) {
		size_t x = i;
		int64_t t = DAY;

		assert_non_null(c[i].ev = calloc(6, sizeof(*c[i].ev)));
		for (j = 0; j < 5; j++, x /= 6) {
			t += (1 + (int64_t)j) * HOUR;
			c[i].ev[c[i].n++] = TOUCH(t, ch[x % 6], 0);
		}
		if (i % 3 != 0)
			c[i].ev[c[i].n++] = CONV(t + HOUR, 1 + (double)(i % 97), 0);
	}
	req_init(&q);
	req_lookback(&q, 0);
	all = run(&q, c, NMANY, NULL); /* every default model */
	assert_true(all->n_models >= 2);
	assert_true(all->totals->converting_paths + all->totals->null_paths >= 4096);
	for (k = 0; k < all->n_models; k++) {
		const Touchpoint__V1__ModelResult *m = all->models[k], *o;

		req_init(&one);
		req_lookback(&one, 0);
		req_model(&one, m->model, NULL, NULL);
		r = run(&one, c, NMANY, NULL);
		assert_int_equal(r->n_models, 1);
		o = r->models[0];
		assert_string_equal(o->model, m->model);
		assert_int_equal(o->n_channels, m->n_channels);
		for (j = 0; j < m->n_channels; j++) {
			assert_string_equal(o->channels[j]->channel, m->channels[j]->channel);
			assert_true(o->channels[j]->conversions == m->channels[j]->conversions);
			assert_true(o->channels[j]->value == m->channels[j]->value);
			assert_true(o->channels[j]->removal_effect ==
			            m->channels[j]->removal_effect);
		}
		free_resp(r);
	}
	free_resp(all);
	for (i = 0; i < NMANY; i++)
		free(c[i].ev);
	free(c);
}

static void
test_shapley_rate(void **state)
{
	/*
	 * Sets: {a}: 1 conv, 1 null (p = 1/2); {b}: 1 conv, 3 null (p = 1/4); {a,b}: 2 conv.
	 * p({a,b}) = (1 + 1 + 2) / (2 + 4 + 2) = 1/2.
	 * For {a,b}: phi_a = 1/2 (1/2 - 0) + 1/2 (1/2 - 1/4) = 3/8;
	 *            phi_b = 1/2 (1/4 - 0) + 1/2 (1/2 - 1/2) = 1/8 -> split 3/4, 1/4 of 2.
	 * a = 1 + 1.5 = 2.5, b = 1 + 0.5 = 1.5; values split the same way.
	 */
	const char *csv = "path,total_conversions,total_conversion_value,total_null\n"
	                  "a,1,10,1\n"
	                  "b,1,20,3\n"
	                  "a > b,1,40,0\n"
	                  "b > a > b,1,40,0\n";
	struct req q;
	char err[256];
	AResp *r;
	FILE *f = fmemopen((void *)csv, strlen(csv), "r");

	(void)state;
	req_init(&q);
	req_model(&q, "shapley_rate", NULL, NULL);
	req_model(&q, "time_decay", NULL, NULL); /* needs timestamps: skipped, not listed */
	assert_int_equal(attr_pathfile_attribute(f, &q.r, &r, err, sizeof(err)), TP_OK);
	fclose(f);
	assert_int_equal(r->n_models, 1);
	near(conv_of(r, "shapley_rate", "a"), 2.5);
	near(conv_of(r, "shapley_rate", "b"), 1.5);
	near(value_of(r, "shapley_rate", "a"), 10 + 60);
	near(value_of(r, "shapley_rate", "b"), 20 + 20);
	assert_false(r->models[0]->estimated);
	free_resp(r);
}

/* A path file's row with value but no conversions: its value is credited too. */
static void
test_shapley_rate_value_only(void **state)
{
	const char *csv = "path,total_conversions,total_conversion_value,total_null\n"
	                  "a,1,10,0\n"
	                  "a > b,0,6,1\n";
	struct req q;
	char err[256];
	AResp *r;
	FILE *f = fmemopen((void *)csv, strlen(csv), "r");

	(void)state;
	req_init(&q);
	req_model(&q, "shapley_rate", NULL, NULL);
	assert_int_equal(attr_pathfile_attribute(f, &q.r, &r, err, sizeof(err)), TP_OK);
	fclose(f);
	near(r->totals->value, 16);
	near(value_of(r, "shapley_rate", "a") + value_of(r, "shapley_rate", "b"), 16);
	near(conv_of(r, "shapley_rate", "a") + conv_of(r, "shapley_rate", "b"), 1);
	free_resp(r);
}

/*
 * shapley_rate builds its table of channel sets from bit masks when every unit is below 64:
 * the credits must be the general way's to the last bit (the same sums in the same order),
 * with bit 63 used, repeated units, sets seen again later, and sets beyond the exact bound.
 */
#define SRN 3000

static void
test_shapley_rate_masks(void **state)
{
	static struct attr_path p[SRN];
	static uint32_t u[SRN][20];
	static const char *nm[65];
	double c1[65], v1[65], c2[65], v2[65];
	struct attr_credit a = { c1, v1, NULL }, b = { c2, v2, NULL };
	struct attr_table t = { p, SRN, 64, nm, NULL, NULL };
	uint64_t x = 88172645463325252ULL;
	size_t i, j, e1, e2;
	char err[128];

	(void)state;
	for (i = 0; i < 65; i++)
		nm[i] = "u";
	for (i = 0; i < SRN; i++) {
		uint32_t len = 1, base;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		len += (uint32_t)(x % (i % 50 == 0 ? 20 : 6));
		base = (uint32_t)(x >> 20) % 60;
		for (j = 0; j < len; j++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			/* a few units per stretch, so that sets recur; unit 63 in some */
			u[i][j] =
			    i % 50 == 0 ? (uint32_t)(j * 3 + i) % 64 : base + (uint32_t)(x % 4);
			if (x % 11 == 0)
				u[i][j] = 63;
		}
		p[i] = (struct attr_path){ u[i], len, (double)(x % 3), (double)(x % 3) * 7.25,
			                   (double)(x >> 40 & 3) };
	}
	memset(c1, 0, sizeof(c1)), memset(v1, 0, sizeof(v1));
	memset(c2, 0, sizeof(c2)), memset(v2, 0, sizeof(v2));
	assert_int_equal(attr_shapley_rate(&t, &a, &e1, err, sizeof(err)), TP_OK);
	t.nunits = 65; /* the general way: units sorted and hashed per path */
	assert_int_equal(attr_shapley_rate(&t, &b, &e2, err, sizeof(err)), TP_OK);
	assert_true(e1 > 0); /* some sets were sampled */
	assert_int_equal(e1, e2);
	assert_memory_equal(c1, c2, sizeof(c1));
	assert_memory_equal(v1, v2, sizeof(v1));
	for (i = 0, j = 0; i < 64; i++)
		j += c1[i] > 0;
	assert_true(j > 40);
}

static void
test_shapley_rate_sampled(void **state)
{
	/* 18 distinct channels in one path: sampled, flagged, still summing to the total */
	char csv[4096];
	struct req q;
	char err[256];
	AResp *r;
	FILE *f;
	size_t i, n;
	double s = 0;

	(void)state;
	n = (size_t)snprintf(csv, sizeof(csv),
	                     "path,total_conversions,total_conversion_value,total_null\n");
	for (i = 0; i < 18; i++)
		n += (size_t)snprintf(csv + n, sizeof(csv) - n, "%sc%zu", i ? " > " : "", i);
	n += (size_t)snprintf(csv + n, sizeof(csv) - n, ",3,30,1\nc0,1,5,1\nc1 > c2,0,0,4\n");
	f = fmemopen(csv, n, "r");
	req_init(&q);
	req_model(&q, "shapley_rate", NULL, NULL);
	assert_int_equal(attr_pathfile_attribute(f, &q.r, &r, err, sizeof(err)), TP_OK);
	fclose(f);
	assert_true(r->models[0]->estimated);
	assert_non_null(strstr(r->models[0]->note, "sampled"));
	for (i = 0; i < r->models[0]->n_channels; i++)
		s += r->models[0]->channels[i]->conversions;
	near(s, 4);
	free_resp(r);
}

static void
test_pathfile_errors(void **state)
{
	const char *bad[] = {
		"path,conversions\n",
		"path,total_conversions,total_conversion_value,total_null\na,1,2\n",
		"path,total_conversions,total_conversion_value,total_null\na,1,0,0\nb,x,0,0\n",
		"path,total_conversions,total_conversion_value,total_null\na > ,1,0,0\n",
		"path,total_conversions,total_conversion_value,total_null\n\"a,1,0,0\n",
		/* over 2^53 the path counts wrapped (1e19 converting paths read as -2^63) */
		"path,total_conversions,total_conversion_value,total_null\na,1,0,0\nb,1e19,0,0\n",
		"path,total_conversions,total_conversion_value,total_null\na,0,0,1e16\n",
	};
	const char *where[] = { "line 1",
		                "line 2",
		                "line 3",
		                "line 2",
		                "line 2",
		                "line 3: total_conversions and total_null must be at most 2^53",
		                "line 2: total_conversions" };
	struct req q;
	char err[256];
	AResp *r;
	size_t i;

	(void)state;
	req_init(&q);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *f = fmemopen((void *)bad[i], strlen(bad[i]), "r");

		assert_int_equal(attr_pathfile_attribute(f, &q.r, &r, err, sizeof(err)),
		                 TP_INVALID_ARGUMENT);
		assert_non_null(strstr(err, where[i]));
		fclose(f);
	}
}

static void
test_pathfile_round_trip(void **state)
{
	/* events -> paths CSV -> path file attribution: the table models agree to 1e-9 */
	struct cust *c = random_set();
	Touchpoint__V1__PathsResponse *paths;
	struct attr_engine *e;
	struct req q;
	AResp *r, *p;
	char err[256], *buf = NULL;
	size_t len = 0, i, j;
	FILE *f;

	(void)state;
	req_init(&q);
	req_lookback(&q, 0);
	q.w.level = TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN; /* names with '/' survive too */
	r = run(&q, c, NCUST, NULL);
	assert_int_equal(attr_engine_new_paths(&e, &q.w, 0, names_fn, NULL, err, sizeof(err)),
	                 TP_OK);
	for (i = 0; i < NCUST; i++)
		assert_int_equal(attr_engine_customer(e, c[i].ev, c[i].n), TP_OK);
	assert_int_equal(attr_engine_paths(e, 0, &paths), TP_OK);
	assert_int_equal(paths->distinct_paths, paths->n_paths);
	assert_non_null((f = open_memstream(&buf, &len)));
	assert_int_equal(attr_render_paths(f, paths, ATTR_FORMAT_CSV), TP_OK);
	fclose(f);
	f = fmemopen(buf, len, "r");
	assert_int_equal(attr_pathfile_attribute(f, &q.r, &p, err, sizeof(err)), TP_OK);
	fclose(f);
	near(p->totals->conversions, r->totals->conversions - r->totals->unattributed_conversions);
	assert_int_equal(p->totals->null_paths, r->totals->null_paths);
	assert_int_equal(p->n_models, r->n_models - 1); /* no time_decay */
	for (i = 0; i < p->n_models; i++) {
		const Touchpoint__V1__ModelResult *pm = p->models[i];
		const Touchpoint__V1__ModelResult *m =
		    find_model(r->models, r->n_models, pm->model);

		assert_non_null(m);
		assert_int_equal(m->n_channels, pm->n_channels);
		for (j = 0; j < pm->n_channels; j++) {
			const Touchpoint__V1__ChannelCredit *x =
			    find_credit(m, pm->channels[j]->channel);

			assert_non_null(x);
			near(pm->channels[j]->conversions, x->conversions);
			near(pm->channels[j]->value, x->value);
			if (x->removal_effect_present_case)
				near(pm->channels[j]->removal_effect, x->removal_effect);
		}
	}
	free(buf);
	free_resp(r);
	free_resp(p);
	protobuf_c_message_free_unpacked(&paths->base, NULL);
	attr_engine_free(e);
	free_set(c);
}

static void
test_daily_and_spend(void **state)
{
	struct cust c[3];
	struct attr_engine *e;
	struct req q;
	char err[256];
	AResp *r;
	size_t i;

	(void)state;
	req_init(&q);
	req_model(&q, "linear", NULL, NULL);
	q.r.daily_model = "linear";
	basic(c);
	assert_int_equal(attr_engine_new(&e, &q.r, 0, names_fn, NULL, err, sizeof(err)), TP_OK);
	for (i = 0; i < 3; i++)
		assert_int_equal(attr_engine_customer(e, c[i].ev, c[i].n), TP_OK);
	assert_int_equal(attr_engine_spend(e, SEARCH, 0, 1, 10, "EUR"), TP_OK);
	assert_int_equal(attr_engine_spend(e, SEARCH, SPRING, 2, 5, "EUR"), TP_OK);
	assert_int_equal(attr_engine_spend(e, DISPLAY, 0, 2, 7, "EUR"), TP_OK);
	assert_int_equal(attr_engine_result(e, &r), TP_OK);
	/* B converts on day 2 (1970-01-03), A on day 3 (1970-01-04) */
	assert_int_equal(r->n_daily, 5);
	assert_string_equal(r->daily[0]->day, "1970-01-03");
	assert_string_equal(r->daily[0]->channel, "display");
	near(r->daily[0]->conversions, 0.5);
	assert_string_equal(r->daily[2]->day, "1970-01-04");
	assert_string_equal(r->daily_model, "linear");
	/* spend at channel level: search's campaigns add up */
	assert_int_equal(r->n_spend, 2);
	assert_string_equal(r->spend[1]->channel, "search");
	near(r->spend[1]->amount, 15);
	assert_string_equal(r->spend[1]->currency, "EUR");
	free_resp(r);
	attr_engine_free(e);
}

/* Two JSON texts equal but for numbers, which must agree to 1e-12 relative. */
static void
json_near(const char *a, const char *b)
{
	while (*a != '\0' && *b != '\0') {
		if ((*a >= '0' && *a <= '9') || *a == '-') {
			char *ea, *eb;
			double x = strtod(a, &ea), y = strtod(b, &eb);

			if (ea == a || eb == b || !(fabs(x - y) <= 1e-12 * fabs(y)))
				fail_msg("%.17g != %.17g at ...%.40s", x, y, a);
			a = ea;
			b = eb;
			continue;
		}
		if (*a != *b)
			fail_msg("differ at ...%.60s / ...%.60s", a, b);
		a++;
		b++;
	}
	assert_int_equal(*a, *b);
}

static char *
render_paths(struct attr_engine *e)
{
	Touchpoint__V1__PathsResponse *p;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	assert_int_equal(attr_engine_paths(e, 0, &p), TP_OK);
	assert_non_null((f = open_memstream(&buf, &len)));
	assert_int_equal(attr_render_paths(f, p, ATTR_FORMAT_CSV), TP_OK);
	fclose(f);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	return buf;
}

/* JSON keeps a text parameter that looks like a number a string; numbers stay numbers. */
static void
test_json_params(void **state)
{
	struct attr_event ev[] = { TOUCH(1, SEARCH, 0), CONV(2, 5, 0) };
	struct cust c[] = { { ev, 2 } };
	struct req q;
	AResp *r;
	char *js;

	(void)state;
	req_init(&q);
	req_model(&q, "last_non_direct", "direct_channels", "007");
	req_model(&q, "markov", "order", "2");
	r = run(&q, c, 1, NULL);
	js = render(r);
	assert_non_null(strstr(js, "\"direct_channels\": \"007\""));
	assert_non_null(strstr(js, "\"order\": 2"));
	free(js);
	free_resp(r);
}

/* A value summed past DBL_MAX: JSON null, and in CSV an empty field, not "inf". */
static void
test_render_overflow(void **state)
{
	struct attr_event e1[] = { TOUCH(1, SEARCH, 0), CONV(2, 1e308, 0) },
	                  e2[] = { TOUCH(1, SEARCH, 0), CONV(2, 1e308, 0) };
	struct cust c[] = { { e1, 2 }, { e2, 2 } };
	struct req q;
	AResp *r;
	char *buf, *js;

	(void)state;
	req_init(&q);
	req_model(&q, "linear", NULL, NULL);
	r = run(&q, c, 2, NULL);
	assert_true(isinf(r->totals->value));
	buf = render_as(r, ATTR_FORMAT_CSV);
	assert_null(strstr(buf, "inf"));
	assert_non_null(strstr(buf, ",linear,search,2,,"));
	js = render(r);
	assert_null(strstr(js, "inf"));
	free(js);
	free(buf);
	free_resp(r);
}

/*
 * The parts of a stream in their own engines, merged in order, give one engine's result:
 * every model, segments, daily credits, spend, the matrix; the path table line for line.
 */
static void
test_merge(void **state)
{
	static const size_t cut[] = { 0, 1, 37, 37, 150, 299, NCUST };
	static const struct attr_trait plans[3] = { { "plan", "pro" },
		                                    { "plan", "free" },
		                                    { "plan", "team" } };
	enum { NCUT = sizeof(cut) / sizeof(cut[0]) };
	struct attr_engine *one, *part[NCUT - 1], *paths1, *pp[NCUT - 1], *bad;
	struct cust *c = random_set();
	char err[256], *s1, *s2;
	struct req q;
	AResp *r1, *r2;
	size_t i, k, v;

	(void)state;
	for (i = 0; i < NCUST; i++)
		if (i % 4 != 3) { /* an identify first: segments by plan */
			memmove(c[i].ev + 1, c[i].ev, c[i].n * sizeof(*c[i].ev));
			memset(&c[i].ev[0], 0, sizeof(c[i].ev[0]));
			c[i].ev[0].kind = ATTR_IDENTIFY;
			c[i].ev[0].ts_us = DAY;
			c[i].ev[0].traits = &plans[i % 3];
			c[i].ev[0].ntraits = 1;
			c[i].n++;
		}
	for (i = 0; i < NCUST; i++)
		seqs(c[i].ev, c[i].n);
	for (v = 0; v < 2; v++) {
		req_init(&q);
		req_lookback(&q, 0);
		q.r.transition_matrix = 1;
		if (v == 0) {
			q.r.by_trait = "plan";
			q.r.daily_model = "linear";
		} else {
			q.w.level = TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN;
			q.w.repeats = TOUCHPOINT__V1__REPEATS__REPEATS_COLLAPSE;
			q.r.daily_model = "time_decay";
		}
		assert_int_equal(attr_engine_new(&one, &q.r, 0, names_fn, NULL, err, sizeof(err)),
		                 TP_OK);
		assert_int_equal(
		    attr_engine_new_paths(&paths1, &q.w, 0, names_fn, NULL, err, sizeof(err)),
		    TP_OK);
		for (i = 0; i < NCUST; i++) {
			assert_int_equal(attr_engine_customer(one, c[i].ev, c[i].n), TP_OK);
			assert_int_equal(attr_engine_customer(paths1, c[i].ev, c[i].n), TP_OK);
		}
		assert_int_equal(attr_engine_spend(one, SEARCH, 0, 1, 10, "EUR"), TP_OK);
		assert_int_equal(attr_engine_spend(one, SOCIAL, SPRING, 2, 5, "EUR"), TP_OK);
		for (k = 0; k + 1 < NCUT; k++) {
			assert_int_equal(
			    attr_engine_new(&part[k], &q.r, 0, names_fn, NULL, err, sizeof(err)),
			    TP_OK);
			assert_int_equal(attr_engine_new_paths(&pp[k], &q.w, 0, names_fn, NULL, err,
			                                       sizeof(err)),
			                 TP_OK);
			for (i = cut[k]; i < cut[k + 1]; i++) {
				assert_int_equal(attr_engine_customer(part[k], c[i].ev, c[i].n),
				                 TP_OK);
				assert_int_equal(attr_engine_customer(pp[k], c[i].ev, c[i].n),
				                 TP_OK);
			}
		}
		/* spend met by a later part: merged too */
		assert_int_equal(attr_engine_spend(part[4], SEARCH, 0, 1, 10, "EUR"), TP_OK);
		assert_int_equal(attr_engine_spend(part[4], SOCIAL, SPRING, 2, 5, "EUR"), TP_OK);
		for (k = 1; k + 1 < NCUT; k++) {
			assert_int_equal(attr_engine_merge(part[0], part[k]), TP_OK);
			assert_int_equal(attr_engine_merge(pp[0], pp[k]), TP_OK);
		}
		assert_int_equal(attr_engine_merge(part[0], pp[1]), TP_INVALID_ARGUMENT);
		assert_int_equal(attr_engine_result(one, &r1), TP_OK);
		assert_int_equal(attr_engine_result(part[0], &r2), TP_OK);
		assert_true(r1->n_daily > 0 && r1->n_spend == 2 && r1->n_models > 5);
		assert_int_equal(r1->n_segments, v == 0 ? 4 : 0);
		s1 = render(r1);
		s2 = render(r2);
		json_near(s2, s1);
		free(s1);
		free(s2);
		s1 = render_paths(paths1);
		s2 = render_paths(pp[0]);
		assert_string_equal(s2, s1);
		free(s1);
		free(s2);
		free_resp(r1);
		free_resp(r2);
		attr_engine_free(one);
		attr_engine_free(paths1);
		for (k = 0; k + 1 < NCUT; k++) {
			attr_engine_free(part[k]);
			attr_engine_free(pp[k]);
		}
	}
	/* engines of different requests do not merge */
	req_init(&q);
	assert_int_equal(attr_engine_new(&one, &q.r, 0, names_fn, NULL, err, sizeof(err)), TP_OK);
	req_model(&q, "linear", NULL, NULL);
	assert_int_equal(attr_engine_new(&bad, &q.r, 0, names_fn, NULL, err, sizeof(err)), TP_OK);
	assert_int_equal(attr_engine_merge(one, bad), TP_INVALID_ARGUMENT);
	attr_engine_free(bad);
	req_init(&q);
	assert_int_equal(attr_engine_new(&bad, &q.r, 3600, names_fn, NULL, err, sizeof(err)),
	                 TP_OK);
	assert_int_equal(attr_engine_merge(one, bad), TP_INVALID_ARGUMENT); /* another lookback */
	attr_engine_free(one);
	attr_engine_free(bad);
	free_set(c);
}

/*
 * Allocation failures on demand: test_engine is linked with --wrap=calloc,--wrap=malloc,
 * so the engine's calls come here; the n-th call from arming fails.
 */
void *__real_calloc(size_t n, size_t size);
void *__real_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_malloc(size_t size);
static int fail_calloc, fail_malloc;

void *
__wrap_calloc(size_t n, size_t size)
{
	if (fail_calloc > 0 && --fail_calloc == 0)
		return NULL;
	return __real_calloc(n, size);
}

void *
__wrap_malloc(size_t size)
{
	if (fail_malloc > 0 && --fail_malloc == 0)
		return NULL;
	return __real_malloc(size);
}

/*
 * Out of memory while rendering is TP_RESOURCE_EXHAUSTED (the CLI exits 71), not a table
 * that says "(out of memory)" and TP_OK, as the table and the CSV path column did.
 */
static void
test_render_oom(void **state)
{
	struct cust c[3];
	struct req q;
	AResp *r;
	char *buf = NULL, *ch[2] = { (char *)"search", (char *)"email" };
	size_t len = 0;
	FILE *f;
	Touchpoint__V1__PathRow row = TOUCHPOINT__V1__PATH_ROW__INIT, *rows[1] = { &row };
	Touchpoint__V1__PathsResponse pr = TOUCHPOINT__V1__PATHS_RESPONSE__INIT;

	(void)state;
	req_init(&q);
	req_model(&q, "linear", NULL, NULL);
	r = run(&q, c, basic(c), NULL);
	f = open_memstream(&buf, &len);
	fail_calloc = 1;
	assert_int_equal(attr_render_attribute(f, r, ATTR_FORMAT_TABLE), TP_RESOURCE_EXHAUSTED);
	fail_calloc = 0;
	assert_int_equal(attr_render_attribute(f, r, ATTR_FORMAT_TABLE), TP_OK);
	fclose(f);
	assert_null(strstr(buf, "out of memory"));
	free(buf);
	free_resp(r);

	row.channels = ch;
	row.n_channels = 2;
	row.total_conversions = 1;
	pr.paths = rows;
	pr.n_paths = 1;
	buf = NULL;
	f = open_memstream(&buf, &len);
	fail_malloc = 1;
	assert_int_equal(attr_render_paths(f, &pr, ATTR_FORMAT_CSV), TP_RESOURCE_EXHAUSTED);
	fail_malloc = 0;
	assert_int_equal(attr_render_path_rows(f, &pr), TP_OK);
	fclose(f);
	assert_non_null(strstr(buf, "search > email,1,0,0\r\n"));
	assert_null(strstr(buf, "out of memory"));
	free(buf);
}

static void
test_render_csv_table(void **state)
{
	struct cust c[3];
	struct req q;
	AResp *r;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	req_init(&q);
	req_model(&q, "linear", NULL, NULL);
	req_model(&q, "first_touch", NULL, NULL);
	r = run(&q, c, basic(c), NULL);
	f = open_memstream(&buf, &len);
	assert_int_equal(attr_render_attribute(f, r, ATTR_FORMAT_CSV), TP_OK);
	fclose(f);
	{
		const char *hdr = "segment,model,channel,conversions,value,share,removal_effect\r\n"
		                  ",linear,search,";
		double c, v, sh;
		char rest[8];

		assert_memory_equal(buf, hdr, strlen(hdr));
		/* numbers print in the shortest form that reads back exactly */
		assert_int_equal(sscanf(buf + strlen(hdr), "%lf,%lf,%lf%3c", &c, &v, &sh, rest), 4);
		near(c, 5.0 / 6);
		near(v, 175.0 / 3);
		near(sh, 5.0 / 12);
		assert_memory_equal(rest, ",\r\n", 3);
		assert_non_null(strstr(buf, "\r\n,first_touch,display,1,50,0.5,\r\n"));
	}
	free(buf);
	buf = NULL;
	f = open_memstream(&buf, &len);
	assert_int_equal(attr_render_attribute(f, r, ATTR_FORMAT_TABLE), TP_OK);
	fclose(f);
	assert_non_null(strstr(buf, "channel      linear  first_touch\n"));
	assert_non_null(strstr(buf, "search         0.83         1.00\n"));
	free(buf);
	free_resp(r);
}

/*
 * Path tables keep their large arrays when freed, and the next tables reuse them
 * (pathtable.c): a table built in reused memory holds its own paths and counts only.
 */
static void
ptab_key(uint32_t *u, size_t i, size_t round)
{
	u[0] = (uint32_t)(i % 1000 + round);
	u[1] = (uint32_t)(i / 1000);
	u[2] = (uint32_t)round;
}

static void
test_ptab_keep(void **state)
{
	struct attr_ptab t;
	uint32_t u[3];
	size_t round, i;
	long k;
	void *b;

	(void)state;
	for (round = 0; round < 3; round++) {
		memset(&t, 0, sizeof(t));
		/* 60 000 entries: 2.4 MB of them, over the 1 MiB from which arrays are kept */
		for (i = 0; i < 60000; i++) {
			ptab_key(u, i, round);
			assert_int_equal(
			    attr_ptab_add(&t, u, 2 + (uint32_t)(i & 1), 1, (double)i, 0), TP_OK);
		}
		assert_int_equal(t.n, 60000);
		for (i = 0; i < 60000; i += 997) {
			ptab_key(u, i, round);
			k = attr_ptab_find(&t, u, 2 + (uint32_t)(i & 1));
			assert_true(k >= 0);
			assert_true(t.e[k].value == (double)i && t.e[k].conversions == 1);
		}
		ptab_key(u, 1, round + 7); /* a path of no round */
		assert_int_equal(attr_ptab_find(&t, u, 3), -1);
		attr_ptab_free(&t);
		if (round == 1)
			attr_ptab_trim();
	}
	b = attr_ptab_buf_get((size_t)4 << 20);
	assert_non_null(b);
	memset(b, 1, (size_t)4 << 20);
	attr_ptab_buf_put(b, (size_t)4 << 20);
	attr_ptab_trim();
}

/*
 * Paths added through the queue make the table direct adds make: the same entries in the
 * same order with the same sums, with repeats inside and beyond the queue's depth and
 * paths too long for it (added at once, after what was queued) in between.
 */
static void
test_ptab_queue(void **state)
{
	struct attr_ptab a, b;
	struct attr_ptab_queue q;
	uint32_t u[ATTR_PTQ_UNITS + 8];
	uint64_t x = 88172645463325252ULL;
	size_t i, j;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&q, 0, sizeof(q));
	for (i = 0; i < 20000; i++) {
		uint32_t len;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* mostly short and often repeated; one in 50 longer than a queue slot holds */
		len = x % 50 == 0 ? ATTR_PTQ_UNITS + 1 + (uint32_t)(x >> 8) % 7
		                  : 1 + (uint32_t)(x >> 16) % 3;
		for (j = 0; j < len; j++)
			u[j] = (uint32_t)((x >> (20 + j % 30)) % (i % 3 == 0 ? 4 : 40));
		assert_int_equal(attr_ptab_add(&a, u, len, (double)(i & 1), (double)i, 1), TP_OK);
		assert_int_equal(attr_ptab_queue_add(&b, &q, u, len, (double)(i & 1), (double)i, 1),
		                 TP_OK);
		/* nothing reaches the table until the queue is full */
		if (i < ATTR_PTQ_DEPTH && len <= ATTR_PTQ_UNITS)
			assert_int_equal(b.n, 0);
	}
	assert_int_equal(attr_ptab_queue_flush(&b, &q), TP_OK);
	assert_int_equal(q.n, 0);
	/* 678 distinct: many repeats, and the slots were rebuilt (from 256) along the way */
	assert_true(a.n > 300 && a.n < 2000);
	assert_int_equal(a.n, b.n);
	for (i = 0; i < a.n; i++) {
		assert_int_equal(a.e[i].len, b.e[i].len);
		assert_int_equal(a.e[i].hash, b.e[i].hash);
		assert_memory_equal(attr_ptab_units(&a, i), attr_ptab_units(&b, i),
		                    a.e[i].len * sizeof(uint32_t));
		assert_true(a.e[i].conversions == b.e[i].conversions &&
		            a.e[i].value == b.e[i].value && a.e[i].nulls == b.e[i].nulls);
	}
	attr_ptab_free(&a);
	attr_ptab_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_heuristics),
		cmocka_unit_test(test_ptab_queue),
		cmocka_unit_test(test_journey_cuts),
		cmocka_unit_test(test_unattributed_and_totals),
		cmocka_unit_test(test_repeats),
		cmocka_unit_test(test_campaign_level),
		cmocka_unit_test(test_campaign_labels),
		cmocka_unit_test(test_json_params),
		cmocka_unit_test(test_render_overflow),
		cmocka_unit_test(test_conversion_filter),
		cmocka_unit_test(test_from_to),
		cmocka_unit_test(test_segments),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_invariants),
		cmocka_unit_test(test_shapley_rate),
		cmocka_unit_test(test_shapley_rate_value_only),
		cmocka_unit_test(test_shapley_rate_sampled),
		cmocka_unit_test(test_shapley_rate_masks),
		cmocka_unit_test(test_pathfile_errors),
		cmocka_unit_test(test_pathfile_round_trip),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_models_two_threads),
		cmocka_unit_test(test_daily_and_spend),
		cmocka_unit_test(test_render_csv_table),
		cmocka_unit_test(test_render_oom),
		cmocka_unit_test(test_ptab_keep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
