/*
 * notify: sd_notify() wrappers. Failures are logged at debug level only: the protocol is
 * best effort and a daemon started outside systemd has no socket to talk to.
 */
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>

#include <systemd/sd-daemon.h>

#include "log.h"

static void
notify_send(const char *state)
{
	int rv = sd_notify(0, state);

	if (rv < 0)
		log_debug("sd_notify failed: state=\"%s\" errno=%d", state, -rv);
}

void
notify_ready(void)
{
	notify_send("READY=1");
}

void
notify_reloading(void)
{
	notify_send("RELOADING=1");
}

void
notify_stopping(void)
{
	notify_send("STOPPING=1");
}

void
notify_watchdog(void)
{
	notify_send("WATCHDOG=1");
}

void
notify_status(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "STATUS=");

	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	notify_send(buf);
}

uint64_t
notify_watchdog_usec(void)
{
	uint64_t usec = 0;

	/* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is us. */
	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec;
}
