#!/usr/bin/env bash
# Starts one benchmark peer in the background, pinned to CPU 0, waits until it
# accepts TCP connections on 127.0.0.1 and prints its PID on stdout (the only
# thing printed there). Its output goes to PREFIXDIR/<peer>.log.
#
#   bench/peers/start.sh nchan     HTTP_PORT           PREFIXDIR
#   bench/peers/start.sh nchan-tls HTTP_PORT HTTPS_PORT CERT KEY PREFIXDIR
#   bench/peers/start.sh mosquitto MQTT_PORT WS_PORT   PREFIXDIR
#   bench/peers/start.sh redis     PORT                PREFIXDIR
#
# nchan-tls: the same nginx + nchan, also listening with TLS on HTTPS_PORT
# (wss:// subscribers; publishers stay on HTTP_PORT) with the PEM files CERT
# and KEY (absolute paths).
# PREFIXDIR must be absolute (e.g. /tmp/herald-peers); it is created and holds
# the filled-in config, logs and nginx's temp dirs. Stop with
# bench/peers/stop.sh PID (or kill PID: every peer exits on SIGTERM).
# For nchan (and nchan-tls) the PID is nginx's master; its one worker is `pgrep -P PID`.
# NOFILE (default 65536, capped at the hard limit) is the fd limit set before
# the peer starts; nginx-nchan.conf caps its worker at 20000 anyway.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

usage() { sed -n '6,9p' "$0" | sed 's/^# *//' >&2; exit 2; }
[ $# -ge 3 ] || usage
peer=$1
shift
prefix=${*: -1}
case "$prefix" in /*) ;; *) echo "start.sh: PREFIXDIR must be absolute" >&2; exit 2 ;; esac
mkdir -p "$prefix"
# Raising the hard limit needs CAP_SYS_RESOURCE (not in every sandbox): fall
# back to the hard limit, which is 20000 here.
ulimit -n "${NOFILE:-65536}" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)
log=$prefix/$peer.log

# Every port must be free: otherwise the readiness check below would connect
# to whatever already listens there.
ports=("$@")
unset 'ports[${#ports[@]}-1]'
if [ "$peer" = nchan-tls ]; then
    [ $# -eq 5 ] || usage
    ports=("$1" "$2")
fi
for p in "${ports[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        echo "start.sh: 127.0.0.1:$p is already in use" >&2
        exit 1
    fi
done

case "$peer" in
    nchan | nchan-tls)
        port=$1
        mkdir -p "$prefix/logs" "$prefix/tmp"
        sed -e "s/@PORT@/$port/g" -e "s#@PREFIX@#$prefix#g" "$here/nginx-nchan.conf" >"$prefix/nginx.conf"
        if [ "$peer" = nchan ]; then
            [ $# -eq 2 ] || usage
            : >"$prefix/tls.conf"
        else
            for f in "$3" "$4"; do
                case "$f" in /*) ;; *) echo "start.sh: CERT and KEY must be absolute" >&2; exit 2 ;; esac
            done
            # TLSv1.3 too: nginx 1.22's default is TLSv1 TLSv1.1 TLSv1.2 (1.23.4 added 1.3)
            printf 'listen 127.0.0.1:%s ssl backlog=4096;\nssl_certificate %s;\nssl_certificate_key %s;\nssl_protocols TLSv1.2 TLSv1.3;\n' \
                "$2" "$3" "$4" >"$prefix/tls.conf"
        fi
        taskset -c 0 nginx -c "$prefix/nginx.conf" -p "$prefix/" >"$log" 2>&1 &
        ;;
    mosquitto)
        [ $# -eq 3 ] || usage
        port=$1
        sed -e "s/@MQTT_PORT@/$1/g" -e "s/@WS_PORT@/$2/g" "$here/mosquitto.conf" >"$prefix/mosquitto.conf"
        chmod 644 "$prefix/mosquitto.conf"
        taskset -c 0 mosquitto -c "$prefix/mosquitto.conf" >"$log" 2>&1 &
        ;;
    redis)
        [ $# -eq 2 ] || usage
        port=$1
        # protected mode admits 127.0.0.1 alone; load generators bind 127.0.0.2+
        taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --protected-mode no --save '' --appendonly no \
            --daemonize no --dir "$prefix" --maxclients $((nofile - 32)) --loglevel warning >"$log" 2>&1 &
        ;;
    *) usage ;;
esac
pid=$!

# Wait (up to 10 s) for every port of the peer to accept a connection.
for p in "${ports[@]}"; do
    for i in $(seq 100); do
        st=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || echo Z)
        if [ "$st" = Z ]; then
            echo "start.sh: $peer exited; its log:" >&2
            cat "$log" >&2
            exit 1
        fi
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
        [ "$i" -eq 100 ] && { echo "start.sh: $peer not listening on $p" >&2; kill "$pid"; exit 1; }
        sleep 0.1
    done
done
echo "$pid"
