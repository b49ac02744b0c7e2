/*
 * opsutil: helpers of the ops tests (see opsutil.h). Raw NNG + protobuf-c on purpose, so
 * the tests exercise the daemon without depending on the client library.
 */
#define _XOPEN_SOURCE 700 /* nftw */

#include "opsutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "touchpoint/v1/ingest.pb-c.h"
#include "touchpoint/v1/query.pb-c.h"
#include "touchpoint/v1/rpc.pb-c.h"

#define OPS_MAX_DAEMONS 4

static char ops_dir[256];
static struct ops_daemon *ops_daemons[OPS_MAX_DAEMONS];

void
ops_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;
	size_t i;

	fprintf(stderr, "FAIL %s:%d: %s: ", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	for (i = 0; i < OPS_MAX_DAEMONS; i++)
		if (ops_daemons[i] != NULL && ops_daemons[i]->pid > 0) {
			fprintf(stderr, "(daemon log: %s)\n", ops_daemons[i]->log_path);
			kill(ops_daemons[i]->pid, SIGKILL);
		}
	exit(1);
}

static void
ops_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

const char *
ops_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	if (ops_dir[0] != '\0')
		return ops_dir;
	/* Short: ipc:// paths must fit in sun_path (108 bytes). */
	snprintf(ops_dir, sizeof(ops_dir), "%s/ops-XXXXXX",
	         t != NULL && t[0] != '\0' && strlen(t) < 40 ? t : "/tmp");
	OPS_CHECK(mkdtemp(ops_dir) != NULL, "mkdtemp %s: %s", ops_dir, strerror(errno));
	return ops_dir;
}

static int
ops_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
ops_cleanup(void)
{
	if (ops_dir[0] == '\0' || getenv("OPS_KEEP") != NULL)
		return;
	nftw(ops_dir, ops_rm, 16, FTW_DEPTH | FTW_PHYS);
	ops_dir[0] = '\0';
}

void
ops_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	OPS_CHECK(f != NULL, "%s: %s", path, strerror(errno));
	OPS_CHECK(fputs(text, f) >= 0 && fclose(f) == 0, "writing %s", path);
}

void
ops_daemon_register(struct ops_daemon *d)
{
	size_t i;

	for (i = 0; i < OPS_MAX_DAEMONS; i++)
		if (ops_daemons[i] == NULL || ops_daemons[i] == d) {
			ops_daemons[i] = d;
			return;
		}
}

void
ops_daemon_spawn(struct ops_daemon *d, const char *state_dir, const char *conf,
                 const char *const *env)
{
	pid_t pid;

	memset(d, 0, sizeof(*d));
	snprintf(d->state_dir, sizeof(d->state_dir), "%s", state_dir);
	snprintf(d->endpoint, sizeof(d->endpoint), "ipc://%s/t.sock", state_dir);
	snprintf(d->log_path, sizeof(d->log_path), "%s/touchpointd.log", state_dir);
	mkdir(state_dir, 0700);
	OPS_CHECK((pid = fork()) >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		const char *argv[] = { TOUCHPOINTD, "-d",         "-f",        conf, "--state-dir",
			               state_dir,   "--endpoint", d->endpoint, NULL };
		int fd = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
		size_t i;

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		/* A test run under systemd must not leak the runner's own notify socket. */
		unsetenv("NOTIFY_SOCKET");
		unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
		unsetenv("RUNTIME_DIRECTORY");
		unsetenv("STATE_DIRECTORY");
		for (i = 0; env != NULL && env[i] != NULL; i++) {
			const char *eq = strchr(env[i], '=');
			char key[128];

			if (eq == NULL || (size_t)(eq - env[i]) >= sizeof(key))
				continue;
			memcpy(key, env[i], (size_t)(eq - env[i]));
			key[eq - env[i]] = '\0';
			if (eq[1] == '\0')
				unsetenv(key);
			else
				setenv(key, eq + 1, 1);
		}
		/* WATCHDOG_PID must name the daemon: the same pid after exec. */
		if (getenv("WATCHDOG_USEC") != NULL) {
			char pidbuf[32];

			snprintf(pidbuf, sizeof(pidbuf), "%ld", (long)getpid());
			setenv("WATCHDOG_PID", pidbuf, 1);
		}
		execv(TOUCHPOINTD, (char *const *)argv);
		_exit(127);
	}
	d->pid = pid;
	ops_daemon_register(d);
}

void
ops_daemon_wait_ready(struct ops_daemon *d)
{
	int i, st;

	for (i = 0; i < 300; i++) {
		if (ops_status_total(d->endpoint, NULL) >= 0)
			return;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = 0;
			OPS_CHECK(0, "touchpointd exited early (status %d), see %s", st,
			          d->log_path);
		}
		ops_sleep_ms(100);
	}
	OPS_CHECK(0, "touchpointd did not answer GetStatus within 30 s");
}

int
ops_daemon_stop(struct ops_daemon *d)
{
	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	return ops_daemon_wait(d);
}

int
ops_daemon_wait(struct ops_daemon *d)
{
	int st, i;

	if (d->pid <= 0)
		return -1;
	/* 60 s is plenty for a drain; a hang is a failure, not a wait forever. */
	for (i = 0; i < 600; i++) {
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		ops_sleep_ms(100);
	}
	ops_fail(__FILE__, __LINE__, "exit", "touchpointd did not exit within 60 s of SIGTERM");
}

int
ops_call(const char *endpoint, const char *method, const ProtobufCMessage *req, uint8_t **resp,
         size_t *resp_len, char *msg, size_t msglen)
{
	static _Atomic uint64_t next_id = 1; /* ops_backup calls from two threads */
	Touchpoint__V1__Envelope env = TOUCHPOINT__V1__ENVELOPE__INIT;
	Touchpoint__V1__Reply *rep = NULL;
	nng_socket s = NNG_SOCKET_INITIALIZER;
	uint8_t *payload = NULL, *buf = NULL, *in = NULL;
	size_t plen = 0, blen, inlen = 0;
	int rv, code = -1;

	if (resp != NULL)
		*resp = NULL;
	if (resp_len != NULL)
		*resp_len = 0;
	if (msg != NULL && msglen > 0)
		msg[0] = '\0';
	if (req != NULL) {
		plen = protobuf_c_message_get_packed_size(req);
		OPS_CHECK((payload = malloc(plen + 1)) != NULL, "out of memory");
		protobuf_c_message_pack(req, payload);
	}
	env.method = (char *)method;
	env.request_id = next_id++;
	env.timeout_ms = 60000;
	env.payload.data = payload;
	env.payload.len = plen;
	blen = protobuf_c_message_get_packed_size(&env.base);
	OPS_CHECK((buf = malloc(blen + 1)) != NULL, "out of memory");
	protobuf_c_message_pack(&env.base, buf);

	if ((rv = nng_req0_open(&s)) != 0 ||
	    (rv = nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 60000)) != 0 ||
	    (rv = nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 5000)) != 0 ||
	    (rv = nng_dial(s, endpoint, NULL, 0)) != 0 || (rv = nng_send(s, buf, blen, 0)) != 0 ||
	    (rv = nng_recv(s, &in, &inlen, NNG_FLAG_ALLOC)) != 0) {
		if (msg != NULL)
			snprintf(msg, msglen, "%s: %s", endpoint, nng_strerror(rv));
		code = 14; /* UNAVAILABLE */
		goto done;
	}
	if ((rep = touchpoint__v1__reply__unpack(NULL, inlen, in)) == NULL) {
		if (msg != NULL)
			snprintf(msg, msglen, "cannot parse the reply");
		code = 13;
		goto done;
	}
	code = rep->status != NULL ? rep->status->code : 0;
	if (msg != NULL && rep->status != NULL && rep->status->message != NULL)
		snprintf(msg, msglen, "%s", rep->status->message);
	if (code == 0 && resp != NULL) {
		OPS_CHECK((*resp = malloc(rep->payload.len + 1)) != NULL, "out of memory");
		if (rep->payload.len > 0)
			memcpy(*resp, rep->payload.data, rep->payload.len);
		*resp_len = rep->payload.len;
	}
done:
	if (rep != NULL)
		touchpoint__v1__reply__free_unpacked(rep, NULL);
	if (in != NULL)
		nng_free(in, inlen);
	nng_close(s);
	free(buf);
	free(payload);
	return code;
}

Touchpoint__V1__Event **
ops_touches(const char *prefix, const char *cust, size_t n, int64_t base_us)
{
	static const char *const channels[] = { "email", "search", "social", "display" };
	Touchpoint__V1__Event **evs = calloc(n, sizeof(*evs));
	size_t i;

	OPS_CHECK(evs != NULL, "out of memory");
	for (i = 0; i < n; i++) {
		Touchpoint__V1__Event *e = calloc(1, sizeof(*e));
		Touchpoint__V1__Touch *t = calloc(1, sizeof(*t));
		char id[128];

		OPS_CHECK(e != NULL && t != NULL, "out of memory");
		touchpoint__v1__event__init(e);
		touchpoint__v1__touch__init(t);
		snprintf(id, sizeof(id), "%s-%zu", prefix, i);
		e->event_id = strdup(id);
		e->customer_id = strdup(cust);
		t->channel = strdup(channels[i % 4]);
		OPS_CHECK(e->event_id != NULL && e->customer_id != NULL && t->channel != NULL,
		          "out of memory");
		e->timestamp_us = base_us + (int64_t)i * 1000000;
		e->kind_case = TOUCHPOINT__V1__EVENT__KIND_TOUCH;
		e->touch = t;
		evs[i] = e;
	}
	return evs;
}

void
ops_events_free(Touchpoint__V1__Event **evs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (evs[i]->kind_case == TOUCHPOINT__V1__EVENT__KIND_TOUCH) {
			free(evs[i]->touch->channel);
			free(evs[i]->touch);
		}
		free(evs[i]->event_id);
		free(evs[i]->customer_id);
		free(evs[i]);
	}
	free(evs);
}

int
ops_send(const char *endpoint, Touchpoint__V1__Event **evs, size_t n, uint32_t *accepted,
         uint32_t *duplicates)
{
	Touchpoint__V1__SendRequest req = TOUCHPOINT__V1__SEND_REQUEST__INIT;
	Touchpoint__V1__SendResponse *r;
	uint8_t *p = NULL;
	size_t len = 0;
	char msg[512];
	int code;

	req.events = evs;
	req.n_events = n;
	code =
	    ops_call(endpoint, "/touchpoint.v1.Ingest/Send", &req.base, &p, &len, msg, sizeof(msg));
	if (code == 0) {
		r = touchpoint__v1__send_response__unpack(NULL, len, p);
		OPS_CHECK(r != NULL, "cannot parse SendResponse");
		if (accepted != NULL)
			*accepted = r->accepted;
		if (duplicates != NULL)
			*duplicates = r->duplicates;
		touchpoint__v1__send_response__free_unpacked(r, NULL);
	}
	free(p);
	return code;
}

int64_t
ops_status_total(const char *endpoint, uint64_t *duplicates)
{
	Touchpoint__V1__GetStatusRequest req = TOUCHPOINT__V1__GET_STATUS_REQUEST__INIT;
	Touchpoint__V1__GetStatusResponse *r;
	uint8_t *p = NULL;
	size_t len = 0;
	int64_t total = -1;

	if (ops_call(endpoint, "/touchpoint.v1.Admin/GetStatus", &req.base, &p, &len, NULL, 0) != 0)
		goto done;
	if ((r = touchpoint__v1__get_status_response__unpack(NULL, len, p)) == NULL)
		goto done;
	total = r->events != NULL ? (int64_t)r->events->total : 0;
	if (duplicates != NULL)
		*duplicates = r->duplicates;
	touchpoint__v1__get_status_response__free_unpacked(r, NULL);
done:
	free(p);
	return total;
}

int
ops_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	OPS_CHECK(fd >= 0, "socket: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	OPS_CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind: %s", strerror(errno));
	OPS_CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0, "getsockname");
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

char *
ops_http_get(int port, const char *path, int *code)
{
	struct sockaddr_in sa;
	char req[512], *buf = NULL, *body, *nb;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	*code = 0;
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return NULL;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto fail;
	/* HTTP/1.0: the server closes after the response, so read to EOF. */
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	if (write(fd, req, (size_t)n) != n)
		goto fail;
	for (;;) {
		if (cap - len < 4096) {
			if (cap > ((size_t)16 << 20) || (nb = realloc(buf, cap + 65536)) == NULL)
				goto fail;
			buf = nb;
			cap += 65536;
		}
		if ((n = read(fd, buf + len, cap - len - 1)) < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	if (sscanf(buf, "HTTP/1.%*d %d", code) != 1 || (body = strstr(buf, "\r\n\r\n")) == NULL) {
		free(buf);
		return NULL;
	}
	memmove(buf, body + 4, strlen(body + 4) + 1);
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

double
ops_metric(const char *text, const char *series)
{
	size_t sl = strlen(series);
	const char *p = text;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, series, sl) == 0 && p[sl] == ' ')
			return strtod(p + sl + 1, NULL);
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return -1;
}
