// Settings sections: application (a blank name's error in place, then a saved name), files
// (the S3 test's answer shown), rate limits (add a rule, a bad rule's error in its row,
// remove it), superusers (add, delete), export (one collection's JSON, downloaded) and import
// (a review of what changes — added, changed with its fields — then confirmed).
import fs from 'node:fs';
import { api, assert, checkLabels, env, journey, shot } from '../lib.mjs';
import { forgetExpected, openSignedIn } from '../ops.mjs';

const STAMP = Date.now();

async function open(page, section, heading) {
  await page.goto(`${env.url}/_/#/settings/${section}`);
  await page.getByRole('heading', { name: heading, exact: true }).waitFor();
  await checkLabels(page, `settings ${section}`);
}

journey('settings', async ({ page, errors }) => {
  const token = await openSignedIn(page, '/settings');
  await page.getByRole('heading', { name: 'Application', exact: true }).waitFor();
  await checkLabels(page, 'settings application');

  // Application.
  const name = page.getByLabel('Application name');
  await name.fill('');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('[data-error-for="meta.appName"]:not(:empty)').waitFor();
  forgetExpected(errors, 400);
  await name.fill(`Journey app ${STAMP}`);
  await page.getByLabel('Client IP proxy headers').fill('X-Forwarded-For, CF-Connecting-IP');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('.toast', { hasText: 'Settings saved.' }).last().waitFor();
  let settings = await api('/api/settings', { token });
  assert.equal(settings.meta.appName, `Journey app ${STAMP}`);
  assert.deepEqual(settings.trustedProxy.headers, ['X-Forwarded-For', 'CF-Connecting-IP']);
  await shot(page, 'settings-application');

  // Files: the S3 test answers (S3 is off here, so with its error).
  await open(page, 'files', 'Files storage');
  await page.getByRole('button', { name: 'Test S3 connection' }).click();
  await page.locator('.test-result.error:not(:empty)').waitFor();
  forgetExpected(errors, 400);

  // Rate limits.
  await open(page, 'rate-limits', 'Rate limits');
  const before = (await api('/api/settings', { token })).rateLimits.rules.length;
  await page.getByRole('button', { name: 'Add rule' }).click();
  const n = before + 1;
  await page.getByLabel(`Rule ${n} label`).fill('');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator(`[data-error-for="rateLimits.rules.${n - 1}.label"]:not(:empty)`).waitFor();
  assert.equal(await page.getByLabel(`Rule ${n} label`).getAttribute('aria-invalid'), 'true');
  forgetExpected(errors, 400);
  await shot(page, 'settings-rate-limits-error');
  await page.getByLabel(`Rule ${n} label`).fill('/api/journey');
  await page.getByLabel(`Rule ${n} max requests`).fill('7');
  await page.getByLabel(`Rule ${n} duration in seconds`).fill('9');
  await page.getByLabel(`Rule ${n} audience`).selectOption('@guest');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('.toast', { hasText: 'Rate limits saved.' }).last().waitFor();
  settings = await api('/api/settings', { token });
  assert.deepEqual(settings.rateLimits.rules.find((r) => r.label === '/api/journey'), { label: '/api/journey', audience: '@guest', maxRequests: 7, duration: 9 });
  await page.getByRole('button', { name: `Remove rule ${n}` }).click();
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('.toast', { hasText: 'Rate limits saved.' }).nth(1).waitFor();
  settings = await api('/api/settings', { token });
  assert.equal(settings.rateLimits.rules.length, before);
  assert.ok(!settings.rateLimits.rules.some((r) => r.label === '/api/journey'));

  // Superusers.
  await open(page, 'superusers', 'Superusers');
  const email = `journey-${STAMP}@example.com`;
  await page.getByRole('button', { name: 'New superuser' }).click();
  const dialog = page.getByRole('dialog', { name: 'New superuser' });
  await dialog.getByLabel('Email').fill(email);
  await dialog.getByLabel('Password', { exact: true }).fill('journey-password-1');
  await dialog.getByLabel('Password confirm').fill('journey-password-1');
  await checkLabels(page, 'new superuser');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await page.getByRole('cell', { name: email, exact: true }).waitFor();
  const created = (await api('/api/collections/_superusers/records?perPage=200', { token })).items.find((u) => u.email === email);
  assert.ok(created, 'the superuser exists');
  await page.getByRole('button', { name: `Delete superuser ${email}` }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('cell', { name: email, exact: true }).waitFor({ state: 'detached' });
  assert.ok(!(await api('/api/collections/_superusers/records?perPage=200', { token })).items.some((u) => u.email === email), 'the superuser is deleted');

  // Export one collection.
  const base = `imp_base_${STAMP}`;
  await api('/api/collections', { method: 'POST', token, body: { name: base, type: 'base', fields: [{ name: 'title', type: 'text' }] } });
  await open(page, 'export', 'Export collections');
  await page.getByRole('button', { name: 'Select none' }).click();
  await page.getByLabel(base, { exact: true }).check();
  const exported = JSON.parse(await page.getByLabel('Exported JSON').inputValue());
  assert.deepEqual(exported.map((c) => c.name), [base]);
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download JSON' }).click()]);
  const downloaded = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
  assert.deepEqual(downloaded, exported, 'the download is what the page shows');

  // Import: the exported collection with one more field, and a new collection.
  const fresh = `imp_new_${STAMP}`;
  exported[0].fields.push({ name: 'extra', type: 'number' });
  exported.push({ name: fresh, type: 'base', fields: [{ name: 'label', type: 'text' }] });
  await open(page, 'import', 'Import collections');
  await page.getByLabel('Collections JSON').fill('{ not json');
  await page.getByRole('button', { name: 'Review' }).click();
  await page.locator('[data-error-for="collections"]', { hasText: 'Not valid JSON' }).waitFor();
  await page.getByLabel('Collections JSON').fill(JSON.stringify(exported, null, 2));
  await page.getByRole('button', { name: 'Review' }).click();
  const review = page.locator('.import-review');
  await review.getByText(`Added (1)`).waitFor();
  await review.locator('.diff-added', { hasText: fresh }).waitFor();
  await review.locator('.diff-changed', { hasText: base }).getByText('fields added: extra', { exact: false }).waitFor();
  assert.equal(await review.getByText('Deleted').count(), 0, 'nothing is deleted without "delete missing"');
  await checkLabels(page, 'import review');
  await shot(page, 'settings-import-review');
  assert.equal((await api('/api/collections?perPage=500', { token })).items.some((c) => c.name === fresh), false, 'nothing changes before the confirmation');
  await page.getByRole('button', { name: 'Confirm and import' }).click();
  await page.getByText('Collections imported.', { exact: true }).first().waitFor();
  const after = (await api('/api/collections?perPage=500', { token })).items;
  assert.ok(after.some((c) => c.name === fresh), 'the new collection exists');
  assert.ok(after.find((c) => c.name === base).fields.some((f) => f.name === 'extra'), 'the changed collection has its new field');
});
