/*
 * errf: the one way every module writes an error message into a caller's (errbuf, errlen):
 * bounded, NUL-terminated, a no-op for a NULL or empty buffer.
 */
#ifndef TP_ERRF_H
#define TP_ERRF_H

#include <stddef.h>

void tp_errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* TP_ERRF_H */
