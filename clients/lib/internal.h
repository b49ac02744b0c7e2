/*
 * Private helpers shared by libtouchpoint's files: result filling, event copies and the
 * hooks the buffered sender needs from the client.
 */
#ifndef TP_LIB_INTERNAL_H
#define TP_LIB_INTERNAL_H

#include <stdarg.h>

#include <protobuf-c/protobuf-c.h>

#include "touchpoint/touchpoint.h"

/* Most traits tp_sender_add copies (SPEC allows 32; the daemon names any excess). */
#define TP_SENDER_MAX_TRAITS 1024

/* Sets res (if not NULL) to status and a printf-style message; returns status. */
int tp__fail(struct tp_result *res, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* res's one violation (index, field, reason), replacing any; none if out of memory. */
void tp__violation_set(struct tp_result *res, int index, const char *field, const char *reason);
/* RESOURCE_EXHAUSTED for a request too big to send, marked as the daemon marks it. */
int tp__too_big(struct tp_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Zeroes res (if not NULL) for a new call, freeing nothing. */
void tp__result_init(struct tp_result *res);

/* Like tp_connect, but without requiring the daemon to be up (the sender's way). */
int tp__connect(tp_client **cp, const char *endpoint, int wait_for_daemon, struct tp_result *res);
/* Closes c's socket so that calls in progress fail at once; c stays allocated. */
void tp__shutdown(tp_client *c);

/* tp_send that also says whether it failed because the batch exceeds TP_MAX_MESSAGE. */
int tp__send(tp_client *c, const struct tp_event *evs, size_t n, struct tp_result *res,
             int *too_big);

/* One malloc'd deep copy of ev with event_id set (generated when NULL); free() it. */
struct tp_event *tp__event_dup(const struct tp_event *ev);

/*
 * protobuf-c's unpack returns NULL for a malformed message and for want of memory alike:
 * unpacked through &u->a, u->oom says which. It allocates with malloc, so what it unpacked
 * is freed as usual (free_unpacked with a NULL allocator).
 */
struct tp__unpacker {
	ProtobufCAllocator a;
	int oom;
};
void tp__unpacker_init(struct tp__unpacker *u);

#endif /* TP_LIB_INTERNAL_H */
