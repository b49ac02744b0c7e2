/*
 * touchpoint import: CSV or NDJSON (optionally gzip'd) -> batches of tp_send, with
 * content-derived ids, retries, per-row rejections by line number and a summary.
 */
#include <errno.h>
#include <getopt.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "csv.h"
#include "json.h"
#include "row.h"

extern char **environ;

#define IMP_MAX_LINE      (1024 * 1024) /* bytes of one NDJSON line */
#define IMP_MAX_BATCH     100000
#define IMP_MAX_ATTEMPTS  12  /* per batch, on retryable statuses */
#define IMP_SHOWN_REJECTS 100 /* rejected rows printed; the rest are only counted */

static const char import_help[] =
    "Usage: touchpoint import [--input-format csv|ndjson] [--batch N] [--format F] FILE|-\n"
    "\n"
    "Bulk-ingests events. The format follows the file name (.csv, .ndjson or .jsonl,\n"
    "each optionally .gz); '-' (standard input) is CSV unless --input-format says\n"
    "otherwise. CSV has a header row; NDJSON one object per line. Names: event_id\n"
    "(optional), customer_id, type (touch|conversion|identify|alias|spend), timestamp\n"
    "(RFC 3339) or timestamp_us, channel, campaign, source, medium, interaction, cost,\n"
    "value, currency, name, previous_id, day, amount, and traits as trait.KEY columns\n"
    "(NDJSON: \"traits\": {...}). A row without event_id gets an id derived from its\n"
    "content, so importing a file twice stores it once. Rejected rows are reported by\n"
    "line; the rest of their batch is stored.\n"
    "  -i, --input-format F   csv or ndjson\n"
    "  -b, --batch N          events per request (default 1000, at most 100000)\n"
    "  --format F             summary as table (default), csv or json\n"
    "Exit status 0 when every row was stored (or was a duplicate), 65 when some were\n"
    "rejected.\n";

struct imp {
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
	tp_client *c;
	struct row_event *batch;
	size_t n, max;
	struct tp_event *evs;
	size_t *pos; /* evs[i] is batch[pos[i]] */
	unsigned long rows, accepted, duplicates, rejected, retries;
	int tty;
	off_t total;
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

static void
imp_reject(struct imp *m, unsigned long line, const char *field, const char *reason)
{
	if (m->rejected < IMP_SHOWN_REJECTS) {
		imp_clear_progress(m);
		fprintf(stderr, "%s:%lu: %s: %s\n", m->name, line, field, reason);
	}
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

/* Sends the batch until stored; rows named by violations are rejected, the rest resent. */
static int
imp_flush(struct imp *m)
{
	struct tp_result res;
	unsigned backoff = 100;
	size_t k, i, j, good;
	int status, attempts = 0;

	if (m->n == 0)
		return EX_OK;
	for (k = 0; k < m->n; k++) {
		m->evs[k] = m->batch[k].ev;
		m->pos[k] = k;
	}
	while (k > 0) {
		status = tp_send(m->c, m->evs, k, &res);
		if (status == TP_OK) {
			m->accepted += res.accepted;
			m->duplicates += res.duplicates;
			tp_result_free(&res);
			break;
		}
		if (status == TP_UNAVAILABLE || status == TP_DEADLINE_EXCEEDED ||
		    status == TP_RESOURCE_EXHAUSTED) {
			if (++attempts >= IMP_MAX_ATTEMPTS) {
				imp_clear_progress(m);
				cli_report("import", &res);
				tp_result_free(&res);
				return cli_exit_code(status);
			}
			tp_result_free(&res);
			m->retries++;
			/* Same batch, same ids: the daemon stores each event once. */
			nanosleep(&(struct timespec){ .tv_sec = backoff / 1000,
			                              .tv_nsec = (backoff % 1000) * 1000000L },
			          NULL);
			backoff = backoff < 2500 ? backoff * 2 : 5000;
			continue;
		}
		for (i = 0; status == TP_INVALID_ARGUMENT && i < res.nviolations; i++)
			if (res.violations[i].index < 0 || (size_t)res.violations[i].index >= k)
				break;
		if (status != TP_INVALID_ARGUMENT || res.nviolations == 0 || i < res.nviolations) {
			imp_clear_progress(m);
			cli_report("import", &res);
			tp_result_free(&res);
			return cli_exit_code(status);
		}
		/* Reject every named row (once, with all its violations), keep the others. */
		for (i = 0; i < res.nviolations; i++) {
			size_t idx = (size_t)res.violations[i].index;

			imp_reject(m, m->batch[m->pos[idx]].line,
			           imp_field(res.violations[i].field), res.violations[i].reason);
		}
		for (i = good = 0; i < k; i++) {
			for (j = 0; j < res.nviolations; j++)
				if ((size_t)res.violations[j].index == i)
					break;
			if (j < res.nviolations) {
				m->rejected++;
				continue;
			}
			m->evs[good] = m->evs[i];
			m->pos[good++] = m->pos[i];
		}
		k = good;
		tp_result_free(&res);
	}
	for (i = 0; i < m->n; i++)
		row_event_free(&m->batch[i]);
	m->n = 0;
	imp_progress(m);
	return EX_OK;
}

static int
imp_add(struct imp *m, const struct row_field *f, size_t n, unsigned long line)
{
	char field[64], reason[256];
	struct row_event *re = &m->batch[m->n];

	m->rows++;
	if (row_to_event(f, n, re, field, sizeof(field), reason, sizeof(reason)) != 0) {
		imp_reject(m, line, field, reason);
		m->rejected++;
		return EX_OK;
	}
	/* re stays where it is until sent: its event points into it (id, traits). */
	re->line = line;
	if (++m->n == m->max)
		return imp_flush(m);
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
		return EX_OSERR;
	r = csv_read(m->csv, &fields, &n, &line, err, sizeof(err));
	if (r <= 0) {
		fprintf(stderr, "touchpoint import: %s: %s\n", m->name,
		        r == 0 ? "empty input, a header row was expected" : err);
		return r == -2 ? EX_IOERR : EX_DATAERR;
	}
	if ((m->cols = calloc(n, sizeof(*m->cols))) == NULL ||
	    (f = calloc(n, sizeof(*f))) == NULL) {
		free(f);
		return EX_OSERR;
	}
	m->ncols = n;
	for (i = 0; i < n; i++) {
		if (!row_known_field(fields[i])) {
			fprintf(stderr, "touchpoint import: %s:%lu: unknown column '%s'\n", m->name,
			        line, fields[i]);
			free(f);
			return EX_DATAERR;
		}
		for (j = 0; j < i; j++)
			if (strcmp(m->cols[j], fields[i]) == 0) {
				fprintf(stderr, "touchpoint import: %s:%lu: column '%s' twice\n",
				        m->name, line, fields[i]);
				free(f);
				return EX_DATAERR;
			}
		if ((m->cols[i] = strdup(fields[i])) == NULL) {
			free(f);
			return EX_OSERR;
		}
		f[i].name = m->cols[i];
	}
	while ((r = csv_read(m->csv, &fields, &n, &line, err, sizeof(err))) != 0) {
		if (r == -2) {
			fprintf(stderr, "touchpoint import: %s: read error\n", m->name);
			free(f);
			return EX_IOERR;
		}
		if (r == -1) {
			m->rows++;
			imp_reject(m, line, "csv", err);
			m->rejected++;
			continue;
		}
		if (n != m->ncols) {
			m->rows++;
			snprintf(reason, sizeof(reason), "%zu fields, the header has %zu", n,
			         m->ncols);
			imp_reject(m, line, "csv", reason);
			m->rejected++;
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
		if (!row_known_field(v->keys[i]) || strncmp(v->keys[i], "trait.", 6) == 0 ||
		    n == 32) {
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
	size_t len;
	int c, r;

	for (;;) {
		len = 0;
		m->line++;
		while ((c = getc(m->in)) != EOF && c != '\n') {
			if (len + 1 >= m->linecap) {
				char *nb;

				if (m->linecap >= IMP_MAX_LINE)
					break;
				if ((nb = realloc(m->linebuf,
				                  m->linecap ? m->linecap * 2 : 4096)) == NULL)
					return EX_OSERR;
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
			m->rejected++;
			continue;
		}
		if (len > 0 && m->linebuf[len - 1] == '\r')
			len--;
		if (c == EOF && len == 0)
			break;
		if (len == 0)
			continue;
		m->rows++;
		if (json_parse(m->linebuf, len, &v, err, sizeof(err)) != 0) {
			imp_reject(m, m->line, "json", err);
			m->rejected++;
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
			m->rejected++;
		}
		if (c == EOF)
			break;
	}
	if (ferror(m->in)) {
		fprintf(stderr, "touchpoint import: %s: read error\n", m->name);
		return EX_IOERR;
	}
	return EX_OK;
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
		fprintf(stderr, "touchpoint import: %s: %s\n", path, strerror(errno));
		return errno == EACCES ? EX_NOPERM : EX_NOINPUT;
	}
	if (fstat(fileno(m->in), &st) == 0 && S_ISREG(st.st_mode))
		m->total = st.st_size;
	if (!gz)
		return EX_OK;
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

	if (m->in != NULL && m->in != stdin)
		fclose(m->in);
	m->in = NULL;
	if (m->gzip > 0) {
		while (waitpid(m->gzip, &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "touchpoint import: %s: gzip failed to decompress it\n",
			        m->name);
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

int
cmd_import(struct cli *g, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "format", required_argument, NULL, CLI_OPT_FORMAT },
		{ "input-format", required_argument, NULL, 'i' },
		{ "batch", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct imp m = { 0 };
	enum cli_format fmt = CLI_TABLE;
	const char *informat = NULL, *path;
	char base[4096], *end;
	unsigned long batch = 1000;
	size_t i;
	int ch, rv, gz = 0, rv2;

	while ((ch = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "i:b:", longopts, NULL)) != -1) {
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
			errno = 0;
			batch = strtoul(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || batch == 0 ||
			    batch > IMP_MAX_BATCH)
				return cli_usage("import", "--batch is 1..%d", IMP_MAX_BATCH);
		} else {
			return cli_usage("import", "unknown or incomplete option");
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
	if ((m.batch = calloc(batch, sizeof(*m.batch))) == NULL ||
	    (m.evs = calloc(batch, sizeof(*m.evs))) == NULL ||
	    (m.pos = calloc(batch, sizeof(*m.pos))) == NULL) {
		rv = EX_OSERR;
		goto done;
	}
	if ((rv = cli_connect(g, &m.c)) != EX_OK)
		goto done;
	if ((rv = imp_open(&m, path, gz)) != EX_OK)
		goto done;
	rv = m.ndjson ? imp_ndjson(&m) : imp_csv(&m);
	if (rv == EX_OK)
		rv = imp_flush(&m);
	rv2 = imp_close(&m);
	if (rv == EX_OK)
		rv = rv2;
	imp_clear_progress(&m);
	if (m.rejected > IMP_SHOWN_REJECTS)
		fprintf(stderr, "... %lu more rejected rows not shown\n",
		        m.rejected - IMP_SHOWN_REJECTS);
	switch (fmt) {
	case CLI_JSON:
		printf("{\"rows\": %lu, \"accepted\": %lu, \"duplicates\": %lu, \"rejected\": %lu, "
		       "\"retries\": %lu}\n",
		       m.rows, m.accepted, m.duplicates, m.rejected, m.retries);
		break;
	case CLI_CSV:
		printf("rows,accepted,duplicates,rejected,retries\n%lu,%lu,%lu,%lu,%lu\n", m.rows,
		       m.accepted, m.duplicates, m.rejected, m.retries);
		break;
	case CLI_TABLE:
		printf("%s: %lu rows: %lu accepted, %lu duplicates, %lu rejected\n", m.name, m.rows,
		       m.accepted, m.duplicates, m.rejected);
		break;
	}
	if (rv == EX_OK && m.rejected > 0)
		rv = EX_DATAERR;
done:
	imp_close(&m);
	for (i = 0; i < m.n; i++)
		row_event_free(&m.batch[i]);
	for (i = 0; i < m.ncols; i++)
		free(m.cols[i]);
	free(m.cols);
	free(m.linebuf);
	csv_free(m.csv);
	free(m.batch);
	free(m.evs);
	free(m.pos);
	tp_close(m.c);
	return rv;
}
