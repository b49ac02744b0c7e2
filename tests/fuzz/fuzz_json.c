/*
 * fuzz_json: the CLI's strict JSON parser (clients/cli/json.c), which reads every line of an
 * NDJSON import, over arbitrary bytes; what it accepts must hold json.h's promises.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Checks v and everything under it; returns its number of values. */
static size_t
walk(const struct json_value *v, int depth)
{
	size_t i, j, count = 1;

	if (v == NULL || depth > JSON_MAX_DEPTH)
		abort();
	switch (v->type) {
	case JSON_NULL:
	case JSON_BOOL:
		break;
	case JSON_NUMBER:
		if (v->str == NULL || v->str[0] == '\0' || !isfinite(v->number))
			abort();
		break;
	case JSON_STRING:
		if (v->str == NULL)
			abort();
		(void)strlen(v->str); /* NUL-terminated inside its allocation (ASan checks) */
		break;
	case JSON_OBJECT:
	case JSON_ARRAY:
		if (v->n > JSON_MAX_MEMBERS || (v->n > 0 && v->items == NULL) ||
		    (v->type == JSON_OBJECT && v->n > 0 && v->keys == NULL))
			abort();
		for (i = 0; i < v->n; i++) {
			count += walk(v->items[i], depth + 1);
			if (v->type != JSON_OBJECT)
				continue;
			for (j = 0; j < i; j++)
				if (strcmp(v->keys[i], v->keys[j]) == 0)
					abort(); /* duplicate names are refused */
			if (json_get(v, v->keys[i]) != v->items[i])
				abort();
		}
		break;
	default:
		abort();
	}
	return count;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_value *v = NULL;
	char err[128];
	int rv;

	err[0] = '\0';
	rv = json_parse((const char *)data, size, &v, err, sizeof(err));
	if (rv == 0) {
		if (v == NULL || walk(v, 0) > size)
			abort(); /* every value takes at least one byte of text */
		json_free(v);
	} else if ((rv != -1 && rv != -2) || v != NULL || err[0] == '\0') {
		abort();
	}
	return 0;
}
