/* errf: bounded error messages into a caller's buffer (see errf.h). */
#include "errf.h"

#include <stdarg.h>
#include <stdio.h>

void
tp_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}
