#ifndef HERALD_COMMON_TOPIC_H
#define HERALD_COMMON_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Topic and pattern syntax (docs/protocol.md §1.1). A topic is dot-separated
 * tokens; a token is 1+ bytes of printable ASCII (0x21..0x7e) except '.',
 * '*', '>' (and so no space). A pattern may also use `*` as a whole token
 * (exactly one token) and `>` as the whole last token (one or more trailing
 * tokens). Pure code: no allocation.
 */

struct topic_limits {
    size_t max_len;    /* bytes, e.g. 256 */
    size_t max_tokens; /* e.g. 16 */
};

#define TOPIC_DEFAULT_MAX_LEN    256
#define TOPIC_DEFAULT_MAX_TOKENS 16
/* The largest max-topic-length / max-topic-tokens the configurations accept:
 * a stack buffer of TOPIC_MAX_LEN + 1 holds any topic or pattern. */
#define TOPIC_MAX_LEN    4096
#define TOPIC_MAX_TOKENS 256

/* True when s[0..len) is a valid publish topic (no wildcard). *err (static) says why not. */
bool topic_valid(const char *s, size_t len, const struct topic_limits *lim, const char **err);

/* True when s[0..len) is a valid subscription pattern. */
bool topic_pattern_valid(const char *s, size_t len, const struct topic_limits *lim,
                         const char **err);

/* True when the valid pattern has a wildcard token. */
bool topic_is_pattern(const char *s, size_t len);

/* True when the valid topic matches the valid pattern (reference matcher, used by tests). */
bool topic_matches(const char *pattern, size_t plen, const char *topic, size_t tlen);

#endif
