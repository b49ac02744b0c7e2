/*
 * ops_notify: the systemd notification protocol of the real touchpointd, read from a real
 * AF_UNIX datagram socket: STATUS before READY=1, watchdog pings that stop while the writer
 * is stalled and resume after, RELOADING=1/READY=1 around SIGHUP, STOPPING=1 and exit 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "opsutil.h"

static int notify_fd = -1;
static struct ops_daemon daemon_;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Pending assignments of the last datagram (sd_notify may send several lines in one). */
static char pending[4096];
static size_t pending_off, pending_len;

/* Next assignment ("READY=1", ...) within timeout_s; NULL on timeout. */
static const char *
next_msg(double timeout_s)
{
	static char line[4096];
	double end = now_s() + timeout_s;

	for (;;) {
		if (pending_off < pending_len) {
			char *s = pending + pending_off;
			size_t n = strcspn(s, "\n");

			pending_off += n + 1;
			if (n == 0)
				continue;
			memcpy(line, s, n);
			line[n] = '\0';
			return line;
		}
		double left = end - now_s();
		struct timeval tv;
		ssize_t n;

		if (left <= 0)
			return NULL;
		tv.tv_sec = (time_t)left;
		tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6);
		if (tv.tv_sec == 0 && tv.tv_usec == 0)
			tv.tv_usec = 1000;
		setsockopt(notify_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(notify_fd, pending, sizeof(pending) - 1, 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				continue;
			OPS_CHECK(0, "recv: %s", strerror(errno));
		}
		pending[n] = '\0';
		pending_off = 0;
		pending_len = (size_t)n;
	}
}

/* Skips everything but the awaited message; fails on timeout or on a forbidden one. */
static void
expect(const char *want, double timeout_s, const char *forbidden)
{
	double end = now_s() + timeout_s;
	const char *m;

	while ((m = next_msg(end - now_s())) != NULL) {
		if (strcmp(m, want) == 0)
			return;
		OPS_CHECK(forbidden == NULL || strncmp(m, forbidden, strlen(forbidden)) != 0,
		          "got \"%s\" while waiting for \"%s\"", m, want);
	}
	OPS_CHECK(0, "no \"%s\" within %.0f s", want, timeout_s);
}

/* A batch sent while the writer is stalled: it must be acknowledged after the stall. */
static void *
stalled_sender(void *arg)
{
	Touchpoint__V1__Event **evs = ops_touches("stall", "cust-stall", 5, 1700000000000000LL);
	uint32_t acc = 0;
	atomic_int *code = arg;
	int rv = ops_send(daemon_.endpoint, evs, 5, &acc, NULL);

	atomic_store(code, rv == 0 && acc != 5 ? 1000 + (int)acc : rv);
	ops_events_free(evs, 5);
	return NULL;
}

int
main(void)
{
	const char *dir = ops_tmpdir();
	char sock[300], conf[300], state[300], stall[300], env_sock[340], env_stall[340];
	struct sockaddr_un sa;
	const char *m;
	int pings, status_seen = 0;
	atomic_int code = -1;
	double t0, quiet_since, end;
	pthread_t th;

	snprintf(sock, sizeof(sock), "%s/notify.sock", dir);
	snprintf(conf, sizeof(conf), "%s/touchpointd.conf", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(stall, sizeof(stall), "%s/stall", dir);
	ops_write_file(conf, "# ops_notify\nmetrics =\nlog_level = debug\n");

	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	OPS_CHECK(notify_fd >= 0, "socket: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	OPS_CHECK(strlen(sock) < sizeof(sa.sun_path), "%s: path too long", sock);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	OPS_CHECK(bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s: %s", sock,
	          strerror(errno));

	OPS_CHECK(snprintf(env_sock, sizeof(env_sock), "NOTIFY_SOCKET=%s", sock) <
	              (int)sizeof(env_sock),
	          "path too long");
	OPS_CHECK(snprintf(env_stall, sizeof(env_stall), "TOUCHPOINTD_TEST_STALL_WRITER=%s",
	                   stall) < (int)sizeof(env_stall),
	          "path too long");
	{
		const char *env[] = { env_sock, "WATCHDOG_USEC=400000", env_stall, NULL };

		ops_daemon_spawn(&daemon_, state, conf, env);
	}

	/* Start-up: STATUS= lines, then READY=1. */
	end = now_s() + 30;
	while ((m = next_msg(end - now_s())) != NULL) {
		if (strncmp(m, "STATUS=", 7) == 0)
			status_seen++;
		else if (strcmp(m, "READY=1") == 0)
			break;
	}
	OPS_CHECK(m != NULL, "no READY=1 within 30 s");
	OPS_CHECK(status_seen >= 1, "no STATUS= before READY=1");
	ops_daemon_wait_ready(&daemon_);

	/* Healthy: pings at about half of WATCHDOG_USEC. Count three. */
	for (pings = 0; pings < 3; pings++)
		expect("WATCHDOG=1", 10, "STOPPING=1");

	/* Stall the writer: the pings must stop. */
	ops_write_file(stall, "stall\n");
	/*
	 * A ping or two may already be on their way; after that, silence. Demand 2 s (ten
	 * ping intervals) without a ping within 20 s: a healthy-looking daemon fails this.
	 */
	t0 = now_s();
	quiet_since = t0;
	while (now_s() - quiet_since < 2.0) {
		OPS_CHECK(now_s() - t0 < 20, "WATCHDOG=1 kept coming while the writer was stalled");
		m = next_msg(quiet_since + 2.0 - now_s());
		if (m != NULL && strcmp(m, "WATCHDOG=1") == 0)
			quiet_since = now_s();
		OPS_CHECK(m == NULL || strcmp(m, "STOPPING=1") != 0, "STOPPING=1 during stall");
	}
	/* Now queue a batch behind the stalled writer: still no ping, and no answer. */
	OPS_CHECK(pthread_create(&th, NULL, stalled_sender, &code) == 0, "pthread_create");
	end = now_s() + 1.5;
	while ((m = next_msg(end - now_s())) != NULL)
		OPS_CHECK(strcmp(m, "WATCHDOG=1") != 0 && strcmp(m, "STOPPING=1") != 0,
		          "got %s with a batch queued behind the stalled writer", m);
	OPS_CHECK(code == -1, "the batch was answered (%d) while the writer was stalled",
	          atomic_load(&code));

	/* Unstall: pings resume and the queued batch is acknowledged. */
	OPS_CHECK(unlink(stall) == 0, "unlink %s: %s", stall, strerror(errno));
	expect("WATCHDOG=1", 10, "STOPPING=1");
	expect("WATCHDOG=1", 10, "STOPPING=1");
	OPS_CHECK(pthread_join(th, NULL) == 0, "pthread_join");
	OPS_CHECK(code == 0, "batch queued during the stall: status %d", atomic_load(&code));

	/* SIGHUP: RELOADING=1, then READY=1. */
	OPS_CHECK(kill(daemon_.pid, SIGHUP) == 0, "kill HUP");
	expect("RELOADING=1", 10, "READY=1");
	expect("READY=1", 10, "STOPPING=1");
	expect("WATCHDOG=1", 10, "STOPPING=1");

	/* SIGTERM: STOPPING=1 and exit 0. */
	OPS_CHECK(kill(daemon_.pid, SIGTERM) == 0, "kill TERM");
	expect("STOPPING=1", 30, "READY=1");
	{
		int rc = ops_daemon_wait(&daemon_);

		OPS_CHECK(rc == 0, "touchpointd exited with %d after SIGTERM", rc);
	}
	close(notify_fd);
	ops_cleanup();
	printf("ops_notify: ok\n");
	return 0;
}
