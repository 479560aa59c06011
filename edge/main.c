/*
 * main.c - herald-edge: configuration, workers, signals.
 *
 *   herald-edge [conf/edge.conf] [--directive value]...
 *
 * Start-up order: configuration (bad → message naming file and line, exit
 * 2), libevent threading (before any event_base), SIGPIPE ignored,
 * SIGTERM/SIGINT blocked in every thread, then every worker's listener is
 * bound here, in the main thread, so a bind error stops start-up (exit 1)
 * before any thread runs. Worker 0 binds first; the others bind the port it
 * got, so `port 0` yields one ephemeral port shared through SO_REUSEPORT.
 * Then the threads start and `event=ready` is logged: every listener is
 * already accepting into its backlog.
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
#include "edge/edge_conf.h"
#include "edge/worker.h"

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

static int run(const struct edge_conf *conf, struct tls_server *tls, sigset_t *sigs)
{
    size_t n = worker_count(conf);
    struct worker **ws = mem_calloc(n, sizeof(*ws));
    int port = create_workers(conf, tls, ws, n), sig = 0, rc = 0;

    if (port < 0) {
        rc = 1;
        goto out;
    }
    worker_set_all(ws, n);
    for (size_t i = 0; i < n; i++) {
        if (worker_start(ws[i]) < 0) {
            log_error("thread_failed", "worker=%zu", i);
            rc = 1;
            goto out;
        }
    }
    log_info("ready", "port=%d workers=%zu bind=%s broker=%s tls=%s", port, n, conf->bind,
             conf->broker ? conf->broker : "none", tls ? "yes" : "no");
    sig = wait_for_stop(sigs, tls);
    log_info("shutdown", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
out:
    stop_workers(ws, n);
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

int main(int argc, char **argv)
{
    struct edge_conf conf;
    struct tls_server tls;
    bool tls_on = false;
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
    if (rc < 0) {
        fprintf(stderr, "herald-edge: %s\n", err);
        conf_free(edge_conf_table, &conf);
        return 2;
    }
    log_set_level(conf.log_level);
    memset(&tls, 0, sizeof(tls));
    if (load_tls(&conf, &tls, &tls_on) < 0) {
        conf_free(edge_conf_table, &conf);
        return 2;
    }
    if (evthread_use_pthreads() < 0) {
        tls_server_free(&tls);
        log_error("evthread_failed", "");
        conf_free(edge_conf_table, &conf);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    rc = run(&conf, tls_on ? &tls : NULL, &sigs);
    tls_server_free(&tls);
    conf_free(edge_conf_table, &conf);
    return rc;
}
