#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster for the baselines: starts it, runs the
# command given with its connection string in the environment, then stops the
# cluster and removes its directory (also on failure or Ctrl-C). Used by
# benches/pg-baseline.sh and benches/pg-rating.sh:
#
#   bash benches/pg-cluster.sh NAME DSN_VARIABLE COMMAND...
#
# Settings: durability as shipped — fsync=on, synchronous_commit=on,
# full_page_writes=on (PostgreSQL's defaults, stated explicitly below) — and
# shared_buffers=256MB, plus any lines in $PG_EXTRA_CONF; everything else
# default (wal_level=replica, max_wal_size=1GB, checkpoint_timeout=5min). The
# server listens on a unix socket in the temporary directory only
# (listen_addresses=''), on a port that is free on this machine. Run from the
# repository root; as root the cluster runs as the `postgres` user (created if
# missing), since PostgreSQL refuses to run as root.
set -euo pipefail

name=$1
dsn_var=$2
shift 2

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
for tool in initdb pg_ctl postgres; do
    [[ -x "$PG_BIN/$tool" ]] || { echo "$name: $PG_BIN/$tool not found (apt-get install postgresql-15, or set PG_BIN)" >&2; exit 1; }
done

as_pg=()
pg_user=$(id -un)
if [[ $(id -u) -eq 0 ]]; then
    pg_user=postgres
    if ! id -u "$pg_user" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user"
    fi
    as_pg=(runuser -u "$pg_user" --)
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/tally-$name.XXXXXX")
data="$dir/data"
started=0
cleanup() {
    local status=$?
    if [[ $started -eq 1 ]]; then
        "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$dir"
[[ ${#as_pg[@]} -eq 0 ]] || chown "$pg_user" "$dir"

# A TCP port nobody listens on (the socket file's name carries it).
port=""
for _ in $(seq 1 100); do
    candidate=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null \
        && [[ ! -e "$dir/.s.PGSQL.$candidate" ]]; then
        port=$candidate
        break
    fi
done
[[ -n $port ]] || { echo "$name: no free port found" >&2; exit 1; }

"${as_pg[@]}" "$PG_BIN/initdb" -D "$data" -U "$pg_user" --auth=trust \
    --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }

cat >>"$data/postgresql.conf" <<CONF

# tally $name
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
${PG_EXTRA_CONF:-}
CONF

started=1
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }

echo "$name: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') in $data, socket $dir port $port" >&2
export "$dsn_var=host=$dir port=$port user=$pg_user dbname=postgres"
"$@"
