/*
 * store: the durable event store of touchpointd, over LMDB. It owns the environment, the
 * name dictionary and background compaction; callers see batches in and journeys out.
 *
 * Threads: store_write() from one thread at a time (the daemon's writer thread); every
 * other function from any thread, concurrently. Every function returns a tp_status code
 * (TP_OK, TP_INVALID_ARGUMENT, TP_NOT_FOUND, TP_RESOURCE_EXHAUSTED for a full disk, memory
 * or an LMDB limit, TP_INTERNAL) and, where it takes errbuf, a message in it.
 */
#ifndef TP_STORE_H
#define TP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "attribution/event.h"
#include "touchpoint/v1/event.pb-c.h"

struct store;

struct store_options {
	const char *path;   /* directory of the LMDB environment; created if missing */
	size_t map_size;    /* initial map size in bytes (0: 1 GiB); grows by itself */
	int nosync;         /* 1: no fdatasync (benchmarks of the CPU path only) */
	size_t run_events;  /* events per sorted run (0: the default, 65536) */
	int compactor_nice; /* the compactor's nice while it keeps up (1..19); 0: unchanged */
	size_t map_room;    /* least free map at open and before a backup (0: 64 MiB) */
	int no_copies;      /* scans read the runs, not their copies (tests, benchmarks) */
	size_t merge_chunk; /* records or copy values a merge writes a transaction (0: 16384) */
	/*
	 * After this many ms without a write, the compactor merges the smallest runs (the
	 * largest no bigger than the others together) down towards 3; 0: never.
	 */
	unsigned quiet_ms;
	/* Tests: called by store_backup() with the map pinned, before it copies. */
	void (*backup_pause)(void *arg);
	void *backup_pause_arg;
};

int store_open(struct store **sp, const struct store_options *o, char *errbuf, size_t errlen);
void store_close(struct store *s);

/*
 * One client's batch, already validated. A group of batches is committed in one durable
 * transaction: on TP_OK every event of every batch is on disk (or was already: dup[i] = 1).
 * An event_id seen before (in the store, earlier in the group or earlier in the batch)
 * is a duplicate and is not stored again. Exactly: an event is a duplicate when an event
 * with the same (event_id, timestamp_us) was stored before. A retry or a re-import repeats
 * both; a client that reuses an event_id with a different timestamp gets a second event
 * (not supported: the dedup index is keyed by time so that live ingest stays local).
 */
struct store_prepared;

struct store_batch {
	Touchpoint__V1__Event **events;
	size_t n;
	/* store_prepare() of these events, or NULL: store_write() prepares them itself. */
	const struct store_prepared *prep;
	uint8_t *dup;        /* n flags, filled in */
	uint32_t accepted;   /* filled in */
	uint32_t duplicates; /* filled in */
};

/*
 * TP_OK, or the status with why in errbuf: TP_RESOURCE_EXHAUSTED for what a retry may
 * find freed (a full disk or quota, the map at its limit, memory, LMDB's reader or
 * transaction limits), TP_INVALID_ARGUMENT for batches that cannot be written as given.
 */
int store_write(struct store *s, struct store_batch *const *batches, size_t nbatches, char *errbuf,
                size_t errlen);

/*
 * The per-event work of store_write() that needs no transaction: the keyed hashes of the
 * event and customer ids and of the names it interns, the biased timestamps and the
 * batch's dedup entries in key order.
 * Any thread, concurrently (it reads only the store's keys), so that the daemon does it on
 * the ingest threads and the writer only does the serial part. TP_INVALID_ARGUMENT for an
 * event without a valid event_id (as store_write()). Free with store_prepared_free().
 */
int store_prepare(struct store *s, Touchpoint__V1__Event *const *events, size_t n,
                  struct store_prepared **pp);
void store_prepared_free(struct store_prepared *p);

struct store_stats {
	uint64_t events[6]; /* by enum attr_kind; [0] = total */
	uint64_t duplicates;
	uint64_t customers;   /* exact up to 65 536, then a HyperLogLog estimate (~1 %) */
	uint64_t store_bytes; /* bytes of the data files in use (main and runs.mdb) */
	uint64_t map_size;    /* the two maps' sizes */
	uint64_t runs;
	uint64_t runs_uncopied; /* runs without their copy yet: scans read the runs themselves */
	uint64_t merging;       /* merges of runs in progress (the compactor does one at a time) */
	uint64_t segments;      /* log segments: the writer's and those not flushed into runs yet */
	uint64_t readers;
	/*
	 * Since open, where ingest's time goes: the writer waiting for LMDB's write lock (held
	 * by a compaction chunk) and in mdb_txn_commit (page writes, syncs), in nanoseconds;
	 * the compactor's chunks (count, write lock held, records merged; a merge's chunks of
	 * copies count as chunks, not records).
	 */
	uint64_t wait_ns, commit_ns;
	uint64_t chunks, chunk_ns, chunk_records;
	/* The compactor's nice value now; times it was behind and could not be raised back. */
	int compactor_nice;
	uint64_t compactor_nice_denied;
};

int store_stats(struct store *s, struct store_stats *st);

/*
 * Gives back the buffers the store keeps between scans for reuse (the alias forest's):
 * call when the daemon is idle. A scan that runs meanwhile keeps them.
 */
void store_trim(struct store *s);

/*
 * One customer's journey after alias resolution: every event of the customer and of the
 * ids aliased to it, in SPEC §3 order (time, touches before conversions, arrival).
 * events[i] and view[i] describe the same event. TP_NOT_FOUND when there is none.
 * as_of is the largest arrival sequence among the events; store_journey_as_of leaves
 * out every event that arrived after a given as_of (0: none), so that the pages of a
 * journey read one after the other agree while events keep coming for the customer.
 */
struct store_journey {
	char *customer_id;
	char **aliases;
	size_t naliases;
	Touchpoint__V1__Event **events;
	struct attr_event *view;
	size_t n;
	uint64_t as_of;
};

int store_journey(struct store *s, const char *customer_id, struct store_journey **jp);
int store_journey_as_of(struct store *s, const char *customer_id, uint64_t as_of,
                        struct store_journey **jp);
void store_journey_free(struct store_journey *j);

/*
 * Streams every customer's journey (after alias resolution, SPEC §3 order) to fn, one
 * call per customer, in one consistent snapshot. Identify events are included (with
 * traits), alias and spend events are not. fn returns non-zero to stop the scan; that
 * value is returned. Memory is bounded by one journey plus the aliased customers.
 */
typedef int (*store_customer_fn)(void *arg, const char *customer_id, const struct attr_event *evs,
                                 size_t n);

int store_scan(struct store *s, store_customer_fn fn, void *arg);

/*
 * store_scan on several threads, `threads` of them (0: min(online CPUs, 8)), from one
 * snapshot. The customer-hash space is cut into STORE_SCAN_PARTS fixed ranges: part p
 * (0 <= p < STORE_SCAN_PARTS) streams its customers, in hash order, to fn(args[p]). Then the
 * aliased customers (every range's), cut into STORE_SCAN_ALIAS_PARTS fixed slices of the
 * alias forest, go to fn(args[STORE_SCAN_PARTS + a]). One thread at a time streams a part;
 * what each part streams does not depend on `threads`, and with one thread the calls come in
 * store_scan's order. done (may be NULL) is called as done(args[p], p) by the thread that
 * streamed part p, right after its last customer. A non-zero fn or done value (or an error)
 * stops every thread; the value of the lowest such part is returned.
 */
#define STORE_SCAN_PARTS       16
#define STORE_SCAN_ALIAS_PARTS 8
#define STORE_SCAN_NPARTS      (STORE_SCAN_PARTS + STORE_SCAN_ALIAS_PARTS)

typedef int (*store_part_fn)(void *arg, unsigned part);

int store_scan_parts(struct store *s, unsigned threads, store_customer_fn fn, store_part_fn done,
                     void *const *args);

/* Spend events whose day lies in [from_day, to_day) (days since the epoch, UTC). */
typedef int (*store_spend_fn)(void *arg, uint32_t channel, uint32_t campaign, int32_t day,
                              double amount, const char *currency);

int store_spend(struct store *s, int32_t from_day, int32_t to_day, store_spend_fn fn, void *arg);

/* Interned names: thread-safe, stable for the life of the store. NULL if unknown. */
const char *store_name(void *s, uint32_t id);

/*
 * A bare cursor walk over every run and the log tail in one snapshot: *records is the
 * number of records visited. For benchmarks (the floor store_scan is compared with).
 */
int store_walk(struct store *s, uint64_t *records);

/*
 * A consistent compacted copy of the store into dir, which must not exist or be an empty
 * directory (else TP_FAILED_PRECONDITION; TP_PERMISSION_DENIED where it may not be made).
 * errbuf names the field or the step ("dir: …", "copy: …").
 */
int store_backup(struct store *s, const char *dir, uint64_t *bytes, char *errbuf, size_t errlen);

#endif /* TP_STORE_H */
