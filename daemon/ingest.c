/*
 * ingest: Ingest/Send. Decoding, validation and the per-event work of the store that needs
 * no transaction (store_prepare: hashes, dedup keys in order) run here, on NNG's threads, so
 * they scale with them; only valid, prepared batches reach the writer, which does only what
 * must be serial.
 */
#include "ingest.h"

#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "metrics.h"
#include "touchpoint/touchpoint.h"
#include "touchpoint/v1/ingest.pb-c.h"
#include "validate.h"

/* Answers an invalid batch with every violation (up to INGEST_MAX_VIOLATIONS). */
static void
ingest_reject(struct rpc_call *call, const Touchpoint__V1__SendRequest *req, const uint8_t *wire,
              size_t len, size_t bad)
{
	struct validate_violation *vv = NULL;
	Touchpoint__V1__FieldViolation *fv = NULL, **fp = NULL;
	struct validate_report r;
	char msg[160];
	size_t n;

	n = INGEST_MAX_VIOLATIONS;
	if ((vv = calloc(n, sizeof(*vv))) == NULL || (fv = calloc(n, sizeof(*fv))) == NULL ||
	    (fp = calloc(n, sizeof(*fp))) == NULL) {
		rpc_finish(call, TP_INVALID_ARGUMENT, NULL,
		           "%zu of %zu events are invalid (out of memory listing them)", bad,
		           req->n_events);
		goto done;
	}
	validate_report_init(&r, vv, n);
	validate_send_request(req, wire, len, &r);
	for (size_t i = 0; i < r.n; i++) {
		touchpoint__v1__field_violation__init(&fv[i]);
		fv[i].index = vv[i].index;
		fv[i].field = vv[i].field;
		fv[i].reason = vv[i].reason;
		fp[i] = &fv[i];
	}
	if (r.total > r.n)
		snprintf(msg, sizeof(msg),
		         "%zu of %zu events are invalid (%zu violations, the first %zu listed)",
		         bad, req->n_events, r.total, r.n);
	else
		snprintf(msg, sizeof(msg), "%zu of %zu events are invalid", bad, req->n_events);
	rpc_finish_details(call, TP_INVALID_ARGUMENT, msg, fp, r.n);
done:
	free(fp);
	free(fv);
	free(vv);
}

static void
ingest_send(void *arg, struct rpc_call *call)
{
	struct ingest *in = arg;
	const Touchpoint__V1__SendRequest *req =
	    (const Touchpoint__V1__SendRequest *)rpc_call_request(call);
	Touchpoint__V1__SendResponse empty = TOUCHPOINT__V1__SEND_RESPONSE__INIT;
	struct validate_report r;
	struct store_prepared *prep = NULL;
	const uint8_t *wire;
	size_t len, n = req->n_events, bad;
	int rv;

	if (n > in->max_batch_events) {
		/* {-1, "events"}: libtouchpoint's sender and import send it again in halves. */
		rpc_finish_violation(
		    call, TP_INVALID_ARGUMENT, "events",
		    "batch of %zu events exceeds the limit of %zu (max_batch_events)", n,
		    in->max_batch_events);
		return;
	}
	if (n == 0) {
		rpc_finish(call, TP_OK, &empty.base, NULL);
		return;
	}
	/* Counting pass first: a valid batch (the common case) costs one pass, no allocation. */
	rpc_call_payload(call, &wire, &len);
	validate_report_init(&r, NULL, 0);
	if ((bad = validate_send_request(req, wire, len, &r)) > 0) {
		log_info("ingest: batch rejected: events=%zu invalid=%zu violations=%zu", n, bad,
		         r.total);
		/* The invalid events only: clients send the valid rest again (tp_sender does). */
		metrics_ingest(0, 0, bad);
		ingest_reject(call, req, wire, len, bad);
		return;
	}
	if ((rv = store_prepare(in->store, req->events, n, &prep)) != TP_OK) {
		rpc_finish(call, rv, NULL,
		           rv == TP_RESOURCE_EXHAUSTED
		               ? "out of memory, retry later"
		               : "batch has an event without a valid event_id");
		return;
	}
	rv = writer_submit(in->writer, call, req->events, n, prep);
	if (rv != TP_OK)
		store_prepared_free(prep);
	if (rv == TP_RESOURCE_EXHAUSTED)
		rpc_finish(call, rv, NULL, "ingest queue full, retry");
	else if (rv != TP_OK)
		rpc_finish(call, rv, NULL, "touchpointd is shutting down, retry later");
}

int
ingest_register(struct ingest *in, struct rpc_server *r)
{
	int rv;

	if ((rv = rpc_register(r, &touchpoint__v1__ingest__descriptor, "Send", ingest_send, in)) !=
	    TP_OK)
		return rv;
	/* Counted before decoding: an empty event is 2 bytes on the wire, 72 decoded. */
	return rpc_limit(r, &touchpoint__v1__ingest__descriptor, "Send", 0, 1 /* events */,
	                 "events", in->max_batch_events, "max_batch_events");
}
