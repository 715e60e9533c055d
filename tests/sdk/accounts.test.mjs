// Account flows end to end with real mail: the SDK asks, vaultbase sends over SMTP to MailDev,
// the test reads the mail over MailDev's HTTP API, follows its token and completes the flow.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { client, superuser, unique, emailFor, refused, observedFor } from './lib.mjs';
import { startMailDev, tokenIn } from './mailer.mjs';

const PASSWORD = 'first password 1';
let maildev;
let su;
const users = unique('members');

async function newUser(who, password = PASSWORD) {
  const email = emailFor(who);
  const rec = await su.collection(users).create({ email, password, passwordConfirm: password });
  return { id: rec.id, email, password };
}

before(async () => {
  maildev = await startMailDev();
  su = await superuser();
  await su.settings.update({
    meta: { appName: 'Vault Test', appURL: 'http://app.example.test/', senderName: 'Vault', senderAddress: 'noreply@example.com' },
    smtp: { enabled: true, host: '127.0.0.1', port: maildev.smtpPort, tls: false, username: '', password: '' },
  });
  await su.collections.create({
    name: users,
    type: 'auth',
    listRule: 'id = @request.auth.id',
    viewRule: 'id = @request.auth.id',
  });
});

after(async () => {
  await maildev?.stop();
});

test('settings: the SMTP password is write-only, and the test mail arrives', async () => {
  await su.settings.update({ smtp: { password: 'smtp secret' } });
  const settings = await su.settings.getAll();
  assert.equal(settings.smtp.enabled, true);
  assert.ok(!JSON.stringify(settings).includes('smtp secret'), 'the password is never returned');
  const to = emailFor('settings-test');
  assert.equal(await su.settings.testEmail(users, to, 'verification'), true);
  const mail = await maildev.waitFor(to);
  assert.equal(mail.subject, 'Verify your Vault Test email');
  assert.equal(mail.from[0].address, 'noreply@example.com');
  assert.match(mail.html, /http:\/\/app\.example\.test\/_\/#\/auth\/confirm-verification\/TEST_TOKEN/);
  const err = await refused(su.settings.testEmail(users, to, 'no-such-template'), 400);
  assert.ok(err.response.data.template);
});

test('verification: request, mail, confirm; confirming again is a no-op 204 (PocketBase)', async () => {
  const u = await newUser('verify');
  const pb = client();
  assert.equal(await pb.collection(users).requestVerification(u.email), true);
  // Unknown addresses answer the same.
  assert.equal(await pb.collection(users).requestVerification(emailFor('nobody-verify')), true);
  const mail = await maildev.waitFor(u.email, (m) => m.subject.startsWith('Verify'));
  const token = tokenIn(mail, 'confirm-verification');
  // Single-purpose: a verification token is nothing else, and an auth token is no verification token.
  await refused(pb.collection(users).confirmPasswordReset(token, 'other password 9', 'other password 9'), 400);
  await refused(pb.collection(users).confirmEmailChange(token, u.password), 400);
  const session = client();
  await session.collection(users).authWithPassword(u.email, u.password);
  await refused(pb.collection(users).confirmVerification(session.authStore.token), 400);
  assert.equal(await pb.collection(users).confirmVerification(token), true);
  assert.equal((await su.collection(users).getOne(u.id)).verified, true);
  assert.equal(await pb.collection(users).confirmVerification(token), true, 'already verified: 204 again');
  const garbage = await refused(pb.collection(users).confirmVerification('not-a-token'), 400);
  assert.equal(garbage.response.data.token?.code, 'validation_invalid_token_claims');
  const forged = await refused(pb.collection(users).confirmVerification(token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA')), 400);
  assert.equal(forged.response.data.token?.code, 'validation_invalid_token');
  // A verification token is no reset token: PocketBase's field error, not a bare 400.
  const wrongKind = await refused(pb.collection(users).confirmPasswordReset(token, 'other password 9', 'other password 9'), 400);
  assert.deepEqual(wrongKind.response.data.token, { code: 'validation_invalid_token', message: 'Invalid or expired token.' });
});

test('verification with password auth off: the registered password stops working (PocketBase)', async () => {
  const u = await newUser('verify-nopassword');
  const session = client();
  await session.collection(users).authWithPassword(u.email, u.password);
  await su.collections.update(users, { passwordAuth: { enabled: false } });
  try {
    const seen = await maildev.seenFor(u.email);
    await client().collection(users).requestVerification(u.email);
    const token = tokenIn(await maildev.waitFor(u.email, (m) => m.subject.startsWith('Verify'), seen), 'confirm-verification');
    assert.equal(await client().collection(users).confirmVerification(token), true);
    assert.equal((await su.collection(users).getOne(u.id)).verified, true);
    // A random password and a new tokenKey: the session from before has ended.
    await refused(session.collection(users).authRefresh(), 401);
  } finally {
    await su.collections.update(users, { passwordAuth: { enabled: true } });
  }
  await refused(client().collection(users).authWithPassword(u.email, u.password), 400);
});

test('tokens live as long as the collection says', async () => {
  await su.collections.update(users, { verificationToken: { duration: 120 }, passwordResetToken: { duration: 300 } });
  try {
    const u = await newUser('durations');
    const seen = await maildev.seenFor(u.email);
    await client().collection(users).requestVerification(u.email);
    await client().collection(users).requestPasswordReset(u.email);
    const exp = (mail, action) => JSON.parse(Buffer.from(tokenIn(mail, action).split('.')[1], 'base64url').toString()).exp;
    const now = Date.now() / 1000;
    const v = exp(await maildev.waitFor(u.email, (m) => m.subject.startsWith('Verify'), seen), 'confirm-verification');
    const r = exp(await maildev.waitFor(u.email, (m) => m.subject.startsWith('Reset'), seen), 'confirm-password-reset');
    assert.ok(v > now + 100 && v <= now + 121, `verification exp ${v - now}`);
    assert.ok(r > now + 280 && r <= now + 301, `reset exp ${r - now}`);
  } finally {
    await su.collections.update(users, { verificationToken: { duration: 86400 }, passwordResetToken: { duration: 1800 } });
  }
});

test('password reset: new password works, old password and old tokens are rejected', async () => {
  const u = await newUser('reset');
  const pb = client();
  await pb.collection(users).authWithPassword(u.email, u.password);
  const oldToken = pb.authStore.token;
  assert.equal(await pb.collection(users).requestPasswordReset(u.email), true);
  assert.equal(await client().collection(users).requestPasswordReset(emailFor('nobody-reset')), true);
  const mail = await maildev.waitFor(u.email, (m) => m.subject.startsWith('Reset'));
  const token = tokenIn(mail, 'confirm-password-reset');
  const mismatch = await refused(client().collection(users).confirmPasswordReset(token, 'new password 2', 'other'), 400);
  assert.equal(mismatch.response.data.passwordConfirm.code, 'validation_values_mismatch');
  assert.equal(await client().collection(users).confirmPasswordReset(token, 'new password 2', 'new password 2'), true);
  // The token is spent (and its tokenKey is gone with the password change): PocketBase's
  // `data.token` error, reported with any password errors of the same request.
  const spent = await refused(client().collection(users).confirmPasswordReset(token, 'new password 3', 'new password 3'), 400);
  assert.equal(spent.response.message, 'An error occurred while validating the submitted data.');
  assert.deepEqual(spent.response.data, { token: { code: 'validation_invalid_token', message: 'Invalid or expired token.' } });
  const both = await refused(client().collection(users).confirmPasswordReset(token, 'short', 'other'), 400);
  assert.deepEqual(Object.keys(both.response.data).sort(), ['password', 'passwordConfirm', 'token']);
  // The old session no longer works.
  await refused(pb.collection(users).authRefresh(), 401);
  await refused(client().collection(users).authWithPassword(u.email, u.password), 400);
  const fresh = client();
  const auth = await fresh.collection(users).authWithPassword(u.email, 'new password 2');
  assert.equal(auth.record.id, u.id);
  assert.equal(auth.record.verified, true, 'a reset through the mailbox verifies it');
  assert.notEqual(fresh.authStore.token, oldToken);
});

test('email change: the mail goes to the new address; confirming needs the password', async () => {
  const u = await newUser('change');
  const pb = client();
  await pb.collection(users).authWithPassword(u.email, u.password);
  const newEmail = emailFor('changed');
  const taken = await refused(pb.collection(users).requestEmailChange(u.email), 400);
  assert.ok(taken.response.data.newEmail);
  await refused(client().collection(users).requestEmailChange(newEmail), 401);
  assert.equal(await pb.collection(users).requestEmailChange(newEmail), true);
  const mail = await maildev.waitFor(newEmail, (m) => m.subject.startsWith('Confirm'));
  const token = tokenIn(mail, 'confirm-email-change');
  const wrong = await refused(client().collection(users).confirmEmailChange(token, 'wrong password'), 400);
  assert.ok(wrong.response.data.password);
  assert.equal(await pb.collection(users).confirmEmailChange(token, u.password), true);
  assert.equal(pb.authStore.token, '', 'the SDK logs out the user whose email changed');
  await refused(client().collection(users).authWithPassword(u.email, u.password), 400);
  const auth = await client().collection(users).authWithPassword(newEmail, u.password);
  assert.equal(auth.record.email, newEmail);
  assert.equal(auth.record.verified, true);
  const reused = await refused(client().collection(users).confirmEmailChange(token, u.password), 400);
  assert.equal(reused.response.data.token?.code, 'validation_invalid_token');
});

test('email change: password guesses at confirm-email-change count against the password limits', async () => {
  const u = await newUser('change-guess');
  const pb = client();
  await pb.collection(users).authWithPassword(u.email, u.password);
  const newEmail = emailFor('change-guess-new');
  assert.equal(await pb.collection(users).requestEmailChange(newEmail), true);
  const token = tokenIn(await maildev.waitFor(newEmail, (m) => m.subject.startsWith('Confirm')), 'confirm-email-change');
  // The default limit: 10 failed passwords per account from one client, then 429.
  for (let i = 0; i < 10; i += 1) {
    const wrong = await refused(client().collection(users).confirmEmailChange(token, `guess ${i}`), 400);
    assert.ok(wrong.response.data.password);
  }
  await refused(client().collection(users).confirmEmailChange(token, u.password), 429);
  assert.equal((await su.collection(users).getOne(u.id)).email, u.email);
});

test('OTP: request, mail with the code, log in; unknown emails get a fake id', async () => {
  await su.collections.update(users, { otp: { enabled: true, length: 6 } });
  const u = await newUser('otp');
  const pb = client();
  const seen = await maildev.seenFor(u.email);
  const { otpId } = await pb.collection(users).requestOTP(u.email);
  assert.equal(typeof otpId, 'string');
  const fake = await client().collection(users).requestOTP(emailFor('nobody-otp'));
  assert.equal(typeof fake.otpId, 'string');
  await refused(client().collection(users).authWithOTP(fake.otpId, '000000'), 400);
  const mail = await maildev.waitFor(u.email, (m) => m.subject.startsWith('OTP'), seen);
  const code = /(\d{6})/.exec(mail.html)[1];
  await refused(client().collection(users).authWithOTP(otpId, code === '000000' ? '111111' : '000000'), 400);
  const auth = await pb.collection(users).authWithOTP(otpId, code);
  assert.equal(auth.record.id, u.id);
  assert.equal(auth.record.verified, true, 'proving the mailbox verifies it');
  assert.ok(pb.authStore.isValid);
  await refused(client().collection(users).authWithOTP(otpId, code), 400);
});

test('MFA: password then OTP, with the mfaId of the first step', async () => {
  await su.collections.update(users, { otp: { enabled: true, length: 6 }, mfa: { enabled: true, duration: 600 } });
  try {
    const u = await newUser('mfa');
    const pb = client();
    // PocketBase answers the first factor with a bare `{mfaId}` 401, not the error envelope.
    const first = await pb.collection(users).authWithPassword(u.email, u.password).then(
      () => assert.fail('the first factor alone must not log in'),
      (e) => e,
    );
    assert.equal(first.status, 401);
    const mfaId = first.response.mfaId;
    assert.equal(typeof mfaId, 'string');
    // The same method twice is not two factors.
    const same = await refused(pb.collection(users).authWithPassword(u.email, u.password, { mfaId }), 400);
    assert.match(same.response.message, /different authentication method/);
    const seen = await maildev.seenFor(u.email);
    const { otpId } = await pb.collection(users).requestOTP(u.email);
    const mail = await maildev.waitFor(u.email, (m) => m.subject.startsWith('OTP'), seen);
    const code = /(\d{6})/.exec(mail.html)[1];
    const auth = await pb.collection(users).authWithOTP(otpId, code, { mfaId });
    assert.equal(auth.record.id, u.id);
    assert.ok(pb.authStore.isValid);
    await refused(client().collection(users).authWithPassword(u.email, u.password, { mfaId: 'nosuchmfaid1234' }), 400);
  } finally {
    await su.collections.update(users, { mfa: { enabled: false } });
  }
});

test('impersonate: a superuser gets a non-refreshable token for the record', async () => {
  const u = await newUser('impersonated');
  const as = await su.collection(users).impersonate(u.id, 3600);
  assert.equal(as.authStore.record.id, u.id);
  const payload = JSON.parse(Buffer.from(as.authStore.token.split('.')[1], 'base64url').toString());
  assert.equal(payload.refreshable, false);
  const now = Date.now() / 1000;
  assert.ok(payload.exp > now + 3500 && payload.exp <= now + 3601, `exp ${payload.exp}`);
  const before = as.authStore.token;
  await as.collection(users).authRefresh();
  assert.equal(as.authStore.token, before, 'refresh returns the same token');
  assert.equal((await as.collection(users).getOne(u.id)).id, u.id);
  const plain = client();
  await plain.collection(users).authWithPassword(u.email, u.password);
  await refused(plain.collection(users).impersonate(u.id, 60), 403);
  await refused(su.collection(users).impersonate('nosuchrecord123', 60), 404);
});

test('login alert: a sign-in from a new device mails the account; the first sign-in does not', async () => {
  const u = await newUser('alert');
  const seen = await maildev.seenFor(u.email);
  await client().collection(users).authWithPassword(u.email, u.password, { headers: { 'User-Agent': 'device-one' } });
  await client().collection(users).authWithPassword(u.email, u.password, { headers: { 'User-Agent': 'device-one' } });
  await client().collection(users).authWithPassword(u.email, u.password, { headers: { 'User-Agent': 'device-two' } });
  const mail = await maildev.waitFor(u.email, (m) => m.subject.startsWith('Login from a new location'), seen);
  const alerts = (await maildev.all()).filter(
    (m) => !seen.has(m.id) && m.to.some((t) => t.address === u.email) && m.subject === mail.subject,
  );
  assert.equal(alerts.length, 1, 'one alert: the first device was the first sign-in');
});

// Last: it stops MailDev.
test('the write pipeline sees each account-flow write (verify, reset, email change) once, with the record before and after', async () => {
  const u = await newUser('observed');
  const pb = client();
  const seen = new Set();
  await pb.collection(users).requestVerification(u.email);
  const verify = tokenIn(await maildev.waitFor(u.email, (m) => m.subject.startsWith('Verify'), seen), 'confirm-verification');
  assert.equal(await pb.collection(users).confirmVerification(verify), true);
  await pb.collection(users).requestPasswordReset(u.email);
  const reset = tokenIn(await maildev.waitFor(u.email, (m) => m.subject.startsWith('Reset'), seen), 'confirm-password-reset');
  assert.equal(await pb.collection(users).confirmPasswordReset(reset, 'second password 2', 'second password 2'), true);
  const newEmail = emailFor('observed-new');
  await pb.collection(users).authWithPassword(u.email, 'second password 2');
  assert.equal(await pb.collection(users).requestEmailChange(newEmail), true);
  const change = tokenIn(await maildev.waitFor(newEmail, (m) => m.subject.startsWith('Confirm')), 'confirm-email-change');
  assert.equal(await client().collection(users).confirmEmailChange(change, 'second password 2'), true);
  const events = (await observedFor(u.id)).filter((e) => e.source === 'accountFlow');
  assert.deepEqual(events.map((e) => [e.stage, e.action]), [['after', 'update'], ['after', 'update'], ['after', 'update']]);
  assert.equal(events[2].before.email, u.email);
  assert.equal(events[2].after.email, newEmail);
  assert.equal(events[0].before.verified, 0);
  assert.equal(events[0].after.verified, 1);
  assert.notEqual(events[1].before.password, events[1].after.password, 'the reset changed the stored hash');
  assert.notEqual(events[1].before.tokenKey, events[1].after.tokenKey);
});

test('a stopped mail server: 204 where PocketBase answers 204, a clear 400 where the user asked, nothing lost', async () => {
  const u = await newUser('stopped');
  const pb = client();
  await pb.collection(users).authWithPassword(u.email, u.password);
  await maildev.stop();
  assert.equal(await client().collection(users).requestVerification(u.email), true);
  assert.equal(await client().collection(users).requestPasswordReset(u.email), true);
  const err = await refused(pb.collection(users).requestEmailChange(emailFor('stopped-new')), 400);
  assert.equal(err.response.message, 'Failed to request email change.', "PocketBase's message");
  const test = await refused(su.settings.testEmail(users, u.email, 'verification'), 400);
  assert.match(test.response.message, /Failed to send the test email/);
  const rec = await su.collection(users).getOne(u.id);
  assert.equal(rec.email, u.email);
  assert.equal(rec.verified, false);
  await pb.collection(users).authRefresh();
  // Mail off again so nothing else in this run tries the stopped server.
  await su.settings.update({ smtp: { enabled: false } });
});
