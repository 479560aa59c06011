/*
 * fuzz_resp_parse.c - libFuzzer target for broker/resp_parse.c.
 *
 * make test runs it for a few seconds (CTest fuzz_resp_parse);
 * `tests/fuzz/run.sh resp_parse 600` runs it longer. To build it yourself,
 * from the repository root:
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=undefined -I. \
 *       tests/fuzz/fuzz_resp_parse.c broker/resp_parse.c -o fuzz_resp_parse
 *   ./fuzz_resp_parse -max_total_time=60
 *
 * The input is treated as a pipelined stream, parsed command by command on
 * an exact-size heap copy (ASan catches any read past the end). Beyond "no
 * crash", each parsed command is checked to be self-delimiting: its bytes
 * alone parse to the same length and argc, and the same bytes minus the
 * last one are incomplete (-2). A -1 must come with an error string.
 * Small limits let the fuzzer reach every limit branch.
 */
#include "broker/resp_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_ARGS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct resp_limits limits = {
    .max_args = FUZZ_MAX_ARGS,
    .max_bulk = 256,
    .max_inline = 512,
};

static void require(int cond)
{
    if (!cond)
        abort();
}

/* Parses the exact-size copy of in[0..len) and returns the result. */
static ssize_t parse_copy(const uint8_t *in, size_t len, size_t *argc)
{
    struct resp_arg argv[FUZZ_MAX_ARGS];
    const char *err = NULL;
    char *buf = malloc(len > 0 ? len : 1);
    ssize_t r;

    require(buf != NULL);
    memcpy(buf, in, len);
    r = resp_parse_command(buf, len, &limits, argv, argc, &err);
    free(buf);
    return r;
}

static void check_command(const uint8_t *in, size_t consumed, size_t argc)
{
    size_t again_argc;

    require(parse_copy(in, consumed, &again_argc) == (ssize_t)consumed);
    require(again_argc == argc);
    require(parse_copy(in, consumed - 1, &again_argc) == -2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size > 0 ? size : 1);
    size_t pos = 0;

    require(buf != NULL);
    memcpy(buf, data, size);
    for (;;) {
        struct resp_arg argv[FUZZ_MAX_ARGS];
        size_t argc = 0;
        const char *err = NULL;
        ssize_t r = resp_parse_command(buf + pos, size - pos, &limits, argv, &argc, &err);

        if (r == -1)
            require(err != NULL && strncmp(err, "Protocol error: ", 16) == 0);
        if (r < 0)
            break;
        require(r > 0 && (size_t)r <= size - pos && argc <= FUZZ_MAX_ARGS);
        for (size_t k = 0; k < argc; k++) {
            require(argv[k].ptr >= buf + pos);
            require(argv[k].ptr + argv[k].len <= buf + pos + (size_t)r);
        }
        check_command(data + pos, (size_t)r, argc);
        pos += (size_t)r;
    }
    free(buf);
    return 0;
}
