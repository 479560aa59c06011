#!/bin/sh
# lb-entrypoint: writes the nginx configuration with the container's own DNS
# resolver and runs nginx in the foreground. nginx re-resolves the edges'
# service name through that resolver (docker: 127.0.0.11; podman: the
# network's aardvark-dns, which is the first nameserver of resolv.conf), so
# edges added by --scale or restarted with a new address are found.
# Environment: LB_RESOLVER (default: the first nameserver of
# /etc/resolv.conf), LB_UPSTREAM (default edge:8080, the service and its port),
# LB_TIMEOUT (default 150s: longer than the edge's idle-timeout, 75s).
set -eu

resolver=${LB_RESOLVER:-$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf)}
[ -n "$resolver" ] || { echo "lb-entrypoint: no nameserver in /etc/resolv.conf; set LB_RESOLVER" >&2; exit 1; }
case "$resolver" in *:*) case "$resolver" in \[*) ;; *) resolver="[$resolver]" ;; esac ;; esac
upstream=${LB_UPSTREAM:-edge:8080}
timeout=${LB_TIMEOUT:-150s}

sed -e "s|@RESOLVER@|$resolver|g" -e "s|@UPSTREAM@|$upstream|g" -e "s|@TIMEOUT@|$timeout|g" \
    /etc/nginx/herald-lb.conf.in >/tmp/nginx.conf
echo "lb-entrypoint: resolver $resolver, upstream $upstream, timeout $timeout" >&2
exec nginx -c /tmp/nginx.conf -g 'daemon off;'
