#ifndef HERALD_BROKER_RESP_CONN_H
#define HERALD_BROKER_RESP_CONN_H

#include <stdint.h>

struct core;
struct resp_server;

/*
 * The RESP endpoint: redis-cli, redis-benchmark and Redis client libraries.
 * Commands: PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PING,
 * ECHO, AUTH, INFO, QUIT, HELLO, COMMAND, CONFIG GET, SELECT, CLIENT
 * (SETNAME/SETINFO), pipelined, inline or multibulk. resp_conn.c holds the
 * connections, resp_cmd.c the commands.
 */

/*
 * Binds resp-port and starts accepting; registers the handles' sink ops
 * with core. Returns the server, or NULL with *err.
 */
struct resp_server *resp_conn_start(struct core *core, const char **err);

/* Stops accepting; clients flush their output and close. NULL-safe. */
void resp_conn_shutdown(struct resp_server *srv);

/* Closes clients whose incomplete command is older than request-timeout (the broker's tick). */
void resp_conn_sweep(struct resp_server *srv, uint64_t now_ms);

/* Frees the server and the clients still open (after the loop). NULL-safe. */
void resp_conn_free(struct resp_server *srv);

#endif
