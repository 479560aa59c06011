#ifndef HERALD_BROKER_RESP_H
#define HERALD_BROKER_RESP_H

#include "broker/broker.h"

/*
 * The RESP endpoint: redis-cli, redis-benchmark and Redis client libraries.
 * Commands: PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PING,
 * ECHO, AUTH, INFO, QUIT, HELLO, COMMAND, CONFIG GET, SELECT, CLIENT
 * (SETNAME/SETINFO), pipelined, inline or multibulk.
 */

/* Binds and starts accepting when conf->resp_port != 0. Returns 0, or -1 with *err. */
int resp_server_start(struct broker *b, const char **err);

/* Stops accepting; clients flush their output and close. */
void resp_server_shutdown(struct broker *b);

/* Closes clients whose incomplete command is older than request-timeout (the broker's tick). */
void resp_server_sweep(struct broker *b, uint64_t now_ms);

/* Frees the server (after every client is closed and freed). NULL-safe. */
void resp_server_free(struct broker *b);

#endif
