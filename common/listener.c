/*
 * listener.c - accepting connections without spinning when fds run out.
 *
 * evconnlistener calls its error callback on a failed accept() and keeps
 * the listening socket registered: the socket stays readable (the
 * connection waits in the backlog), so with EMFILE the loop wakes, fails
 * and wakes again - a core at 100% and ~170,000 log lines a second on the
 * broker. Here a resource error disables the evconnlistener and arms a
 * timer that enables it again: the process keeps serving its existing
 * connections, and accepting resumes by itself once descriptors are free.
 * Errors that concern one connection only (ECONNABORTED, EPERM from a
 * firewall) are counted and the listener carries on.
 *
 * Rejected: the reserve-descriptor trick (close a spare fd, accept, close
 * the connection): it refuses a client that a moment later might have been
 * served, and a peer that keeps the process at its limit gets every new
 * client refused that way.
 */
#include "common/listener.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/net.h"

#define PAUSE_MIN_MS  100
#define PAUSE_MAX_MS  1000
#define LOG_PERIOD_MS 1000

struct listener {
    struct evconnlistener *lev;
    struct event *resume_ev;
    const char *name;
    listener_accept_fn *cb;
    void *arg;
    uint64_t *errors;
    uint64_t pause_ms; /* the next pause; doubles while accepts keep failing */
    struct log_rate rate;
};

static void listener_on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                               int salen, void *arg)
{
    struct listener *l = arg;

    (void)lev;
    l->pause_ms = PAUSE_MIN_MS;
    l->cb(fd, sa, salen, l->arg);
}

static bool out_of_resources(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void listener_on_error(struct evconnlistener *lev, void *arg)
{
    struct listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    uint64_t n;

    (*l->errors)++;
    n = log_rate_tick(&l->rate, net_now_ms(), LOG_PERIOD_MS);
    if (n)
        log_warn("accept_failed", "endpoint=%s errno=%d reason=\"%s\" count=%llu", l->name, err,
                 strerror(err), (unsigned long long)n);
    if (out_of_resources(err)) {
        struct timeval tv = {0, (suseconds_t)(l->pause_ms * 1000)};

        evconnlistener_disable(lev);
        evtimer_add(l->resume_ev, &tv);
        l->pause_ms = l->pause_ms * 2 > PAUSE_MAX_MS ? PAUSE_MAX_MS : l->pause_ms * 2;
    }
}

static void listener_on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;

    (void)fd;
    (void)what;
    if (evconnlistener_enable(l->lev) < 0)
        log_error("listener_enable_failed", "endpoint=%s", l->name);
}

struct listener *listener_new(struct event_base *base, int fd, const char *name,
                              listener_accept_fn *cb, void *arg, uint64_t *errors)
{
    struct listener *l = mem_calloc(1, sizeof(*l));

    l->name = name;
    l->errors = errors;
    l->cb = cb;
    l->arg = arg;
    l->pause_ms = PAUSE_MIN_MS;
    l->resume_ev = evtimer_new(base, listener_on_resume, l);
    /* Backlog 0: net_listen already called listen() with the backlog we want. */
    l->lev = evconnlistener_new(base, listener_on_accept, l,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (!l->lev || !l->resume_ev) {
        if (!l->lev)
            close(fd);
        listener_free(l);
        return NULL;
    }
    evconnlistener_set_error_cb(l->lev, listener_on_error);
    return l;
}

void listener_free(struct listener *l)
{
    if (!l)
        return;
    if (l->lev)
        evconnlistener_free(l->lev);
    if (l->resume_ev)
        event_free(l->resume_ev);
    mem_free(l);
}
