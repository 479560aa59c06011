#!/usr/bin/env bash
# Installs the Debian packages Herald needs to build, test and run, but only
# those that are missing. Used by `make run` and `make test`; safe to run twice.
#   tools/install-deps.sh build   compilers, libraries, redis-cli, curl
#   tools/install-deps.sh test    build + what the integration tests drive (node, chromium),
#                                 the linters, and clang with libFuzzer for tests/fuzz
set -euo pipefail

want=(build-essential cmake pkg-config libevent-dev libmsgpack-dev check libssl-dev
      libjansson-dev libhttp-parser-dev redis-tools curl python3 procps)
if [ "${1:-build}" = test ]; then
    # libclang-rt-dev: the sanitizer and libFuzzer runtimes of the default
    # clang (libclang-rt-14-dev on Debian 12), which clang only recommends.
    want+=(nodejs npm chromium redis-server clang-format cppcheck clang libclang-rt-dev openssl)
fi

missing=()
for p in "${want[@]}"; do
    case "$p" in
        # Node may come from elsewhere than Debian (nvm, NodeSource): a working
        # binary on PATH is enough.
        nodejs) command -v node >/dev/null 2>&1 && continue ;;
        npm) command -v npm >/dev/null 2>&1 && continue ;;
        python3) command -v python3 >/dev/null 2>&1 && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: run as root on Debian, or install them yourself:" >&2
    echo "  apt-get install ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
