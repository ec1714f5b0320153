#!/usr/bin/env bash
# PostgreSQL baseline for benches/load.rs: starts a throw-away PostgreSQL 15
# cluster, runs `cargo bench --bench pg_baseline -- "$@"` against it, then
# stops the cluster and removes its directory (also on failure or Ctrl-C).
#
#   bash benches/pg-baseline.sh --accounts 10000 --transfers 1000000 --batch 8189 --clients 1
#   bash benches/pg-baseline.sh --clients 4 --hot-accounts 10 --hot-share 0.5 --two-phase-share 0.2 --json
#
# The arguments are those of `cargo bench --bench load` (benches/README.md):
# both benches submit the same transfers.
#
# Settings: those of benches/pg-cluster.sh (durable as shipped,
# shared_buffers=256MB).
set -euo pipefail
exec bash "$(dirname "$0")/pg-cluster.sh" pg-baseline PG_BASELINE_DSN \
    cargo bench --bench pg_baseline -- "$@"
