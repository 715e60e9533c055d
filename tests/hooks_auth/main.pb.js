// Fixture of tests/hooks_auth.rs: the auth request hooks of the account flows
// (verification, password reset, email change), OAuth2 and onRecordAuthRequest. Every handler
// logs what its event carried; what it does next depends on the record's `name`:
//   "refuse" → throws, "skip" → returns without e.next(), "touch" → changes e.record, then
//   e.next(); anything else → e.next().
// The system mails are caught by onMailerRecord*Send, which log them (with their token) and
// end the chain, so no SMTP server is needed. The same file runs unchanged on PocketBase 0.40.6.

routerAdd("GET", "/authlog", (e) => e.json(200, JSON.parse($app.store().get("authlog") || "[]")));


onRecordRequestVerificationRequest((e) => {
  const log = require(`${__hooks}/log.js`);
  const name = e.record.get("name");
  log({ hook: "requestVerification", collection: e.collection.name, record: e.record.id, email: e.record.email(), verified: e.record.verified(), body: e.requestInfo().body });
  if (name === "refuse") throw new ForbiddenError("refused by hook");
  if (name === "skip") return;
  // Nothing logged after e.next(): the mail is logged by another thread meanwhile, and the
  // log's read-modify-write would race with it.
  e.next();
}, "users");

onRecordConfirmVerificationRequest((e) => {
  const log = require(`${__hooks}/log.js`);
  const name = e.record.get("name");
  log({ hook: "confirmVerification", collection: e.collection.name, record: e.record.id, verified: e.record.verified() });
  if (name === "refuse") throw new ForbiddenError("refused by hook");
  if (name === "skip") return;
  if (name === "touch") e.record.set("name", "touched");
  if (name === "invalid") e.record.set("name", "x".repeat(300));
  e.next();
  // The default action stored the record: the stored one is as e.record shows it.
  log({ hook: "confirmVerification", after: true, verified: e.record.verified(), stored: $app.findRecordById("users", e.record.id).verified() });
}, "users");

onRecordRequestPasswordResetRequest((e) => {
  const log = require(`${__hooks}/log.js`);
  const name = e.record.get("name");
  log({ hook: "requestPasswordReset", collection: e.collection.name, record: e.record.id, email: e.record.email() });
  if (name === "refuse") throw new ForbiddenError("refused by hook");
  if (name === "skip") return;
  e.next();
  // A throw once the default action answered: that answer stands, and the mail goes out.
  if (name === "late") throw new BadRequestError("too late to refuse");
}, "users");

onRecordConfirmPasswordResetRequest((e) => {
  const log = require(`${__hooks}/log.js`);
  const name = e.record.get("name");
  log({ hook: "confirmPasswordReset", collection: e.collection.name, record: e.record.id, body: Object.keys(e.requestInfo().body).sort() });
  if (name === "refuse") throw new ForbiddenError("refused by hook");
  if (name === "skip") return;
  if (name === "touch") e.record.set("name", "touched");
  e.next();
  log({ hook: "confirmPasswordReset", after: true, verified: e.record.verified(), newPassword: e.record.validatePassword("new password 1"), stored: $app.findRecordById("users", e.record.id).validatePassword("new password 1") });
}, "users");

onRecordRequestEmailChangeRequest((e) => {
  const log = require(`${__hooks}/log.js`);
  const name = e.record.get("name");
  log({ hook: "requestEmailChange", collection: e.collection.name, record: e.record.id, newEmail: e.newEmail, auth: e.auth ? e.auth.id : null });
  if (name === "refuse") throw new ForbiddenError("refused by hook");
  if (name === "skip") return;
  if (e.newEmail.startsWith("swap")) e.newEmail = "swapped@example.com";
  e.next();
}, "users");

onRecordConfirmEmailChangeRequest((e) => {
  const log = require(`${__hooks}/log.js`);
  const name = e.record.get("name");
  log({ hook: "confirmEmailChange", collection: e.collection.name, record: e.record.id, email: e.record.email(), newEmail: e.newEmail });
  if (name === "refuse") throw new ForbiddenError("refused by hook");
  if (name === "skip") return;
  if (name === "touch") e.record.set("name", "touched");
  e.next();
  log({ hook: "confirmEmailChange", after: true, email: e.record.email(), verified: e.record.verified(), stored: $app.findRecordById("users", e.record.id).email() });
}, "users");

onRecordRequestOTPRequest((e) => {
  const log = require(`${__hooks}/log.js`);
  const name = e.record ? e.record.get("name") : null;
  log({ hook: "requestOTP", collection: e.collection.name, record: e.record ? e.record.id : null });
  if (name === "refuse") throw new ForbiddenError("refused by hook");
  if (name === "skip") return;
  e.next();
}, "users");

// Code after e.next() of a sign-in runs once the answer is made (onRecordAuthRequest fired).
onRecordAuthWithPasswordRequest((e) => {
  e.next();
  require(`${__hooks}/log.js`)({ hook: "authWithPassword", after: true, record: e.record.id });
}, "users");

onRecordAuthRefreshRequest((e) => {
  e.next();
  require(`${__hooks}/log.js`)({ hook: "authRefresh", after: true, record: e.record.id });
}, "users");

onRecordAuthWithOTPRequest((e) => {
  const log = require(`${__hooks}/log.js`);
  log({ hook: "authWithOTP", record: e.record.id, otp: e.otp.id });
  e.next();
  // The default action spent the OTP and answered (onRecordAuthRequest ran inside it).
  let spent = false;
  try { $app.findRecordById("_otps", e.otp.id); } catch (_) { spent = true; }
  log({ hook: "authWithOTP", after: true, record: e.record.id, spent });
}, "users");

onRecordAuthWithOAuth2Request((e) => {
  const log = require(`${__hooks}/log.js`);
  log({
    hook: "authWithOAuth2", collection: e.collection.name, provider: e.providerName,
    user: { id: e.oAuth2User.id, email: e.oAuth2User.email, name: e.oAuth2User.name, rawUser: e.oAuth2User.rawUser },
    isNewRecord: e.isNewRecord, record: e.record ? e.record.id : null, createData: e.createData,
  });
  if (e.oAuth2User.email.startsWith("refuse")) throw new ForbiddenError("refused by hook");
  if (e.oAuth2User.email.startsWith("skip")) return;
  if (e.isNewRecord) e.createData = { name: "from hook" };
  e.next();
  // The default action signed in or up and answered: e.record is the stored record.
  const r = e.record;
  log({ hook: "authWithOAuth2", after: true, isNewRecord: e.isNewRecord, record: r ? r.id : null, name: r ? r.get("name") : null, email: r ? r.email() : null, verified: r ? r.verified() : null });
  // A change after the answer is stored, but not in the answer already written.
  if (e.oAuth2User.email.startsWith("modify")) {
    r.set("name", "changed after next");
    $app.save(r);
  }
}, "users");

onRecordAuthRequest((e) => {
  const log = require(`${__hooks}/log.js`);
  log({ hook: "auth", collection: e.collection.name, record: e.record.id, authMethod: e.authMethod, token: typeof e.token === "string" && e.token.length > 0 });
  e.next();
}, "users");

onMailerRecordVerificationSend((e) => {
  require(`${__hooks}/log.js`)({ mail: "verification", to: e.message.to.map((a) => a.address), record: e.record.id, token: e.meta.token });
}, "users");

onMailerRecordPasswordResetSend((e) => {
  require(`${__hooks}/log.js`)({ mail: "passwordReset", to: e.message.to.map((a) => a.address), record: e.record.id, token: e.meta.token });
}, "users");

onMailerRecordEmailChangeSend((e) => {
  require(`${__hooks}/log.js`)({ mail: "emailChange", to: e.message.to.map((a) => a.address), record: e.record.id, token: e.meta.token, newEmail: e.meta.newEmail });
}, "users");

onMailerRecordOTPSend((e) => {
  require(`${__hooks}/log.js`)({ mail: "otp", to: e.message.to.map((a) => a.address), record: e.record.id, otpId: e.meta.otpId, password: e.meta.password });
}, "users");
