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
# Settings: those of benches/pg-cluster.sh (durable as shipped,
# shared_buffers = 256MB), plus work_mem = 64MB so that the per-customer aggregation of the
# rating query is hashed in memory; everything else default (parallel query
# on: max_parallel_workers_per_gather = 2, jit = on). The bench loads the
# events with a server-side COPY FROM 'file', so the cluster's user must be
# able to read the bench's temporary directory (the bench makes it 0755).
set -euo pipefail
PG_EXTRA_CONF="work_mem = 64MB" exec bash "$(dirname "$0")/pg-cluster.sh" pg-rating PG_RATING_DSN \
    cargo bench --bench rating -- "$@"
