/*
 * ws_key.c - Sec-WebSocket-Key and Sec-WebSocket-Accept.
 *
 * The one place the handshake's keys are computed: the edge answers with
 * ws_accept_key, and herald watch, herald-loadgen and bench/send_floor.c
 * (a client checking the answer, or a stand-in server) use the same code,
 * so the four can never disagree on the GUID or the encoding.
 *
 * EVP rather than SHA1(): the low-level digest calls are deprecated in
 * OpenSSL 3. Rejected: a SHA-1 of our own (one more hash to get right for
 * a value every peer checks).
 */
#include "common/ws/ws_key.h"

#include <string.h>

#include <openssl/evp.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void ws_key_encode(const uint8_t raw[16], char out[WS_KEY_LEN + 1])
{
    EVP_EncodeBlock((unsigned char *)out, raw, 16);
}

void ws_accept_key(const char *key, size_t keylen, char out[WS_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    out[0] = '\0';
    if (ctx == NULL) {
        return;
    }
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) && EVP_DigestUpdate(ctx, key, keylen) &&
             EVP_DigestUpdate(ctx, WS_GUID, strlen(WS_GUID)) &&
             EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);
    if (ok && md_len == 20) {
        EVP_EncodeBlock((unsigned char *)out, md, (int)md_len);
    }
}
