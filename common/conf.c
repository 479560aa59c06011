#include "common/conf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/mem.h"

/*
 * Generic directive setters, units and the file / command-line reader.
 *
 * Each process owns one table of struct conf_directive (name, type, offset
 * of the field, default text, bounds, validator). Everything that touches a
 * field goes through one path: parse_value() turns text into a union value,
 * the validator sees that parsed value, and store() writes it into the
 * field. Defaults, file lines and `--name value` pairs all use that path, so
 * a default is checked exactly like an operator's value.
 *
 * Invariants:
 *  - conf_load() first sets every field of the table to zero / NULL without
 *    reading it (cfg may be uninitialised), then applies the defaults. From
 *    then on every CONF_STRING field is NULL or owned by cfg, so whatever
 *    conf_load() returns, conf_free() releases everything.
 *  - A value that fails parsing, bounds or validation never reaches the
 *    field; a replaced string is freed.
 *
 * The file is tokenised in place: `directive value`, `#` starts a comment
 * outside double quotes, a quoted value may hold spaces and `#` (with \" and
 * \\ escapes). Rejected: an ad-hoc sscanf per directive (Redis config.c
 * started that way and grew a typed table for the same reasons: one error
 * format, one place for units, defaults that cannot drift from --help).
 */

union conf_value {
    int64_t i;
    size_t z;
    bool b;
    char *s;
    enum log_level l;
};

const struct conf_directive *conf_find(const struct conf_directive *table, const char *name)
{
    for (const struct conf_directive *d = table; d->name != NULL; d++) {
        if (strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

/* ---------------------------------------------------------------- units */

/* Parses a run of decimal digits (at least one) into *out; returns the end. */
static const char *parse_digits(const char *s, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;

    if (!isdigit((unsigned char)*s))
        return NULL;
    for (; isdigit((unsigned char)*s); s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (limit - d) / 10)
            return NULL;
        v = v * 10 + d;
    }
    *out = v;
    return s;
}

struct unit {
    const char *suffix;
    uint64_t mult;
};

/* Multiplies the number at the start of s by the unit its suffix names. */
static int parse_with_units(const char *s, const struct unit *units, uint64_t limit, uint64_t *out)
{
    uint64_t v;
    const char *end = parse_digits(s, limit, &v);

    if (end == NULL)
        return -1;
    for (const struct unit *u = units; u->suffix != NULL; u++) {
        if (strcasecmp(end, u->suffix) != 0)
            continue;
        if (v != 0 && u->mult > limit / v)
            return -1;
        *out = v * u->mult;
        return 0;
    }
    return -1;
}

int conf_parse_size(const char *s, size_t *out)
{
    static const struct unit units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1024},
        {"kb", 1024},
        {"m", 1024 * 1024},
        {"mb", 1024 * 1024},
        {"g", 1024 * 1024 * 1024},
        {"gb", 1024 * 1024 * 1024},
        {NULL, 0},
    };
    uint64_t v;

    if (parse_with_units(s, units, SIZE_MAX, &v) < 0)
        return -1;
    *out = (size_t)v;
    return 0;
}

int conf_parse_time_ms(const char *s, int64_t *out)
{
    static const struct unit units[] = {
        {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}, {NULL, 0},
    };
    uint64_t v;

    if (parse_with_units(s, units, INT64_MAX, &v) < 0)
        return -1;
    *out = (int64_t)v;
    return 0;
}

static int parse_int(const char *s, int64_t *out)
{
    const char *digits = (*s == '-' || *s == '+') ? s + 1 : s;
    char *end;
    long long v;

    /* strtoll would accept leading blanks and an empty digit run. */
    if (!isdigit((unsigned char)*digits))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------ typed setters */

static bool bounded(const struct conf_directive *d)
{
    return d->min != 0 || d->max != 0;
}

static bool int_in_bounds(const struct conf_directive *d, int64_t v)
{
    return !bounded(d) || (v >= d->min && v <= d->max);
}

static bool size_in_bounds(const struct conf_directive *d, size_t v)
{
    if (!bounded(d))
        return true;
    if (d->max < 0 || (uint64_t)v > (uint64_t)d->max)
        return false;
    return d->min <= 0 || (uint64_t)v >= (uint64_t)d->min;
}

/* Numeric types; writes the reason into msg on failure. */
static int parse_number(const struct conf_directive *d, const char *s, union conf_value *v,
                        char *msg, size_t len)
{
    char range[64] = "";

    if (bounded(d))
        snprintf(range, sizeof(range), " in [%" PRId64 ", %" PRId64 "]", d->min, d->max);
    switch (d->type) {
    case CONF_INT:
        if (parse_int(s, &v->i) == 0 && int_in_bounds(d, v->i))
            return 0;
        snprintf(msg, len, "expected an integer%s, got '%s'", range, s);
        return -1;
    case CONF_SIZE:
        if (conf_parse_size(s, &v->z) == 0 && size_in_bounds(d, v->z))
            return 0;
        snprintf(msg, len, "expected a size in bytes%s (suffix b/kb/mb/gb), got '%s'", range, s);
        return -1;
    default:
        if (conf_parse_time_ms(s, &v->i) == 0 && int_in_bounds(d, v->i))
            return 0;
        snprintf(msg, len, "expected a time in milliseconds%s (suffix ms/s/m/h), got '%s'", range,
                 s);
        return -1;
    }
}

static int parse_value(const struct conf_directive *d, const char *s, union conf_value *v,
                       char *msg, size_t len)
{
    switch (d->type) {
    case CONF_INT:
    case CONF_SIZE:
    case CONF_TIME_MS:
        return parse_number(d, s, v, msg, len);
    case CONF_BOOL:
        if (parse_bool(s, &v->b) == 0)
            return 0;
        snprintf(msg, len, "expected yes/no, true/false, on/off or 1/0, got '%s'", s);
        return -1;
    case CONF_STRING:
    case CONF_LIST:
        v->s = mem_strdup(s);
        return 0;
    case CONF_LOGLEVEL:
        if (log_level_parse(s, &v->l) == 0)
            return 0;
        snprintf(msg, len, "expected debug, info, warn or error, got '%s'", s);
        return -1;
    }
    snprintf(msg, len, "directive has an unknown type %d", (int)d->type);
    return -1;
}

/* Appends line (taken) to *list as a new line. */
static void append_line(char **list, char *line)
{
    size_t old, add;
    char *s;

    if (*list == NULL) {
        *list = line;
        return;
    }
    old = strlen(*list);
    add = strlen(line);
    s = mem_alloc(old + 1 + add + 1);
    memcpy(s, *list, old);
    s[old] = '\n';
    memcpy(s + old + 1, line, add + 1);
    mem_free(*list);
    mem_free(line);
    *list = s;
}

/* Writes v into d's field of cfg; takes v->s and frees the string it replaces. */
static void store(const struct conf_directive *d, void *cfg, const union conf_value *v)
{
    void *field = (char *)cfg + d->offset;

    switch (d->type) {
    case CONF_INT:
    case CONF_TIME_MS:
        *(int64_t *)field = v->i;
        break;
    case CONF_SIZE:
        *(size_t *)field = v->z;
        break;
    case CONF_BOOL:
        *(bool *)field = v->b;
        break;
    case CONF_STRING:
        mem_free(*(char **)field);
        *(char **)field = v->s;
        break;
    case CONF_LOGLEVEL:
        *(enum log_level *)field = v->l;
        break;
    case CONF_LIST:
        append_line((char **)field, v->s);
        break;
    }
}

/* Parses, validates and stores s (borrowed) into d's field; msg gets the reason. */
static int apply(const struct conf_directive *d, void *cfg, const char *s, char *msg, size_t len)
{
    union conf_value v;
    const char *why = NULL;

    memset(&v, 0, sizeof(v));
    if (parse_value(d, s, &v, msg, len) < 0)
        return -1;
    /* A pointer to the union is a pointer to each of its members. */
    if (d->validate != NULL && d->validate(&v, &why) < 0) {
        snprintf(msg, len, "%s, got '%s'", why != NULL ? why : "invalid value", s);
        if (d->type == CONF_STRING || d->type == CONF_LIST)
            mem_free(v.s);
        return -1;
    }
    store(d, cfg, &v);
    return 0;
}

/* Zeroes every field without reading it, then applies the defaults. */
static int apply_defaults(const struct conf_directive *table, void *cfg, char *err, size_t errlen)
{
    union conf_value zero;
    char msg[512];

    memset(&zero, 0, sizeof(zero));
    for (const struct conf_directive *d = table; d->name != NULL; d++) {
        if (d->type == CONF_STRING || d->type == CONF_LIST)
            *(char **)((char *)cfg + d->offset) = NULL;
        else
            store(d, cfg, &zero);
    }
    for (const struct conf_directive *d = table; d->name != NULL; d++) {
        if (d->def != NULL && apply(d, cfg, d->def, msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "default: %s: %s", d->name, msg);
            return -1;
        }
    }
    return 0;
}

/* --------------------------------------------------------- the file */

static char *skip_space(char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

static char *token_end(char *p)
{
    while (*p != '\0' && *p != '#' && !isspace((unsigned char)*p))
        p++;
    return p;
}

/* Unescapes the quoted string at p in place into *value; returns the byte
 * after the closing quote, or NULL with *why set. */
static char *read_quoted(char *p, char **value, const char **why)
{
    char *dst = p;
    char *src = p + 1;

    *value = dst;
    while (*src != '"') {
        if (*src == '\0') {
            *why = "unterminated quoted value";
            return NULL;
        }
        if (*src == '\\' && (src[1] == '"' || src[1] == '\\'))
            src++;
        *dst++ = *src++;
    }
    *dst = '\0';
    return src + 1;
}

/* The rest of the line from p up to a comment, trailing space cut: a CONF_LIST value. */
static char *rest_of_line(char *p)
{
    char *end = p + strcspn(p, "#");

    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    return p;
}

/*
 * Splits line (modified in place) into *name and *value, both borrowed from
 * line. Returns 1 for a directive, 0 for a blank or comment line, -1 with
 * *why set (and *name set) for a malformed one. An unquoted value of a
 * CONF_LIST directive of table is the rest of the line.
 */
static int split_line(const struct conf_directive *table, char *line, char **name, char **value,
                      const char **why)
{
    const struct conf_directive *d;
    char *p = skip_space(line);
    char *name_end;

    if (*p == '\0' || *p == '#')
        return 0;
    *name = p;
    name_end = token_end(p);
    p = skip_space(name_end);
    if (*p == '\0' || *p == '#') {
        *name_end = '\0';
        *why = "missing value";
        return -1;
    }
    *name_end = '\0';
    d = conf_find(table, *name);
    if (d != NULL && d->type == CONF_LIST && *p != '"') {
        *value = rest_of_line(p);
        return 1;
    }
    if (*p == '"') {
        p = read_quoted(p, value, why);
        if (p == NULL)
            return -1;
    } else {
        *value = p;
        p = token_end(p);
    }
    if (*p != '\0' && *p != '#' && !isspace((unsigned char)*p)) {
        *why = "unexpected text after the closing quote";
        return -1;
    }
    if (*skip_space(p) != '\0' && *skip_space(p) != '#') {
        *why = "unexpected text after the value (quote a value that holds spaces)";
        return -1;
    }
    *p = '\0';
    return 1;
}

static int apply_line(const struct conf_directive *table, void *cfg, char *line, const char *path,
                      int lineno, char *err, size_t errlen)
{
    char *name = NULL;
    char *value = NULL;
    const char *why = NULL;
    const struct conf_directive *d;
    char msg[512];
    int rc = split_line(table, line, &name, &value, &why);

    if (rc == 0)
        return 0;
    d = conf_find(table, name);
    if (d == NULL) {
        snprintf(err, errlen, "%s:%d: unknown directive '%s'", path, lineno, name);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s:%d: %s: %s", path, lineno, name, why);
        return -1;
    }
    if (apply(d, cfg, value, msg, sizeof(msg)) < 0) {
        snprintf(err, errlen, "%s:%d: %s: %s", path, lineno, name, msg);
        return -1;
    }
    return 0;
}

static int load_file(const struct conf_directive *table, void *cfg, const char *path, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    int rc = 0;

    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    while (rc == 0 && getline(&line, &cap, f) >= 0)
        rc = apply_line(table, cfg, line, path, ++lineno, err, errlen);
    if (rc == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    free(line); /* getline() allocates with malloc() */
    fclose(f);
    return rc;
}

/* ------------------------------------------------- the command line */

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    }
    return false;
}

static int load_args(const struct conf_directive *table, void *cfg, int argc, char **argv,
                     char *err, size_t errlen)
{
    char msg[512];

    for (int i = 0; i < argc; i += 2) {
        const char *arg = argv[i];
        const struct conf_directive *d;

        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            snprintf(err, errlen, "command line: unexpected argument '%s'", arg);
            return -1;
        }
        d = conf_find(table, arg + 2);
        if (d == NULL) {
            snprintf(err, errlen, "command line: unknown directive '%s'", arg);
            return -1;
        }
        if (i + 1 >= argc) {
            snprintf(err, errlen, "command line: %s: missing value", arg);
            return -1;
        }
        if (apply(d, cfg, argv[i + 1], msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "command line: %s: %s", arg, msg);
            return -1;
        }
    }
    return 0;
}

int conf_load(const struct conf_directive *table, void *cfg, int argc, char **argv, char *err,
              size_t errlen)
{
    if (errlen > 0)
        err[0] = '\0';
    if (apply_defaults(table, cfg, err, errlen) < 0)
        return -1;
    if (wants_help(argc, argv))
        return 1;
    if (argc > 0 && strncmp(argv[0], "--", 2) != 0) {
        if (load_file(table, cfg, argv[0], err, errlen) < 0)
            return -1;
        return load_args(table, cfg, argc - 1, argv + 1, err, errlen);
    }
    return load_args(table, cfg, argc, argv, err, errlen);
}

void conf_free(const struct conf_directive *table, void *cfg)
{
    for (const struct conf_directive *d = table; d->name != NULL; d++) {
        if (d->type == CONF_STRING || d->type == CONF_LIST) {
            char **field = (char **)((char *)cfg + d->offset);
            mem_free(*field);
            *field = NULL;
        }
    }
}

/* ------------------------------------------------------------ --help */

static const char *type_word(enum conf_type type)
{
    switch (type) {
    case CONF_INT:
        return "N";
    case CONF_SIZE:
        return "SIZE";
    case CONF_TIME_MS:
        return "TIME";
    case CONF_BOOL:
        return "yes|no";
    case CONF_STRING:
        return "STRING";
    case CONF_LOGLEVEL:
        return "LEVEL";
    case CONF_LIST:
        return "VALUE...";
    }
    return "VALUE";
}

void conf_usage(const struct conf_directive *table, FILE *out)
{
    int width = 0;

    for (const struct conf_directive *d = table; d->name != NULL; d++) {
        int w = (int)(strlen(d->name) + strlen(type_word(d->type)));
        if (w > width)
            width = w;
    }
    for (const struct conf_directive *d = table; d->name != NULL; d++) {
        int pad = width - (int)(strlen(d->name) + strlen(type_word(d->type)));
        fprintf(out, "  --%s %s%*s  %s", d->name, type_word(d->type), pad, "",
                d->help != NULL ? d->help : "");
        if (d->def != NULL)
            fprintf(out, " (default: %s)", d->def[0] != '\0' ? d->def : "\"\"");
        fputc('\n', out);
    }
}
