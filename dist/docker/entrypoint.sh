#!/bin/sh
# herald-entrypoint: runs the image's command, adding one "--directive value"
# pair to herald-broker for each HERALD_BROKER_<DIRECTIVE> variable set in
# the environment, and to herald-edge for each HERALD_EDGE_<DIRECTIVE>
# (upper case, "_" for "-": HERALD_EDGE_LOG_LEVEL=debug is --log-level debug).
# Command-line pairs override the conf file (README "Configuration"), so a
# conf/ mounted read-only is still overridable by environment. An empty
# variable adds nothing, so compose files may pass ${VAR:-} through.
set -eu

case "${1:-}" in
herald-broker | */herald-broker) prefix=HERALD_BROKER_ ;;
herald-edge | */herald-edge) prefix=HERALD_EDGE_ ;;
*) exec "$@" ;;
esac

# Variable names are [A-Z0-9_] only (what env prints before the first "=");
# values are passed as single arguments, never through the shell.
for name in $(env | sed -n "s/^\(${prefix}[A-Z0-9_]*\)=.*/\1/p" | sort); do
    value=$(printenv "$name")
    [ -n "$value" ] || continue
    directive=$(printf '%s' "${name#"$prefix"}" | tr 'A-Z_' 'a-z-')
    set -- "$@" "--$directive" "$value"
done
exec "$@"
