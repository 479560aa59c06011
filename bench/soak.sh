#!/usr/bin/env bash
# Herald soak: minutes of mixed abuse (the attacks of tests/integration/test_hardening_*.py, in rotation) against
# one herald-broker and one herald-edge while 1,000 well-behaved WebSocket
# subscribers receive a steady event stream. Nothing they are sent may be lost,
# and neither process may keep the memory the abuse made it take.
#
#   bench/soak.sh                       300 s of abuse (SOAK_SECONDS, or the first argument)
#   bench/soak.sh 40                    a short run while developing
#   make soak                           builds, then the same (SOAK_SECONDS=... make soak)
#   BUILD=build-test bench/soak.sh      the sanitizer build (make test builds it): memory
#                                       errors show as an ASan report and a dead process
#   BROKER_ATTACKS=a,b EDGE_ATTACKS=c   the rotation (bench/soak_abuse.py --help lists
#                                       them; "none" empties a lane)
#   SOAK_ABUSE_ARGS="--hog-mb 50 ..."   more options for the attacker (its knobs)
#   SOAK_NOTE="..."                     a line for the report (e.g. which binaries these are)
#
# Timeline: broker and edge start (conf defaults, log-level warn, loopback ports
# picked free); 500 subscribers on the broadcast topic soak.all and 500 on their
# own user.<i> (two herald-loadgen processes, kernel receive stamps) connect;
# two publishers start (RESP PUBLISH, BCAST_RATE events/s to soak.all and
# UNI_RATE events/s to random users) and run through WARMUP_S of quiet, the
# SOAK_SECONDS of abuse (bench/soak_abuse.py: a broker lane and an edge lane,
# one attack per SLICE_S slice each) and COOLDOWN_S of quiet; then the
# subscribers' counts are read. Every SAMPLE_S seconds: VmRSS and CPU time
# (/proc/PID/status, /proc/PID/stat) of both processes, whether they are alive,
# and a few /metrics values. A process over RSS_CAP_MB is killed (SIGKILL) to
# protect the machine, and the report says so.
#
# Report (stdout and bench/results/soak-<UTC>.md): settings, the samples, RSS
# at start / after warm-up / max / end, CPU, the subscribers' delivery
# (received / expected / short / extra / closed, latency p50 / p99 / p999), the
# attacks' counts, the final counters, and the verdicts:
#   processes alive  both ran to the end and exited 0 on SIGTERM
#   nothing lost     every subscriber connected and got exactly its events
#                    (short = extra = closed = misrouted = 0, received = expected),
#                    and the publishers published every event
#   memory flat      end RSS (after the cool-down) <= after-warm-up RSS + max(20%, 20 MB),
#                    for each process
# Exit status 0 when all pass, 1 otherwise (after the report is written).
#
# requirepass is not set: herald-loadgen's publisher has no AUTH, so auth_brute
# meets a broker with no password (its guesses get an error reply, not a check).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

SOAK_SECONDS=${1:-${SOAK_SECONDS:-300}}
SLICE_S=${SLICE_S:-15}             # one attack per lane per slice
WARMUP_S=${WARMUP_S:-15}           # well-behaved traffic only, before the abuse
COOLDOWN_S=${COOLDOWN_S:-10}       # and after it; "end" RSS is read after this
SAMPLE_S=${SAMPLE_S:-5}
BCAST_N=${BCAST_N:-500}            # subscribers of soak.all
UNI_N=${UNI_N:-500}                # subscribers of user.<i>, one each
BCAST_RATE=${BCAST_RATE:-25}       # events/s to soak.all (x BCAST_N deliveries)
UNI_RATE=${UNI_RATE:-100}          # events/s to random user.<k>
EDGE_WORKERS=${EDGE_WORKERS:-1}    # 1 or 2
RSS_CAP_MB=${RSS_CAP_MB:-6144}     # a process past it is killed
FLAT_PCT=${FLAT_PCT:-20}           # memory flat: end <= warm-up + max(FLAT_PCT %, FLAT_MB)
FLAT_MB=${FLAT_MB:-20}
DRAIN_MAX_S=${DRAIN_MAX_S:-15}     # longest wait for the last deliveries
BUILD=${BUILD:-build}
BROKER_ATTACKS=${BROKER_ATTACKS:-}
EDGE_ATTACKS=${EDGE_ATTACKS:-}
SOAK_ABUSE_ARGS=${SOAK_ABUSE_ARGS:-}
SOAK_NOTE=${SOAK_NOTE:-}           # a line for the report (which binaries these are, say)

# ---- hardening directives -----------------------------------------------------
# Directives of the fixed broker that make an attack measurable here. Each is
# passed only when `herald-broker --help` lists it; a binary without them (today's)
# runs on the defaults, and the report names the directives it skipped.
#   max-topics=50000             distinct_topics adds 100,000 topics a slice: with a
#                                bound, memory stays flat and eviction shows instead
#   edge-secret=...              the real edge proves its role with this secret (sent
#                                as its broker-secret); a link that only claims role
#   edge-output-limit-total=0    "edge" gets client-output-limit (edge_role_hog)
NEW_BROKER_DIRECTIVES=${NEW_BROKER_DIRECTIVES-"max-topics=50000 edge-secret=soak-edge-secret edge-output-limit-total=0"}
# -------------------------------------------------------------------------------

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
LINK_PORT=$(free_port)
RESP_PORT=$(free_port)
HTTP_PORT=$(free_port)
EDGE_PORT=$(free_port)

[[ "$SOAK_SECONDS" =~ ^[0-9]+$ ]] && [ "$SOAK_SECONDS" -ge 10 ] ||
    { echo "soak.sh: SOAK_SECONDS must be a number of seconds >= 10" >&2; exit 2; }
command -v curl >/dev/null || { echo "soak.sh: curl missing" >&2; exit 1; }
for b in herald-broker herald-edge herald-loadgen; do
    [ -x "$BUILD/$b" ] || { make build BUILD="$BUILD" >/dev/null; break; }
done
LG=$BUILD/herald-loadgen
CLK_TCK=$(getconf CLK_TCK)
T_START=$(date +%s)
# every wait below is bounded; this is the backstop
LIMIT_S=$((WARMUP_S + SOAK_SECONDS + COOLDOWN_S + 45))

TMP=$(mktemp -d /tmp/herald-soak.XXXXXX)
pids=() lg_pids=() pub_pids=() broker_pid="" edge_pid="" sampler_pid="" abuse_pid="" watchdog_pid=""
cleanup() {
    trap - EXIT INT TERM
    for p in "$watchdog_pid" "$sampler_pid" "$abuse_pid" "${pub_pids[@]}" "${lg_pids[@]}" "${pids[@]}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM
log() { echo "soak.sh: $*" >&2; }

( trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$LIMIT_S" & sp=$!
  wait "$sp"
  echo "soak.sh: over the ${LIMIT_S} s limit, stopping" >&2
  kill -TERM $$ ) &
watchdog_pid=$!

# ------------------------------------------------------------ servers

BROKER_NEW=() EDGE_NEW=() APPLIED="" SKIPPED=""
pick_directives() {
    local help d name
    help=$("$BUILD/herald-broker" --help 2>&1 || true)
    for d in $NEW_BROKER_DIRECTIVES; do
        name=${d%%=*}
        if grep -q -- "--$name " <<<"$help"; then
            BROKER_NEW+=("--$name" "${d#*=}")
            APPLIED+="${APPLIED:+ }$d"
            if [ "$name" = edge-secret ]; then EDGE_NEW+=(--broker-secret "${d#*=}"); fi
        else
            SKIPPED+="${SKIPPED:+ }$name"
        fi
    done
}

start_broker() {
    "$BUILD/herald-broker" --bind 127.0.0.1 --link-port "$LINK_PORT" --resp-port "$RESP_PORT" \
        --http-port "$HTTP_PORT" --log-level warn "${BROKER_NEW[@]}" 2>"$TMP/broker.err" &
    broker_pid=$!
    pids+=("$broker_pid")
    for _ in $(seq 100); do
        curl -sf -m 1 "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "broker did not start"; cat "$TMP/broker.err" >&2; exit 1
}

start_edge() {
    "$BUILD/herald-edge" --bind 127.0.0.1 --port "$EDGE_PORT" --broker "127.0.0.1:$LINK_PORT" \
        --workers "$EDGE_WORKERS" --log-level warn "${EDGE_NEW[@]}" 2>"$TMP/edge.err" &
    edge_pid=$!
    pids+=("$edge_pid")
    for _ in $(seq 100); do
        curl -sf -m 1 "http://127.0.0.1:$EDGE_PORT/metrics" 2>/dev/null |
            grep -q "^herald_edge_broker_links_up $EDGE_WORKERS\$" && return 0
        sleep 0.1
    done
    log "edge did not start or link to the broker"; cat "$TMP/edge.err" >&2; exit 1
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || true; }
publish_http() { curl -s -m 2 -d "${2:-probe}" "http://127.0.0.1:$HTTP_PORT/v1/publish/$1" 2>/dev/null || true; }

# --------------------------------------------------- well-behaved traffic

start_subs() {
    "$LG" sub --url "ws://127.0.0.1:$EDGE_PORT/ws" --connections "$BCAST_N" --topic-mode broadcast \
        --topic soak.all --raw --kernel-ts --rate 2000 --progress-ms 1000 --hist-out "$TMP/hist.0" \
        --duration $((LIMIT_S + 30)) >"$TMP/lg.0.out" 2>"$TMP/lg.0.err" &
    lg_pids+=($!)
    "$LG" sub --url "ws://127.0.0.1:$EDGE_PORT/ws" --connections "$UNI_N" --topic-mode unicast \
        --users "$UNI_N" --offset 0 --raw --kernel-ts --rate 2000 --progress-ms 1000 \
        --hist-out "$TMP/hist.1" --duration $((LIMIT_S + 30)) >"$TMP/lg.1.out" 2>"$TMP/lg.1.err" &
    lg_pids+=($!)
    for _ in $(seq 300); do
        [ "$(cat "$TMP"/lg.*.out 2>/dev/null | grep -c '^ready')" -eq 2 ] && break
        sleep 0.2
    done
    CONNECTED=$({ grep -h '^ready' "$TMP"/lg.*.out || true; } | field connected | sum)
    log "subscribers: $CONNECTED of $((BCAST_N + UNI_N)) connected"
}

# Waits until soak.all and every user.<i> reach the edge (probes land in window 0, discarded).
wait_routed() {
    local r
    for _ in $(seq 100); do
        r=$(publish_http soak.all | sed -n 's/.*"receivers":\([0-9]*\).*/\1/p')
        if [ "${r:-0}" -ge 1 ] &&
            [ "$(broker_metric herald_patterns)" -ge $((UNI_N + 1)) ] 2>/dev/null; then
            publish_http user.0 >/dev/null
            publish_http "user.$((UNI_N - 1))" >/dev/null
            sleep 1
            return 0
        fi
        sleep 0.2
    done
    log "the subscriptions never all reached the broker"; exit 1
}

broker_metric() { curl -s -m 2 "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# Ends the loadgens' current window; waits for their summary lines.
WIN=0
end_window() {
    local w=$WIN
    for p in "${lg_pids[@]}"; do kill -USR1 "$p" 2>/dev/null || true; done
    for _ in $(seq 100); do
        [ "$(cat "$TMP"/lg.*.out | grep -c "^window=$w ")" -ge "${#lg_pids[@]}" ] && break
        sleep 0.1
    done
    WIN=$((w + 1))
}

# -------------------------------------------------------------- sampler

# One TSV line per sample in $TMP/samples.tsv, columns: 1 epoch, 2 attacks, 3 b_alive, 4 b_rss_kb,
# 5 b_ticks, 6 e_alive, 7 e_rss_kb, 8 e_ticks, 9 b_link, 10 b_resp, 11 b_topics, 12 b_patterns,
# 13 b_slow, 14 b_drops, 15 e_conns, 16 e_slow, 17 e_1008, 18 e_links_up, 19 e_reconnects,
# 20 e_patterns, 21 received (the subscribers' total so far), 22 machine busy ticks, 23 machine
# total ticks (/proc/stat, all cores: other work on the machine shows there).
B_NAMES='herald_connections{endpoint="link"} herald_connections{endpoint="resp"} herald_topics herald_patterns herald_slow_consumers_total'
E_NAMES='herald_edge_connections herald_edge_slow_consumers_total herald_edge_closes_total{reason="1008"} herald_edge_broker_links_up herald_edge_broker_reconnects_total herald_edge_patterns'
values_of() { # NAMES < metrics text: the values in order, "-" when absent, tab-separated
    awk -v names="$1" 'BEGIN { n = split(names, k, " ") } !/^#/ { v[$1] = $2 }
        END { for (i = 1; i <= n; i++) printf "%s%s", ((k[i] in v) ? v[k[i]] : "-"), (i < n ? "\t" : "") }'
}
# scrape ALIVE PORT OUT LAST: /metrics of a live process into OUT (also kept in
# LAST for the report); OUT is left empty when the process is dead or silent.
scrape() {
    if [ "$1" = 1 ] && curl -s -m 2 "http://127.0.0.1:$2/metrics" >"$3" 2>/dev/null && [ -s "$3" ]; then
        cp "$3" "$4"
    else
        : >"$3"
    fi
}
one_sample() {
    local b_alive=0 e_alive=0 b_rss=- e_rss=- b_t=- e_t=- bm em drops now
    now=$(date +%s.%N)
    if kill -0 "$broker_pid" 2>/dev/null; then
        b_alive=1 b_rss=$(rss_kb "$broker_pid") b_t=$(cpu_ticks "$broker_pid")
    fi
    if kill -0 "$edge_pid" 2>/dev/null; then
        e_alive=1 e_rss=$(rss_kb "$edge_pid") e_t=$(cpu_ticks "$edge_pid")
    fi
    scrape "$b_alive" "$HTTP_PORT" "$TMP/m.b" "$TMP/metrics.broker.last"
    scrape "$e_alive" "$EDGE_PORT" "$TMP/m.e" "$TMP/metrics.edge.last"
    bm=$(values_of "$B_NAMES" <"$TMP/m.b")
    em=$(values_of "$E_NAMES" <"$TMP/m.e")
    drops=$(awk '/^herald_drops_total\{/ { s += $2; n++ } END { print n ? s : "-" }' "$TMP/m.b")
    local b_link b_resp b_topics b_pat b_slow e_conns e_slow e_1008 e_up e_rec e_pat received
    IFS=$'\t' read -r b_link b_resp b_topics b_pat b_slow <<<"$bm"
    IFS=$'\t' read -r e_conns e_slow e_1008 e_up e_rec e_pat <<<"$em"
    received=0
    for f in "$TMP"/lg.*.err; do
        received=$((received + $(grep 'received=' "$f" 2>/dev/null | tail -n 1 | field received || true)+0))
    done
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$now" "$(cat "$TMP/attacks.now" 2>/dev/null || echo -)" "$b_alive" "${b_rss:--}" "${b_t:--}" \
        "$e_alive" "${e_rss:--}" "${e_t:--}" "$b_link" "$b_resp" "$b_topics" "$b_pat" "$b_slow" "$drops" \
        "$e_conns" "$e_slow" "$e_1008" "$e_up" "$e_rec" "$e_pat" "$received" \
        "$(awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; printf "%d\t%d", t - $5 - $6, t }' /proc/stat)" \
        >>"$TMP/samples.tsv"
    # the machine first: a process past the cap is killed
    local name pid rss
    for name in broker edge; do
        [ "$name" = broker ] && pid=$broker_pid rss=$b_rss || pid=$edge_pid rss=$e_rss
        if [[ "$rss" =~ ^[0-9]+$ ]] && [ "$rss" -gt $((RSS_CAP_MB * 1024)) ]; then
            kill -KILL "$pid" 2>/dev/null || true
            echo "$name killed by soak.sh at $(date +%s) with VmRSS $((rss / 1024)) MB (RSS_CAP_MB=$RSS_CAP_MB)" >>"$TMP/killed"
        fi
    done
}
sampler() {
    set +e
    local next
    next=$(date +%s.%N)
    while [ ! -e "$TMP/stop.sampler" ]; do
        one_sample
        next=$(awk -v n="$next" -v s="$SAMPLE_S" 'BEGIN { printf "%.3f", n + s }')
        sleep "$(awk -v n="$next" -v t="$(date +%s.%N)" 'BEGIN { d = n - t; printf "%.3f", (d > 0 ? d : 0) }')"
    done
}

# ------------------------------------------------------------- the run

pick_directives
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
DATE=$(date -u +%Y-%m-%dT%H%M%SZ)
log "build $BUILD; issue-10 directives applied: ${APPLIED:-none}; skipped (unsupported): ${SKIPPED:-none}"
start_broker
start_edge
sleep 1
RSS0_B=$(rss_kb "$broker_pid") RSS0_E=$(rss_kb "$edge_pid")
start_subs
wait_routed
end_window # window 0: the probes
RSS_SUBS_B=$(rss_kb "$broker_pid") RSS_SUBS_E=$(rss_kb "$edge_pid")

RUN_S=$((WARMUP_S + SOAK_SECONDS + COOLDOWN_S))
BCOUNT=$((BCAST_RATE * RUN_S)) UCOUNT=$((UNI_RATE * RUN_S))
EXPECTED=$((BCOUNT * BCAST_N + UCOUNT))
echo "-" >"$TMP/attacks.now"
T0=$(date +%s.%N)
T0_TICKS_B=$(cpu_ticks "$broker_pid") T0_TICKS_E=$(cpu_ticks "$edge_pid")
"$LG" publish --resp "127.0.0.1:$RESP_PORT" --rate "$BCAST_RATE" --count "$BCOUNT" --topic soak.all \
    --duration $((RUN_S + 20)) >"$TMP/pub.b.out" 2>"$TMP/pub.b.err" &
pub_pids+=($!)
"$LG" publish --resp "127.0.0.1:$RESP_PORT" --rate "$UNI_RATE" --count "$UCOUNT" --topic-mode unicast \
    --users "$UNI_N" --duration $((RUN_S + 20)) >"$TMP/pub.u.out" 2>"$TMP/pub.u.err" &
pub_pids+=($!)
sampler &
sampler_pid=$!
log "warm-up ${WARMUP_S} s: $BCAST_RATE events/s x $BCAST_N + $UNI_RATE events/s unicast, no abuse"
sleep "$WARMUP_S"

WARM_B=$(rss_kb "$broker_pid") WARM_E=$(rss_kb "$edge_pid")
T_ABUSE=$(date +%s.%N)
ABUSE_TICKS_B=$(cpu_ticks "$broker_pid") ABUSE_TICKS_E=$(cpu_ticks "$edge_pid")
log "abuse ${SOAK_SECONDS} s, ${SLICE_S} s slices"
abuse_args=(--link "$LINK_PORT" --resp "$RESP_PORT" --http "$HTTP_PORT" --edge "$EDGE_PORT"
    --duration "$SOAK_SECONDS" --slice "$SLICE_S" --state "$TMP/attacks.now"
    --log "$TMP/abuse.jsonl" --summary "$TMP/abuse.md" --slices "$TMP/slices.md")
[ -n "$BROKER_ATTACKS" ] && abuse_args+=(--broker-attacks "$BROKER_ATTACKS")
[ -n "$EDGE_ATTACKS" ] && abuse_args+=(--edge-attacks "$EDGE_ATTACKS")
# shellcheck disable=SC2206
abuse_args+=($SOAK_ABUSE_ARGS)
timeout -k 5 $((SOAK_SECONDS + 20)) python3 bench/soak_abuse.py "${abuse_args[@]}" \
    >"$TMP/abuse.out" 2>"$TMP/abuse.err" &
abuse_pid=$!
ABUSE_RC=0
wait "$abuse_pid" || ABUSE_RC=$?
abuse_pid=""
echo "-" >"$TMP/attacks.now"
T_ABUSE_END=$(date +%s.%N)
ABUSE_END_TICKS_B=$(cpu_ticks "$broker_pid") ABUSE_END_TICKS_E=$(cpu_ticks "$edge_pid")
[ "$ABUSE_RC" -eq 0 ] || log "the attacker exited with status $ABUSE_RC"

# cool-down: the publishers end on their own at RUN_S (or earlier, if the broker went away)
left=$(awk -v t0="$T0" -v r="$RUN_S" -v t="$(date +%s.%N)" 'BEGIN { d = t0 + r - t; print (d > 0 ? int(d + 1) : 0) }')
log "cool-down (publishers end in ${left} s)"
for _ in $(seq $((left * 10 + 100))); do
    running=0
    for p in "${pub_pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
    [ "$running" -eq 0 ] && break
    sleep 0.1
done
PUB_RC=()
for p in "${pub_pids[@]}"; do
    kill "$p" 2>/dev/null || true
    rc=0
    wait "$p" || rc=$?
    PUB_RC+=("$rc")
done
pub_pids=()
drain "$EXPECTED"
T_END=$(date +%s.%N)
END_TICKS_B=$(cpu_ticks "$broker_pid") END_TICKS_E=$(cpu_ticks "$edge_pid")
one_sample || true # the "end" sample
END_B=$(rss_kb "$broker_pid") END_E=$(rss_kb "$edge_pid")
touch "$TMP/stop.sampler"
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""
end_window # window 1: the run
read -r P50 P99 P999 PMAX < <(merged_percentiles "0.5 0.99 0.999") # before SIGTERM rewrites hist.*
for p in "${lg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${lg_pids[@]}"; do wait "$p" 2>/dev/null || true; done
lg_pids=()

# stop the servers; a process that died earlier reports its status here
stop_server() { # pid -> STATUS (not in $(...): wait needs the parent shell)
    local pid=$1 rc=0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        wait "$pid" || rc=$?
        STATUS="alive at the end; exit status $rc after SIGTERM"
    else
        wait "$pid" || rc=$?
        if [ "$rc" -gt 128 ]; then
            STATUS="DIED during the run: killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo ?))"
        else
            STATUS="DIED during the run: exit status $rc"
        fi
    fi
}
stop_server "$edge_pid"
EDGE_STATUS=$STATUS
stop_server "$broker_pid"
BROKER_STATUS=$STATUS
pids=()
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------- report

mb() { [[ "${1:-}" =~ ^[0-9]+$ ]] && awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }' || echo "-"; }
fmt() { [[ "${1:-}" =~ ^[0-9]+$ ]] && printf "%'d" "$1" || echo "${1:--}"; }
pct() { # ticks0 ticks1 t0 t1 -> % of one core
    [[ "${1:-}" =~ ^[0-9]+$ ]] && [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "-"; return; }
    awk -v a="$1" -v b="$2" -v t0="$3" -v t1="$4" -v hz="$CLK_TCK" \
        'BEGIN { printf "%.0f", 100 * (b - a) / hz / (t1 - t0) }'
}
# the last ticks a process had (a dead one: from its last sample)
last_ticks() { awk -F'\t' -v c="$1" '$c ~ /^[0-9]+$/ { v = $c } END { print v }' "$TMP/samples.tsv"; }
[[ "${END_TICKS_B:-}" =~ ^[0-9]+$ ]] || END_TICKS_B=$(last_ticks 5)
[[ "${END_TICKS_E:-}" =~ ^[0-9]+$ ]] || END_TICKS_E=$(last_ticks 8)
[[ "${ABUSE_END_TICKS_B:-}" =~ ^[0-9]+$ ]] || ABUSE_END_TICKS_B=$END_TICKS_B
[[ "${ABUSE_END_TICKS_E:-}" =~ ^[0-9]+$ ]] || ABUSE_END_TICKS_E=$END_TICKS_E

# timeline rows; also max RSS and when, and the first sample each process was dead
TIMELINE=$(awk -F'\t' -v t0="$T_ABUSE" -v hz="$CLK_TCK" '
    function mbs(k) { return (k ~ /^[0-9]+$/) ? sprintf("%.0f", k / 1024) : "-" }
    function cpu(a, b, dt) { return (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && dt > 0) ? sprintf("%.0f", 100 * (b - a) / hz / dt) : "-" }
    {
        t = $1 - t0
        brss = $3 ? mbs($4) : "**DEAD**"; erss = $6 ? mbs($7) : "**DEAD**"
        bc = (NR > 1 && $3) ? cpu(pb, $5, $1 - pt) : "-"
        ec = (NR > 1 && $6) ? cpu(pe, $8, $1 - pt) : "-"
        rate = (NR > 1 && $21 ~ /^[0-9]+$/) ? sprintf("%.0f", ($21 - pr) / ($1 - pt)) : "-"
        busy = (NR > 1 && $23 > pm) ? sprintf("%.0f", 100 * ($22 - pbusy) / ($23 - pm)) : "-"
        printf "| %+.0f | %s | %s | %s | %s | %s | %s / %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |\n",
            t, $2, brss, bc, erss, ec, $9, $10, $11, $13, $14, $15, $16, $17, $18, $19, rate, busy
        pb = $5; pe = $8; pt = $1; pr = $21; pbusy = $22; pm = $23
    }' "$TMP/samples.tsv")
read -r MAX_B MAX_B_T < <(awk -F'\t' -v t0="$T_ABUSE" '$4 ~ /^[0-9]+$/ && $4 > m { m = $4; t = $1 - t0 } END { printf "%d %+.0f\n", m, t }' "$TMP/samples.tsv")
read -r MAX_E MAX_E_T < <(awk -F'\t' -v t0="$T_ABUSE" '$7 ~ /^[0-9]+$/ && $7 > m { m = $7; t = $1 - t0 } END { printf "%d %+.0f\n", m, t }' "$TMP/samples.tsv")
DEAD_B_T=$(awk -F'\t' -v t0="$T_ABUSE" '$3 == 0 { printf "%+.0f", $1 - t0; exit }' "$TMP/samples.tsv")
DEAD_E_T=$(awk -F'\t' -v t0="$T_ABUSE" '$3 != "" && $6 == 0 { printf "%+.0f", $1 - t0; exit }' "$TMP/samples.tsv")
# the attacks running at the sample before a death (t = $1) and at the first one that saw it
attacks_at() {
    awk -F'\t' -v t0="$T_ABUSE" -v d="$1" '
        { t = sprintf("%+.0f", $1 - t0) }
        t == d { printf "%s (t=%s) then %s (t=%s)", (NR > 1 ? prev : "-"), (NR > 1 ? pt : "-"), $2, t; exit }
        { prev = $2; pt = t }' "$TMP/samples.tsv"
}

# memory flat: end <= warm + max(FLAT_PCT %, FLAT_MB)
flat() { # warm_kb end_kb alive -> "PASS ..." / "FAIL ..."
    local warm=$1 end=$2 allow
    if ! [[ "$end" =~ ^[0-9]+$ ]]; then echo "FAIL (the process is gone)"; return; fi
    allow=$(awk -v w="$warm" -v p="$FLAT_PCT" -v m="$FLAT_MB" 'BEGIN { a = w * p / 100; b = m * 1024; printf "%d", (a > b ? a : b) }')
    if [ "$end" -le $((warm + allow)) ]; then
        echo "PASS (end $(mb "$end") MB <= after warm-up $(mb "$warm") MB + $(mb "$allow") MB)"
    else
        echo "FAIL (end $(mb "$end") MB > after warm-up $(mb "$warm") MB + $(mb "$allow") MB allowed; +$(mb $((end - warm))) MB)"
    fi
}
FLAT_B=$(flat "$WARM_B" "${END_B:-}")
FLAT_E=$(flat "$WARM_E" "${END_E:-}")

# delivery (window 1)
W=1
sumf() { window_sum "$W" "$1"; }
R_CONNECTED=$(sumf connected) R_FAILED=$(sumf failed) R_CLOSED=$(sumf closed)
R_RECEIVED=$(sumf received) R_EXPECTED=$(sumf expected) R_SHORT=$(sumf short) R_EXTRA=$(sumf extra)
R_MISROUTED=$(sumf misrouted) R_BAD=$(sumf bad)
group_row() { # file-index label
    local line
    line=$(grep -h "^window=$W " "$TMP/lg.$1.out" 2>/dev/null | tail -n 1)
    if [ -z "$line" ]; then echo "| $2 | (no summary: the load generator did not report) |||||||||||"; return; fi
    echo "| $2 | $(field connected <<<"$line") | $(field failed <<<"$line") | $(fmt "$(field received <<<"$line")") | $(fmt "$(field expected <<<"$line")") | $(field short <<<"$line") | $(field extra <<<"$line") | $(field closed <<<"$line") | $(field misrouted <<<"$line") | $(fmt "$(field lat_p50_us <<<"$line")") | $(fmt "$(field lat_p99_us <<<"$line")") | $(fmt "$(field lat_p999_us <<<"$line")") | $(fmt "$(field lat_max_us <<<"$line")") |"
}
pub_line() { # out-file rc count label
    local l
    l=$(cat "$1" 2>/dev/null)
    echo "$4: $(fmt "$(field published <<<"$l")") of $(fmt "$3") published, $(fmt "$(field replies <<<"$l")") replies, $(fmt "$(field errors <<<"$l")") error replies, exit status $2$(grep -h 'loadgen:' "${1%.out}.err" 2>/dev/null | head -n 1 | sed 's/^/; /')"
}
PUBLISHED_ALL=1
[ "$(field published <"$TMP/pub.b.out" 2>/dev/null)" = "$BCOUNT" ] || PUBLISHED_ALL=0
[ "$(field published <"$TMP/pub.u.out" 2>/dev/null)" = "$UCOUNT" ] || PUBLISHED_ALL=0

LOST=PASS
num() { [[ "${1:-}" =~ ^[0-9]+$ ]] && echo "$1" || echo -1; }
if [ "$(num "$R_CONNECTED")" -ne $((BCAST_N + UNI_N)) ] || [ "$(num "$R_FAILED")" -ne 0 ] ||
    [ "$(num "$R_SHORT")" -ne 0 ] || [ "$(num "$R_EXTRA")" -ne 0 ] || [ "$(num "$R_CLOSED")" -ne 0 ] ||
    [ "$(num "$R_MISROUTED")" -ne 0 ] || [ "$(num "$R_RECEIVED")" -ne "$EXPECTED" ] || [ "$PUBLISHED_ALL" -ne 1 ]; then
    LOST=FAIL
fi
ALIVE=PASS
[ "$BROKER_STATUS" = "alive at the end; exit status 0 after SIGTERM" ] || ALIVE=FAIL
[ "$EDGE_STATUS" = "alive at the end; exit status 0 after SIGTERM" ] || ALIVE=FAIL

final_counters() { # file prefix...: the metric lines of those families (non-zero ones, and gauges)
    local f=$1
    shift
    [ -s "$f" ] || { echo "    (no /metrics answer was recorded)"; return; }
    for p in "$@"; do grep -E "^$p" "$f" || true; done | awk '$2 != "0" || /_bytes|connections |links_up/' | sed 's/^/    /'
}

OUT=$TMP/report.md
{
    echo "# Herald soak: ${SOAK_SECONDS} s of mixed abuse, $DATE"
    echo
    if [ "$ALIVE" = FAIL ]; then
        echo "**A PROCESS DID NOT SURVIVE: broker: $BROKER_STATUS; edge: $EDGE_STATUS.**"
        echo
    fi
    echo "Command: \`bench/soak.sh $SOAK_SECONDS\` (SLICE_S=$SLICE_S WARMUP_S=$WARMUP_S COOLDOWN_S=$COOLDOWN_S"
    echo "SAMPLE_S=$SAMPLE_S BCAST_N=$BCAST_N UNI_N=$UNI_N BCAST_RATE=$BCAST_RATE UNI_RATE=$UNI_RATE EDGE_WORKERS=$EDGE_WORKERS"
    echo "RSS_CAP_MB=$RSS_CAP_MB${BROKER_ATTACKS:+ BROKER_ATTACKS=$BROKER_ATTACKS}${EDGE_ATTACKS:+ EDGE_ATTACKS=$EDGE_ATTACKS}${SOAK_ABUSE_ARGS:+ SOAK_ABUSE_ARGS=\"$SOAK_ABUSE_ARGS\"})."
    echo "Binaries: $BUILD/ ($("$BUILD/herald-broker" --version 2>&1 | head -n 1)); this tree: $(git describe --always --dirty 2>/dev/null)."
    [ -z "$SOAK_NOTE" ] || echo "Note: $SOAK_NOTE"
    echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(uname -r); nothing pinned; load average before / after: $LOAD_START / $LOAD_END."
    echo
    echo "herald-broker and herald-edge (--workers $EDGE_WORKERS) on 127.0.0.1, conf defaults, log-level warn, no requirepass"
    echo "(herald-loadgen's publisher has no AUTH). Issue-10 directives applied: ${APPLIED:-none}; not supported by"
    echo "this binary, so skipped: ${SKIPPED:-none}${EDGE_NEW[*]:+; edge: ${EDGE_NEW[*]}}."
    echo "Well-behaved: $BCAST_N WebSockets on soak.all and $UNI_N on user.<i> (herald-loadgen sub, format=raw, kernel receive"
    echo "stamps); publishers: RESP PUBLISH, $BCAST_RATE events/s to soak.all and $UNI_RATE events/s to random users, for"
    echo "${WARMUP_S} s warm-up + ${SOAK_SECONDS} s abuse + ${COOLDOWN_S} s cool-down ($(fmt "$EXPECTED") deliveries expected)."
    echo "Abuse: bench/soak_abuse.py, a broker lane and an edge lane side by side, one attack per ${SLICE_S} s slice each, in rotation."
    echo
    echo "## Verdict"
    echo
    echo "- processes alive: **$ALIVE** (broker: $BROKER_STATUS; edge: $EDGE_STATUS)"
    echo "- nothing lost: **$LOST** (connected $R_CONNECTED of $((BCAST_N + UNI_N)), failed $R_FAILED, received $(fmt "$R_RECEIVED") of $(fmt "$EXPECTED") expected, short $R_SHORT, extra $R_EXTRA, closed $R_CLOSED, misrouted $R_MISROUTED; publishers published all: $([ "$PUBLISHED_ALL" -eq 1 ] && echo yes || echo NO))"
    echo "- memory flat, broker: **${FLAT_B%% *}** ${FLAT_B#* }"
    echo "- memory flat, edge: **${FLAT_E%% *}** ${FLAT_E#* }"
    echo "- delivery latency (all $((BCAST_N + UNI_N)), publisher stamp to kernel receive stamp): p50 $(fmt "$P50") µs, p99 $(fmt "$P99") µs, p999 $(fmt "$P999") µs, max $(fmt "$PMAX") µs"
    echo
    echo "Memory flat: end RSS (after the cool-down, abuse over) within max(+$FLAT_PCT %, +$FLAT_MB MB) of the RSS after the warm-up."
    echo
    echo "## Memory and CPU"
    echo
    echo "| process | RSS empty | with subscribers | after warm-up | max (at t s) | end | end − warm-up | CPU, whole run | CPU during abuse | status |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    echo "| broker | $(mb "$RSS0_B") MB | $(mb "$RSS_SUBS_B") MB | $(mb "$WARM_B") MB | $(mb "$MAX_B") MB ($MAX_B_T) | $(mb "${END_B:-}") MB | $([[ "${END_B:-}" =~ ^[0-9]+$ ]] && mb $((END_B - WARM_B)) || echo -) MB | $(pct "$T0_TICKS_B" "$END_TICKS_B" "$T0" "$T_END")% | $(pct "$ABUSE_TICKS_B" "$ABUSE_END_TICKS_B" "$T_ABUSE" "$T_ABUSE_END")% | $BROKER_STATUS${DEAD_B_T:+ (first seen dead at t=$DEAD_B_T s; attacks: $(attacks_at "${DEAD_B_T}"))} |"
    echo "| edge | $(mb "$RSS0_E") MB | $(mb "$RSS_SUBS_E") MB | $(mb "$WARM_E") MB | $(mb "$MAX_E") MB ($MAX_E_T) | $(mb "${END_E:-}") MB | $([[ "${END_E:-}" =~ ^[0-9]+$ ]] && mb $((END_E - WARM_E)) || echo -) MB | $(pct "$T0_TICKS_E" "$END_TICKS_E" "$T0" "$T_END")% | $(pct "$ABUSE_TICKS_E" "$ABUSE_END_TICKS_E" "$T_ABUSE" "$T_ABUSE_END")% | $EDGE_STATUS${DEAD_E_T:+ (first seen dead at t=$DEAD_E_T s; attacks: $(attacks_at "${DEAD_E_T}"))} |"
    echo
    echo "CPU: % of one core (utime + stime). Whole run: warm-up to the end of the drain; abuse: the ${SOAK_SECONDS} s of attacks."
    [ -s "$TMP/killed" ] && { echo; echo "**Killed by the soak (RSS cap):** $(tr '\n' ' ' <"$TMP/killed")"; }
    echo
    echo "## Well-behaved delivery"
    echo
    echo "| subscribers | connected | failed | received | expected | short | extra | closed | misrouted | p50 µs | p99 µs | p999 µs | max µs |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    group_row 0 "$BCAST_N on soak.all"
    group_row 1 "$UNI_N on user.<i>"
    echo "| all | $R_CONNECTED | $R_FAILED | $(fmt "$R_RECEIVED") | $(fmt "$R_EXPECTED") | $R_SHORT | $R_EXTRA | $R_CLOSED | $R_MISROUTED | $(fmt "$P50") | $(fmt "$P99") | $(fmt "$P999") | $(fmt "$PMAX") |"
    echo
    echo "short / extra: connections that got fewer / more events than were published to them; closed: connections"
    echo "the edge (or the network) ended during the run. Payloads that did not parse: $R_BAD."
    echo "$(pub_line "$TMP/pub.b.out" "${PUB_RC[0]:-?}" "$BCOUNT" "Publisher soak.all")."
    echo "$(pub_line "$TMP/pub.u.out" "${PUB_RC[1]:-?}" "$UCOUNT" "Publisher user.<k>")."
    echo
    echo "## Samples"
    echo
    echo "t: seconds from the start of the abuse (negative: warm-up). RSS in MB; CPU: % of one core since the previous"
    echo "sample. Broker: open link / RESP connections, topics it keeps a sequence for, slow consumers cut off (total),"
    echo "drops (total, all reasons). Edge: open WebSockets, slow consumers (total), closes with 1008 (total), broker"
    echo "links up / reconnects (total). delivered/s: the well-behaved subscribers' receive rate. machine busy: all"
    echo "$(nproc) cores, % of their time (/proc/stat; includes the load generators, the attacker and other work). \"-\": no answer."
    echo
    echo "| t s | attacks running | broker RSS | broker CPU % | edge RSS | edge CPU % | broker link / RESP conns | broker topics | broker slow cons. | broker drops | edge conns | edge slow cons. | edge 1008 | edge links up / reconnects | delivered/s | machine busy % |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    echo "$TIMELINE"
    echo
    echo "## Attacks"
    echo
    echo "What each lane sent and how it ended (bench/soak_abuse.py documents each attack; per slice: the last section)."
    echo
    if [ -s "$TMP/abuse.md" ]; then cat "$TMP/abuse.md"; else echo "(the attacker wrote no summary; exit status $ABUSE_RC)"; fi
    { grep -h 'EXC\|abandoned\|Traceback' "$TMP/abuse.err" 2>/dev/null || true; } | head -n 5 | sed 's/^/    /'
    echo
    echo "## Final counters"
    echo
    echo "Broker (last /metrics answer):"
    echo
    final_counters "$TMP/metrics.broker.last" herald_connections herald_drops_total herald_slow_consumers_total \
        herald_topics herald_patterns herald_subscriptions herald_trie_bytes herald_accept_errors_total \
        herald_events_published_total herald_rss_bytes
    echo
    echo "Edge (last /metrics answer):"
    echo
    final_counters "$TMP/metrics.edge.last" herald_edge_connections herald_edge_closes_total \
        herald_edge_slow_consumers_total herald_edge_handshake_failures_total herald_edge_broker \
        herald_edge_patterns herald_edge_trie_bytes herald_edge_accept_errors_total herald_edge_rss_bytes
    for f in broker edge; do
        if [ -s "$TMP/$f.err" ]; then
            echo
            echo "herald-$f: $(wc -l <"$TMP/$f.err") log lines at warn and above; by event:"
            echo
            sed -n 's/.* event=\([^ ]*\).*/\1/p' "$TMP/$f.err" | sort | uniq -c | sort -rn | head -n 12 | sed 's/^/    /'
            echo
            echo "first 3 and last 3:"
            echo
            { head -n 3 "$TMP/$f.err"; echo "..."; tail -n 3 "$TMP/$f.err"; } | cut -c1-300 | sed 's/^/    /'
            if grep -q 'AddressSanitizer\|runtime error:' "$TMP/$f.err"; then
                echo
                echo "**Sanitizer report in herald-$f's log:**"
                echo
                grep -m 1 -A 12 'ERROR: AddressSanitizer\|runtime error:' "$TMP/$f.err" | cut -c1-200 | sed 's/^/    /'
            fi
        fi
    done
    echo
    echo "## Slices"
    echo
    echo "Each slice of each lane (s from the start of the abuse) and its counts."
    echo
    if [ -s "$TMP/slices.md" ]; then cat "$TMP/slices.md"; else echo "(none recorded)"; fi
} >"$OUT"
cat "$OUT"
mkdir -p bench/results
cp "$OUT" "bench/results/soak-$DATE.md"
log "written bench/results/soak-$DATE.md (total $(($(date +%s) - T_START)) s)"
[ "$ALIVE" = PASS ] && [ "$LOST" = PASS ] && [ "${FLAT_B%% *}" = PASS ] && [ "${FLAT_E%% *}" = PASS ]
