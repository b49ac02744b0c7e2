/*
 * tpbench-ingest: durable ingest into a running touchpointd through libtouchpoint, from a
 * tpgen CSV stream (--timestamp-us): batches from N client threads, the buffered sender,
 * or single-event round trips. Prints one markdown table row per run.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <touchpoint/touchpoint.h>

#define IB_MAX_CLIENTS 64
#define IB_MAX_LINE    4096
#define IB_NCOL        18

/* The columns of tpgen's CSV, in the order the loader wants them. */
enum ib_col {
	IB_EVENT_ID,
	IB_CUSTOMER_ID,
	IB_TYPE,
	IB_TIMESTAMP_US,
	IB_CHANNEL,
	IB_CAMPAIGN,
	IB_SOURCE,
	IB_MEDIUM,
	IB_INTERACTION,
	IB_COST,
	IB_VALUE,
	IB_CURRENCY,
	IB_NAME,
	IB_PREVIOUS_ID,
	IB_DAY,
	IB_AMOUNT,
	IB_PLAN,
	IB_COUNTRY,
};

static const char *const ib_colnames[IB_NCOL] = {
	"event_id", "customer_id", "type",        "timestamp_us", "channel",    "campaign",
	"source",   "medium",      "interaction", "cost",         "value",      "currency",
	"name",     "previous_id", "day",         "amount",       "trait.plan", "trait.country",
};

/* A chunk of parsed events; every string points into text, which never moves. */
struct ib_chunk {
	struct tp_event *evs;
	struct tp_trait *traits; /* two per event */
	char *text;
	size_t n, cap, tlen, tcap;
};

struct ib_input {
	FILE *f;
	int colmap[IB_NCOL]; /* CSV column of each ib_col, -1 if absent */
	int ncols;
	char *line; /* a line read but not yet taken (its chunk was full) */
	size_t linecap;
	int pending, eof;
	uint64_t lineno;
};

struct ib_opts {
	const char *endpoint, *input, *mode, *label;
	unsigned clients;
	size_t batch, chunk, limit;
	int header, expect_new;
};

/* One timed run over a chunk: the worker threads share it. */
struct ib_run {
	const struct ib_opts *o;
	const struct ib_chunk *ch;
	tp_client *clients[IB_MAX_CLIENTS];
	atomic_size_t next;
	double *lat; /* per batch, seconds */
	atomic_ulong accepted, duplicates, retries;
	atomic_int failed;
	pthread_mutex_t errlock;
	char err[1024];
};

static double
ib_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
ib_chunk_init(struct ib_chunk *ch, size_t cap)
{
	memset(ch, 0, sizeof(*ch));
	ch->cap = cap;
	ch->tcap = cap * 256; /* tpgen's lines are 60-200 bytes */
	ch->evs = calloc(cap, sizeof(*ch->evs));
	ch->traits = calloc(2 * cap, sizeof(*ch->traits));
	ch->text = malloc(ch->tcap);
	return ch->evs && ch->traits && ch->text ? 0 : -1;
}

static void
ib_chunk_free(struct ib_chunk *ch)
{
	free(ch->evs);
	free(ch->traits);
	free(ch->text);
}

static int
ib_header(struct ib_input *in)
{
	char *tok, *save = NULL;
	ssize_t len;
	int i, col = 0;

	if ((len = getline(&in->line, &in->linecap, in->f)) <= 0)
		return -1;
	in->lineno = 1;
	for (i = 0; i < IB_NCOL; i++)
		in->colmap[i] = -1;
	in->line[strcspn(in->line, "\r\n")] = '\0';
	for (tok = strtok_r(in->line, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < IB_NCOL; i++)
			if (strcmp(tok, ib_colnames[i]) == 0)
				in->colmap[i] = col;
		col++;
	}
	in->ncols = col;
	for (i = 0; i <= IB_TIMESTAMP_US; i++)
		if (in->colmap[i] < 0) {
			fprintf(stderr,
			        "tpbench-ingest: input lacks column %s (use tpgen "
			        "--timestamp-us)\n",
			        ib_colnames[i]);
			return -1;
		}
	return 0;
}

static double
ib_num(const char *s)
{
	return s != NULL ? strtod(s, NULL) : 0.0;
}

static enum tp_interaction
ib_interaction(const char *s)
{
	static const char *const names[] = { "",      "impression", "click",
		                             "visit", "email_open", "other" };
	size_t i;

	for (i = 1; s != NULL && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return (enum tp_interaction)i;
	return TP_INTERACTION_UNSPECIFIED;
}

/* Splits one line (already copied into the chunk's text) into an event. */
static int
ib_parse(struct ib_input *in, struct ib_chunk *ch, char *p)
{
	const char *f[IB_NCOL] = { 0 };
	char *cols[64];
	struct tp_event *e = &ch->evs[ch->n];
	int ncol = 0, i;

	p[strcspn(p, "\r\n")] = '\0';
	cols[ncol++] = p;
	for (; *p != '\0'; p++)
		if (*p == ',') {
			*p = '\0';
			if (ncol == 64)
				return -1;
			cols[ncol++] = p + 1;
		}
	if (ncol != in->ncols)
		return -1;
	for (i = 0; i < IB_NCOL; i++)
		if (in->colmap[i] >= 0 && *cols[in->colmap[i]] != '\0')
			f[i] = cols[in->colmap[i]];
	memset(e, 0, sizeof(*e));
	e->event_id = f[IB_EVENT_ID];
	e->customer_id = f[IB_CUSTOMER_ID];
	e->timestamp_us = f[IB_TIMESTAMP_US] ? strtoll(f[IB_TIMESTAMP_US], NULL, 10) : 0;
	if (f[IB_TYPE] == NULL)
		return -1;
	if (strcmp(f[IB_TYPE], "touch") == 0) {
		e->kind = TP_TOUCH;
		e->u.touch.channel = f[IB_CHANNEL];
		e->u.touch.campaign = f[IB_CAMPAIGN];
		e->u.touch.source = f[IB_SOURCE];
		e->u.touch.medium = f[IB_MEDIUM];
		e->u.touch.interaction = ib_interaction(f[IB_INTERACTION]);
		e->u.touch.has_cost = f[IB_COST] != NULL;
		e->u.touch.cost = ib_num(f[IB_COST]);
	} else if (strcmp(f[IB_TYPE], "conversion") == 0) {
		e->kind = TP_CONVERSION;
		e->u.conversion.value = ib_num(f[IB_VALUE]);
		e->u.conversion.currency = f[IB_CURRENCY];
		e->u.conversion.name = f[IB_NAME];
	} else if (strcmp(f[IB_TYPE], "identify") == 0) {
		struct tp_trait *t = &ch->traits[2 * ch->n];
		size_t k = 0;

		e->kind = TP_IDENTIFY;
		if (f[IB_PLAN] != NULL)
			t[k++] = (struct tp_trait){ "plan", f[IB_PLAN] };
		if (f[IB_COUNTRY] != NULL)
			t[k++] = (struct tp_trait){ "country", f[IB_COUNTRY] };
		e->u.identify.traits = t;
		e->u.identify.count = k;
	} else if (strcmp(f[IB_TYPE], "alias") == 0) {
		e->kind = TP_ALIAS;
		e->u.alias.previous_id = f[IB_PREVIOUS_ID];
	} else if (strcmp(f[IB_TYPE], "spend") == 0) {
		e->kind = TP_SPEND;
		e->u.spend.channel = f[IB_CHANNEL];
		e->u.spend.campaign = f[IB_CAMPAIGN];
		e->u.spend.day = f[IB_DAY];
		e->u.spend.amount = ib_num(f[IB_AMOUNT]);
		e->u.spend.currency = f[IB_CURRENCY];
	} else {
		return -1;
	}
	ch->n++;
	return 0;
}

/* Fills ch with up to its capacity (and at most *left events); 0 events means the end. */
static int
ib_fill(struct ib_input *in, struct ib_chunk *ch, size_t *left)
{
	ssize_t len;

	ch->n = 0;
	ch->tlen = 0;
	while (ch->n<ch->cap && * left> 0) {
		if (!in->pending) {
			if (in->eof || (len = getline(&in->line, &in->linecap, in->f)) <= 0) {
				in->eof = 1;
				break;
			}
			in->lineno++;
			if (len >= IB_MAX_LINE) {
				fprintf(stderr, "tpbench-ingest: line %" PRIu64 " too long\n",
				        in->lineno);
				return -1;
			}
			in->pending = 1;
		}
		len = (ssize_t)strlen(in->line);
		if (ch->tlen + (size_t)len + 1 > ch->tcap)
			break; /* the line waits for the next chunk */
		memcpy(ch->text + ch->tlen, in->line, (size_t)len + 1);
		in->pending = 0;
		if (ib_parse(in, ch, ch->text + ch->tlen) != 0) {
			fprintf(stderr, "tpbench-ingest: line %" PRIu64 ": cannot parse\n",
			        in->lineno);
			return -1;
		}
		ch->tlen += (size_t)len + 1;
		(*left)--;
	}
	return 0;
}

static void
ib_fail(struct ib_run *r, const struct tp_result *res, int rv)
{
	pthread_mutex_lock(&r->errlock);
	if (!atomic_load(&r->failed)) {
		snprintf(r->err, sizeof(r->err), "%s: %s%s%s", tp_strerror(rv), res->message,
		         res->nviolations ? "; first violation: " : "",
		         res->nviolations ? res->violations[0].reason : "");
		atomic_store(&r->failed, 1);
	}
	pthread_mutex_unlock(&r->errlock);
}

/* Sends one batch until it is acknowledged; a busy daemon is retried, anything else fails. */
static int
ib_send(struct ib_run *r, tp_client *c, const struct tp_event *evs, size_t n)
{
	struct tp_result res;
	struct timespec pause = { 0, 2000000 };
	int rv, tries = 0;

	for (;;) {
		memset(&res, 0, sizeof(res));
		rv = tp_send(c, evs, n, &res);
		if (rv == TP_OK) {
			atomic_fetch_add(&r->accepted, res.accepted);
			atomic_fetch_add(&r->duplicates, res.duplicates);
			tp_result_free(&res);
			return 0;
		}
		if ((rv == TP_RESOURCE_EXHAUSTED || rv == TP_UNAVAILABLE) && ++tries < 1000) {
			tp_result_free(&res);
			atomic_fetch_add(&r->retries, 1);
			nanosleep(&pause, NULL);
			continue;
		}
		ib_fail(r, &res, rv);
		tp_result_free(&res);
		return -1;
	}
}

static void *
ib_worker(void *arg)
{
	struct ib_run *r = ((void **)arg)[0];
	tp_client *c = ((void **)arg)[1];
	size_t b = r->o->batch, i, off, n;
	double t0;

	while (!atomic_load(&r->failed)) {
		i = atomic_fetch_add(&r->next, 1);
		off = i * b;
		if (off >= r->ch->n)
			break;
		n = r->ch->n - off < b ? r->ch->n - off : b;
		t0 = ib_now();
		if (ib_send(r, c, r->ch->evs + off, n) != 0)
			break;
		r->lat[i] = ib_now() - t0;
	}
	return NULL;
}

/* Batches of the chunk from every client at once; returns the seconds it took. */
static int
ib_run_batches(struct ib_run *r, double *secs)
{
	pthread_t th[IB_MAX_CLIENTS];
	void *args[IB_MAX_CLIENTS][2];
	unsigned i, started = 0;
	double t0;

	atomic_store(&r->next, 0);
	t0 = ib_now();
	for (i = 0; i < r->o->clients; i++) {
		args[i][0] = r;
		args[i][1] = r->clients[i];
		if (pthread_create(&th[i], NULL, ib_worker, args[i]) != 0) {
			atomic_store(&r->failed, 1);
			snprintf(r->err, sizeof(r->err), "pthread_create failed");
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	*secs = ib_now() - t0;
	return atomic_load(&r->failed) ? -1 : 0;
}

/* Every event on its own, one after the other: the synchronous round trip. */
static int
ib_run_single(struct ib_run *r, double *secs)
{
	size_t i;
	double t0 = ib_now(), t;

	for (i = 0; i < r->ch->n; i++) {
		t = ib_now();
		if (ib_send(r, r->clients[0], &r->ch->evs[i], 1) != 0)
			return -1;
		r->lat[i] = ib_now() - t;
	}
	*secs = ib_now() - t0;
	return 0;
}

/* The buffered sender: events added one by one as an application would, then a flush. */
static int
ib_run_sender(struct ib_run *r, tp_sender *s, double *secs)
{
	size_t i;
	double t0 = ib_now();
	int rv;

	for (i = 0; i < r->ch->n; i++)
		if ((rv = tp_sender_add(s, &r->ch->evs[i])) != TP_OK) {
			snprintf(r->err, sizeof(r->err), "tp_sender_add: %s", tp_strerror(rv));
			return -1;
		}
	if ((rv = tp_flush(s, 0)) != TP_OK) {
		snprintf(r->err, sizeof(r->err), "tp_flush: %s", tp_strerror(rv));
		return -1;
	}
	*secs = ib_now() - t0;
	return 0;
}

static int
ib_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
ib_pct(const double *sorted, size_t n, double p)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)(p * (double)n);
	if (k >= n)
		k = n - 1;
	return sorted[k];
}

static void
ib_usage(FILE *f)
{
	fputs("usage: tpbench-ingest -e ENDPOINT [--mode batch|sender|single] [--clients N]\n"
	      "                      [--batch N] [--chunk N] [--limit N] [--label TEXT]\n"
	      "                      [--expect-new] [--header] [--input FILE|-]\n"
	      "Reads tpgen CSV (tpgen --timestamp-us) and prints a markdown table row.\n",
	      f);
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "endpoint", required_argument, NULL, 'e' },
		{ "mode", required_argument, NULL, 'm' },
		{ "clients", required_argument, NULL, 'c' },
		{ "batch", required_argument, NULL, 'b' },
		{ "chunk", required_argument, NULL, 'k' },
		{ "limit", required_argument, NULL, 'n' },
		{ "label", required_argument, NULL, 'l' },
		{ "input", required_argument, NULL, 'i' },
		{ "expect-new", no_argument, NULL, 'x' },
		{ "header", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ib_opts o = { .endpoint = NULL,
		             .input = "-",
		             .mode = "batch",
		             .label = "",
		             .clients = 1,
		             .batch = 1000,
		             .chunk = 1000000,
		             .limit = SIZE_MAX };
	struct ib_input in = { 0 };
	struct ib_chunk ch = { 0 };
	struct ib_run r;
	struct tp_daemon_status st;
	struct tp_sender_stats ss;
	struct tp_sender_options so = { 0 };
	tp_sender *sender = NULL;
	double *lat = NULL, secs, total_secs = 0, *grow;
	size_t nlat = 0, caplat = 0, left, nb, events = 0;
	unsigned i, nconn = 0;
	int opt, rv = 1, mode;
	char *end;

	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.errlock, NULL);
	while ((opt = getopt_long(argc, argv, "e:m:c:b:k:n:l:i:xHh", lopts, NULL)) != -1) {
		switch (opt) {
		case 'e':
			o.endpoint = optarg;
			break;
		case 'm':
			o.mode = optarg;
			break;
		case 'c':
			o.clients = (unsigned)strtoul(optarg, &end, 10);
			if (*end != '\0' || o.clients < 1 || o.clients > IB_MAX_CLIENTS)
				goto usage;
			break;
		case 'b':
			o.batch = strtoul(optarg, &end, 10);
			if (*end != '\0' || o.batch < 1 || o.batch > 100000)
				goto usage;
			break;
		case 'k':
			o.chunk = strtoul(optarg, &end, 10);
			if (*end != '\0' || o.chunk < 1 || o.chunk > 100000000)
				goto usage;
			break;
		case 'n':
			o.limit = strtoul(optarg, &end, 10);
			if (*end != '\0')
				goto usage;
			break;
		case 'l':
			o.label = optarg;
			break;
		case 'i':
			o.input = optarg;
			break;
		case 'x':
			o.expect_new = 1;
			break;
		case 'H':
			o.header = 1;
			break;
		case 'h':
			ib_usage(stdout);
			return 0;
		default:
			goto usage;
		}
	}
	if (o.header) {
		printf("| run | mode | clients | batch | events | seconds | events/s | p50 ms | "
		       "p99 ms | accepted | duplicates | retries | stored | store bytes | "
		       "bytes/event |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
		       "---|\n");
		return 0;
	}
	if (strcmp(o.mode, "batch") == 0)
		mode = 0;
	else if (strcmp(o.mode, "sender") == 0)
		mode = 1;
	else if (strcmp(o.mode, "single") == 0)
		mode = 2;
	else
		goto usage;
	if (mode != 0)
		o.clients = 1;
	o.chunk = o.chunk < o.batch ? o.batch : o.chunk;
	r.o = &o;
	r.ch = &ch;

	in.f = strcmp(o.input, "-") == 0 ? stdin : fopen(o.input, "r");
	if (in.f == NULL) {
		fprintf(stderr, "tpbench-ingest: %s: %s\n", o.input, strerror(errno));
		return 66;
	}
	if (ib_header(&in) != 0 || ib_chunk_init(&ch, o.chunk) != 0)
		goto done;
	for (i = 0; i < o.clients; i++, nconn++) {
		struct tp_result res = { 0 };
		int s = tp_connect_ex(&r.clients[i], o.endpoint, &res);

		if (s != TP_OK) {
			fprintf(stderr, "tpbench-ingest: %s\n", res.message);
			tp_result_free(&res);
			goto done;
		}
		tp_set_timeout(r.clients[i], 60000);
	}
	if (mode == 1) {
		so.max_batch = o.batch;
		so.block_when_full = 1;
		if (tp_sender_new(&sender, o.endpoint, &so) != TP_OK) {
			fprintf(stderr, "tpbench-ingest: tp_sender_new failed\n");
			goto done;
		}
	}
	left = o.limit;
	/* Parse a chunk, then send it: parsing is outside the timed part. */
	for (;;) {
		if (ib_fill(&in, &ch, &left) != 0)
			goto done;
		if (ch.n == 0)
			break;
		nb = mode == 0 ? (ch.n + o.batch - 1) / o.batch : mode == 2 ? ch.n : 0;
		if (nlat + nb > caplat) {
			caplat = (nlat + nb) * 2;
			if ((grow = realloc(lat, caplat * sizeof(*lat))) == NULL)
				goto done;
			lat = grow;
		}
		r.lat = lat + nlat;
		if (mode == 0)
			rv = ib_run_batches(&r, &secs);
		else if (mode == 1)
			rv = ib_run_sender(&r, sender, &secs);
		else
			rv = ib_run_single(&r, &secs);
		if (rv != 0) {
			fprintf(stderr, "tpbench-ingest: %s\n", r.err);
			rv = 1;
			goto done;
		}
		rv = 1;
		nlat += nb;
		total_secs += secs;
		events += ch.n;
		if (in.eof && !in.pending)
			break;
	}
	if (mode == 1) {
		tp_sender_stats(sender, &ss);
		r.accepted = ss.accepted;
		r.duplicates = ss.duplicates;
		r.retries = ss.retries;
		if (ss.rejected != 0) {
			fprintf(stderr, "tpbench-ingest: sender rejected %" PRIu64 " events\n",
			        ss.rejected);
			goto done;
		}
	}
	if (o.expect_new && (atomic_load(&r.accepted) != events)) {
		fprintf(stderr,
		        "tpbench-ingest: %zu events sent but %lu newly stored (%lu duplicates)\n",
		        events, (unsigned long)atomic_load(&r.accepted),
		        (unsigned long)atomic_load(&r.duplicates));
		goto done;
	}
	memset(&st, 0, sizeof(st));
	if (tp_status(r.clients[0], &st) != TP_OK)
		fprintf(stderr, "tpbench-ingest: status call failed\n");
	qsort(lat, nlat, sizeof(*lat), ib_cmp_double);
	printf("| %s | %s | %u | %zu | %zu | %.2f | %.0f | %.2f | %.2f | %lu | %lu | %lu | %" PRIu64
	       " | %" PRIu64 " | %.1f |\n",
	       o.label, o.mode, o.clients, mode == 2 ? (size_t)1 : o.batch, events, total_secs,
	       total_secs > 0 ? (double)events / total_secs : 0.0, ib_pct(lat, nlat, 0.50) * 1e3,
	       ib_pct(lat, nlat, 0.99) * 1e3, (unsigned long)atomic_load(&r.accepted),
	       (unsigned long)atomic_load(&r.duplicates), (unsigned long)atomic_load(&r.retries),
	       st.events_total, st.store_bytes,
	       st.events_total ? (double)st.store_bytes / (double)st.events_total : 0.0);
	rv = 0;
done:
	if (sender != NULL)
		tp_sender_close(sender, 60000);
	for (i = 0; i < nconn; i++)
		tp_close(r.clients[i]);
	if (in.f != NULL && in.f != stdin)
		fclose(in.f);
	free(in.line);
	ib_chunk_free(&ch);
	free(lat);
	pthread_mutex_destroy(&r.errlock);
	return rv;
usage:
	ib_usage(stderr);
	return 64;
}
