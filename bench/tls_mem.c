/*
 * tls_mem.c - what an idle TLS connection holds in OpenSSL, by allocation
 * site: the breakdown beside bench/edge.sh's RSS figures.
 *
 *   tls_mem CERT KEY [N] [TOP]      (defaults N = 1000, TOP = 12)
 *
 * N connections over AF_UNIX socket pairs, each end an SSL object on its
 * own non-blocking descriptor (SSL_set_fd, a socket BIO, as a server does):
 * the server end from Herald's own context (common/tls.c tls_server_init:
 * SSL_MODE_RELEASE_BUFFERS, no session cache), the client end from the
 * load generator's (verifying nothing). Each connection completes the
 * handshake, the client writes a WebSocket upgrade request, the server
 * reads it and writes a 101 answer, the client reads it (and the session
 * tickets), both read until OpenSSL wants more: an idle subscribed
 * connection. OpenSSL's allocator is replaced (CRYPTO_set_mem_functions,
 * before anything else) by one that prepends a header naming the call site
 * (OpenSSL passes file and line) and the side being driven, so every live
 * byte is charged to the server end or the client end and to where it was
 * allocated, whichever side frees it.
 *
 * Prints Markdown: the server end's bytes per connection after SSL_new and
 * when idle, requested and as glibc chunks (the request plus glibc's
 * 8-byte size field, rounded up to 16: what RSS pays), the same for the client end, then the server
 * end's idle bytes by source file and its TOP call sites, and the client end's TOP files. Kernel
 * socket memory is not counted (not in RSS either).
 *
 * Rejected: measuring RSS here (bench/edge.sh does that against the real
 * servers; this program answers what inside OpenSSL the bytes are), and
 * malloc hooks (glibc removed them; OpenSSL's own hook sees every
 * allocation the library makes, with its site).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/tls.h"

#define MAX_SITES 8192
#define HDR       16 /* keeps the caller's pointer 16-byte aligned */

enum side { SIDE_SETUP, SIDE_SERVER, SIDE_CLIENT, SIDES };

struct site {
    const char *file;
    int line;
    size_t bytes[SIDES], chunks[SIDES], allocs[SIDES];
};

struct hdr {
    size_t size;
    uint32_t site;
    uint32_t side;
};

static struct site sites[MAX_SITES];
static enum side cur_side = SIDE_SETUP;

/* ------------------------------------------------------------ allocator */

static uint32_t site_of(const char *file, int line)
{
    uint32_t h = (uint32_t)(((uintptr_t)file >> 3) * 2654435761u) ^ (uint32_t)line * 40503u;

    for (uint32_t i = 0; i < MAX_SITES; i++) {
        struct site *s = &sites[(h + i) % MAX_SITES];
        if (s->file == file && s->line == line)
            return (h + i) % MAX_SITES;
        if (!s->file) {
            s->file = file ? file : "?";
            s->line = line;
            return (h + i) % MAX_SITES;
        }
    }
    return 0; /* table full: charged to one slot, still counted */
}

/*
 * What glibc's malloc takes for a request of n bytes on a 64-bit machine: n
 * plus its 8-byte size field, rounded up to 16, at least 32 (the header this
 * file adds is left out: the library's own allocations do not have it).
 */
static size_t glibc_chunk(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;

    return c < 32 ? 32 : c;
}

static void charge(struct hdr *h, long sign)
{
    struct site *s = &sites[h->site];
    size_t chunk = glibc_chunk(h->size);

    s->bytes[h->side] += (size_t)sign * h->size;
    s->chunks[h->side] += (size_t)sign * chunk;
    s->allocs[h->side] += (size_t)sign;
}

static void *count_malloc(size_t n, const char *file, int line)
{
    struct hdr *h = malloc(HDR + n);

    if (!h)
        return NULL;
    h->size = n;
    h->site = site_of(file, line);
    h->side = cur_side;
    charge(h, 1);
    return (char *)h + HDR;
}

static void count_free(void *p, const char *file, int line)
{
    struct hdr *h;

    (void)file, (void)line;
    if (!p)
        return;
    h = (struct hdr *)((char *)p - HDR);
    charge(h, -1);
    free(h);
}

/* A new block charged to the realloc's site and side (the old one is uncharged). */
static void *count_realloc(void *p, size_t n, const char *file, int line)
{
    size_t old;
    void *q;

    if (!p)
        return count_malloc(n, file, line);
    if (n == 0) {
        count_free(p, file, line);
        return NULL;
    }
    q = count_malloc(n, file, line);
    if (!q)
        return NULL;
    old = ((struct hdr *)((char *)p - HDR))->size;
    memcpy(q, p, old < n ? old : n);
    count_free(p, file, line);
    return q;
}

/* ------------------------------------------------------------ totals */

struct totals {
    size_t bytes, chunks, allocs;
};

static struct totals side_totals(enum side side)
{
    struct totals t = {0, 0, 0};

    for (size_t i = 0; i < MAX_SITES; i++) {
        t.bytes += sites[i].bytes[side];
        t.chunks += sites[i].chunks[side];
        t.allocs += sites[i].allocs[side];
    }
    return t;
}

static void print_totals(const char *what, enum side side, const struct totals *before, size_t n)
{
    struct totals t = side_totals(side);

    printf("| %s | %zu | %zu | %.1f |\n", what, (t.bytes - before->bytes) / n,
           (t.chunks - before->chunks) / n, (double)(t.allocs - before->allocs) / (double)n);
}

/* The file part that names OpenSSL's module: "../ssl/ssl_lib.c" -> "ssl/ssl_lib.c". */
static const char *short_file(const char *f)
{
    while (f[0] == '.' && f[1] == '.' && f[2] == '/')
        f += 3;
    return f;
}

static enum side sort_side; /* the side by_chunks compares */

static int by_chunks(const void *a, const void *b)
{
    const struct site *x = a, *y = b;

    return (x->chunks[sort_side] < y->chunks[sort_side]) -
           (x->chunks[sort_side] > y->chunks[sort_side]);
}

/* One side's idle bytes by source file, largest first (top of them). */
static void print_by_file(enum side side, const char *label, size_t n, size_t top)
{
    static struct site files[MAX_SITES];
    size_t nfiles = 0;

    for (size_t i = 0; i < MAX_SITES; i++) {
        size_t j;
        if (!sites[i].file || !sites[i].allocs[side])
            continue;
        for (j = 0; j < nfiles && strcmp(files[j].file, short_file(sites[i].file)) != 0; j++)
            ;
        if (j == nfiles) {
            memset(&files[j], 0, sizeof(files[j]));
            files[nfiles++].file = short_file(sites[i].file);
        }
        files[j].bytes[side] += sites[i].bytes[side];
        files[j].chunks[side] += sites[i].chunks[side];
        files[j].allocs[side] += sites[i].allocs[side];
    }
    sort_side = side;
    qsort(files, nfiles, sizeof(files[0]), by_chunks);
    printf("\n| %s, idle: source file (OpenSSL) | bytes / conn | chunk bytes / conn | "
           "allocations / conn |\n|---|---|---|---|\n",
           label);
    for (size_t j = 0; j < nfiles && j < top; j++) {
        if (files[j].bytes[side] >= n) /* at least a byte per connection */
            printf("| %s | %zu | %zu | %.1f |\n", files[j].file, files[j].bytes[side] / n,
                   files[j].chunks[side] / n, (double)files[j].allocs[side] / (double)n);
    }
}

/* One side's top call sites. */
static void print_sites(enum side side, const char *label, size_t n, size_t top)
{
    static struct site sorted[MAX_SITES];
    size_t nsites = 0;

    for (size_t i = 0; i < MAX_SITES; i++) {
        if (sites[i].file && sites[i].bytes[side] >= n)
            sorted[nsites++] = sites[i];
    }
    sort_side = side;
    qsort(sorted, nsites, sizeof(sorted[0]), by_chunks);
    printf("\n| %s, idle: call site | bytes / conn | chunk bytes / conn | allocations / conn |\n"
           "|---|---|---|---|\n",
           label);
    for (size_t i = 0; i < nsites && i < top; i++)
        printf("| %s:%d | %zu | %zu | %.1f |\n", short_file(sorted[i].file), sorted[i].line,
               sorted[i].bytes[side] / n, sorted[i].chunks[side] / n,
               (double)sorted[i].allocs[side] / (double)n);
}

/* ------------------------------------------------------------ connections */

struct pair {
    SSL *srv, *cli;
    int fds[2];
};

static const char request[] =
    "GET /ws?topic=bench.all&format=raw HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n";
static const char answer[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/*
 * Reads until OpenSSL wants more; returns the bytes read, -1 on an error.
 * The client end then hands its read buffer back as the load generator
 * does (tools/loadgen_tls.c: OpenSSL 3.0 keeps it after the session
 * tickets); the server end does nothing more than a server would.
 */
static long drain(SSL *ssl, enum side side)
{
    char buf[4096];
    size_t got;
    long total = 0;

    cur_side = side;
    for (;;) {
        ERR_clear_error();
        if (SSL_read_ex(ssl, buf, sizeof(buf), &got) == 1) {
            total += (long)got;
            continue;
        }
        int e = SSL_get_error(ssl, 0);
        if (side == SIDE_CLIENT)
            SSL_free_buffers(ssl);
        cur_side = SIDE_SETUP;
        return e == SSL_ERROR_WANT_READ ? total : -1;
    }
}

/* Drives both ends' handshakes; returns 0 when both are done, -1 on an error. */
static int handshake(struct pair *p)
{
    for (int round = 0; round < 64; round++) {
        int rs, rc;

        cur_side = SIDE_CLIENT;
        rc = SSL_do_handshake(p->cli);
        if (rc != 1 && SSL_get_error(p->cli, rc) != SSL_ERROR_WANT_READ)
            break;
        cur_side = SIDE_SERVER;
        rs = SSL_do_handshake(p->srv);
        if (rs != 1 && SSL_get_error(p->srv, rs) != SSL_ERROR_WANT_READ)
            break;
        cur_side = SIDE_SETUP;
        if (rs == 1 && rc == 1)
            return 0;
    }
    cur_side = SIDE_SETUP;
    return -1;
}

static int exchange(struct pair *p)
{
    size_t done;

    cur_side = SIDE_CLIENT;
    if (SSL_write_ex(p->cli, request, sizeof(request) - 1, &done) != 1)
        return -1;
    if (drain(p->srv, SIDE_SERVER) != (long)sizeof(request) - 1)
        return -1;
    cur_side = SIDE_SERVER;
    if (SSL_write_ex(p->srv, answer, sizeof(answer) - 1, &done) != 1)
        return -1;
    if (drain(p->cli, SIDE_CLIENT) != (long)sizeof(answer) - 1)
        return -1;
    return drain(p->srv, SIDE_SERVER) == 0 ? 0 : -1;
}

static int pair_open(struct pair *p, SSL_CTX *sctx, SSL_CTX *cctx)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->fds) < 0)
        return -1;
    cur_side = SIDE_SERVER;
    p->srv = SSL_new(sctx);
    if (p->srv) {
        SSL_set_fd(p->srv, p->fds[0]);
        SSL_set_accept_state(p->srv);
    }
    cur_side = SIDE_CLIENT;
    p->cli = SSL_new(cctx);
    if (p->cli) {
        SSL_set_fd(p->cli, p->fds[1]);
        SSL_set_connect_state(p->cli);
    }
    cur_side = SIDE_SETUP;
    return p->srv && p->cli ? 0 : -1;
}

static void pair_close(struct pair *p)
{
    SSL_free(p->srv);
    SSL_free(p->cli);
    close(p->fds[0]);
    close(p->fds[1]);
}

static int run(const char *cert, const char *key, size_t n, size_t top)
{
    struct tls_server srv = {0};
    struct pair *pairs = calloc(n, sizeof(*pairs));
    SSL_CTX *sctx = NULL, *cctx = NULL;
    struct totals s0, c0;
    size_t opened = 0;
    char err[512];
    int rc = 1;

    if (!pairs || tls_server_init(&srv, cert, key, err, sizeof(err)) < 0 ||
        !(cctx = tls_client_ctx_new("", err, sizeof(err)))) {
        fprintf(stderr, "tls_mem: %s\n", pairs ? err : strerror(errno));
        goto out;
    }
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    sctx = tls_server_ctx(&srv);
    s0 = side_totals(SIDE_SERVER), c0 = side_totals(SIDE_CLIENT);
    for (; opened < n; opened++) {
        if (pair_open(&pairs[opened], sctx, cctx) < 0) {
            fprintf(stderr, "tls_mem: connection %zu: %s\n", opened, strerror(errno));
            goto out;
        }
    }
    printf("| %s, N = %zu (%s) | bytes / conn | chunk bytes / conn | allocations / conn |\n"
           "|---|---|---|---|\n",
           "OpenSSL allocations per connection", n, OpenSSL_version(OPENSSL_VERSION));
    print_totals("server end after SSL_new + SSL_set_fd", SIDE_SERVER, &s0, n);
    print_totals("client end after SSL_new + SSL_set_fd", SIDE_CLIENT, &c0, n);
    for (size_t i = 0; i < n; i++) {
        if (handshake(&pairs[i]) < 0 || exchange(&pairs[i]) < 0) {
            tls_error_text(err, sizeof(err));
            fprintf(stderr, "tls_mem: connection %zu: %s\n", i, err);
            goto out;
        }
    }
    print_totals("**server end, idle** (handshake, request read, 101 written)", SIDE_SERVER, &s0,
                 n);
    print_totals("client end, idle (101 and session tickets read)", SIDE_CLIENT, &c0, n);
    printf("\nNegotiated: %s %s.\n", SSL_get_version(pairs[0].srv),
           SSL_get_cipher_name(pairs[0].srv));
    print_by_file(SIDE_SERVER, "server end", n, MAX_SITES);
    print_sites(SIDE_SERVER, "server end", n, top);
    print_by_file(SIDE_CLIENT, "client end (the load generator's)", n, top);
    rc = 0;
out:
    for (size_t i = 0; i < opened; i++)
        pair_close(&pairs[i]);
    free(pairs);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    tls_server_free(&srv);
    return rc;
}

int main(int argc, char **argv)
{
    long n = argc > 3 ? strtol(argv[3], NULL, 10) : 1000;
    long top = argc > 4 ? strtol(argv[4], NULL, 10) : 12;

    if (!CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free)) {
        fprintf(stderr, "tls_mem: OpenSSL allocated before main\n");
        return 1;
    }
    if (argc < 3 || n <= 0 || n > 9000 || top <= 0) {
        fprintf(stderr, "usage: tls_mem CERT KEY [N (1..9000)] [TOP]\n");
        return 2;
    }
    return run(argv[1], argv[2], (size_t)n, (size_t)top);
}
