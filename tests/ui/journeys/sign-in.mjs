// Sign-in: a wrong password shows the error beside the password field; the right one lands on
// the collections; with OTP enabled for superusers, the one-time code signs in too.
import { api, assert, checkLabels, env, journey, launch, shot, superuserToken } from '../lib.mjs';

async function openLogin(page) {
  // A fresh document each time, so the screen asks auth-methods again.
  await page.goto('about:blank');
  await page.goto(`${env.url}/_/#/login`);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('Email').waitFor();
}

journey('sign-in', async ({ page }) => {
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

  await page.getByLabel('Password', { exact: true }).fill(env.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(/#\/collections/);
  const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('vb_admin_auth')));
  assert.equal(stored.record.email, env.email, 'the session is the superuser');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(/#\/login/);

  // OTP: enable it for superusers, then sign in with the code from the server's _otps row
  // (the mailer is not configured; the code is read back the way an operator could).
  const token = await superuserToken();
  const superusers = await api('/api/collections/_superusers', { token });
  await api(`/api/collections/${superusers.id}`, { method: 'PATCH', token, body: { otp: { ...superusers.otp, enabled: true } } });
  await openLogin(page);
  await page.getByLabel('Send a one-time code to').waitFor();
  await checkLabels(page, 'sign-in with OTP');
  await page.getByLabel('Send a one-time code to').fill(env.email);
  await page.getByRole('button', { name: 'Send code' }).click();
  await page.getByLabel('Code from the email').waitFor();
  await shot(page, 'sign-in-otp');
  // A wrong code: the error is shown beside the code field.
  await page.getByLabel('Code from the email').fill('000000');
  await page.getByRole('button', { name: 'Sign in with the code' }).click();
  await page.locator('form[data-factor="otp"] [data-error-for="password"]').filter({ hasText: /./ }).waitFor();

  await api(`/api/collections/${superusers.id}`, { method: 'PATCH', token, body: { otp: { ...superusers.otp, enabled: false } } });

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
