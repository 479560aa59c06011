/*
 * copy_threshold.c - copy or reference a shared frame into output evbuffers?
 *
 * Measures what queuing one shared frame (common/frame.h) in subscribers'
 * libevent output evbuffers costs, in heap bytes and CPU time, copied
 * (evbuffer_add) and referenced (evbuffer_add_reference + frame_cleanup),
 * for frames of 32 to 8192 bytes, to choose the one copy-or-reference
 * threshold. Run: bench/copy_threshold.sh (builds it into a temporary
 * directory, runs it on CPU 1 in under 60 s, writes bench/results/).
 *
 *   copy_threshold [Q]     Q: events queued per buffer in (a), default 20,000
 *
 * Each event is one new frame (frame_new + memset, as an encoder writes
 * it) appended to B = 16 evbuffers, as a fan-out to 16 subscribers does;
 * the creator's reference is dropped right after, so a copied frame is
 * freed at once and a referenced one when its last chain is released.
 *
 *   (a) backlog memory: Q events queued in each of the B buffers (fewer
 *       for large frames, so that a run stays under ~400 MiB), nothing
 *       written. glibc mallinfo2() in-use bytes (uordblks + hblkhd) after
 *       minus before, over Q x B: each subscriber's chains plus, for
 *       references, the shared frame once per event.
 *   (b) CPU time per delivery (CLOCK_THREAD_CPUTIME_ID), frame creation,
 *       append and release included: 4,096 events appended to the B
 *       buffers; every K events each buffer is written with evbuffer_write
 *       to an fd on /dev/null (which frees the chains and runs
 *       frame_cleanup) or emptied with evbuffer_drain. Median of 5
 *       repetitions after a warm-up. K = 16 (a burst queued while the
 *       socket was busy) in the main table; K = 1 (1,024 events, each
 *       written at once) in the detail, where the writev dominates.
 *   (c) a mostly idle subscriber: 4,096 evbuffers (evbuffer_new) given the
 *       same one frame, then the same second one: heap bytes per
 *       subscriber, its evbuffer included. The broker queues every frame
 *       in an evbuffer; the edge keeps a lone frame in c->pending and moves
 *       it into an evbuffer when a second one comes or a send is partial.
 *
 * malloc's trim and mmap thresholds are fixed high for the run (as glibc's
 * dynamic thresholds end up in a process that has freed a large block):
 * with the defaults, page faults of heap given back and grown again
 * dominate and depend on the order of the runs (a burst of 16 x 16
 * 1 KiB reference chains freed at the top of the heap is trimmed each time;
 * copied 8 KiB frames grow chains past 128 KiB, which are mmapped).
 *
 * Prints three Markdown tables and a recommendation: the largest size up to
 * which copying costs no more than referencing in (a), (b) (within 5%) and
 * (c) with one frame, and what copying trades off above it. Not part of
 * the CMake build.
 */
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "common/frame.h"

#define NBUF       16           /* evbuffers per event: the fan-out's subscribers */
#define Q_MAX      20000        /* events queued per buffer in (a) */
#define Q_MIN      1000         /* the least, for large frames under MEM_CAP */
#define MEM_CAP    (400u << 20) /* rough bound on the heap one (a) run may use */
#define EVENTS     4096         /* events per timed repetition in (b) */
#define REPS       5            /* timed repetitions; the median is reported */
#define BURST      16           /* K of the main table */
#define IDLE_N     4096         /* subscribers in (c) */
#define TIME_SLACK 1.05         /* copy "no worse" in time: within 5% of reference */
#define MEM_SLACK  1.01         /* and in memory: within 1% */

enum strategy { COPY, REF };

static const size_t sizes[] = {32, 64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 4096, 8192};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

struct row {
    size_t len;
    unsigned q;
    double mem[2];      /* (a) bytes per queued frame */
    double burst[2];    /* (b) ns per delivery, K = BURST, evbuffer_write */
    double burst_dr[2]; /* (b) K = BURST, evbuffer_drain */
    double once[2];     /* (b) K = 1, evbuffer_write */
    double idle[2][2];  /* (c) [frames - 1][strategy] bytes per subscriber */
};

static void die(const char *what)
{
    fprintf(stderr, "copy_threshold: %s\n", what);
    exit(1);
}

static size_t heap_used(void)
{
    struct mallinfo2 m = mallinfo2();

    return m.uordblks + m.hblkhd;
}

static double cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One event's frame, written as an encoder would write it. */
static struct frame *event_frame(size_t len, unsigned seq)
{
    struct frame *f = frame_new(len);

    memset(f->data, 'a' + (int)(seq % 26), len);
    return f;
}

/* Queues f in out the given way; a reference takes one count of f. */
static void add_frame(struct evbuffer *out, struct frame *f, enum strategy s)
{
    if (s == COPY) {
        if (evbuffer_add(out, f->data, f->len) < 0)
            die("evbuffer_add failed");
        return;
    }
    frame_ref(f);
    if (evbuffer_add_reference(out, f->data, f->len, frame_cleanup, f) < 0)
        die("evbuffer_add_reference failed");
}

/* Empties out: written to fd (on /dev/null), or drained when fd < 0. */
static void flush(struct evbuffer *out, int fd)
{
    if (fd < 0) {
        evbuffer_drain(out, evbuffer_get_length(out));
        return;
    }
    while (evbuffer_get_length(out) > 0)
        if (evbuffer_write(out, fd) < 0)
            die("evbuffer_write failed");
}

static void check_no_frames(void)
{
    if (frame_live() != 0)
        die("frames left alive (a reference was not released)");
}

/* (a): heap bytes per queued frame with q events queued in NBUF buffers. */
static double backlog_bytes(size_t len, enum strategy s, unsigned q)
{
    struct evbuffer *out[NBUF];
    size_t before, after;

    for (int i = 0; i < NBUF; i++)
        if (!(out[i] = evbuffer_new()))
            die("evbuffer_new failed");
    before = heap_used();
    for (unsigned e = 0; e < q; e++) {
        struct frame *f = event_frame(len, e);

        for (int i = 0; i < NBUF; i++)
            add_frame(out[i], f, s);
        frame_unref(&f);
    }
    after = heap_used();
    for (int i = 0; i < NBUF; i++)
        evbuffer_free(out[i]);
    check_no_frames();
    return ((double)after - (double)before) / ((double)q * NBUF);
}

/* (b): one repetition, ns per delivery; each buffer emptied every k events. */
static double delivery_ns_once(size_t len, enum strategy s, unsigned k, int fd)
{
    struct evbuffer *out[NBUF];
    unsigned events = k == 1 ? EVENTS / 4 : EVENTS;
    double t0, t1;

    for (int i = 0; i < NBUF; i++)
        if (!(out[i] = evbuffer_new()))
            die("evbuffer_new failed");
    t0 = cpu_ns();
    for (unsigned e = 0; e < events; e++) {
        struct frame *f = event_frame(len, e);

        for (int i = 0; i < NBUF; i++)
            add_frame(out[i], f, s);
        frame_unref(&f);
        if ((e + 1) % k == 0)
            for (int i = 0; i < NBUF; i++)
                flush(out[i], fd);
    }
    for (int i = 0; i < NBUF; i++)
        flush(out[i], fd);
    t1 = cpu_ns();
    for (int i = 0; i < NBUF; i++)
        evbuffer_free(out[i]);
    check_no_frames();
    return (t1 - t0) / ((double)events * NBUF);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* (b): median of REPS repetitions after one warm-up. */
static double delivery_ns(size_t len, enum strategy s, unsigned k, int fd)
{
    double t[REPS];

    delivery_ns_once(len, s, k, fd);
    for (int r = 0; r < REPS; r++)
        t[r] = delivery_ns_once(len, s, k, fd);
    qsort(t, REPS, sizeof(t[0]), cmp_double);
    return t[REPS / 2];
}

/* (c): bytes per idle subscriber (of n) holding the same one, then two frames. */
static void idle_bytes(size_t len, enum strategy s, int n, double out_bytes[2])
{
    struct evbuffer **out = malloc((size_t)n * sizeof(*out));
    size_t before;

    if (!out)
        die("out of memory");
    before = heap_used();
    for (int i = 0; i < n; i++)
        if (!(out[i] = evbuffer_new()))
            die("evbuffer_new failed");
    for (unsigned k = 0; k < 2; k++) {
        struct frame *f = event_frame(len, k);

        for (int i = 0; i < n; i++)
            add_frame(out[i], f, s);
        frame_unref(&f);
        out_bytes[k] = ((double)heap_used() - (double)before) / n;
    }
    for (int i = 0; i < n; i++)
        evbuffer_free(out[i]);
    free(out);
    check_no_frames();
}

/*
 * The largest frame (to 8 bytes) that, copied alone into a new evbuffer,
 * costs no more than a 32-byte one: what libevent's first chain holds.
 */
static size_t lone_copy_fit(void)
{
    double small[2], b[2];
    size_t fit = 32;

    idle_bytes(32, COPY, 256, small);
    for (size_t len = 512; len <= 1024; len += 8) {
        idle_bytes(len, COPY, 256, b);
        if (b[0] > small[0] * MEM_SLACK)
            break;
        fit = len;
    }
    return fit;
}

static const char *cheaper(double copy, double ref, double slack)
{
    if (copy <= ref * slack && ref <= copy * slack)
        return "tie";
    return copy < ref ? "copy" : "ref";
}

/* Copying costs no more than referencing: in (a), (b), (c) with one or two frames. */
static int ok_backlog(const struct row *r)
{
    return r->mem[COPY] <= r->mem[REF] * MEM_SLACK;
}

static int ok_time(const struct row *r)
{
    return r->burst[COPY] <= r->burst[REF] * TIME_SLACK;
}

static int ok_idle1(const struct row *r)
{
    return r->idle[0][COPY] <= r->idle[0][REF] * MEM_SLACK;
}

static int ok_idle2(const struct row *r)
{
    return r->idle[1][COPY] <= r->idle[1][REF] * MEM_SLACK;
}

static int ok_a_b(const struct row *r)
{
    return ok_backlog(r) && ok_time(r);
}

static int ok_a_b_c1(const struct row *r)
{
    return ok_a_b(r) && ok_idle1(r);
}

/* Largest size such that ok() holds for it and every smaller size; 0: none. */
static size_t largest_ok(const struct row *rows, int (*ok)(const struct row *))
{
    size_t best = 0;

    for (size_t i = 0; i < NSIZES && ok(&rows[i]); i++)
        best = rows[i].len;
    return best;
}

static void print_tables(const struct row *rows)
{
    printf("| size | copy B/frame | ref B/frame | copy ns | ref ns | cheaper (memory) | "
           "cheaper (time) |\n");
    printf("|---:|---:|---:|---:|---:|---|---|\n");
    for (size_t i = 0; i < NSIZES; i++) {
        const struct row *r = &rows[i];

        printf("| %zu | %.0f | %.0f | %.0f | %.0f | %s | %s |\n", r->len, r->mem[COPY], r->mem[REF],
               r->burst[COPY], r->burst[REF], cheaper(r->mem[COPY], r->mem[REF], MEM_SLACK),
               cheaper(r->burst[COPY], r->burst[REF], TIME_SLACK));
    }
    printf("\nB/frame: (a), heap bytes per queued frame, %d buffers x Q events queued "
           "(Q per size: ",
           NBUF);
    for (size_t i = 0; i < NSIZES; i++)
        printf("%s%zu: %u", i ? ", " : "", rows[i].len, rows[i].q);
    printf("). ns: (b), CPU ns per delivery, frame creation + append + evbuffer_write to "
           "/dev/null every %d events, median of %d. \"tie\": within %.0f%% (memory), "
           "%.0f%% (time).\n\n",
           BURST, REPS, (MEM_SLACK - 1) * 100, (TIME_SLACK - 1) * 100);

    printf("Time detail, CPU ns per delivery (median of %d): each buffer written every "
           "K events, or drained (evbuffer_drain, no syscall). At K = 1 the writev, one per "
           "delivery, dominates both.\n\n",
           REPS);
    printf("| size | copy K=1 write | ref K=1 write | copy K=%d drain | ref K=%d drain |\n", BURST,
           BURST);
    printf("|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < NSIZES; i++) {
        const struct row *r = &rows[i];

        printf("| %zu | %.0f | %.0f | %.0f | %.0f |\n", r->len, r->once[COPY], r->once[REF],
               r->burst_dr[COPY], r->burst_dr[REF]);
    }

    printf("\nIdle subscriber (c): heap bytes per subscriber, its evbuffer included, %d "
           "subscribers sharing each frame.\n\n",
           IDLE_N);
    printf("| size | copy, 1 frame | ref, 1 frame | copy, 2 frames | ref, 2 frames | "
           "cheaper (1) | cheaper (2) |\n");
    printf("|---:|---:|---:|---:|---:|---|---|\n");
    for (size_t i = 0; i < NSIZES; i++) {
        const struct row *r = &rows[i];

        printf("| %zu | %.0f | %.0f | %.0f | %.0f | %s | %s |\n", r->len, r->idle[0][COPY],
               r->idle[0][REF], r->idle[1][COPY], r->idle[1][REF],
               cheaper(r->idle[0][COPY], r->idle[0][REF], MEM_SLACK),
               cheaper(r->idle[1][COPY], r->idle[1][REF], MEM_SLACK));
    }
}

static void print_recommendation(const struct row *rows, size_t fit)
{
    size_t rec = largest_ok(rows, ok_a_b_c1), two = largest_ok(rows, ok_idle2);

    printf("\nRecommendation: copy frames of at most %zu bytes, reference larger ones. "
           "Copying costs no more than referencing in backlog memory (a) up to %zu, in time "
           "(b) up to %zu, in a buffer holding one frame (c) up to %zu (libevent's first "
           "chain takes a lone copy of up to %zu bytes, a larger one the next power of two "
           "above it).",
           rec, largest_ok(rows, ok_backlog), largest_ok(rows, ok_time), largest_ok(rows, ok_idle1),
           fit);
    for (size_t i = 0; i < NSIZES && rows[i].len <= rec; i++)
        if (!ok_idle2(&rows[i])) {
            printf(" Trade-off: a buffer holding exactly two frames costs more copied "
                   "above %zu bytes (%zu: %.0f B copied, %.0f B referenced, per subscriber; "
                   "the second copy overflows the first chain and libevent adds one of twice "
                   "that size).",
                   two, rows[i].len, rows[i].idle[1][COPY], rows[i].idle[1][REF]);
            break;
        }
    printf("\n");
}

int main(int argc, char **argv)
{
    struct row rows[NSIZES];
    unsigned q_max = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : Q_MAX;
    int null_fd = open("/dev/null", O_WRONLY);

    if (null_fd < 0)
        die("cannot open /dev/null");
    if (q_max == 0)
        die("usage: copy_threshold [Q]");
    if (!mallopt(M_MMAP_THRESHOLD, 32 << 20) || !mallopt(M_TRIM_THRESHOLD, 1 << 30))
        die("mallopt failed");
    for (size_t i = 0; i < NSIZES; i++) {
        struct row *r = &rows[i];
        size_t cap = MEM_CAP / ((size_t)NBUF * (sizes[i] + 1100));

        memset(r, 0, sizeof(*r));
        r->len = sizes[i];
        r->q = cap < q_max ? (unsigned)(cap > Q_MIN ? cap : Q_MIN) : q_max;
        for (int s = COPY; s <= REF; s++) {
            double idle[2];

            r->mem[s] = backlog_bytes(r->len, (enum strategy)s, r->q);
            r->burst[s] = delivery_ns(r->len, (enum strategy)s, BURST, null_fd);
            r->burst_dr[s] = delivery_ns(r->len, (enum strategy)s, BURST, -1);
            r->once[s] = delivery_ns(r->len, (enum strategy)s, 1, null_fd);
            idle_bytes(r->len, (enum strategy)s, IDLE_N, idle);
            r->idle[0][s] = idle[0];
            r->idle[1][s] = idle[1];
        }
        fprintf(stderr, "copy_threshold: %zu bytes done\n", r->len);
    }
    close(null_fd);
    print_tables(rows);
    print_recommendation(rows, lone_copy_fit());
    return 0;
}
