/*
 * Status names and the tp_result helpers every call uses.
 */
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

int
tp__fail(struct tp_result *res, int status, const char *fmt, ...)
{
	va_list ap;

	if (res == NULL)
		return status;
	res->status = status;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
	return status;
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
