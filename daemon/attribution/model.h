/*
 * model: what a table model sees — the aggregated path table — and what it hands back.
 * Models are pure functions: no I/O, no global state, deterministic.
 */
#ifndef TP_ATTR_MODEL_H
#define TP_ATTR_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* One distinct path: a sequence of units of credit (channel, or channel/campaign). */
struct attr_path {
	const uint32_t *units; /* dense unit ids, 0 .. nunits-1 */
	uint32_t len;          /* >= 1 */
	double conversions;    /* converting instances of this path */
	double value;          /* their summed conversion value */
	double nulls;          /* non-converting instances */
};

struct attr_table {
	const struct attr_path *paths;
	size_t npaths;
	uint32_t nunits;
	const char *const *unit_names; /* nunits names */
	/*
	 * Polled by the models that can run long (markov's removals, shapley_rate) between
	 * steps of a fraction of a second: nonzero stops them with TP_CANCELLED. NULL: never.
	 */
	int (*cancelled)(void *arg);
	void *cancel_arg;
};

/* Per-unit output, arrays of nunits allocated by the caller and zeroed. */
struct attr_credit {
	double *conversions;
	double *value;
	double *removal_effect; /* markov only; NULL otherwise */
};

/* One transition of the Markov chain, for the transition matrix output. */
struct attr_transition {
	char *from; /* state names: "(start)", "a", "a > b", "(conversion)", "(null)" */
	char *to;
	double probability;
};

struct attr_markov_matrix {
	struct attr_transition *t;
	size_t n;
};

/*
 * The Markov-chain removal effect of SPEC §4, exact, order 1..4. When mat is not NULL
 * it receives the transition matrix (free with attr_markov_matrix_free). Returns
 * TP_OK, TP_INVALID_ARGUMENT (order, with a message), TP_RESOURCE_EXHAUSTED or TP_INTERNAL.
 */
int attr_markov(const struct attr_table *t, int order, struct attr_credit *out,
                struct attr_markov_matrix *mat, char *errbuf, size_t errlen);
void attr_markov_matrix_free(struct attr_markov_matrix *mat);

#endif /* TP_ATTR_MODEL_H */
