#!/usr/bin/env bash
# A/B of two vaultbase builds on the records scenarios (list 100, view 1, create 1), in one
# run, interleaved round by round so drift on a shared machine hits both alike; and the shape
# of each latency distribution (mean, p50, p90, p99, max, p99 ÷ mean), for tail-latency work.
#
#   BASE=/path/to/old/vaultbase bench/ab.sh          # BASE against this tree's release build
#   ROUNDS=5 DURATION=10s BASE=… bench/ab.sh
#   SCENARIOS="list view" BASE=… bench/ab.sh
#
# Each round runs every scenario against both builds (serve mode, same data, same wrk
# settings); the summary gives each build's median over the rounds. Creates go to a second
# collection, so the listed one keeps its 100 records round after round.
# Needs: wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${BASE:?set BASE to the vaultbase binary to compare against}"
ROUNDS=${ROUNDS:-3}
SEED=${SEED:-100}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "not up: $1" >&2; exit 1; }
THREADS=${THREADS:-2}; CONNS=${CONNS:-32}; DURATION=${DURATION:-10s}

cargo build --release --quiet
HEAD_BIN=${CARGO_TARGET_DIR:-target}/release/vaultbase
EMAIL=bench@example.com; PASS=benchmark-password

# start NAME BIN VAR: a serve process on a free port, its port put in VAR. (Not in a command
# substitution: that subshell would run the EXIT trap and remove $WORK.)
start() {
  local name=$1 bin=$2 port
  port=$(free_port)
  "$bin" superuser upsert "$EMAIL" "$PASS" --dir "$WORK/$name" >/dev/null
  "$bin" serve --http "127.0.0.1:$port" --dir "$WORK/$name" >/dev/null 2>"$WORK/$name.log" & PIDS+=($!)
  wait_up "http://127.0.0.1:$port/api/health"
  printf -v "$3" '%s' "$port"
}
start base "$BASE" P_BASE; start head "$HEAD_BIN" P_HEAD

setup() {
  python3 - "$1" "$EMAIL" "$PASS" "$SEED" <<'PY'
import json, sys, urllib.request
port, email, password, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
base = f"http://127.0.0.1:{port}"
def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    if token: req.add_header("authorization", token)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")
token = call("POST", "/api/collections/_superusers/auth-with-password", {"identity": email, "password": password})["token"]
for name in ("bench", "sink"):
    call("POST", "/api/collections", {"name": name, "listRule": "", "viewRule": "", "createRule": "",
         "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]}, token)
ids = [call("POST", "/api/collections/bench/records", {"title": f"record {i}", "n": i})["id"] for i in range(seed)]
print(ids[seed // 2])
PY
}
ID_BASE=$(setup "$P_BASE"); ID_HEAD=$(setup "$P_HEAD")
cat >"$WORK/create.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"created by wrk","n":7}'
LUA

to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); printf "%.3f", v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); printf "%.3f", v } else { sub(/s$/,"",v); printf "%.3f", v*1000 } }'; }
# one LABEL URL [LUA] → label req/s mean p50 p90 p99 max p99/mean
one() {
  local out
  if [ -n "${3:-}" ]; then out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$3" "$2"); else out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$2"); fi
  local rps mean p50 p90 p99 max
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  mean=$(to_ms "$(awk '$1=="Latency" {print $2; exit}' <<<"$out")")
  max=$(to_ms "$(awk '$1=="Latency" {print $4; exit}' <<<"$out")")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")"); p90=$(to_ms "$(awk '$1=="90%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  printf '%-14s %9.0f %8s %8s %8s %8s %9s %6.1f\n' "$1" "$rps" "$mean" "$p50" "$p90" "$p99" "$max" "$(awk -v a="$p99" -v b="$mean" 'BEGIN{print (b>0?a/b:0)}')"
}

echo "head $(git rev-parse --short HEAD 2>/dev/null || echo unknown) vs base $("$BASE" --version 2>/dev/null | head -1 || echo "$BASE"), $(nproc) cores, wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS rounds, $(date -u +%Y-%m-%dT%H:%MZ)"
R="$WORK/rows"
printf '%-14s %9s %8s %8s %8s %8s %9s %6s\n' label req/s mean_ms p50_ms p90_ms p99_ms max_ms p99/mn
for round in $(seq 1 "$ROUNDS"); do
  for scenario in ${SCENARIOS:-list view create}; do
    for side in base head; do
      if [ $side = base ]; then P=$P_BASE; ID=$ID_BASE; else P=$P_HEAD; ID=$ID_HEAD; fi
      case $scenario in
        list) one "$side-list" "http://127.0.0.1:$P/api/collections/bench/records?perPage=100" ;;
        view) one "$side-view" "http://127.0.0.1:$P/api/collections/bench/records/$ID" ;;
        create) one "$side-create" "http://127.0.0.1:$P/api/collections/sink/records" "$WORK/create.lua" ;;
      esac
    done
  done
done | tee "$R"
echo
echo "medians over $ROUNDS rounds (head ÷ base req/s):"
python3 - "$R" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows.setdefault(f[0], []).append([float(x) for x in f[1:]])
for label in sorted(rows):
    cols = list(zip(*rows[label]))
    med = [statistics.median(c) for c in cols]
    print(f"{label:<14} req/s {med[0]:>8.0f}  mean {med[1]:.3f}  p99 {med[4]:.3f}  p99/mean {med[6]:.1f}  (p99 range {min(cols[4]):.2f}–{max(cols[4]):.2f})")
for scenario in ("list", "view", "create"):
    b, h = rows.get(f"base-{scenario}"), rows.get(f"head-{scenario}")
    if b and h:
        rb = statistics.median(r[0] for r in b); rh = statistics.median(r[0] for r in h)
        print(f"{scenario:<8} head/base req/s {rh / rb:.3f}")
PY
