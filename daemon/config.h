/*
 * config: touchpointd.conf, parsed into one struct. "key = value" lines, '#' comments;
 * every key and its default is documented in docs/touchpointd.conf.5 and
 * systemd/touchpointd.conf.example.
 */
#ifndef TPD_CONFIG_H
#define TPD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_LISTEN 8
#define CONFIG_PATH_MAX   4096

enum config_sync {
	CONFIG_SYNC_FULL = 0, /* fdatasync every commit: an acknowledged event is durable */
	CONFIG_SYNC_NONE = 1, /* benchmarks only */
};

struct config {
	char state_dir[CONFIG_PATH_MAX]; /* state_dir; default $STATE_DIRECTORY or . */
	char listen[CONFIG_MAX_LISTEN]
	           [CONFIG_PATH_MAX]; /* listen (repeatable); default ipc://<runtime or state
	                                 dir>/touchpointd.sock */
	size_t nlisten;
	unsigned ipc_permissions; /* ipc_permissions = 0660 */
	size_t max_message_bytes; /* max_message_bytes = 16M */
	size_t decode_memory;     /* decode_memory = 0 (auto, rpc.c) */
	size_t max_batch_events;  /* max_batch_events = 100000 */
	size_t queue_depth;       /* queue_depth = 256 (batches waiting for the writer) */
	unsigned contexts;        /* contexts = 64 (concurrent requests in flight) */
	unsigned query_threads;   /* query_threads = 2 */
	unsigned scan_threads;    /* scan_threads = 0 (one per CPU, at most 8) */
	size_t map_size;          /* map_size = 1G (initial; grows) */
	enum config_sync sync;    /* sync = full|none */
	size_t run_events;        /* run_events = 65536 */
	int compactor_nice;       /* compactor_nice = 19 */
	int writer_priority;      /* writer_priority = 0 (SCHED_FIFO priority; 0: off) */
	char metrics_listen[CONFIG_PATH_MAX]; /* metrics = http://127.0.0.1:9464/metrics; empty: off
	                                       */
	int log_level;                        /* log_level = info (err|warning|notice|info|debug) */
	int64_t default_lookback_s;           /* default_lookback = 30d */
};

/*
 * A listen URL that NNG can listen on and config.listen holds: ipc:// with a path a unix
 * socket holds, or tcp://HOST:PORT. TP_OK, or TP_INVALID_ARGUMENT with a message naming u.
 */
int config_url_check(const char *u, char *msg, size_t msglen);

/* Defaults, then the file (if path != NULL), then nothing else: the caller applies flags. */
int config_load(struct config *c, const char *path, char *errbuf, size_t errlen);

#endif /* TPD_CONFIG_H */
