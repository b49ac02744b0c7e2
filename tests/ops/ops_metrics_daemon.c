/*
 * ops_metrics_daemon: a real touchpointd with metrics on a loopback port; known traffic in,
 * a scrape over HTTP, and the counters must equal that traffic exactly.
 */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opsutil.h"

#define N_EVENTS 40

static char *
scrape(int port)
{
	char *body;
	int code = 0;

	body = ops_http_get(port, "/metrics", &code);
	OPS_CHECK(body != NULL && code == 200, "scrape of 127.0.0.1:%d failed (HTTP %d)", port,
	          code);
	return body;
}

/* Replies may be counted just after they are sent: retry a little before judging. */
static char *
scrape_until(int port, const char *series, double want)
{
	struct timespec ts = { 0, 100000000 };
	char *body = NULL;
	int i;

	for (i = 0; i < 50; i++) {
		free(body);
		body = scrape(port);
		if (ops_metric(body, series) == want)
			break;
		nanosleep(&ts, NULL);
	}
	return body;
}

static void *
try_fifo(void *arg)
{
	struct sched_param sp = { .sched_priority = 1 };

	*(int *)arg = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
	return NULL;
}

/* Whether a thread of ours may run as SCHED_FIFO 1: the daemon we spawn may then too. */
static int
fifo_allowed(void)
{
	pthread_t t;
	int ok = 0;

	OPS_CHECK(pthread_create(&t, NULL, try_fifo, &ok) == 0, "pthread_create");
	pthread_join(t, NULL);
	return ok;
}

/* The scheduling policy (stat field 41) of pid's thread named comm, or -1 if none. */
static int
thread_policy(pid_t pid, const char *comm)
{
	char path[384], buf[1024], *p;
	struct dirent *de;
	DIR *dir;
	FILE *f;
	int policy = -1, i;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	OPS_CHECK((dir = opendir(path)) != NULL, "opendir %s", path);
	while (policy < 0 && (de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		p = fgets(buf, sizeof(buf), f);
		fclose(f);
		if (p == NULL || strstr(buf, comm) == NULL || (p = strrchr(buf, ')')) == NULL)
			continue;
		/* after ") " comes field 3; the policy is field 41 */
		for (i = 3, p += 2; i < 41 && p != NULL; i++)
			if ((p = strchr(p, ' ')) != NULL)
				p++;
		if (p != NULL)
			policy = atoi(p);
	}
	closedir(dir);
	return policy;
}

int
main(void)
{
	const char *dir = ops_tmpdir();
	char conf[300], state[300], text[256], *body;
	struct ops_daemon d;
	Touchpoint__V1__Event **evs, **bad;
	uint32_t acc = 0, dup = 0;
	int port = ops_free_port(), code, fifo, i;
	double runs = 0, maxruns, chunks = 0;
	struct timespec tick = { 0, 100000000 };

	snprintf(conf, sizeof(conf), "%s/touchpointd.conf", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	/* Runs of 1 024 events: the quiet merge below needs a few. */
	snprintf(text, sizeof(text),
	         "metrics = http://127.0.0.1:%d/metrics\nwriter_priority = 1\nrun_events = 1024\n",
	         port);
	ops_write_file(conf, text);
	ops_daemon_spawn(&d, state, conf, NULL);
	ops_daemon_wait_ready(&d);

	body = scrape(port);
	OPS_CHECK(ops_metric(body, "touchpointd_build_info{version=\"" TP_VERSION "\"}") == 1,
	          "build_info");
	OPS_CHECK(ops_metric(body, "touchpointd_events_ingested_total") == 0, "fresh counter");
	/*
	 * writer_priority = 1 (off by default): the writer is SCHED_FIFO 1 wherever this
	 * process may be (root, CAP_SYS_NICE or RLIMIT_RTPRIO), else it stays SCHED_OTHER.
	 */
	fifo = fifo_allowed();
	OPS_CHECK(ops_metric(body, "touchpointd_writer_priority") == fifo,
	          "writer_priority = %g, SCHED_FIFO allowed here: %d",
	          ops_metric(body, "touchpointd_writer_priority"), fifo);
	OPS_CHECK(thread_policy(d.pid, "(tp-writer)") == (fifo ? SCHED_FIFO : SCHED_OTHER),
	          "tp-writer's policy %d", thread_policy(d.pid, "(tp-writer)"));
	OPS_CHECK(thread_policy(d.pid, "(tp-compactor)") == SCHED_OTHER, "compactor's policy");
	free(body);

	/* N_EVENTS new events, then the same batch again: all duplicates. */
	evs = ops_touches("m", "cust-metrics", N_EVENTS, 1700000000000000LL);
	code = ops_send(d.endpoint, evs, N_EVENTS, &acc, &dup);
	OPS_CHECK(code == 0 && acc == N_EVENTS && dup == 0, "send: %d %u %u", code, acc, dup);
	code = ops_send(d.endpoint, evs, N_EVENTS, &acc, &dup);
	OPS_CHECK(code == 0 && acc == 0 && dup == N_EVENTS, "resend: %d %u %u", code, acc, dup);

	/* An invalid batch: 2 good events and one with an empty channel. */
	bad = ops_touches("bad", "cust-metrics", 3, 1700000000000000LL);
	bad[1]->touch->channel[0] = '\0';
	code = ops_send(d.endpoint, bad, 3, NULL, NULL);
	OPS_CHECK(code == 3, "invalid batch answered %d, not INVALID_ARGUMENT", code);

	body =
	    scrape_until(port, "touchpointd_requests_total{method=\"Ingest/Send\",code=\"3\"}", 1);
	OPS_CHECK(ops_metric(body, "touchpointd_events_ingested_total") == N_EVENTS,
	          "events_ingested_total = %g",
	          ops_metric(body, "touchpointd_events_ingested_total"));
	OPS_CHECK(ops_metric(body, "touchpointd_duplicates_total") == N_EVENTS,
	          "duplicates_total = %g", ops_metric(body, "touchpointd_duplicates_total"));
	OPS_CHECK(
	    ops_metric(body, "touchpointd_requests_total{method=\"Ingest/Send\",code=\"0\"}") == 2,
	    "Send OK count");
	OPS_CHECK(
	    ops_metric(body, "touchpointd_requests_total{method=\"Ingest/Send\",code=\"3\"}") == 1,
	    "Send INVALID_ARGUMENT count");
	/* The one invalid event: the two good ones are the client's to send again. */
	OPS_CHECK(ops_metric(body, "touchpointd_events_rejected_total") == 1,
	          "events_rejected_total = %g",
	          ops_metric(body, "touchpointd_events_rejected_total"));
	OPS_CHECK(ops_metric(body, "touchpointd_commit_failures_total") == 0,
	          "commit_failures_total = %g",
	          ops_metric(body, "touchpointd_commit_failures_total"));
	OPS_CHECK(ops_metric(body, "touchpointd_request_duration_seconds_count{method=\"Ingest/"
	                           "Send\"}") == 3,
	          "latency histogram count");
	/* Two commits at most carried the 40 events (the duplicates may commit nothing). */
	OPS_CHECK(ops_metric(body, "touchpointd_commit_events_sum") >= N_EVENTS,
	          "commit_events_sum = %g", ops_metric(body, "touchpointd_commit_events_sum"));
	OPS_CHECK(ops_metric(body, "touchpointd_commit_duration_seconds_count") >= 1,
	          "commit count");
	/* The store's own view. */
	OPS_CHECK(ops_metric(body, "touchpointd_store_up") == 1, "store_up");
	OPS_CHECK(ops_metric(body, "touchpointd_store_events{kind=\"touch\"}") == N_EVENTS,
	          "store_events{touch} = %g",
	          ops_metric(body, "touchpointd_store_events{kind=\"touch\"}"));
	OPS_CHECK(ops_metric(body, "touchpointd_store_events{kind=\"conversion\"}") == 0,
	          "store_events{conversion}");
	OPS_CHECK(ops_metric(body, "touchpointd_store_map_bytes") > 0, "map bytes");
	OPS_CHECK(ops_metric(body, "touchpointd_store_bytes") > 0, "store bytes");
	/* The write path's split: a commit took time, and its parts are within the whole. */
	OPS_CHECK(ops_metric(body, "touchpointd_store_commit_sync_seconds_total") > 0,
	          "commit_sync_seconds_total = %g",
	          ops_metric(body, "touchpointd_store_commit_sync_seconds_total"));
	OPS_CHECK(ops_metric(body, "touchpointd_store_commit_sync_seconds_total") +
	                  ops_metric(body, "touchpointd_store_write_lock_wait_seconds_total") <=
	              ops_metric(body, "touchpointd_commit_duration_seconds_sum") + 1e-6,
	          "commit sync + lock wait exceed the commit durations");
	OPS_CHECK(ops_metric(body, "touchpointd_store_compaction_chunks_total") == 0 &&
	              ops_metric(body, "touchpointd_store_compacted_records_total") == 0,
	          "compaction without runs to merge");
	OPS_CHECK(ops_metric(body, "touchpointd_store_merges_running") == 0, "merges_running = %g",
	          ops_metric(body, "touchpointd_store_merges_running"));
	/* Caught up: the compactor at compactor_nice (default 19), never refused. */
	OPS_CHECK(ops_metric(body, "touchpointd_store_compactor_nice") == 19, "compactor_nice = %g",
	          ops_metric(body, "touchpointd_store_compactor_nice"));
	OPS_CHECK(ops_metric(body, "touchpointd_store_compactor_nice_denied_total") == 0,
	          "compactor_nice_denied_total");
	/* No customer id anywhere in the exposition. */
	OPS_CHECK(strstr(body, "cust-metrics") == NULL, "a customer id leaked into metrics");
	free(body);

	/*
	 * Quiet merges: 10 batches of 1 000 make 4 sealed segments, flushed into 4 runs; 3 s
	 * after the last write the compactor merges them (the daemon's quiet_ms).
	 */
	for (i = 0; i < 10; i++) {
		Touchpoint__V1__Event **q;
		char prefix[16];

		snprintf(prefix, sizeof(prefix), "q%d", i);
		q = ops_touches(prefix, "cust-quiet", 1000, 1700100000000000LL + i * 1000000000LL);
		code = ops_send(d.endpoint, q, 1000, &acc, &dup);
		OPS_CHECK(code == 0 && acc == 1000, "quiet batch %d: %d %u", i, code, acc);
		ops_events_free(q, 1000);
	}
	for (i = 0, maxruns = 0; i < 150; i++) {
		body = scrape(port);
		runs = ops_metric(body, "touchpointd_store_runs");
		maxruns = runs > maxruns ? runs : maxruns;
		chunks = ops_metric(body, "touchpointd_store_compaction_chunks_total");
		free(body);
		if (maxruns >= 4 && runs <= 3 && chunks > 0)
			break;
		nanosleep(&tick, NULL);
	}
	OPS_CHECK(maxruns >= 4 && runs <= 3 && chunks > 0,
	          "quiet merge: runs %g at most, %g at the end, %g chunks", maxruns, runs, chunks);

	ops_events_free(evs, N_EVENTS);
	ops_events_free(bad, 3);
	code = ops_daemon_stop(&d);
	OPS_CHECK(code == 0, "exit status %d after SIGTERM", code);
	/* The metrics server is gone with the daemon. */
	OPS_CHECK(ops_http_get(port, "/metrics", &code) == NULL, "metrics still served");
	ops_cleanup();
	printf("ops_metrics_daemon: ok\n");
	return 0;
}
