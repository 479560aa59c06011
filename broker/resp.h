#ifndef HERALD_BROKER_RESP_H
#define HERALD_BROKER_RESP_H

#include <stdint.h>

struct core;
struct resp_server;

/*
 * The RESP endpoint: redis-cli, redis-benchmark and Redis client libraries.
 * Commands: PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PING,
 * ECHO, AUTH, INFO, QUIT, HELLO, COMMAND, CONFIG GET, SELECT, CLIENT
 * (SETNAME/SETINFO), pipelined, inline or multibulk.
 */

/*
 * Binds resp-port and starts accepting; registers the handles' sink ops
 * with core. Returns the server, or NULL with *err.
 */
struct resp_server *resp_server_start(struct core *core, const char **err);

/* Stops accepting; clients flush their output and close. NULL-safe. */
void resp_server_shutdown(struct resp_server *srv);

/* Closes clients whose incomplete command is older than request-timeout (the broker's tick). */
void resp_server_sweep(struct resp_server *srv, uint64_t now_ms);

/* Frees the server and the clients still open (after the loop). NULL-safe. */
void resp_server_free(struct resp_server *srv);

#endif
