/*
 * herald_token.c - `herald token`: mint a subscription token for operators
 * and tests (docs/protocol.md §3.10).
 *
 *   herald token (--secret-file FILE | --secret SECRET) --sub SUBJECT
 *                --topics PATTERN[,PATTERN...] [--topics ...]
 *                [--ttl DURATION] [--nbf DURATION] [--now SECONDS]
 *
 * The key is the bytes of the secret file with one trailing newline
 * stripped (as the edge's auth-secret-file reads it), else --secret, else
 * $HERALD_AUTH_SECRET. The claims are {"sub", "iat", "exp", "topics"} and
 * "nbf" with --nbf; the patterns are signed as given, "{sub}" included, and
 * the verifier replaces it. Output: the token and a newline on stdout;
 * errors on stderr as "herald: <message>". Exit status 0, 1 when the
 * secret file cannot be read, 2 for anything wrong on the command line.
 *
 * Every argument is checked here, with a message naming it, before
 * jwt_sign (which only says NULL): the subject and each pattern's syntax;
 * what is left for jwt_sign to refuse is length once "{sub}" is replaced.
 * Rejected: reading the key from the global --secret (that is the broker's
 * requirepass), and a default key (a token signed with a well-known key
 * grants anything to anyone).
 */
#include "tools/herald_token.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/jwt.h"
#include "common/mem.h"
#include "common/topic.h"

#define EXIT_OK       0
#define EXIT_RUNTIME  1
#define EXIT_USAGE    2
#define SECRET_MAX    65536                 /* bytes read from a secret file */
#define SECRET_WARN   32                    /* shorter keys get a warning */
#define DURATION_MAX  (100LL * 365 * 86400) /* 100 years: no overflow past this */
#define DEFAULT_TTL_S 3600

static const struct topic_limits sub_limits = {.max_len = JWT_MAX_SUB, .max_tokens = 1};

struct token_args {
    const char *secret_file;
    const char *secret;
    const char *sub;
    char *topics[JWT_MAX_TOPICS]; /* owned copies */
    size_t ntopics;
    int64_t ttl;
    int64_t nbf_delay; /* 0: no nbf */
    int64_t now;
    bool now_set;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: herald token (--secret-file FILE | --secret SECRET) --sub SUBJECT\n"
            "                    --topics PATTERN[,PATTERN...] [--topics ...]\n"
            "                    [--ttl DURATION] [--nbf DURATION] [--now SECONDS]\n"
            "  --secret-file FILE  the signing key: the file's bytes, one trailing newline\n"
            "                      stripped (the edge's auth-secret-file)\n"
            "  --secret SECRET     the signing key as text (default $HERALD_AUTH_SECRET)\n"
            "  --sub SUBJECT       the subject: one topic token (no '.', '*' or '>')\n"
            "  --topics PATTERNS   patterns the holder may subscribe to, comma-separated,\n"
            "                      repeatable (at most %d); {sub} stands for the subject\n"
            "  --ttl DURATION      lifetime from now: N, Ns, Nm, Nh or Nd (default 1h)\n"
            "  --nbf DURATION      not valid until now + DURATION\n"
            "  --now SECONDS       the time to count from, seconds since the epoch\n"
            "                      (default: the clock; for tests)\n"
            "prints the token on stdout\n",
            JWT_MAX_TOPICS);
}

/* Prints "herald: <message>" (and the usage when with_usage); returns EXIT_USAGE. */
static int __attribute__((format(printf, 2, 3))) bad_args(bool with_usage, const char *fmt, ...)
{
    va_list ap;

    fputs("herald: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (with_usage)
        usage(stderr);
    return EXIT_USAGE;
}

/* Parses N[smhd] (N > 0 decimal) into seconds. Returns 0, or -1. */
static int parse_duration(const char *s, int64_t *out)
{
    static const struct {
        char unit;
        int64_t seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};

    int64_t n = 0, mult = 1;
    size_t i = 0, len = strlen(s);

    if (len > 0 && (s[len - 1] < '0' || s[len - 1] > '9')) {
        for (mult = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            if (units[i].unit == s[len - 1])
                mult = units[i].seconds;
        }
        len--;
    }
    if (mult == 0 || len == 0)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || n > DURATION_MAX)
            return -1;
        n = n * 10 + (s[i] - '0');
    }
    if (n == 0 || n > DURATION_MAX / mult)
        return -1;
    *out = n * mult;
    return 0;
}

/* Adds the comma-separated patterns of list to a. Returns 0, or an exit status. */
static int add_topics(struct token_args *a, const char *list)
{
    static const struct topic_limits max_limits = {TOPIC_MAX_LEN, TOPIC_MAX_TOKENS};
    const char *p = list;

    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *why = NULL;

        if (a->ntopics == JWT_MAX_TOPICS)
            return bad_args(false, "more than %d patterns in --topics", JWT_MAX_TOPICS);
        if (!topic_pattern_valid(p, n, &max_limits, &why))
            return bad_args(false, "bad pattern '%.*s' in --topics: %s", (int)n, p, why);
        a->topics[a->ntopics++] = mem_strndup(p, n);
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

static int parse_number(const char *s, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

static int parse_opt(struct token_args *a, int opt, const char *arg)
{
    switch (opt) {
    case 'f':
        a->secret_file = arg;
        return 0;
    case 's':
        a->secret = arg;
        return 0;
    case 'u':
        a->sub = arg;
        return 0;
    case 't':
        return add_topics(a, arg);
    case 'l':
        if (parse_duration(arg, &a->ttl) < 0)
            return bad_args(true, "bad --ttl '%s' (want N, Ns, Nm, Nh or Nd, N > 0)", arg);
        return 0;
    case 'n':
        if (parse_duration(arg, &a->nbf_delay) < 0)
            return bad_args(true, "bad --nbf '%s' (want N, Ns, Nm, Nh or Nd, N > 0)", arg);
        return 0;
    case 'w':
        if (parse_number(arg, &a->now) < 0 || a->now > INT64_MAX - 2 * DURATION_MAX)
            return bad_args(true, "bad --now '%s' (want seconds since the epoch)", arg);
        a->now_set = true;
        return 0;
    }
    return bad_args(true, "unknown or incomplete option");
}

/* Parses the options into *a. Returns 0, -1 after --help, or an exit status. */
static int parse_args(int argc, char **argv, struct token_args *a)
{
    static const struct option longopts[] = {
        {"secret-file", required_argument, NULL, 'f'},
        {"secret", required_argument, NULL, 's'},
        {"sub", required_argument, NULL, 'u'},
        {"topics", required_argument, NULL, 't'},
        {"ttl", required_argument, NULL, 'l'},
        {"nbf", required_argument, NULL, 'n'},
        {"now", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt, rc;

    optind = 0; /* GNU getopt: re-initialise, the caller may have used it */
    opterr = 0; /* our own message names the problem */
    while ((opt = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return -1;
        }
        if (opt == '?')
            return bad_args(true, "unknown option or missing value: '%s'", argv[optind - 1]);
        if ((rc = parse_opt(a, opt, optarg)) != 0)
            return rc;
    }
    if (optind < argc)
        return bad_args(true, "unexpected argument '%s'", argv[optind]);
    if (a->sub == NULL)
        return bad_args(true, "--sub is required");
    if (!topic_valid(a->sub, strlen(a->sub), &sub_limits, NULL))
        return bad_args(false,
                        "bad --sub '%s' (one topic token of at most %d bytes: printable "
                        "ASCII without '.', '*', '>' or space)",
                        a->sub, JWT_MAX_SUB);
    if (a->ntopics == 0)
        return bad_args(true, "--topics is required");
    if (a->secret_file != NULL && a->secret != NULL)
        return bad_args(true, "give --secret-file or --secret, not both");
    return 0;
}

/* Reads the secret file into a new buffer, one trailing newline stripped. Returns an exit status.
 */
static int read_secret_file(const char *path, char **out, size_t *len)
{
    char *buf = mem_alloc(SECRET_MAX + 1);
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        goto fail;
    for (;;) {
        ssize_t r = read(fd, buf + n, SECRET_MAX + 1 - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto fail;
        if (r == 0 || (n += (size_t)r) > SECRET_MAX)
            break;
    }
    close(fd);
    if (n > SECRET_MAX) {
        mem_free(buf);
        return bad_args(false, "secret file %s is larger than %d bytes", path, SECRET_MAX);
    }
    if (n > 0 && buf[n - 1] == '\n')
        n--;
    *out = buf;
    *len = n;
    return EXIT_OK;
fail:
    fprintf(stderr, "herald: cannot read secret file %s: %s\n", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    mem_free(buf);
    return EXIT_RUNTIME;
}

/* The key from --secret-file, --secret or $HERALD_AUTH_SECRET, as a new buffer. */
static int load_key(const struct token_args *a, char **key, size_t *len)
{
    const char *text = a->secret ? a->secret : getenv("HERALD_AUTH_SECRET");
    int rc;

    if (a->secret_file != NULL) {
        if ((rc = read_secret_file(a->secret_file, key, len)) != EXIT_OK)
            return rc;
    } else if (text != NULL) {
        *key = mem_strdup(text);
        *len = strlen(text);
    } else {
        return bad_args(true, "no secret: give --secret-file, --secret or $HERALD_AUTH_SECRET");
    }
    if (*len == 0) {
        mem_free(*key);
        return bad_args(false, "the secret is empty");
    }
    if (*len < SECRET_WARN)
        fprintf(stderr, "herald: warning: the secret is shorter than %d bytes\n", SECRET_WARN);
    return EXIT_OK;
}

static int mint(const struct token_args *a)
{
    char *key = NULL, *tok;
    size_t keylen = 0;
    int64_t now = a->now_set ? a->now : (int64_t)time(NULL);
    int rc = load_key(a, &key, &keylen);

    if (rc != EXIT_OK)
        return rc;
    tok = jwt_sign((const uint8_t *)key, keylen, a->sub, now, a->nbf_delay ? now + a->nbf_delay : 0,
                   now + a->ttl, (const char *const *)a->topics, a->ntopics);
    /* The key's bytes go no further than this process's memory. */
    explicit_bzero(key, keylen);
    mem_free(key);
    if (tok == NULL)
        return bad_args(false,
                        "a pattern is longer than %d bytes once {sub} is replaced, or the "
                        "token would be longer than %d bytes",
                        TOPIC_MAX_LEN, JWT_MAX_LEN);
    printf("%s\n", tok);
    mem_free(tok);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "herald: writing stdout: %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

int herald_token_main(int argc, char **argv)
{
    struct token_args a = {.ttl = DEFAULT_TTL_S};
    int rc = parse_args(argc, argv, &a);

    if (rc == 0)
        rc = mint(&a);
    else if (rc < 0)
        rc = EXIT_OK;
    for (size_t i = 0; i < a.ntopics; i++)
        mem_free(a.topics[i]);
    return rc;
}
