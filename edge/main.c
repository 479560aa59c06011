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
 * The main thread then only waits in sigwait(). On SIGTERM/SIGINT it asks
 * every worker to shut down (their notify pipes), joins them and frees
 * them; each worker drains its clients within shutdown-timeout.
 *
 * Rejected: an event_base in the main thread for signals (sigwait is the
 * whole job) and a listener shared by all workers (thundering herd; the
 * kernel's SO_REUSEPORT hashing spreads connections instead).
 */
#include <signal.h>
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
static int create_workers(const struct edge_conf *conf, struct worker **ws, size_t n)
{
    int port = (int)conf->port;

    for (size_t i = 0; i < n; i++) {
        const char *err = "unknown error";

        ws[i] = worker_new((int)i, conf, port, &err);
        if (!ws[i]) {
            log_error("listen_failed", "bind=%s port=%d reason=\"%s\"", conf->bind, port, err);
            return -1;
        }
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

static int run(const struct edge_conf *conf, SSL_CTX *uplink_tls, sigset_t *sigs)
{
    size_t n = worker_count(conf);
    struct worker **ws = mem_calloc(n, sizeof(*ws));
    struct addr_limit *addr = make_addr_limit(conf, n);
    int port = create_workers(conf, ws, n), sig = 0, rc = 0;

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
    log_info("ready", "port=%d workers=%zu bind=%s broker=%s auth=%s", port, n, conf->bind,
             conf->broker ? conf->broker : "none", auth_mode(conf));
    while (sigwait(sigs, &sig) != 0) {
    }
    log_info("shutdown", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
out:
    stop_workers(ws, n);
    addr_limit_free(addr);
    mem_free(ws);
    if (rc == 0)
        log_info("exit", "status=0");
    return rc;
}

/* The one client context of every worker's link (broker-tls), or NULL with err. */
static SSL_CTX *uplink_tls_ctx(const struct edge_conf *conf, char *err, size_t errlen)
{
    char why[512];
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
    char err[512];
    sigset_t sigs;
    int rc;

    memset(&conf, 0, sizeof(conf));
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
        SSL_CTX_free(uplink_tls);
        conf_free(edge_conf_table, &conf);
        return 2;
    }
    if (evthread_use_pthreads() < 0) {
        log_error("evthread_failed", "");
        SSL_CTX_free(uplink_tls);
        conf_free(edge_conf_table, &conf);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    rc = run(&conf, uplink_tls, &sigs);
    SSL_CTX_free(uplink_tls);
    conf_free(edge_conf_table, &conf);
    return rc;
}
