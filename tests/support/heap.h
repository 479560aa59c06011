#ifndef HERALD_TESTS_SUPPORT_HEAP_H
#define HERALD_TESTS_SUPPORT_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The bytes this process holds on the heap, exact in every build, for
 * suites that check memory is released (a count of 0 left over) or what a
 * structure costs. A suite that uses heap_bytes() calls heap_init(argv)
 * first thing in main().
 *
 *   Under ASan (make test's build) the sanitizer's allocator answers: the
 *   bytes requested and not yet freed.
 *   Otherwise glibc's mallinfo2(): the malloc chunks in use, arena and
 *   mmap'ed (a request rounded up to 16 bytes plus an 8-byte header, 32 at
 *   least). glibc keeps up to 7 freed chunks per size in a per-thread cache
 *   (tcache) that mallinfo2 still counts as in use, so a free would not show;
 *   the cache can only be turned off at start-up (the tunable
 *   glibc.malloc.tcache_count=0), so heap_init() re-executes the test with
 *   it set when a free does not show. Fast-bin chunks are counted free.
 *
 * heap_init() fails the program (exit 1) when even then a free does not
 * show: the memory checks must never pass because the counter is blind.
 */

#if defined(__SANITIZE_ADDRESS__)
#define HEAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HEAP_ASAN 1
#endif
#endif

#ifdef HEAP_ASAN
/* From <sanitizer/allocator_interface.h>, which gcc does not install. */
size_t __sanitizer_get_current_allocated_bytes(void);
#elif defined(__GLIBC__)
#include <malloc.h>
#else
#error "tests/support/heap.h needs ASan or glibc's mallinfo2"
#endif

#define HEAP_TUNABLE "glibc.malloc.tcache_count=0"

/* Heap bytes in use now (see above for what a byte is in each build). */
static inline size_t heap_bytes(void)
{
#ifdef HEAP_ASAN
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();

    return mi.uordblks + mi.hblkhd;
#endif
}

/* True when one malloc shows in heap_bytes() and its free takes it back out. */
static inline bool heap_frees_show(void)
{
    /* volatile: the compiler may not drop an unused malloc/free pair. */
    void *volatile p = malloc(200);
    size_t before, during;

    free(p); /* the first malloc sets the arena up: counted from there on */
    before = heap_bytes();
    p = malloc(200);
    during = heap_bytes();

    free(p);
    return during >= before + 200 && heap_bytes() == before;
}

/* Makes heap_bytes() exact for the rest of the program, or exits (see above). */
static inline void heap_init(char **argv)
{
    const char *old;
    char *tunables;
    size_t n;

    if (heap_frees_show())
        return;
    old = getenv("GLIBC_TUNABLES");
    if (old && strstr(old, HEAP_TUNABLE)) {
        fprintf(stderr, "heap_init: frees do not show in heap_bytes() even with " HEAP_TUNABLE
                        ": the memory checks cannot be trusted\n");
        exit(1);
    }
    n = (old ? strlen(old) + 1 : 0) + sizeof(HEAP_TUNABLE);
    tunables = malloc(n);
    snprintf(tunables, n, "%s%s" HEAP_TUNABLE, old ? old : "", old ? ":" : "");
    setenv("GLIBC_TUNABLES", tunables, 1);
    free(tunables);
    execv("/proc/self/exe", argv);
    perror("heap_init: execv /proc/self/exe");
    exit(1);
}

#endif
