#ifndef HERALD_COMMON_LISTENER_H
#define HERALD_COMMON_LISTENER_H

#include <stdint.h>

struct event_base;
struct listener;
struct sockaddr;

/*
 * A listening socket that survives running out of file descriptors
 * (evconnlistener underneath, for the broker's endpoints). When accept()
 * fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) the
 * listener stops for a moment instead of spinning on a socket that stays
 * readable: 100 ms at first, doubling to 1 s while the condition lasts,
 * back to 100 ms once a connection is accepted again. Pending connections
 * wait in the kernel's backlog meanwhile. One warn line per second at most
 * (event=accept_failed endpoint=<name> errno=N count=N).
 */

/* Called with each accepted, non-blocking, close-on-exec socket; the callee owns fd. */
typedef void listener_accept_fn(int fd, struct sockaddr *sa, int salen, void *arg);

/*
 * Takes fd (a bound, listening, non-blocking socket: net_listen) and
 * returns a new listener accepting on base, or NULL (fd closed). name
 * (borrowed, a string literal) labels log lines; *errors (borrowed for the
 * listener's life) is incremented on every failed accept().
 */
struct listener *listener_new(struct event_base *base, int fd, const char *name,
                              listener_accept_fn *cb, void *arg, uint64_t *errors);

/* Stops accepting and closes the socket. NULL is fine. */
void listener_free(struct listener *l);

#endif
