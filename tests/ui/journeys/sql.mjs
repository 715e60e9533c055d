// SQL console: a read runs and shows its rows; a write is refused (and does not happen) until
// "Allow writes" is ticked through its warning, then it runs; a bad query's error shows under
// the box. The switch goes with each request (`allowWrites`): the shared setting is untouched.
import { api, assert, checkLabels, journey, shot } from '../lib.mjs';
import { forgetExpected, openSignedIn } from '../ops.mjs';

const TABLE = `uiops_sql_${Date.now()}`;

async function tableExists(token) {
  const out = await api('/api/sql', { method: 'POST', token, body: { query: `SELECT count(*) FROM sqlite_master WHERE name IN ('${TABLE}', '_collections')` } });
  return Number(out.rows[0][0]) === 2; // _collections is the positive control: always there
}

journey('sql', async ({ page, errors }) => {
  // The switch travels with each run; the shared setting must never be changed by the page.
  const settingsWrites = [];
  page.on('request', (req) => {
    if (req.method() === 'PATCH' && req.url().includes('/api/settings')) settingsWrites.push(req.url());
  });
  const token = await openSignedIn(page, '/sql');
  await page.getByRole('heading', { name: 'SQL console', exact: true }).waitFor();
  await checkLabels(page, 'sql console');
  const box = page.getByLabel('Query', { exact: true });
  const run = page.getByRole('button', { name: 'Run', exact: true });

  await box.fill("SELECT 41 + 1 AS answer, 'hello' AS greeting");
  await run.click();
  await page.locator('.sql-results th', { hasText: 'answer' }).waitFor();
  await page.locator('.sql-results td', { hasText: 'hello' }).waitFor();
  await page.locator('.sql-results td', { hasText: '42' }).waitFor();
  await page.getByText('1 row ·').waitFor();

  // Read-only by default: the write is refused and the table does not appear.
  await box.fill(`CREATE TABLE ${TABLE} (a TEXT)`);
  await run.click();
  await page.locator('.sql-form .form-error', { hasText: 'read-only' }).waitFor();
  const wroteSql = await api('/api/sql', { method: 'POST', token, body: { query: "SELECT count(*) FROM sqlite_master WHERE name = '_collections'" } });
  assert.equal(Number(wroteSql.rows[0][0]), 1, 'positive control: the check query sees existing tables');
  assert.equal(await tableExists(token), false, 'the refused write did not happen');
  forgetExpected(errors, 403);
  await shot(page, 'sql-read-only');

  await page.getByLabel('Allow writes (INSERT, UPDATE, DELETE, DDL)').check();
  const dialog = page.getByRole('dialog', { name: 'Allow writes?' });
  await checkLabels(page, 'allow writes dialog');
  await dialog.getByRole('button', { name: 'Allow writes' }).click();
  await page.getByText('Writes are allowed').waitFor();
  await run.click();
  await page.getByText('The statement returned no columns.').waitFor();
  assert.equal(await tableExists(token), true, 'the allowed write happened');

  await box.fill('SELEC nonsense');
  await run.click();
  await page.locator('.sql-form .form-error', { hasText: 'syntax error' }).waitFor();
  forgetExpected(errors, 400);
  await shot(page, 'sql');

  await page.getByLabel('Allow writes (INSERT, UPDATE, DELETE, DDL)').uncheck();
  await box.fill(`DROP TABLE ${TABLE}`);
  await run.click();
  await page.locator('.sql-form .form-error', { hasText: 'read-only' }).waitFor();
  forgetExpected(errors, 403);
  assert.equal(await tableExists(token), true, 'unticking makes the console read-only again');
  assert.deepEqual(settingsWrites, [], 'the console never PATCHes the shared sql.readOnly setting');
  const settings = await api('/api/settings', { token });
  assert.equal(settings.sql.readOnly, false, 'the shared setting is as it was');
});
