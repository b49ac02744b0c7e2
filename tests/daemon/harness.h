/*
 * harness: runs the real touchpointd in a temporary state directory and talks to it over
 * raw NNG REQ + protobuf-c, so the daemon's tests do not depend on the client library.
 */
#ifndef TPD_TEST_HARNESS_H
#define TPD_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include <nng/nng.h>
#include <protobuf-c/protobuf-c.h>

#include "touchpoint/v1/rpc.pb-c.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

struct tpd {
	char dir[256];  /* state directory (mkdtemp) */
	char url[320];  /* ipc://<dir>/t.sock */
	char conf[320]; /* <dir>/touchpointd.conf */
	pid_t pid;
};

/* Creates the directory and a config (metrics off, plus extra lines if not NULL). */
void tpd_init(struct tpd *d, const char *extra_config);
/* Starts touchpointd -d -f conf --state-dir dir --endpoint url and waits until it answers. */
void tpd_start(struct tpd *d);
/* Sends sig and waits: returns the exit status (or 128 + signal). */
int tpd_stop(struct tpd *d, int sig);
/* Removes the state directory. */
void tpd_cleanup(struct tpd *d);
/* Runs touchpointd with argv (NULL-terminated, without argv[0]); output into out. */
int tpd_run(char *const *args, char *out, size_t outlen);

/* A REQ socket dialed (non-blocking, so it redials by itself) to url. */
nng_socket tpd_connect(const char *url, int recv_timeout_ms);
/*
 * One call: packs req into an Envelope with method, sends it, waits for the Reply.
 * Returns 0 with *rep (free with touchpoint__v1__reply__free_unpacked) or an nng error.
 */
int tpd_call(nng_socket s, const char *method, const ProtobufCMessage *req, uint32_t timeout_ms,
             Touchpoint__V1__Reply **rep);
/* The same with the payload already encoded. */
int tpd_call_payload(nng_socket s, const char *method, const uint8_t *payload, size_t plen,
                     uint32_t timeout_ms, Touchpoint__V1__Reply **rep);
/* The same with raw request bytes (not an Envelope necessarily). */
int tpd_call_raw(nng_socket s, const void *buf, size_t len, Touchpoint__V1__Reply **rep);
/* Unpacks rep's payload with d; CHECKs that the status is OK. */
void *tpd_payload(const Touchpoint__V1__Reply *rep, const ProtobufCMessageDescriptor *d);

/*
 * A raw SP-over-IPC REQ peer without NNG (its framing: the 8-byte SP header, then messages
 * of a type byte, a 64-bit big-endian length and the body, whose first 4 bytes are the
 * REQ request id). For clients that misbehave exactly: vanish mid-request, send too much.
 */
int tpd_raw_connect(const char *url);
/* Sends body as one request; returns 0 or -1. */
int tpd_raw_send(int fd, uint32_t id, const void *body, uint64_t len);
/* Reads one reply into *rep; returns 0, or -1 on EOF or error (the daemon closed it). */
int tpd_raw_recv(int fd, Touchpoint__V1__Reply **rep);

#endif /* TPD_TEST_HARNESS_H */
