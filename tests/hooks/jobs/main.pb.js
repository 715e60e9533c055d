// Jobs from JavaScript: `jobsAdd` handlers and `$jobs.enqueue` from routes, transactions and
// record hooks. Each run is recorded as a `runs` record (made by the test), so the test sees
// every worker's runs in one place.

// Records one run: the job, its attempt, its payload's tag, and that `$app` works inside.
jobsAdd("record", (e) => {
  const runs = e.app.findCollectionByNameOrId("runs");
  const r = new Record(runs);
  r.set("job", e.id);
  r.set("tag", String(e.payload.tag));
  r.set("attempt", e.attempt);
  r.set("viaGlobal", $app.findCollectionByNameOrId("runs").name);
  if (e.payload.sleepMs) sleep(e.payload.sleepMs);
  e.app.save(r);
}, { concurrency: 8 });

// Fails its first two attempts, then records its run.
jobsAdd("flaky", (e) => {
  if (e.attempt < 3) throw new Error("flaky attempt " + e.attempt);
  const r = new Record($app.findCollectionByNameOrId("runs"));
  r.set("job", e.id);
  r.set("tag", "flaky");
  r.set("attempt", e.attempt);
  $app.save(r);
}, { timeout: 5000 });

// POST /enqueue {name, payload, options}: answers {id}.
routerAdd("POST", "/enqueue", (e) => {
  const b = e.requestInfo().body;
  return e.json(200, { id: $jobs.enqueue(b.name, b.payload, b.options) });
});

// POST /enqueue-tx {tag, fail}: enqueues inside runInTransaction, which then throws if `fail`.
routerAdd("POST", "/enqueue-tx", (e) => {
  const b = e.requestInfo().body;
  let id = "";
  try {
    $app.runInTransaction((txApp) => {
      id = $jobs.enqueue("record", { tag: b.tag });
      if (b.fail) throw new Error("roll it back");
    });
  } catch (err) {
    return e.json(409, { id, rolledBack: true });
  }
  return e.json(200, { id });
});

// A record hook enqueues; the job exists only if the create commits.
onRecordCreate((e) => {
  e.app.store().set("last-order-job", $jobs.enqueue("record", { tag: "order:" + e.record.get("title") }));
  e.next();
}, "orders");
