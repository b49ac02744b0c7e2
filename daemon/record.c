/*
 * record: encoding and decoding of one stored event, and the keyed hash used for ids.
 * Decoding trusts nothing: every length is checked against the record's end.
 */
#include <stdlib.h>
#include <string.h>

#include "record.h"

static void
put_str(uint8_t **pp, const char *s, size_t n)
{
	uint16_t l = (uint16_t)n;

	memcpy(*pp, &l, 2);
	if (n > 0)
		memcpy(*pp + 2, s, n);
	(*pp)[2 + n] = 0;
	*pp += 3 + n;
}

static const char *
nz(const char *s)
{
	return s != NULL ? s : "";
}

int
record_encode(const Touchpoint__V1__Event *ev, const struct record_ids *ids, uint8_t *buf,
              size_t cap, size_t *len)
{
	const char *s[REC_NSTR] = { nz(ev->event_id), nz(ev->customer_id), "", "", "", "" };
	size_t sl[REC_NSTR], need = RECORD_HDR, ntraits = 0, i;
	uint8_t kind = 0, interaction = 0, flags = 0, *p;
	double num = 0;

	switch (ev->kind_case) {
	case TOUCHPOINT__V1__EVENT__KIND_TOUCH:
		kind = ATTR_TOUCH;
		s[REC_SOURCE] = nz(ev->touch->source);
		s[REC_MEDIUM] = nz(ev->touch->medium);
		if (ev->touch->interaction < 0 || ev->touch->interaction > 255)
			return -1;
		interaction = (uint8_t)ev->touch->interaction;
		if (ev->touch->cost_present_case == TOUCHPOINT__V1__TOUCH__COST_PRESENT_COST) {
			flags |= RECORD_F_COST;
			num = ev->touch->cost;
		}
		break;
	case TOUCHPOINT__V1__EVENT__KIND_CONVERSION:
		kind = ATTR_CONVERSION;
		num = ev->conversion->value;
		if (ids->name_default)
			flags |= RECORD_F_NAME_DFLT;
		break;
	case TOUCHPOINT__V1__EVENT__KIND_IDENTIFY:
		kind = ATTR_IDENTIFY;
		ntraits = ev->identify->n_traits;
		if (ntraits > RECORD_MAX_TRAIT)
			return -1;
		break;
	case TOUCHPOINT__V1__EVENT__KIND_ALIAS:
		kind = ATTR_ALIAS;
		s[REC_PREVIOUS_ID] = nz(ev->alias->previous_id);
		break;
	case TOUCHPOINT__V1__EVENT__KIND_SPEND:
		kind = ATTR_SPEND;
		s[REC_DAY] = nz(ev->spend->day);
		num = ev->spend->amount;
		break;
	default:
		return -1;
	}
	for (i = 0; i < REC_NSTR; i++) {
		sl[i] = strlen(s[i]);
		if (sl[i] > RECORD_MAX_STR)
			return -1;
		need += 3 + sl[i];
	}
	for (i = 0; i < ntraits; i++) {
		const Touchpoint__V1__Trait *t = ev->identify->traits[i];

		if (t == NULL || strlen(nz(t->key)) > RECORD_MAX_STR ||
		    strlen(nz(t->value)) > RECORD_MAX_STR)
			return -1;
		need += 6 + strlen(nz(t->key)) + strlen(nz(t->value));
	}
	if (need > cap || need > RECORD_MAX)
		return -1;

	memset(buf, 0, RECORD_HDR);
	buf[0] = RECORD_VERSION;
	buf[1] = kind;
	buf[2] = interaction;
	buf[3] = flags;
	buf[4] = (uint8_t)ntraits;
	memcpy(buf + 8, &ids->channel, 4);
	memcpy(buf + 12, &ids->campaign, 4);
	memcpy(buf + 16, &ids->name, 4);
	memcpy(buf + 20, &ids->currency, 4);
	memcpy(buf + 24, &ev->timestamp_us, 8);
	memcpy(buf + 32, &ids->seq, 8);
	memcpy(buf + 40, &ids->cust, 8);
	memcpy(buf + 48, &num, 8);
	memcpy(buf + 56, &ids->day, 4);
	p = buf + RECORD_HDR;
	for (i = 0; i < REC_NSTR; i++)
		put_str(&p, s[i], sl[i]);
	for (i = 0; i < ntraits; i++) {
		const Touchpoint__V1__Trait *t = ev->identify->traits[i];

		put_str(&p, nz(t->key), strlen(nz(t->key)));
		put_str(&p, nz(t->value), strlen(nz(t->value)));
	}
	*len = (size_t)(p - buf);
	return 0;
}

int
record_header(const void *p, size_t len, struct record *r)
{
	const uint8_t *b = p;

	if (len < RECORD_HDR || b[0] != RECORD_VERSION)
		return -1;
	r->kind = b[1];
	r->interaction = b[2];
	r->flags = b[3];
	r->ntraits = b[4];
	memcpy(&r->channel, b + 8, 4);
	memcpy(&r->campaign, b + 12, 4);
	memcpy(&r->name, b + 16, 4);
	memcpy(&r->currency, b + 20, 4);
	memcpy(&r->ts, b + 24, 8);
	memcpy(&r->seq, b + 32, 8);
	memcpy(&r->cust, b + 40, 8);
	memcpy(&r->num, b + 48, 8);
	memcpy(&r->day, b + 56, 4);
	r->val = b;
	r->end = b + len;
	return 0;
}

/* Checks one length-prefixed, NUL-terminated string at *pp and steps over it. */
static int
get_str(const uint8_t **pp, const uint8_t *end, const char **s, uint16_t *l)
{
	uint16_t n;

	if (end - *pp < 3)
		return -1;
	memcpy(&n, *pp, 2);
	if (n > RECORD_MAX_STR || end - *pp < 3 + (ptrdiff_t)n || (*pp)[2 + n] != 0)
		return -1;
	if (s != NULL)
		*s = (const char *)*pp + 2;
	if (l != NULL)
		*l = n;
	*pp += 3 + n;
	return 0;
}

int
record_parse(const void *p, size_t len, struct record *r)
{
	const uint8_t *b = p, *end = b + len, *q;
	unsigned i;

	if (record_header(p, len, r) != 0 || r->kind < ATTR_TOUCH || r->kind > ATTR_SPEND ||
	    r->ntraits > RECORD_MAX_TRAIT || len > RECORD_MAX)
		return -1;
	q = b + RECORD_HDR;
	for (i = 0; i < REC_NSTR; i++)
		if (get_str(&q, end, &r->str[i], &r->len[i]) != 0)
			return -1;
	r->traits = q;
	for (i = 0; i < 2 * r->ntraits; i++)
		if (get_str(&q, end, NULL, NULL) != 0)
			return -1;
	if (q != end)
		return -1;
	r->end = end;
	return 0;
}

int
record_parse_scan(const void *p, size_t len, struct record *r)
{
	const uint8_t *b = p, *q = b + RECORD_HDR;

	if (record_header(p, len, r) != 0 || r->kind < ATTR_TOUCH || r->kind > ATTR_SPEND ||
	    r->ntraits > RECORD_MAX_TRAIT || len > RECORD_MAX)
		return -1;
	if (r->kind == ATTR_IDENTIFY)
		return record_parse(p, len, r);
	r->end = b + len;
	if (get_str(&q, r->end, &r->str[REC_EVENT_ID], &r->len[REC_EVENT_ID]) != 0 ||
	    get_str(&q, r->end, &r->str[REC_CUSTOMER_ID], &r->len[REC_CUSTOMER_ID]) != 0)
		return -1;
	r->ntraits = 0;
	r->traits = NULL;
	return 0;
}

void
record_traits(const struct record *r, struct attr_trait *out)
{
	const uint8_t *q = r->traits;
	unsigned i;

	/* record_parse() has checked every length already. */
	for (i = 0; i < r->ntraits; i++) {
		get_str(&q, r->end, &out[i].key, NULL);
		get_str(&q, r->end, &out[i].value, NULL);
	}
}

void
record_view(const struct record *r, struct attr_event *v, const struct attr_trait *traits)
{
	v->ts_us = r->ts;
	v->seq = r->seq;
	v->kind = r->kind;
	v->channel = r->channel;
	v->campaign = r->campaign;
	v->name = r->name;
	v->value = r->kind == ATTR_CONVERSION ? r->num : 0;
	v->traits = r->ntraits > 0 ? traits : NULL;
	v->ntraits = r->kind == ATTR_IDENTIFY ? r->ntraits : 0;
}

static char *
dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

/* An interned name as a fresh string; "" for id 0; NULL if unknown or out of memory. */
static char *
dup_name(uint32_t id, const char *(*name)(void *, uint32_t), void *arg)
{
	const char *s;

	if (id == 0)
		return dup_n("", 0);
	if ((s = name(arg, id)) == NULL)
		return NULL;
	return dup_n(s, strlen(s));
}

Touchpoint__V1__Event *
record_to_event(const struct record *r, const char *(*name)(void *, uint32_t), void *arg)
{
	Touchpoint__V1__Event *ev;
	unsigned i;

	if ((ev = malloc(sizeof(*ev))) == NULL)
		return NULL;
	touchpoint__v1__event__init(ev);
	ev->event_id = dup_n(r->str[REC_EVENT_ID], r->len[REC_EVENT_ID]);
	ev->customer_id = dup_n(r->str[REC_CUSTOMER_ID], r->len[REC_CUSTOMER_ID]);
	ev->timestamp_us = r->ts;
	if (ev->event_id == NULL || ev->customer_id == NULL)
		goto fail;
	switch (r->kind) {
	case ATTR_TOUCH: {
		Touchpoint__V1__Touch *t = malloc(sizeof(*t));

		if (t == NULL)
			goto fail;
		touchpoint__v1__touch__init(t);
		ev->kind_case = TOUCHPOINT__V1__EVENT__KIND_TOUCH;
		ev->touch = t;
		t->channel = dup_name(r->channel, name, arg);
		t->campaign = dup_name(r->campaign, name, arg);
		t->source = dup_n(r->str[REC_SOURCE], r->len[REC_SOURCE]);
		t->medium = dup_n(r->str[REC_MEDIUM], r->len[REC_MEDIUM]);
		t->interaction = (Touchpoint__V1__Interaction)r->interaction;
		if (r->flags & RECORD_F_COST) {
			t->cost_present_case = TOUCHPOINT__V1__TOUCH__COST_PRESENT_COST;
			t->cost = r->num;
		}
		if (t->channel == NULL || t->campaign == NULL || t->source == NULL ||
		    t->medium == NULL)
			goto fail;
		break;
	}
	case ATTR_CONVERSION: {
		Touchpoint__V1__Conversion *c = malloc(sizeof(*c));

		if (c == NULL)
			goto fail;
		touchpoint__v1__conversion__init(c);
		ev->kind_case = TOUCHPOINT__V1__EVENT__KIND_CONVERSION;
		ev->conversion = c;
		c->value = r->num;
		c->currency = dup_name(r->currency, name, arg);
		c->name =
		    (r->flags & RECORD_F_NAME_DFLT) ? dup_n("", 0) : dup_name(r->name, name, arg);
		if (c->currency == NULL || c->name == NULL)
			goto fail;
		break;
	}
	case ATTR_IDENTIFY: {
		Touchpoint__V1__Identify *id = malloc(sizeof(*id));
		struct attr_trait tr[RECORD_MAX_TRAIT];

		if (id == NULL)
			goto fail;
		touchpoint__v1__identify__init(id);
		ev->kind_case = TOUCHPOINT__V1__EVENT__KIND_IDENTIFY;
		ev->identify = id;
		if (r->ntraits == 0)
			break;
		if ((id->traits = calloc(r->ntraits, sizeof(*id->traits))) == NULL)
			goto fail;
		record_traits(r, tr);
		for (i = 0; i < r->ntraits; i++) {
			Touchpoint__V1__Trait *t = malloc(sizeof(*t));

			if (t == NULL)
				goto fail;
			touchpoint__v1__trait__init(t);
			id->traits[i] = t;
			id->n_traits = i + 1;
			t->key = dup_n(tr[i].key, strlen(tr[i].key));
			t->value = dup_n(tr[i].value, strlen(tr[i].value));
			if (t->key == NULL || t->value == NULL)
				goto fail;
		}
		break;
	}
	case ATTR_ALIAS: {
		Touchpoint__V1__Alias *a = malloc(sizeof(*a));

		if (a == NULL)
			goto fail;
		touchpoint__v1__alias__init(a);
		ev->kind_case = TOUCHPOINT__V1__EVENT__KIND_ALIAS;
		ev->alias = a;
		a->previous_id = dup_n(r->str[REC_PREVIOUS_ID], r->len[REC_PREVIOUS_ID]);
		if (a->previous_id == NULL)
			goto fail;
		break;
	}
	case ATTR_SPEND: {
		Touchpoint__V1__Spend *sp = malloc(sizeof(*sp));

		if (sp == NULL)
			goto fail;
		touchpoint__v1__spend__init(sp);
		ev->kind_case = TOUCHPOINT__V1__EVENT__KIND_SPEND;
		ev->spend = sp;
		sp->channel = dup_name(r->channel, name, arg);
		sp->campaign = dup_name(r->campaign, name, arg);
		sp->day = dup_n(r->str[REC_DAY], r->len[REC_DAY]);
		sp->amount = r->num;
		sp->currency = dup_name(r->currency, name, arg);
		if (sp->channel == NULL || sp->campaign == NULL || sp->day == NULL ||
		    sp->currency == NULL)
			goto fail;
		break;
	}
	default:
		goto fail;
	}
	return ev;
fail:
	/*
	 * Every string not yet set is still protobuf_c_empty_string, which free_unpacked would
	 * free: replace those by NULL first (free_unpacked skips NULL).
	 */
	if (ev->kind_case == TOUCHPOINT__V1__EVENT__KIND_TOUCH && ev->touch != NULL) {
		Touchpoint__V1__Touch *t = ev->touch;

		if (t->channel == protobuf_c_empty_string)
			t->channel = NULL;
		if (t->campaign == protobuf_c_empty_string)
			t->campaign = NULL;
		if (t->source == protobuf_c_empty_string)
			t->source = NULL;
		if (t->medium == protobuf_c_empty_string)
			t->medium = NULL;
	} else if (ev->kind_case == TOUCHPOINT__V1__EVENT__KIND_CONVERSION &&
	           ev->conversion != NULL) {
		if (ev->conversion->currency == protobuf_c_empty_string)
			ev->conversion->currency = NULL;
		if (ev->conversion->name == protobuf_c_empty_string)
			ev->conversion->name = NULL;
	} else if (ev->kind_case == TOUCHPOINT__V1__EVENT__KIND_ALIAS && ev->alias != NULL) {
		if (ev->alias->previous_id == protobuf_c_empty_string)
			ev->alias->previous_id = NULL;
	} else if (ev->kind_case == TOUCHPOINT__V1__EVENT__KIND_SPEND && ev->spend != NULL) {
		Touchpoint__V1__Spend *sp = ev->spend;

		if (sp->channel == protobuf_c_empty_string)
			sp->channel = NULL;
		if (sp->campaign == protobuf_c_empty_string)
			sp->campaign = NULL;
		if (sp->day == protobuf_c_empty_string)
			sp->day = NULL;
		if (sp->currency == protobuf_c_empty_string)
			sp->currency = NULL;
	} else if (ev->kind_case == TOUCHPOINT__V1__EVENT__KIND_IDENTIFY && ev->identify != NULL) {
		for (i = 0; i < ev->identify->n_traits; i++) {
			Touchpoint__V1__Trait *t = ev->identify->traits[i];

			if (t->key == protobuf_c_empty_string)
				t->key = NULL;
			if (t->value == protobuf_c_empty_string)
				t->value = NULL;
		}
	}
	if (ev->event_id == protobuf_c_empty_string)
		ev->event_id = NULL;
	if (ev->customer_id == protobuf_c_empty_string)
		ev->customer_id = NULL;
	touchpoint__v1__event__free_unpacked(ev, NULL);
	return NULL;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void
sip_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = ROTL(v[2], 32);
}

static uint64_t
load_le64(const uint8_t *p)
{
	uint64_t x = 0;
	int i;

	for (i = 7; i >= 0; i--)
		x = (x << 8) | p[i];
	return x;
}

uint64_t
record_hash(const uint8_t key[16], const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8), m, last;
	uint64_t v[4] = { k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
		          k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL };
	size_t i, tail = n & 7;

	for (i = 0; i + 8 <= n; i += 8) {
		m = load_le64(b + i);
		v[3] ^= m;
		sip_round(v);
		sip_round(v);
		v[0] ^= m;
	}
	last = (uint64_t)(n & 0xff) << 56;
	while (tail > 0) {
		tail--;
		last |= (uint64_t)b[i + tail] << (8 * tail);
	}
	v[3] ^= last;
	sip_round(v);
	sip_round(v);
	v[0] ^= last;
	v[2] ^= 0xff;
	sip_round(v);
	sip_round(v);
	sip_round(v);
	sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int
record_parse_day(const char *s, int32_t *day)
{
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned y = 0, m, d;
	int i;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	for (i = 0; i < 4; i++)
		y = y * 10 + (unsigned)(s[i] - '0');
	m = (unsigned)(s[5] - '0') * 10 + (unsigned)(s[6] - '0');
	d = (unsigned)(s[8] - '0') * 10 + (unsigned)(s[9] - '0');
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return -1;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return -1;
	*day = (int32_t)days_from_civil(y, m, d);
	return 0;
}

int32_t
record_day_of(int64_t ts_us)
{
	const int64_t us_day = 86400LL * 1000000LL;
	int64_t d = ts_us / us_day;

	if (ts_us % us_day < 0)
		d--;
	return (int32_t)d;
}
