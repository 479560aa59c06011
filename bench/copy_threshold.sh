#!/usr/bin/env bash
# Copy or reference a shared frame into output evbuffers: builds
# bench/copy_threshold.c (with common/frame.c, mem.c, log.c and libevent_core)
# into a temporary directory and runs it on one core, CPU 1 (CPU=n to change;
# unpinned without taskset). Under 60 s.
#
#   bench/copy_threshold.sh         Q = 20,000 events queued per buffer in (a)
#   bench/copy_threshold.sh 5000    a smaller backlog
#
# Prints Markdown (the tables and the recommendation: see the top of
# copy_threshold.c) and writes it to bench/results/copy-threshold-<date>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

TMP=$(mktemp -d /tmp/herald-copy-threshold.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# shellcheck disable=SC2046 # pkg-config's flags are meant to split
cc -O2 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -I. $(pkg-config --cflags libevent_core) \
    -o "$TMP/copy_threshold" bench/copy_threshold.c common/frame.c common/mem.c common/log.c \
    $(pkg-config --libs libevent_core)

PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c "${CPU:-1}"); fi
date=$(date -u +%Y-%m-%d)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain bench/copy_threshold.c 2>/dev/null)" ]; then rev+=" with bench/copy_threshold.c modified"; fi
{
    echo "# Copy or reference a shared frame, $(date -u +%Y-%m-%dT%H%M%SZ)"
    echo
    echo "Produced by \`bench/copy_threshold.sh${*:+ $*}\` at $rev: bench/copy_threshold.c built with"
    echo "cc -O2 against libevent_core $(pkg-config --modversion libevent_core) (pkg-config), run with \`${PIN[*]:-no pinning}\`."
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo),"
    echo "Linux $(uname -r), glibc $(ldd --version | head -n 1 | awk '{ print $NF }'). Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "(the machine is shared: times are the thread's CPU time, but other work still shares its caches)."
    echo
    "${PIN[@]}" "$TMP/copy_threshold" "$@"
} | tee "$TMP/out.md"
mkdir -p bench/results
cp "$TMP/out.md" "bench/results/copy-threshold-$date.md"
echo "copy_threshold.sh: written bench/results/copy-threshold-$date.md" >&2
