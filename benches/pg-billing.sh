#!/usr/bin/env bash
# PostgreSQL side of benches/billing.rs: starts a throw-away PostgreSQL 15
# cluster, runs `cargo bench --bench billing -- "$@"` with PG_BILLING_DSN set
# (so the bench bills the same month on Tally and on PostgreSQL in one
# session and prints the ratio), then stops the cluster and removes its
# directory (also on failure or Ctrl-C).
#
#   bash benches/pg-billing.sh --customers 10000 --events 1000000
#   bash benches/pg-billing.sh --customers 100000 --events 10000000 --skip-tally
#
# Settings: those of benches/pg-cluster.sh (durable as shipped: fsync,
# synchronous_commit and full_page_writes on; shared_buffers = 256MB), plus
# work_mem = 64MB so that the per-customer aggregation is hashed in memory
# (as benches/pg-rating.sh) and temp_buffers = 64MB so that the run's
# temporary table of due invoices stays in memory; everything else default
# (parallel query on: max_parallel_workers_per_gather = 2, jit = on). The
# cluster is idle (256 MB of shared buffers) while the Tally side runs; the
# bench stops tallyd before PostgreSQL loads. The bench loads the events with
# a server-side COPY FROM 'file', so the cluster's user must be able to read
# the bench's temporary directory (the bench makes it 0755).
set -euo pipefail
PG_EXTRA_CONF=$'work_mem = 64MB\ntemp_buffers = 64MB' exec bash "$(dirname "$0")/pg-cluster.sh" pg-billing PG_BILLING_DSN \
    cargo bench --bench billing -- "$@"
