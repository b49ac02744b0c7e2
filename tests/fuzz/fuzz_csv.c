/*
 * fuzz_csv: the CLI's CSV reader (clients/cli/csv.c) over arbitrary bytes, as `touchpoint
 * import` reads a file; every record read must come back the same through csv_put.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * csv_put's fields, joined with ',' and a newline, read back as one record equal to
 * fields[0..n). A lone empty field is written as an empty line, which the reader skips as
 * blank: that record cannot be written, so it is not checked.
 */
static void
round_trip(char **fields, size_t n)
{
	char *buf = NULL, **back, err[128];
	size_t len = 0, m = 0, i;
	unsigned long line;
	struct csv_reader *r;
	FILE *f;

	if (n == 1 && fields[0][0] == '\0')
		return;
	if ((f = open_memstream(&buf, &len)) == NULL)
		abort();
	for (i = 0; i < n; i++) {
		if (i > 0)
			putc(',', f);
		csv_put(f, fields[i]);
	}
	putc('\n', f);
	if (fclose(f) != 0)
		abort();
	if ((f = fmemopen(buf, len, "r")) == NULL || (r = csv_new(f)) == NULL)
		abort();
	if (csv_read(r, &back, &m, &line, err, sizeof(err)) != 1 || m != n) {
		fprintf(stderr,
		        "fuzz_csv: a record of %zu fields wrote as \"%s\" reads back as %zu\n", n,
		        buf, m);
		abort();
	}
	for (i = 0; i < n; i++)
		if (strcmp(back[i], fields[i]) != 0) {
			fprintf(stderr, "fuzz_csv: field %zu \"%s\" reads back as \"%s\"\n", i,
			        fields[i], back[i]);
			abort();
		}
	csv_free(r);
	fclose(f);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct csv_reader *r;
	char **fields, err[128];
	size_t n, i, total = 0, seen = 0;
	unsigned long line, last = 0, lines = 1;
	long pos;
	FILE *f;
	int rv;

	/* fmemopen wants a non-empty buffer; an empty file reads as end of input anyway. */
	if (size == 0)
		return 0;
	if ((f = fmemopen((void *)data, size, "r")) == NULL)
		return 0;
	if ((r = csv_new(f)) == NULL) {
		fclose(f);
		return 0;
	}
	for (;;) {
		/*
		 * What the reader has consumed holds lines - 1 line ends: whatever it reads
		 * next starts on that line or a later one, or a record was swallowed unseen.
		 */
		if ((pos = ftell(f)) < 0)
			abort();
		for (; seen < (size_t)pos && seen < size; seen++)
			lines += data[seen] == '\n';
		err[0] = '\0';
		if ((rv = csv_read(r, &fields, &n, &line, err, sizeof(err))) != 1 && rv != -1)
			break;
		/* line numbers only go forward; every record has at least one field */
		if (line < last || line < lines) {
			fprintf(stderr,
			        "fuzz_csv: a record at line %lu after %lu lines were read\n", line,
			        lines);
			abort();
		}
		last = line;
		if (rv == 1) {
			if (n == 0 || n > CSV_MAX_FIELDS)
				abort();
			for (i = 0; i < n; i++)
				total += strlen(fields[i]);
			round_trip(fields, n);
		} else if (err[0] == '\0') {
			abort();
		}
	}
	if (total > size)
		abort(); /* fields are made of input bytes, never more */
	csv_free(r);
	fclose(f);
	return 0;
}
