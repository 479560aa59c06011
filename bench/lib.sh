# shellcheck shell=bash
# Shell helpers shared by bench/edge.sh, bench/peers.sh and bench/scale.sh.
# Sourced, not run: `source "$(dirname "$0")/lib.sh"`. Defines functions only.
#
#   field NAME < lines        the values of NAME=value words, one a line
#   sum < numbers             their sum, `print s + 0` (scale.sh keeps its own
#                             printf "%.0f" sum, defined after this file)
#   median < numbers          the middle value (lower middle of an even count);
#                             an empty line when there are none
#   window_lines W            the load generators' summary lines of window W,
#                             from "$TMP"/lg.*.out (caller sets TMP)
#   window_sum W NAME         the sum of NAME over window W's summary lines
#   window_received_now       deliveries so far in the open window: the last
#                             window_received= progress value of each
#                             "$TMP"/lg.*.err, summed
#   drain EXPECTED            waits until window_received_now reaches EXPECTED
#                             (then 0.6 s more), nothing arrives for 2 s, or
#                             DRAIN_MAX_S seconds pass (caller sets DRAIN_MAX_S)
#   merged_percentiles QS     merges the log-linear histograms "$TMP"/hist.*
#                             ("value count" lines, # comments) and prints the
#                             value at each quantile of QS (e.g. "0.5 0.99")
#                             then the max, in µs; a "-" for each when the
#                             histograms are empty

field() { sed -n "s/\(^\|.* \)$1=\([^ ]*\).*/\2/p"; }
sum() { awk '{ s += $1 } END { print s + 0 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR ? a[int((NR + 1) / 2)] : "") }'; }
median_of() { printf '%s\n' $1 | awk NF | median; } # of a space-separated list

window_lines() { grep -h "^window=$1 " "$TMP"/lg.*.out || true; }
window_sum() { window_lines "$1" | field "$2" | sum; }

window_received_now() {
    local s=0 f v
    for f in "$TMP"/lg.*.err; do
        v=$(grep 'window_received=' "$f" | tail -n 1 | field window_received || true)
        s=$((s + ${v:-0}))
    done
    echo "$s"
}

drain() {
    local expected=$1 last=-1 still=0 now
    for _ in $(seq $((DRAIN_MAX_S * 4))); do
        now=$(window_received_now)
        if [ "$now" -ge "$expected" ]; then
            sleep 0.6 # one more progress period: late duplicates would show as extra
            return
        fi
        if [ "$now" -eq "$last" ]; then still=$((still + 1)); else still=0; fi
        if [ "$still" -ge 8 ]; then return; fi
        last=$now
        sleep 0.25
    done
}

merged_percentiles() {
    cat "$TMP"/hist.* 2>/dev/null | { grep -v '^#' || true; } |
        awk '{ c[$1] += $2 } END { for (v in c) print v, c[v] }' | sort -n |
        awk -v qs="$1" '{ v[NR] = $1; c[NR] = $2; n += $2 }
        END {
            nq = split(qs, q, " ")
            if (n == 0) { for (k = 0; k < nq; k++) out = out "- "; print out "-"; exit }
            for (k = 1; k <= nq; k++) {
                want = q[k] * n; s = 0
                for (i = 1; i <= NR; i++) { s += c[i]; if (s >= want) { out = out v[i] " "; break } }
            }
            print out v[NR]
        }'
}
