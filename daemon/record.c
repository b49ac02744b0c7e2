/*
 * record: encoding and decoding of one stored event, and the keyed hash used for ids.
 * Decoding trusts nothing: every length is checked against the record's end.
 */
#include <stdlib.h>
#include <string.h>

#include "record.h"

/* Upper bound of a varint of 32 bits and of a string field of RECORD_MAX_STR bytes. */
#define VARINT_MAX 5
#define STR_MAX    (2 + RECORD_MAX_STR + 1)

/* One load, not a loop of eight: the copies' varints read through it too. */
static inline uint64_t
load_le64(const uint8_t *p)
{
	uint64_t x;

	memcpy(&x, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	x = __builtin_bswap64(x);
#endif
	return x;
}

static uint8_t *
put_varint(uint8_t *p, uint64_t x)
{
	while (x >= 0x80) {
		*p++ = (uint8_t)(x | 0x80);
		x >>= 7;
	}
	*p++ = (uint8_t)x;
	return p;
}

static uint8_t *
put_str(uint8_t *p, const char *s, size_t n)
{
	p = put_varint(p, (uint32_t)n);
	if (n > 0)
		memcpy(p, s, n);
	p[n] = 0;
	return p + n + 1;
}

static const char *
nz(const char *s)
{
	return s != NULL ? s : "";
}

static uint64_t
bits_of(double d)
{
	uint64_t b;

	memcpy(&b, &d, 8);
	return b;
}

int
record_encode(const Touchpoint__V1__Event *ev, const struct record_ids *ids, uint8_t *buf,
              size_t cap, size_t *len)
{
	const char *eid = nz(ev->event_id), *cid = nz(ev->customer_id), *extra = NULL;
	size_t el = strlen(eid), cl = strlen(cid), xl = 0, need, ntraits = 0, i;
	uint8_t kind = 0, flags = 0, mask = 0, interaction = 0, *p;
	double num = 0;

	switch (ev->kind_case) {
	case TOUCHPOINT__V1__EVENT__KIND_TOUCH:
		kind = ATTR_TOUCH;
		if (ev->touch->interaction < 0 || ev->touch->interaction > 255)
			return -1;
		interaction = (uint8_t)ev->touch->interaction;
		if (ev->touch->cost_present_case == TOUCHPOINT__V1__TOUCH__COST_PRESENT_COST) {
			mask |= RECORD_M_NUM;
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
		extra = nz(ev->alias->previous_id);
		break;
	case TOUCHPOINT__V1__EVENT__KIND_SPEND:
		kind = ATTR_SPEND;
		extra = nz(ev->spend->day);
		num = ev->spend->amount;
		break;
	default:
		return -1;
	}
	/* -0.0 and NaN payloads come back bit for bit: only all-zero bits are left out. */
	if (kind != ATTR_TOUCH && bits_of(num) != 0)
		mask |= RECORD_M_NUM;
	mask |=
	    (interaction != 0 ? RECORD_M_INTER : 0) | (ids->channel != 0 ? RECORD_M_CHANNEL : 0) |
	    (ids->campaign != 0 ? RECORD_M_CAMPAIGN : 0) | (ids->name != 0 ? RECORD_M_NAME : 0) |
	    (ids->currency != 0 ? RECORD_M_CURRENCY : 0) |
	    (ids->source != 0 ? RECORD_M_SOURCE : 0) | (ids->medium != 0 ? RECORD_M_MEDIUM : 0);
	if (extra != NULL)
		xl = strlen(extra);
	if (el > RECORD_MAX_STR || cl > RECORD_MAX_STR || xl > RECORD_MAX_STR)
		return -1;
	/*
	 * A bound, not the exact size: every varint counted at its largest. Traits count at
	 * their own lengths: at STR_MAX each, SPEC §2's 32 pairs would be over RECORD_MAX
	 * although their keys are at most 64 bytes.
	 */
	need = 3 + 6 * VARINT_MAX + 8 + 3 * STR_MAX + 4 + 1;
	for (i = 0; i < ntraits; i++) {
		const Touchpoint__V1__Trait *t = ev->identify->traits[i];
		size_t kl, vl;

		if (t == NULL || (kl = strlen(nz(t->key))) > RECORD_MAX_STR ||
		    (vl = strlen(nz(t->value))) > RECORD_MAX_STR)
			return -1;
		need += 2 * (VARINT_MAX + 1) + kl + vl;
	}
	if (need > cap || need > RECORD_MAX)
		return -1;

	p = buf;
	*p++ = (uint8_t)(kind | flags);
	*p++ = mask;
	if (mask & RECORD_M_INTER)
		*p++ = interaction;
	if (mask & RECORD_M_CHANNEL)
		p = put_varint(p, ids->channel);
	if (mask & RECORD_M_CAMPAIGN)
		p = put_varint(p, ids->campaign);
	if (mask & RECORD_M_NAME)
		p = put_varint(p, ids->name);
	if (mask & RECORD_M_CURRENCY)
		p = put_varint(p, ids->currency);
	if (mask & RECORD_M_NUM) {
		memcpy(p, &num, 8);
		p += 8;
	}
	p = put_str(p, cid, cl);
	p = put_str(p, eid, el);
	if (mask & RECORD_M_SOURCE)
		p = put_varint(p, ids->source);
	if (mask & RECORD_M_MEDIUM)
		p = put_varint(p, ids->medium);
	switch (kind) {
	case ATTR_ALIAS:
		p = put_str(p, extra, xl);
		break;
	case ATTR_SPEND:
		memcpy(p, &ids->day, 4);
		p = put_str(p + 4, extra, xl);
		break;
	case ATTR_IDENTIFY:
		*p++ = (uint8_t)ntraits;
		for (i = 0; i < ntraits; i++) {
			const Touchpoint__V1__Trait *t = ev->identify->traits[i];

			p = put_str(p, nz(t->key), strlen(nz(t->key)));
			p = put_str(p, nz(t->value), strlen(nz(t->value)));
		}
		break;
	default:
		break;
	}
	*len = (size_t)(p - buf);
	return 0;
}

void
record_prefix_put(uint8_t *p, uint64_t cust, int64_t ts)
{
	memcpy(p, &cust, 8);
	memcpy(p + 8, &ts, 8);
}

int
record_prefix_get(const void *p, size_t len, uint64_t *cust, int64_t *ts, const void **rec,
                  size_t *rlen)
{
	const uint8_t *b = p;

	if (len < RECORD_PREFIX)
		return -1;
	memcpy(cust, b, 8);
	memcpy(ts, b + 8, 8);
	*rec = b + RECORD_PREFIX;
	*rlen = len - RECORD_PREFIX;
	return 0;
}

/* Reads a varint of at most bits (32 or 64) bits at *pp and steps over it. */
static int
get_uvarint(const uint8_t **pp, const uint8_t *end, unsigned bits, uint64_t *x)
{
	const uint8_t *q = *pp;
	uint64_t v = 0;
	unsigned shift;

	for (shift = 0; shift < bits; shift += 7) {
		if (q >= end)
			return -1;
		if (shift + 7 > bits && (*q >> (bits - shift)) != 0)
			return -1; /* more than bits bits, or a continuation past them */
		v |= (uint64_t)(*q & 0x7f) << shift;
		if ((*q++ & 0x80) == 0) {
			*x = v;
			*pp = q;
			return 0;
		}
	}
	return -1;
}

static int
get_varint(const uint8_t **pp, const uint8_t *end, uint32_t *x)
{
	uint64_t v;

	if (get_uvarint(pp, end, 32, &v) != 0)
		return -1;
	*x = (uint32_t)v;
	return 0;
}

/* Checks one length-prefixed, NUL-terminated string at *pp and steps over it. */
static int
get_str(const uint8_t **pp, const uint8_t *end, const char **s, uint16_t *l)
{
	const uint8_t *q = *pp;
	uint32_t n;

	/* The common case first: a one-byte length, bounds checked once. */
	if (q < end && *q < 0x80) {
		n = *q++;
	} else if (get_varint(&q, end, &n) != 0 || n > RECORD_MAX_STR) {
		return -1;
	}
	if (end - q < (ptrdiff_t)n + 1 || q[n] != 0)
		return -1;
	if (s != NULL)
		*s = (const char *)q;
	if (l != NULL)
		*l = (uint16_t)n;
	*pp = q + n + 1;
	return 0;
}

/* The fixed fields and customer_id; *qp is left after customer_id. */
int
record_kind(const void *p, size_t len)
{
	const uint8_t *b = p;

	if (len < 2 || len > RECORD_MAX || b[0] & ~(0x07 | RECORD_F_NAME_DFLT))
		return -1;
	return (b[0] & 0x07) >= ATTR_TOUCH && (b[0] & 0x07) <= ATTR_SPEND ? b[0] & 0x07 : -1;
}

static int
parse_head(const uint8_t *b, size_t len, uint64_t cust, int64_t ts, uint64_t seq, struct record *r,
           const uint8_t **qp)
{
	const uint8_t *q = b, *end = b + len;
	unsigned mask;

	if (len < 2 || len > RECORD_MAX)
		return -1;
	r->kind = b[0] & 0x07;
	r->flags = b[0] & RECORD_F_NAME_DFLT;
	mask = b[1];
	q += 2;
	if (r->kind < ATTR_TOUCH || r->kind > ATTR_SPEND || (b[0] & ~(0x07 | RECORD_F_NAME_DFLT)))
		return -1;
	r->interaction = 0;
	r->channel = r->campaign = r->name = r->currency = r->source = r->medium = 0;
	r->num = 0;
	r->day = 0;
	r->ntraits = 0;
	r->traits = NULL;
	r->cust = cust;
	r->ts = ts;
	r->seq = seq;
	r->val = b;
	r->end = end;
	if (mask & RECORD_M_INTER) {
		if (q >= end)
			return -1;
		r->interaction = *q++;
	}
	if (((mask & RECORD_M_CHANNEL) && get_varint(&q, end, &r->channel) != 0) ||
	    ((mask & RECORD_M_CAMPAIGN) && get_varint(&q, end, &r->campaign) != 0) ||
	    ((mask & RECORD_M_NAME) && get_varint(&q, end, &r->name) != 0) ||
	    ((mask & RECORD_M_CURRENCY) && get_varint(&q, end, &r->currency) != 0))
		return -1;
	if (mask & RECORD_M_NUM) {
		if (end - q < 8)
			return -1;
		memcpy(&r->num, q, 8);
		q += 8;
		if (r->kind == ATTR_TOUCH)
			r->flags |= RECORD_F_COST;
	}
	if (get_str(&q, end, &r->str[REC_CUSTOMER_ID], &r->len[REC_CUSTOMER_ID]) != 0)
		return -1;
	*qp = q;
	return mask;
}

int
record_parse(const void *p, size_t len, uint64_t cust, int64_t ts, uint64_t seq, struct record *r)
{
	const uint8_t *b = p, *end = b + len, *q;
	int mask;
	unsigned i;

	if ((mask = parse_head(b, len, cust, ts, seq, r, &q)) < 0 ||
	    get_str(&q, end, &r->str[REC_EVENT_ID], &r->len[REC_EVENT_ID]) != 0)
		return -1;
	if (((mask & RECORD_M_SOURCE) && get_varint(&q, end, &r->source) != 0) ||
	    ((mask & RECORD_M_MEDIUM) && get_varint(&q, end, &r->medium) != 0))
		return -1;
	r->str[REC_PREVIOUS_ID] = r->str[REC_DAY] = "";
	r->len[REC_PREVIOUS_ID] = r->len[REC_DAY] = 0;
	switch (r->kind) {
	case ATTR_ALIAS:
		if (get_str(&q, end, &r->str[REC_PREVIOUS_ID], &r->len[REC_PREVIOUS_ID]) != 0)
			return -1;
		break;
	case ATTR_SPEND:
		if (end - q < 4)
			return -1;
		memcpy(&r->day, q, 4);
		q += 4;
		if (get_str(&q, end, &r->str[REC_DAY], &r->len[REC_DAY]) != 0)
			return -1;
		break;
	case ATTR_IDENTIFY:
		if (q >= end || *q > RECORD_MAX_TRAIT)
			return -1;
		r->ntraits = *q++;
		r->traits = q;
		for (i = 0; i < 2 * r->ntraits; i++)
			if (get_str(&q, end, NULL, NULL) != 0)
				return -1;
		break;
	default:
		break;
	}
	return q == end ? 0 : -1;
}

int
record_parse_scan(const void *p, size_t len, uint64_t cust, int64_t ts, uint64_t seq,
                  struct record *r)
{
	const uint8_t *q;

	if (len >= 1 && (((const uint8_t *)p)[0] & 0x07) == ATTR_IDENTIFY)
		return record_parse(p, len, cust, ts, seq, r);
	return parse_head(p, len, cust, ts, seq, r, &q) < 0 ? -1 : 0;
}

int
record_compact_kind(int kind)
{
	return kind == ATTR_TOUCH || kind == ATTR_CONVERSION || kind == ATTR_IDENTIFY;
}

size_t
record_compact_bound(const struct record *r)
{
	/* two 64-bit varints, the head, three 32-bit varints, the value, ntraits, the pairs */
	size_t n = 2 * 10 + 1 + 3 * VARINT_MAX + 8 + 1;

	if (r->kind == ATTR_IDENTIFY && r->ntraits > 0)
		n += (size_t)(r->end - r->traits);
	return n;
}

/*
 * A varint of at most 8 bytes at q decoded without a branch per byte: its end is the first
 * byte without the top bit. A copy's times and seqs take 3 to 8 bytes, and the loop of
 * get_uvarint() mispredicted where each ended (session 19: a copy's events decoded in
 * 32 ns each with it, 23 without). [lo, end) is the value the varint is in: within 8 bytes
 * of its end, the value's last 8 bytes are loaded and shifted down to q, so that the last
 * events of a short value take this way too. Returns the length, or 0 for the loop to
 * decide (longer, or not ended before end).
 */
static inline unsigned
fast_varint(const uint8_t *q, const uint8_t *lo, const uint8_t *end, uint64_t *x)
{
	ptrdiff_t left = end - q;
	uint64_t w, stop;
	unsigned n;

	if (left >= 8) {
		w = load_le64(q);
		stop = ~w & UINT64_C(0x8080808080808080);
	} else if (left > 0 && end - lo >= 8) {
		w = load_le64(end - 8) >> (8 * (8 - left));
		stop = ~w & UINT64_C(0x8080808080808080) & (~UINT64_C(0) >> (64 - 8 * left));
	} else {
		return 0;
	}
	if (stop == 0)
		return 0;
	n = (unsigned)__builtin_ctzll(stop) / 8 + 1;
	w &= (~UINT64_C(0) >> (64 - 8 * n)) & UINT64_C(0x7f7f7f7f7f7f7f7f);
	w = (w & UINT64_C(0x007f007f007f007f)) | ((w & UINT64_C(0x7f007f007f007f00)) >> 1);
	w = (w & UINT64_C(0x00003fff00003fff)) | ((w & UINT64_C(0x3fff00003fff0000)) >> 2);
	w = (w & UINT64_C(0x000000000fffffff)) | ((w & UINT64_C(0x0fffffff00000000)) >> 4);
	*x = w;
	return n;
}

/*
 * The copies' varint of at most bits (32 or 64) bits at q: the position after it, or NULL
 * when it is malformed or runs past end. The position is taken and returned, not passed by
 * pointer, so that it stays in a register. What fast_varint() does not take goes to the
 * loop, so both refuse the same varints.
 */
static inline const uint8_t *
dec_varint(const uint8_t *q, const uint8_t *lo, const uint8_t *end, unsigned bits, uint64_t *x)
{
	unsigned n;

	if (q < end && *q < 0x80) {
		*x = *q;
		return q + 1;
	}
	if ((n = fast_varint(q, lo, end, x)) != 0 &&
	    (bits == 64 || (n <= VARINT_MAX && *x <= UINT32_MAX)))
		return q + n;
	return get_uvarint(&q, end, bits, x) == 0 ? q : NULL;
}

static inline const uint8_t *
dec_v32(const uint8_t *q, const uint8_t *lo, const uint8_t *end, uint32_t *x)
{
	uint64_t v;

	if ((q = dec_varint(q, lo, end, 32, &v)) != NULL)
		*x = (uint32_t)v;
	return q;
}

/* Differences as zigzag varints: small either way (a copy is in ts, not seq, order). */
static uint64_t
zigzag(uint64_t d)
{
	return (d << 1) ^ (uint64_t) - (int64_t)(d >> 63);
}

static uint64_t
unzigzag(uint64_t z)
{
	return (z >> 1) ^ (uint64_t) - (int64_t)(z & 1);
}

/*
 * The next event's time and seq at q: *ts and *seq (the previous event's) plus theirs; the
 * position after them, or NULL.
 */
static inline const uint8_t *
get_stamp(const uint8_t *q, const uint8_t *lo, const uint8_t *end, uint64_t *ts, uint64_t *seq)
{
	uint64_t d;

	if ((q = dec_varint(q, lo, end, 64, &d)) == NULL)
		return NULL;
	*ts += unzigzag(d);
	if ((q = dec_varint(q, lo, end, 64, &d)) == NULL)
		return NULL;
	*seq += unzigzag(d);
	return q;
}

uint8_t *
record_compact_put(const struct record *r, uint8_t *p, int64_t *pts, uint64_t *pseq)
{
	uint8_t head = (uint8_t)r->kind, *h;
	int val = r->kind == ATTR_CONVERSION && bits_of(r->num) != 0;

	p = put_varint(p, zigzag((uint64_t)r->ts - (uint64_t)*pts));
	p = put_varint(p, zigzag(r->seq - *pseq));
	*pts = r->ts;
	*pseq = r->seq;
	h = p++;
	if (r->channel != 0) {
		head |= RECORD_C_CHANNEL;
		p = put_varint(p, r->channel);
	}
	if (r->campaign != 0) {
		head |= RECORD_C_CAMPAIGN;
		p = put_varint(p, r->campaign);
	}
	if (r->name != 0) {
		head |= RECORD_C_NAME;
		p = put_varint(p, r->name);
	}
	if (val) {
		head |= RECORD_C_VALUE;
		memcpy(p, &r->num, 8);
		p += 8;
	}
	*h = head;
	if (r->kind == ATTR_IDENTIFY) {
		/* record_parse() has checked the pairs: they end the record. */
		*p++ = (uint8_t)r->ntraits;
		if (r->ntraits > 0) {
			memcpy(p, r->traits, (size_t)(r->end - r->traits));
			p += r->end - r->traits;
		}
	}
	return p;
}

uint8_t *
record_compact_count_put(uint8_t *p, uint32_t n)
{
	return put_varint(p, n);
}

int
record_compact_count(const void *p, size_t len, uint32_t *n, const uint8_t **first)
{
	const uint8_t *q = p;

	if (get_varint(&q, q + len, n) != 0 || *n == 0)
		return -1;
	*first = q;
	return 0;
}

/*
 * The head and fields of one body at q into v (its ts and seq are the caller's); an
 * identify event's pairs start at *tp and go to traits[] if it is not NULL. The position
 * after the body, or NULL.
 */
static inline const uint8_t *
body_fields(const uint8_t *q, const uint8_t *lo, const uint8_t *end, struct attr_event *v,
            const uint8_t **tp, struct attr_trait *traits)
{
	unsigned head, k;

	if (q >= end)
		return NULL;
	head = *q++;
	v->kind = (int)(head & 0x07);
	v->channel = v->campaign = v->name = 0;
	v->value = 0;
	v->traits = NULL;
	v->ntraits = 0;
	if (!record_compact_kind(v->kind) || (head & 0x80))
		return NULL;
	if (((head & RECORD_C_CHANNEL) && (q = dec_v32(q, lo, end, &v->channel)) == NULL) ||
	    ((head & RECORD_C_CAMPAIGN) && (q = dec_v32(q, lo, end, &v->campaign)) == NULL) ||
	    ((head & RECORD_C_NAME) && (q = dec_v32(q, lo, end, &v->name)) == NULL))
		return NULL;
	if (head & RECORD_C_VALUE) {
		if (end - q < 8 || v->kind != ATTR_CONVERSION)
			return NULL;
		memcpy(&v->value, q, 8);
		q += 8;
	}
	if (v->kind == ATTR_IDENTIFY) {
		if (q >= end || *q > RECORD_MAX_TRAIT)
			return NULL;
		v->ntraits = *q++;
		*tp = q;
		for (k = 0; k < v->ntraits; k++)
			if (get_str(&q, end, traits != NULL ? &traits[k].key : NULL, NULL) != 0 ||
			    get_str(&q, end, traits != NULL ? &traits[k].value : NULL, NULL) != 0)
				return NULL;
	}
	return q;
}

/* One body at *qp (ts, seq already in r), stepped over. */
static int
compact_body(const uint8_t **qp, const uint8_t *lo, const uint8_t *end, struct record *r)
{
	struct attr_event v;
	const uint8_t *tp = NULL;

	r->val = *qp;
	if ((*qp = body_fields(*qp, lo, end, &v, &tp, NULL)) == NULL)
		return -1;
	r->kind = v.kind;
	r->flags = RECORD_F_COMPACT;
	r->interaction = 0;
	r->channel = v.channel;
	r->campaign = v.campaign;
	r->name = v.name;
	r->currency = r->source = r->medium = 0;
	r->num = v.value;
	r->day = 0;
	r->ntraits = (unsigned)v.ntraits;
	r->traits = tp;
	r->end = *qp;
	return 0;
}

int
record_compact_parse(const uint8_t *first, const uint8_t *end, uint32_t n, uint64_t cust,
                     const char *cid, uint16_t cidlen, struct record *out)
{
	const uint8_t *q = first;
	uint64_t ts = 0, seq = 0;
	uint32_t i;

	for (i = 0; i < n; i++) {
		struct record *r = &out[i];

		if ((q = get_stamp(q, first, end, &ts, &seq)) == NULL ||
		    compact_body(&q, first, end, r) != 0)
			return -1;
		r->ts = (int64_t)ts;
		r->seq = seq;
		r->cust = cust;
		r->str[REC_CUSTOMER_ID] = cid;
		r->len[REC_CUSTOMER_ID] = cidlen;
	}
	return q == end ? 0 : -1;
}

int
record_compact_views(const uint8_t *first, const uint8_t *end, uint32_t n, struct attr_event *out,
                     struct attr_trait *traits, size_t *nt)
{
	const uint8_t *q = first, *tp;
	uint64_t ts = 0, seq = 0;
	uint32_t i;

	*nt = 0;
	for (i = 0; i < n; i++) {
		struct attr_event *v = &out[i];

		if ((q = get_stamp(q, first, end, &ts, &seq)) == NULL ||
		    (q = body_fields(q, first, end, v, &tp, traits + *nt)) == NULL)
			return -1;
		v->ts_us = (int64_t)ts;
		v->seq = seq;
		if (v->ntraits > 0)
			v->traits = traits + *nt;
		*nt += v->ntraits;
	}
	return q == end ? 0 : -1;
}

int
record_compact_body(const void *p, size_t len, int64_t ts, uint64_t seq, struct record *r)
{
	const uint8_t *q = p, *end = q + len;

	if (compact_body(&q, p, end, r) != 0 || q != end)
		return -1;
	r->ts = ts;
	r->seq = seq;
	r->cust = 0;
	r->str[REC_CUSTOMER_ID] = "";
	r->len[REC_CUSTOMER_ID] = 0;
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
		t->source = dup_name(r->source, name, arg);
		t->medium = dup_name(r->medium, name, arg);
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

/*
 * One SipHash round on four locals. A macro, not a function over an array: as a call that
 * kept v[] in memory it was 70 % of store_prepare's time (7 hashes an event on the NNG
 * workers; docs/BENCHMARKS.md, session 23).
 */
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)

uint64_t
record_hash(const uint8_t key[16], const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8), m, last;
	uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
	size_t i, tail = n & 7;

	for (i = 0; i + 8 <= n; i += 8) {
		m = load_le64(b + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	last = (uint64_t)(n & 0xff) << 56;
	while (tail > 0) {
		tail--;
		last |= (uint64_t)b[i + tail] << (8 * tail);
	}
	v3 ^= last;
	SIPROUND;
	SIPROUND;
	v0 ^= last;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
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
