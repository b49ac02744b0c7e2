/*
 * config: parses touchpointd.conf into struct config (config.h). Defaults first, then the
 * file; flags are applied by the caller.
 *
 * Format: one "key = value" per line; '#' starts a comment (at the start of a line, or
 * after white space); blank lines are ignored. Sizes take K, M, G (binary) suffixes,
 * durations s, m, h, d (no suffix: seconds). An unknown key or a bad value is an error
 * naming the file and line: touchpointd.conf:12: unknown key "foo".
 *
 * Keys (default):
 *   state_dir = $STATE_DIRECTORY or .      LMDB environment in <state_dir>/store
 *   listen = URL                           repeatable (up to 8), ipc:// or tcp://;
 *                                          default ipc://$RUNTIME_DIRECTORY/touchpointd.sock,
 *                                          else ipc://<state_dir>/touchpointd.sock
 *   ipc_permissions = 0660                 octal mode of ipc:// socket files
 *   max_message_bytes = 16M                largest request accepted (1K..1G)
 *   decode_memory = 0                      requests decoded at once, in bytes (0: auto)
 *   max_batch_events = 100000              events per Send (1..10000000)
 *   queue_depth = 256                      batches waiting for the writer (1..65536)
 *   contexts = 64                          requests in flight at once (1..4096)
 *   query_threads = 2                      threads for queries (1..64)
 *   scan_threads = 0                       threads of one attribution scan (0: CPUs; 0..8)
 *   map_size = 1G                          initial LMDB map size (>= 1M; grows)
 *   sync = full                            full (durable) | none (benchmarks only)
 *   run_events = 65536                     events per sorted run (>= 1024)
 *   compactor_nice = 19                    compactor's nice while it keeps up (0..19; 0: off)
 *   writer_priority = 0                    writer's SCHED_FIFO priority (0..99; 0: off)
 *   metrics = http://127.0.0.1:9464/metrics  Prometheus endpoint; empty: off
 *   log_level = info                       err | warning | notice | info | debug
 *   default_lookback = 30d                 lookback when a query gives none; 0: unlimited
 * log_level and default_lookback apply on SIGHUP; the others need a restart.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "log.h"
#include "touchpoint/touchpoint.h"

#define CONFIG_LINE_MAX (CONFIG_PATH_MAX + 256)

static void
config_error(char *errbuf, size_t errlen, const char *path, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (errbuf == NULL || errlen == 0)
		return;
	if (path != NULL)
		n = snprintf(errbuf, errlen, "%s:%u: ", path, line);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static void
config_defaults(struct config *c)
{
	const char *sd = getenv("STATE_DIRECTORY");

	memset(c, 0, sizeof(*c));
	/* systemd may pass several directories separated by ':'; the first is ours. */
	if (sd != NULL && sd[0] != '\0') {
		size_t n = strcspn(sd, ":");

		if (n >= sizeof(c->state_dir))
			n = sizeof(c->state_dir) - 1;
		memcpy(c->state_dir, sd, n);
		c->state_dir[n] = '\0';
	} else {
		strcpy(c->state_dir, ".");
	}
	c->nlisten = 0;
	c->ipc_permissions = 0660;
	c->max_message_bytes = (size_t)16 << 20;
	c->max_batch_events = 100000;
	c->queue_depth = 256;
	c->contexts = 64;
	c->query_threads = 2;
	c->scan_threads = 0;
	c->map_size = (size_t)1 << 30;
	c->sync = CONFIG_SYNC_FULL;
	c->run_events = 65536;
	c->compactor_nice = 19;
	c->writer_priority = 0;
	strcpy(c->metrics_listen, "http://127.0.0.1:9464/metrics");
	c->log_level = LOG_LEVEL_INFO;
	c->default_lookback_s = 30 * 86400;
}

/* Unsigned decimal with an optional multiplier suffix from the table; -1 if malformed. */
static int
config_number(const char *v, const char *suffixes, const uint64_t *mult, uint64_t max,
              uint64_t *out)
{
	char *end;
	unsigned long long n;
	uint64_t m = 1;

	if (!isdigit((unsigned char)v[0]))
		return -1;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0)
		return -1;
	if (*end != '\0') {
		const char *s = strchr(suffixes, *end);

		if (s == NULL || *end == '\0')
			return -1;
		m = mult[s - suffixes];
		end++;
		/* "16M", "16MB" and "16MiB" all mean 16 << 20. */
		if (mult[0] == 1024 && (strcmp(end, "B") == 0 || strcmp(end, "iB") == 0))
			end += strlen(end);
		if (*end != '\0')
			return -1;
	}
	if (n > max / m)
		return -1;
	*out = (uint64_t)n * m;
	return 0;
}

static int
config_size(const char *v, uint64_t max, uint64_t *out)
{
	static const uint64_t mult[] = { 1024,
		                         1024,
		                         (uint64_t)1 << 20,
		                         (uint64_t)1 << 20,
		                         (uint64_t)1 << 30,
		                         (uint64_t)1 << 30 };

	return config_number(v, "KkMmGg", mult, max, out);
}

static int
config_duration(const char *v, uint64_t *out)
{
	static const uint64_t mult[] = { 1, 60, 3600, 86400 };

	return config_number(v, "smhd", mult, (uint64_t)100 * 365 * 86400, out);
}

static int
config_count(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	static const uint64_t mult[] = { 1 };

	if (config_number(v, "", mult, max, out) != 0 || *out < min)
		return -1;
	return 0;
}

static char *
config_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int
config_url_check(const char *u, char *msg, size_t msglen)
{
	const struct sockaddr_un *sa = NULL;
	const struct config *c = NULL;
	const char *hp, *colon;
	unsigned long port;

	if (strlen(u) >= sizeof(c->listen[0])) {
		snprintf(msg, msglen, "\"%.200s...\": too long", u);
		return TP_INVALID_ARGUMENT;
	}
	if (strncmp(u, "ipc://", 6) == 0) {
		/* NNG refuses such a path only when it listens, as "Address invalid". */
		if (u[6] == '\0' || strlen(u + 6) >= sizeof(sa->sun_path)) {
			snprintf(msg, msglen,
			         "\"%.200s\": an ipc:// path must be 1-%zu bytes (a unix socket's "
			         "limit)",
			         u, sizeof(sa->sun_path) - 1);
			return TP_INVALID_ARGUMENT;
		}
		return TP_OK;
	}
	if (strncmp(u, "tcp://", 6) == 0)
		hp = u + 6;
	else if (strncmp(u, "tcp4://", 7) == 0 || strncmp(u, "tcp6://", 7) == 0)
		hp = u + 7;
	else {
		snprintf(msg, msglen, "\"%.200s\" is not an ipc:// or tcp:// URL", u);
		return TP_INVALID_ARGUMENT;
	}
	/* HOST:PORT, HOST possibly [v6] or empty (every address); the port 1-65535. */
	colon = strrchr(hp, ':');
	if (colon == NULL || (strchr(hp, ']') != NULL && colon < strchr(hp, ']')) ||
	    strchr(hp, '/') != NULL || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    (errno = 0, port = strtoul(colon + 1, NULL, 10), errno != 0) || port == 0 ||
	    port > 65535) {
		snprintf(msg, msglen, "\"%.200s\": a tcp:// URL is tcp://HOST:PORT, PORT 1-65535",
		         u);
		return TP_INVALID_ARGUMENT;
	}
	return TP_OK;
}

/* One "key = value" pair; returns TP_OK or TP_INVALID_ARGUMENT with a message. */
static int
config_set(struct config *c, const char *k, const char *v, char *msg, size_t msglen)
{
	uint64_t n;

	if (strcmp(k, "state_dir") == 0) {
		if (v[0] == '\0' || strlen(v) >= sizeof(c->state_dir))
			goto bad;
		strcpy(c->state_dir, v);
	} else if (strcmp(k, "listen") == 0) {
		if (c->nlisten == CONFIG_MAX_LISTEN) {
			snprintf(msg, msglen, "too many \"listen\" lines (at most %d)",
			         CONFIG_MAX_LISTEN);
			return TP_INVALID_ARGUMENT;
		}
		if (config_url_check(v, msg, msglen) != TP_OK)
			return TP_INVALID_ARGUMENT;
		strcpy(c->listen[c->nlisten++], v);
	} else if (strcmp(k, "ipc_permissions") == 0) {
		char *end;
		unsigned long p;

		errno = 0;
		p = strtoul(v, &end, 8);
		if (v[0] == '\0' || *end != '\0' || errno != 0 || p > 0777)
			goto bad;
		c->ipc_permissions = (unsigned)p;
	} else if (strcmp(k, "max_message_bytes") == 0) {
		if (config_size(v, (uint64_t)1 << 30, &n) != 0 || n < 1024)
			goto bad;
		c->max_message_bytes = (size_t)n;
	} else if (strcmp(k, "decode_memory") == 0) {
		if (config_size(v, (uint64_t)1 << 40, &n) != 0 ||
		    (n != 0 && n < ((uint64_t)1 << 20)))
			goto bad;
		c->decode_memory = (size_t)n;
	} else if (strcmp(k, "max_batch_events") == 0) {
		if (config_count(v, 1, 10000000, &n) != 0)
			goto bad;
		c->max_batch_events = (size_t)n;
	} else if (strcmp(k, "queue_depth") == 0) {
		if (config_count(v, 1, 65536, &n) != 0)
			goto bad;
		c->queue_depth = (size_t)n;
	} else if (strcmp(k, "contexts") == 0) {
		if (config_count(v, 1, 4096, &n) != 0)
			goto bad;
		c->contexts = (unsigned)n;
	} else if (strcmp(k, "query_threads") == 0) {
		if (config_count(v, 1, 64, &n) != 0)
			goto bad;
		c->query_threads = (unsigned)n;
	} else if (strcmp(k, "scan_threads") == 0) {
		if (config_count(v, 0, 8, &n) != 0)
			goto bad;
		c->scan_threads = (unsigned)n;
	} else if (strcmp(k, "map_size") == 0) {
		if (config_size(v, (uint64_t)1 << 50, &n) != 0 || n < ((uint64_t)1 << 20))
			goto bad;
		c->map_size = (size_t)n;
	} else if (strcmp(k, "sync") == 0) {
		if (strcmp(v, "full") == 0)
			c->sync = CONFIG_SYNC_FULL;
		else if (strcmp(v, "none") == 0)
			c->sync = CONFIG_SYNC_NONE;
		else
			goto bad;
	} else if (strcmp(k, "run_events") == 0) {
		if (config_count(v, 1024, (uint64_t)1 << 30, &n) != 0)
			goto bad;
		c->run_events = (size_t)n;
	} else if (strcmp(k, "compactor_nice") == 0) {
		if (config_count(v, 0, 19, &n) != 0)
			goto bad;
		c->compactor_nice = (int)n;
	} else if (strcmp(k, "writer_priority") == 0) {
		if (config_count(v, 0, 99, &n) != 0)
			goto bad;
		c->writer_priority = (int)n;
	} else if (strcmp(k, "metrics") == 0) {
		if (strlen(v) >= sizeof(c->metrics_listen) ||
		    (v[0] != '\0' && strncmp(v, "http://", 7) != 0))
			goto bad;
		strcpy(c->metrics_listen, v);
	} else if (strcmp(k, "log_level") == 0) {
		int l = log_level_parse(v);

		if (l < 0)
			goto bad;
		c->log_level = l;
	} else if (strcmp(k, "default_lookback") == 0) {
		if (config_duration(v, &n) != 0)
			goto bad;
		c->default_lookback_s = (int64_t)n;
	} else {
		snprintf(msg, msglen, "unknown key \"%s\"", k);
		return TP_INVALID_ARGUMENT;
	}
	return TP_OK;
bad:
	snprintf(msg, msglen, "bad value for \"%s\": \"%.200s\"", k, v);
	return TP_INVALID_ARGUMENT;
}

int
config_load(struct config *c, const char *path, char *errbuf, size_t errlen)
{
	FILE *f = NULL;
	char *line = NULL;
	char msg[512];
	unsigned lineno = 0;
	int rv = TP_OK;

	config_defaults(c);
	if (path == NULL)
		return TP_OK;
	if ((f = fopen(path, "r")) == NULL) {
		config_error(errbuf, errlen, NULL, 0, "%s: %s", path, strerror(errno));
		return errno == ENOENT ? TP_NOT_FOUND : TP_PERMISSION_DENIED;
	}
	if ((line = malloc(CONFIG_LINE_MAX)) == NULL) {
		rv = TP_RESOURCE_EXHAUSTED;
		config_error(errbuf, errlen, NULL, 0, "%s: out of memory", path);
		goto fail;
	}
	for (long at = ftell(f), next; fgets(line, CONFIG_LINE_MAX, f) != NULL; at = next) {
		char *s, *eq, *k, *v;

		lineno++;
		/* fgets reads past a NUL, strchr does not: the file position tells (-1: a pipe) */
		next = ftell(f);
		if (at >= 0 && next >= 0 && (size_t)(next - at) > strlen(line)) {
			config_error(errbuf, errlen, path, lineno, "a NUL byte in the line");
			rv = TP_INVALID_ARGUMENT;
			goto fail;
		}
		if (strchr(line, '\n') == NULL && !feof(f)) {
			config_error(errbuf, errlen, path, lineno, "line too long");
			rv = TP_INVALID_ARGUMENT;
			goto fail;
		}
		/* '#' opens a comment at the start or after white space (URLs keep theirs). */
		for (s = line; *s != '\0'; s++)
			if (*s == '#' && (s == line || isspace((unsigned char)s[-1]))) {
				*s = '\0';
				break;
			}
		s = config_trim(line);
		if (*s == '\0')
			continue;
		if ((eq = strchr(s, '=')) == NULL) {
			config_error(errbuf, errlen, path, lineno, "expected \"key = value\"");
			rv = TP_INVALID_ARGUMENT;
			goto fail;
		}
		*eq = '\0';
		k = config_trim(s);
		v = config_trim(eq + 1);
		if ((rv = config_set(c, k, v, msg, sizeof(msg))) != TP_OK) {
			config_error(errbuf, errlen, path, lineno, "%s", msg);
			goto fail;
		}
	}
	if (ferror(f)) {
		config_error(errbuf, errlen, NULL, 0, "%s: read error", path);
		rv = TP_INTERNAL;
	}
fail:
	free(line);
	fclose(f);
	return rv;
}
