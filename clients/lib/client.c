/*
 * tp_client: one NNG REQ socket, a context per call, the Envelope/Reply framing of
 * SPEC §5 and the transport-error mapping every caller sees.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/util/platform.h>

#include "internal.h"
#include "touchpoint/v1/query.pb-c.h"
#include "touchpoint/v1/rpc.pb-c.h"

struct tp_client {
	nng_socket sock;
	char *endpoint;
	atomic_uint timeout_ms;
	atomic_uint_fast64_t next_id;
};

/*
 * NNG reports EACCES and EPERM alike as NNG_EPERM: the daemon is there, but this user may
 * not open its socket, which no retry or other endpoint mends.
 */
static int
tp_denied(struct tp_result *res, const char *endpoint)
{
	return tp__fail(res, TP_PERMISSION_DENIED,
	                "permission denied on touchpointd's socket at %s: add this user to "
	                "the socket's group (touchpoint under systemd) or check the "
	                "permissions of the socket and its directory",
	                endpoint);
}

static int
tp_transport_error(tp_client *c, int rv, unsigned timeout_ms, struct tp_result *res)
{
	if (rv == NNG_EPERM)
		return tp_denied(res, c->endpoint);
	if (rv == NNG_ETIMEDOUT)
		return tp__fail(res, TP_DEADLINE_EXCEEDED,
		                "no reply from touchpointd at %s within %u ms", c->endpoint,
		                timeout_ms);
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return tp__fail(res, TP_CANCELLED, "call to touchpointd at %s cancelled: %s",
		                c->endpoint, nng_strerror(rv));
	if (rv == NNG_ENOMEM)
		return tp__fail(res, TP_INTERNAL, "out of memory");
	return tp__fail(res, TP_UNAVAILABLE, "cannot reach touchpointd at %s: %s", c->endpoint,
	                nng_strerror(rv));
}

int
tp__connect(tp_client **cp, const char *endpoint, int wait_for_daemon, struct tp_result *res)
{
	tp_client *c = NULL;
	int rv;

	if (cp == NULL)
		return tp__fail(res, TP_INVALID_ARGUMENT, "tp_connect: NULL client pointer");
	*cp = NULL;
	if (endpoint == NULL || *endpoint == '\0')
		endpoint = getenv("TOUCHPOINT_ENDPOINT");
	if (endpoint == NULL || *endpoint == '\0')
		endpoint = TP_DEFAULT_ENDPOINT;
	if ((c = calloc(1, sizeof(*c))) == NULL || (c->endpoint = strdup(endpoint)) == NULL) {
		free(c);
		return tp__fail(res, TP_INTERNAL, "out of memory");
	}
	atomic_init(&c->timeout_ms, TP_DEFAULT_TIMEOUT_MS);
	atomic_init(&c->next_id, 1);
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		free(c->endpoint);
		free(c);
		return tp__fail(res, TP_INTERNAL, "cannot open a REQ socket: %s", nng_strerror(rv));
	}
	/* The daemon enforces the same cap; replies bigger than it are a protocol error. */
	if ((rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, TP_MAX_MESSAGE)) != 0 ||
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 50)) != 0 ||
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 1000)) != 0 ||
	    /*
	     * REQ sends a request again after a minute without a reply by default: a query
	     * longer than that ran twice in the daemon, then three times. Every call has its
	     * own deadline instead: a call whose connection is lost ends in an error by that
	     * deadline at the latest, and its caller (tp_sender, import) retries.
	     */
	    (rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE)) != 0) {
		tp__fail(res, TP_INTERNAL, "cannot configure the REQ socket: %s", nng_strerror(rv));
		goto fail;
	}
	rv = nng_dial(c->sock, endpoint, NULL, wait_for_daemon ? 0 : NNG_FLAG_NONBLOCK);
	if (rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP || rv == NNG_EINVAL) {
		tp__fail(res, TP_INVALID_ARGUMENT, "bad endpoint \"%s\": %s", endpoint,
		         nng_strerror(rv));
		goto fail;
	}
	if (rv == NNG_EPERM) {
		tp_denied(res, endpoint);
		goto fail;
	}
	if (rv != 0) {
		tp__fail(res, TP_UNAVAILABLE, "cannot reach touchpointd at %s: %s", endpoint,
		         nng_strerror(rv));
		goto fail;
	}
	*cp = c;
	return TP_OK;
fail:
	nng_close(c->sock);
	free(c->endpoint);
	free(c);
	return res != NULL ? res->status : TP_UNAVAILABLE;
}

int
tp_connect(tp_client **cp, const char *endpoint)
{
	return tp_connect_ex(cp, endpoint, NULL);
}

int
tp_connect_ex(tp_client **cp, const char *endpoint, struct tp_result *res)
{
	struct tp_result local;

	tp__result_init(&local);
	tp__result_init(res);
	return tp__connect(cp, endpoint, 1, res != NULL ? res : &local);
}

void
tp__shutdown(tp_client *c)
{
	if (c != NULL)
		nng_close(c->sock);
}

void
tp_close(tp_client *c)
{
	if (c == NULL)
		return;
	nng_close(c->sock);
	free(c->endpoint);
	free(c);
}

int
tp_set_timeout(tp_client *c, unsigned ms)
{
	if (c == NULL || ms > INT32_MAX)
		return TP_INVALID_ARGUMENT;
	atomic_store(&c->timeout_ms, ms);
	return TP_OK;
}

const char *
tp_endpoint(const tp_client *c)
{
	return c != NULL ? c->endpoint : NULL;
}

/* Copies the reply's status and violations into res; returns the code. */
static int
tp_take_status(const Touchpoint__V1__Reply *r, struct tp_result *res)
{
	const Touchpoint__V1__Status *st = r->status;
	int code;
	size_t i;

	if (st == NULL)
		return TP_OK;
	code = st->code;
	if (res == NULL)
		return code;
	res->status = code;
	snprintf(res->message, sizeof(res->message), "%s", st->message ? st->message : "");
	if (st->n_details == 0)
		return code;
	if ((res->violations = calloc(st->n_details, sizeof(*res->violations))) == NULL)
		return code;
	for (i = 0; i < st->n_details; i++) {
		const Touchpoint__V1__FieldViolation *v = st->details[i];
		struct tp_violation *o = &res->violations[i];

		o->index = v->index;
		snprintf(o->field, sizeof(o->field), "%s", v->field ? v->field : "");
		snprintf(o->reason, sizeof(o->reason), "%s", v->reason ? v->reason : "");
	}
	res->nviolations = st->n_details;
	return code;
}

/* Send msg on a fresh context and wait for the reply, within timeout_ms (0 = forever). */
static int
tp_exchange(tp_client *c, nng_msg *msg, unsigned timeout_ms, nng_msg **replyp)
{
	nng_ctx ctx;
	nng_aio *aio = NULL;
	nng_time deadline = 0;
	int rv;

	*replyp = NULL;
	if ((rv = nng_ctx_open(&ctx, c->sock)) != 0) {
		nng_msg_free(msg);
		return rv;
	}
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		nng_msg_free(msg);
		goto done;
	}
	if (timeout_ms != 0)
		deadline = nng_clock() + timeout_ms;
	nng_aio_set_timeout(aio,
	                    timeout_ms != 0 ? (nng_duration)timeout_ms : NNG_DURATION_INFINITE);
	nng_aio_set_msg(aio, msg);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		nng_msg_free(nng_aio_get_msg(aio));
		goto done;
	}
	if (timeout_ms != 0) {
		nng_time now = nng_clock();

		if (now >= deadline) {
			rv = NNG_ETIMEDOUT;
			goto done;
		}
		nng_aio_set_timeout(aio, (nng_duration)(deadline - now));
	}
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) == 0)
		*replyp = nng_aio_get_msg(aio);
done:
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	return rv;
}

/* One round trip: envelope out, Reply back (caller frees *replyp). Fills res on failure. */
static int
tp_roundtrip(tp_client *c, const char *method, const void *req, size_t req_len,
             Touchpoint__V1__Reply **replyp, struct tp_result *res)
{
	Touchpoint__V1__Envelope env = TOUCHPOINT__V1__ENVELOPE__INIT;
	Touchpoint__V1__Reply *reply;
	struct tp__unpacker u;
	nng_msg *msg = NULL, *rmsg = NULL;
	unsigned timeout_ms = atomic_load(&c->timeout_ms);
	size_t size;
	int rv;

	*replyp = NULL;
	env.method = (char *)method;
	env.request_id = atomic_fetch_add(&c->next_id, 1);
	env.timeout_ms = timeout_ms;
	env.payload.data = (uint8_t *)req;
	env.payload.len = req_len;
	size = touchpoint__v1__envelope__get_packed_size(&env);
	/* The daemon would drop the pipe and REQ would resend forever: fail here instead. */
	if (size > TP_MAX_MESSAGE)
		return tp__too_big(res,
		                   "request of %zu bytes exceeds the message limit of %u bytes "
		                   "(send smaller batches)",
		                   size, TP_MAX_MESSAGE);
	if ((rv = nng_msg_alloc(&msg, size)) != 0)
		return tp__fail(res, TP_INTERNAL, "out of memory");
	touchpoint__v1__envelope__pack(&env, nng_msg_body(msg));
	if ((rv = tp_exchange(c, msg, timeout_ms, &rmsg)) != 0)
		return tp_transport_error(c, rv, timeout_ms, res);
	tp__unpacker_init(&u);
	reply = touchpoint__v1__reply__unpack(&u.a, nng_msg_len(rmsg), nng_msg_body(rmsg));
	nng_msg_free(rmsg);
	if (reply == NULL && u.oom)
		return tp__fail(res, TP_INTERNAL,
		                "out of memory unpacking the reply from touchpointd at %s",
		                c->endpoint);
	if (reply == NULL)
		return tp__fail(res, TP_INTERNAL, "malformed reply from touchpointd at %s",
		                c->endpoint);
	if (reply->request_id != env.request_id) {
		touchpoint__v1__reply__free_unpacked(reply, NULL);
		return tp__fail(res, TP_INTERNAL, "reply to another request from %s", c->endpoint);
	}
	*replyp = reply;
	return TP_OK;
}

static void *
unpacker_alloc(void *arg, size_t n)
{
	struct tp__unpacker *u = arg;
	void *p = malloc(n > 0 ? n : 1); /* NULL then means no memory, nothing else */

	if (p == NULL)
		u->oom = 1;
	return p;
}

static void
unpacker_free(void *arg, void *p)
{
	(void)arg;
	free(p);
}

void
tp__unpacker_init(struct tp__unpacker *u)
{
	u->a.alloc = unpacker_alloc;
	u->a.free = unpacker_free;
	u->a.allocator_data = u;
	u->oom = 0;
}

int
tp_call(tp_client *c, const char *method, const void *req, size_t req_len, void **resp,
        size_t *resp_len, struct tp_result *res)
{
	Touchpoint__V1__Reply *reply = NULL;
	int status;

	tp__result_init(res);
	if (resp != NULL)
		*resp = NULL;
	if (resp_len != NULL)
		*resp_len = 0;
	if (c == NULL || method == NULL || resp == NULL || resp_len == NULL ||
	    (req == NULL && req_len != 0))
		return tp__fail(res, TP_INVALID_ARGUMENT, "tp_call: NULL argument");
	if ((status = tp_roundtrip(c, method, req, req_len, &reply, res)) != TP_OK)
		return status;
	if ((status = tp_take_status(reply, res)) != TP_OK)
		goto done;
	if ((*resp = malloc(reply->payload.len ? reply->payload.len : 1)) == NULL) {
		status = tp__fail(res, TP_INTERNAL, "out of memory");
		goto done;
	}
	if (reply->payload.len != 0)
		memcpy(*resp, reply->payload.data, reply->payload.len);
	*resp_len = reply->payload.len;
done:
	touchpoint__v1__reply__free_unpacked(reply, NULL);
	return status;
}

int
tp_status(tp_client *c, struct tp_daemon_status *st)
{
	Touchpoint__V1__GetStatusResponse *r;
	void *resp = NULL;
	size_t len = 0;
	int status;

	if (st == NULL)
		return TP_INVALID_ARGUMENT;
	memset(st, 0, sizeof(*st));
	status = tp_call(c, "/touchpoint.v1.Admin/GetStatus", NULL, 0, &resp, &len, NULL);
	if (status != TP_OK)
		return status;
	r = touchpoint__v1__get_status_response__unpack(NULL, len, resp);
	free(resp);
	if (r == NULL)
		return TP_INTERNAL;
	snprintf(st->version, sizeof(st->version), "%s", r->version ? r->version : "");
	st->uptime_s = r->uptime_s;
	if (r->events != NULL) {
		st->events_touch = r->events->touch;
		st->events_conversion = r->events->conversion;
		st->events_identify = r->events->identify;
		st->events_alias = r->events->alias;
		st->events_spend = r->events->spend;
		st->events_total = r->events->total;
	}
	st->duplicates = r->duplicates;
	st->customers = r->customers;
	st->store_bytes = r->store_bytes;
	touchpoint__v1__get_status_response__free_unpacked(r, NULL);
	return TP_OK;
}
