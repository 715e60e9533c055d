/// tests/webhooks.rs: every committed update of a webhook definition leaves an `audit` row
/// (a hook that writes to a collection the webhook under test watches, so a delivery runner
/// that raised an event per failed delivery would feed itself through it).

onRecordAfterUpdateSuccess((e) => {
  const audit = new Record($app.findCollectionByNameOrId("audit"));
  audit.set("rid", e.record.id);
  audit.set("active", e.record.getBool("active"));
  audit.set("failures", e.record.getInt("failures"));
  audit.set("reason", e.record.getString("pausedReason"));
  $app.save(audit);
  e.next();
}, "_webhooks");
