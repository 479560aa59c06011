/*
 * Tests for conf/broker.conf and conf/edge.conf against the directive
 * tables (docs/architecture.md §8.1): each file loads without error, reproduces the
 * table's defaults exactly, and names every directive of its table once:
 * as an active "directive value" line, or, for a directive whose default is
 * unset (no value can express "unset"), as a commented example line
 * "# directive value". Also the edge's `broker` validator.
 *
 * This suite links only the common library, which holds neither table, so
 * the two table sources are compiled into this file. Each defines a local
 * F() macro, hence the #undefs.
 */
#include "broker/broker_conf.c"
#undef F
#include "edge/edge_conf.c"
#undef F

#include <check.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "tests/support/check_main.h"

#ifndef HERALD_SOURCE_DIR
#error "HERALD_SOURCE_DIR must name the source tree (CMake defines it for tests)"
#endif

union any_conf {
    struct broker_conf broker;
    struct edge_conf edge;
};

static const struct {
    const char *file;
    const struct conf_directive *table;
} procs[] = {
    {HERALD_SOURCE_DIR "/conf/broker.conf", broker_conf_table},
    {HERALD_SOURCE_DIR "/conf/edge.conf", edge_conf_table},
};

/* ---------- line classification ---------- */

/* True when name is a CONF_LIST directive of a table. */
static bool is_list(const char *name)
{
    const struct conf_directive *d = conf_find(broker_conf_table, name);

    if (d == NULL)
        d = conf_find(edge_conf_table, name);
    return d != NULL && d->type == CONF_LIST;
}

enum line_kind {
    LINE_OTHER,     /* blank, prose comment */
    LINE_ACTIVE,    /* directive value */
    LINE_COMMENTED, /* # directive value */
};

static bool is_name_char(char c)
{
    return islower((unsigned char)c) || isdigit((unsigned char)c) || c == '-';
}

/*
 * Classifies line and copies the directive name into name (cap bytes).
 * A commented example is exactly "# " + name + " " + one value token: prose
 * comments in the sample files never take that shape.
 */
static enum line_kind classify(const char *line, char *name, size_t cap)
{
    const char *p = line;
    const char *start;
    size_t n;
    bool commented = false;

    while (*p == ' ' || *p == '\t')
        p++;
    if (strncmp(p, "# ", 2) == 0) {
        commented = true;
        p += 2;
    } else if (*p == '#' || *p == '\0' || *p == '\n') {
        return LINE_OTHER;
    }
    start = p;
    while (*p != '\0' && !isspace((unsigned char)*p))
        p++;
    n = (size_t)(p - start);
    if (n == 0 || n >= cap)
        return LINE_OTHER;
    for (size_t i = 0; commented && i < n; i++) {
        if (!is_name_char(start[i]))
            return LINE_OTHER;
    }
    memcpy(name, start, n);
    name[n] = '\0';
    /* A repeatable (CONF_LIST) directive's example may hold several words. */
    if (commented && (*p != ' ' || isspace((unsigned char)p[1]) || p[1] == '\0' ||
                      (strpbrk(p + 1, " \t") != NULL && !is_list(name))))
        return LINE_OTHER;
    return commented ? LINE_COMMENTED : LINE_ACTIVE;
}

static const struct {
    const char *line;
    enum line_kind kind;
    const char *name;
} lines[] = {
    {"bind 127.0.0.1\n", LINE_ACTIVE, "bind"},
    {"  log-level info # trailing\n", LINE_ACTIVE, "log-level"},
    {"node-id \"a b\"", LINE_ACTIVE, "node-id"},
    {"# requirepass change-me\n", LINE_COMMENTED, "requirepass"},
    {"# requirepass change-me", LINE_COMMENTED, "requirepass"},
    {"# Shared secret required on every endpoint\n", LINE_OTHER, ""},
    {"# as escapes inside quotes.\n", LINE_OTHER, ""},
    {"# Units: sizes\n", LINE_OTHER, ""},
    {"#\n", LINE_OTHER, ""},
    {"#requirepass x\n", LINE_OTHER, ""},
    {"# history mail.user.> 32 10m\n", LINE_COMMENTED, "history"},
    {"# requirepass two words\n", LINE_OTHER, ""},
    {"##### NETWORK #####\n", LINE_OTHER, ""},
    {"\n", LINE_OTHER, ""},
    {"   \t\n", LINE_OTHER, ""},
};

START_TEST(test_classify)
{
    char name[64] = "";
    enum line_kind kind = classify(lines[_i].line, name, sizeof(name));

    ck_assert_int_eq(kind, lines[_i].kind);
    if (kind != LINE_OTHER)
        ck_assert_str_eq(name, lines[_i].name);
}

END_TEST

/* ---------- the sample files ---------- */

static size_t table_size(const struct conf_directive *table)
{
    size_t n = 0;

    while (table[n].name != NULL)
        n++;
    return n;
}

START_TEST(test_file_loads)
{
    union any_conf cfg;
    char err[512] = "unset";
    char *argv[] = {(char *)procs[_i].file};

    ck_assert_msg(conf_load(procs[_i].table, &cfg, 1, argv, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(err, "");
    conf_free(procs[_i].table, &cfg);
}

END_TEST

static void assert_field_eq(const struct conf_directive *d, const void *a, const void *b)
{
    const void *fa = (const char *)a + d->offset;
    const void *fb = (const char *)b + d->offset;
    const char *sa, *sb;

    switch (d->type) {
    case CONF_STRING:
    case CONF_LIST:
        sa = *(char *const *)fa;
        sb = *(char *const *)fb;
        ck_assert_msg((sa == NULL) == (sb == NULL), "%s: set in one only", d->name);
        if (sa != NULL)
            ck_assert_msg(strcmp(sa, sb) == 0, "%s: '%s' != '%s'", d->name, sa, sb);
        break;
    case CONF_INT:
    case CONF_TIME_MS:
        ck_assert_msg(*(const int64_t *)fa == *(const int64_t *)fb, "%s differs", d->name);
        break;
    case CONF_SIZE:
        ck_assert_msg(*(const size_t *)fa == *(const size_t *)fb, "%s differs", d->name);
        break;
    case CONF_BOOL:
        ck_assert_msg(*(const bool *)fa == *(const bool *)fb, "%s differs", d->name);
        break;
    case CONF_LOGLEVEL:
        ck_assert_msg(*(const enum log_level *)fa == *(const enum log_level *)fb, "%s differs",
                      d->name);
        break;
    }
}

START_TEST(test_file_reproduces_defaults)
{
    union any_conf from_file;
    union any_conf defaults;
    char err[512];
    char *argv[] = {(char *)procs[_i].file};

    ck_assert_int_eq(conf_load(procs[_i].table, &from_file, 1, argv, err, sizeof(err)), 0);
    ck_assert_int_eq(conf_load(procs[_i].table, &defaults, 0, NULL, err, sizeof(err)), 0);
    for (const struct conf_directive *d = procs[_i].table; d->name != NULL; d++)
        assert_field_eq(d, &from_file, &defaults);
    conf_free(procs[_i].table, &from_file);
    conf_free(procs[_i].table, &defaults);
}

END_TEST

/* Marks name as seen in the file; fails on unknown or repeated names. */
static void see(const struct conf_directive *table, bool *seen, const char *name, bool commented,
                int lineno)
{
    const struct conf_directive *d = conf_find(table, name);

    ck_assert_msg(d != NULL, "line %d: '%s' is not in the table", lineno, name);
    ck_assert_msg(!seen[d - table], "line %d: '%s' listed twice", lineno, name);
    /* Only an unset default may be shown commented out instead of active. */
    if (commented)
        ck_assert_msg(d->def == NULL, "line %d: '%s' has a default: make it active", lineno, name);
    seen[d - table] = true;
}

START_TEST(test_file_lists_every_directive)
{
    const struct conf_directive *table = procs[_i].table;
    size_t n = table_size(table);
    bool *seen = calloc(n, sizeof(*seen));
    FILE *f = fopen(procs[_i].file, "r");
    char line[1024];
    char name[128];
    int lineno = 0;

    ck_assert_ptr_nonnull(seen);
    ck_assert_msg(f != NULL, "cannot open %s", procs[_i].file);
    while (fgets(line, sizeof(line), f) != NULL) {
        enum line_kind kind = classify(line, name, sizeof(name));
        lineno++;
        if (kind != LINE_OTHER)
            see(table, seen, name, kind == LINE_COMMENTED, lineno);
    }
    fclose(f);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(seen[i], "%s: directive '%s' is missing", procs[_i].file, table[i].name);
    free(seen);
}

END_TEST

/* ---------- edge validators ---------- */

static const struct {
    const char *value;
    int rc;
} brokers[] = {
    {"127.0.0.1:7400", 0}, {"broker.internal:1", 0},
    {"[::1]:7400", 0},     {"localhost", -1},
    {"host:", -1},         {":7400", -1},
    {"host:0", -1},        {"host:65536", -1},
    {"host:74x", -1},      {"[::1]7400", -1},
};

START_TEST(test_edge_broker_validator)
{
    struct edge_conf cfg;
    char err[512];
    char *argv[] = {"--broker", (char *)brokers[_i].value};
    int rc = conf_load(edge_conf_table, &cfg, 2, argv, err, sizeof(err));

    ck_assert_int_eq(rc, brokers[_i].rc);
    if (rc == 0)
        ck_assert_str_eq(cfg.broker, brokers[_i].value);
    else
        ck_assert_ptr_nonnull(strstr(err, "--broker: expected host:port"));
    conf_free(edge_conf_table, &cfg);
}

END_TEST

static const struct {
    const char *value;
    int rc;
} echo_paths[] = {
    {"/echo", 0},     {"/", 0},          {"/a/b-c_d.e~f", 0}, {"/x:y@z!$&'()*+,;=", 0},
    {"echo", -1},     {"", -1},          {"/ws", -1},         {"/healthz", -1},
    {"/metrics", -1}, {"/echo?x", -1},   {"/echo#x", -1},     {"/a b", -1},
    {"/a%20b", -1},   {"/\xc3\xa9", -1}, {"/a\"b", -1},       {"/\x7f", -1},
};

START_TEST(test_edge_echo_path_validator)
{
    struct edge_conf cfg;
    char err[512];
    char *argv[] = {"--echo-path", (char *)echo_paths[_i].value};
    int rc = conf_load(edge_conf_table, &cfg, 2, argv, err, sizeof(err));

    ck_assert_msg(rc == echo_paths[_i].rc, "'%s': rc %d (%s)", echo_paths[_i].value, rc, err);
    if (rc == 0)
        ck_assert_str_eq(cfg.echo_path, echo_paths[_i].value);
    else
        ck_assert_ptr_nonnull(strstr(err, "--echo-path: expected a path"));
    conf_free(edge_conf_table, &cfg);
}

END_TEST

START_TEST(test_edge_echo_path_length)
{
    struct edge_conf cfg;
    char err[512];
    char path[258];
    char *argv[] = {"--echo-path", path};

    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[256] = '\0'; /* 256 bytes: the longest allowed */
    ck_assert_int_eq(conf_load(edge_conf_table, &cfg, 2, argv, err, sizeof(err)), 0);
    conf_free(edge_conf_table, &cfg);
    path[256] = 'a';
    path[257] = '\0';
    ck_assert_int_eq(conf_load(edge_conf_table, &cfg, 2, argv, err, sizeof(err)), -1);
    conf_free(edge_conf_table, &cfg);
}

END_TEST

START_TEST(test_edge_defaults)
{
    struct edge_conf cfg;
    char err[512];

    ck_assert_int_eq(conf_load(edge_conf_table, &cfg, 0, NULL, err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.bind, "127.0.0.1");
    ck_assert_int_eq(cfg.port, 8080);
    ck_assert_str_eq(cfg.broker, "127.0.0.1:7400");
    ck_assert_ptr_null(cfg.broker_secret);
    ck_assert_int_eq(cfg.workers, 0);
    ck_assert_uint_eq(cfg.max_message_size, 64 * 1024);
    ck_assert_uint_eq(cfg.max_header_size, 8 * 1024);
    ck_assert_int_eq(cfg.max_subscriptions, 64);
    ck_assert_int_eq(cfg.max_connections, 100000);
    ck_assert_uint_eq(cfg.send_queue_limit, 1024 * 1024);
    ck_assert_int_eq(cfg.ping_interval, 25000);
    ck_assert_int_eq(cfg.idle_timeout, 75000);
    ck_assert_int_eq(cfg.handshake_timeout, 10000);
    ck_assert_int_eq(cfg.shutdown_timeout, 5000);
    ck_assert_int_eq(cfg.max_topic_length, 256);
    ck_assert_int_eq(cfg.max_topic_tokens, 16);
    ck_assert_ptr_null(cfg.allowed_origins);
    ck_assert_int_eq(cfg.reconnect_min, 100);
    ck_assert_int_eq(cfg.reconnect_max, 5000);
    ck_assert_uint_eq(cfg.pool_cache, 4 * 1024 * 1024);
    ck_assert_ptr_null(cfg.echo_path);
    ck_assert(!cfg.echo_path_public);
    ck_assert_int_eq(cfg.log_level, LOG_LEVEL_INFO);
    conf_free(edge_conf_table, &cfg);
}

END_TEST

static Suite *conf_files_suite(void)
{
    Suite *s = suite_create("conf_files");
    int nprocs = (int)(sizeof(procs) / sizeof(procs[0]));
    TCase *tc;

    tc = tcase_create("classify");
    tcase_add_loop_test(tc, test_classify, 0, (int)(sizeof(lines) / sizeof(lines[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_loop_test(tc, test_file_loads, 0, nprocs);
    tcase_add_loop_test(tc, test_file_reproduces_defaults, 0, nprocs);
    tcase_add_loop_test(tc, test_file_lists_every_directive, 0, nprocs);
    suite_add_tcase(s, tc);

    tc = tcase_create("edge_table");
    tcase_add_loop_test(tc, test_edge_broker_validator, 0,
                        (int)(sizeof(brokers) / sizeof(brokers[0])));
    tcase_add_loop_test(tc, test_edge_echo_path_validator, 0,
                        (int)(sizeof(echo_paths) / sizeof(echo_paths[0])));
    tcase_add_test(tc, test_edge_echo_path_length);
    tcase_add_test(tc, test_edge_defaults);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(conf_files_suite());
}
