/*
 * record: the store's binary encoding of one event, plus the keyed 64-bit hash (SipHash-2-4)
 * used for customer and event ids. Private to store.c; the layout is the on-disk format.
 */
#ifndef TP_RECORD_H
#define TP_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "attribution/event.h"
#include "touchpoint/v1/event.pb-c.h"

/*
 * Layout (host byte order, like LMDB's own file): a 64-byte header read without parsing
 * strings, then RECORD_NSTR strings and ntraits key/value pairs, each a u16 length, the
 * bytes and a NUL, so that a view can point straight into the map.
 *   0 u8 version  1 u8 kind  2 u8 interaction  3 u8 flags  4 u8 ntraits  5..7 zero
 *   8 u32 channel  12 u32 campaign  16 u32 name  20 u32 currency
 *   24 i64 timestamp_us  32 u64 seq  40 u64 customer hash  48 f64 value/cost/amount
 *   56 i32 day (spend)  60 u32 zero
 */
#define RECORD_VERSION   1
#define RECORD_HDR       64
#define RECORD_MAX_STR   256 /* longest string field we accept (SPEC §2's largest) */
#define RECORD_MAX_TRAIT 32
#define RECORD_MAX       16384 /* bound of an encoded record, see record_encode() */

#define RECORD_F_COST      0x01 /* touch: cost present */
#define RECORD_F_NAME_DFLT 0x02 /* conversion: name was empty ("conversion" is interned) */

enum record_str {
	REC_EVENT_ID,
	REC_CUSTOMER_ID,
	REC_SOURCE,
	REC_MEDIUM,
	REC_PREVIOUS_ID,
	REC_DAY,
	REC_NSTR
};

/* Interned ids and derived values the store computes before encoding. */
struct record_ids {
	uint32_t channel, campaign, name, currency;
	uint64_t seq;
	uint64_t cust; /* customer hash */
	int32_t day;   /* spend: days since the epoch */
	int name_default;
};

/* A parsed record: fields plus pointers into the encoded bytes (valid while they are). */
struct record {
	int kind, interaction, flags;
	unsigned ntraits;
	uint32_t channel, campaign, name, currency;
	int64_t ts;
	uint64_t seq, cust;
	double num;
	int32_t day;
	const char *str[REC_NSTR];
	uint16_t len[REC_NSTR];
	const uint8_t *traits;    /* ntraits pairs, each string as above */
	const uint8_t *val, *end; /* the encoded bytes */
};

/* Encodes ev into buf (cap bytes); 0 and *len, or -1 if a field exceeds the bounds above. */
int record_encode(const Touchpoint__V1__Event *ev, const struct record_ids *ids, uint8_t *buf,
                  size_t cap, size_t *len);

/* Parses and bounds-checks a record; -1 if it is corrupt. */
int record_parse(const void *p, size_t len, struct record *r);

/*
 * What a scan needs: the header, event_id and customer_id checked (and everything for an
 * identify event, whose traits are used); the other strings are left unset.
 */
int record_parse_scan(const void *p, size_t len, struct record *r);

/* Fast path: the header fields only (kind, ids, ts, seq, cust, num); -1 if too short. */
int record_header(const void *p, size_t len, struct record *r);

/* Fills out[0..r->ntraits) with pointers into the record. */
void record_traits(const struct record *r, struct attr_trait *out);

/* The engine's view of a parsed record; traits must hold r->ntraits entries (or be NULL). */
void record_view(const struct record *r, struct attr_event *v, const struct attr_trait *traits);

/*
 * A freshly allocated Touchpoint__V1__Event equal to the one encoded (every string
 * malloc'd, so touchpoint__v1__event__free_unpacked(ev, NULL) frees it). Interned names
 * are resolved through name(); the default conversion name comes back as "". NULL if out
 * of memory or a name is unknown.
 */
Touchpoint__V1__Event *record_to_event(const struct record *r,
                                       const char *(*name)(void *, uint32_t), void *arg);

/* SipHash-2-4 of p[0..n) under a 16-byte key. */
uint64_t record_hash(const uint8_t key[16], const void *p, size_t n);

/* Days since 1970-01-01 of "YYYY-MM-DD"; -1 if malformed. */
int record_parse_day(const char *s, int32_t *day);

/* The UTC day of a timestamp in microseconds. */
int32_t record_day_of(int64_t ts_us);

#endif /* TP_RECORD_H */
