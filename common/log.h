#ifndef HERALD_COMMON_LOG_H
#define HERALD_COMMON_LOG_H

#include <stdbool.h>
#include <stdint.h>

/*
 * key=value logging, one write(2) per line to stderr:
 *   ts=2026-11-22T02:16:09.123Z level=warn proc=edge worker=2 event=slow_consumer conn=811
 * queued=1048576 The level is checked before arguments are formatted (the macros below). Never log
 * payloads or secrets; cut topics with LOG_TOPIC_MAX.
 */

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
};

#define LOG_TOPIC_MAX 128

/* Sets the process name (borrowed: must be a string literal) and the level. */
void log_init(const char *proc, enum log_level level);

/* Sets the level; thread-safe to read afterwards. */
void log_set_level(enum log_level level);

/* Sets this thread's worker id, printed as worker=N; -1 (default) omits it. */
void log_set_worker(int worker);

/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int log_level_parse(const char *name, enum log_level *out);

bool log_enabled(enum log_level level);

/*
 * Writes one line: ts, level, proc, worker, event=<event>, then fmt's
 * expansion (which should itself be space-separated key=value pairs, or "").
 */
void log_write(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A rate limit for lines a peer can trigger at will (failed AUTHs, accept
 * errors): the first occurrence in an interval is logged, later ones are
 * only counted until the interval has passed, and the next line carries
 * the count (count=N: occurrences since the previous line, this one
 * included). Zero-initialised; one per call site, used by one thread.
 */
struct log_rate {
    uint64_t next_ms; /* earliest time of the next line */
    uint64_t count;   /* occurrences not reported yet */
};

/*
 * Counts one occurrence at now_ms. Returns the count to print when a line
 * is due (then the count restarts), or 0 when this one is only counted.
 */
uint64_t log_rate_tick(struct log_rate *r, uint64_t now_ms, uint64_t interval_ms);

#define LOG_AT(lvl, event, ...)                                                                    \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write(lvl, event, __VA_ARGS__);                                                    \
    } while (0)

#define log_debug(event, ...) LOG_AT(LOG_LEVEL_DEBUG, event, __VA_ARGS__)
#define log_info(event, ...)  LOG_AT(LOG_LEVEL_INFO, event, __VA_ARGS__)
#define log_warn(event, ...)  LOG_AT(LOG_LEVEL_WARN, event, __VA_ARGS__)
#define log_error(event, ...) LOG_AT(LOG_LEVEL_ERROR, event, __VA_ARGS__)

#endif
