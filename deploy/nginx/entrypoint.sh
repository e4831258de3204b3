#!/bin/sh
# Render the proxy's configuration from the environment into /tmp/nginx, check it, and run nginx in the foreground.
#
#   CDS_MAX_BODY_BYTES        largest request body, in bytes: the same value the service replicas get, so that the
#                             proxy refuses (413) exactly what the service would
#   PROXY_UPSTREAMS           the replicas, "host:port host:port ..." (default "cds-a:8080 cds-b:8080")
#   PROXY_CLIENT_TIMEOUT      seconds a client gets to send its whole header, and between two reads of its body or
#                             two writes of the response (default 10)
#   PROXY_KEEPALIVE_TIMEOUT   seconds an idle client connection is kept (default 30)
#   PROXY_READ_TIMEOUT        seconds to wait for a replica's answer: above GUNICORN_TIMEOUT (30) (default 35)
#   PROXY_WORKER_CONNECTIONS  connections per nginx worker process (default 4096)
#
# HTTPS is served on 8443 when /etc/nginx/tls/tls.crt and /etc/nginx/tls/tls.key are mounted.
set -eu

say() { printf 'calcinosis-proxy: %s\n' "$*" >&2; }
die() { say "refusing to start: $*"; exit 2; }

whole() {  # NAME VALUE: a positive whole number
    case $2 in '' | *[!0-9]* | 0) die "$1 must be a positive whole number, not '$2'" ;; esac
}

MAX_BODY=${CDS_MAX_BODY_BYTES:-16777216}
UPSTREAMS=${PROXY_UPSTREAMS:-cds-a:8080 cds-b:8080}
CLIENT_TIMEOUT=${PROXY_CLIENT_TIMEOUT:-10}
KEEPALIVE_TIMEOUT=${PROXY_KEEPALIVE_TIMEOUT:-30}
READ_TIMEOUT=${PROXY_READ_TIMEOUT:-35}
WORKER_CONNECTIONS=${PROXY_WORKER_CONNECTIONS:-4096}
for pair in "CDS_MAX_BODY_BYTES $MAX_BODY" "PROXY_CLIENT_TIMEOUT $CLIENT_TIMEOUT" \
    "PROXY_KEEPALIVE_TIMEOUT $KEEPALIVE_TIMEOUT" "PROXY_READ_TIMEOUT $READ_TIMEOUT" \
    "PROXY_WORKER_CONNECTIONS $WORKER_CONNECTIONS"; do
    # shellcheck disable=SC2086
    whole $pair
done

SOURCE=/etc/nginx/calcinosis
CONF=/tmp/nginx
mkdir -p "$CONF" "$CONF/client_body" "$CONF/proxy" "$CONF/fastcgi" "$CONF/uwsgi" "$CONF/scgi"

: >"$CONF/upstreams.conf"
for upstream in $UPSTREAMS; do
    case $upstream in
        *[!A-Za-z0-9.:_-]* | :* | *: | *:*:*) die "PROXY_UPSTREAMS lists host:port pairs, not '$upstream'" ;;
        *:*) whole "the port of $upstream" "${upstream##*:}" ;;
        *) die "PROXY_UPSTREAMS lists host:port pairs, not '$upstream'" ;;
    esac
    # One failure takes a replica out for 10 s; the other replicas answer meanwhile.
    printf '    server %s max_fails=1 fail_timeout=10s;\n' "$upstream" >>"$CONF/upstreams.conf"
done
[ -s "$CONF/upstreams.conf" ] || die "PROXY_UPSTREAMS names no replica"

render() {
    sed -e "s|@CDS_MAX_BODY_BYTES@|$MAX_BODY|g" \
        -e "s|@PROXY_CLIENT_TIMEOUT@|$CLIENT_TIMEOUT|g" \
        -e "s|@PROXY_KEEPALIVE_TIMEOUT@|$KEEPALIVE_TIMEOUT|g" \
        -e "s|@PROXY_READ_TIMEOUT@|$READ_TIMEOUT|g" \
        -e "s|@PROXY_WORKER_CONNECTIONS@|$WORKER_CONNECTIONS|g" \
        -e "s|@CONF@|$CONF|g" -e "s|@SOURCE@|$SOURCE|g" "$1"
}
render "$SOURCE/nginx.conf.template" >"$CONF/nginx.conf"
if [ -f /etc/nginx/tls/tls.crt ] && [ -f /etc/nginx/tls/tls.key ]; then
    render "$SOURCE/tls.conf.template" >"$CONF/tls.conf"
    say "HTTPS on 8443 with /etc/nginx/tls/tls.crt"
else
    : >"$CONF/tls.conf"
    say "no certificate at /etc/nginx/tls/tls.crt and tls.key: HTTP on 8080 only (terminate TLS in front of it)"
fi

NGINX="nginx -e stderr -c $CONF/nginx.conf"
$NGINX -t -q || die "the rendered configuration ($CONF/nginx.conf) is invalid (nginx said why above)"

# nginx resolves the replicas' names once, at start. A replica that Compose restarts may come back with another
# address: look the names up every 10 s and reload nginx (gracefully) when an address changed.
addresses() {
    for upstream in $UPSTREAMS; do getent hosts "${upstream%:*}" | awk '{print $1}' | sort; done | tr '\n' ' '
}
watch_upstreams() {
    known=$(addresses)
    while sleep 10; do
        now=$(addresses)
        if [ -n "$now" ] && [ "$now" != "$known" ]; then
            say "replica addresses changed ($known-> $now): reloading"
            $NGINX -s reload || say "reload failed; still serving the old addresses"
            known=$now
        fi
    done
}
watch_upstreams &

say "proxying to $UPSTREAMS; bodies up to $MAX_BODY bytes; clients get ${CLIENT_TIMEOUT}s for a header"
exec $NGINX -g 'daemon off;'
