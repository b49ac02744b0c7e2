/*
 * Helpers shared by the store tests: temporary directories and event builders whose
 * strings are all malloc'd (freed with touchpoint__v1__event__free_unpacked).
 */
#ifndef TP_TEST_STORE_UTIL_H
#define TP_TEST_STORE_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

static char *
xstrdup(const char *s)
{
	char *d = strdup(s != NULL ? s : "");

	if (d == NULL)
		abort();
	return d;
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL)
		abort();
	return p;
}

static Touchpoint__V1__Event *
ev_base(const char *eid, const char *cid, int64_t ts)
{
	Touchpoint__V1__Event *e = xmalloc(sizeof(*e));

	touchpoint__v1__event__init(e);
	e->event_id = xstrdup(eid);
	e->customer_id = xstrdup(cid);
	e->timestamp_us = ts;
	return e;
}

static Touchpoint__V1__Event *
ev_touch(const char *eid, const char *cid, int64_t ts, const char *channel, const char *campaign)
{
	Touchpoint__V1__Event *e = ev_base(eid, cid, ts);
	Touchpoint__V1__Touch *t = xmalloc(sizeof(*t));

	touchpoint__v1__touch__init(t);
	t->channel = xstrdup(channel);
	t->campaign = xstrdup(campaign);
	t->source = xstrdup("");
	t->medium = xstrdup("");
	e->kind_case = TOUCHPOINT__V1__EVENT__KIND_TOUCH;
	e->touch = t;
	return e;
}

static Touchpoint__V1__Event *
ev_conv(const char *eid, const char *cid, int64_t ts, double value, const char *name)
{
	Touchpoint__V1__Event *e = ev_base(eid, cid, ts);
	Touchpoint__V1__Conversion *c = xmalloc(sizeof(*c));

	touchpoint__v1__conversion__init(c);
	c->value = value;
	c->currency = xstrdup("");
	c->name = xstrdup(name);
	e->kind_case = TOUCHPOINT__V1__EVENT__KIND_CONVERSION;
	e->conversion = c;
	return e;
}

static Touchpoint__V1__Event *
ev_alias(const char *eid, const char *cid, int64_t ts, const char *prev)
{
	Touchpoint__V1__Event *e = ev_base(eid, cid, ts);
	Touchpoint__V1__Alias *a = xmalloc(sizeof(*a));

	touchpoint__v1__alias__init(a);
	a->previous_id = xstrdup(prev);
	e->kind_case = TOUCHPOINT__V1__EVENT__KIND_ALIAS;
	e->alias = a;
	return e;
}

/* A batch owning its events. */
struct tbatch {
	struct store_batch b;
	size_t cap;
};

static struct tbatch *
tb_new(size_t cap)
{
	struct tbatch *t = calloc(1, sizeof(*t));

	if (t == NULL || (t->b.events = calloc(cap, sizeof(*t->b.events))) == NULL ||
	    (t->b.dup = calloc(cap, 1)) == NULL)
		abort();
	t->cap = cap;
	return t;
}

static void
tb_add(struct tbatch *t, Touchpoint__V1__Event *e)
{
	if (t->b.n >= t->cap)
		abort();
	t->b.events[t->b.n++] = e;
}

static void
tb_free(struct tbatch *t)
{
	size_t i;

	for (i = 0; i < t->b.n; i++)
		touchpoint__v1__event__free_unpacked(t->b.events[i], NULL);
	free(t->b.events);
	free(t->b.dup);
	free(t);
}

/* Writes one batch as a group of one. */
static int
tb_write(struct store *s, struct tbatch *t)
{
	struct store_batch *b = &t->b;

	return store_write(s, &b, 1, NULL, 0);
}

/*
 * A store's own files and its directory, nothing else: store_bench's "rm" of the DIR it
 * was given. (Inline, as rm_test_dir: not every includer uses both.)
 */
static inline void
rm_store_dir(const char *dir)
{
	static const char *const files[] = { "data.mdb", "lock.mdb", "runs.mdb", "runs.mdb-lock",
		                             "owner.lock" };
	char p[4200];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		unlink(p);
	}
	rmdir(dir);
}

/*
 * A test's mkdtemp directory and all it holds (stores, backups, a tmpfs mount point), so
 * that no file a test or the store adds can keep it in /tmp: a fixed list of file names
 * missed the store's owner.lock and left every one behind.
 */
static inline void
rm_test_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct stat st;
	char p[4200];

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    (size_t)snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= sizeof(p))
			continue;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rm_test_dir(p);
		else
			unlink(p);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
}

#endif /* TP_TEST_STORE_UTIL_H */
