/*
 * ingest: the Ingest/Send handler. Validates a batch on the NNG callback thread (SPEC §2,
 * proto/validate.h) and hands a valid one to the writer; an invalid batch is rejected
 * whole with every violation.
 */
#ifndef TPD_INGEST_H
#define TPD_INGEST_H

#include <stddef.h>

#include "rpc.h"
#include "writer.h"

/* At most this many violations travel in one reply; the message says how many there were. */
#define INGEST_MAX_VIOLATIONS 1000

struct ingest {
	struct writer *writer;
	struct store *store; /* for store_prepare() only: the writer owns store_write() */
	size_t max_batch_events;
};

/* Registers /touchpoint.v1.Ingest/Send with in as its argument (in must outlive r). */
int ingest_register(struct ingest *in, struct rpc_server *r);

#endif /* TPD_INGEST_H */
