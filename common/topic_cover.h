#ifndef HERALD_COMMON_TOPIC_COVER_H
#define HERALD_COMMON_TOPIC_COVER_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Is a subscription pattern covered by the patterns a token allows?
 * (docs/protocol.md §3.10) P is covered by A = {a1..an} only when every
 * topic P can match is matched by some ai: `mail.user.42.>` covers
 * `mail.user.42.inbox` and `mail.user.42.*`, but nothing made of
 * `mail.user.42.>` covers `mail.user.*.inbox` or `mail.>`. The answer is
 * exact, also for unions (A = {`a.*`, `a.*.>`} covers `a.>`), computed over
 * the finite alphabet of A's literal tokens plus one token none of them
 * names; the search is memoised and bounded by TOPIC_COVER_BUDGET steps,
 * past which the answer is "not covered" (refusing is the safe side).
 *
 * Inputs are valid patterns (topic_pattern_valid) of at most
 * TOPIC_MAX_TOKENS tokens; n <= TOPIC_COVER_MAX_ALLOWED. Pure code: no
 * allocation beyond the stack.
 */

#define TOPIC_COVER_MAX_ALLOWED 64
#define TOPIC_COVER_BUDGET      100000

bool topic_covered(const char *pattern, size_t plen, const char *const *allowed,
                   const size_t *allowed_lens, size_t n);

#endif
