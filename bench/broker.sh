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

REDIS_PID=${pids[0]} HERALD_PID=${pids[1]}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# One redis-benchmark run; prints "ops/s ops-per-server-CPU-second". The
# second figure does not move when other work shares the machine.
rate() {
    local port=$1 pipeline=$2 pid=$3 t0 t1 ops
    t0=$(cpu_ticks "$pid")
    ops=$(taskset -c 1 redis-benchmark -p "$port" -n "$N" -c 50 -P "$pipeline" --csv \
        PUBLISH bench.topic xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx 2>/dev/null |
        awk -F'","' 'NR==2 { print int($2) }')
    t1=$(cpu_ticks "$pid")
    echo "$ops $(awk -v n="$N" -v t=$((t1 - t0)) -v hz="$TICK" 'BEGIN { print (t > 0 ? int(n * hz / t) : 0) }')"
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
    local rr hh rc hc
    rr=$(for _ in $(seq "$RUNS"); do rate $REDIS_PORT "$pipeline" "$REDIS_PID"; done)
    hh=$(for _ in $(seq "$RUNS"); do rate $HERALD_PORT "$pipeline" "$HERALD_PID"; done)
    r=$(echo "$rr" | awk '{ print $1 }' | median) rc=$(echo "$rr" | awk '{ print $2 }' | median)
    h=$(echo "$hh" | awk '{ print $1 }' | median) hc=$(echo "$hh" | awk '{ print $2 }' | median)
    for s in "${sinks[@]}"; do kill "$s" 2>/dev/null || true; done
    printf "| %-11s | %-8s | %12s | %12s | %6.2f | %12s | %12s | %6.2f |\n" "$subs" "$pipeline" \
        "$r" "$h" "$(awk -v a="$h" -v b="$r" 'BEGIN { print (b > 0 ? a / b : 0) }')" \
        "$rc" "$hc" "$(awk -v a="$hc" -v b="$rc" 'BEGIN { print (b > 0 ? a / b : 0) }')"
}

echo "PUBLISH, redis-benchmark -c 50 -n $N, median of $RUNS runs, 64-byte payload"
echo "server pinned to CPU 0, clients to CPU 1; $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB"
echo
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (ops/CPU-s: requests per second of server CPU time, steady under load)"
echo
echo "| subscribers | pipeline | redis ops/s  | herald ops/s | ratio  | redis ops/CPU-s | herald ops/CPU-s | ratio |"
echo "|-------------|----------|--------------|--------------|--------|--------------|--------------|--------|"
row 0 1
row 0 16
row 50 1
row 50 16
