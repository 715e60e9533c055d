#!/usr/bin/env bash
# Record create with and without a no-op `onRecordCreateRequest` (e.next()), vaultbase serve
# only, alternating round by round (none, noop, none, noop, …) so drift on a shared machine
# hits both alike. Per run: req/s, the server's CPU per request (utime+stime from
# /proc/PID/stat over the measured run ÷ requests, in µs) and its thread count at the end; the
# summary gives each variant's median and noop ÷ none. PERF=1 also records
# `perf record -e cpu-clock -g` of each server into $PERF_DIR (default /tmp) for `perf report`.
#
#   bench/hooks_create.sh
#   ROUNDS=5 DURATION=10s PROFILE=profiling PERF=1 bench/hooks_create.sh
#
# Needs: wrk, curl, python3 (not PocketBase); perf for PERF=1.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
NEEDS_POCKETBASE=0
SEED=10
# shellcheck source=bench/lib.sh
. bench/lib.sh
EMAIL=bench@example.com; PASS=benchmark-password
TICK_US=$((1000000 / $(getconf CLK_TCK)))

mkdir -p "$WORK/hooks_none" "$WORK/hooks_noop"
cat >"$WORK/hooks_noop/bench.pb.js" <<'JS'
onRecordCreateRequest((e) => {
  e.next();
}, "bench");
JS
cat >"$WORK/create.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"created by wrk","n":7}'
LUA

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# one VARIANT ROUND → "VARIANT req/s µs/request threads"
one() {
  local v=$1 round=$2 port pid out c0 c1 n rps threads perf_pid=""
  port=$(free_port)
  "$BIN" superuser upsert "$EMAIL" "$PASS" --dir "$WORK/vb_${v}_$round" >/dev/null
  "$BIN" serve --http "127.0.0.1:$port" --dir "$WORK/vb_${v}_$round" --hooksDir "$WORK/hooks_$v" --hooksWatch=false 2>"$WORK/vb_$v.log" & pid=$!
  PIDS+=("$pid")
  wait_up "http://127.0.0.1:$port/api/health"
  seed "$port" >/dev/null
  local url="http://127.0.0.1:$port/api/collections/bench/records"
  # Warm-up: the JS pool grows to its working size, the page cache fills.
  wrk -t"$THREADS" -c"$CONNS" -d2s -s "$WORK/create.lua" "$url" >/dev/null
  if [ "${PERF:-0}" = 1 ]; then
    perf record -e cpu-clock -g -o "${PERF_DIR:-/tmp}/hooks_create.$v.$round.data" -p "$pid" 2>/dev/null & perf_pid=$!
  fi
  c0=$(cpu_ticks "$pid")
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$WORK/create.lua" "$url")
  c1=$(cpu_ticks "$pid")
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; fi
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  threads=$(ls "/proc/$pid/task" | wc -l)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$v $rps $(( (c1 - c0) * TICK_US / n )) $threads"
}

echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS rounds, $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-6s %10s %12s %8s\n' variant req/s cpu_us/req threads
R=$(mktemp)
for round in $(seq 1 "$ROUNDS"); do
  for v in none noop; do
    one "$v" "$round" | tee -a "$R" | awk '{printf "%-6s %10.0f %12s %8s\n", $1, $2, $3, $4}'
  done
done
python3 - "$R" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
med = {v: (statistics.median(float(r[1]) for r in rows if r[0] == v), statistics.median(float(r[2]) for r in rows if r[0] == v)) for v in ("none", "noop")}
print(f"median none {med['none'][0]:.0f} req/s {med['none'][1]:.0f} µs/req; noop {med['noop'][0]:.0f} req/s {med['noop'][1]:.0f} µs/req; noop/none {100 * med['noop'][0] / med['none'][0]:.0f} % of the req/s")
PY
rm -f "$R"
