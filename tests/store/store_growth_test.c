/*
 * Regression test for the map-growth crash: a store opened with a 64 KiB map grows many
 * times while the writer flushes tiny runs, the compactor merges them and two reader
 * threads scan, read journeys, walk, read statistics and take backups all the while.
 */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "store_util.h"
#include "touchpoint/touchpoint.h"

#define T0       (1700000000LL * 1000000LL)
#define NCUST    300
#define NANON    40
#define BATCHES  700
#define PER      48
#define MAP_INIT (64 * 1024)

struct reader {
	struct store *s;
	const char *dir;
	atomic_int *stop;
	int id, loops, errors;
	uint64_t last_events, last_map;
	char why[160];
};

struct count {
	uint64_t events, customers;
};

static int
count_cb(void *arg, const char *cid, const struct attr_event *evs, size_t n)
{
	struct count *c = arg;
	size_t i;

	(void)cid;
	for (i = 1; i < n; i++)
		if (evs[i].ts_us < evs[i - 1].ts_us)
			return 1; /* out of order: reported as a failed scan */
	c->events += n;
	c->customers++;
	return 0;
}

static int
spend_cb(void *arg, uint32_t channel, uint32_t campaign, int32_t day, double amount,
         const char *currency)
{
	(void)arg;
	(void)channel;
	(void)campaign;
	(void)day;
	(void)amount;
	(void)currency;
	return 0;
}

static void
reader_fail(struct reader *r, const char *what, int rc)
{
	if (r->errors++ == 0)
		snprintf(r->why, sizeof(r->why), "reader %d: %s: %d", r->id, what, rc);
}

/* Every store entry point that opens a transaction or reads the environment, in a loop. */
static void *
reader_main(void *p)
{
	struct reader *r = p;
	char cid[32], bdir[128];
	unsigned x = (unsigned)r->id * 2654435761u + 1;

	while (!atomic_load(r->stop)) {
		struct count c = { 0 };
		struct store_journey *j = NULL;
		struct store_stats st;
		uint64_t walked;
		int rc;

		x = x * 1103515245u + 12345u;
		if ((rc = store_scan(r->s, count_cb, &c)) != TP_OK)
			reader_fail(r, "scan", rc);
		else if (c.events < r->last_events)
			reader_fail(r, "scan went back", (int)c.events);
		r->last_events = c.events;
		snprintf(cid, sizeof(cid), "cust%u", (x >> 8) % NCUST);
		rc = store_journey(r->s, cid, &j);
		if (rc != TP_OK && rc != TP_NOT_FOUND)
			reader_fail(r, "journey", rc);
		store_journey_free(j);
		if ((rc = store_stats(r->s, &st)) != TP_OK)
			reader_fail(r, "stats", rc);
		else if (st.map_size < r->last_map || st.store_bytes > st.map_size)
			reader_fail(r, "stats: map size", (int)(st.map_size >> 10));
		else
			r->last_map = st.map_size;
		if ((rc = store_walk(r->s, &walked)) != TP_OK)
			reader_fail(r, "walk", rc);
		if ((rc = store_spend(r->s, 0, 1000000, spend_cb, NULL)) != TP_OK)
			reader_fail(r, "spend", rc);
		if (r->id == 1 && r->loops % 8 == 0) {
			snprintf(bdir, sizeof(bdir), "%s/backup%d", r->dir, r->loops);
			if ((rc = store_backup(r->s, bdir, NULL, NULL, 0)) != TP_OK)
				reader_fail(r, "backup", rc);
			rm_store_dir(bdir);
		}
		r->loops++;
	}
	return NULL;
}

/* store_stats() in a tight loop: it reads the environment's meta pages in the map. */
static void *
stats_main(void *p)
{
	struct reader *r = p;
	struct store_stats st;
	int rc;

	while (!atomic_load(r->stop)) {
		if ((rc = store_stats(r->s, &st)) != TP_OK)
			reader_fail(r, "stats", rc);
		else if (st.map_size < r->last_map)
			reader_fail(r, "stats: map shrank", (int)(st.map_size >> 10));
		else
			r->last_map = st.map_size;
		r->loops++;
	}
	return NULL;
}

/*
 * One round: a fresh 64 KiB store, one writer (this thread), the compactor, two readers
 * and a statistics poller (like the daemon's /metrics).
 */
static void
one_round(unsigned round)
{
	char dir[] = "/tmp/tpgrowXXXXXX", eid[48], cid[32], prev[32];
	struct store_options o = {
		.path = dir, .map_size = MAP_INIT, .nosync = 1, .run_events = 8 + round * 4
	};
	struct reader rd[3];
	atomic_int stop = 0;
	pthread_t th[3];
	struct store *s = NULL;
	struct store_stats st;
	struct count c = { 0 };
	uint64_t stored = 0, touches = 0;
	int b, i, k;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(store_open(&s, &o, NULL, 0), TP_OK);
	for (k = 0; k < 3; k++) {
		memset(&rd[k], 0, sizeof(rd[k]));
		rd[k].s = s;
		rd[k].dir = dir;
		rd[k].stop = &stop;
		rd[k].id = k;
		assert_int_equal(
		    pthread_create(&th[k], NULL, k < 2 ? reader_main : stats_main, &rd[k]), 0);
	}
	for (b = 0; b < BATCHES; b++) {
		struct tbatch *t = tb_new(PER);

		for (i = 0; i < PER; i++) {
			int n = b * PER + i;
			int64_t ts = T0 + (int64_t)n * 1000;

			snprintf(eid, sizeof(eid), "r%u-e%d", round, n);
			if (i == PER - 1 && b % 10 == 5) {
				/* anon<k> joins cust<k>: its earlier touches move to cust<k> */
				int a = (b / 10) % NANON;

				snprintf(cid, sizeof(cid), "cust%d", a);
				snprintf(prev, sizeof(prev), "anon%d", a);
				tb_add(t, ev_alias(eid, cid, ts, prev));
			} else if (i % 7 == 3) {
				snprintf(cid, sizeof(cid), "anon%d", (b + i) % NANON);
				tb_add(t, ev_touch(eid, cid, ts, "display", "c1"));
				touches++;
			} else if (i % 11 == 0) {
				snprintf(cid, sizeof(cid), "cust%d", (n * 13) % NCUST);
				tb_add(t, ev_conv(eid, cid, ts, 10.0 + i, "purchase"));
				touches++;
			} else {
				snprintf(cid, sizeof(cid), "cust%d", (n * 7) % NCUST);
				tb_add(t, ev_touch(eid, cid, ts, i % 2 ? "email" : "search", ""));
				touches++;
			}
		}
		assert_int_equal(tb_write(s, t), TP_OK);
		assert_int_equal(t->b.accepted, PER);
		stored += PER;
		if (b % 50 == 49) { /* a retried batch: every event a duplicate */
			assert_int_equal(tb_write(s, t), TP_OK);
			assert_int_equal(t->b.duplicates, PER);
		}
		tb_free(t);
	}
	atomic_store(&stop, 1);
	for (k = 0; k < 3; k++) {
		assert_int_equal(pthread_join(th[k], NULL), 0);
		if (rd[k].errors != 0)
			fail_msg("%s (%d errors)", rd[k].why, rd[k].errors);
		assert_true(rd[k].loops > 0);
	}

	assert_int_equal(store_stats(s, &st), TP_OK);
	assert_int_equal(st.events[0], stored);
	/* 64 KiB to megabytes: the map doubled many times under the readers */
	assert_true(st.map_size >= 64 * (uint64_t)MAP_INIT);
	assert_true(st.store_bytes <= st.map_size);
	assert_int_equal(store_scan(s, count_cb, &c), TP_OK);
	assert_int_equal(c.events, touches);
	assert_int_equal(c.customers, NCUST); /* every anon id went to one of them */
	store_close(s);

	/* Reopened with the 64 KiB map_size it started from: the store is far larger now. */
	assert_int_equal(store_open(&s, &o, NULL, 0), TP_OK);
	assert_int_equal(store_stats(s, &st), TP_OK);
	assert_true(st.map_size >= st.store_bytes + st.store_bytes / 8); /* room to write */
	{
		struct tbatch *t = tb_new(1);

		tb_add(t, ev_touch("after-reopen", "cust1", T0 + 86400000000LL, "email", ""));
		assert_int_equal(tb_write(s, t), TP_OK);
		assert_int_equal(t->b.accepted, 1);
		tb_free(t);
	}
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_scan(s, count_cb, &c), TP_OK);
	assert_int_equal(c.events, touches + 1);
	store_close(s);
	rm_test_dir(dir);
}

static void
test_growth_under_readers(void **state)
{
	unsigned r;

	(void)state;
	for (r = 0; r < 3; r++)
		one_round(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_growth_under_readers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
