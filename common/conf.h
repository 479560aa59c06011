#ifndef HERALD_COMMON_CONF_H
#define HERALD_COMMON_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Redis-style configuration driven by one typed table per process.
 *
 *   herald-broker [file] [--directive value]...
 *
 * A file holds `directive value` lines; `#` starts a comment (outside
 * quotes), blank lines are ignored, a value may be double-quoted. A
 * directive given twice: the last one wins, except a CONF_LIST one, which
 * is repeatable. Command-line `--directive value`
 * pairs are applied after the file. Unknown directives, missing values and
 * bad values stop start-up with an error naming file and line (or
 * "command line") and the directive.
 */

enum conf_type {
    CONF_INT,      /* int64_t: decimal integer within [min, max] */
    CONF_SIZE,     /* size_t: bytes, suffix b/kb/mb/gb (1024-based, case-insensitive) */
    CONF_TIME_MS,  /* int64_t: milliseconds; suffix ms/s/m/h; a bare number means ms */
    CONF_BOOL,     /* bool: yes/no, true/false, on/off, 1/0 */
    CONF_STRING,   /* char *: owned copy, NULL when the default is NULL */
    CONF_LOGLEVEL, /* enum log_level: debug/info/warn/error */
    /* char *: repeatable; each occurrence's value (in a file, the rest of the
     * line up to a comment, so it may hold spaces unquoted) is appended as one
     * line ('\n' between occurrences); NULL when none. The validator sees one
     * occurrence. */
    CONF_LIST
};

struct conf_directive {
    const char *name;
    enum conf_type type;
    size_t offset;   /* offsetof(struct your_config, field) */
    const char *def; /* default as text (parsed like a file value); NULL for an unset string */
    int64_t min;     /* bounds for INT, SIZE, TIME_MS (inclusive); min == max == 0: unbounded */
    int64_t max;
    /* Optional extra check of the parsed value; returns 0 or -1 with *err set (static). */
    int (*validate)(const void *field, const char **err);
    const char *help; /* one line for --help */
};

/*
 * Applies every default from the table, then the file (if given), then the
 * overrides. argv holds only what follows the program name: an optional
 * first non-option argument is the file, the rest are `--name value` pairs;
 * `--help` / `-h` make it return 1 without applying anything else.
 * On error returns -1 and writes a message such as
 *   "conf/broker.conf:12: link-port: expected an integer in [0, 65535], got 'x'"
 * into err (errlen bytes). Returns 0 on success.
 * Strings in cfg are owned by cfg: release them with conf_free().
 */
int conf_load(const struct conf_directive *table, void *cfg, int argc, char **argv, char *err,
              size_t errlen);

/* Frees every CONF_STRING and CONF_LIST field of cfg named by table and sets it to NULL. */
void conf_free(const struct conf_directive *table, void *cfg);

/* Prints "  --name <type>  help (default: def)" for every directive. */
void conf_usage(const struct conf_directive *table, FILE *out);

/* Parsers shared with tools; each returns 0 or -1. */
int conf_parse_size(const char *s, size_t *out);
int conf_parse_time_ms(const char *s, int64_t *out);

/* Looks up a directive by name; NULL if the table has none. */
const struct conf_directive *conf_find(const struct conf_directive *table, const char *name);

#endif
