/*
 * pathfile: `touchpoint attribute --paths FILE` — reads a ChannelAttribution path table
 * (CSV per RFC 4180, " > " between channels) and runs the models that need no timestamps.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "touchpoint/touchpoint.h"
#include "attribution/internal.h"

#define PF_FIELD_MAX (1u << 20) /* one field; a longer one is an error, not a truncation */
#define PF_MAX_LEN   100000     /* units in one path */
#define PF_HEADER    "path,total_conversions,total_conversion_value,total_null"
#define PF_SEPARATOR " > "
#define PF_MAX_COUNT 9007199254740992.0 /* 2^53: counts stay whole numbers */

struct pf {
	FILE *in;
	unsigned long line; /* of the record being read */
	char *f[4];
	size_t flen[4], fcap[4];
	uint32_t *u;
	size_t ucap;
};

/*
 * One record into f[0..3]: 1 read, 0 at end of input, -1 malformed, -2 out of memory
 * (message in errbuf). Quoted fields may hold commas, quotes ("") and line breaks.
 */
static int
read_record(struct pf *p, unsigned long *next_line, size_t *nfields, char *errbuf, size_t errlen)
{
	size_t nf = 0;
	int c, quoted = 0, started = 0, after_quote = 0;

	p->line = *next_line;
	p->flen[0] = 0;
	for (;;) {
		c = getc(p->in);
		if (c == EOF) {
			if (quoted) {
				snprintf(errbuf, errlen, "line %lu: unterminated quoted field",
				         p->line);
				return -1;
			}
			if (!started && nf == 0 && p->flen[0] == 0)
				return 0;
			break;
		}
		if (quoted) {
			if (c == '"') {
				int d = getc(p->in);

				if (d == '"') {
					c = '"';
				} else {
					if (d != EOF)
						ungetc(d, p->in);
					quoted = 0;
					after_quote = 1;
					continue;
				}
			} else if (c == '\n') {
				(*next_line)++;
			}
		} else if (c == '\r') {
			continue; /* CRLF line ends */
		} else if (c == '\n') {
			(*next_line)++;
			if (!started && nf == 0 && p->flen[0] == 0) {
				p->line = *next_line; /* a blank line */
				continue;
			}
			break;
		} else if (c == ',') {
			if (++nf >= 4) {
				snprintf(errbuf, errlen, "line %lu: more than 4 fields", p->line);
				return -1;
			}
			p->flen[nf] = 0;
			after_quote = 0;
			started = 1;
			continue;
		} else if (c == '"' && p->flen[nf] == 0 && !after_quote) {
			quoted = 1;
			started = 1;
			continue;
		} else if (after_quote || c == '"') {
			snprintf(errbuf, errlen, "line %lu: stray quote in field %zu", p->line,
			         nf + 1);
			return -1;
		}
		started = 1;
		if (p->flen[nf] + 2 > p->fcap[nf]) {
			size_t ncap = p->fcap[nf] ? p->fcap[nf] * 2 : 256;
			char *nb;

			if (ncap > PF_FIELD_MAX) {
				snprintf(errbuf, errlen, "line %lu: field %zu longer than %u bytes",
				         p->line, nf + 1, PF_FIELD_MAX);
				return -1;
			}
			if ((nb = realloc(p->f[nf], ncap)) == NULL) {
				snprintf(errbuf, errlen, "out of memory");
				return -2;
			}
			p->f[nf] = nb;
			p->fcap[nf] = ncap;
		}
		p->f[nf][p->flen[nf]++] = (char)c;
	}
	*nfields = nf + 1;
	return 1;
}

static const char *
field(struct pf *p, size_t i)
{
	if (p->f[i] == NULL)
		return "";
	p->f[i][p->flen[i]] = '\0';
	return p->f[i];
}

static int
number(const char *s, double *x)
{
	char *end;

	errno = 0;
	*x = strtod(s, &end);
	return *s != '\0' && *end == '\0' && errno == 0 && isfinite(*x) && *x >= 0 ? 0 : -1;
}

static int
unit_by_name(struct attr_engine *e, const char *name, size_t len, uint32_t *id)
{
	char buf[4096];
	const char *slash;
	int rv;

	if (len == 0 || len >= sizeof(buf))
		return TP_INVALID_ARGUMENT;
	memcpy(buf, name, len);
	buf[len] = '\0';
	if (attr_smap_get(&e->units.smap, buf, id))
		return TP_OK;
	/* at level=campaign a unit is "channel/campaign": direct channels match the first part */
	slash = e->campaign ? strchr(buf, '/') : NULL;
	if ((rv = attr_units_add(&e->units, buf, (uint32_t)(slash ? (size_t)(slash - buf) : len),
	                         id)) != TP_OK)
		return rv;
	return attr_smap_put(&e->units.smap, buf, *id);
}

static int
load(struct attr_engine *e, struct pf *p, char *errbuf, size_t errlen)
{
	unsigned long next = 1;
	size_t nf;
	int r, rv;

	if ((r = read_record(p, &next, &nf, errbuf, errlen)) <= 0) {
		if (r == -2)
			return TP_RESOURCE_EXHAUSTED;
		if (r == 0)
			snprintf(errbuf, errlen, "line 1: missing header \"%s\"", PF_HEADER);
		return TP_INVALID_ARGUMENT;
	}
	{
		char hdr[128];
		const char *f0 = field(p, 0);

		if (strncmp(f0, "\xef\xbb\xbf", 3) == 0) /* a UTF-8 BOM from spreadsheets */
			f0 += 3;
		snprintf(hdr, sizeof(hdr), "%s,%s,%s,%s", f0, nf > 1 ? field(p, 1) : "",
		         nf > 2 ? field(p, 2) : "", nf > 3 ? field(p, 3) : "");
		if (nf != 4 || strcmp(hdr, PF_HEADER) != 0) {
			snprintf(errbuf, errlen, "line 1: header must be \"%s\"", PF_HEADER);
			return TP_INVALID_ARGUMENT;
		}
	}
	while ((r = read_record(p, &next, &nf, errbuf, errlen)) == 1) {
		const char *path, *s, *sep;
		double conv, val, nul;
		size_t len = 0;

		if (nf != 4) {
			snprintf(errbuf, errlen, "line %lu: expected 4 fields, found %zu", p->line,
			         nf);
			return TP_INVALID_ARGUMENT;
		}
		if (number(field(p, 1), &conv) || number(field(p, 2), &val) ||
		    number(field(p, 3), &nul)) {
			snprintf(errbuf, errlen,
			         "line %lu: counts and value must be finite numbers >= 0", p->line);
			return TP_INVALID_ARGUMENT;
		}
		/* Above 2^53 counts are no longer whole numbers, and the path counts wrapped. */
		if (conv > PF_MAX_COUNT || nul > PF_MAX_COUNT) {
			snprintf(errbuf, errlen,
			         "line %lu: total_conversions and total_null must be at most 2^53 "
			         "(9007199254740992)",
			         p->line);
			return TP_INVALID_ARGUMENT;
		}
		path = field(p, 0);
		for (s = path;; s = sep + strlen(PF_SEPARATOR)) {
			uint32_t u;

			sep = strstr(s, PF_SEPARATOR);
			if (len >= PF_MAX_LEN) {
				snprintf(errbuf, errlen, "line %lu: path longer than %d channels",
				         p->line, PF_MAX_LEN);
				return TP_INVALID_ARGUMENT;
			}
			rv = unit_by_name(e, s, sep ? (size_t)(sep - s) : strlen(s), &u);
			if (rv == TP_INVALID_ARGUMENT) {
				snprintf(errbuf, errlen,
				         "line %lu: empty or overlong channel name in path",
				         p->line);
				return rv;
			}
			if (rv != TP_OK)
				return rv == TP_RESOURCE_EXHAUSTED ? attr_oom(errbuf, errlen) : rv;
			if (len == p->ucap) {
				size_t ncap = p->ucap ? p->ucap * 2 : 64;
				uint32_t *nu = realloc(p->u, ncap * sizeof(*nu));

				if (nu == NULL)
					return attr_oom(errbuf, errlen);
				p->u = nu;
				p->ucap = ncap;
			}
			/* a path file is already at its final level: collapse applies as asked */
			if (!(e->collapse && len > 0 && p->u[len - 1] == u))
				p->u[len++] = u;
			if (sep == NULL)
				break;
		}
		if (conv == 0 && nul == 0 && val == 0)
			continue;
		if ((rv = attr_ptab_add(&e->top.pt, p->u, (uint32_t)len, conv, val, nul)) != TP_OK)
			return rv == TP_RESOURCE_EXHAUSTED ? attr_oom(errbuf, errlen) : rv;
		e->top.conversions += conv;
		e->top.value += val;
		e->top.converting_paths += (uint64_t)llround(conv);
		e->top.null_paths += (uint64_t)llround(nul);
	}
	if (r < 0)
		return r == -2 ? TP_RESOURCE_EXHAUSTED : TP_INVALID_ARGUMENT;
	if (ferror(p->in)) {
		snprintf(errbuf, errlen, "line %lu: read error", p->line);
		return TP_INVALID_ARGUMENT;
	}
	return TP_OK;
}

int
attr_pathfile_attribute(FILE *in, const Touchpoint__V1__AttributeRequest *req,
                        Touchpoint__V1__AttributeResponse **out, char *errbuf, size_t errlen)
{
	struct attr_engine *e = NULL;
	struct pf p;
	size_t i;
	int rv;

	if (in == NULL || req == NULL || out == NULL)
		return TP_INVALID_ARGUMENT;
	*out = NULL;
	memset(&p, 0, sizeof(p));
	p.in = in;
	if ((rv = attr_engine_make(&e, req, 0, NULL, NULL, 1, errbuf, errlen)) != TP_OK)
		return rv;
	if ((rv = load(e, &p, errbuf, errlen)) != TP_OK)
		goto fail;
	rv = attr_build_result(e, out, errbuf, errlen);
fail:
	for (i = 0; i < 4; i++)
		free(p.f[i]);
	free(p.u);
	attr_engine_free(e);
	return rv;
}
