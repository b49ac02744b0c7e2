/*
 * ops_metrics_unit: daemon/metrics.c on its own: exact counts under concurrent recording,
 * histogram invariants of the exposition, the fixed method table, and the HTTP endpoint.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"
#include "opsutil.h"
#include "touchpoint/touchpoint.h"

#define NTHREADS 4
#define NPER     50000

static char *
render(void)
{
	char *buf = NULL;
	size_t len = 0;

	assert_int_equal(metrics_render(&buf, &len), TP_OK);
	assert_non_null(buf);
	assert_int_equal(strlen(buf), len);
	return buf;
}

static void *
hammer(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < NPER; i++) {
		metrics_request("/touchpoint.v1.Journey/GetJourney", i % 2 == 0 ? 0 : 5, 0.0002);
		metrics_ingest(3, 1, 0);
		metrics_commit(2, 3, 0.0004);
	}
	return NULL;
}

/* Concurrent recording loses nothing (atomics, no locks). Runs first: counts start at 0. */
static void
test_concurrent_exact(void **state)
{
	pthread_t th[NTHREADS];
	char *t;
	int i;

	(void)state;
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, NULL), 0);
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	t = render();
	assert_true(ops_metric(t, "touchpointd_requests_total{method=\"Journey/GetJourney\","
	                          "code=\"0\"}") == NTHREADS * NPER / 2);
	assert_true(ops_metric(t, "touchpointd_requests_total{method=\"Journey/GetJourney\","
	                          "code=\"5\"}") == NTHREADS * NPER / 2);
	assert_true(ops_metric(t, "touchpointd_events_ingested_total") == 3.0 * NTHREADS * NPER);
	assert_true(ops_metric(t, "touchpointd_duplicates_total") == 1.0 * NTHREADS * NPER);
	assert_true(ops_metric(t, "touchpointd_events_rejected_total") == 0);
	assert_true(ops_metric(t, "touchpointd_commit_events_count") == NTHREADS * NPER);
	assert_true(ops_metric(t, "touchpointd_commit_events_sum") == 3.0 * NTHREADS * NPER);
	assert_true(ops_metric(t, "touchpointd_commit_batches_sum") == 2.0 * NTHREADS * NPER);
	/* 0.0002 s lies in (0.0001, 0.00025]. */
	assert_true(ops_metric(t, "touchpointd_request_duration_seconds_bucket{method=\"Journey/"
	                          "GetJourney\",le=\"0.0001\"}") == 0);
	assert_true(ops_metric(t, "touchpointd_request_duration_seconds_bucket{method=\"Journey/"
	                          "GetJourney\",le=\"0.00025\"}") == NTHREADS * NPER);
	free(t);
}

/* Unknown methods share one label; out-of-range codes count as UNKNOWN (2). */
static void
test_method_table(void **state)
{
	char *t;
	double before;

	(void)state;
	t = render();
	before = ops_metric(t, "touchpointd_requests_total{method=\"unknown\",code=\"0\"}");
	assert_true(before == 0);
	/* No series for a code that never happened. */
	assert_true(ops_metric(t, "touchpointd_requests_total{method=\"unknown\",code=\"12\"}") ==
	            -1);
	free(t);
	metrics_request("/touchpoint.v1.Nope/Nothing", 12, 0.001);
	metrics_request("/x\"}\n evil 1", 12, 0.001);
	metrics_request(NULL, 99, 0.001);
	metrics_request("/touchpoint.v1.Ingest/Send", -4, -1.0);
	metrics_request("/touchpoint.v1.Ingest/Send", 0, 1e300);
	t = render();
	assert_true(ops_metric(t, "touchpointd_requests_total{method=\"unknown\",code=\"12\"}") ==
	            2);
	assert_true(ops_metric(t, "touchpointd_requests_total{method=\"unknown\",code=\"2\"}") ==
	            1);
	assert_true(
	    ops_metric(t, "touchpointd_requests_total{method=\"Ingest/Send\",code=\"2\"}") == 1);
	assert_null(strstr(t, "evil"));
	assert_null(strstr(t, "Nope"));
	/* A negative duration lands in the first bucket, a huge one in +Inf only. */
	assert_true(ops_metric(t, "touchpointd_request_duration_seconds_bucket{method=\"Ingest/"
	                          "Send\",le=\"0.0001\"}") == 1);
	assert_true(ops_metric(t, "touchpointd_request_duration_seconds_bucket{method=\"Ingest/"
	                          "Send\",le=\"60\"}") == 1);
	assert_true(ops_metric(t, "touchpointd_request_duration_seconds_bucket{method=\"Ingest/"
	                          "Send\",le=\"+Inf\"}") == 2);
	assert_true(ops_metric(t, "touchpointd_build_info{version=\"" TP_VERSION "\"}") == 1);
	free(t);
}

/* Every histogram: buckets never decrease, +Inf equals _count; every family is typed once. */
static void
test_exposition_shape(void **state)
{
	char *t, *line, *save = NULL;
	char last_name[200] = "";
	double last = -1;
	int nhelp = 0, ntype = 0;

	(void)state;
	metrics_queue_depth(17);
	t = render();
	assert_true(ops_metric(t, "touchpointd_writer_queue_depth") == 17);
	/* No store was given: no store gauges. */
	assert_null(strstr(t, "touchpointd_store_bytes"));
	for (line = strtok_r(t, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char name[200];
		const char *brace;
		double v;

		if (strncmp(line, "# HELP ", 7) == 0) {
			nhelp++;
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			ntype++;
			continue;
		}
		assert_true(strncmp(line, "touchpointd_", 12) == 0);
		v = strtod(strrchr(line, ' ') + 1, NULL);
		brace = strstr(line, "_bucket{");
		if (brace == NULL) {
			last = -1;
			continue;
		}
		/* Series identity: everything before le=. */
		snprintf(name, sizeof(name), "%.*s", (int)(strstr(line, "le=") - line), line);
		if (strcmp(name, last_name) == 0)
			assert_true(v >= last);
		snprintf(last_name, sizeof(last_name), "%s", name);
		last = v;
	}
	assert_int_equal(nhelp, ntype);
	assert_true(ntype >= 11);
	free(t);
}

static void
test_http(void **state)
{
	char err[256], url[128], *body;
	int port = ops_free_port(), code;

	(void)state;
	assert_int_equal(metrics_start("ftp://127.0.0.1:1/metrics", NULL, err, sizeof(err)),
	                 TP_INVALID_ARGUMENT);
	assert_non_null(strstr(err, "http://"));
	assert_int_equal(metrics_start("", NULL, err, sizeof(err)), TP_OK);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	assert_int_equal(metrics_start(url, NULL, err, sizeof(err)), TP_OK);
	assert_int_equal(metrics_start(url, NULL, err, sizeof(err)), TP_FAILED_PRECONDITION);
	body = ops_http_get(port, "/metrics", &code);
	assert_non_null(body);
	assert_int_equal(code, 200);
	assert_true(ops_metric(body, "touchpointd_writer_queue_depth") == 17);
	free(body);
	body = ops_http_get(port, "/other", &code);
	assert_int_equal(code, 404);
	free(body);
	metrics_stop();
	body = ops_http_get(port, "/metrics", &code);
	assert_null(body);
	metrics_stop(); /* twice is harmless */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_exact),
		cmocka_unit_test(test_method_table),
		cmocka_unit_test(test_exposition_shape),
		cmocka_unit_test(test_http),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
