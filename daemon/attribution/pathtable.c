/*
 * pathtable: hash containers of the engine. Identical paths aggregate here, so the models'
 * cost grows with distinct paths, not with events; nothing allocates once grown.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "touchpoint/touchpoint.h"
#include "attribution/pathtable.h"

#define PT_MAX_ENTRIES (UINT32_MAX - 1)

static inline uint64_t
mix64(uint64_t x)
{
	/* splitmix64's finaliser: cheap and good enough for dictionary ids */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

uint64_t
attr_hash_units(const uint32_t *u, uint32_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ len;
	uint32_t i;

	for (i = 0; i < len; i++)
		h = mix64(h ^ (u[i] + 0x632be59bd9b4e019ULL));
	return h;
}

uint64_t
attr_hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return mix64(h);
}

int
attr_map_get(const struct attr_map *m, uint64_t k, uint32_t *v)
{
	size_t mask, i;

	if (m->cap == 0)
		return 0;
	mask = m->cap - 1;
	for (i = mix64(k) & mask;; i = (i + 1) & mask) {
		if (m->vals[i] == UINT32_MAX)
			return 0;
		if (m->keys[i] == k) {
			*v = m->vals[i];
			return 1;
		}
	}
}

static void
map_insert(uint64_t *keys, uint32_t *vals, size_t cap, uint64_t k, uint32_t v, size_t *n)
{
	size_t mask = cap - 1, i;

	for (i = mix64(k) & mask;; i = (i + 1) & mask) {
		if (vals[i] == UINT32_MAX) {
			keys[i] = k;
			vals[i] = v;
			(*n)++;
			return;
		}
		if (keys[i] == k) {
			vals[i] = v;
			return;
		}
	}
}

int
attr_map_put(struct attr_map *m, uint64_t k, uint32_t v)
{
	if ((m->n + 1) * 2 > m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 64, i, n = 0;
		uint64_t *keys = malloc(ncap * sizeof(*keys));
		uint32_t *vals = malloc(ncap * sizeof(*vals));

		if (keys == NULL || vals == NULL) {
			free(keys);
			free(vals);
			return TP_RESOURCE_EXHAUSTED;
		}
		memset(vals, 0xff, ncap * sizeof(*vals));
		for (i = 0; i < m->cap; i++)
			if (m->vals[i] != UINT32_MAX)
				map_insert(keys, vals, ncap, m->keys[i], m->vals[i], &n);
		free(m->keys);
		free(m->vals);
		m->keys = keys;
		m->vals = vals;
		m->cap = ncap;
		m->n = n;
	}
	map_insert(m->keys, m->vals, m->cap, k, v, &m->n);
	return TP_OK;
}

void
attr_map_free(struct attr_map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

int
attr_smap_get(const struct attr_smap *m, const char *k, uint32_t *v)
{
	size_t mask, i;

	if (m->cap == 0)
		return 0;
	mask = m->cap - 1;
	for (i = attr_hash_str(k) & mask;; i = (i + 1) & mask) {
		if (m->keys[i] == NULL)
			return 0;
		if (strcmp(m->keys[i], k) == 0) {
			*v = m->vals[i];
			return 1;
		}
	}
}

static void
smap_insert(char **keys, uint32_t *vals, size_t cap, char *k, uint32_t v)
{
	size_t mask = cap - 1, i;

	for (i = attr_hash_str(k) & mask; keys[i] != NULL; i = (i + 1) & mask)
		;
	keys[i] = k;
	vals[i] = v;
}

int
attr_smap_put(struct attr_smap *m, const char *k, uint32_t v)
{
	uint32_t old;
	char *copy;

	if (attr_smap_get(m, k, &old))
		return TP_INVALID_ARGUMENT; /* callers only add new keys */
	if ((m->n + 1) * 2 > m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 64, i;
		char **keys = calloc(ncap, sizeof(*keys));
		uint32_t *vals = calloc(ncap, sizeof(*vals));

		if (keys == NULL || vals == NULL) {
			free(keys);
			free(vals);
			return TP_RESOURCE_EXHAUSTED;
		}
		for (i = 0; i < m->cap; i++)
			if (m->keys[i] != NULL)
				smap_insert(keys, vals, ncap, m->keys[i], m->vals[i]);
		free(m->keys);
		free(m->vals);
		m->keys = keys;
		m->vals = vals;
		m->cap = ncap;
	}
	if ((copy = strdup(k)) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	smap_insert(m->keys, m->vals, m->cap, copy, v);
	m->n++;
	return TP_OK;
}

void
attr_smap_free(struct attr_smap *m)
{
	size_t i;

	for (i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

#define PT_TAG(h) ((h)&0xffffffff00000000ULL)

/*
 * The tables' freed arrays of at least PT_KEEP_MIN bytes (and the models' views of them,
 * attr_ptab_buf_get) are kept for the next ones, up to PT_KEEP of them (the largest): a
 * query's tables grow to hundreds of megabytes, and glibc gives blocks that large back to
 * the kernel when they are freed (one over 32 MiB is its own mmap; a scan thread's arena
 * drops a heap once it is empty), so every query faulted its tables in again (42–80 k page
 * faults a warm attribute over 50 M events; docs/BENCHMARKS.md, "Session 10").
 * attr_ptab_trim() frees them.
 */
#define PT_KEEP     64
#define PT_KEEP_MIN ((size_t)1 << 20)

static pthread_mutex_t pt_mu = PTHREAD_MUTEX_INITIALIZER;
static void *pt_kp[PT_KEEP];
static size_t pt_ks[PT_KEEP];

/* At least size bytes (their number in *got unless NULL): the smallest kept block that fits. */
static void *
pt_alloc(size_t size, size_t *got)
{
	size_t i, best = PT_KEEP;
	void *p = NULL;

	if (size >= PT_KEEP_MIN) {
		pthread_mutex_lock(&pt_mu);
		for (i = 0; i < PT_KEEP; i++) {
			if (pt_kp[i] != NULL && pt_ks[i] >= size &&
			    (best == PT_KEEP || pt_ks[i] < pt_ks[best]))
				best = i;
		}
		if (best < PT_KEEP) {
			p = pt_kp[best];
			size = pt_ks[best];
			pt_kp[best] = NULL;
		}
		pthread_mutex_unlock(&pt_mu);
	}
	if (got != NULL)
		*got = size;
	return p != NULL ? p : malloc(size);
}

/* Gives back a block of size bytes: kept in place of a smaller one if it is large. */
static void
pt_release(void *p, size_t size)
{
	size_t i, slot = PT_KEEP;
	void *old = p;

	if (p == NULL)
		return;
	if (size >= PT_KEEP_MIN) {
		pthread_mutex_lock(&pt_mu);
		for (i = 0; i < PT_KEEP && pt_kp[i] != NULL; i++) {
			if (pt_ks[i] < size && (slot == PT_KEEP || pt_ks[i] < pt_ks[slot]))
				slot = i;
		}
		if (i < PT_KEEP)
			slot = i; /* an empty place */
		if (slot < PT_KEEP) {
			old = pt_kp[slot];
			pt_kp[slot] = p;
			pt_ks[slot] = size;
		}
		pthread_mutex_unlock(&pt_mu);
	}
	free(old);
}

/* *arr (*cap elements of esz bytes, n in use) moved into a block of at least ncap. */
static int
pt_grow(void **arr, size_t *cap, size_t n, size_t ncap, size_t esz)
{
	size_t got;
	void *nb;

	if (ncap > SIZE_MAX / esz || (nb = pt_alloc(ncap * esz, &got)) == NULL)
		return TP_RESOURCE_EXHAUSTED;
	if (n > 0)
		memcpy(nb, *arr, n * esz);
	pt_release(*arr, *cap * esz);
	*arr = nb;
	*cap = got / esz;
	return TP_OK;
}

void *
attr_ptab_buf_get(size_t size)
{
	return pt_alloc(size, NULL);
}

void
attr_ptab_buf_put(void *p, size_t size)
{
	pt_release(p, size);
}

void
attr_ptab_trim(void)
{
	size_t i;

	pthread_mutex_lock(&pt_mu);
	for (i = 0; i < PT_KEEP; i++) {
		free(pt_kp[i]);
		pt_kp[i] = NULL;
	}
	pthread_mutex_unlock(&pt_mu);
}

/* Rebuilds the slots at ncap (a power of two, > 2 × the entries). */
static int
ptab_rehash(struct attr_ptab *t, size_t ncap)
{
	size_t i, mask = ncap - 1;
	uint64_t *slots = pt_alloc(ncap * sizeof(*slots), NULL);

	if (slots == NULL)
		return TP_RESOURCE_EXHAUSTED;
	memset(slots, 0, ncap * sizeof(*slots));
	for (i = 0; i < t->n; i++) {
		size_t j = t->e[i].hash & mask;

		while (slots[j] != 0)
			j = (j + 1) & mask;
		slots[j] = PT_TAG(t->e[i].hash) | (uint64_t)(i + 1);
	}
	pt_release(t->slots, t->nslots * sizeof(*t->slots));
	t->slots = slots;
	t->nslots = ncap;
	return TP_OK;
}

/* Paths are a few units long: a call to memcmp per lookup cost more than the compare. */
static inline int
same_units(const uint32_t *a, const uint32_t *b, uint32_t len)
{
	uint32_t i;

	for (i = 0; i < len; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static long
ptab_lookup(const struct attr_ptab *t, uint64_t h, const uint32_t *u, uint32_t len, size_t *slot)
{
	size_t mask = t->nslots - 1, j;
	uint64_t tag = PT_TAG(h), s;

	for (j = h & mask; (s = t->slots[j]) != 0; j = (j + 1) & mask) {
		const struct attr_pent *p;

		if (PT_TAG(s) != tag)
			continue;
		p = &t->e[(uint32_t)s - 1];
		if (p->hash == h && p->len == len && same_units(t->arena + p->off, u, len)) {
			*slot = j;
			return (long)((uint32_t)s - 1);
		}
	}
	*slot = j;
	return -1;
}

long
attr_ptab_find(const struct attr_ptab *t, const uint32_t *u, uint32_t len)
{
	size_t slot;

	if (t->nslots == 0)
		return -1;
	return ptab_lookup(t, attr_hash_units(u, len), u, len, &slot);
}

/*
 * Room for n more entries and units more arena units, at least doubling either (a merge
 * after a merge, or path after path, must not copy the table each time).
 */
static int
ptab_room(struct attr_ptab *t, size_t n, size_t units)
{
	if (n > PT_MAX_ENTRIES - t->n)
		return TP_RESOURCE_EXHAUSTED;
	if (t->n + n > t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 256;

		if (ncap < t->n + n)
			ncap = t->n + n;
		if (pt_grow((void **)&t->e, &t->cap, t->n, ncap, sizeof(*t->e)) != TP_OK)
			return TP_RESOURCE_EXHAUSTED;
	}
	if (units > SIZE_MAX / 2 / sizeof(*t->arena) - t->alen)
		return TP_RESOURCE_EXHAUSTED;
	if (t->alen + units > t->acap) {
		size_t ncap = t->acap ? t->acap * 2 : 4096;

		while (ncap < t->alen + units)
			ncap *= 2;
		if (pt_grow((void **)&t->arena, &t->acap, t->alen, ncap, sizeof(*t->arena)) !=
		    TP_OK)
			return TP_RESOURCE_EXHAUSTED;
	}
	return TP_OK;
}

int
attr_ptab_reserve(struct attr_ptab *t, size_t n, size_t units)
{
	size_t need, ncap;
	int rv;

	if ((rv = ptab_room(t, n, units)) != TP_OK)
		return rv;
	need = t->n + n;
	/* the same load bound as attr_ptab_add's: need * 2 <= nslots */
	for (ncap = t->nslots ? t->nslots : 256; need * 2 > ncap; ncap *= 2)
		;
	if (ncap != t->nslots)
		return ptab_rehash(t, ncap);
	return TP_OK;
}

int
attr_ptab_add_hashed(struct attr_ptab *t, uint64_t h, const uint32_t *u, uint32_t len,
                     double conversions, double value, double nulls)
{
	struct attr_pent *p;
	size_t slot;
	long i;
	int rv;

	if (t->nslots == 0 && (rv = ptab_rehash(t, 256)) != TP_OK)
		return rv;
	if ((i = ptab_lookup(t, h, u, len, &slot)) < 0) {
		if ((rv = ptab_room(t, 1, len)) != TP_OK)
			return rv;
		memcpy(t->arena + t->alen, u, len * sizeof(*u));
		p = &t->e[t->n];
		p->hash = h;
		p->off = t->alen;
		p->len = len;
		p->conversions = p->value = p->nulls = 0;
		t->alen += len;
		t->slots[slot] = PT_TAG(h) | (uint64_t)(t->n + 1);
		i = (long)t->n++;
		if (t->n * 2 > t->nslots && (rv = ptab_rehash(t, t->nslots * 2)) != TP_OK)
			return rv;
	}
	p = &t->e[i];
	p->conversions += conversions;
	p->value += value;
	p->nulls += nulls;
	return TP_OK;
}

int
attr_ptab_add(struct attr_ptab *t, const uint32_t *u, uint32_t len, double conversions,
              double value, double nulls)
{
	return attr_ptab_add_hashed(t, attr_hash_units(u, len), u, len, conversions, value, nulls);
}

/* Adds the queue's oldest path. */
static int
ptq_pop(struct attr_ptab *t, struct attr_ptab_queue *q)
{
	unsigned k = q->head;

	q->head = (q->head + 1) % ATTR_PTQ_DEPTH;
	q->n--;
	return attr_ptab_add_hashed(t, q->q[k].h, q->u[k], q->q[k].len, q->q[k].conversions,
	                            q->q[k].value, q->q[k].nulls);
}

int
attr_ptab_queue_flush(struct attr_ptab *t, struct attr_ptab_queue *q)
{
	int rv;

	while (q->n > 0)
		if ((rv = ptq_pop(t, q)) != TP_OK) {
			q->n = 0;
			return rv;
		}
	return TP_OK;
}

int
attr_ptab_queue_add_hashed(struct attr_ptab *t, struct attr_ptab_queue *q, uint64_t h,
                           const uint32_t *u, uint32_t len, double conversions, double value,
                           double nulls)
{
	unsigned k;
	int rv;

	if (len > ATTR_PTQ_UNITS) {
		if ((rv = attr_ptab_queue_flush(t, q)) != TP_OK)
			return rv;
		return attr_ptab_add_hashed(t, h, u, len, conversions, value, nulls);
	}
	if (q->n == ATTR_PTQ_DEPTH && (rv = ptq_pop(t, q)) != TP_OK) {
		q->n = 0;
		return rv;
	}
	k = (q->head + q->n) % ATTR_PTQ_DEPTH;
	q->q[k].h = h;
	q->q[k].len = len;
	q->q[k].conversions = conversions;
	q->q[k].value = value;
	q->q[k].nulls = nulls;
	memcpy(q->u[k], u, len * sizeof(*u));
	q->n++;
	if (t->nslots > 0) {
		size_t mask = t->nslots - 1;
		uint64_t s;

		__builtin_prefetch(&t->slots[h & mask]);
		/* Halfway through the queue, the slot has arrived: fetch its entry. */
		if (q->n > ATTR_PTQ_DEPTH / 2) {
			k = (q->head + q->n - 1 - ATTR_PTQ_DEPTH / 2) % ATTR_PTQ_DEPTH;
			s = t->slots[q->q[k].h & mask];
			if (s != 0 && PT_TAG(s) == PT_TAG(q->q[k].h))
				__builtin_prefetch(&t->e[(uint32_t)s - 1]);
		}
	}
	return TP_OK;
}

int
attr_ptab_queue_add(struct attr_ptab *t, struct attr_ptab_queue *q, const uint32_t *u, uint32_t len,
                    double conversions, double value, double nulls)
{
	return attr_ptab_queue_add_hashed(t, q, attr_hash_units(u, len), u, len, conversions, value,
	                                  nulls);
}

void
attr_ptab_free(struct attr_ptab *t)
{
	pt_release(t->e, t->cap * sizeof(*t->e));
	pt_release(t->slots, t->nslots * sizeof(*t->slots));
	pt_release(t->arena, t->acap * sizeof(*t->arena));
	memset(t, 0, sizeof(*t));
}
