#!/usr/bin/env bash
# Herald side by side with nginx+nchan, mosquitto and Redis pub/sub, measured
# by the same load generator (herald-loadgen --proto herald|nchan|mqtt|resp)
# in the same run, one server at a time on loopback.
#
#   bench/peers.sh                      N=15000, all four servers
#   N=2000 SERVERS="nchan redis" bench/peers.sh   a quick partial run
#   BUILD=dir bench/peers.sh            binaries from another build tree (default build/)
#
# For each server, at N connections (ceil(N / PER_PROC) load generator
# processes, each bound to its own source IP 127.0.0.<2+j>):
#   (a) bytes per idle subscribed connection: server RSS after N idle
#       subscribed connections minus before, over N (nchan: its one worker;
#       herald: the edge; the others: the one process);
#   (b) broadcast: all N on one topic; events/s stepped through RATES (each
#       to all N) for STEP_S s each, until delivered/offered < 0.9, a
#       connection was dropped, something was not received, or p99 exceeded
#       EXPLODE_US; reported: the best delivered/s of a step where every
#       connection got every event;
#   (c) p50/p99 at half that delivered rate (LAT_S s);
#   (d) unicast: connection i on user.<i>, events to random users at
#       UNICAST_RATES (UNICAST_S s each) until one fails; reported: the
#       highest rate delivered in full with p99 <= UNICAST_P99_US.
# Servers: nginx+nchan (one worker), mosquitto (MQTT over WebSocket for
# subscribers, plain MQTT for the publisher), Herald (herald-edge --workers 1
# + herald-broker, which is Herald's publishing path), redis-server (plain TCP
# RESP: a broker reference, not a WebSocket server). A fresh server for (a-c)
# and another for (d).
# Pinning: every server on CPU 0; load generators and publishers on CPU 1,
# and so is herald-broker (it shares the load core). Loopback receive
# processing runs on the sending CPU, which would charge the receivers' kernel
# work to the server core; lo's RPS mask is set to CPU 1 for the run (all
# servers alike) and restored at exit.
# Latency: the publisher's realtime stamp in the payload to the kernel's
# receive stamp on the subscriber socket (SO_TIMESTAMPNS), merged over the
# load generator processes from log-linear histograms (~3%).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

N=${N:-15000}
PER_PROC=${PER_PROC:-5000}
BUILD=${BUILD:-build}
SERVERS=${SERVERS:-"herald nchan mosquitto redis"}
RATES=${RATES:-"1 2 5 10 20 40 80 160 320 640"} # broadcast events/s, each to all N
COMMON_RATE=${COMMON_RATE:-2}             # one of RATES: latency at the same load for every server
STEP_S=${STEP_S:-5}                       # long beside the fan-out time, which the span includes
LAT_S=${LAT_S:-4}
EXPLODE_US=${EXPLODE_US:-5000000}         # broadcast p99 that ends the ramp
UNICAST_RATES=${UNICAST_RATES:-"1000 2000 5000 10000 20000 40000 80000 160000"}
UNICAST_S=${UNICAST_S:-3}
UNICAST_P99_US=${UNICAST_P99_US:-50000}
PUB_CONNS=${PUB_CONNS:-4}
DRAIN_MAX_S=${DRAIN_MAX_S:-20}
BUDGET_S=${BUDGET_S:-840}                 # ramps skip further steps past this
# RPS_STEER=0 leaves lo's RPS mask alone (receive work stays on the sending CPU)

[ "$PER_PROC" -le 18000 ] || { echo "PER_PROC must be <= 18000" >&2; exit 2; }
[ "$N" -le 18000 ] || { echo "N must be <= 18000 (fd limit $(ulimit -Hn))" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"
T_START=$(date +%s)

log() { echo "peers.sh: $*" >&2; }
rss_of() { awk '/^VmRSS/ { s += $2 * 1024 } END { print s + 0 }' $(printf '/proc/%s/status ' "$@") 2>/dev/null; }
cpu_ticks() { cat $(printf '/proc/%s/stat ' "$@") 2>/dev/null | awk '{ s += $14 + $15 } END { print s + 0 }'; }
# "busy0 busy1 total": jiffies of CPU 0 and CPU 1 not idle, and all of them.
cpu_busy() { awk '$1 == "cpu0" || $1 == "cpu1" { b = 0; for (i = 2; i <= NF; i++) if (i != 5 && i != 6) b += $i; t = 0; for (i = 2; i <= NF; i++) t += $i; printf "%d %d ", b, t }' /proc/stat; }
# Packets dropped at the per-CPU input backlogs so far (all CPUs, /proc/net/softnet_stat).
softnet_drops() { local a b r s=0; while read -r a b r; do s=$((s + 16#$b)); done </proc/net/softnet_stat; echo "$s"; }
over_budget() { [ $(($(date +%s) - T_START)) -gt "$BUDGET_S" ]; }

bench/peers/install.sh
for _ in $(seq 30); do
    make build BUILD="$BUILD" >/dev/null 2>"${TMPDIR:-/tmp}/peers-build.err" && break
    log "build failed (another helper mid-edit?), retrying in 20 s: $(tail -n 3 "${TMPDIR:-/tmp}/peers-build.err")"
    sleep 20
done
for b in herald-broker herald-edge herald-loadgen; do
    [ -x "$BUILD/$b" ] || { log "$BUILD/$b missing"; exit 1; }
done
"$BUILD/herald-loadgen" --help | grep -q 'nchan' || { log "herald-loadgen has no peer adapters"; exit 1; }
LG=$BUILD/herald-loadgen

TMP=$(mktemp -d /tmp/herald-peers-bench.XXXXXX)
RPS=/sys/class/net/lo/queues/rx-0/rps_cpus
RPS_OLD=""
BACKLOG=/proc/sys/net/core/netdev_max_backlog
BACKLOG_OLD=""
BACKLOG_MAX=${BACKLOG_MAX:-100000}
FLOW_RESTORE=() # "file old-value" pairs of the flow-steering tables
lg_pids=() srv_pids=() peer_pids=()

stop_servers() {
    local p
    [ ${#peer_pids[@]} -gt 0 ] && bench/peers/stop.sh "${peer_pids[@]}" || true
    for p in "${srv_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${srv_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    peer_pids=() srv_pids=()
}

cleanup() {
    trap - EXIT INT TERM
    for p in "${lg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    stop_servers
    wait 2>/dev/null || true
    if [ -n "$RPS_OLD" ]; then
        echo "$RPS_OLD" >"$RPS" && log "restored $RPS to $RPS_OLD"
    fi
    if [ -n "$BACKLOG_OLD" ]; then
        echo "$BACKLOG_OLD" >"$BACKLOG" && log "restored $BACKLOG to $BACKLOG_OLD"
    fi
    for r in "${FLOW_RESTORE[@]}"; do
        echo "${r#* }" >"${r%% *}" && log "restored ${r%% *} to ${r#* }"
    done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

steer_rps() {
    if [ "${RPS_STEER:-1}" = 0 ]; then
        RPS_NOTE="lo RPS mask left at $(cat "$RPS" 2>/dev/null) (RPS_STEER=0)"
        return
    fi
    if [ -w "$RPS" ]; then
        RPS_OLD=$(cat "$RPS")
        echo 2 >"$RPS"
        log "loopback receive processing steered to CPU 1: $RPS $RPS_OLD -> $(cat "$RPS")"
        RPS_NOTE="lo RPS mask $RPS_OLD → 2 (CPU 1) during the run, restored after"
        # RPS queues every loopback packet to CPU 1's backlog, which drops past
        # netdev_max_backlog (1000): a server's burst of N frames then loses
        # packets and its connections stall in TCP retransmission timeouts.
        if [ -w "$BACKLOG" ]; then
            BACKLOG_OLD=$(cat "$BACKLOG")
            echo "$BACKLOG_MAX" >"$BACKLOG"
            log "$BACKLOG $BACKLOG_OLD -> $(cat "$BACKLOG") (RPS backlog drops stall TCP)"
            RPS_NOTE+="; net.core.netdev_max_backlog $BACKLOG_OLD → $BACKLOG_MAX (else the RPS backlog drops packets), restored after"
        fi
        # Receive flow steering: each flow is processed on the CPU that reads
        # its socket (servers' incoming packets on CPU 0, the load's on CPU 1),
        # as if each ran on its own host; the same setup as edge.sh and scale.sh.
        # RFS=0 keeps plain RPS.
        if [ "${RFS:-1}" = 1 ]; then
            local f
            for f in /proc/sys/net/core/rps_sock_flow_entries /sys/class/net/lo/queues/rx-0/rps_flow_cnt; do
                [ -w "$f" ] || continue
                FLOW_RESTORE+=("$f $(cat "$f")")
                echo 65536 >"$f"
                log "$f ${FLOW_RESTORE[-1]#* } -> 65536 (receive flow steering)"
            done
            RPS_NOTE+="; receive flow steering on (rps_sock_flow_entries = rps_flow_cnt = 65536: each flow processed on the CPU that reads it), restored after"
        fi
    else
        log "cannot write $RPS: loopback receive work stays on the sending CPU"
        RPS_NOTE="lo RPS mask not writable: receive work stays on the sending CPU"
    fi
}

USED_PORTS=" "
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 10000)) # below the ephemeral range (32768-)
        [[ "$USED_PORTS" == *" $p "* ]] && continue
        if [ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ]; then
            USED_PORTS+="$p "
            echo "$p"
            return
        fi
    done
}

# ------------------------------------------------------------ servers

# start_server NAME: a fresh server; sets MEM_PIDS (RSS measured), CPU_PIDS,
# SUB_URL, PUB_TO, SUB_EXTRA.
start_server() {
    local name=$1 dir=$TMP/srv-$1-$RANDOM pid
    SUB_EXTRA=()
    case "$name" in
        herald)
            local link resp http edge
            link=$(free_port) resp=$(free_port) http=$(free_port) edge=$(free_port)
            taskset -c 1 "$BUILD/herald-broker" --bind 127.0.0.1 --link-port "$link" \
                --resp-port "$resp" --http-port "$http" --log-level warn 2>>"$TMP/herald-broker.err" &
            BROKER_PID=$!
            srv_pids+=("$BROKER_PID")
            for _ in $(seq 50); do
                redis-cli -p "$resp" PING >/dev/null 2>&1 && break
                sleep 0.1
            done
            taskset -c 0 "$BUILD/herald-edge" --bind 127.0.0.1 --port "$edge" \
                --broker "127.0.0.1:$link" --workers 1 --log-level warn 2>>"$TMP/herald-edge.err" &
            pid=$!
            srv_pids+=("$pid")
            for _ in $(seq 100); do
                curl -sf "http://127.0.0.1:$edge/metrics" 2>/dev/null |
                    grep -q '^herald_edge_broker_links_up 1' && break
                sleep 0.1
            done
            MEM_PIDS=("$pid") CPU_PIDS=("$pid") BROKER_CPU_PID=$BROKER_PID
            SUB_URL=ws://127.0.0.1:$edge/ws PUB_TO=127.0.0.1:$resp SUB_EXTRA=(--raw)
            ;;
        nchan)
            local port
            port=$(free_port)
            pid=$(bench/peers/start.sh nchan "$port" "$dir")
            peer_pids+=("$pid")
            MEM_PIDS=("$(pgrep -P "$pid" | head -n 1)") CPU_PIDS=("${MEM_PIDS[@]}")
            SUB_URL=ws://127.0.0.1:$port/sub PUB_TO=127.0.0.1:$port
            ;;
        mosquitto)
            local mqtt ws
            mqtt=$(free_port) ws=$(free_port)
            pid=$(bench/peers/start.sh mosquitto "$mqtt" "$ws" "$dir")
            peer_pids+=("$pid")
            MEM_PIDS=("$pid") CPU_PIDS=("$pid")
            SUB_URL=ws://127.0.0.1:$ws/mqtt PUB_TO=127.0.0.1:$mqtt
            ;;
        redis)
            local port
            port=$(free_port)
            pid=$(bench/peers/start.sh redis "$port" "$dir")
            peer_pids+=("$pid")
            MEM_PIDS=("$pid") CPU_PIDS=("$pid")
            SUB_URL=tcp://127.0.0.1:$port PUB_TO=127.0.0.1:$port
            ;;
    esac
    PROTO=$name
    [ "$name" = mosquitto ] && PROTO=mqtt
    [ "$name" = redis ] && PROTO=resp
    return 0
}

server_alive() {
    local p
    for p in "${MEM_PIDS[@]}"; do
        [ -n "$(awk '$3 != "Z" { print 1 }' "/proc/$p/stat" 2>/dev/null)" ] || return 1
    done
}

# ---------------------------------------------------- load generators

# start_subs MODE: ceil(N / PER_PROC) processes; waits until all print ready.
start_subs() {
    local mode=$1 j=0 off=0 cnt
    lg_pids=()
    rm -f "$TMP"/lg.* "$TMP"/hist.*
    while [ "$off" -lt "$N" ]; do
        cnt=$((N - off < PER_PROC ? N - off : PER_PROC))
        taskset -c 1 "$LG" sub --proto "$PROTO" --url "$SUB_URL" --connections "$cnt" \
            --offset "$off" --topic-mode "$mode" --topic bench.all --users "$N" --kernel-ts \
            "${SUB_EXTRA[@]}" --source-ips "127.0.0.$((2 + j))" --rate 5000 --progress-ms 500 \
            --hist-out "$TMP/hist.$j" --duration 3600 >"$TMP/lg.$j.out" 2>"$TMP/lg.$j.err" &
        lg_pids+=($!)
        j=$((j + 1)) off=$((off + cnt))
    done
    WIN=0
    for _ in $(seq 300); do
        [ "$(cat "$TMP"/lg.*.out 2>/dev/null | grep -c '^ready')" -eq "${#lg_pids[@]}" ] && break
        sleep 0.2
    done
    CONNECTED=$({ grep -h '^ready' "$TMP"/lg.*.out || true; } | field connected | sum)
    FAILED=$({ grep -h '^ready' "$TMP"/lg.*.out || true; } | field failed | sum)
    log "$SERVER $mode: $CONNECTED connected, $FAILED failed, ${#lg_pids[@]} load generators"
}

stop_subs() {
    for p in "${lg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${lg_pids[@]}"; do wait "$p" 2>/dev/null || true; done
    lg_pids=()
}

end_window() {
    local w=$WIN
    for p in "${lg_pids[@]}"; do kill -USR1 "$p" 2>/dev/null || true; done
    for _ in $(seq 200); do
        [ "$(cat "$TMP"/lg.*.out | grep -c "^window=$w ")" -ge "${#lg_pids[@]}" ] && break
        sleep 0.05
    done
    WIN=$((w + 1))
}

# window_lines, window_sum, window_received_now, drain, merged_percentiles: bench/lib.sh

# measure EXPECTED PUBLISHER-ARGS...: one window around one publisher run; sets R_*.
measure() {
    local expected=$1 s0 t0 t1 c0 d0 first last span
    shift
    end_window
    s0=$(cpu_ticks "${CPU_PIDS[@]}") t0=$(date +%s.%N) c0=$(cpu_busy) d0=$(softnet_drops)
    taskset -c 1 "$LG" publish --proto "$PROTO" --resp "$PUB_TO" --conns "$PUB_CONNS" "$@" \
        >"$TMP/pub.out" 2>"$TMP/pub.err" || log "publisher: $(cat "$TMP/pub.out" "$TMP/pub.err")"
    drain "$expected"
    t1=$(date +%s.%N)
    R_SRV_CPU=$(awk -v a="$s0" -v b="$(cpu_ticks "${CPU_PIDS[@]}")" -v t0="$t0" -v t1="$t1" \
        'BEGIN { printf "%.0f", (b - a) / (t1 - t0) }')
    read -r R_CPU0 R_CPU1 < <(echo "$c0 $(cpu_busy)" |
        awk '{ printf "%.0f%% %.0f%%\n", 100 * ($5 - $1) / ($6 - $2), 100 * ($7 - $3) / ($8 - $4) }')
    R_DROPS=$(($(softnet_drops) - d0))
    end_window
    local w=$((WIN - 1))
    R_RECEIVED=$(window_sum "$w" received)
    R_EXPECTED=$expected
    R_SHORT=$(window_sum "$w" short)
    R_EXTRA=$(window_sum "$w" extra)
    R_MISROUTED=$(window_sum "$w" misrouted)
    R_ERRORS=$(window_sum "$w" errors)
    R_CLOSED=$(window_sum "$w" closed)
    R_PUB_RATE=$(field rate_per_s <"$TMP/pub.out")
    first=$(window_lines "$w" | field first_us | { grep -v '^0$' || true; } | sort -n | head -n 1)
    last=$(window_lines "$w" | field last_us | sort -n | tail -n 1)
    span=$((${last:-0} - ${first:-0}))
    R_RATE=$(awk -v n="$R_RECEIVED" -v s="$span" 'BEGIN { printf "%.0f", (s > 0 ? n * 1e6 / s : 0) }')
    read -r R_P50 R_P99 R_MAX < <(merged_percentiles "0.5 0.99")
}

# Publishes single probe events until one reaches every connection (subscriptions in place).
wait_routed() {
    local i
    for i in $(seq 10); do
        if [ "$1" = broadcast ]; then
            measure "$CONNECTED" --rate 10 --count 1 --topic bench.all
            [ "$R_RECEIVED" -eq "$CONNECTED" ] && return 0
        else
            measure 200 --rate 1000 --count 200 --topic-mode unicast --users "$N" --seed "$RANDOM"
            [ "$R_RECEIVED" -eq 200 ] && return 0
        fi
        sleep 0.5
    done
    log "$SERVER: probes never reached every connection ($R_RECEIVED received)"
    NOTES+="$SERVER $1: probes never reached every subscriber. "
}

# ------------------------------------------------------------- phases

declare -A MEM BCAST BCAST_EV P50 P99 CP50 CP99 HALF UNI ROWS

broadcast_phase() {
    local base rss r best=0 best_ev=0 offered closed0 ok ratio saturated=0
    start_server "$SERVER"
    sleep 1
    base=$(rss_of "${MEM_PIDS[@]}")
    start_subs broadcast
    sleep 2
    rss=$(rss_of "${MEM_PIDS[@]}")
    MEM[$SERVER]=$(((rss - base) / (CONNECTED > 0 ? CONNECTED : 1)))
    ROWS[$SERVER]+="Idle: RSS $base B before, $rss B with $CONNECTED subscribed connections ($FAILED failed)."$'\n\n'
    ROWS[$SERVER]+="| events/s | offered deliveries/s | delivered/s | delivered / offered | received / expected | short / extra conns | closed | p50 µs | p99 µs | max µs | server CPU | CPU 0 / CPU 1 busy | backlog drops |"$'\n'
    ROWS[$SERVER]+="|---|---|---|---|---|---|---|---|---|---|---|---|---|"$'\n'
    wait_routed broadcast
    closed0=$R_CLOSED
    for r in $RATES; do
        if over_budget; then NOTES+="$SERVER: broadcast ramp cut at $r events/s (time budget). "; break; fi
        offered=$((r * CONNECTED))
        measure $((r * STEP_S * CONNECTED)) --rate "$r" --count $((r * STEP_S)) --topic bench.all
        ROWS[$SERVER]+="| $r | $offered | $R_RATE | $(awk -v d="$R_RATE" -v o="$offered" 'BEGIN { printf "%.2f", d / o }') | $R_RECEIVED / $R_EXPECTED | $R_SHORT / $R_EXTRA | $((R_CLOSED - closed0)) | $R_P50 | $R_P99 | $R_MAX | $R_SRV_CPU% | $R_CPU0 / $R_CPU1 | $R_DROPS |"$'\n'
        ok=0
        [ "$R_RECEIVED" -eq "$R_EXPECTED" ] && [ "$R_SHORT" -eq 0 ] && [ "$R_CLOSED" -eq "$closed0" ] && ok=1
        if [ "$r" = "$COMMON_RATE" ] && [ "$ok" -eq 1 ]; then CP50[$SERVER]=$R_P50 CP99[$SERVER]=$R_P99; fi
        if [ "$ok" -eq 1 ] && [ "$R_RATE" -gt "$best" ]; then best=$R_RATE best_ev=$r; fi
        ratio=$(awk -v d="$R_RATE" -v o="$offered" 'BEGIN { print (d < 0.9 * o) ? 1 : 0 }')
        if [ "$ok" -eq 0 ] || [ "$ratio" -eq 1 ] || ! [[ "$R_P99" =~ ^[0-9]+$ ]] ||
            [ "$R_P99" -gt "$EXPLODE_US" ] || ! server_alive; then
            saturated=1
            break
        fi
    done
    [ "$saturated" -eq 1 ] ||
        NOTES+="$SERVER: every broadcast step passed; its saturation point is above the last one. "
    BCAST[$SERVER]=$best BCAST_EV[$SERVER]=$best_ev
    if [ "$best" -gt 0 ]; then
        local ev count
        ev=$(awk -v b="$best" -v n="$CONNECTED" 'BEGIN { printf "%.3f", b / 2 / n }')
        count=$(awk -v e="$ev" -v s="$LAT_S" 'BEGIN { c = int(e * s + 0.999); print (c < 3 ? 3 : c) }')
        measure $((count * CONNECTED)) --rate "$ev" --count "$count" --topic bench.all
        P50[$SERVER]=$R_P50 P99[$SERVER]=$R_P99
        HALF[$SERVER]="$ev events/s × $CONNECTED: $R_RATE delivered/s, $R_RECEIVED / $R_EXPECTED received, short $R_SHORT, p50 $R_P50, p99 $R_P99, max $R_MAX µs, server CPU $R_SRV_CPU%, CPU 0 / CPU 1 busy $R_CPU0 / $R_CPU1, backlog drops $R_DROPS"
    fi
    stop_subs
    stop_servers
}

unicast_phase() {
    local r best=0 closed0 pass
    start_server "$SERVER"
    sleep 1
    start_subs unicast
    wait_routed unicast
    closed0=$R_CLOSED
    ROWS[$SERVER]+=$'\n'"Unicast ($CONNECTED connected, user.<i> each, $UNICAST_S s per rate, $PUB_CONNS publisher connections):"$'\n\n'
    ROWS[$SERVER]+="| target events/s | published/s | delivered/s | received / expected | short / extra | misrouted | closed | p50 µs | p99 µs | max µs | server CPU | CPU 0 / CPU 1 busy | backlog drops |"$'\n'
    ROWS[$SERVER]+="|---|---|---|---|---|---|---|---|---|---|---|---|---|"$'\n'
    for r in $UNICAST_RATES; do
        if over_budget; then NOTES+="$SERVER: unicast ramp cut at $r events/s (time budget). "; break; fi
        measure $((r * UNICAST_S)) --rate "$r" --count $((r * UNICAST_S)) --topic-mode unicast \
            --users "$N" --seed "$RANDOM"
        ROWS[$SERVER]+="| $r | $R_PUB_RATE | $R_RATE | $R_RECEIVED / $R_EXPECTED | $R_SHORT / $R_EXTRA | $R_MISROUTED | $((R_CLOSED - closed0)) | $R_P50 | $R_P99 | $R_MAX | $R_SRV_CPU% | $R_CPU0 / $R_CPU1 | $R_DROPS |"$'\n'
        pass=0
        [ "$R_RECEIVED" -eq "$R_EXPECTED" ] && [ "$R_SHORT" -eq 0 ] && [ "$R_MISROUTED" -eq 0 ] &&
            [[ "$R_P99" =~ ^[0-9]+$ ]] && [ "$R_P99" -le "$UNICAST_P99_US" ] && pass=1
        [ "$pass" -eq 1 ] || break
        best=$r
    done
    UNI[$SERVER]=$best
    stop_subs
    stop_servers
}

# ------------------------------------------------------------- report

fmt() { [ -z "${1:-}" ] || [ "$1" = - ] && { echo "-"; return; }; printf "%'d" "$1" 2>/dev/null || echo "$1"; }
get() { local -n a=$1; echo "${a[$2]:--}"; }

# ratio KIND ARRAY: herald / best of nchan and mosquitto (KIND max: higher is better).
ratio() {
    local kind=$1 arr=$2 h n m best who
    h=$(get "$arr" herald) n=$(get "$arr" nchan) m=$(get "$arr" mosquitto)
    best=- who=-
    for p in nchan mosquitto; do
        v=$(get "$arr" $p)
        [ "$v" = - ] || [ "$v" -le 0 ] 2>/dev/null && continue
        if [ "$best" = - ] || { [ "$kind" = max ] && [ "$v" -gt "$best" ]; } ||
            { [ "$kind" = min ] && [ "$v" -lt "$best" ]; }; then
            best=$v who=$p
        fi
    done
    [ "$h" = - ] || [ "$best" = - ] && { echo "-"; return; }
    awk -v h="$h" -v b="$best" -v w="$who" 'BEGIN { printf "%.2f× (vs %s)", h / b, w }'
}

report() {
    local date=$1 out=$TMP/final.md
    local bh br
    bh=$(get BCAST herald) br=$(get BCAST redis)
    local vs_redis=-
    [ "$bh" != - ] && [ "$br" != - ] && [ "$br" -gt 0 ] &&
        vs_redis=$(awk -v h="$bh" -v r="$br" 'BEGIN { printf "%.2f× (vs redis)", h / r }')
    {
        echo "# Herald vs nginx+nchan, mosquitto and Redis pub/sub, $date"
        echo
        echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -r)."
        echo "Versions: nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') + libnginx-mod-nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null),"
        echo "mosquitto $(dpkg-query -W -f='${Version}' mosquitto 2>/dev/null), redis-server $(dpkg-query -W -f='${Version}' redis-server 2>/dev/null), Herald $(git rev-parse --short HEAD 2>/dev/null) (+ working tree)."
        echo "One server at a time on 127.0.0.1, pinned to CPU 0 (nchan: one nginx worker; Herald:"
        echo "herald-edge --workers 1). Load generators and publishers on CPU 1, **and herald-broker too**"
        echo "(Herald's own publishing path shares the load core). $RPS_NOTE."
        echo "N=$N subscribers over $(((N + PER_PROC - 1) / PER_PROC)) herald-loadgen processes (source IPs 127.0.0.2+), 64-byte payloads."
        echo "Subscribers: Herald WebSocket format=raw, nchan WebSocket /sub/<chan>, mosquitto MQTT 3.1.1 over"
        echo "WebSocket QoS 0, Redis plain TCP RESP SUBSCRIBE (**a broker reference, not a WebSocket server**)."
        echo "Publishers: RESP PUBLISH to herald-broker / redis, pipelined HTTP POST /pub to nchan, MQTT QoS 0 over"
        echo "TCP to mosquitto; $PUB_CONNS connections. Latency: publisher's realtime stamp to the kernel's"
        echo "receive stamp on the subscriber socket, merged over processes (log-linear histograms, ~3%)."
        echo "Load average before / after: $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg); other work on the"
        echo "machine shares both cores."
        echo
        echo "| measure | herald | nchan | mosquitto | redis (reference) | herald / best peer |"
        echo "|---|---|---|---|---|---|"
        echo "| (a) bytes per idle subscribed connection (lower is better) | $(fmt "$(get MEM herald)") | $(fmt "$(get MEM nchan)") | $(fmt "$(get MEM mosquitto)") | $(fmt "$(get MEM redis)") | $(ratio min MEM) |"
        echo "| (b) broadcast deliveries/s at saturation, all received | $(fmt "$bh") | $(fmt "$(get BCAST nchan)") | $(fmt "$(get BCAST mosquitto)") | $(fmt "$br") | $(ratio max BCAST); $vs_redis |"
        echo "| (c) p50 µs at half the saturation rate (each its own) | $(fmt "$(get P50 herald)") | $(fmt "$(get P50 nchan)") | $(fmt "$(get P50 mosquitto)") | $(fmt "$(get P50 redis)") | $(ratio min P50) |"
        echo "| (c) p99 µs at half the saturation rate (each its own) | $(fmt "$(get P99 herald)") | $(fmt "$(get P99 nchan)") | $(fmt "$(get P99 mosquitto)") | $(fmt "$(get P99 redis)") | $(ratio min P99) |"
        echo "| (c′) p50 µs at one common rate, $COMMON_RATE events/s × N for every server | $(fmt "$(get CP50 herald)") | $(fmt "$(get CP50 nchan)") | $(fmt "$(get CP50 mosquitto)") | $(fmt "$(get CP50 redis)") | $(ratio min CP50) |"
        echo "| (c′) p99 µs at one common rate, $COMMON_RATE events/s × N for every server | $(fmt "$(get CP99 herald)") | $(fmt "$(get CP99 nchan)") | $(fmt "$(get CP99 mosquitto)") | $(fmt "$(get CP99 redis)") | $(ratio min CP99) |"
        echo "| (d) unicast events/s delivered in full, p99 ≤ $((UNICAST_P99_US / 1000)) ms | $(fmt "$(get UNI herald)") | $(fmt "$(get UNI nchan)") | $(fmt "$(get UNI mosquitto)") | $(fmt "$(get UNI redis)") | $(ratio max UNI) |"
        echo
        echo "(b): best delivered/s of the steps ($RATES events/s × N, $STEP_S s each) in which every connection got"
        echo "every event and none was dropped; the ramp stops at delivered/offered < 0.9, a loss or drop, or"
        echo "p99 > $((EXPLODE_US / 1000000)) s. (c): events/s = (b) / 2 / N, $LAT_S s; a server with a higher (b) is measured at a higher load. (c′): the ramp's $COMMON_RATE events/s step, the same offered load for all. (d): highest of $UNICAST_RATES passed in full."
        echo "Ratios: herald / the better of nchan and mosquitto; for latency and bytes lower is better."
        echo "Delivered/s is received / (last − first kernel receive stamp): the span includes one event's"
        echo "fan-out time, so it reads a little under the offered rate even when the server keeps up."
        echo "\"server CPU\": the server process(es) measured for RSS, % of one core; \"CPU 0 / CPU 1 busy\":"
        echo "/proc/stat, whole cores (CPU 1 also runs the receivers' loopback work, and whatever else runs here);"
        echo "\"backlog drops\": packets dropped at the per-CPU input backlogs during the step (/proc/net/softnet_stat)."
        for s in $SERVERS; do
            echo
            echo "## $s"
            echo
            printf "%s" "${ROWS[$s]:-}"
            [ -n "${HALF[$s]:-}" ] && { echo; echo "Half rate: ${HALF[$s]}."; }
        done
        if [ -n "${NOTES:-}" ]; then echo; echo "Notes: $NOTES"; fi
        for f in herald-edge herald-broker; do
            if [ -s "$TMP/$f.err" ]; then
                echo
                echo "$f log lines at warn and above (first 5):"
                echo
                sed -n '1,5s/^/    /p' "$TMP/$f.err"
            fi
        done
    } >"$out"
    cat "$out"
    mkdir -p bench/results
    cp "$out" "bench/results/peers-$date.md"
    {
        printf '{"date":"%s","n":%d,"servers":{' "$date" "$N"
        local first=1 s
        for s in $SERVERS; do
            [ $first -eq 1 ] || printf ','
            first=0
            printf '"%s":{"bytes_per_idle_conn":%s,"broadcast_deliveries_per_s":%s,"broadcast_best_events_per_s":%s,"half_rate_p50_us":%s,"half_rate_p99_us":%s,"common_rate_p50_us":%s,"common_rate_p99_us":%s,"unicast_events_per_s":%s}' \
                "$s" "$(jnum "$(get MEM "$s")")" "$(jnum "$(get BCAST "$s")")" "$(jnum "$(get BCAST_EV "$s")")" \
                "$(jnum "$(get P50 "$s")")" "$(jnum "$(get P99 "$s")")" "$(jnum "$(get CP50 "$s")")" \
                "$(jnum "$(get CP99 "$s")")" "$(jnum "$(get UNI "$s")")"
        done
        printf '}}\n'
    } | jq . >"bench/results/peers-$date.json"
    log "written bench/results/peers-$date.md and .json"
}
jnum() { [[ "$1" =~ ^-?[0-9]+$ ]] && echo "$1" || echo null; }

main() {
    local date
    date=$(date -u +%Y-%m-%dT%H%M%SZ)
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    NOTES=""
    steer_rps
    for SERVER in $SERVERS; do
        log "== $SERVER: broadcast (a-c)"
        broadcast_phase
        log "== $SERVER: unicast (d)"
        unicast_phase
    done
    report "$date"
    log "total $(($(date +%s) - T_START)) s"
}

main
