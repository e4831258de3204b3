#!/bin/bash
# Make the database on first start (an empty data volume), then run PostgreSQL in the foreground.
#
# First start: initdb with the password of POSTGRES_USER (from POSTGRES_PASSWORD, or the file POSTGRES_PASSWORD_FILE
# names), password logins (SCRAM-SHA-256) from any address of the container's networks, trust on the Unix socket
# inside the container only, then the database POSTGRES_DB owned by that user. Later starts use the data as it is:
# changing POSTGRES_PASSWORD then changes nothing (ALTER ROLE ... PASSWORD does).
set -euo pipefail

say() { printf 'calcinosis-postgres: %s\n' "$*" >&2; }
die() { say "refusing to start: $*"; exit 2; }

PGDATA=${PGDATA:-/var/lib/postgresql/data}
USER_NAME=${POSTGRES_USER:-cds}
DATABASE=${POSTGRES_DB:-$USER_NAME}
# Names go into SQL: plain lower-case identifiers only.
[[ $USER_NAME =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "POSTGRES_USER must be a plain lower-case name, not '$USER_NAME'"
[[ $DATABASE =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "POSTGRES_DB must be a plain lower-case name, not '$DATABASE'"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password=${POSTGRES_PASSWORD:-}
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        [ -r "$POSTGRES_PASSWORD_FILE" ] || die "POSTGRES_PASSWORD_FILE names no readable file: $POSTGRES_PASSWORD_FILE"
        password=$(<"$POSTGRES_PASSWORD_FILE")
    fi
    [ -n "$password" ] || die "a new database needs POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE)"
    [ "${#password}" -ge 16 ] || die "POSTGRES_PASSWORD must be at least 16 characters long"
    say "initialising a new database cluster in $PGDATA (user $USER_NAME, database $DATABASE)"
    pwfile=$(mktemp)
    printf '%s\n' "$password" >"$pwfile"
    initdb --pgdata="$PGDATA" --username="$USER_NAME" --pwfile="$pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    cat >>"$PGDATA/postgresql.conf" <<CONF

# calcinosis-postgres: the replicas reach it over the Compose network.
listen_addresses = '*'
unix_socket_directories = '/var/run/postgresql'
password_encryption = scram-sha-256
log_timezone = 'UTC'
timezone = 'UTC'
CONF
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$DATABASE" != postgres ]; then
        postgres --single -D "$PGDATA" -c listen_addresses='' postgres >/dev/null \
            <<<"CREATE DATABASE \"$DATABASE\" OWNER \"$USER_NAME\""
    fi
    say "database $DATABASE created"
fi

exec postgres -D "$PGDATA" "$@"
