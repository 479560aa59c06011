/*
 * mem.c - allocation that never fails from the caller's point of view.
 *
 * Herald's sizes are bounded by configuration before anything is
 * allocated, so running out of memory is not a peer's doing: it is logged
 * once and the process aborts, which keeps every call site free of
 * NULL checks (Redis's zmalloc makes the same choice).
 */
#include "common/mem.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

__attribute__((noreturn)) static void oom(size_t n)
{
    log_error("oom", "bytes=%zu", n);
    abort();
}

void *mem_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p)
        oom(n);
    return p;
}

void *mem_calloc(size_t n, size_t m)
{
    void *p;

    if (m && n > SIZE_MAX / m)
        oom(SIZE_MAX);
    p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        oom(n * m);
    return p;
}

void *mem_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (!q)
        oom(n);
    return q;
}

char *mem_strndup(const char *s, size_t n)
{
    char *d = mem_alloc(n + 1);

    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *mem_strdup(const char *s)
{
    return mem_strndup(s, strlen(s));
}

void mem_free(void *p)
{
    free(p);
}

/*
 * glibc keeps freed memory for reuse and returns only the top of a heap to
 * the kernel; after an attacker's 100,000 patterns are unsubscribed, their
 * nodes' pages are free but still resident (measured: the edge stayed at
 * 115 MB, 11 MB after malloc_trim). Trimming on every sweep would walk the
 * allocator's bins each second for nothing; after a drop from a peak it
 * runs once per spike.
 */
bool mem_trim_after_peak(size_t now, size_t *peak, size_t min_drop)
{
    if (now > *peak)
        *peak = now;
    if (*peak - now < min_drop)
        return false;
    malloc_trim(0);
    *peak = now;
    return true;
}
