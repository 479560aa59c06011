#ifndef HERALD_BROKER_RESP_PARSE_H
#define HERALD_BROKER_RESP_PARSE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Pure RESP2 request parser (no sockets, no allocation): multibulk
 * commands (`*N\r\n$len\r\narg\r\n...`) and inline commands (a line of
 * space-separated words, optionally "double quoted" with \" \\ \n \r \t
 * \b \a \xHH escapes or 'single quoted' with \', as redis-cli and telnet
 * send; the rules are Redis's sdssplitargs). The parser borrows the input
 * and returns views into it; it keeps no state between calls, so the caller
 * re-calls with the same (grown) buffer after -2.
 *
 * The buffer is writable for one reason: quoted inline words are decoded in
 * place (a decoded word is never longer than its source). Bytes are only
 * rewritten inside the range of a complete inline line, so after -2 the
 * buffer is untouched; after success or -1 the consumed range may differ
 * from what was read. Multibulk input is never written.
 */

struct resp_limits {
    size_t max_args;   /* arguments per command (argv capacity), e.g. 1024 */
    size_t max_bulk;   /* bytes per argument, e.g. max-payload + 1kb */
    size_t max_inline; /* bytes of an inline line before its \r\n, e.g. 64kb */
};

/* A view into the parsed buffer, valid while that buffer is. */
struct resp_arg {
    const char *ptr;
    size_t len;
};

/*
 * Parses one command from buf[0..len), borrowing buf (see above for the
 * in-place decoding of quoted inline words). On success returns the bytes
 * consumed (> 0) and fills argv[0..*argc) (capacity lim->max_args). An
 * empty inline line ("\r\n", "\n", or only blanks) and "*0\r\n" or
 * "*-1\r\n" (which Redis ignores) return the bytes consumed with
 * *argc == 0: skip them. Returns -2 when buf holds only a prefix of a valid
 * command (including when it is empty), -1 with *err (static string, Redis
 * wording, e.g. "Protocol error: invalid multibulk length") when malformed
 * or over a limit. Limits are checked as soon as the header that declares
 * a size is complete, before its data arrives.
 */
ssize_t resp_parse_command(char *buf, size_t len, const struct resp_limits *lim,
                           struct resp_arg *argv, size_t *argc, const char **err);

#endif
