// Settings › Crons: every registered job is listed with its expression; "Run now" on
// __pbLogsCleanup__ adds a manual run to its history, on the page and on the server.
import { api, assert, checkLabels, journey, shot } from '../lib.mjs';
import { openSignedIn } from '../ops.mjs';

const JOB = '__pbLogsCleanup__';

journey('crons', async ({ page }) => {
  const token = await openSignedIn(page, '/settings/crons');
  await page.getByRole('heading', { name: 'Crons', exact: true }).waitFor();
  const crons = await api('/api/crons', { token });
  assert.ok(crons.some((c) => c.id === JOB), `${JOB} is registered`);
  for (const c of crons) await page.locator(`.cron-card[data-cron="${c.id}"]`).getByText(c.expression, { exact: true }).waitFor();
  const card = page.locator(`.cron-card[data-cron="${JOB}"]`);
  await card.locator('tbody tr:not(.skeleton)').first().waitFor();
  await checkLabels(page, 'crons');

  const before = (await api(`/api/crons/${JOB}/runs`, { token })).items.length;
  const rows = card.locator('tbody tr[data-id]');
  assert.equal(await rows.count(), Math.min(before, 10), 'the page lists the runs the server has');
  await card.getByRole('button', { name: `Run ${JOB} now` }).click();
  await card.locator(`tbody tr[data-id]`).nth(before).waitFor();
  await card.locator('tbody tr[data-id]').first().getByText('manual').waitFor();

  const after = (await api(`/api/crons/${JOB}/runs`, { token })).items;
  assert.equal(after.length, before + 1, 'one more run on the server');
  assert.equal(after[0].trigger, 'manual');
  assert.equal(after[0].outcome, 'ok');
  await shot(page, 'crons');
});
