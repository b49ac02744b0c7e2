/*
 * The strict JSON parser: recursive descent with a depth limit; numbers per the RFC
 * grammar, converted with strtod in the C locale.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct json_parser {
	const char *s;
	size_t len, pos;
	char *err;
	size_t errlen;
	int oom; /* the failure was for lack of memory, not in the text */
};

static int
json_fail(struct json_parser *p, const char *what)
{
	snprintf(p->err, p->errlen, "%s at byte %zu", what, p->pos + 1);
	return -1;
}

static int
json_oom(struct json_parser *p)
{
	p->oom = 1;
	return json_fail(p, "out of memory");
}

static void
json_ws(struct json_parser *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
	                           p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

void
json_free(struct json_value *v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < v->n; i++) {
		json_free(v->items[i]);
		if (v->keys != NULL)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
	free(v);
}

/* Appends the UTF-8 form of code point cp to b. */
static size_t
json_utf8(char *b, unsigned long cp)
{
	if (cp < 0x80) {
		b[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		b[0] = (char)(0xc0 | (cp >> 6));
		b[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		b[0] = (char)(0xe0 | (cp >> 12));
		b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	b[0] = (char)(0xf0 | (cp >> 18));
	b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	b[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t
json_utf8_len(const unsigned char *s, size_t n)
{
	unsigned long cp;
	size_t k, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		k = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		k = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		k = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (k > n)
		return 0;
	for (i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF are invalid. */
	if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k;
}

static int
json_hex4(struct json_parser *p, unsigned long *v)
{
	int i;
	char c;

	if (p->len - p->pos < 4)
		return json_fail(p, "short \\u escape");
	*v = 0;
	for (i = 0; i < 4; i++) {
		c = p->s[p->pos++];
		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned long)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (unsigned long)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (unsigned long)(c - 'A' + 10);
		else
			return json_fail(p, "bad \\u escape");
	}
	return 0;
}

/* Parses a string literal at p->pos (the opening quote) into a malloc'd C string. */
static int
json_string(struct json_parser *p, char **out)
{
	char *b;
	size_t o = 0, k, end;
	unsigned long cp, lo;
	unsigned char c;

	p->pos++;
	/*
	 * Room for the literal alone, not the rest of the line: its closing quote is the first
	 * one not escaped (or the end of the text, which is an error below). The decoding
	 * below stops there too, as neither UTF-8 continuation bytes nor hex digits can be a
	 * quote or a backslash, and it never writes more bytes than it reads.
	 */
	for (end = p->pos; end < p->len && p->s[end] != '"'; end++)
		if (p->s[end] == '\\')
			end++;
	if (end > p->len)
		end = p->len;
	if ((b = malloc(end - p->pos + 1)) == NULL)
		return json_oom(p);
	for (;;) {
		if (p->pos >= p->len) {
			free(b);
			return json_fail(p, "unterminated string");
		}
		c = (unsigned char)p->s[p->pos];
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c < 0x20) {
			free(b);
			return json_fail(p, "control character in string");
		}
		if (c != '\\') {
			if ((k = json_utf8_len((const unsigned char *)p->s + p->pos,
			                       p->len - p->pos)) == 0) {
				free(b);
				return json_fail(p, "invalid UTF-8 in string");
			}
			memcpy(b + o, p->s + p->pos, k);
			o += k;
			p->pos += k;
			continue;
		}
		if (++p->pos >= p->len) {
			free(b);
			return json_fail(p, "unterminated string");
		}
		switch (p->s[p->pos++]) {
		case '"':
			b[o++] = '"';
			break;
		case '\\':
			b[o++] = '\\';
			break;
		case '/':
			b[o++] = '/';
			break;
		case 'b':
			b[o++] = '\b';
			break;
		case 'f':
			b[o++] = '\f';
			break;
		case 'n':
			b[o++] = '\n';
			break;
		case 'r':
			b[o++] = '\r';
			break;
		case 't':
			b[o++] = '\t';
			break;
		case 'u':
			if (json_hex4(p, &cp) != 0)
				goto fail;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (p->len - p->pos < 2 || p->s[p->pos] != '\\' ||
				    p->s[p->pos + 1] != 'u') {
					json_fail(p, "lone surrogate");
					goto fail;
				}
				p->pos += 2;
				if (json_hex4(p, &lo) != 0)
					goto fail;
				if (lo < 0xdc00 || lo > 0xdfff) {
					json_fail(p, "bad surrogate pair");
					goto fail;
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				json_fail(p, "lone surrogate");
				goto fail;
			}
			if (cp == 0) {
				json_fail(p, "NUL in string");
				goto fail;
			}
			o += json_utf8(b + o, cp);
			break;
		default:
			p->pos--;
			json_fail(p, "bad escape");
			goto fail;
		}
	}
	b[o] = '\0';
	*out = b;
	return 0;
fail:
	free(b);
	return -1;
}

static int
json_number(struct json_parser *p, struct json_value *v)
{
	size_t start = p->pos;
	const char *s = p->s;

	if (p->pos < p->len && s[p->pos] == '-')
		p->pos++;
	if (p->pos >= p->len || s[p->pos] < '0' || s[p->pos] > '9')
		return json_fail(p, "bad number");
	if (s[p->pos] == '0')
		p->pos++;
	else
		while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9')
			p->pos++;
	if (p->pos < p->len && s[p->pos] == '.') {
		p->pos++;
		if (p->pos >= p->len || s[p->pos] < '0' || s[p->pos] > '9')
			return json_fail(p, "bad number");
		while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9')
			p->pos++;
	}
	if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
			p->pos++;
		if (p->pos >= p->len || s[p->pos] < '0' || s[p->pos] > '9')
			return json_fail(p, "bad number");
		while (p->pos < p->len && s[p->pos] >= '0' && s[p->pos] <= '9')
			p->pos++;
	}
	if ((v->str = malloc(p->pos - start + 1)) == NULL)
		return json_oom(p);
	memcpy(v->str, s + start, p->pos - start);
	v->str[p->pos - start] = '\0';
	v->number = strtod(v->str, NULL);
	if (!isfinite(v->number))
		return json_fail(p, "number out of range");
	v->type = JSON_NUMBER;
	return 0;
}

static int json_value(struct json_parser *p, struct json_value **out, int depth);

/* Grows the item (and key) arrays of v by one. */
static int
json_grow(struct json_parser *p, struct json_value *v, int with_keys)
{
	struct json_value **items;
	char **keys;

	if ((items = realloc(v->items, (v->n + 1) * sizeof(*items))) == NULL)
		return json_oom(p);
	v->items = items;
	if (with_keys) {
		if ((keys = realloc(v->keys, (v->n + 1) * sizeof(*keys))) == NULL)
			return json_oom(p);
		v->keys = keys;
	}
	return 0;
}

static int
json_container(struct json_parser *p, struct json_value *v, int depth)
{
	int obj = p->s[p->pos] == '{';
	char close = obj ? '}' : ']';
	char *key = NULL, what[64];
	size_t i;

	v->type = obj ? JSON_OBJECT : JSON_ARRAY;
	p->pos++;
	json_ws(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		return 0;
	}
	for (;;) {
		json_ws(p);
		/*
		 * No row has more (json.h): refused before the duplicate check below, which
		 * compares each name with every one before it, becomes slow.
		 */
		if (v->n == JSON_MAX_MEMBERS) {
			snprintf(what, sizeof(what), "more than %d %s", JSON_MAX_MEMBERS,
			         obj ? "members in an object" : "elements in an array");
			return json_fail(p, what);
		}
		if (obj) {
			if (p->pos >= p->len || p->s[p->pos] != '"')
				return json_fail(p, "expected a member name");
			if (json_string(p, &key) != 0)
				return -1;
			for (i = 0; i < v->n; i++)
				if (strcmp(v->keys[i], key) == 0) {
					free(key);
					return json_fail(p, "duplicate member name");
				}
			json_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':') {
				free(key);
				return json_fail(p, "expected ':'");
			}
			p->pos++;
		}
		if (json_grow(p, v, obj) != 0) {
			free(key);
			return -1;
		}
		if (obj)
			v->keys[v->n] = key;
		key = NULL;
		v->items[v->n] = NULL;
		v->n++;
		if (json_value(p, &v->items[v->n - 1], depth + 1) != 0)
			return -1;
		json_ws(p);
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == close) {
			p->pos++;
			return 0;
		}
		return json_fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int
json_literal(struct json_parser *p, const char *word)
{
	size_t n = strlen(word);

	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return json_fail(p, "unexpected character");
	p->pos += n;
	return 0;
}

static int
json_value(struct json_parser *p, struct json_value **out, int depth)
{
	struct json_value *v;
	int rv;

	if (depth > JSON_MAX_DEPTH)
		return json_fail(p, "nested too deeply");
	json_ws(p);
	if (p->pos >= p->len)
		return json_fail(p, "unexpected end");
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return json_oom(p);
	*out = v;
	switch (p->s[p->pos]) {
	case '{':
	case '[':
		rv = json_container(p, v, depth);
		break;
	case '"':
		v->type = JSON_STRING;
		rv = json_string(p, &v->str);
		break;
	case 't':
		v->type = JSON_BOOL;
		v->boolean = 1;
		rv = json_literal(p, "true");
		break;
	case 'f':
		v->type = JSON_BOOL;
		rv = json_literal(p, "false");
		break;
	case 'n':
		v->type = JSON_NULL;
		rv = json_literal(p, "null");
		break;
	default:
		rv = json_number(p, v);
		break;
	}
	return rv;
}

int
json_parse(const char *s, size_t len, struct json_value **out, char *err, size_t errlen)
{
	struct json_parser p = { .s = s, .len = len, .err = err, .errlen = errlen };
	struct json_value *v = NULL;

	*out = NULL;
	if (json_value(&p, &v, 0) != 0) {
		json_free(v);
		return p.oom ? -2 : -1;
	}
	json_ws(&p);
	if (p.pos != p.len) {
		json_free(v);
		return json_fail(&p, "trailing characters");
	}
	*out = v;
	return 0;
}

const struct json_value *
json_get(const struct json_value *obj, const char *key)
{
	size_t i;

	if (obj == NULL || obj->type != JSON_OBJECT)
		return NULL;
	for (i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return obj->items[i];
	return NULL;
}
