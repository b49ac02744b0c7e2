/*
 * daemon_fuzz: mutated requests sent to a real touchpointd over its socket. Every one must
 * get a well-formed reply, and the events acknowledged in between must all be there, once,
 * before and after a restart: bad input never crashes the daemon nor costs accepted data.
 */
#define _XOPEN_SOURCE 700

#include <signal.h>
#include <string.h>

#include "harness.h"
#include "rnd.h"
#include "touchpoint/v1/attribution.pb-c.h"
#include "touchpoint/v1/event.pb-c.h"
#include "touchpoint/v1/ingest.pb-c.h"
#include "touchpoint/v1/query.pb-c.h"

#define M_SEND      "/touchpoint.v1.Ingest/Send"
#define M_STATUS    "/touchpoint.v1.Admin/GetStatus"
#define M_JOURNEY   "/touchpoint.v1.Journey/GetJourney"
#define M_ATTRIBUTE "/touchpoint.v1.Attribution/Attribute"
#define M_PATHS     "/touchpoint.v1.Attribution/Paths"
#define FZ_MAX      (32 * 1024) /* bytes of a mutated request */
#define FZ_SEEDS    16
#define CANARY      "fz-canary-7f3a9c1e"
#define CALL_MS     30000

struct seed {
	const char *method;
	uint8_t *payload;
	size_t len;
};

static struct seed seeds[FZ_SEEDS];
static size_t nseeds;

static void
add_seed(const char *method, const ProtobufCMessage *m)
{
	struct seed *s = &seeds[nseeds++];

	CHECK(nseeds <= FZ_SEEDS);
	s->method = method;
	s->len = protobuf_c_message_get_packed_size(m);
	CHECK((s->payload = malloc(s->len + 1)) != NULL);
	protobuf_c_message_pack(m, s->payload);
}

/* A batch of every kind, for customer cust, ids prefixed by tag. */
static void
seed_send(const char *tag, const char *cust)
{
	Touchpoint__V1__SendRequest req = TOUCHPOINT__V1__SEND_REQUEST__INIT;
	Touchpoint__V1__Event ev[5], *evp[5];
	Touchpoint__V1__Touch t = TOUCHPOINT__V1__TOUCH__INIT;
	Touchpoint__V1__Conversion c = TOUCHPOINT__V1__CONVERSION__INIT;
	Touchpoint__V1__Identify idf = TOUCHPOINT__V1__IDENTIFY__INIT;
	Touchpoint__V1__Trait tr = TOUCHPOINT__V1__TRAIT__INIT, *trp = &tr;
	Touchpoint__V1__Alias al = TOUCHPOINT__V1__ALIAS__INIT;
	Touchpoint__V1__Spend sp = TOUCHPOINT__V1__SPEND__INIT;
	char ids[5][32];
	int i;

	for (i = 0; i < 5; i++) {
		touchpoint__v1__event__init(&ev[i]);
		snprintf(ids[i], sizeof(ids[i]), "%s-%d", tag, i);
		ev[i].event_id = ids[i];
		ev[i].customer_id = (char *)cust;
		ev[i].timestamp_us = 1700000000000000 + i * 60000000;
		evp[i] = &ev[i];
	}
	t.channel = (char *)"email";
	t.campaign = (char *)"spring";
	t.interaction = TOUCHPOINT__V1__INTERACTION__INTERACTION_CLICK;
	ev[0].kind_case = TOUCHPOINT__V1__EVENT__KIND_TOUCH;
	ev[0].touch = &t;
	tr.key = (char *)"plan";
	tr.value = (char *)"pro";
	idf.traits = &trp;
	idf.n_traits = 1;
	ev[1].kind_case = TOUCHPOINT__V1__EVENT__KIND_IDENTIFY;
	ev[1].identify = &idf;
	al.previous_id = (char *)"fz-anon";
	ev[2].kind_case = TOUCHPOINT__V1__EVENT__KIND_ALIAS;
	ev[2].alias = &al;
	sp.channel = (char *)"search";
	sp.day = (char *)"2023-11-14";
	sp.amount = 12.5;
	sp.currency = (char *)"EUR";
	ev[3].customer_id = (char *)"";
	ev[3].kind_case = TOUCHPOINT__V1__EVENT__KIND_SPEND;
	ev[3].spend = &sp;
	c.value = 49.9;
	c.currency = (char *)"EUR";
	c.name = (char *)"purchase";
	ev[4].kind_case = TOUCHPOINT__V1__EVENT__KIND_CONVERSION;
	ev[4].conversion = &c;
	req.events = evp;
	req.n_events = 5;
	add_seed(M_SEND, &req.base);
}

static void
make_seeds(void)
{
	Touchpoint__V1__GetStatusRequest st = TOUCHPOINT__V1__GET_STATUS_REQUEST__INIT;
	Touchpoint__V1__GetJourneyRequest jr = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__INIT;
	Touchpoint__V1__AttributeRequest ar = TOUCHPOINT__V1__ATTRIBUTE_REQUEST__INIT;
	Touchpoint__V1__PathsRequest pr = TOUCHPOINT__V1__PATHS_REQUEST__INIT;
	Touchpoint__V1__Window w = TOUCHPOINT__V1__WINDOW__INIT;
	Touchpoint__V1__ModelSpec ms[3], *msp[3];
	Touchpoint__V1__Param pa = TOUCHPOINT__V1__PARAM__INIT, *pap = &pa;
	int i;

	seed_send("fz-a", "fz-alice");
	seed_send("fz-b", "fz-bob");
	add_seed(M_STATUS, &st.base);
	jr.customer_id = (char *)"fz-alice";
	add_seed(M_JOURNEY, &jr.base);
	jr.lookback_case = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__LOOKBACK_LOOKBACK_S;
	jr.lookback_s = 86400;
	jr.paging_case = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__PAGING_OFFSET;
	jr.offset = 1;
	add_seed(M_JOURNEY, &jr.base);
	add_seed(M_ATTRIBUTE, &ar.base); /* every model, defaults */
	for (i = 0; i < 3; i++) {
		touchpoint__v1__model_spec__init(&ms[i]);
		msp[i] = &ms[i];
	}
	ms[0].model = (char *)"markov";
	pa.key = (char *)"order";
	pa.value = (char *)"2";
	ms[0].params = &pap;
	ms[0].n_params = 1;
	ms[1].model = (char *)"time_decay";
	ms[2].model = (char *)"u_shaped";
	ar.models = msp;
	ar.n_models = 3;
	w.lookback_case = TOUCHPOINT__V1__WINDOW__LOOKBACK_LOOKBACK_S;
	w.lookback_s = 0;
	w.from_case = TOUCHPOINT__V1__WINDOW__FROM_FROM_US;
	w.from_us = 1600000000000000;
	w.conversion = (char *)"purchase";
	ar.window = &w;
	ar.by_trait = (char *)"plan";
	ar.transition_matrix = 1;
	ar.daily_model = (char *)"linear";
	add_seed(M_ATTRIBUTE, &ar.base);
	pr.window = &w;
	pr.top = 5;
	add_seed(M_PATHS, &pr.base);
	pr.top = 0;
	pr.limit = 1;
	pr.offset = 1;
	add_seed(M_PATHS, &pr.base);
}

/* One mutation of buf[0..*len) in place (at most cap bytes). */
static void
mutate(uint8_t *buf, size_t *len, size_t cap)
{
	static const uint8_t interesting[] = { 0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x12,
		                               0x1a, 0x22, 0x2a, 0xc0, 0xfe, ' ',  '>' };
	size_t n = *len, at = rnd_below(n + 1), k;

	switch (rnd() % 7) {
	case 0: /* flip a bit */
		if (n > 0)
			buf[rnd_below(n)] ^= (uint8_t)(1u << rnd_below(8));
		break;
	case 1: /* an interesting byte */
		if (n > 0)
			buf[rnd_below(n)] = interesting[rnd_below(sizeof(interesting))];
		break;
	case 2: /* insert random bytes */
		k = 1 + rnd_below(8);
		if (n + k > cap)
			break;
		memmove(buf + at + k, buf + at, n - at);
		for (size_t i = 0; i < k; i++)
			buf[at + i] = (uint8_t)rnd();
		*len = n + k;
		break;
	case 3: /* delete a range */
		if (at < n) {
			k = 1 + rnd_below(n - at < 16 ? n - at : 16);
			memmove(buf + at, buf + at + k, n - at - k);
			*len = n - k;
		}
		break;
	case 4: /* duplicate a range: repeated fields, nested lengths that lie */
		if (at < n) {
			k = 1 + rnd_below(n - at < 64 ? n - at : 64);
			if (n + k > cap)
				break;
			memmove(buf + at + k, buf + at, n - at);
			*len = n + k;
		}
		break;
	case 5: /* truncate */
		*len = at;
		break;
	default: /* a varint's top bit set: lengths and numbers that run on */
		if (n > 0)
			buf[rnd_below(n)] |= 0x80;
		break;
	}
}

static void
dump(const char *what, const uint8_t *b, size_t n, unsigned long iter)
{
	fprintf(stderr, "daemon_fuzz: iteration %lu: %s; request (%zu bytes):", iter, what, n);
	for (size_t i = 0; i < n && i < 512; i++)
		fprintf(stderr, "%s%02x", i % 32 ? "" : "\n  ", b[i]);
	fprintf(stderr, "\n");
}

/* A request from a seed: its payload mutated inside a good envelope, or the whole envelope. */
static size_t
make_request(uint8_t *out, const char **method)
{
	Touchpoint__V1__Envelope env = TOUCHPOINT__V1__ENVELOPE__INIT, *chk;
	const struct seed *s = &seeds[rnd_below(nseeds)];
	static uint8_t pay[FZ_MAX];
	size_t plen = s->len, len, rounds = 1 + rnd_below(4), i;
	int whole = rnd() % 4 == 0;

	memcpy(pay, s->payload, plen);
	if (!whole)
		for (i = 0; i < rounds; i++)
			mutate(pay, &plen, FZ_MAX / 2);
	env.method = (char *)s->method;
	env.request_id = rnd();
	/* mostly no deadline; sometimes one so short that it has passed on arrival */
	env.timeout_ms = rnd() % 8 == 0 ? (uint32_t)rnd_below(3) : 0;
	env.payload.data = pay;
	env.payload.len = plen;
	len = touchpoint__v1__envelope__get_packed_size(&env);
	CHECK(len <= FZ_MAX);
	touchpoint__v1__envelope__pack(&env, out);
	if (whole)
		for (i = 0; i < rounds; i++)
			mutate(out, &len, FZ_MAX);
	*method = s->method;
	/* Backup writes where it is told: never let a mutation turn a request into one. */
	if ((chk = touchpoint__v1__envelope__unpack(NULL, len, out)) != NULL) {
		if (chk->method != NULL && strstr(chk->method, "Backup") != NULL)
			len = 0;
		touchpoint__v1__envelope__free_unpacked(chk, NULL);
	}
	return len;
}

/* Five new events for the canary customer; they must be acknowledged as new. */
static void
send_canaries(nng_socket s, unsigned long batch)
{
	Touchpoint__V1__SendRequest req = TOUCHPOINT__V1__SEND_REQUEST__INIT;
	Touchpoint__V1__Event ev[5], *evp[5];
	Touchpoint__V1__Touch t = TOUCHPOINT__V1__TOUCH__INIT;
	Touchpoint__V1__Reply *rep;
	Touchpoint__V1__SendResponse *r;
	char ids[5][48];

	t.channel = (char *)"canary";
	t.interaction = TOUCHPOINT__V1__INTERACTION__INTERACTION_VISIT;
	for (int i = 0; i < 5; i++) {
		touchpoint__v1__event__init(&ev[i]);
		snprintf(ids[i], sizeof(ids[i]), "%s-%lu-%d", CANARY, batch, i);
		ev[i].event_id = ids[i];
		ev[i].customer_id = (char *)CANARY;
		ev[i].timestamp_us = 1700000000000000 + (int64_t)batch * 1000 + i;
		ev[i].kind_case = TOUCHPOINT__V1__EVENT__KIND_TOUCH;
		ev[i].touch = &t;
		evp[i] = &ev[i];
	}
	req.events = evp;
	req.n_events = 5;
	CHECK(tpd_call(s, M_SEND, &req.base, CALL_MS, &rep) == 0);
	r = tpd_payload(rep, &touchpoint__v1__send_response__descriptor);
	CHECK(r->accepted == 5 && r->duplicates == 0);
	touchpoint__v1__send_response__free_unpacked(r, NULL);
	touchpoint__v1__reply__free_unpacked(rep, NULL);
}

/* The canary customer's events, read in pages as the CLI does. */
static size_t
canaries_stored(nng_socket s)
{
	Touchpoint__V1__GetJourneyRequest jr = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__INIT;
	Touchpoint__V1__Reply *rep;
	Touchpoint__V1__GetJourneyResponse *j;
	size_t n = 0, total;

	jr.customer_id = (char *)CANARY;
	jr.paging_case = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__PAGING_OFFSET;
	do {
		jr.offset = n;
		CHECK(tpd_call(s, M_JOURNEY, &jr.base, CALL_MS, &rep) == 0);
		j = tpd_payload(rep, &touchpoint__v1__get_journey_response__descriptor);
		CHECK(j->offset == n && j->n_events > 0);
		n += j->n_events;
		total = j->total_events;
		jr.as_of = j->as_of;
		touchpoint__v1__get_journey_response__free_unpacked(j, NULL);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
	} while (n < total);
	CHECK(n == total);
	return n;
}

int
main(int argc, char **argv)
{
	unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 10) : 3000, it, batches = 0;
	unsigned long codes[17] = { 0 };
	static uint8_t req[FZ_MAX];
	Touchpoint__V1__Reply *rep;
	const char *method;
	struct tpd d;
	nng_socket s;
	size_t len;

	rnd_seed(argc > 2 ? strtoull(argv[2], NULL, 0) : 0);
	make_seeds();
	/* Small caps, so that lengths a mutation inflates are refused, not allocated. */
	tpd_init(&d, "log_level = warning\nmax_message_bytes = 256K\nmax_batch_events = 64\n");
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_MS);
	for (size_t i = 0; i < nseeds; i++) {
		CHECK(tpd_call_payload(s, seeds[i].method, seeds[i].payload, seeds[i].len, 0,
		                       &rep) == 0);
		CHECK(rep->status != NULL && rep->status->code == 0);
		touchpoint__v1__reply__free_unpacked(rep, NULL);
	}
	for (it = 0; it < iters; it++) {
		/* at most 400 batches: the canary's journey (and its path) must fit a reply */
		if (it % (iters > 20000 ? iters / 400 : 50) == 0)
			send_canaries(s, batches++);
		if ((len = make_request(req, &method)) == 0)
			continue;
		if (tpd_call_raw(s, req, len, &rep) != 0) {
			dump("no reply (the daemon hung or died)", req, len, it);
			CHECK(!"every request is answered");
		}
		if (rep->status == NULL || rep->status->code < 0 || rep->status->code > 16) {
			dump("a reply without a valid status", req, len, it);
			CHECK(!"a valid status");
		}
		codes[rep->status->code]++;
		touchpoint__v1__reply__free_unpacked(rep, NULL);
	}
	fprintf(stderr, "daemon_fuzz: %lu requests; status codes:", iters);
	for (int c = 0; c <= 16; c++)
		if (codes[c] > 0)
			fprintf(stderr, " %d×%lu", c, codes[c]);
	fprintf(stderr, "\n");
	/* Mutations must reach past the envelope: both good and refused requests occur. */
	CHECK(codes[0] > 0 && codes[3] > 0);
	CHECK(canaries_stored(s) == 5 * batches);
	nng_close(s);
	/* A clean exit: no leak (LeakSanitizer in the ASan build), no stuck request. */
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_start(&d);
	s = tpd_connect(d.url, CALL_MS);
	CHECK(canaries_stored(s) == 5 * batches);
	nng_close(s);
	CHECK(tpd_stop(&d, SIGTERM) == 0);
	tpd_cleanup(&d);
	for (size_t i = 0; i < nseeds; i++)
		free(seeds[i].payload);
	return 0;
}
