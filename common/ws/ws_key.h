#ifndef HERALD_COMMON_WS_WS_KEY_H
#define HERALD_COMMON_WS_WS_KEY_H

#include <stddef.h>
#include <stdint.h>

/*
 * The two keys of the RFC 6455 opening handshake (section 4): the
 * client's Sec-WebSocket-Key and the server's Sec-WebSocket-Accept, with
 * OpenSSL's SHA-1 and base64.
 */

#define WS_KEY_LEN    24 /* base64 of 16 bytes: 22 symbols and "==" */
#define WS_ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1 digest */

/* Writes the Sec-WebSocket-Key for the 16 bytes raw into out (NUL-terminated). */
void ws_key_encode(const uint8_t raw[16], char out[WS_KEY_LEN + 1]);

/*
 * Writes base64(SHA-1(key + the RFC's GUID)), the Sec-WebSocket-Accept
 * answering key[0..keylen), into out (NUL-terminated). A digest failure
 * (not possible for SHA-1 outside a broken library) leaves out empty,
 * which no peer accepts.
 */
void ws_accept_key(const char *key, size_t keylen, char out[WS_ACCEPT_LEN + 1]);

#endif
