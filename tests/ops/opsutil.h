/*
 * opsutil: helpers of the ops tests: a temp directory, a real touchpointd started as a child
 * process, raw NNG REQ calls with touchpoint.v1 envelopes, and an HTTP scrape.
 */
#ifndef OPS_OPSUTIL_H
#define OPS_OPSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "touchpoint/v1/event.pb-c.h"

/* A failed check prints where and why, then exits 1 (the daemon child is killed first). */
#define OPS_CHECK(cond, ...)                                                                       \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ops_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                          \
	} while (0)

void ops_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

/* mkdtemp under $TMPDIR (or /tmp); removed by ops_cleanup() unless OPS_KEEP is set. */
const char *ops_tmpdir(void);
void ops_cleanup(void);
/* Writes text to path (created/truncated). */
void ops_write_file(const char *path, const char *text);

struct ops_daemon {
	pid_t pid;
	char state_dir[512];
	char endpoint[600];
	char log_path[600];
};

/*
 * Starts touchpointd -d -f conf --state-dir state_dir --endpoint ipc://state_dir/t.sock with
 * extra environment entries ("K=V", NULL-terminated; "K=" alone unsets K). Does not wait.
 */
void ops_daemon_spawn(struct ops_daemon *d, const char *state_dir, const char *conf,
                      const char *const *env);
/* Waits until GetStatus answers OK (up to 30 s). */
void ops_daemon_wait_ready(struct ops_daemon *d);
/* SIGTERM, waits, returns the exit status (or 128+signal). */
int ops_daemon_stop(struct ops_daemon *d);
/* Waits (up to 60 s) for the daemon to exit; the exit status as above. */
int ops_daemon_wait(struct ops_daemon *d);
/* A daemon to kill if a check fails. */
void ops_daemon_register(struct ops_daemon *d);

/*
 * One RPC: packs req (may be NULL for an empty message), sends it in an Envelope, waits for
 * the Reply. Returns the status code; *resp (malloc'd payload, may be NULL) on OK.
 */
int ops_call(const char *endpoint, const char *method, const ProtobufCMessage *req, uint8_t **resp,
             size_t *resp_len, char *msg, size_t msglen);

/* Touch events with ids "<prefix>-<i>" for customer cust, timestamps base + i seconds. */
Touchpoint__V1__Event **ops_touches(const char *prefix, const char *cust, size_t n,
                                    int64_t base_us);
void ops_events_free(Touchpoint__V1__Event **evs, size_t n);
/* Send: returns the status code, accepted and duplicates. */
int ops_send(const char *endpoint, Touchpoint__V1__Event **evs, size_t n, uint32_t *accepted,
             uint32_t *duplicates);
/* GetStatus: total stored events, or -1 on error. */
int64_t ops_status_total(const char *endpoint, uint64_t *duplicates);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int ops_free_port(void);
/* HTTP GET http://127.0.0.1:port/path; returns the body (malloc'd) or NULL; *code the status. */
char *ops_http_get(int port, const char *path, int *code);
/* The value of the sample whose line starts with "name " or "name{labels} "; -1 if absent. */
double ops_metric(const char *text, const char *series);

#endif /* OPS_OPSUTIL_H */
