/*
 * fuzz_record: the store's record decoders (daemon/record.c), those of runs' copies too,
 * over arbitrary bytes, as a damaged or hostile store would hand them over; what they
 * accept must decode in full.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Interned names: most ids resolve, every seventh does not (record_to_event's failure path). */
static const char *
name_of(void *arg, uint32_t id)
{
	(void)arg;
	return id % 7 == 6 ? NULL : "name";
}

static void
check_parsed(const struct record *r, const uint8_t *data, size_t size, int full)
{
	struct attr_trait tr[RECORD_MAX_TRAIT];
	struct attr_event v;
	Touchpoint__V1__Event *ev;
	unsigned i;
	int k;

	if (r->kind < ATTR_TOUCH || r->kind > ATTR_SPEND || r->ntraits > RECORD_MAX_TRAIT ||
	    r->val != data || r->end != data + size)
		abort();
	if ((k = record_kind(data, size)) != r->kind)
		abort();
	/* a string's length byte and its NUL agree (a NUL inside it is not checked for) */
	if (r->str[REC_CUSTOMER_ID][r->len[REC_CUSTOMER_ID]] != '\0')
		abort();
	if (r->ntraits > 0)
		record_traits(r, tr);
	for (i = 0; i < r->ntraits; i++)
		if (tr[i].key == NULL || tr[i].value == NULL ||
		    (const uint8_t *)tr[i].value + strlen(tr[i].value) >= data + size)
			abort();
	record_view(r, &v, r->ntraits > 0 ? tr : NULL);
	if (v.kind != r->kind || v.ntraits != (r->kind == ATTR_IDENTIFY ? r->ntraits : 0))
		abort();
	if (!full)
		return;
	if (r->str[REC_EVENT_ID][r->len[REC_EVENT_ID]] != '\0' ||
	    r->str[REC_PREVIOUS_ID][r->len[REC_PREVIOUS_ID]] != '\0' ||
	    r->str[REC_DAY][r->len[REC_DAY]] != '\0')
		abort();
	if ((ev = record_to_event(r, name_of, NULL)) != NULL)
		touchpoint__v1__event__free_unpacked(ev, NULL);
}

/*
 * A run's copy value: its two decoders (into records, into views) accept the same inputs
 * and agree on every field, and a body decodes alone as it did within the value.
 */
#define COPY_MAX 512
static void
check_copy(const uint8_t *data, size_t size)
{
	static struct record r[COPY_MAX], one;
	static struct attr_event v[COPY_MAX];
	static struct attr_trait tr[COPY_MAX * RECORD_MAX_TRAIT];
	const uint8_t *first;
	uint32_t n, i;
	size_t nt;
	int a, b;

	if (record_compact_count(data, size, &n, &first) != 0 || n > COPY_MAX)
		return;
	if ((size_t)(data + size - first) / 4 + 1 > COPY_MAX * RECORD_MAX_TRAIT)
		return;
	a = record_compact_parse(first, data + size, n, 9, "c", 1, r);
	b = record_compact_views(first, data + size, n, v, tr, &nt);
	if (a != b)
		abort();
	if (a != 0)
		return;
	for (i = 0; i < n; i++) {
		if (!(r[i].flags & RECORD_F_COMPACT) || v[i].ts_us != r[i].ts ||
		    v[i].seq != r[i].seq || v[i].kind != r[i].kind ||
		    v[i].channel != r[i].channel || v[i].campaign != r[i].campaign ||
		    v[i].name != r[i].name || memcmp(&v[i].value, &r[i].num, 8) != 0 ||
		    v[i].ntraits != r[i].ntraits)
			abort();
		if (record_compact_body(r[i].val, (size_t)(r[i].end - r[i].val), r[i].ts, r[i].seq,
		                        &one) != 0 ||
		    one.kind != r[i].kind || one.channel != r[i].channel ||
		    one.ntraits != r[i].ntraits)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct record r;
	uint64_t cust;
	int64_t ts;
	const void *rec;
	size_t rlen;
	static const uint8_t key[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };

	(void)record_kind(data, size);
	(void)record_hash(key, data, size);
	if (record_parse(data, size, 7, 1700000000000000, 42, &r) == 0)
		check_parsed(&r, data, size, 1);
	if (record_parse_scan(data, size, 7, 1700000000000000, 42, &r) == 0)
		check_parsed(&r, data, size, r.kind == ATTR_IDENTIFY);
	/* a log value: the prefix, then a record */
	if (record_prefix_get(data, size, &cust, &ts, &rec, &rlen) == 0 &&
	    record_parse(rec, rlen, cust, ts, 1, &r) == 0)
		check_parsed(&r, rec, rlen, 1);
	check_copy(data, size);
	return 0;
}
