/*
 * store: touchpointd's durable event store, a small log-structured merge tree of LMDB
 * databases (docs/architecture.md, "The store"): an append-only log, sorted immutable runs
 * merged by a compactor thread, each with a compact copy that attribution scans read, a
 * dedup index, the name dictionary, aliases and spend.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE (map_resize) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "log.h"
#include "record.h"
#include "store.h"
#include "touchpoint/touchpoint.h"

/* 2: ids values are a second hash; 3: exact small customer counts; 4: lean records */
#define STORE_SCHEMA      5 /* 4 is opened and upgraded in place */
#define STORE_MAXDBS      1024
#define STORE_MAX_RUNS    440 /* complete + building + retired: two handles each (run, copy) */
#define STORE_FLUSH_LIMIT 400 /* above this many runs the compactor lets the log grow */
#define STORE_MAX_SEGS    32  /* log segments; past it the writer appends to the last */
#define STORE_MAX_RETIRED (2 * (STORE_MAX_RUNS + STORE_MAX_SEGS)) /* waiting to be dropped */
#define MAP_ROOM          ((size_t)64 << 20)   /* default store_options.map_room */
#define BACKUP_ROOM_POLLS 2500                 /* 2 ms each: how long a backup tries to make room */
#define STORE_FULL_BYTES  ((uint64_t)64 << 20) /* free below it, an EIO is a full disk */
#define STORE_MAX_GROUP   4000000              /* events in one store_write() */
#define STORE_MAX_PROBE   64                   /* ids: linear probes past a hash collision */
#define STORE_MAX_MEMBERS 65536                /* ids aliased into one journey */
#define SCAN_MAX_THREADS  8                    /* threads of one scan (store_scan_parts) */
#define STORE_GROW_TRIES  40
#define DROP_FORCE        16 /* retired runs that make the compactor wait for readers */
#define KEY_LEN           24 /* run key: customer hash | biased ts | seq */
#define RUNB_ID0          (UINT64_C(1) << 63) /* runs.mdb's run ids: after every main one */
#define DICT_CHUNK_BITS   12
#define DICT_CHUNK        (1u << DICT_CHUNK_BITS)
#define DICT_CHUNKS       16384
#define HLL_P             14
#define CUST_EXACT_MAX    65536 /* customers counted exactly before the HyperLogLog takes over */
#define CUST_INEXACT      UINT64_MAX
#define HLL_M             (1u << HLL_P)
#define HLL_RHO_MAX       (64 - HLL_P + 1)
#define RUN_COMPLETE      0
#define RUN_BUILDING      1
/*
 * Runs per merge: fewer rewrites of each event than 4. Overridable at build time to measure
 * the trade against the scan's wider merge (docs/BENCHMARKS.md, "Session 3").
 */
#ifndef MERGE_FANIN
#define MERGE_FANIN 8
#endif
/* Quiet merges (store_options.quiet_ms): down to this many runs; largest ≤ ratio × the rest. */
#define STORE_QUIET_RUNS  3
#define STORE_QUIET_RATIO 1
/* Records per compaction write transaction (a few ms); overridable the same way. */
#ifndef MERGE_CHUNK
#define MERGE_CHUNK 16384
#endif

/*
 * A run lives in runs.mdb or (schema-4 stores) in the main environment. A log segment
 * (islog: id is its number, "log" for 0 or "log.N") is retired the same way once flushed.
 */
struct run {
	uint64_t id;
	MDB_dbi dbi;
	MDB_dbi cdbi; /* its copy "run.N.c" (record.h), if hascopy */
	int hascopy;
	uint32_t tier;
	int inb;   /* in runs.mdb */
	int islog; /* a log segment of the main environment */
	uint64_t count;
};

struct counters {
	uint64_t events[6];
	uint64_t duplicates;
};

/* Directory entry as stored in meta under "r" + id (big-endian). */
struct dirent_v {
	uint32_t tier;
	uint32_t state;
	uint64_t count;
};

/* One event of the group being written. */
struct went {
	uint64_t tsb; /* biased timestamp */
	uint64_t h;   /* hash of event_id */
	uint64_t h2;  /* a second, independent hash of it: the ids value */
	uint32_t b, i, ord;
};

/* Names an event interns, at most STORE_NAMES, in the order of ev_names(). */
#define STORE_NAMES 4

/* See store_prepare(): one allocation, the arrays follow the header. */
struct store_prepared {
	size_t n;
	struct went *went; /* n entries in key order (went_cmp); b = 0, ord = i */
	uint64_t *cust;    /* customer id hashes, by index in the batch */
	uint64_t *names;   /* STORE_NAMES hashes of ev_names() an event, by index */
};

/* A log record with its run key decoded (customer hash, biased ts, seq); val points into the map.
 */
struct kitem {
	uint64_t kh, kt, ks;
	const uint8_t *val;
	size_t len;
};

/* What a scan keeps for the next one (store->keep); each buffer with its capacity. */
struct scan_keep {
	struct kitem *m, *tmp; /* the forest's build: the mentions and their sort's scratch */
	uint32_t *node;        /* ... each mention's node */
	size_t mcap, tcap, ncap;
	/*
	 * The forest of runs.mdb's alias trees, with its ids' names (each with a NUL) and where
	 * each scan part's ids begin; valid for the next scan while avalid and runs.mdb's
	 * "alias_gen" is agen.
	 */
	struct anode *tnodes;
	size_t tnodescap, tnn;
	char *names;
	size_t namescap;
	int avalid;
	uint64_t agen;
	size_t aabeg[STORE_SCAN_PARTS + 1];
	/* forest_pending: the trees' forest with the log's aliases on top, and its scratch */
	struct anode *nodes;
	size_t nodescap;
	uint32_t *remap;
	size_t rcap;
	uint8_t *flag;
	size_t fcap;
	struct stashed *st[SCAN_MAX_THREADS]; /* each scan thread's stash */
	size_t stcap[SCAN_MAX_THREADS];
};

struct dslot {
	uint64_t h;
	uint32_t id;
};

struct store {
	int ownfd; /* owner.lock, flocked while the store is open (own_store) */
	MDB_env *env;
	MDB_dbi log, ids, dict, dict_rev, spend, meta, cust;
	MDB_dbi alog; /* the sequence numbers of the alias events in the log's segments */
	/*
	 * runs.mdb: the compactor's merged runs, in an environment of their own so that a
	 * merge never holds the writer's LMDB lock (nor queues its commits behind fdatasync).
	 * Its meta holds its run directory and, under "x" + id, the main runs a merge consumed
	 * and that the main environment has not dropped yet.
	 */
	MDB_env *envb;
	MDB_dbi metab, aliases, alias_rev;
	/* Held by a backup while it copies, and by the compactor while it changes the runs. */
	pthread_mutex_t bmu;
	size_t map_room; /* least free map kept at open and made before a backup */
	void (*backup_pause)(void *arg);
	void *backup_pause_arg;
	uint8_t key[16];
	uint8_t key2[16]; /* key with every bit flipped: the ids value's hash */
	size_t run_events;
	int no_copies;
	size_t merge_chunk; /* records, or copy values, a compaction transaction */

	/*
	 * The gate: every transaction of this process holds it shared, because growing the
	 * map (mdb_env_set_mapsize) needs none open; growth waits for it exclusively and
	 * new entrants wait behind a pending growth. run_readers/dropping keep run handles
	 * alive while a reader may use them (mdb_drop closes a handle for everybody).
	 */
	pthread_mutex_t gmu;
	pthread_cond_t gcv;
	unsigned gactive, ggrow, run_readers;
	int gexcl, dropping;
	/* store_stats' last sizes, given while the map is being grown (gate_try_enter) */
	_Atomic uint64_t stat_bytes, stat_map;
	/* The directory's counts, published on every change so store_stats never waits for dmu */
	_Atomic uint64_t stat_runs, stat_segs, stat_uncopied, stat_merging;

	/* Directory of complete runs; held across commits that change it (see read_begin). */
	pthread_mutex_t dmu;
	struct run runs[STORE_MAX_RUNS];
	size_t nruns;
	struct run retired[STORE_MAX_RETIRED];
	size_t nretired;
	size_t nbuilding;
	/*
	 * The log's segments, oldest first; the last is the one the writer appends to. The
	 * compactor flushes the others into runs of runs.mdb; segments below nflushed are in
	 * runs (runs.mdb's "flushed"), and dropped.
	 */
	struct run segs[STORE_MAX_SEGS];
	size_t nsegs;
	uint64_t nflushed;

	/* Writer state: only store_write() touches it. */
	uint64_t next_seq, log_count, curseg;
	struct counters cnt;
	uint8_t hll[HLL_M];
	uint32_t hll_hist[HLL_RHO_MAX + 1]; /* registers by value: the estimate in 51 steps */
	int hll_dirty;
	/*
	 * Small stores count customers exactly (the `cust` set of customer hashes, cheap while
	 * it is small); past CUST_EXACT_MAX the set is dropped and the HyperLogLog answers.
	 */
	uint64_t cust_exact;
	struct dslot *dtab;
	size_t dcap; /* power of two */
	uint32_t dict_n, dict_committed;
	struct went *went, *wtmp; /* the group's dedup entries; wtmp: scratch of the merge */
	size_t went_cap, wtmp_cap;
	uint8_t enc[RECORD_PREFIX + RECORD_MAX];

	/* Names: an append-only table published with dict_pub (store_name() reads it). */
	char **dchunk[DICT_CHUNKS];
	_Atomic uint32_t dict_pub;

	/* Published statistics. */
	pthread_mutex_t smu;
	struct counters cnt_pub;
	uint64_t customers_pub;

	/* The last commit of the writer (mono_ns), and how long without one is quiet. */
	_Atomic uint64_t last_write_ns;
	uint64_t quiet_ns;

	/* Ingest waiting for LMDB's write lock: the compactor lets it go first. */
	_Atomic unsigned wwant;
	/* Where the write path's time goes (store_stats, /metrics): nanoseconds and counts. */
	_Atomic uint64_t t_wait_ns, t_commit_ns;
	_Atomic uint64_t t_chunks, t_chunk_ns, t_chunk_records;

	/*
	 * The alias forest, its buffers and the stashes of aliased customers' records, lent to
	 * one scan at a time and kept between scans: at 50 M events they are ≈ 300 MB, over
	 * glibc's 32 MiB mmap threshold, so a scan that allocated its own faulted them in
	 * afresh, the forest's on one thread before its parts could start; and the forest of
	 * the alias trees serves the next scans until a flush changes the trees. store_trim()
	 * gives them back when the daemon is idle.
	 */
	pthread_mutex_t amu;
	struct scan_keep keep;

	/* Compactor; fl/fltmp: a sealed segment's records being sorted into a run. */
	pthread_t cthr;
	struct kitem *fl, *fltmp;
	size_t fl_cap, fltmp_cap;
	int cstarted, cstop, ckick;
	/* Its nice value: cnice_low while it keeps up, cnice_base while behind (compactor_pace). */
	int cnice_low, cnice_base;
	_Atomic int cnice;
	int cnice_refused; /* raising it was refused since it last caught up */
	_Atomic uint64_t cnice_denied;
	pthread_mutex_t cmu;
	pthread_cond_t ccv;
};

/* ---- small helpers ---- */

static void
be64(uint8_t *p, uint64_t x)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (uint8_t)x;
		x >>= 8;
	}
}

static uint64_t
rd_be64(const uint8_t *p)
{
	uint64_t x;

	memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	x = __builtin_bswap64(x);
#elif !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_BIG_ENDIAN__
#error "unknown byte order"
#endif
	return x;
}

static uint32_t
rd_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void
be32(uint8_t *p, uint32_t x)
{
	p[0] = (uint8_t)(x >> 24);
	p[1] = (uint8_t)(x >> 16);
	p[2] = (uint8_t)(x >> 8);
	p[3] = (uint8_t)x;
}

static uint64_t
bias(int64_t ts)
{
	return (uint64_t)ts ^ (UINT64_C(1) << 63);
}

static int64_t
unbias(uint64_t tsb)
{
	return (int64_t)(tsb ^ (UINT64_C(1) << 63));
}

static int
status_of(int rc)
{
	switch (rc) {
	case 0:
		return TP_OK;
	case EINVAL:
		return TP_INVALID_ARGUMENT;
	case ENOSPC:
	case ENOMEM:
	case EDQUOT:
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
	case MDB_READERS_FULL:
	case MDB_DBS_FULL:
		return TP_RESOURCE_EXHAUSTED;
	default:
		return TP_INTERNAL;
	}
}

/*
 * LMDB reports a short write as EIO, and a file system that fills up mid-write gives one:
 * when little room is left, that EIO is a full disk (ENOSPC), which clients may retry.
 */
static int
disk_full(struct store *s, int rc)
{
	mdb_filehandle_t fd;
	struct statvfs v;

	if (rc != EIO || mdb_env_get_fd(s->env, &fd) != 0 || fstatvfs(fd, &v) != 0)
		return rc;
	return (uint64_t)v.f_bavail * v.f_frsize < STORE_FULL_BYTES ? ENOSPC : rc;
}

static void
set_err(char *errbuf, size_t errlen, const char *what, int rc)
{
	if (errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s: %s", what, mdb_strerror(rc));
}

static int
meta_get(MDB_txn *txn, MDB_dbi meta, const char *k, void *out, size_t len)
{
	MDB_val key = { strlen(k), (void *)k }, v;
	int rc;

	if ((rc = mdb_get(txn, meta, &key, &v)) != 0)
		return rc;
	if (v.mv_size != len)
		return MDB_CORRUPTED;
	memcpy(out, v.mv_data, len);
	return 0;
}

static int
meta_put(MDB_txn *txn, MDB_dbi meta, const char *k, const void *in, size_t len)
{
	MDB_val key = { strlen(k), (void *)k }, v = { len, (void *)in };

	return mdb_put(txn, meta, &key, &v, 0);
}

static int
dir_put(MDB_txn *txn, MDB_dbi meta, uint64_t id, uint32_t tier, uint32_t state, uint64_t count)
{
	uint8_t k[9];
	struct dirent_v d = { tier, state, count };
	MDB_val key = { sizeof(k), k }, v = { sizeof(d), &d };

	k[0] = 'r';
	be64(k + 1, id);
	return mdb_put(txn, meta, &key, &v, 0);
}

static int
dir_del(MDB_txn *txn, MDB_dbi meta, uint64_t id)
{
	uint8_t k[9];
	MDB_val key = { sizeof(k), k };

	k[0] = 'r';
	be64(k + 1, id);
	return mdb_del(txn, meta, &key, NULL);
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the gate ---- */

static void
gate_enter(struct store *s)
{
	pthread_mutex_lock(&s->gmu);
	while (s->ggrow > 0 || s->gexcl)
		pthread_cond_wait(&s->gcv, &s->gmu);
	s->gactive++;
	pthread_mutex_unlock(&s->gmu);
}

/*
 * gate_enter, but 0 at once instead of waiting while the map is to be grown: a growth
 * waits for every reader, a backup's for minutes, and status or a metrics scrape (on
 * NNG's own threads) must not wait with it.
 */
static int
gate_try_enter(struct store *s)
{
	int ok;

	pthread_mutex_lock(&s->gmu);
	if ((ok = s->ggrow == 0 && !s->gexcl))
		s->gactive++;
	pthread_mutex_unlock(&s->gmu);
	return ok;
}

static void
gate_leave(struct store *s)
{
	pthread_mutex_lock(&s->gmu);
	if (--s->gactive == 0)
		pthread_cond_broadcast(&s->gcv);
	pthread_mutex_unlock(&s->gmu);
}

/* Publishes the directory's counts for store_stats; called under dmu after each change. */
static void
dir_publish(struct store *s)
{
	size_t i, n = 0;

	for (i = 0; i < s->nruns; i++)
		n += !s->runs[i].hascopy;
	atomic_store(&s->stat_runs, s->nruns);
	atomic_store(&s->stat_segs, s->nsegs);
	atomic_store(&s->stat_uncopied, n);
	atomic_store(&s->stat_merging, s->nbuilding);
}

/* The gate alone, for a growth: waits for every transaction, and new ones wait behind. */
static void
gate_excl_enter(struct store *s)
{
	pthread_mutex_lock(&s->gmu);
	s->ggrow++;
	while (s->gactive > 0 || s->gexcl)
		pthread_cond_wait(&s->gcv, &s->gmu);
	s->ggrow--;
	s->gexcl = 1;
	pthread_mutex_unlock(&s->gmu);
}

/* The gate alone if nobody holds or waits for it now, else 0 at once: nobody waits. */
static int
gate_excl_try(struct store *s)
{
	int ok;

	pthread_mutex_lock(&s->gmu);
	if ((ok = s->gactive == 0 && !s->gexcl && s->ggrow == 0))
		s->gexcl = 1;
	pthread_mutex_unlock(&s->gmu);
	return ok;
}

/*
 * mdb_env_set_mapsize() unmaps the map before it maps the new size, and a failed mmap leaves
 * the environment without one (the next transaction crashes). So the size is tried first,
 * with the old map still there: ENOMEM (nothing changed) if the address space is short.
 */
static int
map_resize(MDB_env *env, size_t size)
{
	void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return ENOMEM;
	munmap(p, size);
	return mdb_env_set_mapsize(env, size);
}

static void
gate_excl_leave(struct store *s)
{
	pthread_mutex_lock(&s->gmu);
	s->gexcl = 0;
	pthread_cond_broadcast(&s->gcv);
	pthread_mutex_unlock(&s->gmu);
}

/*
 * Grows the map (or adopts another process's size when seen == 0) with no transaction of
 * this process open. seen is the map size the caller found full: if somebody grew it in
 * the meantime, nothing more is done.
 */
static int
grow_locked(MDB_env *env, size_t seen)
{
	MDB_envinfo info;
	int rc = 0;

	if (seen == 0) {
		rc = mdb_env_set_mapsize(env, 0);
	} else if ((rc = mdb_env_info(env, &info)) == 0 && info.me_mapsize <= seen) {
		size_t next = seen < ((size_t)1 << 30) ? seen * 2 : seen + ((size_t)1 << 30);

		rc = map_resize(env, next);
	}
	return rc;
}

static int
grow_map(struct store *s, MDB_env *env, size_t seen)
{
	int rc;

	gate_excl_enter(s);
	rc = grow_locked(env, seen);
	gate_excl_leave(s);
	return rc;
}

/*
 * grow_map() for the compactor, which no client waits on. A growth waits for every open
 * transaction and every new one waits behind it, so one queued while a query reads for
 * seconds would hold the writer back as long (the copies made runs.mdb grow often enough
 * for store_test's test_backup_room_reader to see it). So it first waits, up to
 * GROW_BG_POLLS × 2 ms, for a moment no transaction is open, as a backup's room does.
 */
#define GROW_BG_POLLS 2500
static int stopping(struct store *s);

static int
grow_map_bg(struct store *s, MDB_env *env, size_t seen)
{
	struct timespec nap = { 0, 2000000 };
	int i, rc;

	for (i = 0; i < GROW_BG_POLLS && !stopping(s); i++) {
		if (gate_excl_try(s)) {
			rc = grow_locked(env, seen);
			gate_excl_leave(s);
			return rc;
		}
		nanosleep(&nap, NULL);
	}
	return grow_map(s, env, seen);
}

/* The bytes of env's data file in use (up to its last page) and its map size. */
static int
map_usage(MDB_env *env, size_t *used, size_t *mapsize)
{
	MDB_envinfo info;
	MDB_stat st;
	int rc;

	if ((rc = mdb_env_info(env, &info)) != 0 || (rc = mdb_env_stat(env, &st)) != 0)
		return rc;
	*used = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
	*mapsize = info.me_mapsize;
	return 0;
}

/* Grows env's map to want bytes (rounded up to MiB) unless it is as large already. */
static int
map_reserve(struct store *s, MDB_env *env, size_t have, size_t want)
{
	MDB_envinfo info;
	int rc, waited;

	want = (want + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
	if (have >= want)
		return 0;
	/*
	 * Not gate_excl_enter(): a pending growth holds back every new transaction, the
	 * writer's too, for as long as a query or another backup's copy reads. Room is only
	 * worth having if nobody waits for it: poll for a moment when nobody reads.
	 */
	for (waited = 0; !gate_excl_try(s); waited++) {
		struct timespec nap = { 0, 2 * 1000000 };

		if (waited >= BACKUP_ROOM_POLLS)
			return EBUSY;
		nanosleep(&nap, NULL);
	}
	if ((rc = mdb_env_info(env, &info)) == 0 && info.me_mapsize < want)
		rc = map_resize(env, want);
	gate_excl_leave(s);
	return rc;
}

/*
 * Before a backup: a growth cannot happen while its copy pins the map, and would stop
 * ingest (whose transactions wait behind a pending growth) until the copy ends, minutes
 * for a few GB. So each map first gets room for twice what both files hold (at least
 * map_room): the copy reads all of that and writes it again, and ingest and the merges,
 * on the same disk meanwhile, cannot write more. The room is address space; the files
 * grow only as it is used.
 */
static int
backup_room(struct store *s)
{
	size_t used = 0, usedb = 0, map = 0, mapb = 0, room;
	int rc;

	gate_enter(s); /* mdb_env_info() reads the meta pages in the map */
	if ((rc = map_usage(s->env, &used, &map)) == 0)
		rc = map_usage(s->envb, &usedb, &mapb);
	gate_leave(s);
	if (rc != 0)
		return rc;
	if (used > SIZE_MAX / 8 || usedb > SIZE_MAX / 8)
		return 0;
	room = 2 * (used + usedb) > s->map_room ? 2 * (used + usedb) : s->map_room;
	if ((rc = map_reserve(s, s->env, map, used + room)) != 0)
		return rc;
	return map_reserve(s, s->envb, mapb, usedb + room);
}

/*
 * A store the map grew for is larger than map_size says: LMDB then opens it with a map
 * exactly as large as its data, and the first commit (ours, at open) would hit
 * MDB_MAP_FULL before the writer could grow anything. Give it room first.
 */
static int
open_headroom(struct store *s, MDB_env *env)
{
	size_t used, map, want;
	int rc;

	if ((rc = map_usage(env, &used, &map)) != 0)
		return rc;
	want = used + used / 4 + s->map_room;
	return map >= want ? 0 : mdb_env_set_mapsize(env, want);
}

/* mdb_env_info() reads the meta pages in the map: under the gate, like a transaction. */
static size_t
map_size(struct store *s, MDB_env *env)
{
	MDB_envinfo info;
	int rc;

	gate_enter(s);
	rc = mdb_env_info(env, &info);
	gate_leave(s);
	return rc == 0 ? info.me_mapsize : 0;
}

/*
 * A read snapshot with the list of complete runs that belongs to it: the directory mutex
 * is held while the transaction starts, and every commit that changes the directory holds
 * it too, so the run handles copied here are exactly the runs of the snapshot.
 */
struct rsnap {
	MDB_txn *txn, *txnb; /* main, then runs.mdb: begun in that order, under dmu */
	MDB_dbi dbi[STORE_MAX_RUNS];
	MDB_dbi cdbi[STORE_MAX_RUNS];
	unsigned char inb[STORE_MAX_RUNS];
	size_t n;
	int copies;                   /* every run has its copy (all in runs.mdb) */
	MDB_dbi logs[STORE_MAX_SEGS]; /* the log's segments, all in the main snapshot */
	size_t nlogs;
};

static int
read_begin(struct store *s, struct rsnap *r)
{
	MDB_env *grow;
	size_t i;
	int rc;

	for (;;) {
		gate_enter(s);
		pthread_mutex_lock(&s->gmu);
		while (s->dropping)
			pthread_cond_wait(&s->gcv, &s->gmu);
		s->run_readers++;
		pthread_mutex_unlock(&s->gmu);

		/*
		 * Main first: runs.mdb's snapshot is then the later one, and a main run it says a
		 * merge consumed is left out of the list below (dmu orders it with those commits).
		 */
		pthread_mutex_lock(&s->dmu);
		grow = s->env;
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn);
		if (rc == 0) {
			grow = s->envb;
			if ((rc = mdb_txn_begin(s->envb, NULL, MDB_RDONLY, &r->txnb)) != 0)
				mdb_txn_abort(r->txn);
		}
		if (rc == 0) {
			r->n = s->nruns;
			r->copies = !s->no_copies;
			for (i = 0; i < s->nruns; i++) {
				r->dbi[i] = s->runs[i].dbi;
				r->cdbi[i] = s->runs[i].cdbi;
				r->inb[i] = (unsigned char)s->runs[i].inb;
				r->copies &= s->runs[i].hascopy;
			}
			r->nlogs = s->nsegs;
			for (i = 0; i < s->nsegs; i++)
				r->logs[i] = s->segs[i].dbi;
		}
		pthread_mutex_unlock(&s->dmu);
		if (rc != MDB_MAP_RESIZED)
			break;
		pthread_mutex_lock(&s->gmu);
		if (--s->run_readers == 0)
			pthread_cond_broadcast(&s->gcv);
		pthread_mutex_unlock(&s->gmu);
		gate_leave(s);
		if ((rc = grow_map(s, grow, 0)) != 0)
			return rc;
	}
	if (rc != 0) {
		pthread_mutex_lock(&s->gmu);
		if (--s->run_readers == 0)
			pthread_cond_broadcast(&s->gcv);
		pthread_mutex_unlock(&s->gmu);
		gate_leave(s);
	}
	return rc;
}

static void
read_end(struct store *s, struct rsnap *r)
{
	mdb_txn_abort(r->txnb);
	mdb_txn_abort(r->txn);
	pthread_mutex_lock(&s->gmu);
	if (--s->run_readers == 0)
		pthread_cond_broadcast(&s->gcv);
	pthread_mutex_unlock(&s->gmu);
	gate_leave(s);
}

/* A write transaction under the gate; MDB_MAP_RESIZED is handled here. */
static int
write_begin(struct store *s, MDB_env *env, MDB_txn **txn)
{
	int rc;

	for (;;) {
		gate_enter(s);
		if ((rc = mdb_txn_begin(env, NULL, 0, txn)) == 0)
			return 0;
		gate_leave(s);
		if (rc != MDB_MAP_RESIZED)
			return rc;
		if ((rc = grow_map(s, env, 0)) != 0)
			return rc;
	}
}

/* The transaction a snapshot reads run i through. */
static MDB_txn *
run_txn(const struct rsnap *r, MDB_txn *txn, MDB_txn *txnb, size_t i)
{
	return r->inb[i] ? txnb : txn;
}

/* ---- dictionary ---- */

const char *
store_name(void *sp, uint32_t id)
{
	struct store *s = sp;
	uint32_t n = atomic_load_explicit(&s->dict_pub, memory_order_acquire);

	if (id == 0 || id >= n)
		return NULL;
	return s->dchunk[id >> DICT_CHUNK_BITS][id & (DICT_CHUNK - 1)];
}

/* The writer's own view, including names not yet committed. */
static const char *
dict_at(struct store *s, uint32_t id)
{
	return s->dchunk[id >> DICT_CHUNK_BITS][id & (DICT_CHUNK - 1)];
}

static int
dtab_insert(struct store *s, uint64_t h, uint32_t id)
{
	size_t i;

	if ((s->dict_n + 1) * 10 > s->dcap * 7) {
		size_t ncap = s->dcap ? s->dcap * 2 : 1024, j;
		struct dslot *nt = calloc(ncap, sizeof(*nt));

		if (nt == NULL)
			return ENOMEM;
		for (j = 0; j < s->dcap; j++) {
			if (s->dtab[j].id == 0)
				continue;
			for (i = s->dtab[j].h & (ncap - 1); nt[i].id != 0; i = (i + 1) & (ncap - 1))
				;
			nt[i] = s->dtab[j];
		}
		free(s->dtab);
		s->dtab = nt;
		s->dcap = ncap;
	}
	for (i = h & (s->dcap - 1); s->dtab[i].id != 0; i = (i + 1) & (s->dcap - 1))
		;
	s->dtab[i].h = h;
	s->dtab[i].id = id;
	return 0;
}

/* Adds a name at id s->dict_n to the in-memory table (not yet published). */
static int
dict_add_mem(struct store *s, const char *name, size_t len, uint64_t h)
{
	uint32_t id = s->dict_n, c = id >> DICT_CHUNK_BITS;
	char *d;
	int rc;

	if (c >= DICT_CHUNKS)
		return ENOSPC;
	if (s->dchunk[c] == NULL && (s->dchunk[c] = calloc(DICT_CHUNK, sizeof(char *))) == NULL)
		return ENOMEM;
	if ((d = malloc(len + 1)) == NULL)
		return ENOMEM;
	memcpy(d, name, len);
	d[len] = 0;
	s->dchunk[c][id & (DICT_CHUNK - 1)] = d;
	if ((rc = dtab_insert(s, h, id)) != 0) {
		free(d);
		s->dchunk[c][id & (DICT_CHUNK - 1)] = NULL;
		return rc;
	}
	s->dict_n++;
	return 0;
}

/* Interns name, whose keyed hash is h (store_prepare), within txn; *id = 0 for "". */
static int
intern(struct store *s, MDB_txn *txn, const char *name, uint64_t h, uint32_t *id)
{
	size_t len = name != NULL ? strlen(name) : 0, i;
	uint8_t kb[4];
	MDB_val k, v;
	int rc;

	*id = 0;
	if (len == 0)
		return 0;
	if (len > RECORD_MAX_STR)
		return EINVAL;
	for (i = h & (s->dcap - 1); s->dcap > 0 && s->dtab[i].id != 0;
	     i = (i + 1) & (s->dcap - 1)) {
		if (s->dtab[i].h == h && strcmp(dict_at(s, s->dtab[i].id), name) == 0) {
			*id = s->dtab[i].id;
			return 0;
		}
	}
	be32(kb, s->dict_n);
	k.mv_size = len;
	k.mv_data = (void *)name;
	v.mv_size = 4;
	v.mv_data = kb;
	if ((rc = mdb_put(txn, s->dict, &k, &v, MDB_NOOVERWRITE)) != 0)
		return rc == MDB_KEYEXIST ? MDB_CORRUPTED : rc;
	k.mv_size = 4;
	k.mv_data = kb;
	v.mv_size = len + 1;
	v.mv_data = (void *)name;
	if ((rc = mdb_put(txn, s->dict_rev, &k, &v, MDB_APPEND)) != 0)
		return rc;
	*id = s->dict_n;
	return dict_add_mem(s, name, len, h);
}

/* After an aborted write: forget the names of that transaction. */
static void
dict_rollback(struct store *s)
{
	uint32_t id;
	size_t j;

	if (s->dict_n == s->dict_committed)
		return;
	atomic_store_explicit(&s->dict_pub, s->dict_committed, memory_order_release);
	for (id = s->dict_committed; id < s->dict_n; id++) {
		free(s->dchunk[id >> DICT_CHUNK_BITS][id & (DICT_CHUNK - 1)]);
		s->dchunk[id >> DICT_CHUNK_BITS][id & (DICT_CHUNK - 1)] = NULL;
	}
	s->dict_n = s->dict_committed;
	memset(s->dtab, 0, s->dcap * sizeof(*s->dtab));
	/* Reinsertion cannot need to grow: the table was large enough for more. */
	for (id = 1; id < s->dict_n; id++) {
		const char *n = dict_at(s, id);
		uint64_t h = record_hash(s->key, n, strlen(n));

		for (j = h & (s->dcap - 1); s->dtab[j].id != 0; j = (j + 1) & (s->dcap - 1))
			;
		s->dtab[j].h = h;
		s->dtab[j].id = id;
	}
}

/* ---- HyperLogLog of customer hashes ---- */

static void
hll_add(struct store *s, uint64_t h)
{
	uint32_t idx = (uint32_t)(h >> (64 - HLL_P));
	uint64_t w = h << HLL_P;
	uint8_t rho = w == 0 ? (uint8_t)(64 - HLL_P + 1) : (uint8_t)(__builtin_clzll(w) + 1);

	if (rho > s->hll[idx]) {
		s->hll_hist[s->hll[idx]]--;
		s->hll_hist[rho]++;
		s->hll[idx] = rho;
		s->hll_dirty = 1;
	}
}

static void
hll_hist_build(struct store *s)
{
	unsigned i;

	memset(s->hll_hist, 0, sizeof(s->hll_hist));
	for (i = 0; i < HLL_M; i++) {
		if (s->hll[i] > HLL_RHO_MAX) /* not from hll_add: keep hll_add's indexes valid */
			s->hll[i] = HLL_RHO_MAX;
		s->hll_hist[s->hll[i]]++;
	}
}

/*
 * From the registers' histogram, not the 16 Ki registers: the writer publishes the
 * estimate after every commit, and the register loop was ≈ 5 % of its CPU at 50 M stored.
 */
static uint64_t
hll_estimate(const uint32_t *hist)
{
	double m = HLL_M, sum = 0, e;
	unsigned zeros = hist[0], k;

	for (k = 0; k <= HLL_RHO_MAX; k++)
		sum += ldexp((double)hist[k], -(int)k);
	e = (0.7213 / (1 + 1.079 / m)) * m * m / sum;
	/* Linear counting while it is the better estimate: exact in practice for small n. */
	if (e <= 2.5 * m && zeros > 0)
		e = m * log(m / zeros);
	return (uint64_t)llround(e);
}

/* ---- writing ---- */

static int
went_cmp(const void *a, const void *b)
{
	const struct went *x = a, *y = b;

	if (x->tsb != y->tsb)
		return x->tsb < y->tsb ? -1 : 1;
	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

static int
kitem_less(const struct kitem *a, const struct kitem *b)
{
	if (a->kh != b->kh)
		return a->kh < b->kh;
	if (a->kt != b->kt)
		return a->kt < b->kt;
	return a->ks < b->ks;
}

static int
kitem_cmp(const void *a, const void *b)
{
	return kitem_less(a, b) ? -1 : kitem_less(b, a);
}

/*
 * Sorts a[0..n) by run key; tmp holds n items. Four stable byte passes over the top 32 bits
 * of the customer hash, then each stretch of equal top bits is put in full order: input in
 * log (seq) order leaves those stretches short and nearly sorted, so this is a few linear
 * passes where qsort() cost 150 ns an item. Stretches that are long and unsorted (one
 * customer's events sent far out of time order) still get O(n log n).
 */
static void
kitem_sort(struct kitem *a, struct kitem *tmp, size_t n)
{
	struct kitem *src = a, *dst = tmp, *t;
	size_t cnt[256], i, j, sum;
	unsigned shift;

	for (shift = 32; shift < 64; shift += 8) {
		memset(cnt, 0, sizeof(cnt));
		for (i = 0; i < n; i++)
			cnt[(src[i].kh >> shift) & 0xff]++;
		for (i = 0, sum = 0; i < 256; i++) {
			size_t c = cnt[i];

			cnt[i] = sum;
			sum += c;
		}
		for (i = 0; i < n; i++)
			dst[cnt[(src[i].kh >> shift) & 0xff]++] = src[i];
		t = src;
		src = dst;
		dst = t;
	}
	/* four passes: the result is back in a */
	for (i = 0; i < n; i = j) {
		int sorted = 1;

		for (j = i + 1; j < n && a[j].kh >> 32 == a[i].kh >> 32; j++)
			sorted &= !kitem_less(&a[j], &a[j - 1]);
		if (sorted)
			continue;
		if (j - i <= 32) {
			size_t x, y;

			for (x = i + 1; x < j; x++) {
				struct kitem v = a[x];

				for (y = x; y > i && kitem_less(&v, &a[y - 1]); y--)
					a[y] = a[y - 1];
				a[y] = v;
			}
		} else {
			qsort(a + i, j - i, sizeof(*a), kitem_cmp);
		}
	}
}

/*
 * Dedup: key (biased ts, event_id hash + probe), value a second 64-bit hash of the
 * event_id: the pair identifies it (a false duplicate needs a 128-bit collision within one
 * microsecond) and keeps the tree small. A different second hash under the same key (a
 * collision of the first) moves to the next probe. c is one cursor on ids for the whole
 * group, fed in key order, so that LMDB finds most keys on the page it is already on.
 */
static int
dedup(MDB_cursor *c, const struct went *w, int *dup)
{
	uint8_t kb[16], vb[8];
	MDB_val k = { sizeof(kb), kb }, v;
	unsigned p;
	int rc;

	be64(kb, w->tsb);
	memcpy(vb, &w->h2, 8);
	for (p = 0; p < STORE_MAX_PROBE; p++) {
		be64(kb + 8, w->h + p);
		v.mv_size = sizeof(vb);
		v.mv_data = vb;
		rc = mdb_cursor_put(c, &k, &v, MDB_NOOVERWRITE);
		if (rc == 0) {
			*dup = 0;
			return 0;
		}
		if (rc != MDB_KEYEXIST)
			return rc;
		if (v.mv_size == sizeof(vb) && memcmp(v.mv_data, vb, sizeof(vb)) == 0) {
			*dup = 1;
			return 0;
		}
	}
	return MDB_CORRUPTED;
}

static int
grow_buf(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *np;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : 64;
	while (ncap < need)
		ncap *= 2;
	if ((np = realloc(*p, ncap * elem)) == NULL)
		return ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

/* ---- aliases ----
 *
 * The alias trees (aliases: previous id -> id with its NUL; alias_rev: id -> previous ids)
 * live in runs.mdb. The compactor brings them up to date when it flushes a log segment,
 * from that segment's alias events in sequence order: a random-keyed tree would cost the
 * writer a page or two per alias (session 6: ≈ 45 % of the pages it wrote). The alias
 * events of the segments not flushed yet, which every snapshot reads anyway, each reader
 * applies on top (struct apend), in the same order and by the same rule (alias_rule).
 */
struct apedge {
	const char *prev, *cust; /* NUL-terminated views into the main map */
	size_t pl, cl;
	uint64_t h; /* of prev */
};

struct apend {
	struct apedge *e;
	size_t n, cap;
	size_t *tab; /* open addressing over e by prev, SIZE_MAX = empty; a power of two */
	size_t tcap;
};

static int
apend_find(struct store *s, const struct apend *ap, const char *id, size_t len, size_t *at)
{
	uint64_t h;
	size_t i, x;

	if (ap == NULL || ap->n == 0)
		return MDB_NOTFOUND;
	h = record_hash(s->key, id, len);
	for (i = h & (ap->tcap - 1);; i = (i + 1) & (ap->tcap - 1)) {
		if ((x = ap->tab[i]) == SIZE_MAX)
			return MDB_NOTFOUND;
		if (ap->e[x].h == h && ap->e[x].pl == len && memcmp(ap->e[x].prev, id, len) == 0) {
			*at = x;
			return 0;
		}
	}
}

static int
apend_add(struct store *s, struct apend *ap, const char *prev, size_t pl, const char *cust,
          size_t cl)
{
	size_t i, x;
	int rc;

	if ((rc = grow_buf((void **)&ap->e, &ap->cap, ap->n + 1, sizeof(*ap->e))) != 0)
		return rc;
	ap->e[ap->n] = (struct apedge){ prev, cust, pl, cl, record_hash(s->key, prev, pl) };
	ap->n++;
	if (ap->n * 2 > ap->tcap) {
		size_t ncap = ap->tcap ? ap->tcap * 2 : 64, *nt = malloc(ncap * sizeof(*nt));

		if (nt == NULL)
			return ENOMEM;
		free(ap->tab);
		ap->tab = nt;
		ap->tcap = ncap;
		for (i = 0; i < ncap; i++)
			nt[i] = SIZE_MAX;
		x = 0;
	} else {
		x = ap->n - 1;
	}
	for (; x < ap->n; x++) {
		for (i = ap->e[x].h & (ap->tcap - 1); ap->tab[i] != SIZE_MAX;
		     i = (i + 1) & (ap->tcap - 1))
			;
		ap->tab[i] = x;
	}
	return 0;
}

static void
apend_free(struct apend *ap)
{
	free(ap->e);
	free(ap->tab);
	memset(ap, 0, sizeof(*ap));
}

/* One step along an alias chain: *k becomes what it points to, or MDB_NOTFOUND. */
static int
alias_next(struct store *s, MDB_txn *txnb, const struct apend *ap, MDB_val *k)
{
	MDB_val v;
	size_t at;
	int rc;

	/* Never in both: runs.mdb's trees hold the older aliases, and the first one wins. */
	if (apend_find(s, ap, k->mv_data, k->mv_size, &at) == 0) {
		k->mv_data = (void *)ap->e[at].cust;
		k->mv_size = ap->e[at].cl;
		return 0;
	}
	if ((rc = mdb_get(txnb, s->aliases, k, &v)) != 0)
		return rc;
	if (v.mv_size < 1)
		return MDB_CORRUPTED;
	k->mv_size = v.mv_size - 1; /* values keep their NUL */
	k->mv_data = v.mv_data;
	return 0;
}

/*
 * What an alias rule has learnt of the forest while it applies one segment's aliases (the
 * compactor's flush) or a snapshot's unflushed ones (a reader): the ids met so far, each with
 * a known ancestor. An id's parent never changes once it has one (the first alias wins) and
 * the trees only grow, so an ancestor stays one: a walk jumps along them and points every id
 * it passed at the root it found (path compression). Without it the rule walked every hop of
 * cust's chain: a chain built root first cost n²/2 steps (a bound of 1 024 hops capped that,
 * and broke deeper chains).
 */
struct ament {
	const char *name;
	size_t len;
	uint64_t h;
	size_t up; /* an ancestor's entry, AM_ROOT (none, so far) or AM_UNKNOWN */
	int own;   /* name is a copy */
};

#define AM_ROOT    SIZE_MAX
#define AM_UNKNOWN (SIZE_MAX - 1)

struct amemo {
	struct ament *e;
	size_t n, cap;
	size_t *tab; /* open addressing over e by name, SIZE_MAX = empty; a power of two */
	size_t tcap;
	int copy; /* copy names: a write transaction's values move when it writes */
};

static void
amemo_free(struct amemo *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (m->e[i].own)
			free((void *)m->e[i].name);
	free(m->e);
	free(m->tab);
	memset(m, 0, sizeof(*m));
}

static void
amemo_slot(struct amemo *m, size_t x)
{
	size_t i;

	for (i = m->e[x].h & (m->tcap - 1); m->tab[i] != SIZE_MAX; i = (i + 1) & (m->tcap - 1))
		;
	m->tab[i] = x;
}

/* The entry of id, added (AM_UNKNOWN) if it is new. */
static int
amemo_get(struct store *s, struct amemo *m, const char *id, size_t len, size_t *x)
{
	uint64_t h = record_hash(s->key, id, len);
	struct ament *e;
	size_t i;
	int rc;

	for (i = h & (m->tcap - 1); m->tcap > 0 && m->tab[i] != SIZE_MAX;
	     i = (i + 1) & (m->tcap - 1)) {
		e = &m->e[m->tab[i]];
		if (e->h == h && e->len == len && memcmp(e->name, id, len) == 0) {
			*x = m->tab[i];
			return 0;
		}
	}
	if ((rc = grow_buf((void **)&m->e, &m->cap, m->n + 1, sizeof(*m->e))) != 0)
		return rc;
	e = &m->e[m->n];
	*e = (struct ament){ id, len, h, AM_UNKNOWN, 0 };
	if (m->copy) {
		char *c = malloc(len + 1);

		if (c == NULL)
			return ENOMEM;
		memcpy(c, id, len);
		c[len] = 0;
		e->name = c;
		e->own = 1;
	}
	*x = m->n++;
	if (m->n * 2 > m->tcap) {
		size_t ncap = m->tcap ? m->tcap * 2 : 64, *nt = malloc(ncap * sizeof(*nt));

		if (nt == NULL)
			return ENOMEM;
		free(m->tab);
		m->tab = nt;
		m->tcap = ncap;
		for (i = 0; i < ncap; i++)
			nt[i] = SIZE_MAX;
		for (i = 0; i < m->n; i++)
			amemo_slot(m, i);
	} else {
		amemo_slot(m, *x);
	}
	return 0;
}

/* The entry of the root of x's chain (*r), through the trees and ap where m does not know. */
static int
amemo_root(struct store *s, struct amemo *m, MDB_txn *txnb, const struct apend *ap, size_t x,
           size_t *r)
{
	MDB_val k;
	size_t y, z, up, steps;
	int rc;

	for (y = x, steps = 0; m->e[y].up != AM_ROOT; y = m->e[y].up) {
		/* Each step meets another entry, but in a cycle (no rule makes one). */
		if (++steps > m->n)
			return MDB_CORRUPTED;
		if (m->e[y].up != AM_UNKNOWN)
			continue;
		k.mv_size = m->e[y].len;
		k.mv_data = (void *)m->e[y].name;
		if ((rc = alias_next(s, txnb, ap, &k)) == MDB_NOTFOUND) {
			m->e[y].up = AM_ROOT;
			break;
		}
		if (rc != 0 || (rc = amemo_get(s, m, k.mv_data, k.mv_size, &up)) != 0)
			return rc;
		m->e[y].up = up;
	}
	for (z = x; z != y; z = up) {
		up = m->e[z].up;
		m->e[z].up = y;
	}
	*r = y;
	return 0;
}

/*
 * Whether alias(prev -> cust) joins the two (*ok): not when either is empty or they are
 * the same, not when prev already has an alias (the first one wins), not when cust's chain
 * leads back to prev (that would close a cycle). Chains of any depth are joined: every
 * reader walks to the root, so no bound is needed, and one here would also have to count
 * the ids already under prev. If so, m learns that prev is now under cust's root.
 */
static int
alias_rule(struct store *s, struct amemo *m, MDB_txn *txnb, const struct apend *ap,
           const char *prev, size_t pl, const char *cust, size_t cl, int *ok)
{
	size_t p, c, r;
	int rc;

	*ok = 0;
	if (pl == 0 || cl == 0 || (pl == cl && memcmp(prev, cust, pl) == 0))
		return 0;
	/* If prev has no alias yet it is a root: cust is under it iff cust's root is prev. */
	if ((rc = amemo_get(s, m, prev, pl, &p)) != 0 ||
	    (rc = amemo_root(s, m, txnb, ap, p, &r)) != 0 || r != p)
		return rc;
	if ((rc = amemo_get(s, m, cust, cl, &c)) != 0 ||
	    (rc = amemo_root(s, m, txnb, ap, c, &r)) != 0 || r == p)
		return rc;
	m->e[p].up = r;
	*ok = 1;
	return 0;
}

/*
 * Root of id's alias chain; *root points into a map or is id itself. Any depth: a chain has
 * at most as many hops as there are aliases, so a longer walk is a cycle, which no rule made.
 */
static int
alias_root(struct store *s, MDB_txn *txnb, const struct apend *ap, const char *id, size_t len,
           MDB_val *root)
{
	MDB_val k = { len, (void *)id };
	MDB_stat st;
	size_t hops;
	int rc;

	*root = k;
	if ((rc = mdb_stat(txnb, s->aliases, &st)) != 0)
		return rc;
	for (hops = 0; hops <= st.ms_entries + (ap != NULL ? ap->n : 0); hops++) {
		if ((rc = alias_next(s, txnb, ap, &k)) == MDB_NOTFOUND)
			return 0;
		if (rc != 0)
			return rc;
		*root = k;
	}
	return MDB_CORRUPTED;
}

typedef int (*alias_fn)(struct store *s, void *arg, const struct record *r);

/* Calls fn with the log record (k, v) if it is an alias event. */
static int
alias_event(struct store *s, const MDB_val *k, const MDB_val *v, alias_fn fn, void *arg)
{
	struct record r;
	const void *rec;
	size_t rlen;
	uint64_t cust;
	int64_t ts;

	if (k->mv_size != 8 ||
	    record_prefix_get(v->mv_data, v->mv_size, &cust, &ts, &rec, &rlen) != 0)
		return MDB_CORRUPTED;
	if (record_kind(rec, rlen) != ATTR_ALIAS)
		return 0;
	if (record_parse(rec, rlen, cust, ts, rd_be64(k->mv_data), &r) != 0)
		return MDB_CORRUPTED;
	return fn(s, arg, &r);
}

/* Calls fn for every alias event of a log segment, in sequence order. */
static int
alias_events(struct store *s, MDB_txn *txn, MDB_dbi seg, alias_fn fn, void *arg)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, seg, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		if ((rc = alias_event(s, &k, &v, fn, arg)) != 0)
			break;
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

struct alias_arg {
	struct apend *ap; /* NULL: the compactor's flush */
	MDB_txn *txnb;
	struct amemo m;
	size_t puts; /* the flush's aliases written into the trees */
};

/*
 * alias_fn of the compactor's flush: into runs.mdb's trees, in its write transaction (txnb),
 * and of a reader: into its apend, on top of the trees of its snapshot.
 */
static int
apply_alias(struct store *s, void *argp, const struct record *r)
{
	struct alias_arg *a = argp;
	const char *prev = r->str[REC_PREVIOUS_ID], *cust = r->str[REC_CUSTOMER_ID];
	size_t pl = r->len[REC_PREVIOUS_ID], cl = r->len[REC_CUSTOMER_ID];
	MDB_val k = { pl, (void *)prev }, v = { cl + 1, (void *)cust };
	int rc, ok;

	if ((rc = alias_rule(s, &a->m, a->txnb, a->ap, prev, pl, cust, cl, &ok)) != 0 || !ok)
		return rc;
	if (a->ap != NULL)
		return apend_add(s, a->ap, prev, pl, cust, cl);
	if ((rc = mdb_put(a->txnb, s->aliases, &k, &v, 0)) != 0)
		return rc;
	a->puts++;
	k.mv_size = cl;
	k.mv_data = (void *)cust;
	v.mv_size = pl;
	v.mv_data = (void *)prev;
	return mdb_put(a->txnb, s->alias_rev, &k, &v, 0);
}

/* runs.mdb's count of the flushes that changed its alias trees, as txnb sees it (0: none). */
static int
alias_gen(struct store *s, MDB_txn *txnb, uint64_t *gen)
{
	int rc = meta_get(txnb, s->metab, "alias_gen", gen, sizeof(*gen));

	if (rc == MDB_NOTFOUND)
		*gen = 0;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * The compactor's flush: the alias events of log segment seg (read in rtxn) into txn. A flush
 * that changes the trees counts "alias_gen" up in the same transaction, so a scan's snapshot
 * tells whether a forest loaded before is still its own.
 */
static int
flush_aliases(struct store *s, MDB_txn *rtxn, MDB_dbi seg, MDB_txn *txn)
{
	struct alias_arg a = { NULL, txn, { .copy = 1 }, 0 };
	uint64_t gen;
	int rc = alias_events(s, rtxn, seg, apply_alias, &a);

	amemo_free(&a.m);
	if (rc != 0 || a.puts == 0)
		return rc;
	if ((rc = alias_gen(s, txn, &gen)) != 0)
		return rc;
	gen++;
	return meta_put(txn, s->metab, "alias_gen", &gen, sizeof(gen));
}

/*
 * The aliases of a snapshot's unflushed segments, applied on top of its runs.mdb trees:
 * alog lists their sequence numbers, so only those records are read, not the segments.
 */
static int
apend_build(struct store *s, const struct rsnap *snap, struct apend *ap)
{
	struct alias_arg a = { ap, snap->txnb, { .copy = 0 }, 0 };
	MDB_cursor *c = NULL;
	MDB_val k, v, lo = { 0, NULL };
	size_t i;
	int rc = 0;

	memset(ap, 0, sizeof(*ap));
	/* From the first event of the oldest segment: alog keeps flushed ones a while. */
	for (i = 0; i < snap->nlogs && lo.mv_data == NULL; i++) {
		if ((rc = mdb_cursor_open(snap->txn, snap->logs[i], &c)) != 0)
			return rc;
		if ((rc = mdb_cursor_get(c, &lo, &v, MDB_FIRST)) == MDB_NOTFOUND)
			lo.mv_data = NULL;
		else if (rc != 0)
			break;
		mdb_cursor_close(c);
		c = NULL;
	}
	if (c != NULL)
		mdb_cursor_close(c);
	if ((rc != 0 && rc != MDB_NOTFOUND) || lo.mv_data == NULL)
		return rc == MDB_NOTFOUND ? 0 : rc;
	if ((rc = mdb_cursor_open(snap->txn, s->alog, &c)) != 0)
		return rc;
	k = lo;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		for (i = 0; i < snap->nlogs; i++)
			if ((rc = mdb_get(snap->txn, snap->logs[i], &k, &v)) != MDB_NOTFOUND)
				break;
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0 || (rc = alias_event(s, &k, &v, apply_alias, &a)) != 0)
			break;
	}
	mdb_cursor_close(c);
	amemo_free(&a.m);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Appends one log segment's records to *items (values point into the map). */
static int
log_read(MDB_txn *txn, MDB_dbi seg, struct kitem **items, size_t *cap, size_t *n)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, seg, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct kitem *it;
		const void *rec;
		size_t rlen;
		uint64_t cust;
		int64_t ts;

		/* The run key is the prefix and the log key; the run value is what follows. */
		if (k.mv_size != 8 ||
		    record_prefix_get(v.mv_data, v.mv_size, &cust, &ts, &rec, &rlen) != 0) {
			rc = MDB_CORRUPTED;
			break;
		}
		if ((rc = grow_buf((void **)items, cap, *n + 1, sizeof(**items))) != 0)
			break;
		it = &(*items)[(*n)++];
		it->kh = cust;
		it->kt = bias(ts);
		it->ks = rd_be64(k.mv_data);
		it->val = rec;
		it->len = rlen;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * Reads every record of the given log segments into *items, sorted by run key; values
 * point into the map. tmp is scratch for the sort.
 */
static int
log_sorted(MDB_txn *txn, const MDB_dbi *seg, size_t nseg, struct kitem **items, size_t *cap,
           struct kitem **tmp, size_t *tcap, size_t *n)
{
	size_t i;
	int rc = 0;

	*n = 0;
	for (i = 0; i < nseg && rc == 0; i++)
		rc = log_read(txn, seg[i], items, cap, n);
	if (rc != 0)
		return rc;
	if ((rc = grow_buf((void **)tmp, tcap, *n + 1, sizeof(**tmp))) != 0)
		return rc;
	kitem_sort(*items, *tmp, *n);
	return 0;
}

/* The name of log segment k: "log" (as schema 4 named the log), then "log.N". */
static void
seg_name(char *buf, size_t len, uint64_t k)
{
	if (k == 0)
		snprintf(buf, len, "log");
	else
		snprintf(buf, len, "log.%" PRIu64, k);
}
static int
spend_day(const Touchpoint__V1__Event *ev, int32_t *day)
{
	if (ev->spend->day != NULL && ev->spend->day[0] != 0)
		return record_parse_day(ev->spend->day, day) == 0 ? 0 : EINVAL;
	*day = record_day_of(ev->timestamp_us);
	return 0;
}

/* Stores one new event (not a duplicate) in txn. */
/* Counts a customer hash in the exact set while the set is small (see cust_exact). */
static int
cust_count(struct store *s, MDB_txn *txn, uint64_t h)
{
	MDB_val k = { 8, &h }, v = { 0, NULL };
	int rc;

	rc = mdb_put(txn, s->cust, &k, &v, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST)
		return 0;
	if (rc != 0)
		return rc;
	if (++s->cust_exact > CUST_EXACT_MAX) {
		s->cust_exact = CUST_INEXACT;
		return mdb_drop(txn, s->cust, 0);
	}
	return 0;
}

static uint64_t
customers_now(const struct store *s)
{
	return s->cust_exact != CUST_INEXACT ? s->cust_exact : hll_estimate(s->hll_hist);
}

/* A conversion without a name is stored as "conversion" (SPEC §2), flagged as defaulted. */
static int
conv_unnamed(const Touchpoint__V1__Conversion *c)
{
	return c->name == NULL || c->name[0] == 0;
}

/*
 * The names ev interns, in a fixed order per kind (NULL: none); store_prepare() hashes
 * them and put_event() interns them with those hashes.
 */
static void
ev_names(const Touchpoint__V1__Event *ev, const char *nm[STORE_NAMES])
{
	memset(nm, 0, STORE_NAMES * sizeof(*nm));
	switch (ev->kind_case) {
	case TOUCHPOINT__V1__EVENT__KIND_TOUCH:
		if (ev->touch == NULL)
			break;
		nm[0] = ev->touch->channel;
		nm[1] = ev->touch->campaign;
		nm[2] = ev->touch->source;
		nm[3] = ev->touch->medium;
		break;
	case TOUCHPOINT__V1__EVENT__KIND_CONVERSION:
		if (ev->conversion == NULL)
			break;
		nm[0] = conv_unnamed(ev->conversion) ? "conversion" : ev->conversion->name;
		nm[1] = ev->conversion->currency;
		break;
	case TOUCHPOINT__V1__EVENT__KIND_SPEND:
		if (ev->spend == NULL)
			break;
		nm[0] = ev->spend->channel;
		nm[1] = ev->spend->campaign;
		nm[2] = ev->spend->currency;
		break;
	default:
		break;
	}
}

static int
put_event(struct store *s, MDB_txn *txn, const Touchpoint__V1__Event *ev, uint64_t seq,
          uint64_t cust, const uint64_t *nh)
{
	const char *nm[STORE_NAMES];
	struct record_ids ids = { 0 };
	const char *cid = ev->customer_id != NULL ? ev->customer_id : "";
	uint8_t kb[12];
	MDB_val k, v;
	size_t len;
	int rc = 0, kind = 0;

	ids.seq = seq;
	ids.cust = cust;
	ev_names(ev, nm);
	switch (ev->kind_case) {
	case TOUCHPOINT__V1__EVENT__KIND_TOUCH:
		kind = ATTR_TOUCH;
		if ((rc = intern(s, txn, nm[0], nh[0], &ids.channel)) != 0 ||
		    (rc = intern(s, txn, nm[1], nh[1], &ids.campaign)) != 0 ||
		    (rc = intern(s, txn, nm[2], nh[2], &ids.source)) != 0 ||
		    (rc = intern(s, txn, nm[3], nh[3], &ids.medium)) != 0)
			return rc;
		break;
	case TOUCHPOINT__V1__EVENT__KIND_CONVERSION:
		kind = ATTR_CONVERSION;
		ids.name_default = conv_unnamed(ev->conversion);
		if ((rc = intern(s, txn, nm[0], nh[0], &ids.name)) != 0 ||
		    (rc = intern(s, txn, nm[1], nh[1], &ids.currency)) != 0)
			return rc;
		break;
	case TOUCHPOINT__V1__EVENT__KIND_IDENTIFY:
		kind = ATTR_IDENTIFY;
		break;
	case TOUCHPOINT__V1__EVENT__KIND_ALIAS:
		kind = ATTR_ALIAS;
		/* The alias trees follow at the flush of this segment (see "aliases"). */
		if (ev->alias->previous_id == NULL)
			return EINVAL;
		break;
	case TOUCHPOINT__V1__EVENT__KIND_SPEND:
		kind = ATTR_SPEND;
		if ((rc = spend_day(ev, &ids.day)) != 0 ||
		    (rc = intern(s, txn, nm[0], nh[0], &ids.channel)) != 0 ||
		    (rc = intern(s, txn, nm[1], nh[1], &ids.campaign)) != 0 ||
		    (rc = intern(s, txn, nm[2], nh[2], &ids.currency)) != 0)
			return rc;
		break;
	default:
		return EINVAL;
	}
	if (kind != ATTR_SPEND && cid[0] == 0)
		return EINVAL;
	record_prefix_put(s->enc, ids.cust, ev->timestamp_us);
	if (record_encode(ev, &ids, s->enc + RECORD_PREFIX, sizeof(s->enc) - RECORD_PREFIX, &len) !=
	    0)
		return EINVAL;
	v.mv_size = RECORD_PREFIX + len;
	v.mv_data = s->enc;
	if (kind == ATTR_SPEND) {
		be32(kb, (uint32_t)ids.day ^ UINT32_C(0x80000000));
		be64(kb + 4, seq);
		k.mv_size = 12;
		k.mv_data = kb;
		rc = mdb_put(txn, s->spend, &k, &v, 0);
	} else {
		be64(kb, seq);
		k.mv_size = 8;
		k.mv_data = kb;
		if ((rc = mdb_put(txn, s->log, &k, &v, MDB_APPEND)) == 0)
			s->log_count++;
		if (rc == 0 && kind == ATTR_ALIAS) {
			v.mv_size = 0;
			rc = mdb_put(txn, s->alog, &k, &v, MDB_APPEND);
		}
		hll_add(s, ids.cust);
		if (rc == 0 && s->cust_exact != CUST_INEXACT)
			rc = cust_count(s, txn, ids.cust);
	}
	if (rc == 0) {
		s->cnt.events[kind]++;
		s->cnt.events[0]++;
	}
	return rc;
}

/* Snapshot of the writer's state, restored when a transaction is aborted. */
struct wsnap {
	uint64_t next_seq, log_count;
	MDB_dbi log;
	struct counters cnt;
	uint64_t cust_exact;
	int hll_dirty;
	uint8_t hll[HLL_M];
};

/* One attempt at writing the group; returns an LMDB/errno code. */
static int
write_group(struct store *s, struct store_batch *const *batches,
            const struct store_prepared *const *prep, size_t nb, size_t total, struct wsnap *ws,
            int *sealed)
{
	struct run newseg;
	MDB_txn *txn = NULL;
	MDB_cursor *ic = NULL;
	size_t j, i;
	uint32_t dups = 0;
	int rc, dup, dirlock = 0;
	uint64_t t0 = mono_ns();

	*sealed = 0;
	atomic_fetch_add(&s->wwant, 1);
	rc = write_begin(s, s->env, &txn);
	atomic_fetch_sub(&s->wwant, 1);
	if (rc != 0)
		return rc;
	atomic_fetch_add(&s->t_wait_ns, mono_ns() - t0);
	ws->next_seq = s->next_seq;
	ws->log_count = s->log_count;
	ws->log = s->log;
	ws->cnt = s->cnt;
	ws->cust_exact = s->cust_exact;
	ws->hll_dirty = s->hll_dirty;
	memcpy(ws->hll, s->hll, HLL_M);

	/*
	 * A full segment is sealed: this group starts the next one, and the compactor sorts
	 * the sealed one into a run of runs.mdb, off this thread and this lock.
	 */
	if (s->log_count >= s->run_events) {
		char name[32];

		pthread_mutex_lock(&s->dmu);
		j = s->nsegs;
		pthread_mutex_unlock(&s->dmu);
		if (j < STORE_MAX_SEGS) {
			seg_name(name, sizeof(name), s->curseg + 1);
			memset(&newseg, 0, sizeof(newseg));
			if ((rc = mdb_dbi_open(txn, name, MDB_CREATE, &newseg.dbi)) != 0)
				goto fail;
			newseg.id = s->curseg + 1;
			newseg.islog = 1;
			s->log = newseg.dbi;
			*sealed = 1;
			s->log_count = 0;
		}
	}

	/* In key order, so that the ids lookups touch neighbouring pages. */
	if ((rc = mdb_cursor_open(txn, s->ids, &ic)) != 0)
		goto fail;
	for (j = 0; j < total; j++) {
		const struct went *w = &s->went[j];

		if ((rc = dedup(ic, w, &dup)) != 0)
			goto fail;
		batches[w->b]->dup[w->i] = (uint8_t)dup;
		dups += (uint32_t)dup;
	}
	mdb_cursor_close(ic);
	ic = NULL;
	/* In arrival order, so that the log is appended in sequence. */
	for (j = 0, total = 0; j < nb; j++) {
		for (i = 0; i < batches[j]->n; i++, total++) {
			if (batches[j]->dup[i])
				continue;
			if ((rc = put_event(s, txn, batches[j]->events[i], s->next_seq + total,
			                    prep[j]->cust[i], prep[j]->names + i * STORE_NAMES)) !=
			    0)
				goto fail;
		}
	}
	s->next_seq += total;
	s->cnt.duplicates += dups;
	if ((rc = meta_put(txn, s->meta, "seq", &s->next_seq, 8)) != 0 ||
	    (rc = meta_put(txn, s->meta, "counters", &s->cnt, sizeof(s->cnt))) != 0)
		goto fail;
	if (s->hll_dirty && (rc = meta_put(txn, s->meta, "hll", s->hll, HLL_M)) != 0)
		goto fail;
	if (s->cust_exact != ws->cust_exact &&
	    (rc = meta_put(txn, s->meta, "custx", &s->cust_exact, 8)) != 0)
		goto fail;
	if (*sealed) {
		pthread_mutex_lock(&s->dmu);
		dirlock = 1;
	}
	/*
	 * Names first: a reader whose snapshot begins right after the commit may meet this
	 * group's records, and must find their names. A name published for a commit that then
	 * fails is never looked up (no committed record holds its id); dict_rollback()
	 * withdraws it.
	 */
	atomic_store_explicit(&s->dict_pub, s->dict_n, memory_order_release);
	t0 = mono_ns();
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0)
		goto fail;
	atomic_fetch_add(&s->t_commit_ns, mono_ns() - t0);
	if (*sealed) {
		s->segs[s->nsegs++] = newseg;
		s->curseg++;
		dir_publish(s);
		pthread_mutex_unlock(&s->dmu);
	}
	s->hll_dirty = 0;
	gate_leave(s);
	return 0;
fail:
	if (dirlock)
		pthread_mutex_unlock(&s->dmu);
	if (ic != NULL)
		mdb_cursor_close(ic);
	if (txn != NULL)
		mdb_txn_abort(txn);
	gate_leave(s);
	s->next_seq = ws->next_seq;
	s->log_count = ws->log_count;
	s->log = ws->log;
	s->cnt = ws->cnt;
	s->cust_exact = ws->cust_exact;
	s->hll_dirty = ws->hll_dirty;
	memcpy(s->hll, ws->hll, HLL_M);
	hll_hist_build(s);
	dict_rollback(s);
	*sealed = 0;
	return rc;
}

int
store_prepare(struct store *s, Touchpoint__V1__Event *const *events, size_t n,
              struct store_prepared **pp)
{
	struct store_prepared *p;
	size_t i;

	*pp = NULL;
	if (n > STORE_MAX_GROUP || (n > 0 && events == NULL))
		return TP_INVALID_ARGUMENT;
	/* went (8-byte aligned members) first, then cust: both aligned after the header. */
	if ((p = malloc(sizeof(*p) +
	                n * (sizeof(struct went) + (1 + STORE_NAMES) * sizeof(uint64_t)))) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	p->n = n;
	p->went = (struct went *)(p + 1);
	p->cust = (uint64_t *)(p->went + n);
	p->names = p->cust + n;
	for (i = 0; i < n; i++) {
		const Touchpoint__V1__Event *ev = events[i];
		struct went *w = &p->went[i];
		const char *cid, *nm[STORE_NAMES];
		size_t elen, k;

		if (ev == NULL || ev->event_id == NULL)
			goto invalid;
		elen = strlen(ev->event_id);
		if (elen == 0 || elen > RECORD_MAX_STR)
			goto invalid;
		w->tsb = bias(ev->timestamp_us);
		w->h = record_hash(s->key, ev->event_id, elen);
		w->h2 = record_hash(s->key2, ev->event_id, elen);
		w->b = 0;
		w->i = (uint32_t)i;
		w->ord = (uint32_t)i;
		cid = ev->customer_id != NULL ? ev->customer_id : "";
		p->cust[i] = record_hash(s->key, cid, strlen(cid));
		ev_names(ev, nm);
		for (k = 0; k < STORE_NAMES; k++)
			p->names[i * STORE_NAMES + k] =
			    nm[k] != NULL && nm[k][0] != 0
			        ? record_hash(s->key, nm[k], strlen(nm[k]))
			        : 0;
	}
	qsort(p->went, n, sizeof(*p->went), went_cmp);
	*pp = p;
	return TP_OK;
invalid:
	free(p);
	return TP_INVALID_ARGUMENT;
}

void
store_prepared_free(struct store_prepared *p)
{
	free(p);
}

/*
 * The group's dedup entries in key order: each batch's (sorted by store_prepare) are
 * copied with their group-wide ord, then the runs are merged pairwise. ord grows with the
 * batch, so a stable merge of (tsb, h) equals a sort by went_cmp: of two equal events the
 * earlier-arriving one comes first and is the one stored.
 */
static int
went_group(struct store *s, struct store_batch *const *batches,
           const struct store_prepared *const *prep, size_t nb, size_t total, size_t *bound)
{
	size_t j, i, off = 0, nr = nb;
	struct went *t;

	if (grow_buf((void **)&s->went, &s->went_cap, total + 1, sizeof(*s->went)) != 0 ||
	    grow_buf((void **)&s->wtmp, &s->wtmp_cap, total + 1, sizeof(*s->wtmp)) != 0)
		return ENOMEM;
	for (j = 0; j < nb; j++) {
		bound[j] = off;
		for (i = 0; i < batches[j]->n; i++) {
			struct went *w = &s->went[off + i];

			*w = prep[j]->went[i];
			w->b = (uint32_t)j;
			w->ord = (uint32_t)(off + w->i);
		}
		off += batches[j]->n;
	}
	bound[nb] = total;
	while (nr > 1) {
		size_t r, k = 0;

		for (r = 0; r < nr; r += 2) {
			size_t a = bound[r], ae = bound[r + 1], b = ae;
			size_t be = r + 2 <= nr ? bound[r + 2] : ae, o = a;

			while (a < ae && b < be)
				s->wtmp[o++] = went_cmp(&s->went[b], &s->went[a]) < 0
				                   ? s->went[b++]
				                   : s->went[a++];
			while (a < ae)
				s->wtmp[o++] = s->went[a++];
			while (b < be)
				s->wtmp[o++] = s->went[b++];
			bound[k++] = bound[r];
		}
		bound[k] = total;
		nr = k;
		t = s->went;
		s->went = s->wtmp;
		s->wtmp = t;
		i = s->went_cap;
		s->went_cap = s->wtmp_cap;
		s->wtmp_cap = i;
	}
	return 0;
}

int
store_write(struct store *s, struct store_batch *const *batches, size_t nb, char *errbuf,
            size_t errlen)
{
	struct wsnap *ws = NULL;
	struct store_prepared **own = NULL;
	const struct store_prepared **prep = NULL;
	size_t *bound = NULL;
	size_t total = 0, j, i, tries;
	int rc, sealed, st;

	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	for (j = 0; j < nb; j++) {
		if (batches[j] == NULL ||
		    (batches[j]->n > 0 &&
		     (batches[j]->events == NULL || batches[j]->dup == NULL)) ||
		    (batches[j]->prep != NULL && batches[j]->prep->n != batches[j]->n)) {
			snprintf(errbuf, errlen,
			         "batch %zu: no events, or not its own prepared ones", j);
			return TP_INVALID_ARGUMENT;
		}
		total += batches[j]->n;
		if (total > STORE_MAX_GROUP) {
			snprintf(errbuf, errlen, "more than %d events in one write",
			         STORE_MAX_GROUP);
			return TP_INVALID_ARGUMENT;
		}
	}
	if ((own = calloc(nb + 1, sizeof(*own))) == NULL ||
	    (prep = calloc(nb + 1, sizeof(*prep))) == NULL ||
	    (bound = calloc(nb + 1, sizeof(*bound))) == NULL)
		goto nomem;
	/* Callers without the daemon's ingest threads (tests, benchmarks) prepare here. */
	for (j = 0; j < nb; j++) {
		if (batches[j]->prep == NULL &&
		    (st = store_prepare(s, batches[j]->events, batches[j]->n, &own[j])) != TP_OK) {
			if (st == TP_RESOURCE_EXHAUSTED)
				goto nomem;
			snprintf(errbuf, errlen, "batch %zu: an event without a valid event_id", j);
			goto out;
		}
		prep[j] = batches[j]->prep != NULL ? batches[j]->prep : own[j];
	}
	if (went_group(s, batches, prep, nb, total, bound) != 0)
		goto nomem;
	if ((ws = malloc(sizeof(*ws))) == NULL)
		goto nomem;
	for (tries = 0;; tries++) {
		size_t seen = map_size(s, s->env);

		rc = write_group(s, batches, prep, nb, total, ws, &sealed);
		if (rc != MDB_MAP_FULL || tries >= STORE_GROW_TRIES)
			break;
		if ((rc = grow_map(s, s->env, seen)) != 0)
			break;
	}
	free(ws);
	if (rc != 0) {
		/*
		 * RESOURCE_EXHAUSTED is a full disk or quota, the map that could not grow far
		 * enough, memory, or an LMDB limit: LMDB's words say which.
		 */
		rc = disk_full(s, rc);
		st = status_of(rc);
		set_err(errbuf, errlen, "commit", rc);
		goto out;
	}

	s->dict_committed = s->dict_n;
	atomic_store(&s->last_write_ns, mono_ns());
	pthread_mutex_lock(&s->smu);
	s->cnt_pub = s->cnt;
	s->customers_pub = customers_now(s);
	pthread_mutex_unlock(&s->smu);
	for (j = 0; j < nb; j++) {
		batches[j]->duplicates = 0;
		for (i = 0; i < batches[j]->n; i++)
			batches[j]->duplicates += batches[j]->dup[i];
		batches[j]->accepted = (uint32_t)batches[j]->n - batches[j]->duplicates;
	}
	if (sealed) {
		pthread_mutex_lock(&s->cmu);
		s->ckick = 1;
		pthread_cond_signal(&s->ccv);
		pthread_mutex_unlock(&s->cmu);
	}
	st = TP_OK;
	goto out;
nomem:
	snprintf(errbuf, errlen, "out of memory");
	st = TP_RESOURCE_EXHAUSTED;
out:
	if (own != NULL)
		for (j = 0; j < nb; j++)
			store_prepared_free(own[j]);
	free(own);
	free(prep);
	free(bound);
	return st;
}

/* ---- compaction ---- */

/* A copy's key: the customer hash (8 bytes, big-endian), the customer id and a NUL. */
#define COPY_KEY_MAX (8 + RECORD_MAX_STR + 1)

static int
copy_key_ok(const MDB_val *k)
{
	return k->mv_size >= 9 && k->mv_size <= COPY_KEY_MAX &&
	       ((const uint8_t *)k->mv_data)[k->mv_size - 1] == 0;
}

/*
 * Builds a run's copy (record.h) from the run's records in key order: one value per
 * customer, put when the next customer hash comes, and by cbuild_flush() at the end. Its
 * records point into the map, so it is flushed in the transaction that read them.
 */
struct cbuild {
	MDB_cursor *c; /* the copy's, in the write transaction */
	struct record *r;
	size_t n, cap;
	uint8_t *buf;
	size_t bcap;
	uint64_t h;
};

static int cbuild_add(struct cbuild *b, uint64_t kh, uint64_t kt, uint64_t ks, const void *val,
                      size_t len);
static int cbuild_flush(struct cbuild *b);
static void cbuild_free(struct cbuild *b);
static int ev_qcmp(const void *a, const void *b);
static void insertion_sort(struct record *r, size_t n);

/* One input of a k-way merge: an LMDB cursor or a sorted array of records. */
struct msrc {
	MDB_cursor *cur;
	const struct kitem *arr;
	size_t pos, n;
	MDB_val k, v;
	uint64_t kh, kt, ks; /* the key, decoded: compared without memcmp on the hot path */
	int done;
	int copy; /* a run's copy: the key is hash | customer id | NUL; kt = ks = 0 */
};

static void
msrc_decode(struct msrc *m)
{
	const uint8_t *k = m->k.mv_data;

	m->kh = rd_be64(k);
	m->kt = rd_be64(k + 8);
	m->ks = rd_be64(k + 16);
}

static int
msrc_load(struct msrc *m, MDB_cursor_op op)
{
	int rc;

	if (m->cur == NULL) {
		if (op == MDB_NEXT)
			m->pos++;
		if (m->pos >= m->n) {
			m->done = 1;
			return 0;
		}
		m->k.mv_size = 0; /* the decoded key is all a sorted array gives */
		m->k.mv_data = NULL;
		m->v.mv_size = m->arr[m->pos].len;
		m->v.mv_data = (void *)m->arr[m->pos].val;
		m->kh = m->arr[m->pos].kh;
		m->kt = m->arr[m->pos].kt;
		m->ks = m->arr[m->pos].ks;
		return 0;
	}
	rc = mdb_cursor_get(m->cur, &m->k, &m->v, op);
	if (rc == MDB_NOTFOUND) {
		m->done = 1;
		return 0;
	}
	if (rc == 0 && m->k.mv_size != KEY_LEN)
		rc = MDB_CORRUPTED;
	if (rc == 0)
		msrc_decode(m);
	return rc;
}

static int
msrc_less(const struct msrc *a, const struct msrc *b)
{
	if (a->kh != b->kh)
		return a->kh < b->kh;
	if (a->kt != b->kt)
		return a->kt < b->kt;
	return a->ks < b->ks;
}

/* A binary min-heap of merge sources. */
struct mheap {
	struct msrc **h;
	size_t n;
};

static void
heap_down(struct mheap *hp, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		struct msrc *t;

		if (l < hp->n && msrc_less(hp->h[l], hp->h[m]))
			m = l;
		if (l + 1 < hp->n && msrc_less(hp->h[l + 1], hp->h[m]))
			m = l + 1;
		if (m == i)
			return;
		t = hp->h[i];
		hp->h[i] = hp->h[m];
		hp->h[m] = t;
		i = m;
	}
}

static void
heap_build(struct mheap *hp)
{
	size_t i, j = 0;

	for (i = 0; i < hp->n; i++)
		if (!hp->h[i]->done)
			hp->h[j++] = hp->h[i];
	hp->n = j;
	for (i = hp->n / 2; i-- > 0;)
		heap_down(hp, i);
}

/* Advances the top source and restores the heap. */
static int
heap_next(struct mheap *hp)
{
	int rc;

	if ((rc = msrc_load(hp->h[0], MDB_NEXT)) != 0)
		return rc;
	if (hp->h[0]->done)
		hp->h[0] = hp->h[--hp->n];
	heap_down(hp, 0);
	return 0;
}

static int
stopping(struct store *s)
{
	int stop;

	pthread_mutex_lock(&s->cmu);
	stop = s->cstop;
	pthread_mutex_unlock(&s->cmu);
	return stop;
}

/*
 * LMDB's write mutex is not fair: a compactor that commits a chunk and begins the next
 * would often take it again before the woken writer, whose group commit (and every client
 * waiting on it) would then wait for chunk after chunk. Ingest goes first.
 */
static void
yield_to_writer(struct store *s)
{
	const struct timespec ts = { 0, 200000 };
	int i;

	for (i = 0; i < 50 && atomic_load(&s->wwant) > 0; i++)
		nanosleep(&ts, NULL);
}

/* Consumed-run marker in runs.mdb's meta: "x" + the main run's id (big-endian). */
static int
mark_consumed(MDB_txn *txn, MDB_dbi meta, uint64_t id, int del)
{
	uint8_t k[9];
	MDB_val key = { sizeof(k), k }, v = { 0, k };

	k[0] = 'x';
	be64(k + 1, id);
	if (!del)
		return mdb_put(txn, meta, &key, &v, 0);
	return mdb_del(txn, meta, &key, NULL);
}

/* Deletes the alog entries up to the last event of a segment about to be dropped. */
static int
alog_trim(struct store *s, MDB_txn *txn, MDB_dbi seg)
{
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t last;
	int rc;

	if ((rc = mdb_cursor_open(txn, seg, &c)) != 0)
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size != 8)
		rc = MDB_CORRUPTED;
	if (rc == 0)
		last = rd_be64(k.mv_data);
	mdb_cursor_close(c);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	if ((rc = mdb_cursor_open(txn, s->alog, &c)) != 0)
		return rc;
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0 && k.mv_size == 8 &&
	       rd_be64(k.mv_data) <= last)
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

/* A retired run's or log segment's database name, as messages name it. */
static void
drop_name(const struct run *r, char *buf, size_t len)
{
	if (r->islog)
		seg_name(buf, len, r->id);
	else
		snprintf(buf, len, "run.%" PRIu64, r->id);
}

/*
 * Drops the retired runs of one environment in one transaction; a main run's directory
 * entry goes with it (the merge only marked it consumed in runs.mdb), and runs.mdb's
 * transaction clears the markers of the main runs dropped before it (unmark).
 * mdb_drop() closes the handle even if the commit then fails: on failure the named
 * databases stay as orphans, or consumed, and are dropped at the next open.
 */
static int
drop_in(struct store *s, int inb, const uint64_t *unmark, size_t nunmark, uint64_t *dropped,
        size_t *ndropped, char *errbuf, size_t errlen)
{
	MDB_txn *txn;
	size_t i, n = 0;
	int rc;
	char bad[40];

	*ndropped = 0;
	pthread_mutex_lock(&s->dmu);
	for (i = 0; i < s->nretired; i++)
		n += s->retired[i].inb == inb;
	pthread_mutex_unlock(&s->dmu);
	if (n == 0 && nunmark == 0)
		return 0;
	if ((rc = mdb_txn_begin(inb ? s->envb : s->env, NULL, 0, &txn)) != 0) {
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "cannot begin a transaction: %s",
			         mdb_strerror(rc));
		return rc;
	}
	n = 0;
	pthread_mutex_lock(&s->dmu);
	for (i = 0; i < s->nretired && rc == 0; i++) {
		if (s->retired[i].inb != inb)
			continue;
		if (s->retired[i].islog) {
			if ((rc = alog_trim(s, txn, s->retired[i].dbi)) == 0)
				rc = mdb_drop(txn, s->retired[i].dbi, 1);
			continue;
		}
		rc = mdb_drop(txn, s->retired[i].dbi, 1);
		if (rc == 0 && s->retired[i].hascopy)
			rc = mdb_drop(txn, s->retired[i].cdbi, 1);
		if (rc == 0 && !inb &&
		    (rc = dir_del(txn, s->meta, s->retired[i].id)) == MDB_NOTFOUND)
			rc = 0;
		dropped[n++] = s->retired[i].id;
	}
	if (rc != 0) /* the loop stopped one past the failed one */
		drop_name(&s->retired[i - 1], bad, sizeof(bad));
	pthread_mutex_unlock(&s->dmu);
	if (rc != 0 && errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s: %s", bad, mdb_strerror(rc));
	for (i = 0; i < nunmark && rc == 0; i++)
		if ((rc = mark_consumed(txn, s->metab, unmark[i], 1)) == MDB_NOTFOUND)
			rc = 0;
		else if (rc != 0 && errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "the consumed mark of run.%" PRIu64 ": %s",
			         unmark[i], mdb_strerror(rc));
	if (rc != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "commit of %zu drops: %s", n, mdb_strerror(rc));
		return rc;
	}
	*ndropped = n;
	return 0;
}

/* Logs a failed drop_in(): nothing is lost, the next open drops what this one left. */
static void
drop_warn(int inb, int rc, const char *why)
{
	if (rc != 0)
		log_warn("store: dropping retired runs of %s failed: %s; the next open drops them",
		         inb ? "runs.mdb" : "data.mdb", why);
}

/* Drops retired runs once no reader can hold their handles. Under bmu. */
static void
drop_retired(struct store *s)
{
	uint64_t gone[STORE_MAX_RETIRED], other[STORE_MAX_RETIRED];
	size_t n, na = 0, nb = 0;
	char why[256];
	int rc;

	pthread_mutex_lock(&s->dmu);
	n = s->nretired;
	pthread_mutex_unlock(&s->dmu);
	if (n == 0)
		return;
	gate_enter(s);
	pthread_mutex_lock(&s->gmu);
	if (s->run_readers > 0 && n < DROP_FORCE) {
		pthread_mutex_unlock(&s->gmu);
		gate_leave(s);
		return;
	}
	/*
	 * Opportunistic while few are retired; past DROP_FORCE, new readers wait behind us
	 * until the current ones finish, so that busy query threads cannot pile up handles.
	 */
	s->dropping = 1;
	while (s->run_readers > 0)
		pthread_cond_wait(&s->gcv, &s->gmu);
	pthread_mutex_unlock(&s->gmu);

	/* Main runs first (the writer's lock, briefly), then runs.mdb with their markers. */
	yield_to_writer(s);
	rc = drop_in(s, 0, NULL, 0, gone, &na, why, sizeof(why));
	drop_warn(0, rc, why);
	rc = drop_in(s, 1, gone, na, other, &nb, why, sizeof(why));
	drop_warn(1, rc, why);
	pthread_mutex_lock(&s->dmu);
	s->nretired = 0; /* what a failed drop closed is forgotten too */
	pthread_mutex_unlock(&s->dmu);
	pthread_mutex_lock(&s->gmu);
	s->dropping = 0;
	pthread_cond_broadcast(&s->gcv);
	pthread_mutex_unlock(&s->gmu);
	gate_leave(s);
}

/* drop_retired() under bmu: a backup copying the two environments sees no run vanish. */
static void
drop_retired_locked(struct store *s)
{
	pthread_mutex_lock(&s->bmu);
	drop_retired(s);
	pthread_mutex_unlock(&s->bmu);
}

/* Picks MERGE_FANIN complete runs of the lowest tier that has that many; 0 if none. */
static int
pick_merge(struct store *s, struct run *in)
{
	uint32_t tier, best = UINT32_MAX;
	size_t i, k, cnt;

	pthread_mutex_lock(&s->dmu);
	for (i = 0; i < s->nruns; i++) {
		tier = s->runs[i].tier;
		for (k = 0, cnt = 0; k < s->nruns; k++)
			cnt += s->runs[k].tier == tier;
		if (cnt >= MERGE_FANIN && tier < best)
			best = tier;
	}
	for (i = 0, k = 0; best != UINT32_MAX && i < s->nruns && k < MERGE_FANIN; i++)
		if (s->runs[i].tier == best)
			in[k++] = s->runs[i]; /* runs[] is in id order: the oldest first */
	if (best != UINT32_MAX) {
		s->nbuilding++;
		dir_publish(s);
	}
	pthread_mutex_unlock(&s->dmu);
	return best != UINT32_MAX;
}

/*
 * A quiet merge: the store has taken no write for quiet_ns, the compactor has nothing else
 * to do and there are more than STORE_QUIET_RUNS runs. Each run a scan reads costs it a
 * cursor, heap steps and, for a customer in several runs, a merge of their events: at 10 M
 * events, 10 runs merged into 3 made a warm `attribute --model all` ≈ 35 % faster
 * (docs/BENCHMARKS.md "Session 21"). Picks the smallest runs (up to MERGE_FANIN, at least
 * 2) whose largest holds at most STORE_QUIET_RATIO times the others together. With 1, an
 * event is rewritten only into a run at least twice the one it was in, so at most
 * log2(events / run_events) times in its life: a big run is not rewritten for a few small
 * ones (with 2, a 34 M-event run was rewritten for 18 M of others after a 2 M import in
 * the bench), and quiet moments in a steady trickle of writes cost little. The inputs
 * stay in id order; the output takes the highest tier among them. 0 if none.
 */
static int
pick_quiet(struct store *s, struct run *in, size_t *nin, uint32_t *tier)
{
	size_t idx[MERGE_FANIN], i, j, k = 0, t;
	uint64_t rest = 0;

	if (s->quiet_ns == 0 || mono_ns() - atomic_load(&s->last_write_ns) < s->quiet_ns)
		return 0;
	pthread_mutex_lock(&s->dmu);
	if (s->nruns <= STORE_QUIET_RUNS || s->nsegs > 1) {
		pthread_mutex_unlock(&s->dmu);
		return 0;
	}
	/* The MERGE_FANIN smallest runs, ascending by count. */
	for (i = 0; i < s->nruns; i++) {
		if (k == MERGE_FANIN && s->runs[idx[k - 1]].count <= s->runs[i].count)
			continue;
		for (j = k < MERGE_FANIN ? k++ : k - 1;
		     j > 0 && s->runs[idx[j - 1]].count > s->runs[i].count; j--)
			idx[j] = idx[j - 1];
		idx[j] = i;
	}
	for (i = 0; i + 1 < k; i++)
		rest += s->runs[idx[i]].count;
	while (k >= 2 && s->runs[idx[k - 1]].count > STORE_QUIET_RATIO * rest) {
		k--; /* the largest goes; the next largest leaves the rest */
		rest -= s->runs[idx[k - 1]].count;
	}
	if (k < 2) {
		pthread_mutex_unlock(&s->dmu);
		return 0;
	}
	/* Taken in id order (runs[] is): the oldest first, as a tier's merge takes them. */
	*tier = 0;
	for (i = 0, t = 0; i < s->nruns; i++)
		for (j = 0; j < k; j++)
			if (idx[j] == i) {
				in[t++] = s->runs[i];
				*tier = s->runs[i].tier > *tier ? s->runs[i].tier : *tier;
			}
	*nin = k;
	s->nbuilding++;
	dir_publish(s);
	pthread_mutex_unlock(&s->dmu);
	return 1;
}

/*
 * A new, empty run of runs.mdb in txn (its next id, its database and, if copy, its copy's),
 * not yet in a directory.
 */
static int
run_new(struct store *s, MDB_txn *txn, uint32_t tier, int copy, struct run *out)
{
	char name[32];
	uint64_t next;
	int rc;

	if ((rc = meta_get(txn, s->metab, "nextrun", &out->id, sizeof(out->id))) != 0)
		return rc;
	snprintf(name, sizeof(name), "run.%" PRIu64, out->id);
	out->tier = tier;
	out->inb = 1;
	out->islog = 0;
	out->count = 0;
	out->hascopy = copy;
	next = out->id + 1;
	if ((rc = mdb_dbi_open(txn, name, MDB_CREATE, &out->dbi)) != 0)
		return rc;
	snprintf(name, sizeof(name), "run.%" PRIu64 ".c", out->id);
	if (copy && (rc = mdb_dbi_open(txn, name, MDB_CREATE, &out->cdbi)) != 0)
		return rc;
	return meta_put(txn, s->metab, "nextrun", &next, sizeof(next));
}

/* Creates the output run in runs.mdb, marked building (with a copy if copy). */
static int
merge_create(struct store *s, uint32_t tier, int copy, struct run *out)
{
	MDB_txn *txn;
	int rc;

	for (;;) {
		size_t seen = map_size(s, s->envb);

		if ((rc = write_begin(s, s->envb, &txn)) != 0)
			return rc;
		if ((rc = run_new(s, txn, tier, copy, out)) == 0 &&
		    (rc = dir_put(txn, s->metab, out->id, tier, RUN_BUILDING, 0)) == 0) {
			rc = mdb_txn_commit(txn);
			txn = NULL;
		}
		if (txn != NULL)
			mdb_txn_abort(txn);
		gate_leave(s);
		if (rc != MDB_MAP_FULL)
			return rc;
		if ((rc = grow_map_bg(s, s->envb, seen)) != 0)
			return rc;
	}
}

/*
 * One chunk of the merge in its own write transaction of runs.mdb (main runs are read
 * through a read transaction begun with it): inputs are repositioned after the last key
 * consumed (last[j], or from the start), up to MERGE_CHUNK records are appended.
 */
static int
merge_chunk(struct store *s, const struct run *in, size_t nin, struct run *out,
            uint8_t last[][KEY_LEN], int *started, int *finished)
{
	struct msrc src[MERGE_FANIN], *hv[MERGE_FANIN];
	struct mheap hp = { hv, 0 };
	uint8_t nlast[MERGE_FANIN][KEY_LEN];
	int nstarted[MERGE_FANIN];
	MDB_cursor *oc = NULL;
	MDB_txn *txn, *rtxn = NULL;
	size_t j, n = 0;
	uint64_t t0;
	int rc;

	if ((rc = write_begin(s, s->envb, &txn)) != 0)
		return rc;
	t0 = mono_ns();
	memset(src, 0, sizeof(src));
	for (j = 0; j < nin; j++) {
		/* Under the gate write_begin took: entering it again could wait on a growth. */
		if (!in[j].inb && rtxn == NULL &&
		    (rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rtxn)) != 0)
			goto fail;
		nstarted[j] = started[j];
		memcpy(nlast[j], last[j], KEY_LEN);
		if ((rc = mdb_cursor_open(in[j].inb ? txn : rtxn, in[j].dbi, &src[j].cur)) != 0)
			goto fail;
		if (!started[j]) {
			rc = msrc_load(&src[j], MDB_FIRST);
		} else {
			src[j].k.mv_size = KEY_LEN;
			src[j].k.mv_data = last[j];
			if ((rc = msrc_load(&src[j], MDB_SET_RANGE)) == 0 && !src[j].done &&
			    memcmp(src[j].k.mv_data, last[j], KEY_LEN) == 0)
				rc = msrc_load(&src[j], MDB_NEXT);
		}
		if (rc != 0)
			goto fail;
		hv[hp.n++] = &src[j];
	}
	heap_build(&hp);
	if ((rc = mdb_cursor_open(txn, out->dbi, &oc)) != 0)
		goto fail;
	while (hp.n > 0 && n < s->merge_chunk) {
		struct msrc *m = hp.h[0];

		if ((rc = mdb_cursor_put(oc, &m->k, &m->v, MDB_APPEND)) != 0)
			goto fail;
		j = (size_t)(m - src);
		memcpy(nlast[j], m->k.mv_data, KEY_LEN);
		nstarted[j] = 1;
		n++;
		if ((rc = heap_next(&hp)) != 0)
			goto fail;
	}
	for (j = 0; j < nin; j++)
		mdb_cursor_close(src[j].cur);
	memset(src, 0, sizeof(src));
	mdb_cursor_close(oc);
	oc = NULL;
	if (rtxn != NULL)
		mdb_txn_abort(rtxn);
	rtxn = NULL;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0)
		goto fail;
	gate_leave(s);
	atomic_fetch_add(&s->t_chunk_ns, mono_ns() - t0);
	atomic_fetch_add(&s->t_chunks, 1);
	atomic_fetch_add(&s->t_chunk_records, n);
	for (j = 0; j < nin; j++) {
		started[j] = nstarted[j];
		memcpy(last[j], nlast[j], KEY_LEN);
	}
	out->count += n;
	*finished = hp.n == 0;
	return 0;
fail:
	for (j = 0; j < nin; j++)
		if (src[j].cur != NULL)
			mdb_cursor_close(src[j].cur);
	if (oc != NULL)
		mdb_cursor_close(oc);
	if (rtxn != NULL)
		mdb_txn_abort(rtxn);
	if (txn != NULL)
		mdb_txn_abort(txn);
	gate_leave(s);
	return rc;
}

/*
 * The merge of the inputs' copies into the output's, after its records: a customer in one
 * input keeps its value as it is; one in several has their events merged (each is in
 * SPEC §3 order already) and encoded again. Where each input stands between chunks.
 */
struct cmerge {
	uint8_t last[MERGE_FANIN][COPY_KEY_MAX];
	size_t lastlen[MERGE_FANIN];
	int started[MERGE_FANIN];
	struct record *r; /* a customer's events from several inputs */
	size_t rcap;
	uint8_t *buf;
	size_t bcap;
};

/* Where an input of the copies' merge stands after cursor op result rc: live, or at its end. */
static int
copy_live(int rc, const MDB_val *k, int *live)
{
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	*live = rc == 0;
	return *live && !copy_key_ok(k) ? MDB_CORRUPTED : 0;
}

/* Copy keys in LMDB's order: memcmp, then the shorter first. */
static int
ckey_cmp(const MDB_val *a, const MDB_val *b)
{
	size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
	int c = memcmp(a->mv_data, b->mv_data, n);

	if (c != 0)
		return c;
	return (a->mv_size > b->mv_size) - (a->mv_size < b->mv_size);
}

/* The events of the inputs' values v[0..nv) of one customer, merged, into cm->buf. */
static int
cmerge_values(struct cmerge *cm, const MDB_val *key, const MDB_val *v, size_t nv, MDB_val *out)
{
	size_t i, n = 0, need = 5;
	uint32_t cnt;
	const uint8_t *first;
	int64_t ts = 0;
	uint64_t seq = 0;
	uint8_t *p;

	for (i = 0; i < nv; i++) {
		if (record_compact_count(v[i].mv_data, v[i].mv_size, &cnt, &first) != 0)
			return MDB_CORRUPTED;
		if (grow_buf((void **)&cm->r, &cm->rcap, n + cnt, sizeof(*cm->r)) != 0)
			return ENOMEM;
		if (record_compact_parse(first, (const uint8_t *)v[i].mv_data + v[i].mv_size, cnt,
		                         rd_be64(key->mv_data), (const char *)key->mv_data + 8,
		                         (uint16_t)(key->mv_size - 9), cm->r + n) != 0)
			return MDB_CORRUPTED;
		n += cnt;
	}
	if (n > UINT32_MAX)
		return ENOMEM;
	if (n > 32)
		qsort(cm->r, n, sizeof(*cm->r), ev_qcmp);
	else
		insertion_sort(cm->r, n);
	for (i = 0; i < n; i++)
		need += record_compact_bound(&cm->r[i]);
	if (grow_buf((void **)&cm->buf, &cm->bcap, need, 1) != 0)
		return ENOMEM;
	p = record_compact_count_put(cm->buf, (uint32_t)n);
	for (i = 0; i < n; i++)
		p = record_compact_put(&cm->r[i], p, &ts, &seq);
	out->mv_data = cm->buf;
	out->mv_size = (size_t)(p - cm->buf);
	return 0;
}

/* One chunk of the copies' merge, merge_chunk customers, in its own write transaction. */
static int
merge_copy_chunk(struct store *s, const struct run *in, size_t nin, struct run *out,
                 struct cmerge *cm, int *finished)
{
	MDB_cursor *cur[MERGE_FANIN] = { 0 }, *oc = NULL;
	MDB_val k[MERGE_FANIN], v[MERGE_FANIN], same[MERGE_FANIN], ov;
	int live[MERGE_FANIN];
	MDB_txn *txn;
	size_t j, n = 0, ns, lo;
	uint64_t t0;
	int rc;

	if ((rc = write_begin(s, s->envb, &txn)) != 0)
		return rc;
	t0 = mono_ns();
	for (j = 0; j < nin; j++) {
		if ((rc = mdb_cursor_open(txn, in[j].cdbi, &cur[j])) != 0)
			goto fail;
		if (!cm->started[j]) {
			rc = mdb_cursor_get(cur[j], &k[j], &v[j], MDB_FIRST);
		} else {
			k[j].mv_size = cm->lastlen[j];
			k[j].mv_data = cm->last[j];
			rc = mdb_cursor_get(cur[j], &k[j], &v[j], MDB_SET_RANGE);
			if (rc == 0 && k[j].mv_size == cm->lastlen[j] &&
			    memcmp(k[j].mv_data, cm->last[j], cm->lastlen[j]) == 0)
				rc = mdb_cursor_get(cur[j], &k[j], &v[j], MDB_NEXT);
		}
		if ((rc = copy_live(rc, &k[j], &live[j])) != 0)
			goto fail;
	}
	if ((rc = mdb_cursor_open(txn, out->cdbi, &oc)) != 0)
		goto fail;
	for (;;) {
		/* The least key (fan-in 8: a linear pass), and every input that has it. */
		for (j = 0, lo = nin; j < nin; j++)
			if (live[j] && (lo == nin || ckey_cmp(&k[j], &k[lo]) < 0))
				lo = j;
		if (lo == nin || n >= s->merge_chunk)
			break;
		for (j = lo, ns = 0; j < nin; j++)
			if (live[j] && ckey_cmp(&k[j], &k[lo]) == 0)
				same[ns++] = v[j];
		if (ns == 1)
			ov = v[lo];
		else if ((rc = cmerge_values(cm, &k[lo], same, ns, &ov)) != 0)
			goto fail;
		if ((rc = mdb_cursor_put(oc, &k[lo], &ov, MDB_APPEND)) != 0)
			goto fail;
		n++;
		for (j = nin; j-- > lo;) {
			if (!live[j] || ckey_cmp(&k[j], &k[lo]) != 0)
				continue;
			memcpy(cm->last[j], k[j].mv_data, k[j].mv_size);
			cm->lastlen[j] = k[j].mv_size;
			cm->started[j] = 1;
			rc = mdb_cursor_get(cur[j], &k[j], &v[j], MDB_NEXT);
			if ((rc = copy_live(rc, &k[j], &live[j])) != 0)
				goto fail;
		}
	}
	*finished = lo == nin;
	mdb_cursor_close(oc);
	oc = NULL;
	for (j = 0; j < nin; j++) {
		mdb_cursor_close(cur[j]);
		cur[j] = NULL;
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0)
		goto fail;
	gate_leave(s);
	/* Counted as chunks too: a merge's copies take seconds at 50 M events, no record chunk. */
	atomic_fetch_add(&s->t_chunk_ns, mono_ns() - t0);
	atomic_fetch_add(&s->t_chunks, 1);
	return 0;
fail:
	for (j = 0; j < nin; j++)
		if (cur[j] != NULL)
			mdb_cursor_close(cur[j]);
	if (oc != NULL)
		mdb_cursor_close(oc);
	if (txn != NULL)
		mdb_txn_abort(txn);
	gate_leave(s);
	return rc;
}

/*
 * Marks the output complete and retires the inputs, all in one commit of runs.mdb: its
 * own inputs leave its directory, main ones are marked consumed (the main environment
 * drops them later, in drop_retired(), or at the next open).
 */
static int
merge_finish(struct store *s, const struct run *in, size_t nin, const struct run *out)
{
	MDB_txn *txn;
	size_t j, i, k;
	int rc;

	if ((rc = write_begin(s, s->envb, &txn)) != 0)
		return rc;
	rc = dir_put(txn, s->metab, out->id, out->tier, RUN_COMPLETE, out->count);
	for (j = 0; j < nin && rc == 0; j++)
		rc = in[j].inb ? dir_del(txn, s->metab, in[j].id)
		               : mark_consumed(txn, s->metab, in[j].id, 0);
	if (rc != 0) {
		mdb_txn_abort(txn);
		gate_leave(s);
		return rc;
	}
	pthread_mutex_lock(&s->dmu);
	if ((rc = mdb_txn_commit(txn)) == 0) {
		for (j = 0; j < nin; j++) {
			for (i = 0; i < s->nruns && s->runs[i].id != in[j].id; i++)
				;
			if (i == s->nruns)
				continue;
			s->retired[s->nretired++] = s->runs[i];
			for (k = i + 1; k < s->nruns; k++)
				s->runs[k - 1] = s->runs[k];
			s->nruns--;
		}
		/* Keep runs[] in id order (= age) so the oldest of a tier merge first. */
		for (i = s->nruns; i > 0 && s->runs[i - 1].id > out->id; i--)
			s->runs[i] = s->runs[i - 1];
		s->runs[i] = *out;
		s->nruns++;
		s->nbuilding--;
		dir_publish(s);
	}
	pthread_mutex_unlock(&s->dmu);
	gate_leave(s);
	return rc;
}

/*
 * Sorts the oldest sealed log segment into a new tier-0 run of runs.mdb (values appended
 * straight from the main map, through a read transaction) and records it flushed, in one
 * commit; the segment is then retired and dropped like a consumed run. *again: one was
 * flushed, or a map grown, so call again.
 */
static int
flush_seg(struct store *s, int *again)
{
	struct run seg, out;
	MDB_txn *txn = NULL, *rtxn = NULL;
	MDB_cursor *c = NULL;
	struct cbuild cb = { 0 };
	MDB_val k, v;
	uint8_t kb[KEY_LEN];
	size_t n = 0, i, seen;
	int rc;

	*again = 0;
	pthread_mutex_lock(&s->dmu);
	i = s->nruns + s->nretired + s->nbuilding;
	seg = s->segs[0];
	n = s->nsegs;
	if (s->nretired >= STORE_MAX_RETIRED)
		n = 0;
	pthread_mutex_unlock(&s->dmu);
	if (n < 2 || i >= STORE_FLUSH_LIMIT)
		return 0;
	seen = map_size(s, s->envb);
	pthread_mutex_lock(&s->bmu); /* before the gate, as everywhere */
	if ((rc = write_begin(s, s->envb, &txn)) != 0) {
		pthread_mutex_unlock(&s->bmu);
		return rc;
	}
	/* Under the gate write_begin took: entering it again could wait on a growth. */
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rtxn)) != 0 ||
	    (rc = log_sorted(rtxn, &seg.dbi, 1, &s->fl, &s->fl_cap, &s->fltmp, &s->fltmp_cap,
	                     &n)) != 0 ||
	    (rc = run_new(s, txn, 0, 1, &out)) != 0 ||
	    (rc = mdb_cursor_open(txn, out.dbi, &c)) != 0 ||
	    (rc = mdb_cursor_open(txn, out.cdbi, &cb.c)) != 0)
		goto fail;
	for (i = 0; i < n; i++) {
		be64(kb, s->fl[i].kh);
		be64(kb + 8, s->fl[i].kt);
		be64(kb + 16, s->fl[i].ks);
		k.mv_size = KEY_LEN;
		k.mv_data = kb;
		v.mv_size = s->fl[i].len;
		v.mv_data = (void *)s->fl[i].val;
		if ((rc = mdb_cursor_put(c, &k, &v, MDB_APPEND)) != 0 ||
		    (rc = cbuild_add(&cb, s->fl[i].kh, s->fl[i].kt, s->fl[i].ks, v.mv_data,
		                     v.mv_size)) != 0)
			goto fail;
	}
	if ((rc = cbuild_flush(&cb)) != 0)
		goto fail;
	mdb_cursor_close(c);
	c = NULL;
	mdb_cursor_close(cb.c);
	cb.c = NULL;
	if ((rc = flush_aliases(s, rtxn, seg.dbi, txn)) != 0)
		goto fail;
	mdb_txn_abort(rtxn); /* every value is copied into txn's pages by now */
	rtxn = NULL;
	out.count = n;
	seg.id++; /* segments below this one are in runs */
	if ((rc = meta_put(txn, s->metab, "flushed", &seg.id, sizeof(seg.id))) != 0 ||
	    (rc = dir_put(txn, s->metab, out.id, 0, RUN_COMPLETE, n)) != 0)
		goto fail;
	pthread_mutex_lock(&s->dmu);
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc == 0) {
		s->runs[s->nruns++] = out; /* the newest id: runs[] stays in id order */
		s->retired[s->nretired++] = s->segs[0];
		for (i = 1; i < s->nsegs; i++)
			s->segs[i - 1] = s->segs[i];
		s->nsegs--;
		s->nflushed = seg.id;
		dir_publish(s);
		*again = 1;
	}
	pthread_mutex_unlock(&s->dmu);
	if (rc != 0)
		goto fail;
	gate_leave(s);
	pthread_mutex_unlock(&s->bmu);
	cbuild_free(&cb);
	return 0;
fail:
	if (c != NULL)
		mdb_cursor_close(c);
	if (cb.c != NULL)
		mdb_cursor_close(cb.c);
	cbuild_free(&cb);
	if (rtxn != NULL)
		mdb_txn_abort(rtxn);
	if (txn != NULL)
		mdb_txn_abort(txn);
	gate_leave(s);
	pthread_mutex_unlock(&s->bmu);
	*again = rc == MDB_MAP_FULL || rc == MDB_MAP_RESIZED;
	if (rc == MDB_MAP_FULL)
		return grow_map_bg(s, s->envb, seen);
	if (rc == MDB_MAP_RESIZED) /* the writer grew the main map */
		return grow_map(s, s->env, 0);
	return rc;
}

/*
 * The compactor is background work: an acknowledgement waits on the writer and NNG's
 * threads, never on it, yet on 2 cores its merges took CPU from them (4 clients at 50 M
 * stored, sustained: +11 % with it at nice 19; docs/BENCHMARKS.md "Session 8"). So it
 * runs at cnice_low while it keeps up and at the daemon's own priority (cnice_base, the
 * nice it was started with) while it is behind:
 * sealed log segments waiting (every journey read scans them) or runs waiting to be merged
 * (every scan merges them). Raising it back needs RLIMIT_NICE (systemd: LimitNICE=+0) or
 * CAP_SYS_NICE; without them it stays low and each refused episode is counted.
 * setpriority(PRIO_PROCESS, 0, ...) is per thread on Linux (NPTL): the calling thread.
 */
#define PACE_BEHIND_SEGS 4  /* sealed segments waiting: behind; caught up at 1 */
#define PACE_BEHIND_RUNS 64 /* runs: behind (at most 7 a tier when caught up); caught up at 48 */

static void
compactor_pace(struct store *s)
{
	size_t sealed, nruns;
	int cur = atomic_load(&s->cnice), want = cur;

	if (s->cnice_low == 0)
		return;
	pthread_mutex_lock(&s->dmu);
	sealed = s->nsegs > 0 ? s->nsegs - 1 : 0;
	nruns = s->nruns;
	pthread_mutex_unlock(&s->dmu);
	if (sealed >= PACE_BEHIND_SEGS || nruns >= PACE_BEHIND_RUNS) {
		want = s->cnice_base;
	} else if (sealed <= 1 && nruns <= PACE_BEHIND_RUNS * 3 / 4) {
		want = s->cnice_low;
		s->cnice_refused = 0;
	}
	if (want == cur || s->cnice_refused)
		return;
	if (setpriority(PRIO_PROCESS, 0, want) != 0) {
		s->cnice_refused = 1; /* not again in this episode */
		atomic_fetch_add(&s->cnice_denied, 1);
		return;
	}
	atomic_store(&s->cnice, want);
}

/* Flushes every sealed segment: they go first, before (and between chunks of) merges. */
static int
flush_all(struct store *s)
{
	int again = 1, rc = 0, i;

	for (i = 0; again && rc == 0 && i < STORE_MAX_SEGS + STORE_GROW_TRIES && !stopping(s);
	     i++) {
		compactor_pace(s); /* a flush at nice 19 on a busy machine can take seconds */
		rc = flush_seg(s, &again);
	}
	return rc;
}

static int
merge_once(struct store *s, const struct run *in, size_t nin, uint32_t tier)
{
	uint8_t last[MERGE_FANIN][KEY_LEN];
	int started[MERGE_FANIN] = { 0 }, finished, rc, copy = 1, phase;
	struct run out;
	struct cmerge cm;
	size_t j;

	memset(&cm, 0, sizeof(cm));
	/* Without every input's copy, the output's is made later (copy_backfill). */
	for (j = 0; j < nin; j++)
		copy &= in[j].hascopy && in[j].inb;
	if ((rc = merge_create(s, tier, copy, &out)) != 0)
		goto fail;
	/* The records, then the copies merged alike: the run is complete with both. */
	for (phase = 0; phase < 1 + copy; phase++) {
		for (finished = 0; !finished;) {
			size_t seen = map_size(s, s->envb);

			if (stopping(s)) {
				rc = ECANCELED; /* the building run is dropped at the next open */
				goto fail;
			}
			/* Sealed segments first: every journey read scans the log tail. */
			compactor_pace(s);
			if ((rc = flush_all(s)) != 0)
				goto fail;
			drop_retired_locked(s);
			rc = phase == 0 ? merge_chunk(s, in, nin, &out, last, started, &finished)
			                : merge_copy_chunk(s, in, nin, &out, &cm, &finished);
			if (rc == MDB_MAP_FULL)
				rc = grow_map_bg(s, s->envb, seen);
			else if (rc == MDB_MAP_RESIZED) /* the writer grew the main map */
				rc = grow_map(s, s->env, 0);
			if (rc != 0)
				goto fail;
		}
	}
	free(cm.r);
	free(cm.buf);
	cm.r = NULL;
	cm.buf = NULL;
	pthread_mutex_lock(&s->bmu);
	for (;;) {
		size_t seen = map_size(s, s->envb);

		if ((rc = merge_finish(s, in, nin, &out)) != MDB_MAP_FULL)
			break;
		if ((rc = grow_map_bg(s, s->envb, seen)) != 0)
			break;
	}
	pthread_mutex_unlock(&s->bmu);
	if (rc != 0)
		goto fail;
	return 0;
fail:
	free(cm.r);
	free(cm.buf);
	pthread_mutex_lock(&s->dmu);
	s->nbuilding--;
	dir_publish(s);
	pthread_mutex_unlock(&s->dmu);
	return rc;
}

/*
 * Gives one run of runs.mdb made before copies existed its copy, in one transaction (so a
 * copy exists only whole); *again: one was made, or the map grown. Runs of the main
 * environment (a schema-4 store's) get none: their merge into runs.mdb makes it.
 */
static int
copy_backfill(struct store *s, int *again)
{
	struct run r;
	struct cbuild cb = { 0 };
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_dbi cdbi;
	MDB_val k, v;
	char name[32];
	size_t i, seen, n = 0;
	int rc, found = 0;

	*again = 0;
	pthread_mutex_lock(&s->dmu);
	for (i = 0; i < s->nruns && !found; i++)
		if (s->runs[i].inb && !s->runs[i].hascopy) {
			r = s->runs[i];
			found = 1;
		}
	pthread_mutex_unlock(&s->dmu);
	if (!found)
		return 0;
	seen = map_size(s, s->envb);
	pthread_mutex_lock(&s->bmu);
	if ((rc = write_begin(s, s->envb, &txn)) != 0) {
		pthread_mutex_unlock(&s->bmu);
		return rc;
	}
	snprintf(name, sizeof(name), "run.%" PRIu64 ".c", r.id);
	if ((rc = mdb_dbi_open(txn, name, MDB_CREATE, &cdbi)) != 0 ||
	    (rc = mdb_cursor_open(txn, r.dbi, &c)) != 0 ||
	    (rc = mdb_cursor_open(txn, cdbi, &cb.c)) != 0)
		goto fail;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const uint8_t *kp = k.mv_data;

		if (k.mv_size != KEY_LEN) {
			rc = MDB_CORRUPTED;
			goto fail;
		}
		if ((rc = cbuild_add(&cb, rd_be64(kp), rd_be64(kp + 8), rd_be64(kp + 16), v.mv_data,
		                     v.mv_size)) != 0)
			goto fail;
		if (++n % 65536 == 0 && stopping(s)) {
			rc = ECANCELED;
			goto fail;
		}
	}
	if (rc != MDB_NOTFOUND || (rc = cbuild_flush(&cb)) != 0)
		goto fail;
	mdb_cursor_close(c);
	c = NULL;
	mdb_cursor_close(cb.c);
	cb.c = NULL;
	pthread_mutex_lock(&s->dmu);
	rc = mdb_txn_commit(txn);
	txn = NULL;
	for (i = 0; rc == 0 && i < s->nruns; i++)
		if (s->runs[i].id == r.id && s->runs[i].inb) {
			s->runs[i].cdbi = cdbi;
			s->runs[i].hascopy = 1;
		}
	if (rc == 0)
		dir_publish(s);
	pthread_mutex_unlock(&s->dmu);
	if (rc != 0)
		goto fail;
	gate_leave(s);
	pthread_mutex_unlock(&s->bmu);
	cbuild_free(&cb);
	log_info("store: run.%" PRIu64 " (%" PRIu64 " events) has its copy", r.id, r.count);
	*again = 1;
	return 0;
fail:
	if (c != NULL)
		mdb_cursor_close(c);
	if (cb.c != NULL)
		mdb_cursor_close(cb.c);
	cbuild_free(&cb);
	if (txn != NULL)
		mdb_txn_abort(txn);
	gate_leave(s);
	pthread_mutex_unlock(&s->bmu);
	*again = rc == MDB_MAP_FULL;
	if (rc == MDB_MAP_FULL)
		return grow_map_bg(s, s->envb, seen);
	return rc;
}

static void *
compactor(void *arg)
{
	struct store *s = arg;
	struct run in[MERGE_FANIN];
	struct timespec ts;
	size_t nin;
	uint32_t tier;
	int dead, again;

	(void)prctl(PR_SET_NAME, "tp-compactor");
	/* Lowering needs no privilege; if even that is refused (seccomp), it stays as it is. */
	errno = 0;
	s->cnice_base = getpriority(PRIO_PROCESS, 0); /* -1 is a valid nice value: errno tells */
	if (errno != 0)
		s->cnice_base = 0;
	atomic_store(&s->cnice, s->cnice_base);
	if (s->cnice_low > s->cnice_base && setpriority(PRIO_PROCESS, 0, s->cnice_low) == 0)
		atomic_store(&s->cnice, s->cnice_low);
	else
		s->cnice_low = 0;
	pthread_mutex_lock(&s->cmu);
	while (!s->cstop) {
		if (!s->ckick) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&s->ccv, &s->cmu, &ts);
		}
		s->ckick = 0;
		if (s->cstop)
			break;
		pthread_mutex_unlock(&s->cmu);

		mdb_reader_check(s->env, &dead);
		mdb_reader_check(s->envb, &dead);
		drop_retired_locked(s);
		(void)flush_all(s); /* on failure, tried again on the next tick */
		drop_retired_locked(s);
		while (!stopping(s) && pick_merge(s, in)) {
			if (merge_once(s, in, MERGE_FANIN, in[0].tier + 1) != 0)
				break; /* tried again on the next tick */
			drop_retired_locked(s);
		}
		/* Nothing else to do and no write for a while: fewer runs for the scans. */
		while (!stopping(s) && pick_quiet(s, in, &nin, &tier)) {
			if (merge_once(s, in, nin, tier) != 0)
				break;
			drop_retired_locked(s);
		}
		/* Copies of older runs last, one a turn: flushes and merges come first. */
		if (!stopping(s) && copy_backfill(s, &again) == 0 && again) {
			pthread_mutex_lock(&s->cmu);
			s->ckick = 1;
			pthread_mutex_unlock(&s->cmu);
		}
		pthread_mutex_lock(&s->cmu);
	}
	pthread_mutex_unlock(&s->cmu);
	return NULL;
}

/* ---- open / close ---- */

static int
fill_random(uint8_t *p, size_t n)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t r;
	size_t got = 0;

	if (fd < 0)
		return -1;
	while (got < n) {
		r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			close(fd);
			return -1;
		}
		got += (size_t)r;
	}
	close(fd);
	return 0;
}

/*
 * Loads one environment's run directory (meta) into runs[]: complete runs are opened,
 * building ones dropped, and so are named databases "run.N" it does not list (a crash
 * mid-merge or mid-drop).
 */
static int
load_dir(struct store *s, MDB_txn *txn, MDB_dbi meta, int inb)
{
	MDB_cursor *c = NULL;
	MDB_val k, v;
	MDB_dbi main_dbi;
	uint8_t kb[9];
	char(*orphans)[32] = NULL;
	size_t norphans = 0, i;
	int rc;

	if ((rc = mdb_cursor_open(txn, meta, &c)) != 0)
		return rc;
	kb[0] = 'r';
	memset(kb + 1, 0, 8);
	k.mv_size = 1;
	k.mv_data = kb;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct dirent_v d;
		char name[32];
		uint64_t id;

		if (k.mv_size != 9 || ((uint8_t *)k.mv_data)[0] != 'r')
			break;
		if (v.mv_size != sizeof(d)) {
			rc = MDB_CORRUPTED;
			goto fail;
		}
		memcpy(&d, v.mv_data, sizeof(d));
		id = rd_be64((uint8_t *)k.mv_data + 1);
		if (d.state != RUN_COMPLETE) {
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				goto fail;
			continue;
		}
		if (s->nruns >= STORE_MAX_RUNS) {
			rc = MDB_DBS_FULL;
			goto fail;
		}
		snprintf(name, sizeof(name), "run.%" PRIu64, id);
		s->runs[s->nruns].id = id;
		s->runs[s->nruns].tier = d.tier;
		s->runs[s->nruns].count = d.count;
		s->runs[s->nruns].inb = inb;
		s->runs[s->nruns].hascopy = 0;
		if ((rc = mdb_dbi_open(txn, name, 0, &s->runs[s->nruns].dbi)) != 0)
			goto fail;
		/* A run built before copies existed has none: the compactor makes it. */
		snprintf(name, sizeof(name), "run.%" PRIu64 ".c", id);
		if (inb && (rc = mdb_dbi_open(txn, name, 0, &s->runs[s->nruns].cdbi)) == 0)
			s->runs[s->nruns].hascopy = 1;
		else if (inb && rc != MDB_NOTFOUND)
			goto fail;
		s->nruns++;
	}
	if (rc != MDB_NOTFOUND && rc != 0)
		goto fail;
	mdb_cursor_close(c);
	c = NULL;

	/* Named databases "run.N" not in the directory: a crash mid-merge or mid-drop. */
	if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0 ||
	    (rc = mdb_cursor_open(txn, main_dbi, &c)) != 0)
		goto fail;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char name[32];
		uint64_t id;
		char *end;
		int known = 0;

		if (k.mv_size < 5 || k.mv_size >= sizeof(name) || memcmp(k.mv_data, "run.", 4) != 0)
			continue;
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = 0;
		id = strtoull(name + 4, &end, 10);
		for (i = 0; i < s->nruns; i++)
			known |= s->runs[i].id == id && s->runs[i].inb == inb;
		/* A copy goes with its run ("run.N.c"). */
		if (known && (*end == 0 || (inb && strcmp(end, ".c") == 0)))
			continue;
		if (norphans >= STORE_MAXDBS) {
			rc = MDB_DBS_FULL;
			goto fail;
		}
		if (norphans % 16 == 0) {
			void *np = realloc(orphans, (norphans + 16) * sizeof(*orphans));

			if (np == NULL) {
				rc = ENOMEM;
				goto fail;
			}
			orphans = np;
		}
		memcpy(orphans[norphans++], name, sizeof(name));
	}
	if (rc != MDB_NOTFOUND && rc != 0)
		goto fail;
	mdb_cursor_close(c);
	c = NULL;
	for (i = 0; i < norphans; i++) {
		MDB_dbi dbi;

		if ((rc = mdb_dbi_open(txn, orphans[i], 0, &dbi)) != 0 ||
		    (rc = mdb_drop(txn, dbi, 1)) != 0)
			goto fail;
	}
	free(orphans);
	orphans = NULL;

	return 0;
fail:
	free(orphans);
	if (c != NULL)
		mdb_cursor_close(c);
	return rc;
}

/*
 * Opens the log's segments ("log", "log.N"), oldest first, the last one the writer's;
 * creates "log" in a new store. Those already flushed are dropped by open_consumed().
 */
static int
load_segs(struct store *s, MDB_txn *txn)
{
	struct run found[STORE_MAX_SEGS + STORE_MAX_RUNS];
	MDB_cursor *c = NULL;
	MDB_val k, v;
	MDB_dbi main_dbi;
	char name[32];
	size_t i, j, n = 0, old;
	int rc;

	if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0 ||
	    (rc = mdb_cursor_open(txn, main_dbi, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint64_t id = 0;
		char *end = NULL;

		if (k.mv_size < 3 || k.mv_size >= sizeof(name) || memcmp(k.mv_data, "log", 3) != 0)
			continue;
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = 0;
		if (k.mv_size > 3 &&
		    (name[3] != '.' || (id = strtoull(name + 4, &end, 10)) == 0 || *end != 0))
			continue;
		if (n >= sizeof(found) / sizeof(found[0])) {
			rc = MDB_DBS_FULL;
			break;
		}
		memset(&found[n], 0, sizeof(found[0]));
		found[n].id = id;
		found[n++].islog = 1;
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return rc;
	/* Names sort as text ("log.10" < "log.2"): by number. */
	for (i = 1; i < n; i++) {
		struct run x = found[i];

		for (j = i; j > 0 && found[j - 1].id > x.id; j--)
			found[j] = found[j - 1];
		found[j] = x;
	}
	if (n == 0) {
		memset(&found[0], 0, sizeof(found[0]));
		found[0].islog = 1;
		n = 1;
	}
	for (i = 0; i < n; i++) {
		seg_name(name, sizeof(name), found[i].id);
		if ((rc = mdb_dbi_open(txn, name, MDB_CREATE, &found[i].dbi)) != 0)
			return rc;
	}
	/*
	 * The writer keeps at most STORE_MAX_SEGS unflushed, but a crash can leave flushed
	 * ones not yet dropped besides (the compactor drops after a burst of flushes): those
	 * below the newest STORE_MAX_SEGS are retired here; open_consumed() checks that runs.mdb
	 * has them and drops them with the other flushed ones.
	 */
	old = n > STORE_MAX_SEGS ? n - STORE_MAX_SEGS : 0;
	for (i = 0; i < old; i++)
		s->retired[s->nretired++] = found[i];
	for (s->nsegs = 0; old + s->nsegs < n; s->nsegs++)
		s->segs[s->nsegs] = found[old + s->nsegs];
	s->log = s->segs[s->nsegs - 1].dbi;
	s->curseg = s->segs[s->nsegs - 1].id;
	return 0;
}

/* Loads or creates the metadata; drops runs left building or orphaned by a crash. */
static int
open_meta(struct store *s, MDB_txn *txn, char *errbuf, size_t errlen)
{
	uint32_t version;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	MDB_stat st;
	size_t i;
	int rc;

	rc = meta_get(txn, s->meta, "version", &version, sizeof(version));
	if (rc == MDB_NOTFOUND) {
		uint64_t one = 1;

		version = STORE_SCHEMA;
		if (fill_random(s->key, sizeof(s->key)) != 0) {
			snprintf(errbuf, errlen, "no random key: %s", strerror(errno));
			return EIO;
		}
		memset(&s->cnt, 0, sizeof(s->cnt));
		if ((rc = meta_put(txn, s->meta, "version", &version, sizeof(version))) != 0 ||
		    (rc = meta_put(txn, s->meta, "key", s->key, sizeof(s->key))) != 0 ||
		    (rc = meta_put(txn, s->meta, "seq", &one, 8)) != 0 ||
		    (rc = meta_put(txn, s->meta, "counters", &s->cnt, sizeof(s->cnt))) != 0 ||
		    (rc = meta_put(txn, s->meta, "hll", s->hll, HLL_M)) != 0 ||
		    (rc = meta_put(txn, s->meta, "custx", &s->cust_exact, 8)) != 0)
			return rc;
	} else if (rc != 0) {
		return rc;
	} else if (version == STORE_SCHEMA - 1) {
		/* Schema 4 is schema 5 without runs.mdb: its merged runs stay where they are. */
		version = STORE_SCHEMA;
		if ((rc = meta_put(txn, s->meta, "version", &version, sizeof(version))) != 0)
			return rc;
	} else if (version != STORE_SCHEMA) {
		snprintf(errbuf, errlen, "store schema %" PRIu32 ", expected %d", version,
		         STORE_SCHEMA);
		return MDB_VERSION_MISMATCH;
	}
	if ((rc = meta_get(txn, s->meta, "key", s->key, sizeof(s->key))) != 0 ||
	    (rc = meta_get(txn, s->meta, "seq", &s->next_seq, 8)) != 0 ||
	    (rc = meta_get(txn, s->meta, "counters", &s->cnt, sizeof(s->cnt))) != 0 ||
	    (rc = meta_get(txn, s->meta, "hll", s->hll, HLL_M)) != 0 ||
	    (rc = meta_get(txn, s->meta, "custx", &s->cust_exact, 8)) != 0)
		return rc;
	hll_hist_build(s);
	for (i = 0; i < sizeof(s->key); i++)
		s->key2[i] = (uint8_t)~s->key[i];

	if ((rc = load_dir(s, txn, s->meta, 0)) != 0 || (rc = load_segs(s, txn)) != 0)
		return rc;
	if ((rc = mdb_stat(txn, s->log, &st)) != 0)
		return rc;
	s->log_count = st.ms_entries;

	/* The dictionary, in id order. */
	s->dict_n = 1;
	if ((rc = mdb_cursor_open(txn, s->dict_rev, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const char *n = v.mv_data;

		if (k.mv_size != 4 || rd_be32(k.mv_data) != s->dict_n || v.mv_size < 2 ||
		    n[v.mv_size - 1] != 0) {
			rc = MDB_CORRUPTED;
			goto fail;
		}
		if ((rc = dict_add_mem(s, n, v.mv_size - 1,
		                       record_hash(s->key, n, v.mv_size - 1))) != 0)
			goto fail;
	}
	if (rc != MDB_NOTFOUND)
		goto fail;
	mdb_cursor_close(c);
	s->dict_committed = s->dict_n;
	atomic_store_explicit(&s->dict_pub, s->dict_n, memory_order_release);
	s->cnt_pub = s->cnt;
	s->customers_pub = customers_now(s);
	return 0;
fail:
	if (c != NULL)
		mdb_cursor_close(c);
	return rc;
}

/*
 * Drops the main runs runs.mdb marks consumed (a crash came between a merge's commit and
 * their drop), then the markers. Main first: a crash in between leaves only markers of
 * runs that no longer exist, which are cleared here next time.
 */
static int
open_consumed(struct store *s)
{
	MDB_txn *txn = NULL;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	uint8_t kb[9] = { 'x' };
	uint64_t *ux = NULL, gone[STORE_MAX_RETIRED];
	uint64_t other[STORE_MAX_RETIRED];
	size_t i, j, nx = 0, na = 0, nb = 0;
	int rc;

	if ((rc = mdb_txn_begin(s->envb, NULL, MDB_RDONLY, &txn)) != 0 ||
	    (rc = mdb_cursor_open(txn, s->metab, &c)) != 0)
		goto fail;
	k.mv_size = 1;
	k.mv_data = kb;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint64_t id;

		if (k.mv_size != 9 || ((uint8_t *)k.mv_data)[0] != 'x')
			break;
		id = rd_be64((uint8_t *)k.mv_data + 1);
		if (nx % 64 == 0) {
			void *np = realloc(ux, (nx + 64) * sizeof(*ux));

			if (np == NULL) {
				rc = ENOMEM;
				goto fail;
			}
			ux = np;
		}
		ux[nx++] = id;
		for (i = 0; i < s->nruns && (s->runs[i].inb || s->runs[i].id != id); i++)
			;
		if (i == s->nruns)
			continue;
		if (s->nretired >= STORE_MAX_RETIRED) {
			rc = MDB_CORRUPTED;
			break;
		}
		s->retired[s->nretired++] = s->runs[i];
		for (j = i + 1; j < s->nruns; j++)
			s->runs[j - 1] = s->runs[j];
		s->nruns--;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto fail;
	mdb_cursor_close(c);
	c = NULL;
	mdb_txn_abort(txn);
	txn = NULL;
	/* Log segments already in runs (a crash before the compactor dropped them). */
	for (i = 0; i < s->nretired; i++)
		if (s->retired[i].islog && s->retired[i].id >= s->nflushed) {
			rc = MDB_CORRUPTED; /* more unflushed segments than the writer makes */
			goto fail;
		}
	for (i = 0; i < s->nsegs && s->segs[i].id < s->nflushed; i++)
		s->retired[s->nretired++] = s->segs[i];
	if (i == s->nsegs) {
		rc = MDB_CORRUPTED; /* the writer's own segment is never flushed */
		goto fail;
	}
	for (j = i; j < s->nsegs; j++)
		s->segs[j - i] = s->segs[j];
	s->nsegs -= i;
	/* No reader or compactor yet. A failed drop fails the open: the markers stay. */
	rc = 0;
	if ((nx > 0 || s->nretired > 0) && (rc = drop_in(s, 0, NULL, 0, gone, &na, NULL, 0)) == 0)
		rc = drop_in(s, 1, ux, nx, other, &nb, NULL, 0);
	s->nretired = 0;
	free(ux);
	return rc;
fail:
	if (c != NULL)
		mdb_cursor_close(c);
	if (txn != NULL)
		mdb_txn_abort(txn);
	free(ux);
	return rc;
}

/*
 * A schema-4 store keeps its alias trees in the main environment: they are copied into
 * runs.mdb's, then dropped there (a crash in between copies them again: the same puts).
 */
static int
open_aliases(struct store *s)
{
	MDB_txn *ta = NULL, *tb = NULL;
	MDB_cursor *c = NULL;
	MDB_dbi a, ar;
	MDB_val k, v, rk;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &ta)) != 0)
		return rc;
	if ((rc = mdb_dbi_open(ta, "aliases", 0, &a)) == MDB_NOTFOUND) {
		mdb_txn_abort(ta);
		return 0;
	}
	if (rc != 0 || (rc = mdb_dbi_open(ta, "alias_rev", MDB_CREATE | MDB_DUPSORT, &ar)) != 0 ||
	    (rc = mdb_txn_begin(s->envb, NULL, 0, &tb)) != 0 ||
	    (rc = mdb_cursor_open(ta, a, &c)) != 0)
		goto fail;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (v.mv_size < 1) {
			rc = MDB_CORRUPTED;
			break;
		}
		rk.mv_size = v.mv_size - 1;
		rk.mv_data = v.mv_data;
		if ((rc = mdb_put(tb, s->aliases, &k, &v, 0)) != 0 ||
		    ((rc = mdb_put(tb, s->alias_rev, &rk, &k, 0)) != 0 && rc != MDB_KEYEXIST))
			break;
	}
	mdb_cursor_close(c);
	c = NULL;
	if (rc != MDB_NOTFOUND)
		goto fail;
	rc = mdb_txn_commit(tb);
	tb = NULL;
	if (rc != 0 || (rc = mdb_drop(ta, a, 1)) != 0 || (rc = mdb_drop(ta, ar, 1)) != 0)
		goto fail;
	return mdb_txn_commit(ta);
fail:
	if (c != NULL)
		mdb_cursor_close(c);
	if (tb != NULL)
		mdb_txn_abort(tb);
	mdb_txn_abort(ta);
	return rc;
}

/* Opens (or creates) runs.mdb next to the main environment and loads its runs. */
static int
open_runs(struct store *s, const struct store_options *o, char *errbuf, size_t errlen)
{
	char path[4096];
	MDB_txn *txn = NULL;
	uint32_t version;
	uint64_t first = RUNB_ID0 + 1;
	int rc, dead;

	if ((size_t)snprintf(path, sizeof(path), "%s/runs.mdb", o->path) >= sizeof(path)) {
		snprintf(errbuf, errlen, "store: path too long");
		return ENAMETOOLONG;
	}
	if ((rc = mdb_env_create(&s->envb)) != 0 ||
	    (rc = mdb_env_set_maxdbs(s->envb, STORE_MAXDBS)) != 0 ||
	    (rc = mdb_env_set_maxreaders(s->envb, 254)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->envb, o->map_size ? o->map_size : (size_t)1 << 30)) != 0) {
		set_err(errbuf, errlen, "store: runs environment", rc);
		return rc;
	}
	if ((rc = mdb_env_open(s->envb, path,
	                       MDB_NOSUBDIR | MDB_NOTLS | (o->nosync ? MDB_NOSYNC : 0), 0640)) !=
	    0) {
		set_err(errbuf, errlen, "store: open runs.mdb", rc);
		return rc;
	}
	mdb_reader_check(s->envb, &dead);
	if ((rc = open_headroom(s, s->envb)) != 0 ||
	    (rc = mdb_txn_begin(s->envb, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->metab)) != 0 ||
	    (rc = mdb_dbi_open(txn, "aliases", MDB_CREATE, &s->aliases)) != 0 ||
	    (rc = mdb_dbi_open(txn, "alias_rev", MDB_CREATE | MDB_DUPSORT, &s->alias_rev)) != 0)
		goto fail;
	rc = meta_get(txn, s->metab, "version", &version, sizeof(version));
	if (rc == MDB_NOTFOUND) {
		version = STORE_SCHEMA;
		if ((rc = meta_put(txn, s->metab, "version", &version, sizeof(version))) != 0 ||
		    (rc = meta_put(txn, s->metab, "nextrun", &first, 8)) != 0)
			goto fail;
	} else if (rc != 0) {
		goto fail;
	} else if (version != STORE_SCHEMA) {
		snprintf(errbuf, errlen, "store: runs.mdb schema %" PRIu32 ", expected %d", version,
		         STORE_SCHEMA);
		rc = MDB_VERSION_MISMATCH;
		goto fail;
	}
	if ((rc = load_dir(s, txn, s->metab, 1)) != 0)
		goto fail;
	if ((rc = meta_get(txn, s->metab, "flushed", &s->nflushed, 8)) == MDB_NOTFOUND)
		rc = 0;
	if (rc != 0)
		goto fail;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0 || (rc = open_consumed(s)) != 0 || (rc = open_aliases(s)) != 0)
		goto fail;
	return 0;
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (errbuf[0] == 0)
		set_err(errbuf, errlen, "store: runs.mdb", rc);
	return rc;
}

static void
scan_keep_free(struct scan_keep *kp)
{
	size_t t;

	free(kp->m);
	free(kp->tmp);
	free(kp->node);
	free(kp->nodes);
	free(kp->tnodes);
	free(kp->names);
	free(kp->remap);
	free(kp->flag);
	for (t = 0; t < SCAN_MAX_THREADS; t++)
		free(kp->st[t]);
	memset(kp, 0, sizeof(*kp));
}

static void
store_free(struct store *s)
{
	size_t c, i;

	if (s->envb != NULL)
		mdb_env_close(s->envb);
	if (s->env != NULL)
		mdb_env_close(s->env);
	for (c = 0; c < DICT_CHUNKS && s->dchunk[c] != NULL; c++) {
		for (i = 0; i < DICT_CHUNK; i++)
			free(s->dchunk[c][i]);
		free(s->dchunk[c]);
	}
	free(s->dtab);
	free(s->went);
	free(s->wtmp);
	free(s->fl);
	free(s->fltmp);
	scan_keep_free(&s->keep);
	if (s->ownfd >= 0)
		close(s->ownfd); /* last: the store is someone else's to open from here on */
	pthread_mutex_destroy(&s->amu);
	pthread_mutex_destroy(&s->gmu);
	pthread_cond_destroy(&s->gcv);
	pthread_mutex_destroy(&s->dmu);
	pthread_mutex_destroy(&s->bmu);
	pthread_mutex_destroy(&s->smu);
	pthread_mutex_destroy(&s->cmu);
	pthread_cond_destroy(&s->ccv);
	free(s);
}

/*
 * errno of a path the operator chose: PERMISSION_DENIED when it may not be written (EROFS
 * too: under systemd everything outside ReadWritePaths= is read-only), else other.
 */
static int
path_status(int e, int other)
{
	return e == EACCES || e == EPERM || e == EROFS ? TP_PERMISSION_DENIED : other;
}

/*
 * One process at a time owns a store. Opening drops what a crash left half done (runs being
 * built, flushed segments, consumed runs), which in a store another process has open is
 * its work in progress, and each process keeps the dictionary and the run directory in
 * memory. So a second opener is refused: an flock on owner.lock, which the kernel releases
 * when the owner exits or dies. The file holds the owner's pid, for the message.
 */
static int
own_store(struct store *s, const char *path, char *errbuf, size_t errlen)
{
	char file[4200], pid[24];
	ssize_t n;
	int fd, e;

	if ((size_t)snprintf(file, sizeof(file), "%s/owner.lock", path) >= sizeof(file)) {
		snprintf(errbuf, errlen, "store: path too long");
		return TP_INVALID_ARGUMENT;
	}
	if ((fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0) {
		e = errno;
		snprintf(errbuf, errlen, "store: %s: %s", file, strerror(e));
		return path_status(e, status_of(e));
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		e = errno;
		if (e != EWOULDBLOCK) {
			snprintf(errbuf, errlen, "store: lock %s: %s", file, strerror(e));
			close(fd);
			return status_of(e);
		}
		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strspn(pid, "0123456789")] = '\0';
		snprintf(errbuf, errlen, "store: %s is in use by another process%s%s%s", path,
		         pid[0] != '\0' ? " (pid " : "", pid, pid[0] != '\0' ? ")" : "");
		close(fd);
		return TP_FAILED_PRECONDITION;
	}
	/* The pid is only for that message: a failure to write it is no reason to stop. */
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		pid[0] = '\0';
	s->ownfd = fd;
	return TP_OK;
}

int
store_open(struct store **sp, const struct store_options *o, char *errbuf, size_t errlen)
{
	struct store *s;
	MDB_txn *txn = NULL;
	char dummy[1];
	int rc, dead;

	if (errbuf == NULL || errlen == 0) {
		errbuf = dummy;
		errlen = sizeof(dummy);
	}
	errbuf[0] = 0;
	*sp = NULL;
	if (o == NULL || o->path == NULL || o->path[0] == 0) {
		snprintf(errbuf, errlen, "store: no path");
		return TP_INVALID_ARGUMENT;
	}
	if (mkdir(o->path, 0750) != 0 && errno != EEXIST) {
		snprintf(errbuf, errlen, "store: mkdir %s: %s", o->path, strerror(errno));
		return errno == ENOSPC || errno == EDQUOT ? TP_RESOURCE_EXHAUSTED : TP_INTERNAL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(errbuf, errlen, "store: out of memory");
		return TP_RESOURCE_EXHAUSTED;
	}
	s->ownfd = -1;
	pthread_mutex_init(&s->gmu, NULL);
	pthread_cond_init(&s->gcv, NULL);
	pthread_mutex_init(&s->dmu, NULL);
	pthread_mutex_init(&s->bmu, NULL);
	pthread_mutex_init(&s->smu, NULL);
	pthread_mutex_init(&s->cmu, NULL);
	pthread_mutex_init(&s->amu, NULL);
	pthread_cond_init(&s->ccv, NULL);
	s->run_events = o->run_events ? o->run_events : 65536;
	s->no_copies = o->no_copies;
	s->quiet_ns = (uint64_t)o->quiet_ms * 1000000;
	atomic_store(&s->last_write_ns, mono_ns());
	s->merge_chunk = o->merge_chunk ? o->merge_chunk : MERGE_CHUNK;
	s->map_room = o->map_room ? o->map_room : MAP_ROOM;
	s->backup_pause = o->backup_pause;
	s->backup_pause_arg = o->backup_pause_arg;
	s->cnice_low = o->compactor_nice > 0 && o->compactor_nice <= 19 ? o->compactor_nice : 0;
	if ((rc = own_store(s, o->path, errbuf, errlen)) != TP_OK) {
		store_free(s);
		return rc;
	}

	if ((rc = mdb_env_create(&s->env)) != 0) {
		set_err(errbuf, errlen, "store: mdb_env_create", rc);
		goto fail;
	}
	if ((rc = mdb_env_set_maxdbs(s->env, STORE_MAXDBS)) != 0 ||
	    (rc = mdb_env_set_maxreaders(s->env, 254)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, o->map_size ? o->map_size : (size_t)1 << 30)) != 0) {
		set_err(errbuf, errlen, "store: environment", rc);
		goto fail;
	}
	if ((rc = mdb_env_open(s->env, o->path, MDB_NOTLS | (o->nosync ? MDB_NOSYNC : 0), 0640)) !=
	    0) {
		char what[64];

		snprintf(what, sizeof(what), "store: open %.40s", o->path);
		set_err(errbuf, errlen, what, rc);
		goto fail;
	}
	mdb_reader_check(s->env, &dead);
	if ((rc = open_headroom(s, s->env)) != 0) {
		set_err(errbuf, errlen, "store: map size", rc);
		goto fail;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "ids", MDB_CREATE, &s->ids)) != 0 ||
	    (rc = mdb_dbi_open(txn, "dict", MDB_CREATE, &s->dict)) != 0 ||
	    (rc = mdb_dbi_open(txn, "dict_rev", MDB_CREATE, &s->dict_rev)) != 0 ||
	    (rc = mdb_dbi_open(txn, "spend", MDB_CREATE, &s->spend)) != 0 ||
	    (rc = mdb_dbi_open(txn, "alog", MDB_CREATE, &s->alog)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "cust", MDB_CREATE, &s->cust)) != 0) {
		set_err(errbuf, errlen, "store: databases", rc);
		goto fail;
	}
	if ((rc = open_meta(s, txn, errbuf, errlen)) != 0) {
		if (errbuf[0] == 0)
			set_err(errbuf, errlen, "store: metadata", rc);
		goto fail;
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc != 0) {
		set_err(errbuf, errlen, "store: commit", rc);
		goto fail;
	}
	if ((rc = open_runs(s, o, errbuf, errlen)) != 0)
		goto fail;
	dir_publish(s); /* no other thread yet */
	if ((rc = pthread_create(&s->cthr, NULL, compactor, s)) != 0) {
		snprintf(errbuf, errlen, "store: compactor thread: %s", strerror(rc));
		goto fail;
	}
	s->cstarted = 1;
	*sp = s;
	return TP_OK;
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	store_free(s);
	return rc == MDB_VERSION_MISMATCH || rc == MDB_INVALID ? TP_INTERNAL : status_of(rc);
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->cstarted) {
		pthread_mutex_lock(&s->cmu);
		s->cstop = 1;
		pthread_cond_signal(&s->ccv);
		pthread_mutex_unlock(&s->cmu);
		pthread_join(s->cthr, NULL);
	}
	store_free(s);
}

/* ---- reading ---- */

/* SPEC §3 order within a customer: time, touches (and all else) before conversions, seq. */
static int
rank_of(int kind)
{
	return kind == ATTR_CONVERSION;
}

static int
order_cmp(int64_t ta, int ka, uint64_t sa, int64_t tb, int kb, uint64_t sb)
{
	int ra = rank_of(ka), rb = rank_of(kb);

	if (ta != tb)
		return ta < tb ? -1 : 1;
	if (ra != rb)
		return ra < rb ? -1 : 1;
	return sa < sb ? -1 : sa > sb;
}

static int
ev_cmp(const struct record *a, const struct record *b)
{
	return order_cmp(a->ts, a->kind, a->seq, b->ts, b->kind, b->seq);
}

static int
ev_qcmp(const void *a, const void *b)
{
	return ev_cmp(a, b);
}

static int
cid_cmp(const struct record *a, const struct record *b)
{
	size_t n = a->len[REC_CUSTOMER_ID] < b->len[REC_CUSTOMER_ID] ? a->len[REC_CUSTOMER_ID]
	                                                             : b->len[REC_CUSTOMER_ID];
	int c = memcmp(a->str[REC_CUSTOMER_ID], b->str[REC_CUSTOMER_ID], n);

	if (c != 0)
		return c;
	return (a->len[REC_CUSTOMER_ID] > b->len[REC_CUSTOMER_ID]) -
	       (a->len[REC_CUSTOMER_ID] < b->len[REC_CUSTOMER_ID]);
}

static int
cid_ev_qcmp(const void *a, const void *b)
{
	int c = cid_cmp(a, b);

	return c != 0 ? c : ev_cmp(a, b);
}

static int
same_cid(const struct record *a, const struct record *b)
{
	return a->len[REC_CUSTOMER_ID] == b->len[REC_CUSTOMER_ID] &&
	       memcmp(a->str[REC_CUSTOMER_ID], b->str[REC_CUSTOMER_ID], a->len[REC_CUSTOMER_ID]) ==
	           0;
}

/* Sorts records that arrive ordered by (ts, seq): only equal-time ranks move. */
static void
insertion_sort(struct record *r, size_t n)
{
	size_t i, j;

	for (i = 1; i < n; i++) {
		struct record t;

		if (ev_cmp(&r[i - 1], &r[i]) <= 0)
			continue;
		t = r[i];
		for (j = i; j > 0 && ev_cmp(&r[j - 1], &t) > 0; j--)
			r[j] = r[j - 1];
		r[j] = t;
	}
}

static int
cbuild_add(struct cbuild *b, uint64_t kh, uint64_t kt, uint64_t ks, const void *val, size_t len)
{
	int kind, rc;

	if (b->n > 0 && kh != b->h && (rc = cbuild_flush(b)) != 0)
		return rc;
	b->h = kh;
	if ((kind = record_kind(val, len)) < 0)
		return MDB_CORRUPTED;
	if (!record_compact_kind(kind))
		return 0;
	if (grow_buf((void **)&b->r, &b->cap, b->n + 1, sizeof(*b->r)) != 0)
		return ENOMEM;
	if (record_parse_scan(val, len, kh, unbias(kt), ks, &b->r[b->n]) != 0)
		return MDB_CORRUPTED;
	b->n++;
	return 0;
}

/* Puts the values of the customers of hash b->h: one, unless two ids share the hash. */
static int
cbuild_flush(struct cbuild *b)
{
	uint8_t key[COPY_KEY_MAX], *p;
	size_t i, j, k, need;
	MDB_val kv, vv;
	int rc;

	if (b->n == 0)
		return 0;
	for (i = 1; i < b->n && same_cid(&b->r[0], &b->r[i]); i++)
		;
	if (i == b->n)
		insertion_sort(b->r, b->n); /* in (ts, seq) order: only equal times move */
	else
		qsort(b->r, b->n, sizeof(*b->r), cid_ev_qcmp); /* keys: the ids' order */
	for (i = 0; i < b->n; i = j) {
		int64_t ts = 0;
		uint64_t seq = 0;

		need = 5;
		for (j = i; j < b->n && same_cid(&b->r[i], &b->r[j]); j++)
			need += record_compact_bound(&b->r[j]);
		if (j - i > UINT32_MAX)
			return ENOMEM;
		if (grow_buf((void **)&b->buf, &b->bcap, need, 1) != 0)
			return ENOMEM;
		p = record_compact_count_put(b->buf, (uint32_t)(j - i));
		for (k = i; k < j; k++)
			p = record_compact_put(&b->r[k], p, &ts, &seq);
		be64(key, b->h);
		memcpy(key + 8, b->r[i].str[REC_CUSTOMER_ID], b->r[i].len[REC_CUSTOMER_ID]);
		key[8 + b->r[i].len[REC_CUSTOMER_ID]] = 0;
		kv.mv_size = 8 + (size_t)b->r[i].len[REC_CUSTOMER_ID] + 1;
		kv.mv_data = key;
		vv.mv_size = (size_t)(p - b->buf);
		vv.mv_data = b->buf;
		if ((rc = mdb_cursor_put(b->c, &kv, &vv, MDB_APPEND)) != 0)
			return rc;
	}
	b->n = 0;
	return 0;
}

static void
cbuild_free(struct cbuild *b)
{
	free(b->r);
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

/*
 * A run's next records, read ahead of the merge. A tight loop of MDB_NEXT overlaps its
 * cache misses like store_walk does, and prefetching the values then means the merge,
 * whose next step depends on the key just read, finds them in cache.
 */
#define SCAN_AHEAD      32
#define SCAN_NODE_AHEAD 640 /* bytes: ≈ 8 copy values on */
struct sahead {
	MDB_val k[SCAN_AHEAD], v[SCAN_AHEAD];
	size_t pos, n;
	int eof;
};

static int
sahead_fill(struct sahead *a, MDB_cursor *c, MDB_cursor_op op)
{
	int rc = 0;

	a->pos = 0;
	a->n = 0;
	while (a->n < SCAN_AHEAD) {
		if ((rc = mdb_cursor_get(c, &a->k[a->n], &a->v[a->n], op)) != 0)
			break;
		__builtin_prefetch(a->v[a->n].mv_data);
		__builtin_prefetch((const char *)a->v[a->n].mv_data + 64);
		/*
		 * The nodes a few steps on: LMDB lays the keys of an appended page out from
		 * its end down, and the misses on them were ≈ 14 % of a one-thread scan. Not
		 * a miss to wait on when wrong (another page's line, or none).
		 */
		__builtin_prefetch((const void *)((uintptr_t)a->k[a->n].mv_data - SCAN_NODE_AHEAD));
		__builtin_prefetch(
		    (const void *)((uintptr_t)a->k[a->n].mv_data - SCAN_NODE_AHEAD - 64));
		a->n++;
		op = MDB_NEXT;
	}
	if (rc == MDB_NOTFOUND) {
		a->eof = 1;
		rc = 0;
	}
	return rc;
}

/* msrc_load() for the scan: runs are read through their read-ahead buffer. */
static int
scan_load(struct msrc *m, struct sahead *a, MDB_cursor_op op)
{
	int rc;

	if (m->cur == NULL)
		return msrc_load(m, op);
	if (op == MDB_FIRST || op == MDB_SET_RANGE) {
		a->eof = 0;
		a->k[0] = m->k; /* MDB_SET_RANGE: the key to start at */
		if ((rc = sahead_fill(a, m->cur, op)) != 0)
			return rc;
	} else if (++a->pos >= a->n) {
		if (a->eof)
			a->n = 0;
		else if ((rc = sahead_fill(a, m->cur, MDB_NEXT)) != 0)
			return rc;
	}
	if (a->pos >= a->n) {
		m->done = 1;
		return 0;
	}
	m->k = a->k[a->pos];
	m->v = a->v[a->pos];
	if (m->copy) {
		if (!copy_key_ok(&m->k))
			return MDB_CORRUPTED;
		m->kh = rd_be64(m->k.mv_data);
		m->kt = m->ks = 0;
		return 0;
	}
	if (m->k.mv_size != KEY_LEN)
		return MDB_CORRUPTED;
	msrc_decode(m);
	return 0;
}

/* heap_next() for the scan. */
static int
scan_next(struct mheap *hp, struct msrc *src, struct sahead *ahead)
{
	struct msrc *m = hp->h[0];
	int rc;

	if ((rc = scan_load(m, &ahead[m - src], MDB_NEXT)) != 0)
		return rc;
	if (m->done)
		hp->h[0] = hp->h[--hp->n];
	heap_down(hp, 0);
	return 0;
}

/* The sorted, unflushed log of a snapshot; values point into the map. */
static int
read_tail(const struct rsnap *snap, struct kitem **tail, size_t *cap, size_t *n)
{
	struct kitem *tmp = NULL;
	size_t tcap = 0;
	int rc = log_sorted(snap->txn, snap->logs, snap->nlogs, tail, cap, &tmp, &tcap, n);

	free(tmp);
	return rc;
}

/*
 * An id of the alias forest; the forest is in customer-hash order, the order the scan's
 * merge meets its ids in (alias_root_of walks it forward). name is NUL-terminated: in
 * scan_keep's names for an id of the trees (a key in the map has no NUL; the copy outlives
 * the snapshot for the next scan), in the snapshot's log for one only the log names.
 */
struct anode {
	const char *name;
	size_t len;
	uint64_t h;
	size_t parent, root;
};

/* Whether the id (name, len) is node x's. */
static inline int
anode_is(const struct anode *x, const void *name, size_t len)
{
	return x->len == len && memcmp(x->name, name, len) == 0;
}

/* What a stashed event holds: a record, a body in a run's copy, or a touch's own ids. */
enum { STASH_RECORD, STASH_COMPACT, STASH_TOUCH };

/*
 * An event of an aliased customer, held until the merge ends; val points into the map. A
 * touch with no name (nearly all of them) keeps its channel and campaign instead, so that
 * the alias parts need not read it from the map again (a cache miss an event). 32 bytes:
 * glibc's qsort sorts larger items through pointers, a cache miss a compare.
 */
struct stashed {
	uint32_t root;
	uint16_t len; /* <= RECORD_MAX */
	uint8_t rank;
	uint8_t how; /* STASH_* */
	int64_t ts;
	uint64_t seq;
	union {
		const uint8_t *val;
		struct {
			uint32_t channel, campaign;
		} touch;
	} u;
};

/*
 * One scanning thread's state. The alias forest (nodes, ah) is loaded once into the
 * first worker's and only read through copies of its pointers by the others; views,
 * traits and the stash are each worker's own.
 */
struct scan {
	struct store *s;
	store_customer_fn fn;
	void *arg;
	struct attr_event *views;
	size_t vcap;
	struct attr_trait *traits;
	size_t tcap;
	const struct anode *nodes; /* the alias forest (scan_keep's), in hash order */
	size_t nnodes;
	struct stashed *st;
	size_t nst, stcap;
	size_t apos, aend; /* nodes[apos, aend): the part's ids still ahead */
};

#define SCAN_PART_SHIFT 60 /* the scan's 16 parts: the top 4 bits of the customer hash */

/* One mention of an id of the alias forest (each alias has two). */
static void
alias_mention(const struct store *s, struct kitem *m, size_t *n, const char *name, size_t len)
{
	m[*n].kh = record_hash(s->key, name, len);
	m[*n].kt = 0;
	m[*n].ks = *n;
	m[*n].val = (const uint8_t *)name;
	m[*n].len = len;
	(*n)++;
}

/*
 * The node of mention m among the ids numbered so far for its hash (from node lo on): the
 * same hash is the same id but for a 64-bit collision, so this is one compare, rarely two.
 * A new id's name is copied to *names.
 */
static size_t
alias_node(struct anode *nodes, size_t *nn, size_t lo, const struct kitem *m, char **names)
{
	size_t i;

	for (i = lo; i < *nn; i++)
		if (anode_is(&nodes[i], m->val, m->len))
			return i;
	memcpy(*names, m->val, m->len);
	(*names)[m->len] = 0;
	nodes[i] = (struct anode){ *names, m->len, m->kh, SIZE_MAX, SIZE_MAX };
	*names += m->len + 1;
	(*nn)++;
	return i;
}

/*
 * Every id's root whose root is not known (SIZE_MAX), at any depth, each id walked once: up
 * to the first id whose root is known (or a root), then that root is set along the path.
 * Walking each id to its root cost the sum of the depths (n²/2 for a chain). A walk longer
 * than the forest is a cycle, which no alias rule made.
 */
static int
forest_roots(struct anode *nodes, size_t nn)
{
	size_t i, j, a, hops;

	for (i = 0; i < nn; i++) {
		for (a = i, hops = 0; nodes[a].root == SIZE_MAX && nodes[a].parent != SIZE_MAX;
		     a = nodes[a].parent)
			if (++hops > nn)
				return MDB_CORRUPTED;
		a = nodes[a].root != SIZE_MAX ? nodes[a].root : a;
		for (j = i; nodes[j].root == SIZE_MAX; j = nodes[j].parent) {
			nodes[j].root = a;
			if (j == a)
				break;
		}
	}
	return 0;
}

/* The ids of part p are nodes[abeg[p], abeg[p + 1]): the forest is in hash order. */
static void
forest_parts(const struct anode *nodes, size_t nn, size_t *abeg)
{
	size_t cnt[STORE_SCAN_PARTS + 1] = { 0 }, i;

	for (i = 0; i < nn; i++)
		cnt[(nodes[i].h >> SCAN_PART_SHIFT) + 1]++;
	for (i = 0; i < STORE_SCAN_PARTS; i++)
		cnt[i + 1] += cnt[i];
	memcpy(abeg, cnt, sizeof(cnt));
}

#define ALIAS_AHEAD 8 /* names compared this many mentions after their prefetch */

/*
 * The forest of the snapshot's alias trees into kp->tnodes, with every id's root. The ids are
 * numbered in customer-hash order: every mention is hashed, the mentions are sorted by hash
 * (radix), and equal ids, now side by side, become one node in a linear pass. A hash table
 * probed per mention cost a cache miss or three each (≈ 0.5 µs), on one thread before the
 * scan's threads start; and in hash order the forest is already the order the scan meets
 * its ids. The names are copied so that the forest outlives the snapshot.
 */
static int
forest_trees(struct store *s, const struct rsnap *snap, struct scan_keep *kp)
{
	struct kitem *m;
	uint32_t *node; /* per mention, its node */
	MDB_cursor *c = NULL;
	MDB_stat st;
	MDB_val k, v;
	size_t n = 0, cap, i, j, nb = 0;
	char *names;
	int rc;

	kp->tnn = 0;
	if ((rc = mdb_stat(snap->txnb, s->aliases, &st)) != 0)
		return rc;
	/* struct stashed's root and node[] are 32 bits, with room for the log's aliases */
	if (st.ms_entries > UINT32_MAX / 4)
		return ENOMEM;
	cap = 2 * st.ms_entries;
	if (cap == 0)
		goto done;
	if (grow_buf((void **)&kp->m, &kp->mcap, cap, sizeof(*kp->m)) != 0 ||
	    grow_buf((void **)&kp->tmp, &kp->tcap, cap, sizeof(*kp->tmp)) != 0 ||
	    grow_buf((void **)&kp->node, &kp->ncap, cap, sizeof(*kp->node)) != 0 ||
	    grow_buf((void **)&kp->tnodes, &kp->tnodescap, cap, sizeof(*kp->tnodes)) != 0)
		return ENOMEM;
	m = kp->m;
	node = kp->node;
	if ((rc = mdb_cursor_open(snap->txnb, s->aliases, &c)) != 0)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (v.mv_size < 1 || k.mv_size > RECORD_MAX_STR || v.mv_size > RECORD_MAX_STR + 1 ||
		    n + 2 > cap) {
			rc = MDB_CORRUPTED;
			break;
		}
		alias_mention(s, m, &n, k.mv_data, k.mv_size);
		alias_mention(s, m, &n, v.mv_data, v.mv_size - 1);
		nb += k.mv_size + v.mv_size + 1;
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return rc;
	if (grow_buf((void **)&kp->names, &kp->namescap, nb, 1) != 0)
		return ENOMEM;
	names = kp->names;
	kitem_sort(m, kp->tmp, n);
	for (i = 0; i < n; i = j) {
		size_t lo = kp->tnn;

		for (j = i; j < n && m[j].kh == m[i].kh; j++) {
			if (j + ALIAS_AHEAD < n)
				__builtin_prefetch(m[j + ALIAS_AHEAD].val);
			node[m[j].ks] =
			    (uint32_t)alias_node(kp->tnodes, &kp->tnn, lo, &m[j], &names);
		}
	}
	for (i = 0; i < n; i += 2)
		kp->tnodes[node[i]].parent = node[i + 1];
	if ((rc = forest_roots(kp->tnodes, kp->tnn)) != 0)
		return rc;
done:
	forest_parts(kp->tnodes, kp->tnn, kp->aabeg);
	return 0;
}

/*
 * The trees' forest (kp->tnodes) with the log's pending aliases ap put on top, into
 * kp->nodes: the pending ids not in the trees are merged in by hash (the others move up by
 * as many as come before them), the pending aliases set their parents in order (a later one
 * of an id replaces), and only the ids under a root that got a parent are walked again. A
 * pending alias's previous id has no alias in the trees (the first alias of an id wins), so
 * it is a root there or new. Names of new ids point into the snapshot's log.
 */
static int
forest_pending(struct store *s, const struct apend *ap, struct scan_keep *kp, size_t *nnp)
{
	const struct anode *t = kp->tnodes;
	struct kitem *m, *nw;
	size_t np = 2 * ap->n, n = 0, i, j, k, o, lo, hi, nnew = 0, nn;
	const uint64_t NEW = (uint64_t)1 << 63;

	if (kp->tnn + np > UINT32_MAX / 2)
		return ENOMEM;
	if (grow_buf((void **)&kp->m, &kp->mcap, np, sizeof(*kp->m)) != 0 ||
	    grow_buf((void **)&kp->tmp, &kp->tcap, np, sizeof(*kp->tmp)) != 0 ||
	    grow_buf((void **)&kp->node, &kp->ncap, np, sizeof(*kp->node)) != 0 ||
	    grow_buf((void **)&kp->nodes, &kp->nodescap, kp->tnn + np, sizeof(*kp->nodes)) != 0 ||
	    grow_buf((void **)&kp->remap, &kp->rcap, kp->tnn + 1, sizeof(*kp->remap)) != 0 ||
	    grow_buf((void **)&kp->flag, &kp->fcap, kp->tnn + np, 1) != 0)
		return ENOMEM;
	m = kp->m;
	for (i = 0; i < ap->n; i++) {
		alias_mention(s, m, &n, ap->e[i].prev, ap->e[i].pl);
		alias_mention(s, m, &n, ap->e[i].cust, ap->e[i].cl);
	}
	kitem_sort(m, kp->tmp, n);
	/* Each mention's id: kt is its tree node, or NEW | its place among the new ids (nw). */
	nw = kp->tmp;
	for (i = 0, lo = 0; i < n; i++) {
		for (hi = kp->tnn; lo < hi;) { /* the first tree id of the mention's hash */
			size_t mid = lo + (hi - lo) / 2;

			if (t[mid].h < m[i].kh)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (k = lo; k < kp->tnn && t[k].h == m[i].kh; k++)
			if (anode_is(&t[k], m[i].val, m[i].len))
				break;
		if (k < kp->tnn && t[k].h == m[i].kh) {
			m[i].kt = k;
			continue;
		}
		for (j = nnew; j > 0 && nw[j - 1].kh == m[i].kh; j--)
			if (nw[j - 1].len == m[i].len &&
			    memcmp(nw[j - 1].val, m[i].val, m[i].len) == 0)
				break;
		if (j > 0 && nw[j - 1].kh == m[i].kh) {
			m[i].kt = NEW | (j - 1);
			continue;
		}
		m[i].kt = NEW | nnew;
		nw[nnew++] = m[i];
	}
	/* The merge by hash: remap[tree node] and nw[].ks are the nodes' new places. */
	nn = kp->tnn + nnew;
	for (i = k = o = 0; o < nn; o++) {
		if (k == nnew || (i < kp->tnn && t[i].h <= nw[k].kh)) {
			kp->nodes[o] = t[i];
			kp->remap[i++] = (uint32_t)o;
		} else {
			kp->nodes[o] = (struct anode){ (const char *)nw[k].val, nw[k].len, nw[k].kh,
				                       SIZE_MAX, SIZE_MAX };
			nw[k++].ks = o;
		}
	}
	memset(kp->flag, 0, nn);
	for (o = 0; o < nn && nnew > 0; o++) {
		struct anode *x = &kp->nodes[o];

		if (x->root != SIZE_MAX) { /* a tree id: its links, renumbered */
			x->root = kp->remap[x->root];
			x->parent = x->parent == SIZE_MAX ? SIZE_MAX : kp->remap[x->parent];
		}
	}
	for (i = 0; i < n; i++)
		kp->node[m[i].ks] =
		    (uint32_t)((m[i].kt & NEW) ? nw[m[i].kt & ~NEW].ks : kp->remap[m[i].kt]);
	for (i = 0; i < n; i += 2) {
		kp->nodes[kp->node[i]].parent = kp->node[i + 1];
		kp->flag[kp->node[i]] = 1;
	}
	for (o = 0; o < nn; o++)
		if (kp->nodes[o].root != SIZE_MAX && kp->flag[kp->nodes[o].root])
			kp->nodes[o].root = SIZE_MAX;
	*nnp = nn;
	return forest_roots(kp->nodes, nn);
}

/*
 * The scan's alias forest and where each part's ids begin. The trees' forest is kept in kp
 * for the next scan while runs.mdb's "alias_gen" stays agen: building it is 0.4-0.8 s of one
 * thread before the ranges at 50 M events (1.4 M ids), putting the log's few pending
 * aliases on top of it ≈ a pass over its nodes.
 */
static int
forest_load(struct scan *sc, const struct rsnap *snap, const struct apend *ap, size_t *abeg,
            struct scan_keep *kp)
{
	uint64_t agen;
	int rc;

	if ((rc = alias_gen(sc->s, snap->txnb, &agen)) != 0)
		return rc;
	if (!kp->avalid || kp->agen != agen) {
		kp->avalid = 0;
		if ((rc = forest_trees(sc->s, snap, kp)) != 0)
			return rc;
		kp->avalid = 1;
		kp->agen = agen;
	}
	if (ap->n == 0) {
		sc->nodes = kp->tnodes;
		sc->nnodes = kp->tnn;
		memcpy(abeg, kp->aabeg, sizeof(kp->aabeg));
		return 0;
	}
	if ((rc = forest_pending(sc->s, ap, kp, &sc->nnodes)) != 0)
		return rc;
	sc->nodes = kp->nodes;
	forest_parts(kp->nodes, sc->nnodes, abeg);
	return 0;
}

/* Calls fn with one customer's events (sorted); alias and spend events are left out. */
static int
emit(struct scan *sc, const char *cid, const struct record *r, size_t n)
{
	size_t i, nv = 0, nt = 0;

	for (i = 0; i < n; i++)
		nt += r[i].kind == ATTR_IDENTIFY ? r[i].ntraits : 0;
	if (grow_buf((void **)&sc->views, &sc->vcap, n, sizeof(*sc->views)) != 0 ||
	    grow_buf((void **)&sc->traits, &sc->tcap, nt + 1, sizeof(*sc->traits)) != 0)
		return TP_RESOURCE_EXHAUSTED;
	for (i = 0, nt = 0; i < n; i++) {
		if (r[i].kind == ATTR_ALIAS || r[i].kind == ATTR_SPEND)
			continue;
		if (r[i].kind == ATTR_IDENTIFY && r[i].ntraits > 0) {
			record_traits(&r[i], sc->traits + nt);
			record_view(&r[i], &sc->views[nv++], sc->traits + nt);
			nt += r[i].ntraits;
		} else {
			record_view(&r[i], &sc->views[nv++], NULL);
		}
	}
	if (nv == 0)
		return 0;
	return sc->fn(sc->arg, cid, sc->views, nv);
}

/*
 * The alias root of a customer, or SIZE_MAX. Customers come in hash order, so one
 * forward-moving position replaces a hash-table probe (a cache miss) per customer.
 */
static size_t
alias_root_of(struct scan *sc, uint64_t h, const char *name, size_t len)
{
	size_t k;

	if (sc->apos < sc->aend && sc->nodes[sc->apos].h < h) {
		while (sc->apos < sc->aend && sc->nodes[sc->apos].h < h)
			sc->apos++;
		/*
		 * The next aliased id's name lives in the map (a miss when its customer comes):
		 * fetched now, many customers ahead, it is in cache by then.
		 */
		if (sc->apos < sc->aend)
			__builtin_prefetch(sc->nodes[sc->apos].name);
	}
	for (k = sc->apos; k < sc->aend && sc->nodes[k].h == h; k++)
		if (anode_is(&sc->nodes[k], name, len))
			return sc->nodes[k].root;
	return SIZE_MAX;
}

/* One customer's records, sorted: emitted now, or stashed when aliases are involved. */
static int
customer(struct scan *sc, struct record *r, size_t n)
{
	size_t a, i;

	if (sc->nnodes == 0 || (a = alias_root_of(sc, r[0].cust, r[0].str[REC_CUSTOMER_ID],
	                                          r[0].len[REC_CUSTOMER_ID])) == SIZE_MAX)
		return emit(sc, r[0].str[REC_CUSTOMER_ID], r, n);
	if (grow_buf((void **)&sc->st, &sc->stcap, sc->nst + n, sizeof(*sc->st)) != 0)
		return TP_RESOURCE_EXHAUSTED;
	for (i = 0; i < n; i++) {
		struct stashed *x = &sc->st[sc->nst++];

		x->root = (uint32_t)a;
		x->ts = r[i].ts;
		x->seq = r[i].seq;
		x->rank = (uint8_t)rank_of(r[i].kind);
		x->len = (uint16_t)(r[i].end - r[i].val); /* record_parse_scan: <= RECORD_MAX */
		if (r[i].kind == ATTR_TOUCH && r[i].name == 0) {
			x->how = STASH_TOUCH;
			x->u.touch.channel = r[i].channel;
			x->u.touch.campaign = r[i].campaign;
		} else {
			x->how = (r[i].flags & RECORD_F_COMPACT) ? STASH_COMPACT : STASH_RECORD;
			x->u.val = r[i].val;
		}
	}
	return 0;
}

/* All records of one customer hash: usually one customer, split if hashes collide. */
static int
group(struct scan *sc, struct record *g, size_t n)
{
	size_t i, j;
	int rv;

	for (i = 1; i < n && same_cid(&g[0], &g[i]); i++)
		;
	if (i == n) {
		insertion_sort(g, n);
		return customer(sc, g, n);
	}
	qsort(g, n, sizeof(*g), cid_ev_qcmp);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && same_cid(&g[i], &g[j]); j++)
			;
		if ((rv = customer(sc, g + i, j - i)) != 0)
			return rv;
	}
	return 0;
}

static int
stash_cmp(const void *a, const void *b)
{
	const struct stashed *x = a, *y = b;

	if (x->root != y->root)
		return x->root < y->root ? -1 : 1;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
stash_pcmp(const void *a, const void *b)
{
	return stash_cmp(*(const struct stashed *const *)a, *(const struct stashed *const *)b);
}

/* Insertion sort of one root's entries: a few customers' already sorted records. */
static void
stash_isort(const struct stashed **x, size_t n)
{
	size_t i, j;

	for (i = 1; i < n; i++) {
		const struct stashed *t;

		if (stash_cmp(x[i - 1], x[i]) <= 0)
			continue;
		t = x[i];
		for (j = i; j > 0 && stash_cmp(x[j - 1], t) > 0; j--)
			x[j] = x[j - 1];
		x[j] = t;
	}
}

#define STASH_AHEAD 16 /* stashed values prefetched ahead of their parse */

/*
 * The aliased customers whose entries are *sp[lo, hi) (whole roots), each ordered by
 * (ts, rank, seq) and emitted under its canonical id. The entries lie in the workers'
 * stashes in the order the ranges met them: the loads of the ones ahead are started early.
 */
static int
emit_stash(struct scan *sc, const struct stashed **sp, size_t lo, size_t hi)
{
	struct record *buf = NULL;
	size_t i, j, k, cap = 0;
	int rv = 0;

	for (i = lo; i < hi && rv == 0; i = j) {
		for (j = i + 1; j < hi && sp[j]->root == sp[i]->root; j++)
			if (j + 2 * STASH_AHEAD < hi)
				__builtin_prefetch(sp[j + 2 * STASH_AHEAD]);
		if (j - i <= 32)
			stash_isort(sp + i, j - i);
		else
			qsort(sp + i, j - i, sizeof(*sp), stash_pcmp);
		if (grow_buf((void **)&buf, &cap, j - i, sizeof(*buf)) != 0) {
			rv = TP_RESOURCE_EXHAUSTED;
			break;
		}
		for (k = i; k < j && rv == 0; k++) {
			const struct stashed *x = sp[k];
			struct record *r = &buf[k - i];

			/* The values are scattered over the map: keep a few misses in flight. */
			if (k + STASH_AHEAD < hi && sp[k + STASH_AHEAD]->how != STASH_TOUCH) {
				__builtin_prefetch(sp[k + STASH_AHEAD]->u.val);
				__builtin_prefetch(sp[k + STASH_AHEAD]->u.val + 64);
			}
			if (x->how == STASH_TOUCH) {
				/* what emit() and record_view() read of a touch */
				r->kind = ATTR_TOUCH;
				r->channel = x->u.touch.channel;
				r->campaign = x->u.touch.campaign;
				r->name = 0;
				r->ntraits = 0;
				r->ts = x->ts;
				r->seq = x->seq;
				continue;
			}
			if ((x->how == STASH_COMPACT
			         ? record_compact_body(x->u.val, x->len, x->ts, x->seq, r)
			         : record_parse_scan(x->u.val, x->len, 0, x->ts, x->seq, r)) != 0)
				rv =
				    TP_INTERNAL; /* parsed once already: the map changed under us */
		}
		if (rv == 0)
			rv = emit(sc, sc->nodes[sp[i]->root].name, buf, j - i);
	}
	free(buf);
	return rv;
}

/*
 * The partitioned scan. The customer-hash space is cut into STORE_SCAN_PARTS fixed,
 * contiguous ranges; a range is a k-way merge of every run's cursor positioned at its first
 * key and of its slice of the sorted log tail, so the parts are independent and a fixed
 * partition makes every part's stream, and so the results, the same for any thread count.
 * Each thread reads through its own read transaction; all of them hold one snapshot.
 */
#define SCAN_SNAP_TRIES 8
_Static_assert(STORE_SCAN_PARTS == 1u << (64 - SCAN_PART_SHIFT), "parts are hash prefixes");

struct pscan {
	struct store *s;
	store_customer_fn fn;
	store_part_fn done;
	void *const *args;
	const struct rsnap *snap;
	const struct kitem *tail;
	size_t ntail;
	int copies;                /* the ranges read the runs' copies (scan_part_c) */
	const struct stashed **sp; /* the alias phase: every worker's stash, grouped by root */
	const size_t *first;
	size_t nnodes;
	size_t
	    abeg[STORE_SCAN_PARTS + 1]; /* the alias ids of part p: nodes[abeg[p], abeg[p + 1]) */
	unsigned end;     /* the phase: STORE_SCAN_PARTS (hash ranges), then STORE_SCAN_NPARTS */
	atomic_uint next; /* the next part to take */
	atomic_int stop;  /* set by the first failing part: every worker stops */
	int res[STORE_SCAN_NPARTS];
};

/* Aligned: the workers' hot fields (the scan's position, counts) share no cache line. */
struct pworker {
	_Alignas(64) struct pscan *ps;
	struct scan sc;
	MDB_txn *txn, *txnb;
	MDB_cursor **cur;
	struct msrc *src, **hv;
	struct sahead *ahead;
	struct record *g;
	size_t gcap;
	MDB_val *cv; /* scan_part_c: a customer's keys and values, in pairs */
	size_t cvcap;
	pthread_t thr;
	int started, rc;
};

/* First index of a sorted array whose key is >= h. */
static size_t
tail_lower(const struct kitem *t, size_t n, uint64_t h)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t[mid].kh < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Starts part p: its callback, its slice of the alias forest, and a heap of the runs'
 * cursors (or their copies') positioned at the range's first key kb (KEY_LEN zeroed bytes).
 */
static int
part_open(struct pworker *w, unsigned p, int copy, uint8_t *kb, struct mheap *hp)
{
	struct pscan *ps = w->ps;
	size_t i;
	int rc;

	w->sc.fn = ps->fn;
	w->sc.arg = ps->args[p];
	w->sc.apos = ps->abeg[p];
	w->sc.aend = ps->abeg[p + 1];
	memset(kb, 0, KEY_LEN);
	be64(kb, (uint64_t)p << SCAN_PART_SHIFT);
	memset(w->src, 0, (ps->snap->n + 1) * sizeof(*w->src));
	hp->h = w->hv;
	hp->n = 0;
	for (i = 0; i < ps->snap->n; i++) {
		w->src[i].cur = w->cur[i];
		w->src[i].copy = copy;
		w->src[i].k.mv_size = copy ? 8 : KEY_LEN; /* a copy's key: hash, id, NUL */
		w->src[i].k.mv_data = kb;
		if ((rc = scan_load(&w->src[i], &w->ahead[i], MDB_SET_RANGE)) != 0)
			return rc;
		w->hv[hp->n++] = &w->src[i];
	}
	return 0;
}

/* One part's customers, in hash order, to fn(args[p]); 0 also when told to stop. */
static int
scan_part(struct pworker *w, unsigned p)
{
	struct pscan *ps = w->ps;
	struct scan *sc = &w->sc;
	size_t nruns = ps->snap->n, ng = 0, a, b;
	uint64_t lo = (uint64_t)p << SCAN_PART_SHIFT, hi = (uint64_t)(p + 1) << SCAN_PART_SHIFT;
	int last = p + 1 == STORE_SCAN_PARTS;
	uint8_t kb[KEY_LEN];
	uint64_t cur = 0;
	struct mheap hp;
	int rc = 0, rv = 0;

	if ((rc = part_open(w, p, 0, kb, &hp)) != 0)
		goto out;
	a = tail_lower(ps->tail, ps->ntail, lo);
	b = last ? ps->ntail : tail_lower(ps->tail, ps->ntail, hi);
	w->src[nruns].arr = ps->tail + a;
	w->src[nruns].n = b - a;
	if ((rc = msrc_load(&w->src[nruns], MDB_FIRST)) != 0)
		goto out;
	w->hv[hp.n++] = &w->src[nruns];
	heap_build(&hp);

	while (hp.n > 0) {
		struct msrc *m = hp.h[0];
		uint64_t h = m->kh;

		if (!last && h >= hi)
			break;
		if (ng > 0 && h != cur) {
			if ((rv = group(sc, w->g, ng)) != 0)
				goto out;
			ng = 0;
			/* Another part failed: its error is the answer, this part's is moot. */
			if (atomic_load_explicit(&ps->stop, memory_order_relaxed))
				goto out;
		}
		cur = h;
		if ((rc = grow_buf((void **)&w->g, &w->gcap, ng + 1, sizeof(*w->g))) != 0)
			goto out;
		if (record_parse_scan(m->v.mv_data, m->v.mv_size, m->kh, unbias(m->kt), m->ks,
		                      &w->g[ng]) != 0) {
			rc = MDB_CORRUPTED;
			goto out;
		}
		ng++;
		if ((rc = scan_next(&hp, w->src, w->ahead)) != 0)
			goto out;
	}
	if (ng > 0)
		rv = group(sc, w->g, ng);
out:
	if (rv != 0)
		return rv;
	return rc == MDB_CORRUPTED ? TP_INTERNAL : status_of(rc);
}

static int
view_cmp(const struct attr_event *a, const struct attr_event *b)
{
	return order_cmp(a->ts_us, a->kind, a->seq, b->ts_us, b->kind, b->seq);
}

static int
view_qcmp(const void *a, const void *b)
{
	return view_cmp(a, b);
}

/*
 * The common customer of scan_part_c: every value w->cv[0..nv) is of one customer id, none
 * of its events is in the log tail (intail) and it has no alias. Its events are decoded
 * straight into the engine's views (no struct record) and emitted (*done, *fnrv: what fn
 * returned). Otherwise *done is 0 and the caller takes the general way. Returns 0,
 * MDB_CORRUPTED or ENOMEM.
 */
static int
copy_customer(struct scan *sc, struct pworker *w, uint64_t h, size_t nv, int intail, int *done,
              int *fnrv)
{
	const MDB_val *k0;
	const char *cid;
	size_t i, j, n = 0, nb = 0, nt, used = 0;

	*done = 0;
	if (intail || nv == 0)
		return 0;
	k0 = &w->cv[0];
	cid = (const char *)k0->mv_data + 8;
	for (i = 1; i < nv; i++)
		if (w->cv[2 * i].mv_size != k0->mv_size ||
		    memcmp(w->cv[2 * i].mv_data, k0->mv_data, k0->mv_size) != 0)
			return 0;
	if (sc->nnodes > 0 && alias_root_of(sc, h, cid, k0->mv_size - 9) != SIZE_MAX)
		return 0;
	*done = 1;
	for (i = 0; i < nv; i++) {
		const uint8_t *first;
		uint32_t cnt;

		if (record_compact_count(w->cv[2 * i + 1].mv_data, w->cv[2 * i + 1].mv_size, &cnt,
		                         &first) != 0)
			return MDB_CORRUPTED;
		n += cnt;
		nb += w->cv[2 * i + 1].mv_size;
	}
	if (grow_buf((void **)&sc->views, &sc->vcap, n, sizeof(*sc->views)) != 0 ||
	    grow_buf((void **)&sc->traits, &sc->tcap, nb / 4 + nv, sizeof(*sc->traits)) != 0)
		return ENOMEM;
	for (i = 0, j = 0; i < nv; i++) {
		const uint8_t *first, *v = w->cv[2 * i + 1].mv_data;
		uint32_t cnt;

		(void)record_compact_count(v, w->cv[2 * i + 1].mv_size, &cnt, &first);
		if (record_compact_views(first, v + w->cv[2 * i + 1].mv_size, cnt, sc->views + j,
		                         sc->traits + used, &nt) != 0)
			return MDB_CORRUPTED;
		j += cnt;
		used += nt;
	}
	/* Each run's events are in order already: a few from two runs sort by insertion. */
	if (nv > 1 && n > 32) {
		qsort(sc->views, n, sizeof(*sc->views), view_qcmp);
	} else if (nv > 1) {
		for (i = 1; i < n; i++) {
			struct attr_event t = sc->views[i];

			for (j = i; j > 0 && view_cmp(&sc->views[j - 1], &t) > 0; j--)
				sc->views[j] = sc->views[j - 1];
			sc->views[j] = t;
		}
	}
	*fnrv = sc->fn(sc->arg, cid, sc->views, n);
	return 0;
}

/*
 * scan_part() over the runs' copies: the merge steps once per customer and run instead of
 * once per event, and reads ≈ 13 bytes an event instead of ≈ 50 (and their keys). A
 * customer's events from several runs and the log tail are sorted together (each source
 * is sorted already; group() sorts a few by insertion).
 */
static int
scan_part_c(struct pworker *w, unsigned p)
{
	struct pscan *ps = w->ps;
	struct scan *sc = &w->sc;
	size_t i, ng, nsrc, nv, t, tend;
	uint64_t lo = (uint64_t)p << SCAN_PART_SHIFT, hi = (uint64_t)(p + 1) << SCAN_PART_SHIFT;
	int last = p + 1 == STORE_SCAN_PARTS, done;
	uint8_t kb[KEY_LEN];
	struct mheap hp;
	int rc = 0, rv = 0;

	if ((rc = part_open(w, p, 1, kb, &hp)) != 0)
		goto out;
	heap_build(&hp);
	t = tail_lower(ps->tail, ps->ntail, lo);
	tend = last ? ps->ntail : tail_lower(ps->tail, ps->ntail, hi);
	for (;;) {
		uint64_t h;

		if (hp.n > 0 && (t == tend || hp.h[0]->kh <= ps->tail[t].kh))
			h = hp.h[0]->kh;
		else if (t < tend)
			h = ps->tail[t].kh;
		else
			break;
		if (!last && h >= hi)
			break;
		/* This hash's values, one a run that has the customer. */
		for (nv = 0; hp.n > 0 && hp.h[0]->kh == h; nv++) {
			if ((rc = grow_buf((void **)&w->cv, &w->cvcap, 2 * (nv + 1),
			                   sizeof(*w->cv))) != 0)
				goto out;
			w->cv[2 * nv] = hp.h[0]->k;
			w->cv[2 * nv + 1] = hp.h[0]->v;
			if ((rc = scan_next(&hp, w->src, w->ahead)) != 0)
				goto out;
		}
		if ((rc = copy_customer(sc, w, h, nv, t < tend && ps->tail[t].kh == h, &done,
		                        &rv)) != 0 ||
		    (done && rv != 0))
			goto out;
		if (done)
			goto next;
		/* A customer with events in the log tail, aliased, or sharing its hash. */
		for (ng = nsrc = 0; nsrc < nv; nsrc++) {
			const MDB_val *k = &w->cv[2 * nsrc], *v = k + 1;
			const uint8_t *first, *vb = v->mv_data;
			uint32_t cnt;

			if (record_compact_count(vb, v->mv_size, &cnt, &first) != 0) {
				rc = MDB_CORRUPTED;
				goto out;
			}
			if ((rc = grow_buf((void **)&w->g, &w->gcap, ng + cnt, sizeof(*w->g))) != 0)
				goto out;
			if (record_compact_parse(first, vb + v->mv_size, cnt, h,
			                         (const char *)k->mv_data + 8,
			                         (uint16_t)(k->mv_size - 9), w->g + ng) != 0) {
				rc = MDB_CORRUPTED;
				goto out;
			}
			ng += cnt;
		}
		for (i = 0; t < tend && ps->tail[t].kh == h; t++, i++) {
			const struct kitem *x = &ps->tail[t];

			if ((rc = grow_buf((void **)&w->g, &w->gcap, ng + 1, sizeof(*w->g))) != 0)
				goto out;
			if (record_parse_scan(x->val, x->len, h, unbias(x->kt), x->ks, &w->g[ng]) !=
			    0) {
				rc = MDB_CORRUPTED;
				goto out;
			}
			ng++;
		}
		nsrc += i > 0;
		if (nsrc > 1 && ng > 32)
			qsort(w->g, ng, sizeof(*w->g), ev_qcmp);
		if (ng > 0 && (rv = group(sc, w->g, ng)) != 0)
			goto out;
	next:
		/* Another part failed: its error is the answer, this part's is moot. */
		if (atomic_load_explicit(&ps->stop, memory_order_relaxed))
			goto out;
	}
out:
	if (rv != 0)
		return rv;
	return rc == MDB_CORRUPTED ? TP_INTERNAL : status_of(rc);
}

/* Alias part a: the roots of the a-th of STORE_SCAN_ALIAS_PARTS equal slices of the forest. */
static int
alias_part(struct pworker *w, unsigned a)
{
	struct pscan *ps = w->ps;
	size_t r0 = ps->nnodes * a / STORE_SCAN_ALIAS_PARTS;
	size_t r1 = ps->nnodes * (a + 1) / STORE_SCAN_ALIAS_PARTS;

	w->sc.fn = ps->fn;
	w->sc.arg = ps->args[STORE_SCAN_PARTS + a];
	if (ps->first == NULL)
		return 0;
	return emit_stash(&w->sc, ps->sp, ps->first[r0], ps->first[r1]);
}

/* Takes parts in order until none is left or one failed. */
static void *
scan_worker(void *arg)
{
	struct pworker *w = arg;
	struct pscan *ps = w->ps;
	size_t nruns = ps->snap->n, i;
	unsigned p;
	int r;

	for (i = 0; i < nruns && ps->end == STORE_SCAN_PARTS; i++)
		if (w->cur[i] == NULL &&
		    (w->rc = ps->copies ? mdb_cursor_open(w->txnb, ps->snap->cdbi[i], &w->cur[i])
		                        : mdb_cursor_open(run_txn(ps->snap, w->txn, w->txnb, i),
		                                          ps->snap->dbi[i], &w->cur[i])) != 0) {
			w->rc = status_of(w->rc);
			atomic_store(&ps->stop, 1);
			return NULL;
		}
	while (!atomic_load(&ps->stop) && (p = atomic_fetch_add(&ps->next, 1)) < ps->end) {
		if (p >= STORE_SCAN_PARTS)
			r = alias_part(w, p - STORE_SCAN_PARTS);
		else
			r = ps->copies ? scan_part_c(w, p) : scan_part(w, p);
		/* A part cut short by another's failure is not done: no call. */
		if (r == 0 && ps->done != NULL && !atomic_load(&ps->stop))
			r = ps->done(ps->args[p], p);
		if (r != 0) {
			ps->res[p] = r;
			atomic_store(&ps->stop, 1);
		}
	}
	return NULL;
}

/* A scan worker of its own thread, named for top -H, perf and ps -L (best effort). */
static void *
scan_thread(void *arg)
{
	(void)prctl(PR_SET_NAME, "tp-scan");
	return scan_worker(arg);
}

/* Runs parts [next, end) on n workers, this thread being worker 0. */
static void
run_pool(struct pworker *w, unsigned n)
{
	unsigned t;

	for (t = 1; t < n; t++)
		w[t].started = pthread_create(&w[t].thr, NULL, scan_thread, &w[t]) == 0;
	scan_worker(&w[0]);
	for (t = 1; t < n; t++)
		if (w[t].started)
			pthread_join(w[t].thr, NULL);
}

/*
 * The snapshot and up to *n read transactions on it. A commit between two mdb_txn_begin
 * calls would give them different snapshots: then all are begun again, and after a few
 * tries the scan makes do with one. The gate taken by read_begin covers every one of them
 * (entering it again could deadlock behind a pending map growth).
 */
/*
 * A worker's read transaction: in the main environment on the snapshot's txnid (like); in
 * runs.mdb any later one will do, because the snapshot's runs are complete, immutable and
 * kept from being dropped while it holds run_readers (like == NULL).
 */
static int
snap_begin(MDB_env *env, MDB_txn *like, MDB_txn **txn)
{
	int rc;

	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, txn)) != 0)
		return rc;
	if (like == NULL || mdb_txn_id(*txn) == mdb_txn_id(like))
		return 0;
	mdb_txn_abort(*txn);
	return -1;
}

static int
pscan_begin(struct store *s, struct rsnap *snap, MDB_txn **txn, MDB_txn **txnb, unsigned *n)
{
	MDB_env *grow = NULL;
	unsigned i, tries;
	int rc;

	for (tries = 0;; tries++) {
		if ((rc = read_begin(s, snap)) != 0)
			return rc;
		txn[0] = snap->txn;
		txnb[0] = snap->txnb;
		for (i = 1; i < *n; i++) {
			grow = s->env;
			if ((rc = snap_begin(s->env, txn[0], &txn[i])) != 0)
				break;
			grow = s->envb;
			if ((rc = snap_begin(s->envb, NULL, &txnb[i])) != 0) {
				mdb_txn_abort(txn[i]);
				break;
			}
		}
		if (i == *n)
			return 0;
		if (rc != -1 && rc != MDB_MAP_RESIZED) {
			*n = i; /* e.g. MDB_READERS_FULL: fewer threads */
			return 0;
		}
		while (i-- > 1) {
			mdb_txn_abort(txnb[i]);
			mdb_txn_abort(txn[i]);
		}
		if (tries + 1 >= SCAN_SNAP_TRIES) {
			*n = 1;
			return 0;
		}
		read_end(s, snap);
		if (rc == MDB_MAP_RESIZED && (rc = grow_map(s, grow, 0)) != 0)
			return rc;
	}
}

static unsigned
scan_threads(unsigned want)
{
	long np;

	if (want == 0) {
		np = sysconf(_SC_NPROCESSORS_ONLN);
		want = np < 1 ? 1 : np > SCAN_MAX_THREADS ? SCAN_MAX_THREADS : (unsigned)np;
	}
	return want > SCAN_MAX_THREADS ? SCAN_MAX_THREADS : want;
}

/*
 * Every worker's stash as one, grouped by root in root order: roots are dense node
 * indexes, so a counting sort does it in two linear passes instead of n log n compares.
 * It sorts pointers into the stashes, not the 32-byte entries: at 50 M events the stash is
 * ≈ 3.4 M entries, and a grouped copy was 109 MB of fresh pages faulted in on this serial
 * path. first[r] is where root r's entries begin (first[nnodes] = the total). Each root's
 * few entries (its customers' runs, each sorted already) are ordered later, by the alias
 * part that emits them, so the order the workers stashed in does not matter.
 */
static int
stash_group(struct pworker *w, unsigned n, const struct stashed ***spp, size_t **firstp)
{
	const struct scan *fo = &w[0].sc;
	const struct stashed **out = NULL;
	size_t *cnt, i, r, total = 0;
	unsigned t;

	for (t = 0; t < n; t++)
		total += w[t].sc.nst;
	if ((cnt = calloc(fo->nnodes + 1, sizeof(*cnt))) == NULL)
		return ENOMEM;
	if (total > 0 && (out = malloc(total * sizeof(*out))) == NULL) {
		free(cnt);
		return ENOMEM;
	}
	for (t = 0; t < n; t++)
		for (i = 0; i < w[t].sc.nst; i++)
			cnt[w[t].sc.st[i].root + 1]++;
	for (r = 0; r < fo->nnodes; r++)
		cnt[r + 1] += cnt[r];
	for (t = 0; t < n; t++)
		for (i = 0; i < w[t].sc.nst; i++)
			out[cnt[w[t].sc.st[i].root]++] = &w[t].sc.st[i];
	/* cnt[r] now ends root r: shifted by one, it is where root r begins. */
	memmove(cnt + 1, cnt, fo->nnodes * sizeof(*cnt));
	cnt[0] = 0;
	*spp = out;
	*firstp = cnt;
	return 0;
}

int
store_scan_parts(struct store *s, unsigned threads, store_customer_fn fn, store_part_fn done,
                 void *const *args)
{
	struct pscan ps = { .s = s, .fn = fn, .done = done, .args = args };
	struct pworker w[SCAN_MAX_THREADS];
	MDB_txn *txn[SCAN_MAX_THREADS], *txnb[SCAN_MAX_THREADS];
	struct rsnap snap;
	struct kitem *tail = NULL;
	struct scan *fo = &w[0].sc;
	struct apend ap = { 0 };
	size_t tcap = 0, ntail = 0, i, *first = NULL;
	const struct stashed **sp = NULL;
	unsigned n = scan_threads(threads), t;
	struct scan_keep own = { 0 }, *kp = &own;
	int rc, rv = 0, lent;

	memset(w, 0, sizeof(w));
	if ((rc = pscan_begin(s, &snap, txn, txnb, &n)) != 0)
		return status_of(rc);
	ps.snap = &snap;
	ps.copies = snap.copies;
	fo->s = s;
	/* The store's alias buffers, unless another scan has them: then this one makes its own. */
	if ((lent = pthread_mutex_trylock(&s->amu) == 0))
		kp = &s->keep;
	for (t = 0; t < n; t++) {
		w[t].sc.st = kp->st[t];
		w[t].sc.stcap = kp->stcap[t];
	}
	if ((rc = apend_build(s, &snap, &ap)) != 0 ||
	    (rc = forest_load(fo, &snap, &ap, ps.abeg, kp)) != 0 ||
	    (rc = read_tail(&snap, &tail, &tcap, &ntail)) != 0)
		goto out;
	ps.tail = tail;
	ps.ntail = ntail;
	ps.end = STORE_SCAN_PARTS;
	atomic_init(&ps.next, 0);
	atomic_init(&ps.stop, 0);
	for (t = 0; t < n; t++) {
		w[t].ps = &ps;
		w[t].txn = txn[t];
		w[t].txnb = txnb[t];
		w[t].sc.s = s;
		if (t > 0) {
			w[t].sc.nodes = fo->nodes;
			w[t].sc.nnodes = fo->nnodes;
		}
		if ((w[t].cur = calloc(snap.n + 1, sizeof(*w[t].cur))) == NULL ||
		    (w[t].src = calloc(snap.n + 1, sizeof(*w[t].src))) == NULL ||
		    (w[t].hv = calloc(snap.n + 1, sizeof(*w[t].hv))) == NULL ||
		    (w[t].ahead = calloc(snap.n + 1, sizeof(*w[t].ahead))) == NULL) {
			rc = ENOMEM;
			goto out;
		}
	}
	/* The hash ranges; a thread that cannot start leaves its parts to the others. */
	run_pool(w, n);
	for (t = 0; t < n && rv == 0; t++)
		rv = w[t].rc;
	for (i = 0; i < STORE_SCAN_PARTS && rv == 0; i++)
		rv = ps.res[i];
	if (rv != 0)
		goto out;
	/*
	 * The aliased customers: every range's stash, grouped by root, then cut into fixed
	 * slices of the forest's roots, emitted in parallel too.
	 */
	if ((rc = stash_group(w, n, &sp, &first)) != 0)
		goto out;
	ps.sp = sp;
	ps.first = first;
	ps.nnodes = fo->nnodes;
	ps.end = STORE_SCAN_NPARTS;
	atomic_store(&ps.next, STORE_SCAN_PARTS);
	run_pool(w, n);
	for (i = STORE_SCAN_PARTS; i < STORE_SCAN_NPARTS && rv == 0; i++)
		rv = ps.res[i];
out:
	for (t = 0; t < n; t++) {
		if (w[t].cur != NULL)
			for (i = 0; i < snap.n; i++)
				if (w[t].cur[i] != NULL)
					mdb_cursor_close(w[t].cur[i]);
		if (t > 0) {
			mdb_txn_abort(txnb[t]);
			mdb_txn_abort(txn[t]);
		}
	}
	read_end(s, &snap);
	apend_free(&ap);
	for (t = 0; t < n; t++) {
		kp->st[t] = w[t].sc.st;
		kp->stcap[t] = w[t].sc.stcap;
	}
	if (lent)
		pthread_mutex_unlock(&s->amu);
	else
		scan_keep_free(&own);
	for (t = 0; t < n; t++) {
		free(w[t].sc.views);
		free(w[t].sc.traits);
		free(w[t].g);
		free(w[t].cv);
		free(w[t].cur);
		free(w[t].src);
		free(w[t].hv);
		free(w[t].ahead);
	}
	free(first);
	free(sp);
	free(tail);
	if (rv != 0)
		return rv;
	return rc == MDB_CORRUPTED ? TP_INTERNAL : status_of(rc);
}

int
store_scan(struct store *s, store_customer_fn fn, void *arg)
{
	void *args[STORE_SCAN_NPARTS];
	size_t i;

	/* One thread and one callback: the parts in order are exactly the single pass. */
	for (i = 0; i < STORE_SCAN_NPARTS; i++)
		args[i] = arg;
	return store_scan_parts(s, 1, fn, NULL, args);
}

int
store_walk(struct store *s, uint64_t *records)
{
	struct rsnap snap;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t n = 0, bytes = 0;
	size_t i;
	int rc;

	*records = 0;
	if ((rc = read_begin(s, &snap)) != 0)
		return status_of(rc);
	for (i = 0; i < snap.n + snap.nlogs; i++) {
		if ((rc = mdb_cursor_open(
		         i < snap.n ? run_txn(&snap, snap.txn, snap.txnb, i) : snap.txn,
		         i < snap.n ? snap.dbi[i] : snap.logs[i - snap.n], &c)) != 0)
			break;
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			n++;
			bytes += v.mv_size;
		}
		mdb_cursor_close(c);
		if (rc != MDB_NOTFOUND)
			break;
		rc = 0;
	}
	read_end(s, &snap);
	*records = n;
	(void)bytes;
	return status_of(rc);
}

/* Keeps the record (rec, rlen) if it is an event of id (not a spend); 0 or an error. */
static int
collect_one(const void *rec, size_t rlen, uint64_t cust, int64_t ts, uint64_t seq, const char *id,
            size_t len, struct record **out, size_t *n, size_t *cap)
{
	struct record r;

	if (record_parse(rec, rlen, cust, ts, seq, &r) != 0)
		return MDB_CORRUPTED;
	if (r.len[REC_CUSTOMER_ID] != len || memcmp(r.str[REC_CUSTOMER_ID], id, len) != 0 ||
	    r.kind == ATTR_SPEND)
		return 0;
	if (grow_buf((void **)out, cap, *n + 1, sizeof(**out)) != 0)
		return ENOMEM;
	(*out)[(*n)++] = r;
	return 0;
}

/* The records of id in run i of the snapshot: one seek to its hash. */
static int
collect_run(struct rsnap *snap, size_t i, const char *id, size_t len, uint64_t h,
            struct record **out, size_t *n, size_t *cap)
{
	uint8_t kb[KEY_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(run_txn(snap, snap->txn, snap->txnb, i), snap->dbi[i], &c)) != 0)
		return rc;
	memset(kb, 0, sizeof(kb));
	be64(kb, h);
	k.mv_size = KEY_LEN;
	k.mv_data = kb;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != KEY_LEN || rd_be64(k.mv_data) != h)
			break;
		if ((rc = collect_one(
		         v.mv_data, v.mv_size, h, unbias(rd_be64((const uint8_t *)k.mv_data + 8)),
		         rd_be64((const uint8_t *)k.mv_data + 16), id, len, out, n, cap)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* An id by its hash: a journey's members, or the pending aliases by their id (cust). */
struct akey {
	uint64_t h;
	size_t i; /* in the array it indexes */
};

static int
akey_cmp(const void *a, const void *b)
{
	const struct akey *x = a, *y = b;

	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* The first of rk[0, n) whose hash is h or above. */
static size_t
ak_first(const struct akey *rk, size_t n, uint64_t h)
{
	size_t lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (rk[mid].h < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Collects the records of the ids ids[0..nid) (a customer and the ids aliased to it) from
 * every run and the log tail of the snapshot: a seek per id in each run, and one pass over
 * each unflushed log segment for all of them, since the log is in arrival order and must
 * be read whole.
 */
static int
collect(struct store *s, struct rsnap *snap, char *const *ids, size_t nid, struct record **out,
        size_t *n, size_t *cap)
{
	struct akey *h;
	size_t *len, i, m;
	MDB_cursor *c;
	MDB_val k, v;
	int rc = 0;

	h = malloc(nid * sizeof(*h));
	len = malloc(nid * sizeof(*len));
	if (h == NULL || len == NULL) {
		rc = ENOMEM;
		goto fail;
	}
	for (m = 0; m < nid; m++) {
		len[m] = strlen(ids[m]);
		h[m].h = record_hash(s->key, ids[m], len[m]);
		h[m].i = m;
	}
	/* By hash: a log record finds its id by a binary search (a pass was quadratic). */
	qsort(h, nid, sizeof(*h), akey_cmp);
	for (i = 0; i < snap->n && rc == 0; i++)
		for (m = 0; m < nid && rc == 0; m++)
			rc = collect_run(snap, i, ids[h[m].i], len[h[m].i], h[m].h, out, n, cap);
	for (i = 0; i < snap->nlogs && rc == 0; i++) {
		if ((rc = mdb_cursor_open(snap->txn, snap->logs[i], &c)) != 0)
			break;
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			const void *rec;
			size_t rlen;
			uint64_t cust;
			int64_t ts;

			if (k.mv_size != 8 ||
			    record_prefix_get(v.mv_data, v.mv_size, &cust, &ts, &rec, &rlen) != 0) {
				rc = MDB_CORRUPTED;
				break;
			}
			for (m = ak_first(h, nid, cust); m < nid && h[m].h == cust && rc == 0; m++)
				rc = collect_one(rec, rlen, cust, ts, rd_be64(k.mv_data),
				                 ids[h[m].i], len[h[m].i], out, n, cap);
			if (rc != 0)
				break;
		}
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
fail:
	free(h);
	free(len);
	return rc;
}

static char *
dup_val(const MDB_val *v)
{
	char *d = malloc(v->mv_size + 1);

	if (d != NULL) {
		memcpy(d, v->mv_data, v->mv_size);
		d[v->mv_size] = 0;
	}
	return d;
}

void
store_journey_free(struct store_journey *j)
{
	size_t i;

	if (j == NULL)
		return;
	free(j->customer_id);
	for (i = 0; i < j->naliases; i++)
		free(j->aliases[i]);
	free(j->aliases);
	for (i = 0; i < j->n; i++) {
		if (j->events != NULL && j->events[i] != NULL)
			touchpoint__v1__event__free_unpacked(j->events[i], NULL);
		if (j->view != NULL)
			free((void *)j->view[i].traits);
	}
	free(j->events);
	free(j->view);
	free(j);
}

/* Appends a copy of v to the journey's member ids. */
static int
add_member(char ***members, size_t *cap, size_t *n, const MDB_val *v)
{
	if (*n >= STORE_MAX_MEMBERS)
		return ENOMEM;
	if (grow_buf((void **)members, cap, *n + 1, sizeof(**members)) != 0 ||
	    ((*members)[*n] = dup_val(v)) == NULL)
		return ENOMEM;
	(*n)++;
	return 0;
}

/*
 * The pending aliases sorted by cust (then in their order): a journey finds an id's
 * previous ids among them by a binary search, not by a pass over all of them per id, which
 * made a deep chain's journey quadratic.
 */
static int
apend_by_cust(struct store *s, const struct apend *ap, struct akey **rk)
{
	size_t i;

	*rk = NULL;
	if (ap->n == 0)
		return 0;
	if ((*rk = malloc(ap->n * sizeof(**rk))) == NULL)
		return ENOMEM;
	for (i = 0; i < ap->n; i++) {
		(*rk)[i].h = record_hash(s->key, ap->e[i].cust, ap->e[i].cl);
		(*rk)[i].i = i;
	}
	qsort(*rk, ap->n, sizeof(**rk), akey_cmp);
	return 0;
}

int
store_journey(struct store *s, const char *customer_id, struct store_journey **jp)
{
	return store_journey_as_of(s, customer_id, 0, jp);
}

int
store_journey_as_of(struct store *s, const char *customer_id, uint64_t as_of,
                    struct store_journey **jp)
{
	struct store_journey *j = NULL;
	struct rsnap snap;
	struct apend ap = { 0 };
	struct record *r = NULL;
	struct akey *rk = NULL;
	char **members = NULL;
	size_t nm = 0, mcap = 0, n = 0, cap = 0, i, q, e;
	MDB_cursor *c = NULL;
	MDB_val root, k, v;
	uint64_t h, top = 0;
	int rc, st = TP_OK;

	*jp = NULL;
	if (customer_id == NULL || customer_id[0] == 0 || strlen(customer_id) > RECORD_MAX_STR)
		return TP_INVALID_ARGUMENT;
	if ((rc = read_begin(s, &snap)) != 0)
		return status_of(rc);
	if ((rc = apend_build(s, &snap, &ap)) != 0 ||
	    (rc = alias_root(s, snap.txnb, &ap, customer_id, strlen(customer_id), &root)) != 0)
		goto fail;
	if ((rc = add_member(&members, &mcap, &nm, &root)) != 0)
		goto fail;
	/*
	 * Every id whose chain leads to the root, breadth first over the reverse edges: those
	 * of runs.mdb's tree, then the unflushed ones.
	 */
	if ((rc = mdb_cursor_open(snap.txnb, s->alias_rev, &c)) != 0)
		goto fail;
	if ((rc = apend_by_cust(s, &ap, &rk)) != 0)
		goto fail;
	for (q = 0; q < nm; q++) {
		k.mv_size = strlen(members[q]);
		k.mv_data = members[q];
		h = record_hash(s->key, members[q], k.mv_size);
		for (e = ak_first(rk, ap.n, h); e < ap.n && rk[e].h == h; e++) {
			const struct apedge *pe = &ap.e[rk[e].i];
			MDB_val pv = { pe->pl, (void *)pe->prev };

			if (pe->cl == k.mv_size && memcmp(pe->cust, members[q], k.mv_size) == 0 &&
			    (rc = add_member(&members, &mcap, &nm, &pv)) != 0)
				goto fail;
		}
		for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY); rc == 0;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP))
			if ((rc = add_member(&members, &mcap, &nm, &v)) != 0)
				goto fail;
		if (rc != MDB_NOTFOUND)
			goto fail;
	}
	mdb_cursor_close(c);
	c = NULL;
	if ((rc = collect(s, &snap, members, nm, &r, &n, &cap)) != 0)
		goto fail;
	/* Arrival sequences only grow: what came after as_of is left out, and only that. */
	for (i = 0, e = 0; i < n; i++) {
		if (as_of != 0 && r[i].seq > as_of)
			continue;
		top = r[i].seq > top ? r[i].seq : top;
		r[e++] = r[i];
	}
	n = e;
	if (n == 0) {
		st = TP_NOT_FOUND;
		goto done;
	}
	qsort(r, n, sizeof(*r), ev_qcmp);
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->events = calloc(n, sizeof(*j->events))) == NULL ||
	    (j->view = calloc(n, sizeof(*j->view))) == NULL) {
		rc = ENOMEM;
		goto fail;
	}
	j->n = n;
	j->as_of = top;
	j->customer_id = members[0];
	members[0] = NULL;
	for (i = 0; i < n; i++) {
		struct attr_trait *t = NULL;

		if ((j->events[i] = record_to_event(&r[i], store_name, s)) == NULL) {
			rc = ENOMEM;
			goto fail;
		}
		if (r[i].kind == ATTR_IDENTIFY && r[i].ntraits > 0) {
			const Touchpoint__V1__Identify *id = j->events[i]->identify;
			size_t x;

			if ((t = calloc(id->n_traits, sizeof(*t))) == NULL) {
				rc = ENOMEM;
				goto fail;
			}
			for (x = 0; x < id->n_traits; x++) {
				t[x].key = id->traits[x]->key;
				t[x].value = id->traits[x]->value;
			}
		}
		record_view(&r[i], &j->view[i], t);
		if (t == NULL)
			j->view[i].traits = NULL;
	}
	/* The other members become the journey's aliases. */
	if (nm > 1) {
		if ((j->aliases = calloc(nm - 1, sizeof(*j->aliases))) == NULL) {
			rc = ENOMEM;
			goto fail;
		}
		for (i = 1; i < nm; i++) {
			j->aliases[i - 1] = members[i];
			members[i] = NULL;
		}
		j->naliases = nm - 1;
	}
	*jp = j;
	j = NULL;
	goto done;
fail:
	st = rc == MDB_CORRUPTED ? TP_INTERNAL : status_of(rc);
done:
	if (c != NULL)
		mdb_cursor_close(c);
	read_end(s, &snap);
	apend_free(&ap);
	free(rk);
	for (i = 0; i < nm; i++)
		free(members[i]);
	free(members);
	free(r);
	store_journey_free(j);
	return st;
}

int
store_spend(struct store *s, int32_t from_day, int32_t to_day, store_spend_fn fn, void *arg)
{
	struct rsnap snap;
	MDB_cursor *c;
	uint8_t kb[12];
	MDB_val k = { sizeof(kb), kb }, v;
	int rc, rv = 0;

	if (from_day >= to_day)
		return TP_OK;
	if ((rc = read_begin(s, &snap)) != 0)
		return status_of(rc);
	memset(kb, 0, sizeof(kb));
	be32(kb, (uint32_t)from_day ^ UINT32_C(0x80000000));
	if ((rc = mdb_cursor_open(snap.txn, s->spend, &c)) == 0) {
		for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			struct record r;
			const char *cur;
			const void *rec;
			size_t rlen;
			uint64_t cust;
			int64_t ts;

			if (k.mv_size != sizeof(kb) ||
			    record_prefix_get(v.mv_data, v.mv_size, &cust, &ts, &rec, &rlen) != 0 ||
			    record_parse(rec, rlen, cust, ts,
			                 rd_be64((const uint8_t *)k.mv_data + 4), &r) != 0 ||
			    r.kind != ATTR_SPEND) {
				rc = MDB_CORRUPTED;
				break;
			}
			if (r.day >= to_day)
				break;
			cur = r.currency != 0 ? store_name(s, r.currency) : "";
			if ((rv = fn(arg, r.channel, r.campaign, r.day, r.num, cur ? cur : "")) !=
			    0)
				break;
		}
		mdb_cursor_close(c);
	}
	read_end(s, &snap);
	if (rv != 0)
		return rv;
	if (rc == MDB_NOTFOUND)
		rc = 0;
	return rc == MDB_CORRUPTED ? TP_INTERNAL : status_of(rc);
}

static int
count_reader(const char *msg, void *ctx)
{
	/* One line per reader after a header line; "(no active readers)" when none. */
	if (strstr(msg, "pid") == NULL && strstr(msg, "no active") == NULL)
		(*(uint64_t *)ctx)++;
	return 0;
}

void
store_trim(struct store *s)
{
	if (pthread_mutex_trylock(&s->amu) != 0)
		return; /* a scan has them: not idle after all */
	scan_keep_free(&s->keep);
	pthread_mutex_unlock(&s->amu);
}

int
store_stats(struct store *s, struct store_stats *st)
{
	MDB_envinfo info, infob;
	MDB_stat est;
	int rc;

	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&s->smu);
	memcpy(st->events, s->cnt_pub.events, sizeof(st->events));
	st->duplicates = s->cnt_pub.duplicates;
	st->customers = s->customers_pub;
	pthread_mutex_unlock(&s->smu);
	st->runs = atomic_load(&s->stat_runs);
	st->runs_uncopied = atomic_load(&s->stat_uncopied);
	st->merging = atomic_load(&s->stat_merging);
	st->segments = atomic_load(&s->stat_segs);
	st->wait_ns = atomic_load(&s->t_wait_ns);
	st->commit_ns = atomic_load(&s->t_commit_ns);
	st->chunks = atomic_load(&s->t_chunks);
	st->chunk_ns = atomic_load(&s->t_chunk_ns);
	st->chunk_records = atomic_load(&s->t_chunk_records);
	st->compactor_nice = atomic_load(&s->cnice);
	st->compactor_nice_denied = atomic_load(&s->cnice_denied);
	if (!gate_try_enter(s)) {
		/* a growth is waiting for readers: the sizes of the last call */
		st->store_bytes = atomic_load(&s->stat_bytes);
		st->map_size = atomic_load(&s->stat_map);
		mdb_reader_list(s->env, count_reader, &st->readers);
		return TP_OK;
	}
	if ((rc = mdb_env_info(s->env, &info)) == 0 && (rc = mdb_env_stat(s->env, &est)) == 0)
		rc = mdb_env_info(s->envb, &infob);
	gate_leave(s);
	if (rc != 0)
		return status_of(rc);
	/* Both environments (same page size). */
	st->store_bytes = (uint64_t)(info.me_last_pgno + 1 + infob.me_last_pgno + 1) * est.ms_psize;
	st->map_size = info.me_mapsize + infob.me_mapsize;
	atomic_store(&s->stat_bytes, st->store_bytes);
	atomic_store(&s->stat_map, st->map_size);
	mdb_reader_list(s->env, count_reader, &st->readers);
	return TP_OK;
}

static int
fsync_path(const char *path, int dir)
{
	int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* The status of a target directory that cannot be made: the operator's to fix. */
static int
backup_dir_status(int e)
{
	return path_status(e, e == ENOSPC || e == EDQUOT ? TP_RESOURCE_EXHAUSTED
	                                                 : TP_FAILED_PRECONDITION);
}

/* 1 if dir is a directory with no entries, 0 if not, -1 (errno) if it cannot be read. */
static int
dir_is_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int empty = 1;

	if (d == NULL)
		return -1;
	while (empty && (de = readdir(d)) != NULL)
		empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
	closedir(d);
	return empty;
}

int
store_backup(struct store *s, const char *dir, uint64_t *bytes, char *errbuf, size_t errlen)
{
	char tmp[4096], file[4200], fileb[4200], parent[4096], *slash;
	struct stat sb, sbb;
	int fd;
	char dummy[1];
	int rc, st = TP_OK;

	if (errbuf == NULL || errlen == 0) {
		errbuf = dummy;
		errlen = sizeof(dummy);
	}
	errbuf[0] = 0;
	if (bytes != NULL)
		*bytes = 0;
	if (dir == NULL || dir[0] == 0 || strlen(dir) > sizeof(tmp) - 16) {
		snprintf(errbuf, errlen, "dir: not a usable directory name");
		return TP_INVALID_ARGUMENT;
	}
	/* An empty directory (made beforehand, a mount point) is replaced by the rename. */
	if (lstat(dir, &sb) == 0) {
		if (!S_ISDIR(sb.st_mode) || (rc = dir_is_empty(dir)) == 0) {
			snprintf(errbuf, errlen, "dir: %s exists and is not an empty directory",
			         dir);
			return TP_FAILED_PRECONDITION;
		}
		if (rc < 0) {
			rc = errno;
			snprintf(errbuf, errlen, "dir: %s: %s", dir, strerror(rc));
			return backup_dir_status(rc);
		}
	} else if (errno != ENOENT) {
		rc = errno;
		snprintf(errbuf, errlen, "dir: %s: %s", dir, strerror(rc));
		return backup_dir_status(rc);
	}
	snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", dir);
	if (mkdtemp(tmp) == NULL) {
		rc = errno;
		snprintf(errbuf, errlen, "dir: %s: cannot create it: %s", dir, strerror(rc));
		return backup_dir_status(rc);
	}
	/*
	 * runs.mdb first, then the main environment, with no merge finishing nor run dropped
	 * in between (bmu): every main run the copied runs.mdb does not hold is still in the
	 * later main copy, and one it marks consumed is dropped when the copy is opened.
	 */
	snprintf(fileb, sizeof(fileb), "%s/runs.mdb", tmp);
	snprintf(file, sizeof(file), "%s/data.mdb", tmp);
	/* Without the room (readers kept the map busy, or no address space) it copies anyway. */
	if ((rc = backup_room(s)) != 0)
		log_notice("store: backup: no map room made first (%s): a map growth during the "
		           "copy waits for its end",
		           rc == EBUSY ? "readers kept the map busy" : mdb_strerror(rc));
	pthread_mutex_lock(&s->bmu);
	if ((fd = open(fileb, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0) {
		rc = errno;
	} else {
		gate_enter(s); /* the copy's read transaction keeps the map from moving */
		if (s->backup_pause != NULL)
			s->backup_pause(s->backup_pause_arg);
		if ((rc = mdb_env_copyfd2(s->envb, fd, MDB_CP_COMPACT)) == 0)
			rc = mdb_env_copy2(s->env, tmp, MDB_CP_COMPACT);
		gate_leave(s);
		if (rc == 0 && fsync(fd) != 0)
			rc = errno;
		if (close(fd) != 0 && rc == 0)
			rc = errno;
	}
	pthread_mutex_unlock(&s->bmu);
	if (rc != 0) {
		set_err(errbuf, errlen, "copy", rc);
		goto fail;
	}
	if (fsync_path(file, 0) != 0 || stat(file, &sb) != 0 || stat(fileb, &sbb) != 0) {
		rc = errno;
		snprintf(errbuf, errlen, "sync: %s", strerror(rc));
		goto fail;
	}
	if (rename(tmp, dir) != 0) {
		rc = errno;
		snprintf(errbuf, errlen, "dir: rename to %s: %s", dir, strerror(rc));
		/* Filled, or made a file, while we copied. */
		st = rc == ENOTEMPTY || rc == EEXIST || rc == ENOTDIR ? TP_FAILED_PRECONDITION
		                                                      : status_of(rc);
		goto fail;
	}
	snprintf(parent, sizeof(parent), "%s", dir);
	if ((slash = strrchr(parent, '/')) != NULL) {
		if (slash == parent)
			slash[1] = 0;
		else
			*slash = 0;
	} else {
		snprintf(parent, sizeof(parent), ".");
	}
	(void)fsync_path(parent, 1);
	if (bytes != NULL)
		*bytes = (uint64_t)sb.st_size + (uint64_t)sbb.st_size;
	return TP_OK;
fail:
	unlink(file);
	unlink(fileb);
	rmdir(tmp);
	return st != TP_OK ? st : status_of(rc);
}
