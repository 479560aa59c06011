/*
 * log.c - single-line key=value logging to stderr.
 *
 * Each line is formatted into a stack buffer and written with one write(2),
 * so lines from several worker threads never interleave. The level is a
 * process-wide atomic read before any formatting (see the macros in log.h);
 * the worker id is thread-local. Lines longer than the buffer are cut and
 * end with "...". Rejected: stdio (its locking and buffering would split or
 * delay lines at exit).
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static const char *log_proc = "herald";
static _Atomic int log_level = LOG_LEVEL_INFO;
static _Thread_local int log_worker = -1;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *proc, enum log_level level)
{
    log_proc = proc;
    atomic_store(&log_level, (int)level);
}

void log_set_level(enum log_level level)
{
    atomic_store(&log_level, (int)level);
}

void log_set_worker(int worker)
{
    log_worker = worker;
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

bool log_enabled(enum log_level level)
{
    return (int)level >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

static size_t prefix(char *buf, size_t cap, enum log_level level, const char *event)
{
    struct timespec ts;
    struct tm tm;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if (log_worker >= 0)
        n = snprintf(buf, cap,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s proc=%s worker=%d event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], log_proc, log_worker, event);
    else
        n = snprintf(buf, cap, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s proc=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], log_proc, event);
    return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

void log_write(enum log_level level, const char *event, const char *fmt, ...)
{
    char buf[LOG_LINE_MAX];
    size_t len = prefix(buf, sizeof(buf), level, event);
    va_list ap;
    int n;

    if (fmt[0] != '\0' && len + 1 < sizeof(buf)) {
        buf[len++] = ' ';
        va_start(ap, fmt);
        n = vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
        va_end(ap);
        if (n > 0)
            len += (size_t)n;
    }
    if (len >= sizeof(buf) - 1) {
        /* Cut: leave room for the ellipsis and the newline. */
        len = sizeof(buf) - 5;
        memcpy(buf + len, "...", 3);
        len += 3;
    }
    buf[len++] = '\n';
    /* One write so concurrent lines never interleave; a short write to a
     * closed stderr is not worth retrying. */
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w;
}

uint64_t log_rate_tick(struct log_rate *r, uint64_t now_ms, uint64_t interval_ms)
{
    uint64_t n;

    r->count++;
    if (now_ms < r->next_ms)
        return 0;
    n = r->count;
    r->count = 0;
    r->next_ms = now_ms + interval_ms;
    return n;
}
