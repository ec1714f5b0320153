#!/usr/bin/env bash
# PostgreSQL side of benches/rating.rs: starts a throw-away PostgreSQL 15
# cluster, runs `cargo bench --bench rating -- "$@"` with PG_RATING_DSN set
# (so the bench rates the same month on Tally and on PostgreSQL in one
# session and prints the ratio), then stops the cluster and removes its
# directory (also on failure or Ctrl-C).
#
#   bash benches/pg-rating.sh --customers 10000 --events 1000000
#   bash benches/pg-rating.sh --customers 100000 --events 10000000 --skip-tally
#
# Settings: as benches/pg-baseline.sh (durable as shipped, shared_buffers =
# 256MB), plus work_mem = 64MB so that the per-customer aggregation of the
# rating query is hashed in memory; everything else default (parallel query
# on: max_parallel_workers_per_gather = 2, jit = on). The bench loads the
# events with a server-side COPY FROM 'file', so the cluster's user must be
# able to read the bench's temporary directory (the bench makes it 0755).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
for tool in initdb pg_ctl postgres; do
    [[ -x "$PG_BIN/$tool" ]] || { echo "pg-rating: $PG_BIN/$tool not found (apt-get install postgresql-15, or set PG_BIN)" >&2; exit 1; }
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

dir=$(mktemp -d "${TMPDIR:-/tmp}/tally-pg-rating.XXXXXX")
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
[[ -n $port ]] || { echo "pg-rating: no free port found" >&2; exit 1; }

"${as_pg[@]}" "$PG_BIN/initdb" -D "$data" -U "$pg_user" --auth=trust \
    --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }

cat >>"$data/postgresql.conf" <<CONF

# tally pg-rating
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
shared_buffers = 256MB
fsync = on
synchronous_commit = on
full_page_writes = on
work_mem = 64MB
CONF

started=1
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }

echo "pg-rating: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') in $data, socket $dir port $port" >&2
export PG_RATING_DSN="host=$dir port=$port user=$pg_user dbname=postgres"
cargo bench --bench rating -- "$@"
