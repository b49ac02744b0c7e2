/*
 * memtune: the C library's allocator settings for a long-running process that allocates
 * and frees large buffers over and over (message arenas, scan and path-table buffers).
 */
#ifndef TP_MEMTUNE_H
#define TP_MEMTUNE_H

#include <stdint.h>

/* Call once, before the first thread starts. Best effort: a refused setting is ignored. */
void memtune_init(void);

/*
 * Call now and then (from one thread) with a count that grows with the work done: 1 once it
 * has stood still for MEMTUNE_IDLE_S seconds, once per idle spell. The caller then frees
 * what it keeps for reuse and calls memtune_trim().
 */
#define MEMTUNE_IDLE_S 30
int memtune_idle(uint64_t work);

/* The memory the allocator keeps for reuse goes back to the kernel. */
void memtune_trim(void);

#endif /* TP_MEMTUNE_H */
