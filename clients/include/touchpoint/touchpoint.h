/*
 * libtouchpoint: the C client of touchpointd. This header is the manual.
 * (Status codes first: the daemon shares them, they are the wire's numbers.)
 */
#ifndef TOUCHPOINT_TOUCHPOINT_H
#define TOUCHPOINT_TOUCHPOINT_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Every tp_ function returns one of these. The numbers are google.rpc.Code's, exactly as
 * they travel in Reply.status.code (SPEC §5).
 */
enum tp_status {
	TP_OK = 0,
	TP_CANCELLED = 1,
	TP_UNKNOWN = 2,
	TP_INVALID_ARGUMENT = 3,
	TP_DEADLINE_EXCEEDED = 4,
	TP_NOT_FOUND = 5,
	TP_ALREADY_EXISTS = 6,
	TP_PERMISSION_DENIED = 7,
	TP_RESOURCE_EXHAUSTED = 8,
	TP_FAILED_PRECONDITION = 9,
	TP_ABORTED = 10,
	TP_OUT_OF_RANGE = 11,
	TP_UNIMPLEMENTED = 12,
	TP_INTERNAL = 13,
	TP_UNAVAILABLE = 14,
	TP_DATA_LOSS = 15,
	TP_UNAUTHENTICATED = 16,
};

/* "INVALID_ARGUMENT" and so on; "UNKNOWN_STATUS" for a number outside the list. */
const char *tp_strerror(int status);

#include <stddef.h>
#include <stdint.h>

/*
 * Overview
 * --------
 * A tp_client is one NNG REQ socket connected to touchpointd. Every call is a request
 * (Envelope) and a reply (Reply) on a context of its own, so one tp_client may be used by
 * any number of threads at once. Calls are synchronous and bounded by the client's
 * timeout. Every function returns an enum tp_status number; functions that take a
 * struct tp_result also fill it with the message and the per-field violations.
 *
 * Transport failures are reported as TP_UNAVAILABLE ("cannot reach touchpointd at
 * ENDPOINT: reason"), a socket this user may not open as TP_PERMISSION_DENIED, an
 * expired timeout as TP_DEADLINE_EXCEEDED. All strings are
 * NUL-terminated UTF-8; the library never keeps a pointer to caller memory after a call
 * returns (tp_sender_add copies).
 */

/* The default endpoint when neither the argument nor $TOUCHPOINT_ENDPOINT names one. */
#define TP_DEFAULT_ENDPOINT "ipc:///run/touchpointd/touchpointd.sock"
/* Largest request or reply, in bytes: the daemon's default cap (SPEC §5). */
#define TP_MAX_MESSAGE (16u * 1024u * 1024u)
/* Default per-call timeout in milliseconds. */
#define TP_DEFAULT_TIMEOUT_MS 10000u
/* Length of a generated event id, without the NUL. */
#define TP_EVENT_ID_LEN 32

typedef struct tp_client tp_client;
struct tp_result;

/*
 * Connects to touchpointd at endpoint (an NNG URL such as ipc:///path/to.sock or
 * tcp://127.0.0.1:7070). NULL means $TOUCHPOINT_ENDPOINT, else TP_DEFAULT_ENDPOINT.
 * The first connection is made before returning: if nothing listens there the result is
 * TP_UNAVAILABLE (and *cp is NULL). Afterwards NNG reconnects by itself when the daemon
 * restarts; a call made while it is away waits until its timeout.
 * Returns TP_OK, TP_INVALID_ARGUMENT (NULL cp, bad URL), TP_UNAVAILABLE,
 * TP_PERMISSION_DENIED (the socket exists but this user may not open it), TP_INTERNAL
 * (out of memory). Free with tp_close().
 */
int tp_connect(tp_client **cp, const char *endpoint);

/* tp_connect that also fills res (may be NULL) with the reason of a failure. */
int tp_connect_ex(tp_client **cp, const char *endpoint, struct tp_result *res);

/*
 * Closes the connection and frees c. No other thread may use c during or after the call.
 * NULL is allowed.
 */
void tp_close(tp_client *c);

/*
 * Sets the per-call timeout (default 10 s). It bounds the whole call locally and travels
 * as Envelope.timeout_ms so the daemon abandons work nobody waits for. 0 = no deadline.
 * Thread-safe; affects calls started afterwards. Returns TP_OK or TP_INVALID_ARGUMENT.
 */
int tp_set_timeout(tp_client *c, unsigned ms);

/* The endpoint c talks to (owned by c). */
const char *tp_endpoint(const tp_client *c);

/* Microseconds since the Unix epoch, UTC (CLOCK_REALTIME). */
int64_t tp_now_us(void);

/*
 * Writes a new event id of TP_EVENT_ID_LEN lower-case hex digits plus NUL into buf
 * (at least TP_EVENT_ID_LEN + 1 bytes): 16 bytes, the first 6 of them the current time in
 * milliseconds (big-endian, so ids sort by creation time), the other 10 from getrandom().
 * Returns TP_OK or TP_INTERNAL (no entropy).
 */
int tp_event_id_new(char *buf);

/* Events (SPEC §2). NULL string pointers mean empty/absent. */
enum tp_kind {
	TP_TOUCH = 1,
	TP_CONVERSION,
	TP_IDENTIFY,
	TP_ALIAS,
	TP_SPEND,
};

enum tp_interaction {
	TP_INTERACTION_UNSPECIFIED = 0,
	TP_INTERACTION_IMPRESSION = 1,
	TP_INTERACTION_CLICK = 2,
	TP_INTERACTION_VISIT = 3,
	TP_INTERACTION_EMAIL_OPEN = 4,
	TP_INTERACTION_OTHER = 5,
};

struct tp_touch {
	const char *channel;  /* required, 1-64 bytes */
	const char *campaign; /* <= 128 bytes */
	const char *source;   /* <= 64 */
	const char *medium;   /* <= 64 */
	enum tp_interaction interaction;
	int has_cost; /* non-zero: cost is present */
	double cost;  /* >= 0 */
};

struct tp_conversion {
	double value;         /* >= 0 */
	const char *currency; /* ISO 4217 or NULL */
	const char *name;     /* conversion type; NULL = "conversion" */
};

struct tp_trait {
	const char *key;   /* 1-64 bytes */
	const char *value; /* <= 256 bytes */
};

struct tp_identify {
	const struct tp_trait *traits; /* <= 32 */
	size_t count;
};

struct tp_alias {
	const char *previous_id; /* 1-256 bytes */
};

struct tp_spend {
	const char *channel;  /* required */
	const char *campaign; /* optional */
	const char *day;      /* YYYY-MM-DD (UTC); NULL = the day of timestamp_us */
	double amount;        /* >= 0 */
	const char *currency;
};

struct tp_event {
	const char *event_id;    /* 1-128 bytes; NULL: one is generated (tp_event_id_new) */
	const char *customer_id; /* 1-256 bytes (may be NULL for spend) */
	int64_t timestamp_us;    /* since the epoch, UTC; see tp_now_us() */
	enum tp_kind kind;
	union {
		struct tp_touch touch;
		struct tp_conversion conversion;
		struct tp_identify identify;
		struct tp_alias alias;
		struct tp_spend spend;
	} u;
};

/* One problem with one field: index is the event's position in the batch, -1 if none. */
struct tp_violation {
	int index;
	char field[128];  /* e.g. "events[3].touch.channel" (truncated to fit) */
	char reason[256]; /* truncated to fit */
};

/*
 * The outcome of a call. Filled by every function that takes one, also on success (then
 * status is TP_OK and message empty). violations is malloc'd: release it with
 * tp_result_free(), which is safe on any filled or zeroed result.
 */
struct tp_result {
	int status;
	char message[512];
	unsigned accepted;   /* tp_send: events newly stored */
	unsigned duplicates; /* tp_send: events acknowledged, stored before */
	struct tp_violation *violations;
	size_t nviolations;
};

void tp_result_free(struct tp_result *res);

/*
 * 1 when the request was too big to take: TP_RESOURCE_EXHAUSTED over TP_MAX_MESSAGE
 * (found here, nothing sent) or over the daemon's own max_message_bytes, which an operator
 * may set lower; or TP_INVALID_ARGUMENT with more events than its max_batch_events (the
 * reply names the limit). Such a request is not worth retrying as it is: send its events
 * in smaller batches (tp_sender and `touchpoint import` halve them by themselves). 0 for
 * any other result, such as a busy daemon.
 */
int tp_result_too_big(const struct tp_result *res);

/*
 * Sends evs[0..n-1] as one atomic batch (Ingest/Send) and waits until the daemon has made
 * them durable. Either every event is stored (or recognised as a duplicate) or, when any
 * is invalid, none is and the reply lists every violation (TP_INVALID_ARGUMENT).
 * Events without an event_id get a fresh one per call: to retry safely after an error set
 * ids yourself and resend the very same events (tp_sender does): the daemon recognises a
 * duplicate by event_id and timestamp_us together, so a retry built with a new
 * timestamp_us (tp_now_us() again) is stored a second time. The encoded batch must fit in
 * TP_MAX_MESSAGE, and in the daemon's max_message_bytes; otherwise TP_RESOURCE_EXHAUSTED
 * with the sizes in the message and tp_result_too_big(res) true, and nothing is stored.
 * n = 0 is TP_OK without a round trip. res may be NULL.
 * Retryable: TP_UNAVAILABLE, TP_DEADLINE_EXCEEDED, TP_RESOURCE_EXHAUSTED when not
 * tp_result_too_big (daemon busy).
 */
int tp_send(tp_client *c, const struct tp_event *evs, size_t n, struct tp_result *res);

/*
 * The raw call: method "/touchpoint.v1.<Service>/<Method>", req the packed request
 * message (req_len bytes, may be 0). On TP_OK *resp is a malloc'd copy of the packed
 * response message (never NULL; free() it) and *resp_len its length; on any other status
 * *resp is NULL. res may be NULL. Thread-safe.
 */
int tp_call(tp_client *c, const char *method, const void *req, size_t req_len, void **resp,
            size_t *resp_len, struct tp_result *res);

/* Admin/GetStatus as a plain struct (SPEC §6 `status`). */
struct tp_daemon_status {
	char version[32];
	uint64_t uptime_s;
	uint64_t events_touch, events_conversion, events_identify, events_alias, events_spend;
	uint64_t events_total;
	uint64_t duplicates; /* acknowledged but not stored, since the store was created */
	uint64_t customers;  /* estimate */
	uint64_t store_bytes;
};

int tp_status(tp_client *c, struct tp_daemon_status *st);

/*
 * Journeys and attribution have no plain-struct wrapper: their replies are deep trees.
 * Use tp_call with the protobuf-c messages of proto/touchpoint/v1/query.proto and
 * attribution.proto (that is what the touchpoint CLI does). A journey larger than one
 * reply is read in pages: GetJourneyRequest.offset, with the first page's as_of sent
 * back so that the pages agree while events keep arriving; a path table likewise with
 * PathsRequest.limit, offset and snapshot.
 */

/*
 * Buffered asynchronous sender for services: tp_sender_add() copies an event into a
 * bounded queue and returns at once; one background thread sends batches when max_batch
 * events wait or the oldest has waited flush_interval_ms (or on tp_flush). Batches that
 * fail with TP_UNAVAILABLE, TP_DEADLINE_EXCEEDED or TP_RESOURCE_EXHAUSTED are retried
 * with exponential backoff (retry_initial_ms doubling up to retry_max_ms) and the same
 * event ids, so nothing is stored twice. A batch too big to send (tp_result_too_big: over
 * TP_MAX_MESSAGE or the daemon's max_message_bytes) is sent again in halves; an event too
 * big on its own goes to on_error. A batch rejected as TP_INVALID_ARGUMENT is never
 * retried as is: the events named by the violations go to on_error and the rest of the
 * batch is sent again without them. Any other status rejects the whole batch (on_error).
 * Memory is bounded by max_queue events.
 */
typedef struct tp_sender tp_sender;

struct tp_sender_options {
	size_t max_batch;           /* events per request; 0 = 1000 */
	unsigned flush_interval_ms; /* 0 = 200 */
	size_t max_queue;           /* events waiting or in flight; 0 = 100000 */
	unsigned retry_initial_ms;  /* 0 = 50 */
	unsigned retry_max_ms;      /* 0 = 5000 */
	int block_when_full;        /* 0: tp_sender_add fails with TP_RESOURCE_EXHAUSTED */
	/*
	 * Called for events the sender gives up on, on its own thread (on the caller's for
	 * those tp_sender_close finds unsent): res says why (its violations index into evs),
	 * evs[0..n-1] are valid during the call only. They are not stored, except a batch
	 * cut off by tp_sender_close (see there), which may be.
	 * NULL: they are counted in stats.rejected and dropped silently.
	 */
	void (*on_error)(void *arg, const struct tp_result *res, const struct tp_event *evs,
	                 size_t n);
	void *arg;
};

/*
 * Creates a sender talking to endpoint (NULL as in tp_connect). Unlike tp_connect it does
 * not need the daemon to be up: events wait in the queue (and retry) until it is.
 * o may be NULL (defaults). Returns TP_OK, TP_INVALID_ARGUMENT, TP_INTERNAL.
 */
int tp_sender_new(tp_sender **sp, const char *endpoint, const struct tp_sender_options *o);

/*
 * Queues a deep copy of *ev; its event id is assigned now when NULL, so retries reuse it.
 * Thread-safe. Returns TP_OK, TP_RESOURCE_EXHAUSTED (queue full and !block_when_full),
 * TP_INVALID_ARGUMENT (NULL ev, unknown kind, identify traits NULL with a count, or more
 * than 1024 of them), TP_FAILED_PRECONDITION (closing), TP_INTERNAL (out of memory).
 */
int tp_sender_add(tp_sender *s, const struct tp_event *ev);

/*
 * Waits until every event added before the call is acknowledged or rejected, at most
 * timeout_ms (0 = no limit). Returns TP_OK or TP_DEADLINE_EXCEEDED. Thread-safe.
 */
int tp_flush(tp_sender *s, unsigned timeout_ms);

struct tp_sender_stats {
	uint64_t queued;     /* events waiting or in flight now */
	uint64_t sent;       /* events whose batch reached a final answer */
	uint64_t accepted;   /* newly stored */
	uint64_t duplicates; /* acknowledged, stored before */
	uint64_t rejected;   /* handed to on_error */
	uint64_t retries;    /* batch attempts repeated after a retryable status */
};

void tp_sender_stats(tp_sender *s, struct tp_sender_stats *st);

/*
 * tp_flush(s, timeout_ms), then stops the thread and frees s. Events still unsent then go
 * to on_error with TP_DEADLINE_EXCEEDED, on the caller's thread. A batch in flight when
 * the flush times out is cut off (on_error, TP_CANCELLED or its last transport status):
 * the daemon may have stored it all the same, so "not stored" is not certain there, and
 * resending those very events (same ids and timestamps) later is safe. Calls blocked in
 * tp_sender_add or tp_flush on other threads return (TP_FAILED_PRECONDITION, the flush's
 * status) before s is freed; no call may begin once tp_sender_close has been called.
 * Returns the flush's status. NULL is allowed.
 */
int tp_sender_close(tp_sender *s, unsigned timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* TOUCHPOINT_TOUCHPOINT_H */
