/*
 * notify: the systemd notification protocol (Type=notify), a thin layer over libsystemd.
 * Every call is a no-op when NOTIFY_SOCKET is not set.
 */
#ifndef TPD_NOTIFY_H
#define TPD_NOTIFY_H

#include <stdint.h>

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_watchdog(void);
/* STATUS=<text>, shown by systemctl status. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The watchdog interval in microseconds for this process, 0 when it is off. */
uint64_t notify_watchdog_usec(void);

#endif /* TPD_NOTIFY_H */
