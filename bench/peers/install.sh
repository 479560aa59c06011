#!/usr/bin/env bash
# Installs the peers Herald is benchmarked against (nginx + nchan, mosquitto,
# redis-server) from Debian, but only those that are missing; safe to run twice.
#
# Debian's postinst scripts try to start nginx (port 80), mosquitto (1883) and
# redis-server (6379) through invoke-rc.d. A policy-rc.d that denies every
# action is put in place for the install so no daemon is left running; any
# that still started on a default port is killed afterwards.
set -euo pipefail

want=(nginx libnginx-mod-nchan mosquitto mosquitto-clients redis-server redis-tools
      curl procps iproute2 util-linux)

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "peers/install: missing Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "peers/install: run as root on Debian, or install them yourself:" >&2
    echo "  apt-get install ${missing[*]}" >&2
    exit 1
fi

# Deny service starts during the install (exit 101 = "action forbidden").
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi
cleanup() { [ "$own_policy" -eq 1 ] && rm -f "$policy"; return 0; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

# Belt and braces: a daemon listening on a Debian default port was started by
# a postinst; stop it (benchmarks start their own on other ports).
for port in 80 1883 6379; do
    for pid in $(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
        echo "peers/install: stopping daemon pid $pid left on port $port by a postinst"
        kill "$pid" 2>/dev/null || true
    done
done
