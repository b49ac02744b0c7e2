/*
 * Times and durations as people type them: RFC 3339, YYYY-MM-DD, @microseconds; 90s, 15m,
 * 12h, 30d. Pure functions, shared by every command and the tests.
 */
#ifndef TP_CLI_TIMEFMT_H
#define TP_CLI_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Room for tf_format's longest output, "2200-12-31T23:59:59.999999Z" plus NUL. */
#define TF_TIME_MAX 40

/*
 * RFC 3339 ("2024-05-01T12:00:00Z", "2024-05-01 12:00:00.25+02:00"), YYYY-MM-DD (UTC
 * midnight) or @N (N microseconds since the epoch) -> *us. Years 1970-2200 (UTC).
 * Returns 0; -1 when s is none of these; TF_OUT_OF_RANGE when it is one, but of a time
 * outside those years.
 */
#define TF_OUT_OF_RANGE (-2)
int tf_parse_time(const char *s, int64_t *us);

/* "0" (unlimited), "3600", "90s", "15m", "12h", "30d", "1d12h" -> seconds. 0 or -1. */
int tf_parse_duration(const char *s, int64_t *secs);

/* Days since 1970-01-01 of a proleptic Gregorian date (no range check). */
int64_t tf_days_from_civil(int y, unsigned m, unsigned d);

/* us -> "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (fraction only when non-zero) into buf. */
void tf_format(int64_t us, char *buf, size_t len);

#endif /* TP_CLI_TIMEFMT_H */
