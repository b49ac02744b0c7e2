/*
 * validate: SPEC §2 on decoded events, plus a small walker over the protobuf wire format
 * because protobuf-c silently truncates a string at an embedded NUL.
 */
#include "validate.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define VALIDATE_MAX_DEPTH 8

void
validate_report_init(struct validate_report *r, struct validate_violation *v, size_t cap)
{
	r->v = v;
	r->cap = cap;
	r->n = 0;
	r->total = 0;
	r->bad_events = 0;
}

static void
vr_add(struct validate_report *r, int32_t index, const char *prefix, const char *field,
       const char *fmt, ...)
{
	struct validate_violation *v;
	va_list ap;

	r->total++;
	if (r->n >= r->cap)
		return;
	v = &r->v[r->n++];
	v->index = index;
	/* Names are only formatted here, for a violation that is kept: never on the hot path. */
	if (prefix == NULL)
		snprintf(v->field, sizeof(v->field), "events[%d].%s", (int)index, field);
	else if (field != NULL && field[0] != '\0')
		snprintf(v->field, sizeof(v->field), "%s.%s", prefix, field);
	else
		snprintf(v->field, sizeof(v->field), "%s", prefix);
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
}

int
validate_utf8(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t need;
		unsigned char lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0; /* overlong */
			else if (c == 0xed)
				hi = 0x9f; /* surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90; /* overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* > U+10FFFF */
		} else {
			return 0;
		}
		if (len - i - 1 < need)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k <= need; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		i += need + 1;
	}
	return 1;
}

static int
string_ok(const char *s, size_t min, size_t max)
{
	size_t len = s != NULL ? strlen(s) : 0;

	return len >= min && len <= max && validate_utf8(s, len);
}

/* Length bounds and UTF-8 of one string; returns the number of violations. */
static size_t
check_string(struct validate_report *r, int32_t index, const char *prefix, const char *field,
             const char *s, size_t min, size_t max)
{
	size_t len = s != NULL ? strlen(s) : 0;

	if (len < min) {
		vr_add(r, index, prefix, field, "is required");
		return 1;
	}
	if (len > max) {
		vr_add(r, index, prefix, field, "is %zu bytes, the limit is %zu", len, max);
		return 1;
	}
	if (len > 0 && !validate_utf8(s, len)) {
		vr_add(r, index, prefix, field, "is not valid UTF-8");
		return 1;
	}
	return 0;
}

static size_t
check_amount(struct validate_report *r, int32_t index, const char *prefix, const char *field,
             double d)
{
	if (!isfinite(d)) {
		vr_add(r, index, prefix, field, "must be a finite number");
		return 1;
	}
	if (d < 0) {
		vr_add(r, index, prefix, field, "is %g, must be >= 0", d);
		return 1;
	}
	return 0;
}

static size_t
check_currency(struct validate_report *r, int32_t index, const char *prefix, const char *field,
               const char *s)
{
	if (s == NULL || s[0] == '\0')
		return 0;
	if (strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' &&
	    s[2] >= 'A' && s[2] <= 'Z')
		return 0;
	vr_add(r, index, prefix, field, "must be 3 upper-case letters (ISO 4217)");
	return 1;
}

static int
valid_day(const char *s)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d, leap;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return 0;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	if (y < 1970 || y > 2200 || m < 1 || m > 12 || d < 1)
		return 0;
	leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return d <= mdays[m - 1] + (m == 2 && leap);
}

size_t
validate_event(const Touchpoint__V1__Event *e, int32_t index, struct validate_report *r)
{
	const char *p = NULL; /* "events[index]" */
	size_t bad = 0;

	bad += check_string(r, index, p, "event_id", e->event_id, 1, 128);
	bad += check_string(r, index, p, "customer_id", e->customer_id,
	                    e->kind_case == TOUCHPOINT__V1__EVENT__KIND_SPEND ? 0 : 1, 256);
	if (e->timestamp_us < 0 || e->timestamp_us >= VALIDATE_TS_END_US) {
		vr_add(r, index, p, "timestamp_us",
		       "is %lld, must be in [0, 7289654400000000) (years 1970-2200)",
		       (long long)e->timestamp_us);
		bad++;
	}
	switch (e->kind_case) {
	case TOUCHPOINT__V1__EVENT__KIND_TOUCH: {
		const Touchpoint__V1__Touch *t = e->touch;

		bad += check_string(r, index, p, "touch.channel", t->channel, 1, 64);
		bad += check_string(r, index, p, "touch.campaign", t->campaign, 0, 128);
		bad += check_string(r, index, p, "touch.source", t->source, 0, 64);
		bad += check_string(r, index, p, "touch.medium", t->medium, 0, 64);
		if ((int)t->interaction < TOUCHPOINT__V1__INTERACTION__INTERACTION_UNSPECIFIED ||
		    (int)t->interaction > TOUCHPOINT__V1__INTERACTION__INTERACTION_OTHER) {
			vr_add(r, index, p, "touch.interaction", "%d is not a known interaction",
			       (int)t->interaction);
			bad++;
		}
		if (t->cost_present_case == TOUCHPOINT__V1__TOUCH__COST_PRESENT_COST)
			bad += check_amount(r, index, p, "touch.cost", t->cost);
		break;
	}
	case TOUCHPOINT__V1__EVENT__KIND_CONVERSION: {
		const Touchpoint__V1__Conversion *c = e->conversion;

		bad += check_amount(r, index, p, "conversion.value", c->value);
		bad += check_currency(r, index, p, "conversion.currency", c->currency);
		bad += check_string(r, index, p, "conversion.name", c->name, 0, 64);
		break;
	}
	case TOUCHPOINT__V1__EVENT__KIND_IDENTIFY: {
		const Touchpoint__V1__Identify *id = e->identify;
		char f[48];

		if (id->n_traits > 32) {
			vr_add(r, index, p, "identify.traits", "has %zu pairs, the limit is 32",
			       id->n_traits);
			bad++;
			break;
		}
		for (size_t i = 0; i < id->n_traits; i++) {
			const Touchpoint__V1__Trait *t = id->traits[i];

			if (!string_ok(t->key, 1, 64)) {
				snprintf(f, sizeof(f), "identify.traits[%zu].key", i);
				bad += check_string(r, index, p, f, t->key, 1, 64);
			}
			if (!string_ok(t->value, 0, 256)) {
				snprintf(f, sizeof(f), "identify.traits[%zu].value", i);
				bad += check_string(r, index, p, f, t->value, 0, 256);
			}
			for (size_t j = 0; j < i; j++)
				if (strcmp(id->traits[j]->key, t->key) == 0) {
					snprintf(f, sizeof(f), "identify.traits[%zu].key", i);
					vr_add(r, index, p, f, "repeats traits[%zu].key", j);
					bad++;
					break;
				}
		}
		break;
	}
	case TOUCHPOINT__V1__EVENT__KIND_ALIAS:
		if (check_string(r, index, p, "alias.previous_id", e->alias->previous_id, 1, 256) !=
		    0) {
			bad++;
		} else if (strcmp(e->alias->previous_id, e->customer_id) == 0) {
			vr_add(r, index, p, "alias.previous_id", "equals customer_id");
			bad++;
		}
		break;
	case TOUCHPOINT__V1__EVENT__KIND_SPEND: {
		const Touchpoint__V1__Spend *s = e->spend;

		bad += check_string(r, index, p, "spend.channel", s->channel, 1, 64);
		bad += check_string(r, index, p, "spend.campaign", s->campaign, 0, 128);
		if (s->day[0] != '\0' && !valid_day(s->day)) {
			vr_add(r, index, p, "spend.day", "is not a valid date (YYYY-MM-DD)");
			bad++;
		}
		bad += check_amount(r, index, p, "spend.amount", s->amount);
		bad += check_currency(r, index, p, "spend.currency", s->currency);
		break;
	}
	default:
		vr_add(r, index, p, "kind",
		       "no event kind is set (touch, conversion, identify, alias, spend)");
		bad++;
		break;
	}
	return bad;
}

/* A varint at *pos; -1 if truncated or longer than 10 bytes. */
static int
wire_varint(const uint8_t *buf, size_t len, size_t *pos, uint64_t *out)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 70 && *pos < len; shift += 7) {
		uint8_t b = buf[(*pos)++];

		v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0) {
			*out = v;
			return 0;
		}
	}
	return -1;
}

/*
 * Steps over the value of a field of wire type (key & 7) at *pos unless it is
 * length-delimited: 0 skipped, 1 length-delimited (left for the caller), -1 malformed.
 */
static int
wire_skip_scalar(const uint8_t *buf, size_t len, size_t *pos, uint64_t key)
{
	uint64_t n;

	switch (key & 7) {
	case 0:
		return wire_varint(buf, len, pos, &n);
	case 1:
	case 5:
		n = (key & 7) == 1 ? 8 : 4;
		if (len - *pos < n)
			return -1;
		*pos += (size_t)n;
		return 0;
	case 2:
		return 1;
	default:
		return -1;
	}
}

/* Steps over the whole field whose key was just read, a payload unread: 0, or -1 malformed. */
static int
wire_skip_field(const uint8_t *buf, size_t len, size_t *pos, uint64_t key)
{
	uint64_t n;
	int rc;

	if ((rc = wire_skip_scalar(buf, len, pos, key)) != 1)
		return rc;
	if (wire_varint(buf, len, pos, &n) != 0 || n > len - *pos)
		return -1;
	*pos += (size_t)n;
	return 0;
}

int
validate_wire_varint_field(const uint8_t *buf, size_t len, uint32_t field, uint64_t *out)
{
	size_t pos = 0;
	uint64_t key;

	while (pos < len) {
		if (wire_varint(buf, len, &pos, &key) != 0)
			return -1;
		if ((key & 7) == 0 && key >> 3 == field)
			return wire_varint(buf, len, &pos, out);
		if (wire_skip_field(buf, len, &pos, key) != 0)
			return -1;
	}
	return -1;
}

int
validate_wire_count_field(const uint8_t *buf, size_t len, uint32_t field, uint64_t *n)
{
	size_t pos = 0;
	uint64_t key;

	*n = 0;
	while (pos < len) {
		if (wire_varint(buf, len, &pos, &key) != 0 ||
		    wire_skip_field(buf, len, &pos, key) != 0)
			return -1;
		if ((key & 7) == 2 && key >> 3 == field)
			(*n)++;
	}
	return 0;
}

/* Where the walker is: formatted into a name only for a violation. */
struct wire_path {
	const struct wire_path *up;
	const char *name;
	long idx; /* -1: not repeated */
};

static size_t
wire_path_format(const struct wire_path *p, char *buf, size_t len)
{
	size_t off = 0;
	int n;

	if (p->up != NULL)
		off = wire_path_format(p->up, buf, len);
	if (off >= len)
		return off;
	if (p->idx >= 0)
		n = snprintf(buf + off, len - off, "%s%s[%ld]", p->up != NULL ? "." : "", p->name,
		             p->idx);
	else
		n = snprintf(buf + off, len - off, "%s%s", p->up != NULL ? "." : "", p->name);
	return n < 0 ? off : off + (size_t)n;
}

static void
wire_violation(struct validate_report *r, int32_t index, const struct wire_path *p,
               const char *reason)
{
	char path[96] = "";

	if (r->n < r->cap)
		wire_path_format(p, path, sizeof(path));
	vr_add(r, index, path, NULL, "%s", reason);
}

static size_t
wire_walk(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, int32_t index,
          const struct wire_path *at, struct validate_report *r, unsigned depth)
{
	uint32_t seen[64] = { 0 }; /* occurrences per field, for "traits[2]" */
	size_t pos = 0, found = 0;

	while (pos < len) {
		uint64_t key, n;
		const ProtobufCFieldDescriptor *f;

		if (wire_varint(buf, len, &pos, &key) != 0)
			goto malformed;
		switch (wire_skip_scalar(buf, len, &pos, key)) {
		case 0:
			continue;
		case 1:
			break;
		default:
			goto malformed;
		}
		if (wire_varint(buf, len, &pos, &n) != 0 || n > len - pos)
			goto malformed;
		f = key >> 3 <= UINT32_MAX
		        ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
		        : NULL;
		if (f != NULL) {
			size_t fi = (size_t)(f - d->fields);
			uint32_t k = fi < 64 ? seen[fi]++ : 0;
			struct wire_path here = { at, f->name,
				                  f->label == PROTOBUF_C_LABEL_REPEATED ? (long)k
				                                                        : -1 };

			if (f->type == PROTOBUF_C_TYPE_STRING) {
				if (memchr(buf + pos, 0, (size_t)n) != NULL) {
					wire_violation(r, index, &here, "contains a NUL byte");
					found++;
				}
			} else if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
			           depth < VALIDATE_MAX_DEPTH) {
				found += wire_walk(f->descriptor, buf + pos, (size_t)n, index,
				                   &here, r, depth + 1);
			}
		}
		pos += (size_t)n;
	}
	return found;
malformed:
	wire_violation(r, index, at, "is not a valid protobuf encoding");
	return found + 1;
}

size_t
validate_wire_strings(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                      int32_t index, const char *prefix, struct validate_report *r)
{
	struct wire_path root = { NULL, prefix, -1 };

	return wire_walk(d, buf, len, index, &root, r, 0);
}

size_t
validate_send_request(const Touchpoint__V1__SendRequest *req, const uint8_t *wire, size_t len,
                      struct validate_report *r)
{
	size_t k = 0, pos = 0;
	int rc;

	/* The events of a SendRequest are its field 1, in order: event k is events[k]. */
	while (wire != NULL && pos < len && k < req->n_events) {
		uint64_t key, n;
		size_t before = r->total;

		if (wire_varint(wire, len, &pos, &key) != 0)
			break;
		rc = wire_skip_scalar(wire, len, &pos, key);
		if (rc == 0)
			continue;
		/* Anything else cannot follow a successful unpack: check the decoded events. */
		if (rc < 0 || wire_varint(wire, len, &pos, &n) != 0 || n > len - pos)
			break;
		if (key >> 3 == 1) {
			struct wire_path at = { NULL, "events", (long)k };

			validate_event(req->events[k], (int32_t)k, r);
			wire_walk(&touchpoint__v1__event__descriptor, wire + pos, (size_t)n,
			          (int32_t)k, &at, r, 0);
			if (r->total != before)
				r->bad_events++;
			k++;
		}
		pos += (size_t)n;
	}
	for (; k < req->n_events; k++) {
		size_t before = r->total;

		validate_event(req->events[k], (int32_t)k, r);
		if (r->total != before)
			r->bad_events++;
	}
	return r->bad_events;
}
