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
# Needs: wrk, curl, python3 (not PocketBase).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${BASE:?set BASE to the vaultbase binary to compare against}"
ROUNDS=${ROUNDS:-3}
NEEDS_POCKETBASE=0
# shellcheck source=bench/lib.sh
. bench/lib.sh
HEAD_BIN=$BIN
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

read -r _ ID_BASE <<<"$(seed "$P_BASE" sink)"; read -r _ ID_HEAD <<<"$(seed "$P_HEAD" sink)"
cat >"$WORK/create.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"created by wrk","n":7}'
LUA

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
