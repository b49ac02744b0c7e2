/*
 * daemon_tests: integration tests of touchpointd over its wire protocol, one case per
 * ctest entry (daemon_<case>): each starts the real daemon in a temporary directory.
 */
#define _XOPEN_SOURCE 700

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "touchpoint/v1/attribution.pb-c.h"
#include "touchpoint/v1/event.pb-c.h"
#include "touchpoint/v1/ingest.pb-c.h"
#include "touchpoint/v1/query.pb-c.h"

#define M_SEND       "/touchpoint.v1.Ingest/Send"
#define M_STATUS     "/touchpoint.v1.Admin/GetStatus"
#define M_JOURNEY    "/touchpoint.v1.Journey/GetJourney"
#define M_ATTRIBUTE  "/touchpoint.v1.Attribution/Attribute"
#define M_PATHS      "/touchpoint.v1.Attribution/Paths"
#define CALL_TIMEOUT 30000

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- events (strings are borrowed; ev_free frees the structs only) */

static Touchpoint__V1__Event *
ev_new(const char *id, const char *cust, int64_t ts)
{
	Touchpoint__V1__Event *e = calloc(1, sizeof(*e));

	CHECK(e != NULL);
	touchpoint__v1__event__init(e);
	e->event_id = (char *)id;
	e->customer_id = (char *)cust;
	e->timestamp_us = ts;
	return e;
}

static Touchpoint__V1__Event *
ev_touch(const char *id, const char *cust, int64_t ts, const char *channel, const char *campaign)
{
	Touchpoint__V1__Event *e = ev_new(id, cust, ts);
	Touchpoint__V1__Touch *t = calloc(1, sizeof(*t));

	CHECK(t != NULL);
	touchpoint__v1__touch__init(t);
	t->channel = (char *)channel;
	if (campaign != NULL)
		t->campaign = (char *)campaign;
	t->interaction = TOUCHPOINT__V1__INTERACTION__INTERACTION_CLICK;
	e->kind_case = TOUCHPOINT__V1__EVENT__KIND_TOUCH;
	e->touch = t;
	return e;
}

static Touchpoint__V1__Event *
ev_conv(const char *id, const char *cust, int64_t ts, double value, const char *currency)
{
	Touchpoint__V1__Event *e = ev_new(id, cust, ts);
	Touchpoint__V1__Conversion *c = calloc(1, sizeof(*c));

	CHECK(c != NULL);
	touchpoint__v1__conversion__init(c);
	c->value = value;
	if (currency != NULL)
		c->currency = (char *)currency;
	e->kind_case = TOUCHPOINT__V1__EVENT__KIND_CONVERSION;
	e->conversion = c;
	return e;
}

static Touchpoint__V1__Event *
ev_identify(const char *id, const char *cust, int64_t ts, const char *key, const char *value)
{
	Touchpoint__V1__Event *e = ev_new(id, cust, ts);
	Touchpoint__V1__Identify *idf = calloc(1, sizeof(*idf));
	Touchpoint__V1__Trait *t = calloc(1, sizeof(*t));
	Touchpoint__V1__Trait **tp = calloc(1, sizeof(*tp));

	CHECK(idf != NULL && t != NULL && tp != NULL);
	touchpoint__v1__identify__init(idf);
	touchpoint__v1__trait__init(t);
	t->key = (char *)key;
	t->value = (char *)value;
	tp[0] = t;
	idf->traits = tp;
	idf->n_traits = 1;
	e->kind_case = TOUCHPOINT__V1__EVENT__KIND_IDENTIFY;
	e->identify = idf;
	return e;
}

static Touchpoint__V1__Event *
ev_alias(const char *id, const char *cust, int64_t ts, const char *prev)
{
	Touchpoint__V1__Event *e = ev_new(id, cust, ts);
	Touchpoint__V1__Alias *a = calloc(1, sizeof(*a));

	CHECK(a != NULL);
	touchpoint__v1__alias__init(a);
	a->previous_id = (char *)prev;
	e->kind_case = TOUCHPOINT__V1__EVENT__KIND_ALIAS;
	e->alias = a;
	return e;
}

static Touchpoint__V1__Event *
ev_spend(const char *id, int64_t ts, const char *channel, const char *day, double amount)
{
	Touchpoint__V1__Event *e = ev_new(id, "", ts);
	Touchpoint__V1__Spend *s = calloc(1, sizeof(*s));

	CHECK(s != NULL);
	touchpoint__v1__spend__init(s);
	s->channel = (char *)channel;
	s->day = (char *)day;
	s->amount = amount;
	s->currency = (char *)"EUR";
	e->kind_case = TOUCHPOINT__V1__EVENT__KIND_SPEND;
	e->spend = s;
	return e;
}

static void
ev_free(Touchpoint__V1__Event *e)
{
	switch (e->kind_case) {
	case TOUCHPOINT__V1__EVENT__KIND_TOUCH:
		free(e->touch);
		break;
	case TOUCHPOINT__V1__EVENT__KIND_CONVERSION:
		free(e->conversion);
		break;
	case TOUCHPOINT__V1__EVENT__KIND_IDENTIFY:
		free(e->identify->traits[0]);
		free(e->identify->traits);
		free(e->identify);
		break;
	case TOUCHPOINT__V1__EVENT__KIND_ALIAS:
		free(e->alias);
		break;
	case TOUCHPOINT__V1__EVENT__KIND_SPEND:
		free(e->spend);
		break;
	default:
		break;
	}
	free(e);
}

static void
evs_free(Touchpoint__V1__Event **evs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ev_free(evs[i]);
}

/* Sends a batch; returns the reply (status not checked). */
static Touchpoint__V1__Reply *
send_batch(nng_socket s, Touchpoint__V1__Event **evs, size_t n)
{
	Touchpoint__V1__SendRequest req = TOUCHPOINT__V1__SEND_REQUEST__INIT;
	Touchpoint__V1__Reply *rep = NULL;

	req.events = evs;
	req.n_events = n;
	CHECK(tpd_call(s, M_SEND, &req.base, CALL_TIMEOUT, &rep) == 0);
	CHECK(rep->status != NULL);
	return rep;
}

static Touchpoint__V1__SendResponse *
send_ok(nng_socket s, Touchpoint__V1__Event **evs, size_t n)
{
	Touchpoint__V1__Reply *rep = send_batch(s, evs, n);
	Touchpoint__V1__SendResponse *r =
	    tpd_payload(rep, &touchpoint__v1__send_response__descriptor);

	touchpoint__v1__reply__free_unpacked(rep, NULL);
	return r;
}

static Touchpoint__V1__GetStatusResponse *
get_status(nng_socket s)
{
	Touchpoint__V1__GetStatusRequest req = TOUCHPOINT__V1__GET_STATUS_REQUEST__INIT;
	Touchpoint__V1__Reply *rep = NULL;
	Touchpoint__V1__GetStatusResponse *st;

	CHECK(tpd_call(s, M_STATUS, &req.base, CALL_TIMEOUT, &rep) == 0);
	st = tpd_payload(rep, &touchpoint__v1__get_status_response__descriptor);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	CHECK(st->events != NULL);
	return st;
}

static uint64_t
stored_events(nng_socket s)
{
	Touchpoint__V1__GetStatusResponse *st = get_status(s);
	uint64_t n = st->events->total;

	touchpoint__v1__get_status_response__free_unpacked(st, NULL);
	return n;
}

static int
has_violation(const Touchpoint__V1__Status *st, int32_t index, const char *field,
              const char *reason_part)
{
	for (size_t i = 0; i < st->n_details; i++) {
		const Touchpoint__V1__FieldViolation *v = st->details[i];

		if (v->index == index && strcmp(v->field, field) == 0 &&
		    strstr(v->reason, reason_part) != NULL)
			return 1;
	}
	return 0;
}

/* ---- cases */

/* A batch of every kind is stored and comes back in SPEC §3 order, with its paths. */
static void
test_journey(void)
{
	struct tpd d;
	nng_socket s;
	Touchpoint__V1__Event *evs[10];
	size_t n = 0;
	Touchpoint__V1__SendResponse *sr;
	Touchpoint__V1__GetJourneyRequest jr = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__INIT;
	Touchpoint__V1__GetJourneyResponse *j;
	Touchpoint__V1__GetStatusResponse *st;
	Touchpoint__V1__Reply *rep;
	/* Sent out of order on purpose; "anon-1" becomes alice through the alias. */
	static const char *const want[] = { "a-alias", "a-identify", "a-t1",   "anon-t",
		                            "a-t2",    "a-t3",       "a-conv", "a-t4" };

	tpd_init(&d, NULL);
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	evs[n++] = ev_conv("a-conv", "alice", 3000000, 10.5, "EUR");
	evs[n++] = ev_touch("a-t3", "alice", 3000000, "display", NULL); /* same time: first */
	evs[n++] = ev_touch("a-t1", "alice", 1000000, "search", "spring");
	evs[n++] = ev_touch("anon-t", "anon-1", 1500000, "social", NULL);
	evs[n++] = ev_touch("a-t2", "alice", 2000000, "email", NULL);
	evs[n++] = ev_identify("a-identify", "alice", 500000, "plan", "pro");
	evs[n++] = ev_alias("a-alias", "alice", 100000, "anon-1");
	evs[n++] = ev_spend("s-1", 1000000, "search", "1970-01-01", 5.0);
	evs[n++] = ev_touch("a-t4", "alice", 4000000, "search", NULL);
	sr = send_ok(s, evs, n);
	CHECK(sr->accepted == 9);
	CHECK(sr->duplicates == 0);
	touchpoint__v1__send_response__free_unpacked(sr, NULL);

	jr.customer_id = (char *)"alice";
	jr.lookback_case = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__LOOKBACK_LOOKBACK_S;
	jr.lookback_s = 0;
	CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_TIMEOUT, &rep) == 0);
	j = tpd_payload(rep, &touchpoint__v1__get_journey_response__descriptor);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	CHECK(strcmp(j->customer_id, "alice") == 0);
	CHECK(j->n_aliases == 1 && strcmp(j->aliases[0], "anon-1") == 0);
	for (size_t i = 0; i < j->n_events; i++)
		fprintf(stderr, "journey[%zu] = %s\n", i, j->events[i]->event_id);
	CHECK(j->n_events == sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < j->n_events; i++)
		CHECK(strcmp(j->events[i]->event_id, want[i]) == 0);
	CHECK(j->events[2]->kind_case == TOUCHPOINT__V1__EVENT__KIND_TOUCH);
	CHECK(strcmp(j->events[2]->touch->campaign, "spring") == 0);
	CHECK(j->events[6]->conversion->value == 10.5);
	/* One converting path (4 touches) and the null path after it (1 touch). */
	CHECK(j->n_paths == 2);
	CHECK(j->paths[0]->converting);
	CHECK(strcmp(j->paths[0]->conversion_event_id, "a-conv") == 0);
	CHECK(j->paths[0]->conversion_timestamp_us == 3000000);
	CHECK(j->paths[0]->value == 10.5);
	CHECK(j->paths[0]->n_channels == 4);
	CHECK(strcmp(j->paths[0]->channels[0], "search") == 0);
	CHECK(strcmp(j->paths[0]->channels[1], "social") == 0);
	CHECK(strcmp(j->paths[0]->channels[2], "email") == 0);
	CHECK(strcmp(j->paths[0]->channels[3], "display") == 0);
	CHECK(strcmp(j->paths[0]->touch_event_ids[1], "anon-t") == 0);
	CHECK(!j->paths[1]->converting);
	CHECK(j->paths[1]->n_channels == 1 && strcmp(j->paths[1]->channels[0], "search") == 0);
	touchpoint__v1__get_journey_response__free_unpacked(j, NULL);

	/* An id with an embedded NUL ("alice\0x") is not silently read as "alice". */
	{
		uint8_t buf[32] = { 0x0a, 7, 'a', 'l', 'i', 'c', 'e', 0, 'x' };

		CHECK(tpd_call_payload(s, M_JOURNEY, buf, 9, CALL_TIMEOUT, &rep) == 0);
		CHECK(rep->status->code == 3);
		CHECK(strstr(rep->status->message, "request.customer_id contains a NUL byte") !=
		      NULL);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
	}

	/* Unknown customer: NOT_FOUND naming the id. */
	jr.customer_id = (char *)"nobody";
	CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_TIMEOUT, &rep) == 0);
	CHECK(rep->status->code == 5);
	CHECK(strstr(rep->status->message, "nobody") != NULL);
	touchpoint__v1__reply__free_unpacked(rep, NULL);

	st = get_status(s);
	CHECK(st->events->touch == 5);
	CHECK(st->events->conversion == 1);
	CHECK(st->events->identify == 1);
	CHECK(st->events->alias == 1);
	CHECK(st->events->spend == 1);
	CHECK(st->events->total == 9);
	CHECK(st->duplicates == 0);
	CHECK(strcmp(st->version, TP_VERSION) == 0);
	touchpoint__v1__get_status_response__free_unpacked(st, NULL);
	evs_free(evs, n);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/* Several bad fields, bad UTF-8 and an embedded NUL: rejected whole, every violation named. */
static void
test_invalid(void)
{
	struct tpd d;
	nng_socket s;
	Touchpoint__V1__Event *evs[6];
	Touchpoint__V1__SendRequest req = TOUCHPOINT__V1__SEND_REQUEST__INIT;
	Touchpoint__V1__Reply *rep;
	char longch[71];
	uint8_t *buf, *p;
	size_t len, n = 0;

	memset(longch, 'x', 70);
	longch[70] = '\0';
	tpd_init(&d, NULL);
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	evs[n++] = ev_touch("ok-1", "bob", 1000, "search", NULL);
	evs[n++] = ev_touch("bad-1", "bob", 2000, longch, NULL);
	evs[n++] = ev_touch("bad-2", "bob", 3000, "email", "over\xc0\xafong");
	evs[n++] = ev_touch("bad-3", "bob", 4000, "NULHERE", NULL);
	evs[n++] = ev_conv("bad-4", "bob", -5, 1.0, "usd");
	evs[n++] = ev_alias("bad-5", "bob", 6000, "bob");
	req.events = evs;
	req.n_events = n;
	len = protobuf_c_message_get_packed_size(&req.base);
	CHECK((buf = malloc(len)) != NULL);
	protobuf_c_message_pack(&req.base, buf);
	/* protobuf-c cannot encode an embedded NUL: patch it into the wire bytes. */
	for (p = buf; p + 7 <= buf + len && memcmp(p, "NULHERE", 7) != 0; p++)
		;
	CHECK(p + 7 <= buf + len);
	p[3] = '\0';
	CHECK(tpd_call_payload(s, M_SEND, buf, len, CALL_TIMEOUT, &rep) == 0);
	for (size_t i = 0; i < rep->status->n_details; i++)
		fprintf(stderr, "violation %d %s: %s\n", rep->status->details[i]->index,
		        rep->status->details[i]->field, rep->status->details[i]->reason);
	CHECK(rep->status->code == 3);
	CHECK(strcmp(rep->status->message, "5 of 6 events are invalid") == 0);
	CHECK(has_violation(rep->status, 1, "events[1].touch.channel",
	                    "is 70 bytes, the limit is 64"));
	CHECK(has_violation(rep->status, 2, "events[2].touch.campaign", "UTF-8"));
	CHECK(has_violation(rep->status, 3, "events[3].touch.channel", "NUL"));
	CHECK(has_violation(rep->status, 4, "events[4].timestamp_us", "must be in"));
	CHECK(has_violation(rep->status, 4, "events[4].conversion.currency", "ISO 4217"));
	CHECK(has_violation(rep->status, 5, "events[5].alias.previous_id", "customer_id"));
	CHECK(rep->status->n_details == 6);
	CHECK(rep->payload.len == 0);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	free(buf);
	/* Atomic: the valid event of the batch was not stored either. */
	CHECK(stored_events(s) == 0);
	evs_free(evs, n);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/* Duplicates are acknowledged, counted and never stored twice. */
static void
test_duplicates(void)
{
	struct tpd d;
	nng_socket s;
	Touchpoint__V1__Event *evs[5];
	Touchpoint__V1__SendResponse *sr;
	Touchpoint__V1__GetStatusResponse *st;

	tpd_init(&d, NULL);
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	evs[0] = ev_touch("d-1", "carol", 1000, "search", NULL);
	evs[1] = ev_touch("d-2", "carol", 2000, "email", NULL);
	evs[2] = ev_conv("d-3", "carol", 3000, 2.0, NULL);
	evs[3] = ev_touch("d-4", "carol", 4000, "social", NULL);
	evs[4] = ev_touch("d-4", "carol", 4000, "social", NULL);
	sr = send_ok(s, evs, 3);
	CHECK(sr->accepted == 3 && sr->duplicates == 0 && sr->n_duplicate_indexes == 0);
	touchpoint__v1__send_response__free_unpacked(sr, NULL);
	sr = send_ok(s, evs, 5);
	CHECK(sr->accepted == 1);
	CHECK(sr->duplicates == 4);
	CHECK(sr->n_duplicate_indexes == 4);
	CHECK(sr->duplicate_indexes[0] == 0 && sr->duplicate_indexes[1] == 1 &&
	      sr->duplicate_indexes[2] == 2 && sr->duplicate_indexes[3] == 4);
	touchpoint__v1__send_response__free_unpacked(sr, NULL);
	st = get_status(s);
	CHECK(st->events->total == 4);
	CHECK(st->duplicates == 4);
	touchpoint__v1__get_status_response__free_unpacked(st, NULL);
	evs_free(evs, 5);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/* Past libtouchpoint's TP_MAX_MESSAGE (16 MiB), the most the daemon reads of a message. */
#define BEYOND_CLIENT_MAX ((16u << 20) + 4096)

/* Unknown methods, garbage, oversized messages and vanishing clients leave it serving. */
static void
test_errors(void)
{
	struct tpd d;
	nng_socket s;
	Touchpoint__V1__Reply *rep;
	Touchpoint__V1__Event *evs[11];
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x42 };
	uint8_t *big;
	int fd;

	tpd_init(&d, "max_message_bytes = 64K\nmax_batch_events = 10\n");
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_TIMEOUT);

	CHECK(tpd_call_payload(s, "/touchpoint.v1.Ingest/Nope", NULL, 0, 0, &rep) == 0);
	CHECK(rep->status->code == 12);
	CHECK(strstr(rep->status->message, "/touchpoint.v1.Ingest/Nope") != NULL);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	CHECK(tpd_call_payload(s, "/foo.Bar/Baz", NULL, 0, 0, &rep) == 0);
	CHECK(rep->status->code == 12);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	CHECK(tpd_call_payload(s, "nonsense", NULL, 0, 0, &rep) == 0);
	CHECK(rep->status->code == 12);
	touchpoint__v1__reply__free_unpacked(rep, NULL);

	CHECK(tpd_call_payload(s, M_SEND, junk, sizeof(junk), 0, &rep) == 0);
	CHECK(rep->status->code == 3);
	CHECK(strstr(rep->status->message, "payload: cannot parse as touchpoint.v1.SendRequest") !=
	      NULL);
	touchpoint__v1__reply__free_unpacked(rep, NULL);

	CHECK(tpd_call_raw(s, junk, sizeof(junk), &rep) == 0);
	CHECK(rep->status->code == 3);
	CHECK(strcmp(rep->status->message, "envelope: cannot parse") == 0);
	touchpoint__v1__reply__free_unpacked(rep, NULL);

	/* A batch over max_batch_events names the limit. */
	for (size_t i = 0; i < 11; i++)
		evs[i] = ev_touch("same", "dave", 1000, "search", NULL);
	rep = send_batch(s, evs, 11);
	CHECK(rep->status->code == 3);
	CHECK(strstr(rep->status->message, "max_batch_events") != NULL);
	CHECK(strstr(rep->status->message, "10") != NULL);
	/* ... with the marker on which libtouchpoint halves the batch instead of dropping it */
	CHECK(rep->status->n_details == 1 && rep->status->details[0]->index == -1 &&
	      strcmp(rep->status->details[0]->field, "events") == 0);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	evs_free(evs, 11);

	/*
	 * Over max_message_bytes (64K) but within what a client may send (TP_MAX_MESSAGE):
	 * answered, not dropped, with the marker libtouchpoint halves its batches on and the
	 * caller's request id, read off the envelope without unpacking it.
	 */
	{
		Touchpoint__V1__Envelope env = TOUCHPOINT__V1__ENVELOPE__INIT;
		size_t len;

		CHECK((big = calloc(1, 200000)) != NULL);
		env.method = (char *)M_SEND;
		env.request_id = 91;
		env.payload.data = big + 100000;
		env.payload.len = 90000;
		len = touchpoint__v1__envelope__pack(&env, big);
		CHECK(len > 90000 && len < 100000);
		fd = tpd_raw_connect(d.url);
		CHECK(tpd_raw_send(fd, 1, big, len) == 0);
		CHECK(tpd_raw_recv(fd, &rep) == 0);
		CHECK(rep->request_id == 91 && rep->status->code == 8);
		CHECK(strstr(rep->status->message, "over max_message_bytes (65536)") != NULL);
		CHECK(rep->status->n_details == 1 && rep->status->details[0]->index == -1 &&
		      strcmp(rep->status->details[0]->field, "envelope") == 0);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
		/* Bytes that are no envelope get the same answer, to request id 0. */
		memset(big, 0, 100000);
		CHECK(tpd_raw_send(fd, 2, big, 100000) == 0);
		CHECK(tpd_raw_recv(fd, &rep) == 0);
		CHECK(rep->request_id == 0 && rep->status->code == 8);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
		free(big);
		close(fd);
	}
	/* Over TP_MAX_MESSAGE: the daemon drops the pipe (EOF for us) and keeps serving. */
	fd = tpd_raw_connect(d.url);
	CHECK((big = calloc(1, BEYOND_CLIENT_MAX)) != NULL);
	if (tpd_raw_send(fd, 1, big, BEYOND_CLIENT_MAX) == 0)
		CHECK(tpd_raw_recv(fd, &rep) == -1);
	free(big);
	close(fd);
	CHECK(stored_events(s) == 0);

	/* The raw peer works: a GetStatus over it gets its reply. */
	{
		Touchpoint__V1__Envelope env = TOUCHPOINT__V1__ENVELOPE__INIT;
		uint8_t buf[64];
		size_t len;

		env.method = (char *)M_STATUS;
		env.request_id = 77;
		len = touchpoint__v1__envelope__pack(&env, buf);
		fd = tpd_raw_connect(d.url);
		CHECK(tpd_raw_send(fd, 5, buf, len) == 0);
		CHECK(tpd_raw_recv(fd, &rep) == 0);
		CHECK(rep->request_id == 77 && rep->status->code == 0);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
		close(fd);
	}

	/* Clients that send a request and vanish before the reply. */
	for (int i = 0; i < 20; i++) {
		Touchpoint__V1__Event *e = ev_touch("vanish", "erin", 1000, "search", NULL);
		Touchpoint__V1__SendRequest req = TOUCHPOINT__V1__SEND_REQUEST__INIT;
		Touchpoint__V1__Envelope env = TOUCHPOINT__V1__ENVELOPE__INIT;
		uint8_t *buf;
		size_t len;

		req.events = &e;
		req.n_events = 1;
		env.method = (char *)(i % 2 ? M_SEND : M_ATTRIBUTE);
		if (i % 2) {
			env.payload.len = protobuf_c_message_get_packed_size(&req.base);
			CHECK((env.payload.data = malloc(env.payload.len)) != NULL);
			protobuf_c_message_pack(&req.base, env.payload.data);
		}
		len = touchpoint__v1__envelope__get_packed_size(&env);
		CHECK((buf = malloc(len)) != NULL);
		touchpoint__v1__envelope__pack(&env, buf);
		fd = tpd_raw_connect(d.url);
		CHECK(tpd_raw_send(fd, (uint32_t)i, buf, len) == 0);
		if (i % 4 == 1)
			sleep_ms(1);
		close(fd);
		free(buf);
		free(env.payload.data);
		ev_free(e);
	}
	/* Still serving, and the vanished clients' event (one id) is there at most once. */
	CHECK(stored_events(s) <= 1);

	/* A journey bigger than max_message_bytes: RESOURCE_EXHAUSTED, not a lost reply. */
	{
		static char ids[400][16];
		char campaign[121];
		Touchpoint__V1__GetJourneyRequest jr = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__INIT;
		Touchpoint__V1__SendResponse *sr;

		memset(campaign, 'c', 120);
		campaign[120] = '\0';
		for (int b = 0; b < 40; b++) {
			for (int i = 0; i < 10; i++) {
				snprintf(ids[b * 10 + i], sizeof(ids[0]), "big-%d", b * 10 + i);
				evs[i] = ev_touch(ids[b * 10 + i], "frank", (b * 10 + i) * 1000,
				                  "search", campaign);
			}
			sr = send_ok(s, evs, 10);
			CHECK(sr->accepted == 10);
			touchpoint__v1__send_response__free_unpacked(sr, NULL);
			evs_free(evs, 10);
		}
		jr.customer_id = (char *)"frank";
		CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_TIMEOUT, &rep) == 0);
		CHECK(rep->status->code == 8);
		CHECK(strstr(rep->status->message, "max_message_bytes") != NULL);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
	}
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/* -n: a bad configuration exits 78 naming the line; a good one prints "configuration OK". */
static void
test_check(void)
{
	struct tpd d;
	char out[4096], path[400];
	FILE *f;
	char *args[4];

	tpd_init(&d, "queue_depth = 16\nsync = full\ndefault_lookback = 7d\n");
	args[0] = (char *)"-n";
	args[1] = (char *)"-f";
	args[2] = d.conf;
	args[3] = NULL;
	CHECK(tpd_run(args, out, sizeof(out)) == 0);
	CHECK(strstr(out, "configuration OK") != NULL);

	snprintf(path, sizeof(path), "%s/bad.conf", d.dir);
	CHECK((f = fopen(path, "w")) != NULL);
	fprintf(f, "# comment\ncontexts = 8\nfoo = 1\n");
	CHECK(fclose(f) == 0);
	args[2] = path;
	CHECK(tpd_run(args, out, sizeof(out)) == 78);
	fprintf(stderr, "bad.conf: %s", out);
	CHECK(strstr(out, "bad.conf:3: unknown key \"foo\"") != NULL);

	CHECK((f = fopen(path, "w")) != NULL);
	fprintf(f, "map_size = 12Q\n");
	CHECK(fclose(f) == 0);
	CHECK(tpd_run(args, out, sizeof(out)) == 78);
	CHECK(strstr(out, "bad.conf:1:") != NULL && strstr(out, "map_size") != NULL);

	snprintf(path, sizeof(path), "%s/missing.conf", d.dir);
	CHECK(tpd_run(args, out, sizeof(out)) == 78);
	tpd_cleanup(&d);
}

/* ---- concurrent importers, for the SIGTERM and crash cases */

#define IMP_BATCH 200

struct importer {
	const char *url;
	int id;
	int nbatches;
	atomic_int *acked_batches; /* shared progress */
	int forced_dup_every;      /* resend every Nth batch once more (0: never) */
	uint64_t accepted, duplicates_seen;
	int stop_on_error; /* SIGTERM case: stop at the first failure */
	int acked;         /* batches acknowledged */
};

static void *
importer_main(void *arg)
{
	struct importer *im = arg;
	nng_socket s = tpd_connect(im->url, 3000);
	Touchpoint__V1__Event *evs[IMP_BATCH];
	char(*ids)[32] = calloc(IMP_BATCH, 32);
	char custs[50][32];

	CHECK(ids != NULL);
	for (int c = 0; c < 50; c++)
		snprintf(custs[c], sizeof(custs[c]), "imp%d-c%d", im->id, c);
	for (int b = 0; b < im->nbatches; b++) {
		int sends = im->forced_dup_every > 0 && b % im->forced_dup_every == 0 ? 2 : 1,
		    fails = 0;
		time_t started = time(NULL);

		for (int i = 0; i < IMP_BATCH; i++) {
			snprintf(ids[i], 32, "imp%d-%d-%d", im->id, b, i);
			evs[i] = ev_touch(ids[i], custs[i % 50], (int64_t)b * 1000000 + i, "search",
			                  NULL);
		}
		while (sends > 0) {
			Touchpoint__V1__SendRequest req = TOUCHPOINT__V1__SEND_REQUEST__INIT;
			Touchpoint__V1__Reply *rep = NULL;
			int rv;

			req.events = evs;
			req.n_events = IMP_BATCH;
			rv = tpd_call(s, M_SEND, &req.base, 3000, &rep);
			if (rv == 0 && rep->status->code == 0) {
				fails = 0;
				Touchpoint__V1__SendResponse *sr =
				    tpd_payload(rep, &touchpoint__v1__send_response__descriptor);

				CHECK(sr->accepted + sr->duplicates == IMP_BATCH);
				im->accepted += sr->accepted;
				im->duplicates_seen += sr->duplicates;
				touchpoint__v1__send_response__free_unpacked(sr, NULL);
				sends--;
			} else {
				if (rep != NULL)
					CHECK(rep->status->code == 14 || rep->status->code == 8 ||
					      rep->status->code == 4);
				if (im->stop_on_error) {
					if (rep != NULL)
						touchpoint__v1__reply__free_unpacked(rep, NULL);
					evs_free(evs, IMP_BATCH);
					goto out;
				}
				/*
				 * Retry, but a daemon that never acknowledges again fails the test.
				 * Once in CI (1 run in many), a socket whose daemon was killed
				 * never connected to the next one (sends timed out for 60 s with
				 * that daemon idle): after 5 failures in a row it is opened again,
				 * so this test proves the store, not NNG's reconnection (see the
				 * session 13 note).
				 */
				if (++fails % 5 == 0) {
					nng_close(s);
					s = tpd_connect(im->url, 3000);
				}
				if (time(NULL) - started > 60) {
					fprintf(stderr,
					        "importer %d: batch %d never acknowledged: rv=%d "
					        "code=%d\n",
					        im->id, b, rv,
					        rep != NULL ? rep->status->code : -1);
					exit(1);
				}
				sleep_ms(20);
			}
			if (rep != NULL)
				touchpoint__v1__reply__free_unpacked(rep, NULL);
		}
		evs_free(evs, IMP_BATCH);
		im->acked++;
		atomic_fetch_add(im->acked_batches, 1);
	}
out:
	free(ids);
	nng_close(s);
	return NULL;
}

/* SIGTERM during ingest: exit 0, and every acknowledged event is there after a restart. */
static void
test_sigterm(void)
{
	struct tpd d;
	struct importer im = { 0 };
	atomic_int acked = 0;
	pthread_t th;
	nng_socket s;
	uint64_t total;

	tpd_init(&d, NULL);
	tpd_start(&d);
	/* SIGHUP first: a reload keeps it serving. */
	CHECK(kill(d.pid, SIGHUP) == 0);
	im.url = d.url;
	im.id = 0;
	im.nbatches = 1000000;
	im.acked_batches = &acked;
	im.stop_on_error = 1;
	CHECK(pthread_create(&th, NULL, importer_main, &im) == 0);
	while (atomic_load(&acked) < 20)
		sleep_ms(10);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	CHECK(pthread_join(th, NULL) == 0);
	fprintf(stderr, "acknowledged batches before SIGTERM: %d\n", im.acked);
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	total = stored_events(s);
	fprintf(stderr, "stored after restart: %llu\n", (unsigned long long)total);
	/* Every acknowledged event; at most the one batch in flight besides. */
	CHECK(total >= (uint64_t)im.acked * IMP_BATCH);
	CHECK(total <= (uint64_t)(im.acked + 1) * IMP_BATCH);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/* THE CRASH TEST: SIGKILL mid-import, restart, clients retry: nothing lost, nothing twice. */
static void
test_crash(void)
{
	enum { CLIENTS = 4, BATCHES = 40 };
	struct tpd d;
	struct importer im[CLIENTS];
	pthread_t th[CLIENTS];
	atomic_int acked = 0;
	nng_socket s;
	Touchpoint__V1__GetStatusResponse *st;
	uint64_t dups_seen = 0;

	tpd_init(&d, NULL);
	tpd_start(&d);
	for (int i = 0; i < CLIENTS; i++) {
		memset(&im[i], 0, sizeof(im[i]));
		im[i].url = d.url;
		im[i].id = i;
		im[i].nbatches = BATCHES;
		im[i].acked_batches = &acked;
		im[i].forced_dup_every = 10; /* at-least-once senders resend now and then */
		CHECK(pthread_create(&th[i], NULL, importer_main, &im[i]) == 0);
	}
	while (atomic_load(&acked) < CLIENTS * BATCHES / 3)
		sleep_ms(5);
	CHECK(tpd_stop(&d, SIGKILL) == 128 + SIGKILL);
	fprintf(stderr, "killed after %d acknowledged batches\n", atomic_load(&acked));
	sleep_ms(200);
	tpd_start(&d);
	for (int i = 0; i < CLIENTS; i++) {
		CHECK(pthread_join(th[i], NULL) == 0);
		CHECK(im[i].acked == BATCHES);
		dups_seen += im[i].duplicates_seen;
	}
	s = tpd_connect(d.url, CALL_TIMEOUT);
	st = get_status(s);
	fprintf(stderr, "stored %llu duplicates %llu (seen by clients %llu)\n",
	        (unsigned long long)st->events->total, (unsigned long long)st->duplicates,
	        (unsigned long long)dups_seen);
	CHECK(st->events->total == (uint64_t)CLIENTS * BATCHES * IMP_BATCH);
	CHECK(st->events->touch == st->events->total);
	CHECK(st->duplicates > 0);
	CHECK(st->duplicates >= dups_seen);
	touchpoint__v1__get_status_response__free_unpacked(st, NULL);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/* ---- attribution over the wire */

static Touchpoint__V1__Reply *
attribute(nng_socket s, const char *const *models, size_t nmodels, uint32_t timeout_ms)
{
	Touchpoint__V1__AttributeRequest req = TOUCHPOINT__V1__ATTRIBUTE_REQUEST__INIT;
	Touchpoint__V1__ModelSpec specs[8], *sp[8];
	Touchpoint__V1__Window w = TOUCHPOINT__V1__WINDOW__INIT;
	Touchpoint__V1__Reply *rep = NULL;

	for (size_t i = 0; i < nmodels; i++) {
		touchpoint__v1__model_spec__init(&specs[i]);
		specs[i].model = (char *)models[i];
		sp[i] = &specs[i];
	}
	w.lookback_case = TOUCHPOINT__V1__WINDOW__LOOKBACK_LOOKBACK_S;
	w.lookback_s = 0;
	req.models = sp;
	req.n_models = nmodels;
	req.window = &w;
	CHECK(tpd_call(s, M_ATTRIBUTE, &req.base, timeout_ms, &rep) == 0);
	return rep;
}

static const Touchpoint__V1__ChannelCredit *
credit(const Touchpoint__V1__ModelResult *m, const char *channel)
{
	for (size_t i = 0; i < m->n_channels; i++)
		if (strcmp(m->channels[i]->channel, channel) == 0)
			return m->channels[i];
	return NULL;
}

static int
near(double a, double b)
{
	return a - b < 1e-9 && b - a < 1e-9;
}

/* Hand-computed last_touch and linear credits, an unknown model, the path table. */
static void
test_attribute(void)
{
	struct tpd d;
	nng_socket s;
	Touchpoint__V1__Event *evs[8];
	Touchpoint__V1__SendResponse *sr;
	Touchpoint__V1__AttributeResponse *ar;
	Touchpoint__V1__PathsRequest pr = TOUCHPOINT__V1__PATHS_REQUEST__INIT;
	Touchpoint__V1__PathsResponse *paths;
	Touchpoint__V1__Reply *rep;
	const Touchpoint__V1__ModelResult *lt = NULL, *lin = NULL;
	static const char *const models[] = { "last_touch", "linear" };
	static const char *const bad[] = { "last_touch", "astrology" };
	size_t n = 0;

	tpd_init(&d, NULL);
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	/* u1: search > email > conv(100); u2: search > conv(50); u3: email (null path). */
	evs[n++] = ev_touch("u1-1", "u1", 1000000, "search", NULL);
	evs[n++] = ev_touch("u1-2", "u1", 2000000, "email", NULL);
	evs[n++] = ev_conv("u1-c", "u1", 3000000, 100.0, NULL);
	evs[n++] = ev_touch("u2-1", "u2", 1000000, "search", NULL);
	evs[n++] = ev_conv("u2-c", "u2", 2000000, 50.0, NULL);
	evs[n++] = ev_touch("u3-1", "u3", 1000000, "email", NULL);
	sr = send_ok(s, evs, n);
	CHECK(sr->accepted == n);
	touchpoint__v1__send_response__free_unpacked(sr, NULL);

	rep = attribute(s, models, 2, 0);
	ar = tpd_payload(rep, &touchpoint__v1__attribute_response__descriptor);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	CHECK(ar->totals != NULL);
	CHECK(near(ar->totals->conversions, 2) && near(ar->totals->value, 150));
	CHECK(ar->totals->converting_paths == 2 && ar->totals->null_paths == 1);
	for (size_t i = 0; i < ar->n_models; i++) {
		if (strcmp(ar->models[i]->model, "last_touch") == 0)
			lt = ar->models[i];
		if (strcmp(ar->models[i]->model, "linear") == 0)
			lin = ar->models[i];
	}
	CHECK(lt != NULL && lin != NULL);
	/* last_touch: u1 -> email (1, 100), u2 -> search (1, 50). */
	CHECK(near(credit(lt, "email")->conversions, 1) && near(credit(lt, "email")->value, 100));
	CHECK(near(credit(lt, "search")->conversions, 1) && near(credit(lt, "search")->value, 50));
	/* linear: u1 half each (0.5, 50), u2 all to search: search 1.5/100, email 0.5/50. */
	CHECK(near(credit(lin, "search")->conversions, 1.5));
	CHECK(near(credit(lin, "search")->value, 100));
	CHECK(near(credit(lin, "email")->conversions, 0.5));
	CHECK(near(credit(lin, "email")->value, 50));
	touchpoint__v1__attribute_response__free_unpacked(ar, NULL);

	rep = attribute(s, bad, 2, 0);
	CHECK(rep->status->code == 3);
	CHECK(strstr(rep->status->message, "astrology") != NULL);
	touchpoint__v1__reply__free_unpacked(rep, NULL);

	CHECK(tpd_call(s, M_PATHS, &pr.base, CALL_TIMEOUT, &rep) == 0);
	paths = tpd_payload(rep, &touchpoint__v1__paths_response__descriptor);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	CHECK(paths->n_paths == 3);
	for (size_t i = 0; i < paths->n_paths; i++) {
		const Touchpoint__V1__PathRow *r = paths->paths[i];

		if (r->n_channels == 2) {
			CHECK(strcmp(r->channels[0], "search") == 0);
			CHECK(strcmp(r->channels[1], "email") == 0);
			CHECK(near(r->total_conversions, 1) &&
			      near(r->total_conversion_value, 100));
		} else {
			CHECK(r->n_channels == 1);
			if (strcmp(r->channels[0], "email") == 0)
				CHECK(near(r->total_null, 1) && near(r->total_conversions, 0));
			else
				CHECK(near(r->total_conversions, 1) &&
				      near(r->total_conversion_value, 50));
		}
	}
	/* Paged one row at a time: the same rows in the same order, then the snapshot is gone. */
	pr.limit = 1;
	for (size_t i = 0; i < 3; i++) {
		Touchpoint__V1__PathsResponse *pg;

		CHECK(tpd_call(s, M_PATHS, &pr.base, CALL_TIMEOUT, &rep) == 0);
		pg = tpd_payload(rep, &touchpoint__v1__paths_response__descriptor);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
		CHECK(pg->n_paths == 1 && pg->distinct_paths == 3);
		CHECK(pg->paths[0]->n_channels == paths->paths[i]->n_channels);
		CHECK(strcmp(pg->paths[0]->channels[0], paths->paths[i]->channels[0]) == 0);
		CHECK(pg->paths[0]->total_null == paths->paths[i]->total_null);
		CHECK(pg->next_offset == (i < 2 ? i + 1 : 0));
		CHECK(i == 2 || pg->snapshot != 0);
		pr.offset = pg->next_offset;
		if (i < 2)
			pr.snapshot = pg->snapshot;
		touchpoint__v1__paths_response__free_unpacked(pg, NULL);
	}
	/* The last page dropped the table: asking it again is FAILED_PRECONDITION. */
	pr.offset = 2;
	CHECK(tpd_call(s, M_PATHS, &pr.base, CALL_TIMEOUT, &rep) == 0);
	CHECK(rep->status->code == 9 && strstr(rep->status->message, "snapshot") != NULL);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	/*
	 * Five paged reads at once (the daemon keeps four tables): the four latest finish,
	 * their pages taken in turn; the first, used least recently, gave way to the fifth.
	 */
	uint64_t snap[5];

	for (size_t k = 0; k < 5; k++) {
		Touchpoint__V1__PathsResponse *pg;

		pr.offset = 0;
		pr.snapshot = 0;
		CHECK(tpd_call(s, M_PATHS, &pr.base, CALL_TIMEOUT, &rep) == 0);
		pg = tpd_payload(rep, &touchpoint__v1__paths_response__descriptor);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
		CHECK(pg->n_paths == 1 && pg->next_offset == 1 && pg->snapshot != 0);
		snap[k] = pg->snapshot;
		for (size_t l = 0; l < k; l++)
			CHECK(snap[l] != snap[k]);
		touchpoint__v1__paths_response__free_unpacked(pg, NULL);
	}
	for (size_t i = 1; i < 3; i++) {
		for (size_t k = 1; k < 5; k++) {
			Touchpoint__V1__PathsResponse *pg;

			pr.offset = i;
			pr.snapshot = snap[k];
			CHECK(tpd_call(s, M_PATHS, &pr.base, CALL_TIMEOUT, &rep) == 0);
			pg = tpd_payload(rep, &touchpoint__v1__paths_response__descriptor);
			touchpoint__v1__reply__free_unpacked(rep, NULL);
			CHECK(pg->n_paths == 1 && pg->next_offset == (i < 2 ? i + 1 : 0));
			CHECK(strcmp(pg->paths[0]->channels[0], paths->paths[i]->channels[0]) == 0);
			CHECK(pg->paths[0]->total_null == paths->paths[i]->total_null);
			touchpoint__v1__paths_response__free_unpacked(pg, NULL);
		}
	}
	pr.offset = 1;
	pr.snapshot = snap[0];
	CHECK(tpd_call(s, M_PATHS, &pr.base, CALL_TIMEOUT, &rep) == 0);
	CHECK(rep->status->code == 9 && strstr(rep->status->message, "4 newer") != NULL);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	touchpoint__v1__paths_response__free_unpacked(paths, NULL);
	evs_free(evs, n);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/* timeout_ms = 1 on an Attribute over some data: DEADLINE_EXCEEDED or OK, never a hang. */
static void
test_deadline(void)
{
	struct tpd d;
	nng_socket s;
	static char ids[20000][16], custs[2000][16];
	Touchpoint__V1__Event *evs[1000];
	static const char *const models[] = { "linear", "markov" };
	static const char *const channels[] = { "search", "email", "social", "display" };
	Touchpoint__V1__Reply *rep;

	tpd_init(&d, NULL);
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	for (int c = 0; c < 2000; c++)
		snprintf(custs[c], sizeof(custs[c]), "cust%d", c);
	for (int b = 0; b < 20; b++) {
		Touchpoint__V1__SendResponse *sr;

		for (int i = 0; i < 1000; i++) {
			int k = b * 1000 + i;

			snprintf(ids[k], sizeof(ids[k]), "dl-%d", k);
			if (k % 5 == 4)
				evs[i] =
				    ev_conv(ids[k], custs[k % 2000], (int64_t)k * 1000, 1, NULL);
			else
				evs[i] = ev_touch(ids[k], custs[k % 2000], (int64_t)k * 1000,
				                  channels[k % 4], NULL);
		}
		sr = send_ok(s, evs, 1000);
		CHECK(sr->accepted == 1000);
		touchpoint__v1__send_response__free_unpacked(sr, NULL);
		evs_free(evs, 1000);
	}
	for (int i = 0; i < 5; i++) {
		rep = attribute(s, models, 2, 1);
		fprintf(stderr, "attribute with timeout_ms=1: code %d %s\n", rep->status->code,
		        rep->status->message);
		CHECK(rep->status->code == 4 || rep->status->code == 0);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
	}
	/* And it still answers a query without a deadline. */
	rep = attribute(s, models, 2, 0);
	CHECK(rep->status->code == 0);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

struct one_send {
	const char *url;
	const char *id;
	atomic_int code;
};

static void *
one_send_main(void *arg)
{
	struct one_send *o = arg;
	nng_socket s = tpd_connect(o->url, CALL_TIMEOUT);
	Touchpoint__V1__Event *e = ev_touch(o->id, "gina", 1000, "search", NULL);
	Touchpoint__V1__Reply *rep = send_batch(s, &e, 1);

	atomic_store(&o->code, rep->status->code);
	if (rep->status->code == 8)
		CHECK(strcmp(rep->status->message, "ingest queue full, retry") == 0);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	ev_free(e);
	nng_close(s);
	return NULL;
}

/*
 * SIGTERM while a batch waits for its commit (the writer stalled by the test hook): the
 * daemon finishes it and the client gets its reply, then it exits 0 (the reply was lost
 * with the listener's connections before, and the client waited out its deadline).
 */
static void
test_term_inflight(void)
{
	struct tpd d;
	struct one_send o = { 0 };
	pthread_t th;
	char stall[400];
	FILE *f;
	nng_socket s;
	int status;

	tpd_init(&d, NULL);
	snprintf(stall, sizeof(stall), "%s/stall", d.dir);
	CHECK(setenv("TOUCHPOINTD_TEST_STALL_WRITER", stall, 1) == 0);
	CHECK((f = fopen(stall, "w")) != NULL);
	CHECK(fclose(f) == 0);
	tpd_start(&d);
	o.url = d.url;
	o.id = "term-1";
	atomic_init(&o.code, -1);
	CHECK(pthread_create(&th, NULL, one_send_main, &o) == 0);
	sleep_ms(300); /* the batch is queued behind the stalled writer */
	CHECK(atomic_load(&o.code) == -1);
	CHECK(kill(d.pid, SIGTERM) == 0);
	sleep_ms(300);
	CHECK(unlink(stall) == 0);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK(atomic_load(&o.code) == 0);
	CHECK(waitpid(d.pid, &status, 0) == d.pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	d.pid = 0;
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	CHECK(stored_events(s) == 1);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/* A stalled writer (the test hook) with queue_depth = 1: the second batch is refused. */
static void
test_queue(void)
{
	struct tpd d;
	struct one_send o[2];
	pthread_t th[2];
	char stall[400];
	FILE *f;
	nng_socket s;

	tpd_init(&d, "queue_depth = 1\n");
	snprintf(stall, sizeof(stall), "%s/stall", d.dir);
	CHECK(setenv("TOUCHPOINTD_TEST_STALL_WRITER", stall, 1) == 0);
	CHECK((f = fopen(stall, "w")) != NULL);
	CHECK(fclose(f) == 0);
	tpd_start(&d);
	for (int i = 0; i < 2; i++) {
		o[i].url = d.url;
		o[i].id = i == 0 ? "q-1" : "q-2";
		atomic_init(&o[i].code, -1);
		CHECK(pthread_create(&th[i], NULL, one_send_main, &o[i]) == 0);
	}
	/* Whichever arrives second finds the queue full; it is answered at once. */
	for (int waited = 0; atomic_load(&o[0].code) != 8 && atomic_load(&o[1].code) != 8;
	     waited++) {
		CHECK(waited < 3000);
		sleep_ms(10);
	}
	CHECK(unlink(stall) == 0);
	for (int i = 0; i < 2; i++)
		CHECK(pthread_join(th[i], NULL) == 0);
	CHECK((o[0].code == 0 && o[1].code == 8) || (o[0].code == 8 && o[1].code == 0));
	s = tpd_connect(d.url, CALL_TIMEOUT);
	CHECK(stored_events(s) == 1);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

struct one_journey {
	const char *url;
	atomic_int code;
};

static void *
one_journey_main(void *arg)
{
	struct one_journey *o = arg;
	nng_socket s = tpd_connect(o->url, CALL_TIMEOUT);
	Touchpoint__V1__GetJourneyRequest jr = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__INIT;
	Touchpoint__V1__Reply *rep = NULL;

	jr.customer_id = (char *)"gina";
	CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_TIMEOUT, &rep) == 0);
	atomic_store(&o->code, rep->status->code);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	nng_close(s);
	return NULL;
}

/*
 * Status is answered on NNG's thread, never queued: with every query thread held (the
 * test hook stalls them, as whale journeys would) it still answers, and the journey
 * queued before it is answered once the threads go on. Status waited behind journeys
 * before (9.8 s behind four of 350 k events).
 */
static void
test_status_inline(void)
{
	struct tpd d;
	struct one_journey o;
	Touchpoint__V1__Event *e;
	pthread_t th;
	char stall[400];
	FILE *f;
	nng_socket s;

	tpd_init(&d, NULL);
	snprintf(stall, sizeof(stall), "%s/stall", d.dir);
	CHECK(setenv("TOUCHPOINTD_TEST_STALL_QUERIES", stall, 1) == 0);
	CHECK((f = fopen(stall, "w")) != NULL);
	CHECK(fclose(f) == 0);
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	e = ev_touch("inline-1", "gina", 1000, "search", NULL);
	touchpoint__v1__send_response__free_unpacked(send_ok(s, &e, 1), NULL);
	ev_free(e);
	o.url = d.url;
	atomic_init(&o.code, -1);
	CHECK(pthread_create(&th, NULL, one_journey_main, &o) == 0);
	sleep_ms(300);
	CHECK(atomic_load(&o.code) == -1); /* queued behind the stalled threads */
	CHECK(stored_events(s) == 1);
	CHECK(atomic_load(&o.code) == -1);
	CHECK(unlink(stall) == 0);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK(atomic_load(&o.code) == 0);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/*
 * A paged read given up halfway: its table is dropped once idle (a test hook shortens the
 * 10 minutes to 1.5 s) by the daemon's own tick, with no request to prompt it — it used to
 * stay until the next paged query, for days on a quiet daemon.
 */
static void
test_paged_idle(void)
{
	struct tpd d;
	nng_socket s;
	Touchpoint__V1__Event *evs[3];
	Touchpoint__V1__PathsRequest pr = TOUCHPOINT__V1__PATHS_REQUEST__INIT;
	Touchpoint__V1__PathsResponse *pg;
	Touchpoint__V1__Reply *rep;
	char logname[400], buf[8192];
	int saved, fd, i;
	size_t n = 0;
	ssize_t got;
	FILE *f;

	tpd_init(&d, NULL);
	CHECK(setenv("TOUCHPOINTD_TEST_PAGE_IDLE_MS", "1500", 1) == 0);
	/* The daemon's log into a file of the test's: its stderr while it starts. */
	snprintf(logname, sizeof(logname), "%s/daemon.log", d.dir);
	CHECK((fd = open(logname, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
	CHECK((saved = dup(STDERR_FILENO)) >= 0);
	CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
	tpd_start(&d);
	CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
	CHECK(close(saved) == 0 && close(fd) == 0);
	CHECK(unsetenv("TOUCHPOINTD_TEST_PAGE_IDLE_MS") == 0);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	evs[n++] = ev_touch("pi-1", "p1", 1000000, "search", NULL);
	evs[n++] = ev_touch("pi-2", "p2", 1000000, "email", NULL);
	evs[n++] = ev_touch("pi-3", "p3", 1000000, "social", NULL);
	touchpoint__v1__send_response__free_unpacked(send_ok(s, evs, n), NULL);
	pr.limit = 1;
	CHECK(tpd_call(s, M_PATHS, &pr.base, CALL_TIMEOUT, &rep) == 0);
	pg = tpd_payload(rep, &touchpoint__v1__paths_response__descriptor);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	CHECK(pg->n_paths == 1 && pg->next_offset == 1 && pg->snapshot != 0);
	pr.snapshot = pg->snapshot;
	touchpoint__v1__paths_response__free_unpacked(pg, NULL);
	/* No request meanwhile: the tick (every second) finds the table idle past 1.5 s. */
	for (i = 0; i < 40; i++) {
		sleep_ms(250);
		CHECK((f = fopen(logname, "r")) != NULL);
		got = (ssize_t)fread(buf, 1, sizeof(buf) - 1, f);
		CHECK(fclose(f) == 0);
		buf[got > 0 ? got : 0] = '\0';
		if (strstr(buf, "dropped, idle") != NULL)
			break;
	}
	CHECK(i >= 5 && i < 40); /* not before 1.5 s, and within 10 s */
	pr.offset = 1;
	CHECK(tpd_call(s, M_PATHS, &pr.base, CALL_TIMEOUT, &rep) == 0);
	CHECK(rep->status->code == 9);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	for (i = 0; i < (int)n; i++)
		ev_free(evs[i]);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/* GetJourney in pages (offset): a journey larger than a reply of a 16K daemon. */
static void
test_journey_pages(void)
{
	struct tpd d;
	nng_socket s;
	Touchpoint__V1__Event *evs[200];
	Touchpoint__V1__GetJourneyRequest jr = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__INIT;
	Touchpoint__V1__GetJourneyResponse *j;
	Touchpoint__V1__Reply *rep;
	char id[32], ids[200][16]; /* ev_touch keeps the pointer */
	size_t b, i, seen = 0, pages = 0;
	uint64_t asof;

	tpd_init(&d, "max_message_bytes = 16K\n");
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	for (b = 0; b < 3; b++) {
		for (i = 0; i < 200; i++) {
			snprintf(ids[i], sizeof(ids[i]), "page-%03zu", b * 200 + i);
			evs[i] = ev_touch(ids[i], "pager", 1000000 * (int64_t)(b * 200 + i + 1),
			                  i % 2 ? "email" : "search", NULL);
		}
		touchpoint__v1__send_response__free_unpacked(send_ok(s, evs, 200), NULL);
		evs_free(evs, 200);
	}
	jr.customer_id = (char *)"pager";
	jr.lookback_case = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__LOOKBACK_LOOKBACK_S;
	jr.lookback_s = 1; /* a null path of one touch: the paths fit in the first page */
	/* Without paging: too large, as before. */
	CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_TIMEOUT, &rep) == 0);
	CHECK(rep->status->code == 8);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	jr.paging_case = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__PAGING_OFFSET;
	while (seen < 600) {
		jr.offset = seen;
		CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_TIMEOUT, &rep) == 0);
		j = tpd_payload(rep, &touchpoint__v1__get_journey_response__descriptor);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
		CHECK(j->total_events == 600 && j->offset == seen);
		CHECK(j->n_events > 0 && j->n_events < 600);
		CHECK(j->n_paths == (pages == 0 ? 1u : 0u));
		for (i = 0; i < j->n_events; i++) {
			snprintf(id, sizeof(id), "page-%03zu", seen + i);
			CHECK(strcmp(j->events[i]->event_id, id) == 0);
		}
		seen += j->n_events;
		pages++;
		touchpoint__v1__get_journey_response__free_unpacked(j, NULL);
	}
	CHECK(seen == 600 && pages >= 2);
	jr.offset = 600;
	CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_TIMEOUT, &rep) == 0);
	CHECK(rep->status->code == 11 && strstr(rep->status->message, "offset") != NULL);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	/* Unlimited lookback: a null path of all 600 touches, which the first page holds whole. */
	jr.lookback_s = 0;
	jr.offset = 0;
	CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_TIMEOUT, &rep) == 0);
	j = tpd_payload(rep, &touchpoint__v1__get_journey_response__descriptor);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	CHECK(j->n_paths == 1 && j->paths[0]->n_touch_event_ids == 600);
	CHECK(j->n_events < 600 && j->total_events == 600);
	touchpoint__v1__get_journey_response__free_unpacked(j, NULL);

	/*
	 * Events that arrive between two pages — here earlier in time than all of them, so that
	 * without as_of every offset would shift — are left out of the pages read as of the
	 * first one's as_of; without it the journey has grown.
	 */
	jr.lookback_s = 1;
	jr.offset = 0;
	jr.as_of = 0;
	CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_TIMEOUT, &rep) == 0);
	j = tpd_payload(rep, &touchpoint__v1__get_journey_response__descriptor);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	CHECK(j->total_events == 600 && j->as_of > 0);
	jr.as_of = j->as_of;
	seen = j->n_events;
	touchpoint__v1__get_journey_response__free_unpacked(j, NULL);
	for (i = 0; i < 50; i++) {
		snprintf(ids[i], sizeof(ids[i]), "late-%03zu", i);
		evs[i] = ev_touch(ids[i], "pager", 1000 + (int64_t)i, "display", NULL);
	}
	touchpoint__v1__send_response__free_unpacked(send_ok(s, evs, 50), NULL);
	evs_free(evs, 50);
	for (pages = 1; seen < 600; pages++) {
		jr.offset = seen;
		CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_TIMEOUT, &rep) == 0);
		j = tpd_payload(rep, &touchpoint__v1__get_journey_response__descriptor);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
		CHECK(j->total_events == 600 && j->offset == seen && j->as_of == jr.as_of);
		CHECK(j->n_events > 0);
		for (i = 0; i < j->n_events; i++) {
			snprintf(id, sizeof(id), "page-%03zu", seen + i);
			CHECK(strcmp(j->events[i]->event_id, id) == 0);
		}
		seen += j->n_events;
		touchpoint__v1__get_journey_response__free_unpacked(j, NULL);
	}
	CHECK(seen == 600 && pages >= 2);
	asof = jr.as_of;
	jr.as_of = 0;
	jr.offset = 0;
	CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_TIMEOUT, &rep) == 0);
	j = tpd_payload(rep, &touchpoint__v1__get_journey_response__descriptor);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	CHECK(j->total_events == 650 && j->as_of > asof);
	CHECK(strcmp(j->events[0]->event_id, "late-000") == 0);
	touchpoint__v1__get_journey_response__free_unpacked(j, NULL);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

struct big_send {
	const char *url;
	const char *prefix;
	int n;
	atomic_int code;
	char message[200];
	size_t ndetails;
};

static void *
big_send_main(void *arg)
{
	struct big_send *o = arg;
	nng_socket s = tpd_connect(o->url, CALL_TIMEOUT);
	Touchpoint__V1__Event **evs = calloc((size_t)o->n, sizeof(*evs));
	char(*ids)[24] = calloc((size_t)o->n, sizeof(*ids)); /* ev_touch keeps the pointer */
	Touchpoint__V1__Reply *rep;

	CHECK(evs != NULL && ids != NULL);
	for (int i = 0; i < o->n; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%s-%d", o->prefix, i);
		evs[i] = ev_touch(ids[i], "dora", 1000 + i, "search", NULL);
	}
	rep = send_batch(s, evs, (size_t)o->n);
	snprintf(o->message, sizeof(o->message), "%s", rep->status->message);
	o->ndetails = rep->status->n_details;
	atomic_store(&o->code, rep->status->code);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	evs_free(evs, (size_t)o->n);
	free(evs);
	free(ids);
	nng_close(s);
	return NULL;
}

/*
 * decode_memory bounds every request decoded or held at once: with the writer stalled (the
 * test hook) a first batch stays decoded, and a second one that would take the total over
 * is answered RESOURCE_EXHAUSTED "retry later" with no violation (not "too big": clients
 * retry it as it is); once the first is stored, it goes in.
 */
static void
test_decode_memory(void)
{
	struct tpd d;
	struct big_send a = { 0 }, b = { 0 };
	pthread_t th;
	char stall[400];
	FILE *f;
	nng_socket s;

	tpd_init(&d, "decode_memory = 1536K\n");
	snprintf(stall, sizeof(stall), "%s/stall", d.dir);
	CHECK(setenv("TOUCHPOINTD_TEST_STALL_WRITER", stall, 1) == 0);
	CHECK((f = fopen(stall, "w")) != NULL);
	CHECK(fclose(f) == 0);
	tpd_start(&d);
	a.url = b.url = d.url;
	a.prefix = "mem-a";
	b.prefix = "mem-b";
	a.n = b.n = 2000;
	atomic_init(&a.code, -1);
	atomic_init(&b.code, -1);
	CHECK(pthread_create(&th, NULL, big_send_main, &a) == 0);
	sleep_ms(300); /* decoded, waiting for the stalled writer */
	CHECK(atomic_load(&a.code) == -1);
	big_send_main(&b);
	CHECK(atomic_load(&b.code) == 8 && b.ndetails == 0);
	CHECK(strstr(b.message, "decode_memory") != NULL);
	/* A status fits in a context's first block, which is never refused. */
	s = tpd_connect(d.url, CALL_TIMEOUT);
	CHECK(stored_events(s) == 0);
	nng_close(s);
	CHECK(unlink(stall) == 0);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK(atomic_load(&a.code) == 0);
	big_send_main(&b); /* the retry */
	CHECK(atomic_load(&b.code) == 0);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	CHECK(stored_events(s) == 4000);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/* Pages of a daemon whose replies are tiny (2K): each holds what a reply really carries. */
static void
test_journey_pages_tiny(void)
{
	struct tpd d;
	nng_socket s;
	Touchpoint__V1__Event *evs[10];
	Touchpoint__V1__GetJourneyRequest jr = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__INIT;
	Touchpoint__V1__GetJourneyResponse *j;
	Touchpoint__V1__Reply *rep;
	char ids[10][16];
	size_t b, i, seen = 0;

	tpd_init(&d, "max_message_bytes = 2K\n");
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	for (b = 0; b < 12; b++) {
		for (i = 0; i < 10; i++) {
			snprintf(ids[i], sizeof(ids[i]), "tiny-%03zu", b * 10 + i);
			evs[i] = ev_touch(ids[i], "tiny", 1000000 * (int64_t)(b * 10 + i + 1),
			                  "email", NULL);
		}
		touchpoint__v1__send_response__free_unpacked(send_ok(s, evs, 10), NULL);
		evs_free(evs, 10);
	}
	jr.customer_id = (char *)"tiny";
	jr.lookback_case = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__LOOKBACK_LOOKBACK_S;
	jr.lookback_s = 1;
	jr.paging_case = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__PAGING_OFFSET;
	while (seen < 120) {
		jr.offset = seen;
		CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_TIMEOUT, &rep) == 0);
		j = tpd_payload(rep, &touchpoint__v1__get_journey_response__descriptor);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
		CHECK(j->total_events == 120 && j->offset == seen && j->n_events > 0);
		seen += j->n_events;
		touchpoint__v1__get_journey_response__free_unpacked(j, NULL);
	}
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/* The one violation {-1, field} of rep, with code. */
static void
check_marker(const Touchpoint__V1__Reply *rep, int code, const char *field)
{
	CHECK(rep->status->code == code);
	CHECK(rep->status->n_details == 1 && rep->status->details[0]->index == -1 &&
	      strcmp(rep->status->details[0]->field, field) == 0);
}

/*
 * Requests that decode into far more memory than they take on the wire are refused before
 * (or while) they are decoded: 16 MiB of empty events took 875 MB, and unknown fields, which
 * protobuf-c keeps, as much. The daemon then serves on.
 */
static void
test_decode_bounds(void)
{
	Touchpoint__V1__Envelope env = TOUCHPOINT__V1__ENVELOPE__INIT;
	Touchpoint__V1__Reply *rep;
	struct tpd d;
	nng_socket s;
	uint8_t *buf, *raw;
	size_t n = 2 * 100001, big = (size_t)4 << 20, len, i;

	tpd_init(&d, NULL);
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_TIMEOUT);
	CHECK((buf = malloc(big)) != NULL);

	/* 100 001 empty events (field 1, length 0): over max_batch_events, counted undecoded */
	for (i = 0; i < n; i += 2) {
		buf[i] = 0x0a;
		buf[i + 1] = 0;
	}
	CHECK(tpd_call_payload(s, M_SEND, buf, n, CALL_TIMEOUT, &rep) == 0);
	check_marker(rep, 3, "events");
	CHECK(strstr(rep->status->message, "max_batch_events") != NULL);
	touchpoint__v1__reply__free_unpacked(rep, NULL);

	/* 2 MiB of unknown fields (15, varint 0) in a GetStatus: a small request's bound */
	for (i = 0; i < ((size_t)2 << 20); i += 2) {
		buf[i] = 0x78;
		buf[i + 1] = 0;
	}
	CHECK(tpd_call_payload(s, M_STATUS, buf, (size_t)2 << 20, CALL_TIMEOUT, &rep) == 0);
	check_marker(rep, 8, "payload");
	touchpoint__v1__reply__free_unpacked(rep, NULL);

	/* 4 MiB of unknown fields in the envelope itself: decodes to more than its budget */
	env.method = (char *)M_STATUS;
	env.request_id = 7;
	len = touchpoint__v1__envelope__get_packed_size(&env);
	CHECK((raw = malloc(len + big)) != NULL);
	touchpoint__v1__envelope__pack(&env, raw);
	for (i = 0; i < big; i += 2) {
		raw[len + i] = 0x78;
		raw[len + i + 1] = 0;
	}
	CHECK(tpd_call_raw(s, raw, len + big, &rep) == 0);
	check_marker(rep, 8, "envelope");
	touchpoint__v1__reply__free_unpacked(rep, NULL);
	free(raw);
	free(buf);

	CHECK(stored_events(s) == 0);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

/*
 * Clients that connect and close before NNG's handshake (a port scan, a crashed client, a
 * second daemon trying the socket): NNG 1.5.2 then stops handing the listener's new
 * connections to the socket (nng#1518), and without rpc.c's guard every new client waited
 * out its deadline from then on. Each round: such a connection, then a fresh client must
 * be answered (the guard reopens a stuck listener within ≈ 7 s; the call waits 30 s).
 */
static void
test_handshake(void)
{
	struct sockaddr_un sa;
	struct tpd d;
	nng_socket s, old;
	int fd, round;

	tpd_init(&d, NULL);
	tpd_start(&d);
	old = tpd_connect(d.url, CALL_TIMEOUT);
	(void)stored_events(old);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	CHECK(strlen(d.url + 6) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, d.url + 6);
	for (round = 0; round < 4; round++) {
		CHECK((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
		CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
		CHECK(close(fd) == 0);
		sleep_ms(200);
		s = tpd_connect(d.url, CALL_TIMEOUT);
		CHECK(stored_events(s) == 0);
		nng_close(s);
	}
	/* A client connected before it all is answered too (REQ resends on a new pipe). */
	CHECK(stored_events(old) == 0);
	nng_close(old);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} cases[] = {
		{ "journey", test_journey },
		{ "invalid", test_invalid },
		{ "duplicates", test_duplicates },
		{ "errors", test_errors },
		{ "check", test_check },
		{ "sigterm", test_sigterm },
		{ "crash", test_crash },
		{ "attribute", test_attribute },
		{ "deadline", test_deadline },
		{ "queue", test_queue },
		{ "term_inflight", test_term_inflight },
		{ "handshake", test_handshake },
		{ "decode_bounds", test_decode_bounds },
		{ "status_inline", test_status_inline },
		{ "journey_pages", test_journey_pages },
		{ "journey_pages_tiny", test_journey_pages_tiny },
		{ "decode_memory", test_decode_memory },
		{ "paged_idle", test_paged_idle },
	};

	signal(SIGPIPE, SIG_IGN);
	if (argc != 2) {
		fprintf(stderr, "usage: daemon_tests CASE\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (strcmp(argv[1], cases[i].name) == 0) {
			cases[i].fn();
			fprintf(stderr, "%s: ok\n", argv[1]);
			return 0;
		}
	fprintf(stderr, "unknown case %s\n", argv[1]);
	return 2;
}
