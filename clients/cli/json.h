/*
 * A small strict JSON (RFC 8259) parser for NDJSON import, and string output for
 * --format json. Strings must be valid UTF-8 without NUL; objects without duplicate keys.
 */
#ifndef TP_CLI_JSON_H
#define TP_CLI_JSON_H

#include <stddef.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 32
/*
 * Members of one object, elements of one array: an event has at most 18 keys (SPEC §6's
 * names and "traits") and its traits object at most ROW_MAX_TRAITS (64) members; arrays
 * it has none. More is refused as it is read, so a long line of many keys costs no more
 * than a short one.
 */
#define JSON_MAX_MEMBERS 64

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
 * Returns 0 and *out (free with json_free); -1 with a message naming the byte offset when
 * the text is not such a value (or has more than JSON_MAX_DEPTH levels or
 * JSON_MAX_MEMBERS members in a container); -2 ("out of memory") when memory ran out.
 */
int json_parse(const char *s, size_t len, struct json_value **out, char *err, size_t errlen);
void json_free(struct json_value *v);

/* The member called key of an object, or NULL. */
const struct json_value *json_get(const struct json_value *obj, const char *key);

#endif /* TP_CLI_JSON_H */
