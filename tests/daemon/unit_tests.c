/*
 * unit_tests: the configuration parser (daemon/config.c) and the SPEC §2 rules
 * (proto/validate.c), without a daemon.
 */
#define _XOPEN_SOURCE 700

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "touchpoint/touchpoint.h"
#include "validate.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static char conf_path[] = "/tmp/tpd-unit-XXXXXX";

static int
load(struct config *c, const char *text, char *err, size_t errlen)
{
	FILE *f = fopen(conf_path, "w");

	CHECK(f != NULL);
	fputs(text, f);
	CHECK(fclose(f) == 0);
	err[0] = '\0';
	return config_load(c, conf_path, err, errlen);
}

static void
test_config(void)
{
	static struct config c;
	char err[512], want[600];
	int fd = mkstemp(conf_path);

	CHECK(fd >= 0);
	close(fd);
	unsetenv("STATE_DIRECTORY");
	CHECK(config_load(&c, NULL, err, sizeof(err)) == TP_OK);
	CHECK(strcmp(c.state_dir, ".") == 0);
	CHECK(c.nlisten == 0 && c.max_message_bytes == 16u << 20 && c.contexts == 64);
	CHECK(c.queue_depth == 256 && c.query_threads == 2 && c.max_batch_events == 100000);
	CHECK(c.scan_threads == 0);
	CHECK(c.ipc_permissions == 0660 && c.sync == CONFIG_SYNC_FULL);
	CHECK(c.default_lookback_s == 30 * 86400 && c.log_level == LOG_LEVEL_INFO);
	CHECK(strcmp(c.metrics_listen, "http://127.0.0.1:9464/metrics") == 0);

	setenv("STATE_DIRECTORY", "/var/lib/touchpoint:/other", 1);
	CHECK(config_load(&c, NULL, err, sizeof(err)) == TP_OK);
	CHECK(strcmp(c.state_dir, "/var/lib/touchpoint") == 0);
	unsetenv("STATE_DIRECTORY");

	CHECK(load(&c,
	           "# a comment\n\n  state_dir = /srv/tp  # trailing comment\n"
	           "listen = ipc:///run/x.sock\nlisten=tcp://127.0.0.1:7000\n"
	           "ipc_permissions = 0600\nmax_message_bytes = 4M\nmap_size = 2G\n"
	           "max_batch_events = 5000\nqueue_depth = 8\ncontexts = 16\nquery_threads = 4\n"
	           "scan_threads = 1\ncompactor_nice = 5\nwriter_priority = 3\n"
	           "sync = none\nrun_events = 4096\nmetrics =\nlog_level = debug\n"
	           "default_lookback = 12h\n",
	           err, sizeof(err)) == TP_OK);
	CHECK(strcmp(c.state_dir, "/srv/tp") == 0);
	CHECK(c.nlisten == 2 && strcmp(c.listen[1], "tcp://127.0.0.1:7000") == 0);
	CHECK(c.ipc_permissions == 0600 && c.max_message_bytes == 4u << 20);
	CHECK(c.map_size == (size_t)2 << 30 && c.max_batch_events == 5000);
	CHECK(c.queue_depth == 8 && c.contexts == 16 && c.query_threads == 4);
	CHECK(c.scan_threads == 1 && c.compactor_nice == 5 && c.writer_priority == 3);
	CHECK(c.sync == CONFIG_SYNC_NONE && c.run_events == 4096);
	CHECK(c.metrics_listen[0] == '\0' && c.log_level == LOG_LEVEL_DEBUG);
	CHECK(c.default_lookback_s == 12 * 3600);
	CHECK(load(&c, "default_lookback = 0\n", err, sizeof(err)) == TP_OK);
	CHECK(c.default_lookback_s == 0);

	CHECK(load(&c, "compactor_nice = 20\n", err, sizeof(err)) == TP_INVALID_ARGUMENT);
	CHECK(load(&c, "writer_priority = 100\n", err, sizeof(err)) == TP_INVALID_ARGUMENT);
	CHECK(load(&c, "writer_priority = 0\n", err, sizeof(err)) == TP_OK &&
	      c.writer_priority == 0);
	CHECK(load(&c, "contexts = 8\n\nfoo = 1\n", err, sizeof(err)) == TP_INVALID_ARGUMENT);
	snprintf(want, sizeof(want), "%s:3: unknown key \"foo\"", conf_path);
	CHECK(strcmp(err, want) == 0);
	CHECK(load(&c, "contexts\n", err, sizeof(err)) == TP_INVALID_ARGUMENT);
	CHECK(strstr(err, ":1:") != NULL);
	CHECK(load(&c, "contexts = 0\n", err, sizeof(err)) == TP_INVALID_ARGUMENT);
	CHECK(load(&c, "contexts = -3\n", err, sizeof(err)) == TP_INVALID_ARGUMENT);
	CHECK(load(&c, "map_size = 1T\n", err, sizeof(err)) == TP_INVALID_ARGUMENT);
	CHECK(load(&c, "default_lookback = 3w\n", err, sizeof(err)) == TP_INVALID_ARGUMENT);
	CHECK(load(&c, "sync = sometimes\n", err, sizeof(err)) == TP_INVALID_ARGUMENT);
	CHECK(load(&c, "log_level = loud\n", err, sizeof(err)) == TP_INVALID_ARGUMENT);
	CHECK(load(&c, "listen = http://x\n", err, sizeof(err)) == TP_INVALID_ARGUMENT);
	/* A NUL byte is named as such (fuzz_config found it read as "line too long"). */
	{
		static const char nul[] = "contexts = 8\nmetrics = \0x\n";
		FILE *f = fopen(conf_path, "w");

		CHECK(f != NULL && fwrite(nul, 1, sizeof(nul) - 1, f) == sizeof(nul) - 1);
		CHECK(fclose(f) == 0);
		CHECK(config_load(&c, conf_path, err, sizeof(err)) == TP_INVALID_ARGUMENT);
		CHECK(strstr(err, ":2: a NUL byte in the line") != NULL);
	}
	/* URLs NNG could never listen on are refused here (exit 78), not at start (exit 1). */
	{
		static const char *const bad[] = { "ipc://",          "tcp://",
			                           "tcp://127.0.0.1", "tcp://127.0.0.1:99999",
			                           "tcp://h:0",       "tcp://h:70x",
			                           "tcp://h:7/x",     "tcp://[::1]" };
		static const char *const good[] = { "tcp://127.0.0.1:7070", "tcp://[::1]:7070",
			                            "tcp://:7070", "tcp6://[::]:1", "ipc://x" };
		char line[400], longpath[200];

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(line, sizeof(line), "listen = %s\n", bad[i]);
			CHECK(load(&c, line, err, sizeof(err)) == TP_INVALID_ARGUMENT);
			CHECK(strstr(err, bad[i]) != NULL);
		}
		for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			snprintf(line, sizeof(line), "listen = %s\n", good[i]);
			CHECK(load(&c, line, err, sizeof(err)) == TP_OK);
		}
		memset(longpath, 'x', 107);
		longpath[107] = '\0'; /* 107 bytes fit sun_path with its NUL; 108 do not */
		snprintf(line, sizeof(line), "listen = ipc://%s\n", longpath);
		CHECK(load(&c, line, err, sizeof(err)) == TP_OK);
		snprintf(line, sizeof(line), "listen = ipc://%sx\n", longpath);
		CHECK(load(&c, line, err, sizeof(err)) == TP_INVALID_ARGUMENT);
		CHECK(strstr(err, "unix socket") != NULL);
	}
	CHECK(load(&c, "ipc_permissions = 0999\n", err, sizeof(err)) == TP_INVALID_ARGUMENT);
	CHECK(load(&c, "max_message_bytes = 99999999999999999999999\n", err, sizeof(err)) ==
	      TP_INVALID_ARGUMENT);
	unlink(conf_path);
	CHECK(config_load(&c, conf_path, err, sizeof(err)) == TP_NOT_FOUND);
}

static int
has(const struct validate_report *r, const char *field, const char *reason)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].field, field) == 0 && strstr(r->v[i].reason, reason) != NULL)
			return 1;
	return 0;
}

static void
test_utf8(void)
{
	CHECK(validate_utf8("plain", 5));
	CHECK(validate_utf8("caf\xc3\xa9", 5));
	CHECK(validate_utf8("\xe2\x82\xac", 3));      /* U+20AC */
	CHECK(validate_utf8("\xf0\x9f\x98\x80", 4));  /* U+1F600 */
	CHECK(validate_utf8("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
	CHECK(!validate_utf8("\xc0\xaf", 2));         /* overlong '/' */
	CHECK(!validate_utf8("\xe0\x80\xaf", 3));     /* overlong */
	CHECK(!validate_utf8("\xf0\x80\x80\xaf", 4)); /* overlong */
	CHECK(!validate_utf8("\xed\xa0\x80", 3));     /* surrogate U+D800 */
	CHECK(!validate_utf8("\xf4\x90\x80\x80", 4)); /* U+110000 */
	CHECK(!validate_utf8("\xc3", 1));             /* truncated */
	CHECK(!validate_utf8("\xe2\x82", 2));         /* truncated */
	CHECK(!validate_utf8("\x80", 1));             /* lone continuation */
	CHECK(!validate_utf8("\xff", 1));
}

static void
test_validate(void)
{
	Touchpoint__V1__Event e = TOUCHPOINT__V1__EVENT__INIT;
	Touchpoint__V1__Touch t = TOUCHPOINT__V1__TOUCH__INIT;
	Touchpoint__V1__Conversion cv = TOUCHPOINT__V1__CONVERSION__INIT;
	Touchpoint__V1__Spend sp = TOUCHPOINT__V1__SPEND__INIT;
	Touchpoint__V1__Identify id = TOUCHPOINT__V1__IDENTIFY__INIT;
	Touchpoint__V1__Trait tr[34], *trp[34];
	struct validate_violation vv[64];
	struct validate_report r;
	char big[300];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	e.event_id = (char *)"e1";
	e.customer_id = (char *)"c1";
	e.timestamp_us = 1700000000000000;
	e.kind_case = TOUCHPOINT__V1__EVENT__KIND_TOUCH;
	e.touch = &t;
	t.channel = (char *)"search";
	validate_report_init(&r, vv, 64);
	CHECK(validate_event(&e, 0, &r) == 0 && r.total == 0);
	/* SPEC §2's years 1970-2200 include 2200: its last microsecond is in, 2201 is out. */
	e.timestamp_us = INT64_C(7289654400000000) - 1; /* 2200-12-31T23:59:59.999999Z */
	CHECK(validate_event(&e, 0, &r) == 0 && r.total == 0);

	e.timestamp_us = VALIDATE_TS_END_US;
	t.cost_present_case = TOUCHPOINT__V1__TOUCH__COST_PRESENT_COST;
	t.cost = NAN;
	t.interaction = 9;
	big[65] = '\0';
	t.medium = big;
	CHECK(validate_event(&e, 7, &r) == 4);
	CHECK(has(&r, "events[7].timestamp_us", "must be in"));
	CHECK(has(&r, "events[7].touch.cost", "finite"));
	CHECK(has(&r, "events[7].touch.interaction", "not a known"));
	CHECK(has(&r, "events[7].touch.medium", "is 65 bytes, the limit is 64"));
	CHECK(r.v[0].index == 7);
	big[65] = 'a';

	validate_report_init(&r, vv, 64);
	e.timestamp_us = 0;
	e.kind_case = TOUCHPOINT__V1__EVENT__KIND_CONVERSION;
	e.conversion = &cv;
	cv.value = -1;
	cv.currency = (char *)"EURO";
	CHECK(validate_event(&e, 0, &r) == 2);
	cv.value = 0;
	cv.currency = (char *)"EUR";
	e.event_id = (char *)"";
	validate_report_init(&r, vv, 64);
	CHECK(validate_event(&e, 0, &r) == 1 && has(&r, "events[0].event_id", "required"));
	e.event_id = (char *)"e1";

	/* Spend: customer optional, day checked. */
	validate_report_init(&r, vv, 64);
	e.customer_id = (char *)"";
	e.kind_case = TOUCHPOINT__V1__EVENT__KIND_SPEND;
	e.spend = &sp;
	sp.channel = (char *)"search";
	sp.day = (char *)"2024-02-29";
	CHECK(validate_event(&e, 0, &r) == 0);
	sp.day = (char *)"2023-02-29";
	CHECK(validate_event(&e, 0, &r) == 1 && has(&r, "events[0].spend.day", "date"));

	/* Identify: 33 traits, duplicates. */
	validate_report_init(&r, vv, 64);
	e.customer_id = (char *)"c1";
	e.kind_case = TOUCHPOINT__V1__EVENT__KIND_IDENTIFY;
	e.identify = &id;
	for (int i = 0; i < 34; i++) {
		touchpoint__v1__trait__init(&tr[i]);
		tr[i].key = (char *)(i % 2 ? "plan" : "region");
		tr[i].value = (char *)"x";
		trp[i] = &tr[i];
	}
	id.traits = trp;
	id.n_traits = 33;
	CHECK(validate_event(&e, 0, &r) == 1 &&
	      has(&r, "events[0].identify.traits", "limit is 32"));
	id.n_traits = 3;
	validate_report_init(&r, vv, 64);
	CHECK(validate_event(&e, 0, &r) == 1 &&
	      has(&r, "events[0].identify.traits[2].key", "repeats traits[0].key"));

	/* No kind. */
	validate_report_init(&r, vv, 64);
	e.kind_case = TOUCHPOINT__V1__EVENT__KIND__NOT_SET;
	CHECK(validate_event(&e, 0, &r) == 1 && has(&r, "events[0].kind", "no event kind"));

	/* Counting without storage (cap 0), as ingest's first pass does. */
	validate_report_init(&r, NULL, 0);
	CHECK(validate_event(&e, 0, &r) == 1 && r.total == 1 && r.n == 0);
}

/* The wire walker finds a NUL in a nested repeated string. */
static void
test_wire(void)
{
	Touchpoint__V1__SendRequest req = TOUCHPOINT__V1__SEND_REQUEST__INIT;
	Touchpoint__V1__Event e0 = TOUCHPOINT__V1__EVENT__INIT, e1 = TOUCHPOINT__V1__EVENT__INIT;
	Touchpoint__V1__Event *evs[2] = { &e0, &e1 };
	Touchpoint__V1__Touch t = TOUCHPOINT__V1__TOUCH__INIT;
	Touchpoint__V1__Identify id = TOUCHPOINT__V1__IDENTIFY__INIT;
	Touchpoint__V1__Trait tr[2], *trp[2] = { &tr[0], &tr[1] };
	struct validate_violation vv[16];
	struct validate_report r;
	uint8_t buf[512], *p;
	size_t len;
	Touchpoint__V1__SendRequest *back;

	e0.event_id = (char *)"e0";
	e0.customer_id = (char *)"c";
	e0.kind_case = TOUCHPOINT__V1__EVENT__KIND_TOUCH;
	e0.touch = &t;
	t.channel = (char *)"web";
	e1.event_id = (char *)"e1";
	e1.customer_id = (char *)"c";
	e1.kind_case = TOUCHPOINT__V1__EVENT__KIND_IDENTIFY;
	e1.identify = &id;
	touchpoint__v1__trait__init(&tr[0]);
	touchpoint__v1__trait__init(&tr[1]);
	tr[0].key = (char *)"a";
	tr[0].value = (char *)"1";
	tr[1].key = (char *)"b";
	tr[1].value = (char *)"ZZ-ZZ";
	id.traits = trp;
	id.n_traits = 2;
	req.events = evs;
	req.n_events = 2;
	len = touchpoint__v1__send_request__pack(&req, buf);
	CHECK(len < sizeof(buf));
	validate_report_init(&r, vv, 16);
	CHECK(validate_send_request(&req, buf, len, &r) == 0);
	for (p = buf; memcmp(p, "ZZ-ZZ", 5) != 0; p++)
		;
	p[2] = '\0';
	back = touchpoint__v1__send_request__unpack(NULL, len, buf);
	CHECK(back != NULL);
	/* protobuf-c truncated it silently: only the walker can tell. */
	CHECK(strcmp(back->events[1]->identify->traits[1]->value, "ZZ") == 0);
	validate_report_init(&r, vv, 16);
	CHECK(validate_send_request(back, buf, len, &r) == 1);
	CHECK(r.n == 1 && r.v[0].index == 1);
	CHECK(strcmp(r.v[0].field, "events[1].identify.traits[1].value") == 0);
	CHECK(strstr(r.v[0].reason, "NUL") != NULL);
	touchpoint__v1__send_request__free_unpacked(back, NULL);
}

int
main(void)
{
	log_init(1, LOG_LEVEL_ERR);
	test_config();
	test_utf8();
	test_validate();
	test_wire();
	fprintf(stderr, "unit tests: ok\n");
	return 0;
}
