/*
 * RFC 4180 CSV: a bounded record reader that keeps line numbers for error messages, and
 * the quoting writer every command's --format csv uses.
 */
#ifndef TP_CLI_CSV_H
#define TP_CLI_CSV_H

#include <stdio.h>

#define CSV_MAX_RECORD (1024 * 1024) /* bytes of one record */
#define CSV_MAX_FIELDS 1024

struct csv_reader;

struct csv_reader *csv_new(FILE *in);
void csv_free(struct csv_reader *r);

/*
 * Reads the next record; blank lines are skipped. *fields (n of them, NUL-terminated,
 * valid until the next call) and *line, the record's first line number (1-based).
 * Returns 1 for a record, 0 at the end, -1 for a malformed record (err says why; the
 * reader has skipped to the next line, so reading may go on), -2 on a read error, -3 when
 * memory ran out (err "out of memory").
 */
int csv_read(struct csv_reader *r, char ***fields, size_t *n, unsigned long *line, char *err,
             size_t errlen);

/* Writes s as one field, quoted when it holds a comma, quote, CR, LF or edge spaces. */
void csv_put(FILE *out, const char *s);

#endif /* TP_CLI_CSV_H */
