#ifndef HERALD_TOOLS_HERALD_TOKEN_H
#define HERALD_TOOLS_HERALD_TOKEN_H

/*
 * `herald token`: implemented in tools/herald_token.c. Mints an HS256
 * subscription token (common/jwt.h) and prints it; needs no broker.
 * herald.c calls it after consuming the global options (which it ignores:
 * the global --secret is the broker's requirepass, never a signing key),
 * with argv[0] being "token" and the rest the command's own arguments.
 * Borrows argv. Returns the process exit status: 0 ok, 1 runtime error
 * (the secret file cannot be read), 2 usage error.
 */
int herald_token_main(int argc, char **argv);

#endif
