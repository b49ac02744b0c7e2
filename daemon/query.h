/*
 * query: the read side of touchpointd, on a small pool of threads with bounded queues:
 * Journey/GetJourney, Admin/GetStatus, Admin/Backup, Attribution/Attribute and
 * Attribution/Paths. No LMDB work ever runs on NNG's callback threads. One extra thread
 * serves only the light calls (status, journey), so they never wait behind long scans.
 */
#ifndef TPD_QUERY_H
#define TPD_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "rpc.h"
#include "store.h"

struct query;

struct query_options {
	struct store *store;
	unsigned threads;           /* query_threads (plus one for light calls) */
	unsigned scan_threads;      /* threads of one scan; 0: one per CPU, at most 8 */
	size_t queue_depth;         /* queries waiting; full: RESOURCE_EXHAUSTED */
	int64_t default_lookback_s; /* when a request gives none (SIGHUP may change it) */
	size_t max_reply_bytes;     /* max_message_bytes: a page of paths fills at most this */
	const char *stall_file;     /* tests: while it exists the query threads take nothing */
	unsigned page_idle_ms;      /* tests: a paged table's idle life; 0: 10 minutes */
};

int query_start(struct query **qp, const struct query_options *o, char *errbuf, size_t errlen);
/* Registers the five methods with r (q must outlive r's serving). */
int query_register(struct query *q, struct rpc_server *r);
/*
 * The main thread's periodic call: drops the paged path tables left idle (an export given
 * up halfway), so they do not hold their memory until the next paged query. Never waits
 * behind a page being served.
 */
void query_tick(struct query *q);
/* Thread-safe; applies to queries that start afterwards. */
void query_set_default_lookback(struct query *q, int64_t seconds);
/*
 * Ends the pool: queued queries get UNAVAILABLE, running scans stop at their next check
 * with UNAVAILABLE (queries are read-only: nothing is lost), threads are joined, q freed.
 */
void query_stop(struct query *q);

#endif /* TPD_QUERY_H */
