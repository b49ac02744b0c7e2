/*
 * internal: what the engine's files share and nobody else sees — the engine struct, the
 * model registry's descriptors and instances, and the per-scope (top level, segment) state.
 */
#ifndef TP_ATTR_INTERNAL_H
#define TP_ATTR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "attribution/engine.h"
#include "attribution/model.h"
#include "attribution/pathtable.h"

#define ATTR_MAX_SEGMENTS   1000 /* distinct by_trait values; more -> RESOURCE_EXHAUSTED */
#define ATTR_MAX_MODELS     64   /* model specs in one request */
#define ATTR_MAX_PARAMS     3
#define ATTR_UNIT_DIRECT    4096 /* engine: channel ids looked up in an array below this */
#define ATTR_EXACT_SHAPLEY  16   /* shapley_rate: exact up to this many distinct channels */
#define ATTR_SHAPLEY_SAMPLE 2000 /* sampled permutations beyond */

enum attr_mkind {
	ATTR_MK_WEIGHT,       /* per-path weights over positions, run over the path table */
	ATTR_MK_TIMEDECAY,    /* weights need timestamps: accumulated while journeys stream */
	ATTR_MK_SHAPLEY_RATE, /* over the table of channel sets */
	ATTR_MK_MARKOV,       /* attr_markov() */
};

struct attr_minst;

/*
 * TP_RESOURCE_EXHAUSTED with "out of memory" in errbuf, for the replies that quote it: the
 * tables' own limits (2^32 units or paths) are far beyond what a machine holds.
 */
int attr_oom(char *errbuf, size_t errlen);

/*
 * Weights of one path instance, w[i] for position i. ts and T are only given to time_decay
 * (NULL/0 otherwise). Weights sum to 1 except for participation.
 */
typedef void (*attr_weights_fn)(const struct attr_minst *m, const uint32_t *u, uint32_t len,
                                const int64_t *ts, int64_t T, double *w);

struct attr_pdesc {
	const char *key;
	const char *def; /* default, as echoed */
	int kind;        /* 0 number, 1 integer, 2 text */
};

struct attr_mdesc {
	const char *name;
	enum attr_mkind kind;
	attr_weights_fn weights;
	const struct attr_pdesc *params;
	size_t nparams;
	double first, last; /* presets: the fixed weights */
	int preset;
};

/* A requested model with its parameters in force. */
struct attr_minst {
	const struct attr_mdesc *d;
	double half_life_s;
	double first_weight, last_weight;
	int order;
	char **direct; /* last_non_direct: the channel names */
	size_t ndirect;
	uint8_t *isdirect; /* per unit, kept in step with the unit registry */
	uint32_t nflags, flagcap;
	size_t np;
	char *pkey[ATTR_MAX_PARAMS]; /* the parameters echoed in the result */
	char *pval[ATTR_MAX_PARAMS];
};

/* Units of credit: dense ids for a channel (or channel/campaign). */
struct attr_units {
	struct attr_map map;   /* key -> id */
	struct attr_smap smap; /* name -> id (path files) */
	char **names;          /* "email", "email/spring", "email/(none)" */
	uint32_t *chanlen;     /* length of the channel part of names[i] */
	uint32_t n, cap;
};

struct attr_acc {
	double *conversions, *value;
	uint32_t cap;
};

struct attr_scope {
	char *segment; /* NULL at top level */
	struct attr_ptab pt;
	struct attr_ptab_queue ptq; /* paths on their way into pt: attr_engine_settle() */
	double conversions, value, unattributed, unattributed_value;
	uint64_t converting_paths, null_paths;
	struct attr_acc *acc; /* one per model instance (time_decay only) */
};

struct attr_daily {
	const char *name; /* the unit's, filled in for sorting */
	int32_t day;
	uint32_t unit;
	double conversions, value;
};

struct attr_spend {
	const char *name; /* the unit's, filled in for sorting */
	uint32_t unit;
	char *currency;
	double amount;
};

struct attr_engine {
	char err[256];               /* why the last call failed, for attr_engine_error() */
	int (*cancelled)(void *arg); /* attr_engine_cancel_with() */
	void *cancel_arg;
	int paths_only;    /* attr_engine_new_paths */
	int no_timestamps; /* a path file: time_decay and daily cannot run */
	int64_t lookback_s;
	int has_from, has_to;
	int64_t from_us, to_us;
	int collapse, campaign;
	char *conversion; /* filter, NULL for all */
	attr_names_fn names;
	void *names_arg;

	struct attr_minst *m;
	size_t nm;
	int has_daily;
	struct attr_minst daily;
	char *daily_name;
	char *by_trait;
	int transition_matrix;

	struct attr_units units;
	struct attr_scope top;
	struct attr_scope **segs;
	size_t nsegs;
	struct attr_smap segmap;
	struct attr_map convok; /* conversion name id -> 1 keep, 0 ignore */

	struct attr_map dailymap; /* (day, unit) -> index */
	struct attr_daily *dly;
	size_t ndly, dlycap;
	struct attr_spend *spend;
	size_t nspend, spendcap;

	/* reused per customer, so the steady state does not allocate */
	size_t *tidx;
	uint32_t *useq;
	int64_t *uts;
	double *w;
	size_t bufcap;
	uint32_t lastkey_valid;
	uint64_t lastkey;
	uint32_t lastunit;
	/*
	 * Channel-level units by channel id, + 1 (0: not looked up yet), for ids below
	 * ATTR_UNIT_DIRECT: a touch's unit without hashing (≈ 3 % of a query's CPU in
	 * attr_map_get). Filled from units.map, which stays the reference.
	 */
	uint32_t *udirect;
	uint32_t udn;

	size_t *porder; /* the path table's sorted order, kept for paging (result.c) */
	size_t nporder;
};

/* registry.c */
const struct attr_mdesc *attr_model_lookup(const char *name);
/* 1 when model's parameter key is text (direct_channels), which JSON keeps a string. */
int attr_param_is_text(const char *model, const char *key);
int attr_models_parse(struct attr_engine *e, const Touchpoint__V1__AttributeRequest *req,
                      int skip_timestamps, char *errbuf, size_t errlen);
void attr_minst_clear(struct attr_minst *m);
/* Brings m's per-unit flags in step with the unit registry. */
int attr_minst_sync(struct attr_minst *m, const struct attr_units *u);

/* heuristics.c */
void attr_w_first(const struct attr_minst *, const uint32_t *, uint32_t, const int64_t *, int64_t,
                  double *);
void attr_w_last(const struct attr_minst *, const uint32_t *, uint32_t, const int64_t *, int64_t,
                 double *);
void attr_w_last_non_direct(const struct attr_minst *, const uint32_t *, uint32_t, const int64_t *,
                            int64_t, double *);
void attr_w_linear(const struct attr_minst *, const uint32_t *, uint32_t, const int64_t *, int64_t,
                   double *);
void attr_w_position(const struct attr_minst *, const uint32_t *, uint32_t, const int64_t *,
                     int64_t, double *);
void attr_w_participation(const struct attr_minst *, const uint32_t *, uint32_t, const int64_t *,
                          int64_t, double *);
void attr_w_shapley(const struct attr_minst *, const uint32_t *, uint32_t, const int64_t *, int64_t,
                    double *);
void attr_w_time_decay(const struct attr_minst *, const uint32_t *, uint32_t, const int64_t *,
                       int64_t, double *);

/* timedecay.c: per path instance, while journeys stream */
int attr_acc_reserve(struct attr_acc *a, uint32_t nunits);
void attr_acc_free(struct attr_acc *a);
int attr_stream_path(struct attr_engine *e, struct attr_scope *s, const uint32_t *u,
                     const int64_t *ts, uint32_t len, int64_t T, double value);
int attr_daily_path(struct attr_engine *e, const uint32_t *u, const int64_t *ts, uint32_t len,
                    int64_t T, double value);

/* shapley.c */
int attr_shapley_rate(const struct attr_table *t, struct attr_credit *out, size_t *nestimated,
                      char *errbuf, size_t errlen);

/* journey.c */
typedef int (*attr_keep_fn)(void *arg, const struct attr_event *conversion);
int attr_journey_walk(const struct attr_event *evs, size_t n, int64_t lookback_s, attr_keep_fn keep,
                      void *keep_arg, size_t *buf, attr_journey_fn fn, void *arg);
int attr_journey_check(const struct attr_event *evs, size_t n);

/* engine.c */
int attr_engine_alloc(struct attr_engine **ep);
/* attr_engine_new; no_timestamps (a path file) skips time_decay and daily, refuses by_trait */
int attr_engine_make(struct attr_engine **ep, const Touchpoint__V1__AttributeRequest *req,
                     int64_t default_lookback_s, attr_names_fn names, void *names_arg,
                     int no_timestamps, char *errbuf, size_t errlen);
int attr_units_add(struct attr_units *u, const char *name, uint32_t chanlen, uint32_t *id);
void attr_scope_free(struct attr_scope *s, size_t nm);
/* Adds every scope's queued paths (attr_ptab_queue) to its table: before reading a table. */
int attr_engine_settle(struct attr_engine *e);

/* result.c */
int attr_build_result(struct attr_engine *e, Touchpoint__V1__AttributeResponse **out, char *errbuf,
                      size_t errlen);

#endif /* TP_ATTR_INTERNAL_H */
