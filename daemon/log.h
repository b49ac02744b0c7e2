/*
 * log: touchpointd's diagnostics on stderr, with "<N>" syslog priority prefixes for the
 * journal (or any non-TTY) and plain time-stamped lines on a terminal.
 * Never pass a raw customer id or event payload: log counts, methods, codes.
 */
#ifndef TPD_LOG_H
#define TPD_LOG_H

/* Syslog priorities, as the journal reads them from the "<N>" prefix. */
enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/* foreground: started with -d; level: the most verbose priority written. */
void log_init(int foreground, int level);
/* Thread-safe: SIGHUP changes the level while other threads log. */
void log_set_level(int level);
int log_get_level(void);
/* "err", "warning", "notice", "info", "debug" -> a level; -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(int level);

void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* TPD_LOG_H */
