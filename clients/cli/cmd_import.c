/*
 * touchpoint import: CSV or NDJSON (optionally gzip'd) -> batches of tp_send, with
 * content-derived ids, retries, per-row rejections by line number and a summary.
 * The calling thread reads and parses into a bounded pool of batches; -j sender threads
 * send them concurrently on the shared (thread-safe) tp_client.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "attribution/engine.h"
#include "cli.h"
#include "csv.h"
#include "json.h"
#include "row.h"

extern char **environ;

#define IMP_MAX_LINE      (1024 * 1024) /* bytes of one NDJSON line */
#define IMP_MAX_BATCH     100000
#define IMP_MAX_ATTEMPTS  12  /* per batch, on retryable statuses */
#define IMP_SHOWN_REJECTS 100 /* rejected rows printed; the rest are only counted */
#define IMP_MAX_JOBS      64
/* Events read ahead or in flight, at most (each row_event is ~2.3 KB). */
#define IMP_MAX_BUFFERED 256000
/* A UTF-8 byte order mark, as spreadsheets write one before the first byte of a file. */
#define IMP_BOM "\xef\xbb\xbf"

static const char import_help[] =
    "Usage: touchpoint import [--input-format csv|ndjson] [--batch N] [--jobs N]\n"
    "                         [--format F] FILE|-\n"
    "\n"
    "Bulk-ingests events. The format follows the file name (.csv, .ndjson or .jsonl,\n"
    "each optionally .gz); '-' (standard input) is CSV unless --input-format says\n"
    "otherwise. CSV has a header row; NDJSON one object per line. Names: event_id\n"
    "(optional), customer_id, type (touch|conversion|identify|alias|spend), timestamp\n"
    "(RFC 3339) or timestamp_us, channel, campaign, source, medium, interaction, cost,\n"
    "value, currency, name, previous_id, day, amount, and traits as trait.KEY columns\n"
    "(NDJSON: \"traits\": {...}). A row without event_id gets an id derived from its\n"
    "content, so importing a file twice stores it once. Rejected rows are reported by\n"
    "line, in line order, at the end; the rest of their batch is stored.\n"
    "  -i, --input-format F   csv or ndjson\n"
    "  -b, --batch N          events per request (default 1000, at most 100000)\n"
    "  -j, --jobs N           batches in flight at once (default 4, 1..64)\n"
    "  --format F             summary as table (default), csv or json\n"
    "Exit status 0 when every row was stored (or was a duplicate), 65 when some were\n"
    "rejected (or, with nothing sent, the header or the gzip data is bad), 66 when\n"
    "FILE cannot be opened (77 when it may not be read), 74 when it cannot be read\n"
    "to its end, 69 or 75 when touchpointd stays unavailable or busy (69 also when\n"
    "gzip cannot be run), 71 when the system runs out of memory or threads.\n";

/* One batch: rows own their strings; evs/pos are the rows still being sent. */
struct imp_batch {
	struct row_event *rows;
	struct tp_event *evs;
	size_t *pos; /* evs[i] is rows[pos[i]] */
	size_t n;
	unsigned long seq; /* order in the file, to pick the first fatal error */
	struct imp_batch *next;
};

/*
 * A rejected row's messages, "FILE:LINE: FIELD: REASON" each, NUL-terminated one after
 * another in len bytes: printed through cli_msg, which makes a newline in a quoted cell
 * a '?' and not a line that seems to be another message.
 */
struct imp_shown {
	unsigned long line;
	char *text;
	size_t len;
};

struct imp {
	/* Reader state: the calling thread only. */
	const char *name;
	FILE *in;
	pid_t gzip;
	int ndjson;
	struct csv_reader *csv;
	size_t ncols;
	char **cols;
	char *linebuf;
	size_t linecap;
	unsigned long line;
	unsigned long rows;
	struct imp_batch *cur; /* being filled */
	unsigned long nextseq;
	int tty;
	off_t total;

	tp_client *c;
	size_t max; /* events per batch */
	struct imp_batch *bufs;
	size_t nbufs;

	/* Shared with the senders, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t ready; /* a batch was queued, or eof/stop */
	pthread_cond_t freed; /* a batch went back to the pool, or stop */
	struct imp_batch *pool, *head, *tail;
	int eof;  /* the reader queues nothing more */
	int stop; /* a batch failed for good: read and send nothing more */
	int fatal_rv;
	unsigned long fatal_seq;
	struct tp_result fatal_res; /* printed by the main thread at the end */
	unsigned long accepted, duplicates, rejected, retries;
	/* The IMP_SHOWN_REJECTS rejected rows with the lowest lines: a max-heap by line. */
	struct imp_shown shown[IMP_SHOWN_REJECTS];
	size_t nshown;
	int oom; /* a rejection's message could not be kept */
};

static void
imp_clear_progress(struct imp *m)
{
	if (m->tty)
		fputs("\r\033[K", stderr);
}

static void
imp_progress(struct imp *m)
{
	off_t at;
	int pct, i;

	if (!m->tty)
		return;
	at = m->total > 0 && m->gzip == 0 ? ftello(m->in) : -1;
	if (at >= 0) {
		pct = (int)(at * 100 / m->total);
		fputs("\r[", stderr);
		for (i = 0; i < 30; i++)
			fputc(i < pct * 30 / 100 ? '#' : '.', stderr);
		fprintf(stderr, "] %3d%%  %lu rows", pct, m->rows);
	} else {
		fprintf(stderr, "\r%lu rows", m->rows);
	}
	fflush(stderr);
}

/* Appends one formatted message and its NUL to a malloc'd text; -1 when out of memory. */
static int __attribute__((format(printf, 3, 4)))
imp_text_add(char **text, size_t *len, const char *fmt, ...)
{
	va_list ap;
	char *nt;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (nt = realloc(*text, *len + (size_t)n + 1)) == NULL)
		return -1;
	*text = nt;
	va_start(ap, fmt);
	vsnprintf(nt + *len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	*len += (size_t)n + 1;
	return 0;
}

static void
imp_heap_swap(struct imp_shown *a, struct imp_shown *b)
{
	struct imp_shown t = *a;

	*a = *b;
	*b = t;
}

/*
 * Counts a rejected row and keeps its messages (text, taken over) if its line is among
 * the IMP_SHOWN_REJECTS lowest so far: rows finish out of order, the output must not.
 * Call with mu held.
 */
static void
imp_reject_locked(struct imp *m, unsigned long line, char *text, size_t len)
{
	struct imp_shown *h = m->shown;
	size_t i, c;

	m->rejected++;
	if (text == NULL) {
		m->oom = 1;
		return;
	}
	if (m->nshown < IMP_SHOWN_REJECTS) {
		i = m->nshown++;
		h[i] = (struct imp_shown){ line, text, len };
		while (i > 0 && h[(i - 1) / 2].line < h[i].line) {
			imp_heap_swap(&h[(i - 1) / 2], &h[i]);
			i = (i - 1) / 2;
		}
		return;
	}
	if (line >= h[0].line) {
		free(text);
		return;
	}
	free(h[0].text);
	h[0] = (struct imp_shown){ line, text, len };
	for (i = 0; (c = 2 * i + 1) < m->nshown; i = c) {
		if (c + 1 < m->nshown && h[c + 1].line > h[c].line)
			c++;
		if (h[c].line <= h[i].line)
			break;
		imp_heap_swap(&h[c], &h[i]);
	}
}

/* A row the reader could not turn into an event. */
static void
imp_reject(struct imp *m, unsigned long line, const char *field, const char *reason)
{
	char *text = NULL;
	size_t len = 0;

	if (imp_text_add(&text, &len, "%s:%lu: %s: %s", m->name, line, field, reason) != 0) {
		free(text);
		text = NULL;
	}
	pthread_mutex_lock(&m->mu);
	imp_reject_locked(m, line, text, len);
	pthread_mutex_unlock(&m->mu);
}

static int
imp_shown_cmp(const void *a, const void *b)
{
	const struct imp_shown *x = a, *y = b;

	return x->line < y->line ? -1 : x->line > y->line;
}

/* Strips "events[N]." from a violation's field: the line number says which event. */
static const char *
imp_field(const char *f)
{
	const char *p;

	if (strncmp(f, "events[", 7) == 0 && (p = strstr(f, "].")) != NULL)
		return p + 2;
	return f;
}

/* Keeps the first (in file order) batch that failed for good; stops everything. */
static void
imp_fail(struct imp *m, const struct imp_batch *b, int status, struct tp_result *res)
{
	pthread_mutex_lock(&m->mu);
	if (!m->stop || b->seq < m->fatal_seq) {
		tp_result_free(&m->fatal_res);
		m->fatal_res = *res;
		m->fatal_rv = cli_exit_code(status);
		m->fatal_seq = b->seq;
		*res = (struct tp_result){ 0 };
	}
	m->stop = 1;
	pthread_cond_broadcast(&m->ready);
	pthread_cond_broadcast(&m->freed);
	pthread_mutex_unlock(&m->mu);
	tp_result_free(res);
}

static int
imp_stopped(struct imp *m)
{
	int stop;

	pthread_mutex_lock(&m->mu);
	stop = m->stop;
	pthread_mutex_unlock(&m->mu);
	return stop;
}

/* Rejects the rows the violations name (each once, with all its violations). */
static void
imp_reject_named(struct imp *m, struct imp_batch *b, const size_t *pos, const struct tp_result *res)
{
	size_t i, j, len;
	char *text;

	for (i = 0; i < res->nviolations; i++) {
		size_t idx = (size_t)res->violations[i].index;
		unsigned long line = b->rows[pos[idx]].line;

		for (j = 0; j < i; j++)
			if (res->violations[j].index == res->violations[i].index)
				break;
		if (j < i)
			continue; /* the row's first violation gathered them all */
		text = NULL;
		len = 0;
		for (j = i; j < res->nviolations; j++) {
			if (res->violations[j].index != res->violations[i].index)
				continue;
			if (imp_text_add(&text, &len, "%s:%lu: %s: %s", m->name, line,
			                 imp_field(res->violations[j].field),
			                 res->violations[j].reason) != 0) {
				free(text);
				text = NULL;
				break;
			}
		}
		pthread_mutex_lock(&m->mu);
		imp_reject_locked(m, line, text, len);
		pthread_mutex_unlock(&m->mu);
	}
}

/*
 * Sends evs[0..k) (rows pos[0..k) of the batch) until stored; rows named by violations are
 * rejected, the rest resent. A part too big for the daemon's max_message_bytes goes again
 * in halves, and a row too big on its own is rejected.
 */
static void
imp_send_part(struct imp *m, struct imp_batch *b, struct tp_event *evs, size_t *pos, size_t k)
{
	struct tp_result res;
	unsigned backoff = 100;
	size_t i, j, good;
	int status, attempts = 0;

	while (k > 0) {
		status = tp_send(m->c, evs, k, &res);
		if (status == TP_OK) {
			pthread_mutex_lock(&m->mu);
			m->accepted += res.accepted;
			m->duplicates += res.duplicates;
			pthread_mutex_unlock(&m->mu);
			tp_result_free(&res);
			return;
		}
		if (tp_result_too_big(&res)) {
			char *text = NULL;
			size_t len = 0;

			if (k > 1) {
				tp_result_free(&res);
				imp_send_part(m, b, evs, pos, k / 2);
				if (!imp_stopped(m))
					imp_send_part(m, b, evs + k / 2, pos + k / 2, k - k / 2);
				return;
			}
			if (imp_text_add(&text, &len, "%s:%lu: %s", m->name, b->rows[pos[0]].line,
			                 res.message) != 0) {
				free(text);
				text = NULL;
			}
			pthread_mutex_lock(&m->mu);
			imp_reject_locked(m, b->rows[pos[0]].line, text, len);
			pthread_mutex_unlock(&m->mu);
			tp_result_free(&res);
			return;
		}
		if (status == TP_UNAVAILABLE || status == TP_DEADLINE_EXCEEDED ||
		    status == TP_RESOURCE_EXHAUSTED) {
			if (++attempts >= IMP_MAX_ATTEMPTS) {
				imp_fail(m, b, status, &res);
				return;
			}
			tp_result_free(&res);
			pthread_mutex_lock(&m->mu);
			m->retries++;
			pthread_mutex_unlock(&m->mu);
			/* Same batch, same ids: the daemon stores each event once. */
			nanosleep(&(struct timespec){ .tv_sec = backoff / 1000,
			                              .tv_nsec = (backoff % 1000) * 1000000L },
			          NULL);
			backoff = backoff < 2500 ? backoff * 2 : 5000;
			/* Another batch failed for good meanwhile: the import is over. */
			if (imp_stopped(m))
				return;
			continue;
		}
		for (i = 0; status == TP_INVALID_ARGUMENT && i < res.nviolations; i++)
			if (res.violations[i].index < 0 || (size_t)res.violations[i].index >= k)
				break;
		if (status != TP_INVALID_ARGUMENT || res.nviolations == 0 || i < res.nviolations) {
			imp_fail(m, b, status, &res);
			return;
		}
		imp_reject_named(m, b, pos, &res);
		for (i = good = 0; i < k; i++) {
			for (j = 0; j < res.nviolations; j++)
				if ((size_t)res.violations[j].index == i)
					break;
			if (j < res.nviolations)
				continue;
			evs[good] = evs[i];
			pos[good++] = pos[i];
		}
		k = good;
		tp_result_free(&res);
	}
}

static void
imp_send(struct imp *m, struct imp_batch *b)
{
	size_t k;

	for (k = 0; k < b->n; k++) {
		b->evs[k] = b->rows[k].ev;
		b->pos[k] = k;
	}
	imp_send_part(m, b, b->evs, b->pos, b->n);
}

static void
imp_batch_clear(struct imp_batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		row_event_free(&b->rows[i]);
	b->n = 0;
}

/* Sender thread: queued batches in file order, until the reader is done or stop. */
static void *
imp_sender(void *arg)
{
	struct imp *m = arg;
	struct imp_batch *b;
	int stop;

	pthread_mutex_lock(&m->mu);
	for (;;) {
		while (m->head == NULL && !m->eof && !m->stop)
			pthread_cond_wait(&m->ready, &m->mu);
		if ((b = m->head) == NULL)
			break;
		if ((m->head = b->next) == NULL)
			m->tail = NULL;
		stop = m->stop;
		pthread_mutex_unlock(&m->mu);
		if (!stop)
			imp_send(m, b);
		imp_batch_clear(b);
		pthread_mutex_lock(&m->mu);
		b->next = m->pool;
		m->pool = b;
		pthread_cond_signal(&m->freed);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/*
 * Queues the current batch and takes an empty one from the pool, waiting while every
 * batch is queued or in flight. Returns EX_OK, or the failed batch's exit code on stop.
 */
static int
imp_queue(struct imp *m)
{
	struct imp_batch *b = m->cur;
	int rv = EX_OK;

	pthread_mutex_lock(&m->mu);
	if (m->stop) {
		rv = m->fatal_rv;
		goto out;
	}
	b->seq = m->nextseq++;
	b->next = NULL;
	if (m->tail != NULL)
		m->tail->next = b;
	else
		m->head = b;
	m->tail = b;
	m->cur = NULL;
	pthread_cond_signal(&m->ready);
	while (m->pool == NULL && !m->stop)
		pthread_cond_wait(&m->freed, &m->mu);
	if (m->stop) {
		rv = m->fatal_rv;
		goto out;
	}
	m->cur = m->pool;
	m->pool = m->cur->next;
out:
	pthread_mutex_unlock(&m->mu);
	if (rv == EX_OK)
		imp_progress(m);
	return rv;
}

/*
 * Out of memory while reading: not the row's fault, so not a rejection (65) that lets the
 * import go on, but the end of it (71, as the help says). Returns EX_OSERR.
 */
static int
imp_oom(struct imp *m, unsigned long line)
{
	if (line > 0)
		cli_msg("touchpoint import: %s:%lu: out of memory: the import stops there", m->name,
		        line);
	else
		cli_msg("touchpoint import: %s: out of memory", m->name);
	return EX_OSERR;
}

static int
imp_add(struct imp *m, const struct row_field *f, size_t n, unsigned long line)
{
	char field[64], reason[256];
	struct row_event *re = &m->cur->rows[m->cur->n];
	int r;

	m->rows++;
	if ((r = row_to_event(f, n, re, field, sizeof(field), reason, sizeof(reason))) != 0) {
		if (r == -2)
			return imp_oom(m, line);
		imp_reject(m, line, field, reason);
		return EX_OK;
	}
	/* re stays where it is until sent: its event points into it (id, traits). */
	re->line = line;
	if (++m->cur->n == m->max)
		return imp_queue(m);
	return EX_OK;
}

static int
imp_csv(struct imp *m)
{
	struct row_field *f = NULL;
	char **fields, err[128], reason[160];
	unsigned long line;
	size_t n, i, j;
	int rv, r;

	if ((m->csv = csv_new(m->in)) == NULL)
		return imp_oom(m, 0);
	r = csv_read(m->csv, &fields, &n, &line, err, sizeof(err));
	if (r == -3)
		return imp_oom(m, line);
	if (r <= 0) {
		cli_msg("touchpoint import: %s: %s", m->name,
		        r == 0 ? "empty input, a header row was expected" : err);
		return r == -2 ? EX_IOERR : EX_DATAERR;
	}
	if ((m->cols = calloc(n, sizeof(*m->cols))) == NULL ||
	    (f = calloc(n, sizeof(*f))) == NULL) {
		free(f);
		return imp_oom(m, line);
	}
	m->ncols = n;
	if (n > 0 && strncmp(fields[0], IMP_BOM, 3) == 0) /* not part of the first name */
		memmove(fields[0], fields[0] + 3, strlen(fields[0] + 3) + 1);
	for (i = 0; i < n; i++) {
		if (!row_known_field(fields[i])) {
			cli_msg("touchpoint import: %s:%lu: unknown column '%s'", m->name, line,
			        fields[i]);
			free(f);
			return EX_DATAERR;
		}
		for (j = 0; j < i; j++)
			if (strcmp(m->cols[j], fields[i]) == 0) {
				cli_msg("touchpoint import: %s:%lu: column '%s' twice", m->name,
				        line, fields[i]);
				free(f);
				return EX_DATAERR;
			}
		if ((m->cols[i] = strdup(fields[i])) == NULL) {
			free(f);
			return imp_oom(m, line);
		}
		f[i].name = m->cols[i];
	}
	while ((r = csv_read(m->csv, &fields, &n, &line, err, sizeof(err))) != 0) {
		if (r == -2) {
			cli_msg("touchpoint import: %s: read error", m->name);
			free(f);
			return EX_IOERR;
		}
		if (r == -3) {
			free(f);
			return imp_oom(m, line);
		}
		if (r == -1) {
			m->rows++;
			imp_reject(m, line, "csv", err);
			continue;
		}
		if (n != m->ncols) {
			m->rows++;
			snprintf(reason, sizeof(reason), "%zu fields, the header has %zu", n,
			         m->ncols);
			imp_reject(m, line, "csv", reason);
			continue;
		}
		for (i = 0; i < n; i++)
			f[i].value = fields[i];
		if ((rv = imp_add(m, f, n, line)) != EX_OK) {
			free(f);
			return rv;
		}
	}
	free(f);
	return EX_OK;
}

_Static_assert(ROW_MAX_TRAITS <= JSON_MAX_MEMBERS, "a row's traits must fit a JSON object");

/*
 * One NDJSON object -> fields (traits become trait.KEY) -> imp_add. Returns imp_add's exit
 * code, or -1 with the field and reason of a row that cannot be read.
 */
static int
imp_json_row(struct imp *m, const struct json_value *v, unsigned long line, char *reason,
             size_t rlen, char *field, size_t flen)
{
	struct row_field f[32 + ROW_MAX_TRAITS];
	char keys[ROW_MAX_TRAITS][80];
	size_t n = 0, i, j, nt = 0;

	if (v->type != JSON_OBJECT) {
		snprintf(field, flen, "json");
		snprintf(reason, rlen, "not an object");
		return -1;
	}
	for (i = 0; i < v->n; i++) {
		const struct json_value *x = v->items[i];

		snprintf(field, flen, "%s", v->keys[i]);
		if (strcmp(v->keys[i], "traits") == 0 && x->type == JSON_NULL)
			continue; /* null means absent, as for every key */
		if (strcmp(v->keys[i], "traits") == 0 && x->type == JSON_OBJECT) {
			for (j = 0; j < x->n; j++) {
				if (x->items[j]->type != JSON_STRING || nt == ROW_MAX_TRAITS ||
				    strlen(x->keys[j]) > 64) {
					snprintf(reason, rlen,
					         "traits must map keys (<= 64 bytes) to "
					         "strings, at most %d",
					         ROW_MAX_TRAITS);
					return -1;
				}
				snprintf(keys[nt], sizeof(keys[nt]), "trait.%s", x->keys[j]);
				f[n].name = keys[nt++];
				f[n++].value = x->items[j]->str;
			}
			continue;
		}
		/* f holds at most ROW_MAX_TRAITS traits (above) and 32 other fields (here) */
		if (!row_known_field(v->keys[i]) || strncmp(v->keys[i], "trait.", 6) == 0 ||
		    n - nt == 32) {
			snprintf(reason, rlen, "unknown key");
			return -1;
		}
		if (x->type == JSON_NULL)
			continue;
		if (x->type != JSON_STRING && x->type != JSON_NUMBER) {
			snprintf(reason, rlen, "must be a string or a number");
			return -1;
		}
		f[n].name = v->keys[i];
		f[n++].value = x->str;
	}
	return imp_add(m, f, n, line);
}

static int
imp_ndjson(struct imp *m)
{
	struct json_value *v;
	char err[128], field[80], reason[256];
	size_t len, blank;
	int c, r;

	for (;;) {
		len = 0;
		m->line++;
		while ((c = getc(m->in)) != EOF && c != '\n') {
			if (len == IMP_MAX_LINE + 1) /* room for the line's own CR */
				break;
			if (len + 1 >= m->linecap) {
				char *nb;

				if ((nb = realloc(m->linebuf,
				                  m->linecap ? m->linecap * 2 : 4096)) == NULL)
					return imp_oom(m, m->line);
				m->linebuf = nb;
				m->linecap = m->linecap ? m->linecap * 2 : 4096;
			}
			m->linebuf[len++] = (char)c;
		}
		if (c != EOF && c != '\n') {
			while ((c = getc(m->in)) != EOF && c != '\n')
				;
			m->rows++;
			imp_reject(m, m->line, "json", "line longer than 1 MiB");
			continue;
		}
		if (len > 0 && m->linebuf[len - 1] == '\r')
			len--;
		if (m->line == 1 && len >= 3 && memcmp(m->linebuf, IMP_BOM, 3) == 0) {
			memmove(m->linebuf, m->linebuf + 3, len - 3);
			len -= 3;
		}
		if (c == EOF && len == 0)
			break;
		for (blank = 0;
		     blank < len && (m->linebuf[blank] == ' ' || m->linebuf[blank] == '\t');
		     blank++)
			;
		if (blank == len) /* empty, or only spaces and tabs */
			continue;
		m->rows++;
		if ((r = json_parse(m->linebuf, len, &v, err, sizeof(err))) != 0) {
			if (r == -2)
				return imp_oom(m, m->line);
			imp_reject(m, m->line, "json", err);
			continue;
		}
		/* imp_add counts the row itself. */
		m->rows--;
		r = imp_json_row(m, v, m->line, reason, sizeof(reason), field, sizeof(field));
		json_free(v);
		if (r > 0)
			return r;
		if (r == -1) {
			m->rows++;
			imp_reject(m, m->line, field, reason);
		}
		if (c == EOF)
			break;
	}
	if (ferror(m->in)) {
		cli_msg("touchpoint import: %s: read error", m->name);
		return EX_IOERR;
	}
	return EX_OK;
}

/* gzip's wait status: 0, or 2 (a warning: trailing garbage after the last member). */
static int
imp_gzip_ok(int st)
{
	return WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 2);
}

/*
 * `gzip -t` of a .gz file before anything is read from it: gzip -dc streams what it
 * decodes and finds a damaged member only at its end, after the garbage went out as rows.
 * 0 when sound (or only trailing garbage, gzip's status 2), else an exit code.
 */
static int
imp_gz_test(const char *path)
{
	char *args[] = { "gzip", "-t", "--", (char *)path, NULL };
	pid_t pid;
	int rv, st;

	if ((rv = posix_spawnp(&pid, "gzip", NULL, NULL, args, environ)) != 0) {
		fprintf(stderr, "touchpoint import: cannot run gzip: %s\n", strerror(rv));
		return EX_UNAVAILABLE;
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			cli_msg("touchpoint import: %s: cannot wait for gzip -t: %s", path,
			        strerror(errno));
			return EX_OSERR;
		}
	if (imp_gzip_ok(st))
		return 0;
	cli_msg("touchpoint import: %s: damaged gzip data (gzip -t failed): nothing was "
	        "imported",
	        path);
	return EX_DATAERR;
}

/* Opens the input; .gz through a `gzip -dc` child. */
static int
imp_open(struct imp *m, const char *path, int gz)
{
	struct stat st;
	posix_spawn_file_actions_t fa;
	char *args[] = { "gzip", "-dc", "--", (char *)path, NULL };
	int fds[2], rv;

	if (strcmp(path, "-") == 0) {
		m->in = stdin;
	} else if ((m->in = fopen(path, "r")) == NULL) {
		int e = errno; /* writing the message may change it */

		cli_msg("touchpoint import: %s: %s", path, strerror(e));
		return e == EACCES ? EX_NOPERM : EX_NOINPUT;
	}
	if (fstat(fileno(m->in), &st) == 0 && S_ISREG(st.st_mode))
		m->total = st.st_size;
	if (!gz)
		return EX_OK;
	if (m->total > 0 && (rv = imp_gz_test(path)) != 0)
		return rv;
	if (pipe(fds) != 0)
		return EX_OSERR;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fileno(m->in), 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	posix_spawn_file_actions_addclose(&fa, fds[1]);
	args[3] = "-";
	rv = posix_spawnp(&m->gzip, "gzip", &fa, NULL, args, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (m->in != stdin)
		fclose(m->in);
	m->in = NULL;
	if (rv != 0) {
		close(fds[0]);
		m->gzip = 0;
		fprintf(stderr, "touchpoint import: cannot run gzip: %s\n", strerror(rv));
		return EX_UNAVAILABLE;
	}
	if ((m->in = fdopen(fds[0], "r")) == NULL) {
		close(fds[0]);
		return EX_OSERR;
	}
	return EX_OK;
}

static int
imp_close(struct imp *m)
{
	int st, rv = EX_OK;
	pid_t w;

	if (m->in != NULL && m->in != stdin)
		fclose(m->in);
	m->in = NULL;
	if (m->gzip > 0) {
		while ((w = waitpid(m->gzip, &st, 0)) < 0 && errno == EINTR)
			;
		if (w < 0) {
			/* ECHILD, say, when SIGCHLD is ignored: gzip's end is unknown, not good. */
			cli_msg("touchpoint import: %s: cannot wait for gzip -dc: %s", m->name,
			        strerror(errno));
			rv = EX_OSERR;
		} else if (!imp_gzip_ok(st)) {
			cli_msg("touchpoint import: %s: gzip failed to decompress it", m->name);
			rv = EX_DATAERR;
		}
		m->gzip = 0;
	}
	return rv;
}

static int
imp_ends(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The pool: 2 batches per job (one in flight, one read ahead), bounded in events. */
static int
imp_pool_new(struct imp *m, unsigned long jobs)
{
	size_t i;

	m->nbufs = 2 * jobs;
	if (m->nbufs * m->max > IMP_MAX_BUFFERED)
		m->nbufs = IMP_MAX_BUFFERED / m->max > 2 ? IMP_MAX_BUFFERED / m->max : 2;
	if ((m->bufs = calloc(m->nbufs, sizeof(*m->bufs))) == NULL)
		return -1;
	for (i = 0; i < m->nbufs; i++) {
		struct imp_batch *b = &m->bufs[i];

		if ((b->rows = calloc(m->max, sizeof(*b->rows))) == NULL ||
		    (b->evs = calloc(m->max, sizeof(*b->evs))) == NULL ||
		    (b->pos = calloc(m->max, sizeof(*b->pos))) == NULL)
			return -1;
		b->next = m->pool;
		m->pool = b;
	}
	m->cur = m->pool;
	m->pool = m->cur->next;
	return 0;
}

static void
imp_pool_free(struct imp *m)
{
	size_t i;

	for (i = 0; m->bufs != NULL && i < m->nbufs; i++) {
		if (m->bufs[i].rows != NULL)
			imp_batch_clear(&m->bufs[i]);
		free(m->bufs[i].rows);
		free(m->bufs[i].evs);
		free(m->bufs[i].pos);
	}
	free(m->bufs);
}

/* Rejected rows in line order (the first IMP_SHOWN_REJECTS), then how many more. */
static void
imp_print_rejects(struct imp *m)
{
	const char *p;
	size_t i;

	qsort(m->shown, m->nshown, sizeof(m->shown[0]), imp_shown_cmp);
	for (i = 0; i < m->nshown; i++)
		for (p = m->shown[i].text; p < m->shown[i].text + m->shown[i].len;
		     p += strlen(p) + 1)
			cli_msg("%s", p);
	if (m->rejected > m->nshown)
		fprintf(stderr, "... %lu more rejected rows not shown%s\n",
		        (unsigned long)(m->rejected - m->nshown), m->oom ? " (out of memory)" : "");
}

int
cmd_import(struct cli *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "format", required_argument, NULL, CLI_OPT_FORMAT },
		{ "input-format", required_argument, NULL, 'i' },
		{ "batch", required_argument, NULL, 'b' },
		{ "jobs", required_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct imp m = { 0 };
	enum cli_format fmt = CLI_TABLE;
	const char *informat = NULL, *path;
	char base[4096];
	unsigned long batch = 1000, jobs = 4;
	pthread_t tids[IMP_MAX_JOBS];
	size_t i, nthreads = 0;
	int ch, rv, gz = 0, rv2, sync = 0;

	while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "i:b:j:", longopts, NULL)) !=
	       -1) {
		if ((rv = cli_common(g, ch, import_help)) != -1) {
			if (rv != -2)
				return rv;
		} else if (ch == CLI_OPT_FORMAT) {
			if (cli_parse_format(optarg, &fmt) != 0)
				return cli_usage("import", "bad --format '%s'", optarg);
		} else if (ch == 'i') {
			if (strcmp(optarg, "csv") != 0 && strcmp(optarg, "ndjson") != 0)
				return cli_usage("import", "--input-format is csv or ndjson");
			informat = optarg;
		} else if (ch == 'b') {
			if (cli_parse_count(optarg, 1, IMP_MAX_BATCH, &batch) != 0)
				return cli_usage("import", "--batch is 1..%d", IMP_MAX_BATCH);
		} else if (ch == 'j') {
			if (cli_parse_count(optarg, 1, IMP_MAX_JOBS, &jobs) != 0)
				return cli_usage("import", "--jobs is 1..%d", IMP_MAX_JOBS);
		} else {
			return cli_bad_option("import", argv, ch);
		}
	}
	if (optind + 1 != argc)
		return cli_usage("import", "one input file (or -) wanted");
	path = argv[optind];
	snprintf(base, sizeof(base), "%s", path);
	if (imp_ends(base, ".gz")) {
		gz = 1;
		base[strlen(base) - 3] = '\0';
	}
	if (informat == NULL) {
		if (strcmp(path, "-") == 0 || imp_ends(base, ".csv"))
			informat = "csv";
		else if (imp_ends(base, ".ndjson") || imp_ends(base, ".jsonl"))
			informat = "ndjson";
		else
			return cli_usage("import",
			                 "cannot tell the format of '%s' from its name: "
			                 "use --input-format",
			                 path);
	}
	m.ndjson = strcmp(informat, "ndjson") == 0;
	m.name = strcmp(path, "-") == 0 ? "(stdin)" : path;
	m.max = batch;
	m.tty = isatty(STDERR_FILENO);
	if (pthread_mutex_init(&m.mu, NULL) != 0)
		return EX_OSERR;
	if (pthread_cond_init(&m.ready, NULL) != 0) {
		pthread_mutex_destroy(&m.mu);
		return EX_OSERR;
	}
	if (pthread_cond_init(&m.freed, NULL) != 0) {
		pthread_cond_destroy(&m.ready);
		pthread_mutex_destroy(&m.mu);
		return EX_OSERR;
	}
	sync = 1;
	if (imp_pool_new(&m, jobs) != 0) {
		rv = imp_oom(&m, 0);
		goto done;
	}
	if ((rv = cli_connect(g, &m.c)) != EX_OK)
		goto done;
	if ((rv = imp_open(&m, path, gz)) != EX_OK)
		goto done;
	/* More senders than batches could only wait. */
	for (i = 0; i < jobs && i < m.nbufs - 1; i++) {
		if (pthread_create(&tids[i], NULL, imp_sender, &m) != 0)
			break;
		nthreads++;
	}
	if (nthreads == 0) {
		fprintf(stderr, "touchpoint import: cannot start a sender thread\n");
		rv = EX_OSERR;
		goto done;
	}
	rv = m.ndjson ? imp_ndjson(&m) : imp_csv(&m);
	if (rv == EX_OK && m.cur->n > 0)
		rv = imp_queue(&m);
	/* On a read error the batches already queued are still sent, as they were read. */
	pthread_mutex_lock(&m.mu);
	m.eof = 1;
	pthread_cond_broadcast(&m.ready);
	pthread_mutex_unlock(&m.mu);
	for (i = 0; i < nthreads; i++)
		pthread_join(tids[i], NULL);
	nthreads = 0;
	if (m.stop)
		rv = m.fatal_rv;
	rv2 = imp_close(&m);
	if (rv == EX_OK)
		rv = rv2;
	imp_clear_progress(&m);
	imp_print_rejects(&m);
	if (m.stop)
		cli_report("import", &m.fatal_res);
	switch (fmt) {
	case CLI_JSON:
		printf("{\"rows\": %lu, \"accepted\": %lu, \"duplicates\": %lu, \"rejected\": %lu, "
		       "\"retries\": %lu}\n",
		       m.rows, m.accepted, m.duplicates, m.rejected, m.retries);
		break;
	case CLI_CSV:
		printf("rows,accepted,duplicates,rejected,retries\r\n%lu,%lu,%lu,%lu,%lu\r\n",
		       m.rows, m.accepted, m.duplicates, m.rejected, m.retries);
		break;
	case CLI_TABLE:
		attr_text_put(stdout, m.name);
		printf(": %lu rows: %lu accepted, %lu duplicates, %lu rejected\n", m.rows,
		       m.accepted, m.duplicates, m.rejected);
		break;
	}
	if (rv == EX_OK && m.rejected > 0)
		rv = EX_DATAERR;
done:
	if (nthreads > 0) {
		pthread_mutex_lock(&m.mu);
		m.eof = 1;
		pthread_cond_broadcast(&m.ready);
		pthread_mutex_unlock(&m.mu);
		for (i = 0; i < nthreads; i++)
			pthread_join(tids[i], NULL);
	}
	imp_close(&m);
	imp_pool_free(&m);
	for (i = 0; i < m.nshown; i++)
		free(m.shown[i].text);
	tp_result_free(&m.fatal_res);
	for (i = 0; i < m.ncols; i++)
		free(m.cols[i]);
	free(m.cols);
	free(m.linebuf);
	csv_free(m.csv);
	tp_close(m.c);
	if (sync) {
		pthread_cond_destroy(&m.freed);
		pthread_cond_destroy(&m.ready);
		pthread_mutex_destroy(&m.mu);
	}
	return rv;
}
