// Fixture of tests/hooks_gaps.rs: the hook points issue 11 left open (batch items, realtime
// enrich, the auth request hooks, saveNoValidate). Every handler writes what it saw where the
// test can read it, and PocketBase 0.40.6 gives the same answers for this file.

// ---- saveNoValidate: model hooks run, onRecordValidate and the field checks do not.
onRecordCreate((e) => {
  if (e.record.get("title") === "nv") e.record.set("code", "toolong");
  e.next();
}, "strict");

onRecordValidate((e) => {
  throw new BadRequestError("validate hook ran");
}, "strict");

routerAdd("POST", "/gaps/save/{mode}", (e) => {
  const c = $app.findCollectionByNameOrId("strict");
  const r = new Record(c);
  r.set("title", "nv");
  r.set("n", 1);
  try {
    if (e.request.pathValue("mode") === "novalidate") $app.saveNoValidate(r);
    else $app.save(r);
  } catch (err) {
    return e.json(400, { error: String(err) });
  }
  const back = $app.findRecordById("strict", r.id);
  return e.json(200, { title: back.get("title"), code: back.get("code"), n: back.get("n") });
});

// ---- auth request hooks
onRecordAuthRefreshRequest((e) => {
  if (e.record.get("name") === "custom") {
    return e.json(200, { refreshed: e.record.id, collection: e.collection.name, auth: e.auth ? e.auth.id : null });
  }
  if (e.record.get("name") === "frozen") throw new ForbiddenError("no refresh for you");
  e.next();
}, "users");

onRecordRequestOTPRequest((e) => {
  const email = e.requestInfo().body.email;
  if (email === "blocked@example.com") throw new BadRequestError("otp blocked");
  if (!e.record) return e.json(200, { unknown: email, collection: e.collection.name });
  e.password = "24682468";
  e.next();
}, "users");

onRecordAuthWithOTPRequest((e) => {
  if (e.otp.id !== e.requestInfo().body.otpId) throw new BadRequestError("otp mismatch");
  if (e.record.get("name") === "otpdenied") throw new ForbiddenError("otp denied");
  e.next();
}, "users");

// ---- request hooks for batch items (collection "bitems")
onRecordCreateRequest((e) => {
  const title = e.record.get("title");
  if (title === "boom") throw new BadRequestError("no boom");
  if (title === "skip") return;
  const info = e.requestInfo();
  e.record.set("note", "ctx=" + info.context + " tx=" + e.app.isTransactional() + " new=" + e.record.isNew());
  e.next();
  if (!e.record.id || e.record.isNew()) throw new BadRequestError("not saved after next");
}, "bitems");

onRecordUpdateRequest((e) => {
  e.record.set("note", "updated from " + e.record.original().get("title"));
  e.next();
}, "bitems");

onRecordDeleteRequest((e) => {
  if (e.record.get("title") === "keep") throw new ForbiddenError("kept");
  e.next();
}, "bitems");

// ---- onRecordEnrich on realtime events (collection "rtitems")
onRecordEnrich((e) => {
  e.record.hide("secret");
  e.record.withCustomData(true);
  e.record.set("viewer", e.requestInfo.auth ? e.requestInfo.auth.id : "guest");
  e.record.set("ctx", e.requestInfo.context);
  e.next();
}, "rtitems");
