/*
 * The event as the attribution engine sees it: a compact, decoded view of one stored
 * event, with strings interned to small ids. Shared by the store (producer) and the
 * engine (consumer) so neither depends on the other.
 */
#ifndef TP_ATTR_EVENT_H
#define TP_ATTR_EVENT_H

#include <stddef.h>
#include <stdint.h>

enum attr_kind {
	ATTR_TOUCH = 1,
	ATTR_CONVERSION = 2,
	ATTR_IDENTIFY = 3,
	ATTR_ALIAS = 4,
	ATTR_SPEND = 5,
};

struct attr_trait {
	const char *key;
	const char *value;
};

/*
 * One event. Interned ids come from the store's dictionary (0 = none); names are
 * resolved through an attr_names callback when results are built.
 */
struct attr_event {
	int64_t ts_us;
	uint64_t seq;                    /* arrival order: the last tie-break */
	int kind;                        /* enum attr_kind */
	uint32_t channel;                /* touch: interned channel */
	uint32_t campaign;               /* touch: interned campaign, 0 = none */
	uint32_t name;                   /* conversion: interned name ("conversion" if unset) */
	double value;                    /* conversion value */
	const struct attr_trait *traits; /* identify */
	size_t ntraits;
};

/* Resolves an interned id to its name; returns NULL for an unknown id. */
typedef const char *(*attr_names_fn)(void *arg, uint32_t id);

#endif /* TP_ATTR_EVENT_H */
