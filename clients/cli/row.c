/*
 * Turning import rows into events (SPEC §6 import columns) and their content-derived ids.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "row.h"
#include "timefmt.h"

static const char *const row_names[] = {
	"event_id", "customer_id", "type",        "timestamp",   "timestamp_us", "channel",
	"campaign", "source",      "medium",      "interaction", "cost",         "value",
	"currency", "name",        "previous_id", "day",         "amount",
};

int
row_known_field(const char *name)
{
	size_t i;

	if (strncmp(name, "trait.", 6) == 0)
		return name[6] != '\0';
	for (i = 0; i < sizeof(row_names) / sizeof(row_names[0]); i++)
		if (strcmp(name, row_names[i]) == 0)
			return 1;
	return 0;
}

/* The non-empty value of field name, or NULL. */
static const char *
row_get(const struct row_field *f, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (f[i].value != NULL && f[i].value[0] != '\0' && strcmp(f[i].name, name) == 0)
			return f[i].value;
	return NULL;
}

static const char *
row_keep(struct row_event *e, const char *s)
{
	char *d;

	if (s == NULL || e->nstrs == sizeof(e->strs) / sizeof(e->strs[0]))
		return NULL;
	if ((d = strdup(s)) == NULL)
		return NULL;
	e->strs[e->nstrs++] = d;
	return d;
}

/* A decimal number: strtod alone would also take hex ("0x10") and "inf"/"nan" spellings. */
static int
row_number(const char *s, double *v)
{
	const char *p = s + strspn(s, " \t"); /* as strtod does, and as files have had */
	char *end;

	p += *p == '-' || *p == '+';
	if (!((*p >= '0' && *p <= '9') || (*p == '.' && p[1] >= '0' && p[1] <= '9')) ||
	    (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')))
		return -1;
	*v = strtod(s, &end);
	return end != s && *end == '\0' && isfinite(*v) ? 0 : -1;
}

void
row_event_free(struct row_event *e)
{
	size_t i;

	for (i = 0; i < e->nstrs; i++)
		free(e->strs[i]);
	e->nstrs = 0;
}

#define ROW_FAIL(fname, ...)                                                                       \
	do {                                                                                       \
		snprintf(field, flen, "%s", fname);                                                \
		snprintf(reason, rlen, __VA_ARGS__);                                               \
		goto fail;                                                                         \
	} while (0)

/* Not the row's fault: the caller stops (-2), it does not reject the row. */
#define ROW_OOM(fname)                                                                             \
	do {                                                                                       \
		oom = 1;                                                                           \
		ROW_FAIL(fname, "out of memory");                                                  \
	} while (0)

/* Copies an optional string field; -1 only when out of room. */
static int
row_opt(struct row_event *e, const struct row_field *f, size_t n, const char *name,
        const char **dst)
{
	const char *v = row_get(f, n, name);

	*dst = NULL;
	if (v == NULL)
		return 0;
	return (*dst = row_keep(e, v)) != NULL ? 0 : -1;
}

int
row_to_event(const struct row_field *f, size_t n, struct row_event *out, char *field, size_t flen,
             char *reason, size_t rlen)
{
	static const char *const inames[] = { "impression", "click", "visit", "email_open",
		                              "other" };
	struct tp_event *ev = &out->ev;
	const char *type, *ts, *tsus, *v;
	int64_t t1 = 0, t2 = 0;
	size_t i;
	int rv, oom = 0;
	double d;
	char *end;
	long long ll;

	memset(out, 0, sizeof(*out));
	if ((type = row_get(f, n, "type")) == NULL)
		ROW_FAIL("type", "missing (touch, conversion, identify, alias or spend)");
	if (strcmp(type, "touch") == 0)
		ev->kind = TP_TOUCH;
	else if (strcmp(type, "conversion") == 0)
		ev->kind = TP_CONVERSION;
	else if (strcmp(type, "identify") == 0)
		ev->kind = TP_IDENTIFY;
	else if (strcmp(type, "alias") == 0)
		ev->kind = TP_ALIAS;
	else if (strcmp(type, "spend") == 0)
		ev->kind = TP_SPEND;
	else
		ROW_FAIL("type", "unknown type \"%.64s\"", type);
	ts = row_get(f, n, "timestamp");
	tsus = row_get(f, n, "timestamp_us");
	if (ts != NULL && (rv = tf_parse_time(ts, &t1)) != 0) {
		if (rv == TF_OUT_OF_RANGE)
			ROW_FAIL("timestamp", "out of the supported range 1970-2200: \"%.64s\"",
			         ts);
		ROW_FAIL("timestamp", "not an RFC 3339 time: \"%.64s\"", ts);
	}
	if (tsus != NULL) {
		errno = 0;
		ll = strtoll(tsus, &end, 10);
		if (end == tsus || *end != '\0' || ll < 0 || errno == ERANGE)
			ROW_FAIL("timestamp_us", "not a non-negative 64-bit integer: \"%.64s\"",
			         tsus);
		t2 = ll;
		if (ts != NULL && t1 != t2)
			ROW_FAIL("timestamp_us", "disagrees with timestamp");
	}
	if (ts != NULL)
		ev->timestamp_us = t1;
	else if (tsus != NULL)
		ev->timestamp_us = t2;
	else if (ev->kind == TP_SPEND && (v = row_get(f, n, "day")) != NULL) {
		if (strlen(v) != 10 || (rv = tf_parse_time(v, &t1)) == -1) /* only its day */
			ROW_FAIL("day", "not a YYYY-MM-DD date: \"%.64s\"", v);
		if (rv != 0)
			ROW_FAIL("day", "out of the supported range 1970-2200: \"%.64s\"", v);
		ev->timestamp_us = t1;
	} else
		ROW_FAIL("timestamp", "missing (timestamp or timestamp_us)");
	if (row_opt(out, f, n, "event_id", &ev->event_id) != 0 ||
	    row_opt(out, f, n, "customer_id", &ev->customer_id) != 0)
		ROW_OOM("event_id");
	switch (ev->kind) {
	case TP_TOUCH:
		if (row_opt(out, f, n, "channel", &ev->u.touch.channel) != 0 ||
		    row_opt(out, f, n, "campaign", &ev->u.touch.campaign) != 0 ||
		    row_opt(out, f, n, "source", &ev->u.touch.source) != 0 ||
		    row_opt(out, f, n, "medium", &ev->u.touch.medium) != 0)
			ROW_OOM("channel");
		if ((v = row_get(f, n, "interaction")) != NULL) {
			for (i = 0; i < 5; i++)
				if (strcmp(v, inames[i]) == 0)
					break;
			if (i == 5)
				ROW_FAIL("interaction",
				         "\"%.64s\" is not impression, click, visit, email_open or "
				         "other",
				         v);
			ev->u.touch.interaction = (enum tp_interaction)(i + 1);
		}
		if ((v = row_get(f, n, "cost")) != NULL) {
			if (row_number(v, &d) != 0)
				ROW_FAIL("cost", "not a number: \"%.64s\"", v);
			ev->u.touch.has_cost = 1;
			ev->u.touch.cost = d;
		}
		break;
	case TP_CONVERSION:
		if ((v = row_get(f, n, "value")) != NULL) {
			if (row_number(v, &d) != 0)
				ROW_FAIL("value", "not a number: \"%.64s\"", v);
			ev->u.conversion.value = d;
		}
		if (row_opt(out, f, n, "currency", &ev->u.conversion.currency) != 0 ||
		    row_opt(out, f, n, "name", &ev->u.conversion.name) != 0)
			ROW_OOM("name");
		break;
	case TP_IDENTIFY:
		for (i = 0; i < n; i++) {
			struct tp_trait *t;

			if (strncmp(f[i].name, "trait.", 6) != 0 || f[i].value == NULL ||
			    f[i].value[0] == '\0')
				continue;
			if (ev->u.identify.count == ROW_MAX_TRAITS)
				ROW_FAIL("traits", "more than %d traits", ROW_MAX_TRAITS);
			t = &out->traits[ev->u.identify.count++];
			if ((t->key = row_keep(out, f[i].name + 6)) == NULL ||
			    (t->value = row_keep(out, f[i].value)) == NULL)
				ROW_OOM("traits");
		}
		ev->u.identify.traits = out->traits;
		break;
	case TP_ALIAS:
		if (row_opt(out, f, n, "previous_id", &ev->u.alias.previous_id) != 0)
			ROW_OOM("previous_id");
		break;
	case TP_SPEND:
		if (row_opt(out, f, n, "channel", &ev->u.spend.channel) != 0 ||
		    row_opt(out, f, n, "campaign", &ev->u.spend.campaign) != 0 ||
		    row_opt(out, f, n, "day", &ev->u.spend.day) != 0 ||
		    row_opt(out, f, n, "currency", &ev->u.spend.currency) != 0)
			ROW_OOM("channel");
		if ((v = row_get(f, n, "amount")) != NULL) {
			if (row_number(v, &d) != 0)
				ROW_FAIL("amount", "not a number: \"%.64s\"", v);
			ev->u.spend.amount = d;
		}
		break;
	}
	if (ev->event_id == NULL) {
		row_event_id(ev, out->id);
		ev->event_id = out->id;
	}
	return 0;
fail:
	row_event_free(out);
	return oom ? -2 : -1;
}

/* 128-bit FNV-1a: simple, dependency-free and plenty for telling rows apart. */
struct row_hash {
	unsigned __int128 h;
};

static void
row_hash_bytes(struct row_hash *rh, const void *p, size_t n)
{
	const unsigned __int128 prime = ((unsigned __int128)1 << 88) + 0x13b;
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		rh->h ^= b[i];
		rh->h *= prime;
	}
}

/* name=value and a NUL separator, so ("ab","c") and ("a","bc") differ. */
static void
row_hash_field(struct row_hash *rh, const char *name, const char *value)
{
	row_hash_bytes(rh, name, strlen(name));
	row_hash_bytes(rh, "=", 1);
	if (value != NULL)
		row_hash_bytes(rh, value, strlen(value) + 1);
	else
		row_hash_bytes(rh, "\0\1", 2); /* absent differs from "" */
}

static void
row_hash_number(struct row_hash *rh, const char *name, double v)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.17g", v == 0 ? 0.0 : v); /* -0 is a spelling of 0 */
	row_hash_field(rh, name, buf);
}

static int
row_trait_cmp(const void *a, const void *b)
{
	const struct tp_trait *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c != 0 ? c : strcmp(x->value, y->value);
}

void
row_event_id(const struct tp_event *ev, char *out)
{
	static const char hex[] = "0123456789abcdef";
	struct row_hash rh;
	struct tp_trait sorted[ROW_MAX_TRAITS];
	char buf[32];
	size_t i, nt;
	int k;

	rh.h = ((unsigned __int128)0x6c62272e07bb0142ULL << 64) | 0x62b821756295c58dULL;
	snprintf(buf, sizeof(buf), "v1/%d", (int)ev->kind);
	row_hash_field(&rh, "kind", buf);
	row_hash_field(&rh, "customer_id", ev->customer_id);
	snprintf(buf, sizeof(buf), "%lld", (long long)ev->timestamp_us);
	row_hash_field(&rh, "timestamp_us", buf);
	switch (ev->kind) {
	case TP_TOUCH:
		row_hash_field(&rh, "channel", ev->u.touch.channel);
		row_hash_field(&rh, "campaign", ev->u.touch.campaign);
		row_hash_field(&rh, "source", ev->u.touch.source);
		row_hash_field(&rh, "medium", ev->u.touch.medium);
		snprintf(buf, sizeof(buf), "%d", (int)ev->u.touch.interaction);
		row_hash_field(&rh, "interaction", buf);
		if (ev->u.touch.has_cost)
			row_hash_number(&rh, "cost", ev->u.touch.cost);
		break;
	case TP_CONVERSION:
		row_hash_number(&rh, "value", ev->u.conversion.value);
		row_hash_field(&rh, "currency", ev->u.conversion.currency);
		/* SPEC §2's default spelled out is the default: the same event, the same id. */
		row_hash_field(&rh, "name",
		               ev->u.conversion.name == NULL || ev->u.conversion.name[0] == '\0' ||
		                       strcmp(ev->u.conversion.name, "conversion") == 0
		                   ? NULL
		                   : ev->u.conversion.name);
		break;
	case TP_IDENTIFY:
		nt = ev->u.identify.count < ROW_MAX_TRAITS ? ev->u.identify.count : ROW_MAX_TRAITS;
		memcpy(sorted, ev->u.identify.traits, nt * sizeof(*sorted));
		qsort(sorted, nt, sizeof(*sorted), row_trait_cmp);
		for (i = 0; i < nt; i++) {
			/*
			 * key=value is ambiguous when the key holds '=' ("a" "b=c" against "a=b"
			 * "c"): such a key's length goes first. Other ids stay as they were, so
			 * files imported before still come back as duplicates.
			 */
			if (strchr(sorted[i].key, '=') != NULL) {
				snprintf(buf, sizeof(buf), "%zu", strlen(sorted[i].key));
				row_hash_field(&rh, "=key-length", buf);
			}
			row_hash_field(&rh, sorted[i].key, sorted[i].value);
		}
		break;
	case TP_ALIAS:
		row_hash_field(&rh, "previous_id", ev->u.alias.previous_id);
		break;
	case TP_SPEND:
		row_hash_field(&rh, "channel", ev->u.spend.channel);
		row_hash_field(&rh, "campaign", ev->u.spend.campaign);
		row_hash_field(&rh, "day", ev->u.spend.day);
		row_hash_number(&rh, "amount", ev->u.spend.amount);
		row_hash_field(&rh, "currency", ev->u.spend.currency);
		break;
	}
	memcpy(out, "imp-", 4);
	for (k = 0; k < 16; k++) {
		unsigned b = (unsigned)(rh.h >> (120 - 8 * k)) & 0xff;

		out[4 + 2 * k] = hex[b >> 4];
		out[5 + 2 * k] = hex[b & 0xf];
	}
	out[ROW_ID_LEN] = '\0';
}
