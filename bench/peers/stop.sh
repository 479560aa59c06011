#!/usr/bin/env bash
# Stops peers started by bench/peers/start.sh: SIGTERM to each PID (nginx's
# master takes its worker down with it), then waits up to 5 s for them to
# exit; SIGKILL for any still alive. A zombie counts as exited: the peers are
# reparented to PID 1, which here reaps them only after a second or so.
#   bench/peers/stop.sh PID...
set -uo pipefail

alive() {
    local st
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}

for pid in "$@"; do
    kids=$(pgrep -P "$pid" 2>/dev/null || true)
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do
        busy=0
        for p in "$pid" $kids; do alive "$p" && busy=1; done
        [ "$busy" -eq 0 ] && break
        sleep 0.1
    done
    for p in "$pid" $kids; do
        if alive "$p"; then
            echo "stop.sh: $p still alive after SIGTERM, killing" >&2
            kill -KILL "$p" 2>/dev/null || true
        fi
    done
done
