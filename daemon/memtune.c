/*
 * memtune: glibc's malloc keeps the memory it is given back while the daemon is busy,
 * instead of returning it to the kernel at every free and faulting it in again at the
 * next malloc; an idle daemon gives it back.
 */
#include "memtune.h"

#include <malloc.h>
#include <time.h>

/*
 * By default glibc serves blocks from 128 KiB up (a 1000-event batch's protobuf arena and
 * NNG message are 150–400 KiB) with a fresh mmap each, and trims a heap's free top beyond
 * 128 KiB: every such block costs a page fault per 4 KiB page when it is touched. On the
 * VMs we measured a fault costs ≈ 12 µs (docs/BENCHMARKS.md, "Session 7"): at 300 k events/s
 * NNG's threads spent a quarter of their CPU in faults, and a scan's buffers (alias forest,
 * stash, path tables) cost more to fault in than to fill. Blocks up to 32 MiB (the largest
 * glibc allows) now come from the heaps, and a heap keeps up to 512 MiB free at its top, so
 * the daemon's RSS stays near its working peak until memtune_idle() hands it back.
 */
#define MEMTUNE_MMAP_MAX (32 << 20)
#define MEMTUNE_TRIM     (512 << 20)

void
memtune_init(void)
{
	/* mallopt returns 0 when it refuses: the defaults stay, nothing else depends on it */
	(void)mallopt(M_MMAP_THRESHOLD, MEMTUNE_MMAP_MAX);
	(void)mallopt(M_TRIM_THRESHOLD, MEMTUNE_TRIM);
}

int
memtune_idle(uint64_t work)
{
	static uint64_t last_work;
	static time_t since;
	static int trimmed = 1; /* nothing to give back before any work */
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	if (work != last_work) {
		last_work = work;
		since = ts.tv_sec;
		trimmed = 0;
		return 0;
	}
	if (!trimmed && ts.tv_sec - since >= MEMTUNE_IDLE_S) {
		trimmed = 1;
		return 1;
	}
	return 0;
}

void
memtune_trim(void)
{
	(void)malloc_trim(0); /* 1 if it released memory: either way, done */
}
