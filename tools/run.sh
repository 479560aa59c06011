#!/usr/bin/env bash
# `make run`: start a broker and (once it is built) an edge with the conf/
# defaults, print how to publish and how to watch, stop both on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
pids=()
stop() {
    trap - INT TERM EXIT
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait
}
trap stop INT TERM EXIT

"$BUILD/herald-broker" conf/broker.conf &
pids+=($!)
sleep 0.3
if [ -x "$BUILD/herald-edge" ]; then
    "$BUILD/herald-edge" conf/edge.conf &
    pids+=($!)
    sleep 0.3
fi

cat <<MSG

Herald is running (Ctrl-C stops it).
  broker: link 127.0.0.1:7400, RESP 127.0.0.1:6380, HTTP 127.0.0.1:8400
MSG
if [ -x "$BUILD/herald-edge" ]; then
cat <<MSG
  edge:   ws://127.0.0.1:8080/ws

Watch events as a browser would (in another terminal):
  $BUILD/herald watch ws://127.0.0.1:8080/ws 'mail.user.42.>'

MSG
else
cat <<MSG

Watch events (in another terminal):
  $BUILD/herald subscribe 'mail.user.42.>'

MSG
fi
cat <<MSG
Publish one (any of these):
  redis-cli -p 6380 PUBLISH mail.user.42.inbox '{"from":"a@b"}'
  curl -d '{"from":"a@b"}' http://127.0.0.1:8400/v1/publish/mail.user.42.inbox
  $BUILD/herald publish mail.user.42.inbox '{"from":"a@b"}'

Metrics: curl http://127.0.0.1:8400/metrics

The edge runs without tokens (event=auth_off above): any page may subscribe to
anything. To require them (README "Authentication"), start it with a secret and
hand each browser a token:
  head -c 32 /dev/urandom | base64 > /tmp/herald.key
  $BUILD/herald-edge conf/edge.conf --auth-secret-file /tmp/herald.key
  $BUILD/herald token --secret-file /tmp/herald.key --sub 42 --topics 'mail.user.{sub}.>' --ttl 1h
MSG
wait
