/*
 * libtouchpoint against a real touchpointd (endpoint in argv[1], fresh state): tp_send
 * batches, violations, duplicates, the local message cap, tp_status, and the buffered
 * sender with 10 000 events added one by one. With "small" (argv[2]), against a daemon
 * whose max_message_bytes is 8K: batches too big for it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "touchpoint/touchpoint.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static const char *endpoint;

static void
on_error(void *arg, const struct tp_result *res, const struct tp_event *evs, size_t n)
{
	size_t *bad = arg, i;

	CHECK(res->status == TP_INVALID_ARGUMENT);
	for (i = 0; i < n; i++)
		CHECK(strncmp(evs[i].event_id, "bad-", 4) == 0);
	*bad += n;
}

static void
test_send(tp_client *c)
{
	struct tp_trait traits[] = { { "plan", "pro" }, { "country", "fr" } };
	struct tp_event evs[4];
	struct tp_result res;
	struct tp_daemon_status st;
	char *big;
	int s;

	memset(evs, 0, sizeof(evs));
	evs[0] = (struct tp_event){ .event_id = "lib-1",
		                    .customer_id = "alice",
		                    .timestamp_us = 1714521600000000,
		                    .kind = TP_TOUCH };
	evs[0].u.touch.channel = "email";
	evs[0].u.touch.interaction = TP_INTERACTION_CLICK;
	evs[1] = (struct tp_event){ .event_id = "lib-2",
		                    .customer_id = "alice",
		                    .timestamp_us = 1714525200000000,
		                    .kind = TP_CONVERSION };
	evs[1].u.conversion.value = 42;
	evs[2] = (struct tp_event){ .event_id = "lib-3",
		                    .customer_id = "alice",
		                    .timestamp_us = 1714525200000001,
		                    .kind = TP_IDENTIFY };
	evs[2].u.identify.traits = traits;
	evs[2].u.identify.count = 2;
	evs[3] = (struct tp_event){ .event_id = NULL,
		                    .customer_id = "bob",
		                    .timestamp_us = 1714525200000000,
		                    .kind = TP_TOUCH };
	evs[3].u.touch.channel = "search";
	s = tp_send(c, evs, 4, &res);
	if (s != TP_OK)
		fprintf(stderr, "tp_send: %s %s\n", tp_strerror(s), res.message);
	CHECK(s == TP_OK && res.status == TP_OK);
	CHECK(res.accepted == 4 && res.duplicates == 0);
	tp_result_free(&res);

	/* The same explicit ids again: acknowledged, not stored twice. */
	CHECK(tp_send(c, evs, 3, &res) == TP_OK);
	CHECK(res.accepted == 0 && res.duplicates == 3);
	tp_result_free(&res);

	/* Two invalid events in a batch of three: nothing stored, both violations named. */
	evs[0].event_id = "lib-4";
	evs[0].u.touch.channel = NULL;
	evs[1].event_id = "lib-5";
	evs[2].event_id = "lib-6";
	evs[2].customer_id = NULL;
	s = tp_send(c, evs, 3, &res);
	CHECK(s == TP_INVALID_ARGUMENT && res.status == TP_INVALID_ARGUMENT);
	CHECK(res.nviolations == 2);
	CHECK(res.violations[0].index == 0 && strstr(res.violations[0].field, "channel"));
	CHECK(res.violations[1].index == 2 && strstr(res.violations[1].field, "customer_id"));
	tp_result_free(&res);

	/* Over the 16 MiB cap: refused locally, naming the size. */
	big = malloc(17u * 1024 * 1024);
	CHECK(big != NULL);
	memset(big, 'x', 17u * 1024 * 1024 - 1);
	big[17u * 1024 * 1024 - 1] = '\0';
	evs[1].customer_id = big;
	s = tp_send(c, evs + 1, 1, &res);
	CHECK(s == TP_RESOURCE_EXHAUSTED && strstr(res.message, "bytes") != NULL);
	tp_result_free(&res);
	free(big);

	CHECK(tp_status(c, &st) == TP_OK);
	CHECK(st.events_touch == 2 && st.events_conversion == 1 && st.events_identify == 1);
	CHECK(st.events_total == 4 && st.duplicates == 3);
	CHECK(st.version[0] != '\0');
}

static void
test_sender(tp_client *c)
{
	struct tp_sender_options o = { .max_batch = 500, .on_error = on_error };
	struct tp_sender_stats ss;
	struct tp_daemon_status st;
	struct tp_event ev;
	tp_sender *s;
	size_t bad = 0;
	char cust[32];
	int i;

	o.arg = &bad;
	CHECK(tp_sender_new(&s, endpoint, &o) == TP_OK);
	for (i = 0; i < 10000; i++) {
		memset(&ev, 0, sizeof(ev));
		snprintf(cust, sizeof(cust), "s-%d", i % 97);
		ev.customer_id = cust;
		ev.timestamp_us = 1714521600000000 + i;
		ev.kind = TP_TOUCH;
		ev.u.touch.channel = i % 2 ? "display" : "social";
		CHECK(tp_sender_add(s, &ev) == TP_OK);
	}
	/* Two invalid ones in the middle of a batch: only they are dropped. */
	memset(&ev, 0, sizeof(ev));
	ev.event_id = "bad-1";
	ev.customer_id = "s-x";
	ev.timestamp_us = 1714521600000000;
	ev.kind = TP_TOUCH;
	CHECK(tp_sender_add(s, &ev) == TP_OK);
	ev.event_id = "bad-2";
	CHECK(tp_sender_add(s, &ev) == TP_OK);
	ev.event_id = "good-after-bad";
	ev.u.touch.channel = "email";
	CHECK(tp_sender_add(s, &ev) == TP_OK);
	CHECK(tp_flush(s, 60000) == TP_OK);
	tp_sender_stats(s, &ss);
	CHECK(ss.queued == 0);
	CHECK(ss.accepted == 10001 && ss.rejected == 2 && bad == 2);
	CHECK(tp_status(c, &st) == TP_OK);
	CHECK(st.events_touch == 2 + 10001);
	CHECK(tp_sender_close(s, 10000) == TP_OK);
	CHECK(tp_sender_close(NULL, 0) == TP_OK);
}

static void
count_lost(void *arg, const struct tp_result *res, const struct tp_event *evs, size_t n)
{
	size_t *lost = arg;

	(void)evs;
	CHECK(res->status == TP_DEADLINE_EXCEEDED || res->status == TP_CANCELLED ||
	      res->status == TP_UNAVAILABLE);
	*lost += n;
}

struct adder {
	tp_sender *s;
	int status;
};

static void *
add_one(void *arg)
{
	struct adder *a = arg;
	struct tp_event ev = { .customer_id = "u", .timestamp_us = 1, .kind = TP_TOUCH };

	ev.u.touch.channel = "email";
	a->status = tp_sender_add(a->s, &ev);
	return NULL;
}

/*
 * Adders blocked on a full queue when the sender closes: they return before it is freed
 * (ASan and helgrind saw them touch freed memory before).
 */
static void
test_sender_close_blocked(void)
{
	struct tp_sender_options o = { .max_queue = 2, .block_when_full = 1 };
	struct adder a[6];
	pthread_t t[6];
	tp_sender *s;
	int i;

	CHECK(tp_sender_new(&s, "ipc:///nonexistent/touchpointd.sock", &o) == TP_OK);
	for (i = 0; i < 6; i++) {
		a[i].s = s;
		a[i].status = -1;
		CHECK(pthread_create(&t[i], NULL, add_one, &a[i]) == 0);
	}
	nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL); /* 2 queued, 4 blocked */
	CHECK(tp_sender_close(s, 50) == TP_DEADLINE_EXCEEDED);
	for (i = 0; i < 6; i++) {
		CHECK(pthread_join(t[i], NULL) == 0);
		CHECK(a[i].status == TP_OK || a[i].status == TP_FAILED_PRECONDITION);
	}
}

/* No daemon: events wait and retry; closing after the timeout reports every one. */
static void
test_sender_unreachable(void)
{
	struct tp_sender_options o = { .on_error = count_lost, .max_queue = 4 };
	struct tp_event ev = { .customer_id = "u", .timestamp_us = 1, .kind = TP_TOUCH };
	struct tp_sender_stats ss;
	tp_sender *s;
	size_t lost = 0;
	int i;

	o.arg = &lost;
	ev.u.touch.channel = "email";
	CHECK(tp_sender_new(&s, "ipc:///nonexistent/touchpointd.sock", &o) == TP_OK);
	{
		struct tp_event id = { .customer_id = "u", .timestamp_us = 1, .kind = TP_IDENTIFY };

		id.u.identify.count = 2; /* and traits NULL */
		CHECK(tp_sender_add(s, &id) == TP_INVALID_ARGUMENT);
	}
	for (i = 0; i < 4; i++)
		CHECK(tp_sender_add(s, &ev) == TP_OK);
	CHECK(tp_sender_add(s, &ev) == TP_RESOURCE_EXHAUSTED); /* bounded queue */
	CHECK(tp_flush(s, 200) == TP_DEADLINE_EXCEEDED);
	tp_sender_stats(s, &ss);
	CHECK(ss.queued == 4 && ss.accepted == 0);
	CHECK(tp_sender_close(s, 100) == TP_DEADLINE_EXCEEDED);
	CHECK(lost == 4);
}

static void
on_too_big(void *arg, const struct tp_result *res, const struct tp_event *evs, size_t n)
{
	size_t *bad = arg;

	CHECK(tp_result_too_big(res) && n == 1 && strcmp(evs[0].event_id, "alone-too-big") == 0);
	*bad += n;
}

/*
 * Against a daemon whose max_message_bytes is 8K: tp_send of a big batch says it is too
 * big (not a busy daemon, so not to be retried as is); tp_sender halves its batches until
 * they fit and stores every event; an event too big on its own goes to on_error.
 */
static void
test_small_messages(tp_client *c)
{
	struct tp_sender_options o = { .max_batch = 1000, .on_error = on_too_big };
	struct tp_sender_stats ss;
	struct tp_event ev, evs[200];
	struct tp_result res;
	tp_sender *s;
	size_t bad = 0;
	static char cust[200][32], campaign[9000];
	int i;

	for (i = 0; i < 200; i++) {
		memset(&evs[i], 0, sizeof(evs[i]));
		snprintf(cust[i], sizeof(cust[i]), "small-%d", i);
		evs[i].customer_id = cust[i];
		evs[i].timestamp_us = 1714521600000000 + i;
		evs[i].kind = TP_TOUCH;
		evs[i].u.touch.channel = "email";
	}
	CHECK(tp_send(c, evs, 200, &res) == TP_RESOURCE_EXHAUSTED);
	CHECK(tp_result_too_big(&res));
	CHECK(strstr(res.message, "over max_message_bytes (8192)") != NULL);
	tp_result_free(&res);
	CHECK(tp_send(c, evs, 2, &res) == TP_OK && res.accepted == 2);
	CHECK(!tp_result_too_big(&res));
	tp_result_free(&res);
	/* 60 small events fit in 8K but not in max_batch_events = 50. */
	CHECK(tp_send(c, evs + 2, 60, &res) == TP_INVALID_ARGUMENT);
	CHECK(tp_result_too_big(&res) && strstr(res.message, "max_batch_events") != NULL);
	tp_result_free(&res);

	o.arg = &bad;
	CHECK(tp_sender_new(&s, endpoint, &o) == TP_OK);
	for (i = 0; i < 3000; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.customer_id = cust[i % 200];
		ev.timestamp_us = 1714600000000000 + i;
		ev.kind = TP_TOUCH;
		ev.u.touch.channel = "display";
		CHECK(tp_sender_add(s, &ev) == TP_OK);
	}
	memset(campaign, 'x', sizeof(campaign) - 1);
	ev.event_id = "alone-too-big";
	ev.u.touch.campaign = campaign; /* over 8K by itself, far below TP_MAX_MESSAGE */
	CHECK(tp_sender_add(s, &ev) == TP_OK);
	CHECK(tp_flush(s, 60000) == TP_OK);
	tp_sender_stats(s, &ss);
	CHECK(ss.accepted == 3000 && ss.rejected == 1 && bad == 1 && ss.retries == 0);
	CHECK(tp_sender_close(s, 10000) == TP_OK);
}

int
main(int argc, char **argv)
{
	tp_client *c;
	struct tp_result res;

	if (argc != 2 && !(argc == 3 && strcmp(argv[2], "small") == 0)) {
		fprintf(stderr, "usage: %s ENDPOINT [small]\n", argv[0]);
		return 2;
	}
	endpoint = argv[1];
	if (argc == 3) {
		CHECK(tp_connect(&c, endpoint) == TP_OK);
		test_small_messages(c);
		tp_close(c);
		printf("ok\n");
		return 0;
	}
	CHECK(tp_connect_ex(&c, "ipc:///nonexistent/touchpointd.sock", &res) == TP_UNAVAILABLE);
	CHECK(c == NULL && strstr(res.message, "cannot reach touchpointd at ipc:///nonexistent"));
	CHECK(tp_connect(&c, endpoint) == TP_OK);
	CHECK(tp_set_timeout(c, 30000) == TP_OK);
	test_send(c);
	test_sender(c);
	test_sender_unreachable();
	test_sender_close_blocked();
	tp_close(c);
	printf("ok\n");
	return 0;
}
