#!/usr/bin/env bash
# Herald edge benchmark: one herald-edge worker against N WebSocket
# subscribers, 64-byte payloads, format=raw.
#
#   bench/edge.sh                   N=15000 by default; environment knobs below
#   N=2000 bench/edge.sh            a quick validation run
#   PHASES=unicast bench/edge.sh    some phases only (broadcast, unicast, idle, tls)
#   N=5000 PHASES="idle tls" bench/edge.sh
#                                   memory only: (1) and (4), no publishing (what
#                                   bench/results/edge-tls-*.md were made with)
#   BUILD=dir bench/edge.sh         binaries from another build tree (default build/)
#
# Reports, as a Markdown table (also written to bench/results/edge-<date>.md):
#   (1) edge RSS bytes per idle subscribed connection, minus the empty
#       process (VmRSS before connecting, and after all N are open and
#       subscribed and 2 s idle); once with one topic for all, once with a
#       topic per connection;
#   (2) broadcast: one topic, all N subscribed, publishing at increasing
#       rates: deliveries/s and publish-to-receive latency p50/p99/p999; and
#       1 event/s to N subscribers, p99 against a kernel floor measured in the
#       same run (bench/send_floor.c: one small send() on each of N idle
#       loopback sockets, probed just before each of ONE_RUNS 1 event/s
#       runs; medians reported);
#   (3) unicast: connection i on user.<i>, events to random users at fixed
#       rates for UNICAST_S seconds: delivered rate and latency;
#   (4) TLS (phase tls): bytes per idle subscribed connection as in (1), one
#       topic for all, for herald-edge over ws and over wss (tls-cert-file) and
#       for nginx + nchan (Debian's, one worker, bench/peers/) over ws and wss,
#       each a fresh server, the same load generators (herald-loadgen wss://,
#       verifying a self-signed EC P-256 certificate made for the run); then
#       bench/tls_mem.c: what OpenSSL holds per idle connection, by allocation
#       site. nginx is installed by bench/peers/install.sh when missing.
# Phase idle: (1) alone (both topic modes), without the publishing of (2)
# and (3). The results file is bench/results/edge-<date>.md, or
# edge-tls-<date>.md when the tls phase ran.
# Pinning: edge on CPU 0; broker, publisher and load generators on CPU 1, so
# the broker shares the load core. Load generators: ceil(N / PER_PROC)
# herald-loadgen processes, each bound to its own source IP 127.0.0.<2+j>.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

N=${N:-15000}
PER_PROC=${PER_PROC:-5000}            # sockets per load generator process (<= 18000)
BUILD=${BUILD:-build}
RATES=${RATES:-"5 10 20 40 80 160 320 640"} # broadcast events/s, each to all N
STEP_S=${STEP_S:-4}                   # seconds per broadcast rate
ONE_S=${ONE_S:-10}                    # seconds of each 1 event/s run
ONE_RUNS=${ONE_RUNS:-3}               # 1 event/s runs; the median p99 is reported
UNICAST_RATES=${UNICAST_RATES:-"20000 80000"}
UNICAST_S=${UNICAST_S:-10}
PHASES=${PHASES:-"broadcast unicast tls"} # any of broadcast unicast idle tls
DRAIN_MAX_S=${DRAIN_MAX_S:-30}        # longest wait for deliveries after a publisher ends
TLS_MEM_N=${TLS_MEM_N:-5000}          # tls_mem's connections (two descriptors each, <= 9000)
TLS_RATE=${TLS_RATE:-1000}            # phase tls: connects/s per load generator (all four rows)
TLS_PENDING=${TLS_PENDING:-100}       # phase tls: connects + handshakes in flight per generator
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EDGE_PORT=${EDGE_PORT:-$(free_port)}
LINK_PORT=${LINK_PORT:-$(free_port)}
RESP_PORT=${RESP_PORT:-$(free_port)}
HTTP_PORT=${HTTP_PORT:-$(free_port)}

[ "$PER_PROC" -le 18000 ] || { echo "PER_PROC must be <= 18000" >&2; exit 2; }
[ "$N" -le 18000 ] || { echo "N must be <= 18000 (one edge process, fd limit $(ulimit -n))" >&2; exit 2; }
command -v redis-cli >/dev/null || { echo "redis-cli missing" >&2; exit 1; }
for b in herald-broker herald-edge herald-loadgen send_floor tls_mem; do
    [ -x "$BUILD/$b" ] || { make build BUILD="$BUILD" >/dev/null; break; }
done
LG=$BUILD/herald-loadgen

TMP=$(mktemp -d /tmp/herald-edge-bench.XXXXXX)
NOTES=""
pids=() lg_pids=() peer_pids=() broker_pid="" edge_pid=""
RPS_FILE=/sys/class/net/lo/queues/rx-0/rps_cpus
RPS_OLD=""
RESTORE=() # "file old-value" pairs, restored at exit
cleanup() {
    trap - EXIT INT TERM
    for p in "${lg_pids[@]}" "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ ${#peer_pids[@]} -eq 0 ] || bench/peers/stop.sh "${peer_pids[@]}" || true
    wait 2>/dev/null || true
    if [ -n "$RPS_OLD" ]; then
        echo "$RPS_OLD" >"$RPS_FILE" && echo "edge.sh: restored $RPS_FILE to $RPS_OLD" >&2
    fi
    for r in "${RESTORE[@]}"; do
        echo "${r#* }" >"${r%% *}" && echo "edge.sh: restored ${r%% *} to ${r#* }" >&2
    done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# On loopback the receiving socket's kernel work runs on the sender's CPU, so
# the edge core would also pay for what the browsers' machines do in
# production. Receive Packet Steering moves it to the load core (CPU 1) for
# the run; STEER_RPS=0 keeps the machine's setting.
# Steered packets wait in the target CPU's backlog, which holds 1,000 by
# default: past it they are dropped and TCP stalls in retransmit timeouts, so
# the backlog is raised too. Receive flow steering then processes each flow on
# the CPU that reads its socket (the edge's on CPU 0, the load generators' on
# CPU 1), as if each ran on its own host (the same setup as bench/scale.sh).
set_sys() { # file value
    RESTORE+=("$1 $(cat "$1")")
    echo "$2" >"$1"
    echo "edge.sh: $1 ${RESTORE[-1]#* } -> $2, restored at exit" >&2
}
if [ "${STEER_RPS:-1}" = 1 ] && [ -w "$RPS_FILE" ]; then
    RPS_OLD=$(cat "$RPS_FILE")
    echo 2 >"$RPS_FILE"
    echo "edge.sh: $RPS_FILE $RPS_OLD -> 2 (loopback receive work on CPU 1), restored at exit" >&2
    set_sys /proc/sys/net/core/netdev_max_backlog 200000
    set_sys /proc/sys/net/core/rps_sock_flow_entries 65536
    set_sys /sys/class/net/lo/queues/rx-0/rps_flow_cnt 65536
fi

log() { echo "edge.sh: $*" >&2; }
rss_of() { cat "/proc/$1/status" 2>/dev/null | awk '/^VmRSS/ { print $2 * 1024 }'; }
cpu_ticks() { cat "/proc/$1/stat" 2>/dev/null | awk '{ print $14 + $15 }'; }

# ------------------------------------------------------------ servers

start_broker() {
    taskset -c 1 "$BUILD/herald-broker" --bind 127.0.0.1 --link-port "$LINK_PORT" \
        --resp-port "$RESP_PORT" --http-port "$HTTP_PORT" --log-level warn 2>"$TMP/broker.err" &
    broker_pid=$!
    pids+=("$broker_pid")
    for _ in $(seq 50); do redis-cli -p "$RESP_PORT" PING >/dev/null 2>&1 && return 0; sleep 0.1; done
    log "broker did not start"; cat "$TMP/broker.err" >&2; exit 1
}

# start_edge [DIRECTIVE ARGS...]: with --tls-cert-file the port speaks only TLS (set EDGE_HTTP=https).
EDGE_HTTP=http
start_edge() {
    taskset -c 0 "$BUILD/herald-edge" --bind 127.0.0.1 --port "$EDGE_PORT" \
        --broker "127.0.0.1:$LINK_PORT" --workers 1 --log-level warn "$@" 2>>"$TMP/edge.err" &
    edge_pid=$!
    pids+=("$edge_pid")
    for _ in $(seq 100); do
        curl -sfk "$EDGE_HTTP://127.0.0.1:$EDGE_PORT/metrics" 2>/dev/null |
            grep -q '^herald_edge_broker_links_up 1' && return 0
        sleep 0.1
    done
    log "edge did not start or link to the broker"; cat "$TMP/edge.err" >&2; exit 1
}

stop_edge() {
    kill "$edge_pid" 2>/dev/null || true
    wait "$edge_pid" 2>/dev/null || log "edge exited with status $? (see below)"
}

edge_metric() {
    curl -sfk "$EDGE_HTTP://127.0.0.1:$EDGE_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

# ---------------------------------------------------- load generators

# start_subs MODE: ceil(N / PER_PROC) processes; waits until all print ready.
# SUB_URL (default ws://127.0.0.1:<SUB_PORT or EDGE_PORT>/ws) and SUB_ARGS (default: the
# herald adapter, format=raw, kernel receive stamps) say where to and how; SUB_RATE (5000
# connects/s) and SUB_PENDING (1000 in flight) how fast, per load generator.
SUB_ARGS=(--raw --kernel-ts)
start_subs() {
    local mode=$1 j=0 off=0 cnt
    lg_pids=()
    while [ "$off" -lt "$N" ]; do
        cnt=$((N - off < PER_PROC ? N - off : PER_PROC))
        taskset -c 1 "$LG" sub --url "${SUB_URL:-ws://127.0.0.1:${SUB_PORT:-$EDGE_PORT}/ws}" \
            --connections "$cnt" --offset "$off" --topic-mode "$mode" --topic bench.all \
            --users "$N" "${SUB_ARGS[@]}" --source-ips "127.0.0.$((2 + j))" --rate "${SUB_RATE:-5000}" \
            --max-pending "${SUB_PENDING:-1000}" --progress-ms 500 \
            --hist-out "$TMP/hist.$j" --duration 3600 >"$TMP/lg.$j.out" 2>"$TMP/lg.$j.err" &
        lg_pids+=($!)
        j=$((j + 1)) off=$((off + cnt))
    done
    WIN=0
    for _ in $(seq 600); do
        if [ "$(cat "$TMP"/lg.*.out 2>/dev/null | grep -c '^ready')" -eq "${#lg_pids[@]}" ]; then
            break
        fi
        sleep 0.2
    done
    CONNECTED=$({ grep -h '^ready' "$TMP"/lg.*.out || true; } | field connected | sum)
    FAILED=$({ grep -h '^ready' "$TMP"/lg.*.out || true; } | field failed | sum)
    log "$mode: $CONNECTED connected, $FAILED failed, ${#lg_pids[@]} load generator processes"
}

stop_subs() {
    for p in "${lg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${lg_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    lg_pids=()
    rm -f "$TMP"/lg.* "$TMP"/hist.*
}

# Waits until a probe PUBLISH reaches the edge (its SUB for the topic is in place).
wait_routed() {
    for _ in $(seq 100); do
        if [ "$(redis-cli -p "$RESP_PORT" PUBLISH "$1" probe 2>/dev/null)" = 1 ]; then
            sleep 1 # let the probes' deliveries land in the window measure() discards
            return 0
        fi
        sleep 0.1
    done
    log "topic $1 never routed to the edge"; exit 1
}

# Ends the current window in every load generator; waits for their summary lines.
end_window() {
    local w=$WIN
    for p in "${lg_pids[@]}"; do kill -USR1 "$p"; done
    for _ in $(seq 200); do
        if [ "$(cat "$TMP"/lg.*.out | grep -c "^window=$w ")" -eq "${#lg_pids[@]}" ]; then
            break
        fi
        sleep 0.05
    done
    WIN=$((w + 1))
}

# window_lines, window_sum, window_received_now, drain, merged_percentiles: bench/lib.sh

# measure EXPECTED PUBLISHER-ARGS...: one window around one publisher run.
# Sets R_* variables for the caller's row.
measure() {
    local expected=$1 e0 b0 t0 t1 first last span cpu0 cpu1
    shift
    end_window
    cpu0=$(window_sum $((WIN - 1)) cpu_s)
    e0=$(cpu_ticks "$edge_pid") b0=$(cpu_ticks "$broker_pid") t0=$(date +%s.%N)
    taskset -c 1 "$LG" publish --resp "127.0.0.1:$RESP_PORT" "$@" >"$TMP/pub.out" 2>"$TMP/pub.err" ||
        log "publisher: $(cat "$TMP/pub.out" "$TMP/pub.err")"
    drain "$expected"
    R_EDGE_CPU=$(awk -v a="$e0" -v b="$(cpu_ticks "$edge_pid")" -v t0="$t0" -v t1="$(date +%s.%N)" \
        'BEGIN { printf "%.0f", (b - a) / (t1 - t0) }')
    R_BROKER_CPU=$(awk -v a="$b0" -v b="$(cpu_ticks "$broker_pid")" -v t0="$t0" -v t1="$(date +%s.%N)" \
        'BEGIN { printf "%.0f", (b - a) / (t1 - t0) }')
    t1=$(date +%s.%N)
    if ! kill -0 "$edge_pid" 2>/dev/null; then
        log "the edge exited during: publish $*"
        NOTES+="The edge process exited during the run \`publish $*\`. "
    fi
    end_window
    local w=$((WIN - 1))
    cpu1=$(window_sum "$w" cpu_s)
    R_LG_CPU=$(awk -v a="$cpu0" -v b="$cpu1" -v t0="$t0" -v t1="$t1" \
        'BEGIN { printf "%.0f", 100 * (b - a) / (t1 - t0) }')
    R_RECEIVED=$(window_sum "$w" received)
    R_EXPECTED=$expected
    R_SHORT=$(window_sum "$w" short)
    R_EXTRA=$(window_sum "$w" extra)
    R_APP_P99=$(window_lines "$w" | field app_lat_p99_us | sort -n | tail -n 1)
    R_MISROUTED=$(window_sum "$w" misrouted)
    R_CLOSED=$(window_sum "$w" closed)
    R_PUB_RATE=$(field rate_per_s <"$TMP/pub.out")
    first=$(window_lines "$w" | field first_us | { grep -v '^0$' || true; } | sort -n | head -n 1)
    last=$(window_lines "$w" | field last_us | sort -n | tail -n 1)
    span=$(( ${last:-0} - ${first:-0} ))
    R_RATE=$(awk -v n="$R_RECEIVED" -v s="$span" 'BEGIN { printf "%.0f", (s > 0 ? n * 1e6 / s : 0) }')
    read -r R_P50 R_P99 R_P999 R_MAX < <(merged_percentiles "0.5 0.99 0.999")
}

# ------------------------------------------------------------- phases

OUT=$TMP/report.md
emit() { echo "$*" >>"$OUT"; }

memory_row() {
    local label=$1 base=$2 rss
    sleep 2
    rss=$(rss_of "$edge_pid")
    emit "| (1) RSS per idle subscribed connection, $label | $(( (rss - base) / (CONNECTED > 0 ? CONNECTED : 1) )) B | ≤ 1,024 B | baseline $base B, with $CONNECTED connections $rss B |"
}

# floor_probe drain|idle: µs for one 66-byte send() on each of N idle loopback sockets
# (median of 20 rounds), sender on CPU 0, receiving process on CPU 1.
build_floor() {
    if [ ! -x "$TMP/bin/send_floor" ]; then
        mkdir -p "$TMP/bin"
        cp "$BUILD/send_floor" "$TMP/bin/send_floor"
    fi
}
floor_probe() {
    build_floor
    taskset -c 0 "$TMP/bin/send_floor" "$N" 20 66 1 "$1" | field round_us_p50
}

# The floor with the very receivers of the edge runs: the load generators
# connect to `send_floor ws` (on CPU 0, where the edge runs) instead of the
# edge, and it sends one 66-byte frame to each of them once a second,
# ONE_RUNS x ONE_S rounds. Their deliveries are timed exactly as the edge's
# (publisher-side stamp to kernel receive stamp), so WS_P99 is the p99 the
# edge's 1 event/s runs are read against. Sets WS_P50 WS_P99 WS_MAX WS_ROUND WS_RECEIVED.
ws_floor_phase() {
    local port rounds=$((ONE_RUNS * ONE_S)) probe
    build_floor
    port=$(free_port)
    taskset -c 0 "$TMP/bin/send_floor" ws "$N" "$port" "$rounds" 1000 >"$TMP/wsfloor.out" \
        2>"$TMP/wsfloor.err" &
    probe=$!
    for _ in $(seq 100); do # listening? (a test connection would count as a client)
        ss -ltnH "sport = :$port" 2>/dev/null | grep -q . && break
        sleep 0.05
    done
    SUB_PORT=$port start_subs broadcast
    end_window # window 1: the probe's rounds (it starts 2 s after its last connection)
    wait "$probe" || log "send_floor ws failed: $(cat "$TMP/wsfloor.err")"
    drain $((rounds * CONNECTED))
    end_window
    WS_RECEIVED="$(window_sum $((WIN - 1)) received) / $((rounds * CONNECTED))"
    WS_ROUND=$(field round_us_p50 <"$TMP/wsfloor.out")
    read -r WS_P50 WS_P99 WS_MAX < <(merged_percentiles "0.5 0.99")
    stop_subs
}

broadcast_phase() {
    local base r
    start_edge
    sleep 1
    base=$(rss_of "$edge_pid")
    start_subs broadcast
    memory_row "one topic for all" "$base"
    wait_routed bench.all
    BROADCAST_ROWS=""
    BEST_RATE=0
    for r in $RATES; do
        measure $((r * STEP_S * CONNECTED)) --rate "$r" --count $((r * STEP_S)) --topic bench.all
        BROADCAST_ROWS+="| $r | $((r * CONNECTED)) | $R_RATE | $R_RECEIVED / $R_EXPECTED | $R_SHORT / $R_EXTRA | $R_CLOSED | $R_P50 | $R_P99 | $R_P999 | $R_MAX | $R_APP_P99 | $R_EDGE_CPU% | $R_BROKER_CPU% | $R_LG_CPU% |"$'\n'
        if [ "$R_RATE" -gt "$BEST_RATE" ]; then BEST_RATE=$R_RATE; fi
    done
    local p99s="" floors="" i f
    RATIOS="" WS_RATIOS=""
    ONE_ROW=""
    # each run right after its own floor probe: other load on the machine varies
    for i in $(seq "$ONE_RUNS"); do
        f=$(floor_probe drain)
        measure $((ONE_S * CONNECTED)) --rate 1 --count "$ONE_S" --topic bench.all
        p99s+="$R_P99 " floors+="$f "
        RATIOS+="$(awk -v p="$R_P99" -v f="$f" 'BEGIN { printf "%.2f", (f > 0 ? p / f : 0) }') "
        WS_RATIOS+="$(awk -v p="$R_P99" -v f="${WS_P99:-0}" 'BEGIN { printf "%.2f", (f > 0 ? p / f : 0) }') "
        ONE_ROW+="run $i: floor $f, p50 $R_P50, p99 $R_P99, p999 $R_P999, app-level p99 $R_APP_P99 µs, $R_RECEIVED / $R_EXPECTED received, short $R_SHORT; "
    done
    ONE_P99=$(median_of "$p99s")
    FLOOR=$(median_of "$floors")
    RATIO=$(median_of "$RATIOS")
    WS_RATIO=$(median_of "$WS_RATIOS")
    SLOW_B=$(edge_metric herald_edge_slow_consumers_total)
    stop_subs
    stop_edge
}

unicast_phase() {
    local base r
    start_edge
    sleep 1
    base=$(rss_of "$edge_pid")
    start_subs unicast
    memory_row "own topic each (user.<i>)" "$base"
    wait_routed "user.$((N - 1))"
    UNICAST_ROWS=""
    for r in $UNICAST_RATES; do
        measure $((r * UNICAST_S)) --rate "$r" --count $((r * UNICAST_S)) --topic-mode unicast \
            --users "$N" --seed "$RANDOM"
        UNICAST_ROWS+="| $r | $R_PUB_RATE | $R_RATE | $R_RECEIVED / $R_EXPECTED | $R_SHORT / $R_EXTRA | $R_MISROUTED | $R_P50 | $R_P99 | $R_P999 | $R_MAX | $R_APP_P99 | $R_EDGE_CPU% | $R_BROKER_CPU% | $R_LG_CPU% |"$'\n'
    done
    SLOW_U=$(edge_metric herald_edge_slow_consumers_total)
    stop_subs
    stop_edge
}

# (1) without publishing: a fresh edge per topic mode, N idle subscribers, RSS.
idle_phase() {
    local mode base
    for mode in broadcast unicast; do
        start_edge
        sleep 1
        base=$(rss_of "$edge_pid")
        start_subs "$mode"
        if [ "$mode" = broadcast ]; then
            memory_row "one topic for all" "$base"
        else
            memory_row "own topic each (user.<i>)" "$base"
        fi
        stop_subs
        stop_edge
    done
}

# nginx with the nchan module, from Debian (bench/peers/install.sh when missing).
nginx_ready() {
    if ! command -v nginx >/dev/null || [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
        bench/peers/install.sh >&2 || return 1
    fi
    command -v nginx >/dev/null && [ -e /usr/lib/nginx/modules/ngx_nchan_module.so ]
}

declare -A TLS_B TLS_NOTE
# tls_row herald|nginx ws|wss: a fresh server, N idle subscribers on one topic, RSS per
# connection into TLS_B[server.scheme], the rest into TLS_NOTE.
tls_row() {
    local server=$1 scheme=$2 url mem_pid base rss lg_rss port tport master=""
    local ca=()
    [ "$scheme" = wss ] && ca=(--ca "$TLS_CERT")
    if [ "$server" = herald ]; then
        if [ "$scheme" = wss ]; then
            EDGE_HTTP=https start_edge --tls-cert-file "$TLS_CERT" --tls-key-file "$TLS_KEY"
        else
            start_edge
        fi
        mem_pid=$edge_pid url=$scheme://127.0.0.1:$EDGE_PORT/ws
        SUB_ARGS=(--proto herald --raw "${ca[@]}")
    else
        port=$(free_port) tport=$(free_port)
        if [ "$scheme" = wss ]; then
            master=$(bench/peers/start.sh nchan-tls "$port" "$tport" "$TLS_CERT" "$TLS_KEY" "$TMP/nginx-wss")
            url=wss://127.0.0.1:$tport/sub
        else
            master=$(bench/peers/start.sh nchan "$port" "$TMP/nginx-ws")
            url=ws://127.0.0.1:$port/sub
        fi
        peer_pids+=("$master")
        mem_pid=$(pgrep -P "$master" | head -n 1) # its one worker holds the connections
        SUB_ARGS=(--proto nchan "${ca[@]}")
    fi
    sleep 1
    base=$(rss_of "$mem_pid")
    SUB_URL=$url SUB_RATE=$TLS_RATE SUB_PENDING=$TLS_PENDING start_subs broadcast
    sleep 2
    rss=$(rss_of "$mem_pid")
    lg_rss=0
    for p in "${lg_pids[@]}"; do lg_rss=$((lg_rss + $(rss_of "$p"))); done
    TLS_B[$server.$scheme]=$(((rss - base) / (CONNECTED > 0 ? CONNECTED : 1)))
    TLS_NOTE[$server.$scheme]="$CONNECTED connected, $FAILED failed; RSS $base → $rss B; load generators $((lg_rss / (CONNECTED > 0 ? CONNECTED : 1))) B per connection"
    if [ "$scheme" = wss ]; then
        TLS_NOTE[$server.$scheme]+="; $(grep -h '^ready' "$TMP"/lg.*.out | head -n 1 | field tls) $(grep -h '^ready' "$TMP"/lg.*.out | head -n 1 | field cipher)"
    fi
    if [ "$FAILED" -gt 0 ]; then # why, from each generator's last progress line
        TLS_NOTE[$server.$scheme]+="; last errors: $(for f in "$TMP"/lg.*.err; do grep 'last_error=' "$f" | tail -n 1 | field last_error; done | sort | uniq -c | xargs)"
    fi
    stop_subs
    SUB_ARGS=(--raw --kernel-ts)
    if [ "$server" = herald ]; then
        stop_edge
    else
        bench/peers/stop.sh "$master"
        peer_pids=()
    fi
}

# (4): herald and nginx, ws and wss, then OpenSSL's share by allocation site.
tls_phase() {
    TLS_CERT=$TMP/tls.crt TLS_KEY=$TMP/tls.key
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=herald-bench -addext subjectAltName=IP:127.0.0.1 -keyout "$TLS_KEY" \
        -out "$TLS_CERT" 2>"$TMP/openssl.err" || { log "openssl: $(cat "$TMP/openssl.err")"; exit 1; }
    chmod 644 "$TLS_KEY" # nginx reads it as root, but its workers may not; nothing secret
    tls_row herald ws
    tls_row herald wss
    if nginx_ready; then
        tls_row nginx ws
        tls_row nginx wss
    else
        NOTES+="nginx with nchan is not installed and bench/peers/install.sh could not install it: no nginx rows. "
    fi
    "$BUILD/tls_mem" "$TLS_CERT" "$TLS_KEY" "$TLS_MEM_N" 12 >"$TMP/tls_mem.md" 2>"$TMP/tls_mem.err" ||
        log "tls_mem failed: $(cat "$TMP/tls_mem.err")"
}

# Bytes, their difference and ratio for the TLS table; "-" when a row is missing.
tls_cell() { echo "${TLS_B[$1]:--}"; }
tls_diff() {
    local a=${TLS_B[$1.wss]:-} b=${TLS_B[$1.ws]:-}
    [ -n "$a" ] && [ -n "$b" ] && echo $((a - b)) || echo -
}
tls_ratio() {
    local h=${TLS_B[herald.$1]:-} n=${TLS_B[nginx.$1]:-}
    [ -n "$h" ] && [ -n "$n" ] && [ "$n" -gt 0 ] && awk -v h="$h" -v n="$n" 'BEGIN { printf "%.2f", h / n }' || echo -
}

tls_report() {
    echo
    echo "## (4) TLS: bytes per idle subscribed connection, herald-edge and nginx + nchan, ws and wss"
    echo
    echo "Each a fresh server; N=$N herald-loadgen connections ($TLS_RATE connects/s and at most $TLS_PENDING in flight per"
    echo "generator, alike for the four rows; format=raw for herald), one topic for all"
    echo "(nchan: channel bench_all), RSS after they are all open and 2 s idle minus before, over the"
    echo "connected. herald-edge --workers 1 with tls-cert-file / tls-key-file; nginx $(nginx -v 2>&1 | sed 's/.*nginx\///')"
    echo "+ libnginx-mod-nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null) from Debian, one worker"
    echo "(bench/peers/nginx-nchan.conf; wss: \`start.sh nchan-tls\`, TLS 1.2 and 1.3, otherwise nginx's TLS defaults:"
    echo "ssl_buffer_size 16k, no session cache, tickets on). Certificate: self-signed EC P-256 made for the run,"
    echo "verified by the load generator (--ca). $(openssl version)."
    echo
    echo "| server | ws B / conn | wss B / conn | TLS adds | wss notes |"
    echo "|---|---|---|---|---|"
    echo "| herald-edge | $(tls_cell herald.ws) | $(tls_cell herald.wss) | $(tls_diff herald) | ${TLS_NOTE[herald.wss]:-} |"
    echo "| nginx + nchan | $(tls_cell nginx.ws) | $(tls_cell nginx.wss) | $(tls_diff nginx) | ${TLS_NOTE[nginx.wss]:-} |"
    echo "| herald / nginx | $(tls_ratio ws) | $(tls_ratio wss) | | |"
    echo
    echo "ws rows: herald ${TLS_NOTE[herald.ws]:--}; nginx ${TLS_NOTE[nginx.ws]:--}."
    if [ -s "$TMP/tls_mem.md" ]; then
        echo
        echo "What OpenSSL holds per idle connection (\`tls_mem CERT KEY $TLS_MEM_N\`, bench/tls_mem.c: N connections"
        echo "over socket pairs in one process, the server end made from Herald's own context, common/tls.c;"
        echo "\"chunk bytes\": as glibc malloc chunks, what RSS pays; kernel socket memory not included):"
        echo
        cat "$TMP/tls_mem.md"
    fi
}

# The report's parts for phases 2 and 3 (printed only when they ran).
ran() { [[ " $PHASES " == *" $1 "* ]]; }
cpu_rows_broadcast() {
    echo "| (2) broadcast deliveries/s at saturation | $BEST_RATE | ≥ 600,000 | best of the rates below |"
    echo "| (2) 1 event/s to N, p99 (median of $ONE_RUNS runs of $ONE_S events) | $ONE_P99 µs | | $ONE_ROW |"
    echo "| (2) kernel floor with the same receivers: N × one small send to the load generators' own connections, p99 | $WS_P99 µs | | bench/send_floor.c ws on CPU 0 instead of the edge, one 66-byte frame per connection per second, $((ONE_RUNS * ONE_S)) rounds, timed by the same load generators as the edge: p50 $WS_P50, p99 $WS_P99, max $WS_MAX µs, $WS_RECEIVED received; its send loop alone: $WS_ROUND µs (median round) |"
    echo "| (2) p99 / the same-receiver floor's p99 | $WS_RATIO | ≤ 1.3 | median of the per-run ratios: $WS_RATIOS |"
    echo "| (2) send loop with the probe's own reader: N × one small send | $FLOOR µs | | bench/send_floor.c, 66 B, median of 20 rounds, run before each 1 event/s run (median of those); reader process epoll-waiting on CPU 1. Without a waiting reader (no wake-ups): $FLOOR_IDLE µs. A send loop's length, not a delivery time: the receive stamps land after the loop (compare the same-receiver row) |"
    echo "| (2) p99 / that send loop | $RATIO | | median of the per-run ratios: $RATIOS (the ratio earlier runs reported against ≤ 1.3) |"
}
broadcast_table() {
    echo
    echo "Broadcast, one topic, $STEP_S s per rate. Latencies in µs; edge, broker, loadgens: the"
    echo "processes' CPU time (/proc/PID/stat) as % of one core over the run."
    echo
    echo "| events/s | offered deliveries/s | delivered/s | received / expected | short / extra conns | closed | p50 | p99 | p999 | max | app p99 | edge | broker | loadgens |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf "%s" "$BROADCAST_ROWS"
}
unicast_table() {
    echo
    echo "Unicast, user.<i> per connection, random users, $UNICAST_S s per rate (same columns):"
    echo
    echo "| target events/s | published/s | delivered/s | received / expected | short / extra conns | misrouted | p50 | p99 | p999 | max | app p99 | edge | broker | loadgens |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    printf "%s" "$UNICAST_ROWS"
}

main() {
    local date mem
    date=$(date -u +%Y-%m-%dT%H%M%SZ)
    mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    FLOOR_IDLE=-
    if ran broadcast; then
        log "kernel floor without a waiting reader: N=$N sends"
        FLOOR_IDLE=$(floor_probe idle)
    fi
    start_broker
    : >"$OUT"
    BROADCAST_ROWS="" UNICAST_ROWS="" BEST_RATE=- ONE_P99=- ONE_ROW="" FLOOR=- RATIO=- RATIOS=""
    WS_P50=- WS_P99=- WS_MAX=- WS_ROUND=- WS_RECEIVED=- WS_RATIO=- WS_RATIOS=""
    if ran broadcast; then
        log "phase 2: the floor with the same receivers (send_floor ws)"
        ws_floor_phase
        log "phase 1+2: broadcast"
        broadcast_phase
    fi
    if ran unicast; then
        log "phase 1+3: unicast"
        unicast_phase
    fi
    if ran idle; then
        log "phase 1: idle memory, no publishing"
        idle_phase
    fi
    if ran tls; then
        log "phase 4: TLS, herald-edge and nginx, ws and wss"
        tls_phase
    fi
    {
        echo "# Herald edge benchmark, $date"
        echo
        echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $mem, $(uname -r)."
        echo "herald-edge --workers 1 pinned to CPU 0; herald-broker, the publisher and the load"
        echo "generators pinned to CPU 1 (**the broker shares the load core**). Loopback receive"
        echo "processing: rps_cpus=$(cat "$RPS_FILE" 2>/dev/null) with receive flow steering (each flow on the CPU reading it; see STEER_RPS). N=$N connections over"
        echo "$(( (N + PER_PROC - 1) / PER_PROC )) herald-loadgen processes (source addresses 127.0.0.2+), $CONNECTED connected in the last phase. Phases: $PHASES."
        if ran broadcast || ran unicast; then
            echo "64-byte payloads, format=raw. Latency: publisher's realtime stamp to the kernel's receive"
            echo "stamp on the subscriber socket (SO_TIMESTAMPNS; with receive steering it includes the"
            echo "receive side's backlog, which is why the floor is also measured to the same stamps); \"app p99\" (highest over the processes) is to when the load generator read it (adds the shared load"
            echo "core's scheduling delay). Per-process results merged from log-linear histograms (~3%)."
        fi
        echo "Load average before / after: $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) (other work on"
        echo "the machine shares both pinned cores and makes latencies noisier)."
        echo
        echo "| measure | result | target | notes |"
        echo "|---|---|---|---|"
        cat "$OUT"
        if ran tls; then
            echo "| (4) RSS per idle subscribed TLS connection (wss), one topic for all | $(tls_cell herald.wss) B | | nginx + nchan wss in the same run: $(tls_cell nginx.wss) B (herald / nginx $(tls_ratio wss)); ws in the same run: herald $(tls_cell herald.ws) B, nginx $(tls_cell nginx.ws) B; see (4) below |"
        fi
        ran broadcast || ran unicast || echo "| (2), (3) | not run | | PHASES=\"$PHASES\" |"
        ran broadcast && cpu_rows_broadcast
        ran unicast && echo "| (3) unicast, see below | | ≥ 80,000 events/s delivered, p99 ≤ 10 ms | |"
        ran broadcast && broadcast_table
        ran unicast && unicast_table
        ran broadcast || ran unicast &&
            echo && echo "Slow consumers closed by the edge: broadcast ${SLOW_B:-?}, unicast ${SLOW_U:-?}."
        ran tls && tls_report
        [ -z "$NOTES" ] || { echo; echo "Notes: $NOTES"; }
        if [ -s "$TMP/edge.err" ]; then
            echo
            echo "Edge log lines at warn and above (first 5):"
            echo
            sed -n '1,5s/^/    /p' "$TMP/edge.err"
        fi
        if [ -s "$TMP/broker.err" ]; then
            echo
            echo "Broker log lines at warn and above (first 5):"
            echo
            sed -n '1,5s/^/    /p' "$TMP/broker.err"
        fi
    } | tee "$TMP/final.md"
    local name=edge
    ran tls && name=edge-tls
    mkdir -p bench/results
    cp "$TMP/final.md" "bench/results/$name-$date.md"
    log "written bench/results/$name-$date.md"
}

main
