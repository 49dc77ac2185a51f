#!/bin/sh
# Entry point of gameday's locally built PostgreSQL image (Debian's PostgreSQL packages).
# It honours what the official image's entry point does for the usual variables:
#   POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER
#   (default postgres), POSTGRES_DB (default the user), POSTGRES_HOST_AUTH_METHOD
#   (default scram-sha-256), PGDATA; arguments starting with "-" go to postgres.
set -e
case "$1" in -*) set -- postgres "$@" ;; esac
if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        echo "error: POSTGRES_PASSWORD is not set (or set POSTGRES_HOST_AUTH_METHOD=trust)" >&2
        exit 1
    fi
    mkdir -p "$PGDATA"
    printf '%s\n' "${POSTGRES_PASSWORD:-trust}" | initdb -D "$PGDATA" --username="$POSTGRES_USER" \
        --pwfile=/dev/stdin --encoding=UTF8 --no-locale --auth-local=trust \
        --auth-host="$POSTGRES_HOST_AUTH_METHOD" > /dev/null
    printf 'host all all all %s\nhost replication all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" \
        "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
    if [ "$POSTGRES_DB" != postgres ]; then
        printf 'CREATE DATABASE "%s"\n' "$POSTGRES_DB" | postgres --single -D "$PGDATA" postgres > /dev/null
    fi
    echo "gameday postgres image: database $POSTGRES_DB initialised for $POSTGRES_USER"
fi
if [ "$1" = postgres ]; then
    shift
    exec postgres -D "$PGDATA" "$@"
fi
exec "$@"
