/*
 * main.c - herald-edge: configuration, workers, signals.
 *
 *   herald-edge [conf/edge.conf] [--directive value]...
 *
 * Start-up order: configuration (bad → message naming file and line, exit
 * 2; with broker-tls, the link's one client context, so a CA file that
 * does not load stops start-up too), the auth directives resolved (auth.h:
 * the secret file read, bad combinations - echo-path while tokens are
 * required, unless echo-path-public - exit 2, weak ones logged as
 * warnings), libevent threading (before any
 * event_base), SIGPIPE ignored,
 * SIGTERM/SIGINT blocked in every thread, then every worker's listener is
 * bound here, in the main thread, so a bind error stops start-up (exit 1)
 * before any thread runs. Worker 0 binds first; the others bind the port it
 * got, so `port 0` yields one ephemeral port shared through SO_REUSEPORT.
 * The per-address limits' table, when either limit is set, is made here and
 * shared by every worker (addr_limit.h says why it is one table). Then the
 * threads start and `event=ready` is logged: every listener is already
 * accepting into its backlog.
 *
 * With tls-cert-file and tls-key-file the port speaks only TLS: both files
 * are loaded before any listener is bound (a bad one stops start-up, exit
 * 2) into one struct tls_server that every worker borrows.
 *
 * The main thread then only waits in sigwait(). On SIGTERM/SIGINT it asks
 * every worker to shut down (their notify pipes), joins them and frees
 * them; each worker drains its clients within shutdown-timeout. SIGHUP
 * re-reads the certificate and key (tls_server_reload): new connections
 * get the new ones, open ones keep theirs, and files that fail to load are
 * logged (event=tls_reload_failed) while the old certificate keeps serving.
 * Without TLS, SIGHUP is logged and ignored (it no longer kills the edge).
 *
 * Rejected: an event_base in the main thread for signals (sigwait is the
 * whole job) and a listener shared by all workers (thundering herd; the
 * kernel's SO_REUSEPORT hashing spreads connections instead).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/thread.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/tls.h"
#include "edge/addr_limit.h"
#include "edge/auth.h"
#include "edge/edge_conf.h"
#include "edge/worker.h"

#define ADDR_SLACK 65536 /* addresses tracked beyond one per possible connection */

static void usage(FILE *out)
{
    fprintf(out, "usage: herald-edge [config-file] [--directive value]...\n\n");
    conf_usage(edge_conf_table, out);
}

static size_t worker_count(const struct edge_conf *conf)
{
    long n = conf->workers > 0 ? (long)conf->workers : sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : (size_t)n;
}

/* Binds every worker's listener; returns the port, or -1 after logging. */
static int create_workers(const struct edge_conf *conf, struct tls_server *tls, struct worker **ws,
                          size_t n)
{
    int port = (int)conf->port;

    for (size_t i = 0; i < n; i++) {
        const char *err = "unknown error";

        ws[i] = worker_new((int)i, conf, port, &err);
        if (!ws[i]) {
            log_error("listen_failed", "bind=%s port=%d reason=\"%s\"", conf->bind, port, err);
            return -1;
        }
        if (tls)
            worker_set_tls(ws[i], tls);
        if (i == 0)
            port = worker_port(ws[0]);
    }
    return port;
}

static void stop_workers(struct worker **ws, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ws[i])
            worker_request_shutdown(ws[i]);
    }
    for (size_t i = 0; i < n; i++) {
        if (ws[i])
            worker_join(ws[i]);
    }
    for (size_t i = 0; i < n; i++)
        worker_free(ws[i]);
}

/* Replaces double quotes so an OpenSSL reason fits a quoted log value. */
static void unquote(char *s)
{
    for (; *s; s++) {
        if (*s == '"')
            *s = '\'';
    }
}

/* SIGHUP: the certificate and key are read again; a failure keeps the old ones. */
static void reload_tls(struct tls_server *tls)
{
    char err[512];

    if (!tls) {
        log_info("sighup_ignored", "reason=\"no tls-cert-file\"");
        return;
    }
    if (tls_server_reload(tls, err, sizeof(err)) == 0) {
        log_info("tls_reloaded", "cert=\"%s\" key=\"%s\"", tls->cert_file, tls->key_file);
        return;
    }
    unquote(err);
    log_warn("tls_reload_failed", "reason=\"%s\" serving=previous", err);
}

/* Waits for SIGTERM or SIGINT, reloading TLS on each SIGHUP meanwhile; returns the signal. */
static int wait_for_stop(sigset_t *sigs, struct tls_server *tls)
{
    int sig = 0;

    for (;;) {
        if (sigwait(sigs, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            return sig;
        reload_tls(tls);
    }
}

/*
 * The per-address table, or NULL when both limits are off. Its cap on
 * addresses leaves room for every connection the workers may hold from a
 * distinct address, plus ADDR_SLACK more whose buckets are still refilling.
 */
static struct addr_limit *make_addr_limit(const struct edge_conf *conf, size_t nworkers)
{
    uint64_t cap = (uint64_t)conf->max_connections * nworkers + ADDR_SLACK;

    if (conf->max_conns_per_ip == 0 && conf->handshake_rate == 0)
        return NULL;
    return addr_limit_new((uint32_t)conf->max_conns_per_ip, (uint32_t)conf->handshake_rate,
                          cap < UINT32_MAX ? (uint32_t)cap : UINT32_MAX);
}

static const char *auth_mode(const struct edge_conf *conf)
{
    if (conf->auth_enforced)
        return "required";
    return conf->auth_on ? "optional" : "off";
}

static int run(const struct edge_conf *conf, struct tls_server *tls, SSL_CTX *uplink_tls,
               sigset_t *sigs)
{
    size_t n = worker_count(conf);
    struct worker **ws = mem_calloc(n, sizeof(*ws));
    struct addr_limit *addr = make_addr_limit(conf, n);
    int port = create_workers(conf, tls, ws, n), sig = 0, rc = 0;

    if (port < 0) {
        rc = 1;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        ws[i]->uplink_tls = uplink_tls;
        worker_set_addr_limit(ws[i], addr);
    }
    worker_set_all(ws, n);
    for (size_t i = 0; i < n; i++) {
        if (worker_start(ws[i]) < 0) {
            log_error("thread_failed", "worker=%zu", i);
            rc = 1;
            goto out;
        }
    }
    log_info("ready", "port=%d workers=%zu bind=%s broker=%s auth=%s tls=%s", port, n, conf->bind,
             conf->broker ? conf->broker : "none", auth_mode(conf), tls ? "yes" : "no");
    sig = wait_for_stop(sigs, tls);
    log_info("shutdown", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
out:
    stop_workers(ws, n);
    addr_limit_free(addr);
    mem_free(ws);
    if (rc == 0)
        log_info("exit", "status=0");
    return rc;
}

/*
 * Loads the TLS certificate when the configuration names one. Returns 0
 * (*on says whether TLS is on), or -1 after printing why (start-up stops).
 */
static int load_tls(const struct edge_conf *conf, struct tls_server *tls, bool *on)
{
    char err[512];

    *on = false;
    if (!conf->tls_cert_file && !conf->tls_key_file)
        return 0;
    if (!conf->tls_cert_file || !conf->tls_key_file) {
        fprintf(stderr, "herald-edge: %s is set without %s: set both or neither\n",
                conf->tls_cert_file ? "tls-cert-file" : "tls-key-file",
                conf->tls_cert_file ? "tls-key-file" : "tls-cert-file");
        return -1;
    }
    if (tls_server_init(tls, conf->tls_cert_file, conf->tls_key_file, err, sizeof(err)) < 0) {
        fprintf(stderr, "herald-edge: %s\n", err);
        return -1;
    }
    *on = true;
    return 0;
}

/* The one client context of every worker's link (broker-tls), or NULL with err. */
static SSL_CTX *uplink_tls_ctx(const struct edge_conf *conf, char *err, size_t errlen)
{
    char why[400]; /* fits err (512) after the prefix: -O2 checks the truncation */
    SSL_CTX *ctx = tls_client_ctx_new(conf->broker_tls_ca_file, why, sizeof(why));

    if (!ctx)
        snprintf(err, errlen, "broker-tls-ca-file: %s", why);
    return ctx;
}

/* The auth directives (docs/protocol.md §3.10); returns 0, or -1 after saying why. */
static int resolve_auth(struct edge_conf *conf)
{
    char err[512];
    unsigned warn = 0;

    if (auth_conf_resolve(conf, err, sizeof(err), &warn) < 0) {
        fprintf(stderr, "herald-edge: %s\n", err);
        return -1;
    }
    if (warn & AUTH_WARN_OPEN)
        log_warn("auth_off", "reason=\"no auth-secret: anyone may subscribe to anything\"");
    if (warn & AUTH_WARN_SHORT_SECRET)
        log_warn("auth_secret_short", "bytes=%zu min=%d", conf->auth_key_len, AUTH_SECRET_MIN);
    if (conf->echo_path && conf->auth_enforced && !conf->echo_path_public) {
        fprintf(stderr,
                "herald-edge: echo-path %s: the echo path serves anyone, and tokens are "
                "required (auth-required); set echo-path-public yes to allow it\n",
                conf->echo_path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    SSL_CTX *uplink_tls = NULL;
    struct edge_conf conf;
    struct tls_server tls;
    bool tls_on = false;
    char err[512];
    sigset_t sigs;
    int rc;

    memset(&conf, 0, sizeof(conf));
    memset(&tls, 0, sizeof(tls)); /* tls_server_free below is safe on it from here on */
    log_init("edge", LOG_LEVEL_INFO);
    rc = conf_load(edge_conf_table, &conf, argc - 1, argv + 1, err, sizeof(err));
    if (rc == 1) {
        usage(stdout);
        conf_free(edge_conf_table, &conf);
        return 0;
    }
    if (rc == 0)
        rc = edge_conf_check_broker_tls(&conf, err, sizeof(err));
    if (rc == 0 && conf.broker_tls && !(uplink_tls = uplink_tls_ctx(&conf, err, sizeof(err))))
        rc = -1;
    if (rc < 0) {
        fprintf(stderr, "herald-edge: %s\n", err);
        conf_free(edge_conf_table, &conf);
        return 2;
    }
    log_set_level(conf.log_level);
    if (resolve_auth(&conf) < 0) {
        rc = 2;
        goto out;
    }
    if (load_tls(&conf, &tls, &tls_on) < 0) {
        rc = 2;
        goto out;
    }
    if (evthread_use_pthreads() < 0) {
        log_error("evthread_failed", "");
        rc = 1;
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    rc = run(&conf, tls_on ? &tls : NULL, uplink_tls, &sigs);
out:
    tls_server_free(&tls);
    SSL_CTX_free(uplink_tls);
    conf_free(edge_conf_table, &conf);
    return rc;
}
