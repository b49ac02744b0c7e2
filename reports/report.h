/*
 * report: `touchpoint report --out DIR` as a library — an attribution response and its path
 * table become a directory of gnuplot charts (PNG + SVG), tables in index.html, CSV and JSON.
 */
#ifndef TP_REPORT_H
#define TP_REPORT_H

#include <stddef.h>

#include "touchpoint/v1/attribution.pb-c.h"

struct report_options {
	const char *out_dir; /* the report directory; replaced as a whole, only on success */
	int pdf;             /* also report.pdf: every chart, one per page (pdfcairo) */
	const char *gnuplot; /* NULL: "gnuplot" from PATH; a name with a '/' is used as is
	                        (a relative one from the working directory) */
};

/*
 * Writes the report for attr (required) and paths (may be NULL: no path charts) into
 * o->out_dir, atomically: everything is built in a fresh directory beside it
 * (".<name>.tmp-XXXXXX", mode 0777 less the umask as for mkdir(1), and no wider than the
 * directory it replaces) and renamed into place. An existing out_dir must be empty or a
 * previous report (it holds index.html and attribution.json, no subdirectories), else
 * TP_FAILED_PRECONDITION and nothing is touched.
 *
 * Untrusted text (channel, campaign, segment, model names) never reaches gnuplot's command
 * language: it travels in data files only, see docs/reports.md.
 *
 * Returns TP_OK; TP_INVALID_ARGUMENT (bad arguments); TP_FAILED_PRECONDITION (out_dir);
 * TP_INTERNAL (I/O, or a chart failed: "chart model_comparison: gnuplot exited 1: ...");
 * TP_UNAVAILABLE ("gnuplot not found"); TP_DEADLINE_EXCEEDED (gnuplot ran over 60 s);
 * TP_RESOURCE_EXHAUSTED (memory). When only charts failed, the report is still put in
 * place — CSV, JSON and an index.html that names the missing charts — and the chart's
 * error is returned. On any other error out_dir is left as it was. errbuf (errlen bytes,
 * may be NULL/0) receives a message for every status but TP_OK.
 * The process's working directory and environment are never changed: gnuplot runs in a
 * forked child that calls only async-signal-safe functions before exec.
 */
/*
 * What report_write checks of o->out_dir before it fetches nothing and writes anything, for
 * a caller that would rather find out before an expensive query: TP_OK;
 * TP_INVALID_ARGUMENT when the path names no directory of its own ("", ".", "..", "/",
 * "x/.."); TP_FAILED_PRECONDITION when it exists and is not an empty directory or a
 * previous report, or its parent is missing, not a directory or not writable. errbuf gets
 * the reason, without the name of the option ("the path is empty", "'.' is not usable as a
 * report directory: ...", "DIR: exists and is not a directory").
 */
int report_check_out(const char *out_dir, char *errbuf, size_t errlen);

int report_write(const Touchpoint__V1__AttributeResponse *attr,
                 const Touchpoint__V1__PathsResponse *paths, const struct report_options *o,
                 char *errbuf, size_t errlen);

#endif /* TP_REPORT_H */
