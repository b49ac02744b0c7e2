/*
 * rpc: the NNG server. Each context runs RECV -> dispatch -> (handler, maybe on another
 * thread) -> SEND -> RECV, the pattern of nng's demo/async/server.c. Callbacks only decode
 * and dispatch; a handler answers through rpc_finish*(), which packs the Reply and sends it.
 */
#include "errf.h"
#include "rpc.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/prctl.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "log.h"
#include "metrics.h"
#include "touchpoint/touchpoint.h"
#include "touchpoint/v1/attribution.pb-c.h"
#include "touchpoint/v1/ingest.pb-c.h"
#include "touchpoint/v1/query.pb-c.h"
#include "validate.h"

#define RPC_MAX_HANDLERS 16
/*
 * Decoding bounds, checked before and while a request is unpacked: an encoding a few bytes
 * long can decode into a struct of a hundred (16 MiB of empty events took 875 MB). Every
 * request may decode into RPC_DECODE_FACTOR times its size plus RPC_DECODE_SLACK (valid
 * batches need at most ≈ 10×: a minimal touch is 21 bytes on the wire, 192 decoded), and a
 * request other than those rpc_limit() allows more is at most RPC_SMALL_PAYLOAD bytes.
 */
#define RPC_DECODE_FACTOR 16
#define RPC_DECODE_SLACK  ((size_t)1 << 20)
#define RPC_SMALL_PAYLOAD ((size_t)1 << 20)
/*
 * How often the guard tries each listener (see rpc_guard), and how long a connection whose
 * handshake is done may take to reach the socket (well under a millisecond when the
 * listener works): a stuck listener is open again within about 7 s.
 */
#ifndef RPC_GUARD_MS
#define RPC_GUARD_MS 2000
#endif
#ifndef RPC_GUARD_ATTACH_MS
#define RPC_GUARD_ATTACH_MS 5000
#endif
#define RPC_MAX_LISTENERS 16
#define RPC_NAME_MAX      96
/* NNG counts its own headers (REQ's request id) against NNG_OPT_RECVMAXSZ. */
#define RPC_NNG_SLACK 1024

/* The services of proto/touchpoint/v1: the only ones a method may name. */
static const ProtobufCServiceDescriptor *const rpc_services[] = {
	&touchpoint__v1__ingest__descriptor,
	&touchpoint__v1__journey__descriptor,
	&touchpoint__v1__admin__descriptor,
	&touchpoint__v1__attribution__descriptor,
};

struct rpc_handler {
	const ProtobufCServiceDescriptor *svc;
	unsigned method;
	rpc_handler_fn fn;
	void *arg;
	size_t max_payload; /* 0: max_message_bytes only (rpc_limit) */
	uint32_t field;     /* a repeated field counted before decoding, 0: none */
	size_t max_count;
	const char *field_name, *setting;
	char name[RPC_NAME_MAX]; /* "/touchpoint.v1.Ingest/Send", for metrics and logs */
};

/*
 * A bump allocator per context for unpacking: a batch decodes into thousands of small
 * strings and messages, all freed together when the reply is sent. The first block is
 * kept for the next request.
 */
struct rpc_block {
	struct rpc_block *next;
	size_t size, used;
	int counted; /* in decode_memory's total: all but a context's first 64 KiB block */
	max_align_t data[];
};

struct rpc_arena {
	struct rpc_block *head;
	size_t blocks;
	size_t total;  /* bytes of its blocks */
	size_t budget; /* for the request being decoded; 0: none */
	int over;      /* an allocation was refused: RPC_OVER_REQUEST or RPC_OVER_SHARED */
	/*
	 * Every context's blocks together, at most shared_cap (decode_memory). A context's first
	 * block of RPC_ARENA_FIRST bytes is neither counted nor refused: it is kept for the next
	 * request, and a status or any small request fits in it, so they are never "busy".
	 */
	_Atomic size_t *shared;
	size_t shared_cap;
};

/* Why an arena refused: its request's own budget, or every context's together. */
enum { RPC_OVER_REQUEST = 1, RPC_OVER_SHARED = 2 };

#define RPC_ARENA_FIRST ((size_t)64 << 10)

/*
 * Takes *bs bytes of decode_memory, or only need (the request's last block) if that is all
 * there is room for. 0, or -1 with over set: the request alone needs more than
 * decode_memory (too big), or the requests in flight hold it (busy).
 */
static int
rpc_arena_take(struct rpc_arena *a, size_t *bs, size_t need)
{
	if (atomic_fetch_add(a->shared, *bs) + *bs <= a->shared_cap)
		return 0;
	atomic_fetch_sub(a->shared, *bs);
	if (*bs > need) {
		if (atomic_fetch_add(a->shared, need) + need <= a->shared_cap) {
			*bs = need;
			return 0;
		}
		atomic_fetch_sub(a->shared, need);
	}
	a->over = a->total + need > a->shared_cap ? RPC_OVER_REQUEST : RPC_OVER_SHARED;
	return -1;
}

static void *
rpc_arena_alloc(void *arg, size_t size)
{
	struct rpc_arena *a = arg;
	struct rpc_block *b = a->head;
	size_t need = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	int counted;

	if (need < size)
		return NULL;
	if (b == NULL || b->size - b->used < need) {
		/* Blocks double, so a large batch costs a handful of mallocs. */
		size_t bs = a->blocks < 12 ? RPC_ARENA_FIRST << a->blocks : RPC_ARENA_FIRST << 12;

		if (bs < need)
			bs = need;
		if (a->budget > 0) {
			size_t left = a->total < a->budget ? a->budget - a->total : 0;

			if (bs > left)
				bs = need; /* the last block: only what is asked */
			if (bs > left) {
				a->over = RPC_OVER_REQUEST;
				return NULL;
			}
		}
		counted = a->shared != NULL && (a->blocks > 0 || bs != RPC_ARENA_FIRST);
		if (counted && rpc_arena_take(a, &bs, need) != 0)
			return NULL;
		if ((b = malloc(sizeof(*b) + bs)) == NULL) {
			if (counted)
				atomic_fetch_sub(a->shared, bs);
			return NULL;
		}
		a->total += bs;
		b->size = bs;
		b->used = 0;
		b->counted = counted;
		b->next = a->head;
		a->head = b;
		a->blocks++;
	}
	b->used += need;
	return (char *)b->data + b->used - need;
}

static void
rpc_arena_free(void *arg, void *p)
{
	(void)arg;
	(void)p; /* everything goes at once in rpc_arena_reset() */
}

/*
 * Frees every block but the first (oldest) one, which is kept empty for reuse if it is the
 * uncounted 64 KiB one (a request's one large field would stay allocated for good).
 */
static void
rpc_arena_reset(struct rpc_arena *a, int keep)
{
	struct rpc_block *b = a->head, *next;

	while (b != NULL) {
		next = b->next;
		if (next == NULL && keep && !b->counted && b->size == RPC_ARENA_FIRST) {
			b->used = 0;
			a->head = b;
			a->blocks = 1;
			a->total = b->size;
			return;
		}
		if (b->counted)
			atomic_fetch_sub(a->shared, b->size);
		free(b);
		b = next;
	}
	a->head = NULL;
	a->blocks = 0;
	a->total = 0;
}

enum rpc_state {
	RPC_RECV,
	RPC_SEND,
};

struct rpc_call {
	struct rpc_server *srv;
	nng_ctx ctx;
	nng_aio *aio;
	enum rpc_state state;
	Touchpoint__V1__Envelope *env;
	ProtobufCMessage *req;
	struct rpc_arena arena;
	ProtobufCAllocator alloc; /* over arena */
	const char *method;       /* handler name or "unknown" */
	uint64_t request_id;
	int64_t start_us;
	int64_t deadline_us;
};

struct rpc_server {
	nng_socket sock;
	int sock_open;
	nng_listener listeners[RPC_MAX_LISTENERS];
	size_t nlisteners;
	char *probe[RPC_MAX_LISTENERS];    /* the URL the guard dials for each listener */
	atomic_int lid[RPC_MAX_LISTENERS]; /* nng_listener_id of each */
	atomic_uint_fast64_t attached[RPC_MAX_LISTENERS]; /* connections it handed over */
	pthread_t guard;
	int guard_on, guard_stop, guard_done;
	int listen_broken; /* a listener could not be opened again: unhealthy */
	char **urls;
	size_t nurls;
	size_t max_message_bytes;
	size_t recv_max;         /* NNG's cap: max(max_message_bytes, TP_MAX_MESSAGE) + slack */
	_Atomic size_t decoding; /* bytes of every context's arena (rpc_arena.shared) */
	unsigned ipc_permissions;
	struct rpc_call *calls;
	unsigned ncalls;
	struct rpc_handler handlers[RPC_MAX_HANDLERS];
	size_t nhandlers;
	atomic_int stopping; /* listeners closed: answer UNAVAILABLE */
	atomic_int closing;  /* socket closing: do not re-arm */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_cond_t gcv; /* wakes the guard early (rpc_free) */
	unsigned inflight;  /* calls between receive and the end of their reply's send */
	uint64_t replies;
	uint64_t replies_seen; /* by rpc_healthy() */
	int closed;            /* rpc_closer() finished */
};

int64_t
rpc_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ts = now + ms on CLOCK_MONOTONIC, the clock of the server's condition variables. */
static void
rpc_deadline(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* A reply's send has ended (or could not start): the context is free again. */
static void
rpc_release(struct rpc_call *c)
{
	struct rpc_server *r = c->srv;

	pthread_mutex_lock(&r->mu);
	r->inflight--;
	r->replies++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	c->state = RPC_RECV;
	if (!atomic_load(&r->closing))
		nng_ctx_recv(c->ctx, c->aio);
}

static void
rpc_call_clear(struct rpc_call *c)
{
	/* Both were unpacked into the arena. */
	rpc_arena_reset(&c->arena, 1);
	c->req = NULL;
	c->env = NULL;
}

/* The largest reply payload a client receives, with room for the Reply around it. */
static size_t
rpc_reply_max(const struct rpc_server *r)
{
	return (r->max_message_bytes < TP_MAX_MESSAGE ? r->max_message_bytes : TP_MAX_MESSAGE) -
	       RPC_REPLY_ENVELOPE;
}

static void
rpc_reply(struct rpc_call *c, int code, const char *message,
          Touchpoint__V1__FieldViolation *const *details, size_t ndetails,
          const ProtobufCMessage *resp)
{
	Touchpoint__V1__Reply rep = TOUCHPOINT__V1__REPLY__INIT;
	Touchpoint__V1__Status st = TOUCHPOINT__V1__STATUS__INIT;
	nng_msg *m = NULL;
	char toobig[160];
	size_t len;
	int rv;

	/*
	 * libtouchpoint caps what it receives at TP_MAX_MESSAGE: a bigger reply would never
	 * arrive, even when max_message_bytes is set higher.
	 */
	if (code == TP_OK && resp != NULL &&
	    (len = protobuf_c_message_get_packed_size(resp)) > rpc_reply_max(c->srv)) {
		snprintf(
		    toobig, sizeof(toobig),
		    "the response is %zu bytes, over the %zu a reply may hold (max_message_bytes): "
		    "narrow the query",
		    len, rpc_reply_max(c->srv));
		log_warn("rpc: response too large: method=%s bytes=%zu", c->method, len);
		code = TP_RESOURCE_EXHAUSTED;
		message = toobig;
		resp = NULL;
	}
	st.code = code;
	st.message = (char *)(message != NULL ? message : "");
	st.details = (Touchpoint__V1__FieldViolation **)details;
	st.n_details = ndetails;
	rep.request_id = c->request_id;
	rep.status = &st;
	if (code == TP_OK && resp != NULL) {
		/* Packed straight into the reply: no intermediate copy of a large payload. */
		rep.payload.len = protobuf_c_message_get_packed_size(resp);
		rep.payload.data = NULL;
	}
	/* Room for field 3's tag and length even when the payload is empty (not counted). */
	len = touchpoint__v1__reply__get_packed_size(&rep) + 12;
	if ((rv = nng_msg_alloc(&m, len)) != 0)
		goto fail;
	if (code == TP_OK && resp != NULL) {
		uint8_t *body = nng_msg_body(m);
		size_t head;

		/* Reply fields 1-2 first, then field 3 (payload): tag, length, then the bytes. */
		rep.payload.len = 0;
		head = touchpoint__v1__reply__pack(&rep, body);
		len = protobuf_c_message_get_packed_size(resp);
		body[head++] = (3 << 3) | 2;
		for (size_t v = len;; v >>= 7) {
			body[head++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
			if (v < 0x80)
				break;
		}
		head += protobuf_c_message_pack(resp, body + head);
		if ((rv = nng_msg_realloc(m, head)) != 0)
			goto fail;
	} else {
		len = touchpoint__v1__reply__pack(&rep, nng_msg_body(m));
		if ((rv = nng_msg_realloc(m, len)) != 0)
			goto fail;
	}
	metrics_request(c->method, code, (double)(rpc_now_us() - c->start_us) / 1e6);
	log_debug("request method=%s code=%d us=%lld", c->method, code,
	          (long long)(rpc_now_us() - c->start_us));
	rpc_call_clear(c);
	c->state = RPC_SEND;
	nng_aio_set_msg(c->aio, m);
	nng_ctx_send(c->ctx, c->aio);
	return;
fail:
	log_err("rpc: cannot build a reply: method=%s error=\"%s\"", c->method, nng_strerror(rv));
	if (m != NULL)
		nng_msg_free(m);
	rpc_call_clear(c);
	rpc_release(c);
}

void
rpc_finish_details(struct rpc_call *c, int code, const char *message,
                   Touchpoint__V1__FieldViolation *const *details, size_t ndetails)
{
	rpc_reply(c, code, message, details, ndetails, NULL);
}

void
rpc_finish_violation(struct rpc_call *c, int code, const char *field, const char *fmt, ...)
{
	Touchpoint__V1__FieldViolation v = TOUCHPOINT__V1__FIELD_VIOLATION__INIT, *vp = &v;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	v.index = -1;
	v.field = (char *)field;
	v.reason = msg;
	rpc_reply(c, code, msg, &vp, 1, NULL);
}

void
rpc_finish(struct rpc_call *c, int code, const ProtobufCMessage *resp, const char *fmt, ...)
{
	char msg[512] = "";
	va_list ap;

	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	rpc_reply(c, code, msg, NULL, 0, resp);
}

const ProtobufCMessage *
rpc_call_request(const struct rpc_call *c)
{
	return c->req;
}

void
rpc_call_payload(const struct rpc_call *c, const uint8_t **buf, size_t *len)
{
	*buf = c->env->payload.data;
	*len = c->env->payload.len;
}

int64_t
rpc_call_deadline(const struct rpc_call *c)
{
	return c->deadline_us;
}

int
rpc_call_expired(const struct rpc_call *c)
{
	return c->deadline_us != 0 && rpc_now_us() >= c->deadline_us;
}

/* Printable ASCII only, bounded: the method string is client input echoed in a message. */
static void
rpc_sanitize(char *out, size_t outlen, const char *in)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 4 < outlen; i++)
		out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
	if (in[i] != '\0' && i + 3 < outlen) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

/* "/touchpoint.v1.Svc/Method" -> its handler, or NULL; *md gets the method if it exists. */
static const struct rpc_handler *
rpc_lookup(struct rpc_server *r, const char *method, const ProtobufCMethodDescriptor **md)
{
	const char *slash;
	size_t svclen;

	*md = NULL;
	if (method[0] != '/' || (slash = strrchr(method, '/')) == method)
		return NULL;
	svclen = (size_t)(slash - method - 1);
	for (size_t i = 0; i < sizeof(rpc_services) / sizeof(rpc_services[0]); i++) {
		const ProtobufCServiceDescriptor *svc = rpc_services[i];
		const ProtobufCMethodDescriptor *m;
		size_t idx;

		if (strlen(svc->name) != svclen || memcmp(svc->name, method + 1, svclen) != 0)
			continue;
		m = protobuf_c_service_descriptor_get_method_by_name(svc, slash + 1);
		if (m == NULL)
			return NULL;
		/* protobuf-c only asserts the index: check it before trusting it. */
		idx = (size_t)(m - svc->methods);
		if (idx >= svc->n_methods)
			return NULL;
		*md = m;
		for (size_t h = 0; h < r->nhandlers; h++)
			if (r->handlers[h].svc == svc && r->handlers[h].method == idx &&
			    r->handlers[h].fn != NULL)
				return &r->handlers[h];
		return NULL;
	}
	return NULL;
}

/*
 * The request id of an envelope that was not (or could not be) decoded, read off its bytes:
 * libtouchpoint drops a reply to another id as a protocol error instead of acting on it.
 */
static void
rpc_raw_request_id(struct rpc_call *c, nng_msg *msg)
{
	uint64_t id;

	if (validate_wire_varint_field(nng_msg_body(msg), nng_msg_len(msg), 2, &id) == 0)
		c->request_id = id;
}

/*
 * A request over max_message_bytes, not unpacked: RESOURCE_EXHAUSTED with one violation
 * {-1, "envelope", …} by which libtouchpoint tells it from a busy daemon (rpc.proto) and
 * sends smaller batches instead of the same one again.
 */
static void
rpc_too_big(struct rpc_call *c, nng_msg *msg)
{
	size_t len = nng_msg_len(msg);

	log_warn("rpc: request too large: bytes=%zu max_message_bytes=%zu", len,
	         c->srv->max_message_bytes);
	rpc_raw_request_id(c, msg);
	rpc_finish_violation(c, TP_RESOURCE_EXHAUSTED, "envelope",
	                     "request is %zu bytes, over max_message_bytes (%zu): send smaller "
	                     "batches",
	                     len, c->srv->max_message_bytes);
}

/*
 * The handler's bounds on a payload not yet decoded (rpc_limit): 1 when it answered. A batch
 * of too many events is refused as ingest.c would refuse it decoded, {-1, field}, so that
 * clients split it the same way.
 */
static int
rpc_precheck(struct rpc_call *c, const struct rpc_handler *h)
{
	const uint8_t *p = c->env->payload.data;
	size_t len = c->env->payload.len;
	uint64_t n;

	if (h->max_payload > 0 && len > h->max_payload) {
		rpc_finish_violation(c, TP_RESOURCE_EXHAUSTED, "payload",
		                     "a %s request is at most %zu bytes, this one is %zu", h->name,
		                     h->max_payload, len);
		return 1;
	}
	if (h->field == 0 || len == 0)
		return 0;
	if (validate_wire_count_field(p, len, h->field, &n) != 0)
		return 0; /* malformed: decoding says so */
	if (n > h->max_count) {
		rpc_finish_violation(c, TP_INVALID_ARGUMENT, h->field_name,
		                     "batch of %llu %s exceeds the limit of %zu (%s)",
		                     (unsigned long long)n, h->field_name, h->max_count,
		                     h->setting);
		return 1;
	}
	return 0;
}

/*
 * decode_memory's default: a quarter of the machine's memory, but room for two of the
 * largest requests (each may decode into 16 times its size plus 1 MiB).
 */
static size_t
rpc_decode_memory_auto(size_t max_message_bytes)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	size_t quarter = pages > 0 && psize > 0 ? (size_t)pages / 4 * (size_t)psize : 0;
	size_t two = 2 * (RPC_DECODE_FACTOR * max_message_bytes + RPC_DECODE_SLACK);

	return quarter > two ? quarter : two;
}

/* What the request being decoded may take: its own budget, or decode_memory if less. */
static size_t
rpc_decode_max(const struct rpc_call *c)
{
	return c->arena.budget < c->arena.shared_cap ? c->arena.budget : c->arena.shared_cap;
}

/* The requests in flight hold decode_memory between them: this one can come back later. */
static void
rpc_busy(struct rpc_call *c)
{
	log_warn("rpc: decode_memory full: method=%s bytes=%zu", c->method,
	         atomic_load(c->arena.shared));
	rpc_finish(c, TP_RESOURCE_EXHAUSTED, NULL,
	           "the requests in flight hold decode_memory (%zu bytes): retry later",
	           c->arena.shared_cap);
}

/*
 * field ("envelope", "payload") could not be unpacked (as type, if named): decode_memory
 * held by others (retry), more than the request may decode into (too big), or garbage.
 */
static void
rpc_undecoded(struct rpc_call *c, const char *field, const char *type)
{
	if (c->arena.over == RPC_OVER_SHARED)
		rpc_busy(c);
	else if (c->arena.over)
		rpc_finish_violation(c, TP_RESOURCE_EXHAUSTED, field,
		                     "request decodes to more than %zu bytes", rpc_decode_max(c));
	else
		rpc_finish(c, TP_INVALID_ARGUMENT, NULL, "%s: cannot parse%s%s", field,
		           type[0] != '\0' ? " as " : "", type);
}

static void
rpc_dispatch(struct rpc_call *c, nng_msg *msg)
{
	struct rpc_server *r = c->srv;
	const struct rpc_handler *h;
	const ProtobufCMethodDescriptor *md;
	char name[RPC_NAME_MAX];

	c->start_us = rpc_now_us();
	c->deadline_us = 0;
	c->request_id = 0;
	c->method = "unknown";
	if (nng_msg_len(msg) > r->max_message_bytes) {
		rpc_too_big(c, msg);
		nng_msg_free(msg);
		return;
	}
	c->arena.over = 0;
	c->arena.budget = RPC_DECODE_FACTOR * nng_msg_len(msg) + RPC_DECODE_SLACK;
	c->env = touchpoint__v1__envelope__unpack(&c->alloc, nng_msg_len(msg), nng_msg_body(msg));
	if (c->env == NULL)
		rpc_raw_request_id(c, msg);
	nng_msg_free(msg);
	if (c->env == NULL) {
		rpc_undecoded(c, "envelope", "");
		return;
	}
	c->request_id = c->env->request_id;
	if (c->env->timeout_ms > 0)
		c->deadline_us = c->start_us + (int64_t)c->env->timeout_ms * 1000;
	h = rpc_lookup(r, c->env->method, &md);
	if (h != NULL)
		c->method = h->name;
	if (atomic_load(&r->stopping)) {
		rpc_finish(c, TP_UNAVAILABLE, NULL, "touchpointd is shutting down, retry later");
		return;
	}
	if (h == NULL) {
		rpc_sanitize(name, sizeof(name), c->env->method);
		rpc_finish(c, TP_UNIMPLEMENTED, NULL, "method %s is not implemented", name);
		return;
	}
	if (rpc_precheck(c, h))
		return;
	c->req = protobuf_c_message_unpack(md->input, &c->alloc, c->env->payload.len,
	                                   c->env->payload.data);
	if (c->req == NULL) {
		rpc_undecoded(c, "payload", md->input->name);
		return;
	}
	/*
	 * protobuf-c truncates a string at an embedded NUL: a customer_id or a path would be
	 * silently shortened. Send names every violation itself (ingest.c); the rest here.
	 */
	if (md->input != &touchpoint__v1__send_request__descriptor) {
		struct validate_violation v;
		struct validate_report vr;

		validate_report_init(&vr, &v, 1);
		if (validate_wire_strings(md->input, c->env->payload.data, c->env->payload.len, -1,
		                          "request", &vr) > 0) {
			rpc_finish(c, TP_INVALID_ARGUMENT, NULL, "%s %s", v.field, v.reason);
			return;
		}
	}
	h->fn(h->arg, c);
}

static void
rpc_cb(void *arg)
{
	struct rpc_call *c = arg;
	struct rpc_server *r = c->srv;
	int rv = nng_aio_result(c->aio);
	nng_msg *msg;

	if (c->state == RPC_SEND) {
		/* A failed send (the client went away) leaves the message with us. */
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(c->aio));
			nng_aio_set_msg(c->aio, NULL);
			log_debug("rpc: reply not sent: error=\"%s\"", nng_strerror(rv));
		}
		rpc_release(c);
		return;
	}
	if (rv != 0) {
		if (rv == NNG_ECLOSED || atomic_load(&r->closing))
			return;
		log_warn("rpc: receive failed: error=\"%s\"", nng_strerror(rv));
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	msg = nng_aio_get_msg(c->aio);
	nng_aio_set_msg(c->aio, NULL);
	pthread_mutex_lock(&r->mu);
	r->inflight++;
	pthread_mutex_unlock(&r->mu);
	rpc_dispatch(c, msg);
}

int
rpc_new(struct rpc_server **rp, const struct rpc_options *o, char *errbuf, size_t errlen)
{
	struct rpc_server *r;
	pthread_condattr_t ca;
	int rv;

	*rp = NULL;
	if (o->contexts == 0 || o->nurls == 0 || o->nurls > RPC_MAX_LISTENERS ||
	    o->max_message_bytes < 1024) {
		tp_errf(errbuf, errlen, "rpc: bad options (contexts %u, listeners %zu)",
		        o->contexts, o->nurls);
		return TP_INVALID_ARGUMENT;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_cond_init(&r->gcv, &ca);
	pthread_condattr_destroy(&ca);
	r->max_message_bytes = o->max_message_bytes;
	r->ipc_permissions = o->ipc_permissions;
	atomic_init(&r->decoding, 0);
	if ((r->urls = calloc(o->nurls, sizeof(char *))) == NULL)
		goto nomem;
	for (r->nurls = 0; r->nurls < o->nurls; r->nurls++)
		if ((r->urls[r->nurls] = strdup(o->urls[r->nurls])) == NULL)
			goto nomem;
	if ((rv = nng_rep0_open(&r->sock)) != 0) {
		tp_errf(errbuf, errlen, "rpc: cannot open a rep0 socket: %s", nng_strerror(rv));
		goto fail;
	}
	r->sock_open = 1;
	/*
	 * NNG drops a message over its cap with the connection, unanswered: the client only
	 * times out. So NNG may read up to what libtouchpoint ever sends (TP_MAX_MESSAGE),
	 * and rpc_dispatch refuses one over max_message_bytes before unpacking (which
	 * allocates in proportion to input), naming the limit.
	 */
	r->recv_max = o->max_message_bytes > TP_MAX_MESSAGE ? o->max_message_bytes : TP_MAX_MESSAGE;
	r->recv_max += RPC_NNG_SLACK;
	if ((rv = nng_socket_set_size(r->sock, NNG_OPT_RECVMAXSZ, r->recv_max)) != 0) {
		tp_errf(errbuf, errlen, "rpc: cannot set %s: %s", NNG_OPT_RECVMAXSZ,
		        nng_strerror(rv));
		goto fail;
	}
	if ((r->calls = calloc(o->contexts, sizeof(*r->calls))) == NULL)
		goto nomem;
	for (r->ncalls = 0; r->ncalls < o->contexts; r->ncalls++) {
		struct rpc_call *c = &r->calls[r->ncalls];

		c->srv = r;
		c->method = "unknown";
		c->alloc.alloc = rpc_arena_alloc;
		c->alloc.free = rpc_arena_free;
		c->alloc.allocator_data = &c->arena;
		c->arena.shared = &r->decoding;
		c->arena.shared_cap = o->decode_memory > 0
		                          ? o->decode_memory
		                          : rpc_decode_memory_auto(o->max_message_bytes);
		if ((rv = nng_aio_alloc(&c->aio, rpc_cb, c)) != 0)
			goto nngfail;
		if ((rv = nng_ctx_open(&c->ctx, r->sock)) != 0) {
			nng_aio_free(c->aio);
			goto nngfail;
		}
	}
	*rp = r;
	return TP_OK;
nngfail:
	tp_errf(errbuf, errlen, "rpc: cannot open context %u: %s", r->ncalls, nng_strerror(rv));
	goto fail;
nomem:
	tp_errf(errbuf, errlen, "rpc: out of memory");
	rv = 0;
fail:
	rpc_free(r);
	return rv == 0 ? TP_RESOURCE_EXHAUSTED : TP_INTERNAL;
}

int
rpc_register(struct rpc_server *r, const ProtobufCServiceDescriptor *svc, const char *method,
             rpc_handler_fn fn, void *arg)
{
	const ProtobufCMethodDescriptor *m;
	struct rpc_handler *h;

	m = protobuf_c_service_descriptor_get_method_by_name(svc, method);
	if (m == NULL || (size_t)(m - svc->methods) >= svc->n_methods)
		return TP_NOT_FOUND;
	if (r->nhandlers == RPC_MAX_HANDLERS)
		return TP_RESOURCE_EXHAUSTED;
	h = &r->handlers[r->nhandlers++];
	h->svc = svc;
	h->method = (unsigned)(m - svc->methods);
	h->fn = fn;
	h->arg = arg;
	h->max_payload = RPC_SMALL_PAYLOAD;
	h->field = 0;
	snprintf(h->name, sizeof(h->name), "/%s/%s", svc->name, m->name);
	return TP_OK;
}

int
rpc_limit(struct rpc_server *r, const ProtobufCServiceDescriptor *svc, const char *method,
          size_t max_payload, uint32_t field, const char *field_name, size_t max_count,
          const char *setting)
{
	const ProtobufCMethodDescriptor *m =
	    protobuf_c_service_descriptor_get_method_by_name(svc, method);

	if (m == NULL)
		return TP_NOT_FOUND;
	for (size_t i = 0; i < r->nhandlers; i++) {
		struct rpc_handler *h = &r->handlers[i];

		if (h->svc == svc && h->method == (unsigned)(m - svc->methods)) {
			h->max_payload = max_payload;
			h->field = field;
			h->field_name = field_name;
			h->max_count = max_count;
			h->setting = setting;
			return TP_OK;
		}
	}
	return TP_NOT_FOUND;
}

/* Opens listener i on its URL; TP_OK, or the code and message rpc_start gives. */
static int
rpc_listen(struct rpc_server *r, size_t i, char *errbuf, size_t errlen)
{
	const char *url = r->urls[i];
	nng_listener l;
	int rv;

	if ((rv = nng_listener_create(&l, r->sock, url)) != 0) {
		tp_errf(errbuf, errlen, "listen %s: %s", url, nng_strerror(rv));
		return TP_INVALID_ARGUMENT;
	}
	r->listeners[i] = l;
	atomic_store(&r->lid[i], nng_listener_id(l));
	if ((rv = nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, r->recv_max)) != 0 ||
	    (strncmp(url, "ipc://", 6) == 0 &&
	     (rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, (int)r->ipc_permissions)) !=
	         0) ||
	    (rv = nng_listener_start(l, 0)) != 0) {
		tp_errf(errbuf, errlen, "listen %s: %s", url, nng_strerror(rv));
		return rv == NNG_EADDRINUSE || rv == NNG_EPERM ? TP_FAILED_PRECONDITION
		                                               : TP_INTERNAL;
	}
	return TP_OK;
}

/*
 * The URL a client dials to reach listener url: a TCP wildcard host becomes loopback.
 * NULL when out of memory (the guard then leaves that listener alone).
 */
static char *
rpc_probe_url(const char *url)
{
	static const char *const any[] = { "tcp://*:", "tcp://0.0.0.0:", "tcp://:" };
	size_t i, n;
	char *s;

	for (i = 0; i < sizeof(any) / sizeof(any[0]); i++) {
		n = strlen(any[i]);
		if (strncmp(url, any[i], n) == 0 && (s = malloc(strlen(url) + 16)) != NULL) {
			sprintf(s, "tcp://127.0.0.1:%s", url + n);
			return s;
		}
	}
	if (strncmp(url, "tcp://[::]:", 11) == 0 && (s = malloc(strlen(url) + 16)) != NULL) {
		sprintf(s, "tcp://[::1]:%s", url + 11);
		return s;
	}
	return strdup(url);
}

/* Counts the connections each listener hands to the socket (see rpc_probe). */
static void
rpc_pipe_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct rpc_server *r = arg;
	int id = nng_listener_id(nng_pipe_listener(p));
	size_t i;

	(void)ev;
	for (i = 0; i < RPC_MAX_LISTENERS; i++)
		if (id > 0 && atomic_load(&r->lid[i]) == id)
			atomic_fetch_add(&r->attached[i], 1);
}

/*
 * 0 when listener i takes a new connection: a client finishes NNG's handshake with it and
 * the socket gets the connection (rpc_pipe_added) within RPC_GUARD_ATTACH_MS; else an
 * NNG error code.
 */
static int
rpc_probe(struct rpc_server *r, size_t i)
{
	uint64_t before = atomic_load(&r->attached[i]);
	struct timespec ts = { 0, 10 * 1000000 };
	nng_socket s;
	nng_dialer d;
	int rv, waited;

	if (nng_req0_open(&s) != 0)
		return 0; /* cannot tell: leave the listener be */
	if ((rv = nng_dialer_create(&d, s, r->probe[i])) == 0)
		rv = nng_dialer_start(d, 0); /* returns once the client's side of it is done */
	for (waited = 0; rv == 0 && atomic_load(&r->attached[i]) == before; waited += 10) {
		if (waited >= RPC_GUARD_ATTACH_MS || atomic_load(&r->stopping)) {
			if (waited >= RPC_GUARD_ATTACH_MS)
				rv = NNG_ETIMEDOUT;
			break;
		}
		nanosleep(&ts, NULL);
	}
	nng_close(s);
	return rv;
}

/*
 * NNG 1.5.2 (Debian 12's) can stop a listener for good when a client closes its connection
 * during NNG's handshake (nng#1518, fixed upstream in 1.5.3): after a connect-and-close,
 * or a second touchpointd trying the same socket, new clients still connect but their
 * connections never reach the socket, so nobody new gets an answer. This thread checks
 * every listener every RPC_GUARD_MS and opens one that no longer hands over connections
 * again. Closing it closes its connections too; their clients reconnect (NNG redials)
 * and retry. A listener that cannot be opened again makes the daemon unhealthy, so that
 * systemd's watchdog restarts it.
 */
static void *
rpc_guard(void *arg)
{
	struct rpc_server *r = arg;
	struct timespec ts;
	char err[256];
	size_t i;
	int rv;

	(void)prctl(PR_SET_NAME, "tp-rpc-guard");
	pthread_mutex_lock(&r->mu);
	while (!r->guard_stop) {
		rpc_deadline(&ts, RPC_GUARD_MS);
		while (!r->guard_stop && pthread_cond_timedwait(&r->gcv, &r->mu, &ts) == 0)
			;
		if (r->guard_stop)
			break;
		pthread_mutex_unlock(&r->mu);
		for (i = 0; i < r->nlisteners && !atomic_load(&r->stopping); i++) {
			if (r->probe[i] == NULL || (rv = rpc_probe(r, i)) == 0)
				continue;
			if (atomic_load(&r->stopping))
				break;
			log_warn("listener %s takes no new connection (%s): opening it again",
			         r->urls[i], nng_strerror(rv));
			nng_listener_close(r->listeners[i]);
			metrics_listener_reopened();
			err[0] = '\0';
			if ((rv = rpc_listen(r, i, err, sizeof(err))) != TP_OK) {
				log_err("cannot listen again: %s", err);
				pthread_mutex_lock(&r->mu);
				r->listen_broken = 1;
				pthread_mutex_unlock(&r->mu);
			}
		}
		pthread_mutex_lock(&r->mu);
	}
	r->guard_done = 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

int
rpc_start(struct rpc_server *r, char *errbuf, size_t errlen)
{
	int rv;

	for (unsigned i = 0; i < r->ncalls; i++) {
		r->calls[i].state = RPC_RECV;
		nng_ctx_recv(r->calls[i].ctx, r->calls[i].aio);
	}
	if ((rv = nng_pipe_notify(r->sock, NNG_PIPE_EV_ADD_POST, rpc_pipe_added, r)) != 0) {
		tp_errf(errbuf, errlen, "rpc: pipe notification: %s", nng_strerror(rv));
		return TP_INTERNAL;
	}
	for (size_t i = 0; i < r->nurls; i++) {
		if ((rv = rpc_listen(r, i, errbuf, errlen)) != TP_OK)
			return rv;
		r->nlisteners = i + 1;
		r->probe[i] = rpc_probe_url(r->urls[i]);
		log_info("listening url=%s", r->urls[i]);
	}
	if (pthread_create(&r->guard, NULL, rpc_guard, r) != 0) {
		tp_errf(errbuf, errlen, "rpc: cannot start the listener guard thread");
		return TP_RESOURCE_EXHAUSTED;
	}
	r->guard_on = 1;
	return TP_OK;
}

void
rpc_stop_accepting(struct rpc_server *r)
{
	/*
	 * The listeners stay open: closing one closes the pipes it made, and with them the
	 * replies still to come for the requests in flight (their clients waited out their
	 * deadlines). They close with the socket, in rpc_free, once those are sent.
	 */
	atomic_store(&r->stopping, 1);
}

int
rpc_drain(struct rpc_server *r, unsigned timeout_ms)
{
	struct timespec ts;
	int rv = TP_OK;

	rpc_deadline(&ts, timeout_ms);
	pthread_mutex_lock(&r->mu);
	while (r->inflight > 0)
		if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT) {
			rv = TP_DEADLINE_EXCEEDED;
			break;
		}
	pthread_mutex_unlock(&r->mu);
	return rv;
}

int
rpc_healthy(struct rpc_server *r)
{
	int ok;

	pthread_mutex_lock(&r->mu);
	ok = !r->listen_broken && (r->inflight < r->ncalls || r->replies != r->replies_seen);
	r->replies_seen = r->replies;
	pthread_mutex_unlock(&r->mu);
	return ok;
}

uint64_t
rpc_replies(struct rpc_server *r)
{
	uint64_t n;

	pthread_mutex_lock(&r->mu);
	n = r->replies;
	pthread_mutex_unlock(&r->mu);
	return n;
}

/* Keeps a server whose close never finished reachable, for leak checkers, until exit. */
static struct rpc_server *rpc_abandoned;

static void *
rpc_closer(void *arg)
{
	struct rpc_server *r = arg;

	/* Contexts first, then the socket: the order of nng's demo servers. */
	for (unsigned i = 0; i < r->ncalls; i++) {
		nng_aio_stop(r->calls[i].aio); /* runs a pending callback: frees an unsent reply */
		nng_ctx_close(r->calls[i].ctx);
	}
	if (r->sock_open)
		nng_close(r->sock);
	pthread_mutex_lock(&r->mu);
	r->closed = 1;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Waits up to secs for *flag (set under r->mu, with r->cv broadcast); its value. */
static int
rpc_wait_flag(struct rpc_server *r, const int *flag, int secs)
{
	struct timespec ts;
	int v;

	rpc_deadline(&ts, (unsigned)secs * 1000);
	pthread_mutex_lock(&r->mu);
	while (!*flag)
		if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
			break;
	v = *flag;
	pthread_mutex_unlock(&r->mu);
	return v;
}

void
rpc_free(struct rpc_server *r)
{
	pthread_t t;
	int threaded;

	if (r == NULL)
		return;
	atomic_store(&r->stopping, 1);
	atomic_store(&r->closing, 1);
	/* The guard first: it may be opening a listener of the socket about to close. */
	if (r->guard_on) {
		pthread_mutex_lock(&r->mu);
		r->guard_stop = 1;
		pthread_cond_broadcast(&r->gcv);
		pthread_mutex_unlock(&r->mu);
		/* a dial in progress ends within NNG's 10 s handshake timeout */
		if (!rpc_wait_flag(r, &r->guard_done, 15)) {
			log_warn(
			    "rpc: the listener guard did not stop in 15 s; exiting without it");
			pthread_detach(r->guard);
			rpc_abandoned = r;
			return;
		}
		pthread_join(r->guard, NULL);
	}
	/*
	 * nng 1.5.2 can deadlock in nng_close (fixed upstream later). Nothing is left to
	 * lose at this point, but shutting down must not hang: close on a helper thread and
	 * give it a few seconds.
	 */
	threaded = pthread_create(&t, NULL, rpc_closer, r) == 0;
	if (!threaded)
		rpc_closer(r);
	if (!rpc_wait_flag(r, &r->closed, 5)) {
		log_warn("rpc: closing the NNG socket did not finish in 5 s; exiting without it");
		pthread_detach(t);
		rpc_abandoned = r;
		return;
	}
	if (threaded)
		pthread_join(t, NULL);
	for (unsigned i = 0; i < r->ncalls; i++) {
		rpc_call_clear(&r->calls[i]);
		rpc_arena_reset(&r->calls[i].arena, 0);
		nng_aio_free(r->calls[i].aio);
	}
	free(r->calls);
	for (size_t i = 0; i < r->nurls; i++)
		free(r->urls[i]);
	free(r->urls);
	for (size_t i = 0; i < r->nlisteners; i++)
		free(r->probe[i]);
	pthread_cond_destroy(&r->gcv);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
