/*
 * metrics: Prometheus text exposition (format 0.0.4) of touchpointd's activity, served on
 * loopback by NNG's HTTP server. Every recording function is thread-safe and lock-free
 * (atomics), cheap enough for hot paths. Names are touchpointd_*; no customer ids.
 */
#ifndef TPD_METRICS_H
#define TPD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct store;

/* Starts the HTTP server on url (e.g. "http://127.0.0.1:9464/metrics"); "" or NULL: off. */
int metrics_start(const char *url, struct store *st, char *errbuf, size_t errlen);
void metrics_stop(void);

/* One finished request: method is the full "/touchpoint.v1.Svc/Method" (or "unknown"). */
void metrics_request(const char *method, int code, double seconds);
/* Events stored and duplicates acknowledged by one committed batch. */
void metrics_ingest(uint64_t accepted, uint64_t duplicates, uint64_t rejected);
/* One group commit: how many batches and events it carried, how long it took. */
void metrics_commit(size_t batches, size_t events, double seconds);
/* A group commit that failed (its batches were answered with its error). */
void metrics_commit_failed(void);
/* A listener that stopped accepting connections was opened again (rpc.c's guard). */
void metrics_listener_reopened(void);
/* Writer queue depth, sampled by the writer. */
void metrics_queue_depth(size_t depth);
/* The writer thread's SCHED_FIFO priority once it has it (0 until then: normal scheduler). */
void metrics_writer_priority(int prio);

/* The whole exposition as text into buf (for tests and the HTTP handler). */
int metrics_render(char **buf, size_t *len);

#endif /* TPD_METRICS_H */
