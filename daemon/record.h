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
 * Layout of a record (schema 4). A run's key holds the customer hash, the timestamp and the
 * seq, so the record does not repeat them; log and spend values carry the first two in a
 * RECORD_PREFIX-byte prefix (their key holds the seq), which a run flush strips. Absent
 * fields take no bytes; numbers are LEB128 varints; strings are a varint length, the bytes
 * and a NUL, so that a view can point straight into the map. What the scan reads comes
 * first (≈ 30 bytes of a typical touch, up to customer_id's end):
 *   u8 kind (bits 0-2) | flags (RECORD_F_NAME_DFLT)
 *   u8 mask of the fields present (RECORD_M_*), then in this order those present:
 *     u8 interaction, varint channel, campaign, name, currency, f64 num (host order)
 *   customer_id
 *   event_id
 *   varint source, varint medium (interned, if present in the mask)
 *   alias: previous_id; spend: i32 day (host order), day string; identify: u8 ntraits,
 *   then ntraits key/value string pairs.
 * A touch's num is its cost, present iff set; a conversion's value and a spend's amount are
 * stored iff their bits are not all zero.
 */
#define RECORD_PREFIX    16  /* log/spend values: u64 customer hash, i64 timestamp_us */
#define RECORD_MAX_STR   256 /* longest string field we accept (SPEC §2's largest) */
#define RECORD_MAX_TRAIT 32
#define RECORD_MAX       16384 /* bound of an encoded record, see record_encode() */

#define RECORD_F_COST      0x01 /* struct record's flags: touch: cost present */
#define RECORD_F_NAME_DFLT 0x08 /* conversion: name was empty ("conversion" is interned) */

#define RECORD_M_CHANNEL  0x01
#define RECORD_M_CAMPAIGN 0x02
#define RECORD_M_NAME     0x04
#define RECORD_M_CURRENCY 0x08
#define RECORD_M_NUM      0x10
#define RECORD_M_INTER    0x20
#define RECORD_M_SOURCE   0x40
#define RECORD_M_MEDIUM   0x80

enum record_str { REC_EVENT_ID, REC_CUSTOMER_ID, REC_PREVIOUS_ID, REC_DAY, REC_NSTR };

/* Interned ids and derived values the store computes before encoding. */
struct record_ids {
	uint32_t channel, campaign, name, currency, source, medium;
	uint64_t seq;  /* not encoded: in the key */
	uint64_t cust; /* customer hash; not encoded: in the key or the prefix */
	int32_t day;   /* spend: days since the epoch */
	int name_default;
};

/* A parsed record: fields plus pointers into the encoded bytes (valid while they are). */
struct record {
	int kind, interaction, flags;
	unsigned ntraits;
	uint32_t channel, campaign, name, currency, source, medium;
	int64_t ts;
	uint64_t seq, cust;
	double num;
	int32_t day;
	const char *str[REC_NSTR];
	uint16_t len[REC_NSTR];
	const uint8_t *traits;    /* ntraits pairs, each string as above */
	const uint8_t *val, *end; /* the encoded bytes */
};

/*
 * Encodes ev into buf (cap bytes), without the prefix; 0 and *len, or -1 if a field
 * exceeds the bounds above.
 */
int record_encode(const Touchpoint__V1__Event *ev, const struct record_ids *ids, uint8_t *buf,
                  size_t cap, size_t *len);

/* Writes the log/spend prefix (RECORD_PREFIX bytes) of a record. */
void record_prefix_put(uint8_t *p, uint64_t cust, int64_t ts);

/*
 * Reads a log/spend value's prefix: *cust, *ts, and the record that follows (*rec, *rlen);
 * -1 if too short.
 */
int record_prefix_get(const void *p, size_t len, uint64_t *cust, int64_t *ts, const void **rec,
                      size_t *rlen);

/*
 * Parses and bounds-checks a record whose key (or prefix and key) gave cust, ts and seq;
 * -1 if it is corrupt.
 */
/* The kind of an encoded record (enum attr_kind) from its first byte, or -1. */
int record_kind(const void *p, size_t len);
int record_parse(const void *p, size_t len, uint64_t cust, int64_t ts, uint64_t seq,
                 struct record *r);

/*
 * What a scan needs: the fixed fields and customer_id checked (and everything for an
 * identify event, whose traits are used); the other strings are left unset.
 */
int record_parse_scan(const void *p, size_t len, uint64_t cust, int64_t ts, uint64_t seq,
                      struct record *r);

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

/*
 * A run's copy (store.c: "run.N.c"): per customer of the run, one value holding only what
 * attribution reads of its touch, conversion and identify events, in (ts, rank, seq) order:
 *   varint count, then per event: zigzag varint of ts minus the previous event's (0 first),
 *   the same of seq, and a body: u8 kind (bits 0-2) | RECORD_C_* of the fields present,
 *   then those (varint channel, campaign, name; f64 value of a conversion, host order);
 *   an identify event: u8 ntraits and the pairs, encoded as in a record.
 * A record decoded from a copy has RECORD_F_COMPACT set and no string but customer_id.
 */
#define RECORD_F_COMPACT  0x10
#define RECORD_C_CHANNEL  0x08
#define RECORD_C_CAMPAIGN 0x10
#define RECORD_C_NAME     0x20
#define RECORD_C_VALUE    0x40

/* Whether a record of this kind goes into a copy (alias and spend events do not). */
int record_compact_kind(int kind);

/* A bound of the bytes record_compact_put() writes for r. */
size_t record_compact_bound(const struct record *r);

/*
 * Appends r (a record_parse_scan() result of a kind record_compact_kind() takes) as one
 * event of a copy at p, which has record_compact_bound(r) bytes; *pts and *pseq are the
 * previous event's and are updated. Returns the end of what it wrote.
 */
uint8_t *record_compact_put(const struct record *r, uint8_t *p, int64_t *pts, uint64_t *pseq);

/* Writes the count that starts a copy value (at most 5 bytes); returns the end. */
uint8_t *record_compact_count_put(uint8_t *p, uint32_t n);

/* The count of a copy value and where its events start; -1 if malformed. */
int record_compact_count(const void *p, size_t len, uint32_t *n, const uint8_t **first);

/*
 * Decodes the n events of a copy value from first (record_compact_count) into out[0..n),
 * each with cust and the customer id cid[0..cidlen) (NUL-terminated); -1 if corrupt.
 */
int record_compact_parse(const uint8_t *first, const uint8_t *end, uint32_t n, uint64_t cust,
                         const char *cid, uint16_t cidlen, struct record *out);

/*
 * Decodes the n events of a copy value straight into the engine's views out[0..n), their
 * traits into traits[], which has room for (end - first) / 4 + 1 pairs (a pair takes at
 * least 4 bytes); *nt is the number used. -1 if corrupt.
 */
int record_compact_views(const uint8_t *first, const uint8_t *end, uint32_t n,
                         struct attr_event *out, struct attr_trait *traits, size_t *nt);

/* Decodes one event's body (r->val, r->end of a decoded event) again; -1 if corrupt. */
int record_compact_body(const void *p, size_t len, int64_t ts, uint64_t seq, struct record *r);

/* SipHash-2-4 of p[0..n) under a 16-byte key. */
uint64_t record_hash(const uint8_t key[16], const void *p, size_t n);

/* Days since 1970-01-01 of "YYYY-MM-DD"; -1 if malformed. */
int record_parse_day(const char *s, int32_t *day);

/* The UTC day of a timestamp in microseconds. */
int32_t record_day_of(int64_t ts_us);

#endif /* TP_RECORD_H */
