/*
 * fuzz_config: touchpointd.conf parsing (daemon/config.c) over arbitrary bytes, written to a
 * temporary file in $TMPDIR (or /tmp) that is removed after each run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "touchpoint/touchpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config c; /* 45 KiB: not on the stack */
	char path[4096], err[1024];
	const char *tmp = getenv("TMPDIR");
	size_t i, off;
	ssize_t w;
	int fd, rv;

	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	if ((size_t)snprintf(path, sizeof(path), "%s/fuzz_config.XXXXXX", tmp) >= sizeof(path))
		abort();
	if ((fd = mkstemp(path)) < 0)
		abort();
	for (off = 0; off < size; off += (size_t)w)
		if ((w = write(fd, data + off, size - off)) <= 0) {
			unlink(path);
			abort();
		}
	close(fd);
	err[0] = '\0';
	rv = config_load(&c, path, err, sizeof(err));
	unlink(path);
	if (rv != TP_OK && err[0] == '\0')
		abort(); /* every refusal names its reason */
	if (rv == TP_OK) {
		/* what was accepted is within config.h's bounds */
		if (c.nlisten > CONFIG_MAX_LISTEN || strlen(c.state_dir) >= CONFIG_PATH_MAX ||
		    strlen(c.metrics_listen) >= CONFIG_PATH_MAX || c.ipc_permissions > 0777 ||
		    c.default_lookback_s < 0)
			abort();
		for (i = 0; i < c.nlisten; i++)
			if (config_url_check(c.listen[i], err, sizeof(err)) != TP_OK)
				abort();
	}
	return 0;
}
