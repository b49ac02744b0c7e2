/*
 * validate: the event rules of SPEC §2, shared by touchpointd (which rejects a batch with
 * any violation) and the client library (which may check before sending).
 * Pure functions, thread-safe, no allocation: violations go into a caller-owned array.
 */
#ifndef TP_VALIDATE_H
#define TP_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "touchpoint/v1/event.pb-c.h"
#include "touchpoint/v1/ingest.pb-c.h"

/*
 * Timestamps lie in [0, VALIDATE_TS_END_US): SPEC §2's years 1970-2200, the year 2200
 * included (2201-01-01 exclusive), UTC.
 */
#define VALIDATE_TS_END_US INT64_C(7289654400000000)

struct validate_violation {
	int32_t index;   /* event position in the batch; -1: the request itself */
	char field[96];  /* "events[3].touch.channel" */
	char reason[96]; /* "is 70 bytes, the limit is 64" */
};

struct validate_report {
	struct validate_violation *v; /* caller's array of cap entries */
	size_t cap;
	size_t n;          /* violations stored in v (<= cap) */
	size_t total;      /* violations found, including those beyond cap */
	size_t bad_events; /* events with at least one violation */
};

void validate_report_init(struct validate_report *r, struct validate_violation *v, size_t cap);

/* 1 if s[0..len) is valid UTF-8 (no overlongs, surrogates or code points > U+10FFFF). */
int validate_utf8(const char *s, size_t len);

/*
 * Every rule on one decoded event; violations are named "events[index]....". Returns how
 * many were found. A decoded string cannot show an embedded NUL (protobuf-c truncates at
 * it): use validate_wire_strings() on the event's encoding for that.
 */
size_t validate_event(const Touchpoint__V1__Event *e, int32_t index, struct validate_report *r);

/*
 * Walks the wire encoding of a message of type d and reports every string field that
 * contains a NUL byte, named prefix.field[k].sub... Returns how many were found;
 * malformed input is reported once as a violation of prefix.
 */
size_t validate_wire_strings(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len,
                             int32_t index, const char *prefix, struct validate_report *r);

/*
 * The first varint field number `field` at the top level of an encoded message, read
 * without decoding anything else (a payload is stepped over): 0 and *out, or -1 when absent
 * or the bytes are not a message. The daemon answers a request it will not unpack with it.
 */
int validate_wire_varint_field(const uint8_t *buf, size_t len, uint32_t field, uint64_t *out);
/*
 * How many times field (length-delimited) occurs at the top level of buf, read without
 * decoding: 0 and *n, or -1 if buf is malformed.
 */
int validate_wire_count_field(const uint8_t *buf, size_t len, uint32_t field, uint64_t *n);

/*
 * A whole batch: every event of req, and, when wire is not NULL, the NUL check on req's
 * encoding (wire, len). Returns the number of invalid events (0: the batch is valid).
 */
size_t validate_send_request(const Touchpoint__V1__SendRequest *req, const uint8_t *wire,
                             size_t len, struct validate_report *r);

#endif /* TP_VALIDATE_H */
