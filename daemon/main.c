/*
 * touchpointd: flags, configuration, start-up and shut-down order, signals and the
 * systemd watchdog. The main thread only waits for signals; the work happens on NNG's
 * threads, the writer and the query pool.
 */
#define _XOPEN_SOURCE 700 /* realpath */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attribution/pathtable.h"
#include "config.h"
#include "ingest.h"
#include "log.h"
#include "memtune.h"
#include "metrics.h"
#include "notify.h"
#include "query.h"
#include "rpc.h"
#include "store.h"
#include "touchpoint/touchpoint.h"
#include "writer.h"

#ifndef TPD_DEFAULT_CONFIG
#define TPD_DEFAULT_CONFIG "/etc/touchpoint/touchpointd.conf"
#endif

#define EXIT_USAGE  64 /* EX_USAGE */
#define EXIT_CONFIG 78 /* EX_CONFIG: systemd's RestartPreventExitStatus */

/* Requests in flight and queued writes get this long to finish after SIGTERM. */
#define MAIN_DRAIN_MS 30000

struct flags {
	int foreground;
	int check;
	int verbose;
	const char *config;
	const char *state_dir;
	const char *endpoints[CONFIG_MAX_LISTEN];
	size_t nendpoints;
};

static void
usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: touchpointd [-d] [-n] [-v]... [-f FILE] [--state-dir DIR] [--endpoint URL]...\n"
	    "  -d, --foreground     run in the foreground, logs on stderr\n"
	    "  -n, --check          check the configuration and exit (78 if it is bad)\n"
	    "  -v, --verbose        one log level more each (info -> debug)\n"
	    "  -f, --config FILE    configuration file (default %s)\n"
	    "  -s, --state-dir DIR  where the store lives (default: state_dir, $STATE_DIRECTORY, "
	    ".)\n"
	    "  -e, --endpoint URL   listen on URL (ipc:// or tcp://), repeatable; replaces\n"
	    "                       the configured ones\n"
	    "  -h, --help           this text\n"
	    "  -V, --version        the version\n",
	    TPD_DEFAULT_CONFIG);
}

/* 0 ok, else the exit code; *exit_now set for --help/--version. */
static int
parse_flags(int argc, char **argv, struct flags *fl, int *exit_now)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'd' },
		{ "check", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "config", required_argument, NULL, 'f' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "endpoint", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	*exit_now = 0;
	while ((ch = getopt_long(argc, argv, "dnvf:s:e:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			fl->foreground = 1;
			break;
		case 'n':
			fl->check = 1;
			break;
		case 'v':
			fl->verbose++;
			break;
		case 'f':
			fl->config = optarg;
			break;
		case 's':
			fl->state_dir = optarg;
			break;
		case 'e':
			if (fl->nendpoints == CONFIG_MAX_LISTEN) {
				fprintf(stderr, "touchpointd: at most %d endpoints\n",
				        CONFIG_MAX_LISTEN);
				return EXIT_USAGE;
			}
			fl->endpoints[fl->nendpoints++] = optarg;
			break;
		case 'h':
			usage(stdout);
			*exit_now = 1;
			return 0;
		case 'V':
			printf("touchpointd %s\n", TP_VERSION);
			*exit_now = 1;
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "touchpointd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return 0;
}

/* The first directory of a systemd "$X_DIRECTORY" list, or NULL. */
static const char *
first_dir(const char *env, char *buf, size_t len)
{
	const char *v = getenv(env);
	size_t n;

	if (v == NULL || v[0] == '\0')
		return NULL;
	n = strcspn(v, ":");
	if (n >= len)
		return NULL;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return buf;
}

/*
 * The configuration in force: file, then flags, then derived defaults (the endpoint).
 * Returns TP_OK or an error message in errbuf.
 */
static int
load_config(struct config *c, const struct flags *fl, const char **path, char *errbuf,
            size_t errlen)
{
	static char cdpath[CONFIG_PATH_MAX];
	char dir[CONFIG_PATH_MAX];
	int rv;

	*path = fl->config;
	if (*path == NULL) {
		/* Without -f the file is optional: defaults when it does not exist. */
		if (first_dir("CONFIGURATION_DIRECTORY", dir, sizeof(dir)) != NULL &&
		    (size_t)snprintf(cdpath, sizeof(cdpath), "%s/touchpointd.conf", dir) <
		        sizeof(cdpath) &&
		    access(cdpath, F_OK) == 0)
			*path = cdpath;
		else if (access(TPD_DEFAULT_CONFIG, F_OK) == 0)
			*path = TPD_DEFAULT_CONFIG;
	}
	if ((rv = config_load(c, *path, errbuf, errlen)) != TP_OK)
		return rv;
	if (fl->state_dir != NULL) {
		if (strlen(fl->state_dir) >= sizeof(c->state_dir) || fl->state_dir[0] == '\0') {
			snprintf(errbuf, errlen, "--state-dir: bad directory");
			return TP_INVALID_ARGUMENT;
		}
		strcpy(c->state_dir, fl->state_dir);
	}
	if (fl->nendpoints > 0) {
		for (size_t i = 0; i < fl->nendpoints; i++) {
			char why[300];

			if (config_url_check(fl->endpoints[i], why, sizeof(why)) != TP_OK) {
				snprintf(errbuf, errlen, "--endpoint: %s", why);
				return TP_INVALID_ARGUMENT;
			}
			strcpy(c->listen[i], fl->endpoints[i]);
		}
		c->nlisten = fl->nendpoints;
	}
	/* Absolute before anything is derived from it: the socket path, and a reload's compare. */
	if (c->state_dir[0] != '/') {
		const char *rel = strcmp(c->state_dir, ".") == 0 ? "" : c->state_dir;
		char cwd[CONFIG_PATH_MAX];

		if (getcwd(cwd, sizeof(cwd)) == NULL ||
		    (size_t)snprintf(dir, sizeof(dir), "%s%s%s", cwd, rel[0] ? "/" : "", rel) >=
		        sizeof(c->state_dir)) {
			snprintf(errbuf, errlen, "state_dir: cannot make \"%.200s\" absolute",
			         c->state_dir);
			return TP_INVALID_ARGUMENT;
		}
		strcpy(c->state_dir, dir);
	}
	if (c->nlisten == 0) {
		const char *base = first_dir("RUNTIME_DIRECTORY", dir, sizeof(dir));

		if (base == NULL)
			base = c->state_dir;
		if ((size_t)snprintf(c->listen[0], sizeof(c->listen[0]),
		                     "ipc://%s/touchpointd.sock", base) >= sizeof(c->listen[0]) ||
		    config_url_check(c->listen[0], errbuf, errlen) != TP_OK) {
			snprintf(errbuf, errlen,
			         "the default endpoint's path (in %.200s) is too long for a unix "
			         "socket: set listen or --endpoint",
			         base);
			return TP_INVALID_ARGUMENT;
		}
		c->nlisten = 1;
	}
	return TP_OK;
}

/* The running state_dir went through realpath() at start: compare like with like. */
static int
same_dir(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];

	if (realpath(a, ra) != NULL && realpath(b, rb) != NULL)
		return strcmp(ra, rb) == 0;
	return strcmp(a, b) == 0;
}

static int
same_listen(const struct config *a, const struct config *b)
{
	size_t i;

	if (a->nlisten != b->nlisten)
		return 0;
	for (i = 0; i < a->nlisten; i++)
		if (strcmp(a->listen[i], b->listen[i]) != 0)
			return 0;
	return 1;
}

/* SIGHUP: re-read the file; apply what can change at run time, name what cannot. */
static void
reload(const char *path, struct config *cur, const struct flags *fl, struct query *q)
{
	static struct config nc;
	char err[512];
	const char *p;
	struct flags nofl = *fl;

	notify_reloading();
	notify_status("reloading the configuration");
	nofl.config = path;
	if (load_config(&nc, &nofl, &p, err, sizeof(err)) != TP_OK) {
		log_err("reload failed, keeping the running configuration: %s", err);
		goto done;
	}
	if (nc.log_level != cur->log_level) {
		int level = nc.log_level + fl->verbose;

		log_set_level(level);
		log_notice("reload: log_level=%s", log_level_name(log_get_level()));
		cur->log_level = nc.log_level;
	}
	if (nc.default_lookback_s != cur->default_lookback_s) {
		query_set_default_lookback(q, nc.default_lookback_s);
		log_notice("reload: default_lookback=%llds", (long long)nc.default_lookback_s);
		cur->default_lookback_s = nc.default_lookback_s;
	}
#define RESTART_IF(cond, key)                                                                      \
	if (cond)                                                                                  \
	log_warn("reload: %s changed; it takes effect after a restart", key)
	RESTART_IF(!same_dir(nc.state_dir, cur->state_dir), "state_dir");
	RESTART_IF(!same_listen(&nc, cur), "listen");
	RESTART_IF(nc.ipc_permissions != cur->ipc_permissions, "ipc_permissions");
	RESTART_IF(nc.max_message_bytes != cur->max_message_bytes, "max_message_bytes");
	RESTART_IF(nc.decode_memory != cur->decode_memory, "decode_memory");
	RESTART_IF(nc.max_batch_events != cur->max_batch_events, "max_batch_events");
	RESTART_IF(nc.queue_depth != cur->queue_depth, "queue_depth");
	RESTART_IF(nc.contexts != cur->contexts, "contexts");
	RESTART_IF(nc.query_threads != cur->query_threads, "query_threads");
	RESTART_IF(nc.scan_threads != cur->scan_threads, "scan_threads");
	RESTART_IF(nc.map_size != cur->map_size, "map_size");
	RESTART_IF(nc.sync != cur->sync, "sync");
	RESTART_IF(nc.run_events != cur->run_events, "run_events");
	RESTART_IF(nc.compactor_nice != cur->compactor_nice, "compactor_nice");
	RESTART_IF(nc.writer_priority != cur->writer_priority, "writer_priority");
	RESTART_IF(strcmp(nc.metrics_listen, cur->metrics_listen) != 0, "metrics");
#undef RESTART_IF
	log_info("configuration reloaded");
done:
	notify_ready();
	notify_status("serving");
}

static struct config cfg;

/* A test hook's file name from the environment, or NULL; logged, since it stalls work. */
static const char *
test_hook(const char *name)
{
	const char *v = getenv(name);

	if (v == NULL || v[0] == '\0')
		return NULL;
	log_warn("test hook %s is set", name);
	return v;
}

int
main(int argc, char **argv)
{
	struct flags fl = { 0 };
	struct store_options so = { 0 };
	struct writer_options wo = { 0 };
	struct query_options qo = { 0 };
	const char *hook;
	struct rpc_options ro = { 0 };
	struct ingest in = { 0 };
	struct store *store = NULL;
	struct writer *writer = NULL;
	struct query *query = NULL;
	struct rpc_server *rpc = NULL;
	const char *urls[CONFIG_MAX_LISTEN];
	const char *path;
	char err[1024], store_dir[CONFIG_PATH_MAX + 8], real[PATH_MAX];
	sigset_t sigs;
	uint64_t wd_usec, last_beat = 0;
	struct timespec wait;
	int rv, exit_now, code = 1, running = 1, metrics_on = 0;

	if ((rv = parse_flags(argc, argv, &fl, &exit_now)) != 0 || exit_now)
		return rv;
	if (load_config(&cfg, &fl, &path, err, sizeof(err)) != TP_OK) {
		/* Through the log, so the journal files it as an error (<3>), not at info. */
		log_init(fl.foreground, LOG_LEVEL_ERR);
		log_err("touchpointd: %s", err);
		return EXIT_CONFIG;
	}
	if (fl.check) {
		printf("configuration OK\n");
		return 0;
	}

	/* Before the first nng_* call, so that every thread NNG starts inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	if ((rv = pthread_sigmask(SIG_BLOCK, &sigs, NULL)) != 0) {
		fprintf(stderr, "touchpointd: pthread_sigmask: %s\n", strerror(rv));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	memtune_init();

	log_init(fl.foreground, cfg.log_level + fl.verbose);
	if (mkdir(cfg.state_dir, 0750) != 0 && errno != EEXIST) {
		log_err("cannot create state_dir=%s: %s", cfg.state_dir, strerror(errno));
		goto out;
	}
	/* Absolute, so that the socket path and logs do not depend on the working directory. */
	if (realpath(cfg.state_dir, real) != NULL && strlen(real) < sizeof(cfg.state_dir))
		strcpy(cfg.state_dir, real);
	log_notice("touchpointd %s starting: state_dir=%s config=%s", TP_VERSION, cfg.state_dir,
	           path != NULL ? path : "(defaults)");

	notify_status("opening store");
	snprintf(store_dir, sizeof(store_dir), "%s/store", cfg.state_dir);
	so.path = store_dir;
	so.map_size = cfg.map_size;
	so.nosync = cfg.sync == CONFIG_SYNC_NONE;
	so.run_events = cfg.run_events;
	so.compactor_nice = cfg.compactor_nice;
	/* 3 s without a write: an import or a burst is over, fewer runs serve the queries. */
	so.quiet_ms = 3000;
	so.no_copies = test_hook("TOUCHPOINTD_TEST_NO_COPIES") != NULL; /* A/B benchmarks */
	err[0] = '\0';
	if ((rv = store_open(&store, &so, err, sizeof(err))) != TP_OK) {
		log_err("cannot open the store: code=%d %s", rv, err);
		goto out;
	}

	wd_usec = notify_watchdog_usec();
	notify_status("starting the writer");
	wo.store = store;
	wo.queue_depth = cfg.queue_depth;
	wo.group_events = cfg.max_batch_events > 262144 ? cfg.max_batch_events : 262144;
	/* Beat often enough that every watchdog check (at half the interval) sees progress. */
	wo.beat_ms = 250;
	if (wd_usec > 0 && wd_usec / 4000 < wo.beat_ms)
		wo.beat_ms = wd_usec / 4000 > 10 ? (unsigned)(wd_usec / 4000) : 10;
	wo.stall_file = test_hook("TOUCHPOINTD_TEST_STALL_WRITER");
	wo.priority = cfg.writer_priority;
	if ((rv = writer_start(&writer, &wo, err, sizeof(err))) != TP_OK) {
		log_err("%s", err);
		goto out;
	}
	qo.store = store;
	qo.stall_file = test_hook("TOUCHPOINTD_TEST_STALL_QUERIES");
	if ((hook = test_hook("TOUCHPOINTD_TEST_PAGE_IDLE_MS")) != NULL)
		qo.page_idle_ms = (unsigned)strtoul(hook, NULL, 10);
	qo.threads = cfg.query_threads;
	qo.scan_threads = cfg.scan_threads;
	qo.queue_depth = cfg.contexts;
	qo.default_lookback_s = cfg.default_lookback_s;
	/* libtouchpoint receives at most TP_MAX_MESSAGE, whatever max_message_bytes allows. */
	qo.max_reply_bytes =
	    cfg.max_message_bytes < TP_MAX_MESSAGE ? cfg.max_message_bytes : TP_MAX_MESSAGE;
	if ((rv = query_start(&query, &qo, err, sizeof(err))) != TP_OK) {
		log_err("%s", err);
		goto out;
	}

	notify_status("opening listeners");
	for (size_t i = 0; i < cfg.nlisten; i++)
		urls[i] = cfg.listen[i];
	ro.urls = urls;
	ro.nurls = cfg.nlisten;
	ro.contexts = cfg.contexts;
	ro.max_message_bytes = cfg.max_message_bytes;
	ro.decode_memory = cfg.decode_memory;
	ro.ipc_permissions = cfg.ipc_permissions;
	in.writer = writer;
	in.store = store;
	in.max_batch_events = cfg.max_batch_events;
	if ((rv = rpc_new(&rpc, &ro, err, sizeof(err))) != TP_OK ||
	    (rv = ingest_register(&in, rpc)) != TP_OK ||
	    (rv = query_register(query, rpc)) != TP_OK ||
	    (rv = rpc_start(rpc, err, sizeof(err))) != TP_OK) {
		log_err("cannot serve: code=%d %s", rv, err);
		goto out;
	}
	if (cfg.metrics_listen[0] != '\0') {
		err[0] = '\0';
		/* Metrics are not worth refusing ingest for: warn and serve without them. */
		if ((rv = metrics_start(cfg.metrics_listen, store, err, sizeof(err))) != TP_OK)
			log_warn("metrics off: cannot listen on %s: code=%d %s", cfg.metrics_listen,
			         rv, err);
		else
			metrics_on = 1;
	}

	notify_ready();
	notify_status("serving");
	log_notice("serving: endpoints=%zu contexts=%u query_threads=%u watchdog_ms=%llu",
	           cfg.nlisten, cfg.contexts, cfg.query_threads,
	           (unsigned long long)(wd_usec / 1000));
	wait.tv_sec = 1;
	wait.tv_nsec = 0;
	if (wd_usec > 0) {
		wait.tv_sec = (time_t)(wd_usec / 2 / 1000000);
		wait.tv_nsec = (long)(wd_usec / 2 % 1000000) * 1000;
	}
	while (running) {
		int sig = sigtimedwait(&sigs, NULL, &wait);

		if (wd_usec > 0) {
			uint64_t beat = writer_heartbeat(writer);

			/* Ping only while healthy: systemd restarts a wedged daemon. */
			if (beat != last_beat && rpc_healthy(rpc)) {
				notify_watchdog();
				last_beat = beat;
			}
		}
		query_tick(query);
		if (memtune_idle(rpc_replies(rpc))) {
			store_trim(store);
			attr_ptab_trim();
			memtune_trim();
		}
		switch (sig) {
		case SIGTERM:
		case SIGINT:
			log_notice("signal %s: stopping", sig == SIGTERM ? "TERM" : "INT");
			running = 0;
			break;
		case SIGHUP:
			log_notice("signal HUP: reloading %s", path != NULL ? path : "(defaults)");
			reload(path, &cfg, &fl, query);
			break;
		default:
			break;
		}
	}

	notify_stopping();
	notify_status("stopping: finishing requests in flight");
	rpc_stop_accepting(rpc);
	if (rpc_drain(rpc, MAIN_DRAIN_MS) != TP_OK)
		log_warn("requests still in flight after %d ms: ending them", MAIN_DRAIN_MS);
	notify_status("stopping: committing");
	code = 0;
out:
	/* Reverse order of start; the writer and queries answer through rpc, so rpc goes last. */
	if (rpc != NULL)
		rpc_stop_accepting(rpc);
	query_stop(query);
	writer_stop(writer);
	if (rpc != NULL && rpc_drain(rpc, 5000) != TP_OK)
		log_warn("replies still unsent at exit");
	if (metrics_on)
		metrics_stop();
	/* Everything acknowledged is committed: close the store before the sockets. */
	notify_status("stopping: closing the store");
	if (store != NULL)
		store_close(store);
	rpc_free(rpc);
	attr_ptab_trim(); /* the path tables' kept blocks: the queries have stopped */
	log_notice("touchpointd stopped: exit=%d", code);
	return code;
}
