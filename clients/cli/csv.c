/*
 * The CSV reader and writer (RFC 4180: quoted fields may span lines, "" is a quote).
 */
#include <stdlib.h>
#include <string.h>

#include "csv.h"

struct csv_reader {
	FILE *in;
	unsigned long line; /* line the next character is on */
	char *buf;
	size_t len, cap;
	size_t *off; /* field offsets in buf */
	char **fields;
	size_t nf;
};

struct csv_reader *
csv_new(FILE *in)
{
	struct csv_reader *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->in = in;
	r->line = 1;
	r->cap = 4096;
	if ((r->buf = malloc(r->cap)) == NULL ||
	    (r->off = calloc(CSV_MAX_FIELDS, sizeof(*r->off))) == NULL ||
	    (r->fields = calloc(CSV_MAX_FIELDS, sizeof(*r->fields))) == NULL) {
		csv_free(r);
		return NULL;
	}
	return r;
}

void
csv_free(struct csv_reader *r)
{
	if (r == NULL)
		return;
	free(r->buf);
	free(r->off);
	free(r->fields);
	free(r);
}

/* Appends c; -1 when the record outgrows CSV_MAX_RECORD, -2 when memory ran out. */
static int
csv_putc(struct csv_reader *r, char c)
{
	char *nb;

	if (r->len == r->cap) {
		if (r->cap >= CSV_MAX_RECORD)
			return -1;
		if ((nb = realloc(r->buf, r->cap * 2)) == NULL)
			return -2;
		r->buf = nb;
		r->cap *= 2;
	}
	r->buf[r->len++] = c;
	return 0;
}

/* After an error: drop the rest of the current line. */
static void
csv_skip_line(struct csv_reader *r, int c)
{
	while (c != '\n' && c != EOF)
		c = getc(r->in);
	if (c == '\n')
		r->line++;
}

int
csv_read(struct csv_reader *r, char ***fields, size_t *n, unsigned long *line, char *err,
         size_t errlen)
{
	int c, c2, rv;
	size_t i;

	r->len = 0;
	r->nf = 0;
	for (;;) {
		*line = r->line;
		c = getc(r->in);
		if (c == '\r') {
			if ((c2 = getc(r->in)) != '\n') {
				ungetc(c2, r->in);
				break;
			}
			c = '\n';
		}
		if (c != '\n')
			break;
		r->line++;
	}
	if (c == EOF)
		return ferror(r->in) ? -2 : 0;
	for (;;) {
		if (r->nf == CSV_MAX_FIELDS) {
			snprintf(err, errlen, "more than %d fields", CSV_MAX_FIELDS);
			csv_skip_line(r, c);
			return -1;
		}
		r->off[r->nf++] = r->len;
		if (c == '"') {
			for (;;) {
				if ((c = getc(r->in)) == EOF) {
					snprintf(err, errlen, "unterminated quoted field");
					return -1;
				}
				if (c == '"') {
					if ((c = getc(r->in)) != '"')
						break;
				} else if (c == '\n') {
					r->line++;
				} else if (c == '\0') {
					goto nul;
				}
				if ((rv = csv_putc(r, (char)c)) != 0)
					goto toolong;
			}
			if (c == '\r') {
				if ((c = getc(r->in)) != '\n') {
					snprintf(err, errlen, "CR without LF after a quoted field");
					csv_skip_line(r, c);
					return -1;
				}
			}
			if (c != ',' && c != '\n' && c != EOF) {
				snprintf(err, errlen, "unexpected character after a closing quote");
				csv_skip_line(r, c);
				return -1;
			}
		} else {
			while (c != ',' && c != '\n' && c != EOF) {
				if (c == '"') {
					snprintf(err, errlen, "quote inside an unquoted field");
					csv_skip_line(r, c);
					return -1;
				}
				if (c == '\0')
					goto nul;
				if (c == '\r') {
					if ((c2 = getc(r->in)) == '\n') {
						c = '\n';
						break;
					}
					ungetc(c2, r->in);
				}
				if ((rv = csv_putc(r, (char)c)) != 0)
					goto toolong;
				c = getc(r->in);
			}
		}
		if ((rv = csv_putc(r, '\0')) != 0)
			goto toolong;
		if (c == ',') {
			c = getc(r->in);
			if (c == '\n' || c == EOF || c == '\r') {
				/*
				 * A trailing comma: one more, empty field. A CRLF is one '\n', so
				 * that a record with too many fields skips its own line only.
				 */
				if (c == '\r') {
					if ((c2 = getc(r->in)) == '\n')
						c = '\n';
					else
						ungetc(c2, r->in);
				}
				if (r->nf == CSV_MAX_FIELDS)
					continue;
				r->off[r->nf++] = r->len;
				if ((rv = csv_putc(r, '\0')) != 0)
					goto toolong;
				if (c != EOF)
					r->line++;
				break;
			}
			continue;
		}
		if (c == '\n')
			r->line++;
		break;
	}
	for (i = 0; i < r->nf; i++)
		r->fields[i] = r->buf + r->off[i];
	*fields = r->fields;
	*n = r->nf;
	return 1;
toolong:
	if (rv == -2) {
		snprintf(err, errlen, "out of memory");
		return -3;
	}
	snprintf(err, errlen, "record longer than %d bytes", CSV_MAX_RECORD);
	csv_skip_line(r, c);
	return -1;
nul:
	/* A C string would end there: the value would be cut short, not refused (SPEC §2). */
	snprintf(err, errlen, "NUL byte in a field");
	csv_skip_line(r, c);
	return -1;
}

void
csv_put(FILE *out, const char *s)
{
	const char *p;
	size_t n;

	if (s == NULL)
		return;
	n = strlen(s);
	if (strpbrk(s, ",\"\r\n") == NULL && (n == 0 || (s[0] != ' ' && s[n - 1] != ' '))) {
		fputs(s, out);
		return;
	}
	putc('"', out);
	for (p = s; *p != '\0'; p++) {
		if (*p == '"')
			putc('"', out);
		putc(*p, out);
	}
	putc('"', out);
}
