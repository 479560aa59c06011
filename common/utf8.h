#ifndef HERALD_COMMON_UTF8_H
#define HERALD_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Incremental UTF-8 validator (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), usable across WebSocket fragments split at any
 * byte. State is one uint32_t so it fits in a connection struct.
 */

#define UTF8_ACCEPT 0u
#define UTF8_REJECT 1u

/*
 * Feeds len bytes; *state starts at UTF8_ACCEPT. Returns false as soon as
 * the input can no longer be valid (state becomes UTF8_REJECT).
 */
bool utf8_feed(uint32_t *state, const uint8_t *s, size_t len);

/* True when state ends a complete, valid sequence (use at the final fragment). */
bool utf8_complete(uint32_t state);

/* One-shot check of a whole buffer. */
bool utf8_valid(const uint8_t *s, size_t len);

#endif
