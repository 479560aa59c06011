#!/usr/bin/env bash
# Herald at scale: N concurrent subscribed WebSocket connections on one host.
#
#   bench/scale.sh [N]              N = 1000000 by default; must run as root (sysctls)
#   BCAST_RUNS=1 bench/scale.sh 50000
#
# The per-process open-file limit here is 20,000 and cannot be raised, so the
# run is horizontal on one host: E = ceil(N / PER_PROC) herald-edge processes
# (--workers 1 each, one broker link each) share one port through
# SO_REUSEPORT, pinned to CPU 0; E herald-loadgen processes, each connecting
# from its own loopback source address (127.0.1.1, 127.0.1.2, ...), and the
# broker (at nice -10, see SCRIPT_NICE) are pinned to CPU 1. Every connection
# subscribes two topics at connect time, ?topic=bench.all&topic=user.<i>
# (loadgen --topic-mode both).
#
# Steps, each bounded in time (the whole run stops itself after MAX_S):
#   1. tuning: raises the sysctls below where they are lower than needed,
#      printing each change, and steers loopback receive processing to CPU 1
#      (/sys/class/net/lo/queues/rx-0/rps_cpus); everything is restored at exit;
#   2. broker, E edges, E load generators; progress every second while
#      connecting (open, rate, in flight, errors, edge RSS, free memory);
#   3. memory once all N are open, subscribed (the broker holds N + E
#      subscriptions) and 2 s idle: edge RSS minus each process's empty
#      baseline, kernel Slab and sockstat deltas, load generator RSS;
#   4. broadcast: BCAST_RUNS times one event to bench.all, to all N: time from
#      publish to the last delivery, p50/p99 (median run reported);
#   5. unicast: UNICAST_RATE events/s to random user.<i> for UNICAST_S s:
#      delivered rate, p50/p99, CPU use; before it, the same at each lower
#      rate of UNICAST_SWEEP (a table: where p99 <= 20 ms still holds);
#      in 4 and 5 every connection must receive exactly what it should
#      (per-connection counts checked by the load generators, zero misrouted);
#   6. kernel floor with the same receivers (bench/send_floor.c ws), once the
#      servers are gone: E probes on CPU 0 in the edges' place, the E load
#      generators reconnected to them; each round every probe sends one
#      66-byte frame on each connection, timed to the same receive stamps as
#      the broadcast (whose last delivery is read against this floor's);
#   7. kernel floor (bench/send_floor.c multi), once the servers are gone (it
#      needs 2N sockets of its own): one 66-byte send() on each of N idle
#      loopback sockets, round-robin, over E sender processes on CPU 0 with
#      draining readers epoll-waiting on CPU 1, as edges and load generators
#      are; median of FLOOR_ROUNDS rounds.
# Receive steering: RPS sends loopback receive processing to CPU 1; with
# RFS=1 (the default) receive flow steering then processes each flow where
# its socket is read: the edges' incoming packets on CPU 0, the load
# generators' on CPU 1 (see rfs()). RFS=0: RPS alone.
# Results: bench/results/scale-<UTC time>.json and .md (and the table on stdout).
# Ctrl-C, a dying process or low memory stop the run; only processes this
# script started are killed.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

case "${1:-}" in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
N=${1:-${N:-1000000}}
# the command as run, with the knobs set in the environment, for the results
CMD="bench/scale.sh $N"
for v in RFS PER_PROC BUILD FLOOR_ROUNDS BCAST_RUNS UNICAST_RATE UNICAST_S UNICAST_SWEEP LG_PENDING LG_RATE; do
    [ -z "${!v+x}" ] || { [[ "${!v}" == *" "* ]] && CMD="$v=\"${!v}\" $CMD" || CMD="$v=${!v} $CMD"; }
done
PER_PROC=${PER_PROC:-18000}         # connections per edge and per load generator (fd limit 20,000)
BUILD=${BUILD:-build}
FLOOR_ROUNDS=${FLOOR_ROUNDS:-5}
BCAST_RUNS=${BCAST_RUNS:-3}
UNICAST_RATE=${UNICAST_RATE:-50000}
UNICAST_S=${UNICAST_S:-10}
UNICAST_SWEEP=${UNICAST_SWEEP:-10000 20000 30000 40000} # lower rates run first, to show where p99 <= 20 ms holds
LG_PENDING=${LG_PENDING:-200}        # connects+handshakes in flight per load generator
LG_RATE=${LG_RATE:-0}                # connects/s per load generator (0: as fast as it goes)
CONNECT_MAX_S=${CONNECT_MAX_S:-360}
MAX_S=${MAX_S:-1200}                 # the whole run, < 20 minutes
MEM_MIN_MB=${MEM_MIN_MB:-1536}       # stop when MemAvailable falls below this
EDGE_PORT=${EDGE_PORT:-29080}
LINK_PORT=${LINK_PORT:-29400}
RESP_PORT=${RESP_PORT:-29380}
HTTP_PORT=${HTTP_PORT:-29480}
EDGE_CPU=0 LOAD_CPU=1
RFS=${RFS:-1}                        # receive flow steering: see tune()
# The script runs at nice -10 so that its progress lines keep coming while 100+
# busy processes share the two cores; what it starts runs at nice 0 (AS0),
# except herald-broker, which stays at the script's nice -10: it is a service
# of its own (another host in production) that shares the load core here,
# and at nice 0 it would get 1/(PROCS+1) of it. Starved that way (seen on a
# slower kernel: ~5% of the core while it needed ~10%), its backlog of the
# edges' SUBs grew past the edges' 30 s link keepalive, the links dropped
# and the events published meanwhile were lost.
SCRIPT_NICE=-10
AS0=(nice -n $((-SCRIPT_NICE)))

log() { echo "scale.sh: $*" >&2; }
die() { log "stopping: $*"; exit 1; }

[[ "$N" =~ ^[0-9]+$ ]] && [ "$N" -ge 1 ] || { echo "usage: bench/scale.sh [N]" >&2; exit 2; }
[ "$PER_PROC" -le 18000 ] || { echo "PER_PROC must be <= 18000" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench/scale.sh needs root (sysctls, rps_cpus)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "bench/scale.sh needs 2 CPUs" >&2; exit 2; }
PROCS=$(( (N + PER_PROC - 1) / PER_PROC ))
[ "$PROCS" -le 254 ] || { echo "N too large: at most 254 x $PER_PROC" >&2; exit 2; }
for b in herald-broker herald-edge herald-loadgen send_floor; do
    [ -x "$BUILD/$b" ] || { make build BUILD="$BUILD" >/dev/null || die "build failed"; break; }
done

T_START=$EPOCHSECONDS
STAMP=$(date -u +%Y-%m-%dT%H%M%SZ)
TMP=$(mktemp -d /tmp/herald-scale.XXXXXX)
BIN=$TMP/bin
RESTORE=()                 # "path<TAB>old value", restored in reverse order
broker_pid="" edge_pids=() lg_pids=() probe_pids=() floor_pid="" watchdog_pid="" pub_pid=""
OK_EXIT=0

# ---------------------------------------------------------------- helpers

now() { echo "$EPOCHREALTIME"; }
elapsed() { echo $((EPOCHSECONDS - T_START)); }
rss_of() { awk '/^VmRSS/ { print $2 * 1024; f = 1 } END { if (!f) print 0 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# rss_sum PID...: total VmRSS in bytes (one awk for all: the script must stay cheap under load)
rss_sum() {
    [ $# -gt 0 ] || { echo 0; return; }
    { printf '/proc/%s/status\n' "$@" | xargs cat 2>/dev/null || true; } | awk '/^VmRSS/ { s += $2 } END { printf "%.0f\n", s * 1024 }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_sum() { local s=0 p; for p in "$@"; do s=$((s + $(cpu_ticks "$p"))); done; echo "$s"; }
# pid1_use TICKS0 T0: PID 1's share of a core since then. On this machine PID 1 is
# the sandbox's agent, the one other busy process (it took up to 85% of a core
# during one-million runs), so every CPU line names it.
pid1_use() {
    awk -v a="$1" -v b="$(cpu_ticks 1)" -v t0="$2" -v t1="$(now)" -v n="$(cat /proc/1/comm 2>/dev/null || echo init)" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "PID 1 (%s) %.0f%% of a core", n, (b - a) * 100 / hz / (t1 - t0) }'
}
meminfo_kb() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
# sockstat_tcp FIELD: inuse, orphan, tw, alloc or mem (pages) from /proc/net/sockstat
sockstat_tcp() { awk -v f="$1" '$1 == "TCP:" { for (i = 2; i < NF; i += 2) if ($i == f) print $(i + 1) }' /proc/net/sockstat; }
# cpu_snap: "busy softirq total" jiffies of CPU 0 and CPU 1 from /proc/stat (6 numbers)
cpu_snap() { awk '$1 == "cpu0" || $1 == "cpu1" { t = 0; for (i = 2; i <= NF; i++) t += $i; printf "%d %d %d ", t - $5 - $6, $8, t } END { print "" }' /proc/stat; }
# cpu_use SNAP0 SNAP1: "cpu0 B% (softirq S%), cpu1 B% (softirq S%)"
cpu_use() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        for (c = 0; c < 2; c++) {
            t = y[3 * c + 3] - x[3 * c + 3]; if (t <= 0) t = 1
            printf "%sCPU %d %.0f%% busy (softirq %.0f%%)", (c ? ", " : ""), c,
                100 * (y[3 * c + 1] - x[3 * c + 1]) / t, 100 * (y[3 * c + 2] - x[3 * c + 2]) / t
        }
    }'
}
softnet_drops() { local s=0 b; while read -r _ b _; do s=$((s + 16#$b)); done </proc/net/softnet_stat; echo "$s"; }
sum() { awk '{ s += $1 } END { printf "%.0f\n", s }'; } # replaces lib.sh's sum (print s + 0): never exponent notation
maxof() { awk 'NR == 1 || $1 + 0 > m { m = $1 + 0 } END { printf "%.0f\n", m }'; }
fmt() { LC_ALL=C printf "%'d" "${1%.*}" 2>/dev/null || echo "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f MiB", b / 1048576 }'; }
check_deadline() { [ "$(elapsed)" -lt "$MAX_S" ] || die "the run took longer than MAX_S=${MAX_S}s"; }
lg_ip() { echo "127.0.1.$(( $1 + 1 ))"; }

check_memory() {
    local avail
    avail=$(meminfo_kb MemAvailable)
    [ "$avail" -ge $((MEM_MIN_MB * 1024)) ] ||
        die "MemAvailable is down to $((avail / 1024)) MiB (< MEM_MIN_MB=$MEM_MIN_MB)"
}

# Stops the run when a process this script started has exited.
check_alive() {
    local p j=0
    [ -z "$broker_pid" ] || kill -0 "$broker_pid" 2>/dev/null || die "herald-broker exited: $(tail -n 3 "$TMP/broker.err")"
    for p in "${edge_pids[@]}"; do
        kill -0 "$p" 2>/dev/null || die "herald-edge #$j (pid $p) exited: $(tail -n 3 "$TMP/edge.$j.err")"
        j=$((j + 1))
    done
    j=0
    for p in "${lg_pids[@]}"; do
        kill -0 "$p" 2>/dev/null || die "herald-loadgen #$j (pid $p) exited: $(tail -n 3 "$TMP/lg.$j.err")"
        j=$((j + 1))
    done
}

# ------------------------------------------------------ tuning and restore

# set_value PATH VALUE: writes a /proc/sys or /sys file, remembering the old value.
set_value() {
    local path=$1 new=$2 old
    old=$(tr -s ' \t' ' ' <"$path")
    [ "$old" != "$new" ] || { log "$path: $old (unchanged)"; return 0; }
    RESTORE+=("$path"$'\t'"$old")
    echo "$new" >"$path" || die "cannot write $path"
    log "$path: $old -> $(tr -s ' \t' ' ' <"$path") (restored at exit)"
}

# raise KEY VALUE: a sysctl raised to VALUE when lower; skipped when absent.
raise() {
    local path=/proc/sys/${1//.//} old
    [ -e "$path" ] || { log "$1: not present here, skipped"; return 0; }
    old=$(cat "$path")
    if [ "$old" -ge "$2" ]; then log "$1: $old (enough)"; return 0; fi
    set_value "$path" "$2"
}

restore_all() {
    local i path old
    for ((i = ${#RESTORE[@]} - 1; i >= 0; i--)); do
        path=${RESTORE[i]%%$'\t'*} old=${RESTORE[i]#*$'\t'}
        if echo "$old" >"$path" 2>/dev/null; then log "restored $path: $old"; else log "could not restore $path to $old"; fi
    done
    RESTORE=()
}

tune() {
    local mem_pages tcp_mem reserved
    log "tuning for N=$N: $PROCS edge processes, $PROCS load generators"
    set_value /proc/sys/net/ipv4/ip_local_port_range "1024 65535"
    # keep the wider ephemeral range (and the probe's TIME_WAITs) off our listening ports
    reserved=$(cat /proc/sys/net/ipv4/ip_local_reserved_ports)
    set_value /proc/sys/net/ipv4/ip_local_reserved_ports \
        "${reserved:+$reserved,}$EDGE_PORT,$LINK_PORT,$RESP_PORT,$HTTP_PORT"
    raise net.core.somaxconn 65535
    raise net.ipv4.tcp_max_syn_backlog 65535
    raise net.netfilter.nf_conntrack_max $((2 * N + 262144))
    raise fs.file-max $((2 * N + 262144))
    # With receive processing steered to another CPU, a loopback packet waits
    # in that CPU's backlog; past netdev_max_backlog it is dropped and TCP
    # retransmits 200 ms later. A broadcast queues up to one packet per socket,
    # and as many ACKs.
    raise net.core.netdev_max_backlog $((4 * N + 65536))
    # tcp_mem (pages): a socket with unread data is charged at least a page,
    # and a broadcast leaves one small frame in each of N receive queues.
    mem_pages=$(( $(meminfo_kb MemTotal) / 4 ))
    read -r -a tcp_mem </proc/sys/net/ipv4/tcp_mem
    if [ "${tcp_mem[2]}" -lt $((3 * N)) ]; then
        set_value /proc/sys/net/ipv4/tcp_mem \
            "$(( N > tcp_mem[0] ? N : tcp_mem[0] )) $((2 * N)) $(( 3 * N < mem_pages * 6 / 10 ? 3 * N : mem_pages * 6 / 10 ))"
    else
        log "net.ipv4.tcp_mem: ${tcp_mem[*]} (enough)"
    fi
    # Loopback receive processing runs on the sender's CPU unless steered:
    # move it to the load CPU, so the edge core does only the edges' work.
    if [ -w /sys/class/net/lo/queues/rx-0/rps_cpus ]; then
        set_value /sys/class/net/lo/queues/rx-0/rps_cpus "$(printf '%x' $((1 << LOAD_CPU)))"
        RPS_NOTE="loopback receive processing steered to CPU $LOAD_CPU (rps_cpus=$(cat /sys/class/net/lo/queues/rx-0/rps_cpus))"
        if [ "$RFS" = 1 ]; then rfs; fi
    else
        RPS_NOTE="/sys/class/net/lo/queues/rx-0/rps_cpus not writable: loopback receive processing stays on the sending CPU"
    fi
    log "$RPS_NOTE"
    log "pinning: edges on CPU $EDGE_CPU; broker (nice $SCRIPT_NICE), load generators, publisher, this script on CPU $LOAD_CPU"
}

# Receive flow steering on top of RPS: a flow's packets are processed on the
# CPU where its socket was last read. So the load generators' (and the floor
# readers') receive work stays on the load CPU, while packets to an edge (the
# broker's events, its clients' ACKs) are processed on the edge CPU, as on a
# host of its own. Without it every packet waits in the load CPU's one
# backlog, and the broker's event reaches the later edges only after the
# load CPU has worked through the earlier edges' deliveries.
rfs() {
    local flows=1
    while [ "$flows" -lt $((2 * N + 65536)) ]; do flows=$((flows * 2)); done
    raise net.core.rps_sock_flow_entries "$flows"
    set_value /sys/class/net/lo/queues/rx-0/rps_flow_cnt "$flows"
    RPS_NOTE+=", with receive flow steering (rps_sock_flow_entries = rps_flow_cnt = $flows): each flow processed on the CPU that reads its socket, so edges' incoming packets on CPU $EDGE_CPU, the load generators' on CPU $LOAD_CPU"
}

# --------------------------------------------------------- start and stop

stop_pids() { # stop_pids WAIT_S PID...: SIGTERM, then SIGKILL after WAIT_S
    local w=$1 p alive
    shift
    [ $# -gt 0 ] || return 0
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq $((w * 10))); do
        alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1 && break; done
        [ "$alive" = 1 ] || break
        sleep 0.1
    done
    for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -z "$watchdog_pid" ] || { kill "$watchdog_pid" 2>/dev/null || true; wait "$watchdog_pid" 2>/dev/null || true; }
    [ -z "$floor_pid" ] || stop_pids 5 "$floor_pid"
    [ ${#probe_pids[@]} -eq 0 ] || stop_pids 5 "${probe_pids[@]}"
    [ -z "$pub_pid" ] || stop_pids 5 "$pub_pid"
    if [ ${#lg_pids[@]} -gt 0 ]; then log "stopping ${#lg_pids[@]} load generators"; stop_pids 20 "${lg_pids[@]}"; fi
    if [ ${#edge_pids[@]} -gt 0 ]; then log "stopping ${#edge_pids[@]} edges"; stop_pids 15 "${edge_pids[@]}"; fi
    [ -z "$broker_pid" ] || stop_pids 10 "$broker_pid"
    restore_all
    if [ "$OK_EXIT" = 1 ]; then rm -rf "$TMP"; else log "logs kept in $TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

prepare_binaries() {
    mkdir -p "$BIN"
    # copies: another build of the tree during the run must not change what runs
    cp "$BUILD/herald-broker" "$BUILD/herald-edge" "$BUILD/herald-loadgen" "$BUILD/send_floor" "$BIN/"
}

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

start_broker() {
    local p
    for p in $EDGE_PORT $LINK_PORT $RESP_PORT $HTTP_PORT; do port_free "$p" || die "port $p is in use"; done
    taskset -c $LOAD_CPU "$BIN/herald-broker" --bind 127.0.0.1 --link-port "$LINK_PORT" \
        --resp-port "$RESP_PORT" --http-port "$HTTP_PORT" --max-clients $((PROCS + 1000)) \
        --log-level warn 2>"$TMP/broker.err" &
    broker_pid=$!
    for _ in $(seq 50); do
        curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "the broker did not start: $(cat "$TMP/broker.err")"
}

broker_metric() { # broker_metric NAME [LABELS]
    local m=$1
    [ -z "${2:-}" ] || m="$1{$2}"
    curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v m="$m" '$1 == m { print $2; exit }'
}

start_edges() {
    local k links=0
    for k in $(seq 0 $((PROCS - 1))); do
        # pings would add 1 frame per connection per interval to every
        # measurement; the run is shorter than the interval set here. The
        # link keepalive is 3 x 30 s instead of 3 x 10 s: on this one host
        # the broker's incoming packets wait in the load core's receive
        # backlog behind a broadcast's million deliveries (tens of seconds
        # when other work takes the core), and 34 edges dropped their links
        # mid-broadcast in scale-2026-12-03T102433Z.
        "${AS0[@]}" taskset -c $EDGE_CPU "$BIN/herald-edge" --bind 127.0.0.1 --port "$EDGE_PORT" \
            --broker "127.0.0.1:$LINK_PORT" --workers 1 --max-connections $((PER_PROC * 11 / 10)) \
            --ping-interval 20m --idle-timeout 60m --broker-ping-interval 30s --shutdown-timeout 2s \
            --log-level warn 2>"$TMP/edge.$k.err" &
        edge_pids+=($!)
    done
    for _ in $(seq 100); do
        links=$(broker_metric herald_connections 'endpoint="link"' || echo 0)
        [ "${links:-0}" -ge "$PROCS" ] && break
        sleep 0.1
    done
    [ "${links:-0}" -ge "$PROCS" ] || die "only ${links:-0} of $PROCS edges linked to the broker"
    check_alive
    log "$PROCS edges up, all linked to the broker"
}

# start_loadgens [PORT...]: load generator j connects to PORT j (default: the edges' port).
start_loadgens() {
    local j off=0 cnt ports=("$@")
    for j in $(seq 0 $((PROCS - 1))); do
        cnt=$(( N - off < PER_PROC ? N - off : PER_PROC ))
        "${AS0[@]}" taskset -c $LOAD_CPU "$BIN/herald-loadgen" sub --url "ws://127.0.0.1:${ports[$j]:-$EDGE_PORT}/ws" \
            --connections "$cnt" --offset "$off" --topic-mode both --topic bench.all --users "$N" \
            --raw --kernel-ts --source-ips "$(lg_ip "$j")" --rate "$LG_RATE" \
            --max-pending "$LG_PENDING" --progress-ms 500 --hist-out "$TMP/hist.$j" \
            --duration $((MAX_S + 60)) >"$TMP/lg.$j.out" 2>"$TMP/lg.$j.err" &
        lg_pids+=($!)
        off=$((off + cnt))
    done
}

# ------------------------------------------------------------ load readings

# The latest progress line of every load generator, summed: "open pending failed closed window_received".
lg_progress() {
    local files=() j
    for j in $(seq 0 $((PROCS - 1))); do files+=("$TMP/lg.$j.err"); done
    tail -n 3 "${files[@]}" 2>/dev/null | awk '
        /^==> / { f = $2; next }
        /^loadgen: t=/ { line[f] = $0 }
        END {
            for (f in line) {
                n = split(line[f], kv, " ")
                for (i = 1; i <= n; i++) { split(kv[i], p, "="); v[p[1]] += p[2] }
            }
            printf "%d %d %d %d %d\n", v["open"], v["pending"], v["failed"], v["closed"], v["window_received"]
        }'
}

ready_count() { cat "$TMP"/lg.*.out 2>/dev/null | grep -c '^ready' || true; }

WIN=0
# end_window [USR1|USR2]: ends the current window in every load generator, waits for all summaries.
end_window() {
    local sig=${1:-USR1} w=$WIN p
    for p in "${lg_pids[@]}"; do kill "-$sig" "$p"; done
    for _ in $(seq 600); do
        [ "$(cat "$TMP"/lg.*.out | grep -c "^window=$w ")" -ge "$PROCS" ] && break
        sleep 0.05
    done
    [ "$(cat "$TMP"/lg.*.out | grep -c "^window=$w ")" -ge "$PROCS" ] || die "load generators did not report window $w"
    WIN=$((w + 1))
}

# window_lines, window_sum, merged_percentiles (and field, median): bench/lib.sh
window_max() { window_lines "$1" | field "$2" | maxof; }

# ------------------------------------------------------------------ phases

# The floor with the very receivers of the broadcast: PROCS `send_floor ws`
# probes on CPU EDGE_CPU, one port each, and the load generators connected
# to them (from the same source addresses, with the same options) instead
# of to the edges. A round: every probe gets SIGUSR1 at once and sends one
# 66-byte frame on each of its connections; the load generators time the
# deliveries exactly as the broadcast's (the probe's stamp to the kernel
# receive stamp). WS_LAST: the median round's last delivery.
ws_floor_phase() {
    local j port=20000 ports=() off=0 cnt r ready lasts="" p50s="" p99s="" t0
    probe_pids=()
    for j in $(seq 0 $((PROCS - 1))); do
        while ! port_free "$port"; do port=$((port + 1)); done
        ports+=("$port")
        cnt=$(( N - off < PER_PROC ? N - off : PER_PROC ))
        "${AS0[@]}" taskset -c $EDGE_CPU "$BIN/send_floor" ws "$cnt" "$port" "$FLOOR_ROUNDS" 0 \
            >"$TMP/wsfloor.$j.out" 2>"$TMP/wsfloor.$j.err" &
        probe_pids+=($!)
        off=$((off + cnt)) port=$((port + 1))
    done
    for _ in $(seq 100); do port_free "${ports[-1]}" || break; sleep 0.05; done
    log "kernel floor with the same receivers: $PROCS send_floor ws probes on CPU $EDGE_CPU, connecting the load generators"
    WIN=0
    t0=$(date +%s)
    rm -f "$TMP"/lg.* "$TMP"/hist.* # the edge run's (read already); ready_count must not see them
    start_loadgens "${ports[@]}"
    while ready=$(ready_count) && [ "$ready" -lt "$PROCS" ]; do
        sleep 1
        check_alive
        check_memory
        check_deadline
        read -r open _ failed _ _ < <(lg_progress)
        log "floor connect: open=$open/$N failed=$failed ready=$ready/$PROCS"
        [ $(($(date +%s) - t0)) -lt "$CONNECT_MAX_S" ] || die "the floor's connections did not all open"
    done
    WS_CONNECTED=$({ grep -h '^ready' "$TMP"/lg.*.out || true; } | field connected | sum)
    sleep 2
    WS_ROWS=""
    for r in $(seq "$FLOOR_ROUNDS"); do
        check_deadline
        end_window USR1
        kill -USR1 "${probe_pids[@]}"
        drain "$WS_CONNECTED" 60 "floor round $r/$FLOOR_ROUNDS"
        end_window USR1
        collect
        lasts+="$R_LAT_MAX " p50s+="$R_P50 " p99s+="$R_P99 "
        WS_ROWS+="| $r | $(fmt "$R_RECEIVED") / $(fmt "$WS_CONNECTED") | $(fmt "$R_LAT_MAX") | $(fmt "$R_P50") | $(fmt "$R_P99") |"$'\n'
        log "floor round $r: $R_RECEIVED/$WS_CONNECTED received, last delivery $R_LAT_MAX us, p50 $R_P50 us, p99 $R_P99 us"
        sleep 1
    done
    WS_LAST=$(median_of "$lasts")
    WS_P50=$(median_of "$p50s")
    WS_P99=$(median_of "$p99s")
    WS_LOOP=$(cat "$TMP"/wsfloor.*.out | field round_us_p50 | maxof)
    stop_pids 10 "${probe_pids[@]}"
    probe_pids=()
    stop_pids 20 "${lg_pids[@]}"
    lg_pids=()
    wait_sockets_closed
}

floor_phase() {
    local line
    log "kernel floor: one 66-byte send() on each of $N idle loopback sockets, $PROCS sender processes on CPU $EDGE_CPU, readers on CPU $LOAD_CPU, $FLOOR_ROUNDS rounds"
    FLOOR_DROPS0=$(softnet_drops)
    "${AS0[@]}" taskset -c $LOAD_CPU "$BIN/send_floor" multi "$N" "$PER_PROC" "$FLOOR_ROUNDS" 66 "$LOAD_CPU" "$EDGE_CPU" \
        >"$TMP/floor.out" 2> >(sed -u 's/^/scale.sh: /' >&2) &
    floor_pid=$!
    while kill -0 "$floor_pid" 2>/dev/null; do
        check_deadline
        check_memory
        sleep 0.5
    done
    wait "$floor_pid" || die "send_floor failed"
    floor_pid=""
    FLOOR_DROPS=$(( $(softnet_drops) - FLOOR_DROPS0 ))
    FLOOR_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
    line=$(cat "$TMP/floor.out")
    FLOOR_US=$(field round_us_p50 <<<"$line")
    FLOOR_MIN_US=$(field round_us_min <<<"$line")
    FLOOR_MAX_US=$(field round_us_max <<<"$line")
    FLOOR_SEND_NS=$(field send_ns_p50 <<<"$line")
    FLOOR_CPU_US=$(field cpu_us_p50 <<<"$line")
    log "kernel floor: $line (softnet drops $FLOOR_DROPS)"
}

# Ends the servers and load generators after the measurements, before the
# floor probe needs the memory; waits until their sockets are gone.
stop_servers() {
    # read once (not `cat | head`: under pipefail, cat's SIGPIPE would stop the run)
    local warn_log
    warn_log=$(cat "$TMP"/edge.*.err "$TMP/broker.err" 2>/dev/null || true)
    EDGE_WARN=$(awk 'NR <= 5' <<<"$warn_log")
    EDGE_WARN_COUNTS=$(awk '
        { for (i = 1; i <= NF; i++) if ($i ~ /^event=/) { k = substr($i, 7) " (" $3 ")"; if (!(k in n)) o[m++] = k; n[k]++ } }
        END { for (j = 0; j < m; j++) printf "%s%s: %d", (j ? ", " : ""), o[j], n[o[j]] }' <<<"$warn_log")
    log "stopping the load generators, edges and broker"
    stop_pids 20 "${lg_pids[@]}"
    lg_pids=()
    stop_pids 15 "${edge_pids[@]}"
    edge_pids=()
    stop_pids 10 "$broker_pid"
    broker_pid=""
    wait_sockets_closed
}

wait_sockets_closed() {
    local t0 inuse
    t0=$(date +%s)
    while inuse=$(sockstat_tcp inuse) && [ "$inuse" -gt $((SOCK0_INUSE + 20000)) ]; do
        [ $(($(date +%s) - t0)) -lt 60 ] || { log "still $inuse TCP sockets in use after 60 s"; break; }
        log "waiting for sockets to close: $inuse TCP sockets in use"
        sleep 1
    done
}

connect_phase() {
    local t0 last_t last_open open pending failed closed t ready rate erss
    log "connecting $N WebSockets ($PROCS load generators x <= $PER_PROC, max $LG_PENDING in flight each)"
    t0=$(now) last_t=$t0 last_open=0
    start_loadgens
    while :; do
        sleep 1
        check_alive
        check_memory
        check_deadline
        read -r open pending failed closed _ < <(lg_progress)
        t=$(now)
        ready=$(ready_count)
        rate=$(awk -v a="$last_open" -v b="$open" -v t0="$last_t" -v t1="$t" 'BEGIN { printf "%.0f", (b - a) / (t1 - t0) }')
        erss=$(rss_sum "${edge_pids[@]}")
        log "connect t=$(awk -v a="$t0" -v b="$t" 'BEGIN { printf "%.0f", b - a }')s open=$open/$N rate=$rate/s in_flight=$pending failed=$failed closed=$closed edge_rss=$(mib "$erss") mem_available=$(( $(meminfo_kb MemAvailable) / 1024 )) MiB ready=$ready/$PROCS"
        last_t=$t last_open=$open
        [ "$ready" -ge "$PROCS" ] && break
        awk -v a="$t0" -v b="$t" -v m="$CONNECT_MAX_S" 'BEGIN { exit !(b - a > m) }' &&
            die "not all connections ended within CONNECT_MAX_S=${CONNECT_MAX_S}s"
    done
    T_CONNECTED=$(now)
    CONNECTED=$(grep -h '^ready' "$TMP"/lg.*.out | field connected | sum)
    FAILED=$(grep -h '^ready' "$TMP"/lg.*.out | field failed | sum)
    CONNECT_S=$(awk -v a="$t0" -v b="$T_CONNECTED" 'BEGIN { printf "%.1f", b - a }')
    CONNECT_RATE=$(awk -v n="$CONNECTED" -v s="$CONNECT_S" 'BEGIN { printf "%.0f", n / s }')
    log "connected $CONNECTED of $N in ${CONNECT_S}s ($CONNECT_RATE/s), $FAILED failed"
    [ "$FAILED" = 0 ] || log "WARNING: $FAILED connections failed (see $TMP/lg.*.err)"
}

# Waits until the broker holds every subscription: user.<i> for each open connection, bench.all per edge.
wait_subscribed() {
    local want=$((CONNECTED + PROCS)) have=0
    for _ in $(seq 240); do
        have=$(broker_metric herald_subscriptions || echo 0)
        [ "${have:-0}" -ge "$want" ] && break
        log "subscriptions at the broker: ${have:-0} of $want"
        check_alive
        sleep 0.5
    done
    [ "${have:-0}" -ge "$want" ] || die "the broker holds ${have:-0} subscriptions, expected $want"
    SUBS=$have
    log "the broker holds $SUBS subscriptions (user.<i> per connection + bench.all per edge)"
}

memory_phase() {
    local k
    sleep 2
    check_alive
    EDGE_RSS=$(rss_sum "${edge_pids[@]}")
    EDGE_RSS_DELTA=$((EDGE_RSS - EDGE_BASE))
    EDGE_PER_CONN=$((EDGE_RSS_DELTA / CONNECTED))
    EDGE_RSS_MAX=0 EDGE_RSS_MIN=-1
    for k in "${edge_pids[@]}"; do
        local r
        r=$(rss_of "$k")
        [ "$r" -gt "$EDGE_RSS_MAX" ] && EDGE_RSS_MAX=$r
        { [ "$EDGE_RSS_MIN" -lt 0 ] || [ "$r" -lt "$EDGE_RSS_MIN" ]; } && EDGE_RSS_MIN=$r
    done
    SLAB_DELTA=$(( ($(meminfo_kb Slab) - SLAB0) * 1024 ))
    SUNRECL_DELTA=$(( ($(meminfo_kb SUnreclaim) - SUNRECL0) * 1024 ))
    TCPMEM_DELTA=$(( ($(sockstat_tcp mem) - TCPMEM0) * 4096 ))
    SOCK_DELTA=$(( $(sockstat_tcp alloc) - SOCK0 ))
    AVAIL_DELTA=$(( (AVAIL0 - $(meminfo_kb MemAvailable)) * 1024 ))
    LG_RSS=$(rss_sum "${lg_pids[@]}")
    BROKER_RSS=$(rss_of "$broker_pid")
    BROKER_RSS_DELTA=$((BROKER_RSS - BROKER_BASE))
    log "edge RSS $(mib "$EDGE_RSS") (empty: $(mib "$EDGE_BASE")): $EDGE_PER_CONN B per connection; kernel Slab +$(mib "$SLAB_DELTA") ($((SLAB_DELTA / CONNECTED)) B per connection), TCP sockets +$SOCK_DELTA; load generators $(mib "$LG_RSS"); broker +$(mib "$BROKER_RSS_DELTA")"
}

# Waits until `expected` deliveries arrived, nothing arrived for STALL_S, or max_s passed.
drain() {
    local expected=$1 max_s=$2 label=$3 last=-1 still=0 now open pending failed closed t0 i=0
    t0=$(date +%s)
    while :; do
        sleep 0.5
        i=$((i + 1))
        read -r open pending failed closed now < <(lg_progress)
        if [ $((i % 2)) = 0 ]; then
            log "$label: received $now of $expected, $(($(date +%s) - t0))s"
            check_alive
        fi
        if [ "$now" -ge "$expected" ]; then
            sleep 0.6 # one more progress period: late duplicates would show as extra
            return 0
        fi
        if [ "$now" -eq "$last" ]; then still=$((still + 1)); else still=0; fi
        [ "$still" -ge 8 ] && { log "$label: no deliveries for 4 s, $now of $expected"; return 0; }
        [ $(($(date +%s) - t0)) -lt "$max_s" ] || { log "$label: gave up after ${max_s}s"; return 0; }
        last=$now
    done
}

# Collects the last window into R_* variables.
collect() {
    local w=$((WIN - 1))
    R_RECEIVED=$(window_sum "$w" received)
    R_EXPECTED=$(window_sum "$w" expected)
    R_SHORT=$(window_sum "$w" short)
    R_EXTRA=$(window_sum "$w" extra)
    R_MISROUTED=$(window_sum "$w" misrouted)
    R_BAD=$(window_sum "$w" bad)
    R_ERRORS=$(window_sum "$w" errors)
    R_CLOSED=$(window_sum "$w" closed)
    R_LAT_MAX=$(window_max "$w" lat_max_us)
    R_APP_P99=$(window_max "$w" app_lat_p99_us)
    R_FIRST=$(window_lines "$w" | field first_us | { grep -v '^0$' || true; } | sort -n | head -n 1)
    R_LAST=$(window_lines "$w" | field last_us | maxof)
    read -r R_P50 R_P99 R_P999 R_HMAX < <(merged_percentiles "0.5 0.99 0.999")
}

# publish ARGS...: one RESP publisher run on the load CPU.
publish() {
    "${AS0[@]}" taskset -c $LOAD_CPU "$BIN/herald-loadgen" publish --resp "127.0.0.1:$RESP_PORT" "$@" \
        >"$TMP/pub.out" 2>"$TMP/pub.err" || log "publisher: $(cat "$TMP/pub.out" "$TMP/pub.err")"
}

broadcast_phase() {
    local i e0 e1 d0 c0 c1
    BCAST_ROWS="" BCAST_LASTS="" BCAST_P50S="" BCAST_P99S="" BCAST_OK=1 BCAST_RUNS_JSON="" BCAST_CPUS=""
    for i in $(seq "$BCAST_RUNS"); do
        check_deadline
        check_alive
        end_window USR1
        d0=$(softnet_drops)
        e0=$(cpu_sum "${edge_pids[@]}") c0=$(cpu_snap)
        local p0 t0
        p0=$(cpu_ticks 1) t0=$(now)
        publish --rate 1 --count 1 --topic bench.all --seed $((1000 + i))
        drain "$CONNECTED" 60 "broadcast $i/$BCAST_RUNS"
        e1=$(cpu_sum "${edge_pids[@]}") c1=$(cpu_snap)
        end_window USR1
        collect
        local drops=$(( $(softnet_drops) - d0 ))
        local edge_cpu
        edge_cpu=$(awk -v a="$e0" -v b="$e1" 'BEGIN { printf "%.2f", (b - a) / 100 }')
        [ "$R_RECEIVED" = "$CONNECTED" ] && [ "$R_EXPECTED" = "$CONNECTED" ] && [ "$R_SHORT" = 0 ] &&
            [ "$R_EXTRA" = 0 ] && [ "$R_BAD" = 0 ] && [ "$R_ERRORS" = 0 ] || BCAST_OK=0
        BCAST_LASTS+="$R_LAT_MAX " BCAST_P50S+="$R_P50 " BCAST_P99S+="$R_P99 " BCAST_CPUS+="$((e1 - e0)) "
        BCAST_ROWS+="| $i | $(fmt "$R_RECEIVED") / $(fmt "$R_EXPECTED") | $R_SHORT / $R_EXTRA | $(fmt "$R_LAT_MAX") | $(fmt "$R_P50") | $(fmt "$R_P99") | $(fmt "$R_APP_P99") | ${edge_cpu} s | $(cpu_use "$c0" "$c1"); $(pid1_use "$p0" "$t0") | $drops |"$'\n'
        BCAST_RUNS_JSON+="${BCAST_RUNS_JSON:+, }{\"received\": $R_RECEIVED, \"expected\": $R_EXPECTED, \"short\": $R_SHORT, \"extra\": $R_EXTRA, \"last_delivery_us\": $(jnum "$R_LAT_MAX"), \"p50_us\": $(jnum "$R_P50"), \"p99_us\": $(jnum "$R_P99"), \"app_p99_us\": $(jnum "$R_APP_P99"), \"edge_cpu_s\": $edge_cpu, \"softnet_drops\": $drops}"
        log "broadcast $i: $R_RECEIVED/$R_EXPECTED received, short $R_SHORT, extra $R_EXTRA, last delivery $R_LAT_MAX us, p50 $R_P50 us, p99 $R_P99 us, edge CPU ${edge_cpu}s, softnet drops $drops"
        sleep 1
    done
    BCAST_LAST=$(median_of "$BCAST_LASTS")
    BCAST_P50=$(median_of "$BCAST_P50S")
    BCAST_P99=$(median_of "$BCAST_P99S")
    BCAST_CPU_US=$(( $(median_of "$BCAST_CPUS") * 1000000 / $(getconf CLK_TCK) ))
}

# unicast_run RATE: one unicast run; sets the UNI_* results and returns.
unicast_run() {
    local rate=$1 count=$(($1 * UNICAST_S)) seed=$(( (RANDOM << 15 | RANDOM) + 1 )) d0 span ok
    check_deadline
    check_alive
    end_window USR2 # from here on the load generators count unicast
    d0=$(softnet_drops)
    local c0 e0 b0 l0 t0 p0
    c0=$(cpu_snap) e0=$(cpu_sum "${edge_pids[@]}") b0=$(cpu_ticks "$broker_pid") l0=$(cpu_sum "${lg_pids[@]}") t0=$(now)
    p0=$(cpu_ticks 1)
    log "unicast: $rate events/s to random user.<i> of $N for ${UNICAST_S}s (seed $seed)"
    "${AS0[@]}" taskset -c $LOAD_CPU "$BIN/herald-loadgen" publish --resp "127.0.0.1:$RESP_PORT" \
        --rate "$rate" --count "$count" --topic-mode unicast --users "$N" --seed "$seed" \
        >"$TMP/pub.out" 2>"$TMP/pub.err" &
    pub_pid=$!
    while kill -0 "$pub_pid" 2>/dev/null; do
        sleep 1
        log "unicast: publishing, received $(lg_progress | awk '{ print $5 }') so far"
        check_alive
        check_deadline
    done
    wait "$pub_pid" || log "publisher: $(cat "$TMP/pub.out" "$TMP/pub.err")"
    pub_pid=""
    UNI_CPU=$(cpu_use "$c0" "$(cpu_snap)")
    UNI_PROC_CPU=$(awk -v t0="$t0" -v t1="$(now)" -v e="$(( $(cpu_sum "${edge_pids[@]}") - e0 ))" \
        -v b="$(( $(cpu_ticks "$broker_pid") - b0 ))" -v l="$(( $(cpu_sum "${lg_pids[@]}") - l0 ))" \
        'BEGIN { d = t1 - t0; printf "edges %.0f%%, broker %.0f%%, load generators %.0f%% of a core", e / d, b / d, l / d }')
    UNI_PROC_CPU+="; $(pid1_use "$p0" "$t0")"
    log "unicast CPU while publishing: $UNI_CPU; $UNI_PROC_CPU"
    drain "$count" 60 "unicast"
    end_window USR1
    collect
    UNI_DROPS=$(( $(softnet_drops) - d0 ))
    UNI_PUB_RATE=$(field rate_per_s <"$TMP/pub.out")
    UNI_PUBLISHED=$(field published <"$TMP/pub.out")
    span=$(( ${R_LAST:-0} - ${R_FIRST:-0} ))
    UNI_RATE=$(awk -v n="$R_RECEIVED" -v s="$span" 'BEGIN { printf "%.0f", (s > 0 ? n * 1e6 / s : 0) }')
    UNI_RECEIVED=$R_RECEIVED UNI_EXPECTED=$R_EXPECTED UNI_SHORT=$R_SHORT UNI_EXTRA=$R_EXTRA
    UNI_MISROUTED=$R_MISROUTED UNI_P50=$R_P50 UNI_P99=$R_P99 UNI_P999=$R_P999 UNI_MAX=$R_HMAX
    UNI_APP_P99=$R_APP_P99
    ok=0
    [ "$UNI_RECEIVED" = "$count" ] && [ "$UNI_EXPECTED" = "$count" ] && [ "$UNI_SHORT" = 0 ] &&
        [ "$UNI_EXTRA" = 0 ] && [ "$UNI_MISROUTED" = 0 ] && [ "$R_BAD" = 0 ] && [ "$R_ERRORS" = 0 ] &&
        ok=1
    [ "$ok" = 1 ] || UNI_ALL_OK=0
    log "unicast: published $UNI_PUBLISHED at $UNI_PUB_RATE/s; received $UNI_RECEIVED of $UNI_EXPECTED expected ($count sent) at $UNI_RATE/s; short $UNI_SHORT extra $UNI_EXTRA misrouted $UNI_MISROUTED; p50 $UNI_P50 p99 $UNI_P99 us"
    CLOSED_SERVED=$R_CLOSED # closes the load generators saw so far (a running total), all while the edges served
    UNI_ROWS+="| $(fmt "$rate") | $(fmt "$UNI_RATE") | $(fmt "$UNI_P50") | $(fmt "$UNI_P99") | $(fmt "$UNI_P999") | $(fmt "$UNI_MAX") | $UNI_CPU; $UNI_PROC_CPU | $( [ "$ok" = 1 ] && echo yes || echo NO ) |"$'\n'
    UNI_RUNS_JSON+="${UNI_RUNS_JSON:+, }{\"rate\": $rate, \"delivered_rate\": $(jnum "$UNI_RATE"), \"p50_us\": $(jnum "$UNI_P50"), \"p99_us\": $(jnum "$UNI_P99"), \"p999_us\": $(jnum "$UNI_P999"), \"max_us\": $(jnum "$UNI_MAX"), \"exact\": $(jbool "$ok")}"
    if [ "$ok" = 1 ] && [ "$rate" -gt "$UNI_BEST" ] && awk -v p="$UNI_P99" 'BEGIN { exit !(p != "" && p + 0 <= 20000) }'; then
        UNI_BEST=$rate
    fi
}

# The sweep's lower rates, then UNICAST_RATE, whose results stay in UNI_*.
unicast_phase() {
    local r
    UNI_ALL_OK=1 UNI_ROWS="" UNI_RUNS_JSON="" UNI_BEST=0
    for r in $UNICAST_SWEEP; do
        [ "$r" -lt "$UNICAST_RATE" ] && unicast_run "$r"
    done
    unicast_run "$UNICAST_RATE"
    UNI_OK=$UNI_ALL_OK
}

# ----------------------------------------------------------------- report

verdict() { [ "$1" = 1 ] && echo "met" || echo "**missed**"; }
jnum() { [[ "${1:-}" =~ ^-?[0-9]+(\.[0-9]+)?$ ]] && echo "$1" || echo null; }
jbool() { [ "$1" = 1 ] && echo true || echo false; }

report() {
    local out=bench/results/scale-$STAMP ratio ws_ratio cpu_ratio t_mem t_bcast t_uni t_exact t_n cpu mem
    ratio=$(awk -v a="$BCAST_LAST" -v f="$FLOOR_US" 'BEGIN { printf "%.2f", (f > 0 ? a / f : 0) }')
    ws_ratio=$(awk -v a="$BCAST_LAST" -v f="$WS_LAST" 'BEGIN { printf "%.2f", (f > 0 ? a / f : 0) }')
    cpu_ratio=$(awk -v a="$BCAST_CPU_US" -v f="$FLOOR_CPU_US" 'BEGIN { printf "%.2f", (f > 0 ? a / f : 0) }')
    t_n=0; [ "$CONNECTED" = "$N" ] && [ "$FAILED" = 0 ] && t_n=1
    t_mem=0; [ "$EDGE_PER_CONN" -le 1024 ] && t_mem=1
    t_bcast=$(awk -v r="$ws_ratio" 'BEGIN { print (r > 0 && r <= 1.5) ? 1 : 0 }')
    t_uni=$(awk -v p="$UNI_P99" 'BEGIN { print (p + 0 <= 20000 && p != "-") ? 1 : 0 }')
    t_exact=0; [ "$BCAST_OK" = 1 ] && [ "$UNI_OK" = 1 ] && [ "$CLOSED_SERVED" = 0 ] && t_exact=1
    cpu="$(getconf _NPROCESSORS_ONLN) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
    mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    mkdir -p bench/results
    {
        echo "# Herald at scale: $(fmt "$N") subscribed WebSockets, $STAMP"
        echo
        echo "Command: \`$CMD\`. Machine: $cpu, $mem, Linux $(uname -r); open-file"
        echo "limit $(ulimit -n) per process. $PROCS herald-edge processes (--workers 1, one broker link"
        echo "each, SO_REUSEPORT on one port) pinned to CPU $EDGE_CPU; herald-broker (nice $SCRIPT_NICE), $PROCS herald-loadgen"
        echo "processes (source addresses 127.0.1.1-$(lg_ip $((PROCS - 1)))) and the publisher pinned to CPU $LOAD_CPU;"
        echo "$RPS_NOTE. Each connection subscribes bench.all and user.<i>"
        echo "(?topic=bench.all&topic=user.<i>&format=raw); 64-byte payloads. Edge pings set to 20 min"
        echo "(longer than the run), so no keepalive traffic overlaps a measurement; the edges' broker link"
        echo "keepalive to 3 x 30 s (see the script). Latency: the"
        echo "publisher's realtime stamp to the kernel receive stamp (SO_TIMESTAMPNS; with receive steering"
        echo "it includes the receive side's backlog, so the floor is also timed to the same stamps), merged over processes from log-linear histograms (~3%);"
        echo "\"app p99\" is to when a load generator read it (the load core also runs the receive processing)."
        echo "Load average at the start / end: $LOAD_START / $(cut -d' ' -f1-3 /proc/loadavg) (the machine is"
        echo "shared: other work on the pinned cores adds noise to every timing)."
        echo
        echo "| measure | result | target | |"
        echo "|---|---|---|---|"
        echo "| connections open and subscribed | $(fmt "$CONNECTED") of $(fmt "$N") ($FAILED failed) | $(fmt "$N") | $(verdict $t_n) |"
        echo "| connect rate | $(fmt "$CONNECT_RATE")/s ($CONNECT_S s) | | |"
        echo "| edge RSS per idle connection | $(fmt "$EDGE_PER_CONN") B | ≤ 1,024 B | $(verdict $t_mem) |"
        echo "| edge RSS total | $(mib "$EDGE_RSS") ($(mib "$EDGE_BASE") empty, $PROCS processes, $(mib "$EDGE_RSS_MIN")-$(mib "$EDGE_RSS_MAX") each) | | |"
        echo "| kernel Slab per connection (both ends) | $(fmt $((SLAB_DELTA / CONNECTED))) B (unreclaimable $(fmt $((SUNRECL_DELTA / CONNECTED))) B) | | +$(mib "$SLAB_DELTA"); TCP sockets +$(fmt "$SOCK_DELTA") |"
        echo "| kernel TCP buffer memory per connection (sockstat) | $(fmt $((TCPMEM_DELTA / CONNECTED))) B | | +$(mib "$TCPMEM_DELTA") |"
        echo "| MemAvailable drop per connection (everything) | $(fmt $((AVAIL_DELTA / CONNECTED))) B | | +$(mib "$AVAIL_DELTA") |"
        echo "| load generator RSS | $(mib "$LG_RSS") ($(fmt $((LG_RSS / CONNECTED))) B per connection) | | |"
        echo "| broker RSS growth | $(mib "$BROKER_RSS_DELTA") ($(fmt "$SUBS") subscriptions) | | |"
        echo "| kernel floor with the same receivers: one 66-byte frame on each of the load generators' N connections, last delivery | $(fmt "$WS_LAST") µs (p50 $(fmt "$WS_P50"), p99 $(fmt "$WS_P99"); slowest probe's send loop $(fmt "$WS_LOOP") µs) | | bench/send_floor.c ws: $PROCS probes on CPU $EDGE_CPU in the edges' place, one port each, the same $PROCS load generators ($(fmt "$WS_CONNECTED") connected); every probe starts a round on one signal; timed to the same receive stamps as the broadcast; median of $FLOOR_ROUNDS rounds (below) |"
        echo "| broadcast of one event to all N: last delivery | $(fmt "$BCAST_LAST") µs = $ws_ratio × that floor | ≤ 1.5 × floor | $(verdict "$t_bcast") |"
        echo "| kernel floor, send loop with the probe's own readers: one 66-byte send() on each of N idle sockets | $(fmt "$FLOOR_US") µs (min $(fmt "$FLOOR_MIN_US"), max $(fmt "$FLOOR_MAX_US"); $FLOOR_SEND_NS ns per send); the broadcast's last delivery = $ratio × this | | bench/send_floor.c multi, $PROCS senders, median of $FLOOR_ROUNDS rounds; softnet drops $FLOOR_DROPS; run after the servers stopped (load average then $FLOOR_LOAD). The length of a send loop, not a delivery time (earlier runs read the target against it) |"
        echo "| broadcast latency p50 / p99 | $(fmt "$BCAST_P50") / $(fmt "$BCAST_P99") µs | | median of $BCAST_RUNS runs |"
        echo "| broadcast: edges' CPU time against the floor senders' CPU time | $(fmt "$BCAST_CPU_US") µs / $(fmt "$FLOOR_CPU_US") µs = $cpu_ratio | | medians; CPU time does not grow with other work on the core, wall time does |"
        echo "| unicast $UNICAST_RATE events/s for ${UNICAST_S}s: delivered rate | $(fmt "$UNI_RATE")/s (published at $(fmt "$UNI_PUB_RATE")/s) | | |"
        echo "| unicast latency p50 / p99 / p999 / max | $(fmt "$UNI_P50") / $(fmt "$UNI_P99") / $(fmt "$UNI_P999") / $(fmt "$UNI_MAX") µs (app p99 $(fmt "$UNI_APP_P99")) | p99 ≤ 20,000 µs | $(verdict "$t_uni") |"
        echo "| unicast: CPU use while publishing | $UNI_CPU; $UNI_PROC_CPU | | /proc/stat, /proc/PID/stat |"
        echo "| unicast: highest rate tried with p99 ≤ 20 ms, delivered exactly | $( [ "$UNI_BEST" -gt 0 ] && echo "$(fmt "$UNI_BEST") events/s" || echo none) | | rates tried: $UNICAST_SWEEP $UNICAST_RATE (below) |"
        echo "| every connection got exactly its events | broadcast $( [ "$BCAST_OK" = 1 ] && echo yes || echo NO ), unicast $( [ "$UNI_OK" = 1 ] && echo yes || echo NO ) (every run below; at $(fmt "$UNICAST_RATE")/s $(fmt "$UNI_RECEIVED") / $(fmt "$UNI_EXPECTED"), short $UNI_SHORT, extra $UNI_EXTRA, misrouted $UNI_MISROUTED); closed $CLOSED_SERVED | zero lost | $(verdict $t_exact) |"
        echo
        echo "Broadcast runs (one event to bench.all each; µs):"
        echo
        echo "| run | received / expected | short / extra conns | last delivery | p50 | p99 | app p99 | edge CPU time | cores, publish to drained | softnet drops |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        printf "%s" "$BCAST_ROWS"
        echo
        echo "Unicast runs (events/s to random user.<i> for ${UNICAST_S}s each, lowest rate first; µs):"
        echo
        echo "| rate | delivered/s | p50 | p99 | p999 | max | CPU use while publishing | exact |"
        echo "|---|---|---|---|---|---|---|---|"
        printf "%s" "$UNI_ROWS"
        echo
        echo "Same-receiver floor rounds (one frame per connection from every probe at once; µs):"
        echo
        echo "| round | received / connected | last delivery | p50 | p99 |"
        echo "|---|---|---|---|---|"
        printf "%s" "$WS_ROWS"
        echo
        echo "Tuning (restored at exit): $(printf '%s; ' "${TUNED[@]}")"
        if [ -n "$EDGE_WARN" ]; then
            echo
            echo "Warnings logged by the edges and the broker during the measurements ($EDGE_WARN_COUNTS; the first 5):"
            echo
            echo "$EDGE_WARN" | sed 's/^/    /'
        fi
    } >"$out.md"
    cat >"$out.json" <<EOF
{
  "command": "${CMD//\"/\\\"}",
  "date": "$STAMP",
  "machine": {"cpus": $(getconf _NPROCESSORS_ONLN), "mem_total_kb": $(meminfo_kb MemTotal), "kernel": "$(uname -r)", "nofile": $(ulimit -n)},
  "n": $N, "edge_processes": $PROCS, "loadgen_processes": $PROCS, "rps": "$RPS_NOTE", "rfs": $(jbool "$RFS"),
  "connect": {"connected": $CONNECTED, "failed": $FAILED, "seconds": $(jnum "$CONNECT_S"), "rate_per_s": $(jnum "$CONNECT_RATE")},
  "edge_rss": {"total_bytes": $EDGE_RSS, "empty_bytes": $EDGE_BASE, "per_connection_bytes": $EDGE_PER_CONN},
  "kernel": {"slab_delta_bytes": $SLAB_DELTA, "slab_per_connection_bytes": $((SLAB_DELTA / CONNECTED)), "sunreclaim_delta_bytes": $SUNRECL_DELTA, "tcp_mem_delta_bytes": $TCPMEM_DELTA, "tcp_sockets_delta": $SOCK_DELTA, "mem_available_drop_bytes": $AVAIL_DELTA},
  "loadgen_rss_bytes": $LG_RSS, "broker_rss_delta_bytes": $BROKER_RSS_DELTA, "broker_subscriptions": $SUBS,
  "ws_floor": {"last_delivery_us_median": $(jnum "$WS_LAST"), "p50_us_median": $(jnum "$WS_P50"), "p99_us_median": $(jnum "$WS_P99"), "send_loop_us_max": $(jnum "$WS_LOOP"), "connected": $(jnum "$WS_CONNECTED"), "rounds": $FLOOR_ROUNDS},
  "floor": {"round_us_p50": $(jnum "$FLOOR_US"), "round_us_min": $(jnum "$FLOOR_MIN_US"), "round_us_max": $(jnum "$FLOOR_MAX_US"), "send_ns_p50": $(jnum "$FLOOR_SEND_NS"), "rounds": $FLOOR_ROUNDS, "softnet_drops": $FLOOR_DROPS},
  "broadcast": {"runs": [$BCAST_RUNS_JSON], "last_delivery_us_median": $(jnum "$BCAST_LAST"), "p50_us_median": $(jnum "$BCAST_P50"), "p99_us_median": $(jnum "$BCAST_P99"), "ratio_to_floor": $ws_ratio, "ratio_to_send_loop_floor": $ratio, "edge_cpu_us_median": $(jnum "$BCAST_CPU_US"), "floor_cpu_us": $(jnum "$FLOOR_CPU_US"), "cpu_ratio_to_floor": $cpu_ratio, "exact": $(jbool "$BCAST_OK")},
  "unicast": {"rate_target": $UNICAST_RATE, "seconds": $UNICAST_S, "published": $(jnum "$UNI_PUBLISHED"), "published_rate": $(jnum "$UNI_PUB_RATE"), "received": $UNI_RECEIVED, "expected": $UNI_EXPECTED, "short": $UNI_SHORT, "extra": $UNI_EXTRA, "misrouted": $UNI_MISROUTED, "delivered_rate": $(jnum "$UNI_RATE"), "p50_us": $(jnum "$UNI_P50"), "p99_us": $(jnum "$UNI_P99"), "p999_us": $(jnum "$UNI_P999"), "max_us": $(jnum "$UNI_MAX"), "app_p99_us": $(jnum "$UNI_APP_P99"), "softnet_drops": $UNI_DROPS, "cpu": "$UNI_CPU; $UNI_PROC_CPU", "exact": $(jbool "$UNI_OK"), "runs": [$UNI_RUNS_JSON], "best_rate_p99_le_20ms": $UNI_BEST},
  "targets": {"n_connected": $(jbool $t_n), "edge_rss_le_1024": $(jbool $t_mem), "broadcast_le_1_5_floor": $(jbool "$t_bcast"), "unicast_p99_le_20ms": $(jbool "$t_uni"), "zero_lost": $(jbool $t_exact)}
}
EOF
    cat "$out.md"
    log "written $out.md and $out.json"
}

# -------------------------------------------------------------------- main

main() {
    local need_kb
    taskset -cp $LOAD_CPU $$ >/dev/null
    renice -n $SCRIPT_NICE -p $$ >/dev/null
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    need_kb=$((N * 12 + 2 * 1024 * 1024))
    [ "$(meminfo_kb MemAvailable)" -ge "$need_kb" ] ||
        die "N=$N needs about $((need_kb / 1024)) MiB available, have $(( $(meminfo_kb MemAvailable) / 1024 )) MiB"
    (
        trap 'kill "$sp" 2>/dev/null; exit 0' TERM
        sleep "$MAX_S" &
        sp=$!
        wait "$sp"
        log "watchdog: MAX_S=${MAX_S}s passed"
        kill -TERM $$
    ) &
    watchdog_pid=$!
    prepare_binaries
    tune
    TUNED=()
    for r in "${RESTORE[@]}"; do TUNED+=("${r%%$'\t'*} = $(tr -s ' \t' ' ' <"${r%%$'\t'*}") (was ${r#*$'\t'})"); done
    start_broker
    start_edges
    sleep 1
    EDGE_BASE=$(rss_sum "${edge_pids[@]}") BROKER_BASE=$(rss_of "$broker_pid")
    SLAB0=$(meminfo_kb Slab) SUNRECL0=$(meminfo_kb SUnreclaim) AVAIL0=$(meminfo_kb MemAvailable)
    TCPMEM0=$(sockstat_tcp mem) SOCK0=$(sockstat_tcp alloc) SOCK0_INUSE=$(sockstat_tcp inuse)
    connect_phase
    [ "$CONNECTED" -gt 0 ] || die "no connection opened"
    wait_subscribed
    memory_phase
    broadcast_phase
    unicast_phase
    stop_servers
    ws_floor_phase
    floor_phase
    report
    log "done in $(elapsed)s"
    OK_EXIT=1
}

main
