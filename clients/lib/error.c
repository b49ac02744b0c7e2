/*
 * Status names and the tp_result helpers every call uses.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const tp_names[] = {
	[TP_OK] = "OK",
	[TP_CANCELLED] = "CANCELLED",
	[TP_UNKNOWN] = "UNKNOWN",
	[TP_INVALID_ARGUMENT] = "INVALID_ARGUMENT",
	[TP_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
	[TP_NOT_FOUND] = "NOT_FOUND",
	[TP_ALREADY_EXISTS] = "ALREADY_EXISTS",
	[TP_PERMISSION_DENIED] = "PERMISSION_DENIED",
	[TP_RESOURCE_EXHAUSTED] = "RESOURCE_EXHAUSTED",
	[TP_FAILED_PRECONDITION] = "FAILED_PRECONDITION",
	[TP_ABORTED] = "ABORTED",
	[TP_OUT_OF_RANGE] = "OUT_OF_RANGE",
	[TP_UNIMPLEMENTED] = "UNIMPLEMENTED",
	[TP_INTERNAL] = "INTERNAL",
	[TP_UNAVAILABLE] = "UNAVAILABLE",
	[TP_DATA_LOSS] = "DATA_LOSS",
	[TP_UNAUTHENTICATED] = "UNAUTHENTICATED",
};

const char *
tp_strerror(int status)
{
	if (status < 0 || (size_t)status >= sizeof(tp_names) / sizeof(tp_names[0]))
		return "UNKNOWN_STATUS";
	return tp_names[status];
}

void
tp__result_init(struct tp_result *res)
{
	if (res != NULL)
		memset(res, 0, sizeof(*res));
}

static void
tp_vfail(struct tp_result *res, int status, const char *fmt, va_list ap)
{
	res->status = status;
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
}

int
tp__fail(struct tp_result *res, int status, const char *fmt, ...)
{
	va_list ap;

	if (res == NULL)
		return status;
	va_start(ap, fmt);
	tp_vfail(res, status, fmt, ap);
	va_end(ap);
	return status;
}

int
tp__too_big(struct tp_result *res, const char *fmt, ...)
{
	va_list ap;

	if (res == NULL)
		return TP_RESOURCE_EXHAUSTED;
	va_start(ap, fmt);
	tp_vfail(res, TP_RESOURCE_EXHAUSTED, fmt, ap);
	va_end(ap);
	/* The daemon's form of it (rpc.proto): tp_result_too_big() reads both alike. */
	tp__violation_set(res, -1, "envelope", res->message);
	return TP_RESOURCE_EXHAUSTED;
}

void
tp__violation_set(struct tp_result *res, int index, const char *field, const char *reason)
{
	free(res->violations);
	res->nviolations = 0;
	if ((res->violations = calloc(1, sizeof(*res->violations))) == NULL)
		return;
	res->violations[0].index = index;
	snprintf(res->violations[0].field, sizeof(res->violations[0].field), "%.*s",
	         (int)sizeof(res->violations[0].field) - 1, field);
	snprintf(res->violations[0].reason, sizeof(res->violations[0].reason), "%.*s",
	         (int)sizeof(res->violations[0].reason) - 1, reason);
	res->nviolations = 1;
}

int
tp_result_too_big(const struct tp_result *res)
{
	size_t i;

	/* Over max_message_bytes (RESOURCE_EXHAUSTED) or max_batch_events (INVALID_ARGUMENT). */
	if (res == NULL ||
	    (res->status != TP_RESOURCE_EXHAUSTED && res->status != TP_INVALID_ARGUMENT))
		return 0;
	for (i = 0; i < res->nviolations; i++)
		if (res->violations[i].index == -1 &&
		    strcmp(res->violations[i].field,
		           res->status == TP_RESOURCE_EXHAUSTED ? "envelope" : "events") == 0)
			return 1;
	return 0;
}

void
tp_result_free(struct tp_result *res)
{
	if (res == NULL)
		return;
	free(res->violations);
	res->violations = NULL;
	res->nviolations = 0;
}
