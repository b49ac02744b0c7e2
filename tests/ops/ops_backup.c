/*
 * ops_backup: Admin/Backup while a client keeps ingesting; a second touchpointd opened on
 * the backup must hold every event acknowledged before the backup began.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "opsutil.h"
#include "touchpoint/v1/query.pb-c.h"

#define BATCH       50
#define MAX_BATCHES 100000

static struct ops_daemon live;
static atomic_size_t acked; /* batches 0..acked-1 are acknowledged */
static atomic_int stop_sending;
static atomic_int send_error;

/* One customer per batch, so each batch can be checked with one GetJourney. */
static void *
sender(void *arg)
{
	size_t b;

	(void)arg;
	for (b = 0; b < MAX_BATCHES && !atomic_load(&stop_sending); b++) {
		char prefix[32], cust[32];
		Touchpoint__V1__Event **evs;
		uint32_t acc = 0;
		int code;

		snprintf(prefix, sizeof(prefix), "bk%zu", b);
		snprintf(cust, sizeof(cust), "cust-%zu", b);
		evs = ops_touches(prefix, cust, BATCH, 1700000000000000LL + (int64_t)b * 1000);
		code = ops_send(live.endpoint, evs, BATCH, &acc, NULL);
		ops_events_free(evs, BATCH);
		if (code != 0 || acc != BATCH) {
			atomic_store(&send_error, code != 0 ? code : 1000 + (int)acc);
			return NULL;
		}
		atomic_store(&acked, b + 1);
	}
	return NULL;
}

static size_t
journey_events(const char *endpoint, const char *cust)
{
	Touchpoint__V1__GetJourneyRequest req = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__INIT;
	Touchpoint__V1__GetJourneyResponse *r;
	uint8_t *p = NULL;
	size_t len = 0, n;
	char msg[256];
	int code;

	req.customer_id = (char *)cust;
	req.lookback_case = TOUCHPOINT__V1__GET_JOURNEY_REQUEST__LOOKBACK_LOOKBACK_S;
	req.lookback_s = 0;
	code = ops_call(endpoint, "/touchpoint.v1.Journey/GetJourney", &req.base, &p, &len, msg,
	                sizeof(msg));
	if (code == 5) /* NOT_FOUND */
		return 0;
	OPS_CHECK(code == 0, "GetJourney %s: %d %s", cust, code, msg);
	r = touchpoint__v1__get_journey_response__unpack(NULL, len, p);
	OPS_CHECK(r != NULL, "cannot parse GetJourneyResponse");
	n = r->n_events;
	touchpoint__v1__get_journey_response__free_unpacked(r, NULL);
	free(p);
	return n;
}

int
main(void)
{
	const char *dir = ops_tmpdir();
	char conf[300], state[300], state2[300], backup[300], store2[320], msg[512];
	struct timespec ts = { 0, 20000000 };
	Touchpoint__V1__BackupRequest req = TOUCHPOINT__V1__BACKUP_REQUEST__INIT;
	Touchpoint__V1__BackupResponse *br;
	struct ops_daemon restored;
	uint8_t *p = NULL;
	size_t len = 0, before, after, b;
	int64_t total;
	pthread_t th;
	int code;

	snprintf(conf, sizeof(conf), "%s/touchpointd.conf", dir);
	snprintf(state, sizeof(state), "%s/live", dir);
	snprintf(state2, sizeof(state2), "%s/restored", dir);
	snprintf(backup, sizeof(backup), "%s/backup", dir);
	snprintf(store2, sizeof(store2), "%s/store", state2);
	/* Small runs, so the backup also covers flushed runs, not only the log. */
	ops_write_file(conf, "metrics =\nrun_events = 1024\n");
	ops_daemon_spawn(&live, state, conf, NULL);
	ops_daemon_wait_ready(&live);

	OPS_CHECK(pthread_create(&th, NULL, sender, NULL) == 0, "pthread_create");
	while (atomic_load(&acked) < 40 && atomic_load(&send_error) == 0)
		nanosleep(&ts, NULL);
	OPS_CHECK(atomic_load(&send_error) == 0, "send failed: %d", atomic_load(&send_error));

	/* Everything acknowledged up to now must be in the backup. */
	before = atomic_load(&acked);
	req.dir = backup;
	code = ops_call(live.endpoint, "/touchpoint.v1.Admin/Backup", &req.base, &p, &len, msg,
	                sizeof(msg));
	OPS_CHECK(code == 0, "Backup: %d %s", code, msg);
	br = touchpoint__v1__backup_response__unpack(NULL, len, p);
	OPS_CHECK(br != NULL, "cannot parse BackupResponse");
	OPS_CHECK(br->bytes > 0, "backup of 0 bytes");
	OPS_CHECK(br->events >= before * BATCH, "backup reports %llu events, %zu acknowledged",
	          (unsigned long long)br->events, before * BATCH);
	touchpoint__v1__backup_response__free_unpacked(br, NULL);
	free(p);

	/* Ingest went on during the backup; let it run a little longer, then stop. */
	after = atomic_load(&acked);
	while (atomic_load(&acked) < after + 5 && atomic_load(&send_error) == 0)
		nanosleep(&ts, NULL);
	atomic_store(&stop_sending, 1);
	OPS_CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	OPS_CHECK(atomic_load(&send_error) == 0, "send failed: %d", atomic_load(&send_error));
	after = atomic_load(&acked);
	code = ops_daemon_stop(&live);
	OPS_CHECK(code == 0, "live daemon exit status %d", code);

	/* A second daemon on the backup: <state>/store is the LMDB environment. */
	OPS_CHECK(mkdir(state2, 0700) == 0, "mkdir %s: %s", state2, strerror(errno));
	OPS_CHECK(rename(backup, store2) == 0, "rename %s: %s", backup, strerror(errno));
	ops_daemon_spawn(&restored, state2, conf, NULL);
	ops_daemon_wait_ready(&restored);
	total = ops_status_total(restored.endpoint, NULL);
	OPS_CHECK(total >= (int64_t)(before * BATCH) && total <= (int64_t)(after * BATCH),
	          "restored store holds %lld events; acknowledged before the backup %zu, in all "
	          "%zu",
	          (long long)total, before * BATCH, after * BATCH);
	for (b = 0; b < before; b++) {
		char cust[32];
		size_t n;

		snprintf(cust, sizeof(cust), "cust-%zu", b);
		n = journey_events(restored.endpoint, cust);
		OPS_CHECK(n == BATCH,
		          "batch %zu (acknowledged before the backup): %zu of %d events", b, n,
		          BATCH);
	}
	code = ops_daemon_stop(&restored);
	OPS_CHECK(code == 0, "restored daemon exit status %d", code);
	ops_cleanup();
	printf("ops_backup: ok (%zu batches before the backup, %zu in all, %lld restored)\n",
	       before, after, (long long)total);
	return 0;
}
