// First run: the link printed at start-up opens the setup screen, which creates the first
// superuser, signs in and lands on the collections screen; the server then has that superuser.
import { api, assert, checkLabels, env, journey, launch, shot, superuserToken } from '../lib.mjs';
import { forgetExpected } from '../ops.mjs';

const EMAIL = 'first@example.com';
const PASSWORD = 'first-run-password';

journey('first-run', async ({ page, errors }) => {
  assert.ok(env.setupUrl, 'VB_SETUP_URL is set (tests/ui.rs passes the printed link)');
  // Before setup the API refuses the credentials: the superuser does not exist yet.
  await assert.rejects(superuserToken({ email: EMAIL, password: PASSWORD }), (err) => err.status === 400);

  await page.goto(env.setupUrl);
  await page.getByRole('heading', { name: 'Welcome to vaultbase' }).waitFor();
  await checkLabels(page, 'setup');
  await shot(page, 'setup-1280');

  // A mismatch is shown beside the confirmation field and nothing is created.
  await page.getByLabel('Email').fill(EMAIL);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByLabel('Confirm password').fill('something else');
  await page.getByRole('button', { name: 'Create superuser and sign in' }).click();
  const mismatch = page.locator('[data-error-for="passwordConfirm"]');
  await mismatch.filter({ hasText: /match/i }).waitFor();
  await shot(page, 'setup-error');
  forgetExpected(errors, 400);

  await page.getByLabel('Confirm password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create superuser and sign in' }).click();
  await page.waitForURL(/#\/collections/);
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  await checkLabels(page, 'collections after setup');
  await shot(page, 'signed-in-1280');

  // Server state: the superuser exists and signs in; the link is used up.
  const token = await superuserToken({ email: EMAIL, password: PASSWORD });
  const list = await api('/api/collections/_superusers/records', { token });
  assert.deepEqual(list.items.map((r) => r.email), [EMAIL]);
  const setupToken = env.setupUrl.split('/setup/')[1];
  await assert.rejects(
    api('/_/setup', { method: 'POST', body: { token: setupToken, email: 'second@example.com', password: PASSWORD, passwordConfirm: PASSWORD } }),
    (err) => err.status === 401,
  );

  // The same screen at phone width and in dark mode.
  for (const [name, opts] of [['setup-390', { width: 390, height: 844 }], ['setup-dark', { dark: true }]]) {
    const b = await launch(opts);
    try {
      await b.page.goto(env.setupUrl);
      await b.page.getByRole('heading', { name: 'Welcome to vaultbase' }).waitFor();
      await checkLabels(b.page, name);
      await shot(b.page, name);
      assert.deepEqual(b.errors, [], `${name} logged errors`);
    } finally {
      await b.close();
    }
  }
});
