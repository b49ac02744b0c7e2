/*
 * writer: the one thread that writes to the store. Validated batches wait in a bounded
 * queue; the writer commits every waiting batch in one durable transaction (group commit)
 * and only then answers each batch's call.
 */
#ifndef TPD_WRITER_H
#define TPD_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "rpc.h"
#include "store.h"

struct writer;

struct writer_options {
	struct store *store;
	size_t queue_depth;  /* batches waiting; full: RESOURCE_EXHAUSTED */
	size_t group_events; /* events per group commit (at least one batch is taken) */
	unsigned beat_ms;    /* heartbeat period when idle (<= 500) */
	/*
	 * Test hook (env TOUCHPOINTD_TEST_STALL_WRITER): while this file exists the writer
	 * sleeps instead of working and does not beat, so the watchdog stops. NULL: off.
	 */
	const char *stall_file;
	/*
	 * SCHED_FIFO priority of the writer thread (1..99), 0: the normal scheduler. Best
	 * effort: without CAP_SYS_NICE or RLIMIT_RTPRIO the thread stays where it is.
	 */
	int priority;
};

int writer_start(struct writer **wp, const struct writer_options *o, char *errbuf, size_t errlen);
/*
 * Queues the events of call's SendRequest (owned by the call); the writer answers the call
 * with a SendResponse after the commit, or with the store's error, or DEADLINE_EXCEEDED if
 * the call's deadline passed while queued. Returns TP_OK when queued, else
 * TP_RESOURCE_EXHAUSTED (queue full) or TP_UNAVAILABLE (stopping): the caller answers.
 * prep (store_prepare() of the events, or NULL) is the writer's when queued, else the
 * caller's.
 */
int writer_submit(struct writer *w, struct rpc_call *call, Touchpoint__V1__Event **events, size_t n,
                  struct store_prepared *prep);
/* Advances at least every beat_ms while the writer is healthy, and after each commit. */
uint64_t writer_heartbeat(struct writer *w);
/* Commits and answers everything queued, then joins the thread and frees w. */
void writer_stop(struct writer *w);

#endif /* TPD_WRITER_H */
