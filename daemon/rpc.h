/*
 * rpc: touchpointd's NNG REQ/REP server (SPEC §5). One rep0 socket, a fixed set of
 * contexts each with its own aio; envelopes are decoded and dispatched through the
 * generated protobuf-c service descriptors to handlers registered by ingest and query.
 */
#ifndef TPD_RPC_H
#define TPD_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "touchpoint/v1/rpc.pb-c.h"

struct rpc_server;
/* One request in flight: owned by rpc until the handler calls rpc_finish*(). */
struct rpc_call;

/*
 * Called on an NNG callback thread with the decoded request. It must end, now or later
 * and from any thread, in exactly one rpc_finish*() call. Keep it short: hand LMDB work
 * to the writer or the query pool.
 */
typedef void (*rpc_handler_fn)(void *arg, struct rpc_call *call);

struct rpc_options {
	const char *const *urls; /* listen URLs (ipc://, tcp://) */
	size_t nurls;
	unsigned contexts;        /* requests in flight at once */
	size_t max_message_bytes; /* NNG_OPT_RECVMAXSZ */
	unsigned ipc_permissions; /* NNG_OPT_IPC_PERMISSIONS on ipc:// listeners */
	size_t decode_memory;     /* every request being decoded or held, together; 0: auto */
};

/* At most the bytes of a Reply around its payload: a payload may be the reply cap less this. */
#define RPC_REPLY_ENVELOPE 64

/* Opens the socket and contexts; nothing listens until rpc_start(). */
int rpc_new(struct rpc_server **rp, const struct rpc_options *o, char *errbuf, size_t errlen);
/* method is the rpc's name in svc ("Send"); TP_NOT_FOUND if svc has no such method. */
int rpc_register(struct rpc_server *r, const ProtobufCServiceDescriptor *svc, const char *method,
                 rpc_handler_fn fn, void *arg);
/*
 * Bounds on method's requests, checked before they are decoded: the payload at most
 * max_payload bytes (0: only max_message_bytes; without a call here, 1 MiB), and repeated
 * field number field (0: none) at most max_count times, else INVALID_ARGUMENT with the
 * violation {-1, field_name} naming the setting. After rpc_register(method); TP_NOT_FOUND
 * otherwise.
 */
int rpc_limit(struct rpc_server *r, const ProtobufCServiceDescriptor *svc, const char *method,
              size_t max_payload, uint32_t field, const char *field_name, size_t max_count,
              const char *setting);
/* Arms the contexts and starts the listeners. */
int rpc_start(struct rpc_server *r, char *errbuf, size_t errlen);
/* From now on new requests get UNAVAILABLE; those in flight are answered as usual. */
void rpc_stop_accepting(struct rpc_server *r);
/* Waits until no request is in flight (replies sent); TP_DEADLINE_EXCEEDED after timeout. */
int rpc_drain(struct rpc_server *r, unsigned timeout_ms);
/* Closes the socket and frees everything; call after rpc_drain() and after every thread
 * that could still finish a call has stopped. */
void rpc_free(struct rpc_server *r);
/* 0 when every context has been busy since the last call without a single reply sent. */
int rpc_healthy(struct rpc_server *r);

/* Replies sent so far: a count that grows with the work the daemon does. */
uint64_t rpc_replies(struct rpc_server *r);

/* The decoded request message (the method's input type). */
const ProtobufCMessage *rpc_call_request(const struct rpc_call *c);
/* The request's encoded payload, as received. */
void rpc_call_payload(const struct rpc_call *c, const uint8_t **buf, size_t *len);
/* CLOCK_MONOTONIC microseconds after which the client no longer waits; 0: none. */
int64_t rpc_call_deadline(const struct rpc_call *c);
int rpc_call_expired(const struct rpc_call *c);
/* Microseconds on CLOCK_MONOTONIC, the clock of deadlines. */
int64_t rpc_now_us(void);

/*
 * Answers the call: resp (the method's output type, may be NULL when code != 0) and a
 * status message. rpc packs everything before returning: the caller keeps ownership of
 * resp and details. After this the call must not be touched.
 */
void rpc_finish(struct rpc_call *c, int code, const ProtobufCMessage *resp, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void rpc_finish_details(struct rpc_call *c, int code, const char *message,
                        Touchpoint__V1__FieldViolation *const *details, size_t ndetails);
/* An error about the request as a whole: the message, and it again as the one detail
 * {index -1, field} (rpc.proto's markers "envelope" and "events" are such). */
void rpc_finish_violation(struct rpc_call *c, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif /* TPD_RPC_H */
