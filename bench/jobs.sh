#!/usr/bin/env bash
# Background jobs and webhooks on a 2-worker cluster (vaultbase only: PocketBase has neither).
#
#   bench/jobs.sh                 # 1,000 no-op jobs; creates with and without a webhook, 10 s each
#   JOBS=5000 DURATION=30s bench/jobs.sh
#
# 1. Jobs: enqueues $JOBS no-op jobs of the test handler (`POST /_/test/jobs`, so the cluster
#    runs with VAULTBASE_TEST_ROUTES=1) and waits until all are done; prints jobs/s from the
#    first enqueue to the last completion and the p50/p99 of due→start (an attempt's `started`
#    minus the job's `run_at`, from _vb_job_attempts). Targets: ≥ 1,000 jobs/s, p99 ≤ 100 ms.
# 2. Webhooks: wrk creates on a public collection without a webhook on it (the one webhook
#    listens to another collection), then with the webhook on it (a local python receiver
#    answering 204 with keep-alive), ROUNDS pairs in counterbalanced order (without, with; then
#    with, without; …: the tables grow every round). Target: with ≥ 80 % of without (sums of
#    the rounds' req/s). Then it waits until every queued delivery has been received and
#    prints how many arrived during the rounds and how long the rest took to catch up.
#
# Needs: wrk, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
NEEDS_POCKETBASE=0
# shellcheck source=bench/lib.sh
. bench/lib.sh

JOBS=${JOBS:-1000}
ROUNDS=${ROUNDS:-3}
EMAIL=bench@example.com
PASS=benchmark-password
"$BIN" superuser upsert "$EMAIL" "$PASS" --dir "$WORK/cluster" >/dev/null
P=$(free_port); R=$(free_port)
VAULTBASE_WORKERS=2 VAULTBASE_TEST_ROUTES=1 VAULTBASE_WEBHOOKS_ALLOW_PRIVATE=1 \
  "$BIN" cluster --http "127.0.0.1:$P" --dir "$WORK/cluster" 2>"$WORK/cluster.log" & PIDS+=($!)
# The receiver: a bare asyncio Protocol (no stream reader/writer objects per connection, so
# it costs the 2 shared cores as little as a Python receiver can), HTTP/1.1 keep-alive, answers
# every POST 204 and counts it (and its distinct event ids); `GET /count` answers
# "<posts> <distinct events>".
python3 - "$R" >/dev/null 2>&1 <<'PY' & PIDS+=($!)
import asyncio, sys
posts, events = 0, set()
class Serve(asyncio.Protocol):
    def connection_made(self, t):
        self.t, self.buf = t, b""
    def data_received(self, data):
        global posts
        buf = self.buf + data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            length, event = 0, None
            i = head.find(b"\ncontent-length:")
            if i >= 0:
                length = int(head[i + 16:head.find(b"\r", i + 1) if head.find(b"\r", i + 1) > 0 else None])
            if len(buf) < end + 4 + length:
                break
            if head.startswith(b"post"):
                j = head.find(b"\nx-vaultbase-event-id:")
                if j >= 0:
                    k = head.find(b"\r", j + 1)
                    event = buf[j + 22:k if k > 0 else None].strip()
                posts += 1; events.add(event)
                self.t.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:
                body = f"{posts} {len(events)}".encode()
                self.t.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            buf = buf[end + 4 + length:]
        self.buf = buf
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Serve, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    await server.serve_forever()
asyncio.run(main())
PY
wait_up "http://127.0.0.1:$P/api/health"
read -r TOKEN _ <<<"$(SEED=1 seed "$P")"

echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, 2 workers, $(date -u +%Y-%m-%dT%H:%MZ)"
python3 - "$P" "$TOKEN" "$JOBS" "$WORK/cluster/data.db" <<'PY'
import json, sqlite3, sys, time, urllib.request
port, token, n, db = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
base = f"http://127.0.0.1:{port}"
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json"); req.add_header("authorization", token)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")
start = time.time()
left = n
while left > 0:
    k = min(100, left)
    call("POST", "/_/test/jobs", {"payload": {"noop": True}, "count": k})
    left -= k
while call("GET", "/api/vb/jobs?status=done&limit=1")["totalItems"] < n:
    time.sleep(0.01)
elapsed = time.time() - start
c = sqlite3.connect(db)
lat = sorted(r[0] for r in c.execute("SELECT a.started - j.run_at FROM _vb_job_attempts a JOIN _vb_jobs j ON j.id = a.job"))
pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))]
print(f"jobs: {n} no-op jobs in {elapsed:.2f} s = {n/elapsed:.0f} jobs/s; due→start p50 {pct(0.5)} ms, p99 {pct(0.99)} ms")
PY

cat >"$WORK/create.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title":"created by wrk","n":7}'
LUA
HOOK=$(curl -fs -X POST -H "Authorization: $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"url\":\"http://127.0.0.1:$R/hook\",\"events\":[\"other.create\"]}" \
  "http://127.0.0.1:$P/api/collections/_webhooks/records" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
# "Without" keeps the webhook active but on another collection's events, so that deliveries
# still queued from the previous round are delivered (not dropped as to an inactive webhook)
# and every one of them can be counted at the end.
set_hook() { curl -fs -X PATCH -H "Authorization: $TOKEN" -H 'Content-Type: application/json' -d "{\"events\":[\"$1.create\"]}" "http://127.0.0.1:$P/api/collections/_webhooks/records/$HOOK" >/dev/null; }
header
OUT=$(mktemp)
without() { set_hook other; run "create, no webhook" "http://127.0.0.1:$P/api/collections/bench/records" "$WORK/create.lua"; }
with_hook() { set_hook bench; run "create, one active webhook" "http://127.0.0.1:$P/api/collections/bench/records" "$WORK/create.lua"; }
# Counterbalanced (without, with, with, without, …): every round adds ~100k rows to the tables
# both variants write, and a fixed order would always give one of them the bigger tables.
for i in $(seq 1 "$ROUNDS"); do
  if [ $((i % 2)) = 1 ]; then without; with_hook; else with_hook; without; fi
done | tee "$OUT"
awk '/no webhook/ {off+=$(NF-3); n++} /one active/ {on+=$(NF-3)} END { if (n) printf "with a webhook: %.0f %% of the creates/s without (target >= 80 %%)\n", 100*on/off }' "$OUT"
rm -f "$OUT"
# Nothing hidden: the deliveries still queued when the rounds ended are waited for.
python3 - "$P" "$TOKEN" "$R" <<'PY'
import json, sys, time, urllib.request
port, token, recv = sys.argv[1], sys.argv[2], sys.argv[3]
def total(status=None):
    q = "&status=" + status if status else ""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/vb/jobs?name=webhook.deliver&limit=1{q}", headers={"authorization": token})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["totalItems"]
def received():
    with urllib.request.urlopen(f"http://127.0.0.1:{recv}/count") as r:
        return [int(x) for x in r.read().split()]
start, queued, (at_end, _) = time.time(), total(), received()
# Watch the receiver's count (the jobs API's counts scan the table, which would slow the
# deliveries down); look at the queue itself only now and then, in case some die.
looks = 0
while received()[0] < queued:
    time.sleep(0.2)
    looks += 1
    if looks % 25 == 0 and total("queued") + total("running") == 0:
        break
took = time.time() - start
posts, distinct = received()
print(f"deliveries: {queued} queued, {at_end} received by the end of the rounds; all done {took:.1f} s later: {posts} received ({distinct} distinct events, {total('done')} jobs done, {total('dead')} dead)")
PY
