/*
 * Events: ids, deep copies and tp_send, which turns plain tp_event structs into one
 * Ingest/Send request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"
#include "touchpoint/v1/ingest.pb-c.h"

int64_t
tp_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int
tp_event_id_new(char *buf)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	uint64_t ms = (uint64_t)(tp_now_us() / 1000);
	size_t got = 0;
	ssize_t r;
	int i;

	while (got < 10) {
		r = getrandom(b + 6 + got, 10 - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return TP_INTERNAL;
		got += (size_t)r;
	}
	/* The time goes first, big-endian, so that ids sort by creation time. */
	for (i = 5; i >= 0; i--, ms >>= 8)
		b[i] = (unsigned char)(ms & 0xff);
	for (i = 0; i < 16; i++) {
		buf[2 * i] = hex[b[i] >> 4];
		buf[2 * i + 1] = hex[b[i] & 0xf];
	}
	buf[TP_EVENT_ID_LEN] = '\0';
	return TP_OK;
}

/* Bytes a string occupies in a copy (NULL stays NULL and takes nothing). */
static size_t
tp_slen(const char *s)
{
	return s != NULL ? strlen(s) + 1 : 0;
}

static const char *
tp_scopy(char **p, const char *s)
{
	char *d = *p;
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	memcpy(d, s, n);
	*p += n;
	return d;
}

struct tp_event *
tp__event_dup(const struct tp_event *ev)
{
	char idbuf[TP_EVENT_ID_LEN + 1];
	const char *id = ev->event_id;
	struct tp_event *e;
	struct tp_trait *tr = NULL;
	size_t size = sizeof(*e), i;
	char *p;

	if (id == NULL) {
		if (tp_event_id_new(idbuf) != TP_OK)
			return NULL;
		id = idbuf;
	}
	size += tp_slen(id) + tp_slen(ev->customer_id);
	switch (ev->kind) {
	case TP_TOUCH:
		size += tp_slen(ev->u.touch.channel) + tp_slen(ev->u.touch.campaign) +
		        tp_slen(ev->u.touch.source) + tp_slen(ev->u.touch.medium);
		break;
	case TP_CONVERSION:
		size += tp_slen(ev->u.conversion.currency) + tp_slen(ev->u.conversion.name);
		break;
	case TP_IDENTIFY:
		if (ev->u.identify.count > TP_SENDER_MAX_TRAITS)
			return NULL;
		size += ev->u.identify.count * sizeof(struct tp_trait);
		for (i = 0; i < ev->u.identify.count; i++)
			size += tp_slen(ev->u.identify.traits[i].key) +
			        tp_slen(ev->u.identify.traits[i].value);
		break;
	case TP_ALIAS:
		size += tp_slen(ev->u.alias.previous_id);
		break;
	case TP_SPEND:
		size += tp_slen(ev->u.spend.channel) + tp_slen(ev->u.spend.campaign) +
		        tp_slen(ev->u.spend.day) + tp_slen(ev->u.spend.currency);
		break;
	default:
		return NULL;
	}
	if ((e = malloc(size)) == NULL)
		return NULL;
	*e = *ev;
	p = (char *)(e + 1);
	if (ev->kind == TP_IDENTIFY && ev->u.identify.count > 0) {
		/* Traits first: the pointer array needs struct alignment. */
		tr = (struct tp_trait *)p;
		p += ev->u.identify.count * sizeof(struct tp_trait);
		for (i = 0; i < ev->u.identify.count; i++) {
			tr[i].key = tp_scopy(&p, ev->u.identify.traits[i].key);
			tr[i].value = tp_scopy(&p, ev->u.identify.traits[i].value);
		}
		e->u.identify.traits = tr;
	}
	e->event_id = tp_scopy(&p, id);
	e->customer_id = tp_scopy(&p, ev->customer_id);
	switch (ev->kind) {
	case TP_TOUCH:
		e->u.touch.channel = tp_scopy(&p, ev->u.touch.channel);
		e->u.touch.campaign = tp_scopy(&p, ev->u.touch.campaign);
		e->u.touch.source = tp_scopy(&p, ev->u.touch.source);
		e->u.touch.medium = tp_scopy(&p, ev->u.touch.medium);
		break;
	case TP_CONVERSION:
		e->u.conversion.currency = tp_scopy(&p, ev->u.conversion.currency);
		e->u.conversion.name = tp_scopy(&p, ev->u.conversion.name);
		break;
	case TP_ALIAS:
		e->u.alias.previous_id = tp_scopy(&p, ev->u.alias.previous_id);
		break;
	case TP_SPEND:
		e->u.spend.channel = tp_scopy(&p, ev->u.spend.channel);
		e->u.spend.campaign = tp_scopy(&p, ev->u.spend.campaign);
		e->u.spend.day = tp_scopy(&p, ev->u.spend.day);
		e->u.spend.currency = tp_scopy(&p, ev->u.spend.currency);
		break;
	default:
		break;
	}
	return e;
}

/* protobuf-c wants char *; an absent string is the empty one. */
static char *
tp_str(const char *s)
{
	return (char *)(s != NULL ? s : "");
}

/* The protobuf-c side of one event; the arrays live as long as the request. */
struct tp_enc {
	Touchpoint__V1__Event ev;
	union {
		Touchpoint__V1__Touch touch;
		Touchpoint__V1__Conversion conversion;
		Touchpoint__V1__Identify identify;
		Touchpoint__V1__Alias alias;
		Touchpoint__V1__Spend spend;
	} u;
	char id[TP_EVENT_ID_LEN + 1];
};

static int
tp_violation1(struct tp_result *res, int index, const char *field, const char *reason)
{
	if (res == NULL)
		return TP_INVALID_ARGUMENT;
	tp__fail(res, TP_INVALID_ARGUMENT, "%s: %s", field, reason);
	tp__violation_set(res, index, field, reason);
	return TP_INVALID_ARGUMENT;
}

/* Fills enc from ev; traits go into tr/trp (ev's count of them). */
static int
tp_encode1(struct tp_enc *enc, const struct tp_event *ev, Touchpoint__V1__Trait *tr,
           Touchpoint__V1__Trait **trp)
{
	Touchpoint__V1__Event *pe = &enc->ev;
	size_t i;

	touchpoint__v1__event__init(pe);
	if (ev->event_id == NULL) {
		if (tp_event_id_new(enc->id) != TP_OK)
			return TP_INTERNAL;
		pe->event_id = enc->id;
	} else {
		pe->event_id = tp_str(ev->event_id);
	}
	pe->customer_id = tp_str(ev->customer_id);
	pe->timestamp_us = ev->timestamp_us;
	switch (ev->kind) {
	case TP_TOUCH:
		touchpoint__v1__touch__init(&enc->u.touch);
		enc->u.touch.channel = tp_str(ev->u.touch.channel);
		enc->u.touch.campaign = tp_str(ev->u.touch.campaign);
		enc->u.touch.source = tp_str(ev->u.touch.source);
		enc->u.touch.medium = tp_str(ev->u.touch.medium);
		enc->u.touch.interaction = (Touchpoint__V1__Interaction)ev->u.touch.interaction;
		if (ev->u.touch.has_cost) {
			enc->u.touch.cost_present_case = TOUCHPOINT__V1__TOUCH__COST_PRESENT_COST;
			enc->u.touch.cost = ev->u.touch.cost;
		}
		pe->kind_case = TOUCHPOINT__V1__EVENT__KIND_TOUCH;
		pe->touch = &enc->u.touch;
		break;
	case TP_CONVERSION:
		touchpoint__v1__conversion__init(&enc->u.conversion);
		enc->u.conversion.value = ev->u.conversion.value;
		enc->u.conversion.currency = tp_str(ev->u.conversion.currency);
		enc->u.conversion.name = tp_str(ev->u.conversion.name);
		pe->kind_case = TOUCHPOINT__V1__EVENT__KIND_CONVERSION;
		pe->conversion = &enc->u.conversion;
		break;
	case TP_IDENTIFY:
		touchpoint__v1__identify__init(&enc->u.identify);
		for (i = 0; i < ev->u.identify.count; i++) {
			touchpoint__v1__trait__init(&tr[i]);
			tr[i].key = tp_str(ev->u.identify.traits[i].key);
			tr[i].value = tp_str(ev->u.identify.traits[i].value);
			trp[i] = &tr[i];
		}
		enc->u.identify.n_traits = ev->u.identify.count;
		enc->u.identify.traits = trp;
		pe->kind_case = TOUCHPOINT__V1__EVENT__KIND_IDENTIFY;
		pe->identify = &enc->u.identify;
		break;
	case TP_ALIAS:
		touchpoint__v1__alias__init(&enc->u.alias);
		enc->u.alias.previous_id = tp_str(ev->u.alias.previous_id);
		pe->kind_case = TOUCHPOINT__V1__EVENT__KIND_ALIAS;
		pe->alias = &enc->u.alias;
		break;
	case TP_SPEND:
		touchpoint__v1__spend__init(&enc->u.spend);
		enc->u.spend.channel = tp_str(ev->u.spend.channel);
		enc->u.spend.campaign = tp_str(ev->u.spend.campaign);
		enc->u.spend.day = tp_str(ev->u.spend.day);
		enc->u.spend.amount = ev->u.spend.amount;
		enc->u.spend.currency = tp_str(ev->u.spend.currency);
		pe->kind_case = TOUCHPOINT__V1__EVENT__KIND_SPEND;
		pe->spend = &enc->u.spend;
		break;
	default:
		return TP_INVALID_ARGUMENT;
	}
	return TP_OK;
}

int
tp_send(tp_client *c, const struct tp_event *evs, size_t n, struct tp_result *res)
{
	int too_big;

	return tp__send(c, evs, n, res, &too_big);
}

int
tp__send(tp_client *c, const struct tp_event *evs, size_t n, struct tp_result *res, int *too_big)
{
	Touchpoint__V1__SendRequest req = TOUCHPOINT__V1__SEND_REQUEST__INIT;
	Touchpoint__V1__SendResponse *sr = NULL;
	struct tp__unpacker u;
	Touchpoint__V1__Event **pev = NULL;
	Touchpoint__V1__Trait *tr = NULL, **trp = NULL;
	struct tp_enc *enc = NULL;
	uint8_t *buf = NULL;
	void *resp = NULL;
	size_t i, ntraits = 0, ti = 0, len, resp_len = 0;
	char field[64];
	int status;

	*too_big = 0;
	tp__result_init(res);
	if (c == NULL || (evs == NULL && n != 0))
		return tp__fail(res, TP_INVALID_ARGUMENT, "tp_send: NULL argument");
	if (n == 0)
		return TP_OK;
	/* Anything bigger could never fit in one message; refuse before allocating. */
	if (n > TP_MAX_MESSAGE / 8) {
		*too_big = 1;
		return tp__too_big(res, "batch of %zu events exceeds the message limit of %u bytes",
		                   n, TP_MAX_MESSAGE);
	}
	for (i = 0; i < n; i++) {
		if (evs[i].kind < TP_TOUCH || evs[i].kind > TP_SPEND) {
			snprintf(field, sizeof(field), "events[%zu].kind", i);
			return tp_violation1(res, (int)i, field, "unknown event kind");
		}
		if (evs[i].kind == TP_IDENTIFY) {
			if (evs[i].u.identify.count > 0 && evs[i].u.identify.traits == NULL) {
				snprintf(field, sizeof(field), "events[%zu].identify.traits", i);
				return tp_violation1(res, (int)i, field, "NULL traits");
			}
			if (evs[i].u.identify.count > TP_MAX_MESSAGE / 4)
				return tp__fail(res, TP_RESOURCE_EXHAUSTED, "too many traits");
			ntraits += evs[i].u.identify.count;
		}
	}
	status = TP_INTERNAL;
	if ((enc = calloc(n, sizeof(*enc))) == NULL || (pev = calloc(n, sizeof(*pev))) == NULL ||
	    (ntraits > 0 && ((tr = calloc(ntraits, sizeof(*tr))) == NULL ||
	                     (trp = calloc(ntraits, sizeof(*trp))) == NULL))) {
		tp__fail(res, status, "out of memory");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		size_t k = evs[i].kind == TP_IDENTIFY ? evs[i].u.identify.count : 0;

		if ((status = tp_encode1(&enc[i], &evs[i], tr + ti, trp + ti)) != TP_OK) {
			tp__fail(res, status, "cannot generate an event id");
			goto fail;
		}
		ti += k;
		pev[i] = &enc[i].ev;
	}
	req.n_events = n;
	req.events = pev;
	len = touchpoint__v1__send_request__get_packed_size(&req);
	if (len > TP_MAX_MESSAGE - 1024) { /* room for the Envelope */
		*too_big = 1;
		status = tp__too_big(res,
		                     "batch of %zu events is %zu bytes, over the message limit of "
		                     "%u bytes (send smaller batches)",
		                     n, len, TP_MAX_MESSAGE);
		goto fail;
	}
	if ((buf = malloc(len ? len : 1)) == NULL) {
		status = tp__fail(res, TP_INTERNAL, "out of memory");
		goto fail;
	}
	touchpoint__v1__send_request__pack(&req, buf);
	status = tp_call(c, "/touchpoint.v1.Ingest/Send", buf, len, &resp, &resp_len, res);
	if (status != TP_OK) {
		/* Over the daemon's own max_message_bytes, which may be below TP_MAX_MESSAGE. */
		*too_big = tp_result_too_big(res);
		goto fail;
	}
	tp__unpacker_init(&u);
	if ((sr = touchpoint__v1__send_response__unpack(&u.a, resp_len, resp)) == NULL) {
		status = tp__fail(res, TP_INTERNAL, "%s",
		                  u.oom ? "out of memory unpacking the SendResponse"
		                        : "malformed SendResponse");
		goto fail;
	}
	if (res != NULL) {
		res->accepted = sr->accepted;
		res->duplicates = sr->duplicates;
	}
	touchpoint__v1__send_response__free_unpacked(sr, NULL);
fail:
	free(resp);
	free(buf);
	free(trp);
	free(tr);
	free(pev);
	free(enc);
	return status;
}
