#!/usr/bin/env bash
# `vaultbase backup` of a ~1 GB database while 200 writes/s continue: the target is that no
# write waits longer than 100 ms because of it (the snapshot is `VACUUM INTO` on a read-only
# connection, which in WAL mode never takes the write lock).
#
#   bench/backup.sh                  # SIZE_MB=1024 RATE=200
#   SIZE_MB=256 RATE=400 bench/backup.sh
#
# Steps: a serve process on a fresh data dir gets a public `bench` collection; the server is
# stopped and the table filled to SIZE_MB with sqlite3 (far quicker than the API); the server
# is started again; a load generator posts RATE creates per second (open loop: each write is
# sent at its scheduled time, on its own connection, so a stalled write cannot hide the next
# ones) and records each latency; after a few seconds of warm-up `vaultbase backup --to`
# runs; the load stops a few seconds after it finishes. Printed: the backup's duration and
# size, and the write latencies (p50, p99, max) before, during and after the backup, with
# PASS/FAIL against 100 ms for those during it. Needs: sqlite3, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB=${SIZE_MB:-1024}
RATE=${RATE:-200}
WARMUP_S=${WARMUP_S:-5}
COOLDOWN_S=${COOLDOWN_S:-5}
LIMIT_MS=${LIMIT_MS:-100}
NEEDS_POCKETBASE=0
# shellcheck source=bench/lib.sh
. bench/lib.sh
require sqlite3 "apt-get install -y sqlite3"
EMAIL=bench@example.com; PASS=benchmark-password
DATA=$WORK/data
PORT=$(free_port)

serve() {
  VAULTBASE_HOST=127.0.0.1 VAULTBASE_PORT=$PORT VAULTBASE_DATA_DIR=$DATA "$BIN" serve >"$WORK/serve.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  wait_up "http://127.0.0.1:$PORT/_/health"
}

"$BIN" superuser upsert "$EMAIL" "$PASS" --dir "$DATA" >/dev/null
serve
SEED=1 seed "$PORT" >/dev/null
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true

echo "filling data.db to ~${SIZE_MB} MB ..."
# 1 KiB of random text per row; rows in batches so the WAL stays small.
ROWS=$((SIZE_MB * 1024))
BATCH=50000
for ((done_rows = 0; done_rows < ROWS; done_rows += BATCH)); do
  sqlite3 "$DATA/data.db" "PRAGMA journal_mode=WAL; WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < $BATCH)
    INSERT INTO bench (id, title, n)
    SELECT lower(hex(randomblob(7))) || printf('%x', $done_rows + i), hex(randomblob(512)), $done_rows + i FROM r;" >/dev/null
done
sqlite3 "$DATA/data.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
echo "data.db: $(du -m "$DATA/data.db" | cut -f1) MB"

serve
LAT=$WORK/latencies.tsv
STOP=$WORK/stop-load
python3 - "$PORT" "$RATE" "$LAT" "$STOP" <<'PY' &
import http.client, json, sys, threading, time
import os
port, rate, out, stop_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = json.dumps({"title": "during backup", "n": 1})
lock, rows = threading.Lock(), []
def one(at):
    start = time.time()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/api/collections/bench/records", body, {"content-type": "application/json"})
        status = c.getresponse().status
    except Exception:
        status = 0
    with lock:
        rows.append((at, start, time.time(), status))
t0 = time.time(); i = 0
while not (i % rate == 0 and os.path.exists(stop_file)):
    at = t0 + i / rate
    delay = at - time.time()
    if delay > 0:
        time.sleep(delay)
    threading.Thread(target=one, args=(at,), daemon=True).start()
    i += 1
time.sleep(2)
with lock, open(out, "w") as f:
    for at, start, end, status in rows:
        # latency from the scheduled send time: a write held up shows its whole wait
        f.write(f"{start}\t{end}\t{(end - at) * 1000:.3f}\t{status}\n")
PY
LOAD=$!
PIDS+=("$LOAD")
sleep "$WARMUP_S"
B_START=$(python3 -c 'import time; print(time.time())')
"$BIN" backup --to "$WORK/snapshot.db" --dir "$DATA" --quiet
B_END=$(python3 -c 'import time; print(time.time())')
sleep "$COOLDOWN_S"
touch "$STOP"
wait "$LOAD"

python3 - "$LAT" "$B_START" "$B_END" "$LIMIT_MS" "$WORK/snapshot.db" <<'PY'
import os, sys
path, b0, b1, limit, snap = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
rows = [l.split("\t") for l in open(path)] if os.path.exists(path) else []
def stats(name, sel):
    lat = sorted(float(r[2]) for r in sel)
    bad = sum(1 for r in sel if r[3].strip() != "200")
    if not lat:
        print(f"{name:8} no writes"); return None
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"{name:8} writes {len(lat):6}  p50 {pick(.5):8.2f} ms  p99 {pick(.99):8.2f} ms  max {lat[-1]:8.2f} ms  non-200 {bad}")
    return lat[-1]
print(f"backup: {b1 - b0:.1f} s, {os.path.getsize(snap) / 1e6:.0f} MB")
stats("before", [r for r in rows if float(r[1]) < b0])
# During: the write was in flight at some moment of the backup.
worst = stats("during", [r for r in rows if float(r[0]) < b1 and float(r[1]) > b0])
stats("after", [r for r in rows if float(r[0]) >= b1])
if worst is not None:
    print(("PASS" if worst <= limit else "FAIL") + f": the slowest write during the backup took {worst:.2f} ms (limit {limit:.0f} ms)")
PY
