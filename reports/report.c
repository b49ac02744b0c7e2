/*
 * report: report_write() — the temporary directory, CSV/JSON through the engine's renderer,
 * charts and index.html, then the swap into place; plus the text helpers all parts share.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "errf.h"
#include "touchpoint/touchpoint.h"
#include "attribution/engine.h"
#include "internal.h"

/* Decodes one UTF-8 sequence; invalid input consumes one byte and yields U+FFFD. */
static size_t
utf8_next(const unsigned char *s, uint32_t *cp)
{
	uint32_t c, min;
	size_t n, i;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2, c = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3, c = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4, c = s[0] & 0x07, min = 0x10000;
	} else {
		*cp = 0xfffd;
		return 1;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			*cp = 0xfffd;
			return 1;
		}
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
		*cp = 0xfffd;
		return 1;
	}
	*cp = c;
	return n;
}

static size_t
utf8_put(char *d, uint32_t c)
{
	if (c < 0x80) {
		d[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		d[0] = (char)(0xc0 | (c >> 6));
		d[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		d[0] = (char)(0xe0 | (c >> 12));
		d[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		d[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	d[0] = (char)(0xf0 | (c >> 18));
	d[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	d[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	d[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

void
report_clean(char *dst, size_t dstlen, const char *src, size_t maxcp, int gnuplot)
{
	const unsigned char *s;
	size_t o = 0, ncp = 0, k, total = 0, lead, trail, at;
	uint32_t c;
	char enc[4];

	if (dstlen == 0)
		return;
	if (src == NULL || *src == '\0')
		src = "(empty)";
	for (s = (const unsigned char *)src; *s != '\0'; s += utf8_next(s, &c))
		total++;
	/* Spaces before lead and from trail on are at an edge of the name. */
	lead = strspn(src, " ");
	for (trail = strlen(src); trail > lead && src[trail - 1] == ' '; trail--)
		;
	for (s = (const unsigned char *)src; *s != '\0'; ncp++) {
		at = (size_t)((const char *)s - src);
		s += utf8_next(s, &c);
		/* Visible stand-ins that DejaVu Sans has (it lacks the control pictures). */
		if (c == ' ' && (at < lead || at >= trail))
			c = 0x2423; /* ␣: gnuplot strips leading spaces, HTML collapses them */
		else if (c == '\t')
			c = 0x21e5; /* ⇥ */
		else if (c == '\n' || c == '\r' || c == 0x2028 || c == 0x2029)
			c = 0x21b5; /* ↵ (gnuplot breaks the line at the Unicode separators too) */
		else if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
			c = 0xfffd;
		if (gnuplot && c == '"')
			c = 0x01;
		else if (gnuplot && c == '\\')
			c = 0x03;
		k = utf8_put(enc, c);
		/* Room for this code point, an ellipsis (3 bytes) and the NUL, and within maxcp. */
		if ((maxcp != 0 && total > maxcp && ncp + 1 >= maxcp) || o + k + 4 > dstlen) {
			if (o + 4 <= dstlen)
				o += utf8_put(dst + o, 0x2026);
			break;
		}
		memcpy(dst + o, enc, k);
		o += k;
	}
	dst[o] = '\0';
}

void
report_model_label(char *dst, size_t dstlen, const Touchpoint__V1__ModelResult *const *mods,
                   size_t nmod, size_t i)
{
	char k[128], v[128];
	size_t j, o;
	int dup = 0;

	report_clean(dst, dstlen, mods[i]->model, 40, 0);
	for (j = 0; j < nmod; j++)
		if (j != i && strcmp(mods[j]->model, mods[i]->model) == 0)
			dup = 1;
	if (!dup || mods[i]->n_params == 0)
		return;
	for (j = 0; j < mods[i]->n_params; j++) {
		o = strlen(dst);
		report_clean(k, sizeof(k), mods[i]->params[j]->key, 24, 0);
		report_clean(v, sizeof(v), mods[i]->params[j]->value, 24, 0);
		snprintf(dst + o, dstlen - o, "%s%s=%s%s", j == 0 ? " (" : ", ", k, v,
		         j + 1 == mods[i]->n_params ? ")" : "");
	}
}

double
report_cpa(double cost, double conv)
{
	if (!isfinite(conv))
		conv = 0;
	return isfinite(cost) && conv > 0 ? cost / conv : NAN;
}

double
report_roas(double cost, double value)
{
	if (!isfinite(value))
		value = 0;
	return isfinite(cost) && cost > 0 ? value / cost : NAN;
}

void
report_time(char *dst, size_t dstlen, int64_t us)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (us < 0 || gmtime_r(&t, &tm) == NULL) {
		snprintf(dst, dstlen, "%lld µs", (long long)us);
		return;
	}
	if (tm.tm_hour == 0 && tm.tm_min == 0 && tm.tm_sec == 0 && us % 1000000 == 0)
		strftime(dst, dstlen, "%Y-%m-%d", &tm);
	else
		strftime(dst, dstlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
grid_cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort key for channels: mean share, descending, then name. */
struct grid_rank {
	double mean;
	const char *name;
	size_t idx;
};

static int
grid_cmp_mean(const void *a, const void *b)
{
	const struct grid_rank *x = a, *y = b;

	if (x->mean != y->mean)
		return x->mean < y->mean ? 1 : -1;
	return strcmp(x->name, y->name);
}

static size_t
grid_find(const char **names, size_t n, const char *name)
{
	const char **p = bsearch(&name, names, n, sizeof(*names), grid_cmp_name);

	return p == NULL ? SIZE_MAX : (size_t)(p - names);
}

int
report_grid_build(struct report_grid *g, Touchpoint__V1__ModelResult *const *mods, size_t nmod)
{
	const char **names = NULL;
	size_t n = 0, cap = 0, m, j, k, u;
	struct grid_rank *rank = NULL;
	double *tmp[4] = { NULL, NULL, NULL, NULL }, **dst[4];
	const Touchpoint__V1__ChannelCredit *cc;

	memset(g, 0, sizeof(*g));
	if (nmod == 0)
		return TP_OK;
	for (m = 0; m < nmod; m++)
		cap += mods[m]->n_channels;
	if ((names = calloc(cap + 1, sizeof(*names))) == NULL)
		goto fail;
	for (m = 0; m < nmod; m++)
		for (j = 0; j < mods[m]->n_channels; j++)
			names[n++] = mods[m]->channels[j]->channel;
	qsort(names, n, sizeof(*names), grid_cmp_name);
	for (j = 0, u = 0; j < n; j++)
		if (u == 0 || strcmp(names[u - 1], names[j]) != 0)
			names[u++] = names[j];
	n = u;
	g->nch = n;
	g->nmod = nmod;
	if ((g->mod = calloc(nmod, sizeof(*g->mod))) == NULL ||
	    (g->ch = calloc(n + 1, sizeof(*g->ch))) == NULL ||
	    (rank = calloc(n + 1, sizeof(*rank))) == NULL)
		goto fail;
	dst[0] = &g->share, dst[1] = &g->conv, dst[2] = &g->value, dst[3] = &g->re;
	for (k = 0; k < 4; k++) {
		if ((tmp[k] = malloc((n * nmod + 1) * sizeof(double))) == NULL)
			goto fail;
		for (j = 0; j < n * nmod; j++)
			tmp[k][j] = NAN;
	}
	for (j = 0; j < n; j++) {
		rank[j].name = names[j];
		rank[j].idx = j;
	}
	for (m = 0; m < nmod; m++) {
		g->mod[m] = mods[m];
		for (j = 0; j < mods[m]->n_channels; j++) {
			cc = mods[m]->channels[j];
			u = grid_find(names, n, cc->channel);
			tmp[0][u * nmod + m] = cc->share;
			tmp[1][u * nmod + m] = cc->conversions;
			tmp[2][u * nmod + m] = cc->value;
			if (cc->removal_effect_present_case ==
			    TOUCHPOINT__V1__CHANNEL_CREDIT__REMOVAL_EFFECT_PRESENT_REMOVAL_EFFECT) {
				tmp[3][u * nmod + m] = cc->removal_effect;
				g->any_re = 1;
			}
			if (isfinite(cc->share))
				rank[u].mean += cc->share / (double)nmod;
		}
	}
	/* Rows in the order of mean share, so every chart and table ranks channels alike. */
	qsort(rank, n, sizeof(*rank), grid_cmp_mean);
	for (k = 0; k < 4; k++) {
		if ((*dst[k] = malloc((n * nmod + 1) * sizeof(double))) == NULL)
			goto fail;
		for (j = 0; j < n; j++)
			memcpy(*dst[k] + j * nmod, tmp[k] + rank[j].idx * nmod,
			       nmod * sizeof(double));
	}
	for (j = 0; j < n; j++)
		g->ch[j] = rank[j].name;
	for (k = 0; k < 4; k++)
		free(tmp[k]);
	free(names);
	free(rank);
	return TP_OK;
fail:
	for (k = 0; k < 4; k++)
		free(tmp[k]);
	free(names);
	free(rank);
	report_grid_free(g);
	return TP_RESOURCE_EXHAUSTED;
}

void
report_grid_free(struct report_grid *g)
{
	free(g->ch);
	free(g->mod);
	free(g->share);
	free(g->conv);
	free(g->value);
	free(g->re);
	memset(g, 0, sizeof(*g));
}

static void
window_describe(struct report_ctx *c)
{
	const Touchpoint__V1__AttributeResponse *a = c->attr;
	char t[64], name[256];
	size_t o;
	int64_t lb = a->lookback_s;

	if (lb == 0)
		o = (size_t)snprintf(c->window, sizeof(c->window), "lookback unlimited");
	else if (lb % 86400 == 0)
		o = (size_t)snprintf(c->window, sizeof(c->window), "lookback %lld d",
		                     (long long)(lb / 86400));
	else if (lb % 3600 == 0)
		o = (size_t)snprintf(c->window, sizeof(c->window), "lookback %lld h",
		                     (long long)(lb / 3600));
	else
		o = (size_t)snprintf(c->window, sizeof(c->window), "lookback %lld s",
		                     (long long)lb);
	if (a->from_case == TOUCHPOINT__V1__ATTRIBUTE_RESPONSE__FROM_FROM_US) {
		report_time(t, sizeof(t), a->from_us);
		o += (size_t)snprintf(c->window + o, sizeof(c->window) - o, " · from %s", t);
	}
	if (a->to_case == TOUCHPOINT__V1__ATTRIBUTE_RESPONSE__TO_TO_US && o < sizeof(c->window)) {
		report_time(t, sizeof(t), a->to_us);
		o += (size_t)snprintf(c->window + o, sizeof(c->window) - o, " · to %s", t);
	}
	if (o < sizeof(c->window))
		o += (size_t)snprintf(
		    c->window + o, sizeof(c->window) - o, " · level %s · repeats %s",
		    a->level == TOUCHPOINT__V1__LEVEL__LEVEL_CAMPAIGN ? "campaign" : "channel",
		    a->repeats == TOUCHPOINT__V1__REPEATS__REPEATS_COLLAPSE ? "collapse" : "keep");
	if (a->conversion != NULL && a->conversion[0] != '\0' && o < sizeof(c->window)) {
		report_clean(name, sizeof(name), a->conversion, 64, 0);
		snprintf(c->window + o, sizeof(c->window) - o, " · conversion %s", name);
	}
}

/* Removes a directory we created or checked to hold regular files only. */
static int
flat_remove(const char *path)
{
	DIR *d;
	struct dirent *de;
	int rv = 0;

	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) != 0)
			rv = -1;
	}
	closedir(d);
	if (rmdir(path) != 0)
		rv = -1;
	return rv;
}

/*
 * An existing output directory is replaced only when it is empty or a previous report, so
 * that a slip like `--out ~` cannot wipe a home directory. 1: exists (replaceable), 0:
 * absent, -1: refused (message in errbuf).
 */
static int
target_check(const char *path, char *errbuf, size_t errlen)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int n = 0, idx = 0, json = 0, bad = 0;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		tp_errf(errbuf, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		tp_errf(errbuf, errlen, "%s: exists and is not a directory", path);
		return -1;
	}
	if ((d = opendir(path)) == NULL) {
		tp_errf(errbuf, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			bad = 1;
		idx |= strcmp(de->d_name, "index.html") == 0;
		json |= strcmp(de->d_name, "attribution.json") == 0;
	}
	closedir(d);
	if (n > 0 && (bad || !idx || !json)) {
		tp_errf(errbuf, errlen,
		        "%s: exists and is not a touchpoint report (only an empty directory or a "
		        "previous report is replaced)",
		        path);
		return -1;
	}
	return 1;
}

/*
 * Splits out_dir into the directory to write (trailing slashes dropped), its parent and
 * its name. A path that names no directory of its own — "", ".", "..", "/", "x/.." — is
 * refused: the report is swapped in by renaming, which such a path cannot take.
 */
static int
out_split(const char *out_dir, char out[4096], char parent[4096], char base[256], char *errbuf,
          size_t errlen)
{
	const char *slash, *bn;
	size_t n = strlen(out_dir);

	if (n == 0) {
		tp_errf(errbuf, errlen,
		        "the path is empty; name the report directory, like ./report");
		return TP_INVALID_ARGUMENT;
	}
	if (n >= 4096 - 64) {
		tp_errf(errbuf, errlen, "longer than %d bytes", 4096 - 64);
		return TP_INVALID_ARGUMENT;
	}
	memcpy(out, out_dir, n + 1);
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	slash = strrchr(out, '/');
	bn = slash == NULL ? out : slash + 1;
	if (bn[0] == '\0' || strcmp(bn, ".") == 0 || strcmp(bn, "..") == 0) {
		tp_errf(errbuf, errlen,
		        "'%s' is not usable as a report directory: name a new directory, an empty "
		        "one or a previous report, like ./report",
		        out_dir);
		return TP_INVALID_ARGUMENT;
	}
	if (strlen(bn) >= 256 - 32) {
		tp_errf(errbuf, errlen, "'%s': its last component is longer than %d bytes", out_dir,
		        256 - 32 - 1);
		return TP_INVALID_ARGUMENT;
	}
	memcpy(base, bn, strlen(bn) + 1);
	if (slash == NULL) {
		memcpy(parent, ".", 2);
	} else {
		n = slash == out ? 1 : (size_t)(slash - out);
		memcpy(parent, out, n);
		parent[n] = '\0';
	}
	return TP_OK;
}

int
report_check_out(const char *out_dir, char *errbuf, size_t errlen)
{
	char out[4096], parent[4096], base[256];
	struct stat st;
	int rv;

	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (out_dir == NULL)
		out_dir = "";
	if ((rv = out_split(out_dir, out, parent, base, errbuf, errlen)) != TP_OK)
		return rv;
	if (target_check(out, errbuf, errlen) < 0)
		return TP_FAILED_PRECONDITION;
	/* The staging directory is made in the parent: it must be a directory we may write. */
	if (stat(parent, &st) != 0)
		; /* errno says why */
	else if (!S_ISDIR(st.st_mode))
		errno = ENOTDIR;
	else if (access(parent, W_OK | X_OK) == 0)
		return TP_OK;
	tp_errf(errbuf, errlen, "%s: cannot create it in %s: %s", out, parent, strerror(errno));
	return TP_FAILED_PRECONDITION;
}

static int
write_rendered(struct report_ctx *c, const char *name, enum attr_format f, char *errbuf,
               size_t errlen)
{
	char path[4200];
	FILE *fp;
	int rv;

	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	if ((fp = fopen(path, "w")) == NULL) {
		tp_errf(errbuf, errlen, "%s: %s", path, strerror(errno));
		return TP_INTERNAL;
	}
	rv = attr_render_attribute(fp, c->attr, f);
	if (fclose(fp) != 0 && rv == TP_OK)
		rv = TP_INTERNAL;
	if (rv == TP_RESOURCE_EXHAUSTED)
		tp_errf(errbuf, errlen, "%s: out of memory", name);
	else if (rv != TP_OK)
		tp_errf(errbuf, errlen, "%s: could not be written (status %d)", name, rv);
	return rv;
}

/* Deletes the data files and scripts the charts needed; the report keeps only its output. */
static void
sweep(struct report_ctx *c)
{
	static const char *const junk[] = { ".tsv", ".txt", ".gp", ".tmp", ".err" };
	DIR *d;
	struct dirent *de;
	size_t n, k, i;

	if ((d = opendir(c->dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
			k = strlen(junk[i]);
			if (n > k && strcmp(de->d_name + n - k, junk[i]) == 0) {
				unlinkat(dirfd(d), de->d_name, 0);
				break;
			}
		}
	}
	closedir(d);
}

/*
 * mkdtemp(3) with mkdir(2)'s mode 0777, so that the kernel applies the umask (or the
 * parent's default ACL) as for mkdir(1); mkdtemp's 0700 widened to 0755 ignored both.
 * path ends in "XXXXXX", which is replaced. 0, or -1 with errno.
 */
static int
stage_mkdir(char *path)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	size_t n = strlen(path), i;
	struct timespec ts;
	uint64_t x;
	int tries;

	if (n < 6 || strcmp(path + n - 6, "XXXXXX") != 0) {
		errno = EINVAL;
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	x = ((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 40) ^
	     (uint64_t)(uintptr_t)path) |
	    1;
	for (tries = 0; tries < 1000; tries++) {
		for (i = 0; i < 6; i++) {
			x ^= x << 13; /* xorshift64 */
			x ^= x >> 7;
			x ^= x << 17;
			path[n - 6 + i] = abc[x % (sizeof(abc) - 1)];
		}
		if (mkdir(path, 0777) == 0)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
	return -1;
}

/*
 * A report that replaces a directory (a previous report, or an empty one the user made)
 * gets no permission it lacked: a report made private stays private. Done last, as the
 * narrowed mode may not let us write.
 */
static int
stage_narrow(struct report_ctx *c, const char *out, char *errbuf, size_t errlen)
{
	struct stat so, sn;

	if (lstat(out, &so) != 0 || stat(c->dir, &sn) != 0) {
		tp_errf(errbuf, errlen, "%s: %s", out, strerror(errno));
		return TP_INTERNAL;
	}
	if ((sn.st_mode & 0777 & ~so.st_mode) == 0)
		return TP_OK;
	if (chmod(c->dir, (sn.st_mode & 07000) | (sn.st_mode & so.st_mode & 0777)) != 0) {
		tp_errf(errbuf, errlen, "%s: %s", c->dir, strerror(errno));
		return TP_INTERNAL;
	}
	return TP_OK;
}

/* Puts the finished directory in place of out, keeping the old one until that worked. */
static int
swap_in(struct report_ctx *c, const char *out, const char *parent, const char *base, int exists,
        char *errbuf, size_t errlen)
{
	char old[4200];

	if (!exists) {
		if (rename(c->dir, out) != 0)
			goto fail;
		return TP_OK;
	}
	if ((size_t)snprintf(old, sizeof(old), "%s/.%s.old-XXXXXX", parent, base) >= sizeof(old)) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	if (mkdtemp(old) == NULL)
		goto fail;
	/* rename(2) replaces the empty placeholder atomically. */
	if (rename(out, old) != 0) {
		rmdir(old);
		goto fail;
	}
	if (rename(c->dir, out) != 0) {
		int e = errno;

		rename(old, out);
		errno = e;
		goto fail;
	}
	flat_remove(old);
	return TP_OK;
fail:
	tp_errf(errbuf, errlen, "%s: %s", out, strerror(errno));
	return TP_INTERNAL;
}

int
report_write(const Touchpoint__V1__AttributeResponse *attr,
             const Touchpoint__V1__PathsResponse *paths, const struct report_options *o,
             char *errbuf, size_t errlen)
{
	struct report_ctx *c = NULL;
	char out[4096], parent[4096], base[256], path[4200], cherr[512] = "";
	size_t i;
	int rv, exists, chart_rv = TP_OK, made = 0;
	FILE *fp;

	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (attr == NULL || o == NULL || o->out_dir == NULL) {
		tp_errf(errbuf, errlen, "report: an attribution response and out_dir are required");
		return TP_INVALID_ARGUMENT;
	}
	if ((rv = out_split(o->out_dir, out, parent, base, cherr, sizeof(cherr))) != TP_OK) {
		tp_errf(errbuf, errlen, "out_dir: %s", cherr);
		return rv;
	}
	if ((exists = target_check(out, errbuf, errlen)) < 0)
		return TP_FAILED_PRECONDITION;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		tp_errf(errbuf, errlen, "report: out of memory");
		return TP_RESOURCE_EXHAUSTED;
	}
	c->attr = attr;
	c->paths = paths;
	c->o = o;
	if ((size_t)snprintf(c->dir, sizeof(c->dir), "%s/.%s.tmp-XXXXXX", parent, base) >=
	    sizeof(c->dir)) {
		tp_errf(errbuf, errlen, "out_dir: %s: name too long", out);
		rv = TP_INVALID_ARGUMENT;
		goto fail;
	}
	/* The user named out, not our staging directory: a parent that is missing or not
	 * writable is theirs to fix (EX_CANTCREAT), like an occupied target. */
	if (stage_mkdir(c->dir) != 0) {
		tp_errf(errbuf, errlen, "%s: cannot create it in %s: %s", out, parent,
		        strerror(errno));
		rv = TP_FAILED_PRECONDITION;
		goto fail;
	}
	made = 1;
	window_describe(c);
	if ((rv = report_grid_build(&c->main, attr->models, attr->n_models)) != TP_OK) {
		tp_errf(errbuf, errlen, "report: out of memory");
		goto fail;
	}
	if ((rv = write_rendered(c, "attribution.csv", ATTR_FORMAT_CSV, errbuf, errlen)) != TP_OK)
		goto fail;
	c->csv_ok = 1;
	if ((rv = write_rendered(c, "attribution.json", ATTR_FORMAT_JSON, errbuf, errlen)) != TP_OK)
		goto fail;
	c->json_ok = 1;

	/* Chart failures are reported but do not stop the report: CSV/JSON and tables stay. */
	chart_rv = report_charts(c, cherr, sizeof(cherr));
	if (chart_rv == TP_RESOURCE_EXHAUSTED) {
		tp_errf(errbuf, errlen, "%s", cherr);
		rv = chart_rv;
		goto fail;
	}

	snprintf(path, sizeof(path), "%s/index.html", c->dir);
	if ((fp = fopen(path, "w")) == NULL) {
		tp_errf(errbuf, errlen, "%s: %s", path, strerror(errno));
		rv = TP_INTERNAL;
		goto fail;
	}
	rv = report_html(c, fp);
	if (fclose(fp) != 0 || rv != TP_OK) {
		tp_errf(errbuf, errlen, "index.html: could not be written");
		rv = TP_INTERNAL;
		goto fail;
	}
	sweep(c);
	if (exists && (rv = stage_narrow(c, out, errbuf, errlen)) != TP_OK)
		goto fail;
	if ((rv = swap_in(c, out, parent, base, exists, errbuf, errlen)) != TP_OK)
		goto fail;
	report_charts_free(c);
	for (i = 0; i < c->nseg; i++)
		report_grid_free(&c->seg[i]);
	free(c->seg);
	free(c->seg_index);
	report_grid_free(&c->main);
	free(c);
	if (chart_rv != TP_OK)
		tp_errf(errbuf, errlen, "%s", cherr);
	return chart_rv;
fail:
	if (made) {
		chmod(c->dir, 0700); /* best effort, as flat_remove: narrowed, it may be r-x */
		flat_remove(c->dir);
	}
	report_charts_free(c);
	for (i = 0; i < c->nseg; i++)
		report_grid_free(&c->seg[i]);
	free(c->seg);
	free(c->seg_index);
	report_grid_free(&c->main);
	free(c);
	return rv;
}
