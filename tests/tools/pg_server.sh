#!/bin/sh
# pg_server.sh - a throw-away PostgreSQL server on loopback for the tests
# (the store suites and the two-replica test run against it; ctest's "pg"
# fixture starts and stops it, see tests/CMakeLists.txt).
#   pg_server.sh start STATE_DIR [PORT]
#       initdb a cluster in a new folder under /tmp (trust auth, loopback
#       only, fsync off), start it on PORT (default: a free one), create the
#       database alignd_test and write its URL to STATE_DIR/url (and stdout)
#   pg_server.sh stop STATE_DIR
#       stop it and remove its folder and STATE_DIR/url
# The server runs as user postgres when started as root (PostgreSQL refuses
# root); its folder is under /tmp so that user can reach it wherever the
# checkout is. Exits 77 (ctest: Skipped) when the server binaries are not
# installed (Debian's postgresql package; deploy/install-deps.sh --test).
set -eu
cmd=${1:?usage: pg_server.sh start STATE_DIR [PORT] | stop STATE_DIR}
state=${2:?STATE_DIR}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "*** SKIPPED: PostgreSQL server binaries not found (apt-get install postgresql) ***" >&2
    exit 77
fi
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
stop_server() {
    [ -f "$state/datadir" ] || return 0
    dir=$(cat "$state/datadir")
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir" "$state/datadir" "$state/url"
}
case "$cmd" in
start)
    mkdir -p "$state"
    stop_server # a server left by an interrupted run
    port=${3:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    dir=$(mktemp -d /tmp/alignd-pg.XXXXXX)
    echo "$dir" >"$state/datadir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres alignd_test
    url="postgresql://postgres@127.0.0.1:$port/alignd_test"
    echo "$url" >"$state/url"
    echo "$url"
    ;;
stop)
    stop_server
    ;;
*)
    echo "pg_server.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
