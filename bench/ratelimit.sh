#!/usr/bin/env bash
# What one rate-limit rule costs: view 1 on a 2-worker `vaultbase cluster`, with `rateLimits`
# off and with one rule that matches every request (label "/", a limit never reached),
# alternating round by round on the same cluster and data.
#
#   bench/ratelimit.sh
#   ROUNDS=5 DURATION=10s bench/ratelimit.sh
#
# Needs: wrk, curl, python3 (not PocketBase).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
NEEDS_POCKETBASE=0
# shellcheck source=bench/lib.sh
. bench/lib.sh
EMAIL=bench@example.com; PASS=benchmark-password
"$BIN" superuser upsert "$EMAIL" "$PASS" --dir "$WORK/data" >/dev/null
PORT=$(free_port)
VAULTBASE_WORKERS=2 "$BIN" cluster --http "127.0.0.1:$PORT" --dir "$WORK/data" >/dev/null 2>"$WORK/cluster.log" & PIDS+=($!)
wait_up "http://127.0.0.1:$PORT/api/health"

read -r TOKEN ID <<<"$(seed "$PORT")"

limits() { # on|off
  local body
  if [ "$1" = on ]; then
    body='{"rateLimits":{"enabled":true,"rules":[{"label":"/","maxRequests":1000000000,"duration":1,"audience":""}]}}'
  else
    body='{"rateLimits":{"enabled":false}}'
  fi
  curl -fs -X PATCH -H "content-type: application/json" -H "authorization: $TOKEN" -d "$body" "http://127.0.0.1:$PORT/api/settings" >/dev/null
}
one() {
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$PORT/api/collections/bench/records/$ID" |
    awk -v l="$1" '/^Requests\/sec/ {rps=$2} $1=="99%" {p99=$2} /Non-2xx/ {bad=$NF} END {printf "%-22s %10.0f %9s %7s\n", l, rps, p99, bad+0}'
}

echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, cluster(2), wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS rounds, $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-22s %10s %9s %7s\n' target req/s p99 non2xx
R="$WORK/rows"
for round in $(seq 1 "$ROUNDS"); do
  limits off; one "view, limits off"
  limits on; one "view, 1 rule on /"
done | tee "$R"
python3 - "$R" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, rps = line[:22].strip(), float(line[22:].split()[0])
    rows.setdefault(label, []).append(rps)
off, on = statistics.median(rows["view, limits off"]), statistics.median(rows["view, 1 rule on /"])
print(f"median req/s: off {off:.0f}, on {on:.0f} → the rule costs {100 * (1 - on / off):.1f} % of view throughput")
PY
