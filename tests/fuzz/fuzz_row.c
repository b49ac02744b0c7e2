/*
 * fuzz_row: the import path from named fields to an event (clients/cli/row.c, timefmt.c).
 * Input: one byte, the number of fields, then NUL-separated strings name, value, name, ...
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "row.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FR_MAX_FIELDS 128 /* more than a row has: 17 columns and ROW_MAX_TRAITS traits */

/* The content-derived id must not depend on the order of an identify row's traits. */
static void
check_id(const struct row_event *re, int derived)
{
	struct tp_trait rev[ROW_MAX_TRAITS];
	struct tp_event ev = re->ev;
	char id[ROW_ID_LEN + 1];
	size_t i, n;

	if (!derived)
		return;
	if (strlen(re->id) != ROW_ID_LEN || strncmp(re->id, "imp-", 4) != 0 ||
	    re->ev.event_id != re->id)
		abort();
	row_event_id(&ev, id);
	if (strcmp(id, re->id) != 0)
		abort();
	if (ev.kind != TP_IDENTIFY || (n = ev.u.identify.count) < 2)
		return;
	for (i = 0; i < n; i++)
		rev[i] = ev.u.identify.traits[n - 1 - i];
	ev.u.identify.traits = rev;
	row_event_id(&ev, id);
	if (strcmp(id, re->id) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct row_field f[FR_MAX_FIELDS];
	struct row_event *re;
	char *buf, *p, *end, field[64], reason[160];
	size_t want, n = 0, i;
	int rv, derived = 1;

	if (size == 0)
		return 0;
	want = data[0] % (FR_MAX_FIELDS + 1);
	/* The strings, each NUL-terminated: the last one too. */
	if ((buf = malloc(size)) == NULL)
		return 0;
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	end = buf + size; /* one past the last NUL */
	for (p = buf; n < want && p < end; n++) {
		f[n].name = p;
		p += strlen(p) + 1;
		/* a name without a value: NULL, which row.c takes as absent */
		f[n].value = p < end ? p : NULL;
		if (p < end)
			p += strlen(p) + 1;
	}
	if ((re = malloc(sizeof(*re))) == NULL) {
		free(buf);
		return 0;
	}
	for (i = 0; i < n; i++) {
		(void)row_known_field(f[i].name);
		if (f[i].value != NULL && f[i].value[0] != '\0' &&
		    strcmp(f[i].name, "event_id") == 0)
			derived = 0;
	}
	field[0] = reason[0] = '\0';
	rv = row_to_event(f, n, re, field, sizeof(field), reason, sizeof(reason));
	if (rv == 0) {
		if (re->ev.kind < TP_TOUCH || re->ev.kind > TP_SPEND || re->ev.event_id == NULL ||
		    re->ev.timestamp_us < 0 || re->nstrs > sizeof(re->strs) / sizeof(re->strs[0]))
			abort();
		if (re->ev.kind == TP_IDENTIFY && re->ev.u.identify.count > ROW_MAX_TRAITS)
			abort();
		check_id(re, derived);
		row_event_free(re);
	} else if ((rv != -1 && rv != -2) || field[0] == '\0' || reason[0] == '\0') {
		abort();
	}
	free(re);
	free(buf);
	return 0;
}
