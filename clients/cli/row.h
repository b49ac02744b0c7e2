/*
 * Import rows: named string fields (CSV columns or NDJSON keys) -> one tp_event, and the
 * content-derived event id that makes importing a file twice store it once.
 */
#ifndef TP_CLI_ROW_H
#define TP_CLI_ROW_H

#include <stddef.h>

#include "touchpoint/touchpoint.h"

#define ROW_MAX_TRAITS 64
#define ROW_ID_LEN     36 /* "imp-" + 32 hex digits */

struct row_field {
	const char *name; /* event_id, customer_id, type, timestamp, ..., trait.KEY */
	const char *value;
};

/* An event that owns its strings (freed by row_event_free). */
struct row_event {
	struct tp_event ev;
	unsigned long line; /* where it came from, for messages */
	struct tp_trait traits[ROW_MAX_TRAITS];
	char *strs[16 + 2 * ROW_MAX_TRAITS];
	size_t nstrs;
	char id[ROW_ID_LEN + 1];
};

/* 1 when name is a column/key the importer understands. */
int row_known_field(const char *name);

/*
 * Builds out from f[0..n). Empty values count as absent. Fields that do not apply to the
 * row's type are ignored. A row without event_id gets row_event_id(). Returns 0; -1
 * with the offending field's name in field and the reason in reason; -2 when memory ran out
 * (reason "out of memory": not the row's fault). out is freed on failure.
 */
int row_to_event(const struct row_field *f, size_t n, struct row_event *out, char *field,
                 size_t flen, char *reason, size_t rlen);
void row_event_free(struct row_event *e);

/*
 * "imp-" + 32 hex digits of a 128-bit FNV-1a hash of the event's normalised content:
 * type, customer, timestamp in µs and every field of its type (numbers printed as %.17g,
 * traits sorted by key), so the same event reads the same from CSV or NDJSON.
 */
void row_event_id(const struct tp_event *ev, char *out);

#endif /* TP_CLI_ROW_H */
