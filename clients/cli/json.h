/*
 * A small strict JSON (RFC 8259) parser for NDJSON import, and string output for
 * --format json. Strings must be valid UTF-8 without NUL; objects without duplicate keys.
 */
#ifndef TP_CLI_JSON_H
#define TP_CLI_JSON_H

#include <stddef.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 32

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_value {
	enum json_type type;
	int boolean;
	double number;
	char *str;   /* JSON_STRING: the text; JSON_NUMBER: the number as written */
	size_t n;    /* items (array) or members (object) */
	char **keys; /* object member names */
	struct json_value **items;
};

/*
 * Parses s[0..len) as exactly one JSON value (whitespace around it allowed).
 * Returns 0 and *out (free with json_free), or -1 with a message naming the byte offset.
 */
int json_parse(const char *s, size_t len, struct json_value **out, char *err, size_t errlen);
void json_free(struct json_value *v);

/* The member called key of an object, or NULL. */
const struct json_value *json_get(const struct json_value *obj, const char *key);

#endif /* TP_CLI_JSON_H */
