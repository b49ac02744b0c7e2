/*
 * rnd: the generator of the fuzz drivers (tests/fuzz/driver.c, tests/daemon/fuzz.c):
 * xorshift64*, so the same seed gives the same inputs on every machine.
 */
#ifndef TP_FUZZ_RND_H
#define TP_FUZZ_RND_H

#include <stddef.h>
#include <stdint.h>

static uint64_t fz_rng = 1;

/* splitmix64 of the seed: nearby seeds start far apart, and never at 0 */
static inline void
rnd_seed(uint64_t seed)
{
	uint64_t x = seed + 0x9e3779b97f4a7c15ULL;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	x ^= x >> 31;
	fz_rng = x != 0 ? x : 1;
}

static inline uint64_t
rnd(void)
{
	fz_rng ^= fz_rng >> 12;
	fz_rng ^= fz_rng << 25;
	fz_rng ^= fz_rng >> 27;
	return fz_rng * 0x2545f4914f6cdd1dULL;
}

static inline size_t
rnd_below(size_t n)
{
	return n == 0 ? 0 : (size_t)(rnd() % n);
}

#endif /* TP_FUZZ_RND_H */
