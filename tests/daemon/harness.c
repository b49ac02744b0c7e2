/*
 * harness: start/stop the real touchpointd and raw REQ calls (see harness.h).
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/req.h>

#include "touchpoint/v1/query.pb-c.h"

/*
 * LeakSanitizer, in this test client only: nng 1.5.2 leaks a REQ socket's pending request
 * when the socket is closed while its peer is gone (the SIGTERM and crash cases do exactly
 * that). touchpointd, a separate program, is checked without this.
 */
const char *__lsan_default_suppressions(void);

const char *
__lsan_default_suppressions(void)
{
	return "leak:libnng.so\n";
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * Daemons started and not yet stopped, killed at exit: a CHECK that fails exits, and a
 * daemon left running kept ctest's output pipe open, so a failing test hung until its
 * 300 s timeout instead of failing. Only by the process that started them (children of a
 * test that exit must not stop the test's daemon).
 */
#define TPD_MAX_RUNNING 16
static pid_t tpd_running[TPD_MAX_RUNNING], tpd_owner;

static void
tpd_kill_running(void)
{
	if (getpid() != tpd_owner)
		return;
	for (int i = 0; i < TPD_MAX_RUNNING; i++)
		/* Still our unreaped child (a test may have reaped it itself). */
		if (tpd_running[i] > 0 && waitpid(tpd_running[i], NULL, WNOHANG) == 0) {
			kill(tpd_running[i], SIGKILL);
			waitpid(tpd_running[i], NULL, 0);
			tpd_running[i] = 0;
		}
}

static void
tpd_track(pid_t pid, int on)
{
	int i;

	if (tpd_owner == 0) {
		tpd_owner = getpid();
		CHECK(atexit(tpd_kill_running) == 0);
	}
	for (i = 0; i < TPD_MAX_RUNNING && tpd_running[i] != (on ? 0 : pid); i++)
		;
	if (i < TPD_MAX_RUNNING)
		tpd_running[i] = on ? pid : 0;
}

void
tpd_init(struct tpd *d, const char *extra_config)
{
	FILE *f;

	memset(d, 0, sizeof(*d));
	strcpy(d->dir, "/tmp/tpd-test-XXXXXX");
	CHECK(mkdtemp(d->dir) != NULL);
	snprintf(d->url, sizeof(d->url), "ipc://%s/t.sock", d->dir);
	snprintf(d->conf, sizeof(d->conf), "%s/touchpointd.conf", d->dir);
	CHECK((f = fopen(d->conf, "w")) != NULL);
	fprintf(f, "# written by the test harness\nmetrics =\nlog_level = info\n%s\n",
	        extra_config != NULL ? extra_config : "");
	CHECK(fclose(f) == 0);
}

void
tpd_start(struct tpd *d)
{
	nng_socket s;
	Touchpoint__V1__GetStatusRequest req = TOUCHPOINT__V1__GET_STATUS_REQUEST__INIT;

	d->pid = fork();
	CHECK(d->pid >= 0);
	if (d->pid == 0) {
		execl(TPD_BINARY, "touchpointd", "-d", "-f", d->conf, "--state-dir", d->dir,
		      "--endpoint", d->url, (char *)NULL);
		_exit(127);
	}
	tpd_track(d->pid, 1);
	s = tpd_connect(d->url, 1000);
	for (int i = 0; i < 300; i++) {
		Touchpoint__V1__Reply *rep = NULL;
		int status;

		CHECK(waitpid(d->pid, &status, WNOHANG) == 0); /* still running */
		if (tpd_call(s, "/touchpoint.v1.Admin/GetStatus", &req.base, 1000, &rep) == 0) {
			int ok = rep->status != NULL && rep->status->code == 0;

			touchpoint__v1__reply__free_unpacked(rep, NULL);
			if (ok) {
				nng_close(s);
				return;
			}
		}
		sleep_ms(100);
	}
	fprintf(stderr, "touchpointd did not answer in time\n");
	exit(1);
}

int
tpd_stop(struct tpd *d, int sig)
{
	int status;

	CHECK(d->pid > 0);
	CHECK(kill(d->pid, sig) == 0);
	CHECK(waitpid(d->pid, &status, 0) == d->pid);
	tpd_track(d->pid, 0);
	d->pid = 0;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
tpd_cleanup(struct tpd *d)
{
	if (d->pid > 0)
		tpd_stop(d, SIGKILL);
	if (d->dir[0] != '\0')
		nftw(d->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int
tpd_run(char *const *args, char *out, size_t outlen)
{
	int p[2], status;
	pid_t pid;
	size_t off = 0;
	ssize_t n;
	char *argv[16];
	size_t i;

	argv[0] = (char *)"touchpointd";
	for (i = 0; args[i] != NULL && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	CHECK(pipe(p) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execv(TPD_BINARY, argv);
		_exit(127);
	}
	close(p[1]);
	while (off + 1 < outlen && (n = read(p[0], out + off, outlen - off - 1)) > 0)
		off += (size_t)n;
	out[off] = '\0';
	close(p[0]);
	CHECK(waitpid(pid, &status, 0) == pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

nng_socket
tpd_connect(const char *url, int recv_timeout_ms)
{
	nng_socket s;

	CHECK(nng_req0_open(&s) == 0);
	CHECK(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, recv_timeout_ms) == 0);
	/* A REQ send blocks while no daemon is there: bound it too (SIGTERM test). */
	CHECK(nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, recv_timeout_ms) == 0);
	CHECK(nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 20) == 0);
	CHECK(nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 200) == 0);
	CHECK(nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0) == 0);
	CHECK(nng_dial(s, url, NULL, NNG_FLAG_NONBLOCK) == 0);
	return s;
}

int
tpd_call_raw(nng_socket s, const void *buf, size_t len, Touchpoint__V1__Reply **rep)
{
	nng_msg *m;
	int rv;

	*rep = NULL;
	CHECK(nng_msg_alloc(&m, len) == 0);
	memcpy(nng_msg_body(m), buf, len);
	if ((rv = nng_sendmsg(s, m, 0)) != 0) {
		nng_msg_free(m);
		return rv;
	}
	if ((rv = nng_recvmsg(s, &m, 0)) != 0)
		return rv;
	*rep = touchpoint__v1__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
	nng_msg_free(m);
	CHECK(*rep != NULL);
	return 0;
}

int
tpd_call_payload(nng_socket s, const char *method, const uint8_t *payload, size_t plen,
                 uint32_t timeout_ms, Touchpoint__V1__Reply **rep)
{
	static uint64_t next_id = 1;
	Touchpoint__V1__Envelope env = TOUCHPOINT__V1__ENVELOPE__INIT;
	uint8_t *buf;
	size_t len;
	int rv;

	env.method = (char *)method;
	env.request_id = __atomic_fetch_add(&next_id, 1, __ATOMIC_RELAXED);
	env.timeout_ms = timeout_ms;
	env.payload.len = plen;
	env.payload.data = (uint8_t *)payload;
	len = touchpoint__v1__envelope__get_packed_size(&env);
	CHECK((buf = malloc(len)) != NULL);
	touchpoint__v1__envelope__pack(&env, buf);
	rv = tpd_call_raw(s, buf, len, rep);
	if (rv == 0)
		CHECK((*rep)->request_id == env.request_id);
	free(buf);
	return rv;
}

int
tpd_call(nng_socket s, const char *method, const ProtobufCMessage *req, uint32_t timeout_ms,
         Touchpoint__V1__Reply **rep)
{
	uint8_t *buf;
	size_t len = protobuf_c_message_get_packed_size(req);
	int rv;

	CHECK((buf = malloc(len + 1)) != NULL);
	protobuf_c_message_pack(req, buf);
	rv = tpd_call_payload(s, method, buf, len, timeout_ms, rep);
	free(buf);
	return rv;
}

void *
tpd_payload(const Touchpoint__V1__Reply *rep, const ProtobufCMessageDescriptor *d)
{
	void *m;

	CHECK(rep->status != NULL);
	if (rep->status->code != 0)
		fprintf(stderr, "unexpected status %d: %s\n", rep->status->code,
		        rep->status->message);
	CHECK(rep->status->code == 0);
	m = protobuf_c_message_unpack(d, NULL, rep->payload.len, rep->payload.data);
	CHECK(m != NULL);
	return m;
}

static int
io_all(int fd, void *buf, size_t len, int writing)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
tpd_raw_connect(const char *url)
{
	static const uint8_t hello[8] = { 0, 'S', 'P', 0, 0x00, 0x30, 0, 0 }; /* REQ = 0x30 */
	struct sockaddr_un sa;
	uint8_t peer[8];
	int fd;

	CHECK(strncmp(url, "ipc://", 6) == 0 && strlen(url + 6) < sizeof(sa.sun_path));
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, url + 6);
	CHECK((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(io_all(fd, (void *)hello, sizeof(hello), 1) == 0);
	CHECK(io_all(fd, peer, sizeof(peer), 0) == 0);
	CHECK(peer[1] == 'S' && peer[2] == 'P' && peer[5] == 0x31); /* REP */
	return fd;
}

int
tpd_raw_send(int fd, uint32_t id, const void *body, uint64_t len)
{
	uint8_t head[13];
	uint64_t total = len + 4;

	head[0] = 1;
	for (int i = 0; i < 8; i++)
		head[1 + i] = (uint8_t)(total >> (56 - 8 * i));
	id |= 0x80000000u;
	for (int i = 0; i < 4; i++)
		head[9 + i] = (uint8_t)(id >> (24 - 8 * i));
	if (io_all(fd, head, sizeof(head), 1) != 0)
		return -1;
	return io_all(fd, (void *)body, (size_t)len, 1);
}

int
tpd_raw_recv(int fd, Touchpoint__V1__Reply **rep)
{
	uint8_t head[9], *body;
	uint64_t len = 0;

	*rep = NULL;
	if (io_all(fd, head, sizeof(head), 0) != 0)
		return -1;
	for (int i = 0; i < 8; i++)
		len = len << 8 | head[1 + i];
	CHECK(len >= 4 && len < (1u << 26));
	CHECK((body = malloc(len)) != NULL);
	if (io_all(fd, body, (size_t)len, 0) != 0) {
		free(body);
		return -1;
	}
	*rep = touchpoint__v1__reply__unpack(NULL, len - 4, body + 4);
	free(body);
	CHECK(*rep != NULL);
	return 0;
}
