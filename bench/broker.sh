#!/usr/bin/env bash
# Herald broker vs redis-server: the same redis-benchmark PUBLISH load against
# both, in one run, pinned the same way (server on CPU 0, clients on CPU 1).
#
#   bench/broker.sh [requests]        (default 200000 per row, 3 runs, median)
#
# Prints a table: ops/s for each server and the ratio herald/redis.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
RUNS=${RUNS:-3}
BUILD=${BUILD:-build}
tools/install-deps.sh test >/dev/null
command -v redis-server >/dev/null || { echo "redis-server missing" >&2; exit 1; }
[ -x "$BUILD/herald-broker" ] || make build >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(free_port) HERALD_PORT=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

taskset -c 0 redis-server --port $REDIS_PORT --save '' --appendonly no --bind 127.0.0.1 \
    --loglevel warning >/dev/null &
pids+=($!)
taskset -c 0 "$BUILD/herald-broker" --resp-port $HERALD_PORT --link-port 0 --http-port 0 \
    --log-level warn --max-clients 100000 &
pids+=($!)
for p in $REDIS_PORT $HERALD_PORT; do
    for _ in $(seq 50); do redis-cli -p $p PING >/dev/null 2>&1 && break; sleep 0.1; done
done
# Make sure the ports answer with the servers this script started.
for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a server failed to start" >&2; exit 1; }
done
redis-cli -p $HERALD_PORT INFO server | grep -q herald_version ||
    { echo "port $HERALD_PORT is not our herald-broker" >&2; exit 1; }

# One redis-benchmark run; prints ops/s.
rate() {
    local port=$1 pipeline=$2
    taskset -c 1 redis-benchmark -p "$port" -n "$N" -c 50 -P "$pipeline" --csv \
        PUBLISH bench.topic xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx 2>/dev/null |
        awk -F'","' 'NR==2 { print int($2) }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

row() {
    local subs=$1 pipeline=$2 r h sinks=()
    if [ "$subs" -gt 0 ]; then
        for port in $REDIS_PORT $HERALD_PORT; do
            taskset -c 1 python3 bench/resp_sink.py $port bench.topic "$subs" 600 >/dev/null &
            sinks+=($!)
        done
        sleep 1
    fi
    r=$(for _ in $(seq "$RUNS"); do rate $REDIS_PORT "$pipeline"; done | median)
    h=$(for _ in $(seq "$RUNS"); do rate $HERALD_PORT "$pipeline"; done | median)
    for s in "${sinks[@]}"; do kill "$s" 2>/dev/null || true; done
    printf "| %-11s | %-8s | %12s | %12s | %6.2f |\n" "$subs" "$pipeline" "$r" "$h" \
        "$(awk -v a="$h" -v b="$r" 'BEGIN { print (b > 0 ? a / b : 0) }')"
}

echo "PUBLISH, redis-benchmark -c 50 -n $N, median of $RUNS runs, 64-byte payload"
echo "server pinned to CPU 0, clients to CPU 1; $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB"
echo
echo "| subscribers | pipeline | redis ops/s  | herald ops/s | ratio  |"
echo "|-------------|----------|--------------|--------------|--------|"
row 0 1
row 0 16
row 50 1
row 50 16
