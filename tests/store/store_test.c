/*
 * store tests against a real LMDB environment in a temporary directory: round trips,
 * dedup, SPEC §3 order, runs and compaction against a brute-force model, aliases, map
 * growth, crash recovery, leftovers of an interrupted merge, statistics and backup.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>
#include <lmdb.h>

#include "record.h"
#include "store_util.h"
#include "touchpoint/touchpoint.h"

#define DAY_US (86400LL * 1000000LL)
#define T0     (1700000000LL * 1000000LL)

static char tmpl[] = "/tmp/tpstoreXXXXXX";

struct fx {
	char dir[64];
	struct store *s;
};

static struct store *
open_store(const char *dir, size_t map_size, size_t run_events)
{
	struct store_options o = {
		.path = dir, .map_size = map_size, .nosync = 1, .run_events = run_events
	};
	struct store *s = NULL;
	char err[256];
	int rc = store_open(&s, &o, err, sizeof(err));

	if (rc != TP_OK)
		fail_msg("store_open: %d %s", rc, err);
	return s;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	memcpy(f->dir, tmpl, sizeof(tmpl));
	if (mkdtemp(f->dir) == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char fs[96];

	store_close(f->s);
	/* test_disk_full's tmpfs, had it failed before unmounting it */
	snprintf(fs, sizeof(fs), "%s/fs", f->dir);
	(void)umount2(fs, MNT_DETACH);
	rm_test_dir(f->dir);
	free(f);
	return 0;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Packs both and compares the bytes: an exact round trip. */
static void
assert_same_event(const Touchpoint__V1__Event *a, const Touchpoint__V1__Event *b)
{
	size_t la = touchpoint__v1__event__get_packed_size(a);
	size_t lb = touchpoint__v1__event__get_packed_size(b);
	uint8_t *pa = xmalloc(la + 1), *pb = xmalloc(lb + 1);

	assert_int_equal(la, lb);
	touchpoint__v1__event__pack(a, pa);
	touchpoint__v1__event__pack(b, pb);
	assert_memory_equal(pa, pb, la);
	free(pa);
	free(pb);
}

struct spend_seen {
	int n;
	char channel[32], campaign[32], currency[8];
	int32_t day;
	double amount;
	struct store *s;
};

static int
spend_cb(void *arg, uint32_t channel, uint32_t campaign, int32_t day, double amount,
         const char *currency)
{
	struct spend_seen *sp = arg;

	sp->n++;
	snprintf(sp->channel, sizeof(sp->channel), "%s", store_name(sp->s, channel));
	snprintf(sp->campaign, sizeof(sp->campaign), "%s",
	         campaign ? store_name(sp->s, campaign) : "");
	snprintf(sp->currency, sizeof(sp->currency), "%s", currency);
	sp->day = day;
	sp->amount = amount;
	return 0;
}

static void
test_roundtrip(void **state)
{
	struct fx *f = *state;
	struct tbatch *t = tb_new(8);
	Touchpoint__V1__Event *e;
	struct store_journey *j;
	struct spend_seen sp = { 0 };
	size_t i;

	f->s = open_store(f->dir, 0, 0);
	sp.s = f->s;
	/* touch with every field */
	e = ev_touch("e1", "cust-1", T0 + 10, "email", "spring");
	free(e->touch->source);
	free(e->touch->medium);
	e->touch->source = xstrdup("newsletter");
	e->touch->medium = xstrdup("mail");
	e->touch->interaction = TOUCHPOINT__V1__INTERACTION__INTERACTION_EMAIL_OPEN;
	e->touch->cost_present_case = TOUCHPOINT__V1__TOUCH__COST_PRESENT_COST;
	e->touch->cost = 0.25;
	tb_add(t, e);
	/* touch with only the channel; cost absent */
	tb_add(t, ev_touch("e2", "cust-1", T0 + 20, "direct", ""));
	/* conversion with every field, then one with defaults */
	e = ev_conv("e3", "cust-1", T0 + 30, 99.5, "purchase");
	free(e->conversion->currency);
	e->conversion->currency = xstrdup("EUR");
	tb_add(t, e);
	tb_add(t, ev_conv("e4", "cust-1", T0 + 40, 0, ""));
	/* identify with traits */
	e = ev_base("e5", "cust-1", T0 + 50);
	e->kind_case = TOUCHPOINT__V1__EVENT__KIND_IDENTIFY;
	e->identify = xmalloc(sizeof(*e->identify));
	touchpoint__v1__identify__init(e->identify);
	e->identify->n_traits = 2;
	e->identify->traits = xmalloc(2 * sizeof(*e->identify->traits));
	for (i = 0; i < 2; i++) {
		Touchpoint__V1__Trait *tr = xmalloc(sizeof(*tr));

		touchpoint__v1__trait__init(tr);
		tr->key = xstrdup(i ? "plan" : "country");
		tr->value = xstrdup(i ? "" : "FR");
		e->identify->traits[i] = tr;
	}
	tb_add(t, e);
	/* alias */
	tb_add(t, ev_alias("e6", "cust-1", T0 + 60, "anon-9"));
	/* spend */
	e = ev_base("e7", "", T0 + 70);
	e->kind_case = TOUCHPOINT__V1__EVENT__KIND_SPEND;
	e->spend = xmalloc(sizeof(*e->spend));
	touchpoint__v1__spend__init(e->spend);
	e->spend->channel = xstrdup("search");
	e->spend->campaign = xstrdup("brand");
	e->spend->day = xstrdup("2024-02-29");
	e->spend->amount = 120.75;
	e->spend->currency = xstrdup("USD");
	tb_add(t, e);

	assert_int_equal(tb_write(f->s, t), TP_OK);
	assert_int_equal(t->b.accepted, 7);
	assert_int_equal(t->b.duplicates, 0);

	assert_int_equal(store_journey(f->s, "cust-1", &j), TP_OK);
	assert_string_equal(j->customer_id, "cust-1");
	assert_int_equal(j->naliases, 1);
	assert_string_equal(j->aliases[0], "anon-9");
	assert_int_equal(j->n, 6);
	for (i = 0; i < 6; i++)
		assert_same_event(j->events[i], t->b.events[i]);
	/* the engine's view */
	assert_int_equal(j->view[0].kind, ATTR_TOUCH);
	assert_string_equal(store_name(f->s, j->view[0].channel), "email");
	assert_string_equal(store_name(f->s, j->view[0].campaign), "spring");
	assert_int_equal(j->view[1].campaign, 0);
	assert_int_equal(j->view[2].kind, ATTR_CONVERSION);
	assert_string_equal(store_name(f->s, j->view[2].name), "purchase");
	assert_true(j->view[2].value == 99.5);
	assert_string_equal(store_name(f->s, j->view[3].name), "conversion");
	assert_int_equal(j->view[4].kind, ATTR_IDENTIFY);
	assert_int_equal(j->view[4].ntraits, 2);
	assert_string_equal(j->view[4].traits[0].key, "country");
	assert_string_equal(j->view[4].traits[0].value, "FR");
	assert_string_equal(j->view[4].traits[1].key, "plan");
	assert_int_equal(j->view[0].ts_us, T0 + 10);
	assert_true(j->view[0].seq < j->view[1].seq);
	store_journey_free(j);

	assert_int_equal(store_journey(f->s, "nobody", &j), TP_NOT_FOUND);
	assert_null(j);
	assert_null(store_name(f->s, 0));
	assert_null(store_name(f->s, 100000));

	/* 2024-02-29 is day 19782 */
	assert_int_equal(store_spend(f->s, 19782, 19783, spend_cb, &sp), TP_OK);
	assert_int_equal(sp.n, 1);
	assert_string_equal(sp.channel, "search");
	assert_string_equal(sp.campaign, "brand");
	assert_string_equal(sp.currency, "USD");
	assert_int_equal(sp.day, 19782);
	assert_true(sp.amount == 120.75);
	sp.n = 0;
	assert_int_equal(store_spend(f->s, 19783, 20000, spend_cb, &sp), TP_OK);
	assert_int_equal(sp.n, 0);
	tb_free(t);
}

/* Waits until the compactor has flushed a sealed segment into a run. */
static void
wait_first_run(struct store *s)
{
	struct store_stats st;
	int i;

	for (i = 0; i < 600; i++) {
		assert_int_equal(store_stats(s, &st), TP_OK);
		if (st.runs >= 1)
			return;
		sleep_ms(10);
	}
	fail_msg("no segment was flushed into a run");
}

/*
 * store_journey_as_of: the journey as it was at a reply's as_of, whatever came after it —
 * earlier in time or later, in the log or flushed into a run meanwhile.
 */
static void
test_journey_as_of(void **state)
{
	struct fx *f = *state;
	struct tbatch *t = tb_new(4), *u = tb_new(4);
	struct store_journey *j, *k;
	uint64_t asof;
	size_t i;

	f->s = open_store(f->dir, 0, 4); /* segments of 4 events */
	tb_add(t, ev_touch("a1", "c", T0 + 10, "email", ""));
	tb_add(t, ev_touch("a2", "c", T0 + 20, "search", ""));
	tb_add(t, ev_conv("a3", "c", T0 + 30, 5, "buy"));
	assert_int_equal(tb_write(f->s, t), TP_OK);
	assert_int_equal(store_journey(f->s, "c", &j), TP_OK);
	assert_int_equal(j->n, 3);
	asof = j->as_of;
	assert_true(asof > 0 && asof == j->view[2].seq);
	/* Later arrivals, one earlier in time than all, and a filler that seals the segment. */
	tb_add(u, ev_touch("b1", "c", T0 + 5, "display", ""));
	tb_add(u, ev_touch("b2", "c", T0 + 25, "email", ""));
	tb_add(u, ev_touch("b3", "other", T0, "email", ""));
	assert_int_equal(tb_write(f->s, u), TP_OK);
	for (int pass = 0; pass < 2; pass++) {
		assert_int_equal(store_journey_as_of(f->s, "c", asof, &k), TP_OK);
		assert_int_equal(k->n, 3);
		assert_true(k->as_of == asof);
		for (i = 0; i < 3; i++)
			assert_string_equal(k->events[i]->event_id, j->events[i]->event_id);
		store_journey_free(k);
		assert_int_equal(store_journey_as_of(f->s, "c", 0, &k), TP_OK);
		assert_int_equal(k->n, 5);
		assert_true(k->as_of > asof);
		assert_string_equal(k->events[0]->event_id, "b1");
		store_journey_free(k);
		if (pass == 0) {
			/* Once more after the compactor flushed the sealed segment into a run. */
			struct tbatch *w = tb_new(1);

			tb_add(w, ev_touch("b4", "other", T0 + 1, "email", ""));
			assert_int_equal(tb_write(f->s, w), TP_OK);
			tb_free(w);
			wait_first_run(f->s);
		}
	}
	store_journey_free(j);
	tb_free(t);
	tb_free(u);
}

/*
 * Schema 4's optional fields: absent vs zero (a cost of 0, a value of -0.0), interned source
 * and medium, long ids (two-byte lengths), read back exactly from a run and from the log.
 */
static void
test_lean_record(void **state)
{
	struct fx *f = *state;
	struct tbatch *t = tb_new(8);
	Touchpoint__V1__Event *e;
	struct store_journey *j;
	char longid[RECORD_MAX_STR + 1];
	size_t i, pass;

	f->s = open_store(f->dir, 0, 4);
	memset(longid, 'x', RECORD_MAX_STR);
	longid[RECORD_MAX_STR] = 0;
	e = ev_touch("l1", longid, T0 + 1, "email", "");
	e->touch->cost_present_case = TOUCHPOINT__V1__TOUCH__COST_PRESENT_COST;
	e->touch->cost = 0;
	free(e->touch->source);
	e->touch->source = xstrdup("newsletter");
	tb_add(t, e);
	e = ev_touch(longid, longid, T0 + 2, "", "c");
	free(e->touch->medium);
	e->touch->medium = xstrdup("cpc");
	e->touch->interaction = TOUCHPOINT__V1__INTERACTION__INTERACTION_EMAIL_OPEN;
	tb_add(t, e);
	tb_add(t, ev_conv("l3", longid, T0 + 3, -0.0, "x"));
	tb_add(t, ev_conv("l4", longid, T0 - 4, 1e300, ""));
	tb_add(t, ev_alias("l5", longid, T0 + 5, "anon-l5"));
	assert_int_equal(tb_write(f->s, t), TP_OK);
	assert_int_equal(t->b.accepted, 5);
	/* 5 events in the log (run_events 4): the next write seals them, then a run */
	for (pass = 0; pass < 2; pass++) {
		assert_int_equal(store_journey(f->s, longid, &j), TP_OK);
		assert_int_equal(j->n, 5);
		/* stored order: by time, so l4 (T0 - 4) first */
		assert_same_event(j->events[0], t->b.events[3]);
		for (i = 1; i < 4; i++)
			assert_same_event(j->events[i], t->b.events[i - 1]);
		assert_same_event(j->events[4], t->b.events[4]);
		assert_true(j->events[3]->conversion->value == 0 &&
		            signbit(j->events[3]->conversion->value));
		assert_int_equal(j->events[1]->touch->cost_present_case,
		                 TOUCHPOINT__V1__TOUCH__COST_PRESENT_COST);
		assert_int_equal(j->events[2]->touch->cost_present_case,
		                 TOUCHPOINT__V1__TOUCH__COST_PRESENT__NOT_SET);
		store_journey_free(j);
		if (pass == 0) {
			struct tbatch *u = tb_new(1);

			tb_add(u, ev_touch("l6", "other", T0, "email", ""));
			assert_int_equal(tb_write(f->s, u), TP_OK);
			/* the compactor flushes the sealed segment into a run */
			wait_first_run(f->s);
			tb_free(u);
		}
	}
	tb_free(t);
}

/* A store of another schema (3: the records before the lean format) is refused, untouched. */
static void
test_old_schema(void **state)
{
	struct fx *f = *state;
	struct store_options o = { .path = f->dir, .nosync = 1 };
	struct store *s = NULL;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	MDB_val k = { 7, (void *)"version" }, v;
	uint32_t three = 3;
	char err[256];

	f->s = open_store(f->dir, 0, 0);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 512), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	v.mv_size = sizeof(three);
	v.mv_data = &three;
	assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_int_not_equal(store_open(&s, &o, err, sizeof(err)), TP_OK);
	assert_null(s);
	assert_non_null(strstr(err, "store schema 3, expected 5"));
}

/* SPEC §2's largest identify: 32 traits, keys of 64 bytes, values of 256, long ids. */
static void
test_max_identify(void **state)
{
	struct fx *f = *state;
	struct tbatch *t = tb_new(1);
	struct store_journey *j;
	Touchpoint__V1__Event *e;
	char eid[129], cid[257], key[65], val[257];
	size_t i;

	memset(eid, 'e', 128);
	eid[128] = '\0';
	memset(cid, 'c', 256);
	cid[256] = '\0';
	memset(val, 'v', 256);
	val[256] = '\0';
	f->s = open_store(f->dir, 0, 0);
	e = ev_base(eid, cid, T0);
	e->kind_case = TOUCHPOINT__V1__EVENT__KIND_IDENTIFY;
	e->identify = xmalloc(sizeof(*e->identify));
	touchpoint__v1__identify__init(e->identify);
	e->identify->n_traits = 32;
	e->identify->traits = xmalloc(32 * sizeof(*e->identify->traits));
	for (i = 0; i < 32; i++) {
		Touchpoint__V1__Trait *tr = xmalloc(sizeof(*tr));

		touchpoint__v1__trait__init(tr);
		snprintf(key, sizeof(key), "%02zu", i); /* distinct keys of 64 bytes */
		memset(key + 2, 'k', 62);
		key[64] = '\0';
		tr->key = xstrdup(key);
		tr->value = xstrdup(val);
		e->identify->traits[i] = tr;
	}
	tb_add(t, e);
	assert_int_equal(tb_write(f->s, t), TP_OK);
	assert_int_equal(t->b.accepted, 1);
	assert_int_equal(store_journey(f->s, cid, &j), TP_OK);
	assert_int_equal(j->n, 1);
	assert_int_equal(j->view[0].ntraits, 32);
	assert_int_equal(strlen(j->view[0].traits[31].key), 64);
	assert_string_equal(j->view[0].traits[31].value, val);
	assert_same_event(j->events[0], t->b.events[0]);
	store_journey_free(j);
	tb_free(t);
}

/* One process at a time: a second opener is refused, naming the owner, until it closes. */
static void
test_owner(void **state)
{
	struct fx *f = *state;
	struct store_options o = { .path = f->dir, .nosync = 1 };
	struct store *s = NULL;
	char err[256], want[64];

	f->s = open_store(f->dir, 0, 0);
	assert_int_equal(store_open(&s, &o, err, sizeof(err)), TP_FAILED_PRECONDITION);
	assert_null(s);
	assert_non_null(strstr(err, "is in use by another process"));
	snprintf(want, sizeof(want), "(pid %ld)", (long)getpid());
	assert_non_null(strstr(err, want));
	/* The refused open touched nothing: the owner still writes and reads. */
	{
		struct tbatch *a = tb_new(1);
		struct store_journey *j;

		tb_add(a, ev_touch("o1", "c1", T0, "email", ""));
		assert_int_equal(tb_write(f->s, a), TP_OK);
		assert_int_equal(store_journey(f->s, "c1", &j), TP_OK);
		assert_int_equal(j->n, 1);
		store_journey_free(j);
		tb_free(a);
	}
	store_close(f->s);
	f->s = open_store(f->dir, 0, 0);
}

static void
test_duplicates(void **state)
{
	struct fx *f = *state;
	struct tbatch *a = tb_new(4), *b = tb_new(4), *c = tb_new(4), *d = tb_new(4);
	struct store_batch *grp[2];
	struct store_stats st;
	struct store_journey *j;

	f->s = open_store(f->dir, 0, 0);
	/* within one batch */
	tb_add(a, ev_touch("x1", "c1", T0, "email", ""));
	tb_add(a, ev_touch("x1", "c1", T0, "email", ""));
	tb_add(a, ev_touch("x2", "c1", T0 + 1, "search", ""));
	/* across batches of one group */
	tb_add(b, ev_touch("x2", "c1", T0 + 1, "search", ""));
	tb_add(b, ev_touch("x3", "c1", T0 + 2, "social", ""));
	grp[0] = &a->b;
	grp[1] = &b->b;
	assert_int_equal(store_write(f->s, grp, 2, NULL, 0), TP_OK);
	assert_int_equal(a->b.accepted, 2);
	assert_int_equal(a->b.duplicates, 1);
	assert_int_equal(a->b.dup[0], 0);
	assert_int_equal(a->b.dup[1], 1);
	assert_int_equal(b->b.dup[0], 1);
	assert_int_equal(b->b.dup[1], 0);
	assert_int_equal(b->b.accepted, 1);
	/* across commits */
	tb_add(c, ev_touch("x3", "c1", T0 + 2, "social", ""));
	tb_add(c, ev_touch("x4", "c1", T0 + 3, "email", ""));
	assert_int_equal(tb_write(f->s, c), TP_OK);
	assert_int_equal(c->b.dup[0], 1);
	assert_int_equal(c->b.accepted, 1);
	/* across close and reopen */
	store_close(f->s);
	f->s = open_store(f->dir, 0, 0);
	tb_add(d, ev_touch("x1", "c1", T0, "email", ""));
	tb_add(d, ev_touch("x4", "c1", T0 + 3, "email", ""));
	tb_add(d, ev_touch("x5", "c1", T0 + 4, "email", ""));
	assert_int_equal(tb_write(f->s, d), TP_OK);
	assert_int_equal(d->b.dup[0], 1);
	assert_int_equal(d->b.dup[1], 1);
	assert_int_equal(d->b.dup[2], 0);

	assert_int_equal(store_journey(f->s, "c1", &j), TP_OK);
	assert_int_equal(j->n, 5);
	store_journey_free(j);
	assert_int_equal(store_stats(f->s, &st), TP_OK);
	assert_int_equal(st.events[0], 5);
	assert_int_equal(st.events[ATTR_TOUCH], 5);
	assert_int_equal(st.duplicates, 5);
	assert_int_equal(st.customers, 1);
	tb_free(a);
	tb_free(b);
	tb_free(c);
	tb_free(d);
}

/*
 * A group mixing batches prepared by store_prepare() (as the daemon's ingest threads do)
 * and unprepared ones: the merged dedup order keeps the first arrival, across batches.
 */
static void
test_prepared(void **state)
{
	struct fx *f = *state;
	struct tbatch *a = tb_new(4), *b = tb_new(4), *c = tb_new(4), *e = tb_new(2);
	struct store_prepared *pa = NULL, *pc = NULL, *pe = NULL;
	struct store_batch *grp[3];
	struct store_journey *j;
	static const uint8_t wb[] = { 1, 0, 1 }, wc[] = { 1, 0, 1, 0 };
	char err[128] = "x";

	f->s = open_store(f->dir, 0, 0);
	tb_add(a, ev_touch("y3", "c1", T0 + 2, "email", ""));
	tb_add(a, ev_touch("y1", "c1", T0, "email", ""));
	tb_add(a, ev_touch("y2", "c1", T0 + 1, "search", ""));
	tb_add(b, ev_touch("y1", "c1", T0, "email", ""));
	tb_add(b, ev_touch("y4", "c1", T0 + 3, "social", ""));
	tb_add(b, ev_touch("y2", "c1", T0 + 1, "search", ""));
	tb_add(c, ev_touch("y4", "c1", T0 + 3, "social", ""));
	tb_add(c, ev_touch("y0", "c1", T0 - 1, "email", ""));
	tb_add(c, ev_touch("y3", "c1", T0 + 2, "email", ""));
	tb_add(c, ev_touch("y1", "c1", T0 + 5, "email", "")); /* same id, other time: new */
	assert_int_equal(store_prepare(f->s, a->b.events, a->b.n, &pa), TP_OK);
	assert_int_equal(store_prepare(f->s, c->b.events, c->b.n, &pc), TP_OK);
	a->b.prep = pa;
	c->b.prep = pc;
	grp[0] = &a->b;
	grp[1] = &b->b;
	grp[2] = &c->b;
	assert_int_equal(store_write(f->s, grp, 3, err, sizeof(err)), TP_OK);
	assert_string_equal(err, "");
	for (size_t i = 0; i < a->b.n; i++)
		assert_int_equal(a->b.dup[i], 0);
	for (size_t i = 0; i < b->b.n; i++)
		assert_int_equal(b->b.dup[i], wb[i]);
	for (size_t i = 0; i < c->b.n; i++)
		assert_int_equal(c->b.dup[i], wc[i]);
	assert_int_equal(c->b.accepted, 2);
	assert_int_equal(store_journey(f->s, "c1", &j), TP_OK);
	assert_int_equal(j->n, 6);
	store_journey_free(j);
	/* a prep of other events than the batch's is refused, as is an event without an id */
	a->b.prep = pc;
	assert_int_equal(store_write(f->s, grp, 1, err, sizeof(err)), TP_INVALID_ARGUMENT);
	assert_string_equal(err, "batch 0: no events, or not its own prepared ones");
	tb_add(e, ev_touch("", "c1", T0, "email", ""));
	assert_int_equal(store_prepare(f->s, e->b.events, e->b.n, &pe), TP_INVALID_ARGUMENT);
	assert_null(pe);
	store_prepared_free(pa);
	store_prepared_free(pc);
	tb_free(a);
	tb_free(b);
	tb_free(c);
	tb_free(e);
}

/*
 * record_hash is SipHash-2-4, and the store keeps its values (dedup keys, customer hashes):
 * a change of any output would make a store written before it unreadable in part. The
 * reference implementation's vectors (key 00..0f, message 00 01 .. of each length; 0, 1
 * and 15 are in the paper), the rest as this code gave them before its rounds were inlined.
 */
static void
test_record_hash_vectors(void **state)
{
	static const struct {
		size_t n;
		uint64_t h;
	} kat[] = {
		{ 0, 0x726fdb47dd0e0e31ULL },  { 1, 0x74f839c593dc67fdULL },
		{ 7, 0xab0200f58b01d137ULL },  { 8, 0x93f5f5799a932462ULL },
		{ 15, 0xa129ca6149be45e5ULL }, { 16, 0x3f2acc7f57c29bdbULL },
		{ 63, 0x958a324ceb064572ULL },
	};
	uint8_t key[16], msg[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	for (i = 0; i < sizeof(kat) / sizeof(kat[0]); i++)
		assert_int_equal(record_hash(key, msg, kat[i].n), kat[i].h);
}

static void
test_order(void **state)
{
	struct fx *f = *state;
	struct tbatch *t = tb_new(8);
	struct store_journey *j;
	static const char *want[] = { "o3", "o5", "o1", "o4", "o2", "o6" };
	size_t i;

	f->s = open_store(f->dir, 0, 0);
	tb_add(t, ev_conv("o1", "c", T0 + 100, 1, "")); /* equal time: after touches */
	tb_add(t, ev_touch("o2", "c", T0 + 200, "a", ""));
	tb_add(t, ev_touch("o3", "c", T0 + 50, "b", "")); /* out of order */
	tb_add(t, ev_conv("o4", "c", T0 + 100, 2, ""));   /* conversion, later arrival */
	tb_add(t, ev_touch("o5", "c", T0 + 100, "c", ""));
	tb_add(t, ev_touch("o6", "c", T0 + 200, "d", "")); /* same time, later arrival */
	assert_int_equal(tb_write(f->s, t), TP_OK);
	assert_int_equal(store_journey(f->s, "c", &j), TP_OK);
	assert_int_equal(j->n, 6);
	for (i = 0; i < 6; i++)
		assert_string_equal(j->events[i]->event_id, want[i]);
	store_journey_free(j);
	tb_free(t);
}

/* ---- a brute-force model of what store_scan must return ---- */

#define NCUST 37
#define NEV   6000

struct mev {
	int cust;
	int64_t ts;
	int kind;
	int ord; /* arrival */
	char channel[8];
	char campaign[8]; /* a touch's, often none */
	double value;
};

static struct mev model[NEV];
static int nmodel;

static int
mev_cmp(const void *a, const void *b)
{
	const struct mev *x = a, *y = b;

	if (x->cust != y->cust)
		return x->cust - y->cust;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if ((x->kind == ATTR_CONVERSION) != (y->kind == ATTR_CONVERSION))
		return x->kind == ATTR_CONVERSION ? 1 : -1;
	return x->ord - y->ord;
}

struct scan_check {
	struct store *s;
	const struct mev *sorted;
	int n;
	int customers, events, bad;
	int seen[NCUST];
	int (*canon)(int);
	char why[200];
};

static int
ident(int c)
{
	return c;
}

static int
model_start(const struct scan_check *sc, int cust)
{
	int i;

	for (i = 0; i < sc->n && sc->canon(sc->sorted[i].cust) != cust; i++)
		;
	return i;
}

static int
check_cb(void *arg, const char *cid, const struct attr_event *evs, size_t n)
{
	struct scan_check *sc = arg;
	int cust, i, k;
	size_t e;

	sc->customers++;
	if (sscanf(cid, "cust%d", &cust) != 1 || cust < 0 || cust >= NCUST || sc->seen[cust]++) {
		snprintf(sc->why, sizeof(sc->why), "unexpected or repeated customer %s", cid);
		sc->bad++;
		return 0;
	}
	i = model_start(sc, cust);
	for (k = i; k < sc->n && sc->canon(sc->sorted[k].cust) == cust; k++)
		;
	if ((size_t)(k - i) != n) {
		snprintf(sc->why, sizeof(sc->why), "%s: %zu events, want %d", cid, n, k - i);
		sc->bad++;
		return 0;
	}
	for (e = 0; e < n; e++, i++) {
		const struct mev *m = &sc->sorted[i];
		const char *ch = evs[e].kind == ATTR_TOUCH ? store_name(sc->s, evs[e].channel) : "";
		const char *ca = evs[e].kind == ATTR_TOUCH && evs[e].campaign != 0
		                     ? store_name(sc->s, evs[e].campaign)
		                     : "";

		sc->events++;
		if (evs[e].ts_us != m->ts || evs[e].kind != m->kind ||
		    (m->kind == ATTR_TOUCH &&
		     (strcmp(ch, m->channel) != 0 || ca == NULL || strcmp(ca, m->campaign) != 0)) ||
		    (m->kind == ATTR_CONVERSION && evs[e].value != m->value) ||
		    (e > 0 && evs[e].ts_us == evs[e - 1].ts_us && evs[e].kind == evs[e - 1].kind &&
		     evs[e].seq <= evs[e - 1].seq)) {
			snprintf(sc->why, sizeof(sc->why), "%s: event %zu differs", cid, e);
			sc->bad++;
			return 0;
		}
	}
	return 0;
}

/* Sorts the model under canon and checks a full scan against it. */
static void
check_scan(struct store *s, int (*canon)(int))
{
	static struct mev sorted[NEV];
	struct scan_check sc = { .s = s, .sorted = sorted, .n = nmodel, .canon = canon };
	int i, ncust = 0, seen[NCUST] = { 0 };

	for (i = 0; i < nmodel; i++) {
		sorted[i] = model[i];
		sorted[i].cust = canon(model[i].cust);
		if (!seen[sorted[i].cust]++)
			ncust++;
	}
	qsort(sorted, (size_t)nmodel, sizeof(*sorted), mev_cmp);
	assert_int_equal(store_scan(s, check_cb, &sc), TP_OK);
	if (sc.bad)
		fail_msg("scan: %s", sc.why);
	assert_int_equal(sc.customers, ncust);
	assert_int_equal(sc.events, nmodel);
}

static uint64_t rng = 88172645463325252ULL;

static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Writes groups of random events (with some duplicates) and records the model. */
static void
write_random(struct store *s, int groups, int per)
{
	static const char *chans[] = { "email", "search", "social", "direct", "display" };
	static const char *camps[] = { "", "", "spring", "brand" };
	char eid[32], cid[32];
	int g, i, k;

	for (g = 0; g < groups; g++) {
		struct tbatch *t[2] = { tb_new((size_t)per), tb_new((size_t)per) };
		struct store_batch *grp[2] = { &t[0]->b, &t[1]->b };

		for (k = 0; k < 2; k++) {
			for (i = 0; i < per; i++) {
				struct mev *m;
				int dup = nmodel > 0 && rnd() % 10 == 0;

				if (dup) {
					/* repeat an earlier event exactly */
					m = &model[rnd() % (uint64_t)nmodel];
				} else {
					if (nmodel >= NEV)
						fail_msg("model full");
					m = &model[nmodel];
					m->cust = (int)(rnd() % NCUST);
					m->ts = T0 + (int64_t)(rnd() % 50) * 1000000;
					m->kind = rnd() % 4 == 0 ? ATTR_CONVERSION : ATTR_TOUCH;
					m->ord = nmodel;
					snprintf(m->channel, sizeof(m->channel), "%s",
					         chans[rnd() % 5]);
					snprintf(m->campaign, sizeof(m->campaign), "%s",
					         camps[rnd() % 4]);
					m->value = (double)(rnd() % 1000);
					nmodel++;
				}
				snprintf(eid, sizeof(eid), "ev-%d", m->ord);
				snprintf(cid, sizeof(cid), "cust%d", m->cust);
				tb_add(t[k],
				       m->kind == ATTR_TOUCH
				           ? ev_touch(eid, cid, m->ts, m->channel, m->campaign)
				           : ev_conv(eid, cid, m->ts, m->value, ""));
			}
		}
		assert_int_equal(store_write(s, grp, 2, NULL, 0), TP_OK);
		tb_free(t[0]);
		tb_free(t[1]);
	}
}

/* Settled: fewer than the merge fan-in (8) runs in each of the few tiers these tests make. */
#define SETTLED_RUNS (7 * 4)

static void
wait_runs(struct store *s, uint64_t max)
{
	struct store_stats st;
	int i;

	/* Compaction runs in the background: wait (generously) for it to settle. */
	for (i = 0; i < 600; i++) {
		assert_int_equal(store_stats(s, &st), TP_OK);
		if (st.runs <= max && st.segments <= 1 && st.merging == 0)
			return;
		sleep_ms(50);
	}
	fail_msg("compaction did not settle: %llu runs, %llu log segments, %llu merging",
	         (unsigned long long)st.runs, (unsigned long long)st.segments,
	         (unsigned long long)st.merging);
}

static void
test_runs_compaction(void **state)
{
	struct fx *f = *state;
	struct store_stats st;
	uint64_t walked;

	nmodel = 0;
	f->s = open_store(f->dir, 0, 16);
	write_random(f->s, 10, 5);
	check_scan(f->s, ident);
	write_random(f->s, 200, 9);
	check_scan(f->s, ident); /* while the compactor may be merging */
	wait_runs(f->s, SETTLED_RUNS);
	check_scan(f->s, ident);
	assert_int_equal(store_stats(f->s, &st), TP_OK);
	assert_int_equal(st.events[0], (uint64_t)nmodel);
	assert_int_equal(st.customers, NCUST); /* exact while small */
	/* The write path's timings: commits took time, at least one merge of 8 runs of 16. */
	assert_true(st.commit_ns > 0);
	assert_true(st.chunks >= 1 && st.chunk_ns > 0);
	assert_true(st.chunk_records >= 8 * 16);
	assert_int_equal(store_walk(f->s, &walked), TP_OK);
	assert_int_equal(walked, (uint64_t)nmodel);
	/* reopen: the runs, the log tail and the dictionary come back */
	store_close(f->s);
	f->s = open_store(f->dir, 0, 16);
	check_scan(f->s, ident);
	write_random(f->s, 50, 7);
	wait_runs(f->s, SETTLED_RUNS);
	check_scan(f->s, ident);
	assert_int_equal(store_walk(f->s, &walked), TP_OK);
	assert_int_equal(walked, (uint64_t)nmodel);
}

/* The nice value of this process's thread named name, from /proc; -100 if none. */
static int
thread_nice(const char *name)
{
	char path[300], comm[32], buf[1024];
	int nice = -100;
	FILE *fp;
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;

	assert_non_null(d);
	while (nice == -100 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		if ((fp = fopen(path, "r")) == NULL)
			continue;
		comm[0] = '\0';
		if (fgets(comm, sizeof(comm), fp) != NULL)
			comm[strcspn(comm, "\n")] = '\0';
		fclose(fp);
		if (strcmp(comm, name) != 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", de->d_name);
		if ((fp = fopen(path, "r")) == NULL)
			continue;
		/* Field 19 is nice; comm (field 2) is in parentheses and has no ')' here. */
		if (fgets(buf, sizeof(buf), fp) != NULL) {
			char *p = strrchr(buf, ')');
			int field = 2;

			while (p != NULL && *p != '\0' && field < 19)
				if (*p++ == ' ')
					field++;
			if (p != NULL)
				nice = atoi(p);
		}
		fclose(fp);
	}
	closedir(d);
	return nice;
}

/*
 * compactor_nice: the compactor lowers its own thread while it keeps up (and only its own:
 * this thread stays at 0), compacts as before, and is back at that value once caught up.
 */
static void
test_compactor_nice(void **state)
{
	struct fx *f = *state;
	struct store_options o = {
		.path = f->dir, .nosync = 1, .run_events = 16, .compactor_nice = 10
	};
	struct store_stats st;
	char err[256];
	uint64_t walked;
	int i;

	nmodel = 0;
	assert_int_equal(store_open(&f->s, &o, err, sizeof(err)), TP_OK);
	write_random(f->s, 200, 9); /* run_events 16: sealed segments faster than it may flush */
	wait_runs(f->s, SETTLED_RUNS);
	check_scan(f->s, ident);
	assert_int_equal(store_walk(f->s, &walked), TP_OK);
	assert_int_equal(walked, (uint64_t)nmodel);
	/* Caught up: at 10 again within its next tick (it may have been raised meanwhile). */
	for (i = 0; i < 300; i++) {
		assert_int_equal(store_stats(f->s, &st), TP_OK);
		if (st.compactor_nice == 10)
			break;
		nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	assert_int_equal(st.compactor_nice, 10);
	assert_int_equal(thread_nice("tp-compactor"), 10);
	assert_int_equal(getpriority(PRIO_PROCESS, 0), 0);
}

/* cust1 -> cust2 -> cust3 and cust4 -> cust3; cust5 -> cust6, and a cycle 6 -> 5 ignored */
static int
canon_alias(int c)
{
	switch (c) {
	case 1:
	case 2:
	case 4:
		return 3;
	case 5:
		return 6;
	default:
		return c;
	}
}

static uint64_t
rd_be64_test(const uint8_t *p)
{
	uint64_t x = 0;

	for (int i = 0; i < 8; i++)
		x = x << 8 | p[i];
	return x;
}

/* The main environment (dir) or runs.mdb in it (b), opened behind the store's back. */
static MDB_env *
raw_env(const char *dir, int b)
{
	char path[512];
	MDB_env *env;

	snprintf(path, sizeof(path), b ? "%s/runs.mdb" : "%s", dir);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 512), 0);
	assert_int_equal(mdb_env_open(env, path, b ? MDB_NOSUBDIR : 0, 0640), 0);
	return env;
}

/* cust1..4 joined under cust3, cust5 under cust6, as canon_alias() says. */
static void
check_aliases(struct store *s)
{
	struct store_journey *j;
	size_t i;
	int want = 0;

	check_scan(s, canon_alias);
	assert_int_equal(store_journey(s, "cust1", &j), TP_OK);
	assert_string_equal(j->customer_id, "cust3");
	assert_int_equal(j->naliases, 3);
	for (i = 0; i < (size_t)nmodel; i++)
		want += canon_alias(model[i].cust) == 3;
	/* plus the alias events al1, al2, al3 themselves */
	assert_int_equal(j->n, (size_t)want + 3);
	for (i = 1; i < j->n; i++)
		assert_true(j->view[i - 1].ts_us <= j->view[i].ts_us);
	store_journey_free(j);
	assert_int_equal(store_journey(s, "cust6", &j), TP_OK);
	assert_string_equal(j->customer_id, "cust6");
	assert_int_equal(j->naliases, 1);
	assert_string_equal(j->aliases[0], "cust5");
	store_journey_free(j);
}

/*
 * The alias rules, read three ways: from the unflushed log (every reader applies them),
 * from runs.mdb's trees (the compactor applied them at the flush) and after a reopen.
 */
static void
test_aliases(void **state)
{
	struct fx *f = *state;
	struct tbatch *t = tb_new(8);
	struct store_stats st;

	nmodel = 0;
	f->s = open_store(f->dir, 0, 2048);
	write_random(f->s, 20, 8);
	tb_add(t, ev_alias("al1", "cust2", T0, "cust1"));
	tb_add(t, ev_alias("al2", "cust3", T0, "cust2"));
	tb_add(t, ev_alias("al3", "cust3", T0, "cust4"));
	tb_add(t, ev_alias("al4", "cust6", T0, "cust5"));
	tb_add(t, ev_alias("al5", "cust5", T0, "cust6")); /* would close a cycle */
	tb_add(t, ev_alias("al6", "cust9", T0, "cust1")); /* cust1 is taken: first wins */
	assert_int_equal(tb_write(f->s, t), TP_OK);
	assert_int_equal(t->b.accepted, 6);
	write_random(f->s, 20, 8);
	assert_int_equal(store_stats(f->s, &st), TP_OK);
	assert_int_equal(st.runs, 0); /* all of it still in the log */
	check_aliases(f->s);

	write_random(f->s, 150, 8); /* about 2 700 events: the first segment is sealed, flushed */
	wait_runs(f->s, SETTLED_RUNS);
	assert_int_equal(store_stats(f->s, &st), TP_OK);
	assert_true(st.runs >= 1);
	check_aliases(f->s);
	check_aliases(f->s); /* on the alias buffers the first scan left to the store */
	store_trim(f->s);    /* given back: the next scan makes them again */
	check_aliases(f->s);

	store_close(f->s);
	f->s = open_store(f->dir, 0, 2048);
	check_aliases(f->s);
	store_close(f->s);
	f->s = NULL;
	tb_free(t);
	/* Their segment flushed and dropped (at the latest by that open): alog is trimmed. */
	{
		MDB_env *env = raw_env(f->dir, 0);
		MDB_txn *txn;
		MDB_dbi alog;
		MDB_stat ms;

		assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
		assert_int_equal(mdb_dbi_open(txn, "alog", 0, &alog), 0);
		assert_int_equal(mdb_stat(txn, alog, &ms), 0);
		assert_int_equal(ms.ms_entries, 0);
		mdb_txn_abort(txn);
		mdb_env_close(env);
	}
}

/* ---- alias forests of any depth: journeys and scans against a model ---- */

#define FMAX   16000 /* ids */
#define FMARKS 64    /* touches and conversions */

/*
 * The ids of the forest tests, numbered; fpar is the model of SPEC §2's alias as the store
 * documents it: the first alias of an id wins, one that would close a cycle is ignored, and
 * any depth resolves.
 */
static char fname[FMAX][16];
static int fpar[FMAX], froot[FMAX], fnid, fseq;

struct fmark {
	int64_t ts;
	int node;
};

static struct fmark fmarks[FMARKS];
static int nfmarks;

static void
forest_reset(void)
{
	fnid = fseq = nfmarks = 0;
}

/* n new ids prefix0 .. prefix(n - 1); the first one's number. */
static int
forest_ids(const char *prefix, int n)
{
	int i, base = fnid;

	if (fnid + n > FMAX)
		fail_msg("forest: too many ids");
	for (i = 0; i < n; i++) {
		snprintf(fname[fnid], sizeof(fname[fnid]), "%s%d", prefix, i);
		fpar[fnid++] = -1;
	}
	return base;
}

static int
forest_root(int x)
{
	while (fpar[x] >= 0)
		x = fpar[x];
	return x;
}

/* Adds e to *t, written first when full. */
static void
forest_add(struct store *s, struct tbatch **t, Touchpoint__V1__Event *e)
{
	if ((*t)->b.n == (*t)->cap) {
		assert_int_equal(tb_write(s, *t), TP_OK);
		tb_free(*t);
		*t = tb_new(500);
	}
	tb_add(*t, e);
}

/* The event of alias(prev -> cust), applied to the model too. */
static void
forest_alias(struct store *s, struct tbatch **t, int prev, int cust)
{
	char eid[32];

	snprintf(eid, sizeof(eid), "fa%d", fseq);
	forest_add(s, t, ev_alias(eid, fname[cust], T0 + fseq++ * 1000, fname[prev]));
	if (prev != cust && fpar[prev] < 0 && forest_root(cust) != prev)
		fpar[prev] = cust;
}

/* A touch (or a conversion) on node, its time its name among the marks. */
static void
forest_mark(struct store *s, struct tbatch **t, int node, int conv)
{
	char eid[32];
	int64_t ts = T0 + fseq++ * 1000;

	if (nfmarks == FMARKS)
		fail_msg("forest: too many marks");
	snprintf(eid, sizeof(eid), "fm%d", fseq);
	forest_add(s, t,
	           conv ? ev_conv(eid, fname[node], ts, 5, "")
	                : ev_touch(eid, fname[node], ts, "email", ""));
	fmarks[nfmarks].ts = ts;
	fmarks[nfmarks++].node = node;
}

/* The chain x + i + 1 -> x + i of n hops (x the root), its aliases root first or leaf first. */
static void
forest_chain(struct store *s, struct tbatch **t, int x, int n, int leaf_first)
{
	int i;

	for (i = 0; i < n; i++) {
		int k = leaf_first ? n - 1 - i : i;

		forest_alias(s, t, x + k + 1, x + k);
	}
}

/* What one part of a scan saw: the customer of each mark, and how often. */
struct fscan {
	char seen[FMARKS][16];
	int nseen[FMARKS];
	int bad;
	char why[200];
};

static int
fmark_at(int64_t ts)
{
	int i;

	for (i = 0; i < nfmarks; i++)
		if (fmarks[i].ts == ts)
			return i;
	return -1;
}

static int
forest_cb(void *arg, const char *cid, const struct attr_event *evs, size_t n)
{
	struct fscan *fs = arg;
	size_t e;
	int m;

	if (strcmp(cid, "filler") == 0)
		return 0;
	for (e = 0; e < n; e++) {
		if ((m = fmark_at(evs[e].ts_us)) < 0) {
			snprintf(fs->why, sizeof(fs->why), "%s: an unknown event", cid);
			fs->bad++;
			continue;
		}
		snprintf(fs->seen[m], sizeof(fs->seen[m]), "%s", cid);
		fs->nseen[m]++;
	}
	return 0;
}

/* The journey of id: its customer is node's root in the model, with every id of the tree. */
static void
forest_journey(struct store *s, int node)
{
	struct store_journey *j;
	int i, r = froot[node], members = 0, marks = 0;
	size_t e, own = 0;

	for (i = 0; i < fnid; i++)
		members += froot[i] == r;
	for (i = 0; i < nfmarks; i++)
		marks += froot[fmarks[i].node] == r;
	if (store_journey(s, fname[node], &j) != TP_OK)
		fail_msg("journey %s: failed", fname[node]);
	if (strcmp(j->customer_id, fname[r]) != 0)
		fail_msg("journey %s: customer %s, want %s", fname[node], j->customer_id, fname[r]);
	assert_int_equal(j->naliases, (size_t)members - 1);
	for (e = 0; e < j->n; e++) {
		if (j->view[e].kind == ATTR_ALIAS)
			continue;
		own++;
		i = fmark_at(j->view[e].ts_us);
		assert_true(i >= 0 && froot[fmarks[i].node] == r);
	}
	assert_int_equal(own, (size_t)marks);
	store_journey_free(j);
}

/*
 * The scan (one thread, then every part on two) puts each touch and conversion under its
 * id's root in the model, once, and the journeys of the marked ids and of probe[] agree.
 */
static void
forest_check(struct store *s, const int *probe, int nprobe)
{
	static struct fscan fs[STORE_SCAN_NPARTS];
	void *args[STORE_SCAN_NPARTS];
	int i, m, p, round;

	for (i = 0; i < fnid; i++)
		froot[i] = forest_root(i);
	for (round = 0; round < 2; round++) {
		memset(fs, 0, sizeof(fs));
		for (i = 0; i < STORE_SCAN_NPARTS; i++)
			args[i] = &fs[i];
		if (round == 0)
			assert_int_equal(store_scan(s, forest_cb, &fs[0]), TP_OK);
		else
			assert_int_equal(store_scan_parts(s, 2, forest_cb, NULL, args), TP_OK);
		for (m = 0; m < nfmarks; m++) {
			const char *want = fname[froot[fmarks[m].node]], *got = "";
			int n = 0;

			for (p = 0; p < STORE_SCAN_NPARTS; p++) {
				if (fs[p].bad)
					fail_msg("scan: %s", fs[p].why);
				if (fs[p].nseen[m] > 0)
					got = fs[p].seen[m];
				n += fs[p].nseen[m];
			}
			if (n != 1 || strcmp(got, want) != 0)
				fail_msg("scan: the event on %s seen %d times, under %s, want %s",
				         fname[fmarks[m].node], n, got, want);
		}
	}
	for (i = 0; i < nfmarks; i++)
		forest_journey(s, fmarks[i].node);
	for (i = 0; i < nprobe; i++)
		forest_journey(s, probe[i]);
}

/* Writes touches on "filler" until the log's segments are sealed and flushed. */
static void
forest_flush(struct store *s, int n)
{
	struct tbatch *t = tb_new(500);
	char eid[32];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(eid, sizeof(eid), "ff%d", fseq);
		forest_add(s, &t, ev_touch(eid, "filler", T0 + fseq++ * 1000, "direct", ""));
	}
	assert_int_equal(tb_write(s, t), TP_OK);
	tb_free(t);
	wait_runs(s, SETTLED_RUNS);
}

#define FPROBES 32

/*
 * The shapes of the review: chains of 1 023, 1 024, 1 025 and 3 000 hops (chain1024.csv:
 * a touch on the root, the conversion on the leaf), deep.csv (a chain of 1 000 joined under
 * one of 100: 1 101 hops), the same with its aliases in a shuffled order (a parallel
 * import's), two chains of 1 500 joined end to end, and aliases that are ignored at depth (a
 * cycle, a second alias of an id). probe[] gets ids whose journeys to check.
 */
static void
forest_build(struct store *s, int *probe, int *nprobe)
{
	static const struct {
		const char *prefix;
		int hops, leaf_first;
	} chains[] = { { "x", 1023, 0 },
		       { "y", 1024, 0 },
		       { "z", 1025, 0 },
		       { "w", 3000, 0 },
		       { "v", 3000, 1 } };
	static int e[1101][2];
	struct tbatch *t = tb_new(500);
	int i, k, x, a, b, c, d, g, h, n = 0, zz;

	forest_reset();
	for (i = 0; i < 5; i++) {
		int hops = chains[i].hops;

		x = forest_ids(chains[i].prefix, hops + 1);
		forest_mark(s, &t, x, 0);
		forest_chain(s, &t, x, hops, chains[i].leaf_first);
		forest_mark(s, &t, x + hops, 1);
		probe[n++] = x + hops - 1;
		probe[n++] = x + hops / 2;
		if (hops > 1025) {
			probe[n++] = x + 1023;
			probe[n++] = x + 1024;
			probe[n++] = x + 1025;
		}
	}
	/* deep.csv: a1000 -> ... -> a0, b100 -> ... -> b0, then a0 -> b100 */
	a = forest_ids("a", 1001);
	b = forest_ids("b", 101);
	forest_chain(s, &t, a, 1000, 0);
	forest_chain(s, &t, b, 100, 0);
	forest_alias(s, &t, a, b + 100);
	forest_mark(s, &t, a + 1000, 0); /* deep */
	forest_mark(s, &t, a + 10, 0);   /* shallow */
	forest_mark(s, &t, b, 1);
	probe[n++] = a + 923;
	probe[n++] = a + 1000;
	probe[n++] = a;
	/* the same shape, its 1 101 aliases shuffled */
	c = forest_ids("c", 1001);
	d = forest_ids("d", 101);
	for (i = 0; i < 1000; i++) {
		e[i][0] = c + i + 1;
		e[i][1] = c + i;
	}
	for (i = 0; i < 100; i++) {
		e[1000 + i][0] = d + i + 1;
		e[1000 + i][1] = d + i;
	}
	e[1100][0] = c;
	e[1100][1] = d + 100;
	for (i = 1100; i > 0; i--) {
		int tmp[2];

		k = (int)(rnd() % (uint64_t)(i + 1));
		memcpy(tmp, e[i], sizeof(tmp));
		memcpy(e[i], e[k], sizeof(tmp));
		memcpy(e[k], tmp, sizeof(tmp));
	}
	forest_mark(s, &t, c + 1000, 0);
	for (i = 0; i < 1101; i++)
		forest_alias(s, &t, e[i][0], e[i][1]);
	forest_mark(s, &t, d, 1);
	probe[n++] = c + 1000;
	/* two chains of 1 500 joined end to end: g's root under h's leaf, 3 001 hops */
	g = forest_ids("g", 1501);
	h = forest_ids("h", 1501);
	forest_chain(s, &t, g, 1500, 1);
	forest_chain(s, &t, h, 1500, 0);
	forest_alias(s, &t, g, h + 1500);
	forest_mark(s, &t, g + 1500, 0);
	forest_mark(s, &t, h, 1);
	probe[n++] = g + 1500;
	/* ignored at depth: cycles, and second aliases of ids (the first wins) */
	zz = forest_ids("zz", 1);
	forest_alias(s, &t, h, g + 1500);
	forest_alias(s, &t, b, a + 1000);
	forest_alias(s, &t, a + 999, zz);
	forest_alias(s, &t, g + 1, zz);
	forest_mark(s, &t, zz, 0);
	probe[n++] = zz;
	assert_true(n <= FPROBES);
	*nprobe = n;
	assert_int_equal(tb_write(s, t), TP_OK);
	tb_free(t);
}

/*
 * After forest_build's aliases are flushed: its deep.csv tree (1 101 hops, in runs.mdb's
 * trees) joined under the leaf of a new chain of 1 200 (unflushed), and a cycle through both.
 */
static void
forest_extend(struct store *s, int *probe, int *nprobe)
{
	struct tbatch *t = tb_new(500);
	int u = forest_ids("u", 1201), b = 0, a = 0;

	while (strcmp(fname[b], "b0") != 0)
		b++;
	while (strcmp(fname[a], "a1000") != 0)
		a++;
	forest_chain(s, &t, u, 1200, 0);
	forest_alias(s, &t, b, u + 1200);
	forest_alias(s, &t, u, a);
	forest_mark(s, &t, u + 600, 0);
	probe[(*nprobe)++] = u;
	probe[(*nprobe)++] = u + 1200;
	assert_true(*nprobe <= FPROBES);
	assert_int_equal(tb_write(s, t), TP_OK);
	tb_free(t);
}

/*
 * alias_depth: every shape of forest_build, read while the compactor flushes the log under
 * the scans, once flushed into runs.mdb's trees, with forest_extend's aliases on top, and
 * after a reopen.
 */
static void
test_alias_depth(void **state)
{
	struct fx *f = *state;
	int probe[FPROBES], nprobe;

	f->s = open_store(f->dir, 0, 2048);
	forest_build(f->s, probe, &nprobe);
	forest_check(f->s, probe, nprobe);
	forest_flush(f->s, 5000);
	forest_check(f->s, probe, nprobe);
	forest_extend(f->s, probe, &nprobe);
	forest_check(f->s, probe, nprobe);
	forest_flush(f->s, 3000);
	forest_check(f->s, probe, nprobe);
	store_close(f->s);
	f->s = open_store(f->dir, 0, 2048);
	forest_check(f->s, probe, nprobe);
}

/* alias_depth_log: the same with every alias in the unflushed log (each reader applies them). */
static void
test_alias_depth_log(void **state)
{
	struct fx *f = *state;
	struct store_stats st;
	int probe[FPROBES], nprobe;

	f->s = open_store(f->dir, 0, 100000);
	forest_build(f->s, probe, &nprobe);
	assert_int_equal(store_stats(f->s, &st), TP_OK);
	assert_int_equal(st.runs, 0);
	forest_check(f->s, probe, nprobe);
}

/* Writes the aliases prev[i] -> cust[i] of forest ids, and flushes them when flush is set. */
static void
cache_aliases(struct store *s, const int *prev, const int *cust, int n, int flush)
{
	struct tbatch *t = tb_new(500);
	int i;

	for (i = 0; i < n; i++)
		forest_alias(s, &t, prev[i], cust[i]);
	if (t->b.n > 0)
		assert_int_equal(tb_write(s, t), TP_OK);
	tb_free(t);
	if (flush)
		forest_flush(s, 3000);
}

/*
 * alias_cache: a scan takes the alias forest of the scan before only while its snapshot has
 * the same trees. Aliases flushed between two scans (and none in between) are seen; a flush
 * without aliases keeps the forest; the log's aliases are put on top of it, with new ids or
 * none.
 */
static void
test_alias_cache(void **state)
{
	struct fx *f = *state;
	struct tbatch *t = tb_new(500);
	int x, i;

	f->s = open_store(f->dir, 0, 2048);
	forest_reset();
	x = forest_ids("k", 8);
	for (i = 0; i < 8; i++)
		forest_mark(f->s, &t, x + i, i == 0);
	assert_int_equal(tb_write(f->s, t), TP_OK);
	tb_free(t);
	forest_flush(f->s, 3000);
	forest_check(f->s, NULL, 0); /* no alias yet: an empty forest, kept */
	cache_aliases(f->s, (int[]){ x + 1 }, (int[]){ x }, 1, 1);
	forest_check(f->s, NULL, 0);
	cache_aliases(f->s, (int[]){ x + 2, x + 3 }, (int[]){ x + 1, x + 2 }, 2, 1);
	forest_check(f->s, NULL, 0);
	forest_flush(f->s, 3000); /* no alias: the same forest */
	forest_check(f->s, NULL, 0);
	cache_aliases(f->s, (int[]){ x + 4 }, (int[]){ x + 3 }, 1, 0); /* in the log */
	forest_check(f->s, NULL, 0);
	forest_flush(f->s, 3000);
	forest_check(f->s, NULL, 0);
	cache_aliases(f->s, (int[]){ x + 5, x + 7 }, (int[]){ x, x + 6 }, 2, 1);
	forest_check(f->s, NULL, 0);
	/* in the log, a root of the trees with an id under it joins another tree: no new id */
	cache_aliases(f->s, (int[]){ x + 6 }, (int[]){ x + 5 }, 1, 0);
	forest_check(f->s, NULL, 0);
	forest_flush(f->s, 3000);
	forest_check(f->s, NULL, 0);
}

/*
 * Random aliases over 40 ids, 24 of them with events (first alias wins, cycles refused,
 * chains, trees joined, ids with no event), flushed into runs.mdb's trees or left in the
 * log at random, and the scans and journeys checked against the model after each step:
 * test_alias_cache's cases of the kept forest, in orders no one wrote down.
 */
static void
test_alias_random(void **state)
{
	struct fx *f = *state;
	struct tbatch *t = tb_new(500);
	int x, i, k, n, step, na, prev[4], cust[4], nids = 40, nmarked = 24;

	f->s = open_store(f->dir, 0, 2048);
	forest_reset();
	rng = 0x5eed19;
	x = forest_ids("r", nids);
	for (i = 0; i < nmarked; i++)
		forest_mark(f->s, &t, x + i, i % 3 == 0);
	assert_int_equal(tb_write(f->s, t), TP_OK);
	tb_free(t);
	for (step = 0; step < 14; step++) {
		n = (int)(rnd() % 5);
		for (k = na = 0; k < n; k++) {
			prev[na] = x + (int)(rnd() % (uint64_t)nids);
			cust[na] = x + (int)(rnd() % (uint64_t)nids);
			na += prev[na] != cust[na]; /* the same id twice is refused by validation */
		}
		cache_aliases(f->s, prev, cust, na, (int)(rnd() % 2));
		forest_check(f->s, NULL, 0);
	}
}

static void
test_map_growth(void **state)
{
	struct fx *f = *state;
	struct store_stats st;

	nmodel = 0;
	f->s = open_store(f->dir, 64 * 1024, 64);
	write_random(f->s, 150, 10);
	assert_int_equal(store_stats(f->s, &st), TP_OK);
	assert_true(st.map_size > 64 * 1024);
	assert_true(st.store_bytes <= st.map_size);
	check_scan(f->s, ident);
}

static void
child_writer(const char *dir, int fd)
{
	struct store_options o = { .path = dir, .nosync = 0, .run_events = 32 };
	struct store *s;
	char eid[32], cid[32];
	int b, i;

	if (store_open(&s, &o, NULL, 0) != TP_OK)
		_exit(2);
	for (b = 0;; b++) {
		struct tbatch *t = tb_new(20);

		for (i = 0; i < 20; i++) {
			snprintf(eid, sizeof(eid), "b%d-%d", b, i);
			snprintf(cid, sizeof(cid), "k%d", (b * 7 + i) % 11);
			tb_add(t, ev_touch(eid, cid, T0 + b * 1000 + i, "email", ""));
		}
		if (tb_write(s, t) != TP_OK)
			_exit(3);
		if (write(fd, &b, sizeof(b)) != sizeof(b))
			_exit(4);
		tb_free(t);
	}
}

struct count_arg {
	uint64_t events;
};

static int
count_cb(void *arg, const char *cid, const struct attr_event *evs, size_t n)
{
	(void)cid;
	(void)evs;
	((struct count_arg *)arg)->events += n;
	return 0;
}

static void
test_crash(void **state)
{
	struct fx *f = *state;
	int p[2], b, last = -1, i, status;
	pid_t pid;
	struct store_journey *j;
	struct count_arg ca = { 0 };
	char cid[32], eid[32];

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		child_writer(f->dir, p[1]);
	}
	close(p[1]);
	/* Let it acknowledge some batches (including flushes into runs), then kill it. */
	while (last < 150 && read(p[0], &b, sizeof(b)) == sizeof(b))
		last = b;
	kill(pid, SIGKILL);
	while (read(p[0], &b, sizeof(b)) == sizeof(b))
		last = b;
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_true(last >= 150);

	f->s = open_store(f->dir, 0, 32);
	assert_int_equal(store_scan(f->s, count_cb, &ca), TP_OK);
	assert_true(ca.events >= (uint64_t)(last + 1) * 20);
	/* every acknowledged batch is there, event by event */
	for (i = 0; i < 11; i++) {
		size_t e, found = 0;
		int bb, k;

		snprintf(cid, sizeof(cid), "k%d", i);
		assert_int_equal(store_journey(f->s, cid, &j), TP_OK);
		for (bb = 0; bb <= last; bb++) {
			for (k = 0; k < 20; k++) {
				if ((bb * 7 + k) % 11 != i)
					continue;
				snprintf(eid, sizeof(eid), "b%d-%d", bb, k);
				for (e = 0; e < j->n && strcmp(j->events[e]->event_id, eid) != 0;
				     e++)
					;
				if (e == j->n)
					fail_msg("acknowledged event %s lost", eid);
				found++;
			}
		}
		assert_true(found <= j->n);
		store_journey_free(j);
	}
}

/* Leaves a run marked building and an orphan run behind, as a crash mid-merge would. */
static void
test_building_dropped(void **state)
{
	struct fx *f = *state;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, run, run2, main_dbi;
	MDB_val k, v;
	uint8_t key[9] = { 'r', 0, 0, 0, 0, 0, 0, 0x03, 0xe7 }; /* id 999 */
	uint32_t dirent[4] = { 1, 1, 0, 0 };                    /* tier 1, building */
	uint8_t junk[24] = { 1, 2, 3 };

	nmodel = 0;
	f->s = open_store(f->dir, 0, 16);
	write_random(f->s, 20, 6);
	store_close(f->s);
	f->s = NULL;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 512), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_dbi_open(txn, "run.999", MDB_CREATE, &run), 0);
	assert_int_equal(mdb_dbi_open(txn, "run.998", MDB_CREATE, &run2), 0);
	k.mv_size = 24;
	k.mv_data = junk;
	v.mv_size = 3;
	v.mv_data = junk; /* not a valid record: scanning it would fail */
	assert_int_equal(mdb_put(txn, run, &k, &v, 0), 0);
	assert_int_equal(mdb_put(txn, run2, &k, &v, 0), 0);
	k.mv_size = sizeof(key);
	k.mv_data = key;
	v.mv_size = 16;
	v.mv_data = dirent;
	assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	f->s = open_store(f->dir, 0, 16);
	check_scan(f->s, ident);
	store_close(f->s);
	f->s = NULL;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 512), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "run.999", 0, &run), MDB_NOTFOUND);
	assert_int_equal(mdb_dbi_open(txn, "run.998", 0, &run), MDB_NOTFOUND);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	k.mv_size = sizeof(key);
	k.mv_data = key;
	assert_int_equal(mdb_get(txn, meta, &k, &v), MDB_NOTFOUND);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &main_dbi), 0);
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

/*
 * Schema 4 (no runs.mdb, the log named "log", the alias trees in the main environment) is
 * opened and upgraded in place: the trees move to runs.mdb, new runs go there.
 */
static void
test_schema4_upgrade(void **state)
{
	struct fx *f = *state;
	char path[512];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	MDB_val k = { 7, (void *)"version" }, v;
	uint32_t four = 4, version;
	uint64_t walked;
	MDB_dbi al, alr;
	MDB_val ak = { 6, (void *)"zz-old" }, av = { 7, (void *)"zz-new" };
	struct tbatch *t = tb_new(1);
	struct store_journey *j;

	nmodel = 0;
	f->s = open_store(f->dir, 0, 0);
	write_random(f->s, 3, 5); /* about 30 events, all in "log" */
	store_close(f->s);
	f->s = NULL;
	env = raw_env(f->dir, 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	v.mv_size = sizeof(four);
	v.mv_data = &four;
	assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
	assert_int_equal(mdb_dbi_open(txn, "aliases", MDB_CREATE, &al), 0);
	assert_int_equal(mdb_dbi_open(txn, "alias_rev", MDB_CREATE | MDB_DUPSORT, &alr), 0);
	assert_int_equal(mdb_put(txn, al, &ak, &av, 0), 0);
	v.mv_size = 6;
	v.mv_data = av.mv_data;
	assert_int_equal(mdb_put(txn, alr, &v, &ak, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	snprintf(path, sizeof(path), "%s/runs.mdb", f->dir);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/runs.mdb-lock", f->dir);
	assert_int_equal(unlink(path), 0);

	f->s = open_store(f->dir, 0, 16);
	check_scan(f->s, ident);
	write_random(f->s, 60, 5);
	wait_runs(f->s, SETTLED_RUNS);
	check_scan(f->s, ident);
	assert_int_equal(store_walk(f->s, &walked), TP_OK);
	assert_int_equal(walked, (uint64_t)nmodel);
	/* The old alias holds: zz-old's journey is zz-new's. */
	tb_add(t, ev_touch("zz1", "zz-old", T0, "email", ""));
	assert_int_equal(tb_write(f->s, t), TP_OK);
	assert_int_equal(store_journey(f->s, "zz-old", &j), TP_OK);
	assert_string_equal(j->customer_id, "zz-new");
	assert_int_equal(j->naliases, 1);
	assert_string_equal(j->aliases[0], "zz-old");
	assert_int_equal(j->n, 1);
	store_journey_free(j);
	tb_free(t);
	store_close(f->s);
	f->s = NULL;

	env = raw_env(f->dir, 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_get(txn, meta, &k, &v), 0);
	assert_int_equal(v.mv_size, sizeof(version));
	memcpy(&version, v.mv_data, sizeof(version));
	assert_int_equal(version, 5);
	assert_int_equal(mdb_dbi_open(txn, "aliases", 0, &al), MDB_NOTFOUND);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	env = raw_env(f->dir, 1);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "aliases", 0, &al), 0);
	assert_int_equal(mdb_get(txn, al, &ak, &v), 0);
	assert_int_equal(v.mv_size, 7);
	assert_memory_equal(v.mv_data, "zz-new", 7);
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

/*
 * A crash after a merge committed in runs.mdb and before its main inputs were dropped:
 * runs.mdb marks them consumed, and the open drops them instead of reading their events
 * twice. Also a run left building and an orphan in runs.mdb, dropped like the main ones.
 */
static void
test_consumed_dropped(void **state)
{
	struct fx *f = *state;
	MDB_env *env, *envb;
	MDB_txn *txn, *txnb;
	MDB_dbi meta, metab, src, dst, orphan, building;
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t rk[9] = { 'r' }, dk[9] = { 'r', 0, 0, 0, 0, 0, 0, 0x03, 0xde }; /* id 990 */
	uint8_t xk[9] = { 'x', 0, 0, 0, 0, 0, 0, 0x03, 0xde };
	uint8_t bk[9] = { 'r', 0x80, 0, 0, 0, 0, 0, 0x03, 0xe7 }; /* runs.mdb id 2^63 + 999 */
	uint32_t dirent[4] = { 0, 0, 0, 0 }, bdirent[4] = { 2, 1, 0, 0 };
	uint64_t copied = 0, walked;
	char name[48];

	nmodel = 0;
	f->s = open_store(f->dir, 0, 16);
	write_random(f->s, 60, 5);
	wait_runs(f->s, SETTLED_RUNS);
	check_scan(f->s, ident);
	store_close(f->s);
	f->s = NULL;

	/* Copy runs.mdb's first complete run into the main environment as run 990. */
	envb = raw_env(f->dir, 1);
	env = raw_env(f->dir, 0);
	assert_int_equal(mdb_txn_begin(envb, NULL, 0, &txnb), 0);
	assert_int_equal(mdb_dbi_open(txnb, "meta", 0, &metab), 0);
	assert_int_equal(mdb_cursor_open(txnb, metab, &c), 0);
	k.mv_size = 1;
	k.mv_data = rk;
	assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), 0);
	assert_int_equal(k.mv_size, 9);
	assert_int_equal(((uint8_t *)k.mv_data)[0], 'r');
	snprintf(name, sizeof(name), "run.%llu",
	         (unsigned long long)rd_be64_test((uint8_t *)k.mv_data + 1));
	mdb_cursor_close(c);
	assert_int_equal(mdb_dbi_open(txnb, name, 0, &src), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_dbi_open(txn, "run.990", MDB_CREATE, &dst), 0);
	assert_int_equal(mdb_cursor_open(txnb, src, &c), 0);
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), copied++)
		assert_int_equal(mdb_put(txn, dst, &k, &v, MDB_APPEND), 0);
	mdb_cursor_close(c);
	assert_true(copied > 0);
	memcpy(&dirent[2], &copied, sizeof(copied));
	k.mv_size = sizeof(dk);
	k.mv_data = dk;
	v.mv_size = sizeof(dirent);
	v.mv_data = dirent;
	assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	/* runs.mdb: the marker, a building run and an orphan. */
	k.mv_size = sizeof(xk);
	k.mv_data = xk;
	v.mv_size = 0;
	v.mv_data = xk;
	assert_int_equal(mdb_put(txnb, metab, &k, &v, 0), 0);
	k.mv_size = sizeof(bk);
	k.mv_data = bk;
	v.mv_size = sizeof(bdirent);
	v.mv_data = bdirent;
	assert_int_equal(mdb_put(txnb, metab, &k, &v, 0), 0);
	assert_int_equal(mdb_dbi_open(txnb, "run.9223372036854776807", MDB_CREATE, &building), 0);
	assert_int_equal(mdb_dbi_open(txnb, "run.77", MDB_CREATE, &orphan), 0);
	k.mv_size = 24;
	k.mv_data = name; /* not a valid record: scanning it would fail */
	v.mv_size = 3;
	v.mv_data = name;
	assert_int_equal(mdb_put(txnb, building, &k, &v, 0), 0);
	assert_int_equal(mdb_put(txnb, orphan, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txnb), 0);
	mdb_env_close(env);
	mdb_env_close(envb);

	f->s = open_store(f->dir, 0, 16);
	check_scan(f->s, ident); /* run 990's events once, not twice */
	assert_int_equal(store_walk(f->s, &walked), TP_OK);
	assert_int_equal(walked, (uint64_t)nmodel);
	store_close(f->s);
	f->s = NULL;

	env = raw_env(f->dir, 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "run.990", 0, &dst), MDB_NOTFOUND);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	k.mv_size = sizeof(dk);
	k.mv_data = dk;
	assert_int_equal(mdb_get(txn, meta, &k, &v), MDB_NOTFOUND);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	envb = raw_env(f->dir, 1);
	assert_int_equal(mdb_txn_begin(envb, NULL, MDB_RDONLY, &txnb), 0);
	assert_int_equal(mdb_dbi_open(txnb, "run.9223372036854776807", 0, &building), MDB_NOTFOUND);
	assert_int_equal(mdb_dbi_open(txnb, "run.77", 0, &orphan), MDB_NOTFOUND);
	assert_int_equal(mdb_dbi_open(txnb, "meta", 0, &metab), 0);
	k.mv_size = sizeof(xk);
	k.mv_data = xk;
	assert_int_equal(mdb_get(txnb, metab, &k, &v), MDB_NOTFOUND);
	k.mv_size = sizeof(bk);
	k.mv_data = bk;
	assert_int_equal(mdb_get(txnb, metab, &k, &v), MDB_NOTFOUND);
	mdb_txn_abort(txnb);
	mdb_env_close(envb);
}

/*
 * A crash after sealed log segments were flushed into runs and before their drop: they
 * are below runs.mdb's "flushed" and the open drops them instead of reading their events
 * twice, even more of them than the writer keeps unflushed (STORE_MAX_SEGS, 32).
 * Simulated with copies of the writer's segment under every flushed number.
 */
static void
test_flushed_segment_dropped(void **state)
{
	struct fx *f = *state;
	MDB_env *env, *envb;
	MDB_txn *txn, *txnb;
	MDB_dbi metab, main_dbi, src, dst;
	MDB_cursor *c;
	MDB_val k = { 7, (void *)"flushed" }, v;
	uint64_t flushed, copied = 0, walked, seg, lastn = 0;
	char name[48], last[48] = "";

	nmodel = 0;
	f->s = open_store(f->dir, 0, 16);
	/* About 900 events, 20 a segment: in bursts, so that the writer never meets 32. */
	for (int b = 0; b < 5; b++) {
		write_random(f->s, 20, 5);
		wait_runs(f->s, SETTLED_RUNS);
	}
	check_scan(f->s, ident);
	store_close(f->s);
	f->s = NULL;

	envb = raw_env(f->dir, 1);
	assert_int_equal(mdb_txn_begin(envb, NULL, MDB_RDONLY, &txnb), 0);
	assert_int_equal(mdb_dbi_open(txnb, "meta", 0, &metab), 0);
	assert_int_equal(mdb_get(txnb, metab, &k, &v), 0);
	assert_int_equal(v.mv_size, 8);
	memcpy(&flushed, v.mv_data, 8);
	mdb_txn_abort(txnb);
	mdb_env_close(envb);
	assert_true(flushed >= 34);

	/* The writer's segment: the main database's highest "log.N". */
	env = raw_env(f->dir, 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &main_dbi), 0);
	assert_int_equal(mdb_cursor_open(txn, main_dbi, &c), 0);
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		if (k.mv_size > 4 && k.mv_size < sizeof(name) &&
		    memcmp(k.mv_data, "log.", 4) == 0) {
			memcpy(name, k.mv_data, k.mv_size);
			name[k.mv_size] = 0;
			if (strtoull(name + 4, NULL, 10) > lastn) {
				lastn = strtoull(name + 4, NULL, 10);
				memcpy(last, name, sizeof(last));
			}
		}
	mdb_cursor_close(c);
	assert_true(lastn >= flushed);
	assert_int_equal(mdb_dbi_open(txn, last, 0, &src), 0);
	for (seg = 1; seg < flushed; seg++) {
		snprintf(name, sizeof(name), "log.%llu", (unsigned long long)seg);
		assert_int_equal(mdb_dbi_open(txn, name, MDB_CREATE, &dst), 0);
		assert_int_equal(mdb_cursor_open(txn, src, &c), 0);
		for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT), copied++)
			assert_int_equal(mdb_put(txn, dst, &k, &v, MDB_APPEND), 0);
		mdb_cursor_close(c);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_true(copied > 0);

	f->s = open_store(f->dir, 0, 16);
	check_scan(f->s, ident); /* the copy is not read */
	assert_int_equal(store_walk(f->s, &walked), TP_OK);
	assert_int_equal(walked, (uint64_t)nmodel);
	store_close(f->s);
	f->s = NULL;
	env = raw_env(f->dir, 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	for (seg = 1; seg < flushed; seg++) {
		snprintf(name, sizeof(name), "log.%llu", (unsigned long long)seg);
		assert_int_equal(mdb_dbi_open(txn, name, 0, &dst), MDB_NOTFOUND);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

static void
test_corrupt_record(void **state)
{
	struct fx *f = *state;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi log;
	MDB_val k, v;
	uint8_t key[8] = { 0xff, 0, 0, 0, 0, 0, 0, 0 }, junk[80];
	struct count_arg ca = { 0 };

	nmodel = 0;
	f->s = open_store(f->dir, 0, 1000);
	write_random(f->s, 2, 5);
	store_close(f->s);
	f->s = NULL;
	memset(junk, 0, sizeof(junk));
	junk[RECORD_PREFIX] = ATTR_TOUCH; /* after the log value's prefix: kind, empty mask */
	junk[RECORD_PREFIX + 2] = 0xff;   /* a customer_id length past the end */
	junk[RECORD_PREFIX + 3] = 0x7f;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 512), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "log", 0, &log), 0);
	k.mv_size = 8;
	k.mv_data = key;
	v.mv_size = sizeof(junk);
	v.mv_data = junk;
	assert_int_equal(mdb_put(txn, log, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	f->s = open_store(f->dir, 0, 1000);
	assert_int_equal(store_scan(f->s, count_cb, &ca), TP_INTERNAL);
}

static void
test_stats_backup(void **state)
{
	struct fx *f = *state;
	struct tbatch *t = tb_new(8);
	struct store_stats st;
	struct store *b;
	char bdir[128], err[256];
	uint64_t bytes = 0;
	int i;

	nmodel = 0;
	f->s = open_store(f->dir, 0, 16);
	assert_int_equal(store_stats(f->s, &st), TP_OK);
	assert_int_equal(st.events[0], 0);
	assert_int_equal(st.customers, 0);
	for (i = 0; i < 5; i++) {
		char eid[16], cid[16];

		snprintf(eid, sizeof(eid), "s%d", i);
		snprintf(cid, sizeof(cid), "u%d", i % 3);
		tb_add(t, i % 2 ? ev_conv(eid, cid, T0 + i, 1, "")
		                : ev_touch(eid, cid, T0 + i, "a", ""));
	}
	tb_add(t, ev_alias("s9", "u0", T0, "u7"));
	tb_add(t, ev_touch("s0", "u0", T0, "a", "")); /* duplicate */
	assert_int_equal(tb_write(f->s, t), TP_OK);
	write_random(f->s, 40, 5);
	wait_runs(f->s, 10); /* merged runs (from about 22): the backup must copy them */
	assert_int_equal(store_stats(f->s, &st), TP_OK);
	assert_int_equal(st.events[ATTR_TOUCH] + st.events[ATTR_CONVERSION], 5 + (uint64_t)nmodel);
	assert_int_equal(st.events[ATTR_CONVERSION] >= 2, 1);
	assert_int_equal(st.events[ATTR_ALIAS], 1);
	assert_int_equal(st.events[0], 6 + (uint64_t)nmodel);
	assert_true(st.duplicates >= 1);
	assert_int_equal(st.customers, 3 + NCUST);
	assert_true(st.store_bytes > 0);
	assert_true(st.runs >= 1);

	snprintf(bdir, sizeof(bdir), "%s/backup", f->dir);
	assert_int_equal(store_backup(f->s, bdir, &bytes, err, sizeof(err)), TP_OK);
	assert_true(bytes > 0);
	/* A backup is never written over: FAILED_PRECONDITION, naming the field. */
	assert_int_equal(store_backup(f->s, bdir, &bytes, err, sizeof(err)),
	                 TP_FAILED_PRECONDITION);
	assert_non_null(strstr(err, "dir: "));
	assert_non_null(strstr(err, "not an empty directory"));
	{
		char other[700];
		uint64_t b2 = 0;

		/* A parent that does not exist: nothing is made. */
		snprintf(other, sizeof(other), "%s/no/such", f->dir);
		assert_int_equal(store_backup(f->s, other, &b2, err, sizeof(err)),
		                 TP_FAILED_PRECONDITION);
		assert_non_null(strstr(err, "cannot create"));
		snprintf(other, sizeof(other), "%s/no", f->dir);
		assert_int_equal(access(other, F_OK), -1);
		/* An empty directory made beforehand is filled. */
		snprintf(other, sizeof(other), "%s/made", f->dir);
		assert_int_equal(mkdir(other, 0750), 0);
		assert_int_equal(store_backup(f->s, other, &b2, err, sizeof(err)), TP_OK);
		assert_true(b2 > 0);
		snprintf(other, sizeof(other), "%s/made/data.mdb", f->dir);
		assert_int_equal(access(other, R_OK), 0);
	}
	b = open_store(bdir, 0, 16);
	assert_int_equal(store_stats(b, &st), TP_OK);
	assert_int_equal(st.events[0], 6 + (uint64_t)nmodel);
	/* the model's customers are all in the copy, in order */
	store_close(f->s);
	f->s = b;
	{
		struct count_arg ca = { 0 };

		assert_int_equal(store_scan(b, count_cb, &ca), TP_OK);
		assert_int_equal(ca.events, 5 + (uint64_t)nmodel);
	}
	store_close(b);
	f->s = NULL;
	tb_free(t);
}

struct reader_arg {
	struct store *s;
	atomic_int *stop;
	int scans, errors;
	uint64_t last; /* this thread's previous scan: later snapshots never see fewer */
};

static void *
reader_thread(void *p)
{
	struct reader_arg *ra = p;
	struct store_journey *j;
	struct store_stats st;
	uint64_t walked;

	while (!*ra->stop) {
		struct count_arg ca = { 0 };
		int rc;

		if (store_scan(ra->s, count_cb, &ca) != TP_OK || ca.events < ra->last)
			ra->errors++;
		ra->last = ca.events;
		rc = store_journey(ra->s, "cust3", &j);
		if (rc == TP_OK)
			store_journey_free(j);
		else if (rc != TP_NOT_FOUND)
			ra->errors++;
		if (store_walk(ra->s, &walked) != TP_OK || store_stats(ra->s, &st) != TP_OK)
			ra->errors++;
		ra->scans++;
	}
	return NULL;
}

/* Snapshots stay consistent while the writer flushes, the map grows and runs are merged. */
static void
test_concurrent_readers(void **state)
{
	struct fx *f = *state;
	struct reader_arg ra[2] = { { 0 } };
	atomic_int stop = 0;
	pthread_t th[2];
	int i;

	nmodel = 0;
	f->s = open_store(f->dir, 64 * 1024, 16);
	for (i = 0; i < 2; i++) {
		ra[i].s = f->s;
		ra[i].stop = &stop;
		assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &ra[i]), 0);
	}
	write_random(f->s, 250, 10);
	wait_runs(f->s, SETTLED_RUNS);
	stop = 1;
	for (i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ra[i].errors, 0);
		assert_true(ra[i].scans > 0);
	}
	check_scan(f->s, ident);
}

struct order_arg {
	int big, bad;
	size_t nbig;
};

static int
order_cb(void *arg, const char *cid, const struct attr_event *evs, size_t n)
{
	struct order_arg *oa = arg;
	size_t i;

	for (i = 1; i < n; i++)
		oa->bad += evs[i].ts_us < evs[i - 1].ts_us;
	if (strcmp(cid, "big") == 0) {
		oa->big++;
		oa->nbig = n;
	}
	return 0;
}

/* One customer's events sent in reverse time order: long unsorted stretches in a flush. */
static void
test_reverse_order(void **state)
{
	struct fx *f = *state;
	struct store_journey *j;
	struct order_arg oa = { 0 };
	char eid[32], cid[32];
	int g, i, pass;
	size_t k;

	f->s = open_store(f->dir, 0, 300);
	for (g = 0; g < 8; g++) {
		struct tbatch *t = tb_new(100);

		for (i = 0; i < 100; i++) {
			int n = g * 100 + i;

			snprintf(eid, sizeof(eid), "rv%d", n);
			if (i % 2 == 0) {
				tb_add(t, ev_touch(eid, "big", T0 + (800 - n) * 1000, "email", ""));
			} else {
				snprintf(cid, sizeof(cid), "o%d", n % 13);
				tb_add(t, ev_touch(eid, cid, T0 + n * 1000, "search", ""));
			}
		}
		assert_int_equal(tb_write(f->s, t), TP_OK);
		tb_free(t);
	}
	for (pass = 0; pass < 2; pass++) {
		assert_int_equal(store_journey(f->s, "big", &j), TP_OK);
		assert_int_equal(j->n, 400);
		for (k = 1; k < j->n; k++)
			assert_true(j->view[k - 1].ts_us < j->view[k].ts_us);
		store_journey_free(j);
		memset(&oa, 0, sizeof(oa));
		assert_int_equal(store_scan(f->s, order_cb, &oa), TP_OK);
		assert_int_equal(oa.bad, 0);
		assert_int_equal(oa.big, 1);
		assert_int_equal(oa.nbig, 400);
		/* again from the runs alone, after a reopen with the log flushed by more writes */
		store_close(f->s);
		f->s = open_store(f->dir, 0, 300);
	}
}

/* ---- the partitioned scan ---- */

/* What one part (or a whole scan) streamed: a text line per customer, and a count. */
struct trace {
	char *buf;
	size_t len, cap;
	uint64_t customers, events;
	int stop_at; /* > 0: return 7 at this customer */
	int done;    /* done() calls */
	unsigned part;
	int done_rv; /* what done() returns */
};

static int
trace_done(void *arg, unsigned part)
{
	struct trace *t = arg;

	t->done++;
	t->part = part;
	return t->done_rv;
}

static void
trace_put(struct trace *t, const char *s)
{
	size_t n = strlen(s);

	while (t->len + n + 1 > t->cap) {
		t->cap = t->cap ? t->cap * 2 : 4096;
		t->buf = realloc(t->buf, t->cap);
		assert_non_null(t->buf);
	}
	memcpy(t->buf + t->len, s, n + 1);
	t->len += n;
}

static int
trace_cb(void *arg, const char *cid, const struct attr_event *evs, size_t n)
{
	struct trace *t = arg;
	char line[160];
	size_t i;

	t->customers++;
	t->events += n;
	snprintf(line, sizeof(line), "%s:%zu", cid, n);
	trace_put(t, line);
	for (i = 0; i < n; i++) {
		snprintf(line, sizeof(line), " %lld/%d/%llu/%u/%.17g", (long long)evs[i].ts_us,
		         evs[i].kind, (unsigned long long)evs[i].seq, evs[i].channel, evs[i].value);
		trace_put(t, line);
	}
	trace_put(t, "\n");
	if (t->stop_at > 0 && t->customers == (uint64_t)t->stop_at)
		return 7;
	return 0;
}

/* Many customers (every part gets some), aliases, several runs and a log tail. */
static void
write_parts_store(struct store *s, int customers, int rounds)
{
	char eid[32], cid[32], prev[32];
	int r, c, n = 0;

	for (r = 0; r < rounds; r++) {
		struct tbatch *t = tb_new((size_t)customers + 8);

		for (c = 0; c < customers; c++) {
			snprintf(eid, sizeof(eid), "p%d", n++);
			snprintf(cid, sizeof(cid), "c%d", c);
			if (c % 17 == 3 && r == 1) {
				/* c is aliased to c - 1: stashed, emitted in the alias part */
				snprintf(prev, sizeof(prev), "c%d", c);
				snprintf(cid, sizeof(cid), "c%d", c - 1);
				tb_add(t, ev_alias(eid, cid, T0 + r * 1000, prev));
			} else if ((c + r) % 5 == 0) {
				tb_add(t, ev_conv(eid, cid, T0 + (int64_t)(r * 7 + c % 3) * 1000000,
				                  (double)(c % 97) + 0.25, ""));
			} else {
				tb_add(t,
				       ev_touch(eid, cid, T0 + (int64_t)(r * 7 + c % 5) * 1000000,
				                (c + r) % 3 ? "email" : "search", ""));
			}
		}
		assert_int_equal(tb_write(s, t), TP_OK);
		tb_free(t);
	}
}

/* Every part's stream is the same for any thread count; in order they are store_scan's. */
static void
test_scan_parts(void **state)
{
	static const unsigned threads[] = { 1, 2, 3, 8, 0 };
	struct fx *f = *state;
	struct trace whole = { 0 }, ref[STORE_SCAN_NPARTS], got[STORE_SCAN_NPARTS];
	void *args[STORE_SCAN_NPARTS];
	size_t i, k, cat;
	uint64_t ev, na;

	f->s = open_store(f->dir, 0, 256);
	write_parts_store(f->s, 700, 9);
	assert_int_equal(store_scan(f->s, trace_cb, &whole), TP_OK);
	assert_true(whole.customers > 600);
	for (k = 0; k < sizeof(threads) / sizeof(threads[0]); k++) {
		struct trace *t = k == 0 ? ref : got;

		memset(t, 0, sizeof(ref));
		for (i = 0; i < STORE_SCAN_NPARTS; i++)
			args[i] = &t[i];
		assert_int_equal(store_scan_parts(f->s, threads[k], trace_cb, trace_done, args),
		                 TP_OK);
		for (i = 0, cat = 0, ev = 0, na = 0; i < STORE_SCAN_NPARTS; i++) {
			/* every range is populated here; every part is done once */
			assert_true(i >= STORE_SCAN_PARTS || t[i].customers > 0);
			na += i >= STORE_SCAN_PARTS ? t[i].customers : 0;
			assert_int_equal(t[i].done, 1);
			assert_int_equal(t[i].part, i);
			ev += t[i].events;
			if (k == 0) {
				assert_true(cat + t[i].len <= whole.len);
				assert_memory_equal(whole.buf + cat, t[i].buf, t[i].len);
				cat += t[i].len;
			} else {
				assert_int_equal(t[i].len, ref[i].len);
				assert_memory_equal(t[i].buf, ref[i].buf, t[i].len);
				free(t[i].buf);
			}
		}
		assert_int_equal(ev, whole.events);
		assert_true(na >= 30); /* the aliased customers */
		if (k == 0)
			assert_int_equal(cat, whole.len);
	}
	/* A callback's non-zero value stops every thread and is returned. */
	memset(got, 0, sizeof(got));
	for (i = 0; i < STORE_SCAN_NPARTS; i++)
		args[i] = &got[i];
	got[5].stop_at = 3;
	assert_int_equal(store_scan_parts(f->s, 4, trace_cb, trace_done, args), 7);
	assert_int_equal(got[5].customers, 3);
	assert_int_equal(got[5].done, 0);
	for (i = STORE_SCAN_PARTS; i < STORE_SCAN_NPARTS; i++)
		assert_int_equal(got[i].customers, 0); /* aliases come after all ranges */
	for (i = 0; i < STORE_SCAN_NPARTS; i++) {
		free(got[i].buf);
		free(ref[i].buf);
	}
	/* So does done's. */
	memset(got, 0, sizeof(got));
	got[2].done_rv = 9;
	assert_int_equal(store_scan_parts(f->s, 3, trace_cb, trace_done, args), 9);
	assert_int_equal(got[2].done, 1);
	for (i = STORE_SCAN_PARTS; i < STORE_SCAN_NPARTS; i++)
		assert_int_equal(got[i].done, 0);
	for (i = 0; i < STORE_SCAN_NPARTS; i++)
		free(got[i].buf);
	free(whole.buf);
}

/* ---- runs' copies ---- */

/*
 * A run's copy value (record.h) gives back every field the scan reads, with differences of
 * every varint length and sign between neighbouring times and seqs, the extremes included,
 * through both decoders; a body decodes alone as it did within the value.
 */
static void
test_compact_roundtrip(void **state)
{
	static const uint8_t pairs[] = { 4,   'p', 'l', 'a', 'n', 0, 3, 'p',
		                         'r', 'o', 0,   1,   'x', 0, 0, 0 };
	struct record in[70], out[70], one;
	struct attr_event v[70];
	struct attr_trait tr[70 * 2];
	uint8_t buf[70 * 80], *p;
	int64_t pts = 0;
	uint64_t pseq = 0;
	const uint8_t *first;
	uint32_t n;
	size_t nt, i, bound = 5;

	(void)state;
	memset(in, 0, sizeof(in));
	p = record_compact_count_put(buf, 70);
	for (i = 0; i < 70; i++) {
		struct record *r = &in[i];
		int64_t step = (int64_t)1 << (i % 62);

		r->kind = i % 3 == 0 ? ATTR_TOUCH : i % 3 == 1 ? ATTR_CONVERSION : ATTR_IDENTIFY;
		r->ts = i == 66 ? INT64_MIN : i == 67 ? INT64_MAX : T0 + (i % 2 ? step : -step);
		r->seq = i == 68   ? UINT64_MAX
		         : i == 69 ? 0
		                   : (uint64_t)i * UINT64_C(0x9e3779b97f4a7c15) >> (i % 64);
		r->channel = (uint32_t)1 << (i % 32);
		r->campaign = i % 4 ? (uint32_t)i * 1000 : 0;
		r->name = i % 5 ? 0 : UINT32_MAX - (uint32_t)i;
		r->num = r->kind != ATTR_CONVERSION ? 0 : i % 2 ? 3.25 : -0.0;
		if (r->kind == ATTR_IDENTIFY && i % 2) {
			r->ntraits = 2;
			r->traits = pairs;
			r->end = pairs + sizeof(pairs);
		}
		bound += record_compact_bound(r);
		p = record_compact_put(r, p, &pts, &pseq);
	}
	assert_true((size_t)(p - buf) <= bound && bound <= sizeof(buf));
	assert_int_equal(record_compact_count(buf, (size_t)(p - buf), &n, &first), 0);
	assert_int_equal(n, 70);
	assert_int_equal(record_compact_parse(first, p, n, 5, "who", 3, out), 0);
	assert_int_equal(record_compact_views(first, p, n, v, tr, &nt), 0);
	assert_int_equal(nt, 2 * 11); /* the identify events of odd i: 5, 11, ..., 65 */
	for (i = 0; i < 70; i++) {
		assert_int_equal(out[i].kind, in[i].kind);
		assert_true(out[i].ts == in[i].ts);
		assert_true(out[i].seq == in[i].seq);
		assert_int_equal(out[i].channel, in[i].channel);
		assert_int_equal(out[i].campaign, in[i].campaign);
		assert_int_equal(out[i].name, in[i].name);
		assert_memory_equal(&out[i].num, &in[i].num, 8); /* -0.0 too */
		assert_int_equal(out[i].ntraits, in[i].ntraits);
		assert_string_equal(out[i].str[REC_CUSTOMER_ID], "who");
		assert_true(out[i].flags & RECORD_F_COMPACT);
		assert_true(v[i].ts_us == in[i].ts && v[i].seq == in[i].seq);
		assert_int_equal(v[i].kind, in[i].kind);
		assert_int_equal(v[i].channel, in[i].channel);
		assert_int_equal(v[i].campaign, in[i].campaign);
		assert_int_equal(v[i].name, in[i].name);
		assert_memory_equal(&v[i].value, &in[i].num, 8);
		assert_int_equal(v[i].ntraits, in[i].ntraits);
		if (v[i].ntraits > 0) {
			assert_string_equal(v[i].traits[0].key, "plan");
			assert_string_equal(v[i].traits[0].value, "pro");
			assert_string_equal(v[i].traits[1].key, "x");
			assert_string_equal(v[i].traits[1].value, "");
		}
		assert_int_equal(record_compact_body(out[i].val, (size_t)(out[i].end - out[i].val),
		                                     in[i].ts, in[i].seq, &one),
		                 0);
		assert_int_equal(one.channel, in[i].channel);
		assert_int_equal(one.ntraits, in[i].ntraits);
	}
	/* cut short anywhere, it is refused rather than read past its end */
	for (i = 1; i < (size_t)(p - first); i++) {
		assert_int_equal(record_compact_parse(first, first + i, n, 5, "who", 3, out), -1);
		assert_int_equal(record_compact_views(first, first + i, n, v, tr, &nt), -1);
	}
}

/*
 * A copy's 32-bit varints decode alike with 8 bytes left after them (one load) and near the
 * value's end (a byte at a time): the same values, the same ones refused.
 */
static void
test_compact_varints(void **state)
{
	static const struct {
		uint8_t b[6];
		size_t n;
		int ok;
		uint32_t want;
	} cases[] = {
		{ { 0x7f }, 1, 1, 127 },
		{ { 0x81, 0x00 }, 2, 1, 1 }, /* not the shortest form: still 1 */
		{ { 0xff, 0xff, 0xff, 0xff, 0x0f }, 5, 1, UINT32_MAX },
		{ { 0x80, 0x80, 0x80, 0x80, 0x10 }, 5, 0, 0 },       /* 2^32 */
		{ { 0xff, 0xff, 0xff, 0xff, 0x8f, 0x00 }, 6, 0, 0 }, /* a sixth byte */
		{ { 0x80, 0x80, 0x80, 0x80, 0x80, 0x80 }, 6, 0, 0 }, /* no end in six */
	};
	size_t c;
	int tail;

	(void)state;
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (tail = 0; tail < 2; tail++) {
			/* count 1, ts 5, seq 1, a touch with its channel (and campaign and name) */
			uint8_t buf[32] = { 1, 10, 2, ATTR_TOUCH | RECORD_C_CHANNEL }, *p = buf + 4;
			const uint8_t *first;
			struct attr_event v;
			struct attr_trait tr[1];
			uint32_t n;
			size_t nt;
			int rv;

			memcpy(p, cases[c].b, cases[c].n);
			p += cases[c].n;
			if (tail == 0) {
				static const uint8_t more[] = { 0x80, 0x80, 0x80, 0x80, 0x01,
					                        0x80, 0x80, 0x80, 0x80, 0x02 };

				buf[3] |= RECORD_C_CAMPAIGN | RECORD_C_NAME;
				memcpy(p, more, sizeof(more));
				p += sizeof(more);
			}
			assert_int_equal(record_compact_count(buf, (size_t)(p - buf), &n, &first),
			                 0);
			rv = record_compact_views(first, p, n, &v, tr, &nt);
			if (!cases[c].ok) {
				assert_int_equal(rv, -1);
				continue;
			}
			assert_int_equal(rv, 0);
			assert_true(v.ts_us == 5 && v.seq == 1 && v.kind == ATTR_TOUCH);
			assert_int_equal(v.channel, cases[c].want);
			assert_int_equal(v.campaign, tail == 0 ? UINT32_C(1) << 28 : 0);
			assert_int_equal(v.name, tail == 0 ? UINT32_C(2) << 28 : 0);
		}
	}
}

/* Every field the engine reads, a line per customer: a scan's whole output, comparable. */
static int
full_cb(void *arg, const char *cid, const struct attr_event *evs, size_t n)
{
	struct trace *t = arg;
	char line[700];
	size_t i, k;

	t->customers++;
	t->events += n;
	snprintf(line, sizeof(line), "%s:%zu", cid, n);
	trace_put(t, line);
	for (i = 0; i < n; i++) {
		snprintf(line, sizeof(line), " %lld/%d/%llu/%u/%u/%u/%.17g/%zu",
		         (long long)evs[i].ts_us, evs[i].kind, (unsigned long long)evs[i].seq,
		         evs[i].channel, evs[i].campaign, evs[i].name, evs[i].value,
		         evs[i].ntraits);
		trace_put(t, line);
		for (k = 0; k < evs[i].ntraits; k++) {
			snprintf(line, sizeof(line), "[%s=%s]", evs[i].traits[k].key,
			         evs[i].traits[k].value);
			trace_put(t, line);
		}
	}
	trace_put(t, "\n");
	return 0;
}

/* Whether a line of t starts with head (customers come in hash order: any may be first). */
static int
trace_has_line(const struct trace *t, const char *head)
{
	const char *p = t->buf;
	size_t n = strlen(head);

	while (p != NULL && *p != 0) {
		if (strncmp(p, head, n) == 0)
			return 1;
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return 0;
}

static struct trace
full_scan(struct store *s)
{
	struct trace t = { 0 };

	assert_int_equal(store_scan(s, full_cb, &t), TP_OK);
	assert_true(t.customers > 0);
	return t;
}

static void
same_trace(struct trace *a, struct trace *b)
{
	assert_int_equal(a->customers, b->customers);
	assert_int_equal(a->events, b->events);
	assert_int_equal(a->len, b->len);
	assert_memory_equal(a->buf, b->buf, a->len);
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

static Touchpoint__V1__Event *
ev_identify(const char *eid, const char *cid, int64_t ts, const char *plan)
{
	Touchpoint__V1__Event *e = ev_base(eid, cid, ts);
	Touchpoint__V1__Trait *tr = xmalloc(sizeof(*tr));

	e->kind_case = TOUCHPOINT__V1__EVENT__KIND_IDENTIFY;
	e->identify = xmalloc(sizeof(*e->identify));
	touchpoint__v1__identify__init(e->identify);
	e->identify->n_traits = 1;
	e->identify->traits = xmalloc(sizeof(*e->identify->traits));
	touchpoint__v1__trait__init(tr);
	tr->key = xstrdup("plan");
	tr->value = xstrdup(plan);
	e->identify->traits[0] = tr;
	return e;
}

/*
 * Rounds of every kind the copies hold or leave out: touches with and without campaigns,
 * conversions with values, names and neither, identify traits, aliases (and a chain),
 * equal timestamps in different rounds (so in different runs: seq decides), events that
 * arrive a day late, and one customer with events in every round (many, from many runs).
 */
static void
write_copies_store(struct store *s, int from, int rounds)
{
	static const char *chans[] = { "email", "search", "social", "direct" };
	char eid[32], cid[32], prev[32];
	int r, c, n = from * 1000;

	for (r = from; r < from + rounds; r++) {
		struct tbatch *t = tb_new(64);

		for (c = 0; c < 40; c++) {
			int64_t ts = T0 + (int64_t)((c * 7 + r) % 5) * 1000000;

			if (r % 3 == 2)
				ts -= 86400000000LL; /* late */
			snprintf(eid, sizeof(eid), "k%d", n++);
			snprintf(cid, sizeof(cid), "cc%d", c);
			if (c % 11 == 4 && r == 2) {
				snprintf(prev, sizeof(prev), "cc%d", c + 1);
				tb_add(t, ev_alias(eid, cid, ts, prev));
			} else if (c == 38 && r == 5) {
				tb_add(t, ev_alias(eid, "cc37", ts, "cc38")); /* 39 -> 38 -> 37 */
			} else if (c == 39 && r == 4) {
				tb_add(t, ev_alias(eid, "cc38", ts, "cc39"));
			} else if ((c + r) % 9 == 0) {
				tb_add(t, ev_identify(eid, cid, ts, r % 2 ? "pro" : "free"));
			} else if ((c + r) % 4 == 0) {
				tb_add(t, ev_conv(eid, cid, ts,
				                  (c + r) % 3 ? (double)(c * r) + 0.5 : 0,
				                  c % 2 ? "lead" : ""));
			} else {
				tb_add(t, ev_touch(eid, cid, ts, chans[(c + r) % 4],
				                   (c + r) % 3 == 0 ? "spring" : ""));
			}
		}
		snprintf(eid, sizeof(eid), "big%d", r);
		tb_add(t, ev_touch(eid, "big", T0 + (int64_t)(r % 7) * 1000000, chans[r % 4], ""));
		if (r - from < 6) { /* in the first runs only, each later in time earlier */
			snprintf(eid, sizeof(eid), "early%d", r);
			tb_add(t,
			       ev_touch(eid, "early", T0 - (int64_t)r * 1000000, chans[r % 4], ""));
		}
		assert_int_equal(tb_write(s, t), TP_OK);
		tb_free(t);
	}
	/* Others last, so that the log tail holds none of the customers above. */
	for (r = 0; r < 3; r++) {
		struct tbatch *t = tb_new(40);

		for (c = 0; c < 40; c++) {
			snprintf(eid, sizeof(eid), "t%d-%d-%d", from, r, c);
			snprintf(cid, sizeof(cid), "tail%d", c);
			tb_add(t, ev_touch(eid, cid, T0 + c, chans[c % 4], ""));
		}
		assert_int_equal(tb_write(s, t), TP_OK);
		tb_free(t);
	}
}

/*
 * Quiet merges: 100 ms after the last write the compactor merges the smallest runs (the
 * largest no bigger than the others together) while more than 3 are left; the scan sees
 * the same events, and a reopened store keeps the merged runs. Without quiet_ms (every
 * other test) the runs stay as the tiers leave them.
 */
static void
test_quiet_merge(void **state)
{
	struct fx *f = *state;
	struct store_options o = {
		.path = f->dir, .nosync = 1, .run_events = 16, .merge_chunk = 7, .quiet_ms = 100
	};
	struct store_stats st, st0;
	uint64_t walked;
	char err[256];
	int i;

	nmodel = 0;
	f->s = open_store(f->dir, 0, 16);
	/*
	 * 7 groups of 20 events (a tenth of them repeats): 4 to 6 sealed segments of 16 to 40
	 * events, runs of tier 0 that no tier merge takes (8 are needed) and that the quiet rule
	 * merges whatever their order (the largest is at most the others together).
	 */
	write_random(f->s, 7, 10);
	wait_runs(f->s, SETTLED_RUNS);
	assert_int_equal(store_stats(f->s, &st0), TP_OK);
	assert_true(st0.runs >= 4 && st0.runs <= 6);
	sleep_ms(300);
	assert_int_equal(store_stats(f->s, &st), TP_OK);
	assert_int_equal(st.runs, st0.runs); /* quiet_ms 0: no quiet merge */
	check_scan(f->s, ident);
	store_close(f->s);

	/* With quiet_ms: merged down to at most 3. */
	assert_int_equal(store_open(&f->s, &o, err, sizeof(err)), TP_OK);
	for (i = 0; i < 400; i++) {
		assert_int_equal(store_stats(f->s, &st), TP_OK);
		if (st.runs <= 3 && st.merging == 0)
			break;
		sleep_ms(50);
	}
	if (st.runs > 3 || st.chunks == 0)
		fail_msg("no quiet merge: %llu runs of %llu, %llu chunks",
		         (unsigned long long)st.runs, (unsigned long long)st0.runs,
		         (unsigned long long)st.chunks);
	check_scan(f->s, ident);
	assert_int_equal(store_walk(f->s, &walked), TP_OK);
	assert_int_equal(walked, (uint64_t)nmodel);
	/*
	 * More writes (≈ 180 events): the tiers make one run of tier 1 and up to 7 of tier 0
	 * from them, and the tier-0 runs (all of about one size) merge with each other at least.
	 */
	st0 = st;
	write_random(f->s, 20, 5);
	wait_runs(f->s, SETTLED_RUNS);
	/*
	 * Settled: no merge running, and the count the same 1.5 s later (the compactor looks
	 * for a quiet merge on its tick, once a second).
	 */
	for (i = 0; i < 20; i++) {
		struct store_stats later;

		assert_int_equal(store_stats(f->s, &st), TP_OK);
		sleep_ms(1500);
		assert_int_equal(store_stats(f->s, &later), TP_OK);
		if (st.merging == 0 && later.merging == 0 && later.runs == st.runs &&
		    later.segments <= 1)
			break;
	}
	if (st.runs > st0.runs + 2)
		fail_msg("quiet merge after more writes: %llu runs (%llu before them)",
		         (unsigned long long)st.runs, (unsigned long long)st0.runs);
	check_scan(f->s, ident);
	store_close(f->s);
	f->s = open_store(f->dir, 0, 16);
	assert_int_equal(store_stats(f->s, &st0), TP_OK);
	assert_int_equal(st0.runs, st.runs);
	check_scan(f->s, ident);
	assert_int_equal(store_walk(f->s, &walked), TP_OK);
	assert_int_equal(walked, (uint64_t)nmodel);
}

static struct store *
open_store_nc(const char *dir, int no_copies)
{
	/* merges of a few records and customers a transaction: they resume between chunks */
	struct store_options o = {
		.path = dir, .nosync = 1, .run_events = 16, .merge_chunk = 7, .no_copies = no_copies
	};
	struct store *s = NULL;
	char err[256];

	if (store_open(&s, &o, err, sizeof(err)) != TP_OK)
		fail_msg("store_open: %s", err);
	return s;
}

/* Drops every copy ("run.N.c"): the store as one written before copies existed. */
static void
drop_copies(const char *dir)
{
	char path[128], names[512][64];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi main_dbi, d;
	MDB_cursor *c;
	MDB_val k, v;
	size_t n = 0, i;
	int rc;

	snprintf(path, sizeof(path), "%s/runs.mdb", dir);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 1024), 0);
	assert_int_equal(mdb_env_open(env, path, MDB_NOSUBDIR, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &main_dbi), 0);
	assert_int_equal(mdb_cursor_open(txn, main_dbi, &c), 0);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && n < 512;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 3 || k.mv_size >= sizeof(names[0]) ||
		    memcmp((char *)k.mv_data + k.mv_size - 2, ".c", 2) != 0)
			continue;
		memcpy(names[n], k.mv_data, k.mv_size);
		names[n++][k.mv_size] = 0;
	}
	mdb_cursor_close(c);
	assert_true(n > 0);
	for (i = 0; i < n; i++) {
		assert_int_equal(mdb_dbi_open(txn, names[i], 0, &d), 0);
		assert_int_equal(mdb_drop(txn, d, 1), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/*
 * Scans read the runs' copies: their stream is the runs' own, byte for byte, for a store
 * written with copies, for one whose copies are dropped (as before copies existed: read
 * from the runs, then the compactor makes them) and after more writes on top.
 */
static void
test_scan_copies(void **state)
{
	struct fx *f = *state;
	struct store_stats st;
	struct trace a, b;
	int i;

	f->s = open_store_nc(f->dir, 0);
	write_copies_store(f->s, 0, 60);
	wait_runs(f->s, SETTLED_RUNS);
	assert_int_equal(store_stats(f->s, &st), TP_OK);
	assert_true(st.runs >= 3);
	assert_int_equal(st.runs_uncopied, 0);
	a = full_scan(f->s);
	assert_non_null(strstr(a.buf, "[plan=pro]"));
	assert_true(trace_has_line(&a, "big:60 "));
	assert_true(trace_has_line(&a, "early:6 "));
	assert_false(trace_has_line(&a, "big:59 "));
	store_close(f->s);

	f->s = open_store_nc(f->dir, 1);
	b = full_scan(f->s);
	same_trace(&a, &b);
	store_close(f->s);

	drop_copies(f->dir);
	f->s = open_store_nc(f->dir, 0);
	b = full_scan(f->s); /* from the runs or the copies, as far as they are made */
	same_trace(&a, &b);
	for (i = 0; i < 600; i++) {
		assert_int_equal(store_stats(f->s, &st), TP_OK);
		if (st.runs_uncopied == 0)
			break;
		sleep_ms(50);
	}
	assert_int_equal(st.runs_uncopied, 0);
	b = full_scan(f->s);
	same_trace(&a, &b);
	free(a.buf);

	/* More rounds: new runs, merges of copied and new runs, a log tail. */
	write_copies_store(f->s, 60, 25);
	wait_runs(f->s, SETTLED_RUNS);
	a = full_scan(f->s);
	store_close(f->s);
	f->s = open_store_nc(f->dir, 1);
	b = full_scan(f->s);
	same_trace(&a, &b);
	free(a.buf);
}

struct pwriter {
	struct store *s;
	atomic_int *stop;
};

/* Groups of exactly 50 new events: every snapshot holds a multiple of 50. */
static void *
pwriter_thread(void *p)
{
	struct pwriter *pw = p;
	char eid[32], cid[32];
	int g, i;

	for (g = 0; g < 120; g++) {
		struct tbatch *t = tb_new(50);

		for (i = 0; i < 50; i++) {
			snprintf(eid, sizeof(eid), "w%d-%d", g, i);
			snprintf(cid, sizeof(cid), "u%d", (g * 50 + i) % 400);
			tb_add(t, ev_touch(eid, cid, T0 + (int64_t)g * 1000000 + i, "email", ""));
		}
		if (tb_write(pw->s, t) != TP_OK)
			fail_msg("write failed");
		tb_free(t);
	}
	*pw->stop = 1;
	return NULL;
}

/* The threads of one scan share one snapshot while the writer commits, flushes, grows. */
static void
test_scan_parts_snapshot(void **state)
{
	struct fx *f = *state;
	struct pwriter pw;
	struct trace t[STORE_SCAN_NPARTS];
	void *args[STORE_SCAN_NPARTS];
	atomic_int stop = 0;
	pthread_t th;
	uint64_t ev, last = 0;
	size_t i;
	int scans = 0;

	f->s = open_store(f->dir, 64 * 1024, 16);
	pw.s = f->s;
	pw.stop = &stop;
	assert_int_equal(pthread_create(&th, NULL, pwriter_thread, &pw), 0);
	for (;;) {
		int done = atomic_load(&stop); /* then this scan sees the last group */

		memset(t, 0, sizeof(t));
		for (i = 0; i < STORE_SCAN_NPARTS; i++)
			args[i] = &t[i];
		assert_int_equal(store_scan_parts(f->s, 4, trace_cb, NULL, args), TP_OK);
		for (i = 0, ev = 0; i < STORE_SCAN_NPARTS; i++) {
			ev += t[i].events;
			free(t[i].buf);
		}
		assert_int_equal(ev % 50, 0);
		assert_true(ev >= last);
		last = ev;
		scans++;
		if (done)
			break;
	}
	pthread_join(th, NULL);
	assert_true(scans > 1);
	assert_int_equal(last, 120 * 50);
}

/*
 * Customers are counted exactly up to 65 536, across reopens, then estimated by the
 * HyperLogLog (within 2 % here) once the exact set has been dropped.
 */
static void
test_customer_count(void **state)
{
	struct fx *f = *state;
	struct store_stats st;
	enum { PER = 10000, ROUNDS = 15 };
	char eid[32], cid[32];
	uint64_t want = 0;

	f->s = open_store(f->dir, 0, 0);
	for (int r = 0; r < ROUNDS; r++) {
		struct tbatch *t = tb_new(PER);

		for (int i = 0; i < PER; i++) {
			/* every customer twice: repeats must not count */
			int c = r * PER / 2 + i / 2;

			snprintf(eid, sizeof(eid), "e%d-%d", r, i);
			snprintf(cid, sizeof(cid), "c%d", c);
			tb_add(t, ev_touch(eid, cid, 1000000 + r * PER + i, "email", ""));
		}
		assert_int_equal(tb_write(f->s, t), TP_OK);
		tb_free(t);
		want = (uint64_t)(r + 1) * PER / 2;
		assert_int_equal(store_stats(f->s, &st), TP_OK);
		if (r == 3) {
			store_close(f->s);
			f->s = open_store(f->dir, 0, 0);
			assert_int_equal(store_stats(f->s, &st), TP_OK);
		}
		if (want <= 65536)
			assert_int_equal(st.customers, want);
		else /* HLL_P 14: 0.81 % standard error, the store's hash key random: 4 sigma */
			assert_in_range(st.customers, want - want * 33 / 1000,
			                want + want * 33 / 1000);
	}
	assert_true(want > 65536);
}

/* A backup held at its start (the options' hook) while the test writes. */
struct pause {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int paused, released, timed_out;
	struct store *s;
	const char *dir;
	int rc;
};

static void
pause_hook(void *arg)
{
	struct pause *p = arg;
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 20;
	pthread_mutex_lock(&p->mu);
	p->paused = 1;
	pthread_cond_broadcast(&p->cv);
	while (!p->released && !p->timed_out)
		if (pthread_cond_timedwait(&p->cv, &p->mu, &until) == ETIMEDOUT)
			p->timed_out = 1;
	pthread_mutex_unlock(&p->mu);
}

static void *
backup_main(void *arg)
{
	struct pause *p = arg;
	char err[256];

	p->rc = store_backup(p->s, p->dir, NULL, err, sizeof(err));
	return NULL;
}

static int
write_touches(struct store *s, const char *prefix, int from, int n)
{
	struct tbatch *t = tb_new((size_t)n);
	char eid[32], cid[16];
	int i, rc;

	for (i = from; i < from + n; i++) {
		snprintf(eid, sizeof(eid), "%s%d", prefix, i);
		snprintf(cid, sizeof(cid), "u%d", i % 5000);
		tb_add(t, ev_touch(eid, cid, T0 + i, i % 3 ? "email" : "search", "c"));
	}
	rc = tb_write(s, t);
	tb_free(t);
	return rc;
}

/*
 * A map growth waits for every transaction, a backup's copy too, and ingest waits behind
 * it: a backup makes room first, so that writes go on while it copies. The backup is held
 * at its start while more than the maps had free is written.
 */
static void
test_backup_room(void **state)
{
	struct fx *f = *state;
	struct pause p = {
		PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, NULL, NULL, -1
	};
	struct store_options o = { .path = f->dir,
		                   .map_size = 1 << 20,
		                   .nosync = 1,
		                   .run_events = 1000,
		                   .map_room = 128 << 10,
		                   .backup_pause = pause_hook,
		                   .backup_pause_arg = &p };
	struct store_stats st;
	struct store *b;
	char bdir[128], err[256];
	uint64_t map0;
	pthread_t th;
	int n = 0;

	assert_int_equal(store_open(&f->s, &o, err, sizeof(err)), TP_OK);
	for (; n < 20000; n += 1000)
		assert_int_equal(write_touches(f->s, "a", n, 1000), TP_OK);
	assert_int_equal(store_stats(f->s, &st), TP_OK);
	map0 = st.map_size;
	assert_true(map0 < (uint64_t)16 << 20); /* grown from 1 MiB by doubling */

	snprintf(bdir, sizeof(bdir), "%s/backup", f->dir);
	p.s = f->s;
	p.dir = bdir;
	assert_int_equal(pthread_create(&th, NULL, backup_main, &p), 0);
	pthread_mutex_lock(&p.mu);
	while (!p.paused)
		pthread_cond_wait(&p.cv, &p.mu);
	pthread_mutex_unlock(&p.mu);
	/* More than both maps held: a write would have waited for a growth, for the backup. */
	do {
		assert_int_equal(write_touches(f->s, "a", n, 1000), TP_OK);
		n += 1000;
		assert_int_equal(store_stats(f->s, &st), TP_OK);
	} while (st.store_bytes <= map0);
	pthread_mutex_lock(&p.mu);
	assert_false(p.timed_out); /* the writes went on while the backup held the map */
	p.released = 1;
	pthread_cond_broadcast(&p.cv);
	pthread_mutex_unlock(&p.mu);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(p.rc, TP_OK);
	assert_true(st.map_size > map0);

	/* Its copy began after those writes (the hook runs before it): it holds them all. */
	b = open_store(bdir, 0, 1000);
	assert_int_equal(store_stats(b, &st), TP_OK);
	assert_int_equal(st.events[0], (uint64_t)n);
	store_close(b);
}

/* A scan held in its first customer until released: it holds its read transaction. */
struct held {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int in, released, writes_done;
	struct store *s;
	const char *dir;
	int scan_rc, backup_rc;
};

static int
held_cb(void *arg, const char *cid, const struct attr_event *evs, size_t n)
{
	struct held *h = arg;

	(void)cid;
	(void)evs;
	(void)n;
	pthread_mutex_lock(&h->mu);
	h->in = 1;
	pthread_cond_broadcast(&h->cv);
	while (!h->released)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
	return 0;
}

static void *
held_scan_main(void *arg)
{
	struct held *h = arg;

	h->scan_rc = store_scan(h->s, held_cb, h);
	return NULL;
}

static void *
held_backup_main(void *arg)
{
	struct held *h = arg;
	char err[256];

	h->backup_rc = store_backup(h->s, h->dir, NULL, err, sizeof(err));
	return NULL;
}

static void *
held_write_main(void *arg)
{
	struct held *h = arg;

	assert_int_equal(write_touches(h->s, "w", 100000, 1000), TP_OK);
	pthread_mutex_lock(&h->mu);
	h->writes_done = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/*
 * Making a backup's room must not hold back writers while a query reads: a growth that
 * waits for readers makes every new transaction wait behind it. With a scan held open, a
 * backup starts (it cannot make room, and copies anyway) and a write must go through.
 */
static void
test_backup_room_reader(void **state)
{
	struct fx *f = *state;
	struct held h = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	struct store_options o = { .path = f->dir,
		                   .map_size = 1 << 20,
		                   .nosync = 1,
		                   .run_events = 1000,
		                   .map_room = 128 << 10 };
	struct timespec until;
	pthread_t ts, tb, tw;
	char bdir[128], err[256];
	int n, done;

	assert_int_equal(store_open(&f->s, &o, err, sizeof(err)), TP_OK);
	for (n = 0; n < 20000; n += 1000)
		assert_int_equal(write_touches(f->s, "a", n, 1000), TP_OK);
	h.s = f->s;
	snprintf(bdir, sizeof(bdir), "%s/backup", f->dir);
	h.dir = bdir;
	assert_int_equal(pthread_create(&ts, NULL, held_scan_main, &h), 0);
	pthread_mutex_lock(&h.mu);
	while (!h.in)
		pthread_cond_wait(&h.cv, &h.mu);
	pthread_mutex_unlock(&h.mu);
	assert_int_equal(pthread_create(&tb, NULL, held_backup_main, &h), 0);
	sleep_ms(200); /* the backup is trying to make room */
	assert_int_equal(pthread_create(&tw, NULL, held_write_main, &h), 0);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 3;
	pthread_mutex_lock(&h.mu);
	while (!h.writes_done && pthread_cond_timedwait(&h.cv, &h.mu, &until) == 0)
		;
	done = h.writes_done;
	h.released = 1;
	pthread_cond_broadcast(&h.cv);
	pthread_mutex_unlock(&h.mu);
	assert_int_equal(pthread_join(tw, NULL), 0);
	assert_int_equal(pthread_join(ts, NULL), 0);
	assert_int_equal(pthread_join(tb, NULL), 0);
	assert_true(done); /* within 3 s, with the scan still open */
	assert_int_equal(h.scan_rc, TP_OK);
	assert_int_equal(h.backup_rc, TP_OK); /* it copied, room or not */
}

/*
 * A file system that fills up: the write is RESOURCE_EXHAUSTED naming no space (LMDB said
 * EIO for the short write, INTERNAL to clients, who then gave up), and what was stored
 * before stays readable. Needs a tmpfs of 4 MiB (root); skipped where mount(2) is refused.
 */
static void
test_disk_full(void **state)
{
	struct fx *f = *state;
	char fs[128], dir[160], err[256] = "";
	struct store_options o = { .path = dir, .map_size = 1 << 20, .run_events = 1000 };
	struct tbatch *t;
	struct count_arg c = { 0 };
	int n = 0, rc = TP_OK;

	snprintf(fs, sizeof(fs), "%s/fs", f->dir);
	snprintf(dir, sizeof(dir), "%s/st", fs);
	assert_int_equal(mkdir(fs, 0700), 0);
	if (mount("tmpfs", fs, "tmpfs", 0, "size=4m") != 0) {
		print_message("mount tmpfs: %s: skipped\n", strerror(errno));
		skip();
	}
	assert_int_equal(store_open(&f->s, &o, err, sizeof(err)), TP_OK);
	while (n < 400000) {
		struct store_batch *b;
		char eid[32], cid[16];
		int i;

		t = tb_new(1000);
		for (i = 0; i < 1000; i++) {
			snprintf(eid, sizeof(eid), "full-%d", n + i);
			snprintf(cid, sizeof(cid), "u%d", (n + i) % 3000);
			tb_add(t, ev_touch(eid, cid, T0 + n + i, "email", "campaign"));
		}
		b = &t->b;
		rc = store_write(f->s, &b, 1, err, sizeof(err));
		tb_free(t);
		if (rc != TP_OK)
			break;
		n += 1000;
	}
	assert_int_equal(rc, TP_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(err, "No space left"));
	assert_true(n > 0);
	assert_int_equal(store_scan(f->s, count_cb, &c), TP_OK);
	assert_int_equal(c.events, (uint64_t)n);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(umount2(fs, MNT_DETACH), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compactor_nice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lean_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journey_as_of, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_identify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepared, setup, teardown),
		cmocka_unit_test(test_record_hash_vectors),
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reverse_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_runs_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quiet_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_aliases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alias_depth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alias_depth_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alias_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alias_random, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_building_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema4_upgrade, setup, teardown),
		cmocka_unit_test_setup_teardown(test_consumed_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flushed_segment_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats_backup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup_room_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_customer_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_parts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan_parts_snapshot, setup, teardown),
		cmocka_unit_test(test_compact_roundtrip),
		cmocka_unit_test(test_compact_varints),
		cmocka_unit_test_setup_teardown(test_scan_copies, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
