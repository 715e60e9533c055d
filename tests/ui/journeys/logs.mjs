// Logs: a few requests made here are found with a filter, their count matches the server's,
// the chart counts them, a bad filter shows its error under the filter bar, one log opens with
// all of its data, and the log settings save.
import { api, assert, checkLabels, env, journey, shot } from '../lib.mjs';
import { forgetExpected, openSignedIn, superuserToken } from '../ops.mjs';

const MARK = `journey-logs-${Date.now()}`;
const REQUESTS = 3;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

journey('logs', async ({ page, errors }) => {
  for (let i = 0; i < REQUESTS; i += 1) await fetch(`${env.url}/api/collections/${MARK}/records`);
  const token = await superuserToken();
  const filter = `data.url ~ "${MARK}"`;
  // Request logs are written in batches: wait until the server has all of them.
  let logs;
  for (let tries = 0; ; tries += 1) {
    logs = await api(`/api/logs?filter=${encodeURIComponent(filter)}`, { token });
    if (logs.totalItems >= REQUESTS) break;
    assert.ok(tries < 200, 'the requests reached the logs');
    await sleep(100);
  }
  assert.equal(logs.totalItems, REQUESTS);

  await openSignedIn(page, '/logs');
  await page.getByRole('heading', { name: 'Logs', exact: true }).waitFor();
  await page.locator('.logs-list tbody tr[data-id]').first().waitFor();
  await checkLabels(page, 'logs');
  const unfiltered = Number(await page.locator('.logs-chart').getAttribute('data-total'));
  assert.ok(unfiltered >= REQUESTS, 'the chart counts every request');

  await page.getByLabel('Filter logs').fill('data.url ~ ');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('#logs-filter-error:not(:empty)').waitFor();
  assert.equal(await page.getByLabel('Filter logs').getAttribute('aria-invalid'), 'true');
  await shot(page, 'logs-filter-error');
  forgetExpected(errors, 400);

  await page.getByLabel('Filter logs').fill(filter);
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.locator('.logs-chart[data-total="3"]').waitFor();
  const rows = page.locator('.logs-list tbody tr[data-id]');
  await rows.nth(REQUESTS - 1).waitFor();
  assert.equal(await rows.count(), REQUESTS);
  for (let i = 0; i < REQUESTS; i += 1) await rows.nth(i).locator('td[data-col=status]').getByText('404').waitFor();
  assert.match(page.url(), /filter=/, 'the filter is kept in the address');
  await shot(page, 'logs');

  await rows.first().locator('a').click();
  await page.waitForURL(/#\/logs\/[^/?]+$/);
  const id = page.url().split('/').pop();
  const log = await api(`/api/logs/${id}`, { token });
  await page.locator('dd[data-key=url]').getByText(log.data.url).waitFor();
  await page.locator('dd[data-key=status]').getByText('404').waitFor();
  assert.ok(log.data.url.includes(MARK));
  await checkLabels(page, 'log detail');
  await shot(page, 'log-detail');

  await page.getByRole('link', { name: 'Back to logs' }).click();
  await page.getByRole('button', { name: 'Log settings' }).click();
  const dialog = page.getByRole('dialog', { name: 'Log settings' });
  await dialog.getByLabel('Max days retention').fill('9');
  await dialog.getByLabel('Log the auth id of the requester').check();
  await checkLabels(page, 'log settings');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await page.locator('.toast', { hasText: 'Log settings saved.' }).waitFor();
  const settings = await api('/api/settings', { token });
  assert.equal(settings.logs.maxDays, 9);
  assert.equal(settings.logs.logAuthId, true);
});
