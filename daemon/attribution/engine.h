/*
 * engine: the attribution engine (tpattr). Journeys stream in one customer at a time, are cut
 * into paths (SPEC §3), aggregated into a path table and credited by the models (SPEC §4).
 */
#ifndef TP_ATTR_ENGINE_H
#define TP_ATTR_ENGINE_H

#include <stdint.h>
#include <stdio.h>

#include "attribution/event.h"
#include "touchpoint/v1/attribution.pb-c.h"

enum attr_format { ATTR_FORMAT_TABLE, ATTR_FORMAT_CSV, ATTR_FORMAT_JSON };

struct attr_engine; /* opaque */

/*
 * Validates req: an unknown model or parameter, or a bad value -> TP_INVALID_ARGUMENT with a
 * message naming it (e.g. "models[1].params.order: must be 1..4"). default_lookback_s applies
 * when window.lookback is absent. names resolves interned ids (may be NULL: ids print as "#N").
 * An empty models list means every model with its defaults.
 */
int attr_engine_new(struct attr_engine **ep, const Touchpoint__V1__AttributeRequest *req,
                    int64_t default_lookback_s, attr_names_fn names, void *names_arg, char *errbuf,
                    size_t errlen);

/* For the Paths RPC: journeys -> path table only, no models. */
int attr_engine_new_paths(struct attr_engine **ep, const Touchpoint__V1__Window *w,
                          int64_t default_lookback_s, attr_names_fn names, void *names_arg,
                          char *errbuf, size_t errlen);

/*
 * One customer's events (after alias resolution), in SPEC §3 order, identify events included.
 * Events out of order -> TP_INVALID_ARGUMENT. No allocation once the buffers have grown to
 * the longest journey seen.
 */
int attr_engine_customer(struct attr_engine *e, const struct attr_event *evs, size_t n);

/*
 * Adds what src has accumulated to dst, as if src's customers (and spend) had streamed into
 * dst after dst's own: units, paths, segments and daily credits new to dst are added in src's
 * first-seen order, so merging the engines of consecutive parts of a stream, in order, gives
 * the tables of one engine fed the whole stream (sums may round differently, ~1e-16
 * relative). Both must come from the same request (TP_INVALID_ARGUMENT otherwise). src's
 * queued paths are added to its tables first; nothing else of it changes. On an error dst
 * is incomplete.
 */
int attr_engine_merge(struct attr_engine *dst, struct attr_engine *src);

/* One spend event (the caller only passes those inside the window). */
int attr_engine_spend(struct attr_engine *e, uint32_t channel, uint32_t campaign, int32_t day,
                      double amount, const char *currency);

/*
 * Run the models and build the response. Responses and path tables are plain malloc'd
 * protobuf-c messages: free them with protobuf_c_message_free_unpacked(&r->base, NULL).
 * attr_engine_result on an engine made by attr_engine_new_paths -> TP_FAILED_PRECONDITION.
 */
int attr_engine_result(struct attr_engine *e, Touchpoint__V1__AttributeResponse **out);
/*
 * attr_engine_result's long models (markov, shapley_rate) poll cancelled(arg) and stop with
 * TP_CANCELLED when it returns nonzero: the daemon's deadline and shutdown.
 */
void attr_engine_cancel_with(struct attr_engine *e, int (*cancelled)(void *arg), void *arg);
/* Why the engine's last failed call failed, naming the field or model; "" if it did not say. */
const char *attr_engine_error(const struct attr_engine *e);
/* Paths sorted by conversions, then nulls, descending (then by path); top 0 = every path. */
int attr_engine_paths(struct attr_engine *e, uint32_t top, Touchpoint__V1__PathsResponse **out);
/*
 * One page of that table: rows [offset, offset + limit) of the first top (limit 0: all),
 * ending early once the rows would pack into more than max_bytes (always at least one);
 * next_offset says where the next page starts (0: none). The sorted order is computed once
 * and kept in e, so paging through a table sorts it once. Not after more input.
 */
int attr_engine_paths_page(struct attr_engine *e, uint32_t top, uint64_t offset, uint32_t limit,
                           size_t max_bytes, Touchpoint__V1__PathsResponse **out);
void attr_engine_free(struct attr_engine *e);

/*
 * `touchpoint attribute --paths FILE`: a ChannelAttribution path table
 * (path,total_conversions,total_conversion_value,total_null) -> every requested model that
 * needs no timestamps (time_decay is skipped and not listed). A bad line ->
 * TP_INVALID_ARGUMENT naming the line.
 */
int attr_pathfile_attribute(FILE *in, const Touchpoint__V1__AttributeRequest *req,
                            Touchpoint__V1__AttributeResponse **out, char *errbuf, size_t errlen);

/*
 * One customer's paths per SPEC §3 (for the journey RPC): fn is called once per path, in
 * order (converting paths, then the null path); indexes point into evs. A conversion with no
 * touch in its window is reported with ntouches = 0 (unattributed). lookback_s 0 = unlimited.
 * fn returning non-zero stops the walk and that value is returned.
 */
typedef int (*attr_journey_fn)(void *arg, int converting, size_t conversion_index,
                               const size_t *touch_index, size_t ntouches);
int attr_journey_paths(const struct attr_event *evs, size_t n, int64_t lookback_s,
                       attr_journey_fn fn, void *arg);

/*
 * Output for people (table) and machines (csv, json — SPEC §6 shape). TP_OK,
 * TP_RESOURCE_EXHAUSTED out of memory (the output is then incomplete), TP_INTERNAL when
 * writing failed.
 */
int attr_render_attribute(FILE *out, const Touchpoint__V1__AttributeResponse *r,
                          enum attr_format f);
int attr_render_paths(FILE *out, const Touchpoint__V1__PathsResponse *r, enum attr_format f);
/* The CSV rows alone, without the header: for a table read page by page. */
#define ATTR_PATHS_CSV_HEADER "path,total_conversions,total_conversion_value,total_null"
int attr_render_path_rows(FILE *out, const Touchpoint__V1__PathsResponse *r);
/* The shortest decimal text that reads back as the same double (what every output uses). */
void attr_format_number(char *buf, size_t len, double v);
/* s as a JSON string literal: quotes, backslashes and control characters escaped. */
void attr_json_string(FILE *out, const char *s);
/* s for a terminal (tables): each control character, C0, DEL or C1, printed as '?'. */
void attr_text_put(FILE *out, const char *s);
/* Display width of UTF-8 text in a table: code points, good enough for alignment. */
int attr_text_width(const char *s);

#endif /* TP_ATTR_ENGINE_H */
