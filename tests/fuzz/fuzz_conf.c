/*
 * fuzz_conf.c - libFuzzer target for common/conf.c. make test runs it for a
 * few seconds (CTest fuzz_conf); longer, by hand:
 *
 *   tests/fuzz/run.sh conf 600
 *
 * or build it yourself from the repository root:
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=undefined -I. tests/fuzz/fuzz_conf.c common/conf.c \
 *       common/mem.c common/log.c -o fuzz_conf
 *   ./fuzz_conf -max_total_time=60 tests/fuzz/corpus/conf
 *
 * Input: a configuration file, then, from the first line that starts with
 * "--", command-line arguments one per line ("--port", "81", ...). The
 * file goes to a memfd whose /proc/self/fd path is conf_load's first
 * argument, against a table with every conf_type, bounded and unbounded
 * numbers, and validators on an INT and a STRING.
 *
 * Beyond "no crash": on success every value is within its bounds and
 * passes its validator, every file line is blank, a comment or `name value`
 * by an independent restatement of conf.h's syntax (quotes and escapes
 * included), and each directive holds the value of its last occurrence on
 * the command line, else in the file; with --help / -h (return 1) every
 * field holds its default (and conf_usage runs); on failure err is
 * NUL-terminated within errlen (a heap buffer of exactly errlen bytes,
 * sometimes tiny), non-empty, and names the file or the command line.
 * conf_free sets every string to NULL and leaks nothing (LeakSanitizer).
 * conf_parse_size and conf_parse_time_ms are compared with an independent
 * parser on every line and argument.
 */
#include "common/conf.h"

#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS  16
#define MAX_LINES 32

struct fuzz_conf {
    int64_t port;
    int64_t offset;
    int64_t delta;
    int64_t even;
    size_t limit;
    size_t any_size;
    size_t small;
    int64_t timeout;
    int64_t any_time;
    bool flag;
    char *name;
    char *secret;
    char *tag;
    enum log_level level;
};

/* Aborts naming the failed check, so libFuzzer reports the input. */
#define CHECK(cond) ((cond) ? (void)0 : check_failed(#cond, __LINE__))

static void __attribute__((noreturn)) check_failed(const char *what, int line)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, line, what);
    abort();
}

static int validate_even(const void *field, const char **err)
{
    if (*(const int64_t *)field % 2 != 0) {
        *err = "must be even";
        return -1;
    }
    return 0;
}

static int validate_tag(const void *field, const char **err)
{
    const char *s = *(char *const *)field;

    if (s[0] == '\0' || strlen(s) > 16 || strchr(s, ',') != NULL) {
        *err = "must be 1..16 bytes without ','";
        return -1;
    }
    return 0;
}

#define F(field) offsetof(struct fuzz_conf, field)

static const struct conf_directive table[] = {
    {"port", CONF_INT, F(port), "7400", 0, 65535, NULL, "a port"},
    {"offset", CONF_INT, F(offset), "0", 0, 0, NULL, "unbounded"},
    {"delta", CONF_INT, F(delta), "-5", -50, 50, NULL, "negative bound"},
    {"even", CONF_INT, F(even), "2", 0, 1000, validate_even, "validated"},
    {"limit", CONF_SIZE, F(limit), "1kb", 16, 1 << 20, NULL, "a size"},
    {"any-size", CONF_SIZE, F(any_size), "0", 0, 0, NULL, "unbounded"},
    {"small", CONF_SIZE, F(small), "0", 0, 4096, NULL, "from zero"},
    {"timeout", CONF_TIME_MS, F(timeout), "5s", 1, 3600000, NULL, "a time"},
    {"any-time", CONF_TIME_MS, F(any_time), "0", 0, 0, NULL, "unbounded"},
    {"flag", CONF_BOOL, F(flag), "yes", 0, 0, NULL, "a bool"},
    {"name", CONF_STRING, F(name), "herald", 0, 0, NULL, "a string"},
    {"secret", CONF_STRING, F(secret), NULL, 0, 0, NULL, "unset by default"},
    {"tag", CONF_STRING, F(tag), "t", 0, 0, validate_tag, "validated"},
    {"log-level", CONF_LOGLEVEL, F(level), "info", 0, 0, NULL, "a level"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

/* ------------------------------------------------ reference units */

struct ref_unit {
    const char *suffix;
    uint64_t mult;
};

static const struct ref_unit size_units[] = {
    {"", 1},         {"b", 1},       {"k", 1 << 10},  {"kb", 1 << 10}, {"m", 1 << 20},
    {"mb", 1 << 20}, {"g", 1 << 30}, {"gb", 1 << 30}, {NULL, 0},
};

static const struct ref_unit time_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {NULL, 0},
};

/* Digits then a unit, no sign, no blanks, the product at most limit. */
static bool ref_parse(const char *s, const struct ref_unit *units, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    for (; *p >= '0' && *p <= '9'; p++) {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v))
            return false;
    }
    if (p == s || v > limit)
        return false;
    for (const struct ref_unit *u = units; u->suffix != NULL; u++) {
        if (strcasecmp(p, u->suffix) == 0)
            return !__builtin_mul_overflow(v, u->mult, out) && *out <= limit;
    }
    return false;
}

static void check_units(const char *s)
{
    size_t z = 0;
    int64_t ms = 0;
    uint64_t ref = 0;

    if (ref_parse(s, size_units, SIZE_MAX, &ref))
        CHECK(conf_parse_size(s, &z) == 0 && z == ref);
    else
        CHECK(conf_parse_size(s, &z) == -1);
    if (ref_parse(s, time_units, INT64_MAX, &ref))
        CHECK(conf_parse_time_ms(s, &ms) == 0 && (uint64_t)ms == ref);
    else
        CHECK(conf_parse_time_ms(s, &ms) == -1);
}

/* ---------------------------------------------------- the results */

static void *field_of(struct fuzz_conf *c, const struct conf_directive *d)
{
    return (char *)c + d->offset;
}

static bool in_bounds(const struct conf_directive *d, int64_t v)
{
    return (d->min == 0 && d->max == 0) || (v >= d->min && v <= d->max);
}

/* The field of d holds what the text (a value conf_load accepted) says. */
static void check_holds(struct fuzz_conf *c, const struct conf_directive *d, const char *text)
{
    void *field = field_of(c, d);
    size_t z;
    int64_t ms;
    enum log_level l;

    switch (d->type) {
    case CONF_INT:
        CHECK(*(int64_t *)field == strtoll(text, NULL, 10));
        break;
    case CONF_SIZE:
        CHECK(conf_parse_size(text, &z) == 0 && *(size_t *)field == z);
        break;
    case CONF_TIME_MS:
        CHECK(conf_parse_time_ms(text, &ms) == 0 && *(int64_t *)field == ms);
        break;
    case CONF_BOOL:
        CHECK(*(bool *)field == (strcasecmp(text, "yes") == 0 || strcasecmp(text, "true") == 0 ||
                                 strcasecmp(text, "on") == 0 || strcmp(text, "1") == 0));
        break;
    case CONF_STRING:
        if (text == NULL)
            CHECK(*(char **)field == NULL);
        else
            CHECK(*(char **)field != NULL && strcmp(*(char **)field, text) == 0);
        break;
    case CONF_LOGLEVEL:
        CHECK(log_level_parse(text, &l) == 0 && *(enum log_level *)field == l);
        break;
    case CONF_LIST: /* the table here has none */
        break;
    }
}

static void check_valid(struct fuzz_conf *c)
{
    for (const struct conf_directive *d = table; d->name != NULL; d++) {
        if (d->type == CONF_INT || d->type == CONF_TIME_MS)
            CHECK(in_bounds(d, *(int64_t *)field_of(c, d)));
        if (d->type == CONF_SIZE && (d->min != 0 || d->max != 0))
            CHECK(*(size_t *)field_of(c, d) <= (uint64_t)d->max &&
                  *(size_t *)field_of(c, d) >= (uint64_t)d->min);
    }
    CHECK(c->even % 2 == 0 && c->any_time >= 0);
    CHECK(c->name != NULL && c->tag != NULL && c->tag[0] != '\0' && strlen(c->tag) <= 16);
    CHECK(strchr(c->tag, ',') == NULL);
    CHECK(c->level >= LOG_LEVEL_DEBUG && c->level <= LOG_LEVEL_ERROR);
}

/* After a successful load: the last --name value of each directive won. */
static void check_overrides(struct fuzz_conf *c, int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const struct conf_directive *d = conf_find(table, argv[i] + 2);
        bool last = true;

        CHECK(d != NULL);
        for (int j = i + 2; j + 1 < argc; j += 2)
            last = last && strcmp(argv[j], argv[i]) != 0;
        if (last)
            check_holds(c, d, argv[i + 1]);
    }
}

/* ------------------------------------------------ reference file syntax */

static char *skip_blank(char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

static char *word_end(char *p)
{
    while (*p != '\0' && *p != '#' && !isspace((unsigned char)*p))
        p++;
    return p;
}

/* Unquotes in place; returns the byte after the closing quote, or NULL. */
static char *ref_quoted(char *p, char **value)
{
    char *dst = p;

    *value = p;
    for (p++; *p != '"'; p++) {
        if (*p == '\0')
            return NULL;
        if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
            p++;
        *dst++ = *p;
    }
    *dst = '\0';
    return p + 1;
}

/*
 * conf.h's line syntax restated, on a NUL-terminated line it may modify:
 * 1 with *name and *value for `name value` (value bare or quoted, then
 * blanks or a comment), 0 for a blank or comment line, -1 otherwise.
 */
static int ref_line(char *p, char **name, char **value)
{
    char *end;

    p = skip_blank(p);
    if (*p == '\0' || *p == '#')
        return 0;
    *name = p;
    end = word_end(p);
    p = skip_blank(end);
    if (*p == '\0' || *p == '#')
        return -1;
    *end = '\0';
    if (*p == '"') {
        p = ref_quoted(p, value);
        if (p == NULL || (*p != '\0' && *p != '#' && !isspace((unsigned char)*p)))
            return -1;
        return *skip_blank(p) == '\0' || *skip_blank(p) == '#' ? 1 : -1;
    }
    *value = p;
    end = word_end(p);
    p = skip_blank(end);
    *end = '\0';
    return *p == '\0' || *p == '#' ? 1 : -1;
}

static bool on_command_line(const struct conf_directive *d, int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i] + 2, d->name) == 0)
            return true;
    }
    return false;
}

/* After a successful load: every line is well-formed, and the last one of
 * each directive not given on the command line won. */
static void check_file(struct fuzz_conf *c, const uint8_t *file, size_t len, int argc, char **argv)
{
    enum { NDIRECTIVES = sizeof(table) / sizeof(table[0]) - 1 };

    char *text = malloc(len + 1);
    char *last[NDIRECTIVES] = {NULL};
    size_t start = 0;

    CHECK(text != NULL);
    /* conf.c sees each line up to its '\n' or its first NUL. */
    for (size_t i = 0; i < len; i++)
        text[i] = file[i] == '\n' ? '\0' : (char)file[i];
    text[len] = '\0';
    while (start < len) {
        const uint8_t *nl = memchr(file + start, '\n', len - start);
        char *name, *value;
        int rc = ref_line(text + start, &name, &value);

        CHECK(rc >= 0);
        if (rc == 1) {
            const struct conf_directive *d = conf_find(table, name);
            CHECK(d != NULL);
            last[d - table] = value;
        }
        start = nl != NULL ? (size_t)(nl - file) + 1 : len;
    }
    for (size_t i = 0; i < NDIRECTIVES; i++) {
        if (last[i] != NULL && !on_command_line(&table[i], argc, argv))
            check_holds(c, &table[i], last[i]);
    }
    free(text);
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    }
    return false;
}

static void check_error(const char *err, size_t errlen, const char *path)
{
    static const char cmdline[] = "command line: ";
    size_t plen = strlen(path);

    CHECK(memchr(err, '\0', errlen) != NULL);
    if (errlen < 2)
        return;
    CHECK(err[0] != '\0');
    /* The table's defaults are valid: the file or the command line is at fault. */
    if (errlen > plen + sizeof(cmdline))
        CHECK(strncmp(err, cmdline, sizeof(cmdline) - 1) == 0 ||
              (strncmp(err, path, plen) == 0 && err[plen] == ':'));
}

/* -------------------------------------------------------- driver */

/* What --help prints (to /dev/null: only its run is of interest). */
static void print_usage(void)
{
    static FILE *null;

    if (null == NULL)
        null = fopen("/dev/null", "w");
    CHECK(null != NULL);
    conf_usage(table, null);
}

/* Writes the file bytes to the memfd; returns its path. */
static const char *write_file(const uint8_t *p, size_t n)
{
    static int fd = -1;
    static char path[64];

    if (fd < 0) {
        fd = memfd_create("fuzz_conf", MFD_CLOEXEC);
        CHECK(fd >= 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(n == 0 || pwrite(fd, p, n, 0) == (ssize_t)n);
    return path;
}

static char *line_copy(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);

    CHECK(s != NULL);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Splits the input: file lines are unit-checked, argument lines copied. */
static size_t split_input(const uint8_t *data, size_t size, char **args, int *nargs)
{
    const uint8_t *p = data, *end = data + size;
    size_t file_len = size;
    int lines = 0;

    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl != NULL ? nl : end) - p);
        bool arg = file_len < size || (n >= 2 && p[0] == '-' && p[1] == '-');

        if (arg && file_len == size)
            file_len = (size_t)(p - data);
        if (arg && *nargs < MAX_ARGS) {
            args[(*nargs)++] = line_copy(p, n);
            check_units(args[*nargs - 1]);
        } else if (!arg && lines++ < MAX_LINES) {
            char *s = line_copy(p, n);
            check_units(s);
            free(s);
        }
        p += n + 1;
    }
    return file_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[1 + MAX_ARGS];
    int argc = 0;
    size_t file_len = split_input(data, size, argv + 1, &argc);
    const char *path = write_file(data, file_len);
    size_t errlen = size % 5 == 0 ? 1 + size % 24 : 512;
    char *err = malloc(errlen);
    struct fuzz_conf c;
    int rc;

    CHECK(err != NULL);
    memset(err, 'x', errlen);
    argv[0] = (char *)path;
    argc++;
    rc = conf_load(table, &c, argc, argv, err, errlen);
    if (rc == 1) {
        CHECK(wants_help(argc, argv));
        for (const struct conf_directive *d = table; d->name != NULL; d++)
            check_holds(&c, d, d->def);
        print_usage();
    } else if (rc == 0) {
        CHECK(!wants_help(argc, argv));
        check_valid(&c);
        check_overrides(&c, argc, argv);
        check_file(&c, data, file_len, argc, argv);
    } else {
        CHECK(rc == -1);
        check_error(err, errlen, path);
    }
    conf_free(table, &c);
    CHECK(c.name == NULL && c.secret == NULL && c.tag == NULL);
    for (int i = 1; i < argc; i++)
        free(argv[i]);
    free(err);
    return 0;
}
