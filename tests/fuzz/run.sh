#!/usr/bin/env bash
# Builds one libFuzzer target with clang and fuzzes it for a while, starting
# from its seed corpus. `make test` runs every tests/fuzz/fuzz_<name>.c this
# way for a few seconds (the CTest test fuzz_<name>, label fuzz); run one
# longer by hand from anywhere:
#   tests/fuzz/run.sh <name> [seconds] [outdir]
#     name     the target tests/fuzz/fuzz_<name>.c, e.g. topic
#     seconds  how long to fuzz (default 5; 0 replays the corpus only)
#     outdir   binary, working corpus, log and crash inputs
#              (default ${TMPDIR:-/tmp}/herald-fuzz)
# Extra libFuzzer flags go in FUZZ_FLAGS, e.g. FUZZ_FLAGS=-max_len=65536;
# the compiler is $FUZZ_CC (default clang).
#
# The seeds in tests/fuzz/corpus/<name>/ are only read; what the fuzzer
# finds goes to outdir/corpus-<name>/, which later runs start from too.
# Exits non-zero when the build fails or the fuzzer stops on a crash, a
# sanitizer report, a leak, a failed check or a slow input; the input is
# left in outdir as fuzz_<name>-crash-<sha1> (or -leak-, -timeout-, ...),
# and the last lines of the log say which.
#
# Nothing to register: a target links the .c of every Herald header it
# includes, and of theirs, and the libraries of the system headers among
# them (the table below; a new library needs its line there).
set -euo pipefail

usage() {
    echo "usage: $0 <name> [seconds] [outdir]" >&2
    exit 2
}

if [ $# -lt 1 ] || [ $# -gt 3 ]; then
    usage
fi
name=$1
seconds=${2:-5}
outdir=${3:-${TMPDIR:-/tmp}/herald-fuzz}
case "$seconds" in '' | *[!0-9]*) usage ;; esac
root=$(cd "$(dirname "$0")/../.." && pwd)

# Walks the target's includes: prints "src <file.c>" for the .c of every
# Herald header it, or a source already taken, includes ("common/frame.h"
# brings common/frame.c), and "sys <header>" for each system header.
scan() {
    local queue=("tests/fuzz/fuzz_$1.c") seen=" " f inc
    while [ ${#queue[@]} -gt 0 ]; do
        f=${queue[0]}
        queue=("${queue[@]:1}")
        sed -n 's/^#include <\([^>]*\)>.*/sys \1/p' "$root/$f"
        while read -r inc; do
            case "$seen" in *" $inc "*) continue ;; esac
            seen="$seen$inc "
            if [ -f "$root/$inc.h" ]; then
                queue+=("$inc.h")
            fi
            if [ -f "$root/$inc.c" ]; then
                queue+=("$inc.c")
                echo "src $inc.c"
            fi
        done < <(sed -n 's/^#include "\([^"]*\)\.h".*/\1/p' "$root/$f")
    done
}

[ -f "$root/tests/fuzz/fuzz_$name.c" ] || usage
srcs=()
pkgs=()
libs=()
while read -r kind what; do
    if [ "$kind" = src ]; then
        srcs+=("$what")
        continue
    fi
    # The libraries behind the system headers Herald's pure code uses.
    case "$what" in
        jansson.h) pkgs+=(jansson) ;;
        openssl/*) pkgs+=(libcrypto) ;;
        http_parser.h) libs+=(-lhttp_parser) ;;
        # Debian 12 ships msgpack 4.x as "msgpack"; 6.x renamed it "msgpack-c".
        msgpack.h)
            if pkg-config --exists msgpack-c; then pkgs+=(msgpack-c); else pkgs+=(msgpack); fi ;;
    esac
done < <(scan "$name" | sort -u)

cc=${FUZZ_CC:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "run.sh: $cc not found (tools/install-deps.sh test installs it)" >&2
    exit 1
fi
pkgflags=()
if [ ${#pkgs[@]} -gt 0 ]; then
    read -r -a pkgflags <<<"$(pkg-config --cflags --libs "${pkgs[@]}")"
fi

mkdir -p "$outdir/corpus-$name"
bin=$outdir/fuzz_$name
log=$outdir/fuzz_$name.log
# The project's warnings (CMakeLists.txt), the sanitizers of make test.
# shellcheck disable=SC2054 # the commas are inside -fsanitize=
build=("$cc" -std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
    -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wvla
    -Wimplicit-fallthrough -Wpointer-arith -Wundef -Wno-format-zero-length
    -I. "tests/fuzz/fuzz_$name.c" "${srcs[@]}" "${pkgflags[@]}" "${libs[@]}" -o "$bin")
echo "(cd $root && ${build[*]})"
(cd "$root" && "${build[@]}")

seeds=()
[ -d "$root/tests/fuzz/corpus/$name" ] && seeds=("$root/tests/fuzz/corpus/$name")
if [ "$seconds" -eq 0 ]; then
    limit=(-runs=0)
else
    limit=(-max_total_time="$seconds")
fi
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
# shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
if "$bin" "${limit[@]}" -timeout=10 -print_final_stats=1 -artifact_prefix="$outdir/fuzz_$name-" \
    ${FUZZ_FLAGS:-} "$outdir/corpus-$name" "${seeds[@]}" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    inputs=$(find "$outdir/corpus-$name" -type f | wc -l)
    echo "fuzz_$name: ${runs:-?} runs, ${rate:-?} exec/s, $inputs inputs in $outdir/corpus-$name"
    exit 0
fi
echo "fuzz_$name FAILED; the end of $log:" >&2
tail -n 80 "$log" >&2
input=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
echo "replay: $bin ${input:-<the input named above>}" >&2
exit 1
