/*
 * herald.c - the herald command-line client: publish, subscribe, stats;
 * watch (tools/herald_watch.c) and token (tools/herald_token.c).
 *
 * A small blocking client of the broker's link endpoint: one TCP socket,
 * poll() for deadlines, the link codec for frames; no event loop. Each
 * command opens a connection, sends HELLO (role "cli"), waits for WELCOME,
 * then runs. Output formats are stable, scripts and tests parse them:
 *   publish    stdout "receivers=N seq=S\n"
 *   subscribe  stdout "<topic> <seq> <payload>\n" per event (payload bytes
 *              as they came), flushed per line; stderr "herald: subscribed
 *              N pattern(s)\n" once the broker has taken every SUB
 *   stats      stdout the broker's "name value\n" lines
 *   errors     stderr "herald: error: <code>: <text>\n" for a broker ERR,
 *              "herald: <message>\n" otherwise
 * Exit status: 0 ok, 1 runtime error, 2 usage error.
 * `subscribe` learns that its SUBs are in place by sending a PING after
 * them: the broker handles a link's frames in order, so the PONG follows
 * every SUB. With --tls (or --ca-file) the link is TLS, verified like the
 * edge's (common/tls.h): the handshake runs on the blocking socket with a
 * REPLY_TIMEOUT receive/send timeout, then reads wait on poll() unless
 * OpenSSL already holds decrypted bytes (SSL_pending).
 * Rejected: libevent (nothing here is concurrent).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <msgpack.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/link_codec.h"
#include "common/mem.h"
#include "common/net.h"
#include "common/tls.h"
#include "tools/herald_token.h"
#include "tools/herald_watch.h"

#define DEFAULT_BROKER  "127.0.0.1:7400"
#define STDIN_MAX       (16u << 20)
#define MAX_FRAME       ((64u << 20) + 4096u) /* the broker's max-payload bound + framing */
#define REPLY_TIMEOUT   10000                 /* ms to wait for WELCOME, PUBACK, STATSR */
#define EXIT_RUNTIME    1
#define EXIT_USAGE      2
#define PING_SUBSCRIBED 1

struct opts {
    const char *broker;
    const char *secret;
    bool help; /* --help / -h */
    bool tls;  /* --tls, or implied by --ca-file / --server-name */
    const char *ca_file;
    const char *server_name;
};

struct conn {
    int fd;
    SSL_CTX *tls_ctx; /* NULL: plain TCP */
    SSL *ssl;
    struct link_decoder *dec;
    msgpack_sbuffer sb;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: herald [--broker HOST:PORT] [--secret SECRET] COMMAND [ARGS...]\n"
            "\n"
            "commands:\n"
            "  publish TOPIC DATA|-     publish one event; DATA '-' reads stdin (up to 16 MiB)\n"
            "                           prints \"receivers=N seq=S\"\n"
            "  subscribe [--count N] [--timeout SECONDS] PATTERN...\n"
            "                           prints \"<topic> <seq> <payload>\" per event; --count\n"
            "                           exits after N events, --timeout exits 1 when fewer\n"
            "                           (or none) arrived in time\n"
            "  stats                    prints the broker's counters\n"
            "  watch ARGS...            follows events through an edge (herald watch --help)\n"
            "  token ARGS...            mints a subscription token, no broker needed\n"
            "                           (herald token --help)\n"
            "  help                     prints this text\n"
            "\n"
            "options:\n"
            "  --broker HOST:PORT       the broker's link endpoint (default $HERALD_BROKER,\n"
            "                           else " DEFAULT_BROKER ")\n"
            "  --secret SECRET          the broker's requirepass (default $HERALD_SECRET)\n"
            "  --tls                    TLS to the broker (its link-tls-cert-file), verified\n"
            "                           against the system's CAs and the host of --broker\n"
            "  --ca-file FILE           verify the broker against these PEM CAs (implies --tls)\n"
            "  --server-name NAME       name the broker's certificate must carry (implies --tls)\n"
            "\n"
            "exit status: 0 ok, 1 runtime error, 2 usage error\n");
}

static int usage_error(const char *msg)
{
    fprintf(stderr, "herald: %s\n", msg);
    usage(stderr);
    return EXIT_USAGE;
}

/* ---- connection ---------------------------------------------------------- */

static int connect_to(const char *broker)
{
    char host[256];
    int p, fd, gai_err, one = 1;

    if (net_split_hostport(broker, host, sizeof(host), &p) < 0) {
        fprintf(stderr, "herald: bad broker address '%s' (want HOST:PORT)\n", broker);
        return -1;
    }
    fd = net_connect(host, p, &gai_err);
    if (fd < 0 && gai_err)
        fprintf(stderr, "herald: cannot resolve %s: %s\n", host, gai_strerror(gai_err));
    else if (fd < 0)
        fprintf(stderr, "herald: cannot connect to broker at %s: %s\n", broker, strerror(errno));
    else
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Prints why a TLS operation (what) on c failed: verification, or OpenSSL's errors. */
static void tls_failed(struct conn *c, const char *what)
{
    long v = SSL_get_verify_result(c->ssl);
    char why[512];

    if (v != X509_V_OK) {
        fprintf(stderr, "herald: TLS %s: broker certificate not verified: %s\n", what,
                X509_verify_cert_error_string(v));
        ERR_clear_error();
        return;
    }
    tls_error_text(why, sizeof(why));
    fprintf(stderr, "herald: TLS %s failed: %s%s%s\n", what, why, errno ? ": " : "",
            errno ? strerror(errno) : "");
}

/*
 * Makes c's connection TLS: verifies the broker against o->ca_file (or the
 * system's CAs) and o->server_name (or host). Returns 0 or -1 (printed).
 */
static int tls_open(struct conn *c, const struct opts *o, const char *host)
{
    struct timeval tv = {REPLY_TIMEOUT / 1000, 0}, none = {0, 0};
    char err[512];
    int rc;

    c->tls_ctx = tls_client_ctx_new(o->ca_file, err, sizeof(err));
    if (!c->tls_ctx) {
        fprintf(stderr, "herald: --ca-file: %s\n", err);
        return -1;
    }
    c->ssl = SSL_new(c->tls_ctx);
    if (!c->ssl || tls_client_set_name(c->ssl, o->server_name ? o->server_name : host) < 0 ||
        SSL_set_fd(c->ssl, c->fd) != 1) {
        tls_error_text(err, sizeof(err));
        fprintf(stderr, "herald: TLS set-up failed: %s\n", err);
        return -1;
    }
    /* A broker that never answers the ClientHello must not hang the CLI. */
    (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    errno = 0;
    rc = SSL_connect(c->ssl);
    (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof(none));
    if (rc != 1) {
        tls_failed(c, "handshake");
        return -1;
    }
    return 0;
}

/* Reads what the broker sent into buf. Returns the bytes, 0 to read again, -1 (printed). */
static ssize_t conn_read(struct conn *c, char *buf, size_t len)
{
    ssize_t n;
    int r, e;

    if (!c->ssl) {
        n = recv(c->fd, buf, len, 0);
        if (n < 0 && errno == EINTR)
            return 0;
        if (n <= 0)
            fprintf(stderr, "herald: connection closed by broker%s%s\n", n < 0 ? ": " : "",
                    n < 0 ? strerror(errno) : "");
        return n <= 0 ? -1 : n;
    }
    errno = 0;
    r = SSL_read(c->ssl, buf, (int)len);
    if (r > 0)
        return r;
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || (e == SSL_ERROR_SYSCALL && errno == EINTR))
        return 0; /* a record with no data for us (a session ticket, say) */
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
        fprintf(stderr, "herald: connection closed by broker\n");
    else
        tls_failed(c, "read");
    return -1;
}

/* Sends and clears the encoded frames in c->sb. Returns 0 or -1 (message printed). */
static int conn_flush(struct conn *c)
{
    size_t off = 0;

    while (off < c->sb.size) {
        ssize_t n;

        if (c->ssl) {
            int w;

            errno = 0;
            w = SSL_write(c->ssl, c->sb.data + off, (int)(c->sb.size - off));

            if (w <= 0) {
                tls_failed(c, "write");
                return -1;
            }
            off += (size_t)w;
            continue;
        }
        n = send(c->fd, c->sb.data + off, c->sb.size - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "herald: send to broker failed: %s\n", strerror(errno));
            return -1;
        }
        off += (size_t)n;
    }
    msgpack_sbuffer_clear(&c->sb);
    return 0;
}

/* Waits for readable input until deadline_ms (0: forever). Returns 1, 0 on timeout, -1. */
static int wait_readable(int fd, uint64_t deadline_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    for (;;) {
        int timeout = -1, r;

        if (deadline_ms) {
            uint64_t now = net_now_ms();

            if (now >= deadline_ms)
                return 0;
            timeout = (int)(deadline_ms - now);
        }
        r = poll(&pfd, 1, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "herald: poll failed: %s\n", strerror(errno));
            return -1;
        }
        return r > 0;
    }
}

/*
 * Reads the next frame into *f (views valid until the next call). Returns 1
 * with a frame, 0 when deadline_ms passed (0: no deadline), -1 when the
 * connection ended or broke (message printed).
 */
static int conn_next(struct conn *c, struct link_frame *f, uint64_t deadline_ms)
{
    char buf[65536];
    const char *err = "malformed frame";

    for (;;) {
        int r = link_decoder_next(c->dec, f, &err);
        ssize_t n;

        if (r == 1)
            return 1;
        if (r < 0)
            goto bad;
        if (!c->ssl || SSL_pending(c->ssl) == 0) {
            r = wait_readable(c->fd, deadline_ms);
            if (r <= 0)
                return r;
        }
        n = conn_read(c, buf, sizeof(buf));
        if (n < 0)
            return -1;
        if (n == 0)
            continue;
        if (link_decoder_feed(c->dec, buf, (size_t)n, &err) < 0)
            goto bad;
    }
bad:
    fprintf(stderr, "herald: bad frame from broker: %s\n", err);
    return -1;
}

static void print_err(const struct link_frame *f)
{
    if (f->has_topic)
        fprintf(stderr, "herald: error: %.*s: %.*s: %.*s\n", (int)f->code.len, f->code.ptr,
                (int)f->text.len, f->text.ptr, (int)f->topic.len, f->topic.ptr);
    else
        fprintf(stderr, "herald: error: %.*s: %.*s\n", (int)f->code.len, f->code.ptr,
                (int)f->text.len, f->text.ptr);
}

/*
 * Waits for a frame of type want, skipping PONGs and MSGs. Returns 1 with
 * it, -1 on ERR (printed), a closed connection or the timeout.
 */
static int expect(struct conn *c, struct link_frame *f, enum link_type want)
{
    uint64_t deadline = net_now_ms() + REPLY_TIMEOUT;

    for (;;) {
        int r = conn_next(c, f, deadline);

        if (r == 0)
            fprintf(stderr, "herald: no %s from broker in %d s\n", link_type_name(want),
                    REPLY_TIMEOUT / 1000);
        if (r <= 0)
            return -1;
        if (f->type == want)
            return 1;
        if (f->type == LINK_ERR) {
            print_err(f);
            return -1;
        }
    }
}

/* Connects and completes HELLO/WELCOME. Returns 0, or -1 (message printed). */
static int conn_open(struct conn *c, const struct opts *o)
{
    struct link_frame f;
    char node[128], host[64] = "localhost", bhost[256];
    int port;

    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->dec = link_decoder_new(MAX_FRAME);
    msgpack_sbuffer_init(&c->sb);
    c->fd = connect_to(o->broker);
    if (c->fd < 0)
        return -1;
    if (o->tls && (net_split_hostport(o->broker, bhost, sizeof(bhost), &port) < 0 ||
                   tls_open(c, o, bhost) < 0))
        return -1;
    (void)gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(node, sizeof(node), "herald@%s:%ld", host, (long)getpid());
    link_encode_hello(&c->sb, "cli", node, o->secret);
    if (conn_flush(c) < 0)
        return -1;
    return expect(c, &f, LINK_WELCOME) < 0 ? -1 : 0;
}

static void conn_close(struct conn *c)
{
    if (c->ssl && SSL_is_init_finished(c->ssl))
        (void)SSL_shutdown(c->ssl); /* close_notify: we ended the link on purpose */
    SSL_free(c->ssl);
    SSL_CTX_free(c->tls_ctx);
    if (c->fd >= 0)
        close(c->fd);
    link_decoder_free(c->dec);
    msgpack_sbuffer_destroy(&c->sb);
}

/* ---- commands ------------------------------------------------------------ */

/* Reads all of stdin (at most STDIN_MAX bytes) into a new buffer. Returns it or NULL. */
static char *read_stdin(size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = mem_alloc(cap);

    for (;;) {
        ssize_t r;

        if (n == cap) {
            if (cap > STDIN_MAX)
                break;
            cap *= 2;
            buf = mem_realloc(buf, cap);
        }
        r = read(STDIN_FILENO, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "herald: reading stdin: %s\n", strerror(errno));
            mem_free(buf);
            return NULL;
        }
        if (r == 0) {
            *len = n;
            return buf;
        }
        n += (size_t)r;
    }
    fprintf(stderr, "herald: stdin is larger than 16 MiB\n");
    mem_free(buf);
    return NULL;
}

static int cmd_publish(const struct opts *o, int argc, char **argv)
{
    struct conn c;
    struct link_frame f;
    const char *topic;
    char *data;
    size_t len;
    int rc = EXIT_RUNTIME;

    if (argc != 3)
        return usage_error("publish needs TOPIC and DATA (or - for stdin)");
    topic = argv[1];
    if (strcmp(argv[2], "-") == 0) {
        data = read_stdin(&len);
    } else {
        data = mem_strdup(argv[2]);
        len = strlen(data);
    }
    if (!data)
        return EXIT_RUNTIME;
    if (conn_open(&c, o) < 0)
        goto out;
    link_encode_pub(&c.sb, topic, strlen(topic), data, len, true, 1);
    if (conn_flush(&c) < 0 || expect(&c, &f, LINK_PUBACK) < 0)
        goto out;
    printf("receivers=%llu seq=%llu\n", (unsigned long long)f.receivers, (unsigned long long)f.seq);
    rc = fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
out:
    conn_close(&c);
    mem_free(data);
    return rc;
}

static int cmd_stats(const struct opts *o, int argc, char **argv)
{
    struct conn c;
    struct link_frame f;
    int rc = EXIT_RUNTIME;

    (void)argv;
    if (argc != 1)
        return usage_error("stats takes no arguments");
    if (conn_open(&c, o) < 0)
        goto out;
    link_encode_stats(&c.sb);
    if (conn_flush(&c) < 0 || expect(&c, &f, LINK_STATSR) < 0)
        goto out;
    fwrite(f.text.ptr, 1, f.text.len, stdout);
    if (f.text.len && f.text.ptr[f.text.len - 1] != '\n')
        putchar('\n');
    rc = fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
out:
    conn_close(&c);
    return rc;
}

/* ---- subscribe ----------------------------------------------------------- */

struct sub_args {
    long count;      /* 0: unlimited */
    double timeout;  /* seconds; 0: none */
    char **patterns; /* borrowed from argv */
    int npatterns;
};

/* Parses subscribe's arguments into *a. Returns 0, or an exit status. */
static int parse_sub_args(int argc, char **argv, struct sub_args *a)
{
    char *end;

    a->patterns = mem_calloc((size_t)argc, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        bool is_count = strcmp(argv[i], "--count") == 0;

        if (is_count || strcmp(argv[i], "--timeout") == 0) {
            if (i + 1 >= argc)
                return usage_error(is_count ? "--count needs N" : "--timeout needs SECONDS");
            errno = 0;
            if (is_count)
                a->count = strtol(argv[++i], &end, 10);
            else
                a->timeout = strtod(argv[++i], &end);
            if (errno || *end || end == argv[i] || a->count < 0 || a->timeout < 0)
                return usage_error(is_count ? "--count wants a number >= 0"
                                            : "--timeout wants seconds >= 0");
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return usage_error("unknown subscribe option");
        } else {
            a->patterns[a->npatterns++] = argv[i];
        }
    }
    if (a->npatterns == 0)
        return usage_error("subscribe needs at least one PATTERN");
    return 0;
}

/* Prints one MSG line. Returns 0, or -1 when stdout failed. */
static int print_msg(const struct link_frame *f)
{
    printf("%.*s %llu ", (int)f->topic.len, f->topic.ptr, (unsigned long long)f->seq);
    fwrite(f->payload.ptr, 1, f->payload.len, stdout);
    putchar('\n');
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "herald: writing stdout: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/* Reads frames until count events, the deadline, or an error. Returns the exit status. */
static int sub_loop(struct conn *c, const struct sub_args *a)
{
    uint64_t deadline = a->timeout > 0 ? net_now_ms() + (uint64_t)(a->timeout * 1000.0) : 0;
    long got = 0;
    struct link_frame f;

    for (;;) {
        int r = conn_next(c, &f, deadline);

        if (r < 0)
            return EXIT_RUNTIME;
        if (r == 0) {
            if (got > 0 && a->count == 0)
                return 0;
            fprintf(stderr, "herald: timeout after %g s: %ld of %ld event(s)\n", a->timeout, got,
                    a->count ? a->count : 1);
            return EXIT_RUNTIME;
        }
        if (f.type == LINK_ERR) {
            print_err(&f);
            return EXIT_RUNTIME;
        }
        if (f.type == LINK_PONG && f.token == PING_SUBSCRIBED)
            fprintf(stderr, "herald: subscribed %d pattern(s)\n", a->npatterns);
        if (f.type != LINK_MSG)
            continue;
        if (print_msg(&f) < 0)
            return EXIT_RUNTIME;
        if (++got == a->count)
            return 0;
    }
}

static int cmd_subscribe(const struct opts *o, int argc, char **argv)
{
    struct sub_args a = {0};
    struct conn c;
    int rc = parse_sub_args(argc, argv, &a);

    if (rc != 0) {
        mem_free(a.patterns);
        return rc;
    }
    rc = EXIT_RUNTIME;
    if (conn_open(&c, o) < 0)
        goto out;
    for (int i = 0; i < a.npatterns; i++)
        link_encode_sub(&c.sb, a.patterns[i], strlen(a.patterns[i]));
    link_encode_ping(&c.sb, PING_SUBSCRIBED);
    if (conn_flush(&c) == 0)
        rc = sub_loop(&c, &a);
out:
    conn_close(&c);
    mem_free(a.patterns);
    return rc;
}

/* ---- main ---------------------------------------------------------------- */

/* Consumes the global options. Returns the index of the command (argc: none), or -1. */
static int parse_globals(int argc, char **argv, struct opts *o)
{
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            o->help = true;
        } else if (strncmp(a, "--broker=", 9) == 0) {
            o->broker = a + 9;
        } else if (strncmp(a, "--secret=", 9) == 0) {
            o->secret = a + 9;
        } else if (strcmp(a, "--broker") == 0 && i + 1 < argc) {
            o->broker = argv[++i];
        } else if (strcmp(a, "--secret") == 0 && i + 1 < argc) {
            o->secret = argv[++i];
        } else if (strcmp(a, "--tls") == 0) {
            o->tls = true;
        } else if (strcmp(a, "--ca-file") == 0 && i + 1 < argc) {
            o->ca_file = argv[++i];
            o->tls = true;
        } else if (strcmp(a, "--server-name") == 0 && i + 1 < argc) {
            o->server_name = argv[++i];
            o->tls = true;
        } else {
            fprintf(stderr, "herald: unknown or incomplete option '%s'\n", a);
            return -1;
        }
    }
    return i;
}

int main(int argc, char **argv)
{
    struct opts o = {getenv("HERALD_BROKER"), getenv("HERALD_SECRET"), false, false, NULL, NULL};
    int i = parse_globals(argc, argv, &o);
    const char *cmd;

    if (i < 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!o.broker || !*o.broker)
        o.broker = DEFAULT_BROKER;
    if (o.secret && !*o.secret)
        o.secret = NULL;
    if (o.help || (i < argc && strcmp(argv[i], "help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (i >= argc)
        return usage_error("no command given");
    signal(SIGPIPE, SIG_IGN);
    cmd = argv[i];
    if (strcmp(cmd, "publish") == 0)
        return cmd_publish(&o, argc - i, argv + i);
    if (strcmp(cmd, "subscribe") == 0 || strcmp(cmd, "sub") == 0)
        return cmd_subscribe(&o, argc - i, argv + i);
    if (strcmp(cmd, "stats") == 0)
        return cmd_stats(&o, argc - i, argv + i);
    if (strcmp(cmd, "watch") == 0)
        return herald_watch_main(argc - i, argv + i);
    if (strcmp(cmd, "token") == 0)
        return herald_token_main(argc - i, argv + i);
    fprintf(stderr, "herald: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
