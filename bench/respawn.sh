#!/usr/bin/env bash
# Respawn time of `vaultbase cluster`: kill -9 a worker, then time until a fresh connection is
# answered by that worker id with a new pid. Repeated RUNS times on one 2-worker cluster,
# alternating between workers 0 and 1 and pausing so that no slot dies 5 times in 30 s (that
# would trip the crash-loop guard and measure its backoff instead); prints the median and the
# maximum in milliseconds. The supervisor waits a fixed restart delay before
# respawning (1 s), so the figure is that delay plus start-up; tests/cluster.rs checks that
# the respawn happens, this measures how long it takes.
#
# Needs only curl and python3 (no PocketBase, no wrk).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-10}
PROFILE=${PROFILE:-release}
command -v curl >/dev/null || { echo "curl is missing: apt-get install -y curl" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }
cargo build --profile "$PROFILE" --quiet
BIN=${CARGO_TARGET_DIR:-target}/$PROFILE/vaultbase

WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
VAULTBASE_WORKERS=2 VAULTBASE_HOST=127.0.0.1 VAULTBASE_PORT=$PORT VAULTBASE_DATA_DIR="$WORK/data" \
  "$BIN" cluster 2>"$WORK/cluster.log" &
PID=$!

# The timing loop is in python: one fresh connection per probe, a monotonic clock, and no
# process start per probe (curl's own start-up would be a large part of the figure).
python3 - "$PORT" "$RUNS" <<'EOF'
import http.client, json, os, signal, statistics, sys, time

port, runs = int(sys.argv[1]), int(sys.argv[2])
BOUND_S = 30  # a respawn slower than this is reported as a failure, not waited for

def health():
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/_/health")
        r = c.getresponse()
        body = r.read()
        c.close()
        return json.loads(body) if r.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        return None

# The supervisor's crash-loop guard: CRASH_LOOP_DEATHS (5) deaths within CRASH_LOOP_WINDOW
# (30 s). Stay one death under it, with a second of margin on the window.
MAX_DEATHS_PER_WINDOW, WINDOW_S = 4, 31

def pid_of_worker(wid):
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        h = health()
        if h and h.get("worker_id") == wid:
            return h["pid"]
    sys.exit(f"worker {wid} never answered")

figures = []
deaths = {0: [], 1: []}
for run in range(runs):
    wid = run % 2
    recent = [t for t in deaths[wid] if time.monotonic() - t < WINDOW_S]
    if len(recent) >= MAX_DEATHS_PER_WINDOW:
        time.sleep(WINDOW_S - (time.monotonic() - recent[0]))
    victim = pid_of_worker(wid)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    deaths[wid].append(killed)
    while True:
        h = health()
        if h and h.get("worker_id") == wid and h["pid"] != victim:
            figures.append((time.monotonic() - killed) * 1000)
            break
        if time.monotonic() - killed > BOUND_S:
            sys.exit(f"worker {wid} not back within {BOUND_S} s")
commit = os.popen("git rev-parse --short HEAD").read().strip()
print(f"commit {commit}, {os.cpu_count()} cores, cluster(2), {runs} kills (workers 0 and 1 in turn): "
      f"respawn median {statistics.median(figures):.0f} ms, max {max(figures):.0f} ms")
EOF
