// Sign-in: a wrong password shows the error beside the password field; the right one lands on
// the collections; with OTP enabled for superusers, the one-time code mailed (to MailDev, the
// real SMTP capture server) signs in too, and a wrong code is shown beside the code field.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { api, assert, checkLabels, env, journey, launch, shot, superuserToken, WAIT_MS } from '../lib.mjs';
import { forgetExpected } from '../ops.mjs';

const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** MailDev on free loopback ports; `code()` waits for the newest mail's one-time code. */
async function mailDev() {
  const [smtp, web] = [await freePort(), await freePort()];
  const bin = path.join(path.dirname(createRequire(import.meta.url).resolve('maildev/package.json')), 'bin', 'maildev');
  const proc = spawn(process.execPath, [bin, '--ip', '127.0.0.1', '--smtp', String(smtp), '--web', String(web), '--silent'], { stdio: 'ignore' });
  const mails = async () => (await fetch(`http://127.0.0.1:${web}/email`)).json();
  const until = Date.now() + WAIT_MS;
  for (;;) {
    try {
      await mails();
      break;
    } catch {
      assert.ok(Date.now() < until && proc.exitCode === null, 'maildev did not start');
      await sleep(50);
    }
  }
  return {
    smtp,
    /** The code of `length` digits in the newest mail to `to`. */
    async code(to, length) {
      const deadline = Date.now() + WAIT_MS;
      for (;;) {
        const hit = (await mails()).reverse().find((m) => (m.to ?? []).some((t) => t.address === to));
        const code = hit && new RegExp(`\\b(\\d{${length}})\\b`).exec(hit.text || hit.html || '');
        if (code) return code[1];
        assert.ok(Date.now() < deadline, `no one-time code mailed to ${to}`);
        await sleep(50);
      }
    },
    stop: () => proc.kill('SIGTERM'),
  };
}

async function openLogin(page) {
  // A fresh document each time, so the screen asks auth-methods again.
  await page.goto('about:blank');
  await page.goto(`${env.url}/_/#/login`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('Email').waitFor();
}

journey('sign-in', async ({ page, errors }) => {
  await openLogin(page);
  await checkLabels(page, 'sign-in');
  await shot(page, 'sign-in-1280');

  await page.getByLabel('Email').fill(env.email);
  await page.getByLabel('Password', { exact: true }).fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const beside = page.locator('.field[data-field="password"] [data-error-for="password"]');
  await beside.filter({ hasText: /./ }).waitFor();
  assert.match(await beside.textContent(), /authenticate/i);
  assert.equal(await page.getByLabel('Password', { exact: true }).getAttribute('aria-invalid'), 'true');
  assert.match(page.url(), /#\/login/, 'still on sign-in');
  await shot(page, 'sign-in-wrong-password');
  forgetExpected(errors, 400);

  await page.getByLabel('Password', { exact: true }).fill(env.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/#\/collections/);
  const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('vb_admin_auth')));
  assert.equal(stored.record.email, env.email, 'the session is the superuser');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/#\/login/);

  // OTP: mail through MailDev, enable OTP for superusers, then sign in with the mailed code.
  const mail = await mailDev();
  try {
    const token = await superuserToken();
    await api('/api/settings', { method: 'PATCH', token, body: { smtp: { enabled: true, host: '127.0.0.1', port: mail.smtp, tls: false, username: '', password: '' } } });
    const superusers = await api('/api/collections/_superusers', { token });
    await api(`/api/collections/${superusers.id}`, { method: 'PATCH', token, body: { otp: { ...superusers.otp, enabled: true } } });
    await openLogin(page);
    await page.getByLabel('Send a one-time code to').waitFor();
    await checkLabels(page, 'sign-in with OTP');
    await page.getByLabel('Send a one-time code to').fill(env.email);
    await page.getByRole('button', { name: 'Send code' }).click();
    await page.getByLabel('Code from the email').waitFor();
    await shot(page, 'sign-in-otp');
    // A wrong code: the error is shown beside the code field, and nobody is signed in.
    await page.getByLabel('Code from the email').fill('000000');
    await page.getByRole('button', { name: 'Sign in with the code' }).click();
    await page.locator('form[data-factor="otp"] [data-error-for="password"]').filter({ hasText: /./ }).waitFor();
    assert.equal(await page.evaluate(() => localStorage.getItem('vb_admin_auth')), null);
    forgetExpected(errors, 400);
    // The mailed code signs in.
    await page.getByLabel('Code from the email').fill(await mail.code(env.email, superusers.otp.length));
    await page.getByRole('button', { name: 'Sign in with the code' }).click();
    await page.waitForURL(/#\/collections/);
    const session = await page.evaluate(() => JSON.parse(localStorage.getItem('vb_admin_auth')));
    assert.equal(session.record.email, env.email, 'signed in with the one-time code');
    await api(`/api/collections/${superusers.id}`, { method: 'PATCH', token, body: { otp: { ...superusers.otp, enabled: false } } });
  } finally {
    mail.stop();
  }

  for (const [name, opts] of [['sign-in-390', { width: 390, height: 844 }], ['sign-in-dark', { dark: true }]]) {
    const b = await launch(opts);
    try {
      await openLogin(b.page);
      await checkLabels(b.page, name);
      await shot(b.page, name);
      assert.deepEqual(b.errors, [], `${name} logged errors`);
    } finally {
      await b.close();
    }
  }
});
