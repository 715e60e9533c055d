// Shared by the handlers of main.pb.js (a handler cannot see the file's top level): appends
// one entry to the log the test reads back with GET /authlog. Stored as JSON text in
// $app.store(), which both vaultbase and PocketBase keep per process. Appending is not atomic:
// the fixture never logs from two threads at once (a background mail is waited for).
module.exports = function log(entry) {
  const all = JSON.parse($app.store().get("authlog") || "[]");
  all.push(entry);
  $app.store().set("authlog", JSON.stringify(all));
};
