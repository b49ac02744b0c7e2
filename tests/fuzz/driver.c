/*
 * driver: a deterministic stand-in for libFuzzer's main, so the fuzz targets run as ordinary
 * tests: every seed once, then RUNS mutations of them chosen by a seeded xorshift generator.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rnd.h"

#define FD_MAX_INPUT (64 * 1024) /* bytes of one input, seed or mutant */
#define FD_MAX_SEEDS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seed {
	uint8_t *data;
	size_t len;
};

static struct seed seeds[FD_MAX_SEEDS];
static size_t nseeds;
static const char *last_path; /* $FUZZ_LAST: each input is saved there before it runs */

static void
die(const char *what, const char *arg)
{
	fprintf(stderr, "fuzz driver: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
	exit(2);
}

static void
add_seed_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	size_t n;

	if (f == NULL)
		die(strerror(errno), path);
	if (nseeds == FD_MAX_SEEDS)
		die("too many seed files", path);
	if ((b = malloc(FD_MAX_INPUT)) == NULL)
		die("out of memory", NULL);
	n = fread(b, 1, FD_MAX_INPUT, f); /* a longer file is cut to what one input holds */
	if (ferror(f))
		die("cannot read", path);
	fclose(f);
	seeds[nseeds].data = b;
	seeds[nseeds++].len = n;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's regular files, in name order so that the runs do not depend on readdir. */
static void
add_seed_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL, path[4096];
	size_t n = 0, cap = 0, i;
	struct stat st;

	if (d == NULL)
		die(strerror(errno), dir);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*nn));

			if (nn == NULL)
				die("out of memory", NULL);
			names = nn;
		}
		if ((names[n++] = strdup(de->d_name)) == NULL)
			die("out of memory", NULL);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; i < n; i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= sizeof(path))
			die("path too long", names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
			add_seed_file(path);
		free(names[i]);
	}
	free(names);
}

/* One input, copied to a buffer of exactly its size so that ASan sees any overread. */
static void
run_one(const uint8_t *data, size_t len)
{
	uint8_t *b = malloc(len > 0 ? len : 1);

	if (b == NULL)
		die("out of memory", NULL);
	if (len > 0)
		memcpy(b, data, len);
	if (last_path != NULL) {
		FILE *f = fopen(last_path, "wb");

		if (f == NULL || fwrite(b, 1, len, f) != len || fclose(f) != 0)
			die("cannot write $FUZZ_LAST", last_path);
	}
	LLVMFuzzerTestOneInput(b, len);
	free(b);
}

/* Bytes that mean something to one of the parsers. */
static const uint8_t interesting[] = { 0,    0xff, '\n', ',', '"', '\\', '{', '>',
	                               '\r', ' ',  '=',  '#', '}', '[',  ':', 0x80 };

/* Opens a gap of k bytes at pos (pos <= len, len + k <= FD_MAX_INPUT). */
static void
gap(uint8_t *b, size_t *len, size_t pos, size_t k)
{
	size_t tail = pos < *len ? *len - pos : 0;

	if (pos > *len || k > FD_MAX_INPUT - *len)
		abort();
	memmove(b + pos + k, b + pos, tail);
	*len += k;
}

static void
mutate(uint8_t *b, size_t *len)
{
	size_t pos, k, from, room = FD_MAX_INPUT - *len;
	const struct seed *o;

	switch (rnd_below(9)) {
	case 0: /* flip a bit */
		if (*len > 0)
			b[rnd_below(*len)] ^= (uint8_t)(1u << rnd_below(8));
		break;
	case 1: /* a byte the parsers care about */
		if (*len > 0)
			b[rnd_below(*len)] = interesting[rnd_below(sizeof(interesting))];
		break;
	case 2: /* a random byte */
		if (*len > 0)
			b[rnd_below(*len)] = (uint8_t)rnd();
		break;
	case 3: /* insert random or interesting bytes */
		k = 1 + rnd_below(8);
		if (k > room)
			break;
		pos = rnd_below(*len + 1);
		gap(b, len, pos, k);
		for (from = 0; from < k; from++)
			b[pos + from] = rnd() & 1 ? (uint8_t)rnd()
			                          : interesting[rnd_below(sizeof(interesting))];
		break;
	case 4: /* delete a range */
		if (*len == 0)
			break;
		pos = rnd_below(*len);
		k = 1 + rnd_below(*len - pos < 16 ? *len - pos : 16);
		memmove(b + pos, b + pos + k, *len - pos - k);
		*len -= k;
		break;
	case 5: /* duplicate a range somewhere else */
		if (*len == 0)
			break;
		from = rnd_below(*len);
		k = 1 + rnd_below(*len - from < 64 ? *len - from : 64);
		if (k > room)
			break;
		pos = rnd_below(*len + 1);
		gap(b, len, pos, k);
		/* the source may have moved up with the gap */
		memmove(b + pos, b + (from >= pos ? from + k : from), k);
		break;
	case 6: /* splice: this input's head, another seed's tail */
		o = &seeds[rnd_below(nseeds)];
		pos = rnd_below(*len + 1);
		from = rnd_below(o->len + 1);
		k = o->len - from;
		if (pos + k > FD_MAX_INPUT)
			k = FD_MAX_INPUT - pos;
		memcpy(b + pos, o->data + from, k);
		*len = pos + k;
		break;
	case 7: /* truncate */
		*len = rnd_below(*len + 1);
		break;
	default: /* repeat a short range many times: long fields, deep nesting */
		if (*len == 0)
			break;
		from = rnd_below(*len);
		k = 1 + rnd_below(*len - from < 4 ? *len - from : 4);
		for (pos = 1 + rnd_below(256); pos > 0 && k <= FD_MAX_INPUT - *len; pos--) {
			gap(b, len, from, k);
			memmove(b + from, b + from + k, k);
		}
		break;
	}
}

int
main(int argc, char **argv)
{
	unsigned long long runs = 20000, seed = 1, i;
	uint8_t *b;
	size_t len, n;
	int a;

	for (a = 1; a < argc && argv[a][0] == '-' && argv[a][1] != '\0'; a++) {
		char *end;

		if (a + 1 >= argc || (strcmp(argv[a], "-n") != 0 && strcmp(argv[a], "-s") != 0))
			die("usage: fuzz_NAME [-n RUNS] [-s SEED] [CORPUS_DIR_OR_FILE...]", NULL);
		errno = 0;
		*(argv[a][1] == 'n' ? &runs : &seed) = strtoull(argv[a + 1], &end, 0);
		if (errno != 0 || *end != '\0' || end == argv[a + 1])
			die("not a number", argv[a + 1]);
		a++;
	}
	for (; a < argc; a++) {
		struct stat st;

		if (stat(argv[a], &st) != 0)
			die(strerror(errno), argv[a]);
		if (S_ISDIR(st.st_mode))
			add_seed_dir(argv[a]);
		else
			add_seed_file(argv[a]);
	}
	last_path = getenv("FUZZ_LAST");
	if (last_path != NULL && last_path[0] == '\0')
		last_path = NULL;
	rnd_seed(seed);

	for (i = 0; i < nseeds; i++)
		run_one(seeds[i].data, seeds[i].len);
	if ((b = malloc(FD_MAX_INPUT)) == NULL)
		die("out of memory", NULL);
	for (i = 0; i < runs; i++) {
		len = 0;
		if (nseeds > 0) {
			const struct seed *s = &seeds[rnd_below(nseeds)];

			memcpy(b, s->data, s->len);
			len = s->len;
		}
		for (n = 1 + rnd_below(4); n > 0; n--)
			mutate(b, &len);
		run_one(b, len);
	}
	free(b);
	for (i = 0; i < nseeds; i++)
		free(seeds[i].data);
	printf("%s: %zu seeds, %llu mutated runs, seed %llu\n", argv[0], nseeds, runs, seed);
	return 0;
}
