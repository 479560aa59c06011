#ifndef HERALD_COMMON_MEM_H
#define HERALD_COMMON_MEM_H

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

#endif
