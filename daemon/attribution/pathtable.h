/*
 * pathtable: the engine's containers — a u64 -> u32 hash map, a string -> u32 map, and the
 * table of distinct paths (unit sequences) with their conversion, value and null counts.
 */
#ifndef TP_ATTR_PATHTABLE_H
#define TP_ATTR_PATHTABLE_H

#include <stddef.h>
#include <stdint.h>

/* Open addressing, linear probing; grows at 1/2 load. */
struct attr_map {
	uint64_t *keys;
	uint32_t *vals; /* UINT32_MAX marks an empty slot */
	size_t cap;     /* power of two, 0 before the first put */
	size_t n;
};

/* 1 and *v when k is present, 0 otherwise. */
int attr_map_get(const struct attr_map *m, uint64_t k, uint32_t *v);
/* Inserts or replaces; v must not be UINT32_MAX. TP_OK or TP_RESOURCE_EXHAUSTED. */
int attr_map_put(struct attr_map *m, uint64_t k, uint32_t v);
void attr_map_free(struct attr_map *m);

struct attr_smap {
	char **keys; /* owned copies */
	uint32_t *vals;
	size_t cap;
	size_t n;
};

int attr_smap_get(const struct attr_smap *m, const char *k, uint32_t *v);
int attr_smap_put(struct attr_smap *m, const char *k, uint32_t v);
void attr_smap_free(struct attr_smap *m);

struct attr_pent {
	uint64_t hash;
	size_t off; /* into the arena */
	uint32_t len;
	double conversions;
	double value;
	double nulls;
};

struct attr_ptab {
	struct attr_pent *e; /* distinct paths, in first-seen order */
	size_t n, cap;
	/*
	 * Low 32 bits: entry index + 1 (0 = empty); high 32: the path hash's top bits, so a
	 * probe rejects a foreign path without touching its entry (a cache miss) or arena.
	 */
	uint64_t *slots;
	size_t nslots;
	uint32_t *arena; /* the unit sequences, back to back */
	size_t alen, acap;
};

/* Adds counts to the path u[0..len) (len >= 1), creating it if new. */
int attr_ptab_add(struct attr_ptab *t, const uint32_t *u, uint32_t len, double conversions,
                  double value, double nulls);
/*
 * Room for n more paths of units more units in all, with slots for them: the merge adds
 * a whole table at once, and growing step by step copies it over and over.
 */
int attr_ptab_reserve(struct attr_ptab *t, size_t n, size_t units);
/* attr_ptab_add with h = attr_hash_units(u, len) already known. */
int attr_ptab_add_hashed(struct attr_ptab *t, uint64_t h, const uint32_t *u, uint32_t len,
                         double conversions, double value, double nulls);
/*
 * Adding through a short queue: a path is added ATTR_PTQ_DEPTH paths after it was queued,
 * its slot's cache line fetched meanwhile (and its entry's, halfway), since the table's
 * rare paths miss the cache on each of slot, entry and units. The table comes out the
 * same as with attr_ptab_add, in the same order; read it only after
 * attr_ptab_queue_flush(). A path of more than ATTR_PTQ_UNITS units flushes and is added
 * at once.
 */
#define ATTR_PTQ_DEPTH 8
#define ATTR_PTQ_UNITS 24
struct attr_ptab_queue {
	struct {
		uint64_t h;
		double conversions, value, nulls;
		uint32_t len;
	} q[ATTR_PTQ_DEPTH];
	uint32_t u[ATTR_PTQ_DEPTH][ATTR_PTQ_UNITS];
	unsigned head, n;
};
int attr_ptab_queue_add(struct attr_ptab *t, struct attr_ptab_queue *q, const uint32_t *u,
                        uint32_t len, double conversions, double value, double nulls);
/* attr_ptab_queue_add with h = attr_hash_units(u, len) already known. */
int attr_ptab_queue_add_hashed(struct attr_ptab *t, struct attr_ptab_queue *q, uint64_t h,
                               const uint32_t *u, uint32_t len, double conversions, double value,
                               double nulls);
int attr_ptab_queue_flush(struct attr_ptab *t, struct attr_ptab_queue *q);
/* Index of the path u[0..len), or -1. */
long attr_ptab_find(const struct attr_ptab *t, const uint32_t *u, uint32_t len);
static inline const uint32_t *
attr_ptab_units(const struct attr_ptab *t, size_t i)
{
	return t->arena + t->e[i].off;
}
void attr_ptab_free(struct attr_ptab *t);
/*
 * The tables' large arrays are kept when freed, for the next tables (at most 64 blocks);
 * attr_ptab_trim() gives them back (the daemon calls it when idle). A block for an array
 * as large as a table (the models' view of one) comes from them too: attr_ptab_buf_get(),
 * given back with attr_ptab_buf_put() and the same size. All thread-safe.
 */
void attr_ptab_trim(void);
void *attr_ptab_buf_get(size_t size);
void attr_ptab_buf_put(void *p, size_t size);

uint64_t attr_hash_units(const uint32_t *u, uint32_t len);
uint64_t attr_hash_str(const char *s);

#endif /* TP_ATTR_PATHTABLE_H */
