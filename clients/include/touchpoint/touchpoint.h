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

#ifdef __cplusplus
}
#endif
#endif /* TOUCHPOINT_TOUCHPOINT_H */
