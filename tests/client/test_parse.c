/*
 * Unit tests of the CLI's parsers: CSV, JSON, times and durations, import rows and their
 * content-derived ids, and the status -> exit code mapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <cmocka.h>

#include "cli.h"
#include "csv.h"
#include "json.h"
#include "row.h"
#include "timefmt.h"

static FILE *
mem(const char *s)
{
	FILE *f = fmemopen((void *)s, strlen(s), "r");

	assert_non_null(f);
	return f;
}

static void
test_csv_quoting(void **state)
{
	const char *in = "a,b,c\r\n"
	                 "1,\"x,y\",\"say \"\"hi\"\"\"\n"
	                 "\n"
	                 "2,\"multi\nline\",\n"
	                 "3,bad\"quote,z\n"
	                 "4,ok,\"end\"\n";
	FILE *f = mem(in);
	struct csv_reader *r = csv_new(f);
	char **fl, err[128];
	size_t n;
	unsigned long line;

	(void)state;
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), 1);
	assert_int_equal(n, 3);
	assert_string_equal(fl[2], "c");
	assert_int_equal(line, 1);
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), 1);
	assert_int_equal(n, 3);
	assert_string_equal(fl[1], "x,y");
	assert_string_equal(fl[2], "say \"hi\"");
	assert_int_equal(line, 2);
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), 1);
	assert_int_equal(line, 4); /* the blank line 3 is skipped */
	assert_int_equal(n, 3);
	assert_string_equal(fl[1], "multi\nline");
	assert_string_equal(fl[2], "");
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), -1);
	assert_int_equal(line, 6);
	assert_non_null(strstr(err, "quote"));
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), 1);
	assert_int_equal(line, 7);
	assert_string_equal(fl[0], "4");
	assert_string_equal(fl[2], "end");
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), 0);
	csv_free(r);
	fclose(f);
}

static void
test_csv_unterminated(void **state)
{
	FILE *f = mem("a\n\"open\n");
	struct csv_reader *r = csv_new(f);
	char **fl, err[128];
	size_t n;
	unsigned long line;

	(void)state;
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), 1);
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unterminated"));
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), 0);
	csv_free(r);
	fclose(f);
}

/*
 * A record of too many fields that ends in a comma and CRLF is refused alone: the reader
 * skipped the next line with it (found by reading csv.c for the fuzz targets).
 */
static void
test_csv_too_many_crlf(void **state)
{
	char buf[CSV_MAX_FIELDS + 16], **fl, err[128];
	FILE *f;
	struct csv_reader *r;
	size_t n;
	unsigned long line;

	(void)state;
	memset(buf, ',', CSV_MAX_FIELDS);
	strcpy(buf + CSV_MAX_FIELDS, "\r\nx\ny\n");
	f = mem(buf);
	r = csv_new(f);
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "fields"));
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), 1);
	assert_int_equal(line, 2);
	assert_string_equal(fl[0], "x");
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), 1);
	assert_int_equal(line, 3);
	assert_string_equal(fl[0], "y");
	assert_int_equal(csv_read(r, &fl, &n, &line, err, sizeof(err)), 0);
	csv_free(r);
	fclose(f);
}

static void
test_csv_put(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	csv_put(f, "plain");
	fputc('|', f);
	csv_put(f, "a,\"b\"");
	fputc('|', f);
	csv_put(f, " edge");
	fclose(f);
	assert_string_equal(buf, "plain|\"a,\"\"b\"\"\"|\" edge\"");
	free(buf);
}

static void
test_json_values(void **state)
{
	const char *s =
	    " {\"a\": [1, -2.5e3, true, false, null], \"s\": \"\\u00e9\\ud83d\\ude00\\n\","
	    " \"o\": {}} ";
	struct json_value *v;
	const struct json_value *a, *str;
	char err[128];

	(void)state;
	assert_int_equal(json_parse(s, strlen(s), &v, err, sizeof(err)), 0);
	assert_int_equal(v->type, JSON_OBJECT);
	a = json_get(v, "a");
	assert_non_null(a);
	assert_int_equal(a->type, JSON_ARRAY);
	assert_int_equal(a->n, 5);
	assert_true(a->items[1]->number == -2500.0);
	assert_string_equal(a->items[1]->str, "-2.5e3");
	assert_int_equal(a->items[2]->type, JSON_BOOL);
	assert_int_equal(a->items[4]->type, JSON_NULL);
	str = json_get(v, "s");
	assert_string_equal(str->str, "\xc3\xa9\xf0\x9f\x98\x80\n");
	assert_null(json_get(v, "missing"));
	json_free(v);
}

static void
test_json_strict(void **state)
{
	static const char *const bad[] = {
		"{\"a\":1,}",
		"[01]",
		"{'a':1}",
		"{\"a\":1} x",
		"\"\\u0000\"",
		"{\"a\":1,\"a\":2}",
		"\"\xff\"",
		"\"\\ud800\"",
		"[1.]",
		"nul",
		"\"tab\there\"",
		"{\"a\" 1}",
		"",
	};
	struct json_value *v;
	char err[128], deep[200];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = NULL;
		assert_int_equal(json_parse(bad[i], strlen(bad[i]), &v, err, sizeof(err)), -1);
		assert_null(v);
		assert_non_null(strstr(err, "at byte"));
	}
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	assert_int_equal(json_parse(deep, 200, &v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "deep"));
}

/* JSON_MAX_MEMBERS members (or elements) are read; one more is refused, named. */
static void
test_json_members(void **state)
{
	char buf[2048], err[128];
	struct json_value *v;
	size_t len, i;

	(void)state;
	for (i = 0, len = 0; i < JSON_MAX_MEMBERS; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s\"k%zu\": \"a\\\"b\"",
		                        i ? ", " : "{", i);
	snprintf(buf + len, sizeof(buf) - len, "}");
	assert_int_equal(json_parse(buf, strlen(buf), &v, err, sizeof(err)), 0);
	assert_int_equal(v->n, JSON_MAX_MEMBERS);
	assert_string_equal(json_get(v, "k63")->str, "a\"b");
	json_free(v);
	snprintf(buf + len, sizeof(buf) - len, ", \"k64\": 1}");
	assert_int_equal(json_parse(buf, strlen(buf), &v, err, sizeof(err)), -1);
	assert_null(v);
	assert_non_null(strstr(err, "more than 64 members in an object at byte "));
	for (i = 0, len = 0; i <= JSON_MAX_MEMBERS; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s1", i ? "," : "[");
	snprintf(buf + len, sizeof(buf) - len, "]");
	assert_int_equal(json_parse(buf, strlen(buf), &v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 64 elements in an array at byte "));
}

static void
test_times(void **state)
{
	int64_t us;
	char buf[TF_TIME_MAX];

	(void)state;
	assert_int_equal(tf_parse_time("1970-01-01", &us), 0);
	assert_int_equal(us, 0);
	assert_int_equal(tf_parse_time("2024-05-01T12:00:00Z", &us), 0);
	assert_int_equal(us, 1714564800LL * 1000000);
	assert_int_equal(tf_parse_time("2024-05-01T14:00:00.25+02:00", &us), 0);
	assert_int_equal(us, 1714564800LL * 1000000 + 250000);
	assert_int_equal(tf_parse_time("2024-02-29 00:00:00z", &us), 0);
	assert_int_equal(tf_parse_time("@1714564800000000", &us), 0);
	assert_int_equal(us, 1714564800LL * 1000000);
	assert_int_equal(tf_parse_time("2023-02-29", &us), -1);
	assert_int_equal(tf_parse_time("2024-05-01T24:00:00Z", &us), -1);
	assert_int_equal(tf_parse_time("2024-05-01T12:00:00", &us), -1); /* no zone */
	/* Well-formed but outside 1970-2200 (UTC) is told apart from not a time at all. */
	assert_int_equal(tf_parse_time("1969-12-31", &us), TF_OUT_OF_RANGE);
	assert_int_equal(tf_parse_time("2201-01-01", &us), TF_OUT_OF_RANGE);
	assert_int_equal(tf_parse_time("0000-01-01T00:00:00Z", &us), TF_OUT_OF_RANGE);
	assert_int_equal(tf_parse_time("1970-01-01T00:30:00+01:00", &us), TF_OUT_OF_RANGE);
	assert_int_equal(tf_parse_time("2200-12-31T23:30:00-01:00", &us), TF_OUT_OF_RANGE);
	assert_int_equal(tf_parse_time("@7289654400000000", &us), TF_OUT_OF_RANGE);
	assert_int_equal(tf_parse_time("@99999999999999999999", &us), TF_OUT_OF_RANGE);
	assert_int_equal(tf_parse_time("1969-12-31Tnoon", &us), -1);
	assert_int_equal(tf_parse_time("1969-13-01", &us), -1);
	assert_int_equal(tf_parse_time("@12x", &us), -1);
	assert_int_equal(tf_parse_time("yesterday", &us), -1);
	assert_int_equal(tf_parse_time("@7289654399999999", &us), 0);
	tf_format(1714564800LL * 1000000 + 250000, buf, sizeof(buf));
	assert_string_equal(buf, "2024-05-01T12:00:00.250000Z");
	tf_format(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	assert_int_equal(tf_parse_time("2200-12-31T23:59:59Z", &us), 0);
	tf_format(us, buf, sizeof(buf));
	assert_string_equal(buf, "2200-12-31T23:59:59Z");
}

static void
test_durations(void **state)
{
	int64_t s;

	(void)state;
	assert_int_equal(tf_parse_duration("0", &s), 0);
	assert_int_equal(s, 0);
	assert_int_equal(tf_parse_duration("3600", &s), 0);
	assert_int_equal(s, 3600);
	assert_int_equal(tf_parse_duration("90s", &s), 0);
	assert_int_equal(s, 90);
	assert_int_equal(tf_parse_duration("15m", &s), 0);
	assert_int_equal(s, 900);
	assert_int_equal(tf_parse_duration("12h", &s), 0);
	assert_int_equal(s, 43200);
	assert_int_equal(tf_parse_duration("30d", &s), 0);
	assert_int_equal(s, 2592000);
	assert_int_equal(tf_parse_duration("1d12h", &s), 0);
	assert_int_equal(s, 129600);
	assert_int_equal(tf_parse_duration("1d5", &s), -1);
	assert_int_equal(tf_parse_duration("5w", &s), -1);
	assert_int_equal(tf_parse_duration("-1d", &s), -1);
	assert_int_equal(tf_parse_duration("", &s), -1);
	assert_int_equal(tf_parse_duration("99999999999999999999d", &s), -1);
}

static void
test_row_touch(void **state)
{
	const struct row_field f[] = {
		{ "customer_id", "c1" }, { "type", "touch" }, { "timestamp", "2024-05-01" },
		{ "channel", "email" },  { "campaign", "" },  { "interaction", "click" },
		{ "cost", "0.5" },       { "value", "99" }, /* not a touch field: ignored */
	};
	struct row_event e;
	char field[64], reason[256];

	(void)state;
	assert_int_equal(row_to_event(f, 8, &e, field, sizeof(field), reason, sizeof(reason)), 0);
	assert_int_equal(e.ev.kind, TP_TOUCH);
	assert_string_equal(e.ev.u.touch.channel, "email");
	assert_null(e.ev.u.touch.campaign);
	assert_int_equal(e.ev.u.touch.interaction, TP_INTERACTION_CLICK);
	assert_true(e.ev.u.touch.has_cost && e.ev.u.touch.cost == 0.5);
	assert_int_equal(e.ev.timestamp_us, 1714521600LL * 1000000);
	assert_int_equal(strlen(e.ev.event_id), ROW_ID_LEN);
	assert_memory_equal(e.ev.event_id, "imp-", 4);
	row_event_free(&e);
}

static void
test_row_errors(void **state)
{
	const struct row_field badtype[] = { { "type", "click" }, { "timestamp_us", "1" } };
	const struct row_field badtime[] = { { "type", "touch" }, { "timestamp", "soon" } };
	const struct row_field notime[] = { { "type", "conversion" } };
	const struct row_field badnum[] = { { "type", "conversion" },
		                            { "timestamp_us", "5" },
		                            { "value", "12abc" } };
	const struct row_field disagree[] = { { "type", "touch" },
		                              { "timestamp", "1970-01-01" },
		                              { "timestamp_us", "5" } };
	struct row_event e;
	char field[64], reason[256];

	(void)state;
	assert_int_equal(row_to_event(badtype, 2, &e, field, 64, reason, 256), -1);
	assert_string_equal(field, "type");
	assert_int_equal(row_to_event(badtime, 2, &e, field, 64, reason, 256), -1);
	assert_string_equal(field, "timestamp");
	assert_int_equal(row_to_event(notime, 1, &e, field, 64, reason, 256), -1);
	assert_string_equal(field, "timestamp");
	assert_int_equal(row_to_event(badnum, 3, &e, field, 64, reason, 256), -1);
	assert_string_equal(field, "value");
	assert_int_equal(row_to_event(disagree, 3, &e, field, 64, reason, 256), -1);
	assert_string_equal(field, "timestamp_us");
	{
		/* hex is not a decimal number; an overflowing time is named, not clamped */
		const struct row_field hex[] = { { "type", "conversion" },
			                         { "timestamp_us", "5" },
			                         { "value", "0x10" } };
		const struct row_field huge[] = { { "type", "touch" },
			                          { "timestamp_us", "99999999999999999999" } };
		const struct row_field badday[] = { { "type", "spend" }, { "day", "2024-5-1" } };
		const struct row_field spaced[] = { { "customer_id", "c1" },
			                            { "type", "conversion" },
			                            { "timestamp_us", "5" },
			                            { "value", " 10" } };

		assert_int_equal(row_to_event(hex, 3, &e, field, 64, reason, 256), -1);
		assert_string_equal(field, "value");
		assert_int_equal(row_to_event(huge, 2, &e, field, 64, reason, 256), -1);
		assert_string_equal(field, "timestamp_us");
		assert_non_null(strstr(reason, "64-bit"));
		assert_int_equal(row_to_event(badday, 2, &e, field, 64, reason, 256), -1);
		assert_string_equal(field, "day"); /* not "timestamp: missing" */
		assert_int_equal(row_to_event(spaced, 4, &e, field, 64, reason, 256), 0);
		assert_true(e.ev.u.conversion.value == 10);
		row_event_free(&e);
	}
}

/* Builds a row and returns its id in out. */
static void
row_id_of(const struct row_field *f, size_t n, char *out)
{
	struct row_event e;
	char field[64], reason[256];

	assert_int_equal(row_to_event(f, n, &e, field, sizeof(field), reason, sizeof(reason)), 0);
	strcpy(out, e.ev.event_id);
	row_event_free(&e);
}

static void
test_row_ids(void **state)
{
	const struct row_field a[] = { { "customer_id", "c1" },
		                       { "type", "conversion" },
		                       { "timestamp", "2024-05-01T00:00:00Z" },
		                       { "value", "10" } };
	/* The same event spelled differently: same id. */
	const struct row_field a2[] = { { "value", "10.0" },
		                        { "timestamp_us", "1714521600000000" },
		                        { "type", "conversion" },
		                        { "customer_id", "c1" } };
	const struct row_field b[] = { { "customer_id", "c1" },
		                       { "type", "conversion" },
		                       { "timestamp", "2024-05-01T00:00:00Z" },
		                       { "value", "11" } };
	const struct row_field c[] = { { "customer_id", "c2" },
		                       { "type", "conversion" },
		                       { "timestamp", "2024-05-01T00:00:00Z" },
		                       { "value", "10" } };
	const struct row_field t1[] = { { "customer_id", "c1" },
		                        { "type", "identify" },
		                        { "timestamp_us", "1" },
		                        { "trait.plan", "pro" },
		                        { "trait.country", "fr" } };
	const struct row_field t2[] = { { "trait.country", "fr" },
		                        { "customer_id", "c1" },
		                        { "type", "identify" },
		                        { "timestamp_us", "1" },
		                        { "trait.plan", "pro" } };
	const struct row_field t3[] = { { "customer_id", "c1" },
		                        { "type", "identify" },
		                        { "timestamp_us", "1" },
		                        { "trait.plan", "prof" },
		                        { "trait.country", "r" } };
	const struct row_field given[] = { { "event_id", "mine-1" },
		                           { "customer_id", "c1" },
		                           { "type", "conversion" },
		                           { "timestamp_us", "1" } };
	char ia[64], ia2[64], ib[64], ic[64], it1[64], it2[64], it3[64], ig[64];

	(void)state;
	row_id_of(a, 4, ia);
	row_id_of(a, 4, ia2);
	assert_string_equal(ia, ia2);
	row_id_of(a2, 4, ia2);
	assert_string_equal(ia, ia2);
	row_id_of(b, 4, ib);
	row_id_of(c, 4, ic);
	assert_string_not_equal(ia, ib);
	assert_string_not_equal(ia, ic);
	row_id_of(t1, 5, it1);
	row_id_of(t2, 5, it2);
	row_id_of(t3, 5, it3);
	assert_string_equal(it1, it2); /* trait order does not matter */
	assert_string_not_equal(it1, it3);
	row_id_of(given, 4, ig);
	assert_string_equal(ig, "mine-1");
	/* Pinned (the ids of session 10's build): files imported then still come back as
	 * duplicates. */
	assert_string_equal(ia, "imp-a23855b66ed469bdffd152750b30253d");
	assert_string_equal(it1, "imp-be2adbab725c57d9d3388cc717c8fc07");
}

/* Spellings of one event share its id; different events never do. */
static void
test_row_ids_spellings(void **state)
{
	const struct row_field a[] = { { "customer_id", "c1" },
		                       { "type", "conversion" },
		                       { "timestamp_us", "5" },
		                       { "value", "0" } };
	const struct row_field named[] = { { "customer_id", "c1" },
		                           { "type", "conversion" },
		                           { "timestamp_us", "5" },
		                           { "value", "-0" },
		                           { "name", "conversion" } };
	const struct row_field other[] = { { "customer_id", "c1" },
		                           { "type", "conversion" },
		                           { "timestamp_us", "5" },
		                           { "value", "0" },
		                           { "name", "signup" } };
	const struct row_field eq1[] = { { "customer_id", "k1" },
		                         { "type", "identify" },
		                         { "timestamp_us", "5" },
		                         { "trait.a", "b=c" } };
	const struct row_field eq2[] = { { "customer_id", "k1" },
		                         { "type", "identify" },
		                         { "timestamp_us", "5" },
		                         { "trait.a=b", "c" } };
	char ia[64], in[64], io[64], i1[64], i2[64];

	(void)state;
	row_id_of(a, 4, ia);
	row_id_of(named, 5, in);
	row_id_of(other, 5, io);
	assert_string_equal(ia, in); /* the default name spelled out, and -0 */
	assert_string_not_equal(ia, io);
	row_id_of(eq1, 4, i1);
	row_id_of(eq2, 4, i2);
	assert_string_not_equal(i1, i2);
}

static void
test_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(cli_exit_code(TP_OK), 0);
	assert_int_equal(cli_exit_code(TP_INVALID_ARGUMENT), EX_DATAERR);
	assert_int_equal(cli_exit_code(TP_NOT_FOUND), EX_NOINPUT);
	assert_int_equal(cli_exit_code(TP_UNAVAILABLE), EX_UNAVAILABLE);
	assert_int_equal(cli_exit_code(TP_DEADLINE_EXCEEDED), EX_TEMPFAIL);
	assert_int_equal(cli_exit_code(TP_RESOURCE_EXHAUSTED), EX_TEMPFAIL);
	assert_int_equal(cli_exit_code(TP_PERMISSION_DENIED), EX_NOPERM);
	assert_int_equal(cli_exit_code(TP_INTERNAL), EX_SOFTWARE);
	assert_int_equal(cli_exit_code(TP_UNIMPLEMENTED), EX_SOFTWARE);
	assert_string_equal(tp_strerror(TP_UNAVAILABLE), "UNAVAILABLE");
	assert_string_equal(tp_strerror(99), "UNKNOWN_STATUS");
	assert_string_equal(tp_strerror(-1), "UNKNOWN_STATUS");
}

static void
test_event_ids(void **state)
{
	char a[TP_EVENT_ID_LEN + 1], b[TP_EVENT_ID_LEN + 1];
	size_t i;

	(void)state;
	assert_int_equal(tp_event_id_new(a), TP_OK);
	assert_int_equal(tp_event_id_new(b), TP_OK);
	assert_int_equal(strlen(a), TP_EVENT_ID_LEN);
	for (i = 0; i < TP_EVENT_ID_LEN; i++)
		assert_non_null(strchr("0123456789abcdef", a[i]));
	assert_string_not_equal(a, b);
	/* Time-prefixed: the later id sorts after (or with) the earlier one in its first 12. */
	assert_true(strncmp(a, b, 12) <= 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csv_quoting),       cmocka_unit_test(test_csv_unterminated),
		cmocka_unit_test(test_csv_put),           cmocka_unit_test(test_csv_too_many_crlf),
		cmocka_unit_test(test_json_values),       cmocka_unit_test(test_json_strict),
		cmocka_unit_test(test_json_members),      cmocka_unit_test(test_times),
		cmocka_unit_test(test_durations),         cmocka_unit_test(test_row_touch),
		cmocka_unit_test(test_row_errors),        cmocka_unit_test(test_row_ids),
		cmocka_unit_test(test_row_ids_spellings), cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_event_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
