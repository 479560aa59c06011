#ifndef HERALD_COMMON_MEM_H
#define HERALD_COMMON_MEM_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Allocation that never returns NULL: on failure it logs event=oom and
 * aborts, so callers do not check. Sizes a peer controls must be checked
 * against a configured limit *before* calling these.
 */

/* Returns new memory of n bytes (n may be 0: returns a unique pointer). */
void *mem_alloc(size_t n);

/* Returns n*m zeroed bytes; aborts on overflow of n*m. */
void *mem_calloc(size_t n, size_t m);

/* Takes p (may be NULL), returns it resized to n bytes. */
void *mem_realloc(void *p, size_t n);

/* Returns a new NUL-terminated copy of s. */
char *mem_strdup(const char *s);

/* Returns a new NUL-terminated copy of the first n bytes of s. */
char *mem_strndup(const char *s, size_t n);

/* Takes p (may be NULL). */
void mem_free(void *p);

/*
 * Gives freed heap memory back to the kernel after a peak has passed.
 * now: the current size of what peers made this process hold (the
 * subscription tries, say); *peak (caller-owned, starts at 0) is its
 * high-water mark since the last trim. When now has fallen min_drop or
 * more below the peak, the allocator's free pages are returned
 * (malloc_trim) and the peak restarts at now. Returns true when it
 * trimmed. Cheap otherwise: call it from a periodic sweep.
 */
bool mem_trim_after_peak(size_t now, size_t *peak, size_t min_drop);

#endif
