#!/usr/bin/env bash
# Runs a command (the test suite) with a PostgreSQL server and a Redis server of its own, on loopback, with their
# data in a temporary folder, and stops both afterwards whatever the command's outcome. The tests find them by
# SLM_TEST_POSTGRES and SLM_TEST_REDIS; without those variables, the tests that need a server skip.
#   tests/services.sh .venv/bin/python -m pytest
# Debian's packages postgresql and redis-server are installed when missing (as root, which CI is).
set -euo pipefail
CALLER_DIR=$PWD

install_missing() {  # command, Debian package
    command -v "$1" > /dev/null && return
    if [[ $(id -u) -ne 0 ]]; then
        echo "services.sh: $1 is missing: apt-get install $2" >&2
        exit 1
    fi
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" > /dev/null
}
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)
if [[ -z $PG_BIN ]]; then
    install_missing initdb postgresql
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
install_missing redis-server redis-server

DATA=$(mktemp -d -t slm-services.XXXXXX)
cd "$DATA"  # the servers' user may not be allowed into the caller's folder
# PostgreSQL refuses to run as root: then it runs as an unprivileged user, owning its folder.
AS=()
if [[ $(id -u) -eq 0 ]]; then
    USER_NAME=$(id -u postgres > /dev/null 2>&1 && echo postgres || echo nobody)
    AS=(runuser -u "$USER_NAME" --)
    chown "$USER_NAME" "$DATA"
fi

stop() {
    [[ -f $DATA/pg/postmaster.pid ]] && "${AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA/pg" -m immediate -w stop > /dev/null 2>&1
    [[ -f $DATA/redis.pid ]] && kill "$(cat "$DATA/redis.pid")" 2> /dev/null
    rm -rf "$DATA"
}
trap stop EXIT
trap "exit 130" INT TERM

PG_PORT=$(free_port)
"${AS[@]}" "$PG_BIN/initdb" -D "$DATA/pg" -U slm --auth=trust -E UTF8 --locale=C.UTF-8 > "$DATA/initdb.log" 2>&1 \
    || { cat "$DATA/initdb.log" >&2; exit 1; }
# Tests start many connections at once (Dagster's storage, runs, warehouse writes); durability is not needed.
"${AS[@]}" "$PG_BIN/pg_ctl" -D "$DATA/pg" -l "$DATA/pg.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $DATA -c max_connections=200 -c fsync=off -c full_page_writes=off" \
    > /dev/null || { cat "$DATA/pg.log" >&2; exit 1; }

REDIS_PORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$DATA" \
    --pidfile "$DATA/redis.pid" --logfile "$DATA/redis.log" --daemonize yes
for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping > /dev/null 2>&1 && break
    sleep 0.1
done

export SLM_TEST_POSTGRES="postgresql://slm@127.0.0.1:$PG_PORT/postgres"
export SLM_TEST_REDIS="redis://127.0.0.1:$REDIS_PORT/0"
echo "services.sh: PostgreSQL on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT"
cd "$CALLER_DIR"
set +e
"$@"
status=$?
exit $status
